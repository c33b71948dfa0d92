/* libFuzzer target: the payload decoders of the membership and detection frames
 * (runtime/transport/members_wire.h: MEMBERS, DOWN, PROBE_REQ, PROBE_RES, WATCH), the one
 * parser of each that transport.c uses. Input: [kind][payload...]; the payload is copied
 * into a buffer of exactly its size so ASan sees any read past it. Properties: nothing
 * reads out of bounds; a decoder accepts exactly what the format allows (an independent
 * check of lengths, NULs and codes); what is accepted re-encodes to the same bytes. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "transport/members_wire.h"

/* the name after a head is acceptable: 1..255 bytes, no NUL */
static int name_ok(const uint8_t *d, size_t n, size_t head) {
  return n > head && n - head <= CL_MW_STR_MAX && !memchr(d + head, 0, n - head);
}

static void members(const uint8_t *d, size_t n) {
  size_t i = 0;
  uint8_t re[CL_MW_MEMBER_MAX];
  while (i < n) {
    size_t at = i;
    cl_mw_member e;
    if (cl_mw_member_take(d, n, &i, &e)) return;
    assert(i > at && i <= n);
    size_t nl = strlen(e.name), il = strlen(e.id), rl = strlen(e.roles);
    assert(nl >= 1 && nl <= CL_MW_STR_MAX && il <= CL_MW_STR_MAX && rl <= CL_MW_STR_MAX);
    assert(i - at == 12 + 3 + il + rl + nl);
    size_t m = cl_mw_member_put(re, sizeof re, e.name, e.inc, e.ver, e.id, e.roles);
    assert(m == i - at && !memcmp(re, d + at, m));
    /* too little room: refused, never written past */
    assert(cl_mw_member_put(re, m - 1, e.name, e.inc, e.ver, e.id, e.roles) == 0);
  }
  assert(i == n);
}

static void down(const uint8_t *d, size_t n) {
  cl_mw_down x;
  int ok = cl_mw_down_take(d, n, &x) == 0;
  assert(ok == (name_ok(d, n, CL_MW_DOWN_HEAD) && d[12] <= CL_MW_DOWN_LEFT));
  if (!ok) return;
  uint8_t re[CL_MW_DOWN_HEAD + CL_MW_STR_MAX];
  size_t m = cl_mw_down_put(re, x.name, x.inc, x.ver, x.reason);
  assert(m == n && !memcmp(re, d, n));
}

static void probe(const uint8_t *d, size_t n, int res) {
  cl_mw_probe x;
  size_t head = res ? CL_MW_PROBE_RES_HEAD : CL_MW_PROBE_REQ_HEAD;
  int ok = (res ? cl_mw_probe_res_take(d, n, &x) : cl_mw_probe_req_take(d, n, &x)) == 0;
  assert(ok == name_ok(d, n, head));
  if (!ok) return;
  assert(x.alive == (res && d[4] == 1));
  uint8_t re[CL_MW_PROBE_RES_HEAD + CL_MW_STR_MAX];
  size_t m = res ? cl_mw_probe_res_put(re, x.seq, x.alive, x.name) : cl_mw_probe_req_put(re, x.seq, x.name);
  assert(m == n);
  /* byte 4 of a PROBE_RES: any value but 1 reads as "no answer", written back as 0 */
  if (res) assert(re[4] == (d[4] == 1) && !memcmp(re, d, 4) && !memcmp(re + 5, d + 5, n - 5));
  else assert(!memcmp(re, d, n));
}

static void watch(const uint8_t *d, size_t n) {
  int on = -1;
  uint32_t beat = 0;
  int ok = cl_mw_watch_take(d, n, &on, &beat) == 0;
  uint32_t want = n == CL_MW_WATCH_LEN ? (uint32_t)d[1] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 8 | d[4] : 0;
  assert(ok == (n == CL_MW_WATCH_LEN && d[0] <= 1 && want >= CL_MW_BEAT_MIN && want <= CL_MW_BEAT_MAX));
  if (ok) {
    uint8_t re[CL_MW_WATCH_LEN];
    assert(on == d[0] && beat == want && cl_mw_watch_put(re, on, beat) == n && !memcmp(re, d, n));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t n = size - 1;
  uint8_t *d = malloc(n ? n : 1);
  if (!d) return 0;
  memcpy(d, data + 1, n);
  switch (data[0] % 5) {
  case 0: members(d, n); break;
  case 1: down(d, n); break;
  case 2: probe(d, n, 0); break;
  case 3: probe(d, n, 1); break;
  default: watch(d, n); break;
  }
  free(d);
  return 0;
}
