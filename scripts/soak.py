#!/usr/bin/env python3
"""A soak at moderate load: mixed reads, writes and signed Twilio webhooks against one smsctx
on a fresh SQLite store, with the server's RSS sampled every minute.

Usage: python3 scripts/soak.py [minutes, default 30] [requests per second, default 200]
SMSCTX_BINARY=path runs another build (default ./target/release/smsctx; build it first with
`cargo build --release`).

Every second the load sends, spread evenly, a mix of: creates of contexts (20 %), retrieves of
a random earlier context (30 %), a phone-pair filter (20 %), updates of a random context
(10 %), a `$count` (5 %) and signed inbound Twilio messages from a few hundred customers
(15 %). Any non-2xx answer, or a request that fails, is an error. It prints one line per minute
(requests, errors, RSS) and a summary; it exits 1 if any request failed or if the RSS after
warm-up (minute 5) grew by more than 20 % by the end.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

MINUTES = int(sys.argv[1]) if len(sys.argv) > 1 else 30
RATE = int(sys.argv[2]) if len(sys.argv) > 2 else 200
PORT = 18484
TOKEN = "soak"
ORG = "+14252306549"
TWILIO_TOKEN = "soak-twilio-auth-token-0123456789"
ACCOUNT = "AC" + "0123456789abcdef" * 2
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("SMSCTX_BINARY", os.path.join(ROOT, "target", "release", "smsctx"))
API = "/api/data/v9.2/"
WORKERS = 8


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.samples = []

    def add(self, ok, what=""):
        with self.lock:
            self.requests += 1
            if not ok:
                self.errors += 1
                if len(self.samples) < 10:
                    self.samples.append(what)


def twilio_request(n, webhook_url):
    customer = "+1425231%04d" % (n % 300)
    sid = "SM%032x" % n
    params = [
        ("ToCountry", "US"), ("SmsMessageSid", sid), ("NumMedia", "0"), ("From", customer),
        ("To", ORG), ("Body", "soak message %d" % n), ("MessageSid", sid),
        ("AccountSid", ACCOUNT), ("NumSegments", "1"), ("ApiVersion", "2010-04-01"),
    ]
    data = webhook_url + "".join(k + v for k, v in sorted(params))
    signature = base64.b64encode(
        hmac.new(TWILIO_TOKEN.encode(), data.encode(), hashlib.sha1).digest()
    ).decode()
    return urllib.parse.urlencode(params), signature


def worker(index, deadline, counters, ids, ids_lock, webhook_url):
    rng = random.Random(index)
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    headers = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json",
               "Accept": "application/json"}
    interval = WORKERS / RATE
    n = index
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        next_at += interval
        n += WORKERS
        pick = rng.random()
        try:
            if pick < 0.20:
                body = json.dumps({
                    "msdyn_name": "soak %d" % n,
                    "msdyn_customerphonenumber": "+1425232%04d" % (n % 10000),
                    "msdyn_orgphonenumber": ORG,
                })
                conn.request("POST", API + "msdyn_smsengagementctxes", body, headers)
                r = conn.getresponse()
                r.read()
                ok = r.status == 204
                if ok:
                    entity = r.getheader("OData-EntityId", "")
                    with ids_lock:
                        ids.append(entity[entity.rfind("(") + 1:-1])
            elif pick < 0.60:
                with ids_lock:
                    target = rng.choice(ids) if ids else None
                if target is None:
                    continue
                path = API + "msdyn_smsengagementctxes(%s)" % target
                if pick < 0.50:
                    conn.request("GET", path, headers=headers)
                else:
                    conn.request("PATCH", path, json.dumps({"msdyn_name": "touched %d" % n}),
                                 headers)
                r = conn.getresponse()
                r.read()
                ok = r.status in (200, 204)
            elif pick < 0.80:
                query = urllib.parse.quote(
                    "msdyn_orgphonenumber eq '%s' and msdyn_customerphonenumber eq "
                    "'+1425232%04d'" % (ORG, rng.randrange(10000)))
                conn.request("GET", API + "msdyn_smsengagementctxes?$top=5&$filter=" + query,
                             headers=headers)
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            elif pick < 0.85:
                conn.request("GET", API + "msdyn_smsengagementctxes/$count", headers=headers)
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            else:
                form, signature = twilio_request(n, webhook_url)
                conn.request("POST", "/channels/sms/twilio", form, {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": signature,
                })
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            counters.add(ok, "%d" % r.status)
        except Exception as e:  # a failed request is an error of the soak, not of the script
            counters.add(False, repr(e))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)


def main():
    directory = tempfile.mkdtemp()
    database = "sqlite://" + os.path.join(directory, "soak.db")
    webhook_url = "http://127.0.0.1:%d/channels/sms/twilio" % PORT
    subprocess.run([BINARY, "channel", "add", "--database", database, "--provider", "twilio",
                    "--number", ORG, "--secret", TWILIO_TOKEN, "--public-url", webhook_url],
                   check=True, stdout=subprocess.DEVNULL)
    server = subprocess.Popen(
        [BINARY, "serve", "--listen", "127.0.0.1:%d" % PORT, "--database", database,
         "--admin-token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, RUST_LOG="warn"))
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        counters = Counters()
        ids, ids_lock = [], threading.Lock()
        start = time.monotonic()
        deadline = start + MINUTES * 60
        threads = [threading.Thread(target=worker,
                                    args=(i, deadline, counters, ids, ids_lock, webhook_url))
                   for i in range(WORKERS)]
        for t in threads:
            t.start()
        rss = []
        print("soak: %d min at %d requests/s, %s, load average %s"
              % (MINUTES, RATE, BINARY, open("/proc/loadavg").read().split()[:3]))
        for minute in range(1, MINUTES + 1):
            time.sleep(max(0, start + minute * 60 - time.monotonic()))
            rss.append(rss_kib(server.pid))
            with counters.lock:
                print("minute %2d: %8d requests, %d errors, RSS %6.1f MiB, load %s"
                      % (minute, counters.requests, counters.errors, rss[-1] / 1024,
                         open("/proc/loadavg").read().split()[0]), flush=True)
        for t in threads:
            t.join()
        warm = rss[min(4, len(rss) - 1)]
        growth = (rss[-1] - warm) / warm if warm else 0
        print("summary: %d requests, %d errors, RSS after warm-up (minute %d) %.1f MiB, at the "
              "end %.1f MiB (%+.1f %%), peak %.1f MiB"
              % (counters.requests, counters.errors, min(5, len(rss)), warm / 1024,
                 rss[-1] / 1024, growth * 100, max(rss) / 1024))
        if counters.samples:
            print("first errors:", counters.samples)
        return 0 if counters.errors == 0 and growth <= 0.20 else 1
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
