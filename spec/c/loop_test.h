/* What the C tests that drive a libuv loop add to the harness (harness.h): run_until, to
 * run the loop until a condition holds or a bounded time has passed. Each test file
 * includes it once and sets L to its loop. */
#ifndef CL_LOOP_TEST_H
#define CL_LOOP_TEST_H
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "harness.h"

static uv_loop_t *L;

static void on_guard(uv_timer_t *t) { (void)t; }

/* Runs the loop until cond(ud) or timeout_ms elapsed. Returns cond's final value. */
static int run_until(int (*cond)(void *), void *ud, uint64_t timeout_ms) {
  uv_timer_t guard;
  uv_timer_init(L, &guard);
  uv_timer_start(&guard, on_guard, 5, 5);
  uv_update_time(L);
  uint64_t end = uv_now(L) + timeout_ms;
  int ok = 0;
  while (!(ok = cond ? cond(ud) : 0) && uv_now(L) < end) uv_run(L, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(L, UV_RUN_NOWAIT);
  return ok;
}

#endif
