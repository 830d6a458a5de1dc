//! `$apply`: data aggregation, as far as Dataverse supports it.
//!
//! Grammar (transformations joined by `/`, applied left to right):
//!
//! ```text
//! apply       = transform *( "/" transform )
//! transform   = "filter(" filter ")"
//!             | "groupby((" property *( "," property ) ")" [ "," aggregate ] ")"
//!             | aggregate
//! aggregate   = "aggregate(" item *( "," item ) ")"
//! item        = "$count as " alias
//!             | property " with " ( "sum" | "average" | "min" | "max" | "countdistinct" ) " as " alias
//! ```
//!
//! Filters must come before the grouping; at most one `groupby` or `aggregate`. Dataverse does
//! not group by date-time columns, and sums and averages only numbers.

use std::collections::HashMap;
use std::sync::Arc;

use super::ast::{Hop, PropertyRef, Table};
use super::{filter, Expr, QueryError};
use crate::metadata::{AttributeType, Catalog, Entity};
use crate::schema::{navigations, Target};

/// An aggregate function of `$apply` (and of FetchXML's `aggregate=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFn {
    /// `$count`: the number of rows.
    Count,
    /// The number of non-null values of a column (FetchXML `countcolumn`).
    CountColumn,
    CountDistinct,
    Sum,
    Average,
    Min,
    Max,
}

impl AggregateFn {
    fn parse(word: &str) -> Option<AggregateFn> {
        Some(match word {
            "sum" => AggregateFn::Sum,
            "average" => AggregateFn::Average,
            "min" => AggregateFn::Min,
            "max" => AggregateFn::Max,
            "countdistinct" => AggregateFn::CountDistinct,
            _ => return None,
        })
    }

    /// Whether the function aggregates columns of this type: sums and averages take numbers,
    /// minimums and maximums numbers and dates, counts anything. FetchXML follows the same rule.
    pub fn applies_to(self, attribute_type: AttributeType) -> bool {
        let numeric = matches!(
            attribute_type,
            AttributeType::Integer | AttributeType::BigInt
        );
        match self {
            AggregateFn::Sum | AggregateFn::Average => numeric,
            AggregateFn::Min | AggregateFn::Max => {
                numeric || attribute_type == AttributeType::DateTime
            }
            AggregateFn::Count | AggregateFn::CountColumn | AggregateFn::CountDistinct => true,
        }
    }
}

/// One aggregated value: a function, its column (none for `$count`), and the alias it is
/// returned under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub function: AggregateFn,
    pub prop: Option<PropertyRef>,
    pub alias: String,
}

/// A parsed `$apply`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Apply {
    pub filter: Option<Expr>,
    /// Each bound against its table: this one, or the target of the lookup of the same
    /// position in `group_through`.
    pub group_by: Vec<PropertyRef>,
    /// Per group, the lookup crossed (`groupby((msdyn_liveworkitemid/subject))`), if any.
    pub group_through: Vec<Option<Hop>>,
    pub aggregates: Vec<Aggregate>,
}

fn invalid(reason: impl Into<String>) -> QueryError {
    QueryError::InvalidApply {
        reason: reason.into(),
    }
}

/// Parses and binds a `$apply` value; its `filter()` takes no relationship paths.
pub fn parse(
    entity: &Entity,
    text: &str,
    aliases: &HashMap<String, String>,
) -> Result<Apply, QueryError> {
    parse_with(None, entity, text, aliases)
}

/// [`parse`], with lookup paths and lambdas in `filter()` resolved in `catalog`.
pub fn parse_in(
    catalog: &Catalog,
    entity: &Entity,
    text: &str,
    aliases: &HashMap<String, String>,
) -> Result<Apply, QueryError> {
    parse_with(Some(catalog), entity, text, aliases)
}

fn parse_with(
    catalog: Option<&Catalog>,
    entity: &Entity,
    text: &str,
    aliases: &HashMap<String, String>,
) -> Result<Apply, QueryError> {
    let mut apply = Apply::default();
    let mut grouped = false;
    for step in split_top_level(text, '/')? {
        let step = step.trim();
        if let Some(inner) = call_body(step, "filter") {
            if grouped {
                return Err(invalid(
                    "filter() must come before groupby() or aggregate().",
                ));
            }
            let expr = match catalog {
                Some(catalog) => filter::parse_in(catalog, entity, inner, aliases)?,
                None => filter::parse(entity, inner, aliases)?,
            };
            apply.filter = Some(match apply.filter.take() {
                Some(previous) => Expr::and(vec![previous, expr]),
                None => expr,
            });
        } else if let Some(inner) = call_body(step, "groupby") {
            if grouped {
                return Err(invalid("Only one groupby() or aggregate() is supported."));
            }
            grouped = true;
            let parts = split_top_level(inner, ',')?;
            let columns = parts
                .first()
                .map(|p| p.trim())
                .and_then(|p| p.strip_prefix('('))
                .and_then(|p| p.strip_suffix(')'))
                .ok_or_else(|| invalid("groupby() takes a parenthesised list of properties."))?;
            for name in split_top_level(columns, ',')? {
                let (hop, column_type, prop) = group_column(catalog, entity, name.trim())?;
                if column_type == AttributeType::DateTime {
                    return Err(invalid(format!(
                        "Grouping by the date-time property '{}' is not supported.",
                        prop.name
                    )));
                }
                apply.group_by.push(prop);
                apply.group_through.push(hop);
            }
            match parts.len() {
                1 => {}
                2 => {
                    let inner = call_body(parts[1].trim(), "aggregate").ok_or_else(|| {
                        invalid("The second argument of groupby() must be aggregate(...).")
                    })?;
                    apply.aggregates = aggregates(entity, inner)?;
                }
                _ => return Err(invalid("groupby() takes at most two arguments.")),
            }
        } else if let Some(inner) = call_body(step, "aggregate") {
            if grouped {
                return Err(invalid("Only one groupby() or aggregate() is supported."));
            }
            grouped = true;
            apply.aggregates = aggregates(entity, inner)?;
        } else {
            return Err(invalid(format!(
                "'{step}' is not a supported transformation: use filter(), groupby() or aggregate()."
            )));
        }
    }
    if !grouped {
        return Err(invalid("$apply needs a groupby() or an aggregate()."));
    }
    Ok(apply)
}

fn aggregates(entity: &Entity, text: &str) -> Result<Vec<Aggregate>, QueryError> {
    let mut out: Vec<Aggregate> = Vec::new();
    for item in split_top_level(text, ',')? {
        let words: Vec<&str> = item.split_whitespace().collect();
        let aggregate = match words.as_slice() {
            ["$count", "as", alias] => Aggregate {
                function: AggregateFn::Count,
                prop: None,
                alias: alias_name(alias)?,
            },
            [name, "with", function, "as", alias] => {
                let function = AggregateFn::parse(function).ok_or_else(|| {
                    invalid(format!("'{function}' is not an aggregation method."))
                })?;
                let prop = bind(entity, name)?;
                let attribute_type = entity.attributes[prop.index].attribute_type;
                if !function.applies_to(attribute_type) {
                    return Err(invalid(format!(
                        "The aggregation method cannot be applied to the property '{name}' of type '{}'.",
                        attribute_type.edm_type()
                    )));
                }
                Aggregate {
                    function,
                    prop: Some(prop),
                    alias: alias_name(alias)?,
                }
            }
            _ => {
                return Err(invalid(format!(
                    "'{}' is not an aggregate expression such as 'x with sum as total' or '$count as count'.",
                    item.trim()
                )))
            }
        };
        if out.iter().any(|a| a.alias == aggregate.alias) {
            return Err(invalid(format!(
                "The alias '{}' is used twice.",
                aggregate.alias
            )));
        }
        out.push(aggregate);
    }
    if out.is_empty() {
        return Err(invalid("aggregate() needs at least one expression."));
    }
    Ok(out)
}

fn alias_name(alias: &str) -> Result<String, QueryError> {
    let valid = alias
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(alias.to_string())
    } else {
        Err(invalid(format!("'{alias}' is not a valid alias.")))
    }
}

/// A `groupby` column: a property of `entity`, or `lookup/property` of the lookup's one
/// target table (one hop, as Dataverse documents it).
fn group_column(
    catalog: Option<&Catalog>,
    entity: &Entity,
    name: &str,
) -> Result<(Option<Hop>, AttributeType, PropertyRef), QueryError> {
    let Some((navigation, column)) = name.split_once('/') else {
        let prop = bind(entity, name)?;
        return Ok((None, entity.attributes[prop.index].attribute_type, prop));
    };
    let unsupported = || QueryError::Unsupported {
        what: format!("Grouping by the navigation path '{name}'"),
    };
    let catalog = catalog.ok_or_else(unsupported)?;
    let found = navigations(catalog, entity)
        .into_iter()
        .find(|n| n.name == navigation)
        .ok_or_else(|| QueryError::UnknownProperty {
            name: navigation.to_string(),
            type_name: entity.edm_type_name(),
        })?;
    let (Target::Entity(target), Some(lookup)) =
        (found.target, entity.position(&found.attribute.logical_name))
    else {
        return Err(unsupported());
    };
    let target = catalog
        .entity(&target.logical_name)
        .ok_or_else(unsupported)?;
    if column.contains('/') {
        return Err(unsupported());
    }
    let prop = bind(target, column)?;
    let hop = Hop {
        lookup: PropertyRef {
            index: lookup,
            name: navigation.to_string(),
        },
        target: Table(Arc::clone(target)),
    };
    let column_type = target.attributes[prop.index].attribute_type;
    Ok((Some(hop), column_type, prop))
}

fn bind(entity: &Entity, name: &str) -> Result<PropertyRef, QueryError> {
    entity
        .property_position(name)
        .map(|index| PropertyRef {
            index,
            name: name.to_string(),
        })
        .ok_or_else(|| QueryError::UnknownProperty {
            name: name.to_string(),
            type_name: entity.edm_type_name(),
        })
}

/// `name(inner)` → `inner`.
fn call_body<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.strip_prefix(name)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

/// Splits on `separator` outside parentheses and quotes; refuses unbalanced text.
fn split_top_level(text: &str, separator: char) -> Result<Vec<&str>, QueryError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => in_quote = !in_quote,
            '(' if !in_quote => depth += 1,
            ')' if !in_quote => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| invalid("The parentheses of $apply do not balance."))?
            }
            c if c == separator && !in_quote && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth != 0 || in_quote {
        return Err(invalid(
            "The parentheses or quotes of $apply do not balance.",
        ));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Catalog;

    fn parse_ctx(text: &str) -> Result<Apply, QueryError> {
        let catalog = Catalog::builtin().unwrap();
        let entity = catalog.entity("msdyn_smsengagementctx").unwrap();
        parse(entity, text, &HashMap::new())
    }

    #[test]
    fn groupby_with_aggregates() {
        let apply = parse_ctx(
            "filter(statecode eq 0)/groupby((statuscode,_ownerid_value),aggregate($count as count,importsequencenumber with max as top))",
        )
        .unwrap();
        assert_eq!(apply.filter.unwrap().to_string(), "statecode eq 0");
        let names: Vec<&str> = apply.group_by.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["statuscode", "_ownerid_value"]);
        assert_eq!(apply.aggregates.len(), 2);
        assert_eq!(apply.aggregates[0].function, AggregateFn::Count);
        assert_eq!(apply.aggregates[1].function, AggregateFn::Max);
        assert_eq!(apply.aggregates[1].alias, "top");
    }

    #[test]
    fn plain_aggregate_and_groupby() {
        assert!(parse_ctx("aggregate(msdyn_name with countdistinct as names)").is_ok());
        assert!(parse_ctx("groupby((msdyn_smsprovider))").is_ok());
    }

    #[test]
    fn refusals() {
        for (text, part) in [
            ("groupby((createdon))", "date-time"),
            ("aggregate(msdyn_name with sum as s)", "cannot be applied"),
            ("aggregate($count as c, $count as c)", "used twice"),
            ("aggregate(statecode with median as m)", "'median'"),
            ("groupby((statecode))/filter(statecode eq 0)", "before"),
            ("filter(statecode eq 0)", "needs a groupby"),
            ("groupby((nope))", "'nope'"),
            ("groupby((statecode)", "balance"),
            ("aggregate($count as 1x)", "valid alias"),
            ("compute(x)", "not a supported"),
        ] {
            let error = parse_ctx(text).unwrap_err().to_string();
            assert!(error.contains(part), "{text}: {error}");
        }
    }
}
