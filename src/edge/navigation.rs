//! One-to-many relationships addressed by path: `GET {set}({id})/{collection}` (the rows whose
//! lookup points at the record, with every list option and paging), their `$ref`
//! associations (`POST .../{collection}/$ref`, `DELETE .../{collection}({key})/$ref`), and
//! `PUT {set}({id})/{lookup}/$ref` for a single-valued one. An association is an update of the
//! child's lookup, so it is authorized like one (Write on the child, Append/AppendTo).

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use uuid::Uuid;

use super::error::ApiError;
use super::sharing::{reference_body, reference_query};
use super::{rows_response, update_only, Call};
use crate::metadata::Entity;
use crate::parse::body::{Bind, Payload};
use crate::parse::ParseError;
use crate::query::read::ReadRequest;
use crate::query::{CmpOp, Expr, Literal, PropertyRef, QueryOptions};
use crate::store::Record;

fn bad(message: impl Into<String>) -> ApiError {
    ParseError::InvalidArgument(message.into()).into()
}

/// The record as the caller may read it; refused as a Retrieve when missing or unreadable.
async fn readable(call: &Call<'_>, entity: &Arc<Entity>, id: Uuid) -> Result<Record, ApiError> {
    Ok(call
        .state
        .service
        .retrieve(call.db, &call.caller, entity, id, false)
        .await?)
}

/// `GET {set}({id})/{collection}`: a list of `source` under the record. A record that is
/// missing or that the caller may not read is refused as its Retrieve is; its children are
/// read with the caller's row scope.
pub(super) async fn related_rows(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    source: &Arc<Entity>,
    lookup: usize,
) -> Result<Response, ApiError> {
    let service = &call.state.service;
    readable(call, entity, id).await?;
    let mut options = QueryOptions::parse(&service.catalog, source, &call.pairs)?;
    let under = Expr::Compare {
        prop: PropertyRef {
            index: lookup,
            name: source.attributes[lookup].property_name().to_string(),
        },
        op: CmpOp::Eq,
        value: Literal::Guid(id),
    };
    options.filter = Some(match options.filter.take() {
        Some(filter) => Expr::and(vec![under, filter]),
        None => under,
    });
    let with_names = call.prefer.annotations().wants_formatted_values();
    let max_page_size = call.prefer.max_page_size.filter(|_| options.top.is_none());
    let request = ReadRequest::list(source, options, max_page_size, with_names)?;
    let path = call
        .uri
        .split_once("/api/data/")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, path)| path.split('?').next().unwrap_or(path).to_string());
    rows_response(call, request, path.as_deref()).await
}

/// `POST {set}({id})/{collection}/$ref` sets the named child's lookup to the record;
/// `DELETE {set}({id})/{collection}({key})/$ref` (or `/$ref?$id=...`) clears it.
pub(super) async fn related_reference(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    source: &Arc<Entity>,
    lookup: usize,
    key: Option<Uuid>,
) -> Result<Response, ApiError> {
    let (child, child_id, add) = match (&call.method, key) {
        (&Method::POST, None) => {
            let (child, child_id) = reference_body(call, entity).await?;
            (child, child_id, true)
        }
        (&Method::DELETE, Some(key)) => (Arc::clone(source), key, false),
        (&Method::DELETE, None) => {
            let (child, child_id) = reference_query(call)?;
            (child, child_id, false)
        }
        _ => return Err(ApiError::no_resource(&call.uri)),
    };
    if child.logical_name != source.logical_name {
        return Err(bad(format!(
            "The collection holds {} records, not {}.",
            source.logical_name, child.logical_name
        )));
    }
    let target = if add {
        Some((Arc::clone(entity), id))
    } else {
        // Only a child of this record is disassociated from it.
        readable(call, entity, id).await?;
        let row = readable(call, source, child_id).await?;
        if row.values[lookup].as_guid() != Some(id) {
            return Err(bad(format!(
                "The record {child_id} is not associated with {}({id}).",
                entity.entity_set_name
            )));
        }
        None
    };
    let payload = Payload {
        values: Vec::new(),
        binds: vec![Bind {
            position: lookup,
            target,
        }],
    };
    update_only(call, source, child_id, payload).await
}

/// `PUT {set}({id})/{lookup}/$ref` with `{"@odata.id": ...}`: sets the lookup.
pub(super) async fn set_reference(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    position: usize,
) -> Result<Response, ApiError> {
    let (target, target_id) = reference_body(call, entity).await?;
    let attribute = &entity.attributes[position];
    let allowed = attribute.targets.contains(&target.logical_name)
        || (attribute.targets.is_empty() && attribute.attribute_type.is_lookup());
    if !allowed {
        return Err(bad(format!(
            "The lookup '{}' cannot point at {}.",
            attribute.logical_name, target.logical_name
        )));
    }
    let payload = Payload {
        values: Vec::new(),
        binds: vec![Bind {
            position,
            target: Some((target, target_id)),
        }],
    };
    update_only(call, entity, id, payload).await
}
