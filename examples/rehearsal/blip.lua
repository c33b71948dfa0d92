-- A rehearsal scenario (docs/rehearsal.md) for an exclude_after_grace setup:
--   build/clusterlua sim examples/recovery/exclude_after_grace/topology.lua --scenario examples/rehearsal/blip.lua
-- holds (grace 5 s), while
--   build/clusterlua sim examples/rehearsal/short_grace/topology.lua --scenario examples/rehearsal/blip.lua
-- fails: with a 200 ms grace a one-second network blip excludes node3 from voting.
return {
  duration = "1m",
  faults = {
    -- node3 cannot reach the others for one second, twice
    { at = "20s", isolate = "node3", heal = "21s" },
    { at = "40s", isolate = "node3", heal = "41s" },
  },
  expect = {
    no_exclusion_for_a_blip = function(h)
      for _, e in ipairs(h.filter { kind = "log" }) do
        if e.msg:find "excluded from voting" then
          return false, ("%s: %s (a blip of 1 s, shorter than the grace period)"):format(e.node, e.msg), e.t
        end
      end
      return true
    end,
    node3_keeps_up_with_the_master = function(h)
      -- after each blip node3 hears of the master again
      local back = h.filter { kind = "master", node = "node3", after = h.time "41s" }
      if #back == 0 then return false, "node3 never saw a master after the second blip" end
      return true
    end,
  },
}
