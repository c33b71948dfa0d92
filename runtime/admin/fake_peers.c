/* POST /_test/peers: synthetic peers for the admin views (see fake_peers.h). A real
 * cluster of 1,000 processes is not needed to prove that /_nodes pages and counts, that
 * `clusterlua status` caps its rows, or that /metrics has no series per peer: those
 * depend only on the list the transport hands out, which this file imitates. */
#include "admin/fake_peers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_MAX 100000

typedef struct {
  char name[64], id[32], addr[32];
  const char *status, *roles;
  int connected;
  uint64_t since_ms, age_ms; /* the last frame's age stays the same: they never change */
  uint32_t rtt_us;
} fake;

struct cl_fake_peers {
  fake *v;
  size_t n;
  uv_loop_t *loop;
};

static int count_param(cl_admin_req *req, const char *name, long *out, char *err, size_t errlen) {
  char b[16];
  int q = cl_admin_query_lookup(req, name, b, sizeof b);
  *out = 0;
  if (q == CL_ADMIN_QP_ABSENT) return 0;
  size_t len = q == CL_ADMIN_QP_OK ? strlen(b) : 0;
  if (len == 0 || len > 6 || strspn(b, "0123456789") != len || (*out = strtol(b, NULL, 10)) > FAKE_MAX) {
    snprintf(err, errlen, "%s: expected a whole number from 0 to %d", name, FAKE_MAX);
    return -1;
  }
  return 0;
}

static void h_peers(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_fake_peers *F = ud;
  char err[128];
  long count, down, configured, disconnected;
  if (count_param(req, "count", &count, err, sizeof err) || count_param(req, "down", &down, err, sizeof err) ||
      count_param(req, "configured", &configured, err, sizeof err) ||
      count_param(req, "disconnected", &disconnected, err, sizeof err)) {
    cl_admin_reply_error(a, req->priv, 400, "%s", err);
    return;
  }
  if (down + configured + disconnected > count) {
    cl_admin_reply_error(a, req->priv, 400, "down + configured + disconnected exceeds count");
    return;
  }
  fake *v = count ? calloc((size_t)count, sizeof *v) : NULL;
  if (count && !v) {
    cl_admin_reply_error(a, req->priv, 503, "out of memory");
    return;
  }
  uint64_t now = uv_now(F->loop);
  for (long i = 0; i < count; i++) {
    fake *f = &v[i];
    /* names that sort apart from real ones ("node1@..."), addresses in 10/8 */
    snprintf(f->name, sizeof f->name, "fake%05ld@10.%ld.%ld.%ld:4370", i, (i >> 16) & 255, (i >> 8) & 255, i & 255);
    snprintf(f->addr, sizeof f->addr, "10.%ld.%ld.%ld:4370", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    snprintf(f->id, sizeof f->id, "fakeid%05ld", i);
    f->roles = i % 10 == 0 ? "master,data" : "data";
    f->status = i < down                               ? "down"
                : i < down + configured                ? "configured"
                : i < down + configured + disconnected ? "disconnected"
                                                       : "up";
    f->connected = strcmp(f->status, "up") == 0;
    f->since_ms = now;
    f->age_ms = (uint64_t)(i % 100);
    f->rtt_us = 200 + (uint32_t)(i % 500);
  }
  free(F->v);
  F->v = v;
  F->n = (size_t)count;
  cl_admin_reply_json(a, req->priv, 200, json_pack("{s:b, s:I}", "acknowledged", 1, "count", (json_int_t)count));
}

cl_fake_peers *cl_fake_peers_start(cl_admin *a, uv_loop_t *loop) {
  cl_fake_peers *F = calloc(1, sizeof *F);
  if (!F) return NULL;
  F->loop = loop;
  cl_admin_route(a, "POST", "/_test/peers", h_peers, F);
  return F;
}

void cl_fake_peers_stop(cl_fake_peers *F) {
  if (!F) return;
  free(F->v);
  free(F);
}

void cl_fake_peers_foreach(const cl_fake_peers *F, void (*fn)(void *ud, const cl_peer_info *p), void *ud) {
  if (!F) return;
  uint64_t now = F->n ? uv_now(F->loop) : 0;
  for (size_t i = 0; i < F->n; i++) {
    const fake *f = &F->v[i];
    cl_peer_info p = {.name = f->name,
                      .node_id = f->connected ? f->id : "",
                      .address = f->addr,
                      .roles = f->roles,
                      .rtt_us = f->rtt_us,
                      .since_ms = f->since_ms,
                      .last_heartbeat_ms = now > f->age_ms ? now - f->age_ms : 1,
                      .connected = f->connected,
                      .wanted = 1,
                      .status = f->status,
                      .fingerprint = ""};
    fn(ud, &p);
  }
}
