# Reliability suite (spec/reliability/, docs/reliability.md). Included by the main
# Makefile (which defines CC, BUILD, FUZZ_SECONDS). The specs also run from `make test`
# (busted's ROOT is spec/): the netns one skips itself with a reason when it cannot run,
# the soak runs SOAK_DURATION (30) seconds, crash consistency CRASH_ITERATIONS times.
DURATION ?= 300
SEED     ?=
RELI_BUSTED = $(BUILD)/clusterlua /usr/bin/busted -o TAP

.PHONY: test-netns soak test-reliability

# Partitions across network namespaces; fails (rather than skips) if it cannot run.
test-netns: all
	@RELI_REQUIRE_NETNS=1 BUSTED_ARGS=spec/reliability/netns_partition_spec.lua \
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
$(BUILD)/state_check: spec/reliability/state_check.c $(EL_SRC) $(EL_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -Iruntime/election -o $@ spec/reliability/state_check.c $(EL_SRC) $(EL_LIBS)

C_TESTS += $(BUILD)/state_check
