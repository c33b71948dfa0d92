-- Hooks of the edge example: say what happens, in the node's log.
local cl = require "clusterlua"

return {
  node_up = function(node, info)
    cl.log("info", ("node up: %s (rtt %d us)"):format(node, info.rtt_us or 0))
  end,
  node_down = function(node, reason)
    cl.log("info", ("node down: %s (%s)"):format(node, reason))
  end,
}
