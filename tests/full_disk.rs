//! A full disk: a write that cannot get space answers 503 in Dataverse's error shape with
//! `Retry-After`, leaves nothing half-written, and the server recovers by itself once space
//! returns. The store is a SQLite file on a small tmpfs the test mounts (root only; elsewhere the
//! test prints a note), filled with a filler file the test then deletes.
//!
//! SQLite only: PostgreSQL's out-of-space error (SQLSTATE 53100) maps to the same 503, but its
//! data directory is the shared test server's.

use crate::common;

use std::io::Write;
use std::process::Command;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A tmpfs mounted over a directory, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with one file until the disk is full.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match file.write_all(&chunk).and_then(|()| file.sync_all()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    path
}

async fn count(app: &TestApp) -> u64 {
    let body: Value = app
        .get_json(&format!("{CTX}?$count=true&$select=msdyn_name"))
        .await;
    body["@odata.count"].as_u64().unwrap()
}

#[tokio::test]
async fn a_full_disk_is_a_503_and_the_server_recovers_when_space_returns() {
    let db = TestDatabase::sqlite();
    let Some(_tmpfs) = Tmpfs::mount(db.dir.path(), "6m") else {
        eprintln!("note: cannot mount a tmpfs here (not root?); the full-disk test did not run");
        return;
    };
    let app = spawn_app_in(db).await;
    for i in 0..20 {
        app.create(CTX, &json!({ "msdyn_name": format!("before {i}") }))
            .await;
    }
    let filler = fill(app.db.dir.path());
    // Writes until one meets the full disk (SQLite may still have room in pages it holds).
    let mut acknowledged = 20;
    let mut refused = None;
    for i in 0..2000 {
        let response = app
            .post(
                CTX,
                &json!({ "msdyn_name": format!("while full {i} {}", "x".repeat(80)) }),
            )
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::NO_CONTENT => acknowledged += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                refused = Some(response);
                break;
            }
            other => panic!(
                "a write on a full disk answered {other}: {}",
                response.text().await.unwrap()
            ),
        }
    }
    let refused = refused.expect("a write on a full disk is refused");
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "0x80072325",
        "the disk is full",
    )
    .await;
    // Reads still answer, and every acknowledged write is there, nothing more.
    assert_eq!(count(&app).await, acknowledged);

    std::fs::remove_file(filler).unwrap();
    app.create(CTX, &json!({ "msdyn_name": "after" })).await;
    assert_eq!(count(&app).await, acknowledged + 1);
    app.stop().await;
}
