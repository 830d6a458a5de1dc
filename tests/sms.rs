//! The SMS channel end to end: channels configured through the Web API and the CLI, Twilio and
//! TeleSign webhooks signed as the providers' SDKs sign them, the engagement contexts and
//! conversations they keep, and outbound messages against a fake provider on 127.0.0.1.
//!
//! The signatures are computed here, independently of `smsctx::channels`, straight from the
//! providers' definitions: Twilio's `base64(HMAC-SHA1(token, url + sorted name/value pairs))`
//! (and its published worked example), TeleSign's `TSA <customer id>:base64(HMAC-SHA256(
//! base64-decode(api key), raw body))`.

use crate::common;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub(crate) const TOKEN_TWILIO: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
pub(crate) const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub(crate) const ORG: &str = "+14252306549";
pub(crate) const ORG_2: &str = "+14252306550";
pub(crate) const CUSTOMER: &str = "+12015550123";

// TeleSign's example credentials from its "Authenticate callbacks" page.
pub(crate) const TS_CUSTOMER: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
pub(crate) const TS_KEY: &str =
    "ABC12345yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
pub(crate) const TS_ORG: &str = "+14252306551";

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Twilio's RequestValidator algorithm: URL, then each parameter's name and value sorted by
/// name, HMAC-SHA1 with the auth token, base64.
pub(crate) fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    b64(&mac.finalize().into_bytes())
}

pub(crate) fn telesign_authorization(customer: &str, key: &str, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(body);
    format!("TSA {customer}:{}", b64(&mac.finalize().into_bytes()))
}

/// The server root (`http://127.0.0.1:PORT`).
pub(crate) fn root(app: &TestApp) -> String {
    app.base.trim_end_matches("/api/data/v9.2/").to_owned()
}

pub(crate) fn twilio_url(app: &TestApp) -> String {
    format!("{}/channels/sms/twilio", root(app))
}

pub(crate) async fn add_twilio_channel(app: &TestApp, number: &str, extra: Value) -> Value {
    let mut body = json!({
        "smsctx_provider": "twilio",
        "smsctx_phonenumber": number,
        "smsctx_secret": TOKEN_TWILIO,
        "smsctx_account": ACCOUNT,
        "smsctx_publicurl": twilio_url(app),
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let response = app.post("smsctx_smschannels", &body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

pub(crate) async fn add_telesign_channel(app: &TestApp) -> Value {
    let response = app
        .post(
            "smsctx_smschannels",
            &json!({
                "smsctx_provider": "telesign",
                "smsctx_phonenumber": TS_ORG,
                "smsctx_secret": TS_KEY,
                "smsctx_account": TS_CUSTOMER,
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

pub(crate) fn twilio_params<'a>(
    from: &'a str,
    to: &'a str,
    sid: &'a str,
    body: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("From", from),
        ("To", to),
        ("Body", body),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT),
        ("NumSegments", "1"),
        ("ApiVersion", "2010-04-01"),
    ]
}

/// POSTs a form signed with `token` for `url` (and sent to `url`).
pub(crate) async fn post_twilio(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    params: &[(&str, &str)],
) -> reqwest::Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    client
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", twilio_signature(token, url, params))
        .body(body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn text_message(
    app: &TestApp,
    from: &str,
    to: &str,
    sid: &str,
) -> reqwest::Response {
    post_twilio(
        &app.client,
        &twilio_url(app),
        TOKEN_TWILIO,
        &twilio_params(from, to, sid, "Hello, I need help"),
    )
    .await
}

pub(crate) fn sid(n: u32) -> String {
    format!("SM{n:032x}")
}

pub(crate) async fn contexts(app: &TestApp) -> Vec<Value> {
    app.get_json(&format!("{CTX}?$orderby=createdon asc")).await["value"]
        .as_array()
        .unwrap()
        .clone()
}

pub(crate) async fn conversations(app: &TestApp) -> Vec<Value> {
    app.get_json("msdyn_ocliveworkitems").await["value"]
        .as_array()
        .unwrap()
        .clone()
}

const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

#[tokio::test]
async fn first_message_opens_a_context_and_a_conversation_and_the_next_reuses_them() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;

    let response = text_message(&app, CUSTOMER, ORG, &sid(1)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/xml; charset=utf-8"
    );
    assert_eq!(response.text().await.unwrap(), EMPTY_TWIML);

    let rows = contexts(&app).await;
    assert_eq!(rows.len(), 1);
    let ctx = &rows[0];
    assert_eq!(ctx["msdyn_orgphonenumber"], "14252306549");
    assert_eq!(ctx["msdyn_customerphonenumber"], "12015550123");
    assert_eq!(ctx["msdyn_countrycode"], "1");
    assert_eq!(ctx["msdyn_smsprovider"], 192350001);
    assert_eq!(ctx["msdyn_smsengagementid"], sid(1));
    assert_eq!(ctx["statecode"], 0);
    assert_eq!(ctx["msdyn_name"], "SMS from +12015550123 to +14252306549");
    let conversation_id = ctx["_msdyn_liveworkitemid_value"]
        .as_str()
        .unwrap()
        .to_owned();
    let conversation = app
        .get_json(&format!("msdyn_ocliveworkitems({conversation_id})"))
        .await;
    assert_eq!(conversation["statecode"], 0);
    assert_eq!(conversation["description"], "Hello, I need help");
    // Owned by the administrator when the channel names no owner.
    assert_eq!(ctx["_ownerid_value"], conversation["_ownerid_value"]);
    let me = app
        .get_json(&format!(
            "systemusers({})",
            ctx["_ownerid_value"].as_str().unwrap()
        ))
        .await;
    assert_eq!(me["domainname"], "admin");

    let second = text_message(&app, CUSTOMER, ORG, &sid(2)).await;
    assert_eq!(second.status(), StatusCode::OK);
    let rows = contexts(&app).await;
    assert_eq!(
        rows.len(),
        1,
        "the second message lands on the same context"
    );
    assert_eq!(
        rows[0]["msdyn_smsengagementctxid"],
        ctx["msdyn_smsengagementctxid"]
    );
    assert_eq!(conversations(&app).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_closed_conversation_deactivates_its_context_and_opens_a_new_one() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(1)).await.status(),
        StatusCode::OK
    );
    let first = contexts(&app).await[0].clone();
    let first_id = first["msdyn_smsengagementctxid"]
        .as_str()
        .unwrap()
        .to_owned();
    let conversation = first["_msdyn_liveworkitemid_value"]
        .as_str()
        .unwrap()
        .to_owned();
    let closed = app
        .patch(
            &format!("msdyn_ocliveworkitems({conversation})"),
            &json!({"statecode": 1, "statuscode": 4}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);

    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(2)).await.status(),
        StatusCode::OK
    );
    let rows = contexts(&app).await;
    assert_eq!(rows.len(), 2);
    let old = app.get_json(&ctx(&first_id)).await;
    assert_eq!(old["statecode"], 1, "the old context is deactivated");
    assert_eq!(old["statuscode"], 2);
    let new = rows
        .iter()
        .find(|r| r["msdyn_smsengagementctxid"] != first_id)
        .unwrap();
    assert_eq!(new["statecode"], 0);
    assert_eq!(new["msdyn_smsengagementid"], sid(2));
    assert_ne!(new["_msdyn_liveworkitemid_value"], conversation.as_str());
    assert_eq!(conversations(&app).await.len(), 2);

    // The next message lands on the new context; a resolved conversation ends the exchange
    // too.
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(3)).await.status(),
        StatusCode::OK
    );
    assert_eq!(contexts(&app).await.len(), 2);
    let new_conversation = new["_msdyn_liveworkitemid_value"].as_str().unwrap();
    let resolved = app
        .patch(
            &format!("msdyn_ocliveworkitems({new_conversation})"),
            &json!({"statecode": 2, "statuscode": 6}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(4)).await.status(),
        StatusCode::OK
    );
    let rows = contexts(&app).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().filter(|r| r["statecode"] == 0).count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_deactivated_context_is_not_reused() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(1)).await.status(),
        StatusCode::OK
    );
    let id = contexts(&app).await[0]["msdyn_smsengagementctxid"]
        .as_str()
        .unwrap()
        .to_owned();
    let off = app
        .patch(&ctx(&id), &json!({"statecode": 1, "statuscode": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(2)).await.status(),
        StatusCode::OK
    );
    let rows = contexts(&app).await;
    assert_eq!(rows.len(), 2);
    let active: Vec<&Value> = rows.iter().filter(|r| r["statecode"] == 0).collect();
    assert_eq!(active.len(), 1);
    assert_ne!(active[0]["msdyn_smsengagementctxid"], id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_signatures_are_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    let url = twilio_url(&app);
    let s = sid(1);
    let params = twilio_params(CUSTOMER, ORG, &s, "hi");

    // Signed with another token.
    let other = post_twilio(&app.client, &url, "another-token", &params).await;
    assert_error(
        other,
        StatusCode::FORBIDDEN,
        "0x80040220",
        "X-Twilio-Signature",
    )
    .await;
    // Signed for another URL.
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let elsewhere = app
        .client
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header(
            "X-Twilio-Signature",
            twilio_signature(TOKEN_TWILIO, "https://elsewhere.example.com/sms", &params),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    // A tampered body under a genuine signature.
    let tampered = app
        .client
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header(
            "X-Twilio-Signature",
            twilio_signature(TOKEN_TWILIO, &url, &params),
        )
        .body(body.replace("Body=hi", "Body=ho"))
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), StatusCode::FORBIDDEN);
    // No signature at all.
    let unsigned = app
        .client
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);

    assert!(contexts(&app).await.is_empty());
    assert!(conversations(&app).await.is_empty());
    // The same message, correctly signed, is then accepted: the refusals recorded nothing.
    assert_eq!(
        post_twilio(&app.client, &url, TOKEN_TWILIO, &params)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(contexts(&app).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn twilios_published_example_validates() {
    // Twilio's worked example: token 12345, https://mycompany.com/myapp.php?foo=1&bar=2 and
    // these parameters sign to RSOYDt4T1cUTdK1PDd93/VVr8B8=. The channel's public URL is that
    // URL; the request reaches smsctx directly (as through a proxy).
    let app = spawn_app().await;
    let created = app
        .post(
            "smsctx_smschannels",
            &json!({
                "smsctx_provider": "twilio",
                "smsctx_phonenumber": "+18005551212",
                "smsctx_secret": "12345",
                "smsctx_publicurl": "https://mycompany.com/myapp.php?foo=1&bar=2",
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];
    assert_eq!(
        twilio_signature(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params
        ),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let send = |signature: &'static str| {
        app.client
            .post(twilio_url(&app))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(body.clone())
            .send()
    };
    // Accepted as Twilio's: then refused only because a voice call is not a message.
    assert_error(
        send("RSOYDt4T1cUTdK1PDd93/VVr8B8=").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "no 'Body' parameter",
    )
    .await;
    assert_eq!(
        send("RSOYDt4T1cUTdK1PDd93/VVr8B9=").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_message_lands_once() {
    let app = spawn_app().await;
    add_twilio_channel(
        &app,
        ORG,
        json!({"smsctx_autoreply": "Thanks, we'll reply soon."}),
    )
    .await;
    let first = text_message(&app, CUSTOMER, ORG, &sid(7)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let twiml = first.text().await.unwrap();
    assert_eq!(
        twiml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Thanks, we&apos;ll reply soon.</Message></Response>"
    );
    for _ in 0..3 {
        let again = text_message(&app, CUSTOMER, ORG, &sid(7)).await;
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(again.text().await.unwrap(), twiml);
    }
    assert_eq!(contexts(&app).await.len(), 1);
    assert_eq!(conversations(&app).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_duplicate_deliveries_land_once() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    let url = twilio_url(&app);
    // Eight deliveries of one message at once, each on its own connection.
    let s = sid(42);
    let sends = (0..8).map(|_| {
        let client = reqwest::Client::new();
        let url = url.clone();
        let s = s.clone();
        async move {
            post_twilio(
                &client,
                &url,
                TOKEN_TWILIO,
                &twilio_params(CUSTOMER, ORG, &s, "dup"),
            )
            .await
            .status()
        }
    });
    let statuses = futures_join_all(sends).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(contexts(&app).await.len(), 1);
    assert_eq!(conversations(&app).await.len(), 1);

    // Eight different first messages of one new pair at once: still one context.
    let sends = (100..108).map(|n| {
        let client = reqwest::Client::new();
        let url = url.clone();
        async move {
            let s = sid(n);
            post_twilio(
                &client,
                &url,
                TOKEN_TWILIO,
                &twilio_params("+12015550124", ORG, &s, "race"),
            )
            .await
            .status()
        }
    });
    let statuses = futures_join_all(sends).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let rows = contexts(&app).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows.iter()
            .filter(|r| r["msdyn_customerphonenumber"] == "12015550124")
            .count(),
        1
    );
    assert_eq!(conversations(&app).await.len(), 2);
    app.stop().await;
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn two_org_numbers_with_one_customer_have_two_contexts() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    add_twilio_channel(&app, ORG_2, json!({})).await;
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(1)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        text_message(&app, CUSTOMER, ORG_2, &sid(2)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(3)).await.status(),
        StatusCode::OK
    );
    let rows = contexts(&app).await;
    assert_eq!(rows.len(), 2);
    let orgs: Vec<&str> = rows
        .iter()
        .map(|r| r["msdyn_orgphonenumber"].as_str().unwrap())
        .collect();
    assert!(orgs.contains(&"14252306549") && orgs.contains(&"14252306550"));
    app.stop().await;
}

#[tokio::test]
async fn national_and_international_spellings_meet_in_one_context() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    // A context created through the Web API in the stored form is found too.
    let spellings = [
        "+12015550123",
        "(201) 555-0123",
        "1 201 555 0123",
        "+1 201-555-0123",
        "011 1 201 555 0123",
    ];
    for (n, from) in spellings.iter().enumerate() {
        let response = text_message(&app, from, "+1 (425) 230-6549", &sid(n as u32 + 1)).await;
        assert_eq!(response.status(), StatusCode::OK, "{from}");
    }
    let rows = contexts(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["msdyn_customerphonenumber"], "12015550123");
    app.stop().await;
}

#[tokio::test]
async fn a_context_created_through_the_web_api_is_adopted() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    let conversation = app
        .create(
            "msdyn_ocliveworkitems",
            &json!({"subject": "made by a client"}),
        )
        .await;
    let id = app
        .create(
            CTX,
            &json!({
                "msdyn_name": "by hand",
                "msdyn_orgphonenumber": "14252306549",
                "msdyn_customerphonenumber": "12015550123",
                "msdyn_liveworkitemid@odata.bind": format!("/msdyn_ocliveworkitems({conversation})"),
            }),
        )
        .await;
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(1)).await.status(),
        StatusCode::OK
    );
    let rows = contexts(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["msdyn_smsengagementctxid"], id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn bad_webhooks_get_clear_client_errors() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    // Unknown org number: 404, nothing written.
    let unknown = text_message(&app, CUSTOMER, "+14252306599", &sid(1)).await;
    assert_error(
        unknown,
        StatusCode::NOT_FOUND,
        "0x80040217",
        "no SMS channel",
    )
    .await;
    // A malformed customer number, correctly signed: 400.
    let malformed = text_message(&app, "+1 555 555 0100", ORG, &sid(2)).await;
    assert_error(malformed, StatusCode::BAD_REQUEST, "0x80040203", "From").await;
    let letters = text_message(&app, "CALL-ME-NOW", ORG, &sid(3)).await;
    assert_eq!(letters.status(), StatusCode::BAD_REQUEST);
    // A malformed org number.
    let bad_to = text_message(&app, CUSTOMER, "12", &sid(4)).await;
    assert_error(bad_to, StatusCode::BAD_REQUEST, "0x80040203", "To").await;
    // Oversized body.
    let big = app
        .client
        .post(twilio_url(&app))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("To=%2B14252306549&Body={}", "a".repeat(70 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Not a form.
    let text = app
        .client
        .post(twilio_url(&app))
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A signed request missing MessageSid.
    let url = twilio_url(&app);
    let missing = post_twilio(
        &app.client,
        &url,
        TOKEN_TWILIO,
        &[
            ("From", CUSTOMER),
            ("To", ORG),
            ("Body", "x"),
            ("AccountSid", ACCOUNT),
        ],
    )
    .await;
    assert_error(missing, StatusCode::BAD_REQUEST, "0x80040203", "MessageSid").await;
    // Another account's message to this number.
    let s = sid(5);
    let mut params = twilio_params(CUSTOMER, ORG, &s, "x");
    params.retain(|(n, _)| *n != "AccountSid");
    params.push(("AccountSid", "AC00000000000000000000000000000000"));
    let foreign = post_twilio(&app.client, &url, TOKEN_TWILIO, &params).await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);

    assert!(contexts(&app).await.is_empty());
    assert!(conversations(&app).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_json_body_variant_is_accepted_with_its_body_hash() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    let body = json!({
        "From": CUSTOMER, "To": ORG, "Body": "json hello", "MessageSid": sid(9),
        "AccountSid": ACCOUNT, "NumMedia": "0",
    })
    .to_string();
    let hash = sha256_hex(body.as_bytes());
    let url = format!("{}?bodySHA256={hash}", twilio_url(&app));
    let send = |signature: String, body: String| {
        app.client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("X-Twilio-Signature", signature)
            .body(body)
            .send()
    };
    let tampered = send(
        twilio_signature(TOKEN_TWILIO, &url, &[]),
        body.replace("json", "JSON"),
    )
    .await
    .unwrap();
    assert_eq!(tampered.status(), StatusCode::FORBIDDEN);
    let ok = send(twilio_signature(TOKEN_TWILIO, &url, &[]), body)
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(contexts(&app).await.len(), 1);
    app.stop().await;
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn telesign_body(reference: &str, from: &str, to: &str, text: &str) -> String {
    json!({
        "reference_id": reference,
        "status": {"code": 1500, "description": "Delivered", "updated_on": "2026-11-30T14:47:10.490130Z"},
        "submit_timestamp": "2026-11-30T14:47:10.154000Z",
        "sub_resource": "mo_sms",
        "errors": {},
        "user_response": {"sender_id": to, "iso_country_code": "US", "phone_number": from, "mo_message": text},
    })
    .to_string()
}

pub(crate) async fn post_telesign(
    app: &TestApp,
    body: &str,
    authorization: &str,
) -> reqwest::Response {
    app.client
        .post(format!("{}/channels/sms/telesign", root(app)))
        .header("Content-Type", "application/json")
        .header("Authorization", authorization)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn telesign_inbound_sms_lands_on_a_context() {
    let app = spawn_app().await;
    add_telesign_channel(&app).await;
    let body = telesign_body(
        "0123456789ABCDEF0123456789ABCDEF",
        "12015550123",
        "14252306551",
        "Hello",
    );
    let auth = telesign_authorization(TS_CUSTOMER, TS_KEY, body.as_bytes());
    let response = post_telesign(&app, &body, &auth).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rows = contexts(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["msdyn_smsprovider"], 192350000);
    assert_eq!(rows[0]["msdyn_orgphonenumber"], "14252306551");
    assert_eq!(rows[0]["msdyn_customerphonenumber"], "12015550123");
    assert_eq!(
        rows[0]["msdyn_smsengagementid"],
        "0123456789ABCDEF0123456789ABCDEF"
    );

    // TeleSign retries: the same reference_id lands once.
    assert_eq!(
        post_telesign(&app, &body, &auth).await.status(),
        StatusCode::OK
    );
    // A second message reuses the context.
    let body2 = telesign_body(
        "0123456789ABCDEF0123456789ABCDE2",
        "12015550123",
        "14252306551",
        "Again",
    );
    let auth2 = telesign_authorization(TS_CUSTOMER, TS_KEY, body2.as_bytes());
    assert_eq!(
        post_telesign(&app, &body2, &auth2).await.status(),
        StatusCode::OK
    );
    assert_eq!(contexts(&app).await.len(), 1);
    assert_eq!(conversations(&app).await.len(), 1);

    // A wrong signature, another customer id, a tampered body: 403, nothing written.
    let body3 = telesign_body(
        "0123456789ABCDEF0123456789ABCDE3",
        "12015550199",
        "14252306551",
        "x",
    );
    let other_key = b64(b"another key entirely");
    for auth in [
        telesign_authorization(TS_CUSTOMER, &other_key, body3.as_bytes()),
        telesign_authorization(
            "FFFFFFFF-EEEE-DDDD-1234-AB1234567891",
            TS_KEY,
            body3.as_bytes(),
        ),
        telesign_authorization(TS_CUSTOMER, TS_KEY, body.as_bytes()),
        String::new(),
    ] {
        let refused = post_telesign(&app, &body3, &auth).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{auth}");
    }
    assert_eq!(contexts(&app).await.len(), 1);

    // Only X-TS-Authorization (the bare signature): accepted; a wrong one is not.
    let body4 = telesign_body(
        "0123456789ABCDEF0123456789ABCDE4",
        "12015550123",
        "14252306551",
        "x-ts",
    );
    let signature = telesign_authorization(TS_CUSTOMER, TS_KEY, body4.as_bytes())
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let x_ts = |signature: &str| {
        app.client
            .post(format!("{}/channels/sms/telesign", root(&app)))
            .header("Content-Type", "application/json")
            .header("X-TS-Authorization", signature.to_owned())
            .body(body4.clone())
            .send()
    };
    assert_eq!(
        x_ts(&other_key).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(x_ts(&signature).await.unwrap().status(), StatusCode::OK);
    assert_eq!(contexts(&app).await.len(), 1);

    // A delivery report on the same URL is acknowledged (TeleSign would retry anything else)
    // once its signature holds, and changes nothing.
    let report = r#"{"reference_id":"B56259E45884010488343BAA15FB0002","status":{"code":200,"description":"Delivered to handset"}}"#;
    let ok = post_telesign(
        &app,
        report,
        &telesign_authorization(TS_CUSTOMER, TS_KEY, report.as_bytes()),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let forged = post_telesign(
        &app,
        report,
        &telesign_authorization(TS_CUSTOMER, &other_key, report.as_bytes()),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // Garbage JSON: 400.
    assert_eq!(
        post_telesign(&app, "{", "TSA x:y").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(contexts(&app).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn channels_are_managed_through_the_web_api_and_secrets_never_read_back() {
    let app = spawn_app().await;
    let created = add_twilio_channel(
        &app,
        "+1 425 230 6549",
        json!({"smsctx_name": "Support line"}),
    )
    .await;
    let id = created["smsctx_smschannelid"].as_str().unwrap().to_owned();
    assert_eq!(created["smsctx_phonenumber"], "14252306549");
    assert_eq!(created["smsctx_provider"], "twilio");
    assert_eq!(created["smsctx_name"], "Support line");
    assert_eq!(created["smsctx_secret"], "****b1a0");

    let list = app.get("smsctx_smschannels").send().await.unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let text = list.text().await.unwrap();
    assert!(!text.contains(TOKEN_TWILIO), "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let one = app
        .get(&format!("smsctx_smschannels({id})"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    assert!(!one.text().await.unwrap().contains(TOKEN_TWILIO));

    // One number, one channel, whatever its spelling.
    let again = app
        .post(
            "smsctx_smschannels",
            &json!({"smsctx_provider": "twilio", "smsctx_phonenumber": "14252306549", "smsctx_secret": "x"}),
        )
        .send()
        .await
        .unwrap();
    assert_error(
        again,
        StatusCode::PRECONDITION_FAILED,
        "0x80040237",
        "already exists",
    )
    .await;

    // Rotating the token: the new one checks signatures, the old one no longer does.
    let rotated = app
        .patch(
            &format!("smsctx_smschannels({id})"),
            &json!({"smsctx_secret": "the-new-auth-token-5678", "smsctx_autoreply": "Hi"}),
        )
        .header("Prefer", "return=representation")
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    assert_eq!(rotated["smsctx_secret"], "****5678");
    assert_eq!(rotated["smsctx_autoreply"], "Hi");
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(1)).await.status(),
        StatusCode::FORBIDDEN
    );
    let url = twilio_url(&app);
    let s = sid(2);
    let ok = post_twilio(
        &app.client,
        &url,
        "the-new-auth-token-5678",
        &twilio_params(CUSTOMER, ORG, &s, "x"),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);

    // Bad input.
    for (body, part) in [
        (
            json!({"smsctx_provider": "infobip", "smsctx_phonenumber": ORG_2, "smsctx_secret": "x"}),
            "provider",
        ),
        (
            json!({"smsctx_provider": "twilio", "smsctx_phonenumber": "425 230 6550", "smsctx_secret": "x"}),
            "country calling code",
        ),
        (
            json!({"smsctx_provider": "twilio", "smsctx_phonenumber": ORG_2}),
            "smsctx_secret",
        ),
        (
            json!({"smsctx_provider": "telesign", "smsctx_phonenumber": ORG_2, "smsctx_secret": "not base64!", "smsctx_account": "x"}),
            "base64",
        ),
        (
            json!({"smsctx_provider": "telesign", "smsctx_phonenumber": ORG_2, "smsctx_secret": TS_KEY}),
            "customer id",
        ),
        (
            json!({"smsctx_provider": "twilio", "smsctx_phonenumber": ORG_2, "smsctx_secret": "x", "smsctx_publicurl": "ftp://x"}),
            "URL",
        ),
        (
            json!({"smsctx_provider": "twilio", "smsctx_phonenumber": ORG_2, "smsctx_secret": "x", "smsctx_defaultownerid@odata.bind": format!("/teams({})", uuid::Uuid::new_v4())}),
            "does not exist",
        ),
    ] {
        let refused = app.post("smsctx_smschannels", &body).send().await.unwrap();
        assert_error(refused, StatusCode::BAD_REQUEST, "0x80040203", part).await;
    }
    let unknown = app
        .post("smsctx_smschannels", &json!({"smsctx_provider": "twilio", "smsctx_phonenumber": ORG_2, "smsctx_secret": "x", "color": "red"}))
        .send()
        .await
        .unwrap();
    assert_error(unknown, StatusCode::BAD_REQUEST, "0x80048d19", "color").await;
    let fixed = app
        .patch(
            &format!("smsctx_smschannels({id})"),
            &json!({"smsctx_phonenumber": ORG_2}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(fixed.status(), StatusCode::BAD_REQUEST);
    // A bearer token is required.
    let anonymous = app
        .client
        .get(app.url("smsctx_smschannels"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let deleted = app
        .delete(&format!("smsctx_smschannels({id})"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app
        .get(&format!("smsctx_smschannels({id})"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    // The internal tables are no Web API entity sets.
    let hidden = app.get("smsctx_smsdeliveries").send().await.unwrap();
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_channels_default_owner_team_owns_what_it_opens() {
    let app = spawn_app().await;
    let team = app.create("teams", &json!({"name": "SMS queue"})).await;
    add_twilio_channel(
        &app,
        ORG,
        json!({"smsctx_defaultownerid@odata.bind": format!("/teams({team})")}),
    )
    .await;
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(1)).await.status(),
        StatusCode::OK
    );
    let row = &contexts(&app).await[0];
    assert_eq!(row["_ownerid_value"], team.as_str());
    let conversation = app
        .get_json(&format!(
            "msdyn_ocliveworkitems({})",
            row["_msdyn_liveworkitemid_value"].as_str().unwrap()
        ))
        .await;
    assert_eq!(conversation["_ownerid_value"], team.as_str());
    app.stop().await;
}

/// A request the fake provider saw: request line, Authorization, Content-Type, body.
pub(crate) type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A fake provider on 127.0.0.1: records each request and answers with `answer`.
pub(crate) struct FakeProvider {
    pub(crate) base: String,
    pub(crate) seen: Seen,
}

pub(crate) async fn fake_provider(status: u16, answer: Value) -> FakeProvider {
    use axum::extract::Request;
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |request: Request| {
        let record = Arc::clone(&record);
        let answer = answer.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            record.lock().unwrap().push((
                format!("{} {}", parts.method, parts.uri.path()),
                header("authorization"),
                header("content-type"),
                String::from_utf8(body.to_vec()).unwrap(),
            ));
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                answer.to_string(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    FakeProvider { base, seen }
}

pub(crate) fn send_sms_path(id: &str) -> String {
    format!("{CTX}({id})/Microsoft.Dynamics.CRM.smsctx_SendSms")
}

#[tokio::test]
async fn outbound_sms_goes_through_twilios_messages_api() {
    let app = spawn_app().await;
    let provider = fake_provider(
        201,
        json!({"sid": "SM99999999999999999999999999999999", "status": "queued"}),
    )
    .await;
    add_twilio_channel(&app, ORG, json!({"smsctx_apibaseurl": provider.base})).await;
    assert_eq!(
        text_message(&app, CUSTOMER, ORG, &sid(1)).await.status(),
        StatusCode::OK
    );
    let id = contexts(&app).await[0]["msdyn_smsengagementctxid"]
        .as_str()
        .unwrap()
        .to_owned();

    let sent = app
        .post(
            &send_sms_path(&id),
            &json!({"Message": "We're on it & will call."}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    let sent: Value = sent.json().await.unwrap();
    assert_eq!(sent["MessageId"], "SM99999999999999999999999999999999");
    assert_eq!(sent["Provider"], "Twilio");

    let seen = provider.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (line, auth, content_type, body) = &seen[0];
    assert_eq!(
        line,
        &format!("POST /2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    assert_eq!(
        auth,
        &format!(
            "Basic {}",
            b64(format!("{ACCOUNT}:{TOKEN_TWILIO}").as_bytes())
        )
    );
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        form,
        vec![
            ("To".to_owned(), CUSTOMER.to_owned()),
            ("From".to_owned(), ORG.to_owned()),
            ("Body".to_owned(), "We're on it & will call.".to_owned()),
            (
                "StatusCallback".to_owned(),
                format!("{}/status", twilio_url(&app)),
            ),
        ]
    );

    // Refusals: no bearer token, an unknown context, a bad parameter.
    let anonymous = app
        .client
        .post(app.url(&send_sms_path(&id)))
        .json(&json!({"Message": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let unknown = app
        .post(
            &send_sms_path(&uuid::Uuid::new_v4().to_string()),
            &json!({"Message": "x"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let empty = app
        .post(&send_sms_path(&id), &json!({"Message": " "}))
        .send()
        .await
        .unwrap();
    assert_error(empty, StatusCode::BAD_REQUEST, "0x80040203", "empty").await;
    let odd = app
        .post(&send_sms_path(&id), &json!({"Text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), StatusCode::BAD_REQUEST);
    assert_eq!(provider.seen.lock().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn outbound_sms_goes_through_telesigns_sms_api_and_provider_errors_are_reported() {
    let app = spawn_app().await;
    let provider = fake_provider(200, json!({"reference_id": "0123456789ABCDEF0123456789ABCDEF", "status": {"code": 290, "description": "Message in progress"}})).await;
    add_telesign_channel(&app).await;
    let channel = app.get_json("smsctx_smschannels").await["value"][0]["smsctx_smschannelid"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = app
        .patch(
            &format!("smsctx_smschannels({channel})"),
            &json!({"smsctx_apibaseurl": provider.base}),
        )
        .send()
        .await
        .unwrap();
    // As every table's PATCH: 204 and the record's URL.
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    assert!(patched.headers()["OData-EntityId"]
        .to_str()
        .unwrap()
        .ends_with(&format!("smsctx_smschannels({channel})")));
    let body = telesign_body(
        "0123456789ABCDEF0123456789ABCDEF",
        "12015550123",
        "14252306551",
        "Hello",
    );
    let auth = telesign_authorization(TS_CUSTOMER, TS_KEY, body.as_bytes());
    assert_eq!(
        post_telesign(&app, &body, &auth).await.status(),
        StatusCode::OK
    );
    let id = contexts(&app).await[0]["msdyn_smsengagementctxid"]
        .as_str()
        .unwrap()
        .to_owned();

    let sent = app
        .post(&send_sms_path(&id), &json!({"Message": "Hello back"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    let sent: Value = sent.json().await.unwrap();
    assert_eq!(sent["MessageId"], "0123456789ABCDEF0123456789ABCDEF");
    let seen = provider.seen.lock().unwrap().clone();
    let (line, auth, content_type, body) = &seen[0];
    assert_eq!(line, "POST /v1/messaging");
    assert_eq!(
        auth,
        &format!(
            "Basic {}",
            b64(format!("{TS_CUSTOMER}:{TS_KEY}").as_bytes())
        )
    );
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    assert_eq!(
        body,
        "phone_number=12015550123&message=Hello+back&message_type=ARN"
    );

    // The provider refuses: 502 in Dataverse's error shape, with the provider's reason.
    let refusing = fake_provider(
        401,
        json!({"status": {"code": 10033, "description": "Invalid Customer ID"}}),
    )
    .await;
    app.patch(
        &format!("smsctx_smschannels({channel})"),
        &json!({"smsctx_apibaseurl": refusing.base}),
    )
    .send()
    .await
    .unwrap();
    let failed = app
        .post(&send_sms_path(&id), &json!({"Message": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(
        failed,
        StatusCode::BAD_GATEWAY,
        "0x80040216",
        "Invalid Customer ID",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_cli_adds_and_lists_channels_with_masked_secrets() {
    // The CLI works on a store the server created (it refuses a SQLite file that does not exist).
    let db = spawn_app().await.stop().await;
    let bin = env!("CARGO_BIN_EXE_smsctx");
    let add = std::process::Command::new(bin)
        .args([
            "channel",
            "add",
            "--database",
            &db.url,
            "--provider",
            "twilio",
            "--number",
            ORG,
            "--secret",
            TOKEN_TWILIO,
            "--account",
            ACCOUNT,
            "--public-url",
            "https://sms.example.com/channels/sms/twilio",
        ])
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let out = String::from_utf8(add.stdout).unwrap();
    assert!(
        out.contains("added Twilio channel") && out.contains("****b1a0"),
        "{out}"
    );
    assert!(!out.contains(TOKEN_TWILIO));
    let again = std::process::Command::new(bin)
        .args([
            "channel",
            "add",
            "--database",
            &db.url,
            "--provider",
            "twilio",
            "--number",
            ORG,
            "--secret",
            "x",
            "--account",
            ACCOUNT,
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let list = std::process::Command::new(bin)
        .args(["channel", "list", "--database", &db.url])
        .output()
        .unwrap();
    assert!(list.status.success());
    let out = String::from_utf8(list.stdout).unwrap();
    assert!(
        out.contains("+14252306549") && out.contains("1 channel(s)"),
        "{out}"
    );
    assert!(!out.contains(TOKEN_TWILIO));

    // The server on that store uses the channel.
    let app = spawn_app_in(db).await;
    let channels = app.get_json("smsctx_smschannels").await;
    assert_eq!(
        channels["value"][0]["smsctx_publicurl"],
        "https://sms.example.com/channels/sms/twilio"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_webhooks_are_rate_limited_per_peer() {
    let db = TestDatabase::new().await;
    let mut config = common::config(&db);
    config.sms_rate_limit = 2;
    let app = smsctx::app::Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    // Twenty unsigned requests at once from one peer, with bursts of two allowed: most are
    // refused with 429 before anything is read; the others reach the signature check.
    let client = reqwest::Client::new();
    let sends = (0..20).map(|_| {
        let client = client.clone();
        let url = format!("{base}/channels/sms/twilio");
        async move {
            client
                .post(url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("To=%2B14252306549")
                .send()
                .await
                .unwrap()
        }
    });
    let responses = futures_join_all(sends).await;
    let limited: Vec<_> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(limited.len() >= 5, "{} of 20 limited", limited.len());
    assert_eq!(limited[0].headers()["retry-after"], "1");
    assert!(responses.iter().all(
        |r| r.status() == StatusCode::TOO_MANY_REQUESTS || r.status() == StatusCode::NOT_FOUND
    ));
    // The Web API is not limited.
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Starts one more server (a second node) on an existing database; returns its root URL and a
/// handle that stops it.
pub(crate) async fn spawn_node(db: &TestDatabase) -> (String, tokio::sync::oneshot::Sender<()>) {
    let app = smsctx::app::Application::build(common::config(db))
        .await
        .unwrap();
    let root = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    (root, stop)
}

#[tokio::test]
async fn duplicates_racing_on_two_nodes_land_once() {
    if postgres_admin_url().is_none() {
        eprintln!("note: set {POSTGRES_ENV} to run the two-node SMS test (one SQLite file serves one process)");
        return;
    }
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    let (other, stop) = spawn_node(&app.db).await;
    // The channel's public URL names node 1; node 2 checks the same signature (as behind a
    // load balancer, where both see the public URL).
    let url = twilio_url(&app);
    let nodes = [root(&app), other];
    for round in 0..5u32 {
        let s = sid(1000 + round);
        let customer = format!("+1201555{:04}", 123 + round);
        let sends = (0..8).map(|k| {
            let client = reqwest::Client::new();
            let target = format!("{}/channels/sms/twilio", nodes[k % 2]);
            let (url, s, customer) = (url.clone(), s.clone(), customer.clone());
            async move {
                let params = twilio_params(&customer, ORG, &s, "two nodes");
                let body = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&params)
                    .finish();
                client
                    .post(target)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .header(
                        "X-Twilio-Signature",
                        twilio_signature(TOKEN_TWILIO, &url, &params),
                    )
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        });
        let statuses = futures_join_all(sends).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
    }
    assert_eq!(contexts(&app).await.len(), 5);
    assert_eq!(conversations(&app).await.len(), 5);
    let _ = stop.send(());
    app.stop().await;
}

/// Sets when the delivery of `message_id` was recorded, `days` ago.
async fn age_delivery(db: &TestDatabase, message_id: &str, days: i64) {
    let when = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - days * 86_400)
        .to_string();
    let statement = if db.is_postgres() {
        "UPDATE smsctx_smsdelivery SET createdon = to_timestamp(?1::text::bigint) WHERE smsctx_messageid = ?2"
    } else {
        "UPDATE smsctx_smsdelivery SET createdon = ?1 WHERE smsctx_messageid = ?2"
    };
    assert_eq!(execute_sql(db, statement, &[&when, message_id]).await, 1);
}

async fn deliveries(db: &TestDatabase, message_id: &str) -> u64 {
    // An UPDATE that changes nothing counts the matching rows on both backends.
    execute_sql(
        db,
        "UPDATE smsctx_smsdelivery SET smsctx_messageid = smsctx_messageid WHERE smsctx_messageid = ?1",
        &[message_id],
    )
    .await
}

#[tokio::test]
async fn deliveries_past_retention_are_deleted_and_replays_inside_it_still_land_once() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    for n in [1, 2] {
        let response = text_message(&app, CUSTOMER, ORG, &sid(n)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The channel's public URL (what Twilio signs) names the first server's port.
    let public_url = twilio_url(&app);
    let db = app.stop().await;
    // One delivery from 40 days ago, one from 20: the default retention is 30 days.
    age_delivery(&db, &sid(1), 40).await;
    age_delivery(&db, &sid(2), 20).await;
    let app = spawn_app_in(db).await;
    // The retention task runs at start, in the background.
    let mut left = 1;
    for _ in 0..100 {
        left = deliveries(&app.db, &sid(1)).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the delivery past retention is deleted");
    assert_eq!(
        deliveries(&app.db, &sid(2)).await,
        1,
        "the one inside it stays"
    );
    // A provider's retry of the message inside the window is still a replay.
    let contexts_before = contexts(&app).await.len();
    let replayed = sid(2);
    let params = twilio_params(CUSTOMER, ORG, &replayed, "Hello, I need help");
    let again = app
        .client
        .post(twilio_url(&app))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header(
            "X-Twilio-Signature",
            twilio_signature(TOKEN_TWILIO, &public_url, &params),
        )
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(deliveries(&app.db, &sid(2)).await, 1);
    assert_eq!(contexts(&app).await.len(), contexts_before);
    app.stop().await;
}

#[tokio::test]
async fn a_signed_telesign_callback_of_the_wrong_shape_is_a_400_and_writes_nothing() {
    let app = spawn_app().await;
    add_telesign_channel(&app).await;
    for body in [
        "{}".to_string(),
        json!({"to": TS_ORG, "from": "12015550123", "message": "Hello"}).to_string(),
        json!({"reference_id": "0123456789ABCDEF0123456789ABCDEF"}).to_string(),
    ] {
        let auth = telesign_authorization(TS_CUSTOMER, TS_KEY, body.as_bytes());
        let response = post_telesign(&app, &body, &auth).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("user_response"),
            "{error}"
        );
    }
    // A delivery report (reference_id and status) is still acknowledged.
    let report = json!({"reference_id": "0123456789ABCDEF0123456789ABCDEF",
        "status": {"code": 200, "description": "Delivered to handset"}})
    .to_string();
    let auth = telesign_authorization(TS_CUSTOMER, TS_KEY, report.as_bytes());
    assert_eq!(
        post_telesign(&app, &report, &auth).await.status(),
        StatusCode::OK
    );
    assert!(contexts(&app).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_channel_table_is_in_the_service_document_and_metadata() {
    let app = spawn_app().await;
    let document = app.get_json("").await;
    assert!(
        document["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|set| set["name"] == "smsctx_smschannels" && set["kind"] == "EntitySet"),
        "{document}"
    );
    let metadata = app
        .get("$metadata")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metadata.contains(r#"<EntitySet Name="smsctx_smschannels""#),
        "the CSDL names the set"
    );
    assert!(metadata.contains(r#"<EntityType Name="smsctx_smschannel""#));
    // The internal delivery table is not served, nor described.
    assert!(!metadata.contains("smsctx_smsdelivery"));
    app.stop().await;
}
