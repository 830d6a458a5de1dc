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
//!       condition [entityname] attribute operator [value valueof uiname uitype uihidden] *
//!         value [uiname uitype]  text                                               *
//!       filter ...                                                                  *
//!       link-entity name [from to alias] link-type=any|not any|all|not all|exists|in *
//!         filter: as above, on the linked table
//!     link-entity name [from to alias link-type=inner|outer|exists|in visible intersect] *
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
//! - Join links (`inner`, `outer`): single hop, from a lookup of the root table (`to`) to the
//!   primary key (`from`) of the table it points at; `from` defaults to that key, `to` to the
//!   only lookup pointing at the table. Or one-to-many: `from` a lookup of the linked table to
//!   the root, `to` the root's key; the root's row comes once per linked row (outer: once,
//!   without link columns, when it has none); at most one such link per query, with its own
//!   `<filter>` and `<order>`; a root condition cannot name it (`entityname`). A missing alias becomes `<table><n>`, as Dataverse
//!   names it. An inner link is also a filter ([`Expr::Related`]) of the root's rows, with the
//!   link's `<filter>` inside; a condition's `entityname` names an inner link, and binds as a
//!   [`Expr::Related`] through it.
//! - Filter links (`exists`, `in`, `any`, `not any`, `all`, `not all`) return no columns: a
//!   one-to-many one (`from` a lookup of the linked table to the root, `to` the root's key)
//!   binds as an [`Expr::Lambda`], a many-to-one one (`any`, `exists`, `in`, `not any`) as an
//!   [`Expr::Related`]; `not` negates. `all` holds for a parent without related rows.
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
use super::ast::{CmpOp, Expr, FnValues, Literal, PropertyRef, QueryFnName, StringFn, Table};
use super::error::QueryError;
use super::filter;
use super::options::OrderBy;
use super::MAX_OPTION_LENGTH;
use crate::metadata::{Attribute, AttributeType, Catalog, Entity};

mod aggregate;
mod bind;
pub mod expression;
mod operators;
mod read;
#[cfg(test)]
mod tests;

// The stages see each other through this module.
use aggregate::*;
use bind::*;
use operators::*;
use read::*;

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

/// A bound `<link-entity>` of link-type `inner` or `outer`: a join from a lookup of the root
/// table to the table it points at (many-to-one), or from a lookup of the linked table to the
/// root's key (one-to-many: the root's row once per linked row).
#[derive(Debug, Clone)]
pub struct LinkEntity {
    pub entity: Arc<Entity>,
    /// The column of the linked table the join matches: its primary key (many-to-one), its
    /// lookup to the root (one-to-many).
    pub from: PropertyRef,
    /// The column of the root table: a lookup (many-to-one), its primary key (one-to-many).
    pub to: PropertyRef,
    /// The linked table's rows point at the root's (`from` is their lookup).
    pub one_to_many: bool,
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
    Binder {
        catalog,
        joined: Default::default(),
    }
    .fetch(&root)
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
