//! Binding: element tree → `FetchQuery`, checked against the FetchXML schema and the metadata.

use super::*;

pub(super) fn schema(element: &Element, what: String) -> QueryError {
    QueryError::FetchXmlSchema {
        detail: format!(
            "{what} (element '{}' at position {}).",
            element.name, element.position
        ),
    }
}

pub(super) fn invalid_fetch(detail: String) -> QueryError {
    QueryError::InvalidFetch { detail }
}

pub(super) fn unsupported(what: String) -> QueryError {
    QueryError::Unsupported { what }
}

/// The attributes of one element, checked against the names the schema allows there.
pub(super) struct Attrs<'e> {
    pub(super) element: &'e Element,
}

impl<'e> Attrs<'e> {
    pub(super) fn new(element: &'e Element, allowed: &[&str]) -> Result<Self, QueryError> {
        for (name, _) in &element.attributes {
            let declaration = name == "xmlns" || name.starts_with("xmlns:");
            if !declaration && !allowed.contains(&name.as_str()) {
                return Err(schema(
                    element,
                    format!("The '{name}' attribute is not declared"),
                ));
            }
        }
        Ok(Attrs { element })
    }

    pub(super) fn get(&self, name: &str) -> Option<&'e str> {
        self.element.attribute(name)
    }

    pub(super) fn required(&self, name: &str) -> Result<&'e str, QueryError> {
        self.get(name).ok_or_else(|| {
            schema(
                self.element,
                format!("The required attribute '{name}' is missing"),
            )
        })
    }

    pub(super) fn invalid_value(&self, name: &str, value: &str, datatype: &str) -> QueryError {
        schema(
            self.element,
            format!(
                "The '{name}' attribute is invalid - The value '{value}' is invalid according to its datatype '{datatype}'"
            ),
        )
    }

    /// An XML Schema boolean (`true`, `false`, `1`, `0`); `false` when absent.
    pub(super) fn boolean(&self, name: &str) -> Result<bool, QueryError> {
        match self.get(name).map(str::trim) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(self.invalid_value(name, other, "Boolean")),
        }
    }

    /// A positive integer, at most `max`.
    pub(super) fn positive(&self, name: &str, max: u32) -> Result<Option<u32>, QueryError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let number: i64 = text
            .trim()
            .parse()
            .map_err(|_| self.invalid_value(name, text, "Int32"))?;
        if number < 1 {
            return Err(invalid_fetch(format!(
                "The '{name}' attribute must be greater than zero; it is {number}."
            )));
        }
        if number > i64::from(max) {
            return Err(invalid_fetch(format!(
                "The '{name}' attribute is {number}; it cannot exceed {max}."
            )));
        }
        Ok(u32::try_from(number).ok())
    }
}

/// Refuses character data in an element that has none.
pub(super) fn no_text(element: &Element) -> Result<(), QueryError> {
    if element.text.trim().is_empty() {
        Ok(())
    } else {
        Err(schema(element, "The element cannot contain text".into()))
    }
}

pub(super) fn invalid_child(parent: &Element, child: &Element) -> QueryError {
    schema(
        parent,
        format!(
            "The element '{}' has invalid child element '{}'",
            parent.name, child.name
        ),
    )
}

/// An `<attribute>` element, bound.
pub(super) struct BoundAttribute {
    /// `None` for a column that is read but not selected (`owneridtype`).
    pub(super) prop: Option<PropertyRef>,
    /// The type of the column `prop` refers to.
    pub(super) column_type: Option<AttributeType>,
    pub(super) name: String,
    pub(super) alias: Option<String>,
    pub(super) aggregate: Option<AggregateFn>,
    pub(super) groupby: bool,
    pub(super) dategrouping: Option<DateGrouping>,
    pub(super) distinct: bool,
}

/// An `<order>` element, bound.
pub(super) struct BoundOrder {
    pub(super) prop: Option<PropertyRef>,
    pub(super) alias: Option<String>,
    pub(super) descending: bool,
}

/// The children an `entity` and a `link-entity` share, bound against their table.
pub(super) struct Body<'e> {
    pub(super) attributes: Vec<BoundAttribute>,
    pub(super) all_attributes: bool,
    pub(super) orders: Vec<BoundOrder>,
    pub(super) filter: Option<Expr>,
    pub(super) links: Vec<&'e Element>,
}

pub(super) struct Binder<'c> {
    pub(super) catalog: &'c Catalog,
    /// The root's many-to-one join links, found before its filter is bound, so that a
    /// condition's `entityname` can name one: (root table, alias, linked table, lookup, outer).
    pub(super) joined: std::cell::RefCell<Vec<JoinedLink>>,
}

/// A join link of the root, as a condition's `entityname` refers to it.
pub(super) struct JoinedLink {
    root: String,
    alias: String,
    entity: Arc<Entity>,
    lookup: usize,
    outer: bool,
    /// A one-to-many join link (`lookup` is then the root's key).
    one_to_many: bool,
}

impl Binder<'_> {
    pub(super) fn fetch(&self, root: &Element) -> Result<FetchQuery, QueryError> {
        if root.name != "fetch" {
            return Err(QueryError::InvalidXml {
                detail: format!(
                    "The root element is '{}'; a FetchXML query is a 'fetch' element.",
                    root.name
                ),
            });
        }
        let a = Attrs::new(
            root,
            &[
                "top",
                "count",
                "page",
                "paging-cookie",
                "distinct",
                "aggregate",
                "aggregatelimit",
                "returntotalrecordcount",
                "datasource",
                "no-lock",
                "mapping",
                "version",
                "output-format",
                "latematerialize",
                "options",
                "useraworderby",
                "min-active-row-version",
                "utc-offset",
            ],
        )?;
        no_text(root)?;
        let top = a.positive("top", MAX_PAGE_SIZE)?;
        let count = a.positive("count", MAX_PAGE_SIZE)?;
        let page = a.positive("page", u32::MAX)?;
        if let (Some(top), true) = (top, count.is_some() || page.is_some()) {
            return Err(invalid_fetch(format!(
                "The Top.Count = {top} can't be specified with pagingInfo."
            )));
        }
        let aggregate = a.boolean("aggregate")?;
        let aggregate_limit = a.positive("aggregatelimit", MAX_AGGREGATE_LIMIT)?;
        if aggregate_limit.is_some() && !aggregate {
            return Err(invalid_fetch(
                "The 'aggregatelimit' attribute applies to aggregate queries only.".into(),
            ));
        }
        match a.get("datasource") {
            None | Some("live") => {}
            Some(other) => {
                return Err(unsupported(format!("The datasource '{other}'")));
            }
        }

        let mut entities = root.children.iter();
        let entity_element = match (entities.next(), entities.next()) {
            (Some(only), None) if only.name == "entity" => only,
            (Some(child), None) => return Err(invalid_child(root, child)),
            (Some(_), Some(second)) => return Err(invalid_child(root, second)),
            (None, _) => {
                return Err(QueryError::InvalidXml {
                    detail: "The 'fetch' element has no 'entity' element.".into(),
                })
            }
        };
        let ea = Attrs::new(
            entity_element,
            &["name", "enableprefiltering", "prefilterparametername"],
        )?;
        let entity = self.entity(ea.required("name")?)?;
        self.find_joined_links(&entity, entity_element);
        let body = self.body(&entity, entity_element, true)?;

        let mut links = Vec::new();
        let mut link_bodies = Vec::new();
        for element in &body.links {
            let (link, link_body) = self.link(&entity, element, &links)?;
            links.push(link);
            link_bodies.push(link_body);
        }

        let mut query = FetchQuery {
            entity: entity.clone(),
            columns: None,
            filter: body.filter.clone(),
            order: Vec::new(),
            top,
            count,
            page,
            paging_cookie: a.get("paging-cookie").map(str::to_string),
            distinct: a.boolean("distinct")?,
            return_total_record_count: a.boolean("returntotalrecordcount")?,
            links,
            aggregate: None,
        };
        if aggregate {
            let mut bodies = vec![(None, &body)];
            bodies.extend(link_bodies.iter().enumerate().map(|(i, b)| (Some(i), b)));
            query.aggregate = Some(aggregate_of(&bodies, aggregate_limit)?);
            query.columns = Some(Vec::new());
            for link in &mut query.links {
                link.columns = Some(Vec::new());
            }
        } else {
            query.columns = plain_columns(&body)?;
            query.order = plain_order(&body)?;
            for (link, link_body) in query.links.iter_mut().zip(&link_bodies) {
                link.columns = match plain_columns(link_body)? {
                    None if link_body.all_attributes => None,
                    None => Some(Vec::new()),
                    some => some,
                };
                link.order = plain_order(link_body)?;
            }
        }
        let crossed = query.filter.as_ref().map_or(0, Expr::relationship_count)
            + query.links.len()
            + query
                .links
                .iter()
                .filter_map(|l| l.filter.as_ref())
                .map(Expr::relationship_count)
                .sum::<usize>();
        super::super::filter::check_relationships(crossed)?;
        Ok(query)
    }

    pub(super) fn entity(&self, name: &str) -> Result<Arc<Entity>, QueryError> {
        self.catalog
            .entity(name)
            .cloned()
            .ok_or_else(|| QueryError::UnknownEntity {
                name: name.to_string(),
            })
    }

    /// The children of an `entity` (`root`) or a `link-entity`.
    pub(super) fn body<'e>(
        &self,
        entity: &Entity,
        element: &'e Element,
        root: bool,
    ) -> Result<Body<'e>, QueryError> {
        no_text(element)?;
        let mut body = Body {
            attributes: Vec::new(),
            all_attributes: false,
            orders: Vec::new(),
            filter: None,
            links: Vec::new(),
        };
        let mut filters = Vec::new();
        for child in &element.children {
            match child.name.as_str() {
                "attribute" => body.attributes.push(self.attribute(entity, child)?),
                "all-attributes" => {
                    Attrs::new(child, &[])?;
                    no_text(child)?;
                    if let Some(grandchild) = child.children.first() {
                        return Err(invalid_child(child, grandchild));
                    }
                    body.all_attributes = true;
                }
                "order" => body.orders.push(self.order(entity, child)?),
                "filter" => filters.extend(self.filter(entity, child)?),
                "link-entity" if root && is_filter_link(child) => {
                    filters.push(self.link_filter(entity, child)?)
                }
                "link-entity" if root => body.links.push(child),
                "link-entity" => {
                    return Err(unsupported("A link-entity inside a link-entity".into()))
                }
                _ => return Err(invalid_child(element, child)),
            }
        }
        if !filters.is_empty() {
            body.filter = Some(Expr::and(filters));
        }
        Ok(body)
    }

    /// Records the join links of the root (what `link` accepts; the others fail
    /// there with their own error) under the alias `link` gives them.
    fn find_joined_links(&self, root: &Entity, element: &Element) {
        let mut joined = Vec::new();
        let links = element
            .children
            .iter()
            .filter(|c| c.name == "link-entity" && !is_filter_link(c));
        for child in links {
            let Ok(a) = Attrs::new(child, LINK_ATTRIBUTES) else {
                continue;
            };
            let Some(entity) = a.get("name").and_then(|n| self.entity(n).ok()) else {
                continue;
            };
            let one_to_many = matches!(self.one_to_many(root, &entity, &a), Ok(Some(_)));
            let lookup = match self.many_to_one(root, &entity, &a) {
                Ok(lookup) if !one_to_many => lookup,
                _ if one_to_many => root.primary_id_position(),
                _ => continue,
            };
            let alias = match a.get("alias") {
                Some(alias) => alias.to_string(),
                None => {
                    let same = joined
                        .iter()
                        .filter(|l: &&JoinedLink| l.entity.logical_name == entity.logical_name)
                        .count();
                    format!("{}{}", entity.logical_name, same + 1)
                }
            };
            joined.push(JoinedLink {
                root: root.logical_name.clone(),
                alias,
                one_to_many,
                outer: a.get("link-type") == Some("outer"),
                entity,
                lookup,
            });
        }
        *self.joined.borrow_mut() = joined;
    }

    /// A condition with `entityname`: the same condition on the inner link's table, as a
    /// lookup path from `entity` (the root).
    fn linked_condition(
        &self,
        entity: &Entity,
        element: &Element,
        alias: &str,
    ) -> Result<Expr, QueryError> {
        let found = self
            .joined
            .borrow()
            .iter()
            .find(|l| l.alias == alias && l.root == entity.logical_name)
            .map(|l| (Arc::clone(&l.entity), l.lookup, l.outer, l.one_to_many));
        let Some((target, lookup, outer, one_to_many)) = found else {
            return Err(invalid_fetch(format!(
                "The condition's entityname '{alias}' names no link-entity of '{}'.",
                entity.logical_name
            )));
        };
        if one_to_many {
            return Err(unsupported(format!(
                "A condition on the one-to-many link-entity '{alias}' in the root entity's filter (put it in the link-entity's own filter)"
            )));
        }
        if outer {
            return Err(unsupported(format!(
                "A condition on the outer link-entity '{alias}' in the root entity's filter"
            )));
        }
        let mut plain = element.clone();
        plain.attributes.retain(|(name, _)| name != "entityname");
        let inner = self.condition(&target, &plain)?;
        Ok(Expr::Related {
            lookup: column_ref(entity, lookup),
            target: Table(target),
            inner: Box::new(inner),
        })
    }

    /// The lookup of `root` a many-to-one link joins on (`to`, or the one lookup of `root` to
    /// the linked table); `from`, when given, must be the linked table's primary key.
    fn many_to_one(&self, root: &Entity, entity: &Entity, a: &Attrs) -> Result<usize, QueryError> {
        let points_here = |index: usize| {
            let attribute = &root.attributes[index];
            attribute.attribute_type.is_lookup()
                && attribute.is_stored()
                && attribute.targets.contains(&entity.logical_name)
        };
        let to_index = match a.get("to") {
            Some(to) => {
                let index = root
                    .position(to)
                    .ok_or_else(|| unknown_attribute(root, to))?;
                if !points_here(index) {
                    return Err(unsupported(format!(
                        "A link on '{to}', which is not a lookup of '{}' to '{}',",
                        root.logical_name, entity.logical_name
                    )));
                }
                index
            }
            None => {
                let mut candidates = (0..root.attributes.len()).filter(|&i| points_here(i));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => only,
                    _ => {
                        return Err(invalid_fetch(format!(
                            "The link-entity '{}' needs a 'to' attribute: it must name the one lookup of '{}' it joins on.",
                            entity.logical_name, root.logical_name
                        )))
                    }
                }
            }
        };
        if let Some(from) = a.get("from") {
            let index = entity
                .position(from)
                .ok_or_else(|| unknown_attribute(entity, from))?;
            if index != entity.primary_id_position() {
                return Err(unsupported(format!(
                    "A link to '{from}', which is not the primary key of '{}',",
                    entity.logical_name
                )));
            }
        }
        Ok(to_index)
    }

    /// The lookup of the linked table a one-to-many link joins on: `from` is a lookup of the
    /// linked table to `root`, and `to` (when given) is `root`'s primary key. `None`: the link
    /// is not one-to-many.
    fn one_to_many(
        &self,
        root: &Entity,
        entity: &Entity,
        a: &Attrs,
    ) -> Result<Option<usize>, QueryError> {
        let Some(from) = a.get("from") else {
            return Ok(None);
        };
        let Some(index) = entity.position(from) else {
            return Ok(None);
        };
        let attribute = &entity.attributes[index];
        let to_key = a
            .get("to")
            .is_none_or(|to| root.position(to) == Some(root.primary_id_position()));
        let links_here = attribute.attribute_type.is_lookup()
            && attribute.is_stored()
            && attribute.targets.contains(&root.logical_name);
        Ok((to_key && links_here && index != entity.primary_id_position()).then_some(index))
    }

    /// A `link-entity` of a filter link type (`exists`, `in`, `any`, `not any`, `all`, `not
    /// all`): a condition on `root`'s rows, bound to the same trees as OData's lookup paths
    /// and lambdas. It returns no columns.
    pub(super) fn link_filter(&self, root: &Entity, element: &Element) -> Result<Expr, QueryError> {
        let a = Attrs::new(element, LINK_ATTRIBUTES)?;
        let link_type = a.get("link-type").unwrap_or("inner");
        let entity = self.entity(a.required("name")?)?;
        if let Some(alias) = a.get("alias") {
            check_alias(alias)?;
        }
        let body = self.body(&entity, element, false)?;
        if !body.attributes.is_empty() || body.all_attributes || !body.orders.is_empty() {
            return Err(invalid_fetch(format!(
                "A link-entity of link-type '{link_type}' returns no columns and has no order."
            )));
        }
        let always = Expr::NotNull(column_ref(root, root.primary_id_position()));
        let negated = matches!(link_type, "not any" | "not all");
        let expr = if let Some(child_lookup) = self.one_to_many(root, &entity, &a)? {
            let lambda = |all: bool, inner: Option<Expr>| Expr::Lambda {
                navigation: crate::schema::partner_name(
                    &entity,
                    &entity.attributes[child_lookup],
                    &root.logical_name,
                ),
                all,
                variable: a.get("alias").unwrap_or("x").to_string(),
                child: Table(Arc::clone(&entity)),
                child_lookup,
                inner: inner.map(Box::new),
            };
            match (link_type, body.filter) {
                ("all" | "not all", None) => always,
                ("all" | "not all", Some(filter)) => lambda(true, Some(filter)),
                (_, filter) => lambda(false, filter),
            }
        } else {
            if matches!(link_type, "all" | "not all") {
                return Err(unsupported(format!(
                    "A many-to-one link-entity of link-type '{link_type}'"
                )));
            }
            let to = self.many_to_one(root, &entity, &a)?;
            Expr::Related {
                lookup: column_ref(root, to),
                inner: Box::new(body.filter.unwrap_or_else(|| {
                    Expr::NotNull(column_ref(&entity, entity.primary_id_position()))
                })),
                target: Table(entity),
            }
        };
        Ok(if negated {
            Expr::Not(Box::new(expr))
        } else {
            expr
        })
    }

    /// A `<link-entity>` of `root`; its columns and order are filled in by the caller.
    pub(super) fn link<'e>(
        &self,
        root: &Entity,
        element: &'e Element,
        earlier: &[LinkEntity],
    ) -> Result<(LinkEntity, Body<'e>), QueryError> {
        let a = Attrs::new(element, LINK_ATTRIBUTES)?;
        let entity = self.entity(a.required("name")?)?;
        let outer = match a.get("link-type").unwrap_or("inner") {
            "inner" => false,
            "outer" => true,
            other => {
                return Err(QueryError::InvalidLinkType {
                    link_type: other.to_string(),
                })
            }
        };
        let (from, to, one_to_many) = match self.one_to_many(root, &entity, &a)? {
            Some(child_lookup) => {
                if earlier.iter().any(|l| l.one_to_many) {
                    return Err(unsupported(
                        "A second one-to-many link-entity of link-type 'inner' or 'outer' in one query"
                            .into(),
                    ));
                }
                (
                    column_ref(&entity, child_lookup),
                    column_ref(root, root.primary_id_position()),
                    true,
                )
            }
            None => {
                let to_index = self.many_to_one(root, &entity, &a)?;
                (
                    column_ref(&entity, entity.primary_id_position()),
                    column_ref(root, to_index),
                    false,
                )
            }
        };
        let alias = match a.get("alias") {
            Some(alias) => {
                check_alias(alias)?;
                alias.to_string()
            }
            None => {
                let same_table = earlier
                    .iter()
                    .filter(|l| l.entity.logical_name == entity.logical_name)
                    .count();
                format!("{}{}", entity.logical_name, same_table + 1)
            }
        };
        if earlier.iter().any(|l| l.alias == alias) {
            return Err(invalid_fetch(format!(
                "The link-entity alias '{alias}' is used more than once."
            )));
        }
        let body = self.body(&entity, element, false)?;
        let link = LinkEntity {
            from,
            to,
            one_to_many,
            alias,
            outer,
            columns: None,
            filter: body.filter.clone(),
            order: Vec::new(),
            entity,
        };
        Ok((link, body))
    }

    pub(super) fn attribute(
        &self,
        entity: &Entity,
        element: &Element,
    ) -> Result<BoundAttribute, QueryError> {
        let a = Attrs::new(
            element,
            &[
                "name",
                "alias",
                "aggregate",
                "groupby",
                "dategrouping",
                "distinct",
                "usertimezone",
            ],
        )?;
        no_text(element)?;
        if let Some(child) = element.children.first() {
            return Err(invalid_child(element, child));
        }
        let name = a.required("name")?;
        let aggregate = match a.get("aggregate") {
            None => None,
            Some(text) => Some(
                aggregate_function(text)
                    .ok_or_else(|| a.invalid_value("aggregate", text, "AggregateType"))?,
            ),
        };
        let dategrouping = match a.get("dategrouping") {
            None => None,
            Some(text @ ("fiscal-period" | "fiscal-year")) => {
                return Err(unsupported(format!("The dategrouping '{text}'")))
            }
            Some(text) => Some(
                DateGrouping::parse(text)
                    .ok_or_else(|| a.invalid_value("dategrouping", text, "DateGroupingType"))?,
            ),
        };
        let groupby = a.boolean("groupby")?;
        let distinct = a.boolean("distinct")?;
        let alias = a.get("alias").map(str::to_string);
        let grouped = aggregate.is_some() || groupby || dategrouping.is_some() || distinct;
        let prop = if grouped {
            Some(bind_column(entity, name, "an aggregate")?)
        } else {
            bind_selected(entity, name)?
        };
        Ok(BoundAttribute {
            column_type: prop
                .as_ref()
                .map(|p| entity.attributes[p.index].attribute_type),
            prop,
            name: name.to_string(),
            alias,
            aggregate,
            groupby,
            dategrouping,
            distinct,
        })
    }

    pub(super) fn order(
        &self,
        entity: &Entity,
        element: &Element,
    ) -> Result<BoundOrder, QueryError> {
        let a = Attrs::new(element, &["attribute", "alias", "descending", "entityname"])?;
        no_text(element)?;
        if let Some(child) = element.children.first() {
            return Err(invalid_child(element, child));
        }
        if a.get("entityname").is_some() {
            return Err(unsupported(
                "An order on a linked table's column from the root entity".into(),
            ));
        }
        let descending = a.boolean("descending")?;
        match (a.get("attribute"), a.get("alias")) {
            (Some(name), None) => Ok(BoundOrder {
                prop: Some(bind_column(entity, name, "an order")?),
                alias: None,
                descending,
            }),
            (None, Some(alias)) => Ok(BoundOrder {
                prop: None,
                alias: Some(alias.to_string()),
                descending,
            }),
            (Some(_), Some(_)) => Err(schema(
                element,
                "An order names an attribute or an alias, not both".into(),
            )),
            (None, None) => Err(schema(
                element,
                "The required attribute 'attribute' is missing".into(),
            )),
        }
    }

    /// A `<filter>`: its conditions and nested filters joined by its type; `None` when empty.
    pub(super) fn filter(
        &self,
        entity: &Entity,
        element: &Element,
    ) -> Result<Option<Expr>, QueryError> {
        let a = Attrs::new(
            element,
            &[
                "type",
                "hint",
                "isquickfindfields",
                "overridequickfindrecordlimitenabled",
                "overridequickfindrecordlimitdisabled",
            ],
        )?;
        no_text(element)?;
        let or = match a.get("type").unwrap_or("and") {
            "and" => false,
            "or" => true,
            other => return Err(a.invalid_value("type", other, "filterType")),
        };
        let mut operands = Vec::new();
        for child in &element.children {
            match child.name.as_str() {
                "condition" => operands.push(self.condition(entity, child)?),
                "filter" => operands.extend(self.filter(entity, child)?),
                "link-entity" if is_filter_link(child) => {
                    operands.push(self.link_filter(entity, child)?)
                }
                _ => return Err(invalid_child(element, child)),
            }
        }
        Ok(match (operands.is_empty(), or) {
            (true, _) => None,
            (false, false) => Some(Expr::and(operands)),
            (false, true) => Some(Expr::or(operands)),
        })
    }

    pub(super) fn condition(&self, entity: &Entity, element: &Element) -> Result<Expr, QueryError> {
        let a = Attrs::new(
            element,
            &[
                "attribute",
                "operator",
                "value",
                "valueof",
                "entityname",
                "uiname",
                "uitype",
                "uihidden",
            ],
        )?;
        no_text(element)?;
        if let Some(alias) = a.get("entityname") {
            return self.linked_condition(entity, element, alias);
        }
        let name = a.required("attribute")?;
        let operator = Operator::parse(a.required("operator")?)?;
        let prop = bind_column(entity, name, "a condition")?;
        let attribute = &entity.attributes[prop.index];

        let mut values: Vec<&str> = Vec::new();
        for child in &element.children {
            if child.name != "value" {
                return Err(invalid_child(element, child));
            }
            Attrs::new(child, &["uiname", "uitype"])?;
            if let Some(grandchild) = child.children.first() {
                return Err(invalid_child(child, grandchild));
            }
            values.push(&child.text);
        }
        if let Some(value) = a.get("value") {
            let noise = value.is_empty()
                && (operator.takes_no_value() || (operator.takes_list() && !values.is_empty()));
            if !noise {
                values.insert(0, value);
            }
        }

        let context = ConditionContext {
            entity,
            attribute,
            name,
            operator,
        };
        if let Some(other) = a.get("valueof") {
            let Operator::Compare(op) = operator else {
                return Err(context.invalid(
                    "'valueof' applies to the operators eq, ne, gt, ge, lt and le only.".into(),
                ));
            };
            context.expect_values(&values, 0, "0")?;
            let right = bind_column(entity, other, "a condition")?;
            let (left_type, right_type) = (
                attribute.attribute_type.edm_type(),
                entity.attributes[right.index].attribute_type.edm_type(),
            );
            if left_type != right_type {
                return Err(context.invalid(format!(
                    "'valueof' names '{other}' of type {right_type}; the column is of type {left_type}."
                )));
            }
            return Ok(Expr::ComparePropProp {
                left: prop,
                op,
                right,
            });
        }

        match operator {
            Operator::Compare(op) => {
                context.expect_values(&values, 1, "1")?;
                let value = context.typed(values[0])?;
                Ok(Expr::Compare { prop, op, value })
            }
            Operator::Null | Operator::NotNull => {
                context.expect_values(&values, 0, "0")?;
                Ok(if operator == Operator::Null {
                    Expr::IsNull(prop)
                } else {
                    Expr::NotNull(prop)
                })
            }
            Operator::Like { negated } => {
                context.expect_string_column()?;
                context.expect_values(&values, 1, "1")?;
                let like = Expr::Like {
                    prop,
                    pattern: values[0].to_string(),
                };
                Ok(negate(like, negated))
            }
            Operator::Text { func, negated } => {
                context.expect_string_column()?;
                context.expect_values(&values, 1, "1")?;
                let text = Expr::StringFn {
                    func,
                    prop,
                    value: values[0].to_string(),
                };
                Ok(negate(text, negated))
            }
            Operator::Function(name) => {
                filter::check_function_column(name, attribute).map_err(|reason| {
                    context.invalid(format!(
                        "{} (the column is of type '{}').",
                        reason.trim_end_matches('.'),
                        attribute.attribute_type.name()
                    ))
                })?;
                let values = match name.values() {
                    FnValues::None => {
                        context.expect_values(&values, 0, "0")?;
                        Vec::new()
                    }
                    FnValues::Count => {
                        context.expect_values(&values, 1, "1")?;
                        let count = filter::as_count(Literal::String(values[0].to_string()))
                            .ok_or_else(|| {
                                context.invalid(format!(
                                    "the value '{}' is not a non-negative integer.",
                                    values[0]
                                ))
                            })?;
                        vec![Literal::Int(count)]
                    }
                    FnValues::Date => {
                        context.expect_values(&values, 1, "1")?;
                        let date = filter::as_date(Literal::String(values[0].to_string()))
                            .ok_or_else(|| context.conversion(values[0]))?;
                        vec![date]
                    }
                    FnValues::Range => {
                        context.expect_values(&values, 2, "2")?;
                        values
                            .iter()
                            .map(|v| context.typed(v))
                            .collect::<Result<_, _>>()?
                    }
                    FnValues::List => {
                        if values.is_empty() {
                            return Err(context.count_error("at least 1", 0));
                        }
                        values
                            .iter()
                            .map(|v| context.typed(v))
                            .collect::<Result<_, _>>()?
                    }
                };
                Ok(Expr::QueryFn { name, prop, values })
            }
        }
    }
}

/// What a condition's errors name.
pub(super) struct ConditionContext<'a> {
    pub(super) entity: &'a Entity,
    pub(super) attribute: &'a Attribute,
    pub(super) name: &'a str,
    pub(super) operator: Operator,
}

impl ConditionContext<'_> {
    pub(super) fn invalid(&self, reason: String) -> QueryError {
        QueryError::InvalidCondition {
            entity: self.entity.logical_name.clone(),
            attribute: self.name.to_string(),
            reason,
        }
    }

    pub(super) fn count_error(&self, expected: &'static str, found: usize) -> QueryError {
        QueryError::ConditionValueCount {
            operator: self.operator.sdk_name().to_string(),
            attribute: self.name.to_string(),
            expected,
            found,
        }
    }

    pub(super) fn expect_values(
        &self,
        values: &[&str],
        wanted: usize,
        expected: &'static str,
    ) -> Result<(), QueryError> {
        if values.len() == wanted {
            Ok(())
        } else {
            Err(self.count_error(expected, values.len()))
        }
    }

    pub(super) fn expect_string_column(&self) -> Result<(), QueryError> {
        match self.attribute.attribute_type {
            AttributeType::String | AttributeType::Memo => Ok(()),
            other => Err(self.invalid(format!(
                "the operator {} applies to string columns only (the column is of type '{}').",
                self.operator.sdk_name(),
                other.name()
            ))),
        }
    }

    pub(super) fn conversion(&self, value: &str) -> QueryError {
        QueryError::ConditionValue {
            value: value.to_string(),
            entity: self.entity.logical_name.clone(),
            attribute: self.name.to_string(),
            expected: clr_type(self.attribute.attribute_type),
        }
    }

    /// `value` as a literal of the column's type.
    pub(super) fn typed(&self, value: &str) -> Result<Literal, QueryError> {
        filter::literal_for(self.attribute, value).ok_or_else(|| self.conversion(value))
    }
}

pub(super) fn negate(expr: Expr, negated: bool) -> Expr {
    if negated {
        Expr::Not(Box::new(expr))
    } else {
        expr
    }
}

/// The attributes a `link-entity` may carry.
const LINK_ATTRIBUTES: &[&str] = &[
    "name",
    "from",
    "to",
    "alias",
    "link-type",
    "visible",
    "intersect",
];

/// Whether a `link-entity` is a filter (its `link-type` one of `exists`, `in`, `any`, `not
/// any`, `all`, `not all`) rather than a join that returns columns.
fn is_filter_link(element: &Element) -> bool {
    matches!(
        element.attribute("link-type"),
        Some("exists" | "in" | "any" | "not any" | "all" | "not all")
    )
}

pub(super) fn unknown_attribute(entity: &Entity, name: &str) -> QueryError {
    QueryError::UnknownAttribute {
        entity: entity.logical_name.clone(),
        name: name.to_string(),
    }
}

/// The reference the AST uses for column `index`: its EDM property name.
pub(super) fn column_ref(entity: &Entity, index: usize) -> PropertyRef {
    PropertyRef {
        index,
        name: entity.attributes[index].property_name().to_string(),
    }
}

/// A column a condition, an order or an aggregate names: an EDM property of `entity`. `context`
/// ("a condition") completes the error for a column that is not one.
pub(super) fn bind_column(
    entity: &Entity,
    name: &str,
    context: &str,
) -> Result<PropertyRef, QueryError> {
    let index = entity
        .position(name)
        .ok_or_else(|| unknown_attribute(entity, name))?;
    if !entity.attributes[index].is_edm_property() {
        return Err(unsupported(format!("The column '{name}' in {context}")));
    }
    Ok(column_ref(entity, index))
}

/// A column an `<attribute>` selects: an EDM property, a lookup's name column (which selects
/// the lookup), or another column that is not a property (`owneridtype`: `None`, skipped).
pub(super) fn bind_selected(
    entity: &Entity,
    name: &str,
) -> Result<Option<PropertyRef>, QueryError> {
    let index = entity
        .position(name)
        .ok_or_else(|| unknown_attribute(entity, name))?;
    let attribute = &entity.attributes[index];
    if attribute.is_edm_property() {
        return Ok(Some(column_ref(entity, index)));
    }
    Ok(attribute
        .attribute_of
        .as_deref()
        .and_then(|lookup| entity.position(lookup))
        .filter(|&i| entity.attributes[i].is_edm_property())
        .map(|i| column_ref(entity, i)))
}

/// Aliases are names: a letter or `_`, then letters, digits or `_`.
pub(super) fn check_alias(alias: &str) -> Result<(), QueryError> {
    let mut chars = alias.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(invalid_fetch(format!(
            "Invalid character specified for alias: {alias}. Only characters within the ranges [A-Z], [a-z] or [0-9] or _ are allowed. The first character may only be in the ranges [A-Z], [a-z] or _."
        )))
    }
}

/// The selected columns of a non-aggregate body: `None` for every column.
pub(super) fn plain_columns(body: &Body) -> Result<Option<Vec<PropertyRef>>, QueryError> {
    let mut columns: Vec<PropertyRef> = Vec::new();
    for attribute in &body.attributes {
        if attribute.aggregate.is_some()
            || attribute.groupby
            || attribute.dategrouping.is_some()
            || attribute.distinct
        {
            return Err(invalid_fetch(format!(
                "The attribute '{}' uses aggregate, groupby, dategrouping or distinct, which need aggregate='true' on the fetch element.",
                attribute.name
            )));
        }
        if attribute.alias.is_some() {
            return Err(unsupported(format!(
                "The alias of the attribute '{}' outside an aggregate query",
                attribute.name
            )));
        }
        if let Some(prop) = &attribute.prop {
            if !columns.iter().any(|c| c.index == prop.index) {
                columns.push(prop.clone());
            }
        }
    }
    if body.all_attributes || body.attributes.is_empty() {
        return Ok(None);
    }
    Ok(Some(columns))
}

pub(super) fn plain_order(body: &Body) -> Result<Vec<OrderBy>, QueryError> {
    body.orders
        .iter()
        .map(|order| match &order.prop {
            Some(prop) => Ok(OrderBy {
                prop: prop.clone(),
                descending: order.descending,
            }),
            None => Err(invalid_fetch(
                "An order names an alias only in an aggregate query.".into(),
            )),
        })
        .collect()
}
