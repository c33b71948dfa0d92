/* The Lua-lag check's rule (runtime/node/lua_lag_check.c): pure, so its bounds are
 * checked here exactly, on made-up times. */
#include "harness.h"
#include "node/lua_lag_check.h"

int main(void) {
  cl_lag l;
  cl_lag_init(&l, 400);
  EXPECT("lua lag: pings every quarter of the threshold", cl_lag_interval_ms(&l) == 100, "interval %llu",
         (unsigned long long)cl_lag_interval_ms(&l));
  cl_lag big, small;
  cl_lag_init(&big, 30000);
  cl_lag_init(&small, 8);
  EXPECT("lua lag: the interval stays within 10 ms .. 1 s",
         cl_lag_interval_ms(&big) == 1000 && cl_lag_interval_ms(&small) == 10, "%llu %llu",
         (unsigned long long)cl_lag_interval_ms(&big), (unsigned long long)cl_lag_interval_ms(&small));

  /* Lua answers every ping within 350 ms (< 400): it never loses master duties */
  int steps = 0;
  uint64_t pending = 0, answer_at = 0;
  for (uint64_t t = 100; t <= 20000; t += 100) {
    if (pending && t >= answer_at) steps += cl_lag_pong(&l, pending, t) != CL_LAG_NONE, pending = 0;
    cl_lag_action a = cl_lag_tick(&l, t);
    if (a == CL_LAG_PING) pending = l.seq, answer_at = t + 350;
    steps += a == CL_LAG_STEP_DOWN;
  }
  EXPECT("lua lag: a Lua loop that answers within the threshold keeps master duties", steps == 0,
         "%d step-downs or resumes", steps);

  /* Lua stops answering at t0: the step-down comes past the threshold, within one
   * interval of it, exactly once */
  cl_lag_init(&l, 400);
  uint64_t t0 = 1000, down_at = 0;
  int downs = 0;
  for (uint64_t t = t0; t <= t0 + 5000; t += 100) {
    cl_lag_action a = cl_lag_tick(&l, t);
    if (a == CL_LAG_STEP_DOWN) downs++, down_at = down_at ? down_at : t;
  }
  EXPECT("lua lag: a stuck Lua loop loses master duties past the threshold, within an interval",
         downs == 1 && down_at > t0 + 400 && down_at <= t0 + 400 + 100, "%d step-downs, first at +%llu", downs,
         (unsigned long long)(down_at - t0));
  EXPECT("lua lag: the wait so far is reported while the ping is outstanding",
         cl_lag_current_ms(&l, t0 + 6000) == 6000, "reported %llu", (unsigned long long)cl_lag_current_ms(&l, t0 + 6000));

  /* an answer to an older ping changes nothing; the answer to the outstanding one resumes */
  EXPECT("lua lag: an answer to an older ping is ignored", cl_lag_pong(&l, l.seq - 1, t0 + 6000) == CL_LAG_NONE,
         "resumed on a stale answer");
  EXPECT("lua lag: the answer to the outstanding ping gives master duties back",
         cl_lag_pong(&l, l.seq, t0 + 6000) == CL_LAG_RESUME && !l.lagging && l.lag_ms == 6000, "lag %llu",
         (unsigned long long)l.lag_ms);
  EXPECT("lua lag: the next tick sends a new ping", cl_lag_tick(&l, t0 + 6100) == CL_LAG_PING, "no ping");
  /* the answer carries Lua's own loop time, which the control loop reads later (on its
   * next tick); that clock is cached when Lua's loop woke, so it may be a millisecond
   * before the ping was stamped: no lag, not a wrapped-around one */
  EXPECT("lua lag: an answer read a tick later counts from when Lua gave it",
         cl_lag_pong(&l, l.seq, t0 + 6103) == CL_LAG_NONE && l.lag_ms == 3 && cl_lag_current_ms(&l, t0 + 7000) == 3,
         "lag %llu", (unsigned long long)l.lag_ms);
  cl_lag_tick(&l, t0 + 7100);
  EXPECT("lua lag: an answer stamped before the ping is no lag", cl_lag_pong(&l, l.seq, t0 + 7099) == CL_LAG_NONE &&
         l.lag_ms == 0, "lag %llu", (unsigned long long)l.lag_ms);
  /* the answer as the control loop reads it: held, taken in at the next check */
  cl_lag_tick(&l, t0 + 8000); /* a new ping */
  uint64_t s = l.seq;
  cl_lag_answer(&l, s, t0 + 8002);
  cl_lag_answer(&l, s - 1, t0 + 8500); /* an older answer read late: not kept */
  EXPECT("lua lag: a held answer is taken in once, with the time Lua gave it",
         l.waiting && cl_lag_take(&l) == CL_LAG_NONE && !l.waiting && l.lag_ms == 2 && cl_lag_take(&l) == CL_LAG_NONE,
         "waiting %d lag %llu", l.waiting, (unsigned long long)l.lag_ms);
  /* stuck past the threshold, then an answer: taking it gives master duties back */
  cl_lag_tick(&l, t0 + 9000);
  s = l.seq;
  int down = 0;
  for (uint64_t t = t0 + 9100; t <= t0 + 9600; t += 100) down += cl_lag_tick(&l, t) == CL_LAG_STEP_DOWN;
  cl_lag_answer(&l, s, t0 + 9650);
  EXPECT("lua lag: taking a late answer in resumes master duties", down == 1 && cl_lag_take(&l) == CL_LAG_RESUME &&
         l.lag_ms == 650, "downs %d lag %llu", down, (unsigned long long)l.lag_ms);
  return harness_exit();
}
