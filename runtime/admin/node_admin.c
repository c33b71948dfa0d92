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
#include "admin/health_wait.h"
#include "admin/json_filter.h"
#include "admin/keys_admin.h"
#include "admin/node_admin.h"
#include "core/log.h"
#include "core/lua_stats.h"
#include "node/node_internal.h"

static uint64_t wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ---- GET /_nodes ---- */

struct nodes_ctx {
  cl_node *n;
  json_t *arr;
  uint64_t now;
};


static void node_entry(void *ud, const cl_peer_info *p) {
  struct nodes_ctx *c = ud;
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(p->name));
  json_object_set_new(o, "id", p->node_id && *p->node_id ? json_string(p->node_id) : json_null());
  json_object_set_new(o, "address", json_string(p->address ? p->address : ""));
  json_object_set_new(o, "roles", cl_node_roles_json(p->roles));
  json_object_set_new(o, "connected", json_boolean(p->connected));
  json_object_set_new(o, "fingerprint", p->fingerprint && *p->fingerprint ? json_string(p->fingerprint) : json_null());
  json_object_set_new(o, "status", json_string(p->status ? p->status : (p->connected ? "up" : "down")));
  json_object_set_new(o, "since", p->since_ms ? json_integer((json_int_t)(p->since_ms + c->n->wall_offset_ms)) : json_null());
  json_object_set_new(o, "last_heartbeat_ms",
                      p->last_heartbeat_ms ? json_integer((json_int_t)(c->now - p->last_heartbeat_ms)) : json_null());
  json_object_set_new(o, "rtt_us", json_integer(p->rtt_us));
  json_array_append_new(c->arr, o);
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

static void h_nodes(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  struct nodes_ctx c = {.n = n, .arr = json_array(), .now = uv_now(&n->c->loop)};
  json_t *self = json_object();
  json_object_set_new(self, "name", json_string(n->cfg->name));
  json_object_set_new(self, "id", json_string(n->cfg->id));
  const char *at = strchr(n->cfg->name, '@');
  json_object_set_new(self, "address", json_string(at ? at + 1 : ""));
  json_object_set_new(self, "roles", cl_node_roles_json(n->cfg->roles));
  json_object_set_new(self, "connected", json_true());
  json_object_set_new(self, "status", json_string("up"));
  json_object_set_new(self, "self", json_true());
  json_object_set_new(self, "since", json_integer((json_int_t)(n->started_ms + n->wall_offset_ms)));
  json_object_set_new(self, "last_heartbeat_ms", json_integer(0));
  json_object_set_new(self, "rtt_us", json_integer(0));
  json_array_append_new(c.arr, self);
  cl_transport_foreach(n->t, node_entry, &c);
  json_t *o = json_object();
  json_object_set_new(o, "cluster_name", json_string(n->cfg->cluster));
  json_object_set_new(o, "nodes", c.arr);
  json_object_set_new(o, "refused_nodes", refused_json(n));
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
  char fp[CL_JSON_FILTER_MAX_LEN + 1], ferr[200];
  switch (cl_admin_query_lookup(req, "filter_path", fp, sizeof fp)) {
    case CL_ADMIN_QP_TOO_LONG:
      cl_admin_reply_error(a, req->priv, 400, "filter_path is longer than %d characters", CL_JSON_FILTER_MAX_LEN);
      return;
    case CL_ADMIN_QP_MALFORMED:
      cl_admin_reply_error(a, req->priv, 400, "filter_path: malformed percent-encoding or a NUL byte");
      return;
    case CL_ADMIN_QP_ABSENT:
      fp[0] = 0;
      break;
    default:
      break;
  }
  if (cl_json_filter_check(fp, ferr, sizeof ferr) != 0) {
    cl_admin_reply_error(a, req->priv, 400, "%s", ferr);
    return;
  }
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

struct metrics_ctx {
  int up;
};

static void h_metrics(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  cl_metrics m;
  cl_metrics_init(&m);
  cl_transport_stats ts;
  cl_transport_stats_get(n->t, &ts);
  const cl_el_state *st = n->el ? cl_el_committed(n->el) : NULL;
  cl_metrics_gauge(&m, "clusterlua_nodes_up", "Connected nodes, counting this one",
                   (double)cl_transport_connected_count(n->t) + 1);
  cl_metrics_gauge(&m, "clusterlua_is_master", "1 if this node is the elected master",
                   n->el && cl_el_get_mode(n->el) == CL_EL_LEADER ? 1 : 0);
  cl_metrics_gauge(&m, "clusterlua_has_master", "1 if this node knows an elected master",
                   n->el && cl_el_master_id(n->el) ? 1 : 0);
  cl_metrics_gauge(&m, "clusterlua_term", "Current election term", n->el ? (double)cl_el_term(n->el) : 0);
  cl_metrics_gauge(&m, "clusterlua_state_version", "Version of the last committed cluster state",
                   st ? (double)st->version : 0);
  cl_metrics_counter(&m, "clusterlua_master_changes", "Master changes seen by this node", (double)n->elections);
  cl_metrics_histogram(&m, "clusterlua_heartbeat_rtt_seconds",
                       "Smoothed heartbeat round trip of each connected peer, sampled once a second", &n->rtt_seconds);
  cl_metrics_histogram(&m, "clusterlua_persist_seconds", "Time to persist election state (write, fsync, rename, fsync dir)",
                       &n->persist_seconds);
  cl_metrics_counter(&m, "clusterlua_frames_in", "Frames received", (double)ts.frames_in);
  cl_metrics_counter(&m, "clusterlua_frames_out", "Frames sent", (double)ts.frames_out);
  cl_metrics_counter(&m, "clusterlua_bytes_in", "Bytes received", (double)ts.bytes_in);
  cl_metrics_counter(&m, "clusterlua_bytes_out", "Bytes sent", (double)ts.bytes_out);
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
  cl_dp_stats_published(&ds);
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
  cl_events_stats_get(&es);
  cl_metrics_gauge(&m, "clusterlua_event_streams", "Open event streams (GET /_events)", es.streams_open);
  cl_metrics_counter(&m, "clusterlua_event_streams_dropped",
                     "Event streams closed because their client fell too far behind", (double)es.streams_dropped);
  cl_metrics_counter(&m, "clusterlua_event_streams_refused", "Event streams refused past the cap",
                     (double)es.streams_refused);
  cl_metrics_gauge(&m, "clusterlua_health_waiting", "GET /_cluster/health requests waiting for their condition",
                   cl_health_wait_count());
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
  n->admin = cl_admin_start(&n->c->loop, n->cfg->admin, n->cfg->admin_token, aerr, sizeof aerr);
  if (!n->admin) {
    snprintf(err, errlen, "EINVAL: --admin %s: %s", n->cfg->admin, aerr);
    return -1;
  }
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
  if (test_routes) cl_admin_route(n->admin, "POST", "/_test/fault", h_fault, n);
  /* the console, the event stream and the everyday Elasticsearch calls */
  cl_health_wait_start(n->admin, n);
  cl_cat_start(n->admin, n);
  cl_events_start(n->admin, &n->c->loop, cl_transport_incarnation(n->t), test_routes);
  if (cl_console_start(n->admin) != 0) cl_log(CL_LOG_WARN, "admin", NULL, "the console route could not be registered (out of memory)");
  return 0;
}

static void admin_stop(cl_node *n) {
  if (!n->admin) return;
  /* before the server goes: they hold its stream and request handles */
  cl_events_stop();
  cl_health_wait_stop();
  cl_console_stop();
  cl_admin_close(n->admin, NULL, NULL);
  n->admin = NULL;
}

/* an event of the node: to the stream's history, and a reason to look at waiting
 * health requests again */
static void admin_event(cl_node *n, const char *kind, json_t *fields) {
  (void)n;
  cl_events_record(kind, fields);
  cl_health_wait_poke();
}

static const cl_node_admin_ops admin_ops = {.start = admin_start,
                                            .stop = admin_stop,
                                            .reload_done = admin_reload_done,
                                            .complete = admin_complete,
                                            .event = admin_event};

void cl_node_admin_install(void) { cl_node_set_admin(&admin_ops); }
