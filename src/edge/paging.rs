//! `$skiptoken` in Dataverse's cookie form, carrying a keyset cursor.
//!
//! The token is `<cookie pagenumber="2" pagingcookie="..." istracking="False" />`, where the
//! URL-encoded paging cookie holds one element per sort key with the last row's value, then the
//! primary id with the page's last and first ids, as Dataverse writes it:
//! `<cookie page="1"><createdon last="2024-05-01T10:00:00Z" /><msdyn_smsengagementctxid
//! last="{GUID}" first="{GUID}" /></cookie>`. A NULL sort value is written `null="1"`.
//! Clients treat the token as opaque; the server reads it back against the request's
//! `$orderby`, so a token never resumes a different ordering.

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use crate::metadata::{AttributeType, Entity};
use crate::parse::body::parse_datetime;
use crate::parse::path::parse_guid;
use crate::parse::ParseError;
use crate::query::OrderBy;
use crate::serialize::datetime_text;
use crate::store::sql::Keyset;
use crate::store::{Record, Value};

/// The token that resumes after `last`, the final row of page `page`.
pub fn skip_token(
    entity: &Entity,
    order: &[OrderBy],
    page: usize,
    first: &Record,
    last: &Record,
) -> String {
    let inner = inner_cookie(entity, order, page, first, last);
    let encoded = utf8_percent_encode(&inner, NON_ALPHANUMERIC).to_string();
    format!(
        "<cookie pagenumber=\"{}\" pagingcookie=\"{encoded}\" istracking=\"False\" />",
        page + 1
    )
}

/// The `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` value: the inner cookie URL-encoded twice,
/// as Dataverse writes it.
pub fn fetch_paging_cookie(
    entity: &Entity,
    order: &[OrderBy],
    page: usize,
    first: &Record,
    last: &Record,
) -> String {
    let inner = inner_cookie(entity, order, page, first, last);
    let once = utf8_percent_encode(&inner, NON_ALPHANUMERIC).to_string();
    let twice = utf8_percent_encode(&once, NON_ALPHANUMERIC).to_string();
    format!(
        "<cookie pagenumber=\"{}\" pagingcookie=\"{twice}\" istracking=\"False\" />",
        page + 1
    )
}

/// `<cookie page="1"><key last="..." />...<id last="{..}" first="{..}" /></cookie>`.
fn inner_cookie(
    entity: &Entity,
    order: &[OrderBy],
    page: usize,
    first: &Record,
    last: &Record,
) -> String {
    let mut inner = format!("<cookie page=\"{page}\">");
    for key in order {
        let name = &entity.attributes[key.prop.index].logical_name;
        match cookie_value(&last.values[key.prop.index]) {
            Some(text) => inner.push_str(&format!("<{name} last=\"{}\" />", escape(&text))),
            None => inner.push_str(&format!("<{name} null=\"1\" />")),
        }
    }
    let braced = |r: &Record| {
        r.id()
            .map(|id| format!("{{{}}}", id.hyphenated().to_string().to_uppercase()))
            .unwrap_or_default()
    };
    inner.push_str(&format!(
        "<{} last=\"{}\" first=\"{}\" /></cookie>",
        entity.primary_id,
        braced(last),
        braced(first)
    ));
    inner
}

/// Reads a token back: the page number and the keyset cursor under `order`.
pub fn parse_skip_token(
    entity: &Entity,
    order: &[OrderBy],
    token: &str,
) -> Result<(usize, Keyset), ParseError> {
    let bad = || ParseError::BadQuery(format!("The $skiptoken '{token}' is not valid."));
    let page: usize = attribute(token, "pagenumber")
        .and_then(|p| p.parse().ok())
        .ok_or_else(bad)?;
    let cookie = attribute(token, "pagingcookie").ok_or_else(bad)?;
    let cookie = percent_decode_str(&cookie)
        .decode_utf8()
        .map_err(|_| bad())?;
    let keyset = keyset_from_cookie(entity, order, &cookie).ok_or_else(bad)?;
    Ok((page, keyset))
}

/// The keyset cursor in an inner cookie (`<cookie page="1">...</cookie>`), which FetchXML
/// clients send back as `paging-cookie`, possibly URL-encoded once or twice.
pub fn keyset_from_cookie(entity: &Entity, order: &[OrderBy], cookie: &str) -> Option<Keyset> {
    let mut text = cookie.trim().to_string();
    for _ in 0..2 {
        if text.starts_with('<') {
            break;
        }
        text = percent_decode_str(&text).decode_utf8().ok()?.into_owned();
    }
    let mut elements = elements(&text)?.into_iter();
    let mut values = Vec::with_capacity(order.len() + 1);
    for key in order {
        let attribute_meta = &entity.attributes[key.prop.index];
        let (name, attributes) = elements.next()?;
        if name != attribute_meta.logical_name {
            return None;
        }
        let value = if attributes.iter().any(|(k, v)| k == "null" && v == "1") {
            Value::Null
        } else {
            let text = attributes
                .iter()
                .find(|(k, _)| k == "last")
                .map(|(_, v)| v.as_str())?;
            parse_value(attribute_meta.attribute_type, text)?
        };
        values.push(value);
    }
    let (name, attributes) = elements.next()?;
    if name != entity.primary_id {
        return None;
    }
    let last = attributes
        .iter()
        .find(|(k, _)| k == "last")
        .and_then(|(_, v)| parse_guid(v))?;
    values.push(Value::Guid(last));
    Some(Keyset { values })
}

fn cookie_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Text(t) => Some(t.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::DateTime(t) => Some(datetime_text(*t)),
        Value::Guid(g) => Some(format!("{{{}}}", g.hyphenated().to_string().to_uppercase())),
    }
}

fn parse_value(attribute_type: AttributeType, text: &str) -> Option<Value> {
    use AttributeType as T;
    Some(match attribute_type {
        T::String | T::Memo | T::EntityName => Value::Text(text.to_string()),
        T::Integer | T::BigInt | T::Picklist | T::State | T::Status => {
            Value::Int(text.parse().ok()?)
        }
        T::Boolean => Value::Bool(text.parse().ok()?),
        T::DateTime => Value::DateTime(parse_datetime(text)?),
        T::Uniqueidentifier | T::Lookup | T::Owner => Value::Guid(parse_guid(text)?),
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `name="value"` in a tag.
fn attribute(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!("{name}=\""))? + name.len() + 2;
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_string())
}

type Element = (String, Vec<(String, String)>);

/// The child elements of `<cookie page="n">...</cookie>`: names and attributes, in order.
fn elements(cookie: &str) -> Option<Vec<Element>> {
    let body = cookie.strip_prefix("<cookie")?;
    let body = &body[body.find('>')? + 1..];
    let body = body.strip_suffix("</cookie>")?;
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let tag = rest.strip_prefix('<')?;
        let end = tag.find("/>")?;
        let content = &tag[..end];
        rest = tag[end + 2..].trim_start();
        let (name, mut attrs) = content.split_once(' ').unwrap_or((content, ""));
        let mut attributes = Vec::new();
        loop {
            attrs = attrs.trim_start();
            if attrs.is_empty() {
                break;
            }
            let (key, after) = attrs.split_once("=\"")?;
            let close = after.find('"')?;
            attributes.push((key.trim().to_string(), unescape(&after[..close])));
            attrs = &after[close + 1..];
        }
        out.push((name.to_string(), attributes));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Catalog;
    use crate::query::options::parse_orderby;
    use std::sync::Arc;
    use uuid::Uuid;

    #[test]
    fn tokens_round_trip_with_typed_and_null_keys() {
        let catalog = Catalog::builtin().unwrap();
        let entity = catalog.entity("msdyn_smsengagementctx").unwrap();
        let order = parse_orderby(
            entity,
            "msdyn_name desc,createdon,msdyn_countrycode,statecode",
        )
        .unwrap();
        let mut last = Record::empty(Arc::clone(entity));
        let id = Uuid::new_v4();
        last.set("msdyn_smsengagementctxid", Value::Guid(id));
        last.set(
            "msdyn_name",
            Value::Text("a \"quoted\" <name> & more".into()),
        );
        last.set("createdon", Value::DateTime(1714557600));
        last.set("statecode", Value::Int(1));
        let token = skip_token(entity, &order, 3, &last, &last);
        let (page, keyset) = parse_skip_token(entity, &order, &token).unwrap();
        assert_eq!(page, 4);
        assert_eq!(
            keyset.values,
            vec![
                Value::Text("a \"quoted\" <name> & more".into()),
                Value::DateTime(1714557600),
                Value::Null,
                Value::Int(1),
                Value::Guid(id)
            ]
        );
        // A token read against another ordering is refused.
        let other = parse_orderby(entity, "createdon").unwrap();
        assert!(parse_skip_token(entity, &other, &token).is_err());
        assert!(parse_skip_token(entity, &order, "garbage").is_err());
        assert!(parse_skip_token(
            entity,
            &[],
            "<cookie pagenumber=\"2\" pagingcookie=\"%3Cx\" />"
        )
        .is_err());
    }
}
