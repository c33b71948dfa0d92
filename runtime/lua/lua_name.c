/* clusterlua.c.name: node names, parsed and matched by the runtime's one parser
 * (core/name.c), so Lua accepts and refuses exactly the names the transport does
 * (clusterlua.names is its Lua face). Needs nothing else of the runtime, which is why
 * it is a module of its own: the Lua fuzz targets load it too. */
#include <lauxlib.h>
#include <lua.h>

#include "core/name.h"
#include "lua/lua_modules.h"

/* parse(s) -> {short=, host=, port=, full=} | nil, "EINVAL: bad node name ...", "EINVAL" */
static int l_node_name_parse(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  cl_node_name nn;
  char err[200];
  if (cl_node_name_parse(s, &nn, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "EINVAL: %s", err);
    lua_pushliteral(L, "EINVAL");
    return 3;
  }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, nn.name);
  lua_setfield(L, -2, "short");
  lua_pushstring(L, nn.host);
  lua_setfield(L, -2, "host");
  lua_pushinteger(L, nn.port);
  lua_setfield(L, -2, "port");
  lua_pushstring(L, nn.full);
  lua_setfield(L, -2, "full");
  return 1;
}

/* matches(given, full) -> boolean: the short-name rule of core/name.h */
static int l_node_name_matches(lua_State *L) {
  lua_pushboolean(L, cl_node_name_matches(luaL_checkstring(L, 1), luaL_checkstring(L, 2)));
  return 1;
}

int luaopen_clusterlua_c_name(lua_State *L) {
  static const luaL_Reg fns[] = {{"parse", l_node_name_parse}, {"matches", l_node_name_matches}, {NULL, NULL}};
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  return 1;
}
