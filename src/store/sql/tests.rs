//! Tests of the SQL lowering: snapshots of the generated SQL and parameters, and execution
//! against a real SQLite database (and a real PostgreSQL database when `SMSCTX_TEST_POSTGRES`
//! names a server) checked against a plain Rust evaluation of the same filters and orderings.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params_from_iter, Connection};
use uuid::Uuid;

use super::*;
use crate::metadata::{AttributeType, Catalog, Entity};
use crate::query::filter;
use crate::store::postgres;
use crate::test_support::Rng;

/// Monday 17 August 2020, 13:00 UTC: the moment of Mark Carrington's date-filter table.
const NOW: i64 = 1_597_669_200;

const CONTEXT: Context = Context {
    now: NOW,
    user_id: Uuid::from_u128(0x11111111_1111_1111_1111_111111111111),
    business_unit_id: Uuid::from_u128(0xbbbbbbbb_bbbb_bbbb_bbbb_bbbbbbbbbbbb),
};

fn entity() -> Arc<Entity> {
    let catalog = Catalog::builtin().expect("the built-in pages import");
    Arc::clone(
        catalog
            .entity("msdyn_smsengagementctx")
            .expect("the seed table"),
    )
}

fn parse(entity: &Entity, text: &str) -> Expr {
    filter::parse(entity, text, &HashMap::new())
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn plan(entity: &Arc<Entity>, filter: Option<&str>) -> Plan {
    Plan {
        entity: Arc::clone(entity),
        filter: filter.map(|text| parse(entity, text)),
        order: Vec::new(),
        limit: None,
        after: None,
        scope: None,
        related: None,
    }
}

fn orderby(entity: &Entity, text: &str) -> Vec<OrderBy> {
    crate::query::options::parse_orderby(entity, text).expect("a valid $orderby")
}

/// Lowers `filter` and compares the WHERE clause and the parameters (in `Debug` form).
fn check(filter: &str, expected_where: &str, expected_params: &str) {
    let entity = entity();
    let (sql, params) = select_sql(&Sqlite, &plan(&entity, Some(filter)), &CONTEXT, "1", "")
        .unwrap_or_else(|e| panic!("{filter:?} should lower: {e}"));
    let condition = sql
        .split_once(" WHERE ")
        .and_then(|(_, rest)| rest.split_once(" ORDER BY "))
        .map(|(condition, _)| condition)
        .unwrap_or_else(|| panic!("no WHERE clause in {sql}"));
    assert_eq!(condition, expected_where, "SQL for {filter:?}");
    assert_eq!(
        format!("{params:?}"),
        expected_params,
        "parameters for {filter:?}"
    );
}

/// Like [`check`] for a query function: `call` is written without the namespace.
fn check_fn(call: &str, expected_where: &str, expected_params: &str) {
    check(
        &format!("Microsoft.Dynamics.CRM.{call}"),
        expected_where,
        expected_params,
    );
}

#[test]
fn comparisons_bind_every_value() {
    check("statecode eq 0", "t.statecode = ?1", "[Int(0)]");
    check(
        "msdyn_name ne 'it''s'",
        "t.msdyn_name <> ?1",
        r#"[Text("it's")]"#,
    );
    check(
        "_ownerid_value eq 4026BE43-6B69-E111-8F65-78E7D1620F5E",
        "t.ownerid = ?1",
        r#"[Text("4026be43-6b69-e111-8f65-78e7d1620f5e")]"#,
    );
    check(
        "createdon gt 2024-05-01T12:00:00+02:00",
        "t.createdon > ?1",
        "[Int(1714557600)]",
    );
    check(
        "createdon lt 2024-05-01",
        "t.createdon < ?1",
        "[Int(1714521600)]",
    );
    check("versionnumber ge -5", "t.versionnumber >= ?1", "[Int(-5)]");
    check(
        "importsequencenumber le 3",
        "t.importsequencenumber <= ?1",
        "[Int(3)]",
    );
}

#[test]
fn null_and_column_comparisons() {
    check("msdyn_name eq null", "t.msdyn_name IS NULL", "[]");
    check("_ownerid_value ne null", "t.ownerid IS NOT NULL", "[]");
    check(
        "msdyn_orgphonenumber eq msdyn_customerphonenumber",
        "t.msdyn_orgphonenumber = t.msdyn_customerphonenumber",
        "[]",
    );
    check(
        "modifiedon gt createdon",
        "t.modifiedon > t.createdon",
        "[]",
    );
}

#[test]
fn boolean_operators_keep_their_precedence() {
    check(
        "statecode eq 0 and (msdyn_name eq 'a' or msdyn_name eq 'b')",
        "t.statecode = ?1 AND (t.msdyn_name = ?2 OR t.msdyn_name = ?3)",
        r#"[Int(0), Text("a"), Text("b")]"#,
    );
    check(
        "statecode eq 0 or statecode eq 1 and statuscode eq 2",
        "t.statecode = ?1 OR t.statecode = ?2 AND t.statuscode = ?3",
        "[Int(0), Int(1), Int(2)]",
    );
    check(
        "not (statecode eq 0 or msdyn_name eq null)",
        "NOT (t.statecode = ?1 OR t.msdyn_name IS NULL)",
        "[Int(0)]",
    );
    check(
        "not contains(msdyn_name,'x') and statecode eq 1",
        "NOT (t.msdyn_name LIKE ?1) AND t.statecode = ?2",
        r#"[Text("%x%"), Int(1)]"#,
    );
}

#[test]
fn string_functions_are_like_patterns_with_dataverse_wildcards() {
    check(
        "contains(msdyn_name,'sms')",
        "t.msdyn_name LIKE ?1",
        r#"[Text("%sms%")]"#,
    );
    check(
        "startswith(msdyn_name,'a_b%c')",
        "t.msdyn_name LIKE ?1",
        r#"[Text("a_b%c%")]"#,
    );
    check(
        r"endswith(msdyn_name,'50[%] \')",
        r"t.msdyn_name LIKE ?1 ESCAPE '\'",
        r#"[Text("%50\\% \\\\")]"#,
    );
    check(
        "contains(msdyn_name,'[A-C]x[^0-9]*?')",
        "lower(t.msdyn_name) GLOB ?1",
        r#"[Text("*[a-c]x[^0-9][*][?]*")]"#,
    );
    // Members other than letters and digits are written as ranges, so that '-' and '^' keep
    // their meaning in GLOB; a class that is not negated never starts with '^'.
    check(
        "startswith(msdyn_name,'[-^a]')",
        "lower(t.msdyn_name) GLOB ?1",
        r#"[Text("[---^-^a]*")]"#,
    );
    check(
        "startswith(msdyn_name,'[a^]')",
        "lower(t.msdyn_name) GLOB ?1",
        r#"[Text("[a^-^]*")]"#,
    );
    check(
        "startswith(msdyn_name,'[ab')",
        "t.msdyn_name LIKE ?1",
        r#"[Text("[ab%")]"#,
    );
}

/// FetchXML's `like` (which `$filter` cannot write) binds its value as the whole pattern: the
/// same SQL as the `startswith`/`contains` that adds the `%` itself.
#[test]
fn fetchxml_like_binds_the_pattern_as_written() {
    let entity = entity();
    let lowered = |filter: Expr| {
        let plan = Plan {
            filter: Some(filter),
            ..plan(&entity, None)
        };
        let (sql, params) = select_sql(&Sqlite, &plan, &CONTEXT, "1", "").expect("lowers");
        (sql, format!("{params:?}"))
    };
    let like = |pattern: &str| Expr::Like {
        prop: PropertyRef {
            index: entity.position("msdyn_name").unwrap(),
            name: "msdyn_name".into(),
        },
        pattern: pattern.into(),
    };
    assert_eq!(
        lowered(like("a_b%c%")),
        lowered(parse(&entity, "startswith(msdyn_name,'a_b%c')"))
    );
    assert_eq!(
        lowered(like("%[A-C]x%")),
        lowered(parse(&entity, "contains(msdyn_name,'[A-C]x')"))
    );
    let (sql, params) = lowered(Expr::Not(Box::new(like("sms 7"))));
    assert!(sql.contains("NOT (t.msdyn_name LIKE ?1)"), "{sql}");
    assert_eq!(params, r#"[Text("sms 7")]"#);
}

#[test]
fn postgres_lowers_text_binds_typed_values_and_matches_patterns_with_regexes() {
    let entity = entity();
    let lower = |filter: &str| {
        let (sql, params) = select_sql(&Postgres, &plan(&entity, Some(filter)), &CONTEXT, "1", "")
            .unwrap_or_else(|e| panic!("{filter:?} should lower: {e}"));
        (sql, format!("{params:?}"))
    };
    let (sql, params) = lower(
        "msdyn_name eq 'A' and createdon gt 2024-05-01 and _ownerid_value eq 4026BE43-6B69-E111-8F65-78E7D1620F5E",
    );
    assert_eq!(
        sql,
        "SELECT 1 FROM msdyn_smsengagementctx AS t WHERE lower(t.msdyn_name COLLATE \"C\") = \
         lower($1 COLLATE \"C\") AND t.createdon > $2 AND t.ownerid = $3 \
         ORDER BY t.msdyn_smsengagementctxid ASC"
    );
    assert_eq!(
        params,
        r#"[Text("A"), DateTime(1714521600), Guid(4026be43-6b69-e111-8f65-78e7d1620f5e)]"#
    );
    let (sql, params) = lower("contains(msdyn_name,'[A-C]x[^0-9]*?.')");
    assert!(
        sql.contains("WHERE lower(t.msdyn_name COLLATE \"C\") ~ $1 ORDER BY"),
        "{sql}"
    );
    assert_eq!(params, r#"[Text("^.*[a-c]x[^0-9]\\*\\?\\..*$")]"#);
    let (_, params) = lower("startswith(msdyn_name,'[-^a]50[%]_')");
    assert_eq!(params, r#"[Text("^[\\-\\^a]50\\%..*$")]"#);
}

#[test]
fn list_and_range_functions() {
    check_fn(
        r#"In(PropertyName='statuscode',PropertyValues=["1","2"])"#,
        "t.statuscode IN (?1, ?2)",
        "[Int(1), Int(2)]",
    );
    check_fn(
        r#"NotIn(PropertyName='msdyn_name',PropertyValues=["a"])"#,
        "t.msdyn_name NOT IN (?1)",
        r#"[Text("a")]"#,
    );
    check_fn(
        r#"Between(PropertyName='versionnumber',PropertyValues=["1","5"])"#,
        "t.versionnumber BETWEEN ?1 AND ?2",
        "[Int(1), Int(5)]",
    );
    check_fn(
        r#"NotBetween(PropertyName='createdon',PropertyValues=["2024-05-01","2024-05-02"])"#,
        "t.createdon NOT BETWEEN ?1 AND ?2",
        "[Int(1714521600), Int(1714608000)]",
    );
    check_fn(
        r#"In(PropertyName='_ownerid_value',PropertyValues=["4026BE43-6B69-E111-8F65-78E7D1620F5E"])"#,
        "t.ownerid IN (?1)",
        r#"[Text("4026be43-6b69-e111-8f65-78e7d1620f5e")]"#,
    );
}

#[test]
fn user_and_business_unit_functions_use_the_context() {
    check_fn(
        "EqualUserId(PropertyName='ownerid')",
        "t.ownerid = ?1",
        r#"[Text("11111111-1111-1111-1111-111111111111")]"#,
    );
    check_fn(
        "NotEqualUserId(PropertyName='_createdby_value')",
        "t.createdby <> ?1",
        r#"[Text("11111111-1111-1111-1111-111111111111")]"#,
    );
    check_fn(
        "EqualBusinessId(PropertyName='owningbusinessunit')",
        "t.owningbusinessunit = ?1",
        r#"[Text("bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb")]"#,
    );
    check_fn(
        "NotEqualBusinessId(PropertyName='owningbusinessunit')",
        "t.owningbusinessunit <> ?1",
        r#"[Text("bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb")]"#,
    );
}

/// The ranges at Monday 2020-08-17 13:00 UTC; the Last/Next X rows are Mark Carrington's table.
#[test]
fn relative_date_functions_at_a_known_moment() {
    let cases = [
        // 2020-08-17 00:00 .. 2020-08-18 00:00
        ("Today", "", ">= ?1 AND", "< ?2", "1597622400, 1597708800"),
        (
            "Yesterday",
            "",
            ">= ?1 AND",
            "< ?2",
            "1597536000, 1597622400",
        ),
        (
            "Tomorrow",
            "",
            ">= ?1 AND",
            "< ?2",
            "1597708800, 1597795200",
        ),
        // From 2020-08-13 00:00 up to now.
        (
            "LastXDays",
            "4",
            ">= ?1 AND",
            "<= ?2",
            "1597276800, 1597669200",
        ),
        // From now up to the end of 2020-08-21.
        (
            "NextXDays",
            "4",
            ">= ?1 AND",
            "< ?2",
            "1597669200, 1598054400",
        ),
        // From 11:00 up to now; from now up to 16:00.
        (
            "LastXHours",
            "2",
            ">= ?1 AND",
            "<= ?2",
            "1597662000, 1597669200",
        ),
        (
            "NextXHours",
            "2",
            ">= ?1 AND",
            "< ?2",
            "1597669200, 1597680000",
        ),
        // From 2020-08-03, 2020-05-17 and 2018-08-17 up to now.
        (
            "LastXWeeks",
            "2",
            ">= ?1 AND",
            "<= ?2",
            "1596412800, 1597669200",
        ),
        (
            "LastXMonths",
            "3",
            ">= ?1 AND",
            "<= ?2",
            "1589673600, 1597669200",
        ),
        (
            "LastXYears",
            "2",
            ">= ?1 AND",
            "<= ?2",
            "1534464000, 1597669200",
        ),
    ];
    for (function, count, first, second, params) in cases {
        let value = if count.is_empty() {
            String::new()
        } else {
            format!(",PropertyValue={count}")
        };
        let params = params
            .split(", ")
            .map(|n| format!("Int({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        check_fn(
            &format!("{function}(PropertyName='createdon'{value})"),
            &format!("t.createdon {first} t.createdon {second}"),
            &format!("[{params}]"),
        );
    }
    // Before 2020-07-18 00:00.
    check_fn(
        "OlderThanXDays(PropertyName='createdon',PropertyValue=30)",
        "t.createdon < ?1",
        "[Int(1595030400)]",
    );
}

#[test]
fn calendar_date_functions_take_whole_utc_days() {
    check_fn(
        "On(PropertyName='createdon',PropertyValue=2024-05-01T10:00:00Z)",
        "t.createdon >= ?1 AND t.createdon < ?2",
        "[Int(1714521600), Int(1714608000)]",
    );
    check_fn(
        "OnOrAfter(PropertyName='createdon',PropertyValue=2024-05-01T10:00:00Z)",
        "t.createdon >= ?1",
        "[Int(1714521600)]",
    );
    check_fn(
        "OnOrBefore(PropertyName='createdon',PropertyValue='2024-05-01')",
        "t.createdon < ?1",
        "[Int(1714608000)]",
    );
    // A range inside `or` needs no parentheses; inside `not` it gets them.
    check(
        "statecode eq 1 or not Microsoft.Dynamics.CRM.Today(PropertyName='createdon')",
        "t.statecode = ?1 OR NOT (t.createdon >= ?2 AND t.createdon < ?3)",
        "[Int(1), Int(1597622400), Int(1597708800)]",
    );
}

#[test]
fn months_and_years_clamp_the_day() {
    // 2024-03-31 minus one month is 2024-02-29; 2024-02-29 minus one year is 2023-02-28.
    assert_eq!(add_months(1_711_843_200, -1), Some(1_709_164_800));
    assert_eq!(add_months(1_709_164_800, -12), Some(1_677_542_400));
    assert_eq!(add_months(1_709_164_800, 0), Some(1_709_164_800));
    assert_eq!(add_months(0, i64::MIN), None);
}

#[test]
fn select_has_a_total_order_and_a_bound_limit() {
    let entity = entity();
    let mut plan = plan(&entity, Some("statecode eq 0"));
    plan.order = orderby(&entity, "createdon desc,msdyn_name");
    plan.limit = Some(50);
    let (sql, params) = select_sql(
        &Sqlite,
        &plan,
        &CONTEXT,
        "t.msdyn_smsengagementctxid, t.msdyn_name",
        " LEFT JOIN systemuser AS j0 ON j0.systemuserid = t.ownerid",
    )
    .unwrap();
    assert_eq!(
        sql,
        "SELECT t.msdyn_smsengagementctxid, t.msdyn_name FROM msdyn_smsengagementctx AS t \
         LEFT JOIN systemuser AS j0 ON j0.systemuserid = t.ownerid WHERE t.statecode = ?1 \
         ORDER BY t.createdon DESC NULLS LAST, t.msdyn_name ASC NULLS FIRST, \
         t.msdyn_smsengagementctxid ASC LIMIT +?2"
    );
    assert_eq!(format!("{params:?}"), "[Int(0), Int(50)]");

    let (sql, params) = select_sql(&Sqlite, &self::plan(&entity, None), &CONTEXT, "1", "").unwrap();
    assert_eq!(
        sql,
        "SELECT 1 FROM msdyn_smsengagementctx AS t ORDER BY t.msdyn_smsengagementctxid ASC"
    );
    assert!(params.is_empty());
}

#[test]
fn keyset_conditions_expand_per_key_and_handle_nulls() {
    let entity = entity();
    let id = Uuid::from_u128(0x42);
    let mut plan = plan(&entity, Some("statecode eq 0 or statecode eq 1"));
    plan.order = orderby(&entity, "msdyn_name,createdon desc");
    plan.after = Some(Keyset {
        values: vec![
            Value::Text("b".into()),
            Value::DateTime(1_700_000_000),
            Value::Guid(id),
        ],
    });
    let (sql, params) = select_sql(&Sqlite, &plan, &CONTEXT, "1", "").unwrap();
    assert_eq!(
        sql,
        "SELECT 1 FROM msdyn_smsengagementctx AS t WHERE (t.statecode = ?1 OR t.statecode = ?2) AND \
         (t.msdyn_name > ?3 OR (t.msdyn_name = ?3 AND (t.createdon < ?4 OR t.createdon IS NULL)) OR \
         (t.msdyn_name = ?3 AND t.createdon = ?4 AND t.msdyn_smsengagementctxid < ?5)) \
         ORDER BY t.msdyn_name ASC NULLS FIRST, t.createdon DESC NULLS LAST, \
         t.msdyn_smsengagementctxid DESC"
    );
    assert_eq!(
        format!("{params:?}"),
        r#"[Int(0), Int(1), Text("b"), Int(1700000000), Text("00000000-0000-0000-0000-000000000042")]"#
    );

    // NULL cursor values: ascending, anything not NULL is after; descending, nothing is.
    plan.filter = None;
    plan.after = Some(Keyset {
        values: vec![Value::Null, Value::Null, Value::Guid(id)],
    });
    let (sql, params) = select_sql(&Sqlite, &plan, &CONTEXT, "1", "").unwrap();
    let condition = sql
        .split(" WHERE ")
        .nth(1)
        .unwrap()
        .split(" ORDER BY ")
        .next()
        .unwrap();
    assert_eq!(
        condition,
        "t.msdyn_name IS NOT NULL OR \
         (t.msdyn_name IS NULL AND t.createdon IS NULL AND t.msdyn_smsengagementctxid < ?1)"
    );
    assert_eq!(params.len(), 1);

    // No keys: the primary id alone, ascending.
    plan.order.clear();
    plan.after = Some(Keyset {
        values: vec![Value::Guid(id)],
    });
    let (sql, _) = select_sql(&Sqlite, &plan, &CONTEXT, "1", "").unwrap();
    assert!(
        sql.contains(" WHERE t.msdyn_smsengagementctxid > ?1 ORDER BY"),
        "{sql}"
    );
}

#[test]
fn count_is_capped_and_ignores_order_and_cursor() {
    let entity = entity();
    let mut plan = plan(&entity, Some("contains(msdyn_name,'sms')"));
    plan.order = orderby(&entity, "msdyn_name");
    plan.limit = Some(2);
    plan.after = Some(Keyset {
        values: vec![Value::Null, Value::Guid(Uuid::nil())],
    });
    let (sql, params) = count_sql(&Sqlite, &plan, &CONTEXT, "", 5000).unwrap();
    assert_eq!(
        sql,
        "SELECT COUNT(*) FROM (SELECT 1 FROM msdyn_smsengagementctx AS t \
         WHERE t.msdyn_name LIKE ?1 LIMIT +?2) AS c"
    );
    assert_eq!(format!("{params:?}"), r#"[Text("%sms%"), Int(5000)]"#);
}

/// Conversations joined with their contexts (`statecode eq 0`, ordered by name).
fn join_plan(outer: bool) -> JoinPlan {
    let catalog = Catalog::builtin().unwrap();
    let root = Arc::clone(catalog.entity("msdyn_ocliveworkitem").unwrap());
    let child = entity();
    let lookup = child.position("msdyn_liveworkitemid").unwrap();
    let mut root_plan = plan(&root, None);
    root_plan.limit = Some(3);
    JoinPlan {
        root: root_plan,
        join: ChildJoin {
            child: crate::query::Table(Arc::clone(&child)),
            lookup: PropertyRef {
                index: lookup,
                name: child.attributes[lookup].property_name().to_string(),
            },
            outer,
            filter: Some(parse(&child, "statecode eq 0")),
            order: orderby(&child, "msdyn_name"),
        },
        offset: 6,
    }
}

#[test]
fn one_to_many_joins_put_the_filter_and_the_child_scope_in_the_join() {
    let plan = join_plan(false);
    let (sql, params) = select_join_sql(&Sqlite, &plan, &CONTEXT, "t.activityid", "").unwrap();
    let (columns, rest) = sql.split_once(" FROM ").unwrap();
    assert!(
        columns.starts_with("SELECT t.activityid, l1.importsequencenumber, "),
        "{columns}"
    );
    assert_eq!(
        columns.matches("l1.").count(),
        entity().stored_attributes().count()
    );
    assert_eq!(
        rest,
        "msdyn_ocliveworkitem AS t INNER JOIN msdyn_smsengagementctx AS l1 ON \
         l1.msdyn_liveworkitemid = t.activityid AND l1.statecode = ?1 \
         ORDER BY t.activityid ASC, l1.msdyn_name ASC NULLS FIRST, \
         l1.msdyn_smsengagementctxid ASC LIMIT ?2 OFFSET ?3"
    );
    assert_eq!(format!("{params:?}"), "[Int(0), Int(3), Int(6)]");

    // Guarded: the child's row scope is part of the join (so an outer join keeps the parent
    // once), and a guarded plan without it is not lowered.
    let mut guarded = join_plan(true);
    guarded.root.related = Some(Vec::new());
    assert_eq!(
        select_join_sql(&Sqlite, &guarded, &CONTEXT, "t.activityid", "").unwrap_err(),
        SqlError::MissingScope("msdyn_smsengagementctx".into())
    );
    guarded.root.related = Some(vec![(
        "msdyn_smsengagementctx".into(),
        Some(Scope::nothing(&entity())),
    )]);
    let (sql, _) = select_join_sql(&Sqlite, &guarded, &CONTEXT, "t.activityid", "").unwrap();
    assert!(
        sql.contains(
            " LEFT JOIN msdyn_smsengagementctx AS l1 ON l1.msdyn_liveworkitemid = t.activityid \
             AND l1.statecode = ?1 AND 1 = 0 ORDER BY"
        ),
        "{sql}"
    );
}

#[test]
fn plans_that_cannot_be_lowered_are_errors() {
    let entity = entity();
    let mut plan = plan(&entity, None);
    plan.order = orderby(&entity, "msdyn_name");
    plan.after = Some(Keyset {
        values: vec![Value::Null],
    });
    assert_eq!(
        select_sql(&Sqlite, &plan, &CONTEXT, "1", "").unwrap_err(),
        SqlError::KeysetLength {
            expected: 2,
            actual: 1
        }
    );
    plan.after = Some(Keyset {
        values: vec![Value::Null, Value::Null],
    });
    assert_eq!(
        select_sql(&Sqlite, &plan, &CONTEXT, "1", "").unwrap_err(),
        SqlError::KeysetWithoutId
    );

    let shadow = entity.position("owneridname").unwrap();
    plan.after = None;
    plan.filter = Some(Expr::IsNull(PropertyRef {
        index: shadow,
        name: "owneridname".into(),
    }));
    assert!(matches!(
        select_sql(&Sqlite, &plan, &CONTEXT, "1", ""),
        Err(SqlError::NotStored { .. })
    ));

    plan.filter = Some(parse(
        &entity,
        "Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=100000000000)",
    ));
    assert!(matches!(
        select_sql(&Sqlite, &plan, &CONTEXT, "1", ""),
        Err(SqlError::DateOutOfRange {
            function: "LastXDays",
            ..
        })
    ));
    plan.filter = Some(parse(
        &entity,
        "Microsoft.Dynamics.CRM.LastXYears(PropertyName='createdon',PropertyValue=9223372036854775807)",
    ));
    assert!(matches!(
        select_sql(&Sqlite, &plan, &CONTEXT, "1", ""),
        Err(SqlError::DateOutOfRange { .. })
    ));

    plan.filter = Some(parse(&entity, "contains(msdyn_name,'[z-a]')"));
    assert!(matches!(
        select_sql(&Sqlite, &plan, &CONTEXT, "1", ""),
        Err(SqlError::UnsupportedPattern { .. })
    ));

    let index = entity.position("statecode").unwrap();
    plan.filter = Some(Expr::Compare {
        prop: PropertyRef {
            index,
            name: "statecode".into(),
        },
        op: CmpOp::Gt,
        value: Literal::Null,
    });
    assert_eq!(
        select_sql(&Sqlite, &plan, &CONTEXT, "1", "").unwrap_err(),
        SqlError::NullComparison
    );
}

#[test]
fn patterns_read_sql_server_like_syntax() {
    use ClassItem as I;
    use PatternPart as P;
    let parse = |text: &str| Pattern::parse(text).parts;
    assert_eq!(parse("a%_"), vec![P::Char('a'), P::AnyString, P::AnyChar]);
    assert_eq!(parse("[%]"), vec![P::Char('%')]);
    assert_eq!(
        parse("[^a-c-]"),
        vec![P::Class {
            negated: true,
            items: vec![I::Range('a', 'c'), I::Char('-')]
        }]
    );
    assert_eq!(
        parse("[-a]"),
        vec![P::Class {
            negated: false,
            items: vec![I::Char('-'), I::Char('a')]
        }]
    );
    assert_eq!(
        parse("[a-]"),
        vec![P::Class {
            negated: false,
            items: vec![I::Char('a'), I::Char('-')]
        }]
    );
    assert_eq!(parse("[]"), vec![P::Char('['), P::Char(']')]);
    assert_eq!(parse("[^]"), vec![P::Char('['), P::Char('^'), P::Char(']')]);
    assert_eq!(parse("[a"), vec![P::Char('['), P::Char('a')]);
    assert_eq!(
        Pattern::for_function(StringFn::EndsWith, "x").parts,
        vec![P::AnyString, P::Char('x')]
    );
}

// ---------------------------------------------------------------------------------------------
// Execution against SQLite, checked against a plain Rust evaluation.
// ---------------------------------------------------------------------------------------------

/// Text values: case variants, LIKE wildcards and GLOB specials as data, non-ASCII letters.
const TEXTS: &[&str] = &[
    "sms 1",
    "SMS 1",
    "Sms 10",
    "sms 2",
    "alpha",
    "ALPHA",
    "Alpha beta",
    "a_b",
    "a%b",
    "axb",
    "AXB",
    "[x]",
    "x*y",
    "50%",
    "a-b",
    "^caret",
    "back\\slash",
    "it's",
    "",
    "Äpfel",
    "äpfel",
    "z",
    "Z9",
    "b",
];

/// Values of `contains` and friends: wildcards, classes, and literal-looking brackets.
const PATTERNS: &[&str] = &[
    "sms",
    "SMS 1",
    "1",
    "a_b",
    "a%",
    "%b",
    "_",
    "%",
    "[ax]",
    "[^a]%",
    "[a-c]",
    "[A-C]",
    "[%]",
    "[_]b",
    "x*",
    "*",
    "?",
    "[",
    "]",
    "[]",
    "[^]",
    "a-b",
    "-",
    "^",
    "[-^]",
    "[^-a]",
    "back\\",
    "it's",
    "",
    "Ä",
    "ä",
    "[x]",
    "[[]x",
    "s_s",
    "[a^]",
    "[--z]",
    "[!--]",
    "[ab]LPHA",
    "SMS [0-9]",
    "[a-]",
    "[x-]*",
    "%[^A-Z ]",
];

const INTS: &[i64] = &[-2, -1, 0, 1, 2, 3, 100];

const OTHER_GUIDS: [Uuid; 2] = [
    Uuid::from_u128(0x4026be43_6b69_e111_8f65_78e7d1620f5e),
    Uuid::from_u128(0xfeedface_0000_0000_0000_000000000001),
];

fn guids() -> Vec<Uuid> {
    vec![
        CONTEXT.user_id,
        CONTEXT.business_unit_id,
        OTHER_GUIDS[0],
        OTHER_GUIDS[1],
    ]
}

/// Dates around [`NOW`]: day and hour boundaries, now itself, and scattered seconds.
fn dates(rng: &mut Rng) -> i64 {
    let midnight = NOW - NOW.rem_euclid(86_400);
    match rng.below(5) {
        0 => midnight + (rng.below(30) as i64 - 15) * 86_400,
        1 => NOW - (rng.below(12) as i64 - 6) * 3_600,
        2 => NOW + rng.below(3) as i64 - 1,
        3 => midnight + (rng.below(25) as i64 - 12) * 86_400 - 1,
        _ => NOW + (rng.below(2_000) as i64 - 1_000) * 86_400 + rng.below(86_400) as i64,
    }
}

fn is_text(attribute: &Attribute) -> bool {
    matches!(
        attribute.attribute_type,
        AttributeType::String | AttributeType::Memo | AttributeType::EntityName
    )
}

fn is_guid(attribute: &Attribute) -> bool {
    matches!(
        attribute.attribute_type,
        AttributeType::Uniqueidentifier | AttributeType::Lookup | AttributeType::Owner
    )
}

fn is_int(attribute: &Attribute) -> bool {
    matches!(
        attribute.attribute_type,
        AttributeType::Integer
            | AttributeType::BigInt
            | AttributeType::Picklist
            | AttributeType::State
            | AttributeType::Status
    )
}

/// A stored value for `attribute`: drawn from small pools, so that filters hit and sort keys tie.
fn random_value(rng: &mut Rng, attribute: &Attribute) -> Value {
    if rng.chance(15) {
        return Value::Null;
    }
    let t = attribute.attribute_type;
    if is_text(attribute) {
        Value::Text(rng.pick(TEXTS).to_string())
    } else if is_guid(attribute) {
        Value::Guid(*rng.pick(&guids()))
    } else if t.is_option_set() {
        let options: Vec<i64> = attribute
            .options
            .iter()
            .map(|o| i64::from(o.value))
            .collect();
        Value::Int(*rng.pick(&options))
    } else if is_int(attribute) {
        Value::Int(*rng.pick(INTS))
    } else if t == AttributeType::DateTime {
        Value::DateTime(dates(rng))
    } else {
        Value::Bool(rng.chance(50))
    }
}

struct Table {
    entity: Arc<Entity>,
    db: Database,
    rows: HashMap<Uuid, Vec<Value>>,
}

/// Where a [`Table`]'s rows live: an in-memory SQLite database, or a fresh PostgreSQL database
/// on the server named by `SMSCTX_TEST_POSTGRES` (dropped with the table).
enum Database {
    Sqlite(Connection),
    Postgres {
        runtime: tokio::runtime::Runtime,
        client: tokio_postgres::Client,
        admin: String,
        name: String,
    },
}

/// `count` generated rows with the real schema on every backend under test: SQLite always,
/// PostgreSQL when `SMSCTX_TEST_POSTGRES` is set.
fn tables(seed: u64, count: usize) -> Vec<Table> {
    let entity = entity();
    let mut rng = Rng(seed);
    let stored: Vec<usize> = entity.stored_attributes().map(|(i, _)| i).collect();
    let pk = entity.primary_id_position();
    let version = entity.position("versionnumber").unwrap();
    let mut rows = Vec::with_capacity(count);
    for n in 0..count {
        let mut row = vec![Value::Null; entity.attributes.len()];
        for &i in &stored {
            row[i] = random_value(&mut rng, &entity.attributes[i]);
        }
        let id = Uuid::from_u64_pair(rng.below(usize::MAX) as u64, n as u64);
        row[pk] = Value::Guid(id);
        row[version] = Value::Int(1_000 + n as i64);
        rows.push(row);
    }
    let names: Vec<&str> = stored
        .iter()
        .map(|&i| entity.attributes[i].logical_name.as_str())
        .collect();
    let insert = |dialect: &dyn Dialect| {
        let placeholders: Vec<String> =
            (1..=stored.len()).map(|n| dialect.placeholder(n)).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            entity.logical_name,
            names.join(", "),
            placeholders.join(", ")
        )
    };
    let by_id = || {
        rows.iter()
            .map(|row| (row[pk].as_guid().unwrap(), row.clone()))
            .collect::<HashMap<_, _>>()
    };

    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(include_str!("../../../migrations/sqlite/0001_init.sql"))
        .unwrap();
    let sqlite_insert = insert(&Sqlite);
    for row in &rows {
        conn.execute(
            &sqlite_insert,
            params_from_iter(stored.iter().map(|&i| &row[i])),
        )
        .unwrap();
    }
    let mut tables = vec![Table {
        entity: Arc::clone(&entity),
        db: Database::Sqlite(conn),
        rows: by_id(),
    }];

    if let Some(admin) = postgres::testing::admin_url() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let name = format!("smsctx_sql_{}", Uuid::new_v4().simple());
        let client = runtime.block_on(async {
            let admin_client = postgres::testing::connect(&admin).await;
            admin_client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            let client =
                postgres::testing::connect(&postgres::testing::with_database(&admin, &name)).await;
            client
                .batch_execute(include_str!("../../../migrations/postgres/0001_init.sql"))
                .await
                .unwrap();
            let statement = client.prepare(&insert(&Postgres)).await.unwrap();
            for row in &rows {
                let params: Vec<postgres::Param<'_>> =
                    stored.iter().map(|&i| postgres::Param(&row[i])).collect();
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                client.execute(&statement, &refs).await.unwrap();
            }
            client
        });
        tables.push(Table {
            entity,
            db: Database::Postgres {
                runtime,
                client,
                admin,
                name,
            },
            rows: by_id(),
        });
    }
    tables
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Database::Postgres {
            runtime,
            admin,
            name,
            ..
        } = &self.db
        {
            runtime.block_on(async {
                let client = postgres::testing::connect(admin).await;
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        }
    }
}

impl Table {
    fn backend(&self) -> &'static str {
        match self.db {
            Database::Sqlite(_) => "SQLite",
            Database::Postgres { .. } => "PostgreSQL",
        }
    }

    /// Runs `sql` and returns the first column of every row: ids, or one count.
    fn run(&self, sql: &str, params: &[Value]) -> Vec<Value> {
        match &self.db {
            Database::Sqlite(conn) => {
                let mut statement = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let values = statement
                    .query_map(params_from_iter(params.iter()), |r| {
                        Ok(match r.get_ref(0)? {
                            rusqlite::types::ValueRef::Integer(n) => Value::Int(n),
                            rusqlite::types::ValueRef::Text(t) => Value::Guid(
                                Uuid::parse_str(std::str::from_utf8(t).unwrap()).unwrap(),
                            ),
                            other => panic!("unexpected {other:?}"),
                        })
                    })
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                values.map(Result::unwrap).collect()
            }
            Database::Postgres {
                runtime, client, ..
            } => runtime.block_on(async {
                let params: Vec<postgres::Param<'_>> = params.iter().map(postgres::Param).collect();
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let rows = client
                    .query(sql, &refs)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
                rows.iter()
                    .map(|row| match row.columns()[0].type_() {
                        &tokio_postgres::types::Type::UUID => Value::Guid(row.get(0)),
                        _ => Value::Int(row.get(0)),
                    })
                    .collect()
            }),
        }
    }

    fn dialect(&self) -> &'static dyn Dialect {
        match self.db {
            Database::Sqlite(_) => &Sqlite,
            Database::Postgres { .. } => &Postgres,
        }
    }

    /// The ids the plan selects, in the database's order.
    /// The page's ids as the stores read them: the statement, then (for a split cursor) its
    /// NULL tail until the limit is reached.
    fn select(&self, plan: &Plan) -> Vec<Uuid> {
        let columns = "t.msdyn_smsengagementctxid";
        let fail = |e: SqlError| -> ! { panic!("the plan should lower: {e}") };
        let first =
            select_sql(self.dialect(), plan, &CONTEXT, columns, "").unwrap_or_else(|e| fail(e));
        let tail = super::select_tail_sql(self.dialect(), plan, &CONTEXT, columns, "")
            .unwrap_or_else(|e| fail(e));
        let limit = plan.limit.unwrap_or(usize::MAX);
        let mut ids = Vec::new();
        for (sql, params) in std::iter::once(first).chain(tail) {
            if ids.len() < limit {
                ids.extend(
                    self.run(&sql, &params)
                        .into_iter()
                        .map(|id| id.as_guid().expect("an id")),
                );
            }
        }
        ids.truncate(limit);
        ids
    }

    fn count(&self, plan: &Plan, cap: usize) -> usize {
        let (sql, params) = count_sql(self.dialect(), plan, &CONTEXT, "", cap).unwrap();
        let n = self.run(&sql, &params)[0].as_int().expect("a count");
        usize::try_from(n).unwrap()
    }

    /// The ids `filter` selects by the Rust evaluation, in the Rust order of `order`.
    fn expected(&self, filter: Option<&Expr>, order: &[OrderBy]) -> Vec<Uuid> {
        let mut rows: Vec<&Vec<Value>> = self
            .rows
            .values()
            .filter(|row| filter.is_none_or(|f| eval(f, row) == Some(true)))
            .collect();
        rows.sort_by(|a, b| compare_rows(&self.entity, order, a, b));
        let pk = self.entity.primary_id_position();
        rows.iter().map(|row| row[pk].as_guid().unwrap()).collect()
    }
}

// --- The Rust evaluation: SQL's three-valued logic over the same rows. -----------------------

/// A value as SQLite compares it: text case-folded like `NOCASE` (ASCII only), Guids as their
/// stored text, everything else as an integer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Text(String),
}

fn key_of_value(value: &Value) -> Option<Key> {
    Some(match value {
        Value::Null => return None,
        Value::Text(t) => Key::Text(t.to_ascii_lowercase()),
        Value::Int(n) | Value::DateTime(n) => Key::Int(*n),
        Value::Bool(b) => Key::Int(i64::from(*b)),
        Value::Guid(g) => Key::Text(g.hyphenated().to_string()),
        Value::Float(_) => unreachable!("no column stores a float"),
    })
}

fn key_of_literal(literal: &Literal) -> Key {
    match literal {
        Literal::Null => panic!("no null literal in a comparison"),
        Literal::String(s) => Key::Text(s.to_ascii_lowercase()),
        Literal::Int(n) | Literal::DateTime(n) | Literal::Date(n) => Key::Int(*n),
        Literal::Guid(g) => Key::Text(g.hyphenated().to_string()),
        Literal::Bool(b) => Key::Int(i64::from(*b)),
    }
}

fn holds(op: CmpOp, ordering: Ordering) -> bool {
    match op {
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Ne => ordering != Ordering::Equal,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Le => ordering != Ordering::Greater,
    }
}

/// SQL Server `LIKE`, case-insensitive for ASCII, read straight from the pattern text.
fn like(pattern: &[char], text: &[char]) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return text.is_empty();
    };
    match first {
        '%' => (0..=text.len()).any(|skip| like(rest, &text[skip..])),
        '_' => !text.is_empty() && like(rest, &text[1..]),
        '[' => {
            let negated = rest.first() == Some(&'^');
            let body = if negated { &rest[1..] } else { rest };
            match body.iter().position(|&c| c == ']') {
                Some(end) if end > 0 => {
                    let Some(&c) = text.first() else {
                        return false;
                    };
                    let set = &body[..end];
                    let mut member = false;
                    let mut k = 0;
                    while k < set.len() {
                        if k + 2 < set.len() && set[k + 1] == '-' {
                            member |= set[k] <= c && c <= set[k + 2];
                            k += 3;
                        } else {
                            member |= set[k] == c;
                            k += 1;
                        }
                    }
                    member != negated && like(&body[end + 1..], &text[1..])
                }
                _ => text.first() == Some(&'[') && like(rest, &text[1..]),
            }
        }
        c => text.first() == Some(&c) && like(rest, &text[1..]),
    }
}

fn lowered_chars(text: &str) -> Vec<char> {
    text.to_ascii_lowercase().chars().collect()
}

/// The range of a date function at [`NOW`], computed from calendar dates.
fn expected_range(name: QueryFnName, values: &[Literal]) -> (Option<i64>, Option<(i64, bool)>) {
    use time::{Date, Month, OffsetDateTime};
    use QueryFnName as F;
    let at = |date: Date| date.midnight().assume_utc().unix_timestamp();
    let today = OffsetDateTime::from_unix_timestamp(NOW).unwrap().date();
    let n = match values {
        [Literal::Int(n)] => *n,
        _ => 0,
    };
    let value_day = || match values {
        [Literal::Date(s) | Literal::DateTime(s)] => {
            OffsetDateTime::from_unix_timestamp(*s).unwrap().date()
        }
        _ => panic!("a date value"),
    };
    let months_back = |months: i64| {
        let (mut year, mut month) = (today.year(), today.month());
        for _ in 0..months {
            if month == Month::January {
                year -= 1;
            }
            month = month.previous();
        }
        at(Date::from_calendar_date(year, month, today.day().min(month.length(year))).unwrap())
    };
    let hour = NOW - NOW % 3_600;
    let whole_day = |date: Date| (Some(at(date)), Some((at(date.next_day().unwrap()), false)));
    match name {
        F::Today => whole_day(today),
        F::Yesterday => whole_day(today.previous_day().unwrap()),
        F::Tomorrow => whole_day(today.next_day().unwrap()),
        F::LastXHours => (Some(hour - n * 3_600), Some((NOW, true))),
        F::NextXHours => (Some(NOW), Some((hour + (n + 1) * 3_600, false))),
        F::LastXDays => (Some(at(today - time::Duration::days(n))), Some((NOW, true))),
        F::NextXDays => (
            Some(NOW),
            Some((at(today + time::Duration::days(n + 1)), false)),
        ),
        F::LastXWeeks => (
            Some(at(today - time::Duration::weeks(n))),
            Some((NOW, true)),
        ),
        F::LastXMonths => (Some(months_back(n)), Some((NOW, true))),
        F::LastXYears => (Some(months_back(12 * n)), Some((NOW, true))),
        F::OlderThanXDays => (None, Some((at(today - time::Duration::days(n)), false))),
        F::On => whole_day(value_day()),
        F::OnOrAfter => (Some(at(value_day())), None),
        F::OnOrBefore => (None, Some((at(value_day().next_day().unwrap()), false))),
        other => panic!("{other:?} is not a date function"),
    }
}

fn eval(expr: &Expr, row: &[Value]) -> Option<bool> {
    let key = |prop: &PropertyRef| key_of_value(&row[prop.index]);
    match expr {
        Expr::Compare { prop, op, value } => {
            Some(holds(*op, key(prop)?.cmp(&key_of_literal(value))))
        }
        Expr::ComparePropProp { left, op, right } => Some(holds(*op, key(left)?.cmp(&key(right)?))),
        Expr::IsNull(prop) => Some(row[prop.index].is_null()),
        Expr::NotNull(prop) => Some(!row[prop.index].is_null()),
        Expr::And(operands) => {
            let results: Vec<Option<bool>> = operands.iter().map(|e| eval(e, row)).collect();
            if results.contains(&Some(false)) {
                Some(false)
            } else if results.contains(&None) {
                None
            } else {
                Some(true)
            }
        }
        Expr::Or(operands) => {
            let results: Vec<Option<bool>> = operands.iter().map(|e| eval(e, row)).collect();
            if results.contains(&Some(true)) {
                Some(true)
            } else if results.contains(&None) {
                None
            } else {
                Some(false)
            }
        }
        Expr::Not(inner) => eval(inner, row).map(|b| !b),
        Expr::Related { .. } | Expr::Lambda { .. } => {
            panic!("this oracle reads one table; tests/query_differential.rs covers relationships")
        }
        Expr::StringFn { func, prop, value } => {
            let text = row[prop.index].as_text()?;
            let pattern = match func {
                StringFn::Contains => format!("%{value}%"),
                StringFn::StartsWith => format!("{value}%"),
                StringFn::EndsWith => format!("%{value}"),
            };
            Some(like(&lowered_chars(&pattern), &lowered_chars(text)))
        }
        Expr::Like { prop, pattern } => {
            let text = row[prop.index].as_text()?;
            Some(like(&lowered_chars(pattern), &lowered_chars(text)))
        }
        Expr::QueryFn { name, prop, values } => {
            use QueryFnName as F;
            let actual = key(prop)?;
            Some(match name {
                F::In => values.iter().any(|v| actual == key_of_literal(v)),
                F::NotIn => !values.iter().any(|v| actual == key_of_literal(v)),
                F::Between | F::NotBetween => {
                    let inside = key_of_literal(&values[0]) <= actual
                        && actual <= key_of_literal(&values[1]);
                    inside == (*name == F::Between)
                }
                F::EqualUserId | F::NotEqualUserId | F::EqualBusinessId | F::NotEqualBusinessId => {
                    let id = match name {
                        F::EqualUserId | F::NotEqualUserId => CONTEXT.user_id,
                        _ => CONTEXT.business_unit_id,
                    };
                    let equal = actual == Key::Text(id.hyphenated().to_string());
                    equal == matches!(name, F::EqualUserId | F::EqualBusinessId)
                }
                _ => {
                    let Key::Int(secs) = actual else {
                        panic!("a date column")
                    };
                    let (from, to) = expected_range(*name, values);
                    from.is_none_or(|f| secs >= f)
                        && to.is_none_or(
                            |(t, inclusive)| {
                                if inclusive {
                                    secs <= t
                                } else {
                                    secs < t
                                }
                            },
                        )
                }
            })
        }
    }
}

/// The order of the plan: keys with NULL smallest, then the primary id in the last key's
/// direction.
fn compare_rows(entity: &Entity, order: &[OrderBy], a: &[Value], b: &[Value]) -> Ordering {
    let pk = entity.primary_id_position();
    let last_descending = order.last().is_some_and(|k| k.descending);
    let keys = order
        .iter()
        .map(|k| (k.prop.index, k.descending))
        .chain([(pk, last_descending)]);
    for (index, descending) in keys {
        // `None < Some(_)`: NULL is the smallest value.
        let ordering = key_of_value(&a[index]).cmp(&key_of_value(&b[index]));
        let ordering = if descending {
            ordering.reverse()
        } else {
            ordering
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

// --- Random filters, written as `$filter` text and parsed. -----------------------------------

fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// The `$filter` text of a literal drawn from the data's pools (text in random case).
fn random_literal(rng: &mut Rng, attribute: &Attribute) -> (String, String) {
    let value = loop {
        let value = random_value(rng, attribute);
        if !value.is_null() {
            break value;
        }
    };
    match value {
        Value::Text(t) => {
            let t = match rng.below(3) {
                0 => t.to_ascii_uppercase(),
                1 => t.to_ascii_lowercase(),
                _ => t,
            };
            (string_literal(&t), t)
        }
        Value::Int(n) => (n.to_string(), n.to_string()),
        Value::Guid(g) => (g.to_string(), g.to_string()),
        Value::DateTime(secs) => {
            let text = if rng.chance(30) {
                Literal::Date(secs - secs.rem_euclid(86_400)).to_string()
            } else {
                Literal::DateTime(secs).to_string()
            };
            (text.clone(), text)
        }
        Value::Bool(b) => (b.to_string(), b.to_string()),
        Value::Null => unreachable!("drawn until not null"),
        Value::Float(_) => unreachable!("no column stores a float"),
    }
}

fn random_leaf(rng: &mut Rng, entity: &Entity) -> String {
    use AttributeType as T;
    let columns: Vec<&Attribute> = entity
        .attributes
        .iter()
        .filter(|a| a.is_edm_property())
        .collect();
    let attribute = *rng.pick(&columns);
    let name = attribute.property_name();
    let t = attribute.attribute_type;
    let ordered = matches!(
        t,
        T::Integer | T::BigInt | T::Picklist | T::State | T::Status | T::DateTime
    );
    let function =
        |f: &str, rest: String| format!("Microsoft.Dynamics.CRM.{f}(PropertyName='{name}'{rest})");
    match rng.below(10) {
        0 => format!("{name} {} null", rng.pick(&["eq", "ne"])),
        1 => {
            let same: Vec<&&Attribute> = columns
                .iter()
                .filter(|a| a.attribute_type.edm_type() == t.edm_type())
                .collect();
            let other = rng.pick(&same).property_name();
            format!(
                "{name} {} {other}",
                rng.pick(&["eq", "ne", "gt", "ge", "lt", "le"])
            )
        }
        2 | 3 if matches!(t, T::String | T::Memo) => {
            let func = rng.pick(&["contains", "startswith", "endswith"]);
            format!(
                "{func}({name},{})",
                string_literal(rng.pick::<&str>(PATTERNS))
            )
        }
        4 => {
            let n = 1 + rng.below(4);
            let values: Vec<String> = (0..n)
                .map(|_| json_string(&random_literal(rng, attribute).1))
                .collect();
            let f = if rng.chance(50) { "In" } else { "NotIn" };
            function(f, format!(",PropertyValues=[{}]", values.join(",")))
        }
        5 if ordered => {
            let low = random_literal(rng, attribute).1;
            let high = random_literal(rng, attribute).1;
            let f = if rng.chance(50) {
                "Between"
            } else {
                "NotBetween"
            };
            function(
                f,
                format!(
                    ",PropertyValues=[{},{}]",
                    json_string(&low),
                    json_string(&high)
                ),
            )
        }
        6 | 7 if t == T::DateTime => {
            let f = *rng.pick(&[
                "Today",
                "Yesterday",
                "Tomorrow",
                "LastXHours",
                "NextXHours",
                "LastXDays",
                "NextXDays",
                "LastXWeeks",
                "LastXMonths",
                "LastXYears",
                "OlderThanXDays",
                "On",
                "OnOrAfter",
                "OnOrBefore",
            ]);
            let rest = match f {
                "Today" | "Yesterday" | "Tomorrow" => String::new(),
                "On" | "OnOrAfter" | "OnOrBefore" => {
                    format!(",PropertyValue={}", random_literal(rng, attribute).0)
                }
                "LastXMonths" | "LastXYears" => format!(",PropertyValue={}", rng.below(40)),
                _ => format!(",PropertyValue={}", rng.below(20)),
            };
            function(f, rest)
        }
        6 | 7 if t.is_lookup() => {
            let user = attribute.targets.iter().any(|x| x == "systemuser");
            let unit = attribute.targets.iter().any(|x| x == "businessunit");
            let equal = rng.chance(50);
            match (user, unit, equal) {
                (true, _, true) => function("EqualUserId", String::new()),
                (true, _, false) => function("NotEqualUserId", String::new()),
                (_, true, true) => function("EqualBusinessId", String::new()),
                (_, true, false) => function("NotEqualBusinessId", String::new()),
                _ => format!("{name} eq {}", random_literal(rng, attribute).0),
            }
        }
        _ => {
            let ops: &[&str] = if t == T::Boolean {
                &["eq", "ne"]
            } else {
                &["eq", "ne", "gt", "ge", "lt", "le"]
            };
            format!(
                "{name} {} {}",
                rng.pick(ops),
                random_literal(rng, attribute).0
            )
        }
    }
}

fn random_filter(rng: &mut Rng, entity: &Entity, depth: u32) -> String {
    if depth == 0 || rng.chance(40) {
        return random_leaf(rng, entity);
    }
    match rng.below(3) {
        0 => format!("not ({})", random_filter(rng, entity, depth - 1)),
        choice => {
            let keyword = if choice == 1 { " and " } else { " or " };
            let operands: Vec<String> = (0..2 + rng.below(2))
                .map(|_| format!("({})", random_filter(rng, entity, depth - 1)))
                .collect();
            operands.join(keyword)
        }
    }
}

fn random_order(rng: &mut Rng, entity: &Entity) -> Vec<OrderBy> {
    let columns: Vec<&Attribute> = entity
        .attributes
        .iter()
        .filter(|a| a.is_edm_property())
        .collect();
    let text: Vec<String> = (0..rng.below(4))
        .map(|_| {
            let name = rng.pick(&columns).property_name();
            let direction = rng.pick(&["", " asc", " desc"]);
            format!("{name}{direction}")
        })
        .collect();
    if text.is_empty() {
        Vec::new()
    } else {
        orderby(entity, &text.join(","))
    }
}

#[test]
fn generated_filters_select_exactly_the_rows_the_rust_evaluation_selects() {
    for table in tables(0x5eed_0001, 300) {
        let backend = table.backend();
        let mut rng = Rng(0x00f1_17e5);
        let mut nonempty = 0;
        for _ in 0..1_500 {
            let text = random_filter(&mut rng, &table.entity, 3);
            let mut plan = plan(&table.entity, Some(&text));
            plan.order = random_order(&mut rng, &table.entity);
            let expected = table.expected(plan.filter.as_ref(), &plan.order);
            let actual = table.select(&plan);
            assert_eq!(actual, expected, "{backend}: $filter={text}");
            let count = table.count(&plan, 5_000);
            assert_eq!(count, expected.len(), "{backend}: count of $filter={text}");
            if !expected.is_empty() && expected.len() < table.rows.len() {
                nonempty += 1;
            }
        }
        // The generator is useful only if most filters split the rows.
        assert!(
            nonempty > 600,
            "only {nonempty} filters selected some rows but not all"
        );
    }
}

#[test]
fn every_leaf_kind_agrees_with_the_rust_evaluation() {
    for table in tables(0x5eed_0002, 300) {
        let backend = table.backend();
        let mut rng = Rng(0x1eaf);
        for _ in 0..3_000 {
            let text = random_leaf(&mut rng, &table.entity);
            let plan = plan(&table.entity, Some(&text));
            assert_eq!(
                table.select(&plan),
                table.expected(plan.filter.as_ref(), &[]),
                "{backend}: $filter={text}"
            );
        }
    }
}

#[test]
fn counts_stop_at_the_cap() {
    for table in tables(0x5eed_0003, 120) {
        let plan = plan(&table.entity, None);
        assert_eq!(table.count(&plan, 5_000), 120, "{}", table.backend());
        assert_eq!(table.count(&plan, 50), 50, "{}", table.backend());
        assert_eq!(table.count(&plan, 0), 0, "{}", table.backend());
    }
}

#[test]
fn keyset_paging_visits_every_row_once_in_the_unpaged_order() {
    for table in tables(0x5eed_0004, 250) {
        let backend = table.backend();
        let mut rng = Rng(0xba9e);
        let mut orderings = vec![
            Vec::new(),
            orderby(&table.entity, "msdyn_name"),
            orderby(&table.entity, "msdyn_name desc"),
            orderby(&table.entity, "createdon desc,msdyn_name,statecode desc"),
            orderby(&table.entity, "_ownerid_value,msdyn_smsprovider desc"),
            orderby(&table.entity, "msdyn_smsengagementctxid desc"),
        ];
        for _ in 0..60 {
            orderings.push(random_order(&mut rng, &table.entity));
        }
        for (n, order) in orderings.into_iter().enumerate() {
            let filter = (n % 3 == 2).then(|| random_filter(&mut rng, &table.entity, 2));
            let mut plan = plan(&table.entity, filter.as_deref());
            plan.order = order;
            let unpaged = table.select(&plan);
            assert_eq!(
                unpaged,
                table.expected(plan.filter.as_ref(), &plan.order),
                "{backend}: unpaged order {:?} with $filter={filter:?}",
                plan.order
            );
            let page_size = 1 + rng.below(40);
            plan.limit = Some(page_size);
            let mut paged: Vec<Uuid> = Vec::new();
            loop {
                let page = table.select(&plan);
                paged.extend(&page);
                if page.len() < page_size {
                    break;
                }
                assert!(paged.len() <= unpaged.len(), "paging does not end");
                let last = &table.rows[page.last().unwrap()];
                plan.after = Some(Keyset::of_row(&table.entity, &plan.order, last));
            }
            assert_eq!(
                paged, unpaged,
                "{backend}: pages of {page_size} under {:?} with $filter={filter:?}",
                plan.order
            );
        }
    }
}

#[test]
fn a_row_scope_lowers_to_the_unit_list_or_one_primary_key_in() {
    let entity = entity();
    let owner = entity.position("ownerid").unwrap();
    let unit = entity.position("owningbusinessunit").unwrap();
    let user = Uuid::from_u128(1);
    let lower = |scope: Scope| {
        let plan = Plan {
            scope: Some(scope),
            ..plan(&entity, Some("statecode eq 0"))
        };
        let (sql, params) = select_sql(&Sqlite, &plan, &CONTEXT, "1", "").expect("lowers");
        (sql, params.len())
    };
    let (sql, params) = lower(Scope::nothing(&entity));
    assert!(sql.contains("WHERE t.statecode = ?1 AND 1 = 0"), "{sql}");
    assert_eq!(params, 1);
    let (sql, params) = lower(Scope {
        owner,
        owner_in: vec![user],
        business_unit: unit,
        business_units_in: vec![Uuid::from_u128(2)],
        shares: Some(ShareScope {
            table: "principalobjectaccess".into(),
            object: "objectid".into(),
            principal: "principalid".into(),
            mask: "accessrightsmask".into(),
            principals: vec![user],
            right: 1,
        }),
    });
    assert!(
        sql.contains(
            "AND (t.owningbusinessunit IN (?2) OR t.msdyn_smsengagementctxid IN (SELECT o.msdyn_smsengagementctxid FROM msdyn_smsengagementctx AS o WHERE o.ownerid IN (?3) UNION ALL SELECT s.objectid FROM principalobjectaccess AS s WHERE s.principalid IN (?4) AND (s.accessrightsmask & ?5) <> 0))"
        ),
        "{sql}"
    );
    assert_eq!(params, 5);
}

#[test]
fn key_indexes_compare_text_as_the_dialect_does() {
    let key = crate::store::StoredKey {
        entity: "msdyn_smsengagementctx".into(),
        logical_name: "smsctx_name_provider".into(),
        schema_name: "smsctx_Name_Provider".into(),
        display_name: "Name and provider".into(),
        attributes: vec!["msdyn_name".into(), "msdyn_smsprovider".into()],
    };
    let text = vec!["msdyn_name".to_string()];
    let (create, drop) = key_index(&Postgres, &key, &text).unwrap();
    assert_eq!(
        create,
        "CREATE UNIQUE INDEX smsctx_key_smsctx_name_provider_c37b6882 ON msdyn_smsengagementctx \
         ((lower(msdyn_name COLLATE \"C\")), msdyn_smsprovider)"
    );
    assert_eq!(drop, "DROP INDEX smsctx_key_smsctx_name_provider_c37b6882");
    // SQLite's NOCASE columns are indexed as they are.
    let (create, _) = key_index(&Sqlite, &key, &text).unwrap();
    assert!(
        create.ends_with("ON msdyn_smsengagementctx (msdyn_name, msdyn_smsprovider)"),
        "{create}"
    );
}
