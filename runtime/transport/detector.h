/* Failure detection for one connection: pure (no I/O, no clock), so the transport on
 * the control loop and the simulator on virtual time run the same code.
 *
 * Detection is sparse (watch.h picks who watches whom): a side beats only when the
 * peer asked it to (it watches us: cl_det_beat_for), and times the peer out only while
 * it watches the peer itself (cl_det_watch), counting from when it asked, so two views
 * that disagree for a moment never call down a peer that was not asked to beat. Any
 * frame counts as proof of life. A side that was asked to beat and has sent nothing
 * for about a heartbeat sends a beat (so an idle watched connection carries one frame
 * per heartbeat from the watched side, and a busy one none); a beat also goes out at
 * least every CL_DET_BEAT_MAX_MS on a connection where either side watches the other,
 * since beats carry the round-trip measurement. A connection nobody watches carries no
 * periodic frame at all.
 *
 * A watched peer silent for half its timeout is suspected (CL_DET_SUSPECT, once per
 * silence: the caller asks other peers to probe it); past timeout_ms it is down
 * (CL_DET_DOWN), unless another peer vouched for it meanwhile (cl_det_vouched): then
 * only this side's own link is silent (CL_DET_CUT: close it alone and re-dial). The
 * caller runs the check at cl_det_deadline(), so a silent peer is declared down
 * timeout_ms (+1) after its last frame; a closed connection needs no detector at all. */
#ifndef CL_DETECTOR_H
#define CL_DETECTOR_H
#include <stdint.h>

#define CL_DET_BEAT_MAX_MS 1000

/* transport.heartbeat_ms and timeout_ms by default: a silent peer is down 401 ms after
 * its last frame. The heartbeat is half the timeout, the longest the bounds allow
 * (design.md §4): a watched idle peer beats 5 times a second, which is what a node at
 * rest costs (issue 17) */
#define CL_DET_DEFAULT_HEARTBEAT_MS 200
#define CL_DET_DEFAULT_TIMEOUT_MS 400
/* above full_mesh_max: the timeout toward every peer (design.md §4) */
#define CL_DET_DEFAULT_LARGE_TIMEOUT_MS 2000
/* the heartbeat for a configured one (0: not given) and timeout: not given, the default
 * but at most half the timeout (a short timeout_ms alone is valid, as it was when the
 * default heartbeat was 100 ms) */
uint32_t cl_det_heartbeat_for(uint32_t heartbeat_ms, uint32_t timeout_ms);

typedef struct cl_det {
  uint64_t last_rx_ms, last_tx_ms, last_beat_ms;
  /* heartbeat_ms: how often the peer beats to us while we watch it (what our WATCH asked
   * for); beat_ms: how often we beat to it, as its WATCH asked. They differ only while
   * one side is large and the other a mesh (design.md §4, "Large clusters"). */
  uint32_t heartbeat_ms, beat_ms, timeout_ms; /* timeout_ms 0: never declares down */
  uint32_t grace_ms; /* added to timeout_ms while this node itself runs late (cl_det_awareness) */
  int watching;      /* we watch the peer: its silence counts (from watch_from_ms) */
  int beating;       /* the peer watches us: we beat every beat_ms when idle */
  uint64_t watch_from_ms;
  /* this check is on a multiple of beat_ms (the transport's tick sets it for the
   * heartbeat's ticks, not for its deadlines', on connections that beat at the tick's
   * interval): it beats unless a frame went out within the last quarter beat, so beats
   * leave at most 5/4 of beat_ms apart.
   * Without it a frame sent just after one tick (or a tick run late) made the next tick
   * skip its beat: beats up to 7/4 apart, 350 ms with the defaults, near the 400 ms
   * timeout (found by a review) */
  int grid;
  int suspected;     /* SUSPECT returned for the current silence */
  int vouched;       /* another peer heard the peer during the current silence */
} cl_det;

/* Local health, after memberlist's Lifeguard: a node whose own loop runs late (its
 * timers fire late because its CPU is starved or it was paused) cannot tell a silent
 * peer from its own slowness, so it waits longer before it calls anyone down. score
 * rises by one for each late tick, falls by one per second of ticks on time, and stays
 * within 0..CL_DET_AWARENESS_MAX; a node at score s allows timeout_ms * (1 + s). So a
 * silent peer is declared down after timeout_ms (+1) when this node runs on time, and
 * after at most timeout_ms * (1 + CL_DET_AWARENESS_MAX) when it does not. */
#define CL_DET_AWARENESS_MAX 3

typedef struct cl_det_awareness {
  uint32_t score;
  uint64_t moved_ms; /* when the score last moved */
} cl_det_awareness;

/* how late a tick may run and still be on time: half a heartbeat, at most
 * CL_DET_LATE_MS (a 60 ms stall is as telling with beats every 200 ms as every 100) */
#define CL_DET_LATE_MS 50
uint32_t cl_det_late_ms(uint32_t heartbeat_ms);

/* a tick that was due at due_ms ran at now_ms: returns the grace (ms) every connection's
 * timeout gets now; late means later than cl_det_late_ms */
uint32_t cl_det_tick(cl_det_awareness *a, uint64_t due_ms, uint64_t now_ms, uint32_t heartbeat_ms,
                     uint32_t timeout_ms);

typedef enum { CL_DET_OK = 0, CL_DET_PING, CL_DET_SUSPECT, CL_DET_DOWN, CL_DET_CUT } cl_det_verdict;

/* the connection is up (authenticated) at now_ms: nobody watches yet, nothing is due */
void cl_det_up(cl_det *d, uint64_t now_ms, uint32_t heartbeat_ms, uint32_t timeout_ms);
/* we start (on) or stop watching the peer at now_ms: its silence counts from now */
void cl_det_watch(cl_det *d, uint64_t now_ms, int on);
/* the peer asked us to beat (on) every beat_ms, or to stop: the first beat is due at
 * once (only when we were not beating already) */
void cl_det_beat_for(cl_det *d, int on, uint32_t beat_ms);
/* another peer heard from the peer during the current silence */
void cl_det_vouched(cl_det *d);
/* a frame arrived: the silence (and its suspicion) ends */
void cl_det_heard(cl_det *d, uint64_t now_ms);
/* a frame was sent: the peer will hear from us without a beat */
void cl_det_sent(cl_det *d, uint64_t now_ms);
/* While watching: DOWN (or CUT when vouched) when silent past timeout_ms (+ grace);
 * SUSPECT once when silent for half of it, or a heartbeat and a half if that is longer
 * (call again for the rest). Else PING (send a beat; counted as sent) when asked to beat
 * and nothing was sent for about a heartbeat (on a grid: for a quarter of one),
 * or when either side watches and no beat went out for CL_DET_BEAT_MAX_MS; else OK.
 * "About": a check that runs a little early still beats, so a caller waking once per
 * heartbeat never skips one. */
cl_det_verdict cl_det_check(cl_det *d, uint64_t now_ms);
/* when the current silence becomes a suspicion (UINT64_MAX: not watching, or already) */
uint64_t cl_det_suspect_at(const cl_det *d);
/* the earliest time cl_det_check can return something else than OK */
uint64_t cl_det_deadline(const cl_det *d);
/* the time cl_det_check would declare the connection down (UINT64_MAX: never, e.g.
 * while not watching) */
uint64_t cl_det_down_at(const cl_det *d);
/* A node told that a peer is down (another node's DOWN) keeps it if a frame from it
 * arrived here less than this long ago: half the timeout, or less when beats are sparse
 * (timeout_ms - 3/2 heartbeat_ms, at least timeout_ms / 4 since heartbeat_ms is at most
 * half of it). The declaring watcher heard nothing for a whole timeout, and the peer
 * beat to it at most 5/4 heartbeats apart while it ran (grid), so a frame younger than
 * timeout_ms - 5/4 heartbeat_ms proves it ran after it should have beaten the watcher
 * again; one older proves nothing. The quarter heartbeat under that is what the frame's
 * and the news's delivery may take on a busy machine (design.md §4). */
uint32_t cl_det_fresh_ms(uint32_t heartbeat_ms, uint32_t timeout_ms);
/* smoothed round trip (7/8 old + 1/8 sample), never 0 */
uint32_t cl_det_rtt_smooth(uint32_t old_us, uint32_t sample_us);

#endif
