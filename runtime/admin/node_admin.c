/* The node's admin routes. Read-only answers are built here on the control loop, so they
 * keep coming while Lua is busy; only /_reload needs Lua, and answers 503 if Lua does
 * not reply in time (the server's handler deadline). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "admin/admin.h"
#include "transport/dataplane.h"
#include "admin/cat.h"
#include "admin/console.h"
#include "admin/events.h"
#include "admin/fake_peers.h"
#include "admin/health_wait.h"
#include "admin/json_filter.h"
#include "admin/keys_admin.h"
#include "admin/node_admin.h"
#include "admin/nodes_view.h"
#include "admin/views.h"
#include "core/log.h"
#include "core/lua_stats.h"
#include "node/node_internal.h"

/* What the node's admin endpoint keeps besides the server: one per node, made at
 * admin_start and freed at admin_stop; the node holds it as an opaque pointer. */
struct cl_node_admin {
  cl_events *events;
  cl_health_wait *health;
  cl_console *console;
  cl_fake_peers *fake; /* NULL without CLUSTERLUA_FAULTS=1 */
};

static uint64_t wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ---- GET /_nodes ---- */

struct nodes_ctx {
  cl_node *n;
  cl_nodes_view *v;
  uint64_t now;
  int oom;
};

static void node_entry(void *ud, const cl_peer_info *p) {
  struct nodes_ctx *c = ud;
  cl_nodes_entry e = {.name = p->name,
                      .id = p->node_id,
                      .address = p->address,
                      .roles = p->roles,
                      .status = p->status,
                      .fingerprint = p->fingerprint,
                      .connected = p->connected,
                      .since_ms = p->since_ms ? (int64_t)(p->since_ms + c->n->wall_offset_ms) : 0,
                      .last_heartbeat_ms = p->last_heartbeat_ms ? (int64_t)(c->now - p->last_heartbeat_ms) : -1,
                      .rtt_us = p->rtt_us};
  if (cl_nodes_view_add(c->v, &e) != 0) c->oom = 1;
}

/* connected nodes whose data belongs to another cluster: nothing they say
 * counts (see the election core), and an operator should know they are there */
static json_t *refused_json(cl_node *n) {
  json_t *arr = json_array();
  if (!n->el) return arr;
  size_t k = cl_el_refused_peers(n->el, NULL, 0); /* how many, then fill */
  cl_el_refused *r = k ? calloc(k, sizeof *r) : NULL;
  if (!r) return arr;
  k = cl_el_refused_peers(n->el, r, k);
  for (size_t i = 0; i < k; i++) {
    json_t *e = json_object();
    json_object_set_new(e, "name", json_string(r[i].name));
    json_object_set_new(e, "cluster_id", json_string(r[i].cluster_id));
    json_object_set_new(e, "reason", json_sprintf("its data belongs to cluster %s but this node's belongs to cluster %s "
                                                  "(wrong data directory, or two clusters bootstrapped)",
                                                  r[i].cluster_id, cl_el_cluster_id(n->el)));
    json_array_append_new(arr, e);
  }
  free(r);
  return arr;
}

/* Elasticsearch's habits where it has them (size, from, filter_path) and Consul's
 * `members -status` where it has not: a 1,000-node answer nobody can read is the
 * summary and a page. No parameter: every node, as before, plus the summary. */
static int nodes_query(cl_admin *a, cl_admin_req *req, cl_nodes_query *q) {
  static const char *const params[] = {"status", "name", "role", "from", "size", "sort"};
  char buf[CL_NODES_PARAM_MAX + 1], err[200];
  cl_nodes_query_init(q);
  for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
    switch (cl_admin_query_lookup(req, params[i], buf, sizeof buf)) {
      case CL_ADMIN_QP_TOO_LONG:
        cl_admin_reply_error(a, req->priv, 400, "%s is longer than %d characters", params[i], CL_NODES_PARAM_MAX);
        return -1;
      case CL_ADMIN_QP_MALFORMED:
        cl_admin_reply_error(a, req->priv, 400, "%s: malformed percent-encoding or a NUL byte", params[i]);
        return -1;
      case CL_ADMIN_QP_ABSENT:
        continue;
      default:
        break;
    }
    if (cl_nodes_query_set(q, params[i], buf, err, sizeof err) != 0) {
      cl_admin_reply_error(a, req->priv, 400, "%s", err);
      return -1;
    }
  }
  return 0;
}

static void h_nodes(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  cl_nodes_query q;
  char fp[CL_JSON_FILTER_MAX_LEN + 1];
  if (nodes_query(a, req, &q) != 0 || cl_admin_filter_param(a, req, fp) != 0) return;
  struct nodes_ctx c = {.n = n, .v = cl_nodes_view_new(&q), .now = uv_now(&n->c->loop)};
  if (!c.v) {
    cl_admin_reply_error(a, req->priv, 503, "out of memory");
    return;
  }
  const char *at = strchr(n->cfg->name, '@');
  cl_nodes_entry self = {.name = n->cfg->name,
                         .id = n->cfg->id,
                         .address = at ? at + 1 : "",
                         .roles = n->cfg->roles,
                         .status = "up",
                         .self = 1,
                         .connected = 1,
                         .since_ms = (int64_t)(n->started_ms + n->wall_offset_ms),
                         .last_heartbeat_ms = 0};
  if (cl_nodes_view_add(c.v, &self) != 0) c.oom = 1;
  cl_transport_foreach(n->t, node_entry, &c);
  cl_fake_peers_foreach(n->admin_state->fake, node_entry, &c);
  json_t *nodes = NULL, *summary = NULL;
  int done = !c.oom && cl_nodes_view_finish(c.v, &nodes, &summary) == 0;
  cl_nodes_view_free(c.v);
  if (!done) {
    cl_admin_reply_error(a, req->priv, 503, "out of memory");
    return;
  }
  /* what /_cluster/health says, so that the two never disagree */
  const cl_el_state *st = n->el ? cl_el_committed(n->el) : NULL;
  const char *master = n->el ? cl_el_master_name(n->el) : NULL;
  json_t *sum = json_object();
  json_object_set_new(sum, "number_of_nodes", json_integer(st ? (json_int_t)st->n_nodes : 1));
  json_object_set_new(sum, "master", master ? json_string(master) : json_null());
  json_object_update(sum, summary);
  json_decref(summary);
  json_t *o = json_object();
  json_object_set_new(o, "cluster_name", json_string(n->cfg->cluster));
  json_object_set_new(o, "summary", sum);
  json_object_set_new(o, "nodes", nodes);
  json_object_set_new(o, "refused_nodes", refused_json(n));
  if (*fp) {
    json_t *f = cl_json_filter_path(o, fp);
    json_decref(o);
    o = f; /* NULL (out of memory) answers 500 */
  }
  cl_admin_reply_json(a, req->priv, 200, o);
}

/* ---- GET /_cluster/state ---- */

static void h_state(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  const cl_el_state *st = n->el ? cl_el_committed(n->el) : NULL;
  if (!st) {
    cl_admin_reply_error(a, req->priv, 503, "no committed cluster state yet");
    return;
  }
  /* a filter that cannot be applied is the client's mistake, and answering the whole
   * state instead would hide it: 400 with what was wrong */
  char fp[CL_JSON_FILTER_MAX_LEN + 1];
  if (cl_admin_filter_param(a, req, fp) != 0) return;
  json_t *doc = cl_node_state_json(n, st);
  if (*fp) {
    json_t *f = cl_json_filter_path(doc, fp);
    json_decref(doc);
    doc = f; /* NULL (out of memory) answers 500 */
  }
  cl_admin_reply_json(a, req->priv, 200, doc);
}

/* ---- voting configuration exclusions ---- */

static int status_for(const char *code) {
  if (!code || !*code || strcmp(code, "OK") == 0) return 200;
  if (strcmp(code, "EINVAL") == 0 || strcmp(code, "ENOTFOUND") == 0 || strcmp(code, "ECONFLICT") == 0) return 400;
  if (strcmp(code, "EBUSY") == 0) return 429;
  if (strcmp(code, "ETIMEDOUT") == 0) return 504;
  return 503;
}

static void admin_complete(cl_node *n, void *priv, const char *code, const char *msg, uint64_t version) {
  if (!n->admin) return;
  int status = status_for(code);
  if (status == 200) {
    json_t *o = json_object();
    json_object_set_new(o, "acknowledged", json_true());
    json_object_set_new(o, "version", json_integer((json_int_t)version));
    cl_admin_reply_json(n->admin, priv, 200, o);
  } else {
    cl_admin_reply_error(n->admin, priv, status, "%s: %s", code, msg);
  }
}

/* Elasticsearch's two forms: node_names (short or full names) or node_ids (the ids of
 * the node_id files, as GET /_cluster/state shows them), one or the other. */
static void h_exclude(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  /* as long as the raw query: decoding never lengthens, so a long list is refused by
   * cl_el_split_exclusions for what it is, not taken for a missing one */
  size_t cap = req->query ? strlen(req->query) + 1 : 1;
  char *names = malloc(cap), *ids = malloc(cap);
  if (!names || !ids) {
    free(names);
    free(ids);
    cl_admin_reply_error(a, req->priv, 503, "out of memory");
    return;
  }
  int qn = cl_admin_query_lookup(req, "node_names", names, cap);
  int qi = cl_admin_query_lookup(req, "node_ids", ids, cap);
  int by_id = qi != CL_ADMIN_QP_ABSENT;
  const char *param = by_id ? "node_ids" : "node_names";
  int q = by_id ? qi : qn;
  char *buf = by_id ? ids : names;
  free(by_id ? names : ids);
  if (qn != CL_ADMIN_QP_ABSENT && qi != CL_ADMIN_QP_ABSENT) {
    free(buf);
    cl_admin_reply_error(a, req->priv, 400, "give node_names or node_ids, not both");
    return;
  }
  if (q == CL_ADMIN_QP_MALFORMED) {
    free(buf);
    cl_admin_reply_error(a, req->priv, 400, "%s: malformed percent-encoding or a NUL byte", param);
    return;
  }
  if (q != CL_ADMIN_QP_OK || strspn(buf, ", ") == strlen(buf)) {
    free(buf);
    cl_admin_reply_error(a, req->priv, 400,
                         "node_names or node_ids is required: ?node_names=node1,node2 or ?node_ids=ID1,ID2");
    return;
  }
  const char *list[CL_EL_MAX_EXCL];
  char err[128];
  int nn = cl_el_split_exclusions(buf, list, err, sizeof err);
  if (nn < 0) {
    free(buf);
    cl_admin_reply_error(a, req->priv, 400, "EINVAL: %s", err);
    return;
  }
  /* an id goes to the core as it is (the core matches ids of the state and of the
   * voting configuration); a name of a node that is down is turned into its id */
  if (!by_id)
    for (int i = 0; i < nn; i++) list[i] = cl_node_exclusion_target(n, list[i]);
  cl_admin_extend_deadline(a, req->priv, 15000);
  cl_el_input in = {.kind = CL_EL_IN_REQUEST_EXCLUDE, .names = list, .n_names = (size_t)nn};
  if (cl_node_election_request(n, &in, CL_REQ_FROM_ADMIN, 0, req->priv) < 0)
    cl_admin_reply_error(a, req->priv, 503, "too many requests in flight");
  free(buf); /* the core copied the names */
}

static void h_clear(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  char w[16];
  const char *v = cl_admin_query_param(req, "wait_for_removal", w, sizeof w);
  int wait = v && (strcmp(v, "true") == 0 || strcmp(v, "") == 0);
  if (v && !wait && strcmp(v, "false") != 0) {
    cl_admin_reply_error(a, req->priv, 400, "wait_for_removal: expected true or false, got '%s'", v);
    return;
  }
  cl_admin_extend_deadline(a, req->priv, 15000);
  cl_el_input in = {.kind = CL_EL_IN_REQUEST_CLEAR_EXCLUSIONS, .flag = wait};
  if (cl_node_election_request(n, &in, CL_REQ_FROM_ADMIN, 0, req->priv) < 0)
    cl_admin_reply_error(a, req->priv, 503, "too many requests in flight");
}

/* ---- POST /_reload: Lua does the work; the server answers 503 if it never replies ---- */

static void h_reload(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  if (cl_node_reload_request(n, req->priv) < 0) cl_admin_reply_error(a, req->priv, 503, "too many requests in flight");
}

static void admin_reload_done(cl_node *n, void *priv, int status, const char *json) {
  if (!n->admin) return;
  cl_admin_reply(n->admin, priv, status, NULL, json, strlen(json));
}

/* ---- GET /metrics ---- */

/* nodes by status: four series whatever the cluster's size (no series per peer: see
 * docs/operations.md, "Metrics at scale") */
static const char *const status_label[] = {"up", "down", "configured", "disconnected", "other"};

static void count_status(void *ud, const cl_peer_info *p) {
  double *by = ud;
  const char *s = p->status ? p->status : p->connected ? "up" : "down";
  size_t i = 0;
  while (i < 4 && strcmp(s, status_label[i]) != 0) i++;
  by[i]++;
}

static void h_metrics(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  cl_metrics m;
  cl_metrics_init(&m);
  cl_transport_stats ts;
  cl_transport_stats_get(n->t, &ts);
  const cl_el_state *st = n->el ? cl_el_committed(n->el) : NULL;
  cl_metrics_gauge(&m, "clusterlua_nodes_up", "Members up, counting this one (connected or not)",
                   (double)cl_transport_member_count(n->t) + 1);
  cl_metrics_gauge(&m, "clusterlua_connections", "Node-to-node control connections open (number_of_connections)",
                   (double)cl_transport_connected_count(n->t));
  cl_metrics_gauge(&m, "clusterlua_is_master", "1 if this node is the elected master",
                   n->el && cl_el_get_mode(n->el) == CL_EL_LEADER ? 1 : 0);
  cl_metrics_gauge(&m, "clusterlua_has_master", "1 if this node knows an elected master",
                   n->el && cl_el_master_id(n->el) ? 1 : 0);
  cl_metrics_gauge(&m, "clusterlua_term", "Current election term", n->el ? (double)cl_el_term(n->el) : 0);
  cl_metrics_gauge(&m, "clusterlua_state_version", "Version of the last committed cluster state",
                   st ? (double)st->version : 0);
  cl_metrics_gauge(&m, "clusterlua_members", "Members of the committed cluster state (number_of_nodes)",
                   st ? (double)st->n_nodes : 1);
  double by[5] = {1, 0, 0, 0, 0}; /* this node is up */
  cl_transport_foreach(n->t, count_status, by);
  cl_fake_peers_foreach(n->admin_state->fake, count_status, by);
  cl_metrics_family(&m, "clusterlua_nodes", "gauge", "Nodes this node knows (itself included), by status");
  for (size_t i = 0; i < 5; i++) {
    if (i == 4 && by[i] == 0) continue; /* a status this build does not name: only when seen */
    const char *labels[] = {"status", status_label[i], NULL};
    cl_metrics_sample(&m, labels, by[i]);
  }
  cl_metrics_counter(&m, "clusterlua_master_changes", "Master changes seen by this node", (double)n->elections);
  cl_metrics_histogram(&m, "clusterlua_heartbeat_rtt_seconds",
                       "Smoothed heartbeat round trip of each connected peer, sampled once a second", &n->rtt_seconds);
  cl_metrics_histogram(&m, "clusterlua_persist_seconds", "Time to persist election state (write, fsync, rename, fsync dir)",
                       &n->persist_seconds);
  cl_metrics_counter(&m, "clusterlua_frames_in", "Frames received", (double)ts.frames_in);
  cl_metrics_counter(&m, "clusterlua_frames_out", "Frames sent", (double)ts.frames_out);
  cl_metrics_counter(&m, "clusterlua_bytes_in", "Bytes received", (double)ts.bytes_in);
  cl_metrics_counter(&m, "clusterlua_bytes_out", "Bytes sent", (double)ts.bytes_out);
  /* failure detection (docs/design.md §4): one series per direction or outcome, never
   * one per peer */
  cl_metrics_family(&m, "clusterlua_beats", "counter", "Heartbeats sent to the peers that watch this node, and received");
  const char *b_in[] = {"direction", "in", NULL}, *b_out[] = {"direction", "out", NULL};
  cl_metrics_sample(&m, b_in, (double)ts.beats_in);
  cl_metrics_sample(&m, b_out, (double)ts.beats_out);
  cl_metrics_gauge(&m, "clusterlua_watching", "Peers this node watches now (transport.watchers)", (double)ts.watching);
  cl_metrics_gauge(&m, "clusterlua_watched_by", "Peers that watch this node now", (double)ts.watched_by);
  cl_metrics_family(&m, "clusterlua_probes", "counter",
                    "Indirect probes: asked for (a watched peer went quiet), run for other nodes, answers received");
  struct {
    const char *kind;
    uint64_t v;
  } pr[] = {{"requested", ts.probes_requested},
            {"served", ts.probes_served},
            {"answer_alive", ts.probe_alive},
            {"answer_none", ts.probe_none}};
  for (size_t i = 0; i < sizeof pr / sizeof *pr; i++) {
    const char *labels[] = {"kind", pr[i].kind, NULL};
    cl_metrics_sample(&m, labels, (double)pr[i].v);
  }
  cl_metrics_family(&m, "clusterlua_downs", "counter",
                    "Peers this node declared down and announced, and announcements it acted on");
  const char *d_ann[] = {"kind", "announced", NULL}, *d_app[] = {"kind", "applied", NULL};
  cl_metrics_sample(&m, d_ann, (double)ts.downs_announced);
  cl_metrics_sample(&m, d_app, (double)ts.downs_applied);
  cl_metrics_family(&m, "clusterlua_closes", "counter",
                    "Large cluster: connections closed without IDLE or LEAVE, re-dialled to check; the member "
                    "answered, its host refused (reported down), or neither (left to detection); of the answered "
                    "and unknown, those left to the member's watchers (this node does not watch it)");
  const char *c_chk[] = {"kind", "checked", NULL}, *c_alive[] = {"kind", "alive", NULL},
             *c_down[] = {"kind", "down", NULL};
  cl_metrics_sample(&m, c_chk, (double)ts.closes_checked);
  cl_metrics_sample(&m, c_alive, (double)ts.closes_alive);
  cl_metrics_sample(&m, c_down, (double)ts.closes_down);
  const char *c_unk[] = {"kind", "unknown", NULL};
  cl_metrics_sample(&m, c_unk, (double)ts.closes_unknown);
  const char *c_tw[] = {"kind", "to_watchers", NULL};
  cl_metrics_sample(&m, c_tw, (double)ts.closes_to_watchers);
  cl_metrics_family(&m, "clusterlua_handshake_failures", "counter", "Refused handshakes by reason");
  struct {
    const char *reason;
    uint64_t v;
  } hf[] = {{"cookie", ts.handshake_fail_cookie},   {"cluster", ts.handshake_fail_cluster},
            {"version", ts.handshake_fail_version}, {"timeout", ts.handshake_fail_timeout},
            {"garbage", ts.handshake_fail_garbage}, {"encrypt", ts.handshake_fail_encrypt},
            {"name", ts.handshake_fail_name}};
  for (size_t i = 0; i < sizeof hf / sizeof *hf; i++) {
    const char *labels[] = {"reason", hf[i].reason, NULL};
    cl_metrics_sample(&m, labels, (double)hf[i].v);
  }
  cl_metrics_gauge(&m, "clusterlua_refused_nodes",
                   "Connected nodes refused because their data belongs to another cluster",
                   n->el ? (double)cl_el_refused_peers(n->el, NULL, 0) : 0);
  cl_metrics_counter(&m, "clusterlua_refused_messages",
                     "Election messages refused from nodes whose data belongs to another cluster",
                     n->el ? (double)cl_el_refused_messages(n->el) : 0);
  cl_dp_stats ds;
  cl_dp_stats_published(&cl_lua_stats_g.dp, &ds);
  cl_metrics_family(&m, "clusterlua_data_messages", "counter", "Messages between Lua handlers on data connections");
  const char *l_in[] = {"direction", "in", NULL}, *l_out[] = {"direction", "out", NULL};
  cl_metrics_sample(&m, l_in, (double)ds.msgs_in);
  cl_metrics_sample(&m, l_out, (double)ds.msgs_out);
  cl_metrics_family(&m, "clusterlua_data_bytes", "counter", "Bytes on data connections");
  cl_metrics_sample(&m, l_in, (double)ds.bytes_in);
  cl_metrics_sample(&m, l_out, (double)ds.bytes_out);
  cl_metrics_counter(&m, "clusterlua_data_connections", "Data connections opened", (double)ds.conns_adopted);
  cl_metrics_counter(&m, "clusterlua_data_connection_failures",
                     "Data connections that failed while their peer stayed up", (double)ds.conns_failed);
  cl_metrics_counter(&m, "clusterlua_lua_errors", "Errors raised by Lua callbacks and hooks",
                     (double)atomic_load(&cl_lua_stats_g.errors));
  cl_metrics_counter(&m, "clusterlua_hook_aborts", "Hooks aborted for running past their budget",
                     (double)atomic_load(&cl_lua_stats_g.hook_aborts));
  cl_metrics_counter(&m, "clusterlua_admin_reloads", "Reloads requested through the admin endpoint", (double)n->reloads);
  cl_metrics_counter(&m, "clusterlua_dropped_events", "Events or messages dropped because Lua fell behind",
                     (double)(n->msgs_dropped + n->c->evt.dropped));
  cl_events_stats es;
  cl_events_stats_get(n->admin_state->events, &es);
  cl_metrics_gauge(&m, "clusterlua_event_streams", "Open event streams (GET /_events)", es.streams_open);
  cl_metrics_counter(&m, "clusterlua_event_streams_dropped",
                     "Event streams closed because their client fell too far behind", (double)es.streams_dropped);
  cl_metrics_counter(&m, "clusterlua_event_streams_refused", "Event streams refused past the cap",
                     (double)es.streams_refused);
  cl_metrics_gauge(&m, "clusterlua_health_waiting", "GET /_cluster/health requests waiting for their condition",
                   cl_health_wait_count(n->admin_state->health));
  cl_metrics_gauge(&m, "clusterlua_lua_lag_seconds", "How long Lua took to answer the last ping",
                   (double)n->lag.lag_ms / 1000.0);
  cl_keys_admin_metrics(n, &m);
  size_t len;
  const char *text = cl_metrics_text(&m, &len);
  cl_admin_reply(a, req->priv, 200, CL_METRICS_CONTENT_TYPE, text, len);
  cl_metrics_free(&m);
}

/* ---- POST /_test/fault?peer=NAME&spec=SPEC: only with CLUSTERLUA_FAULTS=1 ---- */

static void h_fault(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  char peer[300], spec[200], err[256] = "";
  const char *p = cl_admin_query_param(req, "peer", peer, sizeof peer);
  const char *s = cl_admin_query_param(req, "spec", spec, sizeof spec);
  if (!p || !s) {
    cl_admin_reply_error(a, req->priv, 400, "peer and spec are required");
    return;
  }
  if (cl_transport_fault(n->t, p, s, err, sizeof err) != 0) {
    cl_admin_reply_error(a, req->priv, 400, "%s", err);
    return;
  }
  cl_admin_reply_json(a, req->priv, 200, json_pack("{s:b}", "acknowledged", 1));
}

static int admin_start(cl_node *n, char *err, size_t errlen) {
  char aerr[256] = "";
  cl_node_admin *st = calloc(1, sizeof *st);
  if (!st) {
    snprintf(err, errlen, "ENOMEM: --admin %s: out of memory", n->cfg->admin);
    return -1;
  }
  n->admin = cl_admin_start(&n->c->loop, n->cfg->admin, n->cfg->admin_token, aerr, sizeof aerr);
  if (!n->admin) {
    snprintf(err, errlen, "EINVAL: --admin %s: %s", n->cfg->admin, aerr);
    free(st);
    return -1;
  }
  n->admin_state = st;
  n->started_ms = uv_now(&n->c->loop);
  n->wall_offset_ms = wall_ms() - n->started_ms;
  cl_admin_route(n->admin, "GET", "/_nodes", h_nodes, n);
  cl_admin_route(n->admin, "GET", "/_cluster/state", h_state, n);
  cl_admin_route(n->admin, "POST", "/_cluster/voting_config_exclusions", h_exclude, n);
  cl_admin_route(n->admin, "DELETE", "/_cluster/voting_config_exclusions", h_clear, n);
  cl_admin_route(n->admin, "POST", "/_reload", h_reload, n);
  cl_admin_route(n->admin, "GET", "/metrics", h_metrics, n);
  cl_keys_admin_routes(n);
  const char *faults = getenv("CLUSTERLUA_FAULTS");
  int test_routes = faults && strcmp(faults, "1") == 0;
  if (test_routes) {
    cl_admin_route(n->admin, "POST", "/_test/fault", h_fault, n);
    st->fake = cl_fake_peers_start(n->admin, &n->c->loop);
  }
  /* the console, the event stream and the everyday Elasticsearch calls */
  st->health = cl_health_wait_start(n->admin, n);
  cl_cat_start(n->admin, n);
  st->events = cl_events_start(n->admin, &n->c->loop, cl_transport_incarnation(n->t), test_routes);
  st->console = cl_console_start(n->admin);
  if (!st->console || !st->health || !st->events || (test_routes && !st->fake))
    cl_log(CL_LOG_WARN, "admin", NULL, "some admin routes could not be registered (out of memory)");
  return 0;
}

static void admin_stop(cl_node *n) {
  if (!n->admin) return;
  /* before the server goes: they hold its stream and request handles */
  cl_node_admin *st = n->admin_state;
  cl_events_stop(st->events);
  cl_health_wait_stop(st->health);
  cl_console_stop(st->console);
  cl_fake_peers_stop(st->fake);
  free(st);
  n->admin_state = NULL;
  cl_admin_close(n->admin, NULL, NULL);
  n->admin = NULL;
}

/* an event of the node: to the stream's history, and a reason to look at waiting
 * health requests again */
static void admin_event(cl_node *n, const char *kind, json_t *fields) {
  if (!n->admin_state) return;
  cl_events_record(n->admin_state->events, kind, fields);
  cl_health_wait_poke(n->admin_state->health);
}

static const cl_node_admin_ops admin_ops = {.start = admin_start,
                                            .stop = admin_stop,
                                            .reload_done = admin_reload_done,
                                            .complete = admin_complete,
                                            .event = admin_event};

void cl_node_admin_install(cl_node *n) { cl_node_set_admin(n, &admin_ops); }
