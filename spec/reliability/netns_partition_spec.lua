-- Partitions across real network stacks: 5 master-eligible nodes and a writer node
-- (role "client"), each in its own network namespace with its own address
-- (10.203.0.k/24) on a bridge that lives in a sixth, "switch" namespace. Nothing is
-- added to the root namespace and no namespace has a route off its /24 (nothing can
-- leave the machine). Partitions are iptables DROP rules inside the node namespaces.
--
-- Needs root, `ip netns` and iptables (make deps installs them); without them it fails,
-- naming what is missing, under `make test` and `make test-netns` alike.
local uv = require "uv"
local cjson = require "cjson.safe"
local proc = require "helpers.proc"
local lib = require "reliability.lib"
local netns = require "helpers.netns"

local IP = netns.ip
local N = 5                 -- master-eligible nodes; node N+1 is the writer
local BOUND_MS = tonumber(os.getenv "RELI_FAULT_BOUND_MS" or "") or 5000 -- a new master within this
local HOLD_MS = 5000        -- how long each partition lasts
local PREFIX = "clrel"


local function run(cmd, args)
  local code, out, err = proc.run(cmd, args, { timeout = 10000 })
  if code ~= 0 then error(("%s %s: exit %s: %s%s"):format(cmd, table.concat(args, " "), tostring(code),
    tostring(out), tostring(err)), 2) end
  return out
end
local function ip(...) return run(IP, { ... }) end

-- namespaces left behind by a run that was killed (its pid is gone) are removed
local function remove_stale()
  for _, ns in ipairs(netns.list()) do
    local pid = ns:match("^" .. PREFIX .. "%w*%-(%d+)%-")
    if pid and not uv.fs_stat("/proc/" .. pid) then proc.run(IP, { "netns", "del", ns }, { timeout = 5000 }) end
  end
end

describe("partitions across network namespaces", function()
  it("5 nodes: isolated master, 2|3 split, one-way loss, ring; no split brain, nothing acknowledged lost", function()
    netns.require { iptables = true }
    remove_stale()
    local seed = lib.seed
    math.randomseed(seed)
    local id = ("%d-%d"):format(uv.os_getpid(), math.random(1e6))
    local sw = PREFIX .. "sw-" .. id
    local ns, addr = {}, {}
    for k = 1, N + 1 do
      ns[k] = ("%s%d-%s"):format(PREFIX, k, id)
      addr[k] = "10.203.0." .. k
    end
    local dir = proc.tmpdir()
    local nodes, old = {}, {}
    finally(function()
      proc.kill_all()
      for k = 1, N + 1 do proc.run(IP, { "netns", "del", ns[k] }, { timeout = 5000 }) end
      proc.run(IP, { "netns", "del", sw }, { timeout = 5000 })
      if os.getenv "RELI_KEEP" then io.stderr:write("netns: logs kept in " .. dir .. "\n") else proc.rmtree(dir) end
    end)

    -- the switch: a bridge inside its own namespace
    ip("netns", "add", sw)
    ip("-n", sw, "link", "set", "lo", "up")
    ip("-n", sw, "link", "add", "br0", "type", "bridge")
    ip("-n", sw, "link", "set", "br0", "up")
    for k = 1, N + 1 do
      ip("netns", "add", ns[k])
      ip("-n", sw, "link", "add", "p" .. k, "type", "veth", "peer", "name", "eth0", "netns", ns[k])
      ip("-n", sw, "link", "set", "p" .. k, "master", "br0")
      ip("-n", sw, "link", "set", "p" .. k, "up")
      ip("-n", ns[k], "link", "set", "lo", "up")
      ip("-n", ns[k], "addr", "add", addr[k] .. "/24", "dev", "eth0")
      ip("-n", ns[k], "link", "set", "eth0", "up")
    end

    local names, hosts, imn = {}, {}, {}
    for k = 1, N + 1 do
      names[k] = ("node%d@%s:4370"):format(k, addr[k])
      hosts[k] = ("%q"):format(names[k])
      if k <= N then imn[k] = ("%q"):format("node" .. k) end
    end
    proc.write(dir .. "/hooks.lua", lib.HOOKS)
    local topo = proc.write(dir .. "/topology.lua", ([[
return {
  cluster = "netns",
  topologies = { all = { strategy = "static", config = { hosts = { %s } } } },
  election = { initial_master_nodes = { %s } },
  hooks = "hooks.lua",
}
]]):format(table.concat(hosts, ", "), table.concat(imn, ", ")))
    local ADMIN = "127.0.0.1:9200" -- each namespace has its own loopback
    local function start(k, extra, env)
      local args = { "netns", "exec", ns[k], proc.bin, "--name", names[k], "--cookie", "netns-cookie",
        "--admin", ADMIN, "--data", dir .. "/data" .. k }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      args[#args + 1] = topo
      if nodes[k] then old[#old + 1] = nodes[k] end
      nodes[k] = proc.start(IP, args, { env = env, log = dir .. "/node" .. k .. ".log" })
    end
    local function snap(k) return lib.snapshot(ADMIN, ns[k]) end
    local function ipt(k, ...) return run(IP, { "netns", "exec", ns[k], "iptables", ... }) end
    local function drop(k, from) ipt(k, "-A", "INPUT", "-s", addr[from], "-j", "DROP") end
    local function heal() for k = 1, N + 1 do ipt(k, "-F", "INPUT") end end

    for k = 1, N do start(k) end
    start(N + 1, { "--roles", "client" }, { RELI_WRITERS = "2", RELI_WRITE_MS = "50" })

    local report = {}
    local function say(fmt, ...)
      local l = fmt:format(...)
      report[#report + 1] = l
      io.stdout:write("netns: ", l, "\n")
      io.stdout:flush()
    end

    -- waits until the listed nodes agree on one master (none of the nodes `excluded`
    -- lists); returns it, ms
    local function wait_master(which, timeout, excluded)
      local t0, m = lib.now(), nil
      local ok = proc.wait_until(function()
        m = nil
        local term
        for _, k in ipairs(which) do
          local s = snap(k)
          if not s or not s.master then return false end
          if m and (s.master ~= m or s.term ~= term) then return false end
          m, term = s.master, s.term
        end
        for _, k in ipairs(excluded or {}) do if names[k] == m then return false end end
        return true
      end, timeout)
      return ok and m or nil, lib.now() - t0
    end
    local all, voters = {}, {}
    for k = 1, N + 1 do all[k] = k end
    for k = 1, N do voters[k] = k end
    local function index_of(name) for k = 1, N do if names[k] == name then return k end end end

    local master = wait_master(all, 20000)
    assert.truthy(master, "no master at start")
    say("seed %d; initial master %s", seed, master)

    -- one partition: `minority` (node indexes) must never have a master nor commit once
    -- the fault is detected; `majority` must agree on a master within BOUND_MS.
    local function scenario(label, apply, minority, majority)
      local before = wait_master(all, 15000)
      assert.truthy(before, label .. ": no master before the fault")
      apply()
      local t_fault = lib.now()
      local m, took = wait_master(majority, BOUND_MS, minority)
      assert.truthy(m, ("%s: the majority had no master within %d ms"):format(label, BOUND_MS))
      for _, k in ipairs(minority) do
        assert.are_not.equal(names[k], m, label .. ": a minority node is the majority's master")
      end
      say("%s: majority master %s after %d ms (was %s)", label, m, took, before)
      -- from the detection bound on, the minority has no master and commits nothing
      proc.wait_until(function() return lib.now() - t_fault >= math.min(BOUND_MS, 2000) end, BOUND_MS + 1000)
      local mark = {}
      for _, k in ipairs(minority) do mark[k] = #nodes[k].lines end
      local checks = 0
      proc.wait_until(function()
        for _, k in ipairs(minority) do
          local s = snap(k)
          checks = checks + 1
          assert.truthy(s, label .. ": minority node" .. k .. " does not answer")
          assert.is_nil(s.master, ("%s: minority node%d has master %s"):format(label, k, tostring(s.master)))
        end
        return lib.now() - t_fault >= HOLD_MS
      end, HOLD_MS + 10000)
      for _, k in ipairs(minority) do
        for i = mark[k] + 1, #nodes[k].lines do
          local t = nodes[k].lines[i].text
          assert.is_nil(t:match "^EVENT committed", ("%s: minority node%d committed: %s"):format(label, k, t))
        end
      end
      heal()
      local m2, took2 = wait_master(all, 20000)
      assert.truthy(m2, label .. ": no single master after healing")
      say("%s: %d minority checks clean; healed: master %s after %d ms", label, checks, m2, took2)
    end

    -- 1. the master alone (both directions, the writer included)
    local mi = index_of(master)
    local rest = {}
    for k = 1, N do if k ~= mi then rest[#rest + 1] = k end end
    scenario("isolated master node" .. mi, function()
      for k = 1, N + 1 do
        if k ~= mi then drop(mi, k); drop(k, mi) end
      end
    end, { mi }, rest)

    -- 2. 2|3 split, the current master on the side of two; the writer reaches both sides
    master = wait_master(all, 15000)
    mi = index_of(master)
    local other = mi % N + 1
    local two, three = { mi, other }, {}
    for k = 1, N do if k ~= mi and k ~= other then three[#three + 1] = k end end
    scenario(("2|3 split {%d,%d}|{%s}"):format(mi, other, table.concat(three, ",")), function()
      for _, a in ipairs(two) do
        for _, b in ipairs(three) do drop(a, b); drop(b, a) end
      end
    end, two, three)

    -- 3. one-way loss: the master receives nothing (its packets still go out)
    master = wait_master(all, 15000)
    mi = index_of(master)
    rest = {}
    for k = 1, N do if k ~= mi then rest[#rest + 1] = k end end
    scenario("one-way loss into master node" .. mi, function()
      for k = 1, N + 1 do if k ~= mi then drop(mi, k) end end
    end, { mi }, rest)

    -- 4. overlapping majorities: a ring, each node hears only its two neighbours (each
    -- sees 3 of 5). No minority: only safety (checked below) and recovery.
    local ring_t0 = lib.now()
    for k = 1, N do
      for d = 2, 3 do drop(k, (k + d - 1) % N + 1) end
    end
    local masters_seen = {}
    proc.wait_until(function()
      for k = 1, N do
        local s = snap(k)
        if s and s.master then masters_seen[s.master .. "@term" .. s.term] = true end
      end
      return lib.now() - ring_t0 >= HOLD_MS
    end, HOLD_MS + 10000)
    heal()
    local seen = {}
    for k in pairs(masters_seen) do seen[#seen + 1] = k end
    table.sort(seen)
    local m3, took3 = wait_master(all, 20000)
    assert.truthy(m3, "ring: no single master after healing")
    say("ring: masters seen during the ring: %s; healed: master %s after %d ms", table.concat(seen, " "), m3, took3)

    -- the end: the writer stops; every node has the same state; nothing acknowledged lost
    nodes[N + 1]:stop(3000)
    local snaps
    local converged = proc.wait_until(function()
      snaps = {}
      for k = 1, N do
        snaps[k] = snap(k)
        if not snaps[k] or not snaps[k].master then return false end
        if k > 1 and (snaps[k].master ~= snaps[1].master or snaps[k].version ~= snaps[1].version
            or snaps[k].term ~= snaps[1].term) then return false end
      end
      return true
    end, 20000)
    assert.truthy(converged, "no convergence: " .. tostring(cjson.encode(snaps)))
    local ck = lib.checker()
    for k, p in ipairs(old) do ck:feed("old" .. k, p) end
    for k = 1, N + 1 do ck:feed("node" .. k, nodes[k]) end
    for k = 1, N do
      assert.same(snaps[1].user, snaps[k].user)
      ck:check_acks(snaps[k].user, "node" .. k)
    end
    say("%d elections, %d writes acknowledged (%d refused), %d violations", ck.elections, ck.ack_count,
      ck.nack_count, #ck.violations)
    assert.equal(0, #ck.violations, table.concat(ck.violations, "\n"))
    assert.truthy(ck.ack_count > 0)
  end)
end)
