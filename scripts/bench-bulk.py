#!/usr/bin/env python3
"""CreateMultiple of 1,000 contexts per request (issue 11's target: >= 20,000 rows/s on SQLite,
fsynced), on SQLite and on PostgreSQL: rows/s over REQUESTS requests, one client at a time
and CLIENTS at once, each request one transaction.

Usage: python3 scripts/bench-bulk.py [sqlite|postgres|both, default both] [requests, default 50]

Needs a release build (cargo build --release). PostgreSQL: SMSCTX_PG_URL names a database the
script may fill (scripts/lib/postgres.sh's start_postgres sets one up), e.g.
    bash -c 'source scripts/lib/postgres.sh; start_postgres on; export SMSCTX_PG_URL; python3 scripts/bench-bulk.py postgres'
The SQLite file lives in a temporary directory (fsync on, the server's default).
SMSCTX_BINARY=path runs another build (to compare two builds back to back).
On SQLite each line also gives the CPU time of the writer thread (the store's one serial part)
per 1,000 rows, from /proc: steadier than rows/s on a shared machine.
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

BACKENDS = sys.argv[1] if len(sys.argv) > 1 else "both"
REQUESTS = int(sys.argv[2]) if len(sys.argv) > 2 else 50
PER_REQUEST = 1000
CLIENTS = 4
PORT = 18386
TOKEN = "bench"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("SMSCTX_BINARY") or os.path.join(ROOT, "target", "release", "smsctx")
ACTION = "/api/data/v9.2/msdyn_smsengagementctxes/Microsoft.Dynamics.CRM.CreateMultiple"
TYPE = "Microsoft.Dynamics.CRM.msdyn_smsengagementctx"


def start(database):
    process = subprocess.Popen(
        [BINARY, "serve", "--listen", f"127.0.0.1:{PORT}", "--database", database,
         "--admin-token", TOKEN, "--max-body-bytes", str(4 * 1024 * 1024)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("smsctx did not start")


def body(batch):
    return json.dumps({"Targets": [
        {"@odata.type": TYPE, "msdyn_name": f"bulk-{batch}-{i}",
         "msdyn_customerphonenumber": f"1425{batch % 1000:03d}{i:04d}",
         "msdyn_orgphonenumber": "14255550100", "msdyn_smsprovider": 192350001}
        for i in range(PER_REQUEST)]})


def send(batches):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for batch in batches:
        c.request("POST", ACTION, body=body(batch), headers=headers)
        r = c.getresponse()
        data = r.read()
        if r.status != 200 or len(json.loads(data)["Ids"]) != PER_REQUEST:
            raise SystemExit(f"CreateMultiple answered {r.status}: {data[:300]!r}")


def writer_ticks(pid):
    """CPU clock ticks of the SQLite writer thread so far, or None (PostgreSQL has none)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as f:
            stat = f.read()
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        if name.startswith("smsctx-sqlite-w"):
            fields = fields.split()
            return int(fields[11]) + int(fields[12])
    return None


def measure(label, clients, first, pid):
    batches = list(range(first, first + REQUESTS))
    shares = [batches[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=send, args=(s,)) for s in shares]
    ticks = writer_ticks(pid)
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    rows = REQUESTS * PER_REQUEST
    writer = ""
    if ticks is not None:
        spent = (writer_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK")
        writer = f", writer thread {spent / rows * 1e6:.1f} ms CPU per 1,000 rows"
    print(f"{label}: {clients} client(s), {REQUESTS} x CreateMultiple of {PER_REQUEST}: "
          f"{rows / elapsed:,.0f} rows/s ({elapsed / REQUESTS * 1000:.0f} ms per request)"
          f"{writer}")


def run(label, database):
    process = start(database)
    try:
        send([10_000_000])  # warm-up
        measure(label, 1, 0, process.pid)
        measure(label, CLIENTS, REQUESTS, process.pid)
    finally:
        process.terminate()
        process.wait()


def main():
    if not os.path.exists(BINARY):
        raise SystemExit("build it first: cargo build --release")
    print(f"load: {os.getloadavg()}")
    if BACKENDS in ("sqlite", "both"):
        directory = tempfile.mkdtemp()
        try:
            run("SQLite", f"sqlite://{directory}/bench.db")
        finally:
            shutil.rmtree(directory)
    if BACKENDS in ("postgres", "both"):
        url = os.environ.get("SMSCTX_PG_URL")
        if not url:
            raise SystemExit("PostgreSQL: set SMSCTX_PG_URL (scripts/lib/postgres.sh start_postgres)")
        run("PostgreSQL", url)


if __name__ == "__main__":
    main()
