-- Recovery recipe example: exclude_after_grace (see README.md in this directory's parent).
return {
  cluster = "recovery-exclude_after_grace",
  topologies = {
    local3 = {
      strategy = "static",
      config = { hosts = { "node1@127.0.0.1:4381", "node2@127.0.0.1:4382", "node3@127.0.0.1:4383" } },
    },
  },
  election = { initial_master_nodes = { "node1", "node2", "node3" } },
  hooks = "hooks.lua",
}
