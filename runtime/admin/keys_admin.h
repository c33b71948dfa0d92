/* The keyring's admin routes and metrics (keys_admin.c). */
#ifndef CL_KEYS_ADMIN_H
#define CL_KEYS_ADMIN_H

struct cl_node;
struct cl_metrics;

/* GET /_keys, POST /_keys/install, /_keys/use, /_keys/remove */
void cl_keys_admin_routes(struct cl_node *n);
/* clusterlua_handshakes_total and clusterlua_auth_failures_total by fingerprint */
void cl_keys_admin_metrics(struct cl_node *n, struct cl_metrics *m);

#endif
