#!/usr/bin/env python3
"""Sends pre-signed Twilio webhooks (sign-twilio.py's lines) one after another on one
keep-alive connection, for callgrind counts (scripts/bench-webhook-instructions.sh).

Usage: webhooks.py PORT REQUESTS.tsv FIRST COUNT
Sends lines FIRST .. FIRST+COUNT-1 of the file; each must be answered 200.
"""
import http.client
import sys

port, path, first, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(path) as f:
    lines = f.read().splitlines()[first:first + count]
assert len(lines) == count, (len(lines), count)
c = http.client.HTTPConnection("127.0.0.1", port)
for line in lines:
    signature, body = line.split("\t", 1)
    c.request("POST", "/channels/sms/twilio", body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    })
    r = c.getresponse()
    data = r.read()
    assert r.status == 200, (r.status, data[:300])
