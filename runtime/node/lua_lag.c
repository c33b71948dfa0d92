/* The Lua-lag check: the control loop pings the Lua loop through the event queue once a
 * second (a quarter of the step-down threshold if that is shorter), so an idle node
 * wakes its Lua thread about once a second for it; a ping unanswered past the step-down
 * threshold tells the election core, which gives up master duties until Lua answers
 * again. The control loop never waits for it. */
#include <stdatomic.h>

#include "core/log.h"
#include "node/node_internal.h"

static void on_lag_timer(uv_timer_t *t) {
  cl_node *n = t->data;
  uint64_t now = uv_now(&n->c->loop);
  if (n->ping_sent_ms == 0) {
    n->ping_seq++;
    n->ping_sent_ms = now;
    cl_node_emit(n, CL_EVT_NODE_LUA_PING, NULL, NULL, 0, 0, (int64_t)n->ping_seq, CL_Q_FORCE);
    return;
  }
  uint64_t lag = now - n->ping_sent_ms;
  if (lag > n->lua_lag_ms) n->lua_lag_ms = lag;
  if (!n->lua_lagging && lag > n->lua_stepdown_ms && n->el) {
    n->lua_lagging = 1;
    cl_log(CL_LOG_WARN, "node", NULL, "Lua has not answered for %llu ms: no master duties here until it does",
           (unsigned long long)lag);
    cl_el_input in = {.kind = CL_EL_IN_LUA_LAG, .flag = 1};
    cl_node_election_input(n, &in);
  }
}

void cl_node_lua_pong(cl_node *n, uint64_t seq) {
  if (seq != n->ping_seq || n->ping_sent_ms == 0) return;
  n->lua_lag_ms = uv_now(&n->c->loop) - n->ping_sent_ms;
  n->ping_sent_ms = 0;
  if (n->lua_lagging && n->el) {
    n->lua_lagging = 0;
    cl_log(CL_LOG_INFO, "node", NULL, "Lua answers again");
    cl_el_input in = {.kind = CL_EL_IN_LUA_LAG, .flag = 0};
    cl_node_election_input(n, &in);
  }
}

void cl_node_lua_lag_start(cl_node *n) {
  n->lag_on = 1;
  uv_timer_init(&n->c->loop, &n->lag_timer);
  n->lag_timer.data = n;
  uint64_t every = n->lua_stepdown_ms / 4;
  if (every > 1000) every = 1000;
  if (every < 10) every = 10;
  uv_timer_start(&n->lag_timer, on_lag_timer, every, every);
}

void cl_node_lua_lag_stop(cl_node *n) {
  if (!n->lag_on) return;
  n->lag_on = 0;
  uv_close((uv_handle_t *)&n->lag_timer, NULL);
}
