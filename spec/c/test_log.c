/* The log's writer (runtime/core/log.c): no caller ever waits for whoever reads stderr. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "harness.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* points stderr at a new pipe: *rd is its read end (non-blocking), *saved the old stderr */
static int stderr_to_pipe(int *rd, int *saved) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  *saved = dup(2);
  dup2(fds[1], 2);
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  *rd = fds[0];
  return 0;
}
static void stderr_back(int rd, int saved) {
  dup2(saved, 2);
  close(saved);
  close(rd);
}

/* stderr is a pipe nobody reads: 20,000 lines (about 2.4 MB, past the 1 MiB buffer and
 * the pipe's own) are logged at once, some dropped and counted; then the pipe is read:
 * the lines come whole and in order, and the log says how many were dropped. */
static int t_never_waits(void) {
  int rd, saved;
  CHECK(stderr_to_pipe(&rd, &saved) == 0, "pipe");
  uint64_t d0 = cl_log_dropped();
  double t0 = now_s();
  for (int i = 0; i < 20000; i++)
    cl_log(CL_LOG_WARN, "test", NULL, "line %06d of a log that nobody reads while it is written, padded", i);
  double took = now_s() - t0;
  uint64_t dropped = cl_log_dropped() - d0;
  /* read it all: until the drop note and the last line that got in (bounded: 10 s) */
  size_t cap = 4u << 20, len = 0;
  char *buf = malloc(cap);
  CHECK(buf != NULL, "out of memory");
  double end = now_s() + 10;
  int noted = 0, drained = 0;
  while (now_s() < end && !drained) {
    ssize_t r = read(rd, buf + len, cap - 1 - len);
    if (r > 0) {
      len += (size_t)r;
      buf[len] = 0;
      noted = noted || strstr(buf, "log lines dropped: stderr was not read fast enough") != NULL;
    } else {
      /* nothing to read: done once the writer has written everything (and said so) */
      if (noted && cl_log_flush(10) == 0) {
        ssize_t more = read(rd, buf + len, cap - 1 - len);
        if (more > 0) {
          len += (size_t)more;
          buf[len] = 0;
        }
        drained = more <= 0;
      } else {
        usleep(1000);
      }
    }
  }
  stderr_back(rd, saved);
  /* every line whole, numbers increasing */
  int lines = 0, last = -1, whole = 1, ordered = 1;
  for (char *p = buf, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
    *nl = 0;
    const char *m = strstr(p, "line ");
    if (m && strstr(p, " warn [test] line ")) {
      int k = atoi(m + 5);
      if (!strstr(p, "padded")) whole = 0;
      if (k <= last) ordered = 0;
      last = k;
      lines++;
    }
  }
  free(buf);
  CHECK(took < 2.0, "logging 20,000 lines to a pipe nobody reads took %.2f s", took);
  CHECK(dropped > 0 && dropped < 20000, "%llu lines dropped", (unsigned long long)dropped);
  CHECK(noted, "no note of the dropped lines within 10 s (%zu bytes read)", len);
  CHECK(lines > 0 && (uint64_t)lines + dropped == 20000, "%d lines read + %llu dropped != 20000", lines,
        (unsigned long long)dropped);
  CHECK(whole && ordered, "lines torn (%d) or out of order (%d)", !whole, !ordered);
  return 0;
}

/* cl_log_flush waits for what waits: a line logged, then flushed, is in the pipe */
static int t_flush(void) {
  int rd, saved;
  CHECK(stderr_to_pipe(&rd, &saved) == 0, "pipe");
  cl_log(CL_LOG_ERROR, "test", "k=v", "flushed %d", 42);
  cl_log_flush(2000);
  char buf[512] = "";
  ssize_t r = read(rd, buf, sizeof buf - 1);
  stderr_back(rd, saved);
  if (r > 0) buf[r] = 0;
  CHECK(r > 0 && strstr(buf, " error [test] flushed 42 k=v\n"), "after the flush the pipe held: %s", buf);
  return 0;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* as the node does: a closed stderr is not fatal */
  run_case("log: a stderr nobody reads never blocks the caller; lines dropped are counted and noted", t_never_waits);
  run_case("log: cl_log_flush returns once what was logged is written", t_flush);
  return harness_exit();
}
