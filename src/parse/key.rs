//! Alternate keys as a path or a reference writes them: `set(col='v',col2=3)`.
//!
//! Parsing only, no I/O: each value is typed by its column (a string quoted with `'`, a quote
//! inside doubled; numbers, GUIDs and dates bare, a lookup as `_x_value=<guid>`). Whether the
//! columns are a defined key of the table, and which record they name, is decided later: the
//! edge checks the columns against the stored keys and the executor reads the record through
//! the caller's guard.

use std::sync::Arc;

use super::ParseError;
use crate::metadata::{AttributeType, Entity};
use crate::query::filter::literal_for;
use crate::query::Literal;

/// A record named by the values of an alternate key's columns.
#[derive(Debug, Clone)]
pub struct AlternateKey {
    pub entity: Arc<Entity>,
    /// (column position, typed value), in the order written.
    pub values: Vec<(usize, Literal)>,
}

impl AlternateKey {
    /// The logical names of its columns, sorted (a key's identity is its set of columns).
    pub fn columns(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .values
            .iter()
            .map(|(p, _)| self.entity.attributes[*p].logical_name.clone())
            .collect();
        names.sort();
        names
    }
}

/// Dataverse's message for key properties that are not the table's primary key nor one of its
/// alternate keys.
pub fn not_a_key(entity: &Entity) -> ParseError {
    let name = &entity.logical_name;
    ParseError::BadKey(format!(
        "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{name}'. \
         Ensure that the names and number of key properties match the declared or alternate key \
         properties for the resource 'Microsoft.Dynamics.CRM.{name}'."
    ))
}

fn malformed(key: &str, why: &str) -> ParseError {
    ParseError::BadKey(format!(
        "Bad Request - Error in query syntax: the key '{key}' is not valid: {why}"
    ))
}

/// The alternate key written between a record's parentheses, or `None` when `key` is the
/// primary key (a bare GUID, or `{primaryid}=<guid>`, which [`super::path`] reads).
pub fn parse(entity: &Arc<Entity>, key: &str) -> Result<Option<AlternateKey>, ParseError> {
    let key = key.trim();
    if !key.contains('=') {
        return Ok(None);
    }
    let parts = split_top_level(key).ok_or_else(|| malformed(key, "a quote is not closed."))?;
    let mut values: Vec<(usize, Literal)> = Vec::with_capacity(parts.len());
    for part in &parts {
        let Some((name, text)) = part.split_once('=') else {
            return Err(malformed(key, "each part is name=value."));
        };
        let (name, text) = (name.trim(), text.trim());
        if name == entity.primary_id {
            if parts.len() == 1 {
                return Ok(None);
            }
            return Err(not_a_key(entity));
        }
        let position = entity
            .property_position(name)
            .filter(|&p| entity.attributes[p].property_name() == name)
            .ok_or_else(|| not_a_key(entity))?;
        if values.iter().any(|(p, _)| *p == position) {
            return Err(malformed(key, &format!("'{name}' is named twice.")));
        }
        values.push((position, typed_value(entity, position, name, text)?));
    }
    Ok(Some(AlternateKey {
        entity: Arc::clone(entity),
        values,
    }))
}

/// One key value, typed by its column.
fn typed_value(
    entity: &Entity,
    position: usize,
    name: &str,
    text: &str,
) -> Result<Literal, ParseError> {
    let attribute = &entity.attributes[position];
    let wrong = || {
        ParseError::BadKey(format!(
            "Bad Request - Error in query syntax: the value {text} of the key property '{name}' \
             is not a valid {}.",
            attribute.attribute_type.edm_type()
        ))
    };
    if text == "null" {
        return Err(wrong());
    }
    use AttributeType as T;
    let quoted = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .filter(|_| text.len() >= 2);
    match attribute.attribute_type {
        T::String | T::Memo | T::EntityName => {
            let inner = quoted.ok_or_else(wrong)?;
            // Inside the quotes a quote is written twice; a single one ends the string early.
            if inner.replace("''", "").contains('\'') {
                return Err(wrong());
            }
            Ok(Literal::String(inner.replace("''", "'")))
        }
        _ if quoted.is_some() => Err(wrong()),
        _ => literal_for(attribute, text).ok_or_else(wrong),
    }
}

/// Splits `a='x,y',b=2` at the commas outside quotes; `None` when a quote is left open.
fn split_top_level(text: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut in_quote = false;
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        match b {
            // A doubled quote inside a string toggles twice: it stays inside.
            b'\'' => in_quote = !in_quote,
            b',' if !in_quote => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    (!in_quote).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Catalog;

    fn context() -> Arc<Entity> {
        let catalog = Catalog::builtin().unwrap();
        Arc::clone(catalog.by_entity_set("msdyn_smsengagementctxes").unwrap())
    }

    fn check(key: &str, expected: &str) {
        let entity = context();
        let got = match parse(&entity, key) {
            Ok(None) => "primary".to_string(),
            Ok(Some(key)) => key
                .values
                .iter()
                .map(|(p, v)| format!("{}={v:?}", entity.attributes[*p].logical_name))
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => format!("error {e}"),
        };
        assert_eq!(got, expected, "{key}");
    }

    const ID: &str = "3c6e4b5f-86f6-e411-80dd-00155d2a68cb";

    #[test]
    fn keys_are_typed_by_their_columns() {
        check(ID, "primary");
        check(&format!("msdyn_smsengagementctxid={ID}"), "primary");
        check(
            "msdyn_customerphonenumber='+14255550100',msdyn_orgphonenumber='1'",
            r#"msdyn_customerphonenumber=String("+14255550100") msdyn_orgphonenumber=String("1")"#,
        );
        check(
            "msdyn_name='O''Brien, Ltd'",
            r#"msdyn_name=String("O'Brien, Ltd")"#,
        );
        check("msdyn_name=''", r#"msdyn_name=String("")"#);
        check("statuscode=2", "statuscode=Int(2)");
        check(
            &format!("_msdyn_liveworkitemid_value={ID}"),
            &format!("msdyn_liveworkitemid=Guid({ID})"),
        );
    }

    #[test]
    fn refusals() {
        let not_a_key = "error The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'. Ensure that the names and number of key properties match the declared or alternate key properties for the resource 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'.";
        check("nosuchcolumn='x'", not_a_key);
        check("Msdyn_name='x'", not_a_key);
        // A lookup is named by its lookup property, as Dataverse requires.
        check(&format!("msdyn_liveworkitemid={ID}"), not_a_key);
        check(
            &format!("msdyn_smsengagementctxid={ID},msdyn_name='x'"),
            not_a_key,
        );
        check(
            "msdyn_name='x",
            "error Bad Request - Error in query syntax: the key 'msdyn_name='x' is not valid: a quote is not closed.",
        );
        check(
            "msdyn_name='a'b'",
            "error Bad Request - Error in query syntax: the key 'msdyn_name='a'b'' is not valid: a quote is not closed.",
        );
        check(
            "msdyn_name='x',x",
            "error Bad Request - Error in query syntax: the key 'msdyn_name='x',x' is not valid: each part is name=value.",
        );
        check(
            "msdyn_name='x',msdyn_name='y'",
            "error Bad Request - Error in query syntax: the key 'msdyn_name='x',msdyn_name='y'' is not valid: 'msdyn_name' is named twice.",
        );
        check(
            "msdyn_name=x",
            "error Bad Request - Error in query syntax: the value x of the key property 'msdyn_name' is not a valid Edm.String.",
        );
        check(
            "statuscode='2'",
            "error Bad Request - Error in query syntax: the value '2' of the key property 'statuscode' is not a valid Edm.Int32.",
        );
        check(
            "statuscode=two",
            "error Bad Request - Error in query syntax: the value two of the key property 'statuscode' is not a valid Edm.Int32.",
        );
        check(
            "msdyn_name=null",
            "error Bad Request - Error in query syntax: the value null of the key property 'msdyn_name' is not a valid Edm.String.",
        );
    }
}
