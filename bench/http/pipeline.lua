-- pipeline.lua: wrk's script for the http workload: `-- DEPTH` sends DEPTH requests
-- back to back in one write (no pipelining at 1), and done() prints the exact totals.

-- At depth 1 no request() is defined: wrk then sends its own prebuilt request
-- without calling Lua per request, so the plain rows measure the server, not Lua.
function init(args)
  local depth = tonumber(args[1]) or 1
  if depth > 1 then
    local one = wrk.format(nil, wrk.path)
    local batch = string.rep(one, depth)
    -- wrk sees depth requests in this buffer and expects depth responses.
    request = function()
      return batch
    end
  end
end

-- One line the launcher parses: wrk's own summary rounds bytes and rates.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout))
end
