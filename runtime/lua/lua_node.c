/* clusterlua.c.node: the Lua side of the node. Commands go to the control loop through
 * its queue; events come back through the event queue and are dispatched to one Lua
 * function (lua/clusterlua/node.lua), each under cl_lua_pcall. */
#include <lauxlib.h>
#include <lua.h>
#include <sodium.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "core/control.h"
#include "election/election.h"
#include "lua/lua_dataplane.h"
#include "transport/dataplane.h"
#include "lua/lua_call.h"
#include "lua/lua_modules.h"
#include "node/node.h"


static char *dupfield(lua_State *L, int idx, const char *k, int required) {
  lua_getfield(L, idx, k);
  char *r = NULL;
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    r = malloc(n + 1);
    memcpy(r, s, n + 1);
  } else if (!lua_isnil(L, -1) || required) {
    lua_pop(L, 1);
    luaL_error(L, "bad argument #1 (config.%s): expected a string", k);
  }
  lua_pop(L, 1);
  return r;
}

/* list of strings -> "a,b,c" */
static char *joinfield(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  char *r = NULL;
  if (lua_istable(L, -1)) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = (int)lua_objlen(L, -1);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      const char *s = lua_tostring(L, -1);
      lua_pop(L, 1);
      if (!s) continue;
      if (i > 1) luaL_addchar(&b, ',');
      luaL_addstring(&b, s);
    }
    luaL_pushresult(&b);
    r = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    r = strdup(lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  return r;
}

static uint32_t uintfield(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  lua_Number v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
  lua_pop(L, 1);
  return v > 0 && v < 4294967296.0 ? (uint32_t)v : 0;
}

static int boolfield(lua_State *L, int idx, const char *k, int dflt) {
  lua_getfield(L, idx, k);
  int r = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

static cl_control *ctl(lua_State *L) {
  cl_control *c = cl_lua_ctx_get(L)->control;
  if (!c) luaL_error(L, "the control loop is not running");
  return c;
}

static int l_start(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  cl_control *c = ctl(L);
  cl_node_config *cfg = calloc(1, sizeof *cfg);
  cfg->name = dupfield(L, 1, "name", 1);
  cfg->id = dupfield(L, 1, "id", 1);
  cfg->cluster = dupfield(L, 1, "cluster", 1);
  cfg->data = dupfield(L, 1, "data", 1);
  cfg->admin = dupfield(L, 1, "admin", 0);
  cfg->admin_token = dupfield(L, 1, "admin_token", 0);
  cfg->log_subsys = dupfield(L, 1, "log_subsys", 0);
  cfg->roles = joinfield(L, 1, "roles");
  cfg->initial_master_nodes = joinfield(L, 1, "initial_master_nodes");
  cfg->keyring_path = dupfield(L, 1, "keyring_path", 0);
  /* the keyring (keys one a line, primary first), or the cookie alone */
  lua_getfield(L, 1, "keyring");
  size_t kl;
  const char *ring = lua_tolstring(L, -1, &kl);
  if (ring && kl) {
    cfg->keyring = malloc(kl);
    if (cfg->keyring) memcpy(cfg->keyring, ring, kl);
    cfg->keyring_len = cfg->keyring ? kl : 0;
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "cookie");
  size_t cl;
  const char *cookie = lua_tolstring(L, -1, &cl);
  if ((!cookie || cl == 0) && !cfg->keyring_len) {
    cl_node_config_free(cfg);
    return luaL_error(L, "bad argument #1 (config.cookie): expected a non-empty string");
  }
  if (cookie && cl) {
    cfg->cookie = malloc(cl);
    memcpy(cfg->cookie, cookie, cl);
    cfg->cookie_len = cl;
  }
  lua_pop(L, 1);
  cfg->encrypt = boolfield(L, 1, "encrypt", 1);
  cfg->mesh = boolfield(L, 1, "mesh", 1);
  cfg->new_id = boolfield(L, 1, "new_id", 0);
  cfg->data_conn = boolfield(L, 1, "data_connection", 1);
  cfg->max_frame = uintfield(L, 1, "max_frame");
  if (cfg->max_frame) cl_lua_ctx_get(L)->max_frame = cfg->max_frame;
  cfg->heartbeat_ms = uintfield(L, 1, "heartbeat_ms");
  cfg->timeout_ms = uintfield(L, 1, "timeout_ms");
  cfg->send_queue_max = uintfield(L, 1, "send_queue_max");
  cfg->reconnect_timeout_ms = uintfield(L, 1, "reconnect_timeout_ms");
  cfg->watchers = uintfield(L, 1, "watchers");
  cfg->full_mesh_max = uintfield(L, 1, "full_mesh_max");
  cfg->idle_close_ms = uintfield(L, 1, "idle_close_ms");
  cfg->large_timeout_ms = uintfield(L, 1, "large_timeout_ms");
  cfg->large_heartbeat_ms = uintfield(L, 1, "large_heartbeat_ms");
  if (cfg->send_queue_max) cl_lua_ctx_get(L)->send_queue_max = cfg->send_queue_max;
  lua_getfield(L, 1, "election");
  if (lua_istable(L, -1)) {
    int e = lua_gettop(L);
    cfg->el_heartbeat_ms = uintfield(L, e, "heartbeat_ms");
    cfg->el_check_timeout_ms = uintfield(L, e, "check_timeout_ms");
    cfg->el_lua_stepdown_ms = uintfield(L, e, "lua_stepdown_ms");
    cfg->el_max_exclusions = uintfield(L, e, "max_exclusions");
    cfg->el_max_nodes = uintfield(L, e, "max_nodes");
    cfg->el_max_voting_nodes = uintfield(L, e, "max_voting_nodes");
  }
  lua_pop(L, 1);
  uv_sem_init(&cfg->done, 0);
  cl_msg *m = cl_msg_new(CL_CMD_NODE_START, NULL, NULL, 0);
  if (!m) {
    uv_sem_destroy(&cfg->done);
    cl_node_config_free(cfg);
    return luaL_error(L, "out of memory");
  }
  m->id = (uint64_t)(uintptr_t)cfg;
  cl_control_send(c, m, CL_Q_FORCE);
  /* Lua may wait for the control loop (never the other way round) */
  uv_sem_wait(&cfg->done);
  uv_sem_destroy(&cfg->done);
  if (cfg->rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, cfg->err[0] ? cfg->err : "EIO: node start failed");
    cl_node_config_free(cfg);
    const char *e = lua_tostring(L, -1);
    const char *colon = strchr(e, ':');
    if (colon && e[0] == 'E')
      lua_pushlstring(L, e, (size_t)(colon - e));
    else
      lua_pushstring(L, "EIO");
    return 3;
  }
  lua_pushvalue(L, 2);
  cl_lua_ctx_get(L)->node_handler = luaL_ref(L, LUA_REGISTRYINDEX);
  /* a running node keeps the Lua loop alive */
  uv_ref((uv_handle_t *)&c->evt.async);
  lua_pushboolean(L, 1);
  return 1;
}

/* A command to the control loop, with Lua's request id and a number where it has them:
 * 0, or -1 when the queue refused it; raises when the loop is not running or out of
 * memory (checked before anything is allocated or sent). */
static int send_cmd(lua_State *L, int type, const char *name, const void *body, size_t len, uint64_t id, int64_t num,
                    int mode) {
  cl_control *c = ctl(L);
  cl_msg *m = cl_msg_new((uint32_t)type, name, body, len);
  if (!m) return luaL_error(L, "out of memory");
  m->id = id;
  m->num = num;
  if (cl_control_send(c, m, mode) != 0) {
    free(m);
    return -1;
  }
  return 0;
}

static int push_cmd(lua_State *L, int type, const char *name, const void *body, size_t len, int mode) {
  return send_cmd(L, type, name, body, len, 0, 0, mode);
}

static int l_want(lua_State *L) {
  push_cmd(L, CL_CMD_NODE_WANT, luaL_checkstring(L, 1), NULL, 0, CL_Q_FORCE);
  return 0;
}

static int l_unwant(lua_State *L) {
  push_cmd(L, CL_CMD_NODE_UNWANT, luaL_checkstring(L, 1), NULL, 0, CL_Q_FORCE);
  return 0;
}

/* data_open(name, incarnation): asks for a data connection to the peer in that life;
 * the "data" event answers, with it or with nil */
static int l_data_open(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_Number inc = luaL_checknumber(L, 2);
  send_cmd(L, CL_CMD_NODE_DATA_OPEN, name, NULL, 0, 0, (int64_t)inc, CL_Q_FORCE);
  return 0;
}

static int l_disconnect(lua_State *L) {
  push_cmd(L, CL_CMD_NODE_DISCONNECT, luaL_checkstring(L, 1), NULL, 0, CL_Q_FORCE);
  return 0;
}

/* Tells every peer this node leaves and returns once they have been told (each LEAVE
 * written, or CL_LEAVE_WAIT_MS for a peer that does not read). Lua may wait for the
 * control loop, never the other way round. */
static int l_leave(lua_State *L) {
  uv_sem_t sem;
  if (uv_sem_init(&sem, 0) != 0) return luaL_error(L, "cannot create a semaphore");
  cl_msg *m = cl_msg_new(CL_CMD_NODE_LEAVE, NULL, NULL, 0);
  if (!m) {
    uv_sem_destroy(&sem);
    return luaL_error(L, "out of memory");
  }
  m->id = (uint64_t)(uintptr_t)&sem;
  if (cl_control_send(ctl(L), m, CL_Q_FORCE) != 0) {
    free(m);
    uv_sem_destroy(&sem);
    return 0;
  }
  uv_sem_wait(&sem);
  uv_sem_destroy(&sem);
  return 0;
}

static int l_fault(lua_State *L) {
  const char *peer = luaL_checkstring(L, 1);
  size_t n;
  const char *spec = luaL_checklstring(L, 2, &n);
  push_cmd(L, CL_CMD_NODE_FAULT, peer, spec, n, CL_Q_FORCE);
  return 0;
}

static int enobufs(lua_State *L, const char *to) {
  lua_pushnil(L);
  lua_pushfstring(L, "ENOBUFS: the send queue to %s is full", to);
  lua_pushliteral(L, "ENOBUFS");
  return 3;
}


static int l_send(lua_State *L) {
  const char *to = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  /* the per-peer record is cached in an upvalue table: a lookup under a mutex per
   * message would cost more than the send */
  lua_pushvalue(L, 1);
  lua_rawget(L, lua_upvalueindex(1));
  cl_peerq *q = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!q) {
    cl_lua_ctx *cx = cl_lua_ctx_get(L);
    if (!cx->node) return luaL_error(L, "the control loop is not running");
    q = cl_node_peerq(cx->node, to);
    if (!q) return luaL_error(L, "out of memory");
    lua_pushvalue(L, 1);
    lua_pushlightuserdata(L, q);
    lua_rawset(L, lua_upvalueindex(1));
  }
  if (atomic_load(&q->full) || atomic_load(&q->pending) + (int64_t)len > cl_lua_ctx_get(L)->send_queue_max)
    return enobufs(L, to);
  cl_msg *m = cl_msg_new(CL_CMD_NODE_SEND, to, data, len);
  if (!m) return luaL_error(L, "out of memory");
  m->id = (uint64_t)(uintptr_t)q;
  atomic_fetch_add(&q->pending, (int64_t)len);
  if (cl_control_send(ctl(L), m, CL_Q_NORMAL) != 0) {
    atomic_fetch_sub(&q->pending, (int64_t)len);
    free(m);
    return enobufs(L, to);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_set_send_queue_max(lua_State *L) {
  lua_Integer v = luaL_checkinteger(L, 1);
  if (v < 1024) return luaL_argerror(L, 1, "must be >= 1024 bytes");
  cl_lua_ctx_get(L)->send_queue_max = v;
  return 0;
}

static int l_el_update(lua_State *L) {
  lua_Number id = luaL_checknumber(L, 1);
  lua_Number base = luaL_checknumber(L, 2);
  size_t len;
  const char *blob = luaL_checklstring(L, 3, &len);
  send_cmd(L, CL_CMD_NODE_EL_UPDATE, NULL, blob, len, (uint64_t)id, (int64_t)base, CL_Q_FORCE);
  return 0;
}

static int l_el_exclude(lua_State *L) {
  lua_Number id = luaL_checknumber(L, 1);
  size_t len;
  const char *csv = luaL_checklstring(L, 2, &len);
  send_cmd(L, CL_CMD_NODE_EL_EXCLUDE, NULL, csv, len, (uint64_t)id, 0, CL_Q_FORCE);
  return 0;
}

static int l_el_clear(lua_State *L) {
  send_cmd(L, CL_CMD_NODE_EL_CLEAR, NULL, NULL, 0, (uint64_t)luaL_checknumber(L, 1), lua_toboolean(L, 2), CL_Q_FORCE);
  return 0;
}

static int l_reload_done(lua_State *L) {
  lua_Number id = luaL_checknumber(L, 1);
  lua_Integer status = luaL_checkinteger(L, 2);
  size_t len;
  const char *json = luaL_checklstring(L, 3, &len);
  send_cmd(L, CL_CMD_NODE_RELOAD_DONE, NULL, json, len, (uint64_t)id, status, CL_Q_FORCE);
  return 0;
}

/* An event born in Lua (a reload, a hook or strategy error) for the admin endpoint's
 * event stream: through the command queue, and never waiting for room in it (dropped
 * when it is full; the log has the error anyway). */
static int l_event(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  size_t len;
  const char *json = luaL_checklstring(L, 2, &len);
  cl_control *c = cl_lua_ctx_get(L)->control;
  if (!c) return 0;
  cl_msg *m = cl_msg_new(CL_CMD_NODE_EVENT, kind, json, len);
  if (m && cl_control_send(c, m, CL_Q_NORMAL) != 0) free(m);
  return 0;
}

/* unsafe-bootstrap: the persisted file of a state in which this node alone votes */
static int l_unsafe_bootstrap(lua_State *L) {
  size_t len;
  const char *bytes = luaL_checklstring(L, 1, &len);
  const char *self_id = luaL_checkstring(L, 2);
  uint8_t *out = NULL;
  size_t outlen = 0;
  char err[256] = "";
  if (cl_el_unsafe_bootstrap((const uint8_t *)bytes, len, self_id, &out, &outlen, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "EINVAL: %s", err);
    lua_pushliteral(L, "EINVAL");
    return 3;
  }
  lua_pushlstring(L, (const char *)out, outlen);
  free(out);
  return 1;
}

/* term and version of a persisted file, to show the operator what they are about to keep */
static int l_persisted_info(lua_State *L) {
  size_t len;
  const char *bytes = luaL_checklstring(L, 1, &len);
  cl_el_state st;
  cl_el_state_init(&st);
  uint64_t term = 0;
  int committed = 0;
  char err[256] = "";
  if (cl_el_persist_decode((const uint8_t *)bytes, len, &term, &st, &committed, err, sizeof err) != 0) {
    cl_el_state_clear(&st);
    lua_pushnil(L);
    lua_pushfstring(L, "EINVAL: %s", err);
    lua_pushliteral(L, "EINVAL");
    return 3;
  }
  lua_createtable(L, 0, 6);
  lua_pushnumber(L, (lua_Number)term);
  lua_setfield(L, -2, "term");
  lua_pushnumber(L, (lua_Number)st.version);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, st.cluster_id);
  lua_setfield(L, -2, "cluster_id");
  lua_pushboolean(L, committed);
  lua_setfield(L, -2, "committed");
  lua_pushnumber(L, st.accepted_config.n);
  lua_setfield(L, -2, "voting_nodes");
  lua_pushnumber(L, st.n_nodes);
  lua_setfield(L, -2, "nodes");
  cl_el_state_clear(&st);
  return 1;
}

static int l_stop(lua_State *L) {
  cl_control *c = ctl(L);
  cl_lua_ctx *cx = cl_lua_ctx_get(L);
  if (cx->node_handler != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, cx->node_handler);
    cx->node_handler = LUA_NOREF;
    uv_unref((uv_handle_t *)&c->evt.async);
  }
  return 0;
}

static void push_roles(lua_State *L, const char *roles) {
  lua_newtable(L);
  int i = 1;
  const char *p = roles;
  while (p && *p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n) {
      lua_pushlstring(L, p, n);
      lua_rawseti(L, -2, i++);
    }
    p = e ? e + 1 : NULL;
  }
}

/* Lua thread: every event the control loop emitted, in order. */
/* An event nobody takes: its data connection's socket must not leak. */
static void drop_event(cl_msg *m) {
  if (m->type == CL_EVT_NODE_DATA && m->body_len >= sizeof(cl_evt_data)) {
    cl_evt_data d;
    memcpy(&d, cl_msg_body(m), sizeof d);
    if (d.fd >= 0) close(d.fd);
    sodium_memzero((void *)cl_msg_body(m), m->body_len);
  }
}

void cl_lua_node_events(cl_msg *list, void *ud) {
  /* ud is the Lua state the loop was started with; events are handled on its main
   * thread, never on a coroutine that happened to start the node */
  cl_lua_ctx *cx = ud ? cl_lua_ctx_get(ud) : NULL;
  lua_State *L = cx ? cx->L : NULL;
  while (list) {
    cl_msg *m = list;
    list = list->next;
    int handler = cx ? cx->node_handler : LUA_NOREF;
    if (!L || handler == LUA_NOREF) drop_event(m);
    if (L && handler != LUA_NOREF) {
      int top = lua_gettop(L);
      lua_rawgeti(L, LUA_REGISTRYINDEX, handler);
      int nargs = 2;
      switch (m->type) {
      case CL_EVT_NODE_UP: {
        /* the body follows the name, so it is not aligned: copy it out */
        cl_evt_up upv;
        memcpy(&upv, cl_msg_body(m), sizeof upv);
        const cl_evt_up *up = &upv;
        lua_pushliteral(L, "up");
        lua_pushstring(L, cl_msg_name(m));
        lua_createtable(L, 0, 6);
        lua_pushstring(L, up->id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, up->address);
        lua_setfield(L, -2, "address");
        push_roles(L, up->roles);
        lua_setfield(L, -2, "roles");
        lua_pushnumber(L, up->rtt_us);
        lua_setfield(L, -2, "rtt_us");
        lua_pushnumber(L, (lua_Number)up->incarnation);
        lua_setfield(L, -2, "incarnation");
        lua_pushnumber(L, m->coalesced);
        lua_setfield(L, -2, "coalesced");
        lua_pushboolean(L, up->data_ok);
        lua_setfield(L, -2, "data_ok");
        nargs = 3;
        break;
      }
      case CL_EVT_NODE_DATA: {
        /* "data", name, conn (nil: the one asked for failed), incarnation */
        lua_pushliteral(L, "data");
        lua_pushstring(L, cl_msg_name(m));
        int adopted = 0;
        if (m->body_len >= sizeof(cl_evt_data)) {
          const uint8_t *b = cl_msg_body(m);
          cl_evt_data d;
          memcpy(&d, b, sizeof d);
          b += sizeof d;
          if (m->body_len == sizeof d + d.pre_out_len + d.pre_in_len) {
            cl_data_conn dc = {.name = cl_msg_name(m),
                               .incarnation = (uint64_t)m->num,
                               .fd = d.fd,
                               .encrypt = d.encrypt,
                               .pre_out = b,
                               .pre_out_len = d.pre_out_len,
                               .pre_in = b + d.pre_out_len,
                               .pre_in_len = d.pre_in_len};
            memcpy(dc.key_tx, d.key_tx, 32);
            memcpy(dc.key_rx, d.key_rx, 32);
            memcpy(dc.key_hs, d.key_hs, 32);
            memcpy(dc.key_sess, d.key_sess, 32);
            memcpy(dc.sid, d.sid, 32);
            /* pushes the connection, or nil when it could not be adopted */
            cl_lua_dp_adopt(L, &dc, cx->max_frame, (size_t)cx->send_queue_max);
            sodium_memzero(&dc, sizeof dc);
            adopted = 1;
          } else {
            close(d.fd);
          }
          sodium_memzero(&d, sizeof d);
          sodium_memzero((void *)cl_msg_body(m), m->body_len);
        }
        if (!adopted) lua_pushnil(L);
        lua_pushnumber(L, (lua_Number)m->num);
        nargs = 4;
        break;
      }
      case CL_EVT_NODE_MSG:
        cl_node_msg_taken(cl_lua_ctx_get(L)->node, m->body_len + sizeof(cl_msg) + m->name_len + 2);
        /* fall through */
      case CL_EVT_NODE_DOWN:
        lua_pushstring(L, m->type == CL_EVT_NODE_DOWN ? "down" : "msg");
        lua_pushstring(L, cl_msg_name(m));
        lua_pushlstring(L, (const char *)cl_msg_body(m), m->body_len);
        nargs = 3;
        break;
      case CL_EVT_NODE_SHUTDOWN:
        lua_pushliteral(L, "shutdown");
        lua_pushnil(L);
        break;
      case CL_EVT_NODE_MASTER:
        lua_pushliteral(L, "master");
        if (m->name_len)
          lua_pushstring(L, cl_msg_name(m));
        else
          lua_pushnil(L);
        if (m->body_len)
          lua_pushlstring(L, (const char *)cl_msg_body(m), m->body_len);
        else
          lua_pushnil(L);
        lua_pushnumber(L, (lua_Number)m->num);
        nargs = 4;
        break;
      case CL_EVT_NODE_QUORUM:
        lua_pushliteral(L, "quorum");
        lua_pushnil(L);
        lua_pushboolean(L, m->num != 0);
        nargs = 3;
        break;
      case CL_EVT_NODE_COMMITTED:
        lua_pushliteral(L, "committed");
        lua_pushnil(L);
        lua_pushlstring(L, (const char *)cl_msg_body(m), m->body_len);
        lua_pushnumber(L, (lua_Number)m->num);
        nargs = 4;
        break;
      case CL_EVT_NODE_DONE:
        lua_pushliteral(L, "done");
        lua_pushstring(L, cl_msg_name(m)); /* "" when it succeeded, else the error code */
        lua_pushlstring(L, (const char *)cl_msg_body(m), m->body_len);
        lua_pushnumber(L, (lua_Number)m->id);
        lua_pushnumber(L, (lua_Number)m->num);
        nargs = 5;
        break;
      case CL_EVT_NODE_KEYRING:
        /* the data connections follow the ring too (re-authenticated, re-keyed) */
        cl_lua_dp_set_keyring(L, (const uint8_t *)cl_msg_body(m), m->body_len);
        lua_pushliteral(L, "keyring");
        lua_pushnil(L);
        lua_pushlstring(L, (const char *)cl_msg_body(m), m->body_len);
        sodium_memzero((void *)cl_msg_body(m), m->body_len);
        nargs = 3;
        break;
      case CL_EVT_NODE_RELOAD:
        lua_pushliteral(L, "reload");
        lua_pushnil(L);
        lua_pushnumber(L, (lua_Number)m->id);
        nargs = 3;
        break;
      case CL_EVT_NODE_LUA_PING: {
        /* answering here is enough: this runs only when the Lua loop gets to it */
        lua_settop(L, top);
        cl_lua_ctx *ctx = cl_lua_ctx_get(L);
        if (ctx->control) cl_control_lua_answered(ctx->control, (uint64_t)m->num, uv_now(ctx->loop));
        free(m);
        continue;
      }
      default:
        lua_settop(L, top);
        free(m);
        continue;
      }
      cl_lua_pcall(L, nargs, 0, "node event");
      lua_settop(L, top);
    }
    free(m);
  }
}

int luaopen_clusterlua_c_node(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"start", l_start},   {"want", l_want},   {"unwant", l_unwant}, {"disconnect", l_disconnect},
      {"leave", l_leave},   {"fault", l_fault}, {"stop", l_stop},
      {"set_send_queue_max", l_set_send_queue_max},
      {"data_open", l_data_open},
      {"el_update", l_el_update}, {"el_exclude", l_el_exclude}, {"el_clear", l_el_clear},
      {"reload_done", l_reload_done}, {"event", l_event},
      {"unsafe_bootstrap", l_unsafe_bootstrap}, {"persisted_info", l_persisted_info},
      {NULL, NULL},
  };
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  lua_newtable(L); /* name -> cl_peerq*, the upvalue of send */
  lua_pushcclosure(L, l_send, 1);
  lua_setfield(L, -2, "send");
  /* the election's limits, so the topology's checks can be held to them (a spec does) */
  lua_pushnumber(L, CL_EL_MAX_NODES_HARD);
  lua_setfield(L, -2, "MAX_NODES_HARD");
  lua_pushnumber(L, CL_EL_MAX_NODES_DEFAULT);
  lua_setfield(L, -2, "MAX_NODES_DEFAULT");
  lua_pushnumber(L, CL_EL_MAX_VOTING_DEFAULT);
  lua_setfield(L, -2, "MAX_VOTING_DEFAULT");
  return 1;
}
