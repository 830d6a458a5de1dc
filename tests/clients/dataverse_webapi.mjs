// npm dataverse-webapi 3.3.0 (its Node entry point), unchanged: WhoAmI, CRUD, retrieveMultiple
// with paging, FetchXML, $batch, metadata.
import https from "node:https";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { ORG_URL, TAG, TOKEN, check, outcome, results, step } from "./harness.mjs";

const webapi = await import(pathToFileURL(path.join(process.env.SMSCTX_CLIENTS_NODE_MODULES, "dataverse-webapi/lib/node.js")).href);
// The client's https.request names a hostname and no port (it assumes 443); smsctx listens on
// a free port, so Node's default agent is pointed at it (configuration, the client is unchanged).
https.globalAgent.defaultPort = Number(new URL(ORG_URL).port || 443);
const config = new webapi.WebApiConfig("9.2", TOKEN, ORG_URL);
const set = "msdyn_smsengagementctxes";
const name = `${TAG}-dwebapi`;
const bare = (id) => String(id).replace(/[{}]/g, "");

await step("WhoAmI", async () => {
  const me = await webapi.unboundFunction(config, "WhoAmI");
  check(me.UserId, me);
});

await step("create", async () =>
  bare(await webapi.create(config, set, { msdyn_name: `${name}-kept`, msdyn_customerphonenumber: "14255550500" })),
);

await step("createWithReturnData", async () => {
  const row = await webapi.createWithReturnData(config, set, { msdyn_name: `${name}-returned` }, "$select=msdyn_name");
  check(row.msdyn_name === `${name}-returned`, row);
});

await step("retrieve", async () => {
  const row = await webapi.retrieve(config, set, results.create, "$select=msdyn_name");
  check(row.msdyn_name === `${name}-kept`, row);
}, ["create"]);

await step("update", () =>
  webapi.update(config, set, results.create, { msdyn_customerphonenumber: "14255550599" }), ["create"]);

await step("updateProperty", async () => {
  await webapi.updateProperty(config, set, results.create, "msdyn_name", `${name}-kept`);
}, ["create"]);

await step("deleteRecord", async () => {
  const id = bare(await webapi.create(config, set, { msdyn_name: `${name}-deleted` }));
  await webapi.deleteRecord(config, set, id);
  return id;
});

await step("create rows for the queries", async () => {
  for (let i = 0; i < 5; i++) await webapi.create(config, set, { msdyn_name: `${name}-q${i}` });
});

await step("retrieveMultiple with paging", async () => {
  const query = `$select=msdyn_name&$filter=startswith(msdyn_name,'${name}-q')&$orderby=msdyn_name`;
  const first = await webapi.retrieveMultiple(config, set, query, { maxPageSize: 2 });
  check(first.value.length === 2 && first["@odata.nextLink"], first);
  // retrieveMultipleNextPage writes the link into the config it is given: a config of its own.
  const paging = new webapi.WebApiConfig("9.2", TOKEN, ORG_URL);
  const second = await webapi.retrieveMultipleNextPage(paging, first["@odata.nextLink"], { maxPageSize: 2 });
  check(second.value.map((r) => r.msdyn_name).join() === `${name}-q2,${name}-q3`, second);
}, ["create rows for the queries"]);

await step("retrieveMultiple with FetchXML", async () => {
  const fetchXml = `<fetch><entity name="msdyn_smsengagementctx"><attribute name="msdyn_name"/><filter><condition attribute="msdyn_name" operator="like" value="${name}-q%"/></filter><order attribute="msdyn_name"/></entity></fetch>`;
  const rows = await webapi.retrieveMultiple(config, set, `fetchXml=${encodeURIComponent(fetchXml)}`);
  check(rows.value.length === 5 && rows.value[0].msdyn_name === `${name}-q0`, rows);
}, ["create rows for the queries"]);

await step("batchOperation", async () => {
  const changeSets = [{ queryString: set, entity: { msdyn_name: `${name}-batch` }, method: "POST" }];
  const gets = [`${set}?$select=msdyn_name&$filter=msdyn_name eq '${name}-kept'`];
  const responses = await webapi.batchOperation(config, "batch_smsctx", "changeset_smsctx", changeSets, gets);
  check(Array.isArray(responses) && responses.every((r) => !r.error && (r.httpStatus ?? 200) < 400), responses);
});

await step("metadata (EntityDefinitions)", async () => {
  const rows = await webapi.retrieveMultiple(config, "EntityDefinitions", "$select=LogicalName,EntitySetName&$filter=LogicalName eq 'msdyn_smsengagementctx'");
  check(rows.value.length === 1 && rows.value[0].EntitySetName === set, rows);
});

outcome({
  kept: results.create ?? null,
  kept_name: `${name}-kept`,
  kept_phone: results.update ? "14255550599" : null,
  deleted: results.deleteRecord ?? null,
});
