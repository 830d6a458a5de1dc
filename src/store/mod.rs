//! Storage: typed records in, typed records out, behind the [`Store`] trait.
//!
//! The trait speaks in [`Record`]s laid out by the entity metadata (one [`Value`] per column,
//! by column position) and in typed plans ([`WriteOp`], [`Query`]); SQL text is the
//! business of each backend. [`sqlite`] is the embedded default.
//!
//! **Architecture invariant:** no value from a user is ever written into SQL text; values travel
//! as bound parameters, identifiers come only from the metadata.

pub mod admission;
pub mod postgres;
#[cfg(test)]
mod query_plans;
pub mod sql;
pub mod sqlite;
mod sqlite_changelog;

use std::sync::Arc;

use uuid::Uuid;

use crate::metadata::Entity;

/// A column value, as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    /// Integer, picklist, state, status and bigint columns.
    Int(i64),
    Bool(bool),
    /// Unix seconds, UTC.
    DateTime(i64),
    /// Uniqueidentifier, lookup and owner columns.
    Guid(Uuid),
    /// Only computed values (averages) are floating point; no column stores one.
    Float(f64),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_guid(&self) -> Option<Uuid> {
        match self {
            Value::Guid(g) => Some(*g),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// One row of an entity: a value per column, by the column's position in the metadata.
/// Shadow name columns are filled only when a read asks for names.
#[derive(Debug, Clone)]
pub struct Record {
    pub entity: Arc<Entity>,
    pub values: Vec<Value>,
}

impl Record {
    pub fn empty(entity: Arc<Entity>) -> Record {
        let values = vec![Value::Null; entity.attributes.len()];
        Record { entity, values }
    }

    pub fn get(&self, logical_name: &str) -> &Value {
        match self.entity.position(logical_name) {
            Some(i) => &self.values[i],
            None => &Value::Null,
        }
    }

    /// Sets a column by logical name; a name the entity does not have is ignored, so callers
    /// can fill system columns generically for tables that may lack some of them.
    pub fn set(&mut self, logical_name: &str, value: Value) {
        if let Some(i) = self.entity.position(logical_name) {
            self.values[i] = value;
        }
    }

    pub fn id(&self) -> Option<Uuid> {
        self.values[self.entity.primary_id_position()].as_guid()
    }

    pub fn version(&self) -> Option<i64> {
        self.get(crate::metadata::system::VERSION_NUMBER).as_int()
    }
}

/// A precondition on a write, checked inside the write's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No precondition.
    Any,
    /// The row must exist at exactly this version (compare-and-set).
    Version(i64),
}

/// A write, executed as one transaction.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Insert a new row; fails with [`StoreError::Duplicate`] if the id exists.
    Insert(Record),
    /// Set some columns of an existing row; the store bumps `versionnumber`.
    Update {
        entity: Arc<Entity>,
        id: Uuid,
        changes: Vec<(usize, Value)>,
        expect: Expect,
    },
    /// Delete a row.
    Delete {
        entity: Arc<Entity>,
        id: Uuid,
        expect: Expect,
    },
}

/// What a successful write reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The row's new version.
    Written {
        version: i64,
    },
    Deleted,
}

/// A RetrieveMultiple read: the typed plan, what its functions are evaluated against, and
/// whether lookup names are wanted.
#[derive(Debug, Clone)]
pub struct Query {
    pub plan: sql::Plan,
    pub context: sql::Context,
    pub with_names: bool,
}

/// What a joined read asks for, as [`Query`] for a plain one; the joined table's rows are read
/// without lookup names.
#[derive(Debug, Clone)]
pub struct JoinQuery {
    pub plan: sql::JoinPlan,
    pub context: sql::Context,
    pub with_names: bool,
}

/// One row of a joined read: the root's record, and the joined table's when there is one.
pub type JoinedRow = (Record, Option<Record>);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a row with this key already exists")]
    Duplicate,
    /// A write would give two rows the same values of an alternate key (its unique index
    /// refused it), or a key cannot be created over rows that already repeat its values.
    #[error("the values of an alternate key are already used by another row ({0})")]
    DuplicateKey(String),
    #[error("the row does not exist")]
    NotFound,
    #[error("the row's version is {actual}, not the expected {expected}")]
    VersionMismatch { expected: i64, actual: i64 },
    #[error("the store is shutting down")]
    Closed,
    /// Every connection is in use and the queue of requests waiting for one is full.
    #[error("the server is busy: every database connection is in use and the queue is full")]
    Busy,
    /// The database's disk is full: the write was not made (rolled back as a whole); the same
    /// write succeeds again once space is freed.
    #[error("the database has no space left on its disk")]
    Full,
    /// A change-log position (inside a delta token) that this store cannot have written.
    #[error("the change-tracking position '{0}' is not one this store wrote")]
    BadPosition(String),
    #[error("the transaction ended (timed out or rolled back)")]
    TransactionEnded,
    #[error("database error: {0}")]
    Database(String),
    /// A configuration fault: the catalog or the store lacks a table the code asks for.
    #[error("the store has no table '{0}'")]
    UnknownTable(String),
    /// A value read back that the store's own writes cannot have produced.
    #[error("the store returned an unexpected {0}")]
    Unexpected(String),
    #[error("the query cannot run: {0}")]
    Query(#[from] sql::SqlError),
    #[error("migration {version} failed: {message}")]
    Migration { version: i64, message: String },
    /// A rule the schema enforces in the database refused the write (a trigger whose message
    /// starts with [`RULE_PREFIX`], e.g. the business-unit tree); the text is for the client.
    #[error("{message}")]
    Rule { rule: Rule, message: String },
    /// The authorize layer refused the read or the write (see [`crate::authorize`]).
    #[error("{0}")]
    Denied(Box<crate::security::Denied>),
}

/// How the schema's triggers start the messages of the refusals they raise for the client.
pub const RULE_PREFIX: &str = "smsctx rule: ";

/// Which rule of the schema refused a write (the edge picks Dataverse's code by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A re-parenting would put a business unit under itself or one of its children.
    BusinessUnitLoop,
    /// Any other rule of the schema (the business-unit tree's root, ...).
    Other,
}

/// The start of the business-unit loop trigger's message (migrations/*/0009).
const BUSINESS_UNIT_LOOP: &str = "This parent business unit would make a loop";

impl StoreError {
    /// The same failure for each of several callers (a group commit that failed for all):
    /// the kinds a caller acts on are kept, others carry their text.
    pub(crate) fn for_each_caller(&self) -> StoreError {
        match self {
            StoreError::Full => StoreError::Full,
            StoreError::Closed => StoreError::Closed,
            e => StoreError::Database(e.to_string()),
        }
    }

    /// A database error's message as a refusal, when a trigger of the schema raised it.
    fn rule(message: &str) -> Option<StoreError> {
        let start = message.find(RULE_PREFIX)?;
        let message = message[start + RULE_PREFIX.len()..].to_string();
        let rule = if message.starts_with(BUSINESS_UNIT_LOOP) {
            Rule::BusinessUnitLoop
        } else {
            Rule::Other
        };
        Some(StoreError::Rule { rule, message })
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi;
        if let rusqlite::Error::SqliteFailure(failure, message) = &e {
            if failure.code == rusqlite::ErrorCode::DiskFull {
                return StoreError::Full;
            }
            match failure.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE
                    if message.as_deref().is_some_and(is_alternate_key_violation) =>
                {
                    return StoreError::DuplicateKey(message.clone().unwrap_or_default())
                }
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    return StoreError::Duplicate
                }
                ffi::SQLITE_CONSTRAINT_TRIGGER => {
                    if let Some(rule) = message.as_deref().and_then(StoreError::rule) {
                        return rule;
                    }
                }
                _ => {}
            }
        }
        StoreError::Database(e.to_string())
    }
}

/// The unique indexes the schema's own migrations create, as SQLite names their columns in a
/// violation (`UNIQUE constraint failed: table.column, ...`); any other unique index of a
/// table is an alternate key's (`smsctx_key_*`, see [`sql::key_index`]).
const SCHEMA_UNIQUE_INDEXES: &[&str] = &[
    "systemuserroles.",
    "teamroles.",
    "teammembership.",
    "principalobjectaccess.",
    "systemuser.azureactivedirectoryobjectid",
];

/// Whether SQLite's message of a unique violation names an alternate key's columns.
fn is_alternate_key_violation(message: &str) -> bool {
    let columns = message
        .strip_prefix("UNIQUE constraint failed: ")
        .unwrap_or(message);
    !SCHEMA_UNIQUE_INDEXES
        .iter()
        .any(|index| columns.starts_with(index))
}

pub use crate::metadata::tracking::{ColumnAudit, TableTracking, TrackingSettings};
/// An alternate key as the store keeps it (`smsctx_entitykeys`).
pub use crate::metadata::AlternateKey as StoredKey;

/// A row of `smsctx_entitykeys`.
pub(crate) fn stored_key(
    entity: String,
    logical_name: String,
    schema_name: String,
    display_name: String,
    attributes: String,
) -> StoredKey {
    StoredKey {
        entity,
        logical_name,
        schema_name,
        display_name,
        attributes: attributes.split(',').map(str::to_string).collect(),
    }
}

/// Checks that run before a migration, on both backends: a query over the data as it is whose
/// rows (one text column each) name what would make the migration fail, and what to do.
pub(crate) const MIGRATION_CHECKS: &[(i64, &str, &str)] = &[(
    9,
    include_str!("../../migrations/checks/0009_unique_object_ids.sql"),
    "users share an Entra object id (azureactivedirectoryobjectid), which must name one user; \
     give each of these users its own (or none), then start again",
)];

/// The failure of a migration whose check found rows.
pub(crate) fn migration_check_failed(version: i64, found: &[String]) -> Option<StoreError> {
    let (_, _, what) = MIGRATION_CHECKS.iter().find(|(v, _, _)| *v == version)?;
    (!found.is_empty()).then(|| StoreError::Migration {
        version,
        message: format!("{what}: {}", found.join(", ")),
    })
}

/// One row of the change log (migration 14): a change to a row of a tracked table, in the
/// order of commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    pub seq: i64,
    pub objectid: Uuid,
    /// Dataverse's audit action (1 Create, 2 Update, 3 Delete, 4 Activate, 5 Deactivate,
    /// 13 Assign, 14 Share, 48 Modify Share, 49 Unshare).
    pub action: i64,
    /// Dataverse's audit operation (1 Create, 2 Update, 3 Delete).
    pub operation: i64,
}

impl LoggedChange {
    /// The audit operation of a delete.
    pub const DELETE: i64 = 3;
}

/// The changes committed after a position of the change log, and the position that follows
/// them. A position is the store's own text (SQLite: the last `seq` seen; PostgreSQL: a
/// snapshot, `xmin:xmax:xip,...`): every change not yet seen at a position is returned by
/// the next window from it, exactly once, whichever node committed it and however late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeWindow {
    pub changes: Vec<LoggedChange>,
    pub position: String,
}

/// One audit record: a change-log row with who made it and the row before and after (JSON
/// objects by column logical name, as the database wrote them).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub change: LoggedChange,
    pub entity: String,
    pub versionnumber: Option<i64>,
    pub userid: Option<Uuid>,
    pub callinguserid: Option<Uuid>,
    /// Unix seconds.
    pub createdon: i64,
    pub olddata: Option<serde_json::Value>,
    pub newdata: Option<serde_json::Value>,
    /// The columns whose auditing was off when the change was made (their values are not
    /// part of the record).
    pub unaudited: Vec<String>,
}

/// The change log's `unaudited` column (a comma-separated list) as read back.
pub(crate) fn unaudited_columns(text: Option<String>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// A change-log JSON column as read back (`olddata`, `newdata`).
pub(crate) fn change_data(text: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|_| StoreError::Unexpected("change-log value".into()))
    })
    .transpose()
}

/// Which audit records to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSelection {
    /// The history of one row, oldest first.
    Object(Uuid),
    /// One record by its number.
    Record(i64),
}

/// Whether `text` is a PostgreSQL snapshot as `pg_current_snapshot()::text` writes it.
pub(crate) fn is_snapshot_text(text: &str) -> bool {
    let mut parts = text.splitn(3, ':');
    let number = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(xmin), Some(xmax), Some(xip)) => {
            number(xmin) && number(xmax) && (xip.is_empty() || xip.split(',').all(number))
        }
        _ => false,
    }
}

/// Reads and writes, on the store itself or inside a [`Transaction`].
#[async_trait::async_trait]
pub trait Access: Send + Sync {
    /// Reads one row by primary id; `with_names` also fills the shadow name columns of
    /// lookups (the target rows' primary names).
    async fn get(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
        with_names: bool,
    ) -> Result<Option<Record>, StoreError>;

    /// Reads one row that a message is about to use for `purpose` (Write before an update,
    /// Delete before a delete, AppendTo for the target of a lookup): a store ignores the purpose
    /// and reads; the authorize layer checks that privilege on the row instead of Read.
    async fn get_for(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
        with_names: bool,
        purpose: crate::security::Privilege,
    ) -> Result<Option<Record>, StoreError> {
        let _ = purpose;
        self.get(entity, id, with_names).await
    }

    /// The rows a plan selects, in its order.
    async fn query(&self, query: Query) -> Result<Vec<Record>, StoreError>;

    /// The rows of a one-to-many join, in its order: each root row once per joined row (an
    /// outer join's root row without one comes once, with `None`).
    async fn query_join(&self, query: JoinQuery) -> Result<Vec<JoinedRow>, StoreError>;

    /// How many rows a plan's filter selects, counting at most `cap`.
    async fn count(&self, query: Query, cap: usize) -> Result<u64, StoreError>;

    /// The groups and aggregates of an aggregate plan: per group, its values then the
    /// aggregates.
    async fn aggregate(
        &self,
        plan: sql::AggregatePlan,
        context: sql::Context,
    ) -> Result<Vec<Vec<Value>>, StoreError>;

    /// Executes one write atomically. On the store, it is its own durable transaction: when
    /// this returns `Ok`, it is on disk. In a [`Transaction`], it is durable at commit.
    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError>;

    /// Executes `ops` one after the other, exactly as as many [`Access::write`]s would, and
    /// stops at the first failure: the outcomes of the writes made, then that failure (so its
    /// index in `ops` is the length minus one). A SQLite transaction runs them in one round
    /// trip to its writer thread (a bulk message's thousand rows are one job, not a thousand).
    async fn write_each(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, StoreError>> {
        write_one_by_one(self, ops).await
    }

    /// Writes `op` and, in the same transaction, `consequences`: the writes the platform makes
    /// because of `op` (a closed conversation's contexts deactivated), which the authorize
    /// layer does not check (it checks `op`). The consequences go first, so inside a
    /// transaction a failing one leaves `op` unwritten. The default, for a transaction, runs
    /// them one after the other; a store runs them as one [`Store::write_all`].
    async fn write_with(
        &self,
        op: WriteOp,
        consequences: Vec<WriteOp>,
    ) -> Result<WriteOutcome, StoreError> {
        for consequence in consequences {
            self.write(consequence).await?;
        }
        self.write(op).await
    }
}

/// [`Access::write_each`] as that many [`Access::write`]s of `access`, up to the first failure.
pub(crate) async fn write_one_by_one<A: Access + ?Sized>(
    access: &A,
    ops: Vec<WriteOp>,
) -> Vec<Result<WriteOutcome, StoreError>> {
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let outcome = access.write(op).await;
        let failed = outcome.is_err();
        outcomes.push(outcome);
        if failed {
            break;
        }
    }
    outcomes
}

/// The outcome of `op` in `write_all`'s outcomes of `consequences` then `op`.
pub(crate) async fn write_all_with(
    store: &dyn Store,
    op: WriteOp,
    mut consequences: Vec<WriteOp>,
) -> Result<WriteOutcome, StoreError> {
    consequences.push(op);
    store
        .write_all(consequences)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Unexpected("no outcome of a write".into()))
}

/// Several reads and writes that commit or roll back as one. Dropping it rolls back.
#[async_trait::async_trait]
pub trait Transaction: Access {
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
    async fn rollback(self: Box<Self>) -> Result<(), StoreError>;
}

/// A storage backend.
#[async_trait::async_trait]
pub trait Store: Access + 'static {
    /// Starts a transaction; its reads see its own writes.
    async fn begin(&self) -> Result<Box<dyn Transaction>, StoreError>;

    /// Executes several writes as one transaction: all of them, or none and the first failing
    /// write's error. The default runs them in a [`Transaction`]; a backend may do better (SQLite
    /// lets them share a group commit with other writers instead of holding the writer).
    async fn write_all(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError> {
        let tx = self.begin().await?;
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            match tx.write(op).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    let _ = tx.rollback().await;
                    return Err(e);
                }
            }
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Reads a store-wide setting (the seeded administrator, ...).
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Writes a store-wide setting only if it is not set yet; returns the value that is set.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Writes a store-wide setting, replacing its value (the admin token's hash on rotation).
    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// The security epoch: a counter that every committed write to the tables a principal is
    /// built from has incremented (triggers of migration 4), so an unchanged epoch means an
    /// unchanged principal, whichever node wrote.
    async fn security_epoch(&self) -> Result<i64, StoreError>;

    /// The changes of `entity`'s rows committed after `since` (none and the current
    /// position when `since` is `None`), in commit order. A position this store cannot have
    /// written is [`StoreError::BadPosition`].
    async fn changes_since(
        &self,
        entity: &str,
        since: Option<&str>,
    ) -> Result<ChangeWindow, StoreError>;

    /// Deletes the change-log rows created before `before` (Unix seconds); returns how many.
    async fn purge_changes(&self, before: i64) -> Result<u64, StoreError>;

    /// Audit records of the change log.
    async fn audit_records(
        &self,
        selection: AuditSelection,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The audit and change-tracking settings.
    async fn tracking_settings(&self) -> Result<TrackingSettings, StoreError>;

    /// Sets a watched table's change tracking and auditing; [`StoreError::UnknownTable`] for a
    /// table the change log does not watch.
    async fn set_table_tracking(&self, table: &TableTracking) -> Result<(), StoreError>;

    /// Sets one column's auditing.
    async fn set_column_audit(&self, column: &ColumnAudit) -> Result<(), StoreError>;

    /// Every alternate key, by table and then name.
    async fn entity_keys(&self) -> Result<Vec<StoredKey>, StoreError>;

    /// Stores `key` and creates its unique index in one transaction: rows that already repeat
    /// the key's values fail it with [`StoreError::DuplicateKey`], a key of that name with
    /// [`StoreError::Duplicate`], and nothing is left behind.
    async fn create_entity_key(&self, key: &StoredKey) -> Result<(), StoreError>;

    /// Drops the key and its index; `false` when there was no such key.
    async fn delete_entity_key(&self, entity: &str, logical_name: &str)
        -> Result<bool, StoreError>;
}

/// Contract checks both backends run.
#[cfg(test)]
pub(crate) mod contract {
    use super::*;

    fn unit(entity: &Arc<Entity>, name: &str) -> (Uuid, Record) {
        let mut record = Record::empty(Arc::clone(entity));
        let id = Uuid::new_v4();
        record.set("businessunitid", Value::Guid(id));
        // Under some parent: the schema allows one root only (migration 9).
        record.set("parentbusinessunitid", Value::Guid(Uuid::new_v4()));
        record.set("name", Value::Text(name.into()));
        (id, record)
    }

    /// `write_all` writes every op or none, also while other writers run.
    pub(crate) async fn write_all_is_all_or_nothing(store: Arc<dyn Store>, entity: &Arc<Entity>) {
        let (a, first) = unit(entity, "a");
        let (b, second) = unit(entity, "b");
        let outcomes = store
            .write_all(vec![
                WriteOp::Insert(first.clone()),
                WriteOp::Insert(second),
            ])
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 2);
        let version_a = store
            .get(entity, a, false)
            .await
            .unwrap()
            .unwrap()
            .version();
        assert!(store.get(entity, b, false).await.unwrap().is_some());

        // A duplicate key as the last op: the first is not written either.
        let (c, third) = unit(entity, "c");
        let duplicate = store
            .write_all(vec![WriteOp::Insert(third), WriteOp::Insert(first)])
            .await;
        assert!(
            matches!(duplicate, Err(StoreError::Duplicate)),
            "{duplicate:?}"
        );
        assert!(store.get(entity, c, false).await.unwrap().is_none());

        // A lost compare-and-set: nothing of the group is written.
        let (d, fourth) = unit(entity, "d");
        let name = entity.position("name").unwrap();
        let stale = store
            .write_all(vec![
                WriteOp::Insert(fourth),
                WriteOp::Update {
                    entity: Arc::clone(entity),
                    id: a,
                    changes: vec![(name, Value::Text("changed".into()))],
                    expect: Expect::Version(version_a.unwrap() - 1),
                },
            ])
            .await;
        assert!(
            matches!(stale, Err(StoreError::VersionMismatch { .. })),
            "{stale:?}"
        );
        assert!(store.get(entity, d, false).await.unwrap().is_none());
        let unchanged = store.get(entity, a, false).await.unwrap().unwrap();
        assert_eq!(unchanged.get("name"), &Value::Text("a".into()));

        // Groups racing with single writes, half of them claiming one shared key: exactly one
        // of those wins, and each group is whole or absent.
        let (shared, claim) = unit(entity, "shared");
        let mut tasks = Vec::new();
        for k in 0..16 {
            let store = Arc::clone(&store);
            let entity = Arc::clone(entity);
            let claim = claim.clone();
            tasks.push(tokio::spawn(async move {
                let (own, record) = unit(&entity, &format!("own {k}"));
                let mut ops = vec![WriteOp::Insert(record)];
                if k % 2 == 0 {
                    ops.push(WriteOp::Insert(claim));
                }
                let (single, alone) = unit(&entity, &format!("single {k}"));
                let (group, one) =
                    tokio::join!(store.write_all(ops), store.write(WriteOp::Insert(alone)));
                one.unwrap();
                let own_written = store.get(&entity, own, false).await.unwrap().is_some();
                let single_written = store.get(&entity, single, false).await.unwrap().is_some();
                (k, group.is_ok(), own_written, single_written)
            }));
        }
        let mut winners = 0;
        for task in tasks {
            let (k, ok, own_written, single_written) = task.await.unwrap();
            assert!(single_written);
            assert_eq!(ok, own_written, "group {k} is whole or absent");
            if k % 2 == 0 && ok {
                winners += 1;
            }
            if k % 2 == 1 {
                assert!(ok, "group {k} claims nothing shared");
            }
        }
        assert_eq!(winners, 1);
        assert!(store.get(entity, shared, false).await.unwrap().is_some());
    }
}
