/* See watch.h. */
#include "transport/watch.h"

#include <string.h>

uint64_t cl_watch_hash(const char *name) {
  uint64_t h = 14695981039346656037ull; /* FNV-1a 64-bit offset basis */
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    h ^= *p;
    h *= 1099511628211ull; /* FNV prime */
  }
  return h;
}

/* is candidate (dist a, name an) nearer than (b, bn)? distance first, then name */
static int nearer(uint64_t a, const char *an, uint64_t b, const char *bn) {
  return a != b ? a < b : strcmp(an, bn) < 0;
}

size_t cl_watch_pick(const char *const *names, const uint64_t *h, size_t n, const char *from_name, uint64_t from,
                     int forward, size_t skip, size_t k, size_t *out) {
  size_t got = 0;
  /* names[i] equal to from_name has its hash: compare the hashes first (a strcmp per
   * peer per round made a pick k N calls, in every ring recomputed while a large
   * cluster forms; issue 18) */
  uint64_t from_h = from_name ? cl_watch_hash(from_name) : 0;
  /* the previous pick's distance and name: each round takes the nearest one past it */
  uint64_t last_d = 0;
  const char *last_n = NULL;
  while (got < k) {
    size_t best = SIZE_MAX;
    uint64_t best_d = 0;
    for (size_t i = 0; i < n; i++) {
      if (i == skip || (from_name && h[i] == from_h && !strcmp(names[i], from_name))) continue;
      /* unsigned wrap-around is the ring: distance going up from `from` (or down) */
      uint64_t d = forward ? h[i] - from : from - h[i];
      if (last_n && !nearer(last_d, last_n, d, names[i])) continue;
      if (best == SIZE_MAX || nearer(d, names[i], best_d, names[best])) best = i, best_d = d;
    }
    if (best == SIZE_MAX) break;
    out[got++] = best;
    last_d = best_d;
    last_n = names[best];
  }
  return got;
}
