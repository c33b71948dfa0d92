# The node glue's pure rules, tested alone: no loop needed.
$(BUILD)/test_lua_lag: spec/c/test_lua_lag.c runtime/node/lua_lag_check.c runtime/node/lua_lag_check.h spec/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ spec/c/test_lua_lag.c runtime/node/lua_lag_check.c

C_TESTS += $(BUILD)/test_lua_lag

# The node's table of peers and its index by name (peers.c), with what it calls.
NODE_PEERS_TEST_SRC = spec/c/test_node_peers.c runtime/node/peers.c runtime/transport/watch.c runtime/core/name.c \
  runtime/core/queue.c runtime/core/control.c
$(BUILD)/test_node_peers: $(NODE_PEERS_TEST_SRC) runtime/node/node_internal.h spec/c/harness.h | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(NODE_PEERS_TEST_SRC) $(LDLIBS)

C_TESTS += $(BUILD)/test_node_peers
