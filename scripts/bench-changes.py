#!/usr/bin/env python3
"""A delta GET after 10,000 changes on a large table (change tracking, issue 15).

Usage: python3 scripts/bench-changes.py [rows, default 1000000] [changes, default 10000]
SMSCTX_BINARY=path runs another build.

smsctx creates its schema, the table is filled with bench-query.py's generated contexts, each
given its create's row in the change log (as smsctx's writer logs any create; without the audit
JSON), smsctx is restarted on it, a
first tracked page gives a delta token, then `changes` updates are sent over HTTP (PATCH of the
name, one keep-alive connection) and the delta link is read 7 times: p50 and max of its latency,
and the size of its answer (every changed row, `$select=msdyn_name`).
Needs a release build (cargo build --release).
"""
import http.client
import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("bench_query", os.path.join(HERE, "bench-query.py"))
bench = importlib.util.module_from_spec(spec)
sys.argv = [sys.argv[0]] + sys.argv[1:2]
CHANGES = int(os.environ.get("CHANGES", "10000"))
spec.loader.exec_module(bench)


def main():
    work = tempfile.mkdtemp()
    db = os.path.join(work, "bench.db")
    try:
        process = bench.start(db)
        process.terminate()
        process.wait()
        t = time.perf_counter()
        bench.seed(db)
        print(f"seeded {bench.ROWS} rows in {time.perf_counter() - t:.1f}s")
        conn = sqlite3.connect(db)
        # Rows seeded past the server are logged here, as its writer logs a create.
        conn.execute(
            "INSERT INTO smsctx_changelog (entity, objectid, action, operation, versionnumber, "
            "audited) SELECT 'msdyn_smsengagementctx', msdyn_smsengagementctxid, 1, 1, "
            "versionnumber, 0 FROM msdyn_smsengagementctx")
        # ... and listed by object, as the writer's folds would have (migration 19).
        conn.execute(
            "INSERT OR IGNORE INTO smsctx_changelog_byobject (objectid, seq) SELECT objectid, seq "
            "FROM smsctx_changelog WHERE entity <> '' ORDER BY objectid, seq")
        conn.execute("UPDATE smsctx_changelog_folded SET seq = "
                     "(SELECT coalesce(max(seq), 0) FROM smsctx_changelog)")
        conn.commit()
        ids = [r[0] for r in conn.execute(
            "SELECT msdyn_smsengagementctxid FROM msdyn_smsengagementctx ORDER BY random() LIMIT ?",
            (CHANGES,))]
        logged = conn.execute("SELECT count(*) FROM smsctx_changelog").fetchone()[0]
        conn.close()
        print(f"change log: {logged} rows")
        process = bench.start(db)
        try:
            measure(ids)
        finally:
            process.terminate()
            process.wait()
    finally:
        shutil.rmtree(work)


def measure(ids):
    # The token of a first tracked read, from its nextLink (one row a page).
    _, body = bench.get("/api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name",
                        {"Prefer": "odata.track-changes,odata.maxpagesize=1"})
    next_link = json.loads(body)["@odata.nextLink"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(next_link).query)
    token = query["$deltatoken"][0]
    c = http.client.HTTPConnection("127.0.0.1", bench.PORT)
    h = {"Authorization": f"Bearer {bench.TOKEN}", "Content-Type": "application/json"}
    t = time.perf_counter()
    for i, id_ in enumerate(ids):
        c.request("PATCH", f"/api/data/v9.2/msdyn_smsengagementctxes({id_})",
                  json.dumps({"msdyn_name": f"changed {i}"}), h)
        r = c.getresponse()
        r.read()
        assert r.status == 204, r.status
    print(f"{len(ids)} updates in {time.perf_counter() - t:.1f}s")
    link = ("/api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name&$deltatoken="
            + urllib.parse.quote(token, safe=""))
    times = []
    for _ in range(7):
        elapsed, body = bench.get(link)
        times.append(elapsed)
        rows = json.loads(body)["value"]
        assert len(rows) == len(ids), len(rows)
    print(f"delta GET of {len(ids)} changes on {bench.ROWS} rows: p50 {statistics.median(times) * 1000:.0f} ms,"
          f" max {max(times) * 1000:.0f} ms, {len(body) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
