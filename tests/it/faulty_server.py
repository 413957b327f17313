#!/usr/bin/env python3
"""A misbehaving HTTP/1.1 server on 127.0.0.1 for the cache client's failure tests.

    python3 tests/it/faulty_server.py --mode MODE --port-file FILE [--log FILE]
                                      [--max-seconds 900] [--retry-after S]

Listens on 127.0.0.1 on a port the kernel picks, writes that port to --port-file once it
accepts connections, and logs one line per request to --log ("PUT /a/b", or "CONNECT"
per accepted connection in accept-never-answer mode). Standard library only, Python 3.7+.

Modes:
  status:N             every request gets status N (500, 403, 404, 507, ...) and a short body
  garbage              every request gets 200 with 4096 random bytes
  truncated            200 with Content-Length: 1000, 10 bytes of body, then the connection
                       is closed
  trickle              the response (status line included) is sent one byte per second
  accept-never-answer  connections are accepted and never read from nor answered
  huge                 every GET gets 200 with Content-Length: 2^34 and zeros, sent until the
                       client stops reading (or 600 MiB); then "SENT <bytes>" is logged
  endless              the same without a Content-Length (the body ends when the connection
                       closes); other requests than GET get 201
  endless-entry        the same, the body starting with the cache entry magic `HPYCACHE`
  full-queue:MS        the in-memory store below (flaky:0), behind an accept queue that is
                       full at first, so that the kernel drops the connection attempts (SYNs)
                       it gets; MS milliseconds after the first attempt (a socket to its
                       port in SYN-SENT in /proc/net/tcp), "RELEASED" is logged and the queue
                       is emptied: the attempts the system resends from then on connect
  redirect             every request gets 302 with Location: http://127.0.0.2:<its port><the
                       path>?X-Amz-Signature=hunter2sig
  put-never-answer     GET and HEAD get 404; a PUT is read and never answered
  die-after:N          a dumb in-memory store (PUT stores, GET/HEAD read, DELETE removes)
                       that answers N requests correctly, then closes its listener and
                       every connection and exits: a server dying mid-build
  collections          the same store as a WebDAV server that wants collections made
                       first: a PUT whose parent collection was not made (MKCOL) gets 409,
                       as does a MKCOL whose parent is missing; MKCOL of one there gets 405
  flaky:N:FAULT        the same store (keyed by path without the query string), but of
                       the requests of each method to each path, the first N of every N+1
                       meet FAULT: a status (500, 503, ...), `reset` (the connection is
                       reset, unanswered) or `close` (closed, unanswered); the next one is
                       answered

With --retry-after, a fault's status carries `Retry-After: S`. It exits by itself after
--max-seconds, whatever happens.
"""

import argparse
import os
import socket
import struct
import sys
import threading
import time

REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
    507: "Insufficient Storage",
}


class Done(Exception):
    """The client closed the connection, or sent something unparseable."""


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Done()
        self.buf += data

    def read_until(self, marker, limit=1 << 20):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise Done()
            self._fill()
        head, self.buf = self.buf.split(marker, 1)
        return head

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_request(self):
        """(method, path, headers dict with lower-case names, body) or raises Done."""
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise Done()
        method, path, _ = parts
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return method, path, headers

    def read_body(self, headers):
        if headers.get("expect", "").lower() == "100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self.read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    # Trailers, then the final empty line.
                    while self.read_until(b"\r\n"):
                        pass
                    return body
                body += self.read_exact(size)
                self.read_until(b"\r\n")
        return self.read_exact(int(headers.get("content-length", "0") or 0))


def response(status, body=b"", head_only=False, extra=()):
    lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
             "Content-Length: %d" % len(body), "Server: hashpyc-faulty"]
    lines.extend(extra)
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return raw if head_only else raw + body


class Server:
    def __init__(self, mode, log_path, retry_after=None):
        self.mode = mode
        self.log_path = log_path
        self.extra = () if retry_after is None else ("Retry-After: %s" % retry_after,)
        self.seen = {}
        self.lock = threading.RLock()
        self.store = {}
        self.collections = {}
        self.answered = 0
        self.conns = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.filler = None
        if mode.startswith("full-queue:"):
            # A queue of one, held by a connection never accepted (until released).
            self.listener.listen(0)
            self.filler = socket.create_connection(self.listener.getsockname())
        else:
            self.listener.listen(64)

    def release_when_attempted(self):
        """Wait for a connection attempt to our port (SYN-SENT), then MS ms, then take
        connections again."""
        port = "%04X" % self.listener.getsockname()[1]
        while True:
            with open("/proc/net/tcp") as f:
                rows = [line.split() for line in f.readlines()[1:]]
            if any(r[2] == "0100007F:" + port and r[3] == "02" for r in rows):
                break
            time.sleep(0.005)
        time.sleep(int(self.mode.split(":", 1)[1]) / 1000.0)
        self.listener.listen(64)
        self.log("RELEASED")

    def log(self, line):
        if self.log_path:
            with self.lock, open(self.log_path, "a") as f:
                f.write(line + "\n")

    def serve(self):
        if self.filler is not None:
            self.release_when_attempted()
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(sock)
            if self.mode == "accept-never-answer":
                self.log("CONNECT")
                continue
            threading.Thread(target=self.handle, args=(sock,), daemon=True).start()

    def die(self):
        """Close the listener and every connection, then exit."""
        try:
            self.listener.close()
        finally:
            with self.lock:
                for c in self.conns:
                    try:
                        c.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    c.close()
            os._exit(0)

    def handle(self, sock):
        conn = Conn(sock)
        try:
            while True:
                method, path, headers = conn.read_request()
                self.log("%s %s" % (method, path))
                if self.mode != "trickle":
                    body = conn.read_body(headers)
                else:
                    body = b""
                if not self.answer(sock, method, path, headers, body):
                    break
                if headers.get("connection", "").lower() == "close":
                    break
        except (Done, OSError, ValueError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def answer(self, sock, method, path, headers, body):
        """Answer one request; False to close the connection afterwards."""
        head = method == "HEAD"
        mode = self.mode
        if mode.startswith("status:"):
            status = int(mode.split(":", 1)[1])
            sock.sendall(response(status, b"fault: status %d\n" % status, head, self.extra))
            return True
        if mode.startswith("full-queue:"):
            mode = "flaky:0:500"
        if mode.startswith("flaky:"):
            _, n, fault = mode.split(":", 2)
            path = path.split("?", 1)[0]
            with self.lock:
                seen = self.seen.get((method, path), 0)
                self.seen[(method, path)] = seen + 1
            if seen % (int(n) + 1) < int(n):
                if fault == "reset":
                    # SO_LINGER with a zero timeout: close() sends a RST.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return False
                if fault == "close":
                    sock.shutdown(socket.SHUT_RDWR)
                    return False
                status = int(fault)
                sock.sendall(response(status, b"fault: status %d\n" % status, head, self.extra))
                return True
            with self.lock:
                sock.sendall(self.stored(method, path, body, head))
            return True
        if mode == "collections":
            path = path.split("?", 1)[0]
            parent = path.rstrip("/").rsplit("/", 1)[0] + "/"
            with self.lock:
                made = self.collections.setdefault("made", {"/"})
                if method in ("PUT", "MKCOL") and parent not in made:
                    out = response(409, b"conflict: the parent collection does not exist\n", head)
                elif method == "MKCOL":
                    exists = path in made
                    made.add(path)
                    out = response(405 if exists else 201, b"", head)
                else:
                    out = self.stored(method, path, body, head)
            sock.sendall(out)
            return True
        if mode == "garbage":
            sock.sendall(response(200, os.urandom(4096), head))
            return True
        if mode in ("huge", "endless", "endless-entry") and method != "GET":
            sock.sendall(response(201, b"", head))
            return True
        if mode in ("huge", "endless", "endless-entry"):
            if mode == "huge":
                head = "Content-Length: %d\r\n" % (1 << 34)
            else:
                head = "Connection: close\r\n"
            start = b"HPYCACHE" if mode == "endless-entry" else b""
            sock.sendall(("HTTP/1.1 200 OK\r\n%s\r\n" % head).encode("latin-1") + start)
            sent, zeros = len(start), bytes(1 << 16)
            try:
                while sent < 600 << 20:
                    sent += sock.send(zeros)
            except OSError:
                pass
            self.log("SENT %d" % sent)
            return False
        if mode == "redirect":
            location = "Location: http://127.0.0.2:%d%s?X-Amz-Signature=hunter2sig" % (
                self.listener.getsockname()[1], path.split("?", 1)[0])
            sock.sendall(response(302, b"", head, (location,)))
            return True
        if mode == "put-never-answer":
            if method != "PUT":
                sock.sendall(response(404, b"not found\n", head))
                return True
            while True:
                time.sleep(3600)
        if mode == "full":
            # A full server: nothing stored, every upload refused for lack of space.
            if method == "PUT":
                sock.sendall(response(507, b"insufficient storage\n"))
            else:
                sock.sendall(response(404, b"not found\n", head))
            return True
        if mode == "truncated":
            sock.sendall(response(200, b"x" * 1000, head)[: -990 if not head else None])
            if not head:
                sock.shutdown(socket.SHUT_RDWR)
                return False
            return True
        if mode == "trickle":
            for byte in response(200, b"t" * 3600, head):
                sock.sendall(bytes([byte]))
                time.sleep(1.0)
            return True
        if mode.startswith("die-after:"):
            limit = int(mode.split(":", 1)[1])
            with self.lock:
                if self.answered >= limit:
                    self.die()
                self.answered += 1
                last = self.answered >= limit
                out = self.stored(method, path, body, head)
            sock.sendall(out)
            if last:
                with self.lock:
                    self.die()
            return True
        raise SystemExit("unknown mode %r" % mode)

    def stored(self, method, path, body, head):
        """The in-memory store's response to a request (under the lock)."""
        if method == "PUT":
            existed = path in self.store
            self.store[path] = body
            return response(204 if existed else 201)
        if method in ("GET", "HEAD"):
            if path in self.store:
                return response(200, self.store[path], head)
            return response(404, b"not found\n", head)
        if method == "DELETE":
            return response(204 if self.store.pop(path, None) is not None else 404)
        return response(405, b"method not allowed\n", head)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", default="")
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--retry-after", default=None)
    args = ap.parse_args()
    known = ("garbage", "truncated", "trickle", "accept-never-answer", "full", "huge", "endless",
             "endless-entry", "put-never-answer", "redirect", "collections")
    if not (args.mode in known or args.mode.startswith(("status:", "die-after:", "flaky:", "full-queue:"))):
        ap.error("unknown mode %r" % args.mode)
    server = Server(args.mode, args.log, args.retry_after)
    timer = threading.Timer(args.max_seconds, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.listener.getsockname()[1])
    os.replace(tmp, args.port_file)
    sys.stdout.flush()
    server.serve()


if __name__ == "__main__":
    main()
