-- Node names: NAME@HOST[:PORT]. Everywhere a node is named, the short name before `@`
-- works too when it is unambiguous.
local M = {}

M.default_port = 4370

-- Returns a table {short=, host=, port=, full=} or nil, "EINVAL: why", "EINVAL".
function M.parse(s)
  if type(s) ~= "string" then
    return nil, "EINVAL: node name must be a string, got " .. type(s), "EINVAL"
  end
  local short, rest = s:match "^([%w_%-%.]+)@(.+)$"
  if not short then
    return nil, ("EINVAL: node name %q must look like NAME@HOST[:PORT]"):format(s), "EINVAL"
  end
  local host, port
  if rest:sub(1, 1) == "[" then
    host, port = rest:match "^%[([^%]]+)%]:?(%d*)$"
  else
    host, port = rest:match "^([^:]+):?(%d*)$"
  end
  if not host or host == "" then
    return nil, ("EINVAL: node name %q has no valid host"):format(s), "EINVAL"
  end
  port = tonumber(port ~= "" and port or M.default_port)
  if port < 1 or port > 65535 then
    return nil, ("EINVAL: node name %q has port %d out of range"):format(s, port), "EINVAL"
  end
  local hostpart = host:find ":" and ("[" .. host .. "]") or host
  return { short = short, host = host, port = port, full = ("%s@%s:%d"):format(short, hostpart, port) }
end

-- Canonical full name (port filled in), or nil, err.
function M.full(s)
  local n, err, code = M.parse(s)
  if not n then return nil, err, code end
  return n.full
end

function M.short(s)
  return (s:match "^([^@]+)@") or s
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
    if M.short(k) == s then
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
