//! Keys over HTTP: Dataverse's named form of the primary key, `set(primaryid=<guid>)`, on every
//! operation that takes a key, and the refusals of key segments that are not keys; alternate
//! keys defined, enforced and removed; and records addressed by an alternate key,
//! `set(col='v',col2='w')`, on every verb, in binds, `$ref` bodies and `$batch`.

use crate::common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

/// The Basic User role of `unit`.
async fn basic_user_role(app: &TestApp, unit: &str) -> String {
    app.get_json(&format!(
        "roles?$select=roleid&$filter=name eq 'Basic User' and _businessunitid_value eq {unit}"
    ))
    .await["value"][0]["roleid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `msdyn_smsengagementctxes(msdyn_smsengagementctxid=<id>)`.
fn named(id: &str) -> String {
    format!("{CTX}(msdyn_smsengagementctxid={id})")
}

#[tokio::test]
async fn the_named_primary_key_addresses_retrieve_update_upsert_and_delete() {
    let app = spawn_app().await;
    let id = app.create(CTX, &json!({"msdyn_name": "named"})).await;

    let row = app
        .get_json(&format!("{}?$select=msdyn_name", named(&id)))
        .await;
    assert_eq!(row["msdyn_name"], "named");
    assert_eq!(row["msdyn_smsengagementctxid"], id.as_str());
    let raw = app
        .get(&format!("{}/msdyn_name/$value", named(&id)))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.text().await.unwrap(), "named");

    let response = app
        .patch(&named(&id), &json!({"msdyn_name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get_json(&ctx(&id)).await["msdyn_name"], "renamed");

    // Upsert: a PATCH of an id that does not exist creates the row under that id.
    let fresh = Uuid::new_v4().to_string();
    let response = app
        .patch(&named(&fresh), &json!({"msdyn_name": "upserted"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(app.get_json(&ctx(&fresh)).await["msdyn_name"], "upserted");
    // If-None-Match: * on an existing row is refused and writes nothing.
    let response = app
        .patch(&named(&fresh), &json!({"msdyn_name": "overwritten"}))
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.get_json(&ctx(&fresh)).await["msdyn_name"], "upserted");

    let response = app.delete(&named(&id)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app.get(&ctx(&id)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app.get(&named(&id)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn the_named_primary_key_works_in_binds_refs_batches_and_bound_calls() {
    let app = spawn_app().await;
    let conversation = app
        .create(
            "msdyn_ocliveworkitems",
            &json!({"subject": "bound by name"}),
        )
        .await;
    let id = app
        .create(
            CTX,
            &json!({
                "msdyn_name": "bound",
                "msdyn_liveworkitemid@odata.bind":
                    format!("/msdyn_ocliveworkitems(activityid={conversation})"),
            }),
        )
        .await;
    let row = app.get_json(&ctx(&id)).await;
    assert_eq!(
        row["_msdyn_liveworkitemid_value"],
        conversation.as_str(),
        "{row}"
    );

    // A bind naming another column than the target's primary key is refused, nothing stored.
    let response = app
        .post(
            CTX,
            &json!({
                "msdyn_name": "wrong key",
                "msdyn_liveworkitemid@odata.bind":
                    format!("/msdyn_ocliveworkitems(subject={conversation})"),
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let none = app
        .get_json(&format!("{CTX}?$filter=msdyn_name eq 'wrong key'"))
        .await;
    assert_eq!(none["value"].as_array().unwrap().len(), 0);

    // $ref by the named form, both in the body and as the path key.
    let unit = root_unit(&app).await;
    let user = signed_in_user(&app, "keyed", &unit, &[]).await;
    let role = basic_user_role(&app, &unit).await;
    let privileges_of = format!(
        "systemusers(systemuserid={})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()",
        user.id
    );
    let privileges = app.get_json(&privileges_of).await;
    assert_eq!(
        privileges["RolePrivileges"].as_array().map(Vec::len),
        Some(0),
        "{privileges}"
    );
    let response = app
        .post(
            &format!(
                "systemusers(systemuserid={})/systemuserroles_association/$ref",
                user.id
            ),
            &json!({"@odata.id": app.url(&format!("roles(roleid={role})"))}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let privileges = app.get_json(&privileges_of).await;
    assert!(
        !privileges["RolePrivileges"].as_array().unwrap().is_empty(),
        "{privileges}"
    );
    let response = app
        .delete(&format!(
            "systemusers(systemuserid={})/systemuserroles_association(roleid={role})/$ref",
            user.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let privileges = app.get_json(&privileges_of).await;
    assert_eq!(
        privileges["RolePrivileges"].as_array().map(Vec::len),
        Some(0),
        "{privileges}"
    );

    // Inside $batch.
    let body = [
        "--batch_A",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "",
        &format!("GET {}?$select=msdyn_name HTTP/1.1", named(&id)),
        "",
        "",
        "--batch_A--",
        "",
    ]
    .join("\r\n");
    let response = app
        .request(Method::POST, "$batch")
        .header("Content-Type", "multipart/mixed; boundary=batch_A")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains(r#""msdyn_name":"bound""#), "{text}");
    app.stop().await;
}

/// `path` is a `400 0x80060888` naming `part` to a GET, a PATCH and a DELETE.
async fn refused_on_every_verb(app: &TestApp, path: &str, part: &str) {
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let response = app
            .request(method.clone(), path)
            .json(&json!({"msdyn_name": "changed"}))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "0x80060888", part).await;
    }
}

#[tokio::test]
async fn key_segments_that_are_not_keys_are_refused() {
    let app = spawn_app().await;
    let id = app.create(CTX, &json!({"msdyn_name": "kept"})).await;
    for (path, part) in [
        (
            format!("{CTX}(msdyn_name='kept')"),
            "is not valid for resource 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'",
        ),
        (
            format!("{CTX}(systemuserid={id})"),
            "is not valid for resource 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'",
        ),
        (
            format!("{CTX}(msdyn_smsengagementctxid='{id}')"),
            "is not a valid key",
        ),
        (
            format!("{CTX}(msdyn_smsengagementctxid=)"),
            "is not a valid key",
        ),
    ] {
        refused_on_every_verb(&app, &path, part).await;
    }
    assert_eq!(app.get_json(&ctx(&id)).await["msdyn_name"], "kept");
    app.stop().await;
}

const KEYS: &str = "EntityDefinitions(LogicalName='msdyn_smsengagementctx')/Keys";

fn name_key(attributes: &[&str]) -> serde_json::Value {
    let schema = format!("smsctx_{}_Key", attributes.join("_").replace("msdyn_", ""));
    json!({
        "SchemaName": schema,
        "DisplayName": {"LocalizedLabels": [{"Label": "By name", "LanguageCode": 1033}]},
        "KeyAttributes": attributes,
    })
}

async fn key_names(app: &TestApp) -> Vec<(String, Vec<String>)> {
    let body = app.get_json(KEYS).await;
    body["value"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|k| {
            let attributes = k["KeyAttributes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            (k["LogicalName"].as_str().unwrap().to_string(), attributes)
        })
        .collect()
}

/// Dataverse's DuplicateRecordEntityKey.
async fn assert_duplicate_key(response: reqwest::Response) {
    assert_error(
        response,
        StatusCode::PRECONDITION_FAILED,
        "0x80060892",
        "unique",
    )
    .await;
}

async fn count_named(app: &TestApp, name: &str) -> usize {
    app.get_json(&format!("{CTX}?$filter=msdyn_name eq '{name}'"))
        .await["value"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn alternate_keys_are_stored_enforced_reported_and_removed() {
    let app = spawn_app().await;
    app.create(CTX, &json!({"msdyn_name": "a"})).await;
    let second_a = app.create(CTX, &json!({"msdyn_name": "a"})).await;
    let b = app.create(CTX, &json!({"msdyn_name": "b"})).await;

    // Over rows that already repeat the value: refused, nothing left behind.
    let response = app
        .post(KEYS, &name_key(&["msdyn_name"]))
        .send()
        .await
        .unwrap();
    assert_duplicate_key(response).await;
    assert!(key_names(&app).await.is_empty());
    assert_eq!(
        count_named(&app, "a").await,
        2,
        "the duplicates are still writable"
    );

    let response = app.delete(&ctx(&second_a)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app
        .post(KEYS, &name_key(&["msdyn_name"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let location = response.headers()["OData-EntityId"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(location.contains("EntityDefinitions(LogicalName='msdyn_smsengagementctx')/Keys("));
    assert_eq!(
        key_names(&app).await,
        vec![(
            "smsctx_name_key".to_string(),
            vec!["msdyn_name".to_string()]
        )]
    );
    let expanded = app
        .get_json("EntityDefinitions(LogicalName='msdyn_smsengagementctx')?$select=LogicalName&$expand=Keys($select=LogicalName,KeyAttributes,DisplayName)")
        .await;
    assert_eq!(
        expanded["Keys"][0]["LogicalName"], "smsctx_name_key",
        "{expanded}"
    );
    assert_eq!(
        expanded["Keys"][0]["DisplayName"]["UserLocalizedLabel"]["Label"], "By name",
        "{expanded}"
    );
    let by_name = app
        .get_json(&format!("{KEYS}(LogicalName='smsctx_name_key')"))
        .await;
    assert_eq!(by_name["KeyAttributes"], json!(["msdyn_name"]));
    // A second, composite key over a string and a choice column.
    let composite = json!({
        "SchemaName": "smsctx_Phone_Provider",
        "KeyAttributes": ["msdyn_customerphonenumber", "msdyn_smsprovider"],
    });
    let response = app.post(KEYS, &composite).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(key_names(&app).await.len(), 2);

    // A create or an update that would repeat a key's values is refused and writes nothing.
    let response = app
        .post(CTX, &json!({"msdyn_name": "a"}))
        .send()
        .await
        .unwrap();
    assert_duplicate_key(response).await;
    assert_eq!(count_named(&app, "a").await, 1);
    let response = app
        .patch(
            &ctx(&b),
            &json!({"msdyn_name": "a", "msdyn_customerphonenumber": "1"}),
        )
        .send()
        .await
        .unwrap();
    assert_duplicate_key(response).await;
    let row = app.get_json(&ctx(&b)).await;
    assert_eq!(row["msdyn_name"], "b");
    assert!(row["msdyn_customerphonenumber"].is_null(), "{row}");
    let phone = |name: &str, provider: i64| json!({"msdyn_name": name, "msdyn_customerphonenumber": "14255550100", "msdyn_smsprovider": provider});
    app.create(CTX, &phone("p1", 192350000)).await;
    app.create(CTX, &phone("p2", 192350001)).await;
    let response = app.post(CTX, &phone("p3", 192350001)).send().await.unwrap();
    assert_duplicate_key(response).await;
    assert_eq!(count_named(&app, "p3").await, 0);

    // Removing the key (by name, and the other by MetadataId) allows duplicates again.
    let response = app
        .delete(&format!("{KEYS}(LogicalName='smsctx_name_key')"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.create(CTX, &json!({"msdyn_name": "a"})).await;
    assert_eq!(count_named(&app, "a").await, 2);
    let keys = app.get_json(KEYS).await;
    let id = keys["value"][0]["MetadataId"].as_str().unwrap().to_string();
    let response = app.delete(&format!("{KEYS}({id})")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(key_names(&app).await.is_empty());
    app.create(CTX, &phone("p3", 192350001)).await;
    let response = app
        .delete(&format!("{KEYS}(LogicalName='smsctx_name_key')"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn bad_key_definitions_and_callers_are_refused() {
    let app = spawn_app().await;
    for (body, status, code) in [
        (
            json!({"KeyAttributes": ["msdyn_name"]}),
            StatusCode::BAD_REQUEST,
            "0x80040203",
        ),
        (name_key(&[]), StatusCode::BAD_REQUEST, "0x80040203"),
        (
            name_key(&["msdyn_nosuch"]),
            StatusCode::BAD_REQUEST,
            "0x80041103",
        ),
        (
            name_key(&["statecode"]),
            StatusCode::BAD_REQUEST,
            "0x80040203",
        ),
        (
            name_key(&["msdyn_name", "msdyn_name"]),
            StatusCode::BAD_REQUEST,
            "0x80040203",
        ),
        (
            json!({"SchemaName": "Bad Name", "KeyAttributes": ["msdyn_name"]}),
            StatusCode::BAD_REQUEST,
            "0x80040203",
        ),
    ] {
        let response = app.post(KEYS, &body).send().await.unwrap();
        assert_error(response, status, code, "").await;
    }
    assert!(key_names(&app).await.is_empty());

    let unit = root_unit(&app).await;
    let basic = basic_user_role(&app, &unit).await;
    let user = signed_in_user(&app, "basic", &unit, &[&basic]).await;
    let response = app
        .client
        .post(app.url(KEYS))
        .bearer_auth(&user.token)
        .json(&name_key(&["msdyn_name"]))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::FORBIDDEN,
        "0x80040220",
        "System Administrator",
    )
    .await;
    assert!(key_names(&app).await.is_empty());
    let response = get_as(&app, &user.token, KEYS).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "anyone reads the metadata"
    );
    app.stop().await;
}

/// The composite key of the examples: the customer's and the organisation's numbers.
const PHONES: [&str; 2] = ["msdyn_customerphonenumber", "msdyn_orgphonenumber"];

async fn define_key(app: &TestApp, table: &str, attributes: &[&str]) {
    let mut schema = format!("smsctx_{}", attributes.join("_").replace("msdyn_", ""));
    schema.truncate(40);
    let body = json!({
        "SchemaName": schema,
        "KeyAttributes": attributes,
    });
    let response = app
        .post(
            &format!("EntityDefinitions(LogicalName='{table}')/Keys"),
            &body,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{body}");
}

/// A server whose conversations are keyed by subject and contexts by the two phone numbers.
async fn app_with_subject_and_phone_keys() -> TestApp {
    let app = spawn_app().await;
    define_key(&app, "msdyn_ocliveworkitem", &["subject"]).await;
    define_key(&app, "msdyn_smsengagementctx", &PHONES).await;
    app
}

/// `msdyn_smsengagementctxes(msdyn_customerphonenumber='c',msdyn_orgphonenumber='o')`.
fn by_phones(customer: &str, org: &str) -> String {
    format!("{CTX}({}='{customer}',{}='{org}')", PHONES[0], PHONES[1])
}

async fn rows_with(app: &TestApp, filter: &str) -> Vec<serde_json::Value> {
    app.get_json(&format!("{CTX}?$filter={filter}")).await["value"]
        .as_array()
        .unwrap()
        .clone()
}

/// The first lines of a `$batch` body (boundary `batch_A`) opening a change set `changeset_B`.
fn change_set_opening() -> Vec<String> {
    [
        "--batch_A",
        "Content-Type: multipart/mixed; boundary=changeset_B",
        "",
        "--changeset_B",
    ]
    .map(String::from)
    .to_vec()
}

/// Dataverse's RecordNotFoundByEntityKey.
async fn assert_key_not_found(response: reqwest::Response) {
    assert_error(
        response,
        StatusCode::NOT_FOUND,
        "0x80060891",
        "A record with the specified key values does not exist in msdyn_smsengagementctx entity",
    )
    .await;
}

#[tokio::test]
async fn every_verb_addresses_a_record_by_its_alternate_key() {
    let app = spawn_app().await;
    define_key(&app, "msdyn_smsengagementctx", &PHONES).await;
    let conversation = app
        .create("msdyn_ocliveworkitems", &json!({"subject": "keyed talk"}))
        .await;
    let id = app
        .create(
            CTX,
            &json!({
                "msdyn_name": "k1",
                "msdyn_customerphonenumber": "14255550100",
                "msdyn_orgphonenumber": "14255550199",
                "msdyn_liveworkitemid@odata.bind": format!("/msdyn_ocliveworkitems({conversation})"),
            }),
        )
        .await;
    let key = by_phones("14255550100", "14255550199");

    // Retrieve, with $select and $expand; the columns in either order; a property of it.
    let row = app
        .get_json(&format!(
            "{key}?$select=msdyn_name&$expand=msdyn_liveworkitemid($select=subject)"
        ))
        .await;
    assert_eq!(row["msdyn_smsengagementctxid"], id.as_str(), "{row}");
    assert_eq!(row["msdyn_name"], "k1");
    assert_eq!(
        row["msdyn_liveworkitemid"]["subject"], "keyed talk",
        "{row}"
    );
    let reversed = format!(
        "{CTX}({}='14255550199',{}='14255550100')",
        PHONES[1], PHONES[0]
    );
    assert_eq!(
        app.get_json(&reversed).await["msdyn_smsengagementctxid"],
        id.as_str()
    );
    let raw = app
        .get(&format!("{key}/msdyn_name/$value"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.text().await.unwrap(), "k1");

    // Update only (If-Match: *): the record the key names.
    let response = app
        .patch(&key, &json!({"msdyn_name": "k1 renamed"}))
        .header("If-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get_json(&ctx(&id)).await["msdyn_name"], "k1 renamed");
    // ... and of a key that matches nothing: not found, nothing created.
    let response = app
        .patch(&by_phones("1", "2"), &json!({"msdyn_name": "never"}))
        .header("If-Match", "*")
        .send()
        .await
        .unwrap();
    assert_key_not_found(response).await;
    assert!(rows_with(&app, "msdyn_name eq 'never'").await.is_empty());

    // Upsert: no match creates the record with the key's values set.
    let fresh = by_phones("14255550111", "14255550199");
    let response = app
        .patch(&fresh, &json!({"msdyn_name": "upserted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let created = entity_id(&response);
    let row = app.get_json(&ctx(&created)).await;
    assert_eq!(row["msdyn_name"], "upserted");
    assert_eq!(row["msdyn_customerphonenumber"], "14255550111");
    assert_eq!(row["msdyn_orgphonenumber"], "14255550199");
    // A second upsert of the same key updates that record (return=representation says so).
    let response = app
        .patch(&fresh, &json!({"msdyn_name": "upserted twice"}))
        .header("Prefer", "return=representation")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let rows = rows_with(&app, "msdyn_customerphonenumber eq '14255550111'").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["msdyn_name"], "upserted twice");
    assert_eq!(rows[0]["msdyn_smsengagementctxid"], created.as_str());
    // Create only (If-None-Match: *): an existing key is refused and unchanged...
    let response = app
        .patch(&fresh, &json!({"msdyn_name": "overwritten"}))
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        app.get_json(&ctx(&created)).await["msdyn_name"],
        "upserted twice"
    );
    // ... and a new one created.
    let response = app
        .patch(
            &by_phones("14255550122", "14255550199"),
            &json!({"msdyn_name": "created only"}),
        )
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        rows_with(&app, "msdyn_name eq 'created only'").await.len(),
        1
    );

    // Delete by key; then the key finds nothing.
    let response = app.delete(&key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app.get(&ctx(&id)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_key_not_found(app.get(&key).send().await.unwrap()).await;
    assert_key_not_found(app.delete(&key).send().await.unwrap()).await;
    assert_key_not_found(app.get(&format!("{key}/msdyn_name")).send().await.unwrap()).await;
    app.stop().await;
}

#[tokio::test]
async fn binds_references_and_batches_take_alternate_keys() {
    let app = app_with_subject_and_phone_keys().await;
    let first = app
        .create("msdyn_ocliveworkitems", &json!({"subject": "first talk"}))
        .await;
    let second = app
        .create("msdyn_ocliveworkitems", &json!({"subject": "second talk"}))
        .await;
    let conversation_of = |row: &serde_json::Value| row["_msdyn_liveworkitemid_value"].clone();

    // A lookup set by the referenced table's alternate key, on create and on upsert.
    let id = app
        .create(
            CTX,
            &json!({
                "msdyn_name": "bound by key",
                "msdyn_customerphonenumber": "1", "msdyn_orgphonenumber": "2",
                "msdyn_liveworkitemid@odata.bind": "/msdyn_ocliveworkitems(subject='first talk')",
            }),
        )
        .await;
    assert_eq!(
        conversation_of(&app.get_json(&ctx(&id)).await),
        first.as_str()
    );
    let response = app
        .patch(
            &ctx(&id),
            &json!({"msdyn_liveworkitemid@odata.bind":
                app.url("msdyn_ocliveworkitems(subject='second talk')")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        conversation_of(&app.get_json(&ctx(&id)).await),
        second.as_str()
    );

    // A bind whose key matches nothing, or names columns that are no key: refused, unwritten.
    for (reference, status, code, part) in [
        (
            "/msdyn_ocliveworkitems(subject='no such talk')",
            StatusCode::NOT_FOUND,
            "0x80060891",
            "does not exist in msdyn_ocliveworkitem entity",
        ),
        (
            "/msdyn_ocliveworkitems(description='x')",
            StatusCode::BAD_REQUEST,
            "0x80060888",
            "Microsoft.Dynamics.CRM.msdyn_ocliveworkitem",
        ),
    ] {
        let body = json!({"msdyn_name": "dangling", "msdyn_liveworkitemid@odata.bind": reference});
        let response = app.post(CTX, &body).send().await.unwrap();
        assert_error(response, status, code, part).await;
    }
    assert!(rows_with(&app, "msdyn_name eq 'dangling'").await.is_empty());

    // `PUT .../{lookup}/$ref` with the target named by its key.
    let response = app
        .request(
            Method::PUT,
            &format!("{}/msdyn_liveworkitemid/$ref", by_phones("1", "2")),
        )
        .json(&json!({"@odata.id": app.url("msdyn_ocliveworkitems(subject='first talk')")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        conversation_of(&app.get_json(&ctx(&id)).await),
        first.as_str()
    );

    // Inside $batch: a change set updating by key and upserting a new key, then a GET by key.
    let mut lines = change_set_opening();
    let update = format!("PATCH /api/data/v9.2/{}", by_phones("1", "2"));
    lines.extend(batch_part(
        Some("1"),
        &update,
        Some(&json!({"msdyn_name": "batched"})),
    ));
    lines.push("--changeset_B".into());
    let upsert = format!("PATCH /api/data/v9.2/{}", by_phones("3", "4"));
    lines.extend(batch_part(
        Some("2"),
        &upsert,
        Some(&json!({"msdyn_name": "batch upserted",
            "msdyn_liveworkitemid@odata.bind": "/msdyn_ocliveworkitems(subject='second talk')"})),
    ));
    lines.extend(["--changeset_B--".to_string(), "--batch_A".to_string()]);
    let get = format!(
        "GET /api/data/v9.2/{}?$select=msdyn_name",
        by_phones("1", "2")
    );
    lines.extend(batch_part(None, &get, None));
    lines.extend(["--batch_A--".to_string(), String::new()]);
    let (status, text) = post_batch(&app, &lines).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("\"msdyn_name\":\"batched\""), "{text}");
    assert_eq!(app.get_json(&ctx(&id)).await["msdyn_name"], "batched");
    let upserted = rows_with(&app, "msdyn_name eq 'batch upserted'").await;
    assert_eq!(upserted.len(), 1, "{text}");
    assert_eq!(upserted[0]["msdyn_customerphonenumber"], "3");
    assert_eq!(conversation_of(&upserted[0]), second.as_str());

    // A change set whose part names a key that matches nothing rolls back as a whole.
    let mut lines = change_set_opening();
    lines.extend(batch_part(
        Some("1"),
        &update,
        Some(&json!({"msdyn_name": "rolled back"})),
    ));
    lines.push("--changeset_B".into());
    let missing = format!("DELETE /api/data/v9.2/{}", by_phones("8", "9"));
    lines.extend(batch_part(Some("2"), &missing, None));
    lines.extend([
        "--changeset_B--".to_string(),
        "--batch_A--".to_string(),
        String::new(),
    ]);
    let (_, text) = post_batch(&app, &lines).await;
    assert!(text.contains("0x80060891"), "{text}");
    assert_eq!(app.get_json(&ctx(&id)).await["msdyn_name"], "batched");
    app.stop().await;
}

#[tokio::test]
async fn alternate_key_values_are_typed_quoted_and_compared_case_insensitively() {
    let app = spawn_app().await;
    define_key(
        &app,
        "msdyn_smsengagementctx",
        &["msdyn_name", "msdyn_smsprovider"],
    )
    .await;
    let name = "O'Brien, Ltd (UK)";
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": name, "msdyn_smsprovider": 192350001}),
        )
        .await;
    let quoted = |text: &str| percent_encode(&text.replace('\'', "''"));
    let key = |text: &str, provider: &str| {
        format!(
            "{CTX}(msdyn_name='{}',msdyn_smsprovider={provider})",
            quoted(text)
        )
    };
    // A value holding a quote (doubled), a comma and parentheses; the choice column bare.
    let row = app.get_json(&key(name, "192350001")).await;
    assert_eq!(row["msdyn_smsengagementctxid"], id.as_str(), "{row}");
    // Strings compare case-insensitively, on both backends.
    let row = app.get_json(&key("o'brien, LTD (uk)", "192350001")).await;
    assert_eq!(row["msdyn_smsengagementctxid"], id.as_str(), "{row}");
    // So an upsert whose key differs only in case updates the record, never adds one.
    let response = app
        .patch(
            &key("O'BRIEN, LTD (UK)", "192350001"),
            &json!({"msdyn_customerphonenumber": "5"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let row = app.get_json(&ctx(&id)).await;
    assert_eq!(row["msdyn_customerphonenumber"], "5");
    assert_eq!(
        row["msdyn_name"], name,
        "the key's own value is not rewritten"
    );
    assert_eq!(app.get_json(&format!("{CTX}/$count")).await, json!(1));
    // Another choice value is another record.
    assert_key_not_found(app.get(&key(name, "192350000")).send().await.unwrap()).await;
    // The unique index compares as the lookup does: a create repeating the key in another case
    // is a duplicate on both backends.
    let response = app
        .post(
            CTX,
            &json!({"msdyn_name": name.to_uppercase(), "msdyn_smsprovider": 192350001}),
        )
        .send()
        .await
        .unwrap();
    assert_duplicate_key(response).await;

    // Values of the wrong type or malformed: 400, nothing written.
    for (path, part) in [
        (key(name, "'192350001'"), "is not a valid Edm.Int32"),
        (key(name, "two"), "is not a valid Edm.Int32"),
        (
            format!("{CTX}(msdyn_name=bare,msdyn_smsprovider=192350001)"),
            "is not a valid Edm.String",
        ),
        (
            format!("{CTX}(msdyn_name='open,msdyn_smsprovider=192350001)"),
            "a quote is not closed",
        ),
        (
            format!("{CTX}(msdyn_name=null,msdyn_smsprovider=192350001)"),
            "is not a valid Edm.String",
        ),
        (
            format!("{CTX}(msdyn_name='a',msdyn_name='b')"),
            "named twice",
        ),
        // Not exactly the columns of a defined key: a part of one, or one more.
        (
            format!("{CTX}(msdyn_name='{}')", quoted(name)),
            "Ensure that the names and number of key properties match",
        ),
        (
            format!("{CTX}(msdyn_name='a',msdyn_smsprovider=192350001,msdyn_orgphonenumber='1')"),
            "Ensure that the names and number of key properties match",
        ),
        (
            format!("{CTX}(msdyn_nosuch='a')"),
            "Ensure that the names and number of key properties match",
        ),
    ] {
        refused_on_every_verb(&app, &path, part).await;
    }
    assert_eq!(app.get_json(&format!("{CTX}/$count")).await, json!(1));
    assert_eq!(app.get_json(&ctx(&id)).await["msdyn_name"], name);
    app.stop().await;
}

#[tokio::test]
async fn a_record_the_caller_may_not_read_is_not_found_by_its_key() {
    let app = spawn_app().await;
    define_key(&app, "msdyn_smsengagementctx", &PHONES).await;
    let unit = root_unit(&app).await;
    let role = basic_role(&app, &unit).await;
    let user = signed_in_user(&app, "keyreader", &unit, &[&role]).await;
    app.create(
        CTX,
        &json!({"msdyn_name": "admin's", "msdyn_customerphonenumber": "1", "msdyn_orgphonenumber": "2"}),
    )
    .await;
    let own = app
        .create(
            CTX,
            &json!({"msdyn_name": "user's", "msdyn_customerphonenumber": "3", "msdyn_orgphonenumber": "4",
                "ownerid@odata.bind": format!("/systemusers({})", user.id)}),
        )
        .await;
    // Basic depth: the user's own record is found by its key...
    let response = get_as(&app, &user.token, &by_phones("3", "4"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let row: serde_json::Value = response.json().await.unwrap();
    assert_eq!(row["msdyn_smsengagementctxid"], own.as_str());
    // ... another's is not found, exactly as a key that matches nothing (never a 403).
    assert_key_not_found(
        get_as(&app, &user.token, &by_phones("1", "2"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_key_not_found(
        get_as(&app, &user.token, &by_phones("8", "9"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let response = app
        .client
        .delete(app.url(&by_phones("1", "2")))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_key_not_found(response).await;
    assert_eq!(rows_with(&app, "msdyn_name eq 'admin''s'").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_upserts_of_one_new_key_make_one_record() {
    let app = spawn_app().await;
    define_key(&app, "msdyn_smsengagementctx", &PHONES).await;
    let key = by_phones("14255550900", "14255550999");
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let request = app.patch(&key, &json!({"msdyn_name": format!("racer {i}")}));
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    for racer in racers {
        let response = racer.await.unwrap().unwrap();
        assert!(
            response.status().is_success(),
            "{}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    let rows = rows_with(&app, "msdyn_customerphonenumber eq '14255550900'").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    app.stop().await;
}

#[tokio::test]
async fn bulk_messages_take_targets_by_alternate_key() {
    let app = app_with_subject_and_phone_keys().await;
    let talk = app
        .create("msdyn_ocliveworkitems", &json!({"subject": "bulk talk"}))
        .await;
    let existing = app
        .create(
            CTX,
            &json!({"msdyn_name": "existing", "msdyn_customerphonenumber": "1", "msdyn_orgphonenumber": "2"}),
        )
        .await;
    let target = |customer: &str, name: &str| {
        json!({
            "@odata.type": "Microsoft.Dynamics.CRM.msdyn_smsengagementctx",
            "@odata.id": by_phones(customer, "2"),
            "msdyn_name": name,
            "msdyn_liveworkitemid@odata.bind": "/msdyn_ocliveworkitems(subject='bulk talk')",
        })
    };
    // UpsertMultiple: an existing key updates, a new one creates with the key's values; a key
    // a target before it created in the same message is that record.
    let response = app
        .post(
            &format!("{CTX}/Microsoft.Dynamics.CRM.UpsertMultiple"),
            &json!({"Targets": [
                target("1", "updated in bulk"),
                target("3", "created in bulk"),
                target("3", "created, then updated in bulk"),
            ]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
    let row = app.get_json(&ctx(&existing)).await;
    assert_eq!(row["msdyn_name"], "updated in bulk");
    assert_eq!(row["_msdyn_liveworkitemid_value"], talk.as_str(), "{row}");
    let created = rows_with(&app, "msdyn_customerphonenumber eq '3'").await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["msdyn_name"], "created, then updated in bulk");
    assert_eq!(created[0]["msdyn_orgphonenumber"], "2");
    assert_eq!(created[0]["_msdyn_liveworkitemid_value"], talk.as_str());

    // UpdateMultiple of a key that matches nothing: not found, and the whole message rolls back.
    let response = app
        .post(
            &format!("{CTX}/Microsoft.Dynamics.CRM.UpdateMultiple"),
            &json!({"Targets": [target("1", "rolled back"), target("9", "missing")]}),
        )
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::NOT_FOUND,
        "0x80060891",
        "does not exist",
    )
    .await;
    assert_eq!(
        app.get_json(&ctx(&existing)).await["msdyn_name"],
        "updated in bulk"
    );
    assert!(rows_with(&app, "msdyn_customerphonenumber eq '9'")
        .await
        .is_empty());
    app.stop().await;
}

#[tokio::test]
async fn keys_defined_before_a_restart_address_records_in_change_sets() {
    let app = spawn_app().await;
    define_key(&app, "msdyn_smsengagementctx", &PHONES).await;
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "before", "msdyn_customerphonenumber": "1", "msdyn_orgphonenumber": "2"}),
        )
        .await;
    let app = spawn_app_in(app.stop().await).await;
    // The first request after the start is a change set, whose transaction cannot read the keys.
    let mut lines = change_set_opening();
    let update = format!("PATCH /api/data/v9.2/{}", by_phones("1", "2"));
    lines.extend(batch_part(
        Some("1"),
        &update,
        Some(&json!({"msdyn_name": "after"})),
    ));
    lines.extend([
        "--changeset_B--".to_string(),
        "--batch_A--".to_string(),
        String::new(),
    ]);
    let (status, text) = post_batch(&app, &lines).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("HTTP/1.1 204"), "{text}");
    assert_eq!(app.get_json(&ctx(&id)).await["msdyn_name"], "after");
    app.stop().await;
}

#[tokio::test]
async fn deep_inserts_bind_nested_records_by_alternate_key() {
    let app = spawn_app().await;
    define_key(&app, "systemuser", &["domainname"]).await;
    let unit = root_unit(&app).await;
    let user = signed_in_user(&app, "deepowner", &unit, &[]).await;
    let owner = "/systemusers(domainname='deepowner@example.com')";
    // A conversation with its contexts nested, each owned by the user named by its key.
    let contexts = "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid";
    let conversation = app
        .create(
            "msdyn_ocliveworkitems",
            &json!({"subject": "deep keyed", contexts: [{"msdyn_name": "deep child", "ownerid@odata.bind": owner}]}),
        )
        .await;
    let rows = rows_with(&app, "msdyn_name eq 'deep child'").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["_ownerid_value"], user.id.as_str(), "{rows:?}");
    assert_eq!(
        rows[0]["_msdyn_liveworkitemid_value"],
        conversation.as_str()
    );
    // A context with its conversation nested, the conversation owned by the user.
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "deep parent", "msdyn_liveworkitemid": {"subject": "nested talk", "ownerid@odata.bind": owner}}),
        )
        .await;
    let row = app
        .get_json(&format!(
            "{}?$expand=msdyn_liveworkitemid($select=_ownerid_value)",
            ctx(&id)
        ))
        .await;
    assert_eq!(
        row["msdyn_liveworkitemid"]["_ownerid_value"],
        user.id.as_str(),
        "{row}"
    );
    // A nested key that matches nothing writes nothing.
    let response = app
        .post(
            "msdyn_ocliveworkitems",
            &json!({"subject": "deep dangling", contexts: [{"msdyn_name": "dangling child",
                "ownerid@odata.bind": "/systemusers(domainname='nobody@example.com')"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "0x80060891", "systemuser").await;
    assert!(rows_with(&app, "msdyn_name eq 'dangling child'")
        .await
        .is_empty());
    app.stop().await;
}

#[tokio::test]
async fn function_and_action_parameters_name_records_by_alternate_key() {
    let app = spawn_app().await;
    define_key(&app, "msdyn_smsengagementctx", &PHONES).await;
    define_key(&app, "systemuser", &["domainname"]).await;
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "shared", "msdyn_customerphonenumber": "1", "msdyn_orgphonenumber": "2"}),
        )
        .await;
    let unit = root_unit(&app).await;
    let user = signed_in_user(&app, "sharee", &unit, &[]).await;
    let reference = |key: &str| percent_encode(&json!({"@odata.id": key}).to_string());

    let ask = |key: String| {
        app.get(&format!(
            "IsValidStateTransition(Entity=@e,NewState='Inactive',NewStatus=2)?@e={}",
            reference(&key)
        ))
        .send()
    };
    let response = ask(by_phones("1", "2")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["IsValid"],
        true
    );
    assert_key_not_found(ask(by_phones("8", "9")).await.unwrap()).await;

    // GrantAccess with the target and the principal named by their keys.
    let response = app
        .post(
            "GrantAccess",
            &json!({
                "Target": {"@odata.id": by_phones("1", "2")},
                "PrincipalAccess": {
                    "Principal": {"@odata.id": "systemusers(domainname='sharee@example.com')"},
                    "AccessMask": "ReadAccess"
                }
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "{}",
        response.text().await.unwrap()
    );
    let shared = app
        .get_json(&format!(
            "RetrieveSharedPrincipalsAndAccess(Target=@tid)?@tid={}",
            reference(&by_phones("1", "2"))
        ))
        .await;
    let principals = shared["PrincipalAccesses"].as_array().unwrap();
    assert_eq!(principals.len(), 1, "{shared}");
    assert_eq!(
        principals[0]["Principal"]["ownerid"],
        user.id.as_str(),
        "{shared}"
    );
    assert_eq!(
        app.get_json(&format!(
            "RetrieveSharedPrincipalsAndAccess(Target=@tid)?@tid={}",
            reference(&ctx(&id))
        ))
        .await,
        shared
    );
    app.stop().await;
}
