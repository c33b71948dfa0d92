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
-- (warn otherwise); KEEP=1 keeps the directory (logs, stamps). Needs `ulimit -n` of
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

local c = scale.new { n = N }
-- as scale's start, with the per-node log level
function c:start(i)
  local level = i <= DEBUG and "debug" or i <= INFO and "info" or "warn"
  local p = proc.start(proc.bin, { "--name", self.names[i], "--admin", self.addrs[i] .. ":" .. self.admin_port,
    "--data", self.dir .. "/data" .. i, "--cookie", self.cookie, "--log-level", level, self.topology },
    { env = { CL_STAMPS = self.dir .. "/stamps/" .. i }, log = self.dir .. "/node" .. i .. ".log", direct = true })
  self.nodes[i] = p
  return p
end

local function pct(ts, q) return ts[math.max(1, math.floor(#ts * q + 0.5))] end

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
    local timer = uv.new_timer()
    timer:start(1500, 0, function()
      for i in pairs(s0) do s1[i] = schedstat(c.nodes[i].pid) end
    end)
    local tk = us()
    c:kill9(victim)
    local rest = c:survivors()
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
