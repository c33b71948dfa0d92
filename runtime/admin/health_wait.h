/* GET /_cluster/health with Elasticsearch's wait_for_status, wait_for_nodes and timeout:
 * a waiting request is parked (the control loop never waits) and answered when its
 * condition holds, or with 408 and "timed_out": true when its timeout passes. */
#ifndef CL_ADMIN_HEALTH_WAIT_H
#define CL_ADMIN_HEALTH_WAIT_H
#include "admin/admin.h"

struct cl_node;

#define CL_HEALTH_WAIT_MAX_MS 60000
#define CL_HEALTH_WAIT_DEFAULT_MS 30000
/* how often parked requests are looked at besides the node's events */
#define CL_HEALTH_WAIT_CHECK_MS 100

/* The parked requests of one admin endpoint. */
typedef struct cl_health_wait cl_health_wait;

/* Registers the route on a; NULL when out of memory. */
cl_health_wait *cl_health_wait_start(cl_admin *a, struct cl_node *n);
/* Something changed (an event): look at the parked requests now (NULL: nothing). */
void cl_health_wait_poke(cl_health_wait *w);
/* The endpoint is closing: answers the parked requests 503 and frees them and w. */
void cl_health_wait_stop(cl_health_wait *w);
unsigned cl_health_wait_count(const cl_health_wait *w); /* 0 for NULL */

#endif
