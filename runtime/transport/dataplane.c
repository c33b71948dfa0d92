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

enum { CL_CH_LUA_DATA = 2, HOT_MAX = 8 };

struct cl_dp_conn {
  uv_tcp_t tcp;
  cl_dp_conn *next, *prev;
  cl_dp_conn *dirty_next;
  int dirty, closing, failed, writing, encrypt;
  int wrote_this_turn; /* the first message of a loop turn is written at once */
  int hot;              /* in dp.hot */
  uint64_t last_rx;     /* uv_hrtime() of the last bytes read */
  char peer[CL_NODE_NAME_MAX + 1];
  char reason[160];
  intptr_t tag;
  uint32_t max_frame;
  size_t queue_max;
  cl_frame_decoder fd;
  cl_opener opener;
  cl_seal_dir seal;
  cl_tbuf out;  /* plaintext frames not yet sealed/written */
  cl_tbuf wire; /* being written */
  size_t wire_off;
  cl_tbuf pre_in; /* read by the control loop past the handshake: decoded on the next turn */
  uv_write_t wreq;
};

static struct {
  uv_loop_t *loop;
  int handles; /* check + idle initialised */
  uv_check_t check;
  uv_idle_t idle;
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
  /* st as other threads may read it (the metrics endpoint): refreshed once per turn with
   * traffic and after each batch the spin reads */
  _Atomic uint64_t pub[8];
  uint8_t rbuf[65536];
} dp = {.spin_ns = 100000};

static void dp_flush(cl_dp_conn *c);
static void input(cl_dp_conn *c, uint8_t *p, size_t n);
static void publish(void);
static void dp_fail(cl_dp_conn *c, const char *fmt, const char *arg);

/* Writes what Lua queued since the last flush (the check handle's job, done here too by
 * the spin, which keeps the loop from reaching the check handle for a while). */
static void flush_dirty(void) {
  cl_dp_conn *c = dp.dirty;
  dp.dirty = NULL;
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
  c->last_rx = now;
  if (c->hot) return;
  if (dp.nhot == HOT_MAX) {
    int oldest = 0;
    for (int i = 1; i < dp.nhot; i++)
      if (dp.hot[i]->last_rx < dp.hot[oldest]->last_rx) oldest = i;
    dp.hot[oldest]->hot = 0;
    dp.hot[oldest] = dp.hot[--dp.nhot];
  }
  c->hot = 1;
  dp.hot[dp.nhot++] = c;
}

static void unmark_hot(cl_dp_conn *c) {
  if (!c->hot) return;
  c->hot = 0;
  for (int i = 0; i < dp.nhot; i++)
    if (dp.hot[i] == c) {
      dp.hot[i] = dp.hot[--dp.nhot];
      break;
    }
}

/* One non-blocking read of a hot connection, past libuv (whose poll would report the
 * same bytes one system call later). 1: bytes were handled; 0: none; -1: it failed. */
static int hot_read(cl_dp_conn *c, uint64_t now) {
  uv_os_fd_t fd;
  if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0) return -1;
  ssize_t n = recv(fd, dp.rbuf, sizeof dp.rbuf, MSG_DONTWAIT);
  if (n > 0) {
    dp.st.bytes_in += (uint64_t)n;
    dp.st.spin_reads++;
    c->last_rx = now;
    input(c, dp.rbuf, (size_t)n);
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
  if (dp.dirty || dp.failed_pending) return; /* the check handle runs this turn */
  uint64_t now = uv_hrtime();
  if (now >= dp.spin_until) {
    uv_idle_stop(h);
    return;
  }
  const uint64_t leave = now + SLICE_NS;
  for (;;) {
    sched_yield();
    int r = 0, n = dp.nhot;
    /* stops at the first that had bytes: the Lua it ran may have closed any of them */
    for (int k = 0; k < n && r == 0; k++) {
      cl_dp_conn *c = dp.hot[(dp.rr + (unsigned)k) % (unsigned)n];
      if (c->closing || c->failed || now - c->last_rx > dp.spin_ns) continue;
      r = hot_read(c, now);
    }
    dp.rr++;
    if (r < 0 || dp.failed_pending || dp.loop->stop_flag) return;
    now = uv_hrtime();
    if (r > 0) {
      flush_dirty();
      publish();
      if (dp.failed_pending) return;
      dp.spin_until = now + dp.spin_ns;
    }
    if (now >= dp.spin_until || now >= leave) return;
  }
}

static void spin(void) {
  if (!dp.spin_ns || !dp.handles) return;
  dp.spin_until = uv_hrtime() + dp.spin_ns;
  uv_idle_start(&dp.idle, on_idle);
}

static void dp_close_handle(cl_dp_conn *c);

static void publish(void) {
  const uint64_t v[8] = {dp.st.msgs_in, dp.st.msgs_out,      dp.st.bytes_in,     dp.st.bytes_out,
                         dp.st.writes,  dp.st.conns_adopted, dp.st.conns_failed, dp.st.spin_reads};
  for (int i = 0; i < 8; i++) atomic_store_explicit(&dp.pub[i], v[i], memory_order_relaxed);
}

static void on_check(uv_check_t *h) {
  for (cl_dp_conn *x = dp.conns; x; x = x->next)
    if (x->pre_in.len && !x->closing && !x->failed) {
      cl_tbuf b = x->pre_in;
      memset(&x->pre_in, 0, sizeof x->pre_in);
      input(x, b.p, b.len);
      cl_tbuf_free(&b);
    }
  flush_dirty();
  if (dp.failed_pending) {
    dp.failed_pending = 0;
    for (cl_dp_conn *f = dp.conns; f; f = f->next) {
      if (!f->failed || f->closing) continue;
      f->closing = 1;
      dp.st.conns_failed++;
      cl_log(CL_LOG_INFO, "dataplane", NULL, "data connection with %s closed: %s", f->peer, f->reason);
      if (dp.cb.closed) dp.cb.closed(dp.cb.ud, f, f->reason);
      dp_close_handle(f);
    }
  }
  if (!dp.dirty) uv_check_stop(h);
  spin();
  publish();
}

static void mark_dirty(cl_dp_conn *c) {
  if (c->dirty || c->closing) return;
  c->dirty = 1;
  c->dirty_next = dp.dirty;
  dp.dirty = c;
  uv_check_start(&dp.check, on_check);
  uv_idle_start(&dp.idle, on_idle);
}

/* Noted now, reported from the check handle: this may run inside an FFI call. */
static void dp_fail(cl_dp_conn *c, const char *fmt, const char *arg) {
  if (c->failed || c->closing) return;
  c->failed = 1;
  snprintf(c->reason, sizeof c->reason, fmt, arg);
  uv_read_stop((uv_stream_t *)&c->tcp);
  dp.failed_pending = 1;
  uv_check_start(&dp.check, on_check);
  uv_idle_start(&dp.idle, on_idle);
}

static void on_conn_closed(uv_handle_t *h) {
  cl_dp_conn *c = h->data;
  if (c->prev)
    c->prev->next = c->next;
  else
    dp.conns = c->next;
  if (c->next) c->next->prev = c->prev;
  cl_frame_decoder_free(&c->fd);
  cl_opener_free(&c->opener);
  sodium_memzero(&c->seal, sizeof c->seal);
  cl_tbuf_free(&c->out);
  cl_tbuf_free(&c->wire);
  cl_tbuf_free(&c->pre_in);
  free(c);
}

static void dp_close_handle(cl_dp_conn *c) {
  for (cl_dp_conn **pp = &dp.dirty; *pp; pp = &(*pp)->dirty_next)
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
  c->writing = 0;
  if (c->closing || c->failed) return;
  if (status < 0) {
    dp_fail(c, "write failed: %s", uv_err_name(status));
    return;
  }
  dp.st.bytes_out += c->wire.len - c->wire_off;
  c->wire.len = c->wire_off = 0;
  if (c->wire.cap > (4u << 20)) cl_tbuf_free(&c->wire);
  dp_flush(c);
}

static void dp_flush(cl_dp_conn *c) {
  if (c->closing || c->failed || c->writing) return;
  if (c->out.len) {
    if (c->encrypt) {
      if (cl_session_seal(&c->seal, c->out.p, c->out.len, &c->wire)) {
        dp_fail(c, "%s", "out of memory");
        return;
      }
      c->out.len = 0;
    } else if (!c->wire.len) {
      cl_tbuf tmp = c->wire;
      c->wire = c->out;
      c->out = tmp;
      c->out.len = 0;
    } else {
      if (cl_tbuf_append(&c->wire, c->out.p, c->out.len)) {
        dp_fail(c, "%s", "out of memory");
        return;
      }
      c->out.len = 0;
    }
  }
  if (c->wire.len <= c->wire_off) return;
  uv_buf_t b = uv_buf_init((char *)c->wire.p + c->wire_off, (unsigned)(c->wire.len - c->wire_off));
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  dp.st.writes++;
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) {
    dp_fail(c, "write failed: %s", uv_err_name(n));
    return;
  }
  dp.st.bytes_out += (uint64_t)n;
  c->wire_off += (size_t)n;
  if (c->wire_off < c->wire.len) {
    b = uv_buf_init((char *)c->wire.p + c->wire_off, (unsigned)(c->wire.len - c->wire_off));
    c->wreq.data = c;
    int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r) {
      dp_fail(c, "write failed: %s", uv_err_name(r));
      return;
    }
    c->writing = 1;
    return;
  }
  c->wire.len = c->wire_off = 0;
  if (c->wire.cap > (4u << 20)) cl_tbuf_free(&c->wire);
}

int cl_dp_send(cl_dp_conn *c, const uint8_t *p, size_t len) {
  if (!c || c->closing || c->failed) return UV_ENOTCONN;
  if (len > c->max_frame) return UV_E2BIG;
  if (c->out.len + (c->wire.len - c->wire_off) + len > c->queue_max) return UV_ENOBUFS;
  if (cl_frame_put(&c->out, CL_T_DATA, CL_CH_LUA_DATA, p, (uint32_t)len)) return UV_ENOBUFS;
  dp.st.msgs_out++;
  /* The first message of a loop turn goes out at once: a request or a reply is not held
   * back until the turn ends. The rest of the turn's messages are coalesced, and a burst
   * goes out record by record while Lua keeps producing. */
  if (!c->writing && (!c->wrote_this_turn || c->out.len >= CL_RECORD_PLAIN_MAX)) {
    c->wrote_this_turn = 1;
    dp_flush(c);
  }
  mark_dirty(c);
  return 0;
}

/* ---- reading ---- */

static int on_frame(void *ud, const cl_frame *f) {
  cl_dp_conn *c = ud;
  if (c->closing || c->failed) return 1;
  if (f->type != CL_T_DATA || f->channel != CL_CH_LUA_DATA) return 0; /* nothing else travels here */
  dp.st.msgs_in++;
  dp.rx.p = f->data;
  dp.rx.len = f->len;
  if (dp.cb.message) dp.cb.message(dp.cb.ud, c, f->data, f->len);
  dp.rx.p = NULL;
  dp.rx.len = 0;
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
  (void)h;
  (void)suggested;
  *buf = uv_buf_init((char *)dp.rbuf, sizeof dp.rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cl_dp_conn *c = s->data;
  if (c->closing || c->failed) return;
  if (nread < 0) {
    dp_fail(c, "%s", nread == UV_EOF ? "closed by the peer" : uv_err_name((int)nread));
    return;
  }
  if (nread == 0) return;
  dp.st.bytes_in += (uint64_t)nread;
  mark_hot(c, uv_hrtime());
  input(c, (uint8_t *)buf->base, (size_t)nread);
  spin();
  publish();
}

/* ---- lifecycle ---- */

void cl_dp_init(uv_loop_t *loop, const cl_dp_callbacks *cb) {
  dp.loop = loop;
  dp.cb = *cb;
}

static int ensure_handles(void) {
  if (dp.handles) return 0;
  if (!dp.loop) return -1;
  uv_check_init(dp.loop, &dp.check);
  uv_idle_init(dp.loop, &dp.idle);
  /* they serve connections, which keep nothing alive on their own either */
  uv_unref((uv_handle_t *)&dp.check);
  uv_unref((uv_handle_t *)&dp.idle);
  dp.handles = 1;
  return 0;
}

cl_dp_conn *cl_dp_adopt(const cl_data_conn *dc, uint32_t max_frame, size_t queue_max, char *err,
                        size_t errlen) {
  int r = UV_EINVAL;
  cl_dp_conn *c = NULL;
  if (ensure_handles() != 0 || !(c = calloc(1, sizeof *c)) || (r = uv_tcp_init(dp.loop, &c->tcp)) != 0) {
    if (c) r = r ? r : UV_ENOMEM;
    free(c);
    close(dc->fd);
    snprintf(err, errlen, "cannot adopt the data connection with %s: %s", dc->name, uv_err_name(r));
    return NULL;
  }
  c->tcp.data = c;
  c->next = dp.conns;
  if (dp.conns) dp.conns->prev = c;
  dp.conns = c;
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
  dp.st.conns_adopted++;
  /* now, not at the next turn with traffic: a connection that stays quiet must count */
  publish();
  if (dc->pre_out_len) {
    /* the handshake's last frame (in the clear) goes out before any record */
    cl_tbuf_append(&c->wire, dc->pre_out, dc->pre_out_len);
    dp_flush(c);
  }
  if (dc->pre_in_len) {
    /* not now: the caller has yet to tell Lua about this peer */
    cl_tbuf_append(&c->pre_in, dc->pre_in, dc->pre_in_len);
    uv_check_start(&dp.check, on_check);
    uv_idle_start(&dp.idle, on_idle);
  }
  r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (r) dp_fail(c, "read failed: %s", uv_err_name(r));
  return c;
}

void cl_dp_close(cl_dp_conn *c) {
  if (!c || c->closing) return;
  dp_close_handle(c);
}

int cl_dp_closing(const cl_dp_conn *c) { return !c || c->closing; }
void cl_dp_set_tag(cl_dp_conn *c, intptr_t tag) { c->tag = tag; }
intptr_t cl_dp_tag(const cl_dp_conn *c) { return c->tag; }
const cl_dp_rx *cl_dp_rx_current(void) { return &dp.rx; }
void cl_dp_set_spin_us(uint32_t us) { dp.spin_ns = (uint64_t)us * 1000; }
void cl_dp_stats_get(cl_dp_stats *out) { *out = dp.st; }
size_t cl_dp_conns_open(void) {
  size_t n = 0;
  for (const cl_dp_conn *c = dp.conns; c; c = c->next) n++;
  return n;
}

void cl_dp_stats_published(cl_dp_stats *out) {
  uint64_t v[8];
  for (int i = 0; i < 8; i++) v[i] = atomic_load_explicit(&dp.pub[i], memory_order_relaxed);
  *out = (cl_dp_stats){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
}

void cl_dp_shutdown(void) {
  for (cl_dp_conn *c = dp.conns; c; c = c->next) {
    if (c->closing) continue;
    dp_flush(c);
    dp_close_handle(c);
  }
  dp.dirty = NULL;
  if (dp.handles) {
    uv_close((uv_handle_t *)&dp.check, NULL);
    uv_close((uv_handle_t *)&dp.idle, NULL);
    dp.handles = 0;
  }
}
