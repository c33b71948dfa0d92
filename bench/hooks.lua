-- Hooks of every clusterlua node the benchmark starts: each event is one line on stdout,
-- "EVENT <name> <args...> at=<µs>", which bench/run.lua stamps on arrival (the same way it
-- stamps the lines of the Erlang and Serf nodes). at= is uv.hrtime() / 1000 when the hook
-- ran: CLOCK_MONOTONIC, the driver's clock too; row 6 stops on it (docs/benchmarks.md says
-- why: 20 nodes forming saturate the machine, and the pipe and the driver's wake-up then
-- add tens of ms to the arrival stamp). With BENCH_LOAD set, the node also loads the
-- message benchmark module (bench/load.lua), as a user's application would be a module.
local uv = require "uv"
local function out(...)
  local t = {}
  for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
  io.stdout:write("EVENT ", table.concat(t, " "), (" at=%.0f\n"):format(uv.hrtime() / 1000))
  io.stdout:flush()
end
local dir = os.getenv "BENCH_DIR"
if dir and os.getenv "BENCH_LOAD" then
  package.path = dir .. "/?.lua;" .. package.path
  require "load"
end
return {
  node_up = function(n) out("node_up", n) end,
  node_down = function(n, r) out("node_down", n, r) end,
  master_changed = function(new, old, term) out("master_changed", new, old, term) end,
}
