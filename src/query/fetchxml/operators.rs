//! The condition operators: every FetchXML operator name, how it maps onto the AST, and the .NET type named when a value does not convert.

use super::*;

/// A condition operator, as it maps onto the AST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operator {
    Compare(CmpOp),
    Null,
    NotNull,
    Like { negated: bool },
    Text { func: StringFn, negated: bool },
    Function(QueryFnName),
}

/// Every condition operator smsctx evaluates, by its FetchXML name.
pub(super) const OPERATORS: [(&str, Operator); 38] = [
    ("eq", Operator::Compare(CmpOp::Eq)),
    ("ne", Operator::Compare(CmpOp::Ne)),
    ("neq", Operator::Compare(CmpOp::Ne)),
    ("gt", Operator::Compare(CmpOp::Gt)),
    ("ge", Operator::Compare(CmpOp::Ge)),
    ("lt", Operator::Compare(CmpOp::Lt)),
    ("le", Operator::Compare(CmpOp::Le)),
    ("null", Operator::Null),
    ("not-null", Operator::NotNull),
    ("like", Operator::Like { negated: false }),
    ("not-like", Operator::Like { negated: true }),
    (
        "begins-with",
        Operator::Text {
            func: StringFn::StartsWith,
            negated: false,
        },
    ),
    (
        "not-begin-with",
        Operator::Text {
            func: StringFn::StartsWith,
            negated: true,
        },
    ),
    (
        "ends-with",
        Operator::Text {
            func: StringFn::EndsWith,
            negated: false,
        },
    ),
    (
        "not-end-with",
        Operator::Text {
            func: StringFn::EndsWith,
            negated: true,
        },
    ),
    ("in", Operator::Function(QueryFnName::In)),
    ("not-in", Operator::Function(QueryFnName::NotIn)),
    ("between", Operator::Function(QueryFnName::Between)),
    ("not-between", Operator::Function(QueryFnName::NotBetween)),
    ("on", Operator::Function(QueryFnName::On)),
    ("on-or-after", Operator::Function(QueryFnName::OnOrAfter)),
    ("on-or-before", Operator::Function(QueryFnName::OnOrBefore)),
    ("today", Operator::Function(QueryFnName::Today)),
    ("yesterday", Operator::Function(QueryFnName::Yesterday)),
    ("tomorrow", Operator::Function(QueryFnName::Tomorrow)),
    ("last-x-days", Operator::Function(QueryFnName::LastXDays)),
    ("next-x-days", Operator::Function(QueryFnName::NextXDays)),
    ("last-x-hours", Operator::Function(QueryFnName::LastXHours)),
    ("next-x-hours", Operator::Function(QueryFnName::NextXHours)),
    ("last-x-weeks", Operator::Function(QueryFnName::LastXWeeks)),
    (
        "last-x-months",
        Operator::Function(QueryFnName::LastXMonths),
    ),
    ("last-x-years", Operator::Function(QueryFnName::LastXYears)),
    (
        "olderthan-x-days",
        Operator::Function(QueryFnName::OlderThanXDays),
    ),
    (
        "older-x-days",
        Operator::Function(QueryFnName::OlderThanXDays),
    ),
    ("eq-userid", Operator::Function(QueryFnName::EqualUserId)),
    ("ne-userid", Operator::Function(QueryFnName::NotEqualUserId)),
    (
        "eq-businessid",
        Operator::Function(QueryFnName::EqualBusinessId),
    ),
    (
        "ne-businessid",
        Operator::Function(QueryFnName::NotEqualBusinessId),
    ),
];

/// Dataverse operators that do not apply to this server's tables or are not evaluated yet.
pub(super) const UNSUPPORTED_OPERATORS: [&str; 46] = [
    "above",
    "eq-or-above",
    "eq-or-under",
    "under",
    "not-under",
    "eq-useroruserhierarchy",
    "eq-useroruserhierarchyandteams",
    "eq-useroruserteams",
    "eq-userteams",
    "eq-userlanguage",
    "contain-values",
    "not-contain-values",
    "in-fiscal-period",
    "in-fiscal-period-and-year",
    "in-fiscal-year",
    "in-or-after-fiscal-period-and-year",
    "in-or-before-fiscal-period-and-year",
    "last-fiscal-period",
    "last-fiscal-year",
    "last-month",
    "last-seven-days",
    "last-week",
    "last-x-fiscal-periods",
    "last-x-fiscal-years",
    "last-year",
    "next-fiscal-period",
    "next-fiscal-year",
    "next-month",
    "next-seven-days",
    "next-week",
    "next-x-fiscal-periods",
    "next-x-fiscal-years",
    "next-x-months",
    "next-x-weeks",
    "next-x-years",
    "next-year",
    "olderthan-x-hours",
    "olderthan-x-minutes",
    "olderthan-x-months",
    "olderthan-x-weeks",
    "olderthan-x-years",
    "this-fiscal-period",
    "this-fiscal-year",
    "this-month",
    "this-week",
    "this-year",
];

impl Operator {
    pub(super) fn parse(name: &str) -> Result<Operator, QueryError> {
        if let Some((_, op)) = OPERATORS.iter().find(|(n, _)| *n == name) {
            return Ok(*op);
        }
        if UNSUPPORTED_OPERATORS.contains(&name) {
            return Err(QueryError::Unsupported {
                what: format!("The condition operator '{name}'"),
            });
        }
        Err(QueryError::UnknownOperator {
            operator: name.to_string(),
        })
    }

    /// The SDK's `ConditionOperator` name, which Dataverse's messages use.
    pub(super) fn sdk_name(self) -> &'static str {
        match self {
            Operator::Compare(op) => op.kind_name(),
            Operator::Null => "Null",
            Operator::NotNull => "NotNull",
            Operator::Like { negated: false } => "Like",
            Operator::Like { negated: true } => "NotLike",
            Operator::Text {
                func: StringFn::StartsWith,
                negated: false,
            } => "BeginsWith",
            Operator::Text {
                func: StringFn::StartsWith,
                negated: true,
            } => "DoesNotBeginWith",
            Operator::Text {
                func: StringFn::EndsWith,
                negated: false,
            } => "EndsWith",
            Operator::Text {
                func: StringFn::EndsWith,
                negated: true,
            } => "DoesNotEndWith",
            Operator::Text {
                func: StringFn::Contains,
                negated: false,
            } => "Contains",
            Operator::Text {
                func: StringFn::Contains,
                negated: true,
            } => "DoesNotContain",
            Operator::Function(name) => name.name(),
        }
    }

    /// Whether the operator reads `<value>` lists (so an empty `value` attribute is noise).
    pub(super) fn takes_list(self) -> bool {
        matches!(
            self,
            Operator::Function(f) if matches!(f.values(), FnValues::List | FnValues::Range)
        )
    }

    pub(super) fn takes_no_value(self) -> bool {
        match self {
            Operator::Null | Operator::NotNull => true,
            Operator::Function(f) => f.values() == FnValues::None,
            _ => false,
        }
    }
}

/// The .NET type Dataverse names when a condition value does not convert.
pub(super) fn clr_type(t: AttributeType) -> &'static str {
    use AttributeType as T;
    match t {
        T::Integer | T::Picklist | T::State | T::Status => "System.Int32",
        T::BigInt => "System.Int64",
        T::Uniqueidentifier | T::Lookup | T::Owner => "System.Guid",
        T::DateTime => "System.DateTime",
        T::Boolean => "System.Boolean",
        T::String | T::Memo | T::EntityName => "System.String",
    }
}
