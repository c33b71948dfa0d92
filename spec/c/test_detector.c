/* The transport's failure detector (runtime/transport/detector.c): pure, so its bounds
 * are checked here exactly, on made-up times. */
#include "harness.h"
#include "transport/detector.h"

int main(void) {
  cl_det d;
  cl_det_up(&d, 1000, 100, 400);
  EXPECT("detector: a new connection beats at once", cl_det_check(&d, 1000) == CL_DET_PING, "no beat at up");
  EXPECT("detector: then not before about a heartbeat (a quarter early counts)",
         cl_det_check(&d, 1074) == CL_DET_OK && cl_det_deadline(&d) == 1075, "deadline %llu",
         (unsigned long long)cl_det_deadline(&d));
  EXPECT("detector: then at it", cl_det_check(&d, 1075) == CL_DET_PING, "no beat at 1075");

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

  /* a connection that carries traffic needs no beat, except one a second (for the
   * round-trip measurement) */
  cl_det_up(&d, 0, 100, 400);
  int beats = 0;
  for (uint64_t t = 0; t <= 3000; t += 10) {
    if (t % 50 == 0) cl_det_sent(&d, t), cl_det_heard(&d, t);
    beats += cl_det_check(&d, t) == CL_DET_PING;
  }
  EXPECT("detector: a busy connection beats only once a second (at 1, 2 and 3 s)", beats == 3, "%d beats in 3 s", beats);

  cl_det_up(&d, 0, 100, 0);
  EXPECT("detector: timeout 0 never declares down", cl_det_check(&d, 1000000) == CL_DET_PING &&
                                             cl_det_check(&d, 2000000) != CL_DET_DOWN, "the detector did otherwise");

  cl_det_up(&d, 0, 1000, 300);
  cl_det_check(&d, 0);
  EXPECT("detector: the deadline is the timeout when it comes before the next ping", cl_det_deadline(&d) == 301, "the detector did otherwise");

  EXPECT("detector: rtt: the first sample is taken as it is", cl_det_rtt_smooth(0, 800) == 800, "the detector did otherwise");
  EXPECT("detector: rtt: 7/8 old + 1/8 new", cl_det_rtt_smooth(800, 1600) == 900, "the detector did otherwise");
  EXPECT("detector: rtt: never 0", cl_det_rtt_smooth(0, 0) == 1, "the detector did otherwise");
  /* local health: a late tick widens every timeout, on-time ticks narrow it again */
  cl_det_awareness aw = {0};
  uint32_t g0 = cl_det_tick(&aw, 1000, 1010, 100, 400);
  uint32_t g1 = cl_det_tick(&aw, 1100, 1400, 100, 400); /* 300 ms late */
  uint32_t g_many = 0;
  for (int i = 0; i < 10; i++) g_many = cl_det_tick(&aw, 2000, 2600, 100, 400);
  EXPECT("detector: a tick on time gives no grace", g0 == 0, "grace %u", g0);
  EXPECT("detector: a late tick gives every connection one more timeout", g1 == 400, "grace %u", g1);
  EXPECT("detector: the grace is capped at CL_DET_AWARENESS_MAX timeouts", g_many == 400 * CL_DET_AWARENESS_MAX,
         "grace %u", g_many);
  /* ticks on time every 100 ms from t = 3000 (the last late one was at 2600) */
  uint32_t g = g_many;
  uint64_t t = 2600;
  while (g > 0 && t < 100000) t += 100, g = cl_det_tick(&aw, t, t, 100, 400);
  EXPECT("detector: each second on time takes one timeout of grace back", t == 2600 + 1000 * CL_DET_AWARENESS_MAX,
         "grace gone at %llu", (unsigned long long)t);
  cl_det_up(&d, 0, 100, 400);
  d.grace_ms = 400 * CL_DET_AWARENESS_MAX;
  EXPECT("detector: with the most grace a silent peer is down after timeout * (1 + max)",
         cl_det_check(&d, 400 * (1 + CL_DET_AWARENESS_MAX)) != CL_DET_DOWN &&
             cl_det_check(&d, 400 * (1 + CL_DET_AWARENESS_MAX) + 1) == CL_DET_DOWN,
         "down at %llu", (unsigned long long)cl_det_down_at(&d));
  return harness_exit();
}
