//! `GET /{set}?savedQuery=<id>`, `?userQuery=<id>` and `?sql=...`: the RetrieveMultiple query
//! chosen by a query option other than OData's. A view runs its FetchXML through the FetchXML
//! path ([`super::fetch::fetch`]), under the caller's guard like every other read.

use std::sync::Arc;

use axum::response::Response;
use uuid::Uuid;

use super::error::ApiError;
use super::{fetch, sql, Call};
use crate::execute::views::{table, view_fetch_xml};
use crate::metadata::views::{SAVED_QUERY, USER_QUERY};
use crate::metadata::Entity;
use crate::parse::select::option;
use crate::parse::ParseError;

/// The options that name a view, and the view table each reads.
const VIEW_OPTIONS: [(&str, &str); 2] = [("savedQuery", SAVED_QUERY), ("userQuery", USER_QUERY)];

/// Runs the query a `sql`, `savedQuery` or `userQuery` option chooses; `None` without one.
pub(super) async fn chosen_query(
    call: &Call<'_>,
    entity: &Arc<Entity>,
) -> Result<Option<Response>, ApiError> {
    if let Some(text) = option(&call.pairs, "sql") {
        return sql::run(call, entity, text).await.map(Some);
    }
    for (name, views) in VIEW_OPTIONS {
        let Some(text) = option(&call.pairs, name) else {
            continue;
        };
        let id = Uuid::parse_str(text.trim_matches(|c| c == '{' || c == '}')).map_err(|_| {
            ParseError::BadQuery(format!("The value '{text}' of '{name}' is not a Guid."))
        })?;
        let service = &call.state.service;
        let views = table(service, views)?;
        let fetch_xml = view_fetch_xml(service, call.db, &call.caller, &views, id, entity).await?;
        return fetch::fetch(call, entity, &fetch_xml).await.map(Some);
    }
    Ok(None)
}
