/* The cluster state as JSON, in Elasticsearch's layout (state_json.c). */
#ifndef CL_NODE_STATE_JSON_H
#define CL_NODE_STATE_JSON_H
#include <jansson.h>

#include "election/election.h"

/* the name a node excluded while down is shown by (NULL: unknown, its id is shown) */
typedef const char *(*cl_state_name_fn)(void *ud, const char *id);
json_t *cl_state_json(const char *cluster, const cl_el_state *st, cl_state_name_fn name_of, void *ud);

#endif
