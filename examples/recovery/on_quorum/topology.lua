-- Recovery recipe example: on_quorum (see README.md in this directory's parent).
return {
  cluster = "recovery-on_quorum",
  topologies = {
    local3 = {
      strategy = "static",
      config = { hosts = { "node1@127.0.0.1:4391", "node2@127.0.0.1:4392", "node3@127.0.0.1:4393" } },
    },
  },
  election = { initial_master_nodes = { "node1", "node2", "node3" } },
  hooks = "hooks.lua",
}
