/* The calls an Elasticsearch operator types every day: GET /, /_cat/nodes, /_cat/master,
 * /_cat/health and /_cluster/state/{metrics}, with Elasticsearch's parameters. */
#ifndef CL_ADMIN_CAT_H
#define CL_ADMIN_CAT_H
#include "admin/admin.h"

struct cl_node;

void cl_cat_start(cl_admin *a, struct cl_node *n);

#endif
