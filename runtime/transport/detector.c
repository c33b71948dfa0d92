/* See detector.h. */
#include "transport/detector.h"

void cl_det_up(cl_det *d, uint64_t now_ms, uint32_t heartbeat_ms, uint32_t timeout_ms) {
  d->grace_ms = 0;
  d->last_rx_ms = now_ms;
  d->last_tx_ms = 0;
  d->last_beat_ms = 0;
  d->heartbeat_ms = d->beat_ms = heartbeat_ms;
  d->timeout_ms = timeout_ms;
  d->watching = d->beating = 0;
  d->grid = 0;
  d->watch_from_ms = now_ms;
  d->suspected = d->vouched = 0;
}

void cl_det_watch(cl_det *d, uint64_t now_ms, int on) {
  if (on && !d->watching) d->watch_from_ms = now_ms;
  d->watching = on != 0;
  d->suspected = d->vouched = 0;
}

void cl_det_beat_for(cl_det *d, int on, uint32_t beat_ms) {
  if (on && !d->beating) d->last_tx_ms = d->last_beat_ms = 0; /* the watcher hears from us at once */
  d->beating = on != 0;
  if (on && beat_ms) d->beat_ms = beat_ms;
}

void cl_det_vouched(cl_det *d) {
  if (d->suspected) d->vouched = 1;
}

void cl_det_heard(cl_det *d, uint64_t now_ms) {
  if (now_ms > d->last_rx_ms) d->last_rx_ms = now_ms;
  d->suspected = d->vouched = 0;
}

void cl_det_sent(cl_det *d, uint64_t now_ms) {
  if (now_ms > d->last_tx_ms) d->last_tx_ms = now_ms;
}

/* a quarter of a heartbeat early still counts as due; on a grid (detector.h), anything
 * but a frame sent in the last quarter heartbeat */
static uint64_t slack(const cl_det *d) { return d->grid ? d->beat_ms * 3 / 4 : d->beat_ms / 4; }

/* the silence counts from the last frame, or from when we started watching */
static uint64_t silent_from(const cl_det *d) {
  return d->last_rx_ms > d->watch_from_ms ? d->last_rx_ms : d->watch_from_ms;
}

uint64_t cl_det_down_at(const cl_det *d) {
  return d->timeout_ms && d->watching ? silent_from(d) + d->timeout_ms + d->grace_ms + 1 : UINT64_MAX;
}

uint64_t cl_det_suspect_at(const cl_det *d) {
  if (!d->timeout_ms || !d->watching || d->suspected) return UINT64_MAX;
  /* half the timeout, but never before a beat and a half went missing: with beats every
   * half timeout (heartbeat_ms = timeout_ms / 2, the default) half a timeout is exactly
   * one beat's gap, and every beat a little late would be probed. Never past three
   * quarters of the timeout, which a heartbeat above half of it (refused by the
   * transport) would reach: the probes need the rest. */
  uint64_t to = (uint64_t)d->timeout_ms + d->grace_ms;
  uint64_t after = to / 2, beats = (uint64_t)d->heartbeat_ms * 3 / 2 + d->grace_ms / 2;
  if (beats > to * 3 / 4) beats = to * 3 / 4;
  return silent_from(d) + (beats > after ? beats : after);
}

uint32_t cl_det_late_ms(uint32_t heartbeat_ms) {
  return heartbeat_ms / 2 < CL_DET_LATE_MS ? heartbeat_ms / 2 : CL_DET_LATE_MS;
}

uint32_t cl_det_tick(cl_det_awareness *a, uint64_t due_ms, uint64_t now_ms, uint32_t heartbeat_ms,
                     uint32_t timeout_ms) {
  if (now_ms > due_ms + cl_det_late_ms(heartbeat_ms)) {
    if (a->score < CL_DET_AWARENESS_MAX) a->score++;
    a->moved_ms = now_ms;
  } else if (a->score > 0 && now_ms >= a->moved_ms + 1000) {
    a->score--;
    a->moved_ms = now_ms;
  }
  return timeout_ms * a->score;
}

/* the next beat this side owes (UINT64_MAX: none). The round trip's beat (at least every
 * CL_DET_BEAT_MAX_MS) takes the grid's slack too, so on a grid of a second it goes out
 * at every tick rather than every other one when the tick came a millisecond early,
 * and on a grid of 500 ms at every other tick: with the tick's beats, in the same
 * wake-up of every node (issue 18) */
static uint64_t beat_at(const cl_det *d) {
  uint64_t t = UINT64_MAX;
  if (d->beating) t = d->last_tx_ms + d->beat_ms - slack(d);
  if (d->beating || d->watching) {
    uint64_t early = d->grid ? slack(d) : 0;
    if (early > CL_DET_BEAT_MAX_MS * 3 / 4) early = CL_DET_BEAT_MAX_MS * 3 / 4;
    if (d->last_beat_ms + CL_DET_BEAT_MAX_MS - early < t) t = d->last_beat_ms + CL_DET_BEAT_MAX_MS - early;
  }
  return t;
}

cl_det_verdict cl_det_check(cl_det *d, uint64_t now_ms) {
  if (now_ms >= cl_det_down_at(d)) return d->vouched ? CL_DET_CUT : CL_DET_DOWN;
  if (now_ms >= cl_det_suspect_at(d)) {
    d->suspected = 1;
    return CL_DET_SUSPECT;
  }
  if (now_ms >= beat_at(d)) {
    d->last_tx_ms = d->last_beat_ms = now_ms;
    return CL_DET_PING;
  }
  return CL_DET_OK;
}

uint64_t cl_det_deadline(const cl_det *d) {
  uint64_t t = beat_at(d), s = cl_det_suspect_at(d), down = cl_det_down_at(d);
  if (s < t) t = s;
  return down < t ? down : t;
}

uint32_t cl_det_heartbeat_for(uint32_t heartbeat_ms, uint32_t timeout_ms) {
  if (heartbeat_ms) return heartbeat_ms;
  if (!timeout_ms || CL_DET_DEFAULT_HEARTBEAT_MS * 2 <= timeout_ms) return CL_DET_DEFAULT_HEARTBEAT_MS;
  return timeout_ms / 2 ? timeout_ms / 2 : 1;
}

uint32_t cl_det_fresh_ms(uint32_t heartbeat_ms, uint32_t timeout_ms) {
  uint64_t half = timeout_ms / 2, beats = (uint64_t)heartbeat_ms * 3 / 2;
  uint64_t rest = timeout_ms > beats ? timeout_ms - beats : 0;
  return (uint32_t)(rest < half ? rest : half);
}

uint32_t cl_det_rtt_smooth(uint32_t old_us, uint32_t sample_us) {
  uint32_t r = old_us ? (uint32_t)(((uint64_t)old_us * 7 + sample_us) / 8) : sample_us;
  return r ? r : 1;
}
