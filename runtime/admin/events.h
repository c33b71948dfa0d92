/* The node's event stream: GET /_events as Server-Sent Events, from a bounded history
 * kept on the control loop. Every function here runs on the control loop. */
#ifndef CL_ADMIN_EVENTS_H
#define CL_ADMIN_EVENTS_H
#include <jansson.h>
#include <stdint.h>

#include "admin/admin.h"

/* The history's bounds: the newest events are kept, both counts hold. */
#define CL_EVENTS_HISTORY 1024
#define CL_EVENTS_HISTORY_BYTES (192u << 10)
/* Streams open at once (each holds a connection of the admin table) */
#define CL_EVENTS_STREAMS_MAX 16
#define CL_EVENTS_PING_MS 15000
/* A string field longer than this is cut (a traceback, a long error) */
#define CL_EVENTS_FIELD_MAX 2048

/* The stream's state (history, open streams), one per admin endpoint. */
typedef struct cl_events cl_events;

/* Registers GET /_events (and, with test_routes, POST /_test/events) on a. incarnation
 * makes the ids unique across restarts of the node. NULL when out of memory. */
cl_events *cl_events_start(cl_admin *a, uv_loop_t *loop, uint64_t incarnation, int test_routes);
/* Appends an event (fields borrowed; "time" is added) and sends it to every stream.
 * Never waits: a stream that cannot take it is dropped. No-op when e is NULL. */
void cl_events_record(cl_events *e, const char *kind, json_t *fields);
/* Closes the streams and frees the history and e (NULL: nothing). Before the server
 * goes: e holds its stream handles. */
void cl_events_stop(cl_events *e);

typedef struct cl_events_stats {
  uint64_t recorded;        /* events since start */
  uint64_t streams_dropped; /* streams closed for falling too far behind */
  uint64_t streams_refused; /* past CL_EVENTS_STREAMS_MAX */
  unsigned streams_open;
} cl_events_stats;
void cl_events_stats_get(const cl_events *e, cl_events_stats *out); /* zeros for NULL */

#endif
