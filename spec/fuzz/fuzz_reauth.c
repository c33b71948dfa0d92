/* libFuzzer target: the re-authentication protocol (runtime/transport/reauth.c) fed
 * hostile REAUTH frames, as a peer would send them over a live session, in any state
 * (a challenge of ours pending, an offer of ours live, encrypted or not).
 * Input: [setup][len][frame]...; setup bit 0: we challenged first; bit 1: the peer
 * challenged first (our offer is live); bit 2: encrypted; bit 3: a frame starting
 * with 2 gets our challenge's nonce (so the offer path is reached, not just refused). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "transport/reauth.h"

typedef struct {
  size_t queued, flushed, switched;
  uint8_t last[1024];
} sink;

static void put(void *ud, const uint8_t *m, size_t n, int boundary) {
  sink *s = ud;
  (void)boundary;
  s->queued += n;
  memcpy(s->last, m, n < sizeof s->last ? n : sizeof s->last); /* touch every byte */
}
static void flush(void *ud) { ((sink *)ud)->flushed++; }
static int switch_tx(void *ud, const uint8_t next[32]) {
  sink *s = ud;
  s->switched += next[0];
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  static cl_hs_key ring[3];
  if (!ready) {
    if (sodium_init() < 0) return 0;
    for (int i = 0; i < 3; i++) {
      char cookie[32];
      memset(cookie, 'a' + i, sizeof cookie);
      cl_hs_keys((const uint8_t *)cookie, sizeof cookie, ring[i].k_hs, ring[i].k_sess);
      ring[i].id = (uint32_t)i + 1;
    }
    ready = 1;
  }
  if (size < 1) return 0;
  uint8_t setup = data[0];
  sink s = {0};
  cl_opener op;
  memset(&op, 0, sizeof op);
  cl_reauth_io io = {.ud = &s, .put = put, .flush = flush, .switch_tx = switch_tx, .opener = &op,
                     .encrypt = (setup & 4) != 0};
  uint8_t sid[32] = {7};
  cl_reauth r;
  cl_reauth_init(&r, &ring[0], sid);
  cl_reauth_result res;
  uint64_t now = 1000;
  if (setup & 1) cl_reauth_start(&r, now, &io);
  if (setup & 2) {
    uint8_t ch[33] = {1, 9};
    cl_reauth_frame(&r, ch, sizeof ch, now, ring + 1, 2, &io, &res);
  }
  size_t i = 1;
  while (i < size) {
    size_t n = data[i++];
    if (n > size - i) n = size - i;
    uint8_t f[256];
    memcpy(f, data + i, n);
    i += n;
    if ((setup & 8) && n >= 33 && f[0] == 2) memcpy(f + 1, r.ra_nonce, 32);
    now += n;
    cl_reauth_outcome o = cl_reauth_frame(&r, f, n, now, ring + (n % 2), 2, &io, &res);
    if (o >= CL_RA_FAIL_REFLECTED_CHALLENGE) break; /* the owner closes the connection */
    if (o == CL_RA_REKEYED && res.initiator && (res.ring_index < 0 || res.ring_index >= 2)) abort();
    (void)cl_reauth_due(&r);
  }
  cl_reauth_wipe(&r);
  return 0;
}
