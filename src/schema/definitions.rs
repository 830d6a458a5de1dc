//! `EntityDefinitions`: the table and column metadata as JSON, the way Dataverse's metadata
//! entity types (`EntityMetadata`, `StringAttributeMetadata`, ...) serialize.
//!
//! Supported requests (paths relative to the service root):
//!
//! ```text
//! EntityDefinitions[?$select=...&$expand=Attributes($select=...)]
//! EntityDefinitions(LogicalName='x')[?$select=...&$expand=Attributes($select=...)]
//! EntityDefinitions(LogicalName='x')/Attributes[/Microsoft.Dynamics.CRM.<Kind>AttributeMetadata]
//!     [?$select=...&$expand=OptionSet($select=...),GlobalOptionSet]
//! EntityDefinitions(LogicalName='x')/Attributes(LogicalName='y')[/<cast>][?$select=...&$expand=...]
//! ```
//!
//! Keys may also be `MetadataId`s (`EntityDefinitions(<guid>)`). [`parse_definitions_path`]
//! turns the path segments and query options into a [`DefinitionsRequest`];
//! [`DefinitionsRequest::respond`] (or the functions it calls) builds the body. As in Dataverse,
//! `$select` on attributes accepts the properties of the addressed type: those of
//! `AttributeMetadata` without a cast, plus the derived type's after one (`MaxLength` needs
//! `StringAttributeMetadata`), and `OptionSet` can only be expanded after a cast to an
//! option-set type. `MetadataId`, the key, is always returned.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{attribute_metadata_id, entity_metadata_id, metadata_id, NAMESPACE};
use crate::metadata::{Attribute, AttributeType, Catalog, Entity, OptionMeta, RequiredLevel};

/// The language of every label smsctx reports (English).
const LANGUAGE_CODE: i64 = 1033;

/// What an `EntityDefinitions` request can get wrong. At the edge: `UnknownEntity` and
/// `UnknownAttribute` are 400 `0x80041102` / `0x80041103` (the metadata cache's own errors;
/// statuses unverified for the Web API), `UnknownProperty` is 400 `0x0`, `UnknownCast` and
/// `UnknownSegment` are 404 `0x8006088a`, `BadQuery` is 400 `0x80060888`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("The entity with a name = '{0}' with namemapping = 'Logical' was not found in the MetadataCache.")]
    UnknownEntity(String),
    #[error("'{entity}' entity doesn't contain attribute with Name = '{attribute}' and NameMapping = 'Logical'.")]
    UnknownAttribute { entity: String, attribute: String },
    #[error("Could not find a property named '{property}' on type '{type_name}'.")]
    UnknownProperty { property: String, type_name: String },
    #[error("Resource not found for the segment '{0}'.")]
    UnknownCast(String),
    #[error("Resource not found for the segment '{0}'.")]
    UnknownSegment(String),
    #[error("{0}")]
    BadQuery(String),
}

/// How a table or column is addressed: `(LogicalName='x')` or `(<MetadataId>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataKey {
    LogicalName(String),
    MetadataId(Uuid),
}

/// A parsed `EntityDefinitions` request, not yet resolved against the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefinitionsRequest {
    /// `EntityDefinitions`: every table.
    Entities {
        select: Option<Vec<String>>,
        attributes: Option<AttributeQuery>,
    },
    /// `EntityDefinitions(LogicalName='x')`.
    Entity {
        key: MetadataKey,
        select: Option<Vec<String>>,
        attributes: Option<AttributeQuery>,
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
}

/// `$select` and `$expand` applied to attribute objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeQuery {
    pub select: Option<Vec<String>>,
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

/// The attribute metadata types: one per column type, `Enum` for their option-set base, and
/// the Dataverse types no column here has (a cast to those is valid and matches nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeKind {
    String,
    Memo,
    Integer,
    BigInt,
    Boolean,
    DateTime,
    Picklist,
    State,
    Status,
    /// Lookup and owner columns.
    Lookup,
    EntityName,
    UniqueIdentifier,
    /// `EnumAttributeMetadata`, the base of picklist, state, status and entity-name columns.
    Enum,
    Other(&'static str),
}

/// Attribute metadata types Dataverse has and no column of the catalog uses.
const OTHER_KINDS: &[&str] = &[
    "Decimal",
    "Double",
    "Money",
    "MultiSelectPicklist",
    "Image",
    "File",
    "ManagedProperty",
];

/// The properties of `AttributeMetadata`, in the order they are written (the key last).
const ATTRIBUTE_PROPERTIES: &[&str] = &[
    "LogicalName",
    "SchemaName",
    "EntityLogicalName",
    "AttributeType",
    "AttributeTypeName",
    "AttributeOf",
    "DisplayName",
    "Description",
    "RequiredLevel",
    "IsPrimaryId",
    "IsPrimaryName",
    "IsValidForCreate",
    "IsValidForUpdate",
    "IsValidForRead",
    "MetadataId",
];

/// The properties of `EntityMetadata`, in the order they are written (the key last).
const ENTITY_PROPERTIES: &[&str] = &[
    "LogicalName",
    "SchemaName",
    "EntitySetName",
    "PrimaryIdAttribute",
    "PrimaryNameAttribute",
    "OwnershipType",
    "DisplayName",
    "DisplayCollectionName",
    "Description",
    "MetadataId",
];

/// Navigation properties of `EntityMetadata` that smsctx does not serve.
const UNSERVED_ENTITY_NAVIGATIONS: &[&str] = &[
    "ManyToOneRelationships",
    "OneToManyRelationships",
    "ManyToManyRelationships",
    "Keys",
    "Privileges",
];

/// The properties of `OptionSetMetadata`, in the order they are written (the key last).
const OPTION_SET_PROPERTIES: &[&str] =
    &["Name", "IsGlobal", "OptionSetType", "Options", "MetadataId"];

const OPTION_SET_NAVIGATIONS: &[&str] = &["OptionSet", "GlobalOptionSet"];

impl AttributeKind {
    /// The metadata type of a column.
    pub fn of(attribute_type: AttributeType) -> AttributeKind {
        match attribute_type {
            AttributeType::Uniqueidentifier => Self::UniqueIdentifier,
            AttributeType::String => Self::String,
            AttributeType::Memo => Self::Memo,
            AttributeType::Integer => Self::Integer,
            AttributeType::BigInt => Self::BigInt,
            AttributeType::Boolean => Self::Boolean,
            AttributeType::DateTime => Self::DateTime,
            AttributeType::Picklist => Self::Picklist,
            AttributeType::State => Self::State,
            AttributeType::Status => Self::Status,
            AttributeType::Lookup | AttributeType::Owner => Self::Lookup,
            AttributeType::EntityName => Self::EntityName,
        }
    }

    /// The name before `AttributeMetadata` (`Picklist`).
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::Memo => "Memo",
            Self::Integer => "Integer",
            Self::BigInt => "BigInt",
            Self::Boolean => "Boolean",
            Self::DateTime => "DateTime",
            Self::Picklist => "Picklist",
            Self::State => "State",
            Self::Status => "Status",
            Self::Lookup => "Lookup",
            Self::EntityName => "EntityName",
            Self::UniqueIdentifier => "UniqueIdentifier",
            Self::Enum => "Enum",
            Self::Other(name) => name,
        }
    }

    /// The qualified type name (`Microsoft.Dynamics.CRM.PicklistAttributeMetadata`).
    pub fn type_name(self) -> String {
        format!("{NAMESPACE}.{}AttributeMetadata", self.name())
    }

    /// Reads a cast segment: the qualified type name (the `mscrm.` alias is accepted too).
    pub fn parse_cast(segment: &str) -> Option<AttributeKind> {
        let name = segment
            .strip_prefix("Microsoft.Dynamics.CRM.")
            .or_else(|| segment.strip_prefix("mscrm."))?
            .strip_suffix("AttributeMetadata")?;
        let known = [
            Self::String,
            Self::Memo,
            Self::Integer,
            Self::BigInt,
            Self::Boolean,
            Self::DateTime,
            Self::Picklist,
            Self::State,
            Self::Status,
            Self::Lookup,
            Self::EntityName,
            Self::UniqueIdentifier,
            Self::Enum,
        ];
        known.into_iter().find(|k| k.name() == name).or_else(|| {
            OTHER_KINDS
                .iter()
                .find(|o| **o == name)
                .map(|o| Self::Other(o))
        })
    }

    /// Whether a column of this type is an instance of this metadata type.
    pub fn includes(self, attribute_type: AttributeType) -> bool {
        let own = Self::of(attribute_type);
        own == self || (self == Self::Enum && own.is_enum())
    }

    fn is_enum(self) -> bool {
        matches!(
            self,
            Self::Picklist | Self::State | Self::Status | Self::EntityName | Self::Enum
        )
    }

    /// The properties this type declares beyond `AttributeMetadata`'s.
    fn properties(self) -> &'static [&'static str] {
        match self {
            Self::String => &["MaxLength", "Format", "FormatName"],
            Self::Memo => &["MaxLength", "Format"],
            Self::Integer => &["MinValue", "MaxValue", "Format"],
            Self::BigInt => &["MinValue", "MaxValue"],
            Self::DateTime => &["Format", "DateTimeBehavior"],
            Self::Boolean => &["DefaultValue"],
            Self::Lookup => &["Targets"],
            k if k.is_enum() => &["DefaultFormValue"],
            _ => &[],
        }
    }

    fn navigations(self) -> &'static [&'static str] {
        if self.is_enum() {
            OPTION_SET_NAVIGATIONS
        } else {
            &[]
        }
    }
}

impl DefinitionsRequest {
    /// Builds the response body. `root` is the service root with its trailing slash
    /// (`https://host/api/data/v9.2/`), used in `@odata.context`.
    pub fn respond(&self, catalog: &Catalog, root: &str) -> Result<Value, SchemaError> {
        match self {
            Self::Entities { select, attributes } => {
                entities_definition(catalog, root, select.as_deref(), attributes.clone())
            }
            Self::Entity {
                key,
                select,
                attributes,
            } => {
                let entity = resolve_entity(catalog, key)?;
                entity_definition(
                    catalog,
                    &entity.logical_name,
                    root,
                    select.as_deref(),
                    attributes.clone(),
                )
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
        }
    }
}

/// `GET EntityDefinitions(LogicalName='entity')`.
pub fn entity_definition(
    catalog: &Catalog,
    entity: &str,
    root: &str,
    select: Option<&[String]>,
    expand_attributes: Option<AttributeQuery>,
) -> Result<Value, SchemaError> {
    let entity = find_entity(catalog, entity)?;
    check_entity_query(select, expand_attributes.as_ref())?;
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        json!(format!(
            "{root}$metadata#EntityDefinitions{}/$entity",
            entity_projection(select, expand_attributes.as_ref())
        )),
    );
    write_entity(&mut out, entity, select, expand_attributes.as_ref());
    Ok(Value::Object(out))
}

/// `GET EntityDefinitions`: every table of the catalog.
pub fn entities_definition(
    catalog: &Catalog,
    root: &str,
    select: Option<&[String]>,
    expand_attributes: Option<AttributeQuery>,
) -> Result<Value, SchemaError> {
    check_entity_query(select, expand_attributes.as_ref())?;
    let value: Vec<Value> = catalog
        .entities()
        .iter()
        .map(|entity| {
            let mut out = Map::new();
            write_entity(&mut out, entity, select, expand_attributes.as_ref());
            Value::Object(out)
        })
        .collect();
    Ok(json!({
        "@odata.context": format!(
            "{root}$metadata#EntityDefinitions{}",
            entity_projection(select, expand_attributes.as_ref())
        ),
        "value": value,
    }))
}

/// `GET EntityDefinitions(LogicalName='entity')/Attributes(LogicalName='attribute')[/cast]`.
pub fn attribute_definition(
    catalog: &Catalog,
    entity: &str,
    attribute: &str,
    root: &str,
    cast: Option<AttributeKind>,
    query: &AttributeQuery,
) -> Result<Value, SchemaError> {
    let entity = find_entity(catalog, entity)?;
    let found = entity
        .attribute(attribute)
        .ok_or_else(|| SchemaError::UnknownAttribute {
            entity: entity.logical_name.clone(),
            attribute: attribute.to_string(),
        })?;
    if let Some(cast) = cast {
        if !cast.includes(found.attribute_type) {
            return Err(SchemaError::UnknownCast(cast.type_name()));
        }
    }
    check_attribute_query(cast, query)?;
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$entity",
            attributes_context(root, entity, cast, query)
        )),
    );
    write_attribute(&mut out, entity, found, cast, query);
    Ok(Value::Object(out))
}

/// `GET EntityDefinitions(LogicalName='entity')/Attributes[/cast]`: the columns of one kind
/// (every column when `kind` is `None`), in table order.
pub fn attributes_of_kind(
    catalog: &Catalog,
    entity: &str,
    root: &str,
    kind: Option<AttributeKind>,
    query: &AttributeQuery,
) -> Result<Value, SchemaError> {
    let entity = find_entity(catalog, entity)?;
    check_attribute_query(kind, query)?;
    let value: Vec<Value> = entity
        .attributes
        .iter()
        .filter(|a| kind.is_none_or(|k| k.includes(a.attribute_type)))
        .map(|attribute| {
            let mut out = Map::new();
            write_attribute(&mut out, entity, attribute, kind, query);
            Value::Object(out)
        })
        .collect();
    Ok(json!({
        "@odata.context": attributes_context(root, entity, kind, query),
        "value": value,
    }))
}

fn find_entity<'a>(catalog: &'a Catalog, logical_name: &str) -> Result<&'a Entity, SchemaError> {
    catalog
        .entity(logical_name)
        .map(|e| e.as_ref())
        .ok_or_else(|| SchemaError::UnknownEntity(logical_name.to_string()))
}

fn resolve_entity<'a>(catalog: &'a Catalog, key: &MetadataKey) -> Result<&'a Entity, SchemaError> {
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

fn resolve_attribute<'a>(
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

fn check_selected(
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

fn check_entity_query(
    select: Option<&[String]>,
    attributes: Option<&AttributeQuery>,
) -> Result<(), SchemaError> {
    check_selected(
        select,
        |p| ENTITY_PROPERTIES.contains(&p),
        &format!("{NAMESPACE}.EntityMetadata"),
    )?;
    match attributes {
        Some(query) => check_attribute_query(None, query),
        None => Ok(()),
    }
}

fn check_attribute_query(
    cast: Option<AttributeKind>,
    query: &AttributeQuery,
) -> Result<(), SchemaError> {
    let type_name = attribute_type_name(cast);
    let declared = |p: &str| {
        ATTRIBUTE_PROPERTIES.contains(&p) || cast.is_some_and(|k| k.properties().contains(&p))
    };
    check_selected(query.select.as_deref(), declared, &type_name)?;
    for (navigation, expanded) in [
        ("OptionSet", &query.option_set),
        ("GlobalOptionSet", &query.global_option_set),
    ] {
        let Some(expanded) = expanded else { continue };
        if !cast.is_some_and(|k| k.navigations().contains(&navigation)) {
            return Err(SchemaError::UnknownProperty {
                property: navigation.to_string(),
                type_name,
            });
        }
        check_selected(
            expanded.select.as_deref(),
            |p| OPTION_SET_PROPERTIES.contains(&p),
            &format!("{NAMESPACE}.OptionSetMetadata"),
        )?;
    }
    Ok(())
}

fn attribute_type_name(cast: Option<AttributeKind>) -> String {
    cast.map_or_else(
        || format!("{NAMESPACE}.AttributeMetadata"),
        AttributeKind::type_name,
    )
}

/// `(a,b,Nav(c,d))` for a context URL: the selected properties, then each expansion with its
/// own selection; empty when nothing is selected or expanded.
fn projection(select: Option<&[String]>, expansions: &[(&str, String)]) -> String {
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

/// The projection of attribute objects, without its outer parentheses when nested.
fn attribute_projection(query: &AttributeQuery) -> String {
    let mut expansions = Vec::new();
    for (name, expanded) in [
        ("OptionSet", &query.option_set),
        ("GlobalOptionSet", &query.global_option_set),
    ] {
        if let Some(expanded) = expanded {
            expansions.push((
                name,
                expanded.select.as_deref().unwrap_or_default().join(","),
            ));
        }
    }
    projection(query.select.as_deref(), &expansions)
}

fn entity_projection(select: Option<&[String]>, attributes: Option<&AttributeQuery>) -> String {
    let expansions: Vec<(&str, String)> = attributes
        .map(|query| {
            let inner = attribute_projection(query);
            let inner = inner
                .strip_prefix('(')
                .and_then(|i| i.strip_suffix(')'))
                .unwrap_or(&inner)
                .to_string();
            vec![("Attributes", inner)]
        })
        .unwrap_or_default();
    projection(select, &expansions)
}

fn attributes_context(
    root: &str,
    entity: &Entity,
    cast: Option<AttributeKind>,
    query: &AttributeQuery,
) -> String {
    let cast = cast
        .map(|k| format!("/{}", k.type_name()))
        .unwrap_or_default();
    format!(
        "{root}$metadata#EntityDefinitions('{}')/Attributes{cast}{}",
        entity.logical_name,
        attribute_projection(query)
    )
}

/// The names to write: the selection then the key, or every property in declared order.
fn selected<'a>(select: Option<&'a [String]>, all: &[&'a str]) -> Vec<&'a str> {
    match select {
        Some(select) => select
            .iter()
            .map(String::as_str)
            .chain(["MetadataId"])
            .collect(),
        None => all.to_vec(),
    }
}

fn write_entity(
    out: &mut Map<String, Value>,
    entity: &Entity,
    select: Option<&[String]>,
    attributes: Option<&AttributeQuery>,
) {
    for name in selected(select, ENTITY_PROPERTIES) {
        if !out.contains_key(name) {
            out.insert(name.to_string(), entity_value(entity, name));
        }
    }
    if let Some(query) = attributes {
        let values = entity
            .attributes
            .iter()
            .map(|attribute| {
                let mut object = Map::new();
                write_attribute(&mut object, entity, attribute, None, query);
                Value::Object(object)
            })
            .collect();
        out.insert("Attributes".into(), Value::Array(values));
    }
}

fn entity_value(entity: &Entity, property: &str) -> Value {
    match property {
        "LogicalName" => json!(entity.logical_name),
        "SchemaName" => json!(entity.schema_name),
        "EntitySetName" => json!(entity.entity_set_name),
        "PrimaryIdAttribute" => json!(entity.primary_id),
        "PrimaryNameAttribute" => json!(entity.primary_name),
        "OwnershipType" => json!(entity.ownership.name()),
        "DisplayName" => label(&entity.display_name),
        "DisplayCollectionName" => label(&entity.display_collection_name),
        "Description" => label(&entity.description),
        "MetadataId" => json!(entity_metadata_id(entity)),
        _ => Value::Null,
    }
}

fn write_attribute(
    out: &mut Map<String, Value>,
    entity: &Entity,
    attribute: &Attribute,
    cast: Option<AttributeKind>,
    query: &AttributeQuery,
) {
    let kind = AttributeKind::of(attribute.attribute_type);
    // The derived type is named unless the context already says it (a cast to that type).
    if cast != Some(kind) {
        out.insert(
            "@odata.type".into(),
            json!(format!("#{}", kind.type_name())),
        );
    }
    let all: Vec<&str> = ATTRIBUTE_PROPERTIES
        .iter()
        .filter(|p| **p != "MetadataId")
        .chain(kind.properties())
        .chain(["MetadataId"].iter())
        .copied()
        .collect();
    for name in selected(query.select.as_deref(), &all) {
        if !out.contains_key(name) {
            out.insert(name.to_string(), attribute_value(entity, attribute, name));
        }
    }
    if let Some(expanded) = &query.option_set {
        out.insert("OptionSet".into(), option_set(entity, attribute, expanded));
    }
    if query.global_option_set.is_some() {
        out.insert("GlobalOptionSet".into(), Value::Null);
    }
}

fn attribute_value(entity: &Entity, attribute: &Attribute, property: &str) -> Value {
    let kind = AttributeKind::of(attribute.attribute_type);
    let format = |default: &str| json!(attribute.format.as_deref().unwrap_or(default));
    match property {
        "LogicalName" => json!(attribute.logical_name),
        "SchemaName" => json!(attribute.schema_name),
        "EntityLogicalName" => json!(entity.logical_name),
        "AttributeType" => json!(attribute.attribute_type.name()),
        "AttributeTypeName" => {
            json!({"Value": format!("{}Type", attribute.attribute_type.name())})
        }
        "AttributeOf" => json!(attribute.attribute_of),
        "DisplayName" => label(&attribute.display_name),
        "Description" => label(&attribute.description),
        "RequiredLevel" => json!({
            "Value": attribute.required_level.name(),
            "CanBeChanged": attribute.required_level != RequiredLevel::SystemRequired,
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        }),
        "IsPrimaryId" => json!(attribute.logical_name == entity.primary_id),
        "IsPrimaryName" => json!(attribute.logical_name == entity.primary_name),
        "IsValidForCreate" => json!(attribute.valid_for_create),
        "IsValidForUpdate" => json!(attribute.valid_for_update),
        "IsValidForRead" => json!(attribute.valid_for_read),
        "MetadataId" => json!(attribute_metadata_id(entity, attribute)),
        "MaxLength" => json!(attribute.max_length),
        "Format" => match kind {
            AttributeKind::String => format("Text"),
            AttributeKind::Memo => format("TextArea"),
            AttributeKind::DateTime => format("DateAndTime"),
            _ => format("None"),
        },
        "FormatName" => json!({"Value": attribute.format.as_deref().unwrap_or("Text")}),
        "MinValue" => json!(attribute.min_value),
        "MaxValue" => json!(attribute.max_value),
        "DateTimeBehavior" => {
            json!({"Value": attribute.datetime_behavior.as_deref().unwrap_or("UserLocal")})
        }
        "Targets" => json!(attribute.targets),
        "DefaultFormValue" => json!(attribute
            .default_value
            .as_deref()
            .and_then(|v| v.parse::<i32>().ok())),
        "DefaultValue" => json!(attribute
            .default_value
            .as_deref()
            .map(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("yes"))),
        _ => Value::Null,
    }
}

/// The `OptionSet` of an option-set column (`null` for an entity-name column, which has none).
fn option_set(entity: &Entity, attribute: &Attribute, query: &OptionSetQuery) -> Value {
    if !attribute.attribute_type.is_option_set() {
        return Value::Null;
    }
    let mut out = Map::new();
    for name in selected(query.select.as_deref(), OPTION_SET_PROPERTIES) {
        if out.contains_key(name) {
            continue;
        }
        let value = match name {
            "Name" => json!(format!(
                "{}_{}",
                entity.logical_name, attribute.logical_name
            )),
            "IsGlobal" => json!(false),
            "OptionSetType" => json!(attribute.attribute_type.name()),
            "Options" => Value::Array(
                attribute
                    .options
                    .iter()
                    .map(|o| option(attribute.attribute_type, o))
                    .collect(),
            ),
            "MetadataId" => json!(metadata_id(&[
                "optionset",
                &entity.logical_name,
                &attribute.logical_name
            ])),
            _ => Value::Null,
        };
        out.insert(name.to_string(), value);
    }
    Value::Object(out)
}

/// One option: status options carry their `State`, state options their `DefaultStatus` and
/// `InvariantName`, each under its derived `@odata.type`.
fn option(attribute_type: AttributeType, option: &OptionMeta) -> Value {
    let mut out = Map::new();
    let derived = match attribute_type {
        AttributeType::State => Some("StateOptionMetadata"),
        AttributeType::Status => Some("StatusOptionMetadata"),
        _ => None,
    };
    if let Some(derived) = derived {
        out.insert(
            "@odata.type".into(),
            json!(format!("#{NAMESPACE}.{derived}")),
        );
    }
    out.insert("Value".into(), json!(option.value));
    out.insert("Label".into(), label(&option.label));
    out.insert("Description".into(), label(""));
    out.insert("Color".into(), Value::Null);
    match attribute_type {
        AttributeType::State => {
            out.insert("DefaultStatus".into(), json!(option.default_status));
            out.insert("InvariantName".into(), json!(option.invariant_name));
        }
        AttributeType::Status => {
            out.insert("State".into(), json!(option.state));
        }
        _ => {}
    }
    Value::Object(out)
}

/// A `Label`: one English localized label, also the user's; no labels for empty text.
fn label(text: &str) -> Value {
    if text.is_empty() {
        return json!({"LocalizedLabels": [], "UserLocalizedLabel": null});
    }
    let localized = json!({"Label": text, "LanguageCode": LANGUAGE_CODE});
    json!({"LocalizedLabels": [localized.clone()], "UserLocalizedLabel": localized})
}

/// Parses the path below the service root (`EntityDefinitions(...)`, `Attributes(...)`, a cast)
/// and the query options into a request. Only `$select`, `$expand` and parameter aliases
/// (`@p`) are accepted; other system query options are refused.
pub fn parse_definitions_path(
    segments: &[String],
    query: &[(String, String)],
) -> Result<DefinitionsRequest, SchemaError> {
    let Some((first, rest)) = segments.split_first() else {
        return Err(SchemaError::UnknownSegment(String::new()));
    };
    let (name, key) = split_key(first)?;
    if name != "EntityDefinitions" {
        return Err(SchemaError::UnknownSegment(name.to_string()));
    }
    let options = QueryOptions::parse(query)?;
    let key = key.map(|k| parse_key(name, k)).transpose()?;
    let Some(key) = key else {
        return match rest.first() {
            None => Ok(DefinitionsRequest::Entities {
                attributes: options.entity_expand()?,
                select: options.select,
            }),
            Some(next) => Err(SchemaError::UnknownSegment(next.clone())),
        };
    };
    let Some((attributes, tail)) = rest.split_first() else {
        return Ok(DefinitionsRequest::Entity {
            key,
            attributes: options.entity_expand()?,
            select: options.select,
        });
    };
    let (segment, attribute_key) = split_key(attributes)?;
    if segment != "Attributes" {
        return Err(SchemaError::UnknownSegment(segment.to_string()));
    }
    let cast = match tail {
        [] => None,
        [cast] => Some(
            AttributeKind::parse_cast(cast)
                .ok_or_else(|| SchemaError::UnknownCast(cast.clone()))?,
        ),
        [_, extra, ..] => return Err(SchemaError::UnknownSegment(extra.clone())),
    };
    let query = options.attribute_query(cast)?;
    Ok(match attribute_key {
        None => DefinitionsRequest::Attributes {
            entity: key,
            cast,
            query,
        },
        Some(attribute) => DefinitionsRequest::Attribute {
            entity: key,
            attribute: parse_key(segment, attribute)?,
            cast,
            query,
        },
    })
}

/// `Name(key)` into its name and key text; `Name` alone has no key.
fn split_key(segment: &str) -> Result<(&str, Option<&str>), SchemaError> {
    match segment.split_once('(') {
        None => Ok((segment, None)),
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(key) => Ok((name, Some(key))),
            None => Err(SchemaError::UnknownSegment(segment.to_string())),
        },
    }
}

/// `LogicalName='x'` (quotes doubled inside) or a `MetadataId` Guid.
fn parse_key(segment: &str, key: &str) -> Result<MetadataKey, SchemaError> {
    let bad = || {
        SchemaError::BadQuery(format!(
            "The key '{key}' of segment '{segment}' is not valid: use LogicalName='name' or a MetadataId."
        ))
    };
    if let Some(value) = key.trim().strip_prefix("LogicalName=") {
        let inner = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .filter(|v| !v.is_empty())
            .ok_or_else(bad)?;
        if inner.replace("''", "").contains('\'') {
            return Err(bad());
        }
        return Ok(MetadataKey::LogicalName(inner.replace("''", "'")));
    }
    Uuid::parse_str(key.trim())
        .map(MetadataKey::MetadataId)
        .map_err(|_| bad())
}

/// One `$expand` item: `Name` or `Name($select=...;$expand=...)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Expansion {
    name: String,
    select: Option<Vec<String>>,
    expand: Vec<Expansion>,
}

#[derive(Debug, Default)]
struct QueryOptions {
    select: Option<Vec<String>>,
    expand: Vec<Expansion>,
}

impl QueryOptions {
    fn parse(query: &[(String, String)]) -> Result<QueryOptions, SchemaError> {
        let mut options = QueryOptions::default();
        for (name, value) in query {
            match name.as_str() {
                "$select" => options.select = Some(parse_select(value)?),
                "$expand" => options.expand = parse_expand(value)?,
                n if n.starts_with('$') => {
                    return Err(SchemaError::BadQuery(format!(
                        "The query option '{n}' is not supported on this request."
                    )))
                }
                _ => {}
            }
        }
        Ok(options)
    }

    /// The `$expand` of a table: only `Attributes`, with its own `$select` and `$expand`.
    fn entity_expand(&self) -> Result<Option<AttributeQuery>, SchemaError> {
        let mut attributes = None;
        for item in &self.expand {
            if item.name == "Attributes" {
                attributes = Some(attribute_query(item.select.clone(), &item.expand, None)?);
            } else if UNSERVED_ENTITY_NAVIGATIONS.contains(&item.name.as_str()) {
                return Err(SchemaError::BadQuery(format!(
                    "Expanding '{}' is not supported by this server.",
                    item.name
                )));
            } else {
                return Err(SchemaError::UnknownProperty {
                    property: item.name.clone(),
                    type_name: format!("{NAMESPACE}.EntityMetadata"),
                });
            }
        }
        Ok(attributes)
    }

    fn attribute_query(&self, cast: Option<AttributeKind>) -> Result<AttributeQuery, SchemaError> {
        attribute_query(self.select.clone(), &self.expand, cast)
    }
}

/// The options of attribute objects: `OptionSet` and `GlobalOptionSet` may be expanded (with
/// a `$select`), and only after a cast to an option-set type.
fn attribute_query(
    select: Option<Vec<String>>,
    expand: &[Expansion],
    cast: Option<AttributeKind>,
) -> Result<AttributeQuery, SchemaError> {
    let mut query = AttributeQuery {
        select,
        ..AttributeQuery::default()
    };
    for item in expand {
        let slot = match item.name.as_str() {
            "OptionSet" => &mut query.option_set,
            "GlobalOptionSet" => &mut query.global_option_set,
            _ => {
                return Err(SchemaError::UnknownProperty {
                    property: item.name.clone(),
                    type_name: attribute_type_name(cast),
                })
            }
        };
        if let Some(nested) = item.expand.first() {
            return Err(SchemaError::UnknownProperty {
                property: nested.name.clone(),
                type_name: format!("{NAMESPACE}.OptionSetMetadata"),
            });
        }
        *slot = Some(OptionSetQuery {
            select: item.select.clone(),
        });
    }
    check_attribute_query(cast, &query)?;
    Ok(query)
}

fn parse_select(text: &str) -> Result<Vec<String>, SchemaError> {
    let mut names: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(SchemaError::BadQuery(format!(
                "The $select option '{text}' has an empty item."
            )));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// `a,b($select=x;$expand=c($select=y))`: items separated by top-level commas, each with
/// `;`-separated options in parentheses.
fn parse_expand(text: &str) -> Result<Vec<Expansion>, SchemaError> {
    let bad = |why: &str| SchemaError::BadQuery(format!("The $expand option '{text}' {why}."));
    let mut items = Vec::new();
    for item in split_top_level(text, ',').ok_or_else(|| bad("has unbalanced parentheses"))? {
        let item = item.trim();
        let (name, options) = match item.split_once('(') {
            None => (item, None),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix(')')
                    .ok_or_else(|| bad("has text after a closing parenthesis"))?;
                (name.trim(), Some(inner))
            }
        };
        if name.is_empty() {
            return Err(bad("has an empty item"));
        }
        let mut expansion = Expansion {
            name: name.to_string(),
            ..Expansion::default()
        };
        let options = options
            .map(|o| split_top_level(o, ';'))
            .unwrap_or(Some(Vec::new()));
        for option in options.ok_or_else(|| bad("has unbalanced parentheses"))? {
            let option = option.trim();
            if option.is_empty() {
                continue;
            }
            match option.split_once('=') {
                Some(("$select", value)) => expansion.select = Some(parse_select(value)?),
                Some(("$expand", value)) => expansion.expand = parse_expand(value)?,
                _ => {
                    return Err(bad(&format!(
                        "has the option '{option}' inside '{name}', where only $select and $expand are supported"
                    )))
                }
            }
        }
        items.push(expansion);
    }
    Ok(items)
}

/// Splits at `separator` outside parentheses and quotes; `None` when parentheses don't balance.
fn split_top_level(text: &str, separator: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.checked_sub(1)?,
            c if c == separator && depth == 0 && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth != 0 || quoted {
        return None;
    }
    parts.push(&text[start..]);
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "https://org.example/api/data/v9.2/";

    fn catalog() -> Catalog {
        Catalog::builtin().expect("the built-in pages import")
    }

    /// Parses and answers one request, the way the edge will.
    fn get(path: &str, query: &[(&str, &str)]) -> Result<Value, SchemaError> {
        let segments: Vec<String> = path.split('/').map(str::to_string).collect();
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_definitions_path(&segments, &query)?.respond(&catalog(), ROOT)
    }

    fn ok(path: &str, query: &[(&str, &str)]) -> Value {
        get(path, query).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn attribute_id(attribute: &str) -> String {
        let catalog = catalog();
        let ctx = catalog.entity(SEED).unwrap();
        attribute_metadata_id(ctx, ctx.attribute(attribute).unwrap()).to_string()
    }

    const SEED: &str = "msdyn_smsengagementctx";
    const SEED_PATH: &str = "EntityDefinitions(LogicalName='msdyn_smsengagementctx')";

    fn english(text: &str) -> Value {
        json!({
            "LocalizedLabels": [{"Label": text, "LanguageCode": 1033}],
            "UserLocalizedLabel": {"Label": text, "LanguageCode": 1033},
        })
    }

    #[test]
    fn the_contract_example_selects_and_expands_attributes() {
        let body = ok(
            SEED_PATH,
            &[
                (
                    "$select",
                    "LogicalName,EntitySetName,PrimaryIdAttribute,OwnershipType",
                ),
                (
                    "$expand",
                    "Attributes($select=LogicalName,AttributeType,RequiredLevel)",
                ),
            ],
        );
        assert_eq!(
            body["@odata.context"],
            format!("{ROOT}$metadata#EntityDefinitions(LogicalName,EntitySetName,PrimaryIdAttribute,OwnershipType,Attributes(LogicalName,AttributeType,RequiredLevel))/$entity")
        );
        assert_eq!(
            keys(&body),
            [
                "@odata.context",
                "LogicalName",
                "EntitySetName",
                "PrimaryIdAttribute",
                "OwnershipType",
                "MetadataId",
                "Attributes"
            ]
        );
        assert_eq!(body["LogicalName"], SEED);
        assert_eq!(body["EntitySetName"], "msdyn_smsengagementctxes");
        assert_eq!(body["PrimaryIdAttribute"], "msdyn_smsengagementctxid");
        assert_eq!(body["OwnershipType"], "UserOwned");
        let catalog = catalog();
        assert_eq!(
            body["MetadataId"],
            entity_metadata_id(catalog.entity(SEED).unwrap()).to_string()
        );
        let attributes = body["Attributes"].as_array().unwrap();
        assert_eq!(attributes.len(), 37);
        let name = attributes
            .iter()
            .find(|a| a["LogicalName"] == "msdyn_name")
            .unwrap();
        assert_eq!(
            name,
            &json!({
                "@odata.type": "#Microsoft.Dynamics.CRM.StringAttributeMetadata",
                "LogicalName": "msdyn_name",
                "AttributeType": "String",
                "RequiredLevel": {
                    "Value": "ApplicationRequired",
                    "CanBeChanged": true,
                    "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
                },
                "MetadataId": attribute_id("msdyn_name"),
            })
        );
        let id = attributes
            .iter()
            .find(|a| a["LogicalName"] == "msdyn_smsengagementctxid")
            .unwrap();
        assert_eq!(
            id["@odata.type"],
            "#Microsoft.Dynamics.CRM.UniqueIdentifierAttributeMetadata"
        );
        assert_eq!(id["RequiredLevel"]["CanBeChanged"], false);
    }

    #[test]
    fn a_table_without_select_has_every_property_and_labels() {
        let body = ok(SEED_PATH, &[]);
        assert_eq!(
            body["@odata.context"],
            format!("{ROOT}$metadata#EntityDefinitions/$entity")
        );
        assert_eq!(
            keys(&body),
            [
                "@odata.context",
                "LogicalName",
                "SchemaName",
                "EntitySetName",
                "PrimaryIdAttribute",
                "PrimaryNameAttribute",
                "OwnershipType",
                "DisplayName",
                "DisplayCollectionName",
                "Description",
                "MetadataId",
            ]
        );
        assert_eq!(body["PrimaryNameAttribute"], "msdyn_name");
        assert_eq!(body["DisplayName"], english("SMS Engagement Context"));
        assert_eq!(
            body["DisplayCollectionName"],
            english("SMS Engagement Contexts")
        );
        assert_eq!(
            body["Description"],
            english("Stores context values for SMS")
        );
    }

    #[test]
    fn a_metadata_id_key_addresses_the_same_table() {
        let by_name = ok(SEED_PATH, &[("$select", "LogicalName")]);
        let id = by_name["MetadataId"].as_str().unwrap().to_string();
        let by_id = ok(
            &format!("EntityDefinitions({id})"),
            &[("$select", "LogicalName")],
        );
        assert_eq!(by_id, by_name);
        let attribute = ok(
            &format!(
                "EntityDefinitions({id})/Attributes({})",
                attribute_id("msdyn_name")
            ),
            &[("$select", "LogicalName")],
        );
        assert_eq!(attribute["LogicalName"], "msdyn_name");
    }

    #[test]
    fn every_table_is_listed() {
        let body = ok(
            "EntityDefinitions",
            &[("$select", "LogicalName,EntitySetName")],
        );
        assert_eq!(
            body["@odata.context"],
            format!("{ROOT}$metadata#EntityDefinitions(LogicalName,EntitySetName)")
        );
        let names: Vec<&str> = body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["LogicalName"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "businessunit",
                "organization",
                "systemuser",
                "team",
                "role",
                "roleprivileges",
                "systemuserroles",
                "teamroles",
                "teammembership",
                "principalobjectaccess",
                "msdyn_ocliveworkitem",
                SEED
            ]
        );
    }

    #[test]
    fn one_string_attribute_in_full() {
        let body = ok(
            &format!("{SEED_PATH}/Attributes(LogicalName='msdyn_name')"),
            &[],
        );
        assert_eq!(
            body,
            json!({
                "@odata.context": format!("{ROOT}$metadata#EntityDefinitions('msdyn_smsengagementctx')/Attributes/$entity"),
                "@odata.type": "#Microsoft.Dynamics.CRM.StringAttributeMetadata",
                "LogicalName": "msdyn_name",
                "SchemaName": "msdyn_name",
                "EntityLogicalName": SEED,
                "AttributeType": "String",
                "AttributeTypeName": {"Value": "StringType"},
                "AttributeOf": null,
                "DisplayName": english("Name"),
                "Description": english("The name of the custom entity."),
                "RequiredLevel": {
                    "Value": "ApplicationRequired",
                    "CanBeChanged": true,
                    "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
                },
                "IsPrimaryId": false,
                "IsPrimaryName": true,
                "IsValidForCreate": true,
                "IsValidForUpdate": true,
                "IsValidForRead": true,
                "MaxLength": 100,
                "Format": "Text",
                "FormatName": {"Value": "Text"},
                "MetadataId": attribute_id("msdyn_name"),
            })
        );
    }

    /// The named properties of one attribute, fetched alone.
    fn attribute(name: &str) -> Value {
        ok(
            &format!("{SEED_PATH}/Attributes(LogicalName='{name}')"),
            &[],
        )
    }

    fn pick(value: &Value, names: &[&str]) -> Value {
        Value::Object(
            names
                .iter()
                .map(|n| (n.to_string(), value[*n].clone()))
                .collect(),
        )
    }

    #[test]
    fn each_column_type_has_its_metadata_type_and_facets() {
        let created = attribute("createdon");
        assert_eq!(
            pick(
                &created,
                &["@odata.type", "AttributeType", "Format", "DateTimeBehavior"]
            ),
            json!({
                "@odata.type": "#Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
                "AttributeType": "DateTime",
                "Format": "DateAndTime",
                "DateTimeBehavior": {"Value": "UserLocal"},
            })
        );
        assert_eq!(attribute("overriddencreatedon")["Format"], "DateOnly");
        let tz = attribute("utcconversiontimezonecode");
        assert_eq!(
            pick(
                &tz,
                &["@odata.type", "AttributeTypeName", "MinValue", "MaxValue"]
            ),
            json!({
                "@odata.type": "#Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
                "AttributeTypeName": {"Value": "IntegerType"},
                "MinValue": -1,
                "MaxValue": 2147483647,
            })
        );
        let version = attribute("versionnumber");
        assert_eq!(
            version["@odata.type"],
            "#Microsoft.Dynamics.CRM.BigIntAttributeMetadata"
        );
        assert_eq!(version["MaxValue"], i64::MAX);
        let owner = attribute("ownerid");
        assert_eq!(
            pick(
                &owner,
                &[
                    "@odata.type",
                    "AttributeType",
                    "AttributeTypeName",
                    "Targets"
                ]
            ),
            json!({
                "@odata.type": "#Microsoft.Dynamics.CRM.LookupAttributeMetadata",
                "AttributeType": "Owner",
                "AttributeTypeName": {"Value": "OwnerType"},
                "Targets": ["systemuser", "team"],
            })
        );
        assert_eq!(
            attribute("msdyn_liveworkitemid")["Targets"],
            json!(["msdyn_ocliveworkitem"])
        );
        let shadow = attribute("owneridname");
        assert_eq!(shadow["AttributeOf"], "ownerid");
        assert_eq!(shadow["IsValidForCreate"], false);
        assert_eq!(
            attribute("owneridtype")["@odata.type"],
            "#Microsoft.Dynamics.CRM.EntityNameAttributeMetadata"
        );
        assert_eq!(
            attribute("statuscode")["@odata.type"],
            "#Microsoft.Dynamics.CRM.StatusAttributeMetadata"
        );
        assert!(attribute("statuscode").get("OptionSet").is_none());
    }

    #[test]
    fn the_picklist_cast_expands_its_options() {
        let body = ok(
            &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"),
            &[("$select", "LogicalName"), ("$expand", "OptionSet")],
        );
        assert_eq!(
            body["@odata.context"],
            format!("{ROOT}$metadata#EntityDefinitions('msdyn_smsengagementctx')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata(LogicalName,OptionSet())")
        );
        let value = body["value"].as_array().unwrap();
        assert_eq!(value.len(), 1);
        let provider = &value[0];
        assert_eq!(
            keys(provider),
            ["LogicalName", "MetadataId", "OptionSet"],
            "no @odata.type: the cast names the type"
        );
        let option_set = &provider["OptionSet"];
        assert_eq!(
            option_set["Name"],
            "msdyn_smsengagementctx_msdyn_smsprovider"
        );
        assert_eq!(option_set["IsGlobal"], false);
        assert_eq!(option_set["OptionSetType"], "Picklist");
        assert_eq!(
            option_set["Options"],
            json!([
                {"Value": 192350000, "Label": english("TeleSign"),
                 "Description": {"LocalizedLabels": [], "UserLocalizedLabel": null}, "Color": null},
                {"Value": 192350001, "Label": english("Twilio"),
                 "Description": {"LocalizedLabels": [], "UserLocalizedLabel": null}, "Color": null},
            ])
        );
    }

    #[test]
    fn state_and_status_options_carry_their_links() {
        let status = ok(
            &format!(
                "{SEED_PATH}/Attributes(LogicalName='statuscode')/Microsoft.Dynamics.CRM.StatusAttributeMetadata"
            ),
            &[("$select", "LogicalName"), ("$expand", "OptionSet($select=Options)")],
        );
        assert_eq!(
            status["@odata.context"],
            format!("{ROOT}$metadata#EntityDefinitions('msdyn_smsengagementctx')/Attributes/Microsoft.Dynamics.CRM.StatusAttributeMetadata(LogicalName,OptionSet(Options))/$entity")
        );
        assert_eq!(keys(&status["OptionSet"]), ["Options", "MetadataId"]);
        let options = status["OptionSet"]["Options"].as_array().unwrap();
        let links: Vec<(i64, i64, &str)> = options
            .iter()
            .map(|o| {
                (
                    o["Value"].as_i64().unwrap(),
                    o["State"].as_i64().unwrap(),
                    o["@odata.type"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            links,
            [
                (1, 0, "#Microsoft.Dynamics.CRM.StatusOptionMetadata"),
                (2, 1, "#Microsoft.Dynamics.CRM.StatusOptionMetadata")
            ]
        );
        let state = ok(
            &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.StateAttributeMetadata"),
            &[("$expand", "OptionSet")],
        );
        let options = state["value"][0]["OptionSet"]["Options"]
            .as_array()
            .unwrap();
        assert_eq!(
            pick(
                &options[1],
                &["@odata.type", "Value", "DefaultStatus", "InvariantName"]
            ),
            json!({
                "@odata.type": "#Microsoft.Dynamics.CRM.StateOptionMetadata",
                "Value": 1,
                "DefaultStatus": 2,
                "InvariantName": "Inactive",
            })
        );
        assert_eq!(options[0]["Label"], english("Active"));
    }

    #[test]
    fn casts_filter_the_columns_by_metadata_type() {
        let names = |cast: &str| -> Vec<String> {
            let body = ok(
                &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.{cast}"),
                &[("$select", "LogicalName")],
            );
            body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["LogicalName"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names("EnumAttributeMetadata"),
            [
                "msdyn_smsprovider",
                "owneridtype",
                "statecode",
                "statuscode"
            ]
        );
        assert_eq!(names("LookupAttributeMetadata").len(), 9);
        assert_eq!(names("StringAttributeMetadata").len(), 16);
        assert!(names("MoneyAttributeMetadata").is_empty());
        // A derived type's property is selectable after its cast.
        let strings = ok(
            &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata"),
            &[("$select", "LogicalName,MaxLength")],
        );
        assert_eq!(strings["value"][0]["MaxLength"], 100);
        let all = ok(
            &format!("{SEED_PATH}/Attributes"),
            &[("$select", "LogicalName")],
        );
        assert_eq!(
            all["@odata.context"],
            format!("{ROOT}$metadata#EntityDefinitions('msdyn_smsengagementctx')/Attributes(LogicalName)")
        );
        assert_eq!(all["value"].as_array().unwrap().len(), 37);
        assert_eq!(
            all["value"][0]["@odata.type"],
            "#Microsoft.Dynamics.CRM.IntegerAttributeMetadata"
        );
    }

    fn err(path: &str, query: &[(&str, &str)]) -> SchemaError {
        get(path, query).expect_err(path)
    }

    fn unknown_property(property: &str, type_name: &str) -> SchemaError {
        SchemaError::UnknownProperty {
            property: property.into(),
            type_name: format!("Microsoft.Dynamics.CRM.{type_name}"),
        }
    }

    #[test]
    fn unknown_names_are_refused_in_dataverse_words() {
        let missing = err("EntityDefinitions(LogicalName='account')", &[]);
        assert_eq!(missing, SchemaError::UnknownEntity("account".into()));
        assert_eq!(
            missing.to_string(),
            "The entity with a name = 'account' with namemapping = 'Logical' was not found in the MetadataCache."
        );
        assert_eq!(
            err(SEED_PATH, &[("$select", "LogicalName,ObjectTypeCode")]),
            unknown_property("ObjectTypeCode", "EntityMetadata")
        );
        assert_eq!(
            err(SEED_PATH, &[("$expand", "Attributes($select=MaxLength)")]),
            unknown_property("MaxLength", "AttributeMetadata")
        );
        assert_eq!(
            err(
                &format!("{SEED_PATH}/Attributes"),
                &[("$expand", "OptionSet")]
            ),
            unknown_property("OptionSet", "AttributeMetadata")
        );
        assert_eq!(
            err(
                &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata"),
                &[("$expand", "OptionSet")]
            ),
            unknown_property("OptionSet", "StringAttributeMetadata")
        );
        let attribute = err(&format!("{SEED_PATH}/Attributes(LogicalName='nope')"), &[]);
        assert_eq!(
            attribute.to_string(),
            "'msdyn_smsengagementctx' entity doesn't contain attribute with Name = 'nope' and NameMapping = 'Logical'."
        );
        let cast = err(
            &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.FooAttributeMetadata"),
            &[],
        );
        assert_eq!(
            cast.to_string(),
            "Resource not found for the segment 'Microsoft.Dynamics.CRM.FooAttributeMetadata'."
        );
        assert_eq!(
            err(
                &format!(
                    "{SEED_PATH}/Attributes(LogicalName='msdyn_name')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
                ),
                &[]
            ),
            SchemaError::UnknownCast("Microsoft.Dynamics.CRM.PicklistAttributeMetadata".into())
        );
        assert_eq!(
            err(&format!("{SEED_PATH}/Keys"), &[]),
            SchemaError::UnknownSegment("Keys".into())
        );
        assert_eq!(
            err("EntityDefinition(LogicalName='x')", &[]),
            SchemaError::UnknownSegment("EntityDefinition".into())
        );
    }

    #[test]
    fn malformed_options_and_keys_are_bad_requests() {
        for (path, query) in [
            (SEED_PATH, ("$filter", "LogicalName eq 'x'")),
            (SEED_PATH, ("$select", "LogicalName,,SchemaName")),
            (SEED_PATH, ("$expand", "Attributes($select=LogicalName")),
            (SEED_PATH, ("$expand", "Attributes($top=1)")),
            (SEED_PATH, ("$expand", "ManyToOneRelationships")),
            (
                "EntityDefinitions(LogicalName=msdyn_smsengagementctx)",
                ("x", ""),
            ),
            ("EntityDefinitions('msdyn_smsengagementctx')", ("x", "")),
            ("EntityDefinitions(LogicalName='a'b')", ("x", "")),
        ] {
            let error = err(path, &[query]);
            assert!(
                matches!(error, SchemaError::BadQuery(_)),
                "{path} {query:?}: {error:?}"
            );
        }
        // Parameter aliases and custom options are not system query options.
        ok(SEED_PATH, &[("@p1", "'x'"), ("tag", "1")]);
    }

    #[test]
    fn expand_options_nest_with_semicolons() {
        let parsed = parse_expand(
            "Attributes($select=LogicalName,AttributeType;$expand=OptionSet($select=Options)),Keys",
        )
        .unwrap();
        assert_eq!(
            parsed,
            [
                Expansion {
                    name: "Attributes".into(),
                    select: Some(vec!["LogicalName".into(), "AttributeType".into()]),
                    expand: vec![Expansion {
                        name: "OptionSet".into(),
                        select: Some(vec!["Options".into()]),
                        expand: vec![],
                    }],
                },
                Expansion {
                    name: "Keys".into(),
                    ..Expansion::default()
                },
            ]
        );
    }

    #[test]
    fn the_request_is_typed_before_it_meets_the_catalog() {
        let segments: Vec<String> = [
            SEED_PATH,
            "Attributes(LogicalName='msdyn_smsprovider')",
            "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let query = vec![
            ("$select".to_string(), "LogicalName".to_string()),
            (
                "$expand".to_string(),
                "OptionSet($select=Options),GlobalOptionSet".to_string(),
            ),
        ];
        assert_eq!(
            parse_definitions_path(&segments, &query).unwrap(),
            DefinitionsRequest::Attribute {
                entity: MetadataKey::LogicalName(SEED.into()),
                attribute: MetadataKey::LogicalName("msdyn_smsprovider".into()),
                cast: Some(AttributeKind::Picklist),
                query: AttributeQuery {
                    select: Some(vec!["LogicalName".into()]),
                    option_set: Some(OptionSetQuery {
                        select: Some(vec!["Options".into()]),
                    }),
                    global_option_set: Some(OptionSetQuery::default()),
                },
            }
        );
        let body = parse_definitions_path(&segments, &query)
            .unwrap()
            .respond(&catalog(), ROOT)
            .unwrap();
        assert_eq!(body["GlobalOptionSet"], Value::Null);
        assert_eq!(body["OptionSet"]["Options"].as_array().unwrap().len(), 2);
    }
}
