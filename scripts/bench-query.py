#!/usr/bin/env python3
"""RetrieveMultiple on 1,000,000 rows: the phone-pair filter, a 5000-row paging walk (page 1 vs
page 200), a filtered $count and an aggregate groupby.

Usage: python3 scripts/bench-query.py [rows, default 1000000]
SMSCTX_BINARY=path runs another build (to compare two builds back to back).

The table is created by smsctx itself (first start), then filled directly with Python's sqlite3
(the fastest way to a million rows), then smsctx is restarted on it and measured over HTTP.
Needs a release build (cargo build --release) and wrk for the latency run.
"""
import http.client
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
PORT = 18383
TOKEN = "bench"
ORGS = [f"1425555{n:04d}" for n in range(25)]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("SMSCTX_BINARY") or os.path.join(ROOT, "target", "release", "smsctx")


def start(db):
    process = subprocess.Popen(
        [BINARY, "serve", "--listen", f"127.0.0.1:{PORT}", "--database", f"sqlite://{db}",
         "--admin-token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    raise SystemExit("smsctx did not start")


def get(path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
    h = {"Authorization": f"Bearer {TOKEN}"}
    h.update(headers or {})
    started = time.perf_counter()
    c.request("GET", path, headers=h)
    r = c.getresponse()
    body = r.read()
    elapsed = time.perf_counter() - started
    if r.status != 200:
        raise SystemExit(f"{path}: {r.status} {body[:300]}")
    return elapsed, body


def seed(db):
    conn = sqlite3.connect(db)
    admin = conn.execute("SELECT value FROM smsctx_settings WHERE key='admin_user_id'").fetchone()[0]
    bu = conn.execute("SELECT value FROM smsctx_settings WHERE key='root_business_unit_id'").fetchone()[0]
    version = conn.execute("SELECT value FROM smsctx_sequence WHERE name='versionnumber'").fetchone()[0]
    rng = random.Random(42)
    now = int(time.time())
    pairs = []

    def rows():
        nonlocal version
        for n in range(ROWS):
            version += 1
            org = ORGS[n % len(ORGS)]
            customer = f"1{rng.randrange(2000000000, 9999999999)}"
            if n % 1000 == 0:
                pairs.append((org, customer))
            state = 0 if n % 10 else 1
            created = now - rng.randrange(0, 90 * 86400)
            yield (str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"SMS context {n}", "1",
                   customer, org, f"SM{n:032x}", rng.choice([192350000, 192350001]), admin,
                   "systemuser", state, state + 1, admin, created, admin, created, bu, admin, version)

    conn.executemany(
        "INSERT INTO msdyn_smsengagementctx (msdyn_smsengagementctxid, msdyn_name, msdyn_countrycode,"
        " msdyn_customerphonenumber, msdyn_orgphonenumber, msdyn_smsengagementid, msdyn_smsprovider,"
        " ownerid, owneridtype, statecode, statuscode, createdby, createdon, modifiedby, modifiedon,"
        " owningbusinessunit, owninguser, versionnumber)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows())
    conn.execute("UPDATE smsctx_sequence SET value=? WHERE name='versionnumber'", (version,))
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return pairs


def main():
    work = tempfile.mkdtemp()
    db = os.path.join(work, "bench.db")
    try:
        process = start(db)
        process.terminate()
        process.wait()
        t = time.perf_counter()
        pairs = seed(db)
        print(f"seeded {ROWS} rows in {time.perf_counter() - t:.1f}s")
        process = start(db)
        try:
            measure(work, pairs)
        finally:
            process.terminate()
            process.wait()
    finally:
        shutil.rmtree(work)


def measure(work, pairs):
    # Phone-pair lookup: latency distribution with wrk, one connection, random known pairs.
    paths = os.path.join(work, "paths.txt")
    with open(paths, "w") as f:
        for org, customer in pairs:
            q = (f"msdyn_orgphonenumber eq '{org}' and msdyn_customerphonenumber eq '{customer}'"
                 " and statecode eq 0")
            f.write("/api/data/v9.2/msdyn_smsengagementctxes?$filter=" + urllib.parse.quote(q) + "\n")
    script = os.path.join(work, "pairs.lua")
    with open(script, "w") as f:
        f.write(f"""
local paths = {{}}
for line in io.lines("{paths}") do paths[#paths + 1] = line end
wrk.headers["Authorization"] = "Bearer {TOKEN}"
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
""")
    for connections in (1, 64):
        out = subprocess.run(
            ["wrk", "-t1" if connections == 1 else "-t2", f"-c{connections}", "-d10s", "--latency",
             "-s", script, f"http://127.0.0.1:{PORT}"],
            capture_output=True, text=True).stdout
        keep = [l.strip() for l in out.splitlines()
                if l.strip().startswith(("50%", "99%", "Requests/sec", "Non-2xx"))]
        print(f"phone-pair filter, {connections} connection(s): " + "; ".join(keep))

    # Paging walk: 5000 rows a page, the first, middle and last page timed (3 walks, medians).
    last = max(1, min(200, ROWS // 5000))
    page_times = {1: [], max(1, last // 2): [], last: []}
    for _ in range(3):
        path = "/api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name&$orderby=createdon%20desc"
        page = 0
        while path and page < last:
            page += 1
            elapsed, body = get(path, {"Prefer": "odata.maxpagesize=5000"})
            if page in page_times:
                page_times[page].append(elapsed)
            link = json.loads(body).get("@odata.nextLink")
            path = link[link.index("/api/data/"):] if link else None
    for page, times in page_times.items():
        if times:
            print(f"paging walk (5000 rows, $orderby=createdon desc): page {page} median "
                  f"{statistics.median(times) * 1000:.1f} ms")

    # Filtered $count (Dataverse caps counts at 5000) and @odata.count with a filter.
    for path in ["/api/data/v9.2/msdyn_smsengagementctxes/$count?$filter=" + urllib.parse.quote(
                     f"msdyn_orgphonenumber eq '{ORGS[3]}' and statecode eq 0"),
                 "/api/data/v9.2/msdyn_smsengagementctxes?$count=true&$top=1&$select=msdyn_name&$filter="
                 + urllib.parse.quote("statecode eq 1")]:
        times = [get(path)[0] for _ in range(20)]
        print(f"{path.split('?')[0].split('/')[-1]} with filter: median "
              f"{statistics.median(times) * 1000:.2f} ms")

    # $expand of a lookup on a 5000-row page (every row names the same creator).
    path = ("/api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name"
            "&$expand=createdby($select=fullname)")
    times = [get(path, {"Prefer": "odata.maxpagesize=5000"})[0] for _ in range(5)]
    print(f"5000-row page with $expand=createdby: median {statistics.median(times) * 1000:.1f} ms")

    # Aggregate groupby over one org number's rows (Dataverse aggregates at most 50,000 rows).
    apply = ("filter(msdyn_orgphonenumber eq '" + ORGS[5] + "')/groupby((statecode,msdyn_smsprovider),"
             "aggregate($count as n))")
    path = "/api/data/v9.2/msdyn_smsengagementctxes?$apply=" + urllib.parse.quote(apply)
    times = [get(path)[0] for _ in range(10)]
    print(f"$apply groupby over {ROWS // len(ORGS)} rows: median {statistics.median(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
