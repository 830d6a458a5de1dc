//! Views and `?sql=` over HTTP: the seeded system views, personal views under the security
//! model, `?savedQuery=` / `?userQuery=` with the caller's row scope, and every supported
//! `?sql=` form and its refusals.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn seed(app: &TestApp) {
    for (name, provider) in [
        ("alpha", 192350001),
        ("beta", 192350000),
        ("gamma", 192350001),
    ] {
        app.create(
            CTX,
            &json!({"msdyn_name": name, "msdyn_smsprovider": provider}),
        )
        .await;
    }
    let gamma = app
        .get_json(&format!("{CTX}?$filter=msdyn_name eq 'gamma'"))
        .await["value"][0]["msdyn_smsengagementctxid"]
        .as_str()
        .unwrap()
        .to_string();
    let response = app
        .patch(&ctx(&gamma), &json!({"statecode": 1, "statuscode": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

fn names(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["value"]
        .as_array()
        .unwrap_or_else(|| panic!("not a collection: {body}"))
        .iter()
        .map(|r| r["msdyn_name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

async fn view_id(app: &TestApp, name: &str) -> String {
    let body = app
        .get_json(&format!("savedqueries?$filter=name eq '{name}'&$select=savedqueryid,returnedtypecode,querytype,isdefault,fetchxml,layoutxml"))
        .await;
    let view = &body["value"][0];
    assert_eq!(view["returnedtypecode"], "msdyn_smsengagementctx", "{body}");
    assert!(view["fetchxml"].as_str().unwrap().starts_with("<fetch"));
    assert!(view["layoutxml"].as_str().unwrap().starts_with("<grid"));
    view["savedqueryid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn system_views_are_seeded_and_run_with_their_fetchxml() {
    let app = spawn_app().await;
    seed(&app).await;
    let active = view_id(&app, "Active SMS Engagement Contexts").await;
    let inactive = view_id(&app, "Inactive SMS Engagement Contexts").await;
    let defaults = app
        .get_json("savedqueries?$filter=returnedtypecode eq 'msdyn_smsengagementctx' and querytype eq 0 and isdefault eq true&$select=name")
        .await;
    assert_eq!(
        defaults["value"][0]["name"],
        "Active SMS Engagement Contexts"
    );
    assert_eq!(
        names(&app.get_json(&format!("{CTX}?savedQuery={active}")).await),
        ["alpha", "beta"]
    );
    assert_eq!(
        names(&app.get_json(&format!("{CTX}?savedQuery={inactive}")).await),
        ["gamma"]
    );
    // A view of another table, an unknown view, a bad id, a view with other options: refused.
    let users = app
        .get_json("savedqueries?$filter=name eq 'Enabled Users'&$select=savedqueryid")
        .await["value"][0]["savedqueryid"]
        .as_str()
        .unwrap()
        .to_string();
    let response = app
        .get(&format!("{CTX}?savedQuery={users}"))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "systemuser",
    )
    .await;
    let response = app
        .get(&format!("{CTX}?savedQuery={}", Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "0x80040217", "savedquery").await;
    let response = app
        .get(&format!("{CTX}?savedQuery=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .get(&format!("{CTX}?savedQuery={active}&$top=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The users view runs on its own table.
    let enabled = app
        .get_json(&format!("systemusers?savedQuery={users}"))
        .await;
    assert!(!enabled["value"].as_array().unwrap().is_empty());
}

async fn user(app: &TestApp, name: &str) -> (String, String) {
    let root = app.get_json("businessunits?$select=businessunitid").await["value"][0]
        ["businessunitid"]
        .as_str()
        .unwrap()
        .to_string();
    let role = app
        .get_json(&format!(
            "roles?$filter=name eq 'Basic User' and _businessunitid_value eq {root}"
        ))
        .await["value"][0]["roleid"]
        .as_str()
        .unwrap()
        .to_string();
    let user = signed_in_user(app, name, &root, &[&role]).await;
    (user.id, user.token)
}

async fn as_user(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .header("Authorization", format!("Bearer {token}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// The administrator's three contexts, and a Basic User, Ada (her token), who owns one more.
async fn org_with_ada() -> (TestApp, String) {
    let app = spawn_app().await;
    seed(&app).await;
    let (_ada, ada) = user(&app, "Ada").await;
    let response = as_user(
        &app,
        &ada,
        reqwest::Method::POST,
        CTX,
        Some(json!({"msdyn_name": "ada's"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    (app, ada)
}

#[tokio::test]
async fn personal_views_are_owned_and_run_with_the_callers_row_scope() {
    let (app, ada) = org_with_ada().await;
    let (_bob, bob) = user(&app, "Bob").await;
    // A personal view of every context.
    let fetch = "<fetch><entity name='msdyn_smsengagementctx'><attribute name='msdyn_name'/></entity></fetch>";
    let response = as_user(
        &app,
        &ada,
        reqwest::Method::POST,
        "userqueries",
        Some(json!({"name": "All contexts", "returnedtypecode": "msdyn_smsengagementctx", "querytype": 0, "fetchxml": fetch})),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "{}",
        response.text().await.unwrap()
    );
    let view = entity_id(&response);
    // Ada's view shows Ada only her own row, though it asks for every row.
    let response = as_user(
        &app,
        &ada,
        reqwest::Method::GET,
        &format!("{CTX}?userQuery={view}"),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(names(&response.json().await.unwrap()), ["ada's"]);
    // The administrator running it sees everything.
    assert_eq!(
        names(&app.get_json(&format!("{CTX}?userQuery={view}")).await),
        ["ada's", "alpha", "beta", "gamma"]
    );
    // Bob may not read Ada's view (Basic depth), nor list it.
    let response = as_user(
        &app,
        &bob,
        reqwest::Method::GET,
        &format!("{CTX}?userQuery={view}"),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = as_user(&app, &bob, reqwest::Method::GET, "userqueries", None).await;
    let listed: Value = response.json().await.unwrap();
    assert_eq!(listed["value"].as_array().unwrap().len(), 0, "{listed}");
    // Everyone reads the system views; only administrators change them.
    let response = as_user(
        &app,
        &bob,
        reqwest::Method::GET,
        "savedqueries?$select=name",
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = as_user(
        &app,
        &bob,
        reqwest::Method::POST,
        "savedqueries",
        Some(json!({"name": "x", "returnedtypecode": "msdyn_smsengagementctx", "querytype": 0})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

async fn sql(app: &TestApp, text: &str) -> Value {
    let response = app
        .get(&format!("{CTX}?sql={}", urlencode(text)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{text}");
    response.json().await.unwrap()
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn sql_runs_every_supported_form() {
    let app = spawn_app().await;
    seed(&app).await;
    let base = "SELECT msdyn_name FROM msdyn_smsengagementctx";
    assert!(names(&sql(&app, &format!("{base} WHERE msdyn_name = 'nomatch'")).await).is_empty());
    for (condition, expected) in [
        ("msdyn_name = 'alpha'", vec!["alpha"]),
        ("msdyn_name <> 'alpha'", vec!["beta", "gamma"]),
        (
            "statecode = 0 AND msdyn_smsprovider = 192350001",
            vec!["alpha"],
        ),
        (
            "msdyn_name = 'alpha' OR msdyn_name = 'beta'",
            vec!["alpha", "beta"],
        ),
        ("NOT (statecode = 0)", vec!["gamma"]),
        ("msdyn_name LIKE 'b%'", vec!["beta"]),
        ("msdyn_name NOT LIKE '%a'", vec![]),
        ("msdyn_name IN ('alpha', 'gamma')", vec!["alpha", "gamma"]),
        (
            "msdyn_customerphonenumber IS NULL AND msdyn_name > 'b'",
            vec!["beta", "gamma"],
        ),
        ("msdyn_name IS NOT NULL AND statecode >= 1", vec!["gamma"]),
    ] {
        let got = names(&sql(&app, &format!("{base} WHERE {condition}")).await);
        assert_eq!(got, expected, "{condition}");
    }
    let top = sql(
        &app,
        "SELECT TOP 2 msdyn_name, statecode FROM msdyn_smsengagementctx ORDER BY msdyn_name DESC",
    )
    .await;
    // The selected columns (each row also carries its id and ETag, as every OData row does).
    let selected: Vec<Value> = top["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| json!({"msdyn_name": row["msdyn_name"], "statecode": row["statecode"]}))
        .collect();
    assert_eq!(
        selected,
        vec![
            json!({"msdyn_name": "gamma", "statecode": 1}),
            json!({"msdyn_name": "beta", "statecode": 0})
        ]
    );
    let star = sql(
        &app,
        "SELECT * FROM msdyn_smsengagementctx WHERE msdyn_name = 'alpha'",
    )
    .await;
    assert_eq!(star["value"][0]["msdyn_smsprovider"], 192350001);
    // Lookups as the Web API writes them everywhere: `_<lookup>_value`.
    assert!(star["value"][0]["_ownerid_value"].is_string());
}

#[tokio::test]
async fn sql_outside_the_subset_is_refused_with_what_is_unsupported() {
    let app = spawn_app().await;
    for (text, fragment) in [
        (
            "SELECT DISTINCT msdyn_name FROM msdyn_smsengagementctx",
            "DISTINCT",
        ),
        ("SELECT COUNT(*) FROM msdyn_smsengagementctx", "COUNT"),
        ("DELETE FROM msdyn_smsengagementctx", "DELETE"),
        (
            "SELECT msdyn_name FROM msdyn_smsengagementctx GROUP BY msdyn_name",
            "GROUP BY",
        ),
        ("SELECT fullname FROM systemuser", "systemuser"),
        ("SELECT msdyn_name FROM", "could not be parsed"),
    ] {
        let response = app
            .get(&format!("{CTX}?sql={}", urlencode(text)))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "0x80040203", fragment).await;
    }
    let response = app
        .get(&format!(
            "{CTX}?sql={}&$top=1",
            urlencode("SELECT msdyn_name FROM msdyn_smsengagementctx")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sql_sees_only_the_callers_rows() {
    let (app, ada) = org_with_ada().await;
    let text = urlencode("SELECT msdyn_name FROM msdyn_smsengagementctx");
    let response = as_user(
        &app,
        &ada,
        reqwest::Method::GET,
        &format!("{CTX}?sql={text}"),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(names(&response.json().await.unwrap()), ["ada's"]);
}
