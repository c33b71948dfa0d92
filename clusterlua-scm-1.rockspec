rockspec_format = "3.0"
package = "clusterlua"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "A small C runtime on libuv and LuaJIT that turns a handful of machines into one cluster",
  license = "MIT",
}
dependencies = { "luajit >= 2.1" }
build = {
  type = "make",
  build_variables = { CFLAGS = "-O2 -g" },
  install_variables = { PREFIX = "$(PREFIX)" },
}
