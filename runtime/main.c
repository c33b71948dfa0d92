/* clusterlua: a Lua interpreter on a libuv loop, next to a C control loop.
 * Without --name it runs a script like the `lua` command; with --name the file is a
 * topology and the process is a cluster node. */
#include <lauxlib.h>
#include <luajit.h>
#include <lua.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "admin/node_admin.h"
#include "core/control.h"
#include "lua/lua_dataplane.h"
#include "core/log.h"
#include "lua/lua_host.h"
#include "lua/lua_modules.h"
#include "node/node.h"
#include "core/options.h"
#include "core/version.h"



static void usage(FILE *f) {
  fprintf(f,
          "usage: clusterlua [options] FILE.lua [args...]\n"
          "       clusterlua status [--admin HOST:PORT] [--json] [--all | --limit N] [--status S]\n"
          "       clusterlua events [--admin HOST:PORT] [--since ID] [--follow] [--json]\n"
          "       clusterlua unsafe-bootstrap --data DIR [--yes]\n"
          "       clusterlua cookie         print a new random cookie (32 bytes, base64url)\n"
          "       clusterlua keys [--admin HOST:PORT] list | install KEY|- | use FP | remove FP\n"
          "       clusterlua sim TOPOLOGY.lua [--nodes N] [--scenario FILE] [--seed N | --seeds N]\n"
          "                      [--duration 10m] [--liveness] [--json] [--timeline OUT.html]\n"
          "                      rehearse the topology, its strategies and hooks on simulated nodes\n"
          "\n"
          "Without --name, FILE.lua runs as a script (like `lua`), on a libuv loop.\n"
          "With --name, FILE.lua returns a topology and the process is a cluster node.\n"
          "\n"
          "options:\n"
          "  --name NAME@HOST[:PORT]   run as a node (PORT defaults to 4370)\n"
          "  --cookie SECRET           shared cluster secret (or CLUSTERLUA_COOKIE); at least\n"
          "                            16 bytes, or the node warns (`clusterlua cookie` makes one)\n"
          "  --cookie-file PATH        read the cookie from a file (mode 0600 or stricter)\n"
          "  --keyring-file PATH       the cluster keys, one a line, the first the primary\n"
          "                            (mode 0600; rewritten when `clusterlua keys` rotates)\n"
          "  --data DIR                node id and election state (default ./data/SHORTNAME)\n"
          "  --admin HOST:PORT         serve the admin HTTP endpoint (off by default)\n"
          "  --admin-token-file PATH   bearer token, required to bind --admin off loopback\n"
          "  --roles a,b               node roles (default: master)\n"
          "  --initial-master-nodes a,b,c  bootstrap a new cluster from these nodes\n"
          "  --log-level LEVEL         debug, info, warn, error (default info)\n"
          "  --log-format FORMAT       text or json (default text)\n"
          "  --version                 print the version\n"
          "  --help                    this text\n");
}

struct optdef {
  const char *flag;
  const char **dst;
};

static int parse_options(cl_options *o, int argc, char **argv, int *first_arg) {
  struct optdef defs[] = {
      {"--name", &o->name},
      {"--cookie", &o->cookie},
      {"--cookie-file", &o->cookie_file},
      {"--keyring-file", &o->keyring_file},
      {"--data", &o->data},
      {"--admin", &o->admin},
      {"--admin-token-file", &o->admin_token_file},
      {"--roles", &o->roles},
      {"--initial-master-nodes", &o->initial_master_nodes},
      {"--log-level", &o->log_level},
      {"--log-format", &o->log_format},
  };
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || strcmp(a, "-") == 0) break;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "--version") == 0 || strcmp(a, "-v") == 0) {
      printf("clusterlua %s (%s, libuv %s)\n", CL_VERSION, LUAJIT_VERSION, uv_version_string());
      return 1;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 1;
    }
    int found = 0;
    for (size_t d = 0; d < sizeof defs / sizeof *defs; d++) {
      size_t fl = strlen(defs[d].flag);
      if (strncmp(a, defs[d].flag, fl) == 0 && (a[fl] == 0 || a[fl] == '=')) {
        if (a[fl] == '=') {
          *defs[d].dst = a + fl + 1;
        } else {
          if (i + 1 >= argc) {
            fprintf(stderr, "clusterlua: option %s needs a value\n", defs[d].flag);
            return 2;
          }
          *defs[d].dst = argv[++i];
        }
        found = 1;
        break;
      }
    }
    if (!found) {
      fprintf(stderr, "clusterlua: unknown option '%s' (see --help)\n", a);
      return 2;
    }
  }
  *first_arg = i;
  return 0;
}

/* arg table as the lua command line builds it: arg[0] = script, arg[-1] = exe */
static void push_args(lua_State *L, int argc, char **argv, int script) {
  lua_createtable(L, argc - script, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

enum { MODE_SCRIPT, MODE_NODE, MODE_CLI };

/* require(modname)(arg) under a traceback; returns the exit status it asks for */
static int call_module(lua_State *L, const char *modname, const char *arg) {
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  if (cl_lua_pcall(L, 1, 1, modname) != 0) return cl_lua_exit_requested(L) >= 0 ? cl_lua_exit_requested(L) : 1;
  lua_pushstring(L, arg);
  if (cl_lua_pcall(L, 1, 1, modname) != 0) return cl_lua_exit_requested(L) >= 0 ? cl_lua_exit_requested(L) : 1;
  int status = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  return status;
}

static int run(cl_options *opts, int argc, char **argv, int script, int mode) {
  char exe[4096];
  size_t exe_len = sizeof exe;
  if (uv_exepath(exe, &exe_len) != 0) snprintf(exe, sizeof exe, "%s", argv[0]);
  opts->exe = exe;

  uv_loop_t loop;
  uv_loop_init(&loop);
  lua_State *L = cl_lua_new(&loop, exe);
  if (!L) {
    fprintf(stderr, "clusterlua: cannot create a Lua state (out of memory)\n");
    return 1;
  }
  cl_lua_set_options(L, opts);
  static cl_control control;
  /* the node the control loop runs (started only when Lua asks): owned here, so it
   * outlives both loops */
  struct cl_node *node = cl_node_new();
  if (!node) {
    fprintf(stderr, "clusterlua: out of memory\n");
    cl_lua_close(L);
    return 1;
  }
  cl_node_admin_install(node); /* before the control loop can start the node */
  cl_control_hooks hooks = cl_node_hooks;
  hooks.ud = node;
  hooks.event = cl_lua_node_events;
  hooks.evt_ud = L;
  int r = cl_control_start(&control, &loop, &hooks, 65536, 65536);
  if (r) {
    fprintf(stderr, "clusterlua: cannot start the control loop: %s\n", uv_strerror(r));
    cl_lua_close(L);
    cl_node_free(node);
    return 1;
  }
  cl_lua_set_control(L, &control, node);

  int status = 0;
  const char *file = argv[script];
  push_args(L, argc, argv, script);
  if (mode == MODE_NODE) {
    /* the Lua side loads and validates the topology, then starts the node */
    status = call_module(L, "clusterlua.node_main", file);
  } else if (mode == MODE_CLI) {
    char modname[96];
    snprintf(modname, sizeof modname, "clusterlua.cli.%s", file);
    for (char *p = modname; *p; p++)
      if (*p == '-') *p = '_';
    status = call_module(L, modname, file);
  } else {
    if (luaL_loadfile(L, file) != 0) {
      fprintf(stderr, "clusterlua: %s\n", lua_tostring(L, -1));
      status = 1;
      lua_pop(L, 1);
    } else {
      int nargs = argc - script - 1;
      for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
      /* the main chunk's error ends the process, as in `lua` */
      lua_getglobal(L, "debug");
      lua_getfield(L, -1, "traceback");
      lua_remove(L, -2);
      int base = lua_gettop(L) - nargs - 1;
      lua_insert(L, base);
      if (lua_pcall(L, nargs, 0, base) != 0) {
        /* error() with nil is how busted and others ask for a failing exit on Lua 5.1
         * without printing anything more */
        if (cl_lua_exit_requested(L) < 0) {
          if (!lua_isnil(L, -1))
            fprintf(stderr, "clusterlua: %s\n",
                    lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)");
          status = 1;
        }
      }
      lua_settop(L, 0);
    }
  }
  if (status == 0 && cl_lua_exit_requested(L) < 0) uv_run(&loop, UV_RUN_DEFAULT);
  if (cl_lua_exit_requested(L) >= 0) status = cl_lua_exit_requested(L);

  cl_control_stop(&control);
  cl_lua_set_control(L, NULL, NULL);
  cl_lua_dp_shutdown(L); /* its handles free their memory in their own close callbacks */
  uv_walk(&loop, close_walk, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cl_lua_close(L);
  cl_node_free(node); /* after Lua: it may hold the node's per-peer records until then */
  uv_walk(&loop, close_walk, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) cl_log(CL_LOG_DEBUG, "runtime", NULL, "loop closed with live handles");
  fflush(stdout);
  return status;
}

int main(int argc, char **argv) {
  /* a peer or child that goes away must be an error on that write, not the end of us */
  signal(SIGPIPE, SIG_IGN);
  cl_options opts = {0}; /* the parsed command line: Lua reads it through its context */
  if (argc >= 2 && (strcmp(argv[1], "status") == 0 || strcmp(argv[1], "events") == 0 ||
                    strcmp(argv[1], "unsafe-bootstrap") == 0 || strcmp(argv[1], "cookie") == 0 ||
                    strcmp(argv[1], "keys") == 0 || strcmp(argv[1], "sim") == 0)) {
    /* subcommands are Lua modules: clusterlua.cli.<name> receives the remaining args */
    return run(&opts, argc, argv, 1, MODE_CLI);
  }
  int first = 0;
  int r = parse_options(&opts, argc, argv, &first);
  if (r == 1) return 0;
  if (r) return r;
  if (opts.log_level) {
    int lvl = cl_log_parse_level(opts.log_level);
    if (lvl < 0) {
      fprintf(stderr, "clusterlua: --log-level: unknown level '%s' (debug, info, warn, error)\n",
              opts.log_level);
      return 2;
    }
    cl_log_set_level(lvl);
  }
  if (opts.log_format) {
    if (strcmp(opts.log_format, "json") == 0)
      cl_log_set_json(1);
    else if (strcmp(opts.log_format, "text") != 0) {
      fprintf(stderr, "clusterlua: --log-format: expected text or json, got '%s'\n", opts.log_format);
      return 2;
    }
  }
  if (first >= argc) {
    usage(stderr);
    return 2;
  }
  return run(&opts, argc, argv, first, opts.name ? MODE_NODE : MODE_SCRIPT);
}
