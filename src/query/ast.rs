//! The typed, bound form of `$filter`: what the parser produces and the SQL lowering consumes.
//!
//! Every property in the tree is already resolved to a column of the entity ([`PropertyRef`])
//! and every literal already has the type its column needs. `Display` prints the canonical
//! `$filter` text: parsing that text again yields an equal tree.
//!
//! Both front ends produce this tree: `$filter` ([`super::filter`]) and FetchXML
//! ([`super::fetchxml`]). One variant has no `$filter` spelling: [`Expr::Like`], FetchXML's
//! `like`, which only FetchXML produces. It prints as `like(prop,'pattern')`, a form the
//! `$filter` parser refuses (as an unknown function), so the round-trip invariant covers every
//! tree the OData side can produce and nothing more.

use std::fmt;
use std::sync::Arc;

use crate::metadata::Entity;

/// A column of the entity, as the query named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyRef {
    /// Index into `Entity::attributes`.
    pub index: usize,
    /// The property name as written (`_ownerid_value`, `msdyn_name`, ...).
    pub name: String,
}

/// The six comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }

    /// The `$filter` keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }

    /// The OData library's name for the operator, used in error messages.
    pub fn kind_name(self) -> &'static str {
        match self {
            Self::Eq => "Equal",
            Self::Ne => "NotEqual",
            Self::Gt => "GreaterThan",
            Self::Ge => "GreaterThanOrEqual",
            Self::Lt => "LessThan",
            Self::Le => "LessThanOrEqual",
        }
    }
}

/// A literal value, already of the type of the column it is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    Null,
    String(String),
    Int(i64),
    Guid(uuid::Uuid),
    /// Unix seconds, UTC.
    DateTime(i64),
    /// Unix seconds of midnight UTC.
    Date(i64),
    Bool(bool),
}

impl Literal {
    /// The EDM type name of the literal, used in error messages.
    pub fn edm_type(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::String(_) => "Edm.String",
            Self::Int(n) if i32::try_from(*n).is_ok() => "Edm.Int32",
            Self::Int(_) => "Edm.Int64",
            Self::Guid(_) => "Edm.Guid",
            Self::DateTime(_) => "Edm.DateTimeOffset",
            Self::Date(_) => "Edm.Date",
            Self::Bool(_) => "Edm.Boolean",
        }
    }

    /// The text inside a JSON-ish value array (`["1","2"]`): the literal without quotes.
    fn bare_text(&self) -> String {
        match self {
            Self::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Self::Int(n) => write!(f, "{n}"),
            Self::Guid(g) => write!(f, "{}", g.hyphenated()),
            Self::DateTime(secs) => match time::OffsetDateTime::from_unix_timestamp(*secs) {
                Ok(t) => write!(
                    f,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                ),
                // Only a hand-built literal can be out of range; print something re-readable.
                Err(_) => write!(f, "{secs}"),
            },
            Self::Date(secs) => match time::OffsetDateTime::from_unix_timestamp(*secs) {
                Ok(t) => write!(
                    f,
                    "{:04}-{:02}-{:02}",
                    t.year(),
                    u8::from(t.month()),
                    t.day()
                ),
                Err(_) => write!(f, "{secs}"),
            },
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// `contains`, `startswith`, `endswith`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFn {
    Contains,
    StartsWith,
    EndsWith,
}

impl StringFn {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "contains" => Self::Contains,
            "startswith" => Self::StartsWith,
            "endswith" => Self::EndsWith,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Contains => "contains",
            Self::StartsWith => "startswith",
            Self::EndsWith => "endswith",
        }
    }
}

/// The prefix of Dataverse's query functions.
pub const QUERY_FUNCTION_NAMESPACE: &str = "Microsoft.Dynamics.CRM.";

/// The Dataverse query functions (`Microsoft.Dynamics.CRM.<name>`) smsctx understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFnName {
    In,
    NotIn,
    Between,
    NotBetween,
    Today,
    Yesterday,
    Tomorrow,
    LastXDays,
    NextXDays,
    LastXHours,
    NextXHours,
    LastXWeeks,
    LastXMonths,
    LastXYears,
    OlderThanXDays,
    On,
    OnOrAfter,
    OnOrBefore,
    EqualUserId,
    NotEqualUserId,
    EqualBusinessId,
    NotEqualBusinessId,
}

/// What values a query function takes, and how they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FnValues {
    /// `PropertyName` only.
    None,
    /// `PropertyValue=<integer>`, a count of hours, days, ...
    Count,
    /// `PropertyValue=<date>`.
    Date,
    /// `PropertyValues=[...]` with exactly two values of the column's type.
    Range,
    /// `PropertyValues=[...]` with one or more values of the column's type.
    List,
}

impl QueryFnName {
    pub const ALL: [QueryFnName; 22] = [
        Self::In,
        Self::NotIn,
        Self::Between,
        Self::NotBetween,
        Self::Today,
        Self::Yesterday,
        Self::Tomorrow,
        Self::LastXDays,
        Self::NextXDays,
        Self::LastXHours,
        Self::NextXHours,
        Self::LastXWeeks,
        Self::LastXMonths,
        Self::LastXYears,
        Self::OlderThanXDays,
        Self::On,
        Self::OnOrAfter,
        Self::OnOrBefore,
        Self::EqualUserId,
        Self::NotEqualUserId,
        Self::EqualBusinessId,
        Self::NotEqualBusinessId,
    ];

    /// The name without the namespace (`In`, `LastXDays`).
    pub fn name(self) -> &'static str {
        match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Between => "Between",
            Self::NotBetween => "NotBetween",
            Self::Today => "Today",
            Self::Yesterday => "Yesterday",
            Self::Tomorrow => "Tomorrow",
            Self::LastXDays => "LastXDays",
            Self::NextXDays => "NextXDays",
            Self::LastXHours => "LastXHours",
            Self::NextXHours => "NextXHours",
            Self::LastXWeeks => "LastXWeeks",
            Self::LastXMonths => "LastXMonths",
            Self::LastXYears => "LastXYears",
            Self::OlderThanXDays => "OlderThanXDays",
            Self::On => "On",
            Self::OnOrAfter => "OnOrAfter",
            Self::OnOrBefore => "OnOrBefore",
            Self::EqualUserId => "EqualUserId",
            Self::NotEqualUserId => "NotEqualUserId",
            Self::EqualBusinessId => "EqualBusinessId",
            Self::NotEqualBusinessId => "NotEqualBusinessId",
        }
    }

    /// The function with this name (without the namespace), compared case-sensitively.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The fully qualified name (`Microsoft.Dynamics.CRM.In`).
    pub fn qualified_name(self) -> String {
        format!("{QUERY_FUNCTION_NAMESPACE}{}", self.name())
    }

    pub fn values(self) -> FnValues {
        match self {
            Self::In | Self::NotIn => FnValues::List,
            Self::Between | Self::NotBetween => FnValues::Range,
            Self::Today
            | Self::Yesterday
            | Self::Tomorrow
            | Self::EqualUserId
            | Self::NotEqualUserId
            | Self::EqualBusinessId
            | Self::NotEqualBusinessId => FnValues::None,
            Self::LastXDays
            | Self::NextXDays
            | Self::LastXHours
            | Self::NextXHours
            | Self::LastXWeeks
            | Self::LastXMonths
            | Self::LastXYears
            | Self::OlderThanXDays => FnValues::Count,
            Self::On | Self::OnOrAfter | Self::OnOrBefore => FnValues::Date,
        }
    }
}

/// A bound `$filter` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `prop op literal` with a non-null literal of the column's type.
    Compare {
        prop: PropertyRef,
        op: CmpOp,
        value: Literal,
    },
    /// `prop op prop`: two columns of the same EDM type.
    ComparePropProp {
        left: PropertyRef,
        op: CmpOp,
        right: PropertyRef,
    },
    /// `prop eq null`.
    IsNull(PropertyRef),
    /// `prop ne null`.
    NotNull(PropertyRef),
    /// Two or more operands; never directly contains another `And`.
    And(Vec<Expr>),
    /// Two or more operands; never directly contains another `Or`.
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// `contains(prop,'value')` and friends, on a string column.
    StringFn {
        func: StringFn,
        prop: PropertyRef,
        value: String,
    },
    /// FetchXML's `like`: `prop LIKE pattern` on a string column, the pattern taken as written
    /// (`%`, `_`, `[...]` and `[^...]` are wildcards). Never produced by the `$filter` parser;
    /// printed as `like(prop,'pattern')`. `not-like` is `Not(Like)`.
    Like {
        prop: PropertyRef,
        pattern: String,
    },
    /// `Microsoft.Dynamics.CRM.<name>(PropertyName='prop', ...)`.
    QueryFn {
        name: QueryFnName,
        prop: PropertyRef,
        values: Vec<Literal>,
    },
    /// A lookup path (`msdyn_liveworkitemid/statecode eq 1`): the row the lookup column
    /// `lookup` points at exists, the caller may read it, and it satisfies `inner`, which is
    /// bound against `target` (its property names keep the whole path as written, so the
    /// tree prints back as it was read).
    Related {
        lookup: PropertyRef,
        target: Table,
        inner: Box<Expr>,
    },
    /// `nav/any(v:inner)` (`all: false`) or `nav/all(v:inner)` over a one-to-many
    /// collection: the rows of `child` whose lookup column `child_lookup` points at this row,
    /// counting only the rows the caller may read. `any` without a predicate (`nav/any()`) is
    /// `inner: None`. `inner` is bound against `child`, its names prefixed with `variable/`.
    Lambda {
        /// The collection-valued navigation property as written (with an outer variable's
        /// prefix inside another lambda).
        navigation: String,
        all: bool,
        variable: String,
        child: Table,
        child_lookup: usize,
        inner: Option<Box<Expr>>,
    },
}

/// One lookup crossed to read a column of its target (a `$apply` group `lookup/column`, a
/// FetchXML aggregate column of a many-to-one link): the target's row, when the caller may read
/// it; its columns are NULL otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The lookup column of the table queried.
    pub lookup: PropertyRef,
    pub target: Table,
}

/// A one-to-many join (a FetchXML `link-entity` of link-type `inner` or `outer` from a lookup of
/// `child` to the queried table's key): each row of the queried table once per row of `child`
/// whose `lookup` points at it and that matches `filter` (inner: rows without one are dropped;
/// outer: they come once, with no child). The child rows are read under the caller's row scope
/// of `child`, so an unreadable child is absent, as a missing one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildJoin {
    pub child: Table,
    /// The lookup column of `child` that points at the queried table.
    pub lookup: PropertyRef,
    pub outer: bool,
    /// Bound against `child`.
    pub filter: Option<Expr>,
    /// Order keys of `child`, after the queried table's order (and its primary id).
    pub order: Vec<super::options::OrderBy>,
}

/// A table reached through a relationship: its metadata, compared by logical name.
#[derive(Debug, Clone)]
pub struct Table(pub Arc<Entity>);

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        self.0.logical_name == other.0.logical_name
    }
}

impl Eq for Table {}

impl Expr {
    /// `operands` joined with `and`, flattening nested `And`s; a single operand is returned as
    /// is.
    pub fn and(operands: Vec<Expr>) -> Expr {
        Self::join(operands, true)
    }

    /// `operands` joined with `or`, flattening nested `Or`s.
    pub fn or(operands: Vec<Expr>) -> Expr {
        Self::join(operands, false)
    }

    fn join(operands: Vec<Expr>, and: bool) -> Expr {
        let mut flat = Vec::with_capacity(operands.len());
        for operand in operands {
            match operand {
                Expr::And(inner) if and => flat.extend(inner),
                Expr::Or(inner) if !and => flat.extend(inner),
                other => flat.push(other),
            }
        }
        if flat.len() == 1 {
            if let Some(only) = flat.pop() {
                return only;
            }
        }
        if and {
            Expr::And(flat)
        } else {
            Expr::Or(flat)
        }
    }

    /// Every table a relationship in the expression reaches (not the table it is bound
    /// against), each once, in first-reached order.
    pub fn related_tables(&self) -> Vec<Arc<Entity>> {
        let mut out = Vec::new();
        self.collect_tables(&mut out);
        out
    }

    /// How many relationships the expression crosses (each lookup hop and each lambda).
    pub fn relationship_count(&self) -> usize {
        match self {
            Expr::And(operands) | Expr::Or(operands) => {
                operands.iter().map(Expr::relationship_count).sum()
            }
            Expr::Not(inner) => inner.relationship_count(),
            Expr::Related { inner, .. } => 1 + inner.relationship_count(),
            Expr::Lambda { inner, .. } => 1 + inner.as_ref().map_or(0, |e| e.relationship_count()),
            _ => 0,
        }
    }

    fn collect_tables(&self, out: &mut Vec<Arc<Entity>>) {
        let add = |table: &Table, out: &mut Vec<Arc<Entity>>| {
            if !out.iter().any(|t| t.logical_name == table.0.logical_name) {
                out.push(Arc::clone(&table.0));
            }
        };
        match self {
            Expr::And(operands) | Expr::Or(operands) => {
                operands.iter().for_each(|e| e.collect_tables(out))
            }
            Expr::Not(inner) => inner.collect_tables(out),
            Expr::Related { target, inner, .. } => {
                add(target, out);
                inner.collect_tables(out);
            }
            Expr::Lambda { child, inner, .. } => {
                add(child, out);
                if let Some(inner) = inner {
                    inner.collect_tables(out);
                }
            }
            _ => {}
        }
    }

    /// Whether the expression needs parentheses to be an operand of `and` or `not`.
    fn is_compound(&self) -> bool {
        matches!(self, Expr::And(_) | Expr::Or(_))
    }
}

fn write_joined(
    f: &mut fmt::Formatter<'_>,
    operands: &[Expr],
    keyword: &str,
    parenthesize: impl Fn(&Expr) -> bool,
) -> fmt::Result {
    for (i, operand) in operands.iter().enumerate() {
        if i > 0 {
            write!(f, " {keyword} ")?;
        }
        if parenthesize(operand) {
            write!(f, "({operand})")?;
        } else {
            write!(f, "{operand}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Compare { prop, op, value } => {
                write!(f, "{} {} {value}", prop.name, op.keyword())
            }
            Expr::ComparePropProp { left, op, right } => {
                write!(f, "{} {} {}", left.name, op.keyword(), right.name)
            }
            Expr::IsNull(prop) => write!(f, "{} eq null", prop.name),
            Expr::NotNull(prop) => write!(f, "{} ne null", prop.name),
            Expr::And(operands) => write_joined(f, operands, "and", Expr::is_compound),
            Expr::Or(operands) => write_joined(f, operands, "or", |e| matches!(e, Expr::Or(_))),
            Expr::Not(inner) if inner.is_compound() => write!(f, "not ({inner})"),
            Expr::Not(inner) => write!(f, "not {inner}"),
            Expr::StringFn { func, prop, value } => write!(
                f,
                "{}({},{})",
                func.name(),
                prop.name,
                Literal::String(value.clone())
            ),
            Expr::Like { prop, pattern } => write!(
                f,
                "like({},{})",
                prop.name,
                Literal::String(pattern.clone())
            ),
            Expr::QueryFn { name, prop, values } => {
                write!(
                    f,
                    "{}(PropertyName={}",
                    name.qualified_name(),
                    Literal::String(prop.name.clone())
                )?;
                match name.values() {
                    FnValues::None => {}
                    FnValues::Count | FnValues::Date => {
                        if let Some(value) = values.first() {
                            write!(f, ",PropertyValue={value}")?;
                        }
                    }
                    FnValues::Range | FnValues::List => {
                        f.write_str(",PropertyValues=[")?;
                        for (i, value) in values.iter().enumerate() {
                            if i > 0 {
                                f.write_str(",")?;
                            }
                            let text = value.bare_text();
                            let json = serde_json::Value::String(text);
                            write!(f, "{json}")?;
                        }
                        f.write_str("]")?;
                    }
                }
                f.write_str(")")
            }
            Expr::Related { inner, .. } => write!(f, "{inner}"),
            Expr::Lambda {
                navigation,
                all,
                variable,
                inner,
                ..
            } => {
                let word = if *all { "all" } else { "any" };
                match inner {
                    Some(inner) => write!(f, "{navigation}/{word}({variable}:{inner})"),
                    None => write!(f, "{navigation}/{word}()"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(name: &str) -> PropertyRef {
        PropertyRef {
            index: 0,
            name: name.to_string(),
        }
    }

    fn eq(name: &str, n: i64) -> Expr {
        Expr::Compare {
            prop: prop(name),
            op: CmpOp::Eq,
            value: Literal::Int(n),
        }
    }

    fn check(expr: Expr, expected: &str) {
        assert_eq!(expr.to_string(), expected);
    }

    #[test]
    fn literals_print_as_filter_text() {
        let guid = uuid::Uuid::from_u128(0x4026be43_0000_0000_0000_0000000000ab);
        assert_eq!(Literal::String("it's".into()).to_string(), "'it''s'");
        assert_eq!(
            Literal::Guid(guid).to_string(),
            "4026be43-0000-0000-0000-0000000000ab"
        );
        assert_eq!(
            Literal::DateTime(1_714_557_600).to_string(),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(Literal::Date(1_714_521_600).to_string(), "2024-05-01");
        assert_eq!(Literal::Int(-3).to_string(), "-3");
        assert_eq!(Literal::Bool(true).to_string(), "true");
        assert_eq!(Literal::Null.to_string(), "null");
    }

    #[test]
    fn and_and_or_flatten_and_parenthesize_by_precedence() {
        let or = Expr::or(vec![eq("a", 1), Expr::or(vec![eq("b", 2), eq("c", 3)])]);
        check(or.clone(), "a eq 1 or b eq 2 or c eq 3");
        check(
            Expr::and(vec![eq("d", 4), or.clone()]),
            "d eq 4 and (a eq 1 or b eq 2 or c eq 3)",
        );
        check(
            Expr::or(vec![Expr::and(vec![eq("a", 1), eq("b", 2)]), eq("c", 3)]),
            "a eq 1 and b eq 2 or c eq 3",
        );
        check(Expr::Not(Box::new(or)), "not (a eq 1 or b eq 2 or c eq 3)");
        check(Expr::and(vec![eq("a", 1)]), "a eq 1");
    }

    #[test]
    fn query_functions_print_their_values_in_the_documented_shape() {
        check(
            Expr::QueryFn {
                name: QueryFnName::In,
                prop: prop("statuscode"),
                values: vec![Literal::Int(1), Literal::Int(2)],
            },
            r#"Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=["1","2"])"#,
        );
        check(
            Expr::QueryFn {
                name: QueryFnName::LastXDays,
                prop: prop("createdon"),
                values: vec![Literal::Int(7)],
            },
            "Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=7)",
        );
        check(
            Expr::QueryFn {
                name: QueryFnName::Today,
                prop: prop("createdon"),
                values: vec![],
            },
            "Microsoft.Dynamics.CRM.Today(PropertyName='createdon')",
        );
    }

    #[test]
    fn like_prints_as_a_function_the_filter_parser_refuses() {
        let like = Expr::Like {
            prop: prop("msdyn_name"),
            pattern: "it's 5%".into(),
        };
        check(like.clone(), "like(msdyn_name,'it''s 5%')");
        check(Expr::Not(Box::new(like)), "not like(msdyn_name,'it''s 5%')");
    }

    #[test]
    fn every_query_function_name_parses_back() {
        for f in QueryFnName::ALL {
            assert_eq!(QueryFnName::parse(f.name()), Some(f));
        }
        assert_eq!(QueryFnName::parse("in"), None);
    }
}
