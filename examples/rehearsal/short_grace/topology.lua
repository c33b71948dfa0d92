-- A deliberately wrong recovery setup for the rehearsal example (docs/rehearsal.md): the
-- same three nodes as examples/recovery/exclude_after_grace, but a grace period (200 ms)
-- shorter than the failure detector's timeout (400 ms), so a network blip of a second
-- takes a node out of the voting configuration. examples/rehearsal/blip.lua catches it:
--   build/clusterlua sim examples/rehearsal/short_grace/topology.lua --scenario examples/rehearsal/blip.lua
return {
  cluster = "recovery-short-grace",
  topologies = {
    local3 = {
      strategy = "static",
      config = { hosts = { "node1@127.0.0.1:4411", "node2@127.0.0.1:4412", "node3@127.0.0.1:4413" } },
    },
  },
  election = { initial_master_nodes = { "node1", "node2", "node3" } },
  hooks = "hooks.lua",
}
