//! The query options of the `EntityDefinitions` requests, checked against the metadata type
//! each returns and typed into [`EntityQuery`], [`AttributeQuery`] and [`MemberQuery`].

use super::attribute::{
    attribute_properties, attribute_type_name, check_attribute_query, AttributeKind,
};
use super::entity::{entity_shape, ENTITY_NAVIGATIONS};
use super::member::{Member, MemberQuery};
use super::{AttributeQuery, EntityQuery, OptionSetQuery};
use crate::schema::filter::{Filter, Shape};
use crate::schema::options::{Expansion, QueryOptions};
use crate::schema::{SchemaError, NAMESPACE};

/// The options of table objects: `$select` and `$filter` over `EntityMetadata`, `$expand` of
/// `Attributes` and the other sub-collections.
pub(super) fn entity_query(options: &QueryOptions) -> Result<EntityQuery, SchemaError> {
    let shape = entity_shape();
    for property in options.select.iter().flatten() {
        if ENTITY_NAVIGATIONS.contains(&property.as_str()) {
            return Err(SchemaError::BadQuery(format!(
                "The navigation property '{property}' is selected with $expand, not $select."
            )));
        }
        shape.check(property)?;
    }
    let mut query = EntityQuery {
        select: options.select.clone(),
        filter: parse_filter(options.filter.as_deref(), &shape)?,
        ..EntityQuery::default()
    };
    for item in &options.expand {
        if item.name == "Attributes" {
            query.attributes = Some(attribute_query(
                item.select.clone(),
                item.filter.as_deref(),
                &item.expand,
                None,
            )?);
        } else if let Some(member) = Member::parse(&item.name) {
            if let Some(nested) = item.expand.first() {
                return Err(SchemaError::UnknownProperty {
                    property: nested.name.clone(),
                    type_name: member.shape().type_name.to_string(),
                });
            }
            query.members.push((
                member,
                member.query(item.select.clone(), item.filter.as_deref())?,
            ));
        } else {
            return Err(SchemaError::UnknownProperty {
                property: item.name.clone(),
                type_name: format!("{NAMESPACE}.EntityMetadata"),
            });
        }
    }
    Ok(query)
}

/// The options of a sub-collection path (`.../Keys`): no `$expand`.
pub(super) fn member_query(
    member: Member,
    options: &QueryOptions,
) -> Result<MemberQuery, SchemaError> {
    if let Some(item) = options.expand.first() {
        return Err(SchemaError::UnknownProperty {
            property: item.name.clone(),
            type_name: member.shape().type_name.to_string(),
        });
    }
    member.query(options.select.clone(), options.filter.as_deref())
}

fn parse_filter(text: Option<&str>, shape: &Shape<'_>) -> Result<Option<Filter>, SchemaError> {
    text.map(|t| Filter::parse(t, shape)).transpose()
}

/// The options of attribute objects: `OptionSet` and `GlobalOptionSet` may be expanded (with
/// a `$select`), and only after a cast to an option-set type.
pub(super) fn attribute_query(
    select: Option<Vec<String>>,
    filter: Option<&str>,
    expand: &[Expansion],
    cast: Option<AttributeKind>,
) -> Result<AttributeQuery, SchemaError> {
    let type_name = attribute_type_name(cast);
    let properties = attribute_properties(cast);
    let shape = Shape {
        type_name: &type_name,
        properties: &properties,
        navigations: &[],
    };
    let mut query = AttributeQuery {
        select,
        filter: parse_filter(filter, &shape)?,
        ..AttributeQuery::default()
    };
    for item in expand {
        let slot = match item.name.as_str() {
            "OptionSet" => &mut query.option_set,
            "GlobalOptionSet" => &mut query.global_option_set,
            _ => {
                return Err(SchemaError::UnknownProperty {
                    property: item.name.clone(),
                    type_name,
                })
            }
        };
        if let Some(nested) = item.expand.first() {
            return Err(SchemaError::UnknownProperty {
                property: nested.name.clone(),
                type_name: format!("{NAMESPACE}.OptionSetMetadata"),
            });
        }
        if item.filter.is_some() {
            return Err(SchemaError::BadQuery(format!(
                "$filter is not supported inside the single-valued '{}'.",
                item.name
            )));
        }
        *slot = Some(OptionSetQuery {
            select: item.select.clone(),
        });
    }
    check_attribute_query(cast, &query)?;
    Ok(query)
}
