/* The node on the control loop: owns the transport, the election and the admin
 * endpoint; Lua reaches it only through commands, and hears from it through events. */
#ifndef CL_NODE_H
#define CL_NODE_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/control.h"

enum {
  CL_CMD_NODE_START = CL_CMD_NODE_BASE, /* id = (uintptr_t)cl_node_config*, answered via its semaphore */
  CL_CMD_NODE_WANT,                     /* name */
  CL_CMD_NODE_UNWANT,                   /* name */
  CL_CMD_NODE_SEND,                     /* name, body = bytes, id = (uintptr_t)cl_peerq* */
  CL_CMD_NODE_LEAVE,                    /* id = (uintptr_t)uv_sem_t*, posted once the peers were told */
  CL_CMD_NODE_FAULT,     /* name = peer, body = spec */
  CL_CMD_NODE_EL_UPDATE, /* id = Lua's request id, num = base version, body = metadata blob */
  CL_CMD_NODE_EL_EXCLUDE,/* id = Lua's request id, body = comma-separated names */
  CL_CMD_NODE_EL_CLEAR,  /* id = Lua's request id, num = wait_for_removal */
  CL_CMD_NODE_RELOAD_DONE, /* id = the node's request id (requests.c), num = HTTP status, body = JSON answer */
  CL_CMD_NODE_DISCONNECT,  /* name: drop it, and neither dial nor accept it until WANT */
  CL_CMD_NODE_EVENT,       /* name = kind, body = JSON object: an event born in Lua, for GET /_events */
  CL_CMD_NODE_DATA_OPEN,   /* name: open a data connection to it, num = its incarnation (CL_EVT_NODE_DATA answers) */
};

enum {
  CL_EVT_NODE_UP = CL_EVT_NODE_BASE, /* name, body = cl_evt_up */
  CL_EVT_NODE_DOWN,                  /* name, body = reason */
  CL_EVT_NODE_MSG,                   /* name = from, body = bytes */
  CL_EVT_NODE_SHUTDOWN,              /* SIGTERM/SIGINT: peers were told; Lua should exit */
  CL_EVT_NODE_MASTER,                /* name = new master or "", body = old master, num = term */
  CL_EVT_NODE_QUORUM,                /* num = 1 regained, 0 lost */
  CL_EVT_NODE_COMMITTED,             /* num = version, body = metadata blob */
  CL_EVT_NODE_DONE,                  /* id = Lua's request id, name = code ("" ok), body = message; num = version */
  CL_EVT_NODE_LUA_PING,              /* num = sequence number: measures Lua lag */
  CL_EVT_NODE_RELOAD,                /* admin POST /_reload: id = the node's request id, for RELOAD_DONE */
  CL_EVT_NODE_KEYRING,               /* the keyring changed: body = the keys, one a line, primary first */
  CL_EVT_NODE_DATA,                  /* name: a data connection with it, num = its incarnation; body =
                                        cl_evt_data then its bytes, or empty: the one asked for failed */
};

typedef struct {
  uint32_t rtt_us;
  uint64_t incarnation;
  char id[65];
  char address[128];
  char roles[256];
  uint8_t data_ok; /* both sides open data connections: one opens on the first message */
} cl_evt_up;

/* CL_EVT_NODE_DATA: the body is this, then pre_out_len + pre_in_len bytes (see
 * cl_data_conn). Data connections open on demand (docs/design.md, "Data connections on
 * the Lua loop"): dialled when Lua first sends to the peer, or accepted when the peer
 * first sends to this node. */
typedef struct {
  int fd;
  int encrypt;
  uint8_t key_tx[32], key_rx[32];
  uint8_t key_hs[32], key_sess[32], sid[32]; /* see cl_data_conn */
  uint32_t pre_out_len, pre_in_len;
} cl_evt_data;

/* Per-peer bytes handed to the control loop but not yet to the transport: bounds what a
 * fast sender can queue for a slow or stopped peer (ENOBUFS). Shared by both threads. */
typedef struct cl_peerq {
  _Atomic int64_t pending;
  _Atomic int full; /* the transport refused for lack of room; cleared when it drains */
} cl_peerq;
struct cl_node;
cl_peerq *cl_node_peerq(struct cl_node *n, const char *name); /* any thread; lives until the node stops */

/* Bytes of received user messages waiting for Lua. Messages are not refused while this
 * stays under CL_MSG_BACKLOG_MAX, so a burst that Lua takes a moment to drain is not
 * lost; past it the node drops (counted and logged), since the connection also carries
 * heartbeats and cannot simply stop being read. */
#define CL_MSG_BACKLOG_MAX (256ll << 20)
/* Lua thread: a received message of that many bytes left the backlog */
void cl_node_msg_taken(struct cl_node *n, size_t bytes);

typedef struct cl_node_config {
  char *name, *id, *cluster, *roles, *data, *admin, *admin_token, *log_subsys;
  char *initial_master_nodes; /* comma-separated */
  uint8_t *cookie;
  size_t cookie_len;
  char *keyring;      /* or the keyring: keys one a line, primary first (then cookie is unused) */
  size_t keyring_len;
  char *keyring_path; /* where a changed keyring is written (--keyring-file or DATA/keyring) */
  int encrypt, mesh;
  int new_id;    /* id was just made: write it to DATA/node_id once the checks passed */
  int data_conn; /* user messages on a data connection owned by the Lua loop (default) */
  uint32_t max_frame, heartbeat_ms, timeout_ms, send_queue_max, reconnect_timeout_ms;
  uint32_t watchers; /* transport.watchers (0: the transport's default) */
  uint32_t full_mesh_max, idle_close_ms, large_timeout_ms, large_heartbeat_ms; /* transport.* (0: the transport's defaults) */
  uint32_t el_heartbeat_ms, el_check_timeout_ms, el_lua_stepdown_ms, el_max_exclusions;
  uint32_t el_max_nodes, el_max_voting_nodes; /* 0: the core's defaults */
  /* answer */
  uv_sem_t done;
  int rc;
  char err[512];
} cl_node_config;
void cl_node_config_free(cl_node_config *c);

/* The node (one per process, made by main.c before the control loop starts it; freed
 * after both loops stopped). Its hooks take it as their ud. */
struct cl_node *cl_node_new(void); /* NULL: out of memory */
void cl_node_free(struct cl_node *n);
extern const cl_control_hooks cl_node_hooks;

#endif
