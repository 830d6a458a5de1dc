//! `GET /{set}?sql=SELECT ...`: the read-only SQL of Microsoft's Python SDK, bound by
//! [`crate::query::sql`] to the same `Expr` and order as `$filter`/`$orderby`, then read like
//! any OData list through the one read path (the caller's guard, so the row scope applies):
//! the selected columns as `$select`, `TOP n` as `$top`, and past 5,000 rows an `@odata.nextLink`
//! that carries the `sql` option and a keyset `$skiptoken`.

use std::sync::Arc;

use super::error::ApiError;
use super::Call;
use crate::metadata::Entity;
use crate::parse::select::option;
use crate::query::options::QueryOptions;
use crate::query::read::ReadRequest;
use crate::query::skiptoken::parse_skip_token;

/// The read a `sql` option asks for.
pub(super) fn request(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    text: &str,
    with_names: bool,
) -> Result<ReadRequest, ApiError> {
    let query = crate::query::sql::parse(&call.state.service.catalog, text)?;
    if query.entity.logical_name != entity.logical_name {
        return Err(ApiError::invalid_argument(format!(
            "The sql query reads '{}', but the request addresses '{}'.",
            query.entity.logical_name, entity.entity_set_name
        )));
    }
    let skiptoken = option(&call.pairs, "$skiptoken")
        .map(|token| parse_skip_token(entity, &query.order, token))
        .transpose()?;
    let options = QueryOptions {
        select: query.columns,
        filter: query.filter,
        orderby: query.order,
        top: query.top,
        skiptoken,
        ..QueryOptions::default()
    };
    // Pages are 5,000 rows: `odata.maxpagesize` is not applied to a sql query (nor echoed).
    Ok(ReadRequest::list(entity, options, None, with_names)?)
}
