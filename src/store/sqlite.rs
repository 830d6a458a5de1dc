//! The embedded SQLite backend: WAL, one writer thread with group commit, pooled readers.
//!
//! Every write is sent to a single writer thread. The writer takes whatever writes are queued
//! (up to [`MAX_BATCH`]), runs each inside its own SAVEPOINT of one transaction, commits once
//! (`synchronous=FULL`: the WAL is fsynced before COMMIT returns), and only then answers each
//! caller. A write that fails rolls back to its savepoint and leaves the others untouched, so
//! each write is still atomic on its own, while one fsync serves many concurrent writers.
//! Reads run on a fixed pool of connections and never wait for the writer (WAL). The pool has
//! one connection per reader slot ([`SqliteOptions::readers`], by default the machine's cores),
//! a bounded queue of waiting reads in front of it ([`super::admission`]), and a bounded page
//! cache per connection and no memory map, so memory and threads stay bounded under any load:
//! past the queue a read is refused at once ([`StoreError::Busy`]), as is a write when the
//! writer's queue is full.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::admission::{Admission, Slot};
use super::sql::TableSql as EntitySql;
use super::sqlite_changelog as changelog;
use super::{
    change_data, migration_check_failed, sql, stored_key, unaudited_columns, Access, AuditRecord,
    AuditSelection, ChangeWindow, ColumnAudit, Expect, JoinQuery, JoinedRow, LoggedChange, Query,
    Record, Store, StoreError, StoredKey, TableTracking, TrackingSettings, Transaction, Value,
    WriteOp, WriteOutcome, MIGRATION_CHECKS,
};
use crate::metadata::system::VERSION_NUMBER;
use crate::metadata::{AttributeType, Catalog, Entity};
use crate::query::apply::AggregateFn;

/// The versioned schema migrations, applied in order, each in its own transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_channels.sql")),
    (3, include_str!("../../migrations/sqlite/0003_security.sql")),
    (
        4,
        include_str!("../../migrations/sqlite/0004_security_epoch.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_query_indexes.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_organization.sql"),
    ),
    (7, include_str!("../../migrations/sqlite/0007_views.sql")),
    (
        9,
        include_str!("../../migrations/sqlite/0009_identity_and_unit_tree.sql"),
    ),
    (
        10,
        include_str!("../../migrations/sqlite/0010_entity_keys.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_state_id_index.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_async_operations.sql"),
    ),
    (
        13,
        include_str!("../../migrations/sqlite/0013_transcripts.sql"),
    ),
    (
        14,
        include_str!("../../migrations/sqlite/0014_change_log.sql"),
    ),
    (
        15,
        include_str!("../../migrations/sqlite/0015_audit_settings.sql"),
    ),
    (
        16,
        include_str!("../../migrations/sqlite/0016_changelog_cheaper.sql"),
    ),
    (
        17,
        include_str!("../../migrations/sqlite/0017_changelog_in_writer.sql"),
    ),
    (
        18,
        include_str!("../../migrations/sqlite/0018_contexts_rowid.sql"),
    ),
    (
        19,
        include_str!("../../migrations/sqlite/0019_changelog_object_folded.sql"),
    ),
];

/// The most writes one commit may carry.
const MAX_BATCH: usize = 512;

/// WAL pages after which the writer's commit checkpoints (`PRAGMA wal_autocheckpoint`).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 4_000;

/// How often the writer refreshes the query planner's statistics (`PRAGMA optimize`), and how
/// many index entries one table's refresh samples at most (`PRAGMA analysis_limit`).
const OPTIMIZE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
const ANALYSIS_LIMIT: i64 = 1_000;

/// The writes that may wait for the writer; the next is refused ([`StoreError::Busy`]).
const WRITE_QUEUE: usize = 4096;

/// How the reader pool and each connection's memory are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Reader connections, each used by one read at a time.
    pub readers: usize,
    /// Reads that may wait for a reader; the next is refused with a 503.
    pub queue: usize,
    /// The page cache of each connection, in KiB.
    pub cache_kib: u32,
    /// The fewest change-log rows the writer folds into the table by object at once
    /// ([`changelog::Folding`]).
    pub fold_min: i64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            readers: default_readers(),
            queue: super::admission::DEFAULT_QUEUE,
            cache_kib: DEFAULT_CACHE_KIB,
            fold_min: changelog::FOLD_MIN,
        }
    }
}

/// One reader per core (at least 2, at most 16): a read is CPU work on a cached page, so more
/// readers than cores only add connections and caches.
pub fn default_readers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 16)
}

/// SQLite's own default page cache (2 MiB), written out so that it is a bound we chose.
pub const DEFAULT_CACHE_KIB: u32 = 2048;

/// How long a transaction may sit idle before the writer rolls it back and moves on.
const TRANSACTION_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the writer thread is asked to do.
enum Job {
    Write(WriteOp, Reply<WriteOutcome>),
    /// Several writes that commit together or not at all, in the next group commit.
    WriteAll(Vec<WriteOp>, Reply<Vec<WriteOutcome>>),
    /// Open a transaction: the writer serves only it until it commits or rolls back.
    Begin(Reply<crossbeam_channel::Sender<TxJob>>),
}

/// What a transaction asks of the writer thread.
enum TxJob {
    Get(Arc<Entity>, Uuid, bool, Reply<Option<Record>>),
    Query(Query, Reply<Vec<Record>>),
    QueryJoin(JoinQuery, Reply<Vec<JoinedRow>>),
    Count(Query, usize, Reply<u64>),
    Aggregate(sql::AggregatePlan, sql::Context, Reply<Vec<Vec<Value>>>),
    Write(WriteOp, Reply<WriteOutcome>),
    WriteEach(Vec<WriteOp>, Reply<Vec<Result<WriteOutcome, StoreError>>>),
    Commit(Reply<()>),
    Rollback(Reply<()>),
}

pub struct SqliteStore {
    readers: Arc<Readers>,
    writer: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The security epoch as of the writer's last commit. One process serves a SQLite file and
    /// every write goes through its writer thread, which reads the epoch back after each
    /// commit, so this is the database's value without a read per request.
    security_epoch: Arc<AtomicI64>,
}

/// The read side: a pool of connections, the slots that bound their use, and each table's SQL,
/// shared with blocking tasks.
struct Readers {
    path: PathBuf,
    /// Idle connections; a read holding a slot always finds one (or reopens one lost).
    pool: Mutex<Vec<Reader>>,
    admission: Admission,
    cache_kib: u32,
    sql: Arc<HashMap<String, EntitySql>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path, catalog: &Catalog) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, catalog, SqliteOptions::default())
    }

    /// As [`SqliteStore::open`], with the reader pool and memory sized by `options`.
    pub fn open_with(
        path: &Path,
        catalog: &Catalog,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let mut conn = open_connection(path, true)?;
        bound_memory(&conn, options.cache_kib)?;
        configure_writer(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        migrate(&mut conn)?;
        refresh_statistics(&conn, true)?;
        let security_epoch = Arc::new(AtomicI64::new(read_security_epoch(&conn)?));
        let writer_epoch = Arc::clone(&security_epoch);
        let sql: HashMap<String, EntitySql> = catalog
            .entities()
            .iter()
            .map(|e| {
                (
                    e.logical_name.clone(),
                    EntitySql::build(e, catalog, &sql::Sqlite),
                )
            })
            .collect();
        let sql = Arc::new(sql);
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(WRITE_QUEUE);
        let writer_sql = Arc::clone(&sql);
        let settings_sources = Arc::new(changelog::settings_sources(&conn)?);
        let folding = changelog::Folding::read(&conn, options.fold_min)?;
        let handle = std::thread::Builder::new()
            .name("smsctx-sqlite-writer".into())
            .spawn(move || {
                writer_loop(
                    conn,
                    receiver,
                    writer_sql,
                    settings_sources,
                    writer_epoch,
                    folding,
                )
            })
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let readers = options.readers.max(1);
        let pool = (0..readers)
            .map(|_| open_reader(path, options.cache_kib))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteStore {
            readers: Arc::new(Readers {
                path: path.to_path_buf(),
                pool: Mutex::new(pool),
                admission: Admission::new(readers, options.queue),
                cache_kib: options.cache_kib,
                sql,
            }),
            writer: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(handle)),
            security_epoch,
        })
    }

    /// Parses `sqlite://path`, `sqlite:path` or a plain path.
    pub fn path_from_url(url: &str) -> PathBuf {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        PathBuf::from(rest)
    }

    /// Runs `f` on a reader connection inline, after waiting for a slot.
    async fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let slot = self.readers.admission.enter().await?;
        self.readers.with_reader(slot, f)
    }

    /// Runs the read `f` inline when it finishes within [`INLINE_STEPS`] steps of SQLite's
    /// virtual machine, and otherwise again from its start on the blocking pool, keeping its
    /// slot. Most list reads (an indexed equality, a short page) take microseconds, and the
    /// hand-off to a blocking thread would cost them more than their work, mostly as waiting
    /// for a core; a long one (a big page, a scan) leaves the async workers after a bounded
    /// first try.
    async fn with_reader_sized<T: Send + 'static>(
        &self,
        f: impl Fn(&Readers, &Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let slot = self.readers.admission.enter().await?;
        let readers = Arc::clone(&self.readers);
        let slot = match readers.with_reader_inline(slot, |conn| f(&readers, conn)) {
            Inline::Done(result) => return result,
            Inline::TooLong(slot) => slot,
        };
        on_blocking_pool(readers, slot, f).await
    }

    /// Runs `f` on a reader connection on the blocking pool, after waiting for a slot: at most
    /// one blocking thread per slot is ever busy with reads.
    async fn with_reader_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Readers, &Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let slot = self.readers.admission.enter().await?;
        on_blocking_pool(Arc::clone(&self.readers), slot, f).await
    }

    fn entity_sql(&self, entity: &Entity) -> Result<&EntitySql, StoreError> {
        self.readers.entity_sql(entity)
    }

    /// Stops the writer after it has finished every queued write.
    pub fn close(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        if let Some(handle) = self.writer_thread.lock().ok().and_then(|mut h| h.take()) {
            let _ = handle.join();
        }
    }
}

/// Runs `f` on a reader connection on the blocking pool while `slot` is held.
async fn on_blocking_pool<T: Send + 'static>(
    readers: Arc<Readers>,
    slot: Slot,
    f: impl FnOnce(&Readers, &Connection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(move || readers.with_reader(slot, |conn| f(&readers, conn)))
        .await
        .map_err(|e| StoreError::Database(e.to_string()))?
}

impl Readers {
    /// Runs `f` on an idle connection while `slot` is held. There are as many connections as
    /// slots, so one is idle; one lost to a panic is reopened. The connection goes back before
    /// the slot is freed.
    fn with_reader<T>(
        &self,
        slot: Slot,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let reader = self.take()?;
        let result = f(&reader.conn);
        self.put_back(reader);
        drop(slot);
        result
    }

    /// As [`Readers::with_reader`], but `f` is interrupted after [`INLINE_STEPS`] steps of the
    /// virtual machine; then the slot comes back for a second run elsewhere.
    fn with_reader_inline<T>(
        &self,
        slot: Slot,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Inline<T> {
        let reader = match self.take() {
            Ok(reader) => reader,
            Err(e) => return Inline::Done(Err(e)),
        };
        reader.budget.store(BUDGET_ARMED, Ordering::Relaxed);
        let result = f(&reader.conn);
        let spent = reader.budget.swap(BUDGET_OFF, Ordering::Relaxed) == BUDGET_SPENT;
        self.put_back(reader);
        if spent {
            Inline::TooLong(slot)
        } else {
            drop(slot);
            Inline::Done(result)
        }
    }

    fn take(&self) -> Result<Reader, StoreError> {
        match self.pool.lock().ok().and_then(|mut pool| pool.pop()) {
            Some(reader) => Ok(reader),
            None => open_reader(&self.path, self.cache_kib),
        }
    }

    fn put_back(&self, reader: Reader) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(reader);
        }
    }

    fn entity_sql(&self, entity: &Entity) -> Result<&EntitySql, StoreError> {
        self.sql
            .get(&entity.logical_name)
            .ok_or_else(|| StoreError::UnknownTable(entity.logical_name.clone()))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_connection(path: &Path, create: bool) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The steps of SQLite's virtual machine a read may take inline on an async worker before it
/// is interrupted and run again on the blocking pool ([`SqliteStore::with_reader_sized`]):
/// about a page of a few hundred narrow rows, well under a millisecond.
const INLINE_STEPS: i32 = 20_000;

const BUDGET_OFF: u8 = 0;
const BUDGET_ARMED: u8 = 1;
const BUDGET_SPENT: u8 = 2;

/// A reader connection and the switch of its progress handler: armed, the handler interrupts
/// the statement at the first call (after [`INLINE_STEPS`] steps) and records that it did.
struct Reader {
    conn: Connection,
    budget: Arc<AtomicU8>,
}

/// How an inline read ended.
enum Inline<T> {
    Done(Result<T, StoreError>),
    /// Interrupted at its budget: the slot, for a run on the blocking pool.
    TooLong(Slot),
}

/// A reader connection of the pool, its memory bounded.
fn open_reader(path: &Path, cache_kib: u32) -> Result<Reader, StoreError> {
    let conn = open_connection(path, false)?;
    bound_memory(&conn, cache_kib)?;
    // Rows are written by the writer thread only, which logs their changes (`apply`).
    conn.pragma_update(None, "query_only", true)?;
    let budget = Arc::new(AtomicU8::new(BUDGET_OFF));
    let handler = Arc::clone(&budget);
    conn.progress_handler(
        INLINE_STEPS,
        Some(move || {
            handler
                .compare_exchange(
                    BUDGET_ARMED,
                    BUDGET_SPENT,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        }),
    );
    Ok(Reader { conn, budget })
}

/// The writer connection's own settings (beside [`bound_memory`] and WAL).
fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    // Each write runs in its own SAVEPOINT, whose sub-journal (the pages it changed, to roll
    // back that write alone) would otherwise be a temporary file written page by page.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoint at 4,000 WAL pages (16 MiB at 4 KiB pages) rather than SQLite's 1,000: a
    // group commit of 64 creates writes roughly 600 pages, so at 1,000 nearly every commit also
    // checkpointed, copying the same hot pages (B-tree interiors, the tails of the time
    // indexes and of the change log) to the database again and again.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(())
}

/// Gives the query planner statistics of the tables (`sqlite_stat1`), as SQLite advises for a
/// long-lived connection: `PRAGMA optimize` analyzes the tables that were never analyzed or
/// whose size changed much since, each from at most [`ANALYSIS_LIMIT`] index entries, so it
/// costs milliseconds on any size. `all` (at open) analyzes every table. Without statistics
/// SQLite picks an index by its shape alone: the SMS channel's phone-pair query then walked
/// `(statecode, id)`, every active row, instead of the phone numbers' index (BENCHMARKS.md).
/// The readers load the new statistics when they next prepare a statement.
fn refresh_statistics(conn: &Connection, all: bool) -> Result<(), StoreError> {
    conn.pragma_update(None, "analysis_limit", ANALYSIS_LIMIT)?;
    conn.execute_batch(if all {
        "PRAGMA optimize=0x10002"
    } else {
        "PRAGMA optimize"
    })?;
    Ok(())
}

/// A page cache of at most `cache_kib` KiB and no memory-mapped I/O (a map of the whole file
/// would count toward the process's memory as the file grows).
fn bound_memory(conn: &Connection, cache_kib: u32) -> Result<(), StoreError> {
    conn.pragma_update(None, "cache_size", -i64::from(cache_kib.max(64)))?;
    conn.pragma_update(None, "mmap_size", 0)?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS smsctx_migrations (version INTEGER PRIMARY KEY, applied_on INTEGER NOT NULL)",
    )?;
    // Each migration not applied yet, in order: a version added between two applied ones (two
    // branches merged) still runs.
    let applied: Vec<i64> = conn
        .prepare("SELECT version FROM smsctx_migrations")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
        let tx = conn.transaction()?;
        for (_, check, _) in MIGRATION_CHECKS.iter().filter(|(v, _, _)| v == version) {
            let found: Vec<String> = tx
                .prepare(check)?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if let Some(failure) = migration_check_failed(*version, &found) {
                return Err(failure);
            }
        }
        tx.execute_batch(sql).map_err(|e| StoreError::Migration {
            version: *version,
            message: e.to_string(),
        })?;
        tx.execute(
            "INSERT INTO smsctx_migrations (version, applied_on) VALUES (?1, unixepoch())",
            [version],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// One row as a record: the stored columns in select order, then the lookups' names.
fn read_row(
    table: &EntitySql,
    entity: &Arc<Entity>,
    row: &rusqlite::Row<'_>,
    with_names: bool,
) -> Result<Record, StoreError> {
    read_row_at(table, entity, row, with_names, 0)
}

/// As [`read_row`], from the `offset`th column of the row on.
fn read_row_at(
    table: &EntitySql,
    entity: &Arc<Entity>,
    row: &rusqlite::Row<'_>,
    with_names: bool,
    offset: usize,
) -> Result<Record, StoreError> {
    let mut record = Record::empty(Arc::clone(entity));
    for (column, &position) in table.stored.iter().enumerate() {
        let attribute_type = entity.attributes[position].attribute_type;
        record.values[position] = from_sql(attribute_type, row.get_ref(offset + column)?)?;
    }
    if with_names {
        for &(position, name_index) in &table.names {
            let value = row.get_ref(offset + table.stored.len() + name_index)?;
            record.values[position] = match value {
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                _ => Value::Null,
            };
        }
    }
    Ok(record)
}

fn from_sql(attribute_type: AttributeType, value: ValueRef<'_>) -> Result<Value, StoreError> {
    use AttributeType as T;
    let bad = || StoreError::Unexpected(format!("stored value {value:?}"));
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => match attribute_type {
            T::Boolean => Value::Bool(i != 0),
            T::DateTime => Value::DateTime(i),
            _ => Value::Int(i),
        },
        ValueRef::Text(t) => {
            let text = std::str::from_utf8(t).map_err(|_| bad())?;
            match attribute_type {
                T::Uniqueidentifier | T::Lookup | T::Owner => {
                    Value::Guid(Uuid::parse_str(text).map_err(|_| bad())?)
                }
                _ => Value::Text(text.to_string()),
            }
        }
        ValueRef::Real(_) | ValueRef::Blob(_) => return Err(bad()),
    })
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::from(rusqlite::types::Null),
            Value::Text(t) => ToSqlOutput::from(t.as_str()),
            Value::Int(i) | Value::DateTime(i) => ToSqlOutput::from(*i),
            Value::Float(f) => ToSqlOutput::from(*f),
            Value::Bool(b) => ToSqlOutput::from(i64::from(*b)),
            Value::Guid(g) => ToSqlOutput::from(
                g.hyphenated()
                    .encode_lower(&mut Uuid::encode_buffer())
                    .to_string(),
            ),
        })
    }
}

/// A GUID column as the store wrote it.
fn parse_guid(value: ValueRef<'_>) -> Result<Uuid, StoreError> {
    match value {
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|t| Uuid::parse_str(t).ok())
            .ok_or_else(|| StoreError::Unexpected("GUID".into())),
        _ => Err(StoreError::Unexpected("GUID".into())),
    }
}

fn guid_text(id: Uuid) -> String {
    id.hyphenated().to_string()
}

fn read_security_epoch(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT epoch FROM smsctx_security_epoch WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
}

fn writer_loop(
    mut conn: Connection,
    receiver: crossbeam_channel::Receiver<Job>,
    sql: Arc<HashMap<String, EntitySql>>,
    settings_sources: Arc<HashSet<String>>,
    security_epoch: Arc<AtomicI64>,
    mut folding: changelog::Folding,
) {
    let mut pending: Option<Job> = None;
    let mut optimized = std::time::Instant::now();
    // After a commit, before its callers are answered: a caller that saw its write succeed
    // also sees the epoch it moved.
    let publish_epoch = |conn: &Connection| match read_security_epoch(conn) {
        Ok(epoch) => security_epoch.store(epoch, Ordering::Release),
        Err(e) => tracing::error!(cause = %e, "cannot read the security epoch"),
    };
    loop {
        let first = match pending.take() {
            Some(job) => job,
            None => match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let mut batch = Vec::new();
        let mut groups = Vec::new();
        match first {
            Job::Begin(reply) => {
                run_transaction(&mut conn, &sql, &settings_sources, reply, &publish_epoch);
                fold(&mut folding, &mut conn);
                continue;
            }
            Job::Write(op, reply) => batch.push((op, reply)),
            Job::WriteAll(ops, reply) => groups.push((ops, reply)),
        }
        while batch.len() + groups.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(Job::Write(op, reply)) => batch.push((op, reply)),
                Ok(Job::WriteAll(ops, reply)) => groups.push((ops, reply)),
                Ok(begin @ Job::Begin(_)) => {
                    pending = Some(begin);
                    break;
                }
                Err(_) => break,
            }
        }
        let (results, group_results) =
            run_batch(&mut conn, &sql, &settings_sources, &batch, &groups);
        publish_epoch(&conn);
        for ((_, reply), result) in batch.into_iter().zip(results) {
            let _ = reply.send(result);
        }
        for ((_, reply), result) in groups.into_iter().zip(group_results) {
            let _ = reply.send(result);
        }
        fold(&mut folding, &mut conn);
        if optimized.elapsed() >= OPTIMIZE_EVERY {
            optimized = std::time::Instant::now();
            if let Err(e) = refresh_statistics(&conn, false) {
                tracing::warn!(cause = %e, "cannot refresh the query planner's statistics");
            }
        }
    }
}

/// Folds the change log's tail when it is due, after the callers of the last commit have their
/// answers. A fold that fails leaves the tail as it was, still found by `seq`, and is tried
/// again after the next commit.
fn fold(folding: &mut changelog::Folding, conn: &mut Connection) {
    if let Err(e) = folding.fold_if_due(conn) {
        tracing::warn!(cause = %e, "cannot fold the change log's tail");
    }
}

/// Serves one transaction on the writer connection until it commits, rolls back, is dropped,
/// or sits idle too long.
fn run_transaction(
    conn: &mut Connection,
    sql: &HashMap<String, EntitySql>,
    settings_sources: &Arc<HashSet<String>>,
    reply: Reply<crossbeam_channel::Sender<TxJob>>,
    publish_epoch: &dyn Fn(&Connection),
) {
    let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let _ = reply.send(Err(e.into()));
            return;
        }
    };
    let (sender, receiver) = crossbeam_channel::unbounded::<TxJob>();
    if reply.send(Ok(sender)).is_err() {
        return;
    }
    let mut state = TxState::new(settings_sources);
    let table = |entity: &Entity| {
        sql.get(&entity.logical_name)
            .ok_or_else(|| StoreError::UnknownTable(entity.logical_name.clone()))
    };
    loop {
        let Ok(job) = receiver.recv_timeout(TRANSACTION_IDLE_TIMEOUT) else {
            // Dropped or idle: `tx` rolls back when it goes out of scope.
            return;
        };
        match job {
            TxJob::Get(entity, id, with_names, reply) => {
                let result = table(&entity).and_then(|t| read_get(&tx, t, &entity, id, with_names));
                let _ = reply.send(result);
            }
            TxJob::Query(query, reply) => {
                let result = table(&query.plan.entity).and_then(|t| read_query(&tx, t, &query));
                let _ = reply.send(result);
            }
            TxJob::QueryJoin(query, reply) => {
                let result = table(&query.plan.root.entity).and_then(|root| {
                    let child = table(&query.plan.join.child.0)?;
                    read_join(&tx, root, child, &query)
                });
                let _ = reply.send(result);
            }
            TxJob::Count(query, cap, reply) => {
                let result =
                    table(&query.plan.entity).and_then(|t| read_count(&tx, t, &query, cap));
                let _ = reply.send(result);
            }
            TxJob::Aggregate(plan, context, reply) => {
                let _ = reply.send(read_aggregate(&tx, &plan, &context));
            }
            TxJob::Write(op, reply) => {
                let _ = reply.send(apply_in_savepoint(&mut tx, sql, &op, &mut state));
            }
            TxJob::WriteEach(ops, reply) => {
                let _ = reply.send(Ok(write_each_in_savepoint(&mut tx, sql, &ops, &mut state)));
            }
            TxJob::Commit(reply) => {
                let result = state
                    .save(&tx)
                    .and_then(|()| tx.commit().map_err(StoreError::from));
                publish_epoch(conn);
                let _ = reply.send(result);
                return;
            }
            TxJob::Rollback(reply) => {
                let _ = reply.send(tx.rollback().map_err(StoreError::from));
                return;
            }
        }
    }
}

type BatchResults = (
    Vec<Result<WriteOutcome, StoreError>>,
    Vec<Result<Vec<WriteOutcome>, StoreError>>,
);

/// One group commit: every single write and every group of writes in its own SAVEPOINT of one
/// transaction, one COMMIT (one fsync) for all.
fn run_batch(
    conn: &mut Connection,
    sql: &HashMap<String, EntitySql>,
    settings_sources: &Arc<HashSet<String>>,
    batch: &[(WriteOp, Reply<WriteOutcome>)],
    groups: &[(Vec<WriteOp>, Reply<Vec<WriteOutcome>>)],
) -> BatchResults {
    let fail_all = |e: StoreError| -> BatchResults {
        (
            batch.iter().map(|_| Err(e.for_each_caller())).collect(),
            groups.iter().map(|_| Err(e.for_each_caller())).collect(),
        )
    };
    let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(e.into()),
    };
    let mut results = Vec::with_capacity(batch.len());
    let mut group_results = Vec::with_capacity(groups.len());
    let mut state = TxState::new(settings_sources);
    let ops: Vec<&WriteOp> = batch.iter().map(|(op, _)| op).collect();
    results.extend(apply_independently(&mut tx, sql, &ops, &mut state));
    for (ops, _) in groups {
        group_results.push(apply_all_in_savepoint(&mut tx, sql, ops, &mut state));
    }
    if let Err(e) = state.save(&tx) {
        return fail_all(e);
    }
    if let Err(e) = tx.commit() {
        return fail_all(e.into());
    }
    (results, group_results)
}

/// The writes of several callers, each kept or undone on its own, as that many
/// [`apply_in_savepoint`]s. They first run together ([`apply_together`]); when one fails, that
/// savepoint is rolled back and every write runs again in a savepoint of its own.
fn apply_independently(
    tx: &mut rusqlite::Transaction<'_>,
    sql: &HashMap<String, EntitySql>,
    ops: &[&WriteOp],
    state: &mut TxState,
) -> Vec<Result<WriteOutcome, StoreError>> {
    match apply_together(tx, sql, ops, state) {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(_) => ops
            .iter()
            .map(|op| apply_in_savepoint(tx, sql, op, state))
            .collect(),
    }
}

/// `ops` in one SAVEPOINT rather than one each, so a page that every write changes (the
/// table's last leaf, the ends of its indexes, the change log's) is copied to the sub-journal
/// once and not once per write: a `CreateMultiple` of 1,000 rows gained a third in rows/s
/// (BENCHMARKS.md). At the first failure the savepoint is rolled back, nothing of `ops` is
/// kept, and the error comes with the index of the failing write (none when the savepoint's
/// own statements failed).
fn apply_together(
    tx: &mut rusqlite::Transaction<'_>,
    sql: &HashMap<String, EntitySql>,
    ops: &[&WriteOp],
    state: &mut TxState,
) -> Result<Vec<WriteOutcome>, (Option<usize>, StoreError)> {
    let mut failed_at = None;
    in_savepoint(tx, |conn| {
        let mut statements = Statements::new(conn);
        let mut outcomes = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            match apply(&mut statements, sql, op, state) {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    failed_at = Some(index);
                    return Err(e);
                }
            }
        }
        Ok(outcomes)
    })
    .map_err(|e| (failed_at, e))
}

/// Several writes in one SAVEPOINT: all kept, or all rolled back at the first failure.
fn apply_all_in_savepoint(
    tx: &mut rusqlite::Transaction<'_>,
    sql: &HashMap<String, EntitySql>,
    ops: &[WriteOp],
    state: &mut TxState,
) -> Result<Vec<WriteOutcome>, StoreError> {
    in_savepoint(tx, |conn| {
        let mut statements = Statements::new(conn);
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            outcomes.push(apply(&mut statements, sql, op, state)?);
        }
        Ok(outcomes)
    })
}

/// Runs `write` inside a SAVEPOINT of the open transaction: released when it succeeds, rolled
/// back to (and released) when it fails, so a failing write leaves the transaction as it was.
/// The three statements are prepared once per connection (`prepare_cached`): a group commit
/// opens one savepoint per write, and preparing them anew cost about 6,000 instructions per
/// write (callgrind, BENCHMARKS.md).
fn in_savepoint<T>(
    conn: &Connection,
    write: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.prepare_cached("SAVEPOINT smsctx_write")?.execute([])?;
    let outcome = write(conn);
    if outcome.is_ok() {
        conn.prepare_cached("RELEASE smsctx_write")?.execute([])?;
    } else {
        conn.prepare_cached("ROLLBACK TO smsctx_write")?
            .execute([])?;
        conn.prepare_cached("RELEASE smsctx_write")?.execute([])?;
    }
    outcome
}

fn read_get(
    conn: &Connection,
    entity_sql: &EntitySql,
    entity: &Arc<Entity>,
    id: Uuid,
    with_names: bool,
) -> Result<Option<Record>, StoreError> {
    let text = if with_names {
        &entity_sql.select_with_names
    } else {
        &entity_sql.select
    };
    let mut statement = conn.prepare_cached(text)?;
    let mut rows = statement.query([guid_text(id)])?;
    match rows.next()? {
        Some(row) => Ok(Some(read_row(entity_sql, entity, row, with_names)?)),
        None => Ok(None),
    }
}

fn read_query(
    conn: &Connection,
    entity_sql: &EntitySql,
    query: &Query,
) -> Result<Vec<Record>, StoreError> {
    let (columns, joins) = if query.with_names {
        (&entity_sql.columns_with_names, entity_sql.joins.as_str())
    } else {
        (&entity_sql.columns, "")
    };
    let (plan, context) = (&query.plan, &query.context);
    let first = sql::select_sql(&sql::Sqlite, plan, context, columns, joins)?;
    let tail = sql::select_tail_sql(&sql::Sqlite, plan, context, columns, joins)?;
    let limit = plan.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for (text, params) in std::iter::once(first).chain(tail) {
        if out.len() >= limit {
            break;
        }
        let mut statement = conn.prepare_cached(&text)?;
        let mut rows = statement.query(params_from_iter(params.iter()))?;
        while let Some(row) = rows.next()? {
            out.push(read_row(entity_sql, &plan.entity, row, query.with_names)?);
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// The rows of a one-to-many join: the root's columns, then the child's (all NULL when an outer
/// join found no child for the row).
fn read_join(
    conn: &Connection,
    root_sql: &EntitySql,
    child_sql: &EntitySql,
    query: &JoinQuery,
) -> Result<Vec<JoinedRow>, StoreError> {
    let (columns, joins, width) = root_sql.select_list(query.with_names);
    let (text, params) =
        sql::select_join_sql(&sql::Sqlite, &query.plan, &query.context, columns, joins)?;
    let (root, child) = (&query.plan.root.entity, &query.plan.join.child.0);
    let mut statement = conn.prepare_cached(&text)?;
    let mut rows = statement.query(params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let record = read_row(root_sql, root, row, query.with_names)?;
        let joined = read_row_at(child_sql, child, row, false, width)?;
        out.push((record, joined.id().map(|_| joined)));
    }
    Ok(out)
}

fn read_aggregate(
    conn: &Connection,
    plan: &sql::AggregatePlan,
    context: &sql::Context,
) -> Result<Vec<Vec<Value>>, StoreError> {
    let (text, params) = sql::aggregate_sql(&sql::Sqlite, plan, context)?;
    let mut statement = conn.prepare_cached(&text)?;
    let width = plan.group_by.len() + plan.aggregates.len();
    let mut rows = statement.query(params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(width);
        for column in 0..width {
            let attribute_type = if column < plan.group_by.len() {
                Some(plan.column_type(column, &plan.group_by[column]))
            } else {
                let aggregate = &plan.aggregates[column - plan.group_by.len()];
                match aggregate.function {
                    AggregateFn::Min | AggregateFn::Max => {
                        aggregate.prop.as_ref().map(|p| plan.column_type(column, p))
                    }
                    _ => None,
                }
            };
            let value = row.get_ref(column)?;
            values.push(match (attribute_type, value) {
                (_, ValueRef::Real(f)) => Value::Float(f),
                (Some(t), v) => from_sql(t, v)?,
                (None, ValueRef::Integer(i)) => Value::Int(i),
                (None, _) => Value::Null,
            });
        }
        out.push(values);
    }
    Ok(out)
}

fn read_count(
    conn: &Connection,
    _entity_sql: &EntitySql,
    query: &Query,
    cap: usize,
) -> Result<u64, StoreError> {
    let (text, params) = sql::count_sql(&sql::Sqlite, &query.plan, &query.context, "", cap)?;
    let n: i64 = conn
        .prepare_cached(&text)?
        .query_row(params_from_iter(params.iter()), |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or_default())
}

fn apply_in_savepoint(
    tx: &mut rusqlite::Transaction<'_>,
    sql: &HashMap<String, EntitySql>,
    op: &WriteOp,
    state: &mut TxState,
) -> Result<WriteOutcome, StoreError> {
    in_savepoint(tx, |conn| apply(&mut Statements::new(conn), sql, op, state))
}

/// `ops` one after the other up to the first failure, exactly as that many
/// [`apply_in_savepoint`]s: the outcomes of the writes kept, then the failure, whose own
/// changes are undone. They run together ([`apply_together`]); on a failure the writes before
/// the failing one are made again, each in a savepoint of its own, so only the rare path pays
/// twice.
fn write_each_in_savepoint(
    tx: &mut rusqlite::Transaction<'_>,
    sql: &HashMap<String, EntitySql>,
    ops: &[WriteOp],
    state: &mut TxState,
) -> Vec<Result<WriteOutcome, StoreError>> {
    let refs: Vec<&WriteOp> = ops.iter().collect();
    let (failed_at, failure) = match apply_together(tx, sql, &refs, state) {
        Ok(outcomes) => return outcomes.into_iter().map(Ok).collect(),
        Err(failure) => failure,
    };
    // The savepoint's own statements failed: nothing was written.
    let Some(failed_at) = failed_at else {
        return vec![Err(failure)];
    };
    let mut outcomes = Vec::with_capacity(failed_at + 1);
    for op in &ops[..failed_at] {
        let outcome = apply_in_savepoint(tx, sql, op, state);
        let stop = outcome.is_err();
        outcomes.push(outcome);
        if stop {
            return outcomes;
        }
    }
    outcomes.push(Err(failure));
    outcomes
}

/// The statements a run of writes reuses: each prepared (through the connection's cache) at
/// its first use and handed back to the cache when the run ends. The thousand inserts of a
/// `CreateMultiple` then look their two statements up once, not once a row; a lookup hashed
/// the long text twice and cleared the bindings, about 4,000 instructions a row (callgrind,
/// BENCHMARKS.md). rusqlite resets a statement after each `execute`, which binds every
/// parameter again.
pub(super) struct Statements<'c> {
    conn: &'c Connection,
    held: Vec<(Box<str>, rusqlite::CachedStatement<'c>)>,
}

/// The most statements one run holds; an update's text depends on the columns it changes.
const HELD_STATEMENTS: usize = 8;

impl<'c> Statements<'c> {
    fn new(conn: &'c Connection) -> Statements<'c> {
        Statements {
            conn,
            held: Vec::new(),
        }
    }

    pub(super) fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// The statement of `text`, prepared once in this run.
    pub(super) fn prepared(
        &mut self,
        text: &str,
    ) -> Result<&mut rusqlite::CachedStatement<'c>, StoreError> {
        let index = match self.held.iter().position(|(held, _)| **held == *text) {
            Some(index) => index,
            None => {
                if self.held.len() == HELD_STATEMENTS {
                    self.held.remove(0);
                }
                self.held
                    .push((text.into(), self.conn.prepare_cached(text)?));
                self.held.len() - 1
            }
        };
        Ok(&mut self.held[index].1)
    }
}

/// What one writer transaction keeps between its writes: it hands out row versions (the
/// counter is read once, advanced in memory, and written back once before COMMIT; the writer
/// thread is the only writer) and holds the tables' logging settings
/// ([`changelog::SettingsCache`]).
struct TxState {
    next: Option<i64>,
    logging: changelog::SettingsCache,
}

impl TxState {
    fn new(settings_sources: &Arc<HashSet<String>>) -> TxState {
        TxState {
            next: None,
            logging: changelog::SettingsCache::new(Arc::clone(settings_sources)),
        }
    }

    fn next_version(&mut self, conn: &Connection) -> Result<i64, StoreError> {
        let current = match self.next {
            Some(n) => n,
            None => conn
                .prepare_cached("SELECT value FROM smsctx_sequence WHERE name = 'versionnumber'")?
                .query_row([], |r| r.get(0))?,
        };
        let version = current + 1;
        self.next = Some(version);
        Ok(version)
    }

    /// Persists the counter; call before COMMIT.
    fn save(&self, conn: &Connection) -> Result<(), StoreError> {
        if let Some(value) = self.next {
            conn.prepare_cached(
                "UPDATE smsctx_sequence SET value = ?1 WHERE name = 'versionnumber'",
            )?
            .execute([value])?;
        }
        Ok(())
    }
}

fn current_version(
    conn: &Connection,
    sql: &EntitySql,
    id: Uuid,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(&sql.version)?
        .query_row([guid_text(id)], |r| r.get(0))
        .optional()?)
}

fn check_expect(current: Option<i64>, expect: Expect) -> Result<(), StoreError> {
    match (current, expect) {
        (None, _) => Err(StoreError::NotFound),
        (Some(actual), Expect::Version(expected)) if actual != expected => {
            Err(StoreError::VersionMismatch { expected, actual })
        }
        _ => Ok(()),
    }
}

fn apply(
    statements: &mut Statements<'_>,
    sql: &HashMap<String, EntitySql>,
    op: &WriteOp,
    state: &mut TxState,
) -> Result<WriteOutcome, StoreError> {
    let table_sql = |entity: &Entity| {
        sql.get(&entity.logical_name)
            .ok_or_else(|| StoreError::UnknownTable(entity.logical_name.clone()))
    };
    let conn = statements.conn();
    // The change log is written here, in the write's savepoint (`sqlite_changelog`).
    match op {
        WriteOp::Insert(record) => {
            let entity_sql = table_sql(&record.entity)?;
            let version = state.next_version(conn)?;
            let version_position = record.entity.position(VERSION_NUMBER);
            let version_value = Value::Int(version);
            let values = entity_sql.insert_positions.iter().map(|&i| {
                if Some(i) == version_position {
                    &version_value
                } else {
                    &record.values[i]
                }
            });
            let statement = statements.prepared(&entity_sql.insert)?;
            // A duplicate key is `StoreError::Duplicate`, a schema rule `StoreError::Rule`.
            statement.execute(params_from_iter(values))?;
            if let Some(logging) = state.logging.for_write(conn, &record.entity)? {
                let id = record.id().ok_or(StoreError::NotFound)?;
                changelog::created(
                    statements,
                    &logging,
                    entity_sql,
                    &record.entity,
                    id,
                    &record.values,
                    version,
                )?;
            }
            Ok(WriteOutcome::Written { version })
        }
        WriteOp::Update {
            entity,
            id,
            changes,
            expect,
        } => {
            let entity_sql = table_sql(entity)?;
            let logging = state.logging.for_write(conn, entity)?;
            let before = match logging {
                Some(_) => {
                    let before = changelog::before(conn, entity, *id, changes)?;
                    check_expect(before.as_ref().map(|b| b.version), *expect)?;
                    before
                }
                None => {
                    check_expect(current_version(conn, entity_sql, *id)?, *expect)?;
                    None
                }
            };
            let version = state.next_version(conn)?;
            let (statement, values) =
                EntitySql::update(&sql::Sqlite, entity, *id, changes, version, Expect::Any);
            statements
                .prepared(&statement)?
                .execute(params_from_iter(values))?;
            if let (Some(logging), Some(before)) = (logging, before) {
                changelog::updated(statements, &logging, entity, *id, changes, before, version)?;
            }
            Ok(WriteOutcome::Written { version })
        }
        WriteOp::Delete { entity, id, expect } => {
            let entity_sql = table_sql(entity)?;
            let logging = state.logging.for_write(conn, entity)?;
            let (current, old) = match &logging {
                Some(logging) if logging.audited() => {
                    match changelog::before_delete(conn, entity_sql, entity, *id)? {
                        Some((version, json)) => (Some(version), Some(json)),
                        None => (None, None),
                    }
                }
                _ => (current_version(conn, entity_sql, *id)?, None),
            };
            check_expect(current, *expect)?;
            statements
                .prepared(&entity_sql.delete)?
                .execute([guid_text(*id)])?;
            if let (Some(logging), Some(version)) = (logging, current) {
                changelog::deleted(statements, &logging, entity, *id, version, old)?;
            }
            Ok(WriteOutcome::Deleted)
        }
    }
}

impl SqliteStore {
    /// Hands a job to the writer thread. The channel is bounded: when it is full, the write
    /// is refused at once ([`StoreError::Busy`]) rather than parking a thread per caller.
    async fn send_job(&self, job: Job) -> Result<(), StoreError> {
        let sender = self
            .writer
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .ok_or(StoreError::Closed)?;
        match sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Full(_)) => Err(StoreError::Busy),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(StoreError::Closed),
        }
    }
}

#[async_trait::async_trait]
impl Access for SqliteStore {
    async fn get(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
        with_names: bool,
    ) -> Result<Option<Record>, StoreError> {
        let entity_sql = self.entity_sql(entity)?;
        // A key lookup takes microseconds: it runs inline rather than on the blocking pool.
        self.with_reader(|conn| read_get(conn, entity_sql, entity, id, with_names))
            .await
    }

    async fn query(&self, query: Query) -> Result<Vec<Record>, StoreError> {
        // A page can hold thousands of rows: a long one is read off the async workers.
        self.with_reader_sized(move |readers, conn| {
            let entity_sql = readers.entity_sql(&query.plan.entity)?;
            read_query(conn, entity_sql, &query)
        })
        .await
    }

    async fn query_join(&self, query: JoinQuery) -> Result<Vec<JoinedRow>, StoreError> {
        self.with_reader_sized(move |readers, conn| {
            let root = readers.entity_sql(&query.plan.root.entity)?;
            let child = readers.entity_sql(&query.plan.join.child.0)?;
            read_join(conn, root, child, &query)
        })
        .await
    }

    async fn count(&self, query: Query, cap: usize) -> Result<u64, StoreError> {
        let entity_sql = self.entity_sql(&query.plan.entity)?;
        self.with_reader(|conn| read_count(conn, entity_sql, &query, cap))
            .await
    }

    async fn aggregate(
        &self,
        plan: sql::AggregatePlan,
        context: sql::Context,
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        self.with_reader_sized(move |_, conn| read_aggregate(conn, &plan, &context))
            .await
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let (reply, receive) = oneshot::channel();
        self.send_job(Job::Write(op, reply)).await?;
        receive.await.map_err(|_| StoreError::Closed)?
    }

    async fn write_with(
        &self,
        op: WriteOp,
        consequences: Vec<WriteOp>,
    ) -> Result<WriteOutcome, StoreError> {
        super::write_all_with(self, op, consequences).await
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>, StoreError> {
        let (reply, receive) = oneshot::channel();
        self.send_job(Job::Begin(reply)).await?;
        let sender = receive.await.map_err(|_| StoreError::Closed)??;
        Ok(Box::new(SqliteTransaction { sender }))
    }

    async fn write_all(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError> {
        let (reply, receive) = oneshot::channel();
        self.send_job(Job::WriteAll(ops, reply)).await?;
        receive.await.map_err(|_| StoreError::Closed)?
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM smsctx_settings WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
        // Settings are written once at start, before the server accepts requests.
        let conn = open_connection(&self.readers.path, false)?;
        conn.execute(
            "INSERT INTO smsctx_settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            [key, value],
        )?;
        Ok(conn.query_row(
            "SELECT value FROM smsctx_settings WHERE key = ?1",
            [key],
            |r| r.get(0),
        )?)
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        // Only from the command line (`smsctx admin-token rotate`), outside the writer.
        let conn = open_connection(&self.readers.path, false)?;
        conn.execute(
            "INSERT INTO smsctx_settings (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    async fn security_epoch(&self) -> Result<i64, StoreError> {
        Ok(self.security_epoch.load(Ordering::Acquire))
    }

    async fn changes_since(
        &self,
        entity: &str,
        since: Option<&str>,
    ) -> Result<ChangeWindow, StoreError> {
        let since = match since {
            None => None,
            Some(text) => Some(
                text.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| StoreError::BadPosition(text.to_string()))?,
            ),
        };
        let entity = entity.to_string();
        self.with_reader_blocking(move |_, conn| {
            let Some(since) = since else {
                let last: i64 = conn
                    .prepare_cached("SELECT coalesce(max(seq), 0) FROM smsctx_changelog")?
                    .query_row([], |r| r.get(0))?;
                return Ok(ChangeWindow {
                    changes: Vec::new(),
                    position: last.to_string(),
                });
            };
            // One statement, one snapshot: the position is the last row it saw.
            let mut statement = conn.prepare_cached(
                "SELECT seq, objectid, action, operation FROM smsctx_changelog \
                 WHERE entity = ?1 AND seq > ?2 ORDER BY seq",
            )?;
            let mut rows = statement.query(rusqlite::params![entity, since])?;
            let mut changes = Vec::new();
            while let Some(row) = rows.next()? {
                changes.push(LoggedChange {
                    seq: row.get(0)?,
                    objectid: parse_guid(row.get_ref(1)?)?,
                    action: row.get(2)?,
                    operation: row.get(3)?,
                });
            }
            let last = changes.last().map_or(since, |c: &LoggedChange| c.seq);
            Ok(ChangeWindow {
                changes,
                position: last.to_string(),
            })
        })
        .await
    }

    async fn purge_changes(&self, before: i64) -> Result<u64, StoreError> {
        let mut purged = 0;
        loop {
            // Batches, each its own short transaction, so writers wait for one batch at most.
            let deleted = schema_change(&self.readers.path, move |tx| {
                let newest: Option<i64> =
                    tx.query_row("SELECT max(seq) FROM smsctx_changelog", [], |r| r.get(0))?;
                // SQLite numbers a new row after the largest `seq` there is (migration 16): a
                // purged newest row leaves a placeholder with its `seq` (no entity, not
                // audited, read only by `max(seq)`), so no `seq` a delta token holds is given
                // again. A placeholder that is no longer the newest row is dropped uncounted.
                tx.execute(
                    "DELETE FROM smsctx_changelog WHERE entity = '' AND seq < ?1",
                    [newest],
                )?;
                // The same rows as below, out of the list by object first (migration 19).
                tx.execute(
                    "DELETE FROM smsctx_changelog_byobject WHERE (objectid, seq) IN \
                     (SELECT objectid, seq FROM smsctx_changelog WHERE seq IN \
                      (SELECT seq FROM smsctx_changelog WHERE entity <> '' ORDER BY seq LIMIT 1000) \
                      AND createdon < ?1)",
                    [before],
                )?;
                let deleted = tx.execute(
                    // The oldest rows by `seq`, which is creation order (one writer).
                    "DELETE FROM smsctx_changelog WHERE seq IN (SELECT seq FROM smsctx_changelog \
                     WHERE entity <> '' ORDER BY seq LIMIT 1000) AND createdon < ?1",
                    [before],
                )?;
                tx.execute(
                    "INSERT INTO smsctx_changelog (seq, entity, objectid, action, operation, \
                     audited) SELECT ?1, '', '', 0, 0, 0 \
                     WHERE ?1 IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM smsctx_changelog WHERE seq >= ?1)",
                    [newest],
                )?;
                Ok(deleted as u64)
            })
            .await?;
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
        self.with_reader_blocking(move |_, conn| {
            let columns = "seq, objectid, action, operation, entity, versionnumber, userid, \
                           callinguserid, createdon, olddata, newdata, unaudited FROM smsctx_changelog";
            let (text, key) = match selection {
                // The folded rows by the table of them, the tail by `seq` (migration 19); one
                // statement, one snapshot, so a fold between the two halves changes nothing.
                AuditSelection::Object(id) => (
                    format!(
                        "SELECT {columns} WHERE audited = 1 AND seq IN \
                         (SELECT seq FROM smsctx_changelog_byobject WHERE objectid = ?1) \
                         UNION ALL SELECT {columns} WHERE audited = 1 AND objectid = ?1 \
                         AND seq > (SELECT seq FROM smsctx_changelog_folded) ORDER BY seq"
                    ),
                    rusqlite::types::Value::Text(guid_text(id)),
                ),
                AuditSelection::Record(seq) => (
                    format!("SELECT {columns} WHERE audited = 1 AND seq = ?1"),
                    rusqlite::types::Value::Integer(seq),
                ),
            };
            let mut statement = conn.prepare_cached(&text)?;
            let mut rows = statement.query([key])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let guid = |i: usize| -> Result<Option<Uuid>, StoreError> {
                    match row.get_ref(i)? {
                        ValueRef::Null => Ok(None),
                        value => parse_guid(value).map(Some),
                    }
                };
                out.push(AuditRecord {
                    change: LoggedChange {
                        seq: row.get(0)?,
                        objectid: parse_guid(row.get_ref(1)?)?,
                        action: row.get(2)?,
                        operation: row.get(3)?,
                    },
                    entity: row.get(4)?,
                    versionnumber: row.get(5)?,
                    userid: guid(6)?,
                    callinguserid: guid(7)?,
                    createdon: row.get(8)?,
                    olddata: change_data(row.get(9)?)?,
                    newdata: change_data(row.get(10)?)?,
                    unaudited: unaudited_columns(row.get(11)?),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn tracking_settings(&self) -> Result<TrackingSettings, StoreError> {
        self.with_reader(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT entity, changetrackingenabled, isauditenabled FROM smsctx_tablesettings \
                 ORDER BY entity",
            )?;
            let tables = statement
                .query_map([], |r| {
                    Ok(TableTracking {
                        entity: r.get(0)?,
                        change_tracking: r.get(1)?,
                        audit: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut statement = conn.prepare_cached(
                "SELECT entity, attribute, isauditenabled FROM smsctx_columnaudit \
                 ORDER BY entity, attribute",
            )?;
            let columns = statement
                .query_map([], |r| {
                    Ok(ColumnAudit {
                        entity: r.get(0)?,
                        attribute: r.get(1)?,
                        audit: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let organization_audit: Option<bool> = conn
                .prepare_cached("SELECT coalesce(isauditenabled, 1) FROM organization LIMIT 1")?
                .query_row([], |r| r.get(0))
                .optional()?;
            Ok(TrackingSettings {
                tables,
                columns,
                organization_audit: organization_audit.unwrap_or(true),
            })
        })
        .await
    }

    async fn set_table_tracking(&self, table: &TableTracking) -> Result<(), StoreError> {
        let table = table.clone();
        schema_change(&self.readers.path, move |tx| {
            let changed = tx.execute(
                "UPDATE smsctx_tablesettings SET changetrackingenabled = ?2, isauditenabled = ?3 \
                 WHERE entity = ?1",
                rusqlite::params![table.entity, table.change_tracking, table.audit],
            )?;
            if changed == 0 {
                return Err(StoreError::UnknownTable(table.entity));
            }
            Ok(())
        })
        .await
    }

    async fn set_column_audit(&self, column: &ColumnAudit) -> Result<(), StoreError> {
        let column = column.clone();
        schema_change(&self.readers.path, move |tx| {
            tx.execute(
                "INSERT INTO smsctx_columnaudit (entity, attribute, isauditenabled) \
                 VALUES (?1, ?2, ?3) \
                 ON CONFLICT (entity, attribute) DO UPDATE SET isauditenabled = excluded.isauditenabled",
                rusqlite::params![column.entity, column.attribute, column.audit],
            )?;
            Ok(())
        })
        .await
    }

    async fn entity_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.with_reader(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT entity, logicalname, schemaname, displayname, keyattributes \
                 FROM smsctx_entitykeys ORDER BY entity, logicalname",
            )?;
            let rows = statement.query_map([], key_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn create_entity_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        // SQLite's text columns are `NOCASE`: the index is case-insensitive as declared.
        let (create, _) = sql::key_index(&sql::Sqlite, key, &[])?;
        let key = key.clone();
        schema_change(&self.readers.path, move |tx| {
            tx.execute(
                "INSERT INTO smsctx_entitykeys (entity, logicalname, schemaname, displayname, keyattributes) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                [
                    &key.entity,
                    &key.logical_name,
                    &key.schema_name,
                    &key.display_name,
                    &key.attributes.join(","),
                ],
            )?;
            tx.execute_batch(&create).map_err(|e| match StoreError::from(e) {
                StoreError::Duplicate => StoreError::DuplicateKey(key.attributes.join(", ")),
                other => other,
            })?;
            Ok(())
        })
        .await
    }

    async fn delete_entity_key(
        &self,
        entity: &str,
        logical_name: &str,
    ) -> Result<bool, StoreError> {
        let (entity, logical_name) = (entity.to_string(), logical_name.to_string());
        schema_change(&self.readers.path, move |tx| {
            let key = tx
                .query_row(
                    "DELETE FROM smsctx_entitykeys WHERE entity = ?1 AND logicalname = ?2 \
                     RETURNING entity, logicalname, schemaname, displayname, keyattributes",
                    [&entity, &logical_name],
                    key_row,
                )
                .optional()?;
            let Some(key) = key else {
                return Ok(false);
            };
            let (_, drop) = sql::key_index(&sql::Sqlite, &key, &[])?;
            tx.execute_batch(&drop)?;
            Ok(true)
        })
        .await
    }
}

/// A row of `smsctx_entitykeys` (its five columns in table order).
fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredKey> {
    Ok(stored_key(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
    ))
}

/// Runs `change` in an IMMEDIATE transaction on a connection of its own (a schema change:
/// IMMEDIATE waits for the writer's commit) and commits it when `change` succeeds.
async fn schema_change<T: Send + 'static>(
    path: &Path,
    change: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut conn = open_connection(&path, false)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = change(&tx)?;
        tx.commit()?;
        Ok(out)
    })
    .await
    .map_err(|e| StoreError::Database(e.to_string()))?
}

/// A transaction served by the writer thread; dropping it rolls back.
struct SqliteTransaction {
    sender: crossbeam_channel::Sender<TxJob>,
}

impl SqliteTransaction {
    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> TxJob) -> Result<T, StoreError> {
        let (reply, receive) = oneshot::channel();
        self.sender
            .send(job(reply))
            .map_err(|_| StoreError::TransactionEnded)?;
        receive.await.map_err(|_| StoreError::TransactionEnded)?
    }
}

#[async_trait::async_trait]
impl Access for SqliteTransaction {
    async fn get(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
        with_names: bool,
    ) -> Result<Option<Record>, StoreError> {
        let entity = Arc::clone(entity);
        self.ask(|reply| TxJob::Get(entity, id, with_names, reply))
            .await
    }

    async fn query(&self, query: Query) -> Result<Vec<Record>, StoreError> {
        self.ask(|reply| TxJob::Query(query, reply)).await
    }

    async fn query_join(&self, query: JoinQuery) -> Result<Vec<JoinedRow>, StoreError> {
        self.ask(|reply| TxJob::QueryJoin(query, reply)).await
    }

    async fn count(&self, query: Query, cap: usize) -> Result<u64, StoreError> {
        self.ask(|reply| TxJob::Count(query, cap, reply)).await
    }

    async fn aggregate(
        &self,
        plan: sql::AggregatePlan,
        context: sql::Context,
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        self.ask(|reply| TxJob::Aggregate(plan, context, reply))
            .await
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        self.ask(|reply| TxJob::Write(op, reply)).await
    }

    async fn write_each(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, StoreError>> {
        match self.ask(|reply| TxJob::WriteEach(ops, reply)).await {
            Ok(outcomes) => outcomes,
            Err(e) => vec![Err(e)],
        }
    }
}

#[async_trait::async_trait]
impl Transaction for SqliteTransaction {
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.ask(TxJob::Commit).await
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.ask(TxJob::Rollback).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read longer than the inline budget is interrupted and its slot handed back; the same
    /// read then runs whole with the budget off, and a short read finishes inline.
    #[tokio::test]
    async fn a_long_read_leaves_the_inline_path_and_runs_whole_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), &catalog).unwrap();
        let readers = &store.readers;
        let long = |conn: &Connection| -> Result<i64, StoreError> {
            let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                       WHERE i < 200000) SELECT count(*) FROM n";
            Ok(conn.query_row(sql, [], |r| r.get(0))?)
        };
        let slot = readers.admission.enter().await.unwrap();
        let slot = match readers.with_reader_inline(slot, long) {
            Inline::TooLong(slot) => slot,
            Inline::Done(result) => panic!("a 200,000-row read finished inline: {result:?}"),
        };
        assert_eq!(readers.with_reader(slot, long).unwrap(), 200_000);
        let slot = readers.admission.enter().await.unwrap();
        let short = |conn: &Connection| -> Result<i64, StoreError> {
            Ok(conn.query_row("SELECT 41 + 1", [], |r| r.get(0))?)
        };
        match readers.with_reader_inline(slot, short) {
            Inline::Done(result) => assert_eq!(result.unwrap(), 42),
            Inline::TooLong(_) => panic!("a one-step read was interrupted"),
        }
        assert_eq!(store.readers.pool.lock().unwrap().len(), default_readers());
    }

    #[test]
    fn the_schema_has_a_column_for_every_stored_attribute() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), &catalog).unwrap();
        let conn = open_connection(&store.readers.path, false).unwrap();
        for entity in catalog.entities() {
            let mut statement = conn
                .prepare(&format!("PRAGMA table_info({})", entity.logical_name))
                .unwrap();
            let columns: Vec<String> = statement
                .query_map([], |r| r.get::<_, String>(1))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let stored: Vec<String> = entity
                .stored_attributes()
                .map(|(_, a)| a.logical_name.clone())
                .collect();
            for name in &stored {
                assert!(
                    columns.contains(name),
                    "{}.{name} has no column",
                    entity.logical_name
                );
            }
            assert_eq!(columns.len(), stored.len(), "{}", entity.logical_name);
        }
    }

    #[test]
    fn writer_keeps_sub_journals_in_memory_and_checkpoints_late() {
        let conn = Connection::open_in_memory().unwrap();
        configure_writer(&conn).unwrap();
        let temp_store: i64 = conn
            .query_row("PRAGMA temp_store", [], |r| r.get(0))
            .unwrap();
        assert_eq!(temp_store, 2, "MEMORY");
        let pages: i64 = conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pages, WAL_AUTOCHECKPOINT_PAGES);
    }

    /// The change log is written by the writer (`apply`): a reader connection cannot write.
    #[test]
    fn readers_cannot_write_rows() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let path = dir.path().join("t.db");
        drop(SqliteStore::open(&path, &catalog).unwrap());
        let reader = open_reader(&path, 1024).unwrap();
        let error = reader
            .conn
            .execute("DELETE FROM msdyn_smsengagementctx", [])
            .unwrap_err();
        assert!(error.to_string().contains("readonly"), "{error}");
    }

    #[test]
    fn migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let path = dir.path().join("t.db");
        drop(SqliteStore::open(&path, &catalog).unwrap());
        drop(SqliteStore::open(&path, &catalog).unwrap());
        let conn = open_connection(&path, false).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM smsctx_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
    }

    /// A store with the migrations before `version` applied and recorded, as an older smsctx
    /// left it.
    fn migrated_before(path: &Path, version: i64) -> Connection {
        let conn = open_connection(path, true).unwrap();
        conn.execute_batch(
            "CREATE TABLE smsctx_migrations (version INTEGER PRIMARY KEY, applied_on INTEGER NOT NULL)",
        )
        .unwrap();
        for (applied, sql) in MIGRATIONS.iter().filter(|(v, _)| *v < version) {
            conn.execute_batch(sql).unwrap();
            conn.execute("INSERT INTO smsctx_migrations VALUES (?1, 0)", [applied])
                .unwrap();
        }
        conn
    }

    /// Users that share an Entra object id stop migration 9 with a message naming the id, and
    /// the store is left as it was (the migration is not recorded, so the next start retries).
    #[test]
    fn shared_object_ids_stop_the_unique_index_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = migrated_before(&path, 9);
        let oid = "3f2b0000-0000-4000-8000-000000000001";
        for user in [
            "aaaaaaaa-0000-4000-8000-000000000001",
            "aaaaaaaa-0000-4000-8000-000000000002",
        ] {
            conn.execute(
                "INSERT INTO systemuser (systemuserid, azureactivedirectoryobjectid, versionnumber) VALUES (?1, ?2, 1)",
                [user, oid],
            )
            .unwrap();
        }
        let Err(StoreError::Migration { version, message }) = migrate(&mut conn) else {
            panic!("the migration must stop");
        };
        assert_eq!(version, 9);
        assert!(
            message.contains(oid) && message.contains("2 users"),
            "{message}"
        );
        let applied: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM smsctx_migrations WHERE version = 9",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(applied, 0);
    }

    /// Migration 16 drops AUTOINCREMENT from the change log: a `seq` handed out before is not
    /// given again (the purged newest row's number is kept by a placeholder), an update logs
    /// only the columns it changed, and a purge of everything keeps the numbering going.
    #[tokio::test]
    async fn the_change_log_never_gives_a_seq_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = migrated_before(&path, 16);
        let insert = "INSERT INTO msdyn_smsengagementctx (msdyn_smsengagementctxid, msdyn_name, \
                      statecode, versionnumber) VALUES (?1, 'a', 0, 1)";
        for id in [
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002",
            "00000000-0000-4000-8000-000000000003",
        ] {
            conn.execute(insert, [id]).unwrap();
        }
        // As a purge before migration 16 could leave it: the newest row gone, AUTOINCREMENT
        // remembering its number.
        conn.execute("DELETE FROM smsctx_changelog WHERE seq = 3", [])
            .unwrap();
        migrate(&mut conn).unwrap();
        drop(conn);
        // From migration 17 the writer logs a row's changes (`sqlite_changelog`): the rest
        // writes through the store.
        let catalog = Catalog::builtin().unwrap();
        let store = SqliteStore::open(&path, &catalog).unwrap();
        let entity = Arc::clone(catalog.entity("msdyn_smsengagementctx").unwrap());
        let context = |id: &str| {
            let mut record = Record::empty(Arc::clone(&entity));
            record.set(
                "msdyn_smsengagementctxid",
                Value::Guid(Uuid::parse_str(id).unwrap()),
            );
            record.set("msdyn_name", Value::Text("a".into()));
            record.set("statecode", Value::Int(0));
            WriteOp::Insert(record)
        };
        let fourth = "00000000-0000-4000-8000-000000000004";
        store.write(context(fourth)).await.unwrap();
        let conn = open_connection(&path, false).unwrap();
        let newest: (i64, String) = conn
            .query_row(
                "SELECT seq, objectid FROM smsctx_changelog ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(newest, (4, fourth.to_string()));

        let position = |name: &str| entity.position(name).unwrap();
        store
            .write(WriteOp::Update {
                entity: Arc::clone(&entity),
                id: Uuid::parse_str(fourth).unwrap(),
                changes: vec![
                    (position("msdyn_name"), Value::Text("b".into())),
                    (position("modifiedon"), Value::DateTime(5)),
                ],
                expect: Expect::Any,
            })
            .await
            .unwrap();
        let (old, new): (String, String) = conn
            .query_row(
                "SELECT olddata, newdata FROM smsctx_changelog ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(old, r#"{"msdyn_name":"a"}"#);
        assert_eq!(new, r#"{"msdyn_name":"b"}"#);

        assert_eq!(store.purge_changes(i64::MAX).await.unwrap(), 4);
        let window = store
            .changes_since("msdyn_smsengagementctx", None)
            .await
            .unwrap();
        assert_eq!(window.position, "5");
        store
            .write(context("00000000-0000-4000-8000-000000000005"))
            .await
            .unwrap();
        let seqs: Vec<i64> = conn
            .prepare("SELECT seq FROM smsctx_changelog WHERE entity <> '' ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(seqs, [6]);
        let window = store
            .changes_since("msdyn_smsengagementctx", Some("5"))
            .await
            .unwrap();
        assert_eq!(window.changes.len(), 1);
        assert_eq!(window.position, "6");
        // A second purge counts only real rows and leaves one placeholder at most.
        assert_eq!(store.purge_changes(i64::MAX).await.unwrap(), 1);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM smsctx_changelog", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    /// The change log's rows by object are found on both sides of the fold (migration 19): the
    /// writer folds the tail in when it is due, each object's history stays whole and in order,
    /// the `audit` view's filter by object finds the same rows, and a purge takes them out of
    /// the list by object too.
    #[tokio::test]
    async fn history_by_object_spans_the_folded_rows_and_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let path = dir.path().join("t.db");
        let options = SqliteOptions {
            fold_min: 4,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_with(&path, &catalog, options).unwrap();
        let entity = Arc::clone(catalog.entity("msdyn_smsengagementctx").unwrap());
        let name = entity.position("msdyn_name").unwrap();
        let ids: Vec<Uuid> = (1..=3)
            .map(|i| Uuid::from_u128(0x4000_8000_0000_0000 + i))
            .collect();
        let write = |id: Uuid, round: usize| {
            if round == 0 {
                let mut record = Record::empty(Arc::clone(&entity));
                record.set("msdyn_smsengagementctxid", Value::Guid(id));
                record.set("msdyn_name", Value::Text("n0".into()));
                record.set("statecode", Value::Int(0));
                WriteOp::Insert(record)
            } else {
                WriteOp::Update {
                    entity: Arc::clone(&entity),
                    id,
                    changes: vec![(name, Value::Text(format!("n{round}")))],
                    expect: Expect::Any,
                }
            }
        };
        // Log rows 1 to 12, one commit each: a fold after rows 4, 8 and 12 (a tail of four
        // is due while fewer than 32 are folded); row 13 stays in the tail.
        for round in 0..4 {
            for &id in &ids {
                store.write(write(id, round)).await.unwrap();
            }
        }
        store.write(write(ids[0], 4)).await.unwrap();
        let conn = open_connection(&path, false).unwrap();
        let count = |sql: &str, id: Option<Uuid>| -> i64 {
            match id {
                Some(id) => conn.query_row(sql, [guid_text(id)], |r| r.get(0)),
                None => conn.query_row(sql, [], |r| r.get(0)),
            }
            .unwrap()
        };
        assert_eq!(count("SELECT seq FROM smsctx_changelog_folded", None), 12);
        assert_eq!(
            count("SELECT count(*) FROM smsctx_changelog_byobject", None),
            12
        );
        for (n, &id) in ids.iter().enumerate() {
            let records = store
                .audit_records(AuditSelection::Object(id))
                .await
                .unwrap();
            let seqs: Vec<i64> = records.iter().map(|r| r.change.seq).collect();
            let mut expected: Vec<i64> = (0..4).map(|round| 3 * round + n as i64 + 1).collect();
            if n == 0 {
                expected.push(13);
            }
            assert_eq!(seqs, expected, "{id}");
            assert!(records.iter().all(|r| r.change.objectid == id));
            let actions: Vec<i64> = records.iter().map(|r| r.change.action).collect();
            assert_eq!(actions[..4], [1, 2, 2, 2]);
            let viewed = count("SELECT count(*) FROM audit WHERE objectid = ?1", Some(id));
            assert_eq!(viewed, expected.len() as i64, "{id}");
        }
        assert_eq!(store.purge_changes(i64::MAX).await.unwrap(), 13);
        assert_eq!(
            count("SELECT count(*) FROM smsctx_changelog_byobject", None),
            0
        );
        let left = store
            .audit_records(AuditSelection::Object(ids[0]))
            .await
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
        drop(conn);
        store.close();
    }

    /// Writes of many callers at once share one commit; one failing among them (a duplicate
    /// id) fails alone, and every other is kept, with its change-log row once.
    #[tokio::test]
    async fn a_failing_write_in_a_group_commit_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path, &catalog).unwrap();
        let entity = Arc::clone(catalog.entity("msdyn_smsengagementctx").unwrap());
        let context = |id: Uuid| {
            let mut record = Record::empty(Arc::clone(&entity));
            record.set("msdyn_smsengagementctxid", Value::Guid(id));
            WriteOp::Insert(record)
        };
        let taken = Uuid::new_v4();
        store.write(context(taken)).await.unwrap();
        let ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
        let mut writes: Vec<_> = ids.iter().map(|&id| store.write(context(id))).collect();
        writes.insert(100, store.write(context(taken)));
        let outcomes = futures_util::future::join_all(writes).await;
        for (n, outcome) in outcomes.iter().enumerate() {
            if n == 100 {
                assert!(matches!(outcome, Err(StoreError::Duplicate)), "{outcome:?}");
            } else {
                assert!(outcome.is_ok(), "{n}: {outcome:?}");
            }
        }
        let conn = Connection::open(&path).unwrap();
        let (rows, logged): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM msdyn_smsengagementctx), \
                 (SELECT count(*) FROM smsctx_changelog WHERE objectid IN \
                  (SELECT msdyn_smsengagementctxid FROM msdyn_smsengagementctx))",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, logged), (201, 201));
        drop(conn);
        store.close();
    }

    /// `write_each` keeps the writes before the first failure and nothing of the failing one or
    /// after it, although it runs them in one savepoint: the prefix is made again, once, with
    /// its change-log rows once each.
    #[tokio::test]
    async fn write_each_keeps_the_writes_before_its_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path, &catalog).unwrap();
        let entity = Arc::clone(catalog.entity("msdyn_smsengagementctx").unwrap());
        let context = |id: Uuid, name: &str| {
            let mut record = Record::empty(Arc::clone(&entity));
            record.set("msdyn_smsengagementctxid", Value::Guid(id));
            record.set("msdyn_name", Value::Text(name.into()));
            WriteOp::Insert(record)
        };
        let (a, b, d) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let ops = vec![
            context(a, "a"),
            context(b, "b"),
            context(a, "a again"),
            context(d, "d"),
        ];
        let tx = store.begin().await.unwrap();
        let outcomes = tx.write_each(ops).await;
        assert_eq!(outcomes.len(), 3, "{outcomes:?}");
        assert!(outcomes[0].is_ok() && outcomes[1].is_ok(), "{outcomes:?}");
        assert!(
            matches!(outcomes[2], Err(StoreError::Duplicate)),
            "{outcomes:?}"
        );
        tx.commit().await.unwrap();
        let name = |id| {
            let store = &store;
            let entity = &entity;
            async move {
                store.get(entity, id, false).await.unwrap().map(|r| {
                    r.get("msdyn_name")
                        .as_text()
                        .unwrap_or_default()
                        .to_string()
                })
            }
        };
        assert_eq!(name(a).await.as_deref(), Some("a"));
        assert_eq!(name(b).await.as_deref(), Some("b"));
        assert_eq!(name(d).await, None);
        let conn = Connection::open(&path).unwrap();
        for (id, expected) in [(a, 1), (b, 1), (d, 0)] {
            let logged: i64 = conn
                .query_row(
                    "SELECT count(*) FROM smsctx_changelog WHERE objectid = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(logged, expected, "{id}");
        }
        drop(conn);
        store.close();
    }

    /// A transaction reads the logging settings once per table, yet a write in it that changes
    /// them (the organisation's auditing) governs the writes after it: the first context is
    /// audited, the second, created after auditing was turned off, is logged without its audit
    /// data.
    #[tokio::test]
    async fn a_settings_change_in_a_transaction_governs_the_writes_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path, &catalog).unwrap();
        let entity = Arc::clone(catalog.entity("msdyn_smsengagementctx").unwrap());
        let organization = Arc::clone(catalog.entity("organization").unwrap());
        let organization_id = Uuid::new_v4();
        let mut seeded = Record::empty(Arc::clone(&organization));
        seeded.set("organizationid", Value::Guid(organization_id));
        seeded.set("name", Value::Text("org".into()));
        seeded.set("isauditenabled", Value::Bool(true));
        store.write(WriteOp::Insert(seeded)).await.unwrap();
        let context = |id: Uuid| {
            let mut record = Record::empty(Arc::clone(&entity));
            record.set("msdyn_smsengagementctxid", Value::Guid(id));
            WriteOp::Insert(record)
        };
        let audit_off = WriteOp::Update {
            entity: Arc::clone(&organization),
            id: organization_id,
            changes: vec![(
                organization.position("isauditenabled").unwrap(),
                Value::Bool(false),
            )],
            expect: Expect::Any,
        };
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let tx = store.begin().await.unwrap();
        let mut outcomes = tx.write_each(vec![context(a)]).await;
        outcomes.extend(tx.write_each(vec![audit_off, context(b)]).await);
        outcomes.extend(tx.write_each(vec![context(c)]).await);
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        tx.commit().await.unwrap();
        store.close();
        let conn = Connection::open(&path).unwrap();
        for (id, audited) in [(a, 1), (b, 0), (c, 0)] {
            let (logged, with_data): (i64, bool) = conn
                .query_row(
                    "SELECT audited, newdata IS NOT NULL FROM smsctx_changelog \
                     WHERE objectid = ?1",
                    [id.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((logged, with_data), (audited, audited == 1), "{id}");
        }
    }

    #[tokio::test]
    async fn a_transaction_sees_its_writes_and_rolls_back_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), &catalog).unwrap();
        let entity = Arc::clone(catalog.entity("businessunit").unwrap());
        let unit = |name: &str| {
            let mut record = Record::empty(Arc::clone(&entity));
            let id = Uuid::new_v4();
            record.set("businessunitid", Value::Guid(id));
            // Under some parent: the schema allows one root only (migration 9).
            record.set("parentbusinessunitid", Value::Guid(Uuid::new_v4()));
            record.set("name", Value::Text(name.into()));
            (id, record)
        };
        let (a, first) = unit("a");
        let tx = store.begin().await.unwrap();
        tx.write(WriteOp::Insert(first)).await.unwrap();
        assert!(tx.get(&entity, a, false).await.unwrap().is_some());
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
        assert_eq!(tx.count(all.clone(), 10).await.unwrap(), 1);
        assert_eq!(tx.query(all).await.unwrap().len(), 1);
        tx.rollback().await.unwrap();
        assert!(store.get(&entity, a, false).await.unwrap().is_none());

        let (b, second) = unit("b");
        let tx = store.begin().await.unwrap();
        tx.write(WriteOp::Insert(second)).await.unwrap();
        // A write outside the transaction waits for it, then commits on its own.
        let (c, third) = unit("c");
        let outside = store.write(WriteOp::Insert(third));
        let commit = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            tx.commit().await
        };
        let (outside, commit) = tokio::join!(outside, commit);
        outside.unwrap();
        commit.unwrap();
        assert!(store.get(&entity, b, false).await.unwrap().is_some());
        assert!(store.get(&entity, c, false).await.unwrap().is_some());

        // Dropping a transaction rolls it back and frees the writer.
        let (d, fourth) = unit("d");
        let tx = store.begin().await.unwrap();
        tx.write(WriteOp::Insert(fourth)).await.unwrap();
        drop(tx);
        let (e, fifth) = unit("e");
        store.write(WriteOp::Insert(fifth)).await.unwrap();
        assert!(store.get(&entity, d, false).await.unwrap().is_none());
        assert!(store.get(&entity, e, false).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn write_all_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.db"), &catalog).unwrap());
        let entity = Arc::clone(catalog.entity("businessunit").unwrap());
        crate::store::contract::write_all_is_all_or_nothing(store, &entity).await;
    }

    #[tokio::test]
    async fn writes_are_atomic_and_versions_increase() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), &catalog).unwrap();
        let entity = Arc::clone(catalog.entity("businessunit").unwrap());
        let id = Uuid::new_v4();
        let mut record = Record::empty(Arc::clone(&entity));
        record.set("businessunitid", Value::Guid(id));
        // Under some parent: the schema allows one root only (migration 9).
        record.set("parentbusinessunitid", Value::Guid(Uuid::new_v4()));
        record.set("name", Value::Text("root".into()));
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
        let update = |expect| WriteOp::Update {
            entity: Arc::clone(&entity),
            id,
            changes: vec![(name, Value::Text("renamed".into()))],
            expect,
        };
        let WriteOutcome::Written { version: v2 } =
            store.write(update(Expect::Version(v1))).await.unwrap()
        else {
            panic!("update reports a version");
        };
        assert!(v2 > v1);
        assert!(matches!(
            store.write(update(Expect::Version(v1))).await,
            Err(StoreError::VersionMismatch { .. })
        ));
        let row = store.get(&entity, id, false).await.unwrap().unwrap();
        assert_eq!(row.get("name"), &Value::Text("renamed".into()));
        assert_eq!(row.version(), Some(v2));
    }
}
