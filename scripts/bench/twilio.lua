-- wrk script: signed Twilio messaging webhooks (POST /channels/sms/twilio), each with its own
-- MessageSid, read from the file SMSCTX_BENCH_REQUESTS that sign-twilio.py wrote. The two wrk
-- threads take alternate lines, so no message is sent twice until the file runs out.
local file = os.getenv("SMSCTX_BENCH_REQUESTS")
local requests = {}
local next_index = 1
local step = 1

local threads = 0

-- Runs in the main state: thread k starts at line k + 1.
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(file) do
    local signature, body = line:match("^([^\t]+)\t(.*)$")
    requests[#requests + 1] = { signature, body }
  end
  next_index = 1 + (offset or 0)
  step = 2
end

request = function()
  local r = requests[next_index]
  next_index = next_index + step
  if next_index > #requests then
    next_index = next_index - #requests
  end
  return wrk.format("POST", "/channels/sms/twilio", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = r[1],
  }, r[2])
end
