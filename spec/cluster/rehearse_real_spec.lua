-- The same files in both worlds: a topology with a user strategy that reaches the world
-- only through its ctx (examples/custom_strategy/json_nodes.lua) and a hooks file form a
-- cluster of real nodes, and `clusterlua sim` rehearses the very same files unchanged.
local proc = require "helpers.proc"
local cluster = require "helpers.cluster"
local cjson = require "cjson.safe"

local function esc(s) return (s:gsub("%p", "%%%0")) end

describe("a user strategy using only ctx", function()
  it("runs unchanged on real nodes and in the rehearsal", function()
    local strategy = proc.root .. "/examples/custom_strategy/json_nodes.lua"
    local c = cluster.new {
      topologies = ([[{ provisioned = { strategy = %q, config = { path = NODES, interval = 200 } } }]]):format(strategy),
    }
    finally(function() c:cleanup() end)
    -- the node list the strategy reads, written next to the topology
    local nodes_json = c.dir .. "/nodes.json"
    cluster.write(nodes_json, assert(cjson.encode { nodes = c.names }))
    local src = assert(io.open(c.topology)):read "*a"
    cluster.write(c.topology, (src:gsub("NODES", ("%q"):format(nodes_json))))

    -- real nodes
    c:start_all()
    for i = 1, 3 do
      for k = 1, 3 do
        if k ~= i then assert(c.nodes[i]:wait_for_line("EVENT node_up " .. esc(c.names[k]), 10000), c:outputs()) end
      end
      assert(c.nodes[i]:wait_for_line("EVENT master_changed node", 10000), c:outputs())
    end

    -- the same topology, strategy and hooks, rehearsed
    local code, out, err = proc.run(proc.bin, { "sim", c.topology, "--duration", "2m" }, { timeout = 60000 })
    assert.equal(0, code, tostring(out) .. tostring(err))
    -- the hooks' own output, as they print it on the real nodes
    for i = 1, 3 do
      assert.matches("node" .. i .. "  stdout: EVENT master_changed node", out)
    end
    assert.matches("stdout: EVENT node_up node2@127%.0%.0%.1:", out)
    assert.matches("\nok seed 1:", out)
  end)
end)
