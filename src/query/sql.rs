//! The third front end: the read-only SQL of `GET /{set}?sql=...`, as Microsoft's Python SDK
//! (`client.query.sql(...)`) sends it, parsed with the `sqlparser` crate (T-SQL dialect) and
//! bound to the same [`Expr`] as `$filter` and FetchXML.
//!
//! The subset, and nothing more (anything else is refused, naming what is not supported):
//!
//! ```text
//! query      := SELECT [TOP n] columns FROM table [[AS] alias] [WHERE condition]
//!               [ORDER BY column [ASC|DESC] {, column [ASC|DESC]}]
//! columns    := * | column {, column}
//! column     := name | alias.name            (a column's logical name, any case)
//! condition  := condition AND condition | condition OR condition | NOT condition | (condition)
//!             | operand (= | <> | != | < | <= | > | >=) operand
//!             | column [NOT] LIKE 'pattern' | column [NOT] IN (literal {, literal})
//!             | column IS [NOT] NULL
//! operand    := column | literal             (at least one side a column)
//! literal    := 'text' | number | -number | TRUE | FALSE
//! ```
//!
//! `table` is the table's logical name; literals are typed by the column they meet, with the one
//! helper every front end uses (`filter::literal_for`).

use sqlparser::ast::{
    self as sql, BinaryOperator, GroupByExpr, ObjectNamePart, OrderByKind, SelectItem, SetExpr,
    Statement, TableFactor, TopQuantity, UnaryOperator,
};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::Parser;

use super::ast::{CmpOp, Expr, Literal, PropertyRef};
use super::error::QueryError;
use super::filter;
use super::options::OrderBy;
use crate::metadata::{Catalog, Entity};
use std::sync::Arc;

/// A bound `?sql=` query.
#[derive(Debug, Clone)]
pub struct SqlQuery {
    pub entity: Arc<Entity>,
    /// The selected columns, in order, each named by its logical name; `*` is every stored
    /// column of the table.
    pub columns: Vec<PropertyRef>,
    pub filter: Option<Expr>,
    pub order: Vec<OrderBy>,
    /// `TOP n`.
    pub top: Option<u32>,
}

fn unsupported(what: impl Into<String>) -> QueryError {
    QueryError::SqlUnsupported { what: what.into() }
}

/// Parses and binds one `SELECT` statement.
pub fn parse(catalog: &Catalog, text: &str) -> Result<SqlQuery, QueryError> {
    let statements =
        Parser::parse_sql(&MsSqlDialect {}, text).map_err(|e| QueryError::SqlSyntax {
            detail: e.to_string(),
        })?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err(unsupported("An empty statement")),
        _ => return Err(unsupported("More than one statement")),
    };
    let Statement::Query(query) = statement else {
        return Err(unsupported(format!(
            "The statement '{}' (only SELECT is read)",
            first_word(text)
        )));
    };
    if query.with.is_some() {
        return Err(unsupported("WITH (common table expressions)"));
    }
    let select = match query.body.as_ref() {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { op, .. } => return Err(unsupported(format!("{op}"))),
        _ => return Err(unsupported("A query body other than one SELECT")),
    };
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return Err(unsupported("LIMIT, OFFSET and FETCH (use TOP n)"));
    }
    check_rest_of_query(query)?;
    check_select_clauses(select)?;

    let (entity, alias) = from_table(catalog, select)?;
    let scope = Scope {
        entity: &entity,
        alias: alias.as_deref(),
    };
    let columns = projection(&scope, &select.projection)?;
    let filter = select
        .selection
        .as_ref()
        .map(|e| scope.condition(e, 0))
        .transpose()?;
    let order = match &query.order_by {
        None => Vec::new(),
        Some(order_by) => {
            if order_by.interpolate.is_some() {
                return Err(unsupported("INTERPOLATE"));
            }
            match &order_by.kind {
                OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL")),
                OrderByKind::Expressions(items) => items
                    .iter()
                    .map(|item| scope.order_item(item))
                    .collect::<Result<_, _>>()?,
            }
        }
    };
    let top = match &select.top {
        None => None,
        Some(top) => {
            if top.percent || top.with_ties {
                return Err(unsupported("TOP ... PERCENT and TOP ... WITH TIES"));
            }
            match &top.quantity {
                Some(TopQuantity::Constant(n)) => {
                    Some(u32::try_from(*n).map_err(|_| QueryError::InvalidTop {
                        value: n.to_string(),
                    })?)
                }
                _ => return Err(unsupported("TOP with an expression (use TOP n)")),
            }
        }
    };
    Ok(SqlQuery {
        entity,
        columns,
        filter,
        order,
        top,
    })
}

fn first_word(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_uppercase()
}

/// Everything of the query besides its body and ORDER BY must be absent: compared with a
/// template query that has none of it.
fn check_rest_of_query(query: &sql::Query) -> Result<(), QueryError> {
    let template = template_query();
    let mut rest = query.clone();
    rest.body = template.body.clone();
    rest.order_by = None;
    if rest != template {
        return Err(unsupported(
            "A query clause other than SELECT, FROM, WHERE, ORDER BY and TOP",
        ));
    }
    Ok(())
}

fn template_query() -> sql::Query {
    match Parser::parse_sql(&MsSqlDialect {}, "SELECT a FROM t")
        .ok()
        .and_then(|mut s| s.pop())
    {
        Some(Statement::Query(query)) => *query,
        // The template is a constant the parser always reads.
        _ => unreachable!("the template query parses"),
    }
}

/// The SELECT's clauses other than TOP, the columns, FROM and WHERE must be absent.
fn check_select_clauses(select: &sql::Select) -> Result<(), QueryError> {
    if select.distinct.is_some() {
        return Err(unsupported("DISTINCT"));
    }
    if !matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty()) {
        return Err(unsupported("GROUP BY"));
    }
    if select.having.is_some() {
        return Err(unsupported("HAVING"));
    }
    if select.into.is_some() {
        return Err(unsupported("SELECT ... INTO"));
    }
    let template = match template_query().body.as_ref() {
        SetExpr::Select(s) => s.as_ref().clone(),
        _ => unreachable!("the template is a SELECT"),
    };
    let mut rest = select.clone();
    rest.top = None;
    rest.projection = template.projection.clone();
    rest.from = template.from.clone();
    rest.selection = None;
    if rest != template {
        return Err(unsupported(
            "A SELECT clause other than TOP, the column list, FROM and WHERE",
        ));
    }
    Ok(())
}

/// The one table of FROM, by logical name, and its alias.
fn from_table(
    catalog: &Catalog,
    select: &sql::Select,
) -> Result<(Arc<Entity>, Option<String>), QueryError> {
    let table = match select.from.as_slice() {
        [one] => one,
        [] => return Err(unsupported("A SELECT without FROM")),
        _ => return Err(unsupported("More than one table in FROM")),
    };
    if !table.joins.is_empty() {
        return Err(unsupported("JOIN"));
    }
    let TableFactor::Table {
        name,
        alias,
        args,
        with_hints,
        version,
        partitions,
        sample,
        ..
    } = &table.relation
    else {
        return Err(unsupported(
            "A FROM item other than a table name (subqueries)",
        ));
    };
    if args.is_some()
        || !with_hints.is_empty()
        || version.is_some()
        || !partitions.is_empty()
        || sample.is_some()
    {
        return Err(unsupported("Table hints and table-valued functions"));
    }
    let logical = match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => ident.value.to_lowercase(),
        _ => {
            return Err(unsupported(
                "A qualified table name (use the table's logical name)",
            ))
        }
    };
    let entity = catalog
        .entity(&logical)
        .cloned()
        .ok_or(QueryError::UnknownEntity { name: logical })?;
    let alias = match alias {
        None => None,
        Some(alias) if alias.columns.is_empty() => Some(alias.name.value.to_lowercase()),
        Some(_) => return Err(unsupported("Column aliases on the table")),
    };
    Ok((entity, alias))
}

/// Names are resolved against the one table.
struct Scope<'a> {
    entity: &'a Arc<Entity>,
    alias: Option<&'a str>,
}

/// How deep conditions may nest.
const MAX_DEPTH: usize = 64;

impl Scope<'_> {
    /// A column by its logical name (any case), `alias.column` or `table.column`.
    fn column(&self, expr: &sql::Expr) -> Result<Option<PropertyRef>, QueryError> {
        let name = match expr {
            sql::Expr::Identifier(ident) => ident.value.to_lowercase(),
            sql::Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [qualifier, column] => {
                    let qualifier = qualifier.value.to_lowercase();
                    let known = Some(qualifier.as_str()) == self.alias
                        || qualifier == self.entity.logical_name;
                    if !known {
                        return Err(unsupported(format!(
                            "The qualifier '{}' (the query reads one table, '{}')",
                            qualifier, self.entity.logical_name
                        )));
                    }
                    column.value.to_lowercase()
                }
                _ => return Err(unsupported(format!("The column name '{expr}'"))),
            },
            _ => return Ok(None),
        };
        let index = self
            .entity
            .position(&name)
            .filter(|&i| self.entity.attributes[i].is_stored())
            .ok_or_else(|| QueryError::UnknownAttribute {
                entity: self.entity.logical_name.clone(),
                name: name.clone(),
            })?;
        Ok(Some(PropertyRef {
            index,
            name: self.entity.attributes[index].property_name().to_string(),
        }))
    }

    fn required_column(&self, expr: &sql::Expr, what: &str) -> Result<PropertyRef, QueryError> {
        self.column(expr)?
            .ok_or_else(|| unsupported(format!("{what} on '{expr}' (only on a column)")))
    }

    fn order_item(&self, item: &sql::OrderByExpr) -> Result<OrderBy, QueryError> {
        if item.options.nulls_first.is_some() || item.with_fill.is_some() {
            return Err(unsupported("NULLS FIRST / NULLS LAST"));
        }
        let descending = match &item.options.sort {
            None | Some(sql::OrderBySort::Asc) => false,
            Some(sql::OrderBySort::Desc) => true,
            Some(other) => return Err(unsupported(format!("ORDER BY ... {other:?}"))),
        };
        Ok(OrderBy {
            prop: self.required_column(&item.expr, "ORDER BY")?,
            descending,
        })
    }

    /// A literal typed for `prop`'s column.
    fn literal(&self, prop: &PropertyRef, expr: &sql::Expr) -> Result<Literal, QueryError> {
        let text = literal_text(expr)?;
        let attribute = &self.entity.attributes[prop.index];
        filter::literal_for(attribute, &text).ok_or_else(|| QueryError::ConditionValue {
            value: text,
            entity: self.entity.logical_name.clone(),
            attribute: attribute.logical_name.clone(),
            expected: attribute.attribute_type.name(),
        })
    }

    fn condition(&self, expr: &sql::Expr, depth: usize) -> Result<Expr, QueryError> {
        if depth > MAX_DEPTH {
            return Err(QueryError::TooDeep);
        }
        let next = depth + 1;
        match expr {
            sql::Expr::Nested(inner) => self.condition(inner, next),
            sql::Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(Expr::Not(Box::new(self.condition(expr, next)?))),
            sql::Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And => Ok(Expr::and(vec![
                    self.condition(left, next)?,
                    self.condition(right, next)?,
                ])),
                BinaryOperator::Or => Ok(Expr::or(vec![
                    self.condition(left, next)?,
                    self.condition(right, next)?,
                ])),
                _ => self.comparison(left, op, right),
            },
            sql::Expr::IsNull(inner) => Ok(Expr::IsNull(self.required_column(inner, "IS NULL")?)),
            sql::Expr::IsNotNull(inner) => {
                Ok(Expr::NotNull(self.required_column(inner, "IS NOT NULL")?))
            }
            sql::Expr::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any || escape_char.is_some() {
                    return Err(unsupported("LIKE ANY and LIKE ... ESCAPE"));
                }
                let prop = self.required_column(expr, "LIKE")?;
                if self.entity.attributes[prop.index].attribute_type.edm_type() != "Edm.String" {
                    return Err(unsupported(format!(
                        "LIKE on '{}', which is not a text column",
                        prop.name
                    )));
                }
                let pattern = match pattern.as_ref() {
                    sql::Expr::Value(v) => match &v.value {
                        sql::Value::SingleQuotedString(s)
                        | sql::Value::NationalStringLiteral(s) => s.clone(),
                        _ => return Err(unsupported("A LIKE pattern that is not a quoted string")),
                    },
                    _ => return Err(unsupported("A LIKE pattern that is not a quoted string")),
                };
                let like = Expr::Like { prop, pattern };
                Ok(if *negated {
                    Expr::Not(Box::new(like))
                } else {
                    like
                })
            }
            sql::Expr::In {
                expr,
                target: sql::InTarget::List(list),
                negated,
                global: false,
            } => {
                let prop = self.required_column(expr, "IN")?;
                let operands = list
                    .iter()
                    .map(|item| {
                        Ok(Expr::Compare {
                            prop: prop.clone(),
                            op: CmpOp::Eq,
                            value: self.literal(&prop, item)?,
                        })
                    })
                    .collect::<Result<Vec<_>, QueryError>>()?;
                if operands.is_empty() {
                    return Err(unsupported("An empty IN list"));
                }
                let any = Expr::or(operands);
                Ok(if *negated {
                    Expr::Not(Box::new(any))
                } else {
                    any
                })
            }
            sql::Expr::In { .. } | sql::Expr::Exists { .. } | sql::Expr::Subquery(_) => {
                Err(unsupported("Subqueries"))
            }
            sql::Expr::Between { .. } => Err(unsupported("BETWEEN (use >= and <=)")),
            other => Err(unsupported(format!("The condition '{other}'"))),
        }
    }

    fn comparison(
        &self,
        left: &sql::Expr,
        op: &BinaryOperator,
        right: &sql::Expr,
    ) -> Result<Expr, QueryError> {
        let op = match op {
            BinaryOperator::Eq => CmpOp::Eq,
            BinaryOperator::NotEq => CmpOp::Ne,
            BinaryOperator::Lt => CmpOp::Lt,
            BinaryOperator::LtEq => CmpOp::Le,
            BinaryOperator::Gt => CmpOp::Gt,
            BinaryOperator::GtEq => CmpOp::Ge,
            other => return Err(unsupported(format!("The operator '{other}'"))),
        };
        match (self.column(left)?, self.column(right)?) {
            (Some(l), Some(r)) => {
                let (lt, rt) = (
                    self.entity.attributes[l.index].attribute_type,
                    self.entity.attributes[r.index].attribute_type,
                );
                if lt.edm_type() != rt.edm_type() {
                    return Err(QueryError::IncompatibleTypes {
                        left: lt.edm_type(),
                        right: rt.edm_type(),
                        operator: op.kind_name(),
                    });
                }
                Ok(Expr::ComparePropProp {
                    left: l,
                    op,
                    right: r,
                })
            }
            (Some(prop), None) => self.compare_literal(prop, op, right),
            (None, Some(prop)) => self.compare_literal(prop, flip(op), left),
            (None, None) => Err(unsupported(format!(
                "A comparison without a column ('{left}' and '{right}')"
            ))),
        }
    }

    fn compare_literal(
        &self,
        prop: PropertyRef,
        op: CmpOp,
        value: &sql::Expr,
    ) -> Result<Expr, QueryError> {
        if is_null(value) {
            return Err(unsupported(format!(
                "A comparison with NULL (use '{} IS NULL' or 'IS NOT NULL')",
                self.entity.attributes[prop.index].logical_name
            )));
        }
        let value = self.literal(&prop, value)?;
        Ok(Expr::Compare { prop, op, value })
    }
}

/// `a < b` is `b > a`.
fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

fn is_null(expr: &sql::Expr) -> bool {
    matches!(expr, sql::Expr::Value(v) if v.value == sql::Value::Null)
}

/// The text of a literal, as the column typing helper reads it.
fn literal_text(expr: &sql::Expr) -> Result<String, QueryError> {
    match expr {
        sql::Expr::Value(v) => match &v.value {
            sql::Value::SingleQuotedString(s) | sql::Value::NationalStringLiteral(s) => {
                Ok(s.clone())
            }
            sql::Value::Number(n, _) => Ok(n.clone()),
            sql::Value::Boolean(b) => Ok(b.to_string()),
            other => Err(unsupported(format!("The literal {other}"))),
        },
        sql::Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            sql::Expr::Value(v) => match &v.value {
                sql::Value::Number(n, _) => Ok(format!("-{n}")),
                _ => Err(unsupported(format!("The value '{expr}'"))),
            },
            _ => Err(unsupported(format!("The value '-{expr}'"))),
        },
        other => Err(unsupported(format!(
            "The value '{other}' (only literals and columns are compared)"
        ))),
    }
}

/// The selected columns: `*`, or a list of columns.
fn projection(scope: &Scope<'_>, items: &[SelectItem]) -> Result<Vec<PropertyRef>, QueryError> {
    if let [SelectItem::Wildcard(options)] = items {
        if *options != sql::WildcardAdditionalOptions::default() {
            return Err(unsupported("Options after SELECT *"));
        }
        let entity = scope.entity;
        return Ok(entity
            .attributes
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_stored())
            .map(|(index, a)| PropertyRef {
                index,
                name: a.property_name().to_string(),
            })
            .collect());
    }
    items
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(expr) => scope.column(expr)?.ok_or_else(|| match expr {
                sql::Expr::Function(f) => {
                    unsupported(format!("The function {} in the column list", f.name))
                }
                _ => unsupported(format!("The expression '{expr}' in the column list")),
            }),
            SelectItem::ExprWithAlias { .. } | SelectItem::ExprWithAliases { .. } => {
                Err(unsupported("Column aliases (AS)"))
            }
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                Err(unsupported("'*' beside other columns"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
