-- Data connections: user messages and RPC between Lua handlers travel on a connection the
-- Lua loop owns (no thread hop), authenticated by the same handshake; without one, they
-- fall back to the control connection, in order, and nothing else changes.
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

-- node1 calls node2 and node2 calls node1 once both are up; each reports what it saw
local HOOKS = cluster.HOOKS_PRELUDE .. [[
local node = require "clusterlua.node"
cl.handle("echo", function(v) return v end)
local seen = {}
cl.handle("seq", function(v) seen[#seen + 1] = v end)
cl.handle("seq_check", function(n)
  for i = 1, n do if seen[i] ~= i then return "out_of_order at " .. i end end
  seen = {}
  return "in_order " .. n
end)
local function report(tag, peer)
  local ok, e = cl.call(peer, "echo", { tag = tag }, { timeout = 3000 })
  for i = 1, 500 do assert(cl.send(peer, "seq", i)) end
  local order = cl.call(peer, "seq_check", 500, { timeout = 3000 })
  local s = node.data_stats()
  out(tag, ok and ok.tag or e, tostring(order):gsub(" ", "_"), "data=" .. tostring(node.has_data_connection(peer)),
    "dp_out=" .. s.msgs_out, "ctl_out=" .. node.stats.control_path_sends)
end
-- whether this node still sends to the caller over a data connection
cl.handle("has_dc", function(_, from) return node.has_data_connection(from) end)
-- false until this node has seen the caller up (it may hear of it later than the caller)
cl.handle("go", function(tag, from)
  if not cl.nodes()[1] then return false end
  for _, n in ipairs(cl.nodes()) do report(tag, n) end
  return true
end)
local function go(n, tag)
  for _ = 1, 100 do
    if cl.call(n, "go", tag, { timeout = 5000 }) then return end
    cl.sleep(50)
  end
end
return {
  node_up = function(n, info)
    out("node_up", n, "data_connection=" .. tostring(info.data_connection))
    if os.getenv "BOTH" then
      -- both nodes send at once, from their first moment: each asks for a data
      -- connection while the other does
      report("both", n)
      out("adopted", node.data_stats().conns_adopted)
      return
    end
    if cl.self().name:match "^node1@" then
      go(n, "from2")
      report("from1", n)
      if os.getenv "DROP" then
        node.drop_data_connection(n)
        -- until node2 has seen its end close (bounded: 2 s)
        for _ = 1, 200 do
          if cl.call(n, "has_dc", nil, { timeout = 1000 }) == false then break end
          cl.sleep(10)
        end
        go(n, "from2b")
        report("from1b", n)
      end
    end
  end,
  node_down = function(n, r) out("node_down", n, r) end,
}
]]

local function extra(dp)
  return ("transport = { data_connection = %s },"):format(dp)
end

local function up_without_data_connection(c)
  for i = 1, 2 do assert.truthy(c.nodes[i]:wait_for_line("EVENT node_up %S+ data_connection=false", 10000)) end
end

-- the report line of each node's message run (see the hooks above)
local function reports(c)
  local l1 = c.nodes[1]:wait_for_line("EVENT from1 ", 10000)
  local l2 = c.nodes[2]:wait_for_line("EVENT from2 ", 10000)
  assert.truthy(l1 and l2)
  return l1, l2
end

describe("data connections", function()
  local c
  after_each(function()
    if c then if os.getenv("KEEP") then print(c.dir) else c:cleanup() end end
    c = nil
  end)

  it("carry calls and sends in order, with no message through the control loop", function()
    c = cluster.new { n = 2, hooks = HOOKS }
    c:start_all()
    for i = 1, 2 do assert.truthy(c.nodes[i]:wait_for_line("EVENT node_up %S+ data_connection=true", 10000)) end
    local l1 = c.nodes[1]:wait_for_line("EVENT from1 ", 10000)
    local l2 = c.nodes[2]:wait_for_line("EVENT from2 ", 10000)
    assert.truthy(l1 and l2)
    for _, l in ipairs { l1, l2 } do
      assert.truthy(l:match " in_order_500 data=true dp_out=%d+ ctl_out=0$", l)
      assert.truthy(tonumber(l:match "dp_out=(%d+)") >= 502, l)
    end
    assert.is_nil(c.nodes[1]:find_line "EVENT node_down")
  end)

  it("open on the first message: both sides at once still carry everything in order on data connections", function()
    c = cluster.new { n = 2, hooks = HOOKS }
    c:start_all(nil, { BOTH = "1" })
    for i = 1, 2 do
      local l = c.nodes[i]:wait_for_line("EVENT both ", 10000)
      assert.truthy(l and l:match " in_order_500 data=true dp_out=%d+ ctl_out=0$", l)
      assert.truthy(tonumber(l:match "dp_out=(%d+)") >= 502, l)
      -- one data connection, or two when both dialled before either arrived
      local a = c.nodes[i]:wait_for_line("EVENT adopted ", 10000)
      assert.truthy(a and tonumber(a:match "adopted (%d+)") <= 2, a)
    end
    assert.is_nil(c.nodes[1]:find_line "EVENT node_down")
  end)

  it("turned off (transport.data_connection = false): messages use the control connection", function()
    c = cluster.new { n = 2, hooks = HOOKS, extra = extra "false" }
    c:start_all()
    up_without_data_connection(c)
    for _, l in ipairs { reports(c) } do assert.truthy(l:match " from%d in_order_500 data=false dp_out=0 ctl_out=%d+$", l) end
  end)

  it("off on one side only: both sides use the control connection at once", function()
    -- the topology reads DP from the environment: node1 has them off, node2 on
    c = cluster.new { n = 2, hooks = HOOKS, extra = [[transport = { data_connection = os.getenv "DP" ~= "off" },]] }
    local t0 = require("uv").hrtime()
    c:start(1, nil, { DP = "off" })
    c:start(2, nil, { DP = "on" })
    up_without_data_connection(c)
    -- the handshake says who opens data connections: nobody waits for one (the 2 s
    -- fallback would show here)
    assert.truthy((require("uv").hrtime() - t0) / 1e6 < 1800)
    for _, l in ipairs { reports(c) } do assert.truthy(l:match " in_order_500 data=false ", l) end
  end)

  it("a data connection that breaks while its peer stays up: messages move to the control connection", function()
    c = cluster.new { n = 2, hooks = HOOKS }
    c:start_all(nil, { DROP = "1" })
    assert.truthy(c.nodes[1]:wait_for_line("EVENT from1 %S+ in_order_500 data=true", 10000))
    local l1 = c.nodes[1]:wait_for_line("EVENT from1b ", 10000)
    local l2 = c.nodes[2]:wait_for_line("EVENT from2b ", 10000)
    assert.truthy(l1 and l2)
    for _, l in ipairs { l1, l2 } do assert.truthy(l:match " in_order_500 data=false ", l) end
    assert.truthy(c.nodes[2]:wait_for_line("data connection with node1@%S+ closed: closed by the peer", 2000))
    assert.is_nil(c.nodes[1]:find_line "EVENT node_down")
    assert.is_nil(c.nodes[2]:find_line "EVENT node_down")
  end)

  it("a restarted peer comes back with a new data connection", function()
    c = cluster.new { n = 2, hooks = HOOKS }
    c:start_all()
    assert.truthy(c.nodes[1]:wait_for_line("EVENT from1 %S+ in_order_500 data=true", 10000))
    c.nodes[2]:kill "sigkill"
    c.nodes[2]:wait_exit(5000)
    assert.truthy(c.nodes[1]:wait_for_line("EVENT node_down node2@%S+ closed", 5000))
    c:start(2)
    -- node_up runs node1's hook again: fresh calls both ways over the new connection
    local function count()
      local n = 0
      for _, l in ipairs(c.nodes[1].lines) do
        if l.text:match "EVENT from1 %S+ in_order_500 data=true" then n = n + 1 end
      end
      return n
    end
    proc.wait_until(function() return count() >= 2 end, 10000)
    local n = count()
    assert.equal(2, n)
    assert.truthy(c.nodes[2]:wait_for_line("EVENT from2 %S+ in_order_500 data=true", 5000))
  end)
end)
