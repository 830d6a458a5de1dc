//! The audit history on the wire: `RetrieveRecordChangeHistory(Target=@t)` answers an
//! `AuditDetailCollection`, `RetrieveAuditDetails(AuditId=...)` one `AuditDetail`, each an
//! `AttributeAuditDetail` (the audit record, `OldValue`, `NewValue`: the columns the change
//! set) or a `ShareAuditDetail` (the principal and its access before and after), as Dataverse
//! writes them; `DeleteAuditData` deletes the history older than its `EndDate`.

use axum::response::Response;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::error::ApiError;
use super::organization::response_of;
use super::{argument, entity_reference, Call};
use crate::execute::audit::{audit_id, AuditDetail};
use crate::metadata::system::{
    AUDIT_ACTION, AUDIT_ID, AUDIT_OPERATION, CREATED_ON, OBJECT_TYPE_CODE,
};
use crate::parse::ParseError;
use crate::security::AccessRights;
use crate::serialize;

/// The unbound functions this module answers.
pub(super) const FUNCTIONS: &[&str] = &["RetrieveRecordChangeHistory", "RetrieveAuditDetails"];

/// The unbound action this module answers.
pub(super) const DELETE_AUDIT_DATA: &str = "DeleteAuditData";

fn bad(message: impl Into<String>) -> ApiError {
    ParseError::InvalidArgument(message.into()).into()
}

pub(super) async fn function(
    call: &Call<'_>,
    name: &str,
    arguments: &[(String, String)],
) -> Result<Response, ApiError> {
    let service = &call.state.service;
    match name {
        "RetrieveRecordChangeHistory" => {
            let text = argument(call, arguments, "Target")?;
            let (entity, id) =
                entity_reference(&service.catalog, text).ok_or_else(|| {
                    bad(format!(
                        "The parameter 'Target' must be an entity reference such as {{'@odata.id':'msdyn_smsengagementctxes(<id>)'}}, not {text}."
                    ))
                })?;
            let details = service.record_change_history(call.db, &entity, id).await?;
            let collection = json!({
                "MoreRecords": false,
                "PagingCookie": "",
                "TotalRecordCount": details.len(),
                "AuditDetails": details.iter().map(detail_json).collect::<Vec<_>>(),
            });
            Ok(response_of(
                call,
                "RetrieveRecordChangeHistoryResponse",
                vec![("AuditDetailCollection", collection)],
            ))
        }
        "RetrieveAuditDetails" => {
            let text = argument(call, arguments, "AuditId")?;
            let id = Uuid::parse_str(text.trim_matches('\'')).map_err(|_| {
                bad(format!(
                    "The parameter 'AuditId' must be a GUID, not {text}."
                ))
            })?;
            let detail = service.audit_details(call.db, id).await?;
            Ok(response_of(
                call,
                "RetrieveAuditDetailsResponse",
                vec![("AuditDetail", detail_json(&detail))],
            ))
        }
        _ => Err(ParseError::ResourceNotFound(name.to_string()).into()),
    }
}

/// `POST /DeleteAuditData {"EndDate": "..."}`: deletes the audit history (the change log) older
/// than `EndDate`; delta tokens issued before it are then refused as expired.
pub(super) async fn delete_audit_data(call: &Call<'_>) -> Result<Response, ApiError> {
    let body: Json = serde_json::from_slice(&call.body).map_err(|e| ParseError::Payload {
        entity_set: DELETE_AUDIT_DATA.to_string(),
        detail: e.to_string(),
    })?;
    let end = body
        .get("EndDate")
        .and_then(Json::as_str)
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .ok_or_else(|| {
            bad("The parameter 'EndDate' must be a date and time such as 2026-01-01T00:00:00Z.")
        })?;
    let deleted = call
        .state
        .service
        .delete_audit_data(call.db, end.unix_timestamp())
        .await?;
    Ok(response_of(
        call,
        "DeleteAuditDataResponse",
        vec![("Result", json!(deleted))],
    ))
}

fn values(record: &crate::store::Record, columns: &[usize]) -> Json {
    serde_json::from_slice(&serialize::audit_values(record, columns)).unwrap_or(Json::Null)
}

fn detail_json(detail: &AuditDetail) -> Json {
    let record = detail.record();
    let audit = json!({
        "@odata.type": "#Microsoft.Dynamics.CRM.audit",
        AUDIT_ID: audit_id(record.change.seq),
        AUDIT_ACTION: record.change.action,
        AUDIT_OPERATION: record.change.operation,
        CREATED_ON: serialize::datetime_text(record.createdon),
        OBJECT_TYPE_CODE: record.entity,
        "_objectid_value": record.change.objectid,
        "_userid_value": record.userid,
        "_callinguserid_value": record.callinguserid,
    });
    match detail {
        AuditDetail::Attribute {
            old, new, changed, ..
        } => {
            let (old_columns, new_columns): (Vec<usize>, Vec<usize>) = match record.change.operation
            {
                1 => (Vec::new(), changed.clone()),
                3 => (changed.clone(), Vec::new()),
                _ => (changed.clone(), changed.clone()),
            };
            json!({
                "@odata.type": "#Microsoft.Dynamics.CRM.AttributeAuditDetail",
                "AuditRecord": audit,
                "InvalidNewValueAttributes": [],
                "LocLabelLanguageCode": 0,
                "DeletedAttributes": {"Count": 0, "Keys": [], "Values": []},
                "OldValue": values(old, &old_columns),
                "NewValue": values(new, &new_columns),
            })
        }
        AuditDetail::Share {
            principal,
            old_mask,
            new_mask,
            ..
        } => {
            let rights = |mask: &Option<i64>| {
                AccessRights::from_bits_truncate(mask.unwrap_or(0) as u32).to_string()
            };
            let principal = principal.as_ref().map(|(id, kind)| {
                json!({
                    "@odata.type": format!("#Microsoft.Dynamics.CRM.{kind}"),
                    format!("{kind}id"): id,
                })
            });
            json!({
                "@odata.type": "#Microsoft.Dynamics.CRM.ShareAuditDetail",
                "AuditRecord": audit,
                "Principal": principal,
                "OldPrivileges": rights(old_mask),
                "NewPrivileges": rights(new_mask),
            })
        }
    }
}
