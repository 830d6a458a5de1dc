//! The `$metadata` declarations of `BulkDelete`: the unbound action (imported by the container),
//! its `BulkDeleteResponse`, and the `QueryExpression` complex types its `QuerySet` is made of
//! (`QueryBase`, `ColumnSet`, `FilterExpression`, `ConditionExpression`, `Object`,
//! `OrderExpression`, `PagingInfo`, `LinkEntity`) with their enumerations, as Dataverse's Web API
//! reference defines them, so that an OData client library that builds its classes from
//! `$metadata` can send the action. `query::fetchxml::expression` reads what they describe (and
//! refuses what it does not evaluate: a non-empty `LinkEntities`, an operator outside its list).
//!
//! One deviation: Dataverse types `ToRecipients` and `CCRecipients` as collections of
//! `activityparty`, a table smsctx does not have; they are declared as collections of
//! `crmbaseentity` (smsctx sends no e-mail and ignores them).

use super::{complex, operation, qualified, Xml, BASE_ENTITY};
use crate::query::fetchxml::expression::CONDITION_OPERATORS;

/// The unbound action of this module, which the container imports: (kind, name).
pub const UNBOUND_OPERATIONS: &[(&str, &str)] = &[("Action", "BulkDelete")];

/// The enumerations a `QueryExpression` uses besides `ConditionOperator`, with Dataverse's
/// member values.
const ENUMS: &[(&str, &[(&str, u32)])] = &[
    ("LogicalOperator", &[("And", 0), ("Or", 1)]),
    ("OrderType", &[("Ascending", 0), ("Descending", 1)]),
    (
        "JoinOperator",
        &[("Inner", 0), ("LeftOuter", 1), ("Natural", 2)],
    ),
];

fn enumeration<'a>(xml: &mut Xml, name: &str, members: impl Iterator<Item = (&'a str, u32)>) {
    xml.open("EnumType", &[("Name", name)]);
    for (member, value) in members {
        xml.empty("Member", &[("Name", member), ("Value", &value.to_string())]);
    }
    xml.close("EnumType");
}

/// The enum and complex types of a `QuerySet` and of the response.
pub(super) fn types(xml: &mut Xml) {
    for (name, members) in ENUMS {
        enumeration(xml, name, members.iter().copied());
    }
    enumeration(
        xml,
        "ConditionOperator",
        CONDITION_OPERATORS
            .iter()
            .map(|(name, _, value)| (*name, *value)),
    );
    let collection = |name: &str| format!("Collection({})", qualified(name));
    complex(
        xml,
        "Object",
        &[
            ("Type", "Edm.String", false),
            ("Value", "Edm.String", false),
        ],
    );
    complex(
        xml,
        "ColumnSet",
        &[
            ("AllColumns", "Edm.Boolean", true),
            ("Columns", "Collection(Edm.String)", false),
        ],
    );
    complex(
        xml,
        "ConditionExpression",
        &[
            ("AttributeName", "Edm.String", false),
            ("Operator", &qualified("ConditionOperator"), true),
            ("Values", &collection("Object"), false),
            ("EntityName", "Edm.String", false),
        ],
    );
    complex(
        xml,
        "FilterExpression",
        &[
            ("FilterOperator", &qualified("LogicalOperator"), true),
            ("Conditions", &collection("ConditionExpression"), false),
            ("Filters", &collection("FilterExpression"), false),
            ("IsQuickFindFilter", "Edm.Boolean", false),
            ("FilterHint", "Edm.String", false),
        ],
    );
    complex(
        xml,
        "OrderExpression",
        &[
            ("AttributeName", "Edm.String", false),
            ("OrderType", &qualified("OrderType"), true),
            ("Alias", "Edm.String", false),
            ("EntityName", "Edm.String", false),
        ],
    );
    complex(
        xml,
        "PagingInfo",
        &[
            ("PageNumber", "Edm.Int32", true),
            ("Count", "Edm.Int32", true),
            ("PagingCookie", "Edm.String", false),
            ("ReturnTotalRecordCount", "Edm.Boolean", true),
        ],
    );
    complex(
        xml,
        "LinkEntity",
        &[
            ("LinkFromAttributeName", "Edm.String", false),
            ("LinkFromEntityName", "Edm.String", false),
            ("LinkToEntityName", "Edm.String", false),
            ("LinkToAttributeName", "Edm.String", false),
            ("JoinOperator", &qualified("JoinOperator"), true),
            ("LinkCriteria", &qualified("FilterExpression"), false),
            ("LinkEntities", &collection("LinkEntity"), false),
            ("Columns", &qualified("ColumnSet"), false),
            ("EntityAlias", "Edm.String", false),
            ("Orders", &collection("OrderExpression"), false),
        ],
    );
    xml.empty(
        "ComplexType",
        &[("Name", "QueryBase"), ("Abstract", "true")],
    );
    let query_base = qualified("QueryBase");
    xml.open(
        "ComplexType",
        &[("Name", "QueryExpression"), ("BaseType", &query_base)],
    );
    for (property, type_name, required) in [
        ("EntityName", "Edm.String".to_string(), false),
        ("ColumnSet", qualified("ColumnSet"), false),
        ("Criteria", qualified("FilterExpression"), false),
        ("Distinct", "Edm.Boolean".to_string(), true),
        ("NoLock", "Edm.Boolean".to_string(), true),
        ("TopCount", "Edm.Int32".to_string(), false),
        ("PageInfo", qualified("PagingInfo"), false),
        ("LinkEntities", collection("LinkEntity"), false),
        ("Orders", collection("OrderExpression"), false),
    ] {
        let mut facets = vec![("Name", property), ("Type", type_name.as_str())];
        if required {
            facets.push(("Nullable", "false"));
        }
        xml.empty("Property", &facets);
    }
    xml.close("ComplexType");
    complex(xml, "BulkDeleteResponse", &[("JobId", "Edm.Guid", true)]);
}

/// The `BulkDelete` action, with Dataverse's parameters (`SourceImportId` and `RunNow` optional).
pub(super) fn operations(xml: &mut Xml) {
    let recipients = format!("Collection({})", qualified(BASE_ENTITY));
    let queries = format!("Collection({})", qualified("QueryExpression"));
    let unicode = &[("Unicode", "false")][..];
    let optional = &[("Nullable", "true")][..];
    operation(
        xml,
        "Action",
        "BulkDelete",
        false,
        &[
            ("QuerySet", &queries, &[]),
            ("JobName", "Edm.String", unicode),
            ("SendEmailNotification", "Edm.Boolean", &[]),
            ("ToRecipients", &recipients, &[]),
            ("CCRecipients", &recipients, &[]),
            ("RecurrencePattern", "Edm.String", unicode),
            ("StartDateTime", "Edm.DateTimeOffset", &[]),
            ("SourceImportId", "Edm.Guid", optional),
            ("RunNow", "Edm.Boolean", optional),
        ],
        Some(&qualified("BulkDeleteResponse")),
    );
}
