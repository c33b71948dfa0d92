/* _cat tables and the other everyday Elasticsearch calls.
 *
 * A _cat answer is a table of strings: ?v adds the header row, ?h=col1,col2 picks
 * columns (by name or alias, "*" for all), ?format=json answers an array of objects
 * (column name -> string, as Elasticsearch does), ?help lists the columns. An unknown
 * column or format is the client's mistake: 400 with what is valid. */
#include "admin/cat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "admin/json_filter.h"
#include "admin/views.h"
#include "core/version.h"
#include "node/node_internal.h"

#define MAX_COLS 16

typedef struct col {
  const char *name, *aliases, *desc; /* aliases: comma-separated */
  int dflt;                          /* shown without ?h */
} col;

typedef struct table {
  const col *cols;
  int ncols;
  char **cells; /* rows * ncols, malloc'd strings */
  size_t rows, cap;
  int oom; /* a row could not be stored: the answer is a 503, not a table missing it */
} table;

static void t_row(table *t, const char *const *vals) {
  if (t->oom) return;
  if (t->rows == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 8;
    char **c = realloc(t->cells, nc * (size_t)t->ncols * sizeof *c);
    if (!c) {
      t->oom = 1;
      return;
    }
    t->cells = c;
    t->cap = nc;
  }
  char **row = t->cells + t->rows * (size_t)t->ncols;
  for (int i = 0; i < t->ncols; i++) {
    if (!(row[i] = strdup(vals[i] ? vals[i] : "-"))) {
      while (i--) free(row[i]);
      t->oom = 1;
      return;
    }
  }
  t->rows++;
}

static void t_free(table *t) {
  for (size_t i = 0; i < t->rows * (size_t)t->ncols; i++) free(t->cells[i]);
  free(t->cells);
}

static int alias_is(const col *c, const char *name, size_t len) {
  if (strlen(c->name) == len && memcmp(c->name, name, len) == 0) return 1;
  for (const char *a = c->aliases; a && *a;) {
    size_t al = strcspn(a, ",");
    if (al == len && memcmp(a, name, len) == 0) return 1;
    a += al;
    if (*a == ',') a++;
  }
  return 0;
}

static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
  if (!*buf) return;
  if (*len + n + 1 > *cap) {
    size_t nc = *cap * 2 + n + 1;
    char *b = realloc(*buf, nc);
    if (!b) {
      free(*buf);
      *buf = NULL;
      return;
    }
    *buf = b;
    *cap = nc;
  }
  memcpy(*buf + *len, s, n);
  *len += n;
  (*buf)[*len] = 0;
}

/* Answers the table as the query asks (and frees it). */
static void t_reply(cl_admin *a, cl_admin_req *req, table *t, const char *what) {
  if (t->oom) {
    cl_admin_reply_error(a, req->priv, 503, "out of memory building %s", what);
    t_free(t);
    return;
  }
  char hb[1024], fb[16], vb[8];
  int sel[MAX_COLS], nsel = 0;
  int q = cl_admin_query_lookup(req, "h", hb, sizeof hb);
  if (cl_admin_query_param(req, "help", vb, sizeof vb)) {
    char *out = malloc(256);
    size_t len = 0, cap = 256;
    if (out) out[0] = 0;
    for (int i = 0; i < t->ncols; i++) {
      char line[400];
      int n = snprintf(line, sizeof line, "%-14s | %-12s | %s\n", t->cols[i].name, t->cols[i].aliases ? t->cols[i].aliases : "",
                       t->cols[i].desc);
      append(&out, &len, &cap, line, (size_t)n);
    }
    if (out) cl_admin_reply(a, req->priv, 200, "text/plain; charset=utf-8", out, len);
    else cl_admin_reply_error(a, req->priv, 503, "out of memory");
    free(out);
    t_free(t);
    return;
  }
  if (q == CL_ADMIN_QP_OK && *hb) {
    for (const char *p = hb; *p;) {
      size_t l = strcspn(p, ",");
      while (l && *p == ' ') p++, l--;
      size_t tl = l;
      while (tl && p[tl - 1] == ' ') tl--;
      if (tl == 1 && *p == '*') {
        for (int i = 0; i < t->ncols && nsel < MAX_COLS; i++) sel[nsel++] = i;
      } else if (tl) {
        int found = -1;
        for (int i = 0; i < t->ncols && found < 0; i++)
          if (alias_is(&t->cols[i], p, tl)) found = i;
        if (found < 0) {
          char names[512] = "";
          size_t nl = 0;
          for (int i = 0; i < t->ncols; i++)
            if (nl < sizeof names) /* a longer list is cut, never written past */
              nl += (size_t)snprintf(names + nl, sizeof names - nl, "%s%s", i ? ", " : "", t->cols[i].name);
          cl_admin_reply_error(a, req->priv, 400, "unknown column [%.*s] for %s: expected one of %s", (int)(tl > 64 ? 64 : tl),
                               p, what, names);
          t_free(t);
          return;
        }
        if (nsel < MAX_COLS) sel[nsel++] = found;
      }
      p += l;
      if (*p == ',') p++;
    }
  } else if (q == CL_ADMIN_QP_MALFORMED || q == CL_ADMIN_QP_TOO_LONG) {
    cl_admin_reply_error(a, req->priv, 400, "h: expected a comma-separated list of columns");
    t_free(t);
    return;
  }
  if (!nsel)
    for (int i = 0; i < t->ncols; i++)
      if (t->cols[i].dflt) sel[nsel++] = i;
  const char *fmt = cl_admin_query_param(req, "format", fb, sizeof fb);
  if (fmt && strcmp(fmt, "json") == 0) {
    json_t *arr = json_array();
    for (size_t r = 0; r < t->rows; r++) {
      json_t *o = json_object();
      for (int k = 0; k < nsel; k++)
        json_object_set_new(o, t->cols[sel[k]].name, json_string(t->cells[r * (size_t)t->ncols + (size_t)sel[k]]));
      json_array_append_new(arr, o);
    }
    t_free(t);
    cl_admin_reply_json(a, req->priv, 200, arr);
    return;
  }
  if (fmt && strcmp(fmt, "text") != 0 && strcmp(fmt, "txt") != 0) {
    cl_admin_reply_error(a, req->priv, 400, "format: expected text or json, got '%.20s'", fmt);
    t_free(t);
    return;
  }
  int header = cl_admin_query_param(req, "v", vb, sizeof vb) != NULL && strcmp(vb, "false") != 0;
  size_t w[MAX_COLS];
  for (int k = 0; k < nsel; k++) {
    w[k] = header ? strlen(t->cols[sel[k]].name) : 0;
    for (size_t r = 0; r < t->rows; r++) {
      size_t l = strlen(t->cells[r * (size_t)t->ncols + (size_t)sel[k]]);
      if (l > w[k]) w[k] = l;
    }
  }
  size_t len = 0, cap = 1024;
  char *out = malloc(cap);
  if (out) out[0] = 0;
  for (size_t r = header ? 0 : 1; r <= t->rows; r++) {
    for (int k = 0; k < nsel; k++) {
      const char *cell = r == 0 ? t->cols[sel[k]].name : t->cells[(r - 1) * (size_t)t->ncols + (size_t)sel[k]];
      size_t l = strlen(cell);
      append(&out, &len, &cap, cell, l);
      if (k + 1 < nsel)
        for (size_t pad = l; pad <= w[k]; pad++) append(&out, &len, &cap, " ", 1);
    }
    append(&out, &len, &cap, "\n", 1);
  }
  t_free(t);
  if (!out) {
    cl_admin_reply_error(a, req->priv, 503, "out of memory");
    return;
  }
  cl_admin_reply(a, req->priv, 200, "text/plain; charset=utf-8", out, len);
  free(out);
}

/* "host:port" -> host (brackets of IPv6 removed), port */
static void split_addr(const char *addr, char *host, size_t hl, char *port, size_t pl) {
  const char *colon = strrchr(addr, ':');
  size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
  const char *h = addr;
  if (n >= 2 && h[0] == '[' && h[n - 1] == ']') h++, n -= 2;
  snprintf(host, hl, "%.*s", (int)n, h);
  snprintf(port, pl, "%s", colon ? colon + 1 : "-");
}

/* roles as Elasticsearch abbreviates them: the first letter of each, sorted */
static void role_letters(const char *roles, char *out, size_t cap) {
  size_t k = 0;
  for (const char *p = roles; p && *p && k + 1 < cap;) {
    size_t l = strcspn(p, ",");
    if (l) out[k++] = p[0];
    p += l;
    if (*p == ',') p++;
  }
  out[k] = 0;
  for (size_t i = 1; i < k; i++)
    for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
      char c = out[j];
      out[j] = out[j - 1];
      out[j - 1] = c;
    }
  if (!k) snprintf(out, cap, "-");
}

/* the round trips of the connected peers, by node id: gathered in one pass and
 * searched per row, so that /_cat/nodes at 1,000 members is not 1,000 walks of the
 * transport's peers */
typedef struct {
  const char *id;
  uint32_t rtt_us;
} rtt_entry;

struct rtt_table {
  rtt_entry *v;
  size_t n, cap;
  int oom;
};

static void gather_rtt(void *ud, const cl_peer_info *p) {
  struct rtt_table *t = ud;
  if (!p->connected || !p->node_id || !*p->node_id || t->oom) return;
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 32;
    rtt_entry *nv = realloc(t->v, nc * sizeof *nv);
    if (!nv) {
      t->oom = 1; /* the rtt column says "-" */
      return;
    }
    t->v = nv;
    t->cap = nc;
  }
  t->v[t->n++] = (rtt_entry){p->node_id, p->rtt_us};
}

static int rtt_cmp(const void *a, const void *b) {
  return strcmp(((const rtt_entry *)a)->id, ((const rtt_entry *)b)->id);
}

static int in_config(const cl_el_state *st, const char *id) {
  for (uint32_t i = 0; i < st->accepted_config.n; i++)
    if (strcmp(st->accepted_config.ids[i], id) == 0) return 1;
  return 0;
}

static int is_excluded(const cl_el_state *st, const char *id) {
  for (uint32_t i = 0; i < st->n_excl; i++)
    if (strcmp(st->excl[i].id, id) == 0) return 1;
  return 0;
}

static const col nodes_cols[] = {
    {"id", "nodeId", "node id (of its data directory)", 0},
    {"ip", "i", "address", 1},
    {"port", "po", "transport port", 1},
    {"node.role", "r,role,nodeRole", "roles, one letter each", 1},
    {"master", "m", "* for the elected master", 1},
    {"voting", "v", "yes: in the voting configuration; excluded; no", 0},
    {"rtt", "rtt_ms", "heartbeat round trip in ms (- for this node)", 0},
    {"name", "n", "node name", 1},
};

/* GET /_cat/nodes: the members of the committed cluster state */
static void h_cat_nodes(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  table t = {.cols = nodes_cols, .ncols = (int)(sizeof nodes_cols / sizeof *nodes_cols)};
  const cl_el_state *st = n->el ? cl_el_committed(n->el) : NULL;
  const char *master_id = n->el ? cl_el_master_id(n->el) : NULL;
  struct rtt_table rt = {0};
  if (st) cl_transport_foreach(n->t, gather_rtt, &rt);
  if (rt.n > 1) qsort(rt.v, rt.n, sizeof *rt.v, rtt_cmp);
  for (uint32_t i = 0; st && i < st->n_nodes; i++) {
    const cl_el_node *nd = &st->nodes[i];
    char host[160], port[16], roles[64], rtt[32] = "-";
    split_addr(nd->address, host, sizeof host, port, sizeof port);
    role_letters(nd->tags, roles, sizeof roles);
    if (strcmp(nd->id, n->cfg->id) != 0 && rt.n) {
      rtt_entry key = {.id = nd->id};
      const rtt_entry *r = bsearch(&key, rt.v, rt.n, sizeof *rt.v, rtt_cmp);
      if (r) snprintf(rtt, sizeof rtt, "%.2f", r->rtt_us / 1000.0);
    }
    const char *vals[] = {nd->id, host, port, roles, master_id && strcmp(master_id, nd->id) == 0 ? "*" : "-",
                          is_excluded(st, nd->id) ? "excluded" : in_config(st, nd->id) ? "yes" : "no", rtt, nd->name};
    t_row(&t, vals);
  }
  free(rt.v);
  t_reply(a, req, &t, "/_cat/nodes");
}

static const col master_cols[] = {
    {"id", NULL, "node id", 1},
    {"host", "h", "host name", 1},
    {"ip", NULL, "address", 1},
    {"node", "n", "node name", 1},
};

static void h_cat_master(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  table t = {.cols = master_cols, .ncols = 4};
  const char *id = n->el ? cl_el_master_id(n->el) : NULL;
  const char *name = n->el ? cl_el_master_name(n->el) : NULL;
  const cl_el_state *st = n->el ? cl_el_committed(n->el) : NULL;
  char host[160] = "-", port[16];
  const char *addr = NULL;
  for (uint32_t i = 0; id && st && i < st->n_nodes; i++)
    if (strcmp(st->nodes[i].id, id) == 0) addr = st->nodes[i].address;
  if (!addr && name && strchr(name, '@')) addr = strchr(name, '@') + 1;
  if (addr) split_addr(addr, host, sizeof host, port, sizeof port);
  const char *vals[] = {id, host, host, name};
  t_row(&t, vals);
  t_reply(a, req, &t, "/_cat/master");
}

static const col health_cols[] = {
    {"epoch", "t,time", "seconds since 1970", 1},
    {"timestamp", "ts,hms,hhmmss", "time of day (UTC)", 1},
    {"cluster", "cl", "cluster name", 1},
    {"status", "st", "green, yellow or red", 1},
    {"node.total", "nt,nodeTotal", "members of the committed state", 1},
    {"master", "m", "elected master", 1},
    {"term", NULL, "election term", 1},
    {"version", "ver", "committed state version", 1},
    {"quorum", "q", "votes needed", 1},
};

static void h_cat_health(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  table t = {.cols = health_cols, .ncols = (int)(sizeof health_cols / sizeof *health_cols)};
  json_t *h = cl_admin_health_json(n);
  struct timeval tv;
  gettimeofday(&tv, NULL);
  time_t now = tv.tv_sec;
  struct tm tm;
  gmtime_r(&now, &tm);
  char epoch[24], ts[16], total[16], term[24], ver[24], quorum[16];
  snprintf(epoch, sizeof epoch, "%lld", (long long)now);
  strftime(ts, sizeof ts, "%H:%M:%S", &tm);
  snprintf(total, sizeof total, "%lld", (long long)json_integer_value(json_object_get(h, "number_of_nodes")));
  snprintf(term, sizeof term, "%lld", (long long)json_integer_value(json_object_get(h, "term")));
  snprintf(ver, sizeof ver, "%lld", (long long)json_integer_value(json_object_get(h, "version")));
  snprintf(quorum, sizeof quorum, "%lld", (long long)json_integer_value(json_object_get(h, "quorum")));
  const char *vals[] = {epoch, ts, n->cfg->cluster, json_string_value(json_object_get(h, "status")), total,
                        json_string_value(json_object_get(h, "master")), term, ver, quorum};
  t_row(&t, vals);
  json_decref(h);
  t_reply(a, req, &t, "/_cat/health");
}

/* GET /_cat: the tables there are, as Elasticsearch lists them */
static void h_cat_index(cl_admin *a, cl_admin_req *req, void *ud) {
  (void)ud;
  static const char idx[] = "=^.^=\n/_cat/nodes\n/_cat/master\n/_cat/health\n";
  cl_admin_reply(a, req->priv, 200, "text/plain; charset=utf-8", idx, sizeof idx - 1);
}

/* GET /: who answers. A browser (Accept: text/html) goes to the console instead. */
static void h_root(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  if (strstr(req->accept, "text/html")) {
    cl_admin_reply_headers(a, req->priv, 302, "text/plain; charset=utf-8", "Location: /_console\r\n",
                           "see /_console\n", 14);
    return;
  }
  if (!req->authenticated) {
    static const char body[] = "{\"error\":\"missing or invalid bearer token (Authorization: Bearer <token>)\"}\n";
    cl_admin_reply_headers(a, req->priv, 401, NULL, "WWW-Authenticate: Bearer realm=\"clusterlua\"\r\n", body,
                           sizeof body - 1);
    return;
  }
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(n->cfg->name));
  json_object_set_new(o, "cluster_name", json_string(n->cfg->cluster));
  const char *cid = n->el ? cl_el_cluster_id(n->el) : NULL;
  json_object_set_new(o, "cluster_uuid", cid && *cid ? json_string(cid) : json_null());
  json_object_set_new(o, "node_id", json_string(n->cfg->id));
  json_object_set_new(o, "version", json_pack("{s:s, s:s}", "number", CL_VERSION, "build_flavor", "clusterlua"));
  json_object_set_new(o, "tagline", json_string("You Know, for Clusters"));
  cl_admin_reply_json(a, req->priv, 200, o);
}

/* GET /_cluster/state/{metrics}: version, master_node, nodes, metadata or _all,
 * comma-separated, as Elasticsearch names them; cluster_name and cluster_uuid always. */
static void h_state_metrics(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_node *n = ud;
  static const char *const known[] = {"_all", "version", "master_node", "nodes", "metadata"};
  const char *metrics = req->path + strlen("/_cluster/state/");
  if (strchr(metrics, '/')) {
    cl_admin_reply_error(a, req->priv, 400,
                         "/_cluster/state/{metrics}: this cluster has no indices, nothing may follow the metrics");
    return;
  }
  int want[5] = {0};
  for (const char *p = metrics; *p;) {
    size_t l = strcspn(p, ",");
    int found = -1;
    for (int i = 0; i < 5 && found < 0; i++)
      if (strlen(known[i]) == l && memcmp(known[i], p, l) == 0) found = i;
    if (found < 0 && l) {
      cl_admin_reply_error(a, req->priv, 400,
                           "unknown cluster state metric [%.*s]: expected _all, version, master_node, nodes or metadata",
                           (int)(l > 64 ? 64 : l), p);
      return;
    }
    if (found >= 0) want[found] = 1;
    p += l;
    if (*p == ',') p++;
  }
  char fp[CL_JSON_FILTER_MAX_LEN + 1];
  if (cl_admin_filter_param(a, req, fp) != 0) return;
  const cl_el_state *st = n->el ? cl_el_committed(n->el) : NULL;
  if (!st) {
    cl_admin_reply_error(a, req->priv, 503, "no committed cluster state yet");
    return;
  }
  json_t *full = cl_node_state_json(n, st);
  json_t *doc = json_object();
  static const char *const always[] = {"cluster_name", "cluster_uuid"};
  for (int i = 0; i < 2; i++) json_object_set(doc, always[i], json_object_get(full, always[i]));
  if (want[0] || want[1]) {
    json_object_set(doc, "version", json_object_get(full, "version"));
    json_object_set(doc, "term", json_object_get(full, "term"));
  }
  if (want[0] || want[2]) json_object_set(doc, "master_node", json_object_get(full, "master_node"));
  if (want[0] || want[3]) json_object_set(doc, "nodes", json_object_get(full, "nodes"));
  if (want[0] || want[4]) json_object_set(doc, "metadata", json_object_get(full, "metadata"));
  json_decref(full);
  if (*fp) {
    json_t *f = cl_json_filter_path(doc, fp);
    json_decref(doc);
    doc = f;
  }
  cl_admin_reply_json(a, req->priv, 200, doc);
}

void cl_cat_start(cl_admin *a, cl_node *n) {
  cl_admin_route_public(a, "/", h_root, n);
  cl_admin_route(a, "GET", "/_cat", h_cat_index, n);
  cl_admin_route(a, "GET", "/_cat/nodes", h_cat_nodes, n);
  cl_admin_route(a, "GET", "/_cat/master", h_cat_master, n);
  cl_admin_route(a, "GET", "/_cat/health", h_cat_health, n);
  cl_admin_route(a, "GET", "/_cluster/state/*", h_state_metrics, n);
}
