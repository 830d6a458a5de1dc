//! Parsing a request against the metadata: the resource path, the headers that shape a
//! message (`Prefer`, `If-Match`), query options and JSON bodies.
//!
//! **Architecture invariant:** parsing does no I/O. Everything it returns is typed and bound to
//! the metadata (column positions, typed [`Value`](crate::store::Value)s); whether a column may
//! be written by a given message is the executor's decision, not the parser's.

pub mod body;
pub mod headers;
pub mod key;
pub mod path;
pub mod select;

use crate::metadata::Entity;

/// What the parser refuses. Each variant maps to one Dataverse error at the HTTP edge.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("Resource not found for the segment '{0}'.")]
    ResourceNotFound(String),
    #[error("No HTTP resource was found that matches the request URI '{0}'.")]
    NoResource(String),
    #[error("{0}")]
    BadKey(String),
    #[error("Invalid property '{property}' was found in entity '{entity_type}'.")]
    InvalidProperty {
        property: String,
        entity_type: String,
    },
    #[error("Could not find a property named '{property}' on type '{entity_type}'.")]
    UnknownProperty {
        property: String,
        entity_type: String,
    },
    #[error("An undeclared property '{0}' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values.")]
    UndeclaredProperty(String),
    #[error("CRM do not support direct update of Entity Reference properties, Use Navigation properties instead.")]
    LookupValueProperty(String),
    #[error("Error identified in Payload provided by the user for Entity :'{entity_set}', For more information on this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ---->  InnerException : Microsoft.OData.ODataException: {detail}")]
    Payload { entity_set: String, detail: String },
    #[error("Invalid url value '{value}' for lookup property '{property}'.")]
    BadBind { value: String, property: String },
    #[error("A validation error occurred.  The length of the '{attribute}' attribute of the '{entity}' entity exceeded the maximum allowed length of '{max}'.")]
    TooLong {
        attribute: String,
        entity: String,
        max: usize,
    },
    #[error("A validation error occurred. The value {value} of '{attribute}' on record of type '{entity}' is outside the valid range. Accepted Values: {accepted}")]
    OptionOutOfRange {
        value: i64,
        attribute: String,
        entity: String,
        accepted: String,
    },
    #[error("{value} is not a valid {what} for {entity}.")]
    InvalidStateValue {
        value: i64,
        what: &'static str,
        entity: String,
    },
    #[error("A validation error occurred. The value {value} of '{attribute}' on record of type '{entity}' is outside the valid range of {min} to {max}.")]
    NumberOutOfRange {
        value: String,
        attribute: String,
        entity: String,
        min: i64,
        max: i64,
    },
    #[error("The value of '{0}' is required and cannot be set to null.")]
    RequiredNull(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    BadQuery(String),
    #[error("The content type '{0}' is not supported. Send the body as 'application/json'.")]
    UnsupportedMediaType(String),
}

impl ParseError {
    pub(crate) fn invalid_property(entity: &Entity, property: &str) -> ParseError {
        ParseError::InvalidProperty {
            property: property.to_string(),
            entity_type: entity.edm_type_name(),
        }
    }
}
