/* See world.h. */
#include "rehearse/world.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/lua_lag_check.h"
#include "node/roles.h"
#include "node/state_json.h"
#include "rehearse/rng.h"
#include "transport/watch.h"

enum {
  EV_MSG = 1, /* an election frame */
  EV_USER,    /* a Lua message (clusterlua.send/call on the control path) */
  EV_HB,      /* a transport heartbeat (pong: the answer) */
  EV_DIAL,    /* from dials to */
  EV_LUA,     /* node from's Lua runs its inbox and timers */
  EV_RESTART, /* node from's process starts again */
  EV_LAG,     /* node from's Lua-lag check ticks */
  EV_PONG,    /* node from's Lua answers ping arg */
  EV_PEERDOWN, /* node from, paused when its connection to `to` closed, hears of it */
  EV_UDP,      /* a datagram from `from` reaches `to`'s socket on port arg */
};

typedef struct ev {
  uint64_t at, seq;
  int kind, from, to, pong;
  uint64_t epoch, arg;
  uint8_t *data;
  size_t len;
} ev;

typedef struct pend_req {
  uint64_t id, lua_id;
} pend_req;

typedef struct rnode {
  struct rh_world *w;
  int i;
  char name[CL_EL_NAME_MAX + 1], shortn[CL_EL_NAME_MAX + 1], addr[CL_EL_NAME_MAX + 1];
  char id[CL_EL_ID_MAX + 1];
  char roles[256];
  char cluster[256];
  uint32_t flags;
  int running;  /* the process exists (its Lua state too) */
  int started;  /* its Lua started the node: the election runs */
  int left;     /* it exited on purpose */
  int mesh;     /* transport.mesh: learns its peers' peers */
  uint64_t boots;
  cl_el *el;
  cl_eldrv drv;
  cl_eldrv_io io;
  uint64_t next_dl; /* ms, cached after each step */
  uint32_t det_hb_ms, det_timeout_ms;
  uint32_t watchers; /* transport.watchers: how many ring successors it watches */
  /* disk */
  uint8_t *disk;
  size_t disk_len;
  uint64_t disk_term; /* the term in the state file on disk */
  /* RULE E2: whom it joined in a term (index + 1), a ring keyed by term */
  uint64_t joined[64], joined_term[64];
  uint64_t voted_max; /* the highest term of a durable vote it sent (RULE E15) */
  int disk_fail;
  uint64_t disk_slow_ms;
  const char *crash_why;
  int in_lua;                /* its Lua state is running: it must not be closed now */
  const char *crash_pending; /* a crash that waits for its Lua to return */
  /* checks */
  uint64_t max_term, acc_t, acc_v, app_t, app_v;
  int acc_c;
  cl_el_vconfig prev_cc, prev_ac;
  /* timing */
  /* paused_until: the whole process is stopped (SIGSTOP); ctl_until: its control loop
   * waits for a slow write to disk (Lua runs on); lua_until: its Lua is stalled */
  uint64_t paused_until, ctl_until, lua_until, lua_dl_us;
  int lua_pending;
  rh_lua_msg *inbox, *inbox_tail;
  cl_lag lag;
  pend_req reqs[64];
  int udp_ports[8]; /* bound UDP ports (0: free slot) */
  /* elections' imn list */
  char *imn_buf;
  const char *imn[CL_EL_MAX_INITIAL];
  size_t n_imn;
} rnode;

typedef struct kv { /* (term, version) accepted: its hash and who has it on disk */
  uint64_t t, v, mask;
  uint8_t h[32];
} kv;

typedef struct cv { /* version committed: in which term, which state, its metadata's version */
  uint64_t v, t, meta_v;
  uint8_t h[32];
} cv;

struct rh_world {
  rh_params p;
  rh_lua_ops ops;
  rh_rng r;
  uint64_t now, seq, steps, next_req;
  int n;
  rnode nodes[RH_MAX_NODES];
  uint8_t conn[RH_MAX_NODES][RH_MAX_NODES], cut[RH_MAX_NODES][RH_MAX_NODES];
  uint8_t want[RH_MAX_NODES][RH_MAX_NODES], refuse[RH_MAX_NODES][RH_MAX_NODES];
  /* peers learned through the mesh (transport.mesh): dialled like wanted ones */
  uint8_t learned[RH_MAX_NODES][RH_MAX_NODES];
  uint64_t epoch[RH_MAX_NODES][RH_MAX_NODES];
  /* each node's earliest detector deadline (ms), recomputed only when a detector of its
   * row changed: the run loop asks for the earliest one after every event */
  uint64_t det_row_min[RH_MAX_NODES];
  uint8_t det_row_dirty[RH_MAX_NODES];
  /* each link draws its delays, losses and dial times from its own generator, so the
   * order in which links are used within one instant does not change the run */
  rh_rng link_rng[RH_MAX_NODES][RH_MAX_NODES];
  cl_det det[RH_MAX_NODES][RH_MAX_NODES];
  ev *evs;
  size_t nev, capev;
  char **leader_of_term;
  size_t cap_terms;
  kv *acc;
  size_t n_acc, cap_acc;
  cv *com;
  size_t n_com, cap_com;
  rh_record *recs;
  size_t n_recs, cap_recs;
  char why[1024];
  cl_el_state scratch;
};

/* ------------------------------------------------------------ history */

static char *dup0(const char *s) { return s ? strdup(s) : NULL; }

void rh_world_record(rh_world *w, int node, const char *kind, const char *s1, const char *s2, int64_t n1,
                     int64_t n2) {
  if (w->n_recs == w->cap_recs) {
    size_t cap = w->cap_recs ? w->cap_recs * 2 : 256;
    rh_record *nr = realloc(w->recs, cap * sizeof *nr);
    if (!nr) return;
    w->recs = nr;
    w->cap_recs = cap;
  }
  rh_record *r = &w->recs[w->n_recs++];
  memset(r, 0, sizeof *r);
  r->t_us = w->now;
  r->node = node;
  snprintf(r->kind, sizeof r->kind, "%s", kind);
  r->s1 = dup0(s1);
  r->s2 = dup0(s2);
  r->n1 = n1;
  r->n2 = n2;
}

size_t rh_world_records(const rh_world *w, const rh_record **out) {
  *out = w->recs;
  return w->n_recs;
}

static void violation(rh_world *w, const char *fmt, ...) {
  if (w->why[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->why, sizeof w->why, fmt, ap);
  va_end(ap);
  rh_world_record(w, -1, "violation", w->why, NULL, 0, 0);
}

void rh_world_fail(rh_world *w, const char *why) { violation(w, "%s", why); }
const char *rh_world_why(const rh_world *w) { return w->why; }

/* ------------------------------------------------------------- events */

/* Ties are broken by kind and link before the order of pushing: a node's Lua may ask for
 * several peers at once in an order that pairs() chose (which differs from one process to
 * the next), and the run must not depend on it. Frames of one link stay in order. */
static int ev_less(const ev *a, const ev *b) {
  if (a->at != b->at) return a->at < b->at;
  if (a->kind != b->kind) return a->kind < b->kind;
  if (a->from != b->from) return a->from < b->from;
  if (a->to != b->to) return a->to < b->to;
  return a->seq < b->seq;
}

static void ev_push(rh_world *w, ev e) {
  if (w->nev == w->capev) {
    size_t cap = w->capev ? w->capev * 2 : 1024;
    ev *ne = realloc(w->evs, cap * sizeof *ne);
    if (!ne) {
      free(e.data);
      return;
    }
    w->evs = ne;
    w->capev = cap;
  }
  e.seq = w->seq++;
  size_t i = w->nev++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!ev_less(&e, &w->evs[p])) break;
    w->evs[i] = w->evs[p];
    i = p;
  }
  w->evs[i] = e;
}

static ev ev_pop(rh_world *w) {
  ev top = w->evs[0];
  ev last = w->evs[--w->nev];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const ev *best = &last;
    if (l < w->nev && ev_less(&w->evs[l], best)) m = l, best = &w->evs[l];
    if (r < w->nev && ev_less(&w->evs[r], best)) m = r;
    if (m == i) break;
    w->evs[i] = w->evs[m];
    i = m;
  }
  if (w->nev) w->evs[i] = last;
  return top;
}

static void push_simple(rh_world *w, uint64_t at, int kind, int from, int to, uint64_t epoch, uint64_t arg) {
  ev e = {0};
  e.at = at;
  e.kind = kind;
  e.from = from;
  e.to = to;
  e.epoch = epoch;
  e.arg = arg;
  ev_push(w, e);
}

/* ------------------------------------------------------------- world */

rh_world *rh_world_new(const rh_params *p, const rh_lua_ops *ops) {
  rh_world *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->p = *p;
  w->ops = *ops;
  rh_rng_seed(&w->r, p->seed);
  for (int a = 0; a < RH_MAX_NODES; a++)
    for (int b = 0; b < RH_MAX_NODES; b++)
      rh_rng_seed(&w->link_rng[a][b], p->seed * 0x100000001b3ull ^ ((uint64_t)a << 32 | (uint64_t)b) ^ 0x5bd1e995u);
  cl_el_state_init(&w->scratch);
  return w;
}

static void free_inbox(rnode *n) {
  while (n->inbox) {
    rh_lua_msg *m = n->inbox;
    n->inbox = m->next;
    free(m->name);
    free(m->a);
    free(m);
  }
  n->inbox_tail = NULL;
}

static void stop_election(rnode *n) {
  if (!n->el) return;
  cl_eldrv_free(&n->drv);
  n->el = NULL;
  n->next_dl = UINT64_MAX;
}

void rh_world_free(rh_world *w) {
  if (!w) return;
  for (int i = 0; i < w->n; i++) {
    rnode *n = &w->nodes[i];
    if (n->running) w->ops.close(w->ops.ud, w, i);
    stop_election(n);
    free_inbox(n);
    free(n->disk);
    free(n->imn_buf);
    cl_el_vconfig_free(&n->prev_cc);
    cl_el_vconfig_free(&n->prev_ac);
  }
  for (size_t i = 0; i < w->nev; i++) free(w->evs[i].data);
  free(w->evs);
  for (size_t i = 0; i < w->cap_terms; i++) free(w->leader_of_term[i]);
  free(w->leader_of_term);
  free(w->acc);
  free(w->com);
  for (size_t i = 0; i < w->n_recs; i++) {
    free(w->recs[i].s1);
    free(w->recs[i].s2);
  }
  free(w->recs);
  cl_el_state_clear(&w->scratch);
  free(w);
}

int rh_world_add(rh_world *w, const char *full, const char *shortn) {
  if (w->n >= RH_MAX_NODES) return -1;
  /* cut to the election's size, two long names could become one */
  if (strlen(full) > CL_EL_NAME_MAX) return -2;
  int i = w->n++;
  rnode *n = &w->nodes[i];
  memset(n, 0, sizeof *n);
  snprintf(n->name, sizeof n->name, "%s", full);
  snprintf(n->shortn, sizeof n->shortn, "%s", shortn);
  const char *at = strchr(full, '@');
  snprintf(n->addr, sizeof n->addr, "%s", at ? at + 1 : full);
  n->next_dl = UINT64_MAX;
  n->lua_dl_us = UINT64_MAX;
  return i;
}

int rh_world_count(const rh_world *w) { return w->n; }
const char *rh_world_name(const rh_world *w, int i) { return w->nodes[i].name; }
const char *rh_world_short(const rh_world *w, int i) { return w->nodes[i].shortn; }
uint64_t rh_world_now_us(const rh_world *w) { return w->now; }
uint64_t rh_world_rand(rh_world *w, uint64_t n) { return rh_below(&w->r, n); }
uint64_t rh_world_steps(const rh_world *w) { return w->steps; }
int rh_world_is_running(const rh_world *w, int i) { return w->nodes[i].running; }
int rh_world_has_left(const rh_world *w, int i) { return w->nodes[i].left; }
const cl_el *rh_node_el(const rh_world *w, int i) { return w->nodes[i].el; }

int rh_world_index(const rh_world *w, const char *name) {
  if (!name) return -1;
  for (int i = 0; i < w->n; i++)
    if (strcmp(w->nodes[i].name, name) == 0) return i;
  for (int i = 0; i < w->n; i++)
    if (strcmp(w->nodes[i].shortn, name) == 0) return i;
  /* a strategy may name a node with another host or port than the rehearsal gave it
   * (a non-static topology cannot tell the rehearsal its names): the short name decides */
  const char *at = strchr(name, '@');
  if (at) {
    size_t len = (size_t)(at - name);
    for (int i = 0; i < w->n; i++)
      if (strlen(w->nodes[i].shortn) == len && strncmp(w->nodes[i].shortn, name, len) == 0) return i;
  }
  return -1;
}

static int index_by_id(const rh_world *w, const char *id) {
  for (int i = 0; i < w->n; i++)
    if (w->nodes[i].id[0] && strcmp(w->nodes[i].id, id) == 0) return i;
  return -1;
}

/* ------------------------------------------------------------- Lua inbox */

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t m = a > b ? a : b;
  return m > c ? m : c;
}

/* until when node i's control loop does nothing: stopped, or waiting for its disk */
static uint64_t ctl_until(const rh_world *w, int i) {
  const rnode *n = &w->nodes[i];
  return n->paused_until > n->ctl_until ? n->paused_until : n->ctl_until;
}

static void schedule_lua(rh_world *w, int i) {
  rnode *n = &w->nodes[i];
  if (n->lua_pending || !n->running) return;
  n->lua_pending = 1;
  push_simple(w, max3(w->now + w->p.lua_delay_us, n->paused_until, n->lua_until), EV_LUA, i, i, n->boots, 0);
}

static rh_lua_msg *lua_msg(rh_world *w, int i, const char *kind, const char *name) {
  rnode *n = &w->nodes[i];
  if (!n->running) return NULL;
  rh_lua_msg *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  snprintf(m->kind, sizeof m->kind, "%s", kind);
  m->name = dup0(name);
  if (n->inbox_tail)
    n->inbox_tail->next = m;
  else
    n->inbox = m;
  n->inbox_tail = m;
  schedule_lua(w, i);
  return m;
}

static void msg_bytes(rh_lua_msg *m, const void *p, size_t len) {
  if (!m) return;
  m->a = malloc(len + 1);
  if (!m->a) return;
  if (len) memcpy(m->a, p, len);
  m->a[len] = 0;
  m->a_len = len;
  m->has_a = 1;
}

/* ------------------------------------------------------------- checks */

static void set_leader(rh_world *w, uint64_t term, const char *name) {
  if (term >= w->cap_terms) {
    size_t cap = w->cap_terms ? w->cap_terms : 64;
    while (cap <= term) cap *= 2;
    char **nl = realloc(w->leader_of_term, cap * sizeof *nl);
    if (!nl) return;
    memset(nl + w->cap_terms, 0, (cap - w->cap_terms) * sizeof *nl);
    w->leader_of_term = nl;
    w->cap_terms = cap;
  }
  if (!w->leader_of_term[term])
    w->leader_of_term[term] = strdup(name);
  else if (strcmp(w->leader_of_term[term], name))
    violation(w, "two masters in term %llu: %s and %s", (unsigned long long)term, w->leader_of_term[term], name);
}

static kv *acc_get(rh_world *w, uint64_t t, uint64_t v, int create) {
  for (size_t k = 0; k < w->n_acc; k++)
    if (w->acc[k].t == t && w->acc[k].v == v) return &w->acc[k];
  if (!create) return NULL;
  if (w->n_acc == w->cap_acc) {
    size_t cap = w->cap_acc ? w->cap_acc * 2 : 256;
    kv *na = realloc(w->acc, cap * sizeof *na);
    if (!na) return NULL;
    w->acc = na;
    w->cap_acc = cap;
  }
  kv *e = &w->acc[w->n_acc++];
  memset(e, 0, sizeof *e);
  e->t = t;
  e->v = v;
  return e;
}

static int quorum_of_mask(rh_world *w, const cl_el_vconfig *c, uint64_t mask) {
  if (c->n == 0) return 0;
  uint32_t k = 0;
  for (uint32_t i = 0; i < c->n; i++) {
    int j = index_by_id(w, c->ids[i]);
    if (j >= 0 && (mask >> j & 1)) k++;
  }
  return k >= cl_el_quorum(c->n);
}

static void check_committed(rh_world *w, int i, const cl_el_state *st) {
  uint8_t h[32];
  cl_el_state_hash(st, h);
  for (size_t k = 0; k < w->n_com; k++) {
    cv *c = &w->com[k];
    if (c->v == st->version) {
      if (c->t != st->term || memcmp(c->h, h, 32))
        violation(w, "%s committed version %llu in term %llu, another state than the one committed as version %llu "
                     "in term %llu: a committed state was lost",
                  w->nodes[i].name, (unsigned long long)st->version, (unsigned long long)st->term,
                  (unsigned long long)c->v, (unsigned long long)c->t);
      return;
    }
    if (c->v < st->version && c->t > st->term)
      violation(w, "%s committed version %llu in term %llu after version %llu had been committed in term %llu: "
                   "a committed state was lost",
                w->nodes[i].name, (unsigned long long)st->version, (unsigned long long)st->term,
                (unsigned long long)c->v, (unsigned long long)c->t);
    /* a metadata update committed at meta_v is in every later committed state: a later
     * state whose metadata is older has lost it */
    if ((c->v < st->version && c->meta_v > st->meta_version) || (c->v > st->version && c->meta_v < st->meta_version))
      violation(w, "%s committed version %llu with metadata of version %llu, but version %llu had metadata of version "
                   "%llu: a committed update was lost",
                w->nodes[i].name, (unsigned long long)st->version, (unsigned long long)st->meta_version,
                (unsigned long long)c->v, (unsigned long long)c->meta_v);
  }
  if (w->n_com == w->cap_com) {
    size_t cap = w->cap_com ? w->cap_com * 2 : 256;
    cv *nc = realloc(w->com, cap * sizeof *nc);
    if (!nc) return;
    w->com = nc;
    w->cap_com = cap;
  }
  cv *c = &w->com[w->n_com++];
  c->v = st->version;
  c->t = st->term;
  c->meta_v = st->meta_version;
  memcpy(c->h, h, 32);
}

/* after every step of node i */
static void check_node(rh_world *w, int i) {
  rnode *n = &w->nodes[i];
  cl_el *el = n->el;
  if (!el) return;
  uint64_t term = cl_el_term(el);
  if (term < n->max_term)
    violation(w, "%s: its term went back from %llu to %llu", n->name, (unsigned long long)n->max_term,
              (unsigned long long)term);
  n->max_term = term;
  cl_el_mode mode = cl_el_get_mode(el);
  if (mode == CL_EL_LEADER) set_leader(w, term, n->name);
  const cl_el_state *acc = cl_el_accepted(el);
  int accc = cl_el_accepted_is_committed(el);
  if (acc->term > 0 && (acc->term != n->acc_t || acc->version != n->acc_v)) {
    uint8_t h[32];
    cl_el_state_hash(acc, h);
    kv *e = acc_get(w, acc->term, acc->version, 0);
    if (!e) {
      e = acc_get(w, acc->term, acc->version, 1);
      if (e) memcpy(e->h, h, 32);
    } else if (memcmp(e->h, h, 32)) {
      violation(w, "(term %llu, version %llu) names two different states (seen on %s)", (unsigned long long)acc->term,
                (unsigned long long)acc->version, n->name);
    }
  }
  /* a commit needs a quorum of both configurations with the state on disk: a master a
   * minority elected could never get there */
  if (mode == CL_EL_LEADER && accc && !n->acc_c && acc->term == term) {
    kv *e = acc_get(w, acc->term, acc->version, 0);
    uint64_t mask = e ? e->mask : 0;
    if (!quorum_of_mask(w, &acc->committed_config, mask) || !quorum_of_mask(w, &acc->accepted_config, mask))
      violation(w, "%s committed (term %llu, version %llu) without a quorum of its voting configuration having it on "
                   "disk",
                n->name, (unsigned long long)acc->term, (unsigned long long)acc->version);
  }
  n->acc_t = acc->term;
  n->acc_v = acc->version;
  n->acc_c = accc;
  const cl_el_state *app = cl_el_committed(el);
  if (app->version != n->app_v || app->term != n->app_t) {
    if (app->version < n->app_v)
      violation(w, "%s applied version %llu after %llu", n->name, (unsigned long long)app->version,
                (unsigned long long)n->app_v);
    n->app_v = app->version;
    n->app_t = app->term;
    if (app->term > 0) check_committed(w, i, app);
  }
}

/* quorum_lost is justified only when the voting nodes this node heard from within the
 * failure detector's timeout (itself included) are not a quorum: one-way partitions and
 * loss count, since what matters is what arrived */
static void check_quorum_lost(rh_world *w, int i) {
  rnode *n = &w->nodes[i];
  uint64_t now_ms = w->now / RH_US, mask = 1ull << i;
  for (int j = 0; j < w->n; j++) {
    if (j == i || !w->conn[i][j]) continue;
    const cl_det *d = &w->det[i][j];
    if (now_ms <= d->last_rx_ms + n->det_timeout_ms) mask |= 1ull << j;
  }
  const cl_el_state *acc = cl_el_accepted(n->el);
  const cl_el_vconfig *cc = cl_el_accepted_is_committed(n->el) ? &acc->accepted_config : &acc->committed_config;
  if (quorum_of_mask(w, cc, mask) && quorum_of_mask(w, &acc->accepted_config, mask))
    violation(w, "%s: quorum_lost although it heard from a quorum of its voting configuration within the failure "
                 "detector's timeout (%u ms)",
              n->name, n->det_timeout_ms);
}

/* ---------------------------------------------------------- the driver's io */

/* the driver's ud: the node, which knows its world */
typedef struct rnode io_ud;

static uint64_t io_now(void *ud) {
  io_ud *u = ud;
  return u->w->now / RH_US;
}

static int io_persist(void *ud, cl_el_persist_kind kind, const uint8_t *data, size_t len) {
  (void)kind;
  io_ud *u = ud;
  rh_world *w = u->w;
  rnode *n = &w->nodes[u->i];
  if (n->disk_fail) {
    n->disk_fail = 0;
    n->crash_why = "persist failed (EIO)";
    return -1;
  }
  uint64_t t;
  int c;
  char err[160];
  if (cl_el_persist_decode(data, len, &t, &w->scratch, &c, err, sizeof err)) {
    violation(w, "%s persisted an unreadable state file: %s", n->name, err);
    return 0;
  }
  if (w->scratch.term > 0) {
    kv *m = acc_get(w, w->scratch.term, w->scratch.version, 0);
    if (!m) {
      m = acc_get(w, w->scratch.term, w->scratch.version, 1);
      if (m) cl_el_state_hash(&w->scratch, m->h);
    }
    if (m) m->mask |= 1ull << u->i;
  }
  cl_el_state_clear(&w->scratch);
  uint8_t *d = malloc(len ? len : 1);
  if (!d) return -1;
  memcpy(d, data, len);
  free(n->disk);
  n->disk = d;
  n->disk_len = len;
  n->disk_term = t;
  if (n->disk_slow_ms) {
    /* a slow fsync holds the node's loop */
    uint64_t until = w->now + n->disk_slow_ms * RH_US;
    if (until > n->ctl_until) n->ctl_until = until;
  }
  return 0;
}

static void deliver_later(rh_world *w, int kind, int from, int to, const uint8_t *data, size_t len) {
  if (!w->conn[from][to]) return;
  cl_det_sent(&w->det[from][to], w->now / RH_US); /* as the transport does: a frame is proof of life */
  w->det_row_dirty[from] = 1;
  if (w->cut[from][to] == 2) return;
  rh_rng *r = &w->link_rng[from][to];
  int copies = 1 + (rh_chance(r, w->p.p_dup) ? 1 : 0);
  if (rh_chance(r, w->p.p_drop)) copies--;
  /* a frame sent while the sender's loop waits for its disk (a slow write earlier in the
   * same step) leaves once the write is done */
  uint64_t base = ctl_until(w, from) > w->now ? ctl_until(w, from) : w->now;
  for (int c = 0; c < copies; c++) {
    ev e = {0};
    e.at = base + rh_range(r, w->p.delay_lo_us, w->p.delay_hi_us);
    e.kind = kind;
    e.from = from;
    e.to = to;
    e.epoch = w->epoch[from][to];
    e.data = malloc(len ? len : 1);
    if (!e.data) return;
    if (len) memcpy(e.data, data, len);
    e.len = len;
    ev_push(w, e);
  }
}

static void io_send(void *ud, const char *to, const uint8_t *data, size_t len) {
  io_ud *u = ud;
  int j = index_by_id(u->w, to);
  if (j < 0 || j == u->i) return;
  /* RULE E10, the glue's: a vote (START_JOIN = 3, JOIN = 4) leaves only once the term it
   * is for is on disk. The wire layout as spec/sim/sim.c reads it: type at byte 4, the
   * cluster id's length at 5-6, the term (8 bytes, little-endian) after the id. RULE
   * E15: a JOIN whose last byte is 0 is lazy: it counts nowhere, and is not a vote. */
  if (len > 7 && (data[4] == 3 || data[4] == 4)) {
    size_t toff = 7 + (size_t)(data[5] | data[6] << 8);
    int lazy = data[4] == 4 && toff + 25 <= len && data[toff + 24] == 0;
    if (toff + 8 <= len && !lazy) {
      uint64_t term = 0;
      for (int b = 0; b < 8; b++) term |= (uint64_t)data[toff + b] << (8 * b);
      if (u->disk_term < term)
        violation(u->w, "%s sent a %s for term %llu before that term was on its disk (the disk holds term %llu)",
                  u->name, data[4] == 4 ? "join" : "start-join", (unsigned long long)term,
                  (unsigned long long)u->disk_term);
      /* a join votes for its receiver; a start-join asks for votes for its sender */
      int target = data[4] == 4 ? j : u->i;
      size_t k = term % 64;
      if (u->joined_term[k] == term && u->joined[k] != (uint64_t)target + 1)
        violation(u->w, "%s voted twice in term %llu (for %s and %s)", u->name, (unsigned long long)term,
                  u->w->nodes[u->joined[k] - 1].name, u->w->nodes[target].name);
      u->joined_term[k] = term;
      u->joined[k] = (uint64_t)target + 1;
      if (term > u->voted_max) u->voted_max = term;
    }
  }
  deliver_later(u->w, EV_MSG, u->i, j, data, len);
}

static const char *peer_name(void *ud, const char *id) {
  rh_world *w = ud;
  int j = index_by_id(w, id);
  return j >= 0 ? w->nodes[j].name : NULL;
}

static void io_event(void *ud, const cl_el_effect *e) {
  io_ud *u = ud;
  rh_world *w = u->w;
  int i = u->i;
  rnode *n = &w->nodes[i];
  switch (e->event) {
  case CL_EL_EV_MASTER_CHANGED: {
    rh_world_record(w, i, "master", e->new_master, e->old_master, (int64_t)e->term, 0);
    rh_lua_msg *m = lua_msg(w, i, "master", e->new_master[0] ? e->new_master : NULL);
    if (m) {
      if (e->old_master[0]) msg_bytes(m, e->old_master, strlen(e->old_master));
      m->b = (double)e->term;
    }
    break;
  }
  case CL_EL_EV_QUORUM_LOST:
  case CL_EL_EV_QUORUM_REGAINED: {
    int lost = e->event == CL_EL_EV_QUORUM_LOST;
    if (lost) check_quorum_lost(w, i);
    rh_world_record(w, i, lost ? "quorum_lost" : "quorum_regained", NULL, NULL, (int64_t)cl_el_term(n->el), 0);
    rh_lua_msg *m = lua_msg(w, i, "quorum", NULL);
    if (m) m->b = lost ? 0 : 1;
    break;
  }
  case CL_EL_EV_STATE_COMMITTED: {
    const cl_el_state *st = cl_el_committed(n->el);
    if (!st) break;
    rh_world_record(w, i, "committed", NULL, NULL, (int64_t)st->term, (int64_t)st->version);
    json_t *j = cl_state_json(n->cluster, st, peer_name, w);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) break;
    /* an uncollected commit is replaced by the newer one: each is a whole state here
     * (a real node sends Lua a change against the state before, node_election.c, and
     * queues every one; cluster.lua takes both) */
    rh_lua_msg *prev = NULL;
    for (rh_lua_msg *q = n->inbox; q; q = q->next)
      if (!strcmp(q->kind, "committed")) prev = q;
    if (prev && prev == n->inbox_tail) {
      free(prev->a);
      prev->a = NULL;
      msg_bytes(prev, s, strlen(s));
      prev->b = (double)st->version;
    } else {
      rh_lua_msg *m = lua_msg(w, i, "committed", NULL);
      msg_bytes(m, s, strlen(s));
      if (m) m->b = (double)st->version;
    }
    free(s);
    break;
  }
  }
}

static void io_log(void *ud, int level, const char *msg) {
  (void)ud, (void)level, (void)msg; /* the timeline shows what the events show */
}

static void io_complete(void *ud, uint64_t req_id, const char *code, const char *msg, uint64_t version) {
  io_ud *u = ud;
  rnode *n = &u->w->nodes[u->i];
  for (size_t k = 0; k < sizeof n->reqs / sizeof *n->reqs; k++) {
    if (n->reqs[k].id != req_id) continue;
    n->reqs[k].id = 0;
    rh_lua_msg *m = lua_msg(u->w, u->i, "done", strcmp(code, "OK") == 0 ? "" : code);
    if (m) {
      msg_bytes(m, msg, strlen(msg));
      m->b = (double)n->reqs[k].lua_id;
      m->c = (double)version;
    }
    return;
  }
}

static void io_rearm(void *ud, uint64_t deadline) {
  (void)ud, (void)deadline; /* the run loop reads each node's deadline after its steps */
}

static const cl_eldrv_io world_io = {.now_ms = io_now, .send = io_send, .persist = io_persist, .event = io_event,
                                     .log = io_log, .complete = io_complete, .rearm = io_rearm};

static void crash(rh_world *w, int i, const char *why);

static void step(rh_world *w, int i, const cl_el_input *in) {
  rnode *n = &w->nodes[i];
  if (!n->el) return;
  n->crash_why = NULL;
  cl_eldrv_input(&n->drv, in);
  w->steps++;
  n->next_dl = n->el ? cl_el_next_deadline(n->el) : UINT64_MAX;
  if (n->crash_why) {
    crash(w, i, n->crash_why);
    return;
  }
  check_node(w, i);
}

/* ---------------------------------------------------------- connections */

static cl_el_node_info info_of(rnode *n) {
  cl_el_node_info inf = {n->id, n->name, n->addr, n->flags, n->roles};
  return inf;
}

static int pausedn(rh_world *w, int i) { return ctl_until(w, i) > w->now; }

static void lua_up(rh_world *w, int i, int j) {
  rh_lua_msg *m = lua_msg(w, i, "up", w->nodes[j].name);
  if (!m) return;
  snprintf(m->id, sizeof m->id, "%s", w->nodes[j].id);
  snprintf(m->roles, sizeof m->roles, "%s", w->nodes[j].roles);
  m->rtt_us = (w->p.delay_lo_us + w->p.delay_hi_us);
  m->incarnation = w->nodes[j].boots;
}

static void lua_down(rh_world *w, int i, int j, const char *reason) {
  rh_lua_msg *m = lua_msg(w, i, "down", w->nodes[j].name);
  msg_bytes(m, reason, strlen(reason));
}

static int wants(const rh_world *w, int a, int b) { return w->want[a][b] || w->learned[a][b]; }

static void schedule_dial(rh_world *w, int a, int b, uint64_t lo_ms, uint64_t hi_ms);

/* the mesh: when a and b connect, each learns the other's connected peers, and the
 * peers of each learn of the newcomer (transport.c: send_peer_list, CL_T_PEERS) */
static void learn(rh_world *w, int a, int k) {
  if (a == k || !w->nodes[a].mesh || wants(w, a, k) || w->refuse[a][k]) return;
  w->learned[a][k] = 1;
  if (!w->conn[a][k]) schedule_dial(w, a, k, 1, 20);
}

static void mesh_up(rh_world *w, int a, int b) {
  for (int k = 0; k < w->n; k++) {
    if (k == a || k == b) continue;
    if (w->conn[b][k]) learn(w, a, k), learn(w, k, a);
    if (w->conn[a][k]) learn(w, b, k), learn(w, k, b);
  }
}

/* What the transport does when a connection comes or goes (transport/watch.h): each
 * node watches its transport.watchers successors on the ring of its connected peers,
 * and the watched side beats to it. The WATCH frame is taken as arriving at once. */
static void rewatch(rh_world *w) {
  const char *names[RH_MAX_NODES];
  uint64_t h[RH_MAX_NODES];
  int idx[RH_MAX_NODES];
  size_t sel[CL_WATCH_MAX];
  uint64_t now = w->now / RH_US;
  for (int a = 0; a < w->n; a++) {
    size_t m = 0;
    for (int b = 0; b < w->n; b++)
      if (b != a && w->conn[a][b]) names[m] = w->nodes[b].name, h[m] = cl_watch_hash(w->nodes[b].name), idx[m++] = b;
    size_t k = cl_watch_pick(names, h, m, w->nodes[a].name, cl_watch_hash(w->nodes[a].name), 1, SIZE_MAX,
                             w->nodes[a].watchers, sel);
    for (size_t i = 0; i < m; i++) {
      int want = 0;
      for (size_t j = 0; j < k; j++) want |= sel[j] == i;
      cl_det *d = &w->det[a][idx[i]];
      if (want != d->watching) {
        cl_det_watch(d, now, want);
        cl_det_beat_for(&w->det[idx[i]][a], want, 0);
        w->det_row_dirty[a] = w->det_row_dirty[idx[i]] = 1;
      }
    }
  }
}

static void connect_pair(rh_world *w, int a, int b) {
  if (w->conn[a][b]) return;
  w->conn[a][b] = w->conn[b][a] = 1;
  uint64_t now = w->now / RH_US;
  cl_det_up(&w->det[a][b], now, w->nodes[a].det_hb_ms, w->nodes[a].det_timeout_ms);
  cl_det_up(&w->det[b][a], now, w->nodes[b].det_hb_ms, w->nodes[b].det_timeout_ms);
  w->det_row_dirty[a] = w->det_row_dirty[b] = 1;
  w->epoch[a][b]++;
  w->epoch[b][a]++;
  rewatch(w);
  lua_up(w, a, b);
  lua_up(w, b, a);
  cl_el_input in = {0};
  in.kind = CL_EL_IN_PEER_UP;
  in.peer = info_of(&w->nodes[b]);
  in.peer_id = w->nodes[b].id;
  step(w, a, &in);
  if (!w->conn[a][b]) return;
  in.peer = info_of(&w->nodes[a]);
  in.peer_id = w->nodes[a].id;
  step(w, b, &in);
  if (w->conn[a][b]) mesh_up(w, a, b);
}

/* after: a range in ms, drawn from the link's own generator */
static void schedule_dial(rh_world *w, int a, int b, uint64_t lo_ms, uint64_t hi_ms) {
  push_simple(w, w->now + rh_range(&w->link_rng[a][b], lo_ms, hi_ms) * RH_US, EV_DIAL, a, b, 0, 0);
}

/* a's connection to b closed: a paused process hears of it when it runs again */
static void peer_down(rh_world *w, int a, int b) {
  if (pausedn(w, a)) {
    push_simple(w, ctl_until(w, a), EV_PEERDOWN, a, b, w->nodes[a].boots, 0);
    return;
  }
  cl_el_input in = {0};
  in.kind = CL_EL_IN_PEER_DOWN;
  in.peer_id = w->nodes[b].id;
  step(w, a, &in);
}

static void disconnect_pair(rh_world *w, int a, int b, const char *reason_a, const char *reason_b) {
  if (!w->conn[a][b]) return;
  w->conn[a][b] = w->conn[b][a] = 0;
  w->det_row_dirty[a] = w->det_row_dirty[b] = 1;
  w->epoch[a][b]++;
  w->epoch[b][a]++;
  rewatch(w);
  if (reason_a) lua_down(w, a, b, reason_a);
  if (reason_b) lua_down(w, b, a, reason_b);
  peer_down(w, a, b);
  peer_down(w, b, a);
  /* the transport keeps re-dialling the peers it wants */
  if (wants(w, a, b)) schedule_dial(w, a, b, 100, 1000);
  if (wants(w, b, a)) schedule_dial(w, b, a, 100, 1000);
}

static void dial(rh_world *w, int a, int b) {
  rnode *na = &w->nodes[a], *nb = &w->nodes[b];
  if (a == b || w->conn[a][b] || !na->started || !wants(w, a, b)) return;
  if (pausedn(w, a)) {
    push_simple(w, ctl_until(w, a), EV_DIAL, a, b, 0, 0);
    return;
  }
  /* refused, lost or unanswered: try again with the transport's backoff */
  if (!nb->started || pausedn(w, b) || w->cut[a][b] || w->cut[b][a] || w->refuse[b][a] || w->refuse[a][b] ||
      strcmp(na->cluster, nb->cluster)) {
    schedule_dial(w, a, b, 200, 1000);
    return;
  }
  connect_pair(w, a, b);
}

/* ---------------------------------------------------------- processes */

static void lag_schedule(rh_world *w, int i) {
  rnode *n = &w->nodes[i];
  push_simple(w, w->now + cl_lag_interval_ms(&n->lag) * RH_US, EV_LAG, i, i, n->boots, 0);
}

void rh_world_start(rh_world *w, int i) {
  rnode *n = &w->nodes[i];
  if (n->running) return;
  n->running = 1;
  n->left = 0;
  n->started = 0;
  n->boots++;
  n->paused_until = n->ctl_until = n->lua_until = 0;
  n->lua_dl_us = UINT64_MAX;
  n->lua_pending = 0;
  memset(w->want[i], 0, sizeof w->want[i]);
  memset(w->learned[i], 0, sizeof w->learned[i]);
  memset(w->refuse[i], 0, sizeof w->refuse[i]);
  memset(n->udp_ports, 0, sizeof n->udp_ports);
  char err[512] = "";
  rh_world_record(w, i, "started", NULL, NULL, (int64_t)n->boots, 0);
  n->in_lua = 1;
  n->crash_pending = NULL;
  int brc = w->ops.boot(w->ops.ud, w, i, err, sizeof err);
  n->in_lua = 0;
  if (brc != 0) {
    rh_world_record(w, i, "start_failed", err, NULL, 0, 0);
    n->running = 0;
    stop_election(n);
    w->ops.close(w->ops.ud, w, i);
    free_inbox(n);
    return;
  }
  if (n->crash_pending) {
    crash(w, i, n->crash_pending);
    return;
  }
  /* the timers its start armed */
  schedule_lua(w, i);
}

/* the process is gone: its peers see their connections close */
static void end_process(rh_world *w, int i, const char *peer_reason) {
  rnode *n = &w->nodes[i];
  if (!n->running) return;
  n->running = 0;
  n->started = 0;
  stop_election(n);
  w->ops.close(w->ops.ud, w, i);
  free_inbox(n);
  n->lua_pending = 0;
  n->lua_dl_us = UINT64_MAX;
  n->paused_until = n->ctl_until = n->lua_until = 0;
  memset(n->reqs, 0, sizeof n->reqs);
  memset(n->udp_ports, 0, sizeof n->udp_ports);
  for (int j = 0; j < w->n; j++)
    if (j != i && w->conn[i][j]) disconnect_pair(w, i, j, NULL, peer_reason);
  memset(w->want[i], 0, sizeof w->want[i]);
  memset(w->learned[i], 0, sizeof w->learned[i]);
}

void rh_world_kill(rh_world *w, int i, const char *why) {
  if (!w->nodes[i].running) return;
  rh_world_record(w, i, "killed", why, NULL, 0, 0);
  end_process(w, i, "closed");
}

void rh_world_stop(rh_world *w, int i) {
  if (!w->nodes[i].running) return;
  rh_world_record(w, i, "stopped", "SIGTERM", NULL, 0, 0);
  /* as the node does on SIGTERM: every peer is told it leaves, then the process exits
   * (its own Lua hears nothing more) */
  w->nodes[i].left = 1;
  for (int k = 0; k < w->n; k++) w->learned[k][i] = 0;
  end_process(w, i, "left");
}

static void crash(rh_world *w, int i, const char *why) {
  if (!w->nodes[i].running) return;
  if (w->nodes[i].in_lua) {
    /* its own Lua stepped the election into the failed write (a request, a disconnect):
     * the process dies once that Lua call returns, not under it */
    if (!w->nodes[i].crash_pending) w->nodes[i].crash_pending = why;
    return;
  }
  rh_world_record(w, i, "crashed", why, NULL, 0, 0);
  end_process(w, i, "closed");
  if (w->p.crash_restart_ms) push_simple(w, w->now + w->p.crash_restart_ms * RH_US, EV_RESTART, i, i, 0, 0);
}

void rh_world_pause(rh_world *w, int i, uint64_t until_us) { w->nodes[i].paused_until = until_us; }

void rh_world_stall_lua(rh_world *w, int i, uint64_t until_us) { w->nodes[i].lua_until = until_us; }

void rh_world_cut(rh_world *w, int a, int b, int how, int oneway) {
  if (a == b) return;
  if (how == 1) {
    w->cut[a][b] = w->cut[b][a] = 1;
    disconnect_pair(w, a, b, "closed", "closed");
  } else {
    w->cut[a][b] = 2;
    if (!oneway) w->cut[b][a] = 2;
  }
}

void rh_world_heal(rh_world *w) {
  memset(w->cut, 0, sizeof w->cut);
  for (int a = 0; a < w->n; a++)
    for (int b = 0; b < w->n; b++)
      if (a != b && wants(w, a, b) && !w->conn[a][b]) schedule_dial(w, a, b, 1, 200);
}

void rh_world_net(rh_world *w, uint64_t lo, uint64_t hi, double p_drop, double p_dup) {
  w->p.delay_lo_us = lo;
  w->p.delay_hi_us = hi < lo ? lo : hi;
  w->p.p_drop = p_drop;
  w->p.p_dup = p_dup;
}

void rh_world_disk(rh_world *w, int i, int fail_next, uint64_t slow_ms) {
  w->nodes[i].disk_fail = fail_next;
  w->nodes[i].disk_slow_ms = slow_ms;
}

static int udp_bound(const rnode *n, int port) {
  for (int k = 0; k < 8; k++)
    if (n->udp_ports[k] == port) return 1;
  return 0;
}

void rh_node_udp_bind(rh_world *w, int i, int port) {
  rnode *n = &w->nodes[i];
  if (port <= 0 || udp_bound(n, port)) return;
  for (int k = 0; k < 8; k++)
    if (!n->udp_ports[k]) {
      n->udp_ports[k] = port;
      return;
    }
}

void rh_node_udp_close(rh_world *w, int i, int port) {
  rnode *n = &w->nodes[i];
  for (int k = 0; k < 8; k++)
    if (n->udp_ports[k] == port) n->udp_ports[k] = 0;
}

void rh_node_udp_send(rh_world *w, int i, int port, const uint8_t *data, size_t len) {
  for (int j = 0; j < w->n; j++) {
    if (j == i || !w->nodes[j].running || !udp_bound(&w->nodes[j], port) || w->cut[i][j]) continue;
    rh_rng *r = &w->link_rng[i][j];
    int copies = 1 + (rh_chance(r, w->p.p_dup) ? 1 : 0);
    if (rh_chance(r, w->p.p_drop)) copies--;
    for (int c = 0; c < copies; c++) {
      ev e = {0};
      e.at = w->now + rh_range(r, w->p.delay_lo_us, w->p.delay_hi_us);
      e.kind = EV_UDP;
      e.from = i;
      e.to = j;
      e.arg = (uint64_t)port;
      e.epoch = w->nodes[j].boots;
      e.data = malloc(len ? len : 1);
      if (!e.data) return;
      if (len) memcpy(e.data, data, len);
      e.len = len;
      ev_push(w, e);
    }
  }
}

void rh_world_file_changed(rh_world *w, const char *path) {
  for (int i = 0; i < w->n; i++)
    if (w->nodes[i].running) lua_msg(w, i, "fsevent", path);
}

/* ---------------------------------------------------------- Lua's calls */

int rh_node_start(rh_world *w, int i, const rh_start_cfg *cfg, char *err, size_t errlen) {
  rnode *n = &w->nodes[i];
  if (n->started) {
    snprintf(err, errlen, "EALREADY: this process is already a node");
    return -1;
  }
  /* the node id lives in the data directory: the first start's stays */
  if (!n->id[0]) snprintf(n->id, sizeof n->id, "%s", cfg->id);
  snprintf(n->cluster, sizeof n->cluster, "%s", cfg->cluster ? cfg->cluster : "");
  snprintf(n->roles, sizeof n->roles, "%s", cfg->roles ? cfg->roles : "master");
  n->flags = cl_node_roles_flags(n->roles);
  n->det_timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : CL_DET_DEFAULT_TIMEOUT_MS;
  n->det_hb_ms = cl_det_heartbeat_for(cfg->heartbeat_ms, n->det_timeout_ms);
  n->watchers = cfg->watchers && cfg->watchers <= CL_WATCH_MAX ? cfg->watchers : CL_WATCH_DEFAULT;
  n->mesh = cfg->mesh;
  cl_el_config ec;
  cl_el_config_defaults(&ec);
  cl_el_config_checks(&ec, cfg->el_heartbeat_ms, cfg->el_check_timeout_ms);
  if (cfg->el_max_exclusions) ec.max_exclusions = cfg->el_max_exclusions;
  if (cfg->el_max_nodes) ec.max_nodes = cfg->el_max_nodes;
  if (cfg->el_max_voting_nodes) ec.max_voting_nodes = cfg->el_max_voting_nodes;
  ec.seed = rh_rng_next(&w->r);
  free(n->imn_buf);
  n->imn_buf = NULL;
  n->n_imn = 0;
  if (cfg->imn && *cfg->imn) {
    n->imn_buf = strdup(cfg->imn);
    for (char *save = NULL, *tok = n->imn_buf ? strtok_r(n->imn_buf, ",", &save) : NULL; tok && n->n_imn < CL_EL_MAX_INITIAL;
         tok = strtok_r(NULL, ",", &save))
      n->imn[n->n_imn++] = tok;
  }
  ec.initial_master_nodes = n->imn;
  ec.n_initial_master_nodes = n->n_imn;
  cl_el_node_info self = info_of(n);
  char eerr[256] = "";
  cl_el *el = cl_el_new(&ec, &self, n->disk, n->disk_len, eerr, sizeof eerr);
  if (!el) {
    snprintf(err, errlen, "EINVAL: election: %s", eerr);
    return -1;
  }
  n->w = w;
  n->i = i;
  n->io = world_io;
  n->io.ud = n;
  cl_eldrv_init(&n->drv, el, &n->io);
  n->el = el;
  n->started = 1;
  uint64_t boot_term = cl_el_term(el);
  /* RULE E3, E15: a term it voted in durably is never lost (a lazy join may be) */
  if (boot_term < n->voted_max)
    violation(w, "%s restarted with term %llu after having voted in term %llu (the term was not persisted)", n->name,
              (unsigned long long)boot_term, (unsigned long long)n->voted_max);
  const cl_el_state *acc = cl_el_accepted(el);
  n->acc_t = acc->term;
  n->acc_v = acc->version;
  n->acc_c = cl_el_accepted_is_committed(el);
  n->app_t = cl_el_committed(el)->term;
  n->app_v = cl_el_committed(el)->version;
  cl_lag_init(&n->lag, cfg->el_lua_stepdown_ms ? cfg->el_lua_stepdown_ms : 30000);
  lag_schedule(w, i);
  cl_el_input in = {.kind = CL_EL_IN_TICK};
  step(w, i, &in);
  /* the peers it already wants (asked before the start) */
  for (int j = 0; j < w->n; j++)
    if (w->want[i][j]) schedule_dial(w, i, j, 1, 5);
  return 0;
}

void rh_node_want(rh_world *w, int i, const char *name) {
  int j = rh_world_index(w, name);
  if (j < 0 || j == i) return; /* a name no simulated node has: nobody answers the dial */
  w->refuse[i][j] = 0;
  if (w->want[i][j]) return;
  w->want[i][j] = 1;
  if (w->nodes[i].started) schedule_dial(w, i, j, 1, 5);
}

void rh_node_unwant(rh_world *w, int i, const char *name) {
  int j = rh_world_index(w, name);
  if (j >= 0) w->want[i][j] = 0;
}

void rh_node_disconnect(rh_world *w, int i, const char *name) {
  int j = rh_world_index(w, name);
  if (j < 0 || j == i) return;
  w->want[i][j] = 0;
  w->learned[i][j] = 0;
  w->refuse[i][j] = 1;
  disconnect_pair(w, i, j, "closed", "closed");
}

int rh_node_send(rh_world *w, int i, const char *name, const uint8_t *data, size_t len) {
  int j = rh_world_index(w, name);
  if (j < 0 || !w->conn[i][j]) return -1;
  deliver_later(w, EV_USER, i, j, data, len);
  return 0;
}

void rh_node_leave(rh_world *w, int i) {
  rnode *n = &w->nodes[i];
  n->left = 1;
  /* a peer that left is forgotten at once: the mesh does not dial it again */
  for (int k = 0; k < w->n; k++) w->learned[k][i] = 0;
  for (int j = 0; j < w->n; j++)
    if (j != i && w->conn[i][j]) disconnect_pair(w, i, j, NULL, "left");
  memset(w->want[i], 0, sizeof w->want[i]);
}

void rh_node_request(rh_world *w, int i, int kind, uint64_t lua_id, uint64_t base, const char *data, size_t len,
                     int flag) {
  rnode *n = &w->nodes[i];
  if (!n->el) return;
  size_t slot = sizeof n->reqs / sizeof *n->reqs;
  for (size_t k = 0; k < sizeof n->reqs / sizeof *n->reqs; k++)
    if (!n->reqs[k].id) {
      slot = k;
      break;
    }
  if (slot == sizeof n->reqs / sizeof *n->reqs) {
    rh_lua_msg *m = lua_msg(w, i, "done", "EBUSY");
    msg_bytes(m, "too many requests in flight", 27);
    if (m) m->b = (double)lua_id;
    return;
  }
  n->reqs[slot].id = ++w->next_req;
  n->reqs[slot].lua_id = lua_id;
  cl_el_input in = {0};
  in.req_id = n->reqs[slot].id;
  char *csv = NULL;
  const char *names[CL_EL_MAX_EXCL];
  if (kind == 1) {
    in.kind = CL_EL_IN_REQUEST_UPDATE;
    in.base_version = base;
    in.data = (const uint8_t *)data;
    in.len = len;
  } else if (kind == 2) {
    in.kind = CL_EL_IN_REQUEST_EXCLUDE;
    csv = strndup(data ? data : "", len);
    char err[256];
    int k = csv ? cl_el_split_exclusions(csv, names, err, sizeof err) : -1;
    if (k < 0) {
      n->reqs[slot].id = 0;
      rh_lua_msg *m = lua_msg(w, i, "done", "EINVAL");
      msg_bytes(m, err, strlen(err));
      if (m) m->b = (double)lua_id;
      free(csv);
      return;
    }
    /* as the node does (peers.c): a node it knew that is down now is named by its id,
     * since the master has dropped it from the state's nodes */
    for (int x = 0; x < k; x++) {
      int j = rh_world_index(w, names[x]);
      if (j >= 0 && j != i && !w->conn[i][j] && w->nodes[j].id[0]) names[x] = w->nodes[j].id;
    }
    in.names = names;
    in.n_names = (size_t)k;
  } else {
    in.kind = CL_EL_IN_REQUEST_CLEAR_EXCLUSIONS;
    in.flag = flag;
  }
  step(w, i, &in);
  free(csv);
}

/* ---------------------------------------------------------- the run */

static void push_hb(rh_world *w, int from, int to, int pong) {
  rh_rng *r = &w->link_rng[from][to];
  if (w->cut[from][to] == 2 || rh_chance(r, w->p.p_drop)) return;
  ev e = {0};
  e.at = w->now + rh_range(r, w->p.delay_lo_us, w->p.delay_hi_us);
  e.kind = EV_HB;
  e.from = from;
  e.to = to;
  e.pong = pong;
  e.epoch = w->epoch[from][to];
  ev_push(w, e);
}

static uint64_t det_row(rh_world *w, int a) {
  if (w->det_row_dirty[a]) {
    uint64_t m = UINT64_MAX;
    for (int b = 0; b < w->n; b++)
      if (a != b && w->conn[a][b]) {
        uint64_t d = cl_det_deadline(&w->det[a][b]);
        if (d < m) m = d;
      }
    w->det_row_min[a] = m;
    w->det_row_dirty[a] = 0;
  }
  return w->det_row_min[a];
}

static void run_detectors(rh_world *w) {
  uint64_t now = w->now / RH_US;
  for (int a = 0; a < w->n; a++) {
    if (!w->nodes[a].started || pausedn(w, a) || det_row(w, a) > now) continue;
    w->det_row_dirty[a] = 1;
    for (int b = 0; b < w->n; b++) {
      if (a == b || !w->conn[a][b] || cl_det_deadline(&w->det[a][b]) > now) continue;
      cl_det_verdict v = cl_det_check(&w->det[a][b], now);
      /* no indirect probe here: a suspicion waits for the timeout, and is announced */
      if (v == CL_DET_SUSPECT) v = cl_det_check(&w->det[a][b], now);
      if (v == CL_DET_PING) {
        push_hb(w, a, b, 0);
      } else if (v == CL_DET_DOWN || v == CL_DET_CUT) {
        disconnect_pair(w, a, b, "timeout", "closed");
        /* the announcement (DOWN), taken as arriving at once: every other node that has
         * not heard from b within the freshness window (cl_det_fresh_ms) closes its own
         * connection to it */
        for (int c = 0; v == CL_DET_DOWN && c < w->n; c++)
          if (c != a && c != b && w->nodes[c].started && !pausedn(w, c) && w->conn[c][b] &&
              now >= w->det[c][b].last_rx_ms + cl_det_fresh_ms(w->nodes[c].det_hb_ms, w->nodes[c].det_timeout_ms))
            disconnect_pair(w, c, b, "timeout", "closed");
      }
    }
  }
}

static uint64_t next_detector_us(rh_world *w) {
  uint64_t t = UINT64_MAX;
  for (int a = 0; a < w->n; a++) {
    if (!w->nodes[a].started) continue;
    uint64_t d = det_row(w, a);
    if (d != UINT64_MAX) {
      d *= RH_US;
      if (d < ctl_until(w, a)) d = ctl_until(w, a);
      if (d < t) t = d;
    }
  }
  return t < w->now ? w->now : t;
}

static void run_lua(rh_world *w, int i) {
  rnode *n = &w->nodes[i];
  rh_lua_msg *msgs = n->inbox;
  n->inbox = n->inbox_tail = NULL;
  n->lua_pending = 0;
  /* membership as the node's hooks see it: when its Lua gets to it */
  for (rh_lua_msg *m = msgs; m; m = m->next) {
    if (!strcmp(m->kind, "up")) rh_world_record(w, i, "node_up", m->name, NULL, 0, 0);
    if (!strcmp(m->kind, "down")) rh_world_record(w, i, "node_down", m->name, m->a, 0, 0);
  }
  int exited = 0, code = 0;
  n->in_lua = 1;
  uint64_t dl = w->ops.run(w->ops.ud, w, i, msgs, w->now / RH_US, &exited, &code);
  n->in_lua = 0;
  while (msgs) {
    rh_lua_msg *m = msgs;
    msgs = m->next;
    free(m->name);
    free(m->a);
    free(m);
  }
  if (!n->running) return;
  if (n->crash_pending) {
    const char *why = n->crash_pending;
    n->crash_pending = NULL;
    crash(w, i, why);
    return;
  }
  if (exited) {
    rh_world_record(w, i, "exited", NULL, NULL, code, 0);
    const char *reason = n->left ? "left" : "closed"; /* clusterlua.leave told the peers */
    n->left = 1; /* on purpose: not restarted */
    end_process(w, i, reason);
    return;
  }
  n->lua_dl_us = dl == UINT64_MAX ? UINT64_MAX : dl * RH_US;
}

static void lag_act(rh_world *w, int i, cl_lag_action a) {
  if (a != CL_LAG_STEP_DOWN && a != CL_LAG_RESUME) return;
  rh_world_record(w, i, "lua_lag", NULL, NULL, a == CL_LAG_STEP_DOWN, (int64_t)w->nodes[i].lag.lag_ms);
  cl_el_input in = {0};
  in.kind = CL_EL_IN_LUA_LAG;
  in.flag = a == CL_LAG_STEP_DOWN;
  step(w, i, &in);
}

static void dispatch(rh_world *w, ev *e) {
  rnode *to = &w->nodes[e->to];
  switch (e->kind) {
  case EV_MSG:
  case EV_USER:
  case EV_HB:
    if (w->epoch[e->from][e->to] != e->epoch || !w->conn[e->from][e->to] || !to->started) return;
    if (w->cut[e->from][e->to] == 2) return;
    if (pausedn(w, e->to)) { /* the kernel holds it until the process runs again */
      ev again = *e;
      again.at = ctl_until(w, e->to);
      ev_push(w, again);
      e->data = NULL;
      return;
    }
    cl_det_heard(&w->det[e->to][e->from], w->now / RH_US);
    w->det_row_dirty[e->to] = 1;
    if (e->kind == EV_HB) {
      if (!e->pong) push_hb(w, e->to, e->from, 1);
      return;
    }
    if (e->kind == EV_USER) {
      rh_lua_msg *m = lua_msg(w, e->to, "msg", w->nodes[e->from].name);
      msg_bytes(m, e->data, e->len);
      return;
    }
    {
      cl_el_input in = {0};
      in.kind = CL_EL_IN_MESSAGE;
      in.peer_id = w->nodes[e->from].id;
      in.data = e->data;
      in.len = e->len;
      step(w, e->to, &in);
    }
    return;
  case EV_DIAL:
    dial(w, e->from, e->to);
    return;
  case EV_UDP: {
    rnode *n = &w->nodes[e->to];
    if (!n->running || e->epoch != n->boots || !udp_bound(n, (int)e->arg) || w->cut[e->from][e->to]) return;
    rh_lua_msg *m = lua_msg(w, e->to, "udp", w->nodes[e->from].addr);
    msg_bytes(m, e->data, e->len);
    if (m) m->b = (double)e->arg;
    return;
  }
  case EV_LUA:
    if (!w->nodes[e->from].running || e->epoch != w->nodes[e->from].boots) return;
    {
      rnode *n = &w->nodes[e->from];
      uint64_t ready = max3(w->now, n->paused_until, n->lua_until);
      if (ready > w->now) {
        push_simple(w, ready, EV_LUA, e->from, e->from, e->epoch, 0);
        return;
      }
    }
    run_lua(w, e->from);
    return;
  case EV_RESTART:
    if (!w->nodes[e->from].running && !w->nodes[e->from].left) rh_world_start(w, e->from);
    return;
  case EV_LAG: {
    rnode *n = &w->nodes[e->from];
    if (!n->started || e->epoch != n->boots) return;
    if (pausedn(w, e->from)) {
      push_simple(w, ctl_until(w, e->from), EV_LAG, e->from, e->from, e->epoch, 0);
      return;
    }
    /* as node/lua_lag.c: Lua's latest answer is taken in at the check */
    lag_act(w, e->from, cl_lag_take(&n->lag));
    cl_lag_action a = cl_lag_tick(&n->lag, w->now / RH_US);
    if (a == CL_LAG_PING)
      push_simple(w, max3(w->now + w->p.lua_delay_us, n->lua_until, n->paused_until), EV_PONG, e->from, e->from,
                  n->boots, n->lag.seq);
    lag_act(w, e->from, a);
    if (n->started && e->epoch == n->boots) lag_schedule(w, e->from);
    return;
  }
  case EV_PEERDOWN:
    if (!w->nodes[e->from].started || e->epoch != w->nodes[e->from].boots || w->conn[e->from][e->to]) return;
    if (pausedn(w, e->from)) {
      push_simple(w, ctl_until(w, e->from), EV_PEERDOWN, e->from, e->to, e->epoch, 0);
      return;
    }
    peer_down(w, e->from, e->to);
    return;
  case EV_PONG: {
    rnode *n = &w->nodes[e->from];
    if (!n->started || e->epoch != n->boots) return;
    /* Lua stores its answer (node/lua_lag.c); the control loop takes it in at its next
     * check, paused or not, with the time Lua gave it */
    cl_lag_answer(&n->lag, e->arg, w->now / RH_US);
    return;
  }
  }
}

int rh_world_run(rh_world *w, uint64_t until) {
  while (!w->why[0]) {
    uint64_t t_node = UINT64_MAX, t_lua = UINT64_MAX;
    int who = -1, who_lua = -1;
    for (int i = 0; i < w->n; i++) {
      rnode *n = &w->nodes[i];
      if (n->started && n->next_dl != UINT64_MAX) {
        uint64_t d = n->next_dl * RH_US;
        if (d < ctl_until(w, i)) d = ctl_until(w, i);
        if (d < w->now) d = w->now;
        if (d < t_node) t_node = d, who = i;
      }
      if (n->running && !n->lua_pending && n->lua_dl_us != UINT64_MAX) {
        uint64_t d = max3(n->lua_dl_us, n->paused_until, n->lua_until);
        if (d < w->now) d = w->now;
        if (d < t_lua) t_lua = d, who_lua = i;
      }
    }
    uint64_t t_ev = w->nev ? w->evs[0].at : UINT64_MAX;
    uint64_t t_det = next_detector_us(w);
    uint64_t t = t_ev;
    if (t_node < t) t = t_node;
    if (t_lua < t) t = t_lua;
    if (t_det < t) t = t_det;
    if (t == UINT64_MAX || t > until) {
      w->now = until;
      return 0;
    }
    w->now = t;
    if (t == t_ev) {
      ev e = ev_pop(w);
      dispatch(w, &e);
      free(e.data);
    } else if (t == t_node) {
      cl_el_input in = {.kind = CL_EL_IN_TICK};
      step(w, who, &in);
    } else if (t == t_lua) {
      w->nodes[who_lua].lua_dl_us = UINT64_MAX;
      run_lua(w, who_lua);
    } else {
      run_detectors(w);
    }
  }
  return 1;
}

int rh_world_settled(rh_world *w, uint64_t ignore, char *why, size_t len, uint64_t *term, uint64_t *version,
                     int *master) {
  int leader = -1;
  for (int i = 0; i < w->n; i++)
    if (!(ignore >> i & 1) && w->nodes[i].el && cl_el_get_mode(w->nodes[i].el) == CL_EL_LEADER) {
      if (leader >= 0) {
        snprintf(why, len, "two nodes are master (%s, %s)", w->nodes[leader].name, w->nodes[i].name);
        return 0;
      }
      leader = i;
    }
  if (leader < 0) {
    snprintf(why, len, "no master");
    return 0;
  }
  cl_el *L = w->nodes[leader].el;
  const cl_el_state *la = cl_el_accepted(L);
  if (!cl_el_accepted_is_committed(L) || !cl_el_master_id(L)) {
    snprintf(why, len, "the master %s has a publication in flight", w->nodes[leader].name);
    return 0;
  }
  for (int i = 0; i < w->n; i++) {
    rnode *n = &w->nodes[i];
    if ((ignore >> i & 1) || (!n->running && n->left)) continue;
    if (!n->el) {
      snprintf(why, len, "%s is not running", n->name);
      return 0;
    }
    const cl_el_state *app = cl_el_committed(n->el);
    const char *m = cl_el_master_id(n->el);
    if (cl_el_term(n->el) != cl_el_term(L) || app->version != la->version || app->term != la->term || !m ||
        strcmp(m, w->nodes[leader].id)) {
      snprintf(why, len, "%s is at term %llu, version %llu, master %s; the master %s at term %llu, version %llu",
               n->name, (unsigned long long)cl_el_term(n->el), (unsigned long long)app->version,
               m ? (index_by_id(w, m) >= 0 ? w->nodes[index_by_id(w, m)].name : m) : "none", w->nodes[leader].name,
               (unsigned long long)cl_el_term(L), (unsigned long long)la->version);
      return 0;
    }
  }
  *term = cl_el_term(L);
  *version = la->version;
  *master = leader;
  return 1;
}
