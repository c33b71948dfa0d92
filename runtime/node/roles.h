/* Node roles: "master", "voting_only", "data", ... as a comma-separated list. */
#ifndef CL_NODE_ROLES_H
#define CL_NODE_ROLES_H
#include <jansson.h>
#include <stdint.h>

/* the election's flags (CL_EL_F_MASTER, CL_EL_F_VOTING_ONLY) of a role list */
uint32_t cl_node_roles_flags(const char *roles);
json_t *cl_node_roles_json(const char *comma_list); /* "a,b" -> ["a","b"] */

#endif
