//! Dataverse's `QueryExpression` as the Web API writes it in JSON (the `QuerySet` of
//! `BulkDelete`), lowered onto the FetchXML element tree and bound by the one FetchXML binder,
//! so it yields the same [`Expr`] a `<filter>` with the same conditions yields: there is no
//! third path from a query language to SQL.
//!
//! What is read (other members, such as `ColumnSet`, `Orders` or `PageInfo`, do not change
//! which rows a query selects and are ignored, as BulkDelete ignores them):
//!
//! ```text
//! { "@odata.type": "Microsoft.Dynamics.CRM.QueryExpression", "EntityName": "<table>",
//!   "Criteria": { "FilterOperator": "And" | "Or",
//!                 "Conditions": [ { "AttributeName": "<column>", "Operator": "<ConditionOperator>",
//!                                   "Values": [ { "Value": ..., "Type": "System.Int32" } | scalar ] } ],
//!                 "Filters": [ <Criteria> ] },
//!   "LinkEntities": [] }
//! ```
//!
//! `Operator` is a name of the SDK's `ConditionOperator` (see [`CONDITION_OPERATORS`]); one
//! this server does not evaluate, a condition naming a linked table (`EntityName`) and a
//! non-empty `LinkEntities` are refused, naming them.

use serde_json::Value as Json;

use super::*;

/// The SDK's `ConditionOperator` names smsctx evaluates, with the FetchXML operator each is and
/// the member's value in Dataverse's `ConditionOperator` enumeration (`$metadata` declares it).
pub const CONDITION_OPERATORS: &[(&str, &str, u32)] = &[
    ("Equal", "eq", 0),
    ("NotEqual", "ne", 1),
    ("GreaterThan", "gt", 2),
    ("GreaterEqual", "ge", 4),
    ("LessThan", "lt", 3),
    ("LessEqual", "le", 5),
    ("Null", "null", 12),
    ("NotNull", "not-null", 13),
    ("Like", "like", 6),
    ("NotLike", "not-like", 7),
    ("BeginsWith", "begins-with", 54),
    ("DoesNotBeginWith", "not-begin-with", 55),
    ("EndsWith", "ends-with", 56),
    ("DoesNotEndWith", "not-end-with", 57),
    ("In", "in", 8),
    ("NotIn", "not-in", 9),
    ("Between", "between", 10),
    ("NotBetween", "not-between", 11),
    ("On", "on", 25),
    ("OnOrAfter", "on-or-after", 27),
    ("OnOrBefore", "on-or-before", 26),
    ("Today", "today", 15),
    ("Yesterday", "yesterday", 14),
    ("Tomorrow", "tomorrow", 16),
    ("LastXDays", "last-x-days", 33),
    ("NextXDays", "next-x-days", 34),
    ("LastXHours", "last-x-hours", 31),
    ("NextXHours", "next-x-hours", 32),
    ("LastXWeeks", "last-x-weeks", 35),
    ("LastXMonths", "last-x-months", 37),
    ("LastXYears", "last-x-years", 39),
    ("OlderThanXDays", "olderthan-x-days", 84),
    ("EqualUserId", "eq-userid", 41),
    ("NotEqualUserId", "ne-userid", 42),
    ("EqualBusinessId", "eq-businessid", 43),
    ("NotEqualBusinessId", "ne-businessid", 44),
];

/// A bound `QueryExpression`: its table and the filter of its `Criteria` (`None`: every row).
#[derive(Debug, Clone)]
pub struct BoundQueryExpression {
    pub entity: Arc<Entity>,
    pub filter: Option<Expr>,
}

fn invalid(detail: impl Into<String>) -> QueryError {
    QueryError::QueryExpression {
        detail: detail.into(),
    }
}

fn element(name: &str, attributes: Vec<(String, String)>, children: Vec<Element>) -> Element {
    Element {
        name: name.to_string(),
        attributes,
        children,
        text: String::new(),
        position: 0,
    }
}

/// Binds one `QueryExpression` (`at` names it in errors, as `QuerySet[0]`).
pub fn query_expression(
    catalog: &Catalog,
    value: &Json,
    at: &str,
) -> Result<BoundQueryExpression, QueryError> {
    let Json::Object(query) = value else {
        return Err(invalid(format!(
            "{at}: a QueryExpression object was expected."
        )));
    };
    if let Some(kind) = query.get("@odata.type").and_then(Json::as_str) {
        if kind.trim_start_matches('#') != "Microsoft.Dynamics.CRM.QueryExpression" {
            return Err(invalid(format!(
                "{at}: '@odata.type' is '{kind}'; a QuerySet holds Microsoft.Dynamics.CRM.QueryExpression."
            )));
        }
    }
    let name = match query.get("EntityName") {
        Some(Json::String(name)) if !name.is_empty() => name,
        _ => {
            return Err(invalid(format!(
                "{at}: the QueryExpression has no 'EntityName'."
            )))
        }
    };
    match query.get("LinkEntities") {
        None | Some(Json::Null) => {}
        Some(Json::Array(links)) if links.is_empty() => {}
        Some(_) => {
            return Err(invalid(format!(
                "{at}: 'LinkEntities' is not supported in a BulkDelete query here; filter on the table's own columns."
            )))
        }
    }
    let mut children = Vec::new();
    match query.get("Criteria") {
        None | Some(Json::Null) => {}
        Some(criteria) => children.push(filter(criteria, &format!("{at}.Criteria"), 1)?),
    }
    let entity = element(
        "entity",
        vec![("name".to_string(), name.to_string())],
        children,
    );
    let root = element("fetch", Vec::new(), vec![entity]);
    let fetch = Binder {
        catalog,
        joined: Default::default(),
    }
    .fetch(&root)?;
    Ok(BoundQueryExpression {
        entity: fetch.entity,
        filter: fetch.filter,
    })
}

/// A `FilterExpression` as a `<filter>` element.
fn filter(value: &Json, at: &str, depth: usize) -> Result<Element, QueryError> {
    if depth > MAX_ELEMENT_DEPTH {
        return Err(QueryError::TooDeep);
    }
    let Json::Object(members) = value else {
        return Err(invalid(format!(
            "{at}: a FilterExpression object was expected."
        )));
    };
    let kind = match members.get("FilterOperator") {
        None | Some(Json::Null) => "and",
        Some(Json::String(op)) if op == "And" => "and",
        Some(Json::String(op)) if op == "Or" => "or",
        Some(other) => {
            return Err(invalid(format!(
                "{at}.FilterOperator: '{other}' is not a LogicalOperator ('And' or 'Or')."
            )))
        }
    };
    let mut children = Vec::new();
    for (index, condition_value) in list(members.get("Conditions"), &format!("{at}.Conditions"))?
        .iter()
        .enumerate()
    {
        children.push(condition(
            condition_value,
            &format!("{at}.Conditions[{index}]"),
        )?);
    }
    for (index, nested) in list(members.get("Filters"), &format!("{at}.Filters"))?
        .iter()
        .enumerate()
    {
        children.push(filter(
            nested,
            &format!("{at}.Filters[{index}]"),
            depth + 1,
        )?);
    }
    Ok(element(
        "filter",
        vec![("type".to_string(), kind.to_string())],
        children,
    ))
}

fn list<'j>(value: Option<&'j Json>, at: &str) -> Result<&'j [Json], QueryError> {
    match value {
        None | Some(Json::Null) => Ok(&[]),
        Some(Json::Array(items)) => Ok(items),
        Some(_) => Err(invalid(format!("{at}: an array was expected."))),
    }
}

/// A `ConditionExpression` as a `<condition>` element with its `<value>`s.
fn condition(value: &Json, at: &str) -> Result<Element, QueryError> {
    let Json::Object(condition) = value else {
        return Err(invalid(format!(
            "{at}: a ConditionExpression object was expected."
        )));
    };
    if let Some(Json::String(linked)) = condition.get("EntityName") {
        if !linked.is_empty() {
            return Err(invalid(format!(
                "{at}: a condition on the linked table '{linked}' is not supported here."
            )));
        }
    }
    let Some(Json::String(attribute)) = condition.get("AttributeName") else {
        return Err(invalid(format!(
            "{at}: the condition has no 'AttributeName'."
        )));
    };
    let operator = match condition.get("Operator") {
        Some(Json::String(name)) => CONDITION_OPERATORS
            .iter()
            .find(|(sdk, _, _)| sdk == name)
            .map(|(_, fetch, _)| *fetch)
            .ok_or_else(|| {
                invalid(format!(
                    "{at}: the condition operator '{name}' is not supported."
                ))
            })?,
        _ => {
            return Err(invalid(format!(
                "{at}: the condition has no 'Operator' (a ConditionOperator name such as 'Equal')."
            )))
        }
    };
    let mut values = Vec::new();
    for (index, item) in list(condition.get("Values"), &format!("{at}.Values"))?
        .iter()
        .enumerate()
    {
        let mut text = element("value", Vec::new(), Vec::new());
        text.text = value_text(item).ok_or_else(|| {
            invalid(format!(
                "{at}.Values[{index}]: a value (a string, number or boolean, or {{\"Value\": ..., \"Type\": ...}}) was expected."
            ))
        })?;
        values.push(text);
    }
    Ok(element(
        "condition",
        vec![
            ("attribute".to_string(), attribute.to_string()),
            ("operator".to_string(), operator.to_string()),
        ],
        values,
    ))
}

/// The text of one condition value: a scalar, or the `Value` of a `{"Value", "Type"}` object
/// (the binder types it by its column, as it types FetchXML's values).
fn value_text(item: &Json) -> Option<String> {
    match item {
        Json::String(text) => Some(text.clone()),
        Json::Number(number) => Some(number.to_string()),
        Json::Bool(flag) => Some(flag.to_string()),
        Json::Object(object) => match object.get("Value").or_else(|| object.get("value")) {
            Some(inner @ (Json::String(_) | Json::Number(_) | Json::Bool(_))) => value_text(inner),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::builtin().unwrap()
    }

    #[test]
    fn a_query_expression_binds_to_the_tree_of_the_same_fetchxml_filter() {
        let catalog = catalog();
        let bound = query_expression(
            &catalog,
            &json!({
                "@odata.type": "Microsoft.Dynamics.CRM.QueryExpression",
                "EntityName": "msdyn_smsengagementctx",
                "ColumnSet": {"AllColumns": false, "Columns": []},
                "Criteria": {
                    "FilterOperator": "And",
                    "Conditions": [
                        {"AttributeName": "statecode", "Operator": "Equal",
                         "Values": [{"Value": "1", "Type": "System.Int32"}]},
                        {"AttributeName": "msdyn_name", "Operator": "In",
                         "Values": ["a", "b"]}
                    ],
                    "Filters": [{
                        "FilterOperator": "Or",
                        "Conditions": [
                            {"AttributeName": "msdyn_customerphonenumber", "Operator": "Null"},
                            {"AttributeName": "msdyn_name", "Operator": "BeginsWith", "Values": ["x"]}
                        ]
                    }]
                }
            }),
            "QuerySet[0]",
        )
        .unwrap();
        let fetch = parse(
            &catalog,
            "<fetch><entity name='msdyn_smsengagementctx'><filter type='and'>\
             <condition attribute='statecode' operator='eq' value='1'/>\
             <condition attribute='msdyn_name' operator='in'><value>a</value><value>b</value></condition>\
             <filter type='or'><condition attribute='msdyn_customerphonenumber' operator='null'/>\
             <condition attribute='msdyn_name' operator='begins-with' value='x'/></filter>\
             </filter></entity></fetch>",
        )
        .unwrap();
        assert_eq!(bound.entity.logical_name, "msdyn_smsengagementctx");
        assert!(bound.filter.is_some());
        assert_eq!(bound.filter, fetch.filter);
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let catalog = catalog();
        let refused = |query: Json| query_expression(&catalog, &query, "QuerySet[0]").unwrap_err();
        let e = refused(json!({"EntityName": "nosuchtable"}));
        assert!(matches!(e, QueryError::UnknownEntity { .. }), "{e:?}");
        let e = refused(json!({"EntityName": "msdyn_smsengagementctx", "Criteria": {
            "Conditions": [{"AttributeName": "msdyn_name", "Operator": "ThisFiscalYear"}]}}));
        assert!(e.to_string().contains("'ThisFiscalYear'"), "{e}");
        let e = refused(json!({"EntityName": "msdyn_smsengagementctx", "Criteria": {
            "Conditions": [{"AttributeName": "nosuchcolumn", "Operator": "Null"}]}}));
        assert!(matches!(e, QueryError::UnknownAttribute { .. }), "{e:?}");
        let e = refused(json!({"EntityName": "msdyn_smsengagementctx", "Criteria": {
            "Conditions": [{"AttributeName": "statecode", "Operator": "Equal", "Values": ["x"]}]}}));
        assert!(matches!(e, QueryError::ConditionValue { .. }), "{e:?}");
        let e = refused(json!({"EntityName": "msdyn_smsengagementctx", "LinkEntities": [{}]}));
        assert!(e.to_string().contains("LinkEntities"), "{e}");
        let e = refused(json!({"EntityName": "msdyn_smsengagementctx", "Criteria": {
            "FilterOperator": "Xor"}}));
        assert!(e.to_string().contains("FilterOperator"), "{e}");
        let e = refused(json!([]));
        assert!(e.to_string().contains("QuerySet[0]"), "{e}");
    }
}
