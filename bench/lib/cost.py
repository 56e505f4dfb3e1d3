#!/usr/bin/env python3
"""The cost benchmark's measurements (bench/run cost, issue 25). Prints one
JSON line.

    cost.py report URL ADMIN_TOKEN FROM TO K
        GET /api/v1/costs?group_by=user over [FROM, TO) as an admin: per
        month (JSON), per day (JSON) and per month as CSV (Accept: text/csv);
        one untimed request each first, then K timed rounds (the three
        shapes in turn): median and max ms of each, answer sizes, lines,
        total.
    cost.py launch URL TOKEN INSTANCE IMAGE N
        N single-VM launches through the JSON API, one after the other (a
        budget set for the user: its month-to-date spend is weighed in each
        admission): median, p90 and max ms; every answer must be 201.
    cost.py watch URL K
        the next K passes of the budget-watch worker (its own timing, read
        from /readyz, as leases.py reads the lease worker's).
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse


def call(base, method, path, token=None, body=None, accept="application/json"):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    headers = {"Content-Type": "application/json", "Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def timed(base, path, token, accept):
    t = time.perf_counter()
    code, data = call(base, "GET", path, token, accept=accept)
    ms = (time.perf_counter() - t) * 1000
    if code != 200:
        raise SystemExit(f"GET {path} answered {code}: {data[:300]!r}")
    return ms, data


def report(base, token, frm, to, k):
    q = lambda g: "/api/v1/costs?" + urllib.parse.urlencode({"group_by": "user", "granularity": g, "from": frm, "to": to})
    shapes = {
        "month": (q("month"), "application/json"),
        "day": (q("day"), "application/json"),
        "csv": (q("month"), "text/csv"),
    }
    out = {}
    for name, (path, accept) in shapes.items():
        _, data = timed(base, path, token, accept)  # warm-up (and the answer's shape)
        info = {"bytes": len(data)}
        if accept == "application/json":
            r = json.loads(data)
            info.update(lines=len(r["lines"]), total=r["total"], unpriced=r.get("unpriced"))
        else:
            info["lines"] = data.count(b"\n") - 1
        out[name] = info
        out[name]["each_ms"] = []
    for _ in range(k):
        for name, (path, accept) in shapes.items():
            ms, _ = timed(base, path, token, accept)
            out[name]["each_ms"].append(round(ms, 1))
    for info in out.values():
        info["median_ms"] = round(statistics.median(info["each_ms"]), 1)
        info["max_ms"] = max(info["each_ms"])
    print(json.dumps(out))


def launch(base, token, instance, image, n):
    ms = []
    for _ in range(n):
        t = time.perf_counter()
        code, data = call(base, "POST", "/api/v1/vms", token, {"instance": instance, "image": image, "count": 1})
        ms.append((time.perf_counter() - t) * 1000)
        if code != 201:
            raise SystemExit(f"launch answered {code}: {data[:300]!r}")
    s = sorted(ms)
    print(json.dumps({
        "launches": n,
        "median_ms": round(statistics.median(s), 2),
        "p90_ms": round(s[min(len(s) - 1, int(len(s) * 0.9))], 2),
        "max_ms": round(s[-1], 2),
    }))


def watch_worker(base):
    _, data = call(base, "GET", "/readyz")
    for w in json.loads(data).get("workers", []):
        if w["name"] == "budget-watch":
            return w
    return None


def watch(base, k):
    w = watch_worker(base)
    if w is None:
        print(json.dumps({"passes": 0, "note": "no budget-watch worker in /readyz"}))
        return
    seen, out = w["runs"], []
    deadline = time.monotonic() + 75 * k + 30
    while len(out) < k and time.monotonic() < deadline:
        time.sleep(0.2)
        w = watch_worker(base)
        if w["runs"] != seen and w["state"] != "busy":
            if w["runs"] == seen + 1:
                out.append(w.get("last_duration_ms"))
            seen = w["runs"]
    print(json.dumps({"passes": len(out), "each_ms": out, "max_ms": max(out) if out else None}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
    elif cmd == "launch":
        launch(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
    elif cmd == "watch":
        watch(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {cmd}")
