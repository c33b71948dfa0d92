-- The supervisor's own ctx, for running a strategy without a node: a real supervisor
-- (lua/clusterlua/supervisor.lua) whose runtime records what the strategy declares,
-- logs and reports instead of dialling. Used by the unit specs and by the small scripts
-- the gossip specs run in other processes.
--
--   local fake = require "helpers.strategy_ctx"
--   local ctx = fake.new { self = "me@127.0.0.1:4370", cookie = "c", cluster = "spec" }
--   (or keys = fn() -> the keyring, primary first: ctx.cookie_key/cookie_keys follow it)
--   strategy.start(ctx, config)
--   async.run_until(function() return #ctx.sets > 0 end, 2000)
--   local state = strategy.stop(ctx); ctx:close()
local supervisor = require "clusterlua.supervisor"

local M = {}

function M.new(opts)
  opts = opts or {}
  local sup = supervisor.new {
    self_name = opts.self or "self@127.0.0.1:4370",
    cluster = opts.cluster or "spec",
    cookie = opts.cookie or "spec-cookie",
    keys = opts.keys,
    want = function() end,
    unwant = function() end,
  }
  local inst = { name = opts.topology or "spec", set = {}, restarts = 0, topo = { module = {} } }
  sup.topos[inst.name] = inst
  local ctx = sup:_ctx(inst)
  inst.ctx = ctx
  ctx.sets = {}     -- every declared set, as a sorted list of full names
  ctx.current = {}  -- the last declared set (name -> true)
  ctx.errors = {}   -- every ctx.error, as strings
  ctx.logs = {}     -- { level, msg }
  ctx.crashes = {}  -- errors raised by guarded callbacks and spawned coroutines

  -- record each declared set; the supervisor's refcounting of wanted nodes is the real one
  local apply = sup._apply
  function sup:_apply(i, set)
    apply(self, i, set)
    ctx.current = set
    local list = {}
    for n in pairs(set) do list[#list + 1] = n end
    table.sort(list)
    ctx.sets[#ctx.sets + 1] = list
    if opts.on_set then opts.on_set(list) end
  end
  -- a crash is recorded, not restarted with backoff as the supervisor would
  function sup:_crashed(_, err)
    ctx.crashes[#ctx.crashes + 1] = tostring(err)
    if opts.on_crash then opts.on_crash(err) end
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
  -- what the supervisor does after stop(ctx): close every handle opened through ctx
  function ctx.close()
    inst.stopped = true
    sup:_close_handles(inst)
  end
  -- ticks: how many times a ctx.every callback has run to its end (a marker for "a poll
  -- happened and did nothing")
  ctx.ticks = 0
  local every = ctx.every
  function ctx.every(ms, fn, jitter)
    return every(ms, function()
      fn()
      ctx.ticks = ctx.ticks + 1
    end, jitter)
  end
  function ctx.last_set() return ctx.sets[#ctx.sets] end
  function ctx.has(name) return ctx.current[name] == true end
  return ctx
end

return M
