/* Prometheus text exposition format 0.0.4, written so promtool's parser and linter
 * accept it: names sanitised, counters end in _total, label values escaped,
 * histogram buckets cumulative and ending with le="+Inf". */
#include "admin/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_NONE, T_COUNTER, T_GAUGE, T_HISTOGRAM };

void cl_metrics_init(cl_metrics *m) { memset(m, 0, sizeof *m); }

void cl_metrics_free(cl_metrics *m) {
  free(m->buf);
  memset(m, 0, sizeof *m);
}

const char *cl_metrics_text(const cl_metrics *m, size_t *len) {
  if (len) *len = m->len;
  return m->buf ? m->buf : "";
}

static void put(cl_metrics *m, const char *s, size_t n) {
  if (m->oom) return;
  if (m->len + n + 1 > m->cap) {
    size_t nc = m->cap ? m->cap : 4096;
    while (nc < m->len + n + 1) nc *= 2;
    char *b = realloc(m->buf, nc);
    if (!b) {
      m->oom = 1;
      return;
    }
    m->buf = b;
    m->cap = nc;
  }
  memcpy(m->buf + m->len, s, n);
  m->len += n;
  m->buf[m->len] = 0;
}

static void puts_(cl_metrics *m, const char *s) { put(m, s, strlen(s)); }

static void putf(cl_metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(cl_metrics *m, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) put(m, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* shortest text that reads back as the same double */
static void fmt_double(char *out, size_t cap, double v) {
  if (isnan(v)) {
    snprintf(out, cap, "NaN");
  } else if (isinf(v)) {
    snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
  } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(out, cap, "%.0f", v);
  } else {
    for (int prec = 6; prec <= 17; prec++) {
      snprintf(out, cap, "%.*g", prec, v);
      if (strtod(out, NULL) == v) return;
    }
  }
}

static void sanitize_name(char *dst, size_t cap, const char *src) {
  size_t n = 0;
  for (const char *p = src; *p && n + 1 < cap; p++) {
    char ch = *p;
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':' ||
             (n > 0 && ch >= '0' && ch <= '9');
    dst[n++] = ok ? ch : '_';
  }
  if (n == 0) dst[n++] = '_';
  dst[n] = 0;
}

void cl_metrics_family(cl_metrics *m, const char *name, const char *type, const char *help) {
  char nm[128];
  sanitize_name(nm, sizeof nm - 8, name ? name : "");
  m->type = !type ? T_GAUGE
            : strcmp(type, "counter") == 0   ? T_COUNTER
            : strcmp(type, "histogram") == 0 ? T_HISTOGRAM
                                             : T_GAUGE;
  size_t nl = strlen(nm);
  if (m->type == T_COUNTER && (nl < 6 || strcmp(nm + nl - 6, "_total") != 0)) strcat(nm, "_total");
  snprintf(m->family, sizeof m->family, "%s", nm);
  puts_(m, "# HELP ");
  puts_(m, m->family);
  put(m, " ", 1);
  /* HELP escapes only backslash and newline */
  for (const char *p = help ? help : ""; *p; p++) {
    if (*p == '\\') puts_(m, "\\\\");
    else if (*p == '\n') puts_(m, "\\n");
    else put(m, p, 1);
  }
  put(m, "\n", 1);
  putf(m, "# TYPE %s %s\n", m->family,
       m->type == T_COUNTER ? "counter" : m->type == T_HISTOGRAM ? "histogram" : "gauge");
}

static void put_labels(cl_metrics *m, const char *const *labels, const char *le) {
  int any = 0;
  for (const char *const *l = labels; l && l[0] && l[1]; l += 2) {
    char ln[128];
    sanitize_name(ln, sizeof ln, l[0]);
    if (le && strcmp(ln, "le") == 0) continue; /* reserved for buckets */
    put(m, any ? "," : "{", 1);
    any = 1;
    puts_(m, ln);
    puts_(m, "=\"");
    for (const char *p = l[1]; *p; p++) {
      if (*p == '\\') puts_(m, "\\\\");
      else if (*p == '"') puts_(m, "\\\"");
      else if (*p == '\n') puts_(m, "\\n");
      else put(m, p, 1);
    }
    put(m, "\"", 1);
  }
  if (le) {
    put(m, any ? "," : "{", 1);
    any = 1;
    putf(m, "le=\"%s\"", le);
  }
  if (any) put(m, "}", 1);
}

static void sample(cl_metrics *m, const char *suffix, const char *const *labels, const char *le,
                   double v) {
  char num[64];
  puts_(m, m->family);
  puts_(m, suffix);
  put_labels(m, labels, le);
  fmt_double(num, sizeof num, v);
  putf(m, " %s\n", num);
}

void cl_metrics_sample(cl_metrics *m, const char *const *labels, double value) {
  if (!m->family[0]) return;
  sample(m, "", labels, NULL, value);
}

int cl_histogram_init(cl_histogram *h, const double *bounds, size_t n) {
  memset(h, 0, sizeof *h);
  h->counts = calloc(n + 1, sizeof *h->counts);
  if (!h->counts) return -1;
  h->bounds = bounds;
  h->n = n;
  return 0;
}

void cl_histogram_free(cl_histogram *h) {
  free(h->counts);
  memset(h, 0, sizeof *h);
}

void cl_histogram_observe(cl_histogram *h, double v) {
  if (!h->counts || isnan(v)) return;
  size_t i = 0;
  while (i < h->n && v > h->bounds[i]) i++;
  h->counts[i]++;
  h->sum += v;
  h->count++;
}

void cl_metrics_histogram_sample(cl_metrics *m, const char *const *labels, const cl_histogram *h) {
  if (!m->family[0] || !h) return;
  uint64_t cum = 0;
  char le[64];
  for (size_t i = 0; i < h->n; i++) {
    cum += h->counts ? h->counts[i] : 0;
    fmt_double(le, sizeof le, h->bounds[i]);
    sample(m, "_bucket", labels, le, (double)cum);
  }
  sample(m, "_bucket", labels, "+Inf", (double)h->count);
  sample(m, "_sum", labels, NULL, h->sum);
  sample(m, "_count", labels, NULL, (double)h->count);
}

void cl_metrics_counter(cl_metrics *m, const char *name, const char *help, double value) {
  cl_metrics_family(m, name, "counter", help);
  cl_metrics_sample(m, NULL, value);
}

void cl_metrics_gauge(cl_metrics *m, const char *name, const char *help, double value) {
  cl_metrics_family(m, name, "gauge", help);
  cl_metrics_sample(m, NULL, value);
}

void cl_metrics_histogram(cl_metrics *m, const char *name, const char *help, const cl_histogram *h) {
  cl_metrics_family(m, name, "histogram", help);
  cl_metrics_histogram_sample(m, NULL, h);
}
