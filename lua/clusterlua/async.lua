-- Coroutine helpers over luv: wait for timers, processes, streams, files and DNS
-- without callbacks.
--
-- Conventions: a runtime failure returns nil, "ENAME: message", "ENAME" (the luv
-- style); misuse raises error("bad argument ...", 2). A function that waits must be
-- called from a coroutine (spawn one with M.spawn): the main thread and libuv
-- callbacks cannot yield, and blocking them would stop the whole Lua loop.
local uv = require "uv"

-- Starts a one-shot timer ms from now. libuv counts a timer from the loop's cached time,
-- which is as old as the current loop turn: a sleep or a timeout started after a spawn
-- that took 30 ms under ASan fired 30 ms early (async_spec, recovery_spec).
local function arm(timer, ms, fn)
  uv.update_time()
  timer:start(ms, 0, fn)
end
local check = require "clusterlua.check"
local scheduler = require "clusterlua.scheduler"

local M = {}

local pack = function(...) return { n = select("#", ...), ... } end
local unpack = unpack or table.unpack

local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 2) + 1)
end

local function checktype(v, t, n, fname, optional)
  if v == nil and optional then return end
  if type(v) ~= t then argerror(n, fname, ("%s expected, got %s"):format(t, type(v)), 3) end
end

local function checkms(v, n, fname, optional)
  if v == nil and optional then return end
  local ok, why = check.ms(v)
  if not ok then argerror(n, fname, why, 3) end
end

-- The coroutine we may yield from, or a clear error naming the caller.
local function need_coroutine(fname)
  local co, ismain = coroutine.running()
  if not co or ismain then
    error(("bad argument to '%s': must be called from a coroutine (see clusterlua.spawn)"):format(fname), 3)
  end
  return co
end

local function in_coroutine()
  local co, ismain = coroutine.running()
  return co ~= nil and not ismain
end
M.in_coroutine = in_coroutine

-- Every wait below ends in scheduler.resume: it never resumes a cancelled coroutine
-- (an on_master duty after step-down), applies a hook's time budget and reports errors.
local resume = scheduler.resume
M.resume = resume

local function close_handle(h)
  if h and not h:is_closing() then h:close() end
end

--- wait(setup, timeout_ms, what) -> the values passed to done, or nil, "ETIMEDOUT: ..."
-- The building block of everything below: setup(done) starts an operation that will
-- call done(...) exactly once or more (only the first counts); setup may return a
-- cancel function, called if timeout_ms passes first. Must run in a coroutine.
function M.wait(setup, timeout_ms, what)
  checktype(setup, "function", 1, "wait")
  checkms(timeout_ms, 2, "wait", true)
  local co = need_coroutine("wait")
  what = what or "wait"
  local state = "setup" -- then "yielded", then "done"
  local results, timer, cancel
  local function done(...)
    if state == "done" then return end
    local was = state
    state = "done"
    if timer then
      timer:stop()
      close_handle(timer)
      timer = nil
    end
    if was == "yielded" then
      resume(co, ...)
    else
      results = pack(...)
    end
  end
  cancel = setup(done)
  if state ~= "done" and timeout_ms then
    timer = uv.new_timer()
    arm(timer, timeout_ms, function()
      if state == "done" then return end
      if type(cancel) == "function" then cancel() end
      done(nil, ("ETIMEDOUT: %s timed out after %d ms"):format(what, timeout_ms), "ETIMEDOUT")
    end)
  end
  if state == "done" then return unpack(results, 1, results.n) end
  state = "yielded"
  return coroutine.yield()
end
local wait = M.wait

--- spawn(fn, ...) -> coroutine
-- Runs fn(...) in a new coroutine now (until its first wait); an error it raises is
-- reported (logged with a traceback, counted in clusterlua_lua_errors_total).
function M.spawn(fn, ...)
  checktype(fn, "function", 1, "spawn")
  local co = coroutine.create(fn)
  resume(co, ...)
  return co
end

--- sleep(ms)
-- sleep(0) yields to everything else the Lua loop has to do, I/O included. A timer of
-- 0 ms cannot: libuv (1.44) runs a timer started from a timer callback in the same pass
-- when it is due at once, so coroutines that sleep(0) in turn never let the loop poll,
-- and events, messages and hooks wait behind them for ever (found by the starvation
-- spec's self-saturated case). So they wait for the idle phase of the next loop turn,
-- which comes after this turn's poll: each turn polls once, then runs them all.
local yielded, yield_idle = {}, nil
local function run_yielded()
  local now = yielded
  yielded = {}
  for i = 1, #now do resume(now[i]) end
  if #yielded == 0 then yield_idle:stop() end
end

function M.sleep(ms)
  checkms(ms, 1, "sleep")
  local co = need_coroutine("sleep")
  if ms == 0 then
    yielded[#yielded + 1] = co
    if not yield_idle then yield_idle = uv.new_idle() end
    if #yielded == 1 then yield_idle:start(run_yielded) end
    coroutine.yield()
    return
  end
  local timer = uv.new_timer()
  arm(timer, ms, function()
    close_handle(timer)
    resume(co)
  end)
  coroutine.yield()
end

local pumping = false

-- True when the outermost Lua frame is a main chunk: run_until was called from a
-- script's body (or a spec under busted), not from a function libuv called back.
local function called_from_main_chunk()
  local level, last = 3, nil
  while true do
    local info = debug.getinfo(level, "S")
    if not info then break end
    last = info
    level = level + 1
  end
  return last ~= nil and last.what == "main"
end

--- run_until(pred, timeout_ms) -> true | nil, "ETIMEDOUT: ...", "ETIMEDOUT"
-- Pumps the Lua loop (uv.run "once") until pred() is true or timeout_ms passes.
-- For scripts and specs: only from the main chunk, never from a callback or a
-- coroutine, since a nested uv.run would run callbacks inside other callbacks.
function M.run_until(pred, timeout_ms)
  checktype(pred, "function", 1, "run_until")
  checkms(timeout_ms, 2, "run_until")
  if in_coroutine() then
    error("bad argument to 'run_until': must be called from the main chunk, not a coroutine", 2)
  end
  if pumping or not called_from_main_chunk() then
    error("bad argument to 'run_until': must be called from the main chunk, not a callback", 2)
  end
  if pred() then return true end
  -- keeps uv.run("once") from sleeping past the deadline when nothing else happens
  local timer = uv.new_timer()
  local expired = false
  arm(timer, timeout_ms, function() expired = true end)
  local ok, res = pcall(function()
    while true do
      -- only callbacks run by this uv.run are refused; pred() itself may pump
      -- (a spec helper that waits inside a condition is still on the main chunk)
      pumping = true
      uv.run("once")
      pumping = false
      if pred() then return true end
      if expired then return false end
    end
  end)
  pumping = false
  timer:stop()
  close_handle(timer)
  if not ok then error(res, 0) end
  if res then return true end
  return nil, ("ETIMEDOUT: condition not met within %d ms"):format(timeout_ms), "ETIMEDOUT"
end

-- luv reports a stream error as its name only ("ECONNRESET"); give it a message too.
local function uverr(err, what)
  local name = tostring(err):match("^(E%u+)") or tostring(err)
  if tostring(err):find(":", 1, true) then return nil, tostring(err), name end
  return nil, ("%s: %s failed"):format(name, what), name
end

--- read(stream [, timeout_ms]) -> data | nil, "EOF: end of stream", "EOF" | nil, err, code
-- Waits until the stream is readable and returns the next chunk.
function M.read(stream, timeout_ms)
  if type(stream) ~= "userdata" or not stream.read_start then
    argerror(1, "read", "luv stream expected, got " .. type(stream))
  end
  checkms(timeout_ms, 2, "read", true)
  need_coroutine("read")
  return wait(function(done)
    local ok, err, name = stream:read_start(function(rerr, data)
      stream:read_stop()
      if rerr then return done(uverr(rerr, "read")) end
      if data == nil then return done(nil, "EOF: end of stream", "EOF") end
      done(data)
    end)
    if not ok then return done(nil, err, name) end
    return function() stream:read_stop() end
  end, timeout_ms, "read")
end

--- write(stream, data) -> true | nil, err, code   (waits until written)
function M.write(stream, data)
  if type(stream) ~= "userdata" or not stream.write then
    argerror(1, "write", "luv stream expected, got " .. type(stream))
  end
  if type(data) ~= "string" and type(data) ~= "table" then
    argerror(2, "write", "string expected, got " .. type(data))
  end
  need_coroutine("write")
  return wait(function(done)
    local req, err, name = stream:write(data, function(werr)
      if werr then return done(uverr(werr, "write")) end
      done(true)
    end)
    if not req then done(nil, err, name) end
  end, nil, "write")
end

local function is_ip(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or host:find(":", 1, true) ~= nil
end

--- connect(host, port [, {timeout = ms}]) -> tcp handle | nil, err, code
-- host may be an address or a name (resolved with getaddrinfo). Default timeout 10 s.
function M.connect(host, port, opts)
  checktype(host, "string", 1, "connect")
  if type(port) ~= "number" or port < 1 or port > 65535 or port % 1 ~= 0 then
    argerror(2, "connect", "port 1..65535 expected, got " .. tostring(port))
  end
  checktype(opts, "table", 3, "connect", true)
  opts = opts or {}
  checkms(opts.timeout, 3, "connect", true)
  need_coroutine("connect")
  local timeout = opts.timeout or 10000
  local deadline = uv.now() + timeout
  local addrs = { host }
  if not is_ip(host) then
    local res, err, name = wait(function(done)
      local req, e, n = uv.getaddrinfo(host, nil, { socktype = "stream" }, function(gerr, r)
        if gerr then return done(uverr(gerr, "getaddrinfo " .. host)) end
        if not r or not r[1] then return done(nil, "ENOTFOUND: no address for " .. host, "ENOTFOUND") end
        done(r)
      end)
      if not req then return done(nil, e, n) end
      return function() pcall(req.cancel, req) end
    end, timeout, "resolving " .. host)
    if not res then return nil, err, name end
    addrs = {}
    for i, r in ipairs(res) do addrs[i] = r.addr end
  end
  -- a name may have several addresses (localhost: ::1 and 127.0.0.1): try each in turn
  local ok, err, name
  for _, addr in ipairs(addrs) do
    local tcp = uv.new_tcp()
    ok, err, name = wait(function(done)
      local req, e, n = tcp:connect(addr, port, function(cerr)
        if cerr then return done(uverr(cerr, ("connect to %s:%d"):format(host, port))) end
        done(true)
      end)
      if not req then return done(nil, e, n) end
    end, math.max(0, deadline - uv.now()), ("connect to %s:%d"):format(host, port))
    if ok then return tcp end
    close_handle(tcp)
    if name == "ETIMEDOUT" then break end
  end
  return nil, err, name
end

-- One uv.fs_* call: with a callback in a coroutine, synchronously elsewhere (a file
-- read at start-up from the main chunk must not need a coroutine).
local function fs(fname, ...)
  if not in_coroutine() then return uv[fname](...) end
  local args = pack(...)
  return wait(function(done)
    args[args.n + 1] = function(err, ...)
      if err then return done(uverr(err, fname)) end
      done(...)
    end
    local req, err, name = uv[fname](unpack(args, 1, args.n + 1))
    if not req then done(nil, err, name) end
  end, nil, fname)
end

--- readfile(path) -> contents | nil, err, code
-- Waits in a coroutine; reads synchronously when called outside one.
function M.readfile(path)
  checktype(path, "string", 1, "readfile")
  local fd, err, name = fs("fs_open", path, "r", 0)
  if not fd then return nil, err, name end
  local chunks = {}
  local offset = 0
  while true do
    -- /proc and pipes report size 0, so read until an empty chunk instead of fstat
    local data, rerr, rname = fs("fs_read", fd, 65536, offset)
    if not data then
      fs("fs_close", fd)
      return nil, rerr, rname
    end
    if #data == 0 then break end
    chunks[#chunks + 1] = data
    offset = offset + #data
  end
  fs("fs_close", fd)
  return table.concat(chunks)
end

local function build_env(env, clear)
  local merged = {}
  if not clear then
    for k, v in pairs(uv.os_environ()) do merged[k] = v end
  end
  for k, v in pairs(env) do
    if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
      argerror(3, "exec", "opts.env: string keys and string values expected", 3)
    end
    merged[k] = tostring(v)
  end
  local list = {}
  for k, v in pairs(merged) do list[#list + 1] = k .. "=" .. v end
  table.sort(list)
  return list
end

-- Writing to a child's stdin after it exited raises SIGPIPE, which kills the whole
-- runtime by default. A libuv watcher for it (unref'd: it must not keep the loop
-- alive) turns that into an EPIPE write error instead.
local sigpipe
function M.ignore_sigpipe()
  if sigpipe then return end
  sigpipe = uv.new_signal()
  sigpipe:start("sigpipe", function() end)
  sigpipe:unref()
end

--- exec(cmd, args, opts) -> status, stdout, stderr [, signal]
--        | nil, "ETIMEDOUT: ...", "ETIMEDOUT" | nil, "ENOENT: ...", "ENOENT"
-- Runs cmd (looked up in PATH, no shell) with args and waits for it to exit.
-- opts: timeout (ms; the child is killed with SIGKILL when it passes), env (added to
-- the inherited environment; clear_env = true to pass only env), cwd, stdin (a
-- string written to the child's stdin; otherwise stdin is empty).
-- status is the exit code, or 128 + the signal number if a signal ended the child.
function M.exec(cmd, args, opts)
  checktype(cmd, "string", 1, "exec")
  checktype(args, "table", 2, "exec", true)
  checktype(opts, "table", 3, "exec", true)
  opts = opts or {}
  checkms(opts.timeout, 3, "exec", true)
  checktype(opts.env, "table", 3, "exec", true)
  checktype(opts.cwd, "string", 3, "exec", true)
  checktype(opts.stdin, "string", 3, "exec", true)
  local argv = {}
  for i, a in ipairs(args or {}) do
    if type(a) ~= "string" and type(a) ~= "number" then
      argerror(2, "exec", ("args[%d]: string expected, got %s"):format(i, type(a)))
    end
    argv[i] = tostring(a)
  end
  local co = need_coroutine("exec")

  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local out, err = {}, {}
  local exited, code, signal = false, nil, nil
  local open_streams = 2
  local waiting, timed_out = false, false
  local timer = uv.new_timer()
  local proc

  local function finish()
    timer:stop()
    close_handle(timer)
    close_handle(stdin)
    close_handle(stdout)
    close_handle(stderr)
    close_handle(proc)
    if waiting then
      waiting = false
      resume(co)
    end
  end
  -- Everything the child wrote is in once it exited and both pipes reached EOF;
  -- a grandchild that keeps the pipes open gets a short grace period, not forever.
  local function check()
    if exited and open_streams == 0 then return finish() end
    if exited and not timed_out then
      timer:stop()
      arm(timer, 200, finish)
    end
  end
  local spawn_opts = {
    args = argv,
    stdio = { stdin, stdout, stderr },
    cwd = opts.cwd,
    env = (opts.env or opts.clear_env) and build_env(opts.env or {}, opts.clear_env) or nil,
  }
  local pid, perr, pname
  proc, pid, pname = uv.spawn(cmd, spawn_opts, function(c, s)
    exited, code, signal = true, c, s
    check()
  end)
  if not proc then
    perr = pid
    timer:stop()
    close_handle(timer)
    close_handle(stdin)
    close_handle(stdout)
    close_handle(stderr)
    pname = pname or tostring(perr):match("^(E%u+)") or "ESPAWN"
    local reason = tostring(perr):gsub("^E%u+: ", "")
    return nil, ("%s: cannot run '%s': %s"):format(pname, cmd, reason), pname
  end
  local function reader(buf)
    return function(rerr, data)
      if data then
        buf[#buf + 1] = data
      else
        -- EOF or a read error: either way nothing more comes from this pipe
        open_streams = open_streams - 1
        check()
      end
      if rerr then buf[#buf + 1] = "" end
    end
  end
  stdout:read_start(reader(out))
  stderr:read_start(reader(err))
  if opts.stdin and #opts.stdin > 0 then
    M.ignore_sigpipe()
    stdin:write(opts.stdin)
  end
  stdin:shutdown()
  if opts.timeout then
    arm(timer, opts.timeout, function()
      if exited then return finish() end
      timed_out = true
      proc:kill("sigkill")
      -- the exit callback reaps the child; the grace timer of check() is not armed
      -- after a timeout, so finish() runs on exit and EOF, or after this bound
      arm(timer, 2000, finish)
    end)
  end
  if not (exited and open_streams == 0) then
    waiting = true
    coroutine.yield()
  end
  if timed_out then
    return nil, ("ETIMEDOUT: '%s' did not finish within %d ms (killed, pid %d)"):format(cmd, opts.timeout, pid),
      "ETIMEDOUT"
  end
  local status = code or 0
  if signal and signal ~= 0 then status = 128 + signal end
  return status, table.concat(out), table.concat(err), (signal ~= 0 and signal or nil)
end

return M
