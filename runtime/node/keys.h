/* The node's keyring: keys.c owns the keys, computes their fingerprints off the loop,
 * hands the transport what it needs, keeps the keyring file and tells Lua;
 * keys_rotate.c applies a change to every member of the cluster. Control loop only. */
#ifndef CL_NODE_KEYS_H
#define CL_NODE_KEYS_H
#include <jansson.h>
#include <stddef.h>

#include "transport/transport.h"

/* the channel of rotation requests and answers between nodes (CL_CH_ELECTION = 1,
 * CL_CH_LUA = 2: node_internal.h) */
#define CL_CH_KEYS 3

struct cl_node;
struct cl_node_config;

/* Before the transport starts: loads the ring from cfg (keyring text, else the cookie)
 * into keys/n_keys for cl_transport_config. 0 or -1 (cfg->err set). */
int cl_node_keys_load(struct cl_node *n, struct cl_node_config *cfg, const cl_transport_key **keys, size_t *n_keys);
/* Once the transport runs: the fingerprints follow (cl_node_keys_housekeep). */
void cl_node_keys_started(struct cl_node *n);
/* The node's housekeeping, once a second: starts computing the start-up keys'
 * fingerprints in worker threads when cl_keys_fp_due (keys_internal.h) says so; still_ms
 * is how long the membership and the committed state have been still. */
void cl_node_keys_housekeep(struct cl_node *n, uint64_t now, uint64_t still_ms);
/* The node stops: forget the keys (zeroed); late worker answers are dropped. */
void cl_node_keys_stop(struct cl_node *n);
/* keys_rotate.c: start hearing of computed fingerprints (after cl_node_keys_started);
 * stop: drop the operations in flight (their callbacks are not called) */
void cl_node_keys_rotate_start(struct cl_node *n);
void cl_node_keys_rotate_stop(struct cl_node *n);
/* A message on CL_CH_KEYS from an authenticated peer. */
void cl_node_keys_message(struct cl_node *n, const char *from, const uint8_t *data, size_t len);

enum { CL_KEYS_LIST = 1, CL_KEYS_INSTALL, CL_KEYS_USE, CL_KEYS_REMOVE };
/* Applies op (with arg: the key for INSTALL, a fingerprint for USE/REMOVE) here and on
 * every member, then calls done(ud, status, answer) once every member answered or 3 s
 * passed (answer is stolen by done). status: 200 when every member acknowledged, 400
 * when this node refused the request (nothing was changed anywhere), 502 otherwise.
 * local_only: this node alone (no fan-out). */
typedef void (*cl_keys_done)(void *ud, int status, json_t *answer);
void cl_node_keys_op(struct cl_node *n, int op, const uint8_t *arg, size_t arglen, int local_only,
                     cl_keys_done done, void *ud);

/* This node's keys, primary first: [{"fingerprint", "primary", "handshakes",
 * "auth_failures", "connections"}] (fingerprint null until computed). */
json_t *cl_node_keys_json(struct cl_node *n);

#endif
