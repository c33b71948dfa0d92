-- Three nodes on loopback found through a custom strategy (json_nodes.lua, next to
-- this file). See README.md for how to run it.
return {
  cluster = "custom-example",
  topologies = {
    provisioned = {
      -- a path ending in .lua is a strategy file, relative to this topology file
      strategy = "json_nodes.lua",
      -- the JSON path is read by the strategy, relative to the node's working directory
      config = { path = "examples/custom_strategy/nodes.json", interval = 1000 },
    },
  },
  election = { initial_master_nodes = { "node1", "node2", "node3" } },
}
