#!/usr/bin/env bash
# Static analysis of the project: cppcheck and clang-tidy on the C core (src/, src/bind/), luacheck on
# the Lua code (lua/, bin/, spec/). Installs a missing tool with apt-get when it can.
#   usage: spec/support/static_analysis.sh [cppcheck|clang-tidy|luacheck ...]   (default: all three)
# Prints every finding as file:line: [check] message, then one summary line:
#   static analysis: cppcheck N, clang-tidy N, luacheck N findings
# Exits 1 when there is any finding (or a tool is missing), 0 when clean.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

PG_INC=$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
LUA_INC=${LUA54_INC:-/usr/include/lua5.4}
C_FILES=(src/*.c src/bind/*.c)
tmp=$(mktemp -d /tmp/lakebase-sa.XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT

# Checks that are on: every clang static analyzer check and bugprone-*, minus the ones that only
# flag deliberate, correct idioms of this code base:
#   easily-swappable-parameters         any two adjacent parameters of one type (style)
#   implicit-widening-of-multiplication constants such as 1024 * 1024 used as size_t
#   narrowing-conversions               int -> char of a byte already range-checked
#   not-null-terminated-result          memcpy into binary buffers (hash input) or before a
#                                       second memcpy that copies the terminator
#   suspicious-string-compare           strcmp(a, b) && strcmp(a, c) as "neither" (correct)
#   insecureAPI.DeprecatedOrUnsafeBufferHandling  every memcpy/snprintf (C11 Annex K advice)
TIDY_CHECKS='-*,clang-analyzer-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-implicit-widening-of-multiplication-result,-bugprone-narrowing-conversions,-bugprone-not-null-terminated-result,-bugprone-suspicious-string-compare,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling'

# cppcheck false positives, each with its reason (file-scoped, so a new finding elsewhere counts):
#   memleak in lb_error.c      the message is handed to err->message, freed by lb_error_clear
#   autoVariables in lb_pool.c a waiter on the stack joins the FIFO and is unlinked (by itself or
#                              by the granter) before wait_locked returns: the intrusive queue
cat >"$tmp/cppcheck.supp" <<'EOF'
missingIncludeSystem
missingInclude
unmatchedSuppression
memleak:src/lb_error.c
autoVariables:src/lb_pool.c
EOF

apt_install() {
  # Only as root with apt: never ask for a password in CI.
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$tmp/apt.log" 2>&1 ||
    { apt-get update -q >>"$tmp/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$tmp/apt.log" 2>&1; }
}

need() { # need <command> <package...>: the command, installing its package when missing
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  echo "static analysis: installing $*" >&2
  apt_install "$@" && command -v "$cmd" >/dev/null 2>&1
}

tidy_bin() {
  local b
  for b in clang-tidy clang-tidy-14 clang-tidy-15 clang-tidy-16; do
    command -v "$b" >/dev/null 2>&1 && { echo "$b"; return 0; }
  done
  apt_install clang-tidy >/dev/null 2>&1 || apt_install clang-tidy-14 >/dev/null 2>&1
  for b in clang-tidy clang-tidy-14; do
    command -v "$b" >/dev/null 2>&1 && { echo "$b"; return 0; }
  done
  return 1
}

declare -A count
missing=0

run_cppcheck() {
  if ! need cppcheck cppcheck; then echo "cppcheck: not available" >&2; missing=1; count[cppcheck]="missing"; return; fi
  # No system include paths: cppcheck does not need them, and luaconf.h trips its preprocessor.
  cppcheck -q --std=c11 --enable=warning,performance,portability --inline-suppr \
    --suppressions-list="$tmp/cppcheck.supp" -D_GNU_SOURCE -D__GNUC__ -Isrc -Isrc/bind \
    --template='{file}:{line}: [cppcheck {id}] {severity}: {message}' \
    "${C_FILES[@]}" >"$tmp/cppcheck.out" 2>&1
  grep -E '^[^ ]+:[0-9]+: \[cppcheck ' "$tmp/cppcheck.out" >"$tmp/cppcheck.find"
  cat "$tmp/cppcheck.find"
  count[cppcheck]=$(wc -l <"$tmp/cppcheck.find")
}

run_clang_tidy() {
  local tidy f
  if ! tidy=$(tidy_bin); then echo "clang-tidy: not available" >&2; missing=1; count[clang-tidy]="missing"; return; fi
  : >"$tmp/tidy.out"
  for f in "${C_FILES[@]}"; do
    "$tidy" -quiet --checks="$TIDY_CHECKS" "$f" -- -std=c11 -D_GNU_SOURCE -pthread -Isrc \
      -I"$PG_INC" -I"$LUA_INC" >>"$tmp/tidy.out" 2>/dev/null
  done
  # One line per finding: file:line: [check] message (notes and code excerpts left out).
  sed -nE "s#^$PWD/##; s#^([^ ]+:[0-9]+):[0-9]+: (warning|error): (.*) \[([^]]+)\]\$#\1: [\4] \3#p" \
    "$tmp/tidy.out" | sort -u >"$tmp/tidy.find"
  cat "$tmp/tidy.find"
  count[clang-tidy]=$(wc -l <"$tmp/tidy.find")
}

run_luacheck() {
  if ! need luacheck lua-check; then echo "luacheck: not available" >&2; missing=1; count[luacheck]="missing"; return; fi
  # .luacheckrc at the repository root holds the options (std, line length, globals).
  luacheck --formatter plain --codes lua bin spec >"$tmp/luacheck.out" 2>&1
  grep -E '^[^ ]+:[0-9]+:[0-9]+: ' "$tmp/luacheck.out" | sed -E 's#^([^:]+:[0-9]+):[0-9]+: \(([WE][0-9]+)\) #\1: [luacheck \2] #' \
    >"$tmp/luacheck.find"
  cat "$tmp/luacheck.find"
  count[luacheck]=$(wc -l <"$tmp/luacheck.find")
}

tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=(cppcheck clang-tidy luacheck)
for t in "${tools[@]}"; do
  case "$t" in
    cppcheck) run_cppcheck ;;
    clang-tidy) run_clang_tidy ;;
    luacheck) run_luacheck ;;
    *) echo "usage: $0 [cppcheck|clang-tidy|luacheck ...]" >&2; exit 2 ;;
  esac
done

total=0
summary=()
for t in "${tools[@]}"; do
  c=${count[$t]:-0}
  summary+=("$t $c")
  [ "$c" = missing ] || total=$((total + c))
done
msg=$(IFS=,; echo "${summary[*]}")
msg=${msg//,/, }
echo "static analysis: $msg findings"
[ "$total" -eq 0 ] && [ "$missing" -eq 0 ]
