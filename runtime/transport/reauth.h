/* Re-authenticating a live connection whose key left the keyring, written once for the
 * control connections (transport.c) and the data connections (dataplane.c).
 *
 * A connection whose key leaves the ring proves, over its own session, that both sides
 * still share a key (REAUTH frames, channel 0):
 *   initiator -> {1, nonce_r}                                              challenge
 *   responder -> {2, nonce_r, nonce_o, n, n proofs HMAC(k_j, "reauth-offer" ||
 *                 sid || nonce_r || nonce_o || j), n fingerprints}         offer
 *   initiator -> {3, j, HMAC(k_j, "reauth-accept" || sid || ... || j)}     accept, or {4}: none
 *   responder -> {5}                                                       done (encrypted only)
 * sid is the handshake's transcript, so proofs cannot be replayed on another connection;
 * both nonces make them fresh. With encryption both sides re-key under the chosen key:
 * the initiator sends under the new key from right after its ACCEPT, the responder from
 * right after its DONE, and each takes the other's new key at that frame. The session
 * keeps flowing meanwhile: nothing is lost.
 *
 * The rules (a security review's): a challenge not answered, or a DONE not come, within
 * CL_REAUTH_MS closes the connection (the owner checks cl_reauth_due); our own challenge
 * or our own offer sent back to us closes it; a node makes one offer at a time, live for
 * CL_REAUTH_MS: an acceptance after that, or of a key that has left the ring since, closes
 * it too.
 *
 * Pure but for the owner's small interface (cl_reauth_io): no clock (now is passed in), no
 * loop, no logging; the outcome says what happened and the owner logs and closes. */
#ifndef CL_TRANSPORT_REAUTH_H
#define CL_TRANSPORT_REAUTH_H
#include <stddef.h>
#include <stdint.h>

#include "transport/internal.h"

#define CL_REAUTH_MS 1000
/* receive keys waiting for the peer's DONE: a peer that never sends them cannot make a
 * node queue more */
#define CL_REAUTH_RX_MAX 4

typedef struct cl_reauth {
  /* first, together: what cl_reauth_due reads, on every connection at every tick */
  /* a re-authentication we started (our ring lost its key): answered by ra_deadline */
  int ra_pending;
  uint64_t ra_deadline;
  int n_rx_next;        /* receive keys in rx_next */
  uint64_t rx_deadline; /* the peer's DONE is due by then: the old receive key ends */
  /* the key the connection is authenticated under, and the handshake's transcript */
  cl_hs_key key;
  uint8_t sid[32];
  uint8_t ra_nonce[32];
  /* receive keys to take at each DONE the peer will send, in order (re-key) */
  uint8_t rx_next[CL_REAUTH_RX_MAX][32];
  /* one the peer started: what we offered, kept until its choice arrives (rs_deadline) */
  int rs_live;
  uint64_t rs_deadline;
  uint8_t rs_nonce_r[32], rs_nonce_o[32];
  cl_hs_key rs_offered[CL_KEYRING_MAX];
  size_t rs_n;
} cl_reauth;

/* What the owner does for the protocol. */
typedef struct cl_reauth_io {
  void *ud;
  /* queue a REAUTH frame; boundary: it is where the send key changes (ACCEPT, DONE), so
   * it must go out in its place (past any fault layer) */
  void (*put)(void *ud, const uint8_t *m, size_t n, int boundary);
  /* write what is queued now (before closing) */
  void (*flush)(void *ud);
  /* seal what is queued under the current send key, send under next from here on; 0 or
   * -1 (out of memory) */
  int (*switch_tx)(void *ud, const uint8_t next[32]);
  /* the receive side of the session, re-keyed in place */
  cl_opener *opener;
  int encrypt;
} cl_reauth_io;

typedef enum {
  CL_RA_NOTHING = 0,      /* handled (or ignored): nothing for the owner to do */
  CL_RA_REKEYED,          /* re-authenticated under r->key (ring_index: its place in the ring, or -1) */
  CL_RA_FAIL_REFLECTED_CHALLENGE, /* our own challenge came back: close */
  CL_RA_FAIL_REFLECTED_OFFER,     /* our own offer came back: close */
  CL_RA_FAIL_NO_COMMON_KEY,       /* none of its keys is ours ({4} sent and flushed; theirs: its fingerprints): close */
  CL_RA_FAIL_PEER_HAS_NONE,       /* the peer holds none of ours any more ({4} received): close */
  CL_RA_FAIL_BAD_PROOF,           /* its acceptance did not verify: close */
  CL_RA_FAIL_OFFER_GONE,          /* it accepted an offer past its 1 s, or a key we no longer hold: close */
  CL_RA_FAIL_NO_MEMORY,           /* re-keying failed: close */
} cl_reauth_outcome;

typedef struct cl_reauth_result {
  int ring_index; /* CL_RA_REKEYED as initiator: the ring's key taken; else -1 */
  int initiator;  /* CL_RA_REKEYED: 1 we asked, 0 the peer asked */
  char theirs[CL_KEYRING_MAX * (CL_FP_LEN + 2) + 1]; /* CL_RA_FAIL_NO_COMMON_KEY */
} cl_reauth_result;

/* The connection is authenticated under key, with the handshake's transcript sid. */
void cl_reauth_init(cl_reauth *r, const cl_hs_key *key, const uint8_t sid[32]);
/* Our ring lost r->key: challenge the peer (queued through io->put). 1 started, 0 not
 * (one is pending already, or too many DONEs are outstanding). */
int cl_reauth_start(cl_reauth *r, uint64_t now, const cl_reauth_io *io);
/* A REAUTH frame from the peer. ring/n_ring: the keys we hold now (primary first). */
cl_reauth_outcome cl_reauth_frame(cl_reauth *r, const uint8_t *d, size_t n, uint64_t now, const cl_hs_key *ring,
                                  size_t n_ring, const cl_reauth_io *io, cl_reauth_result *res);
/* When the peer must have answered or sent its DONE by (UINT64_MAX: nothing due) */
uint64_t cl_reauth_due(const cl_reauth *r);
static inline int cl_reauth_overdue(const cl_reauth *r, uint64_t now) { return now >= cl_reauth_due(r); }
/* Zeroes the keys (the connection is gone). */
void cl_reauth_wipe(cl_reauth *r);

#endif
