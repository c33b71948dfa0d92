/* The transport's failure detector (runtime/transport/detector.c): pure, so its bounds
 * are checked here exactly, on made-up times. */
#include "harness.h"
#include "transport/detector.h"

int main(void) {
  cl_det d;
  cl_det_up(&d, 1000, 100, 400);
  EXPECT("detector: a new connection is pinged at once", cl_det_check(&d, 1000) == CL_DET_PING, "the detector did otherwise");
  EXPECT("detector: then not before one heartbeat", cl_det_check(&d, 1099) == CL_DET_OK && cl_det_deadline(&d) == 1100, "the detector did otherwise");
  EXPECT("detector: then one heartbeat later", cl_det_check(&d, 1100) == CL_DET_PING, "the detector did otherwise");

  /* silent from t=1000: alive at timeout, down right after, whatever the pings did */
  int down_at = -1;
  for (int t = 1000; t <= 2000 && down_at < 0; t++)
    if (cl_det_check(&d, (uint64_t)t) == CL_DET_DOWN) down_at = t;
  EXPECT("detector: a silent connection is declared down exactly past timeout_ms", down_at == 1401, "the detector did otherwise");

  cl_det_up(&d, 0, 100, 400);
  int downs = 0;
  for (uint64_t t = 0; t < 5000; t += 10) {
    if (t % 300 == 0) cl_det_heard(&d, t); /* a frame every 300 ms: under the timeout */
    downs += cl_det_check(&d, t) == CL_DET_DOWN;
  }
  EXPECT("detector: frames within the timeout keep it up", downs == 0, "the detector did otherwise");
  cl_det_heard(&d, 100); /* a late, reordered report never moves time back */
  EXPECT("detector: heard never goes back in time", d.last_rx_ms == 4800, "the detector did otherwise");

  cl_det_up(&d, 0, 100, 0);
  EXPECT("detector: timeout 0 never declares down", cl_det_check(&d, 1000000) == CL_DET_PING &&
                                             cl_det_check(&d, 2000000) != CL_DET_DOWN, "the detector did otherwise");

  cl_det_up(&d, 0, 1000, 300);
  cl_det_check(&d, 0);
  EXPECT("detector: the deadline is the timeout when it comes before the next ping", cl_det_deadline(&d) == 301, "the detector did otherwise");

  EXPECT("detector: rtt: the first sample is taken as it is", cl_det_rtt_smooth(0, 800) == 800, "the detector did otherwise");
  EXPECT("detector: rtt: 7/8 old + 1/8 new", cl_det_rtt_smooth(800, 1600) == 900, "the detector did otherwise");
  EXPECT("detector: rtt: never 0", cl_det_rtt_smooth(0, 0) == 1, "the detector did otherwise");
  return harness_exit();
}
