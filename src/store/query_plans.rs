//! The query plans of the common query shapes (`query_shapes.txt`): each shape goes through the
//! real parsing and SQL lowering (`sql::select_sql`), and the database's own planner
//! (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL) must not scan a large table whole.
//! A test only: the figures of what an index buys live in BENCHMARKS.md.

use std::sync::Arc;

use uuid::Uuid;

use super::sql::{self, Context, Dialect, Plan, Scope, ShareScope};
use super::Value;
use crate::metadata::{Catalog, Entity};
use crate::query::options::QueryOptions;

/// The tables that grow without bound; a full scan of any other table is not a finding.
const LARGE_TABLES: [&str; 2] = [
    crate::metadata::sms::CONTEXT,
    crate::metadata::sms::CONVERSATION,
];

/// How a shape must read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Through an index: no full scan of the table.
    Indexed,
    /// In index order: no full scan and no sort of the table.
    InOrder,
    /// As `Indexed`, with a non-administrator's row scope added.
    Scoped,
    /// A later page of a walk (`$skiptoken`): in order, and the index is entered at the cursor
    /// (SQLite `SEARCH`, a PostgreSQL `Index Cond`), not walked from its start past the
    /// earlier pages.
    Resumes,
}

struct Shape {
    line: usize,
    table: String,
    query: String,
    expect: Expect,
}

fn shapes() -> Vec<Shape> {
    include_str!("query_shapes.txt")
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(n, l)| {
            let parts: Vec<&str> = l.split(" | ").map(str::trim).collect();
            let [table, query, expect] = parts[..] else {
                panic!("query_shapes.txt:{}: not 'table | query | expect'", n + 1)
            };
            let expect = match expect {
                "indexed" => Expect::Indexed,
                "in order" => Expect::InOrder,
                "scoped" => Expect::Scoped,
                "resumes" => Expect::Resumes,
                other => panic!("query_shapes.txt:{}: unknown expectation {other}", n + 1),
            };
            Shape {
                line: n + 1,
                table: table.to_owned(),
                query: query.to_owned(),
                expect,
            }
        })
        .collect()
}

/// The plan a RetrieveMultiple of `shape` lowers, as the list handler builds it: a page of
/// 5,000 rows and one more, or `$top`.
fn plan_of(catalog: &Catalog, shape: &Shape) -> (Plan, Arc<Entity>) {
    let entity = Arc::clone(
        catalog
            .entity(&shape.table)
            .expect("a table of the catalog"),
    );
    let pairs: Vec<(String, String)> = shape
        .query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let options = QueryOptions::parse(catalog, &entity, &pairs)
        .unwrap_or_else(|e| panic!("query_shapes.txt:{}: {e}", shape.line));
    let limit = options.top.map_or(5_000, |t| t as usize) + 1;
    let scoped = shape.expect == Expect::Scoped;
    let scope = scoped.then(|| scope_of(&entity));
    // Every table a relationship filter reaches gets the same kind of scope, as the guard
    // gives it.
    let related = options.filter.as_ref().map(|filter| {
        filter
            .related_tables()
            .iter()
            .map(|table| (table.logical_name.clone(), scoped.then(|| scope_of(table))))
            .collect()
    });
    let plan = Plan {
        entity: Arc::clone(&entity),
        filter: options.filter.clone(),
        order: options.orderby.clone(),
        limit: Some(limit),
        // A later page of a walk resumes after its cursor, as the list handler reads it.
        after: options
            .skiptoken
            .as_ref()
            .map(|cursor| crate::execute::read::keyset(&cursor.keyset)),
        scope,
        related,
    };
    (plan, entity)
}

/// A user's scope: their own rows, their business unit's, and rows shared with them or a team.
fn scope_of(entity: &Entity) -> Scope {
    use crate::metadata::system::{
        ACCESS_RIGHTS_MASK, OBJECT_ID, OWNER_ID, OWNING_BUSINESS_UNIT, PRINCIPAL_ID,
        PRINCIPAL_OBJECT_ACCESS,
    };
    let position = |name: &str| entity.position(name).expect("an owned table");
    Scope {
        owner: position(OWNER_ID),
        owner_in: vec![Uuid::new_v4()],
        business_unit: position(OWNING_BUSINESS_UNIT),
        business_units_in: vec![Uuid::new_v4()],
        shares: Some(ShareScope {
            table: PRINCIPAL_OBJECT_ACCESS.to_owned(),
            object: OBJECT_ID.to_owned(),
            principal: PRINCIPAL_ID.to_owned(),
            mask: ACCESS_RIGHTS_MASK.to_owned(),
            principals: vec![Uuid::new_v4(), Uuid::new_v4()],
            right: 1,
        }),
    }
}

/// The statements of `shape` in `dialect` (one, or a split cursor's range and NULL tail),
/// selecting the primary id only (the select list does not change how rows are found), and
/// their parameters.
fn lowered(dialect: &dyn Dialect, catalog: &Catalog, shape: &Shape) -> Vec<(String, Vec<Value>)> {
    let (plan, entity) = plan_of(catalog, shape);
    let context = Context {
        now: 1_700_000_000,
        user_id: Uuid::new_v4(),
        business_unit_id: Uuid::new_v4(),
    };
    let columns = format!("t.{}", entity.primary_id);
    let fail = |e: sql::SqlError| -> ! { panic!("query_shapes.txt:{}: {e}", shape.line) };
    let first = sql::select_sql(dialect, &plan, &context, &columns, "").unwrap_or_else(|e| fail(e));
    let tail =
        sql::select_tail_sql(dialect, &plan, &context, &columns, "").unwrap_or_else(|e| fail(e));
    std::iter::once(first).chain(tail).collect()
}

/// What is wrong with a plan, given its lines: a full scan of a large table, or (in order) a
/// sort of one.
fn findings(
    shape: &Shape,
    plan: &[String],
    full_scan: impl Fn(&str) -> bool,
    sort: impl Fn(&str) -> bool,
    seeks: impl Fn(&str) -> bool,
    first: bool,
) -> Vec<String> {
    let mut found = Vec::new();
    // A split cursor's second statement (the NULL tail) reads only rows whose key is NULL,
    // from their start: it has no cursor to seek.
    if shape.expect == Expect::Resumes && first && !plan.iter().any(|l| seeks(l)) {
        found.push("walks the index from its start instead of seeking the cursor".to_owned());
    }
    for line in plan {
        if full_scan(line) {
            found.push(format!("full scan: {line}"));
        }
        let in_order = matches!(shape.expect, Expect::InOrder | Expect::Resumes);
        if in_order && sort(line) {
            found.push(format!("sorts the table: {line}"));
        }
    }
    found
}

fn report(shape: &Shape, sql: &str, plan: &[String], found: &[String]) -> Option<String> {
    (!found.is_empty()).then(|| {
        format!(
            "query_shapes.txt:{} {} ?{}\n  {}\n  SQL: {sql}\n  plan:\n    {}",
            shape.line,
            shape.table,
            shape.query,
            found.join("\n  "),
            plan.join("\n    ")
        )
    })
}

/// A SQLite database with the schema the store creates (its own temporary directory, kept
/// alive by the first element), and a second connection to read its plans with.
fn sqlite_schema() -> (
    tempfile::TempDir,
    Catalog,
    super::sqlite::SqliteStore,
    rusqlite::Connection,
) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::builtin().unwrap();
    let path = dir.path().join("plans.db");
    let store = super::sqlite::SqliteStore::open(&path, &catalog).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    (dir, catalog, store, conn)
}

/// SQLite's `EXPLAIN QUERY PLAN` says `SCAN t` for a full scan of the query's table (`SCAN t
/// USING INDEX ...` walks an index in order, which a `LIMIT` stops early), `SCAN <table>` for
/// one in a subquery, and `USE TEMP B-TREE FOR ORDER BY` for a sort of the rows.
#[test]
fn every_common_query_shape_reads_an_index_on_sqlite() {
    let (_dir, catalog, store, conn) = sqlite_schema();
    let mut failures = Vec::new();
    for shape in shapes() {
        for (n, (text, params)) in lowered(&sql::Sqlite, &catalog, &shape)
            .into_iter()
            .enumerate()
        {
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {text}")).unwrap();
            let plan: Vec<String> = statement
                .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let full_scan = |line: &str| {
                let Some(rest) = line.strip_prefix("SCAN ") else {
                    return false;
                };
                let name = rest.split_whitespace().next().unwrap_or_default();
                let large = name == "t" || LARGE_TABLES.contains(&name);
                large && !rest.contains(" USING ")
            };
            let sort = |line: &str| line.contains("USE TEMP B-TREE FOR ORDER BY");
            // An unfiltered read in primary-key order that sorts nothing walks the table's b-tree
            // in order (the WITHOUT ROWID tables) or its primary key's index (the contexts, a
            // rowid table since migration 18).
            let walks_primary_key =
                !shape.query.contains("$filter") && !plan.iter().any(|l| sort(l));
            let full_scan = |line: &str| full_scan(line) && !walks_primary_key;
            // A range on the order's keys in the index search, `(createdon,...)<(?,?)`.
            let seeks = |line: &str| line.starts_with("SEARCH t ") && line.contains(['<', '>']);
            let found = findings(&shape, &plan, full_scan, sort, seeks, n == 0);
            failures.extend(report(&shape, &text, &plan, &found));
        }
    }
    store.close();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// PostgreSQL's `EXPLAIN` says `Seq Scan on <table>` for a full scan and `Sort` for a sort. On
/// an empty table a sequential scan is the cheapest plan, so sequential scans are priced out
/// (`enable_seqscan = off`): one that remains means no index can serve the query.
#[tokio::test]
async fn every_common_query_shape_reads_an_index_on_postgres() {
    use super::postgres::testing::{admin_url, create_database, drop_database, skipped};
    let Some(admin) = admin_url() else {
        return skipped("every_common_query_shape_reads_an_index_on_postgres");
    };
    let (url, database) = create_database(&admin).await;
    let catalog = Catalog::builtin().unwrap();
    let store = super::postgres::PostgresStore::open(&url, &catalog, 1)
        .await
        .unwrap();
    let mut failures = Vec::new();
    for shape in shapes() {
        for (n, (text, params)) in lowered(&sql::Postgres, &catalog, &shape)
            .into_iter()
            .enumerate()
        {
            let plan = store.explain(&text, &params).await.unwrap();
            let full_scan = |line: &str| {
                LARGE_TABLES
                    .iter()
                    .any(|table| line.contains(&format!("Seq Scan on {table} ")))
            };
            let sort = |line: &str| {
                line.trim_start()
                    .trim_start_matches("->  ")
                    .starts_with("Sort ")
            };
            // The cursor's comparison in the index condition, not a filter on what was read.
            let seeks = |line: &str| {
                line.trim_start().starts_with("Index Cond: ") && line.contains(['<', '>'])
            };
            let found = findings(&shape, &plan, full_scan, sort, seeks, n == 0);
            failures.extend(report(&shape, &text, &plan, &found));
        }
    }
    store.close();
    drop(store);
    drop_database(&admin, &database).await;
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_shape_list_parses() {
    let catalog = Catalog::builtin().unwrap();
    let shapes = shapes();
    assert!(shapes.len() >= 10);
    for shape in &shapes {
        lowered(&sql::Sqlite, &catalog, shape);
    }
}

/// The statement of a list query, prepared once, runs again with other values (another phone
/// number, another page size) without SQLite re-preparing it: a new value for a bare
/// `LIMIT ?` did re-prepare it on every request (see `Dialect::limit_clause`).
#[test]
fn a_bound_limit_keeps_the_prepared_statement() {
    let (_dir, catalog, store, conn) = sqlite_schema();
    let shape = shapes()
        .into_iter()
        .find(|s| s.query == "$filter=msdyn_customerphonenumber eq '14255550111'")
        .expect("the customer-phone shape is in query_shapes.txt");
    let (text, params) = lowered(&sql::Sqlite, &catalog, &shape).remove(0);
    assert!(params.len() >= 2, "{text}");
    let mut statement = conn.prepare(&text).unwrap();
    for n in 0..4i64 {
        let mut values = params.clone();
        values[0] = Value::Text(format!("1425555{n:04}"));
        let last = values.len() - 1;
        values[last] = Value::Int(10 + n);
        let rows = statement
            .query_map(rusqlite::params_from_iter(values.iter()), |_| Ok(()))
            .unwrap()
            .count();
        assert_eq!(rows, 0);
    }
    let reprepared = statement.get_status(rusqlite::StatementStatus::RePrepare);
    assert_eq!(reprepared, 0, "{text} was re-prepared {reprepared} times");
    drop(statement);
    drop(conn);
    store.close();
}

/// The SMS channel's phone-pair query reads an index of the phone numbers once the planner has
/// statistics, which the store gives it when it opens (`refresh_statistics`): without them
/// SQLite chose `(statecode, id)`, every active row, for 2,000 active rows of distinct pairs.
#[test]
fn the_phone_pair_reads_a_phone_index_with_the_stores_statistics() {
    let (dir, catalog, store, conn) = sqlite_schema();
    store.close();
    drop(store);
    let insert = "INSERT INTO msdyn_smsengagementctx (msdyn_smsengagementctxid, \
                  msdyn_orgphonenumber, msdyn_customerphonenumber, statecode, createdon, \
                  versionnumber) VALUES (?1, ?2, ?3, 0, ?4, ?4)";
    let mut statement = conn.prepare(insert).unwrap();
    for n in 0..2_000i64 {
        let id = Uuid::new_v4().to_string();
        let org = format!("1425555{:04}", n % 20);
        let customer = format!("1206555{n:04}");
        statement
            .execute(rusqlite::params![id, org, customer, n])
            .unwrap();
    }
    drop(statement);
    drop(conn);
    let path = dir.path().join("plans.db");
    let store = super::sqlite::SqliteStore::open(&path, &catalog).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let shape = shapes()
        .into_iter()
        .find(|s| s.query.contains("msdyn_orgphonenumber eq") && s.query.ends_with("eq 0"))
        .expect("the phone-pair shape is in query_shapes.txt");
    let (text, params) = lowered(&sql::Sqlite, &catalog, &shape).remove(0);
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {text}"))
        .unwrap()
        .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // The phone numbers' index, or the customer number's (as selective here, and in id order).
    assert!(
        plan.iter()
            .any(|l| l.starts_with("SEARCH t USING INDEX")
                && l.contains("msdyn_customerphonenumber=?")),
        "{text}\n{}",
        plan.join("\n")
    );
    drop(conn);
    store.close();
}
