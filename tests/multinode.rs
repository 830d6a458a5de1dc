//! Several nodes, one database: two `smsctx serve` processes on one PostgreSQL database, with
//! clients spread across both. ETag-guarded updates racing on one row yield exactly one 2xx per
//! round and 412 for the rest; read-modify-write loops lose no update; a node killed with
//! SIGKILL mid-load leaves every acknowledged write in place while the other keeps serving.
//!
//! PostgreSQL only: without `SMSCTX_TEST_POSTGRES` each test prints a note and does nothing
//! (`scripts/test.sh` always sets it).

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// One `smsctx serve` process; killed when dropped.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn start(database: &str) -> Node {
        Node::start_with(database, &[])
    }

    fn start_with(database: &str, extra: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_smsctx"))
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-token", TOKEN])
            .args(["--database", database, "--pool-size", "16"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("the server prints its address")
                .expect("stdout is readable");
            if let Some(rest) = line.strip_prefix("smsctx: listening on ") {
                break rest.trim().to_string();
            }
        };
        Node { child, base }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two nodes started at the same moment on a fresh database (both migrate and seed it).
async fn two_nodes(db: &TestDatabase) -> [Node; 2] {
    let first = {
        let url = db.url.clone();
        std::thread::spawn(move || Node::start(&url))
    };
    let second = Node::start(&db.url);
    [first.join().expect("the first node starts"), second]
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The database to run on, or `None` after printing why the test does not run.
async fn postgres_database(test: &str) -> Option<TestDatabase> {
    if postgres_admin_url().is_none() {
        // Past the test harness's output capture, so the skip is seen in every run.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: {test} needs {POSTGRES_ENV} (scripts/test.sh sets it); not run"
        );
        return None;
    }
    let db = TestDatabase::new().await;
    assert!(db.is_postgres());
    Some(db)
}

async fn get(client: &Client, base: &str, path: &str) -> (StatusCode, Value, String) {
    let response = client
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the node answers");
    let status = response.status();
    let etag = response
        .headers()
        .get("ETag")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, etag)
}

async fn patch_if_match(
    client: &Client,
    base: &str,
    id: &str,
    etag: &str,
    body: &Value,
) -> StatusCode {
    client
        .patch(format!("{base}{}", ctx(id)))
        .bearer_auth(TOKEN)
        .header("If-Match", etag)
        .json(body)
        .send()
        .await
        .expect("the node answers")
        .status()
}

#[tokio::test]
async fn racing_etag_updates_across_nodes_have_one_winner_and_lose_nothing() {
    let Some(db) = postgres_database("multinode etag races").await else {
        return;
    };
    let nodes = two_nodes(&db).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let client = client();

    // Rows created through either node, read back through the other.
    let mut ids = Vec::new();
    for n in 0..4 {
        let response = client
            .post(format!("{}{CTX}", bases[n % 2]))
            .bearer_auth(TOKEN)
            .json(&json!({"msdyn_name": format!("race {n}"), "utcconversiontimezonecode": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let id = entity_id(&response);
        let (status, _, _) = get(&client, &bases[(n + 1) % 2], &ctx(&id)).await;
        assert_eq!(status, StatusCode::OK);
        ids.push(id);
    }

    // Rounds of 8 clients, 4 per node, all sending the same If-Match.
    for round in 0..6 {
        for id in &ids {
            let (_, _, etag) = get(&client, &bases[round % 2], &ctx(id)).await;
            let mut racers = Vec::new();
            for racer in 0..8 {
                let client = client.clone();
                let base = bases[racer % 2].clone();
                let (id, etag) = (id.clone(), etag.clone());
                racers.push(tokio::spawn(async move {
                    let name = format!("round {round} racer {racer}");
                    let body = json!({ "msdyn_name": name });
                    (
                        name,
                        patch_if_match(&client, &base, &id, &etag, &body).await,
                    )
                }));
            }
            let mut winners = Vec::new();
            for racer in racers {
                let (name, status) = racer.await.unwrap();
                match status {
                    StatusCode::NO_CONTENT => winners.push(name),
                    StatusCode::PRECONDITION_FAILED => {}
                    other => panic!("round {round}: unexpected {other}"),
                }
            }
            assert_eq!(winners.len(), 1, "round {round} on {id}: {winners:?}");
            for base in &bases {
                let (_, row, after) = get(&client, base, &ctx(id)).await;
                assert_eq!(row["msdyn_name"], winners[0].as_str(), "the winner's write");
                assert_ne!(after, etag, "the version moved");
            }
        }
    }

    // Read-modify-write with If-Match and retries: every increment lands exactly once.
    let counter = ids[0].clone();
    let mut workers = Vec::new();
    for worker in 0..8 {
        let client = client.clone();
        let bases = bases.clone();
        let id = counter.clone();
        workers.push(tokio::spawn(async move {
            let mut attempts = 0;
            for n in 0..10 {
                loop {
                    attempts += 1;
                    assert!(attempts < 2_000, "worker {worker} starves");
                    let base = &bases[(worker + n + attempts) % 2];
                    let (_, row, etag) = get(&client, base, &ctx(&id)).await;
                    let value = row["utcconversiontimezonecode"].as_i64().unwrap();
                    let body = json!({ "utcconversiontimezonecode": value + 1 });
                    match patch_if_match(&client, base, &id, &etag, &body).await {
                        StatusCode::NO_CONTENT => break,
                        StatusCode::PRECONDITION_FAILED => continue,
                        other => panic!("worker {worker}: unexpected {other}"),
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    for base in &bases {
        let (_, row, _) = get(&client, base, &ctx(&counter)).await;
        assert_eq!(row["utcconversiontimezonecode"], 80, "no increment is lost");
    }
}

/// The outcome of one logical create, retried with the same id until it is acknowledged.
struct Item {
    id: Uuid,
    /// Whether it was acknowledged after the kill.
    after_kill: bool,
}

#[tokio::test]
async fn a_node_killed_mid_load_loses_no_acknowledged_write_and_the_other_keeps_serving() {
    let Some(db) = postgres_database("multinode kill -9").await else {
        return;
    };
    let [mut victim, survivor] = two_nodes(&db).await;
    let bases = [victim.base.clone(), survivor.base.clone()];
    let client = client();
    const WRITERS: usize = 8;
    const ITEMS: usize = 40;
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicUsize::new(0));

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let client = client.clone();
        let bases = bases.clone();
        let acknowledged = Arc::clone(&acknowledged);
        let killed = Arc::clone(&killed);
        writers.push(tokio::spawn(async move {
            let mut items = Vec::new();
            let mut node = writer % 2;
            for n in 0..ITEMS {
                // A client-chosen id makes the create idempotent: a retry after a lost answer
                // finds the row (412, duplicate) instead of creating a second one.
                let id = Uuid::new_v4();
                let body = json!({
                    "msdyn_smsengagementctxid": id,
                    "msdyn_name": format!("load {writer} {n}"),
                });
                let mut retried = false;
                let after_kill = loop {
                    let was_killed = killed.load(Ordering::SeqCst) > 0;
                    let sent = client
                        .post(format!("{}{CTX}", bases[node]))
                        .bearer_auth(TOKEN)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == StatusCode::NO_CONTENT => break was_killed,
                        Ok(r) if r.status() == StatusCode::PRECONDITION_FAILED && retried => {
                            break was_killed
                        }
                        Ok(r) => panic!("writer {writer}: unexpected {}", r.status()),
                        Err(_) => {
                            // The node is gone: fail over to the other one.
                            assert_eq!(node, 0, "the surviving node failed a request");
                            node = 1;
                            retried = true;
                        }
                    }
                };
                acknowledged.fetch_add(1, Ordering::SeqCst);
                items.push(Item { id, after_kill });
            }
            items
        }));
    }

    // SIGKILL the first node once about a third of the writes are acknowledged.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.load(Ordering::SeqCst) < WRITERS * ITEMS / 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load does not progress"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    victim.kill();
    killed.store(1, Ordering::SeqCst);

    let mut items = Vec::new();
    for writer in writers {
        items.extend(writer.await.unwrap());
    }
    assert_eq!(items.len(), WRITERS * ITEMS);
    assert!(
        items.iter().any(|item| item.after_kill),
        "the surviving node acknowledged writes after the kill"
    );
    for item in &items {
        let (status, _, _) = get(&client, &survivor.base, &ctx(&item.id.to_string())).await;
        assert_eq!(status, StatusCode::OK, "acknowledged {} is stored", item.id);
    }
    let count = client
        .get(format!("{}{CTX}/$count", survivor.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        count,
        items.len().to_string(),
        "one row per logical write: no duplicate, none lost"
    );

    // A node started after the crash serves the same data.
    let late = Node::start(&db.url);
    let (status, _, _) = get(&client, &late.base, &ctx(&items[0].id.to_string())).await;
    assert_eq!(status, StatusCode::OK);
}

/// A principal a node has cached goes stale the moment another node changes what it is built
/// from: the security epoch (bumped by triggers in the writing transaction) is read on every
/// request.
#[tokio::test]
async fn a_security_change_on_one_node_applies_to_the_next_request_on_the_other() {
    let Some(db) = postgres_database("a_security_change_on_one_node_applies").await else {
        return;
    };
    let secret = "multinode-jwt-secret";
    let first = Node::start_with(&db.url, &["--jwt-secret", secret]);
    let second = Node::start_with(&db.url, &["--jwt-secret", secret]);
    let (writer, reader) = (&first.base, &second.base);
    let client = client();
    let admin = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{writer}{path}"))
            .bearer_auth(TOKEN)
    };
    let (_, roles, _) = get(&client, writer, "roles?$filter=name eq 'Omnichannel agent'").await;
    let role = roles["value"][0]["roleid"].as_str().unwrap().to_string();
    let (_, units, _) = get(&client, writer, "businessunits").await;
    let unit = units["value"][0]["businessunitid"]
        .as_str()
        .unwrap()
        .to_string();
    let oid = Uuid::new_v4();
    let response = admin(reqwest::Method::POST, "systemusers")
        .header("Prefer", "return=representation")
        .json(&json!({
            "firstname": "Agent", "lastname": "Multinode", "domainname": "agent@example.com",
            "azureactivedirectoryobjectid": oid.to_string(),
            "businessunitid@odata.bind": format!("/businessunits({unit})"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await.unwrap();
    let user = user["systemuserid"].as_str().unwrap().to_string();
    let status = admin(
        reqwest::Method::POST,
        &format!("systemusers({user})/systemuserroles_association/$ref"),
    )
    .json(&json!({"@odata.id": format!("{writer}roles({role})")}))
    .send()
    .await
    .unwrap()
    .status();
    assert_eq!(status, StatusCode::NO_CONTENT);

    let token = smsctx::security::jwt::mint(secret.as_bytes(), oid, Duration::from_secs(600));
    let list = |token: String| {
        let client = client.clone();
        let url = format!("{reader}msdyn_smsengagementctxes?$select=msdyn_name");
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // The reader node builds and caches the agent's principal (twice: the second is a hit).
    assert_eq!(list(token.clone()).await, StatusCode::OK);
    assert_eq!(list(token.clone()).await, StatusCode::OK);

    // The role taken away on the writer node: the reader refuses the next request.
    let status = admin(
        reqwest::Method::DELETE,
        &format!("systemusers({user})/systemuserroles_association({role})/$ref"),
    )
    .send()
    .await
    .unwrap()
    .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(list(token.clone()).await, StatusCode::FORBIDDEN);

    // The user disabled on the writer node: the reader no longer signs it in.
    let status = admin(reqwest::Method::PATCH, &format!("systemusers({user})"))
        .json(&json!({"isdisabled": true}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(list(token).await, StatusCode::UNAUTHORIZED);
}
