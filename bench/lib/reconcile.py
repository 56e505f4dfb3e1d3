#!/usr/bin/env python3
"""Reconcile cost: fills moto (behind the fault wrapper) with VMs launched
through the broker by U users (each with their own credentials), then times
one reconcile pass and counts the cloud calls it made.

    reconcile.py BROKER_URL ADMIN_TOKEN MOTO_URL INSTANCE IMAGE USERS VMS

Prints one JSON line: vms, users, launch_s, reconcile_s, describe_calls (and
the other actions the pass made), reconcile report counts.
"""
import http.client
import json
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

broker, admin, moto, instance, image, users, vms = sys.argv[1:8]
users, vms = int(users), int(vms)
per_user = vms // users
BATCH = 100


def call(base, method, path, token=None, body=None, basic=None):
    u = urllib.parse.urlparse(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    if basic:
        import base64
        h["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        sys.exit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None


tokens = []
for i in range(users):
    name = f"rec{i}"
    call(broker, "POST", "/api/v1/users", admin, {"name": name, "password": f"{name}-password-1"})
    t = call(broker, "POST", "/api/v1/tokens", basic=f"{name}:{name}-password-1")["token"]
    # Each user's key lives in a cloud account of its own (moto keeps
    # instances per account, as AWS does): a listing sees its 1,000 VMs.
    key = call(moto, "POST", "/_iam/user", body={"user_name": name, "account_id": f"{100000000000 + i}"})
    call(broker, "PUT", f"/api/v1/users/{name}/credentials/{instance}", t,
         {"access_key_id": key["access_key_id"], "secret_access_key": key["secret_access_key"]})
    tokens.append(t)

t0 = time.monotonic()
jobs = [(t, n) for t in tokens for n in range(0, per_user, BATCH)]
with ThreadPoolExecutor(max_workers=8) as pool:
    list(pool.map(lambda j: call(broker, "POST", "/api/v1/vms", j[0], {"instance": instance, "image": image, "count": min(BATCH, per_user - j[1])}), jobs))
launch_s = time.monotonic() - t0

call(moto, "POST", "/_fault/reset")
t0 = time.monotonic()
report = call(broker, "POST", "/api/v1/reconcile", admin)
reconcile_s = time.monotonic() - t0
stats = call(moto, "GET", "/_fault/stats")
print(json.dumps({
    "vms": per_user * users, "users": users, "launch_s": round(launch_s, 1), "reconcile_s": round(reconcile_s, 2),
    "describe_calls": stats["actions"].get("DescribeInstances", 0), "actions": stats["actions"],
    "report": {k: (len(v) if isinstance(v, list) else v) for k, v in (report or {}).items()},
}))
