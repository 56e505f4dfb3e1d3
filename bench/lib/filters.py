#!/usr/bin/env python3
"""The worst EC2 filter the broker accepts (issue 20 item 2), timed.

    filters.py ENDPOINT REGION AK SK

Creates 300 key pairs with 254-character names (boto3 ImportKeyPair), then
sends DescribeKeyPairs with one `key-name` filter of 200 values (EC2's limit
per filter) of 255 characters (the longest a value may be is 256), while a
thread asks GET /healthz over and over on a connection of its own. Two
filters: the report's `*aaa...ab` (which took the old matcher 167 s with
1,000 values in a debug build) and `*a?a?...a?b*`, the heaviest shape for
the new matcher (a middle segment with `?`: a Shift-And pass over every name
at four machine words per character). Each is sent ROUNDS times (default 5).
Also checks that 201 values are refused with FilterLimitExceeded.

Prints one JSON object: per filter the latencies (ms, each round), the
answer's key count, and the /healthz latencies (ms: median and max, and how
many answered) measured while the filter requests were in flight.
"""
import http.client
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIrfkw6NnNDNuTrQ6kQr+oIVd8hD6Z+8sqEQZA3xsZ1y bench"


def main():
    endpoint, region, ak, sk = sys.argv[1:5]
    rounds = int(os.environ.get("ROUNDS", "5"))
    ec2 = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        config=Config(retries={"max_attempts": 1}, read_timeout=600),
    )
    names = [f"{'a' * 250}{i:04d}" for i in range(300)]
    t0 = time.monotonic()
    for n in names:
        ec2.import_key_pair(KeyName=n, PublicKeyMaterial=PUBLIC_KEY.encode())
    seed_s = time.monotonic() - t0

    base = urllib.parse.urlsplit(endpoint)
    shapes = {
        "report": "*" + "a" * 253 + "b",
        "shift_and": "*" + "a?" * 126 + "b*",
    }
    out = {"key_pairs": len(names), "name_chars": len(names[0]), "seed_s": round(seed_s, 2), "values": 200}
    for label, value in shapes.items():
        assert len(value) == 255, (label, len(value))
        health, stop = [], threading.Event()

        def poll():
            c = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
            while not stop.is_set():
                s = time.monotonic()
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                health.append(((time.monotonic() - s) * 1000, r.status))
                time.sleep(0.005)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(0.1)
        lat, found = [], None
        for _ in range(rounds):
            s = time.monotonic()
            r = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [value] * 200}])
            lat.append(round((time.monotonic() - s) * 1000, 1))
            found = len(r["KeyPairs"])
        stop.set()
        poller.join()
        ms = [h[0] for h in health]
        out[label] = {
            "value": value[:12] + "...",
            "latency_ms": lat,
            "median_ms": statistics.median(lat),
            "found": found,
            "healthz_answers": len(health),
            "healthz_non_200": sum(1 for h in health if h[1] != 200),
            "healthz_median_ms": round(statistics.median(ms), 2) if ms else None,
            "healthz_max_ms": round(max(ms), 2) if ms else None,
        }
    try:
        ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [shapes["report"]] * 201}])
        out["over_limit"] = "accepted"
    except ClientError as e:
        out["over_limit"] = e.response["Error"]["Code"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
