//! JSON request bodies: each property checked against its column's type and limits.
//!
//! The result is a [`Payload`] of typed values by column position. Lookups arrive as
//! `x@odata.bind` references and become [`Bind`]s (the executor checks that the target exists).
//! Instance annotations on known properties are ignored, as Dataverse does.

use std::sync::Arc;

use serde_json::Value as Json;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

use super::path::{parse_guid, parse_reference};
use super::ParseError;
use crate::metadata::{Attribute, AttributeType, Catalog, Entity};
use crate::store::Value;

/// A lookup set through `x@odata.bind`.
#[derive(Debug, Clone)]
pub struct Bind {
    pub position: usize,
    /// `None` when the lookup is cleared with `null`.
    pub target: Option<(Arc<Entity>, Uuid)>,
}

/// The typed content of a create or update body.
#[derive(Debug, Clone, Default)]
pub struct Payload {
    pub values: Vec<(usize, Value)>,
    pub binds: Vec<Bind>,
}

impl Payload {
    pub fn value(&self, position: usize) -> Option<&Value> {
        self.values
            .iter()
            .find(|(p, _)| *p == position)
            .map(|(_, v)| v)
    }

    pub fn remove(&mut self, position: usize) -> Option<Value> {
        let index = self.values.iter().position(|(p, _)| *p == position)?;
        Some(self.values.remove(index).1)
    }
}

/// The earliest date Dataverse stores.
pub const MIN_DATETIME: i64 = -6_847_804_800; // 1753-01-01T00:00:00Z

/// Checks that a body is JSON by its `Content-Type` (a missing header is accepted).
pub fn check_content_type(content_type: Option<&str>) -> Result<(), ParseError> {
    match content_type {
        None => Ok(()),
        Some(ct) => {
            let media = ct.split(';').next().unwrap_or_default().trim();
            if media.eq_ignore_ascii_case("application/json") {
                Ok(())
            } else {
                Err(ParseError::UnsupportedMediaType(ct.to_string()))
            }
        }
    }
}

/// Parses the raw body into a JSON object.
pub fn parse_object(
    entity: &Entity,
    bytes: &[u8],
) -> Result<serde_json::Map<String, Json>, ParseError> {
    let payload_error = |detail: String| ParseError::Payload {
        entity_set: entity.entity_set_name.clone(),
        detail,
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(payload_error(
            "The request body is empty; a JSON object was expected.".into(),
        ));
    }
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(_) => Err(payload_error(
            "A JSON object was expected as the request body.".into(),
        )),
        Err(e) => Err(payload_error(format!("Invalid JSON. {e}"))),
    }
}

/// Parses a create or update body of `entity`.
pub fn parse_payload(
    catalog: &Catalog,
    entity: &Entity,
    object: &serde_json::Map<String, Json>,
) -> Result<Payload, ParseError> {
    let mut payload = Payload::default();
    for (key, json) in object {
        if let Some((property, annotation)) = key.split_once('@') {
            if property.is_empty() {
                continue; // `@odata.type`, `@odata.context`, ...
            }
            if annotation == "odata.bind" {
                payload
                    .binds
                    .push(parse_bind(catalog, entity, property, json)?);
                continue;
            }
            if entity.property_position(property).is_some() || lookup(entity, property).is_some() {
                continue;
            }
            return Err(ParseError::UndeclaredProperty(property.to_string()));
        }
        if let Some(position) = entity.property_position(key) {
            let attribute = &entity.attributes[position];
            if attribute.attribute_type.is_lookup() {
                return Err(ParseError::LookupValueProperty(key.clone()));
            }
            payload
                .values
                .push((position, parse_value(entity, attribute, json)?));
            continue;
        }
        if lookup(entity, key).is_some() {
            return Err(ParseError::Payload {
                entity_set: entity.entity_set_name.clone(),
                detail: format!(
                    "The navigation property '{key}' must be set with '{key}@odata.bind'."
                ),
            });
        }
        return Err(ParseError::invalid_property(entity, key));
    }
    Ok(payload)
}

fn lookup(entity: &Entity, name: &str) -> Option<usize> {
    entity
        .position(name)
        .filter(|&p| entity.attributes[p].attribute_type.is_lookup())
}

fn parse_bind(
    catalog: &Catalog,
    entity: &Entity,
    property: &str,
    json: &Json,
) -> Result<Bind, ParseError> {
    let position =
        lookup(entity, property).ok_or_else(|| ParseError::UndeclaredProperty(property.into()))?;
    let attribute = &entity.attributes[position];
    let bad = |value: String| ParseError::BadBind {
        value,
        property: property.to_string(),
    };
    match json {
        Json::Null => Ok(Bind {
            position,
            target: None,
        }),
        Json::String(text) => {
            let (target, id) = parse_reference(catalog, text).ok_or_else(|| bad(text.clone()))?;
            if !attribute.targets.contains(&target.logical_name) {
                return Err(bad(text.clone()));
            }
            Ok(Bind {
                position,
                target: Some((target, id)),
            })
        }
        other => Err(bad(other.to_string())),
    }
}

/// Converts one JSON value to the column's type, checking its limits.
pub fn parse_value(
    entity: &Entity,
    attribute: &Attribute,
    json: &Json,
) -> Result<Value, ParseError> {
    use AttributeType as T;
    if json.is_null() {
        return Ok(Value::Null);
    }
    let mismatch = || ParseError::Payload {
        entity_set: entity.entity_set_name.clone(),
        detail: format!(
            "Cannot convert the literal '{}' to the expected type '{}'.",
            json_literal(json),
            attribute.attribute_type.edm_type()
        ),
    };
    match attribute.attribute_type {
        T::String | T::Memo => {
            let text = json.as_str().ok_or_else(mismatch)?;
            if let Some(max) = attribute.max_length {
                if text.chars().count() > max {
                    return Err(ParseError::TooLong {
                        attribute: attribute.logical_name.clone(),
                        entity: entity.logical_name.clone(),
                        max,
                    });
                }
            }
            Ok(Value::Text(text.to_string()))
        }
        T::Integer | T::BigInt => {
            let number = json.as_i64().ok_or_else(mismatch)?;
            let (min, max) = match attribute.attribute_type {
                T::Integer => (
                    attribute.min_value.unwrap_or(i32::MIN.into()),
                    attribute.max_value.unwrap_or(i32::MAX.into()),
                ),
                _ => (
                    attribute.min_value.unwrap_or(i64::MIN),
                    attribute.max_value.unwrap_or(i64::MAX),
                ),
            };
            if number < min || number > max {
                return Err(ParseError::NumberOutOfRange {
                    value: number.to_string(),
                    attribute: attribute.logical_name.clone(),
                    entity: entity.logical_name.clone(),
                    min,
                    max,
                });
            }
            Ok(Value::Int(number))
        }
        T::Picklist | T::State | T::Status => {
            let number = json.as_i64().ok_or_else(mismatch)?;
            let known = i32::try_from(number)
                .ok()
                .and_then(|n| attribute.option(n))
                .is_some();
            if known {
                return Ok(Value::Int(number));
            }
            Err(match attribute.attribute_type {
                T::Picklist => ParseError::OptionOutOfRange {
                    value: number,
                    attribute: attribute.logical_name.clone(),
                    entity: entity.logical_name.clone(),
                    accepted: attribute
                        .options
                        .iter()
                        .map(|o| o.value.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                },
                T::State => ParseError::InvalidStateValue {
                    value: number,
                    what: "state code",
                    entity: entity.logical_name.clone(),
                },
                _ => ParseError::InvalidStateValue {
                    value: number,
                    what: "status code",
                    entity: entity.logical_name.clone(),
                },
            })
        }
        T::Boolean => json.as_bool().map(Value::Bool).ok_or_else(mismatch),
        T::DateTime => {
            let text = json.as_str().ok_or_else(mismatch)?;
            let seconds = parse_datetime(text).ok_or_else(mismatch)?;
            if seconds < MIN_DATETIME {
                return Err(ParseError::InvalidArgument(format!(
                    "The date-time value '{text}' of '{}' is before the earliest date Dataverse stores (1753-01-01).",
                    attribute.logical_name
                )));
            }
            Ok(Value::DateTime(seconds))
        }
        T::Uniqueidentifier => json
            .as_str()
            .and_then(parse_guid)
            .map(Value::Guid)
            .ok_or_else(mismatch),
        T::Lookup | T::Owner | T::EntityName => Err(mismatch()),
    }
}

fn json_literal(json: &Json) -> String {
    match json {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses an ISO 8601 date or date-time; without an offset it is taken as UTC. The result is
/// whole Unix seconds, as Dataverse keeps no fractions.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let formats: [&[time::format_description::BorrowedFormatItem<'_>]; 3] = [
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"
        ),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ];
    for format in formats {
        if let Ok(t) = PrimitiveDateTime::parse(text, format) {
            return Some(t.assume_utc().unix_timestamp());
        }
    }
    Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
    .map(|d| d.midnight().assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: serde_json::Value) -> Result<Payload, ParseError> {
        let catalog = Catalog::builtin().unwrap();
        let entity = catalog.entity("msdyn_smsengagementctx").unwrap();
        let map = body.as_object().unwrap().clone();
        parse_payload(&catalog, entity, &map)
    }

    fn error(body: serde_json::Value) -> String {
        parse(body).unwrap_err().to_string()
    }

    #[test]
    fn typed_values_and_binds() {
        let p = parse(json!({
            "msdyn_name": "ctx 1",
            "msdyn_smsprovider": 192350001,
            "msdyn_name@OData.Community.Display.V1.FormattedValue": "ignored",
            "@odata.type": "Microsoft.Dynamics.CRM.msdyn_smsengagementctx",
            "overriddencreatedon": "2024-05-01T12:00:00+02:00",
            "msdyn_liveworkitemid@odata.bind": "/msdyn_ocliveworkitems(6f0c1c1e-0000-0000-0000-000000000001)",
            "ownerid@odata.bind": null,
        }))
        .unwrap();
        assert_eq!(p.values.len(), 3);
        assert_eq!(p.binds.len(), 2);
        assert!(p.values.iter().any(|(_, v)| *v == Value::Int(192350001)));
        assert!(p
            .values
            .iter()
            .any(|(_, v)| *v == Value::DateTime(1714557600)));
    }

    #[test]
    fn refusals_name_the_problem() {
        assert_eq!(
            error(json!({"Msdyn_Name": "x"})),
            "Invalid property 'Msdyn_Name' was found in entity 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'."
        );
        assert!(error(json!({"msdyn_name": "x".repeat(101)}))
            .contains("exceeded the maximum allowed length of '100'"));
        assert_eq!(
            error(json!({"msdyn_smsprovider": 5})),
            "A validation error occurred. The value 5 of 'msdyn_smsprovider' on record of type 'msdyn_smsengagementctx' is outside the valid range. Accepted Values: 192350000,192350001"
        );
        assert!(error(json!({"msdyn_name": 5})).contains("Edm.String"));
        assert!(error(json!({"utcconversiontimezonecode": -2})).contains("outside the valid range"));
        assert!(error(json!({"importsequencenumber": 2147483648i64})).contains("outside"));
        assert!(error(json!({"createdon": "yesterday"})).contains("Edm.DateTimeOffset"));
        assert!(error(json!({"createdon": "1700-01-01T00:00:00Z"})).contains("1753"));
        assert!(error(json!({"msdyn_smsengagementctxid": "not-a-guid"})).contains("Edm.Guid"));
        assert!(
            error(json!({"_ownerid_value": "6f0c1c1e-0000-0000-0000-000000000001"}))
                .contains("Navigation properties")
        );
        assert!(
            error(json!({"nope@odata.bind": "/teams(6f0c1c1e-0000-0000-0000-000000000001)"}))
                .contains("undeclared property 'nope'")
        );
        assert_eq!(
            error(json!({"ownerid@odata.bind": "/msdyn_ocliveworkitems(6f0c1c1e-0000-0000-0000-000000000001)"})),
            "Invalid url value '/msdyn_ocliveworkitems(6f0c1c1e-0000-0000-0000-000000000001)' for lookup property 'ownerid'."
        );
        assert!(error(json!({"owneridtype": "team"})).contains("Invalid property"));
        assert!(error(json!({"owneridname": "x"})).contains("Invalid property"));
        assert!(error(json!({"statecode": 7})).contains("not a valid state code"));
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("2024-05-01T10:00:00Z"), Some(1714557600));
        assert_eq!(parse_datetime("2024-05-01T10:00:00"), Some(1714557600));
        assert_eq!(parse_datetime("2024-05-01"), Some(1714521600));
        assert_eq!(
            parse_datetime("2024-05-01T12:00:00+02:00"),
            Some(1714557600)
        );
        assert_eq!(parse_datetime("1753-01-01T00:00:00Z"), Some(MIN_DATETIME));
        assert_eq!(parse_datetime("soon"), None);
    }

    #[test]
    fn bodies_must_be_json_objects() {
        let catalog = Catalog::builtin().unwrap();
        let entity = catalog.entity("msdyn_smsengagementctx").unwrap();
        assert!(parse_object(entity, b"{").is_err());
        assert!(parse_object(entity, b"[1]").is_err());
        assert!(parse_object(entity, b"  ").is_err());
        assert!(parse_object(entity, b"{\"a\":1}").is_ok());
        assert!(check_content_type(Some("application/json; charset=utf-8")).is_ok());
        assert!(check_content_type(Some("text/plain")).is_err());
    }
}
