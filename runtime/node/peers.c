/* The node's table of peers, and its events to Lua: what the node, the election glue and
 * the admin routes share on the control loop. */
#include <stdlib.h>
#include <string.h>

#include "core/name.h"
#include "node/node_internal.h"

cl_node_peer *cl_node_peer_by_name(cl_node *n, const char *name) {
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
  return p;
}

void cl_node_emit(cl_node *n, uint32_t type, const char *name, const void *body, size_t len, uint64_t id,
                  int64_t num, int mode) {
  cl_msg *m = cl_msg_new(type, name, body, len);
  if (!m) return;
  m->id = id;
  m->num = num;
  if (cl_control_emit(n->c, m, mode) != 0) {
    free(m);
    n->msgs_dropped++;
  }
}

/* The last entry fills the hole, as no pointer into it is kept across callbacks. */
void cl_node_peer_forget(cl_node *n, const char *name) {
  cl_node_peer *p = cl_node_peer_by_name(n, name);
  if (!p || p->up) return;
  cl_node_peer *last = &n->peers[n->n_peers - 1];
  free(p->name);
  if (p != last) *p = *last;
  n->n_peers--;
}

