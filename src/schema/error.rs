//! What a schema request can get wrong, in Dataverse's words; the edge chooses the codes.

/// What a schema request can get wrong. At the edge: `UnknownEntity` and `UnknownAttribute`
/// are 400 `0x80041102` / `0x80041103` (the metadata cache's own errors; statuses unverified
/// for the Web API), `UnknownProperty` and `BadQuery` are 400 `0x80060888` (the code Dataverse
/// gives OData's "Could not find a property named ..."), `UnknownCast` and `UnknownSegment` are
/// 404 `0x8006088a`, and the other unknown objects 404 `0x80040217`.
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
    #[error("The {collection} with key '{key}' was not found.")]
    UnknownMember {
        collection: &'static str,
        key: String,
    },
    #[error("Could not find a relationship with SchemaName or MetadataId = '{0}'.")]
    UnknownRelationship(String),
    #[error("Could not find an option set with Name or MetadataId = '{0}'.")]
    UnknownOptionSet(String),
    #[error("{table} With Id = {id} Does Not Exist")]
    UnknownRecord { table: &'static str, id: uuid::Uuid },
    #[error("{0}")]
    BadQuery(String),
    /// A metadata update (`PUT EntityDefinitions(...)`) that changes what cannot change.
    #[error("The property '{property}' of '{owner}' cannot be changed{reason}.")]
    CannotChange {
        property: String,
        owner: String,
        /// Why, with its leading separator (`: ...`), or empty.
        reason: String,
    },
    /// A metadata update whose body is not an object of typed properties.
    #[error("{0}")]
    BadPayload(String),
}
