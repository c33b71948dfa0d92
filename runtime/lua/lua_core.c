/* clusterlua.c.core: what the Lua side needs from the runtime itself
 * (clock, error reporting, the control-loop probe). */
#include <lauxlib.h>
#include <lua.h>
#include <stdatomic.h>
#include <uv.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/control.h"
#include "core/log.h"
#include "core/lua_stats.h"
#include "lua/lua_call.h"
#include "lua/lua_modules.h"
#include "core/options.h"
#include "core/version.h"

/* hooks aborted for running past their budget: counted here so the control loop can
 * report it in health and metrics without asking Lua */

static int l_count_hook_abort(lua_State *L) {
  (void)L;
  atomic_fetch_add(&cl_lua_stats_g.hook_aborts, 1);
  return 0;
}

/* trim(): the free pages of the process's heaps back to the kernel. The Lua heap is the
 * C allocator's (lua_host.c), so after a full collection this is what makes the garbage
 * of a burst leave RssAnon; node.lua calls it once things have been still. */
static int l_trim(lua_State *L) {
  (void)L;
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  return 0;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e6);
  return 1;
}

static int l_errors(lua_State *L) {
  lua_pushnumber(L, (lua_Number)cl_lua_error_count());
  return 1;
}

static int l_report(lua_State *L) {
  cl_lua_report(luaL_checkstring(L, 1), luaL_checkstring(L, 2));
  return 0;
}

static int l_log(lua_State *L) {
  const char *lvl = luaL_checkstring(L, 1);
  int level = cl_log_parse_level(lvl);
  if (level < 0) return luaL_argerror(L, 1, "unknown log level");
  const char *subsys = luaL_optstring(L, 2, "lua");
  const char *msg = luaL_checkstring(L, 3);
  const char *fields = luaL_optstring(L, 4, NULL);
  cl_log(level, subsys, fields, "%s", msg);
  return 0;
}

static int l_log_level(lua_State *L) {
  lua_pushstring(L, cl_log_level_name(cl_log_level()));
  return 1;
}

static cl_control *need_control(lua_State *L) {
  cl_control *c = cl_lua_ctx_get(L)->control;
  if (!c) luaL_error(L, "the control loop is not running");
  return c;
}

static int l_probe_start(lua_State *L) {
  lua_Integer ms = luaL_optinteger(L, 1, 10);
  if (ms < 1) return luaL_argerror(L, 1, "interval must be >= 1 ms");
  cl_msg *m = cl_msg_new(CL_CMD_PROBE_START, NULL, NULL, 0);
  m->num = ms;
  cl_control_send(need_control(L), m, CL_Q_FORCE);
  return 0;
}

static int l_probe_stop(lua_State *L) {
  cl_control_send(need_control(L), cl_msg_new(CL_CMD_PROBE_STOP, NULL, NULL, 0), CL_Q_FORCE);
  return 0;
}

static int l_probe_stats(lua_State *L) {
  cl_control *c = need_control(L);
  lua_createtable(L, 0, 2);
  lua_pushnumber(L, (lua_Number)atomic_load(&c->probe_ticks));
  lua_setfield(L, -2, "ticks");
  lua_pushnumber(L, (lua_Number)atomic_load(&c->probe_max_late_us) / 1000.0);
  lua_setfield(L, -2, "max_late_ms");
  return 1;
}

static void opt(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* the command-line options, as given (node_main.lua validates them) */
static int l_options(lua_State *L) {
  lua_newtable(L);
  const cl_options *o = cl_lua_ctx_get(L)->opts;
  if (!o) return 1;
  opt(L, "name", o->name);
  opt(L, "cookie", o->cookie);
  opt(L, "cookie_file", o->cookie_file);
  opt(L, "keyring_file", o->keyring_file);
  opt(L, "data", o->data);
  opt(L, "admin", o->admin);
  opt(L, "admin_token_file", o->admin_token_file);
  opt(L, "roles", o->roles);
  opt(L, "initial_master_nodes", o->initial_master_nodes);
  opt(L, "log_format", o->log_format);
  opt(L, "log_level", o->log_level);
  opt(L, "exe", o->exe);
  return 1;
}

int luaopen_clusterlua_c_core(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"now", l_now},
      {"errors", l_errors},
      {"report", l_report},
      {"log", l_log},
      {"log_level", l_log_level},
      {"probe_start", l_probe_start},
      {"probe_stop", l_probe_stop},
      {"probe_stats", l_probe_stats},
      {"options", l_options},
      {"count_hook_abort", l_count_hook_abort},
      {"trim", l_trim},
      {NULL, NULL},
  };
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  lua_pushstring(L, CL_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, cl_lua_ctx_get(L)->libdir);
  lua_setfield(L, -2, "libdir");
  return 1;
}
