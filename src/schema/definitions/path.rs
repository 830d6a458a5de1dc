//! The path below the service root and its query options, read into a [`DefinitionsRequest`].

use uuid::Uuid;

use super::attribute::AttributeKind;
use super::member::Member;
use super::options::{attribute_query, entity_query, member_query};
use super::{DefinitionsRequest, MetadataKey};
use crate::schema::options::QueryOptions;
use crate::schema::SchemaError;

/// Parses the path below the service root (`EntityDefinitions(...)`, `Attributes(...)`, a cast,
/// `Keys`, the relationship collections) and the query options into a request. `$select`,
/// `$filter` (on collections), `$expand` and parameter aliases (`@p`) are accepted; other system
/// query options are refused.
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
                query: entity_query(&options)?,
            }),
            Some(next) => Err(SchemaError::UnknownSegment(next.clone())),
        };
    };
    let Some((collection, tail)) = rest.split_first() else {
        return Ok(DefinitionsRequest::Entity {
            key,
            query: entity_query(&options.single()?)?,
        });
    };
    let (segment, member_key) = split_key(collection)?;
    if let Some(member) = Member::parse(segment) {
        if let Some(extra) = tail.first() {
            return Err(SchemaError::UnknownSegment(extra.clone()));
        }
        let member_key = member_key.map(|k| parse_key(segment, k)).transpose()?;
        let options = if member_key.is_some() {
            options.single()?
        } else {
            options
        };
        return Ok(DefinitionsRequest::Members {
            entity: key,
            member,
            key: member_key,
            query: member_query(member, &options)?,
        });
    }
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
    let options = if member_key.is_some() {
        options.single()?
    } else {
        options
    };
    let query = attribute_query(
        options.select.clone(),
        options.filter.as_deref(),
        &options.expand,
        cast,
    )?;
    Ok(match member_key {
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
pub(crate) fn split_key(segment: &str) -> Result<(&str, Option<&str>), SchemaError> {
    match segment.split_once('(') {
        None => Ok((segment, None)),
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(key) => Ok((name, Some(key))),
            None => Err(SchemaError::UnknownSegment(segment.to_string())),
        },
    }
}

/// `LogicalName='x'` (quotes doubled inside) or a `MetadataId` Guid.
pub(super) fn parse_key(segment: &str, key: &str) -> Result<MetadataKey, SchemaError> {
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
