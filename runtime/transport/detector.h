/* Failure detection for one connection: pure (no I/O, no clock), so the transport on
 * the control loop and the simulator on virtual time run the same code.
 *
 * A connection is alive while frames arrive. When it has been silent for heartbeat_ms
 * the detector asks for a ping (the peer answers with a pong; any frame counts as
 * heard); when it has been silent for more than timeout_ms it declares the connection
 * down. So a silent peer is declared down after timeout_ms, plus however late the
 * caller runs the check (the transport checks every timeout/8, at most every
 * heartbeat); a closed connection needs no detector at all. */
#ifndef CL_DETECTOR_H
#define CL_DETECTOR_H
#include <stdint.h>

typedef struct cl_det {
  uint64_t last_rx_ms, next_ping_ms;
  uint32_t heartbeat_ms, timeout_ms; /* timeout_ms 0: never declares down */
} cl_det;

typedef enum { CL_DET_OK = 0, CL_DET_PING, CL_DET_DOWN } cl_det_verdict;

/* the connection is up (authenticated) at now_ms: the first ping is due at once */
void cl_det_up(cl_det *d, uint64_t now_ms, uint32_t heartbeat_ms, uint32_t timeout_ms);
/* a frame arrived */
void cl_det_heard(cl_det *d, uint64_t now_ms);
/* DOWN when silent past timeout_ms; else PING when one is due (the next is then
 * scheduled one heartbeat later); else OK */
cl_det_verdict cl_det_check(cl_det *d, uint64_t now_ms);
/* the earliest time cl_det_check can return something else than OK */
uint64_t cl_det_deadline(const cl_det *d);
/* smoothed round trip (7/8 old + 1/8 sample), never 0 */
uint32_t cl_det_rtt_smooth(uint32_t old_us, uint32_t sample_us);

#endif
