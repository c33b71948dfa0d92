/* The parsed command line: main.c fills it, clusterlua.c.core hands it to Lua. */
#include "core/options.h"

cl_options cl_opts;
