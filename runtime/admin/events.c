/* GET /_events: the node's events as Server-Sent Events.
 *
 * The history is a ring of ready-made frames ("id: ...\nevent: ...\ndata: {...}\n\n"),
 * bounded in count and bytes, so a new stream and a resume cost a copy each and
 * recording an event costs one JSON encoding whatever the number of clients. Ids are
 * "INCARNATION-SEQ": the incarnation (the transport's, wall-clock microseconds at start)
 * keeps them unique across restarts; SEQ counts from 1.
 *
 * A client never slows the node: writes never wait, and a stream whose client does not
 * take its bytes is dropped by the server core once its bound is reached (counted). */
#include "admin/events.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/log.h"

#define SUBSYS "admin"

typedef struct ev {
  uint64_t seq;
  char *frame;
  size_t len;
} ev;

typedef struct stream {
  void *h; /* the server's handle; NULL: slot free */
  unsigned idx;
  struct cl_events *owner;
} stream;

struct cl_events {
  cl_admin *a;
  uv_loop_t *loop;
  uint64_t inc, seq;
  ev ring[CL_EVENTS_HISTORY];
  size_t head, count, bytes; /* head: index of the oldest */
  stream streams[CL_EVENTS_STREAMS_MAX];
  unsigned nstreams;
  uv_timer_t *ping; /* allocated while a stream is open: nothing runs when nobody listens */
  cl_events_stats st;
  cl_ratelimit rl_drop;
};

static uint64_t wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ---- history ---- */

static void drop_oldest(cl_events *E) {
  ev *o = &E->ring[E->head];
  E->bytes -= o->len;
  free(o->frame);
  o->frame = NULL;
  E->head = (E->head + 1) % CL_EVENTS_HISTORY;
  E->count--;
}

static const ev *at(const cl_events *E, size_t i) { return &E->ring[(E->head + i) % CL_EVENTS_HISTORY]; }

/* Cuts a long string field at a character boundary, so a traceback cannot make one
 * event take the history. */
static void cut_fields(json_t *o) {
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    if (!json_is_string(v) || json_string_length(v) <= CL_EVENTS_FIELD_MAX) continue;
    const char *s = json_string_value(v);
    size_t n = CL_EVENTS_FIELD_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    char buf[CL_EVENTS_FIELD_MAX + 16];
    memcpy(buf, s, n);
    memcpy(buf + n, "...", 4);
    json_string_set(v, buf);
  }
}

/* ---- streams ---- */

static void ping_stop(cl_events *E) {
  if (!E->ping) return;
  uv_close((uv_handle_t *)E->ping, (uv_close_cb)free);
  E->ping = NULL;
}

static void stream_gone(void *ud) {
  stream *s = ud;
  if (!s->h) return;
  cl_events *E = s->owner;
  s->h = NULL;
  E->nstreams--;
  if (E->nstreams == 0) ping_stop(E);
}

static void stream_send(stream *s, const char *data, size_t len) {
  if (!s->h) return;
  cl_events *E = s->owner;
  void *h = s->h;
  int r = cl_admin_stream_write(E->a, h, data, len);
  if (r == -2) {
    E->st.streams_dropped++;
    uint32_t sup = 0;
    if (cl_ratelimit_allow(&E->rl_drop, uv_now(E->loop), &sup))
      cl_log(CL_LOG_WARN, SUBSYS, NULL, "an event stream's client fell too far behind and was dropped%s",
             sup ? " (more suppressed)" : "");
  }
  /* on failure the server has closed it and called stream_gone */
}

static void on_ping(uv_timer_t *t) {
  cl_events *E = t->data;
  static const char ping[] = ": ping\n\n";
  for (unsigned i = 0; i < CL_EVENTS_STREAMS_MAX; i++) stream_send(&E->streams[i], ping, sizeof ping - 1);
}

void cl_events_record(cl_events *E, const char *kind, json_t *fields) {
  if (!E || !kind || !json_is_object(fields)) return;
  json_t *o = json_deep_copy(fields);
  if (!o) return;
  cut_fields(o);
  json_object_set_new(o, "time", json_integer((json_int_t)wall_ms()));
  char *data = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!data) return;
  uint64_t seq = ++E->seq;
  size_t need = strlen(data) + strlen(kind) + 96;
  char *frame = malloc(need);
  if (!frame) {
    free(data);
    return;
  }
  int n = snprintf(frame, need, "id: %" PRIu64 "-%" PRIu64 "\nevent: %s\ndata: %s\n\n", E->inc, seq, kind, data);
  free(data);
  if (n < 0 || (size_t)n >= need) {
    free(frame);
    return;
  }
  E->st.recorded++;
  while (E->count && (E->count == CL_EVENTS_HISTORY || E->bytes + (size_t)n > CL_EVENTS_HISTORY_BYTES)) drop_oldest(E);
  ev *e = &E->ring[(E->head + E->count) % CL_EVENTS_HISTORY];
  e->seq = seq;
  e->frame = frame;
  e->len = (size_t)n;
  E->count++;
  E->bytes += (size_t)n;
  for (unsigned i = 0; i < CL_EVENTS_STREAMS_MAX; i++) stream_send(&E->streams[i], frame, (size_t)n);
}

/* "INC-SEQ" -> 0, or -1 when it is not an id of this form */
static int parse_id(const char *s, uint64_t *inc, uint64_t *seq) {
  char *end;
  if (!s || *s < '0' || *s > '9') return -1;
  errno = 0;
  *inc = strtoull(s, &end, 10);
  if (errno == ERANGE || *end != '-' || end[1] < '0' || end[1] > '9') return -1;
  *seq = strtoull(end + 1, &end, 10);
  return *end || errno == ERANGE ? -1 : 0; /* a number past 2^64 is no id of ours */
}

/* The frames a client resuming after `since` must get, into a buffer: a `gap` event
 * first when events it has not seen are no longer kept. start = index into the ring. */
static char *replay(const cl_events *E, const char *since, size_t *len_out, int *bad) {
  *bad = 0;
  size_t start = 0;
  char gap[512] = "";
  if (since && *since) {
    uint64_t inc, seq;
    if (parse_id(since, &inc, &seq) != 0) {
      *bad = 1;
      return NULL;
    }
    uint64_t oldest = E->count ? at(E, 0)->seq : E->seq + 1;
    if (inc != E->inc || seq < oldest - 1) { /* oldest >= 1: no wrap, whatever seq is */
      /* another incarnation (the node restarted) or older than what is kept */
      char oldest_s[64] = "null";
      if (E->count) snprintf(oldest_s, sizeof oldest_s, "\"%" PRIu64 "-%" PRIu64 "\"", E->inc, oldest);
      snprintf(gap, sizeof gap,
               "event: gap\ndata: {\"since\":\"%" PRIu64 "-%" PRIu64 "\",\"oldest\":%s,\"reason\":\"%s\","
               "\"time\":%" PRIu64 "}\n\n",
               inc, seq, oldest_s,
               inc != E->inc ? "the node restarted since that event: earlier events are not kept"
                            : "events after that one are no longer in the history",
               wall_ms());
    } else {
      while (start < E->count && at(E, start)->seq <= seq) start++;
    }
  }
  size_t total = strlen(gap);
  for (size_t i = start; i < E->count; i++) total += at(E, i)->len;
  char *buf = malloc(total + 1);
  if (!buf) return NULL;
  size_t off = strlen(gap);
  memcpy(buf, gap, off);
  for (size_t i = start; i < E->count; i++) {
    memcpy(buf + off, at(E, i)->frame, at(E, i)->len);
    off += at(E, i)->len;
  }
  buf[off] = 0;
  *len_out = off;
  return buf;
}

/* GET /_events[?since=ID][&follow=false] (or Last-Event-ID): the history after ID, then
 * every new event. follow=false answers the history alone, as one ordinary response. */
static void h_events(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_events *E = ud;
  char since[64], fb[8];
  int q = cl_admin_query_lookup(req, "since", since, sizeof since);
  if (q == CL_ADMIN_QP_MALFORMED || q == CL_ADMIN_QP_TOO_LONG) {
    cl_admin_reply_error(a, req->priv, 400, "since: expected an event id such as 1733400000000000-17");
    return;
  }
  const char *from = q == CL_ADMIN_QP_OK ? since : req->last_event_id;
  int follow = 1;
  if (cl_admin_query_param(req, "follow", fb, sizeof fb)) {
    if (strcmp(fb, "false") == 0) follow = 0;
    else if (strcmp(fb, "true") != 0 && fb[0]) {
      cl_admin_reply_error(a, req->priv, 400, "follow: expected true or false, got '%s'", fb);
      return;
    }
  }
  int bad;
  size_t len = 0;
  char *hist = replay(E, from, &len, &bad);
  if (bad) {
    cl_admin_reply_error(a, req->priv, 400, "%s: \"%.80s\" is not an event id (INCARNATION-SEQUENCE, e.g. %" PRIu64 "-1)",
                         q == CL_ADMIN_QP_OK ? "since" : "Last-Event-ID", from, E->inc);
    return;
  }
  if (!hist) {
    cl_admin_reply_error(a, req->priv, 503, "out of memory");
    return;
  }
  if (!follow) {
    cl_admin_reply(a, req->priv, 200, "text/event-stream; charset=utf-8", hist, len);
    free(hist);
    return;
  }
  stream *s = NULL;
  for (unsigned i = 0; i < CL_EVENTS_STREAMS_MAX && !s; i++)
    if (!E->streams[i].h) s = &E->streams[i];
  if (!s) {
    free(hist);
    E->st.streams_refused++;
    cl_admin_reply_error(a, req->priv, 429, "too many event streams open (%d): close one, or retry later",
                         CL_EVENTS_STREAMS_MAX);
    return;
  }
  void *h = cl_admin_stream_begin(a, req->priv, "text/event-stream; charset=utf-8", stream_gone, s);
  if (!h) {
    free(hist);
    return;
  }
  s->h = h;
  s->owner = E;
  E->nstreams++;
  if (!E->ping) {
    E->ping = malloc(sizeof *E->ping);
    if (E->ping) {
      uv_timer_init(E->loop, E->ping);
      E->ping->data = E;
      uv_timer_start(E->ping, on_ping, CL_EVENTS_PING_MS, CL_EVENTS_PING_MS);
      uv_unref((uv_handle_t *)E->ping);
    }
  }
  /* the browser reconnects after this long if the stream breaks */
  static const char hello[] = "retry: 1000\n\n";
  stream_send(s, hello, sizeof hello - 1);
  if (len) stream_send(s, hist, len);
  free(hist);
}

/* POST /_test/events?n=N&bytes=B: N synthetic events of about B bytes each, to prove
 * the bounds (only with CLUSTERLUA_FAULTS=1). */
static void h_test_events(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_events *E = ud;
  char nb[16], bb[16];
  long n = cl_admin_query_param(req, "n", nb, sizeof nb) ? atol(nb) : 1;
  long b = cl_admin_query_param(req, "bytes", bb, sizeof bb) ? atol(bb) : 0;
  if (n < 1 || n > 100000 || b < 0 || b > CL_EVENTS_FIELD_MAX) {
    cl_admin_reply_error(a, req->priv, 400, "n: 1..100000, bytes: 0..%d", CL_EVENTS_FIELD_MAX);
    return;
  }
  char *pad = malloc((size_t)b + 1);
  if (!pad) {
    cl_admin_reply_error(a, req->priv, 503, "out of memory");
    return;
  }
  memset(pad, 'x', (size_t)b);
  pad[b] = 0;
  for (long i = 0; i < n; i++) {
    json_t *f = json_pack("{s:I, s:s}", "n", (json_int_t)i, "pad", pad);
    cl_events_record(E, "test", f);
    json_decref(f);
  }
  free(pad);
  cl_admin_reply_json(a, req->priv, 200, json_pack("{s:b, s:I}", "acknowledged", 1, "last", (json_int_t)E->seq));
}

cl_events *cl_events_start(cl_admin *a, uv_loop_t *loop, uint64_t incarnation, int test_routes) {
  cl_events *E = calloc(1, sizeof *E);
  if (!E) return NULL;
  E->a = a;
  E->loop = loop;
  E->inc = incarnation;
  E->rl_drop = (cl_ratelimit){.per_window = 5, .window_ms = 10000};
  cl_admin_route(a, "GET", "/_events", h_events, E);
  if (test_routes) cl_admin_route(a, "POST", "/_test/events", h_test_events, E);
  return E;
}

void cl_events_stop(cl_events *E) {
  if (!E) return;
  for (unsigned i = 0; i < CL_EVENTS_STREAMS_MAX; i++)
    if (E->streams[i].h) {
      void *h = E->streams[i].h;
      E->streams[i].h = NULL;
      cl_admin_stream_close(E->a, h);
    }
  ping_stop(E);
  while (E->count) drop_oldest(E);
  free(E);
}

void cl_events_stats_get(const cl_events *E, cl_events_stats *out) {
  if (!out) return;
  memset(out, 0, sizeof *out);
  if (!E) return;
  *out = E->st;
  out->streams_open = E->nstreams;
}
