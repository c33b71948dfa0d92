#!/bin/sh
# Runs the C test binaries and the busted specs; ends with "N passed, N failed",
# counting individual cases (C PASS/FAIL lines and busted's TAP lines).
mode=all
case "$1" in --c-only) mode=c; shift ;; --lua-only) mode=lua; shift ;; esac
bin=$1; shift
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
pass=0; fail=0
if [ "$mode" != lua ]; then
  for t in "$@"; do
    echo "== $t"
    "$t" >"$log/c.out" 2>&1; rc=$?
    cat "$log/c.out"
    p=$(grep -c '^PASS ' "$log/c.out"); f=$(grep -c '^FAIL ' "$log/c.out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL $t: exited $rc"; fi
    pass=$((pass + p)); fail=$((fail + f))
  done
fi
if [ "$mode" != c ]; then
  echo "== busted"
  "$bin" /usr/bin/busted -o TAP ${BUSTED_ARGS:-} >"$log/b.out" 2>&1; rc=$?
  cat "$log/b.out"
  p=$(grep -c '^ok ' "$log/b.out"); f=$(grep -c '^not ok ' "$log/b.out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL busted: exited $rc"; fi
  pass=$((pass + p)); fail=$((fail + f))
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
