/* Voting-configuration arithmetic: quorums, the reconfigurator, the checks of
 * initial_master_nodes and of exclusion lists (names match by core/name.h's rule). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLACEHOLDER "{bootstrap-placeholder}-"

uint32_t cl_el_quorum(uint32_t n) { return n / 2 + 1; }

int cl_vc_has(const cl_el_vconfig *c, const char *id) {
  for (uint32_t i = 0; i < c->n; i++)
    if (!strcmp(c->ids[i], id)) return 1;
  return 0;
}

int cl_vc_reserve(cl_el_vconfig *c, uint32_t n) {
  if (n <= c->cap) return 0;
  uint32_t cap = c->cap ? c->cap : 4;
  while (cap < n) cap *= 2;
  cl_el_id *ids = realloc(c->ids, (size_t)cap * sizeof *ids);
  if (!ids) return -1;
  c->ids = ids;
  c->cap = cap;
  return 0;
}

int cl_el_vconfig_copy(cl_el_vconfig *dst, const cl_el_vconfig *src) {
  if (dst == src) return 0;
  if (cl_vc_reserve(dst, src->n)) return -1;
  if (src->n) memcpy(dst->ids, src->ids, (size_t)src->n * sizeof src->ids[0]);
  dst->n = src->n;
  return 0;
}

void cl_el_vconfig_free(cl_el_vconfig *c) {
  free(c->ids);
  memset(c, 0, sizeof *c);
}

/* sorted insert keeps the encoding canonical */
int cl_vc_add(cl_el_vconfig *c, const char *id) {
  if (cl_vc_has(c, id)) return 0;
  if (cl_vc_reserve(c, c->n + 1)) return -1;
  uint32_t i = c->n;
  while (i > 0 && strcmp(c->ids[i - 1], id) > 0) {
    memcpy(c->ids[i], c->ids[i - 1], sizeof c->ids[0]);
    i--;
  }
  snprintf(c->ids[i], sizeof c->ids[i], "%s", id);
  c->n++;
  return 0;
}

int cl_vc_eq(const cl_el_vconfig *a, const cl_el_vconfig *b) {
  if (a->n != b->n) return 0;
  for (uint32_t i = 0; i < a->n; i++)
    if (strcmp(a->ids[i], b->ids[i])) return 0;
  return 1;
}

int cl_vc_is_placeholder(const char *id) { return !strncmp(id, PLACEHOLDER, sizeof PLACEHOLDER - 1); }

int cl_vc_quorum(const cl_el_vconfig *c, int (*has)(void *, const char *), void *ctx) {
  /* an empty configuration has no quorum: an unbootstrapped node can't win */
  if (c->n == 0) return 0;
  uint32_t k = 0;
  for (uint32_t i = 0; i < c->n; i++)
    if (!cl_vc_is_placeholder(c->ids[i]) && has(ctx, c->ids[i])) k++;
#ifdef CL_MUTANT_HALF_QUORUM
  return 2 * k >= c->n; /* mutant: ties count as a quorum */
#else
  return k >= cl_el_quorum(c->n);
#endif
}

const cl_el_node *cl_state_node(const cl_el_state *st, const char *id) {
  for (uint32_t i = 0; i < st->n_nodes; i++)
    if (!strcmp(st->nodes[i].id, id)) return &st->nodes[i];
  return NULL;
}

int cl_el_split_exclusions(char *csv, const char *names[CL_EL_MAX_EXCL], char *err, size_t errlen) {
  /* count first, so "too many" says how many were given */
  size_t n = 1;
  for (const char *p = csv; *p; p++) n += *p == ',';
  if (n > CL_EL_MAX_EXCL) {
    snprintf(err, errlen, "too many node names: %zu given, at most %d per request", n, CL_EL_MAX_EXCL);
    return -1;
  }
  char *p = csv;
  for (size_t i = 0; i < n; i++) {
    char *comma = strchr(p, ',');
    if (comma) *comma = 0;
    size_t len = strlen(p);
    if (len == 0) {
      snprintf(err, errlen, "node name %zu of %zu is empty", i + 1, n);
      return -1;
    }
    if (len > CL_EL_NAME_MAX) {
      snprintf(err, errlen, "node name %zu of %zu is longer than %d characters", i + 1, n, CL_EL_NAME_MAX);
      return -1;
    }
    names[i] = p;
    p = comma ? comma + 1 : p + len;
  }
  return (int)n;
}

int cl_check_initial_list(const char *const *list, size_t n, char *err, size_t errlen) {
  if (n > CL_EL_MAX_INITIAL) {
    snprintf(err, errlen, "initial_master_nodes has %zu entries (max %d)", n, CL_EL_MAX_INITIAL);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (!list[i] || !list[i][0] || strlen(list[i]) > CL_EL_NAME_MAX) {
      snprintf(err, errlen, "initial_master_nodes entry %zu is empty or too long", i + 1);
      return -1;
    }
    for (size_t j = 0; j < i; j++) {
      /* two entries that can name the same node: equal, or one is the other's short name */
      int dup = cl_node_name_matches(list[i], list[j]) || cl_node_name_matches(list[j], list[i]);
      if (dup) {
        snprintf(err, errlen, "initial_master_nodes: duplicate entry \"%s\" (also \"%s\")", list[i], list[j]);
        return -1;
      }
    }
  }
  return 0;
}

static int in_excl(const cl_el_excl *excl, size_t n, const char *id) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(excl[i].id, id)) return 1;
  return 0;
}

static int cmp_key(const void *key, const void *elem) { return strcmp(key, *(const char *const *)elem); }

/* live lists are sorted by the caller: a search, not a scan (hundreds of nodes) */
static int in_list(const char *const *l, size_t n, const char *id) {
  return n && bsearch(id, l, n, sizeof l[0], cmp_key) != NULL;
}

static int in_list_ctx(void *ctx, const char *id) {
  const char *const *l = ((const char *const **)ctx)[0];
  size_t n = (size_t)(uintptr_t)((const char *const **)ctx)[1];
  return in_list(l, n, id);
}

/* Elasticsearch's Reconfigurator, with a cap: the target size is the largest odd number
 * of live non-excluded nodes, but never above max_voting (RULE E12: with hundreds of
 * master-eligible nodes only a few vote, so elections and commits stay quick) and never
 * below 3 once the configuration has more than one member (so losing one node of 3 keeps
 * a quorum of 2 over the same 3 ids); members are preferred in the order
 * live-and-in-config (master first), live-not-in-config, in-config-not-live, so a capped
 * configuration keeps its members and replaces only the ones that are gone. Only a
 * configuration whose quorum is live is returned; otherwise the current one is kept.
 * max_voting must be odd and >= 3 (cl_el_new checks it); 0 means no cap. Returns 0, or
 * -1 when out of memory (out is then the current configuration or empty). */
int cl_reconfigure(const cl_el_vconfig *cur, const char *const *live, size_t n_live, const cl_el_excl *excl,
                   size_t n_excl, const char *master_id, uint32_t max_voting, cl_el_vconfig *out) {
  const char **order = malloc((2 * (size_t)cur->n + n_live + 1) * sizeof *order);
  if (!order) return -1;
  size_t no = 0;
  size_t live_ok = 0;
  for (size_t i = 0; i < n_live; i++)
    if (!in_excl(excl, n_excl, live[i])) live_ok++;
  /* 1: live, in config, not excluded; master first */
  if (master_id && cl_vc_has(cur, master_id) && in_list(live, n_live, master_id) && !in_excl(excl, n_excl, master_id))
    order[no++] = master_id;
  for (uint32_t i = 0; i < cur->n; i++) {
    const char *id = cur->ids[i];
    if (master_id && !strcmp(id, master_id)) continue;
    if (in_list(live, n_live, id) && !in_excl(excl, n_excl, id)) order[no++] = id;
  }
  /* 2: live, not in config, not excluded (live is sorted by the caller) */
  if (master_id && !cl_vc_has(cur, master_id) && in_list(live, n_live, master_id) && !in_excl(excl, n_excl, master_id))
    order[no++] = master_id;
  for (size_t i = 0; i < n_live; i++) {
    if (master_id && !strcmp(live[i], master_id)) continue;
    if (!cl_vc_has(cur, live[i]) && !in_excl(excl, n_excl, live[i])) order[no++] = live[i];
  }
  /* 3: in config, not live, not excluded (placeholders included: they keep
   * the bootstrap quorum honest until real nodes replace them) */
  for (uint32_t i = 0; i < cur->n; i++) {
    const char *id = cur->ids[i];
    if (!in_list(live, n_live, id) && !in_excl(excl, n_excl, id)) order[no++] = id;
  }
  /* as Elasticsearch: only a configuration of one may stay that small; one of two
   * (3 nodes with one excluded) must not shrink to one on the next pass */
  size_t min_size = cur->n <= 1 ? 1 : 3;
  size_t odd = live_ok == 0 ? 0 : (live_ok % 2 ? live_ok : live_ok - 1);
#ifdef CL_MUTANT_NO_VOTING_CAP
  (void)max_voting; /* mutant: the cap is ignored, the configuration grows with the nodes */
#else
  if (max_voting && odd > max_voting) odd = max_voting; /* RULE E12 */
#endif
  size_t target = odd > min_size ? odd : min_size;
  cl_el_vconfig cand = {0};
  int rc = 0;
  for (size_t i = 0; i < no && cand.n < target && !rc; i++) rc = cl_vc_add(&cand, order[i]);
  free(order);
  const void *ctx[2] = {live, (const void *)(uintptr_t)n_live};
  if (!rc && cand.n > 0 && cl_vc_quorum(&cand, in_list_ctx, (void *)ctx)) {
    cl_el_vconfig_free(out);
    *out = cand; /* out takes cand's ids */
    return 0;
  }
  cl_el_vconfig_free(&cand);
  if (cl_el_vconfig_copy(out, cur)) return -1;
  return rc;
}
