#!/usr/bin/env python3
"""Load generator for `medpipe serve` (bench/serve_bench.sh): REQUESTS POSTs
of PER images each to /predict_batch from CLIENTS concurrent clients, images
taken round-robin from a folder. Prints images/s, p50 and p99 latency, and
the status counts; exits 1 if any request failed."""
import os
import sys
import threading
import time
import urllib.request
import uuid


def multipart(files):
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files:
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def main():
    url, folder, requests, clients, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    images = [(n, open(os.path.join(folder, n), "rb").read()) for n in names]
    latencies, statuses, lock = [], {}, threading.Lock()
    next_request = [0]

    def client():
        while True:
            with lock:
                r = next_request[0]
                if r >= requests:
                    return
                next_request[0] += 1
            batch = [images[(r * per + k) % len(images)] for k in range(per)]
            body, ctype = multipart(batch)
            req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=600) as resp:
                    resp.read()
                    code = resp.status
            except urllib.error.HTTPError as e:
                code = e.code
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                statuses[code] = statuses.get(code, 0) + 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"{requests * per / wall:.2f} {p(0.5) * 1000:.0f} {p(0.99) * 1000:.0f} {wall:.2f} {statuses}")
    return 0 if set(statuses) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
