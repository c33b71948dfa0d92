-- Sparse failure detection with real nodes (docs/design.md §4): in a cluster larger than
-- transport.watchers + 1, each node watches 3 peers and beats only to the 3 that watch
-- it; a stopped node is still reported down by EVERY other node within the bound (its
-- watchers declare it, confirm it through other peers, and announce it), a killed one at
-- once, and a node that is only paused for less than its timeout by nobody.
local uv = require "uv"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

local N = 20
local HB, TIMEOUT, WATCHERS, AWARENESS_MAX = 200, 400, 3, 3 -- the defaults (transport.*, detector.h)
local MAX_VOTING = 5 -- election.max_voting_nodes by default (election.h)
-- the bound on a node that runs on time is TIMEOUT + 1 after the stopped node's last
-- frame, plus one hop for the announcement; a node that runs late waits up to
-- TIMEOUT * (1 + AWARENESS_MAX). The hooks print from the Lua loop and this process
-- stamps the lines as it reads them: on a machine shared with other test runs that adds
-- this much, which is what is checked on top of the bound
local BOUND = TIMEOUT * (1 + AWARENESS_MAX)
local DELIVERY = 1500

local function esc(s) return (s:gsub("%p", "%%%0")) end

local function now()
  uv.update_time()
  return uv.now()
end

-- node i's /metrics as { ["name{labels}"] = value }
local function metrics(c, i)
  local p = proc.start("curl", { "-s", "-m", "3", "http://" .. c.admin[i] .. "/metrics" })
  p:wait_exit(5000)
  local m = {}
  for name, v in p.stdout:gmatch "\n([%w_]+[^ \n]*) ([%d%.e+%-]+)" do m[name] = tonumber(v) end
  return m
end

local function beats_out(m) return m['clusterlua_beats_total{direction="out"}'] or -1 end
local function probes(m, kind) return m[('clusterlua_probes_total{kind="%s"}'):format(kind)] or 0 end
local function downs(m, kind) return m[('clusterlua_downs_total{kind="%s"}'):format(kind)] or 0 end

-- a non-master node, by index
local function follower(c, master, avoid)
  for i = c.n, 1, -1 do
    if c.names[i] ~= master and i ~= avoid then return i end
  end
end

-- every node but `victim` prints node_down for it with `reason`: how long after t0 each did
local function all_report(c, victim, reason, mark, t0, within)
  local gone = esc(c.names[victim])
  local seen = {}
  for i = 1, c.n do
    if i ~= victim then
      if not c.nodes[i]:wait_for_line("^EVENT node_down " .. gone .. " " .. reason .. "$", within, nil, mark[i] + 1) then
        local tail = {}
        for j = mark[i] + 1, #c.nodes[i].lines do tail[#tail + 1] = c.nodes[i].lines[j].text end
        error(("node%d did not report node%d down (%s) within %d ms; its lines since:\n%s"):format(i, victim, reason,
          within, table.concat(tail, "\n")))
      end
      for j = mark[i] + 1, #c.nodes[i].lines do
        local l = c.nodes[i].lines[j]
        if l.text:match("^EVENT node_down " .. gone) then seen[i] = l.t - t0 break end
      end
    end
  end
  return seen
end

local function no_other_down(c, victim, mark)
  for i = 1, c.n do
    if i ~= victim then
      for j = mark[i] + 1, #c.nodes[i].lines do
        local l = c.nodes[i].lines[j].text
        assert.is_falsy(l:match "^EVENT node_down" and not l:match("^EVENT node_down " .. esc(c.names[victim])),
          "node" .. i .. ": " .. l)
      end
    end
  end
end

local function marks(c)
  local m = {}
  for i = 1, c.n do m[i] = #c.nodes[i].lines end
  return m
end

local function summary(seen)
  local worst, list = 0, {}
  for i, dt in pairs(seen) do
    worst = math.max(worst, dt)
    list[#list + 1] = ("node%d %d"):format(i, dt)
  end
  table.sort(list)
  return worst, table.concat(list, ", ")
end

describe("sparse failure detection, " .. N .. " nodes", function()
  local c, master
  setup(function()
    c = cluster.new { n = N, initial = 3, cluster = "sparse" }
    c:start_all()
    local all = {}
    for i = 1, N do all[i] = i end
    assert.truthy(proc.wait_until(c:all_connected(all), 60000), "the " .. N .. " nodes did not connect\n")
    master = c:wait_master(30000)
    assert.truthy(master, "no master")
  end)
  teardown(function()
    if c then
      for _, p in pairs(c.nodes) do if not p.exited then p:kill "sigcont" end end
      c:cleanup()
    end
  end)

  it("at rest, a node watches 3 peers, is watched by 3, and beats only to those", function()
    -- a node outside the voting configuration: a voting node also watches, and is watched
    -- by, every other voting node (node_election.c, pins), and the configuration grows to
    -- election.max_voting_nodes (5) with nodes the master picks, so any of them may be one.
    -- (Not the master either: its election heartbeats go to everyone, which only lowers
    -- its beats.)
    local vc
    assert.truthy(proc.wait_until(function()
      local h = c:health(c:index_of(master))
      if h and type(h.voting_config) == "table" and #h.voting_config == MAX_VOTING then
        vc = h.voting_config
        return true
      end
    end, 20000), "the voting configuration did not grow to " .. MAX_VOTING)
    local voting = {}
    for _, name in ipairs(vc) do voting[c:index_of(name)] = true end
    local i
    for j = c.n, 1, -1 do
      if not voting[j] and c.names[j] ~= master then i = j break end
    end
    local m0, t0 = metrics(c, i), now()
    -- every view agrees once the mesh is whole: each node is the successor of exactly 3
    assert.truthy(proc.wait_until(function()
      local m = metrics(c, i)
      return m.clusterlua_watching == WATCHERS and m.clusterlua_watched_by == WATCHERS
    end, 10000), "node" .. i .. " does not watch / is not watched by " .. WATCHERS)
    -- the marker: at least 100 beats more (a condition, not a sleep), then the rate
    local m1
    assert.truthy(proc.wait_until(function()
      m1 = metrics(c, i)
      return beats_out(m1) >= beats_out(m0) + 100
    end, 20000), "node" .. i .. " sent no beats")
    local secs = (now() - t0) / 1000
    local rate = (beats_out(m1) - beats_out(m0)) / secs
    -- watched by 3: 1000 / HB beats a second to each, plus one a second to each peer it watches
    local sparse = WATCHERS * 1000 / HB + WATCHERS
    local full = (N - 1) * 1000 / HB
    io.stdout:write(("\nsparse: node%d sends %.1f beats/s (watched by %d, watching %d; a full mesh would send %d/s)\n")
      :format(i, rate, m1.clusterlua_watched_by, m1.clusterlua_watching, full))
    assert.truthy(rate <= sparse * 1.25 + 2, ("%.1f beats/s, over the %d/s of 3 watchers"):format(rate, sparse))
    assert.truthy(rate < full / 2, ("%.1f beats/s: not sparse (a full mesh: %d/s)"):format(rate, full))
  end)

  it("a paused node (SIGSTOP) is reported down by every other node within the bound", function()
    local victim = follower(c, master)
    local mark = marks(c)
    local t0 = now()
    c.nodes[victim]:kill "sigstop"
    local seen = all_report(c, victim, "timeout", mark, t0, BOUND + DELIVERY + 5000)
    local worst, list = summary(seen)
    io.stdout:write(("sparse: SIGSTOP node%d reported down by all %d others, the last after %d ms (bound %d + %d): %s\n")
      :format(victim, N - 1, worst, BOUND, DELIVERY, list))
    for i, dt in pairs(seen) do
      assert.truthy(dt <= BOUND + DELIVERY, ("node%d after %d ms, over %d + %d"):format(i, dt, BOUND, DELIVERY))
    end
    no_other_down(c, victim, mark)
    -- its watchers declared it and announced it; the others acted on the announcement
    local announced, applied = 0, 0
    for i = 1, N do
      if i ~= victim then
        local m = metrics(c, i)
        announced, applied = announced + downs(m, "announced"), applied + downs(m, "applied")
      end
    end
    assert.truthy(announced >= 1 and applied >= 1, ("announced %d, applied %d"):format(announced, applied))
    -- it comes back: every node re-connects to it
    c.nodes[victim]:kill "sigcont"
    local all = {}
    for i = 1, N do all[i] = i end
    assert.truthy(proc.wait_until(c:all_connected(all), 30000), "node" .. victim .. " did not re-join")
  end)

  it("a killed node (kill -9) is reported by every node at once", function()
    local victim = follower(c, master, c.n) -- not the one paused above
    local mark = marks(c)
    local t0 = now()
    c.nodes[victim]:kill "sigkill"
    local seen = all_report(c, victim, "closed", mark, t0, 5000)
    local worst, list = summary(seen)
    io.stdout:write(("sparse: kill -9 node%d reported by all %d others, the last after %d ms: %s\n")
      :format(victim, N - 1, worst, list))
    -- the closed socket, not the detector: well under the timeout
    for i, dt in pairs(seen) do
      assert.truthy(dt < TIMEOUT, ("node%d after %d ms: not at once"):format(i, dt))
    end
    no_other_down(c, victim, mark)
  end)
end)

describe("sparse failure detection: a slow node", function()
  it("paused for less than its timeout is not declared down, though its watchers suspected it", function()
    -- a longer timeout, so that this process (which polls with curl) resumes the node well
    -- inside it on a busy machine; the rule is the same at any timeout
    local n, timeout = 8, 3000
    local c = cluster.new { n = n, initial = 3, cluster = "slow", extra = ("transport = { timeout_ms = %d },"):format(timeout) }
    finally(function()
      for _, p in pairs(c.nodes) do if not p.exited then p:kill "sigcont" end end
      c:cleanup()
    end)
    c:start_all()
    local all = {}
    for i = 1, n do all[i] = i end
    assert.truthy(proc.wait_until(c:all_connected(all), 60000), "the nodes did not connect")
    local master = c:wait_master(30000)
    assert.truthy(master, "no master")
    local victim = follower(c, master)
    local before, since = {}, {}
    for i = 1, n do
      if i ~= victim then
        before[i] = metrics(c, i)
        since[i] = c:listed(i)[c.names[victim]].since
      end
    end
    local mark = marks(c)
    local t0 = now()
    c.nodes[victim]:kill "sigstop"
    -- resumed as soon as a watcher suspects it (half its timeout) and asks others to probe
    local suspected = proc.wait_until(function()
      for i = 1, n do
        if i ~= victim and probes(metrics(c, i), "requested") > probes(before[i], "requested") then return true end
      end
      return false
    end, timeout * 2)
    local resumed = now() - t0
    c.nodes[victim]:kill "sigcont"
    assert.truthy(suspected, "nobody suspected the paused node")
    assert.truthy(resumed < timeout, ("resumed after %d ms: the test was too slow for a %d ms timeout"):format(resumed, timeout))
    -- the marker: every node has heard from it again, on the same connection (its since
    -- unchanged: a node_down would have closed it), and nobody declared it down
    assert.truthy(proc.wait_until(function()
      for i = 1, n do
        if i ~= victim then
          local e = (c:listed(i) or {})[c.names[victim]]
          if not e or e.connected ~= true or e.since ~= since[i] then return false end
        end
      end
      -- its watchers heard from it after it resumed: their suspicion is over
      local heard = 0
      for i = 1, n do
        if i ~= victim then
          local e = c:listed(i)[c.names[victim]]
          if e.last_heartbeat_ms < now() - t0 - resumed then heard = heard + 1 end
        end
      end
      return heard >= 3
    end, 10000), "a node lost the paused node, or its watchers did not hear from it again")
    for i = 1, n do
      if i ~= victim then
        local m = metrics(c, i)
        assert.equal(downs(before[i], "announced"), downs(m, "announced"), "node" .. i .. " declared it down")
        assert.equal(downs(before[i], "applied"), downs(m, "applied"), "node" .. i .. " acted on a down")
        assert.is_nil(c.nodes[i]:find_line("^EVENT node_down", nil, mark[i] + 1), "node_down on node" .. i)
      end
    end
    io.stdout:write(("\nsparse: node%d paused %d ms (timeout %d): suspected, probed, not declared down\n")
      :format(victim, resumed, timeout))
  end)
end)
