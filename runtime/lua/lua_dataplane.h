/* Used by lua_node.c when a peer comes up with a data connection. */
#ifndef CL_LUA_DATAPLANE_H
#define CL_LUA_DATAPLANE_H
#include <lua.h>

#include "transport/transport.h"

/* Adopts dc (taking its fd) and pushes the connection as a light userdata, or nil
 * (reported) if it could not be adopted. Returns 1 when adopted. */
int cl_lua_dp_adopt(lua_State *L, const cl_data_conn *dc, uint32_t max_frame, size_t queue_max);

#endif
