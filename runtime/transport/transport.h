/* The node-to-node transport: named nodes, authenticated (and by default encrypted)
 * connections, heartbeats and failure detection, ordered messages per pair.
 *
 * Threading: every function here runs on the loop given to cl_transport_new (the
 * control loop) and nowhere else; callbacks are called on that loop too. Nothing in
 * the transport is global, so several instances may share one loop (the tests do).
 *
 * Strings handed to callbacks (names, peer info) are valid only during the call. */
#ifndef CL_TRANSPORT_H
#define CL_TRANSPORT_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Return codes: libuv's values, so uv_err_name()/uv_strerror() name them. */
enum {
  CL_OK = 0,
  CL_ENOTCONN = UV_ENOTCONN, /* no authenticated connection to that node now */
  CL_ENOBUFS = UV_ENOBUFS,   /* that peer's send queue is over send_queue_max */
  CL_E2BIG = UV_E2BIG,       /* message larger than max_frame allows */
  CL_EINVAL = UV_EINVAL,     /* bad argument: channel 0, malformed name, ... */
  CL_EPERM = UV_EPERM,       /* fault layer used without CLUSTERLUA_FAULTS=1 */
};

/* node names, NAME@HOST[:PORT]: cl_node_name_parse and the short-name rule */
#include "core/name.h"

/* ---- configuration ---- */

typedef struct cl_transport cl_transport;

/* One key of the keyring as handed to the transport. The transport keeps only keys
 * derived from it (the handshake's and the sessions'), never the key itself. */
typedef struct {
  const uint8_t *key;
  size_t len;
  uint32_t id;       /* the caller's, stable while the key stays in the ring; never 0 */
  const char *fp;    /* its fingerprint, or NULL/"" until known (cl_transport_key_fingerprint) */
} cl_transport_key;

typedef struct {
  const char *self_name;     /* full "node1@127.0.0.1:4371"; host:port is where we listen */
  const char *node_id;       /* 32 hex chars, persisted by the glue */
  const char *cluster;       /* cluster name: part of the handshake */
  const uint8_t *cookie;     /* never logged, never on the wire: a keyring of one (id 1) */
  size_t cookie_len;
  const cl_transport_key *keys; /* or the keyring, keys[0] the primary (1..16 keys);
                                   when given, cookie is ignored */
  size_t n_keys;
  const char *roles;         /* comma list, carried in the handshake so peers know it */
  int encrypt;               /* default 1: AEAD after the handshake; 0: authenticated only.
                                Both sides must agree, else the handshake is refused. */
  uint32_t max_frame;        /* default 16 MiB: largest message; checked before allocating */
  uint32_t heartbeat_ms;     /* default 200 (at most half of timeout_ms) */
  uint32_t timeout_ms;       /* default 400: silent this long => down "timeout" */
  uint32_t large_timeout_ms; /* default 2000 (at least timeout_ms): above full_mesh_max
                                members, the timeout toward every peer, the pinned
                                (voting) ones included; timeout_ms in a mesh */
  uint32_t large_heartbeat_ms; /* default half of large_timeout_ms (1000), at most 1000,
                                at least heartbeat_ms; never above half of
                                large_timeout_ms: above
                                full_mesh_max members, the beat interval a node asks of
                                the peers it watches (WATCH) */
  uint32_t handshake_timeout_ms; /* default 2000 */
  uint32_t send_queue_max;   /* default 64 MiB: per-peer bound in bytes; beyond => CL_ENOBUFS */
  uint32_t backoff_min_ms;   /* default 50: first re-dial delay; doubles, with jitter */
  uint32_t backoff_max_ms;   /* default 5000 */
  uint32_t reconnect_timeout_ms; /* default 24 h (Serf's reconnect_timeout): a peer that
                                failed and that nobody wants (cl_transport_want) is
                                re-dialled this long after it went down, then forgotten */
  uint32_t watchers;         /* default 3 (at most 64): each node watches this many peers
                                (its successors on a ring of node-name hashes, watch.h)
                                and is watched by about as many; 0 = the default */
  int mesh;                  /* default 1: learn peers' peers (members) and, in a cluster of
                                at most full_mesh_max nodes, connect to them */
  uint32_t full_mesh_max;    /* default 32: up to this many members (this node included)
                                every node connects to every other; above it a node holds
                                only the connections it needs (design.md §5) */
  uint32_t idle_close_ms;    /* default 10000: above full_mesh_max, a connection this node
                                opened and no longer needs is closed (IDLE: no node_down)
                                after this long without a message */
  uint32_t redial_failed_ms; /* default 10000: above full_mesh_max, each interval this node
                                dials one failed member, picked at random (Serf's
                                reconnect_interval, one node per node per interval) */
  uint32_t reach_dials_per_tick; /* default 32: a voting node that begins to reach every
                                member (cl_transport_reach_all) dials this many a tick */
  uint32_t max_learned_peers; /* default 10000: peers learned through the mesh (a bound
                                 even an authenticated peer cannot push past); the node
                                 sets it to election.max_nodes */
  int data_conns;            /* default 0 here (the node turns it on): a second, data
                                connection with the same handshake, opened on demand
                                (cl_transport_data_open) or accepted from the peer, and
                                handed over through the data_conn callback (see below) */
  uint64_t incarnation;      /* default 0 = chosen at start (wall-clock µs): a restarted
                                node must present a larger one to replace its old link */
  const char *log_subsys;    /* the bracket in log lines, e.g. the topology name;
                                default "transport" */
} cl_transport_config;

void cl_transport_config_defaults(cl_transport_config *);

/* ---- callbacks ---- */

typedef struct {
  const char *name;      /* full node name */
  const char *node_id;
  const char *address;   /* "host:port" of the live connection (or the named one) */
  const char *roles;
  uint64_t incarnation;
  uint32_t rtt_us;       /* round trip: the handshake's at first, then the smoothed
                            heartbeat's; 0 only for a peer never connected */
  uint64_t since_ms;     /* uv_now() when it came up (or went down, if !connected) */
  uint64_t last_heartbeat_ms; /* uv_now() of the last frame received from it */
  int connected;
  int wanted;            /* cl_transport_want()ed (or learned through mesh) */
  /* "up" (connected), "down" (a member that failed or is kept for the voting
   * configuration: re-dialled), "configured" (wanted but not a member: never connected,
   * left, or down past reconnect_timeout_ms; re-dialled), "disconnected"
   * (cl_transport_disconnect: neither dialled nor accepted) */
  const char *status;
  int data_conns;        /* both sides open data connections (on demand: cl_transport_data_open) */
  const char *fingerprint; /* of the key its connection was authenticated under ("" when
                            not connected or not computed yet) */
} cl_peer_info;

/* An authenticated data connection, handed over to whoever does its I/O (the Lua loop).
 * Everything is the receiver's: fd (close it if unwanted), the keys (zero them after
 * use). pre_out must be written before anything else (the handshake's last frame);
 * pre_in are bytes already read past the handshake, to be decoded first. Both sides'
 * AEAD counters start at 0. */
typedef struct {
  const char *name;
  uint64_t incarnation; /* the peer's, as on its control connection */
  int fd;
  int encrypt;
  uint8_t key_tx[32], key_rx[32];
  /* the key it was authenticated under (derived: handshake and session keys) and the
   * handshake's transcript: what the data plane needs to re-authenticate and re-key it
   * when that key leaves the keyring (cl_dp_set_keyring) */
  uint8_t key_hs[32], key_sess[32], sid[32];
  const uint8_t *pre_out, *pre_in;
  size_t pre_out_len, pre_in_len;
} cl_data_conn;

/* peer_up and peer_down report MEMBERS, not connections: a peer is up from its first
 * authenticated connection, or, in a cluster above full_mesh_max, from when another
 * member lists it; down when it left, when a connection to it closed without an IDLE
 * frame, when this node's detection timed it out, or when another member announced it
 * down (DOWN, forwarded once in a large cluster, so every member hears it). A
 * connection opened or closed for a message (on demand) reports nothing. */
typedef struct {
  void (*peer_up)(void *ud, const cl_peer_info *p);
  void (*peer_down)(void *ud, const char *name, const char *reason); /* "closed" | "timeout" | "left" */
  void (*message)(void *ud, const char *from, uint8_t channel, const uint8_t *data, size_t len);
  void *ud;
  /* optional, with data_conns: a data connection is ready (it owns dc->fd), or could not
   * be opened (dc->fd == -1: use the control connection for that peer) */
  void (*data_conn)(void *ud, const cl_data_conn *dc);
  /* optional: non-zero keeps a departed peer known (listed as down, re-dialled) although
   * the rules below would forget it; the node keeps the voting configuration's members.
   * Asked again at least once a second while it returns non-zero. */
  int (*keep)(void *ud, const char *name, const char *node_id);
  /* optional: the peer is forgotten (no longer listed, dialled or reported) */
  void (*peer_forgotten)(void *ud, const char *name);
} cl_transport_callbacks;

/* Starts listening on self_name's host:port (port 0 is refused: peers must be able to
 * dial the name). Returns NULL with a message in err (bind failure, bad name, no
 * cookie, ...). */
cl_transport *cl_transport_new(uv_loop_t *loop, const cl_transport_config *,
                               const cl_transport_callbacks *, char *err, size_t errlen);

/* Keep connected to name: dial now, re-dial with exponential backoff + jitter (capped at
 * backoff_max_ms) while down, for as long as it is wanted. Idempotent; undoes
 * cl_transport_disconnect. A short name is accepted when it matches exactly one known peer.
 *
 * A peer nobody wants (learned through the mesh, or one that dialled us) is forgotten:
 * at once when it left; when it failed, once reconnect_timeout_ms has passed since it
 * went down (re-dialled until then); in either case only when the keep callback lets go. */
int cl_transport_want(cl_transport *, const char *name);
/* Stop wanting name, nothing more: a live connection stays up (the peer stays a member
 * until it leaves or fails); a peer that is down falls under the rules above. What a
 * discovery source does when it no longer lists a node. */
int cl_transport_unwant(cl_transport *, const char *name);
/* The pinned peers, replacing the previous set (n 0: none; at most CL_PIN_MAX): each is
 * kept connected (dialled like a wanted one, never forgotten while pinned) and always
 * watched, whatever the ring says, so its silence is called down by this node itself
 * within timeout_ms rather than by the ring's cascade (design.md §4). The node pins the
 * other voting nodes on a voting node. A blocked peer (cl_transport_disconnect) stays
 * blocked. 0, CL_EINVAL (a malformed name, too many: nothing changed), CL_ENOBUFS. */
#define CL_PIN_MAX 64
int cl_transport_pin(cl_transport *, const char *const *names, size_t n);
/* on: in a large cluster, hold a connection to every member (dial those not connected,
 * close none as idle), without watching them; off: back to what detection needs, the
 * connections this node opened closing once idle. The node sets it on a voting node
 * that may lead (design.md §4). */
void cl_transport_reach_all(cl_transport *, int on);
/* Drop the connection to name (both sides report "closed") and neither dial it nor
 * accept its connections until cl_transport_want(name): no flap back through the
 * peer's own re-dial or the mesh. */
int cl_transport_disconnect(cl_transport *, const char *name);

/* channel >= 1 (0 is the transport's own); never blocks; copies data; per-pair FIFO.
 * Returns 0, CL_ENOTCONN, CL_ENOBUFS, CL_E2BIG, CL_EINVAL.
 * 0 means queued on a live authenticated connection, or, for a member with none now,
 * queued while one is opened on demand (closed again after idle_close_ms without a
 * message); not delivered. CL_ENOTCONN: not a member that is up. */
int cl_transport_send(cl_transport *, const char *to, uint8_t channel, const void *data, size_t len);
/* Opens a data connection to the peer, connected in this life (incarnation), and hands
 * it over through the data_conn callback; or calls it with fd -1 when it cannot (the
 * peer is gone, or back in a new life, or opens none, or the dial or handshake failed).
 * Exactly one callback per call. Either side may open one; if both do at once, both
 * connections are handed over. */
void cl_transport_data_open(cl_transport *, const char *name, uint64_t incarnation);

/* Tell every peer we leave (they report "left" at once), flush, stop re-dialling.
 * Connections then close; follow with cl_transport_close. */
void cl_transport_leave(cl_transport *);
/* After cl_transport_leave: connections still writing their LEAVE (0: every peer that
 * could be told has been; a peer that does not read holds one until its 1 s deadline). */
size_t cl_transport_leaving(const cl_transport *);
/* Closes everything; done(ud) runs once every handle's close callback has run, after
 * which the transport is freed. No callbacks into the user after this call. */
void cl_transport_close(cl_transport *, void (*done)(void *ud), void *ud);

/* Every known peer (wanted, learned, or ever connected), connected or not. */
void cl_transport_foreach(cl_transport *, void (*fn)(void *ud, const cl_peer_info *), void *ud);
/* The heartbeat round trip of every peer with an open control connection (rtt_us > 0):
 * a walk of the connections only, which are few whatever N in a large cluster (the walk
 * of every peer, once a second for the histogram, was a tenth of a node's CPU at rest
 * at 100 nodes). */
void cl_transport_foreach_rtt(cl_transport *, void (*fn)(void *ud, uint32_t rtt_us), void *ud);
size_t cl_transport_connected_count(const cl_transport *); /* open control connections */
size_t cl_transport_member_count(const cl_transport *);    /* members up, this node excluded */
/* Normalised own name, and the incarnation we present. */
const char *cl_transport_self(const cl_transport *);
uint64_t cl_transport_incarnation(const cl_transport *);
/* Local health (detector.h, cl_det_awareness): 0 while this node's loop runs on time, up
 * to CL_DET_AWARENESS_MAX while it runs late; the glue widens the election's timeouts by
 * this many of its timeouts, as the transport widens every connection's. */
uint32_t cl_transport_awareness(const cl_transport *);
/* Above full_mesh_max members: the large cluster's timeout (large_timeout_ms), which the
 * glue gives the election's checks too; 0 while the cluster is a mesh. */
uint32_t cl_transport_large_timeout(const cl_transport *);
/* Above full_mesh_max members up here (every member large: the hysteresis below it
 * leaves newcomers a mesh), large_heartbeat_ms, which the glue gives the election's
 * master heartbeat too; 0 otherwise. */
uint32_t cl_transport_large_heartbeat(const cl_transport *);
/* Bytes queued but not yet written to name's socket (0 if unknown): lets the glue
 * wait for room after CL_ENOBUFS. */
size_t cl_transport_queued(const cl_transport *, const char *name);

/* Test-only fault layer, refused (CL_EPERM) unless env CLUSTERLUA_FAULTS=1.
 * spec: "drop=0.3" (drop that fraction of outgoing messages), "delay=50" (ms, outgoing),
 * "blackhole" (silently discard both ways, heartbeats too, so timeouts fire),
 * "oneway_in" (discard what we receive from peer), "oneway_out" (discard what we send),
 * "stall" (stop reading the connections open with peer now, as a stopped process: the
 * socket buffers fill and the peer's writes queue), "clear". Several may be combined with commas. peer "*" = every peer. Under blackhole
 * and either oneway, no new connection with that peer forms (dials wait, HELLOs are
 * refused): a real one-way cut lets no handshake through. */
int cl_transport_fault(cl_transport *, const char *peer, const char *spec, char *err, size_t errlen);

typedef struct {
  uint64_t frames_in, frames_out, bytes_in, bytes_out;
  uint64_t handshake_fail_cookie, handshake_fail_cluster, handshake_fail_version,
      handshake_fail_timeout, handshake_fail_garbage, handshake_fail_encrypt,
      handshake_fail_name;
  uint64_t frames_refused_oversize, frames_refused_garbage;
  uint64_t records_sealed; /* AEAD records (each may carry many frames) */
  uint64_t writes;         /* write syscalls issued */
  uint64_t connects_ok, connects_failed;
  uint64_t data_conns;     /* data connections handed over */
  /* what lets a test wait for the timer instead of sleeping: the one timer's runs, and
   * the sweeps that forget departed peers */
  uint64_t ticks, sweeps;
  uint64_t conns; /* connections open now, in any state (not a counter) */
  /* failure detection: beats sent and received; probes we asked for (a watched peer
   * went quiet), probes we ran for others, and the answers we got (alive / no answer);
   * peers we declared down and announced, and announcements we acted on */
  uint64_t beats_out, beats_in;
  uint64_t probes_requested, probes_served, probe_alive, probe_none;
  uint64_t downs_announced, downs_applied;
  uint64_t watching, watched_by; /* peers we watch now, and that watch us (not counters) */
  uint64_t idle_closed, on_demand; /* connections closed for idleness; opened for a message */
  /* a large cluster: connections that closed without IDLE or LEAVE, re-dialled at once
   * to tell a crash from a close the peer made on purpose (design.md §5), and what the
   * re-dial found: the member answered (no node_down), its host refused (node_down), or
   * neither within the connect deadline (no node_down: left to the failure detector);
   * and of those answered or unknown, the ones whose verdict this node left to the
   * member's watchers (it does not watch the member, so it runs no limbo bound), or
   * left to them and the hubs at once, unchecked (cl_transport_reach_all) */
  uint64_t closes_checked, closes_alive, closes_down, closes_unknown, closes_to_watchers;
  uint64_t downs_sent; /* DOWN frames put on connections (our findings and news passed on) */
  /* on connecting, member lists sent whole (the digests differed), and not sent (they
   * matched: both ends held the same members up) */
  uint64_t lists_sent, lists_skipped;
  /* a large cluster: frames of member entries passed on at the grid's tick (one per
   * connection per tick at most, announce_member), and of them those sent to hubs */
  uint64_t news_frames, news_to_hubs;
  uint64_t failed_redials; /* large cluster: failed members dialled to see (one per interval) */
  uint64_t reach_dials;    /* members dialled to reach every member (cl_transport_reach_all) */
  uint64_t members; /* members up now, this node excluded (not a counter) */
} cl_transport_stats;
void cl_transport_stats_get(const cl_transport *, cl_transport_stats *);

/* ---- the keyring ----
 * Replaces the keyring (keys[0] the primary; 1..16 keys). New handshakes use it at
 * once. A live connection authenticated under a key that is no longer in the ring is
 * re-authenticated over its session (CL_T_REAUTH) under a key both sides hold, within
 * a second and without going down; one that shares no key with us any more is closed
 * ("closed", logged with both sides' fingerprints). 0 or CL_EINVAL (err says why). */
int cl_transport_set_keys(cl_transport *, const cl_transport_key *keys, size_t n, char *err, size_t errlen);
/* The fingerprint of key id became known (computed off the loop by the caller). */
void cl_transport_key_fingerprint(cl_transport *, uint32_t id, const char *fp);
typedef struct {
  uint32_t id;
  char fp[17];
  int primary;
  uint64_t handshakes;    /* handshakes completed under it (control and data connections) */
  uint64_t auth_failures; /* refused proofs that named it (ours refused, or the peer's) */
  uint64_t connections;   /* live control connections authenticated under it now */
} cl_transport_key_stat;
/* Fills up to max entries, primary first; returns the number of keys. */
size_t cl_transport_key_stats(const cl_transport *, cl_transport_key_stat *out, size_t max);
/* Authentication failures that named no key of ours (one "unknown" series: a peer must
 * not be able to create series) */
uint64_t cl_transport_auth_failures_unknown(const cl_transport *);

/* 32-byte key for another use of the cookie (e.g. "gossip"), derived with
 * HMAC-SHA256 under a fixed domain label; the cookie itself is never used as a key. */
void cl_transport_derive_key(const uint8_t *cookie, size_t cookie_len, const char *purpose,
                             uint8_t out[32]);

#endif
