-- A rehearsal scenario (docs/rehearsal.md) for a restart_on_down setup that watches node2:
--   build/clusterlua sim examples/recovery/restart_on_down/topology.lua --scenario examples/rehearsal/planned_stop.lua
-- holds: a crash of node2 restarts it once, a planned stop (SIGTERM) does not, while
--   build/clusterlua sim examples/rehearsal/restart_left/topology.lua --scenario examples/rehearsal/planned_stop.lua
-- fails: its hooks restart node2 after it was stopped on purpose.
local function restarts(h, after, before)
  local n = 0
  for _, c in ipairs(h.commands) do
    if c.t >= after and c.t < before then n = n + 1 end
  end
  return n
end

return {
  duration = "2m",
  faults = {
    { at = "20s", kill = "node2", heal = "25s" },  -- a crash: the service is restarted
    { at = "60s", stop = "node2" },                -- an operator stops node2 for good
  },
  expect = {
    a_crash_restarts_once_per_node = function(h)
      -- node1 and node3 each restart node2's service once after the crash
      local n = restarts(h, h.time "20s", h.time "60s")
      if n ~= 2 then return false, ("%d restarts after the crash, expected 2 (one per survivor)"):format(n), h.time "25s" end
      return true
    end,
    a_planned_stop_is_left_alone = function(h)
      for _, c in ipairs(h.commands) do
        if c.t >= h.time "60s" then
          return false, ("%s ran %s %s after node2 was stopped on purpose"):format(c.node, c.cmd, table.concat(c.args, " ")),
            c.t
        end
      end
      return true
    end,
  },
}
