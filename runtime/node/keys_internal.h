/* What keys.c (the ring) gives keys_rotate.c (a change across the cluster). Control
 * loop only. */
#ifndef CL_NODE_KEYS_INTERNAL_H
#define CL_NODE_KEYS_INTERNAL_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "transport/keyring.h"
#include "transport/transport.h"

struct cl_node;

typedef struct {
  uint8_t *k;
  size_t len;
  uint32_t id;
  char fp[CL_FP_LEN + 1]; /* "" until computed */
} cl_nkey;

typedef void (*cl_keys_fp_hook)(struct cl_node *n, uint32_t id, const char *fp, uint64_t op_id, const char *ack_to,
                                uint64_t ack_id);

/* When a node's start-up keys are fingerprinted (cl_node_keys_housekeep, once a second):
 * once it has run CL_KEYS_FP_DELAY_MS and its membership and committed state have been
 * still for CL_KEYS_FP_STILL_MS, CL_KEYS_FP_DELAY_MAX_MS after the start at the latest
 * (or at once when a keys request needs them). Tens of ms of CPU and 8 MiB each must
 * not compete with connecting and electing a master (benchmark rows 3 and 6), nor with
 * a cluster forming: 300 nodes started at once on 2 CPUs spent about half of each start
 * on them, in the middle of the formation (issue 18). Pure: since_start_ms and still_ms
 * are the node's time since it started and since its membership or state last changed. */
#define CL_KEYS_FP_DELAY_MS 1000
#define CL_KEYS_FP_STILL_MS 2000
#define CL_KEYS_FP_DELAY_MAX_MS 30000
static inline int cl_keys_fp_due(uint64_t since_start_ms, uint64_t still_ms) {
  if (since_start_ms < CL_KEYS_FP_DELAY_MS) return 0;
  return still_ms >= CL_KEYS_FP_STILL_MS || since_start_ms >= CL_KEYS_FP_DELAY_MAX_MS;
}

/* The node's keyring (keys.c), a part of the node (cl_node.keys) */
typedef struct cl_node_keys {
  int live, started; /* loaded; the transport runs */
  uint64_t gen;      /* bumped at stop: late workers are ignored */
  cl_nkey keys[CL_KEYRING_MAX];
  size_t n_keys;
  uint32_t next_id;
  char path[4096];
  cl_transport_key tk[CL_KEYRING_MAX];
  int fp_started;
  uint64_t fp_since_ms; /* loop time the node started (cl_keys_fp_due) */
  cl_keys_fp_hook hook;
} cl_node_keys;

/* Changes across the cluster in flight (keys_rotate.c), a part of the node
 * (cl_node.keys_rot) */
typedef struct cl_keys_rotation {
  struct cl_keys_op *ops;
  uint64_t next_op;
  struct cl_keys_held *held; /* members' requests that came before our fingerprints */
  size_t n_held;
} cl_keys_rotation;

int cl_keys_live(const struct cl_node *n);                  /* the node runs, with its transport */
const cl_nkey *cl_keys_at(const struct cl_node *n, int i);  /* NULL out of range */
int cl_keys_by_fp(const struct cl_node *n, const char *fp); /* index, or -1 */
int cl_keys_pending(const struct cl_node *n);               /* some fingerprint is not computed yet */
json_t *cl_keys_brief_json(const struct cl_node *n);        /* [{"fp", "primary"}], primary first */
/* 0 (added set when it is new) or -1 with err; the checks of an installed key */
int cl_keys_install(struct cl_node *n, const uint8_t *k, size_t len, cl_nkey **out, int *added, char *err,
                    size_t errlen);
/* 1 changed, 0 nothing to do, -1 refused (err) */
int cl_keys_use(struct cl_node *n, const char *fp, char *err, size_t errlen);
int cl_keys_remove(struct cl_node *n, const char *fp, char *err, size_t errlen);
/* after a change: the transport, the keyring file, Lua. NULL, or why the file could not
 * be written (in err) */
const char *cl_keys_ring_changed(struct cl_node *n, char *err, size_t errlen);
/* computes k's fingerprint in a worker thread; the hook hears of it with op_id, ack_to
 * and ack_id (0, NULL and 0 when nobody waits) */
void cl_keys_fp_start(struct cl_node *n, cl_nkey *k, uint64_t op_id, const char *ack_to, uint64_t ack_id);
void cl_keys_fp_start_all(struct cl_node *n); /* the start-up keys' now, not after the delay */
void cl_keys_set_fp_hook(struct cl_node *n, cl_keys_fp_hook h);

#endif
