//! Keys over HTTP: Dataverse's named form of the primary key, `set(primaryid=<guid>)`, on every
//! operation that takes a key, and the refusals of key segments that are not keys.

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

#[tokio::test]
async fn key_segments_that_are_not_keys_are_refused() {
    let app = spawn_app().await;
    let id = app.create(CTX, &json!({"msdyn_name": "kept"})).await;
    for (path, part) in [
        (
            format!("{CTX}(msdyn_name='kept')"),
            "'msdyn_name' is not a key of this table",
        ),
        (
            format!("{CTX}(systemuserid={id})"),
            "'systemuserid' is not a key of this table",
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
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let response = app
                .request(method.clone(), &path)
                .json(&json!({"msdyn_name": "changed"}))
                .send()
                .await
                .unwrap();
            assert_error(response, StatusCode::BAD_REQUEST, "0x80060888", part).await;
        }
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
