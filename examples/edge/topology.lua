-- The seed article's three-node edge cluster, on loopback.
-- Start each node in its own terminal (from the repository root):
--   build/clusterlua --name node1@127.0.0.1:4371 --cookie edge-servers --admin 127.0.0.1:9201 examples/edge/topology.lua
--   build/clusterlua --name node2@127.0.0.1:4372 --cookie edge-servers --admin 127.0.0.1:9202 examples/edge/topology.lua
--   build/clusterlua --name node3@127.0.0.1:4373 --cookie edge-servers --admin 127.0.0.1:9203 examples/edge/topology.lua
return {
  cluster = "edge-servers",
  topologies = {
    clusters1 = {
      strategy = "static",
      config = { hosts = { "node1@127.0.0.1:4371", "node2@127.0.0.1:4372", "node3@127.0.0.1:4373" } },
    },
  },
  election = { initial_master_nodes = { "node1", "node2", "node3" } },
  hooks = "hooks.lua",
}
