/* Wire and persisted encodings of the election core. Everything decoded here
 * comes from outside (peers, disk) and is hostile until checked: every length
 * is bounded before use and nothing is allocated beyond what the checked
 * length allows. Little-endian, length-prefixed, canonical (the state hash is
 * taken over this encoding). */
#include "internal.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t wire_magic[3] = {'C', 'L', 'E'};
static const uint8_t persist_magic[8] = {'C', 'L', 'E', 'L', 'P', 'S', 'T', 0};

/* ---- writer ---- */

static void buf_reserve(cl_buf *b, size_t more) {
  if (b->oom) return;
  if (b->n + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + more) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return;
  }
  b->p = p;
  b->cap = cap;
}

void cl_buf_u8(cl_buf *b, uint8_t v) {
  buf_reserve(b, 1);
  if (!b->oom) b->p[b->n++] = v;
}

void cl_buf_u32(cl_buf *b, uint32_t v) {
  buf_reserve(b, 4);
  if (b->oom) return;
  for (int i = 0; i < 4; i++) b->p[b->n++] = (uint8_t)(v >> (8 * i));
}

void cl_buf_u64(cl_buf *b, uint64_t v) {
  buf_reserve(b, 8);
  if (b->oom) return;
  for (int i = 0; i < 8; i++) b->p[b->n++] = (uint8_t)(v >> (8 * i));
}

void cl_buf_bytes(cl_buf *b, const uint8_t *p, uint32_t n) {
  cl_buf_u32(b, n);
  buf_reserve(b, n);
  if (b->oom || n == 0) return;
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

void cl_buf_str(cl_buf *b, const char *s) {
  size_t n = strlen(s);
  buf_reserve(b, 2 + n);
  if (b->oom) return;
  b->p[b->n++] = (uint8_t)n;
  b->p[b->n++] = (uint8_t)(n >> 8);
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

void cl_buf_raw(cl_buf *b, const uint8_t *p, size_t n) {
  buf_reserve(b, n);
  if (b->oom || n == 0) return;
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

void cl_buf_free(cl_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- reader ---- */

typedef struct rd {
  const uint8_t *p;
  size_t n, off;
  char *err;
  size_t errlen;
  int bad;
  uint32_t max_count; /* nodes / ids a count may announce: 0 is CL_EL_MAX_NODES_HARD */
} rd;

static void rd_fail(rd *r, const char *fmt, ...) {
  if (r->bad) return;
  r->bad = 1;
  if (r->err && r->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
  }
}

static int rd_need(rd *r, size_t k, const char *what) {
  if (r->bad) return 0;
  if (r->n - r->off < k) {
    rd_fail(r, "truncated: %s needs %zu bytes at offset %zu, %zu left", what, k, r->off, r->n - r->off);
    return 0;
  }
  return 1;
}

static uint8_t rd_u8(rd *r, const char *what) {
  if (!rd_need(r, 1, what)) return 0;
  return r->p[r->off++];
}

static uint32_t rd_u32(rd *r, const char *what) {
  if (!rd_need(r, 4, what)) return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)r->p[r->off++] << (8 * i);
  return v;
}

static uint64_t rd_u64(rd *r, const char *what) {
  if (!rd_need(r, 8, what)) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[r->off++] << (8 * i);
  return v;
}

/* dst has room for max+1 bytes */
static void rd_str(rd *r, char *dst, size_t max, const char *what) {
  dst[0] = 0;
  if (!rd_need(r, 2, what)) return;
  size_t n = (size_t)r->p[r->off] | ((size_t)r->p[r->off + 1] << 8);
  r->off += 2;
  if (n > max) {
    rd_fail(r, "%s too long (%zu bytes, max %zu)", what, n, max);
    return;
  }
  if (!rd_need(r, n, what)) return;
  if (memchr(r->p + r->off, 0, n)) {
    rd_fail(r, "%s contains a NUL byte", what);
    return;
  }
  memcpy(dst, r->p + r->off, n);
  dst[n] = 0;
  r->off += n;
}

static const uint8_t *rd_blob(rd *r, uint32_t *len, uint32_t max, const char *what) {
  uint32_t n = rd_u32(r, what);
  *len = 0;
  if (r->bad) return NULL;
  if (n > max) {
    rd_fail(r, "%s too large (%u bytes, max %u)", what, n, max);
    return NULL;
  }
  if (!rd_need(r, n, what)) return NULL;
  const uint8_t *p = r->p + r->off;
  r->off += n;
  *len = n;
  return p;
}

/* ---- node records ---- */

/* a record's three strings, one after the other, shared by its copies */
struct cl_el_nstr {
  uint32_t refs;
  char s[];
};

void cl_el_node_release(cl_el_node *n) {
  if (n->str && --n->str->refs == 0) free(n->str);
  memset(n, 0, sizeof *n);
  n->name = n->address = n->tags = ""; /* read as empty if read at all */
}

int cl_el_node_set(cl_el_node *dst, const char *id, const char *name, const char *address, uint32_t flags,
                   const char *tags) {
  /* the arguments may point into dst itself: everything is copied before it is released */
  char idc[CL_EL_ID_MAX + 1];
  snprintf(idc, sizeof idc, "%s", id ? id : "");
  name = name ? name : "";
  address = address ? address : "";
  tags = tags ? tags : "";
  size_t ln = strlen(name), la = strlen(address), lt = strlen(tags);
  cl_el_nstr *b = NULL;
  if (ln + la + lt) { /* all empty: nothing to hold */
    b = malloc(sizeof *b + ln + la + lt + 3);
    if (!b) return -1;
    b->refs = 1;
    memcpy(b->s, name, ln + 1);
    memcpy(b->s + ln + 1, address, la + 1);
    memcpy(b->s + ln + la + 2, tags, lt + 1);
  }
  cl_el_node_release(dst);
  memcpy(dst->id, idc, sizeof dst->id);
  dst->flags = flags;
  dst->str = b;
  dst->name = b ? b->s : "";
  dst->address = b ? b->s + ln + 1 : "";
  dst->tags = b ? b->s + ln + la + 2 : "";
  return 0;
}

int cl_el_node_copy(cl_el_node *dst, const cl_el_node *src) {
  if (dst == src) return 0;
  if (!src->str) return cl_el_node_set(dst, src->id, src->name, src->address, src->flags, src->tags);
  src->str->refs++; /* first: dst may share the block */
  cl_el_node_release(dst);
  *dst = *src;
  return 0;
}

/* a decoded record: the strings read into the stack, then one block for them */
static void rd_node(rd *r, cl_el_node *n, const char *what, uint32_t i) {
  char id[CL_EL_ID_MAX + 1], name[CL_EL_NAME_MAX + 1], address[CL_EL_ADDR_MAX + 1], tags[CL_EL_TAGS_MAX + 1];
  rd_str(r, id, CL_EL_ID_MAX, "node id");
  rd_str(r, name, CL_EL_NAME_MAX, "node name");
  rd_str(r, address, CL_EL_ADDR_MAX, "node address");
  uint32_t flags = rd_u32(r, "node flags");
  rd_str(r, tags, CL_EL_TAGS_MAX, "node tags");
  if (r->bad) return;
  if (!id[0]) rd_fail(r, "%s: node %u has an empty id", what, i);
  else if (cl_el_node_set(n, id, name, address, flags, tags)) rd_fail(r, "out of memory for node %u", i);
}

/* ---- state ---- */

void cl_el_state_init(cl_el_state *st) { memset(st, 0, sizeof *st); }

void cl_el_state_truncate_nodes(cl_el_state *st, uint32_t n) {
  while (st->n_nodes > n) cl_el_node_release(&st->nodes[--st->n_nodes]);
}

void cl_el_state_clear(cl_el_state *st) {
  free(st->meta);
  cl_el_state_truncate_nodes(st, 0);
  free(st->nodes);
  cl_el_vconfig_free(&st->committed_config);
  cl_el_vconfig_free(&st->accepted_config);
  memset(st, 0, sizeof *st);
}

int cl_el_state_reserve_nodes(cl_el_state *st, uint32_t n) {
  if (n <= st->cap_nodes) return 0;
  uint32_t cap = st->cap_nodes ? st->cap_nodes : 4;
  while (cap < n) cap = cap > UINT32_MAX / 2 ? n : cap * 2;
  cl_el_node *v = realloc(st->nodes, (size_t)cap * sizeof *v);
  if (!v) return -1;
  memset(v + st->cap_nodes, 0, (size_t)(cap - st->cap_nodes) * sizeof *v); /* not records yet */
  st->nodes = v;
  st->cap_nodes = cap;
  return 0;
}

int cl_el_state_copy(cl_el_state *dst, const cl_el_state *src) {
  if (dst == src) return 0;
  uint8_t *meta = NULL;
  if (src->meta_len) {
    meta = malloc(src->meta_len);
    if (!meta) return -1;
    memcpy(meta, src->meta, src->meta_len);
  }
  if (cl_el_state_reserve_nodes(dst, src->n_nodes) || cl_el_vconfig_copy(&dst->committed_config, &src->committed_config) ||
      cl_el_vconfig_copy(&dst->accepted_config, &src->accepted_config)) {
    free(meta);
    return -1;
  }
  free(dst->meta);
  memcpy(dst->cluster_id, src->cluster_id, sizeof dst->cluster_id);
  dst->term = src->term;
  dst->version = src->version;
  memcpy(dst->master_id, src->master_id, sizeof dst->master_id);
  cl_el_state_truncate_nodes(dst, src->n_nodes); /* what is past src's count goes */
  for (uint32_t i = 0; i < src->n_nodes; i++) {
    /* records that own their strings: sharing them cannot fail */
    cl_el_node_copy(&dst->nodes[i], &src->nodes[i]);
    if (i >= dst->n_nodes) dst->n_nodes = i + 1;
  }
  dst->n_excl = src->n_excl;
  memcpy(dst->excl, src->excl, src->n_excl * sizeof src->excl[0]);
  dst->meta_version = src->meta_version;
  memcpy(dst->meta_origin, src->meta_origin, sizeof dst->meta_origin);
  dst->meta_req = src->meta_req;
  dst->meta = meta;
  dst->meta_len = src->meta_len;
  return 0;
}

static void vc_encode(const cl_el_vconfig *c, cl_buf *b) {
  cl_buf_u32(b, c->n);
  for (uint32_t i = 0; i < c->n; i++) cl_buf_str(b, c->ids[i]);
}

void cl_state_encode(const cl_el_state *st, cl_buf *b) {
  /* one reservation for the usual sizes, not a dozen doublings for hundreds of nodes */
  buf_reserve(b, 128 + (size_t)st->n_nodes * 96 + ((size_t)st->committed_config.n + st->accepted_config.n) * 40 +
                     (size_t)st->n_excl * 96 + st->meta_len);
  cl_buf_str(b, st->cluster_id);
  cl_buf_u64(b, st->term);
  cl_buf_u64(b, st->version);
  cl_buf_str(b, st->master_id);
  cl_buf_u32(b, st->n_nodes);
  for (uint32_t i = 0; i < st->n_nodes; i++) {
    const cl_el_node *n = &st->nodes[i];
    cl_buf_str(b, n->id);
    cl_buf_str(b, n->name);
    cl_buf_str(b, n->address);
    cl_buf_u32(b, n->flags);
    cl_buf_str(b, n->tags);
  }
  vc_encode(&st->committed_config, b);
  vc_encode(&st->accepted_config, b);
  cl_buf_u32(b, st->n_excl);
  for (uint32_t i = 0; i < st->n_excl; i++) {
    cl_buf_str(b, st->excl[i].id);
    cl_buf_str(b, st->excl[i].name);
  }
  cl_buf_u64(b, st->meta_version);
  cl_buf_str(b, st->meta_origin);
  cl_buf_u64(b, st->meta_req);
  cl_buf_bytes(b, st->meta, st->meta_len);
}

static void node_encode(const cl_el_node *n, cl_buf *b) {
  cl_buf_str(b, n->id);
  cl_buf_str(b, n->name);
  cl_buf_str(b, n->address);
  cl_buf_u32(b, n->flags);
  cl_buf_str(b, n->tags);
}

static int node_same(const cl_el_node *a, const cl_el_node *b) {
  return a->flags == b->flags &&
         (a->str == b->str || (!strcmp(a->name, b->name) && !strcmp(a->address, b->address) && !strcmp(a->tags, b->tags)));
}

int cl_node_lists_eq(const cl_el_node *a, const cl_el_node *b, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (strcmp(a[i].id, b[i].id) || !node_same(&a[i], &b[i])) return 0;
  return 1;
}

static int meta_same(const cl_el_state *a, const cl_el_state *b) {
  return a->meta_version == b->meta_version && a->meta_req == b->meta_req && !strcmp(a->meta_origin, b->meta_origin) &&
         a->meta_len == b->meta_len && (a->meta_len == 0 || !memcmp(a->meta, b->meta, a->meta_len));
}

/* what: 0 added (in next only), 1 changed (in both, different), 2 removed (in base only);
 * emit 0 counts, 1 writes: one merge walk of the two sorted node lists */
static uint32_t diff_walk(const cl_el_state *base, const cl_el_state *next, int what, int emit, cl_buf *b) {
  uint32_t i = 0, j = 0, k = 0;
  while (i < base->n_nodes || j < next->n_nodes) {
    int c = i == base->n_nodes ? 1 : j == next->n_nodes ? -1 : strcmp(base->nodes[i].id, next->nodes[j].id);
    if (c < 0) { /* removed */
      if (what == 2) {
        k++;
        if (emit) cl_buf_str(b, base->nodes[i].id);
      }
      i++;
    } else if (c > 0) { /* added */
      if (what == 0) {
        k++;
        if (emit) node_encode(&next->nodes[j], b);
      }
      j++;
    } else {
      if (what == 1 && !node_same(&base->nodes[i], &next->nodes[j])) {
        k++;
        if (emit) node_encode(&next->nodes[j], b);
      }
      i++, j++;
    }
  }
  return k;
}

void cl_diff_encode(const cl_el_state *base, const cl_el_state *next, cl_buf *b) {
  cl_buf_str(b, next->cluster_id);
  cl_buf_u64(b, next->term);
  cl_buf_u64(b, next->version);
  cl_buf_str(b, next->master_id);
  cl_buf_u64(b, base->term);
  cl_buf_u64(b, base->version);
  for (int what = 0; what < 3; what++) {
    cl_buf_u32(b, diff_walk(base, next, what, 0, NULL));
    diff_walk(base, next, what, 1, b);
  }
  vc_encode(&next->committed_config, b);
  vc_encode(&next->accepted_config, b);
  cl_buf_u32(b, next->n_excl);
  for (uint32_t i = 0; i < next->n_excl; i++) {
    cl_buf_str(b, next->excl[i].id);
    cl_buf_str(b, next->excl[i].name);
  }
  int changed = !meta_same(base, next);
  cl_buf_u8(b, (uint8_t)changed);
  if (changed) {
    cl_buf_u64(b, next->meta_version);
    cl_buf_str(b, next->meta_origin);
    cl_buf_u64(b, next->meta_req);
    cl_buf_bytes(b, next->meta, next->meta_len);
  }
}

/* A count read from outside: bounded by the hard limit and by what the bytes left can
 * hold (each entry takes at least min_bytes), before anything is allocated for it. */
static uint32_t rd_count(rd *r, uint32_t min_bytes, const char *what) {
  uint32_t n = rd_u32(r, what);
  if (r->bad) return 0;
  if (n > CL_EL_MAX_NODES_HARD) {
    rd_fail(r, "%s %u is above the limit of %d", what, n, CL_EL_MAX_NODES_HARD);
    return 0;
  }
  if (r->max_count && n > r->max_count) {
    rd_fail(r, "%s %u is above this node's election.max_nodes (%u)", what, n, r->max_count);
    return 0;
  }
  if ((uint64_t)n * min_bytes > r->n - r->off) {
    rd_fail(r, "truncated: %s %u needs at least %llu bytes, %zu left", what, n,
            (unsigned long long)n * min_bytes, r->n - r->off);
    return 0;
  }
  return n;
}

static void vc_decode(rd *r, cl_el_vconfig *c, const char *what) {
  c->n = 0;
  uint32_t n = rd_count(r, 3, what); /* an id: 2-byte length, at least 1 byte */
  if (r->bad) return;
  if (cl_vc_reserve(c, n)) {
    rd_fail(r, "out of memory for %s of %u ids", what, n);
    return;
  }
  for (uint32_t i = 0; i < n && !r->bad; i++) {
    rd_str(r, c->ids[i], CL_EL_ID_MAX, what);
    if (r->bad) break;
    if (!c->ids[i][0]) rd_fail(r, "%s has an empty id", what);
    /* kept sorted and unique: the quorum arithmetic relies on no duplicates */
    else if (i > 0 && strcmp(c->ids[i - 1], c->ids[i]) >= 0) rd_fail(r, "%s ids not sorted/unique", what);
    c->n = i + 1;
  }
  if (r->bad) c->n = 0;
}

/* Decodes into st (which must be initialised); on failure st is left valid
 * (possibly partially filled, meta NULL). Capacity already held is reused. */
static void state_decode(rd *r, cl_el_state *st) {
  free(st->meta);
  st->meta = NULL;
  st->meta_len = 0;
  cl_el_state_truncate_nodes(st, 0);
  st->n_excl = 0;
  st->committed_config.n = st->accepted_config.n = 0;
  rd_str(r, st->cluster_id, CL_EL_CLUSTER_ID_MAX, "cluster id");
  st->term = rd_u64(r, "state term");
  st->version = rd_u64(r, "state version");
  rd_str(r, st->master_id, CL_EL_ID_MAX, "master id");
  /* a node: id (2+1), name, address (2 each), flags (4), tags (2) */
  uint32_t n_nodes = rd_count(r, 13, "node count");
  if (!r->bad && cl_el_state_reserve_nodes(st, n_nodes)) rd_fail(r, "out of memory for %u nodes", n_nodes);
  for (uint32_t i = 0; i < n_nodes && !r->bad; i++) {
    cl_el_node *n = &st->nodes[i];
    rd_node(r, n, "state", i);
    if (r->bad) break;
    st->n_nodes = i + 1; /* a record now (the stale ones from i on were released above) */
    /* sorted by id (the master sorts them): duplicates are found in one pass */
    if (i > 0 && strcmp(st->nodes[i - 1].id, n->id) >= 0) rd_fail(r, "node ids in state not sorted/unique");
  }
  if (r->bad) cl_el_state_truncate_nodes(st, 0);
  vc_decode(r, &st->committed_config, "committed config");
  vc_decode(r, &st->accepted_config, "accepted config");
  st->n_excl = rd_u32(r, "exclusion count");
  if (!r->bad && st->n_excl > CL_EL_MAX_EXCL) rd_fail(r, "state has %u exclusions (max %d)", st->n_excl, CL_EL_MAX_EXCL);
  if (r->bad) st->n_excl = 0;
  for (uint32_t i = 0; i < st->n_excl && !r->bad; i++) {
    rd_str(r, st->excl[i].id, CL_EL_ID_MAX, "exclusion id");
    rd_str(r, st->excl[i].name, CL_EL_NAME_MAX, "exclusion name");
  }
  if (r->bad) st->n_excl = 0;
  st->meta_version = rd_u64(r, "metadata version");
  rd_str(r, st->meta_origin, CL_EL_ID_MAX, "metadata origin");
  st->meta_req = rd_u64(r, "metadata request");
  uint32_t mlen = 0;
  const uint8_t *m = rd_blob(r, &mlen, CL_EL_META_HARD_MAX, "metadata");
  if (!r->bad && st->meta_version > st->version) rd_fail(r, "metadata version %llu after state version %llu",
                                                          (unsigned long long)st->meta_version,
                                                          (unsigned long long)st->version);
  if (r->bad || mlen == 0) return;
  st->meta = malloc(mlen);
  if (!st->meta) {
    rd_fail(r, "out of memory for %u bytes of metadata", mlen);
    return;
  }
  memcpy(st->meta, m, mlen);
  st->meta_len = mlen;
}

/* a decoded diff owns its lists (diff.c applies it) */
void cl_diff_init(cl_diff *d) { memset(d, 0, sizeof *d); }

void cl_diff_clear(cl_diff *d) {
  /* the lists' entries are records or zeroed up to their capacity (nodes_decode) */
  for (uint32_t i = 0; i < d->cap_add; i++) cl_el_node_release(&d->add[i]);
  for (uint32_t i = 0; i < d->cap_chg; i++) cl_el_node_release(&d->chg[i]);
  free(d->add);
  free(d->chg);
  free(d->del);
  cl_el_vconfig_free(&d->committed_config);
  cl_el_vconfig_free(&d->accepted_config);
  memset(d, 0, sizeof *d);
}

/* a list of n nodes, sorted by id and unique, into *v (grown, capacity in *cap) */
static uint32_t nodes_decode(rd *r, cl_el_node **v, uint32_t *cap, const char *what) {
  uint32_t n = rd_count(r, 13, what);
  if (r->bad) return 0;
  /* the records of the last message go: every entry up to the capacity is a record or
   * zeroed, so the lists are released whole by cl_diff_clear */
  for (uint32_t i = 0; i < *cap; i++) cl_el_node_release(&(*v)[i]);
  if (n > *cap) {
    cl_el_node *nv = realloc(*v, (size_t)n * sizeof *nv);
    if (!nv) {
      rd_fail(r, "out of memory for %u nodes", n);
      return 0;
    }
    memset(nv + *cap, 0, (size_t)(n - *cap) * sizeof *nv);
    *v = nv;
    *cap = n;
  }
  for (uint32_t i = 0; i < n && !r->bad; i++) {
    cl_el_node *nd = &(*v)[i];
    rd_node(r, nd, what, i);
    if (r->bad) break;
    if (i > 0 && strcmp((*v)[i - 1].id, nd->id) >= 0) rd_fail(r, "%s: node ids not sorted/unique", what);
  }
  return r->bad ? 0 : n;
}

static void diff_decode(rd *r, cl_diff *d) {
  d->n_add = d->n_chg = d->n_del = d->n_excl = 0;
  d->committed_config.n = d->accepted_config.n = 0;
  d->meta = NULL;
  d->meta_len = 0;
  d->meta_changed = 0;
  d->meta_version = d->meta_req = 0;
  d->meta_origin[0] = 0;
  rd_str(r, d->cluster_id, CL_EL_CLUSTER_ID_MAX, "cluster id");
  d->term = rd_u64(r, "state term");
  d->version = rd_u64(r, "state version");
  rd_str(r, d->master_id, CL_EL_ID_MAX, "master id");
  d->base_term = rd_u64(r, "base term");
  d->base_version = rd_u64(r, "base version");
  d->n_add = nodes_decode(r, &d->add, &d->cap_add, "nodes added");
  d->n_chg = nodes_decode(r, &d->chg, &d->cap_chg, "nodes changed");
  uint32_t n_del = rd_count(r, 3, "nodes removed");
  if (!r->bad && n_del > d->cap_del) {
    cl_el_id *v = realloc(d->del, (size_t)n_del * sizeof *v);
    if (!v) rd_fail(r, "out of memory for %u ids", n_del);
    else d->del = v, d->cap_del = n_del;
  }
  for (uint32_t i = 0; i < n_del && !r->bad; i++) {
    rd_str(r, d->del[i], CL_EL_ID_MAX, "removed node id");
    if (r->bad) break;
    if (!d->del[i][0]) rd_fail(r, "nodes removed: an empty id");
    else if (i > 0 && strcmp(d->del[i - 1], d->del[i]) >= 0) rd_fail(r, "nodes removed: ids not sorted/unique");
    d->n_del = i + 1;
  }
  vc_decode(r, &d->committed_config, "committed config");
  vc_decode(r, &d->accepted_config, "accepted config");
  uint32_t n_excl = rd_u32(r, "exclusion count");
  if (!r->bad && n_excl > CL_EL_MAX_EXCL) rd_fail(r, "diff has %u exclusions (max %d)", n_excl, CL_EL_MAX_EXCL);
  for (uint32_t i = 0; i < n_excl && !r->bad; i++) {
    rd_str(r, d->excl[i].id, CL_EL_ID_MAX, "exclusion id");
    rd_str(r, d->excl[i].name, CL_EL_NAME_MAX, "exclusion name");
    if (!r->bad) d->n_excl = i + 1;
  }
  d->meta_changed = rd_u8(r, "metadata changed");
  if (!r->bad && d->meta_changed > 1) rd_fail(r, "bad metadata-changed flag %u", d->meta_changed);
  if (!r->bad && d->meta_changed) {
    d->meta_version = rd_u64(r, "metadata version");
    rd_str(r, d->meta_origin, CL_EL_ID_MAX, "metadata origin");
    d->meta_req = rd_u64(r, "metadata request");
    d->meta = rd_blob(r, &d->meta_len, CL_EL_META_HARD_MAX, "metadata");
    if (!r->bad && d->meta_version > d->version)
      rd_fail(r, "metadata version %llu after state version %llu", (unsigned long long)d->meta_version,
              (unsigned long long)d->version);
  }
  if (r->bad) {
    d->n_add = d->n_chg = d->n_del = d->n_excl = 0;
    d->committed_config.n = d->accepted_config.n = 0;
    d->meta = NULL;
    d->meta_len = 0;
  }
}

void cl_el_state_hash(const cl_el_state *st, uint8_t out[32]) {
  cl_buf b = {0};
  cl_state_encode(st, &b);
  crypto_generichash(out, 32, b.p, b.n, NULL, 0);
  cl_buf_free(&b);
}

/* ---- messages ---- */

void cl_msg_encode(const cl_msg *m, cl_buf *b) {
  cl_buf_u8(b, wire_magic[0]);
  cl_buf_u8(b, wire_magic[1]);
  cl_buf_u8(b, wire_magic[2]);
  cl_buf_u8(b, CL_WIRE_VERSION);
  cl_buf_u8(b, m->type);
  cl_buf_str(b, m->cluster_id);
  switch (m->type) {
  case CL_M_PREVOTE_REQ:
    cl_buf_u64(b, m->term);
    cl_buf_u64(b, m->lat);
    cl_buf_u64(b, m->lav);
    break;
  case CL_M_JOIN: /* flag: the term is durable on the voter (RULE E15) */
    cl_buf_u64(b, m->term);
    cl_buf_u64(b, m->lat);
    cl_buf_u64(b, m->lav);
    cl_buf_u8(b, m->flag);
    break;
  case CL_M_PREVOTE_RESP:
  case CL_M_HB_RESP:
    cl_buf_u64(b, m->term);
    cl_buf_u64(b, m->lat);
    cl_buf_u64(b, m->lav);
    cl_buf_u8(b, m->flag);
    break;
  case CL_M_START_JOIN: /* flag: the receiver's vote counts, so it must be durable (RULE E15) */
    cl_buf_u64(b, m->term);
    cl_buf_u8(b, m->flag);
    break;
  case CL_M_LEADER_GONE:
    cl_buf_u64(b, m->term);
    break;
  case CL_M_PUBLISH:
    cl_state_encode(m->state, b);
    break;
  case CL_M_PUBLISH_DIFF:
    cl_buf_raw(b, m->blob, m->blob_len);
    break;
  case CL_M_PUBLISH_RESP:
    cl_buf_u64(b, m->term);
    cl_buf_u64(b, m->version);
    cl_buf_u8(b, m->flag);
    break;
  case CL_M_COMMIT:
    cl_buf_u64(b, m->term);
    cl_buf_u64(b, m->version);
    break;
  case CL_M_HB:
    cl_buf_u64(b, m->term);
    cl_buf_u64(b, m->version);
    break;
  case CL_M_FWD_REQ:
    cl_buf_u64(b, m->req_id);
    cl_buf_u8(b, m->req_kind);
    cl_buf_u64(b, m->base_version);
    cl_buf_u8(b, m->flag);
    cl_buf_bytes(b, m->blob, m->blob_len);
    cl_buf_u32(b, m->n_names);
    for (uint32_t i = 0; i < m->n_names; i++) cl_buf_str(b, m->names[i]);
    break;
  case CL_M_FWD_RESP:
    cl_buf_u64(b, m->req_id);
    cl_buf_u64(b, m->version);
    cl_buf_str(b, m->code);
    cl_buf_str(b, m->text);
    break;
  default:
    b->oom = 1; /* programming error: refuse to emit an unknown type */
  }
}

int cl_msg_decode(const uint8_t *buf, size_t len, cl_msg *m, cl_el_state *st, char *err, size_t errlen) {
  return cl_msg_decode_max(buf, len, m, st, 0, err, errlen);
}

int cl_msg_decode_max(const uint8_t *buf, size_t len, cl_msg *m, cl_el_state *st, uint32_t max_nodes, char *err,
                      size_t errlen) {
  return cl_msg_decode_into(buf, len, m, st, NULL, max_nodes, err, errlen);
}

int cl_msg_decode_into(const uint8_t *buf, size_t len, cl_msg *m, cl_el_state *st, cl_diff *diff, uint32_t max_nodes,
                       char *err, size_t errlen) {
  rd r = {buf, len, 0, err, errlen, 0, max_nodes};
  memset(m, 0, offsetof(cl_msg, names));
  m->n_names = 0;
  m->code[0] = m->text[0] = 0;
  m->state = NULL;
  m->diff = NULL;
  if (len < 5) {
    rd_fail(&r, "message too short (%zu bytes)", len);
    return -1;
  }
  if (memcmp(buf, wire_magic, 3) != 0) {
    rd_fail(&r, "not an election message (bad magic)");
    return -1;
  }
  if (buf[3] != CL_WIRE_VERSION) {
    rd_fail(&r, "unsupported election wire version %u (this node speaks %u)", buf[3], CL_WIRE_VERSION);
    return -1;
  }
  m->type = buf[4];
  if (m->type == 0 || m->type >= CL_M_MAX_) {
    rd_fail(&r, "unknown election message type %u", m->type);
    return -1;
  }
  r.off = 5;
  rd_str(&r, m->cluster_id, CL_EL_CLUSTER_ID_MAX, "sender's cluster id");
  cl_el_state scratch;
  switch (m->type) {
  case CL_M_PREVOTE_REQ:
    m->term = rd_u64(&r, "term");
    m->lat = rd_u64(&r, "last accepted term");
    m->lav = rd_u64(&r, "last accepted version");
    break;
  case CL_M_JOIN:
    m->term = rd_u64(&r, "term");
    m->lat = rd_u64(&r, "last accepted term");
    m->lav = rd_u64(&r, "last accepted version");
    m->flag = rd_u8(&r, "durable");
    if (!r.bad && m->flag > 1) rd_fail(&r, "bad join durability %u", m->flag);
    break;
  case CL_M_PREVOTE_RESP:
  case CL_M_HB_RESP:
    m->term = rd_u64(&r, "term");
    m->lat = rd_u64(&r, "last accepted term");
    m->lav = rd_u64(&r, "last accepted version");
    m->flag = rd_u8(&r, "status");
    break;
  case CL_M_START_JOIN:
    m->term = rd_u64(&r, "term");
    m->flag = rd_u8(&r, "durable");
    if (!r.bad && m->flag > 1) rd_fail(&r, "bad start-join durability %u", m->flag);
    break;
  case CL_M_LEADER_GONE:
    m->term = rd_u64(&r, "term");
    break;
  case CL_M_PUBLISH:
    if (st) {
      state_decode(&r, st);
      m->state = st;
    } else {
      /* validate only: decode into a scratch state and drop it */
      cl_el_state_init(&scratch);
      state_decode(&r, &scratch);
      cl_el_state_clear(&scratch);
    }
    break;
  case CL_M_PUBLISH_DIFF:
    if (diff) {
      diff_decode(&r, diff);
      m->diff = diff;
    } else {
      cl_diff scratch_diff;
      cl_diff_init(&scratch_diff);
      diff_decode(&r, &scratch_diff);
      cl_diff_clear(&scratch_diff);
    }
    break;
  case CL_M_PUBLISH_RESP:
    m->term = rd_u64(&r, "term");
    m->version = rd_u64(&r, "version");
    m->flag = rd_u8(&r, "ok");
    if (!r.bad && m->flag > CL_PUB_NEED_FULL) rd_fail(&r, "bad publication answer %u", m->flag);
    break;
  case CL_M_COMMIT:
    m->term = rd_u64(&r, "term");
    m->version = rd_u64(&r, "version");
    break;
  case CL_M_HB:
    m->term = rd_u64(&r, "term");
    m->version = rd_u64(&r, "committed version");
    break;
  case CL_M_FWD_REQ:
    m->req_id = rd_u64(&r, "request id");
    m->req_kind = rd_u8(&r, "request kind");
    m->base_version = rd_u64(&r, "base version");
    m->flag = rd_u8(&r, "wait flag");
    m->blob = rd_blob(&r, &m->blob_len, CL_EL_META_HARD_MAX, "request metadata");
    m->n_names = rd_u32(&r, "name count");
    if (!r.bad && m->n_names > CL_EL_MAX_EXCL) rd_fail(&r, "too many names (%u, max %d)", m->n_names, CL_EL_MAX_EXCL);
    if (r.bad) m->n_names = 0;
    for (uint32_t i = 0; i < m->n_names && !r.bad; i++) rd_str(&r, m->names[i], CL_EL_NAME_MAX, "name");
    if (!r.bad && (m->req_kind < CL_REQ_UPDATE || m->req_kind > CL_REQ_CLEAR))
      rd_fail(&r, "unknown request kind %u", m->req_kind);
    break;
  case CL_M_FWD_RESP:
    m->req_id = rd_u64(&r, "request id");
    m->version = rd_u64(&r, "version");
    rd_str(&r, m->code, sizeof m->code - 1, "status code");
    rd_str(&r, m->text, sizeof m->text - 1, "status message");
    break;
  default:
    rd_fail(&r, "unknown election message type %u", m->type);
    return -1;
  }
  if (!r.bad && r.off != len) rd_fail(&r, "%zu trailing bytes after message type %u", len - r.off, m->type);
  if (r.bad && st && m->type == CL_M_PUBLISH) cl_el_state_clear(st);
  return r.bad ? -1 : 0;
}

int cl_el_msg_validate(const uint8_t *buf, size_t len, char *err, size_t errlen) {
  cl_msg *m = malloc(sizeof *m);
  if (!m) return -1;
  int rc = cl_msg_decode(buf, len, m, NULL, err, errlen);
  free(m);
  return rc;
}

int cl_el_msg_type(const uint8_t *buf, size_t len) {
  if (len < 5 || memcmp(buf, wire_magic, 3) != 0 || buf[3] != CL_WIRE_VERSION) return -1;
  return buf[4];
}

/* ---- persisted file ---- */

int cl_el_persist_encode(uint64_t term, const cl_el_state *st, int committed, uint8_t **out, size_t *outlen) {
  return cl_persist_encode(term, st, committed ? CL_PERSIST_COMMITTED | CL_PERSIST_CID_COMMITTED : 0, out, outlen);
}

int cl_el_persist_decode(const uint8_t *buf, size_t len, uint64_t *term, cl_el_state *st, int *committed,
                         char *err, size_t errlen) {
  int flags = 0;
  int rc = cl_persist_decode(buf, len, term, st, &flags, err, errlen);
  *committed = (flags & CL_PERSIST_COMMITTED) != 0;
  return rc;
}

int cl_persist_encode(uint64_t term, const cl_el_state *st, int flags, uint8_t **out, size_t *outlen) {
  cl_buf b = {0};
  for (int i = 0; i < 8; i++) cl_buf_u8(&b, persist_magic[i]);
  cl_buf_u32(&b, CL_PERSIST_VERSION);
  cl_buf_u64(&b, term);
  cl_buf_u8(&b, (uint8_t)(flags & (CL_PERSIST_COMMITTED | CL_PERSIST_CID_COMMITTED)));
  cl_state_encode(st, &b);
  uint8_t h[32];
  if (!b.oom) crypto_generichash(h, 32, b.p, b.n, NULL, 0);
  for (int i = 0; i < 32; i++) cl_buf_u8(&b, h[i]);
  if (b.oom) {
    cl_buf_free(&b);
    return -1;
  }
  *out = b.p;
  *outlen = b.n;
  return 0;
}

int cl_persist_decode(const uint8_t *buf, size_t len, uint64_t *term, cl_el_state *st, int *flags, char *err,
                      size_t errlen) {
  rd r = {buf, len, 0, err, errlen, 0, 0};
  if (len < 8 + 4 + 8 + 1 + 32) {
    rd_fail(&r, "state file truncated (%zu bytes)", len);
    return -1;
  }
  if (memcmp(buf, persist_magic, 8) != 0) {
    rd_fail(&r, "not a clusterlua election state file (bad magic)");
    return -1;
  }
  r.off = 8;
  uint32_t ver = rd_u32(&r, "format version");
  if (ver != CL_PERSIST_VERSION) {
    rd_fail(&r, "unsupported state file format version %u (this build reads %u)", ver, CL_PERSIST_VERSION);
    return -1;
  }
  uint8_t h[32];
  crypto_generichash(h, 32, buf, len - 32, NULL, 0);
  if (sodium_memcmp(h, buf + len - 32, 32) != 0) {
    rd_fail(&r, "state file checksum mismatch (torn or corrupt write)");
    return -1;
  }
  r.n = len - 32;
  *term = rd_u64(&r, "current term");
  uint8_t c = rd_u8(&r, "flags");
  if (!r.bad && c > (CL_PERSIST_COMMITTED | CL_PERSIST_CID_COMMITTED)) rd_fail(&r, "bad flags byte %u", c);
  *flags = c;
  state_decode(&r, st);
  if (!r.bad && r.off != r.n) rd_fail(&r, "%zu trailing bytes in state file", r.n - r.off);
  if (!r.bad && st->term > *term) rd_fail(&r, "accepted state term %llu above current term %llu",
                                          (unsigned long long)st->term, (unsigned long long)*term);
  if (r.bad) {
    cl_el_state_clear(st);
    return -1;
  }
  return 0;
}
