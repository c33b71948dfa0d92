/* The admin HTTP endpoint's server core. It runs on the control loop so that the
 * read-only answers keep coming while Lua is busy; routes are registered by the node
 * glue. Every function here must be called on the thread that runs `loop`.
 *
 * Every request is hostile: bodies, header sections, request time, connection count
 * and buffered output are all bounded, and every error is JSON {"error": "..."}. */
#ifndef CL_ADMIN_H
#define CL_ADMIN_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct cl_admin cl_admin;

typedef struct cl_admin_req {
  const char *method; /* "GET", "POST", ... */
  const char *path;   /* percent-decoded, without the query */
  const char *query;  /* raw query string (not decoded) or "" */
  const char *body;   /* NUL-terminated for convenience; body_len excludes the NUL */
  size_t body_len;
  int authenticated;         /* the token was given, or none is set (0 only on public routes) */
  const char *accept;        /* the Accept header or "" */
  const char *last_event_id; /* the Last-Event-ID header or NULL */
  /* Private: a request handle (generation id, not a pointer) for cl_admin_reply*.
   * Keep it to answer later; a stale handle (client gone, deadline passed, already
   * answered) is ignored safely. */
  void *priv;
} cl_admin_req;

/* The req struct and its strings are valid only during the handler call: copy what an
 * asynchronous answer needs. A handler either answers now or keeps req->priv and
 * answers later; if nobody answers within the handler deadline the server answers
 * 503 {"error": "..."} itself. */
typedef void (*cl_admin_handler)(cl_admin *a, cl_admin_req *req, void *ud);

typedef struct cl_admin_limits {
  size_t max_body;              /* 1 MiB; larger -> 413 without buffering */
  size_t max_header;            /* 16 KiB for request line + headers; larger -> 431 */
  unsigned max_conns;           /* 64 concurrent. When full, a new connection takes the place
                                 * of the oldest one without complete request headers (or
                                 * one only draining); if every one is serving a request,
                                 * the new one is closed at once */
  uint64_t header_timeout_ms;   /* 2 s for the request line and headers, from the request's
                                 * first byte (from connecting, for the first one) -> 408 */
  uint64_t request_timeout_ms;  /* 10 s from a request's first byte to its end -> 408 */
  uint64_t idle_timeout_ms;     /* 30 s keep-alive idle -> closed */
  uint64_t handler_timeout_ms;  /* 10 s for a handler to answer -> 503 */
  uint64_t write_timeout_ms;    /* 10 s for a client to take a response -> closed */
  size_t max_output;            /* 16 MiB: a larger response -> 500 */
} cl_admin_limits;

/* host_port: "127.0.0.1:9200", "[::1]:9200", "localhost:9200", "0.0.0.0:9200" (port 0
 * picks a free one, see cl_admin_port). Anything but loopback requires a token; with a
 * token every request needs "Authorization: Bearer <token>". token NULL or "" = none.
 * The token is copied. Returns NULL with a message in err on failure. */
cl_admin *cl_admin_start(uv_loop_t *loop, const char *host_port, const char *token, char *err,
                         size_t errlen);
/* Zero fields keep their current value. Applies to requests that start afterwards. */
void cl_admin_set_limits(cl_admin *a, const cl_admin_limits *lim);
/* The bound TCP port (useful with port 0), or -1. */
int cl_admin_port(const cl_admin *a);

/* Exact path match; method such as "GET". Registering the same method+path again
 * replaces the handler. A known path with another method answers 405 with Allow.
 * Returns 0, or -1 (bad arguments, out of memory). */
int cl_admin_route(cl_admin *a, const char *method, const char *path, cl_admin_handler h, void *ud);

/* A route served without the token, GET only (the console page: it asks for the token
 * itself). Handlers see req->authenticated. */
int cl_admin_route_public(cl_admin *a, const char *path, cl_admin_handler h, void *ud);
/* A path ending in "/ *" (e.g. "/_cluster/state/ *") is a prefix route: it matches every
 * path below it, after the exact paths. The same holds for cl_admin_route. */

/* 1 if the endpoint requires a token. */
int cl_admin_has_token(const cl_admin *a);
void cl_admin_get_limits(const cl_admin *a, cl_admin_limits *out);

/* Answer a request. content_type NULL = "application/json". body is copied. */
void cl_admin_reply(cl_admin *a, void *priv, int status, const char *content_type, const char *body,
                    size_t len);
/* obj is stolen (decref'd here, also when the handle is stale). NULL obj -> 500.
 * "?pretty" in the request's query indents the output. */
void cl_admin_reply_json(cl_admin *a, void *priv, int status, json_t *obj);
/* {"error": "<formatted message>"} */
void cl_admin_reply_error(cl_admin *a, void *priv, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with extra header lines ("Name: value\r\n..." , at most 1.5 KiB). */
void cl_admin_reply_headers(cl_admin *a, void *priv, int status, const char *content_type, const char *headers,
                            const char *body, size_t len);

/* Streams (Server-Sent Events): answers a pending request with 200 and a body without
 * end (Connection: close). The connection leaves every request timer; what it has not
 * taken is bounded (256 KiB in user space, a fixed 64 KiB kernel send buffer): a write
 * past that closes it. closed(ud) is called once when the connection goes for any
 * reason but cl_admin_stream_close (client gone, over the bound, endpoint closing).
 * Returns the stream handle, or NULL (stale request, write failed). */
void *cl_admin_stream_begin(cl_admin *a, void *priv, const char *content_type, void (*closed)(void *ud), void *ud);
/* 0 sent or queued; -1 the stream is gone; -2 the client fell too far behind and was
 * dropped (closed is called). Never blocks. */
int cl_admin_stream_write(cl_admin *a, void *stream, const char *data, size_t len);
void cl_admin_stream_close(cl_admin *a, void *stream);

/* Moves a pending request's deadline to now + ms (for calls that legitimately wait
 * longer, e.g. until a commit). Ignored for a stale handle. */
void cl_admin_extend_deadline(cl_admin *a, void *priv, uint64_t ms);
/* 1 if the handle still refers to a request waiting for its answer. */
int cl_admin_pending(cl_admin *a, void *priv);
/* 1 when the client of a pending request has closed its side (EOF): a long wait (a
 * parked request) should answer now rather than hold its place until its deadline. */
int cl_admin_client_gone(cl_admin *a, void *priv);

/* Value of a query parameter, percent-decoded ('+' is a space) into buf. "" when the
 * parameter has no '='. NULL when absent, malformed (bad escape, NUL byte) or longer
 * than buflen-1. */
const char *cl_admin_query_param(const cl_admin_req *req, const char *name, char *buf,
                                 size_t buflen);
/* The same, saying why there is no value, so that a handler can name what was wrong:
 * CL_ADMIN_QP_OK (buf holds the value), _ABSENT, _MALFORMED (bad escape or NUL byte) or
 * _TOO_LONG (longer than buflen-1). */
enum { CL_ADMIN_QP_OK = 0, CL_ADMIN_QP_ABSENT = -1, CL_ADMIN_QP_MALFORMED = -2, CL_ADMIN_QP_TOO_LONG = -3 };
int cl_admin_query_lookup(const cl_admin_req *req, const char *name, char *buf, size_t buflen);

/* Stops listening, closes every connection and frees the server once all handles are
 * closed; then calls done(ud) (done may be NULL). No cl_admin_* call is allowed on a
 * after this, including late replies. */
void cl_admin_close(cl_admin *a, void (*done)(void *), void *ud);

#endif
