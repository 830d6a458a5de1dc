-- wrk script for scripts/bench-scaleout.sh: the three cases of the side-by-side harness
-- (../shared/perf) on the rows scripts/bench-scaleout.sh seeds. Environment:
--   MODE  = get (retrieve a random seeded row by key) | filter ($filter on the customer number of a
--           random seeded row) | post (create one row with distinct values)
--   NROWS = rows seeded: row i has id 00000000-0000-4000-8000-<i, 12 digits> and customer number
--           1555<i, 7 digits>
--   SMSCTX_BENCH_TOKEN = the bearer token of every request
-- done() prints one line: RESULT rps=.. p50_ms=.. p99_ms=.. reqs=.. non2xx=.. sockerr=..
local mode = os.getenv("MODE") or "get"
local nrows = tonumber(os.getenv("NROWS") or "100000")
local token = os.getenv("SMSCTX_BENCH_TOKEN") or "bench"
local set = "/api/data/v9.2/msdyn_smsengagementctxes"
local nonce = os.time()
local counter = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tno", threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tno or 0) * 7919)
  wrk.headers["Accept"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["OData-MaxVersion"] = "4.0"
  wrk.headers["OData-Version"] = "4.0"
  if mode == "post" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
end

request = function()
  if mode == "get" then
    return wrk.format("GET", string.format("%s(00000000-0000-4000-8000-%012d)", set, math.random(1, nrows)))
  elseif mode == "filter" then
    return wrk.format("GET", string.format(
      "%s?$filter=msdyn_customerphonenumber%%20eq%%20%%271555%07d%%27", set, math.random(1, nrows)))
  end
  counter = counter + 1
  local n = (tno or 0) * 100000000 + counter
  local body = string.format(
    '{"msdyn_name":"bench %d","msdyn_countrycode":"US","msdyn_customerphonenumber":"1777%09d",' ..
    '"msdyn_orgphonenumber":"18000000001","msdyn_smsengagementid":"SMS%d-%d","msdyn_smsprovider":%d}',
    n, n % 1000000000, nonce, n, (n % 2 == 0) and 192350000 or 192350001)
  return wrk.format(nil, set, nil, body)
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f reqs=%d non2xx=%d sockerr=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
