//! Importer for Microsoft's entity-reference markdown pages.
//!
//! A page has an `## Entity Properties` (or `## Properties`) table, a list of writable and a
//! list of read-only attributes, and per attribute a `### <a name="BKMK_X"></a> X` section with a
//! `|Property|Value|` table and, for option sets, an options table (`|Value|Label|...|` in the
//! older format, `|Value|Details|` in the newer one). Cell text may be wrapped in `**` or
//! backticks; both are stripped.

use std::collections::HashMap;

use super::{Attribute, AttributeType, Entity, OptionMeta, OwnershipType, RequiredLevel};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("the page has no entity property '{0}'")]
    MissingEntityProperty(&'static str),
    #[error("attribute section '{section}' has no '{property}' row")]
    MissingAttributeProperty {
        section: String,
        property: &'static str,
    },
    #[error("attribute '{attribute}': unknown {what} '{value}'")]
    UnknownValue {
        attribute: String,
        what: &'static str,
        value: String,
    },
    #[error("attribute '{attribute}': '{value}' is not a number")]
    BadNumber { attribute: String, value: String },
    #[error("the primary id attribute '{0}' has no section")]
    MissingPrimaryId(String),
    #[error("attribute '{attribute}' targets '{target}', which is not a known table")]
    UnknownTarget { attribute: String, target: String },
}

#[derive(Default)]
struct Section {
    heading: String,
    rows: Vec<(String, String)>,
    options: Vec<Vec<String>>,
    option_header: Vec<String>,
}

/// Reads one page into an [`Entity`].
pub fn import(page: &str) -> Result<Entity, ImportError> {
    let mut h2 = String::new();
    let mut entity_props: HashMap<String, String> = HashMap::new();
    let mut messages = Vec::new();
    let mut writable: Vec<String> = Vec::new();
    let mut read_only: Vec<String> = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut in_options = false;
    let mut description = String::new();
    let mut seen_title = false;
    let mut many_to_one = Vec::new();

    for raw in page.lines() {
        let line = raw.trim();
        if let Some(title) = line.strip_prefix("## ") {
            h2 = title.trim().to_ascii_lowercase();
            in_options = false;
            continue;
        }
        if let Some(title) = line.strip_prefix("### ") {
            // Relationship headings carry an anchor; `### See also` does not.
            if h2.starts_with("many-to-one") && title.contains("</a>") {
                many_to_one.push(strip_anchor(title));
            }
            sections.push(Section {
                heading: strip_anchor(title),
                ..Section::default()
            });
            in_options = false;
            continue;
        }
        if line.starts_with("#### ") {
            in_options = true;
            continue;
        }
        if line.starts_with("# ") {
            seen_title = true;
            continue;
        }
        if seen_title && h2.is_empty() && description.is_empty() && is_prose(line) {
            description = line.to_string();
            continue;
        }
        if let Some(item) = line.strip_prefix("- [") {
            let name = item.split(']').next().unwrap_or_default().to_string();
            if h2.starts_with("writable") {
                writable.push(name);
            } else if h2.starts_with("read-only") {
                read_only.push(name);
            }
            continue;
        }
        if !line.starts_with('|') {
            continue;
        }
        let cells = table_cells(line);
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        if h2 == "messages" {
            if cells
                .first()
                .is_some_and(|c| c != "Message" && !c.starts_with("Name"))
            {
                messages.push(cells[0].clone());
            }
            continue;
        }
        if (h2 == "entity properties" || h2 == "properties") && sections.is_empty() {
            if cells.len() >= 2 && cells[0] != "Property" {
                entity_props.insert(cells[0].clone(), cells[1].clone());
            }
            continue;
        }
        if let Some(section) = sections.last_mut() {
            if in_options {
                if cells.first().is_some_and(|c| c == "Value") {
                    section.option_header = cells;
                } else {
                    section.options.push(cells);
                }
            } else if cells.len() >= 2 && cells[0] != "Property" {
                section.rows.push((cells[0].clone(), cells[1].clone()));
            }
        }
    }

    let prop = |name: &'static str| {
        entity_props
            .get(name)
            .cloned()
            .ok_or(ImportError::MissingEntityProperty(name))
    };
    let logical_name = prop("LogicalName")?;
    let ownership_text = prop("OwnershipType")?;
    let ownership =
        OwnershipType::parse(&ownership_text).ok_or_else(|| ImportError::UnknownValue {
            attribute: logical_name.clone(),
            what: "ownership type",
            value: ownership_text.clone(),
        })?;
    let primary_id = prop("PrimaryIdAttribute")?;

    let mut attributes = Vec::new();
    for section in &sections {
        if section.rows.iter().all(|(k, _)| k != "LogicalName") {
            // Relationship or other non-attribute sections.
            continue;
        }
        let is_writable = writable.iter().any(|w| w == &section.heading);
        let is_read_only = read_only.iter().any(|w| w == &section.heading);
        if !is_writable && !is_read_only {
            continue;
        }
        attributes.push(attribute(section, is_writable)?);
    }
    if !attributes.iter().any(|a| a.logical_name == primary_id) {
        return Err(ImportError::MissingPrimaryId(primary_id));
    }
    // Shadow name columns: read-only strings named after a lookup of the same table.
    let lookups: Vec<String> = attributes
        .iter()
        .filter(|a| a.attribute_type.is_lookup())
        .map(|a| a.logical_name.clone())
        .collect();
    for attribute in attributes.iter_mut() {
        if attribute.attribute_type != AttributeType::String
            || attribute.valid_for_create
            || attribute.valid_for_update
        {
            continue;
        }
        attribute.attribute_of = lookups
            .iter()
            .find(|l| {
                attribute.logical_name == format!("{l}name")
                    || attribute.logical_name == format!("{l}yominame")
            })
            .cloned();
    }

    Ok(Entity::new(Entity {
        schema_name: entity_props
            .get("SchemaName")
            .cloned()
            .unwrap_or_else(|| logical_name.clone()),
        entity_set_name: prop("EntitySetName")?,
        display_name: entity_props.get("DisplayName").cloned().unwrap_or_default(),
        display_collection_name: entity_props
            .get("DisplayCollectionName")
            .cloned()
            .unwrap_or_default(),
        description,
        // A table without a primary name (the audit table) leaves the cell empty.
        primary_name: entity_props
            .get("PrimaryNameAttribute")
            .cloned()
            .unwrap_or_default(),
        primary_id,
        ownership,
        messages,
        attributes,
        many_to_one,
        properties: entity_props.into_iter().collect(),
        logical_name,
        index: HashMap::new(),
        property_index: HashMap::new(),
    }))
}

fn attribute(section: &Section, writable: bool) -> Result<Attribute, ImportError> {
    let get = |name: &str| {
        section
            .rows
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let need = |name: &'static str| {
        get(name).ok_or_else(|| ImportError::MissingAttributeProperty {
            section: section.heading.clone(),
            property: name,
        })
    };
    let logical_name = need("LogicalName")?;
    let type_text = need("Type")?;
    let attribute_type =
        AttributeType::parse(&type_text).ok_or_else(|| ImportError::UnknownValue {
            attribute: logical_name.clone(),
            what: "type",
            value: type_text.clone(),
        })?;
    let level_text = get("RequiredLevel").unwrap_or_else(|| "None".into());
    let required_level =
        RequiredLevel::parse(&level_text).ok_or_else(|| ImportError::UnknownValue {
            attribute: logical_name.clone(),
            what: "required level",
            value: level_text.clone(),
        })?;
    let flag = |name: &str, default: bool| get(name).map(|v| v == "True").unwrap_or(default);
    let number = |name: &str| -> Result<Option<i64>, ImportError> {
        get(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| ImportError::BadNumber {
                    attribute: logical_name.clone(),
                    value: v.clone(),
                })
            })
            .transpose()
    };
    let max_length = number("MaxLength")?.map(|n| n.max(0) as usize);
    let targets = get("Targets")
        .map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(Attribute {
        schema_name: section.heading.clone(),
        display_name: get("DisplayName").unwrap_or_default(),
        description: get("Description").unwrap_or_default(),
        attribute_type,
        required_level,
        max_length,
        min_value: number("MinValue")?,
        max_value: number("MaxValue")?,
        valid_for_create: writable && flag("IsValidForCreate", true),
        valid_for_update: writable && flag("IsValidForUpdate", true),
        valid_for_read: flag("IsValidForRead", true),
        datetime_behavior: get("DateTimeBehavior"),
        format: get("Format").or_else(|| get("FormatName")),
        targets,
        options: options(section, &logical_name)?,
        default_value: get("DefaultValue").or_else(|| get("DefaultFormValue")),
        attribute_of: None,
        property: String::new(),
        logical_name,
    })
}

fn options(section: &Section, attribute: &str) -> Result<Vec<OptionMeta>, ImportError> {
    let header = &section.option_header;
    let column = |name: &str| header.iter().position(|h| h == name);
    let parse_int = |text: &str| {
        text.trim()
            .parse::<i32>()
            .map_err(|_| ImportError::BadNumber {
                attribute: attribute.to_string(),
                value: text.to_string(),
            })
    };
    let mut out = Vec::new();
    for row in &section.options {
        let cell = |i: Option<usize>| i.and_then(|i| row.get(i)).map(String::as_str);
        let value = parse_int(row.first().map(String::as_str).unwrap_or_default())?;
        let mut option = OptionMeta {
            value,
            label: cell(column("Label")).unwrap_or_default().to_string(),
            state: cell(column("State")).map(parse_int).transpose()?,
            default_status: cell(column("DefaultStatus")).map(parse_int).transpose()?,
            invariant_name: cell(column("InvariantName")).map(str::to_string),
        };
        // Newer pages: `Label: **Open**<br />DefaultStatus: 1<br />InvariantName: `Open``.
        if let Some(details) = cell(column("Details")) {
            for part in details.split("<br />") {
                let Some((key, val)) = part.split_once(':') else {
                    continue;
                };
                let val = clean(val);
                match key.trim() {
                    "Label" => option.label = val,
                    "State" => option.state = Some(parse_int(&val)?),
                    "DefaultStatus" => option.default_status = Some(parse_int(&val)?),
                    "InvariantName" => option.invariant_name = Some(val),
                    _ => {}
                }
            }
        }
        out.push(option);
    }
    Ok(out)
}

fn table_cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(clean).collect()
}

fn clean(text: &str) -> String {
    text.trim()
        .trim_matches('*')
        .trim_matches('`')
        .trim()
        .to_string()
}

fn strip_anchor(title: &str) -> String {
    match title.rfind("</a>") {
        Some(i) => title[i + 4..].trim().to_string(),
        None => title.trim().to_string(),
    }
}

fn is_prose(line: &str) -> bool {
    !line.is_empty() && !line.starts_with('[') && !line.starts_with('*') && !line.starts_with('<')
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEWER_FORMAT: &str = r#"
# Conversation (msdyn_ocliveworkitem) table/entity reference

Tracks the interaction between the agents and customer

## Properties

|Property|Value|
| --- | --- |
| **EntitySetName** | `msdyn_ocliveworkitems`|
| **LogicalName** | `msdyn_ocliveworkitem` |
| **PrimaryIdAttribute** | `activityid` |
| **PrimaryNameAttribute** |`subject` |
| **OwnershipType** | `UserOwned` |

## Writable columns/attributes

- [ActivityId](#BKMK_ActivityId)
- [StateCode](#BKMK_StateCode)

### <a name="BKMK_ActivityId"></a> ActivityId

|Property|Value|
|---|---|
|LogicalName|`activityid`|
|RequiredLevel|SystemRequired|
|Type|Uniqueidentifier|

### <a name="BKMK_StateCode"></a> StateCode

|Property|Value|
|---|---|
|LogicalName|`statecode`|
|RequiredLevel|SystemRequired|
|Type|State|

#### StateCode Choices/Options

|Value|Details|
|---|---|
|0|Label: **Open**<br />DefaultStatus: 1<br />InvariantName: `Open`|
|1|Label: **Closed**<br />DefaultStatus: 4<br />InvariantName: `Closed`|
"#;

    #[test]
    fn reads_the_newer_page_format() {
        let entity = import(NEWER_FORMAT).unwrap();
        assert_eq!(entity.logical_name, "msdyn_ocliveworkitem");
        assert_eq!(entity.entity_set_name, "msdyn_ocliveworkitems");
        assert_eq!(
            entity.description,
            "Tracks the interaction between the agents and customer"
        );
        let state = entity.attribute("statecode").unwrap();
        assert_eq!(state.options.len(), 2);
        assert_eq!(state.options[1].label, "Closed");
        assert_eq!(state.options[1].default_status, Some(4));
        assert_eq!(state.options[1].invariant_name.as_deref(), Some("Closed"));
    }

    #[test]
    fn a_page_without_entity_properties_is_refused() {
        let err = import("# nothing\n\n## Entity Properties\n").unwrap_err();
        assert_eq!(err, ImportError::MissingEntityProperty("LogicalName"));
    }

    #[test]
    fn an_unknown_type_is_refused_with_its_name() {
        let page = NEWER_FORMAT.replace("|Type|Uniqueidentifier|", "|Type|Hologram|");
        let err = import(&page).unwrap_err();
        assert!(err.to_string().contains("Hologram"), "{err}");
    }
}
