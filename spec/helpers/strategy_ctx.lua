-- A stand-in for the supervisor's ctx, for running a strategy without a node: it
-- records what the strategy declares, logs and reports, and uses real uv handles
-- (closed by :close(), like the supervisor does on stop). Used by the unit specs and
-- by the small scripts the gossip specs run in other processes.
--
--   local fake = require "helpers.strategy_ctx"
--   local ctx = fake.new { self = "me@127.0.0.1:4370", cookie = "c", cluster = "spec" }
--   strategy.start(ctx, config)
--   async.run_until(function() return #ctx.sets > 0 end, 2000)
--   local state = strategy.stop(ctx); ctx:close()
local uv = require "uv"
local names = require "clusterlua.names"

local M = {}

function M.new(opts)
  opts = opts or {}
  local ctx = {
    topology = opts.topology or "spec",
    self = opts.self or "self@127.0.0.1:4370",
    cluster = opts.cluster or "spec",
    sets = {},     -- every set_nodes call, as a sorted list of full names
    current = {},  -- the last declared set (name -> true)
    errors = {},   -- every ctx.error, as strings
    logs = {},     -- { level, msg }
    crashes = {},  -- errors raised by guarded callbacks and spawned coroutines
    handles = {},
    stopped = false,
  }
  local function alive() return not ctx.stopped end
  local function guard(fn)
    return function(...)
      if not alive() then return end
      local ok, err = pcall(fn, ...)
      if not ok then
        ctx.crashes[#ctx.crashes + 1] = tostring(err)
        if opts.on_crash then opts.on_crash(err) end
      end
    end
  end
  ctx.guard = guard
  local function declare(set)
    ctx.current = set
    local list = {}
    for n in pairs(set) do list[#list + 1] = n end
    table.sort(list)
    ctx.sets[#ctx.sets + 1] = list
    if opts.on_set then opts.on_set(list) end
  end
  function ctx.set_nodes(list)
    if not alive() then return end
    local set = {}
    for i, n in ipairs(list) do
      local full, err = names.full(n)
      if not full then error(("bad argument #1 (nodes[%d]): %s"):format(i, err), 2) end
      if full ~= ctx.self then set[full] = true end
    end
    declare(set)
  end
  function ctx.nodes()
    local out = {}
    for n in pairs(ctx.current) do out[#out + 1] = n end
    table.sort(out)
    return out
  end
  function ctx.connect(name)
    local full, err, code = names.full(name)
    if not full then return nil, err, code end
    local set = {}
    for n in pairs(ctx.current) do set[n] = true end
    if full ~= ctx.self then set[full] = true end
    declare(set)
    return true
  end
  function ctx.disconnect(name)
    local full, err, code = names.full(name)
    if not full then return nil, err, code end
    local set = {}
    for n in pairs(ctx.current) do set[n] = true end
    set[full] = nil
    declare(set)
    return true
  end
  function ctx.log(level, msg)
    if msg == nil then level, msg = "info", level end
    ctx.logs[#ctx.logs + 1] = { level, tostring(msg) }
    if opts.echo then io.stderr:write(("[%s] %s %s\n"):format(ctx.topology, level, tostring(msg))) end
  end
  function ctx.error(err)
    ctx.errors[#ctx.errors + 1] = tostring(err)
    if opts.on_error then opts.on_error(tostring(err)) end
  end
  local function track(h)
    ctx.handles[h] = true
    return h
  end
  function ctx.timer(ms, fn)
    local t = track(uv.new_timer())
    t:start(ms, 0, guard(function()
      ctx.handles[t] = nil
      if not t:is_closing() then t:close() end
      fn()
    end))
    return t
  end
  function ctx.every(ms, fn, jitter)
    local t = track(uv.new_timer())
    local function arm()
      local d = ms
      if jitter and jitter > 0 then d = ms + math.random(0, jitter) end
      t:start(d, 0, guard(function()
        fn()
        if alive() and not t:is_closing() then arm() end
      end))
    end
    arm()
    return t
  end
  function ctx.udp() return track(uv.new_udp()) end
  function ctx.fs_event() return track(uv.new_fs_event()) end
  function ctx.spawn(fn, ...)
    local co = coroutine.create(fn)
    local ok, err = coroutine.resume(co, ...)
    if not ok then ctx.crashes[#ctx.crashes + 1] = debug.traceback(co, err) end
  end
  ctx.dns = require "clusterlua.dns"
  function ctx.cookie_key(purpose)
    return require("clusterlua.crypto").derive_key(opts.cookie or "spec-cookie", purpose)
  end
  -- what the supervisor does after stop(ctx): close every handle opened through ctx
  function ctx.close()
    ctx.stopped = true
    for h in pairs(ctx.handles) do
      if not h:is_closing() then h:close() end
    end
    ctx.handles = {}
  end
  function ctx.last_set() return ctx.sets[#ctx.sets] end
  function ctx.has(name)
    return ctx.current[name] == true
  end
  return ctx
end

return M
