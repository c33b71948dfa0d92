/* libFuzzer target: the topology validator (lua/clusterlua/topology.lua, with the
 * built-in strategies' validate functions), run inside an embedded LuaJIT with the JIT
 * off and a line hook feeding Lua line-pair coverage to libFuzzer as extra counters.
 *
 * The input bytes are read as a recipe for a nested Lua table (keys and values drawn
 * from the topology vocabulary, odd numbers, raw strings) that goes to
 * topology.validate. Property: validation either returns a topology or raises a
 * {topology_error = "FILE: PATH: what"} error; never a Lua runtime error, and no
 * strategy validator fails with one either ("attempt to ...", "bad argument"). */
#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CL_ROOT
#define CL_ROOT "."
#endif

#define NCOUNTERS (1 << 14)
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t counters[NCOUNTERS];
static uint32_t prev_loc;

static void line_hook(lua_State *L, lua_Debug *ar) {
  if (!lua_getinfo(L, "S", ar)) return;
  uint32_t loc = (uint32_t)(((uintptr_t)ar->source >> 4) * 2654435761u) ^ (uint32_t)ar->currentline * 40503u;
  counters[(loc ^ prev_loc) % NCOUNTERS]++;
  prev_loc = loc >> 1;
}

static int l_hmac(lua_State *L) {
  size_t kl, dl;
  const char *k = luaL_checklstring(L, 1, &kl), *d = luaL_checklstring(L, 2, &dl);
  uint8_t out[32];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, (const uint8_t *)k, kl);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)d, dl);
  crypto_auth_hmacsha256_final(&st, out);
  lua_pushlstring(L, (const char *)out, 32);
  return 1;
}

static int l_verify(lua_State *L) {
  size_t ml;
  const char *mac = luaL_checklstring(L, 3, &ml);
  lua_settop(L, 2);
  l_hmac(L);
  const char *want = lua_tostring(L, -1);
  lua_pushboolean(L, ml == 32 && sodium_memcmp(want, mac, 32) == 0);
  return 1;
}

static int l_random(lua_State *L) {
  int n = (int)luaL_checkinteger(L, 1);
  char buf[64];
  if (n < 1 || n > 64) return luaL_error(L, "bad n");
  randombytes_buf(buf, (size_t)n);
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

static int open_crypto(lua_State *L) {
  static const luaL_Reg fns[] = {{"hmac_sha256", l_hmac}, {"verify", l_verify}, {"random", l_random}, {NULL, NULL}};
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  return 1;
}

static const char DRIVER[] =
    "local topology = require 'clusterlua.topology'\n"
    "loadfile = function() return nil, 'no files while fuzzing' end\n"
    "local KEYS = { 'cluster', 'topologies', 'election', 'nodes', 'hooks', 'transport', 'strategy', 'config',\n"
    "  'hosts', 'initial_master_nodes', 'heartbeat_ms', 'election_delay_ms', 'check_timeout_ms',\n"
    "  'lua_stepdown_ms', 'max_exclusions', 'encrypt', 'max_frame', 'timeout_ms', 'mesh', 'send_queue_max',\n"
    "  'roles', 'port', 'group', 'ttl', 'interface', 'broadcast', 'interval', 'multicast_loop', 'expire',\n"
    "  'max_skew', 'file', 'path', 'name', 'query', 'poll_ms', 'interval_ms', 'resolver', 'servers', 'edge',\n"
    "  'node1@127.0.0.1:4370', 1, 2, 3, 0, -1, 1.5 }\n"
    "local STRS = { 'static', 'gossip', 'dns', 'dns_srv', 'hosts_file', 'node1@127.0.0.1:4370', 'node2',\n"
    "  'a@[::1]:99999', 'b@[::1]', 'c@h:0', 'd@:1', '@x', 'n@', '239.1.2.3', '255.255.255.255', '127.0.0.1',\n"
    "  '', 'x.lua', 'edge-1', 'master', '_srv._tcp.example', 'example.org', '1.2.3.4:53', 'bad cluster' }\n"
    "local NUMS = { 0, 1, -1, 0.5, 1e300, -1e300, 1/0, -1/0, 0/0, 2^53, 2^63, 65535, 65536, 1024,\n"
    "  1073741824, 1073741825, 100, 10, 2, 9, 1000, 2^31, -2^31 }\n"
    "return function(data)\n"
    "  local pos = 0\n"
    "  local function byte() pos = pos + 1 return data:byte(pos) or 0 end\n"
    "  local function pick(t) return t[byte() % #t + 1] end\n"
    "  local value\n"
    "  function value(depth)\n"
    "    local b = byte()\n"
    "    local kind = b % 9\n"
    "    if kind == 0 then return nil\n"
    "    elseif kind == 1 then return b >= 128\n"
    "    elseif kind == 2 then return pick(NUMS)\n"
    "    elseif kind == 3 then return (byte() * 256 + byte()) - 1000\n"
    "    elseif kind == 4 then return pick(STRS)\n"
    "    elseif kind == 5 then local n = byte() % 24 local s = data:sub(pos + 1, pos + n) pos = pos + n return s\n"
    "    elseif depth > 5 then return {}\n"
    "    else\n"
    "      local t, n = {}, byte() % 7\n"
    "      for i = 1, n do\n"
    "        local kb = byte()\n"
    "        local k = kb < 200 and KEYS[kb % #KEYS + 1] or i\n"
    "        t[k] = value(depth + 1)\n"
    "      end\n"
    "      return t\n"
    "    end\n"
    "  end\n"
    "  local t = value(0)\n"
    "  local ok, res = pcall(topology.validate, '/nonexistent-fuzz/topology.lua', t)\n"
    "  if ok then\n"
    "    assert(type(res) == 'table' and type(res.topologies) == 'table', 'validate returned ' .. tostring(res))\n"
    "    return 1\n"
    "  end\n"
    "  if type(res) ~= 'table' or type(res.topology_error) ~= 'string' then\n"
    "    error('validator raised a runtime error: ' .. tostring(res), 0)\n"
    "  end\n"
    "  local e = res.topology_error\n"
    "  if e:find('attempt to', 1, true) or e:find('bad argument', 1, true) then\n"
    "    error('a validator failed inside: ' .. e, 0)\n"
    "  end\n"
    "  return 0\n"
    "end\n";

static lua_State *L;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (sodium_init() < 0) abort();
  L = luaL_newstate();
  luaL_openlibs(L);
  luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
  const char *root = getenv("CL_ROOT") ? getenv("CL_ROOT") : CL_ROOT;
  char path[4096];
  snprintf(path, sizeof path, "package.path = '%s/lua/?.lua;%s/lua/?/init.lua;' .. package.path\n"
                              "package.preload.uv = function() return {} end",
           root, root);
  if (luaL_dostring(L, path)) abort();
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, open_crypto);
  lua_setfield(L, -2, "clusterlua.crypto");
  lua_pop(L, 2);
  if (luaL_loadstring(L, DRIVER) || lua_pcall(L, 0, 1, 0)) {
    fprintf(stderr, "fuzz_topology: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_driver");
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  prev_loc = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_driver");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 1, 0)) {
    fprintf(stderr, "fuzz_topology: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pop(L, 1);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
