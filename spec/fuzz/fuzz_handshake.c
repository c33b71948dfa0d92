/* libFuzzer target: the handshake, on either side, fed hostile bytes split into
 * arbitrary chunks. Input: [role][chunk seed][stream the peer would send...].
 * Nonces are fixed so a seed corpus can hold complete, valid handshakes (built with
 * -DCL_FUZZ_GEN, which writes them), and mutations start from deep states. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/internal.h"

static cl_hs_config dcfg, acfg;
static uint8_t nonce_d[32], nonce_a[32];

static void setup(void) {
  static int done;
  if (done) return;
  done = 1;
  memset(nonce_d, 0x11, 32);
  memset(nonce_a, 0x22, 32);
  dcfg.self_name = "node1@127.0.0.1:4371";
  acfg.self_name = "node2@127.0.0.1:4372";
  dcfg.node_id = acfg.node_id = "0123456789abcdef0123456789abcdef";
  dcfg.cluster = acfg.cluster = "edge";
  dcfg.roles = acfg.roles = "master";
  dcfg.incarnation = 7;
  acfg.incarnation = 9;
  dcfg.encrypt = acfg.encrypt = 1;
  dcfg.version = acfg.version = CL_PROTO_VERSION;
  /* a ring of two on each side, sharing one key: the multi-key proof is fuzzed too */
  cl_hs_keys((const uint8_t *)"cookie", 6, dcfg.keys[0].k_hs, dcfg.keys[0].k_sess);
  cl_hs_keys((const uint8_t *)"other-dialer-key", 16, dcfg.keys[1].k_hs, dcfg.keys[1].k_sess);
  cl_hs_keys((const uint8_t *)"other-acceptor-k", 16, acfg.keys[0].k_hs, acfg.keys[0].k_sess);
  acfg.keys[1] = dcfg.keys[0];
  dcfg.keys[0].id = 1;
  dcfg.keys[1].id = 2;
  acfg.keys[0].id = 3;
  acfg.keys[1].id = 1;
  snprintf(dcfg.keys[0].fp, sizeof dcfg.keys[0].fp, "0123456789abcdef");
  dcfg.n_keys = acfg.n_keys = 2;
}

static size_t next_chunk(uint32_t *s, size_t left) {
  *s = *s * 1103515245u + 12345u;
  size_t c = 1 + ((*s >> 16) % 67);
  if ((*s & 7) == 0) c = left;
  return c < left ? c : left;
}

static int check_any(void *ud, const char *name, uint64_t inc, char *reason, size_t rl) {
  (void)ud;
  (void)inc;
  if (strlen(name) > 200) {
    snprintf(reason, rl, "long");
    return CL_HSF_BUSY;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  if (size < 2) return 0;
  int dialer = data[0] & 1;
  uint32_t seed = data[1];
  const uint8_t *p = data + 2;
  size_t n = size - 2;
  cl_handshake hs;
  cl_tbuf out = {0};
  if (dialer) {
    cl_hs_init(&hs, &dcfg, CL_HS_DIALER, acfg.self_name, nonce_d);
    cl_hs_start(&hs, &out);
  } else {
    cl_hs_init(&hs, &acfg, CL_HS_ACCEPTOR, NULL, nonce_a);
    hs.check = check_any;
  }
  size_t off = 0;
  int r = CL_HS_CONTINUE;
  while (off < n && r == CL_HS_CONTINUE) {
    size_t c = next_chunk(&seed, n - off), used = 0;
    r = cl_hs_feed(&hs, p + off, c, &used, &out);
    if (used > c) abort();
    if (r == CL_HS_FAILED && !hs.reason[0]) abort();
    if (r == CL_HS_DONE) {
      /* success needs the cookie: the peer must be the one the corpus was built for */
      if (strcmp(hs.peer_name, dialer ? acfg.self_name : dcfg.self_name) != 0) abort();
    }
    off += used ? used : c;
  }
  cl_hs_free(&hs);
  cl_tbuf_free(&out);
  return 0;
}

#ifdef CL_FUZZ_GEN
/* Writes seed inputs: complete handshakes from each side, and some strays. */
static void put(const char *dir, const char *name, uint8_t role, const cl_tbuf *b) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  uint8_t hdr[2] = {role, 3};
  fwrite(hdr, 1, 2, f);
  if (b) fwrite(b->p, 1, b->len, f);
  fclose(f);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  setup();
  cl_handshake d, a;
  cl_tbuf d_out = {0}, a_out = {0}, d_all = {0}, a_all = {0};
  cl_hs_init(&d, &dcfg, CL_HS_DIALER, acfg.self_name, nonce_d);
  cl_hs_init(&a, &acfg, CL_HS_ACCEPTOR, NULL, nonce_a);
  cl_hs_start(&d, &d_out);
  size_t used;
  for (int i = 0; i < 4; i++) {
    if (d_out.len) {
      cl_tbuf_append(&d_all, d_out.p, d_out.len);
      cl_hs_feed(&a, d_out.p, d_out.len, &used, &a_out);
      d_out.len = 0;
    }
    if (a_out.len) {
      cl_tbuf_append(&a_all, a_out.p, a_out.len);
      cl_hs_feed(&d, a_out.p, a_out.len, &used, &d_out);
      a_out.len = 0;
    }
  }
  put(dir, "acceptor_full", 0, &d_all);  /* what a dialer sends: the acceptor's input */
  put(dir, "dialer_full", 1, &a_all);    /* what an acceptor sends: the dialer's input */
  cl_tbuf s = {0};
  cl_tbuf_append(&s, "GET / HTTP/1.1\r\n\r\n", 18);
  put(dir, "http", 0, &s);
  s.len = 0;
  cl_tbuf_append(&s, d_all.p, d_all.len > 40 ? 40 : d_all.len);
  put(dir, "truncated", 0, &s);
  printf("dialer %s, acceptor %s\n", d.reason[0] ? d.reason : "ok", a.reason[0] ? a.reason : "ok");
  return 0;
}
#endif
