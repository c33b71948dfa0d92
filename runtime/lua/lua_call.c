/* See lua_call.h. */
#include "lua/lua_call.h"

#include <lauxlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/lua_stats.h"

/* registry keys: their addresses are unique */
static const char ctx_key, traceback_key;
/* os.exit raises this unique value so the stack unwinds through Lua and libuv
 * instead of exit() pulling the process out from under both loops. */
static const char exit_sentinel;

cl_lua_ctx *cl_lua_ctx_new(lua_State *L, uv_loop_t *loop) {
  cl_lua_ctx *c = lua_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->L = L;
  c->loop = loop;
  c->exit_code = -1;
  c->node_handler = c->dp_on_msg = c->dp_on_closed = LUA_NOREF;
  c->max_frame = 16u << 20;
  c->send_queue_max = 64 << 20;
  lua_pushlightuserdata(L, (void *)&ctx_key);
  lua_insert(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX); /* the registry keeps it alive */
  return c;
}

cl_lua_ctx *cl_lua_ctx_get(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&ctx_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  cl_lua_ctx *c = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return c;
}

uint64_t cl_lua_error_count(void) { return atomic_load(&cl_lua_stats_g.errors); }

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

int cl_lua_pcall(lua_State *L, int nargs, int nresults, const char *what) {
  int base = lua_gettop(L) - nargs;
  /* the handler is made once and kept in the registry: pushing a new C closure for
   * every callback (every message) would make garbage at the message rate */
  lua_pushlightuserdata(L, (void *)&traceback_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    lua_pushcfunction(L, traceback);
    lua_pushlightuserdata(L, (void *)&traceback_key);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  lua_insert(L, base);
  int r = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  cl_lua_ctx *c = cl_lua_ctx_get(L);
  if (r != 0) {
    if (lua_touserdata(L, -1) == &exit_sentinel) {
      if (c && c->loop) uv_stop(c->loop);
    } else {
      cl_lua_report(what, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
  } else if (c && c->exit_code >= 0 && c->loop) {
    /* os.exit was caught by a user pcall: honour it anyway */
    uv_stop(c->loop);
  }
  return r;
}

int cl_lua_luv_pcall(lua_State *L, int nargs, int nresults, int flags) {
  (void)flags;
  int top = lua_gettop(L) - nargs - 1;
  int r = cl_lua_pcall(L, nargs, nresults, "uv callback");
  if (r != 0) return -r;
  if (nresults == LUA_MULTRET) nresults = lua_gettop(L) - top;
  return nresults;
}

int cl_lua_os_exit(lua_State *L) {
  int code;
  if (lua_isboolean(L, 1))
    code = lua_toboolean(L, 1) ? 0 : 1;
  else
    code = (int)luaL_optinteger(L, 1, 0);
  cl_lua_ctx *c = cl_lua_ctx_get(L);
  if (c) c->exit_code = code & 0xff;
  fflush(stdout);
  lua_pushlightuserdata(L, (void *)&exit_sentinel);
  return lua_error(L);
}
