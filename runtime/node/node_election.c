/* The election core's glue: feeds it transport events and time, performs its effects in
 * order (a PERSIST is durable before anything after it happens: RULE E10 of
 * docs/design.md), and reports to Lua. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "node/el_driver.h"
#include "node/node_internal.h"

static const double persist_bounds[] = {.001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 5};
static const double rtt_bounds[] = {.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .1};

/* write, fsync, rename, fsync the directory: a reader sees the old file or the new one */
int cl_node_write_atomic(const char *path, const uint8_t *data, size_t len, char *err, size_t errlen) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) goto fail;
  for (size_t off = 0; off < len;) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      close(fd);
      goto fail;
    }
    off += (size_t)w;
  }
  if (fsync(fd) != 0) {
    close(fd);
    goto fail;
  }
  if (close(fd) != 0) goto fail;
  if (rename(tmp, path) != 0) goto fail;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  else
    snprintf(dir, sizeof dir, ".");
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) goto fail;
  int r = fsync(dfd);
  close(dfd);
  if (r != 0) goto fail;
  return 0;
fail:
  snprintf(err, errlen, "%s: %s", path, strerror(errno));
  return -1;
}

/* Lazy writes (RULE E14) run on a worker thread, so a node outside the voting
 * configuration never blocks its control loop on an fsync. One mutex orders them with
 * the durable writes on the loop: a durable write bumps persist_gen, and a lazy write
 * queued before it finds the generation moved and writes nothing (the file already
 * holds a newer state). At most one lazy write is in flight; a later one waits in
 * lazy_next (the newest wins). */
typedef struct lazy_job {
  uv_work_t w;
  cl_node *n;
  uint64_t gen;
  uint8_t *data;
  size_t len;
  int rc, skipped;
  double ms;
  char err[512];
} lazy_job;

static uv_mutex_t persist_mu;
static int persist_mu_ready;
static uint64_t persist_gen;  /* written on the loop thread, under persist_mu */
static lazy_job *lazy_inflight, *lazy_next;
static int lazy_open;         /* the election runs: after_work may use the node */

static void persist(cl_node *n, const uint8_t *data, size_t len) {
  char err[512];
  uint64_t t0 = uv_hrtime();
  uv_mutex_lock(&persist_mu);
  persist_gen++;
  int rc = cl_node_write_atomic(n->state_path, data, len, err, sizeof err);
  uv_mutex_unlock(&persist_mu);
  if (rc != 0) {
    /* carrying on after a failed fsync could lose a vote or an accepted state */
    cl_log(CL_LOG_ERROR, "election", NULL, "cannot persist the election state (%s): stopping the node", err);
    cl_log_flush(1000); /* _exit skips the exit handlers that write the log */
    _exit(74);
  }
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  cl_histogram_observe(&n->persist_seconds, ms / 1000.0);
  n->persist_count++;
  if (ms > 500) cl_log(CL_LOG_WARN, "election", NULL, "slow fsync: persisting took %.0f ms", ms);
}

static void lazy_work(uv_work_t *w) {
  lazy_job *j = w->data;
  uint64_t t0 = uv_hrtime();
  uv_mutex_lock(&persist_mu);
  if (j->gen != persist_gen)
    j->skipped = 1; /* a durable write came after it: the file is newer already */
  else
    j->rc = cl_node_write_atomic(j->n->state_path, j->data, j->len, j->err, sizeof j->err);
  uv_mutex_unlock(&persist_mu);
  j->ms = (double)(uv_hrtime() - t0) / 1e6;
}

static void lazy_start(lazy_job *j);

static void lazy_done(uv_work_t *w, int status) {
  lazy_job *j = w->data;
  lazy_inflight = NULL;
  if (status == 0 && j->rc != 0) {
    cl_log(CL_LOG_ERROR, "election", NULL, "cannot persist the election state (%s): stopping the node", j->err);
    cl_log_flush(1000);
    _exit(74);
  }
  if (lazy_open && status == 0 && !j->skipped) {
    cl_histogram_observe(&j->n->persist_seconds, j->ms / 1000.0);
    j->n->persist_count++;
    if (j->ms > 500) cl_log(CL_LOG_WARN, "election", NULL, "slow fsync: writing the state lazily took %.0f ms", j->ms);
  }
  free(j->data);
  free(j);
  if (lazy_next) {
    lazy_job *nx = lazy_next;
    lazy_next = NULL;
    if (lazy_open) lazy_start(nx);
    else free(nx->data), free(nx);
  }
}

static void lazy_start(lazy_job *j) {
  lazy_inflight = j;
  j->w.data = j;
  if (uv_queue_work(&j->n->c->loop, &j->w, lazy_work, lazy_done) != 0) {
    lazy_inflight = NULL;
    persist(j->n, j->data, j->len); /* no worker: write it here */
    free(j->data);
    free(j);
  }
}

static void emit_committed(cl_node *n) {
  const cl_el_state *st = cl_el_committed(n->el);
  if (!st) return;
  if (cl_node_reporting(n)) {
    const char *master = cl_el_master_name(n->el);
    cl_node_report(n, "state_committed",
                   json_pack("{s:I, s:I, s:o, s:i}", "version", (json_int_t)st->version, "term", (json_int_t)st->term,
                             "master", master ? json_string(master) : json_null(), "nodes", (int)st->n_nodes));
  }
  /* Lua gets what changed since the state it was last given (it keeps that one and
   * patches it), the whole state only the first time or for another cluster: the whole
   * state on every commit was O(N) allocations per node per commit, on both threads, at
   * the moment a failover or a forming cluster has the least CPU to spare (at 300 nodes
   * on 2 cores, jansson, cjson and LuaJIT were about a fifth of a failover's samples). A
   * change must not be lost or folded into another, so it is queued with CL_Q_FORCE; the
   * base moves only once Lua is sure to get it. */
  int delta = n->lua_state_set && !strcmp(n->lua_state.cluster_id, st->cluster_id);
  json_t *j = delta ? cl_node_state_json_delta(n, &n->lua_state, st) : cl_node_state_json(n, st);
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) return;
  if (cl_node_emit(n, CL_EVT_NODE_COMMITTED, NULL, s, strlen(s), 0, (int64_t)st->version, CL_Q_FORCE) == 0) {
    if (cl_el_state_copy(&n->lua_state, st) == 0) n->lua_state_set = 1;
    else n->lua_state_set = 0; /* the next one goes whole */
  }
  free(s);
}

/* ---- the driver's io on the control loop ---- */

static uint64_t io_now(void *ud) {
  cl_node *n = ud;
  uv_update_time(&n->c->loop);
  return uv_now(&n->c->loop);
}

static void io_send(void *ud, const char *peer_id, const uint8_t *data, size_t len) {
  cl_node *n = ud;
  cl_node_peer *p = cl_node_peer_by_id(n, peer_id);
  if (p && p->up) cl_transport_send(n->t, p->name, CL_CH_ELECTION, data, len);
}

static int io_persist(void *ud, cl_el_persist_kind kind, const uint8_t *data, size_t len) {
  (void)kind;
  persist(ud, data, len); /* exits the process if the write fails */
  return 0;
}

static int io_persist_lazy(void *ud, cl_el_persist_kind kind, const uint8_t *data, size_t len) {
  (void)kind;
  cl_node *n = ud;
  lazy_job *j = calloc(1, sizeof *j);
  if (!j) return -1;
  j->data = malloc(len ? len : 1);
  if (!j->data) {
    free(j);
    return -1;
  }
  memcpy(j->data, data, len);
  j->len = len;
  j->n = n;
  j->gen = persist_gen; /* only this thread writes it */
  if (lazy_inflight) { /* one at a time; the newest waits */
    if (lazy_next) free(lazy_next->data), free(lazy_next);
    lazy_next = j;
    return 0;
  }
  lazy_start(j);
  return 0;
}

static void io_event(void *ud, const cl_el_effect *e) {
  cl_node *n = ud;
  switch (e->event) {
  case CL_EL_EV_MASTER_CHANGED:
    n->elections++; /* the core logs the change itself */
    cl_node_emit(n, CL_EVT_NODE_MASTER, e->new_master, e->old_master, strlen(e->old_master), 0, (int64_t)e->term,
                 CL_Q_FORCE);
    if (cl_node_reporting(n))
      cl_node_report(n, "master_changed",
                     json_pack("{s:o, s:o, s:I}", "master", *e->new_master ? json_string(e->new_master) : json_null(),
                               "previous", *e->old_master ? json_string(e->old_master) : json_null(), "term",
                               (json_int_t)e->term));
    break;
  case CL_EL_EV_QUORUM_LOST:
  case CL_EL_EV_QUORUM_REGAINED:
    cl_log(e->event == CL_EL_EV_QUORUM_LOST ? CL_LOG_WARN : CL_LOG_INFO, "election", NULL, "quorum %s",
           e->event == CL_EL_EV_QUORUM_LOST ? "lost" : "regained");
    cl_node_emit(n, CL_EVT_NODE_QUORUM, NULL, NULL, 0, 0, e->event == CL_EL_EV_QUORUM_REGAINED, CL_Q_FORCE);
    if (cl_node_reporting(n))
      cl_node_report(n, e->event == CL_EL_EV_QUORUM_LOST ? "quorum_lost" : "quorum_regained",
                     json_pack("{s:I}", "term", (json_int_t)cl_el_term(n->el)));
    break;
  case CL_EL_EV_STATE_COMMITTED:
    emit_committed(n);
    break;
  }
}

static void io_log(void *ud, int level, const char *msg) {
  (void)ud;
  int lvl = level == CL_EL_LOG_DEBUG  ? CL_LOG_DEBUG
            : level == CL_EL_LOG_INFO ? CL_LOG_INFO
            : level == CL_EL_LOG_WARN ? CL_LOG_WARN
                                      : CL_LOG_ERROR;
  cl_log(lvl, "election", NULL, "%s", msg);
}

static void io_complete(void *ud, uint64_t req_id, const char *code, const char *msg, uint64_t version) {
  cl_node *n = ud;
  cl_node_req r;
  if (!cl_node_req_take(n, req_id, &r)) return; /* an id of a previous run of this node */
  if (r.origin == CL_REQ_FROM_ADMIN) {
    if (n->admin_ops) n->admin_ops->complete(n, r.priv, code, msg, version);
    return;
  }
  cl_node_emit(n, CL_EVT_NODE_DONE, strcmp(code, "OK") == 0 ? "" : code, msg, strlen(msg), r.origin_id,
               (int64_t)version, CL_Q_FORCE);
}

static void on_el_timer(uv_timer_t *t);

static void io_rearm(void *ud, uint64_t d) {
  cl_node *n = ud;
  if (d == UINT64_MAX) {
    uv_timer_stop(&n->el_timer);
    return;
  }
  uint64_t now = uv_now(&n->c->loop);
  n->el_due = d > now ? d : now;
  if (d > now) n->el_after_poll = 0;
  /* never 0: armed from on_el_timer, libuv would run it again in the same pass, without
   * polling (transport.c, tick_arm) */
  uv_timer_start(&n->el_timer, on_el_timer, d > now ? d - now : 1, 0);
}

static const cl_eldrv_io node_io = {
    .now_ms = io_now, .send = io_send, .persist = io_persist, .persist_lazy = io_persist_lazy, .event = io_event,
    .log = io_log,    .complete = io_complete, .rearm = io_rearm,
};

/* ---- the pinned peers: on a voting node, the other voting nodes ----
 *
 * A voting node watches every other voting node (cl_transport_pin), besides its ring
 * successors: cut off from the rest, it loses them within one timeout, so its
 * quorum_lost comes within one timeout too, not after the ring's cascade (about
 * (N - 1) / watchers timeouts). Only voting nodes pin: every node watching the voting
 * nodes (or the master) would have them beat to N - 1 peers; a follower's view of the
 * master is bounded by the election's own leader check (design.md §4). */

static int vconfig_has(const cl_el_vconfig *c, const char *id) {
  for (uint32_t i = 0; i < c->n; i++)
    if (!strcmp(c->ids[i], id)) return 1;
  return 0;
}

static void pins_add(cl_node *n, const cl_el_vconfig *c, const char **names, size_t *k) {
  for (uint32_t i = 0; i < c->n && *k < CL_PIN_MAX; i++) {
    cl_node_peer *p = cl_node_peer_by_id(n, c->ids[i]);
    if (!p) continue; /* a placeholder, or a node not seen yet */
    int dup = 0;
    for (size_t j = 0; j < *k && !dup; j++) dup = !strcmp(names[j], p->name);
    if (!dup) names[(*k)++] = p->name;
  }
}

static void pins_update(cl_node *n) {
  const cl_el_state *cs = cl_el_committed(n->el), *as = cl_el_accepted(n->el);
  const char *self = cl_el_self_id(n->el);
  const cl_el_vconfig *cfgs[3] = {cs ? &cs->accepted_config : NULL, cs ? &cs->committed_config : NULL,
                                  as ? &as->accepted_config : NULL};
  int voting = 0;
  for (int i = 0; i < 3; i++) voting |= cfgs[i] && self && vconfig_has(cfgs[i], self);
  /* a voting node that may lead holds a connection to every member (a large cluster):
   * if it becomes master, its requests for joins and its publications need no dial */
  cl_transport_reach_all(n->t, voting && n->el_can_lead);
  /* a cheap signature of what the set depends on: redone only when it changes */
  uint64_t sig = 1469598103934665603ull;
  for (int i = 0; voting && i < 3; i++)
    for (uint32_t j = 0; cfgs[i] && j < cfgs[i]->n; j++)
      for (const char *c = cfgs[i]->ids[j]; *c; c++) sig = (sig ^ (uint8_t)*c) * 1099511628211ull;
  /* a node seen later may resolve an id of the configurations: the peer count matters
   * to a voting node only. A node that votes in none pins nobody, and each new peer
   * made it clear the pins and recompute its ring again: O(N) times while a cluster
   * forms (issue 18) */
  sig ^= (voting ? (uint64_t)n->n_peers << 1 : 0) | (uint64_t)voting;
  if (sig == n->pins_sig && n->pins_known) return;
  n->pins_sig = sig;
  n->pins_known = 1;
  const char *names[CL_PIN_MAX];
  size_t k = 0;
  for (int i = 0; voting && i < 3; i++)
    if (cfgs[i]) pins_add(n, cfgs[i], names, &k);
  cl_transport_pin(n->t, names, k);
}

/* Local health (design.md §4): while this node's loop runs late, the transport gives
 * every connection more time (detector.h); the election's checks get the same share,
 * awareness x leader_timeout_ms, before every step, so a starved follower does not call
 * a healthy master gone, nor a starved master its followers. In a large cluster (above
 * transport.full_mesh_max) the checks also get what the transport's large timeout adds
 * to its own (large_timeout_ms - check_timeout_ms): at 300 nodes on 2 cores a master
 * that publishes to and heartbeats every node was starved past 400 ms often enough that
 * the elections never ended. A killed master is still found at once (its connections
 * close, which starts an election); a silent one after large_timeout_ms, as every
 * silent node of a large cluster (design.md §4). Once every member is large, the master
 * heartbeats at the transport's large_heartbeat_ms (half that timeout, 1 s)
 * rather than every 200 ms: a heartbeat and its answer per follower are the master's
 * O(N) share, and a follower's wake-ups at rest (issue 18). */
static void step(cl_node *n, const cl_el_input *in) {
  if (n->t && n->el) {
    /* in 64 bits: a check_timeout_ms past 2^32 / 3 would wrap in 32 */
    uint64_t g = (uint64_t)cl_transport_awareness(n->t) * n->el_grace_unit;
    uint32_t large = cl_transport_large_timeout(n->t);
    if (large > n->el_grace_unit) g += large - n->el_grace_unit;
    cl_el_set_grace(n->el, g > CL_EL_GRACE_MAX_MS ? CL_EL_GRACE_MAX_MS : (uint32_t)g);
    uint32_t hb = cl_transport_large_heartbeat(n->t);
    cl_el_set_heartbeat(n->el, hb > n->el_hb_ms && large > n->el_grace_unit ? hb : 0);
  }
  cl_eldrv_input(&n->drv, in);
  if (n->t && n->el) pins_update(n);
}

void cl_node_election_input(cl_node *n, const cl_el_input *in) {
  if (!n->el) return;
  step(n, in);
}

int cl_node_election_request(cl_node *n, cl_el_input *in, int origin, uint64_t origin_id, void *priv) {
  if (!n->el) return 0; /* not started: the asker's own deadline answers */
  uint64_t id = cl_node_req_add(n, origin, origin_id, priv);
  if (!id) return -1;
  in->req_id = id;
  step(n, in);
  return 0;
}


static void on_el_timer(uv_timer_t *t) {
  cl_node *n = t->data;
  /* As the transport's tick: a late timer means this node was not running, and the
   * master's heartbeats may be waiting unread (libuv runs timers before it polls). So a
   * late tick looks again right after the poll, which decides even if late too (a node
   * that stays saturated must still act, within the grace's bound). */
  uint64_t now = uv_now(&n->c->loop);
  if (!n->el_after_poll && now > n->el_due + n->el_hb_ms / 2) {
    n->el_after_poll = 1;
    n->el_due = now + 1;
    uv_timer_start(&n->el_timer, on_el_timer, 1, 0); /* after the poll: 0 would run before it */
    return;
  }
  n->el_after_poll = 0;
  cl_el_input in = {.kind = CL_EL_IN_TICK};
  step(n, &in);
}

void cl_node_election_peer_up(cl_node *n, const cl_peer_info *p) {
  if (!n->el || !p->node_id) return;
  cl_el_input in = {.kind = CL_EL_IN_PEER_UP, .peer_id = p->node_id};
  in.peer.id = p->node_id;
  in.peer.name = p->name;
  in.peer.address = p->address;
  in.peer.flags = cl_node_roles_flags(p->roles);
  in.peer.tags = p->roles;
  step(n, &in);
}

void cl_node_election_peer_down(cl_node *n, const char *name) {
  cl_node_peer *p = cl_node_peer_by_name(n, name);
  if (!n->el || !p || !p->id[0]) return;
  cl_el_input in = {.kind = CL_EL_IN_PEER_DOWN, .peer_id = p->id};
  step(n, &in);
}

void cl_node_election_message(cl_node *n, const char *from, const uint8_t *data, size_t len) {
  cl_node_peer *p = cl_node_peer_by_name(n, from);
  if (!n->el || !p || !p->id[0]) return;
  cl_el_input in = {.kind = CL_EL_IN_MESSAGE, .peer_id = p->id, .data = data, .len = len};
  step(n, &in);
}

static uint8_t *read_file(const char *path, size_t *len, int *missing) {
  *missing = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    *missing = errno == ENOENT;
    return NULL;
  }
  uint8_t *buf = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 65536;
      if (cap > (256u << 20)) break;
      uint8_t *nb = realloc(buf, cap);
      if (!nb) break;
      buf = nb;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  fclose(f);
  *len = n;
  return buf;
}

int cl_node_election_start(cl_node *n, char *err, size_t errlen) {
  cl_node_config *cfg = n->cfg;
  snprintf(n->state_path, sizeof n->state_path, "%s/cluster_state", cfg->data);
  cl_histogram_init(&n->persist_seconds, persist_bounds, sizeof persist_bounds / sizeof *persist_bounds);
  cl_histogram_init(&n->rtt_seconds, rtt_bounds, sizeof rtt_bounds / sizeof *rtt_bounds);
  cl_el_config ec;
  cl_el_config_defaults(&ec);
  cl_el_config_checks(&ec, cfg->el_heartbeat_ms, cfg->el_check_timeout_ms);
  n->el_grace_unit = ec.leader_timeout_ms;
  n->el_hb_ms = ec.hb_interval_ms;
  if (cfg->el_max_exclusions) ec.max_exclusions = cfg->el_max_exclusions;
  if (cfg->el_max_nodes) ec.max_nodes = cfg->el_max_nodes;
  if (cfg->el_max_voting_nodes) ec.max_voting_nodes = cfg->el_max_voting_nodes;
  randombytes_buf(&ec.seed, sizeof ec.seed);
  randombytes_buf(&n->req_salt, sizeof n->req_salt);
  size_t nimn = 0;
  if (cfg->initial_master_nodes && *cfg->initial_master_nodes) {
    n->imn_buf = strdup(cfg->initial_master_nodes);
    for (char *save = NULL, *tok = strtok_r(n->imn_buf, ",", &save); tok && nimn < CL_EL_MAX_INITIAL;
         tok = strtok_r(NULL, ",", &save))
      n->imn_list[nimn++] = tok;
  }
  ec.initial_master_nodes = n->imn_list;
  ec.n_initial_master_nodes = nimn;
  n->lua_stepdown_ms = cfg->el_lua_stepdown_ms ? cfg->el_lua_stepdown_ms : 30000;

  size_t len = 0;
  int missing = 0;
  uint8_t *persisted = read_file(n->state_path, &len, &missing);
  if (!persisted && !missing) {
    snprintf(err, errlen, "EIO: cannot read %s: %s", n->state_path, strerror(errno));
    return -1;
  }
  cl_el_node_info self = {.id = cfg->id, .name = cfg->name, .address = NULL, .flags = cl_node_roles_flags(cfg->roles),
                          .tags = cfg->roles};
  n->el_can_lead = (self.flags & CL_EL_F_MASTER) && !(self.flags & CL_EL_F_VOTING_ONLY);
  char addr[CL_NODE_NAME_MAX + 1];
  const char *at = strchr(cfg->name, '@');
  snprintf(addr, sizeof addr, "%s", at ? at + 1 : cfg->name);
  self.address = addr;
  char eerr[256] = "";
  cl_el *el = cl_el_new(&ec, &self, persisted, len, eerr, sizeof eerr);
  free(persisted);
  if (!el) {
    snprintf(err, errlen, "EINVAL: election: %s (state file %s)", eerr, n->state_path);
    return -1;
  }
  if (!persist_mu_ready) {
    if (uv_mutex_init(&persist_mu) != 0) {
      snprintf(err, errlen, "EIO: election: cannot create a mutex");
      cl_el_free(el);
      return -1;
    }
    persist_mu_ready = 1;
  }
  lazy_open = 1;
  n->io = node_io;
  n->io.ud = n;
  cl_eldrv_init(&n->drv, el, &n->io);
  n->el = el;
  cl_el_state_init(&n->lua_state);
  n->lua_state_set = 0;
  uv_timer_init(&n->c->loop, &n->el_timer);
  n->el_timer.data = n;
  return 0;
}

/* The first step may bootstrap and persist: it runs only once everything that can fail
 * at start (ports, data directory) has been checked. */
void cl_node_election_run(cl_node *n) {
  if (!n->el) return;
  cl_el_input in = {.kind = CL_EL_IN_TICK};
  step(n, &in);
}

void cl_node_election_stop(cl_node *n) {
  if (!n->el) return;
  cl_eldrv_flush(&n->drv); /* a clean stop keeps a state written lazily (RULE E14) */
  /* a lazy write still queued is older than that flush (it bumped the generation): its
   * worker writes nothing, and its completion no longer touches the node */
  lazy_open = 0;
  uv_close((uv_handle_t *)&n->el_timer, NULL);
  cl_eldrv_free(&n->drv);
  n->el = NULL;
  cl_el_state_clear(&n->lua_state);
  n->lua_state_set = 0;
  cl_histogram_free(&n->persist_seconds);
  cl_histogram_free(&n->rtt_seconds);
  free(n->imn_buf);
  n->imn_buf = NULL;
}
