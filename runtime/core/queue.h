/* Bounded multi-producer queue between the two loops, woken with uv_async.
 * The consumer gets every pending message in FIFO order in one callback. */
#ifndef CL_QUEUE_H
#define CL_QUEUE_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct cl_msg {
  struct cl_msg *next;
  uint32_t type;
  uint32_t coalesced; /* how many identical events were folded into this one */
  uint64_t id;        /* request id, or free use */
  int64_t num;        /* free use per type */
  uint32_t name_len;  /* data[0..name_len) is a node name, NUL-terminated, or empty */
  uint32_t body_len;  /* data[name_len+1 ..] is the body */
  uint8_t data[];
} cl_msg;

cl_msg *cl_msg_new(uint32_t type, const char *name, const void *body, size_t body_len);
static inline const char *cl_msg_name(const cl_msg *m) { return (const char *)m->data; }
static inline const uint8_t *cl_msg_body(const cl_msg *m) { return m->data + m->name_len + 1; }
static inline uint8_t *cl_msg_body_mut(cl_msg *m) { return m->data + m->name_len + 1; }
void cl_msg_free_list(cl_msg *m);

typedef void (*cl_queue_cb)(cl_msg *list, void *ud);

typedef struct cl_queue {
  uv_mutex_t mu;
  uv_async_t async;
  cl_msg *head, *tail;
  size_t count, cap;
  uint64_t dropped, coalesced;
  cl_queue_cb cb;
  void *ud;
  int closed;
} cl_queue;

enum {
  CL_Q_NORMAL = 0,   /* refused (-1) when full */
  CL_Q_FORCE = 1,    /* always queued: for events that must never be lost */
  CL_Q_COALESCE = 2, /* when full: folded into the newest pending message for the same
                        name if it has the same type, else queued anyway */
};

/* Must be called on the consumer's loop thread (uv_async_init is not thread-safe). */
int cl_queue_init(cl_queue *q, uv_loop_t *consumer, size_t cap, cl_queue_cb cb, void *ud);
/* Any thread. Takes ownership of m on success (0); on refusal returns -1 and the caller
 * still owns m. */
int cl_queue_push(cl_queue *q, cl_msg *m, int mode);
size_t cl_queue_len(cl_queue *q);
/* Consumer thread: deliver whatever is pending now (also used before shutdown). */
void cl_queue_drain(cl_queue *q);
/* Consumer thread: frees pending messages and closes the async handle. */
void cl_queue_close(cl_queue *q);

#endif
