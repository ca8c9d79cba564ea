#!/usr/bin/python3
"""Loopback HTTP server for medpipe's fetch tests and download benchmark.

Serves the files of --root and injects faults chosen by the request path:
  /files/<name>                  the file
  /fault/<kind>/<n>/<name>       the first n requests of this path get the
                                 fault (n = 0: every request), later ones the
                                 file. kinds: 404, 500, 503, stall (no answer
                                 for --stall-seconds), short (Content-Length
                                 larger than the bytes sent, then close),
                                 reset (TCP RST instead of an answer),
                                 429 (Too Many Requests), slowdown (503 with
                                 S3's SlowDown XML body). A query
                                 ?retry_after=S adds "Retry-After: S" to a 429
                                 or slowdown; ?retry_after=date+S sends the
                                 HTTP-date S seconds from now instead
  /throttle/<limit>/<ms>/<name>  a server that accepts <limit> requests at
                                 once: a request arriving while <limit> are
                                 in flight gets 503 SlowDown, the others the
                                 file; every answer takes <ms> ms
  /_concurrency                  text: the number of throttle-path requests
                                 in flight at each arrival (the arriving one
                                 included), in arrival order; then a line
                                 "throttled <n>" (not counted)
  /_stats                        JSON {path: requests so far} (not counted)
--delay-ms adds a delay before every answer (a link's latency).
Binds 127.0.0.1 on --port (0: a free port) and prints "PORT <n>" when ready.
"""
import argparse
import email.utils
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
COUNTS = {}
LOCK = threading.Lock()
IN_FLIGHT = 0       # throttle-path requests being answered
ARRIVALS = []       # IN_FLIGHT seen by each throttle-path request on arrival
THROTTLED = 0
SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                 b'<Message>Please reduce your request rate.</Message></Error>')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections

    def log_message(self, fmt, *args):
        pass

    def send_body(self, code, body, content_type="application/octet-stream", length=None, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def serve_file(self, name):
        path = os.path.join(ARGS.root, name)
        if "/" in name or name.startswith(".") or not os.path.isfile(path):
            self.send_body(404, b"not found\n", "text/plain")
            return
        with open(path, "rb") as f:
            self.send_body(200, f.read(), "application/dicom")

    def throttle(self, limit, delay_ms, name):
        global IN_FLIGHT, THROTTLED
        with LOCK:
            IN_FLIGHT += 1
            ARRIVALS.append(IN_FLIGHT)
            refuse = IN_FLIGHT > limit
            if refuse:
                THROTTLED += 1
        try:
            time.sleep(delay_ms / 1000.0)
            if refuse:
                self.send_body(503, SLOWDOWN_BODY, "application/xml")
            else:
                self.serve_file(name)
        finally:
            with LOCK:
                IN_FLIGHT -= 1

    def do_GET(self):
        path, _, query = self.path.partition("?")
        self.query = urllib.parse.parse_qs(query)
        if path == "/_concurrency":
            with LOCK:
                body = ("%s\nthrottled %d\n" % (" ".join(map(str, ARRIVALS)), THROTTLED)).encode()
            self.send_body(200, body, "text/plain")
            return
        if path == "/_stats":
            with LOCK:
                body = json.dumps(COUNTS, sort_keys=True).encode()
            self.send_body(200, body, "application/json")
            return
        with LOCK:
            COUNTS[path] = COUNTS.get(path, 0) + 1
            count = COUNTS[path]
        if ARGS.delay_ms:
            time.sleep(ARGS.delay_ms / 1000.0)
        parts = path.split("/")
        if len(parts) == 5 and parts[1] == "throttle":
            self.throttle(int(parts[2]), float(parts[3]), parts[4])
            return
        if len(parts) == 3 and parts[1] == "files":
            self.serve_file(parts[2])
            return
        if len(parts) == 5 and parts[1] == "fault":
            kind, n, name = parts[2], int(parts[3]), parts[4]
            if n == 0 or count <= n:
                self.fault(kind, name)
                return
            self.serve_file(name)
            return
        self.send_body(404, b"not found\n", "text/plain")

    def retry_after(self):
        value = self.query.get("retry_after", [None])[0]
        if value is None:
            return ()
        if value.startswith("date+"):
            value = email.utils.formatdate(time.time() + float(value[5:]), usegmt=True)
        return (("Retry-After", value),)

    def fault(self, kind, name):
        if kind == "429":
            self.send_body(429, b"too many requests\n", "text/plain", headers=self.retry_after())
        elif kind == "slowdown":
            self.send_body(503, SLOWDOWN_BODY, "application/xml", headers=self.retry_after())
        elif kind in ("404", "500", "503", "403"):
            self.send_body(int(kind), b"injected fault\n", "text/plain")
        elif kind == "stall":
            time.sleep(ARGS.stall_seconds)
            self.close_connection = True
        elif kind == "short":
            with open(os.path.join(ARGS.root, name), "rb") as f:
                body = f.read()
            self.send_body(200, body[: len(body) // 2], "application/dicom", length=len(body))
            self.wfile.flush()
            self.close_connection = True
        elif kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        else:
            self.send_body(400, b"unknown fault\n", "text/plain")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        pass  # resets and stalls end connections abruptly by design


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delay-ms", type=float, default=0)
    p.add_argument("--stall-seconds", type=float, default=10)
    ARGS = p.parse_args()
    server = Server(("127.0.0.1", ARGS.port), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
