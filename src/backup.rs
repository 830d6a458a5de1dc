//! `smsctx backup` and `smsctx restore`: a consistent online copy of a SQLite store, and putting
//! one back.
//!
//! A backup opens its own connection to the running store's file and holds one read transaction
//! for the whole run: SQLite's online backup API copies the pages of that snapshot (in WAL mode a
//! reader never blocks the writer, so the server keeps committing meanwhile), and the
//! verification reads the same snapshot: per table (every table of the file, the store's own
//! included) the row count and a SHA-256 over every row in rowid/primary-key order must be equal
//! in the copy. The copy is written to a new file next to the destination and renamed into place
//! only once verified, so a failed or interrupted backup never leaves a file that looks whole.
//!
//! A restore copies a backup file into a store path the same way and verifies it against the
//! backup. The server must be stopped while it runs (it caches principals and settings); an
//! existing store is replaced only with `--force`.
//!
//! PostgreSQL stores are backed up with PostgreSQL's own tools (`pg_dump`, base backups); see
//! the README.

use std::path::{Path, PathBuf};

use rusqlite::backup::Backup;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::store::sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "{0} is a PostgreSQL store: back it up with pg_dump or a base backup (see the README); \
         smsctx backup copies SQLite stores"
    )]
    Postgres(String),
    #[error("the store {0} does not exist")]
    Missing(String),
    #[error(
        "{0} exists already; choose a new file (or pass --force to restore over a stopped store)"
    )]
    Exists(String),
    #[error("{path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("verification failed for {table}: {detail}")]
    Verify { table: String, detail: String },
}

/// What was copied and checked for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: String,
    pub rows: u64,
    /// The SHA-256 (hex) of every row, equal on both sides.
    pub checksum: String,
}

/// Copies the SQLite store `database` (a `sqlite://` URL or a path) to the new file `to` while
/// it may be serving, and verifies the copy.
pub fn backup(database: &str, to: &Path) -> Result<Vec<TableReport>, BackupError> {
    let source = existing_sqlite(database)?;
    if to.exists() {
        return Err(BackupError::Exists(to.display().to_string()));
    }
    copy_verified(&source, to)
}

/// Puts the backup file `from` in place as the SQLite store `database` (which must not be
/// served meanwhile) and verifies it; an existing store is replaced only when `force`.
pub fn restore(from: &Path, database: &str, force: bool) -> Result<Vec<TableReport>, BackupError> {
    if !from.exists() {
        return Err(BackupError::Missing(from.display().to_string()));
    }
    let target = sqlite_path(database)?;
    if target.exists() && !force {
        return Err(BackupError::Exists(target.display().to_string()));
    }
    let reports = copy_verified(from, &target)?;
    // The old store's write-ahead log belongs to the old pages: without this, SQLite would
    // replay it over the restored file.
    for suffix in ["-wal", "-shm"] {
        let side = with_suffix(&target, suffix);
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&side, e)),
        }
    }
    Ok(reports)
}

fn sqlite_path(database: &str) -> Result<PathBuf, BackupError> {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        return Err(BackupError::Postgres(database.to_string()));
    }
    Ok(SqliteStore::path_from_url(database))
}

fn existing_sqlite(database: &str) -> Result<PathBuf, BackupError> {
    let path = sqlite_path(database)?;
    if !path.exists() {
        return Err(BackupError::Missing(path.display().to_string()));
    }
    Ok(path)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

fn io(path: &Path, source: std::io::Error) -> BackupError {
    BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Copies the database at `from` into a new file beside `to` from one read snapshot, checks
/// every table of the copy against that snapshot, then renames the copy to `to`.
fn copy_verified(from: &Path, to: &Path) -> Result<Vec<TableReport>, BackupError> {
    let source = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(from))?;
    source
        .busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sqlite(from))?;
    // One snapshot for the copy and its verification: the first read starts it.
    source.execute_batch("BEGIN").map_err(sqlite(from))?;
    let tables = tables(&source).map_err(sqlite(from))?;

    let partial = with_suffix(to, ".partial");
    let _ = std::fs::remove_file(&partial);
    let result = (|| {
        let mut copy = Connection::open(&partial).map_err(sqlite(&partial))?;
        Backup::new(&source, &mut copy)
            .and_then(|backup| backup.step(-1).map(|_| ()))
            .map_err(sqlite(&partial))?;
        // A standalone file: no write-ahead log beside it.
        copy.pragma_update(None, "journal_mode", "DELETE")
            .map_err(sqlite(&partial))?;
        let mut reports = Vec::with_capacity(tables.len());
        for (table, order) in &tables {
            let (rows, sum) = checksum(&source, table, order).map_err(sqlite(from))?;
            let (copied, copied_sum) = checksum(&copy, table, order).map_err(sqlite(&partial))?;
            if rows != copied {
                return Err(BackupError::Verify {
                    table: table.clone(),
                    detail: format!("{rows} rows in the source, {copied} in the copy"),
                });
            }
            if sum != copied_sum {
                return Err(BackupError::Verify {
                    table: table.clone(),
                    detail: format!("checksum {sum} in the source, {copied_sum} in the copy"),
                });
            }
            reports.push(TableReport {
                table: table.clone(),
                rows,
                checksum: sum,
            });
        }
        drop(copy);
        Ok(reports)
    })();
    match result {
        Ok(reports) => {
            std::fs::rename(&partial, to).map_err(|e| io(to, e))?;
            Ok(reports)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Every table of the file with the columns that order its rows: the primary key's columns, or
/// the rowid for a table without one.
fn tables(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    names
        .into_iter()
        .map(|table| {
            let mut key: Vec<(i64, String)> = conn
                .prepare("SELECT pk, name FROM pragma_table_info(?1) WHERE pk > 0")?
                .query_map([&table], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            key.sort();
            let order = if key.is_empty() {
                "rowid".to_string()
            } else {
                key.iter()
                    .map(|(_, column)| quote(column))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Ok((table, order))
        })
        .collect()
}

/// An identifier of the file's own schema, quoted for SQL.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The number of rows of `table` and a SHA-256 over all of them (type and value of each
/// column) in key order.
fn checksum(conn: &Connection, table: &str, order: &str) -> rusqlite::Result<(u64, String)> {
    let mut statement =
        conn.prepare(&format!("SELECT * FROM {} ORDER BY {order}", quote(table)))?;
    let columns = statement.column_count();
    let mut rows = statement.query([])?;
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        for i in 0..columns {
            match row.get_ref(i)? {
                ValueRef::Null => hasher.update(b"n"),
                ValueRef::Integer(v) => {
                    hasher.update(b"i");
                    hasher.update(v.to_le_bytes());
                }
                ValueRef::Real(v) => {
                    hasher.update(b"r");
                    hasher.update(v.to_le_bytes());
                }
                ValueRef::Text(v) | ValueRef::Blob(v) => {
                    hasher.update(b"t");
                    hasher.update((v.len() as u64).to_le_bytes());
                    hasher.update(v);
                }
            }
        }
        count += 1;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((count, hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_rows(path: &Path, rows: i64) {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, blob BLOB, score REAL);
             CREATE TABLE k (a TEXT, b TEXT, PRIMARY KEY (b, a)) WITHOUT ROWID;
             CREATE TABLE loose (x);",
        )
        .unwrap();
        for i in 0..rows {
            conn.execute(
                "INSERT INTO t (id, name, blob, score) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![i, format!("row {i}"), vec![i as u8; 3], i as f64 / 3.0],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO k VALUES (?1, ?2)",
                [format!("a{i}"), format!("b{}", rows - i)],
            )
            .unwrap();
        }
        conn.execute("INSERT INTO loose VALUES (NULL)", []).unwrap();
    }

    #[test]
    fn a_backup_is_verified_and_restores_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store.db");
        store_with_rows(&store, 50);
        let copy = dir.path().join("copy.db");
        let reports = backup(store.to_str().unwrap(), &copy).unwrap();
        let rows: Vec<(&str, u64)> = reports.iter().map(|r| (r.table.as_str(), r.rows)).collect();
        assert_eq!(rows, vec![("k", 50), ("loose", 1), ("t", 50)]);
        assert!(!with_suffix(&copy, ".partial").exists());
        // Refused: the copy exists.
        assert!(matches!(
            backup(store.to_str().unwrap(), &copy),
            Err(BackupError::Exists(_))
        ));
        // Restored over a store that changed since: only with --force, and then equal.
        let conn = Connection::open(&store).unwrap();
        conn.execute("DELETE FROM t WHERE id < 10", []).unwrap();
        drop(conn);
        let url = format!("sqlite://{}", store.display());
        assert!(matches!(
            restore(&copy, &url, false),
            Err(BackupError::Exists(_))
        ));
        let restored = restore(&copy, &url, true).unwrap();
        assert_eq!(restored, reports);
        let n: i64 = Connection::open(&store)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 50);
    }

    #[test]
    fn checksums_see_every_value() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.db");
        store_with_rows(&a, 5);
        let conn = Connection::open(&a).unwrap();
        let before = checksum(&conn, "t", "\"id\"").unwrap();
        conn.execute("UPDATE t SET score = score + 1e-9 WHERE id = 3", [])
            .unwrap();
        let after = checksum(&conn, "t", "\"id\"").unwrap();
        assert_eq!(before.0, after.0);
        assert_ne!(before.1, after.1);
    }

    #[test]
    fn postgres_and_missing_stores_are_refused_with_a_pointer() {
        let dir = tempfile::tempdir().unwrap();
        let e = backup("postgres://u@h/db", &dir.path().join("x")).unwrap_err();
        assert!(e.to_string().contains("pg_dump"), "{e}");
        let e = backup("sqlite:///nowhere/at/all.db", &dir.path().join("x")).unwrap_err();
        assert!(matches!(e, BackupError::Missing(_)), "{e}");
    }
}
