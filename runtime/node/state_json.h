/* The cluster state as JSON, in Elasticsearch's layout (state_json.c). */
#ifndef CL_NODE_STATE_JSON_H
#define CL_NODE_STATE_JSON_H
#include <jansson.h>

#include "election/election.h"

/* the name a node excluded while down is shown by (NULL: unknown, its id is shown) */
typedef const char *(*cl_state_name_fn)(void *ud, const char *id);
json_t *cl_state_json(const char *cluster, const cl_el_state *st, cl_state_name_fn name_of, void *ud);
/* What changed from base to st, for a reader that holds base (Lua's state_committed: a
 * whole state per commit on every node was O(N) allocations per node per commit): the
 * same top-level fields and metadata.cluster_coordination as cl_state_json, "delta":
 * true, "base_term" and "base_version", "nodes_changed" (id -> entry, added or changed),
 * "nodes_removed" (ids), and metadata.user only when it changed. Both states' nodes must
 * be sorted by id, as the core keeps them. */
json_t *cl_state_json_delta(const char *cluster, const cl_el_state *base, const cl_el_state *st,
                            cl_state_name_fn name_of, void *ud);

#endif
