//! Alternate keys as `EntityKeyMetadata`: the one place the metadata API learns a table's keys.
//!
//! [`entity_keys`] is the single source the `Keys` path and `$expand=Keys` read: the keys an
//! administrator defined with `POST EntityDefinitions(...)/Keys`, kept in the store and handed
//! to the catalog by the edge before each metadata request.

use serde_json::{json, Map, Value};

use super::definitions::label;
use super::filter::Shape;
use super::metadata_id;
use crate::metadata::{Catalog, Entity};

/// One alternate key of a table.
pub use crate::metadata::AlternateKey as EntityKey;

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
pub fn entity_keys(catalog: &Catalog, entity: &Entity) -> Vec<EntityKey> {
    catalog.alternate_keys(&entity.logical_name)
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
            "KeyAttributes" => json!(key.attributes),
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
