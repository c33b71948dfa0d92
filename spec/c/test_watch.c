/* Who watches whom (runtime/transport/watch.c): pure, so the selection is checked here
 * against a brute-force sort of the ring. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "transport/watch.h"

#define N 40
static char names_buf[N][64];
static const char *names[N];
static uint64_t h[N];

/* brute force: index order by forward distance from `from` (ties by name) */
static uint64_t g_from;
static int cmp_fwd(const void *a, const void *b) {
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  uint64_t di = h[i] - g_from, dj = h[j] - g_from;
  return di != dj ? (di < dj ? -1 : 1) : strcmp(names[i], names[j]);
}

static int t_successors(void) {
  for (int i = 0; i < N; i++) {
    snprintf(names_buf[i], sizeof names_buf[i], "node%d@127.0.%d.%d:4370", i, i / 200, i % 200 + 1);
    names[i] = names_buf[i];
    h[i] = cl_watch_hash(names[i]);
  }
  /* each node watches its 3 successors among the others: the brute-force sort agrees */
  for (int self = 0; self < N; self++) {
    size_t idx[N], m = 0;
    for (size_t i = 0; i < N; i++)
      if ((int)i != self) idx[m++] = i;
    g_from = h[self];
    qsort(idx, m, sizeof *idx, cmp_fwd);
    size_t out[3];
    size_t got = cl_watch_pick(names, h, N, names[self], h[self], 1, SIZE_MAX, 3, out);
    CHECK(got == 3, "node%d: %zu picked", self, got);
    for (int k = 0; k < 3; k++) CHECK(out[k] == idx[k], "node%d: pick %d is %zu, the ring says %zu", self, k, out[k], idx[k]);
  }
  return 0;
}

static int t_everyone_watched_k_times(void) {
  /* on a ring every node is the successor of exactly k others: watched by k */
  int watched[N] = {0};
  for (int self = 0; self < N; self++) {
    size_t out[3];
    size_t got = cl_watch_pick(names, h, N, names[self], h[self], 1, SIZE_MAX, 3, out);
    for (size_t k = 0; k < got; k++) watched[out[k]]++;
  }
  for (int i = 0; i < N; i++) CHECK(watched[i] == 3, "node%d watched by %d", i, watched[i]);
  /* and its watchers are its predecessors: what the backward pick names */
  for (int b = 0; b < N; b++) {
    size_t pre[3];
    size_t got = cl_watch_pick(names, h, N, names[b], h[b], 0, SIZE_MAX, 3, pre);
    CHECK(got == 3, "predecessors of node%d: %zu", b, got);
    for (size_t k = 0; k < 3; k++) {
      size_t out[3];
      cl_watch_pick(names, h, N, names[pre[k]], h[pre[k]], 1, SIZE_MAX, 3, out);
      CHECK(out[0] == (size_t)b || out[1] == (size_t)b || out[2] == (size_t)b, "node%zu does not watch node%d", pre[k], b);
    }
  }
  return 0;
}

static int t_small_and_edges(void) {
  size_t out[8];
  /* fewer peers than k: all of them (everyone watches everyone) */
  size_t got = cl_watch_pick(names, h, 3, "zz@h:1", cl_watch_hash("zz@h:1"), 1, SIZE_MAX, 3, out);
  CHECK(got == 3, "3 peers, k 3: %zu", got);
  got = cl_watch_pick(names, h, 2, "zz@h:1", cl_watch_hash("zz@h:1"), 1, SIZE_MAX, 3, out);
  CHECK(got == 2 && out[0] != out[1], "2 peers, k 3: %zu", got);
  got = cl_watch_pick(names, h, 0, "zz@h:1", 0, 1, SIZE_MAX, 3, out);
  CHECK(got == 0, "no peers: %zu", got);
  /* skip: the suspect itself is never its own helper */
  got = cl_watch_pick(names, h, 4, NULL, h[2], 0, 2, 8, out);
  CHECK(got == 3, "skip: %zu", got);
  for (size_t i = 0; i < got; i++) CHECK(out[i] != 2, "picked the skipped one");
  /* equal hashes are ordered by name, the same on every node */
  const char *same[3] = {"b@h:1", "a@h:1", "c@h:1"};
  uint64_t hs[3] = {7, 7, 7};
  got = cl_watch_pick(same, hs, 3, NULL, 5, 1, SIZE_MAX, 3, out);
  CHECK(got == 3 && out[0] == 1 && out[1] == 0 && out[2] == 2, "ties: %zu %zu %zu", out[0], out[1], out[2]);
  /* the hash is FNV-1a 64: fixed, so every node and every build agree */
  CHECK(cl_watch_hash("") == 14695981039346656037ull && cl_watch_hash("a") == 0xaf63dc4c8601ec8cull, "FNV-1a values");
  return 0;
}

int main(void) {
  run_case("watch: each node watches its k successors on the ring of name hashes", t_successors);
  run_case("watch: every node is watched by exactly k, and its watchers are its predecessors", t_everyone_watched_k_times);
  run_case("watch: fewer peers than k: all; the suspect skipped; ties by name; fixed hash", t_small_and_edges);
  return harness_exit();
}
