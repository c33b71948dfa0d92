#include "lua/lua_host.h"
#include "core/lua_stats.h"

#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <luv/luv.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "lua/lua_modules.h"

static int g_exit_code = -1;
static uv_loop_t *g_loop;
static char g_libdir[4096];
/* os.exit raises this unique value so the stack unwinds through Lua and libuv
 * instead of exit() pulling the process out from under both loops. */
static char exit_sentinel;

uint64_t cl_lua_error_count(void) { return atomic_load(&cl_lua_stats_g.errors); }
int cl_lua_exit_requested(void) { return g_exit_code; }
const char *cl_lua_libdir(void) { return g_libdir; }

void cl_lua_report(const char *what, const char *msg) {
  atomic_fetch_add(&cl_lua_stats_g.errors, 1);
  cl_log(CL_LOG_ERROR, "lua", NULL, "%s: %s", what ? what : "callback", msg ? msg : "?");
}

static int traceback(lua_State *L) {
  if (lua_touserdata(L, 1) == &exit_sentinel) return 1;
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
      msg = lua_tostring(L, -1);
    } else {
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
  }
  lua_getglobal(L, "debug");
  lua_getfield(L, -1, "traceback");
  lua_pushstring(L, msg);
  lua_pushinteger(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

/* The handler is made once and kept in the registry: pushing a new C closure for every
 * callback (every message) would make garbage at the message rate. */
static char traceback_key;

int cl_lua_pcall(lua_State *L, int nargs, int nresults, const char *what) {
  int base = lua_gettop(L) - nargs;
  lua_pushlightuserdata(L, &traceback_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    lua_pushcfunction(L, traceback);
    lua_pushlightuserdata(L, &traceback_key);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  lua_insert(L, base);
  int r = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (r != 0) {
    if (lua_touserdata(L, -1) == &exit_sentinel) {
      if (g_loop) uv_stop(g_loop);
    } else {
      cl_lua_report(what, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
  } else if (g_exit_code >= 0 && g_loop) {
    /* os.exit was caught by a user pcall: honour it anyway */
    uv_stop(g_loop);
  }
  return r;
}

/* luv's callback hook: every uv callback into Lua goes through here. */
static int luv_pcall(lua_State *L, int nargs, int nresults, int flags) {
  (void)flags;
  int top = lua_gettop(L) - nargs - 1;
  int r = cl_lua_pcall(L, nargs, nresults, "uv callback");
  if (r != 0) return -r;
  if (nresults == LUA_MULTRET) nresults = lua_gettop(L) - top;
  return nresults;
}

static int os_exit(lua_State *L) {
  int code;
  if (lua_isboolean(L, 1))
    code = lua_toboolean(L, 1) ? 0 : 1;
  else
    code = (int)luaL_optinteger(L, 1, 0);
  g_exit_code = code & 0xff;
  fflush(stdout);
  lua_pushlightuserdata(L, &exit_sentinel);
  return lua_error(L);
}

void cl_lua_preload(lua_State *L, const char *name, lua_CFunction open) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, open);
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* A development checkout (build/clusterlua next to lua/) wins over an install, so
 * editing a module needs no rebuild; an install keeps modules in share/clusterlua. */
static void find_libdir(const char *exe_path) {
  char dir[2048], probe[2200];
  snprintf(dir, sizeof dir, "%s", exe_path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  else
    snprintf(dir, sizeof dir, ".");
  const char *cands[] = {"%s/../lua", "%s/../share/clusterlua/lua", "%s/../share/lua/5.1"};
  for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
    char base[2100];
    snprintf(base, sizeof base, cands[i], dir);
    snprintf(probe, sizeof probe, "%s/clusterlua/init.lua", base);
    if (file_exists(probe)) {
      if (!realpath(base, g_libdir)) snprintf(g_libdir, sizeof g_libdir, "%s", base);
      return;
    }
  }
  g_libdir[0] = 0;
}

lua_State *cl_lua_new(uv_loop_t *loop, const char *exe_path) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  g_loop = loop;
  luaL_openlibs(L);
  find_libdir(exe_path);
  if (g_libdir[0]) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", g_libdir, g_libdir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
  }
  lua_getglobal(L, "os");
  lua_pushcfunction(L, os_exit);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  cl_lua_preload(L, "uv", luaopen_luv);
  cl_lua_preload(L, "luv", luaopen_luv);
  cl_lua_preload(L, "clusterlua.c.core", luaopen_clusterlua_c_core);
  cl_lua_preload(L, "clusterlua.c.dns", luaopen_clusterlua_c_dns);
  cl_lua_preload(L, "clusterlua.c.node", luaopen_clusterlua_c_node);
  cl_lua_preload(L, "clusterlua.c.crypto", luaopen_clusterlua_c_crypto);
  cl_lua_preload(L, "clusterlua.c.dataplane", luaopen_clusterlua_c_dataplane);
  luv_set_loop(L, loop);
  luv_set_callback(L, luv_pcall);
  return L;
}

void cl_lua_close(lua_State *L) {
  lua_close(L);
  g_loop = NULL;
}
