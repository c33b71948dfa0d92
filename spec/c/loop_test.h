/* What the C tests that drive a libuv loop share: one "PASS name" or "FAIL name: reason"
 * line per case, CHECK to fail a case with a reason, and run_until to run the loop until
 * a condition holds or a bounded time has passed. Each test file includes it once and
 * sets L to its loop. */
#ifndef CL_LOOP_TEST_H
#define CL_LOOP_TEST_H
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

static int failures;
static uv_loop_t *L;
static char fail_msg[512];

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      snprintf(fail_msg, sizeof fail_msg, __VA_ARGS__);                                            \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

static void run_case(const char *name, int (*fn)(void)) {
  fail_msg[0] = 0;
  int r = fn();
  if (r == 0) {
    printf("PASS %s\n", name);
  } else {
    printf("FAIL %s: %s\n", name, fail_msg);
    failures++;
  }
  fflush(stdout);
}

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

static int never(void *ud) {
  (void)ud;
  return 0;
}

#endif
