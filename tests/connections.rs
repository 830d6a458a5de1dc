//! Slow and abusive clients, over raw TCP: a request head that never completes, a body that
//! trickles, an idle keep-alive connection, and more connections than `--max-connections`.
//! Each limit is set small here; the defaults (README) are far above what tests and benchmarks
//! need.

use crate::common;

use std::time::Duration;

use common::*;
use smsctx::listen::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough that a limit which does not work shows as a failure, not a slow pass.
const PATIENCE: Duration = Duration::from_secs(10);

async fn app_with(limits: ConnectionLimits) -> TestApp {
    let db = TestDatabase::new().await;
    let mut config = config(&db);
    config.connections = limits;
    spawn_app_with(db, config).await
}

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        max_connections: 100,
        header_timeout: Duration::from_millis(400),
        body_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(800),
    }
}

/// `host:port` of the server's base URL.
fn address(app: &TestApp) -> String {
    let after_scheme = app.base.split_once("://").expect("a URL").1;
    after_scheme.split('/').next().unwrap().to_string()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(address(app))
        .await
        .expect("the server accepts")
}

/// Reads until the server closes the connection (or `PATIENCE` passes: then panics).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open; it sent: {}",
        String::from_utf8_lossy(&seen)
    );
    String::from_utf8_lossy(&seen).into_owned()
}

/// Reads one response to a `GET /health` (a small, fixed body) without waiting for a close.
async fn read_health(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while !String::from_utf8_lossy(&seen).contains(r#"{"status":"ok"}"#) {
            let n = stream.read(&mut buf).await.expect("a response");
            assert!(n > 0, "closed before the response");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a response in time");
    String::from_utf8_lossy(&seen).into_owned()
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test]
async fn a_request_head_that_never_completes_is_closed_and_others_are_served() {
    let app = app_with(limits()).await;
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    // Keep trickling inside the head: bytes arriving do not extend the head's deadline.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow.write_all(b"a").await.is_err() {
            break;
        }
    }
    let sent = read_to_close(&mut slow).await;
    assert!(
        sent.is_empty(),
        "no response to a head never finished: {sent}"
    );

    let mut other = connect(&app).await;
    other.write_all(HEALTH).await.unwrap();
    let response = read_health(&mut other).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn a_body_that_trickles_gets_408_in_dataverse_shape_and_nothing_is_written() {
    let app = app_with(limits()).await;
    let mut stream = connect(&app).await;
    let body = br#"{"msdyn_name":"never arrives"}"#;
    let head = format!(
        "POST /api/data/v9.2/{CTX} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len() + 100
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let sent = read_to_close(&mut stream).await;
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(sent.contains(r#""code":"0x80040216""#), "{sent}");
    assert!(sent.contains("did not arrive within"), "{sent}");

    let count = app.get(&format!("{CTX}/$count")).send().await.unwrap();
    assert_eq!(count.text().await.unwrap(), "0");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let app = app_with(limits()).await;
    let mut stream = connect(&app).await;
    // Requests closer together than the idle timeout keep the connection.
    for _ in 0..4 {
        stream.write_all(HEALTH).await.unwrap();
        let response = read_health(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Then silence: the server closes it.
    let rest = read_to_close(&mut stream).await;
    assert!(rest.is_empty(), "{rest}");
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_until_one_closes() {
    let app = app_with(ConnectionLimits {
        max_connections: 2,
        header_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
    })
    .await;
    let mut first = connect(&app).await;
    let mut second = connect(&app).await;
    for stream in [&mut first, &mut second] {
        stream.write_all(HEALTH).await.unwrap();
        read_health(stream).await;
    }
    // A third connection is not served while two are open.
    let mut third = connect(&app).await;
    third.write_all(HEALTH).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "served past the cap: {early:?}");
    // One closes: the third is served.
    drop(first);
    let response = read_health(&mut third).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn a_silent_tls_connection_is_closed() {
    let db = TestDatabase::new().await;
    let cert = smsctx::tls::dev_cert(&db.dir.path().join("tls"), &[], 1).unwrap();
    let mut config = config(&db);
    config.tls = Some(smsctx::tls::TlsFiles {
        cert: cert.cert,
        key: cert.key,
    });
    config.connections = limits();
    let app = spawn_app_with(db, config).await;
    let mut silent = connect(&app).await;
    // Half a TLS record header, then nothing.
    silent.write_all(&[0x16, 0x03]).await.unwrap();
    read_to_close(&mut silent).await;
}
