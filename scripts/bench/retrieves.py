"""Retrieves by key on one keep-alive connection (scripts/bench-instructions.sh)."""
import http.client, sys, json
port, n = int(sys.argv[1]), int(sys.argv[2])  # a third argument (a start) is ignored
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"Authorization": "Bearer bench", "OData-Version": "4.0"}
c.request("GET", "/api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_smsengagementctxid&$top=500", headers=h)
ids = [r["msdyn_smsengagementctxid"] for r in json.loads(c.getresponse().read())["value"]]
for i in range(n):
    c.request("GET", f"/api/data/v9.2/msdyn_smsengagementctxes({ids[i % len(ids)]})", headers=h)
    r = c.getresponse(); r.read(); assert r.status == 200, r.status
