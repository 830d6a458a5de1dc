#!/usr/bin/env python3
"""Loads a running smsctx's $metadata in a real OData v4 client library and uses it.

python-odata (PyPI) reads the CSDL document, builds entity classes from it, then lists, creates
and filters contexts through them, so the document is checked the way a client reads it, beyond
the schema validation of scripts/validate-csdl.sh.

    python3 scripts/odata-client-check.py http://127.0.0.1:8080/api/data/v9.2/ TOKEN

Installs python-odata with pip when it is missing. Exits non-zero on any failure.
"""
import subprocess
import sys
import time
import uuid

try:
    import odata  # noqa: F401
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "python-odata"])

import requests
from odata import ODataService


def main(root, token):
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + token
    service = ODataService(root, session=session, reflect_entities=True)
    sets = sorted(service.entities)
    print("entity sets reflected:", ", ".join(sets))
    context = service.entities["msdyn_smsengagementctxes"]
    name = "odata-client-check " + uuid.uuid4().hex
    record = context()
    record.msdyn_name = name
    record.msdyn_smsprovider = 192350001
    service.save(record)
    found = service.query(context).filter(context.msdyn_name == name).all()
    assert len(found) == 1, f"expected the created context back, got {len(found)} rows"
    assert found[0].statecode == 0 and found[0].msdyn_smsprovider == 192350001
    print("created and read back one context through python-odata: ok")

    # BulkDelete is an unbound action of the document: the client reflects it with its
    # parameters and calls it; the job it records deletes the context created above.
    bulk_delete = service.actions.get("BulkDelete")
    assert bulk_delete is not None, "python-odata did not reflect the BulkDelete action"
    assert "QuerySet" in bulk_delete.parameters, sorted(bulk_delete.parameters)
    query = {
        "@odata.type": "Microsoft.Dynamics.CRM.QueryExpression",
        "EntityName": "msdyn_smsengagementctx",
        "ColumnSet": {"AllColumns": False, "Columns": []},
        "Criteria": {"FilterOperator": "And", "Conditions": [
            {"AttributeName": "msdyn_name", "Operator": "Equal", "Values": [
                {"Value": name, "Type": "System.String"}]}]},
    }
    response = bulk_delete(QuerySet=[query], JobName="odata-client-check", SendEmailNotification=False,
                           ToRecipients=[], CCRecipients=[], RecurrencePattern="",
                           StartDateTime="2026-01-01T00:00:00Z", SourceImportId=None, RunNow=None)
    print("BulkDelete through python-odata answered:", response)
    for _ in range(100):
        if not service.query(context).filter(context.msdyn_name == name).all():
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the BulkDelete job did not delete the context")
    print("BulkDelete reflected from $metadata, called, and its job ran: ok")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: odata-client-check.py ROOT_URL TOKEN")
    main(sys.argv[1], sys.argv[2])
