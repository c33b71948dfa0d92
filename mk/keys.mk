# The keyring (issue 20): libFuzzer targets for the keyring file parser and the bodies
# of the keys admin routes. Included by the main Makefile.
FUZZ_BUILD ?= build-fuzz
KEYS_FUZZ_FLAGS = -std=c11 -g -O1 -D_GNU_SOURCE -Iruntime -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined

$(FUZZ_BUILD)/fuzz_keyring: spec/fuzz/fuzz_keyring.c runtime/transport/keyring.c runtime/transport/keyring.h
	@mkdir -p $(FUZZ_BUILD)
	clang $(KEYS_FUZZ_FLAGS) -o $@ spec/fuzz/fuzz_keyring.c runtime/transport/keyring.c -lsodium

$(FUZZ_BUILD)/fuzz_keys_admin: spec/fuzz/fuzz_keys_admin.c runtime/admin/keys_request.c runtime/admin/keys_request.h \
    runtime/transport/keyring.c runtime/transport/keyring.h runtime/node/keys.h
	@mkdir -p $(FUZZ_BUILD)
	clang $(KEYS_FUZZ_FLAGS) -o $@ spec/fuzz/fuzz_keys_admin.c runtime/admin/keys_request.c \
	  runtime/transport/keyring.c -ljansson -lsodium

.PHONY: fuzz-keyring fuzz-keys-admin
# The corpus is copied so a run's discoveries never dirty the checkout.
fuzz-keyring: $(FUZZ_BUILD)/fuzz_keyring
	@rm -rf $(FUZZ_BUILD)/corpus_keyring && mkdir -p $(FUZZ_BUILD)/corpus_keyring
	@cp spec/fuzz/corpus_keyring/* $(FUZZ_BUILD)/corpus_keyring/ 2>/dev/null || true
	$(FUZZ_BUILD)/fuzz_keyring -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(FUZZ_BUILD)/corpus_keyring

fuzz-keys-admin: $(FUZZ_BUILD)/fuzz_keys_admin
	@rm -rf $(FUZZ_BUILD)/corpus_keys_admin && mkdir -p $(FUZZ_BUILD)/corpus_keys_admin
	@cp spec/fuzz/corpus_keys_admin/* $(FUZZ_BUILD)/corpus_keys_admin/ 2>/dev/null || true
	$(FUZZ_BUILD)/fuzz_keys_admin -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(FUZZ_BUILD)/corpus_keys_admin

FUZZ_TARGETS += fuzz-keyring fuzz-keys-admin
