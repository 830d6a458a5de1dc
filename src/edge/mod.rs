//! The HTTP edge: routes, authentication, body limits, per-request logging, and the mapping of
//! every message's outcome to Dataverse's status codes, headers and JSON.
//!
//! A request goes: authenticate ([`auth`]: the caller and its roles) → service protection
//! ([`limits`]) → parse the path ([`crate::parse::path`]) → parse headers, options and body →
//! execute ([`crate::execute::Service`]) against the store behind the caller's
//! [`crate::authorize::Guard`] → serialize ([`crate::serialize`]).

pub mod auth;
mod batch;
pub mod error;
mod fetch;
pub mod limits;
mod organization;
pub mod paging;
mod sharing;
pub mod sms;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use self::auth::Authenticator;
use self::error::ApiError;
use crate::authorize::Guard;
use crate::execute::{Caller, Preconditions, Service, Upserted};
use crate::metadata::Entity;
use crate::parse::body::{
    check_content_type, parse_object, parse_payload, parse_value, Bind, Payload,
};
use crate::parse::headers::{ascii_text, etag, Annotations, Condition, Prefer};
use crate::parse::path::{self, parse_reference, Resource};
use crate::parse::select::{option, query_pairs};
use crate::parse::ParseError;
use crate::query::{Expand, ExpandSelect, QueryOptions};
use crate::serialize;
use crate::store::sql::{AggregatePlan, Plan};
use crate::store::{Access, Value};

/// Dataverse's page size limit.
pub const MAX_PAGE_SIZE: usize = 5000;

const JSON_CONTENT_TYPE: &str = "application/json; odata.metadata=minimal";

/// What every handler shares.
pub struct AppState {
    pub service: Service,
    pub auth: Authenticator,
    pub max_body_bytes: usize,
    /// The SMS channel: webhooks, channel administration, outbound messages.
    pub sms: sms::SmsState,
    pub limiter: Arc<limits::Limiter>,
    /// The organisation this store holds (WhoAmI, RetrieveCurrentOrganization).
    pub organization: crate::execute::organization::Organization,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(sms::TWILIO_PATH, post(sms::twilio))
        .route(sms::TELESIGN_PATH, post(sms::telesign))
        .route("/api/data/{version}", any(odata))
        .route("/api/data/{version}/", any(odata))
        .route("/api/data/{version}/{*rest}", any(odata))
        .fallback(fallback)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(middleware::from_fn(log_and_stamp))
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
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "0x80040216",
        "An unexpected error occurred.",
    )
    .into_response()
}

async fn fallback(request: Request) -> Response {
    ApiError::no_resource(&request.uri().to_string()).into_response()
}

/// One log line per request, and `OData-Version: 4.0` on every response.
async fn log_and_stamp(request: Request, next: Next) -> Response {
    // With the line filtered out (`RUST_LOG=warn`), nothing is copied or formatted for it.
    let line = tracing::enabled!(target: "smsctx::http", tracing::Level::INFO).then(|| {
        (
            Instant::now(),
            request.method().clone(),
            request.uri().path().to_string(),
        )
    });
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    if let Some((started, method, path)) = line {
        tracing::info!(
            target: "smsctx::http",
            %method,
            %path,
            status = response.status().as_u16(),
            duration_us = started.elapsed().as_micros() as u64,
        );
    }
    response
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
}

async fn odata(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match handle(&state, request).await {
        Ok(response) => response,
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
        .authenticate(&parts.headers, &*state.service.store)
        .await?;
    // Service protection counts the signed-in user (the real caller when impersonating).
    let _permit = state
        .limiter
        .admit(who.caller.on_behalf_of.unwrap_or(who.caller.user_id))?;
    let guard = Guard {
        inner: &*state.service.store,
        store: Some(&*state.service.store),
        directory: &state.auth.directory,
        principal: &who.principal,
    };
    let host = crate::tls::request_host(&parts);
    let scheme = crate::tls::request_scheme(&parts);
    let root = format!("{scheme}://{host}/api/data/{version}/");
    if let Some(route) = sms::route(rest) {
        let body = axum::body::to_bytes(body, state.max_body_bytes)
            .await
            .map_err(|_| ApiError::body_too_large(state.max_body_bytes))?;
        return sms::api(
            state,
            &who.caller,
            &guard,
            &root,
            &parts.method,
            route,
            &body,
        )
        .await;
    }
    if rest == "$batch" {
        if parts.method != Method::POST {
            return Err(ApiError::no_resource(&parts.uri.to_string()));
        }
        let limit = state
            .max_body_bytes
            .saturating_mul(batch::BODY_LIMIT_FACTOR);
        let body = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::body_too_large(limit))?;
        return batch::execute(state, &who, &root, &parts.headers, &body).await;
    }
    let body = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| ApiError::body_too_large(state.max_body_bytes))?;
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
    let segments = request
        .path
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| ParseError::ResourceNotFound(s.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let resource = path::parse(&state.service.catalog, &segments)?;
    let prefer = prefer_of(&request.headers)?;
    let call = Call {
        state,
        db,
        caller,
        method: request.method,
        uri: request.uri,
        pairs: query_pairs(request.query.as_deref()),
        headers: request.headers,
        root,
        prefer,
        body: request.body,
    };
    dispatch(call, resource).await
}

/// The URL of a record a request created, carried on its response for `$batch` references.
#[derive(Debug, Clone)]
pub(crate) struct CreatedEntity(pub String);

async fn dispatch(call: Call<'_>, resource: Resource) -> Result<Response, ApiError> {
    let method = call.method.clone();
    match (method, resource) {
        (Method::GET, Resource::ServiceDocument) => Ok(service_document(&call)),
        (Method::GET, Resource::Metadata) => metadata_document(&call),
        (Method::GET, Resource::EntityDefinitions(segments)) => {
            entity_definitions(&call, &segments)
        }
        (Method::GET, Resource::Collection(entity)) => list(&call, &entity).await,
        (Method::POST, Resource::Collection(entity)) => create(&call, &entity).await,
        (Method::GET, Resource::Count(entity)) => count(&call, &entity).await,
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

fn record_url(root: &str, entity: &Entity, id: Uuid) -> String {
    format!("{root}{}({id})", entity.entity_set_name)
}

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

fn service_document(call: &Call<'_>) -> Response {
    let value: Vec<Json> = call
        .state
        .service
        .catalog
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
    let document = crate::schema::csdl(&call.state.service.catalog, annotations);
    let mut response = (StatusCode::OK, document).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    Ok(response)
}

/// `EntityDefinitions(...)`: table and column metadata as Dataverse returns it.
fn entity_definitions(call: &Call<'_>, segments: &[String]) -> Result<Response, ApiError> {
    let request = crate::schema::parse_definitions_path(segments, &call.pairs)?;
    let body = request.respond(&call.state.service.catalog, &call.root)?;
    Ok(bytes_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

fn select_names(entity: &Entity, select: &[usize]) -> Vec<String> {
    select
        .iter()
        .map(|&p| entity.attributes[p].property_name().to_string())
        .collect()
}

/// `$select` and `$expand` of a single-record request; other options are refused.
struct RecordQuery {
    select: Option<Vec<usize>>,
    expand: Vec<Expand>,
}

fn record_query(call: &Call<'_>, entity: &Entity) -> Result<RecordQuery, ApiError> {
    let options = QueryOptions::parse(&call.state.service.catalog, entity, &call.pairs)?;
    if options.filter.is_some()
        || !options.orderby.is_empty()
        || options.top.is_some()
        || options.count
        || options.apply.is_some()
        || options.skiptoken.is_some()
    {
        return Err(ParseError::BadQuery(
            "Only $select and $expand apply to a single record.".into(),
        )
        .into());
    }
    Ok(RecordQuery {
        select: positions(&options.select),
        expand: options.expand,
    })
}

/// Column positions of a bound `$select`; `None` (every column) when it is empty.
fn positions(select: &[crate::query::PropertyRef]) -> Option<Vec<usize>> {
    (!select.is_empty()).then(|| select.iter().map(|p| p.index).collect())
}

/// A related record of `$expand`, ready to write.
enum Expanded {
    Null,
    Reference(String),
    Record(crate::store::Record, Option<Vec<usize>>),
}

/// Reads the related records a `$expand` asks for.
async fn expand(
    call: &Call<'_>,
    record: &crate::store::Record,
    expands: &[Expand],
    with_names: bool,
) -> Result<Vec<(String, Expanded)>, ApiError> {
    let service = &call.state.service;
    let mut out = Vec::with_capacity(expands.len());
    for item in expands {
        let name = item.navigation.name.clone();
        let Some(id) = record.values[item.navigation.index].as_guid() else {
            out.push((name, Expanded::Null));
            continue;
        };
        let attribute = &record.entity.attributes[item.navigation.index];
        let target_name = match &item.target {
            Some(t) => t.clone(),
            None => serialize::lookup_target(record, attribute).unwrap_or_default(),
        };
        let Some(target) = service.catalog.entity(&target_name).cloned() else {
            out.push((name, Expanded::Null));
            continue;
        };
        if item.reference_only {
            out.push((
                name,
                Expanded::Reference(record_url(&call.root, &target, id)),
            ));
            continue;
        }
        let select = match &item.select {
            ExpandSelect::Bound(props) => positions(props),
            ExpandSelect::Raw(names) if names.is_empty() => None,
            ExpandSelect::Raw(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        target
                            .property_position(n)
                            .ok_or_else(|| ParseError::unknown_property(&target, n))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        // A related row the caller may not read expands to null, as a missing one does.
        match call.db.get(&target, id, with_names).await {
            Ok(Some(related)) => out.push((name, Expanded::Record(related, select))),
            Ok(None) | Err(crate::store::StoreError::Denied(_)) => out.push((name, Expanded::Null)),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

fn write_expanded(
    object: &mut serialize::ObjectWriter<'_>,
    expanded: &[(String, Expanded)],
    annotations: &Annotations,
) {
    for (name, item) in expanded {
        match item {
            Expanded::Null => object.value(name, &Value::Null),
            Expanded::Reference(url) => {
                let out = object.raw_key(name);
                let mut reference = serialize::ObjectWriter::open(out);
                reference.string("@odata.id", url);
                reference.close();
            }
            Expanded::Record(related, select) => {
                let out = object.raw_key(name);
                serialize::record(out, related, select.as_deref(), annotations);
            }
        }
    }
}

/// The `@odata.context` list of `$select` and `$expand`: `a,b,nav(c)`.
fn context_names(
    entity: &Entity,
    select: Option<&[usize]>,
    expand: &[Expand],
) -> Option<Vec<String>> {
    if select.is_none() && expand.is_empty() {
        return None;
    }
    let mut names = select.map(|s| select_names(entity, s)).unwrap_or_default();
    for item in expand {
        let nested = match &item.select {
            ExpandSelect::Bound(props) => props.iter().map(|p| p.name.clone()).collect(),
            ExpandSelect::Raw(raw) => raw.clone(),
        };
        names.push(format!("{}({})", item.navigation.name, nested.join(",")));
    }
    Some(names)
}

/// The JSON of one record as a single-entity response.
fn entity_body(
    call: &Call<'_>,
    record: &crate::store::Record,
    select: Option<&[usize]>,
    expand: &[Expand],
    expanded: &[(String, Expanded)],
    annotations: &Annotations,
) -> Vec<u8> {
    let entity = &record.entity;
    let names = context_names(entity, select, expand);
    let context = format!(
        "{}/$entity",
        serialize::collection_context(&call.root, &entity.entity_set_name, names.as_deref())
    );
    let mut out = Vec::with_capacity(1024);
    let mut object = serialize::ObjectWriter::open(&mut out);
    object.string("@odata.context", &context);
    serialize::record_members(&mut object, record, select, annotations);
    write_expanded(&mut object, expanded, annotations);
    object.close();
    out
}

async fn retrieve(call: &Call<'_>, entity: &Arc<Entity>, id: Uuid) -> Result<Response, ApiError> {
    let query = record_query(call, entity)?;
    let annotations = call.prefer.annotations();
    let record = call
        .state
        .service
        .retrieve(
            call.db,
            &call.caller,
            entity,
            id,
            annotations.wants_formatted_values(),
        )
        .await?;
    let version = record.version().unwrap_or_default();
    let if_none_match = condition(&call.headers, "If-None-Match")?;
    let plain = annotations.none() && query.expand.is_empty();
    if plain && if_none_match.is_some_and(|c| c.matches(version)) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_header(&mut response, "ETag", &etag(version));
        return Ok(response);
    }
    let with_names = annotations.wants_formatted_values();
    let expanded = expand(call, &record, &query.expand, with_names).await?;
    let body = entity_body(
        call,
        &record,
        query.select.as_deref(),
        &query.expand,
        &expanded,
        &annotations,
    );
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

fn read_payload(call: &Call<'_>, entity: &Entity) -> Result<Payload, ApiError> {
    check_content_type(header_str(&call.headers, "Content-Type")?)?;
    let object = parse_object(entity, &call.body)?;
    Ok(parse_payload(&call.state.service.catalog, entity, &object)?)
}

async fn create(call: &Call<'_>, entity: &Arc<Entity>) -> Result<Response, ApiError> {
    let query = record_query(call, entity)?;
    let payload = read_payload(call, entity)?;
    let (id, version) = call
        .state
        .service
        .create(call.db, &call.caller, entity, payload, None)
        .await?;
    let url = record_url(&call.root, entity, id);
    if call.prefer.return_representation {
        let mut response = representation(call, entity, id, &query, StatusCode::CREATED).await?;
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
    entity: &Arc<Entity>,
    id: Uuid,
    query: &RecordQuery,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let annotations = call.prefer.annotations();
    let record = call
        .state
        .service
        .retrieve(
            call.db,
            &call.caller,
            entity,
            id,
            annotations.wants_formatted_values(),
        )
        .await?;
    let expanded = expand(
        call,
        &record,
        &query.expand,
        annotations.wants_formatted_values(),
    )
    .await?;
    let body = entity_body(
        call,
        &record,
        query.select.as_deref(),
        &query.expand,
        &expanded,
        &annotations,
    );
    let mut response = bytes_response(status, body);
    set_header(
        &mut response,
        "ETag",
        &etag(record.version().unwrap_or_default()),
    );
    let mut applied = vec!["return=representation".to_string()];
    applied.extend(annotations_applied(&call.prefer));
    preference_applied(&mut response, &applied);
    Ok(response)
}

async fn upsert(call: &Call<'_>, entity: &Arc<Entity>, id: Uuid) -> Result<Response, ApiError> {
    // `$expand` is ignored on an update's representation, as Dataverse does.
    let query = RecordQuery {
        expand: Vec::new(),
        ..record_query(call, entity)?
    };
    let payload = read_payload(call, entity)?;
    let preconditions = Preconditions {
        if_match: condition(&call.headers, "If-Match")?,
        if_none_match: condition(&call.headers, "If-None-Match")?,
    };
    let outcome = call
        .state
        .service
        .upsert(call.db, &call.caller, entity, id, payload, &preconditions)
        .await?;
    if call.prefer.return_representation {
        let status = match outcome {
            Upserted::Created => StatusCode::CREATED,
            Upserted::Updated => StatusCode::OK,
        };
        let mut response = representation(call, entity, id, &query, status).await?;
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
    let query = record_query(call, &target)?;
    let annotations = call.prefer.annotations();
    let related = service
        .retrieve(
            call.db,
            &call.caller,
            &target,
            target_id,
            annotations.wants_formatted_values(),
        )
        .await?;
    let with_names = annotations.wants_formatted_values();
    let expanded = expand(call, &related, &query.expand, with_names).await?;
    let body = entity_body(
        call,
        &related,
        query.select.as_deref(),
        &query.expand,
        &expanded,
        &annotations,
    );
    Ok(bytes_response(StatusCode::OK, body))
}

/// Characters a query-string name or value keeps as they are (`$select`, `a,b`, `(x)`).
const QUERY_SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b',')
    .remove(b'(')
    .remove(b')')
    .remove(b'\'')
    .remove(b':')
    .remove(b'/')
    .remove(b'@');

fn encode_query(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, QUERY_SAFE).to_string()
}

async fn list(call: &Call<'_>, entity: &Arc<Entity>) -> Result<Response, ApiError> {
    if let Some(fetch_xml) = option(&call.pairs, "fetchXml") {
        return fetch::fetch(call, entity, fetch_xml).await;
    }
    let options = QueryOptions::parse(&call.state.service.catalog, entity, &call.pairs)?;
    if let Some(apply) = &options.apply {
        return aggregate(call, entity, &options, apply).await;
    }
    let select = positions(&options.select);
    let (page, after) = match &options.skiptoken {
        Some(token) => {
            let (page, keyset) = paging::parse_skip_token(entity, &options.orderby, token)?;
            (page, Some(keyset))
        }
        None => (1, None),
    };
    let page_size = call
        .prefer
        .max_page_size
        .map(|n| (n as usize).clamp(1, MAX_PAGE_SIZE));
    let top = options.top.map(|t| t as usize);
    let limit = match (page_size, top) {
        (Some(size), _) => size,
        (None, Some(top)) => top.min(MAX_PAGE_SIZE),
        (None, None) => MAX_PAGE_SIZE,
    };
    let annotations = call.prefer.annotations();
    let with_names = annotations.wants_formatted_values();
    let service = &call.state.service;
    let plan = Plan {
        entity: Arc::clone(entity),
        filter: options.filter.clone(),
        order: options.orderby.clone(),
        limit: Some(limit + 1),
        after,
        scope: None,
    };
    let mut rows = service
        .retrieve_multiple(call.db, &call.caller, plan.clone(), with_names)
        .await?;
    let more = rows.len() > limit;
    rows.truncate(limit);

    let mut expansions = Vec::with_capacity(rows.len());
    for row in &rows {
        expansions.push(expand(call, row, &options.expand, with_names).await?);
    }
    let names = context_names(entity, select.as_deref(), &options.expand);
    let mut out = Vec::with_capacity(256 + rows.len() * 1024);
    let mut body = serialize::ObjectWriter::open(&mut out);
    body.string(
        "@odata.context",
        &serialize::collection_context(&call.root, &entity.entity_set_name, names.as_deref()),
    );
    if options.count {
        let total = service
            .count(call.db, &call.caller, plan, MAX_PAGE_SIZE)
            .await?;
        body.value("@odata.count", &Value::Int(total as i64));
    }
    let array = body.raw_key("value");
    array.push(b'[');
    for (i, (row, expanded)) in rows.iter().zip(&expansions).enumerate() {
        if i > 0 {
            array.push(b',');
        }
        let mut object = serialize::ObjectWriter::open(array);
        serialize::record_members(&mut object, row, select.as_deref(), &annotations);
        write_expanded(&mut object, expanded, &annotations);
        object.close();
    }
    array.push(b']');
    if more && (page_size.is_some() || top.is_none()) {
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let token = paging::skip_token(entity, &options.orderby, page, first, last);
            let query: Vec<String> = call
                .pairs
                .iter()
                .filter(|(k, _)| k != "$skiptoken")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain(std::iter::once(("$skiptoken", token.as_str())))
                .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
                .collect();
            body.string(
                "@odata.nextLink",
                &format!(
                    "{}{}?{}",
                    call.root,
                    entity.entity_set_name,
                    query.join("&")
                ),
            );
        }
    }
    body.close();
    let mut response = bytes_response(StatusCode::OK, out);
    let mut applied = Vec::new();
    if let Some(size) = page_size {
        applied.push(format!("odata.maxpagesize={size}"));
    }
    applied.extend(annotations_applied(&call.prefer));
    preference_applied(&mut response, &applied);
    Ok(response)
}

/// `$apply`: one row per group, with the group's values and its aggregates by alias.
async fn aggregate(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    options: &QueryOptions,
    text: &str,
) -> Result<Response, ApiError> {
    if !options.select.is_empty()
        || !options.orderby.is_empty()
        || !options.expand.is_empty()
        || options.top.is_some()
        || options.skiptoken.is_some()
    {
        return Err(ParseError::BadQuery(
            "$apply cannot be combined with $select, $orderby, $expand, $top or $skiptoken.".into(),
        )
        .into());
    }
    let aliases: std::collections::HashMap<String, String> = call
        .pairs
        .iter()
        .filter(|(k, _)| k.starts_with('@'))
        .cloned()
        .collect();
    let apply = crate::query::apply::parse(entity, text, &aliases)?;
    let filter = match (apply.filter, options.filter.clone()) {
        (Some(a), Some(b)) => Some(crate::query::Expr::and(vec![b, a])),
        (a, b) => a.or(b),
    };
    let plan = AggregatePlan {
        entity: Arc::clone(entity),
        filter,
        group_by: apply.group_by,
        aggregates: apply.aggregates,
        scope: None,
    };
    let rows = call
        .state
        .service
        .aggregate(call.db, &call.caller, plan.clone())
        .await?;
    let names: Vec<&str> = plan
        .group_by
        .iter()
        .map(|p| p.name.as_str())
        .chain(plan.aggregates.iter().map(|a| a.alias.as_str()))
        .collect();
    let body = aggregate_body(call, entity, &names, &rows, false);
    Ok(bytes_response(StatusCode::OK, body))
}

/// The response of an aggregation: one object per group, its values named by `names`.
/// FetchXML leaves null values out (`omit_nulls`); OData writes them.
fn aggregate_body(
    call: &Call<'_>,
    entity: &Entity,
    names: &[&str],
    rows: &[Vec<Value>],
    omit_nulls: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + rows.len() * 64);
    let mut body = serialize::ObjectWriter::open(&mut out);
    body.string(
        "@odata.context",
        &serialize::collection_context(&call.root, &entity.entity_set_name, None),
    );
    let array = body.raw_key("value");
    array.push(b'[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            array.push(b',');
        }
        let mut object = serialize::ObjectWriter::open(array);
        for (name, value) in names.iter().zip(row) {
            if !(omit_nulls && value.is_null()) {
                object.value(name, value);
            }
        }
        object.close();
    }
    array.push(b']');
    body.close();
    out
}

/// `/$count`: the number of rows the `$filter` selects (Dataverse caps it at 5,000).
async fn count(call: &Call<'_>, entity: &Arc<Entity>) -> Result<Response, ApiError> {
    let options = QueryOptions::parse(&call.state.service.catalog, entity, &call.pairs)?;
    if !options.select.is_empty()
        || !options.orderby.is_empty()
        || !options.expand.is_empty()
        || options.apply.is_some()
        || options.top.is_some()
    {
        return Err(ParseError::BadQuery("Only $filter applies to $count.".into()).into());
    }
    let plan = Plan {
        entity: Arc::clone(entity),
        filter: options.filter,
        order: Vec::new(),
        limit: None,
        after: None,
        scope: None,
    };
    let total = call
        .state
        .service
        .count(call.db, &call.caller, plan, MAX_PAGE_SIZE)
        .await?;
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
    let (entity, id) = entity_reference(catalog, entity_text).ok_or_else(|| {
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
