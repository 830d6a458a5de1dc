//! Keys over HTTP: Dataverse's named form of the primary key, `set(primaryid=<guid>)`, on every
//! operation that takes a key, and the refusals of key segments that are not keys.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

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
    let role = app
        .get_json(&format!(
            "roles?$select=roleid&$filter=name eq 'Basic User' and _businessunitid_value eq {unit}"
        ))
        .await["value"][0]["roleid"]
        .as_str()
        .unwrap()
        .to_string();
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
