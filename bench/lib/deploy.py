#!/usr/bin/env python3
"""Time to `ready` of a deployment of NODES nodes x VMS VMs on the sandbox
(every node `ready_when: running`, no dependencies) against the time of the
same NODES*VMS launches done directly through the JSON API (one VM per
POST /api/v1/vms, at concurrency NODES, until every VM is `running`), in
ROUNDS rounds of alternating order. Prints one JSON object: the median of
each path in seconds, and every round.

    deploy.py BROKER_URL TOKEN INSTANCE IMAGE APPLICATION NODES VMS ROUNDS
"""
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

local = threading.local()


def conn(base):
    if not hasattr(local, "c"):
        u = urllib.parse.urlparse(base)
        local.c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    return local.c


def call(base, token, method, path, body=None):
    c = conn(base)
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["content-type"] = "application/json"
    try:
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
    except (http.client.HTTPException, OSError):
        del local.c
        c = conn(base)
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
    text = r.read()
    return r.status, (json.loads(text) if text else None)


def direct(base, token, instance, image, n, c, tag):
    """n launches of one VM at concurrency c, then until every one runs."""
    t0 = time.monotonic()

    def one(i):
        s, b = call(base, token, "POST", "/api/v1/vms", {"instance": instance, "image": image, "name": f"{tag}-{i}"})
        if s != 201:
            raise SystemExit(f"launch {i}: {s} {b}")
        return b["vms"][0]["id"]

    with ThreadPoolExecutor(max_workers=c) as pool:
        ids = set(pool.map(one, range(n)))
    while True:
        running = set()
        cursor = ""
        while True:
            q = f"/api/v1/vms?state=running&limit=1000&instance={instance}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            s, b = call(base, token, "GET", q)
            if s != 200:
                raise SystemExit(f"list: {s} {b}")
            running |= {v["id"] for v in b["vms"]}
            cursor = b.get("next_cursor") or ""
            if not cursor:
                break
        if ids <= running:
            t = time.monotonic() - t0
            with ThreadPoolExecutor(max_workers=c) as pool:
                list(pool.map(lambda i: call(base, token, "POST", f"/api/v1/vms/{i}/terminate"), ids))
            return t
        time.sleep(0.05)


def deploy(base, token, instance, app, nodes):
    t0 = time.monotonic()
    body = {"application": app, "placement": {f"n{i}": {"instance": instance} for i in range(nodes)}, "on_failure": "keep"}
    s, b = call(base, token, "POST", "/api/v1/deployments", body)
    if s != 201:
        raise SystemExit(f"deploy: {s} {b}")
    dep = b["id"]
    while True:
        s, b = call(base, token, "GET", f"/api/v1/deployments/{dep}")
        if s != 200:
            raise SystemExit(f"get: {s} {b}")
        if b["state"] == "ready":
            return time.monotonic() - t0, dep
        if b["state"] in ("failed", "terminated"):
            raise SystemExit(f"deployment {dep} {b['state']}: {b.get('message')}")
        time.sleep(0.05)


def main():
    base, token, instance, image, app = sys.argv[1:6]
    nodes, vms, rounds = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
    d_times, j_times = [], []
    for r in range(rounds):
        order = ["deploy", "direct"] if r % 2 == 0 else ["direct", "deploy"]
        for path in order:
            if path == "deploy":
                t, dep = deploy(base, token, instance, app, nodes)
                d_times.append(round(t, 3))
                print(f"round {r + 1}: deployment {dep} ready in {t:.3f} s", file=sys.stderr)
                call(base, token, "DELETE", f"/api/v1/deployments/{dep}")
            else:
                t = direct(base, token, instance, image, nodes * vms, nodes, f"direct{r}")
                j_times.append(round(t, 3))
                print(f"round {r + 1}: {nodes * vms} direct launches running in {t:.3f} s", file=sys.stderr)
    print(json.dumps({"deploy_s": statistics.median(d_times), "direct_s": statistics.median(j_times), "deploy": d_times, "direct": j_times}))


if __name__ == "__main__":
    main()
