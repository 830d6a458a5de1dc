//! The change log's rows on SQLite, written by the writer thread itself (migration 17).
//!
//! Every create, update and delete of a row reaches SQLite through one function, the writer's
//! `apply` (`sqlite.rs`), inside the write's own SAVEPOINT. For a table whose settings log its
//! changes (`smsctx_changelog_settings`: change tracking or auditing on), `apply` writes the
//! log row here, in the same savepoint, with one prepared INSERT: the row is kept or rolled
//! back with the write it records, as the triggers of migrations 14 to 16 did. Rust builds the
//! audit JSON from values it already holds (the new record, the columns an update changes and
//! their old values, read with the version the update checks anyway), which costs a fraction of
//! SQLite's `json_object` over every column inside a trigger (BENCHMARKS.md, issue 15).
//!
//! The JSON is the one the triggers wrote, less the NULL members of a create and a delete: each
//! column as SQLite stores it (text, integers, GUIDs as lower-case hyphenated text, booleans as
//! 0 or 1), every stored column with a value for a create and a delete (the audit shows those
//! only, so a missing member reads as the NULL it was), and for an update only the columns
//! whose stored value changed, old and new (NULL included), leaving out the four every update
//! changes ([`EVERY_UPDATE`]). Shares
//! (`principalobjectaccess`) are still logged by their triggers. PostgreSQL keeps its triggers:
//! several nodes write there, and a trigger is the one place all of them pass.

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::types::Value as Sql;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::sql::TableSql;
use super::sqlite::Statements;
use super::{StoreError, Value};
use crate::metadata::system::{EVERY_UPDATE, MODIFIED_BY, MODIFIED_ON_BEHALF_BY, VERSION_NUMBER};
use crate::metadata::{AttributeType, Entity};
use crate::serialize::write_json_string;

/// The change log's actions and operations (Dataverse's audit codes).
const CREATE: i64 = 1;
const UPDATE: i64 = 2;
const DELETE: i64 = 3;
const ACTIVATE: i64 = 4;
const DEACTIVATE: i64 = 5;
const ASSIGN: i64 = 13;

/// How a table's writes are logged now; `None` from [`settings`] when they are not.
#[derive(Clone)]
pub(super) struct Logging {
    audited: bool,
    unaudited: Option<String>,
}

/// The table's logging settings, read in the write's transaction (an administrator may have
/// changed them since the last write).
fn settings(conn: &Connection, entity: &Entity) -> Result<Option<Logging>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT audited, unaudited FROM smsctx_changelog_settings \
             WHERE entity = ?1 AND logged",
        )?
        .query_row([&entity.logical_name], |r| {
            Ok(Logging {
                audited: r.get::<_, i64>(0)? != 0,
                unaudited: r.get(1)?,
            })
        })
        .optional()?)
}

/// The tables whose writes may change the logging settings, read from the schema: those with a
/// trigger that names `smsctx_changelog_settings` (the table, column and organisation audit
/// settings rewrite it). A trigger that only reads it (the shares') counts too: taking a table
/// for a source when it is not costs a re-read, the reverse a stale setting.
pub(super) fn settings_sources(conn: &Connection) -> Result<HashSet<String>, StoreError> {
    let sources = conn
        .prepare(
            "SELECT DISTINCT tbl_name FROM sqlite_schema WHERE type = 'trigger' \
             AND sql LIKE '%smsctx_changelog_settings%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(sources)
}

/// The logging settings of the tables one writer transaction writes, each read once rather
/// than once per write (about 3,900 instructions a row, BENCHMARKS.md). No other connection
/// writes while the writer's transaction is open, so they change only through a write of this
/// transaction to one of the `sources` ([`settings_sources`]); from the first of those on,
/// every write reads them again. That holds through a savepoint's rollback too: what was
/// cached before the first such write is what the rollback brings back.
pub(super) struct SettingsCache {
    sources: Arc<HashSet<String>>,
    known: Vec<(String, Option<Logging>)>,
    off: bool,
}

impl SettingsCache {
    pub(super) fn new(sources: Arc<HashSet<String>>) -> SettingsCache {
        SettingsCache {
            sources,
            known: Vec::new(),
            off: false,
        }
    }

    /// The settings for a write to `entity`, called once for each write (an insert calls it
    /// after its statement, an update and a delete before theirs) and before the next write.
    pub(super) fn for_write(
        &mut self,
        conn: &Connection,
        entity: &Entity,
    ) -> Result<Option<Logging>, StoreError> {
        if self.sources.contains(&entity.logical_name) {
            self.off = true;
            self.known.clear();
        }
        if self.off {
            return settings(conn, entity);
        }
        let name = &entity.logical_name;
        if let Some((_, logging)) = self.known.iter().find(|(known, _)| known == name) {
            return Ok(logging.clone());
        }
        let logging = settings(conn, entity)?;
        self.known.push((name.clone(), logging.clone()));
        Ok(logging)
    }
}

/// A value as SQLite stores it (the writer binds values the same way, `impl ToSql for Value`).
pub(super) fn stored(value: &Value) -> Sql {
    match value {
        Value::Null => Sql::Null,
        Value::Text(t) => Sql::Text(t.clone()),
        Value::Int(i) | Value::DateTime(i) => Sql::Integer(*i),
        Value::Float(f) => Sql::Real(*f),
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
        Value::Guid(g) => Sql::Text(g.hyphenated().to_string()),
    }
}

/// A JSON object built member by member, as SQLite's `json_object` writes it.
struct Json(Vec<u8>);

impl Json {
    fn new() -> Json {
        let mut bytes = Vec::with_capacity(512);
        bytes.push(b'{');
        Json(bytes)
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        write_json_string(&mut self.0, key);
        self.0.push(b':');
    }

    fn integer(&mut self, i: i64) {
        self.0
            .extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    }

    fn real(&mut self, f: f64) {
        match serde_json::Number::from_f64(f) {
            Some(n) => self.0.extend_from_slice(n.to_string().as_bytes()),
            None => self.0.extend_from_slice(b"null"),
        }
    }

    /// A member with a value as read from SQLite.
    fn member(&mut self, key: &str, value: &Sql) {
        self.key(key);
        match value {
            Sql::Null | Sql::Blob(_) => self.0.extend_from_slice(b"null"),
            Sql::Integer(i) => self.integer(*i),
            Sql::Real(f) => self.real(*f),
            Sql::Text(t) => write_json_string(&mut self.0, t),
        }
    }

    /// A member with a value as the writer binds it ([`stored`]), written without a copy.
    fn member_value(&mut self, key: &str, value: &Value) {
        self.key(key);
        match value {
            Value::Null => self.0.extend_from_slice(b"null"),
            Value::Text(t) => write_json_string(&mut self.0, t),
            Value::Int(i) | Value::DateTime(i) => self.integer(*i),
            Value::Bool(b) => self.integer(i64::from(*b)),
            Value::Float(f) => self.real(*f),
            Value::Guid(g) => {
                self.0.push(b'"');
                self.0.extend_from_slice(
                    g.hyphenated()
                        .encode_lower(&mut Uuid::encode_buffer())
                        .as_bytes(),
                );
                self.0.push(b'"');
            }
        }
    }

    fn finish(mut self) -> String {
        self.0.push(b'}');
        // Built from `str`s and ASCII punctuation: valid UTF-8.
        String::from_utf8(self.0).unwrap_or_default()
    }
}

/// One log row: what the INSERT binds besides the settings.
struct Change<'a> {
    entity: &'a str,
    id: Uuid,
    action: i64,
    operation: i64,
    version: i64,
    user: Sql,
    calling_user: Sql,
    old: Option<String>,
    new: Option<String>,
}

fn write(
    statements: &mut Statements<'_>,
    logging: &Logging,
    change: Change<'_>,
) -> Result<(), StoreError> {
    statements
        .prepared(
            "INSERT INTO smsctx_changelog (entity, objectid, action, operation, versionnumber, \
         userid, callinguserid, audited, unaudited, olddata, newdata) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            change.entity,
            change.id.hyphenated().to_string(),
            change.action,
            change.operation,
            change.version,
            change.user,
            change.calling_user,
            i64::from(logging.audited),
            logging.unaudited,
            change.old,
            change.new,
        ])?;
    Ok(())
}

fn value_at(entity: &Entity, values: &[Value], name: &str) -> Sql {
    entity
        .position(name)
        .map_or(Sql::Null, |p| stored(&values[p]))
}

/// Logs a created row; `version` is the one the insert bound.
pub(super) fn created(
    statements: &mut Statements<'_>,
    logging: &Logging,
    table: &TableSql,
    entity: &Entity,
    id: Uuid,
    values: &[Value],
    version: i64,
) -> Result<(), StoreError> {
    let new = logging.audited.then(|| {
        let mut json = Json::new();
        for &p in &table.stored {
            let name = entity.attributes[p].logical_name.as_str();
            if name == VERSION_NUMBER {
                json.member_value(name, &Value::Int(version));
            } else if !values[p].is_null() {
                json.member_value(name, &values[p]);
            }
        }
        json.finish()
    });
    write(
        statements,
        logging,
        Change {
            entity: &entity.logical_name,
            id,
            action: CREATE,
            operation: CREATE,
            version,
            user: value_at(entity, values, MODIFIED_BY),
            calling_user: value_at(entity, values, MODIFIED_ON_BEHALF_BY),
            old: None,
            new,
        },
    )
}

/// What an update's log needs of the row before it: its version, who modified it last, and
/// the old value of each column the update sets.
pub(super) struct Before {
    pub version: i64,
    user: Sql,
    calling_user: Sql,
    /// `(position, old value)` of each column the update sets, in `changes` order.
    columns: Vec<(usize, Sql)>,
}

/// The columns an update sets that the log compares: stored, not the version.
fn compared<'a>(
    entity: &'a Entity,
    changes: &'a [(usize, Value)],
) -> impl Iterator<Item = usize> + 'a {
    changes.iter().map(|(p, _)| *p).filter(|&p| {
        let attribute = &entity.attributes[p];
        attribute.is_stored() && attribute.logical_name != VERSION_NUMBER
    })
}

/// Reads [`Before`] of row `id`; `None` when there is no such row. One read by key, the same
/// the version check of an unlogged update makes, with a few more columns.
pub(super) fn before(
    conn: &Connection,
    entity: &Entity,
    id: Uuid,
    changes: &[(usize, Value)],
) -> Result<Option<Before>, StoreError> {
    fn name_of<'a>(entity: &Entity, name: &'a str) -> &'a str {
        entity.position(name).map_or("NULL", |_| name)
    }
    let mut text = format!(
        "SELECT {VERSION_NUMBER}, {}, {}",
        name_of(entity, MODIFIED_BY),
        name_of(entity, MODIFIED_ON_BEHALF_BY)
    );
    let positions: Vec<usize> = compared(entity, changes).collect();
    for &p in &positions {
        text.push_str(", ");
        text.push_str(&entity.attributes[p].logical_name);
    }
    text.push_str(&format!(
        " FROM {} WHERE {} = ?1",
        entity.logical_name, entity.primary_id
    ));
    Ok(conn
        .prepare_cached(&text)?
        .query_row([id.hyphenated().to_string()], |r| {
            let mut columns = Vec::with_capacity(positions.len());
            for (i, &p) in positions.iter().enumerate() {
                columns.push((p, r.get::<_, Sql>(3 + i)?));
            }
            Ok(Before {
                version: r.get(0)?,
                user: r.get(1)?,
                calling_user: r.get(2)?,
                columns,
            })
        })
        .optional()?)
}

/// Logs an update of row `id` from `before` by `changes` at `version`.
pub(super) fn updated(
    statements: &mut Statements<'_>,
    logging: &Logging,
    entity: &Entity,
    id: Uuid,
    changes: &[(usize, Value)],
    before: Before,
    version: i64,
) -> Result<(), StoreError> {
    let new_of = |position: usize| {
        changes
            .iter()
            .rev()
            .find(|(p, _)| *p == position)
            .map(|(_, v)| stored(v))
    };
    let mut action = UPDATE;
    let mut owner_changed = false;
    let (mut old_json, mut new_json) = (Json::new(), Json::new());
    for (position, old) in &before.columns {
        let Some(new) = new_of(*position) else {
            continue;
        };
        if *old == new {
            continue;
        }
        let attribute = &entity.attributes[*position];
        match attribute.attribute_type {
            AttributeType::State => {
                action = if new == Sql::Integer(0) {
                    ACTIVATE
                } else {
                    DEACTIVATE
                };
            }
            AttributeType::Owner => owner_changed = true,
            _ => {}
        }
        if logging.audited && !EVERY_UPDATE.contains(&attribute.logical_name.as_str()) {
            old_json.member(&attribute.logical_name, old);
            new_json.member(&attribute.logical_name, &new);
        }
    }
    if action == UPDATE && owner_changed {
        action = ASSIGN;
    }
    let (old, new) = match logging.audited {
        true => (Some(old_json.finish()), Some(new_json.finish())),
        false => (None, None),
    };
    let user_of = |name: &str, old: Sql| entity.position(name).and_then(new_of).unwrap_or(old);
    write(
        statements,
        logging,
        Change {
            entity: &entity.logical_name,
            id,
            action,
            operation: UPDATE,
            version,
            user: user_of(MODIFIED_BY, before.user),
            calling_user: user_of(MODIFIED_ON_BEHALF_BY, before.calling_user),
            old,
            new,
        },
    )
}

/// Reads the whole stored row `id` before a delete, for the audit (`None`: no such row): its
/// version and its JSON.
pub(super) fn before_delete(
    conn: &Connection,
    table: &TableSql,
    entity: &Entity,
    id: Uuid,
) -> Result<Option<(i64, String)>, StoreError> {
    Ok(conn
        .prepare_cached(&table.select)?
        .query_row([id.hyphenated().to_string()], |r| {
            let mut json = Json::new();
            let mut version = 0;
            for (i, &p) in table.stored.iter().enumerate() {
                let name = entity.attributes[p].logical_name.as_str();
                let value: Sql = r.get(i)?;
                if name == VERSION_NUMBER {
                    if let Sql::Integer(v) = value {
                        version = v;
                    }
                }
                if value != Sql::Null {
                    json.member(name, &value);
                }
            }
            Ok((version, json.finish()))
        })
        .optional()?)
}

/// Logs the delete of row `id` at `version`, with its last values when audited.
pub(super) fn deleted(
    statements: &mut Statements<'_>,
    logging: &Logging,
    entity: &Entity,
    id: Uuid,
    version: i64,
    old: Option<String>,
) -> Result<(), StoreError> {
    write(
        statements,
        logging,
        Change {
            entity: &entity.logical_name,
            id,
            action: DELETE,
            operation: DELETE,
            version,
            user: Sql::Null,
            calling_user: Sql::Null,
            old: old.filter(|_| logging.audited),
            new: None,
        },
    )
}

impl Logging {
    pub(super) fn audited(&self) -> bool {
        self.audited
    }
}

/// The fewest tail rows a fold takes (migration 19), unless told otherwise
/// (`SqliteOptions::fold_min`).
pub(super) const FOLD_MIN: i64 = 4096;

/// A fold is due when the tail holds at least this share (one part in so many) of the rows
/// folded before it: each page of `smsctx_changelog_byobject` then takes several new entries
/// per fold, where an index updated by every write took one.
const FOLD_SHARE: i64 = 8;

/// The most rows one fold takes, and the tail at which a fold is due whatever the share: it
/// bounds the pause of the writes behind a fold (0.6 s for 112,000 rows into 890,000 here,
/// so about 0.2 s at that size) and a reader's search of the tail (14-18 ms for 112,000 rows).
const FOLD_MAX: i64 = 32_768;

/// The writer's view of the fold (migration 19): the log rows up to `folded` are listed by
/// object in `smsctx_changelog_byobject`, the tail after it is found by `seq`. Only the writer
/// folds, in a transaction of its own between batches; the watermark it keeps here is the
/// table's, read at start and moved by each fold.
pub(super) struct Folding {
    folded: i64,
    min: i64,
}

impl Folding {
    pub(super) fn read(conn: &Connection, min: i64) -> Result<Folding, StoreError> {
        let folded = conn.query_row("SELECT seq FROM smsctx_changelog_folded", [], |r| r.get(0))?;
        Ok(Folding {
            folded,
            min: min.max(1),
        })
    }

    /// Folds the tail in when it is due; how many rows it took. Run outside any transaction.
    pub(super) fn fold_if_due(&mut self, conn: &mut Connection) -> Result<usize, StoreError> {
        let newest: i64 = conn
            .prepare_cached("SELECT coalesce(max(seq), 0) FROM smsctx_changelog")?
            .query_row([], |r| r.get(0))?;
        let due = self.min.max(self.folded / FOLD_SHARE).min(FOLD_MAX);
        if newest - self.folded < due {
            return Ok(0);
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let folded: i64 =
            tx.query_row("SELECT seq FROM smsctx_changelog_folded", [], |r| r.get(0))?;
        let upto = newest.min(folded + FOLD_MAX);
        // Sorted, so the b-tree is filled page after page. The watermark moves in the same
        // transaction, so no row is listed twice; OR IGNORE keeps a fold from failing if one
        // were (it would be listed the same).
        let taken = tx.execute(
            "INSERT OR IGNORE INTO smsctx_changelog_byobject (objectid, seq) \
             SELECT objectid, seq FROM smsctx_changelog \
             WHERE seq > ?1 AND seq <= ?2 AND entity <> '' ORDER BY objectid, seq",
            [folded, upto],
        )?;
        tx.execute("UPDATE smsctx_changelog_folded SET seq = ?1", [upto])?;
        tx.commit()?;
        self.folded = upto;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings' sources are found in the migrated schema: the three tables whose writes
    /// rewrite the settings are among them.
    #[test]
    fn the_settings_sources_are_read_from_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = crate::metadata::Catalog::builtin().unwrap();
        let path = dir.path().join("t.db");
        super::super::sqlite::SqliteStore::open(&path, &catalog)
            .unwrap()
            .close();
        let sources = settings_sources(&Connection::open(&path).unwrap()).unwrap();
        for table in ["smsctx_tablesettings", "smsctx_columnaudit", "organization"] {
            assert!(sources.contains(table), "{table} in {sources:?}");
        }
        assert!(!sources.contains("msdyn_smsengagementctx"), "{sources:?}");
    }

    #[test]
    fn json_is_sqlites() {
        let mut json = Json::new();
        json.member("a", &Sql::Text("x\"y\n".into()));
        json.member("b", &Sql::Integer(-3));
        json.member("c", &Sql::Null);
        json.member("d", &Sql::Real(1.5));
        assert_eq!(json.finish(), r#"{"a":"x\"y\n","b":-3,"c":null,"d":1.5}"#);
        assert_eq!(Json::new().finish(), "{}");
    }

    #[test]
    fn values_are_bound_as_the_writer_binds_them() {
        let g = Uuid::parse_str("A1B2C3D4-0000-4000-8000-00000000000F").unwrap();
        assert_eq!(
            stored(&Value::Guid(g)),
            Sql::Text("a1b2c3d4-0000-4000-8000-00000000000f".into())
        );
        assert_eq!(stored(&Value::Bool(true)), Sql::Integer(1));
        assert_eq!(stored(&Value::DateTime(7)), Sql::Integer(7));
    }
}
