#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that adds latency, for "every request costs 20 ms more" runs.

    python3 benches/delay_proxy.py --upstream 127.0.0.1:8080 --delay-ms 20
                                   [--connect-delay-ms 0] [--listen 127.0.0.1:0]
                                   [--port-file FILE] [--max-seconds 3600]

Every byte the client sends reaches the upstream --delay-ms later (one-way latency on the
client->server direction, pipelined: a large body is delayed once, not once per chunk),
so each HTTP request/response exchange, on a new or a kept-alive connection, takes
--delay-ms longer. A new connection additionally waits --connect-delay-ms before the
proxy connects upstream (a TCP or TLS handshake's cost). Responses are passed on at once.

Prints "LISTENING 127.0.0.1:PORT" on stdout once it accepts connections (and writes the
port to --port-file if given). Both ends must be loopback addresses. Stops by itself after
--max-seconds. Standard library only, Python 3.7+. Used by tests/it/servers.rs
(DelayProxy) and by benchmark scripts.
"""

import argparse
import collections
import ipaddress
import os
import socket
import sys
import threading
import time


def loopback(hostport, what):
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit("%s %s is not a loopback address: this proxy only runs on loopback" % (what, hostport))
    return host, int(port)


class DelayLine:
    """Bytes from src are sent to dst `delay` seconds after they arrived."""

    def __init__(self, src, dst, delay):
        self.src, self.dst, self.delay = src, dst, delay
        self.queue = collections.deque()
        self.cond = threading.Condition()

    def reader(self):
        try:
            while True:
                data = self.src.recv(65536)
                with self.cond:
                    self.queue.append((time.monotonic() + self.delay, data))
                    self.cond.notify()
                if not data:
                    return
        except OSError:
            with self.cond:
                self.queue.append((time.monotonic(), b""))
                self.cond.notify()

    def writer(self):
        try:
            while True:
                with self.cond:
                    while not self.queue:
                        self.cond.wait()
                    due, data = self.queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    self.dst.shutdown(socket.SHUT_WR)
                    return
                self.dst.sendall(data)
        except OSError:
            pass


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                dst.shutdown(socket.SHUT_WR)
                return
            dst.sendall(data)
    except OSError:
        pass


def handle(client, upstream, delay, connect_delay):
    try:
        if connect_delay > 0:
            time.sleep(connect_delay)
        try:
            server = socket.create_connection(upstream)
        except OSError:
            client.close()
            return
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        line = DelayLine(client, server, delay)
        threads = [
            threading.Thread(target=line.reader, daemon=True),
            threading.Thread(target=line.writer, daemon=True),
            threading.Thread(target=pump, args=(server, client), daemon=True),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        server.close()
    finally:
        client.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT, loopback only")
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--connect-delay-ms", type=float, default=0)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--port-file", default="")
    ap.add_argument("--max-seconds", type=float, default=3600)
    args = ap.parse_args()
    upstream = loopback(args.upstream, "--upstream")
    listen = loopback(args.listen, "--listen")

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(listen)
    listener.listen(128)
    port = listener.getsockname()[1]

    timer = threading.Timer(args.max_seconds, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("LISTENING %s:%d" % (listen[0], port), flush=True)

    delay, connect_delay = args.delay_ms / 1000.0, args.connect_delay_ms / 1000.0
    while True:
        client, _ = listener.accept()
        threading.Thread(target=handle, args=(client, upstream, delay, connect_delay), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
