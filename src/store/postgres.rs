//! The PostgreSQL backend: several stateless smsctx nodes on one shared database.
//!
//! Every node keeps a pool of connections ([`deadpool_postgres`]) and no state of its own, so
//! any number of nodes can serve the same database behind a load balancer. What SQLite gets from
//! having one writer thread, PostgreSQL does in SQL:
//!
//! * **Each write is one statement, so one transaction** (autocommit): an insert takes its
//!   `versionnumber` from `nextval` and returns it; a duplicate id is a unique violation
//!   (SQLSTATE 23505), reported as [`StoreError::Duplicate`].
//! * **Compare-and-set in SQL**: an update or delete with [`Expect::Version`] is
//!   `UPDATE ... WHERE id = $n AND versionnumber = $m`. PostgreSQL locks the row while it checks
//!   the condition and re-checks it after waiting for a concurrent writer, so of two nodes racing
//!   on one row exactly one changes it; the other changes nothing and then learns whether the row
//!   is gone ([`StoreError::NotFound`]) or newer ([`StoreError::VersionMismatch`]).
//! * **Versions from one SEQUENCE** (`smsctx_versionnumber`, `CACHE 1`), so they are unique and
//!   increase across all nodes, as Dataverse's rowversion does.
//! * **Durability**: a 2xx follows COMMIT, which with PostgreSQL's default
//!   `synchronous_commit = on` has flushed the WAL (and, with synchronous replication configured,
//!   reached the standby).
//! * **Migrations** (`migrations/postgres/`) run at start under `pg_advisory_lock`, so nodes
//!   starting together apply each version once; each version is one transaction.
//!
//! Column types: Guids are `uuid`, datetimes `timestamptz` (whole seconds; a `Value::DateTime`
//! is its Unix seconds, converted exactly both ways), booleans `boolean`, every integer `bigint`
//! (SQLite's integers are 64-bit, so the same literals fit), text `text COLLATE "C"` compared
//! through [`sql::Postgres`]'s `lower(x COLLATE "C")` (SQLite's `NOCASE`, exactly), with
//! expression indexes on that same text.
//!
//! Connections are plain TCP (no TLS): run the nodes next to the database or through a tunnel.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::sql::TableSql as EntitySql;
use super::{
    change_data, is_snapshot_text, migration_check_failed, sql, stored_key, Access, AuditRecord,
    AuditSelection, ChangeWindow, Expect, JoinQuery, JoinedRow, LoggedChange, Query, Record, Store, StoreError,
    StoredKey, Transaction, Value, WriteOp, WriteOutcome, MIGRATION_CHECKS,
};
use crate::metadata::{AttributeType, Catalog, Entity};
use crate::query::apply::AggregateFn;

/// The versioned schema migrations, applied in order, each in its own transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_channels.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_security.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_security_epoch.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_query_indexes.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_organization.sql"),
    ),
    (7, include_str!("../../migrations/postgres/0007_views.sql")),
    (
        9,
        include_str!("../../migrations/postgres/0009_identity_and_unit_tree.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_entity_keys.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_state_id_index.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_async_operations.sql"),
    ),
    (
        13,
        include_str!("../../migrations/postgres/0013_transcripts.sql"),
    ),
    (
        14,
        include_str!("../../migrations/postgres/0014_change_log.sql"),
    ),
];

/// The advisory lock key that serializes migrations across nodes ("smsctx" in ASCII).
const MIGRATION_LOCK: i64 = 0x736d_7363_7478;

/// Connections one node keeps open at most.
pub const DEFAULT_POOL_SIZE: usize = 32;

/// Prepared statements a connection keeps before it forgets them all (filters vary in shape).
const MAX_CACHED_STATEMENTS: usize = 256;

/// Unix seconds of 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch.
const POSTGRES_EPOCH: i64 = 946_684_800;

pub struct PostgresStore {
    pool: Pool,
    /// Requests that may wait for a connection of the pool.
    queue: usize,
    sql: Arc<HashMap<String, EntitySql>>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) with a pool of at most
    /// `pool_size` connections and brings the schema up to date.
    pub async fn open(
        url: &str,
        catalog: &Catalog,
        pool_size: usize,
    ) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_with_queue(url, catalog, pool_size, super::admission::DEFAULT_QUEUE)
            .await
    }

    /// As [`PostgresStore::open`], with at most `queue` requests waiting for a connection: the
    /// next is refused at once ([`StoreError::Busy`]).
    pub async fn open_with_queue(
        url: &str,
        catalog: &Catalog,
        pool_size: usize,
        queue: usize,
    ) -> Result<PostgresStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Database(format!("bad PostgreSQL URL: {e}")))?;
        let config_for_errors = config.clone();
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(10)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        migrate(&pool)
            .await
            .map_err(|e| opening_error(&config_for_errors, e))?;
        let sql = catalog
            .entities()
            .iter()
            .map(|e| {
                (
                    e.logical_name.clone(),
                    EntitySql::build(e, catalog, &sql::Postgres),
                )
            })
            .collect();
        Ok(PostgresStore {
            pool,
            queue,
            sql: Arc::new(sql),
        })
    }

    /// Copies whole rows (ids and versions as they are) in one transaction: a row that is
    /// already here is left alone unless the copy is newer, so a copy can be run again to
    /// resume or catch up. Afterwards the version sequence is past every copied version.
    /// Returns how many rows were written.
    pub async fn copy_rows(&self, entity: &Entity, rows: &[Record]) -> Result<u64, StoreError> {
        let table = self
            .sql
            .get(&entity.logical_name)
            .ok_or_else(|| StoreError::UnknownTable(entity.logical_name.clone()))?;
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let statement = tx.prepare_cached(&table.copy).await?;
        let mut written = 0;
        let mut highest = 0;
        for row in rows {
            let params: Vec<Param<'_>> = table
                .stored
                .iter()
                .map(|&i| Param(&row.values[i]))
                .collect();
            written += tx.execute(&statement, &refs(&params)).await?;
            highest = highest.max(row.version().unwrap_or_default());
        }
        tx.execute(
            "SELECT setval('smsctx_versionnumber', $1) \
             WHERE $1 >= (SELECT last_value FROM smsctx_versionnumber)",
            &[&highest],
        )
        .await?;
        tx.commit().await?;
        Ok(written)
    }

    /// Closes the pool: connections in use close when they are returned.
    pub fn close(&self) {
        self.pool.close();
    }

    /// A pooled connection; when every one is in use and `queue` requests already wait, the
    /// request is refused at once instead of joining them.
    async fn connection(&self) -> Result<Object, StoreError> {
        let status = self.pool.status();
        if status.available == 0 && status.size >= status.max_size && status.waiting >= self.queue {
            return Err(StoreError::Busy);
        }
        self.pool.get().await.map_err(pool_error)
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            StoreError::Busy
        }
        e => StoreError::Database(format!("no database connection: {}", with_causes(&e))),
    }
}

/// An error and every cause under it, `: `-separated: the pool's "Error occurred while
/// creating a new object: db error" alone hides the server's reason.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// `url` without the password of its user (for messages and start-up lines).
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// What the first connection to `config`'s server failed of, naming the server and, for the
/// usual cause on PostgreSQL 15 and later, the fix.
fn opening_error(config: &tokio_postgres::Config, e: StoreError) -> StoreError {
    let StoreError::Database(message) = e else {
        return e;
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(no user)");
    let database = config.get_dbname().unwrap_or(user);
    let mut text = format!(
        "PostgreSQL at {}:{port} (database {database}, user {user}): {message}",
        if hosts.is_empty() {
            "localhost".to_string()
        } else {
            hosts.join(",")
        },
    );
    if message.contains("permission denied for schema public") {
        text.push_str(&format!(
            "; PostgreSQL 15 and later let only the database owner create tables in schema \
             public: run `ALTER DATABASE {database} OWNER TO {user};` (or `GRANT CREATE ON \
             SCHEMA public TO {user};` in database {database}) as a superuser"
        ));
    } else if message.contains(&format!("database \"{database}\" does not exist")) {
        text.push_str(&format!(
            "; create it first: `createdb -O {user} {database}` (or `CREATE DATABASE {database} \
             OWNER {user};`)"
        ));
    }
    StoreError::Database(text)
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_unique_violation(&e) {
            let db = e.as_db_error();
            let on_key = db.is_some_and(|db| {
                db.constraint()
                    .is_some_and(|c| c.starts_with(sql::KEY_INDEX_PREFIX))
                    || db.message().contains(sql::KEY_INDEX_PREFIX)
            });
            if on_key {
                let detail = db.map(|db| db.detail().unwrap_or(db.message()).to_string());
                return StoreError::DuplicateKey(detail.unwrap_or_default());
            }
            return StoreError::Duplicate;
        }
        if e.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL) {
            return StoreError::Full;
        }
        if let Some(rule) = e
            .as_db_error()
            .and_then(|db| StoreError::rule(db.message()))
        {
            return rule;
        }
        StoreError::Database(with_causes(&e))
    }
}

async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply_migrations(&mut client).await;
    match client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
    {
        Ok(_) if result.is_ok() => {}
        // The session's lock ends with its connection: never hand it back to the pool.
        _ => drop(Object::take(client)),
    }
    result
}

async fn apply_migrations(client: &mut Object) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS smsctx_migrations (
                version    bigint PRIMARY KEY,
                applied_on timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    // Each migration not applied yet, in order: a version added between two applied ones (two
    // branches merged) still runs.
    let applied: Vec<i64> = client
        .query("SELECT version::bigint FROM smsctx_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (version, text) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
        let failed = |e: tokio_postgres::Error| StoreError::Migration {
            version: *version,
            message: StoreError::from(e).to_string(),
        };
        let tx = client.transaction().await?;
        for (_, check, _) in MIGRATION_CHECKS.iter().filter(|(v, _, _)| v == version) {
            let found: Vec<String> = tx
                .query(*check, &[])
                .await
                .map_err(failed)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if let Some(failure) = migration_check_failed(*version, &found) {
                return Err(failure);
            }
        }
        tx.batch_execute(text).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO smsctx_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
    Ok(())
}

/// One row as a record: the stored columns in select order, then the lookups' names.
fn read_row(
    table: &EntitySql,
    entity: &Arc<Entity>,
    row: &Row,
    with_names: bool,
) -> Result<Record, StoreError> {
    read_row_at(table, entity, row, with_names, 0)
}

/// As [`read_row`], from the `offset`th column of the row on.
fn read_row_at(
    table: &EntitySql,
    entity: &Arc<Entity>,
    row: &Row,
    with_names: bool,
    offset: usize,
) -> Result<Record, StoreError> {
    let mut record = Record::empty(Arc::clone(entity));
    for (column, &position) in table.stored.iter().enumerate() {
        let attribute_type = entity.attributes[position].attribute_type;
        record.values[position] = from_row(row, offset + column, attribute_type)?;
    }
    if with_names {
        for &(position, name_index) in &table.names {
            let name: Option<String> = row.try_get(offset + table.stored.len() + name_index)?;
            record.values[position] = name.map_or(Value::Null, Value::Text);
        }
    }
    Ok(record)
}

fn from_row(row: &Row, column: usize, attribute_type: AttributeType) -> Result<Value, StoreError> {
    use AttributeType as T;
    Ok(match attribute_type {
        T::Uniqueidentifier | T::Lookup | T::Owner => row
            .try_get::<_, Option<Uuid>>(column)?
            .map_or(Value::Null, Value::Guid),
        T::String | T::Memo | T::EntityName => row
            .try_get::<_, Option<String>>(column)?
            .map_or(Value::Null, Value::Text),
        T::Integer | T::BigInt | T::Picklist | T::State | T::Status => row
            .try_get::<_, Option<i64>>(column)?
            .map_or(Value::Null, Value::Int),
        T::Boolean => row
            .try_get::<_, Option<bool>>(column)?
            .map_or(Value::Null, Value::Bool),
        T::DateTime => row
            .try_get::<_, Option<Timestamp>>(column)?
            .map_or(Value::Null, |t| Value::DateTime(t.0)),
    })
}

/// A `timestamptz` read as Unix seconds (sub-second digits, which smsctx never writes, are
/// truncated towards the past).
struct Timestamp(i64);

impl<'a> FromSql<'a> for Timestamp {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let bytes: [u8; 8] = raw.try_into().map_err(|_| "a timestamp is 8 bytes")?;
        let micros = i64::from_be_bytes(bytes);
        Ok(Timestamp(micros.div_euclid(1_000_000) + POSTGRES_EPOCH))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMPTZ | Type::TIMESTAMP)
    }
}

/// A [`Value`] bound as a parameter of whatever type PostgreSQL inferred for it.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub(crate) &'a Value);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match (self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Text(t), _) => t.as_str().to_sql(ty, out),
            (Value::Int(n), &Type::INT4) => i32::try_from(*n)?.to_sql(ty, out),
            (Value::Int(n), &Type::INT2) => i16::try_from(*n)?.to_sql(ty, out),
            (Value::Int(n), _) => n.to_sql(ty, out),
            (Value::Bool(b), _) => b.to_sql(ty, out),
            (Value::Guid(g), _) => g.to_sql(ty, out),
            (Value::DateTime(secs), &Type::TIMESTAMPTZ | &Type::TIMESTAMP) => {
                let micros = secs
                    .checked_sub(POSTGRES_EPOCH)
                    .and_then(|s| s.checked_mul(1_000_000))
                    .ok_or("a datetime out of PostgreSQL's range")?;
                out.put_i64(micros);
                Ok(IsNull::No)
            }
            (Value::DateTime(secs), _) => secs.to_sql(ty, out),
            (Value::Float(f), _) => f.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which delegates to the typed implementations.
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn params(values: &[Value]) -> Vec<Param<'_>> {
    values.iter().map(Param).collect()
}

fn refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Whether `e` is a unique violation (a duplicate key).
fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// A prepared statement from the connection's cache, which is emptied when it grows past
/// [`MAX_CACHED_STATEMENTS`] (query texts vary with the shape of a `$filter`).
async fn prepare(
    client: &deadpool_postgres::ClientWrapper,
    text: &str,
) -> Result<tokio_postgres::Statement, StoreError> {
    if client.statement_cache.size() > MAX_CACHED_STATEMENTS {
        client.statement_cache.clear();
    }
    Ok(client.prepare_cached(text).await?)
}

/// The reads and writes, on any connection: the pool's, or a transaction's.
struct Executor<'a> {
    client: &'a deadpool_postgres::ClientWrapper,
    sql: &'a HashMap<String, EntitySql>,
}

impl Executor<'_> {
    fn table(&self, entity: &Entity) -> Result<&EntitySql, StoreError> {
        self.sql
            .get(&entity.logical_name)
            .ok_or_else(|| StoreError::UnknownTable(entity.logical_name.clone()))
    }

    async fn get(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
        with_names: bool,
    ) -> Result<Option<Record>, StoreError> {
        let table = self.table(entity)?;
        let text = if with_names {
            &table.select_with_names
        } else {
            &table.select
        };
        let statement = prepare(self.client, text).await?;
        let row = self.client.query_opt(&statement, &[&id]).await?;
        row.map(|row| read_row(table, entity, &row, with_names))
            .transpose()
    }

    async fn query(&self, query: &Query) -> Result<Vec<Record>, StoreError> {
        let table = self.table(&query.plan.entity)?;
        let (columns, joins) = if query.with_names {
            (&table.columns_with_names, table.joins.as_str())
        } else {
            (&table.columns, "")
        };
        let (plan, context) = (&query.plan, &query.context);
        let first = sql::select_sql(&sql::Postgres, plan, context, columns, joins)?;
        let tail = sql::select_tail_sql(&sql::Postgres, plan, context, columns, joins)?;
        let limit = plan.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for (text, values) in std::iter::once(first).chain(tail) {
            if out.len() >= limit {
                break;
            }
            let statement = prepare(self.client, &text).await?;
            let params = params(&values);
            for row in self.client.query(&statement, &refs(&params)).await? {
                out.push(read_row(table, &plan.entity, &row, query.with_names)?);
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The rows of a one-to-many join: the root's columns, then the child's (all NULL when an
    /// outer join found no child for the row).
    async fn query_join(&self, query: &JoinQuery) -> Result<Vec<JoinedRow>, StoreError> {
        let root_sql = self.table(&query.plan.root.entity)?;
        let child_sql = self.table(&query.plan.join.child.0)?;
        let (columns, joins, width) = root_sql.select_list(query.with_names);
        let (text, values) =
            sql::select_join_sql(&sql::Postgres, &query.plan, &query.context, columns, joins)?;
        let statement = prepare(self.client, &text).await?;
        let params = params(&values);
        let (root, child) = (&query.plan.root.entity, &query.plan.join.child.0);
        let mut out = Vec::new();
        for row in self.client.query(&statement, &refs(&params)).await? {
            let record = read_row(root_sql, root, &row, query.with_names)?;
            let joined = read_row_at(child_sql, child, &row, false, width)?;
            out.push((record, joined.id().map(|_| joined)));
        }
        Ok(out)
    }

    async fn count(&self, query: &Query, cap: usize) -> Result<u64, StoreError> {
        let (text, values) = sql::count_sql(&sql::Postgres, &query.plan, &query.context, "", cap)?;
        let statement = prepare(self.client, &text).await?;
        let params = params(&values);
        let n: i64 = self
            .client
            .query_one(&statement, &refs(&params))
            .await?
            .get(0);
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn aggregate(
        &self,
        plan: &sql::AggregatePlan,
        context: &sql::Context,
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let (text, values) = sql::aggregate_sql(&sql::Postgres, plan, context)?;
        let statement = prepare(self.client, &text).await?;
        let params = params(&values);
        let rows = self.client.query(&statement, &refs(&params)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Vec::with_capacity(plan.group_by.len() + plan.aggregates.len());
            for (column, prop) in plan.group_by.iter().enumerate() {
                values.push(from_row(row, column, plan.column_type(column, prop))?);
            }
            for (k, aggregate) in plan.aggregates.iter().enumerate() {
                let column = plan.group_by.len() + k;
                values.push(match (aggregate.function, &aggregate.prop) {
                    (AggregateFn::Min | AggregateFn::Max, Some(prop)) => {
                        from_row(row, column, plan.column_type(column, prop))?
                    }
                    (AggregateFn::Average, _) => row
                        .try_get::<_, Option<f64>>(column)?
                        .map_or(Value::Null, Value::Float),
                    _ => row
                        .try_get::<_, Option<i64>>(column)?
                        .map_or(Value::Null, Value::Int),
                });
            }
            out.push(values);
        }
        Ok(out)
    }

    /// After a compare-and-set changed nothing: why.
    async fn missed(&self, table: &EntitySql, id: Uuid, expect: Expect) -> StoreError {
        let current = match prepare(self.client, &table.version).await {
            Ok(statement) => self.client.query_opt(&statement, &[&id]).await,
            Err(e) => return e,
        };
        match (current, expect) {
            (Err(e), _) => e.into(),
            (Ok(None), _) => StoreError::NotFound,
            (Ok(Some(row)), Expect::Version(expected)) => StoreError::VersionMismatch {
                expected,
                actual: row.get(0),
            },
            // Found now, gone when the statement ran: it was deleted and created again.
            (Ok(Some(_)), Expect::Any) => StoreError::NotFound,
        }
    }

    async fn write(&self, op: &WriteOp) -> Result<WriteOutcome, StoreError> {
        match op {
            WriteOp::Insert(record) => {
                let table = self.table(&record.entity)?;
                let statement = prepare(self.client, &table.insert).await?;
                let params: Vec<Param<'_>> = table
                    .insert_positions
                    .iter()
                    .map(|&i| Param(&record.values[i]))
                    .collect();
                match self.client.query_one(&statement, &refs(&params)).await {
                    Ok(row) => Ok(WriteOutcome::Written {
                        version: row.get(0),
                    }),
                    Err(e) => Err(e.into()),
                }
            }
            WriteOp::Update {
                entity,
                id,
                changes,
                expect,
            } => {
                let table = self.table(entity)?;
                let (text, values) =
                    EntitySql::update(&sql::Postgres, entity, *id, changes, 0, *expect);
                let statement = prepare(self.client, &text).await?;
                let params = params(&values);
                match self.client.query_opt(&statement, &refs(&params)).await? {
                    Some(row) => Ok(WriteOutcome::Written {
                        version: row.get(0),
                    }),
                    None => Err(self.missed(table, *id, *expect).await),
                }
            }
            WriteOp::Delete { entity, id, expect } => {
                let table = self.table(entity)?;
                let deleted = match expect {
                    Expect::Any => {
                        let statement = prepare(self.client, &table.delete).await?;
                        self.client.execute(&statement, &[id]).await?
                    }
                    Expect::Version(version) => {
                        let statement = prepare(self.client, &table.delete_expect).await?;
                        self.client.execute(&statement, &[id, version]).await?
                    }
                };
                if deleted == 0 {
                    return Err(self.missed(table, *id, *expect).await);
                }
                Ok(WriteOutcome::Deleted)
            }
        }
    }
}

#[async_trait::async_trait]
impl Access for PostgresStore {
    async fn get(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
        with_names: bool,
    ) -> Result<Option<Record>, StoreError> {
        let client = self.connection().await?;
        self.executor(&client).get(entity, id, with_names).await
    }

    async fn query(&self, query: Query) -> Result<Vec<Record>, StoreError> {
        let client = self.connection().await?;
        self.executor(&client).query(&query).await
    }

    async fn query_join(&self, query: JoinQuery) -> Result<Vec<JoinedRow>, StoreError> {
        let client = self.connection().await?;
        self.executor(&client).query_join(&query).await
    }

    async fn count(&self, query: Query, cap: usize) -> Result<u64, StoreError> {
        let client = self.connection().await?;
        self.executor(&client).count(&query, cap).await
    }

    async fn aggregate(
        &self,
        plan: sql::AggregatePlan,
        context: sql::Context,
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let client = self.connection().await?;
        self.executor(&client).aggregate(&plan, &context).await
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let client = self.connection().await?;
        self.executor(&client).write(&op).await
    }

    async fn write_with(
        &self,
        op: WriteOp,
        consequences: Vec<WriteOp>,
    ) -> Result<WriteOutcome, StoreError> {
        super::write_all_with(self, op, consequences).await
    }
}

impl PostgresStore {
    fn executor<'a>(&'a self, client: &'a Object) -> Executor<'a> {
        Executor {
            client,
            sql: &self.sql,
        }
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>, StoreError> {
        let client = self.connection().await?;
        client.batch_execute("BEGIN").await?;
        Ok(Box::new(PostgresTransaction {
            client: Some(client),
            sql: Arc::clone(&self.sql),
            write_lock: tokio::sync::Mutex::new(()),
            finished: AtomicBool::new(false),
        }))
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let client = self.connection().await?;
        let row = client
            .query_opt("SELECT value FROM smsctx_settings WHERE key = $1", &[&key])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let client = self.connection().await?;
        client
            .execute(
                "INSERT INTO smsctx_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await?;
        Ok(client
            .query_one("SELECT value FROM smsctx_settings WHERE key = $1", &[&key])
            .await?
            .get(0))
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let client = self.connection().await?;
        client
            .execute(
                "INSERT INTO smsctx_settings (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )
            .await?;
        Ok(())
    }

    async fn entity_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let client = self.connection().await?;
        let rows = client
            .query(
                "SELECT entity, logicalname, schemaname, displayname, keyattributes \
                 FROM smsctx_entitykeys ORDER BY entity, logicalname",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| stored_key(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect())
    }

    async fn create_entity_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let text_columns = self
            .sql
            .get(&key.entity)
            .map(|t| t.text_columns.as_slice())
            .unwrap_or_default();
        let (create, _) = sql::key_index(&sql::Postgres, key, text_columns)?;
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO smsctx_entitykeys (entity, logicalname, schemaname, displayname, keyattributes) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &key.entity,
                &key.logical_name,
                &key.schema_name,
                &key.display_name,
                &key.attributes.join(","),
            ],
        )
        .await?;
        tx.batch_execute(&create).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_entity_key(
        &self,
        entity: &str,
        logical_name: &str,
    ) -> Result<bool, StoreError> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "DELETE FROM smsctx_entitykeys WHERE entity = $1 AND logicalname = $2 \
                 RETURNING entity, logicalname, schemaname, displayname, keyattributes",
                &[&entity, &logical_name],
            )
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let key = stored_key(row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let (_, drop) = sql::key_index(&sql::Postgres, &key, &[])?;
        tx.batch_execute(&drop).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn changes_since(
        &self,
        entity: &str,
        since: Option<&str>,
    ) -> Result<ChangeWindow, StoreError> {
        let client = self.connection().await?;
        let Some(since) = since else {
            let statement = client
                .prepare_cached("SELECT pg_current_snapshot()::text")
                .await?;
            let position: String = client.query_one(&statement, &[]).await?.get(0);
            return Ok(ChangeWindow {
                changes: Vec::new(),
                position,
            });
        };
        if !is_snapshot_text(since) {
            return Err(StoreError::BadPosition(since.to_string()));
        }
        // One statement, so one snapshot: the rows committed since the token's snapshot that
        // this statement sees, and this statement's snapshot as the next position. A
        // transaction in progress at the token's snapshot is not visible in it, so its rows
        // come in the first window after it commits, however late.
        let statement = client
            .prepare_cached(
                "WITH now AS (SELECT pg_current_snapshot()::text AS position) \
                 SELECT now.position, c.seq, c.objectid, c.action, c.operation \
                 FROM now LEFT JOIN smsctx_changelog c \
                 ON c.entity = $1 AND c.txid >= pg_snapshot_xmin($2::text::pg_snapshot) \
                 AND NOT pg_visible_in_snapshot(c.txid, $2::text::pg_snapshot) \
                 ORDER BY c.seq",
            )
            .await?;
        let rows = client.query(&statement, &[&entity, &since]).await?;
        let position = rows
            .first()
            .map(|r| r.get::<_, String>(0))
            .ok_or_else(|| StoreError::Unexpected("snapshot".into()))?;
        let changes = rows
            .iter()
            .filter_map(|r| {
                Some(LoggedChange {
                    seq: r.get::<_, Option<i64>>(1)?,
                    objectid: r.get(2),
                    action: r.get(3),
                    operation: r.get(4),
                })
            })
            .collect();
        Ok(ChangeWindow { changes, position })
    }

    async fn purge_changes(&self, before: i64) -> Result<u64, StoreError> {
        let client = self.connection().await?;
        let statement = client
            .prepare_cached(
                "DELETE FROM smsctx_changelog WHERE seq IN (SELECT seq FROM smsctx_changelog \
                 WHERE createdon < $1 ORDER BY seq LIMIT 1000)",
            )
            .await?;
        let mut purged = 0;
        loop {
            let deleted = client.execute(&statement, &[&before]).await?;
            purged += deleted;
            if deleted < 1000 {
                return Ok(purged);
            }
        }
    }

    async fn audit_records(
        &self,
        selection: AuditSelection,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let client = self.connection().await?;
        let columns = "seq, objectid, action, operation, entity, versionnumber, userid, \
                       callinguserid, createdon, olddata::text, newdata::text FROM smsctx_changelog";
        let rows = match selection {
            AuditSelection::Object(id) => {
                let statement = client
                    .prepare_cached(&format!(
                        "SELECT {columns} WHERE objectid = $1 ORDER BY seq"
                    ))
                    .await?;
                client.query(&statement, &[&id]).await?
            }
            AuditSelection::Record(seq) => {
                let statement = client
                    .prepare_cached(&format!("SELECT {columns} WHERE seq = $1"))
                    .await?;
                client.query(&statement, &[&seq]).await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    change: LoggedChange {
                        seq: r.get(0),
                        objectid: r.get(1),
                        action: r.get(2),
                        operation: r.get(3),
                    },
                    entity: r.get(4),
                    versionnumber: r.get(5),
                    userid: r.get(6),
                    callinguserid: r.get(7),
                    createdon: r.get(8),
                    olddata: change_data(r.get(9))?,
                    newdata: change_data(r.get(10))?,
                })
            })
            .collect()
    }

    async fn security_epoch(&self) -> Result<i64, StoreError> {
        let client = self.connection().await?;
        let statement = client
            .prepare_cached("SELECT epoch FROM smsctx_security_epoch WHERE id = 1")
            .await?;
        Ok(client.query_one(&statement, &[]).await?.get(0))
    }
}

/// A transaction on one pooled connection. Each write runs in its own SAVEPOINT, so a failed
/// write (a duplicate, a version mismatch) leaves the others in place, as on SQLite. Dropping it
/// without a commit rolls back.
struct PostgresTransaction {
    client: Option<Object>,
    sql: Arc<HashMap<String, EntitySql>>,
    /// Savepoints are one at a time.
    write_lock: tokio::sync::Mutex<()>,
    finished: AtomicBool,
}

impl PostgresTransaction {
    fn executor(&self) -> Result<Executor<'_>, StoreError> {
        if self.finished.load(Ordering::Acquire) {
            return Err(StoreError::TransactionEnded);
        }
        let client = self.client.as_ref().ok_or(StoreError::TransactionEnded)?;
        Ok(Executor {
            client,
            sql: &self.sql,
        })
    }

    async fn finish(&self, statement: &str) -> Result<(), StoreError> {
        let executor = self.executor()?;
        let result = executor.client.batch_execute(statement).await;
        // After a failed COMMIT the transaction is over too; a failed ROLLBACK is retried on drop.
        if result.is_ok() || statement == "COMMIT" {
            self.finished.store(true, Ordering::Release);
        }
        Ok(result?)
    }
}

impl Drop for PostgresTransaction {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if *self.finished.get_mut() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            // Closing the connection ends the transaction.
            Err(_) => drop(Object::take(client)),
        }
    }
}

#[async_trait::async_trait]
impl Access for PostgresTransaction {
    async fn get(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
        with_names: bool,
    ) -> Result<Option<Record>, StoreError> {
        self.executor()?.get(entity, id, with_names).await
    }

    async fn query(&self, query: Query) -> Result<Vec<Record>, StoreError> {
        self.executor()?.query(&query).await
    }

    async fn query_join(&self, query: JoinQuery) -> Result<Vec<JoinedRow>, StoreError> {
        self.executor()?.query_join(&query).await
    }

    async fn count(&self, query: Query, cap: usize) -> Result<u64, StoreError> {
        self.executor()?.count(&query, cap).await
    }

    async fn aggregate(
        &self,
        plan: sql::AggregatePlan,
        context: sql::Context,
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        self.executor()?.aggregate(&plan, &context).await
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let _one_at_a_time = self.write_lock.lock().await;
        let executor = self.executor()?;
        executor
            .client
            .batch_execute("SAVEPOINT smsctx_write")
            .await?;
        let outcome = executor.write(&op).await;
        let end = if outcome.is_ok() {
            "RELEASE SAVEPOINT smsctx_write"
        } else {
            "ROLLBACK TO SAVEPOINT smsctx_write; RELEASE SAVEPOINT smsctx_write"
        };
        executor.client.batch_execute(end).await?;
        outcome
    }
}

#[async_trait::async_trait]
impl Transaction for PostgresTransaction {
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.finish("COMMIT").await
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.finish("ROLLBACK").await
    }
}

/// Fresh databases on the PostgreSQL server named by `SMSCTX_TEST_POSTGRES`, for tests.
#[cfg(test)]
impl PostgresStore {
    /// The lines of `EXPLAIN` of `text` bound to `params`, with sequential scans priced out
    /// (the query-plan tests, `super::query_plans`).
    pub(crate) async fn explain(
        &self,
        text: &str,
        params: &[Value],
    ) -> Result<Vec<String>, StoreError> {
        let client = self.connection().await?;
        client
            .batch_execute("SET enable_seqscan = off; SET enable_sort = off")
            .await?;
        let params: Vec<Param<'_>> = params.iter().map(Param).collect();
        let rows = client
            .query(&format!("EXPLAIN {text}"), &refs(&params))
            .await?;
        client
            .batch_execute("RESET enable_seqscan; RESET enable_sort")
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    /// The server the tests also run against, if any.
    pub(crate) fn admin_url() -> Option<String> {
        std::env::var("SMSCTX_TEST_POSTGRES")
            .ok()
            .filter(|url| !url.is_empty())
    }

    pub(crate) async fn connect(url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        tokio::spawn(connection);
        client
    }

    /// `url` with its database name replaced by `name`.
    pub(crate) fn with_database(url: &str, name: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, format!("?{query}")),
            None => (rest, String::new()),
        };
        let authority = rest
            .split_once('/')
            .map_or(rest, |(authority, _)| authority);
        format!("{scheme}://{authority}/{name}{query}")
    }

    /// Creates an empty database with a random name; returns its URL and name.
    pub(crate) async fn create_database(admin: &str) -> (String, String) {
        let name = format!("smsctx_unit_{}", uuid::Uuid::new_v4().simple());
        connect(admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE: {e:?}"));
        (with_database(admin, &name), name)
    }

    pub(crate) async fn drop_database(admin: &str, name: &str) {
        let _ = connect(admin)
            .await
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }

    /// Says, rather than silently passing, that a PostgreSQL test did not run.
    pub(crate) fn skipped(test: &str) {
        // Past the test harness's output capture, so the skip is seen in every run.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: {test} needs SMSCTX_TEST_POSTGRES (scripts/test.sh sets it); not run"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// Runs `test` on a store over a fresh database, when a PostgreSQL server is configured.
    async fn with_store<F, Fut>(name: &str, test: F)
    where
        F: FnOnce(String, Arc<Catalog>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let Some(admin) = admin_url() else {
            return skipped(name);
        };
        let (url, database) = create_database(&admin).await;
        test(url, Arc::new(Catalog::builtin().unwrap())).await;
        drop_database(&admin, &database).await;
    }

    fn unit(entity: &Arc<Entity>, name: &str) -> (Uuid, Record) {
        let mut record = Record::empty(Arc::clone(entity));
        let id = Uuid::new_v4();
        record.set("businessunitid", Value::Guid(id));
        // Under some parent: the schema allows one root only (migration 9).
        record.set("parentbusinessunitid", Value::Guid(Uuid::new_v4()));
        record.set("name", Value::Text(name.into()));
        (id, record)
    }

    /// The change log orders by commit: a token issued while a transaction was still open
    /// returns that transaction's change once it commits, after a later one committed first,
    /// and the token that follows returns neither again.
    #[tokio::test]
    async fn a_transaction_that_commits_late_is_not_skipped_by_a_token_issued_meanwhile() {
        with_store("postgres change log", |url, catalog| async move {
            let store = PostgresStore::open(&url, &catalog, 4).await.unwrap();
            let contexts = Arc::clone(catalog.entity("msdyn_smsengagementctx").unwrap());
            let context = |name: &str| {
                let mut record = Record::empty(Arc::clone(&contexts));
                let id = Uuid::new_v4();
                record.values[contexts.primary_id_position()] = Value::Guid(id);
                record.set("msdyn_name", Value::Text(name.into()));
                (id, record)
            };
            let table = contexts.logical_name.as_str();
            let start = store.changes_since(table, None).await.unwrap().position;
            // The early transaction writes first and stays open.
            let (early, early_row) = context("early");
            let open = store.begin().await.unwrap();
            open.write(WriteOp::Insert(early_row)).await.unwrap();
            // Meanwhile a later write commits, and a token is issued that has seen it.
            let (late, late_row) = context("late");
            store.write(WriteOp::Insert(late_row)).await.unwrap();
            let window = store.changes_since(table, Some(&start)).await.unwrap();
            let seen: Vec<Uuid> = window.changes.iter().map(|c| c.objectid).collect();
            assert_eq!(seen, vec![late]);
            let token = window.position;
            // The early transaction commits after the token: the token still returns it.
            open.commit().await.unwrap();
            let window = store.changes_since(table, Some(&token)).await.unwrap();
            let seen: Vec<Uuid> = window.changes.iter().map(|c| c.objectid).collect();
            assert_eq!(seen, vec![early]);
            let after = store
                .changes_since(table, Some(&window.position))
                .await
                .unwrap();
            assert!(after.changes.is_empty(), "{after:?}");
            assert!(matches!(
                store.changes_since(table, Some("1:x:")).await,
                Err(StoreError::BadPosition(_))
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn the_schema_has_a_column_of_the_right_type_for_every_stored_attribute() {
        with_store("postgres schema", |url, catalog| async move {
            let store = PostgresStore::open(&url, &catalog, 2).await.unwrap();
            let client = store.connection().await.unwrap();
            for entity in catalog.entities() {
                let rows = client
                    .query(
                        "SELECT column_name::text, data_type::text FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = $1",
                        &[&entity.logical_name],
                    )
                    .await
                    .unwrap();
                let columns: HashMap<String, String> =
                    rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                let mut stored = 0;
                for (_, attribute) in entity.stored_attributes() {
                    stored += 1;
                    use AttributeType as T;
                    let expected = match attribute.attribute_type {
                        T::Uniqueidentifier | T::Lookup | T::Owner => "uuid",
                        T::String | T::Memo | T::EntityName => "text",
                        T::Boolean => "boolean",
                        T::DateTime => "timestamp with time zone",
                        _ => "bigint",
                    };
                    assert_eq!(
                        columns.get(&attribute.logical_name).map(String::as_str),
                        Some(expected),
                        "{}.{}",
                        entity.logical_name,
                        attribute.logical_name
                    );
                }
                assert_eq!(columns.len(), stored, "{}", entity.logical_name);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn nodes_starting_together_apply_each_migration_once() {
        with_store("postgres migrations", |url, catalog| async move {
            let opens = (0..4).map(|_| {
                let url = url.clone();
                let catalog = Arc::clone(&catalog);
                async move { PostgresStore::open(&url, &catalog, 2).await.map(|_| ()) }
            });
            for opened in futures_join_all(opens).await {
                opened.unwrap();
            }
            let store = PostgresStore::open(&url, &catalog, 2).await.unwrap();
            let client = store.connection().await.unwrap();
            let n: i64 = client
                .query_one("SELECT COUNT(*) FROM smsctx_migrations", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, MIGRATIONS.len() as i64);
            assert_eq!(store.init_setting("k", "first").await.unwrap(), "first");
            assert_eq!(store.init_setting("k", "second").await.unwrap(), "first");
            assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("first"));
        })
        .await;
    }

    /// Awaits every future, concurrently.
    async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut set = tokio::task::JoinSet::new();
        for (i, future) in futures.enumerate() {
            set.spawn(async move { (i, future.await) });
        }
        let mut results: Vec<(usize, F::Output)> = Vec::new();
        while let Some(result) = set.join_next().await {
            results.push(result.unwrap());
        }
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    #[tokio::test]
    async fn writes_are_atomic_compare_and_set_and_versions_increase() {
        with_store("postgres writes", |url, catalog| async move {
            let store = Arc::new(PostgresStore::open(&url, &catalog, 8).await.unwrap());
            let entity = Arc::clone(catalog.entity("businessunit").unwrap());
            let (id, record) = unit(&entity, "root");
            let WriteOutcome::Written { version: v1 } =
                store.write(WriteOp::Insert(record.clone())).await.unwrap()
            else {
                panic!("insert reports a version");
            };
            assert!(matches!(
                store.write(WriteOp::Insert(record)).await,
                Err(StoreError::Duplicate)
            ));
            let name = entity.position("name").unwrap();
            let update = |text: &str, expect| WriteOp::Update {
                entity: Arc::clone(&entity),
                id,
                changes: vec![(name, Value::Text(text.into()))],
                expect,
            };
            // Racing compare-and-sets on one version: exactly one wins.
            let racers = (0..8).map(|n| {
                let store = Arc::clone(&store);
                let op = update(&format!("racer {n}"), Expect::Version(v1));
                async move { store.write(op).await }
            });
            let results = futures_join_all(racers).await;
            let winners: Vec<i64> = results
                .iter()
                .filter_map(|r| match r {
                    Ok(WriteOutcome::Written { version }) => Some(*version),
                    _ => None,
                })
                .collect();
            assert_eq!(winners.len(), 1, "{results:?}");
            let v2 = winners[0];
            assert!(v2 > v1);
            for result in &results {
                if let Err(e) = result {
                    assert!(
                        matches!(e, StoreError::VersionMismatch { expected, actual } if *expected == v1 && *actual == v2),
                        "{e:?}"
                    );
                }
            }
            let row = store.get(&entity, id, false).await.unwrap().unwrap();
            assert_eq!(row.version(), Some(v2));
            let WriteOutcome::Written { version: v3 } =
                store.write(update("any", Expect::Any)).await.unwrap()
            else {
                panic!("update reports a version");
            };
            assert!(v3 > v2);
            let delete = |expect| WriteOp::Delete {
                entity: Arc::clone(&entity),
                id,
                expect,
            };
            assert!(matches!(
                store.write(delete(Expect::Version(v2))).await,
                Err(StoreError::VersionMismatch { .. })
            ));
            assert_eq!(
                store.write(delete(Expect::Version(v3))).await.unwrap(),
                WriteOutcome::Deleted
            );
            assert!(matches!(
                store.write(delete(Expect::Any)).await,
                Err(StoreError::NotFound)
            ));
            assert!(matches!(
                store.write(update("gone", Expect::Any)).await,
                Err(StoreError::NotFound)
            ));
            store.close();
        })
        .await;
    }

    #[tokio::test]
    async fn write_all_is_all_or_nothing() {
        with_store("postgres write_all", |url, catalog| async move {
            let store = Arc::new(PostgresStore::open(&url, &catalog, 8).await.unwrap());
            let entity = Arc::clone(catalog.entity("businessunit").unwrap());
            crate::store::contract::write_all_is_all_or_nothing(store, &entity).await;
        })
        .await;
    }

    #[tokio::test]
    async fn a_transaction_sees_its_writes_survives_a_failed_write_and_rolls_back_as_one() {
        with_store("postgres transactions", |url, catalog| async move {
            let store = PostgresStore::open(&url, &catalog, 4).await.unwrap();
            let entity = Arc::clone(catalog.entity("businessunit").unwrap());
            let all = Query {
                plan: sql::Plan {
                    entity: Arc::clone(&entity),
                    filter: None,
                    order: Vec::new(),
                    limit: None,
                    after: None,
                    scope: None,
                    related: None,
                },
                context: sql::Context {
                    now: 0,
                    user_id: Uuid::nil(),
                    business_unit_id: Uuid::nil(),
                },
                with_names: false,
            };

            let (a, first) = unit(&entity, "a");
            let tx = store.begin().await.unwrap();
            tx.write(WriteOp::Insert(first)).await.unwrap();
            assert!(tx.get(&entity, a, false).await.unwrap().is_some());
            assert!(store.get(&entity, a, false).await.unwrap().is_none());
            assert_eq!(tx.count(all.clone(), 10).await.unwrap(), 1);
            assert_eq!(tx.query(all.clone()).await.unwrap().len(), 1);
            tx.rollback().await.unwrap();
            assert!(store.get(&entity, a, false).await.unwrap().is_none());

            // A failed write inside a transaction leaves the others in place.
            let (b, second) = unit(&entity, "b");
            let tx = store.begin().await.unwrap();
            tx.write(WriteOp::Insert(second.clone())).await.unwrap();
            assert!(matches!(
                tx.write(WriteOp::Insert(second)).await,
                Err(StoreError::Duplicate)
            ));
            let (c, third) = unit(&entity, "c");
            tx.write(WriteOp::Insert(third)).await.unwrap();
            tx.commit().await.unwrap();
            assert!(store.get(&entity, b, false).await.unwrap().is_some());
            assert!(store.get(&entity, c, false).await.unwrap().is_some());

            // Dropping a transaction rolls it back.
            let (d, fourth) = unit(&entity, "d");
            let tx = store.begin().await.unwrap();
            tx.write(WriteOp::Insert(fourth)).await.unwrap();
            drop(tx);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(store.get(&entity, d, false).await.unwrap().is_none());
            assert_eq!(store.count(all, 10).await.unwrap(), 2);
        })
        .await;
    }
}

#[cfg(test)]
mod opening_messages {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            without_password("postgres://smsctx:s3cret@db.internal:5432/smsctx"),
            "postgres://smsctx:***@db.internal:5432/smsctx"
        );
        assert_eq!(
            without_password("postgres://smsctx@db:5432/smsctx"),
            "postgres://smsctx@db:5432/smsctx"
        );
    }

    #[test]
    fn a_failed_first_connection_names_the_server_and_the_fix() {
        let config: tokio_postgres::Config =
            "postgres://app:pw@db.internal:6543/orders".parse().unwrap();
        let text =
            |message: &str| match opening_error(&config, StoreError::Database(message.to_string()))
            {
                StoreError::Database(text) => text,
                other => panic!("{other:?}"),
            };
        let refused = text("error connecting to server: Connection refused (os error 111)");
        assert!(
            refused.starts_with("PostgreSQL at db.internal:6543 (database orders, user app): "),
            "{refused}"
        );
        assert!(!refused.contains("pw"), "{refused}");
        let schema = text("db error: ERROR: permission denied for schema public");
        assert!(
            schema.contains("ALTER DATABASE orders OWNER TO app;"),
            "{schema}"
        );
        let missing = text("db error: FATAL: database \"orders\" does not exist");
        assert!(missing.contains("createdb -O app orders"), "{missing}");
        let role = text("db error: FATAL: role \"app\" does not exist");
        assert!(!role.contains("createdb"), "{role}");
    }

    #[test]
    fn every_cause_of_an_error_is_shown() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("db error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        assert_eq!(with_causes(&Outer(io)), "db error: refused");
    }
}
