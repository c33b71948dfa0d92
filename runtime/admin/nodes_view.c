/* GET /_nodes's query and answer (see nodes_view.h). The entries are filtered as they
 * are added, and only the matching ones are kept (their strings in one arena); one sort
 * at the end, and JSON only for the page: at 1,000 nodes a page of 50 costs about a
 * tenth of the whole list (docs/benchmarks.md). */
#include "admin/nodes_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a matching entry: its scalars, and its strings as offsets into the view's arena (the
 * arena moves as it grows); JSON is built only for the entries of the page */
enum { F_NAME, F_ID, F_ADDRESS, F_ROLES, F_STATUS, F_FINGERPRINT, F_N };
#define NO_STR ((size_t)-1)

typedef struct {
  size_t str[F_N];
  int self, connected, unhealthy;
  int64_t since_ms, last_heartbeat_ms;
  uint32_t rtt_us;
} kept;

struct cl_nodes_view {
  cl_nodes_query q;
  kept *v;
  size_t n, cap;
  char *arena;
  size_t alen, acap;
  long total, connections, by[5], matched, returned;
  int oom;
};

static const char *const status_names[] = {"up", "down", "configured", "disconnected", "other"};

void cl_nodes_query_init(cl_nodes_query *q) {
  memset(q, 0, sizeof *q);
  q->size = -1;
}

/* the comma-separated entries of s: at most CL_NODES_MAX_PATTERNS, none empty */
static int check_list(const char *param, const char *s, char *err, size_t errlen) {
  int k = 0;
  for (const char *p = s;; p++) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    k++;
    if (len == 0) {
      snprintf(err, errlen, "%s: entry %d is empty (give comma-separated values, e.g. %s=%s)", param, k, param,
               strcmp(param, "role") == 0 ? "master,data" : "edge-*,node1");
      return -1;
    }
    if (k > CL_NODES_MAX_PATTERNS) {
      snprintf(err, errlen, "%s: more than %d comma-separated entries", param, CL_NODES_MAX_PATTERNS);
      return -1;
    }
    if (!e) return 0;
    p = e;
  }
}

static int parse_count(const char *param, const char *v, long *out, char *err, size_t errlen) {
  long x = 0;
  size_t len = strlen(v);
  int ok = len > 0 && len <= 6 && strspn(v, "0123456789") == len;
  if (ok) {
    x = strtol(v, NULL, 10);
    ok = x <= CL_NODES_SIZE_MAX;
  }
  if (!ok) {
    snprintf(err, errlen, "%s: expected a whole number from 0 to %d, got '%.40s'", param, CL_NODES_SIZE_MAX, v);
    return -1;
  }
  *out = x;
  return 0;
}

static unsigned status_bit(const char *s, size_t len) {
  for (unsigned i = 0; i < 4; i++)
    if (strlen(status_names[i]) == len && strncmp(s, status_names[i], len) == 0) return 1u << i;
  if (len == 9 && strncmp(s, "unhealthy", 9) == 0) return CL_NODES_S_UNHEALTHY;
  return 0;
}

int cl_nodes_query_set(cl_nodes_query *q, const char *param, const char *value, char *err, size_t errlen) {
  char dummy[8];
  if (!err) {
    err = dummy;
    errlen = sizeof dummy;
  }
  if (!param) {
    snprintf(err, errlen, "no parameter");
    return -1;
  }
  if (!value) return 0;
  size_t vl = strlen(value);
  if (strcmp(param, "from") == 0) return parse_count(param, value, &q->from, err, errlen);
  if (strcmp(param, "size") == 0) return parse_count(param, value, &q->size, err, errlen);
  if (strcmp(param, "sort") == 0) {
    if (strcmp(value, "name") != 0 && strcmp(value, "status") != 0) {
      snprintf(err, errlen, "sort: expected name or status, got '%.40s'", value);
      return -1;
    }
    q->by_status = strcmp(value, "status") == 0;
    return 0;
  }
  int is_status = strcmp(param, "status") == 0, is_name = strcmp(param, "name") == 0,
      is_role = strcmp(param, "role") == 0;
  if (!is_status && !is_name && !is_role) {
    snprintf(err, errlen, "%.40s: not a parameter of /_nodes", param);
    return -1;
  }
  if (vl > CL_NODES_PARAM_MAX) {
    snprintf(err, errlen, "%s is longer than %d characters", param, CL_NODES_PARAM_MAX);
    return -1;
  }
  if (check_list(param, value, err, errlen) != 0) return -1;
  if (is_name) {
    memcpy(q->name, value, vl + 1);
    return 0;
  }
  if (is_role) {
    memcpy(q->role, value, vl + 1);
    return 0;
  }
  unsigned mask = 0;
  for (const char *p = value;;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    unsigned b = status_bit(p, len);
    if (!b) {
      snprintf(err, errlen, "status: unknown value '%.*s' (expected up, down, configured, disconnected or unhealthy)",
               (int)(len > 40 ? 40 : len), p);
      return -1;
    }
    mask |= b;
    if (!e) break;
    p = e + 1;
  }
  q->status = mask;
  return 0;
}

/* '*' matches any run (greedy with one backtrack point: linear enough for names of a
 * few hundred bytes) */
static int glob(const char *p, size_t pl, const char *s, size_t sl) {
  size_t i = 0, j = 0, star = (size_t)-1, mark = 0;
  while (j < sl) {
    if (i < pl && p[i] == '*') {
      star = i++;
      mark = j;
    } else if (i < pl && p[i] == s[j]) {
      i++;
      j++;
    } else if (star != (size_t)-1) {
      i = star + 1;
      j = ++mark;
    } else {
      return 0;
    }
  }
  while (i < pl && p[i] == '*') i++;
  return i == pl;
}

int cl_nodes_name_match(const char *patterns, const char *name) {
  if (!patterns || !*patterns) return 1;
  if (!name) name = "";
  const char *at = strchr(name, '@');
  size_t nl = strlen(name), shortl = at ? (size_t)(at - name) : nl;
  for (const char *p = patterns;;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (glob(p, len, name, nl)) return 1;
    if (!memchr(p, '@', len) && glob(p, len, name, shortl)) return 1;
    if (!e) return 0;
    p = e + 1;
  }
}

/* 1 if the entry's roles ("a,b") hold one of the query's ("x,y") */
static int role_match(const char *want, const char *roles) {
  if (!want || !*want) return 1;
  if (!roles) return 0;
  for (const char *w = want;;) {
    const char *we = strchr(w, ',');
    size_t wl = we ? (size_t)(we - w) : strlen(w);
    for (const char *r = roles;;) {
      const char *re = strchr(r, ',');
      size_t rl = re ? (size_t)(re - r) : strlen(r);
      if (rl == wl && strncmp(r, w, wl) == 0) return 1;
      if (!re) break;
      r = re + 1;
    }
    if (!we) return 0;
    w = we + 1;
  }
}

cl_nodes_view *cl_nodes_view_new(const cl_nodes_query *q) {
  cl_nodes_view *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  if (q)
    v->q = *q;
  else
    cl_nodes_query_init(&v->q);
  return v;
}

static unsigned entry_bit(const cl_nodes_entry *e) {
  const char *s = e->status ? e->status : (e->connected || e->self) ? "up" : "down";
  unsigned b = status_bit(s, strlen(s));
  return b && b != CL_NODES_S_UNHEALTHY ? b : CL_NODES_S_OTHER;
}

static json_t *roles_json(const char *tags) {
  json_t *a = json_array();
  for (const char *p = tags; a && p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len) json_array_append_new(a, json_stringn(p, len));
    p = e ? e + 1 : NULL;
  }
  return a;
}

static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

static const char *str_at(const cl_nodes_view *v, const kept *k, int f) {
  return k->str[f] == NO_STR ? NULL : v->arena + k->str[f];
}

/* the layout GET /_nodes has always had (keys in this order) */
static json_t *entry_json(const cl_nodes_view *v, const kept *k) {
  json_t *o = json_object();
  if (!o) return NULL;
  const char *name = str_at(v, k, F_NAME), *address = str_at(v, k, F_ADDRESS);
  int bad = 0;
  bad |= json_object_set_new(o, "name", json_string(name ? name : ""));
  bad |= json_object_set_new(o, "id", str_or_null(str_at(v, k, F_ID)));
  bad |= json_object_set_new(o, "address", json_string(address ? address : ""));
  bad |= json_object_set_new(o, "roles", roles_json(str_at(v, k, F_ROLES)));
  bad |= json_object_set_new(o, "connected", json_boolean(k->connected || k->self));
  if (!k->self) bad |= json_object_set_new(o, "fingerprint", str_or_null(str_at(v, k, F_FINGERPRINT)));
  bad |= json_object_set_new(o, "status", json_string(str_at(v, k, F_STATUS)));
  if (k->self) bad |= json_object_set_new(o, "self", json_true());
  bad |= json_object_set_new(o, "since", k->since_ms ? json_integer((json_int_t)k->since_ms) : json_null());
  bad |= json_object_set_new(o, "last_heartbeat_ms",
                             k->last_heartbeat_ms >= 0 ? json_integer((json_int_t)k->last_heartbeat_ms) : json_null());
  bad |= json_object_set_new(o, "rtt_us", json_integer((json_int_t)k->rtt_us));
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* copies s into the arena: its offset, NO_STR for NULL, or -1 on out of memory */
static int keep_str(cl_nodes_view *v, const char *s, size_t *off) {
  if (!s) {
    *off = NO_STR;
    return 0;
  }
  size_t len = strlen(s) + 1;
  if (v->alen + len > v->acap) {
    size_t nc = v->acap ? v->acap : 16384;
    while (nc < v->alen + len) nc *= 2;
    char *na = realloc(v->arena, nc);
    if (!na) return -1;
    v->arena = na;
    v->acap = nc;
  }
  memcpy(v->arena + v->alen, s, len);
  *off = v->alen;
  v->alen += len;
  return 0;
}

int cl_nodes_view_add(cl_nodes_view *v, const cl_nodes_entry *e) {
  if (!v || !e) return -1;
  unsigned b = entry_bit(e);
  v->total++;
  if (e->connected && !e->self) v->connections++;
  for (int i = 0; i < 5; i++)
    if (b == 1u << i) v->by[i]++;
  if (v->q.status && !(v->q.status & b)) return 0;
  if (!cl_nodes_name_match(v->q.name, e->name)) return 0;
  if (!role_match(v->q.role, e->roles)) return 0;
  v->matched++;
  if (v->n == v->cap) {
    size_t nc = v->cap ? v->cap * 2 : 64;
    kept *nv = realloc(v->v, nc * sizeof *nv);
    if (!nv) {
      v->oom = 1;
      return -1;
    }
    v->v = nv;
    v->cap = nc;
  }
  kept *k = &v->v[v->n];
  const char *status = e->status ? e->status : (e->connected || e->self) ? "up" : "down";
  const char *strs[F_N] = {e->name ? e->name : "", e->id, e->address, e->roles, status, e->fingerprint};
  for (int f = 0; f < F_N; f++)
    if (keep_str(v, strs[f], &k->str[f]) != 0) {
      v->oom = 1;
      return -1;
    }
  k->self = e->self != 0;
  k->connected = e->connected != 0;
  k->unhealthy = b != CL_NODES_S_UP;
  k->since_ms = e->since_ms;
  k->last_heartbeat_ms = e->last_heartbeat_ms;
  k->rtt_us = e->rtt_us;
  v->n++;
  return 0;
}

/* qsort_r's context: the arena of the view being sorted */
static int by_name(const void *a, const void *b, void *ctx) {
  const char *sort_arena = ctx;
  const kept *x = a, *y = b;
  if (x->self != y->self) return y->self - x->self;
  return strcmp(sort_arena + x->str[F_NAME], sort_arena + y->str[F_NAME]);
}

static int by_status(const void *a, const void *b, void *ctx) {
  const char *sort_arena = ctx;
  const kept *x = a, *y = b;
  if (x->self != y->self) return y->self - x->self;
  if (x->unhealthy != y->unhealthy) return y->unhealthy - x->unhealthy;
  return strcmp(sort_arena + x->str[F_NAME], sort_arena + y->str[F_NAME]);
}

int cl_nodes_view_finish(cl_nodes_view *v, json_t **nodes, json_t **summary) {
  *nodes = *summary = NULL;
  if (!v || v->oom) return -1;
  if (v->n > 1) qsort_r(v->v, v->n, sizeof *v->v, v->q.by_status ? by_status : by_name, (void *)v->arena);
  size_t from = (size_t)v->q.from, end = v->n;
  if (from > v->n) from = v->n;
  if (v->q.size >= 0 && (size_t)v->q.size < end - from) end = from + (size_t)v->q.size;
  json_t *arr = json_array(), *s = json_object(), *by = json_object();
  int bad = !arr || !s || !by;
  for (size_t i = from; !bad && i < end; i++) {
    json_t *o = entry_json(v, &v->v[i]);
    bad |= !o || json_array_append_new(arr, o);
  }
  v->returned = bad ? 0 : (long)(end - from);
  for (int i = 0; by && i < 5; i++)
    if (i < 4 || v->by[i]) bad |= json_object_set_new(by, status_names[i], json_integer(v->by[i]));
  if (s) {
    bad |= json_object_set_new(s, "total", json_integer(v->total));
    bad |= json_object_set_new(s, "number_of_connections", json_integer(v->connections));
    bad |= json_object_set(s, "by_status", by ? by : json_null());
    bad |= json_object_set_new(s, "unhealthy", json_integer(v->total - v->by[0]));
    bad |= json_object_set_new(s, "matched", json_integer(v->matched));
    bad |= json_object_set_new(s, "from", json_integer(v->q.from));
    bad |= json_object_set_new(s, "returned", json_integer(v->returned));
  }
  json_decref(by);
  if (bad) {
    json_decref(arr);
    json_decref(s);
    return -1;
  }
  *nodes = arr;
  *summary = s;
  return 0;
}

void cl_nodes_view_free(cl_nodes_view *v) {
  if (!v) return;
  free(v->v);
  free(v->arena);
  free(v);
}
