/* The transport's failure detector (runtime/transport/detector.c): pure, so its bounds
 * are checked here exactly, on made-up times. */
#include "harness.h"
#include "transport/detector.h"

/* a connection both sides watch (what every pair does in a cluster of at most
 * transport.watchers + 1 nodes) */
static void up_both(cl_det *d, uint64_t now, uint32_t hb, uint32_t timeout) {
  cl_det_up(d, now, hb, timeout);
  cl_det_watch(d, now, 1);
  cl_det_beat_for(d, 1, 0);
}

/* the first time in [from, to] (step 1) at which check returns v, or -1; checks every ms */
static long first(cl_det *d, long from, long to, cl_det_verdict v) {
  for (long t = from; t <= to; t++) {
    cl_det_verdict got = cl_det_check(d, (uint64_t)t);
    if (got == CL_DET_SUSPECT && v != CL_DET_SUSPECT) got = cl_det_check(d, (uint64_t)t);
    if (got == v) return t;
  }
  return -1;
}

static void sparse_cases(void) {
  cl_det d;
  /* nobody watches: no periodic frame at all, never down */
  cl_det_up(&d, 0, 100, 400);
  int beats = 0, downs = 0;
  for (uint64_t t = 0; t <= 10000; t += 10) {
    cl_det_verdict v = cl_det_check(&d, t);
    beats += v == CL_DET_PING, downs += v == CL_DET_DOWN || v == CL_DET_SUSPECT;
  }
  EXPECT("detector: a connection nobody watches carries no beat and is never called down", beats == 0 && downs == 0,
         "%d beats, %d suspicions/downs in 10 s", beats, downs);
  EXPECT("detector: ... and asks for no wake-up", cl_det_deadline(&d) == UINT64_MAX, "deadline %llu",
         (unsigned long long)cl_det_deadline(&d));

  /* asked to beat, not watching: a beat every heartbeat, never a timeout */
  cl_det_up(&d, 0, 100, 400);
  cl_det_beat_for(&d, 1, 0);
  beats = downs = 0;
  for (uint64_t t = 0; t <= 1000; t += 100) { /* as the tick runs: on the heartbeat */
    cl_det_verdict v = cl_det_check(&d, t);
    beats += v == CL_DET_PING, downs += v == CL_DET_DOWN || v == CL_DET_SUSPECT;
  }
  EXPECT("detector: asked to beat: one beat per heartbeat, and the peer's silence is not ours to judge",
         beats == 10 && downs == 0, "%d beats, %d downs in 1 s", beats, downs);
  cl_det_beat_for(&d, 0, 0);
  EXPECT("detector: told to stop: no beat any more", first(&d, 1001, 5000, CL_DET_PING) == -1, "still beating");

  /* asked to beat at another interval than our own (a large watcher asks for 500 ms, a
   * mesh one for its heartbeat): beats follow the watcher's, while the silence we time
   * keeps the interval we asked for */
  cl_det_up(&d, 0, 100, 400);
  cl_det_beat_for(&d, 1, 500);
  beats = 0;
  long last = -1, gap = 0;
  for (long t = 0; t <= 3000; t++) /* a check every ms, as deadlines wake the tick */
    if (cl_det_check(&d, (uint64_t)t) == CL_DET_PING) {
      beats++;
      if (last >= 0 && t - last > gap) gap = t - last;
      last = t;
    }
  EXPECT("detector: asked for beats every 500 ms: about 500 ms apart, never more", beats >= 7 && beats <= 9 && gap <= 500,
         "%d beats in 3 s, largest gap %ld ms", beats, gap);
  cl_det_beat_for(&d, 1, 0);
  EXPECT("detector: asked again with no interval: the last one stays", d.beat_ms == 500 && d.heartbeat_ms == 100,
         "beat %u, heartbeat %u", d.beat_ms, d.heartbeat_ms);

  /* watching, not asked to beat: one beat a second (the round trip), timeout applies */
  cl_det_up(&d, 0, 100, 400);
  cl_det_watch(&d, 0, 1);
  beats = 0;
  for (uint64_t t = 0; t <= 3000; t += 10) {
    cl_det_heard(&d, t);
    beats += cl_det_check(&d, t) == CL_DET_PING;
  }
  EXPECT("detector: a watcher beats once a second toward whom it watches (at 1, 2 and 3 s)", beats == 3,
         "%d beats in 3 s", beats);

  /* ... on a grid of 1 s, at every tick of it though the tick runs a few ms early or
   * late (a loop's clock): with the tick's other beats, not every other tick; on a grid
   * of 500 ms, at every other tick (issue 18) */
  for (int g = 0; g < 2; g++) {
    uint32_t grid = g ? 500 : 1000;
    cl_det_up(&d, 0, grid, 2000);
    cl_det_watch(&d, 0, 1);
    beats = 0;
    long prev = -1, widest = 0;
    for (long k = 1; k <= 10; k++) {
      long t = k * (long)grid + (k % 2 ? -2 : 3); /* the tick a little off its grid */
      cl_det_heard(&d, (uint64_t)t);
      d.grid = 1;
      if (cl_det_check(&d, (uint64_t)t) == CL_DET_PING) {
        beats++;
        if (prev >= 0 && t - prev > widest) widest = t - prev;
        prev = t;
      }
      d.grid = 0;
    }
    EXPECT(g ? "detector: on a 500 ms grid the watcher's round-trip beat goes at every other tick"
             : "detector: on a 1 s grid the watcher's round-trip beat goes at every tick, a tick early or late",
           g ? beats == 5 && widest <= 1005 : beats == 10 && widest <= 1005, "%d beats in 10 ticks, widest gap %ld ms",
           beats, widest);
  }

  /* the silence counts from the WATCH, never from before it */
  cl_det_up(&d, 0, 100, 400);
  cl_det_watch(&d, 5000, 1);
  long s_at = first(&d, 0, 10000, CL_DET_SUSPECT);
  cl_det_up(&d, 0, 100, 400);
  cl_det_watch(&d, 5000, 1);
  long d_at = first(&d, 0, 10000, CL_DET_DOWN);
  EXPECT("detector: a peer silent since long before we watched it: suspected half a timeout after the WATCH, down a "
         "timeout (+1) after it",
         s_at == 5200 && d_at == 5401, "suspect at %ld, down at %ld", s_at, d_at);

  /* suspicion once per silence; a frame ends it; a vouch turns DOWN into CUT */
  up_both(&d, 0, 100, 400);
  int sus = 0;
  for (uint64_t t = 0; t < 400; t++) sus += cl_det_check(&d, t) == CL_DET_SUSPECT;
  EXPECT("detector: one suspicion per silence, at half the timeout", sus == 1 && d.suspected, "%d suspicions", sus);
  cl_det_heard(&d, 390);
  EXPECT("detector: a frame ends the suspicion", !d.suspected && first(&d, 390, 700, CL_DET_SUSPECT) == 590,
         "suspected %d", d.suspected);
  cl_det_vouched(&d);
  EXPECT("detector: another peer's word while suspected: not down, our own link cut at the same deadline",
         first(&d, 591, 2000, CL_DET_CUT) == 791 && first(&d, 0, 0, CL_DET_DOWN) == -1, "no cut at 791");
  up_both(&d, 0, 100, 400);
  cl_det_vouched(&d); /* a stale answer, before any suspicion */
  EXPECT("detector: a vouch that comes before the suspicion counts for nothing", first(&d, 0, 2000, CL_DET_DOWN) == 401,
         "not down at 401");
  up_both(&d, 0, 100, 400);
  d.grace_ms = 800;
  EXPECT("detector: while this node runs late the suspicion waits for half the widened timeout too",
         cl_det_suspect_at(&d) == 600 && cl_det_down_at(&d) == 1201, "suspect %llu down %llu",
         (unsigned long long)cl_det_suspect_at(&d), (unsigned long long)cl_det_down_at(&d));
  cl_det_watch(&d, 100, 0);
  EXPECT("detector: stopping to watch drops the timeout", cl_det_down_at(&d) == UINT64_MAX, "still a deadline");
}

int main(void) {
  sparse_cases();
  cl_det d;
  up_both(&d, 1000, 100, 400);
  EXPECT("detector: a watched connection beats at once", cl_det_check(&d, 1000) == CL_DET_PING, "no beat at up");
  EXPECT("detector: then not before about a heartbeat (a quarter early counts)",
         cl_det_check(&d, 1074) == CL_DET_OK && cl_det_deadline(&d) == 1075, "deadline %llu",
         (unsigned long long)cl_det_deadline(&d));
  EXPECT("detector: then at it", cl_det_check(&d, 1075) == CL_DET_PING, "no beat at 1075");

  /* silent from t=1000: alive at timeout, down right after, whatever the pings did */
  int down_at = -1;
  for (int t = 1000; t <= 2000 && down_at < 0; t++)
    if (cl_det_check(&d, (uint64_t)t) == CL_DET_DOWN) down_at = t;
  EXPECT("detector: a silent connection is declared down exactly past timeout_ms", down_at == 1401, "the detector did otherwise");

  up_both(&d, 0, 100, 400);
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
  up_both(&d, 0, 100, 400);
  int beats = 0;
  for (uint64_t t = 0; t <= 3000; t += 10) {
    if (t % 50 == 0) cl_det_sent(&d, t), cl_det_heard(&d, t);
    beats += cl_det_check(&d, t) == CL_DET_PING;
  }
  EXPECT("detector: a busy connection beats only once a second (at 1, 2 and 3 s)", beats == 3, "%d beats in 3 s", beats);

  up_both(&d, 0, 100, 0);
  EXPECT("detector: timeout 0 never declares down", cl_det_check(&d, 1000000) == CL_DET_PING &&
                                             cl_det_check(&d, 2000000) != CL_DET_DOWN, "the detector did otherwise");

  /* a heartbeat longer than the timeout (the transport refuses it; the detector copes):
   * the suspicion comes at three quarters of the timeout, so that the probes have time */
  up_both(&d, 0, 1000, 300);
  cl_det_check(&d, 0);
  uint64_t dl_suspect = cl_det_deadline(&d);
  cl_det_check(&d, 225); /* the suspicion */
  EXPECT("detector: the deadlines are the suspicion, then the timeout, when they come before the next ping",
         dl_suspect == 225 && cl_det_deadline(&d) == 301, "deadlines %llu then %llu", (unsigned long long)dl_suspect,
         (unsigned long long)cl_det_deadline(&d));

  /* the suspicion: half a timeout, or a beat and a half when beats are sparser */
  up_both(&d, 0, 100, 400);
  cl_det_watch(&d, 0, 1);
  uint64_t s100 = cl_det_suspect_at(&d);
  up_both(&d, 0, 200, 400);
  cl_det_watch(&d, 0, 1);
  uint64_t s200 = cl_det_suspect_at(&d);
  EXPECT("detector: a silent peer is suspected after half a timeout, or a beat and a half if that is longer",
         s100 == 200 && s200 == 300, "suspected at %llu (heartbeat 100) and %llu (heartbeat 200)",
         (unsigned long long)s100, (unsigned long long)s200);
  /* beats every half timeout, each a little late: never a suspicion */
  up_both(&d, 0, 200, 400);
  cl_det_watch(&d, 0, 1);
  int suspicions = 0;
  for (uint64_t t = 0; t <= 5000; t += 1) {
    if (t % 200 == 20) cl_det_heard(&d, t); /* every beat 20 ms late (the first too) */
    cl_det_verdict v = cl_det_check(&d, t);
    suspicions += v == CL_DET_SUSPECT || v == CL_DET_DOWN;
  }
  EXPECT("detector: beats every half timeout, each 20 ms late, are never suspected", suspicions == 0,
         "%d suspicions", suspicions);
  /* on a grid (the transport's tick, every 200 ms): a frame sent 60 ms after one tick
   * does not make the next tick skip its beat, so beats stay at most 5/4 apart */
  up_both(&d, 0, 200, 400);
  d.grid = 1;
  uint64_t last = 0, worst = 0;
  for (uint64_t t = 0; t <= 4000; t += 200) {
    if (cl_det_check(&d, t) == CL_DET_PING) {
      if (t - last > worst) worst = t - last;
      last = t;
    }
    if (t % 1000 == 0) cl_det_sent(&d, t + 60), last = t + 60; /* another frame, off the grid */
  }
  EXPECT("detector: on the grid, a frame just after a tick does not push the next beat past the following one",
         worst <= 250, "beats %llu ms apart", (unsigned long long)worst);
  /* late is 50 ms at most, whatever the heartbeat */
  cl_det_awareness aw2 = {0};
  cl_det_tick(&aw2, 1000, 1060, 200, 400);
  EXPECT("detector: a tick 60 ms late is late with beats every 200 ms", aw2.score == 1 && cl_det_late_ms(200) == 50 &&
                                                                           cl_det_late_ms(60) == 30,
         "score %u, late %u / %u", aw2.score, cl_det_late_ms(200), cl_det_late_ms(60));
  /* a DOWN from another node is set aside for a frame younger than this */
  EXPECT("detector: the freshness that sets a DOWN aside is half a timeout, less with sparse beats",
         cl_det_fresh_ms(100, 400) == 200 && cl_det_fresh_ms(200, 400) == 100 && cl_det_fresh_ms(50, 300) == 150 &&
             cl_det_fresh_ms(1000, 300) == 0,
         "%u %u %u %u", cl_det_fresh_ms(100, 400), cl_det_fresh_ms(200, 400), cl_det_fresh_ms(50, 300),
         cl_det_fresh_ms(1000, 300));

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
  up_both(&d, 0, 100, 400);
  d.grace_ms = 400 * CL_DET_AWARENESS_MAX;
  EXPECT("detector: with the most grace a silent peer is down after timeout * (1 + max)",
         cl_det_check(&d, 400 * (1 + CL_DET_AWARENESS_MAX)) != CL_DET_DOWN &&
             cl_det_check(&d, 400 * (1 + CL_DET_AWARENESS_MAX) + 1) == CL_DET_DOWN,
         "down at %llu", (unsigned long long)cl_det_down_at(&d));
  return harness_exit();
}
