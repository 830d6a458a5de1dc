//! Metadata updates: `PUT EntityDefinitions(...)` and `PUT EntityDefinitions(...)/Attributes(...)`
//! with a definition whose `IsAuditEnabled` (a table's or a column's) or `ChangeTrackingEnabled`
//! (a table's) differs from the stored one, as an administrator changes them in Dataverse.
//!
//! Every other property of the body must equal what smsctx reports (a client reads the
//! definition, changes a setting and puts it back), else the update is refused naming it;
//! an absent property stays as it is. Only the tables the change log watches can track
//! changes or be audited (`CanChangeTrackingBeEnabled`, `IsAuditEnabled.CanBeChanged`).
//! Pure: the edge stores what this returns.

use serde_json::Value;

use super::attribute::{attribute_value, ATTRIBUTE_PROPERTIES};
use super::entity::{entity_value, ENTITY_PROPERTIES};
use crate::metadata::tracking::{ColumnAudit, TableTracking, TrackingSettings};
use crate::metadata::{Attribute, Entity};
use crate::schema::SchemaError;

/// The navigation properties a table definition may carry (changed through their own paths).
const ENTITY_NAVIGATIONS: &[&str] = &[
    "Attributes",
    "Keys",
    "ManyToOneRelationships",
    "OneToManyRelationships",
    "ManyToManyRelationships",
];

/// The settings a table's definition asks for (`None`: as they are).
pub fn entity_update(
    settings: &TrackingSettings,
    entity: &Entity,
    body: &Value,
) -> Result<Option<TableTracking>, SchemaError> {
    let object = as_object(body, &entity.logical_name)?;
    let current = settings.table(&entity.logical_name);
    let mut next = current.cloned().unwrap_or_else(|| TableTracking {
        entity: entity.logical_name.clone(),
        change_tracking: false,
        audit: false,
    });
    for (name, value) in object {
        if name.starts_with('@') || ENTITY_NAVIGATIONS.contains(&name.as_str()) {
            continue;
        }
        match name.as_str() {
            "ChangeTrackingEnabled" => {
                next.change_tracking = boolean(value, name)?;
            }
            "IsAuditEnabled" => {
                next.audit = managed_boolean(value, name)?;
            }
            _ if ENTITY_PROPERTIES.contains(&name.as_str()) => {
                unchanged(value, &entity_value(settings, entity, name), name, entity)?
            }
            _ => {
                return Err(SchemaError::UnknownProperty {
                    property: name.clone(),
                    type_name: "Microsoft.Dynamics.CRM.EntityMetadata".into(),
                })
            }
        }
    }
    match current {
        Some(current) if *current == next => Ok(None),
        Some(_) => Ok(Some(next)),
        None if !next.change_tracking && !next.audit => Ok(None),
        None => Err(SchemaError::CannotChange {
            property: if next.change_tracking {
                "ChangeTrackingEnabled".into()
            } else {
                "IsAuditEnabled".into()
            },
            owner: entity.logical_name.clone(),
            reason: ": smsctx keeps no change log of this table".into(),
        }),
    }
}

/// The auditing a column's definition asks for (`None`: as it is).
pub fn attribute_update(
    settings: &TrackingSettings,
    entity: &Entity,
    attribute: &Attribute,
    body: &Value,
) -> Result<Option<ColumnAudit>, SchemaError> {
    let owner = format!("{}.{}", entity.logical_name, attribute.logical_name);
    let object = as_object(body, &owner)?;
    let current = settings.audits_column(&entity.logical_name, &attribute.logical_name);
    let mut audit = current;
    for (name, value) in object {
        if name.starts_with('@') || name == "OptionSet" || name == "GlobalOptionSet" {
            continue;
        }
        match name.as_str() {
            "IsAuditEnabled" => audit = managed_boolean(value, name)?,
            _ => {
                let known = ATTRIBUTE_PROPERTIES.contains(&name.as_str())
                    || super::attribute::AttributeKind::of(attribute.attribute_type)
                        .properties()
                        .contains(&name.as_str());
                if !known {
                    return Err(SchemaError::UnknownProperty {
                        property: name.clone(),
                        type_name: "Microsoft.Dynamics.CRM.AttributeMetadata".into(),
                    });
                }
                let reported = attribute_value(settings, entity, attribute, name);
                if *value != reported {
                    return Err(SchemaError::CannotChange {
                        property: name.clone(),
                        owner,
                        reason: String::new(),
                    });
                }
            }
        }
    }
    if audit == current {
        return Ok(None);
    }
    if settings.table(&entity.logical_name).is_none() {
        return Err(SchemaError::CannotChange {
            property: "IsAuditEnabled".into(),
            owner,
            reason: ": smsctx keeps no change log of this table".into(),
        });
    }
    Ok(Some(ColumnAudit {
        entity: entity.logical_name.clone(),
        attribute: attribute.logical_name.clone(),
        audit,
    }))
}

fn as_object<'a>(
    body: &'a Value,
    owner: &str,
) -> Result<&'a serde_json::Map<String, Value>, SchemaError> {
    body.as_object().ok_or_else(|| {
        SchemaError::BadPayload(format!(
            "The definition of '{owner}' must be a JSON object of its metadata properties."
        ))
    })
}

fn boolean(value: &Value, name: &str) -> Result<bool, SchemaError> {
    value.as_bool().ok_or_else(|| {
        SchemaError::BadPayload(format!("The property '{name}' must be true or false."))
    })
}

/// A `BooleanManagedProperty` (`{"Value": true, "CanBeChanged": ...}`), or a bare Boolean.
fn managed_boolean(value: &Value, name: &str) -> Result<bool, SchemaError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Object(object) => object.get("Value").and_then(Value::as_bool).ok_or_else(|| {
            SchemaError::BadPayload(format!(
                "The property '{name}' must be a BooleanManagedProperty such as {{\"Value\":true}}."
            ))
        }),
        _ => Err(SchemaError::BadPayload(format!(
            "The property '{name}' must be a BooleanManagedProperty such as {{\"Value\":true}}."
        ))),
    }
}

fn unchanged(
    value: &Value,
    reported: &Value,
    name: &str,
    entity: &Entity,
) -> Result<(), SchemaError> {
    if value == reported {
        Ok(())
    } else {
        Err(SchemaError::CannotChange {
            property: name.to_string(),
            owner: entity.logical_name.clone(),
            reason: String::new(),
        })
    }
}
