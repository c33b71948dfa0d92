/* Answers that several admin routes share (health, filter_path), built on the control
 * loop from the node's own state. */
#ifndef CL_ADMIN_VIEWS_H
#define CL_ADMIN_VIEWS_H
#include <jansson.h>

#include "admin/admin.h"

struct cl_node;

/* GET /_cluster/health's body (without timed_out). number_of_nodes counts the members of
 * the committed cluster state (as /_cat/nodes lists them), or this node alone before
 * any state is committed; number_of_connections the peers connected now. */
json_t *cl_admin_health_json(struct cl_node *n);

/* Reads filter_path into fp (CL_JSON_FILTER_MAX_LEN + 1 bytes); 0, or -1 after
 * answering 400 with what is wrong. */
int cl_admin_filter_param(cl_admin *a, cl_admin_req *req, char *fp);

#endif
