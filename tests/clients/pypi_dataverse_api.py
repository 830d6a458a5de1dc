"""PyPI dataverse-api 1.4.3, unchanged: the entity interface, read with select/filter/orderby/top
and next links, create, upsert, delete by ids and by filter."""

import uuid

import requests
from dataverse_api import DataverseClient

from harness import ORG_URL, TAG, TOKEN, check, emit_outcome, results, step

session = requests.Session()
session.headers["Authorization"] = f"Bearer {TOKEN}"  # an already authorized Session, as its README asks
client = DataverseClient(session=session, environment_url=ORG_URL)
name = f"{TAG}-dvapi"


@step("entity")
def _():
    return client.entity(logical_name="msdyn_smsengagementctx")


@step("create individual", needs=["entity"])
def _():
    rows = [{"msdyn_name": f"{name}-r{i}", "msdyn_customerphonenumber": f"1425555030{i}"} for i in range(5)]
    responses = results["entity"].create(rows, mode="individual")
    check(all(r.ok for r in responses), [r.status_code for r in responses])


@step("create batch", needs=["entity"])
def _():
    rows = [{"msdyn_name": f"{name}-b{i}"} for i in range(3)]
    responses = results["entity"].create(rows, mode="batch")
    check(all(r.ok for r in responses), [r.status_code for r in responses])


@step("read select/filter/orderby/top", needs=["create individual"])
def _():
    rows = results["entity"].read(
        select=["msdyn_name"], filter=f"startswith(msdyn_name,'{name}-r')", order_by="msdyn_name desc", top=2
    )
    check([r["msdyn_name"] for r in rows] == [f"{name}-r4", f"{name}-r3"], rows)


@step("read next links", needs=["create individual"])
def _():
    rows = results["entity"].read(
        select=["msdyn_name"], filter=f"startswith(msdyn_name,'{name}-r')", order_by="msdyn_name", page_size=2
    )
    check([r["msdyn_name"] for r in rows] == [f"{name}-r{i}" for i in range(5)], rows)
    return rows


@step("upsert by primary id", needs=["entity"])
def _():
    kept = str(uuid.uuid4())
    results["entity"].upsert([{"msdyn_smsengagementctxid": kept, "msdyn_name": f"{name}-upserted"}])
    results["entity"].upsert([{"msdyn_smsengagementctxid": kept, "msdyn_customerphonenumber": "14255550399"}])
    return kept


@step("upsert batch", needs=["entity"])
def _():
    ids = [str(uuid.uuid4()) for _ in range(2)]
    results["entity"].upsert([{"msdyn_smsengagementctxid": i, "msdyn_name": f"{name}-ub"} for i in ids], mode="batch")


@step("delete by ids", needs=["read next links"])
def _():
    rows = results["entity"].read(select=["msdyn_smsengagementctxid"], filter=f"msdyn_name eq '{name}-r0'")
    ids = [r["msdyn_smsengagementctxid"] for r in rows]
    check(len(ids) == 1, rows)
    responses = results["entity"].delete(ids=ids)
    check(all(r.ok for r in responses), [r.status_code for r in responses])
    return ids[0]


@step("delete by filter", needs=["create batch"])
def _():
    responses = results["entity"].delete(filter=f"startswith(msdyn_name,'{name}-b')", mode="batch")
    check(all(r.ok for r in responses), [r.status_code for r in responses])


@step("create multiple (CreateMultiple)", needs=["entity"])
def _():
    responses = results["entity"].create([{"msdyn_name": f"{name}-m{i}"} for i in range(2)], mode="multiple")
    check(all(r.ok for r in responses), [r.status_code for r in responses])


emit_outcome(
    kept=results.get("upsert by primary id"),
    kept_name=f"{name}-upserted",
    kept_phone="14255550399",
    deleted=results.get("delete by ids"),
    gone_prefix=f"{name}-b" if "delete by filter" in results else None,
)
