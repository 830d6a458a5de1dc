//! `$batch` over HTTP: independent requests, atomic change sets with `$n` references, and
//! `Prefer: odata.continue-on-error`.

use crate::common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Joins lines with CRLF, as the multipart format wants.
fn crlf(lines: &[&str]) -> String {
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    text
}

async fn send_batch(
    app: &TestApp,
    body: String,
    prefer: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = app
        .request(Method::POST, "$batch")
        .header("Content-Type", "multipart/mixed; boundary=\"batch_A\"")
        .body(body);
    if let Some(prefer) = prefer {
        request = request.header("Prefer", prefer);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response.headers()["Content-Type"]
        .to_str()
        .unwrap()
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

async fn count(app: &TestApp) -> String {
    app.get(&format!("{CTX}/$count"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_change_set_with_references_commits_and_reads_follow() {
    let app = spawn_app().await;
    let body = crlf(&[
        "--batch_A",
        "Content-Type: multipart/mixed; boundary=\"changeset_B\"",
        "",
        "--changeset_B",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 1",
        "",
        "POST /api/data/v9.2/msdyn_ocliveworkitems HTTP/1.1",
        "Content-Type: application/json; type=entry",
        "",
        r#"{"subject":"conversation in batch"}"#,
        "--changeset_B",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 2",
        "",
        "POST /api/data/v9.2/msdyn_smsengagementctxes HTTP/1.1",
        "Content-Type: application/json; type=entry",
        "",
        r#"{"msdyn_name":"in batch","msdyn_liveworkitemid@odata.bind":"$1"}"#,
        "--changeset_B",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 3",
        "",
        "PATCH $2 HTTP/1.1",
        "Content-Type: application/json",
        "",
        r#"{"msdyn_countrycode":"44"}"#,
        "--changeset_B--",
        "--batch_A",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "",
        "GET /api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name,msdyn_countrycode,_msdyn_liveworkitemid_value HTTP/1.1",
        "Accept: application/json",
        "",
        "",
        "--batch_A--",
    ]);
    let (status, content_type, text) = send_batch(&app, body, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        content_type.starts_with("multipart/mixed; boundary=batchresponse_"),
        "{content_type}"
    );
    assert!(text.contains("boundary=changesetresponse_"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 3, "{text}");
    assert!(text.contains("Content-ID: 2"));
    assert!(text.contains("Location: "));
    assert!(text.contains("HTTP/1.1 200 OK"));
    assert!(
        text.contains(r#""msdyn_countrycode":"44""#),
        "the GET sees the change set: {text}"
    );

    let rows = app.get_json(CTX).await;
    let row = &rows["value"][0];
    assert_eq!(row["msdyn_name"], "in batch");
    assert_eq!(row["msdyn_countrycode"], "44");
    let conversation = row["_msdyn_liveworkitemid_value"].as_str().unwrap();
    let linked = app
        .get_json(&format!("msdyn_ocliveworkitems({conversation})"))
        .await;
    assert_eq!(linked["subject"], "conversation in batch");
}

#[tokio::test]
async fn a_failing_change_set_rolls_back_every_part() {
    let app = spawn_app().await;
    let body = crlf(&[
        "--batch_A",
        "Content-Type: multipart/mixed; boundary=changeset_B",
        "",
        "--changeset_B",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 1",
        "",
        "POST msdyn_smsengagementctxes HTTP/1.1",
        "Content-Type: application/json",
        "",
        r#"{"msdyn_name":"rolled back"}"#,
        "--changeset_B",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 2",
        "",
        "PATCH $1 HTTP/1.1",
        "Content-Type: application/json",
        "",
        r#"{"msdyn_smsprovider":7}"#,
        "--changeset_B--",
        "--batch_A--",
    ]);
    let (status, _, text) = send_batch(&app, body, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("HTTP/1.1 400 Bad Request"), "{text}");
    assert!(text.contains("0x8004431a"), "{text}");
    assert!(
        !text.contains("204 No Content"),
        "only the failing part: {text}"
    );
    assert_eq!(
        count(&app).await,
        "0",
        "the change set's create rolled back"
    );
    // The store still takes writes after a rolled-back change set.
    app.create(CTX, &json!({"msdyn_name": "after"})).await;
    assert_eq!(count(&app).await, "1");
}

#[tokio::test]
async fn continue_on_error_runs_every_item() {
    let app = spawn_app().await;
    let body = crlf(&[
        "--batch_A",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "",
        "GET msdyn_smsengagementctxes(00000000-0000-0000-0000-000000000001) HTTP/1.1",
        "",
        "",
        "--batch_A",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "",
        "POST msdyn_smsengagementctxes HTTP/1.1",
        "Content-Type: application/json",
        "",
        r#"{"msdyn_name":"second"}"#,
        "--batch_A--",
    ]);
    let (status, _, text) = send_batch(&app, body.clone(), Some("odata.continue-on-error")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("HTTP/1.1 404 Not Found"));
    assert!(text.contains("0x80040217"));
    assert!(text.contains("HTTP/1.1 204 No Content"));
    assert_eq!(count(&app).await, "1");

    let (status, _, text) = send_batch(&app, body, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "stops at the first failure: {text}"
    );
    assert_eq!(count(&app).await, "1", "the second item did not run");
}

#[tokio::test]
async fn malformed_batches_are_refused() {
    let app = spawn_app().await;
    let undeclared = crlf(&[
        "--batch_A",
        "Content-Type: multipart/mixed; boundary=changeset_B",
        "",
        "--changeset_B",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 2",
        "",
        "PATCH $1 HTTP/1.1",
        "Content-Type: application/json",
        "",
        r#"{"msdyn_name":"x"}"#,
        "--changeset_B--",
        "--batch_A--",
    ]);
    let response = app
        .request(Method::POST, "$batch")
        .header("Content-Type", "multipart/mixed; boundary=batch_A")
        .body(undeclared)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80048d19",
        "Content-ID Reference: '$1' does not exist in the batch context.",
    )
    .await;
    let not_multipart = app
        .request(Method::POST, "$batch")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_multipart.status(), StatusCode::BAD_REQUEST);
    let get = app.get("$batch").send().await.unwrap();
    assert_eq!(get.status(), StatusCode::NOT_FOUND);
    let body: Value = get.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("No HTTP resource"));
}
