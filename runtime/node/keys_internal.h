/* What keys.c (the ring) gives keys_rotate.c (a change across the cluster). Control
 * loop only. */
#ifndef CL_NODE_KEYS_INTERNAL_H
#define CL_NODE_KEYS_INTERNAL_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/keyring.h"

struct cl_node;

typedef struct {
  uint8_t *k;
  size_t len;
  uint32_t id;
  char fp[CL_FP_LEN + 1]; /* "" until computed */
} cl_nkey;

struct cl_node *cl_keys_node(void);
int cl_keys_live(void);              /* the node runs, with its transport */
const cl_nkey *cl_keys_at(int i);    /* NULL out of range */
int cl_keys_by_fp(const char *fp);   /* index, or -1 */
int cl_keys_pending(void);           /* some fingerprint is not computed yet */
json_t *cl_keys_brief_json(void);    /* [{"fp", "primary"}], primary first */
/* 0 (added set when it is new) or -1 with err; the checks of an installed key */
int cl_keys_install(const uint8_t *k, size_t len, cl_nkey **out, int *added, char *err, size_t errlen);
/* 1 changed, 0 nothing to do, -1 refused (err) */
int cl_keys_use(const char *fp, char *err, size_t errlen);
int cl_keys_remove(const char *fp, char *err, size_t errlen);
/* after a change: the transport, the keyring file, Lua. NULL, or why the file could not
 * be written (in err) */
const char *cl_keys_ring_changed(char *err, size_t errlen);
/* computes k's fingerprint in a worker thread; the hook hears of it with op_id, ack_to
 * and ack_id (0, NULL and 0 when nobody waits) */
void cl_keys_fp_start(cl_nkey *k, uint64_t op_id, const char *ack_to, uint64_t ack_id);
void cl_keys_fp_start_all(void); /* the start-up keys' now, not after the delay */
typedef void (*cl_keys_fp_hook)(uint32_t id, const char *fp, uint64_t op_id, const char *ack_to, uint64_t ack_id);
void cl_keys_set_fp_hook(cl_keys_fp_hook h);

#endif
