-- CPU starvation: every core saturated (stress-ng --cpu <nproc>, or busy Lua processes
-- when stress-ng is missing) for a bounded period; a healthy 3-node cluster with the
-- DEFAULT transport and election settings must see no node_down and no master change.
local uv = require "uv"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"
local lib = require "reliability.lib"

local SECONDS = tonumber(os.getenv "RELI_STARVE_SECONDS" or "") or 20

-- SIGSTOPs node `victim`; every other node must report it down (reason timeout) and
-- nobody else. Returns when each reported it, in ms after the stop, and the other
-- node_down lines seen meanwhile. Every wait is bounded by bound + delivery + 5 s.
local function stop_and_check(c, victim, mark, bound, delivery)
  local gone = c.names[victim]:gsub("%p", "%%%0")
  local t_stop = lib.now()
  c.nodes[victim]:kill "sigstop"
  local seen = {}
  for i = 1, c.n do
    if i ~= victim then
      if not c.nodes[i]:wait_for_line("^EVENT node_down " .. gone .. " timeout$", bound + delivery + 5000, nil, mark[i] + 1) then
        local tail = {}
        for j = math.max(mark[i] + 1, #c.nodes[i].lines - 8), #c.nodes[i].lines do tail[#tail + 1] = c.nodes[i].lines[j].text end
        error(("node%d did not report the stopped node down; its last lines:\n%s"):format(i, table.concat(tail, "\n")))
      end
      for j = mark[i] + 1, #c.nodes[i].lines do
        local l = c.nodes[i].lines[j]
        if l.text:match("^EVENT node_down " .. gone) then seen[i] = (l.t or lib.now()) - t_stop break end
      end
    end
  end
  local bad = {}
  for i = 1, c.n do
    if i ~= victim then
      for j = mark[i] + 1, #c.nodes[i].lines do
        local l = c.nodes[i].lines[j].text
        if l:match "^EVENT node_down" and not l:match("^EVENT node_down " .. gone) then
          bad[#bad + 1] = "node" .. i .. ": " .. l
        end
      end
    end
  end
  return seen, bad
end

-- the machine's busy fraction (all cores) over a window, from /proc/stat
local function cpu_times()
  local f = assert(io.open "/proc/stat")
  local line = f:read "*l"
  f:close()
  local total, idle, k = 0, 0, 0
  for v in line:gmatch "%d+" do
    k = k + 1
    total = total + tonumber(v)
    if k == 4 or k == 5 then idle = idle + tonumber(v) end -- idle, iowait
  end
  return total, idle
end

local function ncpu()
  local n = #(uv.cpu_info() or {})
  return n > 0 and n or 2
end

describe("CPU starvation", function()
  it(("causes no node_down and no master change in %d s with every core busy"):format(SECONDS), function()
    local c = cluster.new { n = 3, hooks = lib.HOOKS, cluster = "starve" }
    finally(function() c:cleanup() end)
    c:start_all()
    local master, term = c:wait_master(15000)
    assert.truthy(master)
    assert.truthy(proc.wait_until(lib.settled(c), 15000), "the cluster did not settle after its bootstrap")
    local mark = {}
    for i = 1, 3 do mark[i] = #c.nodes[i].lines end
    local cpus = ncpu()
    local hogs = {}
    if uv.fs_access("/usr/bin/stress-ng", "x") then
      hogs[1] = proc.start("/usr/bin/stress-ng", { "--cpu", tostring(cpus), "--timeout", SECONDS .. "s", "--quiet" })
    else
      local busy = proc.write(c.dir .. "/busy.lua", "local t = os.time() + tonumber(arg[1]) while os.time() < t do end")
      for k = 1, cpus do hogs[k] = proc.start(proc.bin, { busy, tostring(SECONDS) }) end
    end
    local t0 = lib.now()
    local worst, polls = 0, 0
    proc.wait_until(function()
      local t = lib.now()
      local h = c:health(1)
      local took = lib.now() - t
      polls = polls + 1
      if took > worst then worst = took end
      assert.truthy(h, "node1 stopped answering its health endpoint")
      return lib.now() - t0 >= SECONDS * 1000
    end, SECONDS * 1000 + 15000)
    for _, h in ipairs(hogs) do h:stop(5000) end
    local bad = {}
    for i = 1, 3 do
      for j = mark[i] + 1, #c.nodes[i].lines do
        local l = c.nodes[i].lines[j].text
        if l:match "^EVENT node_down" or l:match "^EVENT master_changed" then bad[#bad + 1] = "node" .. i .. ": " .. l end
      end
    end
    local m2, t2 = c:wait_master(5000)
    io.stdout:write(("starvation: %d cpus busy for %d s, %d health polls (slowest %d ms), %d spurious events\n")
      :format(cpus, SECONDS, polls, worst, #bad))
    assert.equal(0, #bad, table.concat(bad, "\n"))
    assert.equal(master, m2)
    assert.equal(term, t2)
  end)

  -- Overload must not look like failure, and must not hide one either: with every core
  -- oversubscribed, a node that really stops is still reported down within the bound the
  -- configuration gives (transport.timeout_ms * (1 + CL_DET_AWARENESS_MAX), while the
  -- nodes themselves run late; design.md §4), and nobody else is.
  it("with every core oversubscribed, reports a stopped node down within its bound, and nobody else", function()
    local TIMEOUT, MAX_AWARENESS = 400, 3 -- the defaults (transport.timeout_ms; detector.h)
    local BOUND = TIMEOUT * (1 + MAX_AWARENESS)
    -- the hooks print from the Lua loop and this process stamps the lines, both starved
    -- too: what is checked on top of the bound is their delivery, not the detector
    local DELIVERY = 1500
    local c = cluster.new { n = 3, hooks = lib.HOOKS, cluster = "starve2" }
    local hogs = {}
    -- one finally for everything: busted keeps only the last one a test registers
    finally(function()
      for _, h in ipairs(hogs) do h:stop(5000) end
      for _, p in pairs(c.nodes) do if not p.exited then p:kill "sigcont" end end
      c:cleanup()
    end)
    c:start_all()
    local master = c:wait_master(15000)
    assert.truthy(master)
    assert.truthy(proc.wait_until(lib.settled(c), 15000), "the cluster did not settle after its bootstrap")
    -- stop a node that is not the master, so the check is the detector's alone
    local victim = c:index_of(master) == 3 and 2 or 3
    local mark = {}
    for i = 1, 3 do mark[i] = #c.nodes[i].lines end
    local cpus = ncpu()
    local secs = 12
    if uv.fs_access("/usr/bin/stress-ng", "x") then
      hogs[1] = proc.start("/usr/bin/stress-ng", { "--cpu", tostring(2 * cpus), "--timeout", secs .. "s", "--quiet" })
    else
      local busy = proc.write(c.dir .. "/busy.lua", "local t = os.time() + tonumber(arg[1]) while os.time() < t do end")
      for k = 1, 2 * cpus do hogs[k] = proc.start(proc.bin, { busy, tostring(secs) }) end
    end
    -- 3 s of saturation first: the nodes' own lateness, if any, has set in
    local t_sat = lib.now()
    proc.wait_until(function() return lib.now() - t_sat >= 3000 end, 10000)
    local seen, bad = stop_and_check(c, victim, mark, BOUND, DELIVERY)
    for _, h in ipairs(hogs) do h:stop(5000) end
    c.nodes[victim]:kill "sigcont"
    io.stdout:write(("starvation: %d cpu hogs; stopped node%d reported down after %s ms (bound %d + %d delivery)\n")
      :format(2 * cpus, victim, table.concat({ tostring(seen[1] or "-"), tostring(seen[2] or "-"), tostring(seen[3] or "-") }, "/"),
        BOUND, DELIVERY))
    assert.equal(0, #bad, table.concat(bad, "\n"))
    for i, dt in pairs(seen) do
      assert.truthy(dt <= BOUND + DELIVERY, ("node%d reported it after %d ms, over %d + %d"):format(i, dt, BOUND, DELIVERY))
    end
  end)
  -- The same, when what saturates the machine is the cluster itself: 8 nodes sending
  -- each other messages flat out (RELI_LOAD), no outside hog. The heartbeats compete
  -- with the nodes' own traffic for the CPU, the sockets and the loops.
  it("saturated by its own traffic, reports a stopped node down within its bound, and nobody else", function()
    local TIMEOUT, MAX_AWARENESS = 400, 3
    local BOUND = TIMEOUT * (1 + MAX_AWARENESS)
    local DELIVERY = 1500
    local N = 8
    local c = cluster.new { n = N, initial = 3, hooks = lib.HOOKS, cluster = "starve3" }
    local victim
    finally(function()
      if victim and c.nodes[victim] and not c.nodes[victim].exited then c.nodes[victim]:kill "sigcont" end
      c:cleanup()
    end)
    local flag = c.dir .. "/load"
    c:start_all(nil, { RELI_LOAD = "2", RELI_LOAD_FLAG = flag })
    local master = c:wait_master(20000)
    assert.truthy(master)
    assert.truthy(proc.wait_until(lib.settled(c), 20000), "the cluster did not settle")
    proc.write(flag, "go")
    -- the precondition: the machine is saturated (over 2 s, at least 90 % busy)
    local t1, i1 = cpu_times()
    local t_w = lib.now()
    proc.wait_until(function() return lib.now() - t_w >= 2000 end, 5000)
    local t2, i2 = cpu_times()
    local busy = 1 - (i2 - i1) / math.max(1, t2 - t1)
    assert.truthy(busy >= 0.9, ("the cluster's own load keeps the machine only %d %% busy"):format(math.floor(busy * 100)))
    victim = c:index_of(master) == N and N - 1 or N
    local mark = {}
    for i = 1, N do mark[i] = #c.nodes[i].lines end
    local seen, bad = stop_and_check(c, victim, mark, BOUND, DELIVERY)
    c.nodes[victim]:kill "sigcont"
    local worst = 0
    for _, dt in pairs(seen) do worst = math.max(worst, dt) end
    io.stdout:write(("starvation: %d nodes at %d %% cpu on their own traffic; stopped node%d reported down by all %d others, the last after %d ms (bound %d + %d delivery)\n")
      :format(N, math.floor(busy * 100), victim, N - 1, worst, BOUND, DELIVERY))
    assert.equal(0, #bad, table.concat(bad, "\n"))
    for i, dt in pairs(seen) do
      assert.truthy(dt <= BOUND + DELIVERY, ("node%d reported it after %d ms, over %d + %d"):format(i, dt, BOUND, DELIVERY))
    end
  end)
end)
