/* See detector.h. */
#include "transport/detector.h"

void cl_det_up(cl_det *d, uint64_t now_ms, uint32_t heartbeat_ms, uint32_t timeout_ms) {
  d->last_rx_ms = now_ms;
  d->next_ping_ms = now_ms;
  d->heartbeat_ms = heartbeat_ms;
  d->timeout_ms = timeout_ms;
}

void cl_det_heard(cl_det *d, uint64_t now_ms) {
  if (now_ms > d->last_rx_ms) d->last_rx_ms = now_ms;
}

cl_det_verdict cl_det_check(cl_det *d, uint64_t now_ms) {
  if (d->timeout_ms && now_ms > d->last_rx_ms && now_ms - d->last_rx_ms > d->timeout_ms) return CL_DET_DOWN;
  if (now_ms >= d->next_ping_ms) {
    d->next_ping_ms = now_ms + d->heartbeat_ms;
    return CL_DET_PING;
  }
  return CL_DET_OK;
}

uint64_t cl_det_deadline(const cl_det *d) {
  uint64_t t = d->next_ping_ms;
  if (d->timeout_ms && d->last_rx_ms + d->timeout_ms + 1 < t) t = d->last_rx_ms + d->timeout_ms + 1;
  return t;
}

uint32_t cl_det_rtt_smooth(uint32_t old_us, uint32_t sample_us) {
  uint32_t r = old_us ? (uint32_t)(((uint64_t)old_us * 7 + sample_us) / 8) : sample_us;
  return r ? r : 1;
}
