/* The node's table of peers, and its events to Lua: what the node, the election glue and
 * the admin routes share on the control loop. */
#include <stdlib.h>
#include <string.h>

#include "core/name.h"
#include "node/node_internal.h"
#include "transport/watch.h"

/* Peers by name through an index: every election message in and out, and every
 * transport event, looks its peer up by name, and a node of a large cluster knows every
 * member (a walk of 300 names on the heap for each of a follower's heartbeats was a
 * share of its idle CPU, issue 18). */
static uint32_t pidx_slot(const char *name, uint32_t cap) { return (uint32_t)cl_watch_hash(name) & (cap - 1); }

/* (re)builds the index at cap slots (a power of two above twice the peers); -1 out of
 * memory, the old index kept (lookups then fall back to the walk: below) */
static int pidx_rebuild(cl_node *n, uint32_t cap) {
  uint32_t *ix = calloc(cap, sizeof *ix);
  if (!ix) return -1;
  for (int i = 0; i < n->n_peers; i++) {
    uint32_t j = pidx_slot(n->peers[i].name, cap);
    while (ix[j]) j = (j + 1) & (cap - 1);
    ix[j] = (uint32_t)i + 1;
  }
  free(n->pidx);
  n->pidx = ix;
  n->pidx_cap = cap;
  return 0;
}

cl_node_peer *cl_node_peer_by_name(cl_node *n, const char *name) {
  if (n->pidx_cap && (uint32_t)n->n_peers * 2 <= n->pidx_cap) {
    uint32_t mask = n->pidx_cap - 1;
    for (uint32_t j = pidx_slot(name, n->pidx_cap); n->pidx[j]; j = (j + 1) & mask) {
      cl_node_peer *p = &n->peers[n->pidx[j] - 1];
      if (strcmp(p->name, name) == 0) return p;
    }
    return NULL;
  }
  /* no index that fits (it could not grow): the walk */
  for (int i = 0; i < n->n_peers; i++)
    if (strcmp(n->peers[i].name, name) == 0) return &n->peers[i];
  return NULL;
}

cl_node_peer *cl_node_peer_by_id(cl_node *n, const char *id) {
  /* a restarted node keeps its id but the newest entry for it is the live one */
  for (int i = 0; i < n->n_peers; i++)
    if (n->peers[i].up && strcmp(n->peers[i].id, id) == 0) return &n->peers[i];
  for (int i = 0; i < n->n_peers; i++)
    if (strcmp(n->peers[i].id, id) == 0) return &n->peers[i];
  return NULL;
}

/* A node that is down is no longer in the cluster state, but the operator still names it:
 * hand the election core its id, which it matches against the voting configuration. */
const char *cl_node_exclusion_target(cl_node *n, const char *name) {
  cl_node_peer *hit = NULL;
  for (int i = 0; i < n->n_peers; i++) {
    cl_node_peer *p = &n->peers[i];
    if (!cl_node_name_matches(name, p->name)) continue;
    if (hit) return name; /* ambiguous: let the core say so */
    hit = p;
  }
  return hit && !hit->up && hit->id[0] ? hit->id : name;
}

cl_node_peer *cl_node_peer_add(cl_node *n, const char *name) {
  cl_node_peer *p = cl_node_peer_by_name(n, name);
  if (p) return p;
  if (n->n_peers == n->cap_peers) {
    int cap = n->cap_peers ? 2 * n->cap_peers : 16;
    cl_node_peer *v = realloc(n->peers, (size_t)cap * sizeof *v);
    if (!v) return NULL;
    n->peers = v;
    n->cap_peers = cap;
  }
  char *copy = strdup(name);
  if (!copy) return NULL;
  p = &n->peers[n->n_peers++];
  memset(p, 0, sizeof *p);
  p->name = copy;
  if ((uint32_t)n->n_peers * 2 > n->pidx_cap) {
    uint32_t cap = n->pidx_cap ? n->pidx_cap : 32;
    while ((uint32_t)n->n_peers * 2 > cap) cap *= 2;
    pidx_rebuild(n, cap); /* if it fails, lookups walk until it succeeds */
  } else {
    uint32_t j = pidx_slot(copy, n->pidx_cap);
    while (n->pidx[j]) j = (j + 1) & (n->pidx_cap - 1);
    n->pidx[j] = (uint32_t)n->n_peers;
  }
  return p;
}

int cl_node_emit(cl_node *n, uint32_t type, const char *name, const void *body, size_t len, uint64_t id,
                 int64_t num, int mode) {
  cl_msg *m = cl_msg_new(type, name, body, len);
  if (!m) return -1;
  m->id = id;
  m->num = num;
  if (cl_control_emit(n->c, m, mode) != 0) {
    free(m);
    n->msgs_dropped++;
    return -1;
  }
  return 0;
}

/* The last entry fills the hole, as no pointer into it is kept across callbacks. */
void cl_node_peer_forget(cl_node *n, const char *name) {
  cl_node_peer *p = cl_node_peer_by_name(n, name);
  if (!p || p->up) return;
  cl_node_peer *last = &n->peers[n->n_peers - 1];
  free(p->name);
  if (p != last) *p = *last;
  n->n_peers--;
  /* forgetting is rare (a departure past reconnect_timeout): positions moved, rebuild */
  if (n->pidx_cap && pidx_rebuild(n, n->pidx_cap)) n->pidx_cap = 0, free(n->pidx), n->pidx = NULL;
}

