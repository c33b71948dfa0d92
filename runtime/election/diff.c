/* Applying a publication diff (RULE E13 of docs/design.md) to the state it was built
 * against. The diff comes from a peer and is hostile: it applies only to its exact
 * base, named by (term, version) and cluster id, and every entry must fit that base (a
 * node added must be absent, one changed or removed present); anything else fails and
 * the node asks for the whole state instead. Pure: no I/O. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* RULE E13: a diff applies only to the state it was built against */
static int base_matches(const cl_el_state *base, const cl_diff *d) {
#ifdef CL_MUTANT_DIFF_WRONG_BASE
  /* deliberately broken: the version alone names the base, as if versions did not
   * restart their meaning with each term; the simulator must catch it */
  return base->term > 0 && base->version == d->base_version && !strcmp(base->cluster_id, d->cluster_id);
#else
  /* a bootstrap state (term 0) is each node's own: never a base */
  return base->term > 0 && base->term == d->base_term && base->version == d->base_version &&
         !strcmp(base->cluster_id, d->cluster_id);
#endif
}

int cl_diff_apply(const cl_el_state *base, const cl_diff *d, cl_el_state *out, char *err, size_t errlen) {
  if (!base_matches(base, d))
    return fail(err, errlen, "built against (%llu,%llu), this node holds (%llu,%llu)",
                (unsigned long long)d->base_term, (unsigned long long)d->base_version,
                (unsigned long long)base->term, (unsigned long long)base->version);
  if (d->n_del > base->n_nodes) return fail(err, errlen, "removes %u nodes of %u", d->n_del, base->n_nodes);
  uint32_t n = base->n_nodes + d->n_add - d->n_del;
  if (n > CL_EL_MAX_NODES_HARD) return fail(err, errlen, "%u nodes is above the limit of %d", n, CL_EL_MAX_NODES_HARD);
  if (cl_el_state_reserve_nodes(out, n) || cl_el_vconfig_copy(&out->committed_config, &d->committed_config) ||
      cl_el_vconfig_copy(&out->accepted_config, &d->accepted_config))
    return fail(err, errlen, "out of memory for %u nodes", n);
  /* one merge pass: base, added, changed and removed are all sorted by id. out's records
   * are dropped first and counted as they are written, so a diff that does not fit
   * leaves a shorter list, never a record unaccounted for */
  cl_el_state_truncate_nodes(out, 0);
  uint32_t i = 0, a = 0, c = 0, k = 0, o = 0;
  while (i < base->n_nodes || a < d->n_add) {
    int cmp = i == base->n_nodes ? 1 : a == d->n_add ? -1 : strcmp(base->nodes[i].id, d->add[a].id);
    if (cmp == 0) return fail(err, errlen, "adds %s, which the base already holds", d->add[a].id);
    if (cmp > 0) {
      if (o == n) return fail(err, errlen, "does not fit the base's %u nodes", base->n_nodes);
      cl_el_node_copy(&out->nodes[o], &d->add[a++]); /* decoded records own their strings */
      out->n_nodes = ++o;
      continue;
    }
    const cl_el_node *bn = &base->nodes[i++];
    if (k < d->n_del && strcmp(d->del[k], bn->id) < 0) return fail(err, errlen, "removes %s, absent from the base", d->del[k]);
    if (c < d->n_chg && strcmp(d->chg[c].id, bn->id) < 0) return fail(err, errlen, "changes %s, absent from the base", d->chg[c].id);
    if (k < d->n_del && !strcmp(d->del[k], bn->id)) {
      k++;
      continue;
    }
    if (o == n) return fail(err, errlen, "does not fit the base's %u nodes", base->n_nodes);
    cl_el_node_copy(&out->nodes[o], c < d->n_chg && !strcmp(d->chg[c].id, bn->id) ? &d->chg[c++] : bn);
    out->n_nodes = ++o;
  }
  if (k < d->n_del) return fail(err, errlen, "removes %s, absent from the base", d->del[k]);
  if (c < d->n_chg) return fail(err, errlen, "changes %s, absent from the base", d->chg[c].id);
  if (o != n) return fail(err, errlen, "does not fit the base's %u nodes", base->n_nodes);
  uint8_t *meta = NULL;
  const uint8_t *msrc = d->meta_changed ? d->meta : base->meta;
  uint32_t mlen = d->meta_changed ? d->meta_len : base->meta_len;
  if (mlen) {
    meta = malloc(mlen);
    if (!meta) return fail(err, errlen, "out of memory for %u bytes of metadata", mlen);
    memcpy(meta, msrc, mlen);
  }
  free(out->meta);
  out->meta = meta;
  out->meta_len = mlen;
  memcpy(out->cluster_id, d->cluster_id, sizeof out->cluster_id);
  out->term = d->term;
  out->version = d->version;
  memcpy(out->master_id, d->master_id, sizeof out->master_id);
  out->n_excl = d->n_excl;
  memcpy(out->excl, d->excl, d->n_excl * sizeof d->excl[0]);
  if (d->meta_changed) {
    out->meta_version = d->meta_version;
    memcpy(out->meta_origin, d->meta_origin, sizeof out->meta_origin);
    out->meta_req = d->meta_req;
  } else {
    out->meta_version = base->meta_version;
    memcpy(out->meta_origin, base->meta_origin, sizeof out->meta_origin);
    out->meta_req = base->meta_req;
  }
  if (out->meta_version > out->version)
    return fail(err, errlen, "metadata version %llu after state version %llu", (unsigned long long)out->meta_version,
                (unsigned long long)out->version);
  return 0;
}
