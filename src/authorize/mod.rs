//! The authorize layer: every read and write of a request passes through a [`Guard`], an
//! [`Access`] that wraps the store (or a `$batch` change set's transaction) for one
//! [`Principal`], in the manner of lldap's access-controlled backend handler.
//!
//! The guard asks the pure decisions of [`crate::security`] and gathers their facts from the
//! rows it reads:
//! - `get` (Retrieve, `$expand`, navigation, IsValidStateTransition): Read on the row;
//!   `get_for` checks the message's own privilege instead (Write before an update, Delete before
//!   a delete, AppendTo on the target of a lookup), so a message never learns about a row it may
//!   not use;
//! - `query`, `count`, `aggregate` (RetrieveMultiple, `$count`, `@odata.count`, `$apply`,
//!   FetchXML): the Read privilege, then the caller's row scope added to the plan, so the SQL
//!   itself selects only readable rows;
//! - `write`: Insert needs Create at a depth reaching the new owner (and Assign for another
//!   owner), Update needs Write, plus Assign when the owner changes (an owner-only update needs
//!   just Assign), Delete needs Delete; a lookup set by an insert or an update needs Append on
//!   the row and AppendTo on its target.
//!
//! **Architecture invariant:** handlers never check privileges; they receive a guarded
//! `Access`, and no path reaches the store around it except authentication and the messages of
//! the security model itself (which check their own privilege, Share, through the guard).

pub mod directory;
mod identity;
pub mod messages;
pub mod system;

use std::sync::Arc;

use uuid::Uuid;

pub use directory::{Directory, Principal, Relationship, UserFacts};
pub use messages::{MessageError, PrincipalRef, ShareChange};
pub use system::{ChangeSet, SystemAccess};

use crate::metadata::system::*;
use crate::metadata::transcripts::parent_of;
use crate::metadata::{AttributeType, Entity};
use crate::security::role::{is_builtin_role_id, is_system_administrator_role};
use crate::security::{
    check, check_create, check_privilege, read_scope, AccessRights, Denied, Depth, Privilege,
    RecordFacts, RowScope,
};
use crate::store::sql::{self, AggregatePlan, Scope, ShareScope};
use crate::store::{
    Access, Expect, JoinQuery, JoinedRow, Query, Record, Store, StoreError, Value, WriteOp,
    WriteOutcome,
};

/// The setting that records how far `DeleteAuditData` deleted the change log.
pub const CHANGE_LOG_FLOOR: &str = "change_log_deleted_before";

/// What [`Guard::schema_store`] names for an alternate key's creation or removal.
const KEYS: &str = "create or delete alternate keys";

/// How often a delete is checked again when the row changed between its check and its write.
const MAX_ATTEMPTS: usize = 8;

/// What a decision knows of a row: its owner and its owner's business unit. A business-owned
/// row (a user, a team, a role) is its own owner, in the unit it belongs to.
pub fn facts(record: &Record) -> RecordFacts {
    let entity = &record.entity;
    let id = record.id().unwrap_or_default();
    if entity.position(OWNER_ID).is_some() {
        return RecordFacts {
            id,
            owner_id: record.get(OWNER_ID).as_guid().unwrap_or_default(),
            owner_is_team: record.get(OWNER_ID_TYPE).as_text() == Some(TEAM),
            owning_business_unit: record
                .get(OWNING_BUSINESS_UNIT)
                .as_guid()
                .unwrap_or_default(),
        };
    }
    let unit = if entity.logical_name == BUSINESS_UNIT {
        id
    } else {
        record.get(BUSINESS_UNIT_ID).as_guid().unwrap_or_default()
    };
    RecordFacts {
        id,
        owner_id: id,
        owner_is_team: entity.logical_name == TEAM,
        owning_business_unit: unit,
    }
}

/// The columns [`facts`] reads, as positions: (owner, owning business unit).
fn ownership_columns(entity: &Entity) -> Option<(usize, usize)> {
    if let (Some(owner), Some(unit)) = (
        entity.position(OWNER_ID),
        entity.position(OWNING_BUSINESS_UNIT),
    ) {
        return Some((owner, unit));
    }
    let id = entity.primary_id_position();
    if entity.logical_name == BUSINESS_UNIT {
        return Some((id, id));
    }
    entity.position(BUSINESS_UNIT_ID).map(|unit| (id, unit))
}

fn denied(d: Denied) -> StoreError {
    StoreError::Denied(Box::new(d))
}

/// The store as one principal may use it. Its fields are private and [`Guard::new`] is its
/// only constructor, which only [`crate::execute::Service::guard`] and [`ChangeSet::guard`]
/// call: a handler gets a guard, never what it wraps.
pub struct Guard<'a> {
    inner: &'a dyn Access,
    /// The store `inner` is, when it is not a transaction: a write that must change two rows
    /// at once (a role's privilege and the role's version) starts its own transaction here.
    store: Option<&'a dyn Store>,
    directory: &'a Directory,
    principal: &'a Principal,
}

impl<'a> Guard<'a> {
    /// The one constructor: `inner` (the store, or a change set's transaction) as `principal`
    /// may use it.
    pub(crate) fn new(
        inner: &'a dyn Access,
        store: Option<&'a dyn Store>,
        directory: &'a Directory,
        principal: &'a Principal,
    ) -> Guard<'a> {
        Guard {
            inner,
            store,
            directory,
            principal,
        }
    }
}

impl Guard<'_> {
    /// A transaction of its own for a message that writes several rows as one (the bulk
    /// messages, a deep insert), when this guard is on the store; `None` inside a change set,
    /// whose transaction already holds them. Use it through [`Guard::scoped`].
    pub async fn own_transaction(&self) -> Result<Option<ChangeSet>, StoreError> {
        match self.store {
            Some(store) => Ok(Some(ChangeSet::begin(store).await?)),
            None => Ok(None),
        }
    }

    /// Whether this guard is over a `$batch` change set's transaction (not the store).
    pub fn in_change_set(&self) -> bool {
        self.store.is_none()
    }

    /// `change_set` (when there is one) as this guard's principal may use it; else this guard.
    pub fn scoped<'b>(&'b self, change_set: Option<&'b ChangeSet>) -> Guard<'b> {
        match change_set {
            Some(change_set) => change_set.guard(self.directory, self.principal),
            None => Guard::new(self.inner, self.store, self.directory, self.principal),
        }
    }

    fn ctx(&self) -> &crate::security::SecurityContext {
        &self.principal.context
    }

    /// Defines an alternate key (its unique index with it): a System Administrator's change,
    /// made on the store itself, never inside a change set.
    pub async fn create_entity_key(&self, key: &crate::store::StoredKey) -> Result<(), StoreError> {
        self.schema_store(KEYS)?.create_entity_key(key).await
    }

    /// Removes an alternate key and its index (`false`: there was none); as for creation.
    pub async fn delete_entity_key(&self, entity: &str, name: &str) -> Result<bool, StoreError> {
        self.schema_store(KEYS)?
            .delete_entity_key(entity, name)
            .await
    }

    /// The alternate keys as stored (anyone may read the metadata); `None` inside a change
    /// set, where they cannot change.
    pub async fn entity_keys(&self) -> Result<Option<Vec<crate::store::StoredKey>>, StoreError> {
        match self.store {
            Some(store) => store.entity_keys().await.map(Some),
            None => Ok(None),
        }
    }

    /// The change log of `entity` after `since` (see [`Store::changes_since`]): the ids of
    /// changed rows only, for a caller holding Read on the table; the rows themselves are read
    /// through this guard's row scope. On the store, not inside a change set.
    pub async fn changes_since(
        &self,
        entity: &Entity,
        since: Option<&str>,
    ) -> Result<crate::store::ChangeWindow, StoreError> {
        self.check_privilege(entity, Privilege::Read)?;
        let store = self.store.ok_or_else(|| {
            StoreError::Database("changes cannot be tracked inside a change set".into())
        })?;
        store.changes_since(&entity.logical_name, since).await
    }

    /// Audit records of the change log, for a caller allowed to read the audit history
    /// (`prvReadAuditSummary`: the System Administrator role holds it; no other role does).
    pub async fn audit_records(
        &self,
        selection: crate::store::AuditSelection,
    ) -> Result<Vec<crate::store::AuditRecord>, StoreError> {
        if !self.ctx().is_system_administrator {
            return Err(denied(Denied::MissingAuditPrivilege {
                user_id: self.ctx().user_id,
            }));
        }
        let store = self.store.ok_or_else(|| {
            StoreError::Database("the audit history is not read inside a change set".into())
        })?;
        store.audit_records(selection).await
    }

    /// Deletes the change log before `end` (Unix seconds): the audit history and what delta
    /// tokens issued before `end` would need, so those are refused as expired from now on
    /// ([`CHANGE_LOG_FLOOR`]). A System Administrator's, on the store.
    pub async fn delete_audit_data(&self, end: i64) -> Result<u64, StoreError> {
        let store = self.schema_store("delete audit data")?;
        // Tokens issued up to now (or up to `end`, when earlier) may need what is deleted.
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let floor = end.min(now);
        if floor > self.change_log_floor().await? {
            store
                .set_setting(CHANGE_LOG_FLOOR, &floor.to_string())
                .await?;
        }
        store.purge_changes(end).await
    }

    /// The Unix second before which the change log was deleted by `DeleteAuditData` (0: never).
    pub async fn change_log_floor(&self) -> Result<i64, StoreError> {
        let Some(store) = self.store else {
            return Ok(0);
        };
        Ok(store
            .setting(CHANGE_LOG_FLOOR)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// The store, for a schema or settings change only a System Administrator may make
    /// (`change` says which), never inside a change set.
    fn schema_store(&self, change: &'static str) -> Result<&dyn Store, StoreError> {
        if !self.ctx().is_system_administrator {
            return Err(denied(Denied::NotSystemAdministrator {
                user_id: self.ctx().user_id,
                change,
            }));
        }
        self.store
            .ok_or_else(|| StoreError::Database(format!("cannot {change} inside a change set")))
    }

    /// The audit and change-tracking settings as stored (anyone may read the metadata);
    /// `None` inside a change set, where they cannot change.
    pub async fn tracking_settings(
        &self,
    ) -> Result<Option<crate::store::TrackingSettings>, StoreError> {
        match self.store {
            Some(store) => store.tracking_settings().await.map(Some),
            None => Ok(None),
        }
    }

    /// Sets a watched table's `ChangeTrackingEnabled` and `IsAuditEnabled`: a System
    /// Administrator's change, on the store.
    pub async fn set_table_tracking(
        &self,
        table: &crate::store::TableTracking,
    ) -> Result<(), StoreError> {
        self.schema_store("change a table's auditing or change tracking")?
            .set_table_tracking(table)
            .await
    }

    /// Sets a column's `IsAuditEnabled`, as [`Guard::set_table_tracking`].
    pub async fn set_column_audit(
        &self,
        column: &crate::store::ColumnAudit,
    ) -> Result<(), StoreError> {
        self.schema_store("change a column's auditing")?
            .set_column_audit(column)
            .await
    }

    /// `privilege` on `entity` at any depth (the table-level check a message that selects its
    /// rows later makes first: BulkDelete needs Delete on every table of its QuerySet).
    pub fn check_privilege(&self, entity: &Entity, privilege: Privilege) -> Result<(), StoreError> {
        check_privilege(self.ctx(), &entity.logical_name, privilege).map_err(denied)
    }

    /// `privilege` on a stored row: the roles' depths, then the row's shares.
    pub async fn check_row(&self, privilege: Privilege, record: &Record) -> Result<(), StoreError> {
        let entity = &record.entity.logical_name;
        let facts = facts(record);
        let tree = &self.principal.tree;
        match check(self.ctx(), tree, entity, privilege, &facts, &[]) {
            Ok(()) => Ok(()),
            Err(Denied::NoAccess { .. }) => {
                let shares = self.directory.shares(self.inner, facts.id).await?;
                check(self.ctx(), tree, entity, privilege, &facts, &shares).map_err(denied)
            }
            Err(e) => Err(denied(e)),
        }
    }

    /// The row scope of every table `filter` reaches through a relationship: a related row the
    /// caller may not read is as absent as one that does not exist, and so is every row of a
    /// table it holds no Read privilege on (as an expanded or linked row is).
    fn related_scopes(
        &self,
        filter: Option<&crate::query::Expr>,
    ) -> Result<Vec<(String, Option<Scope>)>, StoreError> {
        filter
            .map(|f| f.related_tables())
            .unwrap_or_default()
            .iter()
            .map(|table| Ok((table.logical_name.clone(), self.related_scope(table)?)))
            .collect()
    }

    /// Adds to `related` the row scope of a one-to-many join's table and of every table its
    /// filter reaches, each table once.
    fn add_join_scopes(
        &self,
        related: &mut Vec<(String, Option<Scope>)>,
        join: &crate::query::ChildJoin,
    ) -> Result<(), StoreError> {
        let child = &join.child.0;
        let mut reached = vec![(child.logical_name.clone(), self.related_scope(child)?)];
        reached.extend(self.related_scopes(join.filter.as_ref())?);
        for (table, scope) in reached {
            if !related.iter().any(|(name, _)| *name == table) {
                related.push((table, scope));
            }
        }
        Ok(())
    }

    /// The row scope of a table reached through a relationship: none of its rows without the
    /// Read privilege on it.
    fn related_scope(&self, table: &Entity) -> Result<Option<Scope>, StoreError> {
        if check_privilege(self.ctx(), &table.logical_name, Privilege::Read).is_err() {
            return Ok(Some(Scope::nothing(table)));
        }
        self.scope(table)
    }

    /// `filter` of a read of a parented table (`metadata::transcripts::PARENTED`) with the
    /// path to its parent added: the parent exists and the caller may read it (its scope is
    /// one of the plan's related scopes), recursively up to a table with a scope of its own.
    fn with_parent(
        &self,
        entity: &Entity,
        filter: Option<crate::query::Expr>,
    ) -> Result<Option<crate::query::Expr>, StoreError> {
        let Some(path) = self.parent_path(entity)? else {
            return Ok(filter);
        };
        Ok(Some(match filter {
            None => path,
            Some(crate::query::Expr::And(mut operands)) => {
                operands.push(path);
                crate::query::Expr::And(operands)
            }
            Some(other) => crate::query::Expr::And(vec![other, path]),
        }))
    }

    fn parent_path(&self, entity: &Entity) -> Result<Option<crate::query::Expr>, StoreError> {
        use crate::query::ast::{PropertyRef, Table};
        use crate::query::Expr;
        let Some((lookup, parent)) = parent_of(&entity.logical_name) else {
            return Ok(None);
        };
        let parent = self.directory.table(parent)?;
        let index = entity
            .position(lookup)
            .ok_or_else(|| StoreError::UnknownTable(format!("{}.{lookup}", entity.logical_name)))?;
        let inner = match self.parent_path(parent)? {
            Some(path) => path,
            None => {
                let id = parent.primary_id_position();
                Expr::NotNull(PropertyRef {
                    index: id,
                    name: format!("{lookup}/{}", parent.attributes[id].logical_name),
                })
            }
        };
        Ok(Some(Expr::Related {
            lookup: PropertyRef {
                index,
                name: lookup.to_owned(),
            },
            target: Table(Arc::clone(parent)),
            inner: Box::new(inner),
        }))
    }

    /// The row scope of a read of `entity`, after the Read privilege check.
    fn scope(&self, entity: &Entity) -> Result<Option<Scope>, StoreError> {
        check_privilege(self.ctx(), &entity.logical_name, Privilege::Read).map_err(denied)?;
        if parent_of(&entity.logical_name).is_some() {
            // No scope of its own: [`Guard::with_parent`] keeps the rows of readable parents
            // (and a path that reaches it from its parent or its child starts from a row the
            // caller may read).
            return Ok(None);
        }
        let scope = read_scope(self.ctx(), &self.principal.tree, &entity.logical_name);
        let Some((owner, business_unit)) = ownership_columns(entity) else {
            return Ok(match scope {
                RowScope::All => None,
                _ => Some(Scope::nothing(entity)),
            });
        };
        Ok(match scope {
            RowScope::All => None,
            RowScope::Nothing => Some(Scope::nothing(entity)),
            RowScope::Predicate {
                owner_in,
                business_units_in,
                shared_with,
            } => Some(Scope {
                owner,
                owner_in,
                business_unit,
                business_units_in,
                shares: Some(ShareScope {
                    table: PRINCIPAL_OBJECT_ACCESS.to_string(),
                    object: OBJECT_ID.to_string(),
                    principal: PRINCIPAL_ID.to_string(),
                    mask: ACCESS_RIGHTS_MASK.to_string(),
                    principals: shared_with,
                    right: i64::from(AccessRights::READ.bits()),
                }),
            }),
        })
    }
}

/// The client columns of an entity (what a payload can set), as opposed to server columns.
fn is_client_column(entity: &Entity, position: usize, for_create: bool) -> bool {
    let attribute = &entity.attributes[position];
    if for_create {
        attribute.valid_for_create
    } else {
        attribute.valid_for_update
    }
}

#[async_trait::async_trait]
impl Access for Guard<'_> {
    async fn get(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
        with_names: bool,
    ) -> Result<Option<Record>, StoreError> {
        self.get_for(entity, id, with_names, Privilege::Read).await
    }

    async fn get_for(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
        with_names: bool,
        purpose: Privilege,
    ) -> Result<Option<Record>, StoreError> {
        check_privilege(self.ctx(), &entity.logical_name, purpose).map_err(denied)?;
        let Some(record) = self.inner.get(entity, id, with_names).await? else {
            return Ok(None);
        };
        if let Some((lookup, parent)) = parent_of(&entity.logical_name) {
            // Readable exactly when its parent is: a row whose parent the caller may not
            // read is refused as the parent is.
            let parent_table = self.directory.table(parent)?;
            let Some(parent_id) = record.get(lookup).as_guid() else {
                return Ok(None);
            };
            return match Box::pin(self.get_for(parent_table, parent_id, false, Privilege::Read))
                .await?
            {
                Some(_) => Ok(Some(record)),
                None => Ok(None),
            };
        }
        if self.ctx().depth(&entity.logical_name, purpose) < Depth::Global {
            self.check_row(purpose, &record).await?;
        }
        Ok(Some(record))
    }

    async fn query(&self, mut query: Query) -> Result<Vec<Record>, StoreError> {
        query.plan.scope = self.scope(&query.plan.entity)?;
        query.plan.filter = self.with_parent(&query.plan.entity, query.plan.filter.take())?;
        query.plan.related = Some(self.related_scopes(query.plan.filter.as_ref())?);
        self.inner.query(query).await
    }

    async fn query_join(&self, mut query: JoinQuery) -> Result<Vec<JoinedRow>, StoreError> {
        let plan = &mut query.plan;
        plan.root.scope = self.scope(&plan.root.entity)?;
        let mut related = self.related_scopes(plan.root.filter.as_ref())?;
        self.add_join_scopes(&mut related, &plan.join)?;
        plan.root.related = Some(related);
        self.inner.query_join(query).await
    }

    async fn count(&self, mut query: Query, cap: usize) -> Result<u64, StoreError> {
        query.plan.scope = self.scope(&query.plan.entity)?;
        query.plan.filter = self.with_parent(&query.plan.entity, query.plan.filter.take())?;
        query.plan.related = Some(self.related_scopes(query.plan.filter.as_ref())?);
        self.inner.count(query, cap).await
    }

    async fn aggregate(
        &self,
        mut plan: AggregatePlan,
        context: sql::Context,
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        plan.scope = self.scope(&plan.entity)?;
        plan.filter = self.with_parent(&plan.entity, plan.filter.take())?;
        let mut related = self.related_scopes(plan.filter.as_ref())?;
        for hop in plan.through.iter().flatten() {
            let table = &hop.target.0;
            if !related.iter().any(|(name, _)| *name == table.logical_name) {
                related.push((table.logical_name.clone(), self.related_scope(table)?));
            }
        }
        if let Some(join) = &plan.join {
            self.add_join_scopes(&mut related, join)?;
        }
        plan.related = Some(related);
        self.inner.aggregate(plan, context).await
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        self.checked_write(op, Vec::new()).await
    }

    /// Each op checked as [`Access::write`] checks it. Plain inserts
    /// ([`Guard::inserts_checkable_first`]) are all checked first and then written in one
    /// `write_each` of the store (one round trip on SQLite); a refused one is preceded by the
    /// writes before it, as one by one. Anything else is written one by one.
    async fn write_each(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, StoreError>> {
        if !Self::inserts_checkable_first(&ops) {
            return crate::store::write_one_by_one(self, ops).await;
        }
        let mut refused = None;
        let mut checked = Vec::with_capacity(ops.len());
        for op in ops {
            if let WriteOp::Insert(record) = &op {
                if let Err(e) = self.check_insert(record).await {
                    refused = Some(e);
                    break;
                }
            }
            checked.push(op);
        }
        let mut outcomes = self.inner.write_each(checked).await;
        if let Some(e) = refused {
            if outcomes.iter().all(Result::is_ok) {
                outcomes.push(Err(e));
            }
        }
        outcomes
    }

    /// `op` checked as [`Access::write`] checks it; `consequences` (the platform's own writes
    /// that `op` causes) are not checked, and commit with it. Only an update carries them.
    async fn write_with(
        &self,
        op: WriteOp,
        consequences: Vec<WriteOp>,
    ) -> Result<WriteOutcome, StoreError> {
        if !consequences.is_empty() && !matches!(op, WriteOp::Update { .. }) {
            return Err(StoreError::Unexpected(
                "only an update has consequences".into(),
            ));
        }
        self.checked_write(op, consequences).await
    }
}

impl Guard<'_> {
    /// What an insert needs: the Create privilege for the new row, and Append with AppendTo on
    /// each lookup it sets.
    async fn check_insert(&self, record: &Record) -> Result<(), StoreError> {
        let entity = &record.entity;
        check_create(
            self.ctx(),
            &self.principal.tree,
            &entity.logical_name,
            &facts(record),
        )
        .map_err(denied)?;
        let lookups: Vec<usize> = (0..entity.attributes.len())
            .filter(|&p| is_client_column(entity, p, true))
            .collect();
        self.check_new_lookups(record, &lookups).await
    }

    /// Whether `ops` may be checked first and then written in one go with the same outcome as
    /// one by one: inserts only, of tables whose insert has no consequence of the guard's own
    /// (business units, roles, role privileges), none of them looking up a row that an earlier
    /// one creates (its AppendTo check reads that row).
    fn inserts_checkable_first(ops: &[WriteOp]) -> bool {
        let mut created = std::collections::HashSet::new();
        for op in ops {
            let WriteOp::Insert(record) = op else {
                return false;
            };
            let entity = &record.entity;
            if [BUSINESS_UNIT, ROLE, ROLE_PRIVILEGES].contains(&entity.logical_name.as_str()) {
                return false;
            }
            let looks_up_earlier = entity.attributes.iter().enumerate().any(|(p, a)| {
                a.attribute_type == AttributeType::Lookup
                    && record.values[p]
                        .as_guid()
                        .is_some_and(|id| created.contains(&id))
            });
            if looks_up_earlier {
                return false;
            }
            created.extend(record.id());
        }
        true
    }

    async fn checked_write(
        &self,
        op: WriteOp,
        consequences: Vec<WriteOp>,
    ) -> Result<WriteOutcome, StoreError> {
        match &op {
            WriteOp::Insert(record) => {
                let entity = &record.entity;
                self.check_insert(record).await?;
                let id = record.id();
                let is_unit = entity.logical_name == BUSINESS_UNIT;
                if entity.logical_name == ROLE {
                    refuse_builtin_role_id(record)?;
                }
                if entity.logical_name == ROLE_PRIVILEGES {
                    let roles: Vec<Uuid> = record.get(ROLE_ID).as_guid().into_iter().collect();
                    self.refuse_system_administrator_roles(&roles).await?;
                    return self.write_role_privilege(op, &roles).await;
                }
                let outcome = self.inner.write(op).await?;
                if let (true, Some(id)) = (is_unit, id) {
                    self.directory.seed_roles(self.inner, id).await?;
                }
                Ok(outcome)
            }
            WriteOp::Update {
                entity,
                id,
                changes,
                ..
            } => {
                let Some(current) = self.inner.get(entity, *id, false).await? else {
                    return self.inner.write(op).await;
                };
                refuse_system_administrator_role(&current, false)?;
                let owner = entity.position(OWNER_ID);
                let owner_changed = owner.is_some_and(|p| {
                    changes
                        .iter()
                        .any(|(c, v)| *c == p && *v != current.values[p])
                });
                let writes_columns = changes
                    .iter()
                    .any(|(p, _)| Some(*p) != owner && is_client_column(entity, *p, false));
                if owner_changed {
                    self.check_row(Privilege::Assign, &current).await?;
                }
                if writes_columns || !owner_changed {
                    self.check_row(Privilege::Write, &current).await?;
                }
                let mut next = current.clone();
                let mut set_lookups = Vec::new();
                for (p, v) in changes {
                    if *v != current.values[*p] && is_client_column(entity, *p, false) {
                        set_lookups.push(*p);
                    }
                    next.values[*p] = v.clone();
                }
                self.check_stored_lookups(&current, &next, &set_lookups)
                    .await?;
                if entity.logical_name == ROLE_PRIVILEGES {
                    let mut roles: Vec<Uuid> = [&current, &next]
                        .iter()
                        .filter_map(|r| r.get(ROLE_ID).as_guid())
                        .collect();
                    roles.dedup();
                    self.refuse_system_administrator_roles(&roles).await?;
                    return self.write_role_privilege(op, &roles).await;
                }
                if consequences.is_empty() {
                    self.inner.write(op).await
                } else {
                    self.inner.write_with(op, consequences).await
                }
            }
            WriteOp::Delete { entity, id, expect } => {
                check_privilege(self.ctx(), &entity.logical_name, Privilege::Delete)
                    .map_err(denied)?;
                // The row checked is the row deleted: the delete is compare-and-set on the
                // version checked, and a row changed in between (reassigned, say) is checked
                // again.
                for _ in 0..MAX_ATTEMPTS {
                    let Some(current) = self.inner.get(entity, *id, false).await? else {
                        return self.inner.write(op).await;
                    };
                    self.check_row(Privilege::Delete, &current).await?;
                    refuse_system_administrator_role(&current, true)?;
                    let checked = match expect {
                        Expect::Any => Expect::Version(current.version().unwrap_or_default()),
                        given => *given,
                    };
                    let attempt = WriteOp::Delete {
                        entity: Arc::clone(entity),
                        id: *id,
                        expect: checked,
                    };
                    let result = if entity.logical_name == ROLE_PRIVILEGES {
                        let roles: Vec<Uuid> = current.get(ROLE_ID).as_guid().into_iter().collect();
                        self.refuse_system_administrator_roles(&roles).await?;
                        self.write_role_privilege(attempt, &roles).await
                    } else {
                        self.inner.write(attempt).await
                    };
                    match result {
                        Err(StoreError::VersionMismatch { .. }) if *expect == Expect::Any => {
                            continue
                        }
                        // The record's shares go with it (in the same transaction inside a
                        // change set).
                        Ok(outcome) => {
                            self.directory.remove_shares(self.inner, *id).await?;
                            return Ok(outcome);
                        }
                        other => return other,
                    }
                }
                Err(StoreError::VersionMismatch {
                    expected: 0,
                    actual: 0,
                })
            }
        }
    }
}

/// A stored role row that is a System Administrator role: no client writes it (`delete`: the
/// write deletes the role itself).
fn refuse_system_administrator_role(current: &Record, delete: bool) -> Result<(), StoreError> {
    if current.entity.logical_name != ROLE {
        return Ok(());
    }
    match (current.id(), current.get(BUSINESS_UNIT_ID).as_guid()) {
        (Some(id), Some(unit)) if is_system_administrator_role(id, unit) => {
            Err(denied(Denied::SystemAdministratorRoleReadOnly {
                role_id: id,
                delete,
            }))
        }
        _ => Ok(()),
    }
}

/// A new role under the id a built-in role of its unit has (or will have once seeded).
fn refuse_builtin_role_id(record: &Record) -> Result<(), StoreError> {
    match (record.id(), record.get(BUSINESS_UNIT_ID).as_guid()) {
        (Some(id), Some(unit)) if is_builtin_role_id(id, unit) => Err(StoreError::Duplicate),
        _ => Ok(()),
    }
}

impl Guard<'_> {
    /// Refuses a write to the privileges of a System Administrator role.
    async fn refuse_system_administrator_roles(&self, roles: &[Uuid]) -> Result<(), StoreError> {
        let table = self.directory.table(ROLE)?;
        for &role in roles {
            if let Some(row) = self.inner.get(table, role, false).await? {
                refuse_system_administrator_role(&row, false)?;
            }
        }
        Ok(())
    }

    /// A write to a role's privileges, with the role's version bumped in the same transaction:
    /// the version is what every node's role cache checks ([`Directory::roles`]).
    async fn write_role_privilege(
        &self,
        op: WriteOp,
        roles: &[Uuid],
    ) -> Result<WriteOutcome, StoreError> {
        match self.store {
            Some(store) => {
                let transaction = store.begin().await?;
                let outcome = transaction.write(op).await?;
                self.directory.touch_roles(&*transaction, roles).await?;
                transaction.commit().await?;
                Ok(outcome)
            }
            None => {
                let outcome = self.inner.write(op).await?;
                self.directory.touch_roles(self.inner, roles).await?;
                Ok(outcome)
            }
        }
    }

    /// Lookups of a row being created: Append on it (by its intended owner, as Create), and
    /// AppendTo on each target.
    async fn check_new_lookups(
        &self,
        record: &Record,
        positions: &[usize],
    ) -> Result<(), StoreError> {
        let mut appended = false;
        for &position in positions {
            let attribute = &record.entity.attributes[position];
            if attribute.attribute_type != AttributeType::Lookup {
                continue;
            }
            let Some(target_id) = record.values[position].as_guid() else {
                continue;
            };
            if !appended {
                check(
                    self.ctx(),
                    &self.principal.tree,
                    &record.entity.logical_name,
                    Privilege::Append,
                    &facts(record),
                    &[],
                )
                .map_err(denied)?;
                appended = true;
            }
            self.check_target(record, position, target_id).await?;
        }
        Ok(())
    }

    /// Lookups an update changes: Append on the stored row, and AppendTo on each new target.
    async fn check_stored_lookups(
        &self,
        current: &Record,
        next: &Record,
        positions: &[usize],
    ) -> Result<(), StoreError> {
        let mut appended = false;
        for &position in positions {
            let attribute = &next.entity.attributes[position];
            if attribute.attribute_type != AttributeType::Lookup {
                continue;
            }
            let Some(target_id) = next.values[position].as_guid() else {
                continue;
            };
            if !appended {
                self.check_row(Privilege::Append, current).await?;
                appended = true;
            }
            self.check_target(next, position, target_id).await?;
        }
        Ok(())
    }

    async fn check_target(
        &self,
        record: &Record,
        position: usize,
        target_id: Uuid,
    ) -> Result<(), StoreError> {
        let attribute = &record.entity.attributes[position];
        let Some(target_name) = crate::serialize::lookup_target(record, attribute) else {
            return Ok(());
        };
        let target = self.directory.table(&target_name)?;
        check_privilege(self.ctx(), &target_name, Privilege::AppendTo).map_err(denied)?;
        if let Some(target_record) = self.inner.get(target, target_id, false).await? {
            if self.ctx().depth(&target_name, Privilege::AppendTo) < Depth::Global {
                self.check_row(Privilege::AppendTo, &target_record).await?;
            }
        }
        Ok(())
    }
}
