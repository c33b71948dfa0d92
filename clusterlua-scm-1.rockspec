rockspec_format = "3.0"
package = "clusterlua"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "A small C runtime on libuv and LuaJIT that turns a handful of machines into one cluster",
  license = "MIT",
}
-- Debian ships LuaJIT 2.1.0-beta3, a 2.1 snapshot, which LuaRocks orders before "2.1"
dependencies = { "luajit >= 2.1.0-beta3" }
build = {
  type = "make",
  build_variables = { CFLAGS = "-O2 -g" },
  install_variables = { PREFIX = "$(PREFIX)", BINDIR = "$(BINDIR)", LUADIR = "$(LUADIR)" },
}
