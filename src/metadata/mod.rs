//! The entity metadata: what tables exist, their columns, types, limits and option sets.
//!
//! Metadata is data. Every table smsctx serves is described by a page in Microsoft's
//! entity-reference markdown format under `metadata/` (the SMS Engagement Context page is the
//! seed reference itself); [`markdown`] turns such a page into an [`Entity`]. Every other layer
//! (parsing, validation, storage, serialization) asks the [`Catalog`] instead of naming columns.
//!
//! **Architecture invariant:** this module does no I/O and knows nothing of HTTP or SQL.

pub mod jobs;
#[cfg(test)]
mod literals;
pub mod markdown;
pub mod sms;
pub mod system;
pub mod tracking;
pub mod transcripts;
pub mod views;

use std::collections::HashMap;
use std::sync::Arc;

/// The pages compiled into the binary, in the order their tables are created.
const BUILTIN_PAGES: &[(&str, &str)] = &[
    (
        "businessunit",
        include_str!("../../metadata/businessunit.md"),
    ),
    (
        "organization",
        include_str!("../../metadata/organization.md"),
    ),
    ("systemuser", include_str!("../../metadata/systemuser.md")),
    ("team", include_str!("../../metadata/team.md")),
    ("role", include_str!("../../metadata/role.md")),
    (
        "roleprivileges",
        include_str!("../../metadata/roleprivileges.md"),
    ),
    (
        "systemuserroles",
        include_str!("../../metadata/systemuserroles.md"),
    ),
    ("teamroles", include_str!("../../metadata/teamroles.md")),
    (
        "teammembership",
        include_str!("../../metadata/teammembership.md"),
    ),
    (
        "principalobjectaccess",
        include_str!("../../metadata/principalobjectaccess.md"),
    ),
    (
        "msdyn_ocliveworkitem",
        include_str!("../../metadata/msdyn_ocliveworkitem.md"),
    ),
    (
        "msdyn_smsengagementctx",
        include_str!("../../metadata/msdyn_smsengagementctx.md"),
    ),
    (
        "msdyn_transcript",
        include_str!("../../metadata/msdyn_transcript.md"),
    ),
    ("annotation", include_str!("../../metadata/annotation.md")),
    ("savedquery", include_str!("../../metadata/savedquery.md")),
    ("userquery", include_str!("../../metadata/userquery.md")),
    (
        "asyncoperation",
        include_str!("../../metadata/asyncoperation.md"),
    ),
    ("audit", include_str!("../../metadata/audit.md")),
];

/// The SMS channel's internal tables: stored like the pages above (same importer, same store
/// SQL), but not Web API entity sets. [`Catalog::with_channels`] adds them for the store.
const CHANNEL_PAGES: &[(&str, &str)] = &[
    (
        "smsctx_smschannel",
        include_str!("../../metadata/smsctx_smschannel.md"),
    ),
    (
        "smsctx_smsdelivery",
        include_str!("../../metadata/smsctx_smsdelivery.md"),
    ),
    (
        "smsctx_smspair",
        include_str!("../../metadata/smsctx_smspair.md"),
    ),
    (
        "smsctx_smsoutbound",
        include_str!("../../metadata/smsctx_smsoutbound.md"),
    ),
];

/// The column types of the entity reference (`Type` row of an attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    Uniqueidentifier,
    String,
    Memo,
    Integer,
    BigInt,
    Boolean,
    DateTime,
    Picklist,
    State,
    Status,
    Lookup,
    Owner,
    EntityName,
}

impl AttributeType {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "Uniqueidentifier" => Self::Uniqueidentifier,
            "String" => Self::String,
            "Memo" => Self::Memo,
            "Integer" => Self::Integer,
            "BigInt" => Self::BigInt,
            "Boolean" => Self::Boolean,
            "DateTime" => Self::DateTime,
            "Picklist" => Self::Picklist,
            "State" => Self::State,
            "Status" => Self::Status,
            "Lookup" => Self::Lookup,
            "Owner" => Self::Owner,
            "EntityName" => Self::EntityName,
            _ => return None,
        })
    }

    /// The name Dataverse uses for `AttributeType` in attribute metadata.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uniqueidentifier => "Uniqueidentifier",
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
            Self::Owner => "Owner",
            Self::EntityName => "EntityName",
        }
    }

    /// The EDM type of the property that exposes this column.
    pub fn edm_type(self) -> &'static str {
        match self {
            Self::Uniqueidentifier | Self::Lookup | Self::Owner => "Edm.Guid",
            Self::String | Self::Memo | Self::EntityName => "Edm.String",
            Self::Integer | Self::Picklist | Self::State | Self::Status => "Edm.Int32",
            Self::BigInt => "Edm.Int64",
            Self::Boolean => "Edm.Boolean",
            Self::DateTime => "Edm.DateTimeOffset",
        }
    }

    /// Whether values of this type are option-set codes.
    pub fn is_option_set(self) -> bool {
        matches!(self, Self::Picklist | Self::State | Self::Status)
    }

    /// Whether the column points at another record.
    pub fn is_lookup(self) -> bool {
        matches!(self, Self::Lookup | Self::Owner)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequiredLevel {
    None,
    Recommended,
    ApplicationRequired,
    SystemRequired,
}

impl RequiredLevel {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "None" => Self::None,
            "Recommended" => Self::Recommended,
            "ApplicationRequired" => Self::ApplicationRequired,
            "SystemRequired" => Self::SystemRequired,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Recommended => "Recommended",
            Self::ApplicationRequired => "ApplicationRequired",
            Self::SystemRequired => "SystemRequired",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnershipType {
    UserOwned,
    BusinessOwned,
    OrganizationOwned,
    /// No owner and no business unit (the audit table).
    None,
}

impl OwnershipType {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "UserOwned" => Self::UserOwned,
            "BusinessOwned" => Self::BusinessOwned,
            "OrganizationOwned" => Self::OrganizationOwned,
            "None" => Self::None,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::UserOwned => "UserOwned",
            Self::BusinessOwned => "BusinessOwned",
            Self::OrganizationOwned => "OrganizationOwned",
            Self::None => "None",
        }
    }
}

/// One option of a picklist, state or status column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionMeta {
    pub value: i32,
    pub label: String,
    /// For a status option: the state it belongs to.
    pub state: Option<i32>,
    /// For a state option: its default status.
    pub default_status: Option<i32>,
    /// For a state option: the invariant name (`Active`, `Inactive`, ...).
    pub invariant_name: Option<String>,
}

/// One column of a table.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub logical_name: String,
    pub schema_name: String,
    pub display_name: String,
    pub description: String,
    pub attribute_type: AttributeType,
    pub required_level: RequiredLevel,
    pub max_length: Option<usize>,
    pub min_value: Option<i64>,
    pub max_value: Option<i64>,
    pub valid_for_create: bool,
    pub valid_for_update: bool,
    pub valid_for_read: bool,
    pub datetime_behavior: Option<String>,
    /// Display format (`DateOnly`, `DateAndTime`, `Text`, ...).
    pub format: Option<String>,
    /// Target tables of a lookup or owner column.
    pub targets: Vec<String>,
    pub options: Vec<OptionMeta>,
    /// The `DefaultValue` row (booleans, option sets), as written on the page.
    pub default_value: Option<String>,
    /// The EDM property name, derived once at import (see [`Attribute::property_name`]).
    pub(crate) property: String,
    /// For a shadow name column (`owneridname`, `createdbyyominame`, ...): the lookup it names.
    /// Shadow columns are not stored and are not EDM properties; they surface as the lookup's
    /// formatted value.
    pub attribute_of: Option<String>,
}

impl Attribute {
    /// Whether the column is stored in the table (everything but shadow name columns).
    pub fn is_stored(&self) -> bool {
        self.attribute_of.is_none()
    }

    /// Whether the column is an EDM structural property of the entity type. Lookups are exposed
    /// as the computed `_x_value` property; the owner's type column (`owneridtype`) is not
    /// exposed, while another `EntityName` column is a string property (a note's
    /// `objecttypecode`, which Microsoft's transcript download filters on).
    pub fn is_edm_property(&self) -> bool {
        self.is_stored()
            && !(self.attribute_type == AttributeType::EntityName
                && self.logical_name == system::OWNER_ID_TYPE)
    }

    /// The name of the property in JSON payloads: `_x_value` for lookups, the logical name
    /// otherwise.
    pub fn property_name(&self) -> &str {
        &self.property
    }

    pub fn option(&self, value: i32) -> Option<&OptionMeta> {
        self.options.iter().find(|o| o.value == value)
    }
}

/// One table.
#[derive(Debug, Clone)]
pub struct Entity {
    pub logical_name: String,
    pub schema_name: String,
    pub entity_set_name: String,
    pub display_name: String,
    pub display_collection_name: String,
    pub description: String,
    pub primary_id: String,
    pub primary_name: String,
    pub ownership: OwnershipType,
    pub messages: Vec<String>,
    pub attributes: Vec<Attribute>,
    /// The schema names of the page's many-to-one relationships
    /// (`msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid`), as listed; the page
    /// does not say which lookup each belongs to.
    pub many_to_one: Vec<String>,
    /// Every row of the page's entity property table (`ObjectTypeCode`, `IsActivity`, ...), as
    /// written; the metadata API reads the `EntityMetadata` properties it has no field for here.
    pub properties: std::collections::BTreeMap<String, String>,
    index: HashMap<String, usize>,
    property_index: HashMap<String, usize>,
}

impl Entity {
    pub(crate) fn new(mut entity: Entity) -> Entity {
        for attribute in entity.attributes.iter_mut() {
            attribute.property = if attribute.attribute_type.is_lookup() {
                format!("_{}_value", attribute.logical_name)
            } else {
                attribute.logical_name.clone()
            };
        }
        entity.index = entity
            .attributes
            .iter()
            .enumerate()
            .map(|(i, a)| (a.logical_name.clone(), i))
            .collect();
        entity.property_index = entity
            .attributes
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_edm_property())
            .map(|(i, a)| (a.property_name().to_string(), i))
            .collect();
        entity
    }

    /// Index of a column by logical name.
    pub fn position(&self, logical_name: &str) -> Option<usize> {
        self.index.get(logical_name).copied()
    }

    pub fn attribute(&self, logical_name: &str) -> Option<&Attribute> {
        self.position(logical_name).map(|i| &self.attributes[i])
    }

    /// Index of a column by its EDM property name (`_ownerid_value`, `msdyn_name`, ...).
    pub fn property_position(&self, property: &str) -> Option<usize> {
        self.property_index.get(property).copied()
    }

    pub fn primary_id_position(&self) -> usize {
        self.position(&self.primary_id)
            .expect("validated at import: the primary id is a column")
    }

    /// The `statecode` / `statuscode` pair when the table has a state model.
    pub fn state_model(&self) -> Option<StateModel<'_>> {
        let state = self
            .attributes
            .iter()
            .find(|a| a.attribute_type == AttributeType::State)?;
        let status = self
            .attributes
            .iter()
            .find(|a| a.attribute_type == AttributeType::Status)?;
        Some(StateModel {
            state,
            status,
            entity: self,
        })
    }

    /// The stored columns, in table order.
    pub fn stored_attributes(&self) -> impl Iterator<Item = (usize, &Attribute)> {
        self.attributes
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_stored())
    }

    /// Whether the table's page lists `message` (`Create`, `Update`, `Delete`, ...). A page
    /// that lists no messages (the SMS channel's internal tables) restricts none.
    pub fn supports_message(&self, message: &str) -> bool {
        self.messages.is_empty() || self.messages.iter().any(|m| m == message)
    }

    /// The fully qualified EDM type name.
    pub fn edm_type_name(&self) -> String {
        format!("Microsoft.Dynamics.CRM.{}", self.logical_name)
    }
}

/// The state/status model of a table (Dataverse's `statecode` and `statuscode`).
pub struct StateModel<'a> {
    pub state: &'a Attribute,
    pub status: &'a Attribute,
    entity: &'a Entity,
}

impl StateModel<'_> {
    /// Whether `status` is a status reason of `state`.
    pub fn is_valid_pair(&self, state: i32, status: i32) -> bool {
        self.status
            .option(status)
            .is_some_and(|o| o.state == Some(state))
    }

    pub fn default_status(&self, state: i32) -> Option<i32> {
        self.state.option(state).and_then(|o| o.default_status)
    }

    pub fn state_of_status(&self, status: i32) -> Option<i32> {
        self.status.option(status).and_then(|o| o.state)
    }

    /// The state with this invariant name (`Active`), compared case-insensitively.
    pub fn state_by_invariant_name(&self, name: &str) -> Option<i32> {
        self.state
            .options
            .iter()
            .find(|o| {
                o.invariant_name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .map(|o| o.value)
    }

    /// `msdyn_smsengagementctxState.Active`, the token Dataverse error messages use.
    pub fn state_token(&self, state: i32) -> String {
        let name = self
            .state
            .option(state)
            .and_then(|o| o.invariant_name.clone())
            .unwrap_or_else(|| state.to_string());
        format!("{}State.{}", self.entity.schema_name, name)
    }
}

/// An alternate key of a table: defined through the metadata API, kept in the store
/// (`smsctx_entitykeys`) and enforced there by a unique index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlternateKey {
    /// The table's logical name.
    pub entity: String,
    pub logical_name: String,
    pub schema_name: String,
    pub display_name: String,
    /// The key's columns (logical names), in key order.
    pub attributes: Vec<String>,
}

/// Every table smsctx serves.
#[derive(Debug)]
pub struct Catalog {
    entities: Vec<Arc<Entity>>,
    /// The alternate keys as last read from the store: the edge replaces them from the store
    /// before it answers a metadata request and after it creates or deletes a key.
    alternate_keys: std::sync::RwLock<Vec<AlternateKey>>,
    /// The audit and change-tracking settings as last read from the store: the edge replaces
    /// them before it answers a metadata request, a tracked list or an audit read, and after
    /// it changes them.
    tracking: std::sync::RwLock<tracking::TrackingSettings>,
}

impl Catalog {
    /// The catalog of the built-in pages.
    pub fn builtin() -> Result<Catalog, markdown::ImportError> {
        let entities = BUILTIN_PAGES
            .iter()
            .map(|(_, text)| markdown::import(text).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let catalog = Catalog {
            entities,
            alternate_keys: Default::default(),
            tracking: Default::default(),
        };
        catalog.check_targets()?;
        Ok(catalog)
    }

    /// The built-in pages plus the SMS channel's internal tables: the catalog the store is
    /// opened with (and `smsctx migrate` copies), while the Web API serves [`Catalog::builtin`].
    pub fn with_channels() -> Result<Catalog, markdown::ImportError> {
        let entities = BUILTIN_PAGES
            .iter()
            .chain(CHANNEL_PAGES)
            .map(|(_, text)| markdown::import(text).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let catalog = Catalog {
            entities,
            alternate_keys: Default::default(),
            tracking: Default::default(),
        };
        catalog.check_targets()?;
        Ok(catalog)
    }

    fn check_targets(&self) -> Result<(), markdown::ImportError> {
        for entity in &self.entities {
            for attribute in entity.stored_attributes().map(|(_, a)| a) {
                for target in &attribute.targets {
                    if self.entity(target).is_none() {
                        return Err(markdown::ImportError::UnknownTarget {
                            attribute: format!(
                                "{}.{}",
                                entity.logical_name, attribute.logical_name
                            ),
                            target: target.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    pub fn entities(&self) -> &[Arc<Entity>] {
        &self.entities
    }

    pub fn entity(&self, logical_name: &str) -> Option<&Arc<Entity>> {
        self.entities
            .iter()
            .find(|e| e.logical_name == logical_name)
    }

    pub fn by_entity_set(&self, entity_set: &str) -> Option<&Arc<Entity>> {
        self.entities
            .iter()
            .find(|e| e.entity_set_name == entity_set)
    }

    /// Replaces the alternate keys with the store's.
    /// This catalog with `extra` entities too, its alternate keys as they are now: what the
    /// service document and `$metadata` describe (the Web API also serves the SMS channel
    /// table, which its own handler answers).
    pub fn with_entities(&self, extra: &[Arc<Entity>]) -> Catalog {
        Catalog {
            entities: self.entities.iter().chain(extra).cloned().collect(),
            alternate_keys: std::sync::RwLock::new(
                self.alternate_keys
                    .read()
                    .map(|keys| keys.clone())
                    .unwrap_or_default(),
            ),
            tracking: std::sync::RwLock::new(self.tracking()),
        }
    }

    /// Replaces the audit and change-tracking settings with the store's.
    pub fn set_tracking(&self, settings: tracking::TrackingSettings) {
        if let Ok(mut current) = self.tracking.write() {
            *current = settings;
        }
    }

    /// The audit and change-tracking settings as last read.
    pub fn tracking(&self) -> tracking::TrackingSettings {
        self.tracking.read().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn set_alternate_keys(&self, keys: Vec<AlternateKey>) {
        if let Ok(mut current) = self.alternate_keys.write() {
            *current = keys;
        }
    }

    /// The alternate keys of `entity` (a logical name), in definition order.
    pub fn alternate_keys(&self, entity: &str) -> Vec<AlternateKey> {
        self.alternate_keys
            .read()
            .map(|keys| {
                keys.iter()
                    .filter(|k| k.entity == entity)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `name` is the primary id column of one of the tables.
    pub fn has_primary_id(&self, name: &str) -> bool {
        self.entities.iter().any(|e| e.primary_id == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::builtin().expect("the built-in pages import")
    }

    #[test]
    fn the_seed_table_has_its_37_columns_16_writable() {
        let catalog = catalog();
        let ctx = catalog.entity("msdyn_smsengagementctx").unwrap();
        assert_eq!(ctx.attributes.len(), 37);
        let writable = ctx
            .attributes
            .iter()
            .filter(|a| a.valid_for_create || a.valid_for_update)
            .count();
        assert_eq!(writable, 16);
        assert_eq!(ctx.entity_set_name, "msdyn_smsengagementctxes");
        assert_eq!(ctx.primary_id, "msdyn_smsengagementctxid");
        assert_eq!(ctx.primary_name, "msdyn_name");
        assert_eq!(ctx.ownership, OwnershipType::UserOwned);
        assert_eq!(ctx.messages.len(), 13);
        assert_eq!(
            ctx.many_to_one,
            ["msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid"]
        );
    }

    #[test]
    fn the_seed_columns_carry_their_limits_and_options() {
        let catalog = catalog();
        let ctx = catalog.entity("msdyn_smsengagementctx").unwrap();
        let name = ctx.attribute("msdyn_name").unwrap();
        assert_eq!(name.max_length, Some(100));
        assert_eq!(name.required_level, RequiredLevel::ApplicationRequired);
        let provider = ctx.attribute("msdyn_smsprovider").unwrap();
        assert_eq!(provider.option(192350000).unwrap().label, "TeleSign");
        assert_eq!(provider.option(192350001).unwrap().label, "Twilio");
        let tz = ctx.attribute("utcconversiontimezonecode").unwrap();
        assert_eq!((tz.min_value, tz.max_value), (Some(-1), Some(2147483647)));
        assert!(tz.valid_for_create && tz.valid_for_update);
        let state = ctx.attribute("statecode").unwrap();
        assert!(!state.valid_for_create && state.valid_for_update);
        let import = ctx.attribute("importsequencenumber").unwrap();
        assert!(import.valid_for_create && !import.valid_for_update);
        let created = ctx.attribute("overriddencreatedon").unwrap();
        assert_eq!(created.format.as_deref(), Some("DateOnly"));
        assert_eq!(created.datetime_behavior.as_deref(), Some("UserLocal"));
        let owner = ctx.attribute("ownerid").unwrap();
        assert_eq!(owner.targets, vec!["systemuser", "team"]);
        assert_eq!(
            ctx.attribute("owneridyominame")
                .unwrap()
                .attribute_of
                .as_deref(),
            Some("ownerid")
        );
        assert_eq!(
            ctx.attribute("msdyn_liveworkitemidname")
                .unwrap()
                .attribute_of
                .as_deref(),
            Some("msdyn_liveworkitemid")
        );
        assert_eq!(ctx.stored_attributes().count(), 26);
    }

    #[test]
    fn the_state_model_follows_the_seed() {
        let catalog = catalog();
        let ctx = catalog.entity("msdyn_smsengagementctx").unwrap();
        let model = ctx.state_model().unwrap();
        assert!(model.is_valid_pair(0, 1));
        assert!(model.is_valid_pair(1, 2));
        assert!(!model.is_valid_pair(0, 2));
        assert!(!model.is_valid_pair(1, 1));
        assert_eq!(model.default_status(1), Some(2));
        assert_eq!(model.state_of_status(1), Some(0));
        assert_eq!(model.state_by_invariant_name("inactive"), Some(1));
        assert_eq!(model.state_token(0), "msdyn_smsengagementctxState.Active");
    }

    #[test]
    fn the_conversation_table_has_its_four_states() {
        let catalog = catalog();
        let conv = catalog.by_entity_set("msdyn_ocliveworkitems").unwrap();
        assert_eq!(conv.primary_id, "activityid");
        let model = conv.state_model().unwrap();
        assert_eq!(model.state.options.len(), 4);
        assert!(model.is_valid_pair(1, 4));
        assert!(model.is_valid_pair(0, 3));
        assert_eq!(model.default_status(2), Some(6));
    }

    #[test]
    fn lookups_are_exposed_as_value_properties() {
        let catalog = catalog();
        let ctx = catalog.entity("msdyn_smsengagementctx").unwrap();
        let pos = ctx
            .property_position("_msdyn_liveworkitemid_value")
            .unwrap();
        assert_eq!(ctx.attributes[pos].logical_name, "msdyn_liveworkitemid");
        assert!(ctx.property_position("msdyn_liveworkitemid").is_none());
        assert!(ctx.property_position("owneridtype").is_none());
        assert!(ctx.property_position("owneridname").is_none());
    }
}
