-- `clusterlua cookie`: prints a new random cookie, 32 bytes from libsodium's CSPRNG in
-- base64url (43 characters, no padding), ready for --cookie-file:
--   (umask 077; clusterlua cookie > /etc/clusterlua/cookie)
-- Exit status: 0 printed, 2 usage.
local crypto = require "clusterlua.c.crypto"

local USAGE = [[
usage: clusterlua cookie
Prints a new random cookie: 32 bytes from libsodium, base64url-encoded (43 characters).
Store it in a file of mode 0600 and give every node --cookie-file PATH.
]]

return function()
  local a = arg[1]
  if a == "--help" or a == "-h" then
    io.stdout:write(USAGE)
    return 0
  end
  if a ~= nil then
    io.stderr:write("clusterlua cookie: unknown argument '", a, "'\n", USAGE)
    return 2
  end
  io.stdout:write(crypto.base64url(crypto.random(32)), "\n")
  return 0
end
