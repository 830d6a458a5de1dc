#!/usr/bin/env python3
"""Relationships on 1,000,000 contexts (issue 11): one conversation with its 100 contexts through
the collection-valued navigation (`$expand`) and through a FetchXML one-to-many link-entity, and
a `$filter` through the lookup (`msdyn_liveworkitemid/statecode eq 1`), with the SQLite query
plan each uses.

Usage: python3 scripts/bench-relations.py [contexts, default 1000000]
SMSCTX_BINARY=path runs another build.

10,000 conversations with 100 contexts each; every 100th conversation is inactive, so the
lookup filter selects 10,000 contexts. Tables are created by smsctx (first start), filled with
Python's sqlite3, then smsctx is restarted on the file and measured over HTTP, one request at a
time (p50 of many). Needs a release build (cargo build --release). The load average is printed
with each figure: the machine may be shared.
"""
import importlib.util
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
# The server start and the timed GET are bench-query.py's.
spec = importlib.util.spec_from_file_location("bench_query", os.path.join(HERE, "bench-query.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
bench.PORT = 18384

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
PER_CONVERSATION = 100
CONVERSATIONS = max(1, ROWS // PER_CONVERSATION)
COLLECTION = "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid"


def load():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def seed(db):
    conn = sqlite3.connect(db)
    setting = lambda key: conn.execute(
        "SELECT value FROM smsctx_settings WHERE key=?", (key,)).fetchone()[0]
    admin, bu = setting("admin_user_id"), setting("root_business_unit_id")
    version = conn.execute("SELECT value FROM smsctx_sequence WHERE name='versionnumber'").fetchone()[0]
    rng = random.Random(11)
    now = int(time.time())
    conversations = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(CONVERSATIONS)]

    def conversation_rows():
        nonlocal version
        for n, id in enumerate(conversations):
            version += 1
            state = 1 if n % 100 == 0 else 0
            yield (id, f"conversation {n}", admin, "systemuser", state, state + 1, bu, admin,
                   admin, now, admin, now, version)

    conn.executemany(
        "INSERT INTO msdyn_ocliveworkitem (activityid, subject, ownerid, owneridtype, statecode,"
        " statuscode, owningbusinessunit, owninguser, createdby, createdon, modifiedby, modifiedon,"
        " versionnumber) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", conversation_rows())

    def context_rows():
        nonlocal version
        for n in range(ROWS):
            version += 1
            created = now - rng.randrange(0, 90 * 86400)
            yield (str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"SMS context {n}", "1",
                   f"1{rng.randrange(2000000000, 9999999999)}", "14255550100", f"SM{n:032x}",
                   192350001, conversations[n % CONVERSATIONS], admin, "systemuser", 0, 1, admin,
                   created, admin, created, bu, admin, version)

    conn.executemany(
        "INSERT INTO msdyn_smsengagementctx (msdyn_smsengagementctxid, msdyn_name, msdyn_countrycode,"
        " msdyn_customerphonenumber, msdyn_orgphonenumber, msdyn_smsengagementid, msdyn_smsprovider,"
        " msdyn_liveworkitemid, ownerid, owneridtype, statecode, statuscode, createdby, createdon,"
        " modifiedby, modifiedon, owningbusinessunit, owninguser, versionnumber)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", context_rows())
    conn.execute("UPDATE smsctx_sequence SET value=? WHERE name='versionnumber'", (version,))
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return conversations


def explain(db, sql, params):
    conn = sqlite3.connect(db)
    lines = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    conn.close()
    return "; ".join(lines)


def p50(paths, rounds, headers=None):
    times = []
    for n in range(rounds):
        elapsed, _ = bench.get(paths[n % len(paths)], headers)
        times.append(elapsed)
    return statistics.median(times) * 1000


def measure(db, conversations):
    rng = random.Random(7)
    picked = rng.sample(conversations, 50)
    # The SQL the planner sends for each, in the lowering's shape (src/store/sql.rs).
    expand_sql = ("SELECT t.msdyn_name FROM msdyn_smsengagementctx AS t WHERE t.msdyn_liveworkitemid"
                  " IN (?1) ORDER BY t.msdyn_smsengagementctxid ASC LIMIT 50001")
    join_sql = ("SELECT t.subject, l1.msdyn_name FROM msdyn_ocliveworkitem AS t INNER JOIN"
                " msdyn_smsengagementctx AS l1 ON l1.msdyn_liveworkitemid = t.activityid"
                " WHERE t.activityid = ?1 ORDER BY t.activityid ASC, l1.msdyn_smsengagementctxid ASC"
                " LIMIT 5001 OFFSET 0")
    filter_sql = ("SELECT t.msdyn_name FROM msdyn_smsengagementctx AS t WHERE t.msdyn_liveworkitemid IS"
                  " NOT NULL AND t.msdyn_liveworkitemid IN (SELECT r1.activityid FROM"
                  " msdyn_ocliveworkitem AS r1 WHERE r1.activityid IS NOT NULL AND (r1.statecode = ?1))"
                  " ORDER BY t.msdyn_smsengagementctxid ASC LIMIT ?2")

    paths = [f"/api/data/v9.2/msdyn_ocliveworkitems({c})?$select=subject"
             f"&$expand={COLLECTION}($select=msdyn_name)" for c in picked]
    _, body = bench.get(paths[0])
    assert body.count(b'"msdyn_name"') == PER_CONVERSATION, body[:300]
    print(f"one conversation, $expand of its {PER_CONVERSATION} contexts ($select=msdyn_name): "
          f"p50 {p50(paths, 200):.2f} ms ({load()})")
    print(f"  plan: {explain(db, expand_sql, (picked[0],))}")

    paths = []
    for c in picked:
        xml = ("<fetch><entity name='msdyn_ocliveworkitem'><attribute name='subject'/>"
               f"<filter><condition attribute='activityid' operator='eq' value='{c}'/></filter>"
               "<link-entity name='msdyn_smsengagementctx' from='msdyn_liveworkitemid' to='activityid'"
               " alias='c'><attribute name='msdyn_name'/></link-entity></entity></fetch>")
        paths.append("/api/data/v9.2/msdyn_ocliveworkitems?fetchXml=" + urllib.parse.quote(xml))
    _, body = bench.get(paths[0])
    assert body.count(b'"c.msdyn_name"') == PER_CONVERSATION, body[:300]
    print(f"one conversation joined with its {PER_CONVERSATION} contexts (FetchXML one-to-many"
          f" link-entity): p50 {p50(paths, 200):.2f} ms ({load()})")
    print(f"  plan: {explain(db, join_sql, (picked[0],))}")

    lookup = urllib.parse.quote("msdyn_liveworkitemid/statecode eq 1")
    for label, path, headers, rounds in [
        ("$top=50", f"/api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name&$filter={lookup}"
                    "&$top=50", None, 50),
        ("a page of 5000", f"/api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name&$filter={lookup}",
         {"Prefer": "odata.maxpagesize=5000"}, 20),
        ("/$count", f"/api/data/v9.2/msdyn_smsengagementctxes/$count?$filter={lookup}", None, 50),
    ]:
        print(f"$filter=msdyn_liveworkitemid/statecode eq 1 on {ROWS} contexts ({ROWS // 100} match),"
              f" {label}: p50 {p50([path], rounds, headers):.2f} ms ({load()})")
    print(f"  plan: {explain(db, filter_sql, (1, 51))}")


def main():
    work = tempfile.mkdtemp()
    db = os.path.join(work, "bench.db")
    try:
        process = bench.start(db)
        process.terminate()
        process.wait()
        started = time.perf_counter()
        conversations = seed(db)
        print(f"seeded {CONVERSATIONS} conversations and {ROWS} contexts in "
              f"{time.perf_counter() - started:.1f}s")
        process = bench.start(db)
        try:
            measure(db, conversations)
        finally:
            process.terminate()
            process.wait()
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
