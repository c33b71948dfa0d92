/* Requests in flight, and where their answers go. Lua and the admin endpoint both ask
 * the election for changes (a metadata update, voting exclusions) and the admin asks Lua
 * for reloads; each asker counts its own ids. The node gives every request an id of its
 * own and remembers the asker and the asker's id, so an answer finds its way back by a
 * lookup rather than by a bit reserved in the id.
 *
 * Runs on the control loop. The table stays small: the election answers every request
 * (at most its MAX_REQS in progress, each with a deadline) and the admin server every
 * reload (its handler deadline); CL_REQS_MAX bounds it anyway. */
#include <stdlib.h>
#include <string.h>

#include "core/queue.h"
#include "node/node_internal.h"

#define CL_REQS_MAX 1024

static uint64_t req_add(cl_node *n, int origin, uint64_t origin_id, void *priv, int for_lua) {
  if (n->n_reqs == CL_REQS_MAX) return 0;
  if (n->n_reqs == n->reqs_cap) {
    size_t cap = n->reqs_cap ? n->reqs_cap * 2 : 8;
    cl_node_req *r = realloc(n->reqs, cap * sizeof *r);
    if (!r) return 0;
    n->reqs = r;
    n->reqs_cap = cap;
  }
  /* The master remembers the last applied update by (node id, request id) to drop a
   * re-forwarded duplicate, and the node id survives a restart: a random salt per run
   * keeps a new request from passing for an old one (found by the crash-consistency
   * spec). Salted ids have the top bit set, so they never meet the unsalted ones that pass
   * through Lua numbers (kept below 2^53); the salt keeps 62 bits, so the sum never wraps. */
  uint64_t id = for_lua ? ++n->req_next : ((n->req_salt >> 2) | 1ull << 63) + ++n->req_next;
  n->reqs[n->n_reqs++] = (cl_node_req){.id = id, .origin = origin, .origin_id = origin_id, .priv = priv};
  return id;
}

uint64_t cl_node_req_add(cl_node *n, int origin, uint64_t origin_id, void *priv) {
  return req_add(n, origin, origin_id, priv, 0);
}

int cl_node_req_take(cl_node *n, uint64_t id, cl_node_req *out) {
  for (size_t i = 0; i < n->n_reqs; i++) {
    if (n->reqs[i].id != id) continue;
    *out = n->reqs[i];
    n->reqs[i] = n->reqs[--n->n_reqs];
    return 1;
  }
  return 0;
}

/* POST /_reload asks Lua; the answer is CL_CMD_NODE_RELOAD_DONE with this id (node.c) */
int cl_node_reload_request(cl_node *n, void *priv) {
  uint64_t id = req_add(n, CL_REQ_FROM_ADMIN, 0, priv, 1);
  if (!id) return -1;
  n->reloads++;
  cl_node_emit(n, CL_EVT_NODE_RELOAD, NULL, NULL, 0, id, 0, CL_Q_FORCE);
  return 0;
}

void cl_node_reqs_free(cl_node *n) {
  free(n->reqs);
  n->reqs = NULL;
  n->n_reqs = n->reqs_cap = 0;
}
