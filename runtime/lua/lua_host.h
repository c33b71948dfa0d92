/* The Lua state on the Lua loop: module paths, embedded luv, protected calls. */
#ifndef CL_LUA_HOST_H
#define CL_LUA_HOST_H
#include <lua.h>
#include <uv.h>

/* cl_lua_pcall and the per-state context are in lua_call.h */
#include "lua/lua_call.h"

lua_State *cl_lua_new(uv_loop_t *loop, const char *exe_path);
void cl_lua_close(lua_State *L);
/* The control loop the state's modules talk to and the node on it (NULL once it
 * stopped). */
struct cl_control;
struct cl_node;
struct cl_options;
/* The command line, for clusterlua.c.core's options() (o must outlive the state). */
void cl_lua_set_options(lua_State *L, const struct cl_options *o);
void cl_lua_set_control(lua_State *L, struct cl_control *c, struct cl_node *n);

/* Set by os.exit: the code to exit with once the loops are closed. -1 if not requested. */
int cl_lua_exit_requested(lua_State *L);

/* Registers a C module under package.preload[name]. */
void cl_lua_preload(lua_State *L, const char *name, lua_CFunction open);

#endif
