/* clusterlua.c.dataplane: the Lua side of data connections (dataplane.c). node.lua sends
 * through the FFI (cl_dp_send) and reads each received message's bytes through
 * the address rx() gives (cl_dp_rx_current), so a message creates no Lua string on either side; this module
 * adopts connections, delivers messages and closures to Lua, and closes. */
#include <lauxlib.h>
#include <lua.h>
#include <luv/luv.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "transport/dataplane.h"
#include "core/lua_stats.h"
#include "lua/lua_dataplane.h"
#include "lua/lua_call.h"
#include "lua/lua_modules.h"


/* ud: the state's cl_lua_ctx (the data plane calls back on the Lua loop) */
static void on_message(void *ud, cl_dp_conn *c, const uint8_t *p, size_t n) {
  (void)p;
  (void)n;
  cl_lua_ctx *cx = ud;
  lua_State *L = cx->L;
  if (cx->dp_on_msg == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, cx->dp_on_msg);
  lua_rawgeti(L, LUA_REGISTRYINDEX, (int)cl_dp_tag(c));
  cl_lua_pcall(L, 1, 0, "message");
}

static void on_closed(void *ud, cl_dp_conn *c, const char *reason) {
  cl_lua_ctx *cx = ud;
  lua_State *L = cx->L;
  int ref = (int)cl_dp_tag(c);
  if (cx->dp_on_closed != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, cx->dp_on_closed);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushlightuserdata(L, c);
    lua_pushstring(L, reason);
    cl_lua_pcall(L, 3, 0, "data connection closed");
  }
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
  cl_dp_set_tag(c, LUA_NOREF);
}

/* the state's data plane, made on first use; it publishes its counters where the
 * control loop's /metrics reads them */
static cl_dp *get(lua_State *L) {
  cl_lua_ctx *cx = cl_lua_ctx_get(L);
  if (!cx->dp) {
    cl_dp_callbacks cb = {.message = on_message, .closed = on_closed, .ud = cx};
    cx->dp = cl_dp_new(luv_loop(L), &cb, &cl_lua_stats_g.dp);
  }
  return cx->dp;
}

/* get, or raise (from a function Lua called) */
static cl_dp *init(lua_State *L) {
  cl_dp *dp = get(L);
  if (!dp) luaL_error(L, "out of memory");
  return dp;
}

void cl_lua_dp_set_keyring(lua_State *L, const uint8_t *text, size_t len) {
  /* kept even before the first data connection: one handed over later is checked
   * against it */
  cl_dp *dp = get(L);
  if (dp) cl_dp_set_keyring(dp, text, len);
}

void cl_lua_dp_shutdown(lua_State *L) {
  cl_lua_ctx *cx = cl_lua_ctx_get(L);
  cl_dp_shutdown(cx->dp);
  cx->dp = NULL;
}

int cl_lua_dp_adopt(lua_State *L, const cl_data_conn *dc, uint32_t max_frame, size_t queue_max) {
  cl_dp *dp = get(L);
  char err[256] = "out of memory";
  cl_dp_conn *c = dp ? cl_dp_adopt(dp, dc, max_frame, queue_max, err, sizeof err) : NULL;
  if (!c) {
    if (!dp) close(dc->fd);
    cl_lua_report("data connection", err);
    lua_pushnil(L);
    return 0;
  }
  lua_pushstring(L, dc->name);
  cl_dp_set_tag(c, luaL_ref(L, LUA_REGISTRYINDEX));
  lua_pushlightuserdata(L, c);
  return 1;
}

/* set_handlers(on_message(from), on_closed(from, conn, reason)) */
static int l_set_handlers(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  init(L);
  cl_lua_ctx *cx = cl_lua_ctx_get(L);
  luaL_unref(L, LUA_REGISTRYINDEX, cx->dp_on_msg);
  luaL_unref(L, LUA_REGISTRYINDEX, cx->dp_on_closed);
  lua_pushvalue(L, 1);
  cx->dp_on_msg = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 2);
  cx->dp_on_closed = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int l_close(lua_State *L) {
  luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
  cl_dp_conn *c = lua_touserdata(L, 1);
  if (!cl_dp_closing(c)) {
    luaL_unref(L, LUA_REGISTRYINDEX, (int)cl_dp_tag(c));
    cl_dp_set_tag(c, LUA_NOREF);
    cl_dp_close(c);
  }
  return 0;
}

static int l_set_spin_us(lua_State *L) {
  lua_Integer us = luaL_checkinteger(L, 1);
  if (us < 0 || us > 1000000) return luaL_argerror(L, 1, "expected 0 .. 1000000 microseconds");
  cl_dp_set_spin_us(init(L), (uint32_t)us);
  return 0;
}

/* rx(): the address of the message being delivered (cl_dp_rx *), for node.lua to read
 * through the FFI without a Lua string */
static int l_rx(lua_State *L) {
  lua_pushlightuserdata(L, (void *)cl_dp_rx_current(init(L)));
  return 1;
}

static int l_stats(lua_State *L) {
  cl_dp_stats st;
  cl_dp_stats_get(init(L), &st);
  lua_createtable(L, 0, 8);
#define F(k)                         \
  lua_pushnumber(L, (lua_Number)st.k); \
  lua_setfield(L, -2, #k)
  F(msgs_in);
  F(msgs_out);
  F(bytes_in);
  F(bytes_out);
  F(writes);
  F(conns_adopted);
  F(conns_failed);
  F(spin_reads);
#undef F
  return 1;
}

int luaopen_clusterlua_c_dataplane(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"set_handlers", l_set_handlers}, {"close", l_close}, {"set_spin_us", l_set_spin_us},
      {"stats", l_stats},               {"rx", l_rx},       {NULL, NULL},
  };
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  lua_pushinteger(L, UV_ENOBUFS);
  lua_setfield(L, -2, "ENOBUFS");
  lua_pushinteger(L, UV_ENOTCONN);
  lua_setfield(L, -2, "ENOTCONN");
  lua_pushinteger(L, UV_E2BIG);
  lua_setfield(L, -2, "E2BIG");
  return 1;
}
