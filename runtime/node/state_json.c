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

/* The cluster state in Elasticsearch's layout, so an operator's filter_path habits work. */
json_t *cl_state_json(const char *cluster, const cl_el_state *st, cl_state_name_fn name_of, void *ud) {
  json_t *o = json_object();
  json_object_set_new(o, "cluster_name", json_string(cluster));
  json_object_set_new(o, "cluster_uuid", json_string(st->cluster_id));
  json_object_set_new(o, "version", json_integer((json_int_t)st->version));
  json_object_set_new(o, "term", json_integer((json_int_t)st->term));
  json_object_set_new(o, "master_node", st->master_id[0] ? json_string(st->master_id) : json_null());
  json_t *nodes = json_object();
  for (uint32_t i = 0; i < st->n_nodes; i++) {
    const cl_el_node *nd = &st->nodes[i];
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(nd->name));
    json_object_set_new(j, "address", json_string(nd->address));
    json_object_set_new(j, "roles", cl_node_roles_json(nd->tags));
    json_object_set_new(nodes, nd->id, j);
  }
  json_object_set_new(o, "nodes", nodes);
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
  json_t *user = NULL;
  if (st->meta && st->meta_len) user = json_loadb((const char *)st->meta, st->meta_len, JSON_DECODE_ANY, NULL);
  json_object_set_new(md, "user", user ? user : json_object());
  json_object_set_new(md, "user_version", json_integer((json_int_t)st->meta_version));
  json_object_set_new(o, "metadata", md);
  return o;
}

