# make bench [QUICK=1]: clusterlua against etcd, Erlang distribution and Serf on loopback,
# one table (see docs/benchmarks.md). Installs the peers from Debian when missing.
# BENCH_ARGS passes options to bench/run.lua, e.g. BENCH_ARGS="--only 12 --sizes 100,300"
# (row 12, clusters of 100+ nodes beside Serf; the driver raises its open-files limit).
BENCH_FLAGS = $(if $(filter 1 yes true,$(QUICK)),--quick,)

$(BUILD)/bench/tcp_pingpong: bench/tcp_pingpong.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -o $@ $<

bench: all $(BUILD)/bench/tcp_pingpong
	@sh bench/install-peers.sh
	@$(BUILD)/clusterlua bench/run.lua $(BENCH_FLAGS) $(BENCH_ARGS)
