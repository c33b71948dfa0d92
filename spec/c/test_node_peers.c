/* The node's table of peers (runtime/node/peers.c): found by name through its index as
 * the table grows past a large cluster's size and as peers are forgotten (the last entry
 * fills the hole, so positions move). Checked against a walk of the table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "node/node_internal.h"

static cl_node_peer *walk(cl_node *n, const char *name) {
  for (int i = 0; i < n->n_peers; i++)
    if (strcmp(n->peers[i].name, name) == 0) return &n->peers[i];
  return NULL;
}

int main(void) {
  cl_node *n = calloc(1, sizeof *n);
  char name[64];
  enum { N = 1500 };
  int added = 1;
  for (int i = 0; i < N && added; i++) {
    snprintf(name, sizeof name, "node%d@127.0.%d.%d:4370", i, i / 250, i % 250 + 1);
    cl_node_peer *p = cl_node_peer_add(n, name);
    added = p && !strcmp(p->name, name) && cl_node_peer_add(n, name) == p; /* added once */
  }
  EXPECT("node peers: 1,500 added once each", added && n->n_peers == N, "%d peers", n->n_peers);
  int same = 1;
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "node%d@127.0.%d.%d:4370", i, i / 250, i % 250 + 1);
    cl_node_peer *p = cl_node_peer_by_name(n, name);
    same &= p != NULL && p == walk(n, name);
  }
  EXPECT("node peers: every one found by name, the entry the table holds", same, "a lookup missed");
  EXPECT("node peers: an unknown name is not found",
         !cl_node_peer_by_name(n, "node1500@127.0.6.1:4370") && !cl_node_peer_by_name(n, "node1@127.0.0.9:4370"),
         "found");

  /* forget every third (the table moves its last entries into the holes) */
  int forgotten = 0;
  for (int i = 0; i < N; i += 3) {
    snprintf(name, sizeof name, "node%d@127.0.%d.%d:4370", i, i / 250, i % 250 + 1);
    cl_node_peer_forget(n, name);
    forgotten++;
  }
  same = n->n_peers == N - forgotten;
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "node%d@127.0.%d.%d:4370", i, i / 250, i % 250 + 1);
    cl_node_peer *p = cl_node_peer_by_name(n, name);
    same &= i % 3 == 0 ? p == NULL : (p != NULL && p == walk(n, name) && !strcmp(p->name, name));
  }
  EXPECT("node peers: after forgetting a third, the rest are found where they moved and the forgotten are gone",
         same, "%d peers", n->n_peers);
  /* and added back after that */
  snprintf(name, sizeof name, "node0@127.0.0.1:4370");
  cl_node_peer *back = cl_node_peer_add(n, name);
  EXPECT("node peers: a forgotten peer added again is found", back && cl_node_peer_by_name(n, name) == back,
         "not found");
  /* an up peer is not forgotten */
  back->up = 1;
  cl_node_peer_forget(n, name);
  EXPECT("node peers: a peer that is up is not forgotten", cl_node_peer_by_name(n, name) == back, "forgotten");

  for (int i = 0; i < n->n_peers; i++) free(n->peers[i].name);
  free(n->peers);
  free(n->pidx);
  free(n);
  return harness_exit();
}
