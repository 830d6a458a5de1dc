//! `GET /{set}?fetchXml=...`: FetchXML compiled to the same plan as OData and run by the same
//! store, answered the way Dataverse answers FetchXML (null properties omitted, linked columns
//! as `alias.column`, `fetchxmlpagingcookie` and `morerecords` when annotations are asked for).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::{aggregate_body, bytes_response, paging, positions, Call, MAX_PAGE_SIZE};
use crate::metadata::Entity;
use crate::query::apply::{Aggregate as ApplyAggregate, AggregateFn};
use crate::query::fetchxml::{self, AggregateKind, FetchQuery};
use crate::query::{Expr, PropertyRef};
use crate::serialize::{self, ObjectWriter};
use crate::store::sql::{AggregatePlan, Plan};
use crate::store::Access;
use crate::store::Value;

const PAGING_COOKIE: &str = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie";
const MORE_RECORDS: &str = "Microsoft.Dynamics.CRM.morerecords";
const TOTAL_COUNT: &str = "Microsoft.Dynamics.CRM.totalrecordcount";
const TOTAL_COUNT_EXCEEDED: &str = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded";

fn unsupported(what: &str) -> ApiError {
    ApiError::invalid_argument(format!("{what} is not supported in FetchXML here yet."))
}

pub(super) async fn fetch(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    text: &str,
) -> Result<Response, ApiError> {
    if call.pairs.iter().any(|(k, _)| k.starts_with('$')) {
        return Err(ApiError::invalid_argument(
            "fetchXml cannot be combined with OData query options.",
        ));
    }
    let query = fetchxml::parse(&call.state.service.catalog, text)?;
    if query.entity.logical_name != entity.logical_name {
        return Err(ApiError::invalid_argument(format!(
            "The FetchXML queries '{}', but the request addresses '{}'.",
            query.entity.logical_name, entity.entity_set_name
        )));
    }
    if query.aggregate.is_some() {
        return aggregate(call, entity, query).await;
    }
    let mut filters: Vec<Expr> = query.filter.clone().into_iter().collect();
    for link in &query.links {
        if link.filter.is_some() || !link.order.is_empty() {
            return Err(unsupported("A filter or order inside link-entity"));
        }
        if !link.outer {
            filters.push(Expr::NotNull(link.to.clone()));
        }
    }
    let filter = match filters.len() {
        0 => None,
        1 => filters.pop(),
        _ => Some(Expr::and(filters)),
    };
    let page = query.page.unwrap_or(1) as usize;
    let after = match &query.paging_cookie {
        Some(cookie) => Some(
            paging::keyset_from_cookie(entity, &query.order, cookie).ok_or_else(|| {
                ApiError::invalid_argument(
                    "The paging-cookie is not one this server issued for this ordering.",
                )
            })?,
        ),
        None if page > 1 => {
            return Err(unsupported(
                "A page after the first without the previous page's paging-cookie",
            ))
        }
        None => None,
    };
    let limit = match (query.top, query.count) {
        (Some(top), _) => top as usize,
        (None, Some(count)) => count as usize,
        (None, None) => MAX_PAGE_SIZE,
    };
    let annotations = call.prefer.annotations();
    let with_names = annotations.wants_formatted_values();
    let service = &call.state.service;
    let plan = Plan {
        entity: Arc::clone(entity),
        filter,
        order: query.order.clone(),
        limit: Some(limit + 1),
        after,
        scope: None,
    };
    let mut rows = service
        .retrieve_multiple(call.db, &call.caller, plan.clone(), with_names)
        .await?;
    let more = query.top.is_none() && rows.len() > limit;
    rows.truncate(limit);

    // Linked columns, read per row from the linked table.
    let mut linked: Vec<Vec<(String, Value)>> = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut columns = Vec::new();
        for link in &query.links {
            let Some(id) = row.values[link.to.index].as_guid() else {
                continue;
            };
            // A linked row the caller may not read contributes no columns.
            let related = match call.db.get(&link.entity, id, false).await {
                Ok(Some(related)) => related,
                Ok(None) | Err(crate::store::StoreError::Denied(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let wanted: Vec<usize> = match &link.columns {
                None => related
                    .entity
                    .attributes
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.is_edm_property())
                    .map(|(i, _)| i)
                    .collect(),
                Some(props) => props.iter().map(|p| p.index).collect(),
            };
            for index in wanted {
                let value = related.values[index].clone();
                if !value.is_null() {
                    let name = related.entity.attributes[index].property_name();
                    columns.push((format!("{}.{name}", link.alias), value));
                }
            }
        }
        linked.push(columns);
    }

    let select = query.columns.as_deref().and_then(positions);
    let mut out = Vec::with_capacity(256 + rows.len() * 1024);
    let mut body = ObjectWriter::open(&mut out);
    body.string(
        "@odata.context",
        &serialize::collection_context(&call.root, &entity.entity_set_name, None),
    );
    if query.return_total_record_count {
        let total = service
            .count(call.db, &call.caller, plan.clone(), MAX_PAGE_SIZE + 1)
            .await?;
        body.value(
            &format!("@{TOTAL_COUNT}"),
            &Value::Int(total.min(MAX_PAGE_SIZE as u64) as i64),
        );
        body.value(
            &format!("@{TOTAL_COUNT_EXCEEDED}"),
            &Value::Bool(total > MAX_PAGE_SIZE as u64),
        );
    }
    if more && annotations.includes(PAGING_COOKIE) {
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let cookie = paging::fetch_paging_cookie(entity, &query.order, page, first, last);
            body.string(&format!("@{PAGING_COOKIE}"), &cookie);
        }
    }
    if annotations.includes(MORE_RECORDS) {
        body.value(&format!("@{MORE_RECORDS}"), &Value::Bool(more));
    }
    let array = body.raw_key("value");
    array.push(b'[');
    for (i, (row, columns)) in rows.iter().zip(&linked).enumerate() {
        if i > 0 {
            array.push(b',');
        }
        let mut object = ObjectWriter::open(array);
        serialize::record_members_without_nulls(&mut object, row, select.as_deref(), &annotations);
        for (name, value) in columns {
            object.value(name, value);
        }
        object.close();
    }
    array.push(b']');
    body.close();
    Ok(bytes_response(StatusCode::OK, out))
}

/// `aggregate='true'`: groups and aggregates by alias, in the query's alias order.
async fn aggregate(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    query: FetchQuery,
) -> Result<Response, ApiError> {
    let Some(spec) = query.aggregate else {
        return Err(unsupported("An aggregate query without aggregate columns"));
    };
    if !query.links.is_empty() {
        return Err(unsupported("link-entity in an aggregate query"));
    }
    let mut group_by: Vec<(String, PropertyRef)> = Vec::new();
    let mut aggregates: Vec<ApplyAggregate> = Vec::new();
    for column in &spec.columns {
        if column.link.is_some() {
            return Err(unsupported("A linked column in an aggregate query"));
        }
        match column.kind {
            AggregateKind::GroupBy { date: Some(_) } => {
                return Err(unsupported("dategrouping"));
            }
            AggregateKind::GroupBy { date: None } => {
                group_by.push((column.alias.clone(), column.prop.clone()))
            }
            AggregateKind::Function { function } => aggregates.push(ApplyAggregate {
                function,
                prop: (function != AggregateFn::Count).then(|| column.prop.clone()),
                alias: column.alias.clone(),
            }),
        }
    }
    let plan = AggregatePlan {
        entity: Arc::clone(entity),
        filter: query.filter,
        group_by: group_by.iter().map(|(_, p)| p.clone()).collect(),
        aggregates,
        scope: None,
    };
    let mut rows = call
        .state
        .service
        .aggregate(call.db, &call.caller, plan.clone())
        .await?;
    let aliases: Vec<String> = group_by
        .iter()
        .map(|(alias, _)| alias.clone())
        .chain(plan.aggregates.iter().map(|a| a.alias.clone()))
        .collect();
    for key in spec.order.iter().rev() {
        if let Some(column) = aliases.iter().position(|a| *a == key.alias) {
            rows.sort_by(|a, b| {
                let ordering = compare(&a[column], &b[column]);
                if key.descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
    }
    if let Some(limit) = spec.limit {
        rows.truncate(limit as usize);
    }
    let names: Vec<&str> = aliases.iter().map(String::as_str).collect();
    let body = aggregate_body(call, entity, &names, &rows, true);
    Ok(bytes_response(StatusCode::OK, body))
}

/// Orders aggregate values: NULLs first, then by value.
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Int(x), Value::Int(y)) | (Value::DateTime(x), Value::DateTime(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
        (Value::Text(x), Value::Text(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Guid(x), Value::Guid(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}
