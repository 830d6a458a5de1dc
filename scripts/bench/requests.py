"""Sequential requests of one case on one keep-alive connection, for callgrind counts
(scripts/bench-instructions.sh).

Usage: requests.py PEER CASE PORT N [START]
  PEER  smsctx (the Web API, admin token "bench") or limit (../shared/perf/limit's /rows routes)
  CASE  create (N creates numbered from START), retrieve (by key), filter (customer phone eq),
        update (a PATCH of one column; smsctx only)
The database is expected to hold the rows seed() creates (`requests.py PEER seed PORT 2000`
for smsctx; ../shared/perf/seed.sh for the limit), whose phone numbers phone(PEER, i) names.
"""
import http.client
import json
import sys

API = "/api/data/v9.2/msdyn_smsengagementctxes"


def phone(peer, i):
    return "1425%07d" % ((i * 7919) % 10000000) if peer == "smsctx" else "1555%07d" % i


def main():
    peer, case, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    start = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    c = http.client.HTTPConnection("127.0.0.1", port)
    h = {"Accept": "application/json", "Content-Type": "application/json"}
    if peer == "smsctx":
        h.update({"Authorization": "Bearer bench", "OData-Version": "4.0"})

    def call(method, url, body=None, want=200):
        c.request(method, url, body, h)
        r = c.getresponse()
        data = r.read()
        assert r.status == want, (r.status, data[:300])
        return data

    if case in ("create", "seed"):
        for i in range(start, start + n):
            row = {"msdyn_name": f"bench {i}", "msdyn_orgphonenumber": "14255550100",
                   "msdyn_customerphonenumber": phone("smsctx", i), "msdyn_smsprovider": 192350001,
                   "msdyn_countrycode": "1"}
            if peer == "smsctx":
                call("POST", API, json.dumps(row), 204)
            else:
                row.update({"msdyn_customerphonenumber": "1666%07d" % i,
                            "msdyn_smsengagementid": f"SMB{i}", "versionnumber": i,
                            "msdyn_liveworkitemid": "11111111-0000-4000-8000-000000000001",
                            "ownerid": "22222222-0000-4000-8000-000000000001"})
                call("POST", "/rows", json.dumps(row), 204)
    elif case == "retrieve":
        if peer == "smsctx":
            page = json.loads(call("GET", f"{API}?$select=msdyn_smsengagementctxid&$top=500"))
            ids = [r["msdyn_smsengagementctxid"] for r in page["value"]]
            urls = [f"{API}({i})" for i in ids]
        else:
            urls = ["/rows/00000000-0000-4000-8000-%012d" % i for i in range(1, 501)]
        for i in range(n):
            call("GET", urls[i % len(urls)])
    elif case == "filter":
        base = API if peer == "smsctx" else "/rows"
        first = 1000000 if peer == "smsctx" else 1  # where the seed starts
        for i in range(n):
            number = phone(peer, first + i % 500)
            body = json.loads(call("GET", f"{base}?$filter=msdyn_customerphonenumber%20eq%20%27{number}%27"))
            rows = body["value"] if isinstance(body, dict) else body
            assert len(rows) == 1, body
    elif case == "update" and peer == "smsctx":
        page = json.loads(call("GET", f"{API}?$select=msdyn_smsengagementctxid&$top=500"))
        ids = [r["msdyn_smsengagementctxid"] for r in page["value"]]
        for i in range(n):
            body = json.dumps({"msdyn_name": f"updated {start + i}"})
            call("PATCH", f"{API}({ids[i % len(ids)]})", body, 204)
    else:
        raise SystemExit(f"unknown case {case} for {peer}")


main()
