//! The security model's messages on the wire: GrantAccess, ModifyAccess and RevokeAccess
//! (unbound actions), RetrievePrincipalAccess (bound to `systemusers(<id>)` or `teams(<id>)`),
//! RetrieveSharedPrincipalsAndAccess (unbound function), and the `$ref` associations
//! `systemuserroles_association`, `teamroles_association`, `teammembership_association`.
//! Decoding and encoding only: the [`crate::authorize::Guard`] checks and writes.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use super::error::ApiError;
use super::{argument, entity_reference, header_str, json_response, Call};
use crate::authorize::{PrincipalRef, Relationship, ShareChange};
use crate::metadata::system::{OWNER_ID, SYSTEM_USER, TEAM};
use crate::metadata::{Catalog, Entity};
use crate::parse::body::check_content_type;
use crate::parse::path::parse_reference;
use crate::parse::select::option;
use crate::parse::ParseError;
use crate::security::AccessRights;

const NAMESPACE: &str = "Microsoft.Dynamics.CRM.";

fn bad(message: impl Into<String>) -> ApiError {
    ParseError::InvalidArgument(message.into()).into()
}

/// A record named in an action's body: `{"@odata.id": "set(id)"}`, or
/// `{"@odata.type": "Microsoft.Dynamics.CRM.<table>", "<primary id>": "<id>"}`.
fn record_ref(
    catalog: &Catalog,
    value: &Json,
    parameter: &str,
) -> Result<(Arc<Entity>, Uuid), ApiError> {
    let refused = || {
        bad(format!(
            "The parameter '{parameter}' must be an entity reference with '@odata.type' and its primary key, or '@odata.id'."
        ))
    };
    let object = value.as_object().ok_or_else(refused)?;
    if let Some(url) = object.get("@odata.id").and_then(Json::as_str) {
        return parse_reference(catalog, url).ok_or_else(refused);
    }
    let type_name = object
        .get("@odata.type")
        .and_then(Json::as_str)
        .map(|t| t.trim_start_matches('#'))
        .and_then(|t| t.strip_prefix(NAMESPACE))
        .ok_or_else(refused)?;
    let entity = catalog.entity(type_name).cloned().ok_or_else(refused)?;
    let key = &entity.attributes[entity.primary_id_position()].logical_name;
    let id = object
        .get(key.as_str())
        .or_else(|| object.get(OWNER_ID))
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(refused)?;
    Ok((entity, id))
}

fn principal_ref(
    catalog: &Catalog,
    value: &Json,
    parameter: &str,
) -> Result<PrincipalRef, ApiError> {
    let (entity, id) = record_ref(catalog, value, parameter)?;
    match entity.logical_name.as_str() {
        SYSTEM_USER => Ok(PrincipalRef { id, is_team: false }),
        TEAM => Ok(PrincipalRef { id, is_team: true }),
        _ => Err(bad(format!(
            "The parameter '{parameter}' must be a systemuser or a team."
        ))),
    }
}

/// `POST /GrantAccess`, `/ModifyAccess`, `/RevokeAccess`: 204.
pub(super) async fn action(call: &Call<'_>, name: &str) -> Result<Response, ApiError> {
    if call.method != Method::POST {
        return Err(ApiError::no_resource(&call.uri));
    }
    check_content_type(header_str(&call.headers, "Content-Type")?)?;
    let mut body: Json = serde_json::from_slice(&call.body).map_err(|e| ParseError::Payload {
        entity_set: name.to_string(),
        detail: e.to_string(),
    })?;
    super::keys::resolve_odata_ids(call, &mut body).await?;
    let catalog = &call.state.service.catalog;
    let target = body
        .get("Target")
        .ok_or_else(|| bad("The parameter 'Target' is missing."))?;
    let (entity, id) = record_ref(catalog, target, "Target")?;
    let (principal, rights, change) = match name {
        "RevokeAccess" => {
            let revokee = body
                .get("Revokee")
                .ok_or_else(|| bad("The parameter 'Revokee' is missing."))?;
            (
                principal_ref(catalog, revokee, "Revokee")?,
                AccessRights::empty(),
                ShareChange::Revoke,
            )
        }
        _ => {
            let access = body
                .get("PrincipalAccess")
                .ok_or_else(|| bad("The parameter 'PrincipalAccess' is missing."))?;
            let principal = access
                .get("Principal")
                .ok_or_else(|| bad("The parameter 'PrincipalAccess.Principal' is missing."))?;
            let mask = access
                .get("AccessMask")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("The parameter 'PrincipalAccess.AccessMask' is missing."))?;
            let rights = AccessRights::parse(mask).map_err(|e| bad(e.to_string()))?;
            let change = if name == "GrantAccess" {
                ShareChange::Grant
            } else {
                ShareChange::Modify
            };
            (
                principal_ref(catalog, principal, "Principal")?,
                rights,
                change,
            )
        }
    };
    call.db
        .share(&entity, id, principal, rights, change)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The record of a function's `Target=@tid` argument.
async fn target_argument(
    call: &Call<'_>,
    arguments: &[(String, String)],
) -> Result<(Arc<Entity>, Uuid), ApiError> {
    let text = argument(call, arguments, "Target")?;
    let resolved = super::keys::resolve_argument(call, text).await?;
    entity_reference(&call.state.service.catalog, &resolved).ok_or_else(|| {
        bad(format!(
            "The parameter 'Target' must be an entity reference such as {{'@odata.id':'msdyn_smsengagementctxes(<id>)'}}, not '{text}'."
        ))
    })
}

/// `GET /systemusers(<id>)/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@tid)`.
pub(super) async fn bound_function(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    name: &str,
    arguments: &[(String, String)],
) -> Result<Response, ApiError> {
    if name != "RetrievePrincipalAccess" || call.method != Method::GET {
        return Err(ParseError::ResourceNotFound(name.to_string()).into());
    }
    let principal = match entity.logical_name.as_str() {
        SYSTEM_USER => PrincipalRef { id, is_team: false },
        TEAM => PrincipalRef { id, is_team: true },
        _ => return Err(ParseError::ResourceNotFound(name.to_string()).into()),
    };
    let (target, target_id) = target_argument(call, arguments).await?;
    let rights = call
        .db
        .principal_access(principal, &target, target_id)
        .await?;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Json::String(format!(
            "{}$metadata#Microsoft.Dynamics.CRM.RetrievePrincipalAccessResponse",
            call.root
        )),
    );
    body.insert("AccessRights".into(), Json::String(rights.to_string()));
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /RetrieveSharedPrincipalsAndAccess(Target=@tid)`.
pub(super) async fn shared_principals(
    call: &Call<'_>,
    arguments: &[(String, String)],
) -> Result<Response, ApiError> {
    let (target, target_id) = target_argument(call, arguments).await?;
    let shares = call.db.shared_principals(&target, target_id).await?;
    let accesses: Vec<Json> = shares
        .iter()
        .map(|s| {
            json!({
                "AccessMask": s.rights.to_string(),
                "Principal": {
                    "@odata.type": format!("#{NAMESPACE}{}", if s.is_team { TEAM } else { SYSTEM_USER }),
                    OWNER_ID: s.principal_id.to_string(),
                }
            })
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Json::String(format!(
            "{}$metadata#Microsoft.Dynamics.CRM.RetrieveSharedPrincipalsAndAccessResponse",
            call.root
        )),
    );
    body.insert("PrincipalAccesses".into(), Json::Array(accesses));
    Ok(json_response(StatusCode::OK, &body))
}

/// The record a `$ref` body names: `{"@odata.id": "<set>(<id>)"}` (a URL or a path).
pub(super) async fn reference_body(
    call: &Call<'_>,
    entity: &Entity,
) -> Result<(Arc<Entity>, Uuid), ApiError> {
    check_content_type(header_str(&call.headers, "Content-Type")?)?;
    let body: Json = serde_json::from_slice(&call.body).map_err(|e| ParseError::Payload {
        entity_set: entity.entity_set_name.clone(),
        detail: e.to_string(),
    })?;
    let url = body
        .get("@odata.id")
        .and_then(Json::as_str)
        .ok_or_else(|| bad("The body of a $ref request is {\"@odata.id\": \"<set>(<id>)\"}."))?;
    // A record named by an alternate key is read (as the caller may) to its id first.
    let resolved = super::keys::resolve_reference(call, url).await?;
    let url = resolved.as_deref().unwrap_or(url);
    parse_reference(&call.state.service.catalog, url)
        .ok_or_else(|| bad(format!("'{url}' is not a record reference.")))
}

/// The record a `$ref` DELETE names in its query: `$id=<url>`.
pub(super) fn reference_query(call: &Call<'_>) -> Result<(Arc<Entity>, Uuid), ApiError> {
    let url = option(&call.pairs, "$id").ok_or_else(|| {
        bad("A $ref DELETE names the record: .../{navigation}(<id>)/$ref or $id=<url>.")
    })?;
    parse_reference(&call.state.service.catalog, url)
        .ok_or_else(|| bad(format!("'{url}' is not a record reference.")))
}

/// `POST .../{relationship}/$ref` with `{"@odata.id": ...}` (204), and `DELETE
/// .../{relationship}({key})/$ref` or `.../{relationship}/$ref?$id=...` (204).
pub(super) async fn association(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    name: &str,
    key: Option<Uuid>,
) -> Result<Response, ApiError> {
    let relationship = Relationship::by_name(name)
        .ok_or_else(|| ParseError::ResourceNotFound(name.to_string()))?;
    let (_, (left, _), (right, _)) = relationship.tables();
    let other_table = if entity.logical_name == left {
        right
    } else if entity.logical_name == right {
        left
    } else {
        return Err(ParseError::ResourceNotFound(name.to_string()).into());
    };
    let catalog = &call.state.service.catalog;
    let (other, other_id, add) = match (&call.method, key) {
        (&Method::POST, None) => {
            let (other, other_id) = reference_body(call, entity).await?;
            (other, other_id, true)
        }
        (&Method::DELETE, Some(key)) => {
            let other = catalog
                .entity(other_table)
                .cloned()
                .ok_or_else(|| ApiError::no_resource(&call.uri))?;
            (other, key, false)
        }
        (&Method::DELETE, None) => {
            let (other, other_id) = reference_query(call)?;
            (other, other_id, false)
        }
        _ => return Err(ApiError::no_resource(&call.uri)),
    };
    if other.logical_name != other_table {
        return Err(bad(format!(
            "The relationship '{name}' links {left} and {right}, not {}.",
            other.logical_name
        )));
    }
    call.db
        .associate(relationship, entity, id, &other, other_id, add)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
