-- Hooks from a topology: `hooks = "hooks.lua"` (relative to the topology file) or an
-- inline table, returning
--   { EVENT = fn }                                  registered as "hooks:EVENT"
--   { EVENT = { name = fn, ... } }
--   { EVENT = { name = { fn = fn, budget_ms = 500, serialize = true } } }
-- plus optional top-level defaults for the whole file: budget_ms = ms, serialize = bool.
-- Registration is by name, so loading the same file again replaces, never duplicates.
local events = require "clusterlua.events"
local scheduler = require "clusterlua.scheduler"
local topology = require "clusterlua.topology"
local check = require "clusterlua.check"

local M = {}

local registered = {} -- names this module registered, per event, so a reload can drop removed ones

local OPTION_KEYS = { budget_ms = true, serialize = true }

local function check_budget(v, origin, path)
  if v == nil or v == false then return true end
  local ok, why = check.ms(v)
  if not ok then return nil, ("%s: %s: %s"):format(origin, path, why) end
  return true
end

local function entry(fn, defaults)
  return { fn = fn, opts = { budget_ms = defaults.budget_ms, serialize = defaults.serialize } }
end

-- Validates everything before anything is registered; returns event -> name -> {fn, opts}.
function M.collect(src, origin)
  origin = origin or "(hooks)"
  if type(src) ~= "table" then return nil, origin .. ": hooks must be a table, got " .. type(src) end
  local defaults = { budget_ms = src.budget_ms, serialize = src.serialize }
  local ok, err = check_budget(src.budget_ms, origin, "budget_ms")
  if not ok then return nil, err end
  if src.serialize ~= nil and type(src.serialize) ~= "boolean" then
    return nil, origin .. ": serialize: expected a boolean, got " .. type(src.serialize)
  end
  local out = {}
  for event, v in pairs(src) do
    if OPTION_KEYS[event] then
      -- the file-wide defaults, handled above
    elseif not events.known[event] then
      local list = {}
      for k in pairs(events.known) do list[#list + 1] = k end
      table.sort(list)
      return nil, ("%s: unknown hook event %q (expected one of %s, or budget_ms, serialize)"):format(
        origin, tostring(event), table.concat(list, ", "))
    else
      out[event] = {}
      if type(v) == "function" then
        out[event]["hooks:" .. event] = entry(v, defaults)
      elseif type(v) == "table" then
        for name, h in pairs(v) do
          if type(name) ~= "string" then
            return nil, ("%s: hooks.%s must map names to functions"):format(origin, event)
          end
          if type(h) == "function" then
            out[event][name] = entry(h, defaults)
          elseif type(h) == "table" and type(h.fn) == "function" then
            local e = entry(h.fn, defaults)
            local bok, berr = check_budget(h.budget_ms, origin, ("hooks.%s.%s.budget_ms"):format(event, name))
            if not bok then return nil, berr end
            if h.budget_ms ~= nil then e.opts.budget_ms = h.budget_ms end
            if h.serialize ~= nil then e.opts.serialize = h.serialize and true or false end
            for k in pairs(h) do
              if k ~= "fn" and not OPTION_KEYS[k] then
                return nil, ("%s: hooks.%s.%s: unknown key %q (expected fn, budget_ms, serialize)"):format(
                  origin, event, name, tostring(k))
              end
            end
            out[event][name] = e
          else
            return nil, ("%s: hooks.%s.%s must be a function or { fn = function, budget_ms =, serialize = }"):format(
              origin, event, name)
          end
        end
      else
        return nil, ("%s: hooks.%s must be a function or a table of functions"):format(origin, event)
      end
    end
  end
  return out
end

-- Reads a hooks file: its chunk and everything it defines run with the JIT off, so the
-- budget watchdog can interrupt them (see scheduler.lua).
function M.read(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  scheduler.nojit(chunk)
  local ok, res = pcall(chunk)
  if not ok then return nil, path .. ": " .. tostring(res) end
  return res
end

-- Swaps the registered set for `set` (from collect): removed names go, the rest are
-- replaced in place. Nothing can fail half-way: collect validated everything.
function M.apply(set)
  for event, names in pairs(registered) do
    for name in pairs(names) do
      if not (set[event] and set[event][name]) then events.off(event, name) end
    end
  end
  registered = {}
  for event, fns in pairs(set) do
    registered[event] = {}
    local sorted = {}
    for name in pairs(fns) do sorted[#sorted + 1] = name end
    table.sort(sorted)
    for _, name in ipairs(sorted) do
      events.on(event, name, fns[name].fn, fns[name].opts)
      registered[event][name] = true
    end
  end
end

-- Reads and validates the topology's hooks without registering them.
-- Returns set, origin | nil, err.
function M.prepare(topo)
  if topo.hooks == nil then return {} end
  local src, origin = topo.hooks, topo.file or "(topology)"
  if type(src) == "string" then
    origin = topology.resolve_path(topo.file, src)
    local res, err = M.read(origin)
    if res == nil then return nil, err end
    src = res
  end
  local set, err = M.collect(src, origin)
  if not set then return nil, err end
  return set, origin
end

-- Loads first, registers only if everything loaded: a broken file keeps the old hooks.
-- Returns true, origin | nil, err.
function M.load(topo)
  local set, origin = M.prepare(topo)
  if not set then return nil, origin end
  M.apply(set)
  return true, origin
end

--- registered() -> { event = {names...} } (what the topology's hooks registered)
function M.registered()
  local out = {}
  for event, names in pairs(registered) do
    out[event] = {}
    for n in pairs(names) do out[event][#out[event] + 1] = n end
    table.sort(out[event])
  end
  return out
end

return M
