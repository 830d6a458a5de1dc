//! `smsctx migrate --from URL --to postgres://...`: copies a whole store into PostgreSQL.
//!
//! Every table of the catalog is read from the source in pages in primary-id order (through the
//! [`Store`] trait, so any backend can be the source) and written with
//! [`PostgresStore::copy_rows`]: ids, versions, owners and every other column as they are, one
//! transaction per page. A row already in the target is overwritten only by a newer version, so
//! the copy can be stopped and run again: it resumes without duplicates, and a second run after
//! more writes to the source catches up (deletes are not carried over: stop writing to the
//! source before the last run). The version sequence ends past every copied version. The store
//! settings (the seeded business unit and administrator) are copied too; a target that was
//! already seeded by another store is refused.
//!
//! Verification: per table, the row count and a SHA-256 over every row (in primary-id order)
//! must be equal on both sides.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::{Backend, SETTING_KEYS};
use crate::metadata::{Catalog, Entity};
use crate::store::postgres::PostgresStore;
use crate::store::sql::{Context, Keyset, Plan};
use crate::store::{Query, Record, Store, StoreError, Value};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the entity metadata did not load: {0}")]
    Metadata(#[from] crate::metadata::markdown::ImportError),
    #[error("{0}")]
    Open(#[from] crate::app::AppError),
    #[error("the source {0} does not exist")]
    Source(String),
    #[error("the target must be a postgres:// URL, not '{0}'")]
    Target(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "the target's setting {key} is {target}, the source's {source_value}: the target was \
         seeded by another store; migrate into an empty database"
    )]
    SettingConflict {
        key: String,
        source_value: String,
        target: String,
    },
    #[error("verification failed for {table}: {detail}")]
    Verify { table: String, detail: String },
}

/// What was copied and checked for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: String,
    pub rows: u64,
    /// Rows inserted or brought up to date in this run (0 when the target had them all).
    pub written: u64,
    /// The SHA-256 (hex) of every row, equal on both sides.
    pub checksum: String,
}

/// Copies every table from `from` to `to` in pages of `batch` rows, then verifies counts and
/// checksums. `progress` is called with the table, the rows done and the total.
pub async fn migrate(
    from: &str,
    to: &str,
    batch: usize,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<Vec<TableReport>, MigrateError> {
    // With the SMS channel's internal tables: channels and deliveries move too.
    let catalog = Arc::new(Catalog::with_channels()?);
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(MigrateError::Target(to.to_string()));
    }
    if from.starts_with("sqlite:") || !from.contains("://") {
        let path = crate::store::sqlite::SqliteStore::path_from_url(from);
        if !path.exists() {
            return Err(MigrateError::Source(path.display().to_string()));
        }
    }
    let source = Backend::open(from, &catalog, 4).await?;
    let source = source.as_store();
    let target = PostgresStore::open(to, &catalog, 4).await?;
    let batch = batch.max(1);

    for key in SETTING_KEYS {
        if let Some(value) = source.setting(key).await? {
            let set = target.init_setting(key, &value).await?;
            if set != value {
                return Err(MigrateError::SettingConflict {
                    key: key.to_string(),
                    source_value: value,
                    target: set,
                });
            }
        }
    }

    let mut reports = Vec::new();
    // The audit table is a view of the change log, not rows of its own.
    for entity in catalog
        .entities()
        .iter()
        .filter(|e| e.logical_name != crate::metadata::system::AUDIT)
    {
        let total = source
            .count(all_rows(entity, None, None), usize::MAX)
            .await?;
        let mut done = 0;
        let mut written = 0;
        let mut after = None;
        progress(&entity.logical_name, 0, total);
        loop {
            let page = source
                .query(all_rows(entity, Some(batch), after.take()))
                .await?;
            written += target.copy_rows(entity, &page).await?;
            done += page.len() as u64;
            progress(&entity.logical_name, done.min(total), total);
            match page.last().and_then(Record::id) {
                Some(id) if page.len() == batch => after = Some(id),
                _ => break,
            }
        }
        let (source_rows, source_sum) = checksum(&*source, entity, batch).await?;
        let (target_rows, target_sum) = checksum(&target, entity, batch).await?;
        if source_rows != target_rows {
            return Err(MigrateError::Verify {
                table: entity.logical_name.clone(),
                detail: format!("{source_rows} rows in the source, {target_rows} in the target"),
            });
        }
        if source_sum != target_sum {
            return Err(MigrateError::Verify {
                table: entity.logical_name.clone(),
                detail: format!("checksum {source_sum} in the source, {target_sum} in the target"),
            });
        }
        reports.push(TableReport {
            table: entity.logical_name.clone(),
            rows: source_rows,
            written,
            checksum: source_sum,
        });
    }
    target.close();
    Ok(reports)
}

/// Every row of `entity` in primary-id order, `limit` at a time, after the row `after`.
fn all_rows(entity: &Arc<Entity>, limit: Option<usize>, after: Option<Uuid>) -> Query {
    Query {
        plan: Plan {
            entity: Arc::clone(entity),
            filter: None,
            order: Vec::new(),
            limit,
            after: after.map(|id| Keyset {
                values: vec![Value::Guid(id)],
            }),
            scope: None,
            related: None,
        },
        context: Context {
            now: 0,
            user_id: Uuid::nil(),
            business_unit_id: Uuid::nil(),
        },
        with_names: false,
    }
}

/// The number of rows of `entity` and a SHA-256 over all of them in primary-id order.
async fn checksum(
    store: &dyn Store,
    entity: &Arc<Entity>,
    batch: usize,
) -> Result<(u64, String), StoreError> {
    let mut hasher = Sha256::new();
    let mut rows = 0;
    let mut after = None;
    loop {
        let page = store
            .query(all_rows(entity, Some(batch), after.take()))
            .await?;
        for record in &page {
            for value in &record.values {
                hasher.update(format!("{value:?}\u{1f}").as_bytes());
            }
            hasher.update(b"\x1e");
        }
        rows += page.len() as u64;
        match page.last().and_then(Record::id) {
            Some(id) if page.len() == batch => after = Some(id),
            _ => break,
        }
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((rows, hex))
}

/// A progress bar on a terminal, erased when each table is done (the report that follows the
/// copy lists every table once); nothing otherwise.
pub fn progress_bar() -> impl FnMut(&str, u64, u64) {
    let terminal = std::io::stderr().is_terminal();
    let mut finished = String::new();
    move |table: &str, done: u64, total: u64| {
        if done == total {
            if finished == table {
                return;
            }
            finished = table.to_string();
        }
        let mut err = std::io::stderr();
        if terminal {
            let width = 30;
            let filled = (done * width as u64)
                .checked_div(total)
                .map_or(width, |n| n as usize)
                .min(width);
            let _ = write!(
                err,
                "\r{table:<24} [{}{}] {done}/{total}",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            if done == total {
                // The bar is erased: the report after the copy lists every table once.
                let _ = write!(err, "\r\x1b[2K");
            }
        }
    }
}
