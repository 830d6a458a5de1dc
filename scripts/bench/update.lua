-- wrk script: durable updates (a PATCH of the name) of random existing contexts (ids read from
-- SMSCTX_BENCH_IDS).
local token = os.getenv("SMSCTX_BENCH_TOKEN") or "bench"
local ids = {}
for line in io.lines(os.getenv("SMSCTX_BENCH_IDS")) do ids[#ids + 1] = line end
local counter = 0
wrk.method = "PATCH"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
wrk.headers["OData-Version"] = "4.0"
request = function()
  counter = counter + 1
  local id = ids[math.random(#ids)]
  local body = string.format('{"msdyn_name":"updated %d"}', counter)
  return wrk.format(nil, "/api/data/v9.2/msdyn_smsengagementctxes(" .. id .. ")", nil, body)
end
