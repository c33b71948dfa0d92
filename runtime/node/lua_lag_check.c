/* The Lua-lag check's rule (lua_lag_check.h). */
#include "node/lua_lag_check.h"

void cl_lag_init(cl_lag *l, uint32_t stepdown_ms) { *l = (cl_lag){.stepdown_ms = stepdown_ms}; }

uint64_t cl_lag_interval_ms(const cl_lag *l) {
  uint64_t every = l->stepdown_ms / 4;
  if (every > 1000) every = 1000;
  if (every < 10) every = 10;
  return every;
}

cl_lag_action cl_lag_tick(cl_lag *l, uint64_t now_ms) {
  if (!l->waiting) {
    l->seq++;
    l->sent_ms = now_ms;
    l->waiting = 1;
    return CL_LAG_PING;
  }
  uint64_t lag = now_ms - l->sent_ms;
  if (lag > l->lag_ms) l->lag_ms = lag;
  if (!l->lagging && lag > l->stepdown_ms) {
    l->lagging = 1;
    return CL_LAG_STEP_DOWN;
  }
  return CL_LAG_NONE;
}

cl_lag_action cl_lag_pong(cl_lag *l, uint64_t seq, uint64_t now_ms) {
  if (!l->waiting || seq != l->seq) return CL_LAG_NONE; /* an answer to an older ping */
  /* now_ms is when Lua answered, on its own loop's clock: the same monotonic clock, but
   * cached when that loop last woke, which may precede the ping by a millisecond */
  l->lag_ms = now_ms > l->sent_ms ? now_ms - l->sent_ms : 0;
  l->waiting = 0;
  if (!l->lagging) return CL_LAG_NONE;
  l->lagging = 0;
  return CL_LAG_RESUME;
}

void cl_lag_answer(cl_lag *l, uint64_t seq, uint64_t ms) {
  if (seq <= l->answer_seq) return;
  l->answer_seq = seq;
  l->answer_ms = ms;
}

/* an answer already taken, or to an older ping, changes nothing (cl_lag_pong) */
cl_lag_action cl_lag_take(cl_lag *l) { return cl_lag_pong(l, l->answer_seq, l->answer_ms); }

uint64_t cl_lag_current_ms(const cl_lag *l, uint64_t now_ms) {
  uint64_t lag = l->lag_ms;
  if (l->waiting && now_ms - l->sent_ms > lag) lag = now_ms - l->sent_ms;
  return lag;
}
