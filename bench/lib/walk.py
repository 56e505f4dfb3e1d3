#!/usr/bin/env python3
"""Lists every VM through GET /api/v1/vms, page by page (1,000 a page),
following next_cursor; prints the number of pages. Fails if a page fails.

    walk.py BROKER_URL TOKEN
"""
import http.client
import json
import sys
import urllib.parse

base, token = sys.argv[1], sys.argv[2]
u = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(u.hostname, u.port)
cursor, pages, seen = None, 0, 0
while True:
    path = "/api/v1/vms?limit=1000" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"{path}: HTTP {r.status}: {body[:200]!r}")
    page = json.loads(body)
    pages += 1
    seen += len(page["vms"])
    cursor = page.get("next_cursor")
    if not cursor:
        break
print(pages)
print(f"walk.py: {seen} VMs in {pages} pages", file=sys.stderr)
