/* Calling into Lua from C, and the per-state context of the bindings.
 *
 * Every Lua state the runtime makes has one cl_lua_ctx (in its registry), where the
 * bindings keep what would otherwise be file statics, as luv keeps its luv_ctx_t: the
 * loop, os.exit's code, where modules were found, and each C module's handlers. */
#ifndef CL_LUA_CALL_H
#define CL_LUA_CALL_H
#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct cl_lua_ctx {
  lua_State *L;
  uv_loop_t *loop;
  int exit_code;     /* set by os.exit: the code to exit with once the loops are closed; -1 if not */
  char libdir[4096]; /* the lua/ directory modules were found in, or "" */
  /* the control loop the bindings send commands to, while it runs (main.c sets it
   * through cl_lua_set_control; NULL: not running) */
  struct cl_control *control;
  struct cl_node *node; /* the node on it (the same way) */
  const struct cl_options *opts; /* the command line, as main.c parsed it (NULL: none) */
  /* clusterlua.c.node */
  int node_handler; /* registry ref of the event handler, LUA_NOREF */
  uint32_t max_frame;
  int64_t send_queue_max;
  /* clusterlua.c.dataplane: the state's data plane (made on first use, shut down by
   * cl_lua_dp_shutdown) */
  struct cl_dp *dp;
  int dp_on_msg, dp_on_closed; /* registry refs, LUA_NOREF */
} cl_lua_ctx;

/* Made by cl_lua_new; lives as long as the state. */
cl_lua_ctx *cl_lua_ctx_new(lua_State *L, uv_loop_t *loop);
cl_lua_ctx *cl_lua_ctx_get(lua_State *L);

/* lua_pcall with a traceback. On error: reports it (log line with traceback, counted)
 * unless it is the os.exit sentinel, in which case the loop is stopped.
 * Returns the lua_pcall status; on error nothing is left on the stack. */
int cl_lua_pcall(lua_State *L, int nargs, int nresults, const char *what);

/* An error not raised by Lua but worth counting the same way (hook aborts etc.) */
void cl_lua_report(const char *what, const char *msg);
uint64_t cl_lua_error_count(void);

/* luv's callback hook (every uv callback into Lua goes through it), and os.exit */
int cl_lua_luv_pcall(lua_State *L, int nargs, int nresults, int flags);
int cl_lua_os_exit(lua_State *L);

#endif
