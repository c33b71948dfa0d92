#!/bin/sh
# Checks that the files of runtime/ depend on each other one way only (issue 16):
#
# 1. No circle between object files: A uses B when A has an undefined symbol that B
#    defines (from `nm` of build/obj/runtime/**/*.o, so it sees what the linker sees,
#    macros and inline functions aside). Files that reach each other, directly or
#    through others, form a circle; each circle is printed with the symbols behind
#    each of its edges, so the fix is visible.
# 2. No hand-written declaration, in a .c file, of a function or variable that another
#    file defines: it belongs in that file's header, where the compiler checks it
#    against the definition.
#
# Usage: tools/check-deps.sh [--decls-only] [BUILD_DIR]   (default: build; run `make` first)
# Exits 1 when it finds either; --decls-only skips the circles. `make test` runs both.
decls_only=0
if [ "$1" = --decls-only ]; then decls_only=1; shift; fi
build=${1:-build}
objdir=$build/obj/runtime
if [ ! -d "$objdir" ]; then
  echo "check-deps: $objdir not found: build first (make BUILD=$build)" >&2
  exit 2
fi
export LC_ALL=C # sort and join must agree on the order
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "object kind symbol" lines: kind D (defined, global) or U (undefined). The objects
# are those of today's sources: a stale one left by a moved file must not count.
find runtime -name '*.c' | sort | while read -r c; do
  o=$build/obj/${c%.c}.o
  rel=${c%.c}.o
  if [ ! -f "$o" ]; then echo "check-deps: $o missing: build first (make BUILD=$build)" >&2; exit 2; fi
  nm -P "$o" | awk -v f="$rel" '
    $2 == "U" { print f, "U", $1; next }
    $2 ~ /^[A-TV-Z]$/ { print f, "D", $1 }'
done >"$tmp/syms" || exit 2

status=0

# ---- 1: circles ----
[ "$decls_only" -eq 1 ] && : >"$tmp/cycles" || awk '
  $2 == "D" { def[$3] = $1; next }
  { use[++nu] = $1 SUBSEP $3 }
  END {
    for (i = 1; i <= nu; i++) {
      split(use[i], p, SUBSEP)
      if (!(p[2] in def) || def[p[2]] == p[1]) continue
      e = p[1] SUBSEP def[p[2]]
      edge[e] = edge[e] " " p[2]
    }
    # transitive closure (a few dozen files: Floyd-Warshall is plenty)
    n = 0
    for (e in edge) {
      split(e, p, SUBSEP)
      for (k = 1; k <= 2; k++) if (!(p[k] in idx)) { idx[p[k]] = ++n; name[n] = p[k] }
      reach[idx[p[1]], idx[p[2]]] = 1
    }
    for (k = 1; k <= n; k++)
      for (i = 1; i <= n; i++)
        if ((i, k) in reach)
          for (j = 1; j <= n; j++)
            if ((k, j) in reach) reach[i, j] = 1
    cycles = 0
    for (i = 1; i <= n; i++) {
      if (i in done || !((i, i) in reach)) continue
      m = 0
      for (j = 1; j <= n; j++)
        if ((i, j) in reach && (j, i) in reach) { done[j] = 1; comp[j] = i; mem[++m] = name[j] }
      for (a = 2; a <= m; a++) { x = mem[a]; for (b = a - 1; b >= 1 && mem[b] > x; b--) mem[b + 1] = mem[b]; mem[b + 1] = x }
      members = ""
      for (a = 1; a <= m; a++) members = members " " mem[a]
      cycles++
      printf "circle %d:%s\n", cycles, members
      for (e in edge) {
        split(e, p, SUBSEP)
        a = idx[p[1]]; b = idx[p[2]]
        if (comp[a] == i && comp[b] == i) printf "  %s -> %s:%s\n", p[1], p[2], edge[e] | "sort"
      }
      close("sort")
      # the shortest circles first: pairs that use each other directly
      for (e in edge) {
        split(e, p, SUBSEP)
        if (comp[idx[p[1]]] == i && p[1] < p[2] && ((p[2] SUBSEP p[1]) in edge))
          printf "  pair: %s <-> %s\n", p[1], p[2] | "sort"
      }
      close("sort")
    }
    if (cycles) { printf "check-deps: %d circle(s) between the files of runtime/\n", cycles; exit 1 }
  }' "$tmp/syms" >"$tmp/cycles" || status=1

# ---- 2: hand-written declarations ----
# file-scope, non-static declarations in .c files: prototypes "type name(...);" and
# "extern type name;" (one line each: the project's style)
awk '$2 == "D" { print $3, $1 }' "$tmp/syms" | sort >"$tmp/defs"
find runtime -name '*.c' | sort | while read -r c; do
  awk -v f="$c" '
    /^(static|typedef|struct|enum|union|#|[ \t]|\/|\*|}|$)/ { next }
    /;[ \t]*(\/\*.*\*\/|\/\/.*)?[ \t]*$/ && !/=/ && !/\{/ {
      line = $0
      sub(/[ \t]*(\/\*.*\*\/|\/\/.*)?[ \t]*$/, "", line)
      id = ""
      if (match(line, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/)) {
        id = substr(line, RSTART, RLENGTH); sub(/[ \t]*\($/, "", id)
      } else if (line ~ /^extern[ \t]/ && match(line, /[A-Za-z_][A-Za-z0-9_]*[ \t]*(\[[^]]*\])?;$/)) {
        id = substr(line, RSTART, RLENGTH); sub(/[ \t]*(\[[^]]*\])?;$/, "", id)
      }
      if (id != "") print id, f, FNR ": " $0
    }' "$c"
done | sort >"$tmp/decls"
# keep the declarations whose symbol another object defines
join "$tmp/decls" "$tmp/defs" 2>/dev/null | awk '{
  obj = $NF; file = $2; o = file; sub(/\.c$/, ".o", o)
  if (obj == o) next
  line = $0; sub(/^[^ ]+ [^ ]+ /, "", line); sub(/ [^ ]+$/, "", line)
  printf "%s:%s  (defined in %s)\n", file, line, obj
}' >"$tmp/hand"

cat "$tmp/cycles"
if [ -s "$tmp/hand" ]; then
  echo "hand-written declarations of other files' symbols (include the header instead):"
  sed 's/^/  /' "$tmp/hand"
  echo "check-deps: $(wc -l <"$tmp/hand") hand-written declaration(s)"
  status=1
fi
if [ "$status" -eq 0 ]; then
  if [ "$decls_only" -eq 1 ]; then echo "check-deps: no hand-written declarations (circles not checked)"
  else echo "check-deps: no circle between the files of runtime/, no hand-written declarations"; fi
fi
exit $status
