//! The agents' web console: `GET /` for browsers and API clients, the embedded assets and their
//! headers, the live-event stream (its token, and that an event never names a conversation the
//! caller may not read), the development login, and end-to-end scenarios in headless Chromium.
//!
//! The browser scenarios run `tests/console/scenarios.mjs` (npm `playwright-core`, installed
//! by `scripts/lib/clients.sh`, driving Debian's `/usr/bin/chromium`, installed by
//! `scripts/lib/chromium.sh`) against a server on port 0 with a fake Twilio on 127.0.0.1. The
//! script prints `STEP <name> ok|FAIL <reason>` and an `OUTCOME` line; every outcome is then
//! read back over HTTP here. Without chromium or playwright-core the test fails when `CI` is
//! set, else it skips. Screenshots go to the directory the test prints.

use crate::common;
use crate::sms::{
    add_twilio_channel, fake_provider, post_twilio, twilio_params, twilio_url, ACCOUNT, CUSTOMER,
    ORG, ORG_2, TOKEN_TWILIO,
};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Longest the browser script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn root(app: &TestApp) -> String {
    crate::sms::root(app)
}

/// Sends a request and reads its JSON body.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_browser_gets_the_console_and_an_api_client_keeps_the_json_answer() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(format!("{}/", root(&app)))
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["vary"], "Accept");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    // No inline script: every <script> loads a file of the console.
    for tag in html.split("<script").skip(1) {
        let tag = &tag[..tag.find('>').unwrap()];
        assert!(
            tag.contains("src=\"/console/"),
            "inline script: <script{tag}>"
        );
    }
    assert!(!html.contains("style=\""), "inline style");
    let again = app
        .client
        .get(format!("{}/", root(&app)))
        .header("Accept", "text/html")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // An API client, with JSON or no Accept at all, gets the JSON 404 pointing at the API.
    for accept in [
        Some("application/json"),
        None,
        Some("*/*"),
        Some("text/html;q=0"),
    ] {
        let mut request = app.client.get(format!("{}/", root(&app)));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_error(
            response,
            StatusCode::NOT_FOUND,
            "0x80060888",
            "/api/data/v9.2/",
        )
        .await;
    }

    // Every asset index.html and the modules name is served with its type and an ETag.
    for (name, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("ui.js", "text/javascript; charset=utf-8"),
        ("admin.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let response = app
            .client
            .get(format!("{}/console/{name}", root(&app)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(response.headers()["content-type"], content_type, "{name}");
        assert!(response.headers().contains_key("etag"), "{name}");
        assert_eq!(response.headers()["cache-control"], "no-cache", "{name}");
        let text = response.text().await.unwrap();
        assert!(!text.trim().is_empty(), "{name} is empty");
        if name == "app.js" {
            for module in ["./api.js", "./ui.js", "./admin.js"] {
                assert!(text.contains(module), "app.js imports {module}");
            }
        }
    }
    let missing = app
        .client
        .get(format!("{}/console/nothing.js", root(&app)))
        .send()
        .await
        .unwrap();
    assert_error(
        missing,
        StatusCode::NOT_FOUND,
        "0x80060888",
        "/api/data/v9.2/",
    )
    .await;
    app.stop().await;
}

/// Reads server-sent events from a response until one named `until` arrives (or the stream
/// ends): (event, data) in order, keep-alive comments left out.
async fn read_events(response: &mut reqwest::Response, until: &str) -> Vec<(String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    // Keep-alive comments do not count: a stream that never sends the event fails the test.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no '{until}' event in 60 s: {events:?}"
        );
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            if name.is_empty() {
                continue;
            }
            let done = name == until;
            events.push((name, data));
            if done {
                return events;
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("an event within 30 s")
            .unwrap();
        match chunk {
            Some(bytes) => buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
            None => return events,
        }
    }
}

async fn open_stream(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(format!("{}/console/events", root(app)));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// A role reading, at Basic depth, contexts, conversations and their transcripts (the
/// principal tables at Global): an agent who sees only what it owns.
async fn basic_agent_role(app: &TestApp, unit: &str) -> String {
    let grants = [
        ("prvReadmsdyn_smsengagementctx", 1),
        ("prvWritemsdyn_smsengagementctx", 1),
        ("prvReadmsdyn_ocliveworkitem", 1),
        ("prvWritemsdyn_ocliveworkitem", 1),
        ("prvReadmsdyn_transcript", 1),
        ("prvReadNote", 1),
        ("prvReadUser", 8),
        ("prvReadTeam", 8),
        ("prvReadBusinessUnit", 8),
    ];
    custom_role(app, unit, "basic agent", &grants).await
}

#[tokio::test]
async fn the_event_stream_needs_a_token_and_never_names_a_conversation_the_caller_cannot_read() {
    let app = spawn_app().await;
    let anonymous = open_stream(&app, None).await;
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "0x80072560", "bearer").await;
    let wrong = open_stream(&app, Some("not-a-token")).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let unit = root_unit(&app).await;
    let role = basic_agent_role(&app, &unit).await;
    let alice = signed_in_user(&app, "alice", &unit, &[&role]).await;
    // The channel's conversations belong to the administrator: alice may not read them.
    add_twilio_channel(&app, ORG, json!({})).await;

    let mut admin = open_stream(&app, Some(TOKEN)).await;
    assert_eq!(admin.status(), StatusCode::OK);
    assert_eq!(admin.headers()["content-type"], "text/event-stream");
    let mut agent = open_stream(&app, Some(&alice.token)).await;
    assert_eq!(read_events(&mut admin, "ready").await.len(), 1);
    assert_eq!(read_events(&mut agent, "ready").await.len(), 1);

    let landed = post_twilio(
        &app.client,
        &twilio_url(&app),
        TOKEN_TWILIO,
        &twilio_params(CUSTOMER, ORG, &crate::sms::sid(1), "Hello"),
    )
    .await;
    assert_eq!(landed.status(), StatusCode::OK);
    let conversation = app.get_json("msdyn_ocliveworkitems").await["value"][0]["activityid"]
        .as_str()
        .unwrap()
        .to_owned();
    // Then a Web API write, which every stream hears of as a bare "changed".
    let id = app.create(CTX, &json!({"msdyn_name": "after"})).await;
    assert!(!id.is_empty());

    let seen = read_events(&mut admin, "changed").await;
    assert_eq!(
        seen,
        vec![
            ("conversation".to_owned(), json!({ "id": conversation })),
            ("changed".to_owned(), json!({})),
        ]
    );
    let seen = read_events(&mut agent, "changed").await;
    assert_eq!(seen, vec![("changed".to_owned(), json!({}))]);

    // Alice is disabled: her token is no longer accepted, so the next write's frame is
    // `signed-out`, and the stream ends; the administrator's goes on.
    let response = app
        .client
        .patch(app.url(&format!("systemusers({})", alice.id)))
        .bearer_auth(TOKEN)
        .json(&json!({"isdisabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.create(CTX, &json!({"msdyn_name": "after alice"})).await;
    let seen = read_events(&mut agent, "signed-out").await;
    assert_eq!(seen.last(), Some(&("signed-out".to_owned(), json!({}))));
    assert!(
        seen.iter().all(|(name, _)| name == "signed-out"),
        "a frame reached a disabled user: {seen:?}"
    );
    let end = tokio::time::timeout(Duration::from_secs(30), agent.chunk()).await;
    assert!(
        matches!(end, Ok(Ok(None))),
        "the stream goes on after signed-out"
    );
    assert_eq!(
        read_events(&mut admin, "changed").await.last(),
        Some(&("changed".to_owned(), json!({})))
    );
    drop(admin);
    drop(agent);
    app.stop().await;
}

#[tokio::test]
async fn the_development_login_hands_out_only_the_bootstrap_token_and_only_when_enabled() {
    // The harness's server runs with --admin-token: no development login.
    let app = spawn_app().await;
    let offered: Value = json_of(app.client.get(format!("{}/console/dev-login", root(&app)))).await;
    assert_eq!(offered, json!({"available": false}));
    let refused = app
        .client
        .post(format!("{}/console/dev-login", root(&app)))
        .send()
        .await
        .unwrap();
    assert_error(
        refused,
        StatusCode::FORBIDDEN,
        "0x80072560",
        "--console-dev-login",
    )
    .await;
    app.stop().await;

    // A generated admin token with --console-dev-login: handed to a local browser.
    let (app, token) = spawn_bootstrap_app().await;
    let given: Value = json_of(app.client.post(format!("{}/console/dev-login", root(&app)))).await;
    assert_eq!(given["token"], token.as_str());
    let me = get_as(&app, &token, "WhoAmI").send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // Not through a proxy, which would make every client look local.
    let proxied = app
        .client
        .post(format!("{}/console/dev-login", root(&app)))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_error(proxied, StatusCode::FORBIDDEN, "0x80072560", "own machine").await;
    app.stop().await;
}

/// A server whose admin token is generated at its first start (written to its token file), with
/// the development login on; and that token.
async fn spawn_bootstrap_app() -> (TestApp, String) {
    let db = TestDatabase::new().await;
    let file = db.dir.path().join("admin-token");
    let mut config = config(&db);
    config.admin_token = None;
    config.admin_token_file = Some(file.clone());
    config.console_dev_login = true;
    let app = spawn_app_with(db, config).await;
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    (app, token)
}

// ---- in headless Chromium ---------------------------------------------------------------------

fn node_modules() -> PathBuf {
    std::env::var_os("SMSCTX_CLIENTS_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/clients/node/node_modules")
        })
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether the browser and playwright-core are installed (a failure under CI when not).
fn browser_ready() -> bool {
    let ready = Path::new(CHROMIUM).exists() && node_modules().join("playwright-core").exists();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium or playwright-core is missing (run: source scripts/lib/chromium.sh; install_chromium; \
             source scripts/lib/clients.sh; install_clients)"
        );
        eprintln!("skipping the browser scenarios: chromium or playwright-core is not installed");
    }
    ready
}

/// Runs the scenario script with `env`; its standard output.
fn run_scenarios(env: Vec<(String, String)>, log: &Path) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let (status, output) = run_to_end(
        Command::new("node")
            .arg(dir.join("scenarios.mjs"))
            .current_dir(&dir)
            .envs(env)
            .env("SMSCTX_CLIENTS_NODE_MODULES", node_modules()),
        log,
        SCRIPT_TIMEOUT,
        "the browser scenarios",
    );
    let stderr = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        status.success(),
        "scenarios.mjs exited with {status}\n{output}\n{stderr}"
    );
    let failed: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("STEP ") && !l.ends_with(" ok"))
        .collect();
    let steps = output.lines().filter(|l| l.starts_with("STEP ")).count();
    assert!(
        failed.is_empty() && steps >= 5,
        "browser steps failed ({steps} run):\n{}\n--- output\n{output}\n--- stderr\n{stderr}",
        failed.join("\n")
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_work_the_queue_in_headless_chromium() {
    if !browser_ready() {
        return;
    }
    let (app, admin_token) = spawn_bootstrap_app().await;
    let as_admin = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.url(path))
            .bearer_auth(&admin_token)
    };
    let provider = fake_provider(
        201,
        json!({"sid": "SM99999999999999999999999999999999", "status": "queued"}),
    )
    .await;
    // The administrator's number (its conversations are the administrator's), replies through
    // the fake Twilio; alice's number, whose conversations are hers.
    let unit = {
        let units: Value =
            json_of(as_admin(reqwest::Method::GET, "businessunits?$select=name")).await;
        units["value"][0]["businessunitid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let add_channel = |number: &str, extra: Value| {
        let mut body = json!({
            "smsctx_provider": "twilio", "smsctx_phonenumber": number, "smsctx_secret": TOKEN_TWILIO,
            "smsctx_account": ACCOUNT, "smsctx_publicurl": twilio_url(&app),
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        as_admin(reqwest::Method::POST, "smsctx_smschannels")
            .json(&body)
            .send()
    };
    let response = add_channel(ORG, json!({"smsctx_apibaseurl": provider.base}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // Users and their role, made with the administrator's token (the harness's is not this
    // server's): alice and bob read only what they own.
    let agents = {
        let role = {
            let response = as_admin(reqwest::Method::POST, "roles")
                .json(&json!({"name": "basic agent", "businessunitid@odata.bind": format!("/businessunits({unit})")}))
                .send()
                .await
                .unwrap();
            let role = entity_id(&response);
            for (privilege, mask) in [
                ("prvReadmsdyn_smsengagementctx", 1),
                ("prvWritemsdyn_smsengagementctx", 1),
                ("prvReadmsdyn_ocliveworkitem", 1),
                ("prvWritemsdyn_ocliveworkitem", 1),
                ("prvReadmsdyn_transcript", 1),
                ("prvReadNote", 1),
                ("prvReadUser", 8),
                ("prvReadTeam", 8),
                ("prvReadBusinessUnit", 8),
            ] {
                let granted = as_admin(reqwest::Method::POST, "roleprivilegescollection")
                    .json(&json!({
                        "roleid@odata.bind": format!("/roles({role})"),
                        "privilegeid": smsctx::security::privilege_id(privilege).to_string(),
                        "privilegedepthmask": mask,
                    }))
                    .send()
                    .await
                    .unwrap();
                assert!(granted.status().is_success(), "{privilege}");
            }
            role
        };
        let mut agents = Vec::new();
        for name in ["alice", "bob"] {
            let oid = uuid::Uuid::new_v4();
            let response = as_admin(reqwest::Method::POST, "systemusers")
                .json(&json!({
                    "firstname": name, "lastname": "Agent", "domainname": format!("{name}@example.com"),
                    "azureactivedirectoryobjectid": oid.to_string(),
                    "businessunitid@odata.bind": format!("/businessunits({unit})"),
                }))
                .send()
                .await
                .unwrap();
            let id = entity_id(&response);
            let associated = as_admin(
                reqwest::Method::POST,
                &format!("systemusers({id})/systemuserroles_association/$ref"),
            )
            .json(&json!({"@odata.id": app.url(&format!("roles({role})"))}))
            .send()
            .await
            .unwrap();
            assert_eq!(associated.status(), StatusCode::NO_CONTENT);
            let token =
                smsctx::security::jwt::mint(JWT_SECRET.as_bytes(), oid, Duration::from_secs(600));
            agents.push((id, token));
        }
        agents
    };
    let (alice, alice_token) = agents[0].clone();
    let (bob, bob_token) = agents[1].clone();
    let response = add_channel(
        ORG_2,
        json!({"smsctx_defaultownerid@odata.bind": format!("/systemusers({alice})")}),
    )
    .await
    .unwrap();
    assert!(response.status().is_success());
    // A conversation of bob's own.
    let created = as_admin(reqwest::Method::POST, "msdyn_ocliveworkitems")
        .json(&json!({"subject": "Bob's own conversation", "ownerid@odata.bind": format!("/systemusers({bob})")}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::NO_CONTENT);

    let shots = std::env::var_os("SMSCTX_CONSOLE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/console-screenshots")
                .join(if app.db.is_postgres() {
                    "postgres"
                } else {
                    "sqlite"
                })
        });
    std::fs::create_dir_all(&shots).unwrap();
    eprintln!("console screenshots: {}", shots.display());
    let env = vec![
        ("SMSCTX_URL".to_owned(), root(&app)),
        ("SMSCTX_ADMIN_TOKEN".to_owned(), admin_token.clone()),
        ("SMSCTX_ALICE_TOKEN".to_owned(), alice_token),
        ("SMSCTX_BOB_TOKEN".to_owned(), bob_token),
        ("SMSCTX_TWILIO_TOKEN".to_owned(), TOKEN_TWILIO.to_owned()),
        ("SMSCTX_TWILIO_ACCOUNT".to_owned(), ACCOUNT.to_owned()),
        ("SMSCTX_ORG".to_owned(), ORG.to_owned()),
        ("SMSCTX_ORG_2".to_owned(), ORG_2.to_owned()),
        ("SMSCTX_CUSTOMER".to_owned(), CUSTOMER.to_owned()),
        ("SMSCTX_SCREENSHOTS".to_owned(), shots.display().to_string()),
        ("SMSCTX_CHROMIUM".to_owned(), CHROMIUM.to_owned()),
    ];
    let log = app.db.dir.path().join("scenarios.stderr");
    let output = tokio::task::spawn_blocking(move || run_scenarios(env, &log))
        .await
        .unwrap();
    let outcome: Value = output
        .lines()
        .find_map(|l| l.strip_prefix("OUTCOME "))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("an OUTCOME line");

    // The reply reached the fake Twilio, as Twilio's Messages API expects it.
    let seen = provider.seen.lock().unwrap().clone();
    let bodies: Vec<Vec<(String, String)>> = seen
        .iter()
        .map(|(_, _, _, body)| {
            form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect()
        })
        .collect();
    assert!(
        bodies.iter().any(|form| form.contains(&(
            "Body".to_owned(),
            outcome["reply"].as_str().unwrap().to_owned()
        )) && form.contains(&("To".to_owned(), CUSTOMER.to_owned()))),
        "the reply at the fake Twilio: {seen:?}"
    );
    // The conversation the agent closed is closed, and its context inactive.
    let conversation = outcome["conversation"].as_str().unwrap();
    let closed: Value = json_of(as_admin(
        reqwest::Method::GET,
        &format!("msdyn_ocliveworkitems({conversation})?$select=statecode"),
    ))
    .await;
    assert_eq!(closed["statecode"], 1);
    let contexts: Value = json_of(as_admin(
        reqwest::Method::GET,
        &format!("{CTX}?$filter=_msdyn_liveworkitemid_value eq {conversation}&$select=statecode"),
    ))
    .await;
    assert_eq!(contexts["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        contexts["value"][0]["statecode"], 1,
        "the context is inactive"
    );
    // The channel the administrator added in the browser.
    let channels: Value = json_of(as_admin(reqwest::Method::GET, "smsctx_smschannels")).await;
    let added = outcome["channel"].as_str().unwrap().trim_start_matches('+');
    assert!(
        channels["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["smsctx_phonenumber"] == added),
        "{channels}"
    );
    // What bob's queue listed: his own conversation, never alice's.
    let listed: Vec<&str> = outcome["bob_queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(listed.contains(&"Bob's own conversation"), "{listed:?}");
    assert!(!listed.iter().any(|s| s.contains(ORG_2)), "{listed:?}");
    for name in [
        "queue.png",
        "conversation.png",
        "admin-channels.png",
        "basic-agent-375px.png",
    ] {
        let bytes = std::fs::read(shots.join(name)).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG"), "{name} is a PNG");
    }
    app.stop().await;
}

#[tokio::test]
async fn on_postgresql_a_write_on_another_node_reaches_this_nodes_consoles() {
    if postgres_admin_url().is_none() {
        eprintln!("note: set {POSTGRES_ENV} to run the two-node console test (one SQLite file serves one process)");
        return;
    }
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    let (other, stop) = crate::sms::spawn_node(&app.db).await;
    let mut stream = open_stream(&app, Some(TOKEN)).await;
    assert_eq!(read_events(&mut stream, "ready").await.len(), 1);
    // The message lands on the other node (signed for the public URL, as behind a balancer).
    let send = |n: u32| {
        let message = crate::sms::sid(n);
        let params = twilio_params(CUSTOMER, ORG, &message, "via node 2");
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        app.client
            .post(format!("{other}/channels/sms/twilio"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header(
                "X-Twilio-Signature",
                crate::sms::twilio_signature(TOKEN_TWILIO, &twilio_url(&app), &params),
            )
            .body(body)
            .send()
    };
    assert_eq!(send(7).await.unwrap().status(), StatusCode::OK);
    // This node hears of it by polling (a bare "changed": which row is not said). Its first
    // look after the stream opened says "changed" in any case; the second message, to the
    // conversation that exists, changes only the transcript note, which the next looks see.
    let seen = read_events(&mut stream, "changed").await;
    assert_eq!(seen.last(), Some(&("changed".to_owned(), json!({}))));
    assert_eq!(send(8).await.unwrap().status(), StatusCode::OK);
    let seen = read_events(&mut stream, "changed").await;
    assert_eq!(seen, vec![("changed".to_owned(), json!({}))]);
    drop(stream);
    let _ = stop.send(());
    app.stop().await;
}
