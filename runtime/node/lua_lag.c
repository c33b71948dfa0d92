/* The Lua-lag check on the control loop: a timer runs the rule of lua_lag_check.h and
 * pings the Lua loop through the event queue (once a second by default, so an idle node
 * wakes its Lua thread about once a second for it); when Lua has not answered past the
 * step-down threshold the election core gives up master duties until it does. The
 * control loop never waits for Lua.
 *
 * Lua answers by storing the ping's number and its own loop time in the control
 * (cl_control_lua_answered), which wakes nobody: the control loop reads it on its next
 * tick, or when the lag is asked for (the admin API). The tick is on multiples of the
 * interval of the monotonic clock, the grid the heartbeats use (core/tick_grid.h), so
 * at rest the check adds no wake-up of its own: it was two a second, the ping's and
 * the answer's (issue 18). What an answer changes (giving master duties back) waits
 * for that next look, at most one interval. */
#include "core/log.h"
#include "core/tick_grid.h"
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

/* takes Lua's latest answer into the rule */
static void lag_sync(cl_node *n) {
  uint64_t ms, seq = cl_control_lua_answer(n->c, &ms);
  cl_lag_answer(&n->lag, seq, ms);
  lag_act(n, cl_lag_take(&n->lag));
}

static void on_lag_timer(uv_timer_t *t);

static void lag_arm(cl_node *n) {
  uv_timer_start(&n->lag_timer, on_lag_timer, cl_grid_delay(uv_now(&n->c->loop), cl_lag_interval_ms(&n->lag)), 0);
}

static void on_lag_timer(uv_timer_t *t) {
  cl_node *n = t->data;
  lag_sync(n);
  lag_act(n, cl_lag_tick(&n->lag, uv_now(&n->c->loop)));
  lag_arm(n);
}

uint64_t cl_node_lua_lag_ms(cl_node *n) {
  if (n->lag_on) lag_sync(n);
  return cl_lag_current_ms(&n->lag, uv_now(&n->c->loop));
}

void cl_node_lua_lag_start(cl_node *n) {
  cl_lag_init(&n->lag, n->lua_stepdown_ms);
  /* pings numbered past any answer an earlier run left in the control */
  n->lag.seq = n->lag.answer_seq = cl_control_lua_answer(n->c, &n->lag.answer_ms);
  n->lag_on = 1;
  uv_timer_init(&n->c->loop, &n->lag_timer);
  n->lag_timer.data = n;
  lag_arm(n);
}

void cl_node_lua_lag_stop(cl_node *n) {
  if (!n->lag_on) return;
  n->lag_on = 0;
  uv_close((uv_handle_t *)&n->lag_timer, NULL);
}
