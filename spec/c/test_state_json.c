/* The committed state as Lua gets it (runtime/node/state_json.c): whole the first time,
 * then as a delta. A delta applied to the whole base must give the whole new state, and
 * a node that did not change must cost nothing in it. Times at 1,000 nodes are printed
 * for docs/benchmarks.md, never asserted. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/state_json.h"

#include "harness.h"

static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* nodes k in [from, to), ids sorted as the core keeps them */
static int fill(cl_el_state *st, int from, int to, uint64_t version) {
  cl_el_state_init(st);
  snprintf(st->cluster_id, sizeof st->cluster_id, "c0ffee");
  st->term = 3;
  st->version = version;
  if (cl_el_state_reserve_nodes(st, (uint32_t)(to - from))) return -1;
  for (int k = from; k < to; k++) {
    char id[32], name[64], addr[32];
    snprintf(id, sizeof id, "id%05d", k);
    snprintf(name, sizeof name, "edge%d@10.0.%d.%d:4370", k, k / 256, k % 256);
    snprintf(addr, sizeof addr, "10.0.%d.%d:4370", k / 256, k % 256);
    if (cl_el_node_set(&st->nodes[st->n_nodes], id, name, addr, 0, k % 10 ? "data" : "master,data")) return -1;
    st->n_nodes++;
  }
  snprintf(st->master_id, sizeof st->master_id, "id%05d", from);
  st->accepted_config.n = 0;
  return 0;
}

static int set_meta(cl_el_state *st, const char *json, uint64_t v) {
  free(st->meta);
  st->meta = (uint8_t *)strdup(json);
  if (!st->meta) return -1;
  st->meta_len = (uint32_t)strlen(json);
  st->meta_version = v;
  return 0;
}

/* what cluster.lua's patch does, on the JSON: base's nodes, less the removed, plus the
 * changed; metadata.user from base unless the delta has it */
static json_t *apply(json_t *base, json_t *d) {
  json_t *out = json_deep_copy(d);
  json_t *nodes = json_deep_copy(json_object_get(base, "nodes"));
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(d, "nodes_removed"), i, v) json_object_del(nodes, json_string_value(v));
  const char *k;
  json_object_foreach(json_object_get(d, "nodes_changed"), k, v) json_object_set(nodes, k, v);
  json_object_set_new(out, "nodes", nodes);
  json_t *md = json_object_get(out, "metadata");
  if (!json_object_get(md, "user"))
    json_object_set(md, "user", json_object_get(json_object_get(base, "metadata"), "user"));
  const char *drop[] = {"delta", "base_term", "base_version", "nodes_changed", "nodes_removed"};
  for (size_t j = 0; j < sizeof drop / sizeof *drop; j++) json_object_del(out, drop[j]);
  return out;
}

static json_t *whole(const cl_el_state *st) { return cl_state_json("c", st, NULL, NULL); }
static json_t *delta(const cl_el_state *a, const cl_el_state *b) { return cl_state_json_delta("c", a, b, NULL, NULL); }

static size_t count(json_t *d, const char *k) {
  json_t *v = json_object_get(d, k);
  return json_is_array(v) ? json_array_size(v) : json_object_size(v);
}

/* 300 nodes; the next state drops 2, adds 3, renames one and changes another's roles */
static int t_delta_applies(void) {
  cl_el_state a, b;
  CHECK(fill(&a, 0, 300, 10) == 0 && fill(&b, 2, 303, 11) == 0, "out of memory");
  CHECK(set_meta(&a, "{\"k\":1}", 4) == 0 && set_meta(&b, "{\"k\":1}", 4) == 0, "out of memory");
  CHECK(cl_el_node_set(&b.nodes[50], b.nodes[50].id, "renamed@10.9.9.9:4370", "10.9.9.9:4370", 0, "data") == 0, "oom");
  CHECK(cl_el_node_set(&b.nodes[60], b.nodes[60].id, b.nodes[60].name, b.nodes[60].address, 0, "gpu") == 0, "oom");
  json_t *ja = whole(&a), *jb = whole(&b), *d = delta(&a, &b);
  CHECK(d && json_is_true(json_object_get(d, "delta")), "no delta flag");
  CHECK(json_integer_value(json_object_get(d, "base_version")) == 10, "base version");
  CHECK(json_integer_value(json_object_get(d, "base_term")) == 3, "base term");
  CHECK(count(d, "nodes_removed") == 2, "removed %zu, expected 2", count(d, "nodes_removed"));
  CHECK(count(d, "nodes_changed") == 5, "changed %zu, expected 3 added and 2 changed", count(d, "nodes_changed"));
  CHECK(!json_object_get(d, "nodes"), "a delta carries no whole node list");
  CHECK(!json_object_get(json_object_get(d, "metadata"), "user"), "unchanged user metadata sent again");
  json_t *got = apply(ja, d);
  char *sg = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT), *sw = json_dumps(jb, JSON_SORT_KEYS | JSON_COMPACT);
  int same = sg && sw && !strcmp(sg, sw);
  if (!same) fprintf(stderr, "got  %.300s\nwant %.300s\n", sg ? sg : "?", sw ? sw : "?");
  free(sg), free(sw);
  json_decref(ja), json_decref(jb), json_decref(d), json_decref(got);
  cl_el_state_clear(&a), cl_el_state_clear(&b);
  CHECK(same, "base + delta is not the new state");
  return 0;
}

/* user metadata that changed is in the delta; one that did not, and the same nodes
 * (copies sharing their strings, or equal strings), cost no entry */
static int t_metadata_and_nothing(void) {
  cl_el_state a, b, c;
  CHECK(fill(&a, 0, 50, 1) == 0 && fill(&b, 0, 50, 2) == 0, "out of memory");
  cl_el_state_init(&c);
  CHECK(cl_el_state_copy(&c, &b) == 0, "out of memory");
  c.version = 3;
  CHECK(set_meta(&c, "{\"k\":2}", 3) == 0, "out of memory");
  json_t *d1 = delta(&a, &b), *d2 = delta(&b, &c);
  CHECK(count(d1, "nodes_changed") == 0 && count(d1, "nodes_removed") == 0, "equal nodes reported as changed");
  CHECK(count(d2, "nodes_changed") == 0, "a copy's shared nodes reported as changed");
  json_t *u = json_object_get(json_object_get(d2, "metadata"), "user");
  CHECK(u && json_integer_value(json_object_get(u, "k")) == 2, "changed user metadata missing from the delta");
  CHECK(json_integer_value(json_object_get(json_object_get(d2, "metadata"), "user_version")) == 3, "user_version");
  json_decref(d1), json_decref(d2);
  cl_el_state_clear(&a), cl_el_state_clear(&b), cl_el_state_clear(&c);
  return 0;
}

/* every node replaced, or all gone: the delta still applies */
static int t_extremes(void) {
  cl_el_state a, b, e;
  CHECK(fill(&a, 0, 40, 1) == 0 && fill(&b, 100, 140, 2) == 0 && fill(&e, 0, 0, 3) == 0, "out of memory");
  json_t *ja = whole(&a), *jb = whole(&b), *je = whole(&e);
  json_t *d1 = delta(&a, &b), *d2 = delta(&b, &e);
  CHECK(count(d1, "nodes_removed") == 40 && count(d1, "nodes_changed") == 40, "replace all");
  json_t *g1 = apply(ja, d1), *g2 = apply(jb, d2);
  CHECK(json_equal(g1, jb), "base + delta (all replaced) differs");
  CHECK(json_equal(g2, je), "base + delta (all removed) differs");
  json_decref(ja), json_decref(jb), json_decref(je), json_decref(d1), json_decref(d2), json_decref(g1), json_decref(g2);
  cl_el_state_clear(&a), cl_el_state_clear(&b), cl_el_state_clear(&e);
  return 0;
}

/* what one commit costs a node at 1,000 members: the whole state against one join */
static int t_times(void) {
  cl_el_state a, b;
  CHECK(fill(&a, 0, 1000, 1) == 0 && fill(&b, 0, 1001, 2) == 0, "out of memory");
  size_t lw = 0, ld = 0;
  double t0 = mono_ms();
  for (int r = 0; r < 20; r++) {
    json_t *j = whole(&b);
    char *s = json_dumps(j, JSON_COMPACT);
    lw = s ? strlen(s) : 0;
    free(s), json_decref(j);
  }
  double t1 = mono_ms();
  for (int r = 0; r < 20; r++) {
    json_t *j = delta(&a, &b);
    char *s = json_dumps(j, JSON_COMPACT);
    ld = s ? strlen(s) : 0;
    free(s), json_decref(j);
  }
  double t2 = mono_ms();
  printf("# 1,000 nodes, one joined: whole state %zu bytes in %.3f ms, delta %zu bytes in %.3f ms (mean of 20)\n", lw,
         (t1 - t0) / 20, ld, (t2 - t1) / 20);
  cl_el_state_clear(&a), cl_el_state_clear(&b);
  CHECK(ld > 0 && ld < lw / 10, "delta of %zu bytes against a whole state of %zu", ld, lw);
  return 0;
}

int main(void) {
  run_case("a delta applied to its base gives the new state (nodes added, removed, changed)", t_delta_applies);
  run_case("a delta carries user metadata only when it changed, and no unchanged node", t_metadata_and_nothing);
  run_case("a delta applies when every node is replaced or gone", t_extremes);
  run_case("a delta of one join at 1,000 nodes is a fraction of the whole state", t_times);
  return harness_exit();
}
