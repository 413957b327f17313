#!/usr/bin/env python3
"""An HTTPS server on a loopback address for the cache client's TLS tests.

    python3 tests/it/tls_server.py --host 127.0.0.2 --cert CERT --key KEY --reply FILE
                                   --port-file FILE [--log FILE] [--max-seconds 900]

Listens on HOST (a loopback address) on a port the kernel picks, with the certificate
chain CERT and its key KEY, writes that port to --port-file once it accepts connections,
answers every GET with 200 and FILE's bytes as JSON, and logs one line per request to
--log ("GET /path"). A client that refuses the certificate ends its connection, nothing
more. Standard library only, Python 3.7+. It exits by itself after --max-seconds.
"""

import argparse
import http.server
import os
import ssl
import sys
import threading


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--reply", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", default="")
    ap.add_argument("--max-seconds", type=float, default=900)
    args = ap.parse_args()
    if not args.host.startswith("127."):
        ap.error("--host must be a loopback address")
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if args.log:
                with lock, open(args.log, "a") as f:
                    f.write("GET %s\n" % self.path)
            with open(args.reply, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self):
            sock, addr = super().get_request()
            # The handshake in the connection's own thread (a refused certificate ends
            # that connection only).
            return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

        def handle_error(self, request, client_address):
            pass

    server = Server((args.host, 0), Handler)
    timer = threading.Timer(args.max_seconds, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.port_file)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
