#include "core/lua_stats.h"

cl_lua_stats cl_lua_stats_g;
