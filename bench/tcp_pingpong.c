/* Bare C TCP ping-pong on loopback: the floor for a request/response round trip.
 * A forked child echoes fixed-size messages; the parent sends one, waits for the echo,
 * and times each round trip. Prints: "RESULT tcp_rtt_us median=M min=m max=x n=N size=S".
 * Usage: tcp_pingpong [round_trips [size [poll]]] (default 20000, 64 bytes; TCP_NODELAY
 * on). With "poll", both sides wait by polling (non-blocking recv, sched_yield between
 * tries) instead of sleeping in read: the floor for a runtime that spins, as clusterlua's
 * Lua loop does after message traffic, when the two ends run on different CPUs. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int poll_mode;

static int full(int fd, char *buf, size_t n, int wr) {
  size_t off = 0;
  while (off < n) {
    ssize_t r = wr ? write(fd, buf + off, n - off)
                   : poll_mode ? recv(fd, buf + off, n - off, MSG_DONTWAIT) : read(fd, buf + off, n - off);
    if (r < 0 && !wr && poll_mode && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      sched_yield();
      continue;
    }
    if (r <= 0) return -1;
    off += (size_t)r;
  }
  return 0;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  int size = argc > 2 ? atoi(argv[2]) : 64;
  poll_mode = argc > 3 && strcmp(argv[3], "poll") == 0;
  if (n < 1 || size < 1 || size > 65536) return 2;
  int one = 1;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) ||
      getsockname(ls, (struct sockaddr *)&a, &al)) {
    perror("listen");
    return 1;
  }
  char *buf = calloc(1, (size_t)size);
  pid_t pid = fork();
  if (pid == 0) {
    int c = accept(ls, NULL, NULL);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    while (full(c, buf, (size_t)size, 0) == 0 && full(c, buf, (size_t)size, 1) == 0) {}
    _exit(0);
  }
  close(ls);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, (struct sockaddr *)&a, sizeof a)) {
    perror("connect");
    kill(pid, SIGKILL);
    return 1;
  }
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  double *t = malloc(sizeof(double) * (size_t)n);
  for (int i = 0; i < 1000; i++) /* warm-up */
    if (full(s, buf, (size_t)size, 1) || full(s, buf, (size_t)size, 0)) return 1;
  for (int i = 0; i < n; i++) {
    double t0 = now_us();
    if (full(s, buf, (size_t)size, 1) || full(s, buf, (size_t)size, 0)) return 1;
    t[i] = now_us() - t0;
  }
  close(s);
  waitpid(pid, NULL, 0);
  qsort(t, (size_t)n, sizeof(double), cmp);
  printf("RESULT tcp_rtt_us%s median=%.1f min=%.1f max=%.1f n=%d size=%d\n", poll_mode ? "_poll" : "", t[n / 2], t[0], t[n - 1], n,
         size);
  return 0;
}
