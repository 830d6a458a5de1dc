-- wrk script: the phone-pair filter ("the active context for this org number and this customer
-- number") over the rows create.lua wrote (SMSCTX_BENCH_ROWS of them).
local token = os.getenv("SMSCTX_BENCH_TOKEN") or "bench"
local rows = tonumber(os.getenv("SMSCTX_BENCH_ROWS") or "1000")
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["OData-Version"] = "4.0"
wrk.headers["Accept"] = "application/json"
request = function()
  local n = math.random(math.max(rows, 1))
  local path = string.format(
    "/api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name&$filter=msdyn_orgphonenumber%%20eq%%20%%2714255550100%%27%%20and%%20msdyn_customerphonenumber%%20eq%%20%%271425%07d%%27%%20and%%20statecode%%20eq%%200",
    n % 10000000)
  return wrk.format("GET", path)
end
