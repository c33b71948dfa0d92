/* Transport tests: the pure pieces directly, then two or three transports in one
 * process on one loop over loopback. Every wait is bounded.
 * Output: one "PASS name" or "FAIL name: reason" line per case. */
#include <dirent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>

#include "core/log.h"
#include "loop_test.h"
#include "transport/detector.h"
#include "transport/internal.h"
#include "transport/members_wire.h"
#include "transport/transport.h"
#include "transport/watch.h"


static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  bind(s, (struct sockaddr *)&a, sizeof a);
  getsockname(s, (struct sockaddr *)&a, &l);
  int p = ntohs(a.sin_port);
  close(s);
  return p;
}

/* ---- a test node ---- */

typedef struct {
  cl_transport *t;
  char name[64];
  int ups, downs;
  uint64_t first_down_ms; /* uv_now() of the first peer_down since reset (0: none) */
  char down_name[128], down_reason[32];
  char up_name[128], up_roles[64], up_id[80];
  uint64_t msgs, bytes, next_seq;
  int order_bad;
  size_t last_len;
  char last_from[128];
  int closed;
  /* data connections handed over */
  int dcs, dc_fd, dc_failed, up_data;
  uint64_t dc_inc, up_inc;
  uint8_t dc_tx[32], dc_rx[32];
  size_t dc_pre_out;
  uint32_t up_rtt;
  int forgotten, keep;
  char forgot_name[128];
  uint64_t forgot_at;
  /* the first 16 names reported down, in order (the pinned-peers case) */
  char down_names[16][128];
  int n_down_names;
} tnode;

static void cb_up(void *ud, const cl_peer_info *p) {
  tnode *n = ud;
  n->ups++;
  snprintf(n->up_name, sizeof n->up_name, "%s", p->name);
  snprintf(n->up_roles, sizeof n->up_roles, "%s", p->roles);
  snprintf(n->up_id, sizeof n->up_id, "%s", p->node_id);
  n->up_data = p->data_conns;
  n->up_inc = p->incarnation;
  n->up_rtt = p->rtt_us;
}
static int cb_keep(void *ud, const char *name, const char *id) {
  (void)name;
  (void)id;
  return ((tnode *)ud)->keep;
}
static void cb_forgotten(void *ud, const char *name) {
  tnode *n = ud;
  n->forgotten++;
  n->forgot_at = uv_now(L);
  snprintf(n->forgot_name, sizeof n->forgot_name, "%s", name);
}
static void cb_down(void *ud, const char *name, const char *reason) {
  tnode *n = ud;
  if (!n->downs || !n->first_down_ms) n->first_down_ms = uv_now(L);
  n->downs++;
  snprintf(n->down_name, sizeof n->down_name, "%s", name);
  snprintf(n->down_reason, sizeof n->down_reason, "%s", reason);
  if (n->n_down_names < 16) snprintf(n->down_names[n->n_down_names++], sizeof n->down_names[0], "%s", name);
}
static void cb_msg(void *ud, const char *from, uint8_t ch, const uint8_t *d, size_t len) {
  tnode *n = ud;
  (void)ch;
  n->msgs++;
  n->bytes += len;
  n->last_len = len;
  snprintf(n->last_from, sizeof n->last_from, "%s", from);
  if (len >= 8) {
    uint64_t seq;
    memcpy(&seq, d, 8);
    if (seq != n->next_seq) n->order_bad++;
    n->next_seq = seq + 1;
  }
}

/* Takes the socket as the Lua loop would: writes the handshake's last frame first. */
static void cb_data(void *ud, const cl_data_conn *dc) {
  tnode *n = ud;
  if (dc->fd < 0) {
    n->dc_failed++;
    return;
  }
  n->dcs++;
  if (n->dc_fd > 0) close(n->dc_fd);
  n->dc_fd = dc->fd;
  n->dc_inc = dc->incarnation;
  memcpy(n->dc_tx, dc->key_tx, 32);
  memcpy(n->dc_rx, dc->key_rx, 32);
  n->dc_pre_out = dc->pre_out_len;
  if (dc->pre_out_len && write(dc->fd, dc->pre_out, dc->pre_out_len) != (ssize_t)dc->pre_out_len) n->dc_failed++;
}

typedef struct {
  const char *cookie, *cluster, *host; /* host: of the node's name (127.0.0.1) */
  int encrypt, mesh, data;
  uint32_t max_frame, send_queue_max, timeout_ms, heartbeat_ms, reconnect_timeout_ms, handshake_timeout_ms;
  uint32_t watchers, full_mesh_max, idle_close_ms, redial_failed_ms, large_timeout_ms, large_heartbeat_ms;
  uint32_t reach_per_tick;
} opts;

static int node_start(tnode *n, const char *short_name, int port, const opts *o) {
  memset(n, 0, sizeof *n);
  snprintf(n->name, sizeof n->name, "%s@%s:%d", short_name, o && o->host ? o->host : "127.0.0.1", port);
  cl_transport_config c;
  cl_transport_config_defaults(&c);
  c.self_name = n->name;
  c.node_id = "0123456789abcdef0123456789abcdef";
  c.cluster = o && o->cluster ? o->cluster : "test";
  const char *cookie = o && o->cookie ? o->cookie : "secret-cookie";
  c.cookie = (const uint8_t *)cookie;
  c.cookie_len = strlen(cookie);
  c.roles = "master,data";
  c.encrypt = o ? o->encrypt : 1;
  c.mesh = o ? o->mesh : 1;
  if (o && o->max_frame) c.max_frame = o->max_frame;
  if (o && o->send_queue_max) c.send_queue_max = o->send_queue_max;
  if (o && o->timeout_ms) c.timeout_ms = o->timeout_ms;
  if (o && o->heartbeat_ms) c.heartbeat_ms = o->heartbeat_ms;
  if (o && o->handshake_timeout_ms) c.handshake_timeout_ms = o->handshake_timeout_ms;
  c.data_conns = o ? o->data : 0;
  if (o && o->watchers) c.watchers = o->watchers;
  if (o && o->reach_per_tick) c.reach_dials_per_tick = o->reach_per_tick;
  if (o && o->full_mesh_max) c.full_mesh_max = o->full_mesh_max;
  if (o && o->idle_close_ms) c.idle_close_ms = o->idle_close_ms;
  if (o && o->redial_failed_ms) c.redial_failed_ms = o->redial_failed_ms;
  /* the large cluster's timeout: the cases that set none keep timeout_ms throughout */
  c.large_timeout_ms = o && o->large_timeout_ms ? o->large_timeout_ms : c.timeout_ms;
  /* and its beat: derived (half of it) when the case gave a large timeout, else the
   * heartbeat, as before large_heartbeat_ms */
  c.large_heartbeat_ms = o && o->large_heartbeat_ms ? o->large_heartbeat_ms
                         : o && o->large_timeout_ms ? 0
                                                    : c.heartbeat_ms;
  if (o && o->reconnect_timeout_ms) c.reconnect_timeout_ms = o->reconnect_timeout_ms;
  c.log_subsys = short_name;
  cl_transport_callbacks cb = {cb_up, cb_down, cb_msg, n, cb_data, cb_keep, cb_forgotten};
  char err[256];
  n->t = cl_transport_new(L, &c, &cb, err, sizeof err);
  if (!n->t) fprintf(stderr, "cl_transport_new: %s\n", err);
  return n->t ? 0 : -1;
}

static void on_closed(void *ud) { ((tnode *)ud)->closed = 1; }
static int is_closed(void *ud) { return ((tnode *)ud)->closed; }

static void node_stop(tnode *n) {
  if (!n->t) return;
  cl_transport_close(n->t, on_closed, n);
  n->t = NULL;
  run_until(is_closed, n, 2000);
}

typedef struct {
  tnode *n;
  size_t want;
} cnt_arg;
static int connected_is(void *ud) {
  cnt_arg *a = ud;
  return a->n->t && cl_transport_connected_count(a->n->t) == a->want;
}
static int wait_connected(tnode *n, size_t want, uint64_t ms) {
  cnt_arg a = {n, want};
  return run_until(connected_is, &a, ms);
}
static int has_down(void *ud) { return ((tnode *)ud)->downs > 0; }
static int got_msgs(void *ud) { return ((tnode *)ud)->msgs > 0; }

/* Waits on one of the transport's own counters instead of sleeping: runs the loop until
 * the field at `off` in n's stats reaches `at_least`. */
typedef struct {
  tnode *n;
  size_t off;
  uint64_t at_least;
} stat_arg;
static uint64_t stat_of(tnode *n, size_t off) {
  cl_transport_stats s;
  cl_transport_stats_get(n->t, &s);
  uint64_t v;
  memcpy(&v, (const char *)&s + off, sizeof v);
  return v;
}
static int stat_reached(void *ud) {
  stat_arg *a = ud;
  return stat_of(a->n, a->off) >= a->at_least;
}
#define STAT(n, field) stat_of((n), offsetof(cl_transport_stats, field))
#define WAIT_STAT(n, field, atleast, ms) \
  run_until(stat_reached, &(stat_arg){(n), offsetof(cl_transport_stats, field), (atleast)}, (ms))

/* A message sent each way after the event under test, on the same connection: once both
 * are in, whatever the event set going on that connection has happened too. */
/* One peer's status, as cl_transport_foreach reports it ("" if not listed). */
typedef struct {
  const char *name;
  char status[16];
  int listed;
} status_arg;
static void status_fe(void *ud, const cl_peer_info *p) {
  status_arg *a = ud;
  a->listed++;
  if (strcmp(p->name, a->name) == 0) snprintf(a->status, sizeof a->status, "%s", p->status);
}
static const char *status_of(tnode *n, const char *name, int *listed) {
  static status_arg a;
  memset(&a, 0, sizeof a);
  a.name = name;
  cl_transport_foreach(n->t, status_fe, &a);
  if (listed) *listed = a.listed;
  return a.status;
}

typedef struct {
  tnode *n;
  uint64_t want;
} msgs_arg;
static int msgs_reached(void *ud) {
  msgs_arg *m = ud;
  return m->n->msgs >= m->want;
}
static int marker_both_ways(tnode *a, tnode *b) {
  /* sent with the sequence each receiver expects next, so its order check stays quiet */
  uint64_t sa = b->next_seq, sb = a->next_seq;
  msgs_arg at_b = {b, b->msgs + 1}, at_a = {a, a->msgs + 1};
  if (cl_transport_send(a->t, b->name, 1, &sa, 8) || cl_transport_send(b->t, a->name, 1, &sb, 8)) return 0;
  return run_until(msgs_reached, &at_b, 2000) && run_until(msgs_reached, &at_a, 2000);
}

static opts O(int encrypt) {
  opts o = {0};
  o.encrypt = encrypt;
  o.mesh = 1;
  return o;
}

/* ---- pure pieces ---- */

static int t_names(void) {
  cl_node_name nn;
  char err[200];
  CHECK(cl_node_name_parse("node1@10.0.0.1", &nn, err, sizeof err) == 0, "%s", err);
  CHECK(strcmp(nn.full, "node1@10.0.0.1:4370") == 0 && nn.port == 4370, "default port: %s", nn.full);
  CHECK(cl_node_name_parse("n@[::1]:4371", &nn, err, sizeof err) == 0 && nn.port == 4371 &&
            strcmp(nn.host, "::1") == 0,
        "ipv6: %s", err);
  const char *bad[] = {"", "node1", "@host", "n@", "n@h:0", "n@h:99999", "n@h:x", "n m@h", "n@::1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK(cl_node_name_parse(bad[i], &nn, err, sizeof err) == CL_EINVAL, "accepted \"%s\"", bad[i]);
    CHECK(strstr(err, "bad node name") != NULL, "unclear error for \"%s\": %s", bad[i], err);
  }
  /* the one short-name rule (the election, the glue and Lua use it too) */
  CHECK(cl_node_name_matches("n1", "n1@h:1") && cl_node_name_matches("n1@h:1", "n1@h:1"), "matches");
  CHECK(!cl_node_name_matches("n", "n1@h:1") && !cl_node_name_matches("n1@h:2", "n1@h:1") &&
            !cl_node_name_matches("", "n1@h:1"),
        "false matches");
  return 0;
}

typedef struct {
  int n;
  uint8_t types[64];
  uint32_t lens[64];
} frames_seen;
/* The membership and detection payloads (members_wire.h): what is written reads back;
 * a length byte past the end, a NUL in a string, an empty or 256-byte name and an
 * unknown DOWN reason are refused. spec/fuzz/fuzz_members.c fuzzes the same. */
static int t_members_wire(void) {
  uint8_t b[2 * CL_MW_MEMBER_MAX];
  size_t n = cl_mw_member_put(b, sizeof b, "a@127.0.0.1:1", 7, 3, "id", "master");
  size_t m = cl_mw_member_put(b + n, sizeof b - n, "b@127.0.0.1:2", 8, 0, "", "");
  CHECK(n == 12 + 3 + 2 + 6 + 13 && m == 12 + 3 + 13, "entry sizes %zu %zu", n, m);
  cl_mw_member e;
  size_t i = 0;
  CHECK(cl_mw_member_take(b, n + m, &i, &e) == 0 && i == n && e.inc == 7 && e.ver == 3 && !strcmp(e.id, "id") &&
            !strcmp(e.roles, "master") && !strcmp(e.name, "a@127.0.0.1:1"),
        "first entry");
  CHECK(cl_mw_member_take(b, n + m, &i, &e) == 0 && i == n + m && !strcmp(e.name, "b@127.0.0.1:2"), "second entry");
  i = 0;
  CHECK(cl_mw_member_take(b, n - 1, &i, &e) == -1, "an entry cut short was taken");
  b[12] = 200; /* the id's length byte, past the end */
  i = 0;
  CHECK(cl_mw_member_take(b, n, &i, &e) == -1, "a length past the end was taken");
  b[12] = 2;
  b[13] = 0; /* a NUL in the id */
  i = 0;
  CHECK(cl_mw_member_take(b, n, &i, &e) == -1, "a NUL in a string was taken");
  CHECK(cl_mw_member_put(b, sizeof b, "", 1, 1, "", "") == 0, "an empty name was written");
  char big[300];
  memset(big, 'x', 256);
  big[256] = 0;
  CHECK(cl_mw_member_put(b, sizeof b, big, 1, 1, "", "") == 0, "a 256-byte name was written");
  cl_mw_down d;
  n = cl_mw_down_put(b, "c@127.0.0.1:3", 9, 4, CL_MW_DOWN_LEFT);
  CHECK(n == 13 + 13 && cl_mw_down_take(b, n, &d) == 0 && d.inc == 9 && d.ver == 4 && d.reason == CL_MW_DOWN_LEFT &&
            !strcmp(d.name, "c@127.0.0.1:3"),
        "DOWN roundtrip");
  b[12] = 3;
  CHECK(cl_mw_down_take(b, n, &d) == -1, "reason 3 was taken");
  CHECK(cl_mw_down_take(b, 13, &d) == -1, "a DOWN with no name was taken");
  memset(b + 13, 'x', 256);
  b[12] = 0;
  CHECK(cl_mw_down_take(b, 13 + 256, &d) == -1, "a 256-byte name was taken");
  cl_mw_probe p;
  n = cl_mw_probe_res_put(b, 5, 1, "d@127.0.0.1:4");
  CHECK(cl_mw_probe_res_take(b, n, &p) == 0 && p.seq == 5 && p.alive == 1 && !strcmp(p.name, "d@127.0.0.1:4"),
        "PROBE_RES roundtrip");
  b[4] = 7;
  CHECK(cl_mw_probe_res_take(b, n, &p) == 0 && p.alive == 0, "PROBE_RES alive byte 7 read as alive");
  n = cl_mw_probe_req_put(b, 6, "d@127.0.0.1:4");
  CHECK(cl_mw_probe_req_take(b, n, &p) == 0 && p.seq == 6 && !strcmp(p.name, "d@127.0.0.1:4"), "PROBE_REQ roundtrip");
  CHECK(cl_mw_probe_req_take(b, 4, &p) == -1, "a PROBE_REQ with no name was taken");
  int on = -1;
  uint32_t beat = 0;
  n = cl_mw_watch_put(b, 1, 500);
  CHECK(n == CL_MW_WATCH_LEN && cl_mw_watch_take(b, n, &on, &beat) == 0 && on == 1 && beat == 500, "WATCH 1, 500 ms");
  n = cl_mw_watch_put(b, 0, 200);
  CHECK(cl_mw_watch_take(b, n, &on, &beat) == 0 && on == 0, "WATCH 0");
  CHECK(cl_mw_watch_take((const uint8_t *)"\1", 1, &on, &beat) == -1, "a WATCH without its beat was taken");
  b[0] = 2;
  CHECK(cl_mw_watch_take(b, n, &on, &beat) == -1, "WATCH 2 was taken");
  n = cl_mw_watch_put(b, 1, CL_MW_BEAT_MIN - 1);
  CHECK(cl_mw_watch_take(b, n, &on, &beat) == -1, "a beat under CL_MW_BEAT_MIN was taken");
  n = cl_mw_watch_put(b, 1, CL_MW_BEAT_MAX + 1);
  CHECK(cl_mw_watch_take(b, n, &on, &beat) == -1, "a beat over CL_MW_BEAT_MAX was taken");
  CHECK(cl_mw_watch_take(b, n + 1, &on, &beat) == -1, "a WATCH of 6 bytes was taken");
  return 0;
}

static int collect(void *ud, const cl_frame *f) {
  frames_seen *s = ud;
  if (s->n < 64) {
    s->types[s->n] = f->type;
    s->lens[s->n] = f->len;
  }
  s->n++;
  return 0;
}

static int t_frame_decoder(void) {
  cl_tbuf b = {0};
  uint8_t pre[8];
  cl_preamble_put(pre, CL_PROTO_VERSION);
  cl_tbuf_append(&b, pre, 8);
  uint8_t payload[300];
  memset(payload, 7, sizeof payload);
  for (int i = 0; i < 10; i++) cl_frame_put(&b, CL_T_DATA, 2, payload, (uint32_t)(i * 30));
  /* fed one byte at a time: the same frames */
  cl_frame_decoder d;
  cl_frame_decoder_init(&d, CL_FD_SESSION, 1, 1000);
  frames_seen s = {0};
  for (size_t i = 0; i < b.len; i++)
    CHECK(cl_frame_decoder_feed(&d, b.p + i, 1, NULL, collect, &s) == 0, "byte %zu: %s", i, d.reason);
  CHECK(s.n == 10 && s.lens[9] == 270, "got %d frames", s.n);
  cl_frame_decoder_free(&d);
  /* oversize: refused from the header alone */
  cl_frame_decoder_init(&d, CL_FD_SESSION, 0, 100);
  uint8_t hdr[6] = {0, 0, 0, 101, CL_T_DATA, 1};
  CHECK(cl_frame_decoder_feed(&d, hdr, 6, NULL, collect, &s) < 0 && d.oversize && d.body.cap == 0,
        "oversize not refused before allocation");
  cl_frame_decoder_free(&d);
  /* unknown type */
  cl_frame_decoder_init(&d, CL_FD_SESSION, 0, 100);
  uint8_t unk[6] = {0, 0, 0, 1, 99, 0};
  CHECK(cl_frame_decoder_feed(&d, unk, 6, NULL, collect, &s) < 0 && strstr(d.reason, "unknown frame type"),
        "unknown type: %s", d.reason);
  cl_frame_decoder_free(&d);
  /* HTTP and garbage instead of a preamble */
  cl_frame_decoder_init(&d, CL_FD_HANDSHAKE, 1, 100);
  const char *get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK(cl_frame_decoder_feed(&d, (const uint8_t *)get, strlen(get), NULL, collect, &s) < 0 &&
            strstr(d.reason, "HTTP request"),
        "http: %s", d.reason);
  cl_frame_decoder_free(&d);
  cl_frame_decoder_init(&d, CL_FD_HANDSHAKE, 1, 100);
  CHECK(cl_frame_decoder_feed(&d, (const uint8_t *)"\x01\x02\x03\x04\x05\x06\x07\x08", 8, NULL, collect, &s) < 0 &&
            strstr(d.reason, "garbage"),
        "garbage: %s", d.reason);
  cl_frame_decoder_free(&d);
  /* another version */
  cl_frame_decoder_init(&d, CL_FD_HANDSHAKE, 1, 100);
  d.expect_version = 1;
  cl_preamble_put(pre, 9);
  CHECK(cl_frame_decoder_feed(&d, pre, 8, NULL, collect, &s) < 0 && d.bad_version &&
            strstr(d.reason, "unsupported protocol version 9"),
        "version: %s", d.reason);
  cl_frame_decoder_free(&d);
  /* the previous version (3: connections counted as members, before on-demand connections)
   * is refused, both named: rolling upgrades across wire changes are not supported */
  cl_frame_decoder_init(&d, CL_FD_HANDSHAKE, 1, 100);
  d.expect_version = CL_PROTO_VERSION;
  cl_preamble_put(pre, CL_PROTO_VERSION - 1);
  CHECK(CL_PROTO_VERSION == 6 && cl_frame_decoder_feed(&d, pre, 8, NULL, collect, &s) < 0 && d.bad_version &&
            strstr(d.reason, "unsupported protocol version 5 (this node speaks 6)"),
        "previous version: %s", d.reason);
  cl_frame_decoder_free(&d);
  cl_tbuf_free(&b);
  return 0;
}

static int t_session(void) {
  cl_seal_dir tx = {{0}, 0};
  randombytes_buf(tx.key, 32);
  cl_opener o;
  memset(&o, 0, sizeof o);
  memcpy(o.rx.key, tx.key, 32);
  size_t n = 200000;
  uint8_t *plain = malloc(n);
  for (size_t i = 0; i < n; i++) plain[i] = (uint8_t)(i * 31);
  cl_tbuf wire = {0};
  CHECK(cl_session_seal(&tx, plain, n, &wire) == 0, "seal");
  CHECK(tx.counter == 4, "records %llu", (unsigned long long)tx.counter);
  cl_tbuf got = {0};
  /* opened in odd-sized chunks */
  struct {
    cl_tbuf *b;
  } ctx = {&got};
  int cb(void *ud, const uint8_t *p, size_t len);
  for (size_t i = 0; i < wire.len; i += 777) {
    size_t l = wire.len - i < 777 ? wire.len - i : 777;
    CHECK(cl_session_open(&o, wire.p + i, l, cb, &ctx) == 0, "open: %s", o.reason);
  }
  CHECK(got.len == n && memcmp(got.p, plain, n) == 0, "roundtrip mismatch (%zu)", got.len);
  /* a flipped bit is refused */
  cl_seal_dir tx2 = tx;
  wire.len = 0;
  cl_session_seal(&tx2, plain, 100, &wire);
  wire.p[10] ^= 1;
  CHECK(cl_session_open(&o, wire.p, wire.len, cb, &ctx) < 0, "forged record accepted");
  cl_opener_free(&o);
  cl_tbuf_free(&wire);
  cl_tbuf_free(&got);
  free(plain);
  return 0;
}
int cb(void *ud, const uint8_t *p, size_t len) {
  cl_tbuf *b = *(cl_tbuf **)ud;
  cl_tbuf_append(b, p, len);
  return 0;
}

/* Runs a handshake between two in-memory parties; returns dialer, acceptor results. */
static void hs_pair(cl_hs_config *dc, cl_hs_config *ac, const char *dial_to, int *rd, int *ra,
                    cl_handshake *d, cl_handshake *a) {
  uint8_t n1[32], n2[32];
  randombytes_buf(n1, 32);
  randombytes_buf(n2, 32);
  cl_hs_init(d, dc, CL_HS_DIALER, dial_to, n1);
  cl_hs_init(a, ac, CL_HS_ACCEPTOR, NULL, n2);
  cl_tbuf to_a = {0}, to_d = {0};
  cl_hs_start(d, &to_a);
  *rd = *ra = CL_HS_CONTINUE;
  for (int round = 0; round < 10 && (to_a.len || to_d.len); round++) {
    size_t used;
    if (to_a.len && *ra == CL_HS_CONTINUE) {
      cl_tbuf in = to_a;
      to_a = (cl_tbuf){0};
      *ra = cl_hs_feed(a, in.p, in.len, &used, &to_d);
      cl_tbuf_free(&in);
    } else {
      to_a.len = 0;
    }
    if (to_d.len && *rd == CL_HS_CONTINUE) {
      cl_tbuf in = to_d;
      to_d = (cl_tbuf){0};
      *rd = cl_hs_feed(d, in.p, in.len, &used, &to_a);
      cl_tbuf_free(&in);
    } else {
      to_d.len = 0;
    }
  }
  cl_tbuf_free(&to_a);
  cl_tbuf_free(&to_d);
}

static void hs_cfg(cl_hs_config *c, const char *name, const char *cookie, const char *cluster,
                   int encrypt, uint8_t version) {
  memset(c, 0, sizeof *c);
  c->self_name = name;
  c->node_id = "id";
  c->cluster = cluster;
  c->roles = "master";
  c->incarnation = 1;
  c->encrypt = encrypt;
  c->version = version;
  cl_hs_keys((const uint8_t *)cookie, strlen(cookie), c->keys[0].k_hs, c->keys[0].k_sess);
  c->keys[0].id = 1;
  c->n_keys = 1;
}

static int t_handshake_pure(void) {
  cl_hs_config dc, ac;
  cl_handshake d, a;
  int rd, ra;
  hs_cfg(&dc, "a@127.0.0.1:1", "c", "x", 1, 1);
  hs_cfg(&ac, "b@127.0.0.1:2", "c", "x", 1, 1);
  hs_pair(&dc, &ac, "b@127.0.0.1:2", &rd, &ra, &d, &a);
  CHECK(rd == CL_HS_DONE && ra == CL_HS_DONE, "ok case: %d %d %.200s %.200s", rd, ra, d.reason, a.reason);
  CHECK(memcmp(d.key_tx, a.key_rx, 32) == 0 && memcmp(d.key_rx, a.key_tx, 32) == 0 &&
            memcmp(d.key_tx, d.key_rx, 32) != 0,
        "session keys");
  CHECK(strcmp(a.peer_name, "a@127.0.0.1:1") == 0 && strcmp(d.peer_roles, "master") == 0, "peer info");
  cl_hs_free(&d);
  cl_hs_free(&a);
  struct {
    const char *what;
    const char *cookie_b, *cluster_b;
    int enc_b;
    uint8_t ver_b;
    const char *dial_to;
    int fail;
  } cases[] = {
      {"cookie", "other", "x", 1, 1, "b@127.0.0.1:2", CL_HSF_COOKIE},
      {"cluster", "c", "y", 1, 1, "b@127.0.0.1:2", CL_HSF_CLUSTER},
      {"encrypt", "c", "x", 0, 1, "b@127.0.0.1:2", CL_HSF_ENCRYPT},
      {"version", "c", "x", 1, 2, "b@127.0.0.1:2", CL_HSF_VERSION},
      {"name", "c", "x", 1, 1, "z@127.0.0.1:2", CL_HSF_NAME},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    hs_cfg(&ac, "b@127.0.0.1:2", cases[i].cookie_b, cases[i].cluster_b, cases[i].enc_b, cases[i].ver_b);
    hs_pair(&dc, &ac, cases[i].dial_to, &rd, &ra, &d, &a);
    CHECK(ra == CL_HS_FAILED && a.fail == cases[i].fail, "%s: acceptor %d fail=%d (%.300s)", cases[i].what, ra,
          a.fail, a.reason);
    CHECK(rd == CL_HS_FAILED && d.fail == cases[i].fail, "%s: dialer %d fail=%d (%.300s)", cases[i].what, rd,
          d.fail, d.reason);
    cl_hs_free(&d);
    cl_hs_free(&a);
  }
  return 0;
}

static int t_derive_key(void) {
  uint8_t k1[32], k2[32], k3[32];
  cl_transport_derive_key((const uint8_t *)"c", 1, "gossip", k1);
  cl_transport_derive_key((const uint8_t *)"c", 1, "gossip", k2);
  cl_transport_derive_key((const uint8_t *)"c", 1, "other", k3);
  CHECK(memcmp(k1, k2, 32) == 0 && memcmp(k1, k3, 32) != 0, "derivation not deterministic/separated");
  return 0;
}

/* ---- on loopback ---- */

static int pair_up(tnode *a, tnode *b, opts *oa, opts *ob) {
  if (node_start(a, "a", free_port(), oa) || node_start(b, "b", free_port(), ob)) return -1;
  cl_transport_want(a->t, b->name);
  return 0;
}

static int handshake_ok(int encrypt) {
  tnode a, b;
  opts o = O(encrypt);
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  int ok = wait_connected(&a, 1, 2000) && wait_connected(&b, 1, 2000);
  int ups_ok = a.ups == 1 && b.ups == 1 && strcmp(a.up_name, b.name) == 0 && strcmp(b.up_name, a.name) == 0;
  int info_ok = strcmp(a.up_roles, "master,data") == 0 && strlen(a.up_id) == 32;
  int r = cl_transport_send(a.t, b.name, 1, "hello-wo", 8);
  int got = 0;
  if (r == 0) {
    b.next_seq = 0;
    run_until(got_msgs, &b, 2000);
    got = b.msgs == 1 && strcmp(b.last_from, a.name) == 0;
  }
  int short_ok = cl_transport_send(a.t, "b", 1, "hello-wo", 8) == 0;
  node_stop(&a);
  node_stop(&b);
  CHECK(ok, "not connected within 2 s");
  CHECK(ups_ok, "peer_up: a=%d b=%d", a.ups, b.ups);
  CHECK(info_ok, "peer info: roles=%s id=%s", a.up_roles, a.up_id);
  CHECK(got, "message not delivered (send=%d msgs=%llu)", r, (unsigned long long)b.msgs);
  CHECK(short_ok, "short name not accepted");
  return 0;
}
static int t_handshake_ok(void) { return handshake_ok(1); }
static int t_handshake_ok_unencrypted(void) { return handshake_ok(0); }

static int refused_case(opts oa, opts ob, const char *what) {
  tnode a, b;
  CHECK(pair_up(&a, &b, &oa, &ob) == 0, "start");
  /* until each side has refused a handshake (the dialer retries; 2 s is a bound) */
  size_t off = !strcmp(what, "cookie")    ? offsetof(cl_transport_stats, handshake_fail_cookie)
               : !strcmp(what, "cluster") ? offsetof(cl_transport_stats, handshake_fail_cluster)
                                          : offsetof(cl_transport_stats, handshake_fail_encrypt);
  run_until(stat_reached, &(stat_arg){&a, off, 1}, 2000);
  run_until(stat_reached, &(stat_arg){&b, off, 1}, 2000);
  cl_transport_stats sa, sb;
  cl_transport_stats_get(a.t, &sa);
  cl_transport_stats_get(b.t, &sb);
  size_t ca = cl_transport_connected_count(a.t), cb_ = cl_transport_connected_count(b.t);
  node_stop(&a);
  node_stop(&b);
  CHECK(ca == 0 && cb_ == 0 && a.ups == 0 && b.ups == 0, "%s: connected anyway", what);
  uint64_t fa = 0, fb = 0;
  if (!strcmp(what, "cookie")) fa = sa.handshake_fail_cookie, fb = sb.handshake_fail_cookie;
  if (!strcmp(what, "cluster")) fa = sa.handshake_fail_cluster, fb = sb.handshake_fail_cluster;
  if (!strcmp(what, "encrypt")) fa = sa.handshake_fail_encrypt, fb = sb.handshake_fail_encrypt;
  CHECK(fa >= 1 && fb >= 1, "%s: refusal not seen on both sides (dialer %llu, acceptor %llu)", what,
        (unsigned long long)fa, (unsigned long long)fb);
  return 0;
}
static int t_wrong_cookie(void) {
  opts oa = O(1), ob = O(1);
  ob.cookie = "another-cookie";
  return refused_case(oa, ob, "cookie");
}
static int t_other_cluster(void) {
  opts oa = O(1), ob = O(1);
  ob.cluster = "other";
  return refused_case(oa, ob, "cluster");
}
static int t_encrypt_mismatch(void) {
  opts oa = O(1), ob = O(0);
  return refused_case(oa, ob, "encrypt");
}

static int ordering(int encrypt) {
  tnode a, b;
  opts o = O(encrypt);
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  const uint64_t N = 1000000;
  uint8_t msg[16] = {0};
  uint64_t seq = 0;
  uint64_t t0 = uv_hrtime();
  uint64_t end = uv_now(L) + 20000;
  while (b.msgs < N && uv_now(L) < end) {
    while (seq < N) {
      memcpy(msg, &seq, 8);
      int r = cl_transport_send(a.t, b.name, 1, msg, sizeof msg);
      if (r == CL_ENOBUFS) break;
      if (r) break;
      seq++;
      if ((seq & 4095) == 0) break;
    }
    uv_run(L, UV_RUN_NOWAIT);
  }
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  cl_transport_stats st;
  cl_transport_stats_get(a.t, &st);
  printf("# ordering(%s): %llu msgs of 16 B in %.3f s = %.0f msgs/s, %llu writes, %llu records\n",
         encrypt ? "encrypted" : "plain", (unsigned long long)b.msgs, secs, (double)b.msgs / secs,
         (unsigned long long)st.writes, (unsigned long long)st.records_sealed);
  uint64_t got = b.msgs;
  int bad = b.order_bad;
  node_stop(&a);
  node_stop(&b);
  CHECK(got == N, "received %llu of %llu", (unsigned long long)got, (unsigned long long)N);
  CHECK(bad == 0, "%d out of order", bad);
  return 0;
}
static int plain_is_expected(void *ud, const uint8_t *p, size_t n) {
  *(int *)ud = n == 24 && memcmp(p, "over the data connection", 24) == 0;
  return 0;
}

static int dcs_settled(void *ud) {
  tnode **p = ud;
  return (p[0]->dcs || p[0]->dc_failed) && (p[1]->dcs || p[1]->dc_failed);
}

/* A data connection opens on demand (cl_transport_data_open), from either side: none at
 * peer_up; then both sides get the two ends of one socket, with crossed keys, and
 * nothing else changes. opener 0: a, which dialled the control connection (it dials the
 * address that connection reached); 1: b, which accepted it (it dials a's name: its
 * address, or its host resolved when host is given). */
static int data_conns(int encrypt, int opener, const char *host) {
  tnode a, b;
  opts o = O(encrypt);
  o.data = 1;
  o.host = host;
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  int up = wait_connected(&a, 1, 2000) && wait_connected(&b, 1, 2000);
  /* nothing is dialled at peer_up: a marker both ways passes first */
  int marked = up && marker_both_ways(&a, &b);
  uint64_t before_a = STAT(&a, conns), before_b = STAT(&b, conns);
  tnode *op = opener ? &b : &a, *other = opener ? &a : &b;
  cl_transport_data_open(op->t, other->name, op->up_inc);
  tnode *both[2] = {&a, &b};
  int settled = run_until(dcs_settled, both, 3000);
  struct sockaddr_storage sa, pb;
  socklen_t la = sizeof sa, lb = sizeof pb;
  int same = settled && a.dcs == 1 && b.dcs == 1 && getsockname(op->dc_fd, (struct sockaddr *)&sa, &la) == 0 &&
             getpeername(other->dc_fd, (struct sockaddr *)&pb, &lb) == 0 && la == lb && memcmp(&sa, &pb, la) == 0;
  int keys = memcmp(op->dc_tx, other->dc_rx, 32) == 0 && memcmp(op->dc_rx, other->dc_tx, 32) == 0 &&
             memcmp(op->dc_tx, op->dc_rx, 32) != 0;
  cl_transport_stats st;
  cl_transport_stats_get(op->t, &st);
  size_t conns = cl_transport_connected_count(a.t);
  /* a record sealed with the dialer's key opens with the acceptor's */
  int opened = 0;
  if (same && keys) {
    cl_seal_dir tx = {{0}, 0};
    memcpy(tx.key, op->dc_tx, 32);
    cl_tbuf w = {0};
    cl_session_seal(&tx, (const uint8_t *)"over the data connection", 24, &w);
    if (write(op->dc_fd, w.p, w.len) == (ssize_t)w.len) {
      uint8_t in[256];
      ssize_t n = 0;
      for (int i = 0; i < 200 && n <= 0; i++) {
        n = recv(other->dc_fd, in, sizeof in, MSG_DONTWAIT);
        if (n <= 0) usleep(1000);
      }
      cl_opener opn;
      memset(&opn, 0, sizeof opn);
      memcpy(opn.rx.key, other->dc_rx, 32);
      if (n > 0 && cl_session_open(&opn, in, (size_t)n, plain_is_expected, &opened) < 0) opened = 0;
      cl_opener_free(&opn);
    }
    cl_tbuf_free(&w);
  }
  if (a.dc_fd > 0) close(a.dc_fd);
  if (b.dc_fd > 0) close(b.dc_fd);
  node_stop(&a);
  node_stop(&b);
  CHECK(up && marked, "not connected (marker %d)", marked);
  CHECK(before_a == 1 && before_b == 1,
        "a data connection opened before one was asked for (%llu, %llu connections)", (unsigned long long)before_a,
        (unsigned long long)before_b);
  CHECK(settled && !a.dc_failed && !b.dc_failed, "data connections: a %d (failed %d), b %d (failed %d)", a.dcs,
        a.dc_failed, b.dcs, b.dc_failed);
  CHECK(same, "the two sides do not hold the two ends of one socket");
  CHECK(keys, "keys not crossed");
  CHECK(op->dc_pre_out == 0 && other->dc_pre_out > 0,
        "only the acceptor has the handshake's last frame to send (%zu, %zu)", op->dc_pre_out, other->dc_pre_out);
  CHECK(a.up_data == 1 && b.up_data == 1, "peer_up did not say both sides open data connections");
  CHECK(st.data_conns == 1 && conns == 1 && a.ups == 1 && b.ups == 1, "control side changed: %llu data, %zu conns",
        (unsigned long long)st.data_conns, conns);
  CHECK(opened, "a record sealed by the dialer did not open on the acceptor");
  return 0;
}
static int t_data_conns_acceptor(void) { return data_conns(1, 1, NULL); }
static int t_data_conns_resolved(void) { return data_conns(1, 1, "localhost"); }

/* A data connection asked for where there can be none is answered once, with fd -1:
 * a peer nobody knows, one in another life (incarnation), and one that opens none. */
static int t_data_open_refused(void) {
  tnode a, b;
  opts oa = O(1), ob = O(1);
  oa.data = 1;
  CHECK(pair_up(&a, &b, &oa, &ob) == 0, "start");
  int up = wait_connected(&a, 1, 2000) && wait_connected(&b, 1, 2000);
  cl_transport_data_open(a.t, "nobody@127.0.0.1:1", 1);
  int f1 = a.dc_failed;
  cl_transport_data_open(a.t, b.name, a.up_inc + 1);
  int f2 = a.dc_failed;
  cl_transport_data_open(a.t, b.name, a.up_inc); /* b opens none */
  int f3 = a.dc_failed;
  int marked = marker_both_ways(&a, &b);
  uint64_t conns = STAT(&a, conns);
  node_stop(&a);
  node_stop(&b);
  CHECK(up && marked, "not connected (marker %d)", marked);
  CHECK(f1 == 1 && f2 == 2 && f3 == 3 && a.dc_failed == 3 && a.dcs == 0,
        "answers: unknown %d, other life %d, opens none %d, after all %d (%d handed over)", f1, f2 - f1, f3 - f2,
        a.dc_failed, a.dcs);
  CHECK(conns == 1, "%llu connections: something was dialled", (unsigned long long)conns);
  return 0;
}
static int t_data_conns(void) { return data_conns(1, 0, NULL); }
static int t_data_conns_plain(void) { return data_conns(0, 0, NULL); }

/* When one side does not open data connections, the handshake says so: none is tried,
 * and peer_up tells both sides not to wait for one. */
static int t_data_conn_one_side(void) {
  tnode a, b;
  opts oa = O(1), ob = O(1);
  oa.data = 1;
  CHECK(pair_up(&a, &b, &oa, &ob) == 0, "start");
  int up = wait_connected(&a, 1, 2000) && wait_connected(&b, 1, 2000);
  /* a data connection would be dialled at peer_up, before these are sent */
  int marked = marker_both_ways(&a, &b);
  size_t conns = cl_transport_connected_count(b.t);
  uint64_t open_a = STAT(&a, conns), open_b = STAT(&b, conns);
  node_stop(&a);
  node_stop(&b);
  CHECK(up && marked && conns == 1, "not connected (marker %d)", marked);
  CHECK(open_a == 1 && open_b == 1, "a data connection is open or opening (%llu, %llu connections)",
        (unsigned long long)open_a, (unsigned long long)open_b);
  CHECK(a.dcs == 0 && b.dcs == 0 && a.dc_failed == 0, "data connection attempted: %d %d %d", a.dcs, b.dcs,
        a.dc_failed);
  CHECK(a.up_data == 0 && b.up_data == 0, "peer_up promised a data connection (%d, %d)", a.up_data, b.up_data);
  return 0;
}

static int t_ordering_plain(void) { return ordering(0); }
static int t_ordering_encrypted(void) { return ordering(1); }

static int t_enobufs(void) {
  tnode a, b;
  opts oa = O(1), ob = O(1);
  oa.send_queue_max = 64 * 1024;
  CHECK(pair_up(&a, &b, &oa, &ob) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  uint8_t msg[1000];
  memset(msg, 0, sizeof msg);
  int r = 0, n = 0;
  while (n < 1000 && (r = cl_transport_send(a.t, b.name, 1, msg, sizeof msg)) == 0) n++;
  /* once drained, sending works again */
  uint64_t t_end = uv_now(L) + 2000;
  while (cl_transport_queued(a.t, b.name) > 0 && uv_now(L) < t_end) uv_run(L, UV_RUN_ONCE);
  int r2 = cl_transport_send(a.t, b.name, 1, msg, sizeof msg);
  int rc = cl_transport_send(a.t, "nobody@127.0.0.1:1", 1, msg, 1);
  node_stop(&a);
  node_stop(&b);
  CHECK(r == CL_ENOBUFS && n >= 60 && n <= 66, "ENOBUFS after %d sends (r=%d)", n, r);
  CHECK(r2 == 0, "send after drain: %d", r2);
  CHECK(rc == CL_ENOTCONN, "unknown peer: %d", rc);
  return 0;
}

static int t_max_frame(void) {
  tnode a, b, c;
  opts oa = O(1), ob = O(1);
  oa.max_frame = 1 << 20;
  ob.max_frame = 64 * 1024;
  CHECK(node_start(&a, "a", free_port(), &oa) == 0 && node_start(&b, "b", free_port(), &ob) == 0 &&
            node_start(&c, "c", free_port(), &oa) == 0,
        "start");
  cl_transport_want(a.t, b.name);
  cl_transport_want(c.t, b.name);
  CHECK(wait_connected(&b, 2, 2000), "b not connected to both");
  /* mesh: a and c also meet; c's traffic to b is what must survive */
  uint8_t *big = calloc(1, (1 << 20) + 1);
  int r_just = cl_transport_send(a.t, b.name, 1, big, 64 * 1024);
  msgs_arg m = {&b, 1};
  int got_just = run_until(msgs_reached, &m, 2000) && b.last_len == 64 * 1024;
  int r_local = cl_transport_send(a.t, b.name, 1, big, (1 << 20) + 1);
  int r_over = cl_transport_send(a.t, b.name, 1, big, 64 * 1024 + 1);
  int down = run_until(has_down, &b, 2000);
  char reason[32];
  snprintf(reason, sizeof reason, "%s", b.down_reason);
  char dname[128];
  snprintf(dname, sizeof dname, "%s", b.down_name);
  uint64_t before = b.msgs;
  int r_c = cl_transport_send(c.t, b.name, 1, "12345678", 8);
  m.want = before + 1;
  int c_ok = run_until(msgs_reached, &m, 2000) && strcmp(b.last_from, c.name) == 0;
  cl_transport_stats sb;
  cl_transport_stats_get(b.t, &sb);
  free(big);
  node_stop(&a);
  node_stop(&b);
  node_stop(&c);
  CHECK(r_just == 0 && got_just, "frame at the maximum not delivered (r=%d len=%zu)", r_just, b.last_len);
  CHECK(r_local == CL_E2BIG, "local oversize: %d", r_local);
  CHECK(r_over == 0 && down && strcmp(reason, "closed") == 0 && strcmp(dname, a.name) == 0,
        "oversize did not close a-b (r=%d down=%d %s %s)", r_over, down, dname, reason);
  CHECK(sb.frames_refused_oversize == 1, "oversize count %llu", (unsigned long long)sb.frames_refused_oversize);
  CHECK(r_c == 0 && c_ok, "c's traffic harmed (r=%d)", r_c);
  return 0;
}

/* A raw TCP client: writes bytes, expects the server to close on it. */
typedef struct {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  const char *data;
  size_t len;
  int eof, closed;
  char buf[256];
} raw_client;

static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  (void)s;
  raw_client *r = h->data;
  *b = uv_buf_init(r->buf, sizeof r->buf);
}
static void raw_closed(uv_handle_t *h) { ((raw_client *)h->data)->closed = 1; }
static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  raw_client *r = s->data;
  if (n < 0) {
    r->eof = 1;
    uv_close((uv_handle_t *)s, raw_closed);
  }
}
static void raw_connected(uv_connect_t *req, int status) {
  raw_client *r = req->data;
  if (status < 0) {
    r->eof = -1;
    uv_close((uv_handle_t *)&r->tcp, raw_closed);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)r->len);
  uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, NULL);
  uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
}
static int raw_eof(void *ud) { return ((raw_client *)ud)->closed; }

static int stray(const char *data, size_t len, const char *what) {
  tnode a, b;
  opts o = O(1);
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  int port = atoi(strrchr(b.name, ':') + 1);
  raw_client r;
  memset(&r, 0, sizeof r);
  r.data = data;
  r.len = len;
  uv_tcp_init(L, &r.tcp);
  r.tcp.data = &r;
  r.creq.data = &r;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", port, &sa);
  uv_tcp_connect(&r.creq, &r.tcp, (struct sockaddr *)&sa, raw_connected);
  int closed = run_until(raw_eof, &r, 1500);
  if (!closed) {
    uv_close((uv_handle_t *)&r.tcp, raw_closed);
    run_until(raw_eof, &r, 500);
  }
  cl_transport_stats sb;
  cl_transport_stats_get(b.t, &sb);
  int still = cl_transport_connected_count(b.t) == 1 && cl_transport_send(a.t, b.name, 1, "x", 1) == 0;
  node_stop(&a);
  node_stop(&b);
  CHECK(closed && r.eof == 1, "%s: connection not closed by the node", what);
  CHECK(sb.handshake_fail_garbage == 1, "%s: garbage count %llu", what, (unsigned long long)sb.handshake_fail_garbage);
  CHECK(still, "%s: other connection harmed", what);
  return 0;
}
static int t_garbage(void) {
  static const char g[] = "\x13\x37garbage-garbage-garbage-garbage-garbage\x00\xff";
  return stray(g, sizeof g - 1, "garbage");
}
static int t_http_get(void) {
  static const char g[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  return stray(g, sizeof g - 1, "http");
}

static int t_fault_refused_without_env(void) {
  tnode a;
  CHECK(node_start(&a, "a", free_port(), NULL) == 0, "start");
  unsetenv("CLUSTERLUA_FAULTS");
  char err[200] = "";
  int r = cl_transport_fault(a.t, "*", "blackhole", err, sizeof err);
  setenv("CLUSTERLUA_FAULTS", "1", 1);
  int r2 = cl_transport_fault(a.t, "*", "bogus", err, sizeof err);
  int r3 = cl_transport_fault(a.t, "*", "drop=0.5,delay=10", err, sizeof err);
  node_stop(&a);
  CHECK(r == CL_EPERM, "fault accepted without CLUSTERLUA_FAULTS=1: %d", r);
  CHECK(r2 == CL_EINVAL, "bad spec accepted");
  CHECK(r3 == 0, "good spec refused: %s", err);
  return 0;
}

/* A machine that stays saturated makes every tick late. A late tick calls nobody down
 * and looks again after the poll; that second look must decide even if it is late too,
 * or a silent peer is never called down while the saturation lasts. Here every loop turn
 * spends 80 ms busy (later than CL_DET_LATE_MS, 50), and b goes silent.
 * A timer due inside a busy turn runs when the turn ends, so a tick runs 0 to 85 ms late
 * depending on where its due time falls: most ticks are late, not all (a case that read
 * the awareness once, at the down, failed one run in five when the few ticks before it
 * all fell early in a turn). So the case waits until the node has seen itself late
 * before b goes silent, and keeps the highest awareness it saw. */
static void busy_turn(uv_prepare_t *h) {
  (void)h;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do clock_gettime(CLOCK_MONOTONIC, &t);
  while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 80);
}
typedef struct {
  tnode *n;
  uint32_t aw_max;
} late_watch;
static int aware_seen(void *ud) {
  late_watch *w = ud;
  uint32_t aw = cl_transport_awareness(w->n->t);
  if (aw > w->aw_max) w->aw_max = aw;
  return w->aw_max >= 1;
}
static int down_seen(void *ud) {
  late_watch *w = ud;
  aware_seen(ud);
  return w->n->downs > 0;
}
static int t_timeout_when_every_tick_is_late(void) {
  tnode a, b;
  opts o = O(1);
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  char err[200];
  uv_prepare_t busy;
  uv_prepare_init(L, &busy);
  uv_prepare_start(&busy, busy_turn);
  late_watch w = {&a, 0};
  /* every tick has a two-in-five chance or better to run late: within 5 s one has */
  int aware = run_until(aware_seen, &w, 5000);
  int still_up = a.downs == 0;
  cl_transport_fault(a.t, b.name, "blackhole", err, sizeof err);
  uint64_t t0 = uv_now(L);
  uint64_t late0 = STAT(&a, ticks);
  int down = run_until(down_seen, &w, 8000);
  uint64_t dt = uv_now(L) - t0, ticks = STAT(&a, ticks) - late0;
  uv_prepare_stop(&busy);
  uv_close((uv_handle_t *)&busy, NULL);
  node_stop(&a);
  node_stop(&b);
  CHECK(aware, "no tick ran late in 5 s of 80 ms busy turns");
  CHECK(still_up, "b was called down while it still answered (saturation alone)");
  /* the bound: timeout * (1 + CL_DET_AWARENESS_MAX), plus a loop turn or two */
  CHECK(down && dt <= 400 * (1 + CL_DET_AWARENESS_MAX) + 400, "down=%d after %llu ms (%llu ticks)", down,
        (unsigned long long)dt, (unsigned long long)ticks);
  /* the glue widens the election's checks by it: it rose, and never past its cap */
  CHECK(w.aw_max >= 1 && w.aw_max <= CL_DET_AWARENESS_MAX, "awareness at most %u while the ticks ran late", w.aw_max);
  return 0;
}

/* A node stalled past its handshake deadline (a starved process, a pause) finds the
 * connect it issued completed, unread, when it runs again; libuv runs timers before it
 * polls, so the late tick saw only the deadline and gave the dial up ("unable to
 * connect: ETIMEDOUT"), to dial again after a backoff. At 200-300 nodes on 2 cores such
 * dials and handshakes, given up on after the other side had done its part, were
 * thousands a minute per node (issue 18). A late tick now expires no handshake deadline
 * (the look after the poll decides), and the deadline counts from the last progress
 * (the connect, each flight from the peer). Here the loop is held for 450 ms right after
 * a dials (handshake_timeout_ms 300): the dial must connect and authenticate as is. */
/* short timeouts for the cases that wait on them: timeout 300, heartbeat 50, handshake 300 */
static opts fast_opts(void) {
  opts o = O(1);
  o.timeout_ms = 300;
  o.heartbeat_ms = 50;
  o.handshake_timeout_ms = 300;
  return o;
}
static int t_handshake_late_loop(void) {
  tnode a, b;
  opts o = fast_opts();
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do clock_gettime(CLOCK_MONOTONIC, &t);
  while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 450);
  int ok = wait_connected(&a, 1, 3000) && wait_connected(&b, 1, 3000);
  uint64_t failed = STAT(&a, connects_failed), hs_a = STAT(&a, handshake_fail_timeout),
           hs_b = STAT(&b, handshake_fail_timeout);
  printf("# handshake after a 450 ms stall (handshake_timeout_ms 300): connected %d, failed connects %llu, handshake "
         "timeouts %llu/%llu\n",
         ok, (unsigned long long)failed, (unsigned long long)hs_a, (unsigned long long)hs_b);
  node_stop(&a);
  node_stop(&b);
  CHECK(ok, "not connected within 3 s");
  CHECK(failed == 0 && hs_a == 0 && hs_b == 0,
        "the stalled dial was given up: %llu failed connects, %llu and %llu handshake timeouts",
        (unsigned long long)failed, (unsigned long long)hs_a, (unsigned long long)hs_b);
  return 0;
}

static int t_heartbeat_timeout(void) {
  tnode a, b;
  opts o = fast_opts();
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  /* heartbeats keep an idle link up: wait until each side has heard beats spanning more
   * than the timeout (8 beats of 50 ms > 300 ms); a down for silence would have come */
  uint64_t fa0 = STAT(&a, frames_in), fb0 = STAT(&b, frames_in);
  int beats = WAIT_STAT(&a, frames_in, fa0 + 8, 3000) && WAIT_STAT(&b, frames_in, fb0 + 8, 3000);
  int quiet = beats && a.downs == 0 && b.downs == 0;
  char err[200];
  cl_transport_fault(a.t, b.name, "blackhole", err, sizeof err);
  uint64_t t0 = uv_now(L);
  int da = run_until(has_down, &a, 2000);
  uint64_t dt = uv_now(L) - t0;
  int db = run_until(has_down, &b, 2000);
  char ra[32], rb[32];
  snprintf(ra, sizeof ra, "%s", a.down_reason);
  snprintf(rb, sizeof rb, "%s", b.down_reason);
  /* while blackholed it stays down: a redial's handshake cannot finish (the fault drops
   * its frames) and times out; after clearing it comes back */
  WAIT_STAT(&a, handshake_fail_timeout, STAT(&a, handshake_fail_timeout) + 1, 3000);
  size_t during = cl_transport_connected_count(a.t);
  cl_transport_fault(a.t, b.name, "clear", err, sizeof err);
  int back = wait_connected(&a, 1, 6000); /* the redial backoff may have grown past 1 s */
  node_stop(&a);
  node_stop(&b);
  CHECK(quiet, "idle link went down");
  /* a saw silence; b sees silence too, or a's close of the connection: the fault layer
   * drops frames, not the socket's own end (a real blackhole would drop that too) */
  CHECK(da && db && !strcmp(ra, "timeout") && (!strcmp(rb, "timeout") || !strcmp(rb, "closed")),
        "down: a=%d(%s) b=%d(%s)", da, ra, db, rb);
  CHECK(dt >= 250 && dt <= 300 + 200, "timeout after %llu ms (configured 300)", (unsigned long long)dt);
  CHECK(during == 0, "reconnected through a blackhole");
  CHECK(back, "not reconnected after clear");
  return 0;
}

/* ---- sparse failure detection (design.md §4) ---- */

#define SP_N 9
static tnode sp[SP_N];

static int sp_all_connected(void *ud) {
  (void)ud;
  for (int i = 0; i < SP_N; i++)
    if (cl_transport_connected_count(sp[i].t) != SP_N - 1) return 0;
  return 1;
}
static int sp_ring_settled(void *ud) {
  (void)ud;
  for (int i = 0; i < SP_N; i++) {
    cl_transport_stats s;
    cl_transport_stats_get(sp[i].t, &s);
    if (s.watching != 3 || s.watched_by != 3) return 0;
  }
  return 1;
}
typedef struct {
  int victim;
} sp_arg;
static int has_all_downs(void *ud) { return ((tnode *)ud)->downs >= SP_N - 1; }
static int sp_all_down(void *ud) {
  sp_arg *a = ud;
  for (int i = 0; i < SP_N; i++)
    if (i != a->victim && sp[i].downs == 0) return 0;
  return 1;
}

/* SP_N nodes through one seed; each watches 3 and is watched by 3; idle beats go only
 * to watchers; a node gone silent is reported down by every other node within the
 * bound: by its 3 watchers, by the 3 it watches (their link closes when it gives up on
 * them, or the announcement comes first) and by the 2 others through the announcement. */
static int t_sparse_ring(void) {
  opts o = O(1);
  o.heartbeat_ms = 50;
  o.timeout_ms = 300;
  o.handshake_timeout_ms = 300;
  char sn[8];
  for (int i = 0; i < SP_N; i++) {
    snprintf(sn, sizeof sn, "n%d", i);
    CHECK(node_start(&sp[i], sn, free_port(), &o) == 0, "start %d", i);
  }
  for (int i = 1; i < SP_N; i++) cl_transport_want(sp[i].t, sp[0].name);
  int mesh = run_until(sp_all_connected, NULL, 5000);
  int ring = mesh && run_until(sp_ring_settled, NULL, 2000);
  /* at rest: node 1 sends about 3 x 20 beats a second (+ 3 a second to whom it watches),
   * not 8 x 20; the window is measured by its own counter, not slept */
  uint64_t b0 = STAT(&sp[1], beats_out), t0 = uv_now(L);
  int beat = WAIT_STAT(&sp[1], beats_out, b0 + 60, 5000);
  double secs = (double)(uv_now(L) - t0) / 1000.0;
  double rate = (double)(STAT(&sp[1], beats_out) - b0) / (secs > 0 ? secs : 1);
  /* silence node 3 completely (both ways, with everyone) */
  int victim = 3;
  char err[200];
  for (int i = 0; i < SP_N; i++) sp[i].downs = 0;
  cl_transport_fault(sp[victim].t, "*", "blackhole", err, sizeof err);
  uint64_t t1 = uv_now(L);
  sp_arg va = {victim};
  int all = run_until(sp_all_down, &va, 3000);
  uint64_t dt = uv_now(L) - t1;
  /* the silent node's own view: it watches 3, declares them, then watches the next 3
   * (its ring is the peers still connected), and so on: ceil(8 / 3) rounds of a timeout
   * at most (its watchers' closes reach it sooner here: the fault drops frames, not the
   * socket's end) */
  int cut_off = run_until(has_all_downs, &sp[victim], 3 * (300 + 1) + 600);
  uint64_t dv = uv_now(L) - t1;
  uint64_t announced = 0, applied = 0, requested = 0;
  int bad_name = 0;
  for (int i = 0; i < SP_N; i++) {
    if (i == victim) continue;
    announced += STAT(&sp[i], downs_announced);
    applied += STAT(&sp[i], downs_applied);
    requested += STAT(&sp[i], probes_requested);
    bad_name |= strcmp(sp[i].down_name, sp[victim].name) != 0;
  }
  for (int i = 0; i < SP_N; i++) node_stop(&sp[i]);
  CHECK(mesh && ring, "mesh %d, every node watching 3 and watched by 3: %d", mesh, ring);
  CHECK(beat && rate < 3 * 20 * 1.3 + 6 && rate < (SP_N - 1) * 20 * 0.5, "node 1 beats %.1f/s: not sparse", rate);
  CHECK(all && !bad_name, "not every node reported the silent node down (or another one)");
  /* its watchers: timeout_ms (+1) after its last frame, at most a heartbeat before the
   * fault; the others one hop later. The loop is shared by 7 nodes: some slack */
  CHECK(dt <= 300 + 1 + 200, "the last node reported it after %llu ms (timeout 300)", (unsigned long long)dt);
  CHECK(cut_off, "the silent node saw only %d of %d others go after %llu ms", sp[victim].downs, SP_N - 1,
        (unsigned long long)dv);
  CHECK(announced >= 1 && applied >= 1 && requested >= 1, "announced %llu, applied %llu, probes %llu",
        (unsigned long long)announced, (unsigned long long)applied, (unsigned long long)requested);
  return 0;
}

static int was_down(tnode *n, const char *name) {
  for (int i = 0; i < n->n_down_names; i++)
    if (!strcmp(n->down_names[i], name)) return 1;
  return 0;
}
typedef struct {
  tnode *v;
  const char *a, *b;
} pin_arg;
static int pins_down(void *ud) {
  pin_arg *p = ud;
  return was_down(p->v, p->a) && was_down(p->v, p->b);
}
static int pins_watched(void *ud) {
  tnode *v = ud;
  cl_transport_stats s;
  cl_transport_stats_get(v->t, &s);
  return s.watching == 3;
}

/* Pinned peers (the node pins the other voting nodes) are watched besides the ring's
 * successors: a node that stops hearing everyone (here: it drops all it receives, so
 * no close and no announcement reaches it either) reports its pinned peers down within
 * one timeout, although with watchers = 1 the ring's cascade would reach them last
 * (they are its farthest successors). design.md §4, "Partitions". */
static int t_pinned_watched(void) {
  opts o = O(1);
  o.heartbeat_ms = 50;
  o.timeout_ms = 300;
  o.handshake_timeout_ms = 300;
  o.watchers = 1;
  char sn[8];
  for (int i = 0; i < SP_N; i++) {
    snprintf(sn, sizeof sn, "n%d", i);
    CHECK(node_start(&sp[i], sn, free_port(), &o) == 0, "start %d", i);
  }
  for (int i = 1; i < SP_N; i++) cl_transport_want(sp[i].t, sp[0].name);
  int mesh = run_until(sp_all_connected, NULL, 5000);
  /* the victim (node 0); a and b: the last two of its successors, in ring order */
  const char *names[SP_N - 1];
  uint64_t h[SP_N - 1];
  for (int i = 1; i < SP_N; i++) names[i - 1] = sp[i].name, h[i - 1] = cl_watch_hash(sp[i].name);
  size_t order[SP_N - 1];
  size_t got = cl_watch_pick(names, h, SP_N - 1, sp[0].name, cl_watch_hash(sp[0].name), 1, SIZE_MAX, SP_N - 1, order);
  const char *a = names[order[SP_N - 2]], *b = names[order[SP_N - 3]];
  /* a bad list changes nothing */
  const char *bad[2] = {a, "not a name"};
  int refused = cl_transport_pin(sp[0].t, bad, 2) == CL_EINVAL;
  cl_transport_stats s0;
  cl_transport_stats_get(sp[0].t, &s0);
  const char *pins[3] = {a, b, sp[0].name}; /* its own name is ignored */
  int pinned = cl_transport_pin(sp[0].t, pins, 3) == 0;
  int watched = run_until(pins_watched, &sp[0], 2000);
  char err[200];
  sp[0].n_down_names = 0;
  cl_transport_fault(sp[0].t, "*", "oneway_in", err, sizeof err);
  uint64_t t1 = uv_now(L);
  pin_arg pa = {&sp[0], a, b};
  int down = run_until(pins_down, &pa, 3000);
  uint64_t dt = uv_now(L) - t1;
  for (int i = 0; i < SP_N; i++) node_stop(&sp[i]);
  CHECK(mesh && got == SP_N - 1, "mesh %d, ring %zu", mesh, got);
  CHECK(refused && s0.watching == 1, "a bad pin list was not refused, or changed the set (watching %llu)",
        (unsigned long long)s0.watching);
  CHECK(pinned && watched, "pinned %d; not watching its successor and both pins", pinned);
  /* one timeout (+1) after the last frame, which left at most a heartbeat before the
   * fault; 8 nodes share the loop: some slack. The cascade would need 7 and 8 rounds. */
  CHECK(down && dt <= 300 + 1 + 50 + 200, "pinned peers down after %llu ms (%d): not within one timeout",
        (unsigned long long)dt, down);
  return 0;
}

/* ---- a large cluster: members, not a mesh of connections (design.md §5) ---- */

#define LG_N 12
static tnode lg[LG_N];

static int lg_members(void *ud) {
  (void)ud;
  for (int i = 0; i < LG_N; i++)
    if (lg[i].t && cl_transport_member_count(lg[i].t) != LG_N - 1) return 0;
  return 1;
}
static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}
static size_t lg_median_conns(void) {
  size_t v[LG_N];
  for (int i = 0; i < LG_N; i++) v[i] = cl_transport_connected_count(lg[i].t);
  qsort(v, LG_N, sizeof *v, cmp_size);
  return v[LG_N / 2];
}
/* 1 (the seed everyone wants) + 2 watched + about 2 watching */
#define LG_CONN_BOUND 6
static int lg_bounded(void *ud) {
  (void)ud;
  return lg_median_conns() <= LG_CONN_BOUND - 1;
}
typedef struct {
  int from, to;
} lg_pair;
static int lg_connected(int a, int b) {
  const char *st;
  int listed = 0;
  st = status_of(&lg[a], lg[b].name, &listed);
  (void)st;
  cl_transport_stats s;
  (void)s;
  return cl_transport_queued(lg[a].t, lg[b].name) || 0;
}
static int conn_fe_found;
static const char *conn_fe_name;
static void conn_fe(void *ud, const cl_peer_info *p) {
  (void)ud;
  if (!strcmp(p->name, conn_fe_name)) conn_fe_found = p->connected;
}
static int is_connected(tnode *a, const char *name) {
  conn_fe_found = 0;
  conn_fe_name = name;
  cl_transport_foreach(a->t, conn_fe, NULL);
  return conn_fe_found;
}
static int lg_got_msg(void *ud) { return ((tnode *)ud)->msgs > 0; }
static int lg_closed_idle(void *ud) {
  lg_pair *p = ud;
  return !is_connected(&lg[p->from], lg[p->to].name) && !is_connected(&lg[p->to], lg[p->from].name);
}
typedef struct {
  int victim;
  const char *reason;
  const char *reason2; /* also accepted */
} lg_down;
static int lg_all_down(void *ud) {
  lg_down *d = ud;
  for (int i = 0; i < LG_N; i++) {
    if (i == d->victim || !lg[i].t) continue;
    if (!was_down(&lg[i], lg[d->victim].name)) return 0;
  }
  return 1;
}
static int lg_reasons_ok(lg_down *d) {
  for (int i = 0; i < LG_N; i++) {
    if (i == d->victim || !lg[i].t) continue;
    if (strcmp(lg[i].down_name, lg[d->victim].name) ||
        (strcmp(lg[i].down_reason, d->reason) && (!d->reason2 || strcmp(lg[i].down_reason, d->reason2)))) {
      printf("# g%d: last down %s (%s), %d downs\n", i, lg[i].down_name, lg[i].down_reason, lg[i].n_down_names);
      return 0;
    }
  }
  return 1;
}
typedef struct {
  int who;
  int *ups0;
} lg_back;
static int lg_all_up_again(void *ud) {
  lg_back *b = ud;
  int live = 0;
  for (int i = 0; i < LG_N; i++) {
    if (!lg[i].t) continue;
    live++;
    if (i != b->who && lg[i].ups <= b->ups0[i]) return 0;
  }
  /* and it sees every live member up again itself: what it does not see up, it cannot
   * see go down later */
  return cl_transport_member_count(lg[b->who].t) == (size_t)(live - 1);
}
static int lg_downs_total(void) {
  int n = 0;
  for (int i = 0; i < LG_N; i++)
    if (lg[i].t) n += lg[i].downs;
  return n;
}

/* The large-cluster cases' options (full_mesh_max 4, so LG_N nodes take the
 * large-cluster paths) and their start: LG_N nodes named PREFIX0…, every one wanting
 * node 0 (the seed). Returns 0 when all started (ports, if given, gets theirs). */
static opts lg_opts(uint32_t idle_close_ms) {
  opts o = O(1);
  o.heartbeat_ms = 50;
  o.timeout_ms = 300;
  o.handshake_timeout_ms = 500;
  o.watchers = 2;
  o.full_mesh_max = 4;
  o.idle_close_ms = idle_close_ms;
  return o;
}
static int lg_start(const char *prefix, opts *o, int *ports) {
  char sn[16];
  for (int i = 0; i < LG_N; i++) {
    snprintf(sn, sizeof sn, "%s%d", prefix, i);
    int port = free_port();
    if (ports) ports[i] = port;
    if (node_start(&lg[i], sn, port, o) != 0) return -1;
  }
  for (int i = 1; i < LG_N; i++) cl_transport_want(lg[i].t, lg[0].name);
  return 0;
}

/* LG_N nodes, full_mesh_max 4: every node learns every member (peer_up for each) while
 * the median node holds a handful of connections; a message to a member with no
 * connection opens one on demand, is delivered, and the connection closes when idle
 * with no peer_down anywhere; a closed node (kill -9: its sockets close), a silent one
 * (blackholed both ways, as SIGSTOP) and one that leaves are reported down by every
 * member, through the announcements. */
static int t_large_cluster(void) {
  opts o = lg_opts(300);
  CHECK(lg_start("g", &o, NULL) == 0, "start");
  int members = run_until(lg_members, NULL, 8000);
  int ups_ok = 1;
  for (int i = 0; i < LG_N; i++) ups_ok &= lg[i].ups == LG_N - 1;
  int bounded = members && run_until(lg_bounded, NULL, 5000);
  size_t median = lg_median_conns();
  /* a pair with no connection: a message opens one on demand */
  lg_pair pr = {-1, -1};
  for (int a = 1; a < LG_N && pr.from < 0; a++)
    for (int b = 1; b < LG_N; b++)
      if (a != b && !is_connected(&lg[a], lg[b].name)) {
        pr.from = a, pr.to = b;
        break;
      }
  (void)lg_connected;
  int sent = -1, got = 0, idle = 0;
  uint64_t od = 0;
  if (pr.from >= 0) {
    uint64_t seq = 0;
    sent = cl_transport_send(lg[pr.from].t, lg[pr.to].name, 1, &seq, sizeof seq);
    got = run_until(lg_got_msg, &lg[pr.to], 3000);
    od = STAT(&lg[pr.from], on_demand);
    idle = run_until(lg_closed_idle, &pr, 5000);
  }
  int downs_before = lg_downs_total();
  /* kill -9: its sockets close */
  int k = pr.from > 0 && pr.from != 5 ? 5 : 6;
  for (int i = 0; i < LG_N; i++) lg[i].downs = 0, lg[i].n_down_names = 0;
  uint64_t t0 = uv_now(L);
  node_stop(&lg[k]);
  lg_down dk = {k, "closed", NULL};
  int killed = run_until(lg_all_down, &dk, 3000);
  uint64_t dt_kill = uv_now(L) - t0;
  int killed_reasons = lg_reasons_ok(&dk);
  /* silent (as SIGSTOP): blackholed both ways */
  int s = 7;
  char err[200];
  for (int i = 0; i < LG_N; i++) lg[i].downs = 0, lg[i].n_down_names = 0;
  cl_transport_fault(lg[s].t, "*", "blackhole", err, sizeof err);
  t0 = uv_now(L);
  lg_down ds = {s, "timeout", "closed"};
  int stopped = run_until(lg_all_down, &ds, 4000);
  uint64_t dt_stop = uv_now(L) - t0;
  /* the silent node comes back (as SIGCONT): it hears it was declared down, refutes,
   * and every member reports it up again */
  int ups0[LG_N];
  for (int i = 0; i < LG_N; i++) ups0[i] = lg[i].ups;
  cl_transport_fault(lg[s].t, "*", "clear", err, sizeof err);
  lg_back ba = {s, ups0};
  int back = run_until(lg_all_up_again, &ba, 5000);
  uint64_t dt_back = uv_now(L) - t0 - dt_stop;
  /* a clean leave */
  int l = 8;
  for (int i = 0; i < LG_N; i++) lg[i].downs = 0, lg[i].n_down_names = 0;
  cl_transport_leave(lg[l].t);
  lg_down dl = {l, "left", NULL};
  int left = run_until(lg_all_down, &dl, 3000);
  if (!left)
    for (int i = 0; i < LG_N; i++)
      if (i != l && lg[i].t && !was_down(&lg[i], lg[l].name))
        printf("# g%d did not hear g%d leave: connected %d, last down %s (%s)\n", i, l, is_connected(&lg[i], lg[l].name),
               lg[i].down_name, lg[i].down_reason);
  int left_reasons = lg_reasons_ok(&dl);
  size_t seed_conns = 0; /* printed below: the seed is wanted by all */
  (void)seed_conns;
  printf("# large cluster (%d nodes, full_mesh_max 4): median %zu connections; on demand %d->%d; closed node down on "
         "all after %llu ms, silent node after %llu ms, back on all (and all on it) after %llu ms\n",
         LG_N, median, pr.from, pr.to, (unsigned long long)dt_kill, (unsigned long long)dt_stop,
         (unsigned long long)dt_back);
  for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
  CHECK(members && ups_ok, "not every node learned every member once (members %d, peer_up counts %d)", members, ups_ok);
  CHECK(bounded, "median connections %zu, not below %d", median, LG_CONN_BOUND);
  CHECK(pr.from >= 0 && sent == 0 && got && od >= 1, "on demand: pair %d->%d, send %d, got %d, opened %llu", pr.from,
        pr.to, sent, got, (unsigned long long)od);
  CHECK(idle, "the connection opened on demand was not closed when idle");
  CHECK(downs_before == 0, "%d peer_down while forming, sending and closing idle connections", downs_before);
  CHECK(killed && killed_reasons, "a closed node: every member down %d (reasons ok %d) after %llu ms", killed,
        killed_reasons, (unsigned long long)dt_kill);
  CHECK(dt_kill <= 200, "a closed node reported by all after %llu ms", (unsigned long long)dt_kill);
  CHECK(stopped && dt_stop <= 300 + 1 + 50 + 300, "a silent node reported by all: %d after %llu ms", stopped,
        (unsigned long long)dt_stop);
  CHECK(back, "the silent node, back, was not up again on every member (%llu ms)", (unsigned long long)dt_back);
  CHECK(left && left_reasons, "a node that left: every member %d, reasons %d", left, left_reasons);
  return 0;
}

/* A member whose connections close and whose address then accepts TCP but never
 * completes a handshake (a hung process, a proxy, a reused port), found by a review:
 * the check's dial connects ("alive"), so only limbo's bound can take it down; before
 * it, nobody ever did. The bound: timeout_ms × (1 + awareness) + handshake_timeout_ms
 * (300 × 4 + 500 = 1.7 s at most here), then one hop for the announcement. */
static int port_of(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port) : -1;
}
static int rv_shut(int kport) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    int fd = atoi(e->d_name);
    if (fd <= 2) continue;
    struct sockaddr_storage a, b;
    socklen_t la = sizeof a, lb = sizeof b;
    if (getsockname(fd, (struct sockaddr *)&a, &la) || getpeername(fd, (struct sockaddr *)&b, &lb)) continue;
    if (port_of(&a) == kport || port_of(&b) == kport) n += shutdown(fd, SHUT_RDWR) == 0;
  }
  if (d) closedir(d);
  return n;
}
static int rv_k;
static int rv_all_down(void *ud) {
  (void)ud;
  for (int i = 0; i < LG_N; i++)
    if (i != rv_k && lg[i].t && !was_down(&lg[i], lg[rv_k].name)) return 0;
  return 1;
}
static int t_hung_member(void) {
  opts o = lg_opts(60000);
  CHECK(lg_start("r", &o, NULL) == 0, "start");
  int members = run_until(lg_members, NULL, 8000);
  rv_k = 7;
  for (int i = 0; i < LG_N; i++) lg[i].downs = 0, lg[i].n_down_names = 0;
  char err[200];
  cl_transport_fault(lg[rv_k].t, "*", "blackhole", err, sizeof err);
  int kport = atoi(strrchr(lg[rv_k].name, ':') + 1);
  int shut = rv_shut(kport);
  uint64_t t0 = uv_now(L);
  int down = run_until(rv_all_down, NULL, 10000);
  uint64_t dt = uv_now(L) - t0;
  int nd = 0;
  uint64_t unk = 0, alive = 0, chk = 0;
  for (int i = 0; i < LG_N; i++)
    if (i != rv_k) {
      nd += was_down(&lg[i], lg[rv_k].name);
      chk += STAT(&lg[i], closes_checked);
      alive += STAT(&lg[i], closes_alive);
      unk += STAT(&lg[i], closes_unknown);
    }
  printf("# hung member: %d sockets shut; down on %d of %d nodes after %llu ms; checks %llu, alive %llu, unknown %llu\n",
         shut, nd, LG_N - 1, (unsigned long long)dt, (unsigned long long)chk, (unsigned long long)alive,
         (unsigned long long)unk);
  for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
  CHECK(members && shut > 0, "members %d, sockets shut %d", members, shut);
  CHECK(down, "r%d (connections closed, address accepts but never handshakes) down on %d of %d after 10 s", rv_k, nd,
        LG_N - 1);
  /* the bound plus a hop, and slack for twelve nodes sharing one loop */
  CHECK(dt <= 1700 + 1000, "down on all after %llu ms: past the limbo bound", (unsigned long long)dt);
  return 0;
}
/* "Nothing was announced" proved with markers (spec/README.md): a DOWN goes out on the
 * announcer's connections and is passed on from there, so a message sent on every
 * connection after it, in as many rounds as the news has hops, arrives after any of it. */
static uint64_t mk_want[LG_N];
static char mk_to[LG_N][128];
static int mk_n;
static void mk_fe(void *ud, const cl_peer_info *p) {
  (void)ud;
  if (p->connected && mk_n < LG_N) snprintf(mk_to[mk_n++], sizeof mk_to[0], "%s", p->name);
}
static int mk_all(void *ud) {
  (void)ud;
  for (int i = 0; i < LG_N; i++)
    if (lg[i].t && lg[i].msgs < mk_want[i]) return 0;
  return 1;
}
static int lg_markers(int rounds) {
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < LG_N; i++) mk_want[i] = lg[i].msgs;
    for (int i = 0; i < LG_N; i++) {
      if (!lg[i].t) continue;
      mk_n = 0;
      cl_transport_foreach(lg[i].t, mk_fe, NULL);
      for (int k = 0; k < mk_n; k++)
        for (int j = 0; j < LG_N; j++)
          if (lg[j].t && !strcmp(lg[j].name, mk_to[k])) {
            uint64_t seq = 0;
            if (cl_transport_send(lg[i].t, lg[j].name, 1, &seq, sizeof seq) == 0) mk_want[j]++;
          }
    }
    if (!run_until(mk_all, NULL, 3000)) return 0;
  }
  return 1;
}

/* A large cluster: a connection that one side closes on purpose, without IDLE (here
 * cl_transport_disconnect; at 300 nodes, a duplicate of a simultaneous dial dropped, a
 * dialer's handshake timeout after the acceptor installed the connection, a watcher's
 * timeout of a peer that was only slow), is not a crash: the other side re-dials to
 * check, the closer answers (here refusing it, as disconnected), and nobody reports the
 * closer down; before the check, every member did, until it refuted (issue 18: a node of
 * a 300-node cluster logged 2,028 such node_down in 4 minutes). A node that really
 * closed (kill -9) is still reported down by all, reason closed, within the bound. */
static int t_large_close_checked(void) {
  opts o = lg_opts(60000); /* the connections stay as formed: the markers' paths */
  CHECK(lg_start("c", &o, NULL) == 0, "start");
  int members = run_until(lg_members, NULL, 8000);
  /* x closes its connection to y, a peer it holds one with (not the seed) */
  int x = 3, y = -1;
  for (int j = 1; j < LG_N && y < 0; j++)
    if (j != x && is_connected(&lg[x], lg[j].name)) y = j;
  int downs_forming = lg_downs_total();
  for (int i = 0; i < LG_N; i++) lg[i].downs = 0, lg[i].n_down_names = 0;
  if (y > 0) cl_transport_disconnect(lg[x].t, lg[y].name);
  int checked = y > 0 && WAIT_STAT(&lg[y], closes_alive, 1, 3000);
  int marked = checked && lg_markers(3);
  int others = 0;
  for (int i = 0; i < LG_N; i++)
    if (i != x) others += lg[i].downs;
  uint64_t y_checked = y > 0 ? STAT(&lg[y], closes_checked) : 0, y_down = y > 0 ? STAT(&lg[y], closes_down) : 0;
  int x_saw = y > 0 && lg[x].downs == 1 && was_down(&lg[x], lg[y].name);
  /* a node that really closed: down on all, reason closed, and the check says why */
  int k = 7;
  for (int i = 0; i < LG_N; i++) lg[i].downs = 0, lg[i].n_down_names = 0;
  uint64_t t0 = uv_now(L);
  node_stop(&lg[k]);
  lg_down dk = {k, "closed", NULL};
  int killed = run_until(lg_all_down, &dk, 3000);
  uint64_t dt_kill = uv_now(L) - t0;
  int killed_reasons = lg_reasons_ok(&dk);
  uint64_t confirmed = 0;
  for (int i = 0; i < LG_N; i++)
    if (lg[i].t) confirmed += STAT(&lg[i], closes_down);
  printf("# close checked: c%d closed c%d: c%d checked %llu (answered), others' node_down %d; kill -9 of c%d: down on "
         "all after %llu ms, %llu checks found it gone\n",
         x, y, y, (unsigned long long)y_checked, others, k, (unsigned long long)dt_kill, (unsigned long long)confirmed);
  for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
  CHECK(members && downs_forming == 0, "formed %d, %d node_down while forming", members, downs_forming);
  CHECK(y > 0, "c%d holds no connection but to the seed", x);
  CHECK(checked && y_checked >= 1 && y_down == 0, "c%d's check of the close: answered %d, checked %llu, down %llu", y,
        checked, (unsigned long long)y_checked, (unsigned long long)y_down);
  CHECK(marked, "the markers did not go round");
  CHECK(others == 0, "%d node_down on other nodes after c%d closed its connection to c%d (last: %s)", others, x, y,
        lg[y].down_name);
  CHECK(x_saw, "c%d did not report c%d (its own decision) alone: %d downs", x, y, lg[x].downs);
  CHECK(killed && killed_reasons && dt_kill <= 200, "a closed node: down on all %d (reasons %d) after %llu ms", killed,
        killed_reasons, (unsigned long long)dt_kill);
  CHECK(confirmed >= 1, "no check found the closed node gone");
  return 0;
}

/* Whether lg[w] watches lg[x]: x among w's `watchers` successors, as watch_recompute
 * picks them in a large cluster, on the ring of every node of lg but `gone` (-1: none;
 * the ring is of members, so a node down everywhere is not on it). */
static int lg_watches_without(int w, int x, size_t k, int gone) {
  const char *names[LG_N];
  uint64_t h[LG_N];
  size_t n = 0, wi = 0, idx[LG_N];
  for (int i = 0; i < LG_N; i++) {
    if (i == gone) continue;
    if (i == w) wi = n;
    idx[n] = (size_t)i, names[n] = lg[i].name, h[n] = cl_watch_hash(lg[i].name), n++;
  }
  size_t sel[CL_WATCH_MAX];
  size_t m = cl_watch_pick(names, h, n, lg[w].name, h[wi], 1, wi, k, sel);
  for (size_t j = 0; j < m; j++)
    if (idx[sel[j]] == (size_t)x) return 1;
  return 0;
}

static int lg_watches(int w, int x, size_t k) { return lg_watches_without(w, x, k, -1); }

/* Hubs (cl_transport_reach_all, which the node sets on a voting node that may lead): a
 * hub dials every member (each end holds the other up and the same members: digests
 * match, no list is sent) and keeps those connections past idle_close_ms while a
 * non-hub's on-demand connection closes idle. When a member that is not a hub is
 * killed, every node reports it down ("closed"); a non-hub that does not watch it runs
 * no check of its own (it leaves the close to the hubs and the member's watchers), and
 * passes the DOWN on to the hubs at most (nothing when a hub told it). The same kill
 * without hubs, first, is the control: there such a node checks and floods. */
static int lg_hubs_full(void *ud) {
  (void)ud;
  return cl_transport_connected_count(lg[1].t) == LG_N - 1 && cl_transport_connected_count(lg[2].t) == LG_N - 1;
}
/* both hubs lack more members than they may dial in a tick (*ud): the formation's extra
 * connections have closed idle (how many are left when the members are all known
 * varies: news goes out on the tick) */
static int lg_hubs_lack(void *ud) {
  size_t more = *(const uint32_t *)ud;
  return cl_transport_connected_count(lg[1].t) + more < LG_N - 1 && cl_transport_connected_count(lg[2].t) + more < LG_N - 1;
}
static int t_large_hubs(void) {
  int flooded = 0; /* control round: a non-hub non-watcher sent more DOWNs than there are hubs */
  for (int round = 0; round < 2; round++) {
    int hubs = round == 1;
    opts o = lg_opts(300);
    o.reach_per_tick = 2; /* fewer than a hub lacks: its dials are spread over ticks */
    CHECK(lg_start(hubs ? "h" : "n", &o, NULL) == 0, "start");
    int members = run_until(lg_members, NULL, 8000);
    int full = 1, kept = 1, idled = 1;
    int digests = 1, paced = 1;
    if (hubs) {
      /* the hubs' new connections are to members both ends hold up, with the same views:
       * digests pass, no member list is sent either way */
      uint64_t sent0 = 0, skip0 = 0;
      for (int i = 0; i < LG_N; i++) sent0 += STAT(&lg[i], lists_sent), skip0 += STAT(&lg[i], lists_skipped);
      /* formation's extra connections close idle first: the hubs dial what they lack */
      int settled = run_until(lg_hubs_lack, &o.reach_per_tick, 5000);
      /* a hub that begins to reach every member dials reach_per_tick of them at once,
       * the rest on the next ticks */
      size_t lack = LG_N - 1 - cl_transport_connected_count(lg[1].t);
      uint64_t r0 = STAT(&lg[1], reach_dials);
      cl_transport_reach_all(lg[1].t, 1);
      uint64_t r1 = STAT(&lg[1], reach_dials);
      cl_transport_reach_all(lg[2].t, 1);
      full = run_until(lg_hubs_full, NULL, 5000) && lg_markers(1);
      /* more than a tick's worth in all: the later ones came on later ticks (a member may
       * also come up by its own dial meanwhile, so not necessarily one per member lacking) */
      paced = lack > o.reach_per_tick && r1 - r0 <= o.reach_per_tick && STAT(&lg[1], reach_dials) - r0 > o.reach_per_tick;
      printf("# a hub lacking %zu members dialled %llu at once, %llu in all (%u a tick)\n", lack,
             (unsigned long long)(r1 - r0), (unsigned long long)(STAT(&lg[1], reach_dials) - r0), o.reach_per_tick);
      uint64_t sent1 = 0, skip1 = 0;
      for (int i = 0; i < LG_N; i++) sent1 += STAT(&lg[i], lists_sent), skip1 += STAT(&lg[i], lists_skipped);
      digests = settled && sent1 == sent0 && skip1 > skip0;
      printf("# hubs dialled every member: member lists sent %llu, digests matched %llu\n",
             (unsigned long long)(sent1 - sent0), (unsigned long long)(skip1 - skip0));
      uint64_t hub_idle0 = STAT(&lg[1], idle_closed) + STAT(&lg[2], idle_closed);
      /* a non-hub opens a connection on demand to a member it holds none with, and it
       * closes idle: the idle close ran, and left the hubs' connections alone */
      lg_pair pr = {-1, -1};
      for (int a = 3; a < LG_N && pr.from < 0; a++)
        for (int b = 3; b < LG_N && pr.from < 0; b++)
          if (a != b && !is_connected(&lg[a], lg[b].name) && !is_connected(&lg[b], lg[a].name)) pr.from = a, pr.to = b;
      idled = 0;
      if (pr.from >= 0) {
        uint64_t seq = 0, idle0 = STAT(&lg[pr.from], idle_closed);
        idled = cl_transport_send(lg[pr.from].t, lg[pr.to].name, 1, &seq, sizeof seq) == 0 &&
                run_until(lg_got_msg, &lg[pr.to], 3000) &&
                WAIT_STAT(&lg[pr.from], idle_closed, idle0 + 1, 3000) && run_until(lg_closed_idle, &pr, 3000);
      }
      kept = cl_transport_connected_count(lg[1].t) == LG_N - 1 && cl_transport_connected_count(lg[2].t) == LG_N - 1 &&
             STAT(&lg[1], idle_closed) + STAT(&lg[2], idle_closed) == hub_idle0;
    }
    int k = 7;
    uint64_t sent0[LG_N], checked0[LG_N];
    for (int i = 0; i < LG_N; i++) {
      lg[i].downs = 0, lg[i].n_down_names = 0;
      sent0[i] = STAT(&lg[i], downs_sent);
      checked0[i] = STAT(&lg[i], closes_checked);
    }
    node_stop(&lg[k]);
    lg_down dk = {k, "closed", NULL};
    int all = run_until(lg_all_down, &dk, 3000) && lg_reasons_ok(&dk);
    int marked = lg_markers(3); /* whatever the DOWN set going has arrived */
    int bad = -1, hub_checks = 0;
    uint64_t bad_sent = 0;
    for (int i = 0; i < LG_N; i++) {
      if (i == k) continue;
      uint64_t sent = STAT(&lg[i], downs_sent) - sent0[i], checked = STAT(&lg[i], closes_checked) - checked0[i];
      int watcher = lg_watches(i, k, o.watchers);
      if (hubs && (i == 1 || i == 2)) {
        hub_checks += checked >= 1;
        continue;
      }
      if (watcher) continue;
      if (!hubs && (checked >= 1 || sent > 2)) flooded = 1;
      if (hubs && (checked || sent > 2) && bad < 0) bad = i, bad_sent = sent;
    }
    printf("# %s: kill -9 of g7: down on all %d; hub checks %d; a non-watcher that checked or sent more than 2 DOWNs: "
           "%s%d (%llu sent)\n",
           hubs ? "hubs g1, g2" : "no hubs", all, hub_checks, bad < 0 ? "none " : "g", bad,
           (unsigned long long)bad_sent);
    /* Then the seed every node wants (g0), with every frame 100 ms late, so the news of
     * the crash comes well after each node's connection to g0 closed: a non-hub that
     * does not watch g0 still leaves the verdict to the hubs and watchers. It used to
     * re-dial a wanted peer 25-75 ms after the close, and that refused dial, g0 being
     * still up here, was its own finding, announced to every connection (at 300 nodes,
     * each node flooding the DOWN of a crashed first master, a seed). */
    int seed_all = 1, seed_bad = -1;
    uint64_t seed_bad_sent = 0;
    if (hubs) {
      char ferr[128];
      for (int i = 0; i < LG_N; i++)
        if (i != k) cl_transport_fault(lg[i].t, "*", "delay=100", ferr, sizeof ferr);
      for (int i = 0; i < LG_N; i++) {
        if (i == k) continue;
        lg[i].downs = 0, lg[i].n_down_names = 0;
        sent0[i] = STAT(&lg[i], downs_sent);
        checked0[i] = STAT(&lg[i], closes_checked);
      }
      node_stop(&lg[0]);
      lg_down d0 = {0, "closed", NULL};
      int d_all = run_until(lg_all_down, &d0, 3000), d_why = d_all && lg_reasons_ok(&d0);
      /* each node has decided how it learned of the crash once it holds g0 down (the
       * counters are the senders'); the markers, without the delay, see any DOWN still
       * going out */
      for (int i = 1; i < LG_N; i++)
        if (i != k) cl_transport_fault(lg[i].t, "*", "clear", ferr, sizeof ferr);
      int d_mk = d_why && lg_markers(2);
      seed_all = d_all && d_why && d_mk;
      if (!seed_all) printf("# the seed's crash: down on all %d, reasons %d, markers %d\n", d_all, d_why, d_mk);
      for (int i = 3; i < LG_N; i++) {
        /* g7 is down everywhere by now: the ring the watchers come from is without it */
        if (i == k || lg_watches_without(i, 0, o.watchers, k) || lg_watches(i, 0, o.watchers)) continue;
        uint64_t sent = STAT(&lg[i], downs_sent) - sent0[i], checked = STAT(&lg[i], closes_checked) - checked0[i];
        if ((checked || sent > 2) && seed_bad < 0) seed_bad = i, seed_bad_sent = sent;
      }
      printf("# kill -9 of the seed g0, frames 100 ms late: down on all %d; a non-watcher that checked or sent more "
             "than 2 DOWNs: %s%d (%llu sent)\n",
             seed_all, seed_bad < 0 ? "none " : "g", seed_bad, (unsigned long long)seed_bad_sent);
    }
    for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
    CHECK(members, "formed");
    CHECK(full, "hubs hold a connection to every member");
    CHECK(paced, "a hub's dials to reach every member were not spread over ticks");
    CHECK(digests, "new connections between members with the same views sent lists or matched no digest");
    CHECK(idled && kept, "an on-demand connection closed idle (%d) and the hubs kept theirs (%d)", idled, kept);
    CHECK(all && marked, "the killed member down on all, reason closed (%d); markers %d", all, marked);
    if (hubs) {
      CHECK(hub_checks == 2, "each hub checked the close itself (%d)", hub_checks);
      CHECK(bad < 0, "g%d (no hub, no watcher) checked or passed on %llu DOWNs", bad, (unsigned long long)bad_sent);
      CHECK(seed_all, "the killed seed down on all, reason closed");
      CHECK(seed_bad < 0, "g%d (no hub, no watcher) checked or announced the seed's crash itself (%llu DOWNs sent)",
            seed_bad, (unsigned long long)seed_bad_sent);
    }
  }
  CHECK(flooded, "without hubs no non-watcher checked or passed the DOWN on widely: the control shows nothing");
  return 0;
}

/* A large cluster: a node whose connection to a member closes without IDLE, whose
 * check finds the member there, and who then cannot complete a handshake with it (here
 * the member disconnected it, so it refuses its dials), does not watch that member: it
 * leaves the verdict to the member's watchers, which still hear it, and reports nothing.
 * Before, every such node ran limbo's bound on its own and declared the member down
 * once its handshakes had not come back within it; at 300 nodes on 2 cores, where
 * handshakes took longer than the bound, that was 10,782 false DOWNs in 40 s (issue 18).
 * Markers go round until the bound (timeout_ms × 4 + handshake_timeout_ms, 1.7 s here)
 * has passed since the close, then once more: nothing was announced. */
static int t_large_limbo_watchers(void) {
  opts o = lg_opts(60000);
  CHECK(lg_start("w", &o, NULL) == 0, "start");
  int members = run_until(lg_members, NULL, 8000);
  /* x closes its connection to y, a node (not the seed) that does not watch x */
  int x = -1, y = -1;
  for (int i = 1; i < LG_N && y < 0; i++)
    for (int j = 1; j < LG_N && y < 0; j++)
      if (i != j && !lg_watches(j, i, (size_t)o.watchers) && is_connected(&lg[i], lg[j].name)) x = i, y = j;
  int downs_forming = lg_downs_total();
  for (int i = 0; i < LG_N; i++) lg[i].downs = 0, lg[i].n_down_names = 0;
  uint64_t t0 = uv_now(L);
  if (y > 0) cl_transport_disconnect(lg[x].t, lg[y].name);
  int left = y > 0 && WAIT_STAT(&lg[y], closes_to_watchers, 1, 3000);
  uint64_t bound = (uint64_t)o.timeout_ms * (1 + CL_DET_AWARENESS_MAX) + o.handshake_timeout_ms;
  int marked = left, rounds = 0;
  while (marked && uv_now(L) - t0 <= bound && rounds < 100000) marked = lg_markers(1), rounds++;
  marked = marked && lg_markers(3);
  int others = 0;
  for (int i = 0; i < LG_N; i++)
    if (i != x) others += lg[i].downs;
  uint64_t y_down = y > 0 ? STAT(&lg[y], closes_down) : 0, y_tw = y > 0 ? STAT(&lg[y], closes_to_watchers) : 0;
  printf("# limbo left to watchers: w%d closed w%d (which does not watch it): w%d left it to the watchers %llu time(s); "
         "%d marker rounds over %llu ms (bound %llu ms); others' node_down %d\n",
         x, y, y, (unsigned long long)y_tw, rounds + 3, (unsigned long long)(uv_now(L) - t0), (unsigned long long)bound,
         others);
  for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
  CHECK(members && downs_forming == 0, "formed %d, %d node_down while forming", members, downs_forming);
  CHECK(y > 0, "no pair: a node connected to one that does not watch it");
  CHECK(left && y_down == 0, "w%d did not leave w%d to its watchers (%d), or took it down (%llu)", y, x, left,
        (unsigned long long)y_down);
  CHECK(marked, "the markers did not go round");
  CHECK(others == 0, "%d node_down on nodes other than w%d after it closed its connection to w%d (w%d's last: %s)",
        others, x, y, y, y > 0 ? lg[y].down_name : "");
  return 0;
}

/* Above full_mesh_max a watcher gives a silent peer large_timeout_ms, a pinned one (the
 * voting nodes) too: so a large cluster rides out a member starved for more than 400 ms
 * (at 300 nodes on 2 cores the cluster never formed otherwise). Here timeout_ms 300,
 * large_timeout_ms 1200: a silent member is down on every other node no sooner than
 * 1200 ms after its last beat and within 1200 + 1 + a hop; once back, a silent member
 * that one node pins likewise (not at 300 ms). */
/* how many nodes reported a peer down sooner than ms after t0: none may before the large
 * timeout, counted from the last beat before the silence (at most 5/4 of a heartbeat, 50 ms,
 * earlier: 1100 of 1200 allows two) */
static int lg_early(int victim, uint64_t t0, uint64_t ms) {
  int n = 0;
  for (int i = 0; i < LG_N; i++)
    if (i != victim && lg[i].downs && lg[i].first_down_ms && lg[i].first_down_ms - t0 < ms) n++;
  return n;
}
static int t_large_timeout(void) {
  opts o = lg_opts(60000);
  o.large_timeout_ms = 1200;
  CHECK(lg_start("t", &o, NULL) == 0, "start");
  int members = run_until(lg_members, NULL, 8000);
  char err[200];
  int s = 6;
  for (int i = 0; i < LG_N; i++) lg[i].downs = 0, lg[i].n_down_names = 0, lg[i].first_down_ms = 0;
  cl_transport_fault(lg[s].t, "*", "blackhole", err, sizeof err);
  uint64_t t0 = uv_now(L);
  lg_down ds = {s, "timeout", "closed"};
  int silent = run_until(lg_all_down, &ds, 5000);
  uint64_t dt_large = uv_now(L) - t0;
  int early = lg_early(s, t0, 1100);
  int ups0[LG_N];
  for (int i = 0; i < LG_N; i++) ups0[i] = lg[i].ups;
  cl_transport_fault(lg[s].t, "*", "clear", err, sizeof err);
  lg_back ba = {s, ups0};
  int back = run_until(lg_all_up_again, &ba, 5000);
  /* a pinned member: p pins q, q falls silent */
  int p = 2, q = 9;
  const char *pin[1] = {lg[q].name};
  int pinned = cl_transport_pin(lg[p].t, pin, 1) == 0;
  /* the pin's WATCH must reach q before q falls silent, or q never beats to p: markers */
  int marked = pinned && lg_markers(2);
  for (int i = 0; i < LG_N; i++) lg[i].downs = 0, lg[i].n_down_names = 0, lg[i].first_down_ms = 0;
  cl_transport_fault(lg[q].t, "*", "blackhole", err, sizeof err);
  t0 = uv_now(L);
  lg_down dq = {q, "timeout", "closed"};
  int quick = run_until(lg_all_down, &dq, 5000);
  uint64_t dt_pinned = uv_now(L) - t0;
  int early_p = lg_early(q, t0, 1100);
  printf("# large_timeout_ms 1200 (timeout_ms 300): a silent member down on all %d after %llu ms (%d reports before "
         "1100 ms); one pinned by a node: down on all %d after %llu ms\n",
         silent, (unsigned long long)dt_large, early, quick, (unsigned long long)dt_pinned);
  for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
  CHECK(members, "not formed");
  /* the upper bounds: the timeout, a hop, and the awareness a late loop may add (twelve
   * nodes share one loop here, under sanitizers on a busy machine too) */
  CHECK(silent && early == 0 && dt_large >= 1100 && dt_large <= 1200 + 1 + 50 + 600 + 300 * CL_DET_AWARENESS_MAX,
        "a silent member: down on all %d after %llu ms, %d nodes before 1100 ms", silent,
        (unsigned long long)dt_large, early);
  CHECK(back, "the silent member, back, was not up again everywhere");
  CHECK(pinned && marked, "pin %d, markers %d", pinned, marked);
  CHECK(quick && early_p == 0 && dt_pinned >= 1100 && dt_pinned <= 1200 + 1 + 50 + 600 + 300 * CL_DET_AWARENESS_MAX,
        "a silent pinned member: down on all %d after %llu ms, %d nodes before 1100 ms", quick,
        (unsigned long long)dt_pinned, early_p);
  return 0;
}

/* Above full_mesh_max a watcher asks its peers for beats every large_heartbeat_ms (here
 * 400 ms, a quarter of large_timeout_ms, against heartbeat_ms 50), so a
 * large cluster at rest sends about an eighth of the beats, with no false down. A mesh
 * newcomer among large members (full_mesh_max 5: four old members stay large by the
 * hysteresis, the newcomer counts five and is a mesh) asks for its own 50 ms with its
 * 300 ms timeout, shorter than the large beat, and is beaten at that: no false down on
 * either side. Beating at one's own interval whatever the watcher asked, the newcomer
 * found its watched peers silent past its timeout. Then the cluster shrinks to 3 and is
 * a mesh again: its 300 ms timeout counts from the new WATCH, not from a beat sent on
 * the 400 ms grid (which was already past it: found by a review). */
static int lg_members_are(void *ud);
static int lg_window_passed(void *ud) { return uv_now(L) >= *(uint64_t *)ud; }
static uint64_t lg_beats(void) {
  uint64_t n = 0;
  for (int i = 0; i < LG_N; i++)
    if (lg[i].t) n += STAT(&lg[i], beats_out);
  return n;
}
static int t_large_heartbeat(void) {
  opts o = lg_opts(300);
  o.large_timeout_ms = 1600;
  o.large_heartbeat_ms = 400;
  o.full_mesh_max = 5;
  const uint64_t lhb = 400;
  int port[LG_N];
  CHECK(lg_start("h", &o, port) == 0, "start");
  int members = run_until(lg_members, NULL, 8000);
  int bounded = members && run_until(lg_bounded, NULL, 5000);
  int marked = bounded && lg_markers(2);
  /* at rest: each node watches 2 successors, so 2 LG_N watched links; a link beats at
   * most once per 400 ms tick, plus the watcher's own beat at least once a second
   * (CL_DET_BEAT_MAX_MS carries the round trip); at 50 ms it would be 8 times as many */
  int downs0 = lg_downs_total();
  uint64_t b0 = lg_beats(), t0 = uv_now(L), end = t0 + 1500;
  run_until(lg_window_passed, &end, 3000);
  uint64_t beats = lg_beats() - b0, ms = uv_now(L) - t0;
  uint64_t most = 2 * LG_N * (ms / lhb + 1) + 2 * LG_N * (ms / 1000 + 1), fewest = 2 * LG_N * (ms / lhb) / 2;
  int quiet = lg_markers(1) && lg_downs_total() == downs0;
  /* shrink to 4 (they stay large: 4 x 4 > 3 x 5), then a newcomer that counts 5: a mesh */
  int gone = 1;
  for (int i = LG_N - 1; i >= 4; i--) {
    cl_transport_leave(lg[i].t);
    lg_down dl = {i, "left", NULL};
    gone &= run_until(lg_all_down, &dl, 3000);
    node_stop(&lg[i]);
  }
  int large_kept = 1;
  for (int i = 0; i < 4; i++) large_kept &= cl_transport_large_timeout(lg[i].t) == 1600;
  for (int i = 0; i < 4; i++) lg[i].downs = 0, lg[i].n_down_names = 0;
  int x = 4;
  CHECK(node_start(&lg[x], "hx", port[x], &o) == 0, "newcomer");
  cl_transport_want(lg[x].t, lg[0].name);
  size_t four = 4;
  int joined = run_until(lg_members_are, &four, 5000);
  int mesh = cl_transport_large_timeout(lg[x].t) == 0;
  uint64_t mixed_end = uv_now(L) + 1500;
  run_until(lg_window_passed, &mixed_end, 3000);
  int mixed_quiet = lg_markers(1) && lg_downs_total() == 0;
  for (int i = 0; i <= x; i++)
    if (lg[i].downs) printf("# h%d: %d down(s), last %s (%s)\n", i, lg[i].downs, lg[i].down_name, lg[i].down_reason);
  int mixed_downs = lg_downs_total();
  /* shrink to 3: x and 3 leave; 0..2 count 3 (3 x 4 <= 3 x 5) and are a mesh again */
  int shrunk = 1;
  for (int i = x; i >= 3; i--) {
    cl_transport_leave(lg[i].t);
    lg_down dl = {i, "left", NULL};
    shrunk &= run_until(lg_all_down, &dl, 3000);
    node_stop(&lg[i]);
  }
  for (int i = 0; i < 3; i++) lg[i].downs = 0, lg[i].n_down_names = 0;
  int meshed = 1;
  for (int i = 0; i < 3; i++) meshed &= cl_transport_large_timeout(lg[i].t) == 0;
  uint64_t shrink_end = uv_now(L) + 1500;
  run_until(lg_window_passed, &shrink_end, 3000);
  int shrink_quiet = lg_markers(1) && lg_downs_total() == 0;
  for (int i = 0; i < 3; i++)
    if (lg[i].downs) printf("# h%d after the shrink: %d down(s), last %s (%s)\n", i, lg[i].downs, lg[i].down_name,
                            lg[i].down_reason);
  printf("# large_heartbeat_ms 400 (heartbeat_ms 50): %llu beats in %llu ms by %d nodes (bound %llu..%llu); mesh "
         "newcomer among 4 large: joined %d, mesh %d, downs %d; shrunk to 3: mesh %d, downs %d\n",
         (unsigned long long)beats, (unsigned long long)ms, LG_N, (unsigned long long)fewest, (unsigned long long)most,
         joined, mesh, mixed_downs, meshed, lg_downs_total());
  int shrink_downs = lg_downs_total();
  for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
  CHECK(members && bounded && marked, "formed %d, bounded %d, markers %d", members, bounded, marked);
  CHECK(beats >= fewest && beats <= most, "%llu beats in %llu ms, not within %llu..%llu", (unsigned long long)beats,
        (unsigned long long)ms, (unsigned long long)fewest, (unsigned long long)most);
  CHECK(quiet, "a node was reported down at rest");
  CHECK(gone && large_kept, "left %d, the rest still large %d", gone, large_kept);
  CHECK(joined && mesh, "newcomer joined %d, a mesh %d", joined, mesh);
  CHECK(mixed_quiet, "a mesh newcomer among large members: %d downs", mixed_downs);
  CHECK(shrunk && meshed, "shrunk %d, a mesh again %d", shrunk, meshed);
  CHECK(shrink_quiet, "a mesh again after large: %d downs", shrink_downs);
  return 0;
}

/* The default large beat is half the large timeout (here 500 ms of 1000), so a watched
 * peer's suspicion point falls half a beat after the grid's tick. The tick used to be
 * armed for it before that peer's beat, sent on the same tick, had arrived to move it,
 * and every node ticked twice per beat, the second time for nothing (and sent its
 * round-trip beats there, waking its targets too). At rest now a node ticks once per
 * beat: a frame from the peer the tick waits for re-arms it (issue 18). */
static uint64_t lg_ticks(int i) { return STAT(&lg[i], ticks); }
static int t_large_one_tick(void) {
  opts o = lg_opts(300);
  o.large_timeout_ms = 1000; /* the beat derived: 500 */
  int port[LG_N];
  CHECK(lg_start("o", &o, port) == 0, "start");
  int members = run_until(lg_members, NULL, 8000);
  int bounded = members && run_until(lg_bounded, NULL, 5000);
  int marked = bounded && lg_markers(2);
  int downs0 = lg_downs_total();
  uint64_t k0[LG_N], b0 = lg_beats(), t0 = uv_now(L), end = t0 + 2500;
  for (int i = 0; i < LG_N; i++) k0[i] = lg_ticks(i);
  run_until(lg_window_passed, &end, 4000);
  uint64_t ms = uv_now(L) - t0, most_ticks = 0, beats = lg_beats() - b0;
  for (int i = 0; i < LG_N; i++)
    if (lg_ticks(i) - k0[i] > most_ticks) most_ticks = lg_ticks(i) - k0[i];
  int quiet = lg_markers(1) && lg_downs_total() == downs0;
  /* one tick per 500 ms, and one more for a window that starts or ends off the grid */
  uint64_t bound = ms / 500 + 2;
  /* each node watches 2: 2 LG_N links beat at most once a tick, and their watchers
   * once a second (at least once per two ticks) */
  uint64_t fewest = 2 * LG_N * (ms / 500 - 1), most = 2 * LG_N * (ms / 500 + 1) + 2 * LG_N * (ms / 1000 + 1);
  printf("# large beat half the timeout (500 of 1000 ms): at most %llu ticks per node in %llu ms (bound %llu); "
         "%llu beats (bound %llu..%llu)\n",
         (unsigned long long)most_ticks, (unsigned long long)ms, (unsigned long long)bound, (unsigned long long)beats,
         (unsigned long long)fewest, (unsigned long long)most);
  for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
  CHECK(members && bounded && marked, "formed %d, bounded %d, markers %d", members, bounded, marked);
  CHECK(quiet, "a node was reported down at rest");
  CHECK(most_ticks <= bound, "a node ticked %llu times in %llu ms, more than once per beat (%llu)",
        (unsigned long long)most_ticks, (unsigned long long)ms, (unsigned long long)bound);
  CHECK(beats >= fewest && beats <= most, "%llu beats in %llu ms, not within %llu..%llu", (unsigned long long)beats,
        (unsigned long long)ms, (unsigned long long)fewest, (unsigned long long)most);
  return 0;
}

/* every node sees `want` members */
static int lg_members_are(void *ud) {
  size_t want = *(size_t *)ud;
  for (int i = 0; i < LG_N; i++)
    if (lg[i].t && cl_transport_member_count(lg[i].t) != want) return 0;
  return 1;
}

/* A large cluster (full_mesh_max 4) does not re-dial its failed members as a mesh does
 * (design.md §5). A member that failed and comes back knowing nobody (restarted with no
 * peer to dial: here the seed unwanted once formed, and the node restarted with no
 * wanted peer) was left out for good: nobody dialled it. Now each node dials one failed
 * member per redial_failed_ms, picked at random, and it is back on every node. */
static int t_large_redial_failed(void) {
  opts o = lg_opts(60000);
  o.redial_failed_ms = 300;
  int port[LG_N];
  CHECK(lg_start("r", &o, port) == 0, "start");
  int members = run_until(lg_members, NULL, 8000);
  for (int i = 1; i < LG_N; i++) cl_transport_unwant(lg[i].t, lg[0].name);
  int z = 5;
  node_stop(&lg[z]);
  lg_down dz = {z, "closed", NULL};
  int down = run_until(lg_all_down, &dz, 3000);
  uint64_t redials0 = 0;
  for (int i = 0; i < LG_N; i++)
    if (lg[i].t) redials0 += STAT(&lg[i], failed_redials);
  char sn[16];
  snprintf(sn, sizeof sn, "r%d", z);
  CHECK(node_start(&lg[z], sn, port[z], &o) == 0, "restart %d", z); /* wants nobody */
  uint64_t t0 = uv_now(L);
  size_t all = LG_N - 1;
  int back = run_until(lg_members_are, &all, 5000);
  uint64_t dt = uv_now(L) - t0;
  uint64_t redials = 0;
  for (int i = 0; i < LG_N; i++) redials += STAT(&lg[i], failed_redials);
  printf("# failed member re-dialled: r%d restarted knowing nobody, back on all %d after %llu ms (%llu dials of failed "
         "members by %d nodes, at most one per node per 300 ms)\n",
         z, back, (unsigned long long)dt, (unsigned long long)(redials - redials0), LG_N - 1);
  for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
  CHECK(members && down, "formed %d, the stopped node down on all %d", members, down);
  CHECK(back, "the restarted node is not a member of every node (nor they of it) after 5 s");
  CHECK(redials - redials0 <= (uint64_t)(LG_N - 1) * (dt / 300 + 2), "%llu re-dials in %llu ms: not one per interval",
        (unsigned long long)(redials - redials0), (unsigned long long)dt);
  return 0;
}

/* Only one link is silent (x watches y, the link between them blackholed both ways):
 * x's helpers hear y, so x closes its own link alone and nobody declares y down. */
static int t_sparse_one_link(void) {
  opts o = O(1);
  o.heartbeat_ms = 50;
  o.timeout_ms = 300;
  o.handshake_timeout_ms = 300;
  char sn[8];
  for (int i = 0; i < SP_N; i++) {
    snprintf(sn, sizeof sn, "n%d", i);
    CHECK(node_start(&sp[i], sn, free_port(), &o) == 0, "start %d", i);
  }
  for (int i = 1; i < SP_N; i++) cl_transport_want(sp[i].t, sp[0].name);
  int ring = run_until(sp_all_connected, NULL, 5000) && run_until(sp_ring_settled, NULL, 2000);
  /* x = node 0; y = the first peer it watches (watch.h, as the transport computes it) */
  const char *names[SP_N - 1];
  uint64_t h[SP_N - 1];
  for (int i = 1; i < SP_N; i++) names[i - 1] = sp[i].name, h[i - 1] = cl_watch_hash(sp[i].name);
  size_t pick[1];
  cl_watch_pick(names, h, SP_N - 1, sp[0].name, cl_watch_hash(sp[0].name), 1, SIZE_MAX, 1, pick);
  int x = 0, y = (int)pick[0] + 1;
  char err[200];
  for (int i = 0; i < SP_N; i++) sp[i].downs = 0;
  cl_transport_fault(sp[x].t, sp[y].name, "blackhole", err, sizeof err);
  cl_transport_fault(sp[y].t, sp[x].name, "blackhole", err, sizeof err);
  int cut = run_until(has_down, &sp[x], 3000);
  char xr[32], xn[128];
  memcpy(xr, sp[x].down_reason, sizeof xr); /* both NUL-terminated, the same sizes */
  memcpy(xn, sp[x].down_name, sizeof xn);
  /* the marker: a message from x to every other node after the cut, on the connections
   * a DOWN would have taken, then one back (nothing else was closed) */
  int marked = 1, others = 0;
  for (int i = 0; i < SP_N; i++)
    if (i != x && i != y) marked &= marker_both_ways(&sp[x], &sp[i]);
  for (int i = 0; i < SP_N; i++)
    if (i != x && i != y) others += sp[i].downs;
  uint64_t alive = STAT(&sp[x], probe_alive), announced = STAT(&sp[x], downs_announced);
  for (int i = 0; i < SP_N; i++) node_stop(&sp[i]);
  CHECK(ring, "no ring");
  CHECK(cut && !strcmp(xr, "timeout") && !strcmp(xn, sp[y].name), "x did not close its silent link: %s %s", xn, xr);
  CHECK(alive >= 1 && announced == 0, "x: %llu alive answers, %llu announced", (unsigned long long)alive,
        (unsigned long long)announced);
  CHECK(marked && others == 0, "a node other than x and y saw a node go down (%d), marker %d", others, marked);
  return 0;
}

static int t_close_is_closed(void) {
  tnode a, b;
  opts o = O(1);
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  uint64_t t0 = uv_now(L);
  node_stop(&b);
  int d = run_until(has_down, &a, 1000);
  uint64_t dt = uv_now(L) - t0;
  char r[32];
  snprintf(r, sizeof r, "%s", a.down_reason);
  /* a keeps re-dialling: a new b on the same port is re-joined without action */
  int port = atoi(strrchr(b.name, ':') + 1);
  int ok2 = node_start(&b, "b", port, &o) == 0 && wait_connected(&a, 1, 3000);
  int ups = a.ups;
  node_stop(&a);
  node_stop(&b);
  CHECK(d && !strcmp(r, "closed"), "down=%d reason=%s", d, r);
  CHECK(dt <= 100, "closed reported after %llu ms", (unsigned long long)dt);
  CHECK(ok2 && ups == 2, "restarted peer not re-joined (ups=%d)", ups);
  return 0;
}

static int t_leave_is_left(void) {
  tnode a, b;
  opts o = O(1);
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  cl_transport_leave(b.t);
  int d = run_until(has_down, &a, 1000);
  char r[32];
  snprintf(r, sizeof r, "%s", a.down_reason);
  node_stop(&b);
  node_stop(&a);
  CHECK(d && !strcmp(r, "left"), "down=%d reason=%s", d, r);
  CHECK(b.downs == 0, "the leaving node reported downs");
  return 0;
}

static int t_mesh(void) {
  tnode a, b, c;
  opts o = O(1);
  CHECK(node_start(&a, "a", free_port(), &o) == 0 && node_start(&b, "b", free_port(), &o) == 0 &&
            node_start(&c, "c", free_port(), &o) == 0,
        "start");
  cl_transport_want(a.t, b.name);
  CHECK(wait_connected(&a, 1, 2000), "a-b");
  cl_transport_want(c.t, b.name);
  int ok = wait_connected(&a, 2, 2000) && wait_connected(&c, 2, 2000) && wait_connected(&b, 2, 2000);
  int r = cl_transport_send(a.t, c.name, 1, "12345678", 8);
  node_stop(&a);
  node_stop(&b);
  node_stop(&c);
  CHECK(ok, "no full mesh: a=%d b=%d c=%d", a.ups, b.ups, c.ups);
  CHECK(r == 0, "a cannot send to c");
  return 0;
}

static int t_no_mesh(void) {
  tnode a, b, c;
  opts o = O(1);
  o.mesh = 0;
  CHECK(node_start(&a, "a", free_port(), &o) == 0 && node_start(&b, "b", free_port(), &o) == 0 &&
            node_start(&c, "c", free_port(), &o) == 0,
        "start");
  cl_transport_want(a.t, b.name);
  cl_transport_want(c.t, b.name);
  int ok = wait_connected(&b, 2, 2000);
  /* with a mesh, b would tell a of c on their connection, before this marker */
  int marked = marker_both_ways(&a, &b);
  size_t ca = cl_transport_connected_count(a.t);
  int listed = 0;
  status_of(&a, b.name, &listed);
  node_stop(&a);
  node_stop(&b);
  node_stop(&c);
  CHECK(ok && marked, "not connected (marker %d)", marked);
  CHECK(ca == 1 && listed == 1, "mesh=0 still meshed (a has %zu connections, knows %d peers)", ca, listed);
  return 0;
}

static int t_simultaneous_dial(void) {
  int fails = 0;
  for (int i = 0; i < 5; i++) {
    tnode a, b;
    opts o = O(1);
    if (node_start(&a, "a", free_port(), &o) || node_start(&b, "b", free_port(), &o)) return 1;
    cl_transport_want(a.t, b.name);
    cl_transport_want(b.t, a.name);
    int ok = wait_connected(&a, 1, 2000) && wait_connected(&b, 1, 2000);
    /* until the duplicate connection is gone on both sides, then a message each way on
     * the one that stays: a flap from the tie-break would have come before it */
    uint64_t t_end = uv_now(L) + 2000;
    while ((STAT(&a, conns) != 1 || STAT(&b, conns) != 1) && uv_now(L) < t_end) uv_run(L, UV_RUN_ONCE);
    ok = ok && marker_both_ways(&a, &b);
    int stable = a.ups == 1 && b.ups == 1 && a.downs == 0 && b.downs == 0 &&
                 cl_transport_connected_count(a.t) == 1;
    if (!ok || !stable) {
      snprintf(fail_msg, sizeof fail_msg, "round %d: ok=%d ups %d/%d downs %d/%d", i, ok, a.ups, b.ups,
               a.downs, b.downs);
      fails++;
    }
    node_stop(&a);
    node_stop(&b);
  }
  return fails ? 1 : 0;
}

/* The round trip a node measured to its peers (0 until the first echoed beat). */
typedef struct {
  uint32_t rtt;
  int n;
} rtt_acc;
static void rtt_fe(void *ud, const cl_peer_info *p) {
  rtt_acc *acc = ud;
  acc->n++;
  if (p->connected) acc->rtt = p->rtt_us;
}
static int has_rtt(void *ud) {
  rtt_acc acc = {0, 0};
  cl_transport_foreach(((tnode *)ud)->t, rtt_fe, &acc);
  return acc.rtt > 0;
}

static int t_rtt(void) {
  tnode a, b;
  opts o = O(1);
  o.heartbeat_ms = 20;
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  run_until(has_rtt, &a, 2000);
  rtt_acc acc = {0, 0};
  cl_transport_foreach(a.t, rtt_fe, &acc);
  node_stop(&a);
  node_stop(&b);
  CHECK(acc.n == 1 && acc.rtt > 0 && acc.rtt < 100000, "rtt %u from %d peers", acc.rtt, acc.n);
  return 0;
}



/* What a discovery source does when it drops a node: stop dialling, nothing more. The
 * marker is a message sent after the unwant on the same connection: once it is in,
 * anything the unwant would have done (a close, a down) would have come first. */
static int t_unwant(void) {
  tnode a, b;
  opts o = O(1);
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  cl_transport_unwant(a.t, b.name);
  /* a sweep runs (it must leave a connected peer alone) */
  WAIT_STAT(&a, sweeps, STAT(&a, sweeps) + 1, 2500);
  uint64_t seq = 0;
  int r = cl_transport_send(a.t, b.name, 1, &seq, 8);
  int got = run_until(got_msgs, &b, 2000);
  size_t ca = cl_transport_connected_count(a.t);
  int downs_a = a.downs, downs_b = b.downs;
  char st[16];
  snprintf(st, sizeof st, "%s", status_of(&a, b.name, NULL));
  node_stop(&a);
  node_stop(&b);
  CHECK(r == 0 && got, "marker not delivered after unwant (send=%d)", r);
  CHECK(downs_a == 0 && downs_b == 0 && ca == 1, "unwant dropped the connection: downs a=%d b=%d", downs_a, downs_b);
  CHECK(!strcmp(st, "up"), "status %s", st);
  return 0;
}

typedef struct {
  tnode *n;
  uint64_t base, grow;
} bytes_arg;
static int bytes_grew(void *ud) {
  bytes_arg *a = ud;
  cl_transport_stats s;
  cl_transport_stats_get(a->n->t, &s);
  return s.bytes_in >= a->base + a->grow;
}

/* disconnect drops the connection and keeps it dropped, although the peer still wants
 * it: its re-dials (the marker: they reach a, twice) are refused, no node_up follows
 * until a connects again. */
static int t_disconnect(void) {
  tnode a, b;
  opts o = O(1);
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  cl_transport_want(b.t, a.name);
  CHECK(wait_connected(&a, 1, 2000) && wait_connected(&b, 1, 2000), "not connected");
  cl_transport_disconnect(a.t, b.name);
  int db = run_until(has_down, &b, 1000);
  cl_transport_stats s;
  cl_transport_stats_get(a.t, &s);
  bytes_arg ba = {&a, s.bytes_in, 1};
  int tried1 = run_until(bytes_grew, &ba, 2000);
  cl_transport_stats_get(a.t, &s);
  ba.base = s.bytes_in;
  int tried2 = run_until(bytes_grew, &ba, 2000);
  int ups_a = a.ups, ups_b = b.ups, downs_a = a.downs;
  char st[16];
  snprintf(st, sizeof st, "%s", status_of(&a, b.name, NULL));
  cl_transport_want(a.t, b.name);
  int back = wait_connected(&a, 1, 3000) && wait_connected(&b, 1, 3000);
  node_stop(&a);
  node_stop(&b);
  CHECK(db && downs_a == 1 && !strcmp(a.down_reason, "closed"), "down b=%d a=%d %s", db, downs_a, a.down_reason);
  CHECK(tried1 && tried2, "b did not re-dial (%d %d)", tried1, tried2);
  CHECK(ups_a == 1 && ups_b == 1, "flapped back: ups a=%d b=%d", ups_a, ups_b);
  CHECK(!strcmp(st, "disconnected"), "status %s", st);
  CHECK(back, "want after disconnect did not reconnect");
  return 0;
}

static int has_forgotten(void *ud) { return ((tnode *)ud)->forgotten > 0; }

/* A peer that dialled us and failed (nobody here wants it) is re-dialled, then
 * forgotten reconnect_timeout after it went down; a kept one is not. */
static int t_forget_failed(void) {
  tnode a, b;
  opts oa = O(1), ob = O(1);
  oa.reconnect_timeout_ms = 1000;
  CHECK(node_start(&a, "a", free_port(), &oa) == 0 && node_start(&b, "b", free_port(), &ob) == 0, "start");
  cl_transport_want(b.t, a.name);
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  char bname[64];
  snprintf(bname, sizeof bname, "%s", b.name);
  a.keep = 1;
  node_stop(&b);
  int d = run_until(has_down, &a, 1000);
  uint64_t t_down = uv_now(L);
  char st1[16];
  snprintf(st1, sizeof st1, "%s", status_of(&a, bname, NULL));
  /* kept (a voting member): still there well past the timeout */
  int kept_forgotten = run_until(has_forgotten, &a, 2500);
  char st2[16];
  snprintf(st2, sizeof st2, "%s", status_of(&a, bname, NULL));
  a.keep = 0;
  int f = run_until(has_forgotten, &a, 2500);
  int listed = -1;
  status_of(&a, bname, &listed);
  uint64_t after = a.forgot_at - t_down;
  node_stop(&a);
  CHECK(d && !strcmp(st1, "down"), "down=%d status=%s", d, st1);
  CHECK(!kept_forgotten && !strcmp(st2, "down"), "a kept peer was forgotten (status %s)", st2);
  CHECK(f && !strcmp(a.forgot_name, bname) && listed == 0, "not forgotten (f=%d listed=%d)", f, listed);
  CHECK(after >= 2500, "forgotten %llu ms after going down", (unsigned long long)after);
  return 0;
}

/* Not kept: forgotten once the timeout passes, and not before. */
static int t_forget_timeout(void) {
  tnode a, b;
  opts oa = O(1), ob = O(1);
  oa.reconnect_timeout_ms = 1000;
  CHECK(node_start(&a, "a", free_port(), &oa) == 0 && node_start(&b, "b", free_port(), &ob) == 0, "start");
  cl_transport_want(b.t, a.name);
  CHECK(wait_connected(&a, 1, 2000), "not connected");
  node_stop(&b);
  int d = run_until(has_down, &a, 1000);
  uint64_t t_down = uv_now(L);
  int f = run_until(has_forgotten, &a, 3000);
  uint64_t after = a.forgot_at - t_down;
  node_stop(&a);
  CHECK(d && f, "down=%d forgotten=%d", d, f);
  /* the sweep runs at least once a second: forgotten within a second of the timeout */
  CHECK(after >= 950 && after <= 3000, "forgotten %llu ms after going down", (unsigned long long)after);
  return 0;
}

/* A peer that left is forgotten at once unless wanted; a wanted one stays, configured. */
static int t_forget_left(void) {
  tnode a, b, c;
  opts o = O(1);
  CHECK(node_start(&a, "a", free_port(), &o) == 0 && node_start(&b, "b", free_port(), &o) == 0 &&
            node_start(&c, "c", free_port(), &o) == 0,
        "start");
  cl_transport_want(b.t, a.name); /* a does not want b */
  cl_transport_want(a.t, c.name); /* a wants c */
  CHECK(wait_connected(&a, 2, 2000), "not connected");
  uint64_t t0 = uv_now(L);
  cl_transport_leave(b.t);
  int f = run_until(has_forgotten, &a, 1000);
  uint64_t dt = uv_now(L) - t0;
  char fname[128];
  snprintf(fname, sizeof fname, "%s", a.forgot_name);
  cl_transport_leave(c.t);
  a.downs = 0;
  int dc = run_until(has_down, &a, 1000);
  /* a sweep after the down: it would have forgotten c */
  WAIT_STAT(&a, sweeps, STAT(&a, sweeps) + 1, 2500);
  char st[16];
  snprintf(st, sizeof st, "%s", status_of(&a, c.name, NULL));
  int forgotten = a.forgotten;
  node_stop(&b);
  node_stop(&c);
  node_stop(&a);
  CHECK(f && !strcmp(fname, b.name) && dt < 300, "left peer forgotten=%d after %llu ms", f,
        (unsigned long long)dt);
  CHECK(dc && forgotten == 1 && !strcmp(st, "configured"), "wanted peer that left: forgotten=%d status=%s",
        forgotten, st);
  return 0;
}

/* node_up carries a measured round trip (the handshake's), not 0. */
static int t_rtt_at_up(void) {
  tnode a, b;
  opts o = O(1);
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  int ok = wait_connected(&a, 1, 2000) && wait_connected(&b, 1, 2000);
  uint32_t ra = a.up_rtt, rb = b.up_rtt;
  node_stop(&a);
  node_stop(&b);
  CHECK(ok, "not connected");
  CHECK(ra > 1 && ra < 1000000 && rb > 1 && rb < 1000000, "rtt at node_up: dialer %u, acceptor %u", ra, rb);
  return 0;
}


/* ---- the keyring (keyring.c, and the handshake with several keys) ---- */

static int t_keyring_parse(void) {
  cl_keyring_list l;
  char err[200];
  const char *ok = "first-key-0123456789\r\n\nsecond-key-0123456789\n";
  CHECK(cl_keyring_parse(ok, strlen(ok), 1, &l, err, sizeof err) == 0 && l.n == 2, "two keys: %s", err);
  CHECK(l.key[0].len == 20 && memcmp(l.key[0].p, "first-key-0123456789", 20) == 0, "CRLF stripped, first is primary");
  struct {
    const char *what, *text, *want;
    int strict;
  } bad[] = {
      {"empty", "", "empty", 1},
      {"blank lines only", "\n \n\t\n", "empty", 1},
      {"short key", "short\n", "line 1: the key is 5 bytes long", 1},
      {"duplicate", "abcdefghijklmnopq\nabcdefghijklmnopq\n", "line 2: the same key", 1},
      {"trailing space", "abcdefghijklmnopq \n", "line 1: the key begins or ends with whitespace", 1},
      {"lone CR inside", "abcdefgh\rijklmnopq\n", "carriage return", 1},
      {"duplicate (lenient)", "abc\nabc\n", "line 2: the same key", 0},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    err[0] = 0;
    int r = cl_keyring_parse(bad[i].text, strlen(bad[i].text), bad[i].strict, &l, err, sizeof err);
    CHECK(r == -1 && strstr(err, bad[i].want), "%s: r=%d err=%s", bad[i].what, r, err);
  }
  /* a NUL byte, 17 keys, 10 MB */
  char nul[] = "abcdefghijklmnopq\nabcdefgh\0ijklmnopq\n";
  CHECK(cl_keyring_parse(nul, sizeof nul - 1, 1, &l, err, sizeof err) == -1 && strstr(err, "line 2") && strstr(err, "NUL"),
        "NUL: %s", err);
  char many[17 * 20 + 1];
  size_t w = 0;
  for (int i = 0; i < 17; i++) w += (size_t)snprintf(many + w, sizeof many - w, "key-number-%06d-x\n", i);
  CHECK(cl_keyring_parse(many, w, 1, &l, err, sizeof err) == -1 && strstr(err, "more than 16 keys"), "17 keys: %s", err);
  size_t big = 10u << 20;
  char *huge = malloc(big);
  CHECK(huge != NULL, "malloc");
  memset(huge, 'k', big);
  int r = cl_keyring_parse(huge, big, 1, &l, err, sizeof err);
  free(huge);
  CHECK(r == -1 && strstr(err, "at most 65536"), "10 MB: %s", err);
  /* lenient: what --cookie carried into DATA/keyring may be short */
  CHECK(cl_keyring_parse("abc\nabcdefghijklmnopq\n", 22, 0, &l, err, sizeof err) == 0 && l.n == 2, "lenient: %s", err);
  CHECK(cl_keyring_check_key((const uint8_t *)"abcdefghijklmnop", 16, err, sizeof err) == 0, "16 bytes is enough");
  return 0;
}

static int t_keyring_fingerprint(void) {
  char a[17], b[17], c2[17];
  uint64_t t0 = uv_hrtime();
  CHECK(cl_keyring_fingerprint((const uint8_t *)"some-key-0123456789", 19, a) == 0, "fp");
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  CHECK(cl_keyring_fingerprint((const uint8_t *)"some-key-0123456789", 19, b) == 0, "fp again");
  CHECK(cl_keyring_fingerprint((const uint8_t *)"some-key-0123456780", 19, c2) == 0, "fp other");
  CHECK(cl_keyring_fp_valid(a) && strcmp(a, b) == 0 && strcmp(a, c2) != 0, "%s %s %s", a, b, c2);
  CHECK(!cl_keyring_fp_valid("0123456789ABCDEF") && !cl_keyring_fp_valid("0123456789abcde"), "fp_valid");
  (void)ms;
  return 0;
}

static void hs_ring(cl_hs_config *c, const char *name, const char *const *keys, size_t n) {
  hs_cfg(c, name, keys[0], "x", 1, CL_PROTO_VERSION);
  for (size_t i = 0; i < n; i++) {
    cl_hs_keys((const uint8_t *)keys[i], strlen(keys[i]), c->keys[i].k_hs, c->keys[i].k_sess);
    c->keys[i].id = (uint32_t)(10 + i);
    cl_keyring_fingerprint((const uint8_t *)keys[i], strlen(keys[i]), c->keys[i].fp);
  }
  c->n_keys = n;
}

static int t_handshake_keyring(void) {
  cl_hs_config dc, ac;
  cl_handshake d, a;
  int rd, ra;
  const char *d_keys[] = {"key-two-0123456789", "key-one-0123456789"};
  const char *a_keys[] = {"key-one-0123456789", "key-three-01234567"};
  hs_ring(&dc, "a@127.0.0.1:1", d_keys, 2);
  hs_ring(&ac, "b@127.0.0.1:2", a_keys, 2);
  hs_pair(&dc, &ac, "b@127.0.0.1:2", &rd, &ra, &d, &a);
  CHECK(rd == CL_HS_DONE && ra == CL_HS_DONE, "shared second key: %d %d %.200s %.200s", rd, ra, d.reason, a.reason);
  CHECK(strcmp(d.key.fp, a.key.fp) == 0 && strcmp(d.key.fp, ac.keys[0].fp) == 0, "both under key-one");
  CHECK(memcmp(d.key_tx, a.key_rx, 32) == 0, "session keys agree");
  cl_hs_free(&d);
  cl_hs_free(&a);
  /* no key in common: the acceptor's log names both sides, the dialer hears only its own */
  const char *x_keys[] = {"key-four-012345678"};
  hs_ring(&dc, "a@127.0.0.1:1", x_keys, 1);
  hs_pair(&dc, &ac, "b@127.0.0.1:2", &rd, &ra, &d, &a);
  CHECK(ra == CL_HS_FAILED && a.fail == CL_HSF_COOKIE && rd == CL_HS_FAILED && d.fail == CL_HSF_COOKIE, "refused");
  CHECK(strstr(a.reason, dc.keys[0].fp) && strstr(a.reason, ac.keys[0].fp) && strstr(a.reason, ac.keys[1].fp),
        "acceptor names both: %.300s", a.reason);
  CHECK(strstr(d.reason, dc.keys[0].fp) && !strstr(d.reason, ac.keys[0].fp) && !strstr(d.reason, ac.keys[1].fp),
        "dialer learns nothing of the acceptor's ring: %.300s", d.reason);
  CHECK(a.fail_key == -1, "a failure naming no key of ours is 'unknown'");
  cl_hs_free(&d);
  cl_hs_free(&a);
  /* a dialer of the previous version is refused with both versions named */
  hs_ring(&dc, "a@127.0.0.1:1", d_keys, 2);
  dc.version = CL_PROTO_VERSION - 1;
  hs_pair(&dc, &ac, "b@127.0.0.1:2", &rd, &ra, &d, &a);
  CHECK(ra == CL_HS_FAILED && a.fail == CL_HSF_VERSION && strstr(a.reason, "version 5") && strstr(a.reason, "speaks 6"),
        "old version: %.300s", a.reason);
  cl_hs_free(&d);
  cl_hs_free(&a);
  return 0;
}

/* ---- re-authentication when a key leaves the ring ---- */

typedef struct {
  char fp[17];
  int n;
} fp_seen;
static void peer_fp(void *ud, const cl_peer_info *p) {
  fp_seen *f = ud;
  if (p->connected) {
    snprintf(f->fp, sizeof f->fp, "%s", p->fingerprint ? p->fingerprint : "");
    f->n++;
  }
}
typedef struct {
  tnode *a, *b;
  const char *fp;
} both_fp_arg;
static int both_under(void *ud) {
  both_fp_arg *x = ud;
  fp_seen fa = {"", 0}, fb = {"", 0};
  cl_transport_foreach(x->a->t, peer_fp, &fa);
  cl_transport_foreach(x->b->t, peer_fp, &fb);
  return fa.n == 1 && fb.n == 1 && !strcmp(fa.fp, x->fp) && !strcmp(fb.fp, x->fp);
}
static int either_down(void *ud) {
  both_fp_arg *x = ud;
  return x->a->downs > 0 && x->b->downs > 0;
}

static int b_refused_unknown(void *ud) { return cl_transport_auth_failures_unknown(((tnode *)ud)->t) >= 1; }

static int t_reauth(void) {
  tnode a, b;
  opts o = O(1);
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000) && wait_connected(&b, 1, 2000), "not connected");
  const char *k1 = "secret-cookie", *k2 = "second-key-0123456789", *k3 = "third-key-0123456789";
  cl_transport_key_fingerprint(a.t, 1, "1111111111111111");
  cl_transport_key_fingerprint(b.t, 1, "1111111111111111");
  both_fp_arg x = {&a, &b, "1111111111111111"};
  CHECK(both_under(&x), "first under the cookie");
  /* messages flow throughout: none lost, none reordered */
  uint8_t msg[16] = {0};
  uint64_t seq = 0;
  b.next_seq = 0;
  cl_transport_key ring2[2] = {{(const uint8_t *)k2, strlen(k2), 2, "2222222222222222"},
                               {(const uint8_t *)k1, strlen(k1), 1, NULL}};
  char err[160];
  CHECK(cl_transport_set_keys(a.t, ring2, 2, err, sizeof err) == 0, "install+use on a: %s", err);
  CHECK(cl_transport_set_keys(b.t, ring2, 2, err, sizeof err) == 0, "install+use on b: %s", err);
  for (int i = 0; i < 50; i++) {
    memcpy(msg, &seq, 8);
    if (cl_transport_send(a.t, b.name, 1, msg, sizeof msg) == 0) seq++;
    uv_run(L, UV_RUN_NOWAIT);
  }
  /* remove the cookie on both: the connection moves to K2 over its session */
  CHECK(cl_transport_set_keys(a.t, ring2, 1, err, sizeof err) == 0, "remove on a: %s", err);
  for (int i = 0; i < 50; i++) {
    memcpy(msg, &seq, 8);
    if (cl_transport_send(a.t, b.name, 1, msg, sizeof msg) == 0) seq++;
    uv_run(L, UV_RUN_NOWAIT);
  }
  CHECK(cl_transport_set_keys(b.t, ring2, 1, err, sizeof err) == 0, "remove on b: %s", err);
  x.fp = "2222222222222222";
  int moved = run_until(both_under, &x, 1000);
  for (int i = 0; i < 50; i++) {
    memcpy(msg, &seq, 8);
    if (cl_transport_send(a.t, b.name, 1, msg, sizeof msg) == 0) seq++;
    uv_run(L, UV_RUN_NOWAIT);
  }
  msgs_arg ma = {&b, seq};
  int all = run_until(msgs_reached, &ma, 2000);
  cl_transport_key_stat st[4];
  size_t nk = cl_transport_key_stats(a.t, st, 4);
  CHECK(moved, "not every connection under K2 within 1 s");
  CHECK(all && b.msgs == seq && b.order_bad == 0, "messages: sent %llu got %llu, out of order %d",
        (unsigned long long)seq, (unsigned long long)b.msgs, b.order_bad);
  CHECK(a.downs == 0 && b.downs == 0 && a.ups == 1 && b.ups == 1, "a peer went down: a %d/%d b %d/%d", a.ups, a.downs,
        b.ups, b.downs);
  CHECK(nk == 1 && st[0].primary && st[0].connections == 1 && st[0].handshakes >= 1, "stats: %zu keys, %llu conns",
        nk, (unsigned long long)st[0].connections);
  /* no key in common any more: the connection closes (both sides see it) */
  cl_transport_key ring3[1] = {{(const uint8_t *)k3, strlen(k3), 3, "3333333333333333"}};
  CHECK(cl_transport_set_keys(a.t, ring3, 1, err, sizeof err) == 0, "K3 on a: %s", err);
  int closed = run_until(either_down, &x, 2000);
  /* the marker: a re-dial reached b and was refused under a key b does not hold */
  int redialled = run_until(b_refused_unknown, &b, 3000);
  size_t ca = cl_transport_connected_count(a.t);
  cl_transport_stats sa;
  cl_transport_stats_get(a.t, &sa);
  uint64_t unknown = cl_transport_auth_failures_unknown(b.t);
  cl_transport_stats sb;
  cl_transport_stats_get(b.t, &sb);
  int einval = cl_transport_set_keys(a.t, ring3, 0, err, sizeof err) == CL_EINVAL;
  node_stop(&a);
  node_stop(&b);
  CHECK(closed && !strcmp(a.down_reason, "closed") && !strcmp(b.down_reason, "closed"), "not closed: %s / %s",
        a.down_reason, b.down_reason);
  CHECK(redialled && ca == 0, "re-connected without a shared key (re-dial refused: %d)", redialled);
  CHECK(sb.handshake_fail_cookie >= 1 && unknown >= 1, "the re-dial under K3 counted as unknown: %llu %llu",
        (unsigned long long)sb.handshake_fail_cookie, (unsigned long long)unknown);
  CHECK(einval, "an empty keyring is refused");
  return 0;
}


/* ---- a hostile authenticated peer ----
 * A raw socket that completes the handshake with the cookie (so it is an authenticated
 * peer), then writes whatever frames a test wants, unencrypted, and reads only when told.
 * Every frame of a peer is hostile: these tests show what one buggy or malicious peer can
 * make a node do. */
#include <fcntl.h>
#include <errno.h>

typedef struct {
  int fd;
  char name[64];
  cl_hs_config cfg;
  cl_handshake hs;
  uint64_t last_beat;
} rogue;

static int rogue_readable(void *ud) {
  rogue *r = ud;
  uint8_t b;
  ssize_t n = recv(r->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 || n == 0;
}

static int rogue_send(rogue *r, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = send(r->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1; /* full: the caller runs the loop */
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* connects to target as `name` and completes the handshake; rcvbuf 0: the default */
static int rogue_join(rogue *r, const char *name, const tnode *target, int port, int rcvbuf) {
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  r->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (rcvbuf) setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (connect(r->fd, (struct sockaddr *)&a, sizeof a)) return -1;
  fcntl(r->fd, F_SETFL, O_NONBLOCK);
  r->cfg.self_name = r->name;
  r->cfg.node_id = "rogue";
  r->cfg.cluster = "test";
  r->cfg.roles = "master";
  r->cfg.incarnation = 1;
  r->cfg.encrypt = 0;
  r->cfg.version = CL_PROTO_VERSION;
  cl_hs_keys((const uint8_t *)"secret-cookie", strlen("secret-cookie"), r->cfg.keys[0].k_hs, r->cfg.keys[0].k_sess);
  r->cfg.keys[0].id = 1;
  r->cfg.n_keys = 1;
  uint8_t nonce[32];
  randombytes_buf(nonce, 32);
  cl_hs_init(&r->hs, &r->cfg, CL_HS_DIALER, target->name, nonce);
  cl_tbuf out = {0};
  cl_hs_start(&r->hs, &out);
  int rc = CL_HS_CONTINUE;
  for (int round = 0; round < 10 && rc == CL_HS_CONTINUE; round++) {
    if (out.len && rogue_send(r, out.p, out.len)) break;
    out.len = 0;
    if (!run_until(rogue_readable, r, 2000)) break;
    uint8_t buf[4096];
    ssize_t n = recv(r->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;
    size_t used = 0;
    rc = cl_hs_feed(&r->hs, buf, (size_t)n, &used, &out);
  }
  if (rc == CL_HS_DONE && out.len) rogue_send(r, out.p, out.len);
  cl_tbuf_free(&out);
  cl_hs_free(&r->hs);
  return rc == CL_HS_DONE ? 0 : -1;
}

static int rogue_frame(rogue *r, uint8_t type, const void *data, uint32_t len) {
  cl_tbuf b = {0};
  cl_frame_put(&b, type, 0, data, len);
  int rc = rogue_send(r, b.p, b.len);
  cl_tbuf_free(&b);
  return rc;
}

/* a beat, so a node that watches the rogue does not time it out */
static void rogue_beat(rogue *r) {
  if (uv_now(L) < r->last_beat + 40) return;
  r->last_beat = uv_now(L);
  uint8_t x[CL_BEAT_LEN] = {0};
  rogue_frame(r, CL_T_PING, x, sizeof x);
}

static void rogue_drain(rogue *r) {
  uint8_t buf[4096];
  while (recv(r->fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
}

/* A peer that asks for beats (WATCH 1, each answered with a beat at once) and never
 * reads what it asked for must not make the node queue without bound: past
 * send_queue_max the node closes it. */
typedef struct {
  tnode *a;
  rogue *r;
  size_t sent, max_queued;
  int full;
} flood_arg;
static int flood_step(void *ud) {
  flood_arg *f = ud;
  if (f->a->downs) return 1;
  size_t q = cl_transport_queued(f->a->t, f->r->name);
  if (q > f->max_queued) f->max_queued = q;
  if (f->sent >= 400000) return 1;
  uint8_t on[CL_MW_WATCH_LEN];
  cl_mw_watch_put(on, 1, 200);
  cl_tbuf b = {0};
  for (int i = 0; i < 2000; i++) cl_frame_put(&b, CL_T_WATCH, 0, on, sizeof on);
  int rc = rogue_send(f->r, b.p, b.len); /* a partial write is fine: frames may be cut, the next batch goes on */
  cl_tbuf_free(&b);
  if (rc < 0) return 1;
  if (rc == 0) f->sent += 2000;
  return 0;
}

static int t_hostile_watch_flood(void) {
  tnode a;
  opts o = O(0);
  o.send_queue_max = 64 * 1024;
  int port = free_port();
  CHECK(node_start(&a, "a", port, &o) == 0, "start");
  rogue r;
  char rn[64];
  snprintf(rn, sizeof rn, "rogue@127.0.0.1:%d", free_port());
  CHECK(rogue_join(&r, rn, &a, port, 4096) == 0, "rogue handshake");
  CHECK(wait_connected(&a, 1, 2000), "rogue not connected");
  flood_arg f = {&a, &r, 0, 0, 0};
  run_until(flood_step, &f, 20000);
  int downs = a.downs;
  char dn[128];
  snprintf(dn, sizeof dn, "%s", a.down_name);
  close(r.fd);
  node_stop(&a);
  /* the queue may pass send_queue_max by what one read's frames answer (a 64 KiB read
   * of 7-byte WATCH frames: about 9400 beats of 30 bytes) */
  CHECK(f.max_queued <= 64 * 1024 + 512 * 1024, "queued %zu bytes for a peer that reads nothing (%zu frames sent)",
        f.max_queued, f.sent);
  CHECK(downs == 1 && !strcmp(dn, rn), "the non-reading peer was not closed (%d downs, %s)", downs, dn);
  return 0;
}

/* A PROBE_RES "alive" counts only from a peer we asked to probe: a peer we did not ask
 * (buggy, or lying) must not turn a silent watched peer's DOWN (announced to all) into a
 * quiet close of our own link (which leaves the others holding the silent peer). */
#define HP_N 4
static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static tnode hp[HP_N];
typedef struct {
  tnode *a;
  rogue *r;
  const char *victim;
} forge_arg;
static int forge_step(void *ud) {
  forge_arg *f = ud;
  rogue_beat(f->r);
  rogue_drain(f->r);
  uint8_t buf[5 + 64];
  size_t nl = strlen(f->victim);
  for (uint32_t s = 1; s <= 4; s++) {
    put32(buf, s);
    buf[4] = 1;
    memcpy(buf + 5, f->victim, nl);
    rogue_frame(f->r, CL_T_PROBE_RES, buf, (uint32_t)(5 + nl));
  }
  return f->a->downs > 0;
}

static int t_hostile_forged_vouch(void) {
  opts o = O(0);
  o.heartbeat_ms = 50;
  o.timeout_ms = 300;
  o.handshake_timeout_ms = 300;
  int ports[HP_N];
  char sn[8];
  for (int i = 0; i < HP_N; i++) {
    ports[i] = free_port();
    snprintf(sn, sizeof sn, "h%d", i);
    /* the victim times out nobody while it is silenced: its closes would race a's verdict */
    opts oi = o;
    if (i == 1) oi.timeout_ms = 5000;
    CHECK(node_start(&hp[i], sn, ports[i], &oi) == 0, "start %d", i);
  }
  /* the rogue's name: one that is not among the victim's two nearest predecessors on
   * a's ring (a's helpers for it), with the victim among the 3 peers a watches; a = hp[0],
   * the victim hp[1], the honest helpers hp[2] and hp[3] */
  char rn[64] = "";
  int rport = free_port();
  for (int k = 0; k < 5000 && !rn[0]; k++) {
    char cand[64];
    snprintf(cand, sizeof cand, "r%d@127.0.0.1:%d", k, rport);
    const char *names[4] = {hp[1].name, hp[2].name, hp[3].name, cand};
    uint64_t h[4];
    for (int i = 0; i < 4; i++) h[i] = cl_watch_hash(names[i]);
    size_t pick[3];
    size_t m = cl_watch_pick(names, h, 4, NULL, h[0], 0, 0, 2, pick);
    int helper = m == 2 && (pick[0] == 3 || pick[1] == 3);
    m = cl_watch_pick(names, h, 4, hp[0].name, cl_watch_hash(hp[0].name), 1, SIZE_MAX, 3, pick);
    int watched = pick[0] == 0 || pick[1] == 0 || pick[2] == 0;
    if (m == 3 && watched && !helper) snprintf(rn, sizeof rn, "%s", cand);
  }
  CHECK(rn[0], "no rogue name found");
  for (int i = 1; i < HP_N; i++) cl_transport_want(hp[i].t, hp[0].name);
  rogue r;
  CHECK(rogue_join(&r, rn, &hp[0], ports[0], 0) == 0, "rogue handshake");
  CHECK(wait_connected(&hp[0], HP_N, 3000) && wait_connected(&hp[1], HP_N - 1, 3000), "not connected");
  char err[200];
  cl_transport_fault(hp[1].t, "*", "blackhole", err, sizeof err);
  forge_arg f = {&hp[0], &r, hp[1].name};
  int down = run_until(forge_step, &f, 3000);
  char dn[128];
  snprintf(dn, sizeof dn, "%s", hp[0].down_name);
  uint64_t announced = STAT(&hp[0], downs_announced), alive = STAT(&hp[0], probe_alive);
  close(r.fd);
  for (int i = 0; i < HP_N; i++) node_stop(&hp[i]);
  CHECK(down && !strcmp(dn, hp[1].name), "a did not declare the silent peer (%s %s)", dn, hp[0].down_reason);
  CHECK(announced == 1, "a announced %llu DOWNs after %llu forged 'alive' answers from a peer it never asked",
        (unsigned long long)announced, (unsigned long long)alive);
  return 0;
}


/* One peer must not hold every probe slot of a node (16, shared by all who ask): then
 * every other node's probes through it would be answered "no answer" at once, and a node
 * whose own link to a peer is cut would announce that peer down instead of closing only
 * its link. A requester holds at most CL_PROBES_PER_PEER (4) of a helper's slots. */
typedef struct {
  rogue *r;
  cl_frame_decoder fd;
  int none, alive;
} probe_count;
static int count_res(void *ud, const cl_frame *f) {
  probe_count *pc = ud;
  if (f->type == CL_T_PROBE_RES && f->len > 5) {
    if (f->data[4])
      pc->alive++;
    else
      pc->none++;
  }
  return 0;
}
static int probe_marker(void *ud) {
  probe_count *pc = ud;
  rogue_beat(pc->r);
  uint8_t buf[4096];
  ssize_t n;
  while ((n = recv(pc->r->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) cl_frame_decoder_feed(&pc->fd, buf, (size_t)n, NULL, count_res, pc);
  return pc->alive > 0;
}

static int t_hostile_probe_slots(void) {
  opts o = O(0);
  o.timeout_ms = 6000; /* a probe slot is held half of it: longer than the test */
  tnode h, z;
  int hport = free_port();
  CHECK(node_start(&h, "h", hport, &o) == 0 && node_start(&z, "z", free_port(), &o) == 0, "start");
  cl_transport_want(z.t, h.name);
  CHECK(wait_connected(&h, 1, 3000), "z not connected");
  rogue r;
  char rn[64];
  snprintf(rn, sizeof rn, "rogue@127.0.0.1:%d", free_port());
  CHECK(rogue_join(&r, rn, &h, hport, 0) == 0, "rogue handshake");
  CHECK(wait_connected(&h, 2, 3000), "rogue not connected");
  /* z answers nobody: every probe of it holds its slot */
  char err[200];
  cl_transport_fault(z.t, "*", "blackhole", err, sizeof err);
  uint8_t buf[4 + 64];
  size_t nl = strlen(z.name);
  for (uint32_t s = 1; s <= 6; s++) {
    put32(buf, s);
    memcpy(buf + 4, z.name, nl);
    rogue_frame(&r, CL_T_PROBE_REQ, buf, (uint32_t)(4 + nl));
  }
  /* the marker: a probe of h itself, answered "alive" at once, after the six */
  put32(buf, 7);
  memcpy(buf + 4, h.name, strlen(h.name));
  rogue_frame(&r, CL_T_PROBE_REQ, buf, (uint32_t)(4 + strlen(h.name)));
  probe_count pc = {&r, {0}, 0, 0};
  cl_frame_decoder_init(&pc.fd, CL_FD_SESSION, 0, 1 << 20);
  int marked = run_until(probe_marker, &pc, 3000);
  cl_frame_decoder_free(&pc.fd);
  close(r.fd);
  node_stop(&h);
  node_stop(&z);
  CHECK(marked, "the marker probe was not answered");
  CHECK(pc.none == 2, "%d of the rogue's 6 probes answered 'no answer' at once (it holds the rest): not 2", pc.none);
  return 0;
}


/* ---- a close that follows a DOWN (issue 18: the close storm) ----
 * A node told by another that a member it holds a connection to is down, having heard
 * nothing from that member for the freshness window (cl_det_fresh_ms), closes its link. If the member is alive
 * after all, a bare close there looks like this node crashing: before 772d84f the member
 * reported the closer down ("closed") and, in a large cluster, announced it, and each
 * such close begot more (60 nodes: a storm, no master). The closer now says IDLE first.
 * A member announced as *left* is still closed at once and forgotten (c70f130).
 * Here: a = cs[0] (the closer), b = cs[1] (the member), c = cs[2]; the rogue, linked to
 * a only, tells a that b is down. full_mesh_max 2: a large cluster. */
#define CS_N 3
static tnode cs[CS_N];
static rogue *cs_r;
/* every wait of these cases keeps the rogue beating and reads what it is sent */
static void cs_keep_rogue(void) {
  if (!cs_r) return;
  rogue_beat(cs_r);
  rogue_drain(cs_r);
}
static int cs_members(void *ud) {
  size_t want = (size_t)(uintptr_t)ud;
  cs_keep_rogue();
  for (int i = 0; i < CS_N; i++)
    if (cl_transport_member_count(cs[i].t) < want) return 0;
  return is_connected(&cs[0], cs[1].name) && is_connected(&cs[1], cs[0].name);
}
typedef struct {
  uint8_t down[13 + 64];
  size_t n;
  uint64_t next;
} cs_down;
/* the rogue says "b is down" every 50 ms until a acts on it (a sets it aside while it
 * heard b within the freshness window) */
static int cs_down_step(void *ud) {
  cs_down *d = ud;
  cs_keep_rogue();
  if (STAT(&cs[0], downs_applied) >= 1) return 1;
  if (uv_now(L) >= d->next) {
    d->next = uv_now(L) + 50;
    rogue_frame(cs_r, CL_T_DOWN, d->down, (uint32_t)d->n);
  }
  return 0;
}
/* b took in the close of its link to a: it holds no connection to a now, or it said a is down */
static int cs_b_closed(void *ud) {
  (void)ud;
  cs_keep_rogue();
  return !is_connected(&cs[1], cs[0].name) || cs[1].downs > 0;
}
static int cs_a_got(void *ud) {
  cs_keep_rogue();
  return cs[0].msgs >= (uint64_t)(uintptr_t)ud;
}
static int cs_forgot_b(void *ud) {
  (void)ud;
  cs_keep_rogue();
  return cs[0].forgotten > 0;
}
static int cs_start(rogue *r, opts *o) {
  int pa = free_port();
  char sn[8];
  for (int i = 0; i < CS_N; i++) {
    snprintf(sn, sizeof sn, "c%d", i);
    if (node_start(&cs[i], sn, i ? free_port() : pa, o)) return -1;
  }
  for (int i = 1; i < CS_N; i++) cl_transport_want(cs[i].t, cs[0].name);
  if (!run_until(cs_members, (void *)(uintptr_t)(CS_N - 1), 5000)) return -2;
  char rn[64];
  snprintf(rn, sizeof rn, "rogue@127.0.0.1:%d", free_port());
  if (rogue_join(r, rn, &cs[0], pa, 0)) return -3;
  cs_r = r;
  /* every node lists the rogue too (a passed it on): the cluster is settled */
  if (!run_until(cs_members, (void *)(uintptr_t)CS_N, 5000)) return -4;
  for (int i = 0; i < CS_N; i++) cs[i].downs = 0, cs[i].n_down_names = 0;
  return 0;
}
static void cs_stop(rogue *r) {
  cs_r = NULL;
  close(r->fd);
  for (int i = 0; i < CS_N; i++) node_stop(&cs[i]);
}
static size_t cs_down_frame(uint8_t *buf, const tnode *about, uint8_t reason) {
  uint64_t inc = cl_transport_incarnation(about->t);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(inc >> (56 - 8 * i));
  put32(buf + 8, 0); /* the member version: b never refuted anything */
  buf[12] = reason;
  size_t nl = strlen(about->name);
  memcpy(buf + 13, about->name, nl);
  return 13 + nl;
}
static opts cs_opts(void) {
  opts o = O(0); /* the rogue speaks in the clear */
  o.heartbeat_ms = 100;
  o.timeout_ms = 2400; /* a acts on the DOWN after 1200 ms of silence, well before its own verdict */
  o.handshake_timeout_ms = 500;
  o.full_mesh_max = 2;
  o.idle_close_ms = 60000; /* no link closes idle meanwhile */
  return o;
}

/* Forms the cluster with the rogue, cuts what b sends to a (oneway_in), and has the rogue
 * say b is down (DOWN reason: 0 timeout, 2 left) until a acts on it: 1 if a did within
 * 2 s (*dt_ms: after how long), 0 if not, < 0 if the cluster did not form (then stopped
 * already) */
static int cs_inject_down(rogue *r, uint8_t reason, uint64_t *dt_ms) {
  opts o = cs_opts();
  int st = cs_start(r, &o);
  if (st) {
    cs_stop(r);
    return st;
  }
  char err[200];
  cl_transport_fault(cs[0].t, cs[1].name, "oneway_in", err, sizeof err);
  cs_down d = {{0}, 0, 0};
  d.n = cs_down_frame(d.down, &cs[1], reason);
  uint64_t t0 = uv_now(L);
  int acted = run_until(cs_down_step, &d, 2000);
  *dt_ms = uv_now(L) - t0;
  return acted;
}

/* b is alive, a hears nothing from it (a one-way cut into a) and the rogue says b is
 * down: a closes its link to b, and b must not take that as a crashing: nobody reports
 * a down, b keeps a as a member, and a message from b to a (on a connection opened on
 * demand once the cut is cleared) arrives. */
static int t_close_after_down_is_idle(void) {
  rogue r;
  uint64_t dt;
  int acted = cs_inject_down(&r, 0, &dt);
  CHECK(acted >= 0, "the cluster did not form (%d)", acted);
  char err[200];
  int closed = acted && run_until(cs_b_closed, NULL, 2000);
  cl_transport_fault(cs[0].t, cs[1].name, "clear", err, sizeof err);
  /* the marker: b to a, down the path b's close went */
  uint64_t seq = cs[0].next_seq;
  int sent = cl_transport_send(cs[1].t, cs[0].name, 1, &seq, sizeof seq);
  int got = sent == 0 && run_until(cs_a_got, (void *)(uintptr_t)(cs[0].msgs + 1), 3000);
  int a_down_somewhere = 0;
  char who[256] = "";
  for (int i = 0; i < CS_N; i++)
    if (was_down(&cs[i], cs[0].name)) {
      a_down_somewhere++;
      snprintf(who, sizeof who, "c%d said c0 down (%s)", i, cs[i].down_reason);
    }
  int b_downs = cs[1].downs, a_downs_b = was_down(&cs[0], cs[1].name);
  uint64_t applied = STAT(&cs[0], downs_applied);
  cs_stop(&r);
  /* (a acts once b was silent for the freshness window, counted from b's last frame before the cut) */
  CHECK(acted, "a did not act on the DOWN within 2 s (applied %llu, %llu ms)", (unsigned long long)applied,
        (unsigned long long)dt);
  CHECK(closed, "b never took in the close of its link to a");
  CHECK(a_down_somewhere == 0 && b_downs == 0, "the closer was reported down: %s (b reported %d downs)", who,
        b_downs);
  CHECK(a_downs_b, "a did not take b down after closing its link");
  CHECK(sent == 0 && got, "the marker from b to a: send %d, arrived %d", sent, got);
  return 0;
}

/* The rogue says b *left*: a closes its link at once (no IDLE first, no half timeout of
 * silence needed) and forgets b, which it does not want (with an IDLE-first close, b
 * was down but stayed listed, as recently failed, for reconnect_timeout). */
static int t_close_after_left_is_at_once(void) {
  rogue r;
  uint64_t dt;
  int acted = cs_inject_down(&r, 2, &dt);
  CHECK(acted >= 0, "the cluster did not form (%d)", acted);
  char err[200];
  int connected_after = is_connected(&cs[0], cs[1].name);
  char reason[32];
  snprintf(reason, sizeof reason, "%s", cs[0].down_reason);
  int down = was_down(&cs[0], cs[1].name);
  /* b goes (its re-dials would make a hold it again), then the cut is cleared (a peer
   * under a fault is kept for its settings): a forgets b on its next sweep */
  node_stop(&cs[1]);
  cl_transport_fault(cs[0].t, cs[1].name, "clear", err, sizeof err);
  int forgot = run_until(cs_forgot_b, NULL, 3000);
  char fname[128];
  snprintf(fname, sizeof fname, "%s", cs[0].forgot_name);
  const char *bst = status_of(&cs[0], cs[1].name, NULL);
  int still_listed = bst[0] != 0;
  cs_stop(&r);
  CHECK(acted && dt < 1000, "a acted on the LEAVE-reason DOWN after %llu ms (%d)", (unsigned long long)dt, acted);
  CHECK(!connected_after && down && !strcmp(reason, "left"),
        "a did not close its link to b at once: connected %d, down %d (%s)", connected_after, down, reason);
  CHECK(forgot && !strcmp(fname, cs[1].name) && !still_listed, "a did not forget b: forgotten %d (%s), still listed %d",
        forgot, fname, still_listed);
  return 0;
}

/* two ticks of the grid have passed (the longest large beat of the nodes, at most 1 s:
 * the tick's interval): news queued before went out at the first of them */
static int lg_news_settled(void) {
  uint32_t tick = 0;
  for (int i = 0; i < LG_N; i++)
    if (lg[i].t && cl_transport_large_heartbeat(lg[i].t) > tick) tick = cl_transport_large_heartbeat(lg[i].t);
  if (!tick || tick > 1000) tick = 1000;
  uint64_t end = uv_now(L) + 2 * (uint64_t)tick + 20;
  return run_until(lg_window_passed, &end, 2 * tick + 1000);
}
/* A member coming back (a new life) is news for every member. Without hubs (the
 * control, first) each node passes what it hears to each of its connections; with hubs
 * (g1, g2 reach every member) a node passes what it heard, or found itself, to the hubs
 * alone: every frame of news the other nodes send goes to a hub, and the hubs tell
 * everyone (that each sends nothing when a hub told it, and that a tick's entries leave
 * in one frame per connection, this case does not tell apart). At 500 nodes on 2 CPUs
 * each newcomer heard about ten times per node, each copy a wake-up, tipped the
 * machine into handshake timeouts and the cluster never formed (issue 18). */
static int t_large_news(void) {
  int back[2] = {0, 0}, members[2] = {0, 0}, full = 1, stray_node = -1;
  uint64_t hubs_sent = 0, dt[2] = {0, 0}, others[2] = {0, 0}, stray = 0;
  for (int round = 0; round < 2; round++) {
    int hubs = round == 1;
    opts o = lg_opts(60000);
    int port[LG_N];
    CHECK(lg_start(hubs ? "p" : "q", &o, port) == 0, "start");
    members[round] = run_until(lg_members, NULL, 8000);
    if (hubs) {
      cl_transport_reach_all(lg[1].t, 1);
      cl_transport_reach_all(lg[2].t, 1);
      full = run_until(lg_hubs_full, NULL, 5000) && lg_markers(1);
    }
    int z = 9;
    node_stop(&lg[z]);
    lg_down dz = {z, "closed", NULL};
    run_until(lg_all_down, &dz, 3000);
    lg_news_settled(); /* the formation's news went out */
    uint64_t sent0[LG_N], hub0[LG_N];
    int ups0[LG_N];
    for (int i = 0; i < LG_N; i++) {
      sent0[i] = lg[i].t ? STAT(&lg[i], news_frames) : 0;
      hub0[i] = lg[i].t ? STAT(&lg[i], news_to_hubs) : 0;
      ups0[i] = lg[i].ups;
    }
    char sn[16];
    snprintf(sn, sizeof sn, "%s%d", hubs ? "p" : "q", z);
    CHECK(node_start(&lg[z], sn, port[z], &o) == 0, "restart %d", z);
    cl_transport_want(lg[z].t, lg[0].name);
    uint64_t t0 = uv_now(L);
    lg_back bk = {z, ups0};
    back[round] = run_until(lg_all_up_again, &bk, 6000);
    dt[round] = uv_now(L) - t0;
    lg_news_settled();
    for (int i = 0; i < LG_N; i++) {
      if (i == z) continue;
      uint64_t sent = STAT(&lg[i], news_frames) - sent0[i], to_hubs = STAT(&lg[i], news_to_hubs) - hub0[i];
      if (hubs && (i == 1 || i == 2)) {
        hubs_sent += sent;
        continue;
      }
      others[round] += sent;
      if (hubs && sent > to_hubs && stray_node < 0) stray_node = i, stray = sent - to_hubs;
    }
    for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
  }
  printf("# a member back: without hubs on all after %llu ms, %llu frames of news sent; with hubs after %llu ms, "
         "%llu by the other nodes (to the hubs), %llu by the hubs\n",
         (unsigned long long)dt[0], (unsigned long long)others[0], (unsigned long long)dt[1],
         (unsigned long long)others[1], (unsigned long long)hubs_sent);
  CHECK(members[0] && members[1] && full, "formed %d %d, the hubs full %d", members[0], members[1], full);
  CHECK(back[0] && back[1], "the member was not back on every node within 6 s (%d, %d)", back[0], back[1]);
  CHECK(others[0] >= 1, "the control passed no news on");
  CHECK(hubs_sent >= 1 && stray_node < 0, "with hubs, g%d sent %llu frames of news to other nodes (the hubs sent %llu)",
        stray_node, (unsigned long long)stray, (unsigned long long)hubs_sent);
  return 0;
}

/* News that is no longer true when the tick comes is not passed on. Ticks of 1 s here:
 * a member comes back and is stopped again within the tick; the nodes that had it back
 * take its DOWN at once, the others ignore a DOWN of a member they hold down already, and
 * the entries queued about its new life then arrived after it and brought it back there
 * for good (found by a review). Every node must hold it down once the news has gone. */
static int lg_up_on_seed(void *ud) { return !strcmp(status_of(&lg[0], lg[*(int *)ud].name, NULL), "up"); }
static int t_large_stale_news(void) {
  opts o = lg_opts(60000);
  o.large_timeout_ms = 2000; /* a large beat, and so a tick, of 1 s */
  int port[LG_N];
  CHECK(lg_start("s", &o, port) == 0, "start");
  int members = run_until(lg_members, NULL, 8000);
  cl_transport_reach_all(lg[1].t, 1);
  cl_transport_reach_all(lg[2].t, 1);
  int full = run_until(lg_hubs_full, NULL, 8000) && lg_markers(1);
  int z = 9;
  node_stop(&lg[z]);
  lg_down dz = {z, "closed", NULL};
  int down = run_until(lg_all_down, &dz, 5000);
  lg_news_settled();
  char sn[16];
  snprintf(sn, sizeof sn, "s%d", z);
  CHECK(node_start(&lg[z], sn, port[z], &o) == 0, "restart %d", z);
  cl_transport_want(lg[z].t, lg[0].name);
  /* back on the node it dials (its news for the hubs waits for the tick): stop it again */
  int back = run_until(lg_up_on_seed, &z, 400);
  char zname[128];
  snprintf(zname, sizeof zname, "%s", lg[z].name);
  node_stop(&lg[z]);
  lg_news_settled();
  lg_news_settled();
  int ghosts = 0, first = -1;
  for (int i = 0; i < LG_N; i++)
    if (i != z && lg[i].t && !strcmp(status_of(&lg[i], zname, NULL), "up")) ghosts++, first = first < 0 ? i : first;
  printf("# a member back and stopped within a tick: up on its seed first %d; still up afterwards on %d nodes "
         "(first s%d)\n",
         back, ghosts, first);
  for (int i = 0; i < LG_N; i++) node_stop(&lg[i]);
  CHECK(members && full && down, "formed %d, hubs full %d, down %d", members, full, down);
  CHECK(back, "the restarted member was not up on its seed within 400 ms");
  CHECK(ghosts == 0, "the stopped member is up on %d nodes (s%d first) after its news went out", ghosts, first);
  return 0;
}

/* A voting node keeps a voting peer it pins when another node says that peer timed out:
 * it watches the peer itself, with the same timeout, and decides within it. a hears
 * nothing from b (a one-way cut into a) while the rogue says b is down every 50 ms.
 * Without the pin (the control, first) a acts on it once b's last frame is older than
 * the window of freshness (1.2 s here); with the pin, a keeps b for 2 s (its own
 * verdict, which this case does not wait for, would come at 2.4 s: the others vouch for
 * b, so only a's link would be re-dialled), reports no node_down, and once the cut is cleared b is
 * up on a and a marker from b reaches it. At 500 nodes on 2 CPUs one starved ring
 * watcher of the master timed it out, and the voting nodes dropped their master on its
 * word (issue 18). */
static int cs_pinned_step(void *ud) {
  cs_down *d = ud;
  cs_down_step(d);
  return STAT(&cs[0], downs_applied) >= 1;
}
static int t_pinned_peer_kept_on_others_timeout(void) {
  int applied[2] = {0, 0}, downs[2] = {0, 0}, got = 0, up = 0;
  uint64_t dt = 0;
  char err[200];
  for (int pin = 0; pin < 2; pin++) {
    rogue r;
    opts o = cs_opts();
    int st = cs_start(&r, &o);
    if (st) cs_stop(&r);
    CHECK(st == 0, "the cluster did not form (%d)", st);
    if (pin) {
      const char *b = cs[1].name;
      CHECK(cl_transport_pin(cs[0].t, &b, 1) == 0, "pin");
    }
    cl_transport_fault(cs[0].t, cs[1].name, "oneway_in", err, sizeof err);
    cs_down d = {{0}, 0, 0};
    d.n = cs_down_frame(d.down, &cs[1], 0);
    uint64_t t0 = uv_now(L);
    applied[pin] = run_until(cs_pinned_step, &d, 2000);
    if (!pin) dt = uv_now(L) - t0;
    downs[pin] = was_down(&cs[0], cs[1].name);
    cl_transport_fault(cs[0].t, cs[1].name, "clear", err, sizeof err);
    if (pin) {
      uint64_t seq = cs[0].next_seq;
      got = cl_transport_send(cs[1].t, cs[0].name, 1, &seq, sizeof seq) == 0 &&
            run_until(cs_a_got, (void *)(uintptr_t)(cs[0].msgs + 1), 3000);
      up = !strcmp(status_of(&cs[0], cs[1].name, NULL), "up") && !was_down(&cs[0], cs[1].name);
    }
    cs_stop(&r);
  }
  printf("# the rogue's DOWN of b, every 50 ms: acted on without the pin %d after %llu ms (down %d); with it %d "
         "(down %d), b up after %d\n",
         applied[0], (unsigned long long)dt, downs[0], applied[1], downs[1], up);
  CHECK(applied[0] && downs[0], "the control: a did not act on the DOWN within 2 s without the pin");
  CHECK(!applied[1] && !downs[1], "a took its pinned peer down on another's word: applied %d, down %d", applied[1],
        downs[1]);
  CHECK(got && up, "after the cut: the marker from b arrived %d, b up on a %d", got, up);
  return 0;
}

/* heartbeat_ms must be at most half of timeout_ms: a watched idle peer beats every
 * heartbeat (at most 5/4 of one apart), so with a longer heartbeat a healthy idle peer is
 * declared down between two beats (before this check, two idle nodes at 1000 / 400
 * reported each other down within 3 s); and a DOWN is acted on only by nodes that heard
 * nothing from the peer for the freshness window (cl_det_fresh_ms), which is empty past
 * half a timeout. Refused at start, naming both. */
/* A connection closed with frames still queued (close_after_flush: a LEAVE, an IDLE, a
 * REFUSE) to a peer that reads nothing is closed at its flush deadline, and the loop
 * goes on. It did not: the closed connection kept its deadline due, the tick re-armed
 * itself at 0 from inside its own callback, and libuv ran it again in the same pass,
 * forever, without polling or moving its clock; the node answered nobody and its closes
 * never completed (five nodes of 300, found by hand). alarm() turns such a spin into a
 * failure instead of a hung suite. */
static void on_spin_alarm(int sig) {
  (void)sig;
  static const char m[] = "FAIL transport: the loop spun after a flush deadline (no progress in 10 s)\n";
  if (write(1, m, sizeof m - 1) < 0) _exit(2);
  _exit(1);
}
typedef struct {
  tnode *a;
  const char *to;
} queued_arg;
static int queue_empty(void *ud) {
  queued_arg *q = ud;
  return cl_transport_queued(q->a->t, q->to) == 0;
}
static int t_flush_deadline_no_spin(void) {
  tnode a, b;
  opts o = O(1);
  /* b stops reading a: long timeouts, so that nobody calls anybody down meanwhile and the
   * flush deadline is what closes the connection */
  o.timeout_ms = 20000;
  o.heartbeat_ms = 5000;
  CHECK(pair_up(&a, &b, &o, &o) == 0, "start");
  CHECK(wait_connected(&a, 1, 2000) && wait_connected(&b, 1, 2000), "not connected");
  char err[200];
  CHECK(cl_transport_fault(b.t, a.name, "stall", err, sizeof err) == 0, "stall: %s", err);
  /* more than the two socket buffers hold: the rest stays queued at a */
  static uint8_t big[1u << 20];
  queued_arg q = {&a, b.name};
  for (int i = 0; i < 32 && cl_transport_queued(a.t, b.name) < (4u << 20); i++) {
    CHECK(cl_transport_send(a.t, b.name, 1, big, sizeof big) == 0, "send %d", i);
    run_until(NULL, NULL, 10);
  }
  size_t held = cl_transport_queued(a.t, b.name);
  signal(SIGALRM, on_spin_alarm);
  alarm(10);
  uint64_t ticks0 = STAT(&a, ticks);
  cl_transport_leave(a.t); /* a LEAVE behind the queue, the connection closed after it */
  int closed = run_until(queue_empty, &q, 4000);
  uint64_t ticks = STAT(&a, ticks) - ticks0;
  alarm(0);
  signal(SIGALRM, SIG_DFL);
  cl_transport_fault(b.t, a.name, "clear", err, sizeof err);
  node_stop(&a);
  node_stop(&b);
  CHECK(held > 0, "nothing stayed queued at a: the stall did not hold b's reads");
  CHECK(closed, "a's connection to b was not closed at its flush deadline (%zu bytes queued)", held);
  /* the tick at its own interval and the deadlines: a few dozen in ~1 s; a spin (at 1 ms
   * with the floor, before the close completes) would be hundreds */
  CHECK(ticks < 100, "a ticked %llu times while its connection closed", (unsigned long long)ticks);
  return 0;
}

static int t_heartbeat_vs_timeout(void) {
  tnode a;
  opts o = O(1);
  o.heartbeat_ms = 1000;
  o.timeout_ms = 400;
  int refused = node_start(&a, "a", free_port(), &o) != 0;
  if (!refused) node_stop(&a);
  CHECK(refused, "heartbeat_ms 1000 with timeout_ms 400 was accepted");
  o.heartbeat_ms = 200;
  CHECK(node_start(&a, "a", free_port(), &o) == 0, "heartbeat_ms 200 with timeout_ms 400 was refused");
  node_stop(&a);
  return 0;
}

int main(void) {
  if (sodium_init() < 0) return 1;
  setenv("CLUSTERLUA_FAULTS", "1", 1);
  const char *lv = getenv("TEST_LOG");
  cl_log_set_level(lv ? cl_log_parse_level(lv) : CL_LOG_ERROR + 1);
  uv_loop_t loop;
  uv_loop_init(&loop);
  L = &loop;
  run_case("transport: node names parse and refuse clearly", t_names);
  run_case("transport: frame decoder (chunking, oversize, unknown type, HTTP, garbage, version)", t_frame_decoder);
  run_case("transport: MEMBERS, DOWN, PROBE and WATCH payloads roundtrip; hostile ones refused", t_members_wire);
  run_case("transport: AEAD records roundtrip and refuse forgery", t_session);
  run_case("transport: handshake state machine refusals", t_handshake_pure);
  run_case("transport: derived keys", t_derive_key);
  run_case("keyring: file parser refuses empty, short, duplicate, NUL, 17 keys, 10 MB", t_keyring_parse);
  run_case("keyring: fingerprints are 16 hex digits, stable, distinct", t_keyring_fingerprint);
  run_case("keyring: handshake under a shared non-primary key; no shared key names fingerprints", t_handshake_keyring);
  run_case("transport: handshake ok (encrypted)", t_handshake_ok);
  run_case("keyring: a removed key's connection is re-authenticated under a shared one, nothing lost; none shared: closed",
           t_reauth);
  run_case("transport: handshake ok (unencrypted)", t_handshake_ok_unencrypted);
  run_case("transport: wrong cookie refused on both sides", t_wrong_cookie);
  run_case("transport: other cluster refused", t_other_cluster);
  run_case("transport: encrypt on/off mismatch refused", t_encrypt_mismatch);
  run_case("transport: message ordering (plain)", t_ordering_plain);
  run_case("transport: message ordering (encrypted)", t_ordering_encrypted);
  run_case("transport: ENOBUFS on a full per-peer queue", t_enobufs);
  run_case("transport: max frame: at max passes, over closes only that link", t_max_frame);
  run_case("transport: garbage on the port closes that connection", t_garbage);
  run_case("transport: HTTP GET on the port closes that connection", t_http_get);
  run_case("transport: fault layer refused without CLUSTERLUA_FAULTS=1", t_fault_refused_without_env);
  run_case("transport: heartbeat timeout through a blackhole => timeout", t_heartbeat_timeout);
  run_case("transport: a dial whose loop stalls past the handshake deadline connects as is (a late tick expires none)",
           t_handshake_late_loop);
  run_case("transport: a silent peer is down within the awareness bound while the loop runs late (80 ms busy turns)",
           t_timeout_when_every_tick_is_late);
  run_case("transport: sparse detection: watch 3, beat to 3; a silent node is down on every node within the bound",
           t_sparse_ring);
  run_case("transport: sparse detection: one silent link, the peer heard by others: only that link is closed",
           t_sparse_one_link);
  run_case("transport: pinned peers are always watched: cut off, a node loses them within one timeout",
           t_pinned_watched);
  run_case("transport: a large cluster: every member known, few connections, on demand and idle close, downs reach all",
           t_large_cluster);
  run_case("transport: a large cluster gives silent members large_timeout_ms, pinned ones too", t_large_timeout);
  run_case("transport: a large cluster beats every large_heartbeat_ms; a mesh newcomer is beaten at its own",
           t_large_heartbeat);
  run_case("transport: a large cluster beating every half timeout ticks once per beat at rest", t_large_one_tick);
  run_case("transport: a large cluster: a member whose connections close and whose address accepts but never "
           "handshakes is down within the bound",
           t_hung_member);
  run_case("transport: a large cluster: a connection closed on purpose is checked, not reported down; a crash is",
           t_large_close_checked);
  run_case("transport: a large cluster with hubs: they reach every member and keep it; a crash is checked by hubs "
           "and watchers only, and passed on to the hubs only",
           t_large_hubs);
  run_case("transport: a large cluster passes a member's news on once a tick, through the hubs where there are some",
           t_large_news);
  run_case("transport: a large cluster does not pass on news of a member that went down before the tick",
           t_large_stale_news);
  run_case("transport: a large cluster: a node that does not watch a member leaves a closed link's verdict to its "
           "watchers: no node_down past limbo's bound",
           t_large_limbo_watchers);
  run_case("transport: a large cluster re-dials one failed member per node per interval: a restart knowing nobody is back",
           t_large_redial_failed);
  run_case("transport: a peer that asks for beats and reads nothing is closed past send_queue_max",
           t_hostile_watch_flood);
  run_case("transport: a probe answer from a peer never asked does not vouch for a silent peer",
           t_hostile_forged_vouch);
  run_case("transport: one peer holds at most 4 of a node's 16 probe slots", t_hostile_probe_slots);
  run_case("transport: a close after a DOWN of a live member says IDLE first: nobody reports the closer down",
           t_close_after_down_is_idle);
  run_case("transport: a member announced as left is closed at once and forgotten", t_close_after_left_is_at_once);
  run_case("transport: a large cluster: a voting node keeps a pinned peer that another node says timed out",
           t_pinned_peer_kept_on_others_timeout);
  run_case("transport: a connection closed at its flush deadline does not spin the loop", t_flush_deadline_no_spin);
  run_case("transport: heartbeat_ms above half of timeout_ms is refused", t_heartbeat_vs_timeout);
  run_case("transport: close => closed, restarted peer re-joined", t_close_is_closed);
  run_case("transport: leave => left", t_leave_is_left);
  run_case("transport: mesh learning A-B, B-C => A-C", t_mesh);
  run_case("transport: mesh off", t_no_mesh);
  run_case("transport: simultaneous dials settle on one connection", t_simultaneous_dial);
  run_case("transport: heartbeat RTT measured", t_rtt);
  run_case("transport: unwant stops dialling only: the connection stays up", t_unwant);
  run_case("transport: disconnect drops the peer and refuses its re-dials until wanted again", t_disconnect);
  run_case("transport: a failed peer is forgotten after reconnect_timeout, not while kept", t_forget_failed);
  run_case("transport: a failed peer is forgotten once reconnect_timeout has passed", t_forget_timeout);
  run_case("transport: a peer that left is forgotten at once, unless wanted", t_forget_left);
  run_case("transport: peer_up carries the handshake's round trip", t_rtt_at_up);
  run_case("transport: data connection opened on demand by the dialer, handed over with crossed keys (encrypted)",
           t_data_conns);
  run_case("transport: data connection opened on demand by the dialer (unencrypted)", t_data_conns_plain);
  run_case("transport: data connection opened on demand by the acceptor, to the peer's address", t_data_conns_acceptor);
  run_case("transport: data connection opened on demand by the acceptor, the peer's host resolved",
           t_data_conns_resolved);
  run_case("transport: a data connection that cannot be is answered once with none (unknown, other life, opens none)",
           t_data_open_refused);
  run_case("transport: data connections off on one side: none tried, peer_up says so", t_data_conn_one_side);
  uv_run(L, UV_RUN_NOWAIT);
  int lc = uv_loop_close(L);
  if (lc) {
    printf("FAIL transport: loop has open handles at exit\n");
    failures++;
  }
  return harness_exit();
}
