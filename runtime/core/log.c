#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_level = CL_LOG_INFO;
static int g_json = 0;

void cl_log_set_level(int level) { g_level = level; }
int cl_log_level(void) { return g_level; }
void cl_log_set_json(int on) { g_json = on; }

static const char *names[] = {"debug", "info", "warn", "error"};

const char *cl_log_level_name(int level) {
  return (level >= 0 && level <= CL_LOG_ERROR) ? names[level] : "info";
}

int cl_log_parse_level(const char *s) {
  for (int i = 0; i <= CL_LOG_ERROR; i++)
    if (strcasecmp(s, names[i]) == 0) return i;
  if (strcasecmp(s, "warning") == 0) return CL_LOG_WARN;
  return -1;
}

/* JSON string escaping for the json log format: control chars and quotes only. */
static size_t json_escape(char *dst, size_t cap, const char *src) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)src; *p && n + 7 < cap; p++) {
    if (*p == '"' || *p == '\\') {
      dst[n++] = '\\';
      dst[n++] = (char)*p;
    } else if (*p < 0x20) {
      n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", *p);
    } else {
      dst[n++] = (char)*p;
    }
  }
  dst[n] = 0;
  return n;
}

/* ---- the writer: no loop ever waits for whoever reads stderr ----
 * A line is copied into a bounded buffer and a thread of its own writes it to stderr.
 * A blocking write(2) from the loops froze a node's control loop whenever its stderr was
 * a pipe nobody drained fast enough (found at 300 nodes, where a test harness starved of
 * CPU read its nodes' pipes late: the frozen nodes answered nobody, were called down,
 * and the news made more log lines). Past CL_LOG_BUF bytes waiting, lines are dropped
 * and counted, and the writer says how many once it catches up. At exit, what waits is
 * written, for at most CL_LOG_EXIT_MS. */
#define CL_LOG_BUF (1u << 20)
#define CL_LOG_EXIT_MS 1000

static pthread_once_t w_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t w_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_more = PTHREAD_COND_INITIALIZER, w_done = PTHREAD_COND_INITIALIZER;
static char w_buf[CL_LOG_BUF];
static size_t w_head, w_len; /* the bytes waiting: w_len from w_head, wrapping */
static uint64_t w_dropped;   /* lines dropped since the writer last said so */
static uint64_t w_dropped_total;
static int w_busy;           /* the writer holds bytes it took but has not written yet */
static int w_started;

static void write_all(const char *p, size_t n) {
  while (n) {
    ssize_t w = write(2, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return; /* stderr closed or broken: nothing more to do */
    p += w;
    n -= (size_t)w;
  }
}

static int format_line(char *line, size_t cap, int level, const char *subsys, const char *fields,
                       const char *msg);

static void *writer(void *arg) {
  (void)arg;
  static char chunk[64 * 1024];
  pthread_mutex_lock(&w_mu);
  for (;;) {
    while (!w_len && !w_dropped) pthread_cond_wait(&w_more, &w_mu);
    size_t n = w_len < sizeof chunk ? w_len : sizeof chunk;
    size_t first = CL_LOG_BUF - w_head < n ? CL_LOG_BUF - w_head : n;
    memcpy(chunk, w_buf + w_head, first);
    memcpy(chunk + first, w_buf, n - first);
    /* whole lines only (each line is shorter than a chunk), so the note below never
     * lands inside one */
    if (n < w_len) {
      size_t whole = n;
      while (whole && chunk[whole - 1] != '\n') whole--;
      if (whole) n = whole;
    }
    w_head = (w_head + n) % CL_LOG_BUF;
    w_len -= n;
    uint64_t dropped = w_dropped;
    w_dropped = 0;
    w_busy = 1;
    pthread_mutex_unlock(&w_mu);
    write_all(chunk, n);
    if (dropped) {
      char msg[128], note[512];
      snprintf(msg, sizeof msg, "%llu log lines dropped: stderr was not read fast enough", (unsigned long long)dropped);
      int k = format_line(note, sizeof note, CL_LOG_WARN, "log", NULL, msg);
      if (k > 0) write_all(note, (size_t)k);
    }
    pthread_mutex_lock(&w_mu);
    w_busy = 0;
    if (!w_len && !w_dropped) pthread_cond_broadcast(&w_done);
  }
  return NULL;
}

int cl_log_flush(int timeout_ms) {
  pthread_mutex_lock(&w_mu);
  if (w_started) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while ((w_len || w_dropped || w_busy) && pthread_cond_timedwait(&w_done, &w_mu, &until) == 0) {
    }
  }
  int left = w_len || w_dropped || w_busy;
  pthread_mutex_unlock(&w_mu);
  return left ? -1 : 0;
}

static void flush_at_exit(void) { (void)cl_log_flush(CL_LOG_EXIT_MS); }

static void start_writer(void) {
  pthread_t th;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &a, writer, NULL) == 0) {
    pthread_mutex_lock(&w_mu); /* cl_log_flush reads it from any thread */
    w_started = 1;
    pthread_mutex_unlock(&w_mu);
    atexit(flush_at_exit);
  }
  pthread_attr_destroy(&a);
}

uint64_t cl_log_dropped(void) {
  pthread_mutex_lock(&w_mu);
  uint64_t d = w_dropped_total;
  pthread_mutex_unlock(&w_mu);
  return d;
}

static void enqueue(const char *line, size_t n) {
  pthread_once(&w_once, start_writer);
  if (!w_started) {
    write_all(line, n); /* no thread: as before, a blocking write */
    return;
  }
  pthread_mutex_lock(&w_mu);
  if (CL_LOG_BUF - w_len < n) {
    w_dropped++;
    w_dropped_total++;
  } else {
    size_t tail = (w_head + w_len) % CL_LOG_BUF;
    size_t first = CL_LOG_BUF - tail < n ? CL_LOG_BUF - tail : n;
    memcpy(w_buf + tail, line, first);
    memcpy(w_buf, line + first, n - first);
    w_len += n;
  }
  pthread_cond_signal(&w_more);
  pthread_mutex_unlock(&w_mu);
}

/* one whole line (with its newline) for msg, as the log format wants it */
static int format_line(char *line, size_t cap, int level, const char *subsys, const char *fields,
                       const char *msg) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[40];
  size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + tl, sizeof ts - tl, ".%03ldZ", (long)(tv.tv_usec / 1000));
  int n;
  if (g_json) {
    char em[2100], es[128], ef[1100];
    json_escape(em, sizeof em, msg);
    json_escape(es, sizeof es, subsys ? subsys : "");
    json_escape(ef, sizeof ef, fields ? fields : "");
    n = snprintf(line, cap, "{\"time\":\"%s\",\"level\":\"%s\",\"subsystem\":\"%s\",\"msg\":\"%s\"%s%s%s}\n", ts,
                 cl_log_level_name(level), es, em, fields ? ",\"fields\":\"" : "", fields ? ef : "",
                 fields ? "\"" : "");
  } else {
    n = snprintf(line, cap, "%s %s [%s] %s%s%s\n", ts, cl_log_level_name(level), subsys ? subsys : "clusterlua", msg,
                 fields && *fields ? " " : "", fields ? fields : "");
  }
  if (n < 0) return -1;
  if ((size_t)n >= cap) {
    n = (int)cap - 1;
    line[n - 1] = '\n';
  }
  return n;
}

void cl_vlog(int level, const char *subsys, const char *fields, const char *fmt, va_list ap) {
  if (level < g_level) return;
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  char line[4096];
  int n = format_line(line, sizeof line, level, subsys, fields, msg);
  if (n > 0) enqueue(line, (size_t)n);
}

void cl_log(int level, const char *subsys, const char *fields, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cl_vlog(level, subsys, fields, fmt, ap);
  va_end(ap);
}

int cl_ratelimit_allow(cl_ratelimit *rl, uint64_t now_ms, uint32_t *suppressed_out) {
  if (rl->per_window == 0) rl->per_window = 5;
  if (rl->window_ms == 0) rl->window_ms = 10000;
  if (now_ms - rl->window_start_ms >= rl->window_ms) {
    rl->window_start_ms = now_ms;
    rl->in_window = 0;
  }
  if (rl->in_window < rl->per_window) {
    rl->in_window++;
    if (suppressed_out) *suppressed_out = rl->suppressed;
    rl->suppressed = 0;
    return 1;
  }
  rl->suppressed++;
  return 0;
}
