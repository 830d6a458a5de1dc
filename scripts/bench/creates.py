"""N creates on one keep-alive connection, numbered from START (scripts/bench-instructions.sh)."""
import http.client, sys, json
port, n, start = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"Authorization": "Bearer bench", "Content-Type": "application/json", "OData-Version": "4.0"}
for i in range(start, start + n):
    body = json.dumps({"msdyn_name": f"bench {i}", "msdyn_orgphonenumber": "14255550100",
        "msdyn_customerphonenumber": "1425%07d" % ((i * 7919) % 10000000), "msdyn_smsprovider": 192350001, "msdyn_countrycode": "1"})
    c.request("POST", "/api/data/v9.2/msdyn_smsengagementctxes", body, h)
    r = c.getresponse(); r.read()
    assert r.status == 204, r.status
