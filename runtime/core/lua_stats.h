/* Counters the Lua loop bumps and the control loop reads (for /metrics and
 * /_cluster/health): here, below both, so neither links the other. */
#ifndef CL_LUA_STATS_H
#define CL_LUA_STATS_H
#include <stdint.h>

/* The data plane's counters (transport/dataplane.h's cl_dp_stats, in its order) as of
 * the Lua loop's last turn with traffic. */
#define CL_DP_STATS_N 9
typedef struct cl_dp_published {
  _Atomic uint64_t v[CL_DP_STATS_N];
} cl_dp_published;

typedef struct cl_lua_stats {
  _Atomic uint64_t errors;      /* Lua errors raised by callbacks and hooks */
  _Atomic uint64_t hook_aborts; /* hooks aborted for running past their budget */
  cl_dp_published dp;           /* the Lua state's data plane (lua/lua_dataplane.c) */
} cl_lua_stats;

extern cl_lua_stats cl_lua_stats_g;

#endif
