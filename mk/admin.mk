# Admin HTTP server core, filter_path and the Prometheus text builder: C tests.
ADMIN_TEST_SRC = spec/c/test_admin.c runtime/admin.c runtime/json_filter.c runtime/metrics.c runtime/log.c

$(BUILD)/test_admin: $(ADMIN_TEST_SRC) runtime/admin.h runtime/json_filter.h runtime/metrics.h runtime/log.h | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(ADMIN_TEST_SRC) -luv -lhttp_parser -ljansson -lsodium -lm -pthread

C_TESTS += $(BUILD)/test_admin
