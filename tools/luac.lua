-- `make`: SRC.lua -> its bytecode twin DST (build/lua-bc/...), which the binary loads
-- instead of parsing SRC when the twin was written after SRC last changed (runtime/lua/lua_host.c says why).
-- Compiled by this very binary, so the bytecode is its LuaJIT's; not stripped, and
-- from the real path of SRC, so the chunk name (tracebacks, error messages) is the one
-- the ordinary loader gives.
--   build/clusterlua tools/luac.lua SRC DST
local uv = require "uv"
local src, dst = arg[1], arg[2]
if not src or not dst then
  io.stderr:write("usage: clusterlua tools/luac.lua SRC.lua DST\n")
  os.exit(2)
end
local real = assert(uv.fs_realpath(src))
local fn = assert(loadfile(real))
local tmp = dst .. ".tmp." .. uv.os_getpid() -- two makes at once do not share one
local f = assert(io.open(tmp, "wb"))
assert(f:write(string.dump(fn)))
assert(f:close())
assert(os.rename(tmp, dst))
