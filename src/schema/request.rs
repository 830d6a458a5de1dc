//! Every schema service under one parse: the first path segment picks `EntityDefinitions`,
//! `RelationshipDefinitions`, `GlobalOptionSetDefinitions`, `RetrieveMetadataChanges` or the
//! message catalog (`sdkmessages`, `sdkmessagefilters`).

use serde_json::{json, Value};
use uuid::Uuid;

use super::changes::{parse_metadata_changes, MetadataChangesRequest};
use super::definitions::{parse_definitions_path, split_key, DefinitionsRequest};
use super::messages::{parse_messages_path, MessageSet, MessagesRequest};
use super::options::QueryOptions;
use super::relationships::{parse_relationships_path, RelationshipsRequest};
use super::SchemaError;
use crate::metadata::Catalog;

/// The names of the schema services, as first path segments.
const SERVICES: &[&str] = &[
    "EntityDefinitions",
    "RelationshipDefinitions",
    "GlobalOptionSetDefinitions",
    "RetrieveMetadataChanges",
    "Microsoft.Dynamics.CRM.RetrieveMetadataChanges",
    "sdkmessages",
    "sdkmessagefilters",
];

/// Whether a first path segment (`EntityDefinitions(LogicalName='x')`) names a schema service.
pub fn serves(segment: &str) -> bool {
    let name = segment.split_once('(').map_or(segment, |(name, _)| name);
    SERVICES.contains(&name)
}

/// A parsed schema request, not yet resolved against the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaRequest {
    Definitions(DefinitionsRequest),
    Relationships(RelationshipsRequest),
    /// `GlobalOptionSetDefinitions[(key)]`: every option set of the catalog is local to its
    /// column, so the collection is empty and no key names one.
    GlobalOptionSets {
        key: Option<String>,
    },
    MetadataChanges(MetadataChangesRequest),
    Messages(MessagesRequest),
}

/// Parses the path below the service root and the query options.
pub fn parse_schema_path(
    segments: &[String],
    query: &[(String, String)],
) -> Result<SchemaRequest, SchemaError> {
    let Some((first, rest)) = segments.split_first() else {
        return Err(SchemaError::UnknownSegment(String::new()));
    };
    let (name, key) = split_key(first)?;
    match name {
        "EntityDefinitions" => {
            parse_definitions_path(segments, query).map(SchemaRequest::Definitions)
        }
        "RelationshipDefinitions" => {
            parse_relationships_path(key, rest, query).map(SchemaRequest::Relationships)
        }
        "GlobalOptionSetDefinitions" => {
            if let Some(extra) = rest.first() {
                return Err(SchemaError::UnknownSegment(extra.clone()));
            }
            let options = QueryOptions::parse(query)?;
            if options.filter.is_some() || !options.expand.is_empty() {
                let option = if options.filter.is_some() {
                    "$filter"
                } else {
                    "$expand"
                };
                return Err(super::options::unsupported(option));
            }
            Ok(SchemaRequest::GlobalOptionSets {
                key: key.map(str::to_string),
            })
        }
        "RetrieveMetadataChanges" | "Microsoft.Dynamics.CRM.RetrieveMetadataChanges" => {
            if let Some(extra) = rest.first() {
                return Err(SchemaError::UnknownSegment(extra.clone()));
            }
            parse_metadata_changes(key.unwrap_or_default(), query)
                .map(SchemaRequest::MetadataChanges)
        }
        other => match MessageSet::parse(other) {
            Some(set) => parse_messages_path(set, key, rest, query).map(SchemaRequest::Messages),
            None => Err(SchemaError::UnknownSegment(other.to_string())),
        },
    }
}

impl SchemaRequest {
    /// Builds the response body; `root` is the service root with its trailing slash.
    pub fn respond(&self, catalog: &Catalog, root: &str) -> Result<Value, SchemaError> {
        match self {
            SchemaRequest::Definitions(request) => request.respond(catalog, root),
            SchemaRequest::Relationships(request) => request.respond(catalog, root),
            SchemaRequest::GlobalOptionSets { key: None } => Ok(json!({
                "@odata.context": format!("{root}$metadata#GlobalOptionSetDefinitions"),
                "value": [],
            })),
            SchemaRequest::GlobalOptionSets { key: Some(key) } => {
                let name = key
                    .strip_prefix("Name='")
                    .and_then(|k| k.strip_suffix('\''))
                    .map(str::to_string)
                    .or_else(|| Uuid::parse_str(key).ok().map(|id| id.to_string()))
                    .ok_or_else(|| {
                        SchemaError::BadQuery(format!(
                            "The key '{key}' of segment 'GlobalOptionSetDefinitions' is not valid: use Name='name' or a MetadataId."
                        ))
                    })?;
                Err(SchemaError::UnknownOptionSet(name))
            }
            SchemaRequest::MetadataChanges(request) => request.respond(catalog, root),
            SchemaRequest::Messages(request) => request.respond(catalog, root),
        }
    }
}
