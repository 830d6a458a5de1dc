"""N updates (PATCH of one column) on one keep-alive connection, over the first N contexts
(scripts/bench-instructions.sh; the database holds 2,000)."""
import http.client, sys, json
port, n, start = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"Authorization": "Bearer bench", "Content-Type": "application/json", "OData-Version": "4.0",
     "Prefer": "odata.maxpagesize=5000"}
c.request("GET", "/api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name", headers=h)
r = c.getresponse()
ids = [row["msdyn_smsengagementctxid"] for row in json.loads(r.read())["value"]][:n]
assert len(ids) == n, len(ids)
for i, id_ in enumerate(ids):
    body = json.dumps({"msdyn_name": f"updated {start + i}"})
    c.request("PATCH", f"/api/data/v9.2/msdyn_smsengagementctxes({id_})", body, h)
    r = c.getresponse(); r.read()
    assert r.status == 204, r.status
