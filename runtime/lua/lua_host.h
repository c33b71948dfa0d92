/* The Lua state on the Lua loop: module paths, embedded luv, protected calls. */
#ifndef CL_LUA_HOST_H
#define CL_LUA_HOST_H
#include <lua.h>
#include <uv.h>

lua_State *cl_lua_new(uv_loop_t *loop, const char *exe_path);
void cl_lua_close(lua_State *L);

/* lua_pcall with a traceback. On error: reports it (log line with traceback, counted)
 * unless it is the os.exit sentinel, in which case the loop is stopped.
 * Returns the lua_pcall status; on error nothing is left on the stack. */
int cl_lua_pcall(lua_State *L, int nargs, int nresults, const char *what);

/* An error not raised by Lua but worth counting the same way (hook aborts etc.) */
void cl_lua_report(const char *what, const char *msg);
uint64_t cl_lua_error_count(void);

/* Set by os.exit: the code to exit with once the loops are closed. -1 if not requested. */
int cl_lua_exit_requested(void);

/* Registers a C module under package.preload[name]. */
void cl_lua_preload(lua_State *L, const char *name, lua_CFunction open);

/* The lua/ directory modules were found in (dev checkout or install), or "" */
const char *cl_lua_libdir(void);

#endif
