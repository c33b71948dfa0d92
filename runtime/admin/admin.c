/* The admin HTTP server core: libhttp-parser on the control loop.
 *
 * A connection is a small state machine with one timer whose meaning follows the
 * state (idle keep-alive, header and request deadlines, handler deadline, write
 * deadline, drain).
 * Only one request per connection is in flight: while a handler works or a response
 * is being written, further bytes (pipelining) wait in a bounded input buffer and
 * reading stops when it is full, so a client can never make us buffer without bound.
 * Handlers get a generation id rather than a pointer, so a late answer for a client
 * that went away is dropped instead of touching freed memory.
 *
 * The connection table is small (64) and slow clients must not be able to fill it:
 * when it is full, a new connection takes the place of the oldest one that has not
 * sent its request headers yet (half-open, dribbling), and headers must arrive within
 * a short deadline (2 s) anyway. Connections with a request being served are never
 * taken. */
#include "admin/admin.h"

#include <errno.h>
#include <stdatomic.h>
#include <http_parser.h>
#include <limits.h>
#include <netdb.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/log.h"

#define SUBSYS "admin"
#define IN_CAP 16384
#define SLOT_BITS 10
#define MAX_SLOTS (1u << SLOT_BITS)
#define AUTH_CAP 512
#define FIELD_CAP 32
#define DRAIN_MS 2000
#define DRAIN_MAX_BYTES (4u << 20)
/* Connections accepted per loop iteration. Between iterations the loop reads what the
 * accepted ones sent, so a real request accepted just before its bytes arrived is read
 * before a burst of later connections could push it out of the table (64 / 16 leaves
 * it at least four iterations). */
#define ACCEPTS_PER_TICK 16
/* Deep enough that a flood of ten times the table does not fill the kernel's accept
 * queue: a full queue drops a real client's SYN, which costs it a 1 s retransmit. */
#define LISTEN_BACKLOG 1024

/* S_STREAMING: the answer's head is sent and its body has no end (an event stream);
 * no idle, header or handler timer applies, only the bound on unsent bytes. */
enum { S_IDLE, S_READING, S_HANDLING, S_WRITING, S_DRAINING, S_STREAMING, S_CLOSING };
/* headers kept for the handlers and the browser defences: H_KEPT + index into kept[] */
enum { H_NONE, H_AUTH, H_EXPECT, H_KEPT };
enum { K_HOST, K_ORIGIN, K_ACCEPT, K_LAST_EVENT_ID, K_COUNT };
static const char *const kept_names[K_COUNT] = {"host", "origin", "accept", "last-event-id"};
#define KEPT_CAP 256
/* what a stream may have waiting in user space for a slow client before it is dropped */
#define STREAM_QUEUE_MAX (256u << 10)
/* and in the kernel: a fixed send buffer (no autotuning to megabytes per slow client) */
#define STREAM_SNDBUF (64 << 10)

typedef struct route {
  char method[16];
  int is_public; /* served without the token (the console page) */
  int prefix;    /* path registered as "/x/ *": matches "/x/" and anything below */
  char *path;
  cl_admin_handler h;
  void *ud;
} route;

typedef struct conn conn;

struct cl_admin {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int port;
  int has_token;
  unsigned char token_hash[crypto_generichash_BYTES]; /* the token itself is not kept */
  cl_admin_limits lim;
  route *routes;
  size_t nroutes, routes_cap;
  conn *slots[MAX_SLOTS];
  unsigned nconns; /* allocated, including those whose handles are closing */
  unsigned nlive;  /* in a slot: what the limit counts */
  uint64_t conn_seq;
  int closing, listener_open;
  uv_check_t tick; /* after each poll: the accept budget is renewed */
  int tick_open;
  unsigned accept_budget;
  int accept_pending; /* a connection waits in libuv for the next iteration */
  void (*done)(void *);
  void *done_ud;
  cl_ratelimit rl_refuse, rl_auth, rl_evict;
};

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shut;
  cl_admin *a;
  unsigned slot;
  int state;
  int open_handles;
  int reading;
  int close_after; /* answer, then close (error, Connection: close, peer EOF) */
  int peer_eof;
  uint64_t seq;       /* accept order: the lowest is the oldest */
  uint64_t opened_ms;
  uint64_t served;    /* requests dispatched on this connection */
  int headers_done;   /* the current request's header section has arrived */
  uint64_t hdr_deadline, req_deadline;
  size_t drained;
  http_parser parser;
  /* current request */
  char *url;
  size_t url_len, url_cap;
  size_t header_bytes;
  char *body;
  size_t body_len, body_cap;
  char field[FIELD_CAP + 1];
  size_t field_len;
  int field_overflow, in_value, cur_header;
  char auth[AUTH_CAP + 1];
  size_t auth_len;
  int auth_overflow, expect_continue;
  int msg_done;
  int early_status; /* an error decided inside a parser callback */
  char early_msg[400];
  int pretty;
  uint64_t req_id; /* non-zero while a handler owes an answer */
  char extra_hdr[1536];
  struct {
    char v[KEPT_CAP + 1];
    size_t len;
    int overflow, count;
  } kept[K_COUNT];
  int authenticated; /* the token was given (or none is needed) */
  void (*stream_closed)(void *ud);
  void *stream_ud;
  char in[IN_CAP];
  size_t in_len;
};

typedef struct wreq {
  uv_write_t req;
  conn *c;
  int is_response;
  size_t len;
  char data[];
} wreq;

static _Atomic uint64_t g_seq; /* process-wide, so a handle never matches another server's */
static void conn_process(conn *c);
static void conn_close(conn *c);
static void maybe_read(conn *c);

static uint64_t now_ms(cl_admin *a) { return uv_now(a->loop); }

static const char *reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

static void arm(conn *c, uint64_t ms);

/* ---------------------------------------------------------------- writing */

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;
}

static void start_drain(conn *c) {
  /* Closing right away with unread request bytes in the kernel makes it send RST,
   * which can destroy the error response before the client reads it; so we half-close
   * and swallow what the client still sends, for a bounded time and volume. */
  c->state = S_DRAINING;
  c->in_len = 0;
  if (c->peer_eof || uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    conn_close(c);
    return;
  }
  arm(c, DRAIN_MS);
  maybe_read(c);
}

static void on_write(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  conn *c = w->c;
  int is_response = w->is_response;
  free(w);
  if (c->state == S_CLOSING) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (!is_response) return;
  if (c->close_after || c->a->closing) {
    start_drain(c);
    return;
  }
  c->state = S_IDLE;
  arm(c, c->a->lim.idle_timeout_ms);
  conn_process(c);
}

static int conn_write(conn *c, const char *head, size_t hlen, const char *body, size_t blen,
                      int is_response) {
  wreq *w = malloc(sizeof *w + hlen + blen);
  if (!w) return -1;
  w->c = c;
  w->is_response = is_response;
  w->len = hlen + blen;
  memcpy(w->data, head, hlen);
  if (blen) memcpy(w->data + hlen, body, blen);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
    free(w);
    return -1;
  }
  return 0;
}

/* Sends a full response and moves to S_WRITING. Bodies are small JSON/text, so one
 * buffer per response; the output bound is max_output, checked by the callers. */
static void conn_respond(conn *c, int status, const char *ctype, const char *body, size_t len) {
  if (c->state == S_CLOSING || c->state == S_DRAINING || c->state == S_WRITING || c->state == S_STREAMING) return;
  if (c->a->closing) c->close_after = 1;
  char head[2560];
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nConnection: %s\r\n%s\r\n",
                    status, reason(status), ctype ? ctype : "application/json", len,
                    c->close_after ? "close" : "keep-alive", c->extra_hdr);
  c->extra_hdr[0] = 0;
  c->req_id = 0;
  if (hl < 0 || (size_t)hl >= sizeof head || conn_write(c, head, (size_t)hl, body, len, 1) != 0) {
    conn_close(c);
    return;
  }
  c->state = S_WRITING;
  arm(c, c->a->lim.write_timeout_ms);
  cl_log(CL_LOG_DEBUG, SUBSYS, NULL, "%s %.*s -> %d",
         c->url_len ? http_method_str(c->parser.method) : "-",
         (int)(c->url_len > 200 ? 200 : c->url_len), c->url ? c->url : "", status);
}

static json_t *error_obj(const char *msg) {
  json_t *o = json_object();
  if (o) json_object_set_new(o, "error", json_string(msg));
  return o;
}

/* A JSON body (malloc'd, from json_dumps) ended by a newline, as curl users expect;
 * without room for it, as it was. *n: its length. */
static char *with_newline(char *s, size_t *n) {
  *n = strlen(s);
  char *t = realloc(s, *n + 2);
  if (!t) return s;
  t[(*n)++] = '\n';
  t[*n] = 0;
  return t;
}

static void conn_respond_error(conn *c, int status, const char *msg) {
  json_t *o = error_obj(msg);
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!s) {
    /* jansson rejects invalid UTF-8; messages quote client input, so fall back */
    static const char fb[] = "{\"error\":\"request rejected\"}\n";
    conn_respond(c, status, NULL, fb, sizeof fb - 1);
    return;
  }
  size_t n;
  s = with_newline(s, &n);
  conn_respond(c, status, NULL, s, n);
  free(s);
}

/* ---------------------------------------------------------------- timers/close */

static void admin_free(cl_admin *a) {
  void (*done)(void *) = a->done;
  void *ud = a->done_ud;
  for (size_t i = 0; i < a->nroutes; i++) free(a->routes[i].path);
  free(a->routes);
  sodium_memzero(a->token_hash, sizeof a->token_hash);
  free(a);
  if (done) done(ud);
}

static void on_handle_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->open_handles > 0) return;
  cl_admin *a = c->a;
  free(c->url);
  free(c->body);
  free(c);
  a->nconns--;
  if (a->closing && a->nconns == 0 && !a->listener_open && !a->tick_open) {
    admin_free(a);
  }
}

static void conn_close(conn *c) {
  if (c->state == S_CLOSING) return;
  int was_stream = c->state == S_STREAMING;
  c->state = S_CLOSING;
  c->req_id = 0;
  /* the slot frees now so a late reply with this slot's id finds nothing, and a new
   * connection may take it before the handles have finished closing */
  c->a->slots[c->slot] = NULL;
  c->a->nlive--;
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  if (was_stream && c->stream_closed) {
    void (*cb)(void *) = c->stream_closed;
    c->stream_closed = NULL;
    cb(c->stream_ud);
  }
}

static void on_timer(uv_timer_t *t) {
  conn *c = t->data;
  char msg[128];
  switch (c->state) {
    case S_READING:
      c->close_after = 1;
      if (!c->headers_done && c->hdr_deadline <= c->req_deadline)
        snprintf(msg, sizeof msg, "request headers not received within %llu ms%s",
                 (unsigned long long)c->a->lim.header_timeout_ms, c->served ? "" : " of connecting");
      else
        snprintf(msg, sizeof msg, "request not received completely within %llu ms",
                 (unsigned long long)c->a->lim.request_timeout_ms);
      conn_respond_error(c, 408, msg);
      break;
    case S_HANDLING:
      snprintf(msg, sizeof msg, "no answer within %llu ms (the node is busy; retry later)",
               (unsigned long long)c->a->lim.handler_timeout_ms);
      cl_log(CL_LOG_WARN, SUBSYS, NULL, "handler for %.*s did not answer in time",
             (int)(c->url_len > 200 ? 200 : c->url_len), c->url ? c->url : "");
      conn_respond_error(c, 503, msg);
      break;
    default: /* idle keep-alive, a client not reading its answer, drain done */
      conn_close(c);
      break;
  }
}

static void arm(conn *c, uint64_t ms) {
  uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

/* ---------------------------------------------------------------- parsing */

static int grow_append(char **buf, size_t *len, size_t *cap, const char *at, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t nc = *cap ? *cap : 256;
    while (nc < *len + n + 1) nc *= 2;
    char *b = realloc(*buf, nc);
    if (!b) return -1;
    *buf = b;
    *cap = nc;
  }
  memcpy(*buf + *len, at, n);
  *len += n;
  (*buf)[*len] = 0;
  return 0;
}

static int early(conn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int early(conn *c, int status, const char *fmt, ...) {
  c->early_status = status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->early_msg, sizeof c->early_msg, fmt, ap);
  va_end(ap);
  return -1; /* stops the parser */
}

static int count_header(conn *c, size_t n) {
  c->header_bytes += n;
  if (c->header_bytes > c->a->lim.max_header)
    return early(c, 431, "request line and headers exceed %zu bytes", c->a->lim.max_header);
  return 0;
}

static int on_message_begin(http_parser *p) {
  conn *c = p->data;
  c->url_len = 0;
  c->header_bytes = 0;
  c->body_len = 0;
  c->field_len = 0;
  c->field_overflow = c->in_value = 0;
  c->cur_header = H_NONE;
  c->auth_len = 0;
  c->auth_overflow = c->expect_continue = 0;
  for (int k = 0; k < K_COUNT; k++) c->kept[k].len = 0, c->kept[k].overflow = c->kept[k].count = 0;
  c->authenticated = 0;
  c->msg_done = 0;
  c->pretty = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  conn *c = p->data;
  if (count_header(c, n)) return -1;
  if (grow_append(&c->url, &c->url_len, &c->url_cap, at, n)) return early(c, 500, "out of memory");
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  conn *c = p->data;
  if (count_header(c, n)) return -1;
  if (c->in_value) { /* a new field starts */
    c->in_value = 0;
    c->field_len = 0;
    c->field_overflow = 0;
  }
  if (c->field_len + n > FIELD_CAP) {
    c->field_overflow = 1;
  } else {
    memcpy(c->field + c->field_len, at, n);
    c->field_len += n;
  }
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  conn *c = p->data;
  if (count_header(c, n)) return -1;
  if (!c->in_value) {
    c->in_value = 1;
    c->field[c->field_len] = 0;
    c->cur_header = H_NONE;
    if (!c->field_overflow) {
      if (strcasecmp(c->field, "authorization") == 0) {
        c->cur_header = H_AUTH;
        /* a second Authorization header is ambiguous: refuse rather than pick one */
        if (c->auth_len) c->auth_overflow = 1;
      } else if (strcasecmp(c->field, "expect") == 0) {
        c->cur_header = H_EXPECT;
      } else {
        for (int k = 0; k < K_COUNT; k++)
          if (strcasecmp(c->field, kept_names[k]) == 0) {
            c->cur_header = H_KEPT + k;
            c->kept[k].count++;
          }
      }
    }
  }
  if (c->cur_header == H_AUTH) {
    if (c->auth_len + n > AUTH_CAP) {
      c->auth_overflow = 1;
    } else {
      memcpy(c->auth + c->auth_len, at, n);
      c->auth_len += n;
    }
  } else if (c->cur_header == H_EXPECT) {
    if (n >= 12 && strncasecmp(at, "100-continue", 12) == 0) c->expect_continue = 1;
  } else if (c->cur_header >= H_KEPT) {
    int k = c->cur_header - H_KEPT;
    if (c->kept[k].len + n > KEPT_CAP) {
      c->kept[k].overflow = 1;
    } else {
      memcpy(c->kept[k].v + c->kept[k].len, at, n);
      c->kept[k].len += n;
      c->kept[k].v[c->kept[k].len] = 0;
    }
  }
  return 0;
}

static int token_ok(conn *c) {
  cl_admin *a = c->a;
  if (!a->has_token) return 1;
  if (c->auth_overflow || c->auth_len < 7 || strncasecmp(c->auth, "Bearer ", 7) != 0) return 0;
  const char *t = c->auth + 7;
  size_t tl = c->auth_len - 7;
  while (tl && (*t == ' ' || *t == '\t')) t++, tl--;
  while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t')) tl--;
  /* hashing first makes the comparison independent of the token's length too */
  unsigned char h[crypto_generichash_BYTES];
  crypto_generichash(h, sizeof h, (const unsigned char *)t, tl, NULL, 0);
  int ok = sodium_memcmp(h, a->token_hash, sizeof h) == 0;
  sodium_memzero(c->auth, sizeof c->auth);
  return ok;
}

/* A loopback name: "localhost", 127.x.y.z or [::1], with or without a port. */
static int host_is_loopback(const char *h) {
  char name[KEPT_CAP + 1];
  size_t n;
  if (h[0] == '[') {
    const char *rb = strchr(h, ']');
    if (!rb) return 0;
    n = (size_t)(rb - h - 1);
    memcpy(name, h + 1, n);
    name[n] = 0;
    if (rb[1] && rb[1] != ':') return 0;
    struct in6_addr a6;
    return inet_pton(AF_INET6, name, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
  }
  const char *colon = strchr(h, ':');
  n = colon ? (size_t)(colon - h) : strlen(h);
  memcpy(name, h, n);
  name[n] = 0;
  if (n && name[n - 1] == '.') name[--n] = 0; /* "localhost." is the same name */
  if (strcasecmp(name, "localhost") == 0) return 1;
  struct in_addr a4;
  return inet_pton(AF_INET, name, &a4) == 1 && ((const unsigned char *)&a4)[0] == 127;
}

/* The browser defences, before the token is looked at:
 * - without a token the endpoint is on loopback, and a page from anywhere could reach it
 *   through a DNS name that resolves to 127.0.0.1 (DNS rebinding): the Host header must
 *   then name loopback itself;
 * - a state-changing request from a page of another origin (a form or fetch on a site
 *   the operator visits) is refused whatever the token: its Origin must be this endpoint. */
static int browser_check(conn *c) {
  cl_admin *a = c->a;
  const char *host = c->kept[K_HOST].v, *origin = c->kept[K_ORIGIN].v;
  int has_host = c->kept[K_HOST].count > 0, has_origin = c->kept[K_ORIGIN].count > 0;
  if (c->kept[K_HOST].count > 1 || c->kept[K_HOST].overflow)
    return early(c, 400, "%s", c->kept[K_HOST].overflow ? "Host header too long" : "more than one Host header");
  if (c->kept[K_ORIGIN].count > 1 || c->kept[K_ORIGIN].overflow)
    return early(c, 400, "%s", c->kept[K_ORIGIN].overflow ? "Origin header too long" : "more than one Origin header");
  if (!a->has_token && has_host && !host_is_loopback(host))
    return early(c, 403,
                 "Host \"%.100s\" is not a loopback name: without a token the admin endpoint answers only "
                 "requests addressed to localhost or a loopback address (a defence against DNS rebinding)",
                 host);
  int method = c->parser.method;
  if (has_origin && (method == HTTP_POST || method == HTTP_DELETE || method == HTTP_PUT || method == HTTP_PATCH)) {
    const char *o = origin;
    if (strncasecmp(o, "http://", 7) == 0) o += 7;
    else if (strncasecmp(o, "https://", 8) == 0) o += 8;
    else o = NULL;
    if (!o || !has_host || strcasecmp(o, host) != 0)
      return early(c, 403, "cross-origin %s refused: Origin \"%.100s\" is not this endpoint", http_method_str(method),
                   origin);
  }
  return 0;
}

static int route_matches(const route *r, const char *path, size_t len) {
  size_t rl = strlen(r->path);
  if (!r->prefix) return rl == len && memcmp(r->path, path, len) == 0;
  /* "/x/ *" is stored as "/x/": it matches what is below, not "/x/" itself */
  return len > rl && memcmp(r->path, path, rl) == 0;
}

/* The request targets a public route (by its raw path: an escaped one is not public). */
static int public_target(conn *c) {
  if (!c->url) return 0;
  const char *u = c->url;
  size_t len = strcspn(u, "?#");
  if (memchr(u, '%', len)) return 0;
  for (size_t i = 0; i < c->a->nroutes; i++)
    if (c->a->routes[i].is_public && strcmp(c->a->routes[i].method, "GET") == 0 &&
        route_matches(&c->a->routes[i], u, len))
      return 1;
  return 0;
}

static int on_headers_complete(http_parser *p) {
  conn *c = p->data;
  cl_admin *a = c->a;
  /* from now on only the request deadline applies (a body may take longer), and the
   * connection is no longer one that may be evicted */
  c->headers_done = 1;
  uint64_t now = now_ms(a);
  arm(c, c->req_deadline > now ? c->req_deadline - now : 1);
  /* the parser takes any digits as a version; only HTTP/1.x is spoken here (a later
   * minor version is compatible with 1.1, RFC 9110 2.5) */
  if (p->http_major != 1) {
    sodium_memzero(c->auth, sizeof c->auth); /* as token_ok does: no token outlives its request */
    return early(c, 505, "HTTP version %u.%u is not supported (use HTTP/1.1 or HTTP/1.0)",
                 (unsigned)p->http_major, (unsigned)p->http_minor);
  }
  int bad = browser_check(c);
  if (bad) {
    sodium_memzero(c->auth, sizeof c->auth);
    return -1;
  }
  c->authenticated = token_ok(c);
  /* a public route (the console page) is served without the token: only a GET without
   * a body, so an unauthenticated client never makes us buffer one */
  if (!c->authenticated && p->method == HTTP_GET && !(p->flags & F_CHUNKED) &&
      (p->content_length == 0 || p->content_length == ULLONG_MAX) && public_target(c))
    goto authorised;
  if (!c->authenticated) {
    uint32_t sup = 0;
    if (cl_ratelimit_allow(&a->rl_auth, now_ms(a), &sup))
      cl_log(CL_LOG_WARN, SUBSYS, NULL, "request without a valid bearer token refused%s",
             sup ? " (more suppressed)" : "");
    snprintf(c->extra_hdr, sizeof c->extra_hdr, "WWW-Authenticate: Bearer realm=\"clusterlua\"\r\n");
    return early(c, 401, "missing or invalid bearer token (Authorization: Bearer <token>)");
  }
authorised:
  if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
      p->content_length > a->lim.max_body)
    return early(c, 413, "request body of %llu bytes exceeds the limit of %zu bytes",
                 (unsigned long long)p->content_length, a->lim.max_body);
  if (c->expect_continue) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (conn_write(c, cont, sizeof cont - 1, NULL, 0, 0) != 0) return early(c, 500, "write failed");
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->body_len + n > c->a->lim.max_body)
    return early(c, 413, "request body exceeds the limit of %zu bytes", c->a->lim.max_body);
  if (grow_append(&c->body, &c->body_len, &c->body_cap, at, n)) return early(c, 500, "out of memory");
  return 0;
}

static int on_message_complete(http_parser *p) {
  conn *c = p->data;
  c->msg_done = 1;
  /* dispatch happens outside the parser, after http_parser_execute returns */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings g_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---------------------------------------------------------------- dispatch */

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes into dst (cap includes the NUL). -1 on a bad escape or a NUL byte,
 * -2 when it does not fit. */
static long pct_decode(const char *s, size_t n, char *dst, size_t cap, int plus_space) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int ch = (unsigned char)s[i];
    if (ch == '%') {
      if (i + 2 >= n) return -1;
      int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
      if (h < 0 || l < 0) return -1;
      ch = h * 16 + l;
      i += 2;
    } else if (ch == '+' && plus_space) {
      ch = ' ';
    }
    if (ch == 0) return -1;
    if (o + 1 >= cap) return -2;
    dst[o++] = (char)ch;
  }
  if (cap == 0) return -2;
  dst[o] = 0;
  return (long)o;
}

static void dispatch(conn *c) {
  cl_admin *a = c->a;
  c->msg_done = 0;
  c->served++;
  if (!http_should_keep_alive(&c->parser) || c->parser.upgrade) c->close_after = 1;
  /* the request target is known to be < max_header bytes */
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (!c->url || http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
    conn_respond_error(c, 400, "malformed request target");
    return;
  }
  char *path = malloc(u.field_data[UF_PATH].len + 1);
  if (!path) {
    conn_respond_error(c, 500, "out of memory");
    return;
  }
  if (pct_decode(c->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len, path,
                 u.field_data[UF_PATH].len + 1, 0) < 0) {
    free(path);
    conn_respond_error(c, 400, "malformed percent-encoding in the path");
    return;
  }
  const char *query = "";
  if (u.field_set & (1 << UF_QUERY)) {
    /* terminate the query in place: the URL buffer is ours and the query is its tail
     * (a fragment, if any, follows it) */
    query = c->url + u.field_data[UF_QUERY].off;
    c->url[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = 0;
  }
  const char *method = http_method_str(c->parser.method);
  route *match = NULL;
  char allow[128] = "";
  size_t al = 0;
  size_t plen = strlen(path);
  /* exact paths first, then prefix routes ("/_cluster/state/ *") */
  for (int pass = 0; pass < 2 && !match && !al; pass++)
    for (size_t i = 0; i < a->nroutes; i++) {
      if (a->routes[i].prefix != pass || !route_matches(&a->routes[i], path, plen)) continue;
      if (strcmp(a->routes[i].method, method) == 0) {
        match = &a->routes[i];
        break;
      }
      if (al + strlen(a->routes[i].method) + 3 < sizeof allow)
        al += (size_t)snprintf(allow + al, sizeof allow - al, "%s%s", al ? ", " : "", a->routes[i].method);
    }
  if (match && !c->authenticated && !match->is_public) {
    /* only a public GET gets this far without the token */
    free(path);
    snprintf(c->extra_hdr, sizeof c->extra_hdr, "WWW-Authenticate: Bearer realm=\"clusterlua\"\r\n");
    conn_respond_error(c, 401, "missing or invalid bearer token (Authorization: Bearer <token>)");
    return;
  }
  if (!match) {
    char msg[400];
    if (al) {
      snprintf(c->extra_hdr, sizeof c->extra_hdr, "Allow: %s\r\n", allow);
      snprintf(msg, sizeof msg, "method %s not allowed for %.100s (allowed: %s)", method, path, allow);
      conn_respond_error(c, 405, msg);
    } else {
      snprintf(msg, sizeof msg, "no handler for %s %.150s", method, path);
      conn_respond_error(c, 404, msg);
    }
    free(path);
    return;
  }
  if (!c->body && grow_append(&c->body, &c->body_len, &c->body_cap, "", 0) != 0) {
    free(path);
    conn_respond_error(c, 500, "out of memory");
    return;
  }
  cl_admin_req req = {.method = method, .path = path, .query = query, .body = c->body,
                      .body_len = c->body_len, .authenticated = c->authenticated,
                      .accept = c->kept[K_ACCEPT].count == 1 && !c->kept[K_ACCEPT].overflow ? c->kept[K_ACCEPT].v : "",
                      .last_event_id = c->kept[K_LAST_EVENT_ID].count == 1 && !c->kept[K_LAST_EVENT_ID].overflow
                                           ? c->kept[K_LAST_EVENT_ID].v : NULL};
  char pb[8];
  c->pretty = cl_admin_query_param(&req, "pretty", pb, sizeof pb) != NULL &&
              strcmp(pb, "false") != 0;
  c->state = S_HANDLING;
  c->req_id = ((atomic_fetch_add(&g_seq, 1) + 1) << SLOT_BITS) | c->slot;
  req.priv = (void *)(uintptr_t)c->req_id;
  arm(c, a->lim.handler_timeout_ms);
  match->h(a, &req, match->ud);
  free(path);
}

/* ---------------------------------------------------------------- reading */

static void on_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *buf) {
  (void)sugg;
  conn *c = h->data;
  if (c->state == S_DRAINING || c->state == S_STREAMING) {
    *buf = uv_buf_init(c->in, IN_CAP);
  } else {
    /* zero room makes libuv report UV_ENOBUFS, which pauses reading */
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(IN_CAP - c->in_len));
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  conn *c = s->data;
  if (c->state == S_CLOSING) return;
  if (nread == UV_ENOBUFS) {
    uv_read_stop(s);
    c->reading = 0;
    return;
  }
  if (nread < 0) {
    if (nread != UV_EOF || c->state == S_IDLE || c->state == S_READING || c->state == S_DRAINING ||
        c->state == S_STREAMING) {
      conn_close(c);
      return;
    }
    /* a half-closed client may still want its answer */
    c->peer_eof = 1;
    c->close_after = 1;
    uv_read_stop(s);
    c->reading = 0;
    return;
  }
  if (nread == 0) return;
  if (c->state == S_STREAMING) return; /* a stream's client has nothing more to say */
  if (c->state == S_DRAINING) {
    c->drained += (size_t)nread;
    if (c->drained > DRAIN_MAX_BYTES) conn_close(c);
    return;
  }
  c->in_len += (size_t)nread;
  conn_process(c);
}

static void maybe_read(conn *c) {
  if (c->reading || c->peer_eof || c->state == S_CLOSING) return;
  if (c->state != S_DRAINING && c->state != S_STREAMING && c->in_len >= IN_CAP) return;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
  else conn_close(c);
}

static void conn_process(conn *c) {
  while ((c->state == S_IDLE || c->state == S_READING) && c->in_len > 0) {
    if (c->state == S_IDLE) {
      /* headers within header_timeout (counted from connecting for the first request,
       * so a client cannot idle first and dribble after), the whole request within
       * request_timeout */
      uint64_t now = now_ms(c->a);
      c->state = S_READING;
      c->headers_done = 0;
      c->hdr_deadline = (c->served ? now : c->opened_ms) + c->a->lim.header_timeout_ms;
      c->req_deadline = now + c->a->lim.request_timeout_ms;
      uint64_t d = c->hdr_deadline < c->req_deadline ? c->hdr_deadline : c->req_deadline;
      arm(c, d > now ? d - now : 1);
    }
    size_t n = http_parser_execute(&c->parser, &g_settings, c->in, c->in_len);
    if (n > c->in_len) n = c->in_len;
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->early_status) {
      int st = c->early_status;
      c->early_status = 0;
      c->close_after = 1;
      conn_respond_error(c, st, c->early_msg);
      break;
    }
    if (e == HPE_PAUSED) {
      http_parser_pause(&c->parser, 0);
      if (c->msg_done) dispatch(c);
      continue;
    }
    if (e != HPE_OK) {
      char msg[160];
      c->close_after = 1;
      if (e == HPE_HEADER_OVERFLOW) {
        conn_respond_error(c, 431, "header section too large");
      } else {
        snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
        conn_respond_error(c, 400, msg);
      }
      break;
    }
    if (c->parser.upgrade) { /* bytes after an upgrade request are not HTTP */
      c->in_len = 0;
      break;
    }
  }
  maybe_read(c);
}

/* Reads what the kernel already holds for c, as a read callback would. Used before
 * deciding whether c may be evicted (its headers may be waiting, unread) and right
 * after accepting (a request sent with the connection is seen before a burst of
 * later connections could evict it). */
static void conn_pull(conn *c) {
  uv_os_fd_t fd;
  if (c->state != S_IDLE && c->state != S_READING) return;
  if (c->peer_eof || c->in_len >= IN_CAP || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return;
  ssize_t n;
  do {
    n = recv(fd, c->in + c->in_len, IN_CAP - c->in_len, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) on_read((uv_stream_t *)&c->tcp, n, NULL);
  else if (n == 0) on_read((uv_stream_t *)&c->tcp, UV_EOF, NULL);
  else if (errno != EAGAIN && errno != EWOULDBLOCK) on_read((uv_stream_t *)&c->tcp, uv_translate_sys_error(errno), NULL);
}

/* 0: must not be evicted (a request is being served or answered); 1: has not sent its
 * request headers (idle or slow); 2: answered, the answer wholly handed to the kernel
 * (which still delivers it after the close) or only draining: the first choice. An
 * answer's write callback comes one loop iteration later, while a fast client may
 * already be connecting again. */
static int evict_rank(const conn *c) {
  if (c->state == S_DRAINING || (c->state == S_WRITING && c->tcp.write_queue_size == 0)) return 2;
  if (c->state == S_IDLE || (c->state == S_READING && !c->headers_done)) return 1;
  return 0;
}

static conn *eviction_candidate(cl_admin *a) {
  conn *best = NULL;
  int best_rank = 0;
  for (unsigned i = 0; i < MAX_SLOTS; i++) {
    conn *c = a->slots[i];
    int r = c ? evict_rank(c) : 0;
    if (r && (r > best_rank || (r == best_rank && c->seq < best->seq))) {
      best = c;
      best_rank = r;
    }
  }
  return best;
}

static void evict(conn *c) {
  cl_admin *a = c->a;
  uint32_t sup = 0;
  uint64_t age = now_ms(a) - c->opened_ms;
  if (cl_ratelimit_allow(&a->rl_evict, now_ms(a), &sup))
    cl_log(CL_LOG_WARN, SUBSYS, NULL,
           "connection table full (%u): closing the oldest connection without a complete request "
           "(open %llu ms, %s) to serve a new one%s",
           a->nlive, (unsigned long long)age,
           c->state == S_READING ? "headers incomplete" : c->state == S_IDLE ? "idle" : "already answered",
           sup ? " (more suppressed)" : "");
  if (c->state == S_READING) {
    /* best effort, never waited for: a slow but honest client learns why */
    static const char body[] = "{\"error\":\"too many connections: this one had not sent its request headers "
                               "in time for a new one and was closed\"}\n";
    char msg[512];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    uv_buf_t b = uv_buf_init(msg, (unsigned)n);
    (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  }
  conn_close(c);
}

/* Frees a slot when the table is full, if some connection may give its place. Each
 * round removes one candidate (closed, evicted, or found to be busy after all), so it
 * ends within the table's size. */
static void make_room(cl_admin *a) {
  while (a->nlive >= a->lim.max_conns) {
    conn *v = eviction_candidate(a);
    if (!v) return;
    if (evict_rank(v) == 1) {
      conn_pull(v); /* its headers may be waiting: then it is served, not evicted */
      if (v->state == S_CLOSING || evict_rank(v) == 0) continue;
    }
    evict(v);
  }
}

static void accept_conn(cl_admin *a) {
  uv_stream_t *server = (uv_stream_t *)&a->listener;
  uint32_t sup = 0;
  unsigned slot = MAX_SLOTS;
  make_room(a);
  if (a->nlive < a->lim.max_conns)
    for (unsigned i = 0; i < MAX_SLOTS; i++)
      if (!a->slots[i]) {
        slot = i;
        break;
      }
  conn *c = slot < MAX_SLOTS ? calloc(1, sizeof *c) : NULL;
  if (!c) {
    /* full of requests being served: accept only to close at once, so the backlog
     * cannot fill with connections nobody will serve */
    uv_tcp_t *t = malloc(sizeof *t);
    if (t && uv_tcp_init(a->loop, t) == 0) {
      if (uv_accept(server, (uv_stream_t *)t) == 0 &&
          cl_ratelimit_allow(&a->rl_refuse, now_ms(a), &sup))
        cl_log(CL_LOG_WARN, SUBSYS, NULL, "refusing a connection: %u open (the limit), all serving requests%s",
               a->nlive, sup ? " (more suppressed)" : "");
      uv_close((uv_handle_t *)t, (uv_close_cb)free);
    } else {
      /* not accepted: libuv keeps it and stops watching the listener, so the next
       * iteration must try again or the endpoint would stop accepting for good */
      free(t);
      a->accept_pending = 1;
    }
    return;
  }
  c->a = a;
  c->slot = slot;
  c->seq = ++a->conn_seq;
  c->opened_ms = now_ms(a);
  uv_tcp_init(a->loop, &c->tcp);
  uv_timer_init(a->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  a->slots[slot] = c;
  a->nconns++;
  a->nlive++;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->state = S_IDLE;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uint64_t first = a->lim.header_timeout_ms < a->lim.idle_timeout_ms ? a->lim.header_timeout_ms
                                                                      : a->lim.idle_timeout_ms;
  arm(c, first);
  maybe_read(c);
  conn_pull(c);
}

static void on_connection(uv_stream_t *server, int status) {
  cl_admin *a = server->data;
  if (status < 0 || a->closing) return;
  if (a->accept_budget == 0) {
    /* not accepting now makes libuv stop watching the listener until uv_accept */
    a->accept_pending = 1;
    return;
  }
  a->accept_budget--;
  accept_conn(a);
}

static void on_tick(uv_check_t *t) {
  cl_admin *a = t->data;
  a->accept_budget = ACCEPTS_PER_TICK;
  if (a->accept_pending && !a->closing) {
    a->accept_pending = 0;
    a->accept_budget--;
    accept_conn(a); /* its uv_accept watches the listener again */
  }
}

/* ---------------------------------------------------------------- public */

static int is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const unsigned char *b = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    return b[0] == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a6)) return 1;
    return IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127;
  }
  return 0;
}

static int parse_host_port(const char *hp, struct sockaddr_storage *ss, char *err, size_t errlen) {
  char host[256];
  const char *colon, *hs = hp;
  size_t hl;
  if (hp[0] == '[') {
    const char *rb = strchr(hp, ']');
    if (!rb || rb[1] != ':') goto bad;
    hs = hp + 1;
    hl = (size_t)(rb - hs);
    colon = rb + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon) goto bad;
    hl = (size_t)(colon - hp);
  }
  if (hl >= sizeof host) goto bad;
  memcpy(host, hs, hl);
  host[hl] = 0;
  char *end;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (colon[1] == 0 || *end || errno || port < 0 || port > 65535) goto bad;
  /* an empty host means loopback: never widen exposure by accident */
  if (!*host || strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) return 0;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  int rc = getaddrinfo(host, NULL, &hints, &res);
  if (rc != 0 || !res) {
    snprintf(err, errlen, "admin address %s: cannot resolve %s: %s", hp, host, gai_strerror(rc));
    return -1;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  if (ss->ss_family == AF_INET) ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  else ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
  freeaddrinfo(res);
  return 0;
bad:
  snprintf(err, errlen, "admin address \"%.100s\": expected HOST:PORT (e.g. 127.0.0.1:9200 or [::1]:9200)", hp);
  return -1;
}

static void on_tick_closed(uv_handle_t *h) {
  cl_admin *a = h->data;
  a->tick_open = 0;
  if (a->nconns == 0 && !a->listener_open) admin_free(a);
}

static void on_listener_closed(uv_handle_t *h) {
  cl_admin *a = h->data;
  a->listener_open = 0;
  if (a->nconns == 0 && !a->tick_open) {
    admin_free(a);
  }
}

cl_admin *cl_admin_start(uv_loop_t *loop, const char *host_port, const char *token, char *err,
                         size_t errlen) {
  char dummy[8];
  if (!err || !errlen) err = dummy, errlen = sizeof dummy;
  err[0] = 0;
  if (!loop || !host_port) {
    snprintf(err, errlen, "admin: no address");
    return NULL;
  }
  struct sockaddr_storage ss;
  if (parse_host_port(host_port, &ss, err, errlen) != 0) return NULL;
  int has_token = token && *token;
  if (!has_token && !is_loopback((struct sockaddr *)&ss)) {
    snprintf(err, errlen,
             "admin address %s is not loopback: binding there requires a token (--admin-token-file)",
             host_port);
    return NULL;
  }
  if (sodium_init() < 0) {
    snprintf(err, errlen, "admin: libsodium failed to initialise");
    return NULL;
  }
  cl_admin *a = calloc(1, sizeof *a);
  if (!a) {
    snprintf(err, errlen, "admin: out of memory");
    return NULL;
  }
  a->loop = loop;
  a->has_token = has_token;
  if (has_token)
    crypto_generichash(a->token_hash, sizeof a->token_hash, (const unsigned char *)token,
                       strlen(token), NULL, 0);
  a->lim = (cl_admin_limits){.max_body = 1u << 20, .max_header = 16384, .max_conns = 64,
                             .header_timeout_ms = 2000, .request_timeout_ms = 10000,
                             .idle_timeout_ms = 30000,
                             .handler_timeout_ms = 10000, .write_timeout_ms = 10000,
                             .max_output = 16u << 20};
  a->rl_refuse = (cl_ratelimit){.per_window = 5, .window_ms = 10000};
  a->rl_auth = (cl_ratelimit){.per_window = 5, .window_ms = 10000};
  a->rl_evict = (cl_ratelimit){.per_window = 5, .window_ms = 10000};
  int rc = uv_tcp_init(loop, &a->listener);
  if (rc != 0) {
    snprintf(err, errlen, "admin: %s", uv_strerror(rc));
    free(a);
    return NULL;
  }
  a->listener.data = a;
  a->listener_open = 1;
  rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&a->listener, LISTEN_BACKLOG, on_connection);
  if (rc != 0) {
    snprintf(err, errlen, "admin: cannot listen on %s: %s", host_port, uv_strerror(rc));
    a->closing = 1;
    uv_close((uv_handle_t *)&a->listener, on_listener_closed);
    return NULL;
  }
  a->accept_budget = ACCEPTS_PER_TICK;
  uv_check_init(loop, &a->tick);
  a->tick.data = a;
  a->tick_open = 1;
  uv_check_start(&a->tick, on_tick);
  uv_unref((uv_handle_t *)&a->tick); /* the listener keeps the loop alive, not this */
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  a->port = -1;
  char ip[64] = "?";
  if (uv_tcp_getsockname(&a->listener, (struct sockaddr *)&bound, &blen) == 0) {
    if (bound.ss_family == AF_INET) {
      a->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
      uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof ip);
    } else {
      a->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
      uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof ip);
    }
  }
  char fields[128];
  snprintf(fields, sizeof fields, "auth=%s", has_token ? "bearer" : "none");
  cl_log(CL_LOG_INFO, SUBSYS, fields, "admin endpoint listening on http://%s%s%s:%d",
         bound.ss_family == AF_INET6 ? "[" : "", ip, bound.ss_family == AF_INET6 ? "]" : "", a->port);
  return a;
}

void cl_admin_set_limits(cl_admin *a, const cl_admin_limits *l) {
  if (!a || !l) return;
  if (l->max_body) a->lim.max_body = l->max_body;
  if (l->max_header) a->lim.max_header = l->max_header;
  if (l->max_conns) a->lim.max_conns = l->max_conns > MAX_SLOTS ? MAX_SLOTS : l->max_conns;
  if (l->header_timeout_ms) a->lim.header_timeout_ms = l->header_timeout_ms;
  if (l->request_timeout_ms) a->lim.request_timeout_ms = l->request_timeout_ms;
  if (l->idle_timeout_ms) a->lim.idle_timeout_ms = l->idle_timeout_ms;
  if (l->handler_timeout_ms) a->lim.handler_timeout_ms = l->handler_timeout_ms;
  if (l->write_timeout_ms) a->lim.write_timeout_ms = l->write_timeout_ms;
  if (l->max_output) a->lim.max_output = l->max_output;
}

int cl_admin_port(const cl_admin *a) { return a ? a->port : -1; }

static int add_route(cl_admin *a, const char *method, const char *path, cl_admin_handler h, void *ud,
                     int is_public) {
  if (!a || !method || !path || !h || path[0] != '/' || strlen(method) >= sizeof a->routes[0].method)
    return -1;
  size_t pl = strlen(path);
  int prefix = pl >= 2 && strcmp(path + pl - 2, "/*") == 0;
  if (prefix) pl--; /* keep the slash: "/x/ *" matches what is below "/x/" */
  for (size_t i = 0; i < a->nroutes; i++)
    if (strcmp(a->routes[i].method, method) == 0 && a->routes[i].prefix == prefix &&
        strlen(a->routes[i].path) == pl && memcmp(a->routes[i].path, path, pl) == 0) {
      a->routes[i].h = h;
      a->routes[i].ud = ud;
      a->routes[i].is_public = is_public;
      return 0;
    }
  if (a->nroutes == a->routes_cap) {
    size_t nc = a->routes_cap ? a->routes_cap * 2 : 16;
    route *r = realloc(a->routes, nc * sizeof *r);
    if (!r) return -1;
    a->routes = r;
    a->routes_cap = nc;
  }
  route *r = &a->routes[a->nroutes];
  memset(r, 0, sizeof *r);
  strcpy(r->method, method);
  if (!(r->path = strndup(path, pl))) return -1;
  r->h = h;
  r->ud = ud;
  r->prefix = prefix;
  r->is_public = is_public;
  a->nroutes++;
  return 0;
}

int cl_admin_route(cl_admin *a, const char *method, const char *path, cl_admin_handler h, void *ud) {
  return add_route(a, method, path, h, ud, 0);
}

int cl_admin_route_public(cl_admin *a, const char *path, cl_admin_handler h, void *ud) {
  return add_route(a, "GET", path, h, ud, 1);
}

int cl_admin_has_token(const cl_admin *a) { return a && a->has_token; }

void cl_admin_get_limits(const cl_admin *a, cl_admin_limits *out) {
  if (a && out) *out = a->lim;
}

/* The connection still owed an answer for this handle, or NULL. */
static conn *pending_conn(cl_admin *a, void *priv) {
  uint64_t id = (uint64_t)(uintptr_t)priv;
  if (!a || !id) return NULL;
  conn *c = a->slots[id & (MAX_SLOTS - 1)];
  if (!c || c->req_id != id || c->state != S_HANDLING) return NULL;
  return c;
}

void cl_admin_reply(cl_admin *a, void *priv, int status, const char *content_type, const char *body,
                    size_t len) {
  conn *c = pending_conn(a, priv);
  if (!c) {
    cl_log(CL_LOG_DEBUG, SUBSYS, NULL, "late answer dropped (client gone or deadline passed)");
    return;
  }
  if (status < 100 || status > 599) status = 500;
  if (len > a->lim.max_output) {
    cl_log(CL_LOG_ERROR, SUBSYS, NULL, "response of %zu bytes exceeds the output limit", len);
    conn_respond_error(c, 500, "response too large");
    return;
  }
  conn_respond(c, status, content_type, body ? body : "", body ? len : 0);
}

void cl_admin_reply_headers(cl_admin *a, void *priv, int status, const char *content_type, const char *headers,
                            const char *body, size_t len) {
  conn *c = pending_conn(a, priv);
  if (c && headers) {
    size_t hl = strlen(headers);
    if (hl < sizeof c->extra_hdr) memcpy(c->extra_hdr, headers, hl + 1);
  }
  cl_admin_reply(a, priv, status, content_type, body, len);
}

void cl_admin_reply_json(cl_admin *a, void *priv, int status, json_t *obj) {
  conn *c = pending_conn(a, priv);
  if (!c) {
    json_decref(obj);
    cl_admin_reply(a, priv, status, NULL, NULL, 0); /* logs the drop */
    return;
  }
  char *s = obj ? json_dumps(obj, c->pretty ? JSON_INDENT(2) : JSON_COMPACT) : NULL;
  json_decref(obj);
  if (!s) {
    conn_respond_error(c, 500, "could not encode the answer as JSON");
    return;
  }
  size_t n;
  s = with_newline(s, &n);
  cl_admin_reply(a, priv, status, NULL, s, n);
  free(s);
}

void cl_admin_reply_error(cl_admin *a, void *priv, int status, const char *fmt, ...) {
  conn *c = pending_conn(a, priv);
  if (!c) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  conn_respond_error(c, status, msg);
}

void cl_admin_extend_deadline(cl_admin *a, void *priv, uint64_t ms) {
  conn *c = pending_conn(a, priv);
  if (c) arm(c, ms);
}

int cl_admin_pending(cl_admin *a, void *priv) { return pending_conn(a, priv) != NULL; }

int cl_admin_client_gone(cl_admin *a, void *priv) {
  conn *c = pending_conn(a, priv);
  return c && c->peer_eof;
}

/* ---------------------------------------------------------------- streams */

static conn *stream_conn(cl_admin *a, void *s) {
  uint64_t id = (uint64_t)(uintptr_t)s;
  if (!a || !id) return NULL;
  conn *c = a->slots[id & (MAX_SLOTS - 1)];
  if (!c || c->req_id != id || c->state != S_STREAMING) return NULL;
  return c;
}

void *cl_admin_stream_begin(cl_admin *a, void *priv, const char *content_type, void (*closed)(void *ud), void *ud) {
  conn *c = pending_conn(a, priv);
  if (!c) return NULL;
  char head[512];
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
                    "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
                    content_type ? content_type : "text/event-stream; charset=utf-8");
  /* the body ends when the connection does: nothing after it on this connection */
  c->close_after = 1;
  c->extra_hdr[0] = 0;
  if (hl < 0 || (size_t)hl >= sizeof head || conn_write(c, head, (size_t)hl, NULL, 0, 0) != 0) {
    conn_close(c);
    return NULL;
  }
  c->state = S_STREAMING;
  c->stream_closed = closed;
  c->stream_ud = ud;
  uv_timer_stop(&c->timer);
  uv_os_fd_t fd;
  int sndbuf = STREAM_SNDBUF;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  c->in_len = 0;
  maybe_read(c); /* to see the client go; what it sends is discarded */
  cl_log(CL_LOG_DEBUG, SUBSYS, NULL, "GET %.*s -> 200 (stream)", (int)(c->url_len > 200 ? 200 : c->url_len),
         c->url ? c->url : "");
  return priv;
}

int cl_admin_stream_write(cl_admin *a, void *s, const char *data, size_t len) {
  conn *c = stream_conn(a, s);
  if (!c) return -1;
  if (c->tcp.write_queue_size + len > STREAM_QUEUE_MAX) {
    conn_close(c); /* tells the owner through its closed callback */
    return -2;
  }
  if (conn_write(c, data, len, NULL, 0, 0) != 0) {
    conn_close(c);
    return -1;
  }
  return 0;
}

void cl_admin_stream_close(cl_admin *a, void *s) {
  conn *c = stream_conn(a, s);
  if (!c) return;
  c->stream_closed = NULL; /* the owner knows */
  conn_close(c);
}

int cl_admin_query_lookup(const cl_admin_req *req, const char *name, char *buf, size_t buflen) {
  if (!req || !req->query || !name || !buf || !buflen) return CL_ADMIN_QP_ABSENT;
  size_t nl = strlen(name);
  const char *p = req->query;
  while (*p) {
    const char *amp = strchr(p, '&');
    size_t seg = amp ? (size_t)(amp - p) : strlen(p);
    const char *eq = memchr(p, '=', seg);
    size_t kl = eq ? (size_t)(eq - p) : seg;
    char key[128];
    if (kl < sizeof key && pct_decode(p, kl, key, sizeof key, 1) == (long)nl && memcmp(key, name, nl) == 0) {
      if (!eq) {
        buf[0] = 0;
        return CL_ADMIN_QP_OK;
      }
      long r = pct_decode(eq + 1, seg - kl - 1, buf, buflen, 1);
      return r >= 0 ? CL_ADMIN_QP_OK : r == -2 ? CL_ADMIN_QP_TOO_LONG : CL_ADMIN_QP_MALFORMED;
    }
    if (!amp) break;
    p = amp + 1;
  }
  return CL_ADMIN_QP_ABSENT;
}

const char *cl_admin_query_param(const cl_admin_req *req, const char *name, char *buf, size_t buflen) {
  return cl_admin_query_lookup(req, name, buf, buflen) == CL_ADMIN_QP_OK ? buf : NULL;
}

void cl_admin_close(cl_admin *a, void (*done)(void *), void *ud) {
  if (!a || a->closing) return;
  a->closing = 1;
  a->done = done;
  a->done_ud = ud;
  for (unsigned i = 0; i < MAX_SLOTS; i++)
    if (a->slots[i]) conn_close(a->slots[i]);
  uv_close((uv_handle_t *)&a->listener, on_listener_closed);
  uv_close((uv_handle_t *)&a->tick, on_tick_closed);
}
