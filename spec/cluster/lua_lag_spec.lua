-- The Lua-lag check end to end: a master whose Lua loop stops answering gives up master
-- duties past election.lua_stepdown_ms, the others elect another master, and it takes
-- part again once Lua answers. The rule's exact bounds: spec/c/test_lua_lag.c.
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

-- the first master blocks its own Lua loop for 3 s (os.execute waits for the child)
local HOOKS = cluster.HOOKS_PRELUDE .. [[
local blocked = false
return {
  master_changed = function(new, old, term)
    out("master_changed", new, old, term)
    if new == cl.self().name and not blocked then
      blocked = true
      out("blocking")
      os.execute("sleep 3")
      out("unblocked")
    end
  end,
}
]]

describe("Lua lag", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("a master whose Lua stops answering gives up master duties; another is elected; it answers again", function()
    c = cluster.new { n = 3, hooks = HOOKS, election = "lua_stepdown_ms = 400" }
    c:start_all()
    local first = c:wait_master(10000)
    assert.truthy(first, "no master elected")
    local fi = c:index_of(first)
    local p = c.nodes[fi]
    assert.truthy(p:wait_for_line("^EVENT blocking$", 5000), "the master's hook did not start blocking")
    -- the control loop answers while Lua is blocked, and reports the wait
    assert.truthy(p:wait_for_line("Lua has not answered for %d+ ms", 3000), "no step-down logged")
    local h = c:health(fi)
    assert.truthy(h and h.lua_lag_ms >= 400, "lua_lag_ms while blocked: " .. tostring(h and h.lua_lag_ms))
    local others = {}
    for i = 1, 3 do others[i] = i ~= fi end
    local second = c:wait_master(5000, others, first)
    assert.truthy(second, "no other master while the first one's Lua was blocked")
    assert.are_not.equal(first, second)
    assert.truthy(p:wait_for_line("^EVENT unblocked$", 5000), "the hook never returned")
    assert.truthy(p:wait_for_line("Lua answers again", 3000), "no recovery logged")
    -- it follows the new master: its hooks hear of it (the queue to Lua works again)
    local pat = ("^EVENT master_changed %s "):format(second:gsub("%p", "%%%0"))
    assert.truthy(p:wait_for_line(pat, 5000), "the recovered node never heard of the new master")
  end)
end)
