//! Alternate keys as `EntityKeyMetadata`: the one place the metadata API learns a table's keys.
//!
//! [`entity_keys`] is the single source the `Keys` path and `$expand=Keys` read; the catalog
//! defines no alternate key today, so it returns none. Stored keys (defined with
//! `POST EntityDefinitions(...)/Keys`) plug in here and appear everywhere at once.

use serde_json::{json, Map, Value};

use super::definitions::label;
use super::filter::Shape;
use super::metadata_id;
use crate::metadata::Entity;

/// One alternate key of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityKey {
    pub schema_name: String,
    pub logical_name: String,
    pub display_name: String,
    /// The logical names of the key's columns, in key order.
    pub key_attributes: Vec<String>,
}

/// The properties of `EntityKeyMetadata`, in the order they are written (the key last).
const KEY_PROPERTIES: &[&str] = &[
    "SchemaName",
    "LogicalName",
    "DisplayName",
    "EntityLogicalName",
    "KeyAttributes",
    "EntityKeyIndexStatus",
    "AsyncJob",
    "IsCustomizable",
    "IsManaged",
    "IsSecondaryKey",
    "IsSynchronous",
    "IsExportKey",
    "IntroducedVersion",
    "HasChanged",
    "MetadataId",
];

pub fn shape() -> Shape<'static> {
    Shape {
        type_name: "Microsoft.Dynamics.CRM.EntityKeyMetadata",
        properties: KEY_PROPERTIES,
        navigations: &[],
    }
}

/// The alternate keys of a table, in definition order.
pub fn entity_keys(entity: &Entity) -> Vec<EntityKey> {
    let _ = entity;
    Vec::new()
}

/// A key as `EntityKeyMetadata`, every property.
pub fn key_object(entity: &Entity, key: &EntityKey) -> Map<String, Value> {
    let mut out = Map::new();
    for name in KEY_PROPERTIES {
        let value = match *name {
            "SchemaName" => json!(key.schema_name),
            "LogicalName" => json!(key.logical_name),
            "DisplayName" => label(&key.display_name),
            "EntityLogicalName" => json!(entity.logical_name),
            "KeyAttributes" => json!(key.key_attributes),
            "EntityKeyIndexStatus" => json!("Active"),
            "IsCustomizable" => json!({
                "Value": true,
                "CanBeChanged": true,
                "ManagedPropertyLogicalName": "iscustomizable",
            }),
            "IsManaged" | "IsSecondaryKey" | "IsExportKey" => json!(false),
            "IsSynchronous" => json!(true),
            "MetadataId" => json!(metadata_id(&[
                "key",
                &entity.logical_name,
                &key.logical_name
            ])),
            _ => Value::Null,
        };
        out.insert(name.to_string(), value);
    }
    out
}
