-- Event registration by name: registering under an existing name replaces it, which is
-- what makes reloading hooks and strategies idempotent. Each call runs in its own
-- coroutine so a hook may wait (sleep, exec, call) without blocking the node.
--
-- Every resume of a coroutine this module runs goes through M.resume (async.lua, node.lua
-- and cluster.lua route their completions here), which is what lets it:
--   * contain errors: reported with the hook's name and a traceback, counted;
--   * enforce a time budget per resume slice: a hook that runs longer than its budget
--     without yielding is aborted (see "budget" below);
--   * cancel: a cancelled coroutine is never resumed again, whoever completes its wait.
--
-- Budget. LuaJIT keeps one hook per VM (debug.sethook ignores the coroutine argument)
-- and never calls count hooks from JIT-compiled traces. So the watchdog is a global
-- count hook installed only while a budgeted slice runs and removed when it yields or
-- returns, and hook functions are registered with the JIT off for them and for every
-- function they define (jit.off(fn, true)), so their loops stay interpreted and
-- interruptible. Code compiled elsewhere, or blocking in C, is not interrupted: see
-- docs/hooks.md.
local core = require "clusterlua.c.core"

local M = {}

M.known = {
  node_up = true, node_down = true, master_changed = true, quorum_lost = true,
  quorum_regained = true, state_committed = true, strategy_error = true, reloaded = true,
}

M.default_budget_ms = 200
-- VM instructions between two clock checks: ~ a few microseconds of interpreted code,
-- so the abort lands within about a millisecond of the budget
M.check_every = 1000
-- calls of a serialized hook waiting for the previous one; beyond this the oldest is dropped
M.max_queue = 64

local registry = {} -- event -> { order = {names...}, entries = {name -> entry} }
M.stats = { errors = 0, calls = 0, aborts = 0, dropped = 0 }

local pack = function(...) return { n = select("#", ...), ... } end
local unpack = unpack or table.unpack

-- Coroutines this module runs: co -> { what=, budget_ms=, parent=, on_done= }.
-- Weak keys: a coroutine nobody will resume again is collected with its record.
local tracked = setmetatable({}, { __mode = "k" })
local cancelled = setmetatable({}, { __mode = "k" })

local stack = {}     -- slices running now, innermost last: { co=, rec=, start=, aborted= }
local budgeted = 0   -- how many slices on the stack have a budget (the hook is on while > 0)
local saved_hook     -- a debug hook someone else had set, restored when ours comes off

local function check_event(event, level)
  if type(event) ~= "string" or not M.known[event] then
    local list = {}
    for k in pairs(M.known) do list[#list + 1] = k end
    table.sort(list)
    error(("bad argument #1 (event): expected one of %s, got %s"):format(table.concat(list, ", "), tostring(event)),
      level + 1)
  end
end

local function check_budget(v, what, level)
  if v == nil or v == false then return end
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then
    error(("bad argument (%s): expected milliseconds (a number >= 0, 0 or false for none), got %s"):format(
      what, tostring(v)), level + 1)
  end
end

--- set_budget(ms): the default budget of hooks registered without one (0 = none)
function M.set_budget(ms)
  check_budget(ms, "ms", 2)
  M.default_budget_ms = ms or 0
end

-- Compiled traces never call count hooks: keep hook code interpreted. C functions
-- and builds without a JIT have nothing to turn off.
local function nojit(fn)
  if jit and type(fn) == "function" then pcall(jit.off, fn, true) end
end
M.nojit = nojit

-- ---- the watchdog ----

local watchdog
function watchdog()
  local top = stack[#stack]
  if not top then return end
  local budget = top.rec.budget_ms
  if not budget or budget <= 0 then return end
  -- the resumer runs again once the slice has ended (or is unwinding): never abort it
  if coroutine.running() == top.resumer then return end
  local elapsed = core.now() - top.start
  if elapsed > budget then
    -- After the first abort, check on every instruction: a pcall around the loop then
    -- catches the error only to have it raised again at the next instruction outside,
    -- so the error unwinds every pcall up to the coroutine's top.
    if not top.aborted then
      top.aborted = elapsed
      debug.sethook(watchdog, "", 1)
    end
    error(("EBUDGET: %s ran %d ms without yielding (budget %d ms) and was aborted"):format(
      top.rec.what, math.floor(elapsed), budget), 0)
  end
end

local function hook_on()
  local f, mask, count = debug.gethook()
  if f ~= watchdog then saved_hook = f and { f, mask, count } or nil end
  debug.sethook(watchdog, "", M.check_every)
end

local function hook_off()
  if saved_hook then
    debug.sethook(saved_hook[1], saved_hook[2], saved_hook[3])
    saved_hook = nil
  else
    debug.sethook()
  end
end

-- ---- running coroutines ----

function M.is_cancelled(co)
  local depth = 0
  while co and depth < 100 do
    if cancelled[co] then return true end
    local rec = tracked[co]
    co = rec and rec.parent
    depth = depth + 1
  end
  return false
end

--- cancel(co): co (and what it started while running) is never resumed again
function M.cancel(co)
  if type(co) ~= "thread" then error("bad argument #1 (co): expected a coroutine", 2) end
  cancelled[co] = true
end

-- True when M.resume must handle co: one of ours, cancelled, or resumed from inside one
-- of ours (a coroutine a hook starts is part of the hook).
function M.manages(co)
  return tracked[co] ~= nil or cancelled[co] ~= nil or #stack > 0
end

local function report(what, err)
  M.stats.errors = M.stats.errors + 1
  core.report(what, tostring(err))
end

local function end_slice(co, rec, slice, has_budget, ok, err)
  stack[#stack] = nil
  if has_budget then
    budgeted = budgeted - 1
    if budgeted == 0 then
      hook_off()
    elseif slice.aborted then
      debug.sethook(watchdog, "", M.check_every) -- back to the normal rate for the outer slice
    end
  end
  if not ok then
    if type(err) == "userdata" then error(err, 0) end
    if slice.aborted then
      M.stats.aborts = M.stats.aborts + 1
      core.count_hook_abort()
    end
    report(rec.what, debug.traceback(co, tostring(err)))
  end
  if rec.on_done and coroutine.status(co) == "dead" then
    local f = rec.on_done
    rec.on_done = nil
    f(ok)
  end
  return ok
end

--- resume(co, ...) -> ok
-- The one way to resume a coroutine that may be a hook's: skips cancelled ones (returns
-- false), applies the budget, reports an error or abort, and lets os.exit through.
function M.resume(co, ...)
  if M.is_cancelled(co) then return false end
  local rec = tracked[co]
  if not rec then
    local parent = stack[#stack]
    if not parent then
      -- not ours: plain resume with the reporting async.lua always did
      local ok, err = coroutine.resume(co, ...)
      if not ok then
        if type(err) == "userdata" then error(err, 0) end
        core.report("coroutine", debug.traceback(co, tostring(err)))
      end
      return ok
    end
    rec = { what = parent.rec.what, budget_ms = parent.rec.budget_ms, parent = parent.co }
    tracked[co] = rec
  end
  local has_budget = rec.budget_ms and rec.budget_ms > 0
  -- the clock is read only for a budget: this runs for every message reply
  local slice = { co = co, rec = rec, start = has_budget and core.now() or 0, resumer = coroutine.running() }
  stack[#stack + 1] = slice
  if has_budget then
    budgeted = budgeted + 1
    if budgeted == 1 then hook_on() end
  end
  return end_slice(co, rec, slice, has_budget, coroutine.resume(co, ...))
end

local function start(what, fn, budget_ms, on_done, ...)
  local co = coroutine.create(fn)
  tracked[co] = { what = what, budget_ms = budget_ms, on_done = on_done }
  M.resume(co, ...)
  return co
end

--- spawn(what, fn, ...) -> coroutine
-- Runs fn(...) in a new coroutine now; an error is reported with `what`. No budget
-- (the runtime's own work: reload, message handlers), unless started from a hook.
function M.spawn(what, fn, ...)
  local parent = stack[#stack]
  return start(what, fn, parent and parent.rec.budget_ms or nil, nil, ...)
end

--- spawn_hook(what, fn, opts, ...) -> coroutine
-- Like spawn, for user code: opts.budget_ms (default M.default_budget_ms; 0 = none).
function M.spawn_hook(what, fn, opts, ...)
  local budget = opts and opts.budget_ms
  if budget == nil then budget = M.default_budget_ms end
  nojit(fn)
  return start(what, fn, budget or 0, opts and opts.on_done, ...)
end

-- ---- registration ----

--- on(event, name, fn [, opts]): opts.budget_ms, opts.serialize (a call waits until the
-- previous call of this hook has finished, instead of running beside it)
function M.on(event, name, fn, opts)
  check_event(event, 2)
  if type(name) ~= "string" then error("bad argument #2 (name): expected a string", 2) end
  if type(fn) ~= "function" then error("bad argument #3 (fn): expected a function", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #4 (opts): expected a table", 2) end
  opts = opts or {}
  check_budget(opts.budget_ms, "opts.budget_ms", 2)
  nojit(fn)
  local r = registry[event]
  if not r then
    r = { order = {}, entries = {} }
    registry[event] = r
  end
  local old = r.entries[name]
  if not old then r.order[#r.order + 1] = name end
  -- a replaced serialized hook keeps its queue position: calls in flight finish as they are
  r.entries[name] = {
    fn = fn, budget_ms = opts.budget_ms, serialize = opts.serialize and true or false,
    busy = old and old.busy, queue = old and old.queue or {},
  }
end

function M.off(event, name)
  check_event(event, 2)
  local r = registry[event]
  if not r or not r.entries[name] then return false end
  r.entries[name] = nil
  for i, n in ipairs(r.order) do
    if n == name then
      table.remove(r.order, i)
      break
    end
  end
  return true
end

function M.list(event)
  local r = registry[event]
  local out = {}
  if r then for _, n in ipairs(r.order) do out[#out + 1] = n end end
  return out
end

--- get(event, name) -> fn, opts | nil
function M.get(event, name)
  local r = registry[event]
  local e = r and r.entries[name]
  if not e then return nil end
  return e.fn, { budget_ms = e.budget_ms, serialize = e.serialize }
end

local function run_entry(event, name, e, args)
  M.stats.calls = M.stats.calls + 1
  local opts = { budget_ms = e.budget_ms }
  if e.serialize then
    e.busy = true
    opts.on_done = function()
      e.busy = false
      local nxt = table.remove(e.queue, 1)
      if nxt then run_entry(event, name, e, nxt) end
    end
  end
  M.spawn_hook(("hook %s (%s)"):format(name, event), e.fn, opts, unpack(args, 1, args.n))
end

-- Emits an event to every registered function, in registration order. Each call starts
-- now and runs until its first wait; a call still waiting when the next event comes runs
-- beside the new one, unless its hook is serialized.
function M.emit(event, ...)
  local r = registry[event]
  if not r then return end
  local names = {}
  for i, n in ipairs(r.order) do names[i] = n end -- a hook may register or remove hooks
  for _, name in ipairs(names) do
    local e = r.entries[name]
    if e then
      local args = pack(...)
      if e.serialize and e.busy then
        if #e.queue >= M.max_queue then
          table.remove(e.queue, 1)
          M.stats.dropped = M.stats.dropped + 1
          core.log("warn", "hooks", ("hook %s (%s): still busy, %d calls queued; dropped the oldest"):format(
            name, event, M.max_queue))
        end
        e.queue[#e.queue + 1] = args
      else
        run_entry(event, name, e, args)
      end
    end
  end
end

return M
