#include "core/control.h"

#include <stdlib.h>
#include <string.h>


static void on_probe(uv_timer_t *t) {
  cl_control *c = t->data;
  uint64_t now = uv_hrtime() / 1000;
  if (c->probe_expected && now > c->probe_expected) {
    uint64_t late = now - c->probe_expected;
    if (late > atomic_load(&c->probe_max_late_us)) atomic_store(&c->probe_max_late_us, late);
  }
  atomic_fetch_add(&c->probe_ticks, 1);
  c->probe_expected = now + c->probe_interval * 1000;
}

static void on_cmd(cl_msg *list, void *ud) {
  cl_control *c = ud;
  while (list) {
    cl_msg *m = list;
    list = list->next;
    m->next = NULL;
    switch (m->type) {
    case CL_CMD_PROBE_START:
      c->probe_interval = m->num > 0 ? (uint64_t)m->num : 10;
      atomic_store(&c->probe_ticks, 0);
      atomic_store(&c->probe_max_late_us, 0);
      c->probe_expected = uv_hrtime() / 1000 + c->probe_interval * 1000;
      uv_timer_start(&c->probe, on_probe, c->probe_interval, c->probe_interval);
      free(m);
      break;
    case CL_CMD_PROBE_STOP:
      uv_timer_stop(&c->probe);
      free(m);
      break;
    default:
      if (c->hooks.command)
        c->hooks.command(c, m, c->hooks.ud);
      else
        free(m);
    }
  }
}

static void on_stop(uv_async_t *a) {
  cl_control *c = a->data;
  if (c->hooks.stop) c->hooks.stop(c, c->hooks.ud);
  uv_close((uv_handle_t *)&c->probe, NULL);
  cl_queue_close(&c->cmd);
  uv_close((uv_handle_t *)&c->stop_async, NULL);
}

static void thread_main(void *arg) {
  cl_control *c = arg;
  uv_timer_init(&c->loop, &c->probe);
  c->probe.data = c;
  uv_async_init(&c->loop, &c->stop_async, on_stop);
  c->stop_async.data = c;
  if (c->hooks.start) c->hooks.start(c, c->hooks.ud);
  uv_sem_post(&c->ready);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  /* handles closed by the stop hook may need one more turn for their callbacks */
  uv_run(&c->loop, UV_RUN_DEFAULT);
}

int cl_control_start(cl_control *c, uv_loop_t *evt_loop, const cl_control_hooks *hooks,
                     size_t cmd_cap, size_t evt_cap) {
  memset(c, 0, sizeof *c);
  if (hooks) c->hooks = *hooks;
  int r = uv_loop_init(&c->loop);
  if (r) return r;
  if ((r = uv_sem_init(&c->ready, 0))) return r;
  if (cl_queue_init(&c->evt, evt_loop, evt_cap, c->hooks.event, c->hooks.evt_ud)) return UV_ENOMEM;
  /* an idle event queue must not keep a plain script alive; a node refs its own handles */
  uv_unref((uv_handle_t *)&c->evt.async);
  /* the command queue's async belongs to the control loop, so it must be made there;
   * until the thread is ready nobody sends (cl_control_start waits on the semaphore) */
  if (cl_queue_init(&c->cmd, &c->loop, cmd_cap, on_cmd, c)) return UV_ENOMEM;
  if ((r = uv_thread_create(&c->thread, thread_main, c))) return r;
  uv_sem_wait(&c->ready);
  c->started = 1;
  return 0;
}

void cl_control_stop(cl_control *c) {
  if (!c->started) return;
  uv_async_send(&c->stop_async);
  uv_thread_join(&c->thread);
  uv_loop_close(&c->loop);
  uv_sem_destroy(&c->ready);
  cl_queue_close(&c->evt);
  c->started = 0;
}

int cl_control_send(cl_control *c, cl_msg *m, int mode) { return cl_queue_push(&c->cmd, m, mode); }
int cl_control_emit(cl_control *c, cl_msg *m, int mode) { return cl_queue_push(&c->evt, m, mode); }

void cl_control_lua_answered(cl_control *c, uint64_t seq, uint64_t ms) {
  /* the time first: a reader that sees the sequence number sees its time (or a later
   * answer's, which only makes the lag look longer by as much) */
  atomic_store_explicit(&c->lua_answer_ms, ms, memory_order_relaxed);
  atomic_store_explicit(&c->lua_answer_seq, seq, memory_order_release);
}

uint64_t cl_control_lua_answer(cl_control *c, uint64_t *ms) {
  uint64_t seq = atomic_load_explicit(&c->lua_answer_seq, memory_order_acquire);
  *ms = atomic_load_explicit(&c->lua_answer_ms, memory_order_relaxed);
  return seq;
}
