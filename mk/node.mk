# The node glue's pure rules, tested alone: no loop needed.
$(BUILD)/test_lua_lag: spec/c/test_lua_lag.c runtime/node/lua_lag_check.c runtime/node/lua_lag_check.h spec/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ spec/c/test_lua_lag.c runtime/node/lua_lag_check.c

C_TESTS += $(BUILD)/test_lua_lag
