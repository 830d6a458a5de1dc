//! The HTTP edge: routes, authentication, body limits, per-request logging, and the mapping of
//! every message's outcome to Dataverse's status codes, headers and JSON.
//!
//! A request goes: authenticate ([`auth`]: the caller and its roles) → service protection
//! ([`limits`]) → parse the path ([`crate::parse::path`]) → parse headers, options and body →
//! execute ([`crate::execute::Service`]) against the store behind the caller's
//! [`crate::authorize::Guard`] → serialize ([`crate::serialize`]).

mod audit;
pub mod auth;
mod batch;
mod bulk;
mod changes;
pub mod console;
mod deep;
pub mod error;
mod keys;
pub mod limits;
mod navigation;
mod options;
mod organization;
mod settings;
mod sharing;
pub mod sms;
mod sql;
mod stamp;
mod views;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use self::auth::Authenticator;
use self::error::ApiError;
use crate::authorize::Guard;
use crate::execute::read::{Front, ReadRequest, ReadResult, RecordRead, RecordResult};
use crate::execute::{Caller, ExecError, Preconditions, Service, Upserted};
use crate::metadata::Entity;
use crate::parse::body::{
    check_content_type, parse_object, parse_payload, parse_value, Bind, Payload,
};
use crate::parse::headers::{ascii_text, etag, Annotations, Condition, Prefer};
use crate::parse::key::AlternateKey;
use crate::parse::path::{self, parse_reference, Resource};
use crate::parse::select::{option, query_pairs};
use crate::parse::ParseError;
use crate::query::QueryOptions;
use crate::serialize;
use crate::store::{StoreError, Value};

/// Dataverse's page size limit.
pub const MAX_PAGE_SIZE: usize = 5000;

const JSON_CONTENT_TYPE: &str = "application/json; odata.metadata=minimal";

/// What every handler shares.
pub struct AppState {
    pub service: Service,
    pub auth: Authenticator,
    pub max_body_bytes: usize,
    /// From a request's head to the last byte of its body (`--body-timeout`).
    pub body_timeout: std::time::Duration,
    /// The SMS channel: webhooks, channel administration, outbound messages.
    pub sms: sms::SmsState,
    pub limiter: Arc<limits::Limiter>,
    /// The organisation this store holds (WhoAmI, RetrieveCurrentOrganization).
    pub organization: crate::execute::organization::Organization,
    /// Wakes this node's job worker when a request records a system job.
    pub jobs: Arc<tokio::sync::Notify>,
    /// Seconds a delta token stays valid (`--change-log-retention-secs`; `i64::MAX`: always).
    pub change_log_retention_secs: i64,
    /// The web console: its live-event channel and development login.
    pub console: console::ConsoleState,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(console::root))
        .route("/console/events", get(console::events))
        .route(
            "/console/dev-login",
            get(console::dev_login_offered).post(console::dev_login),
        )
        .route("/console/{name}", get(console::assets))
        .route("/health", get(health))
        .route(sms::TWILIO_PATH, post(sms::twilio))
        .route(sms::TWILIO_STATUS_PATH, post(sms::twilio_status))
        .route(sms::TELESIGN_PATH, post(sms::telesign))
        .route("/api/data/{version}", any(odata))
        .route("/api/data/{version}/", any(odata))
        .route("/api/data/{version}/{*rest}", any(odata))
        .fallback(fallback)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(stamp::StampLayer)
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// A panic in a handler is a bug: it answers an opaque 500 in Dataverse's shape and is logged.
fn panic_response(cause: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let text = cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(cause = text, "a handler panicked");
    ApiError::unexpected().into_response()
}

/// Outside every route (`/api`, `/api/data`, a typo): a 404 pointing at the API's root.
pub(crate) async fn fallback(request: Request) -> Response {
    ApiError::outside_api(&request.uri().to_string()).into_response()
}

/// Everything a handler needs to know about one request.
struct Call<'a> {
    state: &'a AppState,
    /// Where the message reads and writes: the store, or a `$batch` change set's transaction,
    /// behind the authorize layer.
    db: &'a Guard<'a>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    root: String,
    uri: String,
    pairs: Vec<(String, String)>,
    prefer: Prefer,
    body: bytes::Bytes,
    /// The alternate key of a `PATCH {set}(col='v',...)` that matched no record: the upsert
    /// creates one with the key's values (the path then names a fresh id).
    unmatched_key: Option<AlternateKey>,
}

async fn odata(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let reads_only = matches!(*request.method(), Method::GET | Method::HEAD);
    match handle(&state, request).await {
        Ok(response) => {
            // A write answered 2xx has committed (a `$batch` may have committed some parts):
            // the open consoles refetch what they show.
            if !reads_only && response.status().is_success() {
                state.console.notify(console::Event::Changed);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn handle(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let raw_path = parts.uri.path();
    let after = raw_path.strip_prefix("/api/data/").unwrap_or_default();
    let (version, rest) = after.split_once('/').unwrap_or((after, ""));
    if !path::VERSIONS.contains(&version) {
        return Err(ParseError::ResourceNotFound(version.to_string()).into());
    }
    let who = state
        .auth
        .authenticate(&parts.headers, state.service.system().store())
        .await?;
    // Service protection counts the signed-in user (the real caller when impersonating).
    let _permit = state
        .limiter
        .admit(who.caller.on_behalf_of.unwrap_or(who.caller.user_id))?;
    let guard = state.service.guard(&state.auth.directory, &who.principal);
    let host = crate::tls::request_host(&parts);
    let scheme = crate::tls::request_scheme(&parts);
    let root = [scheme, "://", host, "/api/data/", version, "/"].concat();
    if rest == "$batch" {
        if parts.method != Method::POST {
            return Err(ApiError::no_resource(&parts.uri.to_string()));
        }
        let limit = state
            .max_body_bytes
            .saturating_mul(batch::BODY_LIMIT_FACTOR);
        let body = read_body(body, limit, state.body_timeout).await?;
        return batch::execute(state, &who, &root, &parts.headers, &body).await;
    }
    // A bulk message carries up to 1000 records, as a `$batch` carries 1000 requests.
    let limit = if path::is_collection_action(rest) {
        state
            .max_body_bytes
            .saturating_mul(batch::BODY_LIMIT_FACTOR)
    } else {
        state.max_body_bytes
    };
    let body = read_body(body, limit, state.body_timeout).await?;
    let request = Inner {
        method: parts.method,
        uri: parts.uri.to_string(),
        path: rest.to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    run(state, &guard, who.caller, root, request).await
}

/// A request's body, whole: at most `limit` bytes (else 413), all of it within `deadline`
/// (else 408: a client that trickles its body cannot hold a connection and a task).
pub(crate) async fn read_body(
    body: axum::body::Body,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<bytes::Bytes, ApiError> {
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::body_too_large(limit)),
        Err(_) => Err(ApiError::body_timeout(deadline)),
    }
}

/// One request to run: a top-level one, or a part of a `$batch`.
pub(crate) struct Inner {
    pub method: Method,
    /// The request URI as written, for error messages.
    pub uri: String,
    /// The path below the service root, still percent-encoded.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

/// Parses and dispatches one request against `db` (the store, or a change set's transaction).
pub(crate) async fn run(
    state: &AppState,
    db: &Guard<'_>,
    caller: Caller,
    root: String,
    request: Inner,
) -> Result<Response, ApiError> {
    let mut segments = request
        .path
        .split('/')
        .map(|s| {
            // Most segments have nothing to decode: copying them skips a byte-by-byte decoder
            // (retrieve 102,091 -> 101,267 instructions, callgrind).
            if !s.contains('%') {
                return Ok(s.to_string());
            }
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| ParseError::ResourceNotFound(s.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let unmatched_key =
        keys::resolve_path(state, db, &caller, &request.method, &mut segments).await?;
    let resource = path::parse(&state.service.catalog, &segments)?;
    let pairs = query_pairs(request.query.as_deref());
    options::check(&resource, &request.method, &pairs)?;
    let prefer = prefer_of(&request.headers)?;
    let call = Call {
        state,
        db,
        caller,
        method: request.method,
        uri: request.uri,
        pairs,
        headers: request.headers,
        root,
        prefer,
        body: request.body,
        unmatched_key,
    };
    // Boxed: `dispatch`'s future holds the largest state of every message; inline, each
    // caller's future would be as large and be copied whole as it is wrapped.
    Box::pin(dispatch(call, resource)).await
}

/// The URL of a record a request created, carried on its response for `$batch` references.
#[derive(Debug, Clone)]
pub(crate) struct CreatedEntity(pub String);

async fn dispatch(call: Call<'_>, resource: Resource) -> Result<Response, ApiError> {
    let method = call.method.clone();
    match (method, resource) {
        (Method::GET, Resource::ServiceDocument) => Ok(service_document(&call)),
        (Method::GET, Resource::Metadata) => {
            settings::refresh(&call).await?;
            metadata_document(&call)
        }
        (Method::GET, Resource::Schema(segments)) => {
            keys::refresh(&call).await?;
            settings::refresh(&call).await?;
            schema_request(&call, &segments)
        }
        (Method::PUT, Resource::Schema(segments)) => {
            settings::put_definition(&call, &segments).await
        }
        (Method::POST | Method::DELETE, Resource::Schema(segments))
            if keys::addresses_keys(&segments) =>
        {
            keys::keys_request(&call, &segments).await
        }
        (Method::GET, Resource::Collection(entity)) => list(&call, &entity).await,
        (Method::POST, Resource::Collection(entity)) => create(&call, &entity).await,
        (Method::GET, Resource::Count(entity)) => count(&call, &entity).await,
        (Method::POST, Resource::CollectionAction { entity, name }) => {
            bulk::run(&call, &entity, &name).await
        }
        (Method::GET, Resource::Record(entity, id)) => retrieve(&call, &entity, id).await,
        (Method::PATCH, Resource::Record(entity, id)) => upsert(&call, &entity, id).await,
        (Method::DELETE, Resource::Record(entity, id)) => delete(&call, &entity, id).await,
        (
            Method::GET,
            Resource::Property {
                entity,
                id,
                position,
                raw,
            },
        ) => property(&call, &entity, id, position, raw).await,
        (
            Method::PUT,
            Resource::Property {
                entity,
                id,
                position,
                raw: false,
            },
        ) => put_property(&call, &entity, id, position).await,
        (
            Method::DELETE,
            Resource::Property {
                entity,
                id,
                position,
                raw: false,
            },
        ) => clear_property(&call, &entity, id, position).await,
        (
            Method::GET,
            Resource::Navigation {
                entity,
                id,
                position,
                reference,
            },
        ) => navigation(&call, &entity, id, position, reference).await,
        (
            Method::DELETE,
            Resource::Navigation {
                entity,
                id,
                position,
                reference: true,
            },
        ) => clear_reference(&call, &entity, id, position).await,
        (
            Method::PUT,
            Resource::Navigation {
                entity,
                id,
                position,
                reference: true,
            },
        ) => navigation::set_reference(&call, &entity, id, position).await,
        (
            Method::GET,
            Resource::RelatedRows {
                entity,
                id,
                source,
                lookup,
            },
        ) => navigation::related_rows(&call, &entity, id, &source, lookup).await,
        (
            Method::POST | Method::DELETE,
            Resource::RelatedReference {
                entity,
                id,
                source,
                lookup,
                key,
            },
        ) => navigation::related_reference(&call, &entity, id, &source, lookup, key).await,
        (Method::GET, Resource::Function { name, arguments })
            if name == "IsValidStateTransition" =>
        {
            is_valid_state_transition(&call, &arguments).await
        }
        (_, Resource::Function { name, .. }) if name == "IsValidStateTransition" => {
            Err(ApiError::no_resource(&call.uri))
        }
        (Method::GET, Resource::Function { name, arguments })
            if name == "RetrieveSharedPrincipalsAndAccess" =>
        {
            sharing::shared_principals(&call, &arguments).await
        }
        (_, Resource::Function { name, arguments })
            if organization::FUNCTIONS.contains(&name.as_str()) =>
        {
            organization::function(&call, &name, &arguments).await
        }
        (
            _,
            Resource::BoundFunction {
                entity,
                id,
                name,
                arguments,
            },
        ) if name == organization::USER_PRIVILEGES => {
            organization::user_privileges(&call, &entity, id, &arguments).await
        }
        (_, Resource::Action(name)) if name == "BulkDelete" => bulk::bulk_delete(&call).await,
        (Method::POST, Resource::Action(name)) if name == audit::DELETE_AUDIT_DATA => {
            audit::delete_audit_data(&call).await
        }
        (Method::GET, Resource::Function { name, arguments })
            if audit::FUNCTIONS.contains(&name.as_str()) =>
        {
            audit::function(&call, &name, &arguments).await
        }
        (_, Resource::Action(name)) => sharing::action(&call, &name).await,
        (
            _,
            Resource::BoundFunction {
                entity,
                id,
                name,
                arguments,
            },
        ) => sharing::bound_function(&call, &entity, id, &name, &arguments).await,
        (
            Method::POST | Method::DELETE,
            Resource::Association {
                entity,
                id,
                relationship,
                key,
            },
        ) => sharing::association(&call, &entity, id, &relationship, key).await,
        (_, Resource::SmsChannels(id)) => sms::channels(&call, id).await,
        (_, Resource::BoundAction { id, name, .. }) if name == crate::metadata::sms::SEND_SMS => {
            sms::send_sms(&call, id).await
        }
        (_, Resource::Function { name, .. }) => Err(ParseError::ResourceNotFound(name).into()),
        _ => Err(ApiError::no_resource(&call.uri)),
    }
}

fn json_response(status: StatusCode, body: &Map<String, Json>) -> Response {
    bytes_response(status, serde_json::to_vec(body).unwrap_or_default())
}

fn bytes_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

use serialize::record_url;

/// `Preference-Applied` for what was honoured.
fn preference_applied(response: &mut Response, items: &[String]) {
    if !items.is_empty() {
        set_header(response, "Preference-Applied", &items.join(","));
    }
}

fn annotations_applied(prefer: &Prefer) -> Option<String> {
    prefer
        .include_annotations
        .as_ref()
        .map(|a| format!("odata.include-annotations=\"{a}\""))
}

/// Every table the Web API serves: the catalog's and the SMS channel table.
fn served_catalog(state: &AppState) -> crate::metadata::Catalog {
    state
        .service
        .catalog
        .with_entities(std::slice::from_ref(state.sms.sms.channel_table()))
}

fn service_document(call: &Call<'_>) -> Response {
    let value: Vec<Json> = served_catalog(call.state)
        .entities()
        .iter()
        .map(|e| json!({"name": e.entity_set_name, "kind": "EntitySet", "url": e.entity_set_name}))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Json::String(format!("{}$metadata", call.root)),
    );
    body.insert("value".into(), Json::Array(value));
    json_response(StatusCode::OK, &body)
}

/// `$metadata`: the CSDL document (`?annotations=true` adds descriptions and `Computed`).
fn metadata_document(call: &Call<'_>) -> Result<Response, ApiError> {
    let annotations = match option(&call.pairs, "annotations") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ParseError::BadQuery(format!(
                "The value '{other}' of 'annotations' is not 'true' or 'false'."
            ))
            .into())
        }
    };
    let document = crate::schema::csdl(&served_catalog(call.state), annotations);
    let mut response = (StatusCode::OK, document).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    Ok(response)
}

/// `EntityDefinitions(...)`, `RelationshipDefinitions`, `sdkmessagefilters`, ...: the metadata
/// Web API, computed from the catalog.
fn schema_request(call: &Call<'_>, segments: &[String]) -> Result<Response, ApiError> {
    let request = crate::schema::parse_schema_path(segments, &call.pairs)?;
    let body = request.respond(&call.state.service.catalog, &call.root)?;
    Ok(bytes_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

/// `$select` and `$expand` of a single-record request (other options are refused), read as
/// the request asks for them; the id is set when the record is known.
fn record_query(call: &Call<'_>, entity: &Arc<Entity>) -> Result<RecordRead, ApiError> {
    let options = QueryOptions::parse(&call.state.service.catalog, entity, &call.pairs)?;
    let with_names = call.prefer.annotations().wants_formatted_values();
    Ok(ReadRequest::record_read(
        entity,
        Uuid::nil(),
        options,
        with_names,
    )?)
}

/// Reads one record (with its `$expand`) through the read planner.
async fn read_record(call: &Call<'_>, read: RecordRead) -> Result<RecordResult, ApiError> {
    match call
        .state
        .service
        .read(call.db, &call.caller, ReadRequest::Record(read))
        .await?
    {
        ReadResult::Record(result) => Ok(result),
        _ => Err(ApiError::no_resource(&call.uri)),
    }
}

fn serialize_request<'a>(
    call: &'a Call<'_>,
    annotations: &'a Annotations,
) -> serialize::Request<'a> {
    serialize::Request {
        root: &call.root,
        pairs: &call.pairs,
        path: None,
        annotations,
    }
}

async fn retrieve(call: &Call<'_>, entity: &Arc<Entity>, id: Uuid) -> Result<Response, ApiError> {
    let mut read = record_query(call, entity)?;
    read.id = id;
    let annotations = call.prefer.annotations();
    let plain = annotations.none() && read.expand.is_empty();
    let result = read_record(call, read).await?;
    let version = result.record.version().unwrap_or_default();
    let if_none_match = condition(&call.headers, "If-None-Match")?;
    if plain && if_none_match.is_some_and(|c| c.matches(version)) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_header(&mut response, "ETag", &etag(version));
        return Ok(response);
    }
    let body = serialize::record_body(&serialize_request(call, &annotations), &result);
    let mut response = bytes_response(StatusCode::OK, body);
    set_header(&mut response, "ETag", &etag(version));
    preference_applied(
        &mut response,
        &annotations_applied(&call.prefer)
            .into_iter()
            .collect::<Vec<_>>(),
    );
    Ok(response)
}

/// A header whose grammar is ASCII, as text; other bytes are a 400 naming the header.
fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ParseError> {
    headers
        .get(name)
        .map(|v| ascii_text(name, v.as_bytes()))
        .transpose()
}

/// An `If-Match` or `If-None-Match` precondition, read from the header's bytes.
fn condition(headers: &HeaderMap, name: &str) -> Result<Option<Condition>, ParseError> {
    Condition::parse(name, headers.get(name).map(HeaderValue::as_bytes))
}

/// Every `Prefer` header of a request, joined.
fn prefer_of(headers: &HeaderMap) -> Result<Prefer, ParseError> {
    let values = headers
        .get_all("prefer")
        .iter()
        .map(|v| ascii_text("Prefer", v.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Prefer::parse(values.into_iter()))
}

async fn read_payload(call: &Call<'_>, entity: &Entity) -> Result<Payload, ApiError> {
    check_content_type(header_str(&call.headers, "Content-Type")?)?;
    let mut object = parse_object(entity, &call.body)?;
    keys::resolve_binds(call, &mut object).await?;
    Ok(parse_payload(&call.state.service.catalog, entity, &object)?)
}

async fn create(call: &Call<'_>, entity: &Arc<Entity>) -> Result<Response, ApiError> {
    let query = record_query(call, entity)?;
    check_content_type(header_str(&call.headers, "Content-Type")?)?;
    let mut object = parse_object(entity, &call.body)?;
    keys::resolve_binds(call, &mut object).await?;
    let catalog = &call.state.service.catalog;
    let (id, version) = if deep::is_deep(catalog, entity, &object) {
        deep::create(call, entity, object).await?
    } else {
        let payload = parse_payload(catalog, entity, &object)?;
        call.state
            .service
            .create(call.db, &call.caller, entity, payload, None)
            .await?
    };
    let url = record_url(&call.root, entity, id);
    if call.prefer.return_representation {
        let mut response = representation(call, id, query, StatusCode::CREATED).await?;
        response.extensions_mut().insert(CreatedEntity(url));
        return Ok(response);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.extensions_mut().insert(CreatedEntity(url));
    set_header(
        &mut response,
        "OData-EntityId",
        &record_url(&call.root, entity, id),
    );
    set_header(&mut response, "ETag", &etag(version));
    Ok(response)
}

/// The record as written, for `Prefer: return=representation`.
async fn representation(
    call: &Call<'_>,
    id: Uuid,
    mut read: RecordRead,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let annotations = call.prefer.annotations();
    read.id = id;
    let result = read_record(call, read).await?;
    let body = serialize::record_body(&serialize_request(call, &annotations), &result);
    let mut response = bytes_response(status, body);
    set_header(
        &mut response,
        "ETag",
        &etag(result.record.version().unwrap_or_default()),
    );
    let mut applied = vec!["return=representation".to_string()];
    applied.extend(annotations_applied(&call.prefer));
    preference_applied(&mut response, &applied);
    Ok(response)
}

async fn upsert(call: &Call<'_>, entity: &Arc<Entity>, id: Uuid) -> Result<Response, ApiError> {
    // `$expand` is ignored on an update's representation, as Dataverse does.
    let query = RecordRead {
        expand: Vec::new(),
        ..record_query(call, entity)?
    };
    let mut payload = read_payload(call, entity).await?;
    let preconditions = Preconditions {
        if_match: condition(&call.headers, "If-Match")?,
        if_none_match: condition(&call.headers, "If-None-Match")?,
    };
    let mut id = id;
    let outcome = match &call.unmatched_key {
        None => {
            call.state
                .service
                .upsert(call.db, &call.caller, entity, id, payload, &preconditions)
                .await?
        }
        Some(key) => {
            // `If-Match: *` updates only: a key that matches nothing is not found.
            if preconditions.if_match.is_some() {
                return Err(ExecError::KeyNotFound {
                    entity: entity.logical_name.clone(),
                }
                .into());
            }
            keys::key_payload(&call.state.service.catalog, key, &mut payload)?;
            let retry = payload.clone();
            match call
                .state
                .service
                .upsert(call.db, &call.caller, entity, id, payload, &preconditions)
                .await
            {
                Ok(outcome) => outcome,
                // Another request created the record first: its key's unique index refused
                // this one. Unless it is create-only, the upsert updates that record.
                Err(ExecError::Store(StoreError::DuplicateKey(detail))) => {
                    let found = keys::find(call.state, call.db, &call.caller, key).await?;
                    match found {
                        Some(existing) if preconditions.if_none_match.is_none() => {
                            id = existing;
                            call.state
                                .service
                                .upsert(call.db, &call.caller, entity, id, retry, &preconditions)
                                .await?
                        }
                        Some(_) => return Err(ExecError::Duplicate.into()),
                        None => {
                            return Err(ExecError::Store(StoreError::DuplicateKey(detail)).into())
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    if call.prefer.return_representation {
        let status = match outcome {
            Upserted::Created => StatusCode::CREATED,
            Upserted::Updated => StatusCode::OK,
        };
        let mut response = representation(call, id, query, status).await?;
        response
            .extensions_mut()
            .insert(CreatedEntity(record_url(&call.root, entity, id)));
        return Ok(response);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let url = record_url(&call.root, entity, id);
    set_header(&mut response, "OData-EntityId", &url);
    response.extensions_mut().insert(CreatedEntity(url));
    Ok(response)
}

async fn delete(call: &Call<'_>, entity: &Arc<Entity>, id: Uuid) -> Result<Response, ApiError> {
    let if_match = condition(&call.headers, "If-Match")?;
    call.state
        .service
        .delete(call.db, &call.caller, entity, id, if_match.as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn property(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    position: usize,
    raw: bool,
) -> Result<Response, ApiError> {
    let record = call
        .state
        .service
        .retrieve(call.db, &call.caller, entity, id, false)
        .await?;
    let value = &record.values[position];
    if value.is_null() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let name = entity.attributes[position].property_name();
    if raw {
        let text = serialize::raw_value(value).unwrap_or_default();
        let mut response = (StatusCode::OK, text).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(response);
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Json::String(format!(
            "{}$metadata#{}({id})/{name}",
            call.root, entity.entity_set_name
        )),
    );
    body.insert("value".into(), serialize::json_value(value));
    Ok(json_response(StatusCode::OK, &body))
}

async fn put_property(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    position: usize,
) -> Result<Response, ApiError> {
    check_content_type(header_str(&call.headers, "Content-Type")?)?;
    let object = parse_object(entity, &call.body)?;
    let attribute = &entity.attributes[position];
    if attribute.attribute_type.is_lookup() {
        return Err(ParseError::LookupValueProperty(attribute.property_name().to_string()).into());
    }
    let json = object.get("value").ok_or_else(|| ParseError::Payload {
        entity_set: entity.entity_set_name.clone(),
        detail: "The body of a property update is {\"value\": ...}.".into(),
    })?;
    let value = parse_value(entity, attribute, json)?;
    let payload = Payload {
        values: vec![(position, value)],
        binds: Vec::new(),
    };
    update_only(call, entity, id, payload).await
}

/// An update (never an upsert) answered with 204.
async fn update_only(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    payload: Payload,
) -> Result<Response, ApiError> {
    call.state
        .service
        .update(call.db, &call.caller, entity, id, payload)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn clear_property(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    position: usize,
) -> Result<Response, ApiError> {
    let attribute = &entity.attributes[position];
    if attribute.attribute_type.is_lookup() {
        return Err(ApiError::no_resource(&call.uri));
    }
    let payload = Payload {
        values: vec![(position, Value::Null)],
        binds: Vec::new(),
    };
    update_only(call, entity, id, payload).await
}

async fn clear_reference(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    position: usize,
) -> Result<Response, ApiError> {
    let payload = Payload {
        values: Vec::new(),
        binds: vec![Bind {
            position,
            target: None,
        }],
    };
    update_only(call, entity, id, payload).await
}

async fn navigation(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    position: usize,
    reference: bool,
) -> Result<Response, ApiError> {
    let service = &call.state.service;
    let record = service
        .retrieve(call.db, &call.caller, entity, id, false)
        .await?;
    let attribute = &entity.attributes[position];
    let Some(target_id) = record.values[position].as_guid() else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let target_name = if attribute.targets.len() == 1 {
        attribute.targets[0].clone()
    } else {
        record
            .get(&format!("{}type", attribute.logical_name))
            .as_text()
            .unwrap_or_default()
            .to_string()
    };
    let target = service
        .catalog
        .entity(&target_name)
        .cloned()
        .ok_or_else(|| ApiError::no_resource(&call.uri))?;
    if reference {
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Json::String(format!("{}$metadata#$ref", call.root)),
        );
        body.insert(
            "@odata.id".into(),
            Json::String(record_url(&call.root, &target, target_id)),
        );
        return Ok(json_response(StatusCode::OK, &body));
    }
    let mut read = record_query(call, &target)?;
    read.id = target_id;
    let annotations = call.prefer.annotations();
    let result = read_record(call, read).await?;
    let body = serialize::record_body(&serialize_request(call, &annotations), &result);
    Ok(bytes_response(StatusCode::OK, body))
}

/// `GET {set}`: an OData list or aggregation, or FetchXML; the front end compiles the request,
/// the planner reads it, the serializer writes it.
async fn list(call: &Call<'_>, entity: &Arc<Entity>) -> Result<Response, ApiError> {
    if changes::is_tracked(call) {
        settings::refresh(call).await?;
        if changes::applies(call, entity) {
            return changes::tracked_list(call, entity).await;
        }
    }
    // A view (`savedQuery`, `userQuery`) runs its FetchXML like `fetchXml`.
    let view = views::chosen_view(call, entity).await?;
    let catalog = &call.state.service.catalog;
    let annotations = call.prefer.annotations();
    let with_names = annotations.wants_formatted_values();
    let sql = option(&call.pairs, "sql");
    let request = match (
        sql,
        view.as_deref().or_else(|| option(&call.pairs, "fetchXml")),
    ) {
        (Some(text), _) => sql::request(call, entity, text, with_names)?,
        (None, Some(text)) => {
            let query = crate::query::fetchxml::parse(catalog, text)?;
            let odata_options = call.pairs.iter().any(|(k, _)| k.starts_with('$'));
            ReadRequest::fetch(entity, query, odata_options, with_names)?
        }
        (None, None) => {
            let options = QueryOptions::parse(catalog, entity, &call.pairs)?;
            // `$top` wins over `odata.maxpagesize` (which is then not applied, nor echoed).
            let max_page_size = call.prefer.max_page_size.filter(|_| options.top.is_none());
            ReadRequest::list(entity, options, max_page_size, with_names)?
        }
    };
    rows_response(call, request, None).await
}

/// Runs a list read and writes its page (or its aggregation); `path` is the collection's path
/// when it is not the entity set (for the nextLink).
async fn rows_response(
    call: &Call<'_>,
    request: ReadRequest,
    path: Option<&str>,
) -> Result<Response, ApiError> {
    let annotations = call.prefer.annotations();
    let result = call
        .state
        .service
        .read(call.db, &call.caller, request)
        .await?;
    let mut frame = serialize_request(call, &annotations);
    frame.path = path;
    let mut applied = Vec::new();
    let body = match &result {
        ReadResult::Rows(rows) => {
            if let Some(size) = rows.request.page.max_page_size {
                applied.push(format!("odata.maxpagesize={size}"));
            }
            serialize::rows_body(&frame, rows)
        }
        ReadResult::Aggregate { request, rows } => {
            return Ok(bytes_response(
                StatusCode::OK,
                serialize::aggregate_body(&frame, request, rows),
            ));
        }
        ReadResult::Count(_) | ReadResult::Record(_) => {
            return Err(ApiError::no_resource(&call.uri))
        }
    };
    let fetch = matches!(&result, ReadResult::Rows(rows) if rows.request.front == Front::FetchXml);
    let mut response = bytes_response(StatusCode::OK, body);
    if !fetch {
        applied.extend(annotations_applied(&call.prefer));
        preference_applied(&mut response, &applied);
    }
    Ok(response)
}

/// `/$count`: the number of rows the `$filter` selects (Dataverse caps it at 5,000).
async fn count(call: &Call<'_>, entity: &Arc<Entity>) -> Result<Response, ApiError> {
    let options = QueryOptions::parse(&call.state.service.catalog, entity, &call.pairs)?;
    let request = ReadRequest::count(entity, options)?;
    let ReadResult::Count(total) = call
        .state
        .service
        .read(call.db, &call.caller, request)
        .await?
    else {
        return Err(ApiError::no_resource(&call.uri));
    };
    let mut response = (StatusCode::OK, total.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// A function argument: inline, or a parameter alias (`@e`) resolved from the query string.
fn argument<'a>(
    call: &'a Call<'_>,
    arguments: &'a [(String, String)],
    name: &str,
) -> Result<&'a str, ParseError> {
    let raw = arguments
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| {
            ParseError::InvalidArgument(format!("The parameter '{name}' is missing."))
        })?;
    if raw.starts_with('@') {
        return option(&call.pairs, raw).ok_or_else(|| {
            ParseError::InvalidArgument(format!("The parameter alias '{raw}' has no value."))
        });
    }
    Ok(raw)
}

async fn is_valid_state_transition(
    call: &Call<'_>,
    arguments: &[(String, String)],
) -> Result<Response, ApiError> {
    let catalog = &call.state.service.catalog;
    let entity_text = argument(call, arguments, "Entity")?;
    let resolved = keys::resolve_argument(call, entity_text).await?;
    let (entity, id) = entity_reference(catalog, &resolved).ok_or_else(|| {
        ParseError::InvalidArgument(format!(
            "The parameter 'Entity' must be an entity reference such as {{'@odata.id':'msdyn_smsengagementctxes(<id>)'}}, not '{entity_text}'."
        ))
    })?;
    let state_text = argument(call, arguments, "NewState")?;
    let new_state = state_text
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .ok_or_else(|| {
            ParseError::InvalidArgument(format!(
                "The parameter 'NewState' must be a quoted string such as 'Inactive', not {state_text}."
            ))
        })?;
    let status_text = argument(call, arguments, "NewStatus")?;
    let new_status: i64 = status_text.parse().map_err(|_| {
        ParseError::InvalidArgument(format!(
            "The parameter 'NewStatus' must be an integer, not {status_text}."
        ))
    })?;
    let valid = call
        .state
        .service
        .is_valid_state_transition(call.db, &call.caller, &entity, id, new_state, new_status)
        .await?;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Json::String(format!(
            "{}$metadata#Microsoft.Dynamics.CRM.IsValidStateTransitionResponse",
            call.root
        )),
    );
    body.insert("IsValid".into(), Json::Bool(valid));
    Ok(json_response(StatusCode::OK, &body))
}

/// `{'@odata.id':'set(id)'}` (single or double quotes) to an entity and id.
fn entity_reference(catalog: &crate::metadata::Catalog, text: &str) -> Option<(Arc<Entity>, Uuid)> {
    let json: Json = serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&text.replace('\'', "\"")))
        .ok()?;
    let reference = json.get("@odata.id")?.as_str()?;
    parse_reference(catalog, reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Catalog;

    #[test]
    fn entity_references_accept_both_quote_styles() {
        let catalog = Catalog::builtin().unwrap();
        let id = "3c6e4b5f-86f6-e411-80dd-00155d2a68cb";
        for text in [
            format!("{{'@odata.id':'msdyn_smsengagementctxes({id})'}}"),
            format!("{{\"@odata.id\":\"msdyn_smsengagementctxes({id})\"}}"),
        ] {
            let (entity, got) = entity_reference(&catalog, &text).unwrap();
            assert_eq!(entity.logical_name, "msdyn_smsengagementctx");
            assert_eq!(got.to_string(), id);
        }
        assert!(entity_reference(&catalog, "{'@odata.id':'nothing(1)'}").is_none());
    }
}
