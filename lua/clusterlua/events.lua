-- Event registration by name: registering under an existing name replaces it, which is
-- what makes reloading hooks and strategies idempotent. Each call runs in its own
-- coroutine so a hook may wait (sleep, exec, call) without blocking the node.
local core = require "clusterlua.core"

local M = {}

M.known = {
  node_up = true, node_down = true, master_changed = true, quorum_lost = true,
  quorum_regained = true, state_committed = true, strategy_error = true, reloaded = true,
}

local registry = {} -- event -> { order = {names...}, fns = {name -> fn} }
M.stats = { errors = 0, calls = 0 }

local function check_event(event, level)
  if type(event) ~= "string" or not M.known[event] then
    local list = {}
    for k in pairs(M.known) do list[#list + 1] = k end
    table.sort(list)
    error(("bad argument #1 (event): expected one of %s, got %s"):format(table.concat(list, ", "), tostring(event)),
      level + 1)
  end
end

function M.on(event, name, fn)
  check_event(event, 2)
  if type(name) ~= "string" then error("bad argument #2 (name): expected a string", 2) end
  if type(fn) ~= "function" then error("bad argument #3 (fn): expected a function", 2) end
  local r = registry[event]
  if not r then
    r = { order = {}, fns = {} }
    registry[event] = r
  end
  if not r.fns[name] then r.order[#r.order + 1] = name end
  r.fns[name] = fn
end

function M.off(event, name)
  check_event(event, 2)
  local r = registry[event]
  if not r or not r.fns[name] then return false end
  r.fns[name] = nil
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

local function report(what, err)
  M.stats.errors = M.stats.errors + 1
  core.report(what, tostring(err))
end

-- Runs fn(...) in a new coroutine; an error is reported with the hook's name.
function M.spawn(what, fn, ...)
  local co = coroutine.create(fn)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    -- os.exit unwinds with a userdata sentinel: let it reach the runtime
    if type(err) == "userdata" then error(err, 0) end
    report(what, debug.traceback(co, err))
  end
  return co
end

-- Emits an event to every registered function, in registration order.
function M.emit(event, ...)
  local r = registry[event]
  if not r then return end
  for _, name in ipairs(r.order) do
    local fn = r.fns[name]
    if fn then
      M.stats.calls = M.stats.calls + 1
      M.spawn(("hook %s (%s)"):format(name, event), fn, ...)
    end
  end
end

return M
