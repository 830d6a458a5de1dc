//! `POST /$batch`: independent requests run in order against the store; each change set runs
//! in one store transaction and commits or rolls back as one. `$n` references to records
//! created earlier in a change set are resolved in URLs and `@odata.bind` values.
//!
//! Without `Prefer: odata.continue-on-error`, processing stops at the first failure and the
//! batch answers with that failure's status and only the failing part; with it, every item
//! runs and the batch answers 200 with every part, failed ones carrying their error.

use std::collections::HashMap;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::{run, AppState, CreatedEntity, Inner};
use crate::authorize::ChangeSet;
use crate::authorize::Guard;
use crate::batch::{
    parse_batch_with, resolve_body_references, resolve_reference, write_batch_response, BatchError,
    BatchItem, Limits, Part, PartResponse, ResponseItem, MAX_OPERATIONS,
};
use crate::edge::auth::Authenticated;

/// A `$batch` body may be this many times larger than a single request's body limit.
pub const BODY_LIMIT_FACTOR: usize = 32;

/// The response headers a part carries over.
const PART_HEADERS: &[&str] = &[
    "content-type",
    "odata-entityid",
    "etag",
    "preference-applied",
];

fn batch_error(e: BatchError) -> ApiError {
    ApiError::bad_payload(e.to_string())
}

pub async fn execute(
    state: &AppState,
    who: &Authenticated,
    root: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let content_type = super::header_str(headers, "Content-Type")?.unwrap_or_default();
    let limits = Limits {
        max_operations: MAX_OPERATIONS,
        max_batch_bytes: usize::MAX,
        max_part_body_bytes: state.max_body_bytes,
    };
    let items = parse_batch_with(content_type, body, &limits).map_err(batch_error)?;
    // A change set's guard cannot read the stored alternate keys inside its transaction: they
    // are read once here, so a key another node defined is known to every part.
    let guard = state.service.guard(&state.auth.directory, &who.principal);
    super::keys::refresh_from(state, &guard).await?;
    let continue_on_error = super::prefer_of(headers)?.continue_on_error;
    let mut responses = Vec::with_capacity(items.len());
    for item in items {
        match item {
            BatchItem::Request(part) => {
                let (response, _) =
                    run_part(state, who, None, root, &part, &HashMap::new()).await?;
                if response.status >= 400 && !continue_on_error {
                    let status = response.status;
                    return Ok(respond(status, &[ResponseItem::Single(response)]));
                }
                responses.push(ResponseItem::Single(response));
            }
            BatchItem::ChangeSet { parts, .. } => {
                let transaction = state.service.begin_change_set().await?;
                let mut created: HashMap<String, String> = HashMap::new();
                let mut done = Vec::with_capacity(parts.len());
                let mut failure = None;
                for part in &parts {
                    let (response, url) =
                        run_part(state, who, Some(&transaction), root, part, &created).await?;
                    if response.status >= 400 {
                        failure = Some(response);
                        break;
                    }
                    if let (Some(id), Some(url)) = (&part.content_id, url) {
                        created.insert(id.clone(), url);
                    }
                    done.push(response);
                }
                match failure {
                    Some(response) => {
                        transaction.rollback().await?;
                        if !continue_on_error {
                            let status = response.status;
                            return Ok(respond(status, &[ResponseItem::Single(response)]));
                        }
                        responses.push(ResponseItem::Single(response));
                    }
                    None => {
                        transaction.commit().await?;
                        responses.push(ResponseItem::ChangeSet(done));
                    }
                }
            }
        }
    }
    Ok(respond(200, &responses))
}

fn respond(status: u16, items: &[ResponseItem]) -> Response {
    let (content_type, body) = write_batch_response(items);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// Runs one part, in `change_set` when it belongs to one, as the batch's caller or as the user
/// its own impersonation header names; returns its response and, when it created a record,
/// that record's URL.
async fn run_part(
    state: &AppState,
    batch: &Authenticated,
    change_set: Option<&ChangeSet>,
    root: &str,
    part: &Part,
    created: &HashMap<String, String>,
) -> Result<(PartResponse, Option<String>), ApiError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &part.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    let own = match state
        .auth
        .for_part(batch, &headers, state.service.system().store())
        .await
    {
        Ok(own) => own,
        Err(e) => return part_response(part, e.into_response()).await,
    };
    let who = own.as_ref().unwrap_or(batch);
    let directory = &state.auth.directory;
    let guard: Guard<'_> = match change_set {
        Some(transaction) => transaction.guard(directory, &who.principal),
        None => state.service.guard(directory, &who.principal),
    };
    let db = &guard;
    let caller = &who.caller;
    let resolved = resolve_reference(&part.target, created)
        .and_then(|target| Ok((target, resolve_body_references(&part.body, created)?)));
    let response = match resolved {
        Ok((target, body)) => {
            let (path, query) = relative_target(&target, root);
            let inner = Inner {
                method: part.method.clone(),
                uri: target.clone(),
                path,
                query,
                headers,
                body: body.into(),
            };
            match run(state, db, caller.clone(), root.to_string(), inner).await {
                Ok(response) => response,
                Err(e) => e.into_response(),
            }
        }
        Err(e) => batch_error(e).into_response(),
    };
    part_response(part, response).await
}

/// A part's response as the batch response writes it, and the URL of what it created.
async fn part_response(
    part: &Part,
    response: Response,
) -> Result<(PartResponse, Option<String>), ApiError> {
    let url = response
        .extensions()
        .get::<CreatedEntity>()
        .map(|c| c.0.clone());
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = vec![("OData-Version".into(), "4.0".into())];
    for (name, value) in response.headers() {
        if PART_HEADERS.contains(&name.as_str()) {
            if let Ok(value) = value.to_str() {
                headers.push((canonical_header(name.as_str()), value.to_string()));
            }
        }
    }
    if let Some(url) = &url {
        headers.push(("Location".into(), url.clone()));
        if !headers.iter().any(|(n, _)| n == "OData-EntityId") {
            headers.push(("OData-EntityId".into(), url.clone()));
        }
    }
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    Ok((
        PartResponse {
            content_id: part.content_id.clone(),
            status,
            headers,
            body,
        },
        url,
    ))
}

fn canonical_header(name: &str) -> String {
    match name {
        "content-type" => "Content-Type",
        "odata-entityid" => "OData-EntityId",
        "etag" => "ETag",
        "preference-applied" => "Preference-Applied",
        other => other,
    }
    .to_string()
}

/// The path below the service root and the query of a part's target, which may be absolute
/// (`http://host/api/data/v9.2/x?y`), root-relative (`/api/data/v9.2/x`) or relative (`x`).
fn relative_target(target: &str, root: &str) -> (String, Option<String>) {
    let below_root = if let Some(rest) = target.strip_prefix(root) {
        rest
    } else if let Some(i) = target.find("/api/data/") {
        let after = &target[i + "/api/data/".len()..];
        after.split_once('/').map(|(_, rest)| rest).unwrap_or("")
    } else {
        target.trim_start_matches('/')
    };
    match below_root.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (below_root.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_below_the_root() {
        let root = "http://h/api/data/v9.2/";
        for (target, path, query) in [
            (
                "http://h/api/data/v9.2/accounts?$top=1",
                "accounts",
                Some("$top=1"),
            ),
            ("/api/data/v9.1/accounts(1)", "accounts(1)", None),
            ("accounts", "accounts", None),
            ("https://other/api/data/v9.0/x/y", "x/y", None),
        ] {
            let (p, q) = relative_target(target, root);
            assert_eq!(p, path, "{target}");
            assert_eq!(q.as_deref(), query, "{target}");
        }
    }
}
