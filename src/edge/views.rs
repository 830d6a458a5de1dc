//! `GET /{set}?savedQuery=<id>` and `?userQuery=<id>`: the RetrieveMultiple query a view
//! chooses. The view is read under the caller's guard, and its FetchXML then runs through the
//! one read path like `?fetchXml=` (`super::list`).

use std::sync::Arc;

use uuid::Uuid;

use super::error::ApiError;
use super::Call;
use crate::execute::views::{table, view_fetch_xml};
use crate::metadata::views::{SAVED_QUERY, USER_QUERY};
use crate::metadata::Entity;
use crate::parse::select::option;
use crate::parse::ParseError;

/// The options that name a view, and the view table each reads.
const VIEW_OPTIONS: [(&str, &str); 2] = [("savedQuery", SAVED_QUERY), ("userQuery", USER_QUERY)];

/// The FetchXML of the view a `savedQuery` or `userQuery` option names; `None` without one.
pub(super) async fn chosen_view(
    call: &Call<'_>,
    entity: &Arc<Entity>,
) -> Result<Option<String>, ApiError> {
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
        return Ok(Some(fetch_xml));
    }
    Ok(None)
}
