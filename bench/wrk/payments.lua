-- wrk script: POST /v1/payments with a unique Idempotency-Key on every request, as one user paying another.
-- Used by `bench/load.sh wrk`, which sets these from `rampay-load setup`:
--   RAMPAY_TOKEN     bearer token of the paying user
--   RAMPAY_FROM      the paying wallet's account id
--   RAMPAY_TO        the receiving account id
--   RAMPAY_CURRENCY  default USD
--   RAMPAY_RUN       prefix that makes keys unique across runs (default: the time)
-- By hand: eval "$(dotnet bench/RamPay.Load/bin/Release/net10.0/rampay-load.dll setup --http URL)";
--          wrk -s bench/wrk/payments.lua -t2 -c16 -d10s --latency URL

local threads = {}
local thread_count = 0

-- Runs once per thread in the main Lua state: gives each thread an id so keys never collide between threads.
function setup(thread)
  thread:set("thread_id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local token = os.getenv("RAMPAY_TOKEN")
  local from = os.getenv("RAMPAY_FROM")
  local to = os.getenv("RAMPAY_TO")
  if not token or not from or not to then
    error("set RAMPAY_TOKEN, RAMPAY_FROM and RAMPAY_TO (see the header of payments.lua)")
  end
  local currency = os.getenv("RAMPAY_CURRENCY") or "USD"
  local run = os.getenv("RAMPAY_RUN") or tostring(os.time())
  key_prefix = "wrk-" .. run .. "-" .. thread_id .. "-"
  sequence = 0
  created = 0
  refused = 0
  auth = "Bearer " .. token
  body = string.format('{"from_account":%s,"to_account":%s,"amount":1,"currency":"%s"}', from, to, currency)
end

function request()
  sequence = sequence + 1
  return wrk.format("POST", "/v1/payments", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = auth,
    ["Idempotency-Key"] = key_prefix .. sequence,
  }, body)
end

function response(status, headers, body)
  if status == 201 then created = created + 1 else refused = refused + 1 end
end

function done(summary, latency, requests)
  local total_created, total_refused = 0, 0
  for _, thread in ipairs(threads) do
    total_created = total_created + thread:get("created")
    total_refused = total_refused + thread:get("refused")
  end
  io.write(string.format("payments: %d created (201), %d refused\n", total_created, total_refused))
end
