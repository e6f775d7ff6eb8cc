-- wrk script of benchmarks/run.py: replays prepared requests, prints one JSON line.
--
-- The file named by the first argument holds complete HTTP/1.1 requests (request line,
-- headers with the bearer token, Content-Length, JSON or JWE body) separated by NUL
-- bytes; run.py writes it. Each wrk thread cycles through them from its own offset, so
-- requests spread over many subjects and the work per request is only wrk's own copy.

local requests = {}
local position = 1

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local all = file:read("*a")
  file:close()
  for piece in string.gmatch(all, "([^%z]+)") do
    requests[#requests + 1] = piece
  end
  assert(#requests > 0, "no requests in " .. args[1])
  position = (tonumber(args[2] or "0") or 0) % #requests + 1
end

function request()
  local raw = requests[position]
  position = position % #requests + 1
  return raw
end

function done(summary, latency, requests_)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"mean_us": %.1f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
