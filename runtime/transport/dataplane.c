/* Data connections on the Lua loop: see dataplane.h.
 *
 * Writes are coalesced: a message is appended to the connection's plaintext buffer and
 * the buffer is sealed and written once per loop turn (a check handle, with an idle
 * handle keeping the poll from sleeping meanwhile) or after each batch the spin reads,
 * and at once when a burst fills an AEAD record. Failures found while Lua is calling in
 * through the FFI are only noted; the closed callback (which calls Lua) runs from the
 * check handle. */
#include "transport/dataplane.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "transport/internal.h"
#include "transport/reauth.h"
#include "transport/writer.h"

enum { CL_CH_LUA_DATA = 2, HOT_MAX = 8 };

struct cl_dp_conn {
  uv_tcp_t tcp;
  cl_dp *dp;
  cl_dp_conn *next, *prev;
  cl_dp_conn *dirty_next;
  int dirty, closing, failed, encrypt;
  int wrote_this_turn; /* the first message of a loop turn is written at once */
  int hot;              /* in dp->hot */
  uint64_t last_rx;     /* uv_hrtime() of the last bytes read */
  char peer[CL_NODE_NAME_MAX + 1];
  char reason[160];
  intptr_t tag;
  uint32_t max_frame;
  size_t queue_max;
  cl_frame_decoder fd;
  cl_opener opener;
  cl_seal_dir seal;
  cl_writer w; /* what goes out: frames, sealed, written (writer.c, shared with the transport) */
  cl_tbuf pre_in; /* read by the control loop past the handshake: decoded on the next turn */
  /* the key it is authenticated under and a re-authentication in progress (reauth.c,
   * the protocol of the control connections too) */
  cl_reauth ra;
};

struct cl_dp {
  uv_loop_t *loop;
  int handles; /* check + idle initialised */
  uv_check_t check;
  uv_idle_t idle;
  uv_timer_t ra_timer; /* re-authentications not answered in time (CL_REAUTH_MS) */
  cl_dp_callbacks cb;
  cl_dp_conn *conns, *dirty;
  /* connections that brought data lately, read directly while spinning; each try
   * starts one further along (rr), so a busy one cannot keep the others waiting */
  cl_dp_conn *hot[HOT_MAX];
  int nhot;
  unsigned rr;
  int failed_pending;
  uint64_t spin_ns, spin_until;
  cl_dp_rx rx;
  cl_dp_stats st;
  cl_writer_stats wstats; /* the writer's counters: into st */
  /* st as other threads may read it (the metrics endpoint): refreshed once per turn with
   * traffic and after each batch the spin reads */
  /* the keyring as the Lua loop last heard it (n_ring 0: never changed since start) */
  cl_hs_key ring[CL_KEYRING_MAX];
  size_t n_ring;
  /* freed once shut down and the last of its handles and connections is closed */
  int shut;
  unsigned open; /* handles and connections not yet closed */
  cl_dp_published *pub_to; /* the owner's, or own_pub */
  cl_dp_published own_pub;
  uint8_t rbuf[65536];
};

static void dp_flush(cl_dp_conn *c);
static void input(cl_dp_conn *c, uint8_t *p, size_t n);
static void publish(cl_dp *dp);
static void dp_fail(cl_dp_conn *c, const char *fmt, const char *arg);
static void dp_release(cl_dp *dp);

/* Writes what Lua queued since the last flush (the check handle's job, done here too by
 * the spin, which keeps the loop from reaching the check handle for a while). */
static void flush_dirty(cl_dp *dp) {
  cl_dp_conn *c = dp->dirty;
  dp->dirty = NULL;
  while (c) {
    cl_dp_conn *n = c->dirty_next;
    c->dirty_next = NULL;
    c->dirty = 0;
    c->wrote_this_turn = 0;
    dp_flush(c);
    c = n;
  }
}

/* c brought data: it is read by the spin from now on. With more than HOT_MAX such
 * connections, the one quiet for longest makes room. */
static void mark_hot(cl_dp_conn *c, uint64_t now) {
  cl_dp *dp = c->dp;
  c->last_rx = now;
  if (c->hot) return;
  if (dp->nhot == HOT_MAX) {
    int oldest = 0;
    for (int i = 1; i < dp->nhot; i++)
      if (dp->hot[i]->last_rx < dp->hot[oldest]->last_rx) oldest = i;
    dp->hot[oldest]->hot = 0;
    dp->hot[oldest] = dp->hot[--dp->nhot];
  }
  c->hot = 1;
  dp->hot[dp->nhot++] = c;
}

static void unmark_hot(cl_dp_conn *c) {
  cl_dp *dp = c->dp;
  if (!c->hot) return;
  c->hot = 0;
  for (int i = 0; i < dp->nhot; i++)
    if (dp->hot[i] == c) {
      dp->hot[i] = dp->hot[--dp->nhot];
      break;
    }
}

/* One non-blocking read of a hot connection, past libuv (whose poll would report the
 * same bytes one system call later). 1: bytes were handled; 0: none; -1: it failed. */
static int hot_read(cl_dp_conn *c, uint64_t now) {
  cl_dp *dp = c->dp;
  uv_os_fd_t fd;
  if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0) return -1;
  ssize_t n = recv(fd, dp->rbuf, sizeof dp->rbuf, MSG_DONTWAIT);
  if (n > 0) {
    dp->st.bytes_in += (uint64_t)n;
    dp->st.spin_reads++;
    c->last_rx = now;
    input(c, dp->rbuf, (size_t)n);
    return 1;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
  dp_fail(c, "%s", n == 0 ? "closed by the peer" : uv_err_name(uv_translate_sys_error(errno)));
  return -1;
}

/* While spinning, the idle handle stays here for about SLICE_NS: yield (on a CPU shared
 * with the peer, the peer is the one we are waiting for), then read directly the hot
 * connections that brought data within the last spin_us, one per try, in turn. A request
 * and its reply then cost a read and a write each, with no poll and no loop turn between
 * them. Everything else on the Lua loop (other connections, timers,
 * node events) waits one slice plus the handling of the last read at most; the control
 * plane runs on its own loop and never waits. */
enum { SLICE_NS = 50000 };

static void on_idle(uv_idle_t *h) {
  cl_dp *dp = h->data;
  if (dp->dirty || dp->failed_pending) return; /* the check handle runs this turn */
  uint64_t now = uv_hrtime();
  if (now >= dp->spin_until) {
    uv_idle_stop(h);
    return;
  }
  const uint64_t leave = now + SLICE_NS;
  for (;;) {
    sched_yield();
    int r = 0, n = dp->nhot;
    /* stops at the first that had bytes: the Lua it ran may have closed any of them */
    for (int k = 0; k < n && r == 0; k++) {
      cl_dp_conn *c = dp->hot[(dp->rr + (unsigned)k) % (unsigned)n];
      if (c->closing || c->failed || now - c->last_rx > dp->spin_ns) continue;
      r = hot_read(c, now);
    }
    dp->rr++;
    if (r < 0 || dp->failed_pending || dp->loop->stop_flag) return;
    now = uv_hrtime();
    if (r > 0) {
      flush_dirty(dp);
      publish(dp);
      if (dp->failed_pending) return;
      dp->spin_until = now + dp->spin_ns;
    }
    if (now >= dp->spin_until || now >= leave) return;
  }
}

static void spin(cl_dp *dp) {
  if (!dp->spin_ns || !dp->handles) return;
  dp->spin_until = uv_hrtime() + dp->spin_ns;
  uv_idle_start(&dp->idle, on_idle);
}

static void dp_close_handle(cl_dp_conn *c);

static void publish(cl_dp *dp) {
  const uint64_t v[CL_DP_STATS_N] = {dp->st.msgs_in, dp->st.msgs_out,      dp->st.bytes_in,     dp->st.bytes_out,
                         dp->st.writes,  dp->st.conns_adopted, dp->st.conns_failed, dp->st.spin_reads,
                         dp->st.rekeys};
  for (int i = 0; i < CL_DP_STATS_N; i++) atomic_store_explicit(&dp->pub_to->v[i], v[i], memory_order_relaxed);
}

static void on_check(uv_check_t *h) {
  cl_dp *dp = h->data;
  for (cl_dp_conn *x = dp->conns; x; x = x->next)
    if (x->pre_in.len && !x->closing && !x->failed) {
      cl_tbuf b = x->pre_in;
      memset(&x->pre_in, 0, sizeof x->pre_in);
      input(x, b.p, b.len);
      cl_tbuf_free(&b);
    }
  flush_dirty(dp);
  if (dp->failed_pending) {
    dp->failed_pending = 0;
    for (cl_dp_conn *f = dp->conns; f; f = f->next) {
      if (!f->failed || f->closing) continue;
      f->closing = 1;
      dp->st.conns_failed++;
      cl_log(CL_LOG_INFO, "dataplane", NULL, "data connection with %s closed: %s", f->peer, f->reason);
      if (dp->cb.closed) dp->cb.closed(dp->cb.ud, f, f->reason);
      dp_close_handle(f);
    }
  }
  if (!dp->dirty) uv_check_stop(h);
  spin(dp);
  publish(dp);
}

static void mark_dirty(cl_dp_conn *c) {
  cl_dp *dp = c->dp;
  if (c->dirty || c->closing) return;
  c->dirty = 1;
  c->dirty_next = dp->dirty;
  dp->dirty = c;
  uv_check_start(&dp->check, on_check);
  uv_idle_start(&dp->idle, on_idle);
}

/* Noted now, reported from the check handle: this may run inside an FFI call. */
static void dp_fail(cl_dp_conn *c, const char *fmt, const char *arg) {
  cl_dp *dp = c->dp;
  if (c->failed || c->closing) return;
  c->failed = 1;
  snprintf(c->reason, sizeof c->reason, fmt, arg);
  uv_read_stop((uv_stream_t *)&c->tcp);
  dp->failed_pending = 1;
  uv_check_start(&dp->check, on_check);
  uv_idle_start(&dp->idle, on_idle);
}

static void on_conn_closed(uv_handle_t *h) {
  cl_dp_conn *c = h->data;
  cl_dp *dp = c->dp;
  if (c->prev)
    c->prev->next = c->next;
  else
    dp->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  cl_frame_decoder_free(&c->fd);
  cl_opener_free(&c->opener);
  sodium_memzero(&c->seal, sizeof c->seal);
  cl_reauth_wipe(&c->ra);
  cl_writer_free(&c->w);
  cl_tbuf_free(&c->pre_in);
  free(c);
  dp_release(dp);
}

static void dp_close_handle(cl_dp_conn *c) {
  cl_dp *dp = c->dp;
  for (cl_dp_conn **pp = &dp->dirty; *pp; pp = &(*pp)->dirty_next)
    if (*pp == c) {
      *pp = c->dirty_next;
      break;
    }
  c->dirty = 0;
  c->closing = 1;
  unmark_hot(c);
  c->tcp.data = c;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status) {
  cl_dp_conn *c = req->data;
  cl_dp *dp = c->dp;
  c->w.writing = 0;
  if (c->closing || c->failed) return;
  if (status < 0) {
    dp_fail(c, "write failed: %s", uv_err_name(status));
    return;
  }
  cl_writer_written(&c->w, &dp->wstats);
  dp_flush(c);
}

static void dp_flush(cl_dp_conn *c) {
  cl_dp *dp = c->dp;
  if (c->closing || c->failed || c->w.writing) return;
  int r = cl_writer_flush(&c->w, (uv_stream_t *)&c->tcp, c->encrypt ? &c->seal : NULL, &dp->wstats, on_write, c);
  if (r) dp_fail(c, "write failed: %s", uv_err_name(r));
}

int cl_dp_send(cl_dp_conn *c, const uint8_t *p, size_t len) {
  cl_dp *dp = c->dp;
  if (!c || c->closing || c->failed) return UV_ENOTCONN;
  if (len > c->max_frame) return UV_E2BIG;
  if (cl_writer_queued(&c->w) + len > c->queue_max) return UV_ENOBUFS;
  if (cl_frame_put(&c->w.out, CL_T_DATA, CL_CH_LUA_DATA, p, (uint32_t)len)) return UV_ENOBUFS;
  dp->st.msgs_out++;
  /* The first message of a loop turn goes out at once: a request or a reply is not held
   * back until the turn ends. The rest of the turn's messages are coalesced, and a burst
   * goes out record by record while Lua keeps producing. */
  if (!c->w.writing && (!c->wrote_this_turn || c->w.out.len >= CL_RECORD_PLAIN_MAX)) {
    c->wrote_this_turn = 1;
    dp_flush(c);
  }
  mark_dirty(c);
  return 0;
}

/* ---- reading ---- */

static void dp_on_reauth(cl_dp_conn *c, const uint8_t *d, size_t n);

static int on_frame(void *ud, const cl_frame *f) {
  cl_dp_conn *c = ud;
  cl_dp *dp = c->dp;
  if (c->closing || c->failed) return 1;
  if (f->type == CL_T_REAUTH && f->channel == 0) {
    dp_on_reauth(c, f->data, f->len);
    return c->closing || c->failed;
  }
  if (f->type != CL_T_DATA || f->channel != CL_CH_LUA_DATA) return 0; /* nothing else travels here */
  dp->st.msgs_in++;
  dp->rx.p = f->data;
  dp->rx.len = f->len;
  if (dp->cb.message) dp->cb.message(dp->cb.ud, c, f->data, f->len);
  dp->rx.p = NULL;
  dp->rx.len = 0;
  return c->closing || c->failed;
}

static int on_plain(void *ud, const uint8_t *p, size_t n) {
  cl_dp_conn *c = ud;
  int r = cl_frame_decoder_feed(&c->fd, p, n, NULL, on_frame, c);
  if (r < 0) {
    dp_fail(c, "%s", c->fd.reason);
    return 1;
  }
  return c->closing || c->failed;
}

static void input(cl_dp_conn *c, uint8_t *p, size_t n) {
  if (c->encrypt) {
    if (cl_session_open(&c->opener, p, n, on_plain, c) < 0) dp_fail(c, "%s", c->opener.reason);
  } else {
    on_plain(c, p, n);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  cl_dp *dp = ((cl_dp_conn *)h->data)->dp;
  (void)suggested;
  *buf = uv_buf_init((char *)dp->rbuf, sizeof dp->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cl_dp_conn *c = s->data;
  cl_dp *dp = c->dp;
  if (c->closing || c->failed) return;
  if (nread < 0) {
    dp_fail(c, "%s", nread == UV_EOF ? "closed by the peer" : uv_err_name((int)nread));
    return;
  }
  if (nread == 0) return;
  dp->st.bytes_in += (uint64_t)nread;
  mark_hot(c, uv_hrtime());
  input(c, (uint8_t *)buf->base, (size_t)nread);
  spin(dp);
  publish(dp);
}

/* ---- lifecycle ---- */

cl_dp *cl_dp_new(uv_loop_t *loop, const cl_dp_callbacks *cb, cl_dp_published *pub) {
  cl_dp *dp = calloc(1, sizeof *dp);
  if (!dp) return NULL;
  dp->loop = loop;
  dp->cb = *cb;
  dp->spin_ns = 100000;
  dp->pub_to = pub ? pub : &dp->own_pub;
  dp->wstats = (cl_writer_stats){&dp->st.writes, &dp->st.bytes_out, NULL};
  return dp;
}

/* one handle or connection fewer: the last one after shutdown frees dp */
static void dp_release(cl_dp *dp) {
  if (--dp->open == 0 && dp->shut) free(dp);
}

static void on_handle_closed(uv_handle_t *h) { dp_release(h->data); }

static int ensure_handles(cl_dp *dp) {
  if (dp->handles) return 0;
  if (!dp->loop) return -1;
  uv_check_init(dp->loop, &dp->check);
  uv_idle_init(dp->loop, &dp->idle);
  uv_timer_init(dp->loop, &dp->ra_timer);
  dp->check.data = dp->idle.data = dp->ra_timer.data = dp;
  /* they serve connections, which keep nothing alive on their own either */
  uv_unref((uv_handle_t *)&dp->check);
  uv_unref((uv_handle_t *)&dp->idle);
  uv_unref((uv_handle_t *)&dp->ra_timer);
  dp->handles = 1;
  dp->open += 3;
  return 0;
}

/* ---- the keyring: re-authentication and re-keying (reauth.c, as on control connections) ---- */

static int in_ring(const cl_dp *dp, const cl_hs_key *k) {
  if (!dp->n_ring) return 1; /* never changed: the key it was opened with is the ring */
  int found = 0;
  for (size_t i = 0; i < dp->n_ring; i++) found |= sodium_memcmp(dp->ring[i].k_sess, k->k_sess, 32) == 0;
  return found;
}

static void ra_put(void *ud, const uint8_t *m, size_t n, int boundary) {
  (void)boundary; /* no fault layer here: every frame goes out in its place */
  cl_dp_conn *c = ud;
  cl_frame_put(&c->w.out, CL_T_REAUTH, 0, m, (uint32_t)n);
  mark_dirty(c);
}

static void ra_flush(void *ud) { dp_flush(ud); }

/* seals what is queued under the current send key; sends under next from here on */
static int ra_switch_tx(void *ud, const uint8_t next[32]) {
  cl_dp_conn *c = ud;
  cl_dp *dp = c->dp;
  if (cl_writer_seal_pending(&c->w, &c->seal, &dp->wstats)) return -1;
  memcpy(c->seal.key, next, 32);
  c->seal.counter = 0;
  mark_dirty(c);
  return 0;
}

static cl_reauth_io ra_io(cl_dp_conn *c) {
  return (cl_reauth_io){.ud = c, .put = ra_put, .flush = ra_flush, .switch_tx = ra_switch_tx,
                        .opener = &c->opener, .encrypt = c->encrypt};
}

/* A peer that does not answer a re-authentication in time loses the connection, as a
 * control connection does (transport.c): it must not go on under a key that left the
 * ring. Lua's messages then take the control path until a new data connection is up. */
static void on_ra_timer(uv_timer_t *h) {
  cl_dp *dp = h->data;
  uint64_t now = uv_now(dp->loop), next = UINT64_MAX;
  for (cl_dp_conn *c = dp->conns; c; c = c->next) {
    if (c->closing || c->failed) continue;
    /* an unanswered re-authentication, or a DONE that never came: whoever holds the
     * removed key must not go on writing under it (found by a security review) */
    uint64_t due = cl_reauth_due(&c->ra);
    if (due == UINT64_MAX) continue;
    if (now >= due) {
      cl_log(CL_LOG_WARN, "dataplane", NULL,
             "%s did not complete the re-authentication of its data connection within 1 s: closing it", c->peer);
      dp_fail(c, "%s", "re-authentication not completed within 1 s");
    } else if (due < next) {
      next = due;
    }
  }
  if (next != UINT64_MAX) uv_timer_start(&dp->ra_timer, on_ra_timer, next - now, 0);
}

/* something is due from the peer: the timer looks at it then */
static void arm_ra_timer(cl_dp_conn *c) {
  cl_dp *dp = c->dp;
  uint64_t due = cl_reauth_due(&c->ra), now = uv_now(dp->loop);
  if (due != UINT64_MAX && !uv_is_active((uv_handle_t *)&dp->ra_timer))
    uv_timer_start(&dp->ra_timer, on_ra_timer, due > now ? due - now : 0, 0);
}

static void dp_reauth_start(cl_dp_conn *c) {
  if (c->closing || c->failed) return;
  cl_reauth_io io = ra_io(c);
  if (cl_reauth_start(&c->ra, uv_now(c->dp->loop), &io)) arm_ra_timer(c);
}

static void dp_on_reauth(cl_dp_conn *c, const uint8_t *d, size_t n) {
  cl_dp *dp = c->dp;
  cl_reauth_io io = ra_io(c);
  cl_reauth_result res;
  /* before any change, the ring is the key this connection was opened with */
  cl_hs_key opened = c->ra.key;
  const cl_hs_key *ring = dp->n_ring ? dp->ring : &opened;
  size_t n_ring = dp->n_ring ? dp->n_ring : 1;
  cl_reauth_outcome o = cl_reauth_frame(&c->ra, d, n, uv_now(dp->loop), ring, n_ring, &io, &res);
  sodium_memzero(&opened, sizeof opened);
  switch (o) {
  case CL_RA_NOTHING:
    arm_ra_timer(c);
    return;
  case CL_RA_REKEYED:
    dp->st.rekeys++;
    arm_ra_timer(c);
    return;
  case CL_RA_FAIL_REFLECTED_CHALLENGE:
    dp_fail(c, "%s", "its own re-authentication was sent back to it");
    return;
  case CL_RA_FAIL_REFLECTED_OFFER:
    dp_fail(c, "%s", "its own key offer was sent back to it");
    return;
  case CL_RA_FAIL_NO_COMMON_KEY:
    dp_fail(c, "%s", "no key in common any more");
    return;
  case CL_RA_FAIL_PEER_HAS_NONE:
    dp_fail(c, "%s", "the peer holds none of this node's keys any more");
    return;
  case CL_RA_FAIL_BAD_PROOF:
    dp_fail(c, "%s", "re-authentication did not verify");
    return;
  case CL_RA_FAIL_OFFER_GONE:
    dp_fail(c, "%s", "the peer accepted a key offer that had expired or a key this node no longer holds");
    return;
  case CL_RA_FAIL_NO_MEMORY:
    dp_fail(c, "%s", "out of memory");
    return;
  }
}

void cl_dp_set_keyring(cl_dp *dp, const uint8_t *text, size_t len) {
  cl_keyring_list l;
  char err[200];
  if (cl_keyring_parse((const char *)text, len, 0, &l, err, sizeof err) != 0) return;
  sodium_memzero(dp->ring, sizeof dp->ring);
  for (size_t i = 0; i < l.n; i++) cl_hs_keys((const uint8_t *)l.key[i].p, l.key[i].len, dp->ring[i].k_hs, dp->ring[i].k_sess);
  dp->n_ring = l.n;
  for (cl_dp_conn *c = dp->conns; c; c = c->next)
    if (!c->closing && !c->failed && !in_ring(dp, &c->ra.key)) dp_reauth_start(c);
}

cl_dp_conn *cl_dp_adopt(cl_dp *dp, const cl_data_conn *dc, uint32_t max_frame, size_t queue_max, char *err,
                        size_t errlen) {
  int r = UV_EINVAL;
  cl_dp_conn *c = NULL;
  if (dp->shut || ensure_handles(dp) != 0 || !(c = calloc(1, sizeof *c)) || (r = uv_tcp_init(dp->loop, &c->tcp)) != 0) {
    if (c) r = r ? r : UV_ENOMEM;
    free(c);
    close(dc->fd);
    snprintf(err, errlen, "cannot adopt the data connection with %s: %s", dc->name, uv_err_name(r));
    return NULL;
  }
  c->tcp.data = c;
  c->dp = dp;
  dp->open++;
  c->next = dp->conns;
  if (dp->conns) dp->conns->prev = c;
  dp->conns = c;
  cl_frame_decoder_init(&c->fd, CL_FD_SESSION, 0, max_frame ? max_frame : (16u << 20));
  r = uv_tcp_open(&c->tcp, (uv_os_sock_t)dc->fd);
  if (r) {
    close(dc->fd);
    dp_close_handle(c);
    snprintf(err, errlen, "cannot adopt the data connection with %s: %s", dc->name, uv_err_name(r));
    return NULL;
  }
  uv_unref((uv_handle_t *)&c->tcp);
  snprintf(c->peer, sizeof c->peer, "%s", dc->name);
  c->encrypt = dc->encrypt;
  c->max_frame = max_frame ? max_frame : (16u << 20);
  c->queue_max = queue_max ? queue_max : ((size_t)64 << 20);
  memcpy(c->seal.key, dc->key_tx, 32);
  memcpy(c->opener.rx.key, dc->key_rx, 32);
  cl_hs_key key = {0};
  memcpy(key.k_hs, dc->key_hs, 32);
  memcpy(key.k_sess, dc->key_sess, 32);
  cl_reauth_init(&c->ra, &key, dc->sid);
  sodium_memzero(&key, sizeof key);
  dp->st.conns_adopted++;
  /* now, not at the next turn with traffic: a connection that stays quiet must count */
  publish(dp);
  if (dc->pre_out_len) {
    /* the handshake's last frame (in the clear) goes out before any record */
    cl_tbuf_append(&c->w.wire, dc->pre_out, dc->pre_out_len);
    dp_flush(c);
  }
  if (dc->pre_in_len) {
    /* not now: the caller has yet to tell Lua about this peer */
    cl_tbuf_append(&c->pre_in, dc->pre_in, dc->pre_in_len);
    uv_check_start(&dp->check, on_check);
    uv_idle_start(&dp->idle, on_idle);
  }
  r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (r) dp_fail(c, "read failed: %s", uv_err_name(r));
  /* authenticated under a key the ring lost while it was being handed over */
  if (!r && !in_ring(dp, &c->ra.key)) dp_reauth_start(c);
  return c;
}

void cl_dp_close(cl_dp_conn *c) {
  if (!c || c->closing) return;
  dp_close_handle(c);
}

int cl_dp_closing(const cl_dp_conn *c) { return !c || c->closing; }
void cl_dp_set_tag(cl_dp_conn *c, intptr_t tag) { c->tag = tag; }
intptr_t cl_dp_tag(const cl_dp_conn *c) { return c->tag; }
const cl_dp_rx *cl_dp_rx_current(const cl_dp *dp) { return &dp->rx; }
void cl_dp_set_spin_us(cl_dp *dp, uint32_t us) { dp->spin_ns = (uint64_t)us * 1000; }
void cl_dp_stats_get(const cl_dp *dp, cl_dp_stats *out) { *out = dp->st; }
size_t cl_dp_conns_open(const cl_dp *dp) {
  size_t n = 0;
  for (const cl_dp_conn *c = dp->conns; c; c = c->next) n++;
  return n;
}

void cl_dp_stats_published(const cl_dp_published *pub, cl_dp_stats *out) {
  uint64_t v[CL_DP_STATS_N];
  for (int i = 0; i < CL_DP_STATS_N; i++) v[i] = atomic_load_explicit(&pub->v[i], memory_order_relaxed);
  *out = (cl_dp_stats){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]};
}

void cl_dp_shutdown(cl_dp *dp) {
  if (!dp) return;
  for (cl_dp_conn *c = dp->conns; c; c = c->next) {
    if (c->closing) continue;
    dp_flush(c);
    dp_close_handle(c);
  }
  dp->dirty = NULL;
  if (dp->handles) {
    uv_close((uv_handle_t *)&dp->check, on_handle_closed);
    uv_close((uv_handle_t *)&dp->idle, on_handle_closed);
    uv_close((uv_handle_t *)&dp->ra_timer, on_handle_closed);
    dp->handles = 0;
  }
  dp->shut = 1;
  if (dp->open == 0) free(dp);
}
