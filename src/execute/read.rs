//! The read planner: one [`ReadRequest`] (compiled by `query::read` from OData options or
//! FetchXML) turned into store plans and run through the caller's guard.
//!
//! A rows request is one keyset query for the page (`size + 1` rows, so that one more row
//! tells whether more follow), one count when a total is asked for, and one batched
//! `IN (...)` query per `$expand` node (a lookup's targets by id, a collection's rows by their
//! lookup; nested nodes on the rows their level found) and per FetchXML `link-entity`,
//! whatever the number of rows: no read per row. Aggregations are ordered and limited in SQL.
//!
//! **Architecture invariant:** the number of store reads of a request depends on its shape
//! (expand nodes, links, a total), never on the number of rows it returns (the tests count).

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

pub use crate::query::read::{
    AggregateRead, CountRead, ExpandNode, Front, JoinColumns, LinkColumns, Page, ReadRequest,
    RecordRead, Relation, RowsRead,
};

use super::{not_found, query_context, Caller, ExecError, Service};
use crate::authorize::Guard;
use crate::metadata::Entity;
use crate::parse::key::AlternateKey;
use crate::query::options::bind;
use crate::query::{ExpandSelect, Expr, Literal, PropertyRef, QueryFnName};
use crate::store::sql::{AggregatePlan, Context, JoinPlan, Keyset, Plan};
use crate::store::{Access, JoinQuery, Query, Record, StoreError, Value};

/// What a read found, with the request it answers (the serializer needs both).
#[derive(Debug)]
pub enum ReadResult {
    Rows(RowsResult),
    Aggregate {
        request: AggregateRead,
        /// Per group: its values, then the aggregates.
        rows: Vec<Vec<Value>>,
    },
    Count(u64),
    Record(RecordResult),
}

/// A page of rows.
#[derive(Debug)]
pub struct RowsResult {
    pub request: RowsRead,
    pub rows: Vec<Row>,
    /// More rows follow (only when the request may announce them).
    pub more: bool,
    /// The filtered rows, counted up to the request's cap.
    pub total: Option<u64>,
}

/// One row and what was read for it.
#[derive(Debug)]
pub struct Row {
    pub record: Record,
    /// One entry per expand node: the navigation property and what it found.
    pub expanded: Vec<(String, Expanded)>,
    /// FetchXML linked columns, `alias.column`, non-null values only.
    pub linked: Vec<Linked>,
}

/// One FetchXML linked column of a row: its value and what its annotations say.
#[derive(Debug, Clone)]
pub struct Linked {
    /// `alias.property`.
    pub name: String,
    /// The column's logical name (its `AttributeName` annotation).
    pub column: String,
    pub value: Value,
    /// The formatted value (option labels, dates, numbers).
    pub formatted: Option<String>,
    /// A lookup's target table.
    pub target: Option<String>,
}

/// The linked columns `alias.column` of `related` at `positions`, non-null values only.
fn linked_columns(alias: &str, related: &Record, positions: &[usize]) -> Vec<Linked> {
    positions
        .iter()
        .filter_map(|&index| {
            let value = &related.values[index];
            if value.is_null() {
                return None;
            }
            let attribute = &related.entity.attributes[index];
            Some(Linked {
                name: format!("{alias}.{}", attribute.property_name()),
                column: attribute.logical_name.clone(),
                value: value.clone(),
                formatted: crate::serialize::formatted_value(related, attribute, value),
                target: attribute
                    .attribute_type
                    .is_lookup()
                    .then(|| crate::serialize::lookup_target(related, attribute))
                    .flatten(),
            })
        })
        .collect()
}

/// The positions a link writes: `None` is every EDM property of the table.
fn link_positions(entity: &Entity, columns: &Option<Vec<usize>>) -> Vec<usize> {
    match columns {
        None => entity
            .attributes
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_edm_property())
            .map(|(i, _)| i)
            .collect(),
        Some(positions) => positions.clone(),
    }
}

/// One record.
#[derive(Debug)]
pub struct RecordResult {
    pub request: RecordRead,
    pub record: Record,
    pub expanded: Vec<(String, Expanded)>,
}

/// What one expand node found for one row.
#[derive(Debug, Clone)]
pub enum Expanded {
    /// No related row, or one the caller may not read.
    Null,
    /// `nav/$ref`.
    Reference(Arc<Entity>, Uuid),
    /// The related row, the columns to write (`None`: every column) and its nested expands.
    Record(Record, Option<Vec<usize>>, Vec<(String, Expanded)>),
    /// A collection-valued navigation: the related rows, each with its nested expands, and
    /// the columns to write.
    Collection(Vec<ExpandedRow>, Option<Vec<usize>>),
}

/// A related row and what its nested expand nodes found.
pub type ExpandedRow = (Record, Vec<(String, Expanded)>);

/// The most rows one collection-valued expand node reads for all its parents (as many as an
/// aggregation may read); beyond it the request is refused, never silently cut.
pub const MAX_EXPANDED_ROWS: usize = 50_000;

type ExpandFuture<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<Vec<Vec<(String, Expanded)>>, ExecError>>
            + Send
            + 'a,
    >,
>;

impl Service {
    /// The id of the record an alternate key names, as the caller may read it: the key's
    /// columns compared for equality (text case-insensitively, on both backends, as `$filter`
    /// compares it) in one rows read through the guard, so the row scope applies and a record
    /// the caller may not read is not found. Values travel as bound parameters.
    pub async fn find_by_key(
        &self,
        db: &Guard<'_>,
        caller: &Caller,
        key: &AlternateKey,
    ) -> Result<Option<Uuid>, ExecError> {
        let entity = &key.entity;
        let filter = Expr::and(
            key.values
                .iter()
                .map(|(index, value)| Expr::Compare {
                    prop: PropertyRef {
                        index: *index,
                        name: entity.attributes[*index].property_name().to_string(),
                    },
                    op: crate::query::CmpOp::Eq,
                    value: value.clone(),
                })
                .collect(),
        );
        let primary = entity.primary_id_position();
        let options = crate::query::QueryOptions {
            select: vec![PropertyRef {
                index: primary,
                name: entity.primary_id.clone(),
            }],
            filter: Some(filter),
            // Two, to tell a unique match from several (a key index made before keys compared
            // text case-insensitively on PostgreSQL may hold values differing only in case).
            top: Some(2),
            ..Default::default()
        };
        let request = ReadRequest::list(entity, options, None, false)?;
        let ReadResult::Rows(result) = self.read(db, caller, request).await? else {
            return Ok(None);
        };
        match result.rows.as_slice() {
            [] => Ok(None),
            [row] => Ok(row.record.id()),
            _ => Err(ExecError::AmbiguousKey {
                entity: entity.logical_name.clone(),
            }),
        }
    }

    /// Runs one read as the caller, through the caller's guard.
    pub async fn read(
        &self,
        db: &Guard<'_>,
        caller: &Caller,
        request: ReadRequest,
    ) -> Result<ReadResult, ExecError> {
        self.run_read(db, caller, request).await
    }

    async fn run_read(
        &self,
        db: &dyn Access,
        caller: &Caller,
        request: ReadRequest,
    ) -> Result<ReadResult, ExecError> {
        let context = query_context(caller);
        match request {
            ReadRequest::Rows(request) => Ok(ReadResult::Rows(
                self.rows(db, context, caller, request).await?,
            )),
            ReadRequest::Aggregate(request) => {
                let plan = AggregatePlan {
                    entity: Arc::clone(&request.entity),
                    filter: request.filter.clone(),
                    scope: None,
                    related: None,
                    through: request.through.clone(),
                    join: request.join.clone(),
                    from_join: request.from_join.clone(),
                    group_by: request.group_by.clone(),
                    aggregates: request.aggregates.clone(),
                    order: request.order.clone(),
                    limit: request.limit,
                };
                let rows = self.aggregate(db, caller, plan).await?;
                Ok(ReadResult::Aggregate { request, rows })
            }
            ReadRequest::Count(request) => {
                let plan = Plan::filtered(&request.entity, request.filter);
                let total = self
                    .count(db, caller, plan, crate::query::read::PAGE_LIMIT)
                    .await?;
                Ok(ReadResult::Count(total))
            }
            ReadRequest::Record(request) => {
                let record = db
                    .get(&request.entity, request.id, request.with_names)
                    .await?
                    .ok_or_else(|| not_found(&request.entity, request.id))?;
                let mut expanded = self
                    .expand(
                        db,
                        context,
                        std::slice::from_ref(&record),
                        &request.expand,
                        request.with_names,
                    )
                    .await?;
                Ok(ReadResult::Record(RecordResult {
                    expanded: expanded.pop().unwrap_or_default(),
                    request,
                    record,
                }))
            }
        }
    }

    async fn rows(
        &self,
        db: &dyn Access,
        context: Context,
        caller: &Caller,
        request: RowsRead,
    ) -> Result<RowsResult, ExecError> {
        let size = request.page.size;
        let plan = Plan {
            entity: Arc::clone(&request.entity),
            filter: request.filter.clone(),
            order: request.order.clone(),
            limit: Some(size + 1),
            after: request.page.after.as_deref().map(keyset),
            scope: None,
            related: None,
        };
        // A one-to-many join reads the page of joined rows in one statement, by offset.
        let (mut records, mut joined) = match &request.join {
            None => {
                let records = db
                    .query(Query {
                        plan,
                        context,
                        with_names: request.with_names,
                    })
                    .await?;
                (records, Vec::new())
            }
            Some(join) => {
                let plan = JoinPlan {
                    root: plan,
                    join: join.join.clone(),
                    offset: (request.page.number - 1) * size,
                };
                let query = JoinQuery {
                    plan,
                    context,
                    with_names: request.with_names,
                };
                db.query_join(query).await?.into_iter().unzip()
            }
        };
        let more = request.page.announces_more && records.len() > size;
        records.truncate(size);
        joined.truncate(size);
        let total = match request.total_cap {
            Some(cap) => {
                let plan = Plan::filtered(&request.entity, request.filter.clone());
                Some(self.count(db, caller, plan, cap).await?)
            }
            None => None,
        };
        let mut expanded = self
            .expand(db, context, &records, &request.expand, request.with_names)
            .await?;
        let mut linked = self
            .link_columns(db, context, &records, &request.links)
            .await?;
        if let Some(join) = &request.join {
            let positions = link_positions(&join.join.child.0, &join.columns);
            for (slot, child) in linked.iter_mut().zip(&joined) {
                if let Some(child) = child {
                    slot.extend(linked_columns(&join.alias, child, &positions));
                }
            }
        }
        let rows = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| Row {
                record,
                expanded: std::mem::take(&mut expanded[i]),
                linked: std::mem::take(&mut linked[i]),
            })
            .collect();
        Ok(RowsResult {
            request,
            rows,
            more,
            total,
        })
    }

    /// The expand nodes of every parent row: per node, one read of all the related rows (of
    /// every parent at once), then the node's children on those rows, level by level.
    fn expand<'a>(
        &'a self,
        db: &'a dyn Access,
        context: Context,
        parents: &'a [Record],
        nodes: &'a [ExpandNode],
        with_names: bool,
    ) -> ExpandFuture<'a> {
        Box::pin(async move {
            let mut out: Vec<Vec<(String, Expanded)>> = parents
                .iter()
                .map(|_| Vec::with_capacity(nodes.len()))
                .collect();
            for node in nodes {
                let items = match node.relation {
                    Relation::ManyToOne => {
                        self.expand_lookup(db, context, parents, node, with_names)
                            .await?
                    }
                    Relation::OneToMany => {
                        self.expand_collection(db, context, parents, node, with_names)
                            .await?
                    }
                };
                for (slot, item) in out.iter_mut().zip(items) {
                    slot.push((node.navigation.name.clone(), item));
                }
            }
            Ok(out)
        })
    }

    /// A many-to-one node: the row each parent's lookup points at, in one read per table.
    async fn expand_lookup(
        &self,
        db: &dyn Access,
        context: Context,
        parents: &[Record],
        node: &ExpandNode,
        with_names: bool,
    ) -> Result<Vec<Expanded>, ExecError> {
        let attribute = parents
            .first()
            .map(|p| &p.entity.attributes[node.navigation.index]);
        // The target table and id of each parent's lookup.
        let targets: Vec<Option<(Arc<Entity>, Uuid)>> = parents
            .iter()
            .map(|parent| {
                let id = parent.values[node.navigation.index].as_guid()?;
                let target_name = match &node.target {
                    Some(t) => t.clone(),
                    None => crate::serialize::lookup_target(parent, attribute?)?,
                };
                let target = self.catalog.entity(&target_name)?;
                Some((Arc::clone(target), id))
            })
            .collect();
        if node.reference_only {
            return Ok(targets
                .into_iter()
                .map(|target| match target {
                    Some((entity, id)) => Expanded::Reference(entity, id),
                    None => Expanded::Null,
                })
                .collect());
        }
        let mut by_table: HashMap<String, (Arc<Entity>, Vec<Uuid>)> = HashMap::new();
        for (entity, id) in targets.iter().flatten() {
            by_table
                .entry(entity.logical_name.clone())
                .or_insert_with(|| (Arc::clone(entity), Vec::new()))
                .1
                .push(*id);
        }
        let mut found: HashMap<(String, Uuid), ExpandedRow> = HashMap::new();
        let mut selects: HashMap<String, Option<Vec<usize>>> = HashMap::new();
        for (table, (entity, ids)) in by_table {
            selects.insert(table.clone(), expand_select(&entity, &node.select)?);
            let records = read_ids(db, context, &entity, ids, with_names).await?;
            let nested = self
                .expand(db, context, &records, &node.children, with_names)
                .await?;
            for (record, nested) in records.into_iter().zip(nested) {
                if let Some(id) = record.id() {
                    found.insert((table.clone(), id), (record, nested));
                }
            }
        }
        Ok(targets
            .into_iter()
            .map(|target| {
                target
                    .and_then(|(entity, id)| {
                        let (record, nested) =
                            found.get(&(entity.logical_name.clone(), id))?.clone();
                        let select = selects.get(&entity.logical_name).cloned().flatten();
                        Some(Expanded::Record(record, select, nested))
                    })
                    .unwrap_or(Expanded::Null)
            })
            .collect())
    }

    /// A one-to-many node: the rows of the target whose lookup points at any parent, in one
    /// read (the node's filter and order in its SQL, the caller's row scope from the guard),
    /// then grouped by parent and cut at the node's `$top`.
    async fn expand_collection(
        &self,
        db: &dyn Access,
        context: Context,
        parents: &[Record],
        node: &ExpandNode,
        with_names: bool,
    ) -> Result<Vec<Expanded>, ExecError> {
        let target = node
            .target
            .as_deref()
            .and_then(|t| self.catalog.entity(t))
            .ok_or_else(|| {
                ExecError::InvalidArgument(format!(
                    "The navigation property '{}' has no table.",
                    node.navigation.name
                ))
            })?;
        let select = expand_select(target, &node.select)?;
        let ids: Vec<Uuid> = parents.iter().filter_map(|p| p.id()).collect();
        let children = if ids.is_empty() {
            Vec::new()
        } else {
            let lookup = PropertyRef {
                index: node.navigation.index,
                name: target.attributes[node.navigation.index]
                    .property_name()
                    .to_string(),
            };
            let within = Expr::QueryFn {
                name: QueryFnName::In,
                prop: lookup,
                values: ids.into_iter().map(Literal::Guid).collect(),
            };
            let filter = match &node.filter {
                Some(f) => Expr::and(vec![within, f.clone()]),
                None => within,
            };
            let mut plan = Plan::filtered(target, Some(filter));
            plan.order = node.order.clone();
            plan.limit = Some(MAX_EXPANDED_ROWS + 1);
            match db
                .query(Query {
                    plan,
                    context,
                    with_names,
                })
                .await
            {
                Ok(records) => records,
                Err(StoreError::Denied(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            }
        };
        if children.len() > MAX_EXPANDED_ROWS {
            return Err(ExecError::InvalidArgument(format!(
                "The $expand of '{}' reaches more than {MAX_EXPANDED_ROWS} rows; narrow it with $filter or fewer parent rows.",
                node.navigation.name
            )));
        }
        let nested = self
            .expand(db, context, &children, &node.children, with_names)
            .await?;
        let mut by_parent: HashMap<Uuid, Vec<ExpandedRow>> = HashMap::new();
        for (child, nested) in children.into_iter().zip(nested) {
            let Some(parent) = child.values[node.navigation.index].as_guid() else {
                continue;
            };
            let rows = by_parent.entry(parent).or_default();
            if node.top.is_none_or(|top| rows.len() < top) {
                rows.push((child, nested));
            }
        }
        Ok(parents
            .iter()
            .map(|parent| {
                let rows = parent
                    .id()
                    .and_then(|id| by_parent.remove(&id))
                    .unwrap_or_default();
                Expanded::Collection(rows, select.clone())
            })
            .collect())
    }

    /// FetchXML linked columns of every row: per link, one read of all the linked rows.
    async fn link_columns(
        &self,
        db: &dyn Access,
        context: Context,
        rows: &[Record],
        links: &[LinkColumns],
    ) -> Result<Vec<Vec<Linked>>, ExecError> {
        let mut out: Vec<Vec<Linked>> = rows.iter().map(|_| Vec::new()).collect();
        for link in links {
            let ids: Vec<Uuid> = rows
                .iter()
                .filter_map(|row| row.values[link.to.index].as_guid())
                .collect();
            let found: HashMap<Uuid, Record> = read_ids(db, context, &link.entity, ids, false)
                .await?
                .into_iter()
                .filter_map(|record| Some((record.id()?, record)))
                .collect();
            let wanted = link_positions(&link.entity, &link.columns);
            for (slot, row) in out.iter_mut().zip(rows) {
                let Some(related) = row.values[link.to.index]
                    .as_guid()
                    .and_then(|id| found.get(&id))
                else {
                    continue;
                };
                slot.extend(linked_columns(&link.alias, related, &wanted));
            }
        }
        Ok(out)
    }
}

/// The rows of `entity` with these ids, in one read; the rows the caller may not read (or a
/// table it may not read at all) are simply not among them, as a missing row is not.
async fn read_ids(
    db: &dyn Access,
    context: Context,
    entity: &Arc<Entity>,
    mut ids: Vec<Uuid>,
    with_names: bool,
) -> Result<Vec<Record>, ExecError> {
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let position = entity.primary_id_position();
    let primary = PropertyRef {
        index: position,
        name: entity.attributes[position].property_name().to_string(),
    };
    let filter = Expr::QueryFn {
        name: QueryFnName::In,
        prop: primary,
        values: ids.into_iter().map(Literal::Guid).collect(),
    };
    let plan = Plan::filtered(entity, Some(filter));
    match db
        .query(Query {
            plan,
            context,
            with_names,
        })
        .await
    {
        Ok(records) => Ok(records),
        Err(StoreError::Denied(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The columns an expand node writes of a row of `target`.
fn expand_select(target: &Entity, select: &ExpandSelect) -> Result<Option<Vec<usize>>, ExecError> {
    Ok(match select {
        ExpandSelect::Bound(props) => crate::query::read::positions(props),
        ExpandSelect::Raw(names) if names.is_empty() => None,
        ExpandSelect::Raw(names) => Some(
            names
                .iter()
                .map(|n| bind(target, n).map(|p| p.index))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    })
}

/// A cursor's typed values as the store's keyset.
pub(crate) fn keyset(values: &[Literal]) -> Keyset {
    Keyset {
        values: values
            .iter()
            .map(|literal| match literal {
                Literal::Null => Value::Null,
                Literal::String(s) => Value::Text(s.clone()),
                Literal::Int(n) => Value::Int(*n),
                Literal::Guid(g) => Value::Guid(*g),
                Literal::DateTime(t) | Literal::Date(t) => Value::DateTime(*t),
                Literal::Bool(b) => Value::Bool(*b),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::metadata::Catalog;
    use crate::query::QueryOptions;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Store, WriteOp, WriteOutcome};

    /// The store, counting the reads that reach it.
    struct Counting {
        inner: Arc<SqliteStore>,
        reads: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Access for Counting {
        async fn get(
            &self,
            entity: &Arc<Entity>,
            id: Uuid,
            with_names: bool,
        ) -> Result<Option<Record>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.get(entity, id, with_names).await
        }
        async fn query(&self, query: Query) -> Result<Vec<Record>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.query(query).await
        }
        async fn query_join(
            &self,
            query: JoinQuery,
        ) -> Result<Vec<crate::store::JoinedRow>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.query_join(query).await
        }
        async fn count(&self, query: Query, cap: usize) -> Result<u64, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.count(query, cap).await
        }
        async fn aggregate(
            &self,
            plan: AggregatePlan,
            context: Context,
        ) -> Result<Vec<Vec<Value>>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.aggregate(plan, context).await
        }
        async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
            self.inner.write(op).await
        }
    }

    fn unit(entity: &Arc<Entity>, name: &str, parent: Option<Uuid>) -> (Uuid, Record) {
        let mut record = Record::empty(Arc::clone(entity));
        let id = Uuid::new_v4();
        record.values[entity.primary_id_position()] = Value::Guid(id);
        record.values[entity.position(&entity.primary_name).unwrap()] = Value::Text(name.into());
        if let Some(parent) = parent {
            let lookup = lookup_to_own_table(entity);
            record.values[lookup] = Value::Guid(parent);
        }
        (id, record)
    }

    /// The lookup of a table to itself (a business unit's parent unit).
    fn lookup_to_own_table(entity: &Entity) -> usize {
        entity
            .attributes
            .iter()
            .position(|a| {
                a.attribute_type.is_lookup() && a.targets == [entity.logical_name.clone()]
            })
            .expect("the table has a lookup to itself")
    }

    /// A fresh store and the business-unit table (its directory lives as long as the store).
    fn unit_store() -> (
        tempfile::TempDir,
        Arc<Catalog>,
        Arc<SqliteStore>,
        Arc<Entity>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(Catalog::builtin().unwrap());
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.db"), &catalog).unwrap());
        let entity = Arc::clone(catalog.entity("businessunit").unwrap());
        (dir, catalog, store, entity)
    }

    /// Runs a list of `entity` with these query pairs as the nil caller, counting the store
    /// reads: the result and the reads it took.
    async fn counted_list(
        catalog: &Arc<Catalog>,
        store: Arc<SqliteStore>,
        entity: &Arc<Entity>,
        pairs: &[(String, String)],
    ) -> (RowsResult, usize) {
        let options = QueryOptions::parse(catalog, entity, pairs).unwrap();
        let request = ReadRequest::list(entity, options, None, false).unwrap();
        counted_run(catalog, store, request).await
    }

    /// Runs `request` as the nil caller, counting the store reads: the result and the reads.
    async fn counted_run(
        catalog: &Arc<Catalog>,
        store: Arc<SqliteStore>,
        request: ReadRequest,
    ) -> (RowsResult, usize) {
        let service = Service::new(Arc::clone(catalog), store.clone());
        let counting = Counting {
            inner: store,
            reads: AtomicUsize::new(0),
        };
        let caller = Caller {
            user_id: Uuid::nil(),
            business_unit_id: Uuid::nil(),
            on_behalf_of: None,
        };
        let ReadResult::Rows(result) = service.run_read(&counting, &caller, request).await.unwrap()
        else {
            panic!("a rows result");
        };
        (result, counting.reads.load(Ordering::SeqCst))
    }

    /// Lists `n` child units with `$expand` of their parent (each a different unit) and
    /// returns the store reads it took.
    async fn expand_reads(n: usize) -> usize {
        let (_dir, catalog, store, entity) = unit_store();
        // One unit tree: a root, `n` parent units under it, a child under each.
        let (root, root_row) = unit(&entity, "root", None);
        let mut ops = vec![WriteOp::Insert(root_row)];
        let mut parents = HashMap::new();
        for k in 0..n {
            let (parent, parent_row) = unit(&entity, &format!("parent {k}"), Some(root));
            let (child, child_row) = unit(&entity, &format!("child {k}"), Some(parent));
            parents.insert(child, parent);
            ops.push(WriteOp::Insert(parent_row));
            ops.push(WriteOp::Insert(child_row));
        }
        store.write_all(ops).await.unwrap();

        let attribute = &entity.attributes[lookup_to_own_table(&entity)];
        let (lookup, property) = (&attribute.logical_name, attribute.property_name());
        let pairs = vec![
            (
                "$expand".to_string(),
                format!("{lookup}($select={})", entity.primary_name),
            ),
            (
                "$filter".to_string(),
                format!("{property} ne {root} and {property} ne null"),
            ),
            ("$count".to_string(), "true".to_string()),
        ];
        let (result, reads) = counted_list(&catalog, store, &entity, &pairs).await;
        assert_eq!(result.rows.len(), n);
        assert_eq!(result.total, Some(n as u64));
        for row in &result.rows {
            let child = row.record.id().unwrap();
            match &row.expanded[..] {
                [(_, Expanded::Record(parent, Some(select), _))] => {
                    assert_eq!(parent.id(), Some(parents[&child]));
                    assert_eq!(select.len(), 1);
                }
                other => panic!("the parent unit, not {other:?}"),
            }
        }
        reads
    }

    #[tokio::test]
    async fn expand_reads_do_not_grow_with_the_rows() {
        // The page, the count, and one read for every parent unit at once.
        assert_eq!(expand_reads(3).await, 3);
        assert_eq!(expand_reads(60).await, 3);
    }

    /// Lists `n` parent units with `$expand` of their child units (a collection, two each),
    /// and inside it each child's parent again; returns the store reads it took.
    async fn collection_reads(n: usize) -> usize {
        let (_dir, catalog, store, entity) = unit_store();
        let (root, root_row) = unit(&entity, "root", None);
        let mut ops = vec![WriteOp::Insert(root_row)];
        let mut children: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for k in 0..n {
            let (parent, parent_row) = unit(&entity, &format!("parent {k}"), Some(root));
            ops.push(WriteOp::Insert(parent_row));
            for j in 0..2 {
                let (child, child_row) = unit(&entity, &format!("child {k}.{j}"), Some(parent));
                children.entry(parent).or_default().push(child);
                ops.push(WriteOp::Insert(child_row));
            }
        }
        store.write_all(ops).await.unwrap();

        let lookup = lookup_to_own_table(&entity);
        let attribute = &entity.attributes[lookup];
        let collection = crate::schema::navigations(&catalog, &entity)
            .into_iter()
            .find(|nav| nav.attribute.logical_name == attribute.logical_name)
            .expect("the parent lookup is a navigation")
            .partner;
        let pairs = vec![
            (
                "$expand".to_string(),
                format!(
                    "{collection}($select={};$expand={}($select={}))",
                    entity.primary_name, attribute.logical_name, entity.primary_name
                ),
            ),
            (
                "$filter".to_string(),
                format!("{} eq {root}", attribute.property_name()),
            ),
            ("$count".to_string(), "true".to_string()),
        ];
        let (result, reads) = counted_list(&catalog, store, &entity, &pairs).await;
        assert_eq!(result.rows.len(), n);
        for row in &result.rows {
            let parent = row.record.id().unwrap();
            let [(_, Expanded::Collection(rows, Some(select)))] = &row.expanded[..] else {
                panic!("the child units, not {:?}", row.expanded);
            };
            assert_eq!(select.len(), 1);
            let mut found: Vec<Uuid> = rows.iter().filter_map(|(r, _)| r.id()).collect();
            let mut expected = children[&parent].clone();
            found.sort_unstable();
            expected.sort_unstable();
            assert_eq!(found, expected);
            for (_, nested) in rows {
                match &nested[..] {
                    [(_, Expanded::Record(back, _, _))] => assert_eq!(back.id(), Some(parent)),
                    other => panic!("the child's parent, not {other:?}"),
                }
            }
        }
        reads
    }

    /// Lists `n` parent units (and the root) joined one-to-many with their child units by
    /// FetchXML (two each); returns the store reads it took.
    async fn join_reads(n: usize) -> usize {
        let (_dir, catalog, store, entity) = unit_store();
        let (root, root_row) = unit(&entity, "root", None);
        let mut ops = vec![WriteOp::Insert(root_row)];
        for k in 0..n {
            let (parent, parent_row) = unit(&entity, &format!("parent {k}"), Some(root));
            ops.push(WriteOp::Insert(parent_row));
            for j in 0..2 {
                ops.push(WriteOp::Insert(
                    unit(&entity, &format!("child {k}.{j}"), Some(parent)).1,
                ));
            }
        }
        store.write_all(ops).await.unwrap();
        let lookup = &entity.attributes[lookup_to_own_table(&entity)].logical_name;
        let xml = format!(
            "<fetch><entity name='{table}'><attribute name='{name}'/>\
             <link-entity name='{table}' from='{lookup}' to='{id}' alias='child'>\
             <attribute name='{name}'/></link-entity></entity></fetch>",
            table = entity.logical_name,
            name = entity.primary_name,
            id = entity.primary_id,
        );
        let query = crate::query::fetchxml::parse(&catalog, &xml).unwrap();
        let request = ReadRequest::fetch(&entity, query, false, false).unwrap();
        let (result, reads) = counted_run(&catalog, store, request).await;
        // The root once per parent, each parent once per child; the children have none.
        assert_eq!(result.rows.len(), 3 * n);
        let linked = |row: &Row| {
            row.linked
                .iter()
                .filter(|l| l.name.starts_with("child."))
                .count()
        };
        assert!(result.rows.iter().all(|row| linked(row) == 1));
        reads
    }

    #[tokio::test]
    async fn join_reads_do_not_grow_with_the_rows() {
        // One statement for the page of joined rows.
        assert_eq!(join_reads(3).await, 1);
        assert_eq!(join_reads(40).await, 1);
    }

    #[tokio::test]
    async fn a_collection_beyond_the_row_limit_is_refused_not_cut() {
        let (_dir, catalog, store, entity) = unit_store();
        let (root, root_row) = unit(&entity, "root", None);
        let (parent, parent_row) = unit(&entity, "parent", Some(root));
        let mut ops = vec![WriteOp::Insert(root_row), WriteOp::Insert(parent_row)];
        for k in 0..=MAX_EXPANDED_ROWS {
            ops.push(WriteOp::Insert(
                unit(&entity, &format!("c{k}"), Some(parent)).1,
            ));
        }
        store.write_all(ops).await.unwrap();
        let attribute = &entity.attributes[lookup_to_own_table(&entity)];
        let collection = crate::schema::navigations(&catalog, &entity)
            .into_iter()
            .find(|nav| nav.attribute.logical_name == attribute.logical_name)
            .unwrap()
            .partner;
        let pairs = vec![
            ("$expand".to_string(), format!("{collection}($top=1)")),
            (
                "$filter".to_string(),
                format!("{} eq {root}", attribute.property_name()),
            ),
        ];
        let options = QueryOptions::parse(&catalog, &entity, &pairs).unwrap();
        let request = ReadRequest::list(&entity, options, None, false).unwrap();
        let service = Service::new(Arc::clone(&catalog), store.clone());
        let caller = Caller {
            user_id: Uuid::nil(),
            business_unit_id: Uuid::nil(),
            on_behalf_of: None,
        };
        let refused = service.run_read(store.as_ref(), &caller, request).await;
        assert!(
            matches!(&refused, Err(ExecError::InvalidArgument(m)) if m.contains("more than")),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn collection_and_nested_expand_reads_do_not_grow_with_the_rows() {
        // The page, the count, one read of every child at once, one of their parents.
        assert_eq!(collection_reads(3).await, 4);
        assert_eq!(collection_reads(40).await, 4);
    }
}
