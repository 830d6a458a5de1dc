//! Durability: a 2xx means the write is on disk. Restarts keep every row; `kill -9` right after
//! acknowledged writes loses none of them; SIGTERM lets in-flight requests finish.

use crate::common;

use std::process::Command;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn rows_survive_a_restart() {
    let app = spawn_app().await;
    let id = app.create(CTX, &json!({"msdyn_name": "persisted"})).await;
    let admin_before = app.get_json("systemusers").await["value"].clone();
    let db = app.stop().await;

    let app = spawn_app_in(db).await;
    assert_eq!(app.get_json(&ctx(&id)).await["msdyn_name"], "persisted");
    assert_eq!(
        app.get_json("systemusers").await["value"],
        admin_before,
        "seeding runs once"
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let db = TestDatabase::new().await;
    let mut server = start_server(&db.url, &[]);
    let client = reqwest::Client::new();
    let url = format!("{}{CTX}", server.base);

    // Concurrent writers, so several writes share a commit; every 204 is remembered.
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..25 {
                let response = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"msdyn_name": format!("w{writer} n{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::NO_CONTENT);
                acknowledged.push(entity_id(&response));
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    // SIGKILL immediately after the last acknowledgement: no chance to flush anything.
    server.child.kill().expect("SIGKILL is delivered");
    server.child.wait().unwrap();

    let mut server = start_server(&db.url, &[]);
    for id in &acknowledged {
        let response = client
            .get(format!("{}{}", server.base, ctx(id)))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "acknowledged row {id} is on disk"
        );
    }
    let count = client
        .get(format!("{}{CTX}/$count", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, acknowledged.len().to_string());
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let db = TestDatabase::new().await;
    let mut server = start_server(&db.url, &[]);
    let client = reqwest::Client::new();
    let url = format!("{}{CTX}", server.base);
    let mut tasks = Vec::new();
    for n in 0..32 {
        let request = client
            .post(&url)
            .bearer_auth(TOKEN)
            .json(&json!({"msdyn_name": format!("in flight {n}")}));
        tasks.push(tokio::spawn(async move { request.send().await }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut completed = 0;
    for task in tasks {
        // A request the server had accepted completes with 204; one that arrived after the
        // listener closed fails to connect. None is cut off with an error status.
        if let Ok(response) = task.await.unwrap() {
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
            completed += 1;
        }
    }
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "a graceful shutdown exits 0: {exit:?}");

    let mut server = start_server(&db.url, &[]);
    let count: usize = client
        .get(format!("{}{CTX}/$count", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        count >= completed,
        "every completed create is stored ({count} >= {completed})"
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
