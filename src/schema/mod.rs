//! Schema discovery: the `$metadata` CSDL document ([`csdl`]) and the metadata Web API, all
//! computed from the [`Catalog`]: `EntityDefinitions` ([`definitions`], with [`keys`] and
//! [`relationships`]), `RelationshipDefinitions`, `GlobalOptionSetDefinitions`,
//! `RetrieveMetadataChanges` ([`changes`]) and the message catalog ([`messages`]); [`request`]
//! routes a path to them and [`filter`] is their `$filter`.
//!
//! The two views share one model of the relationships between tables, built here: every lookup
//! column becomes a single-valued navigation property on its table and a collection-valued
//! partner on the table it points at. Table and column identities (`MetadataId`) are UUID v5
//! values derived from the logical names, so they are stable across restarts and servers.
//!
//! **Architecture invariant:** this module does no I/O and knows nothing of HTTP; it returns
//! strings, JSON values and typed errors for the edge to send.

pub mod changes;
pub mod csdl;
pub mod definitions;
mod error;
pub mod filter;
pub mod keys;
pub mod messages;
mod options;
pub mod relationships;
mod request;

pub use csdl::csdl;
pub use definitions::{
    attribute_definition, attribute_update, attributes_of_kind, entities_definition,
    entity_definition, entity_update, parse_definitions_path, resolve_attribute, resolve_entity,
    AttributeKind, AttributeQuery, DefinitionsRequest, MetadataKey, OptionSetQuery,
};
pub use error::SchemaError;
pub use request::{parse_schema_path, serves, SchemaRequest};

use uuid::Uuid;

use crate::metadata::{system, Attribute, AttributeType, Catalog, Entity};

/// The namespace of every schema element, and its alias.
pub const NAMESPACE: &str = "Microsoft.Dynamics.CRM";
pub const ALIAS: &str = "mscrm";

/// The abstract entity type every table derives from.
pub const BASE_ENTITY: &str = "crmbaseentity";
/// The abstract entity type users and teams derive from; its key is `ownerid`.
pub const PRINCIPAL: &str = "principal";
pub const PRINCIPAL_KEY: &str = system::OWNER_ID;

/// The namespace of the UUID v5 metadata ids (an arbitrary constant: changing it changes every
/// `MetadataId` smsctx reports).
const METADATA_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5d0c_6a43_9e1b_4f2a_b7c4_1f3e_8a9d_2c71);

/// The stable `MetadataId` of a schema element, from its kind and names
/// (`metadata_id(&["entity", "msdyn_smsengagementctx"])`).
pub fn metadata_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&METADATA_ID_NAMESPACE, parts.join("/").as_bytes())
}

pub fn entity_metadata_id(entity: &Entity) -> Uuid {
    metadata_id(&["entity", &entity.logical_name])
}

pub fn attribute_metadata_id(entity: &Entity, attribute: &Attribute) -> Uuid {
    metadata_id(&["attribute", &entity.logical_name, &attribute.logical_name])
}

/// Whether a table's entity type derives from `principal` (users and teams) rather than
/// directly from `crmbaseentity`.
pub fn is_principal(entity: &Entity) -> bool {
    entity.logical_name == system::SYSTEM_USER || entity.logical_name == system::TEAM
}

/// What a single-valued navigation property points at.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Entity(&'a Entity),
    /// The abstract `principal` type: the target of an owner column.
    Principal,
}

impl Target<'_> {
    /// The unqualified entity type name (`systemuser`, `principal`).
    pub fn type_name(&self) -> &str {
        match self {
            Target::Entity(e) => &e.logical_name,
            Target::Principal => PRINCIPAL,
        }
    }

    /// The key property the lookup value refers to.
    pub fn key(&self) -> &str {
        match self {
            Target::Entity(e) => &e.primary_id,
            Target::Principal => PRINCIPAL_KEY,
        }
    }

    pub fn entity_set(&self) -> Option<&str> {
        match self {
            Target::Entity(e) => Some(&e.entity_set_name),
            Target::Principal => None,
        }
    }
}

/// A single-valued navigation property: one lookup column seen from its table.
#[derive(Debug, Clone)]
pub struct Navigation<'a> {
    /// The navigation property name: the lookup's logical name, or `{lookup}_{target}` for
    /// each target of a multi-table lookup that is not an owner.
    pub name: String,
    pub attribute: &'a Attribute,
    pub target: Target<'a>,
    /// The collection-valued navigation property on the target that mirrors this one.
    pub partner: String,
}

impl Navigation<'_> {
    /// The lookup property that holds the referenced key (`_ownerid_value`).
    pub fn property(&self) -> &str {
        self.attribute.property_name()
    }
}

/// The single-valued navigation properties of a table, in column order. Targets missing from
/// the catalog are skipped (the catalog refuses them at import, so none are).
pub fn navigations<'a>(catalog: &'a Catalog, entity: &'a Entity) -> Vec<Navigation<'a>> {
    let mut out = Vec::new();
    for attribute in entity.attributes.iter().filter(|a| a.is_edm_property()) {
        match attribute.attribute_type {
            AttributeType::Owner => out.push(Navigation {
                name: attribute.logical_name.clone(),
                attribute,
                target: Target::Principal,
                partner: partner_name(entity, attribute, PRINCIPAL),
            }),
            AttributeType::Lookup => {
                let several = attribute.targets.len() > 1;
                for target in &attribute.targets {
                    let Some(target_entity) = catalog.entity(target) else {
                        continue;
                    };
                    let name = if several {
                        format!("{}_{}", attribute.logical_name, target)
                    } else {
                        attribute.logical_name.clone()
                    };
                    out.push(Navigation {
                        name,
                        attribute,
                        target: Target::Entity(target_entity),
                        partner: partner_name(entity, attribute, target),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// A collection-valued navigation property of `entity`: the table whose lookup mirrors it and
/// that lookup's column position. The partners of owner columns are declared on `principal`
/// and so belong to users and teams.
pub fn collection_navigation(
    catalog: &Catalog,
    entity: &Entity,
    name: &str,
) -> Option<(std::sync::Arc<Entity>, usize)> {
    catalog.entities().iter().find_map(|source| {
        let nav = navigations(catalog, source).into_iter().find(|n| {
            n.partner == name
                && match n.target {
                    Target::Entity(target) => target.logical_name == entity.logical_name,
                    Target::Principal => is_principal(entity),
                }
        })?;
        let index = source.position(&nav.attribute.logical_name)?;
        Some((std::sync::Arc::clone(source), index))
    })
}

/// The partner (collection-valued) navigation property name of a lookup.
///
/// A relationship listed on the table's page wins when its schema name names both tables and
/// ends with the column name, with or without its publisher prefix
/// (`msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid`). The system columns
/// follow Dataverse's naming (`owner_x`, `lk_x_createdby`, `user_x`, `team_x`,
/// `business_unit_x`); any other lookup gets `{target}_{table}_{column}`.
pub fn partner_name(entity: &Entity, attribute: &Attribute, target: &str) -> String {
    let table = &entity.logical_name;
    let column = attribute.logical_name.as_str();
    let pair = format!("{target}_{table}_");
    let unprefixed = column.split_once('_').map(|(_, rest)| rest);
    let listed = entity.many_to_one.iter().find(|r| {
        r.contains(&pair)
            && (r.ends_with(&format!("_{column}"))
                || unprefixed.is_some_and(|u| r.ends_with(&format!("_{u}"))))
    });
    if let Some(name) = listed {
        return name.clone();
    }
    match column {
        system::OWNER_ID => format!("owner_{table}"),
        system::CREATED_BY
        | system::MODIFIED_BY
        | system::CREATED_ON_BEHALF_BY
        | system::MODIFIED_ON_BEHALF_BY => format!("lk_{table}_{column}"),
        system::OWNING_USER => format!("user_{table}"),
        system::OWNING_TEAM => format!("team_{table}"),
        system::OWNING_BUSINESS_UNIT => format!("business_unit_{table}"),
        _ => format!("{target}_{table}_{column}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::builtin().expect("the built-in pages import")
    }

    #[test]
    fn the_seed_lookups_become_navigations_with_their_partners() {
        let catalog = catalog();
        let ctx = catalog.entity("msdyn_smsengagementctx").unwrap();
        let navs: Vec<(String, String, String, String)> = navigations(&catalog, ctx)
            .into_iter()
            .map(|n| {
                (
                    n.name.clone(),
                    n.target.type_name().to_string(),
                    n.target.key().to_string(),
                    n.partner.clone(),
                )
            })
            .collect();
        let expect = |name: &str, target: &str, key: &str, partner: &str| {
            let row = (
                name.to_string(),
                target.to_string(),
                key.to_string(),
                partner.to_string(),
            );
            assert!(navs.contains(&row), "{row:?} not in {navs:#?}");
        };
        expect(
            "msdyn_liveworkitemid",
            "msdyn_ocliveworkitem",
            "activityid",
            "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid",
        );
        expect(
            "ownerid",
            "principal",
            "ownerid",
            "owner_msdyn_smsengagementctx",
        );
        expect(
            "createdby",
            "systemuser",
            "systemuserid",
            "lk_msdyn_smsengagementctx_createdby",
        );
        expect(
            "owninguser",
            "systemuser",
            "systemuserid",
            "user_msdyn_smsengagementctx",
        );
        expect(
            "owningteam",
            "team",
            "teamid",
            "team_msdyn_smsengagementctx",
        );
        expect(
            "owningbusinessunit",
            "businessunit",
            "businessunitid",
            "business_unit_msdyn_smsengagementctx",
        );
        assert_eq!(navs.len(), 9);
    }

    #[test]
    fn metadata_ids_are_stable_and_distinct() {
        let a = metadata_id(&["entity", "msdyn_smsengagementctx"]);
        assert_eq!(a, metadata_id(&["entity", "msdyn_smsengagementctx"]));
        assert_ne!(a, metadata_id(&["entity", "team"]));
        assert_eq!(a.get_version_num(), 5);
    }
}
