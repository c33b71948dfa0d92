/* The persisted election state (DATA/cluster_state) checker of the crash-consistency
 * spec, and a C test of torn and damaged files.
 *
 *   state_check FILE   prints "term T version V committed C meta_version M" and exits 0,
 *                      or "CORRUPT reason" and exits 1 (2: cannot read FILE)
 *   state_check        self-test: every truncation and every single-byte change of a
 *                      valid file is refused (PASS/FAIL lines, for tools/run-tests.sh) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../c/harness.h"
#include "election.h"

static int check_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    printf("CANNOT_READ %s\n", path);
    return 2;
  }
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  for (;;) {
    if (n == cap) buf = realloc(buf, cap *= 2);
    size_t r = fread(buf + n, 1, cap - n, f);
    if (r == 0) break;
    n += r;
  }
  fclose(f);
  cl_el_state *st = calloc(1, sizeof *st);
  uint64_t term = 0;
  int committed = 0;
  char err[256] = "";
  int rc = cl_el_persist_decode(buf, n, &term, st, &committed, err, sizeof err);
  if (rc != 0) {
    printf("CORRUPT %s (%zu bytes)\n", err, n);
  } else {
    printf("term %llu version %llu committed %d meta_version %llu\n", (unsigned long long)term,
           (unsigned long long)st->version, committed, (unsigned long long)st->meta_version);
    cl_el_state_clear(st);
  }
  free(st);
  free(buf);
  return rc == 0 ? 0 : 1;
}

static int self_test(void) {
  cl_el_state *st = calloc(1, sizeof *st), *out = calloc(1, sizeof *out);
  cl_el_state_init(st);
  snprintf(st->cluster_id, sizeof st->cluster_id, "0123456789abcdef0123456789abcdef");
  st->term = 7;
  st->version = 42;
  if (cl_el_state_reserve_nodes(st, 2)) return 1;
  for (int i = 0; i < 2; i++) {
    char id[8], name[64], address[32];
    snprintf(id, sizeof id, "id%d", i);
    snprintf(name, sizeof name, "node%d@127.0.0.1:%d", i, 4370 + i);
    snprintf(address, sizeof address, "127.0.0.1:%d", 4370 + i);
    if (cl_el_node_set(&st->nodes[i], id, name, address, CL_EL_F_MASTER, "")) return 1;
    st->n_nodes = i + 1;
  }
  snprintf(st->master_id, sizeof st->master_id, "id0");
  /* configurations own their ids (heap): one id each */
  cl_el_vconfig one = {0};
  one.ids = calloc(1, sizeof one.ids[0]);
  one.cap = one.n = 1;
  snprintf(one.ids[0], CL_EL_ID_MAX + 1, "id0");
  cl_el_vconfig_copy(&st->committed_config, &one);
  cl_el_vconfig_copy(&st->accepted_config, &one);
  cl_el_vconfig_free(&one);
  static uint8_t meta[] = "{\"k\":1}";
  st->meta = meta;
  st->meta_len = sizeof meta - 1;
  st->meta_version = 40;
  uint8_t *file = NULL;
  size_t len = 0;
  if (cl_el_persist_encode(9, st, 1, &file, &len) != 0) {
    harness_fail("state_check: a valid file decodes", "encode failed");
    return harness_exit();
  }
  uint64_t term;
  int committed;
  char err[256];
  err[0] = 0;
  int valid = cl_el_persist_decode(file, len, &term, out, &committed, err, sizeof err) == 0 && term == 9 &&
              out->version == 42 && committed;
  EXPECT("state_check: a valid file decodes", valid, "%s", err);
  cl_el_state_clear(out);
  size_t torn_ok = 0, bad_cut = 0;
  for (size_t cut = 0; cut < len; cut++) {
    if (cl_el_persist_decode(file, cut, &term, out, &committed, err, sizeof err) == 0) {
      if (torn_ok == cut) bad_cut = cut;
      cl_el_state_clear(out);
    } else {
      torn_ok++;
    }
  }
  EXPECT("state_check: every torn prefix is refused", torn_ok == len, "%zu of %zu decode, the first torn at byte %zu",
         len - torn_ok, len, bad_cut);
  size_t flips_ok = 0, bad_byte = 0;
  int bad_bit = -1;
  for (size_t i = 0; i < len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      file[i] ^= (uint8_t)(1u << bit);
      if (cl_el_persist_decode(file, len, &term, out, &committed, err, sizeof err) == 0) {
        if (bad_bit < 0) bad_bit = bit, bad_byte = i;
        cl_el_state_clear(out);
      } else {
        flips_ok++;
      }
      file[i] ^= (uint8_t)(1u << bit);
    }
  }
  EXPECT("state_check: every single-bit flip is refused", flips_ok == len * 8,
         "%zu of %zu still decode, the first bit %d of byte %zu", len * 8 - flips_ok, len * 8, bad_bit, bad_byte);
  free(file);
  st->meta = NULL, st->meta_len = 0; /* static: not the state's to free */
  cl_el_state_clear(st);
  free(st);
  free(out);
  return harness_exit();
}

int main(int argc, char **argv) {
  if (argc > 1) return check_file(argv[1]);
  return self_test();
}
