-- Real nodes on loopback: membership, failure detection, messages and RPC.
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

local HOOKS_RPC = cluster.HOOKS_PRELUDE .. [[
cl.handle("echo", function(v) return v end)
cl.handle("boom", function() error("kaboom") end)
cl.handle("slow", function() cl.sleep(2000) return "late" end)
local seen = {}
cl.handle("seq", function(v) seen[#seen + 1] = v; if v == 1000 then
  local ok = true
  for i = 1, 1000 do if seen[i] ~= i then ok = false end end
  out("seq_done", ok and "in_order" or "out_of_order", #seen)
end end)
return {
  node_up = function(n) out("node_up", n)
    if cl.self().name:match "^node1@" and n:match "^node2@" then
      local v, err = cl.call(n, "echo", { a = 1, b = { "x", "y" } }, { timeout = 2000 })
      out("call_echo", v and v.b[2] or err)
      local _, e2 = cl.call(n, "boom", nil, { timeout = 2000 })
      out("call_boom", e2)
      local _, e3 = cl.call(n, "slow", nil, { timeout = 200 })
      out("call_slow", e3)
      local _, e4 = cl.call(n, "missing", nil, { timeout = 2000 })
      out("call_missing", e4)
      for i = 1, 1000 do assert(cl.send(n, "seq", i)) end
      local info = cl.info(n)
      out("info", info and info.pid or "nil", info and info.version or "nil")
    end
  end,
  node_down = function(n, r) out("node_down", n, r) end,
}
]]

describe("nodes on loopback", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("form a full mesh from one seed and see each other in /_nodes", function()
    c = cluster.new { n = 3, seed_only = true }
    c:start_all()
    for i = 1, 3 do
      local ok = proc.wait_until(function()
        local code, j = c:http(i, "GET", "/_nodes")
        if code ~= 200 then return false end
        local connected = 0
        for _, n in ipairs(j.nodes) do if n.connected then connected = connected + 1 end end
        return connected == 3
      end, 10000)
      assert.truthy(ok, "node" .. i .. " did not see all three nodes")
    end
    -- number_of_nodes counts the committed state's members (as /_cat/nodes lists them):
    -- the master publishes the third one's join a moment after the connections are up
    local h
    assert.truthy(proc.wait_until(function()
      h = c:health(1)
      return h and h.number_of_nodes == 3
    end, 10000), "the committed state never listed three members")
    assert.equal("spec", h.cluster_name)
  end)

  it("refuse a node with the wrong cookie, on both sides, without logging the cookie", function()
    c = cluster.new { n = 2 }
    c:start(1)
    local bad = c:start(2, nil, nil)
    bad:stop()
    c.cookie = "the-wrong-cookie-123"
    bad = c:start(2)
    assert.truthy(c.nodes[1]:wait_for_line("cookie", 8000))
    assert.truthy(bad:wait_for_line("cookie", 8000))
    local code, j = c:http(1, "GET", "/_nodes")
    assert.equal(200, code)
    for _, n in ipairs(j.nodes) do
      if not n.self then assert.is_false(n.connected) end
    end
    assert.is_nil(c.nodes[1]:output():find("the-wrong-cookie-123", 1, true))
    assert.is_nil(bad:output():find("spec-cookie", 1, true))
  end)

  it("report kill -9 as closed, SIGSTOP as timeout, and re-join after SIGCONT and restart", function()
    c = cluster.new { n = 3, extra = "transport = { heartbeat_ms = 100, timeout_ms = 500 }," }
    c:start_all()
    for i = 1, 3 do
      assert.truthy(c.nodes[1]:wait_for_line("EVENT node_up " .. c.names[i]:gsub("%p", "%%%0"), 10000) or i == 1)
    end
    -- SIGSTOP: silent, so only the heartbeat timeout can tell
    local n3 = c.nodes[3]
    local mark = #c.nodes[1].lines
    local t0 = require("uv").hrtime()
    n3:kill "sigstop"
    local pat = "EVENT node_down " .. c.names[3]:gsub("%p", "%%%0") .. " timeout"
    assert.truthy(c.nodes[1]:wait_for_line(pat, 5000, nil, mark))
    local ms = (require("uv").hrtime() - t0) / 1e6
    -- a bound derived from the configuration (timeout 500 ms) with slack, not a benchmark
    assert.truthy(ms < 500 + 1000, ("declared down after %d ms"):format(ms))
    mark = #c.nodes[1].lines
    n3:kill "sigcont"
    assert.truthy(c.nodes[1]:wait_for_line("EVENT node_up " .. c.names[3]:gsub("%p", "%%%0"), 10000, nil, mark))
    -- kill -9: the connection closes, so "closed" at once
    mark = #c.nodes[1].lines
    n3:kill "sigkill"
    assert.truthy(c.nodes[1]:wait_for_line("EVENT node_down " .. c.names[3]:gsub("%p", "%%%0") .. " closed", 5000, nil,
      mark))
    n3:wait_exit(3000)
    mark = #c.nodes[1].lines
    c:start(3)
    assert.truthy(c.nodes[1]:wait_for_line("EVENT node_up " .. c.names[3]:gsub("%p", "%%%0"), 10000, nil, mark))
    -- SIGTERM: the node says it leaves
    mark = #c.nodes[1].lines
    c.nodes[3]:kill "sigterm"
    assert.truthy(c.nodes[1]:wait_for_line("EVENT node_down " .. c.names[3]:gsub("%p", "%%%0") .. " left", 5000, nil,
      mark))
    local code = c.nodes[3]:wait_exit(5000)
    assert.equal(0, code)
  end)

  it("call and send between Lua handlers: round trip, remote error, timeout, order, info", function()
    c = cluster.new { n = 2, hooks = HOOKS_RPC }
    c:start_all()
    local n1, n2 = c.nodes[1], c.nodes[2]
    assert.truthy(n1:wait_for_line("EVENT call_echo y", 10000))
    assert.truthy(n1:wait_for_line("EVENT call_boom EREMOTE: .*kaboom", 5000))
    assert.truthy(n1:wait_for_line("EVENT call_slow ETIMEDOUT", 5000))
    assert.truthy(n1:wait_for_line("EVENT call_missing EREMOTE: no handler named missing", 5000))
    assert.truthy(n2:wait_for_line("EVENT seq_done in_order 1000", 5000))
    assert.truthy(n1:wait_for_line("EVENT info " .. n2.pid .. " ", 5000))
  end)

  it("answer health while Lua is blocked, and nobody declares it down", function()
    c = cluster.new { n = 2, extra = "transport = { heartbeat_ms = 100, timeout_ms = 500 },", hooks = cluster.HOOKS_PRELUDE .. [[
cl.handle("block", function(ms)
  out("blocking")
  local t = cl.now() while cl.now() - t < ms do end
  out("unblocked")
  return true
end)
return { node_down = function(n, r) out("node_down", n, r) end,
         reloaded = function() out("reloaded") end,
         node_up = function(n)
           out("node_up", n)
           if me(2) then cl.send(n, "block", 5000) end
         end }
]] }
    c:start_all()
    assert.truthy(c.nodes[2]:wait_for_line("EVENT node_up", 10000))
    -- node1's Lua is now busy for 5 s; its control loop must keep answering
    assert.truthy(c.nodes[1]:wait_for_line("EVENT blocking", 5000))
    local t0 = require("uv").hrtime()
    local h = c:health(1)
    assert.truthy(h, "no health answer while Lua was blocked")
    assert.truthy((require("uv").hrtime() - t0) / 1e6 < 1000)
    assert.truthy(c.nodes[1]:wait_for_line("EVENT unblocked", 10000))
    -- marker: a reload on each node, whose event goes through the same queue to Lua as a
    -- node_down would, after it
    for i = 1, 2 do
      assert.equal(200, (c:http(i, "POST", "/_reload")))
      assert.truthy(c.nodes[i]:wait_for_line("EVENT reloaded", 5000))
    end
    assert.is_nil(c.nodes[2]:find_line "EVENT node_down")
    assert.is_nil(c.nodes[1]:find_line "EVENT node_down")
  end)

  it("refuse invalid topologies with the file, the key and what was expected", function()
    local dir = os.tmpname()
    os.remove(dir)
    require("uv").fs_mkdir(dir, 448)
    local cases = {
      { "return { topologies = { a = { strategy = 'nope' } } }", "topologies.a.strategy: unknown strategy" },
      { "return { topologies = { a = { strategy = 'static', config = { hosts = { 'bad name' } } } } }",
        "topologies.a.config" },
      { "return { cluster = 5 }", "cluster: expected a string, got number" },
      { "return { bogus = 1 }", "bogus: unknown key" },
      { "return { transport = { max_frame = -1 } }", "transport.max_frame" },
      { "return { transport = { data_connection = 'yes' } }", "transport.data_connection: expected a boolean" },
      { "return { transport = { spin_us = -5 } }", "transport.spin_us: expected an integer 0 .. 1000000" },
      { "return 42", "expected the file to return a table" },
      { "return {", "topology.lua:1:" },
    }
    for _, case in ipairs(cases) do
      cluster.write(dir .. "/topology.lua", case[1])
      local p = proc.start(proc.bin, { "--name", "x@127.0.0.1:" .. cluster.free_port(), "--cookie", "c", "--data",
        dir .. "/data", dir .. "/topology.lua" })
      local code = p:wait_exit(5000)
      assert.are_not.equal(0, code)
      assert.truthy(p.stderr:find(case[2], 1, true), ("expected %q in: %s"):format(case[2], p.stderr))
      assert.truthy(p.stderr:find("topology.lua", 1, true))
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("refuses a group-readable cookie file, a missing cookie and a cookie of two lines", function()
    local dir = os.tmpname()
    os.remove(dir)
    require("uv").fs_mkdir(dir, 448)
    cluster.write(dir .. "/t.lua", "return {}")
    cluster.write(dir .. "/cookie", "secret\n")
    require("uv").fs_chmod(dir .. "/cookie", 420) -- 0644
    local p = proc.start(proc.bin, { "--name", "x@127.0.0.1:1", "--cookie-file", dir .. "/cookie", dir .. "/t.lua" })
    assert.are_not.equal(0, p:wait_exit(5000))
    assert.truthy(p.stderr:find("readable by group or others", 1, true))
    p = proc.start(proc.bin, { "--name", "x@127.0.0.1:1", dir .. "/t.lua" }, { env = { CLUSTERLUA_COOKIE = "" } })
    assert.are_not.equal(0, p:wait_exit(5000))
    assert.truthy(p.stderr:find("no cookie", 1, true))
    -- a cookie of two lines would be two keys, a short one among them: refused
    cluster.write(dir .. "/cookie2", ("k"):rep(50) .. "\nabcd\n")
    require("uv").fs_chmod(dir .. "/cookie2", 384) -- 0600
    p = proc.start(proc.bin, { "--name", "x@127.0.0.1:1", "--cookie-file", dir .. "/cookie2", dir .. "/t.lua" })
    assert.are_not.equal(0, p:wait_exit(5000))
    assert.truthy(p.stderr:find("the cookie contains a line break", 1, true), p.stderr)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("send: ENOBUFS towards a stopped peer, E2BIG over max_frame, and a message just under it passes", function()
    -- node1 fills its queue once node2 is stopped: the spec says so with this file
    local stopped = os.tmpname()
    os.remove(stopped)
    finally(function() os.remove(stopped) end)
    c = cluster.new { n = 2, extra = [[transport = { timeout_ms = 20000, send_queue_max = 1048576, max_frame = 1048576 },]],
      hooks = cluster.HOOKS_PRELUDE .. ("local STOPPED = %q\n"):format(stopped) .. [[
local got = 0
cl.handle("big", function(v) out("big_received", #v) end)
cl.handle("fill", function() got = got + 1 end)
return { node_up = function(n)
  out("node_up", n)
  if not cl.self().name:match "^node1@" then return end
  -- just under the frame limit (leave room for the envelope), then just over it
  assert(cl.send(n, "big", ("x"):rep(1048576 - 64)))
  local _, err = cl.send(n, "big", ("x"):rep(1048576 + 1))
  out("over", tostring(err):match "^[%u%d]+")
  -- until the spec has stopped node2 (bounded: 10 s)
  local uv = require "uv"
  for _ = 1, 1000 do
    if uv.fs_stat(STOPPED) then break end
    cl.sleep(10)
  end
  out("saw_stopped", tostring(uv.fs_stat(STOPPED) ~= nil))
  local chunk = ("y"):rep(4096)
  for i = 1, 200000 do
    local ok, e = cl.send(n, "fill", chunk)
    if not ok then out("full", tostring(e):match "^[%u%d]+", i) return end
    if i % 64 == 0 then cl.sleep(1) end
  end
  out("full", "never")
end }
]] }
    c:start_all()
    assert.truthy(c.nodes[1]:wait_for_line("EVENT node_up", 10000))
    assert.truthy(c.nodes[2]:wait_for_line("EVENT big_received " .. (1048576 - 64), 5000))
    assert.truthy(c.nodes[1]:wait_for_line("EVENT over E2BIG", 5000))
    c.nodes[2]:kill "sigstop"
    cluster.write(stopped, "")
    assert.truthy(c.nodes[1]:wait_for_line("EVENT saw_stopped true", 15000), c:outputs())
    assert.truthy(c.nodes[1]:wait_for_line("EVENT full ENOBUFS %d+", 15000))
    c.nodes[2]:kill "sigcont"
    assert.is_nil(c.nodes[1]:find_line "EVENT node_down")
  end)

  it("start{...} from a script makes the process a node, with the topology inline", function()
    local dir = require("helpers.proc").tmpdir()
    local port, peer = cluster.free_port(), cluster.free_port()
    cluster.write(dir .. "/app.lua", ([[
local cl = require "clusterlua"
local ok, err = cl.start {
  name = "app@127.0.0.1:%d", cookie = "inline", data = %q,
  cluster = "inline-spec",
  topologies = { t = { strategy = "static", config = { hosts = { "other@127.0.0.1:%d" } } } },
}
print("START", ok, err)
print("SELF", cl.self().name, cl.self().cluster)
local bad, berr = cl.start { name = "x@127.0.0.1:1", cookie = "c" }
print("AGAIN", bad, berr)
os.exit(0)
]]):format(port, dir .. "/data", peer))
    local p = proc.start(proc.bin, { dir .. "/app.lua" })
    assert.equal(0, p:wait_exit(10000), p.stderr)
    assert.truthy(p:find_line "^START	true", p.stdout .. p.stderr)
    assert.truthy(p:find_line("^SELF	app@127.0.0.1:" .. port .. "	inline%-spec"))
    assert.truthy(p:find_line "^AGAIN	nil	EALREADY")
    cluster.write(dir .. "/bad.lua", [[
local ok, err = require("clusterlua").start { name = "app@127.0.0.1:1", cookie = "c", topologies = 5 }
print("BAD", ok, err)
]])
    p = proc.start(proc.bin, { dir .. "/bad.lua" })
    p:wait_exit(10000)
    assert.truthy(p:find_line "^BAD	nil	EINVAL: clusterlua.start: topologies: expected a table", p.stdout)
    require("helpers.proc").rmtree(dir)
  end)

  it("logs one JSON object per line with --log-format json, and refuses an unknown format", function()
    c = cluster.new { n = 1 }
    local p = c:start(1, { "--log-format", "json", "--log-level", "debug" })
    assert.truthy(p:wait_for_line('"msg":".*started', 10000, "stderr"))
    local cjson = require "cjson.safe"
    local n = 0
    for _, l in ipairs(p.lines) do
      if l.stream == "stderr" then
        local j = cjson.decode(l.text)
        assert.is_table(j, "not JSON: " .. l.text)
        assert.is_string(j.time)
        assert.is_string(j.level)
        assert.is_string(j.subsystem)
        n = n + 1
      end
    end
    assert.truthy(n > 0)
    local bad = proc.start(proc.bin, { "--log-format", "xml", "x.lua" })
    assert.equal(2, bad:wait_exit(5000))
    assert.truthy(bad.stderr:find("--log-format", 1, true))
  end)
end)
