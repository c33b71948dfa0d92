/* The C modules Lua requires, as lua_host.c preloads them, and what the rest of the
 * runtime reaches in them. Declared once here, so the compiler checks every user
 * against the definition (issue 16: no hand-written declarations). */
#ifndef CL_LUA_MODULES_H
#define CL_LUA_MODULES_H
#include <lua.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/queue.h"

int luaopen_clusterlua_core(lua_State *L);       /* lua_core.c */
int luaopen_clusterlua_dns(lua_State *L);        /* lua_dns.c */
int luaopen_clusterlua_cnode(lua_State *L);      /* lua_node.c */
int luaopen_clusterlua_cdataplane(lua_State *L); /* lua_dataplane.c */
int luaopen_clusterlua_crypto(lua_State *L);     /* lua_crypto.c */

/* lua_node.c: the control loop's events, delivered on the Lua loop (the event hook of
 * cl_control_hooks) */
void cl_lua_node_events(cl_msg *list, void *ud);

#endif
