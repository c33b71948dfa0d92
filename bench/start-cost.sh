#!/bin/bash
# The CPU one node's start costs: a node alone (a static list of itself, the default
# roles), killed with SIGKILL 1.5 s after the spawn, which is past its key fingerprint
# (computed 1 s after the start, in a worker thread: benchmarks.md, "Key
# fingerprints"). The figure is the user + system time of the node's every thread, from
# the shell's own accounting of its finished children (getrusage, microseconds), so a
# thread that has ended counts too; the `sleep` beside it adds about a millisecond.
# Why it matters: N processes forming on C CPUs cannot do so faster than N × this / C
# (benchmarks.md, "What a 300-node formation spends its time on").
#
#   bash bench/start-cost.sh [K]      K starts (5), the median, min and max
#     BIN=path  the build to measure (build/clusterlua)
K=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/build/clusterlua}
D=$(mktemp -d /tmp/clusterlua-start-XXXXXX)
trap 'rm -rf "$D"' EXIT
trap 'exit 130' INT TERM PIPE
port=$((20000 + RANDOM % 10000))
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$D/cookie"
chmod 600 "$D/cookie"
cat >"$D/topology.lua" <<EOT
return { cluster = "start", topologies = { s = { strategy = "static", config = { hosts = { "n1@127.0.0.1:$port" } } } },
  election = { initial_master_nodes = { "n1" } } }
EOT
TIMEFORMAT='%3U %3S'
for i in $(seq 1 "$K"); do
  rm -rf "$D/data"
  { time {
    "$BIN" --name "n1@127.0.0.1:$port" --cookie-file "$D/cookie" --data "$D/data" --log-level warn \
      "$D/topology.lua" >"$D/log" 2>&1 &
    pid=$!
    sleep 1.5
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  }; } 2>>"$D/times"
done
awk '{print ($1 + $2) * 1000}' "$D/times" | sort -n | awk '{ms[NR] = $1} END {
  printf "a node'"'"'s start: median %.1f ms of CPU, min %.1f, max %.1f over %d starts\n", ms[int((NR + 1) / 2)], ms[1], ms[NR], NR }'
