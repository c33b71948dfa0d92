-- Switch a local service to read-only while this node has no quorum. The "service" here
-- is a mode file next to the node's data; point the commands at your own service.
local mode = (os.getenv "RECOVERY_MODE_FILE") or "/tmp/clusterlua-recovery-mode"
return require("clusterlua.recovery").on_quorum {
  lost = { "sh", { "-c", "echo read-only > " .. mode } },
  regained = { "sh", { "-c", "echo read-write > " .. mode } },
  timeout_ms = 5000,
}
