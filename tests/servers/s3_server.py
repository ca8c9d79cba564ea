#!/usr/bin/python3
"""Loopback S3-compatible server (path-style GET only) that checks every
request's AWS Signature V4 with botocore, an implementation independent of
libcurl's.

Objects are the files under --root/<bucket>/<key>. A signed request is
rebuilt as a botocore AWSRequest from exactly the headers it says it signed
and signed again with S3SigV4Auth at its own X-Amz-Date (add_auth would stamp
the current time and overwrite x-amz-content-sha256; see KNOWN.md). A wrong
signature, key id, region or missing x-amz-content-sha256 gets 403
SignatureDoesNotMatch; an unsigned request gets 403 AccessDenied unless
--allow-anonymous. With --session-token the token must be sent and signed.
/_stats returns {"<path>": requests, "verdict:<v>": n}. Prints "PORT <n>".
"""
import argparse
import hmac
import json
import os
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ARGS = None
COUNTS = {}
LOCK = threading.Lock()
AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request,\s*"
    r"SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$")


def count(key):
    with LOCK:
        COUNTS[key] = COUNTS.get(key, 0) + 1


def verify(handler):
    """Returns a verdict: "ok", "anonymous", or why the request is refused."""
    auth = handler.headers.get("Authorization")
    if auth is None:
        return "anonymous" if ARGS.allow_anonymous else "unsigned"
    m = AUTH_RE.match(auth)
    if not m:
        return "malformed_authorization"
    key_id, date, region, signed, signature = m.groups()
    if key_id != ARGS.access_key or region != ARGS.region:
        return "wrong_key_or_region"
    names = signed.split(";")
    if "host" not in names or "x-amz-date" not in names or "x-amz-content-sha256" not in names:
        return "unsigned_required_header"
    amz_date = handler.headers.get("X-Amz-Date", "")
    if amz_date[:8] != date:
        return "date_mismatch"
    token = handler.headers.get("X-Amz-Security-Token")
    if ARGS.session_token and (token != ARGS.session_token or "x-amz-security-token" not in names):
        return "missing_or_unsigned_token"
    headers = {}
    for n in names:
        v = handler.headers.get(n)
        if v is None:
            return "signed_header_absent"
        headers[n] = v
    request = AWSRequest(method=handler.command, url="http://%s%s" % (headers["host"], handler.path), headers=headers)
    request.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(ARGS.access_key, ARGS.secret_key, token), "s3", ARGS.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return "ok" if hmac.compare_digest(expected, signature) else "bad_signature"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, content_type):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, code, s3_code):
        body = ("<?xml version=\"1.0\"?><Error><Code>%s</Code><Message>refused</Message></Error>" % s3_code).encode()
        self.reply(code, body, "application/xml")

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/_stats":
            with LOCK:
                body = json.dumps(COUNTS, sort_keys=True).encode()
            self.reply(200, body, "application/json")
            return
        count(path)
        verdict = verify(self)
        count("verdict:" + verdict)
        if verdict == "unsigned":
            self.error(403, "AccessDenied")
            return
        if verdict not in ("ok", "anonymous"):
            self.error(403, "SignatureDoesNotMatch")
            return
        rel = urllib.parse.unquote(path.lstrip("/"))
        full = os.path.realpath(os.path.join(ARGS.root, rel))
        if not full.startswith(os.path.realpath(ARGS.root) + os.sep) or not os.path.isfile(full):
            self.error(404, "NoSuchKey")
            return
        with open(full, "rb") as f:
            self.reply(200, f.read(), "application/octet-stream")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--session-token", default="")
    p.add_argument("--allow-anonymous", action="store_true")
    ARGS = p.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
