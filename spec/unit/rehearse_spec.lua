-- `clusterlua sim`: the examples rehearse green, a scenario's failing expectation exits 1
-- and names itself, the seed and the time, the same seed gives the same bytes, and
-- mistakes in the command line or the files exit 2 with a message that names them.
-- The binary is run as a helper process (no node: the rehearsal simulates them).
local proc = require "helpers.proc"
local cjson = require "cjson.safe"

local ROOT = proc.root

local function sim(args, timeout)
  local argv = { "sim" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local code, out, err = proc.run(proc.bin, argv, { cwd = ROOT, timeout = timeout or 60000 })
  assert(code, out) -- out holds the timeout's message when there is no code
  return code, out, err
end

local function ex(path) return ROOT .. "/examples/" .. path end

describe("clusterlua sim", function()
  it("rehearses examples/edge green under the default nemeses and prints how to replay", function()
    local code, out, err = sim { ex "edge/topology.lua", "--duration", "3m" }
    assert.equal(0, code, out .. err)
    assert.matches("3 nodes %(node1, node2, node3%), seed 1, 3m of virtual time, default nemeses", out)
    assert.matches("\nok seed 1: at most one master per term", out)
    assert.matches("FAULT ", out)
    assert.matches("\nreplay: clusterlua sim [^\n]*edge/topology.lua %-%-seed 1 %-%-duration 3m\n", out)
  end)

  it("prints one node's timeline with --node", function()
    local code, out, err = sim { ex "edge/topology.lua", "--duration", "2m", "--node", "node2" }
    assert.equal(0, code, out .. err)
    assert.matches("node2  node_up", out)
    assert.is_nil(out:find("\n%s+%d+:%d+%.%d+  node[13]  "))
    assert.matches("FAULT", out)
  end)

  it("rehearses every example of examples/recovery green, on several seeds", function()
    for _, name in ipairs { "exclude_after_grace", "on_quorum", "restart_on_down" } do
      local code, out, err = sim { ex("recovery/" .. name .. "/topology.lua"), "--seeds", "3", "--duration", "3m" }
      assert.equal(0, code, name .. ": " .. out .. err)
      for s = 1, 3 do assert.matches("ok seed " .. s .. ":", out) end
    end
  end)

  it("records on_quorum's commands: node1 cut off from 30 s to 60 s runs read-only, then read-write, the others nothing",
    function()
      local code, out, err = sim { ex "recovery/on_quorum/topology.lua", "--scenario", ex "rehearsal/on_quorum_isolate.lua",
        "--json" }
      assert.equal(0, code, out .. err)
      local doc = assert(cjson.decode(out))
      local run = doc.runs[1]
      assert.is_true(run.ok)
      local by_node = {}
      for _, e in ipairs(run.events) do
        if e.kind == "exec" then
          by_node[e.node] = by_node[e.node] or {}
          table.insert(by_node[e.node], e)
        end
      end
      assert.equal(2, #by_node.node1)
      assert.equal("sh", by_node.node1[1].cmd)
      assert.matches("read%-only", by_node.node1[1].args[2])
      assert.matches("read%-write", by_node.node1[2].args[2])
      assert.is_true(by_node.node1[1].t >= 30000 and by_node.node1[1].t < 60000)
      assert.is_true(by_node.node1[2].t >= 60000)
      assert.is_nil(by_node.node2)
      assert.is_nil(by_node.node3)
      for _, x in ipairs(run.expectations) do assert.is_true(x.held, x.name) end
    end)

  it("rehearses a workload of metadata updates and calls (examples/rehearsal/counter) on several seeds", function()
    -- its updates run into failing disk writes from inside a node's own Lua, too
    local code, out, err = sim { ex "rehearsal/counter/topology.lua", "--nodes", "5", "--seeds", "4", "--liveness" }
    assert.equal(0, code, out .. err)
    assert.matches("4 of 4 seeds ok", out)
  end)

  it("catches a wrong hooks file with a scenario: exit 1, the expectation, the seed and the time", function()
    -- the right grace holds ...
    local code, out, err = sim { ex "recovery/exclude_after_grace/topology.lua", "--scenario", ex "rehearsal/blip.lua" }
    assert.equal(0, code, out .. err)
    -- ... a grace shorter than the failure detector does not
    code, out, err = sim { ex "rehearsal/short_grace/topology.lua", "--scenario", ex "rehearsal/blip.lua" }
    assert.equal(1, code, out .. err)
    assert.matches('FAILED seed 1: expectation "no_exclusion_for_a_blip" does not hold at%s+0:20%.%d%d%d: node1: ', out)
    assert.matches("the events leading up to it:", out)
    assert.matches("FAULT partition {node3} | {node1,node2}", out)
    assert.matches("\nreplay: clusterlua sim [^\n]*short_grace/topology.lua %-%-seed 1 %-%-scenario [^\n]*blip.lua", out)
  end)

  it("catches a recovery hook that restarts a node that left on purpose", function()
    local code, out, err = sim { ex "recovery/restart_on_down/topology.lua", "--scenario", ex "rehearsal/planned_stop.lua" }
    assert.equal(0, code, out .. err)
    assert.matches("stopped %(SIGTERM%)", out)
    assert.matches("node_down node2 %(left%)", out)
    code, out, err = sim { ex "rehearsal/restart_left/topology.lua", "--scenario", ex "rehearsal/planned_stop.lua" }
    assert.equal(1, code, out .. err)
    assert.matches('FAILED seed 1: expectation "a_planned_stop_is_left_alone" does not hold at%s+1:00%.%d%d%d: node%d ran '
      .. "systemctl restart proxy", out)
  end)

  it("gives the same bytes for the same seed, on stdout and stderr", function()
    local args = { ex "edge/topology.lua", "--nodes", "5", "--seed", "3", "--duration", "3m" }
    local c1, o1, e1 = sim(args)
    local c2, o2, e2 = sim(args)
    assert.equal(c1, c2)
    assert.equal(o1, o2)
    assert.equal(e1, e2)
    local j1 = select(2, sim { ex "recovery/restart_on_down/topology.lua", "--seeds", "2", "--duration", "2m", "--json" })
    local j2 = select(2, sim { ex "recovery/restart_on_down/topology.lua", "--seeds", "2", "--duration", "2m", "--json" })
    assert.equal(j1, j2)
    -- and another seed gives another run
    local _, o3 = sim { ex "edge/topology.lua", "--nodes", "5", "--seed", "4", "--duration", "3m" }
    assert.are_not.equal(o1, o3)
  end)

  it("--liveness leaves the faults on a minority for good and still settles the rest", function()
    local code, out, err = sim { ex "edge/topology.lua", "--nodes", "5", "--seeds", "6", "--liveness" }
    assert.equal(0, code, out .. err)
    for s = 1, 6 do assert.matches("ok seed " .. s .. ":", out) end
    assert.matches("left down: %-%-liveness", out)
  end)

  it("rehearses the gossip strategy over a simulated LAN (examples/gossip)", function()
    local code, out, err = sim { ex "gossip/topology.lua", "--nodes", "4", "--duration", "2m" }
    assert.equal(0, code, out .. err)
    assert.matches("node4  node_up node1", out)
    assert.matches("\nok seed 1:", out)
  end)

  it("runs a strategy that reaches the world only through ctx unchanged (examples/custom_strategy)", function()
    local code, out, err = sim { ex "custom_strategy/topology.lua", "--duration", "2m" }
    assert.equal(0, code, out .. err)
    assert.matches("node_up node2", out)
  end)

  it("serves the files a scenario manages (a hosts file that exists nowhere) and edits them as faults", function()
    local dir = proc.tmpdir()
    proc.write(dir .. "/topology.lua", ([[
      return {
        cluster = "hf",
        topologies = { hf = { strategy = "hosts_file", config = { path = %q, poll_interval = 1000 } } },
        election = { initial_master_nodes = { "node1", "node2", "node3" } },
      }]]):format(dir .. "/hosts"))
    proc.write(dir .. "/scenario.lua", ([[
      local path = %q
      return {
        duration = "30s",
        files = { [path] = "node1@127.0.0.1:4371\nnode2@127.0.0.1:4372\nnode3@127.0.0.1:4373\n" },
        faults = { { at = "10s", file = path, content = "node1@127.0.0.1:4371\nbad line here\n", heal = "20s" } },
        expect = {
          formed = function(h)
            return #h.filter { kind = "node_up", node = "node1", before = h.time "10s" } == 2, "node1 did not see both peers"
          end,
          bad_line_reported = function(h)
            return h.count { kind = "strategy_error", after = h.time "10s" } == 3, "not one strategy error per node"
          end,
        },
      }]]):format(dir .. "/hosts"))
    local code, out, err = sim { dir .. "/topology.lua", "--scenario", dir .. "/scenario.lua" }
    proc.rmtree(dir)
    assert.equal(0, code, out .. err)
    assert.matches("FAULT [^\n]*/hosts rewritten", out)
    assert.matches("expectation bad_line_reported: held", out)
  end)

  it("answers DNS strategies from the scenario and names nodes that share a short name in full", function()
    local code, out, err = sim { ex "dns/topology.lua", "--scenario", ex "rehearsal/dns.lua" }
    assert.equal(0, code, out .. err)
    assert.matches("node@127.0.0.1:4391  node_up node@127.0.0.3:4391", out)
    assert.matches("FAULT DNS fails", out)
    assert.matches("expectation a_dns_outage_drops_nobody: held", out)
  end)

  it("answers HTTP from the scenario to a strategy that asks an inventory service", function()
    local dir = proc.tmpdir()
    proc.write(dir .. "/inventory.lua", [[
      local http = require "clusterlua.http"
      local cjson = require "cjson.safe"
      return {
        validate = function(c) return type(c.url) == "string" or nil, "url: expected a string" end,
        start = function(ctx, config)
          local function poll()
            ctx.spawn(function()
              local status, body = http.request("GET", config.url, { timeout = 1000 })
              if status ~= 200 then return ctx.error("inventory: " .. tostring(body)) end
              ctx.set_nodes(cjson.decode(body).nodes)
            end)
          end
          poll()
          ctx.every(2000, poll)
        end,
        stop = function() end,
      }]])
    proc.write(dir .. "/topology.lua", [[
      return { cluster = "inv", topologies = { inv = { strategy = "inventory.lua", config = { url = "http://inv.test/nodes" } } },
        election = { initial_master_nodes = { "node1", "node2", "node3" } } }]])
    proc.write(dir .. "/scenario.lua", [[
      return { duration = "20s",
        http = { ["http://inv.test/nodes"] = { status = 200,
          body = '{"nodes":["node1@127.0.0.1:4371","node2@127.0.0.1:4372","node3@127.0.0.1:4373"]}' } },
        expect = { a_master = function(h) return #h.masters > 0, "no master" end } }]])
    local code, out, err = sim { dir .. "/topology.lua", "--scenario", dir .. "/scenario.lua" }
    -- without the scenario nobody answers: the strategy reports it, the cluster cannot form
    local code2, out2 = sim { dir .. "/topology.lua", "--duration", "5s" }
    proc.rmtree(dir)
    assert.equal(0, code, out .. err)
    assert.matches("expectation a_master: held", out)
    assert.equal(1, code2)
    assert.matches("strategy error: inventory: ECONNREFUSED: no answer scripted for http://inv.test/nodes", out2)
  end)

  it("aborts a hook that never yields at its time budget, as a real node does, instead of hanging", function()
    local dir = proc.tmpdir()
    proc.write(dir .. "/topology.lua", [[
      return { cluster = "spin", topologies = { s = { strategy = "static",
        config = { hosts = { "node1@127.0.0.1:4371", "node2@127.0.0.1:4372", "node3@127.0.0.1:4373" } } } },
        election = { initial_master_nodes = { "node1", "node2", "node3" } }, hooks = "hooks.lua" }]])
    proc.write(dir .. "/hooks.lua", [[
      return { node_up = { spin = { fn = function() local x = 0 while true do x = x + 1 end end, budget_ms = 50 } } }]])
    local code, out, err = sim({ dir .. "/topology.lua", "--duration", "30s" }, 120000)
    proc.rmtree(dir)
    assert.equal(0, code, out .. err)
    assert.matches("hook_abort spin %(node_up%): EBUDGET: hook spin %(node_up%) ran 50 ms without yielding", out)
  end)

  it("runs a hook whose timer never fires (math.huge, 0/0) without a float-to-integer overflow", function()
    -- the next deadline a node's Lua returns is a Lua number: inf or NaN must not reach
    -- an integer cast (undefined behaviour: make test-asan's UBSan stops on it)
    local dir = proc.tmpdir()
    proc.write(dir .. "/topology.lua", [[
      return { cluster = "huge", topologies = { s = { strategy = "static",
        config = { hosts = { "node1@127.0.0.1:4371", "node2@127.0.0.1:4372", "node3@127.0.0.1:4373" } } } },
        election = { initial_master_nodes = { "node1", "node2", "node3" } }, hooks = "hooks.lua" }]])
    proc.write(dir .. "/hooks.lua", [[
      local uv = require "luv"
      return { node_up = function()
        uv.new_timer():start(math.huge, 0, function() end)
        uv.new_timer():start(0/0, 0, function() end)
      end }]])
    local code, out, err = sim({ dir .. "/topology.lua", "--duration", "30s" }, 120000)
    proc.rmtree(dir)
    assert.equal(0, code, out .. err)
    assert.matches("ok seed 1", out)
  end)

  it("stops with exit 2 when a scenario's own function fails", function()
    local dir = proc.tmpdir()
    proc.write(dir .. "/s.lua", [[return { duration = "1m", faults = { { at = "30s", isolate = "node1", heal = "40s" } },
      commands = function() error("oops in my commands") end }]])
    local code, out = sim { ex "recovery/on_quorum/topology.lua", "--scenario", dir .. "/s.lua" }
    proc.rmtree(dir)
    assert.equal(2, code, out)
    assert.matches("its exec answer failed for node1 sh: [^\n]*oops in my commands", out)
  end)

  it("records the files a hook writes instead of writing them, and reads them back from memory", function()
    local dir = proc.tmpdir()
    local target = dir .. "/written-by-a-hook"
    proc.write(dir .. "/topology.lua", [[
      return { cluster = "w", topologies = { s = { strategy = "static",
        config = { hosts = { "node1@127.0.0.1:4371", "node2@127.0.0.1:4372", "node3@127.0.0.1:4373" } } } },
        election = { initial_master_nodes = { "node1", "node2", "node3" } }, hooks = "hooks.lua" }]])
    proc.write(dir .. "/hooks.lua", ([[
      local cl = require "clusterlua"
      return { master_changed = function(m)
        local f = assert(io.open(%q, "w"))
        f:write("master ", tostring(m), "\n")
        f:close()
        local g = assert(io.open(%q))
        cl.log("info", "read back " .. g:read "*l")
        g:close()
      end }]]):format(target, target))
    local code, out, err = sim { dir .. "/topology.lua", "--duration", "10s" }
    local exists = io.open(target) ~= nil
    proc.rmtree(dir)
    assert.equal(0, code, out .. err)
    assert.is_false(exists)
    assert.matches("wrote [^\n]*written%-by%-a%-hook %(%d+ bytes%) %(recorded, not written%)", out)
    assert.matches("log info: read back master node", out)
  end)

  it("writes a self-contained HTML timeline with one lane per node", function()
    local dir = proc.tmpdir()
    local path = dir .. "/t.html"
    local code, out, err = sim { ex "edge/topology.lua", "--duration", "2m", "--timeline", path }
    assert.equal(0, code, out .. err)
    local f = assert(io.open(path))
    local html = f:read "*a"
    f:close()
    proc.rmtree(dir)
    assert.matches("<svg", html)
    for _, n in ipairs { "node1", "node2", "node3" } do assert.matches(">" .. n .. "</text>", html) end
    assert.is_nil(html:find("src=", 1, true)) -- nothing fetched from anywhere
    assert.is_nil(html:find("https?://"))
  end)

  it("refuses usage and configuration mistakes with exit 2 and a message that names them", function()
    local dir = proc.tmpdir()
    local bad_scenario = dir .. "/bad.lua"
    proc.write(bad_scenario, 'return { faults = { { at = "10s", kill = "node9" } } }')
    local syntax = dir .. "/syntax.lua"
    proc.write(syntax, "return {")
    local huge_net, nan_net, huge_slow = dir .. "/huge_net.lua", dir .. "/nan_net.lua", dir .. "/huge_slow.lua"
    proc.write(huge_net, 'return { faults = { { at = "10s", net = { delay_ms = { 1, 1e300 } }, heal = "20s" } } }')
    proc.write(nan_net, 'return { faults = { { at = "10s", net = { delay_ms = { 0/0, 2 }, drop = 2 }, heal = "20s" } } }')
    local many, twice = dir .. "/many.lua", dir .. "/twice.lua"
    proc.write(many, 'return { nodes = 100 }')
    local long = dir .. "/long.lua"
    -- a valid name (63 characters at most before '@') past the election's 127 in all
    proc.write(long, ('return { nodes = { "a@%s.%s.hh:1", "b@127.0.0.1:2" } }'):format(("h"):rep(60), ("h"):rep(60)))
    proc.write(twice, 'return { nodes = { "a@127.0.0.1:1", "b@127.0.0.1:2", "a@127.0.0.1:1" } }')
    proc.write(huge_slow, 'return { faults = { { at = "10s", disk = "node1", slow_ms = math.huge, heal = "20s" } } }')
    local cases = {
      { {}, "a topology file is required" },
      { { ex "edge/topology.lua", "--frobnicate" }, "unknown option '%-%-frobnicate'" },
      { { ex "edge/topology.lua", "--seed", "x" }, "%-%-seed: expected a whole number" },
      { { ex "edge/topology.lua", "--duration", "soon" }, "%-%-duration: expected a duration" },
      { { ex "edge/topology.lua", "--seed", "1", "--seeds", "2" }, "either %-%-seed or %-%-seeds" },
      { { dir .. "/missing.lua" }, "missing%.lua" },
      { { ex "edge/topology.lua", "--scenario", bad_scenario }, "faults%[1%]: kill: no simulated node named node9" },
      { { ex "edge/topology.lua", "--scenario", syntax }, "syntax%.lua" },
      { { ex "edge/topology.lua", "--scenario", dir .. "/none.lua" }, "none%.lua" },
      { { ex "edge/topology.lua", "--node", "node7" }, "%-%-node: no simulated node named node7" },
      { { ex "edge/topology.lua", "--scenario", huge_net }, "faults%[1%]: net%.delay_ms: expected milliseconds" },
      { { ex "edge/topology.lua", "--scenario", nan_net }, "faults%[1%]: net%.delay_ms: expected milliseconds" },
      { { ex "edge/topology.lua", "--scenario", huge_slow }, "faults%[1%]: slow_ms: expected milliseconds" },
      { { ex "edge/topology.lua", "--scenario", many }, "100 nodes: a rehearsal simulates at most 64" },
      { { ex "edge/topology.lua", "--scenario", long }, "nodes%[1%]: longer than 127 characters" },
      { { ex "edge/topology.lua", "--scenario", twice }, "nodes%[3%]: a@127%.0%.0%.1:1 is listed twice" },
      { { ex "edge/topology.lua", "--scenario", ex "rehearsal/blip.lua", "--duration", "30s" },
        "faults%[2%]: at 0:40%.000 is not before the end of the run %(30s" },
    }
    for _, c in ipairs(cases) do
      local code, out, err = sim(c[1])
      assert.equal(2, code, table.concat(c[1], " ") .. ": " .. out .. err)
      assert.matches(c[2], err)
      assert.equal("", out)
    end
    proc.rmtree(dir)
  end)
end)
