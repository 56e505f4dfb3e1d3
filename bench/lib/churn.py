#!/usr/bin/env python3
"""Launch-and-terminate churn (issue 29): does a VM the user terminated ever
read `running` (or `pending`) again?

    churn.py BROKER_URL TOKEN AK SK INSTANCE IMAGE AMI VMS

One thread launches 5 VMs per request through the JSON API and terminates
each at once; one thread does the same with 3 VMs per RunInstances through
the EC2 front (boto3); two threads list all the while (GET /api/v1/vms and
DescribeInstances). Stops after about VMS VMs. A VM counts as regressed when
a listing *sent after* its terminate was acknowledged shows it `running` or
`pending`; after the churn every terminated VM is read once more. Prints one
JSON line: vms (made), terminated (acknowledged), regressed (distinct VMs
seen running after their terminate), errors (answers other than success),
and the wall time.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

import boto3

base, token, ak, sk, instance, image, ami, target = sys.argv[1:9]
target = int(target)
u = urllib.parse.urlsplit(base)
HDRS = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
BACK = {"running", "pending"}

lock = threading.Lock()
acked = {}  # VM id or cloud instance id -> (monotonic time its terminate was acknowledged, the VM's first id)
regressed = {}  # a VM's first id -> the state it was seen in after its terminate
made = [0]
terminated = [0]
errors = []
done = threading.Event()


def note_error(what):
    with lock:
        if len(errors) < 20:
            errors.append(what)
        else:
            errors.append(None)


def check(seen, sent_at):
    """Listed VMs (id, state), from a listing sent at `sent_at`."""
    with lock:
        for vid, state in seen:
            a = acked.get(vid)
            if a is not None and a[0] < sent_at and state in BACK:
                regressed.setdefault(a[1], state)


def json_conn():
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    c.connect()
    return c


def call(c, method, path, body=None):
    c.request(method, path, body=body, headers=HDRS)
    r = c.getresponse()
    return r.status, r.read()


def ec2():
    return boto3.client("ec2", endpoint_url=base + "/ec2", region_name=instance, aws_access_key_id=ak, aws_secret_access_key=sk)


def json_launcher():
    c = json_conn()
    body = json.dumps({"instance": instance, "image": image, "count": 5})
    while not done.is_set():
        status, data = call(c, "POST", "/api/v1/vms", body)
        if status != 201:
            note_error(f"launch HTTP {status}: {data[:200]!r}")
            continue
        vms = json.loads(data)["vms"]
        with lock:
            made[0] += len(vms)
        for v in vms:
            status, data = call(c, "POST", f"/api/v1/vms/{v['id']}/terminate")
            if status == 200 and json.loads(data).get("state") in ("shutting-down", "terminated"):
                with lock:
                    terminated[0] += 1
                    acked[v["id"]] = (time.monotonic(), v["id"])
                    if v.get("cloud_id"):
                        acked[v["cloud_id"]] = acked[v["id"]]
            else:
                note_error(f"terminate HTTP {status}: {data[:200]!r}")
        with lock:
            if made[0] >= target:
                done.set()


def ec2_launcher():
    c = ec2()
    while not done.is_set():
        try:
            r = c.run_instances(ImageId=ami, MinCount=3, MaxCount=3)
        except Exception as e:  # noqa: BLE001 - counted, not hidden
            note_error(f"RunInstances: {e!r}")
            continue
        ids = [i["InstanceId"] for i in r["Instances"]]
        with lock:
            made[0] += len(ids)
        for i in ids:
            try:
                t = c.terminate_instances(InstanceIds=[i])["TerminatingInstances"][0]
                if t["CurrentState"]["Name"] in ("shutting-down", "terminated"):
                    with lock:
                        terminated[0] += 1
                        acked[i] = (time.monotonic(), i)
                else:
                    note_error(f"TerminateInstances {i}: {t['CurrentState']}")
            except Exception as e:  # noqa: BLE001
                note_error(f"TerminateInstances: {e!r}")
        with lock:
            if made[0] >= target:
                done.set()


def ids_states(vms):
    """(id, state) of JSON VMs, under their VM id and their cloud id."""
    return [(k, v["state"]) for v in vms for k in (v["id"], v.get("cloud_id")) if k]


def json_all(c):
    """Every VM of the user through the JSON API: [(id, state)]."""
    out, after = [], None
    while True:
        path = "/api/v1/vms?limit=1000" + (f"&cursor={urllib.parse.quote(after)}" if after else "")
        status, data = call(c, "GET", path)
        if status != 200:
            note_error(f"list HTTP {status}: {data[:200]!r}")
            return out
        page = json.loads(data)
        out.extend(ids_states(page["vms"]))
        after = page.get("next_cursor")
        if not after:
            return out


def json_lister():
    c = json_conn()
    while not done.is_set():
        sent = time.monotonic()
        status, data = call(c, "GET", "/api/v1/vms?limit=100")
        if status != 200:
            note_error(f"list HTTP {status}: {data[:200]!r}")
            continue
        check(ids_states(json.loads(data)["vms"]), sent)


def ec2_lister():
    c = ec2()
    while not done.is_set():
        sent = time.monotonic()
        try:
            r = c.describe_instances(MaxResults=100)
        except Exception as e:  # noqa: BLE001
            note_error(f"DescribeInstances: {e!r}")
            continue
        check([(i["InstanceId"], i["State"]["Name"]) for res in r["Reservations"] for i in res["Instances"]], sent)


t0 = time.monotonic()
threads = [threading.Thread(target=f) for f in (json_launcher, ec2_launcher, json_lister, ec2_lister)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.monotonic() - t0
# After the churn: every VM once more, by the JSON API (VM ids) and the EC2
# front (instance ids).
sent = time.monotonic()
check(json_all(json_conn()), sent)
c = ec2()
for page in c.get_paginator("describe_instances").paginate(
    Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
):
    check([(i["InstanceId"], i["State"]["Name"]) for res in page["Reservations"] for i in res["Instances"]], sent)
errs = [e for e in errors if e]
print(json.dumps({
    "vms": made[0], "terminated": terminated[0], "regressed": len(regressed), "regressed_first": sorted(regressed)[:5],
    "errors": len(errors), "errors_first": errs[:3], "wall_s": round(wall, 1),
}))
