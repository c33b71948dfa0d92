/* The cluster state as JSON, in Elasticsearch's layout: what Lua gets with
 * state_committed and what GET /_cluster/state answers (and, in a rehearsal, what each
 * simulated node's Lua gets: runtime/rehearse/world.c). */
#include <string.h>

#include "node/node_internal.h"
#include "node/roles.h"
#include "node/state_json.h"

static void add_ids(json_t *arr, const cl_el_vconfig *c) {
  for (uint32_t i = 0; i < c->n; i++) json_array_append_new(arr, json_string(c->ids[i]));
}

static int excluded(const cl_el_state *st, const char *id) {
  for (uint32_t i = 0; i < st->n_excl; i++)
    if (strcmp(st->excl[i].id, id) == 0) return 1;
  return 0;
}

static const char *peer_name(void *ud, const char *id) {
  cl_node_peer *p = cl_node_peer_by_id(ud, id);
  return p ? p->name : NULL;
}

json_t *cl_node_state_json(cl_node *n, const cl_el_state *st) { return cl_state_json(n->cfg->cluster, st, peer_name, n); }

json_t *cl_node_state_json_delta(cl_node *n, const cl_el_state *base, const cl_el_state *st) {
  return cl_state_json_delta(n->cfg->cluster, base, st, peer_name, n);
}

static json_t *node_json(const cl_el_node *nd) {
  json_t *j = json_object();
  json_object_set_new(j, "name", json_string(nd->name));
  json_object_set_new(j, "address", json_string(nd->address));
  json_object_set_new(j, "roles", cl_node_roles_json(nd->tags));
  return j;
}

static json_t *head_json(const char *cluster, const cl_el_state *st) {
  json_t *o = json_object();
  json_object_set_new(o, "cluster_name", json_string(cluster));
  json_object_set_new(o, "cluster_uuid", json_string(st->cluster_id));
  json_object_set_new(o, "version", json_integer((json_int_t)st->version));
  json_object_set_new(o, "term", json_integer((json_int_t)st->term));
  json_object_set_new(o, "master_node", st->master_id[0] ? json_string(st->master_id) : json_null());
  return o;
}

static json_t *metadata_json(const cl_el_state *st, cl_state_name_fn name_of, void *ud, int with_user);

/* The cluster state in Elasticsearch's layout, so an operator's filter_path habits work. */
json_t *cl_state_json(const char *cluster, const cl_el_state *st, cl_state_name_fn name_of, void *ud) {
  json_t *o = head_json(cluster, st);
  json_t *nodes = json_object();
  for (uint32_t i = 0; i < st->n_nodes; i++) json_object_set_new(nodes, st->nodes[i].id, node_json(&st->nodes[i]));
  json_object_set_new(o, "nodes", nodes);
  json_object_set_new(o, "metadata", metadata_json(st, name_of, ud, 1));
  return o;
}

static json_t *metadata_json(const cl_el_state *st, cl_state_name_fn name_of, void *ud, int with_user) {
  json_t *coord = json_object();
  json_object_set_new(coord, "term", json_integer((json_int_t)st->term));
  json_t *lc = json_array(), *la = json_array(), *ex = json_array(), *def = json_array();
  /* the state shown is committed, so its own configuration is the committed one; the
   * field the core carries lags one publication behind (it is what this state was
   * committed under) */
  add_ids(lc, &st->accepted_config);
  add_ids(la, &st->accepted_config);
  for (uint32_t i = 0; i < st->n_excl; i++) {
    json_t *e = json_object();
    json_object_set_new(e, "node_id", json_string(st->excl[i].id));
    /* a node excluded while down is recorded by id: show the name we knew it by */
    const char *ename = st->excl[i].name;
    if (strcmp(ename, st->excl[i].id) == 0) {
      const char *known = name_of ? name_of(ud, st->excl[i].id) : NULL;
      if (known) ename = known;
    }
    json_object_set_new(e, "node_name", json_string(ename));
    json_array_append_new(ex, e);
  }
  for (uint32_t i = 0; i < st->accepted_config.n; i++)
    if (!excluded(st, st->accepted_config.ids[i])) json_array_append_new(def, json_string(st->accepted_config.ids[i]));
  json_object_set_new(coord, "last_committed_config", lc);
  json_object_set_new(coord, "last_accepted_config", la);
  json_object_set_new(coord, "voting_config_exclusions", ex);
  json_object_set_new(coord, "voting_config_excluding_deferred", def);
  json_t *md = json_object();
  json_object_set_new(md, "cluster_coordination", coord);
  if (with_user) {
    json_t *user = NULL;
    if (st->meta && st->meta_len) user = json_loadb((const char *)st->meta, st->meta_len, JSON_DECODE_ANY, NULL);
    json_object_set_new(md, "user", user ? user : json_object());
  }
  json_object_set_new(md, "user_version", json_integer((json_int_t)st->meta_version));
  return md;
}

static int same_str(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static int same_node(const cl_el_node *a, const cl_el_node *b) {
  return (a->str && a->str == b->str) ||
         (same_str(a->name, b->name) && same_str(a->address, b->address) && same_str(a->tags, b->tags));
}

/* Both lists are sorted by id (RULE E13's merge: the core keeps them so), so one pass
 * finds what was added, removed or changed: no allocation for a node that stayed. */
json_t *cl_state_json_delta(const char *cluster, const cl_el_state *base, const cl_el_state *st,
                            cl_state_name_fn name_of, void *ud) {
  json_t *o = head_json(cluster, st);
  json_object_set_new(o, "delta", json_true());
  json_object_set_new(o, "base_term", json_integer((json_int_t)base->term));
  json_object_set_new(o, "base_version", json_integer((json_int_t)base->version));
  json_t *changed = json_object(), *removed = json_array();
  uint32_t i = 0, j = 0;
  while (i < base->n_nodes || j < st->n_nodes) {
    int c = i == base->n_nodes ? 1 : j == st->n_nodes ? -1 : strcmp(base->nodes[i].id, st->nodes[j].id);
    if (c < 0) {
      json_array_append_new(removed, json_string(base->nodes[i++].id));
    } else if (c > 0) {
      json_object_set_new(changed, st->nodes[j].id, node_json(&st->nodes[j]));
      j++;
    } else {
      if (!same_node(&base->nodes[i], &st->nodes[j])) json_object_set_new(changed, st->nodes[j].id, node_json(&st->nodes[j]));
      i++, j++;
    }
  }
  json_object_set_new(o, "nodes_changed", changed);
  json_object_set_new(o, "nodes_removed", removed);
  int user_same = base->meta_version == st->meta_version && base->meta_len == st->meta_len &&
                  (!st->meta_len || !memcmp(base->meta, st->meta, st->meta_len));
  json_object_set_new(o, "metadata", metadata_json(st, name_of, ud, !user_same));
  return o;
}

