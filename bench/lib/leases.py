#!/usr/bin/env python3
"""The lease worker's cost per pass, read from the broker's own worker status
(``/readyz``: the ``lease`` worker's ``runs``, ``last_duration_ms``,
``last_summary``; the worker times each pass itself). Prints one JSON line.

    leases.py passes URL K
        waits for K more passes of the lease worker and reports each one's
        duration (ms) and summary: the cost of a pass with nothing to do.
    leases.py act URL TOKEN INSTANCE IMAGE N LEASE
        launches N VMs in one launch with lease LEASE (e.g. ``20s``), then
        waits for the pass that terminates them and reports its duration and
        summary, how long after the expiry the VMs' leases ended, and their
        notes: the cost of a pass that acts on N VMs.
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse


def call(base, method, path, token=None, body=None):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, (json.loads(data) if data else None)


def lease_worker(base):
    _, r = call(base, "GET", "/readyz")
    for w in r.get("workers", []):
        if w["name"] == "lease":
            return w
    raise SystemExit(f"no 'lease' worker in /readyz: {r}")


def passes(base, k):
    seen = lease_worker(base)["runs"]
    out = []
    deadline = time.monotonic() + 10 * k + 30
    while len(out) < k and time.monotonic() < deadline:
        time.sleep(0.05)
        w = lease_worker(base)
        if w["runs"] != seen and w["state"] != "busy":
            if w["runs"] == seen + 1:  # one pass seen whole (none was missed between two polls)
                out.append({"ms": w["last_duration_ms"], "summary": w.get("last_summary"), "error": w.get("last_error")})
            seen = w["runs"]
    ms = [p["ms"] for p in out]
    print(json.dumps({
        "passes": len(out),
        "median_ms": statistics.median(ms) if ms else None,
        "max_ms": max(ms) if ms else None,
        "each_ms": ms,
        "last_summary": out[-1]["summary"] if out else None,
        "errors": [p["error"] for p in out if p["error"]],
    }))


def act(base, token, instance, image, n, lease):
    code, r = call(base, "POST", "/api/v1/vms", token, {"instance": instance, "image": image, "count": n, "lease": lease})
    if code != 201:
        raise SystemExit(f"launch answered {code}: {r}")
    ids = [v["id"] for v in r["vms"]]
    expires = r["vms"][0]["lease"]["expires_at"]
    seen = lease_worker(base)["runs"]
    found = None
    deadline = time.monotonic() + 120
    while found is None and time.monotonic() < deadline:
        time.sleep(0.05)
        w = lease_worker(base)
        if w["runs"] != seen and w["state"] != "busy":
            seen = w["runs"]
            text = (w.get("last_summary") or "") + " " + (w.get("last_error") or "")
            if "terminated" in text:
                found = {"ms": w["last_duration_ms"], "summary": w.get("last_summary"), "error": w.get("last_error")}
    if found is None:
        raise SystemExit("no lease pass terminated the launched VMs within 120 s")
    notes, ended = [], 0
    for vid in ids:
        _, v = call(base, "GET", f"/api/v1/vms/{vid}", token)
        lease_ = v.get("lease") or {}
        if lease_.get("ended_at"):
            ended += 1
        notes.append(lease_.get("note"))
    print(json.dumps({
        "vms": n,
        "ended": ended,
        "pass_ms": found["ms"],
        "summary": found["summary"],
        "error": found["error"],
        "expires_at": expires,
        "note": notes[0],
    }))


def main():
    mode = sys.argv[1]
    if mode == "passes":
        passes(sys.argv[2], int(sys.argv[3]))
    elif mode == "act":
        base, token, instance, image, n, lease = sys.argv[2:8]
        act(base, token, instance, image, int(n), lease)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
