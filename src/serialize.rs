//! Records to Dataverse JSON: `@odata.etag`, properties (lookups as `_x_value`), and the
//! instance annotations a client asked for, each placed right before its property.

use serde_json::{Map, Value as Json};
use time::OffsetDateTime;

use crate::metadata::{Attribute, AttributeType};
use crate::parse::headers::{
    etag, Annotations, FORMATTED_VALUE, LOOKUP_LOGICAL_NAME, NAVIGATION_PROPERTY,
};
use crate::store::{Record, Value};

/// `{root}$metadata#{set}` with the `$select` list, as `@odata.context` names it.
pub fn collection_context(root: &str, record_set: &str, select: Option<&[String]>) -> String {
    match select {
        Some(names) => format!("{root}$metadata#{record_set}({})", names.join(",")),
        None => format!("{root}$metadata#{record_set}"),
    }
}

/// The JSON object of one record. `select` limits the properties (the key is always there).
pub fn record(
    record: &Record,
    select: Option<&[usize]>,
    annotations: &Annotations,
) -> Map<String, Json> {
    let entity = &record.entity;
    let mut out = Map::new();
    if let Some(version) = record.version() {
        out.insert("@odata.etag".into(), Json::String(etag(version)));
    }
    let id_position = entity.primary_id_position();
    let write = |position: usize, out: &mut Map<String, Json>| {
        let attribute = &entity.attributes[position];
        let name = attribute.property_name();
        let value = &record.values[position];
        if !annotations.none() && !value.is_null() {
            annotate(record, attribute, &name, value, annotations, out);
        }
        out.insert(name, json_value(value));
    };
    match select {
        Some(positions) => {
            for &p in positions {
                write(p, &mut out);
            }
            if !positions.contains(&id_position) {
                write(id_position, &mut out);
            }
        }
        None => {
            for (p, attribute) in entity.attributes.iter().enumerate() {
                if attribute.is_edm_property() && attribute.valid_for_read {
                    write(p, &mut out);
                }
            }
        }
    }
    out
}

fn annotate(
    record: &Record,
    attribute: &Attribute,
    name: &str,
    value: &Value,
    annotations: &Annotations,
    out: &mut Map<String, Json>,
) {
    if annotations.includes(FORMATTED_VALUE) {
        if let Some(text) = formatted_value(record, attribute, value) {
            out.insert(format!("{name}@{FORMATTED_VALUE}"), Json::String(text));
        }
    }
    if attribute.attribute_type.is_lookup() {
        if annotations.includes(NAVIGATION_PROPERTY) {
            out.insert(
                format!("{name}@{NAVIGATION_PROPERTY}"),
                Json::String(attribute.logical_name.clone()),
            );
        }
        if annotations.includes(LOOKUP_LOGICAL_NAME) {
            let target = lookup_target(record, attribute);
            if let Some(target) = target {
                out.insert(
                    format!("{name}@{LOOKUP_LOGICAL_NAME}"),
                    Json::String(target),
                );
            }
        }
    }
}

/// The table a lookup value points at: the only target, or the owner's recorded type.
fn lookup_target(record: &Record, attribute: &Attribute) -> Option<String> {
    if attribute.targets.len() == 1 {
        return attribute.targets.first().cloned();
    }
    // A multi-target lookup records its target type in the EntityName column `<lookup>type`.
    let type_column = format!("{}type", attribute.logical_name);
    record.get(&type_column).as_text().map(str::to_string)
}

/// The value a user would see: option labels, target names, local dates, grouped numbers.
pub fn formatted_value(record: &Record, attribute: &Attribute, value: &Value) -> Option<String> {
    use AttributeType as T;
    match (attribute.attribute_type, value) {
        (t, Value::Int(v)) if t.is_option_set() => i32::try_from(*v)
            .ok()
            .and_then(|v| attribute.option(v))
            .map(|o| o.label.clone()),
        (T::Integer | T::BigInt, Value::Int(v)) => Some(group_thousands(*v)),
        (T::Boolean, Value::Bool(b)) => Some(if *b { "Yes" } else { "No" }.to_string()),
        (T::DateTime, Value::DateTime(t)) => {
            format_datetime(*t, attribute.format.as_deref() == Some("DateOnly"))
        }
        (T::Lookup | T::Owner, _) => {
            let entity = &record.entity;
            entity
                .attributes
                .iter()
                .position(|a| {
                    a.attribute_of.as_deref() == Some(attribute.logical_name.as_str())
                        && !a.logical_name.ends_with("yominame")
                })
                .and_then(|p| record.values[p].as_text().map(str::to_string))
        }
        _ => None,
    }
}

/// `5/1/2024 3:00 AM` (en-US, UTC), or `5/1/2024` for date-only columns.
pub fn format_datetime(seconds: i64, date_only: bool) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    let date = format!("{}/{}/{}", u8::from(t.month()), t.day(), t.year());
    if date_only {
        return Some(date);
    }
    let (hour, meridiem) = match t.hour() {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    Some(format!("{date} {hour}:{:02} {meridiem}", t.minute()))
}

fn group_thousands(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 {
        out.insert(0, '-');
    }
    out
}

/// A stored value as JSON: Guids lowercase, date-times `2024-05-01T10:00:00Z`.
pub fn json_value(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Text(t) => Json::String(t.clone()),
        Value::Int(i) => Json::from(*i),
        Value::Bool(b) => Json::Bool(*b),
        Value::DateTime(t) => Json::String(datetime_text(*t)),
        Value::Guid(g) => Json::String(g.hyphenated().to_string()),
    }
}

/// `2024-05-01T10:00:00Z`.
pub fn datetime_text(seconds: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => seconds.to_string(),
    }
}

/// The raw text of a value for `/$value`.
pub fn raw_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Text(t) => Some(t.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::DateTime(t) => Some(datetime_text(*t)),
        Value::Guid(g) => Some(g.hyphenated().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(datetime_text(1714557600), "2024-05-01T10:00:00Z");
        assert_eq!(
            format_datetime(1714532400, false).as_deref(),
            Some("5/1/2024 3:00 AM")
        );
        assert_eq!(
            format_datetime(1714575600, false).as_deref(),
            Some("5/1/2024 3:00 PM")
        );
        assert_eq!(
            format_datetime(1714557600, true).as_deref(),
            Some("5/1/2024")
        );
        assert_eq!(group_thousands(1234567), "1,234,567");
        assert_eq!(group_thousands(-1000), "-1,000");
        assert_eq!(group_thousands(12), "12");
    }
}
