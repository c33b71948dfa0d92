-- Wrong on purpose: "left" among the reasons restarts a service its operator stopped.
return require("clusterlua.recovery").restart_on_down {
  peer = "node2",
  cmd = "systemctl", args = { "restart", "proxy" },
  reasons = { "timeout", "closed", "left" },
}
