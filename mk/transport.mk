# Transport: C tests on loopback and libFuzzer targets for the frame decoder and the
# handshake. Included by the main Makefile (which defines CC, CFLAGS, BUILD).
TRANSPORT_SRC := $(wildcard runtime/transport/*.c)
TRANSPORT_HDR := $(wildcard runtime/transport/*.h)
TRANSPORT_TEST_SRC := spec/c/test_transport.c $(TRANSPORT_SRC) runtime/core/log.c runtime/core/name.c

$(BUILD)/test_transport: $(TRANSPORT_TEST_SRC) $(TRANSPORT_HDR) runtime/core/log.h runtime/core/name.h spec/c/loop_test.h spec/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(TRANSPORT_TEST_SRC) -luv -lsodium -pthread

C_TESTS += $(BUILD)/test_transport

FUZZ_BUILD ?= build-fuzz
TRANSPORT_FUZZ_FLAGS = -std=c11 -g -O1 -D_GNU_SOURCE -Iruntime -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined

$(FUZZ_BUILD)/fuzz_frame: spec/fuzz/fuzz_frame.c runtime/transport/frame.c $(TRANSPORT_HDR)
	@mkdir -p $(FUZZ_BUILD)
	clang $(TRANSPORT_FUZZ_FLAGS) -o $@ spec/fuzz/fuzz_frame.c runtime/transport/frame.c \
	  runtime/transport/session.c -lsodium

$(FUZZ_BUILD)/fuzz_handshake: spec/fuzz/fuzz_handshake.c runtime/transport/frame.c \
    runtime/transport/handshake.c runtime/transport/keyring.c runtime/core/name.c $(TRANSPORT_HDR)
	@mkdir -p $(FUZZ_BUILD)
	clang $(TRANSPORT_FUZZ_FLAGS) -o $@ spec/fuzz/fuzz_handshake.c runtime/transport/frame.c \
	  runtime/transport/handshake.c runtime/transport/keyring.c runtime/core/name.c -lsodium

$(FUZZ_BUILD)/fuzz_reauth: spec/fuzz/fuzz_reauth.c runtime/transport/reauth.c runtime/transport/frame.c \
    runtime/transport/handshake.c runtime/transport/keyring.c runtime/core/name.c $(TRANSPORT_HDR)
	@mkdir -p $(FUZZ_BUILD)
	clang $(TRANSPORT_FUZZ_FLAGS) -o $@ spec/fuzz/fuzz_reauth.c runtime/transport/reauth.c runtime/transport/frame.c \
	  runtime/transport/handshake.c runtime/transport/keyring.c runtime/core/name.c -lsodium

# the membership and detection frame payloads (members_wire.c): pure, nothing else linked
$(FUZZ_BUILD)/fuzz_members: spec/fuzz/fuzz_members.c runtime/transport/members_wire.c runtime/transport/members_wire.h
	@mkdir -p $(FUZZ_BUILD)
	clang $(TRANSPORT_FUZZ_FLAGS) -o $@ spec/fuzz/fuzz_members.c runtime/transport/members_wire.c

.PHONY: fuzz-frame fuzz-handshake fuzz-reauth fuzz-members
# The corpus is copied so a run's discoveries never dirty the checkout.
fuzz-frame: $(FUZZ_BUILD)/fuzz_frame
	@rm -rf $(FUZZ_BUILD)/corpus_frame && mkdir -p $(FUZZ_BUILD)/corpus_frame
	@cp spec/fuzz/corpus_frame/* $(FUZZ_BUILD)/corpus_frame/ 2>/dev/null || true
	$(FUZZ_BUILD)/fuzz_frame -max_total_time=$(FUZZ_SECONDS) -max_len=70000 $(FUZZ_BUILD)/corpus_frame

fuzz-handshake: $(FUZZ_BUILD)/fuzz_handshake
	@rm -rf $(FUZZ_BUILD)/corpus_handshake && mkdir -p $(FUZZ_BUILD)/corpus_handshake
	@cp spec/fuzz/corpus_handshake/* $(FUZZ_BUILD)/corpus_handshake/ 2>/dev/null || true
	$(FUZZ_BUILD)/fuzz_handshake -max_total_time=$(FUZZ_SECONDS) -max_len=16384 $(FUZZ_BUILD)/corpus_handshake

fuzz-reauth: $(FUZZ_BUILD)/fuzz_reauth
	@mkdir -p $(FUZZ_BUILD)/corpus_reauth
	$(FUZZ_BUILD)/fuzz_reauth -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(FUZZ_BUILD)/corpus_reauth

fuzz-members: $(FUZZ_BUILD)/fuzz_members
	@rm -rf $(FUZZ_BUILD)/corpus_members && mkdir -p $(FUZZ_BUILD)/corpus_members
	@cp spec/fuzz/corpus_members/* $(FUZZ_BUILD)/corpus_members/ 2>/dev/null || true
	$(FUZZ_BUILD)/fuzz_members -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(FUZZ_BUILD)/corpus_members

FUZZ_TARGETS += fuzz-frame fuzz-handshake fuzz-reauth fuzz-members

# The failure detector alone: pure, no loop needed.
$(BUILD)/test_detector: spec/c/test_detector.c runtime/transport/detector.c runtime/transport/detector.h spec/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ spec/c/test_detector.c runtime/transport/detector.c

C_TESTS += $(BUILD)/test_detector

# The re-authentication protocol alone: pure but for the io it is given, no loop needed.
REAUTH_TEST_SRC := spec/c/test_reauth.c runtime/transport/reauth.c runtime/transport/handshake.c \
  runtime/transport/keyring.c runtime/transport/frame.c runtime/core/log.c runtime/core/name.c
$(BUILD)/test_reauth: $(REAUTH_TEST_SRC) $(TRANSPORT_HDR) spec/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(REAUTH_TEST_SRC) -luv -lsodium -pthread

C_TESTS += $(BUILD)/test_reauth

# Who watches whom: pure.
$(BUILD)/test_watch: spec/c/test_watch.c runtime/transport/watch.c runtime/transport/watch.h spec/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ spec/c/test_watch.c runtime/transport/watch.c

C_TESTS += $(BUILD)/test_watch

# the log's writer thread (runtime/core/log.c)
$(BUILD)/test_log: spec/c/test_log.c runtime/core/log.c runtime/core/log.h spec/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ spec/c/test_log.c runtime/core/log.c -pthread

C_TESTS += $(BUILD)/test_log
