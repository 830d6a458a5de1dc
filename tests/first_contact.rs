//! What a new user meets first: the admin token kept across restarts and rotated, commands
//! that refuse a SQLite file that does not exist, `--listen` mistakes, and the start-up lines.

use crate::common;
use common::*;

use reqwest::StatusCode;

/// The built `smsctx` binary.
fn smsctx() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_smsctx"));
    for var in [
        "SMSCTX_DATABASE",
        "SMSCTX_LISTEN",
        "SMSCTX_ADMIN_TOKEN",
        "SMSCTX_JWT_SECRET",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs `smsctx args…` in `dir`; its exit status, stdout and stderr.
fn run_in(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = smsctx()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("smsctx runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn status_with(app: &TestApp, token: &str) -> StatusCode {
    app.client
        .get(app.url("systemusers"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_generated_admin_token_survives_a_restart_until_rotated() {
    let db = TestDatabase::new().await;
    let file = db.dir.path().join("admin-token");
    let mut config = config(&db);
    config.admin_token = None;
    config.admin_token_file = Some(file.clone());

    let app = spawn_app_with(db, config.clone()).await;
    let first = std::fs::read_to_string(&file).expect("the token file is written");
    let first = first.trim().to_string();
    assert_eq!(first.len(), 64, "{first}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the token file is the owner's only");
    }
    assert_eq!(status_with(&app, &first).await, StatusCode::OK);
    assert_eq!(status_with(&app, TOKEN).await, StatusCode::UNAUTHORIZED);

    // A restart keeps it (and does not write a new one).
    let db = app.stop().await;
    let app = spawn_app_with(db, config.clone()).await;
    assert_eq!(status_with(&app, &first).await, StatusCode::OK);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), first);

    // The plaintext is not stored: the settings hold only its SHA-256.
    let db = app.stop().await;
    let (rotated, written) = smsctx::app::rotate_admin_token(&db.url, Some(file.clone()))
        .await
        .expect("the token rotates");
    assert_eq!(written.unwrap(), file);
    assert_ne!(rotated, first);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), rotated);
    let app = spawn_app_with(db, config).await;
    assert_eq!(status_with(&app, &rotated).await, StatusCode::OK);
    assert_eq!(status_with(&app, &first).await, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn the_token_hash_not_the_token_is_stored() {
    let db = TestDatabase::sqlite();
    let file = db.dir.path().join("admin-token");
    let mut config = config(&db);
    config.admin_token = None;
    config.admin_token_file = Some(file.clone());
    let app = spawn_app_with(db, config).await;
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    let db = app.stop().await;
    let path = db.url.trim_start_matches("sqlite://");
    let connection = rusqlite::Connection::open(path).unwrap();
    let values: Vec<String> = connection
        .prepare("SELECT value FROM smsctx_settings")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!values.iter().any(|v| v.contains(&token)), "{values:?}");
    let hash: String = smsctx::app::token_hash(&token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(values.contains(&hash), "{values:?}");
}

#[test]
fn the_cli_serves_with_the_same_token_after_a_restart_and_rotates_it() {
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &std::path::Path| {
        // `serve` prints its start-up lines, then is stopped by a signal once they are read.
        let mut child = smsctx()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = Vec::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let line = line.unwrap();
            let done = line.contains("listening on");
            lines.push(line);
            if done {
                break;
            }
        }
        sigterm(&child);
        child.wait().unwrap();
        lines.join("\n")
    };
    let first = start(dir.path());
    let db = std::path::absolute(dir.path().join("smsctx.db")).unwrap();
    assert!(
        first.contains(&format!(
            "database: SQLite file {} (created now)",
            db.display()
        )),
        "{first}"
    );
    let file = dir.path().join("smsctx.db.admin-token");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(first.contains("generated admin token"), "{first}");
    assert!(first.contains(&token), "the token is shown once: {first}");

    let second = start(dir.path());
    assert!(!second.contains("created now"), "{second}");
    assert!(!second.contains(&token), "not shown again: {second}");
    assert!(second.contains("generated on the first start"), "{second}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);

    let (ok, out, err) = run_in(dir.path(), &["admin-token", "rotate"]);
    assert!(ok, "{err}");
    let rotated = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_ne!(rotated, token);
    assert!(out.contains(&rotated), "{out}");
}

/// SIGTERM to a child this test started.
fn sigterm(child: &std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

#[test]
fn commands_other_than_serve_refuse_a_sqlite_file_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let user = uuid::Uuid::new_v4().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["channel", "list", "--database", "sqlite://typo.db"],
        vec![
            "channel",
            "add",
            "--database",
            "sqlite://typo.db",
            "--provider",
            "twilio",
            "--number",
            "+14252306549",
            "--secret",
            "s",
            "--account",
            "AC00000000000000000000000000000000",
        ],
        vec![
            "token",
            "--database",
            "sqlite://typo.db",
            "--user",
            &user,
            "--jwt-secret",
            "x",
        ],
        vec!["admin-token", "rotate", "--database", "sqlite://typo.db"],
        vec!["backup", "--database", "sqlite://typo.db", "--to", "b.db"],
    ];
    for args in commands {
        let (ok, _, err) = run_in(dir.path(), &args);
        assert!(!ok, "{args:?} fails");
        assert!(err.contains("typo.db"), "{args:?} names the file: {err}");
        assert!(
            !dir.path().join("typo.db").exists(),
            "{args:?} created the database"
        );
    }
}

#[test]
fn serve_checks_listen_before_creating_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run_in(dir.path(), &["serve", "--listen", "8080"]);
    assert!(!ok);
    assert!(
        err.contains("127.0.0.1:8080"),
        "the message shows the fix: {err}"
    );
    let (ok, _, err) = run_in(dir.path(), &["serve", "--listen", "localhost"]);
    assert!(!ok);
    assert!(err.contains("HOST:PORT"), "{err}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let (ok, _, err) = run_in(dir.path(), &["serve", "--listen", &address]);
    assert!(!ok);
    assert!(err.contains("in use"), "{err}");
    assert!(
        !dir.path().join("smsctx.db").exists(),
        "no database is created by a start that fails"
    );
}

#[test]
fn the_channel_cli_adds_updates_and_removes_and_explains_bad_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let db = "sqlite://smsctx.db";
    // A store as `serve` creates it on its first start.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("smsctx.db").display());
    runtime.block_on(async {
        let mut config = smsctx::app::ServeConfig {
            listen: "127.0.0.1:0".into(),
            database: url.clone(),
            ..Default::default()
        };
        config.admin_token = Some(TOKEN.into());
        let app = smsctx::app::Application::build(config).await.unwrap();
        app.run_until(async {}).await.unwrap();
    });
    let account = "AC0123456789abcdef0123456789abcdef";
    let add = |number: &str, account: Option<&str>| {
        let mut args = vec![
            "channel",
            "add",
            "--database",
            db,
            "--provider",
            "twilio",
            "--number",
            number,
            "--secret",
            "first-secret-1111",
        ];
        if let Some(account) = account {
            args.extend(["--account", account]);
        }
        run_in(dir.path(), &args)
    };

    let (ok, _, err) = add("4252306598", Some(account));
    assert!(!ok);
    assert!(err.contains("'4252306598'"), "shows what was typed: {err}");
    assert!(
        err.contains("E.164") && err.contains("+14252306549"),
        "{err}"
    );
    assert!(
        !err.contains("+4252306598"),
        "not a number the user never typed: {err}"
    );

    let (ok, _, err) = add("+14252306598", None);
    assert!(!ok, "a Twilio channel without its account SID");
    assert!(err.contains("account SID"), "{err}");
    let (ok, _, err) = add("+14252306598", Some("12345"));
    assert!(!ok);
    assert!(err.contains("'12345'"), "{err}");

    let (ok, out, err) = add("+14252306598", Some(account));
    assert!(ok, "{err}");
    assert!(out.contains("+14252306598"), "{out}");

    let (ok, out, err) = run_in(
        dir.path(),
        &[
            "channel",
            "update",
            "--database",
            db,
            "--number",
            "+14252306598",
            "--secret",
            "second-secret-2222",
            "--name",
            "Front desk",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("****2222"), "{out}");
    let (ok, out, _) = run_in(dir.path(), &["channel", "list", "--database", db]);
    assert!(ok);
    assert!(
        out.contains("****2222") && out.contains("1 channel(s)"),
        "{out}"
    );

    let (ok, out, err) = run_in(
        dir.path(),
        &[
            "channel",
            "remove",
            "--database",
            db,
            "--number",
            "+14252306598",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("removed"), "{out}");
    let (_, out, _) = run_in(dir.path(), &["channel", "list", "--database", db]);
    assert!(out.contains("0 channel(s)"), "{out}");
    let (ok, _, err) = run_in(
        dir.path(),
        &[
            "channel",
            "remove",
            "--database",
            db,
            "--number",
            "+14252306598",
        ],
    );
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");
}
