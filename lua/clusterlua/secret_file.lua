-- Files that hold a secret (the cookie, the admin token). Both are read here so that
-- both are refused for the same reasons, in the same words: a file that others can
-- read leaks the secret, and an empty one would silently mean "no secret" (for the
-- admin token, authentication off).
local uv = require "uv"

local M = {}

-- option: the command-line option, for messages ("--cookie-file"). Returns the content
-- without trailing whitespace, or nil and a message naming the option and the file.
-- max_bytes: refuse a larger file without reading it (a keyring file).
function M.read(option, path, max_bytes)
  local st, err = uv.fs_stat(path)
  if not st then return nil, option .. ": " .. tostring(err) end
  if st.mode % 64 ~= 0 then -- any group or world bit (0077)
    return nil, ("%s: %s is readable by group or others (mode %o); chmod 600 it"):format(option, path,
      st.mode % 512)
  end
  if max_bytes and st.size > max_bytes then
    return nil, ("%s: %s is %d bytes: at most %d"):format(option, path, st.size, max_bytes)
  end
  local f, ferr = io.open(path, "rb")
  if not f then return nil, option .. ": " .. tostring(ferr) end
  local s, rerr = f:read "*a"
  f:close()
  if not s then return nil, ("%s: %s: %s"):format(option, path, tostring(rerr)) end
  s = s:gsub("%s+$", "")
  if s == "" then return nil, ("%s: %s is empty or holds only whitespace"):format(option, path) end
  return s
end

return M
