-- Processes and bounded waits for specs that run real programs.
--
-- Every wait takes a timeout in ms and pumps the Lua loop with uv.run("once") through
-- clusterlua.async.run_until, so it must be called from a spec body (the main Lua
-- thread), never from a callback or coroutine. Only processes started here are ever
-- signalled, by PID, and only while they have not been reaped.
--
--   local proc = require "helpers.proc"
--   local p = proc.start(proc.bin, { "node.lua", "--x" }, { env = { A = "1" }, log = "/tmp/n1.log" })
--   assert(p:wait_for_line("listening on (%d+)", 5000))
--   p:kill()                      -- SIGTERM
--   local code, sig = p:wait_exit(3000)
--   proc.kill_all()               -- in after_each/finally: SIGKILL whatever is left
--   proc.go(function() ... end)   -- a test body that waits inside a coroutine
local uv = require "uv"
local async = require "clusterlua.async"

local M = {}

-- the binary under test: the one running this spec
M.bin = uv.exepath()
-- the checkout the specs belong to (spec/helpers/proc.lua -> ../..)
M.root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/helpers/[^/]*$")) or uv.cwd()
if M.root:sub(1, 1) ~= "/" then M.root = uv.cwd() .. "/" .. M.root end

local live = {} -- pid -> process, for kill_all

--- wait_until(pred, timeout_ms) -> true | nil, "ETIMEDOUT: ...", "ETIMEDOUT"
--- now() -> the loop's clock in ms, the clock of the lines' t
function M.now()
  uv.update_time()
  return uv.now()
end

function M.wait_until(pred, timeout_ms)
  return async.run_until(pred, timeout_ms)
end

--- go(fn [, timeout_ms]): runs fn in a coroutine (clusterlua.spawn) and pumps the loop
-- until it has finished, at most timeout_ms (default 15 s); fn's error is raised here,
-- with its traceback, so busted reports it against the test.
function M.go(fn, timeout_ms)
  local done, err = false, nil
  async.spawn(function()
    local ok, e = xpcall(fn, debug.traceback)
    done, err = true, (not ok) and e or nil
  end)
  assert(async.run_until(function() return done end, timeout_ms or 15000))
  if err then error(err, 0) end
end

--- sleep(ms): lets the loop run for ms (from a spec body). Only for pacing (how long a
-- fault lasts); never to wait for something: wait_until / wait_for_line that instead.
function M.sleep(ms)
  local t0 = uv.now()
  uv.update_time()
  async.run_until(function()
    uv.update_time()
    return uv.now() - t0 >= ms
  end, ms + 1000)
end

local Proc = {}
Proc.__index = Proc

local function env_list(env, clear)
  local merged = {}
  if not clear then
    for k, v in pairs(uv.os_environ()) do merged[k] = v end
  end
  for k, v in pairs(env or {}) do merged[k] = tostring(v) end
  local list = {}
  for k, v in pairs(merged) do list[#list + 1] = k .. "=" .. v end
  return list
end

--- start(cmd, args, opts) -> process (raises if it cannot be started)
-- opts: env (added to the inherited environment), clear_env, cwd,
--       stdin (string written then closed; default: empty stdin),
--       log (path: stdout and stderr are also appended there, for post-mortems),
--       direct (with log: the child writes its stdout and stderr to that file itself and
--         nothing is read here: .stdout, .stderr and .lines stay empty. For harnesses of
--         hundreds of nodes, where this process, starved of CPU, would read the pipes late
--         and keep every byte in memory),
--       echo (true: copy output to this process's stderr as it arrives).
-- The process: .pid, .cmd, .stdout, .stderr (all output so far), .lines
-- ({ {stream=, text=, t=}, ... } complete lines in arrival order; t: the loop time, ms, it was read), .exited, .code, .signal
function M.start(cmd, args, opts)
  opts = opts or {}
  local p = setmetatable({
    cmd = cmd,
    args = args or {},
    stdout = "",
    stderr = "",
    lines = {},
    partial = { stdout = "", stderr = "" },
    open_streams = 2,
    exited = false,
  }, Proc)
  local pin, pout, perr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local direct
  if opts.direct then
    -- uv.fs_open opens with O_CLOEXEC: later children do not inherit it (io.open's would)
    direct = assert(uv.fs_open(assert(opts.log, "direct needs log"), "a", 420))
    pout:close()
    perr:close()
    pout, perr = direct, direct
    p.open_streams = 0
  elseif opts.log then
    p.logf = assert(io.open(opts.log, "a"))
  end
  p.pipes = { pin, direct == nil and pout or nil, direct == nil and perr or nil }
  local handle, pid = uv.spawn(cmd, {
    args = p.args,
    stdio = { pin, pout, perr },
    env = (opts.env or opts.clear_env) and env_list(opts.env, opts.clear_env) or nil,
    cwd = opts.cwd,
  }, function(code, signal)
    p.exited, p.code, p.signal = true, code, signal
    live[p.pid] = nil
    if p.handle and not p.handle:is_closing() then p.handle:close() end
  end)
  if direct then uv.fs_close(direct) end
  if not handle then
    for _, h in pairs(p.pipes) do h:close() end
    if p.logf then p.logf:close() end
    error(("cannot start %s: %s"):format(cmd, tostring(pid)), 2)
  end
  p.handle, p.pid = handle, pid
  live[pid] = p
  local function reader(name)
    return function(err, data)
      if data then
        p[name] = p[name] .. data
        if p.logf then
          p.logf:write(data)
          p.logf:flush()
        end
        if opts.echo then io.stderr:write(data) end
        -- plain find, not a pattern: "([^\n]*)(\n)" backtracks over every position of a
        -- long line without a newline (a 200 KB JSON answer took minutes)
        local buf, start = p.partial[name] .. data, 1
        while true do
          local nl = buf:find("\n", start, true)
          if not nl then break end
          p.lines[#p.lines + 1] = { stream = name, text = buf:sub(start, nl - 1), t = uv.now() }
          start = nl + 1
        end
        p.partial[name] = buf:sub(start)
      else
        if err == nil and p.partial[name] ~= "" then
          p.lines[#p.lines + 1] = { stream = name, text = p.partial[name], t = uv.now() }
          p.partial[name] = ""
        end
        p.open_streams = p.open_streams - 1
        if p.open_streams == 0 and p.logf then
          p.logf:close()
          p.logf = nil
        end
      end
    end
  end
  if not direct then
    pout:read_start(reader("stdout"))
    perr:read_start(reader("stderr"))
  end
  if opts.stdin and #opts.stdin > 0 then
    async.ignore_sigpipe()
    pin:write(opts.stdin)
  end
  pin:shutdown(function() pin:close() end)
  return p
end

--- p:find_line(pattern [, stream [, from]]) -> line, index, captures... | nil
-- stream: "stdout", "stderr" or nil for both; from: first line index to look at.
function Proc:find_line(pattern, stream, from)
  for i = from or 1, #self.lines do
    local l = self.lines[i]
    if stream == nil or l.stream == stream then
      local caps = { l.text:match(pattern) }
      if caps[1] ~= nil then return l.text, i, unpack(caps) end
    end
  end
end

--- p:wait_for_line(pattern, timeout_ms [, stream [, from]]) -> line, index, captures...
--      | nil, "ETIMEDOUT: ... (output so far)", "ETIMEDOUT"
-- Also gives up early, with EEXITED, once the process has exited without the line.
function Proc:wait_for_line(pattern, timeout_ms, stream, from)
  local found
  async.run_until(function()
    found = { self:find_line(pattern, stream, from) }
    return found[1] ~= nil or (self.exited and self.open_streams == 0)
  end, timeout_ms)
  if found and found[1] then return unpack(found) end
  local why = self.exited and "EEXITED" or "ETIMEDOUT"
  return nil, ("%s: no line matching %q from %s within %d ms%s\n--- stdout:\n%s\n--- stderr:\n%s"):format(
    why, pattern, self.cmd, timeout_ms, self.exited and (" (exited " .. tostring(self.code) .. ")") or "",
    self.stdout, self.stderr), why
end

--- p:wait_exit(timeout_ms) -> code, signal | nil, "ETIMEDOUT: ...", "ETIMEDOUT"
-- Waits for the exit and for the output pipes to drain (a grandchild holding them
-- open only costs a short grace period).
function Proc:wait_exit(timeout_ms)
  local ok, err, code = async.run_until(function() return self.exited end, timeout_ms)
  if not ok then return nil, ("%s (pid %d still running)"):format(err, self.pid), code end
  async.run_until(function() return self.open_streams == 0 end, 500)
  self:close_pipes()
  return self.code, self.signal
end

function Proc:close_pipes()
  for _, h in ipairs(self.pipes) do
    if not h:is_closing() then h:close() end
  end
  if self.logf then
    self.logf:close()
    self.logf = nil
  end
end

--- p:kill([signal]) -> true | false if already exited. Default SIGTERM.
function Proc:kill(sig)
  if self.exited then return false end
  local ok = uv.kill(self.pid, sig or "sigterm")
  return ok ~= nil
end

--- p:stop([timeout_ms]) -> code, signal: SIGTERM, then SIGKILL if still alive
function Proc:stop(timeout_ms)
  timeout_ms = timeout_ms or 3000
  if not self.exited then
    self:kill("sigterm")
    if not async.run_until(function() return self.exited end, timeout_ms) then
      self:kill("sigkill")
      async.run_until(function() return self.exited end, 5000)
    end
  end
  self:close_pipes()
  return self.code, self.signal
end

function Proc:output() return self.stdout .. self.stderr end

--- kill_all(): SIGKILL every process started here that is still running, and reap it.
function M.kill_all()
  local any = false
  for _, p in pairs(live) do
    any = true
    p:kill("sigkill")
  end
  if any then async.run_until(function() return next(live) == nil end, 5000) end
  for _, p in pairs(live) do p:close_pipes() end
end

--- run(cmd, args, opts) -> code, stdout, stderr: start and wait (opts.timeout, default 10 s)
-- On timeout the process is killed and run returns nil, "ETIMEDOUT: ...", "ETIMEDOUT".
function M.run(cmd, args, opts)
  opts = opts or {}
  local p = M.start(cmd, args, opts)
  local code, sig = p:wait_exit(opts.timeout or 10000)
  if not code then
    p:stop(1000)
    return nil, ("ETIMEDOUT: %s did not exit within %d ms"):format(cmd, opts.timeout or 10000), "ETIMEDOUT"
  end
  if sig and sig ~= 0 then code = 128 + sig end
  return code, p.stdout, p.stderr
end

--- free_port([kind]) -> a loopback port nothing listens on right now ("tcp", "udp" or
-- "both", the default, for servers like dnsmasq that bind both).
function M.free_port(kind)
  kind = kind or "both"
  for _ = 1, 50 do
    local closed, handles = 0, {}
    local first = kind == "tcp" and uv.new_tcp() or uv.new_udp()
    handles[1] = first
    local port
    if first:bind("127.0.0.1", 0) then
      port = first:getsockname().port
      if kind == "both" then
        local t = uv.new_tcp()
        handles[2] = t
        if not t:bind("127.0.0.1", port) then port = nil end
      end
    end
    for _, h in ipairs(handles) do h:close(function() closed = closed + 1 end) end
    -- the port is free again only once the sockets are really closed
    async.run_until(function() return closed == #handles end, 1000)
    if port then return port end
  end
  error("no free loopback port found")
end

--- tmpdir() -> a new private directory; rmtree(path) removes it again
function M.tmpdir()
  return assert(uv.fs_mkdtemp("/tmp/clusterlua-spec-XXXXXX"))
end

function M.rmtree(path)
  local st = uv.fs_lstat(path)
  if not st then return end
  if st.type == "directory" then
    local req = uv.fs_scandir(path)
    while req do
      local name = uv.fs_scandir_next(req)
      if not name then break end
      M.rmtree(path .. "/" .. name)
    end
    uv.fs_rmdir(path)
  else
    uv.fs_unlink(path)
  end
end

--- write(path, text) -> path
function M.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

--- inotify_inodes(pid) -> set of the inode numbers a process's inotify instances watch
-- (pid "self" for this one), from /proc/PID/fdinfo, where each watch names its inode:
-- what a process watches, without waiting for an event that should not come
function M.inotify_inodes(pid)
  local set, h = {}, uv.fs_scandir("/proc/" .. pid .. "/fdinfo")
  while h do
    local fd = uv.fs_scandir_next(h)
    if not fd then break end
    local f = io.open("/proc/" .. pid .. "/fdinfo/" .. fd)
    if f then
      for ino in (f:read "*a" or ""):gmatch "inotify wd:%x+ ino:(%x+)" do set[tonumber(ino, 16)] = true end
      f:close()
    end
  end
  return set
end

return M
