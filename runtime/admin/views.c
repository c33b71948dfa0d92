/* Shared admin answers: health, names of ids, filter_path. */
#include "admin/views.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "admin/json_filter.h"
#include "core/lua_stats.h"
#include "node/node_internal.h"
#include "transport/transport.h"

static const char *name_of_id(cl_node *n, const cl_el_state *st, const char *id) {
  if (st)
    for (uint32_t i = 0; i < st->n_nodes; i++)
      if (strcmp(st->nodes[i].id, id) == 0) return st->nodes[i].name;
  cl_node_peer *p = cl_node_peer_by_id(n, id);
  if (p) return p->name;
  if (strcmp(id, n->cfg->id) == 0) return n->cfg->name;
  return id;
}

/* ---- GET /_cluster/health ---- */

static int cmp_node_id(const void *key, const void *elem) {
  return strcmp((const char *)key, ((const cl_el_node *)elem)->id);
}

json_t *cl_admin_health_json(cl_node *n) {
  json_t *o = json_object();
  const cl_el_state *st = n->el ? cl_el_committed(n->el) : NULL;
  const char *master = n->el ? cl_el_master_name(n->el) : NULL;
  json_object_set_new(o, "cluster_name", json_string(n->cfg->cluster));
  json_object_set_new(o, "status", json_string(n->el ? cl_el_health_str(cl_el_get_health(n->el)) : "red"));
  json_object_set_new(o, "master", master ? json_string(master) : json_null());
  json_object_set_new(o, "term", json_integer(n->el ? (json_int_t)cl_el_term(n->el) : 0));
  json_object_set_new(o, "version", json_integer(st ? (json_int_t)st->version : 0));
  /* the members, as the committed state lists them (and /_cat/nodes shows them) */
  json_object_set_new(o, "number_of_nodes", json_integer(st ? (json_int_t)st->n_nodes : 1));
  /* beside the members: the peers this node holds an authenticated node-to-node
   * connection to right now (what a large cluster must keep small; issue 18; data
   * connections not counted; design.md §5) */
  json_object_set_new(o, "number_of_connections", json_integer(n->t ? (json_int_t)cl_transport_connected_count(n->t) : 0));
  int eligible = (cl_node_roles_flags(n->cfg->roles) & CL_EL_F_MASTER) ? 1 : 0;
  for (int i = 0; st && st->n_nodes && i < n->n_peers; i++) { /* bsearch: no NULL base */
    if (!n->peers[i].up) continue;
    /* a state's nodes are sorted by id (codec.c refuses one that is not): a binary
     * search per peer, not a scan of every member */
    const cl_el_node *m = bsearch(n->peers[i].id, st->nodes, st->n_nodes, sizeof *st->nodes, cmp_node_id);
    if (m && (m->flags & CL_EL_F_MASTER)) eligible++;
  }
  json_object_set_new(o, "number_of_master_eligible_nodes", json_integer(eligible));
  /* the master first, as documented; the rest in the configuration's order. The
   * configuration is built with the master first, but keeps its order across a
   * failover that does not change it. */
  json_t *vc = json_array();
  const char *master_id = n->el ? cl_el_master_id(n->el) : NULL;
  if (st) {
    const cl_el_vconfig *cfg = &st->accepted_config; /* committed: see cl_node_state_json */
    for (uint32_t i = 0; master_id && i < cfg->n; i++)
      if (strcmp(cfg->ids[i], master_id) == 0) json_array_append_new(vc, json_string(name_of_id(n, st, cfg->ids[i])));
    for (uint32_t i = 0; i < cfg->n; i++)
      if (!master_id || strcmp(cfg->ids[i], master_id) != 0)
        json_array_append_new(vc, json_string(name_of_id(n, st, cfg->ids[i])));
  }
  json_object_set_new(o, "voting_config", vc);
  json_object_set_new(o, "quorum", json_integer(n->el ? cl_el_quorum_size(n->el) : 0));
  uint64_t lag = cl_node_lua_lag_ms(n);
  json_object_set_new(o, "lua_lag_ms", json_integer((json_int_t)lag));
  json_object_set_new(o, "hook_aborts", json_integer((json_int_t)atomic_load(&cl_lua_stats_g.hook_aborts)));
  return o;
}


int cl_admin_filter_param(cl_admin *a, cl_admin_req *req, char *fp) {
  char ferr[200];
  switch (cl_admin_query_lookup(req, "filter_path", fp, CL_JSON_FILTER_MAX_LEN + 1)) {
    case CL_ADMIN_QP_TOO_LONG:
      cl_admin_reply_error(a, req->priv, 400, "filter_path is longer than %d characters", CL_JSON_FILTER_MAX_LEN);
      return -1;
    case CL_ADMIN_QP_MALFORMED:
      cl_admin_reply_error(a, req->priv, 400, "filter_path: malformed percent-encoding or a NUL byte");
      return -1;
    case CL_ADMIN_QP_ABSENT:
      fp[0] = 0;
      break;
    default:
      break;
  }
  if (cl_json_filter_check(fp, ferr, sizeof ferr) != 0) {
    cl_admin_reply_error(a, req->priv, 400, "%s", ferr);
    return -1;
  }
  return 0;
}
