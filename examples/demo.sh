#!/bin/bash
# make demo: the three-node edge cluster of examples/edge on loopback. It elects a master,
# loses it to kill -9, elects another, takes the killed node back, then stops.
# DEMO_KEEP=1 leaves the cluster running.
set -u
bin=${1:-build/clusterlua}
dir=$(mktemp -d /tmp/clusterlua-demo.XXXXXX)
topo=examples/edge/topology.lua
pids=""

start() { # start N: node N on port 437N, admin 920N
  "$bin" --name "node$1@127.0.0.1:437$1" --cookie edge-servers --admin "127.0.0.1:920$1" \
    --data "$dir/node$1" "$topo" >"$dir/node$1.log" 2>&1 &
  eval "pid$1=$!"
  pids="$pids $!"
}
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null; done
  for p in $pids; do wait "$p" 2>/dev/null; done
  rm -rf "$dir"
}
master_of() { # the master node N reports, or empty
  curl -s -m 1 "http://127.0.0.1:920$1/_cluster/health" | sed -n 's/.*"master": *"\([^"]*\)".*/\1/p'
}
# waits until every listed node reports the same master (at most $2 seconds); prints it
agree() {
  nodes=$1; limit=$(( $2 * 100 )); i=0
  while [ $i -lt $limit ]; do
    first=""; same=1
    for n in $nodes; do
      m=$(master_of "$n")
      [ -z "$m" ] && { same=0; break; }
      [ -z "$first" ] && first=$m
      [ "$m" != "$first" ] && { same=0; break; }
    done
    [ $same = 1 ] && [ -n "$first" ] && { echo "$first"; return 0; }
    i=$((i + 1)); sleep 0.01
  done
  return 1
}
now_ms() { date +%s%3N; }

for p in 4371 4372 4373 9201 9202 9203; do
  if (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "demo: port $p on 127.0.0.1 is in use; stop whatever runs there first" >&2; exit 1
  fi
done 2>/dev/null

echo "== starting node1, node2, node3 (examples/edge, cookie edge-servers)"
start 1; start 2; start 3
t0=$(now_ms)
if ! master=$(agree "1 2 3" 15); then
  echo "demo: no master within 15 s; logs:" >&2; tail -n 20 "$dir"/node*.log >&2; cleanup; exit 1
fi
echo "== master elected: $master ($(( $(now_ms) - t0 )) ms after start)"
"$bin" status --admin 127.0.0.1:9201

n=$(echo "$master" | sed 's/^node\([0-9]\).*/\1/')
eval "victim=\$pid$n"
rest=$(echo "1 2 3" | sed "s/$n//")
echo "== kill -9 of the master $master (pid $victim)"
t0=$(now_ms)
kill -9 "$victim"
while :; do
  m=$(agree "$rest" 15) || { echo "demo: no new master within 15 s" >&2; cleanup; exit 1; }
  [ "$m" != "$master" ] && break
done
t1=$(now_ms)
echo "== new master: $m, agreed by every survivor $(( t1 - t0 )) ms after the kill"
first=$(echo $rest | cut -d' ' -f1)
"$bin" status --admin "127.0.0.1:920$first"

echo "== restarting node$n"
start "$n"
i=0
until [ "$(master_of "$n")" = "$m" ] || [ $i -ge 1500 ]; do i=$((i + 1)); sleep 0.01; done
[ "$(master_of "$n")" = "$m" ] || { echo "demo: node$n did not re-join" >&2; cleanup; exit 1; }
echo "== node$n re-joined and follows $m"
"$bin" status --admin "127.0.0.1:920$n"

if [ "${DEMO_KEEP:-}" = 1 ]; then
  echo "== DEMO_KEEP=1: the cluster keeps running (data and logs in $dir)."
  echo "   stop it with: kill$pids"
  exit 0
fi
echo "== stopping the nodes"
cleanup
echo "== demo finished"
