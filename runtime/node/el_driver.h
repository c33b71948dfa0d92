/* The election driver: steps the election core and performs its effects, in order,
 * through a small interface (clock, transport, disk, events, logs, timer), so the same
 * code runs in the node (node_election.c, on the control loop) and in the simulator
 * (spec/sim/sim.c, on virtual time).
 *
 * Its rules (docs/design.md):
 *  - effects are performed in the order the core gave them, and a PERSIST is durable
 *    (the io's persist returned 0) before any effect after it; a failed persist stops
 *    the driver: nothing after it is performed, and every later input is ignored;
 *  - an input that arrives while effects are being performed (a transport callback
 *    fired from inside send) is queued and stepped after the current step, so the
 *    effects of two inputs never interleave;
 *  - a lazy PERSIST (RULE E14: a node whose acknowledgement counts toward no commit) is
 *    not written in its step and carries no bytes: lazy_ms (1 s) after the change that
 *    made it wait, the core's state as it is then (cl_el_persisted) is written (durably,
 *    through io->persist_lazy or io->persist), so at most once per lazy_ms and a burst of
 *    changes once, encoded once, after the step's sends; a durable PERSIST supersedes a
 *    waiting one (each is the whole file); a crash loses it, which is what E14 allows.
 *    cl_eldrv_flush writes it at a clean stop.
 * Pure C: no I/O, no clock, no globals of its own. */
#ifndef CL_EL_DRIVER_H
#define CL_EL_DRIVER_H
#include <stddef.h>
#include <stdint.h>

#include "election/election.h"

typedef struct cl_eldrv_io {
  void *ud;
  uint64_t (*now_ms)(void *ud);
  void (*send)(void *ud, const char *peer_id, const uint8_t *data, size_t len);
  /* durable (write, fsync, rename, fsync dir) before it returns 0; non-zero: the write
   * failed and the node must stop */
  int (*persist)(void *ud, cl_el_persist_kind kind, const uint8_t *data, size_t len);
  /* optional: a lazy write (RULE E14), due now; the io copies the bytes and may write
   * them later, off the caller's thread, but never over a newer persist; non-zero: it
   * cannot (then persist is called). NULL: persist writes lazy states too. */
  int (*persist_lazy)(void *ud, cl_el_persist_kind kind, const uint8_t *data, size_t len);
  /* CL_EL_FX_EVENT, CL_EL_FX_LOG and CL_EL_FX_COMPLETE effects, as the core gave them */
  void (*event)(void *ud, const cl_el_effect *e);
  void (*log)(void *ud, int level, const char *msg);
  void (*complete)(void *ud, uint64_t req_id, const char *code, const char *msg, uint64_t version);
  /* the core's next deadline (UINT64_MAX: none): call cl_eldrv_input with a TICK then */
  void (*rearm)(void *ud, uint64_t deadline_ms);
} cl_eldrv_io;

typedef struct cl_eldrv_pending cl_eldrv_pending;

typedef struct cl_eldrv {
  cl_el *el;
  cl_el_effects fx;
  const cl_eldrv_io *io;
  int in_step, stopped;
  cl_eldrv_pending *head, *tail;
  /* the lazy write waiting (RULE E14) */
  cl_el_persist_kind lazy_kind;
  int lazy_pending;
  uint64_t lazy_since; /* when the waiting lazy state began to wait */
  uint32_t lazy_ms;    /* a lazy state is written this many ms after it began to wait (1000) */
  uint64_t lazy_count; /* lazy writes made */
} cl_eldrv;

/* Takes ownership of el (freed by cl_eldrv_free). */
void cl_eldrv_init(cl_eldrv *d, cl_el *el, const cl_eldrv_io *io);
/* Steps the core with in (copied if it must wait), then anything queued meanwhile, then
 * rearms. Returns -1 once a persist failed (the driver is stopped), else 0. */
int cl_eldrv_input(cl_eldrv *d, const cl_el_input *in);
/* The driver's next deadline: the core's, or a lazy write's if sooner (what rearm is
 * given). */
uint64_t cl_eldrv_next_deadline(const cl_eldrv *d);
/* Writes a waiting lazy state now (a clean stop); -1 if the write failed. */
int cl_eldrv_flush(cl_eldrv *d);
/* Frees without writing a waiting lazy state (as a crash would lose it). */
void cl_eldrv_free(cl_eldrv *d);

#endif
