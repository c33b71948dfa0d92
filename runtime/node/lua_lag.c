/* The Lua-lag check on the control loop: a timer runs the rule of lua_lag_check.h and
 * pings the Lua loop through the event queue (once a second by default, so an idle node
 * wakes its Lua thread about once a second for it); when Lua has not answered past the
 * step-down threshold the election core gives up master duties until it does. The
 * control loop never waits for Lua. */
#include "core/log.h"
#include "node/node_internal.h"

static void lag_act(cl_node *n, cl_lag_action a) {
  if (a == CL_LAG_PING) {
    cl_node_emit(n, CL_EVT_NODE_LUA_PING, NULL, NULL, 0, 0, (int64_t)n->lag.seq, CL_Q_FORCE);
  } else if (a == CL_LAG_STEP_DOWN || a == CL_LAG_RESUME) {
    if (a == CL_LAG_STEP_DOWN)
      cl_log(CL_LOG_WARN, "node", NULL, "Lua has not answered for %llu ms: no master duties here until it does",
             (unsigned long long)n->lag.lag_ms);
    else
      cl_log(CL_LOG_INFO, "node", NULL, "Lua answers again");
    cl_el_input in = {.kind = CL_EL_IN_LUA_LAG, .flag = a == CL_LAG_STEP_DOWN};
    if (n->el) cl_node_election_input(n, &in);
  }
}

static void on_lag_timer(uv_timer_t *t) {
  cl_node *n = t->data;
  lag_act(n, cl_lag_tick(&n->lag, uv_now(&n->c->loop)));
}

void cl_node_lua_pong(cl_node *n, uint64_t seq) { lag_act(n, cl_lag_pong(&n->lag, seq, uv_now(&n->c->loop))); }

void cl_node_lua_lag_start(cl_node *n) {
  cl_lag_init(&n->lag, n->lua_stepdown_ms);
  n->lag_on = 1;
  uv_timer_init(&n->c->loop, &n->lag_timer);
  n->lag_timer.data = n;
  uint64_t every = cl_lag_interval_ms(&n->lag);
  uv_timer_start(&n->lag_timer, on_lag_timer, every, every);
}

void cl_node_lua_lag_stop(cl_node *n) {
  if (!n->lag_on) return;
  n->lag_on = 0;
  uv_close((uv_handle_t *)&n->lag_timer, NULL);
}
