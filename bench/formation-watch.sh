#!/bin/bash
# Watches a large formation that may not converge: N nodes laid out as benchmark row 12
# (3 static seeds, default roles, each node on its own loopback address 127.B.x.y, all
# on the same two ports), nodes 1-3, N/2 and N at info level and the rest at warn. Every
# 10 s it prints the load average and, for those five, the cluster state's node count,
# the connections and the master (? where the admin did not answer within 3 s); at the
# end, a census of every node's log lines (numbers and names folded), which says what a
# formation that did not converge was busy with (handshake timeouts, DOWNs, elections).
#
#   bash bench/formation-watch.sh [N] [SECS]
#     N     nodes (500)
#     SECS  how long to watch (600); it stops early once the five see N
#     BIN=path  the build (build/clusterlua);  KEEP=1 D=dir  keep the logs in dir
#     EXTRA=', transport = { … }'  more fields for the topology table
N=${1:-500}
T=${2:-600}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/build/clusterlua}
D=${D:-$(mktemp -d /tmp/clusterlua-form-XXXXXX)}
mkdir -p "$D"
pids=()
cleanup() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
  [ -z "${KEEP:-}" ] && rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)"
base=$((20000 + RANDOM % 10000))
B=$((130 + RANDOM % 120))
host() { echo "127.$B.$((($1 - 1) / 250)).$((($1 - 1) % 250 + 1))"; }
hosts=""
for i in 1 2 3; do hosts="$hosts \"node$i@$(host $i):$base\","; done
cat >"$D/topology.lua" <<EOT
return { cluster = "f", topologies = { s = { strategy = "static", config = { hosts = { $hosts } } } },
  election = { initial_master_nodes = { "node1", "node2", "node3" } } ${EXTRA:-} }
EOT
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$D/cookie"
chmod 600 "$D/cookie"
S=(1 2 3 $((N / 2)) "$N")
# no subshell per node: under the load of the nodes already started, each fork of the
# launcher waits for the CPU too
for ((i = 1; i <= N; i++)); do
  lvl=warn
  for s in "${S[@]}"; do [ "$s" = $i ] && lvl=info; done
  h="127.$B.$(((i - 1) / 250)).$(((i - 1) % 250 + 1))"
  "$BIN" --name "node$i@$h:$base" --cookie-file "$D/cookie" --admin "$h:$((base + 1))" \
    --data "$D/d$i" --log-level $lvl "$D/topology.lua" >"$D/log$i" 2>&1 &
  pids+=($!)
done
echo "formation-watch: spawned $N in $SECONDS s; logs in $D"
while [ $SECONDS -lt "$T" ]; do
  sleep 10
  line="t=$SECONDS load=$(cut -d' ' -f1 /proc/loadavg)"
  all=1
  for s in "${S[@]}"; do
    h=$(curl -s -m 3 "$(host "$s"):$((base + 1))/_cluster/health")
    n=$(echo "$h" | sed -n 's/.*"number_of_nodes": *\([0-9]*\).*/\1/p')
    c=$(echo "$h" | sed -n 's/.*"number_of_connections": *\([0-9]*\).*/\1/p')
    m=$(echo "$h" | sed -n 's/.*"master": *"\([^"@]*\).*/\1/p')
    line="$line | node$s: ${n:-?} nodes, ${c:-?} conns, master ${m:-?}"
    [ "$n" = "$N" ] || all=0
  done
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  echo "$line | alive $alive"
  [ $all = 1 ] && { echo "formation-watch: the five saw $N members at $SECONDS s"; break; }
done
cat "$D"/log* | sed -E 's/^[^ ]+ //; s/node[0-9]+@[0-9.:]+/NODE/g; s/[0-9]+/#/g' | sort | uniq -c | sort -rn | head -30
