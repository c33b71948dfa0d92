/* One-line-per-event logging, safe from both loops. */
#ifndef CL_LOG_H
#define CL_LOG_H
#include <stdarg.h>
#include <stdint.h>

enum cl_log_level { CL_LOG_DEBUG, CL_LOG_INFO, CL_LOG_WARN, CL_LOG_ERROR };

void cl_log_set_level(int level);
int cl_log_level(void);
void cl_log_set_json(int on);
int cl_log_parse_level(const char *s); /* -1 if unknown */
const char *cl_log_level_name(int level);

/* subsys is the bracketed part: a topology name or "transport", "election"...
 * fields: optional "k=v k2=v2" appended after the message (may be NULL). */
void cl_log(int level, const char *subsys, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void cl_vlog(int level, const char *subsys, const char *fields, const char *fmt, va_list ap);

/* Lines reach stderr through a writer thread, so no loop ever waits for whoever reads
 * it; past 1 MiB waiting they are dropped and counted (and the log says how many).
 * cl_log_flush waits until what waits is written, at most timeout_ms: 0 when it was,
 * -1 when time ran out (it runs at exit by itself, for at most 1 s). */
int cl_log_flush(int timeout_ms);
uint64_t cl_log_dropped(void); /* lines dropped since start */

/* A token bucket so a flood (bad handshakes, unreachable peers) cannot fill the log.
 * Not thread-safe: each user owns one on one loop. */
typedef struct {
  uint64_t window_start_ms;
  uint32_t in_window;
  uint32_t suppressed;
  uint32_t per_window;
  uint32_t window_ms;
} cl_ratelimit;

/* Returns 1 if the caller may log now; *suppressed_out gets how many were dropped
 * since the last allowed line (so the line can say so). */
int cl_ratelimit_allow(cl_ratelimit *rl, uint64_t now_ms, uint32_t *suppressed_out);

#endif
