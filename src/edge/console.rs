//! The agents' web console: its assets (plain HTML, CSS and JavaScript modules under
//! `console/`, embedded in the binary), `GET /` for browsers, the live-event stream and the
//! development login.
//!
//! The console is a client of the public Web API like any other: it signs in with a bearer
//! token and every row it shows comes from `/api/data/v9.2/` with that token, so the security
//! model decides what an agent sees. What only the console has is the event stream,
//! `GET /console/events` (server-sent events, authenticated with the same bearer header: the
//! console reads it with `fetch()` streaming, since `EventSource` cannot send headers).
//!
//! **Invariant:** an event never reveals a row the caller may not read. A write names the
//! conversation it touched ([`Event::Conversation`]) only to a stream whose caller the Guard lets
//! read that conversation (checked when the event is delivered, with the token authenticated
//! again, so a role removed or a token expired meanwhile counts); every other write is a bare
//! [`Event::Changed`], which says only "refetch", and no frame (a keep-alive neither) goes to a
//! token that is no longer accepted: the stream says `signed-out` and ends.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use super::auth::Authenticated;
use super::error::ApiError;
use super::AppState;
use crate::store::Access;

/// Events a stream may fall behind by before it is told to refetch everything.
const EVENT_BUFFER: usize = 1024;

/// A comment line sent this often keeps proxies and the browser from timing the stream out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often a PostgreSQL node looks for writes made by the other nodes (while a console is
/// connected to it).
pub const REMOTE_POLL: Duration = Duration::from_secs(2);

/// What a committed write tells the open consoles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A conversation (its transcript, state or owner) changed.
    Conversation(Uuid),
    /// Something changed; which rows is not said.
    Changed,
}

/// Where the development login gets the admin token from (`--console-dev-login`).
#[derive(Debug, Clone)]
pub enum DevLogin {
    Off,
    /// The token this start generated.
    Token(String),
    /// The token file an earlier start wrote (read when asked, so a rotation is seen).
    File(PathBuf),
}

/// The console's share of the app state: the event channel and the development login.
pub struct ConsoleState {
    events: broadcast::Sender<Event>,
    closing: watch::Sender<bool>,
    dev_login: DevLogin,
}

impl ConsoleState {
    pub fn new(dev_login: DevLogin) -> ConsoleState {
        ConsoleState {
            events: broadcast::channel(EVENT_BUFFER).0,
            closing: watch::channel(false).0,
            dev_login,
        }
    }

    /// Tells the open consoles about a write that has committed.
    pub fn notify(&self, event: Event) {
        // No console open: nobody to tell.
        let _ = self.events.send(event);
    }

    /// Whether a console's stream is open on this node.
    pub fn watched(&self) -> bool {
        self.events.receiver_count() > 0
    }

    /// Ends every event stream (the server is stopping: graceful shutdown waits for them).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// An embedded asset, with its content type and entity tag.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

fn asset(body: &'static [u8], content_type: &'static str) -> Asset {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(body);
    let tag: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    Asset {
        body,
        content_type,
        etag: HeaderValue::from_str(&format!("\"{tag}\"")).expect("hex is a header value"),
    }
}

const JS: &str = "text/javascript; charset=utf-8";

static INDEX: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        include_bytes!("../../console/index.html"),
        "text/html; charset=utf-8",
    )
});

static ASSETS: LazyLock<Vec<(&'static str, Asset)>> = LazyLock::new(|| {
    vec![
        (
            "app.css",
            asset(
                include_bytes!("../../console/app.css"),
                "text/css; charset=utf-8",
            ),
        ),
        ("app.js", asset(include_bytes!("../../console/app.js"), JS)),
        ("api.js", asset(include_bytes!("../../console/api.js"), JS)),
        ("ui.js", asset(include_bytes!("../../console/ui.js"), JS)),
        (
            "admin.js",
            asset(include_bytes!("../../console/admin.js"), JS),
        ),
        (
            "icon.svg",
            asset(include_bytes!("../../console/icon.svg"), "image/svg+xml"),
        ),
    ]
});

/// The console's Content-Security-Policy: its own scripts, styles and API only; no inline
/// script or style, no frames, no form posts elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn serve_asset(asset: &Asset, request_headers: &HeaderMap) -> Response {
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == asset.etag)
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, asset.etag.clone());
    // Revalidated on every load (a 304 when unchanged), so a new binary's console is used at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(headers);
    response
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Whether a request's `Accept` asks for HTML (a browser navigating), not JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or_default().trim();
                let refused = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        == Some(0.0)
                });
                media.eq_ignore_ascii_case("text/html") && !refused
            })
        })
}

/// `GET /`: the console for a browser (`Accept: text/html`); for an API client the JSON 404
/// pointing at `/api/data/v9.2/`, as every path outside the API.
pub async fn root(request: Request) -> Response {
    let mut response = if wants_html(request.headers()) {
        serve_asset(&INDEX, request.headers())
    } else {
        super::fallback(request).await
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// `GET /console/{name}`: one of the console's assets.
pub async fn assets(
    axum::extract::Path(name): axum::extract::Path<String>,
    request: Request,
) -> Response {
    match ASSETS.iter().find(|(n, _)| *n == name) {
        Some((_, asset)) => serve_asset(asset, request.headers()),
        None => super::fallback(request).await,
    }
}

/// `GET /console/dev-login`: whether the development login is offered (the sign-in page asks).
pub async fn dev_login_offered(State(state): State<Arc<AppState>>) -> Response {
    let available = !matches!(state.console.dev_login, DevLogin::Off);
    let mut response = axum::Json(json!({ "available": available })).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /console/dev-login`: the admin token, to a browser on this machine, when the server
/// runs with `--console-dev-login` and its admin token is the bootstrap one (generated on the
/// store's first start, kept in its token file).
pub async fn dev_login(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match dev_login_token(&state, &request) {
        Ok(token) => {
            let mut response = axum::Json(json!({ "token": token })).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => e.into_response(),
    }
}

fn dev_login_token(state: &AppState, request: &Request) -> Result<String, ApiError> {
    let loopback = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|info| info.0.ip().is_loopback());
    let forwarded = request.headers().contains_key("x-forwarded-for")
        || request.headers().contains_key(header::FORWARDED);
    if !loopback || forwarded {
        return Err(ApiError::dev_login_unavailable(
            "it answers only a browser on the server's own machine",
        ));
    }
    match &state.console.dev_login {
        DevLogin::Off => Err(ApiError::dev_login_unavailable(
            "start the server with --console-dev-login and its generated admin token \
             (without --admin-token), or paste a token",
        )),
        DevLogin::Token(token) => Ok(token.clone()),
        DevLogin::File(path) => std::fs::read_to_string(path)
            .map(|text| text.trim().to_string())
            .map_err(|e| {
                ApiError::dev_login_unavailable(&format!(
                    "the admin token file {} cannot be read ({e})",
                    path.display()
                ))
            }),
    }
}

/// `GET /console/events`: the live-event stream (`text/event-stream`) for the bearer of the
/// request's token. Frames: `ready` once, then `conversation` (`{"id"}`) and `changed` (`{}`);
/// `signed-out` (and the end) when the token stops being accepted.
pub async fn events(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let headers = credentials(request.headers());
    if let Err(e) = state
        .auth
        .authenticate(&headers, state.service.system().store())
        .await
    {
        return e.into_response();
    }
    let stream = EventStream {
        receiver: state.console.events.subscribe(),
        closing: state.console.closing.subscribe(),
        state,
        headers,
        started: false,
    };
    let body = axum::body::Body::from_stream(futures_util::stream::unfold(
        stream,
        |mut stream| async move {
            let frame = stream.next().await?;
            Some((Ok::<_, std::convert::Infallible>(frame), stream))
        },
    ));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("X-Accel-Buffering", HeaderValue::from_static("no"));
    response
}

/// Only the headers authentication reads (the token and an impersonation header).
fn credentials(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in [
        header::AUTHORIZATION.as_str(),
        "mscrmcallerid",
        "callerobjectid",
    ] {
        if let Some(value) = headers.get(name) {
            kept.insert(header::HeaderName::from_static(name), value.clone());
        }
    }
    kept
}

/// Why a stream's caller is no longer served.
enum Lapsed {
    /// The token is refused (expired, revoked, its user disabled).
    SignedOut,
    /// Authentication could not be decided (the store failed).
    Unknown,
}

struct EventStream {
    state: Arc<AppState>,
    headers: HeaderMap,
    receiver: broadcast::Receiver<Event>,
    closing: watch::Receiver<bool>,
    started: bool,
}

impl EventStream {
    /// The next frame to send; `None` ends the stream.
    async fn next(&mut self) -> Option<bytes::Bytes> {
        if !self.started {
            self.started = true;
            return Some(frame("ready", &json!({})));
        }
        loop {
            if *self.closing.borrow() {
                return None;
            }
            let received = tokio::select! {
                _ = self.closing.changed() => return None,
                received = tokio::time::timeout(KEEP_ALIVE, self.receiver.recv()) => received,
            };
            let event = match received {
                Err(_) => None,
                Ok(Ok(event)) => Some(event),
                // Fell behind: whatever was missed, a refetch shows it.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => Some(Event::Changed),
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            };
            // Every frame, a keep-alive included, is for a caller whose token is still
            // accepted: a lapsed or revoked one ends the stream with `signed-out`.
            let who = match self.signed_in().await {
                Ok(who) => who,
                Err(Lapsed::SignedOut) => return Some(frame("signed-out", &json!({}))),
                // The store could not say (busy, unreachable): the stream ends without a
                // verdict, and the console reconnects.
                Err(Lapsed::Unknown) => return None,
            };
            match event {
                None => return Some(bytes::Bytes::from_static(b": keep-alive\n\n")),
                Some(Event::Changed) => return Some(frame("changed", &json!({}))),
                Some(Event::Conversation(id)) => {
                    if self.may_read(&who, id).await {
                        return Some(frame("conversation", &json!({ "id": id })));
                    }
                }
            }
        }
    }

    /// The stream's caller, authenticated again; on `Err` nothing more is sent on this stream.
    async fn signed_in(&mut self) -> Result<Authenticated, Lapsed> {
        let state = &self.state;
        let result = state
            .auth
            .authenticate(&self.headers, state.service.system().store())
            .await;
        result.map_err(|e| {
            self.closing = watch::channel(true).1;
            if matches!(e.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                Lapsed::SignedOut
            } else {
                Lapsed::Unknown
            }
        })
    }

    /// Whether the stream's caller may read the conversation now.
    async fn may_read(&self, who: &Authenticated, id: Uuid) -> bool {
        let state = &self.state;
        let Some(conversation) = state
            .service
            .catalog
            .entity(crate::metadata::sms::CONVERSATION)
        else {
            return false;
        };
        let guard = state.service.guard(&state.auth.directory, &who.principal);
        matches!(guard.get(conversation, id, false).await, Ok(Some(_)))
    }
}

fn frame(event: &str, data: &serde_json::Value) -> bytes::Bytes {
    bytes::Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// While a console is connected to this node, looks every [`REMOTE_POLL`] for writes the other
/// nodes of a PostgreSQL database made (the last modified conversation and transcript note, by
/// `modifiedon` then `versionnumber`: every write of a row gives it a higher version), and tells
/// this node's consoles to refetch when either moved.
pub async fn watch_other_nodes(state: Arc<AppState>) {
    let mut seen: Option<Vec<Option<i64>>> = None;
    loop {
        tokio::time::sleep(REMOTE_POLL).await;
        if !state.console.watched() {
            seen = None;
            continue;
        }
        match latest_versions(&state).await {
            Ok(now) => {
                // The first look after a console connected has nothing to compare with: a
                // write may have landed between its first fetch and this look, so it refetches.
                if seen.as_ref().is_none_or(|before| *before != now) {
                    state.console.notify(Event::Changed);
                }
                seen = Some(now);
            }
            Err(e) => tracing::warn!("looking for other nodes' writes failed: {e}"),
        }
    }
}

async fn latest_versions(state: &AppState) -> Result<Vec<Option<i64>>, crate::store::StoreError> {
    use crate::metadata::system::{MODIFIED_ON, VERSION_NUMBER};
    use crate::query::options::OrderBy;
    use crate::store::sql::Plan;
    let catalog = &state.service.catalog;
    let store = state.service.system().store();
    let mut versions = Vec::new();
    for table in [
        crate::metadata::sms::CONVERSATION,
        crate::metadata::transcripts::ANNOTATION,
    ] {
        let Some(entity) = catalog.entity(table) else {
            continue;
        };
        // Newest first by modifiedon (indexed on conversations), ties by version.
        let order: Vec<OrderBy> = [MODIFIED_ON, VERSION_NUMBER]
            .into_iter()
            .filter_map(|column| {
                Some(OrderBy {
                    prop: crate::query::PropertyRef {
                        index: entity.position(column)?,
                        name: column.to_owned(),
                    },
                    descending: true,
                })
            })
            .collect();
        let rows = store
            .query(crate::store::Query {
                plan: Plan {
                    entity: Arc::clone(entity),
                    filter: None,
                    order,
                    limit: Some(1),
                    after: None,
                    scope: None,
                    related: None,
                },
                context: crate::store::sql::Context {
                    now: time::OffsetDateTime::now_utc().unix_timestamp(),
                    user_id: Uuid::nil(),
                    business_unit_id: Uuid::nil(),
                },
                with_names: false,
            })
            .await?;
        versions.push(rows.first().and_then(|r| r.get(VERSION_NUMBER).as_int()));
    }
    Ok(versions)
}
