//! `smsctx migrate`: a SQLite store copied into PostgreSQL serves the same rows with the same
//! ETags; running the copy again writes nothing new, and after more writes to the source it
//! catches up without duplicates.
//!
//! PostgreSQL only: without `SMSCTX_TEST_POSTGRES` the test prints a note and does nothing
//! (`scripts/test.sh` always sets it).

use crate::common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// Runs `smsctx migrate` and returns its standard output; the run must succeed.
fn migrate(from: &str, to: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_smsctx"))
        .args(["migrate", "--from", from, "--to", to, "--batch-size", "7"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "migrate failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Each table is listed once: in the report, not again by the progress output.
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stdout.lines().filter(|l| l.contains(" rows (")) {
        let table = line.split_whitespace().nth(1).unwrap();
        assert!(
            !stderr
                .lines()
                .any(|l| l.split([' ', ':']).any(|w| w == table)),
            "{table} is listed again on stderr: {stderr}"
        );
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.split_whitespace().nth(1) == Some(table))
                .count(),
            1,
            "{table} listed once: {stdout}"
        );
    }
    stdout
}

/// The `(rows, written)` the migrate output reports for `table`.
fn reported(output: &str, table: &str) -> (u64, u64) {
    let line = output
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(table))
        .unwrap_or_else(|| panic!("no line for {table} in {output}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (
        words[2].parse().unwrap(),
        words[4].trim_start_matches('(').parse().unwrap(),
    )
}

async fn contexts(app: &TestApp) -> Value {
    app.get_json(&format!("{CTX}?$orderby=msdyn_name")).await["value"].clone()
}

#[tokio::test]
async fn a_sqlite_store_copied_to_postgres_serves_the_same_rows_and_etags() {
    if postgres_admin_url().is_none() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: migrate needs {POSTGRES_ENV} (scripts/test.sh sets it); not run"
        );
        return;
    }
    let source = TestDatabase::sqlite();
    let app = spawn_app_in(source).await;
    let conversation = "6f0c1c1e-0000-0000-0000-000000000001";
    app.create(
        "msdyn_ocliveworkitems",
        &json!({"activityid": conversation, "subject": "SMS from +1 425 555 0100"}),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(
            app.create(
                CTX,
                &json!({
                    "msdyn_name": format!("ctx {n:02}"),
                    "msdyn_customerphonenumber": format!("1425555{n:04}"),
                    "msdyn_liveworkitemid@odata.bind": format!("/msdyn_ocliveworkitems({conversation})"),
                }),
            )
            .await,
        );
    }
    let response = app
        .patch(&ctx(&ids[3]), &json!({"statecode": 1, "statuscode": 2}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let before = contexts(&app).await;
    let source = app.stop().await;

    let target = TestDatabase::new().await;
    assert!(target.is_postgres());
    let output = migrate(&source.url, &target.url);
    assert_eq!(
        reported(&output, "msdyn_smsengagementctx"),
        (20, 20),
        "{output}"
    );
    assert_eq!(reported(&output, "msdyn_ocliveworkitem"), (1, 1));
    assert_eq!(reported(&output, "systemuser"), (1, 1));
    assert_eq!(reported(&output, "businessunit"), (1, 1));

    // Again: everything is there already.
    let output = migrate(&source.url, &target.url);
    assert_eq!(
        reported(&output, "msdyn_smsengagementctx"),
        (20, 0),
        "{output}"
    );

    // More writes to the source, then a catch-up run.
    let app = spawn_app_in(source).await;
    for n in 20..25 {
        app.create(CTX, &json!({"msdyn_name": format!("ctx {n:02}")}))
            .await;
    }
    let response = app
        .patch(&ctx(&ids[0]), &json!({"msdyn_name": "ctx 00 renamed"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let before_catch_up = contexts(&app).await;
    assert_ne!(before, before_catch_up);
    let source = app.stop().await;
    let output = migrate(&source.url, &target.url);
    assert_eq!(
        reported(&output, "msdyn_smsengagementctx"),
        (25, 6),
        "{output}"
    );

    // The PostgreSQL store serves the same rows, ETags and lookups, as the same administrator.
    let app = spawn_app_in(target).await;
    let after = contexts(&app).await;
    assert_eq!(after, before_catch_up);
    let highest = after
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["versionnumber"].as_i64().unwrap())
        .max()
        .unwrap();
    let id = app
        .create(CTX, &json!({"msdyn_name": "new on postgres"}))
        .await;
    let row = app.get_json(&ctx(&id)).await;
    assert!(row["versionnumber"].as_i64().unwrap() > highest);
    drop(source);
}
