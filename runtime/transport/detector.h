/* Failure detection for one connection: pure (no I/O, no clock), so the transport on
 * the control loop and the simulator on virtual time run the same code.
 *
 * Each side proves it is alive by what it sends: any frame counts. A side that has sent
 * nothing for about a heartbeat sends a beat (so an idle connection carries one frame
 * per heartbeat each way, and a busy one none at all); a beat also goes out at least
 * every CL_DET_BEAT_MAX_MS, since beats carry the round-trip measurement. A connection
 * on which nothing has arrived for more than timeout_ms is down. The caller runs the
 * check at cl_det_deadline(), so a silent peer is declared down timeout_ms (+1) after
 * its last frame; a closed connection needs no detector at all. */
#ifndef CL_DETECTOR_H
#define CL_DETECTOR_H
#include <stdint.h>

#define CL_DET_BEAT_MAX_MS 1000

typedef struct cl_det {
  uint64_t last_rx_ms, last_tx_ms, last_beat_ms;
  uint32_t heartbeat_ms, timeout_ms; /* timeout_ms 0: never declares down */
  uint32_t grace_ms; /* added to timeout_ms while this node itself runs late (cl_det_awareness) */
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

/* a tick that was due at due_ms ran at now_ms: returns the grace (ms) every connection's
 * timeout gets now; late means later than half a heartbeat */
uint32_t cl_det_tick(cl_det_awareness *a, uint64_t due_ms, uint64_t now_ms, uint32_t heartbeat_ms,
                     uint32_t timeout_ms);

typedef enum { CL_DET_OK = 0, CL_DET_PING, CL_DET_DOWN } cl_det_verdict;

/* the connection is up (authenticated) at now_ms: the first beat is due at once */
void cl_det_up(cl_det *d, uint64_t now_ms, uint32_t heartbeat_ms, uint32_t timeout_ms);
/* a frame arrived */
void cl_det_heard(cl_det *d, uint64_t now_ms);
/* a frame was sent: the peer will hear from us without a beat */
void cl_det_sent(cl_det *d, uint64_t now_ms);
/* DOWN when silent past timeout_ms; else PING (send a beat; counted as sent) when this
 * side has sent nothing for about a heartbeat or no beat for CL_DET_BEAT_MAX_MS; else OK.
 * "About": a check that runs a little early still beats, so a caller waking once per
 * heartbeat never skips one. */
cl_det_verdict cl_det_check(cl_det *d, uint64_t now_ms);
/* the earliest time cl_det_check can return something else than OK */
uint64_t cl_det_deadline(const cl_det *d);
/* the time cl_det_check would declare the connection down (UINT64_MAX: never) */
uint64_t cl_det_down_at(const cl_det *d);
/* smoothed round trip (7/8 old + 1/8 sample), never 0 */
uint32_t cl_det_rtt_smooth(uint32_t old_us, uint32_t sample_us);

#endif
