# The node glue's pure rules, tested alone: no loop needed.
$(BUILD)/test_lua_lag: spec/c/test_lua_lag.c runtime/node/lua_lag_check.c runtime/node/lua_lag_check.h spec/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ spec/c/test_lua_lag.c runtime/node/lua_lag_check.c

C_TESTS += $(BUILD)/test_lua_lag

# When the start-up keys are fingerprinted (keys_internal.h, header only).
$(BUILD)/test_keys_fp: spec/c/test_keys_fp.c runtime/node/keys_internal.h spec/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ spec/c/test_keys_fp.c

C_TESTS += $(BUILD)/test_keys_fp

# The node's table of peers and its index by name (peers.c), with what it calls.
NODE_PEERS_TEST_SRC = spec/c/test_node_peers.c runtime/node/peers.c runtime/transport/watch.c runtime/core/name.c \
  runtime/core/queue.c runtime/core/control.c
$(BUILD)/test_node_peers: $(NODE_PEERS_TEST_SRC) runtime/node/node_internal.h spec/c/harness.h | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(NODE_PEERS_TEST_SRC) $(LDLIBS)

C_TESTS += $(BUILD)/test_node_peers

# The committed state as JSON, whole and as a delta (state_json.c), on made-up states.
STATE_JSON_TEST_SRC = spec/c/test_state_json.c runtime/node/state_json.c runtime/node/roles.c runtime/node/peers.c \
  runtime/transport/watch.c runtime/core/queue.c runtime/core/control.c runtime/core/name.c \
  $(wildcard runtime/election/*.c)
$(BUILD)/test_state_json: $(STATE_JSON_TEST_SRC) runtime/node/state_json.h runtime/node/node_internal.h spec/c/harness.h | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(STATE_JSON_TEST_SRC) $(LDLIBS)

C_TESTS += $(BUILD)/test_state_json
