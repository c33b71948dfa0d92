/* The common part of the Lua fuzz targets: an embedded LuaJIT with the JIT off, the
 * project's modules on package.path, a stand-in clusterlua.c.crypto over libsodium, and a
 * line hook that turns Lua line-pair coverage into libFuzzer extra counters. A target
 * defines FUZZ_NAME and DRIVER (a chunk returning function(data)) and includes this. */
#ifndef CL_LUA_FUZZ_HARNESS_H
#define CL_LUA_FUZZ_HARNESS_H
#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/lua_modules.h"

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
  lua_setfield(L, -2, "clusterlua.c.crypto");
  /* the runtime's own node-name parser, as the node has it (lua_name.c, core/name.c) */
  lua_pushcfunction(L, luaopen_clusterlua_c_name);
  lua_setfield(L, -2, "clusterlua.c.name");
  lua_pop(L, 2);
  if (luaL_loadstring(L, DRIVER) || lua_pcall(L, 0, 1, 0)) {
    fprintf(stderr, FUZZ_NAME ": %s\n", lua_tostring(L, -1));
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
    fprintf(stderr, FUZZ_NAME ": %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pop(L, 1);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}

#endif
