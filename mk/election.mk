# Election core: unit tests, deterministic simulator, mutants, fuzz target.
# Included by the main Makefile (which defines CC, CFLAGS, BUILD).

# core/name.c: node names and the short-name rule, pure like the election itself
EL_SRC     := $(wildcard runtime/election/*.c) runtime/core/name.c
EL_HDR     := $(wildcard runtime/election/*.h) runtime/core/name.h
EL_LIBS    := -lsodium
SIM_SRC    := $(wildcard spec/sim/*.c) runtime/node/el_driver.c runtime/transport/detector.c runtime/transport/watch.c runtime/node/lua_lag_check.c
SEEDS      ?= 10000
SIM_JOBS   ?= 2
FUZZ_SECONDS ?= 10
# Each mutant is a deliberately broken core (or glue: SEND_BEFORE_PERSIST) the simulator must catch.
EL_MUTANTS ?= NO_PERSIST_TERM SINGLE_CONFIG_QUORUM ACCEPT_OLD_TERM HALF_QUORUM ACCEPT_FOREIGN QUORUM_LOST_WITH_MASTER \
  NO_VOTING_CAP DIFF_WRONG_BASE LAZY_NEW_VOTER COUNT_LAZY_JOIN \
  SEND_BEFORE_PERSIST
MUTANT_SEEDS ?= 3000

C_TESTS      += $(BUILD)/test_election
FUZZ_TARGETS += fuzz-state

$(BUILD)/test_election: $(EL_SRC) $(EL_HDR) spec/c/test_election.c spec/c/harness.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -Iruntime/election -o $@ spec/c/test_election.c $(EL_SRC) $(EL_LIBS)

$(BUILD)/sim: $(EL_SRC) $(EL_HDR) $(SIM_SRC) runtime/node/el_driver.h runtime/transport/detector.h runtime/transport/watch.h runtime/node/lua_lag_check.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -Iruntime -o $@ $(SIM_SRC) $(EL_SRC) $(EL_LIBS)

$(BUILD)/sim-mutant-%: $(EL_SRC) $(EL_HDR) $(SIM_SRC) runtime/node/el_driver.h runtime/transport/detector.h runtime/transport/watch.h runtime/node/lua_lag_check.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -Iruntime -DCL_MUTANT_$* -o $@ $(SIM_SRC) $(EL_SRC) $(EL_LIBS)

.PHONY: sim sim-mutants fuzz-state test-election

test-election: $(BUILD)/test_election
	$(BUILD)/test_election

# make sim [SEEDS=N] | make sim SEED=N (replay one seed, with its trace)
sim: $(BUILD)/sim
ifdef SEED
	$(BUILD)/sim --seed $(SEED) --verbose
else
	$(BUILD)/sim --seeds $(SEEDS) --jobs $(SIM_JOBS)
endif

# Fails if any mutant survives MUTANT_SEEDS seeds.
sim-mutants: $(addprefix $(BUILD)/sim-mutant-,$(EL_MUTANTS))
	@fail=0; for m in $(EL_MUTANTS); do \
	  out=$$($(BUILD)/sim-mutant-$$m --seeds $(MUTANT_SEEDS) --stop-at-first 2>&1); \
	  if [ $$? -ne 0 ]; then echo "PASS mutant $$m caught: $$(echo "$$out" | grep -m1 VIOLATION)"; \
	  else echo "FAIL mutant $$m survived $(MUTANT_SEEDS) seeds"; fail=1; fi; \
	done; exit $$fail

$(BUILD)/fuzz_state: $(EL_SRC) $(EL_HDR) spec/fuzz/fuzz_state.c
	@mkdir -p $(BUILD)
	clang -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Iruntime/election -o $@ spec/fuzz/fuzz_state.c $(EL_SRC) $(EL_LIBS)

fuzz-state: $(BUILD)/fuzz_state
	@mkdir -p $(BUILD)/corpus_state
	$(BUILD)/fuzz_state -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD)/corpus_state spec/fuzz/corpus_state
