//! Records to Dataverse JSON: `@odata.etag`, properties (lookups as `_x_value`), and the
//! instance annotations a client asked for, each placed right before its property.

use serde_json::Value as Json;
use time::OffsetDateTime;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use uuid::Uuid;

use crate::execute::read::{
    AggregateRead, ExpandNode, Expanded, Front, Linked, RecordResult, RowsResult,
};
use crate::metadata::{Attribute, AttributeType, Entity};
use crate::parse::headers::{
    etag, Annotations, FORMATTED_VALUE, LOOKUP_LOGICAL_NAME, NAVIGATION_PROPERTY,
};
use crate::query::read::PAGE_LIMIT;
use crate::query::{ExpandSelect, OrderBy};
use crate::store::{Record, Value};

/// `{root}$metadata#{set}` with the `$select` list, as `@odata.context` names it.
pub fn collection_context(root: &str, record_set: &str, select: Option<&[String]>) -> String {
    // `concat`, not `format!`: every response names its context, and formatting cost three
    // times as much (callgrind).
    match select {
        Some(names) => [root, "$metadata#", record_set, "(", &names.join(","), ")"].concat(),
        None => [root, "$metadata#", record_set].concat(),
    }
}

/// Writes a JSON object member by member into a byte buffer (no intermediate tree).
pub struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    pub fn open(out: &'a mut Vec<u8>) -> ObjectWriter<'a> {
        out.push(b'{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_json_string(self.out, name);
        self.out.push(b':');
    }

    pub fn string(&mut self, name: &str, value: &str) {
        self.key(name);
        write_json_string(self.out, value);
    }

    pub fn value(&mut self, name: &str, value: &Value) {
        self.key(name);
        write_value(self.out, value);
    }

    pub fn json(&mut self, name: &str, value: &Json) {
        self.key(name);
        // Writing a serde_json::Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.out, value);
    }

    /// Starts a member whose value the caller writes raw (an array of records).
    pub fn raw_key(&mut self, name: &str) -> &mut Vec<u8> {
        self.key(name);
        self.out
    }

    pub fn close(self) {
        self.out.push(b'}');
    }
}

pub(crate) fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // Names and most values need no escaping: copy them as they are. The check is a fold
    // without an early exit, which the compiler turns into vector instructions; a branch per
    // byte cost more than reading every byte (about 3,300 instructions a retrieve).
    let needs_escape = text.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Text(t) => write_json_string(out, t),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::Float(f) => {
            let _ = serde_json::to_writer(&mut *out, &Json::from(*f));
        }
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::DateTime(t) => {
            out.push(b'"');
            write_datetime(out, *t);
            out.push(b'"');
        }
        Value::Guid(g) => {
            out.push(b'"');
            out.extend_from_slice(
                g.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .as_bytes(),
            );
            out.push(b'"');
        }
    }
}

/// Writes the members of one record: `@odata.etag`, then its properties (`select` limits them;
/// the key is always there), each preceded by the annotations asked for.
pub fn record_members(
    object: &mut ObjectWriter<'_>,
    record: &Record,
    select: Option<&[usize]>,
    annotations: &Annotations,
) {
    write_members(object, record, select, annotations, false);
}

/// As [`record_members`], leaving out null properties (FetchXML results do).
pub fn record_members_without_nulls(
    object: &mut ObjectWriter<'_>,
    record: &Record,
    select: Option<&[usize]>,
    annotations: &Annotations,
) {
    write_members(object, record, select, annotations, true);
}

fn write_members(
    object: &mut ObjectWriter<'_>,
    record: &Record,
    select: Option<&[usize]>,
    annotations: &Annotations,
    omit_nulls: bool,
) {
    let entity = &record.entity;
    if let Some(version) = record.version() {
        object.string("@odata.etag", &etag(version));
    }
    let id_position = entity.primary_id_position();
    let write = |position: usize, object: &mut ObjectWriter<'_>| {
        let attribute = &entity.attributes[position];
        let name = attribute.property_name();
        let value = &record.values[position];
        if omit_nulls && value.is_null() && position != id_position {
            return;
        }
        if !annotations.none() && !value.is_null() {
            annotate(record, attribute, name, value, annotations, object);
        }
        object.value(name, value);
    };
    match select {
        Some(positions) => {
            for &p in positions {
                write(p, object);
            }
            if !positions.contains(&id_position) {
                write(id_position, object);
            }
        }
        None => {
            for (p, attribute) in entity.attributes.iter().enumerate() {
                if attribute.is_edm_property() && attribute.valid_for_read {
                    write(p, object);
                }
            }
        }
    }
}

/// One record as a standalone JSON object (a list item).
pub fn record(
    out: &mut Vec<u8>,
    record: &Record,
    select: Option<&[usize]>,
    annotations: &Annotations,
) {
    let mut object = ObjectWriter::open(out);
    record_members(&mut object, record, select, annotations);
    object.close();
}

fn annotate(
    record: &Record,
    attribute: &Attribute,
    name: &str,
    value: &Value,
    annotations: &Annotations,
    out: &mut ObjectWriter<'_>,
) {
    if annotations.includes(FORMATTED_VALUE) {
        if let Some(text) = formatted_value(record, attribute, value) {
            out.string(&format!("{name}@{FORMATTED_VALUE}"), &text);
        }
    }
    if attribute.attribute_type.is_lookup() {
        if annotations.includes(NAVIGATION_PROPERTY) {
            out.string(
                &format!("{name}@{NAVIGATION_PROPERTY}"),
                &attribute.logical_name,
            );
        }
        if annotations.includes(LOOKUP_LOGICAL_NAME) {
            if let Some(target) = lookup_target(record, attribute) {
                out.string(&format!("{name}@{LOOKUP_LOGICAL_NAME}"), &target);
            }
        }
    }
}

/// The table a lookup value points at: the only target, or the owner's recorded type.
pub fn lookup_target(record: &Record, attribute: &Attribute) -> Option<String> {
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
        Value::Float(f) => Json::from(*f),
        Value::Bool(b) => Json::Bool(*b),
        Value::DateTime(t) => Json::String(datetime_text(*t)),
        Value::Guid(g) => Json::String(g.hyphenated().to_string()),
    }
}

/// `2024-05-01T10:00:00Z`.
pub fn datetime_text(seconds: i64) -> String {
    let mut out = Vec::with_capacity(20);
    write_datetime(&mut out, seconds);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `2024-05-01T10:00:00Z` without going through `fmt`.
fn write_datetime(out: &mut Vec<u8>, seconds: i64) {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(seconds) else {
        out.extend_from_slice(itoa::Buffer::new().format(seconds).as_bytes());
        return;
    };
    let two = |out: &mut Vec<u8>, n: u8| {
        out.push(b'0' + n / 10);
        out.push(b'0' + n % 10);
    };
    let year = t.year();
    if (0..=9999).contains(&year) {
        let year = year as u16;
        out.push(b'0' + (year / 1000) as u8);
        out.push(b'0' + (year / 100 % 10) as u8);
        out.push(b'0' + (year / 10 % 10) as u8);
        out.push(b'0' + (year % 10) as u8);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(year).as_bytes());
    }
    out.push(b'-');
    two(out, u8::from(t.month()));
    out.push(b'-');
    two(out, t.day());
    out.push(b'T');
    two(out, t.hour());
    out.push(b':');
    two(out, t.minute());
    out.push(b':');
    two(out, t.second());
    out.push(b'Z');
}

/// The raw text of a value for `/$value`.
pub fn raw_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Text(t) => Some(t.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::DateTime(t) => Some(datetime_text(*t)),
        Value::Guid(g) => Some(g.hyphenated().to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Read results: collections, single records, aggregations, nextLinks and paging cookies.

const PAGING_COOKIE: &str = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie";
const MORE_RECORDS: &str = "Microsoft.Dynamics.CRM.morerecords";
const TOTAL_COUNT: &str = "Microsoft.Dynamics.CRM.totalrecordcount";
const TOTAL_COUNT_EXCEEDED: &str = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded";

/// What a response's URLs are built from: the service root and the request's query pairs.
pub struct Request<'a> {
    /// `http://host/api/data/v9.2/`.
    pub root: &'a str,
    /// The decoded query-string pairs, for the nextLink.
    pub pairs: &'a [(String, String)],
    /// The path below the root that a nextLink repeats, when it is not the entity set (a
    /// collection-valued navigation: `{set}({id})/{collection}`).
    pub path: Option<&'a str>,
    pub annotations: &'a Annotations,
}

/// The URL of a record: `{root}{set}({id})`.
pub fn record_url(root: &str, entity: &Entity, id: Uuid) -> String {
    format!("{root}{}({id})", entity.entity_set_name)
}

fn select_names(entity: &Entity, select: &[usize]) -> Vec<String> {
    select
        .iter()
        .map(|&p| entity.attributes[p].property_name().to_string())
        .collect()
}

/// The `@odata.context` list of `$select` and `$expand`: `a,b,nav(c)`.
fn context_names(
    entity: &Entity,
    select: Option<&[usize]>,
    expand: &[ExpandNode],
) -> Option<Vec<String>> {
    if select.is_none() && expand.is_empty() {
        return None;
    }
    let mut names = select.map(|s| select_names(entity, s)).unwrap_or_default();
    names.extend(expand.iter().map(expand_context));
    Some(names)
}

/// One expand node in `@odata.context`: `nav(a,b,child(c))`, nested nodes inside.
fn expand_context(item: &ExpandNode) -> String {
    let mut nested: Vec<String> = match &item.select {
        ExpandSelect::Bound(props) => props.iter().map(|p| p.name.clone()).collect(),
        ExpandSelect::Raw(raw) => raw.clone(),
    };
    nested.extend(item.children.iter().map(expand_context));
    format!("{}({})", item.navigation.name, nested.join(","))
}

fn write_expanded(
    root: &str,
    object: &mut ObjectWriter<'_>,
    expanded: &[(String, Expanded)],
    annotations: &Annotations,
) {
    for (name, item) in expanded {
        match item {
            Expanded::Null => object.value(name, &Value::Null),
            Expanded::Reference(entity, id) => {
                let out = object.raw_key(name);
                let mut reference = ObjectWriter::open(out);
                reference.string("@odata.id", &record_url(root, entity, *id));
                reference.close();
            }
            Expanded::Record(related, select, nested) => {
                let out = object.raw_key(name);
                let mut child = ObjectWriter::open(out);
                record_members(&mut child, related, select.as_deref(), annotations);
                write_expanded(root, &mut child, nested, annotations);
                child.close();
            }
            Expanded::Collection(rows, select) => {
                let out = object.raw_key(name);
                out.push(b'[');
                for (i, (related, nested)) in rows.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let mut child = ObjectWriter::open(out);
                    record_members(&mut child, related, select.as_deref(), annotations);
                    write_expanded(root, &mut child, nested, annotations);
                    child.close();
                }
                out.push(b']');
            }
        }
    }
}

/// The annotation naming the column of a FetchXML linked value (`alias.column`).
pub const ATTRIBUTE_NAME: &str = "OData.Community.Display.V1.AttributeName";

/// One FetchXML linked column, `alias.column`, after the annotations asked for: its column's
/// logical name, its formatted value, a lookup's target table.
fn linked_member(object: &mut ObjectWriter<'_>, linked: &Linked, annotations: &Annotations) {
    let name = &linked.name;
    if annotations.includes(ATTRIBUTE_NAME) {
        object.string(&format!("{name}@{ATTRIBUTE_NAME}"), &linked.column);
    }
    if let (true, Some(text)) = (annotations.includes(FORMATTED_VALUE), &linked.formatted) {
        object.string(&format!("{name}@{FORMATTED_VALUE}"), text);
    }
    if let (true, Some(target)) = (annotations.includes(LOOKUP_LOGICAL_NAME), &linked.target) {
        object.string(&format!("{name}@{LOOKUP_LOGICAL_NAME}"), target);
    }
    object.value(name, &linked.value);
}

/// One record as a single-entity response (`@odata.context` ends in `/$entity`).
pub fn record_body(request: &Request<'_>, result: &RecordResult) -> Vec<u8> {
    let entity = &result.record.entity;
    let select = result.request.columns.as_deref();
    let names = context_names(entity, select, &result.request.expand);
    let mut context = collection_context(request.root, &entity.entity_set_name, names.as_deref());
    context.push_str("/$entity");
    let mut out = Vec::with_capacity(1024);
    let mut object = ObjectWriter::open(&mut out);
    object.string("@odata.context", &context);
    record_members(&mut object, &result.record, select, request.annotations);
    write_expanded(
        request.root,
        &mut object,
        &result.expanded,
        request.annotations,
    );
    object.close();
    out
}

/// A page of rows, in the conventions of the front end that asked.
pub fn rows_body(request: &Request<'_>, result: &RowsResult) -> Vec<u8> {
    rows_body_tracked(request, result, None)
}

/// What a change-tracking response adds to a page of rows.
#[derive(Debug)]
pub struct Tracking<'a> {
    /// A delta link's answer (context `.../$delta`), not the first read.
    pub delta: bool,
    /// Rows deleted or no longer readable: `$deletedEntity` entries after the rows.
    pub removed: &'a [Uuid],
    /// The delta token for `@odata.deltaLink` (written on the last page only).
    pub token: &'a str,
}

/// A page of rows with the change-tracking members (`@odata.deltaLink`, `$deletedEntity`).
pub fn rows_body_tracked(
    request: &Request<'_>,
    result: &RowsResult,
    tracking: Option<&Tracking<'_>>,
) -> Vec<u8> {
    let read = &result.request;
    let entity = &read.entity;
    let annotations = request.annotations;
    let select = read.columns.as_deref();
    let fetch = read.front == Front::FetchXml;
    let names = if fetch {
        None
    } else {
        context_names(entity, select, &read.expand)
    };
    let mut out = Vec::with_capacity(256 + result.rows.len() * 1024);
    let mut body = ObjectWriter::open(&mut out);
    let context = collection_context(request.root, &entity.entity_set_name, names.as_deref());
    match tracking {
        Some(t) if t.delta => body.string("@odata.context", &format!("{context}/$delta")),
        _ => body.string("@odata.context", &context),
    }
    if let Some(t) = tracking.filter(|_| !result.more) {
        body.string("@odata.deltaLink", &delta_link(request, entity, t.token));
    }
    let cap = PAGE_LIMIT as u64;
    match (read.front, result.total) {
        (Front::OData, Some(total)) => body.value("@odata.count", &Value::Int(total as i64)),
        (Front::FetchXml, Some(total)) => {
            body.value(
                &format!("@{TOTAL_COUNT}"),
                &Value::Int(total.min(cap) as i64),
            );
            body.value(
                &format!("@{TOTAL_COUNT_EXCEEDED}"),
                &Value::Bool(total > cap),
            );
        }
        (_, None) => {}
    }
    let ends = result.rows.first().zip(result.rows.last());
    if fetch {
        // A one-to-many join is paged by page number alone: Dataverse issues no cookie for it.
        if result.more && read.join.is_none() && annotations.includes(PAGING_COOKIE) {
            if let Some((first, last)) = ends {
                let cookie = fetch_paging_cookie(
                    entity,
                    &read.order,
                    read.page.number,
                    &first.record,
                    &last.record,
                );
                body.string(&format!("@{PAGING_COOKIE}"), &cookie);
            }
        }
        if annotations.includes(MORE_RECORDS) {
            body.value(&format!("@{MORE_RECORDS}"), &Value::Bool(result.more));
        }
    }
    let array = body.raw_key("value");
    array.push(b'[');
    for (i, row) in result.rows.iter().enumerate() {
        if i > 0 {
            array.push(b',');
        }
        let mut object = ObjectWriter::open(array);
        if fetch {
            record_members_without_nulls(&mut object, &row.record, select, annotations);
        } else {
            record_members(&mut object, &row.record, select, annotations);
        }
        write_expanded(request.root, &mut object, &row.expanded, annotations);
        for linked in &row.linked {
            linked_member(&mut object, linked, annotations);
        }
        object.close();
    }
    if let Some(t) = tracking {
        let deleted = format!(
            "{}$metadata#{}/$deletedEntity",
            request.root, entity.entity_set_name
        );
        for (i, id) in t.removed.iter().enumerate() {
            if i > 0 || !result.rows.is_empty() {
                array.push(b',');
            }
            let mut object = ObjectWriter::open(array);
            object.string("@odata.context", &deleted);
            object.string("id", &id.to_string());
            object.string("reason", "deleted");
            object.close();
        }
    }
    array.push(b']');
    if !fetch && result.more {
        if let Some((first, last)) = ends {
            let token = skip_token(
                entity,
                &read.order,
                read.page.number,
                &first.record,
                &last.record,
            );
            body.string("@odata.nextLink", &next_link(request, entity, &token));
        }
    }
    body.close();
    out
}

/// An audit detail's `OldValue` or `NewValue`: its `@odata.type` and the given columns, by
/// property name (`_x_value` for a lookup), as a record's members are written.
pub fn audit_values(record: &Record, columns: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut object = ObjectWriter::open(&mut out);
    object.string(
        "@odata.type",
        &format!("#{}", record.entity.edm_type_name()),
    );
    for &position in columns {
        let attribute = &record.entity.attributes[position];
        object.value(attribute.property_name(), &record.values[position]);
    }
    object.close();
    out
}

/// The response of an aggregation: one object per group, its values named by the request's
/// output names. FetchXML leaves null values out; OData writes them.
pub fn aggregate_body(request: &Request<'_>, read: &AggregateRead, rows: &[Vec<Value>]) -> Vec<u8> {
    let omit_nulls = read.front == Front::FetchXml;
    let mut out = Vec::with_capacity(256 + rows.len() * 64);
    let mut body = ObjectWriter::open(&mut out);
    body.string(
        "@odata.context",
        &collection_context(request.root, &read.entity.entity_set_name, None),
    );
    let array = body.raw_key("value");
    array.push(b'[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            array.push(b',');
        }
        let mut object = ObjectWriter::open(array);
        for (name, value) in read.names.iter().zip(row) {
            if !(omit_nulls && value.is_null()) {
                object.value(name, value);
            }
        }
        object.close();
    }
    array.push(b']');
    body.close();
    out
}

/// Characters a query-string name or value keeps as they are (`$select`, `a,b`, `(x)`).
const QUERY_SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b',')
    .remove(b'(')
    .remove(b')')
    .remove(b'\'')
    .remove(b':')
    .remove(b'/')
    .remove(b'@');

fn encode_query(text: &str) -> String {
    utf8_percent_encode(text, QUERY_SAFE).to_string()
}

/// The delta link: the request's `$select` (every other option is refused with change
/// tracking) and `$deltatoken`.
fn delta_link(request: &Request<'_>, entity: &Entity, token: &str) -> String {
    link(request, entity, |k| k == "$select", ("$deltatoken", token))
}

/// The request's URL with `$skiptoken` replaced by `token`.
fn next_link(request: &Request<'_>, entity: &Entity, token: &str) -> String {
    link(
        request,
        entity,
        |k| k != "$skiptoken",
        ("$skiptoken", token),
    )
}

/// The request's URL with the query pairs `keep` keeps, then `last`.
fn link(
    request: &Request<'_>,
    entity: &Entity,
    keep: impl Fn(&str) -> bool,
    last: (&str, &str),
) -> String {
    let query: Vec<String> = request
        .pairs
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(std::iter::once(last))
        .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
        .collect();
    format!(
        "{}{}?{}",
        request.root,
        request.path.unwrap_or(&entity.entity_set_name),
        query.join("&")
    )
}

/// The `$skiptoken` that resumes after `last`, the final row of page `page`:
/// `<cookie pagenumber="{page + 1}" pagingcookie="{inner, URL-encoded}" istracking="False" />`.
/// `query::skiptoken` reads it back.
pub fn skip_token(
    entity: &Entity,
    order: &[OrderBy],
    page: usize,
    first: &Record,
    last: &Record,
) -> String {
    outer_cookie(&inner_cookie(entity, order, page, first, last), page, 1)
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
    outer_cookie(&inner_cookie(entity, order, page, first, last), page, 2)
}

/// `<cookie pagenumber=".." pagingcookie="{inner, URL-encoded `times` times}" istracking=.. />`.
fn outer_cookie(inner: &str, page: usize, times: usize) -> String {
    let mut encoded = inner.to_string();
    for _ in 0..times {
        encoded = utf8_percent_encode(&encoded, NON_ALPHANUMERIC).to_string();
    }
    format!(
        "<cookie pagenumber=\"{}\" pagingcookie=\"{encoded}\" istracking=\"False\" />",
        page + 1
    )
}

/// `<cookie page="1"><key last="..." />...<id last="{..}" first="{..}" /></cookie>`; a NULL
/// key is written `null="1"`.
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
            Some(text) => inner.push_str(&format!("<{name} last=\"{}\" />", escape_xml(&text))),
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

fn cookie_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Guid(g) => Some(format!("{{{}}}", g.hyphenated().to_string().to_uppercase())),
        other => raw_value(other),
    }
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_dataverse_json() {
        let mut out = Vec::new();
        let mut object = ObjectWriter::open(&mut out);
        object.value("t", &Value::Text("a\"b".into()));
        object.value("n", &Value::Null);
        object.value("i", &Value::Int(-3));
        object.value("b", &Value::Bool(true));
        object.value("d", &Value::DateTime(1714557600));
        object.value("g", &Value::Guid(uuid::Uuid::nil()));
        object.close();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"t":"a\"b","n":null,"i":-3,"b":true,"d":"2024-05-01T10:00:00Z","g":"00000000-0000-0000-0000-000000000000"}"#
        );
    }

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

    #[test]
    fn skip_tokens_round_trip_with_typed_and_null_keys() {
        use crate::metadata::Catalog;
        use crate::query::options::parse_orderby;
        use crate::query::skiptoken::parse_skip_token;
        use crate::query::Literal;
        use std::sync::Arc;

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
        let cursor = parse_skip_token(entity, &order, &token).unwrap();
        assert_eq!(cursor.page, 4);
        assert_eq!(
            cursor.keyset,
            vec![
                Literal::String("a \"quoted\" <name> & more".into()),
                Literal::DateTime(1714557600),
                Literal::Null,
                Literal::Int(1),
                Literal::Guid(id)
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
