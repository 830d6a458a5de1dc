//! The typed read request: what a GET on a table asks for, whichever front end wrote it.
//!
//! [`ReadRequest`] is compiled here from bound [`QueryOptions`] (an OData list, `$count`,
//! `$apply`, or the retrieve of one record with `$expand`) or from a [`FetchQuery`], with the
//! option-combination rules checked once. `execute::read` plans it into store reads and runs
//! it; `serialize.rs` writes its result.
//!
//! **Architecture invariant:** a read request holds only bound, typed parts (column positions,
//! [`Expr`] trees, a typed [`Cursor`]); nothing downstream parses query text again.
//!
//! The `$expand` part is a tree ([`ExpandNode::children`]): each node is a many-to-one lookup
//! or a one-to-many collection (with its own filter, order and top), and may hold nested nodes.

use std::sync::Arc;

use uuid::Uuid;

use super::apply::{Aggregate as AggregateValue, AggregateFn};
use super::ast::{ChildJoin, Expr, Hop, PropertyRef, Table};
use super::error::QueryError;
use super::fetchxml::{AggregateKind, FetchQuery, MAX_PAGE_SIZE};
use super::options::{Expand, ExpandSelect, OrderBy, QueryOptions};
use super::skiptoken::{keyset_from_cookie, Cursor};
use crate::metadata::Entity;

/// Dataverse's page size limit, and the most rows `@odata.count` counts.
pub const PAGE_LIMIT: usize = MAX_PAGE_SIZE as usize;

/// One read of the Web API.
#[derive(Debug, Clone)]
pub enum ReadRequest {
    /// A page of rows (OData list or FetchXML).
    Rows(RowsRead),
    /// Groups and aggregates (`$apply`, aggregate FetchXML).
    Aggregate(AggregateRead),
    /// `/$count`.
    Count(CountRead),
    /// One record by id, with `$select` and `$expand`.
    Record(RecordRead),
}

/// Which front end wrote the request; the response follows its conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// OData: every selected property (nulls included), `@odata.nextLink`, `@odata.count`.
    OData,
    /// FetchXML: null properties omitted, linked columns as `alias.column`, paging cookie,
    /// `morerecords` and `totalrecordcount` annotations.
    FetchXml,
}

/// A page of rows.
#[derive(Debug, Clone)]
pub struct RowsRead {
    pub front: Front,
    pub entity: Arc<Entity>,
    pub filter: Option<Expr>,
    pub order: Vec<OrderBy>,
    /// Column positions to write; `None`: every column.
    pub columns: Option<Vec<usize>>,
    pub expand: Vec<ExpandNode>,
    /// FetchXML `link-entity` columns.
    pub links: Vec<LinkColumns>,
    /// A FetchXML one-to-many `link-entity` (inner or outer): the page is of joined rows, each
    /// root row once per linked row, paged by page number (Dataverse's legacy paging: no
    /// paging cookie, at most [`LEGACY_PAGING_LIMIT`] rows reached).
    pub join: Option<JoinColumns>,
    pub page: Page,
    /// Count the filtered rows too, up to this many.
    pub total_cap: Option<usize>,
    /// Fill lookup names (the formatted values of lookups).
    pub with_names: bool,
}

/// The page a rows request reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Rows on this page (the store reads one more to know whether more follow).
    pub size: usize,
    /// `$top` / `top`, as asked.
    pub top: Option<usize>,
    /// Whether a following page may be announced (nextLink, paging cookie, `morerecords`).
    pub announces_more: bool,
    /// This page's number, from 1.
    pub number: usize,
    /// The last row of the previous page: its order-key values, then its id.
    pub after: Option<Vec<super::ast::Literal>>,
    /// `odata.maxpagesize`, when it was asked for and honoured.
    pub max_page_size: Option<usize>,
}

/// How a node of the expand tree relates its rows to the parent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// A lookup of the parent row (`_x_value`) points at one row of the target.
    ManyToOne,
    /// A lookup of the target's rows points at the parent row (a collection-valued
    /// navigation property): `navigation.index` is that lookup's column on the target.
    OneToMany,
}

/// One `$expand` item, a node of the expand tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandNode {
    pub relation: Relation,
    /// The lookup column of the parent; `name` is the navigation property.
    pub navigation: PropertyRef,
    /// The target table when the lookup has exactly one.
    pub target: Option<String>,
    pub select: ExpandSelect,
    /// `nav/$ref`: only the `@odata.id`.
    pub reference_only: bool,
    /// One-to-many only: the related rows' filter, order and count per parent.
    pub filter: Option<Expr>,
    pub order: Vec<OrderBy>,
    pub top: Option<usize>,
    /// Nested `$expand`, on the related rows.
    pub children: Vec<ExpandNode>,
}

impl ExpandNode {
    /// The node of one bound `$expand` item, and its nested items below it.
    pub fn new(item: Expand) -> ExpandNode {
        let (relation, collection) = match item.collection {
            Some(c) => (Relation::OneToMany, c),
            None => (Relation::ManyToOne, Default::default()),
        };
        ExpandNode {
            relation,
            navigation: item.navigation,
            target: item.target,
            select: item.select,
            reference_only: item.reference_only,
            filter: collection.filter,
            order: collection.orderby,
            top: collection.top.map(|t| t as usize),
            children: item.expand.into_iter().map(ExpandNode::new).collect(),
        }
    }
}

/// The condition a FetchXML join link puts on the root's rows: an inner link keeps a row only
/// when the row its lookup points at exists, the caller may read it, and it matches the link's
/// filter (the guard scopes the linked table in the same query); an outer link keeps every
/// row and takes no filter.
fn link_filter(link: &super::fetchxml::LinkEntity) -> Result<Option<Expr>, QueryError> {
    if link.outer {
        return match link.filter {
            Some(_) => Err(fetch_unsupported("A filter inside an outer link-entity")),
            None => Ok(None),
        };
    }
    let key = link.entity.primary_id_position();
    let always = Expr::NotNull(PropertyRef {
        index: key,
        name: link.entity.attributes[key].property_name().to_string(),
    });
    Ok(Some(Expr::Related {
        lookup: link.to.clone(),
        target: Table(Arc::clone(&link.entity)),
        inner: Box::new(link.filter.clone().unwrap_or(always)),
    }))
}

/// The join of a one-to-many FetchXML link: its table, its lookup, its filter and order.
fn child_join(link: &super::fetchxml::LinkEntity) -> ChildJoin {
    ChildJoin {
        child: Table(Arc::clone(&link.entity)),
        lookup: link.from.clone(),
        outer: link.outer,
        filter: link.filter.clone(),
        order: link.order.clone(),
    }
}

/// The columns a FetchXML `link-entity` adds to each row, from the row its lookup points at.
#[derive(Debug, Clone)]
pub struct LinkColumns {
    pub entity: Arc<Entity>,
    /// The lookup column of the root table.
    pub to: PropertyRef,
    pub alias: String,
    /// `None`: every EDM property; otherwise these positions.
    pub columns: Option<Vec<usize>>,
}

/// The one-to-many join of a FetchXML rows request and the columns it adds, `alias.column`.
#[derive(Debug, Clone)]
pub struct JoinColumns {
    pub join: ChildJoin,
    pub alias: String,
    /// `None`: every EDM property of the linked table; otherwise these positions.
    pub columns: Option<Vec<usize>>,
}

/// How far a query Dataverse pages without a paging cookie ("legacy" or simple paging) may
/// reach: rows beyond the 50,000th are not returned.
pub const LEGACY_PAGING_LIMIT: usize = 50_000;

/// An aggregation: one output row per group, its group values then its aggregates.
#[derive(Debug, Clone)]
pub struct AggregateRead {
    pub front: Front,
    pub entity: Arc<Entity>,
    pub filter: Option<Expr>,
    pub group_by: Vec<PropertyRef>,
    pub aggregates: Vec<AggregateValue>,
    /// Per output column (groups, then aggregates), the lookup crossed to read it, if any;
    /// empty: none.
    pub through: Vec<Option<Hop>>,
    /// A one-to-many join (a FetchXML link-entity): the rows aggregated are the joined rows.
    pub join: Option<ChildJoin>,
    /// Per output column, whether it is a column of the joined table; empty: none.
    pub from_join: Vec<bool>,
    /// The output names: group columns, then aggregate aliases.
    pub names: Vec<String>,
    /// Output column positions to sort by, and whether descending.
    pub order: Vec<(usize, bool)>,
    /// At most this many groups.
    pub limit: Option<usize>,
}

/// `/$count`.
#[derive(Debug, Clone)]
pub struct CountRead {
    pub entity: Arc<Entity>,
    pub filter: Option<Expr>,
}

/// One record.
#[derive(Debug, Clone)]
pub struct RecordRead {
    pub entity: Arc<Entity>,
    pub id: Uuid,
    pub columns: Option<Vec<usize>>,
    pub expand: Vec<ExpandNode>,
    pub with_names: bool,
}

fn bad_combination(detail: &str) -> QueryError {
    QueryError::BadCombination {
        detail: detail.to_string(),
    }
}

fn fetch_unsupported(what: &str) -> QueryError {
    QueryError::FetchUnsupported {
        what: what.to_string(),
    }
}

/// Column positions of a bound `$select`; `None` (every column) when it is empty.
pub fn positions(select: &[PropertyRef]) -> Option<Vec<usize>> {
    (!select.is_empty()).then(|| select.iter().map(|p| p.index).collect())
}

impl ReadRequest {
    /// `GET {set}?...` with OData options; `max_page_size` is `Prefer: odata.maxpagesize`.
    pub fn list(
        entity: &Arc<Entity>,
        options: QueryOptions,
        max_page_size: Option<u32>,
        with_names: bool,
    ) -> Result<ReadRequest, QueryError> {
        if let Some(apply) = options.apply {
            if !options.select.is_empty()
                || !options.orderby.is_empty()
                || !options.expand.is_empty()
                || options.top.is_some()
                || options.skiptoken.is_some()
            {
                return Err(bad_combination(
                    "$apply cannot be combined with $select, $orderby, $expand, $top or $skiptoken.",
                ));
            }
            let filter = match (apply.filter, options.filter) {
                (Some(a), Some(b)) => Some(Expr::and(vec![b, a])),
                (a, b) => a.or(b),
            };
            // A group through a lookup is named `{target}_{column}`, as Dataverse names it.
            let names = apply
                .group_by
                .iter()
                .zip(&apply.group_through)
                .map(|(p, hop)| match hop {
                    Some(hop) => format!(
                        "{}_{}",
                        hop.target.0.logical_name, hop.target.0.attributes[p.index].logical_name
                    ),
                    None => p.name.clone(),
                })
                .chain(apply.aggregates.iter().map(|a| a.alias.clone()))
                .collect();
            let mut through = apply.group_through;
            through.resize(apply.group_by.len() + apply.aggregates.len(), None);
            return Ok(ReadRequest::Aggregate(AggregateRead {
                front: Front::OData,
                entity: Arc::clone(entity),
                filter,
                group_by: apply.group_by,
                aggregates: apply.aggregates,
                through,
                join: None,
                from_join: Vec::new(),
                names,
                order: Vec::new(),
                limit: None,
            }));
        }
        let max_page_size = max_page_size.map(|n| (n as usize).clamp(1, PAGE_LIMIT));
        let top = options.top.map(|t| t as usize);
        let size = match (max_page_size, top) {
            (Some(size), _) => size,
            (None, Some(top)) => top.min(PAGE_LIMIT),
            (None, None) => PAGE_LIMIT,
        };
        let (number, after) = match options.skiptoken {
            Some(Cursor { page, keyset }) => (page, Some(keyset)),
            None => (1, None),
        };
        Ok(ReadRequest::Rows(RowsRead {
            front: Front::OData,
            entity: Arc::clone(entity),
            filter: options.filter,
            order: options.orderby,
            columns: positions(&options.select),
            expand: options.expand.into_iter().map(ExpandNode::new).collect(),
            links: Vec::new(),
            join: None,
            page: Page {
                size,
                top,
                announces_more: max_page_size.is_some() || top.is_none(),
                number,
                after,
                max_page_size,
            },
            total_cap: options.count.then_some(PAGE_LIMIT),
            with_names,
        }))
    }

    /// `GET {set}/$count`: only `$filter` applies.
    pub fn count(entity: &Arc<Entity>, options: QueryOptions) -> Result<ReadRequest, QueryError> {
        if !options.select.is_empty()
            || !options.orderby.is_empty()
            || !options.expand.is_empty()
            || options.apply.is_some()
            || options.top.is_some()
        {
            return Err(bad_combination("Only $filter applies to $count."));
        }
        Ok(ReadRequest::Count(CountRead {
            entity: Arc::clone(entity),
            filter: options.filter,
        }))
    }

    /// `GET {set}({id})`: only `$select` and `$expand` apply.
    pub fn record(
        entity: &Arc<Entity>,
        id: Uuid,
        options: QueryOptions,
        with_names: bool,
    ) -> Result<ReadRequest, QueryError> {
        Ok(ReadRequest::Record(Self::record_read(
            entity, id, options, with_names,
        )?))
    }

    /// The typed retrieve of one record, checking that only `$select` and `$expand` are given.
    pub fn record_read(
        entity: &Arc<Entity>,
        id: Uuid,
        options: QueryOptions,
        with_names: bool,
    ) -> Result<RecordRead, QueryError> {
        if options.filter.is_some()
            || !options.orderby.is_empty()
            || options.top.is_some()
            || options.count
            || options.apply.is_some()
            || options.skiptoken.is_some()
        {
            return Err(bad_combination(
                "Only $select and $expand apply to a single record.",
            ));
        }
        Ok(RecordRead {
            entity: Arc::clone(entity),
            id,
            columns: positions(&options.select),
            expand: options.expand.into_iter().map(ExpandNode::new).collect(),
            with_names,
        })
    }

    /// `GET {set}?fetchXml=...`, the query already bound; `odata_options` tells whether the
    /// request also carried `$` options (which FetchXML excludes).
    pub fn fetch(
        entity: &Arc<Entity>,
        query: FetchQuery,
        odata_options: bool,
        with_names: bool,
    ) -> Result<ReadRequest, QueryError> {
        if odata_options {
            return Err(QueryError::InvalidFetch {
                detail: "fetchXml cannot be combined with OData query options.".into(),
            });
        }
        if query.entity.logical_name != entity.logical_name {
            return Err(QueryError::InvalidFetch {
                detail: format!(
                    "The FetchXML queries '{}', but the request addresses '{}'.",
                    query.entity.logical_name, entity.entity_set_name
                ),
            });
        }
        if query.aggregate.is_some() {
            return Self::fetch_aggregate(entity, query);
        }
        let mut filters: Vec<Expr> = query.filter.clone().into_iter().collect();
        let mut links = Vec::with_capacity(query.links.len());
        let mut join = None;
        for link in &query.links {
            if link.one_to_many {
                join = Some(JoinColumns {
                    join: child_join(link),
                    alias: link.alias.clone(),
                    columns: link
                        .columns
                        .as_ref()
                        .map(|props| props.iter().map(|p| p.index).collect()),
                });
                continue;
            }
            if !link.order.is_empty() {
                return Err(fetch_unsupported("An order inside link-entity"));
            }
            filters.extend(link_filter(link)?);
            links.push(LinkColumns {
                entity: Arc::clone(&link.entity),
                to: link.to.clone(),
                alias: link.alias.clone(),
                columns: link
                    .columns
                    .as_ref()
                    .map(|props| props.iter().map(|p| p.index).collect()),
            });
        }
        let filter = match filters.len() {
            0 => None,
            1 => filters.pop(),
            _ => Some(Expr::and(filters)),
        };
        let number = query.page.unwrap_or(1) as usize;
        let top = query.top.map(|t| t as usize);
        let size = match (top, query.count) {
            (Some(top), _) => top,
            (None, Some(count)) => count as usize,
            (None, None) => PAGE_LIMIT,
        };
        // Joined rows are paged as Dataverse pages a query it cannot page with a cookie: by
        // page number alone (a cookie sent back is ignored, none is issued), so a root row
        // whose linked rows straddle a page boundary comes on both pages.
        if join.is_some() {
            if query.return_total_record_count {
                return Err(fetch_unsupported(
                    "returntotalrecordcount with a one-to-many link-entity",
                ));
            }
            if number.saturating_mul(size) > LEGACY_PAGING_LIMIT {
                return Err(QueryError::InvalidFetch {
                    detail: format!(
                        "A query with a one-to-many link-entity is paged without a paging cookie, which reaches at most {LEGACY_PAGING_LIMIT} rows; page {number} of {size} rows is beyond them. Narrow the query with a filter."
                    ),
                });
            }
        }
        let after = match &query.paging_cookie {
            _ if join.is_some() => None,
            Some(cookie) => Some(keyset_from_cookie(entity, &query.order, cookie).ok_or_else(
                || QueryError::InvalidFetch {
                    detail:
                        "The paging-cookie is not one this server issued for this ordering.".into(),
                },
            )?),
            None if number > 1 => {
                return Err(fetch_unsupported(
                    "A page after the first without the previous page's paging-cookie",
                ))
            }
            None => None,
        };
        Ok(ReadRequest::Rows(RowsRead {
            front: Front::FetchXml,
            entity: Arc::clone(entity),
            filter,
            order: query.order,
            columns: query.columns.as_deref().and_then(positions),
            expand: Vec::new(),
            links,
            join,
            page: Page {
                size,
                top,
                announces_more: top.is_none(),
                number,
                after,
                max_page_size: None,
            },
            total_cap: query.return_total_record_count.then_some(PAGE_LIMIT + 1),
            with_names,
        }))
    }

    /// `aggregate='true'`: groups and aggregates by alias, in the query's alias order.
    fn fetch_aggregate(entity: &Arc<Entity>, query: FetchQuery) -> Result<ReadRequest, QueryError> {
        let Some(spec) = query.aggregate else {
            return Err(fetch_unsupported(
                "An aggregate query without aggregate columns",
            ));
        };
        // A link's columns are read through its lookup; an inner link also filters the rows.
        let mut filters: Vec<Expr> = query.filter.clone().into_iter().collect();
        let mut join = None;
        for link in &query.links {
            if link.one_to_many {
                join = Some(child_join(link));
            } else {
                filters.extend(link_filter(link)?);
            }
        }
        let joined = |link: Option<usize>| {
            link.and_then(|i| query.links.get(i))
                .is_some_and(|link| link.one_to_many)
        };
        let hop_of = |link: Option<usize>| {
            link.and_then(|i| query.links.get(i))
                .filter(|link| !link.one_to_many)
                .map(|link| Hop {
                    lookup: link.to.clone(),
                    target: Table(Arc::clone(&link.entity)),
                })
        };
        let mut group_by: Vec<(String, PropertyRef, Option<Hop>, bool)> = Vec::new();
        let mut aggregates: Vec<(AggregateValue, Option<Hop>, bool)> = Vec::new();
        for column in &spec.columns {
            match column.kind {
                AggregateKind::GroupBy { date: Some(_) } => {
                    return Err(fetch_unsupported("dategrouping"));
                }
                AggregateKind::GroupBy { date: None } => group_by.push((
                    column.alias.clone(),
                    column.prop.clone(),
                    hop_of(column.link),
                    joined(column.link),
                )),
                AggregateKind::Function { function } => {
                    let counts_rows = function == AggregateFn::Count;
                    aggregates.push((
                        AggregateValue {
                            function,
                            prop: (!counts_rows).then(|| column.prop.clone()),
                            alias: column.alias.clone(),
                        },
                        hop_of(column.link).filter(|_| !counts_rows),
                        joined(column.link) && !counts_rows,
                    ))
                }
            }
        }
        let through: Vec<Option<Hop>> = group_by
            .iter()
            .map(|(_, _, hop, _)| hop.clone())
            .chain(aggregates.iter().map(|(_, hop, _)| hop.clone()))
            .collect();
        let from_join: Vec<bool> = group_by
            .iter()
            .map(|(_, _, _, joined)| *joined)
            .chain(aggregates.iter().map(|(_, _, joined)| *joined))
            .collect();
        let aggregates: Vec<AggregateValue> = aggregates.into_iter().map(|(a, _, _)| a).collect();
        let names: Vec<String> = group_by
            .iter()
            .map(|(alias, _, _, _)| alias.clone())
            .chain(aggregates.iter().map(|a| a.alias.clone()))
            .collect();
        // An order naming an alias that is not an output column orders nothing.
        let order = spec
            .order
            .iter()
            .filter_map(|key| {
                let column = names.iter().position(|a| *a == key.alias)?;
                Some((column, key.descending))
            })
            .collect();
        Ok(ReadRequest::Aggregate(AggregateRead {
            front: Front::FetchXml,
            entity: Arc::clone(entity),
            filter: match filters.len() {
                0 => None,
                1 => filters.pop(),
                _ => Some(Expr::and(filters)),
            },
            group_by: group_by.into_iter().map(|(_, p, _, _)| p).collect(),
            aggregates,
            through,
            join,
            from_join,
            names,
            order,
            limit: spec.limit.map(|l| l as usize),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Catalog;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn list(query: &[(&str, &str)], max_page_size: Option<u32>) -> Result<ReadRequest, QueryError> {
        let catalog = Catalog::builtin().unwrap();
        let entity = catalog.entity("msdyn_smsengagementctx").unwrap().clone();
        let options = QueryOptions::parse(&catalog, &entity, &pairs(query))?;
        ReadRequest::list(&entity, options, max_page_size, false)
    }

    fn page_of(request: ReadRequest) -> Page {
        match request {
            ReadRequest::Rows(rows) => rows.page,
            other => panic!("not a rows request: {other:?}"),
        }
    }

    #[test]
    fn pages_follow_top_and_the_page_size_preference() {
        let plain = page_of(list(&[], None).unwrap());
        assert_eq!((plain.size, plain.announces_more), (5000, true));
        let top = page_of(list(&[("$top", "7")], None).unwrap());
        assert_eq!((top.size, top.top, top.announces_more), (7, Some(7), false));
        let capped = page_of(list(&[("$top", "9000")], None).unwrap());
        assert_eq!(capped.size, 5000);
        let preferred = page_of(list(&[("$top", "7")], Some(3)).unwrap());
        assert_eq!(
            (
                preferred.size,
                preferred.announces_more,
                preferred.max_page_size
            ),
            (3, true, Some(3))
        );
        let clamped = page_of(list(&[], Some(0)).unwrap());
        assert_eq!(clamped.size, 1);
    }

    #[test]
    fn apply_is_parsed_once_and_refuses_row_options() {
        let request = list(
            &[
                ("$apply", "groupby((statecode),aggregate($count as n))"),
                ("$filter", "statecode eq 0"),
            ],
            None,
        )
        .unwrap();
        let ReadRequest::Aggregate(aggregate) = request else {
            panic!("an aggregation");
        };
        assert_eq!(aggregate.names, vec!["statecode", "n"]);
        assert!(aggregate.filter.is_some());
        let refused = list(&[("$apply", "aggregate($count as n)"), ("$top", "1")], None);
        assert!(matches!(refused, Err(QueryError::BadCombination { .. })));
    }
}
