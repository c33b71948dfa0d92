/* See detector.h. */
#include "transport/detector.h"

void cl_det_up(cl_det *d, uint64_t now_ms, uint32_t heartbeat_ms, uint32_t timeout_ms) {
  d->grace_ms = 0;
  d->last_rx_ms = now_ms;
  d->last_tx_ms = 0;
  d->last_beat_ms = 0;
  d->heartbeat_ms = heartbeat_ms;
  d->timeout_ms = timeout_ms;
}

void cl_det_heard(cl_det *d, uint64_t now_ms) {
  if (now_ms > d->last_rx_ms) d->last_rx_ms = now_ms;
}

void cl_det_sent(cl_det *d, uint64_t now_ms) {
  if (now_ms > d->last_tx_ms) d->last_tx_ms = now_ms;
}

/* a quarter of a heartbeat early still counts as due */
static uint64_t slack(const cl_det *d) { return d->heartbeat_ms / 4; }

uint64_t cl_det_down_at(const cl_det *d) {
  return d->timeout_ms ? d->last_rx_ms + d->timeout_ms + d->grace_ms + 1 : UINT64_MAX;
}

uint32_t cl_det_tick(cl_det_awareness *a, uint64_t due_ms, uint64_t now_ms, uint32_t heartbeat_ms,
                     uint32_t timeout_ms) {
  if (now_ms > due_ms + heartbeat_ms / 2) {
    if (a->score < CL_DET_AWARENESS_MAX) a->score++;
    a->moved_ms = now_ms;
  } else if (a->score > 0 && now_ms >= a->moved_ms + 1000) {
    a->score--;
    a->moved_ms = now_ms;
  }
  return timeout_ms * a->score;
}

cl_det_verdict cl_det_check(cl_det *d, uint64_t now_ms) {
  if (now_ms >= cl_det_down_at(d)) return CL_DET_DOWN;
  if (now_ms + slack(d) >= d->last_tx_ms + d->heartbeat_ms || now_ms >= d->last_beat_ms + CL_DET_BEAT_MAX_MS) {
    d->last_tx_ms = d->last_beat_ms = now_ms;
    return CL_DET_PING;
  }
  return CL_DET_OK;
}

uint64_t cl_det_deadline(const cl_det *d) {
  uint64_t t = d->last_tx_ms + d->heartbeat_ms - slack(d);
  if (d->last_beat_ms + CL_DET_BEAT_MAX_MS < t) t = d->last_beat_ms + CL_DET_BEAT_MAX_MS;
  uint64_t down = cl_det_down_at(d);
  return down < t ? down : t;
}

uint32_t cl_det_rtt_smooth(uint32_t old_us, uint32_t sample_us) {
  uint32_t r = old_us ? (uint32_t)(((uint64_t)old_us * 7 + sample_us) / 8) : sample_us;
  return r ? r : 1;
}
