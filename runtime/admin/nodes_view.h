/* GET /_nodes at any size: its query (filters, order, paging) and its answer, built
 * from the node entries one by one. Pure (jansson and strings only: no node, no I/O),
 * so that it is tested with thousands of entries in spec/c/test_nodes_view.c.
 *
 * At 1,000 nodes the whole list is ~300 KB of JSON that nobody reads: an operator
 * wants the counts (the summary), the unhealthy nodes, and a page of the rest, as
 * Elasticsearch's _cat APIs and `consul members -status=failed` give them. */
#ifndef CL_NODES_VIEW_H
#define CL_NODES_VIEW_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* bounds on the query's values (longer ones are refused, naming the parameter) */
#define CL_NODES_PARAM_MAX 1024  /* name=, role=, status= */
#define CL_NODES_MAX_PATTERNS 32 /* comma-separated entries of name= or role= */
#define CL_NODES_SIZE_MAX 100000 /* size= and from= */

enum {
  CL_NODES_S_UP = 1,
  CL_NODES_S_DOWN = 2,
  CL_NODES_S_CONFIGURED = 4,
  CL_NODES_S_DISCONNECTED = 8,
  CL_NODES_S_OTHER = 16, /* a status this file does not know (a newer transport) */
  CL_NODES_S_UNHEALTHY = ~CL_NODES_S_UP & 31
};

typedef struct cl_nodes_query {
  unsigned status;                          /* CL_NODES_S_* mask; 0: any */
  char name[CL_NODES_PARAM_MAX + 1];        /* comma-separated patterns ('*' any run); "" any */
  char role[CL_NODES_PARAM_MAX + 1];        /* comma-separated roles, any of them; "" any */
  long from, size;                          /* size < 0: every match */
  int by_status;                            /* sort=status: unhealthy before up */
} cl_nodes_query;

/* A query that matches everything, in the default order, unpaged. */
void cl_nodes_query_init(cl_nodes_query *q);

/* Sets one parameter from its (decoded) value: "status", "name", "role", "from", "size"
 * or "sort". 0, or -1 with "PARAM: what is wrong" in err. A NULL value is absent (0). */
int cl_nodes_query_set(cl_nodes_query *q, const char *param, const char *value, char *err, size_t errlen);

/* 1 if name matches one of the comma-separated patterns; '*' matches any run of
 * characters. A pattern without '@' also matches the short name (before '@'), so
 * "node1" and "edge-*" work as they do in cl.send or the topology. */
int cl_nodes_name_match(const char *patterns, const char *name);

/* One node as the transport (or this node) describes it. Strings may be NULL. */
typedef struct cl_nodes_entry {
  const char *name, *id, *address, *roles /* "a,b" */, *status, *fingerprint;
  int self, connected;
  int64_t since_ms;          /* wall clock, ms; 0: unknown (null) */
  int64_t last_heartbeat_ms; /* age in ms; < 0: never (null) */
  uint32_t rtt_us;
} cl_nodes_entry;

typedef struct cl_nodes_view cl_nodes_view;

/* NULL on out of memory. The query is copied. */
cl_nodes_view *cl_nodes_view_new(const cl_nodes_query *q);
/* Counts the entry in the summary and keeps it if it matches (its strings are copied).
 * 0, or -1 on out of memory. */
int cl_nodes_view_add(cl_nodes_view *v, const cl_nodes_entry *e);
/* The answer's two parts (new references; -1 on out of memory, with both NULL):
 * nodes: the matching entries, sorted (this node first, then by name; with sort=status
 * the unhealthy before the rest, by name within each) and paged;
 * summary: {"total", "number_of_connections", "by_status": {"up", "down", "configured",
 * "disconnected"[, "other"]}, "unhealthy", "matched", "from", "returned"}: total and
 * the counts are over every entry added, matched after the filters, returned after
 * paging. */
int cl_nodes_view_finish(cl_nodes_view *v, json_t **nodes, json_t **summary);
void cl_nodes_view_free(cl_nodes_view *v);

#endif
