-- Recovery recipe example: restart_on_down (see README.md in this directory's parent).
return {
  cluster = "recovery-restart_on_down",
  topologies = {
    local3 = {
      strategy = "static",
      config = { hosts = { "node1@127.0.0.1:4401", "node2@127.0.0.1:4402", "node3@127.0.0.1:4403" } },
    },
  },
  election = { initial_master_nodes = { "node1", "node2", "node3" } },
  hooks = "hooks.lua",
}
