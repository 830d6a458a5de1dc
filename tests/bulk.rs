//! The bulk messages bound to an entity set: CreateMultiple, UpdateMultiple and UpsertMultiple
//! (issue 11 part 5), on the suite's backend: their response shapes, their stored outcome, the
//! rollback of a failing target, the 1000-target limit, the caller's privileges, and `$batch`.

use crate::common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TYPE: &str = "Microsoft.Dynamics.CRM.msdyn_smsengagementctx";

fn target(fields: Value) -> Value {
    let mut object = fields;
    object["@odata.type"] = json!(TYPE);
    object
}

fn action(name: &str) -> String {
    format!("{CTX}/Microsoft.Dynamics.CRM.{name}")
}

/// Sends the bulk message `name` as the admin: its status and its JSON body (null when none).
async fn bulk(app: &TestApp, name: &str, body: &Value) -> (StatusCode, Value) {
    let response = app.post(&action(name), body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asserts a refusal with `status` whose message names target `index`.
fn refused_at(outcome: (StatusCode, Value), status: StatusCode, index: usize) {
    let (got, error) = outcome;
    assert_eq!(got, status, "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("Targets[{index}]: ")),
        "{message}"
    );
}

/// The names of the contexts whose name starts with `prefix`, sorted.
async fn names(app: &TestApp, prefix: &str) -> Vec<String> {
    names_where(app, &format!("startswith(msdyn_name,'{prefix}')")).await
}

/// The names of the contexts `filter` selects, sorted.
async fn names_where(app: &TestApp, filter: &str) -> Vec<String> {
    let body = app
        .get_json(&format!(
            "{CTX}?$select=msdyn_name&$filter={filter}&$orderby=msdyn_name"
        ))
        .await;
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["msdyn_name"].as_str().unwrap().to_string())
        .collect()
}

/// Ids the server assigns are sequential, as Dataverse's are: a Create's, then each target's
/// of a CreateMultiple, in order, so the default order (by id) lists the rows as created.
#[tokio::test]
async fn assigned_ids_follow_the_order_of_creation() {
    let app = spawn_app().await;
    let mut ids = vec![
        app.create(CTX, &json!({"msdyn_name": "seq-0"})).await,
        app.create(CTX, &json!({"msdyn_name": "seq-1"})).await,
    ];
    let targets: Vec<Value> = (2..6)
        .map(|n| target(json!({"msdyn_name": format!("seq-{n}")})))
        .collect();
    let (status, body) = bulk(&app, "CreateMultiple", &json!({"Targets": targets})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    ids.extend(
        body["Ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_string()),
    );
    ids.push(app.create(CTX, &json!({"msdyn_name": "seq-6"})).await);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "assigned ids out of creation order");
    let listed = app
        .get_json(&format!(
            "{CTX}?$select=msdyn_name&$filter=startswith(msdyn_name,'seq-')"
        ))
        .await;
    let names: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["msdyn_name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..7).map(|n| format!("seq-{n}")).collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn create_multiple_returns_the_ids_of_the_rows_it_stores() {
    let app = spawn_app().await;
    let body = json!({"Targets": [
        target(json!({"msdyn_name": "cm-a", "msdyn_customerphonenumber": "+14255550101"})),
        target(json!({"msdyn_name": "cm-b"})),
    ]});
    let (status, body) = bulk(&app, "CreateMultiple", &body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"),
        "{body}"
    );
    let ids = body["Ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    let first = app
        .get_json(&format!(
            "{}?$select=msdyn_name,msdyn_customerphonenumber",
            ctx(ids[0].as_str().unwrap())
        ))
        .await;
    assert_eq!(first["msdyn_name"], "cm-a");
    assert_eq!(first["msdyn_customerphonenumber"], "+14255550101");
    let second = app
        .get_json(&format!(
            "{}?$select=msdyn_name",
            ctx(ids[1].as_str().unwrap())
        ))
        .await;
    assert_eq!(second["msdyn_name"], "cm-b");

    // Without the namespace prefix too.
    let body = json!({"Targets": [target(json!({"msdyn_name": "cm-c"}))]});
    let response = app
        .post(&format!("{CTX}/CreateMultiple"), &body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(names(&app, "cm-").await, ["cm-a", "cm-b", "cm-c"]);
}

#[tokio::test]
async fn a_failing_target_writes_nothing_and_is_named_by_its_index() {
    let app = spawn_app().await;
    let too_long = "x".repeat(5000);
    let body = json!({"Targets": [
        target(json!({"msdyn_name": "rb-a"})),
        target(json!({"msdyn_name": "rb-b"})),
        target(json!({"msdyn_name": too_long})),
    ]});
    let bad = StatusCode::BAD_REQUEST;
    refused_at(bulk(&app, "CreateMultiple", &body).await, bad, 2);
    assert!(names(&app, "rb-").await.is_empty());

    // An unknown column, the wrong type, a target that is not an object: refused before writing.
    let unknown =
        json!({"Targets": [target(json!({"msdyn_name": "rb-c"})), target(json!({"nope": 1}))]});
    refused_at(bulk(&app, "CreateMultiple", &unknown).await, bad, 1);
    let wrong_type = json!({"Targets": [target(json!({"msdyn_name": "rb-d"})), {"@odata.type": "Microsoft.Dynamics.CRM.account", "msdyn_name": "rb-d"}]});
    refused_at(bulk(&app, "CreateMultiple", &wrong_type).await, bad, 1);
    let not_object = json!({"Targets": [target(json!({"msdyn_name": "rb-e"})), 1]});
    refused_at(bulk(&app, "CreateMultiple", &not_object).await, bad, 1);
    for body in [json!({}), json!({"Targets": "x"}), json!({"Targets": []})] {
        assert_eq!(bulk(&app, "CreateMultiple", &body).await.0, bad, "{body}");
    }
    assert!(names(&app, "rb-").await.is_empty());

    // An update of a missing row rolls back the updates before it.
    let id = app.create(CTX, &json!({"msdyn_name": "rb-kept"})).await;
    let missing = uuid::Uuid::new_v4().to_string();
    let body = json!({"Targets": [
        target(json!({"msdyn_smsengagementctxid": id, "msdyn_name": "rb-renamed"})),
        target(json!({"msdyn_smsengagementctxid": missing, "msdyn_name": "rb-ghost"})),
    ]});
    refused_at(
        bulk(&app, "UpdateMultiple", &body).await,
        StatusCode::NOT_FOUND,
        1,
    );
    assert_eq!(names(&app, "rb-").await, ["rb-kept"]);
}

#[tokio::test]
async fn a_store_refusal_inside_create_multiple_is_named_and_rolls_back() {
    // Targets without binds are written in one go: a duplicate id at the third target (a
    // refusal of the store itself, after the first two are written) rolls them back and is
    // named by its index, as the one-by-one path names it.
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({"Targets": [
        target(json!({"msdyn_smsengagementctxid": id, "msdyn_name": "dup-a"})),
        target(json!({"msdyn_name": "dup-b"})),
        target(json!({"msdyn_smsengagementctxid": id, "msdyn_name": "dup-c"})),
    ]});
    let (status, error) = bulk(&app, "CreateMultiple", &body).await;
    assert!(status.is_client_error(), "{status} {error}");
    refused_at((status, error), status, 2);
    assert!(names(&app, "dup-").await.is_empty());
    // The same id alone is free, and the same rows without the duplicate are all written.
    let body = json!({"Targets": [
        target(json!({"msdyn_smsengagementctxid": id, "msdyn_name": "dup-a"})),
        target(json!({"msdyn_name": "dup-b"})),
    ]});
    let (status, created) = bulk(&app, "CreateMultiple", &body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["Ids"][0], id.as_str());
    assert_eq!(names(&app, "dup-").await, ["dup-a", "dup-b"]);
}

#[tokio::test]
async fn a_user_without_create_is_refused_at_the_first_target() {
    let app = spawn_app().await;
    let root = root_unit(&app).await;
    let role = custom_role(
        &app,
        &root,
        "reader only",
        &[("prvReadmsdyn_smsengagementctx", 1)],
    )
    .await;
    let user = signed_in_user(&app, "nocreate", &root, &[&role]).await;
    let body = json!({"Targets": [target(json!({"msdyn_name": "nc-a"})), target(json!({"msdyn_name": "nc-b"}))]});
    let response = app
        .client
        .request(Method::POST, app.url(&action("CreateMultiple")))
        .bearer_auth(&user.token)
        .header("Accept", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let error: Value = response.json().await.unwrap();
    refused_at((status, error), StatusCode::FORBIDDEN, 0);
    assert!(names(&app, "nc-").await.is_empty());
}

#[tokio::test]
async fn more_than_1000_targets_are_refused() {
    let app = spawn_app().await;
    let many: Vec<Value> = (0..1001)
        .map(|i| target(json!({"msdyn_name": format!("lim-{i:04}")})))
        .collect();
    let (status, error) = bulk(&app, "CreateMultiple", &json!({"Targets": many})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "0x80040203", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("at most 1000"), "{message}");
    assert!(names(&app, "lim-").await.is_empty());
    let (status, body) = bulk(&app, "CreateMultiple", &json!({"Targets": many[..1000]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Ids"].as_array().unwrap().len(), 1000);
    let count = app
        .get_json(&format!(
            "{CTX}?$filter=startswith(msdyn_name,'lim-')&$count=true&$top=1"
        ))
        .await;
    assert_eq!(count["@odata.count"], 1000);
}

#[tokio::test]
async fn update_multiple_and_upsert_multiple_store_their_targets() {
    let app = spawn_app().await;
    let a = app.create(CTX, &json!({"msdyn_name": "um-a"})).await;
    let b = app.create(CTX, &json!({"msdyn_name": "um-b"})).await;
    let body = json!({"Targets": [
        target(json!({"msdyn_smsengagementctxid": a, "msdyn_name": "um-a2"})),
        target(json!({"@odata.id": format!("{CTX}({b})"), "msdyn_customerphonenumber": "+14255550102"})),
    ]});
    let (status, error) = bulk(&app, "UpdateMultiple", &body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");
    let stored = app
        .get_json(&format!(
            "{}?$select=msdyn_name,msdyn_customerphonenumber",
            ctx(&b)
        ))
        .await;
    assert_eq!(stored["msdyn_name"], "um-b");
    assert_eq!(stored["msdyn_customerphonenumber"], "+14255550102");
    assert_eq!(names(&app, "um-").await, ["um-a2", "um-b"]);

    // A target without its id is refused by index.
    let body = json!({"Targets": [target(json!({"msdyn_name": "um-x"}))]});
    let (status, body) = bulk(&app, "UpdateMultiple", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // UpsertMultiple: one existing row updated, one new row created with the id given.
    let fresh = uuid::Uuid::new_v4().to_string();
    let body = json!({"Targets": [
        target(json!({"msdyn_smsengagementctxid": a, "msdyn_name": "um-a3"})),
        target(json!({"@odata.id": format!("{CTX}({fresh})"), "msdyn_name": "um-new"})),
    ]});
    let (status, body) = bulk(&app, "UpsertMultiple", &body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("#Microsoft.Dynamics.CRM.UpsertMultipleResponse"));
    assert_eq!(body["Ids"], json!([a, fresh]));
    assert_eq!(names(&app, "um-").await, ["um-a3", "um-b", "um-new"]);
    let created = app
        .get_json(&format!("{}?$select=msdyn_name", ctx(&fresh)))
        .await;
    assert_eq!(created["msdyn_name"], "um-new");
}

#[tokio::test]
async fn a_basic_user_creates_its_own_rows_and_cannot_update_others() {
    let app = spawn_app().await;
    let root = root_unit(&app).await;
    let role = custom_role(
        &app,
        &root,
        "basic writer",
        &[
            ("prvCreatemsdyn_smsengagementctx", 1),
            ("prvReadmsdyn_smsengagementctx", 1),
            ("prvWritemsdyn_smsengagementctx", 1),
        ],
    )
    .await;
    let user = signed_in_user(&app, "bulky", &root, &[&role]).await;
    let as_user = |path: &str, body: &Value| {
        app.client
            .request(Method::POST, app.url(path))
            .bearer_auth(&user.token)
            .header("Accept", "application/json")
            .json(body)
    };
    let body = json!({"Targets": [target(json!({"msdyn_name": "pv-a"})), target(json!({"msdyn_name": "pv-b"}))]});
    let response = as_user(&action("CreateMultiple"), &body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.unwrap();
    for id in created["Ids"].as_array().unwrap() {
        let row = app
            .get_json(&format!(
                "{}?$select=_ownerid_value",
                ctx(id.as_str().unwrap())
            ))
            .await;
        assert_eq!(row["_ownerid_value"], user.id.as_str());
    }

    // The admin's row is out of the user's Basic reach: the whole request is refused.
    let own = created["Ids"][0].as_str().unwrap().to_string();
    let theirs = app.create(CTX, &json!({"msdyn_name": "pv-admin"})).await;
    let body = json!({"Targets": [
        target(json!({"msdyn_smsengagementctxid": own, "msdyn_name": "pv-a2"})),
        target(json!({"msdyn_smsengagementctxid": theirs, "msdyn_name": "pv-stolen"})),
    ]});
    let response = as_user(&action("UpdateMultiple"), &body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let error: Value = response.json().await.unwrap();
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status} {error}"
    );
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Targets[1]: "),
        "{error}"
    );
    assert_eq!(names(&app, "pv-").await, ["pv-a", "pv-admin", "pv-b"]);
    // Its own rows it may update.
    let body = json!({"Targets": [target(json!({"msdyn_smsengagementctxid": own, "msdyn_name": "pv-a2"}))]});
    let response = as_user(&action("UpdateMultiple"), &body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(names(&app, "pv-").await, ["pv-a2", "pv-admin", "pv-b"]);
}

#[tokio::test]
async fn bulk_messages_run_inside_a_batch_change_set() {
    let app = spawn_app().await;
    let part = |name: &str, body: &Value| {
        format!(
            "--changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
             POST {} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}\r\n",
            app.url(&action(name)),
            body
        )
    };
    let good = json!({"Targets": [target(json!({"msdyn_name": "bt-a"}))]});
    let bad =
        json!({"Targets": [target(json!({"msdyn_name": "bt-b"})), target(json!({"nope": 1}))]});
    let batch = |parts: String| {
        format!(
            "--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_1\r\n\r\n{parts}--changeset_1--\r\n--batch_1--\r\n"
        )
    };
    let send = |body: String| {
        app.request(Method::POST, "$batch")
            .header("Content-Type", "multipart/mixed; boundary=batch_1")
            .body(body)
            .send()
    };
    let response = send(batch(part("CreateMultiple", &good))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains("CreateMultipleResponse"), "{text}");
    assert_eq!(names(&app, "bt-").await, ["bt-a"]);
    // A failing bulk part rolls back the whole change set, the bulk part before it included.
    let good2 = json!({"Targets": [target(json!({"msdyn_name": "bt-c"}))]});
    let response = send(batch(
        part("CreateMultiple", &good2) + &part("CreateMultiple", &bad),
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(names(&app, "bt-").await, ["bt-a"]);
}

#[tokio::test]
async fn the_catalog_and_metadata_declare_the_bulk_messages() {
    let app = spawn_app().await;
    let filters = app
        .get_json(
            "sdkmessagefilters?$select=sdkmessagefilterid&$expand=sdkmessageid($select=name)\
             &$filter=(sdkmessageid/name eq 'CreateMultiple' or sdkmessageid/name eq 'UpdateMultiple' \
             or sdkmessageid/name eq 'UpsertMultiple') and primaryobjecttypecode eq 'msdyn_smsengagementctx'",
        )
        .await;
    let mut found: Vec<String> = filters["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sdkmessageid"]["name"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    assert_eq!(
        found,
        ["CreateMultiple", "UpdateMultiple", "UpsertMultiple"]
    );
    let response = app
        .get("$metadata")
        .header("Accept", "application/xml")
        .send()
        .await
        .unwrap();
    let csdl = response.text().await.unwrap();
    for name in ["CreateMultiple", "UpdateMultiple", "UpsertMultiple"] {
        assert!(
            csdl.contains(&format!("<Action Name=\"{name}\" IsBound=\"true\"")),
            "{name}"
        );
    }
    assert!(csdl.contains("<ComplexType Name=\"CreateMultipleResponse\">"));
}

const CONVERSATIONS: &str = "msdyn_ocliveworkitems";
const CONTEXTS_OF: &str = "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid";

/// The names of the contexts bound to conversation `id`, sorted.
async fn contexts_of(app: &TestApp, id: &str) -> Vec<String> {
    names_where(app, &format!("_msdyn_liveworkitemid_value eq {id}")).await
}

#[tokio::test]
async fn deep_insert_of_a_conversation_with_its_contexts() {
    let app = spawn_app().await;
    let body = json!({
        "subject": "deep conversation",
        CONTEXTS_OF: [{"msdyn_name": "deep-a"}, {"msdyn_name": "deep-b"}],
    });
    let conversation = app.create(CONVERSATIONS, &body).await;
    assert_eq!(contexts_of(&app, &conversation).await, ["deep-a", "deep-b"]);

    // A failing nested context writes neither the conversation nor the contexts before it.
    let body = json!({
        "subject": "deep failing",
        CONTEXTS_OF: [{"msdyn_name": "deep-c"}, {"msdyn_name": "x".repeat(5000)}],
    });
    let response = app.post(CONVERSATIONS, &body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(names(&app, "deep-c").await.is_empty());
    let failed = app
        .get_json(&format!(
            "{CONVERSATIONS}?$filter=subject eq 'deep failing'"
        ))
        .await;
    assert_eq!(failed["value"], json!([]));
}

#[tokio::test]
async fn deep_insert_of_a_context_with_a_new_conversation() {
    let app = spawn_app().await;
    let body = json!({
        "msdyn_name": "deep-ctx",
        "msdyn_liveworkitemid": {"subject": "deep parent"},
    });
    let id = app.create(CTX, &body).await;
    let row = app
        .get_json(&format!("{}?$select=_msdyn_liveworkitemid_value", ctx(&id)))
        .await;
    let conversation = row["_msdyn_liveworkitemid_value"].as_str().unwrap();
    let parent = app
        .get_json(&format!("{CONVERSATIONS}({conversation})?$select=subject"))
        .await;
    assert_eq!(parent["subject"], "deep parent");

    // A context that fails after its new conversation: neither is written.
    let body = json!({
        "msdyn_name": "deep-ctx-bad",
        "msdyn_smsprovider": 12345,
        "msdyn_liveworkitemid": {"subject": "deep orphan"},
    });
    let response = app.post(CTX, &body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let orphans = app
        .get_json(&format!("{CONVERSATIONS}?$filter=subject eq 'deep orphan'"))
        .await;
    assert_eq!(orphans["value"], json!([]));
    assert!(names(&app, "deep-ctx-bad").await.is_empty());
}
