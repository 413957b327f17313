#!/usr/bin/env bash
# The stale-pyc incident (../../README.md, "Why"), runnable.
#
# A generator rewrites rule.py every 0.3 s with a new two-digit threshold (same size every
# time) and runs runner.py, which imports it, after each write:
#   timestamp  CPython's default: the pyc records the source's mtime in whole seconds and
#              its size, so a rewrite within the same second is not noticed
#   hashpyc    the same loop after one `hashpyc compile`: the pyc is checked-hash, CPython
#              re-validates it against the source bytes on every import (and rewrites it as
#              checked-hash when they differ)
#
# Usage: demo.sh [--assert]   (env: PYTHON, default python3; HASHPYC, default: hashpyc on
# PATH, else this checkout's release build, target/release/hashpyc, built when missing)
# With --assert, exit 1 unless the timestamp column shows stale values and the hashpyc
# column none (or say why staleness could not be provoked here).
set -euo pipefail
PYTHON=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${HASHPYC:-}" ]; then
  if command -v hashpyc >/dev/null 2>&1; then
    HASHPYC=hashpyc
  else
    checkout=$(cd "$here/../.." && pwd)
    HASHPYC=$checkout/target/release/hashpyc
    if [ ! -x "$HASHPYC" ]; then
      echo "hashpyc is not on PATH; building this checkout's release binary (cargo build --release)" >&2
      (cd "$checkout" && cargo build --release --quiet)
    fi
    echo "hashpyc is not on PATH; using this checkout's $HASHPYC" >&2
  fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run_loop() { # run_loop DIR -> one "wrote ran" line per iteration
  local dir=$1
  for i in $(seq 10 29); do
    echo "threshold = $i" > "$dir/rule.py"
    sleep 0.3
    ran=$(cd "$dir" && env -u PYTHONDONTWRITEBYTECODE "$PYTHON" runner.py)
    echo "$i $ran"
  done
}

for mode in timestamp hashpyc; do
  mkdir -p "$work/$mode"
  cp "$here/runner.py" "$work/$mode/"
  echo "threshold = 10" > "$work/$mode/rule.py"
done
"$HASHPYC" compile -q --python "$PYTHON" "$work/hashpyc/rule.py"

run_loop "$work/timestamp" > "$work/timestamp.out"
run_loop "$work/hashpyc" > "$work/hashpyc.out"

printf '%-7s  %-22s  %-22s\n' wrote "timestamp pycs ran" "hashpyc pycs ran"
stale_ts=0; stale_h=0
while read -r wrote ran_ts && read -r _ ran_h <&3; do
  mark_ts=""; mark_h=""
  [ "$ran_ts" = "$wrote" ] || { mark_ts=" (stale)"; stale_ts=$((stale_ts + 1)); }
  [ "$ran_h" = "$wrote" ] || { mark_h=" (stale)"; stale_h=$((stale_h + 1)); }
  printf '%-7s  %-22s  %-22s\n' "$wrote" "$ran_ts$mark_ts" "$ran_h$mark_h"
done < "$work/timestamp.out" 3< "$work/hashpyc.out"
echo "stale: $stale_ts with timestamp pycs, $stale_h with hashpyc"

if [ "${1:-}" = "--assert" ]; then
  if [ "$stale_h" -ne 0 ]; then
    echo "error: hashpyc pycs served stale code" >&2; exit 1
  fi
  if [ "$stale_ts" -eq 0 ]; then
    echo "error: no stale value with timestamp pycs: each write and import took a second" >&2
    echo "or more here, or the file system stores sizes/mtimes differently, so the" >&2
    echo "same-second, same-size rewrite the incident needs never happened" >&2
    exit 1
  fi
fi
