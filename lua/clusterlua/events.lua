-- Event registration by name: registering under an existing name replaces it, which is
-- what makes reloading hooks and strategies idempotent. Each call runs in its own
-- coroutine so a hook may wait (sleep, exec, call) without blocking the node.
--
-- This module is the registry and the emitter only; the coroutines, their time budget
-- and their cancellation are scheduler.lua's. A hook runs as a budgeted scheduler
-- coroutine (spawn_hook), with the JIT off so that the budget can interrupt it.
local core = require "clusterlua.c.core"
local scheduler = require "clusterlua.scheduler"
local check = require "clusterlua.check"

local M = {}

M.known = {
  node_up = true, node_down = true, master_changed = true, quorum_lost = true,
  quorum_regained = true, state_committed = true, strategy_error = true, reloaded = true,
}

M.default_budget_ms = 200
-- calls of a serialized hook waiting for the previous one; beyond this the oldest is dropped
M.max_queue = 64

local registry = {} -- event -> { order = {names...}, entries = {name -> entry} }
M.stats = { calls = 0, dropped = 0 }

local pack = function(...) return { n = select("#", ...), ... } end
local unpack = unpack or table.unpack

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
  local ok, why = check.ms(v)
  if not ok then error(("bad argument (%s): %s; 0 or false for none"):format(what, why), level + 1) end
end

--- set_budget(ms): the default budget of hooks registered without one (0 = none)
function M.set_budget(ms)
  check_budget(ms, "ms", 2)
  M.default_budget_ms = ms or 0
end

--- spawn_hook(what, fn, opts, ...) -> coroutine
-- Runs fn(...) now as user code: a scheduler coroutine with opts.budget_ms (default
-- M.default_budget_ms; 0 = none) and the JIT off for fn, and opts.on_done(ok) once it
-- has finished. Hooks run this way, and so do on_master duties.
function M.spawn_hook(what, fn, opts, ...)
  local budget = opts and opts.budget_ms
  if budget == nil then budget = M.default_budget_ms end
  scheduler.nojit(fn)
  return scheduler.start(what, fn, budget or 0, opts and opts.on_done, ...)
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
  scheduler.nojit(fn)
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
