//! Real Dataverse client libraries, unchanged, against smsctx over HTTPS with the development
//! certificate: Microsoft's Python SDK (PowerPlatform-Dataverse-Client 1.1.0), PyPI
//! dataverse-api 1.4.3, npm dynamics-web-api 2.5.0 and dataverse-webapi 3.3.0, installed with
//! pinned versions by `scripts/lib/clients.sh` (which `scripts/test.sh` runs first).
//!
//! Each test starts a server on port 0 (the suite's backend), runs one script of
//! `tests/clients/` with the base URL, the admin token and the CA in the environment, and
//! judges its `STEP <name> ok|FAIL <reason>` lines: every step must pass, except the ones in
//! [`WAITING`], each naming the feature (and who builds it) it waits for. The script's
//! `OUTCOME` line names the rows it kept and deleted, which the test then reads back through
//! HTTP itself. Without the installed clients the tests fail when `CI` is set, else skip.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

/// (script, step, what it waits for). The lead removes a line once that feature is merged.
const WAITING: &[(&str, &str, &str)] = &[];

/// Longest a client script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn installed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/clients")
}

/// The interpreter and the environment a script needs, or `None` when the clients are not
/// installed (a failure under CI).
fn runtime(script: &str) -> Option<(PathBuf, Vec<(String, String)>)> {
    let root = installed();
    let python = std::env::var_os("SMSCTX_CLIENTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("venv/bin/python"));
    let modules = std::env::var_os("SMSCTX_CLIENTS_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("node/node_modules"));
    let (program, ready) = if script.ends_with(".py") {
        (python.clone(), python.exists())
    } else {
        (
            PathBuf::from("node"),
            modules.join("dynamics-web-api").exists(),
        )
    };
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "the client libraries are not installed (run: source scripts/lib/clients.sh; install_clients)"
        );
        eprintln!(
            "skipping {script}: the client libraries are not installed (scripts/lib/clients.sh)"
        );
        return None;
    }
    let env = vec![(
        "SMSCTX_CLIENTS_NODE_MODULES".to_string(),
        modules.display().to_string(),
    )];
    Some((program, env))
}

/// Runs `script` against `app`; returns its standard output.
fn run_script(app: &TestApp, script: &str, tag: &str) -> Option<String> {
    let (program, mut env) = runtime(script)?;
    let ca = app.ca.as_ref().expect("an HTTPS app").display().to_string();
    let org = app.base.trim_end_matches("/api/data/v9.2/").to_string();
    env.extend([
        ("SMSCTX_ORG_URL".to_string(), org),
        ("SMSCTX_TOKEN".to_string(), TOKEN.to_string()),
        ("SMSCTX_TAG".to_string(), tag.to_string()),
        ("REQUESTS_CA_BUNDLE".to_string(), ca.clone()),
        ("SSL_CERT_FILE".to_string(), ca.clone()),
        ("NODE_EXTRA_CA_CERTS".to_string(), ca),
    ]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let log = app.db.dir.path().join(format!("{script}.stderr"));
    let (status, output) = run_to_end(
        Command::new(&program)
            .arg(dir.join(script))
            .current_dir(&dir)
            .envs(env)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy"),
        &log,
        SCRIPT_TIMEOUT,
        script,
    );
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "{script} exited with {status}\n{output}\n{stderr}"
    );
    Some(output)
}

/// Judges the steps: a failure outside [`WAITING`] (directly, or through a step it needs)
/// fails the test, listing every such step with the client's reason.
fn judge(script: &str, output: &str) -> Value {
    let waiting = |step: &str| {
        WAITING
            .iter()
            .any(|(s, name, _)| *s == script && *name == step)
    };
    let mut failed_ok = Vec::<String>::new();
    let mut unexpected = Vec::new();
    let mut steps = 0;
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("STEP ") else {
            continue;
        };
        steps += 1;
        if let Some(name) = rest.strip_suffix(" ok") {
            if waiting(name) {
                eprintln!("{script}: '{name}' passes now: remove it from WAITING");
            }
            continue;
        }
        let (name, reason) = rest
            .split_once(" FAIL ")
            .expect("STEP <name> FAIL <reason>");
        let through_waiting = reason
            .strip_prefix("needs ")
            .is_some_and(|needs| needs.split(',').all(|n| failed_ok.iter().any(|f| f == n)));
        if waiting(name) || through_waiting {
            failed_ok.push(name.to_string());
        } else {
            unexpected.push(format!("{name}: {reason}"));
        }
    }
    assert!(steps > 0, "{script} reported no steps:\n{output}");
    assert!(
        unexpected.is_empty(),
        "{script}: client calls failed:\n  {}",
        unexpected.join("\n  ")
    );
    let outcome = output
        .lines()
        .find_map(|l| l.strip_prefix("OUTCOME "))
        .unwrap_or_else(|| panic!("{script} printed no OUTCOME:\n{output}"));
    serde_json::from_str(outcome).expect("OUTCOME is JSON")
}

/// Reads back what the client wrote, through HTTP: the kept row with its final values, and
/// the deleted rows gone (also those written by an alternate key: `keyed`, `keyed_gone`).
async fn check_stored(app: &TestApp, outcome: &Value) {
    if let Some(kept) = outcome["kept"].as_str() {
        let row = app.get_json(&ctx(kept)).await;
        assert_eq!(row["msdyn_name"], outcome["kept_name"], "{row}");
        if let Some(phone) = outcome["kept_phone"].as_str() {
            assert_eq!(row["msdyn_customerphonenumber"], phone, "{row}");
        }
    }
    if let Some(deleted) = outcome["deleted"].as_str() {
        let response = app.get(&ctx(deleted)).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{deleted} was deleted"
        );
    }
    // Rows a script wrote by an alternate key: each with the values it names, and those it
    // deleted gone.
    for row in outcome["keyed"].as_array().into_iter().flatten() {
        let id = row["id"].as_str().unwrap_or_else(|| panic!("{outcome}"));
        let stored = app.get_json(&ctx(id)).await;
        for (column, value) in row.as_object().unwrap() {
            if column != "id" {
                assert_eq!(&stored[column], value, "{column} of {id}: {stored}");
            }
        }
    }
    for id in outcome["keyed_gone"].as_array().into_iter().flatten() {
        let id = id.as_str().unwrap_or_else(|| panic!("{outcome}"));
        let response = app.get(&ctx(id)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id} was deleted");
    }
    if let Some(prefix) = outcome["gone_prefix"].as_str() {
        let rows = app
            .get_json(&format!("{CTX}?$filter=startswith(msdyn_name,'{prefix}')"))
            .await;
        assert_eq!(rows["value"].as_array().unwrap().len(), 0, "{rows}");
    }
}

async fn drive(script: &'static str) {
    let app = spawn_tls_app().await;
    let tag = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let output = {
        let app = &app;
        tokio::task::block_in_place(|| run_script(app, script, &tag))
    };
    if let Some(output) = output {
        let outcome = judge(script, &output);
        check_stored(&app, &outcome).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_python_sdk() {
    drive("powerplatform_sdk.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pypi_dataverse_api() {
    drive("pypi_dataverse_api.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_dynamics_web_api() {
    drive("dynamics_web_api.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_dataverse_webapi() {
    drive("dataverse_webapi.mjs").await;
}
