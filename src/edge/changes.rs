//! Change tracking at the edge: `Prefer: odata.track-changes` on a list, and the GET of its
//! `@odata.deltaLink` (`$deltatoken`), as Dataverse answers them.
//!
//! With change tracking Dataverse refuses `$filter`, `$orderby`, `$expand` and `$top` (and so
//! do we, with `$apply`, `$count` and the other query front ends); `$select` shapes the rows
//! and is kept in the delta link. A first read that has more rows than a page pages as usual,
//! its `@odata.nextLink` carrying the token of its first page (`$skiptoken` and
//! `$deltatoken` together), so the delta link on its last page starts where the first page
//! started.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::options::QUERY_CHOOSERS;
use super::{annotations_applied, bytes_response, preference_applied, Call};
use crate::execute::changes::DeltaToken;
use crate::execute::read::ReadRequest;
use crate::execute::ExecError;
use crate::metadata::Entity;
use crate::parse::select::option;
use crate::query::QueryOptions;
use crate::serialize;

/// The query options change tracking refuses, by the name its message gives them.
fn refused_option(name: &str) -> Option<&str> {
    match name {
        "$filter" | "$orderby" | "$expand" | "$top" | "$apply" | "$count" => Some(&name[1..]),
        _ if QUERY_CHOOSERS.contains(&name) => Some(name),
        _ => None,
    }
}

/// Whether a list request asks for change tracking.
pub(super) fn is_tracked(call: &Call<'_>) -> bool {
    call.prefer.track_changes || option(&call.pairs, "$deltatoken").is_some()
}

/// Whether a tracked list request is answered as one: a delta link always is (and refused
/// when the table does not track changes), `Prefer: odata.track-changes` only when the table
/// tracks changes (else it is not applied: a plain list, without a delta link).
pub(super) fn applies(call: &Call<'_>, entity: &Entity) -> bool {
    option(&call.pairs, "$deltatoken").is_some() || call.state.service.tracks_changes(entity)
}

/// `GET {set}` with `Prefer: odata.track-changes`, or a delta link.
pub(super) async fn tracked_list(
    call: &Call<'_>,
    entity: &Arc<Entity>,
) -> Result<Response, ApiError> {
    if let Some(name) = call.pairs.iter().find_map(|(k, _)| refused_option(k)) {
        return Err(ExecError::ChangeTrackingOption(name.to_string()).into());
    }
    let token = option(&call.pairs, "$deltatoken")
        .map(DeltaToken::parse)
        .transpose()?;
    let continues = option(&call.pairs, "$skiptoken").is_some();
    let mut pairs: Vec<(String, String)> = call
        .pairs
        .iter()
        .filter(|(k, _)| k != "$deltatoken")
        .cloned()
        .collect();
    let annotations = call.prefer.annotations();
    let options = QueryOptions::parse(&call.state.service.catalog, entity, &pairs)?;
    let request = ReadRequest::list(
        entity,
        options,
        call.prefer.max_page_size,
        annotations.wants_formatted_values(),
    )?;
    let ReadRequest::Rows(read) = request else {
        return Err(ApiError::no_resource(&call.uri));
    };
    let service = &call.state.service;
    let retention = call.state.change_log_retention_secs;
    let (tracked, delta) = match token {
        Some(token) if !continues => (
            service
                .delta(call.db, &call.caller, read, token, retention)
                .await?,
            true,
        ),
        start => (
            service
                .track_changes(call.db, &call.caller, read, start, retention)
                .await?,
            false,
        ),
    };
    let token = tracked.token.text();
    if tracked.rows.more {
        pairs.push(("$deltatoken".into(), token.clone()));
    }
    let frame = serialize::Request {
        root: &call.root,
        pairs: &pairs,
        path: None,
        annotations: &annotations,
    };
    let tracking = serialize::Tracking {
        delta,
        removed: &tracked.removed,
        token: &token,
    };
    let body = serialize::rows_body_tracked(&frame, &tracked.rows, Some(&tracking));
    let mut response = bytes_response(StatusCode::OK, body);
    let mut applied = vec!["odata.track-changes".to_string()];
    if let Some(size) = tracked.rows.request.page.max_page_size.filter(|_| !delta) {
        applied.push(format!("odata.maxpagesize={size}"));
    }
    applied.extend(annotations_applied(&call.prefer));
    preference_applied(&mut response, &applied);
    Ok(response)
}
