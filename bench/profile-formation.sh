#!/bin/sh
# Where a large cluster's CPU goes while it forms (issue 18; docs/benchmarks.md, "A
# 200-node formation, profiled"): runs `make test-scale N=$N` (default 200), records
# `perf record -a` for $SECS s (default 20) from $AFTER s (default 25) after it starts,
# then samples every node's RssAnon three times, 20 s apart. Prints the shares by
# process and library, then the top symbols of the nodes, and leaves the raw data in
# $OUT (default a new directory under /tmp). Needs perf (linux-perf) and root.
set -u
N=${N:-200}
SECS=${SECS:-20}
AFTER=${AFTER:-25}
OUT=${OUT:-$(mktemp -d /tmp/clusterlua-profile-XXXXXX)}
cd "$(dirname "$0")/.." || exit 1
command -v perf >/dev/null || { echo "profile-formation: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
make test-scale N="$N" > "$OUT/scale.log" 2>&1 &
scale=$!
sleep "$AFTER"
perf record -F 250 -a -g -o "$OUT/perf.data" -- sleep "$SECS" > /dev/null 2>&1
for k in 1 2 3; do
  # the nodes of this run are the ones started from this checkout's build
  for p in $(pgrep -f "^$(pwd)/build/clusterlua --name node"); do
    awk '/^RssAnon/ {print $2}' "/proc/$p/status" 2>/dev/null
  done | sort -n | awk -v k="$k" '{a[NR] = $1} END {
      if (NR) printf "RssAnon sample %d: %d nodes, min %d kB, median %d kB, max %d kB\n", k, NR, a[1], a[int(NR / 2) + 1], a[NR] }' \
    | tee -a "$OUT/rss.txt"
  sleep 20
done
wait "$scale"
perf report -i "$OUT/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
perf report -i "$OUT/perf.data" --no-children --comm clusterlua --sort dso,sym --stdio -g none 2>/dev/null |
  grep -v '^#' | grep -v '^$' | head -25
grep -E '^# scale_spec' "$OUT/scale.log" | head -3
echo "profile-formation: data in $OUT"
