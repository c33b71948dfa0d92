-- A deliberately wrong recovery setup for the rehearsal example (docs/rehearsal.md):
-- examples/recovery/restart_on_down, but its hooks also restart node2's service when
-- node2 leaves on purpose (reasons include "left"), fighting whoever stopped it.
-- examples/rehearsal/planned_stop.lua catches it:
--   build/clusterlua sim examples/rehearsal/restart_left/topology.lua --scenario examples/rehearsal/planned_stop.lua
return {
  cluster = "recovery-restart-left",
  topologies = {
    local3 = {
      strategy = "static",
      config = { hosts = { "node1@127.0.0.1:4421", "node2@127.0.0.1:4422", "node3@127.0.0.1:4423" } },
    },
  },
  election = { initial_master_nodes = { "node1", "node2", "node3" } },
  hooks = "hooks.lua",
}
