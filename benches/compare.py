#!/usr/bin/env python3
"""End-to-end comparison of hashpyc with `python -m compileall`, side by side.

    python3 benches/compare.py [--python PYTHON] [--scales 1,4,9,16] [--runs 3] [--corpus DIR]
    python3 benches/compare.py --versions 3.11,3.12,3.13,3.14,3.15 [--corpus DIR] [--uv REQS]

Copies the target interpreter's stdlib and site-packages (the .py files; --corpus DIR: that
directory's instead) into a temporary directory, replicates it 4x, 9x and 16x, and times with hyperfine (installed from
Debian's packages when missing):

  cold     hashpyc compile            vs  compileall -q -j0 --invalidation-mode checked-hash
  no-op    hashpyc compile (fresh)    vs  the same compileall re-run, and compileall's
                                          timestamp-mode re-run on a timestamp tree;
                                          hashpyc as a repeated run finds the tree (its
                                          pycs found good remembered) and with every pyc
                                          read whole (a first re-run)
  check    hashpyc check on the fresh tree
  floor    compiling and marshalling every file in-process, the files dealt out to one
           process per core: the cost no orchestration can avoid

and prints a Markdown table of ratios. Times are medians; one machine, one benchmark.

With --versions, one row per CPython version instead: the same corpus (--corpus, a
directory of .py files such as a venv's site-packages; default: the stdlib of the oldest
version asked for) compiled cold by hashpyc and by compileall, and the floor as CPU
seconds (compiling and marshalling every file in one process, divided by the cores), the
three taking turns. Seconds are medians; each ratio is taken run by run (the commands of
one run, measured side by side, over each other) and the table gives the median of those,
with the lowest and highest in brackets: a drift of the machine's speed between runs
cancels out of each run's ratio, where it would not out of a ratio of two medians.
The last two columns count CPU seconds instead of wall time (user + system of every process
each command started, also those that outlive it: the script is their subreaper; other work
on the machine does not count, though it still slows what is counted): on a VM whose speed
drifts they move less than the wall-time ratios, and they show what a busier machine would see.
Interpreters are found where the tests find them ($HASHPYC_TEST_PYTHONS, pyenv's versions,
the ones provision-pythons unpacked, pythonX.Y on PATH). With --uv REQS (a pinned
requirements file), each row also times uv's `pip install --compile-bytecode` of those
requirements into a new venv against the same install without compiling (uv from PATH or
--uv-bin; its cache warmed by an untimed run first), and hashpyc's cold build of the venv
the plain install leaves: uv's compile time is the difference of the two installs.
"""

import argparse
import glob
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every path pasted into a shell command (hyperfine's and the --prepare commands) is quoted.
q = shlex.quote

FLOOR = r"""
import marshal, os, sys
# The floor: compile and marshal every file in-process, the list dealt out (largest
# first, round robin) to one process per core, so its wall time is CPU seconds / cores.
files = [l for l in open(sys.argv[1]).read().split("\n") if l]
jobs = int(sys.argv[2])
files.sort(key=lambda p: -os.path.getsize(p))
pids = []
for j in range(jobs):
    pid = os.fork()
    if pid == 0:
        for p in files[j::jobs]:
            with open(p, "rb") as f:
                src = f.read()
            try:
                marshal.dumps(compile(src, p, "exec", dont_inherit=True))
            except Exception:
                pass
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
"""


def run(cmd, **kw):
    """subprocess.run in a process group of its own, the whole group killed when the script
    is interrupted meanwhile (SIGINT, or SIGTERM: see `on_sigterm_exit`), so that nothing
    it started goes on writing into the trees the script then removes."""
    with subprocess.Popen(cmd, start_new_session=True, **kw) as p:
        try:
            out, err = p.communicate()
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
            raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def on_sigterm_exit():
    """SIGTERM (what CI sends a job it cancels) ends the script as SIGINT does, through its
    `finally` blocks: the work directory's trees and hyperfine's JSON file are removed."""
    def terminate(signum, _frame):
        signal.signal(signum, signal.SIG_IGN)
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)


def sh(cmd, **kw):
    """Run `cmd` untimed; a failure ends the script naming the command."""
    r = run(cmd, **kw)
    if r.returncode != 0:
        fail(cmd, r.returncode, r.stderr)
    return r


def fail(cmd, code, stderr=None):
    """End the script: `cmd` failed, never a result to time or print."""
    shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
    why = "killed by signal %d" % -code if code < 0 else "exit status %d" % code
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    sys.exit("error: `%s` failed (%s)%s" % (shown, why, ", its stderr:\n" + stderr.rstrip() if stderr else ""))


class Tree(str):
    """A command that compiles or checks a tree: exit status 1 (sources that do not compile,
    as in the stdlib's own test data, which both tools report) is a result, when its output
    says that is all it is (see `unexplained`); any other failure (an interpreter refused, a
    missing binary, bad arguments, a pyc that cannot be written) ends the run."""


def allowed(cmd):
    return (0, 1) if isinstance(cmd, Tree) else (0,)


def unexplained(cmd, stdout, stderr):
    """The lines of a tree command's output that exited 1 telling of something else than a
    source that does not compile: hashpyc prints any other problem as an `error:` line on
    stderr (a compile failure is `path:line:col: Kind: message`), and `check` each finding on
    stdout, one whose source does not compile saying so. compileall -q prints compile
    failures alone, so its exit status 1 is taken as before."""
    text = cmd if isinstance(cmd, str) else shlex.join(cmd)
    if "-m compileall" in text:
        return []
    bad = [l for l in (stderr or "").splitlines() if l.startswith("error:")]
    return bad + [l for l in (stdout or "").splitlines() if l.strip() and "the source does not compile" not in l]


def judge_tree(cmd, code, stdout, stderr):
    """End the script unless a tree command's exit status `code` is a result (see `Tree`)."""
    if code not in (0, 1):
        fail(cmd, code, stderr)
    bad = unexplained(cmd, stdout, stderr) if code == 1 else []
    if bad:
        shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
        sys.exit("error: `%s` exited 1 for something else than sources that do not compile:\n%s"
                 % (shown, "\n".join(bad)))


def run_tree(cmd, **kw):
    """Run a command compiling or checking a tree (a list) untimed, as `Tree` commands are
    judged; its output is captured, for judging and for a failure's message."""
    r = run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    judge_tree(cmd, r.returncode, r.stdout, r.stderr)
    return r


def ratio(a, b, fmt="%.2fx"):
    """a / b for a table, "n/a" when b is not a positive time (nothing measurable)."""
    return fmt % (a / b) if b > 0 else "n/a"


def ensure_hyperfine():
    """hyperfine on PATH, Debian's package installed when it is missing; a one-line error
    when it cannot be."""
    if shutil.which("hyperfine"):
        return
    print("hyperfine not found: installing Debian's package", file=sys.stderr)
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    try:
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "hyperfine"]):
            subprocess.run(prefix + cmd, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit("hyperfine not found, and installing Debian's package failed (%s): install hyperfine and run again" % e)
    if not shutil.which("hyperfine"):
        sys.exit("hyperfine not found on PATH after installing Debian's package: install it and run again")


# Read by the scripts themselves (where interpreters are found), not by hashpyc.
SCRIPT_VARIABLES = ("HASHPYC_TEST_PYTHONS", "HASHPYC_PY_CACHE")


def isolate():
    """Run every hashpyc of the script with none of the user's HASHPYC_* variables (a
    HASHPYC_CACHE would make a cold build a warm one) and no state directory
    (HASHPYC_NO_STATE=1: nothing an earlier run remembered, such as failures or pycs found
    good, answers a cold build), unless a command sets its own (`with_state`). The commands
    also pass --no-config: a hashpyc.toml in the current directory does not apply."""
    ignored = sorted(k for k in os.environ if k.startswith("HASHPYC_") and k not in SCRIPT_VARIABLES)
    if ignored:
        print("ignoring %s from the environment: hashpyc runs without them" % ", ".join(ignored), file=sys.stderr)
    for k in [k for k in os.environ if k.startswith("HASHPYC_")]:
        del os.environ[k]
    os.environ["HASHPYC_NO_STATE"] = "1"


def with_state(directory):
    """The `env` prefix giving a command the state directory `directory` of its own."""
    return ["env", "-u", "HASHPYC_NO_STATE", "HASHPYC_STATE_DIR=" + directory]


def prepare(args, python_arg, hyperfine=True):
    """hyperfine (when the script uses it), the hashpyc binary (--hashpyc, which must exist; without it the repository's
    release build, built when missing), and the target interpreter itself, not a launcher
    (pyenv's shims cost tens of milliseconds a start): (python, version). From here on,
    hashpyc runs isolated from the user's settings (`isolate`), and SIGTERM cleans up."""
    on_sigterm_exit()
    isolate()
    if hyperfine:
        ensure_hyperfine()
    if args.hashpyc is None:
        args.hashpyc = os.path.join(ROOT, "target", "release", "hashpyc")
        if not os.path.exists(args.hashpyc):
            print("%s not found: building it (cargo build --release)" % args.hashpyc, file=sys.stderr)
            sh(["cargo", "build", "--release", "--manifest-path", os.path.join(ROOT, "Cargo.toml")])
            if not os.path.exists(args.hashpyc):
                sys.exit("%s not found after cargo build (CARGO_TARGET_DIR is set?): name the binary with --hashpyc"
                         % args.hashpyc)
    args.hashpyc = os.path.abspath(args.hashpyc)
    if not os.path.isfile(args.hashpyc) or not os.access(args.hashpyc, os.X_OK):
        sys.exit("--hashpyc: %s is not an executable file" % args.hashpyc)
    python, version = subprocess.run(
        [shutil.which(python_arg) or python_arg, "-c", "import sys; print(sys.executable); print(sys.version.split()[0])"],
        check=True, capture_output=True, text=True).stdout.split()
    return python, version


def python_dirs(python):
    out = subprocess.run(
        [python, "-I", "-c", "import sysconfig, json; p = sysconfig.get_paths(); "
         "print(json.dumps(sorted({p['stdlib'], p['purelib'], p['platlib']})))"],
        check=True, capture_output=True, text=True).stdout
    return [d for d in json.loads(out) if os.path.isdir(d)]


def copy_corpus(dirs, dest):
    """Copy every .py file under dirs into dest/<n>/..., skipping __pycache__."""
    n = 0
    seen = set()
    for i, d in enumerate(dirs):
        for base, subdirs, files in os.walk(d):
            subdirs[:] = sorted(s for s in subdirs if s != "__pycache__")
            rel = os.path.relpath(base, d)
            for f in files:
                if not f.endswith(".py"):
                    continue
                src = os.path.join(base, f)
                real = os.path.realpath(src)
                if real in seen or not os.path.isfile(src):
                    continue
                seen.add(real)
                dst_dir = os.path.join(dest, str(i), rel)
                os.makedirs(dst_dir, exist_ok=True)
                shutil.copyfile(src, os.path.join(dst_dir, f))
                n += 1
    return n


def replicate(corpus, dest, scale):
    """dest/copy0..copyN-1, hard-linked to the corpus (directories are real)."""
    os.makedirs(dest)
    for k in range(scale):
        sh(["cp", "-al", corpus, os.path.join(dest, "copy%d" % k)])


def hyperfine(commands, runs, prepare=None, warmup=1):
    """Median wall seconds of each command, run side by side (interleaved by hyperfine).
    `prepare` (untimed) is one command for all, or a list with one per command."""
    prepares = prepare if isinstance(prepare, list) else [prepare] * len(commands)
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        cmd = ["hyperfine", "-i", "--style", "none", "--runs", str(runs), "--warmup", str(warmup),
               "--export-json", path]
        if isinstance(prepare, list):
            for p in prepare:
                cmd += ["--prepare", p or "true"]
        elif prepare:
            cmd += ["--prepare", prepare]
        cmd += commands
        sh(cmd, stdout=subprocess.DEVNULL)
        with open(path) as f:
            results = json.load(f)["results"]
    finally:
        os.unlink(path)
    # -i times every run, so that one failure ends the run with the command's own stderr
    # (run once more untimed) instead of hyperfine's bare exit status.
    # A tree command that exited 1 is run once more untimed too, its output judged (hyperfine
    # keeps none).
    for c, p, r in zip(commands, prepares, results):
        codes = r.get("exit_codes") or []
        bad = [code for code in codes if code not in allowed(c)]
        if bad or 1 in codes:
            if p:
                sh(["sh", "-c", p], stdout=subprocess.DEVNULL)
            again = run(["sh", "-c", c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if bad:
                fail(c, bad[0], again.stderr)
            judge_tree(c, again.returncode, again.stdout, again.stderr)
    return [r["median"] for r in results]


def interleaved(commands, runs, prepare=None, cpu=False, rounds=False):
    """Median wall seconds of each command, the commands taking turns run after run (A B C
    A B C …), so that a shared machine's drift hits them alike: for ratios of commands
    whose difference is a few percent. `prepare` (untimed) is one command for all, or a
    list with one per command. With `cpu`, also the median CPU seconds (user + system) of
    each command and every process it started (`cpu_seconds`): (walls, cpus). With
    `rounds`, every run's seconds instead of the medians (one list per command, in run
    order), for ratios taken run by run (`paired`)."""
    prepares = prepare if isinstance(prepare, list) else [prepare] * len(commands)
    times = [[] for _ in commands]
    cpus = [[] for _ in commands]
    for _ in range(runs):
        for i, c in enumerate(commands):
            if prepares[i]:
                sh(["sh", "-c", prepares[i]], stdout=subprocess.DEVNULL)
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                before = cpu_seconds()
                start = time.perf_counter()
                code = run(["sh", "-c", c], stdout=out, stderr=err).returncode
                times[i].append(time.perf_counter() - start)
                cpus[i].append(cpu_seconds(c) - before)
                if code != 0:
                    out.seek(0)
                    err.seek(0)
                    stdout, stderr = (f.read().decode(errors="replace") for f in (out, err))
                    if code not in allowed(c):
                        fail(c, code, stderr)
                    judge_tree(c, code, stdout, stderr)
    if rounds:
        return (times, cpus) if cpu else times
    walls = [median(t) for t in times]
    if cpu:
        return walls, [median(t) for t in cpus]
    return walls


def median(xs):
    """The middle value (the upper of the two middle ones for an even count), as the
    tables have always taken it."""
    return sorted(xs)[len(xs) // 2]


def paired(numerators, denominators):
    """A table cell for ratios taken run by run, run i's numerator over run i's denominator
    (the two measured side by side, `interleaved`, so a drift of the machine's speed between
    runs cancels out of each, which it does not out of a ratio of two medians): their
    median, and with several runs the lowest and highest in brackets, so that a row shows
    how far it moved within the run; "n/a" when a denominator is not a positive time."""
    if not numerators or any(b <= 0 for b in denominators):
        return "n/a"
    ratios = [a / b for a, b in zip(numerators, denominators)]
    cell = "%.2fx" % median(ratios)
    if len(ratios) > 1:
        cell += " (%.2f–%.2f)" % (min(ratios), max(ratios))
    return cell


PR_SET_CHILD_SUBREAPER = 36
SUBREAPER = None


def become_subreaper():
    """Make this script the parent of every process its commands leave behind (Linux's
    PR_SET_CHILD_SUBREAPER): orphans, such as compileall's pool workers on 3.12+ that
    outlive its wait, or a killed interpreter's children, are then reparented here instead
    of to init, and their CPU time reaches RUSAGE_CHILDREN once reaped. False where prctl
    is missing (then `cpu_seconds` falls back to the machine's busy time)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(cmd, limit=60.0):
    """Wait for every process `cmd` left behind (reparented here, the subreaper) to end,
    so that its CPU time is counted; give up after `limit` seconds, saying so."""
    deadline = time.monotonic() + limit
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                print("warning: processes `%s` left behind still run after %.0f s; their CPU time "
                      "is not counted" % (cmd, limit), file=sys.stderr)
                return
            time.sleep(0.002)


def cpu_seconds(cmd=None):
    """CPU seconds (user + system) of every process the commands run so far started, and
    of every process those started, whether or not they outlived their parent (the script
    is their subreaper: see `become_subreaper`); with `cmd`, after waiting for what `cmd`
    left behind. Other work on the machine does not count. Without a subreaper, the
    machine's busy time (`busy_seconds`)."""
    if not subreaper():
        return busy_seconds()
    if cmd is not None:
        reap_orphans(cmd)
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def subreaper():
    """Whether this script is the subreaper of its commands (`become_subreaper`, tried once;
    a warning when it cannot be)."""
    global SUBREAPER
    if SUBREAPER is None:
        SUBREAPER = become_subreaper()
        if not SUBREAPER:
            print("warning: cannot become the subreaper of the commands (prctl); CPU columns are "
                  "the machine's busy time, which counts everything else running", file=sys.stderr)
    return SUBREAPER


def cpu_meaning():
    """What the CPU columns count, for the table's heading."""
    if subreaper():
        return "the CPU seconds of each command's processes, those that outlive it included"
    return "the machine's busy CPU seconds while each command ran (no subreaper here)"


def busy_seconds():
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq; not
    idle, I/O wait or time stolen by the host), from /proc/stat: the fallback of
    `cpu_seconds` where this script cannot be the subreaper of its commands (without it,
    RUSAGE_CHILDREN saw a tenth of compileall's CPU on 3.12+, whose pool workers outlive
    its wait). Includes whatever else runs, so measure on an otherwise idle machine."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def move_aside(path, work):
    """A shell command, untimed, that clears `path` for the next run's copy. It moves `path`,
    if it exists, into `work`/trash instead of deleting it (everything under `work` goes at
    the end): on ext4 without a journal (this project's CI machines) the inode allocator
    skips every inode freed in the last 30 s, one lookup each, so creating files just after
    deleting a tree costs about 1 ms of kernel time per file, for every tool alike (measured
    20x the normal cost). On a tmpfs (the default --workdir), whose inodes cost the same
    however recently others were freed, it deletes it: kept, the trees' pycs would fill the
    memory (a 16x tree's are about 3 GB)."""
    if filesystem(work) == "tmpfs":
        return "rm -rf %s" % q(path)
    trash = os.path.join(work, "trash")
    os.makedirs(trash, exist_ok=True)
    return 'if [ -e %s ]; then mv %s %s/"$(date +%%s%%N)"; fi' % (q(path), q(path), q(trash))


def floor_command(python, tree, cores, work):
    """A command whose wall time is the floor, for hyperfine to run beside the others."""
    files = []
    for base, subdirs, names in os.walk(tree):
        subdirs[:] = [s for s in subdirs if s != "__pycache__"]
        files += [os.path.join(base, n) for n in names if n.endswith(".py")]
    listing = os.path.join(work, "files-%s.txt" % os.path.basename(tree))
    with open(listing, "w") as f:
        f.write("\n".join(files))
    script = os.path.join(work, "floor.py")
    with open(script, "w") as f:
        f.write(FLOOR)
    return shlex.join(["env", "-u", "PYTHONPATH", "PYTHONHASHSEED=0", python, "-S", "-s", "-W", "ignore", script, listing,
                       str(cores)])


def peak_rss(hashpyc, python, tree):
    """hashpyc's own peak RSS (workers excluded) while recompiling the whole tree."""
    env = dict(os.environ, HASHPYC_TRACE="1")
    out = run_tree([hashpyc, "compile", "--no-config", "-q", "--force", "--python", python, tree], env=env).stderr
    for line in out.splitlines():
        if "peak memory:" in line:
            return line.split("peak memory: hashpyc ")[1].split(",")[0]
    return "?"


def workdir(path):
    """--workdir's value, the directory made (with its parents) when it does not exist yet."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise argparse.ArgumentTypeError("cannot create %s: %s" % (path, e.strerror or e))
    return path


def arguments(doc):
    """The options every benchmark script takes (--python, --runs, --hashpyc, --workdir, --corpus)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--python", default="python3", help="interpreter to target (default: python3)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per command at scale 1 (default: 3)")
    ap.add_argument("--hashpyc", help="the binary to measure, which must exist (default: target/release/hashpyc of "
                                      "this repository, built with cargo build --release when missing)")
    ap.add_argument("--workdir", default="/dev/shm" if os.path.isdir("/dev/shm") else None, type=workdir,
                    help="where the trees go, made when it does not exist (default: /dev/shm, a tmpfs, so that "
                         "the file system's inode allocation does not drown the comparison; both tools write the "
                         "same files)")
    ap.add_argument("--corpus", help="the directory whose .py files are compiled (default: the target interpreter's "
                                     "stdlib and site-packages; with --versions, the stdlib of the oldest version)")
    return ap


def corpus_dirs(args, python):
    """The directories whose .py files make the corpus: --corpus, or the interpreter's own."""
    if not args.corpus:
        return python_dirs(python)
    if not os.path.isdir(args.corpus):
        sys.exit("--corpus: %s is not a directory" % args.corpus)
    return [args.corpus]


# Where find_python looks, for --help.
WHERE_PYTHONS = ("each version's interpreter is the first found of: $HASHPYC_TEST_PYTHONS (paths separated by spaces "
                 "or colons), $PYENV_ROOT/versions/X.Y.*/bin/pythonX.Y (default ~/.pyenv), "
                 "$HASHPYC_PY_CACHE/X.Y/usr/bin/pythonX.Y (default ~/.cache/hashpyc-pythons, where "
                 "provision-pythons unpacks them), pythonX.Y on PATH")


def find_python(version):
    """The interpreter for "3.X", where the tests look for one; None when there is none."""
    major_minor = tuple(int(x) for x in version.split("."))
    candidates = os.environ.get("HASHPYC_TEST_PYTHONS", "").replace(":", " ").split()
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", version + ".*", "bin", "python" + version)),
                         reverse=True)
    cache = os.environ.get("HASHPYC_PY_CACHE") or os.path.expanduser("~/.cache/hashpyc-pythons")
    candidates.append(os.path.join(cache, version, "usr", "bin", "python" + version))
    candidates.append(shutil.which("python" + version) or "")
    for c in candidates:
        if not c or not os.path.exists(c):
            continue
        try:
            out = subprocess.run([c, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
                                 capture_output=True, text=True, timeout=30).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue
        if tuple(int(x) for x in out) == major_minor:
            return c
    return None


def find_pythons(spec):
    """[(version, interpreter)] for a comma-separated list such as "3.12,3.13", in its
    order; a version with no interpreter is reported as skipped, and none at all ends the
    run."""
    versions = [v.strip() for v in spec.split(",") if v.strip()]
    for v in versions:
        if v.count(".") != 1 or not all(part.isdigit() for part in v.split(".")):
            sys.exit("--versions: %r is not a version like 3.13" % v)
    found = []
    for v in versions:
        if tuple(int(x) for x in v.split(".")) < (3, 7):
            print("CPython %s: SKIPPED, hashpyc needs CPython 3.7 or newer" % v, file=sys.stderr)
        else:
            found.append((v, find_python(v)))
    for v, p in found:
        if p is None:
            print("CPython %s: not found, SKIPPED (see --help for where interpreters are looked for)" % v,
                  file=sys.stderr)
    found = [(v, p) for v, p in found if p]
    if not found:
        sys.exit("no interpreter found for %s" % spec)
    return found


def stdlib_dir(python):
    """Where the interpreter's standard library lives."""
    return subprocess.run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()


def uv_rows(uv, python, reqs, work, runs, hp):
    """uv's install of `reqs` with and without --compile-bytecode, and hashpyc's cold build
    of the plain install's site-packages, side by side: (with, without, hashpyc, files),
    the first three each run's seconds in run order."""
    venv = os.path.join(work, "uv-venv")
    # Never let uv fetch an interpreter: the row is about the one given.
    env_prefix = "env UV_NO_PROGRESS=1 UV_PYTHON_DOWNLOADS=never"
    make = "%s; %s %s venv -q --python %s %s" % (move_aside(venv, work), env_prefix, q(uv), q(python), q(venv))
    install = "%s %s pip install -q --python %s -r %s" % (env_prefix, q(uv), q(os.path.join(venv, "bin", "python")), q(reqs))
    sh(["sh", "-c", make + " && " + install])  # fills uv's cache, untimed
    site = subprocess.run([os.path.join(venv, "bin", "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    files = sum(1 for _, _, names in os.walk(site) for n in names if n.endswith(".py"))
    with_c, without, h = interleaved(
        [install + " --compile-bytecode", install,
         Tree(shlex.join([hp, "compile", "--no-config", "-q", "--python", os.path.join(venv, "bin", "python"), site]))],
        runs, prepare=[make, make, make + " && " + install], rounds=True)
    return with_c, without, h, files


def per_version(args):
    """One row per CPython version: cold builds against compileall and the floor."""
    cores = os.cpu_count() or 1
    found = find_pythons(args.versions)
    if args.uv and shutil.which(args.uv_bin) is None:
        sys.exit("--uv: uv not found (`%s`); install it or name it with --uv-bin" % args.uv_bin)
    prepare(args, found[0][1], hyperfine=False)  # the commands take turns here, without hyperfine
    hp = args.hashpyc
    work = tempfile.mkdtemp(prefix="hashpyc-bench-", dir=args.workdir)
    try:
        corpus = os.path.join(work, "corpus")
        if args.corpus:
            nfiles = copy_corpus(corpus_dirs(args, None), corpus)
            what = "the .py files of %s" % os.path.basename(os.path.abspath(args.corpus))
        else:
            stdlib = stdlib_dir(found[0][1])
            nfiles = copy_corpus([stdlib], corpus)
            what = "CPython %s's stdlib" % found[0][0]
        print("Measured %s on %d cores: %d files (%s), the same tree for every version; %d runs, the "
              "commands of a row taking turns (A B C A B C ...), each on a fresh copy; seconds: medians; "
              "ratios: the median of the runs' own ratios (each run's commands side by side), their "
              "lowest and highest in brackets; CPU columns: %s." % (
                  time.strftime("%Y-%m-%d"), cores, nfiles, what, args.runs, cpu_meaning()))
        print()
        head = ("| CPython | floor | cold: hashpyc | cold: compileall | compileall / hashpyc | hashpyc / floor "
                "| CPU: compileall / hashpyc | CPU: hashpyc / floor |")
        rule = "|---|---:|---:|---:|---:|---:|---:|---:|"
        if args.uv:
            head += " uv compile (files) | uv compile / hashpyc |"
            rule += "---:|---:|"
        print(head)
        print(rule, flush=True)
        t = os.path.join(work, "t")
        prep = "%s; cp -r %s %s" % (move_aside(t, work), q(corpus), q(t))
        for v, python in found:
            version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                                     check=True, capture_output=True, text=True).stdout.strip()
            print("CPython %s (%s): cold builds and the floor" % (version, python), file=sys.stderr)
            # The floor: compile + marshal CPU in one process, divided
            # by the cores (CPU time, so the dealing of files to processes does not count).
            # Counted like the CPU columns (`cpu_seconds`), so the last column
            # compares like with like, and run in the same rotation as the cold builds
            # (A B C A B C ...): measured apart, a drift of the machine's speed between the
            # two went straight into the hashpyc / floor ratio; every ratio is taken run by
            # run (`paired`), so a drift between runs cancels out of each too.
            (cold_h, cold_c, _), (cpu_h, cpu_c, floor_cpu) = interleaved(
                [Tree(shlex.join([hp, "compile", "--no-config", "-q", "--python", python, t])),
                 Tree(shlex.join([python, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "checked-hash", t])),
                 floor_command(python, corpus, 1, work)],
                args.runs, prepare=[prep, prep, None], cpu=True, rounds=True)
            floor = [f / cores for f in floor_cpu]
            row = "| %s | %.2f s | %.2f s | %.2f s | %s | %s | %s | %s |" % (
                version, median(floor), median(cold_h), median(cold_c), paired(cold_c, cold_h),
                paired(cold_h, floor), paired(cpu_c, cpu_h),
                paired(cpu_h, floor_cpu))
            if args.uv:
                print("CPython %s: uv with and without --compile-bytecode, hashpyc on the venv" % version,
                      file=sys.stderr)
                with_c, without, h, files = uv_rows(args.uv_bin, python, os.path.abspath(args.uv), work, args.runs, hp)
                uv_compile = [w - wo for w, wo in zip(with_c, without)]
                row += " %.2f s (%d) | %s |" % (median(uv_compile), files, paired(uv_compile, h))
            print(row, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = arguments(__doc__)
    ap.add_argument("--scales", default="1,4,9,16", help="corpus replication factors (default: 1,4,9,16; 9x is about 100 000 files)")
    ap.add_argument("--versions", help="one row per CPython version (e.g. 3.11,3.12,3.13,3.14,3.15) instead of scales; "
                                       + WHERE_PYTHONS)
    ap.add_argument("--uv", metavar="REQS", help="with --versions: also compare with uv's --compile-bytecode, "
                                                  "installing this requirements file")
    ap.add_argument("--uv-bin", default="uv", help="the uv binary (default: uv on PATH)")
    args = ap.parse_args()
    if args.versions:
        per_version(args)
        return
    if args.uv:
        sys.exit("--uv needs --versions (uv's rows are per CPython version)")

    python, version = prepare(args, args.python)
    cores = os.cpu_count() or 1
    hp = args.hashpyc
    env_note = "PYTHONDONTWRITEBYTECODE" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""
    work = tempfile.mkdtemp(prefix="hashpyc-bench-", dir=args.workdir)
    try:
        corpus = os.path.join(work, "corpus")
        nfiles = copy_corpus(corpus_dirs(args, python), corpus)
        print("corpus: %d .py files from %s; %d cores" % (
            nfiles, args.corpus or "CPython %s's stdlib and site-packages" % version, cores), file=sys.stderr)
        rows = []
        for scale in [int(s) for s in args.scales.split(",")]:
            runs = args.runs if scale == 1 else 1
            tree = os.path.join(work, "x%d" % scale)
            replicate(corpus, tree, scale)
            t = os.path.join(work, "t")
            prep = "%s && cp -al %s %s" % (move_aside(t, work), q(tree), q(t))
            print("scale %dx: cold builds and the floor" % scale, file=sys.stderr)
            cold_h, cold_c, floor = hyperfine(
                [Tree(shlex.join([hp, "compile", "--no-config", "-q", "--python", python, t])),
                 Tree(shlex.join([python, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "checked-hash", t])),
                 floor_command(python, tree, cores, work)],
                runs, prepare=prep, warmup=1 if scale == 1 else 0)
            # Trees for the re-runs: one per tool and mode.
            trees = {}
            # hashpyc's state directory of these runs, and one where no run records the
            # pycs it found good (a first re-run, or no state directory kept): every pyc
            # is read whole there.
            state = with_state(os.path.join(work, "state"))
            whole = with_state(os.path.join(work, "whole")) + ["HASHPYC_SETTLE_SECONDS=1000000000"]
            written = 0.0
            for name, cmd in [("h", state + [hp, "compile", "--no-config", "-q", "--python", python]),
                              ("c", [python, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "checked-hash"]),
                              ("ts", [python, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "timestamp"])]:
                d = os.path.join(work, "%s%d" % (name, scale))
                sh(["cp", "-al", tree, d])
                run_tree(cmd + [d])
                trees[name] = d
                written = written or time.time()
            # As a repeated run finds them: recorded by a run at least the settling time
            # (3 s) after the pycs were written (see the README's *Unchanged pycs*).
            time.sleep(max(0.0, written + 3.5 - time.time()))
            run_tree(state + [hp, "check", "--no-config", "-q", "--python", python, trees["h"]])
            print("scale %dx: no-op re-runs and check" % scale, file=sys.stderr)
            noop_h, noop_c, noop_ts, check_h, noop_whole = hyperfine(
                [Tree(shlex.join(state + [hp, "compile", "--no-config", "-q", "--python", python, trees["h"]])),
                 Tree(shlex.join([python, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "checked-hash",
                                  trees["c"]])),
                 Tree(shlex.join([python, "-m", "compileall", "-q", "-j0", trees["ts"]])),
                 Tree(shlex.join(state + [hp, "check", "--no-config", "-q", "--python", python, trees["h"]])),
                 Tree(shlex.join(whole + [hp, "compile", "--no-config", "-q", "--python", python, trees["h"]]))],
                max(runs, 3) if scale == 1 else 1, warmup=1 if scale == 1 else 0)
            rss = peak_rss(hp, python, trees["h"])
            row = dict(scale=scale, files=nfiles * scale, floor=floor, cold_h=cold_h, cold_c=cold_c,
                       noop_h=noop_h, noop_c=noop_c, noop_ts=noop_ts, check_h=check_h, rss=rss,
                       noop_whole=noop_whole)
            if not rows:
                print_header(version, cores, env_note, filesystem(work))
            print_row(row)
            rows.append(row)
            for d in list(trees.values()) + [tree, t]:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def filesystem(path):
    """The type of the filesystem holding `path` as `stat -f` names it (tmpfs, ext2/ext3, ...)."""
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True).stdout.strip() or "?"


def print_header(version, cores, env_note, fs):
    print("Measured %s on %d cores with CPython %s, trees on %s (medians of hyperfine runs; every ratio "
          "from commands run side by side)." % (time.strftime("%Y-%m-%d"), cores, version, fs))
    if env_note:
        print("(%s was set; it does not affect compileall's or hashpyc's writes.)" % env_note)
    print()
    print("| corpus | files | floor | cold: hashpyc | cold: compileall | compileall / hashpyc | hashpyc / floor "
          "| no-op: hashpyc | vs compileall checked-hash | vs compileall timestamp | check "
          "| no-op, every pyc read whole | vs compileall checked-hash | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)


def print_row(r):
    print("| %dx | %d | %.2f s | %.2f s | %.2f s | %s | %s | %.3f s | %s | %s | %.3f s "
          "| %.3f s | %s | %s |" % (
              r["scale"], r["files"], r["floor"], r["cold_h"], r["cold_c"], ratio(r["cold_c"], r["cold_h"]),
              ratio(r["cold_h"], r["floor"]), r["noop_h"], ratio(r["noop_c"], r["noop_h"], "%.0fx"),
              ratio(r["noop_ts"], r["noop_h"], "%.0fx"), r["check_h"], r["noop_whole"],
              ratio(r["noop_c"], r["noop_whole"], "%.0fx"), r["rss"]), flush=True)


if __name__ == "__main__":
    main()
