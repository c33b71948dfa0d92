/* The state's data plane as lua_node.c and main.c use it. */
#ifndef CL_LUA_DATAPLANE_H
#define CL_LUA_DATAPLANE_H
#include <lua.h>
#include <stdint.h>

#include "transport/transport.h"

/* Adopts dc (taking its fd) and pushes the connection as a light userdata, or nil
 * (reported) if it could not be adopted. Returns 1 when adopted. */
int cl_lua_dp_adopt(lua_State *L, const cl_data_conn *dc, uint32_t max_frame, size_t queue_max);
/* The keyring changed (keys one a line): see cl_dp_set_keyring. Nothing without a data
 * plane yet. */
void cl_lua_dp_set_keyring(lua_State *L, const uint8_t *text, size_t len);
/* Closes the state's data connections and handles (their memory goes in their close
 * callbacks: run the loop after). */
void cl_lua_dp_shutdown(lua_State *L);

#endif
