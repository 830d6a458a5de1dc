//! The read-only message catalog: `sdkmessages` (one row per message smsctx serves) and
//! `sdkmessagefilters` (one row per message and table it applies to), as Dataverse's tables of
//! the same names read through the Web API. Clients ask it what a table supports, e.g.
//! `sdkmessagefilters?$select=sdkmessagefilterid&$expand=sdkmessageid($select=name)
//! &$filter=(sdkmessageid/name eq 'CreateMultiple') and primaryobjecttypecode eq 'x'`.
//!
//! [`SERVED_MESSAGES`] is the one list to extend when smsctx serves a new message; which tables
//! a message applies to comes from the tables' pages (their Messages table).

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::definitions::{collection, project};
use super::filter::{Filter, Shape};
use super::options::QueryOptions;
use super::{metadata_id, SchemaError};
use crate::metadata::{Catalog, Entity};

/// Which tables a message applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// No table: an unbound message (no `sdkmessagefilters` row).
    Unbound,
    /// The tables whose page lists the message.
    Listed,
    /// The tables whose page lists this other message (a bulk form of a message, say).
    With(&'static str),
    /// One table, whatever its page lists (a function bound to it).
    Table(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedMessage {
    pub name: &'static str,
    pub applies: Applies,
}

const fn listed(name: &'static str) -> ServedMessage {
    ServedMessage {
        name,
        applies: Applies::Listed,
    }
}

const fn unbound(name: &'static str) -> ServedMessage {
    ServedMessage {
        name,
        applies: Applies::Unbound,
    }
}

/// Every message smsctx serves.
pub const SERVED_MESSAGES: &[ServedMessage] = &[
    listed("Assign"),
    listed("Create"),
    listed("Delete"),
    listed("GrantAccess"),
    listed("IsValidStateTransition"),
    listed("ModifyAccess"),
    listed("Retrieve"),
    listed("RetrieveMultiple"),
    listed("RetrievePrincipalAccess"),
    listed("RetrieveSharedPrincipalsAndAccess"),
    listed("RevokeAccess"),
    listed("SetState"),
    listed("Update"),
    ServedMessage {
        name: "Upsert",
        applies: Applies::With("Update"),
    },
    ServedMessage {
        name: "CreateMultiple",
        applies: Applies::With("Create"),
    },
    ServedMessage {
        name: "UpdateMultiple",
        applies: Applies::With("Update"),
    },
    ServedMessage {
        name: "UpsertMultiple",
        applies: Applies::With("Update"),
    },
    // Unbound, but it deletes rows of the tables that serve Delete: one filter row for each.
    ServedMessage {
        name: "BulkDelete",
        applies: Applies::With("Delete"),
    },
    ServedMessage {
        name: "RetrieveUserPrivileges",
        applies: Applies::Table(crate::metadata::system::SYSTEM_USER),
    },
    unbound("RetrieveAllEntities"),
    unbound("RetrieveAttribute"),
    unbound("RetrieveEntity"),
    unbound("RetrieveMetadataChanges"),
    unbound("RetrieveRelationship"),
    unbound("RetrieveCurrentOrganization"),
    unbound("RetrieveTotalRecordCount"),
    unbound("RetrieveVersion"),
    unbound("WhoAmI"),
];

const MESSAGE_TABLE: &str = "sdkmessage";
const FILTER_TABLE: &str = "sdkmessagefilter";
const MESSAGE_KEY: &str = "sdkmessageid";
const FILTER_KEY: &str = "sdkmessagefilterid";
/// The navigation from a filter to its message, and back.
const MESSAGE_NAVIGATION: &str = "sdkmessageid";
const FILTERS_NAVIGATION: &str = "sdkmessageid_sdkmessagefilter";

const MESSAGE_PROPERTIES: &[&str] = &[
    "sdkmessageid",
    "name",
    "categoryname",
    "isprivate",
    "isactive",
    "isreadonly",
    "isvalidforexecuteasync",
    "autotransact",
    "availability",
    "customizationlevel",
    "expand",
    "template",
    "workflowsdkstepenabled",
    "executeprivilegename",
    "throttlesettings",
    "introducedversion",
    "sdkmessageidunique",
];

const FILTER_PROPERTIES: &[&str] = &[
    "sdkmessagefilterid",
    "_sdkmessageid_value",
    "primaryobjecttypecode",
    "secondaryobjecttypecode",
    "availability",
    "iscustomprocessingstepallowed",
    "isvisible",
    "customizationlevel",
    "workflowsdkstepenabled",
    "restrictionlevel",
    "introducedversion",
    "sdkmessagefilteridunique",
];

/// The two entity sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageSet {
    Messages,
    Filters,
}

impl MessageSet {
    pub fn parse(name: &str) -> Option<MessageSet> {
        match name {
            "sdkmessages" => Some(MessageSet::Messages),
            "sdkmessagefilters" => Some(MessageSet::Filters),
            _ => None,
        }
    }

    fn set_name(self) -> &'static str {
        match self {
            MessageSet::Messages => "sdkmessages",
            MessageSet::Filters => "sdkmessagefilters",
        }
    }

    fn table(self) -> &'static str {
        match self {
            MessageSet::Messages => MESSAGE_TABLE,
            MessageSet::Filters => FILTER_TABLE,
        }
    }

    fn key(self) -> &'static str {
        match self {
            MessageSet::Messages => MESSAGE_KEY,
            MessageSet::Filters => FILTER_KEY,
        }
    }

    fn navigation(self) -> &'static str {
        match self {
            MessageSet::Messages => FILTERS_NAVIGATION,
            MessageSet::Filters => MESSAGE_NAVIGATION,
        }
    }

    fn other(self) -> MessageSet {
        match self {
            MessageSet::Messages => MessageSet::Filters,
            MessageSet::Filters => MessageSet::Messages,
        }
    }

    fn shape(self) -> Shape<'static> {
        match self {
            MessageSet::Messages => Shape {
                type_name: "Microsoft.Dynamics.CRM.sdkmessage",
                properties: MESSAGE_PROPERTIES,
                navigations: &[FILTERS_NAVIGATION],
            },
            MessageSet::Filters => Shape {
                type_name: "Microsoft.Dynamics.CRM.sdkmessagefilter",
                properties: FILTER_PROPERTIES,
                navigations: &[MESSAGE_NAVIGATION],
            },
        }
    }
}

/// The one `$expand` these sets allow: the other side, with `$select` (and `$filter` for the
/// collection of filters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExpand {
    pub select: Option<Vec<String>>,
    pub filter: Option<Filter>,
}

/// A parsed `sdkmessages` / `sdkmessagefilters` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesRequest {
    pub set: MessageSet,
    pub id: Option<Uuid>,
    pub select: Option<Vec<String>>,
    pub filter: Option<Filter>,
    pub expand: Option<MessageExpand>,
}

pub fn parse_messages_path(
    set: MessageSet,
    key: Option<&str>,
    rest: &[String],
    query: &[(String, String)],
) -> Result<MessagesRequest, SchemaError> {
    if let Some(extra) = rest.first() {
        return Err(SchemaError::UnknownSegment(extra.clone()));
    }
    let id = key
        .map(|k| {
            Uuid::parse_str(k.trim()).map_err(|_| {
                SchemaError::BadQuery(format!(
                    "The key '{k}' of segment '{}' is not a Guid.",
                    set.set_name()
                ))
            })
        })
        .transpose()?;
    let mut options = QueryOptions::parse(query)?;
    if id.is_some() {
        options = options.single()?;
    }
    let shape = set.shape();
    let filter = shape.options(options.select.as_deref(), options.filter.as_deref())?;
    let mut expand = None;
    for item in &options.expand {
        if item.name != set.navigation() {
            return Err(SchemaError::UnknownProperty {
                property: item.name.clone(),
                type_name: shape.type_name.to_string(),
            });
        }
        if let Some(nested) = item.expand.first() {
            return Err(SchemaError::UnknownProperty {
                property: nested.name.clone(),
                type_name: set.other().shape().type_name.to_string(),
            });
        }
        if item.filter.is_some() && set == MessageSet::Filters {
            return Err(SchemaError::BadQuery(format!(
                "$filter is not supported inside the single-valued '{}'.",
                item.name
            )));
        }
        let other = set.other().shape();
        expand = Some(MessageExpand {
            select: item.select.clone(),
            filter: other.options(item.select.as_deref(), item.filter.as_deref())?,
        });
    }
    Ok(MessagesRequest {
        set,
        id,
        select: options.select,
        filter,
        expand,
    })
}

/// One message row, every column.
fn message_object(message: &ServedMessage) -> Map<String, Value> {
    let id = message_id(message.name);
    let mut out = Map::new();
    for name in MESSAGE_PROPERTIES {
        let value = match *name {
            "sdkmessageid" | "sdkmessageidunique" => json!(id),
            "name" => json!(message.name),
            "categoryname" => json!(""),
            "isprivate" | "isreadonly" | "workflowsdkstepenabled" => json!(false),
            "isactive" | "autotransact" | "isvalidforexecuteasync" | "template" => json!(true),
            "availability" | "customizationlevel" => json!(0),
            "expand" => json!(false),
            "introducedversion" => json!("1.0"),
            _ => Value::Null,
        };
        out.insert(name.to_string(), value);
    }
    out
}

/// One filter row (a message on a table), every column.
fn filter_object(message: &ServedMessage, entity: &Entity) -> Map<String, Value> {
    let id = filter_id(message.name, &entity.logical_name);
    let mut out = Map::new();
    for name in FILTER_PROPERTIES {
        let value = match *name {
            "sdkmessagefilterid" | "sdkmessagefilteridunique" => json!(id),
            "_sdkmessageid_value" => json!(message_id(message.name)),
            "primaryobjecttypecode" => json!(entity.logical_name),
            "secondaryobjecttypecode" => json!("none"),
            "isvisible" => json!(true),
            "iscustomprocessingstepallowed" | "workflowsdkstepenabled" => json!(false),
            "availability" | "customizationlevel" | "restrictionlevel" => json!(0),
            "introducedversion" => json!("1.0"),
            _ => Value::Null,
        };
        out.insert(name.to_string(), value);
    }
    out
}

fn message_id(name: &str) -> Uuid {
    metadata_id(&[MESSAGE_TABLE, name])
}

fn filter_id(message: &str, table: &str) -> Uuid {
    metadata_id(&[FILTER_TABLE, message, table])
}

/// The tables a message applies to, in catalog order.
pub fn tables_of<'a>(catalog: &'a Catalog, message: &ServedMessage) -> Vec<&'a Entity> {
    let listing = match message.applies {
        Applies::Unbound => return Vec::new(),
        Applies::Listed => message.name,
        Applies::With(other) => other,
        Applies::Table(table) => {
            return catalog
                .entity(table)
                .map(|e| e.as_ref())
                .into_iter()
                .collect();
        }
    };
    catalog
        .entities()
        .iter()
        .map(|e| e.as_ref())
        .filter(|e| e.messages.iter().any(|m| m == listing))
        .collect()
}

/// Every filter row with its message nested under the navigation (for `$filter` paths and
/// `$expand`).
fn filters(catalog: &Catalog) -> Vec<Map<String, Value>> {
    SERVED_MESSAGES
        .iter()
        .flat_map(|message| {
            tables_of(catalog, message).into_iter().map(move |entity| {
                let mut row = filter_object(message, entity);
                row.insert(
                    MESSAGE_NAVIGATION.into(),
                    Value::Object(message_object(message)),
                );
                row
            })
        })
        .collect()
}

/// Every message row with its filter rows nested under the navigation.
fn messages(catalog: &Catalog) -> Vec<Map<String, Value>> {
    SERVED_MESSAGES
        .iter()
        .map(|message| {
            let mut row = message_object(message);
            let rows: Vec<Value> = tables_of(catalog, message)
                .into_iter()
                .map(|entity| Value::Object(filter_object(message, entity)))
                .collect();
            row.insert(FILTERS_NAVIGATION.into(), Value::Array(rows));
            row
        })
        .collect()
}

impl MessagesRequest {
    pub fn respond(&self, catalog: &Catalog, root: &str) -> Result<Value, SchemaError> {
        let rows = match self.set {
            MessageSet::Messages => messages(catalog),
            MessageSet::Filters => filters(catalog),
        };
        let key = self.set.key();
        let rows: Vec<Map<String, Value>> = match self.id {
            Some(id) => {
                let found = rows
                    .into_iter()
                    .find(|row| row[key] == json!(id))
                    .ok_or_else(|| SchemaError::UnknownRecord {
                        table: self.set.table(),
                        id,
                    })?;
                vec![found]
            }
            None => rows,
        };
        let values = collection(rows, self.filter.as_ref(), None, key);
        let shaped: Vec<Value> = values
            .into_iter()
            .filter_map(|value| match value {
                Value::Object(row) => Some(Value::Object(self.shape_row(row))),
                _ => None,
            })
            .collect();
        let context = format!(
            "{root}$metadata#{}{}",
            self.set.set_name(),
            self.projection()
        );
        if self.id.is_some() {
            let mut out = Map::new();
            out.insert("@odata.context".into(), json!(format!("{context}/$entity")));
            if let Some(Value::Object(row)) = shaped.into_iter().next() {
                out.extend(row);
            }
            return Ok(Value::Object(out));
        }
        Ok(json!({"@odata.context": context, "value": shaped}))
    }

    /// The row as the query shapes it: the selection and the key, then the expansion.
    fn shape_row(&self, mut row: Map<String, Value>) -> Map<String, Value> {
        let navigation = self.set.navigation();
        let nested = row.remove(navigation);
        let mut out = project(row, self.select.as_deref(), self.set.key());
        if let (Some(expand), Some(nested)) = (&self.expand, nested) {
            let other_key = self.set.other().key();
            let value = match nested {
                Value::Object(one) => {
                    Value::Object(project(one, expand.select.as_deref(), other_key))
                }
                Value::Array(many) => Value::Array(collection(
                    many.into_iter().filter_map(|v| match v {
                        Value::Object(m) => Some(m),
                        _ => None,
                    }),
                    expand.filter.as_ref(),
                    expand.select.as_deref(),
                    other_key,
                )),
                other => other,
            };
            out.insert(navigation.to_string(), value);
        }
        out
    }

    fn projection(&self) -> String {
        let mut items: Vec<String> = self.select.clone().unwrap_or_default();
        if let Some(expand) = &self.expand {
            items.push(format!(
                "{}({})",
                self.set.navigation(),
                expand.select.clone().unwrap_or_default().join(",")
            ));
        }
        if items.is_empty() {
            String::new()
        } else {
            format!("({})", items.join(","))
        }
    }
}
