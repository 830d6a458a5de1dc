//! The `?sql=` front end: each supported form binds to the tree its `$filter` spelling binds
//! to, and each construct outside the subset is refused with its name.

use std::collections::HashMap;

use super::*;
use crate::metadata::Catalog;

const TABLE: &str = "msdyn_smsengagementctx";

fn catalog() -> Catalog {
    Catalog::builtin().unwrap()
}

/// `sql_where` (the condition of a SELECT on the context table) binds to what `odata` binds to.
fn check_same_as_filter(sql_where: &str, odata: &str) {
    let catalog = catalog();
    let entity = catalog.entity(TABLE).unwrap().clone();
    let query = parse(
        &catalog,
        &format!("SELECT msdyn_name FROM {TABLE} WHERE {sql_where}"),
    )
    .unwrap();
    let expected = filter::parse(&entity, odata, &HashMap::new()).unwrap();
    assert_eq!(query.filter.as_ref(), Some(&expected), "{sql_where}");
}

fn check_refused(text: &str, fragment: &str) {
    let error = parse(&catalog(), text).unwrap_err();
    assert!(
        error.to_string().contains(fragment),
        "{text}: {error} does not say {fragment}"
    );
}

#[test]
fn comparisons_bind_like_filter() {
    check_same_as_filter("statecode = 0", "statecode eq 0");
    check_same_as_filter("statecode <> 1", "statecode ne 1");
    check_same_as_filter("statecode != 1", "statecode ne 1");
    check_same_as_filter("0 < statecode", "statecode gt 0");
    check_same_as_filter("msdyn_name >= 'b'", "msdyn_name ge 'b'");
    check_same_as_filter("MSDYN_NAME = 'it''s'", "msdyn_name eq 'it''s'");
    check_same_as_filter(
        "msdyn_orgphonenumber = msdyn_customerphonenumber",
        "msdyn_orgphonenumber eq msdyn_customerphonenumber",
    );
    check_same_as_filter(
        "msdyn_smsengagementctx.statecode = 0 AND (msdyn_name = 'a' OR NOT msdyn_name = 'b')",
        "statecode eq 0 and (msdyn_name eq 'a' or not (msdyn_name eq 'b'))",
    );
    check_same_as_filter("msdyn_name IS NULL", "msdyn_name eq null");
    check_same_as_filter("msdyn_name IS NOT NULL", "msdyn_name ne null");
    check_same_as_filter(
        "msdyn_smsprovider IN (192350000, '192350001')",
        "msdyn_smsprovider eq 192350000 or msdyn_smsprovider eq 192350001",
    );
    check_same_as_filter("statecode NOT IN (1)", "not (statecode eq 1)");
    check_same_as_filter(
        "ownerid = '4026be43-6b69-e111-8f65-78e7d1620f5e'",
        "_ownerid_value eq 4026be43-6b69-e111-8f65-78e7d1620f5e",
    );
}

#[test]
fn like_columns_order_and_top() {
    let catalog = catalog();
    let query = parse(
        &catalog,
        "SELECT TOP 3 c.msdyn_name, ownerid FROM msdyn_smsengagementctx c \
         WHERE c.msdyn_name NOT LIKE 'a%' ORDER BY createdon DESC, msdyn_name",
    )
    .unwrap();
    assert_eq!(query.top, Some(3));
    let names: Vec<&str> = query.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["msdyn_name", "_ownerid_value"]);
    assert!(matches!(&query.filter, Some(Expr::Not(inner))
        if matches!(inner.as_ref(), Expr::Like { pattern, .. } if pattern == "a%")));
    assert_eq!(query.order.len(), 2);
    assert!(query.order[0].descending && !query.order[1].descending);
    let all = parse(&catalog, "select * from MSDYN_SMSENGAGEMENTCTX").unwrap();
    assert!(all.columns.len() > 10);
    assert_eq!(all.entity.logical_name, TABLE);
}

#[test]
fn everything_outside_the_subset_is_refused_by_name() {
    for (text, fragment) in [
        ("DELETE FROM msdyn_smsengagementctx", "DELETE"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx; SELECT 1", "More than one statement"),
        ("SELECT DISTINCT msdyn_name FROM msdyn_smsengagementctx", "DISTINCT"),
        ("SELECT statecode FROM msdyn_smsengagementctx GROUP BY statecode", "GROUP BY"),
        ("SELECT COUNT(*) FROM msdyn_smsengagementctx", "COUNT"),
        ("SELECT msdyn_name AS n FROM msdyn_smsengagementctx", "aliases"),
        ("SELECT a.msdyn_name FROM msdyn_smsengagementctx a JOIN systemuser u ON a.ownerid = u.systemuserid", "JOIN"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx, systemuser", "More than one table"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx UNION SELECT fullname FROM systemuser", "UNION"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx WHERE msdyn_name IN (SELECT fullname FROM systemuser)", "Subqueries"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx WHERE statecode BETWEEN 0 AND 1", "BETWEEN"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx WHERE msdyn_name = NULL", "IS NULL"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx WHERE statecode LIKE '1'", "not a text column"),
        ("SELECT TOP 10 PERCENT msdyn_name FROM msdyn_smsengagementctx", "PERCENT"),
        ("WITH x AS (SELECT 1 AS a) SELECT a FROM x", "WITH"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx WHERE 1 = 1", "without a column"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx WHERE upper(msdyn_name) = 'A'", "upper"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx ORDER BY msdyn_name OFFSET 1 ROWS", "OFFSET"),
        ("SELECT nothing FROM msdyn_smsengagementctx", "nothing"),
        ("SELECT msdyn_name FROM nothing", "nothing"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx WHERE statecode = 'x'", "'x'"),
        ("SELECT msdyn_name FROM msdyn_smsengagementctx WHERE x.statecode = 0", "qualifier"),
        ("SELECT msdyn_name FROM", "could not be parsed"),
    ] {
        check_refused(text, fragment);
    }
}

#[test]
fn refusals_carry_the_invalid_argument_code() {
    let error = parse(
        &catalog(),
        "SELECT DISTINCT msdyn_name FROM msdyn_smsengagementctx",
    )
    .unwrap_err();
    assert_eq!(error.code(), "0x80040203");
}
