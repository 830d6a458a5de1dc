//! HTTPS: the server's own TLS listener (rustls; HTTP/1.1 and HTTP/2 by ALPN) with a
//! development certificate, and the scheme of the URLs it writes (also behind a proxy).

use crate::common;

use common::*;
use reqwest::{StatusCode, Version};
use serde_json::{json, Value};

fn context() -> Value {
    json!({"msdyn_name": "over tls", "msdyn_customerphonenumber": "14255550100"})
}

#[tokio::test]
async fn http1_and_h2_over_tls_write_https_urls() {
    let app = spawn_tls_app().await;
    let ca = app.ca.clone().expect("a TLS app has a CA");
    assert!(app.base.starts_with("https://127.0.0.1:"), "{}", app.base);

    // HTTP/1.1 only: a create answers with an https OData-EntityId.
    let h1 = tls_client(&ca, Some(Version::HTTP_11));
    let created = h1
        .post(app.url(CTX))
        .bearer_auth(TOKEN)
        .json(&context())
        .send()
        .await
        .expect("an HTTP/1.1 request over TLS");
    assert_eq!(created.version(), Version::HTTP_11);
    assert_eq!(created.status(), StatusCode::NO_CONTENT);
    let location = created.headers()["OData-EntityId"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        location.starts_with(&app.base),
        "{location} under {}",
        app.base
    );
    let id = entity_id(&created);

    // HTTP/2 only (ALPN h2): the row reads back, its context URL is https.
    let h2 = tls_client(&ca, Some(Version::HTTP_2));
    let read = h2
        .get(app.url(&ctx(&id)))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("an HTTP/2 request over TLS");
    assert_eq!(read.version(), Version::HTTP_2);
    assert_eq!(read.status(), StatusCode::OK);
    let body: Value = read.json().await.unwrap();
    assert_eq!(body["msdyn_name"], "over tls");
    let context_url = body["@odata.context"].as_str().unwrap();
    assert!(context_url.starts_with(&app.base), "{context_url}");

    // A client offering both gets h2, and several requests share the connection.
    for _ in 0..3 {
        let response = app.get(CTX).send().await.unwrap();
        assert_eq!(response.version(), Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_or_speaks_plain_http_gets_nothing() {
    let app = spawn_tls_app().await;
    // The platform roots do not include the development CA.
    let untrusting = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    let refused = untrusting.get(app.url(CTX)).bearer_auth(TOKEN).send().await;
    assert!(refused.is_err(), "an unknown CA must fail the handshake");
    // Plain HTTP to the TLS port: no HTTP response at all.
    let plain = app.base.replacen("https://", "http://", 1);
    let refused = reqwest::Client::new()
        .get(format!("{plain}{CTX}"))
        .bearer_auth(TOKEN)
        .send()
        .await;
    assert!(refused.is_err(), "plain HTTP on the TLS port: {refused:?}");
    // The server still serves trusted clients afterwards.
    assert_eq!(app.get(CTX).send().await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn x_forwarded_proto_names_the_scheme_behind_a_proxy() {
    // Plain HTTP behind a TLS-terminating proxy: the proxy's header decides.
    let app = spawn_app().await;
    let created = app
        .post(CTX, &context())
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::NO_CONTENT);
    let location = created.headers()["OData-EntityId"].to_str().unwrap();
    assert!(location.starts_with("https://127.0.0.1:"), "{location}");
    let created = app.post(CTX, &context()).send().await.unwrap();
    let location = created.headers()["OData-EntityId"].to_str().unwrap();
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    app.stop().await;

    // The TLS listener behind a proxy that says the client used http: the header still decides.
    let app = spawn_tls_app().await;
    let listed: Value = app
        .get(CTX)
        .header("X-Forwarded-Proto", "http")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let context_url = listed["@odata.context"].as_str().unwrap();
    assert!(
        context_url.starts_with("http://127.0.0.1:"),
        "{context_url}"
    );
    app.stop().await;
}

#[tokio::test]
async fn unusable_certificate_files_stop_the_start_with_a_clear_error() {
    let db = TestDatabase::new().await;
    let cert = smsctx::tls::dev_cert(&db.dir.path().join("tls"), &[], 1).unwrap();
    let mut config = config(&db);
    config.tls = Some(smsctx::tls::TlsFiles {
        cert: cert.cert.clone(),
        key: db.dir.path().join("missing-key.pem"),
    });
    let error = smsctx::app::Application::build(config.clone())
        .await
        .err()
        .expect("a missing key file is refused");
    assert!(error.to_string().contains("missing-key.pem"), "{error}");
    config.tls = Some(smsctx::tls::TlsFiles {
        cert: cert.key,
        key: cert.cert,
    });
    let error = smsctx::app::Application::build(config)
        .await
        .err()
        .expect("swapped files are refused");
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
}
