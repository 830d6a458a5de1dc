//! Bad input: every refusal is a 4xx in Dataverse's error shape, and nothing stored changes.

use crate::common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Sends `body` as a create and expects the refusal; then checks nothing was created.
async fn refuse_create(app: &TestApp, body: Value, status: StatusCode, code: &str, message: &str) {
    let before = app
        .get(&format!("{CTX}/$count"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_error(
        app.post(CTX, &body).send().await.unwrap(),
        status,
        code,
        message,
    )
    .await;
    let after = app
        .get(&format!("{CTX}/$count"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(before, after, "a refused create stores nothing: {body}");
}

#[tokio::test]
async fn bodies_are_checked_against_the_metadata() {
    let app = spawn_app().await;
    let bad = StatusCode::BAD_REQUEST;
    refuse_create(
        &app,
        json!({"Msdyn_Name": "x"}),
        bad,
        "0x0",
        "Invalid property 'Msdyn_Name' was found in entity 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'.",
    )
    .await;
    refuse_create(
        &app,
        json!({"msdyn_name": 12}),
        bad,
        "0x80048d19",
        "Edm.String",
    )
    .await;
    refuse_create(
        &app,
        json!({"msdyn_customerphonenumber": "1".repeat(101)}),
        bad,
        "0x80044331",
        "The length of the 'msdyn_customerphonenumber' attribute of the 'msdyn_smsengagementctx' entity exceeded the maximum allowed length of '100'.",
    )
    .await;
    refuse_create(
        &app,
        json!({"msdyn_smsprovider": 5}),
        bad,
        "0x8004431a",
        "The value 5 of 'msdyn_smsprovider' on record of type 'msdyn_smsengagementctx' is outside the valid range. Accepted Values: 192350000,192350001",
    )
    .await;
    refuse_create(
        &app,
        json!({"msdyn_smsprovider": "Twilio"}),
        bad,
        "0x80048d19",
        "Edm.Int32",
    )
    .await;
    refuse_create(
        &app,
        json!({"utcconversiontimezonecode": -2}),
        bad,
        "0x80040203",
        "outside the valid range",
    )
    .await;
    refuse_create(
        &app,
        json!({"timezoneruleversionnumber": 2147483648i64}),
        bad,
        "0x80040203",
        "outside",
    )
    .await;
    refuse_create(
        &app,
        json!({"importsequencenumber": 1.5}),
        bad,
        "0x80048d19",
        "Edm.Int32",
    )
    .await;
    refuse_create(
        &app,
        json!({"overriddencreatedon": "tomorrow"}),
        bad,
        "0x80048d19",
        "Edm.DateTimeOffset",
    )
    .await;
    refuse_create(
        &app,
        json!({"overriddencreatedon": "1752-12-31T00:00:00Z"}),
        bad,
        "0x80040203",
        "1753",
    )
    .await;
    refuse_create(
        &app,
        json!({"msdyn_smsengagementctxid": "123"}),
        bad,
        "0x80048d19",
        "Edm.Guid",
    )
    .await;
    refuse_create(
        &app,
        json!({"_ownerid_value": "00000000-0000-0000-0000-000000000001"}),
        bad,
        "0x80048d19",
        "Navigation properties",
    )
    .await;
    refuse_create(
        &app,
        json!({"msdyn_liveworkitemid": "00000000-0000-0000-0000-000000000001"}),
        bad,
        "0x80048d19",
        "msdyn_liveworkitemid@odata.bind",
    )
    .await;
    refuse_create(
        &app,
        json!({"msdyn_conversation@odata.bind": "/msdyn_ocliveworkitems(00000000-0000-0000-0000-000000000001)"}),
        bad,
        "0x80048d19",
        "undeclared property 'msdyn_conversation'",
    )
    .await;
    refuse_create(
        &app,
        json!({"msdyn_liveworkitemid@odata.bind": "msdyn_ocliveworkitems(42)"}),
        bad,
        "0x80090800",
        "Invalid url value 'msdyn_ocliveworkitems(42)' for lookup property 'msdyn_liveworkitemid'.",
    )
    .await;
    refuse_create(
        &app,
        json!({"ownerid@odata.bind": "/businessunits(00000000-0000-0000-0000-000000000001)"}),
        bad,
        "0x80090800",
        "lookup property 'ownerid'",
    )
    .await;
    refuse_create(
        &app,
        json!({"msdyn_liveworkitemid@odata.bind": "/msdyn_ocliveworkitems(00000000-0000-0000-0000-000000000001)"}),
        StatusCode::NOT_FOUND,
        "0x80040217",
        "msdyn_ocliveworkitem With Id = 00000000-0000-0000-0000-000000000001 Does Not Exist",
    )
    .await;
    refuse_create(
        &app,
        json!({"ownerid@odata.bind": null}),
        bad,
        "0x80040203",
        "ownerid",
    )
    .await;
    refuse_create(
        &app,
        json!({"msdyn_name@odata.bind": "/teams(00000000-0000-0000-0000-000000000001)"}),
        bad,
        "0x80048d19",
        "undeclared",
    )
    .await;
    refuse_create(
        &app,
        json!({"nothing@OData.Community.Display.V1.FormattedValue": "x"}),
        bad,
        "0x80048d19",
        "undeclared property 'nothing'",
    )
    .await;
}

#[tokio::test]
async fn malformed_requests_are_refused_before_anything_is_written() {
    let app = spawn_app().await;
    let send_raw = |content_type: &'static str, body: &'static str| {
        app.request(Method::POST, CTX)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    assert_error(
        send_raw("application/json", "{\"msdyn_name\":")
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "0x80048d19",
        "Invalid JSON",
    )
    .await;
    assert_error(
        send_raw("application/json", "[1,2]").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "0x80048d19",
        "JSON object",
    )
    .await;
    assert_error(
        send_raw("application/json", "").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "0x80048d19",
        "empty",
    )
    .await;
    assert_error(
        send_raw("text/plain", "{}").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "0x80048d19",
        "text/plain",
    )
    .await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep = app
        .request(Method::POST, CTX)
        .header("Content-Type", "application/json")
        .body(format!("{{\"msdyn_name\":{deep}}}"))
        .send()
        .await
        .unwrap();
    assert_error(deep, StatusCode::BAD_REQUEST, "0x80048d19", "").await;
    let huge = app
        .request(Method::POST, CTX)
        .header("Content-Type", "application/json")
        .body(format!("{{\"msdyn_name\":\"{}\"}}", "x".repeat(200_000)))
        .send()
        .await
        .unwrap();
    assert_error(
        huge,
        StatusCode::PAYLOAD_TOO_LARGE,
        "0x80040203",
        "larger than the limit",
    )
    .await;
    assert_eq!(
        app.get(&format!("{CTX}/$count"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "0"
    );
}

#[tokio::test]
async fn urls_are_checked() {
    let app = spawn_app().await;
    let not_found = StatusCode::NOT_FOUND;
    assert_error(
        app.get("msdyn_smsengagementctx").send().await.unwrap(),
        not_found,
        "0x8006088a",
        "Resource not found for the segment 'msdyn_smsengagementctx'.",
    )
    .await;
    assert_error(
        app.get("Msdyn_smsengagementctxes").send().await.unwrap(),
        not_found,
        "0x8006088a",
        "'Msdyn_smsengagementctxes'",
    )
    .await;
    let unknown_version = app
        .client
        .get(app.base.replace("v9.2", "v8.0") + CTX)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(unknown_version, not_found, "0x8006088a", "'v8.0'").await;
    assert_error(
        app.get(&ctx("not-a-guid")).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "0x80060888",
        "not a valid key",
    )
    .await;
    assert_error(
        app.get(&ctx("msdyn_name='x'")).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "0x80060888",
        "match the declared or alternate key properties",
    )
    .await;
    let id = app.create(CTX, &json!({"msdyn_name": "u"})).await;
    assert_error(
        app.get(&format!("{}/nope", ctx(&id))).send().await.unwrap(),
        not_found,
        "0x8006088a",
        "'nope'",
    )
    .await;
    assert_error(app.get(&format!("{}?$select=nope", ctx(&id))).send().await.unwrap(), StatusCode::BAD_REQUEST, "0x0", "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'.").await;
    assert_error(
        app.get(&format!("{CTX}?$skip=2")).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "0x0",
        "$skip",
    )
    .await;
    assert_error(
        app.get(&format!("{CTX}?$top=-1")).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "0x0",
        "$top",
    )
    .await;
    assert_error(
        app.get(&format!("{}?$filter=statecode eq 0", ctx(&id)))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "0x80060888",
        "single record",
    )
    .await;
    assert_error(
        app.get(&format!("{}?$expand=nope", ctx(&id)))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "0x0",
        "'nope'",
    )
    .await;
    assert_error(
        app.get(&format!("{CTX}?$skiptoken=garbage"))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "0x80060888",
        "$skiptoken",
    )
    .await;
    assert_error(
        app.request(Method::PUT, CTX).send().await.unwrap(),
        not_found,
        "",
        "No HTTP resource was found",
    )
    .await;
    assert_error(
        app.request(Method::PATCH, CTX).send().await.unwrap(),
        not_found,
        "",
        "No HTTP resource",
    )
    .await;
    assert_error(
        app.get("NoSuchFunction(A=1)").send().await.unwrap(),
        not_found,
        "0x8006088a",
        "NoSuchFunction",
    )
    .await;
    let bad_etag = app
        .patch(&ctx(&id), &json!({"msdyn_name": "v"}))
        .header("If-Match", "W/5")
        .send()
        .await
        .unwrap();
    assert_error(
        bad_etag,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "entity tag",
    )
    .await;
    let missing_argument = app
        .get("IsValidStateTransition(Entity=@e,NewState=@s,NewStatus=@n)")
        .send()
        .await
        .unwrap();
    assert_error(
        missing_argument,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "'@e' has no value",
    )
    .await;
    let outside = app
        .client
        .get(app.base.replace("/api/data/v9.2/", "/elsewhere"))
        .send()
        .await
        .unwrap();
    assert_error(outside, not_found, "0x80060888", "No HTTP resource").await;
    // The paths above the root say where it is.
    for path in ["/", "/api", "/api/data", "/api/data/"] {
        let response = app
            .client
            .get(app.base.replace("/api/data/v9.2/", path))
            .send()
            .await
            .unwrap();
        assert_error(response, not_found, "0x80060888", "/api/data/v9.2/").await;
    }
}

#[tokio::test]
async fn updates_refuse_bad_values_and_keep_the_row() {
    let app = spawn_app().await;
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "keep", "msdyn_countrycode": "1"}),
        )
        .await;
    let before = app.get_json(&ctx(&id)).await;
    for (body, code) in [
        (
            json!({"msdyn_countrycode": "2", "msdyn_name": "x".repeat(101)}),
            "0x80044331",
        ),
        (
            json!({"msdyn_countrycode": "2", "msdyn_smsprovider": 1}),
            "0x8004431a",
        ),
        (
            json!({"msdyn_countrycode": "2", "ownerid@odata.bind": null}),
            "0x80040203",
        ),
        (
            json!({"msdyn_countrycode": "2", "statecode": null}),
            "0x80040203",
        ),
        (
            json!({"msdyn_countrycode": "2", "statuscode": 2}),
            "0x80048408",
        ),
        (json!({"msdyn_countrycode": "2", "bogus": 1}), "0x0"),
    ] {
        let response = app.patch(&ctx(&id), &body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}");
    }
    assert_eq!(
        app.get_json(&ctx(&id)).await,
        before,
        "no refused update changed the row"
    );
    let cleared_owner = app
        .delete(&format!("{}/_ownerid_value", ctx(&id)))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared_owner.status(), StatusCode::NOT_FOUND);
    let clear_state = app
        .delete(&format!("{}/statecode", ctx(&id)))
        .send()
        .await
        .unwrap();
    assert_error(
        clear_state,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "statecode",
    )
    .await;
}

#[tokio::test]
async fn every_request_needs_the_bearer_token() {
    let app = spawn_app().await;
    let url = app.url(CTX);
    for request in [
        app.client.get(&url),
        app.client.get(&url).bearer_auth("wrong"),
        app.client
            .get(&url)
            .header("Authorization", "Basic dGVzdDp0ZXN0"),
        app.client
            .get(&url)
            .header("Authorization", format!("Bearer {TOKEN}x")),
        app.client.post(&url).json(&json!({"msdyn_name": "x"})),
        app.client.get(app.url("msdyn_nothing")),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(
            response.headers()["WWW-Authenticate"],
            "Bearer realm=\"smsctx\""
        );
        assert_error(
            response,
            StatusCode::UNAUTHORIZED,
            "0x80072560",
            "bearer token",
        )
        .await;
    }
    assert_eq!(
        app.get(&format!("{CTX}/$count"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "0"
    );
}
