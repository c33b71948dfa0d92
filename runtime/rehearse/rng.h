/* The rehearsal's one PRNG (xoshiro256**, seeded through splitmix64): every random
 * choice of a run comes from it, so a seed replays the run. Header-only so that other
 * simulators (spec/sim/sim.c has the same generator) can share it. */
#ifndef CL_RH_RNG_H
#define CL_RH_RNG_H
#include <stdint.h>

typedef struct {
  uint64_t s[4];
} rh_rng;

static inline uint64_t rh_splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline void rh_rng_seed(rh_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = rh_splitmix(&seed);
}

static inline uint64_t rh_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rh_rng_next(rh_rng *r) {
  uint64_t *s = r->s;
  uint64_t res = rh_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rh_rotl(s[3], 45);
  return res;
}

static inline uint64_t rh_below(rh_rng *r, uint64_t n) { return n ? rh_rng_next(r) % n : 0; }
static inline int rh_chance(rh_rng *r, double p) { return (double)(rh_rng_next(r) >> 11) / 9007199254740992.0 < p; }
static inline uint64_t rh_range(rh_rng *r, uint64_t lo, uint64_t hi) { return lo + rh_below(r, hi - lo + 1); }

#endif
