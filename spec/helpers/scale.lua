-- Clusters of tens to thousands of real nodes on loopback, for spec/cluster/scale_spec.lua
-- (issue 18). What differs from helpers.cluster, and why:
--
-- * every node has its own loopback address 127.B.x.y and all use the same two ports
--   (cluster and admin), as hosts of a real fleet do; B is drawn at random per cluster
--   so that two runs at once do not meet, and the ports are checked free on every
--   address before use;
-- * the topology names 3 static seeds (node1-3, also the initial masters); every node
--   has the default roles and finds the others through the cluster state;
-- * nothing is polled over HTTP to time anything: each node's hooks
--   (spec/fixtures/stamp_hooks.lua) append monotonic stamps to a file of their own
--   (node_up, node_down, master_changed, and the members of each committed state as
--   differences), which poll() reads from where it stopped. HTTP (raw loopback TCP, to
--   every node at once, no process per request) is only used for a few checks at rest;
-- * only processes started here are signalled, by PID (proc.kill_all in cleanup).
local uv = require "uv"
local cjson = require "cjson.safe"
local proc = require "helpers.proc"
local stamps = require "helpers.stamps"
local limits = require "helpers.limits"

local M = {}
M.__index = M

math.randomseed(uv.hrtime() % 1000000007 + uv.os_getpid())

M.HOOKS = proc.root .. "/spec/fixtures/stamp_hooks.lua"

-- node i's address: 127.B.floor((i-1)/250).((i-1)%250+1) (up to 64,000 nodes per B)
local function addr(b, i)
  return ("127.%d.%d.%d"):format(b, math.floor((i - 1) / 250), (i - 1) % 250 + 1)
end

-- true when a TCP socket can bind host:port now
local function can_bind(host, port)
  local t = uv.new_tcp()
  local ok = t:bind(host, port)
  local closed = false
  t:close(function() closed = true end)
  proc.wait_until(function() return closed end, 1000)
  return ok ~= nil
end

-- The soft limit on open files of this process (the nodes inherit it), from /proc.
function M.nofile()
  local f = io.open "/proc/self/limits"
  if not f then return end
  for line in f:lines() do
    local soft = line:match "^Max open files%s+(%d+)"
    if soft then
      f:close()
      return tonumber(soft)
    end
  end
  f:close()
end

-- The file descriptors a harness of n nodes needs, per process (every node inherits
-- this process's limit): here, 1 per node (its stdin pipe; the node writes its log file itself), its
-- stamp file (helpers/stamps.lua keeps it open) and one socket per node for the HTTP checks at
-- rest; in each node, 2 per peer (control and
-- data connection) with today's full mesh, plus about 64 of its own. 4 n + 64 covers both.
function M.fd_budget(n)
  return 4 * n + 64
end

-- opts: n (nodes), cookie, election (Lua source appended into the election table),
--       transport (Lua source of the transport table's fields)
function M.new(opts)
  local n = assert(opts.n, "n")
  local c = setmetatable({ n = n, cookie = opts.cookie or "scale-cookie", nodes = {}, names = {}, short = {},
    addrs = {} }, M)
  c.dir = proc.tmpdir()
  assert(uv.fs_mkdir(c.dir .. "/stamps", 448))
  limits.inotify(n) -- else nodes past the 128th cannot watch their files (they warn)
  -- a B and two ports free on every address (nothing else binds 127.B.x.y, but a
  -- wildcard listener elsewhere on the machine would hold the port on all of them)
  for _ = 1, 20 do
    local b = math.random(64, 254)
    local port = math.random(20000, 31998)
    local ok = true
    for i = 1, n do
      if not can_bind(addr(b, i), port) or not can_bind(addr(b, i), port + 1) then
        ok = false
        break
      end
    end
    if ok then
      c.b, c.port, c.admin_port = b, port, port + 1
      break
    end
  end
  assert(c.b, "no loopback block 127.B.0.0/16 with two free ports found")
  for i = 1, n do
    c.addrs[i] = addr(c.b, i)
    c.short[i] = "node" .. i
    c.names[i] = ("node%d@%s:%d"):format(i, c.addrs[i], c.port)
  end
  local seeds, imn = {}, {}
  for i = 1, math.min(3, n) do
    seeds[i] = ("%q"):format(c.names[i])
    imn[i] = ("%q"):format(c.short[i])
  end
  c.topology = proc.write(c.dir .. "/topology.lua", ([[
return {
  cluster = "scale",
  topologies = { seeds = { strategy = "static", config = { hosts = { %s } } } },
  election = { initial_master_nodes = { %s }, %s },
  %s
  hooks = %q,
}
]]):format(table.concat(seeds, ", "), table.concat(imn, ", "), opts.election or "",
    opts.transport and ("transport = { " .. opts.transport .. " },") or "", M.HOOKS))
  c:reset()
  return c
end

-- forget every stamp read so far (the files are read on from where they are)
function M:reset()
  self.stamps = self.stamps or stamps.reader(self.dir .. "/stamps")
  -- per node i: up[i][short] = { t = } while it sees that node up (its latest node_up),
  -- down[i][short] = { t =, reason = } (the latest node_down),
  -- master[i] = { t =, name =, term = } (the latest), members[i][short] = t (in the
  -- last committed state it saw), gone[i][short] = t (dropped from the committed state)
  self.up, self.down, self.master, self.members, self.gone, self.count = {}, {}, {}, {}, {}, {}
  for i = 1, self.n do
    self.up[i], self.down[i], self.members[i], self.gone[i], self.count[i] = {}, {}, {}, {}, 0
  end
end

local function short(full)
  return full and (full:match "^([^@]+)@" or full) or nil
end

function M:start(i, env)
  local e = { CL_STAMPS = self.dir .. "/stamps/" .. i }
  for k, v in pairs(env or {}) do e[k] = v end
  local p = proc.start(proc.bin, { "--name", self.names[i], "--admin", self.addrs[i] .. ":" .. self.admin_port,
    "--data", self.dir .. "/data" .. i, "--cookie", self.cookie, "--log-level", os.getenv "CL_SCALE_LOG" or "warn", self.topology },
    { env = e, log = self.dir .. "/node" .. i .. ".log", direct = true })
  self.nodes[i] = p
  return p
end

function M:alive(i)
  return self.nodes[i] ~= nil and not self.nodes[i].exited and not self.nodes[i].dead
end

-- the indexes of the nodes running (not killed here)
function M:survivors()
  local l = {}
  for i = 1, self.n do if self:alive(i) then l[#l + 1] = i end end
  return l
end

-- reads what every node's hooks appended since the last call
function M:poll()
  for i = 1, self.n do
    self.stamps:read(i, function(t, ev, a1, a2, a3)
      if ev == "node_up" then
        self.up[i][short(a1)] = { t = t }
      elseif ev == "node_down" then
        -- up[i] is who node i sees up now; down[i] keeps the latest node_down
        self.up[i][short(a1)] = nil
        self.down[i][short(a1)] = { t = t, reason = a2 }
      elseif ev == "master_changed" then
        self.master[i] = { t = t, name = a1 ~= "-" and a1 or nil, term = tonumber(a3) }
      elseif ev == "member+" then
        local s = short(a1)
        if not self.members[i][s] then self.count[i] = self.count[i] + 1 end
        self.members[i][s] = t
      elseif ev == "member-" then
        local s = short(a1)
        if self.members[i][s] then self.count[i] = self.count[i] - 1 end
        self.members[i][s] = nil
        self.gone[i][s] = t
      end
    end)
  end
end

-- waits (bounded) until pred() is true, reading the stamps at most every 25 ms, or every
-- n / 3 ms in a larger cluster (100 ms at 300 nodes); the timer also wakes the loop when
-- no node writes anything. The times come from the stamps, not from when they are read:
-- reading less often only ends the wait a little later, and leaves the nodes being
-- timed the CPU a poll of every file takes.
function M:wait(pred, timeout_ms)
  local timer = uv.new_timer()
  local last = 0
  local every = math.max(25, math.floor(self.n / 3))
  timer:start(every, every, function() end)
  local ok, err = proc.wait_until(function()
    local now = uv.hrtime()
    if now - last >= every * 1e6 then
      last = now
      self:poll()
      return pred()
    end
    return false
  end, timeout_ms)
  timer:stop()
  timer:close()
  if not ok then
    self:poll()
    ok = pred()
  end
  return ok, err
end

-- One GET to every node of `list` at once over raw loopback TCP; returns answers[k] =
-- decoded JSON body of list[k] (nil when it did not answer with 200 within 3 s); with
-- raw, the body as it came (for /metrics).
function M:http_all(list, path, raw)
  local answers, pending = {}, #list
  for k, i in ipairs(list) do
    local tcp, timer = uv.new_tcp(), uv.new_timer()
    local chunks, done = {}, false
    local function finish(ok)
      if done then return end
      done = true
      timer:stop()
      timer:close()
      if not tcp:is_closing() then tcp:close() end
      local resp = table.concat(chunks)
      if ok and resp:match "^HTTP/1%.%d 200" then
        local body = resp:match "\r\n\r\n(.*)$" or ""
        answers[k] = raw and body or cjson.decode(body)
      end
      pending = pending - 1
    end
    timer:start(3000, 0, function() finish(false) end)
    tcp:connect(self.addrs[i], self.admin_port, function(err)
      if err then return finish(false) end
      tcp:write(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"):format(path, self.addrs[i]))
      tcp:read_start(function(rerr, data)
        if rerr then return finish(false) end
        if data then chunks[#chunks + 1] = data else finish(true) end
      end)
    end)
  end
  proc.wait_until(function() return pending == 0 end, 5000)
  return answers
end

function M:index_of(full)
  for i, name in ipairs(self.names) do if name == full then return i end end
end

-- kill -9 of node i (its PID only); it no longer counts as a survivor
function M:kill9(i)
  self.nodes[i].dead = true
  self.nodes[i]:kill("sigkill")
end

-- the last lines of node i's log, for an assertion's message
function M:tail(i, lines)
  local p = self.nodes[i]
  if not p then return "" end
  -- the node writes its log file itself (proc.start's direct)
  local all = {}
  local f = io.open(self.dir .. "/node" .. i .. ".log")
  if f then
    for l in f:lines() do
      all[#all + 1] = l
      if #all > 2 * (lines or 10) then table.remove(all, 1) end
    end
    f:close()
  end
  local out = {}
  for k = math.max(1, #all - (lines or 10) + 1), #all do out[#out + 1] = all[k] end
  return ("--- node%d (%s):\n%s"):format(i, p.exited and ("exited " .. tostring(p.code)) or "running",
    table.concat(out, "\n"))
end

-- kills every node started here; removes the directory unless keep (or CL_SCALE_KEEP=1)
function M:cleanup(keep)
  for _, p in pairs(self.nodes) do
    if not p.exited then p:kill("sigkill") end
  end
  proc.kill_all()
  for _, p in pairs(self.nodes) do p:close_pipes() end
  self.stamps:close()
  if not keep and os.getenv "CL_SCALE_KEEP" ~= "1" then proc.rmtree(self.dir) end
end

return M
