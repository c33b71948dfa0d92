-- Restart a local service when node2 goes down, at most once a second at first and
-- backing off to once every 30 s while node2 keeps flapping. Here the "restart" appends
-- a line to a log file; point cmd/args at your service manager.
local r = require "clusterlua.recovery"
local log = (os.getenv "RECOVERY_RESTART_LOG") or "/tmp/clusterlua-recovery-restarts"
return r.merge(
  r.restart_on_down {
    peer = "node2",
    cmd = "sh", args = { "-c", "date +%s.%N >> " .. log },
    backoff_ms = 1000, max_backoff_ms = 30000, timeout_ms = 10000,
  },
  -- a recipe merges with hooks of your own
  { node_down = { log_down = function(node, reason)
    require("clusterlua").log("info", ("node down: %s (%s)"):format(node, reason))
  end } })
