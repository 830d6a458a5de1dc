//! `smsctx backup` of a SQLite store while the server keeps writing, then `smsctx restore` of
//! that file: every write acknowledged before the backup began is in it, the copy is one
//! consistent snapshot (the counts it reports are the restored store's), and a restored store
//! serves.

use crate::common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use serde_json::json;

fn smsctx(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_smsctx"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The rows the tool reported for `table`.
fn reported(stdout: &str, table: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(table))
        .unwrap_or_else(|| panic!("no line for {table} in {stdout}"));
    assert!(line.ends_with("verified"), "{line}");
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_online_backup_restores_every_acknowledged_write() {
    let app = spawn_app_in(TestDatabase::sqlite()).await;
    let mut before = Vec::new();
    for i in 0..40 {
        before.push(
            app.create(CTX, &json!({ "msdyn_name": format!("before {i}") }))
                .await,
        );
    }
    let app = Arc::new(app);
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (app, writing) = (Arc::clone(&app), Arc::clone(&writing));
        tokio::spawn(async move {
            let mut n = 0;
            while writing.load(Ordering::Relaxed) && n < 2000 {
                app.create(CTX, &json!({ "msdyn_name": format!("during {n}") }))
                    .await;
                n += 1;
            }
            n
        })
    };
    let copy = app.db.dir.path().join("backup.db");
    let (url, to) = (app.db.url.clone(), copy.display().to_string());
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || smsctx(&["backup", "--database", &url, "--to", &to]))
            .await
            .unwrap();
    writing.store(false, Ordering::Relaxed);
    let written_during = writer.await.unwrap();
    assert!(ok, "backup failed: {stdout}{stderr}");
    let contexts = reported(&stdout, "msdyn_smsengagementctx");
    assert!(
        contexts >= 40 && contexts <= 40 + written_during,
        "{contexts}"
    );
    // A second backup to the same file is refused; the file stays.
    let (ok, _, stderr) = smsctx(&[
        "backup",
        "--database",
        &app.db.url,
        "--to",
        &copy.display().to_string(),
    ]);
    assert!(!ok && stderr.contains("exists already"), "{stderr}");

    // Restore into a new store and serve it.
    let restored = TestDatabase::sqlite();
    let (ok, stdout, stderr) = smsctx(&[
        "restore",
        "--from",
        &copy.display().to_string(),
        "--database",
        &restored.url,
    ]);
    assert!(ok, "restore failed: {stdout}{stderr}");
    assert_eq!(reported(&stdout, "msdyn_smsengagementctx"), contexts);
    let served = spawn_app_in(restored).await;
    let rows = served
        .get_json(&format!("{CTX}?$select=msdyn_name&$count=true"))
        .await;
    assert_eq!(rows["@odata.count"], json!(contexts));
    let ids: HashSet<&str> = rows["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["msdyn_smsengagementctxid"].as_str().unwrap())
        .collect();
    for id in &before {
        assert!(
            ids.contains(id.as_str()),
            "{id} was acknowledged before the backup"
        );
    }
    // A PostgreSQL URL is pointed at PostgreSQL's own tools.
    let (ok, _, stderr) = smsctx(&[
        "backup",
        "--database",
        "postgres://u@127.0.0.1:1/x",
        "--to",
        "/tmp/never",
    ]);
    assert!(!ok && stderr.contains("pg_dump"), "{stderr}");
}
