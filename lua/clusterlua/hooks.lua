-- Hooks from a topology: `hooks = "hooks.lua"` (relative to the topology file) or an
-- inline table, returning { EVENT = fn } or { EVENT = { name = fn, ... } }.
-- Registration is by name, so loading the same file again replaces, never duplicates.
local events = require "clusterlua.events"
local topology = require "clusterlua.topology"

local M = {}

local registered = {} -- names this module registered, per event, so a reload can drop removed ones

local function collect(src, origin)
  if type(src) ~= "table" then return nil, origin .. ": hooks must be a table, got " .. type(src) end
  local out = {}
  for event, v in pairs(src) do
    if not events.known[event] then return nil, ("%s: unknown hook event %q"):format(origin, tostring(event)) end
    out[event] = {}
    if type(v) == "function" then
      out[event]["hooks:" .. event] = v
    elseif type(v) == "table" then
      for name, fn in pairs(v) do
        if type(name) ~= "string" or type(fn) ~= "function" then
          return nil, ("%s: hooks.%s must map names to functions"):format(origin, event)
        end
        out[event][name] = fn
      end
    else
      return nil, ("%s: hooks.%s must be a function or a table of functions"):format(origin, event)
    end
  end
  return out
end

-- Loads first, registers only if everything loaded: a broken file keeps the old hooks.
function M.load(topo)
  if topo.hooks == nil then return true end
  local src, origin = topo.hooks, topo.file
  if type(src) == "string" then
    origin = topology.resolve_path(topo.file, src)
    local chunk, err = loadfile(origin)
    if not chunk then return nil, err end
    local ok, res = pcall(chunk)
    if not ok then return nil, tostring(res) end
    src = res
  end
  local set, err = collect(src, origin)
  if not set then return nil, err end
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
      events.on(event, name, fns[name])
      registered[event][name] = true
    end
  end
  return true, origin
end

return M
