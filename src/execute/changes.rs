//! Change tracking: `Prefer: odata.track-changes` and delta links over the change log
//! (migration 14), every row read through the caller's guard.
//!
//! A delta token is a position of the change log (the store's own text: SQLite's last `seq`,
//! PostgreSQL's snapshot) and the Unix second it was issued, `{position}!{issued}`. A token
//! older than the retention is refused as expired, so the rows it needs were never purged.
//!
//! Exactly once: a response's rows are read after its window of the change log, so a row can
//! reflect a change committed after the window (which the next window returns again). The
//! planner therefore reads the log once more after the rows and leaves out every row changed
//! since the window's end: such a row comes, whole, in the next delta. So each change is
//! returned once, in the first response whose rows include it, and never again unless the row
//! changes again.
//!
//! Security: the ids come from the log (the caller needs Read on the table), the rows from
//! the guard's row scope, so a delta never shows a row the caller may not read. A row deleted
//! in the window is returned as removed (`$deletedEntity`, as Dataverse returns a delete even
//! to a client that never had the row); a row the caller may not read now is returned as
//! removed only when the window changed who may read it (an assign, a modified or revoked
//! share), so a row reassigned or unshared away from the caller leaves the caller's copy, and
//! other rows' plain updates tell the caller nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use super::read::{ReadRequest, ReadResult, Row, RowsRead, RowsResult};
use super::{Caller, ExecError, Service};
use crate::authorize::Guard;
use crate::metadata::Entity;
use crate::query::{Expr, Literal, PropertyRef, QueryFnName};
use crate::store::{LoggedChange, StoreError};

/// The ids one read of a delta's rows names at most (bound parameters).
const IDS_PER_READ: usize = 500;

/// The audit actions that change who may read a row: Assign, Modify Share, Unshare.
const ACCESS_ACTIONS: [i64; 3] = [13, 48, 49];

/// A delta token: where in the change log a client stands, and when it was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaToken {
    position: String,
    issued: i64,
}

impl DeltaToken {
    /// Reads a token back; a token this server cannot have written is refused.
    pub fn parse(text: &str) -> Result<DeltaToken, ExecError> {
        let invalid = || ExecError::InvalidDeltaToken(text.to_string());
        let (position, issued) = text.rsplit_once('!').ok_or_else(invalid)?;
        let issued = issued.parse::<i64>().map_err(|_| invalid())?;
        if position.is_empty() {
            return Err(invalid());
        }
        Ok(DeltaToken {
            position: position.to_string(),
            issued,
        })
    }

    /// The token as the delta link carries it (before URL encoding).
    pub fn text(&self) -> String {
        format!("{}!{}", self.position, self.issued)
    }

    #[cfg(test)]
    fn check_age(&self, now: i64, retention_secs: i64) -> Result<(), ExecError> {
        self.check_age_and_floor(now, retention_secs, 0)
    }

    /// Refuses a token older than the retention, or issued at or before `floor` (the change
    /// log was deleted up to there by `DeleteAuditData`).
    fn check_age_and_floor(
        &self,
        now: i64,
        retention_secs: i64,
        floor: i64,
    ) -> Result<(), ExecError> {
        if now.saturating_sub(self.issued) > retention_secs || self.issued <= floor {
            return Err(ExecError::ExpiredDeltaToken);
        }
        Ok(())
    }
}

/// What a change-tracking read answers: rows, removed ids (deltas only), the next token.
#[derive(Debug)]
pub struct Tracked {
    pub rows: RowsResult,
    /// Rows deleted, or no longer readable by the caller, since the token.
    pub removed: Vec<Uuid>,
    pub token: DeltaToken,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn store_error(e: StoreError) -> ExecError {
    match e {
        StoreError::BadPosition(text) => ExecError::InvalidDeltaToken(text),
        e => ExecError::Store(e),
    }
}

impl Service {
    /// The first read of a tracked list (`Prefer: odata.track-changes`), or a later page of
    /// it (`start`: the token its first page took): the page as a plain list reads it, less
    /// the rows changed since the token (the first delta returns them), and the token.
    pub async fn track_changes(
        &self,
        db: &Guard<'_>,
        caller: &Caller,
        request: RowsRead,
        start: Option<DeltaToken>,
        retention_secs: i64,
    ) -> Result<Tracked, ExecError> {
        let entity = Arc::clone(&request.entity);
        self.refuse_untracked(&entity)?;
        let token = match start {
            Some(token) => {
                let floor = db.change_log_floor().await?;
                token.check_age_and_floor(now(), retention_secs, floor)?;
                token
            }
            None => DeltaToken {
                position: db
                    .changes_since(&entity, None)
                    .await
                    .map_err(store_error)?
                    .position,
                issued: now(),
            },
        };
        let ReadResult::Rows(mut rows) = self.read(db, caller, ReadRequest::Rows(request)).await?
        else {
            return Err(ExecError::InvalidArgument("not a list".into()));
        };
        let later = changed_ids(db, &entity, &token.position).await?;
        rows.rows
            .retain(|row| row.record.id().is_none_or(|id| !later.contains(&id)));
        Ok(Tracked {
            rows,
            removed: Vec::new(),
            token,
        })
    }

    /// A delta link's GET: the rows created or changed since `token` in the request's
    /// `$select` shape, the ids deleted (or no longer readable) since, and the next token.
    pub async fn delta(
        &self,
        db: &Guard<'_>,
        caller: &Caller,
        request: RowsRead,
        token: DeltaToken,
        retention_secs: i64,
    ) -> Result<Tracked, ExecError> {
        let entity = Arc::clone(&request.entity);
        self.refuse_untracked(&entity)?;
        let issued = now();
        // A position the store cannot have written is refused as invalid, before its age.
        let window = db
            .changes_since(&entity, Some(&token.position))
            .await
            .map_err(store_error)?;
        let floor = db.change_log_floor().await?;
        token.check_age_and_floor(issued, retention_secs, floor)?;
        let next = DeltaToken {
            position: window.position.clone(),
            issued,
        };
        let ids = last_changes(&window.changes);
        let mut found: HashMap<Uuid, Row> = HashMap::with_capacity(ids.len());
        let all: Vec<Uuid> = ids.iter().map(|(id, _)| *id).collect();
        for chunk in all.chunks(IDS_PER_READ) {
            let read = rows_with_ids(&request, chunk);
            let ReadResult::Rows(result) = self.read(db, caller, ReadRequest::Rows(read)).await?
            else {
                return Err(ExecError::InvalidArgument("not a list".into()));
            };
            for row in result.rows {
                if let Some(id) = row.record.id() {
                    found.insert(id, row);
                }
            }
        }
        let later = changed_ids(db, &entity, &next.position).await?;
        let mut rows = Vec::new();
        let mut removed = Vec::new();
        for (id, change) in ids {
            if later.contains(&id) {
                continue;
            }
            match found.remove(&id) {
                Some(row) => rows.push(row),
                None if change.deleted || change.access_changed => removed.push(id),
                None => {}
            }
        }
        let mut request = request;
        request.page.announces_more = false;
        Ok(Tracked {
            rows: RowsResult {
                request,
                rows,
                more: false,
                total: None,
            },
            removed,
            token: next,
        })
    }
}

impl Service {
    /// Whether `entity` tracks changes now (its `ChangeTrackingEnabled`, as the catalog last
    /// read it from the store).
    pub fn tracks_changes(&self, entity: &Entity) -> bool {
        self.catalog.tracking().tracks_changes(&entity.logical_name)
    }

    fn refuse_untracked(&self, entity: &Entity) -> Result<(), ExecError> {
        if self.tracks_changes(entity) {
            Ok(())
        } else {
            Err(ExecError::ChangeTrackingNotEnabled(
                entity.logical_name.clone(),
            ))
        }
    }
}

/// The ids changed after `position`.
async fn changed_ids(
    db: &Guard<'_>,
    entity: &Entity,
    position: &str,
) -> Result<HashSet<Uuid>, ExecError> {
    Ok(db
        .changes_since(entity, Some(position))
        .await
        .map_err(store_error)?
        .changes
        .iter()
        .map(|c| c.objectid)
        .collect())
}

/// What a window did to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowChange {
    /// The window's last change of the row is its delete.
    deleted: bool,
    /// The window assigned the row or changed or revoked a share of it.
    access_changed: bool,
}

/// Each changed id once, in the order of its last change, with what the window did to it.
fn last_changes(changes: &[LoggedChange]) -> Vec<(Uuid, RowChange)> {
    let mut rows: HashMap<Uuid, (i64, RowChange)> = HashMap::new();
    for change in changes {
        let (seq, row) = rows.entry(change.objectid).or_insert((
            change.seq,
            RowChange {
                deleted: false,
                access_changed: false,
            },
        ));
        *seq = change.seq;
        row.deleted = change.operation == LoggedChange::DELETE;
        row.access_changed |= ACCESS_ACTIONS.contains(&change.action);
    }
    let mut ids: Vec<(Uuid, i64, RowChange)> = rows
        .into_iter()
        .map(|(id, (seq, row))| (id, seq, row))
        .collect();
    ids.sort_by_key(|(_, seq, _)| *seq);
    ids.into_iter().map(|(id, _, c)| (id, c)).collect()
}

/// The request's shape (its `$select`, its names) over the rows with these ids.
fn rows_with_ids(request: &RowsRead, ids: &[Uuid]) -> RowsRead {
    let entity = &request.entity;
    let primary = entity.primary_id_position();
    let mut read = request.clone();
    read.filter = Some(Expr::QueryFn {
        name: QueryFnName::In,
        prop: PropertyRef {
            index: primary,
            name: entity.attributes[primary].property_name().to_string(),
        },
        values: ids.iter().map(|id| Literal::Guid(*id)).collect(),
    });
    read.order = Vec::new();
    read.expand = Vec::new();
    read.links = Vec::new();
    read.total_cap = None;
    read.page.size = ids.len().max(1);
    read.page.top = None;
    read.page.after = None;
    read.page.number = 1;
    read.page.announces_more = false;
    read.page.max_page_size = None;
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: i64, id: u128, action: i64) -> LoggedChange {
        LoggedChange {
            seq,
            objectid: Uuid::from_u128(id),
            action,
            operation: match action {
                1 | 3 => action,
                _ => 2,
            },
        }
    }

    #[test]
    fn tokens_read_back_and_refuse_what_this_server_cannot_have_written() {
        let token = DeltaToken {
            position: "10:12:10,11".into(),
            issued: 1_700_000_000,
        };
        assert_eq!(DeltaToken::parse(&token.text()).unwrap(), token);
        for bad in ["", "!", "abc", "5!x", "!17"] {
            assert!(
                matches!(DeltaToken::parse(bad), Err(ExecError::InvalidDeltaToken(_))),
                "{bad}"
            );
        }
        assert!(token.check_age(1_700_000_100, 100).is_ok());
        assert!(matches!(
            token.check_age(1_700_000_101, 100),
            Err(ExecError::ExpiredDeltaToken)
        ));
    }

    #[test]
    fn a_window_names_each_row_once_in_the_order_of_its_last_change() {
        let changes = [
            change(1, 1, 1),
            change(2, 2, 2),
            change(3, 1, 13),
            change(4, 3, 1),
            change(5, 3, 3),
            change(6, 2, 3),
            change(7, 4, 5),
        ];
        let ids = last_changes(&changes);
        let expected = [
            (1, false, true),
            (3, true, false),
            (2, true, false),
            (4, false, false),
        ];
        assert_eq!(ids.len(), expected.len());
        for ((id, c), (want, deleted, access)) in ids.iter().zip(expected) {
            assert_eq!(*id, Uuid::from_u128(want));
            assert_eq!(c.deleted, deleted, "{want}");
            assert_eq!(c.access_changed, access, "{want}");
        }
    }
}
