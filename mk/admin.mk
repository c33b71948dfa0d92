# Admin HTTP server core, filter_path and the Prometheus text builder: C tests.
ADMIN_TEST_SRC = spec/c/test_admin.c runtime/admin/admin.c runtime/admin/json_filter.c runtime/admin/metrics.c runtime/core/log.c

$(BUILD)/test_admin: $(ADMIN_TEST_SRC) runtime/admin/admin.h runtime/admin/json_filter.h runtime/admin/metrics.h runtime/core/log.h spec/c/harness.h | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(ADMIN_TEST_SRC) -luv -lhttp_parser -ljansson -lsodium -lm -pthread

C_TESTS += $(BUILD)/test_admin

# GET /_nodes's filters, order, paging and summary at 1,000+ entries (pure: no server)
NODES_VIEW_TEST_SRC = spec/c/test_nodes_view.c runtime/admin/nodes_view.c

$(BUILD)/test_nodes_view: $(NODES_VIEW_TEST_SRC) runtime/admin/nodes_view.h spec/c/harness.h | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(NODES_VIEW_TEST_SRC) -ljansson

C_TESTS += $(BUILD)/test_nodes_view
