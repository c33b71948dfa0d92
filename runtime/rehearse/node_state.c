/* See node_state.h. */
#include "rehearse/node_state.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lua/lua_modules.h"

typedef struct nctx {
  struct rh_lua_host *h;
  int i;
} nctx;

struct rh_lua_host {
  lua_State *D;
  int ask_ref;
  char *path, *cpath, *boot_json;
  rh_world *w;
  lua_State *L[RH_MAX_NODES];
  int handler[RH_MAX_NODES], fire[RH_MAX_NODES], fsevent[RH_MAX_NODES], udp[RH_MAX_NODES];
  int exited[RH_MAX_NODES], code[RH_MAX_NODES];
  nctx ctx[RH_MAX_NODES];
  char last_err[512]; /* the first line of the last Lua error, for a start failure's message */
};

static nctx *ctx_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* ---- clusterlua.c.simnode: clusterlua.c.node's functions, on the world ---- */

static uint32_t ufield(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  lua_Number v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
  lua_pop(L, 1);
  return v > 0 && v < 4e9 ? (uint32_t)v : 0;
}

/* a list field ({"a","b"} or "a,b") as "a,b" on the Lua stack */
static const char *joined(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  if (lua_istable(L, -1)) {
    luaL_Buffer b;
    int t = lua_gettop(L);
    luaL_buffinit(L, &b);
    size_t n = lua_objlen(L, t);
    for (size_t i = 1; i <= n; i++) {
      lua_rawgeti(L, t, (int)i);
      if (lua_isstring(L, -1)) {
        if (i > 1) luaL_addchar(&b, ',');
        luaL_addvalue(&b);
      } else {
        lua_pop(L, 1);
      }
    }
    luaL_pushresult(&b);
    lua_remove(L, t);
  } else if (!lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  return lua_tostring(L, -1);
}

static int l_start(lua_State *L) {
  nctx *c = ctx_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  rh_start_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  lua_getfield(L, 1, "id");
  cfg.id = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_getfield(L, 1, "cluster");
  cfg.cluster = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  cfg.roles = joined(L, 1, "roles");
  cfg.imn = joined(L, 1, "initial_master_nodes");
  cfg.heartbeat_ms = ufield(L, 1, "heartbeat_ms");
  cfg.timeout_ms = ufield(L, 1, "timeout_ms");
  cfg.watchers = ufield(L, 1, "watchers");
  lua_getfield(L, 1, "mesh");
  cfg.mesh = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "election");
  if (lua_istable(L, -1)) {
    int e = lua_gettop(L);
    cfg.el_heartbeat_ms = ufield(L, e, "heartbeat_ms");
    cfg.el_check_timeout_ms = ufield(L, e, "check_timeout_ms");
    cfg.el_lua_stepdown_ms = ufield(L, e, "lua_stepdown_ms");
    cfg.el_max_exclusions = ufield(L, e, "max_exclusions");
    cfg.el_max_nodes = ufield(L, e, "max_nodes");
    cfg.el_max_voting_nodes = ufield(L, e, "max_voting_nodes");
  }
  char err[512];
  if (rh_node_start(c->h->w, c->i, &cfg, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    const char *colon = strchr(err, ':');
    if (colon && err[0] == 'E')
      lua_pushlstring(L, err, (size_t)(colon - err));
    else
      lua_pushliteral(L, "EIO");
    return 3;
  }
  /* the registry is shared by every coroutine of the node's state */
  lua_settop(L, 2);
  if (c->h->handler[c->i] != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, c->h->handler[c->i]);
  c->h->handler[c->i] = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_want(lua_State *L) {
  nctx *c = ctx_of(L);
  rh_node_want(c->h->w, c->i, luaL_checkstring(L, 1));
  return 0;
}

static int l_unwant(lua_State *L) {
  nctx *c = ctx_of(L);
  rh_node_unwant(c->h->w, c->i, luaL_checkstring(L, 1));
  return 0;
}

static int l_disconnect(lua_State *L) {
  nctx *c = ctx_of(L);
  rh_node_disconnect(c->h->w, c->i, luaL_checkstring(L, 1));
  return 0;
}

static int l_send(lua_State *L) {
  nctx *c = ctx_of(L);
  const char *to = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (rh_node_send(c->h->w, c->i, to, (const uint8_t *)data, len) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "ENOTCONN: not connected to %s", to);
    lua_pushliteral(L, "ENOTCONN");
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_leave(lua_State *L) {
  nctx *c = ctx_of(L);
  rh_node_leave(c->h->w, c->i);
  return 0;
}

/* a Lua number as uint64 (ids, versions): NaN and negatives 0, clamped at 1e18 */
static uint64_t num_u64(lua_Number v) { return v > 0 ? (v < 1e18 ? (uint64_t)v : (uint64_t)1e18) : 0; }

static int l_el_update(lua_State *L) {
  nctx *c = ctx_of(L);
  lua_Number id = luaL_checknumber(L, 1), base = luaL_checknumber(L, 2);
  size_t len;
  const char *blob = luaL_checklstring(L, 3, &len);
  rh_node_request(c->h->w, c->i, 1, num_u64(id), num_u64(base), blob, len, 0);
  return 0;
}

static int l_el_exclude(lua_State *L) {
  nctx *c = ctx_of(L);
  lua_Number id = luaL_checknumber(L, 1);
  size_t len;
  const char *csv = luaL_checklstring(L, 2, &len);
  rh_node_request(c->h->w, c->i, 2, num_u64(id), 0, csv, len, 0);
  return 0;
}

static int l_el_clear(lua_State *L) {
  nctx *c = ctx_of(L);
  lua_Number id = luaL_checknumber(L, 1);
  rh_node_request(c->h->w, c->i, 3, num_u64(id), 0, NULL, 0, lua_toboolean(L, 2));
  return 0;
}

/* events born in Lua (hook and strategy errors, reloads): the timeline's */
static int l_event(lua_State *L) {
  nctx *c = ctx_of(L);
  rh_world_record(c->h->w, c->i, luaL_checkstring(L, 1), luaL_checkstring(L, 2), NULL, 0, 0);
  return 0;
}

static int l_nothing(lua_State *L) {
  (void)L;
  return 0;
}

static int l_unsupported(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "ENOTSUP: not simulated in a rehearsal");
  lua_pushliteral(L, "ENOTSUP");
  return 3;
}

/* ---- the seams' helpers (lua/clusterlua/rehearse/node.lua) ---- */

static int l_now(lua_State *L) {
  nctx *c = ctx_of(L);
  lua_pushnumber(L, (lua_Number)(rh_world_now_us(c->h->w) / RH_US));
  return 1;
}

static int l_now_us(lua_State *L) {
  nctx *c = ctx_of(L);
  lua_pushnumber(L, (lua_Number)rh_world_now_us(c->h->w));
  return 1;
}

/* a Lua number as int64, NaN as 0 and clamped (no float-to-integer overflow) */
static int64_t num_i64(lua_Number v) { return v > -1e18 ? (v < 1e18 ? (int64_t)v : (int64_t)1e18) : v <= -1e18 ? (int64_t)-1e18 : 0; }

static int l_record(lua_State *L) {
  nctx *c = ctx_of(L);
  rh_world_record(c->h->w, c->i, luaL_checkstring(L, 1), luaL_optstring(L, 2, NULL), luaL_optstring(L, 3, NULL),
                  num_i64(luaL_optnumber(L, 4, 0)), num_i64(luaL_optnumber(L, 5, 0)));
  return 0;
}

/* ask(kind, a, b) -> the director's answer (number?, string?) */
static int l_ask(lua_State *L) {
  nctx *c = ctx_of(L);
  lua_State *D = c->h->D;
  int top = lua_gettop(D);
  lua_rawgeti(D, LUA_REGISTRYINDEX, c->h->ask_ref);
  lua_pushinteger(D, c->i + 1);
  lua_pushstring(D, luaL_checkstring(L, 1));
  lua_pushstring(D, luaL_optstring(L, 2, ""));
  lua_pushstring(D, luaL_optstring(L, 3, ""));
  if (lua_pcall(D, 4, 2, 0) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, lua_tostring(D, -1) ? lua_tostring(D, -1) : "the scenario's answer failed");
    lua_settop(D, top);
    return 2;
  }
  if (lua_isnumber(D, -2))
    lua_pushnumber(L, lua_tonumber(D, -2));
  else
    lua_pushnil(L);
  if (lua_isstring(D, -1)) {
    size_t len;
    const char *s = lua_tolstring(D, -1, &len);
    lua_pushlstring(L, s, len);
  } else {
    lua_pushnil(L);
  }
  lua_settop(D, top);
  return 2;
}

/* os.exit: unwinds with a userdata, which every pcall of the runtime lets through */
static int l_exit(lua_State *L) {
  nctx *c = ctx_of(L);
  int code = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? 0 : 1) : (int)luaL_optinteger(L, 1, 0);
  c->h->exited[c->i] = 1;
  c->h->code[c->i] = code;
  lua_newuserdata(L, 1);
  return lua_error(L);
}

static int l_set_fire(lua_State *L) {
  nctx *c = ctx_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  if (c->h->fire[c->i] != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, c->h->fire[c->i]);
  c->h->fire[c->i] = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int l_set_fsevent(lua_State *L) {
  nctx *c = ctx_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  if (c->h->fsevent[c->i] != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, c->h->fsevent[c->i]);
  c->h->fsevent[c->i] = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int l_set_udp(lua_State *L) {
  nctx *c = ctx_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  if (c->h->udp[c->i] != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, c->h->udp[c->i]);
  c->h->udp[c->i] = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int l_udp_bind(lua_State *L) {
  nctx *c = ctx_of(L);
  rh_node_udp_bind(c->h->w, c->i, (int)luaL_checkinteger(L, 1));
  return 0;
}

static int l_udp_close(lua_State *L) {
  nctx *c = ctx_of(L);
  rh_node_udp_close(c->h->w, c->i, (int)luaL_checkinteger(L, 1));
  return 0;
}

static int l_udp_send(lua_State *L) {
  nctx *c = ctx_of(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  rh_node_udp_send(c->h->w, c->i, (int)luaL_checkinteger(L, 1), (const uint8_t *)data, len);
  return 0;
}

static int l_stat(lua_State *L) {
  struct stat st;
  if (stat(luaL_checkstring(L, 1), &st) != 0) return 0;
  lua_pushstring(L, S_ISDIR(st.st_mode) ? "directory" : S_ISREG(st.st_mode) ? "file" : "other");
  return 1;
}

static int open_simnode(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"start", l_start},
      {"want", l_want},
      {"unwant", l_unwant},
      {"disconnect", l_disconnect},
      {"send", l_send},
      {"leave", l_leave},
      {"el_update", l_el_update},
      {"el_exclude", l_el_exclude},
      {"el_clear", l_el_clear},
      {"event", l_event},
      {"reload_done", l_nothing},
      {"fault", l_nothing},
      {"stop", l_nothing},
      {"set_send_queue_max", l_nothing},
      {"persisted_info", l_nothing},
      {"unsafe_bootstrap", l_unsupported},
      {"now", l_now},
      {"now_us", l_now_us},
      {"record", l_record},
      {"ask", l_ask},
      {"exit", l_exit},
      {"set_fire", l_set_fire},
      {"set_fsevent", l_set_fsevent},
      {"set_udp", l_set_udp},
      {"udp_bind", l_udp_bind},
      {"udp_close", l_udp_close},
      {"udp_send", l_udp_send},
      {"stat", l_stat},
      {NULL, NULL},
  };
  lua_newtable(L);
  for (const luaL_Reg *r = fns; r->name; r++) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, r->func, 1);
    lua_setfield(L, -2, r->name);
  }
  return 1;
}

/* ---- the ops the world calls ---- */

static void preload(lua_State *L, const char *name, lua_CFunction f, void *up) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  if (up) {
    lua_pushlightuserdata(L, up);
    lua_pushcclosure(L, f, 1);
  } else {
    lua_pushcfunction(L, f);
  }
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}

static void close_state(rh_lua_host *h, int i) {
  if (!h->L[i]) return;
  lua_close(h->L[i]);
  h->L[i] = NULL;
  h->handler[i] = h->fire[i] = h->fsevent[i] = h->udp[i] = LUA_NOREF;
}

static int traceback(lua_State *L) {
  if (lua_type(L, 1) == LUA_TUSERDATA) return 1; /* os.exit: not an error */
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

/* calls the function below nargs arguments; 0 ok, 1 error (recorded), 2 exit */
static int call(rh_lua_host *h, int i, int nargs, int nres) {
  lua_State *L = h->L[i];
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  int rc = lua_pcall(L, nargs, nres, base);
  lua_remove(L, base);
  if (rc == 0) return 0;
  if (h->exited[i]) {
    lua_pop(L, 1);
    return 2;
  }
  const char *msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error)";
  rh_world_record(h->w, i, "lua_error", msg, NULL, 0, 0);
  snprintf(h->last_err, sizeof h->last_err, "%.*s", (int)strcspn(msg, "\n"), msg);
  lua_pop(L, 1);
  return 1;
}

static int op_boot(void *ud, rh_world *w, int i, char *err, size_t errlen) {
  rh_lua_host *h = ud;
  h->w = w;
  close_state(h, i);
  h->exited[i] = 0;
  lua_State *L = luaL_newstate();
  if (!L) {
    snprintf(err, errlen, "cannot create a Lua state (out of memory)");
    return -1;
  }
  h->L[i] = L;
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, h->path);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, h->cpath);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  h->ctx[i].h = h;
  h->ctx[i].i = i;
  preload(L, "clusterlua.c.simnode", open_simnode, &h->ctx[i]);
  preload(L, "clusterlua.c.name", luaopen_clusterlua_c_name, NULL);
  preload(L, "clusterlua.c.crypto", luaopen_clusterlua_c_crypto, NULL);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "clusterlua.rehearse.node");
  int rc = call(h, i, 1, 1);
  if (rc == 0) {
    lua_getfield(L, -1, "boot");
    lua_remove(L, -2);
    lua_pushstring(L, h->boot_json);
    lua_pushinteger(L, i + 1);
    lua_pushstring(L, rh_world_name(w, i));
    lua_pushstring(L, rh_world_short(w, i));
    rc = call(h, i, 4, 2);
    if (rc == 0 && !lua_toboolean(L, -2)) {
      snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "the node did not start");
      lua_pop(L, 2);
      return -1;
    }
    if (rc == 0) lua_pop(L, 2);
  }
  if (rc == 1) {
    snprintf(err, errlen, "the node's Lua failed at start: %s", h->last_err);
    return -1;
  }
  return 0;
}

static void push_roles(lua_State *L, const char *roles) {
  lua_newtable(L);
  int k = 1;
  const char *p = roles;
  while (p && *p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n) {
      lua_pushlstring(L, p, n);
      lua_rawseti(L, -2, k++);
    }
    p = e ? e + 1 : NULL;
  }
}

static int push_msg(lua_State *L, const rh_lua_msg *m) {
  lua_pushstring(L, m->kind);
  if (m->name)
    lua_pushstring(L, m->name);
  else
    lua_pushnil(L);
  if (!strcmp(m->kind, "up")) {
    lua_createtable(L, 0, 6);
    lua_pushstring(L, m->id);
    lua_setfield(L, -2, "id");
    const char *at = m->name ? strchr(m->name, '@') : NULL;
    lua_pushstring(L, at ? at + 1 : "");
    lua_setfield(L, -2, "address");
    push_roles(L, m->roles);
    lua_setfield(L, -2, "roles");
    lua_pushnumber(L, (lua_Number)m->rtt_us);
    lua_setfield(L, -2, "rtt_us");
    lua_pushnumber(L, (lua_Number)m->incarnation);
    lua_setfield(L, -2, "incarnation");
    lua_pushnumber(L, 0);
    lua_setfield(L, -2, "coalesced");
    return 3;
  }
  if (!strcmp(m->kind, "quorum")) {
    lua_pushboolean(L, m->b != 0);
    return 3;
  }
  if (m->has_a)
    lua_pushlstring(L, m->a, m->a_len);
  else
    lua_pushnil(L);
  if (!strcmp(m->kind, "down") || !strcmp(m->kind, "msg")) return 3;
  lua_pushnumber(L, m->b);
  if (!strcmp(m->kind, "done")) {
    lua_pushnumber(L, m->c);
    return 5;
  }
  return 4;
}

static uint64_t op_run(void *ud, rh_world *w, int i, rh_lua_msg *msgs, uint64_t now_ms, int *exited, int *code) {
  rh_lua_host *h = ud;
  (void)w;
  lua_State *L = h->L[i];
  if (!L) return UINT64_MAX;
  for (rh_lua_msg *m = msgs; m; m = m->next) {
    int nargs;
    if (!strcmp(m->kind, "udp")) {
      /* a datagram: the node's UDP sockets take it */
      if (h->udp[i] == LUA_NOREF) continue;
      lua_rawgeti(L, LUA_REGISTRYINDEX, h->udp[i]);
      lua_pushinteger(L, (lua_Integer)m->b);
      lua_pushlstring(L, m->a ? m->a : "", m->a_len);
      lua_pushstring(L, m->name ? m->name : "");
      nargs = 3;
    } else if (!strcmp(m->kind, "fsevent")) {
      /* a watched file changed: the node's fs_event handles, not the node's handler */
      if (h->fsevent[i] == LUA_NOREF) continue;
      lua_rawgeti(L, LUA_REGISTRYINDEX, h->fsevent[i]);
      lua_pushstring(L, m->name ? m->name : "");
      nargs = 1;
    } else {
      if (h->handler[i] == LUA_NOREF) continue;
      lua_rawgeti(L, LUA_REGISTRYINDEX, h->handler[i]);
      nargs = push_msg(L, m);
    }
    if (call(h, i, nargs, 0) == 2) {
      *exited = 1;
      *code = h->code[i];
      return UINT64_MAX;
    }
  }
  uint64_t next = UINT64_MAX;
  if (h->fire[i] != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->fire[i]);
    lua_pushnumber(L, (lua_Number)now_ms);
    int rc = call(h, i, 1, 1);
    if (rc == 2) {
      *exited = 1;
      *code = h->code[i];
      return UINT64_MAX;
    }
    if (rc == 0) {
      if (lua_isnumber(L, -1)) {
        lua_Number d = lua_tonumber(L, -1);
        /* a timer of math.huge (or NaN) never fires, and is no float-to-integer overflow */
        next = d < (lua_Number)now_ms ? now_ms : d < 1e15 ? (uint64_t)d : d >= 1e15 ? UINT64_MAX : now_ms;
      }
      lua_pop(L, 1);
    }
  }
  return next;
}

static void op_close(void *ud, rh_world *w, int i) {
  (void)w;
  close_state(ud, i);
}

rh_lua_host *rh_lua_host_new(lua_State *D, int ask_ref, const char *path, const char *cpath, const char *boot_json) {
  rh_lua_host *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->D = D;
  h->ask_ref = ask_ref;
  h->path = strdup(path);
  h->cpath = strdup(cpath);
  h->boot_json = strdup(boot_json);
  for (int i = 0; i < RH_MAX_NODES; i++) h->handler[i] = h->fire[i] = h->fsevent[i] = h->udp[i] = LUA_NOREF;
  if (!h->path || !h->cpath || !h->boot_json) {
    rh_lua_host_free(h);
    return NULL;
  }
  return h;
}

void rh_lua_host_free(rh_lua_host *h) {
  if (!h) return;
  for (int i = 0; i < RH_MAX_NODES; i++) close_state(h, i);
  free(h->path);
  free(h->cpath);
  free(h->boot_json);
  free(h);
}

rh_lua_ops rh_lua_host_ops(rh_lua_host *h) {
  rh_lua_ops o = {.ud = h, .boot = op_boot, .run = op_run, .close = op_close};
  return o;
}
