# Reliability suite (spec/reliability/, docs/reliability.md). Included by the main
# Makefile (which defines CC, BUILD, FUZZ_SECONDS). The specs also run from `make test`
# (busted's ROOT is spec/): the netns one skips itself with a reason when it cannot run,
# the soak runs SOAK_DURATION (30) seconds, crash consistency CRASH_ITERATIONS times.
DURATION ?= 300
SEED     ?=
RELI_BUSTED = $(BUILD)/clusterlua /usr/bin/busted -o TAP

.PHONY: test-netns soak test-reliability

# Partitions across network namespaces alone (fails, naming why, if it cannot run, as
# under make test).
test-netns: all
	@BUSTED_ARGS=spec/reliability/netns_partition_spec.lua \
	  timeout 240 sh tools/run-tests.sh --lua-only $(BUILD)/clusterlua

# make soak DURATION=seconds [SEED=n]: chaos on loopback; ends with "soak: F faults, ..."
soak: all
	@SOAK_DURATION=$(DURATION) RELI_SEED=$(SEED) BUSTED_ARGS=spec/reliability/soak_spec.lua \
	  timeout $$(( $(DURATION) + 60 )) sh tools/run-tests.sh --lua-only $(BUILD)/clusterlua

# every reliability spec, nothing else
test-reliability: all
	@BUSTED_ARGS=spec/reliability sh tools/run-tests.sh --lua-only $(BUILD)/clusterlua

# The persisted-state checker of the crash spec; without arguments a C test of torn and
# bit-flipped files.
$(BUILD)/state_check: spec/reliability/state_check.c spec/c/harness.h $(EL_SRC) $(EL_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -Iruntime/election -o $@ spec/reliability/state_check.c $(EL_SRC) $(EL_LIBS)

C_TESTS += $(BUILD)/state_check

# libFuzzer targets that run Lua code (gossip packets, the topology validator) inside
# an embedded LuaJIT; Lua line coverage is fed back as libFuzzer extra counters.
FUZZ_BUILD ?= build-fuzz
LUA_FUZZ_FLAGS = -std=c11 -g -O1 -D_GNU_SOURCE -I$(LUAJIT_INC) -Iruntime -DCL_ROOT='"$(CURDIR)"' \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

# the C modules the fuzzed Lua requires, as the node preloads them
LUA_FUZZ_C = runtime/lua/lua_name.c runtime/core/name.c

$(FUZZ_BUILD)/fuzz_gossip: spec/fuzz/fuzz_gossip.c spec/fuzz/lua_fuzz_harness.h lua/clusterlua/strategy/gossip.lua $(LUA_FUZZ_C)
	@mkdir -p $(FUZZ_BUILD)
	clang $(LUA_FUZZ_FLAGS) -o $@ spec/fuzz/fuzz_gossip.c $(LUA_FUZZ_C) -lluajit-5.1 -lsodium -lm -ldl

$(FUZZ_BUILD)/fuzz_topology: spec/fuzz/fuzz_topology.c spec/fuzz/lua_fuzz_harness.h lua/clusterlua/topology.lua $(LUA_FUZZ_C)
	@mkdir -p $(FUZZ_BUILD)
	clang $(LUA_FUZZ_FLAGS) -o $@ spec/fuzz/fuzz_topology.c $(LUA_FUZZ_C) -lluajit-5.1 -lsodium -lm -ldl

.PHONY: fuzz-gossip fuzz-topology
fuzz-gossip: $(FUZZ_BUILD)/fuzz_gossip
	@rm -rf $(FUZZ_BUILD)/corpus_gossip && mkdir -p $(FUZZ_BUILD)/corpus_gossip
	@cp spec/fuzz/corpus_gossip/* $(FUZZ_BUILD)/corpus_gossip/ 2>/dev/null || true
	$(FUZZ_BUILD)/fuzz_gossip -max_total_time=$(FUZZ_SECONDS) -max_len=1024 $(FUZZ_BUILD)/corpus_gossip

fuzz-topology: $(FUZZ_BUILD)/fuzz_topology
	@rm -rf $(FUZZ_BUILD)/corpus_topology && mkdir -p $(FUZZ_BUILD)/corpus_topology
	@cp spec/fuzz/corpus_topology/* $(FUZZ_BUILD)/corpus_topology/ 2>/dev/null || true
	$(FUZZ_BUILD)/fuzz_topology -max_total_time=$(FUZZ_SECONDS) -max_len=2048 $(FUZZ_BUILD)/corpus_topology

FUZZ_TARGETS += fuzz-gossip fuzz-topology
