/* Data plane tests: data connections adopted from loopback TCP pairs, the test
 * playing the peers on the other sockets with plain (unencrypted) frames. They cover what
 * the spin does after traffic: it reads the connections that brought data lately
 * directly, past libuv, so frames split across reads, frames arriving while it spins
 * and the peer's close must come out exactly as through the loop. Every wait is bounded.
 * Output: one "PASS name" or "FAIL name: reason" line per case. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/dataplane.h"
#include "core/log.h"
#include "loop_test.h"
#include "transport/internal.h"

enum { CH_LUA_DATA = 2 }; /* the channel dataplane.c uses */

static cl_dp *D; /* the data plane under test */

/* ---- what the data plane reported ---- */

static struct {
  char msgs[16][32];
  int n;
  int closed;
  char reason[160];
  int peer_fd;        /* the test's end */
  const char *on_first; /* written by the peer as soon as the first message is delivered */
  size_t on_first_len;
  int shut_after_first; /* and then the peer closes its side */
} seen;

static void on_message(void *ud, cl_dp_conn *c, const uint8_t *p, size_t n) {
  (void)ud;
  (void)c;
  if (seen.n < 16) {
    snprintf(seen.msgs[seen.n], sizeof seen.msgs[0], "%.*s", (int)n, (const char *)p);
    seen.n++;
  }
  /* the next bytes arrive while this node is spinning on the connection */
  if (seen.n == 1 && seen.on_first) {
    if (write(seen.peer_fd, seen.on_first, seen.on_first_len) != (ssize_t)seen.on_first_len) seen.n = 100;
    if (seen.shut_after_first) shutdown(seen.peer_fd, SHUT_WR);
    seen.on_first = NULL;
  }
}

static void on_closed(void *ud, cl_dp_conn *c, const char *reason) {
  (void)ud;
  (void)c;
  seen.closed++;
  snprintf(seen.reason, sizeof seen.reason, "%s", reason);
}

/* ---- helpers ---- */

/* A connected loopback TCP pair: *a is adopted by the data plane, *b is the peer's. */
static int tcp_pair(int *a, int *b) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 1) ||
      getsockname(ls, (struct sockaddr *)&sa, &len)) {
    if (ls >= 0) close(ls);
    return -1;
  }
  *b = socket(AF_INET, SOCK_STREAM, 0);
  if (*b < 0 || connect(*b, (struct sockaddr *)&sa, sizeof sa)) {
    close(ls);
    return -1;
  }
  *a = accept(ls, NULL, NULL);
  close(ls);
  return *a < 0 ? -1 : 0;
}

static cl_dp_conn *adopt(int fd) {
  cl_data_conn dc = {.name = "peer@127.0.0.1:1", .incarnation = 1, .fd = fd, .encrypt = 0};
  char err[256];
  return cl_dp_adopt(D, &dc, 1u << 20, 1u << 20, err, sizeof err);
}

/* frames of a DATA message each, concatenated */
static int frames(cl_tbuf *out, const char *const *msgs, int n) {
  for (int i = 0; i < n; i++)
    if (cl_frame_put(out, CL_T_DATA, CH_LUA_DATA, msgs[i], (uint32_t)strlen(msgs[i]))) return -1;
  return 0;
}

static int got(void *n) { return seen.n >= *(int *)n; }
/* every connection handed to the data plane is closed and its close callback has run */
static int all_freed(void *ud) {
  (void)ud;
  return cl_dp_conns_open(D) == 0;
}
static int is_closed(void *ud) {
  (void)ud;
  return seen.closed;
}
static int one = 1, three = 3;

static void reset_seen(int peer_fd) {
  memset(&seen, 0, sizeof seen);
  seen.peer_fd = peer_fd;
}

/* ---- cases ---- */

/* The first message comes through the loop; while this side spins after it, the peer
 * sends the rest of that burst: one frame whole, the next cut in two (its tail only
 * after a pause, so two reads must join it). All arrive in order, and at least one read
 * was the spin's own. */
static int t_spin_reads_in_order(void) {
  int a, b;
  CHECK(tcp_pair(&a, &b) == 0, "no loopback pair");
  reset_seen(b);
  cl_dp_set_spin_us(D, 300000);
  cl_dp_stats before;
  cl_dp_stats_get(D, &before);
  cl_dp_conn *c = adopt(a);
  CHECK(c, "adopt failed");

  cl_tbuf first = {0}, rest = {0};
  const char *m1[] = {"one"}, *m23[] = {"two", "three"};
  CHECK(frames(&first, m1, 1) == 0 && frames(&rest, m23, 2) == 0, "framing failed");
  size_t cut = rest.len - 3; /* inside the last frame's payload */
  seen.on_first = (const char *)rest.p;
  seen.on_first_len = cut;
  CHECK(write(b, first.p, first.len) == (ssize_t)first.len, "peer write failed");
  CHECK(run_until(got, &one, 2000), "first message not delivered");
  /* still spinning (300 ms): the tail goes out after a pause the spin has to wait through */
  usleep(2000);
  CHECK(write(b, rest.p + cut, rest.len - cut) == (ssize_t)(rest.len - cut), "peer write failed");
  CHECK(run_until(got, &three, 2000), "only %d of 3 messages delivered", seen.n);
  CHECK(seen.n == 3, "%d messages delivered, expected 3", seen.n);
  CHECK(!strcmp(seen.msgs[0], "one") && !strcmp(seen.msgs[1], "two") && !strcmp(seen.msgs[2], "three"),
        "out of order: %s, %s, %s", seen.msgs[0], seen.msgs[1], seen.msgs[2]);
  cl_dp_stats after;
  cl_dp_stats_get(D, &after);
  CHECK(after.spin_reads > before.spin_reads, "the spin never read the connection itself");
  CHECK(after.msgs_in - before.msgs_in == 3, "msgs_in counted %llu, expected 3",
        (unsigned long long)(after.msgs_in - before.msgs_in));
  CHECK(!seen.closed, "closed: %s", seen.reason);

  cl_tbuf_free(&first);
  cl_tbuf_free(&rest);
  cl_dp_close(c);
  close(b);
  CHECK(run_until(all_freed, NULL, 2000), "the connection was never freed");
  return 0;
}

/* A case that ends with the connection closed: the peer sends `first` through the loop;
 * as soon as it is delivered, while this side spins, the peer sends `then` (and closes
 * its side if `shut`). Checks the close was reported once and the spin did read. */
static int run_to_close(const cl_tbuf *first, const cl_tbuf *then, int shut) {
  int a, b;
  CHECK(tcp_pair(&a, &b) == 0, "no loopback pair");
  reset_seen(b);
  cl_dp_set_spin_us(D, 300000);
  cl_dp_stats before, after;
  cl_dp_stats_get(D, &before);
  CHECK(adopt(a), "adopt failed"); /* freed by the data plane once reported closed */
  seen.on_first = (const char *)then->p;
  seen.on_first_len = then->len;
  seen.shut_after_first = shut;
  CHECK(write(b, first->p, first->len) == (ssize_t)first->len, "peer write failed");
  int closed = run_until(is_closed, NULL, 2000);
  uv_run(L, UV_RUN_NOWAIT);
  close(b);
  CHECK(closed, "the connection was not reported closed");
  CHECK(seen.closed == 1, "reported closed %d times", seen.closed);
  cl_dp_stats_get(D, &after);
  CHECK(after.spin_reads > before.spin_reads, "the spin never read the connection itself");
  return 0;
}

/* While this side spins after a first message, the peer sends one more and closes its
 * side right behind it: the spin reads both, and the close is reported once, as closed
 * by the peer, after the second message. */
static int t_peer_close_while_spinning(void) {
  cl_tbuf f = {0}, g = {0};
  const char *m1[] = {"first"}, *m2[] = {"second"};
  int framed = frames(&f, m1, 1) == 0 && frames(&g, m2, 1) == 0;
  int r = framed ? run_to_close(&f, &g, 1) : 1;
  cl_tbuf_free(&f);
  cl_tbuf_free(&g);
  CHECK(framed, "framing failed");
  if (r) return r;
  CHECK(strstr(seen.reason, "closed by the peer"), "reason: %s", seen.reason);
  CHECK(seen.n == 2 && !strcmp(seen.msgs[0], "first") && !strcmp(seen.msgs[1], "second"),
        "%d messages delivered (expected first, second)", seen.n);
  return 0;
}

/* Garbage read by the spin closes the connection with the decoder's reason, and the
 * valid frame right behind it in the same write is never delivered. */
static int t_garbage_while_spinning(void) {
  cl_tbuf f = {0}, junk = {0};
  const char *m[] = {"fine"}, *after_junk[] = {"never"};
  static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  int framed = frames(&f, m, 1) == 0 && cl_tbuf_append(&junk, http, sizeof http - 1) == 0 &&
               frames(&junk, after_junk, 1) == 0;
  int r = framed ? run_to_close(&f, &junk, 0) : 1;
  cl_tbuf_free(&f);
  cl_tbuf_free(&junk);
  CHECK(framed, "framing failed");
  if (r) return r;
  CHECK(seen.n == 1, "%d messages delivered, expected 1", seen.n);
  CHECK(seen.reason[0] && !strstr(seen.reason, "closed by the peer"), "reason: %s", seen.reason);
  return 0;
}

static int index_of(const char *m) {
  for (int i = 0; i < seen.n && i < 16; i++)
    if (!strcmp(seen.msgs[i], m)) return i;
  return -1;
}

/* Two connections that both brought data are both read by the spin, in turn: each one's
 * next message is the spin's own read, and each connection keeps its order. */
static int t_spin_reads_two_connections(void) {
  int a1, b1, a2, b2;
  CHECK(tcp_pair(&a1, &b1) == 0 && tcp_pair(&a2, &b2) == 0, "no loopback pairs");
  reset_seen(b1);
  cl_dp_set_spin_us(D, 300000);
  cl_dp_conn *c1 = adopt(a1), *c2 = adopt(a2);
  CHECK(c1 && c2, "adopt failed");
  cl_tbuf x1 = {0}, y1 = {0}, x2 = {0}, y2 = {0};
  const char *mx1[] = {"x1"}, *my1[] = {"y1"}, *mx2[] = {"x2"}, *my2[] = {"y2"};
  CHECK(frames(&x1, mx1, 1) == 0 && frames(&y1, my1, 1) == 0 && frames(&x2, mx2, 1) == 0 &&
            frames(&y2, my2, 1) == 0,
        "framing failed");
  static int two = 2, four = 4;
  CHECK(write(b1, x1.p, x1.len) == (ssize_t)x1.len, "peer write failed");
  CHECK(run_until(got, &one, 2000), "x1 not delivered");
  CHECK(write(b2, y1.p, y1.len) == (ssize_t)y1.len, "peer write failed");
  CHECK(run_until(got, &two, 2000), "y1 not delivered");
  cl_dp_stats before;
  cl_dp_stats_get(D, &before);
  CHECK(write(b1, x2.p, x2.len) == (ssize_t)x2.len && write(b2, y2.p, y2.len) == (ssize_t)y2.len,
        "peer write failed");
  CHECK(run_until(got, &four, 2000), "only %d of 4 messages delivered", seen.n);
  cl_dp_stats after;
  cl_dp_stats_get(D, &after);
  CHECK(after.spin_reads - before.spin_reads >= 2, "the spin read %llu times, expected both connections",
        (unsigned long long)(after.spin_reads - before.spin_reads));
  CHECK(index_of("x1") < index_of("x2") && index_of("y1") < index_of("y2") && index_of("x1") >= 0 &&
            index_of("y1") >= 0,
        "out of order: %s %s %s %s", seen.msgs[0], seen.msgs[1], seen.msgs[2], seen.msgs[3]);
  CHECK(!seen.closed, "closed: %s", seen.reason);
  cl_tbuf_free(&x1);
  cl_tbuf_free(&y1);
  cl_tbuf_free(&x2);
  cl_tbuf_free(&y2);
  cl_dp_close(c1);
  cl_dp_close(c2);
  close(b1);
  close(b2);
  CHECK(run_until(all_freed, NULL, 2000), "the connections were never freed");
  return 0;
}

/* The keyring loses the key a data connection was opened with; the peer never answers
 * the re-authentication: the connection is closed within about a second, with the
 * reason, rather than going on under a key that left the ring. */
static int t_reauth_unanswered(void) {
  int a, b;
  CHECK(tcp_pair(&a, &b) == 0, "no tcp pair");
  reset_seen(b);
  cl_dp_conn *c = adopt(a);
  CHECK(c, "adopt failed");
  static const char ring[] = "a-key-this-connection-never-used\n";
  uint64_t t0 = uv_now(L);
  cl_dp_set_keyring(D, (const uint8_t *)ring, sizeof ring - 1);
  int closed = run_until(is_closed, NULL, 3000);
  uint64_t dt = uv_now(L) - t0;
  char buf[256];
  ssize_t n = recv(b, buf, sizeof buf, MSG_DONTWAIT); /* the REAUTH it sent, unanswered */
  close(b);
  CHECK(run_until(all_freed, NULL, 2000), "the connection was never freed");
  CHECK(n > 0, "no re-authentication was sent");
  CHECK(closed && strstr(seen.reason, "re-authentication") && dt >= 900 && dt <= 2000,
        "closed=%d after %llu ms: %s", closed, (unsigned long long)dt, seen.reason);
  return 0;
}

int main(void) {
  cl_log_set_level(CL_LOG_WARN);
  L = uv_default_loop();
  cl_dp_callbacks cb = {.message = on_message, .closed = on_closed, .ud = NULL};
  D = cl_dp_new(L, &cb, NULL);
  if (!D) return 1;
  run_case("dataplane: the spin reads the hot connection, frames in order, a split frame joined",
           t_spin_reads_in_order);
  run_case("dataplane: two connections that brought data are both read by the spin, each in order",
           t_spin_reads_two_connections);
  run_case("dataplane: a message and the peer's close right behind it, read by the spin: the message, then one close",
           t_peer_close_while_spinning);
  run_case("dataplane: garbage read by the spin closes the connection with a reason, nothing after it delivered",
           t_garbage_while_spinning);
  /* last: it leaves the data plane with a keyring */
  run_case("dataplane: a re-authentication the peer never answers closes the connection within 1 s",
           t_reauth_unanswered);
  cl_dp_shutdown(D);
  uv_run(L, UV_RUN_DEFAULT);
  uv_loop_close(L);
  return harness_exit();
}
