/* Mutual challenge-response handshake, I/O-free.
 *
 *   dialer   -> preamble, HELLO {flags, nonce_d, incarnation, cluster, from, to, id, roles}
 *   acceptor -> preamble, CHALLENGE {flags, nonce_a, incarnation, cluster, name, id, roles}
 *   dialer   -> AUTH {n, HMAC(k_hs[j], "dialer-proof" || T) for each of its n keys
 *                        (primary first), then the n fingerprints}
 *   acceptor -> ACCEPT {j, HMAC(k_hs[j], "acceptor-proof" || T || j)}
 *
 * With a keyring the acceptor does not know which key the dialer used, so the dialer
 * proves with every key it holds and the acceptor checks every proof against every key
 * of its own ring: no key id goes on the wire, the work per attempt is the same whether
 * or not a key matches (no early exit, constant-time compares), and the acceptor names
 * none of its keys to a dialer that has not proved one. docs/design.md ("Keyring")
 * gives the reasoning. The connection is authenticated under the first of the
 * dialer's keys (in its order) that the acceptor holds.
 *
 * T hashes the version and both payloads, so both nonces, both names, the cluster,
 * the encrypt flag and the incarnations are all bound by the proofs: nothing can be
 * swapped or downgraded in flight. The dialer proves first so an unauthenticated
 * dialer learns nothing it could test cookies against offline. Session keys per
 * direction are HMAC(k_sess, label || T): fresh per connection because of the nonces.
 * Any side may answer REFUSE {code, reason} instead, so both sides can log why. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

enum { S_WAIT_HELLO = 1, S_WAIT_CHALLENGE, S_WAIT_AUTH, S_WAIT_ACCEPT, S_DONE, S_FAILED };

static void hmac2(const uint8_t key[32], const char *label, const uint8_t *msg, size_t n,
                  uint8_t out[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, 32);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)label, strlen(label) + 1);
  crypto_auth_hmacsha256_update(&st, msg, n);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

/* For logs and refusals: fingerprints only, never a key. */
void cl_hs_fp_list(const cl_hs_key *keys, size_t n, char *out, size_t outlen) {
  size_t w = 0;
  out[0] = 0;
  for (size_t i = 0; i < n && w + 1 < outlen; i++) {
    int r = snprintf(out + w, outlen - w, "%s%s", i ? ", " : "", keys[i].fp[0] ? keys[i].fp : "(fingerprint pending)");
    if (r < 0) break;
    w += (size_t)r;
  }
  if (!n) snprintf(out, outlen, "(none)");
}

void cl_hs_reauth_proof(const cl_hs_key *k, const char *label, const uint8_t sid[32],
                        const uint8_t nonce_r[32], const uint8_t nonce_o[32], uint8_t idx, uint8_t out[32]) {
  uint8_t msg[97];
  memcpy(msg, sid, 32);
  memcpy(msg + 32, nonce_r, 32);
  memcpy(msg + 64, nonce_o, 32);
  msg[96] = idx;
  hmac2(k->k_hs, label, msg, sizeof msg, out);
}

void cl_hs_rekey(const cl_hs_key *k, const uint8_t sid[32], const uint8_t nonce_r[32], const uint8_t nonce_o[32],
                 uint8_t idx, uint8_t i2r[32], uint8_t r2i[32]) {
  static const char dom[] = "clusterlua-rekey";
  uint8_t t2[32];
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const uint8_t *)dom, sizeof dom);
  crypto_hash_sha256_update(&st, sid, 32);
  crypto_hash_sha256_update(&st, nonce_r, 32);
  crypto_hash_sha256_update(&st, nonce_o, 32);
  crypto_hash_sha256_update(&st, &idx, 1);
  crypto_hash_sha256_final(&st, t2);
  hmac2(k->k_sess, "reauth-i2r", t2, 32, i2r);
  hmac2(k->k_sess, "reauth-r2i", t2, 32, r2i);
  sodium_memzero(t2, sizeof t2);
}

/* HKDF-style: extract a pseudo-random key from the cookie under a fixed salt, then
 * expand one label per use. The cookie itself never keys anything. */
static void cookie_prk(const uint8_t *cookie, size_t cookie_len, uint8_t prk[32]) {
  static const char salt[] = "clusterlua cookie v1";
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, (const uint8_t *)salt, sizeof salt - 1);
  crypto_auth_hmacsha256_update(&st, cookie, cookie_len);
  crypto_auth_hmacsha256_final(&st, prk);
  sodium_memzero(&st, sizeof st);
}

void cl_hs_keys(const uint8_t *cookie, size_t cookie_len, uint8_t k_hs[32], uint8_t k_sess[32]) {
  uint8_t prk[32];
  cookie_prk(cookie, cookie_len, prk);
  hmac2(prk, "internal/handshake", NULL, 0, k_hs);
  hmac2(prk, "internal/session", NULL, 0, k_sess);
  sodium_memzero(prk, sizeof prk);
}

void cl_transport_derive_key(const uint8_t *cookie, size_t cookie_len, const char *purpose,
                             uint8_t out[32]) {
  uint8_t prk[32];
  cookie_prk(cookie, cookie_len, prk);
  /* "user/" keeps caller purposes apart from the transport's own labels */
  char label[128];
  snprintf(label, sizeof label, "user/%s", purpose ? purpose : "");
  hmac2(prk, label, NULL, 0, out);
  sodium_memzero(prk, sizeof prk);
}

const char *cl_hs_fail_name(int f) {
  switch (f) {
  case CL_HSF_COOKIE: return "bad cookie";
  case CL_HSF_CLUSTER: return "other cluster";
  case CL_HSF_VERSION: return "unsupported version";
  case CL_HSF_ENCRYPT: return "encryption mismatch";
  case CL_HSF_NAME: return "bad name";
  case CL_HSF_GARBAGE: return "garbage";
  case CL_HSF_DUPLICATE: return "duplicate connection";
  case CL_HSF_TIMEOUT: return "handshake timeout";
  case CL_HSF_BUSY: return "refused";
  default: return "unknown";
  }
}

/* ---- encoding ---- */

static void put_u8(cl_tbuf *b, uint8_t v) { cl_tbuf_append(b, &v, 1); }
static void put_u64(cl_tbuf *b, uint64_t v) {
  uint8_t x[8];
  for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (56 - 8 * i));
  cl_tbuf_append(b, x, 8);
}
static void put_str(cl_tbuf *b, const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n > CL_STR_MAX) n = CL_STR_MAX;
  put_u8(b, (uint8_t)n);
  cl_tbuf_append(b, s, n);
}

typedef struct {
  const uint8_t *p;
  size_t n, i;
  int err;
} rd;

static uint8_t get_u8(rd *r) {
  if (r->i + 1 > r->n) {
    r->err = 1;
    return 0;
  }
  return r->p[r->i++];
}
static uint64_t get_u64(rd *r) {
  if (r->i + 8 > r->n) {
    r->err = 1;
    return 0;
  }
  uint64_t v = 0;
  for (int k = 0; k < 8; k++) v = v << 8 | r->p[r->i + (size_t)k];
  r->i += 8;
  return v;
}
static void get_bytes(rd *r, uint8_t *out, size_t n) {
  if (r->i + n > r->n) {
    r->err = 1;
    memset(out, 0, n);
    return;
  }
  memcpy(out, r->p + r->i, n);
  r->i += n;
}
/* Strings from the network become C strings only if printable ASCII: they end up in
 * logs and in Lua, where control characters could forge lines. */
static void get_str(rd *r, char out[CL_STR_MAX + 1]) {
  size_t n = get_u8(r);
  out[0] = 0;
  if (r->err || r->i + n > r->n) {
    r->err = 1;
    return;
  }
  for (size_t k = 0; k < n; k++) {
    uint8_t c = r->p[r->i + k];
    if (c < 0x20 || c > 0x7e) {
      r->err = 1;
      return;
    }
    out[k] = (char)c;
  }
  out[n] = 0;
  r->i += n;
}

/* ---- state machine ---- */

void cl_hs_init(cl_handshake *hs, const cl_hs_config *cfg, int role, const char *expect_name,
                const uint8_t nonce[32]) {
  memset(hs, 0, sizeof *hs);
  hs->cfg = cfg;
  hs->role = role;
  hs->state = role == CL_HS_DIALER ? S_WAIT_CHALLENGE : S_WAIT_HELLO;
  memcpy(hs->nonce_self, nonce, 32);
  hs->fail_key = -1;
  if (expect_name) snprintf(hs->expect_name, sizeof hs->expect_name, "%s", expect_name);
  cl_frame_decoder_init(&hs->fd, CL_FD_HANDSHAKE, 1, CL_HS_FRAME_MAX);
  hs->fd.expect_version = cfg->version;
  crypto_hash_sha256_init(&hs->th);
  static const char dom[] = "clusterlua-handshake";
  crypto_hash_sha256_update(&hs->th, (const uint8_t *)dom, sizeof dom);
  crypto_hash_sha256_update(&hs->th, &cfg->version, 1);
}

void cl_hs_free(cl_handshake *hs) {
  cl_frame_decoder_free(&hs->fd);
  sodium_memzero(hs->key_tx, 32);
  sodium_memzero(hs->key_rx, 32);
  sodium_memzero(hs->offered, sizeof hs->offered);
  sodium_memzero(&hs->key, sizeof hs->key);
}

static void th_add(cl_handshake *hs, const uint8_t *p, size_t n) {
  uint8_t l[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
  crypto_hash_sha256_update(&hs->th, l, 4);
  crypto_hash_sha256_update(&hs->th, p, n);
}

static void put_preamble(cl_handshake *hs, cl_tbuf *out) {
  uint8_t pre[CL_PREAMBLE_LEN];
  cl_preamble_put(pre, hs->cfg->version);
  cl_tbuf_append(out, pre, sizeof pre);
}

int cl_hs_start(cl_handshake *hs, cl_tbuf *out) {
  const cl_hs_config *c = hs->cfg;
  cl_tbuf pl = {0};
  put_u8(&pl, (uint8_t)((c->encrypt ? 1 : 0) | (hs->data ? 2 : 0) | (c->data_conns ? 4 : 0)));
  cl_tbuf_append(&pl, hs->nonce_self, 32);
  put_u64(&pl, c->incarnation);
  put_str(&pl, c->cluster);
  put_str(&pl, c->self_name);
  put_str(&pl, hs->expect_name);
  put_str(&pl, c->node_id);
  put_str(&pl, c->roles);
  int r = -1;
  if (pl.p) {
    th_add(hs, pl.p, pl.len);
    put_preamble(hs, out);
    r = cl_frame_put(out, CL_T_HELLO, 0, pl.p, (uint32_t)pl.len);
  }
  cl_tbuf_free(&pl);
  return r;
}

static int refuse(cl_handshake *hs, int code, int tell_peer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(cl_handshake *hs, int code, int tell_peer, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(hs->reason, sizeof hs->reason, fmt, ap);
  va_end(ap);
  hs->fail = code;
  /* an acceptor that refuses before its CHALLENGE owes the dialer its preamble */
  if (tell_peer && hs->out) {
    if (hs->role == CL_HS_ACCEPTOR && hs->state == S_WAIT_HELLO) put_preamble(hs, hs->out);
    cl_tbuf pl = {0};
    put_u8(&pl, (uint8_t)code);
    put_str(&pl, hs->reason);
    if (pl.p) cl_frame_put(hs->out, CL_T_REFUSE, 0, pl.p, (uint32_t)pl.len);
    cl_tbuf_free(&pl);
  }
  hs->state = S_FAILED;
  return 1;
}

static void finish_transcript(cl_handshake *hs) {
  crypto_hash_sha256_final(&hs->th, hs->transcript);
}

static void derive_session(cl_handshake *hs) {
  uint8_t d2a[32], a2d[32];
  hmac2(hs->key.k_sess, "dialer-to-acceptor", hs->transcript, 32, d2a);
  hmac2(hs->key.k_sess, "acceptor-to-dialer", hs->transcript, 32, a2d);
  memcpy(hs->key_tx, hs->role == CL_HS_DIALER ? d2a : a2d, 32);
  memcpy(hs->key_rx, hs->role == CL_HS_DIALER ? a2d : d2a, 32);
  sodium_memzero(d2a, 32);
  sodium_memzero(a2d, 32);
}

static int on_hello(cl_handshake *hs, const cl_frame *f) {
  const cl_hs_config *c = hs->cfg;
  rd r = {f->data, f->len, 0, 0};
  char cluster[CL_STR_MAX + 1], to[CL_STR_MAX + 1];
  uint8_t flags = get_u8(&r);
  get_bytes(&r, hs->nonce_peer, 32);
  hs->peer_incarnation = get_u64(&r);
  get_str(&r, cluster);
  get_str(&r, hs->peer_name);
  get_str(&r, to);
  get_str(&r, hs->peer_id);
  get_str(&r, hs->peer_roles);
  if (r.err || r.i != r.n) return refuse(hs, CL_HSF_GARBAGE, 1, "garbage: malformed HELLO");
  th_add(hs, f->data, f->len);
  hs->peer_data = (flags & 2) != 0;
  hs->peer_data_conns = (flags & 4) != 0;
  if (strcmp(cluster, c->cluster) != 0)
    return refuse(hs, CL_HSF_CLUSTER, 1, "other cluster: %s is in \"%s\", %s in \"%s\"",
                  hs->role == CL_HS_ACCEPTOR ? hs->peer_name : c->self_name,
                  hs->role == CL_HS_ACCEPTOR ? cluster : c->cluster,
                  hs->role == CL_HS_ACCEPTOR ? c->self_name : hs->peer_name,
                  hs->role == CL_HS_ACCEPTOR ? c->cluster : cluster);
  cl_node_name nn;
  char err[160];
  if (cl_node_name_parse(hs->peer_name, &nn, err, sizeof err))
    return refuse(hs, CL_HSF_NAME, 1, "%s", err);
  if (strcmp(nn.full, hs->peer_name) != 0)
    return refuse(hs, CL_HSF_NAME, 1, "bad name: \"%s\" is not in the normal form \"%s\"",
                  hs->peer_name, nn.full);
  if (strcmp(hs->peer_name, c->self_name) == 0)
    return refuse(hs, CL_HSF_NAME, 1, "bad name: a peer may not use this node's own name %s",
                  c->self_name);
  if (strcmp(to, c->self_name) != 0)
    return refuse(hs, CL_HSF_NAME, 1, "bad name: dialled %s but this is %s", to, c->self_name);
  if ((flags & 1) != (c->encrypt ? 1 : 0))
    return refuse(hs, CL_HSF_ENCRYPT, 1, "encryption mismatch: %s has encrypt=%s, %s has encrypt=%s",
                  hs->peer_name, (flags & 1) ? "on" : "off", c->self_name, c->encrypt ? "on" : "off");
  if (hs->check) {
    char why[160] = "";
    int k = hs->check(hs->check_ud, hs->peer_name, hs->peer_incarnation, why, sizeof why);
    if (k) return refuse(hs, k, 1, "%s", why);
  }
  cl_tbuf pl = {0};
  /* the data flag is echoed, so a dialer never takes a control connection for a data one */
  put_u8(&pl, (uint8_t)((c->encrypt ? 1 : 0) | (hs->peer_data ? 2 : 0) | (c->data_conns ? 4 : 0)));
  cl_tbuf_append(&pl, hs->nonce_self, 32);
  put_u64(&pl, c->incarnation);
  put_str(&pl, c->cluster);
  put_str(&pl, c->self_name);
  put_str(&pl, c->node_id);
  put_str(&pl, c->roles);
  if (!pl.p) return refuse(hs, CL_HSF_GARBAGE, 0, "out of memory");
  th_add(hs, pl.p, pl.len);
  finish_transcript(hs);
  put_preamble(hs, hs->out);
  cl_frame_put(hs->out, CL_T_CHALLENGE, 0, pl.p, (uint32_t)pl.len);
  cl_tbuf_free(&pl);
  hs->state = S_WAIT_AUTH;
  return 0;
}

static int on_challenge(cl_handshake *hs, const cl_frame *f) {
  const cl_hs_config *c = hs->cfg;
  rd r = {f->data, f->len, 0, 0};
  char cluster[CL_STR_MAX + 1];
  uint8_t flags = get_u8(&r);
  get_bytes(&r, hs->nonce_peer, 32);
  hs->peer_incarnation = get_u64(&r);
  get_str(&r, cluster);
  get_str(&r, hs->peer_name);
  get_str(&r, hs->peer_id);
  get_str(&r, hs->peer_roles);
  if (r.err || r.i != r.n) return refuse(hs, CL_HSF_GARBAGE, 1, "garbage: malformed CHALLENGE");
  hs->peer_data_conns = (flags & 4) != 0;
  th_add(hs, f->data, f->len);
  finish_transcript(hs);
  if (strcmp(cluster, c->cluster) != 0)
    return refuse(hs, CL_HSF_CLUSTER, 1, "other cluster: %s is in \"%s\", %s in \"%s\"",
                  hs->role == CL_HS_ACCEPTOR ? hs->peer_name : c->self_name,
                  hs->role == CL_HS_ACCEPTOR ? cluster : c->cluster,
                  hs->role == CL_HS_ACCEPTOR ? c->self_name : hs->peer_name,
                  hs->role == CL_HS_ACCEPTOR ? c->cluster : cluster);
  if (strcmp(hs->peer_name, hs->expect_name) != 0)
    return refuse(hs, CL_HSF_NAME, 1, "bad name: dialled %s but reached %s", hs->expect_name,
                  hs->peer_name);
  if ((flags & 1) != (c->encrypt ? 1 : 0))
    return refuse(hs, CL_HSF_ENCRYPT, 1, "encryption mismatch: %s has encrypt=%s, %s has encrypt=%s",
                  hs->peer_name, (flags & 1) ? "on" : "off", c->self_name, c->encrypt ? "on" : "off");
  if (((flags & 2) != 0) != (hs->data != 0))
    return refuse(hs, CL_HSF_VERSION, 1, "%s answered a %s connection as a %s one", hs->peer_name,
                  hs->data ? "data" : "control", (flags & 2) ? "data" : "control");
  size_t n = c->n_keys < CL_KEYRING_MAX ? c->n_keys : CL_KEYRING_MAX;
  memcpy(hs->offered, c->keys, n * sizeof *c->keys);
  hs->n_offered = n;
  cl_tbuf pl = {0};
  put_u8(&pl, (uint8_t)n);
  for (size_t j = 0; j < n; j++) {
    uint8_t mac[32];
    hmac2(hs->offered[j].k_hs, "dialer-proof", hs->transcript, 32, mac);
    cl_tbuf_append(&pl, mac, 32);
    sodium_memzero(mac, 32);
  }
  for (size_t j = 0; j < n; j++) put_str(&pl, hs->offered[j].fp);
  if (!pl.p) return refuse(hs, CL_HSF_GARBAGE, 0, "out of memory");
  cl_frame_put(hs->out, CL_T_AUTH, 0, pl.p, (uint32_t)pl.len);
  cl_tbuf_free(&pl);
  hs->state = S_WAIT_ACCEPT;
  return 0;
}

/* Acceptor: AUTH {n, n proofs, n fingerprints}. Every proof is checked against every
 * key of the ring, always all of them, so the time taken says nothing about which (or
 * whether) a key matched. */
static int on_auth(cl_handshake *hs, const cl_frame *f) {
  const cl_hs_config *c = hs->cfg;
  rd r = {f->data, f->len, 0, 0};
  size_t n = get_u8(&r);
  if (r.err || n == 0 || n > CL_KEYRING_MAX || r.n - r.i < n * 32)
    return refuse(hs, CL_HSF_GARBAGE, 1, "garbage: malformed AUTH");
  const uint8_t *proofs = r.p + r.i;
  r.i += n * 32;
  char fps[CL_KEYRING_MAX][CL_STR_MAX + 1];
  for (size_t j = 0; j < n; j++) get_str(&r, fps[j]);
  if (r.err || r.i != r.n) return refuse(hs, CL_HSF_GARBAGE, 1, "garbage: malformed AUTH");
  size_t w = 0;
  hs->peer_fps[0] = 0;
  for (size_t j = 0; j < n; j++) {
    const char *fp = cl_keyring_fp_valid(fps[j]) ? fps[j] : "(fingerprint pending)";
    int k = snprintf(hs->peer_fps + w, sizeof hs->peer_fps - w, "%s%s", j ? ", " : "", fp);
    if (k < 0 || (size_t)k >= sizeof hs->peer_fps - w) break;
    w += (size_t)k;
  }
  size_t m = c->n_keys < CL_KEYRING_MAX ? c->n_keys : CL_KEYRING_MAX;
  /* best = the smallest j (the dialer's order) that some key i of ours proves */
  size_t best_j = CL_KEYRING_MAX, best_i = 0;
  for (size_t i = 0; i < m; i++) {
    uint8_t mac[32];
    hmac2(c->keys[i].k_hs, "dialer-proof", hs->transcript, 32, mac);
    for (size_t j = 0; j < n; j++) {
      int eq = sodium_memcmp(mac, proofs + 32 * j, 32) == 0;
      int better = eq & (j < best_j);
      best_j = better ? j : best_j;
      best_i = better ? i : best_i;
    }
    sodium_memzero(mac, 32);
  }
  if (best_j == CL_KEYRING_MAX) {
    /* a failure is counted under a key of ours only if the dialer named it */
    for (size_t i = 0; i < m && hs->fail_key < 0; i++)
      for (size_t j = 0; j < n; j++)
        if (c->keys[i].fp[0] && strcmp(c->keys[i].fp, fps[j]) == 0) hs->fail_key = (int)i;
    refuse(hs, CL_HSF_COOKIE, 1, "bad cookie: no key in common: none of the keys %s offered (%s) is in the keyring of %s",
           hs->peer_name, hs->peer_fps, c->self_name);
    /* ours go to our log only: a dialer that proved nothing learns nothing of our ring */
    char mine[CL_KEYRING_MAX * (CL_FP_LEN + 2) + 1];
    cl_hs_fp_list(c->keys, m, mine, sizeof mine);
    size_t l = strlen(hs->reason);
    snprintf(hs->reason + l, sizeof hs->reason - l, "; this node holds %s", mine);
    return 1;
  }
  hs->key = c->keys[best_i];
  uint8_t acc[33];
  acc[0] = (uint8_t)best_j;
  uint8_t msg[33];
  memcpy(msg, hs->transcript, 32);
  msg[32] = (uint8_t)best_j;
  hmac2(hs->key.k_hs, "acceptor-proof", msg, sizeof msg, acc + 1);
  cl_frame_put(hs->out, CL_T_ACCEPT, 0, acc, sizeof acc);
  sodium_memzero(acc, sizeof acc);
  derive_session(hs);
  hs->state = S_DONE;
  return 1;
}

/* Dialer: ACCEPT {j, proof under our j-th key}. */
static int on_accept(cl_handshake *hs, const cl_frame *f) {
  if (f->len != 33 || f->data[0] >= hs->n_offered)
    return refuse(hs, CL_HSF_COOKIE, 1, "bad cookie: the proof of the cookie did not verify");
  uint8_t j = f->data[0];
  uint8_t msg[33], mac[32];
  memcpy(msg, hs->transcript, 32);
  msg[32] = j;
  hmac2(hs->offered[j].k_hs, "acceptor-proof", msg, sizeof msg, mac);
  int ok = sodium_memcmp(mac, f->data + 1, 32) == 0;
  sodium_memzero(mac, 32);
  if (!ok) return refuse(hs, CL_HSF_COOKIE, 1, "bad cookie: the proof of the cookie did not verify");
  hs->key = hs->offered[j];
  derive_session(hs);
  hs->state = S_DONE;
  return 1;
}

static int on_frame(void *ud, const cl_frame *f) {
  cl_handshake *hs = ud;
  if (f->type == CL_T_REFUSE) {
    rd r = {f->data, f->len, 0, 0};
    char why[CL_STR_MAX + 1];
    uint8_t code = get_u8(&r);
    get_str(&r, why);
    if (r.err) snprintf(why, sizeof why, "(unreadable reason)");
    if (!why[0]) snprintf(why, sizeof why, "(no reason given)");
    if (code < CL_HSF_COOKIE || code > CL_HSF_BUSY) code = CL_HSF_BUSY;
    hs->refused_by_peer = 1;
    if (code == CL_HSF_COOKIE && hs->role == CL_HS_DIALER && hs->n_offered) {
      char mine[CL_KEYRING_MAX * (CL_FP_LEN + 2) + 1];
      cl_hs_fp_list(hs->offered, hs->n_offered, mine, sizeof mine);
      return refuse(hs, code, 0, "%s; this node holds %s", why, mine);
    }
    return refuse(hs, code, 0, "%s", why);
  }
  switch (hs->state) {
  case S_WAIT_HELLO:
    if (f->type == CL_T_HELLO) return on_hello(hs, f);
    break;
  case S_WAIT_CHALLENGE:
    if (f->type == CL_T_CHALLENGE) return on_challenge(hs, f);
    break;
  case S_WAIT_AUTH:
    if (f->type == CL_T_AUTH) return on_auth(hs, f);
    break;
  case S_WAIT_ACCEPT:
    if (f->type == CL_T_ACCEPT) return on_accept(hs, f);
    break;
  default:
    break;
  }
  return refuse(hs, CL_HSF_GARBAGE, 1, "garbage: unexpected frame type %u during the handshake",
                f->type);
}

int cl_hs_feed(cl_handshake *hs, const uint8_t *p, size_t n, size_t *consumed, cl_tbuf *out) {
  if (hs->state == S_FAILED) return CL_HS_FAILED;
  if (hs->state == S_DONE) {
    *consumed = 0;
    return CL_HS_DONE;
  }
  hs->out = out;
  size_t used = 0;
  int r = cl_frame_decoder_feed(&hs->fd, p, n, &used, on_frame, hs);
  hs->out = NULL;
  *consumed = used;
  if (r < 0) {
    hs->fail = hs->fd.bad_version ? CL_HSF_VERSION : CL_HSF_GARBAGE;
    snprintf(hs->reason, sizeof hs->reason, "%s", hs->fd.reason);
    /* a peer of another version deserves to hear why; a stray protocol does not */
    if (hs->fd.bad_version && out) {
      hs->out = out;
      refuse(hs, CL_HSF_VERSION, 1, "%s", hs->fd.reason);
      hs->out = NULL;
    }
    hs->state = S_FAILED;
    return CL_HS_FAILED;
  }
  if (hs->state == S_FAILED) return CL_HS_FAILED;
  if (hs->state == S_DONE) return CL_HS_DONE;
  return CL_HS_CONTINUE;
}
