#!/usr/bin/env python3
"""Idle cost (issue 28 item 4): what a broker with nothing to do spends.

    idle.py launch BROKER_URL TOKEN INSTANCE IMAGE VMS
    idle.py cpu    PID SECS
    idle.py calls  MOTO_URL SECS RECONCILE_SECS VMS

launch: launches VMS VMs through the JSON API (batches of 100, four at a
        time) and waits until the broker shows every one `running`; prints
        JSON {launched, launch_s, settle_s}.
cpu:    the broker's CPU time (utime + stime of /proc/PID/stat) over SECS
        seconds of wall time; prints JSON {cpu_s, wall_s, per_hour_s,
        pct_core}: per_hour_s scales the window to an hour, pct_core is the
        share of one core.
calls:  resets the fault wrapper's counters in front of moto, waits SECS
        seconds, and prints the cloud calls made meanwhile: JSON {calls,
        actions, wall_s, per_hour, per_hour_per_1000_vms, passes} (passes:
        the full reconcile passes the window held at one every
        RECONCILE_SECS).
"""
import http.client
import json
import os
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

BATCH = 100


def call(base, method, path, token=None, body=None):
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        sys.exit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None


def states(base, token):
    """Counts of the caller's VMs by state (every page)."""
    counts, cursor = {}, None
    while True:
        path = "/api/v1/vms?limit=1000" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        page = call(base, "GET", path, token)
        for vm in page["vms"]:
            counts[vm["state"]] = counts.get(vm["state"], 0) + 1
        cursor = page.get("next_cursor")
        if not cursor:
            return counts


def launch(base, token, instance, image, n):
    t0 = time.monotonic()
    sizes = [min(BATCH, n - i) for i in range(0, n, BATCH)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda k: call(base, "POST", "/api/v1/vms", token, {"instance": instance, "image": image, "count": k}), sizes))
    launch_s = time.monotonic() - t0
    t1 = time.monotonic()
    while True:
        c = states(base, token)
        if c.get("running", 0) >= n:
            break
        if time.monotonic() - t1 > 600:
            sys.exit(f"not all running after 10 minutes: {c}")
        time.sleep(1)
    print(json.dumps({"launched": n, "launch_s": round(launch_s, 1), "settle_s": round(time.monotonic() - t1, 1)}))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line (1-based),
    # i.e. 12 and 13 after the command's closing parenthesis.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu(pid, secs):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(secs)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    used, wall = c1 - c0, t1 - t0
    print(json.dumps({"cpu_s": round(used, 2), "wall_s": round(wall, 1), "per_hour_s": round(used * 3600 / wall, 1),
                      "pct_core": round(100 * used / wall, 3)}))


def calls(moto, secs, reconcile_secs, vms):
    call(moto, "POST", "/_fault/reset")
    t0 = time.monotonic()
    time.sleep(secs)
    stats = call(moto, "GET", "/_fault/stats")
    wall = time.monotonic() - t0
    actions = stats["actions"]
    n = sum(actions.values())
    per_hour = n * 3600 / wall
    print(json.dumps({"calls": n, "actions": actions, "wall_s": round(wall, 1), "per_hour": round(per_hour),
                      "per_hour_per_1000_vms": round(per_hour * 1000 / vms), "passes": round(wall / reconcile_secs, 2)}))


def main():
    mode = sys.argv[1]
    if mode == "launch":
        base, token, instance, image, n = sys.argv[2:7]
        launch(base, token, instance, image, int(n))
    elif mode == "cpu":
        cpu(int(sys.argv[2]), float(sys.argv[3]))
    elif mode == "calls":
        calls(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
