//! Lowering of a typed query plan to SQL text plus bound parameters, one [`Dialect`] per database.
//!
//! A [`Plan`] (the bound `$filter`, the `$orderby` keys, a row limit and a keyset cursor) becomes
//! `SELECT {columns} FROM {table} AS t{joins} WHERE ... ORDER BY ... LIMIT ?` ([`select_sql`]) or
//! a capped `COUNT(*)` ([`count_sql`]). Everything a database does its own way (placeholder
//! syntax, how a Guid, date or boolean is bound, case-insensitive text comparison, NULL placement
//! in `ORDER BY`, pattern matching) is a method of [`Dialect`]: [`Sqlite`] and [`Postgres`]
//! implement it, and give the same rows for the same plan (the differential tests run each
//! against the same Rust evaluation).
//!
//! **Architecture invariant:** no value from a request is ever written into SQL text. Values
//! (literals, cursor values, the row limit) travel as bound parameters; table and column names
//! come only from the metadata and are checked to be plain identifiers.
//!
//! # Semantics
//!
//! * **NULLs** follow SQL (and so SQL Server, which Dataverse runs on): `eq null` is `IS NULL`,
//!   `ne null` is `IS NOT NULL`, and every other comparison with a NULL column is unknown, so
//!   `ne 'x'`, `not contains(...)`, `NotIn`, `NotBetween` and `NotEqualUserId` do **not** match
//!   rows where the column is NULL (Dataverse's well-known "not equal skips nulls"). `not` is
//!   SQL's three-valued `NOT`.
//! * **Text** compares case-insensitively. SQLite gets this from the `COLLATE NOCASE` columns
//!   (ASCII folding only: `'Ä'` and `'ä'` differ, unlike SQL Server's collations); PostgreSQL
//!   compares `lower(x COLLATE "C")`, which folds exactly the same letters and sorts the same.
//! * **`contains`/`startswith`/`endswith`** (and FetchXML's `like`, whose value is the whole
//!   pattern) are SQL Server `LIKE` patterns, as in Dataverse:
//!   `%` and `_` inside the value are wildcards, `[abc]`, `[a-c]` and `[^abc]` are character
//!   classes and `[%]` is a literal `%` ([`Pattern`]). SQLite's `LIKE` has no classes: a pattern
//!   without one becomes `LIKE` (with `ESCAPE '\'` when it holds a literal `%` or `_`), a
//!   pattern with one becomes `lower(column) GLOB` with a translated, lowercased pattern.
//!   A `[` without a closing `]`, `[]` and `[^]` are literal text. Ranges compare code points of
//!   the lowercased characters; a range whose start sorts after its end is refused
//!   ([`SqlError::UnsupportedPattern`]).
//! * **Guids** bind as their stored form (SQLite: lowercase hyphenated text; PostgreSQL: `uuid`,
//!   whose order is that text's); they compare and sort as that text, not in SQL Server's
//!   `uniqueidentifier` byte order. **Dates** bind as Unix seconds (PostgreSQL: the same
//!   instant as a `timestamptz`); a date literal (`2024-05-01`) is its midnight UTC.
//! * **Relative dates** are evaluated against [`Context::now`] in UTC days (the caller's time
//!   zone is not applied). With `midnight` the start of the current UTC day:
//!   `Today`/`Yesterday`/`Tomorrow` are that whole day; `LastXHours` is from the start of the
//!   hour X hours ago up to now; `NextXHours` from now up to (excluding) the start of the hour
//!   X+1 hours ahead; `LastXDays`/`LastXWeeks`/`LastXMonths`/`LastXYears` from `midnight` minus
//!   X days/7X days/X calendar months/X years (day clamped to the month's length) up to now,
//!   inclusive; `NextXDays` from now up to (excluding) `midnight` + X+1 days, i.e. through the
//!   end of day X; `OlderThanXDays` before `midnight` minus X days; `On` is the UTC day of the
//!   value, `OnOrAfter` from its start, `OnOrBefore` up to its end (a time in the value is
//!   ignored). Sources: Dynamics CRM's own SQL helpers `fn_BeginOfLastXDay`,
//!   `fn_EndOfNextXDay`, `fn_BeginOfLastXHour`, `fn_EndOfNextXHour`, `fn_BeginOfLastXWeek`,
//!   `fn_LastXMonth`, `fn_LastXYear`, `fn_EndOfToday` (as published in
//!   phuocle/DynamicsCrmSource), and Mark Carrington's measurements against Dataverse
//!   ("FetchXML Date Filtering", markcarrington.dev, 2020-08-25: "Last X: from midnight this
//!   morning go back X whole periods, up to the current time; Next X: from the current time up
//!   to midnight tonight plus X periods"). `OlderThanXDays` taking `midnight` as its reference is
//!   our reading by analogy; it is not confirmed.
//! * **`In`/`Between`** are SQL `IN (...)` and `BETWEEN ... AND ...` (both ends inclusive) over
//!   the typed values. `EqualUserId`/`EqualBusinessId` compare with [`Context::user_id`] and
//!   [`Context::business_unit_id`].
//! * **Ordering** is the plan's keys, then the primary id in the direction of the last key
//!   (ascending without keys), so the order is total. NULLs sort as the smallest value, as in
//!   SQL Server: first when ascending, last when descending; the dialect writes this out.
//! * **Keyset paging** ([`Keyset`]): given the last row's key values and id, the rows strictly
//!   after it are `k1 after v1 OR (k1 same v1 AND k2 after v2) OR ...`, where for an ascending
//!   key "after v" is `k > v` (`k IS NOT NULL` when v is NULL) and for a descending key it is
//!   `k < v OR k IS NULL` (nothing when v is NULL), and "same v" is `k = v` (`k IS NULL`).
//!   Because the same comparisons (same collation) order the rows, paging visits every row
//!   exactly once, in the order of one unpaged query. That `OR` is no index range, so both
//!   databases would walk the order's index from its start and discard the earlier pages; when
//!   every key has the same direction and every cursor value is non-null it is written as the
//!   equivalent row-value comparison `(k1, ..., id) > (v1, ..., i)` (`<` descending), which
//!   SQLite (3.15 and later) and PostgreSQL both seek. It is equivalent when no NULL follows the
//!   cursor (ascending, or no nullable key); for one descending nullable key the NULLs follow,
//!   and the page is read as two statements, the range and then `k IS NULL`
//!   ([`select_tail_sql`]).

use std::sync::Arc;

use uuid::Uuid;

use super::Value;
use crate::metadata::{Attribute, AttributeType, Entity};
use crate::query::apply::{Aggregate, AggregateFn};
use crate::query::{
    ChildJoin, CmpOp, Expr, Hop, Literal, OrderBy, PropertyRef, QueryFnName, StringFn,
};

const SECONDS_PER_HOUR: i64 = 3_600;
const SECONDS_PER_DAY: i64 = 86_400;

/// What to read: the typed form of a RetrieveMultiple (or one page of it).
#[derive(Debug, Clone)]
pub struct Plan {
    pub entity: Arc<Entity>,
    pub filter: Option<Expr>,
    pub order: Vec<OrderBy>,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Only the rows after this one in the plan's order.
    pub after: Option<Keyset>,
    /// Only the rows the caller may read (added by the authorize layer).
    pub scope: Option<Scope>,
    /// The row scope of each table the filter reaches through a relationship (added by the
    /// authorize layer, `None` in a scope: every row); `None` for an unguarded plan. A
    /// guarded plan whose filter reaches a table missing here is not lowered.
    pub related: Option<Vec<(String, Option<Scope>)>>,
}

/// The rows a caller may read, as the authorize layer computed them, in the store's terms:
/// `business_unit IN (business_units_in) OR <id> IN (SELECT <id> WHERE owner IN (owner_in) UNION
/// ALL SELECT object FROM shares WHERE principal IN (principals) AND mask & right <> 0)`, each
/// part left out when its list is empty; no part at all selects nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Column position of the owner (the primary id for business-owned tables).
    pub owner: usize,
    pub owner_in: Vec<Uuid>,
    /// Column position of the owning business unit.
    pub business_unit: usize,
    pub business_units_in: Vec<Uuid>,
    pub shares: Option<ShareScope>,
}

/// The share table and what a row of it must say for the row it points at to be readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareScope {
    /// Table and column names, from the metadata.
    pub table: String,
    pub object: String,
    pub principal: String,
    pub mask: String,
    pub principals: Vec<Uuid>,
    /// The access right (a bit of `mask`) that must be set.
    pub right: i64,
}

impl Scope {
    /// A scope that selects no row.
    pub fn nothing(entity: &Entity) -> Scope {
        let id = entity.primary_id_position();
        Scope {
            owner: id,
            owner_in: Vec::new(),
            business_unit: id,
            business_units_in: Vec::new(),
            shares: None,
        }
    }
}

/// A keyset cursor: the last row's values of the plan's order keys, in order, then its primary
/// id.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyset {
    pub values: Vec<Value>,
}

impl Plan {
    /// Every row `filter` selects, in no particular order (the primary id's), without a page.
    pub fn filtered(entity: &Arc<Entity>, filter: Option<Expr>) -> Plan {
        Plan {
            entity: Arc::clone(entity),
            filter,
            order: Vec::new(),
            limit: None,
            after: None,
            scope: None,
            related: None,
        }
    }
}

impl Keyset {
    /// The cursor of `row` (one value per column of `entity`, by position) under `order`.
    pub fn of_row(entity: &Entity, order: &[OrderBy], row: &[Value]) -> Keyset {
        let value = |index: usize| row.get(index).cloned().unwrap_or(Value::Null);
        let mut values: Vec<Value> = order.iter().map(|key| value(key.prop.index)).collect();
        values.push(value(entity.primary_id_position()));
        Keyset { values }
    }
}

/// What the relative-date and current-user query functions are evaluated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Unix seconds, UTC.
    pub now: i64,
    pub user_id: Uuid,
    pub business_unit_id: Uuid,
}

/// Why a plan cannot be lowered. The parser never produces most of these; they guard plans
/// built by hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// A guarded plan's filter reaches a table the authorize layer gave no row scope for.
    #[error("no row scope for the related table {0}")]
    MissingScope(String),
    #[error("the property '{name}' is not a stored column of {entity}")]
    NotStored { entity: String, name: String },
    #[error("'{0}' is not a plain SQL identifier")]
    BadIdentifier(String),
    #[error("a comparison with null must use eq or ne")]
    NullComparison,
    #[error("{function} was given values it cannot take")]
    BadValues { function: &'static str },
    #[error("{function} with the value {value} reaches a date out of range")]
    DateOutOfRange { function: &'static str, value: i64 },
    #[error("the paging cursor has {actual} values; this ordering needs {expected}")]
    KeysetLength { expected: usize, actual: usize },
    #[error("the paging cursor has no primary id")]
    KeysetWithoutId,
    #[error("the pattern has {reason}, which this database cannot match")]
    UnsupportedPattern { reason: &'static str },
    #[error("an aggregate plan orders by output column {0}, which it does not have")]
    BadAggregateOrder(usize),
}

impl SqlError {
    /// Whether the request's values caused this (a 400), rather than a plan built wrongly (a bug).
    pub fn is_caused_by_input(&self) -> bool {
        matches!(
            self,
            SqlError::BadValues { .. }
                | SqlError::DateOutOfRange { .. }
                | SqlError::UnsupportedPattern { .. }
                | SqlError::KeysetLength { .. }
                | SqlError::KeysetWithoutId
        )
    }
}

/// The SQL a database writes its own way.
pub trait Dialect {
    /// The text of the `n`-th bound parameter, counting from 1 (`?1`, `$1`).
    fn placeholder(&self, n: usize) -> String;

    /// A Guid, as bound.
    fn bind_guid(&self, id: Uuid) -> Value;

    /// A date and time in Unix seconds (UTC), as bound.
    fn bind_datetime(&self, unix_seconds: i64) -> Value;

    /// A boolean, as bound.
    fn bind_bool(&self, value: bool) -> Value;

    /// A text operand (a column or a placeholder) in a comparison or an `ORDER BY` term, such
    /// that comparing and sorting it is case-insensitive.
    fn text_operand(&self, operand: &str) -> String;

    /// One `ORDER BY` term, with NULLs first ascending and last descending (SQL Server's order).
    fn order_term(&self, operand: &str, descending: bool) -> String;

    /// ` LIMIT <placeholder>`, the row limit bound as a parameter.
    fn limit_clause(&self, placeholder: &str) -> String {
        format!(" LIMIT {placeholder}")
    }

    /// The condition "text column `column` matches `pattern`", case-insensitively, using the
    /// one bound parameter `placeholder`; returns the condition and the parameter's value.
    fn pattern_match(
        &self,
        column: &str,
        pattern: &Pattern,
        placeholder: &str,
    ) -> Result<(String, Value), SqlError>;

    /// The average of a numeric column as a floating-point value.
    fn average(&self, column: &str) -> String {
        format!("AVG({column})")
    }

    /// The sum of an integer column as an integer.
    fn sum(&self, column: &str) -> String {
        format!("SUM({column})")
    }

    /// The value a group shows for a text column it is grouped by case-insensitively (grouped
    /// by [`Dialect::text_operand`]). SQLite groups a `NOCASE` column by itself and shows one of
    /// the group's values.
    fn group_text_value(&self, column: &str) -> String {
        column.to_string()
    }

    /// A NULL of text type, in a select list.
    fn null_text(&self) -> &'static str {
        "NULL"
    }

    /// The expression that draws a new version in SQL, when the database assigns versions; else
    /// the caller binds them (SQLite's writer thread counts them).
    fn next_version(&self) -> Option<&'static str> {
        None
    }
}

/// The embedded SQLite database.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqlite;

impl Dialect for Sqlite {
    fn placeholder(&self, n: usize) -> String {
        ["?", itoa::Buffer::new().format(n)].concat()
    }

    fn bind_guid(&self, id: Uuid) -> Value {
        Value::Text(id.hyphenated().to_string())
    }

    fn bind_datetime(&self, unix_seconds: i64) -> Value {
        Value::Int(unix_seconds)
    }

    fn bind_bool(&self, value: bool) -> Value {
        Value::Int(i64::from(value))
    }

    /// Text columns are declared `COLLATE NOCASE`, and SQLite compares and sorts a column with
    /// its own collation (also against a parameter), so nothing needs wrapping.
    fn text_operand(&self, operand: &str) -> String {
        operand.to_string()
    }

    /// `LIMIT +?n`, not `LIMIT ?n`: SQLite's planner reads a bare parameter's value for the
    /// limit, which marks the prepared statement as depending on that binding, so every request
    /// with a new bound value re-prepared it on its first step (most of a filter's cost, seen
    /// with callgrind: `sqlite3Reprepare`); an expression keeps the cached plan. The unit test
    /// `a_bound_limit_keeps_the_prepared_statement` checks it.
    fn limit_clause(&self, placeholder: &str) -> String {
        [" LIMIT +", placeholder].concat()
    }

    fn order_term(&self, operand: &str, descending: bool) -> String {
        if descending {
            format!("{operand} DESC NULLS LAST")
        } else {
            format!("{operand} ASC NULLS FIRST")
        }
    }

    /// `LIKE` (case-insensitive for ASCII in SQLite) when the pattern has no character class;
    /// otherwise `GLOB`, which has classes but is case-sensitive, over the lowercased column
    /// with a lowercased pattern.
    fn pattern_match(
        &self,
        column: &str,
        pattern: &Pattern,
        placeholder: &str,
    ) -> Result<(String, Value), SqlError> {
        Ok(if pattern.has_class() {
            let text = sqlite_glob(pattern)?;
            (
                format!("lower({column}) GLOB {placeholder}"),
                Value::Text(text),
            )
        } else {
            let (text, escaped) = sqlite_like(pattern);
            let escape = if escaped { " ESCAPE '\\'" } else { "" };
            (
                format!("{column} LIKE {placeholder}{escape}"),
                Value::Text(text),
            )
        })
    }
}

/// PostgreSQL, with text columns declared `COLLATE "C"`.
///
/// Its semantics are SQLite's, made explicit: a text operand is `lower(x COLLATE "C")`, which
/// folds ASCII letters only (PostgreSQL's `lower` under the C collation, exactly SQLite's
/// `NOCASE`) and compares and sorts by code point (the C collation is byte order, and byte order
/// of UTF-8 is code point order), whatever the database's default collation is. The schema has
/// expression indexes on the same `lower(column COLLATE "C")` text, so equality, ranges and
/// anchored patterns on indexed text columns still use an index. Guids bind as `uuid`, whose
/// order is the order of their lowercase hyphenated text; dates as `timestamptz`; booleans as
/// `boolean`. Patterns become an anchored POSIX regular expression over the lowered column.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postgres;

impl Dialect for Postgres {
    fn null_text(&self) -> &'static str {
        "NULL::text"
    }

    fn next_version(&self) -> Option<&'static str> {
        Some("nextval('smsctx_versionnumber')")
    }

    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }

    fn bind_guid(&self, id: Uuid) -> Value {
        Value::Guid(id)
    }

    fn bind_datetime(&self, unix_seconds: i64) -> Value {
        Value::DateTime(unix_seconds)
    }

    fn bind_bool(&self, value: bool) -> Value {
        Value::Bool(value)
    }

    fn text_operand(&self, operand: &str) -> String {
        format!("lower({operand} COLLATE \"C\")")
    }

    fn order_term(&self, operand: &str, descending: bool) -> String {
        if descending {
            format!("{operand} DESC NULLS LAST")
        } else {
            format!("{operand} ASC NULLS FIRST")
        }
    }

    /// `AVG` of a `bigint` is `numeric` in PostgreSQL; SQLite's is a double.
    fn average(&self, column: &str) -> String {
        format!("AVG({column})::double precision")
    }

    /// `SUM` of a `bigint` is `numeric` in PostgreSQL; SQLite's is an integer (and an error on
    /// overflow, as the cast is here).
    fn sum(&self, column: &str) -> String {
        format!("SUM({column})::bigint")
    }

    /// The group's smallest spelling (by code point) of its case-insensitive value.
    fn group_text_value(&self, column: &str) -> String {
        format!("MIN({column})")
    }

    /// `lower(column COLLATE "C") ~ pattern`: an anchored regular expression, lowercased (ASCII)
    /// like the column, with every character that is not a letter or digit escaped.
    fn pattern_match(
        &self,
        column: &str,
        pattern: &Pattern,
        placeholder: &str,
    ) -> Result<(String, Value), SqlError> {
        let regex = postgres_regex(pattern)?;
        Ok((
            format!("{} ~ {placeholder}", self.text_operand(column)),
            Value::Text(regex),
        ))
    }
}

/// An anchored PostgreSQL (ARE) regular expression matching what `pattern` matches, over text
/// lowercased (ASCII) as `lower(x COLLATE "C")` does. In an ARE, `\` followed by a character
/// that is not a letter or digit is that character, also inside brackets; `.` and `[^...]`
/// match a newline (the default, not newline-sensitive, mode).
fn postgres_regex(pattern: &Pattern) -> Result<String, SqlError> {
    let literal = |text: &mut String, c: char| {
        if !c.is_ascii() || c.is_ascii_alphanumeric() {
            text.push(c);
        } else {
            text.push('\\');
            text.push(c);
        }
    };
    let mut text = String::from("^");
    for part in &pattern.parts {
        match part {
            PatternPart::AnyString => text.push_str(".*"),
            PatternPart::AnyChar => text.push('.'),
            PatternPart::Char(c) => literal(&mut text, c.to_ascii_lowercase()),
            PatternPart::Class { negated, items } => {
                text.push('[');
                if *negated {
                    text.push('^');
                }
                for (low, high) in glob_class(*negated, items)? {
                    literal(&mut text, low);
                    if low != high {
                        text.push('-');
                        literal(&mut text, high);
                    }
                }
                text.push(']');
            }
        }
    }
    text.push('$');
    Ok(text)
}

/// A `LIKE` pattern for SQLite, and whether it needs `ESCAPE '\'`.
fn sqlite_like(pattern: &Pattern) -> (String, bool) {
    let escaped = pattern
        .parts
        .iter()
        .any(|p| matches!(p, PatternPart::Char('%' | '_')));
    let mut text = String::new();
    for part in &pattern.parts {
        match part {
            PatternPart::AnyString => text.push('%'),
            PatternPart::AnyChar => text.push('_'),
            PatternPart::Char(c @ ('%' | '_' | '\\')) if escaped => {
                text.push('\\');
                text.push(*c);
            }
            PatternPart::Char(c) => text.push(*c),
            // Callers send patterns with classes to `GLOB`.
            PatternPart::Class { .. } => text.push('_'),
        }
    }
    (text, escaped)
}

/// A `GLOB` pattern for SQLite, lowercased (ASCII) to match `lower(column)`.
fn sqlite_glob(pattern: &Pattern) -> Result<String, SqlError> {
    let mut text = String::new();
    let literal = |text: &mut String, c: char| {
        if matches!(c, '*' | '?' | '[') {
            text.push('[');
            text.push(c);
            text.push(']');
        } else {
            text.push(c);
        }
    };
    for part in &pattern.parts {
        match part {
            PatternPart::AnyString => text.push('*'),
            PatternPart::AnyChar => text.push('?'),
            PatternPart::Char(c) => literal(&mut text, c.to_ascii_lowercase()),
            PatternPart::Class { negated, items } => {
                let ranges = glob_class(*negated, items)?;
                if let (false, [(low, high)]) = (*negated, ranges.as_slice()) {
                    if low == high {
                        literal(&mut text, *low);
                        continue;
                    }
                }
                text.push('[');
                if *negated {
                    text.push('^');
                }
                // Every member is written as a range `a-b` (which resets SQLite's notion of the
                // previous character, so a '-' is never misread), except letters and digits:
                // sorted, nothing after them starts with '-'.
                for (low, high) in ranges {
                    if low == high && low.is_ascii_alphanumeric() {
                        text.push(low);
                    } else {
                        text.push(low);
                        text.push('-');
                        text.push(high);
                    }
                }
                text.push(']');
            }
        }
    }
    Ok(text)
}

/// The members of a class as sorted, lowercased ranges, arranged so that a class that is not
/// negated does not start with '^' (which `GLOB` would read as negation).
fn glob_class(negated: bool, items: &[ClassItem]) -> Result<Vec<(char, char)>, SqlError> {
    let mut ranges: Vec<(char, char)> = items
        .iter()
        .map(|item| match *item {
            ClassItem::Char(c) => (c.to_ascii_lowercase(), c.to_ascii_lowercase()),
            ClassItem::Range(a, b) => (a.to_ascii_lowercase(), b.to_ascii_lowercase()),
        })
        .collect();
    if ranges.iter().any(|(low, high)| low > high) {
        return Err(SqlError::UnsupportedPattern {
            reason: "a character range whose start sorts after its end",
        });
    }
    ranges.sort_unstable();
    ranges.dedup();
    if !negated && ranges.first().is_some_and(|&(low, _)| low == '^') {
        match ranges.iter().position(|&(low, _)| low != '^') {
            Some(i) => {
                let first = ranges.remove(i);
                ranges.insert(0, first);
            }
            None => {
                // Every range starts at '^': their union is '^' through the highest end, which
                // is '^' alone or '_' (the next character) onwards plus '^'.
                let high = ranges.iter().map(|&(_, high)| high).max().unwrap_or('^');
                ranges = if high == '^' {
                    vec![('^', '^')]
                } else {
                    vec![('_', high), ('^', '^')]
                };
            }
        }
    }
    Ok(ranges)
}

/// One element of a [`Pattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternPart {
    /// `%`: any run of characters, possibly empty.
    AnyString,
    /// `_`: exactly one character.
    AnyChar,
    /// A character matched as itself (case-insensitively).
    Char(char),
    /// `[...]` or `[^...]`: one character in (or not in) the set.
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
}

/// One member of a character class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassItem {
    Char(char),
    /// `a-z`, both ends included.
    Range(char, char),
}

/// A SQL Server `LIKE` pattern, as Dataverse passes the value of `contains` and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub parts: Vec<PatternPart>,
}

impl Pattern {
    /// Reads SQL Server `LIKE` syntax: `%`, `_`, and `[...]`/`[^...]` classes running to the
    /// first `]`, where `a-z` is a range unless the `-` is first or last. A class holding one
    /// character is that character (`[%]` is a literal `%`). A `[` with no closing `]`, and the
    /// empty `[]` and `[^]`, are literal text.
    pub fn parse(text: &str) -> Pattern {
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '%' => parts.push(PatternPart::AnyString),
                '_' => parts.push(PatternPart::AnyChar),
                '[' => {
                    if let Some((part, next)) = class_at(&chars, i) {
                        parts.push(part);
                        i = next;
                        continue;
                    }
                    parts.push(PatternPart::Char('['));
                }
                c => parts.push(PatternPart::Char(c)),
            }
            i += 1;
        }
        Pattern { parts }
    }

    /// The pattern of `contains(p,value)`, `startswith` or `endswith`.
    pub fn for_function(func: StringFn, value: &str) -> Pattern {
        let mut parts = Vec::new();
        if matches!(func, StringFn::Contains | StringFn::EndsWith) {
            parts.push(PatternPart::AnyString);
        }
        parts.extend(Pattern::parse(value).parts);
        if matches!(func, StringFn::Contains | StringFn::StartsWith) {
            parts.push(PatternPart::AnyString);
        }
        Pattern { parts }
    }

    pub fn has_class(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, PatternPart::Class { .. }))
    }
}

/// The class starting at `chars[start] == '['`, and the index after its `]`.
fn class_at(chars: &[char], start: usize) -> Option<(PatternPart, usize)> {
    let mut first = start + 1;
    let negated = chars.get(first) == Some(&'^');
    if negated {
        first += 1;
    }
    let close = first + chars.get(first..)?.iter().position(|&c| c == ']')?;
    let content = &chars[first..close];
    if content.is_empty() {
        return None;
    }
    let mut items = Vec::new();
    let mut k = 0;
    while k < content.len() {
        if k + 2 < content.len() && content[k + 1] == '-' {
            items.push(ClassItem::Range(content[k], content[k + 2]));
            k += 3;
        } else {
            items.push(ClassItem::Char(content[k]));
            k += 1;
        }
    }
    let part = match items.as_slice() {
        [ClassItem::Char(c)] if !negated => PatternPart::Char(*c),
        _ => PatternPart::Class { negated, items },
    };
    Some((part, close + 1))
}

/// `SELECT {columns} FROM {table} AS t{joins} [WHERE ...] ORDER BY ... [LIMIT ?]`, and its
/// parameters. `columns` and `joins` are the caller's SQL (built from metadata), with the
/// entity's table aliased `t`; `joins` starts with a space when not empty.
pub fn select_sql(
    dialect: &dyn Dialect,
    plan: &Plan,
    ctx: &Context,
    columns: &str,
    joins: &str,
) -> Result<(String, Vec<Value>), SqlError> {
    select(dialect, plan, ctx, columns, joins, false)
}

/// The second statement of a page whose cursor splits (one descending nullable key after a
/// non-null value, see [`Keyset`]): [`select_sql`] then reads the key range as a row-value
/// comparison an index can seek, and this one the rows whose key is NULL, which follow it in
/// the order. The store runs it when the first statement returned fewer rows than the limit,
/// and appends its rows. `None` when the plan's cursor reads in one statement.
pub fn select_tail_sql(
    dialect: &dyn Dialect,
    plan: &Plan,
    ctx: &Context,
    columns: &str,
    joins: &str,
) -> Result<Option<(String, Vec<Value>)>, SqlError> {
    let Some(after) = &plan.after else {
        return Ok(None);
    };
    let lowering = Lowering::new(dialect, &plan.entity, ctx);
    let keys = lowering.sort_keys(&plan.order)?;
    if !splits(&keys, after) {
        return Ok(None);
    }
    select(dialect, plan, ctx, columns, joins, true).map(Some)
}

/// Whether the rows after `after` are a row-value range followed by a NULL tail: a single
/// nullable key (then the primary id), descending, after a non-null value. NULLs sort last
/// descending, so those rows are `(k, id) < (v, i)` and then every row with `k IS NULL`; an
/// `OR` of the two is no range, and both databases would walk the index from its start.
fn splits(keys: &[SortKey<'_>], after: &Keyset) -> bool {
    keys.len() == 2
        && keys[0].nullable
        && keys[0].descending
        && after.values.iter().all(|v| !v.is_null())
}

fn select(
    dialect: &dyn Dialect,
    plan: &Plan,
    ctx: &Context,
    columns: &str,
    joins: &str,
    tail: bool,
) -> Result<(String, Vec<Value>), SqlError> {
    let mut lowering = Lowering::new(dialect, &plan.entity, ctx);
    lowering.tail = tail;
    let table = ident(&plan.entity.logical_name)?;
    let condition = lowering.condition(plan, true)?;
    let order = lowering.order_terms(&lowering.sort_keys(&plan.order)?);
    // `concat`, not `format!`: this runs for every list read, and formatting cost three
    // times as much (callgrind).
    let mut sql = [
        "SELECT ",
        columns,
        " FROM ",
        table,
        " AS t",
        joins,
        &condition,
        " ORDER BY ",
        &order,
    ]
    .concat();
    if let Some(limit) = plan.limit {
        let placeholder = lowering.bind(Value::Int(to_i64(limit)));
        sql.push_str(&dialect.limit_clause(&placeholder));
    }
    Ok((sql, lowering.params))
}

/// A rows plan with a one-to-many join (a FetchXML `link-entity` of link-type `inner` or
/// `outer`): `root` holds the queried table's filter, order, row limit, scope and related
/// scopes (the authorize layer adds there the scope of the joined table and of every table the
/// join's filter reaches); its cursor does not apply, the page is an offset into the joined rows.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    pub root: Plan,
    pub join: ChildJoin,
    /// Joined rows to skip (the pages before this one).
    pub offset: usize,
}

/// The alias of a one-to-many join's table.
const JOIN_ALIAS: &str = "l1";

/// `SELECT {columns}, l1.{stored columns of the child} FROM {table} AS t{joins} {INNER|LEFT} JOIN
/// {child} AS l1 ON l1.{lookup} = t.{id} AND (join filter) AND <scope of child> [WHERE ...]
/// ORDER BY <root keys>, t.{id}, <child keys>, l1.{id} LIMIT ? OFFSET ?`, and its parameters.
/// The child's columns follow the caller's `columns`, in `Entity::stored_attributes` order;
/// they are all NULL for a root row an outer join found no child for. The order is total, so
/// consecutive offsets page the joined rows exactly once each.
pub fn select_join_sql(
    dialect: &dyn Dialect,
    plan: &JoinPlan,
    ctx: &Context,
    columns: &str,
    joins: &str,
) -> Result<(String, Vec<Value>), SqlError> {
    let mut lowering = Lowering::new(dialect, &plan.root.entity, ctx);
    let table = ident(&plan.root.entity.logical_name)?;
    let condition = lowering.condition(&plan.root, false)?;
    let join = lowering.child_join(&plan.join)?;
    let child: &Entity = &plan.join.child.0;
    let child_columns = child
        .stored_attributes()
        .map(|(_, a)| Ok(format!("{JOIN_ALIAS}.{}", ident(&a.logical_name)?)))
        .collect::<Result<Vec<_>, SqlError>>()?
        .join(", ");
    let mut order = lowering.order_terms(&lowering.sort_keys(&plan.root.order)?);
    let child_order = lowering.within_join(&plan.join, |l| {
        let keys = l.sort_keys(&plan.join.order)?;
        Ok(l.order_terms(&keys))
    })?;
    order.push_str(", ");
    order.push_str(&child_order);
    let mut sql = format!(
        "SELECT {columns}, {child_columns} FROM {table} AS t{joins}{join}{condition} ORDER BY {order}"
    );
    let limit = lowering.bind(Value::Int(to_i64(plan.root.limit.unwrap_or(usize::MAX))));
    let offset = lowering.bind(Value::Int(to_i64(plan.offset)));
    sql.push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
    Ok((sql, lowering.params))
}

/// `SELECT COUNT(*) FROM (SELECT 1 FROM {table} AS t{joins} [WHERE ...] LIMIT ?) AS c`: the
/// number of rows the plan's filter selects, counting no further than `cap`. The plan's order,
/// limit and cursor do not apply.
/// What a `$apply` (or an aggregate FetchXML) reads: groups of the filtered rows and the
/// aggregates of each group.
#[derive(Debug, Clone)]
pub struct AggregatePlan {
    pub entity: Arc<Entity>,
    pub filter: Option<Expr>,
    /// Only the rows the caller may read (added by the authorize layer).
    pub scope: Option<Scope>,
    /// As [`Plan::related`]; it also holds the scope of every table in `through`.
    pub related: Option<Vec<(String, Option<Scope>)>>,
    /// Per output column (groups, then aggregates), the lookup crossed to read it: `LEFT JOIN
    /// target AS g<k> ON g<k>.id = t.lookup AND <scope of target>`, so an unreadable or
    /// missing row reads as NULL. Empty: none.
    pub through: Vec<Option<Hop>>,
    /// A one-to-many join (`INNER` or `LEFT JOIN child AS l1 ON l1.lookup = t.id AND (filter)
    /// AND <scope of child>`): the groups are of the joined rows.
    pub join: Option<ChildJoin>,
    /// Per output column, whether it is a column of the joined table; empty: none.
    pub from_join: Vec<bool>,
    pub group_by: Vec<PropertyRef>,
    pub aggregates: Vec<Aggregate>,
    /// Output columns (group values, then aggregates) to sort by first, and whether
    /// descending; the groups follow, ascending.
    pub order: Vec<(usize, bool)>,
    /// At most this many groups.
    pub limit: Option<usize>,
}

impl AggregatePlan {
    /// The type of `prop`, the column of output column `output` (groups, then aggregates):
    /// a column of the plan's table, or of the table its lookup in `through` reaches.
    pub fn column_type(&self, output: usize, prop: &PropertyRef) -> AttributeType {
        let table = match (self.through.get(output), &self.join) {
            (_, Some(join)) if self.from_join.get(output) == Some(&true) => &join.child.0,
            (Some(Some(hop)), _) => &hop.target.0,
            _ => &self.entity,
        };
        table.attributes[prop.index].attribute_type
    }
}

/// `SELECT <groups>, <aggregates> FROM t WHERE ... GROUP BY <groups> ORDER BY <order>, <groups>
/// [LIMIT ?]`; each result row holds the group values, then the aggregates, in plan order. The
/// sort keys order as every other order does (NULLs first ascending, text case-insensitive).
pub fn aggregate_sql(
    dialect: &dyn Dialect,
    plan: &AggregatePlan,
    ctx: &Context,
) -> Result<(String, Vec<Value>), SqlError> {
    let filter_plan = Plan {
        scope: plan.scope.clone(),
        related: plan.related.clone(),
        ..Plan::filtered(&plan.entity, plan.filter.clone())
    };
    let mut lowering = Lowering::new(dialect, &plan.entity, ctx);
    let table = ident(&plan.entity.logical_name)?;
    let condition = lowering.condition(&filter_plan, false)?;
    // One LEFT JOIN per lookup crossed, under the caller's scope of its target.
    let mut hops: Vec<&Hop> = Vec::new();
    let mut joins = String::new();
    for hop in plan.through.iter().flatten() {
        if hops.iter().any(|h| h.lookup.index == hop.lookup.index) {
            continue;
        }
        hops.push(hop);
        joins.push_str(&lowering.join(hop, hops.len())?);
    }
    if let Some(join) = &plan.join {
        joins.push_str(&lowering.child_join(join)?);
    }
    let through = |output: usize| {
        if let (Some(join), Some(true)) = (&plan.join, plan.from_join.get(output)) {
            return Some((&*join.child.0, JOIN_ALIAS.to_string()));
        }
        plan.through
            .get(output)
            .and_then(Option::as_ref)
            .and_then(|hop| {
                let k = hops
                    .iter()
                    .position(|h| h.lookup.index == hop.lookup.index)?;
                Some((&*hop.target.0, format!("g{}", k + 1)))
            })
    };
    // Text groups are case-insensitive, like every text comparison.
    let mut groups = Vec::with_capacity(plan.group_by.len());
    let mut select = Vec::with_capacity(plan.group_by.len() + plan.aggregates.len());
    for (output, prop) in plan.group_by.iter().enumerate() {
        let column = lowering.column_through(prop, through(output))?;
        select.push(if column.is_text() {
            dialect.group_text_value(&column.sql)
        } else {
            column.sql.clone()
        });
        groups.push(lowering.operand(&column));
    }
    // What each output column sorts by: a group's operand, an aggregate's expression.
    let mut sort_operands = groups.clone();
    for (i, aggregate) in plan.aggregates.iter().enumerate() {
        let (column, distinct) = match &aggregate.prop {
            Some(prop) => {
                let column = lowering.column_through(prop, through(plan.group_by.len() + i))?;
                let distinct = lowering.operand(&column);
                (Some(column.sql), distinct)
            }
            None => (None, "*".to_string()),
        };
        let column = column.as_deref().unwrap_or("*");
        select.push(match aggregate.function {
            AggregateFn::Count => "COUNT(*)".to_string(),
            AggregateFn::CountColumn => format!("COUNT({column})"),
            AggregateFn::CountDistinct => format!("COUNT(DISTINCT {distinct})"),
            AggregateFn::Sum => dialect.sum(column),
            AggregateFn::Average => dialect.average(column),
            AggregateFn::Min => format!("MIN({column})"),
            AggregateFn::Max => format!("MAX({column})"),
        });
        sort_operands.push(select.last().cloned().unwrap_or_default());
    }
    let mut sql = format!(
        "SELECT {} FROM {table} AS t{joins}{condition}",
        select.join(", ")
    );
    let mut order: Vec<String> = Vec::with_capacity(plan.order.len() + groups.len());
    for &(column, descending) in &plan.order {
        let operand = sort_operands
            .get(column)
            .ok_or(SqlError::BadAggregateOrder(column))?;
        order.push(dialect.order_term(operand, descending));
    }
    order.extend(groups.iter().map(|g| dialect.order_term(g, false)));
    if !groups.is_empty() {
        sql.push_str(&format!(" GROUP BY {}", groups.join(", ")));
    }
    if !order.is_empty() {
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    if let Some(limit) = plan.limit {
        let placeholder = lowering.bind(Value::Int(to_i64(limit)));
        sql.push_str(&dialect.limit_clause(&placeholder));
    }
    Ok((sql, lowering.params))
}

pub fn count_sql(
    dialect: &dyn Dialect,
    plan: &Plan,
    ctx: &Context,
    joins: &str,
    cap: usize,
) -> Result<(String, Vec<Value>), SqlError> {
    let mut lowering = Lowering::new(dialect, &plan.entity, ctx);
    let table = ident(&plan.entity.logical_name)?;
    let condition = lowering.condition(plan, false)?;
    let placeholder = lowering.bind(Value::Int(to_i64(cap)));
    let limit = dialect.limit_clause(&placeholder);
    let sql =
        format!("SELECT COUNT(*) FROM (SELECT 1 FROM {table} AS t{joins}{condition}{limit}) AS c");
    Ok((sql, lowering.params))
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The prefix of every alternate key's unique index.
pub const KEY_INDEX_PREFIX: &str = "smsctx_key_";

/// An alternate key's unique index over its columns, `smsctx_key_<key>_<table hash>` (index
/// names are global to the database; the table's part is hashed to stay within PostgreSQL's 63
/// bytes): the statement that creates it and the one that drops it. Every name must be a plain identifier, so nothing a client sent is spliced in
/// unchecked.
///
/// A text column is indexed as the dialect compares it ([`Dialect::text_operand`]), so that
/// values differing only in case are one key on both backends, as in Dataverse: SQLite's
/// `NOCASE` column as itself, PostgreSQL's as the expression `lower(column COLLATE "C")`.
pub fn key_index(
    dialect: &dyn Dialect,
    key: &super::StoredKey,
    text_columns: &[String],
) -> Result<(String, String), SqlError> {
    let table = ident(&key.entity)?;
    let hash = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, table.as_bytes()).simple();
    let name = format!(
        "{KEY_INDEX_PREFIX}{}_{}",
        ident(&key.logical_name)?,
        &hash.to_string()[..8]
    );
    let columns = key
        .attributes
        .iter()
        .map(|c| {
            let column = ident(c)?;
            let operand = dialect.text_operand(column);
            Ok(if !text_columns.contains(c) || operand == column {
                column.to_string()
            } else {
                format!("({operand})")
            })
        })
        .collect::<Result<Vec<_>, SqlError>>()?
        .join(", ");
    Ok((
        format!("CREATE UNIQUE INDEX {name} ON {table} ({columns})"),
        format!("DROP INDEX {name}"),
    ))
}

/// `name` when it is a plain lowercase identifier (what the metadata's logical names are).
fn ident(name: &str) -> Result<&str, SqlError> {
    let plain = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(name)
    } else {
        Err(SqlError::BadIdentifier(name.to_string()))
    }
}

/// How tightly a piece of SQL binds, to parenthesize it only where needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Binding {
    Or,
    And,
    Atom,
}

struct Sql {
    text: String,
    binding: Binding,
}

impl Sql {
    fn atom(text: String) -> Sql {
        Sql {
            text,
            binding: Binding::Atom,
        }
    }

    /// The text, parenthesized if it binds more loosely than `context` needs.
    fn within(self, context: Binding) -> String {
        if self.binding < context {
            format!("({})", self.text)
        } else {
            self.text
        }
    }
}

/// A column of the plan's entity, as SQL.
struct Column<'a> {
    sql: String,
    attribute: &'a Attribute,
}

impl Column<'_> {
    fn is_text(&self) -> bool {
        matches!(
            self.attribute.attribute_type,
            AttributeType::String | AttributeType::Memo | AttributeType::EntityName
        )
    }
}

struct SortKey<'a> {
    column: Column<'a>,
    descending: bool,
    nullable: bool,
}

/// A half-open or closed range of Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateRange {
    /// The first second, included.
    from: Option<i64>,
    /// The end, and whether it is included.
    to: Option<(i64, bool)>,
}

struct Lowering<'a> {
    dialect: &'a dyn Dialect,
    /// The table the expression being lowered is bound against, and its alias (`t` for the
    /// plan's, `r1`, `r2`, ... inside relationship subqueries).
    entity: &'a Entity,
    alias: String,
    /// How many relationship subqueries enclose the current expression.
    depth: usize,
    /// The plan's [`Plan::related`].
    related: Option<&'a [(String, Option<Scope>)]>,
    ctx: &'a Context,
    params: Vec<Value>,
    /// Lower a split cursor's second statement, the NULL tail (see [`select_tail_sql`]).
    tail: bool,
}

impl<'a> Lowering<'a> {
    fn new(dialect: &'a dyn Dialect, entity: &'a Entity, ctx: &'a Context) -> Self {
        Lowering {
            dialect,
            entity,
            alias: "t".to_string(),
            depth: 0,
            related: None,
            ctx,
            params: Vec::new(),
            tail: false,
        }
    }

    /// `SELECT r<n>.{column} FROM {table} AS r<n> WHERE r<n>.{column} IS NOT NULL AND {inner}
    /// AND {scope}` over `table` as reached through a relationship: `inner` is lowered against
    /// `table` (when `negate`, as `(inner) IS NOT TRUE`), and the caller's row scope of `table`
    /// applies. The selected values are never NULL, so an `IN` over them is true or false.
    fn subquery(
        &mut self,
        table: &'a Entity,
        column: usize,
        inner: Option<&'a Expr>,
        negate: bool,
    ) -> Result<String, SqlError> {
        let scope = self.related_scope(table)?;
        let name = ident(&table.logical_name)?;
        let saved_entity = std::mem::replace(&mut self.entity, table);
        self.depth += 1;
        let alias = format!("r{}", self.depth);
        let saved_alias = std::mem::replace(&mut self.alias, alias.clone());
        let result = (|| {
            let selected = self.column_at(column, "related column")?.sql;
            let mut parts = vec![format!("{selected} IS NOT NULL")];
            if let Some(inner) = inner {
                let text = self.expr(inner)?.text;
                parts.push(if negate {
                    format!("({text}) IS NOT TRUE")
                } else {
                    format!("({text})")
                });
            }
            if let Some(scope) = scope {
                parts.push(self.scope(scope)?.text);
            }
            Ok(format!(
                "SELECT {selected} FROM {name} AS {alias} WHERE {}",
                parts.join(" AND ")
            ))
        })();
        self.alias = saved_alias;
        self.depth -= 1;
        self.entity = saved_entity;
        result
    }

    /// ` LEFT JOIN {target} AS g<k> ON g<k>.{id} = t.{lookup} AND <scope of target>`.
    fn join(&mut self, hop: &'a Hop, k: usize) -> Result<String, SqlError> {
        let target: &'a Entity = &hop.target.0;
        let scope = self.related_scope(target)?;
        let lookup = self.column(&hop.lookup)?.sql;
        let name = ident(&target.logical_name)?;
        let alias = format!("g{k}");
        let id = ident(&target.attributes[target.primary_id_position()].logical_name)?;
        let saved_entity = std::mem::replace(&mut self.entity, target);
        let saved_alias = std::mem::replace(&mut self.alias, alias.clone());
        let scope = scope.map(|scope| self.scope(scope)).transpose();
        self.alias = saved_alias;
        self.entity = saved_entity;
        let mut on = format!("{alias}.{id} = {lookup}");
        if let Some(scope) = scope? {
            on.push_str(&format!(" AND {}", scope.text));
        }
        Ok(format!(" LEFT JOIN {name} AS {alias} ON {on}"))
    }

    /// ` {INNER|LEFT} JOIN {child} AS l1 ON l1.{lookup} = t.{id} [AND (filter)] [AND <scope of
    /// child>]`: the filter and the caller's row scope of the child are part of the join, so an
    /// outer join keeps a root row whose children are all filtered out or unreadable, once.
    fn child_join(&mut self, join: &'a ChildJoin) -> Result<String, SqlError> {
        let child: &'a Entity = &join.child.0;
        let scope = self.related_scope(child)?;
        let id = self
            .column_at(self.entity.primary_id_position(), "primary id")?
            .sql;
        let name = ident(&child.logical_name)?;
        let on = self.within_join(join, |l| {
            let lookup = l.column(&join.lookup)?.sql;
            let mut parts = vec![format!("{lookup} = {id}")];
            if let Some(filter) = &join.filter {
                parts.push(l.expr(filter)?.within(Binding::And));
            }
            if let Some(scope) = scope {
                parts.push(l.scope(scope)?.within(Binding::And));
            }
            Ok(parts.join(" AND "))
        })?;
        let kind = if join.outer {
            "LEFT JOIN"
        } else {
            "INNER JOIN"
        };
        Ok(format!(" {kind} {name} AS {JOIN_ALIAS} ON {on}"))
    }

    /// Runs `lower` with the join's table as the current table, under its alias.
    fn within_join<T>(
        &mut self,
        join: &'a ChildJoin,
        lower: impl FnOnce(&mut Self) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let saved_entity = std::mem::replace(&mut self.entity, &join.child.0);
        let saved_alias = std::mem::replace(&mut self.alias, JOIN_ALIAS.to_string());
        let result = lower(self);
        self.alias = saved_alias;
        self.entity = saved_entity;
        result
    }

    /// `ORDER BY` terms of sort keys: NULLs first ascending, as SQL Server orders them.
    fn order_terms(&self, keys: &[SortKey<'_>]) -> String {
        keys.iter()
            .map(|key| {
                let operand = self.operand(&key.column);
                if key.nullable {
                    self.dialect.order_term(&operand, key.descending)
                } else {
                    // The primary id is never NULL: a bare direction lets the database walk its
                    // key index (PostgreSQL's is NULLS LAST ascending) in either direction.
                    [
                        operand.as_str(),
                        if key.descending { " DESC" } else { " ASC" },
                    ]
                    .concat()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `prop` of the plan's table, or (with `through`) of a joined table under its alias.
    fn column_through(
        &self,
        prop: &PropertyRef,
        through: Option<(&'a Entity, String)>,
    ) -> Result<Column<'a>, SqlError> {
        let Some((entity, alias)) = through else {
            return self.column(prop);
        };
        let attribute = entity
            .attributes
            .get(prop.index)
            .filter(|a| a.is_stored())
            .ok_or_else(|| SqlError::NotStored {
                entity: entity.logical_name.clone(),
                name: prop.name.clone(),
            })?;
        Ok(Column {
            sql: format!("{alias}.{}", ident(&attribute.logical_name)?),
            attribute,
        })
    }

    /// The caller's row scope of a table reached through a relationship (`None`: every row,
    /// or an unguarded plan); a guarded plan without one for `table` is not lowered.
    fn related_scope(&self, table: &Entity) -> Result<Option<&'a Scope>, SqlError> {
        match self.related {
            None => Ok(None),
            Some(related) => related
                .iter()
                .find(|(name, _)| *name == table.logical_name)
                .map(|(_, scope)| scope.as_ref())
                .ok_or_else(|| SqlError::MissingScope(table.logical_name.clone())),
        }
    }

    /// Adds a parameter and returns its placeholder.
    fn bind(&mut self, value: Value) -> String {
        self.params.push(value);
        self.dialect.placeholder(self.params.len())
    }

    /// Binds `value` to be compared with `column`.
    fn bind_for(&mut self, column: &Column<'_>, value: Value) -> String {
        let placeholder = self.bind(value);
        if column.is_text() {
            self.dialect.text_operand(&placeholder)
        } else {
            placeholder
        }
    }

    fn column(&self, prop: &PropertyRef) -> Result<Column<'a>, SqlError> {
        self.column_at(prop.index, &prop.name)
    }

    fn column_at(&self, index: usize, name: &str) -> Result<Column<'a>, SqlError> {
        let entity: &'a Entity = self.entity;
        let attribute = entity
            .attributes
            .get(index)
            .filter(|a| a.is_stored())
            .ok_or_else(|| SqlError::NotStored {
                entity: entity.logical_name.clone(),
                name: name.to_string(),
            })?;
        Ok(Column {
            sql: [self.alias.as_str(), ".", ident(&attribute.logical_name)?].concat(),
            attribute,
        })
    }

    /// The column as an operand of a comparison or an `ORDER BY` term.
    fn operand(&self, column: &Column<'_>) -> String {
        if column.is_text() {
            self.dialect.text_operand(&column.sql)
        } else {
            column.sql.clone()
        }
    }

    /// A literal of the column's type, as bound.
    fn literal(&self, literal: &Literal) -> Result<Value, SqlError> {
        Ok(match literal {
            Literal::Null => return Err(SqlError::NullComparison),
            Literal::String(s) => Value::Text(s.clone()),
            Literal::Int(n) => Value::Int(*n),
            Literal::Guid(g) => self.dialect.bind_guid(*g),
            Literal::DateTime(secs) | Literal::Date(secs) => self.dialect.bind_datetime(*secs),
            Literal::Bool(b) => self.dialect.bind_bool(*b),
        })
    }

    /// A stored value (a cursor value), as bound.
    fn value(&self, value: &Value) -> Value {
        match value {
            Value::Guid(g) => self.dialect.bind_guid(*g),
            Value::DateTime(secs) => self.dialect.bind_datetime(*secs),
            Value::Bool(b) => self.dialect.bind_bool(*b),
            other => other.clone(),
        }
    }

    /// ` WHERE ...` for the plan's filter and (when `with_cursor`) its cursor, or nothing.
    fn condition(&mut self, plan: &'a Plan, with_cursor: bool) -> Result<String, SqlError> {
        self.related = plan.related.as_deref();
        let mut parts = Vec::new();
        if let Some(filter) = &plan.filter {
            parts.push(self.expr(filter)?);
        }
        if let (Some(after), true) = (&plan.after, with_cursor) {
            parts.push(self.keyset(&plan.order, after)?);
        }
        if let Some(scope) = &plan.scope {
            parts.push(self.scope(scope)?);
        }
        Ok(match parts.len() {
            0 => String::new(),
            1 => [" WHERE ", &parts.remove(0).text].concat(),
            _ => {
                let joined: Vec<String> =
                    parts.into_iter().map(|p| p.within(Binding::And)).collect();
                format!(" WHERE {}", joined.join(" AND "))
            }
        })
    }

    /// `(t.bu IN (...) OR t.id IN (SELECT o.id FROM table AS o WHERE o.owner IN (...) UNION ALL
    /// SELECT s.object FROM shares AS s WHERE ...))`, or `1 = 0`. The owner and share parts are
    /// one `IN` on the primary key so that a selective scope (a Basic-depth user and its shares)
    /// drives the query from those few ids instead of testing every row.
    fn scope(&mut self, scope: &Scope) -> Result<Sql, SqlError> {
        let mut parts = Vec::new();
        if !scope.business_units_in.is_empty() {
            let column = self.column_at(scope.business_unit, "business unit")?.sql;
            let list = self.guid_list(&scope.business_units_in);
            parts.push(format!("{column} IN ({list})"));
        }
        let table = ident(&self.entity.logical_name)?;
        let id_name =
            ident(&self.entity.attributes[self.entity.primary_id_position()].logical_name)?;
        let mut ids = Vec::new();
        if !scope.owner_in.is_empty() {
            let owner = self.column_at(scope.owner, "owner")?;
            let owner = ident(&owner.attribute.logical_name)?;
            let list = self.guid_list(&scope.owner_in);
            ids.push(format!(
                "SELECT o.{id_name} FROM {table} AS o WHERE o.{owner} IN ({list})"
            ));
        }
        if let Some(shares) = scope.shares.as_ref().filter(|s| !s.principals.is_empty()) {
            let table = ident(&shares.table)?;
            let object = ident(&shares.object)?;
            let principal = ident(&shares.principal)?;
            let mask = ident(&shares.mask)?;
            let list = self.guid_list(&shares.principals);
            let right = self.bind(Value::Int(shares.right));
            ids.push(format!(
                "SELECT s.{object} FROM {table} AS s WHERE s.{principal} IN ({list}) AND (s.{mask} & {right}) <> 0"
            ));
        }
        if !ids.is_empty() {
            let alias = &self.alias;
            parts.push(format!(
                "{alias}.{id_name} IN ({})",
                ids.join(" UNION ALL ")
            ));
        }
        Ok(match parts.len() {
            0 => Sql::atom("1 = 0".to_string()),
            1 => Sql::atom(format!("({})", parts.remove(0))),
            _ => Sql::atom(format!("({})", parts.join(" OR "))),
        })
    }

    fn guid_list(&mut self, ids: &[Uuid]) -> String {
        ids.iter()
            .map(|id| {
                let value = self.dialect.bind_guid(*id);
                self.bind(value)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn expr(&mut self, expr: &'a Expr) -> Result<Sql, SqlError> {
        Ok(match expr {
            Expr::Compare { prop, op, value } => {
                let column = self.column(prop)?;
                let value = self.literal(value)?;
                let placeholder = self.bind_for(&column, value);
                let operand = self.operand(&column);
                Sql::atom([operand.as_str(), " ", sql_operator(*op), " ", &placeholder].concat())
            }
            Expr::ComparePropProp { left, op, right } => {
                let left = self.column(left)?;
                let right = self.column(right)?;
                Sql::atom(format!(
                    "{} {} {}",
                    self.operand(&left),
                    sql_operator(*op),
                    self.operand(&right)
                ))
            }
            Expr::IsNull(prop) => Sql::atom(format!("{} IS NULL", self.column(prop)?.sql)),
            Expr::NotNull(prop) => Sql::atom(format!("{} IS NOT NULL", self.column(prop)?.sql)),
            Expr::And(operands) => self.junction(operands, Binding::And)?,
            Expr::Or(operands) => self.junction(operands, Binding::Or)?,
            Expr::Not(inner) => Sql::atom(format!("NOT ({})", self.expr(inner)?.text)),
            Expr::StringFn { func, prop, value } => {
                self.pattern_match(prop, &Pattern::for_function(*func, value))?
            }
            Expr::Like { prop, pattern } => self.pattern_match(prop, &Pattern::parse(pattern))?,
            Expr::QueryFn { name, prop, values } => self.query_function(*name, prop, values)?,
            Expr::Related {
                lookup,
                target,
                inner,
            } => {
                // `lookup IN (ids of the readable related rows that match)`: uncorrelated, so
                // the lookup's index drives it. Only a NULL lookup could make the `IN` NULL:
                // it is false, and `not` of the path is true (no related row).
                let column = self.column(lookup)?.sql;
                let target: &'a Entity = &target.0;
                let id = target.primary_id_position();
                let subquery = self.subquery(target, id, Some(inner), false)?;
                Sql {
                    text: format!("{column} IS NOT NULL AND {column} IN ({subquery})"),
                    binding: Binding::And,
                }
            }
            Expr::Lambda {
                all,
                child,
                child_lookup,
                inner,
                ..
            } => {
                // any: `id IN (lookups of the readable children that match)`; all: `id NOT IN
                // (lookups of the readable children that do not)`. Uncorrelated, so nested
                // lambdas need no outer alias.
                let own_id = self
                    .column_at(self.entity.primary_id_position(), "primary id")?
                    .sql;
                let child: &'a Entity = &child.0;
                let subquery = self.subquery(child, *child_lookup, inner.as_deref(), *all)?;
                let operator = if *all { "NOT IN" } else { "IN" };
                Sql::atom(format!("{own_id} {operator} ({subquery})"))
            }
        })
    }

    /// `column LIKE pattern` (or the dialect's equivalent), the pattern bound as a parameter.
    fn pattern_match(&mut self, prop: &PropertyRef, pattern: &Pattern) -> Result<Sql, SqlError> {
        let column = self.column(prop)?;
        let placeholder = self.dialect.placeholder(self.params.len() + 1);
        let (text, value) = self
            .dialect
            .pattern_match(&column.sql, pattern, &placeholder)?;
        self.params.push(value);
        Ok(Sql::atom(text))
    }

    fn junction(&mut self, operands: &'a [Expr], binding: Binding) -> Result<Sql, SqlError> {
        let (keyword, empty) = match binding {
            Binding::And => (" AND ", "1 = 1"),
            _ => (" OR ", "1 = 0"),
        };
        if operands.is_empty() {
            return Ok(Sql::atom(empty.to_string()));
        }
        let mut texts = Vec::with_capacity(operands.len());
        for operand in operands {
            texts.push(self.expr(operand)?.within(binding));
        }
        Ok(Sql {
            text: texts.join(keyword),
            binding,
        })
    }

    fn query_function(
        &mut self,
        name: QueryFnName,
        prop: &PropertyRef,
        values: &[Literal],
    ) -> Result<Sql, SqlError> {
        use QueryFnName as F;
        let column = self.column(prop)?;
        let operand = self.operand(&column);
        let bad = || SqlError::BadValues {
            function: name.name(),
        };
        Ok(match name {
            F::In | F::NotIn => {
                if values.is_empty() {
                    return Err(bad());
                }
                let mut placeholders = Vec::with_capacity(values.len());
                for literal in values {
                    let value = self.literal(literal)?;
                    placeholders.push(self.bind_for(&column, value));
                }
                let not = if name == F::NotIn { "NOT " } else { "" };
                Sql::atom(format!("{operand} {not}IN ({})", placeholders.join(", ")))
            }
            F::Between | F::NotBetween => {
                let [low, high] = values else {
                    return Err(bad());
                };
                let low = self.literal(low)?;
                let low = self.bind_for(&column, low);
                let high = self.literal(high)?;
                let high = self.bind_for(&column, high);
                let not = if name == F::NotBetween { "NOT " } else { "" };
                Sql::atom(format!("{operand} {not}BETWEEN {low} AND {high}"))
            }
            F::EqualUserId | F::NotEqualUserId | F::EqualBusinessId | F::NotEqualBusinessId => {
                let id = match name {
                    F::EqualUserId | F::NotEqualUserId => self.ctx.user_id,
                    _ => self.ctx.business_unit_id,
                };
                let value = self.dialect.bind_guid(id);
                let placeholder = self.bind(value);
                let op = match name {
                    F::EqualUserId | F::EqualBusinessId => "=",
                    _ => "<>",
                };
                Sql::atom(format!("{operand} {op} {placeholder}"))
            }
            _ => {
                let range = date_range(name, values, self.ctx.now)?;
                let mut terms = Vec::new();
                if let Some(from) = range.from {
                    let placeholder = self.bind(self.dialect.bind_datetime(from));
                    terms.push(format!("{operand} >= {placeholder}"));
                }
                if let Some((to, inclusive)) = range.to {
                    let placeholder = self.bind(self.dialect.bind_datetime(to));
                    let op = if inclusive { "<=" } else { "<" };
                    terms.push(format!("{operand} {op} {placeholder}"));
                }
                match terms.len() {
                    1 => Sql::atom(terms.remove(0)),
                    _ => Sql {
                        text: terms.join(" AND "),
                        binding: Binding::And,
                    },
                }
            }
        })
    }

    /// The plan's keys, then the primary id in the direction of the last key.
    fn sort_keys(&self, order: &[OrderBy]) -> Result<Vec<SortKey<'a>>, SqlError> {
        let mut keys = Vec::with_capacity(order.len() + 1);
        for key in order {
            keys.push(SortKey {
                column: self.column(&key.prop)?,
                descending: key.descending,
                nullable: true,
            });
        }
        let primary = self.entity.primary_id_position();
        keys.push(SortKey {
            column: self.column_at(primary, &self.entity.primary_id)?,
            descending: order.last().is_some_and(|k| k.descending),
            nullable: false,
        });
        Ok(keys)
    }

    /// The rows strictly after `after` in the order of `order` (see the module documentation).
    fn keyset(&mut self, order: &[OrderBy], after: &Keyset) -> Result<Sql, SqlError> {
        let keys = self.sort_keys(order)?;
        if after.values.len() != keys.len() {
            return Err(SqlError::KeysetLength {
                expected: keys.len(),
                actual: after.values.len(),
            });
        }
        if after.values.last().is_none_or(Value::is_null) {
            return Err(SqlError::KeysetWithoutId);
        }
        if self.tail {
            // A split cursor's NULL tail (`select_tail_sql` checked that it splits); it binds
            // none of the cursor's values.
            return Ok(Sql::atom(format!("{} IS NULL", keys[0].column.sql)));
        }
        // Each non-null cursor value is bound once; its placeholder is reused.
        let mut placeholders: Vec<Option<String>> = Vec::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(&after.values) {
            placeholders.push(match value {
                Value::Null => None,
                value => {
                    let value = self.value(value);
                    Some(self.bind_for(&key.column, value))
                }
            });
        }
        let descending = keys[0].descending;
        let all_bound = placeholders.iter().all(Option::is_some);
        if all_bound && keys.iter().all(|k| k.descending == descending) {
            // A row-value comparison, which SQLite (3.15 and later) and PostgreSQL both seek
            // in an index on the keys; exact when no NULL can follow the cursor, and the
            // first statement of a split one otherwise (`select_tail_sql`).
            let nulls_follow = descending && keys.iter().any(|k| k.nullable);
            if !nulls_follow || splits(&keys, after) {
                let operands: Vec<String> = keys.iter().map(|k| self.operand(&k.column)).collect();
                let bound: Vec<String> = placeholders.into_iter().flatten().collect();
                let op = if descending { "<" } else { ">" };
                return Ok(Sql::atom(if keys.len() == 1 {
                    format!("{} {op} {}", operands[0], bound[0])
                } else {
                    format!("({}) {op} ({})", operands.join(", "), bound.join(", "))
                }));
            }
        }
        let mut disjuncts = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let operand = self.operand(&key.column);
            let after_term = match (&placeholders[i], key.descending) {
                (None, false) => format!("{operand} IS NOT NULL"),
                (None, true) => continue,
                (Some(p), false) => format!("{operand} > {p}"),
                (Some(p), true) if key.nullable => {
                    format!("({operand} < {p} OR {operand} IS NULL)")
                }
                (Some(p), true) => format!("{operand} < {p}"),
            };
            let mut conjuncts: Vec<String> = keys[..i]
                .iter()
                .zip(&placeholders)
                .map(|(earlier, placeholder)| {
                    let operand = self.operand(&earlier.column);
                    match placeholder {
                        None => format!("{operand} IS NULL"),
                        Some(p) => format!("{operand} = {p}"),
                    }
                })
                .collect();
            conjuncts.push(after_term);
            disjuncts.push(if conjuncts.len() == 1 {
                conjuncts.remove(0)
            } else {
                format!("({})", conjuncts.join(" AND "))
            });
        }
        Ok(match disjuncts.len() {
            1 => Sql::atom(disjuncts.remove(0)),
            _ => Sql {
                text: disjuncts.join(" OR "),
                binding: Binding::Or,
            },
        })
    }
}

fn sql_operator(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
    }
}

/// The range of a relative or calendar date function at `now` (see the module documentation).
fn date_range(name: QueryFnName, values: &[Literal], now: i64) -> Result<DateRange, SqlError> {
    use QueryFnName as F;
    let function = name.name();
    let bad = || SqlError::BadValues { function };
    let midnight = now.div_euclid(SECONDS_PER_DAY) * SECONDS_PER_DAY;
    let day = |offset: i64| midnight + offset * SECONDS_PER_DAY;
    let count = || match values {
        [Literal::Int(n)] => Ok(*n),
        _ => Err(bad()),
    };
    let date = || match values {
        [Literal::Date(secs) | Literal::DateTime(secs)] => {
            Ok(secs.div_euclid(SECONDS_PER_DAY) * SECONDS_PER_DAY)
        }
        _ => Err(bad()),
    };
    let out_of_range = |value: i64| SqlError::DateOutOfRange { function, value };
    // `start + n * unit`, checked, and within the years the time crate represents.
    let shifted = |start: i64, n: i64, unit: i64| -> Result<i64, SqlError> {
        n.checked_mul(unit)
            .and_then(|offset| start.checked_add(offset))
            .filter(|&secs| time::OffsetDateTime::from_unix_timestamp(secs).is_ok())
            .ok_or_else(|| out_of_range(n))
    };
    let since = |from: i64| DateRange {
        from: Some(from),
        to: Some((now, true)),
    };
    let day_of = |start: i64| DateRange {
        from: Some(start),
        to: Some((start + SECONDS_PER_DAY, false)),
    };
    Ok(match name {
        F::Today => day_of(day(0)),
        F::Yesterday => day_of(day(-1)),
        F::Tomorrow => day_of(day(1)),
        F::LastXHours => {
            let hour = now.div_euclid(SECONDS_PER_HOUR) * SECONDS_PER_HOUR;
            since(shifted(hour, -count()?, SECONDS_PER_HOUR)?)
        }
        F::NextXHours => {
            let hour = now.div_euclid(SECONDS_PER_HOUR) * SECONDS_PER_HOUR;
            let n = count()?;
            let hours = n.checked_add(1).ok_or_else(|| out_of_range(n))?;
            let end = shifted(hour, hours, SECONDS_PER_HOUR).map_err(|_| out_of_range(n))?;
            DateRange {
                from: Some(now),
                to: Some((end, false)),
            }
        }
        F::LastXDays => since(shifted(midnight, -count()?, SECONDS_PER_DAY)?),
        F::NextXDays => {
            let n = count()?;
            let days = n.checked_add(1).ok_or_else(|| out_of_range(n))?;
            let end = shifted(midnight, days, SECONDS_PER_DAY).map_err(|_| out_of_range(n))?;
            DateRange {
                from: Some(now),
                to: Some((end, false)),
            }
        }
        F::LastXWeeks => {
            let n = count()?;
            let days = n.checked_mul(7).ok_or_else(|| out_of_range(n))?;
            since(shifted(midnight, -days, SECONDS_PER_DAY).map_err(|_| out_of_range(n))?)
        }
        F::LastXMonths => {
            let n = count()?;
            since(add_months(midnight, -n).ok_or_else(|| out_of_range(n))?)
        }
        F::LastXYears => {
            let n = count()?;
            let months = n.checked_mul(12).ok_or_else(|| out_of_range(n))?;
            since(add_months(midnight, -months).ok_or_else(|| out_of_range(n))?)
        }
        F::OlderThanXDays => DateRange {
            from: None,
            to: Some((shifted(midnight, -count()?, SECONDS_PER_DAY)?, false)),
        },
        F::On => day_of(date()?),
        F::OnOrAfter => DateRange {
            from: Some(date()?),
            to: None,
        },
        F::OnOrBefore => DateRange {
            from: None,
            to: Some((date()? + SECONDS_PER_DAY, false)),
        },
        _ => return Err(bad()),
    })
}

/// Midnight of the day `months` calendar months from the day starting at `midnight`, the day
/// clamped to the target month's length (as SQL Server's `DATEADD(month, ...)`).
fn add_months(midnight: i64, months: i64) -> Option<i64> {
    let date = time::OffsetDateTime::from_unix_timestamp(midnight)
        .ok()?
        .date();
    let index = i64::from(date.year())
        .checked_mul(12)?
        .checked_add(i64::from(u8::from(date.month())) - 1)?
        .checked_add(months)?;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = time::Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    let day = date.day().min(month.length(year));
    let target = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(target.midnight().assume_utc().unix_timestamp())
}

mod table;

pub use table::TableSql;

#[cfg(test)]
mod tests;
