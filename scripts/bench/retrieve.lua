-- wrk script: retrieve-by-key of random existing contexts (ids read from SMSCTX_BENCH_IDS).
local token = os.getenv("SMSCTX_BENCH_TOKEN") or "bench"
local ids = {}
for line in io.lines(os.getenv("SMSCTX_BENCH_IDS")) do ids[#ids + 1] = line end
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["OData-Version"] = "4.0"
wrk.headers["Accept"] = "application/json"
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/api/data/v9.2/msdyn_smsengagementctxes(" .. id .. ")")
end
