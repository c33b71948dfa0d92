# clusterlua: build, test, demo. `make` installs missing Debian packages itself.
CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
CFLAGS  ?= -O2 -g
# override: these hold even when CFLAGS is given on the command line (test-asan, fuzz)
override CFLAGS += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread
LUAJIT_INC = /usr/include/luajit-2.1
LUV_INC    = /usr/include/lua5.1
CPPFLAGS += -I$(LUAJIT_INC) -I$(LUV_INC) -Iruntime
LDLIBS  += /usr/lib/x86_64-linux-gnu/liblua5.1-luv.a -lluajit-5.1 -luv -lsodium -lcares \
           -lhttp_parser -ljansson -lm -ldl -pthread
# LuaJIT's C API must be exported so C modules loaded at run time (cjson, ...) link
override LDFLAGS += -Wl,-E

DEB_PACKAGES = build-essential luajit libluajit-5.1-dev libuv1-dev lua-luv-dev libsodium-dev \
  libc-ares-dev libhttp-parser-dev libjansson-dev lua-cjson lua-busted clang libclang-rt-14-dev \
  dnsmasq-base iproute2 iptables stress-ng curl prometheus luarocks chromium chromium-driver

RUNTIME_SRC = $(wildcard runtime/*.c runtime/*/*.c)
RUNTIME_OBJ = $(RUNTIME_SRC:%.c=$(BUILD)/obj/%.o)
C_TESTS  =
FUZZ_TARGETS =

# Bytecode twins of the Lua modules, loaded instead of parsing the sources (a node's
# start-up; runtime/lua/lua_host.c): one per module, rebuilt when its source changes.
LUA_SRC = $(shell find lua -name '*.lua')
LUA_BC  = $(LUA_SRC:lua/%=$(BUILD)/lua-bc/%)

.PHONY: all deps test test-c test-lua test-asan demo fuzz install clean sim sim-mutants bench check-deps
all: $(BUILD)/.deps $(BUILD)/clusterlua $(LUA_BC)

# Installs what is missing, once per build directory; re-run with `make deps`.
$(BUILD)/.deps:
	@mkdir -p $(BUILD)
	@sh tools/install-deps.sh $(DEB_PACKAGES)
	@touch $@
deps:
	@sh tools/install-deps.sh $(DEB_PACKAGES)

$(BUILD)/obj/%.o: %.c | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/clusterlua: $(RUNTIME_OBJ)
	$(CC) $(LDFLAGS) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/lua-bc/%.lua: lua/%.lua tools/luac.lua | $(BUILD)/clusterlua
	@mkdir -p $(dir $@)
	@$(BUILD)/clusterlua tools/luac.lua $< $@

-include $(RUNTIME_OBJ:.o=.d)
include $(wildcard mk/*.mk)

test: all $(C_TESTS)
	@sh tools/check-deps.sh $(BUILD)
	@sh tools/run-tests.sh $(BUILD)/clusterlua $(C_TESTS)

test-c: $(C_TESTS)
	@sh tools/run-tests.sh --c-only $(BUILD)/clusterlua $(C_TESTS)

test-lua: all
	@sh tools/run-tests.sh --lua-only $(BUILD)/clusterlua

# The same suite with AddressSanitizer and UndefinedBehaviorSanitizer, in its own tree;
# CL_CHECK_CACHES also checks each cached sum against a fresh one (aborting on a
# difference), so the whole suite tests the caches.
test-asan: $(BUILD)/.deps
	$(MAKE) BUILD=build-asan CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DCL_CHECK_CACHES" \
	  LDFLAGS="-fsanitize=address,undefined" all
	@touch build-asan/.deps
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp \
	  $(MAKE) BUILD=build-asan CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DCL_CHECK_CACHES" \
	  LDFLAGS="-fsanitize=address,undefined" test

# No circle between the object files of runtime/ and no hand-written declaration of
# another file's function (tools/check-deps.sh says how); `make test` runs it first.
check-deps: all
	@sh tools/check-deps.sh $(BUILD)

FUZZ_SECONDS ?= 10
fuzz: $(FUZZ_TARGETS)

demo: all
	@bash examples/demo.sh $(BUILD)/clusterlua

# LuaRocks passes BINDIR and LUADIR; the binary looks for its modules in
# ../share/clusterlua/lua and ../share/lua/5.1 next to itself.
BINDIR ?= $(PREFIX)/bin
LUADIR ?= $(PREFIX)/share/clusterlua/lua
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)
	install -m 755 $(BUILD)/clusterlua $(DESTDIR)$(BINDIR)/clusterlua
	cd lua && find clusterlua -name '*.lua' -exec install -D -m 644 {} $(DESTDIR)$(LUADIR)/{} \;

clean:
	rm -rf build build-asan build-fuzz
