/* GET /_cluster/health, waiting as Elasticsearch does.
 *
 * Waiting requests are parked here, never on the loop: each keeps its connection (and
 * its place in the connection table), so at most half the table may wait, and the
 * rest answer 429 at once; a timeout beyond CL_HEALTH_WAIT_MAX_MS is refused. A parked
 * request is looked at after every event of the node and every CL_HEALTH_WAIT_CHECK_MS
 * (the timer runs only while some request waits). */
#include "admin/health_wait.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin/json_filter.h"
#include "admin/views.h"
#include "node/node_internal.h"

enum { OP_NONE, OP_EQ, OP_GE, OP_LE, OP_GT, OP_LT };

typedef struct waiter {
  void *priv;
  int want_status; /* -1 none, else a cl_el_health */
  int op;
  long nodes;
  uint64_t deadline;
  char *filter; /* filter_path or NULL */
} waiter;

struct cl_health_wait {
  cl_admin *a;
  cl_node *n;
  waiter *w;
  unsigned nw, cap;
  uv_timer_t *timer;
};

static int status_rank(const char *s) {
  if (strcmp(s, "green") == 0) return CL_EL_GREEN;
  if (strcmp(s, "yellow") == 0) return CL_EL_YELLOW;
  if (strcmp(s, "red") == 0) return CL_EL_RED;
  return -1;
}

/* "N", ">=N", "<=N", ">N", "<N", "ge(N)", "le(N)", "gt(N)", "lt(N)" */
static int parse_nodes(const char *s, int *op, long *n) {
  static const struct {
    const char *p;
    int op;
    int paren;
  } forms[] = {{">=", OP_GE, 0}, {"<=", OP_LE, 0}, {">", OP_GT, 0},     {"<", OP_LT, 0},
               {"ge(", OP_GE, 1}, {"le(", OP_LE, 1}, {"gt(", OP_GT, 1}, {"lt(", OP_LT, 1}};
  int paren = 0;
  *op = OP_EQ;
  for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
    if (strncmp(s, forms[i].p, strlen(forms[i].p)) == 0) {
      *op = forms[i].op;
      paren = forms[i].paren;
      s += strlen(forms[i].p);
      break;
    }
  if (!isdigit((unsigned char)*s)) return -1;
  char *end;
  errno = 0;
  *n = strtol(s, &end, 10);
  if (errno || *n < 0 || *n > 1000000) return -1;
  if (paren && *end++ != ')') return -1;
  return *end ? -1 : 0;
}

/* Elasticsearch's time values: a number and a unit (nanos, micros, ms, s, m, h, d). */
static int parse_time(const char *s, uint64_t *ms) {
  char *end;
  if (!isdigit((unsigned char)*s)) return -1;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s) return -1;
  static const struct {
    const char *u;
    double f;
  } units[] = {{"nanos", 1e-6}, {"micros", 1e-3}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  for (size_t i = 0; i < sizeof units / sizeof *units; i++)
    if (strcmp(end, units[i].u) == 0) {
      double r = v * units[i].f;
      if (r > 1e12) return -1;
      *ms = (uint64_t)(r + 0.5);
      return 0;
    }
  return -1;
}

static int holds(const waiter *w, json_t *h) {
  if (w->want_status >= 0) {
    const char *sv = json_string_value(json_object_get(h, "status"));
    int st = status_rank(sv ? sv : "red");
    if (st < w->want_status) return 0;
  }
  if (w->op != OP_NONE) {
    long k = (long)json_integer_value(json_object_get(h, "number_of_nodes"));
    switch (w->op) {
      case OP_EQ: if (k != w->nodes) return 0; break;
      case OP_GE: if (k < w->nodes) return 0; break;
      case OP_LE: if (k > w->nodes) return 0; break;
      case OP_GT: if (k <= w->nodes) return 0; break;
      case OP_LT: if (k >= w->nodes) return 0; break;
    }
  }
  return 1;
}

static void answer(cl_admin *a, void *priv, json_t *h, int timed_out, const char *filter) {
  json_t *o = json_deep_copy(h);
  if (o) json_object_set_new(o, "timed_out", json_boolean(timed_out));
  if (o && filter && *filter) {
    json_t *f = cl_json_filter_path(o, filter);
    json_decref(o);
    o = f;
  }
  cl_admin_reply_json(a, priv, timed_out ? 408 : 200, o);
}

static void timer_stop(cl_health_wait *W) {
  if (!W->timer) return;
  uv_close((uv_handle_t *)W->timer, (uv_close_cb)free);
  W->timer = NULL;
}

static void check(cl_health_wait *W) {
  if (!W->nw) return;
  json_t *h = cl_admin_health_json(W->n);
  if (!h) return;
  uint64_t now = uv_now(&W->n->c->loop);
  unsigned k = 0;
  for (unsigned i = 0; i < W->nw; i++) {
    waiter *w = &W->w[i];
    int done = 1;
    if (!cl_admin_pending(W->a, w->priv)) {
      /* client gone (or the server's deadline passed): nothing to answer */
    } else if (holds(w, h)) {
      answer(W->a, w->priv, h, 0, w->filter);
    } else if (now >= w->deadline || cl_admin_client_gone(W->a, w->priv)) {
      /* a client that closed its side gave up: answered now (the write ends the
       * connection), so it does not hold its place among the waiters until its timeout */
      answer(W->a, w->priv, h, 1, w->filter);
    } else {
      done = 0;
    }
    if (done) free(w->filter);
    else W->w[k++] = *w;
  }
  W->nw = k;
  json_decref(h);
  if (!W->nw) timer_stop(W);
}

static void on_timer(uv_timer_t *t) { check(t->data); }

void cl_health_wait_poke(cl_health_wait *W) {
  if (W) check(W);
}

unsigned cl_health_wait_count(const cl_health_wait *W) { return W ? W->nw : 0; }

static void h_health(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_health_wait *W = ud;
  cl_node *n = W->n;
  char sv[16], nv[32], tv[32], fp[CL_JSON_FILTER_MAX_LEN + 1];
  if (cl_admin_filter_param(a, req, fp) != 0) return;
  waiter w = {.priv = req->priv, .want_status = -1, .op = OP_NONE};
  int q = cl_admin_query_lookup(req, "wait_for_status", sv, sizeof sv);
  if (q != CL_ADMIN_QP_ABSENT) {
    if (q != CL_ADMIN_QP_OK || (w.want_status = status_rank(sv)) < 0) {
      cl_admin_reply_error(a, req->priv, 400, "wait_for_status: expected green, yellow or red, got '%s'",
                           q == CL_ADMIN_QP_OK ? sv : "(unreadable)");
      return;
    }
  }
  q = cl_admin_query_lookup(req, "wait_for_nodes", nv, sizeof nv);
  if (q != CL_ADMIN_QP_ABSENT && (q != CL_ADMIN_QP_OK || parse_nodes(nv, &w.op, &w.nodes) != 0)) {
    cl_admin_reply_error(a, req->priv, 400, "wait_for_nodes: expected N, >=N, <=N, >N, <N (or ge(N), le(N), gt(N), lt(N)), got '%s'",
                         q == CL_ADMIN_QP_OK ? nv : "(unreadable)");
    return;
  }
  uint64_t timeout = CL_HEALTH_WAIT_DEFAULT_MS;
  q = cl_admin_query_lookup(req, "timeout", tv, sizeof tv);
  if (q != CL_ADMIN_QP_ABSENT) {
    if (q != CL_ADMIN_QP_OK || parse_time(tv, &timeout) != 0) {
      cl_admin_reply_error(a, req->priv, 400, "timeout: expected a time such as 500ms, 2s or 1m, got '%s'",
                           q == CL_ADMIN_QP_OK ? tv : "(unreadable)");
      return;
    }
    if (timeout > CL_HEALTH_WAIT_MAX_MS) {
      cl_admin_reply_error(a, req->priv, 400, "timeout %s is longer than the maximum of %d s", tv,
                           CL_HEALTH_WAIT_MAX_MS / 1000);
      return;
    }
  }
  json_t *h = cl_admin_health_json(n);
  if (!h) {
    cl_admin_reply_error(a, req->priv, 503, "out of memory");
    return;
  }
  if ((w.want_status < 0 && w.op == OP_NONE) || holds(&w, h)) {
    answer(a, req->priv, h, 0, fp);
    json_decref(h);
    return;
  }
  if (timeout == 0) {
    answer(a, req->priv, h, 1, fp);
    json_decref(h);
    return;
  }
  json_decref(h);
  cl_admin_limits lim;
  cl_admin_get_limits(a, &lim);
  unsigned cap = lim.max_conns / 2;
  if (W->nw >= cap) {
    cl_admin_reply_error(a, req->priv, 429,
                         "too many waiting health requests (%u, half the connection table): retry later", cap);
    return;
  }
  if (W->nw == W->cap) {
    unsigned nc = W->cap ? W->cap * 2 : 8;
    waiter *nw = realloc(W->w, nc * sizeof *nw);
    if (!nw) {
      cl_admin_reply_error(a, req->priv, 503, "out of memory");
      return;
    }
    W->w = nw;
    W->cap = nc;
  }
  w.deadline = uv_now(&n->c->loop) + timeout;
  w.filter = *fp ? strdup(fp) : NULL;
  W->w[W->nw++] = w;
  /* the server's own deadline must not answer 503 first */
  cl_admin_extend_deadline(a, req->priv, timeout + 5000);
  if (!W->timer && (W->timer = malloc(sizeof *W->timer))) {
    uv_timer_init(&n->c->loop, W->timer);
    W->timer->data = W;
    uv_timer_start(W->timer, on_timer, CL_HEALTH_WAIT_CHECK_MS, CL_HEALTH_WAIT_CHECK_MS);
  }
}

cl_health_wait *cl_health_wait_start(cl_admin *a, cl_node *n) {
  cl_health_wait *W = calloc(1, sizeof *W);
  if (!W) return NULL;
  W->a = a;
  W->n = n;
  cl_admin_route(a, "GET", "/_cluster/health", h_health, W);
  return W;
}

void cl_health_wait_stop(cl_health_wait *W) {
  if (!W) return;
  /* the node is stopping: every waiter gets an answer, not a closed connection */
  for (unsigned i = 0; i < W->nw; i++)
    if (cl_admin_pending(W->a, W->w[i].priv)) cl_admin_reply_error(W->a, W->w[i].priv, 503, "the node is stopping");
  for (unsigned i = 0; i < W->nw; i++) free(W->w[i].filter);
  free(W->w);
  timer_stop(W);
  free(W);
}
