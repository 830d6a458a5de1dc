// npm dynamics-web-api 2.5.0, unchanged: WhoAmI, CRUD, retrieveMultiple with paging, FetchXML,
// $batch, metadata, associate / disassociate (one-to-many and single-valued), a nested
// expand of a collection-valued navigation property, and retrieve / update / upsert /
// deleteRecord with `key: "col='v',col2='w'"` (an alternate key, which the library puts in
// the URL as it is written), and change tracking (`trackChanges`, then the delta link).
import { ORG_URL, TAG, TOKEN, check, outcome, require, results, step } from "./harness.mjs";

const { DynamicsWebApi } = require("dynamics-web-api");
const api = new DynamicsWebApi({
  serverUrl: ORG_URL,
  dataApi: { version: "9.2" },
  onTokenRefresh: async () => TOKEN,
});
const collection = "msdyn_smsengagementctxes";
const name = `${TAG}-dwa`;

await step("WhoAmI", async () => {
  const me = await api.callFunction("WhoAmI");
  check(me.UserId && me.BusinessUnitId, me);
});

await step("create", () =>
  api.create({ collection, data: { msdyn_name: `${name}-kept`, msdyn_customerphonenumber: "14255550400" } }),
);

await step("retrieve", async () => {
  const row = await api.retrieve({ collection, key: results.create, select: ["msdyn_name"] });
  check(row.msdyn_name === `${name}-kept`, row);
}, ["create"]);

await step("update", () =>
  api.update({ collection, key: results.create, data: { msdyn_customerphonenumber: "14255550499" } }), ["create"]);

await step("deleteRecord", async () => {
  const id = await api.create({ collection, data: { msdyn_name: `${name}-deleted` } });
  await api.deleteRecord({ collection, key: id });
  return id;
});

await step("create rows for the queries", async () => {
  for (let i = 0; i < 5; i++) await api.create({ collection, data: { msdyn_name: `${name}-q${i}` } });
});

await step("retrieveMultiple with paging", async () => {
  const request = { collection, select: ["msdyn_name"], filter: `startswith(msdyn_name,'${name}-q')`, orderBy: ["msdyn_name"], maxPageSize: 2 };
  const first = await api.retrieveMultiple(request);
  check(first.value.length === 2 && first.oDataNextLink, first);
  const second = await api.retrieveMultiple(request, first.oDataNextLink);
  check(second.value.map((r) => r.msdyn_name).join() === `${name}-q2,${name}-q3`, second);
  const all = await api.retrieveAll(request);
  check(all.value.map((r) => r.msdyn_name).join() === [0, 1, 2, 3, 4].map((i) => `${name}-q${i}`).join(), all);
}, ["create rows for the queries"]);

await step("fetch (FetchXML)", async () => {
  const fetchXml = `<fetch count="2"><entity name="msdyn_smsengagementctx"><attribute name="msdyn_name"/>
    <filter><condition attribute="msdyn_name" operator="like" value="${name}-q%"/></filter>
    <order attribute="msdyn_name"/></entity></fetch>`;
  const page = await api.fetch({ collection, fetchXml });
  check(page.value.map((r) => r.msdyn_name).join() === `${name}-q0,${name}-q1`, page);
  // The paging cookie is an annotation a client asks for (Dataverse sends it only then).
  const all = await api.fetchAll({ collection, fetchXml, includeAnnotations: "Microsoft.Dynamics.CRM.fetchxmlpagingcookie" });
  check(all.value.length === 5, all);
}, ["create rows for the queries"]);

await step("$batch", async () => {
  api.startBatch();
  api.create({ collection, data: { msdyn_name: `${name}-batch` } });
  api.retrieveMultiple({ collection, select: ["msdyn_name"], filter: `msdyn_name eq '${name}-kept'` });
  const responses = await api.executeBatch();
  check(responses.length === 2 && responses[1].value.length === 1, responses);
});

await step("retrieveEntity (metadata)", async () => {
  const entity = await api.retrieveEntity({ key: "LogicalName='msdyn_smsengagementctx'", select: ["LogicalName", "EntitySetName"] });
  check(entity.EntitySetName === collection, entity);
});

await step("retrieveAttributes (metadata)", async () => {
  const attributes = await api.retrieveAttributes({ entityKey: "LogicalName='msdyn_smsengagementctx'", select: ["LogicalName"] });
  check(attributes.value.some((a) => a.LogicalName === "msdyn_name"), attributes);
});

await step("retrieveEntities with filter (metadata)", async () => {
  const entities = await api.retrieveEntities({ select: ["LogicalName"], filter: "LogicalName eq 'msdyn_smsengagementctx'" });
  check(entities.value.length === 1, entities);
});

const conversations = "msdyn_ocliveworkitems";
const contexts = "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid";
const conversationOf = async (key) =>
  (await api.retrieve({ collection, key, select: ["_msdyn_liveworkitemid_value"] }))._msdyn_liveworkitemid_value;

await step("associate", async () => {
  const conversation = await api.create({ collection: conversations, data: { subject: `${name}-talk` } });
  await api.associate({
    collection: conversations, primaryKey: conversation, relationshipName: contexts,
    relatedCollection: collection, relatedKey: results.create,
  });
  check((await conversationOf(results.create)) === conversation, "the context's conversation");
  return conversation;
}, ["create"]);

await step("nested expand", async () => {
  const row = await api.retrieve({
    collection: conversations, key: results.associate, select: ["subject"],
    expand: [{
      property: contexts, select: ["msdyn_name"], filter: `msdyn_name eq '${name}-kept'`,
      expand: [{ property: "msdyn_liveworkitemid", select: ["subject"] }],
    }],
  });
  const children = row[contexts];
  check(children.length === 1 && children[0].msdyn_name === `${name}-kept`, row);
  check(children[0].msdyn_liveworkitemid.subject === `${name}-talk`, row);
  const ordered = await api.retrieveMultiple({
    collection: conversations, select: ["subject"], filter: `subject eq '${name}-talk'`,
    expand: [{ property: contexts, select: ["msdyn_name"], orderBy: ["msdyn_name desc"], top: 1 }],
  });
  check(ordered.value[0][contexts].length === 1, ordered);
}, ["associate"]);

await step("disassociate", async () => {
  await api.disassociate({
    collection: conversations, primaryKey: results.associate, relationshipName: contexts, relatedKey: results.create,
  });
  check((await conversationOf(results.create)) === null, "no conversation");
}, ["associate", "nested expand"]);

await step("associateSingleValued", async () => {
  await api.associateSingleValued({
    collection, primaryKey: results.create, navigationProperty: "msdyn_liveworkitemid",
    relatedCollection: conversations, relatedKey: results.associate,
  });
  check((await conversationOf(results.create)) === results.associate, "the conversation again");
  await api.disassociateSingleValued({ collection, primaryKey: results.create, navigationProperty: "msdyn_liveworkitemid" });
  check((await conversationOf(results.create)) === null, "cleared again");
}, ["associate", "disassociate"]);

// Alternate keys: a key over the two phone numbers, defined through the metadata API (the
// library has no call of its own for it: a `create` of the table's `Keys` navigation).
const keyOf = (customer) => `msdyn_customerphonenumber='${customer}',msdyn_orgphonenumber='14255550799'`;
const customer = (i) => `142555507${i}0`;

await step("define alternate key", () =>
  api.create({
    collection: "EntityDefinitions", key: "LogicalName='msdyn_smsengagementctx'", navigationProperty: "Keys",
    data: { SchemaName: "smsctx_Phones", KeyAttributes: ["msdyn_customerphonenumber", "msdyn_orgphonenumber"] },
  }));

await step("upsert by alternate key (creates)", async () => {
  await api.upsert({ collection, key: keyOf(customer(1)), data: { msdyn_name: `${name}-ak` } });
  const rows = await api.retrieveMultiple({
    collection, select: ["msdyn_name", "msdyn_customerphonenumber", "msdyn_orgphonenumber"],
    filter: `msdyn_name eq '${name}-ak'`,
  });
  check(rows.value.length === 1 && rows.value[0].msdyn_customerphonenumber === customer(1)
    && rows.value[0].msdyn_orgphonenumber === "14255550799", rows);
  return rows.value[0].msdyn_smsengagementctxid;
}, ["define alternate key"]);

await step("retrieve by alternate key", async () => {
  const row = await api.retrieve({ collection, key: keyOf(customer(1)), select: ["msdyn_name"] });
  check(row.msdyn_smsengagementctxid === results["upsert by alternate key (creates)"] && row.msdyn_name === `${name}-ak`, row);
}, ["upsert by alternate key (creates)"]);

await step("update by alternate key", async () => {
  await api.update({ collection, key: keyOf(customer(1)), data: { msdyn_name: `${name}-ak-updated` } });
  const row = await api.retrieve({ collection, key: results["upsert by alternate key (creates)"], select: ["msdyn_name"] });
  check(row.msdyn_name === `${name}-ak-updated`, row);
}, ["upsert by alternate key (creates)"]);

await step("upsert by alternate key (updates)", async () => {
  await api.upsert({ collection, key: keyOf(customer(1)), data: { msdyn_smsprovider: 192350001 } });
  const rows = await api.retrieveMultiple({ collection, select: ["msdyn_smsprovider"], filter: `msdyn_customerphonenumber eq '${customer(1)}'` });
  check(rows.value.length === 1 && rows.value[0].msdyn_smsprovider === 192350001
    && rows.value[0].msdyn_smsengagementctxid === results["upsert by alternate key (creates)"], rows);
}, ["update by alternate key"]);

await step("deleteRecord by alternate key", async () => {
  await api.upsert({ collection, key: keyOf(customer(2)), data: { msdyn_name: `${name}-ak-deleted` } });
  const row = await api.retrieve({ collection, key: keyOf(customer(2)), select: ["msdyn_name"] });
  await api.deleteRecord({ collection, key: keyOf(customer(2)) });
  let status = null;
  try {
    await api.retrieve({ collection, key: keyOf(customer(2)) });
  } catch (e) {
    status = e.status;
  }
  check(status === 404, `a retrieve after the delete answered ${status}`);
  return row.msdyn_smsengagementctxid;
}, ["define alternate key"]);

await step("retrieveMultiple trackChanges then its delta link", async () => {
  const doomed = await api.create({ collection, data: { msdyn_name: `${name}-doomed` } });
  const request = { collection, select: ["msdyn_name"], trackChanges: true };
  // Paged: the delta link comes on the last page and starts where the first page started.
  const first = await api.retrieveAll({ ...request, maxPageSize: 2 });
  check(first.oDataDeltaLink && first.value.some((r) => r.msdyn_smsengagementctxid === doomed), first);
  const added = await api.create({ collection, data: { msdyn_name: `${name}-tracked` } });
  await api.update({ collection, key: added, data: { msdyn_name: `${name}-tracked2` } });
  await api.deleteRecord({ collection, key: doomed });
  const delta = await api.retrieveMultiple(request, first.oDataDeltaLink);
  check(delta.value.length === 2, delta);
  check(delta.value.some((r) => r.msdyn_smsengagementctxid === added && r.msdyn_name === `${name}-tracked2`), delta);
  check(delta.value.some((r) => r.id === doomed && r.reason === "deleted"), delta);
  check(delta.oDataDeltaLink && delta.oDataDeltaLink !== first.oDataDeltaLink, delta);
  const none = await api.retrieveMultiple(request, delta.oDataDeltaLink);
  check(none.value.length === 0 && none.oDataDeltaLink, none);
});

outcome({
  keyed: results["upsert by alternate key (updates)"]
    ? [{ id: results["upsert by alternate key (creates)"], msdyn_name: `${name}-ak-updated`,
         msdyn_customerphonenumber: customer(1), msdyn_orgphonenumber: "14255550799", msdyn_smsprovider: 192350001 }]
    : [],
  keyed_gone: results["deleteRecord by alternate key"] ? [results["deleteRecord by alternate key"]] : [],
  kept: results.create ?? null,
  kept_name: `${name}-kept`,
  kept_phone: results.update ? "14255550499" : null,
  deleted: results.deleteRecord ?? null,
});
