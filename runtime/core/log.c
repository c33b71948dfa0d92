#include "core/log.h"

#include <stdio.h>
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

void cl_vlog(int level, const char *subsys, const char *fields, const char *fmt, va_list ap) {
  if (level < g_level) return;
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[40];
  size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + tl, sizeof ts - tl, ".%03ldZ", (long)(tv.tv_usec / 1000));
  char line[4096];
  int n;
  if (g_json) {
    char em[2100], es[128], ef[1100];
    json_escape(em, sizeof em, msg);
    json_escape(es, sizeof es, subsys ? subsys : "");
    json_escape(ef, sizeof ef, fields ? fields : "");
    n = snprintf(line, sizeof line,
                 "{\"time\":\"%s\",\"level\":\"%s\",\"subsystem\":\"%s\",\"msg\":\"%s\"%s%s%s}\n", ts,
                 cl_log_level_name(level), es, em, fields ? ",\"fields\":\"" : "", fields ? ef : "",
                 fields ? "\"" : "");
  } else {
    n = snprintf(line, sizeof line, "%s %s [%s] %s%s%s\n", ts, cl_log_level_name(level),
                 subsys ? subsys : "clusterlua", msg, fields && *fields ? " " : "",
                 fields ? fields : "");
  }
  if (n < 0) return;
  if ((size_t)n >= sizeof line) {
    n = sizeof line - 1;
    line[n - 1] = '\n';
  }
  /* one write() per line keeps lines from both threads whole */
  ssize_t w = write(2, line, (size_t)n);
  (void)w;
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
