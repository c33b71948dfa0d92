/* Connections on the control loop: listener, dials with backoff, handshake
 * timeouts, one connection per pair, heartbeats and failure detection, mesh
 * learning, write coalescing, and the fault layer's hooks.
 *
 * Lifetimes: a cl_conn is freed only in its tcp handle's close callback; a cl_peer
 * lives until it is forgotten (peer_forget: freed in its timer's close callback) or
 * the transport is closed (its timer is closed with it). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/bigendian.h"
#include "internal.h"
#include "transport/detector.h"
#include "transport/members_wire.h"
#include "transport/reauth.h"
#include "transport/watch.h"
#include "transport/writer.h"
#include "core/log.h"
#include "core/tick_grid.h"

/* a DOWN frame's buffer (CL_MW_DOWN_HEAD + CL_MW_STR_MAX) holds any node name */
_Static_assert(CL_NODE_NAME_MAX <= CL_MW_STR_MAX, "node names must fit a members_wire string");

enum { C_CONNECTING = 1, C_HANDSHAKE, C_UP, C_CLOSING };
#define CL_MAX_PEERS_DEFAULT 10000 /* learned through mesh (cfg.max_learned_peers); wanted peers are not capped */

typedef struct cl_peer cl_peer;
typedef struct cl_conn cl_conn;

typedef struct cl_delayed {
  struct cl_delayed *next;
  uint64_t at;
  size_t len;
  uint8_t bytes[];
} cl_delayed;

struct cl_conn {
  /* first, together: what the tick reads of every connection at every wake-up (the
   * rest of the struct is kilobytes of buffers, cold in the cache by then) */
  cl_conn *next, *prev;
  int outgoing, state, installed, dirty, close_after_flush, encrypt;
  int stalled; /* reading stopped by the fault layer's stall (started again by clear) */
  int peer_reach; /* the peer said it reaches every member (CL_T_REACH): a hub */
  int data; /* a data connection we dial: handed over once authenticated, never installed */
  int data_owed; /* that dial's data_conn callback is still owed (conn_close pays it: fd -1) */
  uint64_t data_inc; /* the peer's life it was asked for in */
  uint64_t deadline_ms;
  cl_det det; /* failure detection (detector.c) */
  uv_tcp_t tcp;
  cl_transport *t;
  cl_conn *dirty_next;
  cl_peer *peer; /* dialer: the target from the start; acceptor: once authenticated */
  uv_connect_t creq;
  cl_handshake hs;
  int hs_live;
  cl_frame_decoder fd;
  cl_opener opener;
  cl_seal_dir seal;
  cl_writer w; /* what goes out: frames, sealed, written (writer.c, shared with the data plane) */
  uint32_t probe_seq; /* the current suspicion's probes (PROBE_REQ/RES match on it) */
  /* the peers asked to probe it for the current suspicion: only their answers count */
  char probe_via[2][CL_NODE_NAME_MAX + 1];
  uint64_t peer_beat_us, peer_beat_rx_us; /* the peer's last beat: its clock, and ours on arrival */
  /* the handshake's round trip: our first flight sent (µs) -> the peer's next one read */
  uint64_t hs_mark_us;
  uint32_t hs_rtt_us;
  cl_delayed *dq_head, *dq_tail;
  cl_tbuf news; /* member entries to pass on at the next news tick (large clusters) */
  char addr[CL_NODE_NAME_MAX + 8];
  /* the key it was authenticated under, and a re-authentication in progress (reauth.c) */
  cl_reauth ra;
};

struct cl_peer {
  cl_peer *next;
  /* first, beside next: what the once-a-second sweep reads of every peer first (a member
   * that is alive or connected is passed over), so a walk of all peers costs one cache
   * line each, not three (issue 18: a node at rest knows every member of a large cluster) */
  cl_conn *conn; /* installed (authenticated) */
  int alive;
  cl_peer *hnext; /* the next in its bucket of t->ptab */
  cl_transport *t;
  cl_node_name nn;
  /* as long as they are (pstr_set), not as the wire allows (255 bytes each): that was
   * 775 bytes a peer, mostly zeros, 0.2 MiB of each node's RssAnon at 300 nodes */
  char *node_id, *roles, *address;
  uint64_t incarnation;
  int wanted, learned, blocked, left, resolving;
  int data_resolving; /* name resolutions under way for data connections */
  int pinned;      /* cl_transport_pin: kept connected and always watched */
  /* membership (design.md §5), apart from the connection: alive (above) from its first
   * connection or, in a large cluster, from another member's list; ver is the member
   * version of that life (raised by the member itself to refute a false DOWN) */
  uint32_t ver;
  int down_known; /* declared down at (down_inc, down_ver): older news of it is stale */
  uint64_t down_inc;
  uint32_t down_ver;
  int need;       /* large cluster: one of our ring successors (we dial and watch it) */
  int sel;        /* scratch of watch_recompute: picked on the ring this time */
  int verify;     /* another member lists it up while we hold it down: dial it once to see */
  /* ... once per life and version held down, and again only after redial_failed_ms (a
   * dial that timed out under load proves nothing): at 300 nodes a storm of false DOWNs
   * made every list that crossed them a dial to each member it listed up, and each dial
   * a connection with a list of its own (issue 18) */
  int verified;
  uint64_t verified_inc, verified_ms;
  uint32_t verified_ver;
  /* a large cluster: its connection closed without IDLE or LEAVE; dialled at once, it is
   * down only if that dial fails (check_settle): a close the peer made on purpose (a
   * duplicate dropped, a handshake it gave up on, its own timeout of us) is no crash */
  int checking;
  /* ... and until a connection with it is authenticated again: still re-dialled, and
   * down ("timeout") once limbo_ms is older than the detection bound (limbo_bound): a
   * check's dial that connects proves only that something accepts there (a hung
   * process's backlog, a proxy), and one that times out proves nothing, so without a
   * bound a host that vanished after its FINs would stay up on every node (found by a
   * review) */
  int limbo;
  uint64_t limbo_ms;
  /* a large cluster: its connection closed and its watchers and the hubs judge it, so its
   * re-dial waits backoff_max (conn_down); a message to it still dials at once */
  int redial_deferred;
  /* a DOWN we set aside because this connection had just heard from it: taken after all
   * if the connection then closes without news of it (an idle close), unless a frame
   * from it comes first */
  int doubted;
  int doubt_hub; /* the DOWN set aside came from a hub (it told every member itself) */
  uint8_t doubt_rc;
  uint64_t doubt_inc;
  uint32_t doubt_ver;
  uint64_t last_data_ms; /* the last message either way: what idle_close_ms counts from */
  cl_tbuf pend;   /* messages for a member while its connection is opened on demand */
  int member;      /* was connected: a failure is re-dialled until reconnect_timeout */
  int forgetting;  /* unlinked, its timer closing: freed in the close callback */
  uint64_t down_ms; /* when it went down (or became known, if never connected) */
  int data_ok; /* both sides open data connections (from the handshake) */
  cl_conn *dial; /* our outgoing attempt */
  uv_timer_t timer;
  uint32_t backoff_ms;
  uint64_t since_ms, last_rx_ms;
  uint32_t rtt_us;
  uint64_t ring; /* cl_watch_hash(nn.full): its place on the watch ring */
  int probed;    /* probes we run for others wait for its pong (t->probes) */
  cl_fault fault;
  cl_ratelimit rl;
};

/* A probe we run for another node: it asked us (PROBE_REQ) whether target answers. */
#define CL_PROBES_MAX 16
#define CL_PROBES_PER_PEER 4 /* of them, held for one requester */
/* what a connection's queue may hold past send_queue_max: answers to the peer's own
 * frames (beats, pongs, probe answers), a few of a read's worth */
#define CL_REPLY_SLACK (256u << 10)
typedef struct {
  int used;
  uint32_t seq;
  uint64_t deadline_ms; /* answered "no answer" then */
  uint64_t sent_us;     /* our ping's clock: only a pong echoing it (or a later one) counts */
  char req[CL_NODE_NAME_MAX + 1], target[CL_NODE_NAME_MAX + 1];
} cl_probe;

struct cl_transport {
  uv_loop_t *loop;
  cl_transport_config cfg;
  cl_transport_callbacks cb;
  cl_node_name self;
  char *s_id, *s_cluster, *s_roles, *s_subsys;
  cl_hs_config hs_cfg;
  uv_tcp_t listener;
  uv_timer_t tick, delay_timer, news_timer;
  uv_check_t check;
  uv_idle_t idle;
  uint32_t tick_ms;
  uint64_t next_beat_ms; /* the tick's next heartbeat */
  uint64_t ring;         /* cl_watch_hash of our own name: our place on the watch ring */
  uint64_t tick_due_ms;  /* when the tick was asked to run */
  /* the connection whose silence deadline the tick was armed for, before the grid's
   * next tick (NULL: the grid's, or another kind of deadline). A frame it sends moves
   * that deadline past the grid's tick, which then wakes the node for nothing: a frame
   * heard from it re-arms the tick (on_session_frame). Only a hint: tick_arm always
   * takes the earliest deadline of all */
  struct cl_conn *tick_conn;
  int tick_after_poll;   /* this tick is the look again after a late one's poll */
  cl_det_awareness awareness;
  uint32_t grace_ms;     /* what the awareness gives every connection now (c->det.grace_ms) */
  /* some peer may be in limbo: limbo_expire walks the peers only then. The tick's walks
   * of every connection and peer were most of a node's own CPU at rest (each struct is
   * cold in the cache at every wake-up; issue 17) */
  int limbo_maybe;
  cl_conn *conns;
  cl_conn *dirty;
  cl_peer *peers, *last_peer;
  /* peers by full name: buckets on the ring hash (p->ring), chained through hnext. A
   * lookup by name is needed for every entry of every member list and every DOWN; a walk
   * of the list made that O(N) each, O(N^2) per list (the largest share of the control
   * loop's own CPU in a 200-node formation, issue 18) */
  cl_peer **ptab;
  size_t ptab_cap, n_peers; /* cap: a power of two, or 0 before the first peer */
  size_t connected;
  size_t n_alive;  /* members up, this node excluded */
  int large;       /* more members than full_mesh_max: connections are not a mesh */
  int reach_all;   /* cl_transport_reach_all: a connection to every member (a voting node) */
  /* reach_all's dials left until the next tick of the grid, and whether a member waits
   * for one (cfg.reach_dials_per_tick, reach_more) */
  uint32_t reach_budget;
  int reach_pending;
  /* the watched set (q->sel) of a large cluster is picked on the ring of members, so it
   * holds until a member comes or goes: members_gen counts those changes, sel_gen is the
   * count the set was picked at (watch_peer) */
  uint64_t members_gen, sel_gen;
  int sel_large; /* t->large when the set was picked; -1: never picked */
  /* members_digest's sum over every member up, kept until one comes, goes or changes its
   * life or version (dig_ok = 0): a voting node that begins to reach every member, or a
   * new master, opens hundreds of connections at once, and a walk of every member at
   * both ends of each was 2 % of a 300-node failover's samples (issue 18) */
  int dig_ok;
  uint32_t dig_n;
  uint64_t dig_sum;
  uint32_t ver;    /* our own member version (raised to refute a false DOWN) */
  int no_announce; /* a local decision (cl_transport_disconnect): report, do not announce */
  cl_fault fault_all;
  int faults_on;
  int closing, leaving;
  int sweep_due;          /* a peer may have become forgettable: check on the next tick */
  uint64_t last_sweep_ms;
  uint64_t last_redial_ms; /* the last failed member dialled (redial_failed) */
  int open_handles;
  void (*done)(void *);
  void *done_ud;
  cl_ratelimit rl_hs, rl_frame;
  cl_transport_stats st;
  cl_probe probes[CL_PROBES_MAX];
  /* per key of hs_cfg.keys (same index): handshakes and failures under it */
  struct {
    uint64_t hs, fail;
  } kst[CL_KEYRING_MAX];
  uint64_t auth_fail_unknown;
  uint8_t rbuf[65536 + 64];
};

#define SUBSYS(t) ((t)->s_subsys)

static uint64_t now_ms(cl_transport *t) { return uv_now(t->loop); }

static void conn_close(cl_conn *c);
static void conn_down(cl_conn *c, const char *reason);
static void doubt_settle(cl_peer *p);
static void watch_recompute(cl_transport *t);
static uint32_t beat_interval(const cl_transport *t);
static void tick_interval_update(cl_transport *t);
static void peer_schedule(cl_peer *p, int fresh);
static void peer_dial(cl_peer *p);
static void mark_dirty(cl_conn *c);
static int on_session_frame(void *ud, const cl_frame *f);
static void data_dial(cl_peer *p);
static void data_failed(cl_transport *t, cl_peer *p, uint64_t incarnation);
static void reauth_start(cl_conn *c);
static void on_reauth(cl_conn *c, const uint8_t *d, size_t n);
static int conn_live(const cl_peer *p);

/* ---- keys ---- */

static int key_index(const cl_transport *t, uint32_t id) {
  for (size_t i = 0; i < t->hs_cfg.n_keys; i++)
    if (t->hs_cfg.keys[i].id == id) return (int)i;
  return -1;
}

/* The fingerprint of a key by id: the ring's copy is the freshest (computed later). */
static const char *key_fp(const cl_transport *t, const cl_hs_key *k) {
  int i = key_index(t, k->id);
  const char *fp = i >= 0 ? t->hs_cfg.keys[i].fp : k->fp;
  return fp[0] ? fp : "(fingerprint pending)";
}

static void count_hs(cl_transport *t, uint32_t id) {
  int i = key_index(t, id);
  if (i >= 0) t->kst[i].hs++;
}

static void count_fail(cl_transport *t, int idx) {
  if (idx >= 0 && (size_t)idx < t->hs_cfg.n_keys)
    t->kst[idx].fail++;
  else
    t->auth_fail_unknown++;
}

static void peer_free(cl_peer *p);

static void maybe_finish(cl_transport *t) {
  if (!t->closing || t->open_handles > 0) return;
  cl_peer *p = t->peers;
  while (p) {
    cl_peer *n = p->next;
    peer_free(p);
    p = n;
  }
  free(t->ptab);
  void (*done)(void *) = t->done;
  void *ud = t->done_ud;
  free(t->s_id);
  free(t->s_cluster);
  free(t->s_roles);
  free(t->s_subsys);
  sodium_memzero(&t->hs_cfg, sizeof t->hs_cfg);
  free(t);
  if (done) done(ud);
}

static void on_handle_closed(uv_handle_t *h) {
  cl_transport *t = h->data;
  t->open_handles--;
  maybe_finish(t);
}

static void close_handle(cl_transport *t, uv_handle_t *h) {
  h->data = t;
  t->open_handles++;
  uv_close(h, on_handle_closed);
}

/* ---- peers ---- */

/* a bucket of a table of cap (a power of two) buckets: FNV-1a's low bits depend only on
 * the low bits of each byte, so fold the high half in (names that differ in a digit or
 * two otherwise crowd into a third of the buckets) */
static size_t ptab_slot(uint64_t h, size_t cap) { return (size_t)(h ^ (h >> 32)) & (cap - 1); }

static cl_peer *peer_exact(cl_transport *t, const char *name) {
  if (!t->ptab_cap) return NULL;
  uint64_t h = cl_watch_hash(name);
  for (cl_peer *p = t->ptab[ptab_slot(h, t->ptab_cap)]; p; p = p->hnext)
    if (p->ring == h && !strcmp(p->nn.full, name)) return p;
  return NULL;
}

/* 0, or -1 when the first table cannot be had (a table that cannot grow stays as it is:
 * its chains are only longer) */
static int ptab_insert(cl_transport *t, cl_peer *p) {
  if (t->n_peers + 1 > t->ptab_cap / 2 * 3 || !t->ptab_cap) {
    size_t cap = t->ptab_cap ? t->ptab_cap * 2 : 64;
    cl_peer **tab = calloc(cap, sizeof *tab);
    if (tab) {
      for (size_t i = 0; i < t->ptab_cap; i++)
        for (cl_peer *q = t->ptab[i], *nq; q; q = nq) {
          nq = q->hnext;
          q->hnext = tab[ptab_slot(q->ring, cap)];
          tab[ptab_slot(q->ring, cap)] = q;
        }
      free(t->ptab);
      t->ptab = tab;
      t->ptab_cap = cap;
    } else if (!t->ptab_cap) {
      return -1;
    }
  }
  cl_peer **b = &t->ptab[ptab_slot(p->ring, t->ptab_cap)];
  p->hnext = *b;
  *b = p;
  t->n_peers++;
  return 0;
}

static void ptab_remove(cl_transport *t, cl_peer *p) {
  for (cl_peer **pp = &t->ptab[ptab_slot(p->ring, t->ptab_cap)]; *pp; pp = &(*pp)->hnext)
    if (*pp == p) {
      *pp = p->hnext;
      t->n_peers--;
      return;
    }
}

static cl_peer *find_peer(cl_transport *t, const char *name) {
  if (!name) return NULL;
  if (t->last_peer && strcmp(t->last_peer->nn.full, name) == 0) return t->last_peer;
  cl_peer *e = peer_exact(t, name);
  if (e) return t->last_peer = e;
  if (!strchr(name, '@')) {
    cl_peer *hit = NULL;
    for (cl_peer *p = t->peers; p; p = p->next)
      if (cl_node_name_matches(name, p->nn.full)) {
        if (hit) return NULL; /* ambiguous */
        hit = p;
      }
    return hit;
  }
  cl_node_name nn;
  if (cl_node_name_parse(name, &nn, NULL, 0) == 0 && strcmp(nn.full, name) != 0)
    return find_peer(t, nn.full);
  return NULL;
}

/* A peer's strings: "" is the shared empty_str, anything else its own copy. Out of
 * memory keeps the old value (a string this short is not worth failing a peer for). */
static char empty_str[1];
static void pstr_set(char **dst, const char *src) {
  if (!src) src = "";
  if (*dst && !strcmp(*dst, src)) return;
  char *d = *src ? strdup(src) : empty_str;
  if (!d) return;
  if (*dst && *dst != empty_str) free(*dst);
  *dst = d;
}
static void peer_free(cl_peer *p) {
  if (p->alive) p->t->dig_ok = 0;
  cl_tbuf_free(&p->pend);
  char **s[] = {&p->node_id, &p->roles, &p->address};
  for (size_t i = 0; i < sizeof s / sizeof *s; i++)
    if (*s[i] && *s[i] != empty_str) free(*s[i]);
  free(p);
}

static cl_peer *add_peer(cl_transport *t, const cl_node_name *nn) {
  cl_peer *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->t = t;
  p->nn = *nn;
  p->node_id = p->roles = p->address = empty_str;
  char addr[CL_NODE_NAME_MAX + 8];
  snprintf(addr, sizeof addr, strchr(nn->host, ':') ? "[%s]:%u" : "%s:%u", nn->host, nn->port);
  pstr_set(&p->address, addr);
  p->backoff_ms = t->cfg.backoff_min_ms;
  /* a peer that stays unreachable is re-dialled for hours: its first failure is logged,
   * then one line a minute that says how many were not */
  p->rl.per_window = 1;
  p->rl.window_ms = 60000;
  p->down_ms = uv_now(t->loop);
  p->ring = cl_watch_hash(nn->full);
  if (ptab_insert(t, p)) {
    peer_free(p);
    return NULL;
  }
  uv_timer_init(t->loop, &p->timer);
  p->timer.data = p;
  p->next = t->peers;
  t->peers = p;
  return p;
}

static const cl_fault *fault_of(cl_transport *t, cl_peer *p, cl_fault *tmp) {
  if (!t->faults_on) return NULL;
  *tmp = t->fault_all;
  if (p) {
    const cl_fault *f = &p->fault;
    if (f->drop > tmp->drop) tmp->drop = f->drop;
    if (f->delay_ms > tmp->delay_ms) tmp->delay_ms = f->delay_ms;
    tmp->blackhole |= f->blackhole;
    tmp->oneway_in |= f->oneway_in;
    tmp->oneway_out |= f->oneway_out;
    tmp->stall |= f->stall;
  }
  return cl_fault_active(tmp) ? tmp : NULL;
}

/* ---- which peers are dialled, and which are forgotten ---- */

static int peer_keep(cl_peer *p) {
  cl_transport *t = p->t;
  return t->cb.keep && p->node_id[0] && t->cb.keep(t->cb.ud, p->nn.full, p->node_id);
}

/* A member that failed (or a peer another node says it is connected to) less than
 * reconnect_timeout ago: it may come back, so it is still re-dialled. */
static int peer_recent(cl_peer *p) {
  return (p->member || p->learned) && !p->left && now_ms(p->t) - p->down_ms < p->t->cfg.reconnect_timeout_ms;
}

/* Whether a peer that is not connected is dialled. */
static int peer_dialable(cl_peer *p) {
  if (p->blocked || p->forgetting) return 0;
  if (p->wanted || p->pinned || p->pend.len || p->verify || p->checking || p->limbo) return 1;
  if (p->left) return 0;
  /* a large cluster: only what detection needs (and the above); a failed member that
   * comes back dials its own needs, and its connections bring it back */
  if (p->t->large) return (p->need || p->t->reach_all) && p->alive;
  return p->alive || peer_recent(p) || ((p->member || p->learned) && peer_keep(p));
}

static int peer_forgettable(cl_peer *p) {
  if (p->conn || p->alive || p->wanted || p->pinned || p->blocked || p->resolving || p->data_resolving ||
      p->forgetting)
    return 0;
  if (cl_fault_active(&p->fault)) return 0; /* the fault layer's settings live on the peer */
  if (peer_recent(p)) return 0;
  return !peer_keep(p);
}

static const char *peer_status(cl_peer *p) {
  if (p->alive || p->conn) return "up"; /* a member, connected or not (connected says which) */
  if (p->blocked) return "disconnected";
  if (!p->wanted) return "down"; /* still known: failed lately, or kept */
  if (peer_recent(p) || ((p->member || p->learned) && peer_keep(p))) return "down";
  return "configured";
}

static void fill_info(cl_peer *p, cl_peer_info *i) {
  memset(i, 0, sizeof *i);
  i->name = p->nn.full;
  i->node_id = p->node_id;
  i->address = p->address;
  i->roles = p->roles;
  i->incarnation = p->incarnation;
  i->rtt_us = p->rtt_us;
  i->since_ms = p->since_ms;
  i->last_heartbeat_ms = p->conn ? p->conn->det.last_rx_ms : p->last_rx_ms;
  i->connected = p->conn != NULL;
  i->wanted = p->wanted || p->learned;
  i->data_conns = p->data_ok && p->conn; /* a member learned from a list has none */
  i->status = peer_status(p);
  i->fingerprint = p->conn && p->conn->state == C_UP ? key_fp(p->t, &p->conn->ra.key) : "";
  if (!strcmp(i->fingerprint, "(fingerprint pending)")) i->fingerprint = "";
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status);

static cl_writer_stats conn_wstats(cl_transport *t) {
  return (cl_writer_stats){&t->st.writes, &t->st.bytes_out, &t->st.records_sealed};
}

static void conn_flush(cl_conn *c) {
  cl_transport *t = c->t;
  if (c->state == C_CLOSING || c->w.writing) return;
  cl_writer_stats st = conn_wstats(t);
  if (cl_writer_flush(&c->w, (uv_stream_t *)&c->tcp, c->encrypt && c->state == C_UP ? &c->seal : NULL, &st,
                      on_write, c)) {
    conn_down(c, "closed");
    return;
  }
  if (c->w.writing) return;
  if (c->close_after_flush && !c->w.out.len) {
    cl_peer *p = c->peer;
    int inst = c->installed;
    conn_close(c);
    if (inst && p) doubt_settle(p);
    /* a message queued while an idle connection was closing opens a new one; a member
     * the close took down is re-dialled as after any close, if still wanted */
    if (inst && p && (!p->alive || p->pend.len) && !t->closing && !t->leaving) peer_schedule(p, 1);
  }
}

static void on_write(uv_write_t *req, int status) {
  cl_conn *c = req->data;
  c->w.writing = 0;
  if (c->state == C_CLOSING) return;
  if (status < 0) {
    conn_down(c, "closed");
    return;
  }
  cl_writer_stats st = conn_wstats(c->t);
  cl_writer_written(&c->w, &st);
  conn_flush(c);
}

static void on_check(uv_check_t *h) {
  cl_transport *t = h->data;
  uv_check_stop(&t->check);
  uv_idle_stop(&t->idle);
  cl_conn *c = t->dirty;
  t->dirty = NULL;
  while (c) {
    cl_conn *n = c->dirty_next;
    c->dirty_next = NULL;
    c->dirty = 0;
    conn_flush(c);
    c = n;
  }
}

static void on_idle(uv_idle_t *h) { (void)h; }

static void mark_dirty(cl_conn *c) {
  cl_transport *t = c->t;
  if (c->dirty || c->state == C_CLOSING || t->closing) return;
  c->dirty = 1;
  c->dirty_next = t->dirty;
  t->dirty = c;
  /* the check handle flushes after this loop turn's callbacks; the idle handle keeps
   * the poll from blocking in between */
  uv_check_start(&t->check, on_check);
  uv_idle_start(&t->idle, on_idle);
}

static size_t conn_queued(const cl_conn *c) {
  size_t d = 0;
  for (const cl_delayed *x = c->dq_head; x; x = x->next) d += x->len;
  return cl_writer_queued(&c->w) + d;
}

static void arm_delay_timer(cl_transport *t);

/* Queues one frame on an authenticated connection, through the fault layer. */
static int conn_put(cl_conn *c, uint8_t type, uint8_t ch, const void *data, uint32_t len) {
  cl_transport *t = c->t;
  /* anything we send tells the peer we are alive: no beat is needed on a busy connection */
  if (c->state == C_UP) cl_det_sent(&c->det, now_ms(t));
  cl_fault tmp;
  const cl_fault *f = t->faults_on ? fault_of(t, c->peer, &tmp) : NULL;
  if (f) {
    if (f->blackhole || f->oneway_out) return 0;
    if (f->drop > 0 && (type == CL_T_DATA || type == CL_T_PING || type == CL_T_PONG) &&
        randombytes_uniform(1000000) < (uint32_t)(f->drop * 1e6))
      return 0;
    if (f->delay_ms || c->dq_head) {
      cl_delayed *d = malloc(sizeof *d + CL_FRAME_HDR + len);
      if (!d) return CL_ENOBUFS;
      cl_tbuf b = {d->bytes, 0, CL_FRAME_HDR + (size_t)len};
      cl_frame_put(&b, type, ch, data, len);
      d->len = b.len;
      d->at = now_ms(t) + f->delay_ms;
      d->next = NULL;
      if (c->dq_tail)
        c->dq_tail->next = d;
      else
        c->dq_head = d;
      c->dq_tail = d;
      t->st.frames_out++;
      arm_delay_timer(t);
      return 0;
    }
  }
  if (cl_frame_put(&c->w.out, type, ch, data, len)) return CL_ENOBUFS;
  t->st.frames_out++;
  mark_dirty(c);
  return 0;
}

static void on_delay_timer(uv_timer_t *h) {
  cl_transport *t = h->data;
  uint64_t now = now_ms(t);
  for (cl_conn *c = t->conns; c; c = c->next) {
    int any = 0;
    while (c->dq_head && c->dq_head->at <= now) {
      cl_delayed *d = c->dq_head;
      c->dq_head = d->next;
      if (!c->dq_head) c->dq_tail = NULL;
      if (c->state == C_UP) cl_tbuf_append(&c->w.out, d->bytes, d->len);
      free(d);
      any = 1;
    }
    if (any) mark_dirty(c);
  }
  arm_delay_timer(t);
}

static void arm_delay_timer(cl_transport *t) {
  uint64_t next = UINT64_MAX;
  for (cl_conn *c = t->conns; c; c = c->next)
    if (c->dq_head && c->dq_head->at < next) next = c->dq_head->at;
  if (next == UINT64_MAX || t->closing) return;
  uint64_t now = now_ms(t);
  uv_timer_start(&t->delay_timer, on_delay_timer, next > now ? next - now : 1, 0); /* not 0: tick_arm */
}

/* ---- membership (design.md §5) ----
 *
 * A member is up (alive) from its first authenticated connection, or, in a large cluster
 * (more members than full_mesh_max), from another member's MEMBERS list; it is down when
 * it left, when a connection to it closed without an IDLE frame, when this node's
 * detection timed it out, or when another member announced it (DOWN). In a large
 * cluster a node holds connections to few members, so what it learns it passes on once
 * to its own connections (a newcomer's MEMBERS entry, a DOWN): through the master and the
 * voting nodes, which every node reaches, it is everywhere within two or three hops.
 * Stale news cannot undo newer: a DOWN names the member's incarnation and version, and a
 * MEMBERS entry is taken only when newer than the last DOWN seen. A member that hears it
 * was declared down while it runs raises its version and lists itself again (SWIM's
 * refutation), which brings it back on every node. */

static const char *const down_reasons[] = {"timeout", "closed", "left"};

static uint8_t reason_code(const char *r) {
  for (uint8_t i = 0; i < 3; i++)
    if (!strcmp(r, down_reasons[i])) return i;
  return 1;
}

/* Growing past full_mesh_max makes the cluster large; it is a mesh again only once it
 * shrank to three quarters of it (a cluster hovering at the bound does not flip). A
 * newcomer also goes large on the size of the first list it gets (on_members). */
static void large_update(cl_transport *t, int shrinking) {
  uint32_t max = t->cfg.full_mesh_max;
  if (!t->large && t->n_alive + 1 > max) t->large = 1;
  else if (shrinking && t->large && (t->n_alive + 1) * 4 <= (size_t)max * 3) t->large = 0;
  tick_interval_update(t); /* the next watch_recompute asks the watched peers for it */
}

static void member_up(cl_peer *p) {
  cl_transport *t = p->t;
  if (p->alive) return;
  p->alive = 1;
  t->n_alive++;
  t->members_gen++;
  t->dig_ok = 0;
  large_update(t, 0);
  p->since_ms = now_ms(t);
  if (t->cb.peer_up && !t->leaving && !t->closing) {
    cl_peer_info info;
    fill_info(p, &info);
    t->cb.peer_up(t->cb.ud, &info);
  }
}

/* the DOWN frame: incarnation, version, reason, name (members_wire.h) */
static size_t down_frame(uint8_t *buf, const cl_peer *p, uint64_t inc, uint32_t ver, uint8_t reason) {
  return cl_mw_down_put(buf, p->nn.full, inc, ver, reason);
}

/* One frame to every member's live connection but those of a and b (either may be NULL).
 * It walks the connections, not the peers: a node of a large cluster holds about ten
 * connections and knows every member, and each announcement walked all of them (at 500
 * nodes forming, the walks in announce_member and member_down were 5 % of the machine's
 * CPU; issue 18). Each peer has one installed connection, p->conn, so the set is the
 * same. conn_put closes nothing: the list stays as it is while it is walked. */
static void put_to_members(cl_transport *t, uint8_t type, const void *data, uint32_t len, const cl_peer *a,
                           const cl_peer *b) {
  for (cl_conn *c = t->conns; c; c = c->next)
    if (c->state == C_UP && c->peer && c->peer->conn == c && c->peer != a && c->peer != b)
      conn_put(c, type, 0, data, len);
}

/* A hub: a connection of ours whose peer holds one to every member and passes what it
 * announces to all of them (a voting node, CL_T_REACH). */
static int conn_hub(const cl_conn *c) {
  return c->state == C_UP && c->peer && c->peer->conn == c && c->peer_reach;
}

/* whether we hold a connection to a hub other than a's (a may be NULL) */
static int hub_other_than(const cl_transport *t, const cl_peer *a) {
  for (const cl_conn *c = t->conns; c; c = c->next)
    if (conn_hub(c) && c->peer != a) return 1;
  return 0;
}

/* A DOWN about member `about`, to pass on. In a large cluster each node used to
 * pass every piece of news once to every connection: about 13 copies in and 13 out per
 * node for one crash at 300 nodes (with the voting nodes connected to every member),
 * every node woken for each (issue 18). Where hubs exist (the voting nodes hold a
 * connection to every member), a node passes on what it heard to its hubs alone, and
 * nothing when a hub told it (that hub told every member); a hub, and a node telling
 * its own finding (own), still tell every connection. A node with no hub floods as
 * before. */
static void put_news(cl_transport *t, const void *data, uint32_t len, const cl_peer *about, const cl_peer *from,
                     int own) {
  int to_hubs = 0;
  if (!own && !t->reach_all && t->large) {
    if (from && from->conn && conn_hub(from->conn)) return;
    to_hubs = hub_other_than(t, about);
  }
  for (cl_conn *c = t->conns; c; c = c->next)
    if (c->state == C_UP && c->peer && c->peer->conn == c && c->peer != about && c->peer != from &&
        (!to_hubs || c->peer_reach)) {
      conn_put(c, CL_T_DOWN, 0, data, len);
      t->st.downs_sent++;
    }
}

/* p is down (reason): report it; announce: tell the others (put_news) what we found
 * (ANN_OWN) or heard (ANN_NEWS, from whom if we know) */
enum { ANN_NONE, ANN_OWN, ANN_NEWS };
static void member_down(cl_peer *p, const char *reason, int announce, const cl_peer *from, uint64_t inc,
                        uint32_t ver) {
  cl_transport *t = p->t;
  p->checking = 0; /* what a check would have found is moot now */
  p->limbo = 0;
  if (!p->alive) return;
  p->alive = 0;
  t->n_alive--;
  t->members_gen++;
  t->dig_ok = 0;
  p->down_known = 1;
  p->down_inc = inc;
  p->down_ver = ver;
  p->since_ms = p->down_ms = now_ms(t);
  cl_tbuf_free(&p->pend);
  large_update(t, 1);
  if (t->leaving || t->closing) return;
  if (announce) {
    uint8_t buf[CL_MW_DOWN_HEAD + CL_MW_STR_MAX];
    size_t n = down_frame(buf, p, inc, ver, reason_code(reason));
    put_news(t, buf, (uint32_t)n, p, from, announce == ANN_OWN);
  }
  if (t->cb.peer_down) t->cb.peer_down(t->cb.ud, p->nn.full, reason);
}

static void watch_recompute(cl_transport *t);
static void watch_peer(cl_transport *t, cl_peer *q);

/* The check of a closed connection (conn_down) ends: the member answered the dial
 * (CHECK_ALIVE), or its host refused it: then the close was a crash, reported and
 * announced (CHECK_DOWN). A dial that neither connects nor is refused within its
 * deadline (CHECK_UNKNOWN) proves nothing: at 300 nodes on 2 cores a loop stalled past
 * the deadline before it saw its connect complete, and each such check took a live
 * member down cluster-wide. After ALIVE or UNKNOWN the member is in limbo (limbo_expire):
 * down after a bound unless a connection with it is authenticated again. */
enum { CHECK_DOWN, CHECK_ALIVE, CHECK_UNKNOWN };
static int limbo_ours(const cl_peer *p);
static void check_settle(cl_peer *p, int verdict) {
  cl_transport *t = p->t;
  if (!p->checking) return;
  p->checking = 0;
  if (verdict != CHECK_DOWN && !limbo_ours(p) && p->limbo) {
    p->limbo = 0; /* its watchers decide */
    t->st.closes_to_watchers++;
  }
  if (verdict == CHECK_ALIVE) {
    t->st.closes_alive++;
    return;
  }
  if (verdict == CHECK_UNKNOWN) {
    t->st.closes_unknown++;
    /* a DOWN from another node, a close, and a dial unanswered: that is enough */
    doubt_settle(p);
    return;
  }
  if (!p->alive || p->conn || t->leaving || t->closing) return;
  t->st.closes_down++;
  cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "%s closed its connection and does not answer: down", p->nn.full);
  member_down(p, "closed", t->large ? ANN_OWN : ANN_NONE, NULL, p->incarnation, p->ver);
  watch_recompute(t);
}

/* p's connection closed without news of p (idle): a DOWN set aside for it stands now */
static void doubt_settle(cl_peer *p) {
  cl_transport *t = p->t;
  if (!p->doubted || p->conn || !p->alive || t->leaving || t->closing) return;
  p->doubted = 0;
  /* a hub's DOWN reached every member from the hub itself: nothing to pass on */
  member_down(p, down_reasons[p->doubt_rc], t->large && (!p->doubt_hub || t->reach_all) ? ANN_NEWS : ANN_NONE,
              NULL, p->doubt_inc, p->doubt_ver);
  watch_recompute(t);
}

#define CL_MEMBERS_FRAME_MAX (256u * 1024) /* a list larger than this goes in several frames */

/* Our member list (ourselves first) to c: what a newcomer learns the cluster from. */
static void send_members(cl_conn *c) {
  cl_transport *t = c->t;
  cl_tbuf b = {0};
  uint8_t e[CL_MW_MEMBER_MAX];
  size_t n = cl_mw_member_put(e, sizeof e, t->self.full, t->cfg.incarnation, t->ver, t->s_id, t->s_roles);
  if (n) cl_tbuf_append(&b, e, n);
  for (cl_peer *q = t->peers; q; q = q->next) {
    if (!q->alive || q == c->peer) continue;
    n = cl_mw_member_put(e, sizeof e, q->nn.full, q->incarnation, q->ver, q->node_id, q->roles);
    if (!n) continue;
    if (b.len + n > CL_MEMBERS_FRAME_MAX) {
      conn_put(c, CL_T_MEMBERS, 0, b.p, (uint32_t)b.len);
      b.len = 0;
    }
    cl_tbuf_append(&b, e, n);
  }
  if (b.len) conn_put(c, CL_T_MEMBERS, 0, b.p, (uint32_t)b.len);
  cl_tbuf_free(&b);
}

/* A digest of the members up here but this node and `except` (the other end of a new
 * connection): their number and the sum of a mix of (name, incarnation, version) each,
 * so the order they are held in does not matter. Two ends whose digests match hold the
 * same members up in the same lives and versions: neither needs the other's list. Each
 * new connection sent the whole list both ways: at 300 nodes 20 KB each way to be sealed,
 * opened and parsed entry by entry, and a new master, or a voting node that begins to
 * reach every member, opens hundreds of connections at once (on_members was 4 % of a
 * failover's samples; at 1,000 nodes a list is 70 KB; issue 18). */
static uint64_t member_mix(const cl_peer *q) {
  uint64_t z = q->ring ^ (q->incarnation * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)q->ver << 17);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull; /* splitmix64's finalizer */
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void members_walk(const cl_transport *t, uint32_t *n, uint64_t *sum) {
  *n = 0, *sum = 0;
  for (const cl_peer *q = t->peers; q; q = q->next)
    if (q->alive) *sum += member_mix(q), *n += 1;
}

static void members_digest(cl_transport *t, const cl_peer *except, uint32_t *n, uint64_t *sum) {
  if (!t->dig_ok) members_walk(t, &t->dig_n, &t->dig_sum), t->dig_ok = 1;
#ifdef CL_CHECK_CACHES
  uint32_t k;
  uint64_t s;
  members_walk(t, &k, &s);
  if (k != t->dig_n || s != t->dig_sum) {
    fprintf(stderr, "members_digest: the cached sum is stale (%u members cached, %u up)\n", t->dig_n, k);
    abort();
  }
#endif
  *n = t->dig_n;
  *sum = t->dig_sum;
  if (except && except->alive) *n -= 1, *sum -= member_mix(except); /* a sum: order and removal are free */
}

#define CL_DIGEST_LEN 12

static void send_digest(cl_conn *c) {
  uint32_t n;
  uint64_t sum;
  uint8_t b[CL_DIGEST_LEN];
  members_digest(c->t, c->peer, &n, &sum);
  cl_put_be32(b, n);
  cl_put_be64(b + 4, sum);
  conn_put(c, CL_T_DIGEST, 0, b, sizeof b);
}

/* the peer's digest: our list if ours differs (the peer sends its own likewise) */
static void on_digest(cl_conn *c, const cl_frame *f) {
  if (f->len != CL_DIGEST_LEN) return;
  uint32_t n;
  uint64_t sum;
  members_digest(c->t, c->peer, &n, &sum);
  if (n == cl_get_be32(f->data) && sum == cl_get_be64(f->data + 4)) {
    c->t->st.lists_skipped++;
    return;
  }
  c->t->st.lists_sent++;
  send_members(c);
}

/* What a large cluster's nodes pass on of members (a newcomer's entry, a refutation)
 * goes out at the next tick of the grid (announce_member), not at once: the news of
 * one tick leaves in one frame per connection. */
static int conn_hub(const cl_conn *c);
/* Of the entries waiting on c, those still true here: the member up in that very life
 * and version (or this node itself). A DOWN goes at once, so an entry queued before a
 * member went down would otherwise reach the peer after its DOWN and bring the member
 * back there, up for good (found by a review). Returns the length kept, in place. */
static size_t news_still_true(cl_transport *t, cl_conn *c) {
  size_t i = 0, kept = 0;
  cl_mw_member e;
  while (i < c->news.len) {
    size_t at = i;
    if (cl_mw_member_take(c->news.p, c->news.len, &i, &e)) break; /* ours: cannot be */
    const cl_peer *q = peer_exact(t, e.name);
    int self = !strcmp(e.name, t->self.full) && e.inc == t->cfg.incarnation && e.ver == t->ver;
    if (self || (q && q->alive && q->incarnation == e.inc && q->ver == e.ver)) {
      if (kept != at) memmove(c->news.p + kept, c->news.p + at, i - at);
      kept += i - at;
    }
  }
  return kept;
}

static void on_news_timer(uv_timer_t *h) {
  cl_transport *t = h->data;
  for (cl_conn *c = t->conns; c; c = c->next) {
    if (!c->news.len) continue;
    size_t n = news_still_true(t, c);
    if (n && c->state == C_UP && c->peer && c->peer->conn == c) {
      conn_put(c, CL_T_MEMBERS, 0, c->news.p, (uint32_t)n);
      t->st.news_frames++;
      t->st.news_to_hubs += conn_hub(c);
    }
    cl_tbuf_free(&c->news); /* a hub holds hundreds of connections: nothing kept at rest */
  }
}

/* One member's entry (about: the member, if we hold it as a peer) to pass on: from the
 * peer we heard it from (NULL: our own finding, a newcomer that connected to us, or a
 * refutation of our own). In a mesh, to every connection but about's and from's, at
 * once. In a large cluster every node used to pass each newcomer's entry to
 * each of its connections as it heard it: each node heard each newcomer once per
 * connection (about ten), each copy a wake-up at another moment, more than half of the
 * frames of a 300-node formation; at 500 nodes on 2 CPUs those wake-ups and the
 * handshakes they delayed tipped the machine into timeouts and the cluster never formed
 * (issue 18). So, as a DOWN (put_news): where hubs exist, a node passes what it heard
 * to its hubs alone, and nothing when a hub told it (the hub told every member itself);
 * a hub tells every connection (a DOWN a node found itself still goes to all, for the
 * failover's sake: a newcomer or a refutation reaches everyone one hop later through
 * a hub). And the entries wait
 * for the next tick of the grid (the beat's interval, 1 s in a large cluster), where
 * they leave in one frame per connection: the nodes of one machine tick together, so
 * news arrives when they wake anyway. A newcomer is then known to every member one or
 * two ticks later (it learns the cluster at once, from the list of the node it
 * connects to). */
static int hub_other_than(const cl_transport *t, const cl_peer *a);
static void announce_member(cl_transport *t, const char *name, uint64_t inc, uint32_t ver, const char *id,
                            const char *roles, const cl_peer *about, const cl_peer *from) {
  uint8_t e[CL_MW_MEMBER_MAX];
  size_t n = cl_mw_member_put(e, sizeof e, name, inc, ver, id, roles);
  if (!n) return;
  if (!t->large) {
    put_to_members(t, CL_T_MEMBERS, e, (uint32_t)n, about, from);
    return;
  }
  int to_hubs = 0;
  if (!t->reach_all) {
    if (from && from->conn && conn_hub(from->conn)) return;
    to_hubs = hub_other_than(t, about);
  }
  int any = 0;
  for (cl_conn *c = t->conns; c; c = c->next)
    if (c->state == C_UP && c->peer && c->peer->conn == c && c->peer != about && c->peer != from &&
        (!to_hubs || c->peer_reach)) {
      if (c->news.len + n > CL_MEMBERS_FRAME_MAX) {
        conn_put(c, CL_T_MEMBERS, 0, c->news.p, (uint32_t)c->news.len);
        c->news.len = 0;
      }
      cl_tbuf_append(&c->news, e, n);
      any = 1;
    }
  if (any && !t->closing && !uv_is_active((uv_handle_t *)&t->news_timer)) {
    uint64_t now = now_ms(t);
    uint64_t next = cl_grid_next(now, t->tick_ms);
    uv_timer_start(&t->news_timer, on_news_timer, next > now ? next - now : 1, 0);
  }
}

/* ---- connection lifecycle ---- */

static void on_conn_closed(uv_handle_t *h) {
  cl_conn *c = h->data;
  cl_transport *t = c->t;
  if (c->prev)
    c->prev->next = c->next;
  else
    t->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  for (cl_conn **pp = &t->dirty; *pp; pp = &(*pp)->dirty_next)
    if (*pp == c) {
      *pp = c->dirty_next;
      break;
    }
  while (c->dq_head) {
    cl_delayed *d = c->dq_head;
    c->dq_head = d->next;
    free(d);
  }
  if (t->tick_conn == c) t->tick_conn = NULL;
  if (c->hs_live) cl_hs_free(&c->hs);
  cl_frame_decoder_free(&c->fd);
  cl_opener_free(&c->opener);
  sodium_memzero(&c->seal, sizeof c->seal);
  cl_reauth_wipe(&c->ra);
  cl_writer_free(&c->w);
  cl_tbuf_free(&c->news);
  free(c);
  t->open_handles--;
  maybe_finish(t);
}

static void conn_close(cl_conn *c) {
  if (c->state == C_CLOSING) return;
  cl_peer *p = c->peer;
  if (c->data_owed) {
    /* a data connection asked for and not handed over: whatever closed it, say so once */
    c->data_owed = 0;
    data_failed(c->t, p, c->data_inc);
  }
  if (p && p->dial == c) p->dial = NULL;
  if (p && p->conn == c) {
    p->conn = NULL;
    c->installed = 0;
    c->t->connected--;
  }
  c->state = C_CLOSING;
  c->tcp.data = c;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* An installed connection ends: tell the user, close, and re-dial if still wanted. */
static void conn_down(cl_conn *c, const char *reason) {
  if (c->state == C_CLOSING) return;
  cl_transport *t = c->t;
  cl_peer *p = c->peer;
  int was_up = c->installed;
  if (was_up) {
    p->last_rx_ms = c->det.last_rx_ms;
    p->down_ms = now_ms(t);
  }
  conn_close(c);
  if (!was_up) {
    if (p && c->outgoing) peer_schedule(p, 0);
    return;
  }
  /* "idle": an IDLE frame, or a link this node drops alone while others hear the peer:
   * the member stays up */
  if (strcmp(reason, "idle") != 0 && !t->leaving && !t->closing) {
    cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "disconnected from %s: %s", p->nn.full, reason);
    if (!strcmp(reason, "left")) p->left = 1;
    /* In a large cluster most members hold no connection to p and hear it from us, so a
     * close is checked before it is news: dialled at once, p answers unless it crashed
     * (a kill -9: nothing listens, refused at once). Found at 300 nodes on 2 cores: 9
     * in 10 such closes were of live members (the check's counters), each of which took
     * the member down cluster-wide until it refuted. Closes made on purpose include a
     * duplicate of a simultaneous dial dropped, a dialer's handshake timeout after the
     * acceptor installed the connection, a watcher's timeout of a node only slow; which
     * of them dominated there was not measured. */
    if (!strcmp(reason, "closed") && t->large && !t->no_announce && !p->blocked && p->alive &&
        !t->reach_all && !limbo_ours(p) && hub_other_than(t, p)) {
      /* Not one of p's watchers, and hubs are here: they hold a connection to p and
       * check its close themselves (as its watchers do), then tell every member. A
       * check from every node that held a connection to p (all of them, for a master)
       * was a dial each, and each finding passed on: at 300 nodes, the larger part of
       * what a master's crash cost the machine while a new master was being elected
       * (issue 18). p stays up here until their DOWN comes. */
      t->st.closes_to_watchers++;
      doubt_settle(p);
      watch_peer(t, p);
      /* Nor soon, if p is still dialled (wanted: a seed every node lists, often the
       * first master): a re-dial refused while p is still up here is this node's own
       * finding, announced to every connection (on_connect), so each node that held a
       * connection to a crashed seed flooded its DOWN 25-75 ms after the close, ahead of
       * the hubs' (about 3,000 frames at 300 nodes, in the failover's first second). Its
       * watchers and the hubs decide; a seed that only closed a connection stays a
       * member, is dialled again after backoff_max, and at once for a message
       * (cl_transport_send, or one already queued). */
      if (p->pend.len) {
        peer_schedule(p, 1);
      } else {
        p->backoff_ms = t->cfg.backoff_max_ms;
        peer_schedule(p, 0);
        p->redial_deferred = uv_is_active((uv_handle_t *)&p->timer);
      }
      return;
    }
    if (!strcmp(reason, "closed") && t->large && !t->no_announce && !p->blocked && p->alive) {
      p->checking = 1;
      p->limbo = 1;
      t->limbo_maybe = 1;
      p->limbo_ms = now_ms(t);
      t->st.closes_checked++;
      watch_peer(t, p);
      peer_dial(p);
      return;
    }
    member_down(p, reason, t->large && !t->no_announce ? ANN_OWN : ANN_NONE, NULL, p->incarnation, p->ver);
  } else if (!strcmp(reason, "idle")) {
    doubt_settle(p);
  }
  watch_peer(t, p);
  /* one that left is forgotten on the next tick, unless wanted or kept */
  if (strcmp(reason, "left") == 0) t->sweep_due = 1;
  peer_schedule(p, 1);
}

static void set_addr(cl_conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  c->addr[0] = 0;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    char ip[64] = "";
    int port = 0;
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      uv_ip4_name(a, ip, sizeof ip);
      port = ntohs(a->sin_port);
      snprintf(c->addr, sizeof c->addr, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      uv_ip6_name(a, ip, sizeof ip);
      port = ntohs(a->sin6_port);
      snprintf(c->addr, sizeof c->addr, "[%s]:%d", ip, port);
    }
  }
  if (!c->addr[0]) snprintf(c->addr, sizeof c->addr, "?");
}

/* What a control connection keeps of its buffers between frames: most of its frames
 * are beats and heartbeats of tens of bytes, while a member list or a whole cluster
 * state can be 100 KB at 1,000 nodes. Kept, those buffers made a node's memory grow
 * with every list it ever sent or read on each of its connections (issue 18). */
#define CL_CTRL_KEEP 4096

static cl_conn *conn_new(cl_transport *t) {
  cl_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->t = t;
  c->w.keep_max = CL_CTRL_KEEP;
  c->opener.keep_max = CL_CTRL_KEEP;
  if (uv_tcp_init(t->loop, &c->tcp)) {
    free(c);
    return NULL;
  }
  c->tcp.data = c;
  c->next = t->conns;
  if (t->conns) t->conns->prev = c;
  t->conns = c;
  t->open_handles++;
  c->deadline_ms = now_ms(t) + t->cfg.handshake_timeout_ms;
  return c;
}

static void log_hs_failure(cl_conn *c) {
  cl_transport *t = c->t;
  int f = c->hs.fail;
  switch (f) {
  case CL_HSF_COOKIE:
    t->st.handshake_fail_cookie++;
    /* ours refused by the peer: under the primary we offered; a proof we refused: under
     * the key of ours the dialer named, if any; else "unknown" */
    if (c->outgoing && c->hs.refused_by_peer && c->hs.n_offered)
      count_fail(t, key_index(t, c->hs.offered[0].id));
    else
      count_fail(t, c->hs.fail_key);
    break;
  case CL_HSF_CLUSTER: t->st.handshake_fail_cluster++; break;
  case CL_HSF_VERSION: t->st.handshake_fail_version++; break;
  case CL_HSF_ENCRYPT: t->st.handshake_fail_encrypt++; break;
  case CL_HSF_NAME: t->st.handshake_fail_name++; break;
  case CL_HSF_GARBAGE: t->st.handshake_fail_garbage++; break;
  case CL_HSF_TIMEOUT: t->st.handshake_fail_timeout++; break;
  default: break;
  }
  if (f == CL_HSF_DUPLICATE || f == CL_HSF_BUSY) {
    cl_log(CL_LOG_DEBUG, SUBSYS(t), NULL, "connection %s %s dropped: %s",
           c->outgoing ? "to" : "from", c->outgoing ? c->peer->nn.full : c->addr, c->hs.reason);
    return;
  }
  /* A key failure is worth a warning once it can name our fingerprints (computed just
   * after start): the first attempts go to the debug log, the retries name them. */
  if (f == CL_HSF_COOKIE) {
    for (size_t i = 0; i < t->hs_cfg.n_keys; i++)
      if (!t->hs_cfg.keys[i].fp[0]) {
        cl_log(CL_LOG_DEBUG, SUBSYS(t), NULL, "handshake %s %s refused (no key in common); fingerprints pending",
               c->outgoing ? "with" : "from", c->outgoing ? c->peer->nn.full : c->addr);
        return;
      }
  }
  uint32_t supp = 0;
  if (!cl_ratelimit_allow(&t->rl_hs, now_ms(t), &supp)) return;
  char more[64] = "";
  if (supp) snprintf(more, sizeof more, " (%u similar suppressed)", supp);
  if (c->outgoing) {
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "%s %s (%s): %s%s",
           c->hs.refused_by_peer ? "refused by" : "refused handshake with", c->peer->nn.full, c->addr,
           c->hs.reason, more);
  } else {
    const char *claim = c->hs.peer_name[0] ? c->hs.peer_name : "?";
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "%s connection from %s (claims %s): %s%s",
           c->hs.refused_by_peer ? "refused by the peer:" : "refused", c->addr, claim, c->hs.reason, more);
  }
}

static void hs_failed(cl_conn *c) {
  log_hs_failure(c);
  if (c->data) {
    /* an outgoing one's failure is reported when it closes (conn_close) */
  } else if (c->outgoing && c->peer) {
    cl_peer *p = c->peer;
    if (p->dial == c) p->dial = NULL;
    p->verify = 0;
    /* after a lost tie-break the peer's dial normally wins; this re-dial is the
     * fallback if it does not (it does nothing once connected) */
    peer_schedule(p, 0);
  }
  /* let the REFUSE (if any) reach the peer before closing; the tick bounds the wait */
  if (c->w.out.len && c->hs.fail != CL_HSF_BUSY) {
    c->close_after_flush = 1;
    c->deadline_ms = now_ms(c->t) + 1000;
    mark_dirty(c);
  } else {
    conn_close(c);
  }
}

/* A beat (CL_T_PING of CL_BEAT_LEN bytes): our clock, and the clock of the peer's last
 * beat with how long we held it, so the peer measures the round trip from our beat
 * without a pong (both sides beat anyway: each one's beat is the other's proof of life). */
static void send_ping(cl_conn *c) {
  uint64_t us = uv_hrtime() / 1000;
  uint8_t x[CL_BEAT_LEN];
  cl_put_be64(x, us);
  cl_put_be64(x + 8, c->peer_beat_us);
  uint64_t held = c->peer_beat_us && us > c->peer_beat_rx_us ? us - c->peer_beat_rx_us : 0;
  cl_put_be64(x + 16, held);
  conn_put(c, CL_T_PING, 0, x, sizeof x);
  c->det.last_beat_ms = now_ms(c->t);
  c->t->st.beats_out++;
}

static void rtt_sample(cl_conn *c, uint64_t sent_us, uint64_t now_us, uint64_t held_us) {
  if (!sent_us || now_us < sent_us + held_us || now_us - sent_us >= 60000000) return;
  c->peer->rtt_us = cl_det_rtt_smooth(c->peer->rtt_us, (uint32_t)(now_us - sent_us - held_us));
}

/* ---- sparse failure detection (detector.h, watch.h) ----
 *
 * Each node watches its transport.watchers successors on a ring of node-name hashes,
 * among the peers it is connected to, and tells them (WATCH); a peer beats only to
 * those that asked. A watched peer silent for half its timeout is probed through up to
 * two other peers (its other watchers first); silent past the timeout with nobody
 * hearing it, it is closed "timeout" here and announced (DOWN) to every other peer,
 * each of which closes its own connection unless it heard from it within half a
 * timeout. docs/design.md §4 has the reasoning and the bounds. */

/* a peer by its exact full name (names on the wire are never short) */
static int conn_live(const cl_peer *p) { return p && p->conn && p->conn->state == C_UP; }

/* The silence after which a watched peer is down: above full_mesh_max members,
 * large_timeout_ms (2 s) toward every peer, the voting nodes' pinned ones included;
 * timeout_ms (400 ms) in a mesh. Found at 300 nodes on 2 cores: processes were starved for
 * more than 400 ms at a time while hundreds of them started (the master and the seeds
 * most, and the voting nodes in fsync), each false DOWN was news for every member, and the
 * cluster never formed. With 2 s for every peer (and the probes' wait and the freshness
 * window derived from it) 300 nodes formed with no false node_down; with 400 ms kept
 * between the voting nodes they formed with about 2,000 and a later case failed (issue 18,
 * design.md §4). A cluster whose voting nodes have their own cores can set
 * large_timeout_ms = timeout_ms. The issue's targets for a large cluster: a silent node
 * seen by all within 3 s. */
static uint32_t conn_timeout(const cl_transport *t) {
  return t->large ? t->cfg.large_timeout_ms : t->cfg.timeout_ms;
}

/* Above full_mesh_max members up here: every member is large (between three quarters of
 * full_mesh_max and full_mesh_max, large_update's hysteresis keeps older members large
 * while a newcomer is a mesh) */
static int all_large(const cl_transport *t) { return t->large && t->n_alive + 1 > t->cfg.full_mesh_max; }

/* The beat interval this node asks of the peers it watches (WATCH), and its tick's grid:
 * above full_mesh_max members large_heartbeat_ms (half the 2 s timeout), else
 * heartbeat_ms. A node at rest wakes for its tick and its watchers' beats, so at 1 s
 * rather than 200 ms it wakes less (issue 18, with the master's heartbeat at the same
 * interval; design.md §4, docs/benchmarks.md). At least 5 ms (the tick's floor, and
 * what WATCH accepts). */
static uint32_t beat_interval(const cl_transport *t) {
  uint32_t b = t->large ? t->cfg.large_heartbeat_ms : t->cfg.heartbeat_ms;
  return b < CL_MW_BEAT_MIN ? CL_MW_BEAT_MIN : b > CL_MW_BEAT_MAX ? CL_MW_BEAT_MAX : b;
}

/* The tick's grid: the beat interval, but at least once a second (the sweep, the round
 * trip's beat of CL_DET_BEAT_MAX_MS). A grid that changes starts at its next multiple if
 * that comes sooner than the old one's, and the tick is re-armed for it (a shorter beat
 * left on the longer grid went unbeaten for up to the old interval: found by a review). */
static void tick_arm(cl_transport *t);
static void tick_interval_update(cl_transport *t) {
  uint32_t b = beat_interval(t);
  if (b > CL_DET_BEAT_MAX_MS) b = CL_DET_BEAT_MAX_MS;
  if (b == t->tick_ms) return;
  t->tick_ms = b;
  uint64_t now = now_ms(t), next = (now / b + 1) * b;
  if (next < t->next_beat_ms) t->next_beat_ms = next;
  if (uv_is_active((uv_handle_t *)&t->tick)) tick_arm(t);
}

/* A DOWN is set aside by a node that heard its subject within this window (design.md
 * §4), which must stay shorter than the announcer's timeout, or a node that does not
 * watch a stopped peer could keep it up for good. Above full_mesh_max members every
 * node is large and times out after large_timeout_ms: a window from it and the large
 * beat (500 ms with the defaults, 2 s and 1 s). Between
 * three quarters of full_mesh_max and full_mesh_max, older members stay large
 * (large_update's hysteresis) while a newcomer is a mesh and announces after
 * timeout_ms: there, the mesh's window (found by a review). */
static uint32_t fresh_ms(const cl_transport *t) {
  if (all_large(t)) return cl_det_fresh_ms(t->cfg.large_heartbeat_ms, conn_timeout(t));
  return cl_det_fresh_ms(t->cfg.heartbeat_ms, t->cfg.timeout_ms);
}

/* the connected peers as watch.h wants them */
typedef struct {
  size_t n;
  cl_peer **p;
  const char **names;
  uint64_t *h;
} ring_view;

static void ring_free(ring_view *r) {
  free(r->p);
  free(r->names);
  free(r->h);
}

/* the connected peers, or (members) the members up, connected or not */
static int ring_of(cl_transport *t, ring_view *r, int members) {
  memset(r, 0, sizeof *r);
  size_t n = 0;
  for (cl_peer *q = t->peers; q; q = q->next) n += members ? q->alive : conn_live(q);
  if (!n) return 0;
  r->p = malloc(n * sizeof *r->p);
  r->names = malloc(n * sizeof *r->names);
  r->h = malloc(n * sizeof *r->h);
  if (!r->p || !r->names || !r->h) {
    ring_free(r);
    return -1;
  }
  for (cl_peer *q = t->peers; q; q = q->next)
    if (members ? q->alive : conn_live(q)) {
      r->p[r->n] = q;
      r->names[r->n] = q->nn.full;
      r->h[r->n++] = q->ring;
    }
  return 0;
}

static int ring_get(cl_transport *t, ring_view *r) { return ring_of(t, r, 0); }

/* One peer's part of the watched set: dial a successor we need and hold no connection
 * to (or any member, under reach_all), ask a newly watched peer for beats, tell one no
 * longer watched to stop. */
static void watch_apply(cl_transport *t, cl_peer *q, uint64_t now, uint32_t beat) {
  q->need = t->large && q->sel;
  if (!conn_live(q)) {
    if (q->dial || q->resolving || uv_is_active((uv_handle_t *)&q->timer)) return;
    int dial = q->need;
    if (!dial && t->large && t->reach_all && q->alive && !q->blocked && !q->forgetting && !q->left) {
      if (t->reach_budget) t->reach_budget--, t->st.reach_dials++, dial = 1;
      else t->reach_pending = 1; /* the next tick dials it */
    }
    if (dial) peer_dial(q);
    return;
  }
  int want = q->pinned || q->sel;
  cl_conn *c = q->conn;
  if (c->det.timeout_ms) c->det.timeout_ms = conn_timeout(t); /* the cluster grew, shrank, or pins moved */
  /* a watched peer is asked again when the beat changed (the cluster became large, or
   * a mesh again): until its new beats come, the timeout already is the new one */
  if (want == c->det.watching && (!want || c->det.heartbeat_ms == beat)) return;
  /* a new interval restarts the silence: a mesh again (400 ms) would otherwise find a
   * beat sent on the 500 ms grid already past its timeout (found by a review) */
  if (want && c->det.watching) cl_det_watch(&c->det, now, 0);
  cl_det_watch(&c->det, now, want);
  if (want) c->det.heartbeat_ms = beat;
  uint8_t w[CL_MW_WATCH_LEN];
  conn_put(c, CL_T_WATCH, 0, w, cl_mw_watch_put(w, want, beat));
}

/* Whom we watch: our `watchers` successors on the ring of connected peers, and every
 * pinned peer (cl_transport_pin: the node pins the other voting nodes, so a voting node
 * cut off from the rest loses them within one timeout, not by the ring's cascade),
 * recomputed whenever a connection comes up or goes down or the pins change. A peer
 * that enters the set is told (WATCH 1) and its silence counts from now; one that
 * leaves it is told to stop. */
static void watch_recompute(cl_transport *t) {
  if (t->closing || t->leaving) return;
  /* in a large cluster the ring is made of the members (we dial the successors we are
   * not connected to); in a mesh, of the connected peers, as every member is one */
  ring_view r;
  if (ring_of(t, &r, t->large)) return; /* out of memory: the current set stays */
  size_t sel[CL_WATCH_MAX];
  size_t m = cl_watch_pick(r.names, r.h, r.n, t->self.full, t->ring, 1, SIZE_MAX, t->cfg.watchers, sel);
  uint64_t now = now_ms(t);
  uint32_t beat = beat_interval(t);
  for (cl_peer *q = t->peers; q; q = q->next) q->sel = 0;
  for (size_t j = 0; j < m; j++) r.p[sel[j]]->sel = 1;
  ring_free(&r);
  t->sel_gen = t->members_gen;
  t->sel_large = t->large;
  for (cl_peer *q = t->peers; q; q = q->next) watch_apply(t, q, now, beat);
}

/* Something happened to q alone: its connection came up or went down, or news of it
 * came (most copies of a DOWN find it down already). In a large cluster whose members
 * did not change the watched set still holds, so only q's part is redone: the whole
 * recompute walks every member (twice, and builds the ring), a new master opens a
 * connection to every member in a failover, and each node hears a DOWN once per
 * connection (at 300 nodes on 2 cores, ring_of and watch_recompute were about 4 % of
 * the control loops' samples in a failover). In a mesh the ring is made of the
 * connections, so every change moves it. */
static void watch_peer(cl_transport *t, cl_peer *q) {
  if (t->closing || t->leaving) return;
  if (!t->large || t->sel_large != t->large || t->sel_gen != t->members_gen) {
    watch_recompute(t);
    return;
  }
  watch_apply(t, q, now_ms(t), beat_interval(t));
}

/* A watched peer went quiet for half its timeout: ask up to two other peers to probe it,
 * its other watchers first (the peers just before it on the ring). */
static void probe_request(cl_conn *c) {
  cl_transport *t = c->t;
  cl_peer *b = c->peer;
  c->probe_seq++;
  ring_view r;
  if (ring_get(t, &r)) return;
  size_t skip = SIZE_MAX, sel[2];
  for (size_t i = 0; i < r.n; i++)
    if (r.p[i] == b) skip = i;
  size_t m = cl_watch_pick(r.names, r.h, r.n, NULL, b->ring, 0, skip, 2, sel);
  uint8_t buf[CL_MW_PROBE_REQ_HEAD + CL_MW_STR_MAX];
  size_t n = cl_mw_probe_req_put(buf, c->probe_seq, b->nn.full);
  memset(c->probe_via, 0, sizeof c->probe_via);
  for (size_t j = 0; j < m; j++) {
    snprintf(c->probe_via[j], sizeof c->probe_via[j], "%s", r.p[sel[j]]->nn.full);
    conn_put(r.p[sel[j]]->conn, CL_T_PROBE_REQ, 0, buf, (uint32_t)n);
    t->st.probes_requested++;
  }
  cl_log(CL_LOG_DEBUG, SUBSYS(t), NULL, "%s silent for %llu ms: asked %zu peers to probe it", b->nn.full,
         (unsigned long long)(now_ms(t) - c->det.last_rx_ms), m);
  ring_free(&r);
}

static void probe_answer(cl_transport *t, const char *req, uint32_t seq, int alive, const char *target) {
  cl_peer *a = peer_exact(t, req);
  if (!conn_live(a)) return;
  uint8_t buf[CL_MW_PROBE_RES_HEAD + CL_MW_STR_MAX];
  size_t n = cl_mw_probe_res_put(buf, seq, alive, target);
  if (n) conn_put(a->conn, CL_T_PROBE_RES, 0, buf, (uint32_t)n);
}

/* Another node asks whether target answers us: ping it over our own connection (it
 * answers a short ping with a pong at once); its pong answers "alive" (probe_heard),
 * half a timeout without one "no answer" (probes_expire). Only the pong counts, not any
 * frame: one already on its way when the target stopped must not vouch for it. */
static void on_probe_req(cl_conn *c, const cl_frame *f) {
  cl_transport *t = c->t;
  cl_mw_probe req;
  if (cl_mw_probe_req_take(f->data, f->len, &req)) return;
  const char *target = req.name;
  uint32_t seq = req.seq;
  t->st.probes_served++;
  if (!strcmp(target, t->self.full)) {
    probe_answer(t, c->peer->nn.full, seq, 1, target);
    return;
  }
  cl_peer *b = peer_exact(t, target);
  /* the slots are shared by every peer that asks: one that holds CL_PROBES_PER_PEER
   * already (more than its watchers' suspicions at once need by default) gets "no answer",
   * so a buggy or hostile peer cannot take every other node's confirmation through us */
  cl_probe *slot = NULL;
  size_t held = 0;
  for (size_t i = 0; i < CL_PROBES_MAX; i++) {
    if (!t->probes[i].used)
      slot = slot ? slot : &t->probes[i];
    else if (!strcmp(t->probes[i].req, c->peer->nn.full))
      held++;
  }
  if (!conn_live(b) || b == c->peer || !slot || held >= CL_PROBES_PER_PEER) {
    probe_answer(t, c->peer->nn.full, seq, 0, target);
    return;
  }
  slot->used = 1;
  slot->seq = seq;
  /* half the requester's timeout, which is ours (a large cluster's for every peer) */
  slot->deadline_ms = now_ms(t) + conn_timeout(t) / 2;
  snprintf(slot->req, sizeof slot->req, "%s", c->peer->nn.full);
  snprintf(slot->target, sizeof slot->target, "%s", target);
  b->probed = 1;
  slot->sent_us = uv_hrtime() / 1000;
  uint8_t x[8];
  cl_put_be64(x, slot->sent_us);
  conn_put(b->conn, CL_T_PING, 0, x, sizeof x);
}

/* p's pong echoing our ping of echo_us: every probe of p pinged then or before is
 * answered "alive" (p ran after the request) */
static void probe_heard(cl_transport *t, cl_peer *p, uint64_t echo_us) {
  int left = 0;
  for (size_t i = 0; i < CL_PROBES_MAX; i++) {
    cl_probe *q = &t->probes[i];
    if (!q->used || strcmp(q->target, p->nn.full)) continue;
    if (q->sent_us > echo_us) {
      left = 1;
      continue;
    }
    q->used = 0;
    probe_answer(t, q->req, q->seq, 1, q->target);
  }
  p->probed = left;
}

static uint64_t probes_expire(cl_transport *t, uint64_t now) {
  uint64_t next = UINT64_MAX;
  for (size_t i = 0; i < CL_PROBES_MAX; i++) {
    cl_probe *q = &t->probes[i];
    if (!q->used) continue;
    if (now >= q->deadline_ms) {
      q->used = 0;
      probe_answer(t, q->req, q->seq, 0, q->target);
    } else if (q->deadline_ms < next) {
      next = q->deadline_ms;
    }
  }
  return next;
}

static void on_probe_res(cl_conn *c, const cl_frame *f) {
  cl_transport *t = c->t;
  cl_mw_probe res;
  if (cl_mw_probe_res_take(f->data, f->len, &res)) return;
  const char *target = res.name;
  int alive = res.alive;
  if (alive)
    t->st.probe_alive++;
  else
    t->st.probe_none++;
  cl_peer *b = peer_exact(t, target);
  /* an answer counts only from a peer we asked, for the suspicion we asked about: any
   * other peer's "alive" would turn b's DOWN (announced to all) into a quiet close of our
   * own link, leaving b to the others, who may not watch it */
  const char *from = c->peer->nn.full;
  if (alive && conn_live(b) && b->conn->probe_seq == res.seq &&
      (!strcmp(from, b->conn->probe_via[0]) || !strcmp(from, b->conn->probe_via[1]))) {
    cl_log(CL_LOG_DEBUG, SUBSYS(t), NULL, "%s answered a probe by %s", b->nn.full, c->peer->nn.full);
    cl_det_vouched(&b->conn->det);
  }
}

/* A watched peer stayed silent past its timeout and nobody heard it meanwhile: close
 * its connection here and tell every other peer (each closes its own, on_down). */
static void declare_down(cl_conn *c) {
  cl_transport *t = c->t;
  cl_peer *b = c->peer;
  uint8_t buf[CL_MW_DOWN_HEAD + CL_MW_STR_MAX];
  size_t n = down_frame(buf, b, b->incarnation, b->ver, 0);
  int large = t->large;
  t->st.downs_announced++;
  conn_down(c, "timeout"); /* in a large cluster, that announces it */
  if (large) return;
  put_to_members(t, CL_T_DOWN, buf, (uint32_t)n, b, NULL);
}

/* Another node declared b down (or saw its connection close, or its LEAVE). A node that
 * heard b within the freshness window (cl_det_fresh_ms: half a timeout, less when beats
 * are sparse) has proof that b ran after the silence that node saw began (a stopped b
 * falls silent on every connection at once, and its watcher waited a whole timeout after
 * b's last beat to it), so it keeps b: only that node's link to b is in question. Otherwise it
 * closes its own connection to b too, or, holding none, takes the news as it is; in a
 * large cluster it passes it on once (a node already holding b down does not), so every
 * member reports b down, not only its watchers. News of an older life of b (incarnation,
 * version) is stale. Of itself, a node refutes it: it raises its version and lists
 * itself again. */
static void on_down(cl_conn *c, const cl_frame *f) {
  cl_transport *t = c->t;
  cl_mw_down dn;
  if (cl_mw_down_take(f->data, f->len, &dn)) return;
  const char *name = dn.name;
  uint64_t inc = dn.inc;
  uint32_t ver = dn.ver;
  uint8_t rc = dn.reason;
  const char *reason = down_reasons[rc];
  if (!strcmp(name, t->self.full)) {
    if (inc == t->cfg.incarnation && ver >= t->ver && !t->leaving) {
      t->ver = ver + 1;
      cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "%s says this node is down (%s): refuting (member version %u)",
             c->peer->nn.full, reason, t->ver);
      announce_member(t, t->self.full, t->cfg.incarnation, t->ver, t->s_id, t->s_roles, NULL, NULL);
      /* the members this node itself took down lately may only have dropped it (they
       * declared it down, which closed their connections here): dial them once to see */
      if (t->large)
        for (cl_peer *q = t->peers; q; q = q->next)
          if (!q->alive && q->down_known && !q->left && !q->blocked && !q->conn && !q->dial && !q->resolving &&
              now_ms(t) - q->down_ms < 4 * (uint64_t)t->cfg.timeout_ms + 2000) {
            q->verify = 1;
            peer_dial(q);
          }
    }
    return;
  }
  cl_peer *b = peer_exact(t, name);
  if (!b || b == c->peer || !b->alive) return;
  if (b->incarnation > inc || (b->incarnation == inc && b->ver > ver)) return;
  uint64_t now = now_ms(t);
  if (conn_live(b) && !b->conn->close_after_flush) {
    /* ... and in a large cluster a voting node keeps a voting peer it pins on another's
     * timeout, whenever it last heard it: it watches that peer itself, with the same
     * timeout as the announcer, and decides within it (a stopped peer is down here one
     * timeout after its last frame, as on the announcer). Found at 500 nodes on 2 CPUs:
     * one starved ring watcher of the master timed it out, and the voting nodes, whose
     * last frame from it (a heartbeat a second) was older than the 500 ms window, dropped
     * their master on its word; the election that followed never ended (issue 18). */
    if (rc != CL_MW_DOWN_LEFT && (now < b->conn->det.last_rx_ms + fresh_ms(t) ||
                                  (t->large && rc == CL_MW_DOWN_TIMEOUT && b->pinned && b->conn->det.watching))) {
      b->doubted = 1;
      b->doubt_hub = conn_hub(c);
      b->doubt_rc = rc;
      b->doubt_inc = inc;
      b->doubt_ver = ver;
      return;
    }
    cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "%s declared %s down (%s) and nothing came from it here for %llu ms: closing",
           c->peer->nn.full, b->nn.full, reason, (unsigned long long)(now - b->conn->det.last_rx_ms));
    t->st.downs_applied++;
    if (rc == CL_MW_DOWN_LEFT) { /* it left: nobody is there to take the close amiss */
      conn_down(b->conn, "left");
      return;
    }
    /* Close with an IDLE frame first: if b is alive after all, a bare close would look
     * like this node crashing, b would announce this node down, and in a large cluster
     * each such close begets more (a storm measured at 60 nodes, each listing all). b is
     * down here once the IDLE is flushed (or after 1 s): the DOWN waits as a doubt that
     * the close settles (doubt_settle), as when a connection closes idle. */
    b->doubted = 1;
    b->doubt_hub = conn_hub(c);
    b->doubt_rc = rc;
    b->doubt_inc = inc;
    b->doubt_ver = ver;
    cl_frame_put(&b->conn->w.out, CL_T_IDLE, 0, NULL, 0);
    t->st.frames_out++;
    b->conn->close_after_flush = 1;
    b->conn->deadline_ms = now + 1000;
    mark_dirty(b->conn);
    return;
  }
  t->st.downs_applied++;
  if (rc == CL_MW_DOWN_LEFT) {
    b->left = 1;
    t->sweep_due = 1;
  }
  cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "%s reports %s down (%s)", c->peer->nn.full, b->nn.full, reason);
  member_down(b, reason, t->large ? ANN_NEWS : ANN_NONE, c->peer, inc, ver);
  watch_peer(t, b); /* most copies of a DOWN find b down already: nothing moved */
}

/* Another member's list (on connecting, or one newcomer or refutation passed on). In a
 * mesh, a listed node is dialled and is a member once connected, as before; in a large
 * cluster, it is a member now (no connection), and what is news here is passed on once. */
static void on_members(cl_conn *c, const cl_frame *f) {
  cl_transport *t = c->t;
  if (!t->cfg.mesh || t->leaving) return;
  cl_mw_member e;
  /* a newcomer learns a large cluster from one list: decide the mode on the whole of it */
  size_t fresh = 0, i = 0;
  while (i < f->len) {
    if (cl_mw_member_take(f->data, f->len, &i, &e)) return; /* malformed: none of it */
    cl_peer *q = peer_exact(t, e.name);
    fresh += strcmp(e.name, t->self.full) && (!q || !q->alive);
  }
  if (!t->large && t->n_alive + 1 + fresh > t->cfg.full_mesh_max) {
    t->large = 1;
    tick_interval_update(t);
  }
  size_t known = t->n_peers;
  size_t cap = t->cfg.max_learned_peers ? t->cfg.max_learned_peers : CL_MAX_PEERS_DEFAULT;
  uint64_t now = now_ms(t);
  int changed = 0;
  for (i = 0; i < f->len && cl_mw_member_take(f->data, f->len, &i, &e) == 0;) {
    cl_node_name nn;
    if (cl_node_name_parse(e.name, &nn, NULL, 0) || strcmp(nn.full, e.name) || !strcmp(nn.full, t->self.full)) continue;
    cl_peer *q = peer_exact(t, nn.full);
    if (!q && known < cap && (q = add_peer(t, &nn))) known++;
    if (!q || q->blocked || q->forgetting) continue;
    if (q->alive) {
      if (e.inc > q->incarnation && !conn_live(q)) {
        member_down(q, "closed", ANN_NONE, NULL, q->incarnation, q->ver); /* restarted: that life is over */
      } else {
        if (e.inc == q->incarnation && e.ver > q->ver) {
          q->ver = e.ver; /* a refutation: pass it on to those that may hold it down */
          t->dig_ok = 0;
          if (t->large) announce_member(t, e.name, e.inc, e.ver, e.id, e.roles, q, c->peer);
        }
        continue;
      }
    }
    if (q->down_known && (e.inc < q->down_inc || (e.inc == q->down_inc && e.ver <= q->down_ver))) {
      /* Another member lists it up in the very life and version we hold it down in: one
       * of us is stale (it has not heard the DOWN yet, or we were the one cut off and our
       * DOWN never got out). Dial it once to see: if it answers, it is up here at once
       * and hears it was declared down, so it refutes and every member takes it back;
       * if not, it stays down. */
      if (t->large && e.inc == q->down_inc && e.ver == q->down_ver && !q->conn && !q->dial && !q->resolving &&
          !q->verify &&
          !(q->verified && q->verified_inc == e.inc && q->verified_ver == e.ver &&
            now - q->verified_ms < t->cfg.redial_failed_ms)) {
        q->verify = 1;
        q->verified = 1;
        q->verified_inc = e.inc;
        q->verified_ver = e.ver;
        q->verified_ms = now;
        peer_dial(q);
      }
      continue;
    }
    if (!q->wanted) q->learned = 1;
    if (!t->large) {
      if (!q->conn) {
        q->down_ms = now; /* its reconnect_timeout runs from now */
        peer_dial(q);
      }
      continue;
    }
    q->incarnation = e.inc;
    q->ver = e.ver;
    pstr_set(&q->node_id, e.id);
    pstr_set(&q->roles, e.roles);
    member_up(q);
    announce_member(t, e.name, e.inc, e.ver, e.id, e.roles, q, c->peer);
    changed = 1;
  }
  if (changed) watch_recompute(t);
}

/* The handshake succeeded: decide whether this connection becomes the pair's one. */
static void conn_authenticated(cl_conn *c) {
  cl_transport *t = c->t;
  cl_handshake *hs = &c->hs;
  cl_peer *p = c->peer;
  if (!p) {
    cl_node_name nn;
    if (cl_node_name_parse(hs->peer_name, &nn, NULL, 0)) {
      conn_close(c);
      return;
    }
    p = find_peer(t, nn.full);
    if (!p) p = add_peer(t, &nn);
    if (!p) {
      conn_close(c);
      return;
    }
    c->peer = p;
  }
  if (t->leaving) {
    /* our dial, authenticated while we leave: the peer has installed it already (its
     * ACCEPT came first), so a bare close would look like a crash there: say LEAVE */
    c->state = C_UP;
    c->w.raw_len = c->w.out.len;
    c->encrypt = t->cfg.encrypt;
    memcpy(c->seal.key, hs->key_tx, 32);
    memcpy(c->opener.rx.key, hs->key_rx, 32);
    cl_frame_decoder_init(&c->fd, CL_FD_SESSION, 0, t->cfg.max_frame);
    c->fd.keep_max = CL_CTRL_KEEP;
    cl_hs_free(hs);
    c->hs_live = 0;
    if (p->dial == c) p->dial = NULL;
    cl_frame_put(&c->w.out, CL_T_LEAVE, 0, NULL, 0);
    c->close_after_flush = 1;
    c->deadline_ms = now_ms(t) + 1000;
    mark_dirty(c);
    return;
  }
  cl_conn *old = p->conn;
  if (old && old != c) {
    if (hs->peer_incarnation <= p->incarnation) {
      /* the live one stays; this one raced it */
      cl_log(CL_LOG_DEBUG, SUBSYS(t), NULL, "dropping duplicate connection with %s", p->nn.full);
      if (p->dial == c) p->dial = NULL;
      conn_close(c);
      return;
    }
    cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "%s restarted (incarnation %llu -> %llu): replacing its connection",
           p->nn.full, (unsigned long long)p->incarnation, (unsigned long long)hs->peer_incarnation);
    conn_down(old, "closed");
  }
  if (p->dial && p->dial != c) {
    cl_conn *d = p->dial;
    p->dial = NULL;
    conn_close(d);
  }
  if (p->dial == c) p->dial = NULL;
  p->verify = 0;
  /* a closed connection's check answered by the peer's own dial */
  check_settle(p, CHECK_ALIVE);
  uv_timer_stop(&p->timer);
  p->redial_deferred = 0;
  /* a member up through others (a large cluster) that restarted meanwhile: that life is over */
  if (p->alive && hs->peer_incarnation > p->incarnation)
    member_down(p, "closed", t->large ? ANN_OWN : ANN_NONE, NULL, p->incarnation, p->ver);
  int was_alive = p->alive;
  if (hs->peer_incarnation != p->incarnation) p->ver = 0, t->dig_ok = 0;
  p->conn = c;
  c->installed = 1;
  p->limbo = 0; /* connected and authenticated: whatever the close was, p is here */
  t->connected++;
  c->state = C_UP;
  c->w.raw_len = c->w.out.len; /* the ACCEPT just queued goes out in the clear */
  pstr_set(&p->node_id, hs->peer_id);
  pstr_set(&p->roles, hs->peer_roles);
  p->incarnation = hs->peer_incarnation;
  p->data_ok = t->hs_cfg.data_conns && hs->peer_data_conns;
  p->left = 0;
  p->member = 1;
  p->backoff_ms = t->cfg.backoff_min_ms;
  p->rl.in_window = 0; /* a failure after this is news: logged at once */
  /* a measured round trip from the start (node_up carries it); heartbeats refine it */
  p->rtt_us = c->hs_rtt_us ? c->hs_rtt_us : 1;
  p->last_data_ms = now_ms(t); /* idle_close_ms counts from here at the earliest */
  if (!was_alive) p->since_ms = now_ms(t);
  cl_det_up(&c->det, now_ms(t), beat_interval(t), conn_timeout(t));
  c->det.grace_ms = t->grace_ms;
  c->encrypt = t->cfg.encrypt;
  memcpy(c->seal.key, hs->key_tx, 32);
  memcpy(c->opener.rx.key, hs->key_rx, 32);
  cl_reauth_init(&c->ra, &hs->key, hs->transcript);
  count_hs(t, c->ra.key.id);
  cl_frame_decoder_init(&c->fd, CL_FD_SESSION, 0, t->cfg.max_frame);
  c->fd.keep_max = CL_CTRL_KEEP;
  cl_hs_free(hs);
  c->hs_live = 0;
  t->st.connects_ok++;
  cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "connected to %s (key %s)", p->nn.full, key_fp(t, &c->ra.key));
  send_ping(c);
  /* the ring lost this key while the handshake ran */
  if (key_index(t, c->ra.key.id) < 0) reauth_start(c);
  /* A peer we did not hold up (a newcomer, a restart, a return) gets the whole list at
   * once: it learns the cluster from it, and decides from its size whether the cluster
   * is large before anything else comes (a one-entry announcement first would have it
   * dial as in a mesh). One we held up already gets a digest, and the list only if the
   * views differ (on_digest). */
  if (was_alive) {
    send_digest(c);
  } else {
    t->st.lists_sent++;
    send_members(c);
  }
  if (t->reach_all) {
    uint8_t on = 1;
    conn_put(c, CL_T_REACH, 0, &on, 1);
  }
  /* it was declared down in this life (a large cluster): tell it, so it refutes */
  if (t->large && p->down_known && p->down_inc == p->incarnation && !was_alive) {
    uint8_t buf[CL_MW_DOWN_HEAD + CL_MW_STR_MAX];
    conn_put(c, CL_T_DOWN, 0, buf, (uint32_t)down_frame(buf, p, p->down_inc, p->down_ver, 1));
  }
  /* tell the others about the newcomer, so meshes form from any seed */
  if (!was_alive) announce_member(t, p->nn.full, p->incarnation, p->ver, p->node_id, p->roles, p, NULL);
  /* messages queued while this connection was opened on demand */
  if (p->pend.len) {
    if (cl_tbuf_append(&c->w.out, p->pend.p, p->pend.len) == 0) mark_dirty(c);
    cl_tbuf_free(&p->pend);
  }
  member_up(p);
  watch_peer(t, p);
  /* no data connection yet: one opens when either side first has a message for the
   * other (cl_transport_data_open), so a formation costs one connection per pair */
}

/* The data connection asked for (cl_transport_data_open) in the peer's life incarnation
 * will not come: the callback with fd -1 (the node drops it if that life is over). */
static void data_failed(cl_transport *t, cl_peer *p, uint64_t incarnation) {
  if (!t->cb.data_conn || t->closing || !p) return;
  cl_data_conn dc;
  memset(&dc, 0, sizeof dc);
  dc.name = p->nn.full;
  dc.incarnation = incarnation;
  dc.fd = -1;
  t->cb.data_conn(t->cb.ud, &dc);
}

/* A data connection authenticated: give its socket to the data_conn callback. The
 * socket is duplicated and this handle closed (closing one descriptor of the pair sends
 * nothing to the peer, and takes it out of this loop's epoll set). */
static void data_handoff(cl_conn *c, const uint8_t *in, size_t inlen) {
  cl_transport *t = c->t;
  cl_handshake *hs = &c->hs;
  cl_peer *p = c->peer ? c->peer : find_peer(t, hs->peer_name);
  uv_os_fd_t fd = -1;
  int nfd = -1;
  if (p && p->conn && p->conn->state == C_UP && p->incarnation == hs->peer_incarnation && !t->leaving &&
      !t->closing && t->cb.data_conn && !c->w.writing && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
    nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (nfd < 0) {
    cl_log(CL_LOG_DEBUG, SUBSYS(t), NULL, "data connection %s %s dropped: its control connection is gone",
           c->outgoing ? "to" : "from", p ? p->nn.full : c->addr);
    conn_close(c); /* an outgoing one's failure is reported there */
    return;
  }
  uv_read_stop((uv_stream_t *)&c->tcp);
  cl_tbuf pre = {0};
  if (cl_tbuf_append(&pre, c->w.wire.p + c->w.wire_off, c->w.wire.len - c->w.wire_off) ||
      cl_tbuf_append(&pre, c->w.out.p, c->w.out.len)) {
    close(nfd);
    cl_tbuf_free(&pre);
    conn_close(c); /* an outgoing one's failure is reported there */
    return;
  }
  cl_data_conn dc;
  memset(&dc, 0, sizeof dc);
  dc.name = p->nn.full;
  dc.incarnation = p->incarnation;
  dc.fd = nfd;
  dc.encrypt = t->cfg.encrypt;
  memcpy(dc.key_tx, hs->key_tx, 32);
  memcpy(dc.key_rx, hs->key_rx, 32);
  memcpy(dc.key_hs, hs->key.k_hs, 32);
  memcpy(dc.key_sess, hs->key.k_sess, 32);
  memcpy(dc.sid, hs->transcript, 32);
  dc.pre_out = pre.p;
  dc.pre_out_len = pre.len;
  dc.pre_in = in;
  dc.pre_in_len = inlen;
  c->w.out.len = 0;
  c->w.wire.len = c->w.wire_off = 0;
  count_hs(t, hs->key.id);
  c->data_owed = 0; /* handed over below */
  conn_close(c);
  t->st.data_conns++;
  cl_log(CL_LOG_DEBUG, SUBSYS(t), NULL, "data connection with %s up", p->nn.full);
  t->cb.data_conn(t->cb.ud, &dc);
  sodium_memzero(&dc, sizeof dc);
  cl_tbuf_free(&pre);
}

/* ---- reading ---- */

static int on_plain(void *ud, const uint8_t *p, size_t n) {
  cl_conn *c = ud;
  int r = cl_frame_decoder_feed(&c->fd, p, n, NULL, on_session_frame, c);
  if (r < 0) {
    cl_transport *t = c->t;
    if (c->fd.oversize)
      t->st.frames_refused_oversize++;
    else
      t->st.frames_refused_garbage++;
    uint32_t supp = 0;
    if (cl_ratelimit_allow(&t->rl_frame, now_ms(t), &supp))
      cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "closing connection with %s (%s): %s", c->peer->nn.full,
             c->addr, c->fd.reason);
    conn_down(c, "closed");
    return 1;
  }
  return c->state != C_UP;
}

static void session_input(cl_conn *c, uint8_t *p, size_t n) {
  if (!n || c->state != C_UP) return;
  if (c->encrypt) {
    int r = cl_session_open(&c->opener, p, n, on_plain, c);
    if (r < 0 && c->state == C_UP) {
      cl_transport *t = c->t;
      t->st.frames_refused_garbage++;
      uint32_t supp = 0;
      if (cl_ratelimit_allow(&t->rl_frame, now_ms(t), &supp))
        cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "closing connection with %s (%s): %s", c->peer->nn.full,
               c->addr, c->opener.reason);
      conn_down(c, "closed");
    }
  } else {
    on_plain(c, p, n);
  }
}

static int on_session_frame(void *ud, const cl_frame *f) {
  cl_conn *c = ud;
  cl_transport *t = c->t;
  if (c->state != C_UP) return 1;
  if (t->faults_on) {
    cl_fault tmp;
    const cl_fault *fl = fault_of(t, c->peer, &tmp);
    if (fl && (fl->blackhole || fl->oneway_in)) return 0;
  }
  cl_det_heard(&c->det, now_ms(t));
  /* The tick waits for this peer's silence: it spoke, so the tick may wait for the grid
   * again. With beats every half timeout (a large cluster's 1 s of 2 s) the suspicion
   * point falls half a beat after the grid's tick, armed before the beat that moves it
   * arrives: every node woke twice a second rather than once (issue 18). */
  if (t->tick_conn == c && !t->closing) tick_arm(t);
  c->peer->doubted = 0; /* it spoke after any DOWN we set aside */
  t->st.frames_in++;
  /* A peer that does not read what it asks for (a beat per WATCH, a pong per ping, a
   * probe answer per PROBE_REQ) must not make us queue without bound: messages stop at
   * send_queue_max (cl_transport_send), and a queue past it by more than CL_REPLY_SLACK
   * can only be answers nobody reads. */
  if (conn_queued(c) > (size_t)t->cfg.send_queue_max + CL_REPLY_SLACK) {
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "%s does not read what it asks for (%zu bytes queued): closing the connection",
           c->peer->nn.full, conn_queued(c));
    conn_down(c, "closed");
    return 1;
  }
  switch (f->type) {
  case CL_T_DATA:
    c->peer->last_data_ms = now_ms(t);
    if (t->cb.message) t->cb.message(t->cb.ud, c->peer->nn.full, f->channel, f->data, f->len);
    break;
  case CL_T_PING:
    if (f->len == CL_BEAT_LEN) {
      t->st.beats_in++;
      uint64_t now_us = uv_hrtime() / 1000;
      c->peer_beat_us = cl_get_be64(f->data);
      c->peer_beat_rx_us = now_us;
      rtt_sample(c, cl_get_be64(f->data + 8), now_us, cl_get_be64(f->data + 16));
    } else if (f->len == 8) {
      conn_put(c, CL_T_PONG, 0, f->data, 8); /* a ping that wants a pong (an older node) */
    }
    break;
  case CL_T_PONG:
    if (f->len == 8) {
      rtt_sample(c, cl_get_be64(f->data), uv_hrtime() / 1000, 0);
      if (c->peer->probed) probe_heard(t, c->peer, cl_get_be64(f->data));
    }
    break;
  case CL_T_MEMBERS:
    on_members(c, f);
    break;
  case CL_T_REACH:
    if (f->len == 1) c->peer_reach = f->data[0] != 0;
    break;
  case CL_T_DIGEST:
    on_digest(c, f);
    break;
  case CL_T_IDLE:
    cl_log(CL_LOG_DEBUG, SUBSYS(t), NULL, "%s closes its idle connection", c->peer->nn.full);
    conn_down(c, "idle");
    return 1;
  case CL_T_LEAVE:
    c->peer->left = 1;
    conn_down(c, "left");
    return 1;
  case CL_T_REFUSE:
    conn_down(c, "closed");
    return 1;
  case CL_T_REAUTH:
    on_reauth(c, f->data, f->len);
    break;
  case CL_T_WATCH: {
    int on;
    uint32_t beat;
    if (cl_mw_watch_take(f->data, f->len, &on, &beat) == 0) {
      cl_det_beat_for(&c->det, on, beat);
      if (on) send_ping(c); /* the watcher's clock runs from its WATCH: it hears from us at once */
      /* a beat faster than our tick (a mesh watcher while we are large) is due on its
       * own deadline, which the armed tick may not cover */
      if (on && c->det.beat_ms != t->tick_ms) tick_arm(t);
    }
    break;
  }
  case CL_T_PROBE_REQ:
    on_probe_req(c, f);
    break;
  case CL_T_PROBE_RES:
    on_probe_res(c, f);
    break;
  case CL_T_DOWN:
    on_down(c, f);
    break;
  default:
    break;
  }
  return c->state != C_UP;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  cl_conn *c = h->data;
  *buf = uv_buf_init((char *)c->t->rbuf, 65536);
}

/* The handshake's deadline counts from its last progress (the connect, each flight
 * from the peer), not from its start: at most a few flights, so a peer that stalls still
 * fails within a few handshake_timeout_ms. Found at 200-300 nodes on 2 cores: each flight
 * waited for a starved process, whole handshakes took longer than 2 s, and each one
 * given up on after both sides had done its work was dialled again (2,689 handshake
 * timeouts on one node in a minute), which starved the processes further (issue 18). */
static void hs_progress(cl_conn *c) {
  uint64_t d = now_ms(c->t) + c->t->cfg.handshake_timeout_ms;
  if (d > c->deadline_ms) c->deadline_ms = d;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cl_conn *c = s->data;
  cl_transport *t = c->t;
  if (c->state == C_CLOSING) return;
  if (nread < 0) {
    if (c->state == C_UP) {
      conn_down(c, "closed");
    } else {
      if (c->hs_live && !c->hs.fail) {
        /* a peer that hangs up mid-handshake is most often one that dropped us
         * silently (leaving, blackholed) or a port scanner: not worth a warning */
        c->hs.fail = CL_HSF_BUSY;
        snprintf(c->hs.reason, sizeof c->hs.reason, "connection closed during the handshake (%s)",
                 uv_err_name((int)nread));
      }
      hs_failed(c);
    }
    return;
  }
  if (nread == 0) return;
  t->st.bytes_in += (uint64_t)nread;
  uint8_t *p = (uint8_t *)buf->base;
  size_t n = (size_t)nread;
  if (c->state == C_HANDSHAKE) {
    uint64_t us = uv_hrtime() / 1000;
    if (c->hs_mark_us && !c->hs_rtt_us) c->hs_rtt_us = us > c->hs_mark_us ? (uint32_t)(us - c->hs_mark_us) : 1;
    size_t used = 0;
    int step = c->hs.state;
    int r = cl_hs_feed(&c->hs, p, n, &used, &c->w.out);
    if (c->w.out.len) mark_dirty(c);
    if (c->w.out.len && !c->hs_mark_us) c->hs_mark_us = us; /* the acceptor's CHALLENGE */
    if (r == CL_HS_FAILED) {
      hs_failed(c);
      return;
    }
    if (r == CL_HS_CONTINUE) {
      if (c->hs.state != step) hs_progress(c); /* a flight from the peer: it runs */
      return;
    }
    if (c->hs.data || c->hs.peer_data) {
      data_handoff(c, p + used, n - used);
      return;
    }
    conn_authenticated(c);
    p += used;
    n -= used;
  }
  if (c->state == C_UP) session_input(c, p, n);
}

/* ---- dialing ---- */

static void on_redial(uv_timer_t *h) {
  cl_peer *p = h->data;
  p->redial_deferred = 0;
  peer_dial(p);
}

/* fresh: the peer just went down after being up (retry soon); else back off. */
static void peer_schedule(cl_peer *p, int fresh) {
  cl_transport *t = p->t;
  if (t->closing || t->leaving) return;
  if (p->conn) return;
  if (!peer_dialable(p)) {
    t->sweep_due = 1;
    return;
  }
  if (fresh) p->backoff_ms = t->cfg.backoff_min_ms;
  uint32_t b = p->backoff_ms ? p->backoff_ms : 1;
  /* jitter in [b/2, 3b/2) keeps restarted clusters from dialling in lockstep */
  uint32_t delay = b / 2 + randombytes_uniform(b + 1);
  uint64_t next = (uint64_t)p->backoff_ms * 2;
  p->backoff_ms = next > t->cfg.backoff_max_ms ? t->cfg.backoff_max_ms : (uint32_t)next;
  uv_timer_start(&p->timer, on_redial, delay, 0);
}

static void on_connect(uv_connect_t *req, int status) {
  cl_conn *c = req->data;
  cl_transport *t = c->t;
  cl_peer *p = c->peer;
  if (c->state == C_CLOSING) return;
  if (status < 0 && c->data) {
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "unable to open a data connection to %s: %s", p->nn.full,
           uv_err_name(status));
    conn_close(c); /* reports the failure */
    return;
  }
  if (status < 0) {
    t->st.connects_failed++;
    p->verify = 0;
    uint32_t supp = 0;
    if (cl_ratelimit_allow(&p->rl, now_ms(t), &supp)) {
      char more[64] = "";
      if (supp) snprintf(more, sizeof more, " (%u similar suppressed)", supp);
      cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "unable to connect to %s: %s%s", p->nn.full,
             uv_err_name(status), more);
    }
    if (p->dial == c) p->dial = NULL;
    conn_close(c);
    if (p->checking) {
      /* refused: nothing listens there, the process is gone */
      check_settle(p, status == UV_ECONNREFUSED || status == UV_ECONNRESET ? CHECK_DOWN : CHECK_UNKNOWN);
    } else if (t->large && p->alive && !p->conn && status == UV_ECONNREFUSED) {
      /* nothing listens where a member up lives: in a large cluster, where others may
       * hold no connection to it, that is news for them */
      member_down(p, "closed", ANN_OWN, NULL, p->incarnation, p->ver);
      watch_peer(t, p);
    }
    peer_schedule(p, 0);
    return;
  }
  /* a closed connection's check: something listens where p lives, so p's process runs
   * (the kernel closes a dead process's listener with its connections: a kill -9 is
   * refused); whether it then takes this connection (it may refuse a duplicate, or us)
   * is another matter, and a handshake slowed by load must not make a crash of it. A
   * new process there has a new incarnation, which the handshake reports (a restart). */
  check_settle(p, CHECK_ALIVE);
  set_addr(c);
  c->state = C_HANDSHAKE;
  hs_progress(c);
  uint8_t nonce[32];
  randombytes_buf(nonce, sizeof nonce);
  cl_hs_init(&c->hs, &t->hs_cfg, CL_HS_DIALER, p->nn.full, nonce);
  c->hs_live = 1;
  c->hs.data = c->data;
  cl_hs_start(&c->hs, &c->w.out);
  c->hs_mark_us = uv_hrtime() / 1000;
  mark_dirty(c);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void dial_addr(cl_peer *p, const struct sockaddr *sa) {
  cl_transport *t = p->t;
  cl_conn *c = conn_new(t);
  if (!c) {
    peer_schedule(p, 0);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->outgoing = 1;
  c->peer = p;
  c->state = C_CONNECTING;
  snprintf(c->addr, sizeof c->addr, "%s", p->address);
  c->creq.data = c;
  int r = uv_tcp_connect(&c->creq, &c->tcp, sa, on_connect);
  if (r) {
    on_connect(&c->creq, r);
    return;
  }
  p->dial = c;
}

static void data_dial_addr(cl_peer *p, const struct sockaddr *sa) {
  cl_transport *t = p->t;
  cl_conn *c = conn_new(t);
  if (!c) {
    data_failed(t, p, p->incarnation);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->outgoing = 1;
  c->data = 1;
  c->data_owed = 1;
  c->data_inc = p->incarnation; /* called only in the life it was asked for */
  c->peer = p;
  c->state = C_CONNECTING;
  snprintf(c->addr, sizeof c->addr, "%s", p->address);
  c->creq.data = c;
  int r = uv_tcp_connect(&c->creq, &c->tcp, sa, on_connect);
  if (r) on_connect(&c->creq, r);
}

static void data_resolve(cl_peer *p);

/* Where the peer listens: the address its control connection reached when this node
 * dialled it (no second name resolution), else its name's host when that is an address,
 * else that host resolved. */
static void data_dial(cl_peer *p) {
  cl_transport *t = p->t;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (!p->conn) {
    data_failed(t, p, p->incarnation);
    return;
  }
  if ((p->conn->outgoing && uv_tcp_getpeername(&p->conn->tcp, (struct sockaddr *)&ss, &len) == 0) ||
      uv_ip4_addr(p->nn.host, p->nn.port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(p->nn.host, p->nn.port, (struct sockaddr_in6 *)&ss) == 0) {
    data_dial_addr(p, (struct sockaddr *)&ss);
    return;
  }
  data_resolve(p);
}

void cl_transport_data_open(cl_transport *t, const char *name, uint64_t incarnation) {
  if (!t->cb.data_conn || t->closing) return;
  cl_peer *p = find_peer(t, name);
  if (p && p->conn && p->conn->state == C_UP && p->incarnation == incarnation && p->data_ok && !t->leaving) {
    data_dial(p);
    return;
  }
  /* nothing to dial in that life: say so (the node drops it if the life is over) */
  cl_data_conn dc;
  memset(&dc, 0, sizeof dc);
  dc.name = name;
  dc.incarnation = incarnation;
  dc.fd = -1;
  t->cb.data_conn(t->cb.ud, &dc);
}

typedef struct {
  uv_getaddrinfo_t req;
  cl_peer *p;
  int data;             /* for a data connection (data_resolve), in this life of the peer: */
  uint64_t incarnation;
} cl_resolve;

/* data_resolve's answer (the peer's life it was asked in: inc) */
static void on_data_resolved(cl_peer *p, uint64_t inc, int status, struct addrinfo *res) {
  cl_transport *t = p->t;
  if (status < 0 || !res)
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "unable to open a data connection to %s: %s (resolving %s)", p->nn.full,
           uv_err_name(status < 0 ? status : UV_EAI_NONAME), p->nn.host);
  if (res && p->conn && p->conn->state == C_UP && p->incarnation == inc && !t->leaving)
    data_dial_addr(p, res->ai_addr);
  else
    data_failed(t, p, inc);
  if (res) uv_freeaddrinfo(res);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  cl_resolve *r = req->data;
  cl_peer *p = r->p;
  cl_transport *t = p->t;
  int data = r->data;
  uint64_t inc = r->incarnation;
  if (data)
    p->data_resolving--;
  else
    p->resolving = 0;
  t->open_handles--;
  free(r);
  if (t->closing) {
    if (res) uv_freeaddrinfo(res);
    maybe_finish(t);
    return;
  }
  if (data) {
    on_data_resolved(p, inc, status, res);
    return;
  }
  if (status < 0 || !res) {
    uint32_t supp = 0;
    if (cl_ratelimit_allow(&p->rl, now_ms(t), &supp))
      cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "unable to connect to %s: %s (resolving %s)", p->nn.full,
             uv_err_name(status < 0 ? status : UV_EAI_NONAME), p->nn.host);
    t->st.connects_failed++;
    p->verify = 0;
    check_settle(p, CHECK_DOWN);
    peer_schedule(p, 0);
  } else if (!p->conn && !p->dial && !t->leaving && peer_dialable(p)) {
    dial_addr(p, res->ai_addr);
  }
  if (res) uv_freeaddrinfo(res);
}

/* Resolves p's host for a control dial (data 0) or a data connection (data 1); -1 when
 * it could not start. on_resolved takes it from there. */
static int resolve_start(cl_peer *p, int data) {
  cl_transport *t = p->t;
  cl_resolve *r = calloc(1, sizeof *r);
  if (!r) return -1;
  r->p = p;
  r->data = data;
  r->incarnation = p->incarnation;
  r->req.data = r;
  char port[8];
  snprintf(port, sizeof port, "%u", p->nn.port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  if (uv_getaddrinfo(t->loop, &r->req, on_resolved, p->nn.host, port, &hints)) {
    free(r);
    return -1;
  }
  t->open_handles++;
  return 0;
}

static void data_resolve(cl_peer *p) {
  if (resolve_start(p, 1) == 0)
    p->data_resolving++;
  else
    data_failed(p->t, p, p->incarnation);
}

static int incoming_in_progress(cl_transport *t, cl_peer *p) {
  for (cl_conn *c = t->conns; c; c = c->next)
    if (!c->outgoing && c->state == C_HANDSHAKE && c->hs_live &&
        strcmp(c->hs.peer_name, p->nn.full) == 0)
      return 1;
  return 0;
}

static void peer_dial(cl_peer *p) {
  cl_transport *t = p->t;
  if (t->closing || t->leaving || p->conn || p->dial || p->resolving) return;
  if (!peer_dialable(p)) {
    t->sweep_due = 1;
    return;
  }
  cl_fault tmp;
  const cl_fault *f = fault_of(t, p, &tmp);
  if (cl_fault_cuts_handshake(f) || incoming_in_progress(t, p)) {
    /* a dial through a cut has no answer, as a real one times out (limbo's bound then
     * decides); one from p on its way is an answer */
    if (!incoming_in_progress(t, p)) {
      p->verify = 0;
      check_settle(p, CHECK_UNKNOWN);
    }
    peer_schedule(p, 0);
    return;
  }
  struct sockaddr_storage ss;
  if (uv_ip4_addr(p->nn.host, p->nn.port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(p->nn.host, p->nn.port, (struct sockaddr_in6 *)&ss) == 0) {
    dial_addr(p, (struct sockaddr *)&ss);
    return;
  }
  if (resolve_start(p, 0) == 0)
    p->resolving = 1;
  else
    peer_schedule(p, 0);
}

/* ---- accepting ---- */

/* Runs once the dialer's HELLO parsed: settles simultaneous dials before any proof is
 * computed, the same way on both sides (the dial of the smaller name wins). */
static int hs_check(void *ud, const char *peer_name, uint64_t incarnation, char *reason, size_t rl) {
  cl_conn *c = ud;
  cl_transport *t = c->t;
  if (t->leaving) {
    snprintf(reason, rl, "this node is leaving");
    return CL_HSF_BUSY;
  }
  cl_peer *p = find_peer(t, peer_name);
  cl_fault tmp;
  const cl_fault *f = fault_of(t, p, &tmp);
  if (cl_fault_cuts_handshake(f)) {
    snprintf(reason, rl, "cut by the fault layer");
    return CL_HSF_BUSY;
  }
  if (c->hs.peer_data) {
    /* a data connection belongs to a live control connection of the same incarnation */
    if (!p || !p->conn || p->conn->state != C_UP || incarnation != p->incarnation || !t->cfg.data_conns ||
        !t->cb.data_conn) {
      snprintf(reason, rl, "no data connection wanted from %s now", peer_name);
      return CL_HSF_BUSY;
    }
    return 0;
  }
  if (!p) return 0;
  if (p->blocked) {
    /* else its own re-dial would bring back at once what was just dropped */
    snprintf(reason, rl, "%s was disconnected from %s and accepts it again only once it connects to it",
             t->self.full, peer_name);
    return CL_HSF_BUSY;
  }
  if (p->conn && incarnation <= p->incarnation) {
    snprintf(reason, rl, "already connected to %s", peer_name);
    return CL_HSF_DUPLICATE;
  }
  if (p->dial && !p->conn) {
    if (strcmp(t->self.full, peer_name) < 0) {
      snprintf(reason, rl, "simultaneous connect: keeping the one %s dialled", t->self.full);
      return CL_HSF_DUPLICATE;
    }
    cl_conn *d = p->dial;
    p->dial = NULL;
    conn_close(d);
  }
  return 0;
}

static void on_connection(uv_stream_t *server, int status) {
  cl_transport *t = server->data;
  if (status < 0 || t->closing) return;
  cl_conn *c = conn_new(t);
  if (!c) return;
  if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
    conn_close(c);
    return;
  }
  if (t->leaving) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  set_addr(c);
  c->state = C_HANDSHAKE;
  uint8_t nonce[32];
  randombytes_buf(nonce, sizeof nonce);
  cl_hs_init(&c->hs, &t->hs_cfg, CL_HS_ACCEPTOR, NULL, nonce);
  c->hs_live = 1;
  c->hs.check = hs_check;
  c->hs.check_ud = c;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- timers ---- */

static void on_peer_closed(uv_handle_t *h) {
  cl_peer *p = h->data;
  cl_transport *t = p->t;
  peer_free(p);
  t->open_handles--;
  maybe_finish(t);
}

/* Unlinks a peer nobody needs any more and frees it once its timer is closed. Any
 * connection still naming it (a dial) is closed first: none may outlive it. */
static void peer_forget(cl_peer *p, const char *why) {
  cl_transport *t = p->t;
  p->forgetting = 1;
  for (cl_conn *c = t->conns; c; c = c->next)
    if (c->peer == p && c->state != C_CLOSING) conn_close(c);
  for (cl_peer **pp = &t->peers; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  ptab_remove(t, p);
  if (t->last_peer == p) t->last_peer = NULL;
  cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "forgetting %s: %s", p->nn.full, why);
  if (t->cb.peer_forgotten) t->cb.peer_forgotten(t->cb.ud, p->nn.full);
  uv_timer_stop(&p->timer);
  p->timer.data = p;
  t->open_handles++;
  uv_close((uv_handle_t *)&p->timer, on_peer_closed);
}

/* A large cluster: a connection this node opened (on demand, or for a ring neighbour it
 * no longer has) that nothing needs now and that carried no message for idle_close_ms is
 * closed with an IDLE frame, which the peer takes as no failure. Only the dialer closes:
 * it knows why it dialled; the peer says what it needs by watching (WATCH). */
static void idle_close(cl_transport *t, uint64_t now) {
  if (!t->large) return;
  /* the connections, not the peers: a node holds about ten of them and knows every
   * member; walking 300 peers' cold structs once a second was 6 % of an idle node's CPU
   * at 300 nodes (perf, issue 18) */
  for (cl_conn *c = t->conns; c; c = c->next) {
    cl_peer *p = c->peer;
    if (!p || p->conn != c || !conn_live(p) || !c->outgoing || c->close_after_flush || p->wanted || p->pinned ||
        p->need || t->reach_all || c->peer_reach)
      continue;
    if (c->det.watching || c->det.beating || now - p->last_data_ms < t->cfg.idle_close_ms) continue;
    if (cl_writer_queued(&c->w) || c->dq_head) continue;
    cl_log(CL_LOG_DEBUG, SUBSYS(t), NULL, "closing the idle connection to %s", p->nn.full);
    cl_frame_put(&c->w.out, CL_T_IDLE, 0, NULL, 0);
    t->st.frames_out++;
    t->st.idle_closed++;
    c->close_after_flush = 1;
    c->deadline_ms = now + 1000;
    mark_dirty(c);
  }
}

/* A large cluster does not re-dial its failed members as a mesh does (every node each,
 * with backoff): at 1,000 nodes that is every node dialling every failed one. As Serf
 * (its reconnect_interval), each node dials one of them, picked at random, per
 * redial_failed_ms. One that answers was down only here (a partition that healed, a
 * DOWN it never heard of): it is up again at once, hears it was declared down and
 * refutes, which brings it back on every member; one that does not stays down. */
static int redial_candidate(cl_peer *p) {
  return !p->alive && p->down_known && !p->blocked && !p->forgetting && !p->conn && !p->dial && !p->resolving &&
         !p->verify && peer_recent(p);
}
static void redial_failed(cl_transport *t, uint64_t now) {
  if (!t->large || t->leaving || now - t->last_redial_ms < t->cfg.redial_failed_ms) return;
  t->last_redial_ms = now;
  if (t->n_alive == t->n_peers) return; /* every peer is up: no candidate (see sweep) */
  uint32_t n = 0;
  for (cl_peer *p = t->peers; p; p = p->next) n += redial_candidate(p);
  if (!n) return;
  uint32_t k = randombytes_uniform(n);
  for (cl_peer *p = t->peers; p; p = p->next)
    if (redial_candidate(p) && k-- == 0) {
      t->st.failed_redials++;
      p->verify = 1;
      peer_dial(p);
      return;
    }
}

static void sweep(cl_transport *t) {
  char why[96];
  idle_close(t, now_ms(t));
  redial_failed(t, now_ms(t));
  t->sweep_due = 0;
  t->last_sweep_ms = now_ms(t);
  t->st.sweeps++;
  /* Only a peer that is down can be forgotten (peer_forgettable). A node at rest of a
   * large cluster has every peer it knows up, and walking their cold structs once a
   * second was 8 % of its CPU at 300 nodes (perf, issue 18): the count says it first. */
  if (t->n_alive == t->n_peers) return;
  cl_peer *p = t->peers;
  while (p) {
    cl_peer *next = p->next;
    if (peer_forgettable(p)) {
      if (p->left)
        snprintf(why, sizeof why, "it left");
      else if (p->member || p->learned)
        snprintf(why, sizeof why, "down for more than reconnect_timeout (%u ms)", t->cfg.reconnect_timeout_ms);
      else
        snprintf(why, sizeof why, "no longer wanted");
      peer_forget(p, why);
    }
    p = next;
  }
}

/* One timer for every connection. It wakes once per heartbeat (when idle connections
 * beat, all together), at a silent connection's exact down deadline, and for nothing
 * else: a node at rest wakes about 1000/heartbeat_ms times a second for its timers. */
static void on_tick(uv_timer_t *h);

/* How long a member whose connection closed may stay up here with no authenticated
 * connection: what a silent peer gets (timeout_ms, widened while this node runs late)
 * plus one handshake's time to come back. */
static uint64_t limbo_bound(const cl_transport *t) {
  return (uint64_t)conn_timeout(t) + (uint64_t)t->cfg.timeout_ms * t->awareness.score +
         t->cfg.handshake_timeout_ms;
}

/* Whether limbo's bound is this node's to apply: it watches the member (a ring
 * successor, or a voting peer it pins). Any other node that saw its connection to the
 * member close leaves the verdict to the member's watchers once its check is settled: a
 * hung member falls silent on their connections, which time it out within their bound,
 * and a crash is refused to the check's dial. Found at 300 nodes on 2 cores: every node
 * whose connection to a member closed (a dialer giving up a handshake the acceptor had
 * completed, a duplicate dropped) ran the bound on its own, and handshakes slower than
 * it under that load made 10,782 false DOWNs in 40 s, each announced cluster-wide (issue
 * 18). */
static int limbo_ours(const cl_peer *p) { return !p->t->large || p->need || p->pinned; }

static void limbo_expire(cl_transport *t, uint64_t now) {
  if (t->leaving || t->closing || !t->limbo_maybe) return;
  int changed = 0, left = 0;
  for (cl_peer *p = t->peers; p; p = p->next) {
    if (!p->limbo) continue;
    if (!p->alive || conn_live(p)) {
      p->limbo = 0;
      continue;
    }
    if (!p->checking && !limbo_ours(p)) { /* no longer watched here (the ring moved) */
      p->limbo = 0;
      t->st.closes_to_watchers++;
      continue;
    }
    left = 1;
    if (p->checking || now - p->limbo_ms < limbo_bound(t)) continue;
    cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "%s closed its connection and was not back within %llu ms: down",
           p->nn.full, (unsigned long long)limbo_bound(t));
    t->st.closes_down++;
    member_down(p, "timeout", t->large ? ANN_OWN : ANN_NONE, NULL, p->incarnation, p->ver);
    changed = 1;
  }
  t->limbo_maybe = left;
  if (changed) watch_recompute(t);
}

static void tick_arm(cl_transport *t) {
  if (t->closing) return;
  uint64_t now = now_ms(t);
  /* the heartbeat's next tick (on_tick moves it on once it ran) */
  uint64_t next = t->next_beat_ms;
  t->tick_conn = NULL;
  /* the same branches as on_tick's, in the same order: a deadline that on_tick does not
   * look at must not arm it (a closed connection's flush deadline, or the beats of one
   * being flushed before it closes, spun the loop: below) */
  for (cl_conn *c = t->conns; c; c = c->next)
    if (c->state == C_CLOSING) {
      continue;
    } else if (c->state == C_CONNECTING || c->state == C_HANDSHAKE || c->close_after_flush) {
      /* checked at their time rather than on the next tick, which a large cluster's
       * beat puts up to large_heartbeat_ms away */
      if (c->deadline_ms < next) {
        next = c->deadline_ms;
        t->tick_conn = NULL;
      }
    } else if (c->state == C_UP) {
      uint64_t d = cl_det_down_at(&c->det);
      if (cl_det_suspect_at(&c->det) < d) d = cl_det_suspect_at(&c->det);
      if (d < next) {
        next = d;
        t->tick_conn = c;
      }
      /* a peer that asked for beats at another interval than the tick's (one side large,
       * the other a mesh) is beaten on its own deadlines */
      if (c->det.beating && c->det.beat_ms != t->tick_ms && cl_det_deadline(&c->det) < next) {
        next = cl_det_deadline(&c->det);
        t->tick_conn = NULL;
      }
      if (cl_reauth_due(&c->ra) < next) {
        next = cl_reauth_due(&c->ra);
        t->tick_conn = NULL;
      }
    }
  for (size_t i = 0; i < CL_PROBES_MAX; i++)
    if (t->probes[i].used && t->probes[i].deadline_ms < next) {
      next = t->probes[i].deadline_ms;
      t->tick_conn = NULL;
    }
  t->tick_due_ms = next > now ? next : now;
  /* Never 0: armed from on_tick, libuv (1.44) runs a timer due at the loop's cached time
   * again in the same pass, without polling or moving the time on. A deadline that
   * on_tick does not clear then spins the loop for good: a closing connection's flush
   * deadline did (found at 300 nodes: five nodes answered nobody, their closes never
   * completed). 1 ms lets the loop poll and move its clock between two ticks. */
  uv_timer_start(&t->tick, on_tick, next > now ? next - now : 1, 0);
}

/* A voting node that begins to reach every member dials cfg.reach_dials_per_tick of
 * them per tick of the grid (1 s in a large cluster), not all at once: it becomes one
 * in a failover's first publication, and its 298 dials at 300 nodes (a handshake and a
 * digest at both ends of each) came while every other node was still taking that
 * publication and its commit, the failover's slowest part; that node was then the
 * slowest survivor (issue 18). A member dialled for the watch (need) never waits. */
static void reach_more(cl_transport *t, uint64_t now) {
  t->reach_budget = t->cfg.reach_dials_per_tick;
  if (!t->reach_pending || !t->reach_all || !t->large || t->closing || t->leaving) return;
  t->reach_pending = 0;
  uint32_t beat = beat_interval(t);
  for (cl_peer *q = t->peers; q && t->reach_budget; q = q->next)
    if (!conn_live(q)) watch_apply(t, q, now, beat);
  if (!t->reach_budget) t->reach_pending = 1; /* some may be left: look again next tick */
}

static void on_tick(uv_timer_t *h) {
  cl_transport *t = h->data;
  uint64_t now = now_ms(t);
  t->st.ticks++;
  /* the heartbeat's tick (not a deadline's): beats go out (detector.h, grid). Ticks on
   * multiples of the heartbeat of the monotonic clock, which every process of a machine
   * shares: the nodes of one machine beat together, and a node wakes once for its peers'
   * beats rather than once for each. Moved on only here, where it runs (an arming that
   * moved it on skipped a tick if it came at the tick's very millisecond) */
  int grid = now >= t->next_beat_ms;
  if (grid) t->next_beat_ms = cl_grid_next(now, t->tick_ms);
  if (grid) reach_more(t, now);
  /* A late tick means this node was not running (its CPU starved, or it was paused):
   * frames may be waiting unread in its sockets, and libuv runs timers before it polls.
   * So a late tick calls nobody down; it looks again right after the poll, and while the
   * node keeps running late every connection gets more time (detector.h). That second
   * look decides even if it runs late too: on a machine that stays saturated every tick
   * is late, and a stopped peer must still be called down within the awareness bound
   * (found by the starvation spec's self-saturated case). */
  int late = now > t->tick_due_ms + cl_det_late_ms(t->tick_ms);
  int veto = late && !t->tick_after_poll;
  t->tick_after_poll = 0;
  uint32_t grace = cl_det_tick(&t->awareness, t->tick_due_ms, now, t->tick_ms, t->cfg.timeout_ms);
  if (grace != t->grace_ms) {
    t->grace_ms = grace;
    for (cl_conn *c = t->conns; c; c = c->next) c->det.grace_ms = grace;
  }
  probes_expire(t, now);
  if (!veto) limbo_expire(t, now);
  /* once a second at least: reconnect timeouts expire, the keep callback lets go */
  if (!t->leaving && (t->sweep_due || now - t->last_sweep_ms >= 1000)) sweep(t);
  cl_conn *c = t->conns;
  while (c) {
    cl_conn *n = c->next;
    if (c->state == C_CLOSING) {
      /* closed already (its close callback frees it): a flush deadline left on it is no
       * longer anybody's, and must not be expired again on every tick */
    } else if (c->state == C_CONNECTING || c->state == C_HANDSHAKE || c->close_after_flush) {
      /* a late tick expires no deadline either: the connect's completion or the peer's
       * flight may be waiting unread (the look after the poll decides) */
      if (now >= c->deadline_ms && !veto) {
        if (c->close_after_flush) {
          cl_peer *p = c->installed ? c->peer : NULL;
          conn_close(c);
          if (p) doubt_settle(p);
          /* a message queued meanwhile opens a new connection (as in conn_flush) */
          if (p && (!p->alive || p->pend.len) && !t->leaving) peer_schedule(p, 1);
        } else if (c->state == C_CONNECTING && c->data) {
          conn_close(c); /* reports the failure */
        } else if (c->state == C_CONNECTING) {
          /* a blackholed SYN: count it as a failed connect */
          cl_peer *p = c->peer;
          t->st.connects_failed++;
          uint32_t supp = 0;
          if (cl_ratelimit_allow(&p->rl, now, &supp))
            cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "unable to connect to %s: ETIMEDOUT", p->nn.full);
          if (p->dial == c) p->dial = NULL;
          p->verify = 0;
          conn_close(c);
          check_settle(p, CHECK_UNKNOWN);
          peer_schedule(p, 0);
        } else {
          c->hs.fail = CL_HSF_TIMEOUT;
          snprintf(c->hs.reason, sizeof c->hs.reason, "handshake timeout: not complete within %u ms",
                   t->cfg.handshake_timeout_ms);
          c->w.out.len = 0;
          hs_failed(c);
        }
      }
    } else if (c->state == C_UP && cl_reauth_overdue(&c->ra, now)) {
      /* an unanswered re-authentication, or a DONE that never came: whoever holds the
       * removed key must not go on writing under it (found by a security review) */
      cl_log(CL_LOG_WARN, SUBSYS(t), NULL,
             "%s did not complete the re-authentication of its connection within 1 s: closing it to re-dial",
             c->peer->nn.full);
      conn_down(c, "closed");
    } else if (c->state == C_UP) {
      /* the grid's slack holds for beats at the tick's interval; a peer that asked for
       * another (one side large, the other a mesh) is beaten on its own deadlines */
      c->det.grid = grid && (!c->det.beating || c->det.beat_ms == t->tick_ms);
      cl_det_verdict v = cl_det_check(&c->det, now);
      if (v == CL_DET_SUSPECT) {
        probe_request(c);
        v = cl_det_check(&c->det, now);
      }
      if (v == CL_DET_DOWN && !veto) {
        declare_down(c);
      } else if (v == CL_DET_CUT && !veto) {
        /* others hear it: only our own link is silent; closing it re-dials it */
        cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "%s answers other nodes but not us: re-dialling it", c->peer->nn.full);
        /* in a large cluster it stays a member (others hear it); in a mesh, as before */
        conn_down(c, t->large ? "idle" : "timeout");
      } else if (v == CL_DET_PING) {
        send_ping(c);
      }
    }
    c = n;
  }
  if (veto) {
    t->tick_due_ms = now + 1;
    t->tick_conn = NULL; /* the look after the poll stays, whatever arrives in it */
    t->tick_after_poll = 1;
    uv_timer_start(&t->tick, on_tick, 1, 0); /* after the poll: 0 would run before it */
    return;
  }
  tick_arm(t);
}

/* ---- public API ---- */

void cl_transport_config_defaults(cl_transport_config *c) {
  memset(c, 0, sizeof *c);
  c->encrypt = 1;
  c->max_frame = 16u << 20;
  c->heartbeat_ms = CL_DET_DEFAULT_HEARTBEAT_MS;
  c->timeout_ms = CL_DET_DEFAULT_TIMEOUT_MS;
  c->large_timeout_ms = CL_DET_DEFAULT_LARGE_TIMEOUT_MS;
  c->handshake_timeout_ms = 2000;
  c->send_queue_max = 64u << 20;
  c->backoff_min_ms = 50;
  c->backoff_max_ms = 5000;
  c->reconnect_timeout_ms = 24u * 3600 * 1000;
  c->mesh = 1;
  c->full_mesh_max = 32;
  c->idle_close_ms = 10000;
  c->redial_failed_ms = 10000;
  c->reach_dials_per_tick = 32;
  c->watchers = CL_WATCH_DEFAULT;
  c->log_subsys = "transport";
}

static char *dupstr(const char *s) { return strdup(s ? s : ""); }

cl_transport *cl_transport_new(uv_loop_t *loop, const cl_transport_config *cfg,
                               const cl_transport_callbacks *cb, char *err, size_t errlen) {
  char dummy[8];
  if (!err) {
    err = dummy;
    errlen = sizeof dummy;
  }
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return NULL;
  }
  cl_node_name self;
  if (!cfg || cl_node_name_parse(cfg->self_name, &self, err, errlen)) return NULL;
  if (cfg->keys ? (cfg->n_keys == 0 || cfg->n_keys > CL_KEYRING_MAX) : (!cfg->cookie || cfg->cookie_len == 0)) {
    snprintf(err, errlen, cfg->keys ? "the keyring needs 1 to %d keys" : "a cookie is required", CL_KEYRING_MAX);
    return NULL;
  }
  if (!cfg->cluster || !*cfg->cluster || strlen(cfg->cluster) > CL_STR_MAX) {
    snprintf(err, errlen, "cluster name must be 1..255 characters");
    return NULL;
  }
  for (const char *s = cfg->cluster; *s; s++)
    if (*s < 0x20 || *s > 0x7e) {
      snprintf(err, errlen, "cluster name must be printable ASCII");
      return NULL;
    }
  if ((cfg->node_id && strlen(cfg->node_id) > CL_STR_MAX) || (cfg->roles && strlen(cfg->roles) > CL_STR_MAX)) {
    snprintf(err, errlen, "node id and roles must be at most 255 characters");
    return NULL;
  }
  cl_transport *t = calloc(1, sizeof *t);
  if (!t) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  t->loop = loop;
  t->cfg = *cfg;
  t->sel_large = -1;
  cl_transport_config d;
  cl_transport_config_defaults(&d);
  if (!t->cfg.max_frame) t->cfg.max_frame = d.max_frame;
  if (!t->cfg.timeout_ms) t->cfg.timeout_ms = d.timeout_ms;
  t->cfg.heartbeat_ms = cl_det_heartbeat_for(t->cfg.heartbeat_ms, t->cfg.timeout_ms);
  if (!t->cfg.large_timeout_ms) t->cfg.large_timeout_ms = d.large_timeout_ms;
  if (t->cfg.large_timeout_ms < t->cfg.timeout_ms) t->cfg.large_timeout_ms = t->cfg.timeout_ms;
  if (!t->cfg.large_heartbeat_ms) {
    t->cfg.large_heartbeat_ms = t->cfg.large_timeout_ms / 2;
    if (t->cfg.large_heartbeat_ms > CL_DET_BEAT_MAX_MS) t->cfg.large_heartbeat_ms = CL_DET_BEAT_MAX_MS;
    if (t->cfg.large_heartbeat_ms < t->cfg.heartbeat_ms) t->cfg.large_heartbeat_ms = t->cfg.heartbeat_ms;
  }
  if (!t->cfg.handshake_timeout_ms) t->cfg.handshake_timeout_ms = d.handshake_timeout_ms;
  if (!t->cfg.send_queue_max) t->cfg.send_queue_max = d.send_queue_max;
  if (!t->cfg.backoff_min_ms) t->cfg.backoff_min_ms = d.backoff_min_ms;
  if (!t->cfg.backoff_max_ms) t->cfg.backoff_max_ms = d.backoff_max_ms;
  if (t->cfg.backoff_max_ms < t->cfg.backoff_min_ms) t->cfg.backoff_max_ms = t->cfg.backoff_min_ms;
  if (!t->cfg.reconnect_timeout_ms) t->cfg.reconnect_timeout_ms = d.reconnect_timeout_ms;
  if (!t->cfg.watchers) t->cfg.watchers = d.watchers;
  if (!t->cfg.full_mesh_max) t->cfg.full_mesh_max = d.full_mesh_max;
  if (!t->cfg.idle_close_ms) t->cfg.idle_close_ms = d.idle_close_ms;
  if (!t->cfg.redial_failed_ms) t->cfg.redial_failed_ms = d.redial_failed_ms;
  if (!t->cfg.reach_dials_per_tick) t->cfg.reach_dials_per_tick = d.reach_dials_per_tick;
  /* An idle watched peer beats every heartbeat (at most 5/4 of one apart): a longer
   * heartbeat than the timeout calls healthy peers down between beats, and one past half
   * of it leaves no freshness window (cl_det_fresh_ms) in which a frame proves a stopped
   * peer ran after its watcher's silence began, so nodes that heard it later would
   * ignore the watcher's DOWN (on_down) and never report it. */
  if ((uint64_t)t->cfg.heartbeat_ms * 2 > t->cfg.timeout_ms) {
    snprintf(err, errlen, "heartbeat_ms (%u) must be at most half of timeout_ms (%u)", t->cfg.heartbeat_ms,
             t->cfg.timeout_ms);
    free(t);
    return NULL;
  }
  if ((uint64_t)t->cfg.large_heartbeat_ms * 2 > t->cfg.large_timeout_ms) {
    snprintf(err, errlen, "large_heartbeat_ms (%u) must be at most half of large_timeout_ms (%u)",
             t->cfg.large_heartbeat_ms, t->cfg.large_timeout_ms);
    free(t);
    return NULL;
  }
  if (t->cfg.watchers > CL_WATCH_MAX) {
    snprintf(err, errlen, "watchers must be 1..%d, got %u", CL_WATCH_MAX, t->cfg.watchers);
    free(t);
    return NULL;
  }
  if (!t->cfg.incarnation) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    t->cfg.incarnation = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
  }
  t->self = self;
  t->ring = cl_watch_hash(self.full);
  t->s_id = dupstr(cfg->node_id);
  t->s_cluster = dupstr(cfg->cluster);
  t->s_roles = dupstr(cfg->roles);
  t->s_subsys = dupstr(cfg->log_subsys && *cfg->log_subsys ? cfg->log_subsys : "transport");
  t->cfg.cookie = NULL; /* not kept: only the derived keys are */
  t->cfg.cookie_len = 0;
  t->cfg.keys = NULL;
  t->cfg.n_keys = 0;
  if (cb) t->cb = *cb;
  t->hs_cfg.self_name = t->self.full;
  t->hs_cfg.node_id = t->s_id;
  t->hs_cfg.cluster = t->s_cluster;
  t->hs_cfg.roles = t->s_roles;
  t->hs_cfg.incarnation = t->cfg.incarnation;
  t->hs_cfg.encrypt = t->cfg.encrypt;
  t->hs_cfg.version = CL_PROTO_VERSION;
  t->hs_cfg.data_conns = t->cfg.data_conns && cb && cb->data_conn;
  if (cfg->keys) {
    for (size_t i = 0; i < cfg->n_keys; i++) {
      cl_hs_key *k = &t->hs_cfg.keys[i];
      cl_hs_keys(cfg->keys[i].key, cfg->keys[i].len, k->k_hs, k->k_sess);
      k->id = cfg->keys[i].id;
      snprintf(k->fp, sizeof k->fp, "%s", cfg->keys[i].fp ? cfg->keys[i].fp : "");
    }
    t->hs_cfg.n_keys = cfg->n_keys;
  } else {
    cl_hs_keys(cfg->cookie, cfg->cookie_len, t->hs_cfg.keys[0].k_hs, t->hs_cfg.keys[0].k_sess);
    t->hs_cfg.keys[0].id = 1;
    t->hs_cfg.n_keys = 1;
  }
  t->rl_hs.per_window = 5;
  t->rl_hs.window_ms = 10000;
  t->rl_frame.per_window = 5;
  t->rl_frame.window_ms = 10000;
  /* the beat interval; handshake and connect deadlines are checked on it too */
  t->tick_ms = beat_interval(t) < CL_DET_BEAT_MAX_MS ? beat_interval(t) : CL_DET_BEAT_MAX_MS;

  struct sockaddr_storage ss;
  int r = 0;
  if (uv_ip4_addr(self.host, self.port, (struct sockaddr_in *)&ss) &&
      uv_ip6_addr(self.host, self.port, (struct sockaddr_in6 *)&ss)) {
    /* a host name: resolved once, synchronously, at start */
    uv_getaddrinfo_t req;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    char port[8];
    snprintf(port, sizeof port, "%u", self.port);
    r = uv_getaddrinfo(loop, &req, NULL, self.host, port, &hints);
    if (r == 0) {
      memcpy(&ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
      uv_freeaddrinfo(req.addrinfo);
    }
  }
  uv_tcp_init(loop, &t->listener);
  t->listener.data = t;
  if (r == 0) r = uv_tcp_bind(&t->listener, (struct sockaddr *)&ss, 0);
  /* SOMAXCONN (the kernel caps it at net.core.somaxconn): when hundreds of nodes start
   * at once, a seed takes hundreds of connections in one burst; with a backlog of 511 the
   * SYNs past it were dropped and those dials timed out (ETIMEDOUT, then back off), seen
   * at 300 nodes on one machine (issue 18) */
  if (r == 0) r = uv_listen((uv_stream_t *)&t->listener, SOMAXCONN, on_connection);
  uv_timer_init(loop, &t->tick);
  uv_timer_init(loop, &t->delay_timer);
  uv_timer_init(loop, &t->news_timer);
  uv_check_init(loop, &t->check);
  uv_idle_init(loop, &t->idle);
  t->tick.data = t->delay_timer.data = t->news_timer.data = t->check.data = t->idle.data = t;
  if (r) {
    snprintf(err, errlen, "cannot listen on %s:%u: %s", self.host, self.port, uv_strerror(r));
    cl_transport_close(t, NULL, NULL);
    return NULL;
  }
  tick_arm(t);
  return t;
}

int cl_transport_want(cl_transport *t, const char *name) {
  cl_node_name nn;
  cl_peer *p = find_peer(t, name);
  if (!p) {
    if (cl_node_name_parse(name, &nn, NULL, 0)) return CL_EINVAL;
    if (strcmp(nn.full, t->self.full) == 0) return 0;
    p = add_peer(t, &nn);
    if (!p) return CL_ENOBUFS;
  }
  if (strcmp(p->nn.full, t->self.full) == 0) return 0;
  p->wanted = 1;
  p->blocked = 0;
  if (!p->conn && !p->dial && !p->resolving && !uv_is_active((uv_handle_t *)&p->timer)) {
    p->backoff_ms = t->cfg.backoff_min_ms;
    peer_dial(p);
  }
  return 0;
}

int cl_transport_pin(cl_transport *t, const char *const *names, size_t n) {
  cl_node_name nn[CL_PIN_MAX];
  if (n > CL_PIN_MAX) return CL_EINVAL;
  /* every name checked before anything changes: a bad list changes nothing */
  for (size_t i = 0; i < n; i++)
    if (!names[i] || cl_node_name_parse(names[i], &nn[i], NULL, 0)) return CL_EINVAL;
  for (cl_peer *p = t->peers; p; p = p->next) p->pinned = 0;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(nn[i].full, t->self.full)) continue;
    cl_peer *p = find_peer(t, nn[i].full);
    if (!p && !(p = add_peer(t, &nn[i]))) return CL_ENOBUFS;
    p->pinned = 1;
    if (!p->conn && !p->dial && !p->resolving && !p->blocked && !uv_is_active((uv_handle_t *)&p->timer)) {
      p->backoff_ms = t->cfg.backoff_min_ms;
      peer_dial(p);
    }
  }
  t->sweep_due = 1; /* an unpinned peer may be forgettable now */
  watch_recompute(t);
  return 0;
}

/* A voting node of a large cluster holds a connection to every member, so that if it
 * becomes master its requests for joins and its first publication go out at once: a
 * new master that first dialled every member (a handshake and a member list each way,
 * 298 of them at 300 nodes) took them on the CPU a failover has least of, and its own
 * election's messages waited behind them (issue 18). These connections carry no
 * heartbeats (nothing watches through them) and are not closed as idle while this
 * holds; once it no longer does, those this node opened close as any idle one. */
void cl_transport_reach_all(cl_transport *t, int on) {
  on = !!on;
  if (t->reach_all == on) return;
  t->reach_all = on;
  t->reach_budget = t->cfg.reach_dials_per_tick;
  t->reach_pending = 0;
  uint8_t b = (uint8_t)on;
  for (cl_conn *c = t->conns; c; c = c->next)
    if (c->state == C_UP && c->peer && c->peer->conn == c) conn_put(c, CL_T_REACH, 0, &b, 1);
  if (on && t->large && !t->closing && !t->leaving) watch_recompute(t); /* dials the members not connected */
}

int cl_transport_unwant(cl_transport *t, const char *name) {
  cl_peer *p = find_peer(t, name);
  if (!p) {
    cl_node_name nn;
    return cl_node_name_parse(name, &nn, NULL, 0) ? CL_EINVAL : 0;
  }
  /* nothing else: dropping a live member here made it flap (its own re-dial brought it
   * back at once) and could cost the cluster its master */
  p->wanted = 0;
  t->sweep_due = 1;
  return 0;
}

int cl_transport_disconnect(cl_transport *t, const char *name) {
  cl_peer *p = find_peer(t, name);
  if (!p) {
    cl_node_name nn;
    return cl_node_name_parse(name, &nn, NULL, 0) ? CL_EINVAL : 0;
  }
  p->wanted = p->learned = 0;
  p->blocked = 1;
  uv_timer_stop(&p->timer);
  if (p->dial) {
    cl_conn *d = p->dial;
    p->dial = NULL;
    conn_close(d);
  }
  t->no_announce = 1; /* this node's own decision, not news about the peer */
  if (p->conn) conn_down(p->conn, "closed");
  else member_down(p, "closed", ANN_NONE, NULL, p->incarnation, p->ver);
  t->no_announce = 0;
  watch_recompute(t); /* the ring moved, and the cluster may be a mesh again */
  return 0;
}

int cl_transport_send(cl_transport *t, const char *to, uint8_t channel, const void *data, size_t len) {
  if (channel == 0) return CL_EINVAL;
  if (len > t->cfg.max_frame) return CL_E2BIG;
  cl_peer *p = find_peer(t, to);
  if (!p) return CL_ENOTCONN;
  if (p->conn && p->conn->state == C_UP && !p->conn->close_after_flush) {
    cl_conn *c = p->conn;
    if (conn_queued(c) + len + CL_FRAME_HDR > t->cfg.send_queue_max) return CL_ENOBUFS;
    p->last_data_ms = now_ms(t);
    return conn_put(c, CL_T_DATA, channel, data, (uint32_t)len);
  }
  if (!p->alive || p->blocked || t->leaving || t->closing) return CL_ENOTCONN;
  /* a member with no connection now (a large cluster): queue and open one on demand */
  if (p->pend.len + len + CL_FRAME_HDR > t->cfg.send_queue_max) return CL_ENOBUFS;
  if (cl_frame_put(&p->pend, CL_T_DATA, channel, data, (uint32_t)len)) return CL_ENOBUFS;
  t->st.frames_out++;
  p->last_data_ms = now_ms(t);
  if (!p->conn && !p->dial && !p->resolving && (!uv_is_active((uv_handle_t *)&p->timer) || p->redial_deferred)) {
    uv_timer_stop(&p->timer);
    p->redial_deferred = 0;
    t->st.on_demand++;
    p->backoff_ms = t->cfg.backoff_min_ms;
    peer_dial(p);
  }
  return 0;
}

void cl_transport_leave(cl_transport *t) {
  if (t->leaving || t->closing) return;
  t->leaving = 1;
  for (cl_peer *p = t->peers; p; p = p->next) uv_timer_stop(&p->timer);
  for (cl_conn *c = t->conns; c; c = c->next) {
    if (c->state == C_CLOSING) continue;
    if (c->state == C_UP) {
      /* straight into the queue: a leave must get out even through a drop fault */
      cl_frame_put(&c->w.out, CL_T_LEAVE, 0, NULL, 0);
      c->close_after_flush = 1;
      c->deadline_ms = now_ms(t) + 1000;
      mark_dirty(c);
    } else if (c->state == C_HANDSHAKE && c->outgoing && !c->data && !c->w.out.len) {
      /* our dial: the peer may have installed it already; once it authenticates here
       * it carries a LEAVE (conn_authenticated), or the handshake deadline closes it */
    } else if (c->state == C_HANDSHAKE && c->w.out.len) {
      c->close_after_flush = 1;
      c->deadline_ms = now_ms(t) + 1000;
    } else {
      conn_close(c);
    }
  }
}

void cl_transport_close(cl_transport *t, void (*done)(void *), void *ud) {
  if (!t || t->closing) return;
  t->closing = 1;
  t->done = done;
  t->done_ud = ud;
  memset(&t->cb, 0, sizeof t->cb);
  /* flush what is already queued (a LEAVE, mostly) with one best-effort try */
  for (cl_conn *c = t->conns; c; c = c->next)
    if (c->state != C_CLOSING && !c->w.writing && c->w.out.len) {
      c->close_after_flush = 0;
      conn_flush(c);
    }
  t->dirty = NULL;
  cl_conn *c = t->conns;
  while (c) {
    cl_conn *n = c->next;
    c->dirty = 0;
    c->dirty_next = NULL;
    conn_close(c);
    c = n;
  }
  for (cl_peer *p = t->peers; p; p = p->next) close_handle(t, (uv_handle_t *)&p->timer);
  close_handle(t, (uv_handle_t *)&t->listener);
  close_handle(t, (uv_handle_t *)&t->tick);
  close_handle(t, (uv_handle_t *)&t->delay_timer);
  close_handle(t, (uv_handle_t *)&t->news_timer);
  close_handle(t, (uv_handle_t *)&t->check);
  close_handle(t, (uv_handle_t *)&t->idle);
}

void cl_transport_foreach(cl_transport *t, void (*fn)(void *, const cl_peer_info *), void *ud) {
  for (cl_peer *p = t->peers; p; p = p->next) {
    cl_peer_info i;
    fill_info(p, &i);
    fn(ud, &i);
  }
}

void cl_transport_foreach_rtt(cl_transport *t, void (*fn)(void *, uint32_t), void *ud) {
  for (cl_conn *c = t->conns; c; c = c->next)
    if (c->state == C_UP && c->peer && c->peer->conn == c && c->peer->rtt_us) fn(ud, c->peer->rtt_us);
}

size_t cl_transport_connected_count(const cl_transport *t) { return t->connected; }
size_t cl_transport_member_count(const cl_transport *t) { return t->n_alive; }
const char *cl_transport_self(const cl_transport *t) { return t->self.full; }
uint64_t cl_transport_incarnation(const cl_transport *t) { return t->cfg.incarnation; }

uint32_t cl_transport_awareness(const cl_transport *t) { return t->awareness.score; }
uint32_t cl_transport_large_timeout(const cl_transport *t) { return t->large ? t->cfg.large_timeout_ms : 0; }
uint32_t cl_transport_large_heartbeat(const cl_transport *t) { return all_large(t) ? t->cfg.large_heartbeat_ms : 0; }

size_t cl_transport_leaving(const cl_transport *t) {
  size_t n = 0;
  for (const cl_conn *c = t->conns; c; c = c->next) n += c->close_after_flush && c->state != C_CLOSING;
  return n;
}

size_t cl_transport_queued(const cl_transport *t, const char *name) {
  cl_peer *p = find_peer((cl_transport *)t, name);
  return p ? (p->conn ? conn_queued(p->conn) : 0) + p->pend.len : 0;
}

void cl_transport_stats_get(const cl_transport *t, cl_transport_stats *s) {
  *s = t->st;
  s->conns = 0;
  s->members = t->n_alive;
  s->watching = s->watched_by = 0;
  for (const cl_conn *c = t->conns; c; c = c->next) {
    s->conns++;
    if (c->state == C_UP && c->installed) s->watching += c->det.watching, s->watched_by += c->det.beating;
  }
}

int cl_transport_fault(cl_transport *t, const char *peer, const char *spec, char *err, size_t errlen) {
  char dummy[8];
  if (!err) {
    err = dummy;
    errlen = sizeof dummy;
  }
  if (!cl_fault_enabled()) {
    snprintf(err, errlen, "the fault layer is off (set CLUSTERLUA_FAULTS=1 to enable it in tests)");
    return CL_EPERM;
  }
  cl_fault *f;
  if (!peer || strcmp(peer, "*") == 0) {
    f = &t->fault_all;
  } else {
    cl_peer *p = find_peer(t, peer);
    if (!p) {
      cl_node_name nn;
      if (cl_node_name_parse(peer, &nn, err, errlen)) return CL_EINVAL;
      p = add_peer(t, &nn);
      if (!p) return CL_ENOBUFS;
    }
    f = &p->fault;
  }
  int r = cl_fault_parse(spec, f, err, errlen);
  if (r) return r;
  /* "clear" for every peer means every peer: tests heal a partition with one call */
  if (f == &t->fault_all && !cl_fault_active(f))
    for (cl_peer *p = t->peers; p; p = p->next) memset(&p->fault, 0, sizeof p->fault);
  int on = cl_fault_active(&t->fault_all);
  for (cl_peer *p = t->peers; p; p = p->next) on |= cl_fault_active(&p->fault);
  t->faults_on = on;
  /* stall: the connections open now stop being read (their socket buffers fill and the
   * peer's writes queue, as with a stopped process); clearing it reads them again */
  for (cl_conn *c = t->conns; c; c = c->next) {
    if (c->state == C_CLOSING || (c->state != C_UP && c->state != C_HANDSHAKE)) continue;
    cl_fault tmp;
    const cl_fault *fl = fault_of(t, c->peer, &tmp);
    int stall = fl && fl->stall;
    if (stall && !c->stalled) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      c->stalled = 1;
    } else if (!stall && c->stalled) {
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
      c->stalled = 0;
    }
  }
  cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "fault layer: %s for %s", spec, peer ? peer : "*");
  return 0;
}

/* ---- the keyring, and re-authenticating live connections (the protocol: reauth.c) ---- */

static void ra_put(void *ud, const uint8_t *m, size_t n, int boundary) {
  cl_conn *c = ud;
  if (!boundary) {
    conn_put(c, CL_T_REAUTH, 0, m, (uint32_t)n);
    return;
  }
  /* A re-key boundary (ACCEPT, DONE) goes past the fault layer: delayed or dropped, the
   * peer would switch keys at another point of the stream than we do. */
  if (cl_frame_put(&c->w.out, CL_T_REAUTH, 0, m, (uint32_t)n) == 0) {
    c->t->st.frames_out++;
    cl_det_sent(&c->det, now_ms(c->t));
  }
  mark_dirty(c);
}

static void ra_flush(void *ud) { conn_flush(ud); }

/* Seals everything queued so far under the current send key, then sends under next:
 * the frame just queued ends the last record of the old key. 0 or -1. */
static int ra_switch_tx(void *ud, const uint8_t next[32]) {
  cl_conn *c = ud;
  cl_writer_stats st = conn_wstats(c->t);
  if (cl_writer_seal_pending(&c->w, &c->seal, &st)) return -1;
  memcpy(c->seal.key, next, 32);
  c->seal.counter = 0;
  mark_dirty(c);
  return 0;
}

static cl_reauth_io ra_io(cl_conn *c) {
  return (cl_reauth_io){.ud = c, .put = ra_put, .flush = ra_flush, .switch_tx = ra_switch_tx,
                        .opener = &c->opener, .encrypt = c->encrypt};
}

static void reauth_start(cl_conn *c) {
  if (c->state != C_UP) return;
  cl_reauth_io io = ra_io(c);
  cl_reauth_start(&c->ra, now_ms(c->t), &io);
}

static void on_reauth(cl_conn *c, const uint8_t *d, size_t n) {
  cl_transport *t = c->t;
  cl_reauth_io io = ra_io(c);
  cl_reauth_result res;
  char mine[CL_KEYRING_MAX * (CL_FP_LEN + 2) + 1];
  switch (cl_reauth_frame(&c->ra, d, n, now_ms(t), t->hs_cfg.keys, t->hs_cfg.n_keys, &io, &res)) {
  case CL_RA_NOTHING:
    return;
  case CL_RA_REKEYED:
    if (res.initiator)
      t->kst[res.ring_index].hs++;
    else
      count_hs(t, c->ra.key.id);
    cl_log(CL_LOG_INFO, SUBSYS(t), NULL, "connection with %s re-authenticated under key %s", c->peer->nn.full,
           key_fp(t, &c->ra.key));
    return;
  case CL_RA_FAIL_REFLECTED_CHALLENGE:
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "%s sent this node's own re-authentication back: closing the connection",
           c->peer->nn.full);
    break;
  case CL_RA_FAIL_REFLECTED_OFFER:
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "%s sent this node's own key offer back: closing the connection",
           c->peer->nn.full);
    break;
  case CL_RA_FAIL_NO_COMMON_KEY:
    cl_hs_fp_list(t->hs_cfg.keys, t->hs_cfg.n_keys, mine, sizeof mine);
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL,
           "no key in common with %s any more (it holds %s, this node holds %s): closing the connection",
           c->peer->nn.full, res.theirs, mine);
    break;
  case CL_RA_FAIL_PEER_HAS_NONE:
    cl_hs_fp_list(t->hs_cfg.keys, t->hs_cfg.n_keys, mine, sizeof mine);
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL,
           "%s holds none of this node's keys (%s) any more: closing the connection (its log names its keys)",
           c->peer->nn.full, mine);
    break;
  case CL_RA_FAIL_BAD_PROOF:
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL, "re-authentication of the connection with %s did not verify: closing it",
           c->peer->nn.full);
    break;
  case CL_RA_FAIL_OFFER_GONE:
    cl_log(CL_LOG_WARN, SUBSYS(t), NULL,
           "%s accepted a key offer that had expired or a key this node no longer holds: closing the connection",
           c->peer->nn.full);
    break;
  case CL_RA_FAIL_NO_MEMORY:
    break;
  }
  conn_down(c, "closed");
}

int cl_transport_set_keys(cl_transport *t, const cl_transport_key *keys, size_t n, char *err, size_t errlen) {
  if (!keys || n == 0 || n > CL_KEYRING_MAX) {
    if (err) snprintf(err, errlen, "the keyring needs 1 to %d keys", CL_KEYRING_MAX);
    return CL_EINVAL;
  }
  cl_hs_key nk[CL_KEYRING_MAX];
  uint64_t hs[CL_KEYRING_MAX], fail[CL_KEYRING_MAX];
  for (size_t i = 0; i < n; i++) {
    if (!keys[i].key || !keys[i].len || !keys[i].id) {
      if (err) snprintf(err, errlen, "key %zu is empty or has no id", i + 1);
      sodium_memzero(nk, sizeof nk);
      return CL_EINVAL;
    }
    cl_hs_keys(keys[i].key, keys[i].len, nk[i].k_hs, nk[i].k_sess);
    nk[i].id = keys[i].id;
    int o = key_index(t, keys[i].id);
    const char *fp = keys[i].fp && keys[i].fp[0] ? keys[i].fp : o >= 0 ? t->hs_cfg.keys[o].fp : "";
    snprintf(nk[i].fp, sizeof nk[i].fp, "%s", fp);
    hs[i] = o >= 0 ? t->kst[o].hs : 0;
    fail[i] = o >= 0 ? t->kst[o].fail : 0;
  }
  memcpy(t->hs_cfg.keys, nk, n * sizeof *nk);
  sodium_memzero(t->hs_cfg.keys + n, (CL_KEYRING_MAX - n) * sizeof *nk);
  t->hs_cfg.n_keys = n;
  for (size_t i = 0; i < n; i++) {
    t->kst[i].hs = hs[i];
    t->kst[i].fail = fail[i];
  }
  sodium_memzero(nk, sizeof nk);
  for (cl_conn *c = t->conns; c; c = c->next)
    if (c->state == C_UP && c->installed && key_index(t, c->ra.key.id) < 0) reauth_start(c);
  return 0;
}

void cl_transport_key_fingerprint(cl_transport *t, uint32_t id, const char *fp) {
  int i = key_index(t, id);
  if (i >= 0 && fp) snprintf(t->hs_cfg.keys[i].fp, sizeof t->hs_cfg.keys[i].fp, "%s", fp);
}

size_t cl_transport_key_stats(const cl_transport *t, cl_transport_key_stat *out, size_t max) {
  for (size_t i = 0; i < t->hs_cfg.n_keys && i < max; i++) {
    const cl_hs_key *k = &t->hs_cfg.keys[i];
    memset(&out[i], 0, sizeof out[i]);
    out[i].id = k->id;
    snprintf(out[i].fp, sizeof out[i].fp, "%s", k->fp);
    out[i].primary = i == 0;
    out[i].handshakes = t->kst[i].hs;
    out[i].auth_failures = t->kst[i].fail;
    for (const cl_peer *p = t->peers; p; p = p->next)
      if (p->conn && p->conn->state == C_UP && p->conn->ra.key.id == k->id) out[i].connections++;
  }
  return t->hs_cfg.n_keys;
}

uint64_t cl_transport_auth_failures_unknown(const cl_transport *t) { return t->auth_fail_unknown; }
