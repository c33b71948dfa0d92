-- Membership with real nodes: departed nodes are forgotten (or kept, for the voting
-- configuration), a node a discovery source stops listing stays a member, and what
-- node_up and the metrics say about connections is true.
local uv = require "uv"
local cjson = require "cjson.safe"
local proc = require "helpers.proc"
local cluster = require "helpers.cluster"

local function esc(s) return (s:gsub("%p", "%%%0")) end

-- A topology whose hosts_file strategy reads c.dir/hosts (written by the caller).
local function hosts_cluster(opts)
  opts.topologies = [[{ file = { strategy = "hosts_file", config = { path = HOSTS, poll_interval = 1000 } } }]]
  local c = cluster.new(opts)
  c.hosts = c.dir .. "/hosts"
  local src = assert(io.open(c.topology)):read "*a"
  cluster.write(c.topology, (src:gsub("HOSTS", ("%q"):format(c.hosts))))
  return c
end

-- A listener on a dead node's port, as a stand-in that counts the dials it gets: each
-- connection is read until its HELLO names the node dialled (the handshake's first
-- frame carries the dialler's and the target's names in the clear), noted, and closed.
local function dial_counter(port, names)
  local l = { seen = {} }
  l.server = uv.new_tcp()
  assert(l.server:bind("127.0.0.1", port))
  assert(l.server:listen(64, function(err)
    if err then return end
    local cl = uv.new_tcp()
    l.server:accept(cl)
    local buf = ""
    cl:read_start(function(rerr, chunk)
      if chunk then buf = buf .. chunk end
      local hit
      for _, n in ipairs(names) do
        if buf:find(n, 1, true) then hit = n end
      end
      if hit or rerr or not chunk or #buf > 4096 then
        uv.update_time()
        l.seen[#l.seen + 1] = { to = hit or "?", at = uv.now(), data = buf }
        cl:read_stop()
        if not cl:is_closing() then cl:close() end
      end
    end)
  end))
  function l:count(name, from)
    local n = 0
    for i = from or 1, #self.seen do
      if self.seen[i].to == name then n = n + 1 end
    end
    return n
  end
  function l:close()
    if not self.server:is_closing() then self.server:close() end
  end
  return l
end

describe("departed nodes", function()
  it("a failed node nobody lists is re-dialled with widening gaps until reconnect_timeout, then forgotten", function()
    local TIMEOUT = 5000
    local c = hosts_cluster { n = 2, initial = 1, extra = ("transport = { reconnect_timeout_ms = %d },"):format(TIMEOUT) }
    local l
    finally(function()
      if l then l:close() end
      c:cleanup()
    end)
    -- the file lists node1 only: node2 dials node1, node1 never wants node2
    proc.write(c.hosts, c.names[1] .. "\n")
    c:start(1)
    c:start(2, { "--roles", "data" }) -- not master-eligible: never in the voting configuration
    assert(proc.wait_until(c:all_connected({ 1, 2 }), 15000), c:outputs())
    local port = tonumber(c.names[2]:match ":(%d+)$")
    c.nodes[2]:kill("sigkill")
    assert(proc.wait_until(function() return c.nodes[2].exited end, 5000))
    uv.update_time()
    local t_kill = uv.now()
    local marker = ("marker@127.0.0.1:%d"):format(port)
    l = dial_counter(port, { c.names[2], marker })
    assert(c.nodes[1]:wait_for_line("EVENT node_down " .. esc(c.names[2]) .. " closed", 5000), c:outputs())
    local st = c:listed(1)
    assert.are.equal("down", st and st[c.names[2]] and st[c.names[2]].status, c:outputs())
    -- forgotten: gone from GET /_nodes
    assert(proc.wait_until(function()
      local x = c:listed(1)
      return x ~= nil and x[c.names[2]] == nil
    end, TIMEOUT + 10000), "never forgotten:\n" .. c:outputs())
    local seen_at_forget = #l.seen
    uv.update_time()
    local t_forgot = uv.now() - t_kill
    assert.is_true(t_forgot >= TIMEOUT - 200, ("forgotten after %d ms"):format(t_forgot))
    assert(c.nodes[1]:find_line("forgetting " .. esc(c.names[2]) .. ": down for more than reconnect_timeout"),
      c:outputs())
    -- the marker: a name at the same port that only the hosts file brings; once its
    -- dial is in, any further dial of node2 would have been seen before it
    proc.write(c.hosts .. ".new", c.names[1] .. "\n" .. marker .. "\n")
    assert(os.rename(c.hosts .. ".new", c.hosts))
    assert(proc.wait_until(function() return l:count(marker, seen_at_forget + 1) > 0 end, 10000), c:outputs())
    local times = {}
    for i, s in ipairs(l.seen) do
      if s.to == c.names[2] then
        assert.is_true(i <= seen_at_forget, "node2 dialled after it was forgotten")
        times[#times + 1] = s.at
      end
    end
    assert.is_true(#times >= 4, ("only %d dials seen"):format(#times))
    local gaps = {}
    for i = 2, #times do gaps[#gaps + 1] = times[i] - times[i - 1] end
    -- the backoff doubles, with jitter in [b/2, 3b/2]: two steps on, a gap is wider by
    -- at least b/2 >= 25 ms (10 ms of it allowed for this process's own scheduling)
    for i = 1, #gaps - 2 do
      assert.is_true(gaps[i + 2] + 10 > gaps[i], ("gaps do not widen: %s"):format(table.concat(gaps, ", ")))
    end
    assert.is_true(times[#times] - t_kill <= TIMEOUT + 500,
      ("last dial %d ms after the kill"):format(times[#times] - t_kill))
    -- failures are logged rate-limited: the first, then at most one a minute
    local warned = 0
    for _, ln in ipairs(c.nodes[1].lines) do
      if ln.text:find("unable to connect to " .. c.names[2], 1, true) then warned = warned + 1 end
    end
    assert.is_true(warned <= 1, ("%d 'unable to connect' lines"):format(warned))
  end)

  it("a node that left is forgotten at once", function()
    local c = hosts_cluster { n = 2, initial = 1 }
    finally(function() c:cleanup() end)
    proc.write(c.hosts, c.names[1] .. "\n")
    c:start(1)
    c:start(2, { "--roles", "data" })
    assert(proc.wait_until(c:all_connected({ 1, 2 }), 15000), c:outputs())
    c.nodes[2]:kill("sigterm")
    assert(c.nodes[1]:wait_for_line("EVENT node_down " .. esc(c.names[2]) .. " left", 5000), c:outputs())
    assert(proc.wait_until(function()
      local x = c:listed(1)
      return x ~= nil and x[c.names[2]] == nil
    end, 1000), "still listed:\n" .. c:outputs())
    assert(c.nodes[1]:find_line("forgetting " .. esc(c.names[2]) .. ": it left"), c:outputs())
  end)

  it("a voting member is kept past reconnect_timeout until an exclusion removes it", function()
    local TIMEOUT = 2000
    local c = hosts_cluster { n = 3, extra = ("transport = { reconnect_timeout_ms = %d },"):format(TIMEOUT) }
    local l
    finally(function()
      if l then l:close() end
      c:cleanup()
    end)
    -- node3 is listed nowhere: it dials the others, and is one of the three voters
    proc.write(c.hosts, c.names[1] .. "\n" .. c.names[2] .. "\n")
    c:start_all()
    assert(proc.wait_until(c:all_connected({ 1, 2, 3 }), 15000), c:outputs())
    assert(c:wait_master(15000), c:outputs())
    assert(proc.wait_until(function()
      local h = c:health(1)
      return h and #h.voting_config == 3
    end, 10000), c:outputs())
    local master = c:wait_master(1000)
    if master == c.names[3] then
      -- keep the spec about a follower: move the master away first
      assert.are.equal(200, (c:http(1, "POST", "/_cluster/voting_config_exclusions?node_names=node3")))
      assert.are.equal(200, (c:http(1, "DELETE", "/_cluster/voting_config_exclusions")))
      assert(c:wait_master(10000, nil, c.names[3]), c:outputs())
    end
    local port = tonumber(c.names[3]:match ":(%d+)$")
    c.nodes[3]:kill("sigkill")
    assert(proc.wait_until(function() return c.nodes[3].exited end, 5000))
    uv.update_time()
    local t_kill = uv.now()
    l = dial_counter(port, { c.names[3] })
    -- still dialled well after the timeout (and so still known)
    assert(proc.wait_until(function()
      local last = l.seen[#l.seen]
      return last ~= nil and last.to == c.names[3] and last.at - t_kill > TIMEOUT + 1500
    end, TIMEOUT + 15000), c:outputs())
    for i = 1, 2 do
      local x = c:listed(i)
      assert.are.equal("down", x and x[c.names[3]] and x[c.names[3]].status, c:outputs())
    end
    local code, _, text = c:http(1, "POST", "/_cluster/voting_config_exclusions?node_names=node3")
    assert.are.equal(200, code, text)
    for i = 1, 2 do
      assert(proc.wait_until(function()
        local x = c:listed(i)
        return x ~= nil and x[c.names[3]] == nil
      end, 5000), ("node%d still lists node3:\n"):format(i) .. c:outputs())
    end
  end)
end)

describe("a node a discovery source stops listing", function()
  it("stays connected and a member: no node_down, no master change, no quorum lost", function()
    -- the mesh is off so that a node connects to node4 (the marker, below) only through
    -- its own read of the file, never because another node met it first
    local c = hosts_cluster { n = 4, initial = 3, extra = "transport = { mesh = false }," }
    finally(function() c:cleanup() end)
    proc.write(c.hosts, table.concat({ c.names[1], c.names[2], c.names[3] }, "\n") .. "\n")
    for i = 1, 3 do c:start(i) end
    assert(proc.wait_until(c:all_connected({ 1, 2, 3 }), 15000), c:outputs())
    assert(c:wait_master(15000, { true, true, true }), c:outputs())
    local marks = {}
    for i = 1, 3 do marks[i] = #c.nodes[i].lines + 1 end
    -- node4 is the marker: it dials nobody (its own topology lists no one) and is not
    -- master-eligible. The read of the file that drops node3 makes each node dial it, so
    -- node4's node_up comes down the same event queue after anything dropping node3
    -- would have caused there.
    local main_topology = c.topology
    c.topology = c.dir .. "/topology4.lua"
    cluster.write(c.topology, [[
return {
  cluster = "spec",
  topologies = { none = { strategy = "static", config = { hosts = {} } } },
  hooks = "hooks.lua",
  transport = { mesh = false },
}
]])
    c:start(4, { "--roles", "data" })
    c.topology = main_topology
    assert(c.nodes[4]:wait_for_line("started %(cluster", 10000), c:outputs())
    proc.write(c.hosts .. ".new", table.concat({ c.names[1], c.names[2], c.names[4] }, "\n") .. "\n")
    assert(os.rename(c.hosts .. ".new", c.hosts))
    for i = 1, 3 do
      assert(c.nodes[i]:wait_for_line("EVENT node_up " .. esc(c.names[4]), 10000, nil, marks[i]), c:outputs())
    end
    for i = 1, 3 do
      for _, what in ipairs { "EVENT node_down", "EVENT master_changed", "EVENT quorum_lost", "quorum lost",
        "disconnected from" } do
        assert.is_nil(c.nodes[i]:find_line(what, nil, marks[i]), ("node%d: %s\n"):format(i, what) .. c:outputs())
      end
    end
    for i = 1, 2 do
      local x = c:listed(i)
      assert.is_true(x ~= nil and x[c.names[3]] ~= nil and x[c.names[3]].connected == true, c:outputs())
    end
  end)
end)

describe("cl.disconnect", function()
  it("drops the connection and it stays dropped: the peer's re-dials are refused, no flap", function()
    local c = cluster.new {
      n = 2,
      hooks = cluster.HOOKS_PRELUDE .. [[
local done = false
return {
  node_up = function(n)
    out("node_up", n)
    if not done and cl.self().name:match "^node1@" then
      done = true
      out("disconnecting", n, tostring(cl.disconnect(n)))
    end
  end,
  node_down = function(n, r) out("node_down", n, r) end,
}
]],
    }
    finally(function() c:cleanup() end)
    c:start(1, { "--log-level", "debug" })
    c:start(2)
    assert(c.nodes[1]:wait_for_line("EVENT disconnecting " .. esc(c.names[2]) .. " true", 10000), c:outputs())
    assert(c.nodes[2]:wait_for_line("EVENT node_down " .. esc(c.names[1]) .. " closed", 5000), c:outputs())
    -- the marker: node2 still lists node1 and re-dials it; twice refused means no
    -- connection came back in between (a connected node2 would not dial again)
    local refusal = "was disconnected from " .. esc(c.names[2])
    local _, first = c.nodes[1]:wait_for_line(refusal, 10000)
    assert(first, c:outputs())
    assert(c.nodes[1]:wait_for_line(refusal, 10000, nil, first + 1), c:outputs())
    local function count(p, pat)
      local k = 0
      for _, ln in ipairs(p.lines) do
        if ln.text:match(pat) then k = k + 1 end
      end
      return k
    end
    assert.are.equal(1, count(c.nodes[1], "EVENT node_up " .. esc(c.names[2])), c:outputs())
    assert.are.equal(1, count(c.nodes[2], "EVENT node_up " .. esc(c.names[1])), c:outputs())
    local x = c:listed(1)
    assert.are.equal("disconnected", x and x[c.names[2]] and x[c.names[2]].status, c:outputs())
    -- and `clusterlua status` says so in its STATUS column
    local code, out = proc.run(proc.bin, { "status", "--admin", c.admin[1] }, { timeout = 10000 })
    assert.are.equal(0, code, out)
    assert.matches(esc(c.names[2]) .. "%s+%S+%s+%S+%s+disconnected", out)
  end)
end)

describe("what node_up and the metrics say", function()
  it("node_up carries a measured rtt_us; data connections are counted; the rtt metric's HELP matches the docs",
    function()
      local c = cluster.new {
        n = 3,
        hooks = cluster.HOOKS_PRELUDE .. [[
cl.handle("echo", function(v) return v end)
return {
  node_up = function(n, info)
    out("node_up", n, info.rtt_us)
    -- a data connection opens with the first message between two nodes
    out("echo", n, tostring(cl.call(n, "echo", 1, { timeout = 5000 })))
  end,
}
]],
      }
      finally(function() c:cleanup() end)
      c:start_all()
      assert(proc.wait_until(c:all_connected({ 1, 2, 3 }), 15000), c:outputs())
      for i = 1, 3 do
        for k = 1, 3 do
          if k ~= i then
            local line = c.nodes[i]:wait_for_line("EVENT node_up " .. esc(c.names[k]) .. " (%d+)", 10000)
            assert(line, c:outputs())
            local rtt = tonumber(line:match " (%d+)$")
            assert.is_true(rtt ~= nil and rtt > 0 and rtt < 1000000, line)
          end
        end
      end
      -- two peers each, a call each way: one data connection per pair, or two when both
      -- sides dialled theirs at once (each node counts those it took part in)
      for i = 1, 3 do
        for k = 1, 3 do
          if k ~= i then assert(c.nodes[i]:wait_for_line("EVENT echo " .. esc(c.names[k]) .. " 1", 10000), c:outputs()) end
        end
        local code, _, text = c:http(i, "GET", "/metrics")
        local dc = code == 200 and tonumber(text:match "\nclusterlua_data_connections_total (%d+)")
        assert(dc and dc >= 2 and dc <= 4, ("node%d:\n"):format(i) .. tostring(text))
      end
      local _, _, text = c:http(1, "GET", "/metrics")
      local help = text:match "# HELP clusterlua_heartbeat_rtt_seconds ([^\n]+)"
      local f = assert(io.open(proc.root .. "/docs/operations.md"))
      local doc = f:read "*a"
      f:close()
      local row = doc:match "| `clusterlua_heartbeat_rtt_seconds` | histogram | ([^|\n]-) |"
      assert.is_not_nil(help)
      assert.is_not_nil(row)
      assert.are.equal(row:lower(), help:lower())
    end)
end)

describe("the supervisor", function()
  it("a shorter set only stops dialling; ctx.disconnect drops the node unless another topology wants it", function()
    local supervisor = require "clusterlua.supervisor"
    local calls = {}
    local function rec(kind) return function(n) calls[#calls + 1] = kind .. " " .. n end end
    local sup = supervisor.new {
      self_name = "me@127.0.0.1:4370", want = rec "want", unwant = rec "unwant", disconnect = rec "disconnect",
      cluster = "spec", cookie = "spec-cookie",
    }
    local ctxs = {}
    local mod = { start = function(ctx) ctxs[#ctxs + 1] = ctx end }
    assert(sup:start_all { a = { module = mod, config = {} }, b = { module = mod, config = {} } })
    local a, b = ctxs[1], ctxs[2]
    a.set_nodes { "x@127.0.0.1:1", "y@127.0.0.1:2" }
    b.set_nodes { "y@127.0.0.1:2" }
    calls = {}
    a.set_nodes { "y@127.0.0.1:2" } -- x no longer listed: unwanted, never disconnected
    assert.are.same({ "unwant x@127.0.0.1:1" }, calls)
    calls = {}
    a.disconnect "y@127.0.0.1:2" -- b still wants y: nothing
    assert.are.same({}, calls)
    b.disconnect "y@127.0.0.1:2"
    assert.are.same({ "unwant y@127.0.0.1:2", "disconnect y@127.0.0.1:2" }, calls)
    sup:stop_all()
  end)
end)

describe("transport.reconnect_timeout_ms", function()
  it("is validated: an integer of at least 1000 ms", function()
    local topology = require "clusterlua.topology"
    assert.is_table((topology.from_table { transport = { reconnect_timeout_ms = 3000 } }))
    for _, bad in ipairs { 999, 1.5, "1h", -1 } do
      local t, err, code = topology.from_table { transport = { reconnect_timeout_ms = bad } }
      assert.is_nil(t)
      assert.are.equal("EINVAL", code)
      assert.matches("transport.reconnect_timeout_ms: expected an integer 1000", err, 1, true)
    end
  end)
end)
