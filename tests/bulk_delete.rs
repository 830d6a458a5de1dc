//! BulkDelete: a system job in `asyncoperations` that deletes what its QuerySet selects, in
//! batches, as its owner; polled through the ordinary reads; resumed after a kill.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const JOBS: &str = "asyncoperations";

/// A QueryExpression of the contexts table with `criteria`.
fn query(criteria: Value) -> Value {
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.QueryExpression",
        "EntityName": "msdyn_smsengagementctx",
        "ColumnSet": {"@odata.type": "Microsoft.Dynamics.CRM.ColumnSet", "AllColumns": false, "Columns": []},
        "Criteria": criteria,
    })
}

/// A BulkDelete body as Microsoft's Python SDK sends it, with `queries`.
fn bulk_delete(queries: Value) -> Value {
    json!({
        "JobName": "test bulk delete",
        "SendEmailNotification": false,
        "ToRecipients": [],
        "CCRecipients": [],
        "RecurrencePattern": "",
        "StartDateTime": "2026-01-01T00:00:00Z",
        "QuerySet": queries,
    })
}

fn names_starting(prefix: &str) -> Value {
    json!({"FilterOperator": "And", "Conditions": [
        {"AttributeName": "msdyn_name", "Operator": "BeginsWith", "Values": [{"Value": prefix, "Type": "System.String"}]}
    ]})
}

/// Posts a BulkDelete as the bearer of `token`; the job id.
async fn submit(app: &TestApp, token: &str, body: &Value) -> String {
    let response = app
        .client
        .request(Method::POST, app.url("BulkDelete"))
        .bearer_auth(token)
        .header("Accept", "application/json")
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("$metadata#Microsoft.Dynamics.CRM.BulkDeleteResponse"));
    answer["JobId"].as_str().expect("a JobId").to_string()
}

/// Polls the job as the bearer of `token` until it completes (statecode 3).
async fn completed(base: &str, token: &str, job: &str) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let response = client
            .get(format!("{base}{JOBS}({job})"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET the job");
        let row: Value = response.json().await.unwrap();
        if row["statecode"] == 3 {
            return row;
        }
        assert!(Instant::now() < deadline, "the job never completed: {row}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn names(app: &TestApp, prefix: &str) -> Vec<String> {
    let rows = app
        .get_json(&format!(
            "{CTX}?$select=msdyn_name&$filter=startswith(msdyn_name,'{prefix}')&$orderby=msdyn_name"
        ))
        .await;
    rows["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["msdyn_name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_job_deletes_exactly_what_its_criteria_select_and_succeeds_with_counts() {
    let app = spawn_app().await;
    for name in [
        "bd-a-1", "bd-a-2", "bd-a-3", "bd-b-1", "bd-b-2", "bd-b-3", "other-bd",
    ] {
        app.create(CTX, &json!({"msdyn_name": name})).await;
    }
    // name like 'bd-%' and (name = 'bd-a-1' or name in ('bd-a-2', 'bd-b-3')), with a nested
    // filter, typed and plain values.
    let criteria = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.FilterExpression",
        "FilterOperator": "And",
        "Conditions": [{"AttributeName": "msdyn_name", "Operator": "Like", "Values": ["bd-%"]}],
        "Filters": [{
            "FilterOperator": "Or",
            "Conditions": [
                {"AttributeName": "msdyn_name", "Operator": "Equal", "Values": [{"Value": "bd-a-1", "Type": "System.String"}]},
                {"AttributeName": "msdyn_name", "Operator": "In", "Values": ["bd-a-2", "bd-b-3"]},
                {"AttributeName": "statecode", "Operator": "Equal", "Values": [{"Value": "1", "Type": "System.Int32"}]}
            ]
        }]
    });
    let job = submit(&app, TOKEN, &bulk_delete(json!([query(criteria)]))).await;
    let row = completed(&app.url(""), TOKEN, &job).await;
    assert_eq!(row["statuscode"], 30, "Succeeded: {row}");
    assert_eq!(row["operationtype"], 13);
    assert_eq!(row["successcount"], 3);
    assert_eq!(row["failurecount"], 0);
    assert_eq!(row["name"], "test bulk delete");
    assert!(row["startedon"].is_string() && row["completedon"].is_string());
    assert_eq!(names(&app, "bd-").await, ["bd-a-3", "bd-b-1", "bd-b-2"]);
    assert_eq!(names(&app, "other-bd").await, ["other-bd"]);

    // Polling with $filter, as a client lists its finished jobs.
    let listed = app
        .get_json(&format!(
            "{JOBS}?$select=asyncoperationid,statuscode&$filter=operationtype eq 13 and statecode eq 3 and asyncoperationid eq {job}"
        ))
        .await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["value"][0]["statuscode"], 30);

    // The job table is read-only through the Web API.
    let response = app
        .patch(&format!("{JOBS}({job})"), &json!({"name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let response = app
        .post(JOBS, &json!({"name": "mine"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
}

#[tokio::test]
async fn a_job_deletes_only_what_its_owner_may_delete() {
    // One row per transaction: the cursor moves past the rows that stay.
    let db = TestDatabase::new().await;
    let mut config = config(&db);
    config.bulk_delete_batch = 1;
    let app = spawn_app_with(db, config).await;
    let root = root_unit(&app).await;
    // Basic depth on everything: the user sees and deletes only its own rows.
    let basic = custom_role(
        &app,
        &root,
        "basic deleter",
        &[
            ("prvCreatemsdyn_smsengagementctx", 1),
            ("prvReadmsdyn_smsengagementctx", 1),
            ("prvDeletemsdyn_smsengagementctx", 1),
            ("prvReadAsyncOperation", 1),
        ],
    )
    .await;
    // Reads every row but deletes only its own: the others are failures, and stay.
    let reader = custom_role(
        &app,
        &root,
        "global reader basic deleter",
        &[
            ("prvCreatemsdyn_smsengagementctx", 1),
            ("prvReadmsdyn_smsengagementctx", 8),
            ("prvDeletemsdyn_smsengagementctx", 1),
            ("prvReadAsyncOperation", 1),
        ],
    )
    .await;
    let user = signed_in_user(&app, "bdbasic", &root, &[&basic]).await;
    let wide = signed_in_user(&app, "bdwide", &root, &[&reader]).await;
    for name in ["bdu-admin-1", "bdu-admin-2"] {
        app.create(CTX, &json!({"msdyn_name": name})).await;
    }
    for (who, name) in [
        (&user, "bdu-user-1"),
        (&user, "bdu-user-2"),
        (&wide, "bdu-wide-1"),
    ] {
        let response = app
            .client
            .post(app.url(CTX))
            .bearer_auth(&who.token)
            .json(&json!({"msdyn_name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    let body = bulk_delete(json!([query(names_starting("bdu-"))]));
    let job = submit(&app, &user.token, &body).await;
    let row = completed(&app.url(""), &user.token, &job).await;
    assert_eq!(row["statuscode"], 30, "{row}");
    assert_eq!(row["successcount"], 2);
    assert_eq!(row["failurecount"], 0);
    assert_eq!(row["_ownerid_value"], user.id.as_str());
    assert_eq!(
        names(&app, "bdu-").await,
        ["bdu-admin-1", "bdu-admin-2", "bdu-wide-1"]
    );
    // The job is the user's: another Basic-depth user does not see it.
    let response = get_as(&app, &wide.token, &format!("{JOBS}({job})"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());

    let job = submit(&app, &wide.token, &body).await;
    let row = completed(&app.url(""), &wide.token, &job).await;
    assert_eq!(row["statuscode"], 31, "Failed: {row}");
    assert_eq!(row["successcount"], 1);
    assert_eq!(row["failurecount"], 2);
    assert!(
        row["message"].as_str().unwrap().contains("2 of the 3"),
        "{row}"
    );
    assert_eq!(names(&app, "bdu-").await, ["bdu-admin-1", "bdu-admin-2"]);
}

#[tokio::test]
async fn bad_bulk_delete_requests_are_refused_and_record_nothing() {
    let app = spawn_app().await;
    let root = root_unit(&app).await;
    let reader = basic_role(&app, &root).await;
    let user = signed_in_user(&app, "bdnodelete", &root, &[&reader]).await;
    let before = app.get_json(&format!("{JOBS}/$count")).await;

    let send = |token: &str, body: Value| {
        app.client
            .request(Method::POST, app.url("BulkDelete"))
            .bearer_auth(token.to_string())
            .json(&body)
            .send()
    };
    let everything = json!({"FilterOperator": "And", "Conditions": []});

    let response = send(&user.token, bulk_delete(json!([query(everything.clone())])))
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "0x80040220", "prvDelete").await;

    let unknown = json!([{"EntityName": "nosuchtable", "Criteria": everything}]);
    let response = send(TOKEN, bulk_delete(unknown)).await.unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80041102",
        "nosuchtable",
    )
    .await;

    let response = send(TOKEN, bulk_delete(json!([]))).await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "0x80040203", "QuerySet").await;

    let response = send(TOKEN, json!({"JobName": "no queries"})).await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "0x80040203", "QuerySet").await;

    let fiscal =
        json!({"Conditions": [{"AttributeName": "createdon", "Operator": "ThisFiscalYear"}]});
    let response = send(TOKEN, bulk_delete(json!([query(fiscal)])))
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "ThisFiscalYear",
    )
    .await;

    let column = json!({"Conditions": [{"AttributeName": "nosuchcolumn", "Operator": "Null"}]});
    let response = send(TOKEN, bulk_delete(json!([query(column)])))
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80041103",
        "nosuchcolumn",
    )
    .await;

    let value = json!({"Conditions": [{"AttributeName": "statecode", "Operator": "Equal", "Values": ["active"]}]});
    let response = send(TOKEN, bulk_delete(json!([query(value)])))
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "0x80040203", "active").await;

    let mut recurring = bulk_delete(json!([query(names_starting("x"))]));
    recurring["RecurrencePattern"] = json!("FREQ=DAILY;INTERVAL=1;");
    let response = send(TOKEN, recurring).await.unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "RecurrencePattern",
    )
    .await;

    let mut long_name = bulk_delete(json!([query(names_starting("x"))]));
    long_name["JobName"] = json!("n".repeat(257));
    let response = send(TOKEN, long_name).await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "0x80040203", "JobName").await;

    let mut unknown_parameter = bulk_delete(json!([query(names_starting("x"))]));
    unknown_parameter["Targets"] = json!([]);
    let response = send(TOKEN, unknown_parameter).await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "0x80048d19", "Targets").await;

    let response = send(TOKEN, json!({"QuerySet": "all of it"})).await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "0x80048d19", "QuerySet").await;

    let response = app.get("BulkDelete").send().await.unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());

    assert_eq!(app.get_json(&format!("{JOBS}/$count")).await, before);
}

#[tokio::test]
async fn the_message_catalog_lists_bulk_delete() {
    let app = spawn_app().await;
    let filters = app
        .get_json(
            "sdkmessagefilters?$select=sdkmessagefilterid&$expand=sdkmessageid($select=name)\
             &$filter=sdkmessageid/name eq 'BulkDelete' and primaryobjecttypecode eq 'msdyn_smsengagementctx'",
        )
        .await;
    assert_eq!(filters["value"].as_array().unwrap().len(), 1, "{filters}");
    // A read-only table (no Delete) has none.
    let none = app
        .get_json(
            "sdkmessagefilters?$select=sdkmessagefilterid&$expand=sdkmessageid($select=name)\
             &$filter=sdkmessageid/name eq 'BulkDelete' and primaryobjecttypecode eq 'asyncoperation'",
        )
        .await;
    assert_eq!(none["value"].as_array().unwrap().len(), 0, "{none}");
}

/// Creates `rows` contexts named `{prefix}{n}` through `base`, 500 per CreateMultiple.
async fn create_rows(client: &reqwest::Client, base: &str, prefix: &str, rows: usize) {
    for chunk in 0..rows.div_ceil(500) {
        let targets: Vec<Value> = (chunk * 500..rows.min((chunk + 1) * 500))
            .map(|n| {
                json!({"@odata.type": "Microsoft.Dynamics.CRM.msdyn_smsengagementctx",
                       "msdyn_name": format!("{prefix}{n}")})
            })
            .collect();
        let response = client
            .post(format!("{base}{CTX}/Microsoft.Dynamics.CRM.CreateMultiple"))
            .bearer_auth(TOKEN)
            .json(&json!({"Targets": targets}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// Posts a BulkDelete of the contexts whose name starts with `prefix` to `base`; the job id.
async fn submit_to(client: &reqwest::Client, base: &str, prefix: &str) -> String {
    let response = client
        .post(format!("{base}BulkDelete"))
        .bearer_auth(TOKEN)
        .json(&bulk_delete(json!([query(names_starting(prefix))])))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    answer["JobId"].as_str().unwrap().to_string()
}

async fn job_row(client: &reqwest::Client, base: &str, job: &str) -> Value {
    let response = client
        .get(format!("{base}{JOBS}({job})"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Polls the job until it is In Progress with some rows deleted (never completed before).
async fn in_progress(client: &reqwest::Client, base: &str, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = job_row(client, base, job).await;
        assert_ne!(row["statecode"], 3, "the job finished too soon: {row}");
        if row["statecode"] == 2 && row["successcount"].as_i64().unwrap_or(0) > 0 {
            return row;
        }
        assert!(Instant::now() < deadline, "the job never started: {row}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET {base}{CTX}/$count{query}`, as text.
async fn count(client: &reqwest::Client, base: &str, query: &str) -> String {
    let response = client
        .get(format!("{base}{CTX}/$count{query}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_job_interrupted_by_a_kill_resumes_after_a_restart_and_counts_each_row_once() {
    const ROWS: usize = 1500;
    let db = TestDatabase::new().await;
    let mut server = start_server(&db.url, &["--bulk-delete-batch", "3"]);
    let client = reqwest::Client::new();
    create_rows(&client, &server.base, "bdk-", ROWS).await;
    create_rows(&client, &server.base, "kept-bdk-", 1).await;
    let job = submit_to(&client, &server.base, "bdk-").await;

    // Kill the node while the job is in progress, part of its rows deleted.
    let at_kill = in_progress(&client, &server.base, &job).await;
    server.child.kill().expect("SIGKILL is delivered");
    server.child.wait().unwrap();
    assert!(at_kill["successcount"].as_i64() < Some(ROWS as i64));

    let server = start_server(&db.url, &["--bulk-delete-batch", "50"]);
    let row = completed(&server.base, TOKEN, &job).await;
    assert_eq!(row["statuscode"], 30, "{row}");
    assert_eq!(
        row["successcount"], ROWS as i64,
        "each row counted once: {row}"
    );
    assert_eq!(row["failurecount"], 0);
    let selected = "?$filter=startswith(msdyn_name,'bdk-')";
    assert_eq!(count(&client, &server.base, selected).await, "0");
    assert_eq!(count(&client, &server.base, "").await, "1");
}

#[tokio::test]
async fn on_two_postgres_nodes_one_runs_a_job_and_the_other_takes_it_over_when_it_dies() {
    const ROWS: usize = 3000;
    let db = TestDatabase::new().await;
    if !db.is_postgres() {
        eprintln!("note: two nodes need PostgreSQL ({POSTGRES_ENV}); skipped");
        return;
    }
    let mut a = start_server(&db.url, &["--bulk-delete-batch", "2"]);
    let b = start_server(&db.url, &["--bulk-delete-batch", "50"]);
    let client = reqwest::Client::new();
    create_rows(&client, &a.base, "bdn-", ROWS).await;
    let job = submit_to(&client, &a.base, "bdn-").await;

    // A claims it at once (it was woken); B's passes (every 3 s) leave it alone while A renews
    // the lease with every batch.
    let running = in_progress(&client, &b.base, &job).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = job_row(&client, &b.base, &job).await;
    assert_eq!(later["statecode"], 2, "still running on A: {later}");
    assert_eq!(
        later["hostid"], running["hostid"],
        "B did not take a live claim"
    );
    assert!(later["successcount"].as_i64() > running["successcount"].as_i64());
    a.child.kill().expect("SIGKILL is delivered");
    a.child.wait().unwrap();

    // B takes the job over once A's lease has run out, and finishes it.
    let row = completed(&b.base, TOKEN, &job).await;
    assert_eq!(row["statuscode"], 30, "{row}");
    assert_ne!(row["hostid"], running["hostid"], "B finished it: {row}");
    assert_eq!(
        row["successcount"], ROWS as i64,
        "each row counted once: {row}"
    );
    assert_eq!(count(&client, &b.base, "").await, "0");
}
