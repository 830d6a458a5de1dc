-- wrk script: durable creates of engagement contexts.
local token = os.getenv("SMSCTX_BENCH_TOKEN") or "bench"
local counter = 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
wrk.headers["OData-Version"] = "4.0"
request = function()
  counter = counter + 1
  local body = string.format(
    '{"msdyn_name":"bench %d","msdyn_orgphonenumber":"14255550100","msdyn_customerphonenumber":"1425%07d","msdyn_smsprovider":192350001,"msdyn_countrycode":"1"}',
    counter, counter % 10000000)
  return wrk.format(nil, "/api/data/v9.2/msdyn_smsengagementctxes", nil, body)
end
