//! FetchXML front-end tests: binding meets the `$filter` AST, Dataverse's error wording, paging cookies, and generated garbage never panics.

use std::collections::HashMap;

use super::*;
use crate::test_support::Rng;

const CTX: &str = "msdyn_smsengagementctx";
const GUID: &str = "4026be43-6b69-e111-8f65-78e7d1620f5e";

fn catalog() -> Catalog {
    Catalog::builtin().expect("the built-in pages import")
}

fn fetch(text: &str) -> Result<FetchQuery, QueryError> {
    parse(&catalog(), text)
}

fn ok(text: &str) -> FetchQuery {
    fetch(text).unwrap_or_else(|e| panic!("{text:?} should bind: {e}"))
}

/// A query on the seed table whose entity holds `inner` (filters, attributes, orders, links).
fn on_ctx(inner: &str) -> String {
    format!("<fetch><entity name='{CTX}'>{inner}</entity></fetch>")
}

fn filter_of(conditions: &str) -> Expr {
    let text = on_ctx(&format!("<filter>{conditions}</filter>"));
    ok(&text).filter.expect("a filter")
}

/// Binds `conditions` (inside one `<filter>`), checks the canonical text, and checks that the
/// same text read as `$filter` gives the same tree: both front ends meet.
fn check(conditions: &str, expected: &str) {
    let expr = filter_of(conditions);
    assert_eq!(expr.to_string(), expected, "for {conditions:?}");
    let entity = catalog().entity(CTX).unwrap().clone();
    let odata = filter::parse(&entity, expected, &HashMap::new())
        .unwrap_or_else(|e| panic!("{expected:?} should parse as $filter: {e}"));
    assert_eq!(odata, expr, "FetchXML and $filter differ for {expected:?}");
}

/// For trees only FetchXML produces (`like`): the canonical text only.
fn check_fetch_only(conditions: &str, expected: &str) {
    assert_eq!(filter_of(conditions).to_string(), expected);
}

fn check_error(text: &str, code: &str, message: &str) {
    let error = fetch(text).expect_err("should fail");
    assert_eq!(error.to_string(), message, "for {text:?}");
    assert_eq!(error.code(), code, "code for {text:?}");
}

fn condition(attribute: &str, operator: &str, value: &str) -> String {
    format!("<condition attribute='{attribute}' operator='{operator}' value='{value}'/>")
}

fn listed(attribute: &str, operator: &str, values: &[&str]) -> String {
    let values: String = values
        .iter()
        .map(|v| format!("<value>{v}</value>"))
        .collect();
    format!("<condition attribute='{attribute}' operator='{operator}'>{values}</condition>")
}

fn bare(attribute: &str, operator: &str) -> String {
    format!("<condition attribute='{attribute}' operator='{operator}'/>")
}

#[test]
fn comparisons_meet_the_odata_filter() {
    check(
        &condition("msdyn_name", "eq", "it&apos;s"),
        "msdyn_name eq 'it''s'",
    );
    check(&condition("statecode", "ne", "1"), "statecode ne 1");
    check(&condition("statecode", "neq", "1"), "statecode ne 1");
    check(
        &condition("createdon", "gt", "2024-05-01T10:00:00Z"),
        "createdon gt 2024-05-01T10:00:00Z",
    );
    check(
        &condition("createdon", "ge", "2024-05-01"),
        "createdon ge 2024-05-01",
    );
    check(
        &condition("versionnumber", "lt", "-12"),
        "versionnumber lt -12",
    );
    check(
        &condition("msdyn_smsprovider", "le", " 192350001 "),
        "msdyn_smsprovider le 192350001",
    );
    check(
        &condition("ownerid", "eq", &format!("{{{}}}", GUID.to_uppercase())),
        &format!("_ownerid_value eq {GUID}"),
    );
    check(
        &condition("msdyn_liveworkitemid", "eq", GUID),
        &format!("_msdyn_liveworkitemid_value eq {GUID}"),
    );
    check(
        "<condition attribute='msdyn_name' operator='eq'><value>x</value></condition>",
        "msdyn_name eq 'x'",
    );
    check(&condition("msdyn_name", "eq", ""), "msdyn_name eq ''");
}

#[test]
fn column_comparisons_use_valueof() {
    check(
        "<condition attribute='msdyn_orgphonenumber' operator='eq' valueof='msdyn_customerphonenumber'/>",
        "msdyn_orgphonenumber eq msdyn_customerphonenumber",
    );
    check(
        "<condition attribute='modifiedon' operator='gt' valueof='createdon'/>",
        "modifiedon gt createdon",
    );
    check_error(
        &on_ctx("<filter><condition attribute='msdyn_name' operator='eq' valueof='statecode'/></filter>"),
        "0x80040203",
        "Condition for attribute 'msdyn_smsengagementctx.msdyn_name': 'valueof' names 'statecode' of type Edm.Int32; the column is of type Edm.String.",
    );
    check_error(
        &on_ctx("<filter><condition attribute='msdyn_name' operator='like' valueof='msdyn_name'/></filter>"),
        "0x80040203",
        "Condition for attribute 'msdyn_smsengagementctx.msdyn_name': 'valueof' applies to the operators eq, ne, gt, ge, lt and le only.",
    );
}

#[test]
fn null_and_string_operators() {
    check(&bare("msdyn_name", "null"), "msdyn_name eq null");
    check(&bare("ownerid", "not-null"), "_ownerid_value ne null");
    check(&condition("msdyn_name", "null", ""), "msdyn_name eq null");
    check(
        &condition("msdyn_name", "begins-with", "sms"),
        "startswith(msdyn_name,'sms')",
    );
    check(
        &condition("msdyn_name", "not-begin-with", "sms"),
        "not startswith(msdyn_name,'sms')",
    );
    check(
        &condition("msdyn_name", "ends-with", "7"),
        "endswith(msdyn_name,'7')",
    );
    check(
        &condition("msdyn_name", "not-end-with", "7"),
        "not endswith(msdyn_name,'7')",
    );
}

#[test]
fn like_has_its_own_variant_that_odata_never_produces() {
    check_fetch_only(
        &condition("msdyn_name", "like", "%sms%"),
        "like(msdyn_name,'%sms%')",
    );
    check_fetch_only(
        &condition("msdyn_customerphonenumber", "not-like", "+1_55[0-9]%"),
        "not like(msdyn_customerphonenumber,'+1_55[0-9]%')",
    );
    let entity = catalog().entity(CTX).unwrap().clone();
    let error = filter::parse(&entity, "like(msdyn_name,'%sms%')", &HashMap::new())
        .expect_err("$filter has no like");
    assert!(matches!(error, QueryError::UnknownFunction { .. }));
    check_error(
        &on_ctx(&format!("<filter>{}</filter>", condition("statecode", "like", "1%"))),
        "0x80040203",
        "Condition for attribute 'msdyn_smsengagementctx.statecode': the operator Like applies to string columns only (the column is of type 'State').",
    );
}

#[test]
fn list_and_range_operators_are_query_functions() {
    check(
        &listed("statuscode", "in", &["1", "2"]),
        r#"Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=["1","2"])"#,
    );
    check(
        "<condition attribute='statuscode' operator='not-in' value=''><value>1</value></condition>",
        r#"Microsoft.Dynamics.CRM.NotIn(PropertyName='statuscode',PropertyValues=["1"])"#,
    );
    check(
        &listed("msdyn_name", "in", &["a", "it's"]),
        r#"Microsoft.Dynamics.CRM.In(PropertyName='msdyn_name',PropertyValues=["a","it's"])"#,
    );
    check(
        &listed("ownerid", "in", &[&format!("{{{GUID}}}")]),
        &format!(
            r#"Microsoft.Dynamics.CRM.In(PropertyName='_ownerid_value',PropertyValues=["{GUID}"])"#
        ),
    );
    check(
        &listed(
            "createdon",
            "between",
            &["2024-05-01", "2024-05-31T23:59:59Z"],
        ),
        r#"Microsoft.Dynamics.CRM.Between(PropertyName='createdon',PropertyValues=["2024-05-01","2024-05-31T23:59:59Z"])"#,
    );
    check(
        &listed("versionnumber", "not-between", &["1", "9"]),
        r#"Microsoft.Dynamics.CRM.NotBetween(PropertyName='versionnumber',PropertyValues=["1","9"])"#,
    );
}

#[test]
fn date_and_principal_operators_are_query_functions() {
    let ns = "Microsoft.Dynamics.CRM.";
    check(
        &condition("createdon", "on", "2024-05-01"),
        &format!("{ns}On(PropertyName='createdon',PropertyValue=2024-05-01)"),
    );
    check(
        &condition("createdon", "on-or-after", "2024-05-01"),
        &format!("{ns}OnOrAfter(PropertyName='createdon',PropertyValue=2024-05-01)"),
    );
    check(
        &condition("modifiedon", "on-or-before", "2024-05-01T00:00:00Z"),
        &format!("{ns}OnOrBefore(PropertyName='modifiedon',PropertyValue=2024-05-01T00:00:00Z)"),
    );
    for (operator, function) in [
        ("today", "Today"),
        ("yesterday", "Yesterday"),
        ("tomorrow", "Tomorrow"),
    ] {
        check(
            &bare("createdon", operator),
            &format!("{ns}{function}(PropertyName='createdon')"),
        );
    }
    for (operator, function) in [
        ("last-x-days", "LastXDays"),
        ("next-x-days", "NextXDays"),
        ("last-x-hours", "LastXHours"),
        ("next-x-hours", "NextXHours"),
        ("last-x-weeks", "LastXWeeks"),
        ("last-x-months", "LastXMonths"),
        ("last-x-years", "LastXYears"),
        ("olderthan-x-days", "OlderThanXDays"),
        ("older-x-days", "OlderThanXDays"),
    ] {
        check(
            &condition("createdon", operator, "7"),
            &format!("{ns}{function}(PropertyName='createdon',PropertyValue=7)"),
        );
    }
    for (column, operator, function) in [
        ("ownerid", "eq-userid", "EqualUserId"),
        ("owninguser", "ne-userid", "NotEqualUserId"),
        ("owningbusinessunit", "eq-businessid", "EqualBusinessId"),
        ("owningbusinessunit", "ne-businessid", "NotEqualBusinessId"),
    ] {
        check(
            &bare(column, operator),
            &format!("{ns}{function}(PropertyName='_{column}_value')"),
        );
    }
}

#[test]
fn every_operator_in_the_table_binds() {
    for (name, operator) in OPERATORS {
        let conditions = match operator {
            Operator::Compare(_) => condition("statecode", name, "0"),
            Operator::Null | Operator::NotNull => bare("msdyn_name", name),
            Operator::Like { .. } | Operator::Text { .. } => condition("msdyn_name", name, "a"),
            Operator::Function(f) => match f.values() {
                FnValues::List => listed("statecode", name, &["0", "1"]),
                FnValues::Range => listed("statecode", name, &["0", "1"]),
                FnValues::Count => condition("createdon", name, "3"),
                FnValues::Date => condition("createdon", name, "2024-05-01"),
                FnValues::None if f.name().contains("Business") => bare("owningbusinessunit", name),
                FnValues::None if f.name().contains("User") => bare("ownerid", name),
                FnValues::None => bare("createdon", name),
            },
        };
        let expr = filter_of(&conditions);
        if !matches!(operator, Operator::Like { .. }) {
            let entity = catalog().entity(CTX).unwrap().clone();
            let odata = filter::parse(&entity, &expr.to_string(), &HashMap::new())
                .unwrap_or_else(|e| panic!("{name}: {expr} should parse: {e}"));
            assert_eq!(odata, expr, "{name}");
        }
    }
    for name in UNSUPPORTED_OPERATORS {
        let text = on_ctx(&format!("<filter>{}</filter>", bare("createdon", name)));
        check_error(
            &text,
            "0x0",
            &format!("The condition operator '{name}' is not supported."),
        );
    }
}

#[test]
fn filters_nest_and_join() {
    check(
        &format!(
            "{}<filter type='or'>{}{}</filter>",
            condition("statecode", "eq", "0"),
            condition("msdyn_name", "eq", "a"),
            condition("msdyn_name", "eq", "b"),
        ),
        "statecode eq 0 and (msdyn_name eq 'a' or msdyn_name eq 'b')",
    );
    let text = on_ctx(&format!(
        "<filter type='or'>{}<filter>{}{}</filter><filter/></filter><filter>{}</filter>",
        condition("statecode", "eq", "1"),
        condition("statecode", "eq", "0"),
        condition("statuscode", "eq", "1"),
        bare("msdyn_name", "not-null"),
    ));
    assert_eq!(
        ok(&text).filter.unwrap().to_string(),
        "(statecode eq 1 or statecode eq 0 and statuscode eq 1) and msdyn_name ne null"
    );
    assert!(ok(&on_ctx("<filter/><filter type='or'></filter>"))
        .filter
        .is_none());
}

#[test]
fn xml_escapes_reach_the_values() {
    check(
        &condition(
            "msdyn_name",
            "eq",
            "a &amp; b &lt;c&gt; &#x41;&#66; &quot;q&quot; &apos;",
        ),
        "msdyn_name eq 'a & b <c> AB \"q\" '''",
    );
    check(
        "<condition attribute='msdyn_name' operator='eq'><value>x &amp; <![CDATA[<y>]]></value></condition>",
        "msdyn_name eq 'x & <y>'",
    );
}

#[test]
fn condition_values_are_counted_and_typed() {
    let cases = [
        (bare("statecode", "eq"), "0x80040203", "The ConditionOperator.Equal requires 1 value/s, not 0. Parameter Name: statecode."),
        (
            listed("statecode", "eq", &["0", "1"]),
            "0x80040203",
            "The ConditionOperator.Equal requires 1 value/s, not 2. Parameter Name: statecode.",
        ),
        (condition("msdyn_name", "null", "x"), "0x80040203", "The ConditionOperator.Null requires 0 value/s, not 1. Parameter Name: msdyn_name."),
        (bare("statecode", "in"), "0x80040203", "The ConditionOperator.In requires at least 1 value/s, not 0. Parameter Name: statecode."),
        (
            listed("statecode", "between", &["0"]),
            "0x80040203",
            "The ConditionOperator.Between requires 2 value/s, not 1. Parameter Name: statecode.",
        ),
        (condition("createdon", "today", "1"), "0x80040203", "The ConditionOperator.Today requires 0 value/s, not 1. Parameter Name: createdon."),
        (bare("createdon", "last-x-days"), "0x80040203", "The ConditionOperator.LastXDays requires 1 value/s, not 0. Parameter Name: createdon."),
        (
            condition("statecode", "eq", "x"),
            "0x80040203",
            "An exception System.FormatException was thrown while trying to convert input value 'x' to attribute 'msdyn_smsengagementctx.statecode'. Expected type of attribute value: System.Int32.",
        ),
        (
            condition("statecode", "eq", "99999999999"),
            "0x80040203",
            "An exception System.FormatException was thrown while trying to convert input value '99999999999' to attribute 'msdyn_smsengagementctx.statecode'. Expected type of attribute value: System.Int32.",
        ),
        (
            condition("ownerid", "eq", "4026be43"),
            "0x80040203",
            "An exception System.FormatException was thrown while trying to convert input value '4026be43' to attribute 'msdyn_smsengagementctx.ownerid'. Expected type of attribute value: System.Guid.",
        ),
        (
            condition("createdon", "on", "soon"),
            "0x80040203",
            "An exception System.FormatException was thrown while trying to convert input value 'soon' to attribute 'msdyn_smsengagementctx.createdon'. Expected type of attribute value: System.DateTime.",
        ),
        (
            listed("versionnumber", "in", &["1", "x"]),
            "0x80040203",
            "An exception System.FormatException was thrown while trying to convert input value 'x' to attribute 'msdyn_smsengagementctx.versionnumber'. Expected type of attribute value: System.Int64.",
        ),
        (
            condition("createdon", "last-x-days", "-1"),
            "0x80040203",
            "Condition for attribute 'msdyn_smsengagementctx.createdon': the value '-1' is not a non-negative integer.",
        ),
        (
            bare("msdyn_name", "today"),
            "0x80040203",
            "Condition for attribute 'msdyn_smsengagementctx.msdyn_name': the function applies to date and time columns only (the column is of type 'String').",
        ),
        (
            bare("msdyn_liveworkitemid", "eq-userid"),
            "0x80040203",
            "Condition for attribute 'msdyn_smsengagementctx.msdyn_liveworkitemid': the function applies to lookups to users only (the column is of type 'Lookup').",
        ),
        (
            listed("msdyn_name", "between", &["a", "b"]),
            "0x80040203",
            "Condition for attribute 'msdyn_smsengagementctx.msdyn_name': the function applies to number and date columns only (the column is of type 'String').",
        ),
        (
            condition("statecode", "begins-with", "1"),
            "0x80040203",
            "Condition for attribute 'msdyn_smsengagementctx.statecode': the operator BeginsWith applies to string columns only (the column is of type 'State').",
        ),
    ];
    for (conditions, code, message) in cases {
        check_error(
            &on_ctx(&format!("<filter>{conditions}</filter>")),
            code,
            message,
        );
    }
}

#[test]
fn unknown_names_use_the_dataverse_wording() {
    check_error(
        &on_ctx(&format!("<filter>{}</filter>", condition("x", "eq", "1"))),
        "0x80041103",
        "'msdyn_smsengagementctx' entity doesn't contain attribute with Name = 'x' and NameMapping = 'Logical'.",
    );
    check_error(
        &on_ctx("<attribute name='nosuch'/>"),
        "0x80041103",
        "'msdyn_smsengagementctx' entity doesn't contain attribute with Name = 'nosuch' and NameMapping = 'Logical'.",
    );
    check_error(
        &on_ctx("<order attribute='_ownerid_value'/>"),
        "0x80041103",
        "'msdyn_smsengagementctx' entity doesn't contain attribute with Name = '_ownerid_value' and NameMapping = 'Logical'.",
    );
    check_error(
        "<fetch><entity name='account'/></fetch>",
        "0x80041102",
        "The entity with a name = 'account' with namemapping = 'Logical' was not found in the MetadataCache.",
    );
    check_error(
        &on_ctx(&format!(
            "<filter>{}</filter>",
            condition("msdyn_name", "contains", "a")
        )),
        "0x80041120",
        "Unknown Condition Operator: contains",
    );
    check_error(
        &on_ctx(&format!(
            "<filter>{}</filter>",
            condition("owneridname", "eq", "a")
        )),
        "0x0",
        "The column 'owneridname' in a condition is not supported.",
    );
}

#[test]
fn columns_follow_the_dataverse_rules() {
    let names = |columns: &Option<Vec<PropertyRef>>| {
        columns.as_ref().map(|c| {
            c.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    assert_eq!(names(&ok(&on_ctx("")).columns), None);
    assert_eq!(names(&ok(&on_ctx("<all-attributes/>")).columns), None);
    let query = ok(&on_ctx(
        "<attribute name='msdyn_name'/><attribute name='ownerid'/><attribute name='owneridname'/>\
         <attribute name='owneridtype'/><attribute name='msdyn_name'/><attribute name='createdon'/>",
    ));
    assert_eq!(
        names(&query.columns).as_deref(),
        Some("msdyn_name,_ownerid_value,createdon")
    );
    let index = query.entity.position("ownerid").unwrap();
    assert_eq!(query.columns.unwrap()[1].index, index);
    assert_eq!(
        names(&ok(&on_ctx("<attribute name='owneridtype'/>")).columns).as_deref(),
        Some("")
    );
}

#[test]
fn order_and_fetch_attributes() {
    let query = ok(&format!(
        "<fetch top='10' distinct='true' no-lock='true' mapping='logical' version='1.0' output-format='xml-platform'>\
         <entity name='{CTX}'><order attribute='createdon' descending='true'/><order attribute='ownerid'/></entity></fetch>"
    ));
    let order: Vec<String> = query
        .order
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o.prop.name,
                if o.descending { "desc" } else { "asc" }
            )
        })
        .collect();
    assert_eq!(order, ["createdon desc", "_ownerid_value asc"]);
    assert_eq!(query.top, Some(10));
    assert!(query.distinct);
    assert!(!query.return_total_record_count);
    assert_eq!(
        (query.count, query.page, query.paging_cookie),
        (None, None, None)
    );

    let cookie =
        "<cookie page=\"1\"><msdyn_smsengagementctxid last=\"{A}\" first=\"{B}\" /></cookie>";
    let text = format!(
        "<fetch count='5000' page='2' returntotalrecordcount='1' paging-cookie='{}'><entity name='{CTX}'/></fetch>",
        cookie.replace('<', "&lt;").replace('"', "&quot;")
    );
    let query = ok(&text);
    assert_eq!((query.count, query.page), (Some(5000), Some(2)));
    assert_eq!(query.paging_cookie.as_deref(), Some(cookie));
    assert!(query.return_total_record_count);
    assert!(query.aggregate.is_none());
}

#[test]
fn paging_limits() {
    let with = |attributes: &str| format!("<fetch {attributes}><entity name='{CTX}'/></fetch>");
    check_error(
        &with("count='5001'"),
        "0x80040203",
        "The 'count' attribute is 5001; it cannot exceed 5000.",
    );
    check_error(
        &with("top='5001'"),
        "0x80040203",
        "The 'top' attribute is 5001; it cannot exceed 5000.",
    );
    check_error(
        &with("count='0'"),
        "0x80040203",
        "The 'count' attribute must be greater than zero; it is 0.",
    );
    check_error(
        &with("page='-1'"),
        "0x80040203",
        "The 'page' attribute must be greater than zero; it is -1.",
    );
    check_error(
        &with("top='5' page='2'"),
        "0x80040203",
        "The Top.Count = 5 can't be specified with pagingInfo.",
    );
    check_error(
        &with("count='ten'"),
        "0x0",
        "The 'count' attribute is invalid - The value 'ten' is invalid according to its datatype 'Int32' (element 'fetch' at position 0).",
    );
    check_error(
        &with("distinct='yes'"),
        "0x0",
        "The 'distinct' attribute is invalid - The value 'yes' is invalid according to its datatype 'Boolean' (element 'fetch' at position 0).",
    );
    check_error(
        &with("datasource='retained'"),
        "0x0",
        "The datasource 'retained' is not supported.",
    );
}

#[test]
fn links_to_the_conversation_and_the_owner() {
    let query = ok(&on_ctx(
        "<attribute name='msdyn_name'/>\
         <link-entity name='msdyn_ocliveworkitem' link-type='outer'>\
           <attribute name='subject'/><attribute name='ownerid'/>\
           <filter><condition attribute='statecode' operator='eq' value='1'/></filter>\
           <order attribute='createdon' descending='1'/>\
         </link-entity>\
         <link-entity name='systemuser' from='systemuserid' to='ownerid' alias='owner'>\
           <filter><condition attribute='fullname' operator='like' value='A%'/></filter>\
         </link-entity>\
         <link-entity name='systemuser' to='createdby'><all-attributes/></link-entity>",
    ));
    assert_eq!(query.links.len(), 3);
    let conversation = &query.links[0];
    assert_eq!(conversation.entity.logical_name, "msdyn_ocliveworkitem");
    assert_eq!(conversation.alias, "msdyn_ocliveworkitem1");
    assert!(conversation.outer);
    assert_eq!(conversation.from.name, "activityid");
    assert_eq!(conversation.to.name, "_msdyn_liveworkitemid_value");
    let columns: Vec<&str> = conversation
        .columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["subject", "_ownerid_value"]);
    assert_eq!(
        conversation.filter.as_ref().unwrap().to_string(),
        "statecode eq 1"
    );
    let state = conversation.entity.position("statecode").unwrap();
    assert!(matches!(
        conversation.filter,
        Some(Expr::Compare { ref prop, .. }) if prop.index == state
    ));
    assert_eq!(conversation.order[0].prop.name, "createdon");
    assert!(conversation.order[0].descending);

    let owner = &query.links[1];
    assert_eq!(
        (
            owner.alias.as_str(),
            owner.outer,
            owner.from.name.as_str(),
            owner.to.name.as_str()
        ),
        ("owner", false, "systemuserid", "_ownerid_value")
    );
    assert_eq!(owner.columns, Some(Vec::new()));
    assert_eq!(
        owner.filter.as_ref().unwrap().to_string(),
        "like(fullname,'A%')"
    );
    let creator = &query.links[2];
    assert_eq!(creator.alias, "systemuser2");
    assert_eq!(creator.columns, None);
    assert_eq!(creator.to.name, "_createdby_value");
    assert!(
        ok(&on_ctx("<link-entity name='team' to='ownerid' alias='t'/>")).links[0]
            .filter
            .is_none()
    );
}

#[test]
fn links_that_are_not_single_hop_lookups_are_refused() {
    check_error(
        &on_ctx("<link-entity name='systemuser' alias='u'/>"),
        "0x80040203",
        "The link-entity 'systemuser' needs a 'to' attribute: it must name the one lookup of 'msdyn_smsengagementctx' it joins on.",
    );
    check_error(
        &on_ctx("<link-entity name='systemuser' to='msdyn_name'/>"),
        "0x0",
        "A link on 'msdyn_name', which is not a lookup of 'msdyn_smsengagementctx' to 'systemuser', is not supported.",
    );
    check_error(
        &on_ctx("<link-entity name='systemuser' to='ownerid' from='businessunitid'/>"),
        "0x0",
        "A link to 'businessunitid', which is not the primary key of 'systemuser', is not supported.",
    );
    check_error(
        &on_ctx("<link-entity name='systemuser' to='nosuch'/>"),
        "0x80041103",
        "'msdyn_smsengagementctx' entity doesn't contain attribute with Name = 'nosuch' and NameMapping = 'Logical'.",
    );
    check_error(
        &on_ctx("<link-entity name='systemuser' to='ownerid'><filter><condition attribute='msdyn_name' operator='null'/></filter></link-entity>"),
        "0x80041103",
        "'systemuser' entity doesn't contain attribute with Name = 'msdyn_name' and NameMapping = 'Logical'.",
    );
    check_error(
        &on_ctx("<link-entity name='nosuch' to='ownerid'/>"),
        "0x80041102",
        "The entity with a name = 'nosuch' with namemapping = 'Logical' was not found in the MetadataCache.",
    );
    check_error(
        &on_ctx("<link-entity name='team' to='ownerid' link-type='sideways'/>"),
        "0x80041117",
        "Invalid link-type 'sideways': only 'inner', 'outer', 'exists', 'in', 'any', 'not any', 'all' and 'not all' are supported.",
    );
    check_error(
        &on_ctx("<link-entity name='team' to='ownerid' alias='a'/><link-entity name='systemuser' to='ownerid' alias='a'/>"),
        "0x80040203",
        "The link-entity alias 'a' is used more than once.",
    );
    check_error(
        &on_ctx("<link-entity name='team' to='ownerid' alias='1a'/>"),
        "0x80040203",
        "Invalid character specified for alias: 1a. Only characters within the ranges [A-Z], [a-z] or [0-9] or _ are allowed. The first character may only be in the ranges [A-Z], [a-z] or _.",
    );
    check_error(
        &on_ctx("<link-entity name='msdyn_ocliveworkitem'><link-entity name='team' to='ownerid'/></link-entity>"),
        "0x0",
        "A link-entity inside a link-entity is not supported.",
    );
}

#[test]
fn aggregates_bind_their_columns() {
    let query = ok(&format!(
        "<fetch aggregate='true' aggregatelimit='100'><entity name='{CTX}'>\
           <attribute name='msdyn_smsengagementctxid' alias='n' aggregate='count'/>\
           <attribute name='msdyn_name' alias='named' aggregate='countcolumn' distinct='true'/>\
           <attribute name='msdyn_name' alias='filled' aggregate='countcolumn'/>\
           <attribute name='versionnumber' alias='total' aggregate='sum'/>\
           <attribute name='importsequencenumber' alias='mean' aggregate='avg'/>\
           <attribute name='createdon' alias='first' aggregate='min'/>\
           <attribute name='createdon' alias='last' aggregate='max'/>\
           <attribute name='statuscode' groupby='true'/>\
           <attribute name='createdon' alias='month' groupby='true' dategrouping='month'/>\
           <attribute name='ownerid' alias='owner' groupby='true'/>\
           <order alias='n' descending='true'/>\
           <filter><condition attribute='statecode' operator='eq' value='0'/></filter>\
           <link-entity name='msdyn_ocliveworkitem' alias='c'>\
             <attribute name='statecode' alias='conversation_state' groupby='true'/>\
           </link-entity>\
         </entity></fetch>"
    ));
    let aggregate = query.aggregate.expect("an aggregate query");
    let printed: Vec<String> = aggregate
        .columns
        .iter()
        .map(|c| {
            let kind = match c.kind {
                AggregateKind::GroupBy { date: None } => "groupby".to_string(),
                AggregateKind::GroupBy { date: Some(d) } => format!("groupby {d:?}"),
                AggregateKind::Function { function } => format!("{function:?}"),
            };
            format!(
                "{}={}({}){}",
                c.alias,
                kind,
                c.prop.name,
                c.link.map(|l| format!("@{l}")).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        printed,
        [
            "n=Count(msdyn_smsengagementctxid)",
            "named=CountDistinct(msdyn_name)",
            "filled=CountColumn(msdyn_name)",
            "total=Sum(versionnumber)",
            "mean=Average(importsequencenumber)",
            "first=Min(createdon)",
            "last=Max(createdon)",
            "statuscode=groupby(statuscode)",
            "month=groupby Month(createdon)",
            "owner=groupby(_ownerid_value)",
            "conversation_state=groupby(statecode)@0",
        ]
    );
    assert_eq!(
        aggregate.order,
        [AggregateOrder {
            alias: "n".into(),
            descending: true
        }]
    );
    assert_eq!(aggregate.limit, Some(100));
    assert_eq!(query.columns, Some(Vec::new()));
    assert_eq!(query.links[0].columns, Some(Vec::new()));
    assert!(query.order.is_empty());
    assert_eq!(query.filter.unwrap().to_string(), "statecode eq 0");
}

#[test]
fn aggregate_rules_are_enforced() {
    let agg = |inner: &str| {
        format!("<fetch aggregate='true'><entity name='{CTX}'>{inner}</entity></fetch>")
    };
    let cases = [
        (
            agg("<attribute name='msdyn_name' alias='s' aggregate='sum'/>"),
            "The aggregate 'sum' applies to number columns only; 'msdyn_name' is not one.",
        ),
        (
            agg("<attribute name='statuscode' alias='s' aggregate='avg'/>"),
            "The aggregate 'avg' applies to number columns only; 'statuscode' is not one.",
        ),
        (
            agg("<attribute name='msdyn_name' alias='s' aggregate='max'/>"),
            "The aggregate 'max' applies to number and date columns only; 'msdyn_name' is not one.",
        ),
        (
            agg("<attribute name='createdon' alias='d' groupby='true'/>"),
            "Grouping by the date and time column 'createdon' needs a dategrouping (day, week, month, quarter or year).",
        ),
        (
            agg("<attribute name='statuscode' alias='d' groupby='true' dategrouping='day'/>"),
            "The attribute 'statuscode': dategrouping applies to date and time columns only.",
        ),
        (
            agg("<attribute name='msdyn_name' aggregate='count'/>"),
            "The aggregate attribute 'msdyn_name' needs an alias.",
        ),
        (
            agg("<attribute name='msdyn_name'/>"),
            "Attribute can not be specified if an aggregate operation is requested: 'msdyn_name' has neither aggregate nor groupby.",
        ),
        (
            agg("<attribute name='msdyn_name' alias='a' aggregate='count' groupby='true'/>"),
            "The attribute 'msdyn_name' has both aggregate and groupby.",
        ),
        (
            agg("<attribute name='msdyn_name' alias='a' aggregate='count' distinct='true'/>"),
            "The attribute 'msdyn_name': distinct applies to the countcolumn aggregate only.",
        ),
        (
            agg("<attribute name='msdyn_name' alias='a' aggregate='count'/><attribute name='statecode' alias='a' groupby='true'/>"),
            "The alias 'a' is used more than once.",
        ),
        (
            agg("<attribute name='msdyn_name' alias='a' aggregate='count'/><order attribute='msdyn_name'/>"),
            "An order in an aggregate query names an alias, not an attribute.",
        ),
        (
            agg("<attribute name='msdyn_name' alias='a' aggregate='count'/><order alias='b'/>"),
            "The order alias 'b' is not the alias of an attribute of the query.",
        ),
        (
            agg("<all-attributes/>"),
            "all-attributes can not be specified if an aggregate operation is requested.",
        ),
        (
            agg(""),
            "An aggregate query needs at least one attribute with aggregate or groupby.",
        ),
        (
            agg("<attribute name='msdyn_name' alias='a b' aggregate='count'/>"),
            "Invalid character specified for alias: a b. Only characters within the ranges [A-Z], [a-z] or [0-9] or _ are allowed. The first character may only be in the ranges [A-Z], [a-z] or _.",
        ),
        (
            on_ctx("<attribute name='msdyn_name' alias='a' aggregate='count'/>"),
            "The attribute 'msdyn_name' uses aggregate, groupby, dategrouping or distinct, which need aggregate='true' on the fetch element.",
        ),
        (
            on_ctx("<order alias='a'/>"),
            "An order names an alias only in an aggregate query.",
        ),
        (
            format!("<fetch aggregatelimit='10'><entity name='{CTX}'/></fetch>"),
            "The 'aggregatelimit' attribute applies to aggregate queries only.",
        ),
    ];
    for (text, message) in cases {
        check_error(&text, "0x80040203", message);
    }
    check_error(
        &agg("<attribute name='msdyn_name' alias='a' aggregate='median'/>"),
        "0x0",
        "The 'aggregate' attribute is invalid - The value 'median' is invalid according to its datatype 'AggregateType' (element 'attribute' at position 62).",
    );
    check_error(
        &agg("<attribute name='createdon' alias='a' groupby='true' dategrouping='fiscal-year'/>"),
        "0x0",
        "The dategrouping 'fiscal-year' is not supported.",
    );
    check_error(
        &on_ctx("<attribute name='msdyn_name' alias='a'/>"),
        "0x0",
        "The alias of the attribute 'msdyn_name' outside an aggregate query is not supported.",
    );
}

#[test]
fn paging_cookies_are_read_in_every_encoding() {
    let expected = Some(vec![(
        "msdyn_smsengagementctxid".to_string(),
        "{5F1E0C3A-0000-0000-0000-000000000001}".to_string(),
    )]);
    let raw = "<cookie page=\"1\"><msdyn_smsengagementctxid last=\"{5F1E0C3A-0000-0000-0000-000000000001}\" first=\"{5F1E0C3A-0000-0000-0000-000000000009}\" /></cookie>";
    assert_eq!(parse_paging_cookie(raw), expected);
    let once =
        percent_encoding::utf8_percent_encode(raw, percent_encoding::NON_ALPHANUMERIC).to_string();
    assert_eq!(parse_paging_cookie(&once), expected);
    let twice = percent_encoding::utf8_percent_encode(&once, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    assert_eq!(parse_paging_cookie(&twice), expected);
    let form = "%3ccookie+page%3d%221%22%3e%3cmsdyn_smsengagementctxid+last%3d%22%7b5F1E0C3A-0000-0000-0000-000000000001%7d%22+first%3d%22%7b5F1E0C3A-0000-0000-0000-000000000009%7d%22+%2f%3e%3c%2fcookie%3e";
    assert_eq!(parse_paging_cookie(form), expected);
    let wrapper =
        format!("<cookie pagenumber=\"2\" pagingcookie=\"{twice}\" istracking=\"False\" />");
    assert_eq!(parse_paging_cookie(&wrapper), expected);
    let several = "<cookie page='3'><createdon last='2024-05-01T10:00:00Z' first='2024-05-01T09:00:00Z'/><msdyn_name lastnull='1' firstnull='1'/><msdyn_smsengagementctxid last='{A}' first='{B}'/></cookie>";
    assert_eq!(
        parse_paging_cookie(several),
        Some(vec![
            ("createdon".into(), "2024-05-01T10:00:00Z".into()),
            ("msdyn_name".into(), String::new()),
            ("msdyn_smsengagementctxid".into(), "{A}".into()),
        ])
    );
    assert_eq!(parse_paging_cookie("<cookie page='1'/>"), Some(Vec::new()));
    for bad in [
        "",
        "cookie",
        "%",
        "%zz",
        "<cookie",
        "<fetch/>",
        "<cookie><x first='1'/></cookie>",
        "<cookie><x last='1'><y/></x></cookie>",
        "<cookie>text</cookie>",
        "%253c%2525253c",
    ] {
        assert_eq!(parse_paging_cookie(bad), None, "{bad:?}");
    }
}

#[test]
fn documents_that_are_not_fetchxml() {
    let invalid = |detail: &str| format!("Invalid XML. {detail}");
    check_error(
        "",
        "0x80040201",
        &invalid("The document has no root element (at position 0)."),
    );
    check_error(
        "<fetch>",
        "0x80040201",
        &invalid("The element 'fetch' is not closed (at position 7)."),
    );
    check_error(
        "<fetch/><fetch/>",
        "0x80040201",
        &invalid("The document has more than one root element (at position 8)."),
    );
    check_error(
        "text<fetch/>",
        "0x80040201",
        &invalid("Text is not allowed outside the root element (at position 0)."),
    );
    check_error(
        "<!DOCTYPE fetch [<!ENTITY x 'y'>]><fetch/>",
        "0x80040201",
        &invalid("A document type declaration is not allowed (at position 0)."),
    );
    check_error(
        "<query/>",
        "0x80040201",
        &invalid("The root element is 'query'; a FetchXML query is a 'fetch' element."),
    );
    check_error(
        "<fetch/>",
        "0x80040201",
        &invalid("The 'fetch' element has no 'entity' element."),
    );
    check_error(
        &format!("<fetch><entity name='{CTX}'/><entity name='{CTX}'/></fetch>"),
        "0x0",
        "The element 'fetch' has invalid child element 'entity' (element 'fetch' at position 0).",
    );
    check_error(
        &on_ctx("<attributes name='msdyn_name'/>"),
        "0x0",
        "The element 'entity' has invalid child element 'attributes' (element 'entity' at position 7).",
    );
    check_error(
        &on_ctx("<attribute name='msdyn_name' nmae='x'/>"),
        "0x0",
        "The 'nmae' attribute is not declared (element 'attribute' at position 45).",
    );
    check_error(
        &on_ctx("<filter type='xor'/>"),
        "0x0",
        "The 'type' attribute is invalid - The value 'xor' is invalid according to its datatype 'filterType' (element 'filter' at position 45).",
    );
    check_error(
        &on_ctx("<filter><condition operator='eq' value='1'/></filter>"),
        "0x0",
        "The required attribute 'attribute' is missing (element 'condition' at position 53).",
    );
    check_error(
        &on_ctx("hello"),
        "0x0",
        "The element cannot contain text (element 'entity' at position 7).",
    );
    check_error(
        "<fetch><entity/></fetch>",
        "0x0",
        "The required attribute 'name' is missing (element 'entity' at position 7).",
    );
    assert!(ok(&format!(
        "\u{feff}<?xml version='1.0' encoding='utf-8'?><!-- a view --><fetch xmlns:x='urn:x'>\n  <entity name='{CTX}'>\n  </entity>\n</fetch>\n"
    ))
    .columns
    .is_none());
}

#[test]
fn malformed_xml_names_the_problem() {
    for (text, starts) in [
        (
            "<fetch><entity></fetch>",
            "Invalid XML. The document is not well-formed",
        ),
        ("<fetch a='1' a='2'/>", "Invalid XML. A malformed attribute"),
        ("<fetch a=1/>", "Invalid XML. A malformed attribute"),
        (
            "<fetch>&nbsp;</fetch>",
            "Invalid XML. The entity '&nbsp;' is not defined",
        ),
        (
            "<fetch>&#0;</fetch>",
            "Invalid XML. A bad character reference",
        ),
        (
            "<fetch a='&x;'/>",
            "Invalid XML. A malformed attribute value",
        ),
        ("</fetch>", "Invalid XML. The document is not well-formed"),
        ("<fetch", "Invalid XML. The document is not well-formed"),
        (
            "<fetch>&</fetch>",
            "Invalid XML. The document is not well-formed",
        ),
    ] {
        let error = fetch(text).expect_err(text);
        assert!(error.to_string().starts_with(starts), "{text:?}: {error}");
        assert_eq!(error.code(), "0x80040201", "{text:?}");
    }
}

#[test]
fn size_and_depth_are_limited() {
    let deep = format!(
        "{}{}",
        "<filter>".repeat(MAX_ELEMENT_DEPTH - 2),
        "</filter>".repeat(MAX_ELEMENT_DEPTH - 2)
    );
    assert!(ok(&on_ctx(&deep)).filter.is_none());
    let too_deep = format!(
        "{}{}",
        "<filter>".repeat(MAX_ELEMENT_DEPTH - 1),
        "</filter>".repeat(MAX_ELEMENT_DEPTH - 1)
    );
    check_error(
        &on_ctx(&too_deep),
        "0x0",
        "The recursion limit has been exceeded.",
    );
    check_error(
        &"<a>".repeat(100_000),
        "0x80040203",
        "The value of 'fetchXml' is 300000 characters long; the limit is 32768.",
    );
    let many = condition("statecode", "eq", "0").repeat(400);
    let expr = filter_of(&many);
    assert!(matches!(expr, Expr::And(ref operands) if operands.len() == 400));
}

#[test]
fn literal_typing_is_shared_with_odata() {
    let catalog = catalog();
    let user = catalog.entity("systemuser").unwrap();
    let disabled = user.attribute("isdisabled").unwrap();
    for (text, expected) in [
        ("true", true),
        ("1", true),
        (" false ", false),
        ("0", false),
    ] {
        assert_eq!(
            filter::literal_for(disabled, text),
            Some(Literal::Bool(expected))
        );
    }
    assert_eq!(filter::literal_for(disabled, "yes"), None);
    let entity = catalog.entity(CTX).unwrap().clone();
    let odata = filter::parse(
        &entity,
        &format!(
            "Microsoft.Dynamics.CRM.In(PropertyName='ownerid',PropertyValues=[\"{{{GUID}}}\"])"
        ),
        &HashMap::new(),
    )
    .expect("braces are a GUID spelling on both sides");
    assert!(odata.to_string().contains(GUID));
}

/// Writes `expr` (no `Not`) as FetchXML conditions and filters on `entity`.
fn to_fetch(entity: &Entity, expr: &Expr) -> String {
    let xml = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('\'', "&apos;")
    };
    let value = |literal: &Literal| match literal {
        Literal::String(text) => xml(text),
        other => other.to_string(),
    };
    let name = |prop: &PropertyRef| entity.attributes[prop.index].logical_name.clone();
    match expr {
        Expr::Compare { prop, op, value: v } => format!(
            "<condition attribute='{}' operator='{}' value='{}'/>",
            name(prop),
            op.keyword(),
            value(v)
        ),
        Expr::IsNull(prop) => bare(&name(prop), "null"),
        Expr::NotNull(prop) => bare(&name(prop), "not-null"),
        Expr::And(operands) | Expr::Or(operands) => {
            let kind = if matches!(expr, Expr::And(_)) {
                "and"
            } else {
                "or"
            };
            let inner: String = operands.iter().map(|e| to_fetch(entity, e)).collect();
            format!("<filter type='{kind}'>{inner}</filter>")
        }
        other => unreachable!("the generator makes no {other:?}"),
    }
}

/// A random expression of comparisons, null tests, `and` and `or` over the EDM properties of
/// `entity`, with literals of each column's type.
fn random_expr(rng: &mut Rng, entity: &Entity, depth: u32) -> Expr {
    use AttributeType as T;
    if depth > 0 && rng.below(3) > 0 {
        let operands = (0..2 + rng.below(2))
            .map(|_| random_expr(rng, entity, depth - 1))
            .collect();
        return if rng.below(2) == 0 {
            Expr::and(operands)
        } else {
            Expr::or(operands)
        };
    }
    let columns: Vec<usize> = (0..entity.attributes.len())
        .filter(|&i| entity.attributes[i].is_edm_property())
        .collect();
    let index = columns[rng.below(columns.len())];
    let prop = column_ref(entity, index);
    let literal = match entity.attributes[index].attribute_type {
        T::String | T::Memo | T::EntityName => {
            let pieces = ["a", "'", "é", " ", "&", "<", "%", "😀", "and"];
            Literal::String((0..rng.below(5)).map(|_| pieces[rng.below(9)]).collect())
        }
        T::BigInt => Literal::Int(rng.below(2_000_000) as i64 - 1_000_000),
        T::Integer | T::Picklist | T::State | T::Status => Literal::Int(rng.below(1000) as i64),
        T::Uniqueidentifier | T::Lookup | T::Owner => {
            Literal::Guid(uuid::Uuid::from_u128(rng.below(usize::MAX) as u128 * 7919))
        }
        T::DateTime if rng.below(2) == 0 => Literal::Date(rng.below(50_000) as i64 * 86_400),
        T::DateTime => Literal::DateTime(rng.below(4_000_000_000) as i64),
        T::Boolean => Literal::Bool(rng.below(2) == 0),
    };
    let ops = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Gt,
        CmpOp::Ge,
        CmpOp::Lt,
        CmpOp::Le,
    ];
    match rng.below(8) {
        0 => Expr::IsNull(prop),
        1 => Expr::NotNull(prop),
        _ => Expr::Compare {
            prop,
            op: ops[rng.below(6)],
            value: literal,
        },
    }
}

#[test]
fn random_filters_meet_the_odata_front_end() {
    let catalog = catalog();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for table in [CTX, "msdyn_ocliveworkitem", "systemuser"] {
        let entity = catalog.entity(table).unwrap().clone();
        for _ in 0..300 {
            let expr = random_expr(&mut rng, &entity, 3);
            let text = format!(
                "<fetch><entity name='{table}'><filter>{}</filter></entity></fetch>",
                to_fetch(&entity, &expr)
            );
            let fetched = parse(&catalog, &text)
                .unwrap_or_else(|e| panic!("{text:?} should bind: {e}"))
                .filter
                .expect("a filter");
            assert_eq!(fetched, expr, "FetchXML {text:?}");
            let printed = fetched.to_string();
            let odata = filter::parse(&entity, &printed, &HashMap::new())
                .unwrap_or_else(|e| panic!("{printed:?} should parse as $filter: {e}"));
            assert_eq!(odata, fetched, "$filter {printed:?}");
        }
    }
}

#[test]
fn generated_garbage_never_panics() {
    let catalog = catalog();
    let pieces = [
        "<",
        ">",
        "/",
        "</",
        "/>",
        "=",
        "'",
        "\"",
        " ",
        "&",
        ";",
        "&amp;",
        "&#x41;",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<?xml",
        "?>",
        "<!DOCTYPE",
        "fetch",
        "entity",
        "attribute",
        "all-attributes",
        "filter",
        "condition",
        "value",
        "order",
        "link-entity",
        "name=",
        "'msdyn_smsengagementctx'",
        "'msdyn_ocliveworkitem'",
        "'systemuser'",
        "attribute=",
        "operator=",
        "'eq'",
        "'in'",
        "'between'",
        "'like'",
        "'today'",
        "'last-x-days'",
        "value=",
        "'1'",
        "'x'",
        "'createdon'",
        "'ownerid'",
        "'statecode'",
        "'msdyn_name'",
        "aggregate=",
        "'true'",
        "'count'",
        "'sum'",
        "groupby=",
        "alias=",
        "'a'",
        "to=",
        "from=",
        "link-type=",
        "'outer'",
        "count=",
        "'5001'",
        "top=",
        "page=",
        "é",
        "😀",
        "\u{0}",
        "\n",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let text: String = (0..rng.below(40))
            .map(|_| pieces[rng.below(pieces.len())])
            .collect();
        let _ = parse(&catalog, &text);
        let _ = parse_paging_cookie(&text);
    }
}

#[test]
fn mutated_valid_documents_never_panic() {
    let catalog = catalog();
    let seed = format!(
        "<fetch aggregate='false' top='10'><entity name='{CTX}'><attribute name='msdyn_name'/>\
         <order attribute='createdon' descending='true'/><filter type='or'>\
         <condition attribute='statecode' operator='in'><value>0</value><value>1</value></condition>\
         <condition attribute='createdon' operator='last-x-days' value='7'/>\
         <filter><condition attribute='msdyn_name' operator='like' value='%a&amp;b%'/></filter></filter>\
         <link-entity name='systemuser' to='ownerid' alias='o' link-type='outer'><attribute name='fullname'/></link-entity>\
         </entity></fetch>"
    );
    ok(&seed);
    let inserts = [
        "<",
        ">",
        "'",
        "/",
        "&",
        "=",
        " ",
        "x",
        "<filter>",
        "</entity>",
        "é",
    ];
    let mut rng = Rng(7);
    for _ in 0..5_000 {
        let mut chars: Vec<char> = seed.chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => {
                    let insert = inserts[rng.below(inserts.len())];
                    for (i, c) in insert.chars().enumerate() {
                        chars.insert((at + i).min(chars.len()), c);
                    }
                }
                _ if at < chars.len() => {
                    let other = rng.below(chars.len());
                    chars.swap(at, other);
                }
                _ => {}
            }
        }
        let text: String = chars.into_iter().collect();
        let _ = parse(&catalog, &text);
    }
}
