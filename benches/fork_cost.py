#!/usr/bin/env python3
"""What a fresh fork adds to a compile, per CPython version.

    python3 benches/fork_cost.py [--versions 3.12,3.13,3.14,3.15] [--corpus DIR]
                                 [--files 150] [--runs 5]

On 3.12+ hashpyc compiles the few files whose bytes could depend on what earlier compiles
interned (frozensets of strings) in a fresh fork of a pristine worker instead of in a warm,
long-lived one (README, "Determinism"). This measures what such a fork costs, with the
worker's own flags (`python -S -s -B`, PYTHONHASHSEED=0), on a sample of the corpus's .py
files (every k-th of the sorted list; default corpus: the stdlib of the oldest version
asked for), the two ways taking turns:

  warm    each file compiled and marshalled in one process, as a long-lived worker does
  fork    each file compiled and marshalled in a child forked from a process that has
          compiled nothing yet (like hashpyc's zygote): the child's CPU and page faults
          (wait4) plus the parent's own over the loop of forks and waits (getrusage), since
          the parent pays for fork() itself (copying its page tables) and for the
          copy-on-write faults after it
  empty   a fork whose child exits at once: the fork itself, child and parent as above

and prints, per version, medians over the runs of: ms of CPU per file warm, user and system
ms per forked compile, minor page faults per fork and per empty fork (child and parent),
and the extra CPU a fork adds to a compile (child and parent). Multiply the last by the "fresh forks" of `HASHPYC_TRACE=1` for what
the forks cost a build. Interpreters are found as benches/compare.py finds them.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import WHERE_PYTHONS, find_pythons, on_sigterm_exit, stdlib_dir  # noqa: E402

MEASURE = r"""
import marshal, posix, resource, sys, time
_code = type(compile("", "", "exec"))  # what the zygote has done before it forks
mode, listing = sys.argv[1], sys.argv[2]
files = [l for l in open(listing).read().split("\n") if l]
sources = []
for p in files:
    if mode == "empty":
        sources.append((p, b""))
        continue
    with open(p, "rb") as f:
        sources.append((p, f.read()))
if mode == "warm":
    t = time.process_time()
    for p, s in sources:
        try:
            marshal.dumps(compile(s, p, "exec", dont_inherit=True))
        except Exception:
            pass
    print(time.process_time() - t, 0.0, 0)
else:
    user = system = faults = 0
    # The parent's own share (fork() copies its page tables; its writes after a fork fault
    # on pages the child shared), over the whole loop of forks and waits.
    before = resource.getrusage(resource.RUSAGE_SELF)
    for p, s in sources:
        pid = posix.fork()
        if pid == 0:
            if mode == "fork":
                try:
                    marshal.dumps(compile(s, p, "exec", dont_inherit=True))
                except Exception:
                    pass
            posix._exit(0)
        _, status, usage = posix.wait4(pid, 0)
        user += usage.ru_utime
        system += usage.ru_stime
        faults += usage.ru_minflt
    after = resource.getrusage(resource.RUSAGE_SELF)
    user += after.ru_utime - before.ru_utime
    system += after.ru_stime - before.ru_stime
    faults += after.ru_minflt - before.ru_minflt
    print(user, system, faults)
"""


def sample(corpus, count):
    files = []
    for root, dirs, names in os.walk(corpus):
        dirs.sort()
        files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".py")]
    if not files:
        sys.exit(f"no .py files under {corpus}")
    step = max(1, len(files) // count)
    return files[::step][:count]


def run(python, mode, listing):
    """One measure; an interpreter that cannot run it ends the script with one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    try:
        r = subprocess.run([python, "-S", "-s", "-B", "-c", MEASURE, mode, listing],
                           env=env, capture_output=True, text=True)
    except OSError as e:
        sys.exit(f"error: {python} could not be started ({e.strerror or e})")
    out = r.stdout.split()
    if r.returncode != 0 or len(out) != 3:
        why = f"killed by signal {-r.returncode}" if r.returncode < 0 else f"exit status {r.returncode}"
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"error: {python} failed to measure `{mode}` ({why}): {last}")
    return float(out[0]), float(out[1]), int(out[2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", default="3.12,3.13,3.14,3.15",
                    help="the CPython versions to measure (default 3.12,3.13,3.14,3.15); " + WHERE_PYTHONS)
    ap.add_argument("--corpus", help="a directory of .py files (default: the stdlib of the oldest version)")
    ap.add_argument("--files", type=int, default=150, help="how many files to sample (default 150)")
    ap.add_argument("--runs", type=int, default=5, help="rounds of warm, fork, empty (default 5)")
    args = ap.parse_args()
    if args.files < 1 or args.runs < 1:
        sys.exit("--files and --runs take a number of at least 1")
    on_sigterm_exit()
    found = find_pythons(args.versions)
    oldest = min(found, key=lambda vp: tuple(int(x) for x in vp[0].split(".")))[1]
    corpus = args.corpus or stdlib_dir(oldest)
    files = sample(corpus, args.files)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(files) + "\n")
        listing = f.name
    try:
        print(f"{len(files)} files sampled from {corpus}; medians of {args.runs} runs, the three taking turns.\n")
        print("| CPython | warm: CPU ms/file | fork: user ms | fork: system ms | faults/fork | faults/empty fork | "
              "extra CPU per fork |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        n = len(files)
        for v, python in found:
            warm, user, system, faults, empty = [], [], [], [], []
            for _ in range(args.runs):
                warm.append(run(python, "warm", listing)[0] * 1000 / n)
                u, s, flt = run(python, "fork", listing)
                user.append(u * 1000 / n)
                system.append(s * 1000 / n)
                faults.append(flt / n)
                empty.append(run(python, "empty", listing)[2] / n)
            med = statistics.median
            extra = med([u + s - w for u, s, w in zip(user, system, warm)])
            print(f"| {v} | {med(warm):.2f} | {med(user):.2f} | {med(system):.2f} | {med(faults):.0f} | "
                  f"{med(empty):.0f} | {extra:.2f} ms |", flush=True)
    finally:
        os.unlink(listing)


if __name__ == "__main__":
    main()
