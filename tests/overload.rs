//! Overload: with one reader connection and a queue of one, a burst of slow reads gets some
//! fast 503s with `Retry-After` in Dataverse's error shape, every other read succeeds, no other
//! 5xx appears, the threads stay bounded, and the server serves again once the burst is over.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const SET: &str = "msdyn_smsengagementctxes";

/// Rows to read per request: enough that one read takes a while, so a burst overlaps.
const ROWS: usize = 300;

/// Concurrent requests per burst, and bursts at most.
const BURST: usize = 64;
const ROUNDS: usize = 20;

/// The threads of this process (the server runs in it).
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_and_nothing_else_fails() {
    let db = TestDatabase::new().await;
    let mut config = config(&db);
    config.pool_size = 1;
    config.capacity.readers = 1;
    config.capacity.queue = 1;
    let app = spawn_app_with(db, config).await;

    // One at a time: a create reads too, and the queue of one is not there to absorb a burst.
    // The server's own system-job worker (a pass at start, then every few seconds) shares the
    // one connection, so a create that meets its pass may be told to retry: it does, after
    // Retry-After, as a client would. Any other answer fails the test.
    for i in 0..ROWS {
        let body = json!({
            "msdyn_customerphonenumber": format!("1555{i:07}"),
            "msdyn_orgphonenumber": "14255550100",
        });
        let mut tries = 0;
        loop {
            let response = app
                .post(SET, &body)
                .send()
                .await
                .expect("the request is sent");
            match response.status() {
                StatusCode::NO_CONTENT => break,
                StatusCode::SERVICE_UNAVAILABLE if tries < 20 => {
                    assert!(response.headers().contains_key("retry-after"));
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                status => panic!(
                    "create {i}: {status} {}",
                    response.text().await.unwrap_or_default()
                ),
            }
        }
    }

    let threads_before = threads();
    let (mut ok, mut busy) = (0, 0);
    for _ in 0..ROUNDS {
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..BURST {
            burst.spawn(
                app.get(&format!("{SET}?$select=msdyn_customerphonenumber"))
                    .send(),
            );
        }
        for response in burst.join_all().await {
            let response = response.expect("the request is answered");
            match response.status() {
                StatusCode::OK => ok += 1,
                StatusCode::SERVICE_UNAVAILABLE => {
                    let retry_after = response
                        .headers()
                        .get("Retry-After")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    assert!(
                        retry_after.is_some_and(|s| s >= 1),
                        "Retry-After in seconds"
                    );
                    let body: serde_json::Value = response.json().await.expect("a JSON body");
                    assert_eq!(body["error"]["code"], "0x80072326", "{body}");
                    assert!(
                        body["error"]["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("busy")),
                        "{body}"
                    );
                    busy += 1;
                }
                other => panic!(
                    "a read under overload answered {other}: {}",
                    response.text().await.unwrap_or_default()
                ),
            }
        }
        if busy > 0 && ok > 0 {
            break;
        }
    }
    assert!(
        busy > 0,
        "no burst of {BURST} slow reads filled a queue of one"
    );
    assert!(ok > 0, "no read was served");
    // One reader slot: reads never hold more than one blocking thread, whatever the burst.
    let threads_after = threads();
    assert!(
        threads_after <= threads_before + 8,
        "threads grew from {threads_before} to {threads_after} under the burst"
    );

    let page = app.get_json(&format!("{SET}?$count=true&$top=1")).await;
    assert_eq!(page["@odata.count"], ROWS, "served again after the burst");
    app.stop().await;
}
