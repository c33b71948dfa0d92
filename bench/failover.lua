-- A large cluster's master failovers, timed per survivor (issue 18; docs/benchmarks.md,
-- "Hubs, digests and a lazy write that waits").
--
--   build/clusterlua bench/failover.lua [N] [K]     (N nodes, 300 by default; K kills, 3)
--
-- N nodes on 127.B.x.y with 3 static seeds and the default roles (spec/helpers/scale.lua,
-- as `make test-scale`), formed, left 20 s at rest; then K times: kill -9 of the master
-- that most survivors name, and from the nodes' own master_changed stamps the time each
-- survivor took to name the new one: first, 10th percentile, median, 90th percentile and
-- last, and the 8 slowest nodes. 15 s between kills. Row 12 gives the last survivor
-- only; this gives the spread, for comparing builds (run it from each tree in turn: the
-- machine's speed moves between runs more than most changes do).
--
-- Environment: SCHED=1 also prints, for nodes 1-6, how long each of their first two
-- threads (Lua, control) ran and waited on the run queue in the 1.5 s after each kill
-- (/proc/PID/task/TID/schedstat); INFO=n and DEBUG=n give nodes 1..n that log level
-- (warn otherwise); STATS=1 prints what the survivors spent in the 3 s after each kill:
-- CPU per node (all threads, from schedstat: median, p90, the most, the sum) and frames
-- received and sent per node (from /metrics, read before the kill and 4 s after it);
-- PERF=prefix records `perf record -a -g` over the 2 s after each kill into prefix.K;
-- KEEP=1 keeps the directory (logs, stamps). Needs `ulimit -n` of
-- 4 N + 64, as make test-scale.
local root = (debug.getinfo(1, "S").source:match "^@(.*)/bench/[^/]*$") or "."
package.path = root .. "/spec/?.lua;" .. package.path
local uv = require "uv"
local scale = require "helpers.scale"
local proc = require "helpers.proc"

local N, K = tonumber(arg[1] or 300), tonumber(arg[2] or 3)
local INFO, DEBUG = tonumber(os.getenv "INFO" or 0), tonumber(os.getenv "DEBUG" or 0)
local function us() return uv.hrtime() / 1000 end

-- run and run-queue wait (ms) and time slices of a process's threads, by thread index
local function schedstat(pid)
  local out, tids = {}, {}
  local h = uv.fs_scandir("/proc/" .. pid .. "/task")
  while h do
    local name = uv.fs_scandir_next(h)
    if not name then break end
    tids[#tids + 1] = tonumber(name)
  end
  table.sort(tids)
  for k, tid in ipairs(tids) do
    local f = io.open("/proc/" .. pid .. "/task/" .. tid .. "/schedstat")
    if f then
      local run, wait, n = f:read("*l"):match "(%d+) (%d+) (%d+)"
      f:close()
      out[k] = { run = tonumber(run) / 1e6, wait = tonumber(wait) / 1e6, n = tonumber(n) }
    end
  end
  return out
end

local function pct(ts, q) return ts[math.max(1, math.floor(#ts * q + 0.5))] end

local c = scale.new { n = N }

-- CPU (ms, all threads) of each survivor
local function cpu_all(list)
  local out = {}
  for _, i in ipairs(list) do
    local sum = 0
    for _, t in pairs(schedstat(c.nodes[i].pid)) do sum = sum + t.run end
    out[i] = sum
  end
  return out
end

-- frames in and out of each node of list, from /metrics
local function frames_all(list)
  local out = {}
  for k, body in pairs(c:http_all(list, "/metrics", true)) do
    local fi = body:match "\nclusterlua_frames_in_total (%S+)"
    local fo = body:match "\nclusterlua_frames_out_total (%S+)"
    if fi and fo then out[list[k]] = { i = tonumber(fi), o = tonumber(fo) } end
  end
  return out
end

local function spread(name, t)
  table.sort(t)
  local sum = 0
  for _, v in ipairs(t) do sum = sum + v end
  return ("%s median %.1f, p90 %.1f, most %.1f, sum %.0f"):format(name, pct(t, 0.5) or -1, pct(t, 0.9) or -1,
    t[#t] or -1, sum)
end

-- as scale's start, with the per-node log level
function c:start(i)
  local level = i <= DEBUG and "debug" or i <= INFO and "info" or "warn"
  local p = proc.start(proc.bin, { "--name", self.names[i], "--admin", self.addrs[i] .. ":" .. self.admin_port,
    "--data", self.dir .. "/data" .. i, "--cookie", self.cookie, "--log-level", level, self.topology },
    { env = { CL_STAMPS = self.dir .. "/stamps/" .. i }, log = self.dir .. "/node" .. i .. ".log", direct = true })
  self.nodes[i] = p
  return p
end


-- CPU over 3 s and frames over 4 s of the nodes of list, from two samples of each
local function window_line(list, c0, c1, f0, f1)
  local cpu, fin, fout = {}, {}, {}
  for _, i in ipairs(list) do
    if c0[i] and c1[i] then cpu[#cpu + 1] = c1[i] - c0[i] end
    if f0[i] and f1[i] then
      fin[#fin + 1] = f1[i].i - f0[i].i
      fout[#fout + 1] = f1[i].o - f0[i].o
    end
  end
  return ("3 s: %s; 4 s: %s; %s"):format(spread("CPU ms", cpu), spread("frames in", fin), spread("frames out", fout))
end

local ok, err = pcall(function()
  local t0 = us()
  for i = 1, N do c:start(i) end
  local all = c:survivors()
  assert(c:wait(function()
    for _, i in ipairs(all) do
      if c.count[i] ~= N then return false end
    end
    return true
  end, 60000 + N * 600), "not formed")
  print(("%d nodes formed (N in every committed state) in %.2f s"):format(N, (us() - t0) / 1e6))
  c:wait(function() return false end, 20000) -- at rest: the bounded wait is the pause itself
  if os.getenv "STATS" == "1" then
    -- the same window at rest, to tell the failover's share from the beats'
    local rest = c:survivors()
    local f0, c0 = frames_all(rest), cpu_all(rest)
    local t0r = us()
    c:wait(function() return us() - t0r >= 3e6 end, 5000)
    local c1 = cpu_all(rest)
    c:wait(function() return us() - t0r >= 4e6 end, 5000)
    print("at rest, " .. window_line(rest, c0, c1, f0, frames_all(rest)))
  end
  for k = 1, K do
    local votes = {}
    for _, i in ipairs(c:survivors()) do
      local m = c.master[i]
      if m and m.name then votes[m.name] = (votes[m.name] or 0) + 1 end
    end
    local old, best = nil, 0
    for name, v in pairs(votes) do
      if v > best then old, best = name, v end
    end
    local victim = assert(c:index_of(old), "no master named")
    local s0, s1 = {}, {}
    if os.getenv "SCHED" then
      for i = 1, 6 do
        if i ~= victim and c:alive(i) then s0[i] = schedstat(c.nodes[i].pid) end
      end
    end
    local STATS = os.getenv "STATS" == "1"
    local f0 = STATS and frames_all(c:survivors())
    local timer = uv.new_timer()
    timer:start(1500, 0, function()
      for i in pairs(s0) do s1[i] = schedstat(c.nodes[i].pid) end
    end)
    local c0, c1
    local ctimer = uv.new_timer()
    local perf_done = true
    if os.getenv "PERF" then
      -- perf record -a over the 2 s after the kill, one file per kill (PERF is its prefix)
      perf_done = false
      local h
      h = uv.spawn("perf", { args = { "record", "-q", "-a", "--call-graph", os.getenv "PERF_CG" or "fp", "-o", os.getenv "PERF" .. "." .. k, "--", "sleep",
        "2" } }, function() h:close(); perf_done = true end)
      c:wait(function() return false end, 300) -- perf's own start, before the kill
    end
    local tk = us()
    c:kill9(victim)
    local rest = c:survivors()
    if STATS then
      c0 = cpu_all(rest)
      ctimer:start(3000, 0, function() c1 = cpu_all(rest) end)
    end
    local agreed
    local done = c:wait(function()
      for _, i in ipairs(rest) do
        local m = c.master[i]
        if not (m and m.t >= tk and m.name and m.name ~= old) then return false end
      end
      agreed = c.master[rest[1]].name
      for _, i in ipairs(rest) do
        if c.master[i].name ~= agreed then return false end
      end
      return true
    end, 30000)
    c:wait(function() return next(s0) == nil or next(s1) ~= nil end, 5000)
    timer:close()
    local stats_line
    if STATS then
      c:wait(function() return c1 ~= nil end, 5000)
      c:wait(function() return us() - tk >= 4e6 end, 5000)
      stats_line = "  after the kill, " .. window_line(rest, c0, c1 or {}, f0, frames_all(rest))
    end
    ctimer:close()
    c:wait(function() return perf_done end, 10000)
    local ts, slow = {}, {}
    for _, i in ipairs(rest) do
      local m = c.master[i]
      if m and m.t >= tk then
        ts[#ts + 1] = (m.t - tk) / 1000
        slow[#slow + 1] = { i = i, t = (m.t - tk) / 1000 }
      end
    end
    table.sort(ts)
    table.sort(slow, function(a, b) return a.t > b.t end)
    local names = {}
    for j = 1, math.min(8, #slow) do names[#names + 1] = ("%s %.0f"):format(c.short[slow[j].i], slow[j].t) end
    print(("failover %d: kill -9 of %s; %s agreed by %d of %d survivors%s; ms: first %.0f, p10 %.0f, median %.0f, "
      .. "p90 %.0f, last %.0f"):format(k, old:match "^[^@]+", tostring(agreed and agreed:match "^[^@]+"), #ts, #rest,
      done and "" or " (NOT all within 30 s)", ts[1] or -1, pct(ts, 0.1) or -1, pct(ts, 0.5) or -1,
      pct(ts, 0.9) or -1, ts[#ts] or -1))
    print("  slowest: " .. table.concat(names, ", "))
    if stats_line then print(stats_line) end
    for i = 1, 6 do
      if s0[i] and s1[i] then
        local o = {}
        for t = 1, 2 do
          local a, b = s0[i][t], s1[i][t]
          if a and b then
            o[#o + 1] = ("%s ran %.0f ms, waited %.0f ms (%d slices)"):format(t == 1 and "Lua" or "control",
              b.run - a.run, b.wait - a.wait, b.n - a.n)
          end
        end
        print(("  node%d, 1.5 s after the kill: %s"):format(i, table.concat(o, "; ")))
      end
    end
    io.stdout:flush()
    c:wait(function() return false end, 15000) -- the pause between kills
  end
end)
if not ok then print("error: " .. tostring(err)) end
if os.getenv "KEEP" == "1" then print("kept: " .. c.dir) end
c:cleanup(os.getenv "KEEP" == "1")
os.exit(ok and 0 or 1)
