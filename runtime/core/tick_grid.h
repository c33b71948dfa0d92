/* One grid for the control loop's periodic work. libuv's loop time (uv_now) is the
 * machine's monotonic clock in milliseconds, the same in every process, so work due on
 * multiples of a period wakes every timer of that period, in this process and the
 * others, in the same pass of the loop. An idle node's cost is its wake-ups (each about
 * 0.1 ms of CPU on this project's test machine, mostly the kernel's), so housekeeping
 * that keeps its own phase costs a wake-up of its own every time it runs: at 100 nodes
 * the Lua-lag ping, its answer and the once-a-second housekeeping were 3 of a node's 10
 * to 12 wake-ups a second, none of them on the heartbeat's grid (issue 18). */
#ifndef CL_TICK_GRID_H
#define CL_TICK_GRID_H
#include <stdint.h>

/* the first multiple of period_ms after now_ms (period_ms 0 is taken as 1) */
static inline uint64_t cl_grid_next(uint64_t now_ms, uint64_t period_ms) {
  if (period_ms == 0) period_ms = 1;
  return (now_ms / period_ms + 1) * period_ms;
}

/* how long from now_ms until then: at least 1 ms, since a libuv timer armed for 0 from
 * its own callback runs again in the same pass without polling */
static inline uint64_t cl_grid_delay(uint64_t now_ms, uint64_t period_ms) {
  return cl_grid_next(now_ms, period_ms) - now_ms;
}

#endif
