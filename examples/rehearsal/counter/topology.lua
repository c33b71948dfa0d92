-- A rehearsal example with a workload (docs/rehearsal.md): the master bumps a counter in
-- the cluster's metadata every second (clusterlua.update, an on_master duty), and every
-- node calls each peer it meets (clusterlua.call). Under the default nemeses the checks
-- see the updates commit, fail over and never go back:
--   build/clusterlua sim examples/rehearsal/counter/topology.lua --nodes 5 --seeds 10
return {
  cluster = "rehearsal-counter",
  topologies = {
    local3 = {
      strategy = "static",
      config = { hosts = { "node1@127.0.0.1:4431", "node2@127.0.0.1:4432", "node3@127.0.0.1:4433" } },
    },
  },
  election = { initial_master_nodes = { "node1", "node2", "node3" } },
  hooks = "hooks.lua",
}
