/* What the node's parts on the control loop share (node.c, node_election.c,
 * node_admin.c). Nothing here is touched from the Lua thread. */
#ifndef CL_NODE_INTERNAL_H
#define CL_NODE_INTERNAL_H
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "election/election.h"
#include "node/el_driver.h"
#include "node/keys_internal.h"
#include "node/lua_lag_check.h"
#include "node/roles.h"
#include "node/state_json.h"
#include "core/log.h"
#include "admin/metrics.h"
#include "node/node.h"
#include "transport/transport.h"

enum { CL_CH_ELECTION = 1, CL_CH_LUA = 2 };


/* One a peer ever seen, so small: it was 808 bytes (the name and node_up's whole event
 * inline), 0.24 MiB of each node's RssAnon at 300 nodes (issue 18 sets 4 MiB) */
typedef struct {
  char *name; /* heap, as long as it is */
  char id[CL_EL_ID_MAX + 1];
  int up;
  int lua_up; /* Lua was told it is up (a data connection is then given to Lua only) */
  uint64_t incarnation; /* the life Lua was told of: a data connection of another is dropped */
} cl_node_peer;

/* how long a leaving node waits for a peer that does not read its LEAVE */
#define CL_LEAVE_WAIT_MS 1000


struct cl_node;
typedef struct cl_node_admin cl_node_admin;

/* The admin endpoint as the node sees it. admin/node_admin.c installs it
 * (cl_node_admin_install, called by main.c), so the node links no admin code and the
 * dependency runs one way: admin routes -> node. */
typedef struct cl_node_admin_ops {
  int (*start)(struct cl_node *n, char *err, size_t errlen);
  void (*stop)(struct cl_node *n);
  /* the answers to what the admin asked (priv: the admin's reply handle) */
  void (*reload_done)(struct cl_node *n, void *priv, int status, const char *json);
  void (*complete)(struct cl_node *n, void *priv, const char *code, const char *msg, uint64_t version);
  /* an event for the event stream: kind and its fields (borrowed) */
  void (*event)(struct cl_node *n, const char *kind, json_t *fields);
} cl_node_admin_ops;

/* Who asked: Lua (by its own request id) or the admin endpoint (by its reply handle). */
enum { CL_REQ_FROM_LUA = 1, CL_REQ_FROM_ADMIN = 2 };
typedef struct {
  uint64_t id; /* the node's */
  int origin;
  uint64_t origin_id; /* Lua's request id */
  void *priv;         /* the admin's reply handle */
} cl_node_req;

typedef struct cl_node {
  cl_control *c;
  const cl_node_admin_ops *admin_ops; /* NULL: no admin endpoint */
  cl_node_config *cfg;
  cl_transport *t;
  struct cl_admin *admin;
  /* the admin endpoint's own state (admin/node_admin.c's; opaque here), while it runs */
  struct cl_node_admin *admin_state;
  uv_signal_t sigterm, sigint;
  uv_timer_t drain_timer;
  int running, leaving, left;
  /* leaving: the LEAVE frames are on their way; left: written (or the wait is over).
   * leave_signal: a signal started it, so Lua gets CL_EVT_NODE_SHUTDOWN; leave_sem:
   * clusterlua.leave() waits on it. */
  uv_timer_t leave_timer;
  uint64_t leave_start_ms;
  int leave_signal;
  uv_sem_t *leave_sem;
  /* grown as peers appear (no fixed cap: the election's max_nodes is the policy); a
   * pointer into it is never kept across callbacks, as adding may move it. Kept for the
   * node's life (freed by cl_node_free). */
  cl_node_peer *peers;
  int n_peers, cap_peers;
  /* peers by name (peers.c): open addressing, each slot a position + 1 (0: empty), at
   * most half full; rebuilt when it grows and when a peer is forgotten */
  uint32_t *pidx;
  uint32_t pidx_cap;
  /* the other voting nodes, pinned in the transport (node_election.c): the signature of
   * what the pinned set was computed from */
  uint64_t pins_sig;
  int pins_known;
  int el_can_lead; /* master-eligible and not voting-only: may become master (pins_update) */

  /* election: the driver owns the core; el is the driver's, for reading */
  cl_eldrv drv;
  cl_eldrv_io io;
  cl_el *el;
  /* the committed state Lua was last given (node_election.c, emit_committed): the next
   * commit goes to Lua as a delta against it */
  cl_el_state lua_state;
  int lua_state_set;
  char *imn_buf; /* initial_master_nodes, split in place; imn_list points into it */
  const char *imn_list[CL_EL_MAX_INITIAL + 1];
  uv_timer_t el_timer;
  uint64_t el_due;        /* when el_timer was set to fire (loop time) */
  int el_after_poll;      /* el_timer is the look again after a late one's poll */
  uint32_t el_grace_unit; /* leader_timeout_ms: the election's grace is this x awareness */
  uint32_t el_hb_ms;      /* the election's heartbeat interval: late is half of it */
  char state_path[4096];
  uint64_t elections;      /* master changes seen */
  uint64_t persist_count;
  cl_histogram persist_seconds; /* Prometheus base units */
  cl_histogram rtt_seconds;
  uint64_t wall_offset_ms; /* wall clock minus loop time, to render loop timestamps */
  uint64_t started_ms;     /* loop time when the node started */
  uint64_t req_salt;       /* added to request ids: unique across restarts (node_election.c) */
  uint64_t req_next;
  cl_node_req *reqs; /* in flight (requests.c) */
  size_t n_reqs, reqs_cap;
  uint64_t rtt_sampled_ms; /* the last sample of the round-trip histogram */
  uint64_t trim_mark, trim_changed_ms; /* node.c, still_ms: what the membership and the state were, and since when */
  int trim_due;

  /* Lua lag: the control loop pings Lua through the event queue (lua_lag.c) */
  uv_timer_t lag_timer;
  int lag_on;
  cl_lag lag;
  uint32_t lua_stepdown_ms;

  /* the keyring (keys.c) and the changes across the cluster in flight (keys_rotate.c) */
  cl_node_keys keys;
  cl_keys_rotation keys_rot;

  /* per-peer send accounting, shared with the Lua thread (under peerq_mu), and the bytes
   * of received messages waiting for Lua (CL_MSG_BACKLOG_MAX) */
  uv_mutex_t peerq_mu;
  struct peerq_entry *peerq_head;
  _Atomic int64_t msg_backlog;

  uint64_t msgs_dropped;
  cl_ratelimit drop_rl;
  uint64_t reloads;
} cl_node;


/* peers.c */
cl_node_peer *cl_node_peer_by_name(cl_node *n, const char *name);
cl_node_peer *cl_node_peer_by_id(cl_node *n, const char *id);
cl_node_peer *cl_node_peer_add(cl_node *n, const char *name); /* NULL when out of memory */
void cl_node_peer_forget(cl_node *n, const char *name);      /* a peer that is down */
const char *cl_node_exclusion_target(cl_node *n, const char *name);
/* 0 queued, -1 not (out of memory, or a full queue in CL_Q_NORMAL mode: counted) */
int cl_node_emit(cl_node *n, uint32_t type, const char *name, const void *body, size_t len, uint64_t id,
                 int64_t num, int mode);

/* requests.c */
/* A new id for a request from origin; 0 when too many are in flight. */
uint64_t cl_node_req_add(cl_node *n, int origin, uint64_t origin_id, void *priv);
/* Finds and forgets request id: 1 with *out filled, 0 if it is not in flight. */
int cl_node_req_take(cl_node *n, uint64_t id, cl_node_req *out);
void cl_node_reqs_free(cl_node *n);
/* POST /_reload: asks Lua; its answer goes to admin_ops->reload_done. -1: too many. */
int cl_node_reload_request(cl_node *n, void *priv);

/* node.c */
void cl_node_set_admin(cl_node *n, const cl_node_admin_ops *ops);
/* housekeeping soon: a send queue filled, or a peer waits for its data connection */
void cl_node_drain_soon(cl_node *n);

/* node_election.c */
/* reads and checks the persisted state; writes nothing (cl_node_election_run does) */
int cl_node_election_start(cl_node *n, char *err, size_t errlen);
void cl_node_election_run(cl_node *n);
/* write, fsync, rename, fsync the directory; the file gets mode 0600 */
int cl_node_write_atomic(const char *path, const uint8_t *data, size_t len, char *err, size_t errlen);
void cl_node_election_stop(cl_node *n);
void cl_node_election_input(cl_node *n, const cl_el_input *in);
/* A request (in->kind CL_EL_IN_REQUEST_*) on behalf of origin: the node gives it its id,
 * and the answer goes back to the asker. 0, or -1 when too many are in flight. */
int cl_node_election_request(cl_node *n, cl_el_input *in, int origin, uint64_t origin_id, void *priv);
void cl_node_election_peer_up(cl_node *n, const cl_peer_info *p);
void cl_node_election_peer_down(cl_node *n, const char *name);
void cl_node_election_message(cl_node *n, const char *from, const uint8_t *data, size_t len);

/* lua_lag.c */
void cl_node_lua_lag_start(cl_node *n);
void cl_node_lua_lag_stop(cl_node *n);
/* the Lua lag to report now (takes Lua's latest answer in first) */
uint64_t cl_node_lua_lag_ms(cl_node *n);


/* report.c: events for the admin endpoint's stream */
int cl_node_reporting(const cl_node *n);                         /* 1: someone listens */
void cl_node_report(cl_node *n, const char *kind, json_t *fields); /* fields stolen */
void cl_node_report_from_lua(cl_node *n, const char *kind, const void *json, size_t len);

/* state_json.c: cl_state_json (and its delta) with this node's cluster name and peers */
json_t *cl_node_state_json(cl_node *n, const cl_el_state *st);
json_t *cl_node_state_json_delta(cl_node *n, const cl_el_state *base, const cl_el_state *st);

#endif
