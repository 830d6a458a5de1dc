//! Audit history over the change log (migration 14): `RetrieveRecordChangeHistory` (every
//! audit record of one row, oldest first) and `RetrieveAuditDetails` (one record), each an
//! audit record with the row's old and new values of the columns the change set.
//!
//! An audit record's `auditid` is its change-log number as a GUID
//! (`00000000-0000-0000-0000-<seq in hex>`), so a record is found by it without a second key.
//! Only a caller allowed to read the audit history gets any ([`Guard::audit_records`]).
//!
//! A column whose auditing was off when the change was made (its `IsAuditEnabled`; the change
//! log row lists them) is left out of the detail, and an update that changed no audited column
//! is no audit record of the history (a change-log row change tracking keeps).

use std::sync::Arc;

use uuid::Uuid;

use super::{ExecError, Service};
use crate::authorize::Guard;
use crate::metadata::system::EVERY_UPDATE as UNAUDITED;
use crate::metadata::{AttributeType, Entity};
use crate::store::{AuditRecord, AuditSelection, LoggedChange, Record, Value};

/// The audit actions of share changes (Share, Modify Share, Unshare).
const SHARE_ACTIONS: [i64; 3] = [14, 48, 49];

/// An audit record's id: its change-log number.
pub fn audit_id(seq: i64) -> Uuid {
    Uuid::from_u128(seq as u128)
}

fn audit_seq(id: Uuid) -> Option<i64> {
    i64::try_from(id.as_u128()).ok()
}

/// One audit record and what it changed.
#[derive(Debug)]
pub enum AuditDetail {
    /// A create, update, state change, assign or delete: the row before and after, and the
    /// columns the change set (all the row's values for a create or a delete).
    Attribute {
        record: AuditRecord,
        old: Record,
        new: Record,
        changed: Vec<usize>,
    },
    /// A share change: the principal and its access before and after (`None`: no share).
    Share {
        record: AuditRecord,
        principal: Option<(Uuid, String)>,
        old_mask: Option<i64>,
        new_mask: Option<i64>,
    },
}

impl AuditDetail {
    /// A plain update none of whose changed columns is audited.
    fn is_empty_update(&self) -> bool {
        matches!(self, AuditDetail::Attribute { record, changed, .. }
            if record.change.action == 2 && changed.is_empty())
    }

    pub fn record(&self) -> &AuditRecord {
        match self {
            AuditDetail::Attribute { record, .. } | AuditDetail::Share { record, .. } => record,
        }
    }
}

impl Service {
    /// `RetrieveRecordChangeHistory(Target=...)`: every audit record of the row, oldest first.
    pub async fn record_change_history(
        &self,
        db: &Guard<'_>,
        entity: &Arc<Entity>,
        id: Uuid,
    ) -> Result<Vec<AuditDetail>, ExecError> {
        let records = db.audit_records(AuditSelection::Object(id)).await?;
        Ok(records
            .into_iter()
            .filter(|r| r.entity == entity.logical_name)
            .map(|r| detail(entity, r))
            .filter(|d| !d.is_empty_update())
            .collect())
    }

    /// `DeleteAuditData(EndDate)`: deletes the audit history (the change log) created before
    /// `end` (Unix seconds); how many records.
    pub async fn delete_audit_data(&self, db: &Guard<'_>, end: i64) -> Result<u64, ExecError> {
        Ok(db.delete_audit_data(end).await?)
    }

    /// `RetrieveAuditDetails(AuditId=...)`: one audit record.
    pub async fn audit_details(
        &self,
        db: &Guard<'_>,
        audit: Uuid,
    ) -> Result<AuditDetail, ExecError> {
        let missing = || ExecError::NotFound {
            entity: crate::metadata::system::AUDIT.into(),
            id: audit,
        };
        let seq = audit_seq(audit).ok_or_else(missing)?;
        let record = db
            .audit_records(AuditSelection::Record(seq))
            .await?
            .into_iter()
            .next()
            .ok_or_else(missing)?;
        let entity = self
            .catalog
            .entity(&record.entity)
            .ok_or_else(|| ExecError::UnknownEntity(record.entity.clone()))?;
        let detail = detail(entity, record);
        if detail.is_empty_update() {
            return Err(missing());
        }
        Ok(detail)
    }
}

fn detail(entity: &Arc<Entity>, record: AuditRecord) -> AuditDetail {
    if SHARE_ACTIONS.contains(&record.change.action) {
        return share_detail(record);
    }
    let old = row(entity, record.olddata.as_ref());
    let new = row(entity, record.newdata.as_ref());
    let changed: Vec<usize> = match record.change.operation {
        LoggedChange::DELETE => non_null(&old),
        1 => non_null(&new),
        _ => (0..entity.attributes.len())
            .filter(|&p| {
                entity.attributes[p].is_stored()
                    && !UNAUDITED.contains(&entity.attributes[p].logical_name.as_str())
                    && old.values[p] != new.values[p]
            })
            .collect(),
    };
    let changed = changed
        .into_iter()
        .filter(|&p| {
            !record
                .unaudited
                .contains(&entity.attributes[p].logical_name)
        })
        .collect();
    AuditDetail::Attribute {
        record,
        old,
        new,
        changed,
    }
}

fn share_detail(record: AuditRecord) -> AuditDetail {
    use crate::metadata::system::{ACCESS_RIGHTS_MASK, PRINCIPAL_ID, PRINCIPAL_TYPE_CODE};
    let side = |data: Option<&serde_json::Value>| {
        data.map(|d| {
            (
                d.get(PRINCIPAL_ID)
                    .and_then(|v| v.as_str())
                    .and_then(|v| Uuid::parse_str(v).ok()),
                d.get(PRINCIPAL_TYPE_CODE)
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                d.get(ACCESS_RIGHTS_MASK).and_then(|v| v.as_i64()),
            )
        })
    };
    let old = side(record.olddata.as_ref());
    let new = side(record.newdata.as_ref());
    let principal = [&new, &old]
        .into_iter()
        .flatten()
        .find_map(|(id, kind, _)| Some(((*id)?, kind.clone().unwrap_or_default())));
    AuditDetail::Share {
        principal,
        old_mask: old.and_then(|(_, _, m)| m),
        new_mask: new.and_then(|(_, _, m)| m),
        record,
    }
}

/// The stored columns with a value.
fn non_null(record: &Record) -> Vec<usize> {
    (0..record.values.len())
        .filter(|&p| record.entity.attributes[p].is_stored() && !record.values[p].is_null())
        .collect()
}

/// A row as the change log's JSON holds it (SQLite's values, or PostgreSQL's `to_jsonb`).
fn row(entity: &Arc<Entity>, data: Option<&serde_json::Value>) -> Record {
    let mut record = Record::empty(Arc::clone(entity));
    let Some(object) = data.and_then(|d| d.as_object()) else {
        return record;
    };
    for (position, attribute) in entity.attributes.iter().enumerate() {
        if let Some(value) = object.get(&attribute.logical_name) {
            record.values[position] = value_of(attribute.attribute_type, value);
        }
    }
    record
}

fn value_of(attribute_type: AttributeType, json: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    use AttributeType as T;
    match (attribute_type, json) {
        (_, J::Null) => Value::Null,
        (T::Uniqueidentifier | T::Lookup | T::Owner, J::String(s)) => {
            Uuid::parse_str(s).map_or(Value::Null, Value::Guid)
        }
        (T::DateTime, J::Number(n)) => n.as_i64().map_or(Value::Null, Value::DateTime),
        (T::DateTime, J::String(s)) => parse_time(s).map_or(Value::Null, Value::DateTime),
        (T::Boolean, J::Bool(b)) => Value::Bool(*b),
        (T::Boolean, J::Number(n)) => Value::Bool(n.as_i64() == Some(1)),
        (_, J::Number(n)) => n.as_i64().map_or(Value::Null, Value::Int),
        (_, J::String(s)) => Value::Text(s.clone()),
        _ => Value::Null,
    }
}

/// PostgreSQL's `timestamptz` in JSON (`2026-12-03T05:40:00+00:00`), as Unix seconds.
fn parse_time(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_ids_are_change_log_numbers() {
        assert_eq!(
            audit_id(42).to_string(),
            "00000000-0000-0000-0000-00000000002a"
        );
        assert_eq!(audit_seq(audit_id(42)), Some(42));
    }

    #[test]
    fn both_backends_json_values_read_back() {
        assert_eq!(
            value_of(AttributeType::DateTime, &serde_json::json!(1_700_000_000)),
            Value::DateTime(1_700_000_000)
        );
        assert_eq!(
            value_of(
                AttributeType::DateTime,
                &serde_json::json!("2023-11-14T22:13:20+00:00")
            ),
            Value::DateTime(1_700_000_000)
        );
        assert_eq!(
            value_of(AttributeType::Boolean, &serde_json::json!(1)),
            Value::Bool(true)
        );
    }
}
