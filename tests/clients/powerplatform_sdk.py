"""Microsoft's Python SDK (PyPI PowerPlatform-Dataverse-Client 1.1.0), unchanged, through the
operations its README shows that fit msdyn_smsengagementctx."""

import time

from azure.core.credentials import AccessToken
from PowerPlatform.Dataverse.client import DataverseClient
from PowerPlatform.Dataverse.models import col

from harness import ORG_URL, TAG, TOKEN, check, emit_outcome, results, step

TABLE = "msdyn_smsengagementctx"


class StaticToken:
    """A TokenCredential whose get_token returns smsctx's admin token (configuration only)."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken(TOKEN, int(time.time()) + 3600)


client = DataverseClient(ORG_URL, StaticToken())
name = f"{TAG}-sdk"


@step("tables.get")
def _():
    info = client.tables.get(TABLE)
    check(info is not None, "tables.get found no table")
    return info


@step("tables.list")
def _():
    tables = client.tables.list()
    names = [str(t.get("LogicalName") if isinstance(t, dict) else getattr(t, "logical_name", t)) for t in tables]
    check(any(TABLE in n for n in names), f"{TABLE} not in {names[:20]}")


@step("records.create")
def _():
    return client.records.create(TABLE, {"msdyn_name": f"{name}-kept", "msdyn_customerphonenumber": "14255550100"})


@step("records.get", needs=["records.create"])
def _():
    record = client.records.get(TABLE, results["records.create"], select=["msdyn_name"])
    check(record["msdyn_name"] == f"{name}-kept", f"got {record}")


@step("records.update", needs=["records.create"])
def _():
    client.records.update(TABLE, results["records.create"], {"msdyn_customerphonenumber": "14255550199"})


@step("records.delete")
def _():
    doomed = client.records.create(TABLE, {"msdyn_name": f"{name}-deleted"})
    client.records.delete(TABLE, doomed)
    check(client.records.retrieve(TABLE, doomed) is None, "the deleted record is still there")
    return doomed


@step("records.create many rows for the queries")
def _():
    for i in range(5):
        client.records.create(TABLE, {"msdyn_name": f"{name}-q{i}", "msdyn_customerphonenumber": f"1425555020{i}"})


@step("query.builder filter/orderby/top", needs=["records.create many rows for the queries"])
def _():
    rows = list(
        client.query.builder(TABLE)
        .select("msdyn_name", "msdyn_customerphonenumber")
        .where(col("msdyn_customerphonenumber") >= "14255550202")
        .where(col("statecode") == 0)
        .order_by("msdyn_customerphonenumber", descending=True)
        .top(2)
        .execute()
    )
    check([r["msdyn_name"] for r in rows] == [f"{name}-q4", f"{name}-q3"], f"got {rows}")


@step("query.builder paging", needs=["records.create many rows for the queries"])
def _():
    pages = list(
        client.query.builder(TABLE)
        .select("msdyn_name")
        .where(col("msdyn_customerphonenumber") >= "14255550200")
        .order_by("msdyn_customerphonenumber")
        .page_size(2)
        .execute_pages()
    )
    names = [r["msdyn_name"] for page in pages for r in page]
    check(len(pages) == 3, f"{len(pages)} pages")
    check(names == [f"{name}-q{i}" for i in range(5)], f"got {names}")


@step("query.sql", needs=["records.create many rows for the queries"])
def _():
    rows = client.query.sql(
        f"SELECT TOP 2 msdyn_name FROM {TABLE} WHERE msdyn_name LIKE '{name}-q%' ORDER BY msdyn_name DESC"
    )
    check([r["msdyn_name"] for r in rows] == [f"{name}-q4", f"{name}-q3"], f"got {rows}")


@step("query.fetchxml", needs=["records.create many rows for the queries"])
def _():
    xml = f"""<fetch top="3"><entity name="{TABLE}"><attribute name="msdyn_name"/>
      <filter><condition attribute="msdyn_name" operator="like" value="{name}-q%"/></filter>
      <order attribute="msdyn_name"/></entity></fetch>"""
    rows = list(client.query.fetchxml(xml).execute())
    check([r["msdyn_name"] for r in rows] == [f"{name}-q{i}" for i in range(3)], f"got {rows}")


@step("batch")
def _():
    batch = client.batch.new()
    batch.records.create(TABLE, {"msdyn_name": f"{name}-batch"})
    if "records.create" in results:
        batch.records.update(TABLE, results["records.create"], {"msdyn_name": f"{name}-kept"})
    result = batch.execute()
    failures = [r for r in getattr(result, "responses", []) if getattr(r, "status_code", 200) >= 400]
    check(not failures, f"failed parts: {failures}")


@step("dataframe.get", needs=["records.create many rows for the queries"])
def _():
    df = client.dataframe.get(TABLE, select=["msdyn_name"], filter=f"startswith(msdyn_name,'{name}-q')", orderby=["msdyn_name"])
    check(list(df["msdyn_name"]) == [f"{name}-q{i}" for i in range(5)], f"got {df}")


@step("query.builder to_dataframe", needs=["records.create many rows for the queries"])
def _():
    df = (
        client.query.builder(TABLE)
        .select("msdyn_name")
        .where(col("msdyn_name") == f"{name}-q1")
        .execute()
        .to_dataframe()
    )
    check(list(df["msdyn_name"]) == [f"{name}-q1"], f"got {df}")


@step("records.create list (CreateMultiple)")
def _():
    ids = client.records.create(TABLE, [{"msdyn_name": f"{name}-multi-a"}, {"msdyn_name": f"{name}-multi-b"}])
    check(len(ids) == 2, f"got {ids}")
    names = [client.records.get(TABLE, i, select=["msdyn_name"])["msdyn_name"] for i in ids]
    check(names == [f"{name}-multi-a", f"{name}-multi-b"], f"got {names}")
    return ids


@step("records.update list (UpdateMultiple)", needs=["records.create list (CreateMultiple)"])
def _():
    ids = results["records.create list (CreateMultiple)"]
    client.records.update(TABLE, ids, [{"msdyn_name": f"{name}-multi-a2"}, {"msdyn_name": f"{name}-multi-b2"}])
    names = [client.records.get(TABLE, i, select=["msdyn_name"])["msdyn_name"] for i in ids]
    check(names == [f"{name}-multi-a2", f"{name}-multi-b2"], f"got {names}")
    client.records.update(TABLE, ids, {"msdyn_customerphonenumber": "14255550177"})
    phones = [client.records.get(TABLE, i, select=["msdyn_customerphonenumber"])["msdyn_customerphonenumber"] for i in ids]
    check(phones == ["14255550177"] * 2, f"got {phones}")


@step("records.delete list (BulkDelete)", needs=["records.update list (UpdateMultiple)"])
def _():
    ids = results["records.create list (CreateMultiple)"]
    client.records.delete(TABLE, ids)
    deadline = time.time() + 30
    while time.time() < deadline and any(client.records.retrieve(TABLE, i) is not None for i in ids):
        time.sleep(0.5)
    check(all(client.records.retrieve(TABLE, i) is None for i in ids), "the listed records are still there")


emit_outcome(
    kept=results.get("records.create"),
    kept_name=f"{name}-kept",
    kept_phone="14255550199" if "records.update" in results else None,
    deleted=results.get("records.delete"),
)
