//! The test harness: a server on port 0 with a temporary SQLite file, spoken to over HTTP.
#![allow(dead_code)]

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use smsctx::app::{Application, ServeConfig};

pub const TOKEN: &str = "test-admin-token";

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("a temporary directory")).await
}

pub fn config(dir: &tempfile::TempDir) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        database: format!("sqlite://{}", dir.path().join("smsctx.db").display()),
        admin_token: Some(TOKEN.into()),
        max_body_bytes: 64 * 1024,
    }
}

/// Starts a server on the database in `dir` (reused across restarts).
pub async fn spawn_app_in(dir: tempfile::TempDir) -> TestApp {
    let app = Application::build(config(&dir))
        .await
        .expect("the server builds");
    let base = format!("http://127.0.0.1:{}/api/data/v9.2/", app.port());
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
        client: Client::new(),
        dir,
        shutdown: Some(shutdown),
        server: Some(server),
    }
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

    /// Stops the server (in-flight requests finish) and hands back its database directory.
    pub async fn stop(self) -> tempfile::TempDir {
        let TestApp {
            dir,
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
        dir
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

pub const CTX: &str = "msdyn_smsengagementctxes";

pub fn ctx(id: &str) -> String {
    format!("{CTX}({id})")
}
