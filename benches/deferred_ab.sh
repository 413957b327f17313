#!/usr/bin/env bash
# What compiling the deferred files in long-lived children of their own (3.13+, README,
# "Determinism"; HASHPYC_DEFERRED unset, the default: way `children`) changes, against a
# fresh fork each (HASHPYC_DEFERRED=fork: way `fork`): cold builds of a corpus with the same
# binary, the two ways taking turns, each on a fresh copy. Needs GNU time (/usr/bin/time,
# Debian's package `time`). A build that fails (an exit status other than 0, or 1 for
# anything but sources that do not compile: an `error:` line, which hashpyc prints for every
# other problem, where a compile failure is `path:line:col: Kind: message`) ends the script
# with its stderr.
#
#   benches/deferred_ab.sh PYTHON CORPUS [RUNS=8] [HASHPYC=target/release/hashpyc] [WORKDIR=/dev/shm]
#
# Prints one line per build (way, wall s, user s, system s, the workers' page faults from
# HASHPYC_TRACE), then per way the medians of the wall time and of the CPU time (user +
# system) and the mean page faults.
set -euo pipefail
python=${1:?usage: $0 PYTHON CORPUS [RUNS] [HASHPYC] [WORKDIR]}
corpus=${2:?usage: $0 PYTHON CORPUS [RUNS] [HASHPYC] [WORKDIR]}
runs=${3:-8}
hashpyc=${4:-$(dirname "$0")/../target/release/hashpyc}
[ -x /usr/bin/time ] || { echo "$0: needs GNU time at /usr/bin/time (Debian's package \`time\`)" >&2; exit 2; }
work=$(mktemp -d "${5:-/dev/shm}/deferred-ab.XXXXXX")
trap 'rm -rf "$work"' EXIT
# hashpyc runs with none of the user's HASHPYC_* variables (a HASHPYC_CACHE would make the
# cold builds warm ones), no state directory (nothing an earlier build remembered answers a
# later one) and no configuration file (--no-config).
while read -r var; do unset "$var"; done < <(compgen -e | grep '^HASHPYC_' || true)
export HASHPYC_NO_STATE=1
# Each build's tree is moved aside, not deleted right before the next build (see move_aside in
# benches/compare.py: ext4's inode allocator), except on a tmpfs, where deleting costs nothing.
fresh_tree() {
  if [ -e "$work/tree" ]; then
    if [ "$(stat -f -c %T "$work")" = tmpfs ]; then
      rm -rf "$work/tree"
    else
      mkdir -p "$work/trash" && mv "$work/tree" "$work/trash/$(date +%s%N)"
    fi
  fi
  cp -r "$corpus" "$work/tree"
}
for _ in $(seq "$runs"); do
  for way in children fork; do
    fresh_tree
    deferred=$([ "$way" = fork ] && echo fork || true)   # children: unset (empty), the default
    status=0
    /usr/bin/time -f "%e %U %S" -o "$work/time" env HASHPYC_DEFERRED="$deferred" HASHPYC_TRACE=1 \
      "$hashpyc" compile --no-config -q --python "$python" "$work/tree" 2> "$work/trace" || status=$?
    if [ "$status" -gt 1 ] || { [ "$status" -eq 1 ] && grep -q '^error:' "$work/trace"; }; then
      echo "$0: \`$hashpyc compile\` ($way) failed with exit status $status; its stderr:" >&2
      cat "$work/trace" >&2
      exit "$status"
    fi
    faults=$(grep -o 'page faults: hashpyc [0-9]*, workers [0-9]*' "$work/trace" | awk '{print $6}')
    echo "$way $(tail -1 "$work/time") $faults"   # GNU time writes "Command exited with non-zero status 1" first
  done
done | awk '
  { print; wall[$1] = wall[$1] " " $2; cpu[$1] = cpu[$1] " " ($3 + $4); faults[$1] += $5; n[$1]++ }
  function median(list,   a, k, i, j, t) {
    k = split(list, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END { for (w in n) printf "%s: median wall %.3f s, median CPU %.3f s, mean workers page faults %d\n", w, median(wall[w]), median(cpu[w]), faults[w] / n[w] }'
