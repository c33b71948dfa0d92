-- Node names: NAME@HOST[:PORT]. Everywhere a node is named, the short name before `@`
-- works too when it is unambiguous. The parsing and the short-name rule are the C ones
-- (runtime/core/name.c, through clusterlua.c.name), so Lua accepts and refuses exactly
-- the names the transport does, with the same limits.
local cname = require "clusterlua.c.name"

local M = {}

M.default_port = 4370

-- Returns a table {short=, host=, port=, full=} or nil, "EINVAL: why", "EINVAL".
function M.parse(s)
  if type(s) ~= "string" then
    return nil, "EINVAL: node name must be a string, got " .. type(s), "EINVAL"
  end
  return cname.parse(s)
end

-- Canonical full name (port filled in), or nil, err.
function M.full(s)
  local n, err, code = M.parse(s)
  if not n then return nil, err, code end
  return n.full
end

-- true when `given` (a short or full name) names the node whose full name is `full`
function M.matches(given, full)
  return cname.matches(given, full)
end

-- Resolve a short or full name against a list of known full names.
-- Returns the full name, or nil, err when unknown or ambiguous.
function M.resolve(s, known)
  if type(s) ~= "string" then return nil, "EINVAL: node name must be a string", "EINVAL" end
  if s:find "@" then
    local f, err, code = M.full(s)
    if not f then return nil, err, code end
    return f
  end
  local found
  for _, k in ipairs(known) do
    if cname.matches(s, k) then
      if found and found ~= k then
        return nil, ("EINVAL: node name %q is ambiguous (%s, %s)"):format(s, found, k), "EINVAL"
      end
      found = k
    end
  end
  if not found then return nil, ("ENOENT: no known node named %q"):format(s), "ENOENT" end
  return found
end

return M
