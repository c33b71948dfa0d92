/* A tiny Prometheus text-format (0.0.4) builder for GET /metrics. Output is meant to
 * pass `promtool check metrics`: one HELP/TYPE per family, samples grouped under it,
 * label values escaped, counters named *_total. */
#ifndef CL_METRICS_H
#define CL_METRICS_H
#include <stddef.h>
#include <stdint.h>

typedef struct cl_metrics {
  char *buf;
  size_t len, cap;
  int oom;          /* set when an append failed; the text is then incomplete */
  char family[128]; /* current family name (counters: with _total) */
  int type;         /* current family type */
} cl_metrics;

#define CL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

void cl_metrics_init(cl_metrics *m);
void cl_metrics_free(cl_metrics *m);
/* The text so far (NUL-terminated, never NULL), and its length. */
const char *cl_metrics_text(const cl_metrics *m, size_t *len);

/* Starts a family. type: "counter", "gauge" or "histogram". A counter's name gets
 * "_total" appended unless it already ends so. Invalid name characters become '_'. */
void cl_metrics_family(cl_metrics *m, const char *name, const char *type, const char *help);
/* One sample of the current counter/gauge family. labels: NULL, or a NULL-terminated
 * array of name, value pairs: (const char *[]){"reason", "bad_cookie", NULL}. */
void cl_metrics_sample(cl_metrics *m, const char *const *labels, double value);

/* A histogram's state: fixed upper bounds (ascending), per-bucket counts. */
typedef struct cl_histogram {
  const double *bounds; /* not owned; n ascending finite upper bounds */
  size_t n;
  uint64_t *counts; /* n + 1: the last is for values above every bound (+Inf) */
  double sum;
  uint64_t count;
} cl_histogram;

int cl_histogram_init(cl_histogram *h, const double *bounds, size_t n); /* 0 or -1 */
void cl_histogram_free(cl_histogram *h);
void cl_histogram_observe(cl_histogram *h, double v);
/* Emits _bucket (cumulative, with le="+Inf"), _sum and _count for the current
 * histogram family. */
void cl_metrics_histogram_sample(cl_metrics *m, const char *const *labels, const cl_histogram *h);

/* Shorthands: a family with one unlabelled sample. */
void cl_metrics_counter(cl_metrics *m, const char *name, const char *help, double value);
void cl_metrics_gauge(cl_metrics *m, const char *name, const char *help, double value);
void cl_metrics_histogram(cl_metrics *m, const char *name, const char *help, const cl_histogram *h);

#endif
