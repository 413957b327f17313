#!/usr/bin/env python3
"""The shared (remote) cache, measured side by side with a real server on 127.0.0.1.

    python3 benches/remote.py [--python PYTHON] [--runs 3] [--delay-ms 20] [--corpus DIR]

Starts nginx with WebDAV (Debian's package; `.ci/install-servers` installs it) on a free
loopback port, a delaying proxy in front of it (`benches/delay_proxy.py`), a listener that
never answers and a port where nothing listens; then, on the target interpreter's stdlib +
site-packages (--corpus DIR: that directory's .py files) copied to a tmpfs, times (the
commands taking turns, run after run; no hyperfine needed):

  floor          compiling and marshalling every file in-process, one process per core
  cold           no cache at all
  cold, empty    an empty remote: every lookup misses, every entry is uploaded
  warm           a full remote, an empty local cache, the tree at a new path
  warm, +D ms    the same through the proxy adding D ms to every request
  dead remote    nothing listening / a listener that never answers, on a cold build

and prints a Markdown table of ratios. One machine, one benchmark.
"""

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import ROOT, arguments, copy_corpus, corpus_dirs, filesystem, floor_command, interleaved, move_aside, prepare, q, ratio, run_tree, sh, Tree, with_state  # noqa: E402

NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid "{d}/nginx.pid";
error_log "{d}/error.log" warn;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  client_body_temp_path "{d}/client_body";
  proxy_temp_path "{d}/proxy";
  fastcgi_temp_path "{d}/fastcgi";
  uwsgi_temp_path "{d}/uwsgi";
  scgi_temp_path "{d}/scgi";
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port};
    root "{d}/data";
    location / {{
      dav_methods PUT DELETE MKCOL;
      create_full_put_path on;
      client_max_body_size 0;
    }}
  }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing answers on 127.0.0.1:%d" % port)


def nginx(work):
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(exe):
        raise SystemExit("nginx not found: run .ci/install-servers (Debian's nginx package)")
    d = os.path.join(work, "nginx")
    os.makedirs(os.path.join(d, "data"))
    port = free_port()
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(d=d, port=port))
    p = subprocess.Popen([exe, "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e", os.path.join(d, "error.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, port, os.path.join(d, "data")


def delay_proxy(port, ms):
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "benches", "delay_proxy.py"), "--upstream",
                          "127.0.0.1:%d" % port, "--delay-ms", str(ms)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    return p, int(line.rsplit(":", 1)[1])


def silent_listener():
    """Accepts connections and never answers (until the process ends)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    held = []

    def accept():
        while True:
            c, _ = s.accept()
            held.append(c)

    threading.Thread(target=accept, daemon=True).start()
    return s.getsockname()[1]


def main():
    ap = arguments(__doc__)
    ap.add_argument("--delay-ms", type=int, default=20)
    args = ap.parse_args()
    python, version = prepare(args, args.python, hyperfine=False)
    cores = os.cpu_count() or 1
    hp = args.hashpyc
    work = tempfile.mkdtemp(prefix="hashpyc-remote-bench-", dir=args.workdir)
    procs = []
    try:
        corpus = os.path.join(work, "corpus")
        nfiles = copy_corpus(corpus_dirs(args, python), corpus)
        print("corpus: %d .py files from %s; %d cores" % (nfiles, args.corpus or "CPython %s" % version, cores),
              file=sys.stderr)
        server, port, data = nginx(work)
        procs.append(server)
        proxy, proxy_port = delay_proxy(port, args.delay_ms)
        procs.append(proxy)
        url = "http://127.0.0.1:%d/cache" % port
        slow = "http://127.0.0.1:%d/cache" % proxy_port
        dead = "http://127.0.0.1:%d/cache" % free_port()
        silent = "http://127.0.0.1:%d/cache" % silent_listener()
        t = os.path.join(work, "t")
        moved = os.path.join(work, "elsewhere", "t")
        local = os.path.join(work, "local")
        fresh = "%s && %s && cp -al %s %s" % (move_aside(t, work), move_aside(local, work), q(corpus), q(t))
        fresh_moved = "%s && %s && mkdir -p %s && cp -al %s %s" % (
            move_aside(moved, work), move_aside(local, work), q(os.path.dirname(moved)), q(corpus), q(moved))
        build = shlex.join([hp, "compile", "--no-config", "-q", "--python", python])
        # The warm builds' own state directory (the interpreter's probe remembered, as on a
        # machine that has built before); the cold builds have none.
        state = with_state(os.path.join(work, "state"))
        warm_build = shlex.join(state + [hp, "compile", "--no-config", "-q", "--python", python])
        # Fill the remote once.
        sh(["sh", "-c", fresh])
        run_tree(state + [hp, "compile", "--no-config", "-q", "--python", python, "--cache-url", url, t])
        print("cold builds, dead remotes and the floor, taking turns", file=sys.stderr)
        cold, cold_empty, dead_t, silent_t, floor = interleaved(
            [Tree("%s %s" % (build, q(t))),
             Tree("%s --cache-url http://127.0.0.1:%d/empty %s" % (build, port, q(t))),
             Tree("%s --cache-url %s %s" % (build, dead, q(t))),
             Tree("%s --cache-url %s %s" % (build, silent, q(t))),
             floor_command(python, corpus, cores, work)],
            args.runs, prepare=[fresh, "%s && %s" % (fresh, move_aside(os.path.join(data, "empty"), work)), fresh, fresh,
                                None])
        print("warm builds from the remote, taking turns", file=sys.stderr)
        warm, warm_slow = interleaved(
            [Tree("%s --cache %s --cache-url %s %s" % (warm_build, q(local), url, q(moved))),
             Tree("%s --cache %s --cache-url %s %s" % (warm_build, q(local), slow, q(moved)))],
            args.runs, prepare=fresh_moved)
        # Check that the warm builds were all hits.
        sh(["sh", "-c", fresh_moved])
        out = run_tree(state + [hp, "compile", "--no-config", "--python", python, "--cache", local, "--cache-url", slow,
                                moved]).stderr
        summary = [l for l in out.splitlines() if l.startswith("Compiled")][-1]
        print("\nMeasured %s on %d cores with CPython %s, trees on %s, nginx WebDAV on 127.0.0.1 "
              "(medians of runs in which the commands take turns; preparing each tree is not timed)."
              % (time.strftime("%Y-%m-%d"), cores, version, filesystem(work)))
        print("\nA warm build through the %d ms proxy: `%s`\n" % (args.delay_ms, summary))
        print("| files | floor | cold, no cache | cold, empty remote | empty / no cache | warm remote, empty local, new path "
              "| warm / floor | warm, +%d ms per request | / floor | dead remote: nothing listening | never answers |"
              % args.delay_ms)
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print("| %d | %.2f s | %.2f s | %.2f s | %s | %.3f s | %s | %.3f s | %s | %+.2f s | %+.2f s |" % (
            nfiles, floor, cold, cold_empty, ratio(cold_empty, cold), warm, ratio(warm, floor, "%.3fx"), warm_slow,
            ratio(warm_slow, floor, "%.3fx"), dead_t - cold, silent_t - cold))
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
