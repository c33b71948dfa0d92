/* The one harness of the C tests (spec/c/, spec/reliability/state_check.c): each case
 * prints one line, "PASS name" or "FAIL name: why", which tools/run-tests.sh counts, and
 * main returns harness_exit().
 *
 *   static int t_rule(void) { CHECK(x == 1, "x is %d", x); return 0; }
 *   run_case("the rule this proves", t_rule);   // a case that is a function
 *   EXPECT("the rule this proves", x == 1, "x is %d", x);   // a case that is one check
 *   return harness_exit();
 */
#ifndef CL_HARNESS_H
#define CL_HARNESS_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static char fail_msg[512];

/* inside a case function: fails the case with the reason, and returns from it */
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      snprintf(fail_msg, sizeof fail_msg, __VA_ARGS__);                                            \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

static void harness_pass(const char *name) {
  printf("PASS %s\n", name);
  fflush(stdout);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void harness_fail(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("FAIL %s: ", name);
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
  failures++;
}

/* runs fn, a case that returns 0 on success or fails through CHECK */
#if defined(__GNUC__)
__attribute__((unused))
#endif
static void run_case(const char *name, int (*fn)(void)) {
  /* CASE=words: run only the cases whose name holds them (while developing one) */
  const char *only = getenv("CASE");
  if (only && *only && !strstr(name, only)) return;
  fail_msg[0] = 0;
  if (fn() == 0)
    harness_pass(name);
  else
    harness_fail(name, "%s", fail_msg);
}

/* a case that is a single condition */
#define EXPECT(name, cond, ...) ((cond) ? harness_pass(name) : harness_fail(name, __VA_ARGS__))

/* main's exit status: 1 if any case failed */
static inline int harness_exit(void) { return failures ? 1 : 0; }

#endif
