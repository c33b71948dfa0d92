/* The re-authentication protocol (runtime/transport/reauth.c), alone: two sides wired by
 * hand through a recording io, no loop, no sockets, the clock passed in. The rules of
 * reauth.h: a shared key re-keys both sides in step; no shared key closes with the
 * fingerprints named; a reflected challenge or offer closes; one offer at a time, live
 * 1 s; what is due from the peer is due 1 s later; an acceptance that does not verify
 * closes. transport.c and dataplane.c run this same code over real connections
 * (test_transport.c, test_dataplane.c, spec/cluster/keys_rotation_spec.lua). */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "transport/reauth.h"

typedef struct side {
  cl_reauth r;
  cl_opener op;
  uint8_t out[8][1024];
  size_t outlen[8];
  int boundary[8];
  int nout, flushed, switched;
  uint8_t tx[32];
} side;

static void put(void *ud, const uint8_t *m, size_t n, int boundary) {
  side *s = ud;
  if (s->nout == 8 || n > sizeof s->out[0]) return;
  memcpy(s->out[s->nout], m, n);
  s->outlen[s->nout] = n;
  s->boundary[s->nout++] = boundary;
}
static void flush(void *ud) { ((side *)ud)->flushed++; }
static int switch_tx(void *ud, const uint8_t next[32]) {
  side *s = ud;
  memcpy(s->tx, next, 32);
  s->switched++;
  return 0;
}
static cl_reauth_io io_of(side *s, int encrypt) {
  return (cl_reauth_io){.ud = s, .put = put, .flush = flush, .switch_tx = switch_tx, .opener = &s->op, .encrypt = encrypt};
}

static cl_hs_key key(const char *cookie, uint32_t id, const char *fp) {
  cl_hs_key k;
  memset(&k, 0, sizeof k);
  cl_hs_keys((const uint8_t *)cookie, strlen(cookie), k.k_hs, k.k_sess);
  k.id = id;
  snprintf(k.fp, sizeof k.fp, "%s", fp);
  return k;
}

static uint8_t sid[32];
static cl_hs_key k1, k2, k3;

/* a and b share a connection authenticated under k1 */
static void pair(side *a, side *b) {
  memset(a, 0, sizeof *a);
  memset(b, 0, sizeof *b);
  cl_reauth_init(&a->r, &k1, sid);
  cl_reauth_init(&b->r, &k1, sid);
}

/* the last frame s queued, fed to t */
static cl_reauth_outcome deliver(side *s, side *t, uint64_t now, const cl_hs_key *ring, size_t n, int enc,
                                 cl_reauth_result *res) {
  cl_reauth_io io = io_of(t, enc);
  return cl_reauth_frame(&t->r, s->out[s->nout - 1], s->outlen[s->nout - 1], now, ring, n, &io, res);
}

/* a and b under k1, a's ring lost it: a challenges, b offers ring_b, a answers from
 * ring_a; the outcome at a (its answer is a's last frame) */
static cl_reauth_outcome exchange(side *a, side *b, const cl_hs_key *ring_a, size_t na, const cl_hs_key *ring_b,
                                  size_t nb, int enc, cl_reauth_result *res) {
  pair(a, b);
  cl_reauth_io ia = io_of(a, enc);
  cl_reauth_start(&a->r, 0, &ia);
  deliver(a, b, 0, ring_b, nb, enc, res);
  return deliver(b, a, 0, ring_a, na, enc, res);
}

static int t_shared_key_rekeys_both(void) {
  side a, b;
  pair(&a, &b);
  cl_hs_key ring_a[] = {k2}, ring_b[] = {k3, k2};
  cl_reauth_result res;
  cl_reauth_io ia = io_of(&a, 1);
  CHECK(cl_reauth_start(&a.r, 1000, &ia) == 1 && a.nout == 1 && a.out[0][0] == 1, "no challenge queued");
  CHECK(!a.boundary[0], "the challenge is no re-key boundary");
  CHECK(deliver(&a, &b, 1000, ring_b, 2, 1, &res) == CL_RA_NOTHING && b.nout == 1 && b.out[0][0] == 2, "no offer");
  CHECK(b.out[0][65] == 2, "offered %u keys, not 2", b.out[0][65]);
  CHECK(deliver(&b, &a, 1010, ring_a, 1, 1, &res) == CL_RA_REKEYED, "a did not re-key");
  CHECK(res.initiator == 1 && res.ring_index == 0, "initiator %d, ring index %d", res.initiator, res.ring_index);
  CHECK(a.r.key.id == 2 && a.switched == 1 && a.boundary[1] && a.out[1][0] == 3 && a.out[1][1] == 1,
        "a: key %u, switched %d, accept names offer %u", a.r.key.id, a.switched, a.out[1][1]);
  CHECK(cl_reauth_due(&a.r) == 2010, "a's DONE due at %llu, not 2010", (unsigned long long)cl_reauth_due(&a.r));
  CHECK(deliver(&a, &b, 1020, ring_b, 2, 1, &res) == CL_RA_REKEYED && res.initiator == 0, "b did not re-key");
  CHECK(b.r.key.id == 2 && b.switched == 1 && b.out[1][0] == 5 && b.boundary[1], "b: key %u, no DONE", b.r.key.id);
  /* a sends under a.tx, b opens with it; b sends under b.tx, a opens with it after DONE */
  CHECK(memcmp(a.tx, b.op.rx.key, 32) == 0, "b does not open what a seals");
  CHECK(deliver(&b, &a, 1030, ring_a, 1, 1, &res) == CL_RA_NOTHING, "the DONE");
  CHECK(memcmp(b.tx, a.op.rx.key, 32) == 0 && a.r.n_rx_next == 0, "a does not open what b seals");
  CHECK(cl_reauth_due(&a.r) == UINT64_MAX && cl_reauth_due(&b.r) == UINT64_MAX, "something still due");
  return 0;
}

static int t_unencrypted_no_rekey(void) {
  side a, b;
  cl_hs_key ring[] = {k2};
  cl_reauth_result res;
  CHECK(exchange(&a, &b, ring, 1, ring, 1, 0, &res) == CL_RA_REKEYED && a.switched == 0, "a");
  CHECK(deliver(&a, &b, 0, ring, 1, 0, &res) == CL_RA_REKEYED && b.switched == 0 && b.nout == 1, "b sent a DONE");
  CHECK(cl_reauth_due(&a.r) == UINT64_MAX, "a waits for a DONE that never comes unencrypted");
  return 0;
}

static int t_no_shared_key(void) {
  side a, b;
  cl_hs_key ring_a[] = {k2}, ring_b[] = {k3};
  cl_reauth_result res;
  CHECK(exchange(&a, &b, ring_a, 1, ring_b, 1, 1, &res) == CL_RA_FAIL_NO_COMMON_KEY, "a did not give up");
  CHECK(a.out[a.nout - 1][0] == 4 && a.flushed == 1, "no {4} flushed before closing");
  CHECK(strstr(res.theirs, "cccccccccccccccc") != NULL, "the peer's fingerprints not named: '%s'", res.theirs);
  CHECK(deliver(&a, &b, 0, ring_b, 1, 1, &res) == CL_RA_FAIL_PEER_HAS_NONE, "b did not hear it");
  return 0;
}

static int t_reflected_challenge(void) {
  side a, b;
  pair(&a, &b);
  cl_hs_key ring[] = {k2};
  cl_reauth_result res;
  cl_reauth_io ia = io_of(&a, 1);
  cl_reauth_start(&a.r, 0, &ia);
  CHECK(deliver(&a, &a, 0, ring, 1, 1, &res) == CL_RA_FAIL_REFLECTED_CHALLENGE, "a took its own challenge");
  CHECK(a.nout == 1, "a answered its own challenge with an offer");
  return 0;
}

static int t_reflected_offer(void) {
  side a, b;
  pair(&a, &b);
  cl_hs_key ring[] = {k2};
  cl_reauth_result res;
  cl_reauth_io ia = io_of(&a, 1), ib = io_of(&b, 1);
  cl_reauth_start(&a.r, 0, &ia); /* a: pending, nonce nA */
  cl_reauth_start(&b.r, 0, &ib);
  deliver(&b, &a, 0, ring, 1, 1, &res); /* a offers to b's challenge */
  /* a's own offer, its nonce_r rewritten to a's challenge, sent back to a */
  uint8_t m[1024];
  size_t n = a.outlen[1];
  memcpy(m, a.out[1], n);
  memcpy(m + 1, a.r.ra_nonce, 32);
  CHECK(cl_reauth_frame(&a.r, m, n, 0, ring, 1, &ia, &res) == CL_RA_FAIL_REFLECTED_OFFER, "a took its own offer");
  return 0;
}

static int t_one_offer_at_a_time(void) {
  side a, b;
  pair(&a, &b);
  cl_hs_key ring[] = {k2};
  cl_reauth_result res;
  uint8_t ch[33] = {1};
  randombytes_buf(ch + 1, 32);
  cl_reauth_io ib = io_of(&b, 1);
  cl_reauth_frame(&b.r, ch, sizeof ch, 0, ring, 1, &ib, &res);
  ch[1] ^= 1;
  cl_reauth_frame(&b.r, ch, sizeof ch, 999, ring, 1, &ib, &res);
  CHECK(b.nout == 1, "a second offer within 1 s (%d offers)", b.nout);
  cl_reauth_frame(&b.r, ch, sizeof ch, 1000, ring, 1, &ib, &res);
  CHECK(b.nout == 2, "no new offer once the first was 1 s old");
  return 0;
}

/* b offers at 0; a's acceptance counts only while the offer is live (1 s) and only for a
 * key b still holds: else b would run under a key its ring no longer has */
static int t_accept_of_a_gone_offer(void) {
  side a, b;
  cl_hs_key ring[] = {k2}, ring_without[] = {k3};
  cl_reauth_result res;
  /* late */
  pair(&a, &b);
  cl_reauth_io ia = io_of(&a, 1);
  cl_reauth_start(&a.r, 0, &ia);
  deliver(&a, &b, 0, ring, 1, 1, &res);
  CHECK(deliver(&b, &a, 10, ring, 1, 1, &res) == CL_RA_REKEYED, "a did not take the offer");
  CHECK(deliver(&a, &b, 1000, ring, 1, 1, &res) == CL_RA_FAIL_OFFER_GONE && b.switched == 0 && b.r.key.id == 1,
        "an acceptance 1 s after the offer was taken (key %u)", b.r.key.id);
  /* in time, but b's ring lost the key meanwhile */
  pair(&a, &b);
  ia = io_of(&a, 1);
  cl_reauth_start(&a.r, 0, &ia);
  deliver(&a, &b, 0, ring, 1, 1, &res);
  CHECK(deliver(&b, &a, 10, ring, 1, 1, &res) == CL_RA_REKEYED, "a did not take the offer");
  CHECK(deliver(&a, &b, 20, ring_without, 1, 1, &res) == CL_RA_FAIL_OFFER_GONE && b.switched == 0,
        "b took a key that had left its ring (key %u)", b.r.key.id);
  return 0;
}

static int t_due(void) {
  side a, b;
  pair(&a, &b);
  cl_reauth_io ia = io_of(&a, 1);
  CHECK(cl_reauth_due(&a.r) == UINT64_MAX && !cl_reauth_overdue(&a.r, UINT64_MAX - 1), "due before anything");
  cl_reauth_start(&a.r, 5000, &ia);
  CHECK(cl_reauth_due(&a.r) == 5000 + CL_REAUTH_MS, "due at %llu", (unsigned long long)cl_reauth_due(&a.r));
  CHECK(!cl_reauth_overdue(&a.r, 5999) && cl_reauth_overdue(&a.r, 6000), "overdue at the wrong time");
  CHECK(cl_reauth_start(&a.r, 5500, &ia) == 0 && a.nout == 1, "a second challenge while one is pending");
  return 0;
}

static int t_bad_proof(void) {
  side a, b;
  cl_hs_key ring[] = {k2};
  cl_reauth_result res;
  CHECK(exchange(&a, &b, ring, 1, ring, 1, 1, &res) == CL_RA_REKEYED, "a did not re-key");
  a.out[a.nout - 1][10] ^= 1; /* the acceptance's proof */
  CHECK(deliver(&a, &b, 0, ring, 1, 1, &res) == CL_RA_FAIL_BAD_PROOF, "a forged acceptance was taken");
  CHECK(b.r.key.id == 1 && b.switched == 0, "b changed keys on a forged acceptance");
  return 0;
}

int main(void) {
  if (sodium_init() < 0) return 1;
  randombytes_buf(sid, sizeof sid);
  k1 = key("the-first-cookie-of-this-test", 1, "aaaaaaaaaaaaaaaa");
  k2 = key("the-second-cookie-of-this-test", 2, "bbbbbbbbbbbbbbbb");
  k3 = key("the-third-cookie-of-this-test", 3, "cccccccccccccccc");
  run_case("reauth: a shared key re-keys both sides in step (ACCEPT and DONE are the boundaries)",
           t_shared_key_rekeys_both);
  run_case("reauth: unencrypted, the key changes and nothing is re-keyed or waited for", t_unencrypted_no_rekey);
  run_case("reauth: no shared key: {4} flushed, the peer's fingerprints named, the peer hears it", t_no_shared_key);
  run_case("reauth: our own challenge sent back closes the connection", t_reflected_challenge);
  run_case("reauth: our own key offer sent back closes the connection", t_reflected_offer);
  run_case("reauth: one offer at a time, live for 1 s", t_one_offer_at_a_time);
  run_case("reauth: an acceptance of an offer past its 1 s, or of a key the ring lost since, closes", t_accept_of_a_gone_offer);
  run_case("reauth: an answer is due 1 s after the challenge; one challenge at a time", t_due);
  run_case("reauth: an acceptance that does not verify closes, keys unchanged", t_bad_proof);
  return harness_exit();
}
