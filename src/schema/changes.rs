//! `RetrieveMetadataChanges(Query=@p1)`: tables and their columns chosen by an
//! `EntityQueryExpression`, in the form Microsoft's Python SDK sends it:
//!
//! ```json
//! {"Properties": {"PropertyNames": ["LogicalName", "Attributes"]},
//!  "Criteria": {"Conditions": [{"PropertyName": "LogicalName", "ConditionOperator": "Equals",
//!                               "Value": {"Type": "System.String", "Value": "msdyn_smsengagementctx"}}]},
//!  "AttributeQuery": {"Properties": {"PropertyNames": ["LogicalName", "MaxLength"]}, "Criteria": ...}}
//! ```
//!
//! Criteria (`Equals`, `NotEquals`, `GreaterThan`, `LessThan`, `In`, `NotIn`, joined by
//! `FilterOperator` `And`/`Or`, nested `Filters`) become the same [`Filter`] as `$filter`.
//! The metadata of a running server never changes, so there is no version to compare:
//! `ClientVersionStamp` and the relationship and key queries are refused, not ignored.

use serde_json::{json, Map, Value};

use super::definitions::{
    all_attribute_properties as declared_attribute_properties, entity_object, entity_shape,
    typed_attributes,
};
use super::filter::{Filter, Operand, Shape};
use super::SchemaError;
use crate::metadata::Catalog;
use crate::query::{CmpOp, Literal};

const NAME: &str = "RetrieveMetadataChanges";

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataChangesRequest {
    entity_filter: Option<Filter>,
    entity_properties: Option<Vec<String>>,
    attribute_filter: Option<Filter>,
    attribute_properties: Option<Vec<String>>,
}

/// Reads `Query=@p1` (the alias resolved from the query string) into a request.
pub fn parse_metadata_changes(
    arguments: &str,
    query: &[(String, String)],
) -> Result<MetadataChangesRequest, SchemaError> {
    let mut expression = None;
    for argument in arguments.split(',').filter(|a| !a.trim().is_empty()) {
        let (name, value) = argument
            .split_once('=')
            .ok_or_else(|| bad(&format!("The parameter '{argument}' has no value.")))?;
        let value = match value.trim().strip_prefix('@') {
            Some(alias) => query
                .iter()
                .find(|(k, _)| k.strip_prefix('@') == Some(alias))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| bad(&format!("The parameter alias '@{alias}' has no value.")))?,
            None => value.to_string(),
        };
        match name.trim() {
            "Query" => expression = Some(value),
            other => {
                return Err(bad(&format!(
                    "The parameter '{other}' of {NAME} is not supported."
                )))
            }
        }
    }
    let text = expression.ok_or_else(|| bad(&format!("{NAME} needs the parameter 'Query'.")))?;
    let query: Value = serde_json::from_str(&text)
        .map_err(|e| bad(&format!("The parameter 'Query' is not valid JSON: {e}")))?;
    let object = query
        .as_object()
        .ok_or_else(|| bad("The parameter 'Query' is not an EntityQueryExpression."))?;
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "Criteria" | "Properties" | "AttributeQuery" | "LabelQuery" | "@odata.type"
        ) {
            return Err(bad(&format!(
                "The query member '{key}' is not supported by this server."
            )));
        }
    }
    let entity_shape = entity_shape();
    let attribute_names = all_attribute_properties();
    let attribute_shape = Shape {
        type_name: "Microsoft.Dynamics.CRM.AttributeMetadata",
        properties: &attribute_names,
        navigations: &[],
    };
    let attribute_query = object.get("AttributeQuery");
    Ok(MetadataChangesRequest {
        entity_filter: criteria(object.get("Criteria"), &entity_shape)?,
        entity_properties: properties(object.get("Properties"), &entity_shape, &["Attributes"])?,
        attribute_filter: criteria(
            attribute_query.and_then(|q| q.get("Criteria")),
            &attribute_shape,
        )?,
        attribute_properties: properties(
            attribute_query.and_then(|q| q.get("Properties")),
            &attribute_shape,
            &[],
        )?,
    })
}

fn bad(message: &str) -> SchemaError {
    SchemaError::BadQuery(message.to_string())
}

/// Every property any attribute metadata type declares.
fn all_attribute_properties() -> Vec<&'static str> {
    let mut names = declared_attribute_properties();
    names.push("Precision");
    names.push("PrecisionSource");
    names
}

/// `{"AllProperties": true}` or `{"PropertyNames": [...]}`; `None` means every property.
fn properties(
    value: Option<&Value>,
    shape: &Shape<'_>,
    navigations: &[&str],
) -> Result<Option<Vec<String>>, SchemaError> {
    let Some(value) = value else { return Ok(None) };
    if value.get("AllProperties").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let Some(names) = value.get("PropertyNames").and_then(Value::as_array) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in names {
        let name = name
            .as_str()
            .ok_or_else(|| bad("PropertyNames holds a value that is not a string."))?;
        if !navigations.contains(&name) {
            shape.check(name)?;
        }
        out.push(name.to_string());
    }
    Ok(Some(out))
}

/// A `MetadataFilterExpression` as a filter.
fn criteria(value: Option<&Value>, shape: &Shape<'_>) -> Result<Option<Filter>, SchemaError> {
    let Some(value) = value else { return Ok(None) };
    let or = match value.get("FilterOperator").and_then(Value::as_str) {
        None | Some("And") => false,
        Some("Or") => true,
        Some(other) => {
            return Err(bad(&format!(
                "The FilterOperator '{other}' is not And or Or."
            )))
        }
    };
    let mut parts = Vec::new();
    for condition in value
        .get("Conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        parts.push(condition_filter(condition, shape)?);
    }
    for nested in value
        .get("Filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(filter) = criteria(Some(nested), shape)? {
            parts.push(filter);
        }
    }
    Ok(parts.into_iter().reduce(|a, b| {
        if or {
            Filter::Or(Box::new(a), Box::new(b))
        } else {
            Filter::And(Box::new(a), Box::new(b))
        }
    }))
}

fn condition_filter(condition: &Value, shape: &Shape<'_>) -> Result<Filter, SchemaError> {
    let property = condition
        .get("PropertyName")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("A condition has no PropertyName."))?;
    shape.check(property)?;
    let operator = condition
        .get("ConditionOperator")
        .and_then(Value::as_str)
        .unwrap_or("Equals");
    let value = condition.get("Value").map(|v| v.get("Value").unwrap_or(v));
    let compare = |op: CmpOp, value: Option<&Value>| -> Result<Filter, SchemaError> {
        Ok(Filter::Compare {
            path: vec![property.to_string()],
            op,
            value: operand(value)?,
        })
    };
    let any = |value: Option<&Value>| -> Result<Filter, SchemaError> {
        let values = value.and_then(Value::as_array).ok_or_else(|| {
            bad(&format!(
                "The {operator} condition on '{property}' needs a list."
            ))
        })?;
        values
            .iter()
            .map(|v| compare(CmpOp::Eq, Some(v)))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .reduce(|a, b| Filter::Or(Box::new(a), Box::new(b)))
            .ok_or_else(|| {
                bad(&format!(
                    "The {operator} condition on '{property}' has no values."
                ))
            })
    };
    match operator {
        "Equals" => compare(CmpOp::Eq, value),
        "NotEquals" => compare(CmpOp::Ne, value),
        "GreaterThan" => compare(CmpOp::Gt, value),
        "LessThan" => compare(CmpOp::Lt, value),
        "In" => any(value),
        "NotIn" => Ok(Filter::Not(Box::new(any(value)?))),
        other => Err(bad(&format!(
            "The ConditionOperator '{other}' is not supported."
        ))),
    }
}

fn operand(value: Option<&Value>) -> Result<Operand, SchemaError> {
    Ok(Operand::Literal(match value {
        None | Some(Value::Null) => Literal::Null,
        Some(Value::String(s)) => Literal::String(s.clone()),
        Some(Value::Bool(b)) => Literal::Bool(*b),
        Some(Value::Number(n)) => Literal::Int(
            n.as_i64()
                .ok_or_else(|| bad("A condition value is not an integer."))?,
        ),
        Some(_) => return Err(bad("A condition value is not a string, number or Boolean.")),
    }))
}

impl MetadataChangesRequest {
    pub fn respond(&self, catalog: &Catalog, root: &str) -> Result<Value, SchemaError> {
        let mut entities = Vec::new();
        let settings = catalog.tracking();
        for entity in catalog.entities() {
            let full = entity_object(&settings, entity);
            if !self
                .entity_filter
                .as_ref()
                .is_none_or(|f| f.matches(&Value::Object(full.clone())))
            {
                continue;
            }
            let wants_attributes = self
                .entity_properties
                .as_ref()
                .is_none_or(|p| p.iter().any(|n| n == "Attributes"));
            let mut out = Map::new();
            out.insert("MetadataId".into(), full["MetadataId"].clone());
            for (name, value) in &full {
                let wanted = self
                    .entity_properties
                    .as_ref()
                    .is_none_or(|p| p.iter().any(|n| n == name));
                if wanted {
                    out.insert(name.clone(), value.clone());
                }
            }
            if wants_attributes {
                let attributes = typed_attributes(
                    &settings,
                    entity,
                    self.attribute_filter.as_ref(),
                    self.attribute_properties.as_deref(),
                );
                out.insert("Attributes".into(), Value::Array(attributes));
            }
            entities.push(Value::Object(out));
        }
        Ok(json!({
            "@odata.context": format!("{root}$metadata#Microsoft.Dynamics.CRM.RetrieveMetadataChangesResponse"),
            "EntityMetadata": entities,
            "ServerVersionStamp": super::metadata_id(&["catalog"]).to_string(),
            "DeletedMetadata": {"Keys": [], "Values": []},
        }))
    }
}
