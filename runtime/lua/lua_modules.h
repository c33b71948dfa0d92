/* The C modules Lua requires, one per file of this folder. lua_host.c registers each in
 * package.preload under the name its luaopen_ function spells: every C module is
 * clusterlua.c.NAME, so a require says at a glance that the module is C, and the Lua
 * modules keep the plain clusterlua.NAME names. */
#ifndef CL_LUA_MODULES_H
#define CL_LUA_MODULES_H
#include <lua.h>

#include "core/queue.h"

int luaopen_clusterlua_c_core(lua_State *L);      /* lua_core.c: clock, logging, errors, options */
int luaopen_clusterlua_c_node(lua_State *L);      /* lua_node.c: commands to the control loop */
int luaopen_clusterlua_c_dns(lua_State *L);       /* lua_dns.c: c-ares queries */
int luaopen_clusterlua_c_crypto(lua_State *L);    /* lua_crypto.c: cookie-derived keys */
int luaopen_clusterlua_c_dataplane(lua_State *L); /* lua_dataplane.c: data connections */
int luaopen_clusterlua_c_name(lua_State *L);      /* lua_name.c: node names (core/name.c) */
int luaopen_clusterlua_c_rehearse(lua_State *L);  /* lua_rehearse.c: the rehearsal's world (rehearse/) */

/* lua_node.c: the control loop's events, delivered on the Lua loop (the event hook of
 * cl_control_hooks) */
void cl_lua_node_events(cl_msg *list, void *ud);

#endif
