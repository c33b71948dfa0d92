#include "core/queue.h"

#include <stdlib.h>
#include <string.h>

cl_msg *cl_msg_new(uint32_t type, const char *name, const void *body, size_t body_len) {
  size_t nl = name ? strlen(name) : 0;
  cl_msg *m = malloc(sizeof *m + nl + 1 + body_len + 1);
  if (!m) return NULL;
  memset(m, 0, sizeof *m);
  m->type = type;
  m->name_len = (uint32_t)nl;
  m->body_len = (uint32_t)body_len;
  if (nl) memcpy(m->data, name, nl);
  m->data[nl] = 0;
  if (body_len && body) memcpy(m->data + nl + 1, body, body_len);
  m->data[nl + 1 + body_len] = 0;
  return m;
}

void cl_msg_free_list(cl_msg *m) {
  while (m) {
    cl_msg *n = m->next;
    free(m);
    m = n;
  }
}

static void on_async(uv_async_t *a) { cl_queue_drain(a->data); }

int cl_queue_init(cl_queue *q, uv_loop_t *consumer, size_t cap, cl_queue_cb cb, void *ud) {
  memset(q, 0, sizeof *q);
  q->cap = cap;
  q->cb = cb;
  q->ud = ud;
  if (uv_mutex_init(&q->mu)) return -1;
  if (uv_async_init(consumer, &q->async, on_async)) {
    uv_mutex_destroy(&q->mu);
    return -1;
  }
  q->async.data = q;
  return 0;
}

int cl_queue_push(cl_queue *q, cl_msg *m, int mode) {
  m->next = NULL;
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return -1;
  }
  if (q->count >= q->cap) {
    if (mode == CL_Q_NORMAL) {
      q->dropped++;
      uv_mutex_unlock(&q->mu);
      return -1;
    }
    if (mode == CL_Q_COALESCE && m->name_len) {
      cl_msg *last = NULL;
      for (cl_msg *p = q->head; p; p = p->next)
        if (p->name_len == m->name_len && memcmp(p->data, m->data, m->name_len) == 0) last = p;
      if (last && last->type == m->type) {
        last->coalesced += 1 + m->coalesced;
        q->coalesced++;
        uv_mutex_unlock(&q->mu);
        free(m);
        return 0;
      }
    }
  }
  if (q->tail)
    q->tail->next = m;
  else
    q->head = m;
  q->tail = m;
  q->count++;
  uv_mutex_unlock(&q->mu);
  uv_async_send(&q->async);
  return 0;
}

size_t cl_queue_len(cl_queue *q) {
  uv_mutex_lock(&q->mu);
  size_t n = q->count;
  uv_mutex_unlock(&q->mu);
  return n;
}

void cl_queue_drain(cl_queue *q) {
  uv_mutex_lock(&q->mu);
  cl_msg *list = q->head;
  q->head = q->tail = NULL;
  q->count = 0;
  uv_mutex_unlock(&q->mu);
  if (list) q->cb(list, q->ud);
}

static void on_closed(uv_handle_t *h) {
  cl_queue *q = h->data;
  uv_mutex_destroy(&q->mu);
}

void cl_queue_close(cl_queue *q) {
  uv_mutex_lock(&q->mu);
  q->closed = 1;
  cl_msg *list = q->head;
  q->head = q->tail = NULL;
  q->count = 0;
  uv_mutex_unlock(&q->mu);
  cl_msg_free_list(list);
  uv_close((uv_handle_t *)&q->async, on_closed);
}
