#!/usr/bin/env python3
"""Quota under contention: N launches of one VM each, all at once, split
between two brokers (alternately), for one user whose quota is smaller.
Prints one JSON line: admitted (201), refused (409 quota_exceeded), other
(anything else), p50/p99 latency of an answer in ms, and the wall time.

    quota.py URL_A URL_B TOKEN_A TOKEN_B INSTANCE IMAGE N
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

url_a, url_b, tok_a, tok_b, instance, image, n = sys.argv[1:8]
n = int(n)
results = [None] * n
start = threading.Barrier(n)


def one(i):
    base, tok = (url_a, tok_a) if i % 2 == 0 else (url_b, tok_b)
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    body = json.dumps({"instance": instance, "image": image, "name": f"q{i}"})
    headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}
    conn.connect()
    start.wait()  # every connection is open before any launch is sent
    t0 = time.monotonic()
    try:
        conn.request("POST", "/api/v1/vms", body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        code = r.status
        if code == 409 and b"quota_exceeded" not in data:
            code = "409-other"
    except Exception as e:  # noqa: BLE001 - reported as "other"
        code = f"error: {e}"
    results[i] = (code, (time.monotonic() - t0) * 1000)


threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
t0 = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.monotonic() - t0
lat = sorted(r[1] for r in results)
admitted = sum(1 for r in results if r[0] == 201)
refused = sum(1 for r in results if r[0] == 409)
other = [r[0] for r in results if r[0] not in (201, 409)]
print(json.dumps({
    "admitted": admitted, "refused": refused, "other": len(other), "other_first": str(other[0]) if other else None,
    "p50_ms": round(lat[len(lat) // 2], 1), "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1), "wall_s": round(wall, 2),
}))
