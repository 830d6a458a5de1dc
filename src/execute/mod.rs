//! The messages: Create, Retrieve, Update (with upsert and SetState), Delete, the reads
//! ([`read`]: RetrieveMultiple, counts, aggregations, `$expand`), and IsValidStateTransition,
//! for any table of the catalog.
//!
//! The executor owns Dataverse's rules: which columns a message may write (columns not valid
//! for the message are ignored, as Dataverse does), the server-maintained system columns, the
//! state/status model, ownership, and the read-validate-write loop that makes updates
//! compare-and-set on `versionnumber`.

pub mod audit;
pub mod changes;
pub mod context;
pub mod jobs;
pub mod organization;
pub mod read;
pub mod sms;
pub mod views;

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

pub use context::Caller;

use crate::authorize::{ChangeSet, Directory, Guard, Principal, SystemAccess};

use crate::metadata::system::*;
use crate::metadata::{AttributeType, Catalog, Entity, RequiredLevel};
use crate::parse::body::{Bind, Payload};
use crate::parse::headers::Condition;
use crate::security::Privilege;
use crate::store::sql::{AggregatePlan, Context as QueryContext, Plan};
use crate::store::{
    Access, Expect, Query, Record, Store, StoreError, Value, WriteOp, WriteOutcome,
};

/// The most rows Dataverse aggregates.
pub const MAX_AGGREGATE_ROWS: usize = 50_000;

/// How often an update without `If-Match` retries when another write got in between its read
/// and its compare-and-set.
const MAX_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{entity} With Id = {id} Does Not Exist")]
    NotFound { entity: String, id: Uuid },
    #[error("A record with matching key values already exists.")]
    Duplicate,
    /// No record the caller may read has the alternate key's values.
    #[error("A record with the specified key values does not exist in {entity} entity")]
    KeyNotFound { entity: String },
    /// More than one record has the alternate key's values (a key whose index predates
    /// case-insensitive keys on PostgreSQL).
    #[error("More than one record of {entity} has the specified key values.")]
    AmbiguousKey { entity: String },
    #[error("The version of the existing record doesn't match the RowVersion property provided.")]
    VersionMismatch,
    #[error("{status} is not a valid status code for state code {state_token} on {entity} with Id {id}.")]
    InvalidStateStatus {
        status: i64,
        state_token: String,
        entity: String,
        id: Uuid,
    },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("The maximum record limit is exceeded. Reduce the number of records.")]
    AggregateLimit,
    #[error("The entity with a name = '{0}' with namemapping = 'Logical' was not found in the MetadataCache.")]
    UnknownEntity(String),
    /// A message the table's page does not list (a write to the read-only `organizations`).
    #[error("The '{message}' method does not support entities of type '{entity}'. MessageProcessorCache returned MessageProcessor.Empty.")]
    MessageNotSupported {
        message: &'static str,
        entity: String,
    },
    /// A `$deltatoken` this server cannot have written.
    #[error("The delta token '{0}' is not valid.")]
    InvalidDeltaToken(String),
    /// A `$deltatoken` older than the change log's retention.
    #[error("Version stamp associated with the client has expired. Please perform a full sync.")]
    ExpiredDeltaToken,
    /// A delta link, or `Prefer: odata.track-changes`, on a table that does not track changes.
    #[error("Change tracking is not enabled for the entity '{0}'.")]
    ChangeTrackingNotEnabled(String),
    /// A query option Dataverse refuses with change tracking (`filter`, `orderby`, ...).
    #[error("The \"${0}\" query parameter isn't supported when Change Tracking is enabled.")]
    ChangeTrackingOption(String),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// A part of a read that could only be bound once the rows were read (the `$select` of a
    /// lookup with several target tables).
    #[error("{0}")]
    Query(#[from] crate::query::QueryError),
}

/// `If-Match` and `If-None-Match` of an update.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub if_match: Option<Condition>,
    pub if_none_match: Option<Condition>,
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
}

/// The message handlers, over one catalog and one store. The store is private: requests reach
/// it through [`Service::guard`] (or a [`ChangeSet`]'s guard), and the few system paths through
/// the named [`Service::system`].
pub struct Service {
    pub catalog: Arc<Catalog>,
    store: Arc<dyn Store>,
    /// What closing a conversation also writes (`None` without the SMS tables).
    lifecycle: Option<sms::lifecycle::Lifecycle>,
}

/// Refuses a message the table's page does not list, as Dataverse refuses it.
fn supports(entity: &Entity, message: &'static str) -> Result<(), ExecError> {
    if entity.supports_message(message) {
        Ok(())
    } else {
        Err(ExecError::MessageNotSupported {
            message,
            entity: entity.logical_name.clone(),
        })
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The id of a record whose creator gave none. Dataverse assigns sequential GUIDs to such
/// records (its guidance: let the platform assign ids, for the database's sake); here a newer
/// id sorts after an older one as the stores compare ids (text, `uuid`): a time-ordered
/// version 7 UUID, increasing within this process even inside one millisecond. So the primary
/// key's index and `(statecode, id)` grow at their ends, as the time columns' do, and a walk
/// in id order (the default order of a list) reads the table in creation order.
pub fn new_record_id() -> Uuid {
    Uuid::now_v7()
}

impl Service {
    pub fn new(catalog: Arc<Catalog>, store: Arc<dyn Store>) -> Service {
        let lifecycle = sms::lifecycle::Lifecycle::new(&catalog);
        Service {
            catalog,
            store,
            lifecycle,
        }
    }

    /// The conversation lifecycle (`None` without the SMS tables).
    pub fn lifecycle(&self) -> Option<&sms::lifecycle::Lifecycle> {
        self.lifecycle.as_ref()
    }

    /// The store as `principal` may use it: what every request's messages run against.
    pub fn guard<'a>(&'a self, directory: &'a Directory, principal: &'a Principal) -> Guard<'a> {
        Guard::new(&*self.store, Some(&*self.store), directory, principal)
    }

    /// A `$batch` change set's transaction, reached only through its guards.
    pub async fn begin_change_set(&self) -> Result<ChangeSet, StoreError> {
        ChangeSet::begin(&*self.store).await
    }

    /// **System access**: the store with no caller's rights. Only for what no caller's rights
    /// may decide: authentication, seeding, the SMS webhooks and `smsctx channel`.
    pub fn system(&self) -> SystemAccess<'_> {
        SystemAccess::new(&*self.store)
    }

    /// Retrieve: one record, or `NotFound`.
    pub async fn retrieve(
        &self,
        db: &dyn Access,
        _caller: &Caller,
        entity: &Arc<Entity>,
        id: Uuid,
        with_names: bool,
    ) -> Result<Record, ExecError> {
        db.get(entity, id, with_names)
            .await?
            .ok_or_else(|| not_found(entity, id))
    }

    /// How many rows a plan's filter selects, counting at most `cap`.
    pub async fn count(
        &self,
        db: &dyn Access,
        caller: &Caller,
        plan: Plan,
        cap: usize,
    ) -> Result<u64, ExecError> {
        let query = Query {
            plan,
            context: query_context(caller),
            with_names: false,
        };
        Ok(db.count(query, cap).await?)
    }

    /// Aggregation (`$apply`, aggregate FetchXML): groups and aggregates of the filtered rows.
    /// Dataverse refuses to aggregate more than 50,000 rows.
    pub async fn aggregate(
        &self,
        db: &dyn Access,
        caller: &Caller,
        plan: AggregatePlan,
    ) -> Result<Vec<Vec<Value>>, ExecError> {
        let filtered = Plan::filtered(&plan.entity, plan.filter.clone());
        let rows = self
            .count(db, caller, filtered, MAX_AGGREGATE_ROWS + 1)
            .await?;
        if rows > MAX_AGGREGATE_ROWS as u64 {
            return Err(ExecError::AggregateLimit);
        }
        Ok(db.aggregate(plan, query_context(caller)).await?)
    }

    /// Create: returns the new record's id and version.
    pub async fn create(
        &self,
        db: &dyn Access,
        caller: &Caller,
        entity: &Arc<Entity>,
        payload: Payload,
        id: Option<Uuid>,
    ) -> Result<(Uuid, i64), ExecError> {
        supports(entity, "Create")?;
        let record = self.build_new(db, caller, entity, payload, id).await?;
        let id = record.id().unwrap_or_default();
        match db.write(WriteOp::Insert(record)).await {
            Ok(WriteOutcome::Written { version }) => Ok((id, version)),
            Ok(WriteOutcome::Deleted) => {
                Err(StoreError::Unexpected("outcome of an insert".into()).into())
            }
            Err(StoreError::Duplicate) => Err(ExecError::Duplicate),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates several records of `entity` as that many [`Service::create`]s would, in the
    /// transaction `db` is on: every record is built first (so none may look up another of
    /// them; the bulk message sends those one by one), then all are written in one
    /// [`Access::write_each`]. A failure names the index of its payload.
    pub async fn create_many(
        &self,
        db: &dyn Access,
        caller: &Caller,
        entity: &Arc<Entity>,
        payloads: Vec<Payload>,
    ) -> Result<Vec<Uuid>, (usize, ExecError)> {
        supports(entity, "Create").map_err(|e| (0, e))?;
        let mut ids = Vec::with_capacity(payloads.len());
        let mut ops = Vec::with_capacity(payloads.len());
        for (index, payload) in payloads.into_iter().enumerate() {
            let record = self
                .build_new(db, caller, entity, payload, None)
                .await
                .map_err(|e| (index, e))?;
            ids.push(record.id().unwrap_or_default());
            ops.push(WriteOp::Insert(record));
        }
        for (index, outcome) in db.write_each(ops).await.into_iter().enumerate() {
            match outcome {
                Ok(WriteOutcome::Written { .. }) => {}
                Ok(WriteOutcome::Deleted) => {
                    let e = StoreError::Unexpected("outcome of an insert".into());
                    return Err((index, e.into()));
                }
                Err(StoreError::Duplicate) => return Err((index, ExecError::Duplicate)),
                Err(e) => return Err((index, e.into())),
            }
        }
        Ok(ids)
    }

    /// Update, or create when the record does not exist (upsert), honouring `If-Match` and
    /// `If-None-Match`.
    pub async fn upsert(
        &self,
        db: &dyn Access,
        caller: &Caller,
        entity: &Arc<Entity>,
        id: Uuid,
        payload: Payload,
        preconditions: &Preconditions,
    ) -> Result<Upserted, ExecError> {
        supports(entity, "Update")?;
        let if_match = preconditions.if_match.as_ref();
        let if_none_match = preconditions.if_none_match.as_ref();
        // What the update needs of the stored row: an owner-only change is an Assign.
        let owner_only = payload.values.is_empty()
            && !payload.binds.is_empty()
            && payload
                .binds
                .iter()
                .all(|b| entity.attributes[b.position].attribute_type == AttributeType::Owner);
        let purpose = if owner_only {
            Privilege::Assign
        } else {
            Privilege::Write
        };
        for _ in 0..MAX_ATTEMPTS {
            let current = db.get_for(entity, id, false, purpose).await?;
            let Some(current) = current else {
                if if_match.is_some() {
                    return Err(not_found(entity, id));
                }
                match self
                    .create(db, caller, entity, payload.clone(), Some(id))
                    .await
                {
                    Ok(_) => return Ok(Upserted::Created),
                    // Created by someone else since our read: update it instead.
                    Err(ExecError::Duplicate) => continue,
                    Err(e) => return Err(e),
                }
            };
            let version = current.version().unwrap_or_default();
            if if_none_match.is_some_and(|c| c.matches(version)) {
                return Err(ExecError::Duplicate);
            }
            if if_match.is_some_and(|c| !c.matches(version)) {
                return Err(ExecError::VersionMismatch);
            }
            let changes = self
                .update_changes(db, caller, entity, &current, payload.clone())
                .await?;
            // Closing a conversation deactivates its contexts in the same transaction.
            let consequences = match &self.lifecycle {
                Some(lifecycle) => {
                    lifecycle
                        .consequences(self, caller, entity, &current, &changes)
                        .await?
                }
                None => Vec::new(),
            };
            let op = WriteOp::Update {
                entity: Arc::clone(entity),
                id,
                changes,
                expect: Expect::Version(version),
            };
            let written = if consequences.is_empty() {
                db.write(op).await
            } else {
                db.write_with(op, consequences).await
            };
            match written {
                Ok(_) => return Ok(Upserted::Updated),
                Err(StoreError::VersionMismatch { .. }) if if_match.is_some() => {
                    return Err(ExecError::VersionMismatch)
                }
                Err(StoreError::VersionMismatch { .. }) | Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ExecError::VersionMismatch)
    }

    /// Update only (`PUT` of one property, `DELETE` of a property or a `$ref`).
    pub async fn update(
        &self,
        db: &dyn Access,
        caller: &Caller,
        entity: &Arc<Entity>,
        id: Uuid,
        payload: Payload,
    ) -> Result<(), ExecError> {
        let update_only = Preconditions {
            if_match: Some(Condition::Any),
            if_none_match: None,
        };
        self.upsert(db, caller, entity, id, payload, &update_only)
            .await
            .map(|_| ())
    }

    /// Delete, honouring `If-Match`.
    pub async fn delete(
        &self,
        db: &dyn Access,
        _caller: &Caller,
        entity: &Arc<Entity>,
        id: Uuid,
        if_match: Option<&Condition>,
    ) -> Result<(), ExecError> {
        supports(entity, "Delete")?;
        let expect = match if_match {
            None | Some(Condition::Any) => Expect::Any,
            Some(condition) => {
                let current = db
                    .get_for(entity, id, false, Privilege::Delete)
                    .await?
                    .ok_or_else(|| not_found(entity, id))?;
                let version = current.version().unwrap_or_default();
                if !condition.matches(version) {
                    return Err(ExecError::VersionMismatch);
                }
                Expect::Version(version)
            }
        };
        match db
            .write(WriteOp::Delete {
                entity: Arc::clone(entity),
                id,
                expect,
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => Err(not_found(entity, id)),
            Err(StoreError::VersionMismatch { .. }) => Err(ExecError::VersionMismatch),
            Err(e) => Err(e.into()),
        }
    }

    /// IsValidStateTransition: whether the record may move to `new_state` / `new_status`.
    /// No transition graph is enforced on these tables, so a transition is valid when the
    /// status reason belongs to the state.
    pub async fn is_valid_state_transition(
        &self,
        db: &dyn Access,
        caller: &Caller,
        entity: &Arc<Entity>,
        id: Uuid,
        new_state: &str,
        new_status: i64,
    ) -> Result<bool, ExecError> {
        self.retrieve(db, caller, entity, id, false).await?;
        let model = entity.state_model().ok_or_else(|| {
            ExecError::InvalidArgument(format!(
                "The table '{}' has no state model.",
                entity.logical_name
            ))
        })?;
        let Some(state) = model.state_by_invariant_name(new_state) else {
            return Ok(false);
        };
        Ok(i32::try_from(new_status).is_ok_and(|s| model.is_valid_pair(state, s)))
    }

    /// The record a create writes: the client's values valid for create, then the server's.
    pub(crate) async fn build_new(
        &self,
        db: &dyn Access,
        caller: &Caller,
        entity: &Arc<Entity>,
        mut payload: Payload,
        id: Option<Uuid>,
    ) -> Result<Record, ExecError> {
        let now = now();
        let mut record = Record::empty(Arc::clone(entity));
        let id_position = entity.primary_id_position();
        let id = id
            .or_else(|| payload.remove(id_position).and_then(|v| v.as_guid()))
            .unwrap_or_else(new_record_id);

        for (position, value) in std::mem::take(&mut payload.values) {
            let attribute = &entity.attributes[position];
            if !attribute.valid_for_create {
                continue;
            }
            if value.is_null() && attribute.required_level == RequiredLevel::SystemRequired {
                return Err(required_null(&attribute.logical_name));
            }
            record.values[position] = value;
        }
        record.values[id_position] = Value::Guid(id);

        // State: a record starts in the first state; a status reason may be given for it.
        if let Some(model) = entity.state_model() {
            let initial = model.state.options.first().map(|o| o.value).unwrap_or(0);
            let state_position = entity.position(&model.state.logical_name);
            let status_position = entity.position(&model.status.logical_name);
            let status = match status_position.map(|p| &record.values[p]) {
                Some(Value::Int(s)) => {
                    let s = *s;
                    if !i32::try_from(s).is_ok_and(|s| model.is_valid_pair(initial, s)) {
                        return Err(ExecError::InvalidStateStatus {
                            status: s,
                            state_token: model.state_token(initial),
                            entity: entity.logical_name.clone(),
                            id,
                        });
                    }
                    s
                }
                _ => model.default_status(initial).unwrap_or_default().into(),
            };
            if let Some(p) = state_position {
                record.values[p] = Value::Int(initial.into());
            }
            if let Some(p) = status_position {
                record.values[p] = Value::Int(status);
            }
        }

        for bind in payload.binds {
            let attribute = &entity.attributes[bind.position];
            if !attribute.valid_for_create {
                continue;
            }
            if bind.target.is_none() && attribute.required_level == RequiredLevel::SystemRequired {
                return Err(required_null(&attribute.logical_name));
            }
            self.apply_bind(db, entity, &mut record, &bind).await?;
        }
        if entity.position(OWNER_ID).is_some() && record.get(OWNER_ID).is_null() {
            self.set_owner(
                &mut record,
                SYSTEM_USER,
                caller.user_id,
                Some(caller.business_unit_id),
            )
            .await?;
        }

        // Defaults: the page's DefaultValue, and a SystemRequired business unit lookup takes
        // the caller's business unit.
        for (position, attribute) in entity.attributes.iter().enumerate() {
            if !record.values[position].is_null() || !attribute.is_stored() {
                continue;
            }
            let default = match (attribute.attribute_type, attribute.default_value.as_deref()) {
                (AttributeType::Boolean, Some(d)) => Some(Value::Bool(d == "True")),
                (t, Some(d)) if t.is_option_set() => d
                    .parse::<i64>()
                    .ok()
                    .filter(|v| i32::try_from(*v).is_ok_and(|v| attribute.option(v).is_some()))
                    .map(Value::Int),
                (AttributeType::Lookup, _)
                    if attribute.required_level == RequiredLevel::SystemRequired
                        && attribute.targets.iter().any(|t| t == BUSINESS_UNIT) =>
                {
                    Some(Value::Guid(caller.business_unit_id))
                }
                (t, None)
                    if t.is_option_set()
                        && attribute.required_level == RequiredLevel::SystemRequired =>
                {
                    attribute
                        .options
                        .first()
                        .map(|o| Value::Int(o.value.into()))
                }
                _ => None,
            };
            if let Some(default) = default {
                record.values[position] = default;
            }
        }

        // The import swap: overriddencreatedon becomes createdon and records the real time.
        match record.get(OVERRIDDEN_CREATED_ON).clone() {
            Value::DateTime(given) => {
                record.set(CREATED_ON, Value::DateTime(given));
                record.set(OVERRIDDEN_CREATED_ON, Value::DateTime(now));
            }
            _ => record.set(CREATED_ON, Value::DateTime(now)),
        }
        record.set(MODIFIED_ON, Value::DateTime(now));
        record.set(CREATED_BY, Value::Guid(caller.user_id));
        record.set(MODIFIED_BY, Value::Guid(caller.user_id));
        if let Some(real) = caller.on_behalf_of {
            record.set(CREATED_ON_BEHALF_BY, Value::Guid(real));
            record.set(MODIFIED_ON_BEHALF_BY, Value::Guid(real));
        }
        derive_columns(&mut record);

        for (position, attribute) in entity.attributes.iter().enumerate() {
            if attribute.is_stored()
                && attribute.required_level == RequiredLevel::SystemRequired
                && attribute.logical_name != VERSION_NUMBER
                && record.values[position].is_null()
            {
                return Err(ExecError::InvalidArgument(format!(
                    "The attribute '{}' is required on {} and has no value.",
                    attribute.logical_name, entity.logical_name
                )));
            }
        }
        Ok(record)
    }

    /// The columns an update writes, validated against the current record.
    pub(crate) async fn update_changes(
        &self,
        db: &dyn Access,
        caller: &Caller,
        entity: &Arc<Entity>,
        current: &Record,
        payload: Payload,
    ) -> Result<Vec<(usize, Value)>, ExecError> {
        let mut next = current.clone();
        let mut touched: Vec<usize> = Vec::new();
        for (position, value) in payload.values {
            let attribute = &entity.attributes[position];
            if !attribute.valid_for_update {
                continue;
            }
            if value.is_null() && attribute.required_level == RequiredLevel::SystemRequired {
                return Err(required_null(&attribute.logical_name));
            }
            next.values[position] = value;
            touched.push(position);
        }

        if let Some(model) = entity.state_model() {
            let state_position = entity.position(&model.state.logical_name);
            let status_position = entity.position(&model.status.logical_name);
            let state_given = state_position.filter(|p| touched.contains(p));
            let status_given = status_position.filter(|p| touched.contains(p));
            let id = current.id().unwrap_or_default();
            let state_of = |p: Option<usize>, r: &Record| {
                p.and_then(|p| r.values[p].as_int()).unwrap_or_default()
            };
            match (state_given, status_given) {
                (None, None) => {}
                (Some(_), None) => {
                    let state = state_of(state_position, &next);
                    let status = i32::try_from(state)
                        .ok()
                        .and_then(|s| model.default_status(s))
                        .unwrap_or_default();
                    if let Some(p) = status_position {
                        next.values[p] = Value::Int(status.into());
                        touched.push(p);
                    }
                }
                (state, Some(p)) => {
                    let status = next.values[p].as_int().unwrap_or_default();
                    let state_value = if state.is_some() {
                        state_of(state_position, &next)
                    } else {
                        state_of(state_position, current)
                    };
                    let valid = i32::try_from(state_value).is_ok_and(|st| {
                        i32::try_from(status).is_ok_and(|s| model.is_valid_pair(st, s))
                    });
                    if !valid {
                        return Err(ExecError::InvalidStateStatus {
                            status,
                            state_token: model.state_token(state_value as i32),
                            entity: entity.logical_name.clone(),
                            id,
                        });
                    }
                }
            }
        }

        for bind in payload.binds {
            let attribute = &entity.attributes[bind.position];
            if !attribute.valid_for_update {
                continue;
            }
            if bind.target.is_none() && attribute.required_level == RequiredLevel::SystemRequired {
                return Err(required_null(&attribute.logical_name));
            }
            self.apply_bind(db, entity, &mut next, &bind).await?;
            touched.push(bind.position);
            if attribute.logical_name == OWNER_ID {
                for name in [
                    OWNER_ID_TYPE,
                    OWNING_USER,
                    OWNING_TEAM,
                    OWNING_BUSINESS_UNIT,
                ] {
                    touched.extend(entity.position(name));
                }
            }
        }

        next.set(MODIFIED_ON, Value::DateTime(now()));
        next.set(MODIFIED_BY, Value::Guid(caller.user_id));
        next.set(
            MODIFIED_ON_BEHALF_BY,
            caller.on_behalf_of.map(Value::Guid).unwrap_or(Value::Null),
        );
        for name in [MODIFIED_ON, MODIFIED_BY, MODIFIED_ON_BEHALF_BY] {
            touched.extend(entity.position(name));
        }
        touched.extend(derive_columns(&mut next));

        touched.sort_unstable();
        touched.dedup();
        Ok(touched
            .into_iter()
            .map(|p| (p, next.values[p].clone()))
            .collect())
    }

    /// Sets a lookup from an `@odata.bind`, checking that the target exists.
    async fn apply_bind(
        &self,
        db: &dyn Access,
        entity: &Entity,
        record: &mut Record,
        bind: &Bind,
    ) -> Result<(), ExecError> {
        let attribute = &entity.attributes[bind.position];
        let Some((target, id)) = &bind.target else {
            record.values[bind.position] = Value::Null;
            return Ok(());
        };
        // The owner's row is read (its business unit); any other target is appended to.
        let purpose = if attribute.attribute_type == AttributeType::Owner {
            Privilege::Read
        } else {
            Privilege::AppendTo
        };
        let target_record = db
            .get_for(target, *id, false, purpose)
            .await?
            .ok_or_else(|| not_found(target, *id))?;
        if attribute.attribute_type == AttributeType::Owner {
            let business_unit = target_record.get(BUSINESS_UNIT_ID).as_guid();
            self.set_owner(record, &target.logical_name, *id, business_unit)
                .await
        } else {
            record.values[bind.position] = Value::Guid(*id);
            Ok(())
        }
    }

    /// Sets the owner and the columns that follow from it.
    async fn set_owner(
        &self,
        record: &mut Record,
        owner_type: &str,
        owner: Uuid,
        business_unit: Option<Uuid>,
    ) -> Result<(), ExecError> {
        record.set(OWNER_ID, Value::Guid(owner));
        record.set(OWNER_ID_TYPE, Value::Text(owner_type.to_string()));
        let (user, team) = if owner_type == TEAM {
            (Value::Null, Value::Guid(owner))
        } else {
            (Value::Guid(owner), Value::Null)
        };
        record.set(OWNING_USER, user);
        record.set(OWNING_TEAM, team);
        record.set(
            OWNING_BUSINESS_UNIT,
            business_unit.map(Value::Guid).unwrap_or(Value::Null),
        );
        Ok(())
    }
}

/// Columns the server derives from others (a user's full name); returns those it set.
fn derive_columns(record: &mut Record) -> Vec<usize> {
    let Some(full) = record.entity.position(FULL_NAME) else {
        return Vec::new();
    };
    if record.entity.position(FIRST_NAME).is_none() {
        return Vec::new();
    }
    let parts: Vec<&str> = [FIRST_NAME, LAST_NAME]
        .iter()
        .filter_map(|n| record.get(n).as_text())
        .filter(|t| !t.is_empty())
        .collect();
    record.values[full] = if parts.is_empty() {
        Value::Null
    } else {
        Value::Text(parts.join(" "))
    };
    vec![full]
}

/// What the query functions of a caller's query are evaluated against.
fn query_context(caller: &Caller) -> QueryContext {
    QueryContext {
        now: now(),
        user_id: caller.user_id,
        business_unit_id: caller.business_unit_id,
    }
}

fn not_found(entity: &Entity, id: Uuid) -> ExecError {
    ExecError::NotFound {
        entity: entity.logical_name.clone(),
        id,
    }
}

fn required_null(attribute: &str) -> ExecError {
    ExecError::InvalidArgument(format!(
        "The value of '{attribute}' is required and cannot be set to null."
    ))
}

#[cfg(test)]
mod tests {
    /// Ids assigned one after another sort in that order as text (SQLite) and as bytes
    /// (PostgreSQL's `uuid`), even many within one millisecond.
    #[test]
    fn assigned_ids_increase() {
        let ids: Vec<uuid::Uuid> = (0..10_000).map(|_| super::new_record_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0].to_string() < pair[1].to_string(), "{pair:?}");
            assert!(pair[0].as_bytes() < pair[1].as_bytes(), "{pair:?}");
        }
    }
}
