//! Column metadata: the `AttributeMetadata` types and their JSON.

use serde_json::{json, Map, Value};

use super::{check_selected, find_entity};
use super::{label, projection, selected, AttributeQuery, OptionSetQuery};
use crate::metadata::tracking::TrackingSettings;
use crate::metadata::{Attribute, AttributeType, Catalog, Entity, OptionMeta, RequiredLevel};
use crate::schema::filter::Filter;
use crate::schema::{attribute_metadata_id, metadata_id, SchemaError, NAMESPACE};

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
pub(super) const OTHER_KINDS: &[&str] = &[
    "Decimal",
    "Double",
    "Money",
    "MultiSelectPicklist",
    "Image",
    "File",
    "ManagedProperty",
];

/// The properties of `AttributeMetadata`, in the order they are written (the key last).
pub(super) const ATTRIBUTE_PROPERTIES: &[&str] = &[
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
    "IsAuditEnabled",
    "MetadataId",
];

/// The properties of `OptionSetMetadata`, in the order they are written (the key last).
pub(super) const OPTION_SET_PROPERTIES: &[&str] =
    &["Name", "IsGlobal", "OptionSetType", "Options", "MetadataId"];

pub(super) const OPTION_SET_NAVIGATIONS: &[&str] = &["OptionSet", "GlobalOptionSet"];

/// The metadata types of the catalog's columns, and their option-set base.
const KINDS: [AttributeKind; 13] = [
    AttributeKind::String,
    AttributeKind::Memo,
    AttributeKind::Integer,
    AttributeKind::BigInt,
    AttributeKind::Boolean,
    AttributeKind::DateTime,
    AttributeKind::Picklist,
    AttributeKind::State,
    AttributeKind::Status,
    AttributeKind::Lookup,
    AttributeKind::EntityName,
    AttributeKind::UniqueIdentifier,
    AttributeKind::Enum,
];

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
        KINDS.into_iter().find(|k| k.name() == name).or_else(|| {
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
    pub(super) fn properties(self) -> &'static [&'static str] {
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
    write_attribute(&mut out, &catalog.tracking(), entity, found, cast, query);
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
    let settings = catalog.tracking();
    let value: Vec<Value> = filtered_attributes(&settings, entity, kind, query.filter.as_ref())
        .into_iter()
        .map(|attribute| {
            let mut out = Map::new();
            write_attribute(&mut out, &settings, entity, attribute, kind, query);
            Value::Object(out)
        })
        .collect();
    Ok(json!({
        "@odata.context": attributes_context(root, entity, kind, query),
        "value": value,
    }))
}

/// The columns of one kind (all without one) that the filter accepts, in table order; the
/// filter sees each whole object.
pub(super) fn filtered_attributes<'a>(
    settings: &TrackingSettings,
    entity: &'a Entity,
    kind: Option<AttributeKind>,
    filter: Option<&Filter>,
) -> Vec<&'a Attribute> {
    entity
        .attributes
        .iter()
        .filter(|a| kind.is_none_or(|k| k.includes(a.attribute_type)))
        .filter(|attribute| {
            filter.is_none_or(|filter| {
                let mut object = Map::new();
                write_attribute(
                    &mut object,
                    settings,
                    entity,
                    attribute,
                    None,
                    &AttributeQuery::default(),
                );
                filter.matches(&Value::Object(object))
            })
        })
        .collect()
}

/// Every property any attribute metadata type of the catalog declares.
pub fn all_attribute_properties() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = ATTRIBUTE_PROPERTIES.to_vec();
    for kind in KINDS {
        for name in kind.properties() {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    names
}

/// The columns as `RetrieveMetadataChanges` returns them: each with its `@odata.type`, its
/// `MetadataId` and the requested properties its type declares (all without a list).
pub fn typed_attributes(
    settings: &TrackingSettings,
    entity: &Entity,
    filter: Option<&Filter>,
    properties: Option<&[String]>,
) -> Vec<Value> {
    filtered_attributes(settings, entity, None, filter)
        .into_iter()
        .map(|attribute| {
            let kind = AttributeKind::of(attribute.attribute_type);
            let mut full = Map::new();
            write_attribute(
                &mut full,
                settings,
                entity,
                attribute,
                None,
                &AttributeQuery::default(),
            );
            let mut out = Map::new();
            for (name, value) in full {
                let wanted = name == "@odata.type"
                    || name == "MetadataId"
                    || properties.is_none_or(|p| p.contains(&name));
                let declared = name.starts_with('@')
                    || ATTRIBUTE_PROPERTIES.contains(&name.as_str())
                    || kind.properties().contains(&name.as_str());
                if wanted && declared {
                    out.insert(name, value);
                }
            }
            Value::Object(out)
        })
        .collect()
}

/// What `$select` and `$filter` accept on attributes of a type: `AttributeMetadata`'s
/// properties, plus the derived type's after a cast.
pub(super) fn attribute_properties(cast: Option<AttributeKind>) -> Vec<&'static str> {
    ATTRIBUTE_PROPERTIES
        .iter()
        .chain(cast.map_or(&[][..], AttributeKind::properties))
        .copied()
        .collect()
}

pub(super) fn check_attribute_query(
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

pub(super) fn attribute_type_name(cast: Option<AttributeKind>) -> String {
    cast.map_or_else(
        || format!("{NAMESPACE}.AttributeMetadata"),
        AttributeKind::type_name,
    )
}

/// The projection of attribute objects, without its outer parentheses when nested.
pub(super) fn attribute_projection(query: &AttributeQuery) -> String {
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

pub(super) fn attributes_context(
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

pub(super) fn write_attribute(
    out: &mut Map<String, Value>,
    settings: &TrackingSettings,
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
            out.insert(
                name.to_string(),
                attribute_value(settings, entity, attribute, name),
            );
        }
    }
    if let Some(expanded) = &query.option_set {
        out.insert("OptionSet".into(), option_set(entity, attribute, expanded));
    }
    if query.global_option_set.is_some() {
        out.insert("GlobalOptionSet".into(), Value::Null);
    }
}

pub(super) fn attribute_value(
    settings: &TrackingSettings,
    entity: &Entity,
    attribute: &Attribute,
    property: &str,
) -> Value {
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
        // A column of a table the change log watches can be audited; its own switch counts
        // only while its table's and the organisation's are on too.
        "IsAuditEnabled" => {
            let watched = settings.table(&entity.logical_name).is_some();
            json!({
                "Value": watched
                    && settings.audits_column(&entity.logical_name, &attribute.logical_name),
                "CanBeChanged": watched,
                "ManagedPropertyLogicalName": "canmodifyauditsettings",
            })
        }
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
pub(super) fn option_set(entity: &Entity, attribute: &Attribute, query: &OptionSetQuery) -> Value {
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
pub(super) fn option(attribute_type: AttributeType, option: &OptionMeta) -> Value {
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
