//! Reading `$skiptoken` and FetchXML's `paging-cookie` back into a typed keyset cursor.
//!
//! The token is `<cookie pagenumber="2" pagingcookie="..." istracking="False" />`, where the
//! URL-encoded paging cookie holds one element per sort key with the last row's value, then the
//! primary id with the page's last and first ids, as Dataverse writes it:
//! `<cookie page="1"><createdon last="2024-05-01T10:00:00Z" /><msdyn_smsengagementctxid
//! last="{GUID}" first="{GUID}" /></cookie>`. A NULL sort value is written `null="1"`.
//! Clients treat the token as opaque; it is read back against the request's order, so a token
//! never resumes a different ordering. `serialize.rs` writes it.

use percent_encoding::percent_decode_str;

use super::ast::Literal;
use super::error::QueryError;
use super::lexer::parse_datetime;
use super::options::OrderBy;
use crate::metadata::{AttributeType, Entity};

/// Where a page resumes: its number, and the last row's order-key values then its primary id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub page: usize,
    /// One value per order key (`Literal::Null` for a NULL), then `Literal::Guid` of the id.
    pub keyset: Vec<Literal>,
}

/// Reads a `$skiptoken` against `order`: the page number and the keyset cursor.
pub fn parse_skip_token(
    entity: &Entity,
    order: &[OrderBy],
    token: &str,
) -> Result<Cursor, QueryError> {
    let bad = || QueryError::InvalidSkipToken {
        token: token.to_string(),
    };
    let page: usize = attribute(token, "pagenumber")
        .and_then(|p| p.parse().ok())
        .ok_or_else(bad)?;
    let cookie = attribute(token, "pagingcookie").ok_or_else(bad)?;
    let cookie = percent_decode_str(&cookie)
        .decode_utf8()
        .map_err(|_| bad())?;
    let keyset = keyset_from_cookie(entity, order, &cookie).ok_or_else(bad)?;
    Ok(Cursor { page, keyset })
}

/// The keyset cursor in an inner cookie (`<cookie page="1">...</cookie>`), which FetchXML
/// clients send back as `paging-cookie`, possibly URL-encoded once or twice.
pub fn keyset_from_cookie(
    entity: &Entity,
    order: &[OrderBy],
    cookie: &str,
) -> Option<Vec<Literal>> {
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
            Literal::Null
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
    values.push(Literal::Guid(last));
    Some(values)
}

/// A GUID as the cookie writes it: braced or bare.
fn parse_guid(text: &str) -> Option<uuid::Uuid> {
    let text = text.trim();
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    if text.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(text).ok()
}

fn parse_value(attribute_type: AttributeType, text: &str) -> Option<Literal> {
    use AttributeType as T;
    Some(match attribute_type {
        T::String | T::Memo | T::EntityName => Literal::String(text.to_string()),
        T::Integer | T::BigInt | T::Picklist | T::State | T::Status => {
            Literal::Int(text.parse().ok()?)
        }
        T::Boolean => Literal::Bool(text.parse().ok()?),
        T::DateTime => Literal::DateTime(parse_datetime(text)?),
        T::Uniqueidentifier | T::Lookup | T::Owner => Literal::Guid(parse_guid(text)?),
    })
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
