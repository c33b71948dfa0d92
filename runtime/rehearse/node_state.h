/* The Lua side of each simulated node: one LuaJIT state per node process, running the
 * user's unchanged topology, strategies and hooks through lua/clusterlua/rehearse/node.lua,
 * which puts the simulated seams in place (the virtual clock, the recorded commands,
 * the scripted DNS) before clusterlua.start. This file creates and closes those
 * states, hands them the world's messages in the shapes clusterlua.c.node's handler
 * gets, and provides `clusterlua.c.simnode`, the simulated clusterlua.c.node (its
 * calls go to world.c's rh_node_*).
 *
 * A node's Lua asks the director (the state that runs `clusterlua sim`) for what the
 * scenario scripts (a command's exit status, a DNS answer) through `ask`, a function of
 * the director's state called synchronously: all the states live on the main thread. */
#ifndef CL_RH_NODE_STATE_H
#define CL_RH_NODE_STATE_H
#include <lua.h>

#include "rehearse/world.h"

typedef struct rh_lua_host rh_lua_host;

/* D: the director's state; ask_ref: a registry reference (in D) to
 * ask(node_index, kind, a, b) -> number?, string?; boot_opts_ref: a registry reference
 * (in D) to a table of strings and numbers copied into each node's boot options */
rh_lua_host *rh_lua_host_new(lua_State *D, int ask_ref, const char *path, const char *cpath, const char *boot_json);
void rh_lua_host_free(rh_lua_host *h);
rh_lua_ops rh_lua_host_ops(rh_lua_host *h);

#endif
