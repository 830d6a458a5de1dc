//! The bulk messages bound to an entity set: `CreateMultiple`, `UpdateMultiple` and
//! `UpsertMultiple` (`POST /{set}/Microsoft.Dynamics.CRM.{name}` with `{"Targets":[...]}`).
//!
//! Each target goes through the single message's own path (the body parser, then
//! [`Service::create`](crate::execute::Service::create), `update` or `upsert` through the
//! caller's guard), all of them in one transaction: the request's own, or its `$batch` change
//! set's. The first failing target rolls back every one before it, and its error names its
//! index in `Targets`. A target of `UpdateMultiple`/`UpsertMultiple` may name its record by an
//! alternate key (`"@odata.id": "set(col='v')"`), and its binds may name theirs by one; both are
//! read through the message's own transaction. A `CreateMultiple` whose targets bind nothing
//! is parsed whole and written by one `Service::create_many`: one round trip to the store for
//! all its rows, with the same outcome and the same `Targets[i]` in its error.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use super::error::ApiError;
use super::{header_str, json_response, keys, Call};
use crate::authorize::{ChangeSet, Guard};
use crate::execute::{Preconditions, Upserted};
use crate::metadata::Entity;
use crate::parse::body::{check_content_type, parse_object, parse_payload};
use crate::parse::key::AlternateKey;
use crate::parse::path::{alternate_key_of_reference, parse_reference};

/// The most targets one request may carry, as in Dataverse.
pub const MAX_TARGETS: usize = 1000;

/// The namespace of a target's `@odata.type`.
const NAMESPACE: &str = "Microsoft.Dynamics.CRM.";

/// Runs the bulk message `name` (one of [`crate::parse::path::COLLECTION_ACTIONS`]).
pub(super) async fn run(
    call: &Call<'_>,
    entity: &std::sync::Arc<Entity>,
    name: &str,
) -> Result<Response, ApiError> {
    let targets = targets(call, entity, name)?;
    let own = call.db.own_transaction().await?;
    let db = call.db.scoped(own.as_ref());
    if name == "CreateMultiple" && !targets.iter().any(has_binds) {
        let outcome = create_all(call, &db, entity, &targets).await;
        let ids = finish(own, outcome).await?;
        return Ok(ids_response(call, name, &ids));
    }
    let mut ids = Vec::with_capacity(targets.len());
    let mut failure = None;
    for (index, target) in targets.iter().enumerate() {
        match write(call, &db, entity, name, target).await {
            Ok(id) => ids.push(id),
            Err(mut e) => {
                e.message = format!("Targets[{index}]: {}", e.message);
                failure = Some(e);
                break;
            }
        }
    }
    let outcome = match failure {
        Some(e) => Err(e),
        None => Ok(()),
    };
    finish(own, outcome).await?;
    if name == "UpdateMultiple" {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(ids_response(call, name, &ids))
}

/// `{name}Response`: the `Ids` of the records written, in the order of `Targets`.
fn ids_response(call: &Call<'_>, name: &str, ids: &[Uuid]) -> Response {
    let context = format!(
        "{}$metadata#Microsoft.Dynamics.CRM.{name}Response",
        call.root
    );
    let mut body = Map::new();
    body.insert("@odata.context".into(), Json::String(context));
    body.insert(
        "Ids".into(),
        Json::Array(ids.iter().map(|id| json!(id.to_string())).collect()),
    );
    json_response(StatusCode::OK, &body)
}

/// Whether a target binds a lookup (`x@odata.bind`): its bind may name a record an earlier
/// target creates, so such a request is written target by target.
fn has_binds(target: &Map<String, Json>) -> bool {
    target.keys().any(|k| k.ends_with("@odata.bind"))
}

/// `CreateMultiple` of targets without binds: every payload parsed, then one
/// [`Service::create_many`](crate::execute::Service::create_many) (one round trip to SQLite's
/// writer for all of them). An error names its target's index, as the one-by-one path does.
async fn create_all(
    call: &Call<'_>,
    db: &Guard<'_>,
    entity: &std::sync::Arc<Entity>,
    targets: &[Map<String, Json>],
) -> Result<Vec<Uuid>, ApiError> {
    let service = &call.state.service;
    let named = |index: usize, mut e: ApiError| {
        e.message = format!("Targets[{index}]: {}", e.message);
        e
    };
    let payloads = targets
        .iter()
        .enumerate()
        .map(|(index, target)| {
            parse_payload(&service.catalog, entity, target).map_err(|e| named(index, e.into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    service
        .create_many(db, &call.caller, entity, payloads)
        .await
        .map_err(|(index, e)| named(index, e.into()))
}

/// Commits `own` (a message's own transaction, when it has one) after `outcome` succeeded,
/// else rolls it back and hands the failure on.
pub(super) async fn finish<T>(
    own: Option<ChangeSet>,
    outcome: Result<T, ApiError>,
) -> Result<T, ApiError> {
    if let Some(change_set) = own {
        match &outcome {
            Ok(_) => change_set.commit().await?,
            Err(_) => change_set.rollback().await?,
        }
    }
    outcome
}

/// The request's `Targets`, each a JSON object of `entity`'s type, at most [`MAX_TARGETS`].
fn targets(
    call: &Call<'_>,
    entity: &Entity,
    name: &str,
) -> Result<Vec<Map<String, Json>>, ApiError> {
    check_content_type(header_str(&call.headers, "Content-Type")?)?;
    let mut body = parse_object(entity, &call.body)?;
    if let Some(other) = body.keys().find(|k| *k != "Targets" && !k.starts_with('@')) {
        return Err(ApiError::bad_payload(format!(
            "The parameter '{other}' is not declared by the action '{name}'; it takes 'Targets'."
        )));
    }
    let Some(Json::Array(items)) = body.remove("Targets") else {
        return Err(ApiError::bad_payload(format!(
            "The action '{name}' needs the parameter 'Targets', an array of {} records.",
            entity.logical_name
        )));
    };
    if items.is_empty() {
        return Err(ApiError::invalid_argument(format!(
            "The action '{name}' needs at least one record in 'Targets'."
        )));
    }
    if items.len() > MAX_TARGETS {
        return Err(ApiError::too_many_targets(name, items.len(), MAX_TARGETS));
    }
    let expected = format!("{NAMESPACE}{}", entity.logical_name);
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let Json::Object(object) = item else {
                return Err(ApiError::bad_payload(format!(
                    "Targets[{index}]: a JSON object was expected."
                )));
            };
            let type_name = object
                .get("@odata.type")
                .and_then(Json::as_str)
                .map(|t| t.trim_start_matches('#'));
            if type_name != Some(expected.as_str()) {
                return Err(ApiError::bad_payload(format!(
                    "Targets[{index}]: '@odata.type' must be '{expected}', the type of the entity set '{}'.",
                    entity.entity_set_name
                )));
            }
            Ok(object)
        })
        .collect()
}

/// Writes one target through the single message's path; returns the record's id.
async fn write(
    call: &Call<'_>,
    db: &Guard<'_>,
    entity: &std::sync::Arc<Entity>,
    name: &str,
    target: &Map<String, Json>,
) -> Result<Uuid, ApiError> {
    let service = &call.state.service;
    let mut target = target.clone();
    keys::resolve_binds_in(call.state, db, &call.caller, &mut target).await?;
    let target = &target;
    let mut payload = parse_payload(&service.catalog, entity, target)?;
    if name == "CreateMultiple" {
        let (id, _) = service
            .create(db, &call.caller, entity, payload, None)
            .await?;
        return Ok(id);
    }
    let from_body = payload
        .remove(entity.primary_id_position())
        .and_then(|v| v.as_guid());
    let from_reference = match target.get("@odata.id") {
        None => None,
        Some(json) => match keyed_reference(call, entity, json)? {
            // By an alternate key, read through this transaction: a record an earlier target
            // created counts; no match updates nothing, or upserts a new record with the key's
            // values.
            Some(key) => match keys::find(call.state, db, &call.caller, &key).await? {
                Some(id) => Some(id),
                None if name == "UpdateMultiple" => return Err(keys::key_not_found(&key)),
                None => {
                    keys::key_payload(&service.catalog, &key, &mut payload)?;
                    Some(from_body.unwrap_or_else(crate::execute::new_record_id))
                }
            },
            None => Some(reference(call, entity, json)?),
        },
    };
    let id = match (from_body, from_reference) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid_argument(format!(
                "'{}' and '@odata.id' name different records.",
                entity.attributes[entity.primary_id_position()].logical_name
            )))
        }
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => {
            return Err(ApiError::invalid_argument(format!(
                "The record has no '{}' (or '@odata.id') naming the record to {}.",
                entity.attributes[entity.primary_id_position()].logical_name,
                if name == "UpdateMultiple" {
                    "update"
                } else {
                    "upsert"
                }
            )))
        }
    };
    if name == "UpdateMultiple" {
        service
            .update(db, &call.caller, entity, id, payload)
            .await?;
    } else {
        let outcome: Upserted = service
            .upsert(
                db,
                &call.caller,
                entity,
                id,
                payload,
                &Preconditions::default(),
            )
            .await?;
        let _ = outcome;
    }
    Ok(id)
}

/// The alternate key an `@odata.id` names, when it names one of `entity`'s records by one.
fn keyed_reference(
    call: &Call<'_>,
    entity: &Entity,
    json: &Json,
) -> Result<Option<AlternateKey>, ApiError> {
    let text = json.as_str().unwrap_or_default();
    let relative = text.strip_prefix(call.root.as_str()).unwrap_or(text);
    match alternate_key_of_reference(&call.state.service.catalog, relative)? {
        Some(key) if key.entity.logical_name == entity.logical_name => Ok(Some(key)),
        Some(_) => Err(ApiError::invalid_argument(format!(
            "'@odata.id' is not a record of '{}': {json}",
            entity.entity_set_name
        ))),
        None => Ok(None),
    }
}

/// The record an `@odata.id` names: `{set}({id})`, relative or absolute, of `entity`'s set.
fn reference(call: &Call<'_>, entity: &Entity, json: &Json) -> Result<Uuid, ApiError> {
    let text = json.as_str().unwrap_or_default();
    let relative = text.strip_prefix(call.root.as_str()).unwrap_or(text);
    match parse_reference(&call.state.service.catalog, relative) {
        Some((target, id)) if target.logical_name == entity.logical_name => Ok(id),
        _ => Err(ApiError::invalid_argument(format!(
            "'@odata.id' is not a record of '{}': {json}",
            entity.entity_set_name
        ))),
    }
}

/// The longest `JobName` (the job's `name`, 256 characters in Dataverse).
const MAX_JOB_NAME: usize = 256;

/// The parameters of `BulkDelete`, as Dataverse declares them.
const BULK_DELETE_PARAMETERS: &[&str] = &[
    "QuerySet",
    "JobName",
    "SendEmailNotification",
    "ToRecipients",
    "CCRecipients",
    "RecurrencePattern",
    "StartDateTime",
    "SourceImportId",
    "RunNow",
];

/// `POST /BulkDelete`: records the job (one write) and answers its id at once; the node's job
/// worker deletes the rows in the background (`crate::execute::jobs`). `JobName` names the
/// job; a `RecurrencePattern` other than empty is refused (smsctx runs a job once);
/// `StartDateTime` and the e-mail parameters are accepted and have no effect (the job starts at
/// once, and smsctx sends no e-mail).
pub(super) async fn bulk_delete(call: &Call<'_>) -> Result<Response, ApiError> {
    if call.method != axum::http::Method::POST {
        return Err(ApiError::no_resource(&call.uri));
    }
    check_content_type(header_str(&call.headers, "Content-Type")?)?;
    let body: Json = serde_json::from_slice(&call.body).map_err(|e| {
        ApiError::bad_payload(format!(
            "The BulkDelete request body is not valid JSON: {e}"
        ))
    })?;
    let Json::Object(mut body) = body else {
        return Err(ApiError::bad_payload(
            "The BulkDelete request body must be a JSON object.",
        ));
    };
    if let Some(other) = body
        .keys()
        .find(|k| !k.starts_with('@') && !BULK_DELETE_PARAMETERS.contains(&k.as_str()))
    {
        return Err(ApiError::bad_payload(format!(
            "The parameter '{other}' is not declared by the action 'BulkDelete'."
        )));
    }
    if call.db.in_change_set() {
        return Err(ApiError::invalid_argument(
            "BulkDelete records a system job and cannot run inside a change set.",
        ));
    }
    match body.get("RecurrencePattern") {
        None | Some(Json::Null) => {}
        Some(Json::String(pattern)) if pattern.trim().is_empty() => {}
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "The RecurrencePattern {other} is not supported: smsctx runs a bulk delete job once (send an empty RecurrencePattern)."
            )))
        }
    }
    let name = match body.remove("JobName") {
        None | Some(Json::Null) => None,
        Some(Json::String(name)) if name.chars().count() <= MAX_JOB_NAME => Some(name),
        Some(Json::String(_)) => {
            return Err(ApiError::invalid_argument(format!(
                "The parameter 'JobName' is longer than {MAX_JOB_NAME} characters."
            )))
        }
        Some(_) => {
            return Err(ApiError::bad_payload(
                "The parameter 'JobName' must be a string.",
            ))
        }
    };
    let queries = match body.remove("QuerySet") {
        Some(Json::Array(queries)) => queries,
        None | Some(Json::Null) => return Err(ApiError::invalid_argument(
            "The BulkDelete request needs the parameter 'QuerySet', an array of QueryExpression.",
        )),
        Some(_) => return Err(ApiError::bad_payload(
            "The parameter 'QuerySet' must be an array of Microsoft.Dynamics.CRM.QueryExpression.",
        )),
    };
    let service = &call.state.service;
    let id = service
        .record_bulk_delete(call.db, &call.caller, name, queries)
        .await?;
    call.state.jobs.notify_one();
    let mut response = Map::new();
    response.insert(
        "@odata.context".into(),
        Json::String(format!(
            "{}$metadata#Microsoft.Dynamics.CRM.BulkDeleteResponse",
            call.root
        )),
    );
    response.insert("JobId".into(), json!(id.to_string()));
    Ok(json_response(StatusCode::OK, &response))
}
