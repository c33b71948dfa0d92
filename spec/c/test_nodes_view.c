/* GET /_nodes's query and answer (runtime/admin/nodes_view.c) at the sizes issue 18
 * names: 1,000 and 10,000 entries. Counts, filters, order and paging are checked;
 * times are printed for docs/benchmarks.md, never asserted. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/nodes_view.h"

#include "harness.h"

static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* N peers plus this node ("self@..."): the first `down` down, the next `configured`
 * configured, the rest up; every 10th has the master role. Added in reverse name order,
 * so the sort is exercised. */
static cl_nodes_view *fill(const cl_nodes_query *q, int n, int down, int configured) {
  cl_nodes_view *v = cl_nodes_view_new(q);
  if (!v) return NULL;
  cl_nodes_entry self = {.name = "self@127.0.0.1:4370", .id = "selfid", .address = "127.0.0.1:4370",
                         .roles = "master", .status = "up", .self = 1, .connected = 1, .since_ms = 1};
  for (int k = n - 1; k >= 0; k--) {
    char name[64], addr[32], id[32];
    snprintf(name, sizeof name, "edge%05d@10.0.%d.%d:4370", k, k / 256, k % 256);
    snprintf(addr, sizeof addr, "10.0.%d.%d:4370", k / 256, k % 256);
    snprintf(id, sizeof id, "id%05d", k);
    const char *st = k < down ? "down" : k < down + configured ? "configured" : "up";
    cl_nodes_entry e = {.name = name, .id = id, .address = addr, .roles = k % 10 == 0 ? "master,data" : "data",
                        .status = st, .connected = strcmp(st, "up") == 0, .since_ms = 1000 + k,
                        .last_heartbeat_ms = k % 7 ? k % 100 : -1, .rtt_us = (uint32_t)(100 + k)};
    if (cl_nodes_view_add(v, &e) != 0) {
      cl_nodes_view_free(v);
      return NULL;
    }
    if (k == n / 2 && cl_nodes_view_add(v, &self) != 0) { /* this node in the middle */
      cl_nodes_view_free(v);
      return NULL;
    }
  }
  if (n == 0 && cl_nodes_view_add(v, &self) != 0) {
    cl_nodes_view_free(v);
    return NULL;
  }
  return v;
}

static long sum_int(json_t *s, const char *k) { return (long)json_integer_value(json_object_get(s, k)); }
static long by_int(json_t *s, const char *k) {
  return (long)json_integer_value(json_object_get(json_object_get(s, "by_status"), k));
}
static const char *name_at(json_t *nodes, size_t i) {
  return json_string_value(json_object_get(json_array_get(nodes, i), "name"));
}

/* a query from "param=value" pairs; fails the case on a refused one */
static int query(cl_nodes_query *q, const char *const *kv) {
  char err[200];
  cl_nodes_query_init(q);
  for (; kv && kv[0]; kv += 2)
    if (cl_nodes_query_set(q, kv[0], kv[1], err, sizeof err) != 0) {
      snprintf(fail_msg, sizeof fail_msg, "%s=%s refused: %s", kv[0], kv[1], err);
      return -1;
    }
  return 0;
}

static int run(const char *const *kv, int n, int down, int configured, json_t **nodes, json_t **summary) {
  cl_nodes_query q;
  if (query(&q, kv) != 0) return -1;
  cl_nodes_view *v = fill(&q, n, down, configured);
  if (!v) {
    snprintf(fail_msg, sizeof fail_msg, "out of memory filling");
    return -1;
  }
  int r = cl_nodes_view_finish(v, nodes, summary);
  cl_nodes_view_free(v);
  if (r != 0) snprintf(fail_msg, sizeof fail_msg, "finish failed");
  return r;
}

static int t_default_everything(void) {
  json_t *nodes, *s;
  if (run(NULL, 1000, 8, 2, &nodes, &s) != 0) return 1;
  int ok = json_array_size(nodes) == 1001 && sum_int(s, "total") == 1001 && sum_int(s, "matched") == 1001 &&
           sum_int(s, "returned") == 1001 && sum_int(s, "unhealthy") == 10 && by_int(s, "up") == 991 &&
           by_int(s, "down") == 8 && by_int(s, "configured") == 2 && by_int(s, "disconnected") == 0 &&
           !json_object_get(json_object_get(s, "by_status"), "other") && sum_int(s, "number_of_connections") == 990;
  char *sd = json_dumps(s, JSON_COMPACT);
  /* this node first (wherever it was added), then by name */
  const char *first = name_at(nodes, 0), *second = name_at(nodes, 1), *last = name_at(nodes, 1000);
  int order = first && strcmp(first, "self@127.0.0.1:4370") == 0 && second &&
              strcmp(second, "edge00000@10.0.0.0:4370") == 0 && last && strcmp(last, "edge00999@10.0.3.231:4370") == 0;
  json_t *self = json_array_get(nodes, 0), *peer = json_array_get(nodes, 1);
  int layout = json_is_true(json_object_get(self, "self")) && !json_object_get(self, "fingerprint") &&
               json_is_null(json_object_get(peer, "fingerprint")) && !json_object_get(peer, "self") &&
               json_array_size(json_object_get(peer, "roles")) == 2 &&
               json_is_false(json_object_get(peer, "connected")) &&
               json_is_null(json_object_get(peer, "last_heartbeat_ms")) /* k=0: never */;
  json_decref(nodes);
  json_decref(s);
  CHECK(ok, "summary %s", sd ? sd : "?");
  free(sd);
  CHECK(order, "order: %s, %s ... %s", first ? first : "-", second ? second : "-", last ? last : "-");
  CHECK(layout, "entry layout differs from the documented one");
  return 0;
}

static int t_filters(void) {
  json_t *nodes, *s;
  /* unhealthy = everything but up: the 8 down and the 2 configured */
  const char *const unhealthy[] = {"status", "unhealthy", NULL};
  if (run(unhealthy, 1000, 8, 2, &nodes, &s) != 0) return 1;
  size_t k = json_array_size(nodes);
  long matched = sum_int(s, "matched"), total = sum_int(s, "total");
  json_decref(nodes);
  json_decref(s);
  CHECK(k == 10 && matched == 10 && total == 1001, "status=unhealthy: %zu rows, matched %ld, total %ld", k, matched,
        total);
  const char *const two[] = {"status", "configured,up", "size", "0", NULL};
  if (run(two, 1000, 8, 2, &nodes, &s) != 0) return 1;
  k = json_array_size(nodes);
  matched = sum_int(s, "matched");
  json_decref(nodes);
  json_decref(s);
  CHECK(k == 0 && matched == 993, "status=configured,up&size=0: %zu rows, matched %ld", k, matched);
  /* a pattern, a short name, a full name; this node matches its short name */
  const char *const names[] = {"name", "edge001*,self,edge00500@10.0.1.244:4370", NULL};
  if (run(names, 1000, 8, 2, &nodes, &s) != 0) return 1;
  k = json_array_size(nodes);
  const char *first = name_at(nodes, 0);
  int self_first = first && strncmp(first, "self@", 5) == 0;
  json_decref(nodes);
  json_decref(s);
  CHECK(k == 1 + 100 + 1 && self_first, "name patterns: %zu rows (want 102), first %s", k, first ? first : "-");
  const char *const role[] = {"role", "master", NULL};
  if (run(role, 1000, 8, 2, &nodes, &s) != 0) return 1;
  k = json_array_size(nodes);
  json_decref(nodes);
  json_decref(s);
  CHECK(k == 100 + 1, "role=master: %zu rows (want 101: every 10th and this node)", k);
  const char *const none[] = {"name", "nope*", NULL};
  if (run(none, 1000, 8, 2, &nodes, &s) != 0) return 1;
  k = json_array_size(nodes);
  total = sum_int(s, "total");
  json_decref(nodes);
  json_decref(s);
  CHECK(k == 0 && total == 1001, "name=nope*: %zu rows, total %ld (the summary counts every node)", k, total);
  return 0;
}

static int t_sort_and_paging(void) {
  json_t *nodes, *s;
  /* sort=status: this node, then the 10 unhealthy, then the up ones, by name in each */
  const char *const page1[] = {"sort", "status", "size", "50", NULL};
  if (run(page1, 1000, 8, 2, &nodes, &s) != 0) return 1;
  size_t k = json_array_size(nodes);
  const char *a = name_at(nodes, 0), *b = name_at(nodes, 1), *c = name_at(nodes, 10), *d = name_at(nodes, 11);
  int ok = a && strncmp(a, "self@", 5) == 0 && b && strncmp(b, "edge00000@", 10) == 0 && c &&
           strncmp(c, "edge00009@", 10) == 0 && d && strncmp(d, "edge00010@", 10) == 0 &&
           strcmp(json_string_value(json_object_get(json_array_get(nodes, 10), "status")), "configured") == 0 &&
           strcmp(json_string_value(json_object_get(json_array_get(nodes, 11), "status")), "up") == 0;
  long returned = sum_int(s, "returned"), matched = sum_int(s, "matched");
  json_decref(nodes);
  json_decref(s);
  CHECK(k == 50 && returned == 50 && matched == 1001, "size=50: %zu rows, returned %ld, matched %ld", k, returned,
        matched);
  CHECK(ok, "sort=status order: %s %s .. %s %s", a ? a : "-", b ? b : "-", c ? c : "-", d ? d : "-");
  /* from/size walk the default order without gaps or repeats */
  char seen[1001] = {0};
  size_t got = 0;
  for (int from = 0; from < 1100; from += 300) {
    char fb[16];
    snprintf(fb, sizeof fb, "%d", from);
    const char *const kv[] = {"from", fb, "size", "300", NULL};
    if (run(kv, 1000, 8, 2, &nodes, &s) != 0) return 1;
    for (size_t i = 0; i < json_array_size(nodes); i++) {
      const char *nm = name_at(nodes, i);
      int idx = strncmp(nm, "self@", 5) == 0 ? 1000 : atoi(nm + 4);
      if (idx >= 0 && idx <= 1000 && !seen[idx]) {
        seen[idx] = 1;
        got++;
      }
    }
    long from_s = sum_int(s, "from");
    json_decref(nodes);
    json_decref(s);
    CHECK(from_s == from, "summary.from %ld, want %d", from_s, from);
  }
  CHECK(got == 1001, "paging by 300 saw %zu distinct nodes, want 1001", got);
  const char *const past[] = {"from", "5000", NULL};
  if (run(past, 1000, 8, 2, &nodes, &s) != 0) return 1;
  k = json_array_size(nodes);
  json_decref(nodes);
  json_decref(s);
  CHECK(k == 0, "from past the end: %zu rows", k);
  return 0;
}

static int t_bad_values(void) {
  static const struct {
    const char *p, *v, *want;
  } bad[] = {
      {"size", "abc", "size: expected a whole number from 0 to 100000, got 'abc'"},
      {"size", "-1", "size: expected a whole number"},
      {"size", "", "size: expected a whole number"},
      {"size", "100001", "size: expected a whole number"},
      {"from", "1e3", "from: expected a whole number"},
      {"status", "dead", "status: unknown value 'dead' (expected up, down, configured, disconnected or unhealthy)"},
      {"status", "up,", "status: entry 2 is empty"},
      {"status", "", "status: entry 1 is empty"},
      {"name", ",x", "name: entry 1 is empty"},
      {"role", "a,,b", "role: entry 2 is empty"},
      {"sort", "age", "sort: expected name or status, got 'age'"},
      {"bogus", "1", "bogus: not a parameter of /_nodes"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cl_nodes_query q;
    char err[200] = "";
    cl_nodes_query_init(&q);
    int r = cl_nodes_query_set(&q, bad[i].p, bad[i].v, err, sizeof err);
    CHECK(r == -1 && strstr(err, bad[i].want), "%s=%s: r=%d err='%s' (want '%s')", bad[i].p, bad[i].v, r, err,
          bad[i].want);
  }
  /* too long, too many entries */
  char big[CL_NODES_PARAM_MAX + 2];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  cl_nodes_query q;
  char err[200] = "";
  cl_nodes_query_init(&q);
  CHECK(cl_nodes_query_set(&q, "name", big, err, sizeof err) == -1 && strstr(err, "name is longer than 1024"),
        "long name: %s", err);
  char many[200] = "";
  for (int i = 0; i <= CL_NODES_MAX_PATTERNS; i++) strcat(many, i ? ",a" : "a");
  CHECK(cl_nodes_query_set(&q, "role", many, err, sizeof err) == -1 && strstr(err, "role: more than 32"),
        "many roles: %s", err);
  CHECK(cl_nodes_query_set(&q, "size", NULL, err, sizeof err) == 0 && q.size == -1, "an absent value changed size");
  return 0;
}

static int t_glob(void) {
  static const struct {
    const char *pat, *name;
    int want;
  } g[] = {
      {"node1", "node1@127.0.0.1:4371", 1},          {"node1", "node10@127.0.0.1:4371", 0},
      {"node1*", "node10@127.0.0.1:4371", 1},        {"*@10.0.0.*", "a@10.0.0.7:4370", 1},
      {"*@10.0.0.*", "a@10.0.1.7:4370", 0},          {"a@h:1", "a@h:1", 1},
      {"a@h", "a@h:1", 0},                           {"*", "anything", 1},
      {"**x**", "aaxbb", 1},                         {"a*b*c", "aXbYc", 1},
      {"a*b*c", "aXbY", 0},                          {"x,node*", "node2@h:1", 1},
      {"", "whatever", 1},                           {"edge-*", "edge-17@10.1.2.3:4370", 1},
  };
  for (size_t i = 0; i < sizeof g / sizeof *g; i++)
    CHECK(cl_nodes_name_match(g[i].pat, g[i].name) == g[i].want, "'%s' vs '%s': want %d", g[i].pat, g[i].name,
          g[i].want);
  return 0;
}

/* status values a newer transport might add are counted, not lost */
static int t_unknown_status(void) {
  cl_nodes_view *v = cl_nodes_view_new(NULL);
  CHECK(v, "oom");
  cl_nodes_entry e = {.name = "x@h:1", .status = "leaving"}, f = {.name = "y@h:1", .connected = 1};
  cl_nodes_view_add(v, &e);
  cl_nodes_view_add(v, &f);
  json_t *nodes, *s;
  int r = cl_nodes_view_finish(v, &nodes, &s);
  cl_nodes_view_free(v);
  CHECK(r == 0, "finish");
  long other = by_int(s, "other"), up = by_int(s, "up"), unhealthy = sum_int(s, "unhealthy");
  const char *st = json_string_value(json_object_get(json_array_get(nodes, 1), "status"));
  int st_up = st && strcmp(st, "up") == 0;
  json_decref(nodes);
  json_decref(s);
  CHECK(other == 1 && up == 1 && unhealthy == 1, "other %ld up %ld unhealthy %ld", other, up, unhealthy);
  CHECK(st_up, "a connected entry without status does not show up");
  return 0;
}

/* how long the answer takes to build and encode at 1,000 and 10,000 nodes (printed) */
static int t_timing(void) {
  const int sizes[] = {1000, 10000};
  for (size_t i = 0; i < 2; i++) {
    int n = sizes[i];
    double best_all = 1e9, best_page = 1e9;
    size_t bytes = 0;
    for (int rep = 0; rep < 5; rep++) {
      double t0 = mono_ms();
      json_t *nodes, *s;
      if (run(NULL, n, n / 100, 2, &nodes, &s) != 0) return 1;
      json_t *o = json_pack("{s:o, s:o}", "summary", s, "nodes", nodes);
      char *text = json_dumps(o, JSON_COMPACT);
      bytes = text ? strlen(text) : 0;
      free(text);
      json_decref(o);
      double t1 = mono_ms();
      const char *const page[] = {"sort", "status", "size", "50", NULL};
      if (run(page, n, n / 100, 2, &nodes, &s) != 0) return 1;
      o = json_pack("{s:o, s:o}", "summary", s, "nodes", nodes);
      text = json_dumps(o, JSON_COMPACT);
      free(text);
      json_decref(o);
      double t2 = mono_ms();
      if (t1 - t0 < best_all) best_all = t1 - t0;
      if (t2 - t1 < best_page) best_page = t2 - t1;
    }
    printf("# nodes_view %d nodes: every node %.2f ms (%zu bytes), sort=status&size=50 %.2f ms (best of 5)\n", n,
           best_all, bytes, best_page);
  }
  return 0;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  run_case("nodes_view: no parameter lists every node, this node first, then by name, with the summary",
           t_default_everything);
  run_case("nodes_view: status, name (patterns, short names) and role filters; the summary still counts all",
           t_filters);
  run_case("nodes_view: sort=status puts the unhealthy first; from/size page without gaps", t_sort_and_paging);
  run_case("nodes_view: a bad value is refused naming its parameter", t_bad_values);
  run_case("nodes_view: name patterns ('*', short names, lists)", t_glob);
  run_case("nodes_view: an unknown status is counted as other and unhealthy", t_unknown_status);
  run_case("nodes_view: timing at 1,000 and 10,000 nodes (printed, not asserted)", t_timing);
  return harness_exit();
}
