/* libFuzzer target: the frame decoder (both modes) and the AEAD record opener, fed
 * hostile bytes in arbitrary chunks. Input: [chunk seed][mode][stream...]. */
#include <stdlib.h>
#include <string.h>

#include "transport/internal.h"

static int on_frame(void *ud, const cl_frame *f) {
  size_t *sum = ud;
  /* touch every byte so ASan sees any out-of-bounds delivery */
  for (uint32_t i = 0; i < f->len; i++) *sum += f->data[i];
  return 0;
}

static int on_plain(void *ud, const uint8_t *p, size_t n) {
  cl_frame_decoder *d = ud;
  return cl_frame_decoder_feed(d, p, n, NULL, on_frame, &(size_t){0}) < 0;
}

/* Chunk sizes come from a tiny PRNG seeded by the input, so every split is reachable. */
static size_t next_chunk(uint32_t *s, size_t left) {
  *s = *s * 1103515245u + 12345u;
  size_t c = 1 + ((*s >> 16) % 97);
  if ((*s & 7) == 0) c = left;
  return c < left ? c : left;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  uint32_t seed = data[0];
  uint8_t mode = data[1];
  const uint8_t *p = data + 2;
  size_t n = size - 2;
  size_t sum = 0;
  if (mode % 3 == 2) {
    /* records: a fixed key; a forgery must be refused, never crash */
    cl_opener o;
    memset(&o, 0, sizeof o);
    cl_frame_decoder d;
    cl_frame_decoder_init(&d, CL_FD_SESSION, 0, 1 << 16);
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    size_t off = 0;
    while (off < n) {
      size_t c = next_chunk(&seed, n - off);
      if (cl_session_open(&o, copy + off, c, on_plain, &d) != 0) break;
      off += c;
    }
    free(copy);
    cl_frame_decoder_free(&d);
    cl_opener_free(&o);
    /* and what we seal we can open */
    cl_seal_dir tx = {{0}, 0};
    cl_tbuf wire = {0};
    if (cl_session_seal(&tx, p, n, &wire) == 0) {
      memset(&o, 0, sizeof o);
      cl_tbuf got = {0};
      int collect(void *ud, const uint8_t *q, size_t k);
      if (cl_session_open(&o, wire.p, wire.len, collect, &got) != 0 || got.len != n ||
          (n && memcmp(got.p, p, n) != 0))
        abort();
      cl_tbuf_free(&got);
      cl_opener_free(&o);
    }
    cl_tbuf_free(&wire);
    return 0;
  }
  cl_frame_decoder d;
  cl_frame_decoder_init(&d, mode % 3 == 0 ? CL_FD_SESSION : CL_FD_HANDSHAKE, mode & 4, 1 << 16);
  d.expect_version = CL_PROTO_VERSION;
  size_t off = 0;
  while (off < n) {
    size_t c = next_chunk(&seed, n - off);
    size_t used = 0;
    int r = cl_frame_decoder_feed(&d, p + off, c, &used, on_frame, &sum);
    if (r < 0) {
      if (!d.reason[0]) abort(); /* every refusal says why */
      break;
    }
    if (used != c) abort();
    off += c;
  }
  cl_frame_decoder_free(&d);
  (void)cl_frame_sniff(p, n);
  return 0;
}

int collect(void *ud, const uint8_t *q, size_t k) {
  cl_tbuf_append(ud, q, k);
  return 0;
}
