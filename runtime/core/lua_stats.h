/* Counters the Lua loop bumps and the control loop reads (for /metrics and
 * /_cluster/health): here, below both, so neither links the other. */
#ifndef CL_LUA_STATS_H
#define CL_LUA_STATS_H
#include <stdint.h>

typedef struct cl_lua_stats {
  _Atomic uint64_t errors;      /* Lua errors raised by callbacks and hooks */
  _Atomic uint64_t hook_aborts; /* hooks aborted for running past their budget */
} cl_lua_stats;

extern cl_lua_stats cl_lua_stats_g;

#endif
