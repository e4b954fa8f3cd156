-- The wrk script of bench/http.sh and bench/static.sh:
--
--   wrk -t1 -c64 -d8s --latency -s bench/wrk.lua URL [-- DEPTH]
--
-- DEPTH (default 1) > 1 pipelines: each connection writes DEPTH copies of
-- the URL's GET request (as wrk.format() makes it) in one write, and writes
-- the next batch when all DEPTH answers have arrived (the TechEmpower
-- pipeline.lua pattern). wrk counts every *response* it parses as one
-- request (wrk.c: response_complete), and learns DEPTH by parsing the
-- string request() returns (script_verify_request), so its request count
-- and rate are responses, not batches: nothing to multiply. Latency is
-- recorded once per batch (first byte of the batch written to its last
-- answer read).
--
-- done() prints one line of key=value pairs for the scripts:
--   requests duration_us bytes req_per_s p50_us p99_us errors_connect
--   errors_read errors_write errors_status errors_timeout

function init(args)
  local depth = tonumber(args[1]) or 1
  if depth > 1 then
    local r = {}
    for i = 1, depth do
      r[i] = wrk.format()
    end
    local batch = table.concat(r)
    -- A global request() makes wrk call it per write ("dynamic" mode).
    request = function()
      return batch
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "requests=%d duration_us=%d bytes=%d req_per_s=%.1f p50_us=%d p99_us=%d " ..
    "errors_connect=%d errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
