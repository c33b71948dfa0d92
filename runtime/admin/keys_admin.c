/* The keyring through the admin endpoint. Every route applies to the whole cluster
 * (node/keys.c fans the change out over the cluster's connections) unless the query
 * has "local": then to this node only.
 *
 *   GET  /_keys                          {"nodes": N, "keys": [{"fingerprint", "installed_on",
 *                                         "primary_on"}], "results": [per node], "local": [this
 *                                         node's keys with their counters]}
 *   POST /_keys/install {"key": "..."}   {"fingerprint", "nodes", "acknowledged", "ok",
 *   POST /_keys/use {"fingerprint": FP}   "message": "FP installed on 5 of 5 nodes", "results"}
 *   POST /_keys/remove {"fingerprint": FP}
 *
 * 200 when every member acknowledged, 502 when some did not (the results say which and
 * why), 400 when this node refused the request (then nothing changed anywhere). Keys
 * never appear in an answer: fingerprints only. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/keys_admin.h"
#include "admin/keys_request.h"
#include "admin/metrics.h"
#include "node/keys.h"
#include "node/node_internal.h"
#include "transport/dataplane.h"

typedef struct {
  cl_admin *a;
  void *priv;
  cl_node *n;
  int list;
} keys_req;

/* "?local", "?local=true" or "?local=1": this node only */
static int is_local(const cl_admin_req *req) {
  char buf[16];
  if (cl_admin_query_lookup(req, "local", buf, sizeof buf) != CL_ADMIN_QP_OK) return 0;
  return strcmp(buf, "false") != 0 && strcmp(buf, "0") != 0;
}

static void on_done(void *ud, int status, json_t *answer) {
  keys_req *k = ud;
  if (k->list && answer) json_object_set_new(answer, "local", cl_node_keys_json(k->n));
  cl_admin_reply_json(k->a, k->priv, status, answer);
  free(k);
}

static void start(cl_admin *a, cl_admin_req *req, cl_node *n, int op, const uint8_t *arg, size_t arglen) {
  keys_req *k = calloc(1, sizeof *k);
  if (!k) {
    cl_admin_reply_error(a, req->priv, 500, "out of memory");
    return;
  }
  k->a = a;
  k->priv = req->priv;
  k->n = n;
  k->list = op == CL_KEYS_LIST;
  cl_node_keys_op(n, op, arg, arglen, is_local(req), on_done, k);
}

static void h_list(cl_admin *a, cl_admin_req *req, void *ud) { start(a, req, ud, CL_KEYS_LIST, NULL, 0); }

static void h_change(cl_admin *a, cl_admin_req *req, void *ud, int op) {
  uint8_t arg[CL_KEY_MAX];
  size_t arglen = 0;
  char err[300];
  if (cl_keys_request_parse(op, req->body, req->body_len, arg, &arglen, err, sizeof err)) {
    cl_admin_reply_error(a, req->priv, 400, "%s", err);
    return;
  }
  start(a, req, ud, op, arg, arglen);
  sodium_memzero(arg, sizeof arg);
}

static void h_install(cl_admin *a, cl_admin_req *req, void *ud) { h_change(a, req, ud, CL_KEYS_INSTALL); }
static void h_use(cl_admin *a, cl_admin_req *req, void *ud) { h_change(a, req, ud, CL_KEYS_USE); }
static void h_remove(cl_admin *a, cl_admin_req *req, void *ud) { h_change(a, req, ud, CL_KEYS_REMOVE); }

void cl_keys_admin_routes(cl_node *n) {
  cl_admin_route(n->admin, "GET", "/_keys", h_list, n);
  cl_admin_route(n->admin, "POST", "/_keys/install", h_install, n);
  cl_admin_route(n->admin, "POST", "/_keys/use", h_use, n);
  cl_admin_route(n->admin, "POST", "/_keys/remove", h_remove, n);
}

void cl_keys_admin_metrics(cl_node *n, cl_metrics *m) {
  if (!n->t) return;
  cl_transport_key_stat st[CL_KEYRING_MAX];
  size_t k = cl_transport_key_stats(n->t, st, CL_KEYRING_MAX);
  if (k > CL_KEYRING_MAX) k = CL_KEYRING_MAX;
  cl_metrics_family(m, "clusterlua_handshakes", "counter",
                    "Completed handshakes and re-authentications by the fingerprint of the key used");
  for (size_t i = 0; i < k; i++) {
    const char *l[] = {"fingerprint", st[i].fp[0] ? st[i].fp : "pending", NULL};
    cl_metrics_sample(m, l, (double)st[i].handshakes);
  }
  cl_metrics_family(m, "clusterlua_auth_failures", "counter",
                    "Refused key proofs by fingerprint; proofs naming no key of this node count as unknown");
  for (size_t i = 0; i < k; i++) {
    const char *l[] = {"fingerprint", st[i].fp[0] ? st[i].fp : "pending", NULL};
    cl_metrics_sample(m, l, (double)st[i].auth_failures);
  }
  const char *u[] = {"fingerprint", "unknown", NULL};
  cl_metrics_sample(m, u, (double)cl_transport_auth_failures_unknown(n->t));
  cl_dp_stats ds;
  cl_dp_stats_published(&cl_lua_stats_g.dp, &ds);
  cl_metrics_counter(m, "clusterlua_data_connection_rekeys",
                     "Data connections re-authenticated and re-keyed after their key left the keyring", (double)ds.rekeys);
}
