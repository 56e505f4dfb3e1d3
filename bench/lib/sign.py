#!/usr/bin/env python3
"""Prints a wrk Lua script that replays ONE SigV4-signed EC2 Query request.

    sign.py --endpoint http://127.0.0.1:PORT/ec2 --region R --key AK --secret SK \
            [--service ec2] Action=DescribeInstances InstanceId.1=i-... > req.lua

The request is a GET (parameters in the query string), signed once here by
botocore's own SigV4 signer (not the project's code), with X-Amz-Date = now;
wrk replays the identical bytes, so the server verifies the same signature on
every request (it must, within its 15-minute clock skew window). No re-signing.
Also prints the path+query on stderr-free file `--url-out` for curl checks.
"""
import argparse
import sys
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--service", default="ec2")
    ap.add_argument("--curl-out", help="write a curl config replaying the same request here")
    ap.add_argument("params", nargs="+")
    a = ap.parse_args()
    params = [tuple(p.split("=", 1)) for p in a.params]
    params.append(("Version", "2016-11-15"))
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    url = f"{a.endpoint}?{query}"
    req = AWSRequest(method="GET", url=url, headers={})
    SigV4Auth(Credentials(a.key, a.secret), a.service, a.region).add_auth(req)
    prepared = req.prepare()
    parts = urllib.parse.urlsplit(prepared.url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "host"}
    out = ['wrk.method = "GET"', f"wrk.path = {lua(path)}"]
    for k, v in headers.items():
        out.append(f"wrk.headers[{lua(k)}] = {lua(v)}")
    print("\n".join(out))
    if a.curl_out:
        with open(a.curl_out, "w") as f:
            f.write(f"url = {quote_curl(prepared.url)}\n")
            for k, v in headers.items():
                f.write(f"header = {quote_curl(f'{k}: {v}')}\n")


def lua(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_curl(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    sys.exit(main())
