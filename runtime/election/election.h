/* clusterlua election core: the Zen2-style coordination state machine.
 *
 * Pure: no I/O, no clock, no global mutable state. Every input goes in through
 * cl_el_step() with the current time as a number; every effect (messages,
 * persistence, events, logs, request completions) comes out as data, in the
 * order the runtime must perform them. A PERSIST effect must be completed
 * (write, fsync, rename, fsync dir) before any later effect of the same step is
 * performed; if it fails the runtime must stop the node. Randomness comes from
 * cfg->seed (the runtime seeds it from a CSPRNG, the simulator from its PRNG),
 * which is what makes whole clusters replayable.
 */
#ifndef CL_ELECTION_H
#define CL_ELECTION_H

#include <stddef.h>
#include <stdint.h>

#define CL_EL_ID_MAX 64          /* node id: opaque, e.g. 32 hex chars */
#define CL_EL_NAME_MAX 127       /* "node1@127.0.0.1:4371" */
#define CL_EL_ADDR_MAX 127
#define CL_EL_TAGS_MAX 255       /* comma-separated free-form role tags */
#define CL_EL_CLUSTER_ID_MAX 36
/* Nodes in a cluster state and peers known: no fixed cap. cfg->max_nodes (topology
 * election.max_nodes) is the policy, past which a node is refused with an error naming
 * the limit; CL_EL_MAX_NODES_HARD bounds that setting and every count read from the wire
 * or the disk, checked before anything is allocated. */
#define CL_EL_MAX_NODES_DEFAULT 10000
#define CL_EL_MAX_NODES_HARD 100000
/* Voting nodes: cfg->max_voting_nodes (election.max_voting_nodes), odd, >= 3 (rule E12) */
#define CL_EL_MAX_VOTING_DEFAULT 5
#define CL_EL_MAX_EXCL 32        /* hard cap; cfg->max_exclusions is the policy */
#define CL_EL_MAX_INITIAL 16
#define CL_EL_MSG_MAX 256
#define CL_EL_META_HARD_MAX (64u << 20)

/* node flags */
#define CL_EL_F_MASTER 1u        /* master-eligible: votes and may be elected */
#define CL_EL_F_VOTING_ONLY 2u   /* with F_MASTER: votes, never stands */

/* A node's record. name, address and tags are never NULL: they point into str, one
 * reference-counted block shared by every copy of the record (every state, every peer),
 * or at "" / a caller's strings in a record that owns nothing (str NULL, read-only). At
 * their longest the three took 512 bytes inline in every copy: 584 bytes a record, three
 * copies a node (the accepted and the committed state, the peer) at 300 nodes was half a
 * MiB of each node's memory, mostly zeros. Set with cl_el_node_set, copy with
 * cl_el_node_copy, drop with cl_el_node_release: never by assignment, except moving a
 * record whose old place is then forgotten (sorting). */
typedef struct cl_el_nstr cl_el_nstr;
typedef struct cl_el_node {
  char id[CL_EL_ID_MAX + 1];
  uint32_t flags;
  const char *name, *address, *tags;
  cl_el_nstr *str;
} cl_el_node;

/* dst (zeroed, or a record) := the node given; its strings are checked by the caller
 * against CL_EL_*_MAX. 0, or -1 out of memory (dst then unchanged). */
int cl_el_node_set(cl_el_node *dst, const char *id, const char *name, const char *address, uint32_t flags,
                   const char *tags);
/* dst (zeroed, or a record) := src, sharing its strings. 0 or -1 (out of memory: only for
 * a src that owns nothing, whose strings are then copied). */
int cl_el_node_copy(cl_el_node *dst, const cl_el_node *src);
/* drops n's strings: an empty record (no id, "" strings), owning nothing */
void cl_el_node_release(cl_el_node *n);

/* A voting configuration: a set of node ids kept sorted. Bootstrap placeholders
 * ("{bootstrap-placeholder}-<entry>") stand for listed nodes not yet seen:
 * they count towards the size (so the quorum) but never vote. */
typedef char cl_el_id[CL_EL_ID_MAX + 1];
typedef struct cl_el_vconfig {
  uint32_t n, cap; /* ids[0..n): heap, grown as needed; {0} is an empty configuration */
  cl_el_id *ids;
} cl_el_vconfig;

typedef struct cl_el_excl {
  char id[CL_EL_ID_MAX + 1];
  char name[CL_EL_NAME_MAX + 1];
} cl_el_excl;

/* The cluster state. Read-only for users of the API: obtain it through
 * cl_el_committed()/cl_el_accepted(). meta is the user metadata blob, opaque
 * here (the Lua side serializes it). */
typedef struct cl_el_state {
  char cluster_id[CL_EL_CLUSTER_ID_MAX + 1]; /* "" until the first master publishes */
  uint64_t term, version;
  char master_id[CL_EL_ID_MAX + 1];
  uint32_t n_nodes, cap_nodes;
  cl_el_node *nodes;              /* heap, sorted by id, grown as needed */
  cl_el_vconfig committed_config; /* last committed configuration */
  cl_el_vconfig accepted_config;  /* configuration of this state */
  uint32_t n_excl;
  cl_el_excl excl[CL_EL_MAX_EXCL];
  uint64_t meta_version;          /* version at which meta last changed (CAS base) */
  char meta_origin[CL_EL_ID_MAX + 1]; /* last update's asker and request id, so a */
  uint64_t meta_req;                  /* re-forwarded update is not applied twice */
  uint8_t *meta;
  uint32_t meta_len;
} cl_el_state;

typedef struct cl_el_config {
  uint32_t hb_interval_ms;        /* master -> peers check period (200) */
  uint32_t leader_timeout_ms;     /* follower: master silent this long is dead (400) */
  uint32_t follower_timeout_ms;   /* master: follower silent this long is removed (400) */
  uint32_t fast_election_jitter_ms;  /* random part of the delay after losing the master (4) */
  uint32_t fast_election_stagger_ms; /* per-rank part of that delay, avoids split votes (6) */
  uint32_t election_initial_ms;   /* retry delays: uniform in [0, initial + n*backoff] (100) */
  uint32_t election_backoff_ms;   /* (50) */
  uint32_t election_max_ms;       /* cap of the retry window (1000) */
  uint32_t publish_timeout_ms;    /* a publication not committed by then: step down (1000) */
  uint32_t request_timeout_ms;    /* write requests fail after this (10000) */
  uint32_t max_exclusions;        /* (10) */
  uint32_t max_metadata_bytes;    /* (4 MiB) */
  uint32_t max_nodes;             /* peers known + this node; past it a node is refused (10000) */
  uint32_t max_voting_nodes;      /* voting configuration size cap: odd, >= 3 (5) */
  uint32_t publish_batch_ms;      /* joins and removals within this window (at most one
                                     heartbeat interval) share one publication (50) */
  const char *const *initial_master_nodes; /* short "node1" or full "node1@h:p" */
  size_t n_initial_master_nodes;
  uint64_t seed;                  /* randomness for jitter and the cluster id */
} cl_el_config;

void cl_el_config_defaults(cl_el_config *cfg);
/* election.heartbeat_ms and check_timeout_ms (0: not given). A heartbeat not given is the
 * default but at most half the timeout, so a short check_timeout_ms alone stays valid */
void cl_el_config_checks(cl_el_config *cfg, uint32_t heartbeat_ms, uint32_t timeout_ms);

typedef struct cl_el_node_info {
  const char *id, *name, *address;
  uint32_t flags;
  const char *tags; /* may be NULL */
} cl_el_node_info;

typedef enum {
  CL_EL_IN_TICK = 1,
  CL_EL_IN_PEER_UP,        /* peer (info) connected and authenticated */
  CL_EL_IN_PEER_DOWN,      /* peer_id's connection closed */
  CL_EL_IN_MESSAGE,        /* bytes from peer_id: decoded and validated here */
  CL_EL_IN_REQUEST_UPDATE, /* req_id, base_version, data/len = new metadata */
  CL_EL_IN_REQUEST_EXCLUDE,/* req_id, names/n_names */
  CL_EL_IN_REQUEST_CLEAR_EXCLUSIONS, /* req_id, wait */
  CL_EL_IN_LUA_LAG,        /* flag: Lua lag over the step-down threshold or back */
} cl_el_input_kind;

typedef struct cl_el_input {
  cl_el_input_kind kind;
  const char *peer_id;
  cl_el_node_info peer;
  const uint8_t *data;
  size_t len;
  uint64_t req_id;
  uint64_t base_version;
  const char *const *names;
  size_t n_names;
  int flag; /* CLEAR: wait_for_removal; LUA_LAG: lagging */
} cl_el_input;

typedef enum {
  CL_EL_FX_SEND = 1,  /* to, data/len */
  CL_EL_FX_PERSIST,   /* data/len: whole file contents (cl_el_persist_decode reads it);
                         lazy: may be written later (RULE E14) and carries no bytes:
                         cl_el_persisted gives them when written, see cl_el_effect */
  CL_EL_FX_EVENT,     /* event, names, term, version */
  CL_EL_FX_LOG,       /* level, msg */
  CL_EL_FX_COMPLETE,  /* req_id, code ("OK", "ENOQUORUM", ...), msg, version */
} cl_el_effect_kind;

typedef enum { CL_EL_PERSIST_TERM = 1, CL_EL_PERSIST_STATE, CL_EL_PERSIST_COMMIT } cl_el_persist_kind;

typedef enum {
  CL_EL_EV_MASTER_CHANGED = 1, /* new_master ("" = none), old_master, term */
  CL_EL_EV_QUORUM_LOST,
  CL_EL_EV_QUORUM_REGAINED,
  CL_EL_EV_STATE_COMMITTED,    /* term, version: cl_el_committed() is that state */
} cl_el_event_kind;

enum { CL_EL_LOG_DEBUG = 0, CL_EL_LOG_INFO, CL_EL_LOG_WARN, CL_EL_LOG_ERROR };

typedef struct cl_el_effect {
  cl_el_effect_kind kind;
  char to[CL_EL_ID_MAX + 1];
  uint8_t *data;        /* owned by the effects buffer */
  size_t len, cap;
  cl_el_persist_kind persist;
  /* PERSIST: 0, durable before any later effect (E6, E10); 1, this node's
   * acknowledgement does not count toward a commit (it is in neither configuration of
   * its accepted state: RULE E14), so the write may wait and be lost in a crash; a
   * later PERSIST supersedes it (every PERSIST is the whole file). A lazy PERSIST has no
   * data (len 0): the writer takes cl_el_persisted() when it writes, the state as it is
   * then, so a burst of steps encodes the whole state once, not at every step */
  int lazy;
  cl_el_event_kind event;
  char new_master[CL_EL_NAME_MAX + 1], old_master[CL_EL_NAME_MAX + 1];
  uint64_t term, version;
  int level;
  uint64_t req_id;
  char code[16];
  char msg[CL_EL_MSG_MAX];
} cl_el_effect;

/* Caller-owned, reusable: reset between steps keeps the buffers. */
typedef struct cl_el_effects {
  cl_el_effect *v;
  size_t n, cap;
} cl_el_effects;

void cl_el_effects_init(cl_el_effects *fx);
void cl_el_effects_reset(cl_el_effects *fx);
void cl_el_effects_free(cl_el_effects *fx);

typedef struct cl_el cl_el;

/* persisted: the last PERSIST effect's bytes, or NULL/0 for a new node.
 * Returns NULL with err filled on a bad config or corrupt persisted data. */
cl_el *cl_el_new(const cl_el_config *cfg, const cl_el_node_info *self,
                 const uint8_t *persisted, size_t persisted_len, char *err, size_t errlen);
void cl_el_free(cl_el *el);
void cl_el_step(cl_el *el, uint64_t now_ms, const cl_el_input *in, cl_el_effects *out);
uint64_t cl_el_next_deadline(const cl_el *el); /* UINT64_MAX: nothing scheduled */

/* Local health (design.md §4): while this node's own loop runs late, the glue gives the
 * core the grace its transport gives every connection (scaled to leader_timeout_ms:
 * score x leader_timeout_ms), and every failure-suspicion timeout (the master's silence,
 * a follower's, a quorum's, a publication's) waits that much longer, as does
 * cl_el_next_deadline. 0 (the default): the configured timeouts. Liveness only: terms,
 * votes, quorums and persistence do not read it. Capped at CL_EL_GRACE_MAX_MS. */
#define CL_EL_GRACE_MAX_MS 600000u
void cl_el_set_grace(cl_el *el, uint32_t grace_ms);
uint32_t cl_el_grace(const cl_el *el);
/* The interval at which a master heartbeats its followers from now on; 0 (the default):
 * cfg.hb_interval_ms. The glue of a large cluster, whose grace already gives every
 * check the large cluster's timeout, passes a quarter of that timeout, so the master's
 * heartbeats cost a quarter as much (a heartbeat and its answer per follower: O(N) at
 * the master). Liveness only: nothing safety-related reads it. It must stay below the
 * followers' leader timeout with its grace, as cfg.hb_interval_ms below theirs. */
void cl_el_set_heartbeat(cl_el *el, uint32_t hb_ms);

typedef enum { CL_EL_CANDIDATE = 0, CL_EL_FOLLOWER, CL_EL_LEADER } cl_el_mode;
typedef enum { CL_EL_RED = 0, CL_EL_YELLOW, CL_EL_GREEN } cl_el_health;

uint64_t cl_el_term(const cl_el *el);
cl_el_mode cl_el_get_mode(const cl_el *el);
const char *cl_el_master_id(const cl_el *el);   /* NULL: no master known */
const char *cl_el_master_name(const cl_el *el); /* NULL: no master known */
const cl_el_state *cl_el_committed(const cl_el *el); /* last applied (committed) state */
const cl_el_state *cl_el_accepted(const cl_el *el);  /* last accepted (persisted) state */
int cl_el_accepted_is_committed(const cl_el *el);
/* The file a PERSIST would carry now (term, accepted state, commit flags), for a lazy
 * PERSIST written later; *out is malloc'd. 0, or -1 when out of memory. */
int cl_el_persisted(const cl_el *el, uint8_t **out, size_t *outlen);
cl_el_health cl_el_get_health(const cl_el *el);
uint32_t cl_el_quorum_size(const cl_el *el);
int cl_el_has_quorum(const cl_el *el);          /* this node sees an elected master */
const char *cl_el_self_id(const cl_el *el);
/* Connected peers refused because their data belongs to another cluster:
 * fills up to max entries (name, their cluster id) and returns how many there
 * are; messages refused so far (from those and from unknown senders). */
typedef struct cl_el_refused {
  const char *name, *cluster_id;
} cl_el_refused;
size_t cl_el_refused_peers(const cl_el *el, cl_el_refused *out, size_t max);
uint64_t cl_el_refused_messages(const cl_el *el);
/* Nodes refused because the cluster had reached cfg->max_nodes (each logged with the
 * limit and the node's name), and the peers this node knows (up or down). */
uint64_t cl_el_refused_nodes(const cl_el *el);
uint32_t cl_el_peer_count(const cl_el *el);
/* The cluster id this node's committed data belongs to ("" before any). */
const char *cl_el_cluster_id(const cl_el *el);
const char *cl_el_health_str(cl_el_health h);

/* Quorum of a configuration: floor(n/2)+1. */
uint32_t cl_el_quorum(uint32_t n);

/* Splits, in place, the comma-separated node names (short or full) of a voting-exclusion
 * request into names[]. The admin API (?node_names=) and cl.voting.exclude both go
 * through here, so a list is refused the same way, in the same words, on both paths
 * (one of them used to cut it at CL_EL_MAX_EXCL without a word). Returns the number of
 * names, or -1 with err saying what is wrong: more than CL_EL_MAX_EXCL names, an empty
 * name, or one longer than CL_EL_NAME_MAX. The policy limit (max_exclusions) is the
 * core's to check. */
int cl_el_split_exclusions(char *csv, const char *names[CL_EL_MAX_EXCL], char *err, size_t errlen);

/* ---- codecs (also what fuzz_state drives) ---- */

/* Persisted file: magic, format version, term, accepted state, committed
 * flag, BLAKE2b checksum. Decode rejects torn/corrupt/unknown files with a
 * reason in err. *st must be freed with cl_el_state_clear. */
int cl_el_persist_encode(uint64_t term, const cl_el_state *st, int committed,
                         uint8_t **out, size_t *outlen);
int cl_el_persist_decode(const uint8_t *buf, size_t len, uint64_t *term, cl_el_state *st,
                         int *committed, char *err, size_t errlen);

/* Wire messages: validates any byte string; returns 0 or -1 with a reason. */
int cl_el_msg_validate(const uint8_t *buf, size_t len, char *err, size_t errlen);
/* Type byte of a valid message, for tracing; -1 if not a message. */
int cl_el_msg_type(const uint8_t *buf, size_t len);

/* A state owns its nodes, configurations and metadata (heap): init before use, clear
 * (frees everything) when done, copy with cl_el_state_copy, never by assignment. */
void cl_el_state_init(cl_el_state *st);
void cl_el_state_clear(cl_el_state *st);
int cl_el_state_copy(cl_el_state *dst, const cl_el_state *src);
/* room for n nodes; 0 or -1 (out of memory). Entries past n_nodes are always zeroed
 * records, so a writer fills nodes[n_nodes] with cl_el_node_set/copy and then counts it. */
int cl_el_state_reserve_nodes(cl_el_state *st, uint32_t n);
/* drops the nodes from n on (n <= n_nodes) */
void cl_el_state_truncate_nodes(cl_el_state *st, uint32_t n);
/* Configurations own their ids: copy with cl_el_vconfig_copy (0 or -1 out of memory),
 * free with cl_el_vconfig_free. */
int cl_el_vconfig_copy(cl_el_vconfig *dst, const cl_el_vconfig *src);
void cl_el_vconfig_free(cl_el_vconfig *c);
/* 32-byte BLAKE2b of the canonical encoding (for the simulator's invariants). */
void cl_el_state_hash(const cl_el_state *st, uint8_t out[32]);

/* DANGER: unsafe-bootstrap. Returns, in *out, the persisted file for a state in
 * which this node alone is the voting configuration (committed and accepted),
 * the term bumped so the next election starts fresh. Use only when a quorum
 * of the voting configuration is permanently lost: any other surviving node
 * that still holds the old configuration may elect its own master, giving two
 * clusters with diverging states, and committed updates the survivor never
 * accepted are lost for good. */
int cl_el_unsafe_bootstrap(const uint8_t *persisted, size_t len, const char *self_id,
                           uint8_t **out, size_t *outlen, char *err, size_t errlen);

#endif
