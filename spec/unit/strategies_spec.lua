-- The built-in discovery strategies, run against a fake ctx (spec/helpers/strategy_ctx)
-- with real uv handles: config validation; hosts_file re-reading its file; dns and
-- dns_srv against a dnsmasq this spec starts on a loopback port; gossip packets, and
-- gossip between processes inside a network namespace the spec creates (multicast
-- never leaves the namespace: the machine's default route leads off the machine).
local uv = require "uv"
local async = require "clusterlua.async"
local topology = require "clusterlua.topology"
local crypto = require "clusterlua.c.crypto"
local proc = require "helpers.proc"
local netns = require "helpers.netns"
local fake = require "helpers.strategy_ctx"

local hosts_file = require "clusterlua.strategy.hosts_file"
local dns_strategy = require "clusterlua.strategy.dns"
local dns_srv = require "clusterlua.strategy.dns_srv"
local gossip = require "clusterlua.strategy.gossip"

local DNSMASQ = "/usr/sbin/dnsmasq"

local function wait(pred, ms)
  local ok, err = async.run_until(pred, ms or 5000)
  return ok, err
end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function set_is(ctx, list)
  return function()
    local l = ctx.last_set()
    return l ~= nil and same_list(l, list)
  end
end

local function validate_err(mod, config)
  local ok, err = mod.validate(config)
  assert.is_nil(ok)
  return err
end

describe("strategy config validation", function()
  it("hosts_file: a valid config passes; a bad one is refused, naming the key", function()
    assert.is_true(hosts_file.validate { path = "/etc/hosts.cluster" })
    assert.matches("^path: expected", validate_err(hosts_file, {}))
    assert.matches("^path: expected", validate_err(hosts_file, { path = 3 }))
    assert.matches("^poll_interval: expected an integer >= 100", validate_err(hosts_file, { path = "x", poll_interval = 5 }))
    assert.matches("^pth: unknown key %(expected one of: debounce, path, poll_interval%)",
      validate_err(hosts_file, { pth = "x" }))
  end)

  it("dns and dns_srv: a valid config passes; a bad one is refused, naming the key", function()
    local good = { query = "nodes.example.internal", node_basename = "app" }
    assert.is_true(dns_strategy.validate(good))
    assert.is_true(dns_srv.validate(good))
    assert.is_true(dns_strategy.validate { query = "n.test", node_basename = "a", port = 4371, interval = 1000,
      resolver = "127.0.0.1:5353", family = "ipv4", timeout = 500 })
    assert.is_true(dns_srv.validate { query = "_n._tcp.test", node_basename = "a", resolver = "[::1]:53" })
    assert.matches("^query: expected a DNS name", validate_err(dns_strategy, { node_basename = "a" }))
    assert.matches("^query: expected a DNS name", validate_err(dns_srv, { query = "a b", node_basename = "a" }))
    assert.matches("^node_basename: expected", validate_err(dns_strategy, { query = "n.test" }))
    assert.matches("^node_basename: expected", validate_err(dns_srv, { query = "n.test", node_basename = "a@b" }))
    assert.matches("^port: expected a port number 1..65535, got 70000",
      validate_err(dns_strategy, { query = "n.test", node_basename = "a", port = 70000 }))
    assert.matches("^interval: expected an integer >= 100",
      validate_err(dns_srv, { query = "n.test", node_basename = "a", interval = "5s" }))
    assert.matches("^resolver: expected \"address:port\"",
      validate_err(dns_strategy, { query = "n.test", node_basename = "a", resolver = "dns.google:53" }))
    assert.matches("^family: expected",
      validate_err(dns_strategy, { query = "n.test", node_basename = "a", family = "inet" }))
    -- dns_srv takes its ports from the records
    assert.matches("^port: unknown key", validate_err(dns_srv, { query = "n.test", node_basename = "a", port = 1 }))
  end)

  it("gossip: a valid config passes; a bad one is refused, naming the key", function()
    assert.is_true(gossip.validate {})
    assert.is_true(gossip.validate { port = 45000, group = "239.1.2.3", ttl = 0, interface = "127.0.0.1",
      interval = 100, multicast_loop = false, expire = 1000, max_skew = 5000 })
    assert.is_true(gossip.validate { broadcast = true, group = "10.0.0.255" })
    assert.matches("^port: expected", validate_err(gossip, { port = 0 }))
    assert.matches("^group: expected an IPv4 multicast address", validate_err(gossip, { group = "10.0.0.1" }))
    assert.matches("^group: expected an IPv4 multicast address", validate_err(gossip, { group = "300.1.1.1" }))
    assert.matches("^ttl: expected an integer 0..255", validate_err(gossip, { ttl = 256 }))
    assert.matches("^interface: expected the IPv4 address", validate_err(gossip, { interface = "eth0" }))
    assert.matches("^broadcast: expected true or false", validate_err(gossip, { broadcast = "yes" }))
    assert.matches("^interval: expected an integer >= 10", validate_err(gossip, { interval = 1.5 }))
    assert.matches("^expire: expected an integer >= 2 intervals", validate_err(gossip, { interval = 100, expire = 150 }))
    assert.matches("^multicast: unknown key", validate_err(gossip, { multicast = true }))
  end)

  it("reports mistakes with the topology file and key path", function()
    local t, err = topology.from_table({
      topologies = { lan = { strategy = "gossip", config = { port = "45892" } } },
    }, "topology.lua")
    assert.is_nil(t)
    assert.equal('EINVAL: topology.lua: topologies.lan.config: port: expected a port number 1..65535, got "45892"', err)
    t, err = topology.from_table({
      topologies = { k8s = { strategy = "dns_srv", config = { query = "x.test" } } },
    }, "topology.lua")
    assert.is_nil(t)
    assert.matches("^EINVAL: topology.lua: topologies.k8s.config: node_basename: expected", err)
  end)
end)

describe("hosts_file strategy", function()
  local dir, ctx
  before_each(function() dir = proc.tmpdir() end)
  after_each(function()
    if ctx then
      hosts_file.stop(ctx)
      ctx:close()
      ctx = nil
    end
    proc.rmtree(dir)
  end)

  it("declares the listed nodes, follows edits, and keeps the set when the file goes away", function()
    local path = dir .. "/hosts"
    proc.write(path, "# the edge cluster\nn1@10.0.0.1\n\n  n2@10.0.0.2:4371   # second one\nme@127.0.0.1\n")
    ctx = fake.new { self = "me@127.0.0.1:4370" }
    hosts_file.start(ctx, { path = path, poll_interval = 60000, debounce = 20 })
    -- the first read is synchronous; comments, blanks and this node itself are left out
    assert.same({ "n1@10.0.0.1:4370", "n2@10.0.0.2:4371" }, ctx.last_set())

    -- appending a line adds the node (through the fs event: the poll is a minute away)
    local f = assert(io.open(path, "a"))
    f:write("n3@10.0.0.3\n# n4@10.0.0.4\n")
    f:close()
    assert(wait(set_is(ctx, { "n1@10.0.0.1:4370", "n2@10.0.0.2:4371", "n3@10.0.0.3:4370" }), 3000))

    -- an editor replacing the file by rename is seen too, and a removed line removes the node
    proc.write(dir .. "/hosts.tmp", "n1@10.0.0.1\nn3@10.0.0.3\n")
    assert(os.rename(dir .. "/hosts.tmp", path))
    assert(wait(set_is(ctx, { "n1@10.0.0.1:4370", "n3@10.0.0.3:4370" }), 3000))
    local sets_before = #ctx.sets

    -- the file going away is a failed discovery: reported, set kept
    assert(os.remove(path))
    assert(wait(function() return #ctx.errors > 0 end, 3000))
    assert.matches("^ENOENT: cannot read .*hosts", ctx.errors[1])
    assert.equal(sets_before, #ctx.sets) -- the next step's read is the marker for a late set
    assert.same({ "n1@10.0.0.1:4370", "n3@10.0.0.3:4370" }, ctx.nodes())

    -- a bad line is an error too, naming the file and line; the set is kept
    proc.write(path, "n1@10.0.0.1\nnot a node\n")
    assert(wait(function() return #ctx.errors > 1 end, 3000))
    assert.matches("hosts:2: expected one node name a line", ctx.errors[2])
    assert.equal(sets_before, #ctx.sets)

    -- and once the file is good again, it rules
    proc.write(path, "n2@10.0.0.2:4371\n")
    assert(wait(set_is(ctx, { "n2@10.0.0.2:4371" }), 3000))
  end)

  it("polls when events are missed, and hands its set over on reload", function()
    local path = dir .. "/hosts"
    proc.write(path, "n1@10.0.0.1\n")
    ctx = fake.new()
    hosts_file.start(ctx, { path = path, poll_interval = 100 })
    assert.same({ "n1@10.0.0.1:4370" }, ctx.last_set())
    -- a missing file at start is reported, not fatal
    local ctx2 = fake.new()
    hosts_file.start(ctx2, { path = dir .. "/missing", poll_interval = 100 })
    assert.equal(1, #ctx2.errors)
    assert.equal(0, #ctx2.sets)
    -- three polls later, a file that stays missing is still reported once
    local ticks = ctx2.ticks
    assert(wait(function() return ctx2.ticks >= ticks + 3 end, 3000))
    assert.equal(1, #ctx2.errors)
    proc.write(dir .. "/missing", "n9@10.0.0.9\n")
    assert(wait(set_is(ctx2, { "n9@10.0.0.9:4370" }), 3000))
    hosts_file.stop(ctx2)
    ctx2:close()

    -- reload: the new instance starts from the old one's set even if its file is gone
    local state = hosts_file.stop(ctx)
    ctx:close()
    os.remove(path)
    ctx = fake.new()
    hosts_file.start(ctx, { path = path, poll_interval = 100 }, state)
    assert.same({ "n1@10.0.0.1:4370" }, ctx.sets[1])
    assert.equal(1, #ctx.sets)
    assert.equal(1, #ctx.errors)
  end)
end)

-- ---- DNS ----

local function dnsmasq_args(port, records)
  local args = {
    "--no-daemon", "--pid-file=", "--port=" .. port, "--listen-address=127.0.0.1", "--bind-interfaces",
    "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--local=/test/",
  }
  for _, r in ipairs(records) do args[#args + 1] = r end
  return args
end

local function start_dnsmasq(records, port)
  for _ = 1, 5 do
    local p_port = port or proc.free_port("both")
    local p = proc.start(DNSMASQ, dnsmasq_args(p_port, records))
    if p:wait_for_line("started, version", 5000, "stderr") then
      if not async.run_until(function() return p.exited end, 50) then return p, p_port end
    end
    p:stop(2000)
    if port then error("dnsmasq did not start on port " .. port .. ":\n" .. p:output()) end
  end
  error("dnsmasq did not start")
end

-- dnsmasq is part of the set-up (make deps installs dnsmasq-base): its absence fails the
-- test, naming it, never skips it
local function need_dnsmasq()
  if not uv.fs_access(DNSMASQ, "x") then
    error("no " .. DNSMASQ .. ": make deps installs dnsmasq-base", 2)
  end
end

describe("dns strategies against dnsmasq", function()
  local ctx, mod
  after_each(function()
    if ctx then
      mod.stop(ctx)
      ctx:close()
      ctx = nil
    end
    proc.kill_all()
  end)

  local A_RECORDS = {
    "--host-record=nodes.cluster.test,127.0.0.21",
    "--host-record=nodes.cluster.test,127.0.0.22,fd00::22",
    "--host-record=v6only.cluster.test,fd00::1",
  }

  it("dns: A/AAAA -> nodes; server gone keeps the set; a removed record drops the node", function()
    need_dnsmasq()
    local server, port = start_dnsmasq(A_RECORDS)
    mod, ctx = dns_strategy, fake.new()
    local config = { query = "nodes.cluster.test", node_basename = "app", port = 4371, interval = 200,
      resolver = "127.0.0.1:" .. port, timeout = 300 }
    assert.is_true(mod.validate(config))
    mod.start(ctx, config)
    local all = { "app@127.0.0.21:4371", "app@127.0.0.22:4371", "app@[fd00::22]:4371" }
    assert(wait(set_is(ctx, all), 5000))
    assert.equal(0, #ctx.errors)

    -- the server goes away: every poll fails, is reported, and nothing is removed
    server:stop(3000)
    local sets = #ctx.sets
    assert(wait(function() return #ctx.errors >= 2 end, 5000))
    assert.matches("^E[%u]+: ", ctx.errors[1])
    assert.equal(sets, #ctx.sets)
    assert.same(all, ctx.nodes())

    -- back without one address: a successful answer that no longer lists it drops it
    server = start_dnsmasq({ "--host-record=nodes.cluster.test,127.0.0.21" }, port)
    assert(wait(set_is(ctx, { "app@127.0.0.21:4371" }), 5000))
    server:stop(3000)
  end)

  it("dns: NXDOMAIN is an error (set kept), an empty NOERROR answer removes the nodes", function()
    need_dnsmasq()
    local server, port = start_dnsmasq(A_RECORDS)
    mod, ctx = dns_strategy, fake.new()
    local config = { query = "nodes.cluster.test", node_basename = "app", interval = 150,
      resolver = "127.0.0.1:" .. port, family = "ipv4" }
    mod.start(ctx, config)
    assert(wait(set_is(ctx, { "app@127.0.0.21:4370", "app@127.0.0.22:4370" }), 5000))
    -- the name disappears from the zone: NXDOMAIN
    server:stop(3000)
    server = start_dnsmasq({ "--host-record=v6only.cluster.test,fd00::1" }, port)
    assert(wait(function() return #ctx.errors >= 1 end, 5000))
    assert.matches("^ENOTFOUND", ctx.errors[#ctx.errors])
    assert.same({ "app@127.0.0.21:4370", "app@127.0.0.22:4370" }, ctx.nodes())
    mod.stop(ctx)
    ctx:close()

    -- a name with no A record: NOERROR, nothing listed
    ctx = fake.new()
    mod.start(ctx, { query = "v6only.cluster.test", node_basename = "app", interval = 150,
      resolver = "127.0.0.1:" .. port, family = "ipv4" }, { list = { "app@127.0.0.21:4370" } })
    assert.same({ "app@127.0.0.21:4370" }, ctx.sets[1]) -- handed-over state first
    assert(wait(set_is(ctx, {}), 5000))
    assert.equal(0, #ctx.errors)
    server:stop(3000)
  end)

  it("dns_srv: SRV -> basename@target:port; server gone keeps the set; a removed record drops it", function()
    need_dnsmasq()
    local records = {
      "--srv-host=_node._tcp.cluster.test,n1.cluster.test,4370,10,5",
      "--srv-host=_node._tcp.cluster.test,n2.cluster.test,4371,20,7",
    }
    local server, port = start_dnsmasq(records)
    mod, ctx = dns_srv, fake.new()
    local config = { query = "_node._tcp.cluster.test", node_basename = "edge", interval = 200,
      resolver = "127.0.0.1:" .. port, timeout = 300 }
    assert.is_true(mod.validate(config))
    mod.start(ctx, config)
    local both = { "edge@n1.cluster.test:4370", "edge@n2.cluster.test:4371" }
    assert(wait(set_is(ctx, both), 5000))

    server:stop(3000)
    local sets = #ctx.sets
    assert(wait(function() return #ctx.errors >= 2 end, 5000))
    assert.equal(sets, #ctx.sets)
    assert.same(both, ctx.nodes())

    server = start_dnsmasq({ records[2] }, port)
    assert(wait(set_is(ctx, { "edge@n2.cluster.test:4371" }), 5000))

    -- a query for an unknown service: NXDOMAIN, reported, set kept
    local errs = #ctx.errors
    mod.stop(ctx)
    ctx:close()
    ctx = fake.new()
    mod.start(ctx, { query = "_none._tcp.cluster.test", node_basename = "edge", interval = 150,
      resolver = "127.0.0.1:" .. port }, { list = both })
    assert(wait(function() return #ctx.errors >= 1 end, 5000))
    assert.matches("^ENOTFOUND", ctx.errors[1])
    assert.same(both, ctx.nodes())
    assert.is_true(errs >= 2)
    server:stop(3000)
  end)
end)

-- ---- keys: ctx.cookie_key / ctx.cookie_keys follow the keyring ----

describe("ctx.cookie_key and ctx.cookie_keys", function()
  it("derive from the primary and from every key, and follow a rotation without a restart", function()
    local ring = { "key-one-0123456789" }
    local ctx = fake.new { keys = function() return ring end }
    assert.equal(crypto.derive_key("key-one-0123456789", "gossip"), ctx.cookie_key("gossip"))
    assert.same({ crypto.derive_key("key-one-0123456789", "gossip") }, ctx.cookie_keys("gossip"))
    ring = { "key-two-0123456789", "key-one-0123456789" } -- install K2, use K2
    assert.equal(crypto.derive_key("key-two-0123456789", "gossip"), ctx.cookie_key("gossip"))
    assert.same({ crypto.derive_key("key-two-0123456789", "gossip"), crypto.derive_key("key-one-0123456789", "gossip") },
      ctx.cookie_keys("gossip"))
    assert.has_error(function() ctx.cookie_keys("") end, "bad argument #1 (purpose): expected a string")
    ctx:close()
    -- without a keyring, the cookie is a ring of one
    local c2 = fake.new { cookie = "just-a-cookie-012" }
    assert.same({ crypto.derive_key("just-a-cookie-012", "x") }, c2.cookie_keys("x"))
    c2:close()
  end)

  it("gossip announces under the primary and accepts a packet under any key of the ring", function()
    local ring = { "key-two-0123456789", "key-one-0123456789" }
    local ctx = fake.new { keys = function() return ring end }
    -- what the strategy checks a packet with: every key, primary first
    local k1 = crypto.derive_key("key-one-0123456789", "gossip")
    local pkt = gossip.encode(k1, "spec", "peer@127.0.0.1:4371", 1, crypto.random(gossip.NONCE_LEN))
    local ok
    for _, k in ipairs(ctx.cookie_keys("gossip")) do
      if gossip.decode(k, "spec", pkt) then ok = true end
    end
    assert.is_true(ok)
    ring = { "key-two-0123456789" } -- K1 removed: its packets no longer verify
    ok = false
    for _, k in ipairs(ctx.cookie_keys("gossip")) do
      if gossip.decode(k, "spec", pkt) then ok = true end
    end
    assert.is_false(ok)
    ctx:close()
  end)
end)

-- ---- gossip ----

describe("gossip packets", function()
  local key = crypto.derive_key("cookie-a", "gossip")
  local other = crypto.derive_key("cookie-b", "gossip")

  it("uses the transport's key derivation (HMAC-SHA256 extract, then expand 'user/gossip')", function()
    -- computed independently: prk = HMAC(key="clusterlua cookie v1", "cookie");
    -- out = HMAC(prk, "user/gossip\0")
    local hex = crypto.derive_key("cookie", "gossip"):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    assert.equal("0d7a52d26d6483187196a388f562200eb89eef5226de81c95b83ec1be8ad274e", hex)
    assert.are_not.equal(key, other)
    assert.equal(32, #key)
  end)

  it("round-trips and refuses what is wrong", function()
    local nonce = ("\1"):rep(8)
    local pkt = gossip.encode(key, "edge", "n1@10.0.0.1:4370", 1700000000123, nonce)
    local msg = assert(gossip.decode(key, "edge", pkt))
    assert.equal("n1@10.0.0.1:4370", msg.name)
    assert.equal(1700000000123, msg.ts)
    assert.equal(nonce, msg.nonce)
    local function reason(k, c, p) return select(2, gossip.decode(k, c, p)) end
    assert.equal("bad_mac", reason(other, "edge", pkt))
    assert.equal("wrong_cluster", reason(key, "other", pkt))
    assert.equal("malformed", reason(key, "edge", pkt:sub(1, -2)))
    assert.equal("malformed", reason(key, "edge", "hello"))
    assert.equal("version", reason(key, "edge", "\2" .. pkt:sub(2)))
    -- any flipped bit breaks the MAC
    local flipped = pkt:sub(1, 10) .. string.char((pkt:byte(11) + 1) % 256) .. pkt:sub(12)
    assert.is_nil(gossip.decode(key, "edge", flipped))
    -- a validly signed packet with a bad name is still refused
    assert.equal("malformed", reason(key, "edge", gossip.encode(key, "edge", "no-at-sign", 1, nonce)))
  end)
end)

-- One gossip instance on a fake ctx; prints every declared set and, before exiting,
-- its counters. arg: root name cookie cluster port group run_ms
local GOSSIP_NODE = [[
local root, name, cookie, cluster, port, group, run_ms, mode = ...
package.path = root .. "/spec/?.lua;" .. package.path
local uv = require "uv"
local fake = require "helpers.strategy_ctx"
local gossip = require "clusterlua.strategy.gossip"
local function out(s) io.stdout:write(s, "\n") io.stdout:flush() end
local ctx = fake.new { self = name, cookie = cookie, cluster = cluster,
  on_set = function(list) out("SET " .. table.concat(list, ",")) end,
  on_error = function(e) out("ERROR " .. e) end }
local config = { port = tonumber(port), group = group, interval = 100, interface = "127.0.0.1" }
if mode == "broadcast" then config = { port = tonumber(port), group = group, interval = 100, broadcast = true } end
assert(gossip.validate(config))
gossip.start(ctx, config)
out("READY")
local t = uv.new_timer()
t:start(tonumber(run_ms), 0, function()
  local s = gossip.stats(ctx)
  local d = {}
  for k, v in pairs(s.dropped) do d[#d + 1] = k .. "=" .. v end
  table.sort(d)
  out(("STATS sent=%d accepted=%d %s"):format(s.sent, s.accepted, table.concat(d, " ")))
  gossip.stop(ctx)
  ctx:close()
  t:close()
end)
]]

describe("gossip strategy in a network namespace", function()
  it("finds a peer process, and ignores one with another cookie", function()
    math.randomseed(uv.hrtime())
    local ns = netns.scratch { multicast = true }
    local dir = proc.tmpdir()
    finally(function()
      proc.kill_all()
      netns.del(ns)
      proc.rmtree(dir)
    end)

    local script = proc.write(dir .. "/gossip_node.lua", GOSSIP_NODE)
    local port, group = tostring(40000 + math.random(20000)), "239.255.77.9"
    local function node(name, cookie, cluster)
      return proc.start(netns.ip, netns.exec_args(ns, proc.bin, { script, proc.root, name, cookie, cluster or "spec",
        port, group, "2500" }), { log = dir .. "/" .. name:match "^[^@]+" .. ".log" })
    end
    local a = node("a@127.0.0.1:4370", "cookie-1")
    local b = node("b@127.0.0.1:4371", "cookie-1")
    local c = node("c@127.0.0.1:4372", "cookie-2")           -- wrong key
    local d = node("d@127.0.0.1:4373", "cookie-1", "other")  -- same key, other cluster
    for _, p in ipairs { a, b, c, d } do assert(p:wait_for_line("^STATS", 10000)) end

    -- each of a and b discovered the other and nobody else
    assert(a:find_line("^SET b@127%.0%.0%.1:4371$"), a:output())
    assert(b:find_line("^SET a@127%.0%.0%.1:4370$"), b:output())
    for _, p in ipairs { a, b } do
      assert.is_nil(p:find_line("c@"), p:output())
      assert.is_nil(p:find_line("d@"), p:output())
      assert.is_nil(p:find_line("^ERROR"), p:output())
      local _, _, bad_mac = p:find_line("bad_mac=(%d+)")
      assert.is_true(tonumber(bad_mac or 0) > 0, p:output())
      local _, _, wrong = p:find_line("wrong_cluster=(%d+)")
      assert.is_true(tonumber(wrong or 0) > 0, p:output())
    end
    -- and c, alone with its cookie, discovered nobody
    assert.is_nil(c:find_line("^SET .+"), c:output())
    assert.is_nil(d:find_line("^SET .+"), d:output())
    for _, p in ipairs { a, b, c, d } do assert.equal(0, p:wait_exit(5000)) end

    assert(netns.del(ns))
    assert.is_false(netns.exists(ns))
  end)

  it("finds a peer process by broadcast too", function()
    local ns = netns.scratch ()
    local dir = proc.tmpdir()
    finally(function()
      proc.kill_all()
      netns.del(ns)
      proc.rmtree(dir)
    end)
    local script = proc.write(dir .. "/gossip_node.lua", GOSSIP_NODE)
    local port = tostring(40000 + math.random(20000))
    -- the loopback's own broadcast address, inside the namespace: nothing else to reach
    local function node(name)
      return proc.start(netns.ip, netns.exec_args(ns, proc.bin, { script, proc.root, name, "cookie-1", "spec",
        port, "127.255.255.255", "1500", "broadcast" }))
    end
    local a, b = node("a@127.0.0.1:4370"), node("b@127.0.0.1:4371")
    for _, p in ipairs { a, b } do assert(p:wait_for_line("^STATS", 10000)) end
    assert(a:find_line("^SET b@127%.0%.0%.1:4371$"), a:output())
    assert(b:find_line("^SET a@127%.0%.0%.1:4370$"), b:output())
    for _, p in ipairs { a, b } do
      assert.is_nil(p:find_line("^ERROR"), p:output())
      assert.is_nil(p:find_line("^SET $"), p:output()) -- silence at start is not "no nodes"
      assert.equal(0, p:wait_exit(5000))
    end
  end)
end)

describe("examples", function()
  it("topologies validate, and the custom strategy declares the nodes of its JSON file", function()
    for _, f in ipairs { "examples/gossip/topology.lua", "examples/dns/topology.lua",
      "examples/custom_strategy/topology.lua" } do
      local t, err = topology.load(proc.root .. "/" .. f)
      assert(t, err)
    end
    local t = assert(topology.load(proc.root .. "/examples/custom_strategy/topology.lua"))
    local mod = t.topologies.provisioned.module
    local dir = proc.tmpdir()
    finally(function() proc.rmtree(dir) end)
    local path = proc.write(dir .. "/nodes.json", '{"nodes": ["a@127.0.0.1:1", "b@127.0.0.1:2"]}')
    local ctx = fake.new()
    mod.start(ctx, { path = path, interval = 100 })
    assert.same({ "a@127.0.0.1:1", "b@127.0.0.1:2" }, ctx.last_set())
    proc.write(path, "{ broken")
    assert(wait(function() return #ctx.errors > 0 end, 3000))
    assert.same({ "a@127.0.0.1:1", "b@127.0.0.1:2" }, ctx.nodes())
    proc.write(path, '{"nodes": ["b@127.0.0.1:2"]}')
    assert(wait(set_is(ctx, { "b@127.0.0.1:2" }), 3000))
    mod.stop(ctx)
    ctx:close()
  end)
end)
