//! `GET /{set}?sql=SELECT ...`: the read-only SQL of Microsoft's Python SDK, bound by
//! [`crate::query::sql`] to the same plan as `$filter` and run by the same store behind the
//! caller's guard (so the row scope applies). The answer is a collection whose rows carry the
//! selected columns by logical name; past 5,000 rows (without `TOP`), an `@odata.nextLink`
//! with a keyset `$skiptoken` continues it.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::{bytes_response, encode_query, paging, Call, MAX_PAGE_SIZE};
use crate::metadata::Entity;
use crate::parse::select::option;
use crate::serialize::{self, ObjectWriter};
use crate::store::sql::Plan;

pub(super) async fn run(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    text: &str,
) -> Result<Response, ApiError> {
    let query = crate::query::sql::parse(&call.state.service.catalog, text)?;
    if query.entity.logical_name != entity.logical_name {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80040203",
            format!(
                "The sql query reads '{}', but the request addresses '{}'.",
                query.entity.logical_name, entity.entity_set_name
            ),
        ));
    }
    let (page, after) = match option(&call.pairs, "$skiptoken") {
        Some(token) => {
            let (page, keyset) = paging::parse_skip_token(entity, &query.order, token)?;
            (page, Some(keyset))
        }
        None => (1, None),
    };
    let limit = query
        .top
        .map_or(MAX_PAGE_SIZE, |top| (top as usize).min(MAX_PAGE_SIZE));
    let plan = Plan {
        entity: Arc::clone(entity),
        filter: query.filter.clone(),
        order: query.order.clone(),
        limit: Some(limit + 1),
        after,
        scope: None,
    };
    let mut rows = call
        .state
        .service
        .retrieve_multiple(call.db, &call.caller, plan, false)
        .await?;
    let more = query.top.is_none() && rows.len() > limit;
    rows.truncate(limit);

    let mut out = Vec::with_capacity(256 + rows.len() * 256);
    let mut body = ObjectWriter::open(&mut out);
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
        let mut object = ObjectWriter::open(array);
        for column in &query.columns {
            let name = &entity.attributes[column.index].logical_name;
            object.value(name, &row.values[column.index]);
        }
        object.close();
    }
    array.push(b']');
    if more {
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let token = paging::skip_token(entity, &query.order, page, first, last);
            body.string(
                "@odata.nextLink",
                &format!(
                    "{}{}?sql={}&$skiptoken={}",
                    call.root,
                    entity.entity_set_name,
                    encode_query(text),
                    encode_query(&token)
                ),
            );
        }
    }
    body.close();
    Ok(bytes_response(StatusCode::OK, out))
}
