# Data plane: C tests of the Lua loop's data connections (dataplane.c) over loopback.
# Included by the main Makefile (which defines CC, CFLAGS, BUILD).
DATAPLANE_TEST_SRC := spec/c/test_dataplane.c $(wildcard runtime/transport/*.c) runtime/core/log.c runtime/core/name.c

$(BUILD)/test_dataplane: $(DATAPLANE_TEST_SRC) runtime/transport/dataplane.h $(wildcard runtime/transport/*.h) runtime/core/log.h spec/c/loop_test.h spec/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(DATAPLANE_TEST_SRC) -luv -lsodium -pthread

C_TESTS += $(BUILD)/test_dataplane
