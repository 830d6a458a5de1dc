#!/usr/bin/env python3
"""The time from a webhook's 200 to its event reaching an open console's event stream.

Usage: python3 scripts/bench-console.py [messages, default 500] [streams, default 1]

Starts `smsctx serve` (target/release/smsctx, or $SMSCTX_BINARY) on a fresh SQLite store, adds a
Twilio channel through the Web API, opens STREAMS event streams (`GET /console/events` with the admin token, as the
console does), then sends MESSAGES signed Twilio webhooks one after another, each from a new
customer (so each opens a conversation). For each, it takes the time the 200 arrived and the
time the `conversation` event arrived on every stream, with one clock (time.perf_counter), and
prints p50/p99/max of event minus 200. An event may arrive before the client has read the 200
(the server notifies the streams when the write has committed, just before it answers); those
count as 0 ms and are counted separately.
"""
import base64
import hashlib
import hmac
import http.client
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

MESSAGES = int(sys.argv[1]) if len(sys.argv) > 1 else 500
STREAMS = int(sys.argv[2]) if len(sys.argv) > 2 else 1
PORT = 18183
TOKEN = "bench-twilio-auth-token-0123456789"
ADMIN = "bench"
ORG = "+14252306549"
URL = f"http://127.0.0.1:{PORT}/channels/sms/twilio"
ACCOUNT = "AC" + "0123456789abcdef" * 2

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.environ.get("SMSCTX_BINARY") or os.path.join(root, "target/release/smsctx")
if not os.environ.get("SMSCTX_BINARY"):
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
work = tempfile.mkdtemp()
database = f"sqlite://{work}/bench.db"
server = subprocess.Popen(
    [binary, "serve", "--listen", f"127.0.0.1:{PORT}", "--database", database, "--admin-token", ADMIN],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)


def health():
    try:
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
        c.request("GET", "/health")
        return c.getresponse().status == 200
    except OSError:
        return False


try:
    for _ in range(100):
        if health():
            break
        time.sleep(0.1)
    import json
    api = http.client.HTTPConnection("127.0.0.1", PORT)
    api.request("POST", "/api/data/v9.2/smsctx_smschannels", body=json.dumps({
        "smsctx_provider": "twilio", "smsctx_phonenumber": ORG, "smsctx_secret": TOKEN,
        "smsctx_account": ACCOUNT, "smsctx_publicurl": URL}), headers={
        "Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
    created = api.getresponse()
    created.read()
    assert created.status == 201, created.status

    arrivals = [queue.Queue() for _ in range(STREAMS)]
    ready = threading.Barrier(STREAMS + 1)

    def listen(events):
        c = http.client.HTTPConnection("127.0.0.1", PORT)
        c.request("GET", "/console/events", headers={"Authorization": f"Bearer {ADMIN}"})
        response = c.getresponse()
        assert response.status == 200, response.status
        name = None
        while True:
            line = response.fp.readline()
            if not line:
                return
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
                if name == "ready":
                    ready.wait()
            elif line.startswith("data: ") and name == "conversation":
                events.put(time.perf_counter())

    for events in arrivals:
        threading.Thread(target=listen, args=(events,), daemon=True).start()
    ready.wait()

    webhook = http.client.HTTPConnection("127.0.0.1", PORT)
    latencies, early = [], 0
    for n in range(MESSAGES):
        sender = "+1425%03d%04d" % (230 + n // 10000, n % 10000)
        sid = "SM%032x" % (n + 1)
        params = [("AccountSid", ACCOUNT), ("Body", f"latency probe {n}"), ("From", sender),
                  ("MessageSid", sid), ("To", ORG)]
        data = URL + "".join(k + v for k, v in sorted(params))
        signature = base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
        webhook.request("POST", "/channels/sms/twilio", body=urllib.parse.urlencode(params), headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
        response = webhook.getresponse()
        response.read()
        answered = time.perf_counter()
        assert response.status == 200, response.status
        for events in arrivals:
            arrived = events.get(timeout=10)
            delta = (arrived - answered) * 1000
            if delta <= 0:
                early += 1
            latencies.append(max(delta, 0.0))
        time.sleep(0.01)

    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"== webhook 200 -> console event, {MESSAGES} messages, {STREAMS} stream(s), SQLite")
    print(f"p50 {pick(0.50):.2f} ms, p99 {pick(0.99):.2f} ms, max {latencies[-1]:.2f} ms; "
          f"{early} of {len(latencies)} events arrived before the 200 was read")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
finally:
    server.terminate()
    server.wait()
    shutil.rmtree(work, ignore_errors=True)
