-- Value checks that several modules make, written once so they accept the same values
-- and say the same thing about the rest. Each returns the value, or nil and what was
-- wrong; the caller decides whether that is misuse (error "bad argument ...") or a
-- returned error (a hooks file being loaded), and names the argument.
local M = {}

-- ms(v): a duration in milliseconds: a number >= 0, not NaN, not infinite
function M.ms(v)
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then
    return nil, "milliseconds expected (a number >= 0), got " .. tostring(v)
  end
  return v
end

-- The checks of a strategy's config table (dns, dns_srv, gossip, hosts_file), written
-- once so every strategy refuses the same way. Each returns true, or nil and the message.

-- config_keys(config, keys): a table whose every key is in the set keys
function M.config_keys(config, keys)
  if type(config) ~= "table" then return nil, "expected a table" end
  for k in pairs(config) do
    if not keys[k] then
      local l = {}
      for a in pairs(keys) do l[#l + 1] = a end
      table.sort(l)
      return nil, ("%s: unknown key (expected one of: %s)"):format(tostring(k), table.concat(l, ", "))
    end
  end
  return true
end

-- config_int(config, key, min, max, what): config[key] absent, or a whole number in
-- min..max (max nil: no upper bound); what names the expected value in the message
function M.config_int(config, key, min, max, what)
  local v = config[key]
  if v == nil then return true end
  if type(v) ~= "number" or v % 1 ~= 0 or v < min or (max and v > max) then
    return nil, ("%s: expected %s, got %s"):format(key, what, type(v) == "string" and ("%q"):format(v) or tostring(v))
  end
  return true
end

return M
