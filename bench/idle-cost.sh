#!/bin/bash
# Idle cost of one build at one size, precisely: N nodes on 127.0.0.1 with a static list
# of all N (as bench row 11), left alone for SECS seconds once node N sees N members;
# per node, CPU time from /proc/PID/task/*/schedstat (nanoseconds, every thread; row 11's
# utime + stime counts 10 ms ticks, too coarse to compare two builds in a short window)
# and voluntary context switches. Prints the medians and node N's detector counters.
#
#   bash bench/idle-cost.sh [N] [SECS] [EXTRA]
#     N     nodes (60)
#     SECS  window in seconds (20)
#     EXTRA more topology fields, merged section by section, e.g.
#           'transport = { heartbeat_ms = 100 }, election = { heartbeat_ms = 100 }'
#     BIN=path  the build to measure (build/clusterlua)
#     SETTLE=5  seconds to wait after node N sees N members, before the window
#     SEEDS=3   row 12's layout instead: a static list of the first 3 only (every node
#           finds the others through the cluster state), each node on its own loopback
#           address 127.B.x.y, all on the same two ports
#
# Compare builds back to back on a quiet machine; the figures swing between days.
N=${1:-60}
SECS=${2:-20}
EXTRA=${3:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/build/clusterlua}
D=$(mktemp -d /tmp/clusterlua-idle-XXXXXX)
pids=()
cleanup() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM PIPE

# ports below the ephemeral range, so no outgoing connection holds one
base=$((20000 + RANDOM % 10000))
B=$((130 + RANDOM % 120))
# node i's address, cluster port and admin port
host() { if [ -n "${SEEDS:-}" ]; then echo "127.$B.$((($1 - 1) / 250)).$((($1 - 1) % 250 + 1))"; else echo 127.0.0.1; fi; }
port() { if [ -n "${SEEDS:-}" ]; then echo "$base"; else echo $((base + $1)); fi; }
aport() { if [ -n "${SEEDS:-}" ]; then echo $((base + 1)); else echo $((base + 1000 + $1)); fi; }
hosts=""
for i in $(seq 1 "${SEEDS:-$N}"); do hosts="$hosts \"node$i@$(host "$i"):$(port "$i")\","; done
cat >"$D/topology.lua" <<EOF
local t = { cluster = "idle", topologies = { s = { strategy = "static", config = { hosts = { $hosts } } } },
  election = { initial_master_nodes = { "node1", "node2", "node3" } } }
for k, v in pairs({ $EXTRA }) do
  if type(v) == "table" and type(t[k]) == "table" then for a, b in pairs(v) do t[k][a] = b end else t[k] = v end
end
return t
EOF
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$D/cookie"
chmod 600 "$D/cookie"
for i in $(seq 1 "$N"); do
  "$BIN" --name "node$i@$(host "$i"):$(port "$i")" --cookie-file "$D/cookie" --admin "$(host "$i"):$(aport "$i")" \
    --data "$D/d$i" --log-level warn "$D/topology.lua" >"$D/log$i" 2>&1 &
  pids+=($!)
done
# One awk for every node and thread: a sed per thread (700 processes at 100 nodes, for
# seconds) cost the nodes wake-ups while it read them (12 a second against 7)
snap() {
  files=()
  for p in "${pids[@]}"; do files+=(/proc/"$p"/task/*/schedstat /proc/"$p"/task/*/status); done
  awk -v order="${pids[*]}" '
    { split(FILENAME, f, "/"); p = f[3] }
    FILENAME ~ /schedstat$/ && FNR == 1 { ns[p] += $1 }
    /^voluntary_ctxt_switches:/ { w[p] += $2 }
    END { n = split(order, o, " "); for (i = 1; i <= n; i++) print ns[o[i]] + 0, w[o[i]] + 0 }' "${files[@]}" 2>/dev/null
}
health() { curl -s -m 2 "$(host "$N"):$(aport "$N")/_cluster/health"; }
seen=0
for _ in $(seq 1 $((120 + N * 3 / 10))); do
  seen=$(health | sed -n 's/.*"number_of_nodes": *\([0-9]*\).*/\1/p')
  [ "$seen" = "$N" ] && break
  sleep 1
done
if [ "$seen" != "$N" ]; then
  echo "idle-cost: node$N sees ${seen:-no} members of $N after $((120 + N * 3 / 10)) s" >&2
  exit 1
fi
# what the formation cost: every node's CPU and voluntary context switches (wake-ups)
# from its spawn until node N saw N (SECONDS counts from this script's start, just
# before the spawn)
snap | sort -n | awk -v t="$SECONDS" -v n="$N" '{s += $1; w += $2; v[NR] = $1}
  END {printf "idle-cost: node%d saw %d members %d s after the spawn; the nodes had used %.2f s of CPU (median %.1f ms) and woken %d times\n",
    n, n, t, s / 1e9, v[int((NR + 1) / 2)] / 1e6, w}'
sleep "${SETTLE:-5}" # first publications and elections settle
snap >"$D/s0"
sleep "$SECS"
snap >"$D/s1"
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
paste "$D/s0" "$D/s1" | awk -v s="$SECS" '{printf "%.3f %.1f\n", ($3 - $1) / s / 1e6, ($4 - $2) / s}' >"$D/per-node"
echo "idle-cost: $N nodes${SEEDS:+ (3 seeds)}, $SECS s, $BIN${EXTRA:+, $EXTRA}"
echo "  CPU per node: median $(cut -d' ' -f1 "$D/per-node" | median) ms/s (min $(cut -d' ' -f1 "$D/per-node" | sort -n | head -1), max $(cut -d' ' -f1 "$D/per-node" | sort -n | tail -1))"
echo "  wake-ups per node: median $(cut -d' ' -f2 "$D/per-node" | median) /s"
echo "  RssAnon per node: median $(for p in "${pids[@]}"; do sed -n 's/^RssAnon:\s*\([0-9]*\).*/\1/p' /proc/"$p"/status; done | median) kB"
curl -s -m 2 "$(host "$N"):$(aport "$N")/metrics" |
  grep -E '^clusterlua_(beats_total|probes_total\{kind="requested"|downs_total)' | sed "s/^/  node$N: /"
