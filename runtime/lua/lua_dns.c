/* clusterlua.c.dns: SRV, A and AAAA queries through c-ares, on the Lua loop.
 *
 * c-ares owns the sockets and the DNS parsing; libuv only tells it when a socket is
 * ready (one uv_poll per c-ares socket) and when its next timeout is due (one
 * uv_timer per channel). Answers are never handed to Lua from inside c-ares: its
 * callback only queues them, and they are dispatched once c-ares has returned, so a
 * Lua callback may start new queries or close the channel without re-entering it.
 *
 * Memory: a channel is a malloc'd struct that outlives its Lua userdata until every
 * uv handle of it has been closed; handles are freed only in close callbacks (or
 * right away when the runtime's shutdown already closed them, see release_handle). */
#include <arpa/inet.h>
#include <ares.h>
#include <lauxlib.h>
#include <lua.h>
#include <luv/luv.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/log.h"
#include "lua/lua_call.h"
#include "lua/lua_modules.h"

#define CHAN_MT "clusterlua.c.dns.channel"

typedef struct dns_chan dns_chan;

typedef struct dns_poll {
  uv_poll_t h;
  dns_chan *ch;
  ares_socket_t fd;
  int closing; /* uv_close called by us: freed in poll_closed */
  struct dns_poll *next;
} dns_poll;

typedef struct dns_query {
  dns_chan *ch;
  int cb_ref;
  int qtype;
  int status;
  unsigned char *abuf;
  int alen;
  char *name;
  struct dns_query *next;
} dns_query;

struct dns_chan {
  ares_channel ares;
  lua_State *L; /* the main thread: coroutines that started queries may be gone */
  uv_loop_t *loop;
  uv_timer_t timer;
  int timer_closing;
  dns_poll *polls;
  dns_query *done_head, *done_tail;
  int pending;  /* queries c-ares has not answered yet */
  int self_ref; /* keeps the userdata alive while answers are owed */
  int dispatching;
  int closed;    /* :close() or __gc asked */
  int destroyed; /* ares_destroy done */
  int in_gc;     /* never call Lua from a finalizer */
  int handles;   /* uv handles not yet freed; the struct goes with the last */
  dns_chan **box;
};

static void chan_maybe_free(dns_chan *ch);
static void chan_after_process(dns_chan *ch);

/* ---- error names ---------------------------------------------------------------- */

static const char *status_name(int st) {
  switch (st) {
  case ARES_ENODATA: return "ENODATA";
  case ARES_EFORMERR: return "EFORMERR";
  case ARES_ESERVFAIL: return "ESERVFAIL";
  case ARES_ENOTFOUND: return "ENOTFOUND";
  case ARES_ENOTIMP: return "ENOTIMP";
  case ARES_EREFUSED: return "EREFUSED";
  case ARES_EBADQUERY: return "EBADQUERY";
  case ARES_EBADNAME: return "EBADNAME";
  case ARES_EBADFAMILY: return "EBADFAMILY";
  case ARES_EBADRESP: return "EBADRESP";
  case ARES_ECONNREFUSED: return "ECONNREFUSED";
  case ARES_ETIMEOUT: return "ETIMEDOUT"; /* the same name as luv and exec use */
  case ARES_EOF: return "EOF";
  case ARES_EFILE: return "EFILE";
  case ARES_ENOMEM: return "ENOMEM";
  case ARES_EDESTRUCTION: return "ECANCELLED";
  case ARES_ECANCELLED: return "ECANCELLED";
  case ARES_EBADSTR: return "EBADSTR";
  case ARES_ENONAME: return "ENONAME";
  case ARES_EBADHINTS: return "EBADHINTS";
  default: return "EDNS";
  }
}

static const char *type_name(int t) {
  switch (t) {
  case 1: return "A";
  case 28: return "AAAA";
  case 33: return "SRV";
  default: return "?";
  }
}

/* nil, "ENAME: message (name TYPE)", "ENAME" */
static int push_error(lua_State *L, int st, const char *name, int qtype) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s (%s %s)", status_name(st), ares_strerror(st), name, type_name(qtype));
  lua_pushstring(L, status_name(st));
  return 3;
}

/* ---- handles ---------------------------------------------------------------------- */

static void poll_closed(uv_handle_t *h) {
  dns_poll *p = h->data;
  dns_chan *ch = p->ch;
  free(p);
  ch->handles--;
  chan_maybe_free(ch);
}

static void timer_closed(uv_handle_t *h) {
  dns_chan *ch = h->data;
  ch->handles--;
  chan_maybe_free(ch);
}

/* The runtime's shutdown walks the loop and closes every handle without a callback,
 * then runs the loop before closing the Lua state, so a handle found closing that
 * we did not close is already fully closed: its memory can go now. */
static int release_handle(uv_handle_t *h, int *closing, uv_close_cb cb) {
  if (*closing) return 0;
  *closing = 1;
  if (uv_is_closing(h)) return 1; /* caller frees now */
  uv_close(h, cb);
  return 0;
}

static void poll_release(dns_poll *p) {
  if (!uv_is_closing((uv_handle_t *)&p->h)) uv_poll_stop(&p->h); /* before c-ares closes the fd */
  if (release_handle((uv_handle_t *)&p->h, &p->closing, poll_closed)) poll_closed((uv_handle_t *)&p->h);
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  dns_poll *p = h->data;
  dns_chan *ch = p->ch;
  /* on an error let c-ares read and write: it sees the error itself and fails over */
  ares_socket_t r = (status < 0 || (events & (UV_READABLE | UV_DISCONNECT))) ? p->fd : ARES_SOCKET_BAD;
  ares_socket_t w = (status < 0 || (events & UV_WRITABLE)) ? p->fd : ARES_SOCKET_BAD;
  ares_process_fd(ch->ares, r, w);
  chan_after_process(ch);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable) {
  dns_chan *ch = data;
  dns_poll **pp = &ch->polls, *p = NULL;
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->fd == fd) {
      p = *pp;
      break;
    }
  if (readable || writable) {
    if (!p) {
      p = calloc(1, sizeof *p);
      if (!p) {
        cl_log(CL_LOG_ERROR, "dns", NULL, "out of memory watching a DNS socket");
        return; /* the query then ends by its timeout */
      }
      int r = uv_poll_init_socket(ch->loop, &p->h, fd);
      if (r) {
        cl_log(CL_LOG_ERROR, "dns", NULL, "cannot watch DNS socket %d: %s", (int)fd, uv_strerror(r));
        free(p);
        return;
      }
      p->h.data = p;
      p->ch = ch;
      p->fd = fd;
      p->next = ch->polls;
      ch->polls = p;
      ch->handles++;
    }
    uv_poll_start(&p->h, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), poll_cb);
  } else if (p) {
    *pp = p->next;
    poll_release(p);
  }
}

static void timer_cb(uv_timer_t *t) {
  dns_chan *ch = t->data;
  if (!ch->destroyed) ares_process_fd(ch->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  chan_after_process(ch);
}

static void rearm(dns_chan *ch) {
  if (ch->timer_closing || uv_is_closing((uv_handle_t *)&ch->timer)) return;
  if (ch->done_head) {
    uv_timer_start(&ch->timer, timer_cb, 0, 0);
    return;
  }
  if (ch->destroyed) {
    uv_timer_stop(&ch->timer);
    return;
  }
  struct timeval tv;
  if (ares_timeout(ch->ares, NULL, &tv)) {
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
    uv_timer_start(&ch->timer, timer_cb, ms, 0);
  } else {
    uv_timer_stop(&ch->timer);
  }
}

/* ---- answers ------------------------------------------------------------------------ */

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
  (void)timeouts;
  dns_query *q = arg;
  dns_chan *ch = q->ch;
  q->status = status;
  if (status == ARES_SUCCESS && abuf && alen > 0) {
    q->abuf = malloc((size_t)alen);
    if (q->abuf) {
      memcpy(q->abuf, abuf, (size_t)alen);
      q->alen = alen;
    } else {
      q->status = ARES_ENOMEM;
    }
  }
  ch->pending--;
  q->next = NULL;
  if (ch->done_tail)
    ch->done_tail->next = q;
  else
    ch->done_head = q;
  ch->done_tail = q;
}

static void query_free(dns_query *q) {
  free(q->abuf);
  free(q->name);
  free(q);
}

static int push_hostent(lua_State *L, struct hostent *he) {
  lua_newtable(L);
  char buf[INET6_ADDRSTRLEN];
  int n = 0;
  for (char **a = he->h_addr_list; a && *a; a++)
    if (inet_ntop(he->h_addrtype, *a, buf, sizeof buf)) {
      lua_pushstring(L, buf);
      lua_rawseti(L, -2, ++n);
    }
  return 1;
}

/* Leaves the Lua callback's arguments on the stack; returns how many. */
static int push_result(lua_State *L, dns_query *q) {
  if (q->status != ARES_SUCCESS) return push_error(L, q->status, q->name, q->qtype);
  int st;
  if (q->qtype == 33) {
    struct ares_srv_reply *srv = NULL;
    st = ares_parse_srv_reply(q->abuf, q->alen, &srv);
    if (st != ARES_SUCCESS) return push_error(L, st, q->name, q->qtype);
    lua_newtable(L);
    int n = 0;
    for (struct ares_srv_reply *s = srv; s; s = s->next) {
      lua_createtable(L, 0, 4);
      lua_pushstring(L, s->host);
      lua_setfield(L, -2, "target");
      lua_pushinteger(L, s->port);
      lua_setfield(L, -2, "port");
      lua_pushinteger(L, s->priority);
      lua_setfield(L, -2, "priority");
      lua_pushinteger(L, s->weight);
      lua_setfield(L, -2, "weight");
      lua_rawseti(L, -2, ++n);
    }
    ares_free_data(srv);
    return 1;
  }
  struct hostent *he = NULL;
  if (q->qtype == 1)
    st = ares_parse_a_reply(q->abuf, q->alen, &he, NULL, NULL);
  else
    st = ares_parse_aaaa_reply(q->abuf, q->alen, &he, NULL, NULL);
  if (st != ARES_SUCCESS) return push_error(L, st, q->name, q->qtype);
  push_hostent(L, he);
  ares_free_hostent(he);
  return 1;
}

static void chan_destroy(dns_chan *ch) {
  if (ch->destroyed) return;
  ch->destroyed = 1;
  /* answers every pending query with ARES_EDESTRUCTION and closes its sockets */
  ares_destroy(ch->ares);
  ch->ares = NULL;
}

static void dispatch(dns_chan *ch) {
  if (ch->dispatching) return;
  ch->dispatching = 1;
  lua_State *L = ch->L;
  while (ch->done_head) {
    dns_query *q = ch->done_head;
    ch->done_head = q->next;
    if (!ch->done_head) ch->done_tail = NULL;
    if (!ch->in_gc) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, q->cb_ref);
      luaL_unref(L, LUA_REGISTRYINDEX, q->cb_ref);
      int n = push_result(L, q);
      cl_lua_pcall(L, n, 0, "dns callback");
    }
    query_free(q);
  }
  ch->dispatching = 0;
  /* a callback closed the channel: c-ares could not be destroyed under itself */
  if (ch->closed && !ch->destroyed) {
    chan_destroy(ch);
    dispatch(ch);
  }
}

static void chan_after_process(dns_chan *ch) {
  dispatch(ch);
  if (!ch->in_gc && ch->pending == 0 && !ch->done_head && ch->self_ref != LUA_NOREF) {
    luaL_unref(ch->L, LUA_REGISTRYINDEX, ch->self_ref);
    ch->self_ref = LUA_NOREF;
  }
  if (ch->destroyed && !ch->done_head && !ch->dispatching) {
    if (release_handle((uv_handle_t *)&ch->timer, &ch->timer_closing, timer_closed)) {
      timer_closed((uv_handle_t *)&ch->timer);
      return; /* ch may be gone */
    }
  } else {
    rearm(ch);
  }
}

static void chan_maybe_free(dns_chan *ch) {
  if (ch->handles > 0 || !ch->destroyed) return;
  if (ch->box) *ch->box = NULL;
  free(ch);
}

/* ---- Lua API -------------------------------------------------------------------------- */

static dns_chan *check_chan(lua_State *L, int idx) {
  dns_chan **box = luaL_checkudata(L, idx, CHAN_MT);
  if (!*box || (*box)->closed) luaL_argerror(L, idx, "DNS channel is closed");
  return *box;
}

static lua_Integer opt_int_field(lua_State *L, int t, const char *k, lua_Integer dflt, lua_Integer min,
                                 lua_Integer max) {
  lua_getfield(L, t, k);
  lua_Integer v = dflt;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "bad argument #1 to 'channel' (field '%s': number expected, got %s)", k, luaL_typename(L, -1));
    v = lua_tointeger(L, -1);
    if (v < min || v > max)
      luaL_error(L, "bad argument #1 to 'channel' (field '%s': must be %d..%d)", k, (int)min, (int)max);
  }
  lua_pop(L, 1);
  return v;
}

/* channel{ servers = "127.0.0.1:5353[,host:port...]", timeout = ms per try, tries = n } */
static int l_channel(lua_State *L) {
  if (lua_isnoneornil(L, 1))
    lua_newtable(L);
  else
    luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer timeout = opt_int_field(L, 1, "timeout", 2000, 1, 600000);
  lua_Integer tries = opt_int_field(L, 1, "tries", 2, 1, 10);
  lua_getfield(L, 1, "servers");
  const char *servers = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "bad argument #1 to 'channel' (field 'servers': string expected, got %s)",
                        luaL_typename(L, -1));
    servers = lua_tostring(L, -1);
  }

  dns_chan *ch = calloc(1, sizeof *ch);
  if (!ch) return luaL_error(L, "out of memory");
  ch->L = luv_state(L);
  ch->loop = luv_loop(L);
  ch->self_ref = LUA_NOREF;

  struct ares_options o;
  memset(&o, 0, sizeof o);
  o.timeout = (int)timeout;
  o.tries = (int)tries;
  o.sock_state_cb = sock_state_cb;
  o.sock_state_cb_data = ch;
  int st = ares_init_options(&ch->ares, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
  if (st != ARES_SUCCESS) {
    free(ch);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", status_name(st), ares_strerror(st));
    lua_pushstring(L, status_name(st));
    return 3;
  }
  if (servers) {
    st = ares_set_servers_ports_csv(ch->ares, servers);
    if (st != ARES_SUCCESS) {
      ares_destroy(ch->ares);
      free(ch);
      return luaL_error(L, "bad argument #1 to 'channel' (field 'servers': %s: '%s', expected host:port[,host:port])",
                        ares_strerror(st), servers);
    }
  }
  uv_timer_init(ch->loop, &ch->timer);
  ch->timer.data = ch;
  ch->handles = 1;

  dns_chan **box = lua_newuserdata(L, sizeof *box);
  *box = ch;
  ch->box = box;
  luaL_getmetatable(L, CHAN_MT);
  lua_setmetatable(L, -2);
  return 1;
}

static int qtype_of(lua_State *L, int idx) {
  static const char *const names[] = {"A", "AAAA", "SRV", NULL};
  static const int types[] = {1, 28, 33};
  return types[luaL_checkoption(L, idx, NULL, names)];
}

/* ch:query("SRV"|"A"|"AAAA", name, function(result | nil, err, code) end [, search]) */
static int l_query(lua_State *L) {
  dns_chan *ch = check_chan(L, 1);
  int qtype = qtype_of(L, 2);
  size_t len;
  const char *name = luaL_checklstring(L, 3, &len);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  int search = lua_toboolean(L, 5);
  if (len == 0) return luaL_argerror(L, 3, "empty name");

  dns_query *q = calloc(1, sizeof *q);
  if (q) q->name = strdup(name);
  if (!q || !q->name) {
    free(q);
    return luaL_error(L, "out of memory");
  }
  q->ch = ch;
  q->qtype = qtype;
  lua_pushvalue(L, 4);
  q->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (ch->self_ref == LUA_NOREF) {
    lua_pushvalue(L, 1);
    ch->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  ch->pending++;
  if (search)
    ares_search(ch->ares, name, 1 /* C_IN */, qtype, on_answer, q);
  else
    ares_query(ch->ares, name, 1 /* C_IN */, qtype, on_answer, q);
  /* an answer c-ares gave at once waits for the loop like any other */
  rearm(ch);
  return 0;
}

static int l_pending(lua_State *L) {
  dns_chan **box = luaL_checkudata(L, 1, CHAN_MT);
  lua_pushinteger(L, *box ? (*box)->pending : 0);
  return 1;
}

/* Pending queries are answered with ECANCELLED, from the loop. */
static int l_close(lua_State *L) {
  dns_chan **box = luaL_checkudata(L, 1, CHAN_MT);
  dns_chan *ch = *box;
  if (!ch || ch->closed) return 0;
  ch->closed = 1;
  if (ch->dispatching) return 0; /* dispatch() finishes the job */
  chan_destroy(ch);
  if (ch->done_head)
    rearm(ch); /* the cancelled callbacks run from the loop, not from inside close() */
  else
    chan_after_process(ch);
  return 0;
}

static int l_gc(lua_State *L) {
  dns_chan **box = luaL_checkudata(L, 1, CHAN_MT);
  dns_chan *ch = *box;
  if (!ch) return 0;
  *box = NULL;
  ch->box = NULL;
  ch->in_gc = 1;
  ch->closed = 1;
  chan_destroy(ch);
  chan_after_process(ch);
  return 0;
}

static int l_tostring(lua_State *L) {
  dns_chan **box = luaL_checkudata(L, 1, CHAN_MT);
  lua_pushfstring(L, "dns channel (%s)", *box && !(*box)->closed ? "open" : "closed");
  return 1;
}

int luaopen_clusterlua_c_dns(lua_State *L) {
  static int lib_ready;
  if (!lib_ready) {
    int st = ares_library_init(ARES_LIB_INIT_ALL);
    if (st != ARES_SUCCESS) return luaL_error(L, "c-ares: %s", ares_strerror(st));
    lib_ready = 1;
  }
  static const luaL_Reg methods[] = {
      {"query", l_query}, {"pending", l_pending}, {"close", l_close}, {NULL, NULL},
  };
  if (luaL_newmetatable(L, CHAN_MT)) {
    lua_newtable(L);
    luaL_register(L, NULL, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, l_channel);
  lua_setfield(L, -2, "channel");
  lua_pushstring(L, ares_version(NULL));
  lua_setfield(L, -2, "cares_version");
  return 1;
}
