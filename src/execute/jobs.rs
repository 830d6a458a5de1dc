//! System jobs (`asyncoperation`): BulkDelete recorded as a job, and the worker that runs it.
//!
//! [`Service::record_bulk_delete`] binds every `QueryExpression` of the request (the FetchXML
//! binder, [`crate::query::fetchxml::expression`]), checks the caller's Delete privilege on
//! each table through the guard, and inserts one job row (operation type Bulk Delete, state
//! Ready) owned by the caller, holding the request's queries and a cursor in `data`.
//!
//! [`Service::run_jobs`] is one pass of the worker (`app.rs` runs it at start, when a job is
//! recorded on this node, and every few seconds): it claims each job that is Ready, or In
//! Progress under a lease that ran out (its node died), with a compare-and-set on the job's
//! `versionnumber`, so of several nodes exactly one runs a job. It then runs the job in
//! batches: each batch is one transaction in which the job's owner, through a guard of its
//! own, reads the next rows the query selects (under the owner's row scope, after the cursor,
//! in primary-id order) and deletes each through [`Service::delete`] (the single Delete's
//! rules and privilege checks: a row the owner may read but not delete counts as a failure and
//! stays); the job's counts, cursor and lease are written in the same transaction, compared
//! and set on its version, so a batch is counted exactly once and a node that lost its claim
//! writes nothing. A job completes Succeeded, or Failed when some rows could not be deleted
//! or the job could not run (its owner gone, a query no longer binding).

use std::sync::Arc;

use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::{now, Caller, ExecError, Service};
use crate::authorize::{Directory, Guard};
use crate::metadata::jobs::*;
use crate::metadata::system::{MODIFIED_ON, VERSION_NUMBER};
use crate::metadata::Entity;
use crate::parse::body::Payload;
use crate::query::fetchxml::expression::query_expression;
use crate::query::OrderBy;
use crate::security::Privilege;
use crate::store::sql::{Context as QueryContext, Keyset, Plan};
use crate::store::{Access, Expect, Query, Record, StoreError, Value, WriteOp, WriteOutcome};

/// Rows a job deletes per transaction, by default.
pub const DEFAULT_BATCH: usize = 500;

/// How long a claim holds without the running node writing the job: past it, another node
/// (or this one, restarted) takes the job over. Each batch renews it, so it must be well above
/// the time of one batch. Nodes compare it with their own clocks.
pub const LEASE_SECONDS: i64 = 30;

/// Who runs jobs on this node.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Names this node in the jobs it claims (`hostid`); new at every start.
    pub host: String,
    /// Rows deleted per transaction.
    pub batch: usize,
    /// Whether this node is the only one on its store (SQLite: one process owns the file), so
    /// a claim it does not hold can only be a dead process's, free at once.
    pub sole_node: bool,
}

/// The most queries one BulkDelete may carry.
pub const MAX_QUERIES: usize = 100;

/// Dataverse's error code of a job with records it could not delete (prvDelete missing):
/// 0x80040220 as the signed 32-bit `errorcode`.
const PRIVILEGE_DENIED: i64 = 0x8004_0220_u32 as i32 as i64;

/// What a job's `data` holds: the request's queries as sent, which query runs, and the last
/// primary id handled in it.
#[derive(Debug, Clone)]
struct JobData {
    queries: Vec<Json>,
    query: usize,
    after: Option<Uuid>,
}

impl JobData {
    fn to_text(&self) -> String {
        json!({
            "QuerySet": self.queries,
            "Query": self.query,
            "After": self.after.map(|id| id.to_string()),
        })
        .to_string()
    }

    fn parse(text: &str) -> Option<JobData> {
        let value: Json = serde_json::from_str(text).ok()?;
        Some(JobData {
            queries: value.get("QuerySet")?.as_array()?.clone(),
            query: usize::try_from(value.get("Query")?.as_u64()?).ok()?,
            after: match value.get("After")? {
                Json::Null => None,
                Json::String(id) => Some(Uuid::parse_str(id).ok()?),
                _ => return None,
            },
        })
    }
}

/// One job as the worker sees it.
struct Job {
    id: Uuid,
    version: i64,
    owner: Uuid,
    data: JobData,
    successes: i64,
    failures: i64,
}

impl Service {
    fn jobs_table(&self) -> Result<&Arc<Entity>, ExecError> {
        self.catalog
            .entity(ASYNC_OPERATION)
            .ok_or_else(|| StoreError::UnknownTable(ASYNC_OPERATION.into()).into())
    }

    /// BulkDelete: checks the request and records its job (one insert); returns the job id.
    /// `queries` is the `QuerySet` as sent.
    pub async fn record_bulk_delete(
        &self,
        db: &Guard<'_>,
        caller: &Caller,
        name: Option<String>,
        queries: Vec<Json>,
    ) -> Result<Uuid, ExecError> {
        if queries.is_empty() {
            return Err(ExecError::InvalidArgument(
                "The BulkDelete request needs at least one query in 'QuerySet'.".into(),
            ));
        }
        if queries.len() > MAX_QUERIES {
            return Err(ExecError::InvalidArgument(format!(
                "The BulkDelete request has {} queries in 'QuerySet'; at most {MAX_QUERIES} are allowed.",
                queries.len()
            )));
        }
        for (index, query) in queries.iter().enumerate() {
            let bound = query_expression(&self.catalog, query, &format!("QuerySet[{index}]"))?;
            super::supports(&bound.entity, "Delete")?;
            db.check_privilege(&bound.entity, Privilege::Delete)?;
        }
        let table = Arc::clone(self.jobs_table()?);
        // The job row is the server's: the caller owns it (and may read it) but holds no
        // privilege to write it, as in Dataverse. System access, after the guard's checks.
        let store = self.system().store();
        let mut record = self
            .build_new(store, caller, &table, Payload::default(), None)
            .await?;
        let id = record.id().unwrap_or_else(super::new_record_id);
        let data = JobData {
            queries,
            query: 0,
            after: None,
        };
        let name = name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("Bulk delete {id}"));
        record.set(NAME, Value::Text(name));
        record.set(OPERATION_TYPE, Value::Int(BULK_DELETE));
        record.set(STATE_CODE, Value::Int(STATE_READY));
        record.set(STATUS_CODE, Value::Int(STATUS_WAITING_FOR_RESOURCES));
        record.set(DATA, Value::Text(data.to_text()));
        record.set(SUCCESS_COUNT, Value::Int(0));
        record.set(FAILURE_COUNT, Value::Int(0));
        store.write(WriteOp::Insert(record)).await?;
        Ok(id)
    }

    /// One pass of the job worker: claims and runs every job that is waiting, whose claim's
    /// lease ran out, or that this node claimed before (a pass runs one job at a time, so such
    /// a job was left by an earlier pass, stopped by a passing store failure). Returns how
    /// many it ran.
    pub async fn run_jobs(
        &self,
        directory: &Directory,
        worker: &Worker,
    ) -> Result<usize, ExecError> {
        let table = Arc::clone(self.jobs_table()?);
        let store = self.system().store();
        let state = prop(&table, STATE_CODE)?;
        let unfinished = crate::query::Expr::Compare {
            prop: state,
            op: crate::query::CmpOp::Ne,
            value: crate::query::Literal::Int(STATE_COMPLETED),
        };
        let rows = store
            .query(Query {
                plan: Plan::filtered(&table, Some(unfinished)),
                context: system_context(),
                with_names: false,
            })
            .await?;
        let mut ran = 0;
        for row in rows {
            let Some(job) = self.claim(&table, &row, worker).await? else {
                continue;
            };
            self.run_job(directory, &table, job, worker.batch).await?;
            ran += 1;
        }
        Ok(ran)
    }

    /// Claims `row` for `worker` when it is free (see [`Service::run_jobs`]): a compare-and-set
    /// on its version; `None` when it is not free or another node won.
    async fn claim(
        &self,
        table: &Arc<Entity>,
        row: &Record,
        worker: &Worker,
    ) -> Result<Option<Job>, ExecError> {
        let host = worker.host.as_str();
        let now = now();
        let state = row.get(STATE_CODE).as_int();
        let leased_until = match row.get(MODIFIED_ON) {
            Value::DateTime(at) => at + LEASE_SECONDS,
            _ => 0,
        };
        let free = match state {
            Some(STATE_READY) => true,
            Some(STATE_LOCKED) => {
                worker.sole_node || leased_until < now || row.get(HOST_ID).as_text() == Some(host)
            }
            _ => false,
        };
        let (Some(id), Some(version)) = (row.id(), row.version()) else {
            return Ok(None);
        };
        if !free {
            return Ok(None);
        }
        let mut changes = vec![
            (STATE_CODE, Value::Int(STATE_LOCKED)),
            (STATUS_CODE, Value::Int(STATUS_IN_PROGRESS)),
            (HOST_ID, Value::Text(host.to_string())),
            (MODIFIED_ON, Value::DateTime(now)),
        ];
        if row.get(STARTED_ON).is_null() {
            changes.push((STARTED_ON, Value::DateTime(now)));
        }
        let store = self.system().store();
        let version = match store.write(update(table, id, version, changes)?).await {
            Ok(WriteOutcome::Written { version }) => version,
            Ok(WriteOutcome::Deleted) => return Ok(None),
            Err(StoreError::VersionMismatch { .. } | StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let owner = row.get(crate::metadata::system::OWNER_ID).as_guid();
        let data = row.get(DATA).as_text().and_then(JobData::parse);
        let (Some(owner), Some(data)) = (owner, data) else {
            let job = Job {
                id,
                version,
                owner: Uuid::nil(),
                data: JobData {
                    queries: Vec::new(),
                    query: 0,
                    after: None,
                },
                successes: 0,
                failures: 0,
            };
            self.complete(table, &job, Some("The job's definition cannot be read."))
                .await?;
            return Ok(None);
        };
        Ok(Some(Job {
            id,
            version,
            owner,
            data,
            successes: row.get(SUCCESS_COUNT).as_int().unwrap_or(0),
            failures: row.get(FAILURE_COUNT).as_int().unwrap_or(0),
        }))
    }

    /// Runs a claimed job to its end, batch by batch; stops early (leaving the job to be
    /// resumed) when this node loses the claim or the store is closing.
    async fn run_job(
        &self,
        directory: &Directory,
        table: &Arc<Entity>,
        mut job: Job,
        batch: usize,
    ) -> Result<(), ExecError> {
        let system = self.system();
        let user = match directory.user(system.store(), job.owner).await? {
            Some(user) if !user.disabled => user,
            _ => {
                let reason = "The job's owner no longer exists or is disabled.";
                return self.complete(table, &job, Some(reason)).await;
            }
        };
        let principal = directory.principal(system.store(), &user, false).await?;
        let caller = Caller {
            user_id: user.id,
            business_unit_id: user.business_unit_id,
            on_behalf_of: None,
        };
        while job.data.query < job.data.queries.len() {
            let index = job.data.query;
            let bound = match query_expression(
                &self.catalog,
                &job.data.queries[index],
                &format!("QuerySet[{index}]"),
            ) {
                Ok(bound) => bound,
                Err(e) => return self.complete(table, &job, Some(&e.to_string())).await,
            };
            let change_set = self.begin_change_set().await?;
            let db = change_set.guard(directory, &principal);
            let outcome = self.delete_batch(&db, &caller, &bound, &job, batch).await;
            let (deleted, failed, last) = match outcome {
                Ok(done) => done,
                Err(e) => {
                    let _ = change_set.rollback().await;
                    return match e {
                        ExecError::Store(
                            StoreError::Closed | StoreError::Busy | StoreError::TransactionEnded,
                        ) => Ok(()),
                        other => self.complete(table, &job, Some(&other.to_string())).await,
                    };
                }
            };
            let mut data = job.data.clone();
            match last {
                Some(last) => data.after = Some(last),
                None => {
                    data.query += 1;
                    data.after = None;
                }
            }
            let (successes, failures) = (job.successes + deleted, job.failures + failed);
            let changes = vec![
                (SUCCESS_COUNT, Value::Int(successes)),
                (FAILURE_COUNT, Value::Int(failures)),
                (DATA, Value::Text(data.to_text())),
                (MODIFIED_ON, Value::DateTime(now())),
            ];
            let written = change_set
                .system()
                .write(update(table, job.id, job.version, changes)?)
                .await;
            match written {
                Ok(WriteOutcome::Written { version }) => {
                    change_set.commit().await?;
                    job.version = version;
                    job.data = data;
                    job.successes = successes;
                    job.failures = failures;
                }
                // Another node took the job over (this one was too slow to renew the lease):
                // nothing of this batch is written; the other node goes on.
                Ok(WriteOutcome::Deleted)
                | Err(StoreError::VersionMismatch { .. } | StoreError::NotFound) => {
                    let _ = change_set.rollback().await;
                    return Ok(());
                }
                Err(e) => {
                    let _ = change_set.rollback().await;
                    return match e {
                        StoreError::Closed | StoreError::Busy | StoreError::TransactionEnded => {
                            Ok(())
                        }
                        other => Err(other.into()),
                    };
                }
            }
        }
        self.complete(table, &job, None).await
    }

    /// One batch of a job's query `bound`, as its owner: the next rows after the cursor, each
    /// deleted through the single Delete. Returns (deleted, failed, the last id read, or
    /// `None` when the query has no rows left).
    async fn delete_batch(
        &self,
        db: &Guard<'_>,
        caller: &Caller,
        bound: &crate::query::fetchxml::expression::BoundQueryExpression,
        job: &Job,
        batch: usize,
    ) -> Result<(i64, i64, Option<Uuid>), ExecError> {
        let entity = &bound.entity;
        let order: Vec<OrderBy> = Vec::new();
        let mut plan = Plan::filtered(entity, bound.filter.clone());
        plan.limit = Some(batch.max(1));
        plan.after = job.data.after.map(|id| {
            let mut row = vec![Value::Null; entity.attributes.len()];
            row[entity.primary_id_position()] = Value::Guid(id);
            Keyset::of_row(entity, &order, &row)
        });
        let rows = db
            .query(Query {
                plan,
                context: QueryContext {
                    now: now(),
                    user_id: caller.user_id,
                    business_unit_id: caller.business_unit_id,
                },
                with_names: false,
            })
            .await?;
        let (mut deleted, mut failed, mut last) = (0, 0, None);
        for id in rows.iter().filter_map(Record::id) {
            last = Some(id);
            match self.delete(db, caller, entity, id, None).await {
                Ok(()) => deleted += 1,
                Err(ExecError::Store(StoreError::Denied(_))) => failed += 1,
                // Deleted by someone else since it was read: nothing to count.
                Err(ExecError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((deleted, failed, last))
    }

    /// Completes a job: Succeeded, or Failed with `reason` or with the count of rows it could
    /// not delete.
    async fn complete(
        &self,
        table: &Arc<Entity>,
        job: &Job,
        reason: Option<&str>,
    ) -> Result<(), ExecError> {
        let now = now();
        let mut changes = vec![
            (STATE_CODE, Value::Int(STATE_COMPLETED)),
            (COMPLETED_ON, Value::DateTime(now)),
            (MODIFIED_ON, Value::DateTime(now)),
        ];
        let total = job.successes + job.failures;
        let message = match reason {
            Some(reason) => Some(reason.to_string()),
            None if job.failures > 0 => {
                changes.push((ERROR_CODE, Value::Int(PRIVILEGE_DENIED)));
                Some(format!(
                    "{} of the {total} records selected could not be deleted: the job's owner lacks the Delete privilege on them.",
                    job.failures
                ))
            }
            None => None,
        };
        let status = if message.is_some() {
            STATUS_FAILED
        } else {
            STATUS_SUCCEEDED
        };
        changes.push((STATUS_CODE, Value::Int(status)));
        changes.push((
            FRIENDLY_MESSAGE,
            Value::Text(format!(
                "Deleted {} of the {total} records selected.",
                job.successes
            )),
        ));
        if let Some(message) = message {
            changes.push((MESSAGE, Value::Text(message)));
        }
        match self
            .system()
            .store()
            .write(update(table, job.id, job.version, changes)?)
            .await
        {
            Ok(_) | Err(StoreError::VersionMismatch { .. } | StoreError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn prop(table: &Entity, column: &str) -> Result<crate::query::PropertyRef, ExecError> {
    let index = table
        .position(column)
        .ok_or_else(|| StoreError::UnknownTable(format!("{}.{column}", table.logical_name)))?;
    Ok(crate::query::PropertyRef {
        index,
        name: column.to_string(),
    })
}

/// A compare-and-set update of a job row at `version`.
fn update(
    table: &Arc<Entity>,
    id: Uuid,
    version: i64,
    changes: Vec<(&str, Value)>,
) -> Result<WriteOp, ExecError> {
    let changes = changes
        .into_iter()
        .map(|(column, value)| {
            debug_assert_ne!(column, VERSION_NUMBER);
            Ok((prop(table, column)?.index, value))
        })
        .collect::<Result<Vec<_>, ExecError>>()?;
    Ok(WriteOp::Update {
        entity: Arc::clone(table),
        id,
        changes,
        expect: Expect::Version(version),
    })
}

/// The context of the worker's own reads (no caller's functions in them).
fn system_context() -> QueryContext {
    QueryContext {
        now: now(),
        user_id: Uuid::nil(),
        business_unit_id: Uuid::nil(),
    }
}
