/* libFuzzer target: the election core's decoders of hostile bytes — wire
 * messages (as a peer would send them), a publication diff applied to a state whose
 * (term, version) it names (RULE E13), the persisted state file (as a disk
 * would return it) — and a live core fed the same bytes as a message. Any
 * crash, leak, overflow or undefined behaviour is a bug. */
#include "election.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Counts are read from the wire before the entries they count: a count past the hard
 * limit, or past what the bytes left can hold, must be refused before any allocation
 * (the corpus has such messages too: publish_count_*, publish_config_huge). */
static void huge_counts_refused(void) {
  static int done;
  if (done) return;
  done = 1;
  char err[256];
  uint8_t m[64] = {'C', 'L', 'E', CL_WIRE_VERSION, CL_M_PUBLISH, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                   1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const uint32_t counts[] = {0xffffffffu, CL_EL_MAX_NODES_HARD + 1u, CL_EL_MAX_NODES_HARD};
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
    for (int b = 0; b < 4; b++) m[27 + b] = (uint8_t)(counts[i] >> (8 * b));
    if (cl_el_msg_validate(m, sizeof m, err, sizeof err) == 0) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  huge_counts_refused();
  cl_el_msg_validate(data, size, err, sizeof err);

  /* a diff is applied to a base of three nodes with the (term, version) it names: its
   * entries must fit that base or be refused, never half-applied or out of bounds */
  {
    cl_msg *m = malloc(sizeof *m);
    cl_diff d;
    cl_diff_init(&d);
    if (m && cl_msg_decode_into(data, size, m, NULL, &d, 0, err, sizeof err) == 0 && m->type == CL_M_PUBLISH_DIFF) {
      cl_el_state base, out;
      cl_el_state_init(&base);
      cl_el_state_init(&out);
      memcpy(base.cluster_id, d.cluster_id, sizeof base.cluster_id);
      base.term = d.base_term;
      base.version = d.base_version;
      if (cl_el_state_reserve_nodes(&base, 3) == 0) {
        const char *ids[3] = {"a", "b", "c"};
        for (int i = 0; i < 3; i++) cl_el_node_set(&base.nodes[i], ids[i], NULL, NULL, 0, NULL); /* no strings: cannot fail */
        base.n_nodes = 3;
        if (cl_diff_apply(&base, &d, &out, err, sizeof err) == 0) {
          /* the result is a valid state: it encodes and decodes again */
          uint8_t *buf;
          size_t len;
          uint64_t t;
          int c;
          cl_el_state back;
          cl_el_state_init(&back);
          if (cl_persist_encode(out.term, &out, 0, &buf, &len) == 0) {
            if (cl_persist_decode(buf, len, &t, &back, &c, err, sizeof err) != 0 &&
                !strstr(err, "metadata version"))
              abort();
            free(buf);
          }
          cl_el_state_clear(&back);
        }
      }
      cl_el_state_clear(&base);
      cl_el_state_clear(&out);
    }
    cl_diff_clear(&d);
    free(m);
  }

  uint64_t term;
  int committed; /* the flags byte, as read */
  cl_el_state st;
  cl_el_state_init(&st);
  if (cl_persist_decode(data, size, &term, &st, &committed, err, sizeof err) == 0) {
    /* whatever decodes must re-encode to the same bytes (canonical) */
    uint8_t *out;
    size_t len;
    if (cl_persist_encode(term, &st, committed, &out, &len) == 0) {
      if (len != size || memcmp(out, data, size)) abort();
      free(out);
    }
  }
  cl_el_state_clear(&st);

  /* the state machine itself must shrug off garbage from a connected peer */
  static cl_el_effects fx;
  cl_el_config cfg;
  cl_el_config_defaults(&cfg);
  cl_el_node_info self = {"self", "self@127.0.0.1:1", "127.0.0.1:1", CL_EL_F_MASTER, NULL};
  cl_el *el = cl_el_new(&cfg, &self, NULL, 0, err, sizeof err);
  if (!el) abort();
  cl_el_input in;
  memset(&in, 0, sizeof in);
  in.kind = CL_EL_IN_PEER_UP;
  in.peer.id = "peer";
  in.peer.name = "peer@127.0.0.1:2";
  in.peer.address = "127.0.0.1:2";
  in.peer.flags = CL_EL_F_MASTER;
  cl_el_effects_reset(&fx);
  cl_el_step(el, 1, &in, &fx);
  memset(&in, 0, sizeof in);
  in.kind = CL_EL_IN_MESSAGE;
  in.peer_id = "peer";
  in.data = data;
  in.len = size;
  cl_el_effects_reset(&fx);
  cl_el_step(el, 2, &in, &fx);
  cl_el_free(el);
  return 0;
}
