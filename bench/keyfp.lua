-- The cost of one key fingerprint (issue 20): crypto_pwhash (Argon2id, opslimit 2,
-- 8 MiB, fixed salt), as every node computes once per key in a worker thread.
--   build/clusterlua bench/keyfp.lua [N]       (default 20 keys)
local uv = require "uv"
local crypto = require "clusterlua.c.crypto"
local n = tonumber(arg and arg[1]) or 20
local t = {}
crypto.fingerprint(crypto.random(32)) -- warm-up: the first allocation of the 8 MiB
for i = 1, n do
  local k = crypto.random(32)
  local t0 = uv.hrtime()
  crypto.fingerprint(k)
  t[i] = (uv.hrtime() - t0) / 1e6
end
table.sort(t)
print(("key fingerprint (crypto_pwhash, Argon2id, 8 MiB, opslimit 2): median %.1f ms, min %.1f ms, max %.1f ms over %d keys")
  :format(t[math.floor((n + 1) / 2)], t[1], t[n], n))
