-- The one place coroutines are resumed: hooks (events.lua), master duties (cluster.lua),
-- the coroutine helpers (async.lua), call replies (node.lua) and the runtime's own work
-- (reload) all go through M.resume, which is what lets it:
--   * contain errors: reported with the coroutine's name and a traceback, counted;
--   * enforce a time budget per resume slice: a coroutine that runs longer than its
--     budget without yielding is aborted (see "budget" below);
--   * cancel: a cancelled coroutine is never resumed again, whoever completes its wait.
-- It knows nothing of events, nodes or I/O: it is the layer below all of them.
--
-- Budget. LuaJIT keeps one hook per VM (debug.sethook ignores the coroutine argument)
-- and never calls count hooks from JIT-compiled traces. So the watchdog is a global
-- count hook installed only while a budgeted slice runs and removed when it yields or
-- returns, and budgeted functions are run with the JIT off for them and for every
-- function they define (jit.off(fn, true), see M.nojit), so their loops stay
-- interpreted and interruptible. Code compiled elsewhere, or blocking in C, is not
-- interrupted: see docs/hooks.md.
local core = require "clusterlua.c.core"
local events_out = require "clusterlua.report"

local M = {}

-- VM instructions between two clock checks: ~ a few microseconds of interpreted code,
-- so the abort lands within about a millisecond of the budget
M.check_every = 1000

M.stats = { errors = 0, aborts = 0 }

-- Coroutines this module runs: co -> { what=, budget_ms=, parent=, on_done= }.
-- Weak keys: a coroutine nobody will resume again is collected with its record.
local tracked = setmetatable({}, { __mode = "k" })
local cancelled = setmetatable({}, { __mode = "k" })

local stack = {}     -- slices running now, innermost last: { co=, rec=, start=, aborted= }
local budgeted = 0   -- how many slices on the stack have a budget (the hook is on while > 0)
local saved_hook     -- a debug hook someone else had set, restored when ours comes off

-- Compiled traces never call count hooks: keep budgeted code interpreted. C functions
-- and builds without a JIT have nothing to turn off.
function M.nojit(fn)
  if jit and type(fn) == "function" then pcall(jit.off, fn, true) end
end

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

-- ---- cancellation ----

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

-- ---- resuming ----

local function report(what, err, aborted)
  M.stats.errors = M.stats.errors + 1
  core.report(what, tostring(err))
  -- hooks (and on_master duties, which run as hooks) reach the event stream
  if type(what) == "string" and (what:match "^hook " or what:match "^on_master ") then
    events_out.event(aborted and "hook_abort" or "hook_error", { hook = what:gsub("^hook ", ""), error = tostring(err) })
  end
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
    report(rec.what, debug.traceback(co, tostring(err)), slice.aborted)
  end
  if rec.on_done and coroutine.status(co) == "dead" then
    local f = rec.on_done
    rec.on_done = nil
    f(ok)
  end
  return ok
end

--- resume(co, ...) -> ok
-- The one way to resume a coroutine: skips cancelled ones (returns false), applies the
-- budget, reports an error or abort, and lets os.exit through (it unwinds with a
-- userdata error value that must reach the runtime, not be reported as a failure).
function M.resume(co, ...)
  if M.is_cancelled(co) then return false end
  local rec = tracked[co]
  if not rec then
    local parent = stack[#stack]
    if not parent then
      -- started outside any tracked coroutine (a script's cl.spawn): nothing to apply,
      -- only errors to report
      local ok, err = coroutine.resume(co, ...)
      if not ok then
        if type(err) == "userdata" then error(err, 0) end
        core.report("coroutine", debug.traceback(co, tostring(err)))
      end
      return ok
    end
    -- a coroutine started from inside a tracked one is part of it: same name, same
    -- budget, cancelled with it
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

--- start(what, fn, budget_ms, on_done, ...) -> coroutine
-- Runs fn(...) in a new tracked coroutine now, until its first wait. budget_ms (nil or
-- 0: none) applies to every resume slice; on_done(ok) runs once the coroutine is dead.
-- Errors are reported with `what`.
function M.start(what, fn, budget_ms, on_done, ...)
  local co = coroutine.create(fn)
  tracked[co] = { what = what, budget_ms = budget_ms, on_done = on_done }
  M.resume(co, ...)
  return co
end

--- spawn(what, fn, ...) -> coroutine
-- Like start, for the runtime's own work (reload, the admin endpoint's requests): no
-- budget, unless started from a budgeted coroutine, whose budget it then shares.
function M.spawn(what, fn, ...)
  local parent = stack[#stack]
  return M.start(what, fn, parent and parent.rec.budget_ms or nil, nil, ...)
end

return M
