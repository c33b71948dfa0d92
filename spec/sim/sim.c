/* Deterministic simulator of the election core.
 *
 * Runs whole clusters of the real core (runtime/election), the real glue that performs
 * its effects (runtime/node/el_driver.c) and the transport's real failure detector
 * (runtime/transport/detector.c, with watch.c's choice of whom each node watches and the
 * DOWN announcement) and Lua-lag check (runtime/node/lua_lag_check.c, against
 * a simulated Lua loop that stalls) in one process on simulated time, with every source of nondeterminism drawn from one seeded
 * PRNG: cluster shape, roles, fault rates, message drop/duplication/delay/
 * reordering, disconnects, silent blackholes, one-way links, partitions,
 * reboots, failed and lost writes, exclusions, metadata updates, Lua lag, paused
 * (starved) nodes that resume running late and widen their timeouts as the real glue
 * does (local health: the transport's awareness, the election's grace), and
 * a node whose data belongs to another cluster joining at a random time (it
 * must never vote with this cluster, raise its term or cost it its master).
 * After every step it checks the safety rules of docs/design.md (E1-E9, E11-E14)
 * and L1; after the faults stop it checks liveness (L2) within a bound
 * computed from the configuration. One seed in SCALE_EVERY runs run_scale (L3): a
 * cluster of 50-200 master-eligible nodes forms without churning terms and replaces a
 * killed master quickly.
 *
 *   sim --seeds N [--first S] [--stop-at-first] [--jobs J]
 *   sim --seed S [--verbose]          replay one seed
 *   sim --seed S --scale N            run_scale with N nodes, and print what it measured
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "election/election.h"
#include "node/el_driver.h" /* the real glue's effect executor, run on virtual time */
#include "transport/detector.h" /* the transport's real failure detector */
#include "transport/watch.h"    /* and its choice of whom each node watches */
#include "node/lua_lag_check.h" /* the glue's real Lua-lag rule */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXN 7      /* most seeds: 1 to 7 nodes, full mesh */
#define BIG_EVERY 499 /* every 499th seed (odd: the 2 jobs share them): a large cluster (BIG_MIN..BIG_MAX nodes, few masters) */
#define BIG_MIN 20
#define BIG_MAX 250
#define HUGE_EVERY 2501 /* every 2501st seed: HUGE_N nodes (a big seed too) */
#define HUGE_N 1000
/* every SCALE_EVERY-th seed (at SCALE_AT): SCALE_MIN..SCALE_MAX nodes, all master-eligible
 * (issue 18: hundreds of master-eligible nodes, a small voting configuration), booting
 * staggered, then the master killed for good; see run_scale */
#define SCALE_EVERY 997
#define SCALE_AT 5
#define SCALE_MIN 50
#define SCALE_MAX 200
#define US 1000ull /* time is kept in microseconds; the core sees ms */
/* election.lua_stepdown_ms of every simulated node: pings every 500 ms */
#define SIM_LUA_STEPDOWN_MS 2000

/* ------------------------------------------------------------------ PRNG */

typedef struct { uint64_t s[4]; } rng_t;

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng_t *r) { /* xoshiro256** */
  uint64_t *s = r->s;
  uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return res;
}

static uint64_t below(rng_t *r, uint64_t n) { return n ? rng_next(r) % n : 0; }
static int chance(rng_t *r, double p) { return (double)(rng_next(r) >> 11) / 9007199254740992.0 < p; }
static uint64_t range(rng_t *r, uint64_t lo, uint64_t hi) { return lo + below(r, hi - lo + 1); }

/* ------------------------------------------------------------- the world */

typedef struct msg_ev {
  uint64_t at, seq;
  int kind; /* 1 deliver, 2 reboot, 3 connect, 4 transport heartbeat (ping, or pong if epoch's top bit),
              5 Lua-lag check tick, 6 Lua's answer to ping `arg` (both: epoch = the node's boot),
              7 a paused node runs again (epoch = its boot) */
  uint64_t arg;
  int pong;
  int from, to;
  uint64_t epoch;
  uint8_t *data;
  size_t len;
} msg_ev;

struct world;

typedef struct node {
  cl_el *el;           /* the driver's core, for reading */
  cl_eldrv drv;
  cl_eldrv_io io;
  struct world *w;
  int idx;
  int persisted;       /* the current step persisted something */
  const char *crash_why; /* set by a failed persist: crash once the step is over */
  int up;
  char id[40], name[64], addr[40];
  uint32_t flags;
  uint8_t *disk;
  size_t disk_len;
  uint64_t disk_term;           /* the term in the persisted file */
  uint64_t disk_acc_t, disk_acc_v; /* the accepted state in it */
  uint64_t boot_term, max_term;
  uint64_t voted_max; /* the highest term of a durable vote it sent (RULE E15) */
  uint8_t *pv_lazy;   /* a pre-vote's step: the lazy write waiting before it */
  size_t pv_lazy_len;
  uint64_t acc_t, acc_v;        /* accepted (term, version) after the last step */
  int acc_c;
  cl_el_vconfig prev_cc, prev_ac; /* configurations of that accepted state (copies) */
  uint64_t next_dl;             /* cl_el_next_deadline after the last step (it changes only in steps) */
  uint64_t app_v, app_t;
  int was_leader;
  int fail_next_persist;        /* 1: EIO, 2: power loss before fsync */
  cl_lag lag;                /* the glue's Lua-lag check */
  uint64_t lua_stuck_until;  /* the simulated Lua loop answers nothing before (µs) */
  /* its control loop is paused (SIGSTOP, a starved CPU) until then (µs): no timer runs,
   * frames to it wait in its socket; it resumes running late (local health) */
  uint64_t paused_until, paused_from;
  cl_det_awareness aw;       /* the transport's local-health score, as on the node */
  uint64_t boots;            /* lag events of an earlier boot are dropped */
  int booted_once;
  int stay_down;             /* killed for good (kill -9, never restarted) */
  uint64_t joined[64];          /* term -> voted for (index+1), ring keyed by term */
  uint64_t joined_term[64];
} node;

typedef struct kv { /* (term, version) -> state hash and who durably accepted it */
  uint64_t t, v;
  uint8_t h[32];
  uint64_t *accepted_by; /* a bitset of node indexes, w->nwords words */
  int used;
} kv;

typedef struct committed {
  uint64_t t, v;
  uint8_t *meta;
  uint32_t len;
} committed;

typedef struct req {
  int used, node, kind;
  uint64_t id;
  uint8_t token[8];
} req;

typedef struct world {
  uint64_t seed;
  rng_t r;
  int n;
  int foreign; /* index of the node from another cluster, -1 if none */
  node *nodes;  /* cap_n of them */
  int cap_n;    /* nodes allocated (the foreign one included); the n x n arrays use it */
  size_t nwords; /* words of a node bitset */
  int sparse;   /* large seeds: only links with a master-eligible node at one end (as a
                   large cluster needs: followers talk to masters), so n^2 links are not
                   simulated */
  uint32_t max_voting; /* the seed's election.max_voting_nodes (RULE E12) */
  int excl_requested;  /* an exclusion was asked in this seed: configurations of 2 allowed */
  cl_el_config cfg;
  const char *initial[CL_EL_MAX_INITIAL];
  char initial_buf[CL_EL_MAX_INITIAL][64];
  size_t n_initial;
  uint64_t now; /* us */
  /* network */
  /* n x n, flat (W_conn(w, a, b) ...) */
  uint8_t *conn;               /* connection up (symmetric) */
  uint64_t *epoch;             /* bumps on every (dis)connect: in-flight frames die */
  uint8_t *cut;                /* administrative: 1 disconnect, 2 blackhole a->b */
  /* the transport's failure detector on each connection (det[a][b]: a's view of b);
   * det_timeout_ms 0: off, so the core's own timeouts face silent links alone */
  cl_det *det;
  uint32_t det_hb_ms, det_timeout_ms;
  /* large and scale seeds, half of them: what a large cluster's glue adds to every
   * node's checks (large_timeout_ms - check_timeout_ms) and the master heartbeat it
   * sets, half of the whole (the transport's large_heartbeat_ms by default,
   * node_election.c); 0: a mesh's */
  uint32_t large_extra_ms;
  double p_drop, p_dup, p_extreme;
  uint64_t delay_lo, delay_hi;
  /* events */
  msg_ev *ev;
  size_t nev, capev;
  uint64_t seq;
  /* invariants */
  char **leader_of_term; size_t cap_terms;
  kv *map; size_t cap_map, n_map;
  committed *com; size_t n_com, cap_com;
  req reqs[32];
  uint64_t next_req, token_ctr;
  uint64_t *ever_excluded; /* bitset: requested since the last clear that surely came after */
  uint64_t trace;
  int verbose, violated;
  char why[512];
  uint64_t steps;
  uint64_t lazy_lost; /* crashes that lost a lazily written state (RULE E14) */
  cl_el_state st_scratch;
} world;

#define W_AT(w, a, b) ((size_t)(a) * (size_t)(w)->cap_n + (size_t)(b))
#define W_conn(w, a, b) ((w)->conn[W_AT(w, a, b)])
#define W_epoch(w, a, b) ((w)->epoch[W_AT(w, a, b)])
#define W_cut(w, a, b) ((w)->cut[W_AT(w, a, b)])
#define W_det(w, a, b) ((w)->det[W_AT(w, a, b)])
#define BIT_GET(m, j) ((m) && (((m)[(size_t)(j) >> 6] >> ((unsigned)(j) & 63)) & 1))
#define BIT_SET(m, j) ((m)[(size_t)(j) >> 6] |= 1ull << ((unsigned)(j) & 63))

static void violation(world *w, const char *fmt, ...) {
  if (w->violated) return;
  w->violated = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->why, sizeof w->why, fmt, ap);
  va_end(ap);
}

static void vlog(world *w, const char *fmt, ...) {
  if (!w->verbose) return;
  va_list ap;
  va_start(ap, fmt);
  printf("%8.3f ", (double)w->now / 1000.0);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

static void trace_mix(world *w, uint64_t v) {
  w->trace ^= v + 0x9e3779b97f4a7c15ULL + (w->trace << 6) + (w->trace >> 2);
}

/* ---- event heap ---- */

static int ev_less(const msg_ev *a, const msg_ev *b) { return a->at < b->at || (a->at == b->at && a->seq < b->seq); }

static void ev_push(world *w, msg_ev e) {
  if (w->nev == w->capev) {
    w->capev = w->capev ? w->capev * 2 : 256;
    w->ev = realloc(w->ev, w->capev * sizeof *w->ev);
  }
  e.seq = w->seq++;
  size_t i = w->nev++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!ev_less(&e, &w->ev[p])) break;
    w->ev[i] = w->ev[p];
    i = p;
  }
  w->ev[i] = e;
}

static msg_ev ev_pop(world *w) {
  msg_ev top = w->ev[0], last = w->ev[--w->nev];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= w->nev) break;
    if (c + 1 < w->nev && ev_less(&w->ev[c + 1], &w->ev[c])) c++;
    if (!ev_less(&w->ev[c], &last)) break;
    w->ev[i] = w->ev[c];
    i = c;
  }
  if (w->nev) w->ev[i] = last;
  return top;
}

/* ------------------------------------------------------------ invariants */

/* ids end with the node's index (4 digits): a lookup, not a scan of 1,000 nodes */
static int node_index(world *w, const char *id) {
  size_t l = strlen(id);
  if (l < 4) return -1;
  int i = atoi(id + l - 4);
  if (i >= 0 && i < w->n && !strcmp(w->nodes[i].id, id)) return i;
  return -1;
}

static kv *map_get(world *w, uint64_t t, uint64_t v, int create) {
  if (w->n_map * 2 >= w->cap_map) {
    size_t cap = w->cap_map ? w->cap_map * 2 : 1024;
    kv *m = calloc(cap, sizeof *m);
    for (size_t i = 0; i < w->cap_map; i++)
      if (w->map[i].used) {
        size_t j = (w->map[i].t * 1000003u + w->map[i].v) & (cap - 1);
        while (m[j].used) j = (j + 1) & (cap - 1);
        m[j] = w->map[i];
      }
    free(w->map);
    w->map = m;
    w->cap_map = cap;
  }
  size_t j = (t * 1000003u + v) & (w->cap_map - 1);
  while (w->map[j].used) {
    if (w->map[j].t == t && w->map[j].v == v) return &w->map[j];
    j = (j + 1) & (w->cap_map - 1);
  }
  if (!create) return NULL;
  w->map[j].accepted_by = calloc(w->nwords, sizeof(uint64_t));
  w->map[j].used = 1;
  w->map[j].t = t;
  w->map[j].v = v;
  w->n_map++;
  return &w->map[j];
}

static int cl_state_has(const cl_el_state *st, const char *id) {
  for (uint32_t k = 0; k < st->n_nodes; k++)
    if (!strcmp(st->nodes[k].id, id)) return 1;
  return 0;
}

static void set_leader(world *w, uint64_t term, const char *id) {
  if (term >= w->cap_terms) {
    size_t cap = w->cap_terms ? w->cap_terms : 64;
    while (cap <= term) cap *= 2;
    w->leader_of_term = realloc(w->leader_of_term, cap * sizeof(char *));
    memset(w->leader_of_term + w->cap_terms, 0, (cap - w->cap_terms) * sizeof(char *));
    w->cap_terms = cap;
  }
  if (!w->leader_of_term[term]) {
    w->leader_of_term[term] = strdup(id);
  } else if (strcmp(w->leader_of_term[term], id)) {
    violation(w, "two masters in term %llu: %s and %s", (unsigned long long)term, w->leader_of_term[term], id);
  }
}

static void record_join(world *w, int voter, uint64_t term, int target) {
  node *n = &w->nodes[voter];
  size_t k = term % 64;
  if (n->joined_term[k] == term && n->joined[k] != (uint64_t)target + 1)
    violation(w, "%s joined twice in term %llu (for %s and %s)", n->name, (unsigned long long)term,
              w->nodes[n->joined[k] - 1].name, w->nodes[target].name);
  n->joined_term[k] = term;
  n->joined[k] = (uint64_t)target + 1;
}

/* RULE E15: whether the durable joins sent to node i in term t (and its own) form a
 * quorum of c */
static int durable_quorum_for(world *w, int i, uint64_t t, const cl_el_vconfig *c) {
  if (c->n == 0) return 1;
  uint32_t k = 0;
  for (uint32_t x = 0; x < c->n; x++) {
    int j = node_index(w, c->ids[x]);
    if (j < 0) continue;
    const node *v = &w->nodes[j];
    k += j == i || (v->joined_term[t % 64] == t && v->joined[t % 64] == (uint64_t)i + 1);
  }
  return k >= cl_el_quorum(c->n);
}

static int quorum_of_mask(world *w, const cl_el_vconfig *c, const uint64_t *mask) {
  if (c->n == 0) return 0;
  uint32_t k = 0;
  for (uint32_t i = 0; i < c->n; i++) {
    int j = node_index(w, c->ids[i]);
    if (j >= 0 && BIT_GET(mask, j)) k++;
  }
  return k >= cl_el_quorum(c->n);
}

static int is_prefix(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl) {
  return al <= bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* committed states form one chain: metadata updates only append, so any
 * committed state's metadata must extend every lower-versioned one's */
static void check_committed(world *w, int i, const cl_el_state *st) {
  uint8_t h[32];
  cl_el_state_hash(st, h);
  kv *e = map_get(w, st->term, st->version, 0);
  if (!e) {
    violation(w, "%s applied (%llu,%llu) that no node ever accepted", w->nodes[i].name,
              (unsigned long long)st->term, (unsigned long long)st->version);
    return;
  }
  if (memcmp(e->h, h, 32)) {
    violation(w, "%s applied a different state for (%llu,%llu)", w->nodes[i].name, (unsigned long long)st->term,
              (unsigned long long)st->version);
    return;
  }
  size_t pos = 0;
  while (pos < w->n_com && w->com[pos].v < st->version) pos++;
  if (pos < w->n_com && w->com[pos].v == st->version) {
    if (w->com[pos].t != st->term)
      violation(w, "committed version %llu in two terms (%llu and %llu): a committed state was lost",
                (unsigned long long)st->version, (unsigned long long)w->com[pos].t, (unsigned long long)st->term);
    return;
  }
  if (pos > 0 && !is_prefix(w->com[pos - 1].meta, w->com[pos - 1].len, st->meta, st->meta_len))
    violation(w, "committed (%llu,%llu) does not extend committed (%llu,%llu): a committed update was lost",
              (unsigned long long)st->term, (unsigned long long)st->version, (unsigned long long)w->com[pos - 1].t,
              (unsigned long long)w->com[pos - 1].v);
  if (pos < w->n_com && !is_prefix(st->meta, st->meta_len, w->com[pos].meta, w->com[pos].len))
    violation(w, "committed (%llu,%llu) is not extended by committed (%llu,%llu): a committed update was lost",
              (unsigned long long)st->term, (unsigned long long)st->version, (unsigned long long)w->com[pos].t,
              (unsigned long long)w->com[pos].v);
  if (w->n_com == w->cap_com) {
    w->cap_com = w->cap_com ? w->cap_com * 2 : 64;
    w->com = realloc(w->com, w->cap_com * sizeof *w->com);
  }
  memmove(&w->com[pos + 1], &w->com[pos], (w->n_com - pos) * sizeof *w->com);
  w->com[pos].t = st->term;
  w->com[pos].v = st->version;
  w->com[pos].len = st->meta_len;
  w->com[pos].meta = st->meta_len ? malloc(st->meta_len) : NULL;
  if (st->meta_len) memcpy(w->com[pos].meta, st->meta, st->meta_len);
  w->n_com++;
}

static const cl_el_vconfig *eff_cc(const cl_el_vconfig *cc, const cl_el_vconfig *ac, int committed) {
  return committed ? ac : cc;
}

static int vc_eq(const cl_el_vconfig *a, const cl_el_vconfig *b) {
  if (a->n != b->n) return 0;
  for (uint32_t i = 0; i < a->n; i++)
    if (strcmp(a->ids[i], b->ids[i])) return 0;
  return 1;
}

static int vc_has(const cl_el_vconfig *c, const char *id) {
  for (uint32_t i = 0; i < c->n; i++)
    if (!strcmp(c->ids[i], id)) return 1;
  return 0;
}

static void vc_copy(cl_el_vconfig *d, const cl_el_vconfig *s) {
  if (cl_el_vconfig_copy(d, s)) abort();
}

/* RULE E12: no configuration goes past max_voting_nodes; one that a reconfiguration
 * made is odd and, once 3 or more, never below 3 on its own (2 only by an exclusion) */
static void check_voting_cap(world *w, node *n, const cl_el_state *acc) {
  const cl_el_vconfig *cs[2] = {&acc->committed_config, &acc->accepted_config};
  for (int k = 0; k < 2; k++)
    if (cs[k]->n > w->max_voting)
      violation(w, "%s: a voting configuration of %u in (%llu,%llu), above max_voting_nodes %u", n->name, cs[k]->n,
                (unsigned long long)acc->term, (unsigned long long)acc->version, w->max_voting);
  /* a reconfiguration in flight: the state's accepted configuration is not its last
   * committed one (a bootstrap state, from the list, has both the same) */
  if (acc->term > 0 && !vc_eq(&acc->accepted_config, &acc->committed_config)) {
    uint32_t a = acc->accepted_config.n, c = acc->committed_config.n;
    if (a % 2 == 0 && !(a == 2 && w->excl_requested))
      violation(w, "%s: (%llu,%llu) reconfigured to an even configuration of %u", n->name,
                (unsigned long long)acc->term, (unsigned long long)acc->version, a);
    if (c >= 3 && a < 3 && !w->excl_requested)
      violation(w, "%s: (%llu,%llu) a configuration of %u shrank to %u with no exclusion", n->name,
                (unsigned long long)acc->term, (unsigned long long)acc->version, c, a);
  }
}

/* after every step of node i */
static void check_node(world *w, int i, int prevote_req_input, int persisted) {
  node *n = &w->nodes[i];
  cl_el *el = n->el;
  uint64_t term = cl_el_term(el);
  if (term < n->max_term)
    violation(w, "%s: term went back from %llu to %llu", n->name, (unsigned long long)n->max_term,
              (unsigned long long)term);
  if (prevote_req_input && (persisted || term != n->max_term))
    violation(w, "%s: answering a pre-vote changed persisted state", n->name);
  n->max_term = term;
  if (i == w->foreign) return; /* its own cluster: its terms and states are not this one's */
  const cl_el_state *acc = cl_el_accepted(el);
  int accc = cl_el_accepted_is_committed(el);
  if (acc->term > term) violation(w, "%s: accepted term %llu above current term %llu", n->name,
                                   (unsigned long long)acc->term, (unsigned long long)term);
  cl_el_mode mode = cl_el_get_mode(el);
  if (mode == CL_EL_LEADER) {
    set_leader(w, term, n->id);
    if (term <= n->boot_term)
      violation(w, "%s won term %llu without starting a new term after reboot (boot term %llu)", n->name,
                (unsigned long long)term, (unsigned long long)n->boot_term);
  }
  if (acc->term != n->acc_t || acc->version != n->acc_v) {
    if (acc->term > 0) {
      if (acc->term != term)
        violation(w, "%s accepted (%llu,%llu) outside its current term %llu", n->name, (unsigned long long)acc->term,
                  (unsigned long long)acc->version, (unsigned long long)term);
      if (!(acc->term > n->acc_t || (acc->term == n->acc_t && acc->version > n->acc_v)))
        violation(w, "%s accepted (%llu,%llu) after (%llu,%llu): not newer", n->name, (unsigned long long)acc->term,
                  (unsigned long long)acc->version, (unsigned long long)n->acc_t, (unsigned long long)n->acc_v);
      uint8_t h[32];
      cl_el_state_hash(acc, h);
      kv *e = map_get(w, acc->term, acc->version, 0);
      if (!e) {
        e = map_get(w, acc->term, acc->version, 1);
        memcpy(e->h, h, 32);
      } else if (memcmp(e->h, h, 32)) {
        violation(w, "(%llu,%llu) names two different states (seen on %s)", (unsigned long long)acc->term,
                  (unsigned long long)acc->version, n->name);
      }
      if (mode == CL_EL_LEADER && acc->term == term) {
        /* a publication: RULE E7, E8: one reconfiguration at a time */
        /* within a term the previous publication committed first (one in
         * flight): it must hold a durable quorum of both its configurations */
        int same_term = acc->term == n->acc_t;
        if (same_term) {
          kv *pe = map_get(w, n->acc_t, n->acc_v, 0);
          const uint64_t *mask = pe ? pe->accepted_by : NULL;
          if (!quorum_of_mask(w, &n->prev_cc, mask) || !quorum_of_mask(w, &n->prev_ac, mask))
            violation(w, "%s published (%llu,%llu) before (%llu,%llu) had a durable quorum", n->name,
                      (unsigned long long)acc->term, (unsigned long long)acc->version,
                      (unsigned long long)n->acc_t, (unsigned long long)n->acc_v);
        }
        const cl_el_vconfig *prev_eff = eff_cc(&n->prev_cc, &n->prev_ac, n->acc_c || same_term);
        if (!vc_eq(&acc->committed_config, prev_eff))
          violation(w, "%s published (%llu,%llu) whose committed config is not the last committed one", n->name,
                    (unsigned long long)acc->term, (unsigned long long)acc->version);
        if (!(n->acc_c || same_term) && !vc_eq(&n->prev_cc, &n->prev_ac) && !vc_eq(&acc->accepted_config, &n->prev_ac))
          violation(w, "%s started a second reconfiguration before the first committed", n->name);
      }
    }
  }
  check_voting_cap(w, n, acc);
  vc_copy(&n->prev_cc, &acc->committed_config); /* also bootstrap changes them at (0,0) */
  vc_copy(&n->prev_ac, &acc->accepted_config);
  if (mode == CL_EL_LEADER && accc && !n->acc_c && acc->term == term) {
    /* RULE E1, E6, E7: commit needs a quorum of both configurations, durably accepted */
    kv *e = map_get(w, acc->term, acc->version, 0);
    const uint64_t *mask = e ? e->accepted_by : NULL;
    if (!quorum_of_mask(w, &acc->committed_config, mask) || !quorum_of_mask(w, &acc->accepted_config, mask))
      violation(w, "%s committed (%llu,%llu) without a durable quorum of both configurations (mask %llx)", n->name,
                (unsigned long long)acc->term, (unsigned long long)acc->version,
                (unsigned long long)(mask ? mask[0] : 0));
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
    if (w->foreign >= 0 && cl_state_has(app, w->nodes[w->foreign].id))
      violation(w, "%s committed a state in which %s, a node of another cluster, is a member", n->name,
                w->nodes[w->foreign].name);
  }
}

/* ---------------------------------------------------------- the cluster */

static void connect_pair(world *w, int a, int b);
static void disconnect_pair(world *w, int a, int b);
static void crash(world *w, int i, const char *why);


/* L1: quorum_lost must mean that the voting nodes node i is connected to (the
 * transport's failure detector closes silent links) are not a quorum of its
 * voting configurations, never just that the master went away */
static void check_quorum_lost(world *w, int i) {
  const cl_el_state *acc = cl_el_accepted(w->nodes[i].el);
  uint64_t *mask = calloc(w->nwords, sizeof *mask);
  BIT_SET(mask, i);
  for (int j = 0; j < w->n; j++)
    if (j != i && j != w->foreign && W_conn(w, i, j)) BIT_SET(mask, j);
  const cl_el_vconfig *cc = cl_el_accepted_is_committed(w->nodes[i].el) ? &acc->accepted_config : &acc->committed_config;
  if (quorum_of_mask(w, cc, mask) && quorum_of_mask(w, &acc->accepted_config, mask))
    violation(w, "%s: quorum_lost while connected to a quorum of its voting configuration", w->nodes[i].name);
  free(mask);
}

/* ---- the driver's io: what the node's glue does for real, done on the simulated
 * network and disk, with the checks each effect allows ---- */

static uint64_t io_now(void *ud) {
  node *n = ud;
  return n->w->now / US;
}

static int io_persist(void *ud, cl_el_persist_kind kind, const uint8_t *data, size_t len) {
  (void)kind;
  node *n = ud;
  world *w = n->w;
  int i = n->idx;
  if (n->fail_next_persist) {
    int how = n->fail_next_persist;
    n->fail_next_persist = 0;
    n->crash_why = how == 1 ? "persist failed (EIO)" : "power lost before fsync";
    return -1;
  }
  if (!n->pv_lazy || len != n->pv_lazy_len || memcmp(data, n->pv_lazy, len)) n->persisted = 1;
  uint64_t t;
  int c;
  char err[160];
  if (cl_el_persist_decode(data, len, &t, &w->st_scratch, &c, err, sizeof err)) {
    violation(w, "%s persisted an unreadable file: %s", n->name, err);
    return 0;
  }
  /* RULE E15: a master's configuration in its own term stands on durable votes: the
   * joins it could count (a win, a reconfiguration) came from nodes whose disks held the
   * term when they sent them */
  if (w->st_scratch.term == t && t > 0 && i != w->foreign && !strcmp(w->st_scratch.master_id, n->id) &&
      !durable_quorum_for(w, i, t, &w->st_scratch.accepted_config))
    violation(w, "%s persisted its state of term %llu with a voting configuration no quorum of durable joins formed",
              n->name, (unsigned long long)t);
  if (w->st_scratch.term > 0 && i != w->foreign) {
    kv *m = map_get(w, w->st_scratch.term, w->st_scratch.version, 0);
    if (m) BIT_SET(m->accepted_by, i);
    else {
      uint8_t h[32];
      cl_el_state_hash(&w->st_scratch, h);
      m = map_get(w, w->st_scratch.term, w->st_scratch.version, 1);
      memcpy(m->h, h, 32);
      BIT_SET(m->accepted_by, i);
    }
  }
  n->disk_acc_t = w->st_scratch.term;
  n->disk_acc_v = w->st_scratch.version;
  cl_el_state_clear(&w->st_scratch);
  free(n->disk);
  n->disk = malloc(len);
  memcpy(n->disk, data, len);
  n->disk_len = len;
  n->disk_term = t;
  return 0;
}

static void io_send(void *ud, const char *to, const uint8_t *data, size_t len) {
  node *n = ud;
  world *w = n->w;
  int i = n->idx;
  int j = node_index(w, to);
  if (j < 0 || j == i) {
    violation(w, "%s sent to unknown node %s", n->name, to);
    return;
  }
  size_t toff = len > 7 ? 7 + (size_t)(data[5] | data[6] << 8) : len; /* after the cluster id */
  /* RULE E15: a JOIN says whether its term is durable on the voter (its last byte);
   * only a durable one can count, so only those are votes here. A START_JOIN is its
   * sender's own vote, always durable. */
  int lazy_join = data[4] == 4 && toff + 25 <= len && data[toff + 24] == 0;
  if (toff + 8 <= len && (data[4] == 4 || data[4] == 3) && !lazy_join) { /* JOIN / START_JOIN */
    uint64_t term = 0;
    for (int b = 0; b < 8; b++) term |= (uint64_t)data[toff + b] << (8 * b);
    /* the glue's rule: a vote leaves only once the term it is for is durable */
    if (n->disk_term < term)
      violation(w, "%s sent a %s for term %llu before persisting that term (disk holds %llu)", n->name,
                data[4] == 4 ? "join" : "start-join", (unsigned long long)term, (unsigned long long)n->disk_term);
    if (term > n->voted_max) n->voted_max = term;
    if (i != w->foreign && j != w->foreign) record_join(w, i, term, data[4] == 4 ? j : i);
    else if (data[4] == 4)
      violation(w, "%s voted for %s, a node of the other cluster", n->name, w->nodes[j].name);
  }
  if (toff + 17 <= len && data[4] == 6 /* PUBLISH_RESP */ && data[toff + 16] == 1 /* accepted */ && i != w->foreign) {
    /* RULE E6, E14: a node whose acknowledgement can count (it is in the last committed
     * or the new configuration of the state) acknowledges only a durable state; any
     * other may have written it lazily (and may lose it in a crash) */
    uint64_t version = 0;
    for (int b = 0; b < 8; b++) version |= (uint64_t)data[toff + 8 + b] << (8 * b);
    const cl_el_state *acc = cl_el_accepted(n->el);
    if (acc->version == version &&
        (vc_has(&acc->committed_config, n->id) || vc_has(&acc->accepted_config, n->id)) &&
        (n->disk_acc_t != acc->term || n->disk_acc_v != acc->version))
      violation(w, "%s acknowledged (%llu,%llu), in whose configuration it votes, before it was durable (disk holds (%llu,%llu))",
                n->name, (unsigned long long)acc->term, (unsigned long long)acc->version,
                (unsigned long long)n->disk_acc_t, (unsigned long long)n->disk_acc_v);
  }
  if (i != w->foreign && j == w->foreign && data[4] == 2 /* PREVOTE_RESP */ && toff + 25 <= len && data[toff + 24])
    violation(w, "%s granted a pre-vote to %s, a node of another cluster", n->name, w->nodes[j].name);
  if (!W_conn(w, i, j)) return; /* not connected */
  if (w->det) cl_det_sent(&W_det(w, i, j), w->now / US); /* as the transport does: a frame is proof of life */
  if (W_cut(w, i, j) == 2) return; /* blackholed */
  int copies = 1 + (chance(&w->r, w->p_dup) ? 1 : 0);
  if (chance(&w->r, w->p_drop)) copies--;
  for (int c = 0; c < copies; c++) {
    msg_ev ev = {0};
    uint64_t d = range(&w->r, w->delay_lo, w->delay_hi);
    if (chance(&w->r, w->p_extreme)) d += range(&w->r, 50, 2000) * US;
    ev.at = w->now + d;
    ev.kind = 1;
    ev.from = i;
    ev.to = j;
    ev.epoch = W_epoch(w, i, j);
    ev.data = malloc(len);
    memcpy(ev.data, data, len);
    ev.len = len;
    ev_push(w, ev);
  }
}

static void io_event(void *ud, const cl_el_effect *e) {
  node *n = ud;
  world *w = n->w;
  trace_mix(w, (uint64_t)e->event * 7919 + e->term * 31 + e->version);
  if (e->event == CL_EL_EV_QUORUM_LOST && n->idx != w->foreign) check_quorum_lost(w, n->idx);
  vlog(w, "%s event %d new=%s old=%s t=%llu v=%llu", n->name, e->event, e->new_master, e->old_master,
       (unsigned long long)e->term, (unsigned long long)e->version);
}

static void io_log(void *ud, int level, const char *msg) {
  node *n = ud;
  vlog(n->w, "%s log[%d] %s", n->name, level, msg);
}

static void io_complete(void *ud, uint64_t req_id, const char *code, const char *msg, uint64_t version) {
  (void)version;
  node *n = ud;
  world *w = n->w;
  int i = n->idx;
  vlog(w, "%s complete req %llu %s %s", n->name, (unsigned long long)req_id, code, msg);
  for (int r = 0; r < 32; r++) {
    req *q = &w->reqs[r];
    if (!q->used || q->id != req_id || q->node != i) continue;
    if (!strcmp(code, "OK") && q->kind == 1) {
      const cl_el_state *app = cl_el_committed(n->el);
      int found = 0;
      for (uint32_t o = 0; o + 8 <= app->meta_len; o += 8)
        if (!memcmp(app->meta + o, q->token, 8)) found = 1;
      if (!found) violation(w, "%s: update %llu completed OK but is not in the applied state", n->name,
                            (unsigned long long)q->id);
    }
    if (!strcmp(code, "OK") && q->kind == 3) {
      int pending_excl = 0;
      for (int o = 0; o < 32; o++)
        if (w->reqs[o].used && w->reqs[o].kind == 2) pending_excl = 1;
      if (!pending_excl) memset(w->ever_excluded, 0, w->nwords * sizeof(uint64_t));
    }
    q->used = 0;
  }
}

static void io_rearm(void *ud, uint64_t deadline) {
  (void)ud, (void)deadline; /* run_until asks every node for its next deadline */
}

static const cl_eldrv_io sim_io = {.now_ms = io_now, .send = io_send, .persist = io_persist, .event = io_event,
                                   .log = io_log, .complete = io_complete, .rearm = io_rearm};

/* What the node's transport tick and election glue do about local health: a tick due at
 * due_ms (0: now, on time) moves the awareness score (detector.h); every connection's
 * detector gets score x its timeout, and the election score x leader_timeout_ms
 * (node_election.c), before the step. */
/* the master heartbeat a large cluster's glue sets (0: a mesh's, hb_interval_ms) */
static uint32_t large_hb_ms(const world *w) {
  return w->large_extra_ms ? (w->cfg.leader_timeout_ms + w->large_extra_ms) / 2 : 0;
}

static void local_health(world *w, int i, uint64_t due_ms) {
  node *n = &w->nodes[i];
  uint64_t now = w->now / US;
  uint32_t hb = w->det_hb_ms ? w->det_hb_ms : CL_DET_DEFAULT_HEARTBEAT_MS;
  cl_det_tick(&n->aw, due_ms ? due_ms : now, now, hb, w->det_timeout_ms);
  if (n->el) {
    cl_el_set_grace(n->el, n->aw.score * w->cfg.leader_timeout_ms + w->large_extra_ms);
    uint32_t hb = large_hb_ms(w);
    cl_el_set_heartbeat(n->el, hb > w->cfg.hb_interval_ms ? hb : 0);
  }
  if (w->det)
    for (int b = 0; b < w->n; b++)
      if (b != i) W_det(w, i, b).grace_ms = n->aw.score * w->det_timeout_ms;
}

static void step(world *w, int i, const cl_el_input *in) {
  node *n = &w->nodes[i];
  if (!n->up) return;
  int pv = in->kind == CL_EL_IN_MESSAGE && in->len > 4 && in->data[4] == 1; /* PREVOTE_REQ */
  local_health(w, i, 0);
  n->persisted = 0;
  n->crash_why = NULL;
  /* RULE E9 looks at what this step wrote: a lazy write left waiting by an earlier step
   * (RULE E14, E15) may fall due in it, with the state as it was before the step */
  if (pv && n->drv.lazy_pending && cl_el_persisted(n->drv.el, &n->pv_lazy, &n->pv_lazy_len) != 0) n->pv_lazy = NULL;
  cl_eldrv_input(&n->drv, in);
  free(n->pv_lazy);
  n->pv_lazy = NULL;
  n->next_dl = cl_eldrv_next_deadline(&n->drv); /* the core's, or a lazy write's (E14) */
  w->steps++;
  trace_mix(w, (uint64_t)i * 131 + (uint64_t)in->kind + w->now);
  if (n->crash_why) {
    crash(w, i, n->crash_why);
    return;
  }
  check_node(w, i, pv, n->persisted);
}

static cl_el_node_info info_of(node *n) {
  cl_el_node_info inf = {n->id, n->name, n->addr, n->flags, n->flags & CL_EL_F_MASTER ? "master" : "data"};
  return inf;
}

/* What the transport does when a connection comes or goes (watch.h): each node watches
 * its 3 successors (transport.watchers' default) on the ring of its connected peers,
 * and the watched side beats to it. The WATCH frame is taken as arriving at once. */
static void rewatch(world *w) {
  if (!w->det) return;
  const char **names = malloc((size_t)w->n * sizeof *names);
  uint64_t *h = malloc((size_t)w->n * sizeof *h);
  int *idx = malloc((size_t)w->n * sizeof *idx);
  size_t sel[CL_WATCH_DEFAULT];
  uint64_t now = w->now / US;
  for (int a = 0; a < w->n && names && h && idx; a++) {
    size_t m = 0;
    for (int b = 0; b < w->n; b++)
      if (b != a && W_conn(w, a, b)) names[m] = w->nodes[b].name, h[m] = cl_watch_hash(w->nodes[b].name), idx[m++] = b;
    size_t k = cl_watch_pick(names, h, m, w->nodes[a].name, cl_watch_hash(w->nodes[a].name), 1, SIZE_MAX,
                             CL_WATCH_DEFAULT, sel);
    for (size_t i = 0; i < m; i++) {
      int want = 0;
      for (size_t j = 0; j < k; j++) want |= sel[j] == i;
      cl_det *d = &W_det(w, a, idx[i]);
      if (want != d->watching) cl_det_watch(d, now, want), cl_det_beat_for(&W_det(w, idx[i], a), want, 0);
    }
  }
  free(names);
  free(h);
  free(idx);
}

/* large seeds: a link needs a master-eligible node at one end */
static int link_allowed(world *w, int a, int b) {
  return !w->sparse || (w->nodes[a].flags & CL_EL_F_MASTER) || (w->nodes[b].flags & CL_EL_F_MASTER);
}

static void connect_pair(world *w, int a, int b) {
  if (!link_allowed(w, a, b) || W_conn(w, a, b) || !w->nodes[a].up || !w->nodes[b].up || W_cut(w, a, b) == 1 || W_cut(w, b, a) == 1) return;
  W_conn(w, a, b) = W_conn(w, b, a) = 1;
  if (w->det) {
    cl_det_up(&W_det(w, a, b), w->now / US, w->det_hb_ms, w->det_timeout_ms);
    cl_det_up(&W_det(w, b, a), w->now / US, w->det_hb_ms, w->det_timeout_ms);
  }
  W_epoch(w, a, b)++;
  W_epoch(w, b, a)++;
  rewatch(w);
  cl_el_input in = {0};
  in.kind = CL_EL_IN_PEER_UP;
  in.peer = info_of(&w->nodes[b]);
  step(w, a, &in);
  if (!W_conn(w, a, b)) return;
  in.peer = info_of(&w->nodes[a]);
  step(w, b, &in);
}

static void disconnect_pair(world *w, int a, int b) {
  if (!W_conn(w, a, b)) return;
  W_conn(w, a, b) = W_conn(w, b, a) = 0;
  W_epoch(w, a, b)++;
  W_epoch(w, b, a)++;
  rewatch(w);
  cl_el_input in = {0};
  in.kind = CL_EL_IN_PEER_DOWN;
  in.peer_id = w->nodes[b].id;
  step(w, a, &in);
  in.peer_id = w->nodes[a].id;
  step(w, b, &in);
}

static void schedule_connect(world *w, int a, int b, uint64_t after);

/* a dial: through a blackhole it is lost (the transport retries with backoff) */
static void redial(world *w, int a, int b) {
  if (W_conn(w, a, b) || !w->nodes[a].up || !w->nodes[b].up) return;
  if (W_cut(w, a, b) || W_cut(w, b, a)) {
    schedule_connect(w, a, b, range(&w->r, 200, 2000) * US);
    return;
  }
  connect_pair(w, a, b);
}

static void schedule_connect(world *w, int a, int b, uint64_t after) {
  msg_ev ev = {0};
  ev.at = w->now + after;
  ev.kind = 3;
  ev.from = a;
  ev.to = b;
  ev_push(w, ev);
}

static void crash(world *w, int i, const char *why) {
  node *n = &w->nodes[i];
  if (!n->up) return;
  vlog(w, "%s crashes: %s", n->name, why);
  msg_ev ev = {0};
  ev.at = w->now + range(&w->r, 1, chance(&w->r, 0.2) ? 3000 : 300) * US;
  ev.kind = 2;
  ev.from = i;
  ev_push(w, ev);
  n->up = 0;
  if (n->drv.lazy_pending) w->lazy_lost++; /* RULE E14: lost with the process */
  cl_eldrv_free(&n->drv);
  n->el = NULL;
  n->next_dl = UINT64_MAX;
  for (int j = 0; j < w->n; j++)
    if (j != i && W_conn(w, i, j)) {
      W_conn(w, i, j) = W_conn(w, j, i) = 0;
      W_epoch(w, i, j)++;
      W_epoch(w, j, i)++;
      cl_el_input in = {0};
      in.kind = CL_EL_IN_PEER_DOWN;
      in.peer_id = n->id;
      step(w, j, &in);
    }
}

/* ---- the Lua-lag check: the real rule (lua_lag_check.c) against a simulated Lua loop
 * that answers a ping within 20 ms, or not before lua_stuck_until while it stalls ---- */

static void schedule_lag_tick(world *w, int i) {
  msg_ev ev = {0};
  ev.at = w->now + cl_lag_interval_ms(&w->nodes[i].lag) * US;
  ev.kind = 5;
  ev.from = i;
  ev.epoch = w->nodes[i].boots;
  ev_push(w, ev);
}

static void lag_act(world *w, int i, cl_lag_action a) {
  if (a != CL_LAG_STEP_DOWN && a != CL_LAG_RESUME) return;
  vlog(w, "%s: Lua %s", w->nodes[i].name, a == CL_LAG_STEP_DOWN ? "lags: no master duties" : "answers again");
  cl_el_input in = {0};
  in.kind = CL_EL_IN_LUA_LAG;
  in.flag = a == CL_LAG_STEP_DOWN;
  step(w, i, &in);
}

static void lag_tick(world *w, const msg_ev *e) {
  node *n = &w->nodes[e->from];
  if (!n->up || e->epoch != n->boots) return;
  /* as node/lua_lag.c: Lua's latest answer is taken in at the check */
  lag_act(w, e->from, cl_lag_take(&n->lag));
  cl_lag_action a = cl_lag_tick(&n->lag, w->now / US);
  if (a == CL_LAG_PING) {
    msg_ev ev = {0};
    uint64_t at = w->now + range(&w->r, 0, 20) * US;
    ev.at = at > n->lua_stuck_until ? at : n->lua_stuck_until;
    ev.kind = 6;
    ev.from = e->from;
    ev.epoch = n->boots;
    ev.arg = n->lag.seq;
    ev_push(w, ev);
  }
  lag_act(w, e->from, a);
  if (n->up && e->epoch == n->boots) schedule_lag_tick(w, e->from);
}

static void lag_pong(world *w, const msg_ev *e) {
  node *n = &w->nodes[e->from];
  if (!n->up || e->epoch != n->boots) return;
  /* stored, as Lua does (it wakes nobody); the next check takes it in */
  cl_lag_answer(&n->lag, e->arg, w->now / US);
}

static void boot(world *w, int i) {
  node *n = &w->nodes[i];
  cl_el_config cfg = w->cfg;
  cfg.seed = rng_next(&w->r);
  cl_el_node_info self = info_of(n);
  char err[256];
  n->el = cl_el_new(&cfg, &self, n->disk, n->disk_len, err, sizeof err);
  if (n->el) {
    n->io = sim_io;
    n->io.ud = n;
    n->w = w;
    n->idx = i;
    cl_eldrv_init(&n->drv, n->el, &n->io);
  }
  if (!n->el) {
    violation(w, "%s cannot boot from its own persisted state: %s", n->name, err);
    return;
  }
  n->up = 1;
  n->boot_term = cl_el_term(n->el);
  /* RULE E3, E15: a term this node voted in durably is never lost (a term it only
   * joined lazily may be: such a join counted nowhere) */
  if (n->boot_term < n->voted_max)
    violation(w, "%s rebooted with term %llu after having voted in term %llu (term not persisted)", n->name,
              (unsigned long long)n->boot_term, (unsigned long long)n->voted_max);
  n->max_term = n->boot_term;
  const cl_el_state *acc = cl_el_accepted(n->el);
  n->acc_t = acc->term;
  n->acc_v = acc->version;
  n->acc_c = cl_el_accepted_is_committed(n->el);
  vc_copy(&n->prev_cc, &acc->committed_config);
  vc_copy(&n->prev_ac, &acc->accepted_config);
  n->app_t = cl_el_committed(n->el)->term;
  n->app_v = cl_el_committed(n->el)->version;
  cl_lag_init(&n->lag, SIM_LUA_STEPDOWN_MS);
  n->lua_stuck_until = 0;
  n->paused_until = 0; /* a new process: on time */
  memset(&n->aw, 0, sizeof n->aw);
  n->boots++;
  schedule_lag_tick(w, i);
  cl_el_input in = {0};
  in.kind = CL_EL_IN_TICK;
  step(w, i, &in);
  for (int j = 0; j < w->n; j++)
    if (j != i && link_allowed(w, i, j)) schedule_connect(w, i, j, range(&w->r, 1, 5) * US);
}

/* ------------------------------------------------------------- workload */

static void issue_update(world *w, int i) {
  node *n = &w->nodes[i];
  int slot = -1;
  for (int r = 0; r < 32; r++)
    if (!w->reqs[r].used) slot = r;
  if (slot < 0 || !n->up || i == w->foreign) return;
  const cl_el_state *app = cl_el_committed(n->el);
  req *q = &w->reqs[slot];
  q->used = 1;
  q->node = i;
  q->kind = 1;
  q->id = ++w->next_req;
  uint64_t tok = ++w->token_ctr;
  for (int b = 0; b < 8; b++) q->token[b] = (uint8_t)(tok >> (8 * b));
  uint8_t *blob = malloc(app->meta_len + 8);
  if (app->meta_len) memcpy(blob, app->meta, app->meta_len);
  memcpy(blob + app->meta_len, q->token, 8);
  cl_el_input in = {0};
  in.kind = CL_EL_IN_REQUEST_UPDATE;
  in.req_id = q->id;
  in.base_version = app->meta_version;
  in.data = blob;
  in.len = app->meta_len + 8;
  step(w, i, &in);
  free(blob);
}

static void issue_exclusion(world *w, int i) {
  node *n = &w->nodes[i];
  if (!n->up || i == w->foreign) return;
  int slot = -1;
  for (int r = 0; r < 32; r++)
    if (!w->reqs[r].used) slot = r;
  if (slot < 0) return;
  req *q = &w->reqs[slot];
  q->used = 1;
  q->node = i;
  q->id = ++w->next_req;
  cl_el_input in = {0};
  in.req_id = q->id;
  if (chance(&w->r, 0.5)) {
    q->kind = 3;
    in.kind = CL_EL_IN_REQUEST_CLEAR_EXCLUSIONS;
    in.flag = chance(&w->r, 0.3);
    step(w, i, &in);
    return;
  }
  /* never exclude every node that could lead: that is an operator error the
   * simulator need not prove survivable */
  int leaders_left = 0, target = (int)below(&w->r, (uint64_t)w->n);
  if (target == w->foreign) {
    q->used = 0;
    return;
  }
  for (int j = 0; j < w->n; j++) {
    node *o = &w->nodes[j];
    if (j == target || j == w->foreign || (o->flags & (CL_EL_F_MASTER | CL_EL_F_VOTING_ONLY)) != CL_EL_F_MASTER) continue;
    if (!BIT_GET(w->ever_excluded, j)) leaders_left++;
  }
  if (leaders_left == 0) {
    q->used = 0;
    return;
  }
  BIT_SET(w->ever_excluded, target);
  w->excl_requested = 1;
  q->kind = 2;
  const char *names[1] = {w->nodes[target].name};
  char shortname[64];
  if (chance(&w->r, 0.5)) {
    snprintf(shortname, sizeof shortname, "%s", w->nodes[target].name);
    *strchr(shortname, '@') = 0;
    names[0] = shortname;
  }
  in.kind = CL_EL_IN_REQUEST_EXCLUDE;
  in.names = names;
  in.n_names = 1;
  step(w, i, &in);
}

/* ----------------------------------------------------------- the faults */

static void heal_links(world *w) {
  for (int a = 0; a < w->n; a++)
    for (int b = 0; b < w->n; b++) W_cut(w, a, b) = 0;
  for (int a = 0; a < w->n; a++)
    for (int b = a + 1; b < w->n; b++)
      if (link_allowed(w, a, b)) connect_pair(w, a, b);
}

static void cut_pair(world *w, int a, int b, int how, int oneway) {
  if (a == b) return;
  if (how == 1) {
    W_cut(w, a, b) = W_cut(w, b, a) = 1;
    disconnect_pair(w, a, b);
  } else {
    W_cut(w, a, b) = 2;
    if (!oneway) W_cut(w, b, a) = 2;
  }
}

/* node i's loop stops for ms: its timers wait (run_until skips it), frames to it wait
 * in its socket (postponed), and it resumes with a late tick (resume_node) */
static void pause_node(world *w, int i, uint64_t ms) {
  node *n = &w->nodes[i];
  n->paused_from = w->now;
  n->paused_until = w->now + ms * US;
  vlog(w, "pause %s for %llu ms", n->name, (unsigned long long)ms);
  msg_ev ev = {0};
  ev.at = n->paused_until;
  ev.kind = 7;
  ev.from = i;
  ev.epoch = n->boots;
  ev_push(w, ev);
}

/* The paused node runs again, late. The harsher order of the two: its timers before the
 * frames that waited in its socket (the real glue looks again after the poll, but a
 * node that stays saturated acts on a late look too): the grace is what keeps it from
 * calling a master gone whose heartbeats it has not read yet. */
static void resume_node(world *w, const msg_ev *e) {
  node *n = &w->nodes[e->from];
  if (!n->up || e->epoch != n->boots || !n->paused_until) return;
  n->paused_until = 0;
  /* the tick that was due when it stopped runs now: late */
  local_health(w, e->from, n->paused_from / US + 1);
  cl_el_input in = {0};
  in.kind = CL_EL_IN_TICK;
  step(w, e->from, &in);
}

/* a frame for a paused node waits until it runs again (after its resume). It looks
 * again every 50 ms rather than waiting for the planned resume, since the heal resumes
 * paused nodes early: its frames then arrive within the heal's in-flight allowance, not
 * seconds later into the settled cluster. */
static int postponed(world *w, msg_ev *e) {
  node *n = &w->nodes[e->to];
  if (!n->paused_until || n->paused_until <= w->now) return 0;
  msg_ev later = *e;
  later.at = n->paused_until < w->now + 50 * US ? n->paused_until : w->now + 50 * US;
  ev_push(w, later);
  e->data = NULL; /* the copy owns it now */
  return 1;
}

static void random_fault(world *w) {
  int n = w->n;
  int a = (int)below(&w->r, (uint64_t)n), b = (int)below(&w->r, (uint64_t)n);
  int how = chance(&w->r, 0.5) ? 1 : 2;
  switch (below(&w->r, 13)) {
  case 0: /* one link */
    cut_pair(w, a, b, how, chance(&w->r, 0.3));
    break;
  case 1: /* isolate one node */
    for (int j = 0; j < n; j++) cut_pair(w, a, j, how, 0);
    vlog(w, "isolate %s (%s)", w->nodes[a].name, how == 1 ? "disconnect" : "blackhole");
    break;
  case 2: { /* majority / minority split */
    uint8_t *side = malloc((size_t)n);
    for (int x = 0; x < n; x++) side[x] = (uint8_t)below(&w->r, 2);
    for (int x = 0; x < n; x++)
      for (int y = 0; y < n; y++)
        if (side[x] != side[y]) cut_pair(w, x, y, how, 0);
    vlog(w, "partition (%s)", how == 1 ? "disconnect" : "blackhole");
    free(side);
    break;
  }
  case 3: /* overlapping majorities: a bridge node sees both sides */
    for (int x = 0; x < n; x++)
      for (int y = 0; y < n; y++)
        if (x != a && y != a && (x % 2) != (y % 2)) cut_pair(w, x, y, how, 0);
    vlog(w, "bridge partition around %s", w->nodes[a].name);
    break;
  case 4:
  case 5:
    heal_links(w);
    vlog(w, "heal links");
    break;
  case 6: /* crash, restart later */
    crash(w, a, "killed");
    break;
  case 7: /* the next write fails or is lost with the power */
    w->nodes[a].fail_next_persist = chance(&w->r, 0.5) ? 1 : 2;
    break;
  case 8:
  case 9:
    issue_update(w, a);
    break;
  case 10:
    issue_exclusion(w, a);
    break;
  case 11: /* its Lua loop stalls: shorter than the step-down threshold, or longer */
    if (w->nodes[a].up)
      w->nodes[a].lua_stuck_until = w->now + range(&w->r, SIM_LUA_STEPDOWN_MS / 4, 3 * SIM_LUA_STEPDOWN_MS) * US;
    break;
  case 12: /* its control loop pauses (starved, or SIGSTOP): mostly shorter than the
            * election's timeouts, sometimes far longer */
    if (w->nodes[a].up && !w->nodes[a].paused_until) {
      uint64_t ms = chance(&w->r, 0.7) ? range(&w->r, 20, 2 * (uint64_t)w->cfg.leader_timeout_ms)
                                       : range(&w->r, 500, 4000);
      pause_node(w, a, ms);
    }
    break;
  }
}

/* ---------------------------------------------------------------- a run */

/* a transport frame arriving: proof of life for the receiver's detector */
static void heard(world *w, int to, int from) {
  if (w->det) cl_det_heard(&W_det(w, to, from), w->now / US);
}

static void send_heartbeat(world *w, int from, int to, int pong) {
  if (!W_conn(w, from, to) || W_cut(w, from, to) == 2 || chance(&w->r, w->p_drop)) return;
  msg_ev ev = {0};
  ev.at = w->now + range(&w->r, w->delay_lo, w->delay_hi);
  ev.kind = 4;
  ev.pong = pong;
  ev.from = from;
  ev.to = to;
  ev.epoch = W_epoch(w, from, to);
  ev_push(w, ev);
}

static void deliver_heartbeat(world *w, msg_ev *e) {
  if (W_epoch(w, e->from, e->to) != e->epoch || !W_conn(w, e->from, e->to) || !w->nodes[e->to].up) return;
  if (W_cut(w, e->from, e->to) == 2) return;
  heard(w, e->to, e->from);
  if (!e->pong) send_heartbeat(w, e->to, e->from, 1);
}

/* what the transport's tick does: pings, and a connection silent past the timeout is
 * closed (both sides see it go), then re-dialled */
static void run_detectors(world *w) {
  uint64_t now = w->now / US;
  for (int a = 0; a < w->n; a++)
    for (int b = 0; b < w->n; b++) {
      if (a == b || !W_conn(w, a, b) || !w->nodes[a].up || w->nodes[a].paused_until ||
          cl_det_deadline(&W_det(w, a, b)) > now)
        continue;
      cl_det_verdict v = cl_det_check(&W_det(w, a, b), now);
      /* no indirect probe here: a suspicion waits for the timeout, and is announced */
      if (v == CL_DET_SUSPECT) v = cl_det_check(&W_det(w, a, b), now);
      if (v == CL_DET_PING) {
        send_heartbeat(w, a, b, 0);
      } else if (v == CL_DET_DOWN) {
        vlog(w, "%s: connection to %s silent past %u ms: closed", w->nodes[a].name, w->nodes[b].name,
             w->det_timeout_ms);
        disconnect_pair(w, a, b);
        schedule_connect(w, a, b, range(&w->r, 50, 1000) * US);
        /* the announcement (DOWN), taken as arriving at once: every other node that has
         * not heard from b within the freshness window (cl_det_fresh_ms) closes its own
         * connection to it */
        for (int c = 0; c < w->n; c++)
          if (c != a && c != b && w->nodes[c].up && W_conn(w, c, b) &&
              now >= W_det(w, c, b).last_rx_ms + cl_det_fresh_ms(w->det_hb_ms, w->det_timeout_ms)) {
            vlog(w, "%s: %s announced %s down: closed", w->nodes[c].name, w->nodes[a].name, w->nodes[b].name);
            disconnect_pair(w, c, b);
            schedule_connect(w, c, b, range(&w->r, 50, 1000) * US);
          }
      }
    }
}

static uint64_t next_detector_us(world *w) {
  if (!w->det_timeout_ms || !w->det) return UINT64_MAX;
  uint64_t t = UINT64_MAX;
  for (int a = 0; a < w->n; a++)
    for (int b = 0; b < w->n; b++)
      if (a != b && W_conn(w, a, b) && w->nodes[a].up && !w->nodes[a].paused_until) {
        uint64_t d = cl_det_deadline(&W_det(w, a, b)) * US;
        if (d < t) t = d;
      }
  return t < w->now ? w->now : t;
}

static void deliver(world *w, msg_ev *e) {
  if (W_epoch(w, e->from, e->to) != e->epoch || !W_conn(w, e->from, e->to) || !w->nodes[e->to].up) return;
  if (W_cut(w, e->from, e->to) == 2) return;
  heard(w, e->to, e->from);
  cl_el_input in = {0};
  in.kind = CL_EL_IN_MESSAGE;
  in.peer_id = w->nodes[e->from].id;
  in.data = e->data;
  in.len = e->len;
  uint64_t before = cl_el_term(w->nodes[e->to].el);
  step(w, e->to, &in);
  if (e->from == w->foreign && e->to != w->foreign && w->nodes[e->to].up &&
      cl_el_term(w->nodes[e->to].el) != before)
    violation(w, "%s: a message from %s, a node of another cluster, moved its term from %llu to %llu",
              w->nodes[e->to].name, w->nodes[e->from].name, (unsigned long long)before,
              (unsigned long long)cl_el_term(w->nodes[e->to].el));
}

/* the node of another cluster comes only once every node of this one knows
 * its cluster: before that, a new node may rightly join whichever cluster it
 * meets first */
static int cluster_formed(world *w) {
  for (int i = 0; i < w->n; i++)
    if (i != w->foreign && (!w->nodes[i].up || !cl_el_cluster_id(w->nodes[i].el)[0])) return 0;
  return 1;
}

static void boot_or_defer(world *w, int i) {
  if (w->nodes[i].up || w->nodes[i].stay_down) return;
  if (i == w->foreign && !w->nodes[i].disk_len) return; /* never: the sim's own setup error */
  if (i == w->foreign && !w->nodes[i].booted_once && !cluster_formed(w)) {
    msg_ev ev = {0};
    ev.at = w->now + 100 * US;
    ev.kind = 2;
    ev.from = i;
    ev_push(w, ev);
    return;
  }
  w->nodes[i].booted_once = 1;
  boot(w, i);
}

static int run_until(world *w, uint64_t until, int faults, uint64_t fault_every) {
  uint64_t next_fault = w->now + range(&w->r, 1, fault_every);
  while (!w->violated) {
    uint64_t t_node = UINT64_MAX;
    int who = -1;
    for (int i = 0; i < w->n; i++) {
      if (!w->nodes[i].up || w->nodes[i].paused_until) continue; /* paused: resume_node ticks it */
      uint64_t d = w->nodes[i].next_dl; /* cached: it changes only in a step */
      uint64_t dus = d == UINT64_MAX ? UINT64_MAX : d * US;
      if (dus < w->now) dus = w->now;
      if (dus < t_node) t_node = dus, who = i;
    }
    uint64_t t_ev = w->nev ? w->ev[0].at : UINT64_MAX;
    uint64_t t_fault = faults ? next_fault : UINT64_MAX;
    uint64_t t_det = next_detector_us(w);
    uint64_t t = t_node < t_ev ? t_node : t_ev;
    if (t_fault < t) t = t_fault;
    if (t_det < t) t = t_det;
    if (t > until) {
      w->now = until;
      return 0;
    }
    w->now = t;
    if (t == t_fault && faults) {
      random_fault(w);
      next_fault = w->now + range(&w->r, 1, fault_every);
    } else if (t == t_det) {
      run_detectors(w);
    } else if (t == t_ev) {
      msg_ev e = ev_pop(w);
      if ((e.kind == 1 || e.kind == 4) && postponed(w, &e))
        ;
      else if (e.kind == 1)
        deliver(w, &e);
      else if (e.kind == 2)
        boot_or_defer(w, e.from);
      else if (e.kind == 3)
        redial(w, e.from, e.to);
      else if (e.kind == 4)
        deliver_heartbeat(w, &e);
      else if (e.kind == 5)
        lag_tick(w, &e);
      else if (e.kind == 6)
        lag_pong(w, &e);
      else if (e.kind == 7)
        resume_node(w, &e);
      free(e.data);
    } else {
      cl_el_input in = {0};
      in.kind = CL_EL_IN_TICK;
      step(w, who, &in);
    }
  }
  return 0;
}

static int settled(world *w, char *why, size_t len) {
  int leader = -1;
  for (int i = 0; i < w->n; i++)
    if (i != w->foreign && w->nodes[i].up && cl_el_get_mode(w->nodes[i].el) == CL_EL_LEADER) {
      if (leader >= 0) {
        snprintf(why, len, "two nodes lead (%s, %s)", w->nodes[leader].name, w->nodes[i].name);
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
    snprintf(why, len, "master %s has a publication in flight", w->nodes[leader].name);
    return 0;
  }
  for (int i = 0; i < w->n; i++) {
    if (i == w->foreign || !w->nodes[i].up) continue;
    cl_el *el = w->nodes[i].el;
    const cl_el_state *app = cl_el_committed(el);
    const char *m = cl_el_master_id(el);
    if (cl_el_term(el) != cl_el_term(L) || app->version != la->version || app->term != la->term || !m ||
        strcmp(m, w->nodes[leader].id)) {
      snprintf(why, len, "%s at term %llu version (%llu,%llu) master %s; master %s at term %llu version (%llu,%llu)",
               w->nodes[i].name, (unsigned long long)cl_el_term(el), (unsigned long long)app->term,
               (unsigned long long)app->version, m ? m : "none", w->nodes[leader].name,
               (unsigned long long)cl_el_term(L), (unsigned long long)la->term, (unsigned long long)la->version);
      return 0;
    }
  }
  return 1;
}

static void dump(world *w) {
  for (int i = 0; i < w->n; i++) {
    node *n = &w->nodes[i];
    printf("  %s id=%.6s flags=%u up=%d", n->name, n->id, n->flags, n->up);
    if (!n->up) {
      printf("\n");
      continue;
    }
    const cl_el_state *a = cl_el_accepted(n->el);
    printf(" mode=%d term=%llu acc=(%llu,%llu)%s app=(%llu,%llu) next=%llu conn=", cl_el_get_mode(n->el),
           (unsigned long long)cl_el_term(n->el), (unsigned long long)a->term, (unsigned long long)a->version,
           cl_el_accepted_is_committed(n->el) ? "c" : "", (unsigned long long)cl_el_committed(n->el)->term,
           (unsigned long long)cl_el_committed(n->el)->version, (unsigned long long)cl_el_next_deadline(n->el));
    for (int j = 0; j < w->n; j++) printf("%d", W_conn(w, i, j));
    printf(" cc=");
    for (uint32_t k = 0; k < a->committed_config.n; k++) printf("%.6s,", a->committed_config.ids[k]);
    printf(" ac=");
    for (uint32_t k = 0; k < a->accepted_config.n; k++) printf("%.6s,", a->accepted_config.ids[k]);
    printf(" excl=%u\n", a->n_excl);
  }
}

static void world_free(world *w) {
  for (int i = 0; i < w->n; i++) {
    if (w->nodes[i].el) cl_eldrv_free(&w->nodes[i].drv);
    free(w->nodes[i].disk);
    cl_el_vconfig_free(&w->nodes[i].prev_cc);
    cl_el_vconfig_free(&w->nodes[i].prev_ac);
  }
  for (size_t i = 0; i < w->cap_map; i++)
    if (w->map[i].used) free(w->map[i].accepted_by);
  free(w->nodes);
  free(w->conn);
  free(w->epoch);
  free(w->cut);
  free(w->det);
  free(w->ever_excluded);
  while (w->nev) {
    msg_ev e = ev_pop(w);
    free(e.data);
  }
  free(w->ev);
  for (size_t t = 0; t < w->cap_terms; t++) free(w->leader_of_term[t]);
  free(w->leader_of_term);
  free(w->map);
  for (size_t i = 0; i < w->n_com; i++) free(w->com[i].meta);
  free(w->com);
  cl_el_state_clear(&w->st_scratch);
}

/* A master-eligible node with the same cookie whose data directory holds
 * another cluster's state: either a cluster of its own (it leads it, in a term
 * that may be far above this cluster's) or, as when initial_master_nodes
 * bootstrapped two clusters, one whose voting configuration names this
 * cluster's nodes too (it campaigns for ever). It arrives at a random time. */
static int cmp_id(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

static void add_foreign(world *w, uint64_t fault_ms) {
  int f = w->n++;
  w->foreign = f;
  node *n = &w->nodes[f];
  snprintf(n->id, sizeof n->id, "%016llx%04d", (unsigned long long)rng_next(&w->r), f);
  snprintf(n->addr, sizeof n->addr, "127.0.0.2:%d", 4370 + f);
  snprintf(n->name, sizeof n->name, "stray%d@127.0.0.2:%d", f + 1, 4370 + f);
  n->flags = CL_EL_F_MASTER;
  cl_el_state st;
  cl_el_state_init(&st);
  snprintf(st.cluster_id, sizeof st.cluster_id, "%016llx", (unsigned long long)rng_next(&w->r));
  uint64_t term = range(&w->r, 1, 80);
  st.term = term;
  st.version = range(&w->r, 1, 30);
  snprintf(st.master_id, sizeof st.master_id, "%s", n->id);
  if (cl_el_state_reserve_nodes(&st, 1) || cl_el_node_set(&st.nodes[0], n->id, n->name, n->addr, n->flags, ""))
    abort();
  st.n_nodes = 1;
  cl_el_vconfig c = {0};
  c.cap = (uint32_t)f + 1;
  c.ids = calloc(c.cap, sizeof c.ids[0]);
  snprintf(c.ids[c.n++], sizeof c.ids[0], "%s", n->id);
  if (chance(&w->r, 0.5))
    for (int i = 0; i < f; i++)
      if (w->nodes[i].flags & CL_EL_F_MASTER) snprintf(c.ids[c.n++], sizeof c.ids[0], "%s", w->nodes[i].id);
  qsort(c.ids, c.n, sizeof c.ids[0], cmp_id);
  vc_copy(&st.committed_config, &c);
  vc_copy(&st.accepted_config, &c);
  n->disk_term = term + range(&w->r, 0, 20);
  if (cl_el_persist_encode(n->disk_term, &st, 1, &n->disk, &n->disk_len)) n->disk_len = 0;
  cl_el_state_clear(&st);
  vlog(w, "%s (another cluster's data, config of %u) arrives later", n->name, c.n);
  cl_el_vconfig_free(&c);
  msg_ev ev = {0};
  ev.at = w->now + range(&w->r, 0, fault_ms + 3000) * US;
  ev.kind = 2;
  ev.from = f;
  ev_push(w, ev);
}

/* ---- issue 18: hundreds of master-eligible nodes ----
 * Every node master-eligible (the default roles), 3 of them listed as the initial
 * masters, booting one every 0-20 ms; messages take 1-20 ms (a loaded machine). Checks:
 * the cluster forms within the L2 bound after the last boot without churning terms;
 * stays put for 2 s; and after its master is killed for good a new master is agreed
 * by all within a bound computed from the configuration (the fast election: the
 * voters' stagger, a few retry rounds, one publication), consuming few terms. */
static uint64_t g_scale_n;  /* --scale N: that many nodes, and a report */
static int leader_index(world *w) {
  for (int i = 0; i < w->n; i++)
    if (w->nodes[i].up && cl_el_get_mode(w->nodes[i].el) == CL_EL_LEADER) return i;
  return -1;
}

static uint64_t max_term(world *w) {
  uint64_t t = 0;
  for (int i = 0; i < w->n; i++)
    if (w->nodes[i].up && cl_el_term(w->nodes[i].el) > t) t = cl_el_term(w->nodes[i].el);
  return t;
}

/* a loaded machine: a node's connection to the master drops (a false timeout) and is
 * dialled again 1-50 ms later */
static void flap_master_link(world *w) {
  int L = leader_index(w), a = (int)below(&w->r, (uint64_t)w->n);
  if (L < 0 || a == L || !w->nodes[a].up) return;
  disconnect_pair(w, a, L);
  schedule_connect(w, a, L, range(&w->r, 1, 50) * US);
}

static void run_scale(world *w) {
  const cl_el_config *c = &w->cfg;
  uint64_t at = w->now;
  for (int i = 0; i < w->n; i++) {
    msg_ev ev = {0};
    ev.at = at;
    ev.kind = 2;
    ev.from = i;
    ev_push(w, ev);
    at += range(&w->r, 0, 20) * US;
  }
  uint64_t last_boot = at;
  /* a large cluster's extra (large_extra_ms) widens each of the four timeouts */
  uint64_t l2_ms = 2000 + 2 * (uint64_t)c->leader_timeout_ms + c->follower_timeout_ms + c->publish_timeout_ms +
                   10ull * (c->election_max_ms + c->election_initial_ms) + 4ull * w->large_extra_ms;
  char sw[512] = "";
  int ok = 0;
  while (!w->violated && w->now < last_boot + l2_ms * US) {
    run_until(w, w->now + 50 * US, 0, 0);
    if (w->now <= last_boot && chance(&w->r, 0.5)) flap_master_link(w);
    if (w->now > last_boot && settled(w, sw, sizeof sw)) ok = 1;
    if (ok) break;
  }
  if (w->violated) return;
  if (!ok) {
    violation(w, "scale: %d master-eligible nodes not formed %llu ms after the last boot: %s", w->n,
              (unsigned long long)l2_ms, sw);
    return;
  }
  uint64_t formed_ms = (w->now - last_boot) / US, form_term = max_term(w);
  /* formation: the bootstrap, then each master change is one election; a term per
   * voter standing in each of a few rounds is churn already */
  uint64_t form_bound = 3ull * w->max_voting;
  if (form_term > form_bound) {
    violation(w, "scale: %d master-eligible nodes formed at term %llu (churn: more than %llu terms)", w->n,
              (unsigned long long)form_term, (unsigned long long)form_bound);
    return;
  }
  /* a healthy cluster stays put, even when followers lose their link to the master */
  for (int k = 0; k < 40 && !w->violated; k++) {
    run_until(w, w->now + 50 * US, 0, 0);
    if (chance(&w->r, 0.5)) flap_master_link(w);
  }
  /* a follower whose link flapped as a commit went by has that commit from the master's
   * next heartbeat: settled once one heartbeat has gone (the large cluster's, up to
   * 1.2 s, when the seed has one; seeds 1999, 5987, 6984 and 17951 looked sooner and
   * found a follower one version behind), and 500 ms more for it to arrive */
  uint64_t hb_ms = large_hb_ms(w) > c->hb_interval_ms ? large_hb_ms(w) : c->hb_interval_ms;
  run_until(w, w->now + (500 + hb_ms) * US, 0, 0);
  if (w->violated) return;
  if (!settled(w, sw, sizeof sw) || max_term(w) != form_term) {
    violation(w, "scale: a healthy cluster of %d master-eligible nodes moved (term %llu -> %llu): %s", w->n,
              (unsigned long long)form_term, (unsigned long long)max_term(w), sw);
    return;
  }
  int L = leader_index(w);
  uint64_t t0 = cl_el_term(w->nodes[L].el), kill_at = w->now;
  w->nodes[L].stay_down = 1;
  crash(w, L, "killed for good (kill -9)");
  /* the fast election: the live voters stand one after the other (stagger and jitter),
   * a few pre-vote/join rounds at the first retry windows, one publication and commit */
  uint64_t fail_ms = 1 + (uint64_t)w->max_voting * (c->fast_election_stagger_ms + c->fast_election_jitter_ms + 1) +
                     3ull * (c->election_initial_ms + c->election_backoff_ms) + c->publish_timeout_ms +
                     c->hb_interval_ms;
  ok = 0;
  while (!w->violated && w->now < kill_at + fail_ms * US) {
    run_until(w, w->now + 5 * US, 0, 0);
    if (settled(w, sw, sizeof sw)) {
      ok = 1;
      break;
    }
  }
  if (w->violated) return;
  uint64_t took_ms = (w->now - kill_at) / US, t1 = max_term(w);
  if (g_scale_n)
    printf("scale: %d master-eligible nodes (max_voting_nodes %u): formed %llu ms after the last boot at term %llu; "
           "master %s killed at term %llu: %s after %llu ms at term %llu (%llu terms consumed)\n",
           w->n, w->max_voting, (unsigned long long)formed_ms, (unsigned long long)form_term, w->nodes[L].name,
           (unsigned long long)t0, ok ? "new master agreed by all" : "NO master agreed", (unsigned long long)took_ms,
           (unsigned long long)t1, (unsigned long long)(t1 - t0));
  if (!ok) {
    violation(w, "scale: no master agreed by the %d survivors %llu ms after the master was killed (term %llu -> %llu): %s",
              w->n - 1, (unsigned long long)fail_ms, (unsigned long long)t0, (unsigned long long)t1, sw);
    return;
  }
  /* one election: at most one term per voter standing, in two rounds */
  if (t1 - t0 > 2ull * w->max_voting)
    violation(w, "scale: the election after the master was killed consumed %llu terms (more than %llu)",
              (unsigned long long)(t1 - t0), 2ull * w->max_voting);
}

/* returns 0 ok, 1 violation; *trace gets the trace hash */
static uint64_t total_lazy_lost; /* this process's seeds */

static int run_seed(uint64_t seed, int verbose, uint64_t *trace, char *why, size_t whylen) {
  world *w = calloc(1, sizeof *w);
  w->seed = seed;
  w->verbose = verbose;
  rng_seed(&w->r, seed);
  cl_el_state_init(&w->st_scratch);
  w->foreign = -1;
  /* every BIG_EVERY-th seed a large cluster, every HUGE_EVERY-th one of HUGE_N nodes: a
   * few master-eligible nodes (1 to 9) and the rest data nodes, linked only to them */
  int huge = seed % HUGE_EVERY == 0, big = huge || seed % BIG_EVERY == 0;
  int scale = !big && (g_scale_n || seed % SCALE_EVERY == SCALE_AT);
  int with_foreign = big ? 0 : chance(&w->r, 0.25);
  if (scale) with_foreign = 0;
  int n_eligible = 0;
  if (huge) w->n = HUGE_N, n_eligible = (int)range(&w->r, 1, 9);
  else if (big) w->n = (int)range(&w->r, BIG_MIN, BIG_MAX), n_eligible = (int)range(&w->r, 1, 9);
  else if (scale) w->n = g_scale_n ? (int)g_scale_n : (int)range(&w->r, SCALE_MIN, SCALE_MAX);
  else w->n = (int)range(&w->r, 1, MAXN - with_foreign);
  w->sparse = big;
  w->cap_n = w->n + with_foreign;
  w->nwords = ((size_t)w->cap_n + 63) / 64;
  w->nodes = calloc((size_t)w->cap_n, sizeof *w->nodes);
  size_t nn = (size_t)w->cap_n * (size_t)w->cap_n;
  w->conn = calloc(nn, 1);
  w->cut = calloc(nn, 1);
  w->epoch = calloc(nn, sizeof *w->epoch);
  w->ever_excluded = calloc(w->nwords, sizeof(uint64_t));
  int leaders = 0;
  for (int i = 0; i < w->n; i++) {
    node *n = &w->nodes[i];
    n->next_dl = UINT64_MAX;
    snprintf(n->id, sizeof n->id, "%016llx%04d", (unsigned long long)rng_next(&w->r), i);
    snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", 4370 + i);
    snprintf(n->name, sizeof n->name, "node%d@%s", i + 1, n->addr);
    uint64_t role = below(&w->r, 20);
    n->flags = role < 12 ? CL_EL_F_MASTER : role < 15 ? (CL_EL_F_MASTER | CL_EL_F_VOTING_ONLY) : 0;
    if (big) n->flags = i < n_eligible ? (role < 16 ? CL_EL_F_MASTER : CL_EL_F_MASTER | CL_EL_F_VOTING_ONLY) : 0;
    if (scale) n->flags = CL_EL_F_MASTER;
    if (n->flags == CL_EL_F_MASTER) leaders++;
  }
  if (with_foreign) w->nodes[w->n].next_dl = UINT64_MAX;
  if (!leaders) w->nodes[0].flags = CL_EL_F_MASTER;
  cl_el_config_defaults(&w->cfg);
  w->cfg.request_timeout_ms = 3000;
  if (chance(&w->r, 0.3)) { /* sometimes other timings than the defaults */
    w->cfg.hb_interval_ms = (uint32_t)range(&w->r, 20, 200);
    w->cfg.leader_timeout_ms = w->cfg.hb_interval_ms * (uint32_t)range(&w->r, 2, 5);
    w->cfg.follower_timeout_ms = w->cfg.hb_interval_ms * (uint32_t)range(&w->r, 2, 5);
    w->cfg.election_max_ms = (uint32_t)range(&w->r, 200, 2000);
  }
  /* initial_master_nodes: a non-empty subset of the master-eligible nodes,
   * by short or full name, given to every master-eligible node */
  for (int i = 0; i < w->n; i++) {
    node *n = &w->nodes[i];
    if (!(n->flags & CL_EL_F_MASTER) || w->n_initial == CL_EL_MAX_INITIAL) continue;
    if (w->n_initial == 0 || chance(&w->r, 0.7)) {
      snprintf(w->initial_buf[w->n_initial], 64, "%s", n->name);
      if (chance(&w->r, 0.5)) *strchr(w->initial_buf[w->n_initial], '@') = 0;
      w->initial[w->n_initial] = w->initial_buf[w->n_initial];
      w->n_initial++;
    }
  }
  w->cfg.initial_master_nodes = w->initial;
  w->cfg.n_initial_master_nodes = w->n_initial;
  double drops[] = {0, 0.01, 0.05, 0.2};
  double dups[] = {0, 0.02, 0.1};
  w->p_drop = drops[below(&w->r, 4)];
  w->p_dup = dups[below(&w->r, 3)];
  w->p_extreme = chance(&w->r, 0.3) ? 0.01 : 0;
  w->delay_lo = range(&w->r, 20, 200);
  w->delay_hi = w->delay_lo + range(&w->r, 0, 3000);
  /* the transport's detector: defaults, other timings, or off */
  w->det_hb_ms = CL_DET_DEFAULT_HEARTBEAT_MS;
  w->det_timeout_ms = CL_DET_DEFAULT_TIMEOUT_MS;
  if (chance(&w->r, 0.3)) {
    w->det_hb_ms = (uint32_t)range(&w->r, 20, 300);
    w->det_timeout_ms = chance(&w->r, 0.3) ? 0 : w->det_hb_ms * (uint32_t)range(&w->r, 2, 8);
  }
  uint64_t fault_every = range(&w->r, 20, 500) * US;
  uint64_t fault_ms = range(&w->r, 2000, 15000);
  if (big) { /* a shorter horizon, fewer faults: each one touches hundreds of nodes */
    w->det_timeout_ms = 0; /* the election's own timeouts face silent links */
    fault_every = range(&w->r, 200, 800) * US;
    fault_ms = range(&w->r, 1000, 2500);
  }
  if ((big || scale) && chance(&w->r, 0.5))
    w->large_extra_ms = (uint32_t)range(&w->r, w->cfg.leader_timeout_ms, 5 * (uint64_t)w->cfg.leader_timeout_ms);
  if (w->det_timeout_ms) w->det = calloc(nn, sizeof *w->det);
  /* RULE E12: the seed's election.max_voting_nodes (the default, 5, in half the seeds);
   * the bootstrap list is never longer (the node refuses that at start) */
  static const uint32_t caps[] = {3, 5, 7};
  w->max_voting = chance(&w->r, 0.5) ? CL_EL_MAX_VOTING_DEFAULT : caps[below(&w->r, 3)];
  w->cfg.max_voting_nodes = w->max_voting;
  if (w->n_initial > w->max_voting) w->n_initial = w->max_voting;
  if (scale) { /* 3 static seeds listed as the initial masters, a loaded machine's delays */
    w->n_initial = 3;
    for (size_t k = 0; k < 3; k++) {
      snprintf(w->initial_buf[k], 64, "node%zu", k + 1);
      w->initial[k] = w->initial_buf[k];
    }
    w->p_drop = w->p_dup = w->p_extreme = 0;
    w->delay_lo = 1000;
    w->delay_hi = 20000;
    free(w->det);
    w->det = NULL;
    w->det_timeout_ms = 0;
  }
  w->cfg.n_initial_master_nodes = w->n_initial;

  if (scale) {
    run_scale(w);
    goto done;
  }
  for (int i = 0; i < w->n; i++) boot(w, i);
  if (with_foreign) add_foreign(w, fault_ms);
  /* faults */
  run_until(w, w->now + fault_ms * US, 1, fault_every);
  /* heal: reconnect everything, restart the dead, stop the noise */
  if (!w->violated) {
    vlog(w, "---- heal ----");
    w->p_drop = w->p_dup = w->p_extreme = 0;
    w->delay_lo = 20;
    w->delay_hi = 500;
    for (int i = 0; i < w->n; i++) {
      w->nodes[i].fail_next_persist = 0;
      if (i == w->foreign) {
        if (w->nodes[i].booted_once) boot_or_defer(w, i); /* else its boot event is still due */
      } else if (!w->nodes[i].up) {
        boot(w, i);
      }
      /* a stalled Lua loop answers now, a paused node runs (the frames that waited for
       * it arrive within 50 ms: postponed) */
      w->nodes[i].lua_stuck_until = 0;
      if (w->nodes[i].up && w->nodes[i].paused_until) {
        msg_ev now_ev = {0};
        now_ev.from = i;
        now_ev.epoch = w->nodes[i].boots;
        resume_node(w, &now_ev);
      }
      if (w->nodes[i].up && w->nodes[i].lag.waiting) /* taken in at the next check */
        cl_lag_answer(&w->nodes[i].lag, w->nodes[i].lag.seq, w->now / US);
    }
    heal_links(w);
    /* the bound: in-flight extreme delays drain, a dead master is detected,
     * then a generous number of election rounds at the widest window */
    uint64_t bound_ms = 2000 + 2 * (uint64_t)w->cfg.leader_timeout_ms + w->cfg.follower_timeout_ms +
                        w->cfg.publish_timeout_ms + 10ull * (w->cfg.election_max_ms + w->cfg.election_initial_ms) +
                        4ull * w->large_extra_ms; /* a large cluster's extra widens each timeout */
    uint64_t end = w->now + bound_ms * US;
    char sw[512] = "";
    int ok = 0;
    while (!w->violated && w->now < end) {
      run_until(w, w->now + 50 * US, 0, 0);
      if (settled(w, sw, sizeof sw)) {
        ok = 1;
        break;
      }
    }
    if (!ok && !w->violated) violation(w, "liveness: not settled %llu ms after healing: %s", (unsigned long long)bound_ms, sw);
    /* settled must stay settled for a while (no spurious elections) */
    if (ok && !w->violated) {
      run_until(w, w->now + 2000 * US, 0, 0);
      /* a publication may be completing at the moment of the check (a request issued
       * before the heal whose COMMIT was lost: the next heartbeat carries it): give it
       * two heartbeat intervals */
      if (!w->violated && !settled(w, sw, sizeof sw)) run_until(w, w->now + 2ull * w->cfg.hb_interval_ms * US, 0, 0);
      if (!w->violated && !settled(w, sw, sizeof sw)) violation(w, "liveness: unsettled again in a healthy cluster: %s", sw);
    }
  }
done:
  if (verbose) dump(w);
  *trace = w->trace;
  total_lazy_lost += w->lazy_lost;
  int bad = w->violated;
  if (bad) snprintf(why, whylen, "%s", w->why);
  if (verbose) printf("seed %llu: %d nodes, %llu steps, trace %016llx\n", (unsigned long long)seed, w->n,
                      (unsigned long long)w->steps, (unsigned long long)w->trace);
  world_free(w);
  free(w);
  return bad;
}

int main(int argc, char **argv) {
  uint64_t first = 1, count = 1000;
  int single = 0, verbose = 0, stop = 0, jobs = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--seeds") && i + 1 < argc) count = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--first") && i + 1 < argc) first = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc) first = strtoull(argv[++i], NULL, 10), single = 1, count = 1;
    else if (!strcmp(argv[i], "--verbose")) verbose = 1;
    else if (!strcmp(argv[i], "--scale") && i + 1 < argc) g_scale_n = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--stop-at-first")) stop = 1;
    else if (!strcmp(argv[i], "--jobs") && i + 1 < argc) jobs = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: sim [--seeds N] [--first S] [--seed S [--verbose]] [--stop-at-first] [--jobs J] [--scale N]\n");
      return 2;
    }
  }
  if (jobs < 1) jobs = 1;
  if (single) jobs = 1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int fds[64];
  pid_t pids[64];
  if (jobs > 64) jobs = 64;
  for (int j = 0; j < jobs; j++) {
    int p[2];
    if (jobs > 1 && pipe(p)) return 2;
    pid_t pid = jobs > 1 ? fork() : 0;
    if (pid == 0) {
      if (jobs > 1) close(p[0]);
      uint64_t viol = 0, done = 0;
      for (uint64_t s = first + (uint64_t)j; s < first + count; s += (uint64_t)jobs) {
        uint64_t tr;
        char why[512];
        done++;
        if (run_seed(s, verbose, &tr, why, sizeof why)) {
          viol++;
          printf("VIOLATION seed %llu: %s\n  replay: make sim SEED=%llu\n", (unsigned long long)s, why,
                 (unsigned long long)s);
          if (stop) break;
        }
        /* same seed, same trace: re-run a sample of seeds and compare */
        if (!single && s % 97 == 1) {
          uint64_t tr2;
          char why2[512];
          run_seed(s, 0, &tr2, why2, sizeof why2);
          if (tr2 != tr) {
            viol++;
            printf("VIOLATION seed %llu: nondeterministic (trace %016llx then %016llx)\n  replay: make sim SEED=%llu\n",
                   (unsigned long long)s, (unsigned long long)tr, (unsigned long long)tr2, (unsigned long long)s);
          }
        }
      }
      if (jobs == 1) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("sim: %.1f s\nsim: %llu seeds, %llu violations (%llu crashes lost a lazily written state)\n",
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, (unsigned long long)done,
               (unsigned long long)viol, (unsigned long long)total_lazy_lost);
        return viol ? 1 : 0;
      }
      char line[96];
      int k = snprintf(line, sizeof line, "%llu %llu %llu\n", (unsigned long long)done, (unsigned long long)viol,
                       (unsigned long long)total_lazy_lost);
      if (write(p[1], line, (size_t)k) != k) _exit(2);
      _exit(0);
    }
    close(p[1]);
    fds[j] = p[0];
    pids[j] = pid;
  }
  uint64_t done = 0, viol = 0, lost = 0;
  for (int j = 0; j < jobs; j++) {
    char line[96] = "";
    ssize_t k = read(fds[j], line, sizeof line - 1);
    unsigned long long d = 0, v = 0, l = 0;
    if (k <= 0 || sscanf(line, "%llu %llu %llu", &d, &v, &l) != 3) v = 1; /* a worker died: count it */
    done += d;
    viol += v;
    lost += l;
    close(fds[j]);
    waitpid(pids[j], NULL, 0);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("sim: %.1f s on %d jobs\nsim: %llu seeds, %llu violations (%llu crashes lost a lazily written state)\n",
         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, jobs, (unsigned long long)done,
         (unsigned long long)viol, (unsigned long long)lost);
  return viol ? 1 : 0;
}
