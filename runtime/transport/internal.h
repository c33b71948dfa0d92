/* Transport internals shared by its files and the fuzz targets. The pieces here
 * (buffers, frame decoder, handshake, session) do no I/O, so they can be fuzzed. */
#ifndef CL_TRANSPORT_INTERNAL_H
#define CL_TRANSPORT_INTERNAL_H
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "transport.h"
#include "transport/keyring.h"

/* ---- wire constants ---- */

/* 2: the keyring (AUTH carries a proof per key of the dialer, ACCEPT names the one
 * taken; REAUTH frames move a live connection to another key), and the election's wire
 * format without a fixed node cap (election wire version 3).
 * 3: sparse failure detection (WATCH, PROBE_REQ, PROBE_RES, DOWN; a node of version 2
 * would beat to everyone and time out peers that no longer beat to it). Older versions
 * are refused by the preamble check, both versions named ("unsupported protocol version
 * 2 (this node speaks 3)"); rolling upgrades across these changes are not supported. */
/* 4: membership apart from connections (MEMBERS replaces PEERS: incarnation, member
 * version, id and roles with each name; DOWN carries the member version and a reason and
 * is forwarded once beyond direct neighbours in a large cluster; IDLE closes an unneeded
 * connection without a node_down). A node of version 3 would count connections as
 * members. */
/* 5: WATCH carries the beat interval the watcher expects (above full_mesh_max members
 * a large cluster beats every large_heartbeat_ms, else heartbeat_ms). A node of version
 * 4 would send a one-byte WATCH and beat at its own interval; the preamble refuses it
 * first, both versions named. */
#define CL_PROTO_VERSION 6
#define CL_PREAMBLE_LEN 8
/* 0xC1 never starts UTF-8 text, so a stray text protocol cannot look like us */
#define CL_MAGIC0 0xC1
#define CL_MAGIC1 'L'
#define CL_MAGIC2 'U'
#define CL_MAGIC3 'A'
#define CL_FRAME_HDR 6          /* u32 payload length (BE), u8 type, u8 channel */
#define CL_HS_FRAME_MAX 4096    /* before authentication nobody makes us allocate more */
#define CL_CTRL_FRAME_MAX (1u << 20)
#define CL_RECORD_PLAIN_MAX 65536 /* plaintext per AEAD record; frames span records */
#define CL_RECORD_HDR 4
#define CL_TAG_LEN 16
#define CL_STR_MAX 255

/* a beat: sender's clock (µs), the echoed clock of the peer's last beat, how long it
 * was held (µs), all big-endian u64 */
#define CL_BEAT_LEN 24

enum {
  CL_T_DATA = 1,
  CL_T_PING = 2,
  CL_T_PONG = 3, /* answers an 8-byte ping; beats (CL_BEAT_LEN bytes) want none */
  CL_T_PEERS = 4, /* mesh: names of our connected peers, '\n'-separated */
  CL_T_LEAVE = 5,
  CL_T_REAUTH = 6, /* re-authenticate a live connection under another key (transport.c) */
  /* sparse failure detection (transport.c, detector.h, watch.h); the payloads of 7 to 11
   * are encoded and decoded by members_wire.h */
  CL_T_WATCH = 7,     /* u8: 1 = "I watch you: beat to me", 0 = "stop"; u32 beat ms */
  CL_T_PROBE_REQ = 8, /* u32 seq, name: "probe this peer for me" (answered by PROBE_RES) */
  CL_T_PROBE_RES = 9, /* u32 seq, u8 alive (1: it answered, 0: no answer), name */
  CL_T_DOWN = 10,     /* u64 incarnation, u32 member version, u8 reason (0 timeout, 1 closed,
                         2 left), name: "this member is down" (transport.c) */
  CL_T_MEMBERS = 11,  /* entries {u64 incarnation, u32 version, u8 n, id, u8 n, roles, u8 n,
                         name}: members known alive (the mesh; transport.c) */
  CL_T_IDLE = 12,     /* "closing this connection because it is idle": not a failure */
  CL_T_REACH = 13,    /* u8: 1 = "I hold a connection to every member and pass what I
                         announce to all of them" (a voting node: cl_transport_reach_all),
                         0 = no longer (transport.c, put_news) */
  CL_T_DIGEST = 14,   /* u32 count, u64 sum: a digest of the members the sender holds up,
                         the two ends excluded, sent on connecting instead of the whole
                         list; a peer whose own differs answers with its MEMBERS list,
                         and so does the sender (transport.c, on_digest) */
  CL_T_HELLO = 16,
  CL_T_CHALLENGE = 17,
  CL_T_AUTH = 18,
  CL_T_ACCEPT = 19,
  CL_T_REFUSE = 20,
};

/* ---- growable byte buffer ---- */

typedef struct {
  uint8_t *p;
  size_t len, cap;
} cl_tbuf;
int cl_tbuf_reserve(cl_tbuf *b, size_t extra); /* 0 or -1 (ENOMEM) */
int cl_tbuf_append(cl_tbuf *b, const void *p, size_t n);
void cl_tbuf_free(cl_tbuf *b);
/* Appends a frame header + payload. */
int cl_frame_put(cl_tbuf *b, uint8_t type, uint8_t channel, const void *payload, uint32_t len);
void cl_preamble_put(uint8_t out[CL_PREAMBLE_LEN], uint8_t version);

/* Collects a fixed-size header that may arrive split across reads: copies what is
 * missing of want bytes from p[*i..n) into hdr (have of them are there), advancing *i.
 * 1 once complete (have is reset for the next one), 0 while bytes are missing. The
 * frame decoder (preamble, frame header) and the record opener share it. */
static inline int cl_take_header(uint8_t *hdr, uint32_t *have, uint32_t want, const uint8_t *p, size_t n,
                                 size_t *i) {
  size_t take = want - *have;
  if (take > n - *i) take = n - *i;
  memcpy(hdr + *have, p + *i, take);
  *have += (uint32_t)take;
  *i += take;
  if (*have < want) return 0;
  *have = 0;
  return 1;
}

/* ---- incremental frame decoder ---- */

typedef struct {
  uint8_t type, channel;
  uint32_t len;
  const uint8_t *data; /* valid only during the callback */
} cl_frame;

/* Return 0 to continue, non-zero to stop the decoder right after this frame (the
 * caller then takes the rest of the input elsewhere, e.g. into the record layer). */
typedef int (*cl_frame_cb)(void *ud, const cl_frame *f);

enum { CL_FD_HANDSHAKE = 1, CL_FD_SESSION = 2 };

typedef struct {
  int mode;           /* CL_FD_HANDSHAKE: only handshake types, each <= CL_HS_FRAME_MAX */
  int need_preamble;  /* expect the 8-byte preamble first */
  uint8_t version;    /* the peer's, from its preamble */
  uint8_t expect_version; /* non-zero: refuse any other (bad_version set) */
  int bad_version;
  uint32_t max_frame; /* CL_T_DATA payload limit in session mode */
  uint8_t hdr[CL_PREAMBLE_LEN];
  uint32_t hdr_have;
  uint8_t cur_type, cur_channel;
  uint32_t want;      /* body bytes of the current frame */
  int in_body;
  cl_tbuf body;        /* only frames that arrive split are copied here */
  uint32_t keep_max;   /* body given back after a frame larger than this (0: 1 MiB) */
  int failed;
  int oversize;       /* the failure was an oversized frame */
  char reason[160];
} cl_frame_decoder;

void cl_frame_decoder_init(cl_frame_decoder *d, int mode, int need_preamble, uint32_t max_frame);
void cl_frame_decoder_free(cl_frame_decoder *d);
/* Feeds bytes. Returns 0 (all consumed), 1 (a callback stopped it; *consumed says how
 * far), or -1 (refused: d->reason says why; the connection must close). */
int cl_frame_decoder_feed(cl_frame_decoder *d, const uint8_t *p, size_t n, size_t *consumed,
                          cl_frame_cb cb, void *ud);
/* Names what an unexpected byte stream looks like ("an HTTP request", ...). */
const char *cl_frame_sniff(const uint8_t *p, size_t n);

/* ---- handshake ---- */

enum cl_hs_fail {
  CL_HSF_NONE = 0,
  CL_HSF_COOKIE = 1,
  CL_HSF_CLUSTER = 2,
  CL_HSF_VERSION = 3,
  CL_HSF_ENCRYPT = 4,
  CL_HSF_NAME = 5,
  CL_HSF_GARBAGE = 6,
  CL_HSF_DUPLICATE = 7, /* not an error: a simultaneous dial lost the tie-break */
  CL_HSF_TIMEOUT = 8,
  CL_HSF_BUSY = 9,      /* refused by the transport's own check (blackhole, self) */
};

/* One key of the ring as the handshake sees it: derived keys only, never the key. */
typedef struct {
  uint8_t k_hs[32], k_sess[32];
  uint32_t id;             /* stable while the key stays in the ring (stats, connections) */
  char fp[CL_FP_LEN + 1];  /* its fingerprint, "" until the worker has computed it */
} cl_hs_key;

typedef struct {
  const char *self_name, *node_id, *cluster, *roles;
  uint64_t incarnation;
  int encrypt;
  uint8_t version; /* normally CL_PROTO_VERSION; tests present others */
  int data_conns;  /* this node opens data connections (HELLO/CHALLENGE flag 4) */
  cl_hs_key keys[CL_KEYRING_MAX]; /* keys[0] is the primary */
  size_t n_keys;                  /* >= 1 */
} cl_hs_config;

/* Acceptor's check after HELLO parses: return 0 to go on, or a CL_HSF_* with reason. */
typedef int (*cl_hs_check_cb)(void *ud, const char *peer_name, uint64_t incarnation, char *reason,
                              size_t reasonlen);

enum { CL_HS_DIALER = 1, CL_HS_ACCEPTOR = 2 };
enum { CL_HS_CONTINUE = 0, CL_HS_DONE = 1, CL_HS_FAILED = -1 };

typedef struct {
  const cl_hs_config *cfg;
  int role, state;
  cl_frame_decoder fd;
  uint8_t nonce_self[32], nonce_peer[32];
  crypto_hash_sha256_state th;
  uint8_t transcript[32];
  char expect_name[CL_STR_MAX + 1]; /* dialer: whom we dialled */
  char peer_name[CL_STR_MAX + 1], peer_id[CL_STR_MAX + 1], peer_roles[CL_STR_MAX + 1];
  uint64_t peer_incarnation;
  uint8_t key_tx[32], key_rx[32];
  /* dialer: the keys it offered (a copy: the ring may change during the handshake);
   * both: once done, the key the connection was authenticated under */
  cl_hs_key offered[CL_KEYRING_MAX];
  size_t n_offered;
  cl_hs_key key;
  /* acceptor: the fingerprints the dialer said it holds (for the log), and, after a
   * failed proof, which of our keys they name (-1: none, counted as "unknown") */
  char peer_fps[CL_KEYRING_MAX * (CL_FP_LEN + 2) + 1];
  int fail_key;
  int fail;                /* CL_HSF_* */
  int refused_by_peer;     /* the failure came in a REFUSE frame */
  int data;                /* dialer: this is a data connection (HELLO flag 2, echoed) */
  int peer_data;           /* acceptor: the dialer asked for a data connection */
  int peer_data_conns;     /* the peer opens data connections too (flag 4) */
  char reason[700];
  cl_hs_check_cb check;
  void *check_ud;
  cl_tbuf *out;             /* during feed: where frames to send go */
} cl_handshake;

/* nonce: 32 random bytes (the caller's, so fuzzing is deterministic). */
void cl_hs_init(cl_handshake *hs, const cl_hs_config *cfg, int role, const char *expect_name,
                const uint8_t nonce[32]);
void cl_hs_free(cl_handshake *hs);
/* Dialer: appends the preamble and HELLO to out. */
int cl_hs_start(cl_handshake *hs, cl_tbuf *out);
/* Feeds received bytes; frames to send are appended to out (on failure a REFUSE, when
 * the peer should hear why). Returns CL_HS_CONTINUE, CL_HS_DONE (*consumed = where the
 * session stream begins) or CL_HS_FAILED (hs->fail, hs->reason). */
int cl_hs_feed(cl_handshake *hs, const uint8_t *p, size_t n, size_t *consumed, cl_tbuf *out);
/* Derives the keys used by the handshake and sessions from the cookie. */
void cl_hs_keys(const uint8_t *cookie, size_t cookie_len, uint8_t k_hs[32], uint8_t k_sess[32]);
/* "fp1, fp2" (or "(fingerprint pending)") of keys[0..n) into out. */
void cl_hs_fp_list(const cl_hs_key *keys, size_t n, char *out, size_t outlen);
/* The session keys after a re-authentication under key k (transport.c): initiator to
 * responder and back, HMAC(k_sess, label || SHA-256(sid || nonce_r || nonce_o || idx)). */
void cl_hs_rekey(const cl_hs_key *k, const uint8_t sid[32], const uint8_t nonce_r[32], const uint8_t nonce_o[32],
                 uint8_t idx, uint8_t i2r[32], uint8_t r2i[32]);
/* The re-authentication proofs of a live connection (transport.c): HMAC(k_hs, label ||
 * sid || nonce_r || nonce_o || idx). */
void cl_hs_reauth_proof(const cl_hs_key *k, const char *label, const uint8_t sid[32],
                        const uint8_t nonce_r[32], const uint8_t nonce_o[32], uint8_t idx, uint8_t out[32]);
const char *cl_hs_fail_name(int fail);

/* ---- session (AEAD records) ---- */

typedef struct {
  uint8_t key[32];
  uint64_t counter;
} cl_seal_dir;

/* Seals plain[0..n) into records appended to wire. Returns 0 or -1. */
int cl_session_seal(cl_seal_dir *tx, const uint8_t *plain, size_t n, cl_tbuf *wire);

typedef struct {
  cl_seal_dir rx;
  uint8_t hdr[CL_RECORD_HDR];
  uint32_t hdr_have, want;
  cl_tbuf rec; /* a record that arrived split */
  uint32_t keep_max; /* rec given back after a record larger than this (0: kept) */
  char reason[120];
} cl_opener;

typedef int (*cl_plain_cb)(void *ud, const uint8_t *p, size_t n); /* non-zero: stop */
/* Opens records from p (modified in place). Returns 0, 1 (callback stopped) or -1
 * (forged/garbled record: o->reason). */
int cl_session_open(cl_opener *o, uint8_t *p, size_t n, cl_plain_cb cb, void *ud);
void cl_opener_free(cl_opener *o);

/* ---- fault layer ---- */

typedef struct {
  double drop;        /* fraction of outgoing frames dropped */
  uint32_t delay_ms;  /* outgoing frames held this long */
  int blackhole, oneway_in, oneway_out;
  int stall;          /* this side stops reading the peer's connections (as if stopped) */
} cl_fault;
int cl_fault_parse(const char *spec, cl_fault *f, char *err, size_t errlen);
int cl_fault_enabled(void);
int cl_fault_active(const cl_fault *f);
int cl_fault_cuts_handshake(const cl_fault *f);

#endif
