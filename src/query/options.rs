//! The system query options of a RetrieveMultiple or Retrieve request, parsed and bound.
//!
//! [`QueryOptions::parse`] takes the decoded `(name, value)` pairs of the query string. It
//! reads `$select`, `$filter`, `$orderby`, `$top`, `$count`, `$expand`, `$apply` and
//! `$skiptoken` (read back against `$orderby` into a typed cursor); collects parameter aliases
//! (`@p1`) for `$filter` and `$apply`; rejects `$skip` and every other `$`-option; and leaves
//! other names (such as `fetchXml`) to the caller.

use std::collections::HashMap;

use super::apply::{self, Apply};
use super::ast::{Expr, PropertyRef};
use super::error::QueryError;
use super::filter;
use super::lexer::syntax;
use super::skiptoken::{parse_skip_token, Cursor};
use super::MAX_OPTION_LENGTH;
use crate::metadata::{Catalog, Entity};

/// One `$orderby` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub prop: PropertyRef,
    pub descending: bool,
}

/// The `$select` inside one `$expand` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandSelect {
    /// Bound against the lookup's single target table; empty means every column.
    Bound(Vec<PropertyRef>),
    /// Kept as written because the lookup has several targets (`ownerid`); empty means every
    /// column.
    Raw(Vec<String>),
}

/// One `$expand` item: `nav`, `nav($select=a,b)` or `nav/$ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expand {
    /// The lookup column; `name` is its navigation property name (its logical name).
    pub navigation: PropertyRef,
    /// The target table when the lookup has exactly one.
    pub target: Option<String>,
    pub select: ExpandSelect,
    /// `nav/$ref`: only the `@odata.id` of the related record.
    pub reference_only: bool,
    /// A collection-valued navigation property (one-to-many): `navigation` is then the lookup
    /// column of `target` that points back at the parent, and `name` the collection's name.
    pub collection: Option<CollectionOptions>,
    /// Nested `$expand` on the related rows.
    pub expand: Vec<Expand>,
}

/// What a collection-valued `$expand` item asks of its rows beyond `$select`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionOptions {
    pub filter: Option<Expr>,
    pub orderby: Vec<OrderBy>,
    pub top: Option<u32>,
}

/// Dataverse's limit on the `$expand` options of one query, nested ones included.
pub const MAX_EXPANDS: usize = 15;

/// The parsed and bound query options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Empty: every column.
    pub select: Vec<PropertyRef>,
    pub filter: Option<Expr>,
    pub orderby: Vec<OrderBy>,
    pub top: Option<u32>,
    pub count: bool,
    pub expand: Vec<Expand>,
    /// `$apply`, bound.
    pub apply: Option<Apply>,
    /// `$skiptoken`, read against `$orderby`.
    pub skiptoken: Option<Cursor>,
}

impl QueryOptions {
    /// Parses the decoded query-string pairs of a request on `entity`. `catalog` supplies the
    /// target tables of `$expand`.
    pub fn parse(
        catalog: &Catalog,
        entity: &Entity,
        pairs: &[(String, String)],
    ) -> Result<QueryOptions, QueryError> {
        let mut aliases = HashMap::new();
        let mut system: Vec<(&str, &str)> = Vec::new();
        for (name, value) in pairs {
            if value.chars().count() > MAX_OPTION_LENGTH {
                return Err(QueryError::TooLong {
                    option: name.clone(),
                    length: value.chars().count(),
                    limit: MAX_OPTION_LENGTH,
                });
            }
            if name.starts_with('@') {
                aliases.insert(name.clone(), value.clone());
            } else if name.starts_with('$') {
                if system.iter().any(|(seen, _)| seen == name) {
                    return Err(QueryError::DuplicateOption { name: name.clone() });
                }
                system.push((name, value));
            }
        }

        let mut options = QueryOptions::default();
        let mut skiptoken = None;
        for (name, value) in system {
            match name {
                "$select" => options.select = parse_select(entity, value)?,
                "$filter" => {
                    options.filter = Some(filter::parse_in(catalog, entity, value, &aliases)?)
                }
                "$orderby" => options.orderby = parse_orderby(entity, value)?,
                "$top" => options.top = Some(parse_top(value)?),
                "$count" => options.count = parse_count(value)?,
                "$expand" => {
                    options.expand = parse_expand(catalog, entity, value)?;
                    let total = count_expands(&options.expand);
                    if total > MAX_EXPANDS {
                        return Err(QueryError::BadCombination {
                            detail: format!(
                                "The query has {total} $expand options; at most {MAX_EXPANDS} are allowed."
                            ),
                        });
                    }
                }
                "$apply" => {
                    options.apply = Some(apply::parse_in(catalog, entity, value, &aliases)?)
                }
                "$skiptoken" => skiptoken = Some(value),
                "$skip" => {
                    return Err(QueryError::Unsupported {
                        what: "The query option '$skip'".into(),
                    })
                }
                _ => {
                    return Err(QueryError::UnknownOption {
                        name: name.to_string(),
                    })
                }
            }
        }
        // The token is read against the order, wherever `$orderby` stands.
        if let Some(token) = skiptoken {
            options.skiptoken = Some(parse_skip_token(entity, &options.orderby, token)?);
        }
        Ok(options)
    }
}

/// `$select=a,b`: EDM property names of `entity`. An empty value selects every column.
pub fn parse_select(entity: &Entity, text: &str) -> Result<Vec<PropertyRef>, QueryError> {
    items(text, ',')?
        .into_iter()
        .map(|(_, name)| bind(entity, name))
        .collect()
}

/// `$orderby=a desc,b`: one or more keys, ascending unless `desc`.
pub fn parse_orderby(entity: &Entity, text: &str) -> Result<Vec<OrderBy>, QueryError> {
    items(text, ',')?
        .into_iter()
        .map(|(position, item)| {
            let mut words = item.split_ascii_whitespace();
            let name = words.next().unwrap_or_default();
            let descending = match words.next() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    let offset = item.find(other).unwrap_or_default();
                    let at = position + item[..offset].chars().count();
                    return Err(syntax(text, at, format!("'{other}'"), "'asc' or 'desc'"));
                }
            };
            if let Some(extra) = words.next() {
                let offset = item.rfind(extra).unwrap_or_default();
                let at = position + item[..offset].chars().count();
                return Err(syntax(text, at, format!("'{extra}'"), "',' or the end"));
            }
            // Dataverse's Web API orders by the table's own columns only (a lookup sorts by
            // its target's primary name); ordering by a related row's column is FetchXML's
            // `order` inside a `link-entity`.
            if name.contains('/') && entity.property_position(name).is_none() {
                return Err(QueryError::Unsupported {
                    what: format!("Ordering by the navigation path '{name}'"),
                });
            }
            Ok(OrderBy {
                prop: bind(entity, name)?,
                descending,
            })
        })
        .collect()
}

/// `$top=N`: a non-negative integer that fits in 32 bits.
pub fn parse_top(text: &str) -> Result<u32, QueryError> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| text.parse::<u32>().ok())
        .flatten()
        .ok_or_else(|| QueryError::InvalidTop {
            value: text.to_string(),
        })
}

/// `$count=true|false`.
pub fn parse_count(text: &str) -> Result<bool, QueryError> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(QueryError::InvalidCount {
            value: text.to_string(),
        }),
    }
}

/// `$expand=nav,nav($select=a,b),nav/$ref`: navigation properties are the logical names of the
/// entity's lookup columns or the collection-valued partners `$metadata` declares on it (which
/// also take `$filter`, `$orderby` and `$top`); both take a nested `$expand`.
pub fn parse_expand(
    catalog: &Catalog,
    entity: &Entity,
    text: &str,
) -> Result<Vec<Expand>, QueryError> {
    items(text, ',')?
        .into_iter()
        .map(|(position, item)| expand_item(catalog, entity, text, position, item))
        .collect()
}

/// Every `$expand` item of a tree, nested ones included.
fn count_expands(items: &[Expand]) -> usize {
    items.iter().map(|e| 1 + count_expands(&e.expand)).sum()
}

fn expand_item(
    catalog: &Catalog,
    entity: &Entity,
    text: &str,
    position: usize,
    item: &str,
) -> Result<Expand, QueryError> {
    let (name, nested, reference_only) = if let Some(name) = item.strip_suffix("/$ref") {
        (name, None, true)
    } else if let Some(open) = item.find('(') {
        if !item.ends_with(')') {
            let at = position + item.chars().count();
            return Err(syntax(text, at, "the end of the item".into(), "')'"));
        }
        (&item[..open], Some(&item[open + 1..item.len() - 1]), false)
    } else {
        (item, None, false)
    };
    let name = name.trim_end();
    let lookup = entity
        .position(name)
        .filter(|&i| entity.attributes[i].attribute_type.is_lookup())
        .filter(|&i| entity.attributes[i].is_stored());
    let (index, target, many) = match lookup {
        Some(index) => {
            let target = match entity.attributes[index].targets.as_slice() {
                [only] => catalog.entity(only),
                _ => None,
            };
            (index, target, false)
        }
        None => {
            let (source, index) = crate::schema::collection_navigation(catalog, entity, name)
                .ok_or_else(|| unknown_property(entity, name))?;
            (index, catalog.entity(&source.logical_name), true)
        }
    };

    let mut select_text = "";
    let mut collection = CollectionOptions::default();
    let mut expand = Vec::new();
    for (_, option) in items(nested.unwrap_or_default(), ';')? {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        match (key.trim(), target) {
            ("$select", _) => select_text = value,
            ("$expand", Some(target)) => expand = parse_expand(catalog, target, value)?,
            ("$filter", Some(target)) if many => {
                collection.filter = Some(filter::parse_in(catalog, target, value, &HashMap::new())?)
            }
            ("$orderby", Some(target)) if many => {
                collection.orderby = parse_orderby(target, value)?
            }
            ("$top", _) if many => collection.top = Some(parse_top(value)?),
            (key, _) => {
                return Err(QueryError::Unsupported {
                    what: format!("The option '{key}' inside $expand"),
                });
            }
        }
    }
    if many && !expand.is_empty() && (!collection.orderby.is_empty() || collection.top.is_some()) {
        return Err(QueryError::BadCombination {
            detail: "$orderby and $top are not supported with a nested $expand of a collection-valued navigation property.".into(),
        });
    }
    if reference_only && many {
        return Err(QueryError::Unsupported {
            what: format!("The option '/$ref' on the collection '{name}' inside $expand"),
        });
    }
    let select = match target {
        Some(target) => ExpandSelect::Bound(parse_select(target, select_text)?),
        None => ExpandSelect::Raw(
            items(select_text, ',')?
                .into_iter()
                .map(|(_, name)| name.to_string())
                .collect(),
        ),
    };
    Ok(Expand {
        navigation: PropertyRef {
            index,
            name: name.to_string(),
        },
        target: target.map(|t| t.logical_name.clone()),
        select,
        reference_only,
        collection: many.then_some(collection),
        expand,
    })
}

/// Binds an EDM property name of `entity`.
pub fn bind(entity: &Entity, name: &str) -> Result<PropertyRef, QueryError> {
    entity
        .property_position(name)
        .map(|index| PropertyRef {
            index,
            name: name.to_string(),
        })
        .ok_or_else(|| unknown_property(entity, name))
}

fn unknown_property(entity: &Entity, name: &str) -> QueryError {
    QueryError::UnknownProperty {
        name: name.to_string(),
        type_name: entity.edm_type_name(),
    }
}

/// Splits `text` at the `separator`s outside parentheses and quotes; returns each item trimmed,
/// with the character offset where it starts. An empty or blank text has no items; an empty
/// item between separators is a syntax error.
fn items(text: &str, separator: char) -> Result<Vec<(usize, &str)>, QueryError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut pieces = Vec::new();
    let (mut depth, mut quoted) = (0usize, false);
    let (mut start_byte, mut start_char) = (0, 0);
    let mut push = |from_byte: usize, from_char: usize, to_byte: usize| {
        let raw = &text[from_byte..to_byte];
        let leading = raw.len() - raw.trim_start().len();
        let at = from_char + raw[..leading].chars().count();
        pieces.push((at, raw.trim()));
    };
    for (position, (byte, c)) in text.char_indices().enumerate() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| syntax(text, position, "')'".into(), "an item"))?;
            }
            c if c == separator && !quoted && depth == 0 => {
                push(start_byte, start_char, byte);
                start_byte = byte + c.len_utf8();
                start_char = position + 1;
            }
            _ => {}
        }
    }
    push(start_byte, start_char, text.len());
    let end = text.chars().count();
    if quoted {
        return Err(QueryError::UnterminatedLiteral {
            position: end,
            text: text.to_string(),
        });
    }
    if depth > 0 {
        return Err(syntax(text, end, "the end of the input".into(), "')'"));
    }
    if let Some((at, _)) = pieces.iter().find(|(_, item)| item.is_empty()) {
        return Err(syntax(text, *at, format!("'{separator}'"), "an item"));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::builtin().expect("the built-in pages import")
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<QueryOptions, QueryError> {
        let catalog = catalog();
        let entity = catalog
            .entity("msdyn_smsengagementctx")
            .expect("seed")
            .clone();
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        QueryOptions::parse(&catalog, &entity, &pairs)
    }

    /// Parses the pairs and prints the options in a compact, canonical form.
    fn check(pairs: &[(&str, &str)], expected: &str) {
        let options = parse(pairs).unwrap_or_else(|e| panic!("{pairs:?} should parse: {e}"));
        let mut out = Vec::new();
        if !options.select.is_empty() {
            let names: Vec<&str> = options.select.iter().map(|p| p.name.as_str()).collect();
            out.push(format!("select={}", names.join(",")));
        }
        if let Some(filter) = &options.filter {
            out.push(format!("filter={filter}"));
        }
        if !options.orderby.is_empty() {
            let keys: Vec<String> = options
                .orderby
                .iter()
                .map(|o| {
                    format!(
                        "{} {}",
                        o.prop.name,
                        if o.descending { "desc" } else { "asc" }
                    )
                })
                .collect();
            out.push(format!("orderby={}", keys.join(",")));
        }
        if let Some(top) = options.top {
            out.push(format!("top={top}"));
        }
        if options.count {
            out.push("count".into());
        }
        for e in &options.expand {
            let select = match &e.select {
                ExpandSelect::Bound(props) => props
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                ExpandSelect::Raw(names) => format!("raw:{}", names.join(",")),
            };
            let target = e.target.as_deref().unwrap_or("*");
            let kind = if e.reference_only { "/$ref" } else { "" };
            out.push(format!(
                "expand={}{kind}->{target}({select})",
                e.navigation.name
            ));
        }
        if let Some(apply) = &options.apply {
            let groups: Vec<&str> = apply.group_by.iter().map(|p| p.name.as_str()).collect();
            out.push(format!("apply=groupby({})", groups.join(",")));
        }
        if let Some(cursor) = &options.skiptoken {
            out.push(format!(
                "skiptoken=page {} after {:?}",
                cursor.page, cursor.keyset
            ));
        }
        assert_eq!(out.join(" | "), expected);
    }

    fn check_error(pairs: &[(&str, &str)], expected: &str) {
        let error = parse(pairs).expect_err("should fail");
        assert_eq!(error.to_string(), expected, "for {pairs:?}");
    }

    #[test]
    fn the_contract_example() {
        check(
            &[
                ("$select", "msdyn_name,createdon"),
                ("$filter", "statecode eq 0 and contains(msdyn_name,'sms')"),
                ("$orderby", "createdon desc"),
                ("$count", "true"),
            ],
            "select=msdyn_name,createdon | filter=statecode eq 0 and contains(msdyn_name,'sms') | orderby=createdon desc | count",
        );
    }

    #[test]
    fn select_binds_edm_property_names() {
        check(
            &[("$select", " msdyn_name , _ownerid_value,statecode")],
            "select=msdyn_name,_ownerid_value,statecode",
        );
        check(&[("$select", "")], "");
        let unknown = |name: &str| {
            format!("Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'.")
        };
        check_error(&[("$select", "msdyn_name,nosuch")], &unknown("nosuch"));
        check_error(&[("$select", "ownerid")], &unknown("ownerid"));
        check_error(
            &[("$select", "msdyn_name,,statecode")],
            "Syntax error at position 11 in 'msdyn_name,,statecode': expected an item, found ','.",
        );
    }

    #[test]
    fn orderby_takes_several_keys() {
        check(
            &[("$orderby", "createdon desc, msdyn_name,statecode asc")],
            "orderby=createdon desc,msdyn_name asc,statecode asc",
        );
        check_error(
            &[("$orderby", "createdon down")],
            "Syntax error at position 10 in 'createdon down': expected 'asc' or 'desc', found 'down'.",
        );
        check_error(
            &[("$orderby", "createdon desc x")],
            "Syntax error at position 15 in 'createdon desc x': expected ',' or the end, found 'x'.",
        );
        check_error(
            &[("$orderby", "nosuch")],
            "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'.",
        );
    }

    #[test]
    fn top_and_count() {
        check(&[("$top", "0"), ("$count", "false")], "top=0");
        check(&[("$top", "5000")], "top=5000");
        for bad in ["-1", "", "1.5", "+3", "abc", "99999999999"] {
            check_error(
                &[("$top", bad)],
                &format!("Invalid value '{bad}' for $top query option found. The $top query option requires a non-negative integer value."),
            );
        }
        check_error(&[("$count", "yes")], "'yes' is not a valid count option.");
    }

    #[test]
    fn expand_binds_single_target_lookups_and_keeps_owner_raw() {
        check(
            &[("$expand", "msdyn_liveworkitemid($select=subject)")],
            "expand=msdyn_liveworkitemid->msdyn_ocliveworkitem(subject)",
        );
        check(
            &[(
                "$expand",
                "msdyn_liveworkitemid($select=subject,activityid),ownerid($select=fullname),createdby",
            )],
            "expand=msdyn_liveworkitemid->msdyn_ocliveworkitem(subject,activityid) | expand=ownerid->*(raw:fullname) | expand=createdby->systemuser()",
        );
        check(
            &[("$expand", "msdyn_liveworkitemid/$ref")],
            "expand=msdyn_liveworkitemid/$ref->msdyn_ocliveworkitem()",
        );
        check_error(
            &[("$expand", "msdyn_liveworkitemid($select=nosuch)")],
            "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.msdyn_ocliveworkitem'.",
        );
        check_error(
            &[("$expand", "msdyn_name")],
            "Could not find a property named 'msdyn_name' on type 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'.",
        );
        check_error(
            &[("$expand", "_ownerid_value")],
            "Could not find a property named '_ownerid_value' on type 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'.",
        );
        check_error(
            &[("$expand", "msdyn_liveworkitemid($filter=subject eq 'x')")],
            "The option '$filter' inside $expand is not supported.",
        );
        check_error(
            &[("$expand", "msdyn_liveworkitemid($select=subject")],
            "Syntax error at position 36 in 'msdyn_liveworkitemid($select=subject': expected ')', found the end of the input.",
        );
        check_error(
            &[("$expand", "msdyn_liveworkitemid)")],
            "Syntax error at position 20 in 'msdyn_liveworkitemid)': expected an item, found ')'.",
        );
        check_error(
            &[("$expand", "msdyn_liveworkitemid($select=subject)x")],
            "Syntax error at position 38 in 'msdyn_liveworkitemid($select=subject)x': expected ')', found the end of the item.",
        );
    }

    #[test]
    fn aliases_reach_the_filter_wherever_they_are() {
        check(
            &[
                ("$filter", "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)"),
                ("@p1", "'statuscode'"),
                ("@p2", "[\"1\",\"2\"]"),
            ],
            "filter=Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=[\"1\",\"2\"])",
        );
    }

    #[test]
    fn other_options() {
        check(
            &[
                ("$apply", "groupby((statuscode))"),
                ("$skiptoken", "<cookie pagenumber=\"2\" pagingcookie=\"%3Ccookie%20page%3D%221%22%3E%3Cmsdyn_smsengagementctxid%20last%3D%22%7B4026BE43-6B69-E111-8F65-78E7D1620F5E%7D%22%20first%3D%22%7B4026BE43-6B69-E111-8F65-78E7D1620F5E%7D%22%20%2F%3E%3C%2Fcookie%3E\" istracking=\"False\" />"),
                ("fetchXml", "<fetch/>"),
            ],
            "apply=groupby(statuscode) | skiptoken=page 2 after [Guid(4026be43-6b69-e111-8f65-78e7d1620f5e)]",
        );
        // `$apply` and `$skiptoken` are read here, not kept as text for later layers.
        check_error(
            &[("$skiptoken", "<cookie/>")],
            "The $skiptoken '<cookie/>' is not valid.",
        );
        assert!(matches!(
            parse(&[("$apply", "groupby(")]),
            Err(QueryError::InvalidApply { .. })
        ));
        check_error(
            &[("$skip", "10")],
            "The query option '$skip' is not supported.",
        );
        check_error(
            &[("$search", "x")],
            "The query parameter $search is not supported",
        );
        check_error(
            &[("$Top", "1")],
            "The query parameter $Top is not supported",
        );
        check_error(
            &[("$top", "1"), ("$top", "2")],
            "Query option '$top' was specified more than once, but it must be specified at most once.",
        );
        let error = parse(&[("$skip", "1")]).unwrap_err();
        assert_eq!(error.code(), "0x0");
    }

    #[test]
    fn long_values_are_refused() {
        let long = "a".repeat(MAX_OPTION_LENGTH + 1);
        let error = parse(&[("$select", &long)]).unwrap_err();
        assert_eq!(error.code(), "0x80040203");
        assert!(error.to_string().starts_with("The value of '$select' is"));
    }

    #[test]
    fn unbalanced_and_non_ascii_inputs_return_errors() {
        for (name, value) in [
            ("$select", "é"),
            ("$select", "'"),
            ("$orderby", "(createdon"),
            ("$orderby", "createdon,"),
            ("$expand", "(((("),
            ("$expand", "))"),
            ("$expand", "msdyn_liveworkitemid(;)"),
            ("$expand", "ownerid($select=a,,b)"),
            (
                "$expand",
                "msdyn_liveworkitemid($select=subject;$select=x)extra",
            ),
            ("$filter", "(((("),
            ("$top", "٣"),
        ] {
            assert!(
                parse(&[(name, value)]).is_err(),
                "{name}={value:?} should fail"
            );
        }
    }
}
