/* Re-authenticating a live connection: see reauth.h. */
#include "transport/reauth.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "transport/keyring.h"

void cl_reauth_init(cl_reauth *r, const cl_hs_key *key, const uint8_t sid[32]) {
  cl_reauth_wipe(r);
  r->key = *key;
  memcpy(r->sid, sid, 32);
}

void cl_reauth_wipe(cl_reauth *r) { sodium_memzero(r, sizeof *r); }

uint64_t cl_reauth_due(const cl_reauth *r) {
  uint64_t due = r->ra_pending ? r->ra_deadline : UINT64_MAX;
  if (r->n_rx_next > 0 && r->rx_deadline < due) due = r->rx_deadline;
  return due;
}

int cl_reauth_start(cl_reauth *r, uint64_t now, const cl_reauth_io *io) {
  if (r->ra_pending || r->n_rx_next >= CL_REAUTH_RX_MAX) return 0;
  uint8_t m[33];
  m[0] = 1;
  randombytes_buf(r->ra_nonce, 32);
  memcpy(m + 1, r->ra_nonce, 32);
  r->ra_pending = 1;
  r->ra_deadline = now + CL_REAUTH_MS;
  io->put(io->ud, m, sizeof m, 0);
  return 1;
}

/* {1, nonce_r}: the peer lost our key; offer every key we hold */
static cl_reauth_outcome on_challenge(cl_reauth *r, const uint8_t *d, uint64_t now, const cl_hs_key *ring,
                                      size_t n_ring, const cl_reauth_io *io) {
  /* our own challenge sent back to us is a reflection, not the peer's */
  if (r->ra_pending && sodium_memcmp(d + 1, r->ra_nonce, 32) == 0) return CL_RA_FAIL_REFLECTED_CHALLENGE;
  /* one offer at a time (each costs an HMAC per key and a reply), live for 1 s */
  if (r->rs_live && now < r->rs_deadline) return CL_RA_NOTHING;
  r->rs_live = 1;
  r->rs_deadline = now + CL_REAUTH_MS;
  memcpy(r->rs_nonce_r, d + 1, 32);
  randombytes_buf(r->rs_nonce_o, 32);
  r->rs_n = n_ring < CL_KEYRING_MAX ? n_ring : CL_KEYRING_MAX;
  memcpy(r->rs_offered, ring, r->rs_n * sizeof *r->rs_offered);
  uint8_t m[1 + 64 + 1 + CL_KEYRING_MAX * (32 + 1 + CL_FP_LEN)];
  size_t w = 0;
  m[w++] = 2;
  memcpy(m + w, r->rs_nonce_r, 32);
  memcpy(m + w + 32, r->rs_nonce_o, 32);
  w += 64;
  m[w++] = (uint8_t)r->rs_n;
  for (size_t j = 0; j < r->rs_n; j++, w += 32)
    cl_hs_reauth_proof(&r->rs_offered[j], "reauth-offer", r->sid, r->rs_nonce_r, r->rs_nonce_o, (uint8_t)j, m + w);
  /* the fingerprints, for the peer's log if nothing matches ("" while not computed) */
  for (size_t j = 0; j < r->rs_n; j++) {
    size_t l = strnlen(r->rs_offered[j].fp, CL_FP_LEN);
    m[w++] = (uint8_t)l;
    memcpy(m + w, r->rs_offered[j].fp, l);
    w += l;
  }
  io->put(io->ud, m, w, 0);
  sodium_memzero(m, sizeof m);
  return CL_RA_NOTHING;
}

/* {2, nonce_r, nonce_o, k, proofs, fingerprints}: the answer to our challenge */
static cl_reauth_outcome on_offer(cl_reauth *r, const uint8_t *d, size_t n, uint64_t now, const cl_hs_key *ring,
                                  size_t n_ring, const cl_reauth_io *io, cl_reauth_result *res) {
  const uint8_t *nonce_o = d + 33;
  /* our own offer sent back to us: it proves nothing of the peer */
  if (r->rs_live && sodium_memcmp(nonce_o, r->rs_nonce_o, 32) == 0) return CL_RA_FAIL_REFLECTED_OFFER;
  size_t k = d[65];
  if (k == 0 || k > CL_KEYRING_MAX || n < 66 + 32 * k) return CL_RA_NOTHING;
  const uint8_t *proofs = d + 66;
  /* their fingerprints, for the log if nothing matches */
  size_t rd = 66 + 32 * k, w = 0;
  res->theirs[0] = 0;
  for (size_t j = 0; j < k && rd < n; j++) {
    size_t l = d[rd++];
    char fp[CL_FP_LEN + 1] = "";
    if (l == CL_FP_LEN && rd + l <= n) memcpy(fp, d + rd, l);
    rd += l;
    int q = snprintf(res->theirs + w, sizeof res->theirs - w, "%s%s", j ? ", " : "",
                     cl_keyring_fp_valid(fp) ? fp : "(fingerprint pending)");
    if (q > 0 && (size_t)q < sizeof res->theirs - w) w += (size_t)q;
  }
  /* the first of its offers we hold (every pair is checked: no early exit on a match) */
  size_t best_j = CL_KEYRING_MAX, best_i = 0;
  for (size_t i = 0; i < n_ring; i++)
    for (size_t j = 0; j < k; j++) {
      uint8_t mac[32];
      cl_hs_reauth_proof(&ring[i], "reauth-offer", r->sid, r->ra_nonce, nonce_o, (uint8_t)j, mac);
      if (sodium_memcmp(mac, proofs + 32 * j, 32) == 0 && j < best_j) {
        best_j = j;
        best_i = i;
      }
    }
  r->ra_pending = 0;
  if (best_j == CL_KEYRING_MAX) {
    uint8_t no = 4;
    io->put(io->ud, &no, 1, 0);
    io->flush(io->ud);
    return CL_RA_FAIL_NO_COMMON_KEY;
  }
  cl_hs_key key = ring[best_i];
  uint8_t m[34];
  m[0] = 3;
  m[1] = (uint8_t)best_j;
  cl_hs_reauth_proof(&key, "reauth-accept", r->sid, r->ra_nonce, nonce_o, (uint8_t)best_j, m + 2);
  io->put(io->ud, m, sizeof m, 1);
  if (io->encrypt) {
    /* new session keys under the shared key: ours from right after this frame, the
     * peer's from right after its DONE */
    uint8_t i2r[32], r2i[32];
    cl_hs_rekey(&key, r->sid, r->ra_nonce, nonce_o, (uint8_t)best_j, i2r, r2i);
    memcpy(r->rx_next[r->n_rx_next++], r2i, 32);
    r->rx_deadline = now + CL_REAUTH_MS;
    int bad = io->switch_tx(io->ud, i2r);
    sodium_memzero(i2r, 32);
    sodium_memzero(r2i, 32);
    if (bad) {
      sodium_memzero(&key, sizeof key);
      return CL_RA_FAIL_NO_MEMORY;
    }
  }
  r->key = key;
  sodium_memzero(&key, sizeof key);
  res->ring_index = (int)best_i;
  res->initiator = 1;
  return CL_RA_REKEYED;
}

/* is k (by its secret) in ring? */
static int held(const cl_hs_key *k, const cl_hs_key *ring, size_t n_ring) {
  int found = 0;
  for (size_t i = 0; i < n_ring; i++) found |= sodium_memcmp(k->k_hs, ring[i].k_hs, 32) == 0;
  return found;
}

/* {3, j, proof}: the peer took our offer j */
static cl_reauth_outcome on_accept(cl_reauth *r, const uint8_t *d, uint64_t now, const cl_hs_key *ring,
                                   size_t n_ring, const cl_reauth_io *io, cl_reauth_result *res) {
  /* an offer is live for CL_REAUTH_MS and names the keys we held when we made it: an
   * acceptance after that, or of a key that has left our ring since, would put the
   * connection under a key we no longer hold, with nothing left to re-authenticate it */
  if (now >= r->rs_deadline || !held(&r->rs_offered[d[1]], ring, n_ring)) {
    r->rs_live = 0;
    sodium_memzero(r->rs_offered, sizeof r->rs_offered);
    return CL_RA_FAIL_OFFER_GONE;
  }
  uint8_t mac[32];
  cl_hs_reauth_proof(&r->rs_offered[d[1]], "reauth-accept", r->sid, r->rs_nonce_r, r->rs_nonce_o, d[1], mac);
  int ok = sodium_memcmp(mac, d + 2, 32) == 0;
  r->rs_live = 0;
  if (!ok) return CL_RA_FAIL_BAD_PROOF;
  r->key = r->rs_offered[d[1]];
  sodium_memzero(r->rs_offered, sizeof r->rs_offered);
  if (io->encrypt) {
    /* the peer sends under the new key from right after its ACCEPT; we from right
     * after our DONE */
    uint8_t i2r[32], r2i[32], done = 5;
    cl_hs_rekey(&r->key, r->sid, r->rs_nonce_r, r->rs_nonce_o, d[1], i2r, r2i);
    memcpy(io->opener->rx.key, i2r, 32);
    io->opener->rx.counter = 0;
    io->put(io->ud, &done, 1, 1);
    int bad = io->switch_tx(io->ud, r2i);
    sodium_memzero(i2r, 32);
    sodium_memzero(r2i, 32);
    if (bad) return CL_RA_FAIL_NO_MEMORY;
  }
  res->initiator = 0;
  return CL_RA_REKEYED;
}

cl_reauth_outcome cl_reauth_frame(cl_reauth *r, const uint8_t *d, size_t n, uint64_t now, const cl_hs_key *ring,
                                  size_t n_ring, const cl_reauth_io *io, cl_reauth_result *res) {
  res->ring_index = -1;
  res->initiator = 0;
  res->theirs[0] = 0;
  if (n < 1) return CL_RA_NOTHING;
  if (d[0] == 1 && n == 33) return on_challenge(r, d, now, ring, n_ring, io);
  if (d[0] == 2 && n >= 66 && r->ra_pending && sodium_memcmp(d + 1, r->ra_nonce, 32) == 0)
    return on_offer(r, d, n, now, ring, n_ring, io, res);
  if (d[0] == 3 && n == 34 && r->rs_live && d[1] < r->rs_n) return on_accept(r, d, now, ring, n_ring, io, res);
  if (d[0] == 5 && n == 1 && r->n_rx_next > 0) {
    /* the peer's DONE: it sends under the new key from the next record */
    memcpy(io->opener->rx.key, r->rx_next[0], 32);
    io->opener->rx.counter = 0;
    r->n_rx_next--;
    memmove(r->rx_next[0], r->rx_next[1], (size_t)r->n_rx_next * 32);
    sodium_memzero(r->rx_next[r->n_rx_next], 32);
    return CL_RA_NOTHING;
  }
  if (d[0] == 4 && n == 1 && r->rs_live) {
    r->rs_live = 0;
    return CL_RA_FAIL_PEER_HAS_NONE;
  }
  return CL_RA_NOTHING;
}
