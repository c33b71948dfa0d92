/* Records after an encrypted handshake: [u32 length BE][ChaCha20-Poly1305 ciphertext +
 * tag], at most CL_RECORD_PLAIN_MAX plaintext each. A whole batch of frames goes into
 * one record, so a burst of small messages costs one seal, not one per message.
 * Nonces are a per-direction counter; each direction has its own key, so a nonce
 * never repeats under a key. The length is the additional data, so it cannot be
 * altered either. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static void nonce_of(uint64_t ctr, uint8_t n[12]) {
  memset(n, 0, 4);
  for (int i = 0; i < 8; i++) n[4 + i] = (uint8_t)(ctr >> (8 * i));
}

int cl_session_seal(cl_seal_dir *tx, const uint8_t *plain, size_t n, cl_tbuf *wire) {
  size_t records = (n + CL_RECORD_PLAIN_MAX - 1) / CL_RECORD_PLAIN_MAX;
  if (cl_tbuf_reserve(wire, n + records * (CL_RECORD_HDR + CL_TAG_LEN))) return -1;
  while (n) {
    size_t chunk = n < CL_RECORD_PLAIN_MAX ? n : CL_RECORD_PLAIN_MAX;
    uint32_t clen = (uint32_t)(chunk + CL_TAG_LEN);
    uint8_t *h = wire->p + wire->len;
    h[0] = (uint8_t)(clen >> 24);
    h[1] = (uint8_t)(clen >> 16);
    h[2] = (uint8_t)(clen >> 8);
    h[3] = (uint8_t)clen;
    uint8_t nonce[12];
    nonce_of(tx->counter++, nonce);
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(h + CL_RECORD_HDR, h + CL_RECORD_HDR + chunk,
                                                       NULL, plain, chunk, h, CL_RECORD_HDR, NULL,
                                                       nonce, tx->key);
    wire->len += CL_RECORD_HDR + clen;
    plain += chunk;
    n -= chunk;
  }
  return 0;
}

static int open_one(cl_opener *o, const uint8_t hdr[4], uint8_t *c, size_t clen) {
  uint8_t nonce[12];
  nonce_of(o->rx.counter++, nonce);
  if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(c, NULL, c, clen - CL_TAG_LEN,
                                                         c + clen - CL_TAG_LEN, hdr, CL_RECORD_HDR,
                                                         nonce, o->rx.key) != 0) {
    snprintf(o->reason, sizeof o->reason, "record failed authentication (forged, garbled or replayed)");
    return -1;
  }
  return 0;
}

int cl_session_open(cl_opener *o, uint8_t *p, size_t n, cl_plain_cb cb, void *ud) {
  size_t i = 0;
  while (i < n) {
    if (o->want == 0) {
      if (!cl_take_header(o->hdr, &o->hdr_have, CL_RECORD_HDR, p, n, &i)) continue;
      uint32_t clen = (uint32_t)o->hdr[0] << 24 | (uint32_t)o->hdr[1] << 16 |
                      (uint32_t)o->hdr[2] << 8 | o->hdr[3];
      if (clen <= CL_TAG_LEN || clen > CL_RECORD_PLAIN_MAX + CL_TAG_LEN) {
        snprintf(o->reason, sizeof o->reason, "record of %u bytes is out of range", clen);
        return -1;
      }
      o->want = clen;
      o->rec.len = 0;
      /* whole record here: open it in place, no copy */
      if (n - i >= clen) {
        o->want = 0;
        if (open_one(o, o->hdr, p + i, clen)) return -1;
        i += clen;
        if (cb(ud, p + i - clen, clen - CL_TAG_LEN)) return 1;
        continue;
      }
      if (cl_tbuf_reserve(&o->rec, clen)) {
        snprintf(o->reason, sizeof o->reason, "out of memory");
        return -1;
      }
    }
    size_t need = o->want - o->rec.len;
    size_t take = need < n - i ? need : n - i;
    memcpy(o->rec.p + o->rec.len, p + i, take);
    o->rec.len += take;
    i += take;
    if (o->rec.len < o->want) continue;
    size_t clen = o->want;
    o->want = 0;
    if (open_one(o, o->hdr, o->rec.p, clen)) return -1;
    int stop = cb(ud, o->rec.p, clen - CL_TAG_LEN);
    if (o->keep_max && o->rec.cap > o->keep_max) cl_tbuf_free(&o->rec);
    if (stop) return 1;
  }
  return 0;
}

void cl_opener_free(cl_opener *o) {
  cl_tbuf_free(&o->rec);
  sodium_memzero(o->rx.key, sizeof o->rx.key);
}
