/* See el_driver.h. */
#include "node/el_driver.h"

#include <stdlib.h>
#include <string.h>

struct cl_eldrv_pending {
  cl_eldrv_pending *next;
  cl_el_input in;
  char peer_id[CL_EL_ID_MAX + 1], name[CL_EL_NAME_MAX + 1], address[CL_EL_ADDR_MAX + 1], tags[CL_EL_TAGS_MAX + 1];
  size_t len;
  uint8_t data[];
};

void cl_eldrv_init(cl_eldrv *d, cl_el *el, const cl_eldrv_io *io) {
  memset(d, 0, sizeof *d);
  d->el = el;
  d->io = io;
  d->lazy_ms = 1000;
  cl_el_effects_init(&d->fx);
}

/* RULE E14: a lazy state waits; written once lazy_deadline() is past, as the core's
 * state is then (cl_el_persisted): the state only moves on, and a state this node votes
 * in is written durably at once (which supersedes the wait) */
static void lazy_keep(cl_eldrv *d, const cl_el_effect *e, uint64_t now) {
  d->lazy_kind = e->persist;
  if (!d->lazy_pending) d->lazy_since = now;
  d->lazy_pending = 1;
}

/* lazy_ms after the change that made a lazy state wait, not at once: a failover brings
 * a follower a new term, a publication and its commit within about a second, and each
 * of them was written (and fsynced) by every follower at the moment the voting nodes'
 * own durable writes, on the same disks, were the failover's critical path (at 300
 * nodes on one disk, voters' fsyncs took 100-180 ms then; issue 18). The burst is now
 * one write, a second later. Writes stay at most one per lazy_ms: the last one was
 * made before this state began to wait. */
static uint64_t lazy_deadline(const cl_eldrv *d) {
  if (!d->lazy_pending) return UINT64_MAX;
  return d->lazy_since + d->lazy_ms;
}

static int lazy_write(cl_eldrv *d, uint64_t now) {
  uint8_t *buf;
  size_t len;
  if (cl_el_persisted(d->el, &buf, &len) != 0) {
    d->lazy_since = now; /* out of memory: it waits another lazy_ms */
    return 0;
  }
  d->lazy_pending = 0;
  d->lazy_count++;
  int rc = 0;
  if (!d->io->persist_lazy || d->io->persist_lazy(d->io->ud, d->lazy_kind, buf, len) != 0)
    if (d->io->persist(d->io->ud, d->lazy_kind, buf, len) != 0) d->stopped = 1, rc = -1;
  free(buf);
  return rc;
}

uint64_t cl_eldrv_next_deadline(const cl_eldrv *d) {
  uint64_t a = cl_el_next_deadline(d->el), b = lazy_deadline(d);
  return a < b ? a : b;
}

int cl_eldrv_flush(cl_eldrv *d) {
  if (d->stopped || !d->lazy_pending) return d->stopped ? -1 : 0;
  uint8_t *buf;
  size_t len;
  if (cl_el_persisted(d->el, &buf, &len) != 0) return -1;
  d->lazy_pending = 0; /* now and durably: a clean stop waits for it */
  int rc = d->io->persist(d->io->ud, d->lazy_kind, buf, len);
  free(buf);
  if (rc != 0) {
    d->stopped = 1;
    return -1;
  }
  return 0;
}

static void cpy(char *dst, size_t cap, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n >= cap) n = cap - 1;
  if (n) memcpy(dst, src, n);
  dst[n] = 0;
}

/* a copy of the input that owns its strings and bytes; requests never arrive from
 * inside a step (they come from commands), so their name lists are not copied */
static void enqueue(cl_eldrv *d, const cl_el_input *in) {
  size_t len = in->kind == CL_EL_IN_MESSAGE || in->kind == CL_EL_IN_REQUEST_UPDATE ? in->len : 0;
  cl_eldrv_pending *p = calloc(1, sizeof *p + len);
  if (!p) return;
  p->in = *in;
  cpy(p->peer_id, sizeof p->peer_id, in->peer_id ? in->peer_id : in->peer.id);
  cpy(p->name, sizeof p->name, in->peer.name);
  cpy(p->address, sizeof p->address, in->peer.address);
  cpy(p->tags, sizeof p->tags, in->peer.tags);
  p->in.peer_id = p->peer_id;
  p->in.peer.id = p->peer_id;
  p->in.peer.name = p->name;
  p->in.peer.address = p->address;
  p->in.peer.tags = p->tags;
  p->len = len;
  if (len) memcpy(p->data, in->data, len);
  p->in.data = len ? p->data : NULL;
  p->in.names = NULL;
  p->in.n_names = 0;
  if (d->tail)
    d->tail->next = p;
  else
    d->head = p;
  d->tail = p;
}

static int perform(cl_eldrv *d, uint64_t now) {
  const cl_eldrv_io *io = d->io;
#ifdef CL_MUTANT_SEND_BEFORE_PERSIST
  /* deliberately broken glue: messages (votes, acknowledgements) leave before the
   * state they promise is durable; the simulator must catch it */
  for (size_t i = 0; i < d->fx.n; i++)
    if (d->fx.v[i].kind == CL_EL_FX_SEND) io->send(io->ud, d->fx.v[i].to, d->fx.v[i].data, d->fx.v[i].len);
#endif
  for (size_t i = 0; i < d->fx.n; i++) {
    const cl_el_effect *e = &d->fx.v[i];
    switch (e->kind) {
    case CL_EL_FX_SEND:
#ifndef CL_MUTANT_SEND_BEFORE_PERSIST
      io->send(io->ud, e->to, e->data, e->len);
#endif
      break;
    case CL_EL_FX_PERSIST:
      if (e->lazy) {
        lazy_keep(d, e, now);
        break;
      }
      d->lazy_pending = 0; /* superseded: this one carries the whole file, newer */
      if (io->persist(io->ud, e->persist, e->data, e->len) != 0) {
        d->stopped = 1; /* carrying on could lose a vote or an accepted state */
        return -1;
      }
      break;
    case CL_EL_FX_EVENT:
      io->event(io->ud, e);
      break;
    case CL_EL_FX_LOG:
      io->log(io->ud, e->level, e->msg);
      break;
    case CL_EL_FX_COMPLETE:
      io->complete(io->ud, e->req_id, e->code, e->msg, e->version);
      break;
    }
  }
  return 0;
}

static int step(cl_eldrv *d, const cl_el_input *in) {
  d->in_step = 1;
  cl_el_effects_reset(&d->fx);
  uint64_t now = d->io->now_ms(d->io->ud);
  cl_el_step(d->el, now, in, &d->fx);
  int rc = perform(d, now);
  d->in_step = 0;
  return rc;
}

int cl_eldrv_input(cl_eldrv *d, const cl_el_input *in) {
  if (d->stopped) return -1;
  if (d->in_step) {
    enqueue(d, in);
    return 0;
  }
  int rc = step(d, in);
  while (d->head) {
    cl_eldrv_pending *p = d->head;
    d->head = p->next;
    if (!d->head) d->tail = NULL;
    if (rc == 0) rc = step(d, &p->in);
    free(p);
  }
  /* after the step's sends: a lazy write that is due (RULE E14) */
  if (rc == 0 && d->lazy_pending) {
    uint64_t now = d->io->now_ms(d->io->ud);
    if (now >= lazy_deadline(d)) rc = lazy_write(d, now);
  }
  if (rc == 0) d->io->rearm(d->io->ud, cl_eldrv_next_deadline(d));
  return rc;
}

void cl_eldrv_free(cl_eldrv *d) {
  while (d->head) {
    cl_eldrv_pending *p = d->head;
    d->head = p->next;
    free(p);
  }
  d->tail = NULL;
  d->lazy_pending = 0;
  cl_el_effects_free(&d->fx);
  cl_el_free(d->el);
  d->el = NULL;
}
