//! `EntityDefinitions`: the table and column metadata as JSON, the way Dataverse's metadata
//! entity types (`EntityMetadata`, `StringAttributeMetadata`, ...) serialize.
//!
//! Supported requests (paths relative to the service root):
//!
//! ```text
//! EntityDefinitions[?$select=...&$filter=...&$expand=Attributes($select=...;$filter=...),Keys,...]
//! EntityDefinitions(LogicalName='x')[?$select=...&$expand=...]
//! EntityDefinitions(LogicalName='x')/Attributes[/Microsoft.Dynamics.CRM.<Kind>AttributeMetadata]
//!     [?$select=...&$filter=...&$expand=OptionSet($select=...),GlobalOptionSet]
//! EntityDefinitions(LogicalName='x')/Attributes(LogicalName='y')[/<cast>][?$select=...&$expand=...]
//! EntityDefinitions(LogicalName='x')/{Keys|ManyToOneRelationships|OneToManyRelationships|
//!     ManyToManyRelationships}[(key)][?$select=...&$filter=...]
//! ```
//!
//! Keys may also be `MetadataId`s (`EntityDefinitions(<guid>)`). [`parse_definitions_path`]
//! turns the path segments and query options into a [`DefinitionsRequest`];
//! [`DefinitionsRequest::respond`] builds the body. As in Dataverse, `$select` and `$filter` on
//! attributes accept the properties of the addressed type: those of `AttributeMetadata` without
//! a cast, plus the derived type's after one (`MaxLength` needs `StringAttributeMetadata`), and
//! `OptionSet` can only be expanded after a cast to an option-set type. `MetadataId`, the key,
//! is always returned. Every object is computed whole, filtered, then projected, so a `$filter`
//! sees every property whatever the `$select`.

mod attribute;
mod entity;
mod member;
mod options;
mod path;
#[cfg(test)]
mod tests;
mod update;

pub use attribute::{
    all_attribute_properties, attribute_definition, attributes_of_kind, typed_attributes,
    AttributeKind,
};
pub use entity::{entities_definition, entity_definition, entity_object, entity_shape};
pub use member::{Member, MemberQuery};
pub use path::parse_definitions_path;
pub(crate) use path::split_key;
pub use update::{attribute_update, entity_update};

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::filter::Filter;
use super::{attribute_metadata_id, entity_metadata_id, SchemaError};
use crate::metadata::{Attribute, Catalog, Entity};

/// The language of every label smsctx reports (English).
const LANGUAGE_CODE: i64 = 1033;

/// How a table or column is addressed: `(LogicalName='x')` or `(<MetadataId>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataKey {
    LogicalName(String),
    MetadataId(Uuid),
}

/// A parsed `EntityDefinitions` request, not yet resolved against the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefinitionsRequest {
    /// `EntityDefinitions`: every table (that the filter accepts).
    Entities { query: EntityQuery },
    /// `EntityDefinitions(LogicalName='x')`.
    Entity {
        key: MetadataKey,
        query: EntityQuery,
    },
    /// `EntityDefinitions(...)/Attributes[/cast]`.
    Attributes {
        entity: MetadataKey,
        cast: Option<AttributeKind>,
        query: AttributeQuery,
    },
    /// `EntityDefinitions(...)/Attributes(LogicalName='y')[/cast]`.
    Attribute {
        entity: MetadataKey,
        attribute: MetadataKey,
        cast: Option<AttributeKind>,
        query: AttributeQuery,
    },
    /// `EntityDefinitions(...)/Keys`, `.../ManyToOneRelationships`, ... and one of them by key.
    Members {
        entity: MetadataKey,
        member: Member,
        key: Option<MetadataKey>,
        query: MemberQuery,
    },
}

/// `$select`, `$filter` and `$expand` applied to table objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityQuery {
    pub select: Option<Vec<String>>,
    pub filter: Option<Filter>,
    /// `$expand=Attributes(...)`.
    pub attributes: Option<AttributeQuery>,
    /// `$expand=Keys,ManyToOneRelationships(...)`, in request order.
    pub members: Vec<(Member, MemberQuery)>,
}

/// `$select`, `$filter` and `$expand` applied to attribute objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeQuery {
    pub select: Option<Vec<String>>,
    pub filter: Option<Filter>,
    /// `$expand=OptionSet[($select=...)]`.
    pub option_set: Option<OptionSetQuery>,
    /// `$expand=GlobalOptionSet`: always `null`, every option set here is local.
    pub global_option_set: Option<OptionSetQuery>,
}

/// `$select` inside an `OptionSet` expansion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionSetQuery {
    pub select: Option<Vec<String>>,
}

impl DefinitionsRequest {
    /// Builds the response body. `root` is the service root with its trailing slash
    /// (`https://host/api/data/v9.2/`), used in `@odata.context`.
    pub fn respond(&self, catalog: &Catalog, root: &str) -> Result<Value, SchemaError> {
        match self {
            Self::Entities { query } => Ok(entities_definition(catalog, root, query)),
            Self::Entity { key, query } => {
                let entity = resolve_entity(catalog, key)?;
                Ok(entity_definition(catalog, entity, root, query))
            }
            Self::Attributes {
                entity,
                cast,
                query,
            } => {
                let entity = resolve_entity(catalog, entity)?;
                attributes_of_kind(catalog, &entity.logical_name, root, *cast, query)
            }
            Self::Attribute {
                entity,
                attribute,
                cast,
                query,
            } => {
                let entity = resolve_entity(catalog, entity)?;
                let attribute = resolve_attribute(entity, attribute)?;
                attribute_definition(
                    catalog,
                    &entity.logical_name,
                    &attribute.logical_name,
                    root,
                    *cast,
                    query,
                )
            }
            Self::Members {
                entity,
                member,
                key,
                query,
            } => {
                let entity = resolve_entity(catalog, entity)?;
                member.respond(catalog, entity, root, key.as_ref(), query)
            }
        }
    }
}

/// A collection of whole objects filtered, then projected.
pub fn collection(
    objects: impl IntoIterator<Item = Map<String, Value>>,
    filter: Option<&Filter>,
    select: Option<&[String]>,
    key: &str,
) -> Vec<Value> {
    objects
        .into_iter()
        .filter(|object| filter.is_none_or(|f| f.matches(&Value::Object(object.clone()))))
        .map(|object| Value::Object(project(object, select, key)))
        .collect()
}

/// Keeps the `@odata.type`, the selected properties in their order and the key, or everything
/// without a selection.
pub fn project(
    full: Map<String, Value>,
    select: Option<&[String]>,
    key: &str,
) -> Map<String, Value> {
    let Some(select) = select else {
        return full;
    };
    let mut out = Map::new();
    for name in ["@odata.type"]
        .into_iter()
        .chain(select.iter().map(String::as_str))
        .chain([key])
    {
        if let Some(value) = full.get(name) {
            out.entry(name.to_string()).or_insert_with(|| value.clone());
        }
    }
    out
}

pub(super) fn find_entity<'a>(
    catalog: &'a Catalog,
    logical_name: &str,
) -> Result<&'a Entity, SchemaError> {
    catalog
        .entity(logical_name)
        .map(|e| e.as_ref())
        .ok_or_else(|| SchemaError::UnknownEntity(logical_name.to_string()))
}

pub fn resolve_entity<'a>(
    catalog: &'a Catalog,
    key: &MetadataKey,
) -> Result<&'a Entity, SchemaError> {
    match key {
        MetadataKey::LogicalName(name) => find_entity(catalog, name),
        MetadataKey::MetadataId(id) => catalog
            .entities()
            .iter()
            .map(|e| e.as_ref())
            .find(|e| entity_metadata_id(e) == *id)
            .ok_or_else(|| SchemaError::UnknownEntity(id.to_string())),
    }
}

pub fn resolve_attribute<'a>(
    entity: &'a Entity,
    key: &MetadataKey,
) -> Result<&'a Attribute, SchemaError> {
    let found = match key {
        MetadataKey::LogicalName(name) => entity.attribute(name),
        MetadataKey::MetadataId(id) => entity
            .attributes
            .iter()
            .find(|a| attribute_metadata_id(entity, a) == *id),
    };
    found.ok_or_else(|| SchemaError::UnknownAttribute {
        entity: entity.logical_name.clone(),
        attribute: match key {
            MetadataKey::LogicalName(name) => name.clone(),
            MetadataKey::MetadataId(id) => id.to_string(),
        },
    })
}

pub(super) fn check_selected(
    select: Option<&[String]>,
    allowed: impl Fn(&str) -> bool,
    type_name: &str,
) -> Result<(), SchemaError> {
    for property in select.unwrap_or_default() {
        if !allowed(property) {
            return Err(SchemaError::UnknownProperty {
                property: property.clone(),
                type_name: type_name.to_string(),
            });
        }
    }
    Ok(())
}

/// `(a,b,Nav(c,d))` for a context URL: the selected properties, then each expansion with its
/// own selection; empty when nothing is selected or expanded.
pub(super) fn projection(select: Option<&[String]>, expansions: &[(&str, String)]) -> String {
    let mut items: Vec<String> = select.unwrap_or_default().to_vec();
    items.extend(
        expansions
            .iter()
            .map(|(name, inner)| format!("{name}({inner})")),
    );
    if items.is_empty() {
        String::new()
    } else {
        format!("({})", items.join(","))
    }
}

/// The names to write: the selection then the key, or every property in declared order.
pub(super) fn selected<'a>(select: Option<&'a [String]>, all: &[&'a str]) -> Vec<&'a str> {
    match select {
        Some(select) => select
            .iter()
            .map(String::as_str)
            .chain(["MetadataId"])
            .collect(),
        None => all.to_vec(),
    }
}

/// A `Label`: one English localized label, also the user's; no labels for empty text.
pub(super) fn label(text: &str) -> Value {
    if text.is_empty() {
        return json!({"LocalizedLabels": [], "UserLocalizedLabel": null});
    }
    let localized = json!({"Label": text, "LanguageCode": LANGUAGE_CODE});
    json!({"LocalizedLabels": [localized.clone()], "UserLocalizedLabel": localized})
}
