/* filter_path: walks the document once with the set of positions reached in every
 * path (an NFA over key segments), so "**" and many paths cost no backtracking. The
 * filter comes from a query string: its size is bounded before anything is built. */
#include "admin/json_filter.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILTER_LEN CL_JSON_FILTER_MAX_LEN
#define MAX_PATHS CL_JSON_FILTER_MAX_PATHS
#define MAX_SEGS CL_JSON_FILTER_MAX_PARTS

typedef struct {
  char *segs[MAX_SEGS];
  int n;
} fpath;

typedef struct {
  fpath *paths;
  int n;
} fset;

typedef struct {
  uint16_t p, i;
} st;

typedef struct {
  st *v;
  size_t n, cap;
} stset;

static int stset_add(stset *s, int p, int i) {
  for (size_t k = 0; k < s->n; k++)
    if (s->v[k].p == p && s->v[k].i == i) return 0;
  if (s->n == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 8;
    st *v = realloc(s->v, nc * sizeof *v);
    if (!v) return -1;
    s->v = v;
    s->cap = nc;
  }
  s->v[s->n++] = (st){(uint16_t)p, (uint16_t)i};
  return 0;
}

static int is_deep(const char *seg) { return seg[0] == '*' && seg[1] == '*' && seg[2] == 0; }

/* "**" may match zero levels, so a position before it also stands after it */
static int closure(const fset *f, stset *s) {
  for (size_t k = 0; k < s->n; k++) {
    const fpath *fp = &f->paths[s->v[k].p];
    int i = s->v[k].i;
    if (i < fp->n && is_deep(fp->segs[i]) && stset_add(s, s->v[k].p, i + 1)) return -1;
  }
  return 0;
}

static int complete(const fset *f, const stset *s) {
  for (size_t k = 0; k < s->n; k++)
    if (s->v[k].i == f->paths[s->v[k].p].n) return 1;
  return 0;
}

/* '*' matches any run of characters; iterative with one backtrack point, linear-ish */
static int glob(const char *pat, const char *s) {
  const char *star = NULL, *ss = NULL;
  while (*s) {
    if (*pat == '*') {
      star = pat++;
      ss = s;
    } else if (*pat == *s) {
      pat++;
      s++;
    } else if (star) {
      pat = star + 1;
      s = ++ss;
    } else {
      return 0;
    }
  }
  while (*pat == '*') pat++;
  return *pat == 0;
}

static int advance(const fset *f, const stset *in, const char *key, stset *out) {
  out->n = 0;
  for (size_t k = 0; k < in->n; k++) {
    const fpath *fp = &f->paths[in->v[k].p];
    int i = in->v[k].i;
    if (i >= fp->n) continue;
    if (is_deep(fp->segs[i])) {
      if (stset_add(out, in->v[k].p, i)) return -1;
    } else if (glob(fp->segs[i], key)) {
      if (stset_add(out, in->v[k].p, i + 1)) return -1;
    }
  }
  return closure(f, out);
}

/* Returns a new value with only what matches, or NULL for no match. *oom on failure. */
static json_t *include(const fset *f, json_t *v, const stset *s, int *oom) {
  if (complete(f, s)) {
    json_t *c = json_deep_copy(v);
    if (!c) *oom = 1;
    return c;
  }
  if (json_is_object(v)) {
    json_t *out = json_object();
    stset ns = {0};
    const char *key;
    json_t *child;
    if (!out) goto fail;
    json_object_foreach(v, key, child) {
      if (advance(f, s, key, &ns)) goto fail;
      if (!ns.n) continue;
      json_t *r = include(f, child, &ns, oom);
      if (*oom) goto fail;
      if (r && json_object_set_new(out, key, r)) goto fail;
    }
    free(ns.v);
    if (json_object_size(out)) return out;
    json_decref(out);
    return NULL;
  fail:
    *oom = 1;
    free(ns.v);
    json_decref(out);
    return NULL;
  }
  if (json_is_array(v)) {
    /* arrays are transparent: the same positions apply to every element */
    json_t *out = json_array();
    if (!out) {
      *oom = 1;
      return NULL;
    }
    size_t idx;
    json_t *el;
    json_array_foreach(v, idx, el) {
      json_t *r = include(f, el, s, oom);
      if (*oom || (r && json_array_append_new(out, r))) {
        *oom = 1;
        json_decref(out);
        return NULL;
      }
    }
    if (json_array_size(out)) return out;
    json_decref(out);
  }
  return NULL;
}

static int exclude(const fset *f, json_t *v, const stset *s) {
  if (json_is_object(v)) {
    stset ns = {0};
    const char *key;
    json_t *child;
    void *tmp;
    json_object_foreach_safe(v, tmp, key, child) {
      if (advance(f, s, key, &ns)) {
        free(ns.v);
        return -1;
      }
      if (!ns.n) continue;
      if (complete(f, &ns)) {
        json_object_del(v, key);
      } else if (exclude(f, child, &ns)) {
        free(ns.v);
        return -1;
      }
    }
    free(ns.v);
  } else if (json_is_array(v)) {
    size_t idx;
    json_t *el;
    json_array_foreach(v, idx, el) if (exclude(f, el, s)) return -1;
  }
  return 0;
}

static void fset_free(fset *f) {
  for (int p = 0; p < f->n; p++)
    for (int i = 0; i < f->paths[p].n; i++) free(f->paths[p].segs[i]);
  free(f->paths);
  f->paths = NULL;
  f->n = 0;
}

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* Splits the filter into inclusion and exclusion path sets. -1 with a message in err
 * if unusable: too long, too many paths or parts, no path at all (an operator who
 * sends a filter wants less than everything, so it is never silently ignored). */
static int parse(const char *filter, fset *inc, fset *exc, char *err, size_t errlen) {
  size_t len = strlen(filter);
  if (len > MAX_FILTER_LEN)
    return bad(err, errlen, "filter_path is %zu characters long (at most %d)", len, MAX_FILTER_LEN);
  inc->paths = calloc(MAX_PATHS, sizeof *inc->paths);
  exc->paths = calloc(MAX_PATHS, sizeof *exc->paths);
  if (!inc->paths || !exc->paths) return bad(err, errlen, "out of memory");
  const char *p = filter;
  while (*p) {
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    const char *a = p, *b = end;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    fset *target = inc;
    if (a < b && *a == '-') {
      target = exc;
      a++;
    }
    if (a < b) {
      if (inc->n + exc->n == MAX_PATHS)
        return bad(err, errlen, "filter_path has more than %d paths", MAX_PATHS);
      fpath *fp = &target->paths[target->n++];
      const char *s = a;
      for (;;) {
        const char *dot = memchr(s, '.', (size_t)(b - s));
        const char *se = dot ? dot : b;
        if (fp->n == MAX_SEGS)
          return bad(err, errlen, "filter_path: \"%.*s%s\" has more than %d dotted parts", (int)(b - a > 80 ? 80 : b - a),
                     a, b - a > 80 ? "..." : "", MAX_SEGS);
        char *seg = strndup(s, (size_t)(se - s));
        if (!seg) return bad(err, errlen, "out of memory");
        fp->segs[fp->n++] = seg;
        if (!dot) break;
        s = dot + 1;
      }
    }
    p = *end ? end + 1 : end;
  }
  if (inc->n + exc->n == 0)
    return bad(err, errlen, "filter_path \"%.80s\" names no path (only commas, spaces or '-')", filter);
  return 0;
}

int cl_json_filter_check(const char *filter, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!filter || !*filter) return 0;
  fset inc = {0}, exc = {0};
  int rc = parse(filter, &inc, &exc, err, errlen);
  fset_free(&inc);
  fset_free(&exc);
  return rc;
}

static int initial(const fset *f, stset *s) {
  for (int p = 0; p < f->n; p++)
    if (stset_add(s, p, 0)) return -1;
  return closure(f, s);
}

json_t *cl_json_filter_path(json_t *doc, const char *filter) {
  if (!doc) return json_object();
  if (!filter || !*filter) return json_deep_copy(doc);
  fset inc = {0}, exc = {0};
  stset s = {0};
  json_t *out = NULL;
  int oom = 0;
  if (parse(filter, &inc, &exc, NULL, 0)) goto done;
  if (inc.n) {
    if (initial(&inc, &s)) goto done;
    out = include(&inc, doc, &s, &oom);
    if (oom) goto done;
    if (!out && !(out = json_object())) goto done;
  } else if (!(out = json_deep_copy(doc))) {
    goto done;
  }
  if (exc.n) {
    s.n = 0;
    if (initial(&exc, &s)) goto fail;
    if (complete(&exc, &s)) {
      json_decref(out);
      out = json_object();
    } else if (exclude(&exc, out, &s)) {
      goto fail;
    }
  }
  goto done;
fail:
  json_decref(out);
  out = NULL;
done:
  free(s.v);
  fset_free(&inc);
  fset_free(&exc);
  return out;
}
