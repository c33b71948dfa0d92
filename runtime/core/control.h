/* The control loop: its own thread and libuv loop, where everything that must not
 * wait for Lua lives (transport, failure detection, election, admin answers).
 * It talks to the Lua loop only through two bounded queues. */
#ifndef CL_CONTROL_H
#define CL_CONTROL_H
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "core/queue.h"

/* Commands (Lua -> control) and events (control -> Lua). Subsystems take ranges. */
enum {
  CL_CMD_PROBE_START = 1, /* num = interval ms */
  CL_CMD_PROBE_STOP = 2,
  CL_CMD_NODE_BASE = 100, /* node.c: 100..199 */
  CL_EVT_NODE_BASE = 1100,
};

typedef struct cl_control cl_control;

typedef struct {
  /* run on the control thread */
  void (*start)(cl_control *c, void *ud);
  void (*stop)(cl_control *c, void *ud); /* close handles; the loop then runs dry */
  void (*command)(cl_control *c, cl_msg *m, void *ud); /* takes ownership of m */
  /* run on the Lua thread */
  void (*event)(cl_msg *list, void *ud); /* takes ownership of the list */
  void *ud;     /* start, stop, command's (the node) */
  void *evt_ud; /* event's (the Lua state) */
} cl_control_hooks;

struct cl_control {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_sem_t ready;
  uv_async_t stop_async;
  cl_queue cmd; /* consumed on the control loop */
  cl_queue evt; /* consumed on the Lua loop */
  cl_control_hooks hooks;
  int started;
  /* probe: measures how late a control-loop timer fires, to prove Lua never delays it */
  uv_timer_t probe;
  uint64_t probe_interval, probe_expected;
  _Atomic uint64_t probe_ticks, probe_max_late_us;
  /* the Lua loop's answer to the control loop's last Lua-lag ping (node/lua_lag.c): read
   * when the control loop next looks, so that answering wakes nobody */
  _Atomic uint64_t lua_answer_seq, lua_answer_ms;
};

/* Starts the control thread. evt_loop is the Lua loop. Returns 0 or a libuv error. */
int cl_control_start(cl_control *c, uv_loop_t *evt_loop, const cl_control_hooks *hooks,
                     size_t cmd_cap, size_t evt_cap);
/* Stops and joins the thread, then closes the event queue (on the Lua thread). */
void cl_control_stop(cl_control *c);
/* Lua thread: send a command. mode as cl_queue_push. */
int cl_control_send(cl_control *c, cl_msg *m, int mode);
/* Control thread: emit an event to Lua. */
int cl_control_emit(cl_control *c, cl_msg *m, int mode);
/* Lua thread: the Lua loop answered ping seq at ms (its loop time, the same monotonic
 * clock as the control loop's). Wakes nobody. */
void cl_control_lua_answered(cl_control *c, uint64_t seq, uint64_t ms);
/* Control thread: the last answer's sequence number (0: none yet), and its time in *ms. */
uint64_t cl_control_lua_answer(cl_control *c, uint64_t *ms);

#endif
