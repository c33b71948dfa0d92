/* clusterlua.c.rehearse: the rehearsal's world (runtime/rehearse/) for the Lua that
 * directs it (lua/clusterlua/cli/sim.lua): nodes, faults, the run on virtual time, the
 * records, the final liveness check. Main thread only; times are in milliseconds. */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "lua/lua_modules.h"
#include "rehearse/node_state.h"
#include "rehearse/world.h"

#define MT "clusterlua.rehearse.world"

typedef struct lw {
  rh_world *w;
  rh_lua_host *h;
  lua_State *D;
  int ask_ref;
} lw;

static lw *check(lua_State *L) {
  lw *x = luaL_checkudata(L, 1, MT);
  if (!x->w) luaL_error(L, "the rehearsal's world is closed");
  return x;
}

static int node_arg(lua_State *L, lw *x, int idx) {
  lua_Integer i = luaL_checkinteger(L, idx);
  if (i < 1 || i > rh_world_count(x->w)) luaL_argerror(L, idx, "no such node");
  return (int)i - 1;
}

/* A Lua number as a whole number of the world's: NaN and negatives are 0, and anything
 * past 1e18 (tens of thousands of years in microseconds) is 1e18, so a scenario's
 * math.huge or 0/0 is neither undefined behaviour (a float out of an integer's range)
 * nor a deadline that wraps around when added to now. */
static uint64_t u64_of(lua_Number v) { return v > 0 ? (v < 1e18 ? (uint64_t)v : (uint64_t)1e18) : 0; }
static int64_t i64_of(lua_Number v) { return v > -1e18 ? (v < 1e18 ? (int64_t)v : (int64_t)1e18) : v <= -1e18 ? (int64_t)-1e18 : 0; }

static double numfield(lua_State *L, int idx, const char *k, double dflt) {
  lua_getfield(L, idx, k);
  double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}

static const char *strfield(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1); /* the table keeps the string alive */
  if (!s) luaL_error(L, "bad argument #1 (opts.%s): expected a string", k);
  return s;
}

static void lw_close(lw *x) {
  rh_world_free(x->w);
  x->w = NULL;
  rh_lua_host_free(x->h);
  x->h = NULL;
  if (x->ask_ref != LUA_NOREF) luaL_unref(x->D, LUA_REGISTRYINDEX, x->ask_ref);
  x->ask_ref = LUA_NOREF;
}

/* new{seed=, delay_lo_ms=, delay_hi_ms=, drop=, dup=, lua_delay_ms=, crash_restart_ms=,
 *     path=, cpath=, boot=json, ask=function} */
static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  rh_params p;
  memset(&p, 0, sizeof p);
  p.seed = u64_of(numfield(L, 1, "seed", 1));
  p.delay_lo_us = u64_of(numfield(L, 1, "delay_lo_ms", 0.2) * 1000);
  p.delay_hi_us = u64_of(numfield(L, 1, "delay_hi_ms", 2) * 1000);
  p.p_drop = numfield(L, 1, "drop", 0);
  p.p_dup = numfield(L, 1, "dup", 0);
  p.lua_delay_us = u64_of(numfield(L, 1, "lua_delay_ms", 1) * 1000);
  p.crash_restart_ms = u64_of(numfield(L, 1, "crash_restart_ms", 1000));
  const char *path = strfield(L, 1, "path"), *cpath = strfield(L, 1, "cpath"), *boot = strfield(L, 1, "boot");
  lua_getfield(L, 1, "ask");
  luaL_argcheck(L, lua_isfunction(L, -1), 1, "opts.ask: expected a function");
  lw *x = lua_newuserdata(L, sizeof *x);
  memset(x, 0, sizeof *x);
  x->ask_ref = LUA_NOREF;
  luaL_getmetatable(L, MT);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -2);
  x->D = L;
  x->ask_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  x->h = rh_lua_host_new(L, x->ask_ref, path, cpath, boot);
  if (!x->h) return luaL_error(L, "out of memory");
  rh_lua_ops ops = rh_lua_host_ops(x->h);
  x->w = rh_world_new(&p, &ops);
  if (!x->w) return luaL_error(L, "out of memory");
  return 1;
}

static int l_add(lua_State *L) {
  lw *x = check(L);
  int i = rh_world_add(x->w, luaL_checkstring(L, 2), luaL_checkstring(L, 3));
  if (i == -2) return luaL_error(L, "a node name longer than %d characters", CL_EL_NAME_MAX);
  if (i < 0) return luaL_error(L, "at most %d nodes", RH_MAX_NODES);
  lua_pushinteger(L, i + 1);
  return 1;
}

static int l_start(lua_State *L) {
  lw *x = check(L);
  rh_world_start(x->w, node_arg(L, x, 2));
  return 0;
}

static int l_kill(lua_State *L) {
  lw *x = check(L);
  rh_world_kill(x->w, node_arg(L, x, 2), luaL_optstring(L, 3, "killed"));
  return 0;
}

static int l_stop(lua_State *L) {
  lw *x = check(L);
  rh_world_stop(x->w, node_arg(L, x, 2));
  return 0;
}

static uint64_t ms_arg(lua_State *L, int idx) {
  return u64_of(luaL_checknumber(L, idx) * 1000);
}

static int l_pause(lua_State *L) {
  lw *x = check(L);
  rh_world_pause(x->w, node_arg(L, x, 2), ms_arg(L, 3));
  return 0;
}

static int l_stall(lua_State *L) {
  lw *x = check(L);
  rh_world_stall_lua(x->w, node_arg(L, x, 2), ms_arg(L, 3));
  return 0;
}

static int l_cut(lua_State *L) {
  lw *x = check(L);
  int how = (int)luaL_checkinteger(L, 4);
  luaL_argcheck(L, how == 1 || how == 2, 4, "1 (disconnect) or 2 (blackhole)");
  rh_world_cut(x->w, node_arg(L, x, 2), node_arg(L, x, 3), how, lua_toboolean(L, 5));
  return 0;
}

static int l_heal(lua_State *L) {
  rh_world_heal(check(L)->w);
  return 0;
}

static int l_net(lua_State *L) {
  lw *x = check(L);
  rh_world_net(x->w, ms_arg(L, 2), ms_arg(L, 3), luaL_checknumber(L, 4), luaL_checknumber(L, 5));
  return 0;
}

static int l_disk(lua_State *L) {
  lw *x = check(L);
  rh_world_disk(x->w, node_arg(L, x, 2), lua_toboolean(L, 3), u64_of(luaL_optnumber(L, 4, 0)));
  return 0;
}

static int l_file_changed(lua_State *L) {
  rh_world_file_changed(check(L)->w, luaL_checkstring(L, 2));
  return 0;
}

static int l_run(lua_State *L) {
  lw *x = check(L);
  if (rh_world_run(x->w, ms_arg(L, 2)) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, rh_world_why(x->w));
  return 2;
}

static int l_fail(lua_State *L) {
  rh_world_fail(check(L)->w, luaL_checkstring(L, 2));
  return 0;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)rh_world_now_us(check(L)->w) / 1000.0);
  return 1;
}

static int l_rand(lua_State *L) {
  lw *x = check(L);
  lua_Number n = luaL_checknumber(L, 2);
  lua_pushnumber(L, (lua_Number)rh_world_rand(x->w, n < 1 ? 1 : u64_of(n)));
  return 1;
}

static int l_steps(lua_State *L) {
  lua_pushnumber(L, (lua_Number)rh_world_steps(check(L)->w));
  return 1;
}

static int l_running(lua_State *L) {
  lw *x = check(L);
  int i = node_arg(L, x, 2);
  lua_pushboolean(L, rh_world_is_running(x->w, i));
  lua_pushboolean(L, rh_world_has_left(x->w, i));
  return 2;
}

/* records(from) -> list of {t=ms, node=index (0: the world), kind=, s1=, s2=, n1=, n2=} from
 * the from-th (1-based) on */
static int l_records(lua_State *L) {
  lw *x = check(L);
  lua_Integer from = luaL_optinteger(L, 2, 1);
  const rh_record *r;
  size_t n = rh_world_records(x->w, &r);
  lua_createtable(L, n >= (size_t)from ? (int)(n - (size_t)from + 1) : 0, 0);
  int k = 1;
  for (size_t i = from > 0 ? (size_t)from - 1 : 0; i < n; i++) {
    lua_createtable(L, 0, 7);
    lua_pushnumber(L, (lua_Number)r[i].t_us / 1000.0);
    lua_setfield(L, -2, "t");
    lua_pushinteger(L, r[i].node + 1);
    lua_setfield(L, -2, "node");
    lua_pushstring(L, r[i].kind);
    lua_setfield(L, -2, "kind");
    if (r[i].s1) {
      lua_pushstring(L, r[i].s1);
      lua_setfield(L, -2, "s1");
    }
    if (r[i].s2) {
      lua_pushstring(L, r[i].s2);
      lua_setfield(L, -2, "s2");
    }
    lua_pushnumber(L, (lua_Number)r[i].n1);
    lua_setfield(L, -2, "n1");
    lua_pushnumber(L, (lua_Number)r[i].n2);
    lua_setfield(L, -2, "n2");
    lua_rawseti(L, -2, k++);
  }
  return 1;
}

static int l_record(lua_State *L) {
  lw *x = check(L);
  lua_Integer node = luaL_checkinteger(L, 2);
  rh_world_record(x->w, (int)node - 1, luaL_checkstring(L, 3), luaL_optstring(L, 4, NULL), luaL_optstring(L, 5, NULL),
                  i64_of(luaL_optnumber(L, 6, 0)), i64_of(luaL_optnumber(L, 7, 0)));
  return 0;
}

static int l_settled(lua_State *L) {
  lw *x = check(L);
  char why[512];
  uint64_t term = 0, version = 0;
  int master = -1;
  uint64_t ignore = 0;
  if (lua_istable(L, 2)) {
    size_t n = lua_objlen(L, 2);
    for (size_t k = 1; k <= n; k++) {
      lua_rawgeti(L, 2, (int)k);
      lua_Integer i = lua_tointeger(L, -1);
      lua_pop(L, 1);
      if (i >= 1 && i <= RH_MAX_NODES) ignore |= 1ull << (i - 1);
    }
  }
  if (!rh_world_settled(x->w, ignore, why, sizeof why, &term, &version, &master)) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, why);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_pushnumber(L, (lua_Number)term);
  lua_pushnumber(L, (lua_Number)version);
  lua_pushinteger(L, master + 1);
  return 4;
}

static int l_close(lua_State *L) {
  lw *x = luaL_checkudata(L, 1, MT);
  if (x->w || x->h) lw_close(x);
  return 0;
}

int luaopen_clusterlua_c_rehearse(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"add", l_add},       {"start", l_start}, {"kill", l_kill},       {"stop", l_stop},       {"pause", l_pause},   {"stall", l_stall},
      {"cut", l_cut},       {"heal", l_heal},   {"net", l_net},         {"disk", l_disk}, {"file_changed", l_file_changed},     {"run", l_run},
      {"fail", l_fail},     {"now", l_now},     {"rand", l_rand},       {"steps", l_steps},   {"running", l_running},
      {"records", l_records}, {"record", l_record}, {"settled", l_settled}, {"close", l_close}, {NULL, NULL},
  };
  luaL_newmetatable(L, MT);
  lua_newtable(L);
  luaL_register(L, NULL, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "new");
  lua_pushinteger(L, RH_MAX_NODES);
  lua_setfield(L, -2, "MAX_NODES");
  lua_pushinteger(L, CL_EL_NAME_MAX);
  lua_setfield(L, -2, "NAME_MAX");
  return 1;
}
