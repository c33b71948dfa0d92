-- SRV, A and AAAA lookups through c-ares against a dnsmasq this spec starts on a
-- free loopback port; and what happens when that server is slow or goes away.
local uv = require "uv"
local core = require "clusterlua.c.core"
local async = require "clusterlua.async"
local dns = require "clusterlua.dns"
local cdns = require "clusterlua.c.dns"
local proc = require "helpers.proc"
local go = proc.go

local DNSMASQ = "/usr/sbin/dnsmasq"

local function dnsmasq_args(port)
  return {
    "--no-daemon", "--pid-file=", "--port=" .. port, "--listen-address=127.0.0.1", "--bind-interfaces",
    "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
    -- answer NXDOMAIN for unknown names under test. instead of REFUSED (no upstream)
    "--local=/test/",
    "--srv-host=_node._tcp.cluster.test,n1.cluster.test,4370,10,5",
    "--srv-host=_node._tcp.cluster.test,n2.cluster.test,4371,20,7",
    "--host-record=n1.cluster.test,127.0.0.11",
    "--host-record=n2.cluster.test,127.0.0.12,fd00::12",
    "--host-record=multi.cluster.test,127.0.0.21",
    "--host-record=multi.cluster.test,127.0.0.22",
  }
end

-- Starts dnsmasq on port (or a free one, retrying if another process takes it first)
-- and waits until it answers.
local function start_dnsmasq(port)
  for _ = 1, 5 do
    local p_port = port or proc.free_port("both")
    local p = proc.start(DNSMASQ, dnsmasq_args(p_port))
    if p:wait_for_line("started, version", 5000, "stderr") then
      local ok = async.run_until(function() return p.exited end, 50) -- a late bind failure
      if not ok then return p, p_port end
    end
    p:stop(2000)
    if port then error("dnsmasq did not start on port " .. port .. ":\n" .. p:output()) end
  end
  error("dnsmasq did not start")
end

local function by_priority(a, b) return a.priority < b.priority end

describe("clusterlua.dns against dnsmasq", function()
  local server, port, opts

  setup(function()
    server, port = start_dnsmasq()
    opts = { server = "127.0.0.1:" .. port, timeout = 3000 }
  end)
  teardown(function()
    if server then server:stop(3000) end
    proc.kill_all()
  end)

  it("looks up SRV records", function()
    go(function()
      local recs, err = dns.srv("_node._tcp.cluster.test", opts)
      assert.is_table(recs, err)
      table.sort(recs, by_priority)
      assert.same({
        { target = "n1.cluster.test", port = 4370, priority = 10, weight = 5 },
        { target = "n2.cluster.test", port = 4371, priority = 20, weight = 7 },
      }, recs)
    end)
  end)

  it("looks up A, AAAA and both", function()
    go(function()
      assert.same({ "127.0.0.11" }, dns.a("n1.cluster.test", opts))
      local multi = dns.a("multi.cluster.test", opts)
      table.sort(multi)
      assert.same({ "127.0.0.21", "127.0.0.22" }, multi)
      assert.same({ "fd00::12" }, dns.aaaa("n2.cluster.test", opts))
      local both = dns.resolve("n2.cluster.test", opts)
      table.sort(both)
      assert.same({ "127.0.0.12", "fd00::12" }, both)
      -- one family missing is not an error for resolve
      assert.same({ "127.0.0.11" }, dns.resolve("n1.cluster.test", opts))
    end)
  end)

  it("returns ENOTFOUND for an unknown name and ENODATA for a missing type", function()
    go(function()
      local r, err, code = dns.a("nobody.cluster.test", opts)
      assert.is_nil(r)
      assert.equal("ENOTFOUND", code)
      assert.matches("^ENOTFOUND: .*nobody%.cluster%.test A", err)
      r, err, code = dns.aaaa("n1.cluster.test", opts)
      assert.is_nil(r)
      assert.equal("ENODATA", code)
      r, err, code = dns.srv("_none._tcp.cluster.test", opts)
      assert.is_nil(r)
      assert.equal("ENOTFOUND", code)
      r, err, code = dns.resolve("nobody.cluster.test", opts)
      assert.is_nil(r)
      assert.equal("ENOTFOUND", code)
    end)
  end)

  it("calls back when given a callback, from the main thread too", function()
    local got = {}
    dns.a("n1.cluster.test", opts, function(r, err, code) got.a = { r, err, code } end)
    dns.srv("_node._tcp.cluster.test", opts, function(r) got.srv = r end)
    dns.srv("_none._tcp.cluster.test", opts, function(r, err, code) got.none = { r, err, code } end)
    assert(async.run_until(function() return got.a and got.none and got.srv ~= nil or false end, 15000))
    assert.same({ "127.0.0.11" }, got.a[1])
    assert.equal(2, #got.srv)
    assert.is_nil(got.none[1])
    assert.equal("ENOTFOUND", got.none[3])
  end)

  it("answers many concurrent queries", function()
    local answered, wrong = 0, 0
    for i = 1, 100 do
      local name = (i % 2 == 0) and "n1.cluster.test" or "n2.cluster.test"
      local want = (i % 2 == 0) and "127.0.0.11" or "127.0.0.12"
      dns.a(name, opts, function(r)
        answered = answered + 1
        if not r or r[1] ~= want then wrong = wrong + 1 end
      end)
    end
    assert(async.run_until(function() return answered == 100 end, 10000))
    assert.equal(0, wrong)
  end)

  it("refuses misuse", function()
    assert.has_error(function() dns.a("n1.cluster.test", opts) end,
      "bad argument to 'a': must be called from a coroutine (or pass a callback)")
    assert.has_error(function() dns.srv(42, function() end) end)
    assert.has_error(function() dns.srv("", function() end) end)
    assert.has_error(function() dns.a("x.test", { timeout = "soon" }, function() end) end)
    assert.has_error(function() dns.a("x.test", { server = 53 }, function() end) end)
    assert.has_error(function() dns.a("x.test", opts, "not a function") end)
    assert.has_error(function() cdns.channel { servers = "not an address" } end)
    assert.has_error(function() cdns.channel { timeout = 0 } end)
  end)

  describe("the raw channel", function()
    it("queries, survives losing its last reference while busy, and closes", function()
      local ch = cdns.channel { servers = "127.0.0.1:" .. port, timeout = 1000, tries = 2 }
      local got
      ch:query("A", "n1.cluster.test", function(r, err) got = r or err end)
      ch = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      assert(async.run_until(function() return got ~= nil end, 5000))
      assert.same({ "127.0.0.11" }, got)
    end)

    it("answers pending queries with ECANCELLED on close, later, from the loop", function()
      local ch = cdns.channel { servers = "127.0.0.1:" .. port }
      local got
      ch:query("SRV", "_node._tcp.cluster.test", function(r, err, code) got = { r, err, code } end)
      assert.equal(1, ch:pending())
      ch:close()
      assert.is_nil(got) -- not from inside close()
      assert(async.run_until(function() return got ~= nil end, 2000))
      assert.is_nil(got[1])
      assert.equal("ECANCELLED", got[3])
      assert.has_error(function() ch:query("A", "n1.cluster.test", function() end) end)
      ch:close() -- twice is fine
    end)

    it("lets a callback close its channel and start new queries", function()
      local ch = cdns.channel { servers = "127.0.0.1:" .. port }
      local ch2 = cdns.channel { servers = "127.0.0.1:" .. port }
      local results = {}
      ch:query("A", "n1.cluster.test", function(r)
        results.first = r
        ch:close()
        ch2:query("A", "n2.cluster.test", function(r2) results.second = r2 end)
      end)
      ch:query("A", "n2.cluster.test", function(r, err, code) results.cancelled = code or "answered" end)
      assert(async.run_until(function() return results.second ~= nil and results.cancelled ~= nil end, 5000))
      assert.same({ "127.0.0.11" }, results.first)
      assert.same({ "127.0.0.12" }, results.second)
      -- the second query may have been answered in the same read as the first
      assert.is_truthy(results.cancelled == "ECANCELLED" or results.cancelled == "answered")
      ch2:close()
    end)

    it("reports a callback error and goes on", function()
      local before = core.errors()
      local ch = cdns.channel { servers = "127.0.0.1:" .. port }
      local after
      ch:query("A", "n1.cluster.test", function() error("expected error from a DNS callback (ignore this log line)") end)
      ch:query("A", "n2.cluster.test", function(r) after = r end)
      assert(async.run_until(function() return after ~= nil end, 5000))
      assert.equal(before + 1, core.errors())
      assert.same({ "127.0.0.12" }, after)
      ch:close()
    end)
  end)

  it("times out against a server that never answers", function()
    local silent = uv.new_udp()
    assert(silent:bind("127.0.0.1", 0))
    local silent_port = silent:getsockname().port
    local heard = 0
    silent:recv_start(function(_, data) if data then heard = heard + 1 end end)
    go(function()
      local t0 = core.now()
      local r, err, code = dns.a("n1.cluster.test", { server = "127.0.0.1:" .. silent_port, timeout = 300 })
      local dt = core.now() - t0
      assert.is_nil(r)
      assert.equal("ETIMEDOUT", code)
      assert.matches("^ETIMEDOUT", err)
      assert.is_true(dt >= 250 and dt < 2000, "took " .. dt)
    end)
    silent:close()
    assert.is_true(heard >= 1)
  end)

  it("returns an error when the server goes away, and recovers when it is back", function()
    go(function() assert.same({ "127.0.0.11" }, dns.a("n1.cluster.test", opts)) end)
    server:stop(3000)
    go(function()
      local quick = { server = opts.server, timeout = 1000 }
      local r, err, code = dns.a("n1.cluster.test", quick)
      assert.is_nil(r)
      -- loopback answers a closed UDP port with ICMP: refused, or a timeout at worst
      assert.is_truthy(code == "ECONNREFUSED" or code == "ETIMEDOUT", err)
      r, err, code = dns.srv("_node._tcp.cluster.test", quick)
      assert.is_nil(r)
      assert.is_truthy(code == "ECONNREFUSED" or code == "ETIMEDOUT", err)
    end)
    server = start_dnsmasq(port)
    go(function() assert.same({ "127.0.0.11" }, dns.a("n1.cluster.test", opts)) end)
  end)
end)

-- Under `make test-asan` these are the leak and use-after-free checks of the channel's
-- shutdown paths: the runtime closes the loop's handles before the Lua state.
describe("clusterlua.c.dns at process exit", function()
  local dir
  before_each(function() dir = proc.tmpdir() end)
  after_each(function()
    proc.kill_all()
    proc.rmtree(dir)
  end)

  local function run(src, args)
    local f = proc.write(dir .. "/exit.lua", src)
    local all = { f }
    for _, a in ipairs(args or {}) do all[#all + 1] = a end
    return proc.run(proc.bin, all, { timeout = 10000 })
  end

  it("exits cleanly with queries in flight (os.exit from a callback)", function()
    local src = [[
      local uv = require "uv"
      local dns = require "clusterlua.dns"
      local cdns = require "clusterlua.c.dns"
      local silent = uv.new_udp()
      assert(silent:bind("127.0.0.1", 0))
      local port = silent:getsockname().port
      dns.a("x.test", { server = "127.0.0.1:" .. port, timeout = 5000 }, function() print("answered") end)
      local ch = cdns.channel { servers = "127.0.0.1:" .. port }
      ch:query("SRV", "y.test", function() print("answered") end)
      uv.new_timer():start(50, 0, function() print("exiting") os.exit(tonumber(arg[1])) end)
    ]]
    for _, status in ipairs { 0, 7 } do
      local code, out, err = run(src, { tostring(status) })
      assert.equal(status, code, err)
      assert.equal("exiting\n", out)
      assert.not_matches("Sanitizer", err)
    end
  end)

  it("exits cleanly when a live channel is collected with the Lua state", function()
    local code, out, err = run [[
      local uv = require "uv"
      local cdns = require "clusterlua.c.dns"
      local u = uv.new_udp()
      assert(u:bind("127.0.0.1", 0))
      u:recv_start(function() end)
      local ch = cdns.channel { servers = "127.0.0.1:" .. u:getsockname().port, timeout = 50, tries = 1 }
      ch:query("A", "x.test", function(r, e, c) print(c) u:close() end)
      keep = ch -- still referenced when the loop ends
    ]]
    assert.equal(0, code, err)
    assert.equal("ETIMEDOUT\n", out)
    assert.not_matches("Sanitizer", err)
  end)
end)
