-- Strategies with real nodes: five gossip nodes in a network namespace find each other
-- with no host list; a hosts file gains a line and the node is connected; a strategy
-- file replaced while nodes are connected reloads without any node_down, and a broken
-- one (syntax error, or a start that throws) leaves the old one running, reported.
local uv = require "uv"
local proc = require "helpers.proc"
local cluster = require "helpers.cluster"
local netns = require "helpers.netns"

local function esc(s) return (s:gsub("%p", "%%%0")) end

describe("gossip with real nodes", function()
  it("five nodes in a network namespace find each other with no host list", function()
    math.randomseed(uv.hrtime())
    local ns = netns.scratch { multicast = true }
    local c
    finally(function()
      if c then c:cleanup() end
      proc.kill_all()
      netns.del(ns)
    end)
    local port = 40000 + math.random(20000)
    c = cluster.new {
      n = 5, netns = ns, cluster = "gossip-spec",
      topologies = ([[{ lan = { strategy = "gossip",
        config = { port = %d, group = "239.255.77.10", interface = "127.0.0.1", interval = 200 } } }]]):format(port),
    }
    c:start_all()
    local ok = proc.wait_until(c:all_connected({ 1, 2, 3, 4, 5 }), 20000)
    assert(ok, "not all connected:\n" .. c:outputs())
    assert(c:wait_master(15000), "no master:\n" .. c:outputs())
    for i = 1, 5 do assert.is_nil(c.nodes[i]:find_line "EVENT node_down", c.nodes[i]:output()) end
    c:cleanup()
    c = nil
    assert(netns.del(ns))
  end)
end)

describe("hosts_file with real nodes", function()
  it("connects a node once a line naming it is appended", function()
    local c = cluster.new {
      n = 2,
      initial = 1,
      topologies = [[{ file = { strategy = "hosts_file", config = { path = HOSTS, poll_interval = 1000 } } }]],
    }
    finally(function() c:cleanup() end)
    local hosts = c.dir .. "/hosts"
    -- both nodes read this file: while it names neither, nobody dials anybody
    proc.write(hosts, "# nodes of the spec cluster\n")
    -- the topology names the file by absolute path (relative ones are relative to the cwd)
    local src = assert(io.open(c.topology)):read "*a"
    cluster.write(c.topology, (src:gsub("HOSTS", ("%q"):format(hosts))))
    c:start_all()
    assert(c:wait_master(10000, { true }), c:outputs())
    -- marker: a line naming a node that does not run; once both nodes have tried to dial
    -- it, they have read the file that named neither of them, and acted on it
    local ghost = ("ghost@127.0.0.1:%d"):format(cluster.free_port())
    proc.write(hosts, "# nodes of the spec cluster\n" .. ghost .. "\n")
    for i = 1, 2 do
      assert(c.nodes[i]:wait_for_line("unable to connect to " .. esc(ghost), 10000, "stderr"), c:outputs())
    end
    assert.is_nil(c:connected(1)[c.names[2]])
    assert.is_nil(c:connected(2)[c.names[1]])
    local f = assert(io.open(hosts, "a"))
    f:write(c.names[2], "\n")
    f:close()
    assert(c.nodes[1]:wait_for_line("EVENT node_up " .. esc(c.names[2]), 10000), c:outputs())
    assert(proc.wait_until(c:all_connected({ 1, 2 }), 10000), c:outputs())
  end)
end)

describe("reloading a strategy with real nodes", function()
  local STRATEGY = [[
-- VERSION
local M = {}
local hosts = { %s }
function M.validate(config) return true end
function M.start(ctx, config, state)
  ctx.log("info", "strategy VERSION started" .. (state and (" with state from " .. state.v) or ""))
  BODY
  ctx.set_nodes(hosts)
end
function M.stop(ctx) return { v = "VERSION" } end
return M
]]

  local function strategy_src(c, version, body)
    local hosts = {}
    for i, n in ipairs(c.names) do hosts[i] = ("%q"):format(n) end
    return (STRATEGY:format(table.concat(hosts, ", ")):gsub("VERSION", version):gsub("BODY", body or ""))
  end

  -- replace the file the way editors and deploy tools do: write aside, rename over
  local function replace(path, text)
    proc.write(path .. ".new", text)
    assert(os.rename(path .. ".new", path))
  end

  it("swaps in a new version with no node_down; a broken one leaves the old running", function()
    local c = cluster.new {
      n = 3,
      topologies = [[{ mine = { strategy = "mine.lua" } }]],
    }
    finally(function() c:cleanup() end)
    local path = c.dir .. "/mine.lua"
    proc.write(path, strategy_src(c, "v1"))
    c:start_all()
    assert(c:wait_master(15000), c:outputs())
    assert(proc.wait_until(c:all_connected({ 1, 2, 3 }), 10000), c:outputs())
    local marks = {}
    for i = 1, 3 do marks[i] = #c.nodes[i].lines + 1 end

    -- a new version, while connected: reloaded everywhere, state handed over
    replace(path, strategy_src(c, "v2"))
    for i = 1, 3 do
      assert(c.nodes[i]:wait_for_line("EVENT reloaded .*mine", 10000, nil, marks[i]), c:outputs())
      assert(c.nodes[i]:wait_for_line("strategy v2 started with state from v1", 5000, nil, marks[i]), c:outputs())
    end

    -- a syntax error: reported, v2 keeps running
    for i = 1, 3 do marks[i] = #c.nodes[i].lines + 1 end
    replace(path, strategy_src(c, "v3") .. "\nthis is not lua (\n")
    for i = 1, 3 do
      assert(c.nodes[i]:wait_for_line("EVENT strategy_error reload .*mine%.lua", 10000, nil, marks[i]), c:outputs())
      assert.is_nil(c.nodes[i]:find_line("strategy v3 started", nil, marks[i]))
    end

    -- a start that throws: reported, and the old version is put back
    for i = 1, 3 do marks[i] = #c.nodes[i].lines + 1 end
    replace(path, strategy_src(c, "v4", 'error("v4 refuses to start")'))
    for i = 1, 3 do
      assert(c.nodes[i]:wait_for_line("EVENT strategy_error reload .*v4 refuses to start", 10000, nil, marks[i]),
        c:outputs())
    end

    -- SIGHUP reloads too, and a good version after all that still works
    for i = 1, 3 do marks[i] = #c.nodes[i].lines + 1 end
    replace(path, strategy_src(c, "v5"))
    -- the file-change reload finishes first
    for i = 1, 3 do
      assert(c.nodes[i]:wait_for_line("EVENT reloaded .*mine", 10000, nil, marks[i]), c:outputs())
      assert(c.nodes[i]:wait_for_line("strategy v5 started", 10000, nil, marks[i]), c:outputs())
    end
    for i = 1, 3 do marks[i] = #c.nodes[i].lines + 1 end
    for i = 1, 3 do c.nodes[i]:kill("sighup") end
    for i = 1, 3 do
      assert(c.nodes[i]:wait_for_line("strategy v5 started with state from v5", 10000, nil, marks[i]), c:outputs())
      assert(c.nodes[i]:wait_for_line("EVENT reloaded .*mine", 10000, nil, marks[i]), c:outputs())
    end

    assert(proc.wait_until(c:all_connected({ 1, 2, 3 }), 10000), c:outputs())
    -- marker: one more reload on every node; its event reaches Lua after any node_down
    for i = 1, 3 do marks[i] = #c.nodes[i].lines + 1 end
    for i = 1, 3 do assert.equal(200, (c:http(i, "POST", "/_reload"))) end
    for i = 1, 3 do
      assert(c.nodes[i]:wait_for_line("EVENT reloaded", 10000, nil, marks[i]), c:outputs())
    end
    for i = 1, 3 do assert.is_nil(c.nodes[i]:find_line "EVENT node_down", c:outputs()) end
  end)
end)
