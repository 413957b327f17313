#!/usr/bin/env python3
"""The bytecode cache, measured side by side (hyperfine; Debian's package when missing).

    python3 benches/cache.py [--python PYTHON] [--scales 1,4] [--runs 3] [--corpus DIR]

On the target interpreter's stdlib + site-packages (--corpus DIR: that directory's .py files)
and its 4x replica, in one hyperfine
run per table row so that every ratio compares commands run side by side:

  floor        compiling and marshalling every file in-process, one process per core
  cold         hashpyc compile without a cache, and with an empty cache (all misses stored)
  warm         a fresh copy of the tree (no pycs) at the same path, built from a full cache
  relocated    the same copy at another, longer path, built from the same cache
  limit        what a warm build cannot avoid: `hashpyc check` of the fresh tree (reading
               and hashing every source) plus `cp -r` of its pycs (into a directory removed
               beforehand, untimed)

and the cache's size on disk per MiB of pycs, uncompressed (the default) and with zstd
(HASHPYC_CACHE_COMPRESSION=zstd). The warm builds read the default (uncompressed) entries.
Prints Markdown tables. One machine, one benchmark.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import arguments, copy_corpus, corpus_dirs, filesystem, floor_command, hyperfine, interleaved, move_aside, prepare, q, ratio, replicate, run_tree, sh, Tree, with_state  # noqa: E402


def du(path, apparent):
    flag = ["--apparent-size"] if apparent else []
    out = subprocess.run(["du", "-s", "--block-size=1"] + flag + [path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def pyc_bytes(tree):
    total = 0
    for base, _, files in os.walk(tree):
        total += sum(os.path.getsize(os.path.join(base, f)) for f in files if f.endswith(".pyc"))
    return total


def pyc_only_copy(tree, dest):
    """dest mirrors tree's __pycache__ directories (only the pycs), for the `cp -r` limit."""
    for base, _, files in os.walk(tree):
        pycs = [f for f in files if f.endswith(".pyc")]
        if pycs:
            d = os.path.join(dest, os.path.relpath(base, tree))
            os.makedirs(d, exist_ok=True)
            for f in pycs:
                shutil.copyfile(os.path.join(base, f), os.path.join(d, f))


def from_cache(hp, python, cache, tree, state):
    """(written from the cache, compiled in all) for one build, from its summary line."""
    out = run_tree(state + [hp, "compile", "--no-config", "--python", python, "--cache", cache, tree]).stderr
    line = [l for l in out.splitlines() if l.startswith("Compiled ")][-1]
    total = int(line.split()[1])
    hits = int(line.split(" from the cache")[0].rsplit("(", 1)[1]) if " from the cache" in line else 0
    return hits, total


def main():
    ap = arguments(__doc__)
    ap.add_argument("--scales", default="1,4")
    args = ap.parse_args()

    python, version = prepare(args, args.python)
    cores = os.cpu_count() or 1
    hp = args.hashpyc
    work = tempfile.mkdtemp(prefix="hashpyc-cache-bench-", dir=args.workdir)
    try:
        corpus = os.path.join(work, "corpus")
        nfiles = copy_corpus(corpus_dirs(args, python), corpus)
        print("corpus: %d .py files from %s; %d cores" % (
            nfiles, args.corpus or "CPython %s's stdlib and site-packages" % version, cores), file=sys.stderr)
        timing, sizes = [], []
        for scale in [int(s) for s in args.scales.split(",")]:
            runs = args.runs if scale == 1 else 1
            tree = os.path.join(work, "x%d" % scale)
            replicate(corpus, tree, scale)
            t = os.path.join(work, "t")
            moved = os.path.join(work, "elsewhere", "a-longer-directory-name", "t")
            empty = os.path.join(work, "empty-cache")
            full = os.path.join(work, "full-cache")
            # Fill the full cache once, and measure the cache's size both ways.
            for name, comp in [("zstd", "zstd"), ("none", "none")]:
                c = os.path.join(work, "size-" + name)
                sh(["rm", "-rf", t]); sh(["cp", "-al", tree, t])
                env = dict(os.environ, HASHPYC_CACHE_COMPRESSION=comp)
                run_tree([hp, "compile", "--no-config", "-q", "--python", python, "--cache", c, t], env=env)
                sizes.append(dict(scale=scale, kind=name, pycs=pyc_bytes(t), disk=du(os.path.join(c, "v1"), False),
                                  apparent=du(os.path.join(c, "v1"), True)))
                if name == "none":  # the default: what the warm builds read
                    shutil.copytree(c, full)
                shutil.rmtree(c)
            print("scale %dx: cold (no cache, empty cache) and the floor, taking turns" % scale, file=sys.stderr)
            copy_t = "%s && cp -al %s %s" % (move_aside(t, work), q(tree), q(t))
            cold, cold_empty, floor = interleaved(
                [Tree(shlex.join([hp, "compile", "--no-config", "-q", "--python", python, t])),
                 Tree(shlex.join([hp, "compile", "--no-config", "-q", "--python", python, "--cache", empty, t])),
                 floor_command(python, tree, cores, work)],
                max(runs, 5) if scale == 1 else 3, prepare=[copy_t, "%s && %s" % (copy_t, move_aside(empty, work)), None])
            print("scale %dx: warm, relocated, and the limit" % scale, file=sys.stderr)
            # The limit's parts: check of a fresh tree, and copying its pycs.
            fresh = os.path.join(work, "fresh")
            sh(["rm", "-rf", fresh]); sh(["cp", "-al", tree, fresh])
            # The warm builds' own state directory (the interpreter's probe remembered, as on
            # a machine that has built before); the cold builds have none. The limit's check
            # shares it but records no pyc as found good (it reads every pyc whole).
            state = with_state(os.path.join(work, "state"))
            whole = state + ["HASHPYC_SETTLE_SECONDS=1000000000"]
            run_tree(state + [hp, "compile", "--no-config", "-q", "--python", python, "--cache", full, fresh])
            only = os.path.join(work, "pycs-only")
            pyc_only_copy(fresh, only)
            dest = os.path.join(work, "pycs-copy")
            warm, relocated = interleaved(
                [Tree(shlex.join(state + [hp, "compile", "--no-config", "-q", "--python", python, "--cache", full, t])),
                 Tree(shlex.join(state + [hp, "compile", "--no-config", "-q", "--python", python, "--cache", full,
                                          moved]))],
                max(runs, 5),
                prepare=[copy_t, "%s && mkdir -p %s && cp -al %s %s" % (
                    move_aside(moved, work), q(os.path.dirname(moved)), q(tree), q(moved))])
            check, cp = hyperfine(
                [Tree(shlex.join(whole + [hp, "check", "--no-config", "-q", "--python", python, fresh])),
                 "cp -r %s %s" % (q(only), q(dest))],
                max(runs, 5), warmup=1, prepare=[None, move_aside(dest, work)])
            sh(["rm", "-rf", t]); sh(["cp", "-al", tree, t])
            hits_same = from_cache(hp, python, full, t, state)
            sh(["rm", "-rf", moved]); sh(["mkdir", "-p", os.path.dirname(moved)]); sh(["cp", "-al", tree, moved])
            hits_moved = from_cache(hp, python, full, moved, state)
            timing.append(dict(scale=scale, files=nfiles * scale, floor=floor, cold=cold, cold_empty=cold_empty,
                               warm=warm, relocated=relocated, limit=check + cp, check=check, cp=cp,
                               hits_same=hits_same, hits_moved=hits_moved))
            for d in [tree, t, moved, empty, full, fresh, only, dest]:
                shutil.rmtree(d, ignore_errors=True)
            print_tables(version, cores, timing, sizes, filesystem(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_tables(version, cores, timing, sizes, fs):
    print("\nMeasured %s on %d cores with CPython %s, trees on %s (medians; the cold builds and the floor "
          "taking turns run after run, as do the warm builds; the limit's parts by hyperfine; preparing "
          "each tree is not timed)." % (time.strftime("%Y-%m-%d"), cores, version, fs))
    print()
    print("| corpus | files | floor | cold, no cache | cold, empty cache | empty / no cache | warm | warm / floor "
          "| relocated | relocated / floor | limit (check + cp) | warm / limit | from the cache |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in timing:
        print("| %dx | %d | %.2f s | %.2f s | %.2f s | %s | %.3f s | %s | %.3f s | %s | %.3f s (%.3f + %.3f) | %s | %d/%d, %d/%d |" % (
            r["scale"], r["files"], r["floor"], r["cold"], r["cold_empty"], ratio(r["cold_empty"], r["cold"]),
            r["warm"], ratio(r["warm"], r["floor"], "%.3fx"), r["relocated"], ratio(r["relocated"], r["floor"], "%.3fx"),
            r["limit"], r["check"], r["cp"], ratio(r["warm"], r["limit"]), r["hits_same"][0], r["hits_same"][1],
            r["hits_moved"][0], r["hits_moved"][1]))
    print()
    print("| corpus | entries stored | pycs | cache on disk | per MiB of pycs | apparent size | per MiB of pycs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for s in sizes:
        mib = s["pycs"] / 2**20
        print("| %dx | %s | %.1f MiB | %.1f MiB | %s | %.1f MiB | %s |" % (
            s["scale"], s["kind"], mib, s["disk"] / 2**20, ratio(s["disk"] / 2**20, mib, "%.2f MiB"),
            s["apparent"] / 2**20, ratio(s["apparent"] / 2**20, mib, "%.2f MiB")))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
