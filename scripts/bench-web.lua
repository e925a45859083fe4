-- wrk script for scripts/bench-web.sh: counts responses whose status is not 2xx (wrk itself
-- counts only statuses >= 400, so a redirect to the login page would pass unnoticed) and, when
-- the run ends, prints one machine-readable line:
--
--   BENCH requests=N duration_s=S rps=R p50_ms=A p95_ms=B p99_ms=C max_ms=D non2xx=E
--         first_non2xx=F socket_errors=G
--
-- Latencies are wrk's (time from sending a request to reading its whole response, per
-- connection, closed loop). The session cookie comes from wrk's command line (-H).

-- Every thread runs in its own Lua state; setup() keeps a handle on each so that done() can
-- add up their counters.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   non2xx = 0
   first_non2xx = 0
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_non2xx == 0 then
         first_non2xx = status
      end
   end
end

function done(summary, latency, requests)
   local bad, first = 0, 0
   for _, thread in ipairs(threads) do
      bad = bad + thread:get("non2xx")
      local status = thread:get("first_non2xx")
      if first == 0 and status ~= 0 then
         first = status
      end
   end
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local seconds = summary.duration / 1e6
   local ms = function(us) return us / 1000 end
   io.write(string.format(
      "BENCH requests=%d duration_s=%.3f rps=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f "
         .. "max_ms=%.2f non2xx=%d first_non2xx=%d socket_errors=%d\n",
      summary.requests, seconds, summary.requests / seconds,
      ms(latency:percentile(50)), ms(latency:percentile(95)), ms(latency:percentile(99)),
      ms(latency.max), bad, first, socket_errors))
end
