/* The Lua state on the Lua loop: module paths, embedded luv, the C modules preloaded. */
#include "lua/lua_host.h"

#include <limits.h>

#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <luv/luv.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lua/lua_call.h"
#include "lua/lua_modules.h"

int cl_lua_exit_requested(lua_State *L) {
  cl_lua_ctx *c = cl_lua_ctx_get(L);
  return c ? c->exit_code : -1;
}

void cl_lua_preload(lua_State *L, const char *name, lua_CFunction open) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, open);
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* A development checkout (build/clusterlua next to lua/) wins over an install, so
 * editing a module needs no rebuild; an install keeps modules in share/clusterlua. */
static void find_libdir(const char *exe_path, char *libdir, size_t cap) {
  char dir[2048], probe[2200];
  snprintf(dir, sizeof dir, "%s", exe_path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  else
    snprintf(dir, sizeof dir, ".");
  const char *cands[] = {"%s/../lua", "%s/../share/clusterlua/lua", "%s/../share/lua/5.1"};
  for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
    char base[2100];
    snprintf(base, sizeof base, cands[i], dir);
    snprintf(probe, sizeof probe, "%s/clusterlua/init.lua", base);
    if (file_exists(probe)) {
      char real[PATH_MAX];
      snprintf(libdir, cap, "%s", realpath(base, real) ? real : base);
      return;
    }
  }
  libdir[0] = 0;
}

/* The bytecode twins `make` writes next to the binary (BUILD/lua-bc, by
 * tools/luac.lua): parsing the ~115 kB of Lua a node loads at start costs about 4 ms
 * of CPU, loading the same modules as bytecode 0.2 ms, and 20 nodes starting at once
 * on two cores wait for each other's start-up (docs/benchmarks.md, row 6). The twin is
 * used only for the very file the ordinary searcher would load (package.searchpath
 * over package.path, so a path put in front still wins), and only when it was written
 * after that file last changed (written_after): an edited module is loaded from its source until the next `make`,
 * as before. Compiled without stripping, a twin carries its source's chunk name, so
 * tracebacks and error messages are the same. Anything amiss: the source is loaded. */
/* The twin a was written after b last changed: strictly after b's ctime, which moves
 * with every write, rename or chmod and which `cp -p`, `tar x` or `touch -d` cannot set
 * back (a source restored with an old mtime would otherwise leave an older twin
 * "newer"; found by a review). A tie counts as stale: the source is then loaded. */
static int written_after(const struct stat *a, const struct stat *b) {
  if (a->st_mtim.tv_sec != b->st_ctim.tv_sec) return a->st_mtim.tv_sec > b->st_ctim.tv_sec;
  return a->st_mtim.tv_nsec > b->st_ctim.tv_nsec;
}

static int bc_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *libdir = lua_tostring(L, lua_upvalueindex(1));
  const char *bcdir = lua_tostring(L, lua_upvalueindex(2));
  size_t ll = strlen(libdir);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_getfield(L, -2, "path");
  if (!lua_isfunction(L, -2) || !lua_isstring(L, -1)) return 0;
  lua_pushvalue(L, 1);
  lua_insert(L, -2);
  if (lua_pcall(L, 2, 1, 0) != 0 || !lua_isstring(L, -1)) return 0;
  const char *src = lua_tostring(L, -1);
  if (strncmp(src, libdir, ll) != 0 || src[ll] != '/') return 0;
  char bc[PATH_MAX];
  int n = snprintf(bc, sizeof bc, "%s%s", bcdir, src + ll);
  if (n < 0 || (size_t)n >= sizeof bc) return 0;
  struct stat ss, bs;
  if (stat(src, &ss) != 0 || stat(bc, &bs) != 0 || !S_ISREG(bs.st_mode) || !written_after(&bs, &ss)) return 0;
  if (luaL_loadfile(L, bc) != 0) return 0;
  (void)name;
  return 1;
}

static void install_bc_searcher(lua_State *L, const char *exe_path, const char *libdir) {
  char bcdir[PATH_MAX];
  const char *slash = strrchr(exe_path, '/');
  if (!slash) return;
  int n = snprintf(bcdir, sizeof bcdir, "%.*s/lua-bc", (int)(slash - exe_path), exe_path);
  if (n < 0 || (size_t)n >= sizeof bcdir) return;
  struct stat st;
  if (stat(bcdir, &st) != 0 || !S_ISDIR(st.st_mode)) return;
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "insert");
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaders");
  lua_remove(L, -2);
  lua_pushinteger(L, 2); /* right after package.preload */
  lua_pushstring(L, libdir);
  lua_pushstring(L, bcdir);
  lua_pushcclosure(L, bc_searcher, 2);
  lua_call(L, 3, 0);
  lua_pop(L, 1);
}

/* The Lua heap on the C allocator rather than LuaJIT's own. LuaJIT's hands memory back
 * only when a whole segment is free, so the garbage of a burst (a cluster of 300
 * forming: each commit's state as tables) stayed resident for good: 1.1 MiB mapped and
 * resident for 0.65 MiB in use after a full collection, measured at 300 nodes. glibc's
 * malloc_trim returns the free pages of its heaps, fragmented or not (core.trim, after
 * node.lua's settling collection). The cost: allocation-heavy Lua about 10 % slower in
 * a micro-benchmark, the pinned RPC round trip of bench row 7 about 3 % slower (docs/benchmarks.md). */
static void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return ptr ? realloc(ptr, nsize) : malloc(nsize); /* most calls are new objects */
}

lua_State *cl_lua_new(uv_loop_t *loop, const char *exe_path) {
  lua_State *L = lua_newstate(heap_alloc, NULL);
  if (!L) return NULL;
  luaL_openlibs(L);
  cl_lua_ctx *c = cl_lua_ctx_new(L, loop);
  find_libdir(exe_path, c->libdir, sizeof c->libdir);
  if (c->libdir[0]) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", c->libdir, c->libdir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
    install_bc_searcher(L, exe_path, c->libdir);
  }
  lua_getglobal(L, "os");
  lua_pushcfunction(L, cl_lua_os_exit);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  cl_lua_preload(L, "uv", luaopen_luv);
  cl_lua_preload(L, "luv", luaopen_luv);
  cl_lua_preload(L, "clusterlua.c.core", luaopen_clusterlua_c_core);
  cl_lua_preload(L, "clusterlua.c.dns", luaopen_clusterlua_c_dns);
  cl_lua_preload(L, "clusterlua.c.node", luaopen_clusterlua_c_node);
  cl_lua_preload(L, "clusterlua.c.crypto", luaopen_clusterlua_c_crypto);
  cl_lua_preload(L, "clusterlua.c.dataplane", luaopen_clusterlua_c_dataplane);
  cl_lua_preload(L, "clusterlua.c.name", luaopen_clusterlua_c_name);
  cl_lua_preload(L, "clusterlua.c.rehearse", luaopen_clusterlua_c_rehearse);
  luv_set_loop(L, loop);
  luv_set_callback(L, cl_lua_luv_pcall);
  return L;
}

void cl_lua_close(lua_State *L) { lua_close(L); }

void cl_lua_set_control(lua_State *L, struct cl_control *c, struct cl_node *n) {
  cl_lua_ctx *cx = cl_lua_ctx_get(L);
  cx->control = c;
  cx->node = n;
}

void cl_lua_set_options(lua_State *L, const struct cl_options *o) { cl_lua_ctx_get(L)->opts = o; }
