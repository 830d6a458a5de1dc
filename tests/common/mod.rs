//! The test harness: a server on port 0 with a database of its own, spoken to over HTTP.
//!
//! One behaviour suite, two backends: by default each server gets a temporary SQLite file; when
//! `SMSCTX_TEST_POSTGRES` holds the URL of a PostgreSQL server (a role that may create
//! databases, e.g. `postgres://postgres@127.0.0.1:5432/postgres`), each gets a fresh database
//! there instead, created with a random name and dropped when the test is done, so tests stay
//! isolated and run in parallel. `scripts/test.sh` runs the suites both ways.
#![allow(dead_code)]

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use smsctx::app::{Application, ServeConfig};

pub const TOKEN: &str = "test-admin-token";

/// The HS256 secret every test server accepts bearer JWTs for.
pub const JWT_SECRET: &str = "test-jwt-secret-of-at-least-32-bytes!";

/// The environment variable naming the PostgreSQL server the suites run against.
pub const POSTGRES_ENV: &str = "SMSCTX_TEST_POSTGRES";

/// The PostgreSQL server to test against, if any.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.is_empty())
}

/// A test's database: a SQLite file in `dir`, or a PostgreSQL database of its own.
pub struct TestDatabase {
    pub dir: tempfile::TempDir,
    pub url: String,
    /// The PostgreSQL server and database name to drop at the end.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn new() -> TestDatabase {
        match postgres_admin_url() {
            None => TestDatabase::sqlite(),
            Some(admin) => {
                let name = format!("smsctx_test_{}", uuid::Uuid::new_v4().simple());
                let client = postgres_client(&admin).await;
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("CREATE DATABASE on {POSTGRES_ENV}: {e:?}"));
                TestDatabase {
                    url: with_database(&admin, &name),
                    dir: tempfile::tempdir().expect("a temporary directory"),
                    postgres: Some((admin, name)),
                }
            }
        }
    }

    /// A SQLite file, whatever the environment says.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("a temporary directory");
        TestDatabase {
            url: format!("sqlite://{}", dir.path().join("smsctx.db").display()),
            dir,
            postgres: None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop is not async: a thread with its own runtime drops the database (and ends any
        // connection a server left open).
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let client = postgres_client(&admin).await;
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// A connection to the PostgreSQL server at `url`.
pub async fn postgres_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_ENV}={url}: {e}"));
    tokio::spawn(connection);
    client
}

/// `url` with its database name replaced by `name`.
/// Runs one statement on the test's database, either backend, outside the server (to set up a
/// state no request can make, such as rows recorded long ago). `?1`, `?2` … are the
/// parameters on SQLite; the statement is rewritten to `$1`, `$2` … for PostgreSQL.
pub async fn execute_sql(db: &TestDatabase, statement: &str, params: &[&str]) -> u64 {
    if db.is_postgres() {
        let client = postgres_client(&db.url).await;
        let statement = statement.replace('?', "$");
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        client
            .execute(&statement, &params)
            .await
            .expect("the statement runs")
    } else {
        let path = db.url.trim_start_matches("sqlite://");
        let connection = rusqlite::Connection::open(path).expect("the database opens");
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        connection
            .execute(statement, rusqlite::params_from_iter(params.iter()))
            .expect("the statement runs") as u64
    }
}

pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    format!("{scheme}://{authority}/{name}{query}")
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub db: TestDatabase,
    /// Over HTTPS: the development CA the server's certificate is signed by.
    pub ca: Option<std::path::PathBuf>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_in(TestDatabase::new().await).await
}

pub fn config(db: &TestDatabase) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        database: db.url.clone(),
        admin_token: Some(TOKEN.into()),
        admin_token_file: None,
        max_body_bytes: 64 * 1024,
        pool_size: 8,
        sms_rate_limit: smsctx::edge::sms::DEFAULT_RATE_LIMIT,
        sms_delivery_retention_days: smsctx::app::DEFAULT_DELIVERY_RETENTION_DAYS,
        jwt: smsctx::app::JwtConfig {
            secret: Some(JWT_SECRET.into()),
            ..Default::default()
        },
        limits: Default::default(),
        capacity: Default::default(),
        connections: Default::default(),
        tls: None,
        bulk_delete_batch: smsctx::execute::jobs::DEFAULT_BATCH,
        sms_inactivity_check_seconds: smsctx::app::DEFAULT_INACTIVITY_CHECK_SECONDS,
        change_log_retention_secs: smsctx::app::DEFAULT_CHANGE_LOG_RETENTION_SECS,
        console_dev_login: false,
    }
}

/// Starts a server on `db` (reused across restarts).
pub async fn spawn_app_in(db: TestDatabase) -> TestApp {
    let config = config(&db);
    spawn_app_with(db, config).await
}

/// Starts a server on `db` with a configuration of the test's own.
pub async fn spawn_app_with(db: TestDatabase, config: ServeConfig) -> TestApp {
    let ca = config
        .tls
        .as_ref()
        .map(|tls| tls.cert.with_file_name("ca.pem"));
    let app = Application::build(config).await.expect("the server builds");
    let base = format!("{}://127.0.0.1:{}/api/data/v9.2/", app.scheme(), app.port());
    let client = match &ca {
        None => Client::new(),
        Some(ca) => tls_client(ca, None),
    };
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = stopped.await;
        })
        .await
        .expect("the server runs");
    });
    TestApp {
        base,
        client,
        db,
        ca,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

/// Starts a server over HTTPS (HTTP/1.1 and HTTP/2 by ALPN) on a fresh database, with a
/// development certificate written by `smsctx dev-cert`'s code into the database's directory.
pub async fn spawn_tls_app() -> TestApp {
    let db = TestDatabase::new().await;
    let cert = smsctx::tls::dev_cert(&db.dir.path().join("tls"), &[], 2).expect("a dev cert");
    let mut config = config(&db);
    config.tls = Some(smsctx::tls::TlsFiles {
        cert: cert.cert,
        key: cert.key,
    });
    spawn_app_with(db, config).await
}

/// A client that trusts only the CA in `ca` (PEM). `version`: `None` offers h2 and http/1.1 by
/// ALPN; `HTTP_11` offers only http/1.1; `HTTP_2` only h2.
pub fn tls_client(ca: &std::path::Path, version: Option<reqwest::Version>) -> Client {
    let pem = std::fs::read(ca).expect("the CA file");
    let ca = reqwest::Certificate::from_pem(&pem).expect("a PEM CA");
    let builder = Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .use_rustls_tls();
    let builder = match version {
        Some(reqwest::Version::HTTP_11) => builder.http1_only(),
        Some(reqwest::Version::HTTP_2) => builder.http2_prior_knowledge(),
        _ => builder,
    };
    builder.build().expect("a TLS client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
            .header("OData-MaxVersion", "4.0")
            .header("OData-Version", "4.0")
            .header("Accept", "application/json")
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str, body: &Value) -> RequestBuilder {
        self.request(Method::POST, path).json(body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> RequestBuilder {
        self.request(Method::PATCH, path).json(body)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// Creates a record and returns its id (from `OData-EntityId`).
    pub async fn create(&self, set: &str, body: &Value) -> String {
        let response = self
            .post(set, body)
            .send()
            .await
            .expect("the request is sent");
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "create {set}: {}",
            response.text().await.unwrap_or_default()
        );
        entity_id(&response)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).send().await.expect("the request is sent");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("a JSON body")
    }

    /// Stops the server (in-flight requests finish) and hands back its database.
    pub async fn stop(self) -> TestDatabase {
        let TestApp {
            db,
            shutdown,
            server,
            ..
        } = self;
        if let Some(s) = shutdown {
            let _ = s.send(());
        }
        if let Some(server) = server {
            server.await.expect("the server stops cleanly");
        }
        db
    }
}

/// The id in a response's `OData-EntityId` header.
pub fn entity_id(response: &Response) -> String {
    let url = response
        .headers()
        .get("OData-EntityId")
        .expect("an OData-EntityId header")
        .to_str()
        .unwrap();
    let open = url.rfind('(').unwrap();
    url[open + 1..url.len() - 1].to_string()
}

/// Asserts a Dataverse error response: its status, code, and (part of) its message.
pub async fn assert_error(response: Response, status: StatusCode, code: &str, message_part: &str) {
    assert_eq!(response.status(), status, "status");
    assert_eq!(
        response
            .headers()
            .get("OData-Version")
            .map(|v| v.to_str().unwrap()),
        Some("4.0")
    );
    let body: Value = response.json().await.expect("an error body is JSON");
    assert_eq!(body["error"]["code"], code, "code in {body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains(message_part),
        "message {message:?} lacks {message_part:?}"
    );
}

/// The root business unit (the one without a parent).
pub async fn root_unit(app: &TestApp) -> String {
    let units = app
        .get_json("businessunits?$select=name&$filter=_parentbusinessunitid_value eq null")
        .await;
    let units = units["value"].as_array().unwrap();
    assert_eq!(units.len(), 1, "one root: {units:?}");
    units[0]["businessunitid"].as_str().unwrap().to_string()
}

pub const CTX: &str = "msdyn_smsengagementctxes";

pub fn ctx(id: &str) -> String {
    format!("{CTX}({id})")
}

/// A user created through the API, with a bearer token the test server accepts.
#[derive(Clone)]
pub struct SignedIn {
    pub id: String,
    pub token: String,
}

/// Two users of the root unit with the Basic-depth reader role, alice and bob, and three
/// conversations: A (alice's), B (bob's) and C (the administrator's), as (subject, id).
pub async fn readers_and_conversations(
    app: &TestApp,
) -> (SignedIn, SignedIn, Vec<(String, String)>) {
    let root = root_unit(app).await;
    let role = basic_role(app, &root).await;
    let alice = signed_in_user(app, "alice", &root, &[&role]).await;
    let bob = signed_in_user(app, "bob", &root, &[&role]).await;
    let mut conversations = Vec::new();
    for (subject, owner) in [("A", Some(&alice)), ("B", Some(&bob)), ("C", None)] {
        let mut body = serde_json::json!({"subject": subject});
        if let Some(owner) = owner {
            body["ownerid@odata.bind"] = serde_json::json!(format!("/systemusers({})", owner.id));
        }
        let id = app.create("msdyn_ocliveworkitems", &body).await;
        conversations.push((subject.to_string(), id));
    }
    (alice, bob, conversations)
}

/// Creates the user `name` (domain name `name@example.com`) in `unit`, assigns it the roles
/// (ids) through `$ref`, and mints its token.
pub async fn signed_in_user(app: &TestApp, name: &str, unit: &str, roles: &[&str]) -> SignedIn {
    let oid = uuid::Uuid::new_v4();
    let id = app
        .create(
            "systemusers",
            &serde_json::json!({
                "firstname": name, "lastname": "Test", "domainname": format!("{name}@example.com"),
                "azureactivedirectoryobjectid": oid.to_string(),
                "businessunitid@odata.bind": format!("/businessunits({unit})"),
            }),
        )
        .await;
    for role in roles {
        let response = app
            .post(
                &format!("systemusers({id})/systemuserroles_association/$ref"),
                &serde_json::json!({"@odata.id": app.url(&format!("roles({role})"))}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "role {role}");
    }
    let token = smsctx::security::jwt::mint(
        JWT_SECRET.as_bytes(),
        oid,
        std::time::Duration::from_secs(600),
    );
    SignedIn { id, token }
}

/// A GET of `path` as the bearer of `token` (the harness's own requests carry the admin's).
pub fn get_as(app: &TestApp, token: &str, path: &str) -> RequestBuilder {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .header("Accept", "application/json")
}

/// `text` percent-encoded for a query string (every byte but `A-Za-z0-9-_.`).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A custom role of `unit` named `name` with each privilege (by name) at its depth mask (1
/// Basic, 2 Local, 4 Deep, 8 Global): the role's id.
pub async fn custom_role(app: &TestApp, unit: &str, name: &str, grants: &[(&str, i64)]) -> String {
    let id = app
        .create(
            "roles",
            &serde_json::json!({"name": name, "businessunitid@odata.bind": format!("/businessunits({unit})")}),
        )
        .await;
    for (privilege, mask) in grants {
        app.create(
            "roleprivilegescollection",
            &serde_json::json!({
                "roleid@odata.bind": format!("/roles({id})"),
                "privilegeid": smsctx::security::privilege_id(privilege).to_string(),
                "privilegedepthmask": mask,
            }),
        )
        .await;
    }
    id
}

/// A role of `unit` reading contexts and conversations at Basic depth (and the principal
/// tables at Global, so lookups resolve).
pub async fn basic_role(app: &TestApp, unit: &str) -> String {
    let grants = [
        ("prvReadmsdyn_smsengagementctx", 1),
        ("prvReadmsdyn_ocliveworkitem", 1),
        ("prvReadUser", 8),
        ("prvReadTeam", 8),
        ("prvReadBusinessUnit", 8),
    ];
    custom_role(app, unit, "basic reader", &grants).await
}

/// One request of a `$batch` body: its MIME part headers (with a `Content-ID` inside a change
/// set), the request line, headers and body, as CRLF-separated lines.
pub fn batch_part(
    content_id: Option<&str>,
    request_line: &str,
    json_body: Option<&Value>,
) -> Vec<String> {
    let mut lines = vec![
        "Content-Type: application/http".to_string(),
        "Content-Transfer-Encoding: binary".to_string(),
    ];
    lines.extend(content_id.map(|id| format!("Content-ID: {id}")));
    lines.push(String::new());
    lines.push(format!("{request_line} HTTP/1.1"));
    match json_body {
        Some(body) => {
            lines.push("Content-Type: application/json".into());
            lines.push(String::new());
            lines.push(body.to_string());
        }
        None => {
            lines.push("Accept: application/json".into());
            lines.push(String::new());
            lines.push(String::new());
        }
    }
    lines
}

/// Posts a `$batch` body (boundary `batch_A`): the status and the response text.
pub async fn post_batch(app: &TestApp, lines: &[String]) -> (StatusCode, String) {
    let response = app
        .request(Method::POST, "$batch")
        .header("Content-Type", "multipart/mixed; boundary=batch_A")
        .body(lines.join("\r\n"))
        .send()
        .await
        .expect("the request is sent");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// A `smsctx serve` process (the real binary) on a database, with the address it printed;
/// killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
}

/// Starts the binary on `database` with the admin token and `extra` arguments, and waits for
/// the address it prints.
pub fn start_server(database: &str, extra: &[&str]) -> Server {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_smsctx"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-token", TOKEN])
        .args(["--database", database])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server prints its address")
            .expect("stdout is readable");
        if let Some(rest) = line.strip_prefix("smsctx: listening on ") {
            break rest.trim().to_string();
        }
    };
    Server { child, base }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` (standard output piped, standard error to `log`) until it exits, killing it
/// after `timeout` (a panic naming `what`); its exit status and standard output.
pub fn run_to_end(
    command: &mut std::process::Command,
    log: &std::path::Path,
    timeout: std::time::Duration,
    what: &str,
) -> (std::process::ExitStatus, String) {
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).expect("a log file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            panic!("{what} ran longer than {timeout:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let output = reader.join().expect("the reader").expect("UTF-8 output");
    (status, output)
}
