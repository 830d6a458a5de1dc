//! Requests that must not get through, found by trying the server as an attacker and as a
//! careless client would: conditions in bytes that are not UTF-8, two users with one Entra object
//! id, a business-unit tree with a cycle, and headers with bytes their grammar does not allow.

use crate::common;

use common::*;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn context(app: &TestApp, name: &str) -> String {
    app.create(CTX, &json!({ "msdyn_name": name })).await
}

async fn name_of(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("{}?$select=msdyn_name", ctx(id)))
        .await["msdyn_name"]
        .clone()
}

fn raw(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).expect("a header value http accepts")
}

/// `If-Match` with an entity tag in obs-text (valid for RFC 9110, never one of ours) is false:
/// the write is not performed (412), whether the bytes are Latin-1 or UTF-8.
#[tokio::test]
async fn non_ascii_if_match_is_a_false_condition() {
    let app = spawn_app().await;
    let id = context(&app, "kept").await;
    for tag in [&b"\"\xe9\""[..], "\"é\"".as_bytes(), &b"W/\"\xff\""[..]] {
        let response = app
            .patch(&ctx(&id), &json!({ "msdyn_name": "overwritten" }))
            .header("If-Match", raw(tag))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::PRECONDITION_FAILED, "0x80060882", "").await;
        let response = app
            .delete(&ctx(&id))
            .header("If-Match", raw(tag))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    }
    assert_eq!(name_of(&app, &id).await, "kept");
    // `If-None-Match` with such a tag is true (no tag of ours matches it): the read answers.
    let response = app
        .get(&ctx(&id))
        .header("If-None-Match", raw(b"\"\xe9\""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Bytes a header's grammar does not allow are a 400, never "the header is absent".
#[tokio::test]
async fn headers_with_bytes_outside_their_grammar_are_refused() {
    let app = spawn_app().await;
    let id = context(&app, "kept").await;
    // A tab inside an entity tag (etagc excludes it) and a bare non-ASCII tag (not quoted).
    for value in [&b"\"a\tb\""[..], &b"\xe9"[..]] {
        let response = app
            .patch(&ctx(&id), &json!({ "msdyn_name": "overwritten" }))
            .header("If-Match", raw(value))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "0x80040203", "If-Match").await;
    }
    let response = app
        .get(CTX)
        .header("Prefer", raw(b"odata.maxpagesize=\xe9"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "0x80040203", "Prefer").await;
    for name in ["MSCRMCallerID", "CallerObjectId"] {
        let response = app
            .get(CTX)
            .header(name, raw(b"\xe9"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
    }
    let response = app
        .client
        .get(app.url(CTX))
        .header("Authorization", raw(b"Bearer \xe9\xe9"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_request"), "{challenge}");
    let response = app
        .request(Method::POST, CTX)
        .header("Content-Type", raw(b"application/json; charset=\xe9"))
        .body(r#"{"msdyn_name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "Content-Type",
    )
    .await;
    assert_eq!(name_of(&app, &id).await, "kept");
}

async fn user_with_object_id(app: &TestApp, root: &str, oid: &str) -> reqwest::Response {
    app.post(
        "systemusers",
        &json!({
            "firstname": "Ada", "lastname": "Agent", "azureactivedirectoryobjectid": oid,
            "businessunitid@odata.bind": format!("/businessunits({root})"),
        }),
    )
    .send()
    .await
    .unwrap()
}

/// An Entra object id names one user: a second user with it (in any letter case, by create or
/// by update) is refused with Dataverse's duplicate error, and the first user's token still acts
/// as the first user.
#[tokio::test]
async fn an_object_id_belongs_to_one_user() {
    let app = spawn_app().await;
    let root = root_unit(&app).await;
    let oid = Uuid::new_v4();
    let first = entity_id(&user_with_object_id(&app, &root, &oid.to_string()).await);
    for spelling in [oid.to_string(), oid.to_string().to_uppercase()] {
        let response = user_with_object_id(&app, &root, &spelling).await;
        assert_error(response, StatusCode::PRECONDITION_FAILED, "0x80040237", "").await;
    }
    let other = entity_id(&user_with_object_id(&app, &root, &Uuid::new_v4().to_string()).await);
    let response = app
        .patch(
            &format!("systemusers({other})"),
            &json!({ "azureactivedirectoryobjectid": oid.to_string().to_uppercase() }),
        )
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::PRECONDITION_FAILED, "0x80040237", "").await;
    let users = app
        .get_json(&format!(
            "systemusers?$select=systemuserid&$filter=azureactivedirectoryobjectid eq {oid}"
        ))
        .await;
    assert_eq!(users["value"].as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users["value"][0]["systemuserid"], json!(first));
}

async fn unit(app: &TestApp, name: &str, parent: &str) -> String {
    app.create(
        "businessunits",
        &json!({ "name": name, "parentbusinessunitid@odata.bind": format!("/businessunits({parent})") }),
    )
    .await
}

async fn reparent(app: &TestApp, unit: &str, parent: Option<&str>) -> reqwest::Response {
    match parent {
        Some(p) => app.patch(
            &format!("businessunits({unit})"),
            &json!({ "parentbusinessunitid@odata.bind": format!("/businessunits({p})") }),
        ),
        None => app.delete(&format!("businessunits({unit})/parentbusinessunitid/$ref")),
    }
    .send()
    .await
    .unwrap()
}

/// The business units form one tree: no unit is its own ancestor, the root keeps no parent and
/// stays the only unit without one; a refused change leaves the tree as it was.
#[tokio::test]
async fn the_business_unit_tree_stays_a_tree() {
    let app = spawn_app().await;
    let root = root_unit(&app).await;
    let a = unit(&app, "A", &root).await;
    let b = unit(&app, "B", &a).await;
    let c = unit(&app, "C", &b).await;
    // A loop is BusinessManagementLoopBeingCreated; a unit without a parent is an invalid
    // argument; the root under one of its own descendants breaks both rules, and which one a
    // backend's triggers report first differs (SQLite: the loop, PostgreSQL: the root's).
    let (looping, invalid) = ("0x80041d21", "0x80040203");
    for (unit, parent, codes) in [
        (&a, Some(&a), &[looping][..]),
        (&a, Some(&b), &[looping]),
        (&a, Some(&c), &[looping]),
        (&root, Some(&c), &[looping, invalid]),
        (&root, Some(&a), &[looping, invalid]),
        (&b, None, &[invalid]),
    ] {
        let response = reparent(&app, unit, parent.map(String::as_str)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = response.json().await.unwrap();
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(codes.contains(&code), "{unit} under {parent:?}: {body}");
    }
    // A second root, by create.
    let response = app
        .post("businessunits", &json!({ "name": "Another root" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A legal move still works: C under A.
    assert_eq!(
        reparent(&app, &c, Some(&a)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(root_unit(&app).await, root);
    let parents = app
        .get_json("businessunits?$select=name,_parentbusinessunitid_value&$orderby=name")
        .await;
    let parent_of = |name: &str| {
        parents["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .unwrap()["_parentbusinessunitid_value"]
            .clone()
    };
    assert_eq!(parent_of("A"), json!(root));
    assert_eq!(parent_of("B"), json!(a));
    assert_eq!(parent_of("C"), json!(a));
}

/// Two re-parentings racing to close a loop (A under B and B under A at once): at most one wins.
#[tokio::test]
async fn racing_reparentings_cannot_make_a_cycle() {
    let app = spawn_app().await;
    let root = root_unit(&app).await;
    for round in 0..5 {
        let a = unit(&app, &format!("A{round}"), &root).await;
        let b = unit(&app, &format!("B{round}"), &root).await;
        let (x, y) = tokio::join!(reparent(&app, &a, Some(&b)), reparent(&app, &b, Some(&a)));
        let won = [x.status(), y.status()]
            .iter()
            .filter(|s| **s == StatusCode::NO_CONTENT)
            .count();
        assert!(won <= 1, "round {round}: both re-parentings won");
        for s in [x.status(), y.status()] {
            assert!(
                s == StatusCode::NO_CONTENT || s == StatusCode::BAD_REQUEST,
                "{s}"
            );
        }
    }
}
