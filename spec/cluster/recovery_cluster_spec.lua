-- The recovery recipes on real nodes (spec/unit/recovery_spec.lua runs them against a
-- fake api): what a node_down's reason means to restart_on_down.
local cluster = require "helpers.cluster"

describe("recovery.restart_on_down on real nodes", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("does not restart for a peer stopped with SIGTERM, and does for one killed", function()
    c = cluster.new { n = 2, hooks = cluster.HOOKS_PRELUDE .. [[
local r = require "clusterlua.recovery"
return r.merge(r.restart_on_down { peer = "node2", cmd = "true", backoff_ms = 1 },
  { node_up = { spec = function(n) out("node_up", n) end },
    node_down = { spec = function(n, why) out("node_down", n, why) end } })
]] }
    c:start_all()
    local n1 = c.nodes[1]
    local esc = function(s) return (s:gsub("%p", "%%%0")) end
    local up = "EVENT node_up " .. esc(c.names[2])
    assert.truthy(n1:wait_for_line(up, 10000))
    c.nodes[2]:kill "sigterm"
    assert.truthy(n1:wait_for_line("EVENT node_down " .. esc(c.names[2]) .. " left", 10000))
    assert.equal(0, (c.nodes[2]:wait_exit(5000)))
    local mark = #n1.lines
    c:start(2)
    assert.truthy(n1:wait_for_line(up, 10000, nil, mark))
    c.nodes[2]:kill "sigkill"
    -- the restart for the kill comes after anything the leave would have caused
    assert.truthy(n1:wait_for_line("restart_on_down %(" .. esc(c.names[2]) .. " closed%): ran true", 10000,
      "stderr"))
    assert.is_nil(n1:find_line("restart_on_down %(.* left%)", "stderr"), n1.stderr)
  end)
end)
