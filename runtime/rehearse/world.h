/* The rehearsal's world: N simulated nodes in one process on a virtual clock, each
 * with the real election core driven by the real glue driver (node/el_driver.c) and
 * the real failure detector (transport/detector.c) on every connection, over a
 * simulated network (delay, loss, duplication, disconnects, blackholes, one-way
 * links) and an in-memory disk that can be slow or fail. What a node's Lua does is not
 * here: the world reaches a node's Lua state only through rh_lua_ops (node_state.c
 * implements it), and Lua reaches the world only through the rh_node_* calls below.
 *
 * It checks, after every step of every node: at most one master per term; the term
 * never goes back (across restarts too); a vote leaves only once its term is on disk,
 * and no node votes twice in a term; committed states form one chain (a version
 * is never committed with two different states, and a committed state is never lost);
 * a state is committed only once a quorum of both its configurations has it on disk
 * (so a minority never elects a master that commits anything); quorum_lost only when
 * the voting nodes this node has heard from within the detector's timeout are not a
 * quorum. The first violation is kept (rh_world.why) and ends the run.
 *
 * Single-threaded, no clock, no I/O: the main thread only. Time is in microseconds;
 * the election core and Lua see milliseconds. */
#ifndef CL_RH_WORLD_H
#define CL_RH_WORLD_H
#include <stddef.h>
#include <stdint.h>

#include "election/election.h"
#include "node/el_driver.h"
#include "transport/detector.h"

#define RH_MAX_NODES 64
#define RH_US 1000ull

typedef struct rh_world rh_world;

/* A record of what happened, for the timeline, the JSON and the user's expectations.
 * kind: started, start_failed, exited, stopped, killed, crashed, node_up, node_down, master,
 * quorum_lost, quorum_regained, committed, exec, hook_error, log, fault, violation,
 * lua_error, lua_lag. s1/s2/n1/n2 depend on the kind (docs/rehearsal.md). */
typedef struct rh_record {
  uint64_t t_us;
  int node; /* -1: the world (faults, violations) */
  char kind[24];
  char *s1, *s2;
  int64_t n1, n2;
} rh_record;

/* A message for a node's Lua, in the shapes clusterlua.c.node's handler gets. */
typedef struct rh_lua_msg {
  struct rh_lua_msg *next;
  char kind[12]; /* up, down, msg, master, quorum, committed, done; fsevent (a file watch);
                    udp (b: the port, name: the sender's address) */
  char *name;    /* may be NULL */
  char *a;       /* bytes (may contain NULs) */
  size_t a_len;
  int has_a;
  double b, c;
  /* up: the peer's info */
  char id[CL_EL_ID_MAX + 1];
  char roles[256];
  uint64_t rtt_us, incarnation;
} rh_lua_msg;

typedef struct rh_lua_ops {
  void *ud;
  /* create the node's Lua state and run its start (the topology); 0 on success, else
   * the node failed to start (recorded as start_failed with err) */
  int (*boot)(void *ud, rh_world *w, int node, char *err, size_t errlen);
  /* deliver the messages (in order) then fire the timers due at now_ms; returns the
   * next timer deadline in ms (UINT64_MAX: none), or sets *exited when Lua asked the
   * process to exit (os.exit, clusterlua.leave) */
  uint64_t (*run)(void *ud, rh_world *w, int node, rh_lua_msg *msgs, uint64_t now_ms, int *exited, int *code);
  /* the process ends: close the Lua state */
  void (*close)(void *ud, rh_world *w, int node);
} rh_lua_ops;

/* what a node's Lua gave clusterlua.c.node's start */
typedef struct rh_start_cfg {
  const char *id, *cluster, *roles /* "a,b" */, *imn /* "a,b,c" */;
  uint32_t heartbeat_ms, timeout_ms;
  uint32_t watchers; /* transport.watchers (0: the default) */
  int mesh; /* transport.mesh */
  uint32_t el_heartbeat_ms, el_check_timeout_ms, el_max_exclusions, el_max_nodes, el_max_voting_nodes,
      el_lua_stepdown_ms;
} rh_start_cfg;

typedef struct rh_params {
  uint64_t seed;
  /* the network: one-way delay of each frame (µs), loss and duplication */
  uint64_t delay_lo_us, delay_hi_us;
  double p_drop, p_dup;
  /* how long Lua takes to get to an event (µs) */
  uint64_t lua_delay_us;
  /* a node that crashed on its own (a failed disk write) is restarted after this (ms, 0: never) */
  uint64_t crash_restart_ms;
} rh_params;

rh_world *rh_world_new(const rh_params *p, const rh_lua_ops *ops);
void rh_world_free(rh_world *w);
/* names are full names (NAME@HOST:PORT); returns the index, -1 when the world is full
 * (RH_MAX_NODES), -2 when the name is longer than CL_EL_NAME_MAX */
int rh_world_add(rh_world *w, const char *full_name, const char *short_name);
int rh_world_count(const rh_world *w);
const char *rh_world_name(const rh_world *w, int i);
const char *rh_world_short(const rh_world *w, int i);
int rh_world_index(const rh_world *w, const char *name); /* full or short; -1 unknown */

uint64_t rh_world_now_us(const rh_world *w);
uint64_t rh_world_rand(rh_world *w, uint64_t n); /* 0..n-1, from the run's seed */
uint64_t rh_world_steps(const rh_world *w);
/* Runs until until_us or a violation; returns 0, or 1 on a violation (rh_world_why). */
int rh_world_run(rh_world *w, uint64_t until_us);
const char *rh_world_why(const rh_world *w); /* "" when every check held */
void rh_world_fail(rh_world *w, const char *why); /* a check of the caller failed */

/* ---- faults (the director's nemeses) ---- */
void rh_world_start(rh_world *w, int i);         /* start (or restart) a node's process */
void rh_world_kill(rh_world *w, int i, const char *why); /* the process dies (kill -9) */
void rh_world_stop(rh_world *w, int i); /* SIGTERM: it leaves on purpose (peers see "left") */
int rh_world_is_running(const rh_world *w, int i);
int rh_world_has_left(const rh_world *w, int i); /* exited on purpose (leave, os.exit) */
void rh_world_pause(rh_world *w, int i, uint64_t until_us); /* SIGSTOP ... SIGCONT */
void rh_world_stall_lua(rh_world *w, int i, uint64_t until_us); /* its Lua runs no event before */
/* how: 1 disconnect (connections refused), 2 blackhole; oneway: only a -> b */
void rh_world_cut(rh_world *w, int a, int b, int how, int oneway);
void rh_world_heal(rh_world *w); /* every link back */
void rh_world_net(rh_world *w, uint64_t delay_lo_us, uint64_t delay_hi_us, double p_drop, double p_dup);
void rh_world_disk(rh_world *w, int i, int fail_next, uint64_t slow_ms);
/* a file the scenario manages changed: every running node's file watches hear of it */
void rh_world_file_changed(rh_world *w, const char *path);

/* ---- the end of a run ---- */
/* exactly one master, every node (but those in the ignore bit mask, and those that left
 * on purpose) running, on its term and committed version, knowing it as master: 1,
 * else 0 with why; *term / *version / *master filled when settled */
int rh_world_settled(rh_world *w, uint64_t ignore, char *why, size_t len, uint64_t *term, uint64_t *version,
                     int *master);

/* ---- the history ---- */
size_t rh_world_records(const rh_world *w, const rh_record **out);
void rh_world_record(rh_world *w, int node, const char *kind, const char *s1, const char *s2, int64_t n1,
                     int64_t n2);

/* ---- what a node's Lua calls (clusterlua.c.node, simulated) ---- */
int rh_node_start(rh_world *w, int i, const rh_start_cfg *cfg, char *err, size_t errlen);
void rh_node_want(rh_world *w, int i, const char *name);
void rh_node_unwant(rh_world *w, int i, const char *name);
void rh_node_disconnect(rh_world *w, int i, const char *name);
/* 0, or -1 when not connected */
int rh_node_send(rh_world *w, int i, const char *name, const uint8_t *data, size_t len);
void rh_node_leave(rh_world *w, int i);
/* kind: 1 update (base, data), 2 exclude (names csv), 3 clear (flag) */
void rh_node_request(rh_world *w, int i, int kind, uint64_t lua_id, uint64_t base, const char *data, size_t len,
                     int flag);
/* UDP, as a LAN where every datagram reaches every node's socket bound on its port (a
 * multicast or broadcast group: what the gossip strategy sends), over the same links as
 * the rest: partitions, loss, duplication and delay apply */
void rh_node_udp_bind(rh_world *w, int i, int port);
void rh_node_udp_close(rh_world *w, int i, int port);
void rh_node_udp_send(rh_world *w, int i, int port, const uint8_t *data, size_t len);
/* the node's committed state as clusterlua.c.node's persisted_info would (NULL: none) */
const cl_el *rh_node_el(const rh_world *w, int i);

#endif
