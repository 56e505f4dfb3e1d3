#!/usr/bin/env python3
"""Launches N VMs, one per request, at concurrency C, and prints the wall
time in seconds (and fails if any launch failed).

    provision.py direct   MOTO_ENDPOINT N C
    provision.py json     BROKER_URL TOKEN INSTANCE IMAGE N C
    provision.py ec2      BROKER_URL AK SK INSTANCE AMI N C

direct: boto3 RunInstances straight to moto (one client per thread).
json:   POST /api/v1/vms {"instance", "image"} with a bearer token.
ec2:    boto3 RunInstances against the broker's /ec2 front (region = INSTANCE).
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import boto3

local = threading.local()


def run(n, c, one, init):
    """Times n calls of one() on c threads. Each thread runs init() (makes
    its client) before the clock starts: making a boto3 client costs tens of
    milliseconds of CPU, which would count against both boto3 paths alike
    and dilute the ratio."""
    with ThreadPoolExecutor(max_workers=c) as pool:
        ready = threading.Barrier(c)

        def warm(_):
            init()
            ready.wait()  # holds each thread until all c made their client

        list(pool.map(warm, range(c)))
        t0 = time.monotonic()
        results = list(pool.map(one, range(n)))
        wall = time.monotonic() - t0
    bad = [r for r in results if r is not True]
    if bad:
        sys.exit(f"{len(bad)} of {n} launches failed, first: {bad[0]}")
    print(f"{wall:.3f}")


def ec2_client(endpoint, region, ak, sk):
    if not hasattr(local, "ec2"):
        local.ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=region, aws_access_key_id=ak, aws_secret_access_key=sk)
    return local.ec2


def main():
    mode = sys.argv[1]
    if mode == "direct":
        ep, n, c = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

        def client():
            return ec2_client(ep, "us-east-1", "testing", "testing")

        def one(_):
            try:
                client().run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t2.micro")
                return True
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                return repr(e)

        run(n, c, one, client)
    elif mode == "json":
        base, token, instance, image, n, c = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
        u = urllib.parse.urlsplit(base)
        body = json.dumps({"instance": instance, "image": image})

        def conn():
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
                local.conn.connect()
            return local.conn

        def one(_):
            conn()
            local.conn.request("POST", "/api/v1/vms", body=body, headers={"Authorization": f"Bearer {token}", "content-type": "application/json"})
            r = local.conn.getresponse()
            data = r.read()
            return True if r.status == 201 else f"HTTP {r.status}: {data[:300]!r}"

        run(n, c, one, conn)
    elif mode == "ec2":
        base, ak, sk, instance, ami, n, c = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7]), int(sys.argv[8])

        def client():
            return ec2_client(base + "/ec2", instance, ak, sk)

        def one(_):
            try:
                client().run_instances(ImageId=ami, MinCount=1, MaxCount=1)
                return True
            except Exception as e:  # noqa: BLE001
                return repr(e)

        run(n, c, one, client)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
