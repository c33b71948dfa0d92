/* The node's admin routes (node_admin.c). */
#ifndef CL_NODE_ADMIN_H
#define CL_NODE_ADMIN_H

/* Gives the node its admin endpoint (started when --admin is set). Call once, before
 * the node starts: the node itself links no admin code. */
struct cl_node;
void cl_node_admin_install(struct cl_node *n);

#endif
