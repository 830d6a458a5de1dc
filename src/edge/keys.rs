//! Alternate keys through the metadata API: `POST EntityDefinitions(<key>)/Keys` with an
//! `EntityKeyMetadata` body (SchemaName, LogicalName?, DisplayName?, KeyAttributes) and
//! `DELETE EntityDefinitions(<key>)/Keys(<key>)`. The key's row and its unique index are made
//! by the store in one transaction (through the Guard: System Administrators only); the catalog's
//! key list is then read back from the store.

use std::sync::Arc;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use uuid::Uuid;

use super::{header_str, ApiError, AppState, Call};
use crate::authorize::Guard;
use crate::execute::{Caller, ExecError};
use crate::metadata::{AttributeType, Entity};
use crate::parse::body::{check_content_type, parse_value, Bind, Payload};
use crate::parse::key::{not_a_key, AlternateKey};
use crate::parse::path;
use crate::parse::ParseError;
use crate::query::Literal;
use crate::schema::definitions::Member;
use crate::schema::{metadata_id, DefinitionsRequest, MetadataKey};
use crate::store::StoredKey;

/// Dataverse's limits: five keys per table, sixteen columns per key.
const MAX_KEYS: usize = 5;
const MAX_KEY_ATTRIBUTES: usize = 16;

fn bad(message: impl Into<String>) -> ApiError {
    ParseError::InvalidArgument(message.into()).into()
}

/// Whether `segments` address a table's `Keys` (with or without a key of its own).
pub(super) fn addresses_keys(segments: &[String]) -> bool {
    matches!(
        crate::schema::parse_definitions_path(segments, &[]),
        Ok(DefinitionsRequest::Members {
            member: Member::Keys,
            ..
        })
    )
}

/// Reads the stored keys into the catalog, the one list the metadata API reports.
pub(super) async fn refresh(call: &Call<'_>) -> Result<(), ApiError> {
    refresh_from(call.state, call.db).await
}

pub(super) async fn refresh_from(state: &AppState, db: &Guard<'_>) -> Result<(), ApiError> {
    if let Some(keys) = db.entity_keys().await? {
        state.service.catalog.set_alternate_keys(keys);
    }
    Ok(())
}

/// Checks that an alternate key's columns are exactly those of a key the table defines (the
/// stored keys, read again, so a key another node defined counts), else Dataverse's 400.
async fn check_defined(
    state: &AppState,
    db: &Guard<'_>,
    key: &AlternateKey,
) -> Result<(), ApiError> {
    refresh_from(state, db).await?;
    let columns = key.columns();
    let defined = state
        .service
        .catalog
        .alternate_keys(&key.entity.logical_name)
        .into_iter()
        .any(|k| {
            let mut attributes = k.attributes.clone();
            attributes.sort();
            attributes == columns
        });
    if defined {
        Ok(())
    } else {
        Err(not_a_key(&key.entity).into())
    }
}

/// The id of the record `key` names, as the caller may read it; a record it may not read is
/// not found, never revealed.
pub(super) async fn find(
    state: &AppState,
    db: &Guard<'_>,
    caller: &Caller,
    key: &AlternateKey,
) -> Result<Option<Uuid>, ApiError> {
    check_defined(state, db, key).await?;
    Ok(state.service.find_by_key(db, caller, key).await?)
}

pub(super) fn key_not_found(key: &AlternateKey) -> ApiError {
    ExecError::KeyNotFound {
        entity: key.entity.logical_name.clone(),
    }
    .into()
}

/// Resolves an alternate key in the path's first segment (`set(col='v',...)`) to the record's
/// id, rewriting the segment to `set(<id>)`, so the path is then read like any other and every
/// handler, `$batch` included, sees an id. A key that matches nothing is a 404, except for a
/// `PATCH` of the record itself: an upsert, which creates the record with the key's values. Its
/// key comes back, and the segment then names a fresh id.
pub(super) async fn resolve_path(
    state: &AppState,
    db: &Guard<'_>,
    caller: &Caller,
    method: &Method,
    segments: &mut [String],
) -> Result<Option<AlternateKey>, ApiError> {
    let Some(key) = path::alternate_key_of_path(&state.service.catalog, segments)? else {
        return Ok(None);
    };
    let found = find(state, db, caller, &key).await?;
    let upsert = *method == Method::PATCH && segments.len() == 1;
    let id = match found {
        Some(id) => id,
        None if upsert => crate::execute::new_record_id(),
        None => return Err(key_not_found(&key)),
    };
    segments[0] = path::record_segment(&key.entity, id);
    Ok((found.is_none() && upsert).then_some(key))
}

/// Rewrites each `@odata.bind` of a body that names its record by an alternate key to the
/// record's id (`/set(<id>)`), as the caller may read it; no match is a 404.
pub(super) async fn resolve_binds(
    call: &Call<'_>,
    object: &mut serde_json::Map<String, Json>,
) -> Result<(), ApiError> {
    resolve_binds_in(call.state, call.db, &call.caller, object).await
}

/// How deep [`resolve_binds_in`] looks into a deep insert's nested records (the deep insert
/// refuses more levels than this anyway).
const MAX_NESTED: usize = 6;

/// [`resolve_binds`] through `db` (a bulk message's own transaction), also in the records a
/// deep insert nests.
pub(super) async fn resolve_binds_in(
    state: &AppState,
    db: &Guard<'_>,
    caller: &Caller,
    object: &mut serde_json::Map<String, Json>,
) -> Result<(), ApiError> {
    resolve_nested(state, db, caller, object, 0).await
}

fn resolve_nested<'a>(
    state: &'a AppState,
    db: &'a Guard<'a>,
    caller: &'a Caller,
    object: &'a mut serde_json::Map<String, Json>,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ApiError>> + Send + 'a>> {
    Box::pin(async move {
        let catalog = &state.service.catalog;
        for (name, value) in object.iter_mut() {
            match value {
                Json::String(text) if name.ends_with("@odata.bind") => {
                    if let Some(key) = path::alternate_key_of_reference(catalog, text)? {
                        let id = find(state, db, caller, &key)
                            .await?
                            .ok_or_else(|| key_not_found(&key))?;
                        *text = format!("/{}", path::record_segment(&key.entity, id));
                    }
                }
                Json::Object(nested) if depth < MAX_NESTED => {
                    resolve_nested(state, db, caller, nested, depth + 1).await?;
                }
                Json::Array(items) if depth < MAX_NESTED => {
                    for item in items.iter_mut() {
                        if let Json::Object(nested) = item {
                            resolve_nested(state, db, caller, nested, depth + 1).await?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    })
}

/// An entity reference (`{"@odata.id": ...}` of a `$ref` body) by an alternate key, rewritten
/// to the record's id like a bind.
pub(super) async fn resolve_reference(
    call: &Call<'_>,
    text: &str,
) -> Result<Option<String>, ApiError> {
    let catalog = &call.state.service.catalog;
    let Some(key) = path::alternate_key_of_reference(catalog, text)? else {
        return Ok(None);
    };
    let id = find(call.state, call.db, &call.caller, &key)
        .await?
        .ok_or_else(|| key_not_found(&key))?;
    Ok(Some(path::record_segment(&key.entity, id)))
}

/// Rewrites every `"@odata.id"` of an action's body (at any depth: `Target`,
/// `PrincipalAccess.Principal`, ...) that names its record by an alternate key to the record's
/// id, as the caller may read it; no match is a 404.
pub(super) async fn resolve_odata_ids(call: &Call<'_>, json: &mut Json) -> Result<(), ApiError> {
    let mut pending = vec![json];
    while let Some(value) = pending.pop() {
        match value {
            Json::Object(object) => {
                for (name, value) in object.iter_mut() {
                    match value {
                        Json::String(text) if name == "@odata.id" => {
                            if let Some(resolved) = resolve_reference(call, text).await? {
                                *text = resolved;
                            }
                        }
                        other => pending.push(other),
                    }
                }
            }
            Json::Array(items) => pending.extend(items.iter_mut()),
            _ => {}
        }
    }
    Ok(())
}

/// A function's entity-reference argument (`{'@odata.id':'set(col=''v'')'}`, either quote
/// style) naming its record by an alternate key, as `set(<id>)` text [`super::entity_reference`]
/// reads; other arguments come back as they are.
pub(super) async fn resolve_argument(call: &Call<'_>, text: &str) -> Result<String, ApiError> {
    let json: Option<Json> = serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&text.replace('\'', "\"")))
        .ok();
    let Some(reference) = json
        .as_ref()
        .and_then(|j| j.get("@odata.id"))
        .and_then(Json::as_str)
    else {
        return Ok(text.to_string());
    };
    match resolve_reference(call, reference).await? {
        Some(resolved) => Ok(serde_json::json!({ "@odata.id": resolved }).to_string()),
        None => Ok(text.to_string()),
    }
}

/// The key's values as the body of the create an upsert by key makes: values for its columns
/// (a lookup as a bind of its one target table), for those the body does not set itself.
pub(super) fn key_payload(
    catalog: &crate::metadata::Catalog,
    key: &AlternateKey,
    payload: &mut Payload,
) -> Result<(), ApiError> {
    let entity = &key.entity;
    for (position, literal) in &key.values {
        let attribute = &entity.attributes[*position];
        let set = payload.values.iter().any(|(p, _)| p == position)
            || payload.binds.iter().any(|b| b.position == *position);
        if set {
            continue;
        }
        if attribute.attribute_type.is_lookup() {
            let (Literal::Guid(id), [target]) = (literal, attribute.targets.as_slice()) else {
                return Err(bad(format!(
                    "The key column {} has several target tables; set it with an @odata.bind.",
                    attribute.logical_name
                )));
            };
            let target = catalog
                .entity(target)
                .cloned()
                .ok_or_else(|| bad(format!("Unknown table {target}.")))?;
            payload.binds.push(Bind {
                position: *position,
                target: Some((target, *id)),
            });
            continue;
        }
        let json = match literal {
            Literal::String(text) => Json::String(text.clone()),
            Literal::Int(n) => Json::from(*n),
            Literal::Bool(b) => Json::Bool(*b),
            Literal::Guid(id) => Json::String(id.to_string()),
            Literal::DateTime(seconds) | Literal::Date(seconds) => {
                let at = time::OffsetDateTime::from_unix_timestamp(*seconds)
                    .map_err(|_| bad(format!("The key value {seconds} is not a date.")))?;
                Json::String(
                    at.format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                )
            }
            Literal::Null => Json::Null,
        };
        payload
            .values
            .push((*position, parse_value(entity, attribute, &json)?));
    }
    Ok(())
}

/// `POST .../Keys` (204 + OData-EntityId) and `DELETE .../Keys(<key>)` (204).
pub(super) async fn keys_request(
    call: &Call<'_>,
    segments: &[String],
) -> Result<Response, ApiError> {
    let request = crate::schema::parse_definitions_path(segments, &[])?;
    let DefinitionsRequest::Members {
        entity,
        member: Member::Keys,
        key,
        ..
    } = request
    else {
        return Err(ApiError::no_resource(&call.uri));
    };
    let entity = resolve(call, &entity)?;
    refresh(call).await?;
    match (&call.method, key) {
        (&Method::POST, None) => create(call, &entity).await,
        (&Method::DELETE, Some(key)) => {
            let existing = call
                .state
                .service
                .catalog
                .alternate_keys(&entity.logical_name);
            let found = existing.iter().find(|k| match &key {
                MetadataKey::LogicalName(name) => k.logical_name.eq_ignore_ascii_case(name),
                MetadataKey::MetadataId(id) => key_metadata_id(&entity, k) == *id,
            });
            let Some(found) = found else {
                return Err(crate::schema::SchemaError::UnknownMember {
                    collection: "Keys",
                    key: match key {
                        MetadataKey::LogicalName(name) => name,
                        MetadataKey::MetadataId(id) => id.to_string(),
                    },
                }
                .into());
            };
            call.db
                .delete_entity_key(&entity.logical_name, &found.logical_name)
                .await?;
            refresh(call).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::no_resource(&call.uri)),
    }
}

fn resolve(call: &Call<'_>, key: &MetadataKey) -> Result<Arc<Entity>, ApiError> {
    let catalog = &call.state.service.catalog;
    let found = match key {
        MetadataKey::LogicalName(name) => catalog.entity(name).cloned(),
        MetadataKey::MetadataId(id) => catalog
            .entities()
            .iter()
            .find(|e| crate::schema::entity_metadata_id(e) == *id)
            .cloned(),
    };
    found.ok_or_else(|| {
        crate::schema::SchemaError::UnknownEntity(match key {
            MetadataKey::LogicalName(name) => name.clone(),
            MetadataKey::MetadataId(id) => id.to_string(),
        })
        .into()
    })
}

fn key_metadata_id(entity: &Entity, key: &StoredKey) -> uuid::Uuid {
    metadata_id(&["key", &entity.logical_name, &key.logical_name])
}

async fn create(call: &Call<'_>, entity: &Arc<Entity>) -> Result<Response, ApiError> {
    check_content_type(header_str(&call.headers, "Content-Type")?)?;
    let body: Json = serde_json::from_slice(&call.body)
        .map_err(|e| bad(format!("The EntityKeyMetadata body is not JSON: {e}")))?;
    let key = read_key(entity, &body)?;
    let existing = call
        .state
        .service
        .catalog
        .alternate_keys(&entity.logical_name);
    if existing.len() >= MAX_KEYS {
        return Err(bad(format!(
            "The table {} already has {MAX_KEYS} alternate keys, the most a table may have.",
            entity.logical_name
        )));
    }
    if existing
        .iter()
        .any(|k| k.logical_name == key.logical_name || k.attributes == key.attributes)
    {
        return Err(bad(format!(
            "The table {} already has a key named {} or over the columns {}.",
            entity.logical_name,
            key.logical_name,
            key.attributes.join(", ")
        )));
    }
    call.db.create_entity_key(&key).await?;
    refresh(call).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let url = format!(
        "{}EntityDefinitions(LogicalName='{}')/Keys({})",
        call.root,
        entity.logical_name,
        key_metadata_id(entity, &key)
    );
    if let Ok(value) = HeaderValue::from_str(&url) {
        response
            .headers_mut()
            .insert("OData-EntityId", value.clone());
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// The body's `EntityKeyMetadata`, checked against the table.
fn read_key(entity: &Entity, body: &Json) -> Result<StoredKey, ApiError> {
    let schema_name = body
        .get("SchemaName")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("An EntityKeyMetadata needs a SchemaName."))?;
    let logical_name = match body.get("LogicalName") {
        None | Some(Json::Null) => schema_name.to_ascii_lowercase(),
        Some(Json::String(name)) => name.clone(),
        Some(other) => return Err(bad(format!("LogicalName must be a string, not {other}."))),
    };
    let plain = logical_name.len() <= 40
        && logical_name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
        && logical_name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !plain || !schema_name.eq_ignore_ascii_case(&logical_name) {
        return Err(bad(format!(
            "The key name '{logical_name}' is not valid: a LogicalName is the SchemaName in \
             lowercase, letters, digits and underscores, at most 40 characters."
        )));
    }
    let display_name = body
        .pointer("/DisplayName/LocalizedLabels/0/Label")
        .or_else(|| body.pointer("/DisplayName/UserLocalizedLabel/Label"))
        .and_then(Json::as_str)
        .unwrap_or(schema_name)
        .to_string();
    let attributes: Vec<String> = body
        .get("KeyAttributes")
        .and_then(Json::as_array)
        .ok_or_else(|| bad("An EntityKeyMetadata needs KeyAttributes, an array of column names."))?
        .iter()
        .map(|a| {
            a.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(format!("KeyAttributes holds column names, not {a}.")))
        })
        .collect::<Result<_, _>>()?;
    if attributes.is_empty() || attributes.len() > MAX_KEY_ATTRIBUTES {
        return Err(bad(format!(
            "A key has 1 to {MAX_KEY_ATTRIBUTES} columns, not {}.",
            attributes.len()
        )));
    }
    for (i, name) in attributes.iter().enumerate() {
        if attributes[..i].contains(name) {
            return Err(bad(format!(
                "The column {name} is named twice in KeyAttributes."
            )));
        }
        let attribute = entity
            .attribute(name)
            .filter(|a| a.is_stored())
            .ok_or_else(|| crate::schema::SchemaError::UnknownAttribute {
                entity: entity.logical_name.clone(),
                attribute: name.clone(),
            })?;
        use AttributeType as T;
        let allowed = matches!(
            attribute.attribute_type,
            T::String | T::Integer | T::BigInt | T::DateTime | T::Picklist | T::Lookup
        );
        if !allowed || name == &entity.primary_id {
            return Err(bad(format!(
                "The column {name} ({}) cannot be part of a key: a key is made of string, \
                 whole number, date and time, lookup and choice columns.",
                attribute.attribute_type.name()
            )));
        }
    }
    Ok(StoredKey {
        entity: entity.logical_name.clone(),
        logical_name,
        schema_name: schema_name.to_string(),
        display_name,
        attributes,
    })
}
