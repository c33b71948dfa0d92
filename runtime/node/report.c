/* The node's events for the admin endpoint's event stream (GET /_events): the control
 * loop tells the admin side directly, so an operator sees them even while Lua is busy.
 * Events born on the Lua thread (reloads, hook and strategy errors) arrive here through
 * the command queue (CL_CMD_NODE_EVENT), never the other way round. */
#include <string.h>

#include "node/node_internal.h"

int cl_node_reporting(const cl_node *n) { return n->admin && n->admin_ops && n->admin_ops->event; }

void cl_node_report(cl_node *n, const char *kind, json_t *fields) {
  if (!fields) return;
  if (cl_node_reporting(n)) n->admin_ops->event(n, kind, fields);
  json_decref(fields);
}

/* What Lua may report: anything else is refused (the kinds the node itself reports are
 * not Lua's to forge). */
static const char *const lua_kinds[] = {"reloaded", "reload_failed", "hook_error", "hook_abort", "strategy_error"};

void cl_node_report_from_lua(cl_node *n, const char *kind, const void *body, size_t len) {
  if (!cl_node_reporting(n)) return;
  int known = 0;
  for (size_t i = 0; i < sizeof lua_kinds / sizeof *lua_kinds; i++) known |= strcmp(kind, lua_kinds[i]) == 0;
  if (!known) return;
  json_t *o = json_loadb(body, len, 0, NULL);
  if (!json_is_object(o)) {
    json_decref(o);
    return;
  }
  cl_node_report(n, kind, o);
}
