-- Inside each simulated node of `clusterlua sim` (its own Lua state, created by
-- runtime/rehearse/node_state.c): puts the simulated seams where the runtime's C modules
-- and the outside world would be, then starts the node from the user's unchanged
-- topology file with clusterlua.start, as `clusterlua --name` does.
--
-- Simulated (answering on the virtual clock, from the scenario):
--   uv (timers, now, hrtime, gettimeofday, fs_stat of the data directory, random),
--   clusterlua.c.core (clock, logs -> the timeline), clusterlua.c.node (the world's
--   node: runtime/rehearse/world.c), clusterlua.c.dataplane (none: messages take the
--   control path), clusterlua.dns and clusterlua.http (answers from the scenario's
--   `dns` and `http` tables), io.open of the files the scenario manages,
--   os.time/os.clock/os.date (virtual), math.random (seeded by the run's seed and the node).
-- Recorded, not run: clusterlua.exec (async.exec), os.execute and io.popen; each is
-- logged with its arguments and answered with the scenario's scripted exit status.
-- UDP is a simulated LAN: a datagram reaches every other node's socket bound on its port
-- (what the gossip strategy's multicast needs), over the world's links.
-- Not simulated (they fail with ENOTSUP): TCP and pipes from Lua, process spawning other
-- than the recorded commands.
-- clusterlua.c.simnode exists only in a simulated node's state: loaded by boot
local sim
local cjson = require "cjson.safe"

local M = {}

local function now() return sim.now() end
local fake_file

-- ---- timers on the virtual clock ----
-- An array, never a table keyed by timer objects: the order they fire in must not
-- depend on addresses. Ties go by start order.
local timers = {}
local tseq = 0

local Timer = {}
Timer.__index = Timer

local function arm(t, ms)
  tseq = tseq + 1
  t.due, t.seq, t.active = now() + ms, tseq, true
  if not t.listed then
    t.listed = true
    timers[#timers + 1] = t
  end
end

function Timer:start(timeout, rep, cb)
  if type(rep) == "function" then rep, cb = 0, rep end
  self.rep, self.cb = rep or 0, cb
  arm(self, timeout or 0)
  return 0
end

function Timer:again()
  if self.rep and self.rep > 0 and self.cb then arm(self, self.rep) end
  return 0
end

function Timer:stop()
  self.active = false
  return 0
end

function Timer:close(cb)
  self.active, self.closed = false, true
  if cb then cb() end
end

function Timer:is_active() return self.active == true end
function Timer:is_closing() return self.closed == true end
function Timer:get_repeat() return self.rep or 0 end
function Timer:set_repeat(ms) self.rep = ms end
function Timer:get_due_in() return self.active and math.max(0, self.due - now()) or 0 end
function Timer:ref() end
function Timer:unref() end
function Timer:has_ref() return true end

local function new_timer() return setmetatable({ kind = "timer" }, Timer) end

local function next_due()
  local best
  local keep = {}
  for _, t in ipairs(timers) do
    if t.active then
      keep[#keep + 1] = t
      if not best or t.due < best.due or (t.due == best.due and t.seq < best.seq) then best = t end
    else
      t.listed = false
    end
  end
  timers = keep
  return best
end

-- runs every timer due at now; returns the next deadline (ms) or nil
local function fire(t_now)
  for _ = 1, 100000 do
    local t = next_due()
    if not t or t.due > t_now then return t and t.due or nil end
    if t.rep and t.rep > 0 then
      arm(t, t.rep)
    else
      t.active = false
    end
    local ok, err = xpcall(t.cb, debug.traceback)
    if not ok then
      if type(err) == "userdata" then error(err, 0) end -- os.exit
      sim.record("lua_error", tostring(err))
    end
  end
  -- a timer that keeps re-arming itself at 0 ms: let virtual time move
  return t_now + 1
end

-- ---- a fake luv ----

local Inert = {}
Inert.__index = function(_, k)
  return function() return nil, ("ENOTSUP: %s is not simulated in a rehearsal"):format(k), "ENOTSUP" end
end

local function inert(kind)
  local h = setmetatable({ kind = kind }, Inert)
  h.start = function() return 0 end
  h.stop = function() return 0 end
  h.close = function(_, cb) if cb then cb() end end
  h.is_closing = function() return false end
  h.is_active = function() return false end
  h.ref = function() end
  h.unref = function() end
  return h
end

local function unsupported(what)
  return function() return nil, ("ENOTSUP: %s is not simulated in a rehearsal"):format(what), "ENOTSUP" end
end

local DATA = "/rehearse-data/"

-- the file watches (fs_event handles) in start order; a change reaches those that watch
-- the file or its directory, with the file's name as libuv gives it
local watches = {}
local function file_changed(path)
  local dir, base = path:match "^(.*)/([^/]+)$"
  dir, base = dir or ".", base or path
  if dir == "" then dir = "/" end
  -- over a copy: a callback may close its watch and start another (reload.lua re-arms
  -- its watch of a file on every event), which must not fire in this same change
  local copy = { unpack(watches) }
  for _, h in ipairs(copy) do
    if h.active and (h.path == dir or h.path == path) then
      local ok, err = xpcall(h.cb, debug.traceback, nil, base, { change = true })
      if not ok then
        if type(err) == "userdata" then error(err, 0) end
        sim.record("lua_error", tostring(err))
      end
    end
  end
  local live = {}
  for _, h in ipairs(watches) do
    if h.active then live[#live + 1] = h end
  end
  watches = live
end
local EPOCH = 1767225600 -- 2026-01-01T00:00:00Z: the virtual clock's zero

-- ---- UDP: a LAN where a datagram reaches every other node's socket on its port (the
-- gossip strategy's multicast or broadcast), through the world's links ----

local udp_socks = {} -- sockets in bind order

local function udp_in(port, data, from)
  local ip = tostring(from):match "^%[?([^%]]*)%]?:%d+$" or tostring(from)
  local live = {}
  for _, u in ipairs(udp_socks) do
    if not u.closed then
      live[#live + 1] = u
      if u.port == port and u.cb then
        local ok, err = xpcall(u.cb, debug.traceback, nil, data, { ip = ip, port = port, family = "inet" }, nil)
        if not ok then
          if type(err) == "userdata" then error(err, 0) end
          sim.record("lua_error", tostring(err))
        end
      end
    end
  end
  udp_socks = live
end

local function new_udp()
  local u = { kind = "udp" }
  local function yes() return true end
  u.set_broadcast, u.set_multicast_interface, u.set_membership = yes, yes, yes
  u.set_multicast_loop, u.set_multicast_ttl, u.set_ttl = yes, yes, yes
  u.ref, u.unref = function() end, function() end
  function u.bind(_, _, port)
    port = tonumber(port)
    if not port or port <= 0 then return nil, "EINVAL: a port is needed in a rehearsal", "EINVAL" end
    u.port = port
    sim.udp_bind(port)
    udp_socks[#udp_socks + 1] = u
    return true
  end
  function u.getsockname() return { ip = "0.0.0.0", port = u.port, family = "inet" } end
  function u.send(_, data, _, port, cb)
    if type(data) == "table" then data = table.concat(data) end
    sim.udp_send(tonumber(port) or u.port or 0, tostring(data))
    if cb then
      local t = new_timer()
      t:start(0, 0, function()
        t:close()
        cb(nil)
      end)
    end
    return true
  end
  function u.try_send(_, data, _, port)
    sim.udp_send(tonumber(port) or u.port or 0, tostring(data))
    return #tostring(data)
  end
  function u.recv_start(_, cb)
    u.cb = cb
    return true
  end
  function u.recv_stop()
    u.cb = nil
    return true
  end
  function u.close(_, cb)
    if not u.closed then
      u.closed = true
      local still = false
      for _, o in ipairs(udp_socks) do
        if o ~= u and not o.closed and o.port == u.port then still = true end
      end
      if u.port and not still then sim.udp_close(u.port) end
    end
    if cb then cb() end
  end
  function u.is_closing() return u.closed == true end
  function u.is_active() return not u.closed end
  return u
end

local function make_uv(idx, rnd)
  local uv = {}
  uv.now = now
  uv.update_time = function() end
  uv.hrtime = function() return sim.now_us() * 1000 end
  uv.gettimeofday = function()
    local us = sim.now_us()
    return EPOCH + math.floor(us / 1e6), math.floor(us % 1e6)
  end
  uv.os_getpid = function() return 1000 + idx end
  uv.os_environ = function() return {} end
  uv.random = function(n) return rnd(n) end
  uv.new_timer = new_timer
  uv.new_idle = function()
    -- the idle phase comes once per loop turn: here, once per virtual millisecond
    local t = new_timer()
    local idle = { kind = "idle" }
    function idle.start(_, cb) t:start(1, 1, cb) return 0 end
    function idle.stop() t:stop() return 0 end
    function idle.close() t:close() end
    function idle.is_closing() return t:is_closing() end
    return idle
  end
  uv.new_signal = function() return inert("signal") end
  uv.new_fs_event = function()
    -- a watch fires when a file the scenario manages changes (a file fault)
    local h = inert("fs_event")
    function h.start(_, path, _, cb)
      h.path, h.cb, h.active = tostring(path), cb, true
      watches[#watches + 1] = h
      return 0
    end
    function h.stop() h.active = false return 0 end
    function h.close(_, cb)
      h.active = false
      if cb then cb() end
    end
    function h.is_active() return h.active == true end
    return h
  end
  uv.new_tcp = function() return inert("tcp") end
  uv.new_udp = new_udp
  uv.new_pipe = function() return inert("pipe") end
  uv.run = function() return false end
  uv.stop = function() end
  uv.loop_alive = function() return false end
  uv.walk = function() end
  uv.spawn = unsupported("uv.spawn")
  uv.getaddrinfo = unsupported("uv.getaddrinfo")
  -- the node's data directory exists and is empty; every other path is the real one
  uv.fs_stat = function(path)
    path = tostring(path)
    if path:sub(1, #DATA) == DATA then
      if not path:sub(#DATA + 1):find "/" then return { type = "directory", mode = 448, size = 0 } end
      return nil, "ENOENT: no such file or directory: " .. path, "ENOENT"
    end
    if path == "/" or path == "/rehearse-data" then return { type = "directory", mode = 493, size = 0 } end
    local ty = sim.stat(path)
    if not ty then return nil, "ENOENT: no such file or directory: " .. path, "ENOENT" end
    return { type = ty, mode = 420, size = 0 }
  end
  uv.fs_access = function(path)
    path = tostring(path)
    if path:sub(1, #DATA) == DATA or path == "/" or path == "/rehearse-data" then return true end
    return sim.stat(path) ~= nil
  end
  return setmetatable(uv, { __index = function(_, k) return unsupported("uv." .. tostring(k)) end })
end

-- ---- clusterlua.c.core ----

local LEVELS = { debug = 0, info = 1, warn = 2, error = 3 }

-- Lua takes no virtual time, so a hook's time budget (scheduler.lua's watchdog, which
-- reads core.now every scheduler.check_every VM instructions) would never run out and a
-- hook that never yields would hang the rehearsal. So the clock the scheduler reads
-- moves 5 µs per check (about the cost of 1,000 interpreted instructions) within one
-- entry of the world into this node: budgets run out after a deterministic amount of
-- work, and the hook is aborted as on a real node. Everyone else reads the world's clock.
local creep, creep_at = 0, -1
local function budget_now()
  local t = now()
  if t ~= creep_at then creep, creep_at = 0, t end
  local info = debug.getinfo(2, "S")
  if info and info.source:find("clusterlua/scheduler%.lua$") then
    creep = creep + 0.005
    return t + creep
  end
  return t
end

local function make_core()
  local core = { version = "rehearsal" }
  core.now = budget_now
  function core.log(level, subsys, msg)
    if LEVELS[level] == nil then error("bad argument #1 to 'log' (unknown log level)", 2) end
    subsys = subsys or "lua"
    -- the user's own logs, and what the runtime warns about
    if (subsys == "lua" and LEVELS[level] >= 1) or LEVELS[level] >= 2 then
      sim.record("log", level, (subsys == "lua" and "" or subsys .. ": ") .. tostring(msg))
    end
  end
  function core.report(what, err)
    what = tostring(what)
    -- hook errors reach the timeline as hook_error events (report.lua)
    if not (what:match "^hook " or what:match "^on_master ") then
      sim.record("error", what, tostring(err))
    end
  end
  core.errors = function() return 0 end
  core.log_level = function() return "info" end
  core.probe_start = function() end
  core.probe_stop = function() end
  core.probe_stats = function() return {} end
  core.options = function() return {} end
  core.count_hook_abort = function() end
  core.trim = function() end -- the process's heaps are the rehearsal's, not a node's
  return core
end

-- ---- clusterlua.dns: answers from the scenario (dns = { ["name"] = {...} | "ENOTFOUND" }) ----

local function make_dns(async)
  local dns = {}
  local function lookup(kind, name, opts, cb)
    if type(opts) == "function" then opts, cb = nil, opts end
    local status, answer = sim.ask("dns", kind, tostring(name))
    local res, err, code
    if status == 0 then
      res = cjson.decode(answer or "[]") or {}
    else
      err = answer or ("ENOTFOUND: %s"):format(name)
      code = err:match "^(E%u+)" or "ENOTFOUND"
    end
    if cb then
      local t = new_timer()
      t:start(1, 0, function()
        t:close()
        cb(res, err, code)
      end)
      return true
    end
    if async.in_coroutine() then async.sleep(1) end
    return res, err, code
  end
  function dns.srv(name, opts, cb) return lookup("srv", name, opts, cb) end
  function dns.a(name, opts, cb) return lookup("a", name, opts, cb) end
  function dns.aaaa(name, opts, cb) return lookup("aaaa", name, opts, cb) end
  function dns.resolve(name, opts, cb) return lookup("resolve", name, opts, cb) end
  return dns
end

-- ---- clusterlua.http: answers from the scenario (http = { [URL] = { status =, body = } }) ----

local function make_http(async, real)
  local http = setmetatable({}, { __index = real })
  function http.request(method, url, opts)
    if not async.in_coroutine() then error("bad argument: http.request must be called from a coroutine", 2) end
    local status, body = sim.ask("http", tostring(method) .. " " .. tostring(url), opts and opts.body or "")
    async.sleep(1)
    if not status or status < 0 then
      local err = body or ("ECONNREFUSED: no answer scripted for %s (rehearsal)"):format(tostring(url))
      return nil, err, err:match "^(E%u+)" or "ECONNREFUSED"
    end
    return status, body or "", {}
  end
  return http
end

-- ---- recorded commands ----

local function join_args(args)
  local argv = {}
  for i, a in ipairs(args or {}) do argv[i] = tostring(a) end
  return table.concat(argv, "\31")
end

local function make_exec(async)
  return function(cmd, args, opts)
    if type(cmd) ~= "string" then error("bad argument #1 to 'exec' (string expected, got " .. type(cmd) .. ")", 2) end
    if args ~= nil and type(args) ~= "table" then
      error("bad argument #2 to 'exec' (table expected, got " .. type(args) .. ")", 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
      error("bad argument #3 to 'exec' (table expected, got " .. type(opts) .. ")", 2)
    end
    if not async.in_coroutine() then error("bad argument: exec must be called from a coroutine", 2) end
    local argv = join_args(args)
    local status, out = sim.ask("exec", cmd, argv)
    status = status or 0
    sim.record("exec", cmd, argv, status)
    -- a command takes time: the hook waits for it, as it would for the real one
    async.sleep(1)
    if status < 0 then
      return nil, ("ETIMEDOUT: '%s' did not finish (scripted)"):format(cmd), "ETIMEDOUT"
    end
    return status, out or "", ""
  end
end

-- a read-only file over a string
fake_file = function(text)
  local f, pos = {}, 1
  function f.read(_, what)
    what = what or "*l"
    if type(what) == "number" then
      if pos > #text then return nil end
      local s = text:sub(pos, pos + what - 1)
      pos = pos + #s
      return s
    end
    if what:find "a" then
      local s = text:sub(pos)
      pos = #text + 1
      return s
    end
    if pos > #text then return nil end
    local line = text:match("^[^\n]*", pos)
    pos = pos + #line + 1
    return line
  end
  function f.lines() return function() return f:read "*l" end end
  function f.close() return true end
  function f.seek() return pos - 1 end
  function f.setvbuf() return true end
  return f
end

-- ---- boot ----

local function seeded_bytes(seed)
  -- a node id and other random bytes: the same on every restart of this node
  local x = seed
  return function(n)
    local out = {}
    for i = 1, n do
      x = (x * 1103515245 + 12345) % 2147483648
      out[i] = string.char(math.floor(x / 65536) % 256)
    end
    return table.concat(out)
  end
end

function M.boot(json, idx, full, short)
  sim = require "clusterlua.c.simnode"
  local opts = assert(cjson.decode(json), "bad boot options")
  local seed = tonumber(opts.seed) or 1
  local async_mod -- loaded below, once the fakes are in place
  package.loaded["uv"] = make_uv(idx, seeded_bytes(seed * 7919 + idx))
  package.loaded["luv"] = package.loaded["uv"]
  package.loaded["clusterlua.c.core"] = make_core()
  local cnode = setmetatable({}, { __index = sim })
  package.loaded["clusterlua.c.node"] = cnode
  package.loaded["clusterlua.c.dataplane"] = {
    ENOBUFS = -105,
    set_handlers = function() end,
    set_spin_us = function() end,
    rx = function() return nil end, -- no data connections: nothing is ever delivered through it
    close = function() end,
    stats = function() return {} end,
  }
  package.loaded["clusterlua.c.dns"] = setmetatable({}, { __index = function(_, k) return unsupported("c.dns." .. k) end })

  -- the process's own randomness and clock
  math.randomseed(seed * 1000 + idx)
  local real_time, real_date = os.time, os.date
  os.time = function(t)
    if t ~= nil then return real_time(t) end
    return EPOCH + math.floor(now() / 1000)
  end
  os.clock = function() return now() / 1000 end
  os.date = function(fmt, t) return real_date(fmt, t or os.time()) end
  os.exit = function(code) sim.exit(code) end
  os.execute = function(cmd)
    if cmd == nil then return 1 end -- a shell is there
    local status = sim.ask("os.execute", "sh", "-c\31" .. tostring(cmd))
    status = status or 0
    sim.record("exec", "sh", "-c\31" .. tostring(cmd), status)
    return status
  end
  io.popen = function(cmd, mode)
    local status, out = sim.ask("io.popen", "sh", "-c\31" .. tostring(cmd))
    sim.record("exec", "sh", "-c\31" .. tostring(cmd), status or 0)
    out = out or ""
    local f, pos = {}, 1
    function f.read(_, what)
      if pos > #out then return nil end
      if what == "*a" or what == "a" then
        local s = out:sub(pos)
        pos = #out + 1
        return s
      end
      local line = out:match("^[^\n]*", pos)
      pos = pos + #line + 1
      return line
    end
    function f.lines() return function() return f:read "*l" end end
    function f.write() return f end
    function f.close() return true, "exit", status or 0 end
    return f, nil, mode
  end

  -- Files: what this node wrote (kept in memory: a rehearsal writes nothing to disk,
  -- it records the write), then the files the scenario manages (a hosts file, a
  -- strategy's list; a fault can edit them), then the real files, read-only.
  local real_open = io.open
  local written = {} -- path -> text, or false once removed
  local function read_text(path)
    if written[path] ~= nil then return written[path] end
    local status, content = sim.ask("file", path)
    if status == 0 then return content or "" end
    if status == 1 then return false end
    local f = real_open(path, "rb")
    if not f then return false end
    local text = f:read "*a"
    f:close()
    return text or ""
  end
  io.open = function(path, mode)
    mode = tostring(mode or "r")
    if type(path) ~= "string" then return real_open(path, mode) end
    if mode:find "[wa+]" then
      local text = ""
      if mode:find "a" or mode:find "%+" and not mode:find "w" then
        local old = read_text(path)
        if old == false and not mode:find "a" then return nil, path .. ": No such file or directory", 2 end
        text = old or ""
      end
      local f = { }
      local function save()
        written[path] = text
        sim.record("file_write", path, nil, #text)
      end
      function f.write(_, ...)
        for i = 1, select("#", ...) do text = text .. tostring((select(i, ...))) end
        return f
      end
      function f.flush() save() return f end
      function f.close() save() return true end
      function f.setvbuf() return true end
      function f.seek() return #text end
      function f.read() return nil end
      function f.lines() return function() return nil end end
      return f
    end
    if written[path] ~= nil or sim.ask("file", path) ~= nil then
      local text = read_text(path)
      if text == false then return nil, path .. ": No such file or directory", 2 end
      return fake_file(text)
    end
    return real_open(path, mode)
  end
  local real_remove, real_rename = os.remove, os.rename
  os.remove = function(path)
    if read_text(path) == false then return nil, tostring(path) .. ": No such file or directory", 2 end
    written[path] = false
    sim.record("file_write", path, "removed", 0)
    return true
  end
  os.rename = function(from, to)
    local text = read_text(from)
    if text == false then return nil, tostring(from) .. ": No such file or directory", 2 end
    written[to], written[from] = text, false
    sim.record("file_write", to, "renamed from " .. tostring(from), #text)
    return true
  end
  local _ = real_remove, real_rename

  -- what the process prints goes to the timeline, a line at a time, not to the terminal
  local function stream(name)
    local partial = ""
    local f = {}
    function f.write(_, ...)
      for i = 1, select("#", ...) do partial = partial .. tostring((select(i, ...))) end
      while true do
        local line, rest = partial:match "^([^\n]*)\n(.*)$"
        if not line then break end
        sim.record("output", name, line)
        partial = rest
      end
      return f
    end
    function f.flush() return f end
    function f.setvbuf() return true end
    function f.close() return true end
    function f.lines() return function() return nil end end
    function f.read() return nil end
    return f
  end
  io.stdout, io.stderr = stream "stdout", stream "stderr"
  io.write = function(...) return io.stdout:write(...) end
  print = function(...)
    local t = {}
    for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
    io.stdout:write(table.concat(t, "\t"), "\n")
  end

  sim.set_fire(fire)
  sim.set_fsevent(file_changed)
  sim.set_udp(udp_in)
  async_mod = require "clusterlua.async"
  async_mod.exec = make_exec(async_mod)
  -- cl.readfile reads through the same files as io.open (luv's fs calls are not simulated)
  async_mod.readfile = function(path)
    if type(path) ~= "string" then error("bad argument #1 to 'readfile' (string expected, got " .. type(path) .. ")", 2) end
    local f, err = io.open(path, "rb")
    if not f then return nil, "ENOENT: " .. tostring(err), "ENOENT" end
    local text = f:read "*a"
    f:close()
    if async_mod.in_coroutine() then async_mod.sleep(1) end
    return text
  end
  package.loaded["clusterlua.dns"] = make_dns(async_mod)
  package.loaded["clusterlua.http"] = make_http(async_mod, require "clusterlua.http")

  local cl = require "clusterlua"
  local ok, err = cl.start {
    file = opts.topology,
    name = full,
    cookie = opts.cookie,
    -- as --initial-master-nodes on the command line (the scenario's), else the topology's
    initial_master_nodes = opts.initial_master_nodes,
    data = DATA .. short,
  }
  if not ok then return false, tostring(err) end
  return true
end

return M
