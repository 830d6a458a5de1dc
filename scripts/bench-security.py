#!/usr/bin/env python3
"""RetrieveMultiple as a Basic-depth user with 100 shares among 1,000,000 rows, against the same
queries as the administrator (the row scope's cost), and retrieve-by-key throughput as the
administrator and as a JWT user (the cost of loading the caller's roles on every request).

Usage: python3 scripts/bench-security.py [rows, default 1000000]

smsctx creates its schema and the user (Basic User role, over HTTP), the rows are filled with
Python's sqlite3 as in bench-query.py, owned by the administrator, and 100 of them are shared
with the user (principalobjectaccess rows, ReadAccess); then smsctx is restarted and measured.
Needs a release build (cargo build --release) and wrk.
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
SHARES = 100
PORT = 18384
TOKEN = "bench"
SECRET = "bench-secret-of-at-least-32-bytes-long"
ORGS = [f"1425555{n:04d}" for n in range(25)]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "smsctx")
API = "/api/data/v9.2/"


def start(db):
    process = subprocess.Popen(
        [BINARY, "serve", "--listen", f"127.0.0.1:{PORT}", "--database", f"sqlite://{db}",
         "--admin-token", TOKEN, "--jwt-secret", SECRET],
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


def call(method, path, token=TOKEN, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=300)
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    h.update(headers or {})
    started = time.perf_counter()
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    elapsed = time.perf_counter() - started
    if r.status >= 400:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]}")
    return elapsed, r, data


def make_user():
    _, _, data = call("GET", API + "businessunits?$select=name")
    root = json.loads(data)["value"][0]["businessunitid"]
    oid = str(uuid.uuid4())
    _, r, _ = call("POST", API + "systemusers", body={
        "firstname": "Bench", "lastname": "User", "azureactivedirectoryobjectid": oid,
        "businessunitid@odata.bind": f"/businessunits({root})"})
    user = r.getheader("OData-EntityId").rsplit("(", 1)[1].rstrip(")")
    _, _, data = call("GET", API + "roles?$filter=" + urllib.parse.quote(
        f"name eq 'Basic User' and _businessunitid_value eq {root}"))
    role = json.loads(data)["value"][0]["roleid"]
    call("POST", API + f"systemusers({user})/systemuserroles_association/$ref",
         body={"@odata.id": f"http://127.0.0.1:{PORT}{API}roles({role})"})
    return user


def seed(db, user):
    conn = sqlite3.connect(db)
    admin = conn.execute("SELECT value FROM smsctx_settings WHERE key='admin_user_id'").fetchone()[0]
    bu = conn.execute("SELECT value FROM smsctx_settings WHERE key='root_business_unit_id'").fetchone()[0]
    version = conn.execute("SELECT value FROM smsctx_sequence WHERE name='versionnumber'").fetchone()[0]
    rng = random.Random(42)
    now = int(time.time())
    shared_at = set(rng.sample(range(ROWS), SHARES))
    shared = []

    def rows():
        nonlocal version
        for n in range(ROWS):
            version += 1
            org = ORGS[n % len(ORGS)]
            customer = f"1{rng.randrange(2000000000, 9999999999)}"
            row_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if n in shared_at:
                shared.append((row_id, org, customer))
            state = 0 if n % 10 else 1
            if n in shared_at:
                state = 0
            created = now - rng.randrange(0, 90 * 86400)
            yield (row_id, f"SMS context {n}", "1", customer, org, f"SM{n:032x}",
                   rng.choice([192350000, 192350001]), admin, "systemuser", state, state + 1,
                   admin, created, admin, created, bu, admin, version)

    conn.executemany(
        "INSERT INTO msdyn_smsengagementctx (msdyn_smsengagementctxid, msdyn_name, msdyn_countrycode,"
        " msdyn_customerphonenumber, msdyn_orgphonenumber, msdyn_smsengagementid, msdyn_smsprovider,"
        " ownerid, owneridtype, statecode, statuscode, createdby, createdon, modifiedby, modifiedon,"
        " owningbusinessunit, owninguser, versionnumber)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows())
    for row_id, _, _ in shared:
        version += 1
        conn.execute(
            "INSERT INTO principalobjectaccess (principalobjectaccessid, accessrightsmask, objectid,"
            " objecttypecode, principalid, principaltypecode, versionnumber) VALUES (?,?,?,?,?,?,?)",
            (str(uuid.uuid4()), 1, row_id, "msdyn_smsengagementctx", user, "systemuser", version))
    conn.execute("UPDATE smsctx_sequence SET value=? WHERE name='versionnumber'", (version,))
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return shared


def median_ms(path, token, n):
    times = []
    body = b""
    for _ in range(n):
        elapsed, _, body = call("GET", path, token=token)
        times.append(elapsed)
    return statistics.median(times) * 1000, body


def wrk(script, connections=64, seconds=10):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
         f"http://127.0.0.1:{PORT}"], capture_output=True, text=True).stdout
    keep = [l.strip() for l in out.splitlines()
            if l.strip().startswith(("50%", "99%", "Requests/sec", "Non-2xx"))]
    return "; ".join(keep)


def measure(work, user_token, shared):
    q = urllib.parse.quote
    org, customer = shared[0][1], shared[0][2]
    pair = (f"msdyn_orgphonenumber eq '{org}' and msdyn_customerphonenumber eq '{customer}'"
            " and statecode eq 0")
    queries = [
        ("phone-pair filter (a shared row)", API + "msdyn_smsengagementctxes?$filter=" + q(pair), 200),
        ("first page, $select=msdyn_name (5000 rows max)",
         API + "msdyn_smsengagementctxes?$select=msdyn_name", 10),
        ("$top=50 $filter=statecode eq 0 $orderby=createdon desc",
         API + "msdyn_smsengagementctxes?$select=msdyn_name&$top=50&$filter=" + q("statecode eq 0")
         + "&$orderby=" + q("createdon desc"), 10),
        ("/$count (capped at 5000)", API + "msdyn_smsengagementctxes/$count", 20),
        ("$apply filter(one org number)/groupby statecode", API + "msdyn_smsengagementctxes?$apply="
         + q(f"filter(msdyn_orgphonenumber eq '{org}')/groupby((statecode),aggregate($count as n))"), 5),
    ]
    for name, path, n in queries:
        admin_ms, admin_body = median_ms(path, TOKEN, n)
        user_ms, user_body = median_ms(path, user_token, n)
        rows = lambda b: len(json.loads(b).get("value", [])) if b.startswith(b"{") else b.decode()
        print(f"{name}: admin {admin_ms:.2f} ms ({rows(admin_body)}), "
              f"user {user_ms:.2f} ms ({rows(user_body)}), ratio {user_ms / admin_ms:.2f}")

    # Retrieve by key, 64 connections: the admin token and a JWT user (roles loaded per request).
    row = shared[0][0]
    for who, token in (("admin token", TOKEN), ("JWT user (Basic User, shared row)", user_token)):
        script = os.path.join(work, "get.lua")
        with open(script, "w") as f:
            f.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n'
                    f'request = function() return wrk.format("GET", '
                    f'"{API}msdyn_smsengagementctxes({row})") end\n')
        print(f"retrieve by key, 64 connections, {who}: {wrk(script)}")


def main():
    work = tempfile.mkdtemp()
    # SMSCTX_BENCH_KEEP=DIR keeps the seeded database in DIR and reuses it on the next run.
    keep = os.environ.get("SMSCTX_BENCH_KEEP")
    db = os.path.join(keep or work, "bench-security.db")
    facts = db + ".json"
    try:
        if keep and os.path.exists(facts):
            user, shared = json.load(open(facts))
        else:
            process = start(db)
            try:
                user = make_user()
            finally:
                process.terminate()
                process.wait()
            t = time.perf_counter()
            shared = seed(db, user)
            print(f"seeded {ROWS} rows and {SHARES} shares in {time.perf_counter() - t:.1f}s")
            if keep:
                json.dump([user, shared], open(facts, "w"))
        token = subprocess.run(
            [BINARY, "token", "--user", user, "--jwt-secret", SECRET, "--database", f"sqlite://{db}"],
            capture_output=True, text=True, check=True).stdout.strip()
        process = start(db)
        try:
            measure(work, token, shared)
        finally:
            process.terminate()
            process.wait()
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
