//! The relationships between tables as Dataverse's relationship metadata, computed from the
//! catalog like the navigation properties of `$metadata`: every lookup column is a one-to-many
//! relationship (its partner navigation's name is the schema name), and the security model's
//! associations (`systemuserroles_association`, ...) are the many-to-many ones.
//!
//! Served as `RelationshipDefinitions[(<MetadataId>)|(SchemaName='x')][/<cast>]` with `$select`
//! and `$filter` (`RelationshipType eq Microsoft.Dynamics.CRM.RelationshipType'OneToManyRelationship'`),
//! and per table through `EntityDefinitions(...)/OneToManyRelationships` and the others.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::definitions::{collection, label, project};
use super::filter::{Filter, Shape};
use super::options::QueryOptions;
use super::{metadata_id, navigations, Navigation, SchemaError, Target, NAMESPACE};
use crate::authorize::directory::Relationship as Association;
use crate::metadata::Catalog;

/// The kinds of relationship metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    OneToMany,
    ManyToMany,
}

/// `RelationshipMetadataBase`'s properties: all that `RelationshipDefinitions` accepts
/// without a cast.
const BASE_PROPERTIES: &[&str] = &[
    "SchemaName",
    "RelationshipType",
    "IsCustomRelationship",
    "IsCustomizable",
    "IsManaged",
    "IsValidForAdvancedFind",
    "IntroducedVersion",
    "SecurityTypes",
    "HasChanged",
    "MetadataId",
];

const ONE_TO_MANY_PROPERTIES: &[&str] = &[
    "SchemaName",
    "RelationshipType",
    "ReferencedAttribute",
    "ReferencedEntity",
    "ReferencingAttribute",
    "ReferencingEntity",
    "ReferencedEntityNavigationPropertyName",
    "ReferencingEntityNavigationPropertyName",
    "IsHierarchical",
    "RelationshipBehavior",
    "CascadeConfiguration",
    "AssociatedMenuConfiguration",
    "DenormalizedAttributeName",
    "EntityKey",
    "IsCustomRelationship",
    "IsCustomizable",
    "IsManaged",
    "IsValidForAdvancedFind",
    "IntroducedVersion",
    "SecurityTypes",
    "HasChanged",
    "MetadataId",
];

const MANY_TO_MANY_PROPERTIES: &[&str] = &[
    "SchemaName",
    "RelationshipType",
    "Entity1LogicalName",
    "Entity2LogicalName",
    "IntersectEntityName",
    "Entity1IntersectAttribute",
    "Entity2IntersectAttribute",
    "Entity1NavigationPropertyName",
    "Entity2NavigationPropertyName",
    "Entity1AssociatedMenuConfiguration",
    "Entity2AssociatedMenuConfiguration",
    "IsCustomRelationship",
    "IsCustomizable",
    "IsManaged",
    "IsValidForAdvancedFind",
    "IntroducedVersion",
    "SecurityTypes",
    "HasChanged",
    "MetadataId",
];

impl Cardinality {
    /// `OneToManyRelationship`, the `RelationshipType` member.
    pub fn relationship_type(self) -> &'static str {
        match self {
            Cardinality::OneToMany => "OneToManyRelationship",
            Cardinality::ManyToMany => "ManyToManyRelationship",
        }
    }

    pub fn type_name(self) -> String {
        format!("{NAMESPACE}.{}Metadata", self.relationship_type())
    }

    fn properties(self) -> &'static [&'static str] {
        match self {
            Cardinality::OneToMany => ONE_TO_MANY_PROPERTIES,
            Cardinality::ManyToMany => MANY_TO_MANY_PROPERTIES,
        }
    }

    pub fn shape(self) -> Shape<'static> {
        Shape {
            type_name: match self {
                Cardinality::OneToMany => "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
                Cardinality::ManyToMany => "Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata",
            },
            properties: self.properties(),
            navigations: &[],
        }
    }

    fn parse_cast(segment: &str) -> Option<Cardinality> {
        let name = segment
            .strip_prefix("Microsoft.Dynamics.CRM.")
            .or_else(|| segment.strip_prefix("mscrm."))?;
        [Cardinality::OneToMany, Cardinality::ManyToMany]
            .into_iter()
            .find(|c| name == format!("{}Metadata", c.relationship_type()))
    }
}

/// One relationship of the catalog.
pub enum RelationshipDef<'a> {
    /// A lookup column, seen from the table that has it.
    Lookup {
        referencing: &'a str,
        navigation: Navigation<'a>,
    },
    Association(Association),
}

/// Every relationship: the lookups of every table in catalog order, then the associations.
pub fn all(catalog: &Catalog) -> Vec<RelationshipDef<'_>> {
    let mut out: Vec<RelationshipDef<'_>> = catalog
        .entities()
        .iter()
        .flat_map(|entity| {
            navigations(catalog, entity)
                .into_iter()
                .map(|navigation| RelationshipDef::Lookup {
                    referencing: &entity.logical_name,
                    navigation,
                })
        })
        .collect();
    out.extend(
        Association::ALL
            .into_iter()
            .map(RelationshipDef::Association),
    );
    out
}

impl RelationshipDef<'_> {
    pub fn cardinality(&self) -> Cardinality {
        match self {
            RelationshipDef::Lookup { .. } => Cardinality::OneToMany,
            RelationshipDef::Association(_) => Cardinality::ManyToMany,
        }
    }

    /// The many side of a one-to-many relationship.
    pub fn referencing(&self) -> Option<&str> {
        match self {
            RelationshipDef::Lookup { referencing, .. } => Some(referencing),
            RelationshipDef::Association(_) => None,
        }
    }

    /// The one side of a one-to-many relationship (`owner` for an owner column, as Dataverse).
    pub fn referenced(&self) -> Option<&str> {
        match self {
            RelationshipDef::Lookup { navigation, .. } => Some(referenced_entity(navigation)),
            RelationshipDef::Association(_) => None,
        }
    }

    /// Whether a many-to-many relationship has `table` on either side.
    pub fn joins(&self, table: &str) -> bool {
        match self {
            RelationshipDef::Association(association) => {
                let (_, (one, _), (two, _)) = association.tables();
                one == table || two == table
            }
            RelationshipDef::Lookup { .. } => false,
        }
    }

    pub fn schema_name(&self) -> &str {
        match self {
            RelationshipDef::Lookup { navigation, .. } => &navigation.partner,
            RelationshipDef::Association(association) => association.name(),
        }
    }

    /// Every property; with `typed`, the derived `@odata.type` first (for the mixed
    /// `RelationshipDefinitions` collection).
    pub fn object(&self, typed: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if typed {
            out.insert(
                "@odata.type".into(),
                json!(format!("#{}", self.cardinality().type_name())),
            );
        }
        let schema_name = self.schema_name().to_string();
        for name in self.cardinality().properties() {
            let value = match (*name, self) {
                ("SchemaName", _) => json!(schema_name),
                ("RelationshipType", _) => json!(self.cardinality().relationship_type()),
                ("IsCustomRelationship", RelationshipDef::Lookup { navigation, .. }) => {
                    json!(navigation.attribute.logical_name.contains('_'))
                }
                ("IsCustomRelationship", _) | ("IsHierarchical", _) => json!(false),
                ("IsManaged", _) | ("IsValidForAdvancedFind", _) => json!(true),
                ("IsCustomizable", _) => json!({
                    "Value": true,
                    "CanBeChanged": false,
                    "ManagedPropertyLogicalName": "iscustomizable",
                }),
                ("IntroducedVersion", _) => json!("1.0"),
                ("SecurityTypes", RelationshipDef::Lookup { .. }) => json!("Append"),
                ("SecurityTypes", _) => json!("None"),
                ("MetadataId", _) => json!(relationship_id(&schema_name)),
                (
                    property,
                    RelationshipDef::Lookup {
                        referencing,
                        navigation,
                    },
                ) => lookup_value(property, referencing, navigation),
                (property, RelationshipDef::Association(association)) => {
                    association_value(property, *association)
                }
            };
            out.insert(name.to_string(), value);
        }
        out
    }
}

pub fn relationship_id(schema_name: &str) -> Uuid {
    metadata_id(&["relationship", schema_name])
}

fn referenced_entity<'a>(navigation: &'a Navigation<'_>) -> &'a str {
    match navigation.target {
        Target::Entity(entity) => &entity.logical_name,
        Target::Principal => "owner",
    }
}

fn lookup_value(property: &str, referencing: &str, navigation: &Navigation<'_>) -> Value {
    match property {
        "ReferencedAttribute" => json!(navigation.target.key()),
        "ReferencedEntity" => json!(referenced_entity(navigation)),
        "ReferencingAttribute" => json!(navigation.attribute.logical_name),
        "ReferencingEntity" => json!(referencing),
        "ReferencedEntityNavigationPropertyName" => json!(navigation.partner),
        "ReferencingEntityNavigationPropertyName" => json!(navigation.name),
        "RelationshipBehavior" => json!(0),
        "CascadeConfiguration" => json!({
            "Assign": "NoCascade",
            "Delete": "RemoveLink",
            "Merge": "NoCascade",
            "Reparent": "NoCascade",
            "Share": "NoCascade",
            "Unshare": "NoCascade",
            "RollupView": "NoCascade",
            "Archive": "NoCascade",
        }),
        "AssociatedMenuConfiguration" => menu(),
        _ => Value::Null,
    }
}

fn association_value(property: &str, association: Association) -> Value {
    let (intersect, (one, one_column), (two, two_column)) = association.tables();
    match property {
        "Entity1LogicalName" => json!(one),
        "Entity2LogicalName" => json!(two),
        "IntersectEntityName" => json!(intersect),
        "Entity1IntersectAttribute" => json!(one_column),
        "Entity2IntersectAttribute" => json!(two_column),
        "Entity1NavigationPropertyName" | "Entity2NavigationPropertyName" => {
            json!(association.name())
        }
        "Entity1AssociatedMenuConfiguration" | "Entity2AssociatedMenuConfiguration" => menu(),
        _ => Value::Null,
    }
}

fn menu() -> Value {
    json!({
        "Behavior": "UseCollectionName",
        "Group": "Details",
        "Label": label(""),
        "Order": null,
        "IsCustomizable": true,
        "Icon": null,
        "ViewId": "00000000-0000-0000-0000-000000000000",
        "AvailableOffline": true,
        "MenuId": null,
        "QueryApi": null,
    })
}

/// How a relationship is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelationshipKey {
    SchemaName(String),
    MetadataId(Uuid),
}

/// A parsed `RelationshipDefinitions` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationshipsRequest {
    pub key: Option<RelationshipKey>,
    pub cast: Option<Cardinality>,
    pub select: Option<Vec<String>>,
    pub filter: Option<Filter>,
}

/// `RelationshipDefinitions[(key)][/cast]` and its options.
pub fn parse_relationships_path(
    key: Option<&str>,
    rest: &[String],
    query: &[(String, String)],
) -> Result<RelationshipsRequest, SchemaError> {
    let cast = match rest {
        [] => None,
        [cast] => Some(
            Cardinality::parse_cast(cast).ok_or_else(|| SchemaError::UnknownCast(cast.clone()))?,
        ),
        [_, extra, ..] => return Err(SchemaError::UnknownSegment(extra.clone())),
    };
    let key = key.map(parse_key).transpose()?;
    let mut options = QueryOptions::parse(query)?;
    if key.is_some() {
        options = options.single()?;
    }
    if let Some(item) = options.expand.first() {
        return Err(SchemaError::UnknownProperty {
            property: item.name.clone(),
            type_name: type_name(cast),
        });
    }
    let properties = cast.map_or(BASE_PROPERTIES, Cardinality::properties);
    let shape = Shape {
        type_name: &type_name(cast),
        properties,
        navigations: &[],
    };
    let filter = shape.options(options.select.as_deref(), options.filter.as_deref())?;
    Ok(RelationshipsRequest {
        key,
        cast,
        select: options.select,
        filter,
    })
}

fn type_name(cast: Option<Cardinality>) -> String {
    cast.map_or_else(
        || format!("{NAMESPACE}.RelationshipMetadataBase"),
        Cardinality::type_name,
    )
}

fn parse_key(key: &str) -> Result<RelationshipKey, SchemaError> {
    if let Some(name) = key
        .strip_prefix("SchemaName='")
        .and_then(|k| k.strip_suffix('\''))
    {
        return Ok(RelationshipKey::SchemaName(name.replace("''", "'")));
    }
    Uuid::parse_str(key.trim())
        .map(RelationshipKey::MetadataId)
        .map_err(|_| {
            SchemaError::BadQuery(format!(
                "The key '{key}' of segment 'RelationshipDefinitions' is not valid: use SchemaName='name' or a MetadataId."
            ))
        })
}

impl RelationshipsRequest {
    pub fn respond(&self, catalog: &Catalog, root: &str) -> Result<Value, SchemaError> {
        let cast_segment = self
            .cast
            .map(|c| format!("/{}", c.type_name()))
            .unwrap_or_default();
        let projection = self
            .select
            .as_ref()
            .map(|s| format!("({})", s.join(",")))
            .unwrap_or_default();
        let candidates = all(catalog)
            .into_iter()
            .filter(|r| self.cast.is_none_or(|c| c == r.cardinality()));
        if let Some(key) = &self.key {
            let found = candidates
                .into_iter()
                .find(|r| match key {
                    RelationshipKey::SchemaName(name) => r.schema_name().eq_ignore_ascii_case(name),
                    RelationshipKey::MetadataId(id) => relationship_id(r.schema_name()) == *id,
                })
                .ok_or_else(|| {
                    SchemaError::UnknownRelationship(match key {
                        RelationshipKey::SchemaName(name) => name.clone(),
                        RelationshipKey::MetadataId(id) => id.to_string(),
                    })
                })?;
            let mut out = Map::new();
            out.insert(
                "@odata.context".into(),
                json!(format!(
                    "{root}$metadata#RelationshipDefinitions{cast_segment}{projection}/$entity"
                )),
            );
            out.extend(project(
                found.object(self.cast.is_none()),
                self.select.as_deref(),
                "MetadataId",
            ));
            return Ok(Value::Object(out));
        }
        let value = collection(
            candidates.map(|r| r.object(self.cast.is_none())),
            self.filter.as_ref(),
            self.select.as_deref(),
            "MetadataId",
        );
        Ok(json!({
            "@odata.context": format!("{root}$metadata#RelationshipDefinitions{cast_segment}{projection}"),
            "value": value,
        }))
    }
}
