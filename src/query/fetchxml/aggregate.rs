//! Aggregate queries: the aggregate function words and the aggregate columns and order of a bound query.

use super::*;

/// The FetchXML spelling of an aggregate function (`countcolumn` with `distinct='true'` is
/// [`AggregateFn::CountDistinct`]).
pub(super) fn aggregate_function(word: &str) -> Option<AggregateFn> {
    Some(match word {
        "count" => AggregateFn::Count,
        "countcolumn" => AggregateFn::CountColumn,
        "sum" => AggregateFn::Sum,
        "avg" => AggregateFn::Average,
        "min" => AggregateFn::Min,
        "max" => AggregateFn::Max,
        _ => return None,
    })
}

pub(super) fn aggregate_word(function: AggregateFn) -> &'static str {
    match function {
        AggregateFn::Count => "count",
        AggregateFn::CountColumn | AggregateFn::CountDistinct => "countcolumn",
        AggregateFn::Sum => "sum",
        AggregateFn::Average => "avg",
        AggregateFn::Min => "min",
        AggregateFn::Max => "max",
    }
}

/// The aggregate columns and order of the root body and each link body (`Some(i)`).
pub(super) fn aggregate_of(
    bodies: &[(Option<usize>, &Body)],
    limit: Option<u32>,
) -> Result<Aggregate, QueryError> {
    let mut columns: Vec<AggregateColumn> = Vec::new();
    let mut order = Vec::new();
    for (link, body) in bodies {
        if body.all_attributes {
            return Err(invalid_fetch(
                "all-attributes can not be specified if an aggregate operation is requested."
                    .into(),
            ));
        }
        for attribute in &body.attributes {
            columns.push(aggregate_column(*link, attribute)?);
        }
        for key in &body.orders {
            match &key.alias {
                Some(alias) => order.push(AggregateOrder {
                    alias: alias.clone(),
                    descending: key.descending,
                }),
                None => {
                    return Err(invalid_fetch(
                        "An order in an aggregate query names an alias, not an attribute.".into(),
                    ))
                }
            }
        }
    }
    for (i, column) in columns.iter().enumerate() {
        if columns[..i].iter().any(|c| c.alias == column.alias) {
            return Err(invalid_fetch(format!(
                "The alias '{}' is used more than once.",
                column.alias
            )));
        }
    }
    if let Some(key) = order
        .iter()
        .find(|key| !columns.iter().any(|c| c.alias == key.alias))
    {
        return Err(invalid_fetch(format!(
            "The order alias '{}' is not the alias of an attribute of the query.",
            key.alias
        )));
    }
    if columns.is_empty() {
        return Err(invalid_fetch(
            "An aggregate query needs at least one attribute with aggregate or groupby.".into(),
        ));
    }
    Ok(Aggregate {
        columns,
        order,
        limit,
    })
}

pub(super) fn aggregate_column(
    link: Option<usize>,
    attribute: &BoundAttribute,
) -> Result<AggregateColumn, QueryError> {
    use AttributeType as T;
    let name = &attribute.name;
    let neither = || {
        invalid_fetch(format!(
            "Attribute can not be specified if an aggregate operation is requested: '{name}' has neither aggregate nor groupby."
        ))
    };
    let (Some(prop), Some(column_type)) = (attribute.prop.clone(), attribute.column_type) else {
        return Err(neither());
    };
    let kind = match (attribute.aggregate, attribute.groupby) {
        (Some(_), true) => {
            return Err(invalid_fetch(format!(
                "The attribute '{name}' has both aggregate and groupby."
            )))
        }
        (None, false) => return Err(neither()),
        (Some(function), false) => {
            if attribute.dategrouping.is_some() {
                return Err(invalid_fetch(format!(
                    "The attribute '{name}': dategrouping applies to groupby attributes only."
                )));
            }
            if attribute.distinct && function != AggregateFn::CountColumn {
                return Err(invalid_fetch(format!(
                    "The attribute '{name}': distinct applies to the countcolumn aggregate only."
                )));
            }
            AggregateKind::Function {
                function: if attribute.distinct {
                    AggregateFn::CountDistinct
                } else {
                    function
                },
            }
        }
        (None, true) => {
            if attribute.distinct {
                return Err(invalid_fetch(format!(
                    "The attribute '{name}': distinct applies to the countcolumn aggregate only."
                )));
            }
            AggregateKind::GroupBy {
                date: attribute.dategrouping,
            }
        }
    };
    match kind {
        AggregateKind::Function { function } if !function.applies_to(column_type) => {
            let columns = match function {
                AggregateFn::Sum | AggregateFn::Average => "number columns",
                _ => "number and date columns",
            };
            return Err(invalid_fetch(format!(
                "The aggregate '{}' applies to {columns} only; '{name}' is not one.",
                aggregate_word(function)
            )));
        }
        AggregateKind::GroupBy { date: None } if column_type == T::DateTime => {
            return Err(invalid_fetch(format!(
                "Grouping by the date and time column '{name}' needs a dategrouping (day, week, month, quarter or year)."
            )))
        }
        AggregateKind::GroupBy { date: Some(_) } if column_type != T::DateTime => {
            return Err(invalid_fetch(format!(
                "The attribute '{name}': dategrouping applies to date and time columns only."
            )))
        }
        _ => {}
    }
    let alias = match (&attribute.alias, kind) {
        (Some(alias), _) => alias.clone(),
        (None, AggregateKind::GroupBy { .. }) => name.clone(),
        (None, AggregateKind::Function { .. }) => {
            return Err(invalid_fetch(format!(
                "The aggregate attribute '{name}' needs an alias."
            )))
        }
    };
    check_alias(&alias)?;
    Ok(AggregateColumn {
        alias,
        link,
        prop,
        kind,
    })
}
