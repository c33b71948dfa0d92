/* The Lua-lag check's rule: pure (no I/O, no clock), so the node on the control loop
 * (lua_lag.c) and the simulator on virtual time run the same code.
 *
 * The control loop pings the Lua loop every cl_lag_interval_ms (a quarter of the
 * step-down threshold, at most 1 s, at least 10 ms) and keeps one ping outstanding. A
 * ping unanswered for more than stepdown_ms makes the node give up master duties
 * (CL_LAG_STEP_DOWN, once); the answer to it gives them back (CL_LAG_RESUME). So a Lua
 * loop stuck since time t is acted on by t + stepdown_ms + interval at the latest, and a
 * Lua loop that answers within stepdown_ms never is. */
#ifndef CL_LUA_LAG_CHECK_H
#define CL_LUA_LAG_CHECK_H
#include <stdint.h>

typedef struct {
  uint32_t stepdown_ms;
  uint64_t seq;     /* of the last ping sent */
  uint64_t sent_ms; /* when the outstanding ping was sent */
  int waiting;      /* a ping is outstanding */
  int lagging;      /* master duties given up */
  uint64_t lag_ms;  /* the last lag measured (an answer's delay, or the wait so far) */
  /* Lua's latest answer as the control loop last read it (cl_lag_answer), taken into
   * the rule at the next check (cl_lag_take): answering wakes nobody */
  uint64_t answer_seq, answer_ms;
} cl_lag;

typedef enum {
  CL_LAG_NONE,
  CL_LAG_PING,      /* send ping number l->seq to Lua */
  CL_LAG_STEP_DOWN, /* Lua has not answered for more than stepdown_ms */
  CL_LAG_RESUME,    /* it answers again */
} cl_lag_action;

void cl_lag_init(cl_lag *l, uint32_t stepdown_ms);
uint64_t cl_lag_interval_ms(const cl_lag *l);
/* Run every cl_lag_interval_ms. */
cl_lag_action cl_lag_tick(cl_lag *l, uint64_t now_ms);
/* Lua's answer to ping seq, given at now_ms (when Lua answered, which the control loop
 * may learn later). */
cl_lag_action cl_lag_pong(cl_lag *l, uint64_t seq, uint64_t now_ms);
/* Lua's latest answer (ping seq, answered at ms), as read: kept if newer than the one
 * held (Lua answers in order; a simulated one held back by a stall may come late). */
void cl_lag_answer(cl_lag *l, uint64_t seq, uint64_t ms);
/* Takes the answer held into the rule (cl_lag_pong with it): CL_LAG_RESUME or NONE.
 * Run before cl_lag_tick, and before reporting the lag. */
cl_lag_action cl_lag_take(cl_lag *l);
/* The lag to report now: the outstanding ping's wait if longer than the last measured. */
uint64_t cl_lag_current_ms(const cl_lag *l, uint64_t now_ms);

#endif
