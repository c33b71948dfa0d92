# make test-scale [N=100]: spec/cluster/scale_spec.lua at N nodes (issue 18): N real
# processes on 127.B.x.y, 3 static seeds; forms, kill -9 of a follower and of the
# master, a clean leave, and the median number_of_connections per node asserted below
# its constant (plain `make test` runs the same spec at 100 nodes, 20 under
# `make test-asan`). The open-files limit is raised to the hard
# limit first: the spec needs 4 N + 64 (helpers/scale.lua, fd_budget).
# TRANSPORT='timeout_ms = 1000, ...' and ELECTION='...' add fields to the topology's
# transport and election tables (to try a setting at scale before it becomes a default).
# LOG=info sets every node's --log-level (warn by default; the logs stay in the
# spec's directory, kept with CL_SCALE_KEEP=1).
N ?= 100
TRANSPORT ?=
ELECTION ?=
LOG ?= warn

.PHONY: test-scale
test-scale: all
	@ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; \
	  CL_SCALE_N=$(N) CL_SCALE_TRANSPORT='$(TRANSPORT)' CL_SCALE_ELECTION='$(ELECTION)' CL_SCALE_LOG='$(LOG)' BUSTED_ARGS=spec/cluster/scale_spec.lua \
	  sh tools/run-tests.sh --lua-only $(BUILD)/clusterlua
