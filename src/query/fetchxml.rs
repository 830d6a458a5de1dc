//! FetchXML: Dataverse's XML query language, read with a real XML parser and bound against the
//! [`Catalog`] into a typed [`FetchQuery`] whose filter is the same [`Expr`] tree `$filter`
//! produces. One query plan serves both front ends.
//!
//! Two stages, as for `$filter`. `read` turns the text into a small element tree: quick-xml
//! does the XML (well-formedness, entities, attribute normalisation); this module refuses DTDs
//! and limits the length ([`MAX_OPTION_LENGTH`]) and the element depth ([`MAX_ELEMENT_DEPTH`]).
//! The binder then walks the tree, checks it against the FetchXML schema and the metadata, and
//! types every condition value with `filter::literal_for`, the helper the OData side uses.
//!
//! What is read (attributes in brackets are optional, `*` repeats, `|` is a choice):
//!
//! ```text
//! fetch [top count page paging-cookie distinct aggregate aggregatelimit returntotalrecordcount
//!        datasource; ignored: no-lock mapping version output-format latematerialize options
//!        useraworderby min-active-row-version utc-offset]
//!   entity name
//!     attribute name [alias aggregate groupby dategrouping distinct usertimezone]   *
//!     all-attributes
//!     order attribute|alias [descending]                                            *
//!     filter [type=and|or]                                                          *
//!       condition attribute operator [value valueof uiname uitype uihidden]        *
//!         value [uiname uitype]  text                                               *
//!       filter ...                                                                  *
//!     link-entity name [from to alias link-type=inner|outer visible intersect]      *
//!       attribute, all-attributes, order, filter: as above, on the linked table
//! ```
//!
//! Binding rules:
//! - Names are logical names. A condition, order or aggregate names an EDM property column of
//!   its table; its [`PropertyRef`] carries the property name (`_ownerid_value` for `ownerid`),
//!   so the tree equals the one the same `$filter` produces. An `<attribute>` may also name a
//!   lookup's name column (`owneridname`), which selects the lookup (its name comes back as the
//!   formatted value), and `owneridtype`, which is skipped (the lookup's annotations carry it).
//! - Root columns: `None` (every column) with `<all-attributes/>` or with no `<attribute>`;
//!   link-entity columns: `Some(empty)` without `<attribute>`, `None` with `<all-attributes/>`.
//! - Operators map onto the `$filter` variants: `eq ne gt ge lt le` → [`Expr::Compare`]
//!   (`valueof` → [`Expr::ComparePropProp`]), `null`/`not-null` → [`Expr::IsNull`]/
//!   [`Expr::NotNull`], `like` → [`Expr::Like`], `begins-with`/`ends-with` →
//!   [`Expr::StringFn`], the `not-` forms → [`Expr::Not`], and everything else →
//!   [`Expr::QueryFn`]. `neq` is `ne`; `older-x-days` is accepted for `olderthan-x-days`.
//! - An empty `value` attribute is ignored when the operator takes no value or when `<value>`
//!   children are given (tools write `value=''` next to `<value>` lists).
//! - Links: single hop, from a lookup of the root table (`to`) to the primary key (`from`) of
//!   the table it points at; `from` defaults to that key, `to` to the only lookup pointing at
//!   the table. A missing alias becomes `<table><n>`, as Dataverse names it.
//! - `aggregate='true'`: every `<attribute>` has `aggregate` (with an `alias`) or
//!   `groupby='true'` (alias defaults to the column name); `sum`/`avg` take number columns,
//!   `min`/`max` number and date columns; grouping by a date column needs `dategrouping`;
//!   `<order>` names an alias.
//! - Paging: `count` (page size) and `top` are 1..=5000, `page` from 1, `top` excludes `count`
//!   and `page`; `paging-cookie` is kept as written (see [`parse_paging_cookie`]).

use std::sync::Arc;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::apply::AggregateFn;
use super::ast::{CmpOp, Expr, FnValues, Literal, PropertyRef, QueryFnName, StringFn};
use super::error::QueryError;
use super::filter;
use super::options::OrderBy;
use super::MAX_OPTION_LENGTH;
use crate::metadata::{Attribute, AttributeType, Catalog, Entity};

/// The largest page (`count`) and `top` Dataverse accepts.
pub const MAX_PAGE_SIZE: u32 = 5000;

/// The largest `aggregatelimit` (Dataverse's aggregate record limit).
pub const MAX_AGGREGATE_LIMIT: u32 = 50_000;

/// How deep elements may nest; filters are the only elements that nest freely.
pub const MAX_ELEMENT_DEPTH: usize = filter::MAX_DEPTH;

/// A bound FetchXML query.
#[derive(Debug, Clone)]
pub struct FetchQuery {
    pub entity: Arc<Entity>,
    /// `None`: every column (`<all-attributes/>`, or no `<attribute>` at all). Aggregate queries
    /// have `Some(empty)`: their columns are in [`FetchQuery::aggregate`].
    pub columns: Option<Vec<PropertyRef>>,
    pub filter: Option<Expr>,
    /// Root `<order attribute>` keys, in document order (empty for aggregate queries, whose
    /// order is [`Aggregate::order`]).
    pub order: Vec<OrderBy>,
    pub top: Option<u32>,
    /// The page size, at most [`MAX_PAGE_SIZE`].
    pub count: Option<u32>,
    /// The page number, from 1.
    pub page: Option<u32>,
    /// `paging-cookie`, as written.
    pub paging_cookie: Option<String>,
    pub distinct: bool,
    pub return_total_record_count: bool,
    pub links: Vec<LinkEntity>,
    pub aggregate: Option<Aggregate>,
}

/// A bound `<link-entity>`: a join from a lookup of the root table to the table it points at.
#[derive(Debug, Clone)]
pub struct LinkEntity {
    pub entity: Arc<Entity>,
    /// The column of the linked table the join matches: its primary key.
    pub from: PropertyRef,
    /// The lookup column of the root table.
    pub to: PropertyRef,
    /// As written, or `<table><n>` when the query gave none.
    pub alias: String,
    /// `link-type='outer'`.
    pub outer: bool,
    /// `None`: every column (`<all-attributes/>`); `Some(empty)`: none (no `<attribute>`).
    pub columns: Option<Vec<PropertyRef>>,
    /// Bound against the linked table.
    pub filter: Option<Expr>,
    /// `<order>` keys inside the link, applied after the root's.
    pub order: Vec<OrderBy>,
}

/// The aggregate part of an `aggregate='true'` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// Group-by and aggregate columns, in document order (root first, then each link's).
    pub columns: Vec<AggregateColumn>,
    /// `<order alias>` keys.
    pub order: Vec<AggregateOrder>,
    /// `aggregatelimit`, at most [`MAX_AGGREGATE_LIMIT`].
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateColumn {
    pub alias: String,
    /// `None`: a column of the root table; `Some(i)`: of `FetchQuery::links[i]`.
    pub link: Option<usize>,
    pub prop: PropertyRef,
    pub kind: AggregateKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateKind {
    /// `groupby='true'`, with the date part for date columns.
    GroupBy { date: Option<DateGrouping> },
    /// `aggregate='...'`, the function shared with `$apply`.
    Function { function: AggregateFn },
}

/// The FetchXML spelling of an aggregate function (`countcolumn` with `distinct='true'` is
/// [`AggregateFn::CountDistinct`]).
fn aggregate_function(word: &str) -> Option<AggregateFn> {
    Some(match word {
        "count" => AggregateFn::Count,
        "countcolumn" => AggregateFn::CountColumn,
        "sum" => AggregateFn::Sum,
        "avg" => AggregateFn::Average,
        "min" => AggregateFn::Min,
        "max" => AggregateFn::Max,
        _ => return None,
    })
}

fn aggregate_word(function: AggregateFn) -> &'static str {
    match function {
        AggregateFn::Count => "count",
        AggregateFn::CountColumn | AggregateFn::CountDistinct => "countcolumn",
        AggregateFn::Sum => "sum",
        AggregateFn::Average => "avg",
        AggregateFn::Min => "min",
        AggregateFn::Max => "max",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateGrouping {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl DateGrouping {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "year" => Self::Year,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateOrder {
    pub alias: String,
    pub descending: bool,
}

/// Parses FetchXML and binds it against `catalog`. The caller checks that
/// [`FetchQuery::entity`] is the table of the entity set the query was sent to.
pub fn parse(catalog: &Catalog, text: &str) -> Result<FetchQuery, QueryError> {
    let root = read(text)?;
    Binder { catalog }.fetch(&root)
}

/// Reads the keyset of a paging cookie: `(column, last value)` for each column element of
/// `<cookie page="1"><msdyn_smsengagementctxid last="{GUID}" first="{GUID}" /></cookie>`.
///
/// The text may be url-encoded (once or twice, as Dataverse emits it inside
/// `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie`), and may be that outer
/// `<cookie pagenumber=".." pagingcookie=".." istracking="False" />` wrapper. A column whose
/// last value was null (`lastnull="1"`) yields an empty string. `None` when the text is not a
/// cookie.
pub fn parse_paging_cookie(text: &str) -> Option<Vec<(String, String)>> {
    let mut current = text.trim().to_string();
    for _ in 0..6 {
        if current.starts_with('<') {
            let root = read(&current).ok()?;
            if root.name != "cookie" || !root.text.trim().is_empty() {
                return None;
            }
            if let Some(inner) = root.attribute("pagingcookie") {
                current = inner.trim().to_string();
                continue;
            }
            return root
                .children
                .iter()
                .map(|column| {
                    if !column.children.is_empty() {
                        return None;
                    }
                    let last = match (column.attribute("last"), column.attribute("lastnull")) {
                        (Some(last), _) => last.to_string(),
                        (None, Some("1")) => String::new(),
                        _ => return None,
                    };
                    Some((column.name.clone(), last))
                })
                .collect();
        }
        // Form encoding: `+` is a space, a literal `+` is `%2B`.
        let plus_as_space = current.replace('+', " ");
        let decoded = percent_encoding::percent_decode_str(&plus_as_space)
            .decode_utf8()
            .ok()?
            .trim()
            .to_string();
        if decoded == current {
            return None;
        }
        current = decoded;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Reading: text → element tree.

/// One element of the document, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    name: String,
    /// Names and normalised values, in document order (`xmlns` declarations included).
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
    /// The character data directly inside, concatenated.
    text: String,
    /// Character offset of its `<`.
    position: usize,
}

impl Element {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `text` into its root element.
fn read(text: &str) -> Result<Element, QueryError> {
    let length = text.chars().count();
    if length > MAX_OPTION_LENGTH {
        return Err(QueryError::TooLong {
            option: "fetchXml".into(),
            length,
            limit: MAX_OPTION_LENGTH,
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let offsets = std::cell::RefCell::new(Offsets { byte: 0, chars: 0 });
    let char_offset = |byte: u64| offsets.borrow_mut().chars_before(text, byte);
    let invalid = |position: usize, what: String| QueryError::InvalidXml {
        detail: format!("{what} (at position {position})."),
    };
    // The text is a `str`, so decoding cannot fail; the reader reports it all the same.
    let encoding =
        |position: usize, e: &dyn std::fmt::Display| invalid(position, format!("Bad text: {e}"));

    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let start = char_offset(reader.buffer_position());
        let event = reader.read_event().map_err(|e| {
            let at = char_offset(reader.error_position());
            invalid(at, format!("The document is not well-formed: {e}"))
        })?;
        let (element, empty) = match event {
            Event::Start(tag) => (tag, false),
            Event::Empty(tag) => (tag, true),
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| invalid(start, "An end tag closes no element".into()))?;
                attach(&mut stack, &mut root, element)
                    .map_err(|what| invalid(start, what.into()))?;
                continue;
            }
            Event::Text(content) => {
                let content = content.xml10_content().map_err(|e| encoding(start, &e))?;
                append_text(&mut stack, &content).map_err(|what| invalid(start, what.into()))?;
                continue;
            }
            Event::CData(content) => {
                let content = content.xml10_content().map_err(|e| encoding(start, &e))?;
                append_text(&mut stack, &content).map_err(|what| invalid(start, what.into()))?;
                continue;
            }
            Event::GeneralRef(reference) => {
                let name = reference.decode().map_err(|e| encoding(start, &e))?;
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| {
                            invalid(start, format!("The entity '&{name};' is not defined"))
                        })?
                        .to_string(),
                    Err(e) => {
                        return Err(invalid(start, format!("A bad character reference: {e}")))
                    }
                };
                append_text(&mut stack, &resolved).map_err(|what| invalid(start, what.into()))?;
                continue;
            }
            Event::DocType(_) => {
                return Err(invalid(
                    start,
                    "A document type declaration is not allowed".into(),
                ))
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => continue,
            Event::Eof => break,
        };
        if stack.len() >= MAX_ELEMENT_DEPTH {
            return Err(QueryError::TooDeep);
        }
        let mut attributes = Vec::new();
        for attribute in element.attributes() {
            let attribute =
                attribute.map_err(|e| invalid(start, format!("A malformed attribute: {e}")))?;
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| invalid(start, format!("A malformed attribute value: {e}")))?;
            let name =
                std::str::from_utf8(attribute.key.as_ref()).map_err(|e| encoding(start, &e))?;
            attributes.push((name.to_string(), value.into_owned()));
        }
        let name = std::str::from_utf8(element.name().as_ref())
            .map_err(|e| encoding(start, &e))?
            .to_string();
        let element = Element {
            name,
            attributes,
            children: Vec::new(),
            text: String::new(),
            position: start,
        };
        if empty {
            attach(&mut stack, &mut root, element).map_err(|what| invalid(start, what.into()))?;
        } else {
            stack.push(element);
        }
    }
    let end = text.chars().count();
    if let Some(open) = stack.last() {
        return Err(invalid(
            end,
            format!("The element '{}' is not closed", open.name),
        ));
    }
    root.ok_or_else(|| invalid(end, "The document has no root element".into()))
}

/// Converts the byte offsets quick-xml reports into character offsets, counting forward from the
/// last offset asked for (they only grow while reading).
struct Offsets {
    byte: usize,
    chars: usize,
}

impl Offsets {
    fn chars_before(&mut self, text: &str, byte: u64) -> usize {
        let mut byte = usize::try_from(byte).unwrap_or(usize::MAX).min(text.len());
        while !text.is_char_boundary(byte) {
            byte -= 1;
        }
        if byte < self.byte {
            *self = Offsets { byte: 0, chars: 0 };
        }
        self.chars += text[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), &'static str> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_some() => return Err("The document has more than one root element"),
        None => *root = Some(element),
    }
    Ok(())
}

fn append_text(stack: &mut [Element], text: &str) -> Result<(), &'static str> {
    match stack.last_mut() {
        Some(element) => element.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err("Text is not allowed outside the root element"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Binding: element tree → FetchQuery.

/// A condition operator, as it maps onto the AST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Compare(CmpOp),
    Null,
    NotNull,
    Like { negated: bool },
    Text { func: StringFn, negated: bool },
    Function(QueryFnName),
}

/// Every condition operator smsctx evaluates, by its FetchXML name.
const OPERATORS: [(&str, Operator); 38] = [
    ("eq", Operator::Compare(CmpOp::Eq)),
    ("ne", Operator::Compare(CmpOp::Ne)),
    ("neq", Operator::Compare(CmpOp::Ne)),
    ("gt", Operator::Compare(CmpOp::Gt)),
    ("ge", Operator::Compare(CmpOp::Ge)),
    ("lt", Operator::Compare(CmpOp::Lt)),
    ("le", Operator::Compare(CmpOp::Le)),
    ("null", Operator::Null),
    ("not-null", Operator::NotNull),
    ("like", Operator::Like { negated: false }),
    ("not-like", Operator::Like { negated: true }),
    (
        "begins-with",
        Operator::Text {
            func: StringFn::StartsWith,
            negated: false,
        },
    ),
    (
        "not-begin-with",
        Operator::Text {
            func: StringFn::StartsWith,
            negated: true,
        },
    ),
    (
        "ends-with",
        Operator::Text {
            func: StringFn::EndsWith,
            negated: false,
        },
    ),
    (
        "not-end-with",
        Operator::Text {
            func: StringFn::EndsWith,
            negated: true,
        },
    ),
    ("in", Operator::Function(QueryFnName::In)),
    ("not-in", Operator::Function(QueryFnName::NotIn)),
    ("between", Operator::Function(QueryFnName::Between)),
    ("not-between", Operator::Function(QueryFnName::NotBetween)),
    ("on", Operator::Function(QueryFnName::On)),
    ("on-or-after", Operator::Function(QueryFnName::OnOrAfter)),
    ("on-or-before", Operator::Function(QueryFnName::OnOrBefore)),
    ("today", Operator::Function(QueryFnName::Today)),
    ("yesterday", Operator::Function(QueryFnName::Yesterday)),
    ("tomorrow", Operator::Function(QueryFnName::Tomorrow)),
    ("last-x-days", Operator::Function(QueryFnName::LastXDays)),
    ("next-x-days", Operator::Function(QueryFnName::NextXDays)),
    ("last-x-hours", Operator::Function(QueryFnName::LastXHours)),
    ("next-x-hours", Operator::Function(QueryFnName::NextXHours)),
    ("last-x-weeks", Operator::Function(QueryFnName::LastXWeeks)),
    (
        "last-x-months",
        Operator::Function(QueryFnName::LastXMonths),
    ),
    ("last-x-years", Operator::Function(QueryFnName::LastXYears)),
    (
        "olderthan-x-days",
        Operator::Function(QueryFnName::OlderThanXDays),
    ),
    (
        "older-x-days",
        Operator::Function(QueryFnName::OlderThanXDays),
    ),
    ("eq-userid", Operator::Function(QueryFnName::EqualUserId)),
    ("ne-userid", Operator::Function(QueryFnName::NotEqualUserId)),
    (
        "eq-businessid",
        Operator::Function(QueryFnName::EqualBusinessId),
    ),
    (
        "ne-businessid",
        Operator::Function(QueryFnName::NotEqualBusinessId),
    ),
];

/// Dataverse operators that do not apply to this server's tables or are not evaluated yet.
const UNSUPPORTED_OPERATORS: [&str; 46] = [
    "above",
    "eq-or-above",
    "eq-or-under",
    "under",
    "not-under",
    "eq-useroruserhierarchy",
    "eq-useroruserhierarchyandteams",
    "eq-useroruserteams",
    "eq-userteams",
    "eq-userlanguage",
    "contain-values",
    "not-contain-values",
    "in-fiscal-period",
    "in-fiscal-period-and-year",
    "in-fiscal-year",
    "in-or-after-fiscal-period-and-year",
    "in-or-before-fiscal-period-and-year",
    "last-fiscal-period",
    "last-fiscal-year",
    "last-month",
    "last-seven-days",
    "last-week",
    "last-x-fiscal-periods",
    "last-x-fiscal-years",
    "last-year",
    "next-fiscal-period",
    "next-fiscal-year",
    "next-month",
    "next-seven-days",
    "next-week",
    "next-x-fiscal-periods",
    "next-x-fiscal-years",
    "next-x-months",
    "next-x-weeks",
    "next-x-years",
    "next-year",
    "olderthan-x-hours",
    "olderthan-x-minutes",
    "olderthan-x-months",
    "olderthan-x-weeks",
    "olderthan-x-years",
    "this-fiscal-period",
    "this-fiscal-year",
    "this-month",
    "this-week",
    "this-year",
];

impl Operator {
    fn parse(name: &str) -> Result<Operator, QueryError> {
        if let Some((_, op)) = OPERATORS.iter().find(|(n, _)| *n == name) {
            return Ok(*op);
        }
        if UNSUPPORTED_OPERATORS.contains(&name) {
            return Err(QueryError::Unsupported {
                what: format!("The condition operator '{name}'"),
            });
        }
        Err(QueryError::UnknownOperator {
            operator: name.to_string(),
        })
    }

    /// The SDK's `ConditionOperator` name, which Dataverse's messages use.
    fn sdk_name(self) -> &'static str {
        match self {
            Operator::Compare(op) => op.kind_name(),
            Operator::Null => "Null",
            Operator::NotNull => "NotNull",
            Operator::Like { negated: false } => "Like",
            Operator::Like { negated: true } => "NotLike",
            Operator::Text {
                func: StringFn::StartsWith,
                negated: false,
            } => "BeginsWith",
            Operator::Text {
                func: StringFn::StartsWith,
                negated: true,
            } => "DoesNotBeginWith",
            Operator::Text {
                func: StringFn::EndsWith,
                negated: false,
            } => "EndsWith",
            Operator::Text {
                func: StringFn::EndsWith,
                negated: true,
            } => "DoesNotEndWith",
            Operator::Text {
                func: StringFn::Contains,
                negated: false,
            } => "Contains",
            Operator::Text {
                func: StringFn::Contains,
                negated: true,
            } => "DoesNotContain",
            Operator::Function(name) => name.name(),
        }
    }

    /// Whether the operator reads `<value>` lists (so an empty `value` attribute is noise).
    fn takes_list(self) -> bool {
        matches!(
            self,
            Operator::Function(f) if matches!(f.values(), FnValues::List | FnValues::Range)
        )
    }

    fn takes_no_value(self) -> bool {
        match self {
            Operator::Null | Operator::NotNull => true,
            Operator::Function(f) => f.values() == FnValues::None,
            _ => false,
        }
    }
}

/// The .NET type Dataverse names when a condition value does not convert.
fn clr_type(t: AttributeType) -> &'static str {
    use AttributeType as T;
    match t {
        T::Integer | T::Picklist | T::State | T::Status => "System.Int32",
        T::BigInt => "System.Int64",
        T::Uniqueidentifier | T::Lookup | T::Owner => "System.Guid",
        T::DateTime => "System.DateTime",
        T::Boolean => "System.Boolean",
        T::String | T::Memo | T::EntityName => "System.String",
    }
}

fn schema(element: &Element, what: String) -> QueryError {
    QueryError::FetchXmlSchema {
        detail: format!(
            "{what} (element '{}' at position {}).",
            element.name, element.position
        ),
    }
}

fn invalid_fetch(detail: String) -> QueryError {
    QueryError::InvalidFetch { detail }
}

fn unsupported(what: String) -> QueryError {
    QueryError::Unsupported { what }
}

/// The attributes of one element, checked against the names the schema allows there.
struct Attrs<'e> {
    element: &'e Element,
}

impl<'e> Attrs<'e> {
    fn new(element: &'e Element, allowed: &[&str]) -> Result<Self, QueryError> {
        for (name, _) in &element.attributes {
            let declaration = name == "xmlns" || name.starts_with("xmlns:");
            if !declaration && !allowed.contains(&name.as_str()) {
                return Err(schema(
                    element,
                    format!("The '{name}' attribute is not declared"),
                ));
            }
        }
        Ok(Attrs { element })
    }

    fn get(&self, name: &str) -> Option<&'e str> {
        self.element.attribute(name)
    }

    fn required(&self, name: &str) -> Result<&'e str, QueryError> {
        self.get(name).ok_or_else(|| {
            schema(
                self.element,
                format!("The required attribute '{name}' is missing"),
            )
        })
    }

    fn invalid_value(&self, name: &str, value: &str, datatype: &str) -> QueryError {
        schema(
            self.element,
            format!(
                "The '{name}' attribute is invalid - The value '{value}' is invalid according to its datatype '{datatype}'"
            ),
        )
    }

    /// An XML Schema boolean (`true`, `false`, `1`, `0`); `false` when absent.
    fn boolean(&self, name: &str) -> Result<bool, QueryError> {
        match self.get(name).map(str::trim) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(self.invalid_value(name, other, "Boolean")),
        }
    }

    /// A positive integer, at most `max`.
    fn positive(&self, name: &str, max: u32) -> Result<Option<u32>, QueryError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let number: i64 = text
            .trim()
            .parse()
            .map_err(|_| self.invalid_value(name, text, "Int32"))?;
        if number < 1 {
            return Err(invalid_fetch(format!(
                "The '{name}' attribute must be greater than zero; it is {number}."
            )));
        }
        if number > i64::from(max) {
            return Err(invalid_fetch(format!(
                "The '{name}' attribute is {number}; it cannot exceed {max}."
            )));
        }
        Ok(u32::try_from(number).ok())
    }
}

/// Refuses character data in an element that has none.
fn no_text(element: &Element) -> Result<(), QueryError> {
    if element.text.trim().is_empty() {
        Ok(())
    } else {
        Err(schema(element, "The element cannot contain text".into()))
    }
}

fn invalid_child(parent: &Element, child: &Element) -> QueryError {
    schema(
        parent,
        format!(
            "The element '{}' has invalid child element '{}'",
            parent.name, child.name
        ),
    )
}

/// An `<attribute>` element, bound.
struct BoundAttribute {
    /// `None` for a column that is read but not selected (`owneridtype`).
    prop: Option<PropertyRef>,
    /// The type of the column `prop` refers to.
    column_type: Option<AttributeType>,
    name: String,
    alias: Option<String>,
    aggregate: Option<AggregateFn>,
    groupby: bool,
    dategrouping: Option<DateGrouping>,
    distinct: bool,
}

/// An `<order>` element, bound.
struct BoundOrder {
    prop: Option<PropertyRef>,
    alias: Option<String>,
    descending: bool,
}

/// The children an `entity` and a `link-entity` share, bound against their table.
struct Body<'e> {
    attributes: Vec<BoundAttribute>,
    all_attributes: bool,
    orders: Vec<BoundOrder>,
    filter: Option<Expr>,
    links: Vec<&'e Element>,
}

struct Binder<'c> {
    catalog: &'c Catalog,
}

impl Binder<'_> {
    fn fetch(&self, root: &Element) -> Result<FetchQuery, QueryError> {
        if root.name != "fetch" {
            return Err(QueryError::InvalidXml {
                detail: format!(
                    "The root element is '{}'; a FetchXML query is a 'fetch' element.",
                    root.name
                ),
            });
        }
        let a = Attrs::new(
            root,
            &[
                "top",
                "count",
                "page",
                "paging-cookie",
                "distinct",
                "aggregate",
                "aggregatelimit",
                "returntotalrecordcount",
                "datasource",
                "no-lock",
                "mapping",
                "version",
                "output-format",
                "latematerialize",
                "options",
                "useraworderby",
                "min-active-row-version",
                "utc-offset",
            ],
        )?;
        no_text(root)?;
        let top = a.positive("top", MAX_PAGE_SIZE)?;
        let count = a.positive("count", MAX_PAGE_SIZE)?;
        let page = a.positive("page", u32::MAX)?;
        if let (Some(top), true) = (top, count.is_some() || page.is_some()) {
            return Err(invalid_fetch(format!(
                "The Top.Count = {top} can't be specified with pagingInfo."
            )));
        }
        let aggregate = a.boolean("aggregate")?;
        let aggregate_limit = a.positive("aggregatelimit", MAX_AGGREGATE_LIMIT)?;
        if aggregate_limit.is_some() && !aggregate {
            return Err(invalid_fetch(
                "The 'aggregatelimit' attribute applies to aggregate queries only.".into(),
            ));
        }
        match a.get("datasource") {
            None | Some("live") => {}
            Some(other) => {
                return Err(unsupported(format!("The datasource '{other}'")));
            }
        }

        let mut entities = root.children.iter();
        let entity_element = match (entities.next(), entities.next()) {
            (Some(only), None) if only.name == "entity" => only,
            (Some(child), None) => return Err(invalid_child(root, child)),
            (Some(_), Some(second)) => return Err(invalid_child(root, second)),
            (None, _) => {
                return Err(QueryError::InvalidXml {
                    detail: "The 'fetch' element has no 'entity' element.".into(),
                })
            }
        };
        let ea = Attrs::new(
            entity_element,
            &["name", "enableprefiltering", "prefilterparametername"],
        )?;
        let entity = self.entity(ea.required("name")?)?;
        let body = self.body(&entity, entity_element, true)?;

        let mut links = Vec::new();
        let mut link_bodies = Vec::new();
        for element in &body.links {
            let (link, link_body) = self.link(&entity, element, &links)?;
            links.push(link);
            link_bodies.push(link_body);
        }

        let mut query = FetchQuery {
            entity: entity.clone(),
            columns: None,
            filter: body.filter.clone(),
            order: Vec::new(),
            top,
            count,
            page,
            paging_cookie: a.get("paging-cookie").map(str::to_string),
            distinct: a.boolean("distinct")?,
            return_total_record_count: a.boolean("returntotalrecordcount")?,
            links,
            aggregate: None,
        };
        if aggregate {
            let mut bodies = vec![(None, &body)];
            bodies.extend(link_bodies.iter().enumerate().map(|(i, b)| (Some(i), b)));
            query.aggregate = Some(aggregate_of(&bodies, aggregate_limit)?);
            query.columns = Some(Vec::new());
            for link in &mut query.links {
                link.columns = Some(Vec::new());
            }
        } else {
            query.columns = plain_columns(&body)?;
            query.order = plain_order(&body)?;
            for (link, link_body) in query.links.iter_mut().zip(&link_bodies) {
                link.columns = match plain_columns(link_body)? {
                    None if link_body.all_attributes => None,
                    None => Some(Vec::new()),
                    some => some,
                };
                link.order = plain_order(link_body)?;
            }
        }
        Ok(query)
    }

    fn entity(&self, name: &str) -> Result<Arc<Entity>, QueryError> {
        self.catalog
            .entity(name)
            .cloned()
            .ok_or_else(|| QueryError::UnknownEntity {
                name: name.to_string(),
            })
    }

    /// The children of an `entity` (`root`) or a `link-entity`.
    fn body<'e>(
        &self,
        entity: &Entity,
        element: &'e Element,
        root: bool,
    ) -> Result<Body<'e>, QueryError> {
        no_text(element)?;
        let mut body = Body {
            attributes: Vec::new(),
            all_attributes: false,
            orders: Vec::new(),
            filter: None,
            links: Vec::new(),
        };
        let mut filters = Vec::new();
        for child in &element.children {
            match child.name.as_str() {
                "attribute" => body.attributes.push(self.attribute(entity, child)?),
                "all-attributes" => {
                    Attrs::new(child, &[])?;
                    no_text(child)?;
                    if let Some(grandchild) = child.children.first() {
                        return Err(invalid_child(child, grandchild));
                    }
                    body.all_attributes = true;
                }
                "order" => body.orders.push(self.order(entity, child)?),
                "filter" => filters.extend(self.filter(entity, child)?),
                "link-entity" if root => body.links.push(child),
                "link-entity" => {
                    return Err(unsupported("A link-entity inside a link-entity".into()))
                }
                _ => return Err(invalid_child(element, child)),
            }
        }
        if !filters.is_empty() {
            body.filter = Some(Expr::and(filters));
        }
        Ok(body)
    }

    /// A `<link-entity>` of `root`; its columns and order are filled in by the caller.
    fn link<'e>(
        &self,
        root: &Entity,
        element: &'e Element,
        earlier: &[LinkEntity],
    ) -> Result<(LinkEntity, Body<'e>), QueryError> {
        let a = Attrs::new(
            element,
            &[
                "name",
                "from",
                "to",
                "alias",
                "link-type",
                "visible",
                "intersect",
            ],
        )?;
        let entity = self.entity(a.required("name")?)?;
        let outer = match a.get("link-type").unwrap_or("inner") {
            "inner" => false,
            "outer" => true,
            other => {
                return Err(QueryError::InvalidLinkType {
                    link_type: other.to_string(),
                })
            }
        };
        let points_here = |index: usize| {
            let attribute = &root.attributes[index];
            attribute.attribute_type.is_lookup()
                && attribute.is_stored()
                && attribute.targets.contains(&entity.logical_name)
        };
        let to_index = match a.get("to") {
            Some(to) => {
                let index = root
                    .position(to)
                    .ok_or_else(|| unknown_attribute(root, to))?;
                if !points_here(index) {
                    return Err(unsupported(format!(
                        "A link on '{to}', which is not a lookup of '{}' to '{}',",
                        root.logical_name, entity.logical_name
                    )));
                }
                index
            }
            None => {
                let mut candidates = (0..root.attributes.len()).filter(|&i| points_here(i));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => only,
                    _ => {
                        return Err(invalid_fetch(format!(
                            "The link-entity '{}' needs a 'to' attribute: it must name the one lookup of '{}' it joins on.",
                            entity.logical_name, root.logical_name
                        )))
                    }
                }
            }
        };
        let from_index = entity.primary_id_position();
        if let Some(from) = a.get("from") {
            let index = entity
                .position(from)
                .ok_or_else(|| unknown_attribute(&entity, from))?;
            if index != from_index {
                return Err(unsupported(format!(
                    "A link to '{from}', which is not the primary key of '{}',",
                    entity.logical_name
                )));
            }
        }
        let alias = match a.get("alias") {
            Some(alias) => {
                check_alias(alias)?;
                alias.to_string()
            }
            None => {
                let same_table = earlier
                    .iter()
                    .filter(|l| l.entity.logical_name == entity.logical_name)
                    .count();
                format!("{}{}", entity.logical_name, same_table + 1)
            }
        };
        if earlier.iter().any(|l| l.alias == alias) {
            return Err(invalid_fetch(format!(
                "The link-entity alias '{alias}' is used more than once."
            )));
        }
        let body = self.body(&entity, element, false)?;
        let link = LinkEntity {
            from: column_ref(&entity, from_index),
            to: column_ref(root, to_index),
            alias,
            outer,
            columns: None,
            filter: body.filter.clone(),
            order: Vec::new(),
            entity,
        };
        Ok((link, body))
    }

    fn attribute(&self, entity: &Entity, element: &Element) -> Result<BoundAttribute, QueryError> {
        let a = Attrs::new(
            element,
            &[
                "name",
                "alias",
                "aggregate",
                "groupby",
                "dategrouping",
                "distinct",
                "usertimezone",
            ],
        )?;
        no_text(element)?;
        if let Some(child) = element.children.first() {
            return Err(invalid_child(element, child));
        }
        let name = a.required("name")?;
        let aggregate = match a.get("aggregate") {
            None => None,
            Some(text) => Some(
                aggregate_function(text)
                    .ok_or_else(|| a.invalid_value("aggregate", text, "AggregateType"))?,
            ),
        };
        let dategrouping = match a.get("dategrouping") {
            None => None,
            Some(text @ ("fiscal-period" | "fiscal-year")) => {
                return Err(unsupported(format!("The dategrouping '{text}'")))
            }
            Some(text) => Some(
                DateGrouping::parse(text)
                    .ok_or_else(|| a.invalid_value("dategrouping", text, "DateGroupingType"))?,
            ),
        };
        let groupby = a.boolean("groupby")?;
        let distinct = a.boolean("distinct")?;
        let alias = a.get("alias").map(str::to_string);
        let grouped = aggregate.is_some() || groupby || dategrouping.is_some() || distinct;
        let prop = if grouped {
            Some(bind_column(entity, name, "an aggregate")?)
        } else {
            bind_selected(entity, name)?
        };
        Ok(BoundAttribute {
            column_type: prop
                .as_ref()
                .map(|p| entity.attributes[p.index].attribute_type),
            prop,
            name: name.to_string(),
            alias,
            aggregate,
            groupby,
            dategrouping,
            distinct,
        })
    }

    fn order(&self, entity: &Entity, element: &Element) -> Result<BoundOrder, QueryError> {
        let a = Attrs::new(element, &["attribute", "alias", "descending", "entityname"])?;
        no_text(element)?;
        if let Some(child) = element.children.first() {
            return Err(invalid_child(element, child));
        }
        if a.get("entityname").is_some() {
            return Err(unsupported(
                "An order on a linked table's column from the root entity".into(),
            ));
        }
        let descending = a.boolean("descending")?;
        match (a.get("attribute"), a.get("alias")) {
            (Some(name), None) => Ok(BoundOrder {
                prop: Some(bind_column(entity, name, "an order")?),
                alias: None,
                descending,
            }),
            (None, Some(alias)) => Ok(BoundOrder {
                prop: None,
                alias: Some(alias.to_string()),
                descending,
            }),
            (Some(_), Some(_)) => Err(schema(
                element,
                "An order names an attribute or an alias, not both".into(),
            )),
            (None, None) => Err(schema(
                element,
                "The required attribute 'attribute' is missing".into(),
            )),
        }
    }

    /// A `<filter>`: its conditions and nested filters joined by its type; `None` when empty.
    fn filter(&self, entity: &Entity, element: &Element) -> Result<Option<Expr>, QueryError> {
        let a = Attrs::new(
            element,
            &[
                "type",
                "hint",
                "isquickfindfields",
                "overridequickfindrecordlimitenabled",
                "overridequickfindrecordlimitdisabled",
            ],
        )?;
        no_text(element)?;
        let or = match a.get("type").unwrap_or("and") {
            "and" => false,
            "or" => true,
            other => return Err(a.invalid_value("type", other, "filterType")),
        };
        let mut operands = Vec::new();
        for child in &element.children {
            match child.name.as_str() {
                "condition" => operands.push(self.condition(entity, child)?),
                "filter" => operands.extend(self.filter(entity, child)?),
                _ => return Err(invalid_child(element, child)),
            }
        }
        Ok(match (operands.is_empty(), or) {
            (true, _) => None,
            (false, false) => Some(Expr::and(operands)),
            (false, true) => Some(Expr::or(operands)),
        })
    }

    fn condition(&self, entity: &Entity, element: &Element) -> Result<Expr, QueryError> {
        let a = Attrs::new(
            element,
            &[
                "attribute",
                "operator",
                "value",
                "valueof",
                "entityname",
                "uiname",
                "uitype",
                "uihidden",
            ],
        )?;
        no_text(element)?;
        if a.get("entityname").is_some() {
            return Err(unsupported(
                "A condition on a linked table's column in the root entity's filter".into(),
            ));
        }
        let name = a.required("attribute")?;
        let operator = Operator::parse(a.required("operator")?)?;
        let prop = bind_column(entity, name, "a condition")?;
        let attribute = &entity.attributes[prop.index];

        let mut values: Vec<&str> = Vec::new();
        for child in &element.children {
            if child.name != "value" {
                return Err(invalid_child(element, child));
            }
            Attrs::new(child, &["uiname", "uitype"])?;
            if let Some(grandchild) = child.children.first() {
                return Err(invalid_child(child, grandchild));
            }
            values.push(&child.text);
        }
        if let Some(value) = a.get("value") {
            let noise = value.is_empty()
                && (operator.takes_no_value() || (operator.takes_list() && !values.is_empty()));
            if !noise {
                values.insert(0, value);
            }
        }

        let context = ConditionContext {
            entity,
            attribute,
            name,
            operator,
        };
        if let Some(other) = a.get("valueof") {
            let Operator::Compare(op) = operator else {
                return Err(context.invalid(
                    "'valueof' applies to the operators eq, ne, gt, ge, lt and le only.".into(),
                ));
            };
            context.expect_values(&values, 0, "0")?;
            let right = bind_column(entity, other, "a condition")?;
            let (left_type, right_type) = (
                attribute.attribute_type.edm_type(),
                entity.attributes[right.index].attribute_type.edm_type(),
            );
            if left_type != right_type {
                return Err(context.invalid(format!(
                    "'valueof' names '{other}' of type {right_type}; the column is of type {left_type}."
                )));
            }
            return Ok(Expr::ComparePropProp {
                left: prop,
                op,
                right,
            });
        }

        match operator {
            Operator::Compare(op) => {
                context.expect_values(&values, 1, "1")?;
                let value = context.typed(values[0])?;
                Ok(Expr::Compare { prop, op, value })
            }
            Operator::Null | Operator::NotNull => {
                context.expect_values(&values, 0, "0")?;
                Ok(if operator == Operator::Null {
                    Expr::IsNull(prop)
                } else {
                    Expr::NotNull(prop)
                })
            }
            Operator::Like { negated } => {
                context.expect_string_column()?;
                context.expect_values(&values, 1, "1")?;
                let like = Expr::Like {
                    prop,
                    pattern: values[0].to_string(),
                };
                Ok(negate(like, negated))
            }
            Operator::Text { func, negated } => {
                context.expect_string_column()?;
                context.expect_values(&values, 1, "1")?;
                let text = Expr::StringFn {
                    func,
                    prop,
                    value: values[0].to_string(),
                };
                Ok(negate(text, negated))
            }
            Operator::Function(name) => {
                filter::check_function_column(name, attribute).map_err(|reason| {
                    context.invalid(format!(
                        "{} (the column is of type '{}').",
                        reason.trim_end_matches('.'),
                        attribute.attribute_type.name()
                    ))
                })?;
                let values = match name.values() {
                    FnValues::None => {
                        context.expect_values(&values, 0, "0")?;
                        Vec::new()
                    }
                    FnValues::Count => {
                        context.expect_values(&values, 1, "1")?;
                        let count = filter::as_count(Literal::String(values[0].to_string()))
                            .ok_or_else(|| {
                                context.invalid(format!(
                                    "the value '{}' is not a non-negative integer.",
                                    values[0]
                                ))
                            })?;
                        vec![Literal::Int(count)]
                    }
                    FnValues::Date => {
                        context.expect_values(&values, 1, "1")?;
                        let date = filter::as_date(Literal::String(values[0].to_string()))
                            .ok_or_else(|| context.conversion(values[0]))?;
                        vec![date]
                    }
                    FnValues::Range => {
                        context.expect_values(&values, 2, "2")?;
                        values
                            .iter()
                            .map(|v| context.typed(v))
                            .collect::<Result<_, _>>()?
                    }
                    FnValues::List => {
                        if values.is_empty() {
                            return Err(context.count_error("at least 1", 0));
                        }
                        values
                            .iter()
                            .map(|v| context.typed(v))
                            .collect::<Result<_, _>>()?
                    }
                };
                Ok(Expr::QueryFn { name, prop, values })
            }
        }
    }
}

/// What a condition's errors name.
struct ConditionContext<'a> {
    entity: &'a Entity,
    attribute: &'a Attribute,
    name: &'a str,
    operator: Operator,
}

impl ConditionContext<'_> {
    fn invalid(&self, reason: String) -> QueryError {
        QueryError::InvalidCondition {
            entity: self.entity.logical_name.clone(),
            attribute: self.name.to_string(),
            reason,
        }
    }

    fn count_error(&self, expected: &'static str, found: usize) -> QueryError {
        QueryError::ConditionValueCount {
            operator: self.operator.sdk_name().to_string(),
            attribute: self.name.to_string(),
            expected,
            found,
        }
    }

    fn expect_values(
        &self,
        values: &[&str],
        wanted: usize,
        expected: &'static str,
    ) -> Result<(), QueryError> {
        if values.len() == wanted {
            Ok(())
        } else {
            Err(self.count_error(expected, values.len()))
        }
    }

    fn expect_string_column(&self) -> Result<(), QueryError> {
        match self.attribute.attribute_type {
            AttributeType::String | AttributeType::Memo => Ok(()),
            other => Err(self.invalid(format!(
                "the operator {} applies to string columns only (the column is of type '{}').",
                self.operator.sdk_name(),
                other.name()
            ))),
        }
    }

    fn conversion(&self, value: &str) -> QueryError {
        QueryError::ConditionValue {
            value: value.to_string(),
            entity: self.entity.logical_name.clone(),
            attribute: self.name.to_string(),
            expected: clr_type(self.attribute.attribute_type),
        }
    }

    /// `value` as a literal of the column's type.
    fn typed(&self, value: &str) -> Result<Literal, QueryError> {
        filter::literal_for(self.attribute, value).ok_or_else(|| self.conversion(value))
    }
}

fn negate(expr: Expr, negated: bool) -> Expr {
    if negated {
        Expr::Not(Box::new(expr))
    } else {
        expr
    }
}

fn unknown_attribute(entity: &Entity, name: &str) -> QueryError {
    QueryError::UnknownAttribute {
        entity: entity.logical_name.clone(),
        name: name.to_string(),
    }
}

/// The reference the AST uses for column `index`: its EDM property name.
fn column_ref(entity: &Entity, index: usize) -> PropertyRef {
    PropertyRef {
        index,
        name: entity.attributes[index].property_name().to_string(),
    }
}

/// A column a condition, an order or an aggregate names: an EDM property of `entity`. `context`
/// ("a condition") completes the error for a column that is not one.
fn bind_column(entity: &Entity, name: &str, context: &str) -> Result<PropertyRef, QueryError> {
    let index = entity
        .position(name)
        .ok_or_else(|| unknown_attribute(entity, name))?;
    if !entity.attributes[index].is_edm_property() {
        return Err(unsupported(format!("The column '{name}' in {context}")));
    }
    Ok(column_ref(entity, index))
}

/// A column an `<attribute>` selects: an EDM property, a lookup's name column (which selects
/// the lookup), or another column that is not a property (`owneridtype`: `None`, skipped).
fn bind_selected(entity: &Entity, name: &str) -> Result<Option<PropertyRef>, QueryError> {
    let index = entity
        .position(name)
        .ok_or_else(|| unknown_attribute(entity, name))?;
    let attribute = &entity.attributes[index];
    if attribute.is_edm_property() {
        return Ok(Some(column_ref(entity, index)));
    }
    Ok(attribute
        .attribute_of
        .as_deref()
        .and_then(|lookup| entity.position(lookup))
        .filter(|&i| entity.attributes[i].is_edm_property())
        .map(|i| column_ref(entity, i)))
}

/// Aliases are names: a letter or `_`, then letters, digits or `_`.
fn check_alias(alias: &str) -> Result<(), QueryError> {
    let mut chars = alias.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(invalid_fetch(format!(
            "Invalid character specified for alias: {alias}. Only characters within the ranges [A-Z], [a-z] or [0-9] or _ are allowed. The first character may only be in the ranges [A-Z], [a-z] or _."
        )))
    }
}

/// The selected columns of a non-aggregate body: `None` for every column.
fn plain_columns(body: &Body) -> Result<Option<Vec<PropertyRef>>, QueryError> {
    let mut columns: Vec<PropertyRef> = Vec::new();
    for attribute in &body.attributes {
        if attribute.aggregate.is_some()
            || attribute.groupby
            || attribute.dategrouping.is_some()
            || attribute.distinct
        {
            return Err(invalid_fetch(format!(
                "The attribute '{}' uses aggregate, groupby, dategrouping or distinct, which need aggregate='true' on the fetch element.",
                attribute.name
            )));
        }
        if attribute.alias.is_some() {
            return Err(unsupported(format!(
                "The alias of the attribute '{}' outside an aggregate query",
                attribute.name
            )));
        }
        if let Some(prop) = &attribute.prop {
            if !columns.iter().any(|c| c.index == prop.index) {
                columns.push(prop.clone());
            }
        }
    }
    if body.all_attributes || body.attributes.is_empty() {
        return Ok(None);
    }
    Ok(Some(columns))
}

fn plain_order(body: &Body) -> Result<Vec<OrderBy>, QueryError> {
    body.orders
        .iter()
        .map(|order| match &order.prop {
            Some(prop) => Ok(OrderBy {
                prop: prop.clone(),
                descending: order.descending,
            }),
            None => Err(invalid_fetch(
                "An order names an alias only in an aggregate query.".into(),
            )),
        })
        .collect()
}

/// The aggregate columns and order of the root body and each link body (`Some(i)`).
fn aggregate_of(
    bodies: &[(Option<usize>, &Body)],
    limit: Option<u32>,
) -> Result<Aggregate, QueryError> {
    let mut columns: Vec<AggregateColumn> = Vec::new();
    let mut order = Vec::new();
    for (link, body) in bodies {
        if body.all_attributes {
            return Err(invalid_fetch(
                "all-attributes can not be specified if an aggregate operation is requested."
                    .into(),
            ));
        }
        for attribute in &body.attributes {
            columns.push(aggregate_column(*link, attribute)?);
        }
        for key in &body.orders {
            match &key.alias {
                Some(alias) => order.push(AggregateOrder {
                    alias: alias.clone(),
                    descending: key.descending,
                }),
                None => {
                    return Err(invalid_fetch(
                        "An order in an aggregate query names an alias, not an attribute.".into(),
                    ))
                }
            }
        }
    }
    for (i, column) in columns.iter().enumerate() {
        if columns[..i].iter().any(|c| c.alias == column.alias) {
            return Err(invalid_fetch(format!(
                "The alias '{}' is used more than once.",
                column.alias
            )));
        }
    }
    if let Some(key) = order
        .iter()
        .find(|key| !columns.iter().any(|c| c.alias == key.alias))
    {
        return Err(invalid_fetch(format!(
            "The order alias '{}' is not the alias of an attribute of the query.",
            key.alias
        )));
    }
    if columns.is_empty() {
        return Err(invalid_fetch(
            "An aggregate query needs at least one attribute with aggregate or groupby.".into(),
        ));
    }
    Ok(Aggregate {
        columns,
        order,
        limit,
    })
}

fn aggregate_column(
    link: Option<usize>,
    attribute: &BoundAttribute,
) -> Result<AggregateColumn, QueryError> {
    use AttributeType as T;
    let name = &attribute.name;
    let neither = || {
        invalid_fetch(format!(
            "Attribute can not be specified if an aggregate operation is requested: '{name}' has neither aggregate nor groupby."
        ))
    };
    let (Some(prop), Some(column_type)) = (attribute.prop.clone(), attribute.column_type) else {
        return Err(neither());
    };
    let kind = match (attribute.aggregate, attribute.groupby) {
        (Some(_), true) => {
            return Err(invalid_fetch(format!(
                "The attribute '{name}' has both aggregate and groupby."
            )))
        }
        (None, false) => return Err(neither()),
        (Some(function), false) => {
            if attribute.dategrouping.is_some() {
                return Err(invalid_fetch(format!(
                    "The attribute '{name}': dategrouping applies to groupby attributes only."
                )));
            }
            if attribute.distinct && function != AggregateFn::CountColumn {
                return Err(invalid_fetch(format!(
                    "The attribute '{name}': distinct applies to the countcolumn aggregate only."
                )));
            }
            AggregateKind::Function {
                function: if attribute.distinct {
                    AggregateFn::CountDistinct
                } else {
                    function
                },
            }
        }
        (None, true) => {
            if attribute.distinct {
                return Err(invalid_fetch(format!(
                    "The attribute '{name}': distinct applies to the countcolumn aggregate only."
                )));
            }
            AggregateKind::GroupBy {
                date: attribute.dategrouping,
            }
        }
    };
    match kind {
        AggregateKind::Function { function } if !function.applies_to(column_type) => {
            let columns = match function {
                AggregateFn::Sum | AggregateFn::Average => "number columns",
                _ => "number and date columns",
            };
            return Err(invalid_fetch(format!(
                "The aggregate '{}' applies to {columns} only; '{name}' is not one.",
                aggregate_word(function)
            )));
        }
        AggregateKind::GroupBy { date: None } if column_type == T::DateTime => {
            return Err(invalid_fetch(format!(
                "Grouping by the date and time column '{name}' needs a dategrouping (day, week, month, quarter or year)."
            )))
        }
        AggregateKind::GroupBy { date: Some(_) } if column_type != T::DateTime => {
            return Err(invalid_fetch(format!(
                "The attribute '{name}': dategrouping applies to date and time columns only."
            )))
        }
        _ => {}
    }
    let alias = match (&attribute.alias, kind) {
        (Some(alias), _) => alias.clone(),
        (None, AggregateKind::GroupBy { .. }) => name.clone(),
        (None, AggregateKind::Function { .. }) => {
            return Err(invalid_fetch(format!(
                "The aggregate attribute '{name}' needs an alias."
            )))
        }
    };
    check_alias(&alias)?;
    Ok(AggregateColumn {
        alias,
        link,
        prop,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const CTX: &str = "msdyn_smsengagementctx";
    const GUID: &str = "4026be43-6b69-e111-8f65-78e7d1620f5e";

    fn catalog() -> Catalog {
        Catalog::builtin().expect("the built-in pages import")
    }

    fn fetch(text: &str) -> Result<FetchQuery, QueryError> {
        parse(&catalog(), text)
    }

    fn ok(text: &str) -> FetchQuery {
        fetch(text).unwrap_or_else(|e| panic!("{text:?} should bind: {e}"))
    }

    /// A query on the seed table whose entity holds `inner` (filters, attributes, orders, links).
    fn on_ctx(inner: &str) -> String {
        format!("<fetch><entity name='{CTX}'>{inner}</entity></fetch>")
    }

    fn filter_of(conditions: &str) -> Expr {
        let text = on_ctx(&format!("<filter>{conditions}</filter>"));
        ok(&text).filter.expect("a filter")
    }

    /// Binds `conditions` (inside one `<filter>`), checks the canonical text, and checks that the
    /// same text read as `$filter` gives the same tree: both front ends meet.
    fn check(conditions: &str, expected: &str) {
        let expr = filter_of(conditions);
        assert_eq!(expr.to_string(), expected, "for {conditions:?}");
        let entity = catalog().entity(CTX).unwrap().clone();
        let odata = filter::parse(&entity, expected, &HashMap::new())
            .unwrap_or_else(|e| panic!("{expected:?} should parse as $filter: {e}"));
        assert_eq!(odata, expr, "FetchXML and $filter differ for {expected:?}");
    }

    /// For trees only FetchXML produces (`like`): the canonical text only.
    fn check_fetch_only(conditions: &str, expected: &str) {
        assert_eq!(filter_of(conditions).to_string(), expected);
    }

    fn check_error(text: &str, code: &str, message: &str) {
        let error = fetch(text).expect_err("should fail");
        assert_eq!(error.to_string(), message, "for {text:?}");
        assert_eq!(error.code(), code, "code for {text:?}");
    }

    fn condition(attribute: &str, operator: &str, value: &str) -> String {
        format!("<condition attribute='{attribute}' operator='{operator}' value='{value}'/>")
    }

    fn listed(attribute: &str, operator: &str, values: &[&str]) -> String {
        let values: String = values
            .iter()
            .map(|v| format!("<value>{v}</value>"))
            .collect();
        format!("<condition attribute='{attribute}' operator='{operator}'>{values}</condition>")
    }

    fn bare(attribute: &str, operator: &str) -> String {
        format!("<condition attribute='{attribute}' operator='{operator}'/>")
    }

    #[test]
    fn comparisons_meet_the_odata_filter() {
        check(
            &condition("msdyn_name", "eq", "it&apos;s"),
            "msdyn_name eq 'it''s'",
        );
        check(&condition("statecode", "ne", "1"), "statecode ne 1");
        check(&condition("statecode", "neq", "1"), "statecode ne 1");
        check(
            &condition("createdon", "gt", "2024-05-01T10:00:00Z"),
            "createdon gt 2024-05-01T10:00:00Z",
        );
        check(
            &condition("createdon", "ge", "2024-05-01"),
            "createdon ge 2024-05-01",
        );
        check(
            &condition("versionnumber", "lt", "-12"),
            "versionnumber lt -12",
        );
        check(
            &condition("msdyn_smsprovider", "le", " 192350001 "),
            "msdyn_smsprovider le 192350001",
        );
        check(
            &condition("ownerid", "eq", &format!("{{{}}}", GUID.to_uppercase())),
            &format!("_ownerid_value eq {GUID}"),
        );
        check(
            &condition("msdyn_liveworkitemid", "eq", GUID),
            &format!("_msdyn_liveworkitemid_value eq {GUID}"),
        );
        check(
            "<condition attribute='msdyn_name' operator='eq'><value>x</value></condition>",
            "msdyn_name eq 'x'",
        );
        check(&condition("msdyn_name", "eq", ""), "msdyn_name eq ''");
    }

    #[test]
    fn column_comparisons_use_valueof() {
        check(
            "<condition attribute='msdyn_orgphonenumber' operator='eq' valueof='msdyn_customerphonenumber'/>",
            "msdyn_orgphonenumber eq msdyn_customerphonenumber",
        );
        check(
            "<condition attribute='modifiedon' operator='gt' valueof='createdon'/>",
            "modifiedon gt createdon",
        );
        check_error(
            &on_ctx("<filter><condition attribute='msdyn_name' operator='eq' valueof='statecode'/></filter>"),
            "0x80040203",
            "Condition for attribute 'msdyn_smsengagementctx.msdyn_name': 'valueof' names 'statecode' of type Edm.Int32; the column is of type Edm.String.",
        );
        check_error(
            &on_ctx("<filter><condition attribute='msdyn_name' operator='like' valueof='msdyn_name'/></filter>"),
            "0x80040203",
            "Condition for attribute 'msdyn_smsengagementctx.msdyn_name': 'valueof' applies to the operators eq, ne, gt, ge, lt and le only.",
        );
    }

    #[test]
    fn null_and_string_operators() {
        check(&bare("msdyn_name", "null"), "msdyn_name eq null");
        check(&bare("ownerid", "not-null"), "_ownerid_value ne null");
        check(&condition("msdyn_name", "null", ""), "msdyn_name eq null");
        check(
            &condition("msdyn_name", "begins-with", "sms"),
            "startswith(msdyn_name,'sms')",
        );
        check(
            &condition("msdyn_name", "not-begin-with", "sms"),
            "not startswith(msdyn_name,'sms')",
        );
        check(
            &condition("msdyn_name", "ends-with", "7"),
            "endswith(msdyn_name,'7')",
        );
        check(
            &condition("msdyn_name", "not-end-with", "7"),
            "not endswith(msdyn_name,'7')",
        );
    }

    #[test]
    fn like_has_its_own_variant_that_odata_never_produces() {
        check_fetch_only(
            &condition("msdyn_name", "like", "%sms%"),
            "like(msdyn_name,'%sms%')",
        );
        check_fetch_only(
            &condition("msdyn_customerphonenumber", "not-like", "+1_55[0-9]%"),
            "not like(msdyn_customerphonenumber,'+1_55[0-9]%')",
        );
        let entity = catalog().entity(CTX).unwrap().clone();
        let error = filter::parse(&entity, "like(msdyn_name,'%sms%')", &HashMap::new())
            .expect_err("$filter has no like");
        assert!(matches!(error, QueryError::UnknownFunction { .. }));
        check_error(
            &on_ctx(&format!("<filter>{}</filter>", condition("statecode", "like", "1%"))),
            "0x80040203",
            "Condition for attribute 'msdyn_smsengagementctx.statecode': the operator Like applies to string columns only (the column is of type 'State').",
        );
    }

    #[test]
    fn list_and_range_operators_are_query_functions() {
        check(
            &listed("statuscode", "in", &["1", "2"]),
            r#"Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=["1","2"])"#,
        );
        check(
            "<condition attribute='statuscode' operator='not-in' value=''><value>1</value></condition>",
            r#"Microsoft.Dynamics.CRM.NotIn(PropertyName='statuscode',PropertyValues=["1"])"#,
        );
        check(
            &listed("msdyn_name", "in", &["a", "it's"]),
            r#"Microsoft.Dynamics.CRM.In(PropertyName='msdyn_name',PropertyValues=["a","it's"])"#,
        );
        check(
            &listed("ownerid", "in", &[&format!("{{{GUID}}}")]),
            &format!(
                r#"Microsoft.Dynamics.CRM.In(PropertyName='_ownerid_value',PropertyValues=["{GUID}"])"#
            ),
        );
        check(
            &listed(
                "createdon",
                "between",
                &["2024-05-01", "2024-05-31T23:59:59Z"],
            ),
            r#"Microsoft.Dynamics.CRM.Between(PropertyName='createdon',PropertyValues=["2024-05-01","2024-05-31T23:59:59Z"])"#,
        );
        check(
            &listed("versionnumber", "not-between", &["1", "9"]),
            r#"Microsoft.Dynamics.CRM.NotBetween(PropertyName='versionnumber',PropertyValues=["1","9"])"#,
        );
    }

    #[test]
    fn date_and_principal_operators_are_query_functions() {
        let ns = "Microsoft.Dynamics.CRM.";
        check(
            &condition("createdon", "on", "2024-05-01"),
            &format!("{ns}On(PropertyName='createdon',PropertyValue=2024-05-01)"),
        );
        check(
            &condition("createdon", "on-or-after", "2024-05-01"),
            &format!("{ns}OnOrAfter(PropertyName='createdon',PropertyValue=2024-05-01)"),
        );
        check(
            &condition("modifiedon", "on-or-before", "2024-05-01T00:00:00Z"),
            &format!(
                "{ns}OnOrBefore(PropertyName='modifiedon',PropertyValue=2024-05-01T00:00:00Z)"
            ),
        );
        for (operator, function) in [
            ("today", "Today"),
            ("yesterday", "Yesterday"),
            ("tomorrow", "Tomorrow"),
        ] {
            check(
                &bare("createdon", operator),
                &format!("{ns}{function}(PropertyName='createdon')"),
            );
        }
        for (operator, function) in [
            ("last-x-days", "LastXDays"),
            ("next-x-days", "NextXDays"),
            ("last-x-hours", "LastXHours"),
            ("next-x-hours", "NextXHours"),
            ("last-x-weeks", "LastXWeeks"),
            ("last-x-months", "LastXMonths"),
            ("last-x-years", "LastXYears"),
            ("olderthan-x-days", "OlderThanXDays"),
            ("older-x-days", "OlderThanXDays"),
        ] {
            check(
                &condition("createdon", operator, "7"),
                &format!("{ns}{function}(PropertyName='createdon',PropertyValue=7)"),
            );
        }
        for (column, operator, function) in [
            ("ownerid", "eq-userid", "EqualUserId"),
            ("owninguser", "ne-userid", "NotEqualUserId"),
            ("owningbusinessunit", "eq-businessid", "EqualBusinessId"),
            ("owningbusinessunit", "ne-businessid", "NotEqualBusinessId"),
        ] {
            check(
                &bare(column, operator),
                &format!("{ns}{function}(PropertyName='_{column}_value')"),
            );
        }
    }

    #[test]
    fn every_operator_in_the_table_binds() {
        for (name, operator) in OPERATORS {
            let conditions = match operator {
                Operator::Compare(_) => condition("statecode", name, "0"),
                Operator::Null | Operator::NotNull => bare("msdyn_name", name),
                Operator::Like { .. } | Operator::Text { .. } => condition("msdyn_name", name, "a"),
                Operator::Function(f) => match f.values() {
                    FnValues::List => listed("statecode", name, &["0", "1"]),
                    FnValues::Range => listed("statecode", name, &["0", "1"]),
                    FnValues::Count => condition("createdon", name, "3"),
                    FnValues::Date => condition("createdon", name, "2024-05-01"),
                    FnValues::None if f.name().contains("Business") => {
                        bare("owningbusinessunit", name)
                    }
                    FnValues::None if f.name().contains("User") => bare("ownerid", name),
                    FnValues::None => bare("createdon", name),
                },
            };
            let expr = filter_of(&conditions);
            if !matches!(operator, Operator::Like { .. }) {
                let entity = catalog().entity(CTX).unwrap().clone();
                let odata = filter::parse(&entity, &expr.to_string(), &HashMap::new())
                    .unwrap_or_else(|e| panic!("{name}: {expr} should parse: {e}"));
                assert_eq!(odata, expr, "{name}");
            }
        }
        for name in UNSUPPORTED_OPERATORS {
            let text = on_ctx(&format!("<filter>{}</filter>", bare("createdon", name)));
            check_error(
                &text,
                "0x0",
                &format!("The condition operator '{name}' is not supported."),
            );
        }
    }

    #[test]
    fn filters_nest_and_join() {
        check(
            &format!(
                "{}<filter type='or'>{}{}</filter>",
                condition("statecode", "eq", "0"),
                condition("msdyn_name", "eq", "a"),
                condition("msdyn_name", "eq", "b"),
            ),
            "statecode eq 0 and (msdyn_name eq 'a' or msdyn_name eq 'b')",
        );
        let text = on_ctx(&format!(
            "<filter type='or'>{}<filter>{}{}</filter><filter/></filter><filter>{}</filter>",
            condition("statecode", "eq", "1"),
            condition("statecode", "eq", "0"),
            condition("statuscode", "eq", "1"),
            bare("msdyn_name", "not-null"),
        ));
        assert_eq!(
            ok(&text).filter.unwrap().to_string(),
            "(statecode eq 1 or statecode eq 0 and statuscode eq 1) and msdyn_name ne null"
        );
        assert!(ok(&on_ctx("<filter/><filter type='or'></filter>"))
            .filter
            .is_none());
    }

    #[test]
    fn xml_escapes_reach_the_values() {
        check(
            &condition(
                "msdyn_name",
                "eq",
                "a &amp; b &lt;c&gt; &#x41;&#66; &quot;q&quot; &apos;",
            ),
            "msdyn_name eq 'a & b <c> AB \"q\" '''",
        );
        check(
            "<condition attribute='msdyn_name' operator='eq'><value>x &amp; <![CDATA[<y>]]></value></condition>",
            "msdyn_name eq 'x & <y>'",
        );
    }

    #[test]
    fn condition_values_are_counted_and_typed() {
        let cases = [
            (bare("statecode", "eq"), "0x80040203", "The ConditionOperator.Equal requires 1 value/s, not 0. Parameter Name: statecode."),
            (
                listed("statecode", "eq", &["0", "1"]),
                "0x80040203",
                "The ConditionOperator.Equal requires 1 value/s, not 2. Parameter Name: statecode.",
            ),
            (condition("msdyn_name", "null", "x"), "0x80040203", "The ConditionOperator.Null requires 0 value/s, not 1. Parameter Name: msdyn_name."),
            (bare("statecode", "in"), "0x80040203", "The ConditionOperator.In requires at least 1 value/s, not 0. Parameter Name: statecode."),
            (
                listed("statecode", "between", &["0"]),
                "0x80040203",
                "The ConditionOperator.Between requires 2 value/s, not 1. Parameter Name: statecode.",
            ),
            (condition("createdon", "today", "1"), "0x80040203", "The ConditionOperator.Today requires 0 value/s, not 1. Parameter Name: createdon."),
            (bare("createdon", "last-x-days"), "0x80040203", "The ConditionOperator.LastXDays requires 1 value/s, not 0. Parameter Name: createdon."),
            (
                condition("statecode", "eq", "x"),
                "0x80040203",
                "An exception System.FormatException was thrown while trying to convert input value 'x' to attribute 'msdyn_smsengagementctx.statecode'. Expected type of attribute value: System.Int32.",
            ),
            (
                condition("statecode", "eq", "99999999999"),
                "0x80040203",
                "An exception System.FormatException was thrown while trying to convert input value '99999999999' to attribute 'msdyn_smsengagementctx.statecode'. Expected type of attribute value: System.Int32.",
            ),
            (
                condition("ownerid", "eq", "4026be43"),
                "0x80040203",
                "An exception System.FormatException was thrown while trying to convert input value '4026be43' to attribute 'msdyn_smsengagementctx.ownerid'. Expected type of attribute value: System.Guid.",
            ),
            (
                condition("createdon", "on", "soon"),
                "0x80040203",
                "An exception System.FormatException was thrown while trying to convert input value 'soon' to attribute 'msdyn_smsengagementctx.createdon'. Expected type of attribute value: System.DateTime.",
            ),
            (
                listed("versionnumber", "in", &["1", "x"]),
                "0x80040203",
                "An exception System.FormatException was thrown while trying to convert input value 'x' to attribute 'msdyn_smsengagementctx.versionnumber'. Expected type of attribute value: System.Int64.",
            ),
            (
                condition("createdon", "last-x-days", "-1"),
                "0x80040203",
                "Condition for attribute 'msdyn_smsengagementctx.createdon': the value '-1' is not a non-negative integer.",
            ),
            (
                bare("msdyn_name", "today"),
                "0x80040203",
                "Condition for attribute 'msdyn_smsengagementctx.msdyn_name': the function applies to date and time columns only (the column is of type 'String').",
            ),
            (
                bare("msdyn_liveworkitemid", "eq-userid"),
                "0x80040203",
                "Condition for attribute 'msdyn_smsengagementctx.msdyn_liveworkitemid': the function applies to lookups to users only (the column is of type 'Lookup').",
            ),
            (
                listed("msdyn_name", "between", &["a", "b"]),
                "0x80040203",
                "Condition for attribute 'msdyn_smsengagementctx.msdyn_name': the function applies to number and date columns only (the column is of type 'String').",
            ),
            (
                condition("statecode", "begins-with", "1"),
                "0x80040203",
                "Condition for attribute 'msdyn_smsengagementctx.statecode': the operator BeginsWith applies to string columns only (the column is of type 'State').",
            ),
        ];
        for (conditions, code, message) in cases {
            check_error(
                &on_ctx(&format!("<filter>{conditions}</filter>")),
                code,
                message,
            );
        }
    }

    #[test]
    fn unknown_names_use_the_dataverse_wording() {
        check_error(
            &on_ctx(&format!("<filter>{}</filter>", condition("x", "eq", "1"))),
            "0x80041103",
            "'msdyn_smsengagementctx' entity doesn't contain attribute with Name = 'x' and NameMapping = 'Logical'.",
        );
        check_error(
            &on_ctx("<attribute name='nosuch'/>"),
            "0x80041103",
            "'msdyn_smsengagementctx' entity doesn't contain attribute with Name = 'nosuch' and NameMapping = 'Logical'.",
        );
        check_error(
            &on_ctx("<order attribute='_ownerid_value'/>"),
            "0x80041103",
            "'msdyn_smsengagementctx' entity doesn't contain attribute with Name = '_ownerid_value' and NameMapping = 'Logical'.",
        );
        check_error(
            "<fetch><entity name='account'/></fetch>",
            "0x80041102",
            "The entity with a name = 'account' with namemapping = 'Logical' was not found in the MetadataCache.",
        );
        check_error(
            &on_ctx(&format!(
                "<filter>{}</filter>",
                condition("msdyn_name", "contains", "a")
            )),
            "0x80041120",
            "Unknown Condition Operator: contains",
        );
        check_error(
            &on_ctx(&format!(
                "<filter>{}</filter>",
                condition("owneridname", "eq", "a")
            )),
            "0x0",
            "The column 'owneridname' in a condition is not supported.",
        );
    }

    #[test]
    fn columns_follow_the_dataverse_rules() {
        let names = |columns: &Option<Vec<PropertyRef>>| {
            columns.as_ref().map(|c| {
                c.iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
        };
        assert_eq!(names(&ok(&on_ctx("")).columns), None);
        assert_eq!(names(&ok(&on_ctx("<all-attributes/>")).columns), None);
        let query = ok(&on_ctx(
            "<attribute name='msdyn_name'/><attribute name='ownerid'/><attribute name='owneridname'/>\
             <attribute name='owneridtype'/><attribute name='msdyn_name'/><attribute name='createdon'/>",
        ));
        assert_eq!(
            names(&query.columns).as_deref(),
            Some("msdyn_name,_ownerid_value,createdon")
        );
        let index = query.entity.position("ownerid").unwrap();
        assert_eq!(query.columns.unwrap()[1].index, index);
        assert_eq!(
            names(&ok(&on_ctx("<attribute name='owneridtype'/>")).columns).as_deref(),
            Some("")
        );
    }

    #[test]
    fn order_and_fetch_attributes() {
        let query = ok(&format!(
            "<fetch top='10' distinct='true' no-lock='true' mapping='logical' version='1.0' output-format='xml-platform'>\
             <entity name='{CTX}'><order attribute='createdon' descending='true'/><order attribute='ownerid'/></entity></fetch>"
        ));
        let order: Vec<String> = query
            .order
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o.prop.name,
                    if o.descending { "desc" } else { "asc" }
                )
            })
            .collect();
        assert_eq!(order, ["createdon desc", "_ownerid_value asc"]);
        assert_eq!(query.top, Some(10));
        assert!(query.distinct);
        assert!(!query.return_total_record_count);
        assert_eq!(
            (query.count, query.page, query.paging_cookie),
            (None, None, None)
        );

        let cookie =
            "<cookie page=\"1\"><msdyn_smsengagementctxid last=\"{A}\" first=\"{B}\" /></cookie>";
        let text = format!(
            "<fetch count='5000' page='2' returntotalrecordcount='1' paging-cookie='{}'><entity name='{CTX}'/></fetch>",
            cookie.replace('<', "&lt;").replace('"', "&quot;")
        );
        let query = ok(&text);
        assert_eq!((query.count, query.page), (Some(5000), Some(2)));
        assert_eq!(query.paging_cookie.as_deref(), Some(cookie));
        assert!(query.return_total_record_count);
        assert!(query.aggregate.is_none());
    }

    #[test]
    fn paging_limits() {
        let with = |attributes: &str| format!("<fetch {attributes}><entity name='{CTX}'/></fetch>");
        check_error(
            &with("count='5001'"),
            "0x80040203",
            "The 'count' attribute is 5001; it cannot exceed 5000.",
        );
        check_error(
            &with("top='5001'"),
            "0x80040203",
            "The 'top' attribute is 5001; it cannot exceed 5000.",
        );
        check_error(
            &with("count='0'"),
            "0x80040203",
            "The 'count' attribute must be greater than zero; it is 0.",
        );
        check_error(
            &with("page='-1'"),
            "0x80040203",
            "The 'page' attribute must be greater than zero; it is -1.",
        );
        check_error(
            &with("top='5' page='2'"),
            "0x80040203",
            "The Top.Count = 5 can't be specified with pagingInfo.",
        );
        check_error(
            &with("count='ten'"),
            "0x0",
            "The 'count' attribute is invalid - The value 'ten' is invalid according to its datatype 'Int32' (element 'fetch' at position 0).",
        );
        check_error(
            &with("distinct='yes'"),
            "0x0",
            "The 'distinct' attribute is invalid - The value 'yes' is invalid according to its datatype 'Boolean' (element 'fetch' at position 0).",
        );
        check_error(
            &with("datasource='retained'"),
            "0x0",
            "The datasource 'retained' is not supported.",
        );
    }

    #[test]
    fn links_to_the_conversation_and_the_owner() {
        let query = ok(&on_ctx(
            "<attribute name='msdyn_name'/>\
             <link-entity name='msdyn_ocliveworkitem' link-type='outer'>\
               <attribute name='subject'/><attribute name='ownerid'/>\
               <filter><condition attribute='statecode' operator='eq' value='1'/></filter>\
               <order attribute='createdon' descending='1'/>\
             </link-entity>\
             <link-entity name='systemuser' from='systemuserid' to='ownerid' alias='owner'>\
               <filter><condition attribute='fullname' operator='like' value='A%'/></filter>\
             </link-entity>\
             <link-entity name='systemuser' to='createdby'><all-attributes/></link-entity>",
        ));
        assert_eq!(query.links.len(), 3);
        let conversation = &query.links[0];
        assert_eq!(conversation.entity.logical_name, "msdyn_ocliveworkitem");
        assert_eq!(conversation.alias, "msdyn_ocliveworkitem1");
        assert!(conversation.outer);
        assert_eq!(conversation.from.name, "activityid");
        assert_eq!(conversation.to.name, "_msdyn_liveworkitemid_value");
        let columns: Vec<&str> = conversation
            .columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["subject", "_ownerid_value"]);
        assert_eq!(
            conversation.filter.as_ref().unwrap().to_string(),
            "statecode eq 1"
        );
        let state = conversation.entity.position("statecode").unwrap();
        assert!(matches!(
            conversation.filter,
            Some(Expr::Compare { ref prop, .. }) if prop.index == state
        ));
        assert_eq!(conversation.order[0].prop.name, "createdon");
        assert!(conversation.order[0].descending);

        let owner = &query.links[1];
        assert_eq!(
            (
                owner.alias.as_str(),
                owner.outer,
                owner.from.name.as_str(),
                owner.to.name.as_str()
            ),
            ("owner", false, "systemuserid", "_ownerid_value")
        );
        assert_eq!(owner.columns, Some(Vec::new()));
        assert_eq!(
            owner.filter.as_ref().unwrap().to_string(),
            "like(fullname,'A%')"
        );
        let creator = &query.links[2];
        assert_eq!(creator.alias, "systemuser2");
        assert_eq!(creator.columns, None);
        assert_eq!(creator.to.name, "_createdby_value");
        assert!(
            ok(&on_ctx("<link-entity name='team' to='ownerid' alias='t'/>")).links[0]
                .filter
                .is_none()
        );
    }

    #[test]
    fn links_that_are_not_single_hop_lookups_are_refused() {
        check_error(
            &on_ctx("<link-entity name='systemuser' alias='u'/>"),
            "0x80040203",
            "The link-entity 'systemuser' needs a 'to' attribute: it must name the one lookup of 'msdyn_smsengagementctx' it joins on.",
        );
        check_error(
            &on_ctx("<link-entity name='systemuser' to='msdyn_name'/>"),
            "0x0",
            "A link on 'msdyn_name', which is not a lookup of 'msdyn_smsengagementctx' to 'systemuser', is not supported.",
        );
        check_error(
            &on_ctx("<link-entity name='systemuser' to='ownerid' from='businessunitid'/>"),
            "0x0",
            "A link to 'businessunitid', which is not the primary key of 'systemuser', is not supported.",
        );
        check_error(
            &on_ctx("<link-entity name='systemuser' to='nosuch'/>"),
            "0x80041103",
            "'msdyn_smsengagementctx' entity doesn't contain attribute with Name = 'nosuch' and NameMapping = 'Logical'.",
        );
        check_error(
            &on_ctx("<link-entity name='systemuser' to='ownerid'><filter><condition attribute='msdyn_name' operator='null'/></filter></link-entity>"),
            "0x80041103",
            "'systemuser' entity doesn't contain attribute with Name = 'msdyn_name' and NameMapping = 'Logical'.",
        );
        check_error(
            &on_ctx("<link-entity name='nosuch' to='ownerid'/>"),
            "0x80041102",
            "The entity with a name = 'nosuch' with namemapping = 'Logical' was not found in the MetadataCache.",
        );
        check_error(
            &on_ctx("<link-entity name='team' to='ownerid' link-type='exists'/>"),
            "0x80041117",
            "Invalid link-type 'exists': only 'inner' and 'outer' are supported.",
        );
        check_error(
            &on_ctx("<link-entity name='team' to='ownerid' alias='a'/><link-entity name='systemuser' to='ownerid' alias='a'/>"),
            "0x80040203",
            "The link-entity alias 'a' is used more than once.",
        );
        check_error(
            &on_ctx("<link-entity name='team' to='ownerid' alias='1a'/>"),
            "0x80040203",
            "Invalid character specified for alias: 1a. Only characters within the ranges [A-Z], [a-z] or [0-9] or _ are allowed. The first character may only be in the ranges [A-Z], [a-z] or _.",
        );
        check_error(
            &on_ctx("<link-entity name='msdyn_ocliveworkitem'><link-entity name='team' to='ownerid'/></link-entity>"),
            "0x0",
            "A link-entity inside a link-entity is not supported.",
        );
    }

    #[test]
    fn aggregates_bind_their_columns() {
        let query = ok(&format!(
            "<fetch aggregate='true' aggregatelimit='100'><entity name='{CTX}'>\
               <attribute name='msdyn_smsengagementctxid' alias='n' aggregate='count'/>\
               <attribute name='msdyn_name' alias='named' aggregate='countcolumn' distinct='true'/>\
               <attribute name='msdyn_name' alias='filled' aggregate='countcolumn'/>\
               <attribute name='versionnumber' alias='total' aggregate='sum'/>\
               <attribute name='importsequencenumber' alias='mean' aggregate='avg'/>\
               <attribute name='createdon' alias='first' aggregate='min'/>\
               <attribute name='createdon' alias='last' aggregate='max'/>\
               <attribute name='statuscode' groupby='true'/>\
               <attribute name='createdon' alias='month' groupby='true' dategrouping='month'/>\
               <attribute name='ownerid' alias='owner' groupby='true'/>\
               <order alias='n' descending='true'/>\
               <filter><condition attribute='statecode' operator='eq' value='0'/></filter>\
               <link-entity name='msdyn_ocliveworkitem' alias='c'>\
                 <attribute name='statecode' alias='conversation_state' groupby='true'/>\
               </link-entity>\
             </entity></fetch>"
        ));
        let aggregate = query.aggregate.expect("an aggregate query");
        let printed: Vec<String> = aggregate
            .columns
            .iter()
            .map(|c| {
                let kind = match c.kind {
                    AggregateKind::GroupBy { date: None } => "groupby".to_string(),
                    AggregateKind::GroupBy { date: Some(d) } => format!("groupby {d:?}"),
                    AggregateKind::Function { function } => format!("{function:?}"),
                };
                format!(
                    "{}={}({}){}",
                    c.alias,
                    kind,
                    c.prop.name,
                    c.link.map(|l| format!("@{l}")).unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(
            printed,
            [
                "n=Count(msdyn_smsengagementctxid)",
                "named=CountDistinct(msdyn_name)",
                "filled=CountColumn(msdyn_name)",
                "total=Sum(versionnumber)",
                "mean=Average(importsequencenumber)",
                "first=Min(createdon)",
                "last=Max(createdon)",
                "statuscode=groupby(statuscode)",
                "month=groupby Month(createdon)",
                "owner=groupby(_ownerid_value)",
                "conversation_state=groupby(statecode)@0",
            ]
        );
        assert_eq!(
            aggregate.order,
            [AggregateOrder {
                alias: "n".into(),
                descending: true
            }]
        );
        assert_eq!(aggregate.limit, Some(100));
        assert_eq!(query.columns, Some(Vec::new()));
        assert_eq!(query.links[0].columns, Some(Vec::new()));
        assert!(query.order.is_empty());
        assert_eq!(query.filter.unwrap().to_string(), "statecode eq 0");
    }

    #[test]
    fn aggregate_rules_are_enforced() {
        let agg = |inner: &str| {
            format!("<fetch aggregate='true'><entity name='{CTX}'>{inner}</entity></fetch>")
        };
        let cases = [
            (
                agg("<attribute name='msdyn_name' alias='s' aggregate='sum'/>"),
                "The aggregate 'sum' applies to number columns only; 'msdyn_name' is not one.",
            ),
            (
                agg("<attribute name='statuscode' alias='s' aggregate='avg'/>"),
                "The aggregate 'avg' applies to number columns only; 'statuscode' is not one.",
            ),
            (
                agg("<attribute name='msdyn_name' alias='s' aggregate='max'/>"),
                "The aggregate 'max' applies to number and date columns only; 'msdyn_name' is not one.",
            ),
            (
                agg("<attribute name='createdon' alias='d' groupby='true'/>"),
                "Grouping by the date and time column 'createdon' needs a dategrouping (day, week, month, quarter or year).",
            ),
            (
                agg("<attribute name='statuscode' alias='d' groupby='true' dategrouping='day'/>"),
                "The attribute 'statuscode': dategrouping applies to date and time columns only.",
            ),
            (
                agg("<attribute name='msdyn_name' aggregate='count'/>"),
                "The aggregate attribute 'msdyn_name' needs an alias.",
            ),
            (
                agg("<attribute name='msdyn_name'/>"),
                "Attribute can not be specified if an aggregate operation is requested: 'msdyn_name' has neither aggregate nor groupby.",
            ),
            (
                agg("<attribute name='msdyn_name' alias='a' aggregate='count' groupby='true'/>"),
                "The attribute 'msdyn_name' has both aggregate and groupby.",
            ),
            (
                agg("<attribute name='msdyn_name' alias='a' aggregate='count' distinct='true'/>"),
                "The attribute 'msdyn_name': distinct applies to the countcolumn aggregate only.",
            ),
            (
                agg("<attribute name='msdyn_name' alias='a' aggregate='count'/><attribute name='statecode' alias='a' groupby='true'/>"),
                "The alias 'a' is used more than once.",
            ),
            (
                agg("<attribute name='msdyn_name' alias='a' aggregate='count'/><order attribute='msdyn_name'/>"),
                "An order in an aggregate query names an alias, not an attribute.",
            ),
            (
                agg("<attribute name='msdyn_name' alias='a' aggregate='count'/><order alias='b'/>"),
                "The order alias 'b' is not the alias of an attribute of the query.",
            ),
            (
                agg("<all-attributes/>"),
                "all-attributes can not be specified if an aggregate operation is requested.",
            ),
            (
                agg(""),
                "An aggregate query needs at least one attribute with aggregate or groupby.",
            ),
            (
                agg("<attribute name='msdyn_name' alias='a b' aggregate='count'/>"),
                "Invalid character specified for alias: a b. Only characters within the ranges [A-Z], [a-z] or [0-9] or _ are allowed. The first character may only be in the ranges [A-Z], [a-z] or _.",
            ),
            (
                on_ctx("<attribute name='msdyn_name' alias='a' aggregate='count'/>"),
                "The attribute 'msdyn_name' uses aggregate, groupby, dategrouping or distinct, which need aggregate='true' on the fetch element.",
            ),
            (
                on_ctx("<order alias='a'/>"),
                "An order names an alias only in an aggregate query.",
            ),
            (
                format!("<fetch aggregatelimit='10'><entity name='{CTX}'/></fetch>"),
                "The 'aggregatelimit' attribute applies to aggregate queries only.",
            ),
        ];
        for (text, message) in cases {
            check_error(&text, "0x80040203", message);
        }
        check_error(
            &agg("<attribute name='msdyn_name' alias='a' aggregate='median'/>"),
            "0x0",
            "The 'aggregate' attribute is invalid - The value 'median' is invalid according to its datatype 'AggregateType' (element 'attribute' at position 62).",
        );
        check_error(
            &agg(
                "<attribute name='createdon' alias='a' groupby='true' dategrouping='fiscal-year'/>",
            ),
            "0x0",
            "The dategrouping 'fiscal-year' is not supported.",
        );
        check_error(
            &on_ctx("<attribute name='msdyn_name' alias='a'/>"),
            "0x0",
            "The alias of the attribute 'msdyn_name' outside an aggregate query is not supported.",
        );
    }

    #[test]
    fn paging_cookies_are_read_in_every_encoding() {
        let expected = Some(vec![(
            "msdyn_smsengagementctxid".to_string(),
            "{5F1E0C3A-0000-0000-0000-000000000001}".to_string(),
        )]);
        let raw = "<cookie page=\"1\"><msdyn_smsengagementctxid last=\"{5F1E0C3A-0000-0000-0000-000000000001}\" first=\"{5F1E0C3A-0000-0000-0000-000000000009}\" /></cookie>";
        assert_eq!(parse_paging_cookie(raw), expected);
        let once = percent_encoding::utf8_percent_encode(raw, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        assert_eq!(parse_paging_cookie(&once), expected);
        let twice =
            percent_encoding::utf8_percent_encode(&once, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(parse_paging_cookie(&twice), expected);
        let form = "%3ccookie+page%3d%221%22%3e%3cmsdyn_smsengagementctxid+last%3d%22%7b5F1E0C3A-0000-0000-0000-000000000001%7d%22+first%3d%22%7b5F1E0C3A-0000-0000-0000-000000000009%7d%22+%2f%3e%3c%2fcookie%3e";
        assert_eq!(parse_paging_cookie(form), expected);
        let wrapper =
            format!("<cookie pagenumber=\"2\" pagingcookie=\"{twice}\" istracking=\"False\" />");
        assert_eq!(parse_paging_cookie(&wrapper), expected);
        let several = "<cookie page='3'><createdon last='2024-05-01T10:00:00Z' first='2024-05-01T09:00:00Z'/><msdyn_name lastnull='1' firstnull='1'/><msdyn_smsengagementctxid last='{A}' first='{B}'/></cookie>";
        assert_eq!(
            parse_paging_cookie(several),
            Some(vec![
                ("createdon".into(), "2024-05-01T10:00:00Z".into()),
                ("msdyn_name".into(), String::new()),
                ("msdyn_smsengagementctxid".into(), "{A}".into()),
            ])
        );
        assert_eq!(parse_paging_cookie("<cookie page='1'/>"), Some(Vec::new()));
        for bad in [
            "",
            "cookie",
            "%",
            "%zz",
            "<cookie",
            "<fetch/>",
            "<cookie><x first='1'/></cookie>",
            "<cookie><x last='1'><y/></x></cookie>",
            "<cookie>text</cookie>",
            "%253c%2525253c",
        ] {
            assert_eq!(parse_paging_cookie(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn documents_that_are_not_fetchxml() {
        let invalid = |detail: &str| format!("Invalid XML. {detail}");
        check_error(
            "",
            "0x80040201",
            &invalid("The document has no root element (at position 0)."),
        );
        check_error(
            "<fetch>",
            "0x80040201",
            &invalid("The element 'fetch' is not closed (at position 7)."),
        );
        check_error(
            "<fetch/><fetch/>",
            "0x80040201",
            &invalid("The document has more than one root element (at position 8)."),
        );
        check_error(
            "text<fetch/>",
            "0x80040201",
            &invalid("Text is not allowed outside the root element (at position 0)."),
        );
        check_error(
            "<!DOCTYPE fetch [<!ENTITY x 'y'>]><fetch/>",
            "0x80040201",
            &invalid("A document type declaration is not allowed (at position 0)."),
        );
        check_error(
            "<query/>",
            "0x80040201",
            &invalid("The root element is 'query'; a FetchXML query is a 'fetch' element."),
        );
        check_error(
            "<fetch/>",
            "0x80040201",
            &invalid("The 'fetch' element has no 'entity' element."),
        );
        check_error(
            &format!("<fetch><entity name='{CTX}'/><entity name='{CTX}'/></fetch>"),
            "0x0",
            "The element 'fetch' has invalid child element 'entity' (element 'fetch' at position 0).",
        );
        check_error(
            &on_ctx("<attributes name='msdyn_name'/>"),
            "0x0",
            "The element 'entity' has invalid child element 'attributes' (element 'entity' at position 7).",
        );
        check_error(
            &on_ctx("<attribute name='msdyn_name' nmae='x'/>"),
            "0x0",
            "The 'nmae' attribute is not declared (element 'attribute' at position 45).",
        );
        check_error(
            &on_ctx("<filter type='xor'/>"),
            "0x0",
            "The 'type' attribute is invalid - The value 'xor' is invalid according to its datatype 'filterType' (element 'filter' at position 45).",
        );
        check_error(
            &on_ctx("<filter><condition operator='eq' value='1'/></filter>"),
            "0x0",
            "The required attribute 'attribute' is missing (element 'condition' at position 53).",
        );
        check_error(
            &on_ctx("hello"),
            "0x0",
            "The element cannot contain text (element 'entity' at position 7).",
        );
        check_error(
            "<fetch><entity/></fetch>",
            "0x0",
            "The required attribute 'name' is missing (element 'entity' at position 7).",
        );
        assert!(ok(&format!(
            "\u{feff}<?xml version='1.0' encoding='utf-8'?><!-- a view --><fetch xmlns:x='urn:x'>\n  <entity name='{CTX}'>\n  </entity>\n</fetch>\n"
        ))
        .columns
        .is_none());
    }

    #[test]
    fn malformed_xml_names_the_problem() {
        for (text, starts) in [
            (
                "<fetch><entity></fetch>",
                "Invalid XML. The document is not well-formed",
            ),
            ("<fetch a='1' a='2'/>", "Invalid XML. A malformed attribute"),
            ("<fetch a=1/>", "Invalid XML. A malformed attribute"),
            (
                "<fetch>&nbsp;</fetch>",
                "Invalid XML. The entity '&nbsp;' is not defined",
            ),
            (
                "<fetch>&#0;</fetch>",
                "Invalid XML. A bad character reference",
            ),
            (
                "<fetch a='&x;'/>",
                "Invalid XML. A malformed attribute value",
            ),
            ("</fetch>", "Invalid XML. The document is not well-formed"),
            ("<fetch", "Invalid XML. The document is not well-formed"),
            (
                "<fetch>&</fetch>",
                "Invalid XML. The document is not well-formed",
            ),
        ] {
            let error = fetch(text).expect_err(text);
            assert!(error.to_string().starts_with(starts), "{text:?}: {error}");
            assert_eq!(error.code(), "0x80040201", "{text:?}");
        }
    }

    #[test]
    fn size_and_depth_are_limited() {
        let deep = format!(
            "{}{}",
            "<filter>".repeat(MAX_ELEMENT_DEPTH - 2),
            "</filter>".repeat(MAX_ELEMENT_DEPTH - 2)
        );
        assert!(ok(&on_ctx(&deep)).filter.is_none());
        let too_deep = format!(
            "{}{}",
            "<filter>".repeat(MAX_ELEMENT_DEPTH - 1),
            "</filter>".repeat(MAX_ELEMENT_DEPTH - 1)
        );
        check_error(
            &on_ctx(&too_deep),
            "0x0",
            "The recursion limit has been exceeded.",
        );
        check_error(
            &"<a>".repeat(100_000),
            "0x80040203",
            "The value of 'fetchXml' is 300000 characters long; the limit is 32768.",
        );
        let many = condition("statecode", "eq", "0").repeat(400);
        let expr = filter_of(&many);
        assert!(matches!(expr, Expr::And(ref operands) if operands.len() == 400));
    }

    #[test]
    fn literal_typing_is_shared_with_odata() {
        let catalog = catalog();
        let user = catalog.entity("systemuser").unwrap();
        let disabled = user.attribute("isdisabled").unwrap();
        for (text, expected) in [
            ("true", true),
            ("1", true),
            (" false ", false),
            ("0", false),
        ] {
            assert_eq!(
                filter::literal_for(disabled, text),
                Some(Literal::Bool(expected))
            );
        }
        assert_eq!(filter::literal_for(disabled, "yes"), None);
        let entity = catalog.entity(CTX).unwrap().clone();
        let odata = filter::parse(
            &entity,
            &format!(
                "Microsoft.Dynamics.CRM.In(PropertyName='ownerid',PropertyValues=[\"{{{GUID}}}\"])"
            ),
            &HashMap::new(),
        )
        .expect("braces are a GUID spelling on both sides");
        assert!(odata.to_string().contains(GUID));
    }

    /// A small deterministic generator (xorshift), so the garbage tests need no dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Writes `expr` (no `Not`) as FetchXML conditions and filters on `entity`.
    fn to_fetch(entity: &Entity, expr: &Expr) -> String {
        let xml = |text: &str| {
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('\'', "&apos;")
        };
        let value = |literal: &Literal| match literal {
            Literal::String(text) => xml(text),
            other => other.to_string(),
        };
        let name = |prop: &PropertyRef| entity.attributes[prop.index].logical_name.clone();
        match expr {
            Expr::Compare { prop, op, value: v } => format!(
                "<condition attribute='{}' operator='{}' value='{}'/>",
                name(prop),
                op.keyword(),
                value(v)
            ),
            Expr::IsNull(prop) => bare(&name(prop), "null"),
            Expr::NotNull(prop) => bare(&name(prop), "not-null"),
            Expr::And(operands) | Expr::Or(operands) => {
                let kind = if matches!(expr, Expr::And(_)) {
                    "and"
                } else {
                    "or"
                };
                let inner: String = operands.iter().map(|e| to_fetch(entity, e)).collect();
                format!("<filter type='{kind}'>{inner}</filter>")
            }
            other => unreachable!("the generator makes no {other:?}"),
        }
    }

    /// A random expression of comparisons, null tests, `and` and `or` over the EDM properties of
    /// `entity`, with literals of each column's type.
    fn random_expr(rng: &mut Rng, entity: &Entity, depth: u32) -> Expr {
        use AttributeType as T;
        if depth > 0 && rng.below(3) > 0 {
            let operands = (0..2 + rng.below(2))
                .map(|_| random_expr(rng, entity, depth - 1))
                .collect();
            return if rng.below(2) == 0 {
                Expr::and(operands)
            } else {
                Expr::or(operands)
            };
        }
        let columns: Vec<usize> = (0..entity.attributes.len())
            .filter(|&i| entity.attributes[i].is_edm_property())
            .collect();
        let index = columns[rng.below(columns.len())];
        let prop = column_ref(entity, index);
        let literal = match entity.attributes[index].attribute_type {
            T::String | T::Memo | T::EntityName => {
                let pieces = ["a", "'", "é", " ", "&", "<", "%", "😀", "and"];
                Literal::String((0..rng.below(5)).map(|_| pieces[rng.below(9)]).collect())
            }
            T::BigInt => Literal::Int(rng.below(2_000_000) as i64 - 1_000_000),
            T::Integer | T::Picklist | T::State | T::Status => Literal::Int(rng.below(1000) as i64),
            T::Uniqueidentifier | T::Lookup | T::Owner => {
                Literal::Guid(uuid::Uuid::from_u128(rng.below(usize::MAX) as u128 * 7919))
            }
            T::DateTime if rng.below(2) == 0 => Literal::Date(rng.below(50_000) as i64 * 86_400),
            T::DateTime => Literal::DateTime(rng.below(4_000_000_000) as i64),
            T::Boolean => Literal::Bool(rng.below(2) == 0),
        };
        let ops = [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Gt,
            CmpOp::Ge,
            CmpOp::Lt,
            CmpOp::Le,
        ];
        match rng.below(8) {
            0 => Expr::IsNull(prop),
            1 => Expr::NotNull(prop),
            _ => Expr::Compare {
                prop,
                op: ops[rng.below(6)],
                value: literal,
            },
        }
    }

    #[test]
    fn random_filters_meet_the_odata_front_end() {
        let catalog = catalog();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for table in [CTX, "msdyn_ocliveworkitem", "systemuser"] {
            let entity = catalog.entity(table).unwrap().clone();
            for _ in 0..300 {
                let expr = random_expr(&mut rng, &entity, 3);
                let text = format!(
                    "<fetch><entity name='{table}'><filter>{}</filter></entity></fetch>",
                    to_fetch(&entity, &expr)
                );
                let fetched = parse(&catalog, &text)
                    .unwrap_or_else(|e| panic!("{text:?} should bind: {e}"))
                    .filter
                    .expect("a filter");
                assert_eq!(fetched, expr, "FetchXML {text:?}");
                let printed = fetched.to_string();
                let odata = filter::parse(&entity, &printed, &HashMap::new())
                    .unwrap_or_else(|e| panic!("{printed:?} should parse as $filter: {e}"));
                assert_eq!(odata, fetched, "$filter {printed:?}");
            }
        }
    }

    #[test]
    fn generated_garbage_never_panics() {
        let catalog = catalog();
        let pieces = [
            "<",
            ">",
            "/",
            "</",
            "/>",
            "=",
            "'",
            "\"",
            " ",
            "&",
            ";",
            "&amp;",
            "&#x41;",
            "<![CDATA[",
            "]]>",
            "<!--",
            "-->",
            "<?xml",
            "?>",
            "<!DOCTYPE",
            "fetch",
            "entity",
            "attribute",
            "all-attributes",
            "filter",
            "condition",
            "value",
            "order",
            "link-entity",
            "name=",
            "'msdyn_smsengagementctx'",
            "'msdyn_ocliveworkitem'",
            "'systemuser'",
            "attribute=",
            "operator=",
            "'eq'",
            "'in'",
            "'between'",
            "'like'",
            "'today'",
            "'last-x-days'",
            "value=",
            "'1'",
            "'x'",
            "'createdon'",
            "'ownerid'",
            "'statecode'",
            "'msdyn_name'",
            "aggregate=",
            "'true'",
            "'count'",
            "'sum'",
            "groupby=",
            "alias=",
            "'a'",
            "to=",
            "from=",
            "link-type=",
            "'outer'",
            "count=",
            "'5001'",
            "top=",
            "page=",
            "é",
            "😀",
            "\u{0}",
            "\n",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let text: String = (0..rng.below(40))
                .map(|_| pieces[rng.below(pieces.len())])
                .collect();
            let _ = parse(&catalog, &text);
            let _ = parse_paging_cookie(&text);
        }
    }

    #[test]
    fn mutated_valid_documents_never_panic() {
        let catalog = catalog();
        let seed = format!(
            "<fetch aggregate='false' top='10'><entity name='{CTX}'><attribute name='msdyn_name'/>\
             <order attribute='createdon' descending='true'/><filter type='or'>\
             <condition attribute='statecode' operator='in'><value>0</value><value>1</value></condition>\
             <condition attribute='createdon' operator='last-x-days' value='7'/>\
             <filter><condition attribute='msdyn_name' operator='like' value='%a&amp;b%'/></filter></filter>\
             <link-entity name='systemuser' to='ownerid' alias='o' link-type='outer'><attribute name='fullname'/></link-entity>\
             </entity></fetch>"
        );
        ok(&seed);
        let inserts = [
            "<",
            ">",
            "'",
            "/",
            "&",
            "=",
            " ",
            "x",
            "<filter>",
            "</entity>",
            "é",
        ];
        let mut rng = Rng(7);
        for _ in 0..5_000 {
            let mut chars: Vec<char> = seed.chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(chars.len() + 1);
                match rng.below(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 => {
                        let insert = inserts[rng.below(inserts.len())];
                        for (i, c) in insert.chars().enumerate() {
                            chars.insert((at + i).min(chars.len()), c);
                        }
                    }
                    _ if at < chars.len() => {
                        let other = rng.below(chars.len());
                        chars.swap(at, other);
                    }
                    _ => {}
                }
            }
            let text: String = chars.into_iter().collect();
            let _ = parse(&catalog, &text);
        }
    }
}
