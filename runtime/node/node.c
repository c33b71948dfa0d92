/* The node on the control loop: routes commands from Lua to the transport and the
 * election, and their events back. A plain script starts none of it. */
#include "node/node.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sodium.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/tick_grid.h"
#include "node/node_internal.h"
#include "node/keys.h"


/* The transport forgot it: so does the node. */
static void on_peer_forgotten(void *ud, const char *name) { cl_node_peer_forget(ud, name); }

static int in_config(const cl_el_state *st, const char *id) {
  if (!st) return 0;
  for (uint32_t i = 0; i < st->accepted_config.n; i++)
    if (strcmp(st->accepted_config.ids[i], id) == 0) return 1;
  return 0;
}

/* A departed node stays known while the voting configuration (committed, or accepted
 * and about to be) holds it: it may be needed for a quorum, and an operator excludes
 * it by name. */
static int on_keep(void *ud, const char *name, const char *node_id) {
  cl_node *n = ud;
  (void)name;
  if (!n->el || !node_id || !*node_id) return 0;
  return in_config(cl_el_committed(n->el), node_id) || in_config(cl_el_accepted(n->el), node_id);
}

/* ---- per-peer send accounting, shared by both threads ---- */

typedef struct peerq_entry {
  struct peerq_entry *next;
  cl_peerq q;
  char name[];
} peerq_entry;

cl_peerq *cl_node_peerq(cl_node *n, const char *name) {
  if (!n) return NULL;
  uv_mutex_lock(&n->peerq_mu);
  peerq_entry *e = n->peerq_head;
  for (; e; e = e->next)
    if (strcmp(e->name, name) == 0) break;
  if (!e) {
    size_t len = strlen(name);
    e = calloc(1, sizeof *e + len + 1);
    if (e) {
      memcpy(e->name, name, len + 1);
      e->next = n->peerq_head;
      n->peerq_head = e;
    }
  }
  uv_mutex_unlock(&n->peerq_mu);
  return e ? &e->q : NULL;
}

static void peerq_free_all(cl_node *n) {
  uv_mutex_lock(&n->peerq_mu);
  peerq_entry *e = n->peerq_head;
  while (e) {
    peerq_entry *next = e->next;
    free(e);
    e = next;
  }
  n->peerq_head = NULL;
  uv_mutex_unlock(&n->peerq_mu);
}

void cl_node_msg_taken(cl_node *n, size_t bytes) {
  if (n) atomic_fetch_sub(&n->msg_backlog, (int64_t)bytes);
}

cl_node *cl_node_new(void) {
  cl_node *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  if (uv_mutex_init(&n->peerq_mu) != 0) {
    free(n);
    return NULL;
  }
  return n;
}

void cl_node_free(cl_node *n) {
  if (!n) return;
  peerq_free_all(n);
  uv_mutex_destroy(&n->peerq_mu);
  for (int i = 0; i < n->n_peers; i++) free(n->peers[i].name);
  free(n->peers);
  free(n->pidx);
  free(n);
}

void cl_node_config_free(cl_node_config *c) {
  if (!c) return;
  char **strs[] = {&c->name, &c->id, &c->cluster, &c->roles, &c->data, &c->admin, &c->admin_token,
                   &c->log_subsys, &c->initial_master_nodes};
  for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) free(*strs[i]);
  if (c->cookie) {
    memset(c->cookie, 0, c->cookie_len);
    free(c->cookie);
  }
  if (c->keyring) {
    memset(c->keyring, 0, c->keyring_len);
    free(c->keyring);
  }
  free(c->keyring_path);
  free(c);
}

/* ---- transport callbacks (control loop) ---- */

/* Tells Lua the peer is up. Its data connection, if any, comes later: on demand. */
static void emit_up(cl_node *n, cl_node_peer *pp, const cl_evt_up *up) {
  pp->lua_up = 1;
  pp->incarnation = up->incarnation;
  cl_msg *m = cl_msg_new(CL_EVT_NODE_UP, pp->name, up, sizeof *up);
  if (m && cl_control_emit(n->c, m, CL_Q_COALESCE) != 0) free(m);
}

/* Gives Lua a data connection with the peer (dc->fd < 0: the one Lua asked for could not
 * be opened, and an empty body says so). Forced into the queue: the socket must reach
 * Lua, or be closed here. */
static void emit_data(cl_node *n, cl_node_peer *pp, const cl_data_conn *dc) {
  size_t len = dc->fd < 0 ? 0 : sizeof(cl_evt_data) + dc->pre_out_len + dc->pre_in_len;
  uint8_t *body = len ? malloc(len) : NULL;
  if (len && !body) {
    close(dc->fd);
    len = 0; /* tell Lua it failed: it falls back to the control connection */
  }
  if (body) {
    cl_evt_data d;
    memset(&d, 0, sizeof d);
    d.fd = dc->fd;
    d.encrypt = dc->encrypt;
    memcpy(d.key_tx, dc->key_tx, 32);
    memcpy(d.key_rx, dc->key_rx, 32);
    memcpy(d.key_hs, dc->key_hs, 32);
    memcpy(d.key_sess, dc->key_sess, 32);
    memcpy(d.sid, dc->sid, 32);
    d.pre_out_len = (uint32_t)dc->pre_out_len;
    d.pre_in_len = (uint32_t)dc->pre_in_len;
    uint8_t *w = body;
    memcpy(w, &d, sizeof d);
    w += sizeof d;
    if (dc->pre_out_len) memcpy(w, dc->pre_out, dc->pre_out_len);
    w += dc->pre_out_len;
    if (dc->pre_in_len) memcpy(w, dc->pre_in, dc->pre_in_len);
    sodium_memzero(&d, sizeof d);
  }
  cl_msg *m = cl_msg_new(CL_EVT_NODE_DATA, pp->name, body, len);
  if (body) {
    sodium_memzero(body, len);
    free(body);
  }
  if (m) m->num = (int64_t)dc->incarnation;
  if (!m || cl_control_emit(n->c, m, CL_Q_FORCE) != 0) {
    if (m) {
      sodium_memzero((void *)cl_msg_body(m), m->body_len);
      free(m);
    }
    if (len) close(dc->fd);
  }
}

static void on_peer_up(void *ud, const cl_peer_info *p) {
  cl_node *n = ud;
  cl_node_peer *pp = cl_node_peer_add(n, p->name);
  if (pp) {
    pp->up = 1;
    snprintf(pp->id, sizeof pp->id, "%s", p->node_id ? p->node_id : "");
    cl_evt_up ev, *up = &ev;
    memset(up, 0, sizeof *up);
    up->rtt_us = p->rtt_us;
    up->incarnation = p->incarnation;
    snprintf(up->id, sizeof up->id, "%s", p->node_id ? p->node_id : "");
    snprintf(up->address, sizeof up->address, "%s", p->address ? p->address : "");
    snprintf(up->roles, sizeof up->roles, "%s", p->roles ? p->roles : "");
    up->data_ok = n->cfg->data_conn && p->data_conns;
    /* at once: a data connection opens only when either side first sends (a formation
     * that waited for one per pair cost a connection and a handshake each, issue 17) */
    emit_up(n, pp, up);
  }
  if (cl_node_reporting(n))
    cl_node_report(n, "node_up",
                   json_pack("{s:s, s:s, s:s, s:o, s:I}", "node", p->name, "node_id", p->node_id ? p->node_id : "",
                             "address", p->address ? p->address : "", "roles", cl_node_roles_json(p->roles),
                             "rtt_us", (json_int_t)p->rtt_us));
  cl_node_election_peer_up(n, p);
}

/* The transport's data connection for a peer (fd < 0: the one asked for could not be
 * opened), dialled for Lua's CL_CMD_NODE_DATA_OPEN or accepted from the peer. */
static void on_data_conn(void *ud, const cl_data_conn *dc) {
  cl_node *n = ud;
  cl_node_peer *pp = cl_node_peer_by_name(n, dc->name);
  if (!pp || !pp->up || !pp->lua_up || pp->incarnation != dc->incarnation) {
    /* the peer went down or came back meanwhile: its node_down (or new node_up) tells Lua */
    if (dc->fd >= 0) close(dc->fd);
    return;
  }
  if (dc->fd < 0)
    cl_log(CL_LOG_WARN, "node", NULL, "no data connection with %s: its messages use the control connection",
           dc->name);
  emit_data(n, pp, dc);
}

static void on_peer_down(void *ud, const char *name, const char *reason) {
  cl_node *n = ud;
  cl_node_peer *p = cl_node_peer_by_name(n, name);
  /* a node_down is never dropped; Lua hears only of peers it heard were up */
  if (!p || p->lua_up) {
    cl_msg *m = cl_msg_new(CL_EVT_NODE_DOWN, name, reason, strlen(reason));
    if (m && cl_control_emit(n->c, m, CL_Q_FORCE) != 0) free(m);
  }
  if (cl_node_reporting(n)) cl_node_report(n, "node_down", json_pack("{s:s, s:s}", "node", name, "reason", reason));
  cl_node_election_peer_down(n, name);
  if (p) p->up = p->lua_up = 0;
}

/* A peer whose election messages are refused because its data belongs to another
 * cluster (E11) has no say in this cluster's keys either, though it shares the cookie. */
static int foreign_peer(cl_node *n, const char *from) {
  if (!n->el) return 0;
  size_t k = cl_el_refused_peers(n->el, NULL, 0);
  if (!k) return 0;
  cl_el_refused *r = calloc(k, sizeof *r);
  if (!r) return 1; /* unsure: refuse */
  k = cl_el_refused_peers(n->el, r, k);
  int found = 0;
  for (size_t i = 0; i < k && !found; i++) found = r[i].name && strcmp(r[i].name, from) == 0;
  free(r);
  return found;
}

static void on_message(void *ud, const char *from, uint8_t channel, const uint8_t *data, size_t len) {
  cl_node *n = ud;
  if (channel == CL_CH_LUA) {
    int64_t cost = (int64_t)(len + sizeof(cl_msg) + strlen(from) + 2);
    if (atomic_load(&n->msg_backlog) + cost > CL_MSG_BACKLOG_MAX) {
      n->msgs_dropped++;
      uint32_t sup = 0;
      if (cl_ratelimit_allow(&n->drop_rl, uv_now(&n->c->loop), &sup))
        cl_log(CL_LOG_WARN, "node", NULL, "Lua is %lld MiB behind on messages: dropping (%u more not logged)",
               (long long)(atomic_load(&n->msg_backlog) >> 20), sup);
      return;
    }
    atomic_fetch_add(&n->msg_backlog, cost);
    cl_msg *m = cl_msg_new(CL_EVT_NODE_MSG, from, data, len);
    if (!m || cl_control_emit(n->c, m, CL_Q_FORCE) != 0) {
      free(m);
      atomic_fetch_sub(&n->msg_backlog, cost);
      n->msgs_dropped++;
    }
  }
  else if (channel == CL_CH_ELECTION)
    cl_node_election_message(n, from, data, len);
  else if (channel == CL_CH_KEYS && !foreign_peer(n, from))
    cl_node_keys_message(n, from, data, len);
}

/* ---- leaving: tell the peers, then let Lua exit ---- */

/* The peers have been told (every LEAVE written) or the wait is over: wake whoever
 * waits. The process exits as soon as this runs, not after a fixed delay. */
static void leave_finish(cl_node *n) {
  n->left = 1;
  uv_timer_stop(&n->leave_timer);
  if (n->leave_signal) {
    n->leave_signal = 0;
    cl_msg *m = cl_msg_new(CL_EVT_NODE_SHUTDOWN, NULL, NULL, 0);
    if (m && cl_control_emit(n->c, m, CL_Q_FORCE) != 0) free(m);
  }
  if (n->leave_sem) {
    uv_sem_post(n->leave_sem);
    n->leave_sem = NULL;
  }
}

static void on_leave_timer(uv_timer_t *t) {
  cl_node *n = t->data;
  if (!n->t || cl_transport_leaving(n->t) == 0 || uv_now(&n->c->loop) - n->leave_start_ms >= CL_LEAVE_WAIT_MS)
    leave_finish(n);
}

static void node_leave(cl_node *n) {
  if (n->left) {
    leave_finish(n);
    return;
  }
  if (n->leaving) return; /* the first leave's finish wakes this one too */
  n->leaving = 1;
  n->leave_start_ms = uv_now(&n->c->loop);
  if (n->t) cl_transport_leave(n->t);
  /* the LEAVE frames go out on this loop's next turn; look again every millisecond */
  uv_timer_start(&n->leave_timer, on_leave_timer, 1, 1);
}

static void on_signal(uv_signal_t *s, int signum) {
  cl_node *n = s->data;
  if (n->leaving) return;
  cl_log(CL_LOG_INFO, "node", NULL, "%s received: leaving the cluster", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  n->leave_signal = 1;
  node_leave(n);
}

static void sample_rtt(void *ud, uint32_t rtt_us) {
  cl_node *n = ud;
  if (n->rtt_seconds.counts) cl_histogram_observe(&n->rtt_seconds, rtt_us / 1e6);
}

/* The node's housekeeping: once a second at rest (the round-trip histogram's sample),
 * every DRAIN_BUSY_MS while a peer's send queue is full (so a sender learns soon that
 * it may send again). Nothing here runs more often than that when nothing happens. */
#define DRAIN_IDLE_MS 1000
#define DRAIN_BUSY_MS 50

static void on_drain(uv_timer_t *t);

/* Memory freed after a burst (a cluster forming, a wave of joins or departures: the
 * publications decoded, the connections and handshakes of the moment) stays in the
 * allocator's arenas unless it is handed back: at 300 nodes, 0.3 to 0.5 MiB of each
 * node's RssAnon at rest (issue 18 sets 4 MiB), measured with malloc_trim called by
 * hand. So once the membership and the committed state have been still for
 * TRIM_QUIET_MS after a change, the free pages go back to the kernel, once. A node at
 * rest changes nothing and trims nothing; a busy one trims at most every TRIM_QUIET_MS. */
#define TRIM_QUIET_MS 5000
/* how long the membership and the committed state have been still, at loop time now */
static uint64_t still_ms(cl_node *n, uint64_t now) {
  const cl_el_state *cs = n->el ? cl_el_committed(n->el) : NULL;
  uint64_t mark = (uint64_t)n->n_peers * 1000003u ^ (cs ? cs->version * 31u + cs->term : 0);
  if (mark != n->trim_mark) {
    n->trim_mark = mark;
    n->trim_changed_ms = now;
    n->trim_due = 1;
  }
  return now - n->trim_changed_ms;
}

static void trim_maybe(cl_node *n, uint64_t still) {
#ifdef __GLIBC__
  if (n->trim_due && still >= TRIM_QUIET_MS) {
    n->trim_due = 0;
    malloc_trim(0);
  }
#else
  (void)still;
#endif
}

static void drain_arm(cl_node *n, uint64_t delay_ms) {
  if (uv_is_active((uv_handle_t *)&n->drain_timer) && uv_timer_get_due_in(&n->drain_timer) <= delay_ms) return;
  uv_timer_start(&n->drain_timer, on_drain, delay_ms, 0);
}

void cl_node_drain_soon(cl_node *n) {
  if (n->running) drain_arm(n, DRAIN_BUSY_MS);
}

static void on_drain(uv_timer_t *t) {
  cl_node *n = t->data;
  uint64_t now = uv_now(&n->c->loop);
  /* at rest, on multiples of a second of the monotonic clock: the heartbeats' grid
   * (core/tick_grid.h), so this wakes the node no more often than they do */
  uint64_t next = cl_grid_delay(now, DRAIN_IDLE_MS);
  /* the heartbeat round-trip histogram gets one sample per peer per second (of the
   * grid: a tick a millisecond early must not skip one) */
  if (now / 1000 != n->rtt_sampled_ms / 1000) {
    n->rtt_sampled_ms = now;
    cl_transport_foreach_rtt(n->t, sample_rtt, n);
    uint64_t still = still_ms(n, now);
    trim_maybe(n, still);
    cl_node_keys_housekeep(n, now, still);
  }
  uint32_t limit = n->cfg && n->cfg->send_queue_max ? n->cfg->send_queue_max : (64u << 20);
  uv_mutex_lock(&n->peerq_mu);
  for (peerq_entry *e = n->peerq_head; e; e = e->next)
    if (atomic_load(&e->q.full)) {
      if (cl_transport_queued(n->t, e->name) < limit / 2)
        atomic_store(&e->q.full, 0);
      else
        next = DRAIN_BUSY_MS;
    }
  uv_mutex_unlock(&n->peerq_mu);
  drain_arm(n, next);
}

static void node_teardown(cl_node *n) {
  if (!n->running) return;
  if (n->admin_ops) n->admin_ops->stop(n);
  cl_node_lua_lag_stop(n);
  cl_node_election_stop(n);
  cl_node_reqs_free(n);
  uv_close((uv_handle_t *)&n->sigterm, NULL);
  uv_close((uv_handle_t *)&n->sigint, NULL);
  uv_close((uv_handle_t *)&n->drain_timer, NULL);
  uv_close((uv_handle_t *)&n->leave_timer, NULL);
  if (n->leave_sem) uv_sem_post(n->leave_sem);
  n->leave_sem = NULL;
  cl_transport_close(n->t, NULL, NULL);
  n->t = NULL;
  cl_node_keys_rotate_stop(n);
  cl_node_keys_stop(n);
  n->running = 0;
}

/* mkdir -p with mode 0700: the data directory holds the node's identity */
static int mkdir_p(const char *path, char *err, size_t errlen) {
  char buf[4096];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof buf) {
    snprintf(err, errlen, "EINVAL: --data: path is empty or too long");
    return -1;
  }
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != 0) continue;
    char c = *p;
    *p = 0;
    struct stat st;
    if (stat(buf, &st) != 0) {
      if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "EIO: --data %s: cannot create %s: %s", path, buf, strerror(errno));
        return -1;
      }
    } else if (!S_ISDIR(st.st_mode)) {
      snprintf(err, errlen, "EIO: --data %s: %s exists and is not a directory", path, buf);
      return -1;
    }
    if (c == 0) break;
    *p = c;
  }
  return 0;
}

/* The data directory and a new node's id are written only here, after every check that
 * can fail at start (both ports bound, the persisted state read): a node that cannot
 * start leaves no trace behind. */
static int prepare_data(cl_node_config *cfg) {
  if (mkdir_p(cfg->data, cfg->err, sizeof cfg->err) != 0) return -1;
  if (!cfg->new_id) return 0;
  char path[4200], line[CL_EL_ID_MAX + 2], werr[400];
  snprintf(path, sizeof path, "%s/node_id", cfg->data);
  int len = snprintf(line, sizeof line, "%s\n", cfg->id);
  if (cl_node_write_atomic(path, (const uint8_t *)line, (size_t)len, werr, sizeof werr) != 0) {
    snprintf(cfg->err, sizeof cfg->err, "EIO: cannot write %s", werr);
    return -1;
  }
  return 0;
}

void cl_node_set_admin(cl_node *n, const cl_node_admin_ops *ops) { n->admin_ops = ops; }

/* --admin without an admin endpoint linked in is a build error, said plainly */
static int start_admin(cl_node *n, char *err, size_t errlen) {
  if (!n->admin_ops) {
    snprintf(err, errlen, "EINVAL: --admin: this build has no admin endpoint");
    return -1;
  }
  return n->admin_ops->start(n, err, errlen);
}

static void node_start(cl_node *n, cl_node_config *cfg) {
  cl_transport_config tc;
  cl_transport_config_defaults(&tc);
  tc.self_name = cfg->name;
  tc.node_id = cfg->id;
  tc.cluster = cfg->cluster;
  if (cl_node_keys_load(n, cfg, &tc.keys, &tc.n_keys) != 0) {
    cfg->rc = -1;
    return;
  }
  tc.roles = cfg->roles;
  tc.encrypt = cfg->encrypt;
  tc.mesh = cfg->mesh;
  tc.max_learned_peers = cfg->el_max_nodes; /* 0: the transport's default, the election's too */
  tc.data_conns = cfg->data_conn;
  if (cfg->max_frame) tc.max_frame = cfg->max_frame;
  /* 0 (not given) lets the transport derive it: its default, but at most half the
   * timeout, so `timeout_ms = 200` alone is valid (the default put here first refused it) */
  tc.heartbeat_ms = cfg->heartbeat_ms;
  if (cfg->timeout_ms) tc.timeout_ms = cfg->timeout_ms;
  if (cfg->send_queue_max) tc.send_queue_max = cfg->send_queue_max;
  if (cfg->reconnect_timeout_ms) tc.reconnect_timeout_ms = cfg->reconnect_timeout_ms;
  if (cfg->watchers) tc.watchers = cfg->watchers;
  if (cfg->full_mesh_max) tc.full_mesh_max = cfg->full_mesh_max;
  if (cfg->idle_close_ms) tc.idle_close_ms = cfg->idle_close_ms;
  if (cfg->large_timeout_ms) tc.large_timeout_ms = cfg->large_timeout_ms;
  if (cfg->large_heartbeat_ms) tc.large_heartbeat_ms = cfg->large_heartbeat_ms;
  tc.log_subsys = cfg->log_subsys;
  cl_transport_callbacks cb = {.peer_up = on_peer_up,
                               .data_conn = on_data_conn,
                               .peer_down = on_peer_down,
                               .message = on_message,
                               .ud = n,
                               .keep = on_keep,
                               .peer_forgotten = on_peer_forgotten};
  n->t = cl_transport_new(&n->c->loop, &tc, &cb, cfg->err, sizeof cfg->err);
  if (!n->t) {
    cl_node_keys_stop(n);
    cfg->rc = -1;
    return;
  }
  n->cfg = cfg;
  cl_node_keys_started(n);
  cl_node_keys_rotate_start(n);
  uv_signal_init(&n->c->loop, &n->sigterm);
  uv_signal_init(&n->c->loop, &n->sigint);
  n->sigterm.data = n->sigint.data = n;
  uv_signal_start(&n->sigterm, on_signal, SIGTERM);
  uv_signal_start(&n->sigint, on_signal, SIGINT);
  uv_timer_init(&n->c->loop, &n->drain_timer);
  n->drain_timer.data = n;
  uv_timer_init(&n->c->loop, &n->leave_timer);
  n->leave_timer.data = n;
  n->leaving = n->left = n->leave_signal = 0;
  n->leave_sem = NULL;
  uv_timer_start(&n->drain_timer, on_drain, cl_grid_delay(uv_now(&n->c->loop), DRAIN_IDLE_MS), 0);
  n->running = 1;
  /* Order matters: everything that can fail comes before anything is written (the
   * first election step may bootstrap a cluster and persist it). No peer is dialled
   * before Lua starts the strategies, after this returns. */
  if ((cfg->admin && start_admin(n, cfg->err, sizeof cfg->err) != 0) ||
      cl_node_election_start(n, cfg->err, sizeof cfg->err) != 0 || prepare_data(cfg) != 0) {
    node_teardown(n);
    cfg->rc = -1;
    return;
  }
  cl_node_election_run(n);
  cl_node_lua_lag_start(n);
  cl_log(CL_LOG_INFO, "node", NULL, "%s started (cluster %s, roles %s)", cfg->name, cfg->cluster,
         cfg->roles && *cfg->roles ? cfg->roles : "none");
  cfg->rc = 0;
}

/* cl.metadata / cl.voting calls: the answer comes back as CL_EVT_NODE_DONE with Lua's id */
static void lua_request(cl_node *n, cl_el_input *in, uint64_t lua_id) {
  static const char busy[] = "too many requests in flight";
  if (cl_node_election_request(n, in, CL_REQ_FROM_LUA, lua_id, NULL) < 0)
    cl_node_emit(n, CL_EVT_NODE_DONE, "EBUSY", busy, sizeof busy - 1, lua_id, 0, CL_Q_FORCE);
}

static void node_command(cl_control *c, cl_msg *m, void *ud) {
  cl_node *n = ud;
  n->c = c;
  switch (m->type) {
  case CL_CMD_NODE_START: {
    cl_node_config *cfg = (cl_node_config *)(uintptr_t)m->id;
    if (n->running) {
      cfg->rc = -1;
      snprintf(cfg->err, sizeof cfg->err, "EALREADY: this process is already a node");
    } else {
      node_start(n, cfg);
      if (cfg->rc != 0) n->cfg = NULL; /* the Lua side frees it */
    }
    uv_sem_post(&cfg->done);
    break;
  }
  case CL_CMD_NODE_WANT:
    if (n->t) cl_transport_want(n->t, cl_msg_name(m));
    break;
  case CL_CMD_NODE_UNWANT:
    if (n->t) cl_transport_unwant(n->t, cl_msg_name(m));
    break;
  case CL_CMD_NODE_DISCONNECT:
    if (n->t) cl_transport_disconnect(n->t, cl_msg_name(m));
    break;
  case CL_CMD_NODE_SEND: {
    cl_peerq *q = (cl_peerq *)(uintptr_t)m->id;
    if (n->t) {
      int r = cl_transport_send(n->t, cl_msg_name(m), CL_CH_LUA, cl_msg_body(m), m->body_len);
      if (r == CL_ENOBUFS && q) {
        atomic_store(&q->full, 1);
        cl_node_drain_soon(n);
      }
    }
    if (q) atomic_fetch_sub(&q->pending, (int64_t)m->body_len);
    break;
  }
  case CL_CMD_NODE_LEAVE: {
    /* clusterlua.leave(): Lua waits on the semaphore until the peers have been told */
    uv_sem_t *sem = (uv_sem_t *)(uintptr_t)m->id;
    if (!n->running) {
      if (sem) uv_sem_post(sem);
      break;
    }
    if (sem) {
      cl_log(CL_LOG_INFO, "node", NULL, "clusterlua.leave(): leaving the cluster");
      n->leave_sem = sem;
    }
    node_leave(n);
    break;
  }
  case CL_CMD_NODE_FAULT: {
    char err[256] = "";
    if (n->t && cl_transport_fault(n->t, cl_msg_name(m), (const char *)cl_msg_body(m), err, sizeof err) != 0)
      cl_log(CL_LOG_WARN, "node", NULL, "fault refused: %s", err);
    break;
  }
  case CL_CMD_NODE_EL_UPDATE: {
    cl_el_input in = {.kind = CL_EL_IN_REQUEST_UPDATE, .base_version = (uint64_t)m->num,
                      .data = cl_msg_body(m), .len = m->body_len};
    lua_request(n, &in, m->id);
    break;
  }
  case CL_CMD_NODE_EL_EXCLUDE: {
    /* cl.voting.exclude: the admin route's parser, so both refuse the same lists alike */
    const char *names[CL_EL_MAX_EXCL];
    char err[128];
    int nn = cl_el_split_exclusions((char *)cl_msg_body_mut(m), names, err, sizeof err);
    if (nn < 0) {
      cl_node_emit(n, CL_EVT_NODE_DONE, "EINVAL", err, strlen(err), m->id, 0, CL_Q_FORCE);
      break;
    }
    for (int i = 0; i < nn; i++) names[i] = cl_node_exclusion_target(n, names[i]);
    cl_el_input in = {.kind = CL_EL_IN_REQUEST_EXCLUDE, .names = names, .n_names = (size_t)nn};
    lua_request(n, &in, m->id);
    break;
  }
  case CL_CMD_NODE_EL_CLEAR: {
    cl_el_input in = {.kind = CL_EL_IN_REQUEST_CLEAR_EXCLUSIONS, .flag = (int)m->num};
    lua_request(n, &in, m->id);
    break;
  }
  case CL_CMD_NODE_EVENT:
    cl_node_report_from_lua(n, cl_msg_name(m), cl_msg_body(m), m->body_len);
    break;
  case CL_CMD_NODE_DATA_OPEN:
    if (n->t) cl_transport_data_open(n->t, cl_msg_name(m), (uint64_t)m->num);
    break;
  case CL_CMD_NODE_RELOAD_DONE: {
    cl_node_req r;
    if (cl_node_req_take(n, m->id, &r) && n->admin_ops)
      n->admin_ops->reload_done(n, r.priv, (int)m->num, (const char *)cl_msg_body(m));
    break;
  }
  default:
    break;
  }
  free(m);
}

static void node_stop(cl_control *c, void *ud) {
  (void)c;
  cl_node *n = ud;
  node_teardown(n);
  cl_node_config_free(n->cfg);
  n->cfg = NULL;
  peerq_free_all(n);
}

const cl_control_hooks cl_node_hooks = {
    .start = NULL,
    .stop = node_stop,
    .command = node_command,
    .event = NULL, /* set by main.c: the Lua side's dispatcher */
};
