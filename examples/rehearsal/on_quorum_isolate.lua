-- A rehearsal scenario for examples/recovery/on_quorum (docs/rehearsal.md):
--   build/clusterlua sim examples/recovery/on_quorum/topology.lua --scenario examples/rehearsal/on_quorum_isolate.lua
-- node1 is cut off from the two others from 30 s to 60 s. Its on_quorum hooks must switch
-- its service to read-only once and back to read-write once; the majority side keeps its
-- quorum, so nothing runs there.
local function only(list, node)
  local out = {}
  for _, c in ipairs(list) do
    if c.node == node then out[#out + 1] = c end
  end
  return out
end

return {
  duration = "2m",
  faults = {
    { at = "30s", isolate = "node1", heal = "60s" },
  },
  -- the commands the hooks run are recorded, not run; every one "succeeds"
  commands = { sh = 0 },
  expect = {
    node1_read_only_then_read_write = function(h)
      local c = only(h.commands, "node1")
      if #c ~= 2 then return false, ("node1 ran %d commands, expected 2"):format(#c) end
      if not c[1].args[2]:find "read%-only" then return false, "the first command is not the read-only switch" end
      if not c[2].args[2]:find "read%-write" then return false, "the second command is not the read-write switch" end
      if c[1].t < h.time "30s" or c[2].t < h.time "60s" then return false, "a switch ran before its fault", c[1].t end
      return true
    end,
    nothing_runs_on_the_majority = function(h)
      for _, n in ipairs { "node2", "node3" } do
        local c = only(h.commands, n)
        if #c > 0 then return false, ("%s ran %s"):format(n, c[1].cmd), c[1].t end
      end
      return true
    end,
    no_hook_errors = function(h)
      if #h.hook_errors > 0 then return false, h.hook_errors[1].error, h.hook_errors[1].t end
      return true
    end,
  },
}
