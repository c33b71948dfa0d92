/* Shared between the election core's files; not part of the API. */
#ifndef CL_ELECTION_INTERNAL_H
#define CL_ELECTION_INTERNAL_H

#include "election.h"
/* relative: the election is built alone too (tests, simulator), without -Iruntime */
#include "../core/name.h"

/* 2: every message carries the sender's cluster id (refusing foreign nodes);
 * 3: no fixed node cap: counts up to CL_EL_MAX_NODES_HARD, a state's nodes sorted by id;
 * 4: publications as diffs (PUBLISH_DIFF) and the "need the whole state" answer;
 * 5: JOIN and START_JOIN carry a durability flag (RULE E15: lazy terms off the configurations) */
#define CL_WIRE_VERSION 5
#define CL_PERSIST_VERSION 1

enum {
  CL_M_PREVOTE_REQ = 1,
  CL_M_PREVOTE_RESP,
  CL_M_START_JOIN,
  CL_M_JOIN,
  CL_M_PUBLISH,
  CL_M_PUBLISH_RESP,
  CL_M_COMMIT,
  CL_M_HB,
  CL_M_HB_RESP,
  CL_M_LEADER_GONE,
  CL_M_FWD_REQ,
  CL_M_FWD_RESP,
  CL_M_PUBLISH_DIFF, /* the changes from a base state, named by its (term, version) (RULE E13) */
  CL_M_MAX_
};

/* heartbeat response status */
enum { CL_HB_OK = 0, CL_HB_STALE_TERM = 1, CL_HB_CLUSTER_MISMATCH = 2, CL_HB_LAGGING = 3 };
/* PUBLISH_RESP flag: not accepted, accepted (durable if this node votes), or "send me
 * the whole state" (a diff whose base this node does not hold) */
enum { CL_PUB_REFUSED = 0, CL_PUB_ACCEPTED = 1, CL_PUB_NEED_FULL = 2 };
/* forwarded request kinds */
enum { CL_REQ_UPDATE = 1, CL_REQ_EXCLUDE = 2, CL_REQ_CLEAR = 3 };

typedef struct cl_buf {
  uint8_t *p;
  size_t n, cap;
  int oom;
} cl_buf;

void cl_buf_u8(cl_buf *b, uint8_t v);
void cl_buf_u32(cl_buf *b, uint32_t v);
void cl_buf_u64(cl_buf *b, uint64_t v);
void cl_buf_str(cl_buf *b, const char *s);
void cl_buf_bytes(cl_buf *b, const uint8_t *p, uint32_t n);
void cl_buf_raw(cl_buf *b, const uint8_t *p, size_t n); /* no length prefix */
void cl_buf_free(cl_buf *b);

/* A publication as a diff (RULE E13): what changed from the base state, which is named
 * by its (term, version) (a (term, version) names one state: RULE E5), so it applies
 * only to a node that holds exactly that base; any other node answers NEED_FULL. The
 * node lists are sorted by id (one merge pass applies them); the configurations and the
 * exclusions are small (E12, CL_EL_MAX_EXCL) and sent whole; the metadata only when it
 * changed. Decoded lists are heap arrays reused across messages. */
typedef struct cl_diff {
  char cluster_id[CL_EL_CLUSTER_ID_MAX + 1];
  uint64_t term, version;
  char master_id[CL_EL_ID_MAX + 1];
  uint64_t base_term, base_version;
  uint32_t n_add, n_chg, n_del, cap_add, cap_chg, cap_del;
  cl_el_node *add, *chg; /* nodes added, nodes whose record changed */
  cl_el_id *del;         /* ids of nodes removed */
  cl_el_vconfig committed_config, accepted_config;
  uint32_t n_excl;
  cl_el_excl excl[CL_EL_MAX_EXCL];
  uint8_t meta_changed;
  uint64_t meta_version;
  char meta_origin[CL_EL_ID_MAX + 1];
  uint64_t meta_req;
  const uint8_t *meta; /* points into the decoded buffer */
  uint32_t meta_len;
} cl_diff;

void cl_diff_init(cl_diff *d);
void cl_diff_clear(cl_diff *d);
/* The body of a PUBLISH_DIFF from base to next (both sorted by id): appended to b. */
void cl_diff_encode(const cl_el_state *base, const cl_el_state *next, cl_buf *b);
/* out = base + d (diff.c). -1 with err if d does not fit base (other base, a node added
 * that base holds, one changed or removed that it lacks): the caller asks for the whole
 * state. out must be initialised; it is left valid either way. */
int cl_diff_apply(const cl_el_state *base, const cl_diff *d, cl_el_state *out, char *err, size_t errlen);

typedef struct cl_msg {
  uint8_t type;
  uint64_t term, lat, lav, version;
  uint8_t flag;
  /* every message: the cluster the sender's committed data belongs to ("" if
   * none yet), so a node from another cluster is refused before its term
   * counts for anything */
  char cluster_id[CL_EL_CLUSTER_ID_MAX + 1];
  uint64_t req_id, base_version;
  uint8_t req_kind;
  const uint8_t *blob; /* points into the decoded buffer */
  uint32_t blob_len;
  uint32_t n_names;
  char names[CL_EL_MAX_EXCL][CL_EL_NAME_MAX + 1];
  char code[16];
  char text[CL_EL_MSG_MAX];
  cl_el_state *state; /* PUBLISH: decoded into this (caller provides) */
  cl_diff *diff;      /* PUBLISH_DIFF: decoded into this (cl_msg_decode_into); to encode,
                         blob/blob_len hold the body from cl_diff_encode */
} cl_msg;

void cl_msg_encode(const cl_msg *m, cl_buf *b);
/* st may be NULL for anything but PUBLISH (then a PUBLISH is only validated). */
int cl_msg_decode(const uint8_t *buf, size_t len, cl_msg *m, cl_el_state *st, char *err, size_t errlen);
/* The same, with the counts of a state bounded by max_nodes (the node's election.max_nodes)
 * as well as by CL_EL_MAX_NODES_HARD, before anything is allocated for them. */
int cl_msg_decode_max(const uint8_t *buf, size_t len, cl_msg *m, cl_el_state *st, uint32_t max_nodes, char *err,
                      size_t errlen);

/* The same, with a PUBLISH_DIFF decoded into diff (NULL: only validated). */
int cl_msg_decode_into(const uint8_t *buf, size_t len, cl_msg *m, cl_el_state *st, cl_diff *diff, uint32_t max_nodes,
                       char *err, size_t errlen);

void cl_state_encode(const cl_el_state *st, cl_buf *b);

/* The persisted file's flags byte: bit 0, the accepted state is committed;
 * bit 1, its cluster id was committed (by it or an earlier state), so the
 * node knows its cluster after a reboot in the middle of a publication. */
enum { CL_PERSIST_COMMITTED = 1, CL_PERSIST_CID_COMMITTED = 2 };
int cl_persist_encode(uint64_t term, const cl_el_state *st, int flags, uint8_t **out, size_t *outlen);
int cl_persist_decode(const uint8_t *buf, size_t len, uint64_t *term, cl_el_state *st, int *flags, char *err,
                      size_t errlen);

/* configs (config.c) */
int cl_vc_has(const cl_el_vconfig *c, const char *id);
/* 0, or -1 out of memory */
int cl_vc_add(cl_el_vconfig *c, const char *id);
int cl_vc_reserve(cl_el_vconfig *c, uint32_t n);
int cl_vc_eq(const cl_el_vconfig *a, const cl_el_vconfig *b);
int cl_vc_is_placeholder(const char *id);
/* count of ids in c for which has(ctx, id) is true, compared with the quorum */
int cl_vc_quorum(const cl_el_vconfig *c, int (*has)(void *, const char *), void *ctx);
const cl_el_node *cl_state_node(const cl_el_state *st, const char *id);
/* n records of a and b alike, in order (by content: copies share strings, equal ones
 * from elsewhere need not) */
int cl_node_lists_eq(const cl_el_node *a, const cl_el_node *b, uint32_t n);
/* Reconfigurator: target configuration from live eligible ids (sorted), master first,
 * at most max_voting ids (0: no cap). out must be initialised ({0} or a configuration). */
int cl_reconfigure(const cl_el_vconfig *cur, const char *const *live, size_t n_live,
                   const cl_el_excl *excl, size_t n_excl, const char *master_id,
                   uint32_t max_voting, cl_el_vconfig *out);
/* Checks the initial_master_nodes list; returns 0 or -1 with err. */
int cl_check_initial_list(const char *const *list, size_t n, char *err, size_t errlen);

#endif
