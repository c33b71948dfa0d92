/* The coordination state machine (Elasticsearch 7 "Zen2", adapted).
 *
 * Safety rests on a few rules, each marked RULE below with its id in
 * docs/design.md ("Safety rules") and each covered by a unit test and by the
 * simulator's invariants:
 *  - a node joins (votes) at most once per term: it only joins for a term
 *    strictly above its current term (E2), and the term is persisted first (E3);
 *  - a vote counts only from a node whose accepted state is not fresher than
 *    the candidate's, only after this node started a term since booting (E4),
 *    and an election needs a quorum of both configurations of the accepted
 *    state (E1);
 *  - a publication is accepted only in the current term with a higher version
 *    (E5), persisted before it is acknowledged (E6); a commit needs a quorum of
 *    both the published state's configurations (E7);
 *  - one publication in flight, one reconfiguration at a time, and only to a
 *    configuration that the current term's join votes already form a quorum of (E8);
 *  - pre-voting changes nothing persisted (E9), and a message from a node whose
 *    data belongs to another cluster is refused before anything in it counts (E11).
 * Everything else (granting pre-votes, scheduling, fault detection, membership,
 * forwarding of requests) is liveness and may be wrong without losing data.
 */
#include "internal.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REQS 64

typedef struct peer {
  int used, up;
  cl_el_node info;
  uint64_t last_ok_ms; /* leader: last sign that it follows us in this term */
  uint64_t asked_ms;   /* leader: when the first heartbeat it has not answered yet went out
                          (0: none outstanding); its silence counts from then (silent_ms) */
  uint64_t ok_term;    /* term in which it last said it follows us */
  int member;          /* leader: counted in the cluster state's nodes */
  uint64_t join_term;  /* it joined us in this term (a follower-to-be) */
  uint64_t vote_term;  /* ... and that join is durable on it: the vote counts (RULE E15) */
  uint64_t confirm_term, confirm_ms; /* when this node last asked it to make its join durable */
  uint64_t lat, lav;   /* its accepted state as last reported */
  uint64_t ack_term, ack_version;
  uint64_t prevote_round;
  uint64_t pv_lat, pv_lav; /* the accepted state its last pre-vote request named (RULE L3) */
  int pv_known;
  uint64_t pub_sent_ms; /* last time the latest state was sent to it */
  /* leader: the accepted state it last said it holds, which decides between a diff and
   * the whole state; not known (a new connection: it may have restarted): a diff, which
   * it answers NEED_FULL if it lacks the base */
  int have_known;
  uint64_t have_t, have_v;
  /* its data belongs to another cluster: everything it says is refused */
  int foreign;
  char foreign_cid[CL_EL_CLUSTER_ID_MAX + 1];
  uint64_t refused_logged_ms; /* kept across reconnects: the log is rate-limited */
  int refused_logged;
} peer;

typedef struct origin_req { /* a write request asked on this node */
  int used;
  uint64_t req_id;
  uint8_t kind, wait;
  uint64_t base_version;
  uint8_t *blob;
  uint32_t blob_len;
  uint32_t n_names;
  /* exclusions only: heap, n_names of them. Kept out of the slot, as blob is: 64 slots
   * of 32 inline names were 260 KB of every node's memory, used by almost none */
  char (*names)[CL_EL_NAME_MAX + 1];
  uint64_t deadline;
  char sent_to[CL_EL_ID_MAX + 1];
  uint64_t sent_term;
  int have_result;
  uint64_t result_version;
} origin_req;

enum { MR_QUEUED = 1, MR_INFLIGHT };

typedef struct master_req { /* a write request being carried out by this master */
  int used, status;
  char origin[CL_EL_ID_MAX + 1];
  uint64_t req_id;
  uint8_t kind, wait;
  uint64_t base_version, version, started;
  uint8_t *blob;
  uint32_t blob_len;
  uint32_t n_ids;
  cl_el_excl *ids; /* exclusions only: heap, room for the request's names (one id each) */
} master_req;

/* a slot back to unused, with what it holds on the heap */
static void oreq_release(origin_req *r) {
  free(r->blob);
  free(r->names);
  memset(r, 0, sizeof *r);
}

static void mreq_release(master_req *q) {
  free(q->blob);
  free(q->ids);
  memset(q, 0, sizeof *q);
}

struct cl_el {
  cl_el_config cfg;
  size_t n_initial;
  char initial[CL_EL_MAX_INITIAL][CL_EL_NAME_MAX + 1];
  cl_el_node self;
  uint64_t rng;
  uint64_t now;
  int booted;

  uint64_t term;           /* persisted */
  cl_el_state acc;         /* last accepted state, persisted */
  int acc_committed;       /* persisted */
  int cid_committed;       /* persisted: acc's cluster id was committed */
  char durable_cid[CL_EL_CLUSTER_ID_MAX + 1]; /* the committed cluster id last written
                                                  durably ("" none): see persist_as */
  cl_el_state app;         /* last applied (committed) state */
  int started_join;        /* a term was started since boot */

  cl_el_mode mode;
  char leader[CL_EL_ID_MAX + 1];
  uint64_t leader_contact;

  uint64_t election_at, candidate_since;
  uint64_t term_moved_ms; /* when this node last entered a higher term (RULE L3) */
  /* the candidate this node joined in term joined_term, and when (RULE L3) */
  char joined_for[CL_EL_ID_MAX + 1];
  uint64_t joined_term, joined_ms;
  /* the node this node's last join went to, in voted_term, and whether the term was
   * durable when it left (RULE E15: a durable START_JOIN of the same term makes it so) */
  char voted_for[CL_EL_ID_MAX + 1];
  uint64_t voted_term;
  int voted_durable;
  uint32_t attempts;
  uint64_t self_join_term, candidate_term;
  uint64_t revote_term; /* the term in which this master re-elected itself for missing votes */
  /* the last pre-vote this node granted, and when (RULE L3: one candidate at a time) */
  char pv_granted_to[CL_EL_ID_MAX + 1];
  uint64_t pv_granted_ms;
  int prevoting;
  uint64_t prevote_round, prevote_max_term;
  int bootstrap_err_logged;

  uint64_t hb_at, leader_since;
  int publishing, dirty, first_pub_done;
  int durable_wait; /* a reconfiguration waits for joins to be made durable (RULE E15) */
  uint64_t durable_ask_term, durable_ask_ms; /* ... since when, in this term */
  /* membership changed (a join, a removal) since the last publication: published no
   * earlier than one batching window after the last publication that carried such
   * changes started (last_pub_at), so a lone join goes out at once but joins and
   * removals arriving together, or while a publication is in flight, share one: at
   * most one such publication a window */
  int mdirty;
  uint64_t last_pub_at;
  cl_el_state pub;         /* leader: the publication in flight / last published */
  uint64_t pub_start;
  cl_buf pub_diff;         /* leader: the body of pub as a diff from (base_t, base_v) */
  int pub_has_diff;
  uint64_t pub_base_t, pub_base_v;
  int lua_lag;
  /* local health (cl_el_set_grace): added to every failure-suspicion timeout while
   * this node itself runs late; liveness only, nothing safety-related reads it */
  uint32_t grace_ms;
  /* the master's heartbeat interval when not the configured one (cl_el_set_heartbeat);
   * 0: cfg.hb_interval_ms */
  uint32_t hb_ms;

  /* peers known: grown as they connect, up to cfg.max_nodes - 1; found by id through
   * an open-addressing index (slots hold index + 1; 0 is empty), so a message from
   * any of hundreds of peers costs no scan */
  peer *peers;
  uint32_t n_peers, cap_peers;
  uint32_t *pidx;
  uint32_t pidx_cap; /* a power of two, at least twice n_peers */
  origin_req oreq[MAX_REQS];
  master_req mreq[MAX_REQS];

  char obs_master[CL_EL_ID_MAX + 1];
  char obs_master_name[CL_EL_NAME_MAX + 1];
  int had_master;
  int quorum_lost;          /* a quorum_lost event was emitted, no regained since */
  uint64_t refused_msgs;    /* messages refused from nodes of another cluster */
  uint32_t warned_even_count;
  uint64_t refused_nodes;   /* peers refused past cfg.max_nodes */
  int warned_initial;

  cl_el_effects *out;
  cl_msg msg; /* the message being handled */
  cl_msg tx;  /* the message being sent: never the same as msg */
  cl_el_state rx;
  cl_diff rxd; /* a received PUBLISH_DIFF, decoded */
  cl_el_state scratch;
};

/* ------------------------------------------------------------------ utils */

static uint64_t rnd(cl_el *el) { /* splitmix64 */
  uint64_t z = (el->rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t rnd_below(cl_el *el, uint64_t n) { return n ? rnd(el) % n : 0; }

static void scpy(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src ? src : ""); }

void cl_el_config_defaults(cl_el_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->hb_interval_ms = 200; /* half the leader timeout, as the transport's beats (issue 17) */
  cfg->leader_timeout_ms = 400;
  cfg->follower_timeout_ms = 400;
  cfg->fast_election_jitter_ms = 4;
  cfg->fast_election_stagger_ms = 6;
  cfg->election_initial_ms = 100;
  cfg->election_backoff_ms = 50;
  cfg->election_max_ms = 1000;
  cfg->publish_timeout_ms = 1000;
  cfg->request_timeout_ms = 10000;
  cfg->max_exclusions = 10;
  cfg->max_metadata_bytes = 4u << 20;
  cfg->max_nodes = CL_EL_MAX_NODES_DEFAULT;
  cfg->max_voting_nodes = CL_EL_MAX_VOTING_DEFAULT;
  cfg->publish_batch_ms = 50;
}

void cl_el_config_checks(cl_el_config *cfg, uint32_t heartbeat_ms, uint32_t timeout_ms) {
  if (timeout_ms) cfg->leader_timeout_ms = cfg->follower_timeout_ms = timeout_ms;
  if (heartbeat_ms)
    cfg->hb_interval_ms = heartbeat_ms;
  else if (cfg->hb_interval_ms > cfg->leader_timeout_ms / 2)
    cfg->hb_interval_ms = cfg->leader_timeout_ms / 2 ? cfg->leader_timeout_ms / 2 : 1;
}

/* the batching window: never longer than a heartbeat interval */
static uint64_t batch_ms(const cl_el *el) {
  return el->cfg.publish_batch_ms < el->cfg.hb_interval_ms ? el->cfg.publish_batch_ms : el->cfg.hb_interval_ms;
}

/* a join or a removal: published with the others of its window */
static void members_changed(cl_el *el) { el->mdirty = 1; }

void cl_el_effects_init(cl_el_effects *fx) { memset(fx, 0, sizeof *fx); }

void cl_el_effects_reset(cl_el_effects *fx) { fx->n = 0; }

void cl_el_effects_free(cl_el_effects *fx) {
  for (size_t i = 0; i < fx->cap; i++) free(fx->v[i].data);
  free(fx->v);
  memset(fx, 0, sizeof *fx);
}

static cl_el_effect *fx_push(cl_el *el, cl_el_effect_kind kind) {
  cl_el_effects *fx = el->out;
  if (fx->n == fx->cap) {
    size_t cap = fx->cap ? fx->cap * 2 : 16;
    cl_el_effect *v = realloc(fx->v, cap * sizeof *v);
    if (!v) return NULL;
    memset(v + fx->cap, 0, (cap - fx->cap) * sizeof *v);
    fx->v = v;
    fx->cap = cap;
  }
  cl_el_effect *e = &fx->v[fx->n++];
  uint8_t *data = e->data;
  size_t cap = e->cap;
  memset(e, 0, offsetof(cl_el_effect, msg));
  e->msg[0] = 0;
  e->data = data;
  e->cap = cap;
  e->kind = kind;
  return e;
}

static int fx_data(cl_el_effect *e, const uint8_t *p, size_t n) {
  if (e->cap < n) {
    uint8_t *d = realloc(e->data, n);
    if (!d) return -1;
    e->data = d;
    e->cap = n;
  }
  if (n) memcpy(e->data, p, n);
  e->len = n;
  return 0;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void logf_(cl_el *el, int level, const char *fmt, ...) {
  cl_el_effect *e = fx_push(el, CL_EL_FX_LOG);
  if (!e) return;
  e->level = level;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
}

static void complete(cl_el *el, uint64_t req_id, const char *code, uint64_t version, const char *fmt, ...) {
  cl_el_effect *e = fx_push(el, CL_EL_FX_COMPLETE);
  if (!e) return;
  e->req_id = req_id;
  e->version = version;
  scpy(e->code, sizeof e->code, code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
}

static uint32_t id_hash(const char *id) { /* FNV-1a */
  uint32_t h = 2166136261u;
  for (; *id; id++) h = (h ^ (uint8_t)*id) * 16777619u;
  return h;
}

static peer *peer_get(cl_el *el, const char *id) {
  if (!id || !el->pidx_cap) return NULL;
  uint32_t mask = el->pidx_cap - 1;
  for (uint32_t j = id_hash(id) & mask; el->pidx[j]; j = (j + 1) & mask) {
    peer *p = &el->peers[el->pidx[j] - 1];
    if (p->used && !strcmp(p->info.id, id)) return p;
  }
  return NULL;
}

/* (re)builds the index for the peers' current ids; -1 out of memory (index unchanged) */
static int pidx_rebuild(cl_el *el, uint32_t cap) {
  uint32_t *ix = calloc(cap, sizeof *ix);
  if (!ix) return -1;
  for (uint32_t i = 0; i < el->n_peers; i++) {
    if (!el->peers[i].used) continue;
    uint32_t j = id_hash(el->peers[i].info.id) & (cap - 1);
    while (ix[j]) j = (j + 1) & (cap - 1);
    ix[j] = i + 1;
  }
  free(el->pidx);
  el->pidx = ix;
  el->pidx_cap = cap;
  return 0;
}

static int is_eligible(uint32_t flags) { return (flags & CL_EL_F_MASTER) != 0; }
static int can_lead(uint32_t flags) { return is_eligible(flags) && !(flags & CL_EL_F_VOTING_ONLY); }

static const char *name_of(cl_el *el, const char *id) {
  if (!id || !id[0]) return "";
  if (!strcmp(id, el->self.id)) return el->self.name;
  peer *p = peer_get(el, id);
  if (p) return p->info.name;
  const cl_el_node *n = cl_state_node(&el->app, id);
  if (n) return n->name;
  n = cl_state_node(&el->acc, id);
  return n ? n->name : id;
}

static int fresher(uint64_t t1, uint64_t v1, uint64_t t2, uint64_t v2) { /* (t1,v1) > (t2,v2) */
  return t1 > t2 || (t1 == t2 && v1 > v2);
}

/* The configuration a node must treat as last committed: once the accepted
 * state is known committed its own configuration is (Elasticsearch marks the
 * state; a flag keeps the hashed content unchanged). */
static const cl_el_vconfig *eff_committed(const cl_el_state *st, int committed) {
  return committed ? &st->accepted_config : &st->committed_config;
}

/* RULE E1: quorum of both configurations */
static int both_quorum(const cl_el_vconfig *a, const cl_el_vconfig *b, int (*has)(void *, const char *), void *ctx) {
#ifdef CL_MUTANT_SINGLE_CONFIG_QUORUM
  (void)b;
  return cl_vc_quorum(a, has, ctx);
#else
  return cl_vc_quorum(a, has, ctx) && cl_vc_quorum(b, has, ctx);
#endif
}

/* ------------------------------------------------------------- sending */

/* The cluster this node's data belongs to: the committed state's, "" before
 * the first commit (a new node belongs to no cluster yet and may join any). */
static const char *my_cluster_id(const cl_el *el) {
  return el->app.cluster_id[0] ? el->app.cluster_id : el->cid_committed ? el->acc.cluster_id : "";
}

static void send_msg(cl_el *el, const char *to, cl_msg *m) {
  cl_buf b = {0};
  scpy(m->cluster_id, sizeof m->cluster_id, my_cluster_id(el));
  cl_msg_encode(m, &b);
  if (!b.oom) {
    cl_el_effect *e = fx_push(el, CL_EL_FX_SEND);
    if (e) {
      scpy(e->to, sizeof e->to, to);
      fx_data(e, b.p, b.n);
    }
  }
  cl_buf_free(&b);
}

static void send_simple(cl_el *el, const char *to, uint8_t type, uint64_t term, uint64_t lat, uint64_t lav,
                        uint64_t version, uint8_t flag) {
  cl_msg *m = &el->tx;
  memset(m, 0, offsetof(cl_msg, names));
  m->n_names = 0;
  m->type = type;
  m->term = term;
  m->lat = lat;
  m->lav = lav;
  m->version = version;
  m->flag = flag;
  send_msg(el, to, m);
}

static void send_publish(cl_el *el, const char *to, const cl_el_state *st) {
  cl_msg *m = &el->tx;
  memset(m, 0, offsetof(cl_msg, names));
  m->n_names = 0;
  m->type = CL_M_PUBLISH;
  m->state = (cl_el_state *)st;
  send_msg(el, to, m);
}

/* The latest state to one peer that lags or asked for it: as a diff if it said it
 * holds the diff's base, else whole (RULE E13: a diff names its base). */
static int diff_for(const cl_el *el, const peer *p) {
  return el->pub_has_diff && (!p->have_known || (p->have_t == el->pub_base_t && p->have_v == el->pub_base_v));
}

static void send_state(cl_el *el, peer *p, const cl_el_state *want) {
  if (want->term == el->pub.term && want->version == el->pub.version && diff_for(el, p)) {
    cl_msg *m = &el->tx;
    memset(m, 0, offsetof(cl_msg, names));
    m->n_names = 0;
    m->type = CL_M_PUBLISH_DIFF;
    m->blob = el->pub_diff.p;
    m->blob_len = (uint32_t)el->pub_diff.n;
    send_msg(el, p->info.id, m);
  } else {
    send_publish(el, p->info.id, want);
  }
  p->pub_sent_ms = el->now;
}

int cl_el_persisted(const cl_el *el, uint8_t **out, size_t *outlen) {
  int flags = (el->acc_committed ? CL_PERSIST_COMMITTED : 0) | (el->cid_committed ? CL_PERSIST_CID_COMMITTED : 0);
  return cl_persist_encode(el->term, &el->acc, flags, out, outlen);
}

static void persist_as(cl_el *el, cl_el_persist_kind kind, int lazy) {
  uint8_t *buf = NULL;
  size_t len = 0;
  /* RULE E14 with E11: the cluster this node belongs to is written durably once, so a
   * crash that loses lazy writes never makes it a node of no cluster, free to join any */
  if (lazy && el->cid_committed && strcmp(el->durable_cid, el->acc.cluster_id)) lazy = 0;
  if (!lazy && el->cid_committed) scpy(el->durable_cid, sizeof el->durable_cid, el->acc.cluster_id);
  /* a lazy one is encoded when written (cl_el_persisted): encoding the whole state at
   * every step of a failover was 8 % of a 300-node cluster's samples (issue 18) */
  if (!lazy && cl_el_persisted(el, &buf, &len) != 0) return;
  cl_el_effect *e = fx_push(el, CL_EL_FX_PERSIST);
  if (e) {
    e->persist = kind;
    e->lazy = lazy;
    e->term = el->term;
    e->version = el->acc.version;
    fx_data(e, buf, len);
  }
  free(buf);
}

static void persist(cl_el *el, cl_el_persist_kind kind) { persist_as(el, kind, 0); }

/* RULE E14: whether this node's acknowledgement of st can count toward a commit: it is
 * in the last committed or the new configuration of st (E1, E7 count nobody else). Only
 * then must st be durable before the acknowledgement leaves; any other node may write
 * it lazily, and the publication that makes it a voter is durable before its ack. */
static int votes_in(const cl_el *el, const cl_el_state *st) {
#ifdef CL_MUTANT_LAZY_NEW_VOTER
  /* deliberately broken: a node joining the configuration acknowledges before its state
   * is durable, and the master counts it; the simulator must catch it */
  return cl_vc_has(&st->committed_config, el->self.id);
#else
  return cl_vc_has(&st->committed_config, el->self.id) || cl_vc_has(&st->accepted_config, el->self.id);
#endif
}

/* ------------------------------------------------------------ scheduling */

static void schedule_retry(cl_el *el) {
  uint64_t window = (uint64_t)el->cfg.election_initial_ms + (uint64_t)el->attempts * el->cfg.election_backoff_ms;
  if (window > el->cfg.election_max_ms) window = el->cfg.election_max_ms;
  el->election_at = el->now + 1 + rnd_below(el, window + 1);
  if (el->attempts < 1000) el->attempts++;
}

static int is_excluded(const cl_el *el, const char *id) {
  for (uint32_t i = 0; i < el->acc.n_excl; i++)
    if (!strcmp(el->acc.excl[i].id, id)) return 1;
  return 0;
}

static int in_a_config(const cl_el *el, const char *id) {
  return cl_vc_has(&el->acc.committed_config, id) || cl_vc_has(&el->acc.accepted_config, id);
}

/* RULE L3: whether a peer of this node's configurations that could lead is connected
 * (and not the master just lost). While one is, a master-eligible node outside the
 * configurations stands only late (STAND_LATER): its candidacy could only raise the
 * term and cost the voters' own election (every pre-vote won starts a term, which
 * makes the current master and candidates step down), it brings no vote of its own,
 * and with hundreds of such nodes the elections never ended (issue 18). */
static int voter_could_lead(cl_el *el) {
  for (int k = 0; k < 2; k++) {
    const cl_el_vconfig *c = k ? &el->acc.accepted_config : &el->acc.committed_config;
    for (uint32_t i = 0; i < c->n; i++) {
      if (!strcmp(c->ids[i], el->self.id) || (el->leader[0] && !strcmp(c->ids[i], el->leader))) continue;
      peer *p = peer_get(el, c->ids[i]);
      if (p && p->up && !p->foreign && can_lead(p->info.flags)) return 1;
    }
  }
  return 0;
}

/* After losing the master: stagger by rank among the nodes that could stand,
 * so the first in line usually wins before the others try (no split vote),
 * plus a little jitter. RULE L3: the voters rank among the voters only; a node
 * outside the configurations stands on this fast path only when no voter could
 * lead, and then ranks among the connected non-voters that could lead. */
static void schedule_fast(cl_el *el) {
  uint32_t rank = 0;
  if (in_a_config(el, el->self.id)) {
    for (int k = 0; k < 2; k++) {
      const cl_el_vconfig *c = k ? &el->acc.accepted_config : &el->acc.committed_config;
      for (uint32_t i = 0; i < c->n; i++) {
        const char *id = c->ids[i];
        if (k && cl_vc_has(&el->acc.committed_config, id)) continue; /* counted once */
        if (strcmp(id, el->self.id) >= 0) continue;
        peer *p = peer_get(el, id);
        if (p && p->up && can_lead(p->info.flags) && strcmp(id, el->leader)) rank++;
      }
    }
  } else if (!voter_could_lead(el)) {
    for (uint32_t i = 0; i < el->n_peers; i++) {
      peer *p = &el->peers[i];
      if (p->used && p->up && !p->foreign && can_lead(p->info.flags) && strcmp(p->info.id, el->self.id) < 0 &&
          strcmp(p->info.id, el->leader) && !in_a_config(el, p->info.id))
        rank++;
    }
  } else {
    el->attempts = 0;
    schedule_retry(el); /* STAND_LATER: it looks again then */
    return;
  }
  el->attempts = 0;
  el->election_at = el->now + 1 + (uint64_t)rank * el->cfg.fast_election_stagger_ms +
                    rnd_below(el, el->cfg.fast_election_jitter_ms + 1);
}

static void become_candidate(cl_el *el, int fast, const char *why) {
  int was = el->mode;
  if (was == CL_EL_LEADER) {
    for (uint32_t i = 0; i < el->n_peers; i++)
      if (el->peers[i].used && el->peers[i].up) send_simple(el, el->peers[i].info.id, CL_M_LEADER_GONE, el->term, 0, 0, 0, 0);
    for (int i = 0; i < MAX_REQS; i++) {
      /* the asking nodes re-forward to the next master (updates carry their
       * id so a re-forwarded update already applied is not applied twice) */
      mreq_release(&el->mreq[i]);
    }
    logf_(el, CL_EL_LOG_WARN, "stepping down as master in term %llu: %s", (unsigned long long)el->term, why);
  } else if (was == CL_EL_FOLLOWER && why) {
    logf_(el, CL_EL_LOG_INFO, "lost master %s in term %llu: %s", name_of(el, el->leader),
          (unsigned long long)el->term, why);
  }
  if (el->mode != CL_EL_CANDIDATE) el->candidate_since = el->now;
  if (el->mode != CL_EL_CANDIDATE) el->joined_term = 0; /* the one it joined led, and is gone */
  el->mode = CL_EL_CANDIDATE;
  el->publishing = 0;
  el->mdirty = 0;
  el->prevoting = 0;
  /* no second reign in the same term: late joins must not revive it */
  el->candidate_term = 0;
  if (fast)
    schedule_fast(el);
  else
    schedule_retry(el);
  el->leader[0] = 0;
}

/* RULE E2: join at most once per term: only for a term above the current one;
 * RULE E3: and the new term is durable before anything of this step leaves, when this
 * node's join can count (RULE E15, durable): otherwise it is written lazily, and the
 * join says so. */
static void start_join(cl_el *el, uint64_t term, int durable) {
  el->term = term;
  el->term_moved_ms = el->now;
  el->started_join = 1;
#ifndef CL_MUTANT_NO_PERSIST_TERM
  persist_as(el, CL_EL_PERSIST_TERM, !durable);
#endif
  el->voted_term = 0; /* no join yet in this term */
  el->voted_durable = durable;
  /* RULE L3: a pre-vote round of this node still in flight is moot: won late, it would
   * stand in a term above the one just joined and depose its candidate (seen at 300
   * nodes: a voter that had joined the winner stood 60 ms later and cost the failover
   * two more terms) */
  el->prevoting = 0;
  if (el->mode != CL_EL_CANDIDATE) become_candidate(el, 0, "a new term started");
}

/* RULE E15: a node whose vote can count joins durably. The candidate or master names
 * the nodes of its configurations in its START_JOIN; a node in a configuration of its
 * own accepted state, or of the publication that brings a new term, knows it itself.
 * Anyone else (data nodes, master-eligible nodes outside the voting configuration: all
 * but a few of a large cluster) writes the term lazily, so a failover does not cost an
 * fsync on every node of a shared disk. */
static int join_durable(const cl_el *el, int asked, const cl_el_state *st) {
  if (asked || cl_vc_has(&el->acc.committed_config, el->self.id) || cl_vc_has(&el->acc.accepted_config, el->self.id))
    return 1;
  return st && (cl_vc_has(&st->committed_config, el->self.id) || cl_vc_has(&st->accepted_config, el->self.id));
}

static void send_join(cl_el *el, const char *to) {
  if (!strcmp(to, el->self.id)) {
    el->self_join_term = el->term;
    return;
  }
  scpy(el->joined_for, sizeof el->joined_for, to);
  el->joined_term = el->term;
  el->joined_ms = el->now;
  scpy(el->voted_for, sizeof el->voted_for, to);
  el->voted_term = el->term;
  send_simple(el, to, CL_M_JOIN, el->term, el->acc.term, el->acc.version, 0, (uint8_t)el->voted_durable);
}

static uint64_t hb_interval(const cl_el *el);

/* RULE E15: ask a node that joined this candidate or master lazily, and whose vote is
 * needed, to make that join durable (a START_JOIN of the same term, flagged) */
static void ask_durable(cl_el *el, peer *p) {
  if (p->confirm_term == el->term && el->now - p->confirm_ms < hb_interval(el)) return; /* asked just now */
  p->confirm_term = el->term;
  p->confirm_ms = el->now;
  send_simple(el, p->info.id, CL_M_START_JOIN, el->term, 0, 0, 0, 1);
}

/* ------------------------------------------------------------- quorums */

static int has_self_or_peer_vote(void *ctx, const char *id) {
  cl_el *el = ctx;
  if (!strcmp(id, el->self.id)) return el->self_join_term == el->term && is_eligible(el->self.flags);
  peer *p = peer_get(el, id);
  return p && p->vote_term == el->term && is_eligible(p->info.flags);
}

/* any join in this term, durable or not (RULE E15: whether asking for durable ones
 * could complete a quorum) */
static int has_self_or_peer_join(void *ctx, const char *id) {
  cl_el *el = ctx;
  if (!strcmp(id, el->self.id)) return el->self_join_term == el->term && is_eligible(el->self.flags);
  peer *p = peer_get(el, id);
  return p && p->join_term == el->term && is_eligible(p->info.flags);
}

static int has_prevote(void *ctx, const char *id) {
  cl_el *el = ctx;
  if (!strcmp(id, el->self.id)) return 1;
  peer *p = peer_get(el, id);
  return p && p->prevote_round == el->prevote_round;
}

static int has_ack(void *ctx, const char *id) {
  cl_el *el = ctx;
  if (!strcmp(id, el->self.id)) return 1; /* the leader persisted before sending */
  peer *p = peer_get(el, id);
  return p && p->ack_term == el->term && p->ack_version == el->pub.version;
}

/* Failure-suspicion timeouts, widened by the local-health grace (cl_el_set_grace): a
 * node whose own loop runs late cannot tell a silent peer from its own slowness (the
 * heartbeats may be waiting unread in its socket), so it waits longer before it calls
 * the master, a follower or a quorum gone. Liveness only: a deposed master cannot
 * commit whatever it believes (a quorum joined a higher term: RULES E4, E6), so nothing
 * relies on one timeout firing before another's. */
static uint64_t leader_to(const cl_el *el) { return (uint64_t)el->cfg.leader_timeout_ms + el->grace_ms; }
static uint64_t follower_to(const cl_el *el) { return (uint64_t)el->cfg.follower_timeout_ms + el->grace_ms; }
static uint64_t publish_to(const cl_el *el) { return (uint64_t)el->cfg.publish_timeout_ms + el->grace_ms; }

/* the master's heartbeat interval now (cl_el_set_heartbeat) */
static uint64_t hb_interval(const cl_el *el) { return el->hb_ms ? el->hb_ms : el->cfg.hb_interval_ms; }

/* How long a follower has been silent, to the master: since its last answer, but never
 * more than since the first heartbeat it left unanswered plus one interval. A master
 * that runs on time sends that heartbeat one interval after the answer, so the two agree;
 * a master that was not running (its CPU starved, a long fsync) sent nothing meanwhile,
 * and blames no follower for its own silence. Found at 300 nodes on 2 cores with
 * heartbeats every 500 ms: a master stalled for about 2 s found every follower's last
 * answer past the follower timeout, removed them all and stepped down, again and again
 * (issue 18). As the transport's detector counts a watched peer's silence from when it
 * was asked to beat. 0 while no heartbeat is outstanding. */
static uint64_t silent_ms(const cl_el *el, const peer *p) {
  if (!p->asked_ms || el->now <= p->asked_ms) return 0;
  uint64_t since_ok = el->now - p->last_ok_ms, since_ask = el->now - p->asked_ms + hb_interval(el);
  return since_ok < since_ask ? since_ok : since_ask;
}

static int has_recent(void *ctx, const char *id) {
  cl_el *el = ctx;
  if (!strcmp(id, el->self.id)) return 1;
  peer *p = peer_get(el, id);
  return p && p->up && !p->foreign && p->ok_term == el->term && silent_ms(el, p) < leader_to(el);
}

/* Who may stand. As Elasticsearch: a master-eligible node in a configuration
 * or not excluded stands normally. A voting-only node, or an excluded one
 * outside the configuration, may hold the freshest accepted state, and the
 * others cannot win without its vote while it is fresher than them (RULE E4 on
 * joins): so, as Elasticsearch does for voting-only nodes, it may stand late,
 * only to transfer its state, and hands over right after its first commit. */
enum { STAND_NO = 0, STAND_NORMAL = 1, STAND_TRANSFER = 2, STAND_LATER = 3 };

static int stand_kind(cl_el *el) {
  if (!is_eligible(el->self.flags) || el->lua_lag || el->acc.accepted_config.n == 0) return STAND_NO;
  if (el->self.flags & CL_EL_F_VOTING_ONLY) return STAND_TRANSFER;
  if (cl_vc_has(&el->acc.committed_config, el->self.id) || cl_vc_has(&el->acc.accepted_config, el->self.id))
    return STAND_NORMAL;
  for (uint32_t i = 0; i < el->acc.n_excl; i++)
    if (!strcmp(el->acc.excl[i].id, el->self.id)) return STAND_TRANSFER;
  /* RULE L3: outside the configurations, the voters go first */
  return voter_could_lead(el) ? STAND_LATER : STAND_NORMAL;
}

/* A transfer-only win needs a vote from a node that could lead, and none of
 * those may hold the same state (that one should lead instead). */
static int transfer_win_ok(cl_el *el) {
  int full = 0;
  for (uint32_t i = 0; i < el->n_peers; i++) {
    peer *p = &el->peers[i];
    if (!p->used || p->vote_term != el->term || !can_lead(p->info.flags)) continue;
    full = 1;
    if (p->lat == el->acc.term && p->lav == el->acc.version) return 0;
  }
  return full;
}

/* --------------------------------------------------- observable changes */

static const char *current_master(cl_el *el) {
  if (el->mode == CL_EL_LEADER && el->app.term == el->term) return el->self.id;
  if (el->mode == CL_EL_FOLLOWER && el->app.term == el->term && !strcmp(el->app.master_id, el->leader))
    return el->leader;
  return NULL;
}

static void observe_master(cl_el *el);

static int has_live_link(void *ctx, const char *id) {
  cl_el *el = ctx;
  if (!strcmp(id, el->self.id)) return 1;
  peer *p = peer_get(el, id);
  return p && p->up && !p->foreign;
}

/* Whether the voting nodes this node is connected to (the transport's failure
 * detector closes a silent connection within its bound) form a quorum of both
 * configurations of the last accepted state. Losing the master while this
 * holds is a failover, not a lost quorum. */
static int quorum_reachable(cl_el *el) {
  if (el->acc.accepted_config.n == 0) return 0;
  return both_quorum(eff_committed(&el->acc, el->acc_committed), &el->acc.accepted_config, has_live_link, el);
}

/* quorum_lost: this node had a master, and now cannot reach a quorum of the
 * voting configuration; quorum_regained: after that, a quorum is reachable
 * again and a master is elected. */
static void observe_quorum(cl_el *el) {
  if (!el->had_master) return;
#ifdef CL_MUTANT_QUORUM_LOST_WITH_MASTER
  if (!el->quorum_lost && !el->obs_master[0]) {
    el->quorum_lost = 1;
    cl_el_effect *e = fx_push(el, CL_EL_FX_EVENT);
    if (e) e->event = CL_EL_EV_QUORUM_LOST, e->term = el->term;
    return;
  }
#endif
  if (!el->quorum_lost && !quorum_reachable(el)) {
    el->quorum_lost = 1;
    cl_el_effect *e = fx_push(el, CL_EL_FX_EVENT);
    if (e) e->event = CL_EL_EV_QUORUM_LOST, e->term = el->term;
  } else if (el->quorum_lost && el->obs_master[0] && quorum_reachable(el)) {
    el->quorum_lost = 0;
    cl_el_effect *e = fx_push(el, CL_EL_FX_EVENT);
    if (e) e->event = CL_EL_EV_QUORUM_REGAINED, e->term = el->term;
  }
}

static void observe(cl_el *el) {
  observe_master(el);
  observe_quorum(el);
}

static void observe_master(cl_el *el) {
  const char *m = current_master(el);
  const char *prev = el->obs_master[0] ? el->obs_master : NULL;
  if ((m == NULL) == (prev == NULL) && (!m || !strcmp(m, prev))) return;
  char old_name[CL_EL_NAME_MAX + 1];
  scpy(old_name, sizeof old_name, el->obs_master_name);
  scpy(el->obs_master, sizeof el->obs_master, m);
  scpy(el->obs_master_name, sizeof el->obs_master_name, m ? name_of(el, m) : "");
  cl_el_effect *e = fx_push(el, CL_EL_FX_EVENT);
  if (e) {
    e->event = CL_EL_EV_MASTER_CHANGED;
    scpy(e->new_master, sizeof e->new_master, el->obs_master_name);
    scpy(e->old_master, sizeof e->old_master, old_name);
    e->term = el->term;
  }
  logf_(el, CL_EL_LOG_INFO, "master changed: %s -> %s (term %llu)", prev ? old_name : "none",
        m ? el->obs_master_name : "none", (unsigned long long)el->term);
  if (m) el->had_master = 1;
}

/* ----------------------------------------------------------- requests */

static void forward_origin(cl_el *el, origin_req *r);
static void master_handle_req(cl_el *el, const char *origin, const cl_msg *m);

static void on_fwd_resp(cl_el *el, const cl_msg *m) {
  for (int i = 0; i < MAX_REQS; i++) {
    origin_req *r = &el->oreq[i];
    if (!r->used || r->req_id != m->req_id) continue;
    if (!strcmp(m->code, "OK")) {
      r->have_result = 1;
      r->result_version = m->version;
    } else {
      complete(el, r->req_id, m->code, m->version, "%s", m->text);
      oreq_release(r);
    }
    return;
  }
}

static void reply_req(cl_el *el, const char *origin, uint64_t req_id, const char *code, uint64_t version,
                      const char *fmt, ...) {
  cl_msg *m = malloc(sizeof *m);
  if (!m) return;
  memset(m, 0, sizeof *m);
  m->type = CL_M_FWD_RESP;
  m->req_id = req_id;
  m->version = version;
  scpy(m->code, sizeof m->code, code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->text, sizeof m->text, fmt, ap);
  va_end(ap);
  if (!strcmp(origin, el->self.id))
    on_fwd_resp(el, m);
  else
    send_msg(el, origin, m);
  free(m);
}

static void check_origin_reqs(cl_el *el) {
  const char *master = current_master(el);
  for (int i = 0; i < MAX_REQS; i++) {
    origin_req *r = &el->oreq[i];
    if (!r->used) continue;
    if (r->have_result && el->app.version >= r->result_version) {
      complete(el, r->req_id, "OK", el->app.version, "committed at version %llu and applied",
               (unsigned long long)r->result_version);
    } else if (el->now >= r->deadline) {
      if (!master)
        complete(el, r->req_id, "ENOQUORUM", 0,
                 "no elected master within %u ms: this node does not see a quorum of the voting configuration",
                 el->cfg.request_timeout_ms);
      else
        complete(el, r->req_id, "ETIMEDOUT", 0, "not committed and applied within %u ms (master %s)",
                 el->cfg.request_timeout_ms, name_of(el, master));
    } else {
      forward_origin(el, r);
      continue;
    }
    oreq_release(r);
  }
}

static void forward_origin(cl_el *el, origin_req *r) {
  const char *master = current_master(el);
  if (!master || r->have_result) return;
  if (!strcmp(r->sent_to, master) && r->sent_term == el->term) return;
  scpy(r->sent_to, sizeof r->sent_to, master);
  r->sent_term = el->term;
  cl_msg *m = malloc(sizeof *m);
  if (!m) return;
  memset(m, 0, sizeof *m);
  m->type = CL_M_FWD_REQ;
  m->req_id = r->req_id;
  m->req_kind = r->kind;
  m->base_version = r->base_version;
  m->flag = r->wait;
  m->blob = r->blob;
  m->blob_len = r->blob_len;
  m->n_names = r->n_names;
  if (r->n_names) memcpy(m->names, r->names, r->n_names * sizeof m->names[0]);
  if (!strcmp(master, el->self.id))
    master_handle_req(el, el->self.id, m);
  else
    send_msg(el, master, m);
  free(m);
}

static void new_request(cl_el *el, const cl_el_input *in) {
  origin_req *r = NULL;
  for (int i = 0; i < MAX_REQS; i++) {
    if (el->oreq[i].used && el->oreq[i].req_id == in->req_id) {
      complete(el, in->req_id, "EINVAL", 0, "request id %llu already in progress", (unsigned long long)in->req_id);
      return;
    }
    if (!el->oreq[i].used && !r) r = &el->oreq[i];
  }
  if (!r) {
    complete(el, in->req_id, "EBUSY", 0, "too many write requests in progress (max %d)", MAX_REQS);
    return;
  }
  if (in->kind == CL_EL_IN_REQUEST_UPDATE) {
    if (in->len > el->cfg.max_metadata_bytes || in->len > CL_EL_META_HARD_MAX) {
      complete(el, in->req_id, "EINVAL", 0, "metadata of %zu bytes exceeds the limit of %u bytes", in->len,
               el->cfg.max_metadata_bytes);
      return;
    }
  } else if (in->kind == CL_EL_IN_REQUEST_EXCLUDE) {
    if (in->n_names == 0 || in->n_names > el->cfg.max_exclusions || in->n_names > CL_EL_MAX_EXCL) {
      complete(el, in->req_id, "EINVAL", 0, "exclusions: give between 1 and %u node names",
               el->cfg.max_exclusions);
      return;
    }
    for (size_t i = 0; i < in->n_names; i++)
      if (!in->names[i] || !in->names[i][0] || strlen(in->names[i]) > CL_EL_NAME_MAX) {
        complete(el, in->req_id, "EINVAL", 0, "exclusions: name %zu is empty or too long", i + 1);
        return;
      }
  }
  oreq_release(r); /* an unused slot may still hold what a refused request left */
  if (in->kind == CL_EL_IN_REQUEST_EXCLUDE) {
    r->names = calloc(in->n_names, sizeof r->names[0]);
    if (!r->names) {
      complete(el, in->req_id, "ENOMEM", 0, "out of memory");
      return;
    }
  }
  if (in->kind == CL_EL_IN_REQUEST_UPDATE && in->len) {
    r->blob = malloc(in->len);
    if (!r->blob) {
      complete(el, in->req_id, "ENOMEM", 0, "out of memory");
      return;
    }
    memcpy(r->blob, in->data, in->len);
    r->blob_len = (uint32_t)in->len;
  }
  r->used = 1;
  r->req_id = in->req_id;
  r->kind = in->kind == CL_EL_IN_REQUEST_UPDATE ? CL_REQ_UPDATE
            : in->kind == CL_EL_IN_REQUEST_EXCLUDE ? CL_REQ_EXCLUDE
                                                   : CL_REQ_CLEAR;
  r->wait = in->flag ? 1 : 0;
  r->base_version = in->base_version;
  if (r->kind == CL_REQ_EXCLUDE) {
    r->n_names = (uint32_t)in->n_names;
    for (size_t i = 0; i < in->n_names; i++) scpy(r->names[i], sizeof r->names[i], in->names[i]);
  }
  r->deadline = el->now + el->cfg.request_timeout_ms;
  forward_origin(el, r);
}

static const cl_el_state *latest(cl_el *el) { return el->publishing ? &el->pub : &el->acc; }

static void master_handle_req(cl_el *el, const char *origin, const cl_msg *m) {
  if (el->mode != CL_EL_LEADER) return; /* the asker re-forwards when it sees the real master */
  master_req *slot = NULL;
  for (int i = 0; i < MAX_REQS; i++) {
    master_req *q = &el->mreq[i];
    if (q->used && q->req_id == m->req_id && !strcmp(q->origin, origin)) return; /* duplicate */
    if (!q->used && !slot) slot = q;
  }
  if (!slot) {
    reply_req(el, origin, m->req_id, "EBUSY", 0, "master %s has too many write requests in progress", el->self.name);
    return;
  }
  const cl_el_state *cur = latest(el);
  mreq_release(slot); /* an unused slot may still hold what a refused request left */
  scpy(slot->origin, sizeof slot->origin, origin);
  slot->req_id = m->req_id;
  slot->kind = m->req_kind;
  slot->wait = m->flag;
  slot->base_version = m->base_version;
  slot->started = el->now;
  if (m->req_kind == CL_REQ_UPDATE) {
    if (!strcmp(cur->meta_origin, origin) && cur->meta_req == m->req_id) {
      /* a re-forwarded update that an earlier master already applied */
      slot->used = 1;
      slot->status = MR_INFLIGHT;
      slot->version = cur->meta_version;
      return;
    }
    int queued = 0;
    for (int i = 0; i < MAX_REQS; i++)
      if (el->mreq[i].used && el->mreq[i].kind == CL_REQ_UPDATE && el->mreq[i].status == MR_QUEUED) queued = 1;
    if (queued) {
      reply_req(el, origin, m->req_id, "ECONFLICT", cur->meta_version,
                "another metadata update is being committed: re-run the update on the new value");
      return;
    }
    if (m->base_version < cur->meta_version) {
      reply_req(el, origin, m->req_id, "ECONFLICT", cur->meta_version,
                "metadata changed since version %llu (now %llu): re-run the update on the new value",
                (unsigned long long)m->base_version, (unsigned long long)cur->meta_version);
      return;
    }
    if (m->blob_len > el->cfg.max_metadata_bytes) {
      reply_req(el, origin, m->req_id, "EINVAL", 0, "metadata of %u bytes exceeds the limit of %u bytes",
                m->blob_len, el->cfg.max_metadata_bytes);
      return;
    }
    if (m->blob_len) {
      slot->blob = malloc(m->blob_len);
      if (!slot->blob) return;
      memcpy(slot->blob, m->blob, m->blob_len);
      slot->blob_len = m->blob_len;
    }
  } else if (m->req_kind == CL_REQ_EXCLUDE) {
    /* one id a name at most; left in the slot if refused below (freed when it is reused) */
    if (m->n_names && !(slot->ids = calloc(m->n_names, sizeof slot->ids[0]))) {
      reply_req(el, origin, m->req_id, "ENOMEM", 0, "master %s is out of memory", el->self.name);
      return;
    }
    uint32_t total = cur->n_excl;
    for (uint32_t i = 0; i < m->n_names; i++) {
      const cl_el_node *found = NULL;
      for (uint32_t k = 0; k < cur->n_nodes; k++) {
        if (!cl_node_name_matches(m->names[i], cur->nodes[k].name)) continue;
        if (found) {
          reply_req(el, origin, m->req_id, "EINVAL", 0, "exclusion \"%s\" matches both %s and %s", m->names[i],
                    found->name, cur->nodes[k].name);
          return;
        }
        found = &cur->nodes[k];
      }
      /* a node that is down has left the state's nodes but may still vote: like
       * Elasticsearch's node_ids, an id in the state or in a voting configuration
       * names it (the runtime turns names of nodes it knew into their ids) */
      cl_el_node byid;
      if (!found) {
        for (uint32_t k = 0; k < cur->n_nodes && !found; k++)
          if (!strcmp(m->names[i], cur->nodes[k].id)) found = &cur->nodes[k];
      }
      if (!found && (cl_vc_has(&cur->committed_config, m->names[i]) || cl_vc_has(&cur->accepted_config, m->names[i]))) {
        /* read only, owning nothing: its name is the request's */
        memset(&byid, 0, sizeof byid);
        scpy(byid.id, sizeof byid.id, m->names[i]);
        byid.name = m->names[i];
        byid.address = byid.tags = "";
        found = &byid;
      }
      if (!found) {
        reply_req(el, origin, m->req_id, "ENOTFOUND", 0, "exclusion \"%s\" matches no node of the cluster",
                  m->names[i]);
        return;
      }
      int dup = 0;
      for (uint32_t k = 0; k < cur->n_excl; k++)
        if (!strcmp(cur->excl[k].id, found->id)) dup = 1;
      for (uint32_t k = 0; k < slot->n_ids; k++)
        if (!strcmp(slot->ids[k].id, found->id)) dup = 1;
      if (dup) {
        scpy(slot->ids[slot->n_ids].id, sizeof slot->ids[0].id, found->id);
        scpy(slot->ids[slot->n_ids].name, sizeof slot->ids[0].name, found->name);
        slot->n_ids++;
        continue;
      }
      if (++total > el->cfg.max_exclusions || total > CL_EL_MAX_EXCL) {
        reply_req(el, origin, m->req_id, "EINVAL", 0, "too many voting exclusions (max %u); clear them first",
                  el->cfg.max_exclusions);
        return;
      }
      scpy(slot->ids[slot->n_ids].id, sizeof slot->ids[0].id, found->id);
      scpy(slot->ids[slot->n_ids].name, sizeof slot->ids[0].name, found->name);
      slot->n_ids++;
    }
  }
  if (m->req_kind == CL_REQ_EXCLUDE) {
    /* refuse to leave no node that could be elected: the cluster would be
     * stuck without a master once this one goes */
    uint32_t left = 0;
    for (uint32_t k = 0; k < cur->n_nodes; k++) {
      const cl_el_node *nd = &cur->nodes[k];
      int ex = !can_lead(nd->flags);
      for (uint32_t j = 0; j < cur->n_excl && !ex; j++) ex = !strcmp(cur->excl[j].id, nd->id);
      for (uint32_t j = 0; j < slot->n_ids && !ex; j++) ex = !strcmp(slot->ids[j].id, nd->id);
      for (int i = 0; i < MAX_REQS && !ex; i++) {
        master_req *q = &el->mreq[i];
        if (q->used && q->kind == CL_REQ_EXCLUDE)
          for (uint32_t j = 0; j < q->n_ids && !ex; j++) ex = !strcmp(q->ids[j].id, nd->id);
      }
      if (!ex) left++;
    }
    if (!left) {
      reply_req(el, origin, m->req_id, "EINVAL", 0,
                "excluding these nodes would leave no master-eligible node that can be elected");
      return;
    }
  }
  slot->used = 1;
  slot->status = MR_QUEUED;
  el->dirty = 1;
}

/* after a commit: requests whose effect is now committed are answered */
static void check_master_reqs(cl_el *el) {
  for (int i = 0; i < MAX_REQS; i++) {
    master_req *q = &el->mreq[i];
    if (!q->used) continue;
    int done = 0;
    if (q->status == MR_INFLIGHT && el->acc_committed && el->acc.version >= q->version) {
      done = 1;
      if (q->kind == CL_REQ_EXCLUDE)
        for (uint32_t k = 0; k < q->n_ids; k++)
          if (cl_vc_has(&el->acc.accepted_config, q->ids[k].id)) done = 0;
    }
    if (done) {
      reply_req(el, q->origin, q->req_id, "OK", el->acc.version, "ok");
      mreq_release(q);
    } else if (el->now - q->started > 2ull * el->cfg.request_timeout_ms) {
      mreq_release(q); /* the asker has given up long ago */
    }
  }
}

/* ---------------------------------------------------------- publication */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int node_cmp(const void *a, const void *b) { return strcmp(((const cl_el_node *)a)->id, ((const cl_el_node *)b)->id); }

static void apply_committed(cl_el *el);

static void check_commit(cl_el *el) {
  if (el->mode != CL_EL_LEADER || !el->publishing) return;
  if (!both_quorum(&el->pub.committed_config, &el->pub.accepted_config, has_ack, el)) return;
  /* RULE E7: committed on a quorum of both configurations */
  el->publishing = 0;
  el->acc_committed = 1;
  el->cid_committed = 1;
  persist(el, CL_EL_PERSIST_COMMIT);
  for (uint32_t i = 0; i < el->n_peers; i++) {
    peer *p = &el->peers[i];
    if (p->used && p->up) send_simple(el, p->info.id, CL_M_COMMIT, el->term, 0, 0, el->pub.version, 0);
  }
  apply_committed(el);
  el->dirty = 1; /* a reconfiguration may now follow */
  /* a voting-only or excluded master hands over once its state is safe; a non-voter
   * that won while voters were connected (RULE L3's late path) may lead: it stays */
  int kind = stand_kind(el);
  if (kind != STAND_NORMAL && kind != STAND_LATER)
    become_candidate(el, 0, "state transferred; handing over to a node that may lead");
}

static void publish(cl_el *el, cl_el_state *next) {
  logf_(el, CL_EL_LOG_DEBUG, "publishing (%llu,%llu): %u nodes (were %u)%s%s%s%s", (unsigned long long)next->term,
        (unsigned long long)next->version, next->n_nodes, el->acc.n_nodes,
        strcmp(next->master_id, el->acc.master_id) ? ", new master" : "",
        cl_vc_eq(&next->accepted_config, &el->acc.accepted_config) ? "" : ", voting configuration changed",
        cl_vc_eq(&next->committed_config, &el->acc.committed_config) ? "" : ", committed configuration changed",
        next->meta_version != el->acc.meta_version ? ", metadata changed" : "");
  if (el->mdirty) el->last_pub_at = el->now;
  el->mdirty = 0; /* every membership change so far is in this publication */
  /* RULE E13: the diff from the state this node accepted last, named by its (term,
   * version); a bootstrap state (term 0) differs from node to node and is never a base */
  cl_buf_free(&el->pub_diff);
  el->pub_has_diff = 0;
  if (el->acc.term > 0 && !strcmp(el->acc.cluster_id, next->cluster_id)) {
    cl_diff_encode(&el->acc, next, &el->pub_diff);
    if (!el->pub_diff.oom) {
      el->pub_has_diff = 1;
      el->pub_base_t = el->acc.term;
      el->pub_base_v = el->acc.version;
    } else {
      cl_buf_free(&el->pub_diff);
    }
  }
  cl_el_state_copy(&el->pub, next);
  el->publishing = 1;
  el->pub_start = el->now;
  el->first_pub_done = 1;
  if (strcmp(el->acc.cluster_id, next->cluster_id)) el->cid_committed = 0;
  cl_el_state_copy(&el->acc, next);
  el->acc_committed = 0;
  persist(el, CL_EL_PERSIST_STATE);
  /* one encoding of each form for every peer (encoding per peer made a publication
   * O(N^2)): the diff to the peers that said they hold its base, the whole state (about
   * 100 bytes a node) to the others; a peer whose base turns out not to match answers
   * NEED_FULL and gets the whole state then */
  cl_buf full = {0}, diff = {0};
  for (uint32_t i = 0; i < el->n_peers; i++) {
    peer *p = &el->peers[i];
    if (!p->used || !p->up) continue;
    int as_diff = diff_for(el, p);
    cl_buf *b = as_diff ? &diff : &full;
    if (!b->n && !b->oom) {
      cl_msg *m = &el->tx;
      memset(m, 0, offsetof(cl_msg, names));
      m->n_names = 0;
      m->type = as_diff ? CL_M_PUBLISH_DIFF : CL_M_PUBLISH;
      m->state = &el->pub;
      m->blob = el->pub_diff.p;
      m->blob_len = (uint32_t)el->pub_diff.n;
      scpy(m->cluster_id, sizeof m->cluster_id, my_cluster_id(el));
      cl_msg_encode(m, b);
    }
    if (b->oom) continue;
    cl_el_effect *e = fx_push(el, CL_EL_FX_SEND);
    if (e) {
      scpy(e->to, sizeof e->to, p->info.id);
      fx_data(e, b->p, b->n);
    }
    p->pub_sent_ms = el->now;
  }
  cl_buf_free(&full);
  cl_buf_free(&diff);
  check_commit(el);
}

static void gen_cluster_id(cl_el *el, char *out) {
  uint64_t a = rnd(el), b = rnd(el);
  snprintf(out, CL_EL_CLUSTER_ID_MAX + 1, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

static int same_content(const cl_el_state *a, const cl_el_state *b) {
  if (strcmp(a->master_id, b->master_id) || strcmp(a->cluster_id, b->cluster_id) || a->term != b->term) return 0;
  if (a->n_nodes != b->n_nodes || !cl_node_lists_eq(a->nodes, b->nodes, a->n_nodes)) return 0;
  if (!cl_vc_eq(&a->committed_config, &b->committed_config) || !cl_vc_eq(&a->accepted_config, &b->accepted_config))
    return 0;
  if (a->n_excl != b->n_excl || memcmp(a->excl, b->excl, a->n_excl * sizeof a->excl[0])) return 0;
  return a->meta_version == b->meta_version;
}

static int only_nodes_differ(const cl_el_state *a, const cl_el_state *b) {
  return !strcmp(a->master_id, b->master_id) && !strcmp(a->cluster_id, b->cluster_id) && a->term == b->term &&
         cl_vc_eq(&a->committed_config, &b->committed_config) && cl_vc_eq(&a->accepted_config, &b->accepted_config) &&
         a->n_excl == b->n_excl && !memcmp(a->excl, b->excl, a->n_excl * sizeof a->excl[0]) &&
         a->meta_version == b->meta_version;
}

static void maybe_publish(cl_el *el) {
  if (el->mode != CL_EL_LEADER || el->publishing) return;
  int members_due = el->mdirty && el->now >= el->last_pub_at + batch_ms(el);
  if (!el->dirty && el->first_pub_done && !members_due) return;
  el->dirty = 0;
  int took_req = 0;
  cl_el_state *next = &el->scratch;
  const cl_el_state *base = &el->acc;
  int base_committed = el->acc_committed;
  cl_el_state_copy(next, base);
  next->term = el->term;
  next->version = base->version + 1;
  scpy(next->master_id, sizeof next->master_id, el->self.id);
  if (!next->cluster_id[0]) gen_cluster_id(el, next->cluster_id);
  if (cl_el_vconfig_copy(&next->committed_config, eff_committed(base, base_committed)) ||
      cl_el_state_reserve_nodes(next, el->n_peers + 1)) {
    el->dirty = 1; /* out of memory: try again on the next step */
    logf_(el, CL_EL_LOG_ERROR, "out of memory preparing a publication of %u nodes", el->n_peers + 1);
    return;
  }

  /* membership: this node and the peers following it in this term (records that own
   * their strings: sharing them cannot fail) */
  cl_el_state_truncate_nodes(next, 0);
  cl_el_node_copy(&next->nodes[next->n_nodes++], &el->self);
  for (uint32_t i = 0; i < el->n_peers; i++) {
    peer *p = &el->peers[i];
    if (p->used && p->member) cl_el_node_copy(&next->nodes[next->n_nodes++], &p->info);
  }
  qsort(next->nodes, next->n_nodes, sizeof next->nodes[0], node_cmp);

  /* queued requests */
  for (int i = 0; i < MAX_REQS; i++) {
    master_req *q = &el->mreq[i];
    if (!q->used || q->status != MR_QUEUED) continue;
    if (q->kind == CL_REQ_UPDATE) {
      free(next->meta);
      next->meta = NULL;
      next->meta_len = 0;
      if (q->blob_len) {
        next->meta = malloc(q->blob_len);
        if (!next->meta) continue;
        memcpy(next->meta, q->blob, q->blob_len);
        next->meta_len = q->blob_len;
      }
      next->meta_version = next->version;
      scpy(next->meta_origin, sizeof next->meta_origin, q->origin);
      next->meta_req = q->req_id;
    } else if (q->kind == CL_REQ_EXCLUDE) {
      for (uint32_t k = 0; k < q->n_ids; k++) {
        int have = 0;
        for (uint32_t j = 0; j < next->n_excl; j++)
          if (!strcmp(next->excl[j].id, q->ids[k].id)) have = 1;
        if (!have && next->n_excl < CL_EL_MAX_EXCL) next->excl[next->n_excl++] = q->ids[k];
      }
    } else if (q->kind == CL_REQ_CLEAR) {
      int waiting = 0;
      if (q->wait)
        for (uint32_t j = 0; j < next->n_excl; j++)
          if (cl_state_node(next, next->excl[j].id)) waiting = 1;
      if (waiting) continue;
      next->n_excl = 0;
    }
    q->status = MR_INFLIGHT;
    q->version = next->version;
    took_req = 1;
  }

  /* RULE E8: one reconfiguration at a time, only to a configuration the join
   * votes of this term already form a quorum of, and whose quorum is live */
  if (cl_vc_eq(&next->committed_config, &next->accepted_config)) {
    const char **live = malloc(((size_t)next->n_nodes + 1) * sizeof *live);
    if (!live) {
      el->dirty = 1;
      return;
    }
    size_t n_live = 0;
    for (uint32_t i = 0; i < next->n_nodes; i++) {
      const cl_el_node *nd = &next->nodes[i];
      if (is_eligible(nd->flags) && has_recent(el, nd->id)) live[n_live++] = nd->id;
    }
    qsort(live, n_live, sizeof live[0], cmp_str);
    cl_el_vconfig target = {0};
    int rc = cl_reconfigure(&next->accepted_config, live, n_live, next->excl, next->n_excl, el->self.id,
                            el->cfg.max_voting_nodes, &target);
    free(live);
    if (rc) {
      cl_el_vconfig_free(&target);
      el->dirty = 1;
      return;
    }
    if (!cl_vc_eq(&target, &next->accepted_config)) {
      if (cl_vc_quorum(&target, has_self_or_peer_vote, el)) {
        cl_el_vconfig_free(&next->accepted_config);
        next->accepted_config = target; /* takes target's ids */
        target = (cl_el_vconfig){0};
        el->durable_ask_term = 0; /* a later reconfiguration asks afresh */
      } else if (cl_vc_quorum(&target, has_self_or_peer_join, el) &&
                 (el->durable_ask_term != el->term || el->now - el->durable_ask_ms < leader_to(el))) {
        /* RULE E15: the joins are here, some of them lazy: ask those to be made durable;
         * their answers make the next publication (or a heartbeat round) try again. A
         * node that restarted since its lazy join cannot answer (it no longer knows whom
         * it joined): after a leader timeout, the re-election below collects its vote */
        if (el->durable_ask_term != el->term) el->durable_ask_term = el->term, el->durable_ask_ms = el->now;
        for (uint32_t i = 0; i < target.n; i++) {
          peer *p = peer_get(el, target.ids[i]);
          if (p && p->up && p->join_term == el->term && p->vote_term != el->term) ask_durable(el, p);
        }
        el->durable_wait = 1;
      } else if (base_committed && el->revote_term != el->term) {
        cl_el_vconfig_free(&target);
        /* the better configuration needs votes that went to another candidate in this
         * term (two candidates raced): only a new term can collect them, as a node
         * votes once per term. Once per term, so it cannot churn. */
        el->revote_term = el->term;
        become_candidate(el, 1, "a reconfiguration needs votes cast elsewhere in this term: re-electing");
        return;
      }
    }
    cl_el_vconfig_free(&target);
  }

  /* membership alone (no request, no reconfiguration) waits for its window, however the
   * step came here (a commit re-checks for a reconfiguration) */
  if (el->first_pub_done && el->mdirty && !members_due && !took_req && only_nodes_differ(next, base)) return;
  if (el->first_pub_done && same_content(next, base)) {
    el->mdirty = 0; /* the changes cancelled out (a node left and came back) */
    /* nothing to publish (say, clearing exclusions when there are none): the requests
     * taken above are already satisfied by the state the cluster has */
    if (base_committed) {
      for (int i = 0; i < MAX_REQS; i++) {
        master_req *q = &el->mreq[i];
        if (q->used && q->status == MR_INFLIGHT && q->version == next->version) q->version = base->version;
      }
      check_master_reqs(el);
    }
    return;
  }
  publish(el, next);
}

static void become_leader(cl_el *el) {
  el->mode = CL_EL_LEADER;
  scpy(el->leader, sizeof el->leader, el->self.id);
  el->leader_since = el->now;
  el->hb_at = el->now;
  el->attempts = 0;
  el->prevoting = 0;
  el->first_pub_done = 0;
  el->dirty = 1;
  for (uint32_t i = 0; i < el->n_peers; i++) {
    peer *p = &el->peers[i];
    if (!p->used) continue;
    /* voters follow us already; the others get added once they answer */
    p->member = p->up && p->join_term == el->term;
    p->asked_ms = 0; /* what it left unanswered belongs to an earlier term */
    if (p->member) {
      p->ok_term = el->term;
      p->last_ok_ms = el->now;
    }
  }
  /* The nodes of the state this master takes over stay in it while connected, though
   * their joins have not come yet: at 300 nodes the first publication after a failover
   * held the 70 whose joins were in, removing 230 nodes that the next publications added
   * back, and every node processed the three (issue 18). One that does not follow is
   * removed by the follower check, as any silent member; membership is liveness only. */
  for (uint32_t i = 0; i < el->acc.n_nodes; i++) {
    peer *p = peer_get(el, el->acc.nodes[i].id);
    if (p && p->used && p->up && !p->foreign && !p->member) p->member = 1, p->last_ok_ms = el->now;
  }
  logf_(el, CL_EL_LOG_INFO, "elected master in term %llu", (unsigned long long)el->term);
  maybe_publish(el);
}

static void check_won(cl_el *el) {
  if (el->mode != CL_EL_CANDIDATE || el->candidate_term != el->term || !el->started_join) return;
  int kind = stand_kind(el);
  if (kind == STAND_NO || (kind == STAND_TRANSFER && !transfer_win_ok(el))) return;
  if (both_quorum(eff_committed(&el->acc, el->acc_committed), &el->acc.accepted_config, has_self_or_peer_vote, el))
    become_leader(el);
}

/* --------------------------------------------------------- apply/commit */

/* Master-eligible nodes the cluster is configured with: those in the state, plus the
 * voting configuration's members the state does not hold (a bootstrap placeholder for a
 * listed node that has not joined yet, a master that just failed). Counting the state
 * alone saw 2 of 3 nodes at every bootstrap and after every failover. */
static uint32_t count_eligible(const cl_el_state *st) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < st->n_nodes; i++) k += is_eligible(st->nodes[i].flags) && !(st->nodes[i].flags & CL_EL_F_VOTING_ONLY);
  for (uint32_t i = 0; i < st->accepted_config.n; i++) {
    const char *id = st->accepted_config.ids[i];
    if (cl_vc_is_placeholder(id)) {
      const char *entry = id + strlen("{bootstrap-placeholder}-");
      int joined = 0;
      for (uint32_t j = 0; j < st->n_nodes && !joined; j++) joined = cl_node_name_matches(entry, st->nodes[j].name);
      k += !joined;
    } else {
      k += cl_state_node(st, id) == NULL;
    }
  }
  return k;
}

static void apply_committed(cl_el *el) {
  if (el->app.term == el->acc.term && el->app.version == el->acc.version) return;
  cl_el_state_copy(&el->app, &el->acc);
  cl_el_effect *e = fx_push(el, CL_EL_FX_EVENT);
  if (e) {
    e->event = CL_EL_EV_STATE_COMMITTED;
    e->term = el->app.term;
    e->version = el->app.version;
  }
  if (el->n_initial && !el->warned_initial && el->app.cluster_id[0]) {
    el->warned_initial = 1;
    logf_(el, CL_EL_LOG_WARN,
          "initial_master_nodes is still set but the cluster has formed (cluster id %s): remove it from the "
          "configuration, it is ignored from now on",
          el->app.cluster_id);
  }
  if (el->mode == CL_EL_LEADER) {
    uint32_t k = count_eligible(&el->app);
    /* past the voting cap the configuration is odd whatever k is (RULE E12): no warning */
    if (k % 2 == 0 && k < el->cfg.max_voting_nodes && k != el->warned_even_count) {
      el->warned_even_count = k;
      logf_(el, CL_EL_LOG_WARN,
            "the cluster has an even number (%u) of master-eligible nodes: one of them adds no fault tolerance",
            k);
    } else if (k % 2) {
      el->warned_even_count = 0;
    }
    check_master_reqs(el);
  }
}

/* ------------------------------------------------------------ bootstrap */

static void try_bootstrap(cl_el *el) {
  /* only a node that never accepted anything; its current term may have been
   * raised by others' elections meanwhile, which does not matter: votes are
   * per term and this state is at (0,0) */
  if (!el->n_initial || el->acc.accepted_config.n || el->acc.version || el->acc.term || !is_eligible(el->self.flags))
    return;
  cl_el_vconfig c = {0};
  uint32_t matched = 0;
  for (size_t i = 0; i < el->n_initial; i++) {
    const char *entry = el->initial[i];
    const cl_el_node *found = NULL;
    /* candidates: this node (k = 0), then the connected eligible peers */
    for (uint32_t k = 0; k <= el->n_peers; k++) {
      const cl_el_node *cand = &el->self;
      if (k) {
        const peer *pk = &el->peers[k - 1];
        if (!pk->used || !pk->up || !is_eligible(pk->info.flags)) continue;
        cand = &pk->info;
      }
      if (!cl_node_name_matches(entry, cand->name)) continue;
      if (found) {
        if (!el->bootstrap_err_logged) {
          el->bootstrap_err_logged = 1;
          logf_(el, CL_EL_LOG_ERROR,
                "initial_master_nodes entry \"%s\" matches both %s and %s: use full names (name@host:port); "
                "not bootstrapping",
                entry, found->name, cand->name);
        }
        cl_el_vconfig_free(&c);
        return;
      }
      found = cand;
    }
    char ph[CL_EL_ID_MAX + 1];
    if (found) {
      matched++;
      snprintf(ph, sizeof ph, "%s", found->id);
    } else {
      snprintf(ph, sizeof ph, "{bootstrap-placeholder}-%s", entry);
    }
    if (cl_vc_add(&c, ph)) {
      cl_el_vconfig_free(&c);
      return; /* out of memory: the next tick tries again */
    }
  }
  /* room for both first: a half-made change must not reach a lazy write (encoded from
   * acc when it falls due) */
  if (2 * matched <= el->n_initial || cl_vc_reserve(&el->acc.committed_config, c.n) ||
      cl_vc_reserve(&el->acc.accepted_config, c.n) || cl_el_vconfig_copy(&el->acc.committed_config, &c) ||
      cl_el_vconfig_copy(&el->acc.accepted_config, &c)) {
    cl_el_vconfig_free(&c);
    return;
  }
  cl_el_vconfig_free(&c);
  el->acc_committed = 0;
  persist(el, CL_EL_PERSIST_STATE);
  logf_(el, CL_EL_LOG_INFO, "bootstrapping a new cluster: %u of %zu initial master nodes discovered", matched,
        el->n_initial);
  schedule_fast(el);
}

/* ------------------------------------------------------- message handlers */

/* RULE L3: a pre-vote granted lately to a voter is a candidate on its way: another
 * candidate's pre-vote within election_initial_ms of it is refused, unless the one
 * granted is gone (a non-voter's grant holds off nobody: the voters stand first).
 * Two voters that lost the master a few milliseconds apart each won a pre-vote from the
 * same nodes and stood in the same term: neither had a quorum of joins, and the next
 * term cost 350 ms of a failover at 300 nodes (issue 18). Liveness only: E9 holds (a
 * pre-vote changes nothing persisted), and the window is short. */
static int prevote_granted_recently_other_than(cl_el *el, const char *from) {
  if (!el->pv_granted_to[0] || !strcmp(el->pv_granted_to, from) ||
      el->now - el->pv_granted_ms >= el->cfg.election_initial_ms)
    return 0;
  peer *p = peer_get(el, el->pv_granted_to);
  return p && p->up;
}

/* RULE L3: a candidate this node joined in its current term is its master-to-be for
 * leader_timeout_ms, the time a silent master is given: under load its first
 * publication may take that long, and a pre-vote granted to another node meanwhile
 * would start a term over the winner's head (at 100 nodes on 2 cores, formation went
 * through dozens of terms so). */
static int joined_recently_other_than(cl_el *el, const char *from) {
  if (el->mode != CL_EL_CANDIDATE || !el->joined_term || el->joined_term != el->term ||
      el->now - el->joined_ms >= leader_to(el) || !strcmp(el->joined_for, from))
    return 0;
  peer *p = peer_get(el, el->joined_for);
  return p && p->up; /* a candidate whose connection closed is no master-to-be */
}

static int has_healthy_leader_other_than(cl_el *el, const char *from) {
  if (el->mode == CL_EL_LEADER) return 1;
  if (joined_recently_other_than(el, from)) return 1;
  return el->mode == CL_EL_FOLLOWER && el->now - el->leader_contact < leader_to(el) &&
         strcmp(el->leader, from) != 0;
}

static void follow(cl_el *el, const char *leader) {
  if (el->mode != CL_EL_FOLLOWER || strcmp(el->leader, leader)) {
    el->mode = CL_EL_FOLLOWER;
    scpy(el->leader, sizeof el->leader, leader);
    el->prevoting = 0;
  }
  el->leader_contact = el->now;
}

/* the node learns of a leader in a higher term: join it in that term (durably if it
 * votes in this node's configurations or in st's, the publication that brought it) */
static void join_leader_in_term(cl_el *el, uint64_t term, const char *leader, const cl_el_state *st) {
  start_join(el, term, join_durable(el, 0, st));
  send_join(el, leader);
}

#define REFUSED_LOG_EVERY_MS (10u * 60u * 1000u)

/* Returns 1 if a node whose data belongs to cluster cid must be refused: its
 * data and this node's belong to different clusters. Nothing such a node says
 * counts (its term, pre-votes, joins, publications, heartbeats), so it can
 * neither raise this cluster's term nor cost it its master. Logged once per
 * peer, then at most every 10 minutes: it will say the same every round. */
static int refuse_foreign(cl_el *el, peer *p, const char *cid) {
  const char *mine = my_cluster_id(el);
  if (!mine[0] || !cid[0] || !strcmp(mine, cid)) return 0;
  el->refused_msgs++;
  if (!p) return 1;
  p->foreign = 1;
  scpy(p->foreign_cid, sizeof p->foreign_cid, cid);
  if (p->member) p->member = 0, members_changed(el);
  if (!p->refused_logged || el->now - p->refused_logged_ms >= REFUSED_LOG_EVERY_MS) {
    p->refused_logged = 1;
    p->refused_logged_ms = el->now;
    logf_(el, CL_EL_LOG_ERROR,
          "refusing %s: it belongs to cluster %s but this node's data belongs to cluster %s "
          "(wrong data directory, or initial_master_nodes bootstrapped two clusters); "
          "logged again at most every 10 minutes",
          p->info.name, cid, mine);
  }
  return 1;
}

static int cluster_mismatch(cl_el *el, const char *from, const char *cid) {
  return refuse_foreign(el, peer_get(el, from), cid);
}

static void on_publish(cl_el *el, const char *from, cl_el_state *st) {
  if (strcmp(st->master_id, from) || st->term == 0) return;
#ifdef CL_MUTANT_ACCEPT_OLD_TERM
  if (st->term < el->term && !fresher(st->term, st->version, el->acc.term, el->acc.version)) {
#else
  if (st->term < el->term) {
#endif
    send_simple(el, from, CL_M_PUBLISH_RESP, el->term, 0, 0, st->version, 0);
    return;
  }
  if (cluster_mismatch(el, from, st->cluster_id)) {
    send_simple(el, from, CL_M_HB_RESP, el->term, el->acc.term, el->acc.version, 0, CL_HB_CLUSTER_MISMATCH);
    return;
  }
  if (el->mode == CL_EL_LEADER && st->term == el->term) {
    logf_(el, CL_EL_LOG_ERROR, "publication from %s in my own term %llu ignored", name_of(el, from),
          (unsigned long long)st->term);
    return;
  }
  if (st->term > el->term) join_leader_in_term(el, st->term, from, st);
  follow(el, from);
  /* RULE E5: accept only in the current term with a higher version */
  if (st->term == el->acc.term && st->version <= el->acc.version) {
    int dup = st->version == el->acc.version;
    send_simple(el, from, CL_M_PUBLISH_RESP, el->term, 0, 0, st->version, (uint8_t)dup);
    return;
  }
  if (strcmp(el->acc.cluster_id, st->cluster_id)) el->cid_committed = 0;
  /* take the decoded state rather than copy it (hundreds of nodes); the caller frees
   * what is left in st, the old accepted state */
  cl_el_state old = el->acc;
  el->acc = *st;
  *st = old;
  el->acc_committed = 0;
  /* RULE E6, E14: durable before acknowledged, on a node whose acknowledgement counts */
  persist_as(el, CL_EL_PERSIST_STATE, !votes_in(el, &el->acc));
  send_simple(el, from, CL_M_PUBLISH_RESP, el->term, 0, 0, el->acc.version, 1); /* st is the old state now */
}

/* RULE E13: a diff is applied only to the exact state it was built against; a node
 * that holds another (a new node, one that missed a publication or restarted) asks for
 * the whole state, changing nothing (the publication's term and acceptance rules apply
 * to the whole state when it comes) */
static void on_publish_diff(cl_el *el, const char *from, const cl_diff *d) {
  if (strcmp(d->master_id, from) || d->term == 0) return;
  char err[160];
  if (cl_diff_apply(&el->acc, d, &el->rx, err, sizeof err) == 0) {
    on_publish(el, from, &el->rx);
    return;
  }
  if (d->term < el->term) { /* as on_publish: the sender learns the current term */
    send_simple(el, from, CL_M_PUBLISH_RESP, el->term, 0, 0, d->version, CL_PUB_REFUSED);
    return;
  }
  if (d->term == el->acc.term && d->version <= el->acc.version) { /* held already, or older */
    send_simple(el, from, CL_M_PUBLISH_RESP, el->term, 0, 0, d->version,
                d->version == el->acc.version ? CL_PUB_ACCEPTED : CL_PUB_REFUSED);
    return;
  }
  logf_(el, CL_EL_LOG_DEBUG, "publication (%llu,%llu) from %s as a diff: %s; asking for the whole state",
        (unsigned long long)d->term, (unsigned long long)d->version, name_of(el, from), err);
  send_simple(el, from, CL_M_PUBLISH_RESP, el->term, 0, 0, d->version, CL_PUB_NEED_FULL);
}

static void step_down_to_term(cl_el *el, uint64_t term, const char *why) {
  if (el->mode != CL_EL_CANDIDATE) become_candidate(el, 1, why);
  if (term > el->term) {
    start_join(el, term, 1);
    send_join(el, el->self.id); /* vote for itself: it may well be re-elected */
  }
}

static void mark_committed(cl_el *el, uint64_t version) {
  if (el->acc.term != el->term || el->acc.version != version || el->acc_committed) return;
  el->acc_committed = 1;
  el->cid_committed = 1;
  persist_as(el, CL_EL_PERSIST_COMMIT, !votes_in(el, &el->acc)); /* RULE E14 */
  apply_committed(el);
}

/* A won pre-vote: term t starts, this node votes for itself and asks every connected
 * peer to join, flagging the members of its configurations, whose votes count and must
 * be durable (RULE E15) */
static void stand(cl_el *el, uint64_t t) {
  logf_(el, CL_EL_LOG_DEBUG, "pre-vote won: standing in term %llu", (unsigned long long)t);
  start_join(el, t, 1);
  el->candidate_term = t;
  send_join(el, el->self.id);
  for (uint32_t i = 0; i < el->n_peers; i++)
    if (el->peers[i].used && el->peers[i].up)
      send_simple(el, el->peers[i].info.id, CL_M_START_JOIN, t, 0, 0, 0, (uint8_t)in_a_config(el, el->peers[i].info.id));
  check_won(el);
}

static void on_message(cl_el *el, const char *from, const uint8_t *data, size_t len) {
  peer *p = peer_get(el, from);
  if (!p || !p->up) return; /* only from authenticated, connected peers */
  char err[160];
  cl_msg *m = &el->msg;
  if (cl_msg_decode_into(data, len, m, &el->rx, &el->rxd, el->cfg.max_nodes, err, sizeof err) != 0) {
    logf_(el, CL_EL_LOG_WARN, "dropping bad election message from %s: %s", p->info.name, err);
    return;
  }
  /* RULE E11: refused before anything in it counts, not even its term */
#ifdef CL_MUTANT_ACCEPT_FOREIGN
  if (0) {
#else
  if (refuse_foreign(el, p, m->cluster_id)) {
#endif
    if (m->type == CL_M_PUBLISH) cl_el_state_clear(m->state);
    return;
  }
  p->foreign = 0;
  switch (m->type) {
  case CL_M_PREVOTE_REQ: {
    p->pv_lat = m->lat, p->pv_lav = m->lav, p->pv_known = 1;
    /* RULE E9: pre-voting changes nothing persisted */
    int healthy = has_healthy_leader_other_than(el, from);
    int granted = !healthy && !prevote_granted_recently_other_than(el, from);
    if (granted && in_a_config(el, from)) { /* a voter: the voters stand first (L3) */
      scpy(el->pv_granted_to, sizeof el->pv_granted_to, from);
      el->pv_granted_ms = el->now;
    } else if (!granted) {
      logf_(el, CL_EL_LOG_DEBUG, "pre-vote of %s refused: %s", p->info.name,
            !healthy                     ? "another candidate's pre-vote was granted lately"
            : el->mode == CL_EL_LEADER   ? "this node is master"
            : el->mode == CL_EL_FOLLOWER ? "the master is heard"
                                         : "this node joined another candidate lately");
    }
    send_simple(el, from, CL_M_PREVOTE_RESP, el->term, el->acc.term, el->acc.version, 0, (uint8_t)granted);
    /* RULE L3: a voter that could lead is standing: give it time to win before this
     * node tries (as after a START_JOIN), rather than raising the term over its head */
    if (granted && el->mode == CL_EL_CANDIDATE && !el->prevoting && in_a_config(el, from) && can_lead(p->info.flags)) {
      uint64_t at = el->now + el->cfg.election_initial_ms + rnd_below(el, el->cfg.election_initial_ms + 1);
      if (el->election_at < at) el->election_at = at;
    }
    break;
  }
  case CL_M_PREVOTE_RESP:
    if (el->mode != CL_EL_CANDIDATE || !el->prevoting) break;
    if (m->term > el->prevote_max_term) el->prevote_max_term = m->term;
    if (m->flag && !fresher(m->lat, m->lav, el->acc.term, el->acc.version)) p->prevote_round = el->prevote_round;
    else logf_(el, CL_EL_LOG_DEBUG, "pre-vote refused by %s%s", p->info.name, m->flag ? " (its state is fresher)" : "");
    if (both_quorum(eff_committed(&el->acc, el->acc_committed), &el->acc.accepted_config, has_prevote, el)) {
      el->prevoting = 0;
      uint64_t t = (el->prevote_max_term > el->term ? el->prevote_max_term : el->term) + 1;
      stand(el, t);
    }
    break;
  case CL_M_START_JOIN:
    /* RULE E15: the node this one joined lazily in this term needs the vote: make it
     * durable, and say so (the same vote: no second join in the term) */
    if (m->term == el->term && m->flag && el->voted_term == el->term && !strcmp(el->voted_for, from)) {
      if (!el->voted_durable) {
        el->voted_durable = 1;
        persist(el, CL_EL_PERSIST_TERM);
      }
      send_simple(el, from, CL_M_JOIN, el->term, el->acc.term, el->acc.version, 0, 1);
      break;
    }
    if (m->term <= el->term) break;
  {
    /* whether this join can make the candidate a lasting master: not if this node's
     * state is fresher than the one the candidate named in its pre-vote request (RULE
     * E4: the join does not count), nor if the candidate stands only to hand its state
     * over (voting-only or excluded: it steps down at once) */
    int counts = p->pv_known && !fresher(el->acc.term, el->acc.version, p->pv_lat, p->pv_lav) &&
                 can_lead(p->info.flags) && !is_excluded(el, from);
    start_join(el, m->term, join_durable(el, m->flag, NULL));
    logf_(el, CL_EL_LOG_DEBUG, "joining %s in term %llu (%s)", p->info.name, (unsigned long long)el->term,
          el->voted_durable ? "durable" : "lazy");
    send_join(el, from);
    if (!counts) el->joined_term = 0;
    /* give that candidate time to win before trying ourselves; RULE L3: if the join
     * counts, as long as a silent master is given (under load its first publication
     * takes that long); if not, it cannot win with this vote, only the usual pause */
    el->election_at = el->now + (counts ? leader_to(el) : el->cfg.election_initial_ms) +
                      rnd_below(el, el->cfg.election_initial_ms + 1);
  }
    break;
  case CL_M_JOIN:
    /* RULE E4: a vote counts in the current term, after a term was started since
     * boot, and only if the voter is not fresher than this node */
    if (m->term != el->term || !el->started_join) break;
    if (fresher(m->lat, m->lav, el->acc.term, el->acc.version)) break;
    if (el->mode == CL_EL_CANDIDATE)
      logf_(el, CL_EL_LOG_DEBUG, "join from %s in term %llu (%s)", p->info.name, (unsigned long long)el->term,
            m->flag ? "durable" : "lazy");
    p->join_term = el->term;
    /* RULE E15: only a durable join counts (a win, a reconfiguration's quorum, a
     * transfer); a lazy one from a node whose vote is needed is asked to be made durable */
#ifdef CL_MUTANT_COUNT_LAZY_JOIN
    if (1) {
#else
    if (m->flag) {
#endif
      if (p->vote_term != el->term && el->mode == CL_EL_LEADER) el->dirty = 1; /* a reconfiguration may wait on it */
      p->vote_term = el->term;
    } else if (in_a_config(el, from)) {
      ask_durable(el, p);
    }
    p->lat = p->have_t = m->lat;
    p->lav = p->have_v = m->lav;
    p->have_known = 1;
    if (el->mode == CL_EL_LEADER) {
      p->ok_term = el->term;
      p->last_ok_ms = el->now, p->asked_ms = 0;
      if (!p->member) p->member = 1, members_changed(el);
    }
    check_won(el);
    break;
  case CL_M_PUBLISH:
    on_publish(el, from, m->state);
    cl_el_state_clear(m->state);
    break;
  case CL_M_PUBLISH_DIFF:
    on_publish_diff(el, from, m->diff);
    cl_el_state_clear(&el->rx);
    break;
  case CL_M_PUBLISH_RESP:
    if (m->term > el->term) {
      step_down_to_term(el, m->term, "a node is in a higher term");
      break;
    }
    if (el->mode != CL_EL_LEADER || m->term != el->term) break;
    if (m->flag == CL_PUB_NEED_FULL) {
      /* it does not hold the diff's base: the whole state, if that is still the latest */
      p->have_known = 1;
      p->have_t = p->have_v = 0;
      const cl_el_state *want = latest(el);
      if (m->version == want->version && want->term == el->term) send_state(el, p, want);
      break;
    }
    if (m->flag == CL_PUB_ACCEPTED) {
      p->have_known = 1;
      p->have_t = el->term;
      p->have_v = m->version;
      p->ack_term = el->term;
      p->ack_version = m->version;
      p->ok_term = el->term;
      p->last_ok_ms = el->now, p->asked_ms = 0;
      if (!p->member) p->member = 1, members_changed(el);
      if (el->publishing && m->version == el->pub.version) check_commit(el);
    }
    break;
  case CL_M_COMMIT:
    if (el->mode == CL_EL_FOLLOWER && !strcmp(el->leader, from) && m->term == el->term) mark_committed(el, m->version);
    break;
  case CL_M_HB: {
    if (m->term < el->term) {
      send_simple(el, from, CL_M_HB_RESP, el->term, el->acc.term, el->acc.version, 0, CL_HB_STALE_TERM);
      break;
    }
    if (cluster_mismatch(el, from, m->cluster_id)) {
      send_simple(el, from, CL_M_HB_RESP, el->term, el->acc.term, el->acc.version, 0, CL_HB_CLUSTER_MISMATCH);
      break;
    }
    if (m->term == el->term && el->mode == CL_EL_LEADER) {
      logf_(el, CL_EL_LOG_ERROR, "heartbeat from %s in my own term %llu ignored", p->info.name,
            (unsigned long long)m->term);
      break;
    }
    if (m->term > el->term) join_leader_in_term(el, m->term, from, NULL);
    follow(el, from);
    if (m->version) mark_committed(el, m->version);
    send_simple(el, from, CL_M_HB_RESP, el->term, el->acc.term, el->acc.version, 0, CL_HB_OK);
    break;
  }
  case CL_M_HB_RESP:
    if (m->term > el->term) {
      step_down_to_term(el, m->term, "a node is in a higher term");
      break;
    }
    if (el->mode != CL_EL_LEADER || m->term != el->term) break;
    if (m->flag != CL_HB_OK) {
      if (p->member) p->member = 0, members_changed(el);
      p->ok_term = 0;
      break;
    }
    p->ok_term = el->term;
    p->last_ok_ms = el->now, p->asked_ms = 0;
    p->lat = p->have_t = m->lat;
    p->lav = p->have_v = m->lav;
    p->have_known = 1;
    if (!p->member) p->member = 1, members_changed(el);
    {
      const cl_el_state *want = latest(el);
      if (m->lat == want->term && m->lav == want->version) {
        /* it holds the publication durably: as good as a (lost) ack */
        p->ack_term = el->term;
        p->ack_version = want->version;
        check_commit(el);
      } else if (el->now - p->pub_sent_ms >= el->cfg.hb_interval_ms) {
        /* lagging or new: (re)send the latest state */
        send_state(el, p, want);
      }
    }
    break;
  case CL_M_LEADER_GONE:
    if (el->mode == CL_EL_FOLLOWER && !strcmp(el->leader, from) && m->term == el->term)
      become_candidate(el, 1, "the master stepped down");
    break;
  case CL_M_FWD_REQ:
    master_handle_req(el, from, m);
    break;
  case CL_M_FWD_RESP:
    on_fwd_resp(el, m);
    break;
  default:
    break;
  }
}

/* --------------------------------------------------------------- timers */

/* RULE L3: a pre-vote counts only from the voting configurations (both_quorum), so in a
 * large cluster, once this node knows one, the request goes to their members only. With
 * hundreds of master-eligible nodes every candidate asked every member: at 300 nodes on 2
 * cores each lost master made every node dial every other on demand (about 150
 * connections a node where it holds 20) and the machine never settled (issue 18). Up to
 * CL_EL_PREVOTE_ALL_MAX peers up (the transport's mesh: connected to all anyway), and
 * before a configuration is known (bootstrapping), everyone is asked: so a node of
 * another cluster that campaigns is refused, and listed, by every node it can reach
 * (E11), not only by the voting ones. */
#define CL_EL_PREVOTE_ALL_MAX 32
static int prevote_asks(cl_el *el, const peer *p, uint32_t up) {
  if (up <= CL_EL_PREVOTE_ALL_MAX) return 1;
  if (!el->acc.committed_config.n && !el->acc.accepted_config.n) return 1;
  return in_a_config(el, p->info.id);
}

static void start_prevote(cl_el *el) {
  logf_(el, CL_EL_LOG_DEBUG, "pre-voting in term %llu (round %llu)", (unsigned long long)el->term,
        (unsigned long long)el->prevote_round + 1);
  el->prevoting = 1;
  el->prevote_round++;
  el->prevote_max_term = el->term;
  uint32_t up = 0;
  for (uint32_t i = 0; i < el->n_peers; i++) up += el->peers[i].used && el->peers[i].up;
  for (uint32_t i = 0; i < el->n_peers; i++)
    if (el->peers[i].used && el->peers[i].up && prevote_asks(el, &el->peers[i], up))
      send_simple(el, el->peers[i].info.id, CL_M_PREVOTE_REQ, el->term, el->acc.term, el->acc.version, 0, 0);
  /* a single-node configuration needs nobody else */
  if (both_quorum(eff_committed(&el->acc, el->acc_committed), &el->acc.accepted_config, has_prevote, el)) {
    el->prevoting = 0;
    uint64_t t = el->term + 1;
    stand(el, t);
  }
}

static void send_hb(cl_el *el, peer *p) {
  cl_msg *m = &el->tx;
  memset(m, 0, offsetof(cl_msg, names));
  m->n_names = 0;
  m->type = CL_M_HB;
  m->term = el->term;
  m->version = el->acc_committed && el->acc.term == el->term ? el->acc.version : 0;
  if (!p->asked_ms) p->asked_ms = el->now;
  send_msg(el, p->info.id, m);
}

static void timers(cl_el *el) {
  uint64_t now = el->now;
  if (el->mode == CL_EL_CANDIDATE) {
    try_bootstrap(el);
    if (now >= el->election_at) {
      schedule_retry(el);
      int kind = stand_kind(el);
      uint64_t late = (uint64_t)el->cfg.election_max_ms + el->cfg.leader_timeout_ms;
      /* RULE L3: a non-voter while a voter could lead stands only once nobody has
       * started a term for that long (the voters are not getting anywhere) */
      uint64_t quiet = el->term_moved_ms > el->candidate_since ? el->term_moved_ms : el->candidate_since;
      if (kind == STAND_NORMAL || (kind == STAND_TRANSFER && now - el->candidate_since >= late) ||
          (kind == STAND_LATER && now - quiet >= late))
        start_prevote(el);
    }
  } else if (el->mode == CL_EL_FOLLOWER) {
    if (now - el->leader_contact >= leader_to(el))
      become_candidate(el, 1, "no heartbeat from the master within the leader timeout");
  } else if (el->mode == CL_EL_LEADER) {
    if (now >= el->hb_at) {
      /* on multiples of the interval of the (monotonic, machine-wide) clock, as the
       * transport beats: a follower's wake-up for the master's heartbeat is then the
       * same as for its other peers' beats. The interval stays hb_interval_ms, or what
       * cl_el_set_heartbeat gave. */
      uint64_t hb = hb_interval(el);
      el->hb_at = (now / hb + 1) * hb;
      if (el->durable_wait) el->durable_wait = 0, el->dirty = 1; /* ask again, or reconfigure */
      for (uint32_t i = 0; i < el->n_peers; i++) {
        peer *p = &el->peers[i];
        if (p->used && p->up && !p->foreign) send_hb(el, p);
      }
    }
    for (uint32_t i = 0; i < el->n_peers; i++) {
      peer *p = &el->peers[i];
      if (p->used && p->member && (!p->up || silent_ms(el, p) >= follower_to(el))) {
        p->member = 0;
        members_changed(el);
        logf_(el, CL_EL_LOG_INFO, "removing %s from the cluster: %s", p->info.name,
              p->up ? "no answer within the follower timeout" : "disconnected");
      }
    }
    if (el->publishing && now - el->pub_start >= publish_to(el)) {
      become_candidate(el, 0, "publication not committed within the publish timeout");
      return;
    }
    if (now - el->leader_since >= leader_to(el)) {
      const cl_el_state *s = latest(el);
      if (!both_quorum(eff_committed(&el->acc, el->acc_committed), &s->accepted_config, has_recent, el) ||
          !both_quorum(&s->committed_config, &s->accepted_config, has_recent, el)) {
        become_candidate(el, 0, "a quorum of the voting configuration is unreachable");
        return;
      }
    }
  }
}

/* ------------------------------------------------------------------ API */

cl_el *cl_el_new(const cl_el_config *cfg, const cl_el_node_info *self, const uint8_t *persisted, size_t persisted_len,
                 char *err, size_t errlen) {
  char dummy[8];
  if (!err) err = dummy, errlen = sizeof dummy;
  err[0] = 0;
  if (!self || !self->id || !self->id[0] || strlen(self->id) > CL_EL_ID_MAX) {
    snprintf(err, errlen, "node id missing or longer than %d bytes", CL_EL_ID_MAX);
    return NULL;
  }
  if (!self->name || !self->name[0] || strlen(self->name) > CL_EL_NAME_MAX ||
      (self->address && strlen(self->address) > CL_EL_ADDR_MAX) || (self->tags && strlen(self->tags) > CL_EL_TAGS_MAX)) {
    snprintf(err, errlen, "node name missing, or name/address/tags too long");
    return NULL;
  }
  if (cfg->hb_interval_ms == 0 || cfg->leader_timeout_ms < cfg->hb_interval_ms ||
      cfg->follower_timeout_ms < cfg->hb_interval_ms) {
    snprintf(err, errlen, "election config: timeouts must be at least the heartbeat interval (%u ms)",
             cfg->hb_interval_ms);
    return NULL;
  }
  if (cl_check_initial_list(cfg->initial_master_nodes, cfg->n_initial_master_nodes, err, errlen)) return NULL;
  if (cfg->max_nodes < 1 || cfg->max_nodes > CL_EL_MAX_NODES_HARD) {
    snprintf(err, errlen, "election.max_nodes is %u: give between 1 and %d", cfg->max_nodes, CL_EL_MAX_NODES_HARD);
    return NULL;
  }
  if (cfg->max_voting_nodes < 3 || cfg->max_voting_nodes % 2 == 0 || cfg->max_voting_nodes > CL_EL_MAX_NODES_HARD) {
    snprintf(err, errlen, "election.max_voting_nodes is %u: give an odd number, at least 3 (at most %d)",
             cfg->max_voting_nodes, CL_EL_MAX_NODES_HARD);
    return NULL;
  }
  /* the bootstrap configuration is the list: it must not start above the cap (RULE E12) */
  if (cfg->n_initial_master_nodes > cfg->max_voting_nodes) {
    snprintf(err, errlen,
             "initial_master_nodes has %zu entries but election.max_voting_nodes is %u: list at most %u "
             "master-eligible nodes, or raise the cap",
             cfg->n_initial_master_nodes, cfg->max_voting_nodes, cfg->max_voting_nodes);
    return NULL;
  }
  cl_el *el = calloc(1, sizeof *el);
  if (!el) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  el->cfg = *cfg;
  el->cfg.initial_master_nodes = NULL;
  el->n_initial = cfg->n_initial_master_nodes;
  for (size_t i = 0; i < el->n_initial; i++) scpy(el->initial[i], sizeof el->initial[i], cfg->initial_master_nodes[i]);
  if (cl_el_node_set(&el->self, self->id, self->name, self->address, self->flags, self->tags)) {
    snprintf(err, errlen, "out of memory");
    free(el);
    return NULL;
  }
  el->rng = cfg->seed ^ 0x6a09e667f3bcc909ULL;
  if (persisted && persisted_len) {
    char why[160];
    int flags = 0;
    if (cl_persist_decode(persisted, persisted_len, &el->term, &el->acc, &flags, why, sizeof why)) {
      snprintf(err, errlen, "persisted election state rejected: %s", why);
      cl_el_free(el);
      return NULL;
    }
    el->acc_committed = (flags & CL_PERSIST_COMMITTED) != 0;
    /* a committed state's cluster id is committed (files written before bit 1 existed say only bit 0) */
    el->cid_committed = (flags & (CL_PERSIST_COMMITTED | CL_PERSIST_CID_COMMITTED)) != 0;
    if (el->acc_committed) cl_el_state_copy(&el->app, &el->acc);
    if (el->cid_committed) scpy(el->durable_cid, sizeof el->durable_cid, el->acc.cluster_id);
  }
  el->mode = CL_EL_CANDIDATE;
  return el;
}

void cl_el_free(cl_el *el) {
  if (!el) return;
  cl_el_state_clear(&el->acc);
  cl_el_state_clear(&el->app);
  cl_el_state_clear(&el->pub);
  cl_el_state_clear(&el->rx);
  cl_diff_clear(&el->rxd);
  cl_buf_free(&el->pub_diff);
  cl_el_state_clear(&el->scratch);
  cl_el_node_release(&el->self);
  for (uint32_t i = 0; i < el->n_peers; i++) cl_el_node_release(&el->peers[i].info);
  free(el->peers);
  free(el->pidx);
  for (int i = 0; i < MAX_REQS; i++) {
    oreq_release(&el->oreq[i]);
    mreq_release(&el->mreq[i]);
  }
  free(el);
}

static void peer_up(cl_el *el, const cl_el_node_info *info) {
  if (!info->id || !info->id[0] || strlen(info->id) > CL_EL_ID_MAX || !strcmp(info->id, el->self.id)) return;
  peer *p = peer_get(el, info->id);
  if (!p) {
    /* this node and its peers: at most max_nodes (election.max_nodes) */
    int reused = 0;
    if (el->n_peers + 1 >= el->cfg.max_nodes) {
      /* full: forget a long-gone peer to make room */
      for (uint32_t i = 0; i < el->n_peers && !p; i++)
        if (!el->peers[i].up && !el->peers[i].member) p = &el->peers[i];
      if (!p) {
        el->refused_nodes++;
        logf_(el, CL_EL_LOG_ERROR,
              "refusing node %s: the cluster has reached election.max_nodes (%u nodes, this one included); "
              "raise election.max_nodes in the topology to admit more",
              info->name ? info->name : info->id, el->cfg.max_nodes);
        return;
      }
      reused = 1;
    } else {
      if (el->n_peers == el->cap_peers) {
        uint32_t cap = el->cap_peers ? el->cap_peers * 2 : 8;
        peer *v = realloc(el->peers, (size_t)cap * sizeof *v);
        if (!v) {
          logf_(el, CL_EL_LOG_ERROR, "out of memory: ignoring %s", info->name ? info->name : info->id);
          return;
        }
        el->peers = v;
        el->cap_peers = cap;
      }
      if (2 * (el->n_peers + 1) > el->pidx_cap) {
        uint32_t cap = el->pidx_cap ? el->pidx_cap : 16;
        while (cap < 2 * (el->n_peers + 1)) cap *= 2;
        if (pidx_rebuild(el, cap)) {
          logf_(el, CL_EL_LOG_ERROR, "out of memory: ignoring %s", info->name ? info->name : info->id);
          return;
        }
      }
      p = &el->peers[el->n_peers++];
      memset(p, 0, sizeof *p);
    }
    cl_el_node_release(&p->info); /* a long-gone peer's record, when reused */
    memset(p, 0, sizeof *p);
    p->used = 1;
    cl_el_node_set(&p->info, info->id, NULL, NULL, 0, NULL); /* nothing to allocate: cannot fail */
    if (reused) {
      if (pidx_rebuild(el, el->pidx_cap)) { /* the old id leaves the index, the new one enters */
        p->used = 0;
        p->info.id[0] = 0;
        return;
      }
    } else {
      uint32_t mask = el->pidx_cap - 1, j = id_hash(p->info.id) & mask;
      while (el->pidx[j]) j = (j + 1) & mask;
      el->pidx[j] = (uint32_t)(p - el->peers) + 1;
    }
  }
  if (cl_el_node_set(&p->info, info->id, info->name, info->address, info->flags, info->tags)) {
    /* out of memory: it keeps its id (the index holds it) and no strings until it
     * connects again */
    logf_(el, CL_EL_LOG_ERROR, "out of memory: %s's record is not updated", info->id);
    return;
  }
  p->up = 1;
  p->pub_sent_ms = 0;
  p->have_known = 0; /* it may have restarted */
  p->foreign = 0; /* a new connection: it may have been given the right data */
  /* greet it now rather than next round; it alone: a round to every peer for each of a
   * thousand nodes joining at once was a million heartbeats */
  if (el->mode == CL_EL_LEADER) send_hb(el, p);
}

void cl_el_step(cl_el *el, uint64_t now_ms, const cl_el_input *in, cl_el_effects *out) {
  if (now_ms > el->now) el->now = now_ms;
  el->out = out;
  if (!el->booted) {
    el->booted = 1;
    el->candidate_since = el->now;
    /* give a rebooted node time to hear from an existing master first */
    el->election_at = el->now + el->cfg.election_initial_ms + rnd_below(el, el->cfg.election_initial_ms + 1);
  }
  switch (in ? in->kind : CL_EL_IN_TICK) {
  case CL_EL_IN_TICK:
    break;
  case CL_EL_IN_PEER_UP:
    peer_up(el, &in->peer);
    break;
  case CL_EL_IN_PEER_DOWN: {
    peer *p = peer_get(el, in->peer_id);
    if (!p) break;
    p->up = 0;
    if (el->mode == CL_EL_FOLLOWER && !strcmp(el->leader, p->info.id))
      become_candidate(el, 1, "connection to the master closed");
    break;
  }
  case CL_EL_IN_MESSAGE:
    if (in->peer_id) on_message(el, in->peer_id, in->data, in->len);
    break;
  case CL_EL_IN_REQUEST_UPDATE:
  case CL_EL_IN_REQUEST_EXCLUDE:
  case CL_EL_IN_REQUEST_CLEAR_EXCLUSIONS:
    new_request(el, in);
    break;
  case CL_EL_IN_LUA_LAG:
    if (in->flag && !el->lua_lag && el->mode == CL_EL_LEADER) {
      el->lua_lag = 1;
      become_candidate(el, 0, "Lua has not answered for longer than the step-down threshold");
    }
    el->lua_lag = in->flag ? 1 : 0;
    break;
  }
  /* timers run only on ticks: the effects of a message are then the effects
   * of that message alone (the simulator checks pre-votes persist nothing) */
  if (!in || in->kind == CL_EL_IN_TICK) timers(el);
  /* requests asked here may be handed to this very node as master, and a
   * commit may complete them or reveal a master: settle it all within this
   * step, so the next input's effects are its own */
  for (int round = 0; round < 2; round++) {
    observe(el);
    check_origin_reqs(el);
    maybe_publish(el);
  }
  observe(el);
  el->out = NULL;
}

uint64_t cl_el_next_deadline(const cl_el *el) {
  if (!el->booted) return 0;
  uint64_t d = UINT64_MAX;
  if (el->mode == CL_EL_CANDIDATE) d = el->election_at;
  if (el->mode == CL_EL_FOLLOWER) d = el->leader_contact + leader_to(el);
  if (el->mode == CL_EL_LEADER) {
    d = el->hb_at;
    if (el->publishing && el->pub_start + publish_to(el) < d) d = el->pub_start + publish_to(el);
    if (!el->publishing && el->mdirty && el->last_pub_at + batch_ms(el) < d) d = el->last_pub_at + batch_ms(el);
  }
  for (int i = 0; i < MAX_REQS; i++)
    if (el->oreq[i].used && el->oreq[i].deadline < d) d = el->oreq[i].deadline;
  return d;
}

void cl_el_set_grace(cl_el *el, uint32_t grace_ms) {
  /* bounded so that no sum with a timeout or a time can wrap */
  el->grace_ms = grace_ms > CL_EL_GRACE_MAX_MS ? CL_EL_GRACE_MAX_MS : grace_ms;
}
uint32_t cl_el_grace(const cl_el *el) { return el->grace_ms; }
void cl_el_set_heartbeat(cl_el *el, uint32_t hb_ms) {
  el->hb_ms = hb_ms > CL_EL_GRACE_MAX_MS ? CL_EL_GRACE_MAX_MS : hb_ms;
  /* a shorter interval takes effect at once, not after the longer one's wait */
  uint64_t hb = hb_interval(el);
  if (el->mode == CL_EL_LEADER && el->hb_at > el->now + hb) el->hb_at = (el->now / hb + 1) * hb;
}
uint64_t cl_el_term(const cl_el *el) { return el->term; }
cl_el_mode cl_el_get_mode(const cl_el *el) { return el->mode; }
const char *cl_el_master_id(const cl_el *el) { return el->obs_master[0] ? el->obs_master : NULL; }
const char *cl_el_master_name(const cl_el *el) { return el->obs_master[0] ? el->obs_master_name : NULL; }
const cl_el_state *cl_el_committed(const cl_el *el) { return &el->app; }
const cl_el_state *cl_el_accepted(const cl_el *el) { return &el->acc; }
int cl_el_accepted_is_committed(const cl_el *el) { return el->acc_committed; }
const char *cl_el_self_id(const cl_el *el) { return el->self.id; }
const char *cl_el_cluster_id(const cl_el *el) { return my_cluster_id(el); }
uint64_t cl_el_refused_messages(const cl_el *el) { return el->refused_msgs; }
uint64_t cl_el_refused_nodes(const cl_el *el) { return el->refused_nodes; }
uint32_t cl_el_peer_count(const cl_el *el) { return el->n_peers; }

size_t cl_el_refused_peers(const cl_el *el, cl_el_refused *out, size_t max) {
  size_t n = 0;
  for (uint32_t i = 0; i < el->n_peers; i++) {
    const peer *p = &el->peers[i];
    if (!p->used || !p->up || !p->foreign) continue;
    if (n < max) out[n].name = p->info.name, out[n].cluster_id = p->foreign_cid;
    n++;
  }
  return n;
}

cl_el_health cl_el_get_health(const cl_el *el) {
  if (!el->obs_master[0]) return CL_EL_RED;
  const cl_el_vconfig *c = &el->app.accepted_config;
  for (uint32_t i = 0; i < c->n; i++)
    if (cl_vc_is_placeholder(c->ids[i]) || !cl_state_node(&el->app, c->ids[i])) return CL_EL_YELLOW;
  return CL_EL_GREEN;
}

const char *cl_el_health_str(cl_el_health h) { return h == CL_EL_GREEN ? "green" : h == CL_EL_YELLOW ? "yellow" : "red"; }

uint32_t cl_el_quorum_size(const cl_el *el) {
  const cl_el_vconfig *c = el->app.accepted_config.n ? &el->app.accepted_config : &el->acc.accepted_config;
  return c->n ? cl_el_quorum(c->n) : 0;
}

int cl_el_has_quorum(const cl_el *el) { return el->obs_master[0] != 0; }

int cl_el_unsafe_bootstrap(const uint8_t *persisted, size_t len, const char *self_id, uint8_t **out, size_t *outlen,
                           char *err, size_t errlen) {
  uint64_t term;
  int committed;
  cl_el_state st;
  cl_el_state_init(&st);
  if (!self_id || !self_id[0] || strlen(self_id) > CL_EL_ID_MAX) {
    snprintf(err, errlen, "unsafe-bootstrap: bad node id");
    return -1;
  }
  if (cl_el_persist_decode(persisted, len, &term, &st, &committed, err, errlen)) return -1;
  if (!st.cluster_id[0]) {
    snprintf(err, errlen, "unsafe-bootstrap: this node never joined a cluster; nothing to recover");
    cl_el_state_clear(&st);
    return -1;
  }
  st.committed_config.n = st.accepted_config.n = 0;
  if (cl_vc_add(&st.committed_config, self_id) || cl_vc_add(&st.accepted_config, self_id)) {
    snprintf(err, errlen, "unsafe-bootstrap: out of memory");
    cl_el_state_clear(&st);
    return -1;
  }
  st.n_excl = 0;
  /* A new cluster id, as Elasticsearch's tool does: a node still holding the old state
   * (it may come back and elect a master of its own with the old configuration) is then
   * refused as another cluster's instead of merging silently into the new term. */
  uint8_t rid[16];
  if (sodium_init() < 0) {
    snprintf(err, errlen, "unsafe-bootstrap: libsodium failed to initialise");
    cl_el_state_clear(&st);
    return -1;
  }
  randombytes_buf(rid, sizeof rid);
  for (size_t i = 0; i < sizeof rid; i++) snprintf(st.cluster_id + 2 * i, 3, "%02x", rid[i]);
  /* a fresh term and version: no (term, version) of the old cluster is reused
   * with different content, and no vote of the old term carries over */
  term += 1;
  st.term = term;
  st.version += 1;
  scpy(st.master_id, sizeof st.master_id, "");
  int rc = cl_el_persist_encode(term, &st, 1, out, outlen);
  cl_el_state_clear(&st);
  if (rc) snprintf(err, errlen, "unsafe-bootstrap: out of memory");
  return rc;
}
