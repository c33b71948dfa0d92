/* Roles: the comma-separated list a node is started with ("master", "voting_only", or
 * free-form tags), as election flags and as JSON. */
#include <string.h>

#include "election/election.h"
#include "node/roles.h"

uint32_t cl_node_roles_flags(const char *roles) {
  uint32_t f = 0;
  const char *p = roles;
  while (p && *p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 6 && strncmp(p, "master", 6) == 0) f |= CL_EL_F_MASTER;
    if (len == 11 && strncmp(p, "voting_only", 11) == 0) f |= CL_EL_F_MASTER | CL_EL_F_VOTING_ONLY;
    p = e ? e + 1 : NULL;
  }
  return f;
}

json_t *cl_node_roles_json(const char *tags) {
  json_t *a = json_array();
  const char *p = tags;
  while (p && *p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len) json_array_append_new(a, json_stringn(p, len));
    p = e ? e + 1 : NULL;
  }
  return a;
}

