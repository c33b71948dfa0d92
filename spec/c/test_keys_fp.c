/* When a node's start-up keys are fingerprinted (cl_keys_fp_due, runtime/node/
 * keys_internal.h): pure, so its bounds are checked here exactly, on made-up times. */
#include "harness.h"
#include "node/keys_internal.h"

int main(void) {
  EXPECT("keys: no fingerprint in the first second, however still the node is",
         !cl_keys_fp_due(0, 5000) && !cl_keys_fp_due(999, 999), "due before 1 s");
  EXPECT("keys: a node still for 2 s after its first second computes them", cl_keys_fp_due(1000, 2000) &&
         cl_keys_fp_due(2500, 2500), "not due");
  /* a cluster forming: the membership changes every few hundred ms */
  int due = 0;
  for (uint64_t t = 1000; t < 30000; t += 100) due += cl_keys_fp_due(t, t % 700);
  EXPECT("keys: while the membership keeps changing they wait", due == 0, "due %d times before 30 s", due);
  EXPECT("keys: 30 s after the start they are computed anyway", cl_keys_fp_due(30000, 0) && cl_keys_fp_due(45000, 10),
         "not due at 30 s");
  return harness_exit();
}
