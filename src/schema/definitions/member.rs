//! The sub-collections of a table besides `Attributes`: `Keys` (`EntityKeyMetadata`) and the
//! three relationship collections, as paths (`EntityDefinitions(...)/Keys[(key)]`) and as
//! `$expand` items, with `$select` and `$filter`.

use serde_json::{json, Map, Value};

use super::{collection, project, MetadataKey};
use crate::metadata::{Catalog, Entity};
use crate::schema::filter::{Filter, Shape};
use crate::schema::relationships::{self, Cardinality};
use crate::schema::{keys, SchemaError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Keys,
    /// Relationships where the table is the referencing (many) side.
    ManyToOne,
    /// Relationships where the table is the referenced (one) side.
    OneToMany,
    ManyToMany,
}

/// `$select` and `$filter` applied to the objects of a sub-collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberQuery {
    pub select: Option<Vec<String>>,
    pub filter: Option<Filter>,
}

impl Member {
    pub const ALL: [Member; 4] = [
        Member::Keys,
        Member::ManyToOne,
        Member::OneToMany,
        Member::ManyToMany,
    ];

    /// The navigation property of `EntityMetadata`.
    pub fn name(self) -> &'static str {
        match self {
            Member::Keys => "Keys",
            Member::ManyToOne => "ManyToOneRelationships",
            Member::OneToMany => "OneToManyRelationships",
            Member::ManyToMany => "ManyToManyRelationships",
        }
    }

    pub fn parse(name: &str) -> Option<Member> {
        Member::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The metadata type of the objects, for checking `$select` and `$filter`.
    pub fn shape(self) -> Shape<'static> {
        match self {
            Member::Keys => keys::shape(),
            Member::ManyToOne | Member::OneToMany => Cardinality::OneToMany.shape(),
            Member::ManyToMany => Cardinality::ManyToMany.shape(),
        }
    }

    /// Checks the options of a path or an expansion against the shape.
    pub fn query(
        self,
        select: Option<Vec<String>>,
        filter: Option<&str>,
    ) -> Result<MemberQuery, SchemaError> {
        let filter = self.shape().options(select.as_deref(), filter)?;
        Ok(MemberQuery { select, filter })
    }

    /// Every object of the collection, whole and in order.
    fn objects(self, catalog: &Catalog, entity: &Entity) -> Vec<Map<String, Value>> {
        let table = entity.logical_name.as_str();
        match self {
            Member::Keys => keys::entity_keys(catalog, entity)
                .iter()
                .map(|key| keys::key_object(entity, key))
                .collect(),
            Member::ManyToOne => relationships::all(catalog)
                .into_iter()
                .filter(|r| r.referencing() == Some(table))
                .map(|r| r.object(false))
                .collect(),
            Member::OneToMany => relationships::all(catalog)
                .into_iter()
                .filter(|r| r.referenced() == Some(table))
                .map(|r| r.object(false))
                .collect(),
            Member::ManyToMany => relationships::all(catalog)
                .into_iter()
                .filter(|r| r.joins(table))
                .map(|r| r.object(false))
                .collect(),
        }
    }

    /// The collection as the query shapes it (the value of an expansion).
    pub fn items(self, catalog: &Catalog, entity: &Entity, query: &MemberQuery) -> Vec<Value> {
        collection(
            self.objects(catalog, entity),
            query.filter.as_ref(),
            query.select.as_deref(),
            "MetadataId",
        )
    }

    /// `GET EntityDefinitions(...)/Keys` (or one of them by key).
    pub fn respond(
        self,
        catalog: &Catalog,
        entity: &Entity,
        root: &str,
        key: Option<&MetadataKey>,
        query: &MemberQuery,
    ) -> Result<Value, SchemaError> {
        let context = format!(
            "{root}$metadata#EntityDefinitions('{}')/{}{}",
            entity.logical_name,
            self.name(),
            bracketed(query)
        );
        let Some(key) = key else {
            return Ok(json!({
                "@odata.context": context,
                "value": self.items(catalog, entity, query),
            }));
        };
        let found = self
            .objects(catalog, entity)
            .into_iter()
            .find(|object| matches_key(object, key))
            .ok_or_else(|| SchemaError::UnknownMember {
                collection: self.name(),
                key: match key {
                    MetadataKey::LogicalName(name) => name.clone(),
                    MetadataKey::MetadataId(id) => id.to_string(),
                },
            })?;
        let mut out = Map::new();
        out.insert("@odata.context".into(), json!(format!("{context}/$entity")));
        out.extend(project(found, query.select.as_deref(), "MetadataId"));
        Ok(Value::Object(out))
    }
}

/// `(LogicalName='x')` names a key by its logical name and a relationship by its schema name.
fn matches_key(object: &Map<String, Value>, key: &MetadataKey) -> bool {
    match key {
        MetadataKey::MetadataId(id) => object["MetadataId"] == json!(id),
        MetadataKey::LogicalName(name) => ["LogicalName", "SchemaName"].iter().any(|p| {
            object
                .get(*p)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(name))
        }),
    }
}

/// The selection of an expansion for a context URL (`SchemaName,KeyAttributes`).
pub(super) fn member_projection(query: &MemberQuery) -> String {
    query.select.as_deref().unwrap_or_default().join(",")
}

fn bracketed(query: &MemberQuery) -> String {
    match &query.select {
        Some(select) => format!("({})", select.join(",")),
        None => String::new(),
    }
}
