//! The resource path below `/api/data/v9.x/`: entity sets, keys, properties, functions.
//!
//! URL segments, property and operation names are case sensitive, as in Dataverse.

use std::sync::Arc;

use uuid::Uuid;

use super::key::AlternateKey;
use super::ParseError;
use crate::metadata::{sms, Catalog, Entity};

/// The Web API versions served; each is an alias of the others.
pub const VERSIONS: &[&str] = &["v9.0", "v9.1", "v9.2"];

/// What a request addresses.
#[derive(Debug, Clone)]
pub enum Resource {
    /// `/` — the service document.
    ServiceDocument,
    /// `/$metadata` — the CSDL document.
    Metadata,
    /// `/EntityDefinitions...`, `/RelationshipDefinitions...`, `/sdkmessages...` and the other
    /// schema services (`crate::schema::serves`), as segments.
    Schema(Vec<String>),
    /// `/{set}` — create or list.
    Collection(Arc<Entity>),
    /// `/{set}/$count`.
    Count(Arc<Entity>),
    /// An action bound to an entity set: `POST /{set}/Microsoft.Dynamics.CRM.{name}` (one of
    /// [`COLLECTION_ACTIONS`], the prefix optional).
    CollectionAction { entity: Arc<Entity>, name: String },
    /// `/{set}({id})`.
    Record(Arc<Entity>, Uuid),
    /// `/{set}({id})/{property}` and `.../{property}/$value` (`raw`).
    Property {
        entity: Arc<Entity>,
        id: Uuid,
        position: usize,
        raw: bool,
    },
    /// `/{set}({id})/{navigation}` and `.../{navigation}/$ref` (`reference`).
    Navigation {
        entity: Arc<Entity>,
        id: Uuid,
        position: usize,
        reference: bool,
    },
    /// An unbound function call such as `IsValidStateTransition(Entity=@e,...)`.
    Function {
        name: String,
        arguments: Vec<(String, String)>,
    },
    /// A function bound to a record: `/{set}({id})/Microsoft.Dynamics.CRM.{name}(...)`.
    BoundFunction {
        entity: Arc<Entity>,
        id: Uuid,
        name: String,
        arguments: Vec<(String, String)>,
    },
    /// An unbound action: `POST /{name}` (`GrantAccess`, ...).
    Action(String),
    /// An action bound to a record: `POST /{set}({id})/Microsoft.Dynamics.CRM.{name}` (one of
    /// [`BOUND_ACTIONS`]).
    BoundAction {
        entity: Arc<Entity>,
        id: Uuid,
        name: String,
    },
    /// `/smsctx_smschannels` and `/smsctx_smschannels({id})`: the SMS channel's configuration,
    /// an internal table the channel API serves.
    SmsChannels(Option<Uuid>),
    /// `/{set}({id})/{collection}`: the rows of `source` whose lookup at `lookup` points at the
    /// record (a one-to-many relationship's collection-valued navigation property).
    RelatedRows {
        entity: Arc<Entity>,
        id: Uuid,
        source: Arc<Entity>,
        lookup: usize,
    },
    /// `/{set}({id})/{collection}/$ref` (associate) and `/{set}({id})/{collection}({key})/$ref`
    /// (disassociate): a one-to-many association, which sets or clears the child's lookup.
    RelatedReference {
        entity: Arc<Entity>,
        id: Uuid,
        source: Arc<Entity>,
        lookup: usize,
        key: Option<Uuid>,
    },
    /// A collection-valued navigation's references: `/{set}({id})/{relationship}/$ref` and
    /// `/{set}({id})/{relationship}({key})/$ref`.
    Association {
        entity: Arc<Entity>,
        id: Uuid,
        relationship: String,
        key: Option<Uuid>,
    },
}

/// The unbound actions served.
pub const ACTIONS: &[&str] = &[
    "GrantAccess",
    "ModifyAccess",
    "RevokeAccess",
    "BulkDelete",
    "DeleteAuditData",
];

/// The actions bound to an entity set (the bulk messages), served for every table.
pub const COLLECTION_ACTIONS: &[&str] = &["CreateMultiple", "UpdateMultiple", "UpsertMultiple"];

/// The bound actions served: (the table they are bound to, the action).
pub const BOUND_ACTIONS: &[(&str, &str)] = &[(sms::CONTEXT, sms::SEND_SMS)];

/// The unbound functions served by name: each may also be called without `()` (its parameters,
/// if any, are then missing) and with the `Microsoft.Dynamics.CRM.` prefix.
pub const FUNCTIONS: &[&str] = &[
    "IsValidStateTransition",
    "RetrieveSharedPrincipalsAndAccess",
    "WhoAmI",
    "RetrieveVersion",
    "RetrieveCurrentOrganization",
    "RetrieveTotalRecordCount",
    "RetrieveRecordChangeHistory",
    "RetrieveAuditDetails",
];

/// The functions bound to a record that may also be called without the namespace prefix and
/// without `()`.
pub const BOUND_FUNCTIONS: &[&str] = &["RetrievePrincipalAccess", "RetrieveUserPrivileges"];

/// The namespace of Dataverse's operations in a bound call.
const NAMESPACE: &str = "Microsoft.Dynamics.CRM.";

/// Parses the percent-decoded segments after the version.
pub fn parse(catalog: &Catalog, segments: &[String]) -> Result<Resource, ParseError> {
    let Some(first) = segments.first() else {
        return Ok(Resource::ServiceDocument);
    };
    if segments.len() == 1 && first.is_empty() {
        return Ok(Resource::ServiceDocument);
    }
    if first == "$metadata" && segments.len() == 1 {
        return Ok(Resource::Metadata);
    }
    if crate::schema::serves(first) {
        return Ok(Resource::Schema(segments.to_vec()));
    }
    let (name, key) = split_call(first)?;
    if let Some(entity) = catalog.by_entity_set(name) {
        let entity = Arc::clone(entity);
        let rest = &segments[1..];
        let Some(key) = key else {
            return match rest {
                [] => Ok(Resource::Collection(entity)),
                [count] if count == "$count" => Ok(Resource::Count(entity)),
                [action] if COLLECTION_ACTIONS.contains(&unqualified(action)) => {
                    Ok(Resource::CollectionAction {
                        entity,
                        name: unqualified(action).to_string(),
                    })
                }
                [other, ..] => Err(ParseError::ResourceNotFound(other.clone())),
            };
        };
        let id = parse_record_key(&entity, key)?;
        return match rest {
            [] => Ok(Resource::Record(entity, id)),
            [property, tail @ ..] => record_member(catalog, entity, id, property, tail),
        };
    }
    if name == sms::CHANNEL_SET && segments.len() == 1 {
        return Ok(Resource::SmsChannels(key.map(parse_key).transpose()?));
    }
    if key.is_none() && segments.len() == 1 && ACTIONS.contains(&name) {
        return Ok(Resource::Action(name.to_string()));
    }
    let function = name.strip_prefix(NAMESPACE).unwrap_or(name);
    if segments.len() == 1
        && is_function_name(function)
        && (key.is_some() || FUNCTIONS.contains(&function))
    {
        return Ok(Resource::Function {
            name: function.to_string(),
            arguments: parse_arguments(key.unwrap_or_default())?,
        });
    }
    Err(ParseError::ResourceNotFound(name.to_string()))
}

/// Whether a raw path below the service root ends in one of [`COLLECTION_ACTIONS`] (the body
/// limit of a bulk message is chosen before the path is parsed).
pub fn is_collection_action(raw: &str) -> bool {
    let last = raw.rsplit('/').next().unwrap_or_default();
    COLLECTION_ACTIONS.contains(&unqualified(last))
}

/// An operation's name without the `Microsoft.Dynamics.CRM.` prefix.
fn unqualified(name: &str) -> &str {
    name.strip_prefix(NAMESPACE).unwrap_or(name)
}

fn record_member(
    catalog: &Catalog,
    entity: Arc<Entity>,
    id: Uuid,
    property: &str,
    tail: &[String],
) -> Result<Resource, ParseError> {
    if let Some(position) = entity.property_position(property) {
        return match tail {
            [] => Ok(Resource::Property {
                entity,
                id,
                position,
                raw: false,
            }),
            [value] if value == "$value" => Ok(Resource::Property {
                entity,
                id,
                position,
                raw: true,
            }),
            [other, ..] => Err(ParseError::ResourceNotFound(other.clone())),
        };
    }
    let unqualified = split_call(property)
        .is_ok_and(|(name, _)| BOUND_FUNCTIONS.contains(&name))
        .then_some(property);
    if let Some(call) = property.strip_prefix(NAMESPACE).or(unqualified) {
        let (name, arguments) = split_call(call)?;
        let bound = (entity.logical_name.as_str(), name);
        if tail.is_empty() && arguments.is_none() && BOUND_ACTIONS.contains(&bound) {
            return Ok(Resource::BoundAction {
                entity,
                id,
                name: name.to_string(),
            });
        }
        if tail.is_empty()
            && is_function_name(name)
            && (arguments.is_some() || BOUND_FUNCTIONS.contains(&name))
        {
            return Ok(Resource::BoundFunction {
                entity,
                id,
                name: name.to_string(),
                arguments: parse_arguments(arguments.unwrap_or_default())?,
            });
        }
        return Err(ParseError::ResourceNotFound(property.to_string()));
    }
    if property.ends_with("_association") || property.contains("_association(") {
        let (name, key) = split_call(property)?;
        return match tail {
            [r] if r == "$ref" => Ok(Resource::Association {
                entity,
                id,
                relationship: name.to_string(),
                key: key
                    .map(|key| parse_named_key(key, |n| catalog.has_primary_id(n)))
                    .transpose()?,
            }),
            _ => Err(ParseError::ResourceNotFound(property.to_string())),
        };
    }
    let navigation = entity
        .position(property)
        .filter(|&p| entity.attributes[p].attribute_type.is_lookup());
    if let Some(position) = navigation {
        return match tail {
            [] => Ok(Resource::Navigation {
                entity,
                id,
                position,
                reference: false,
            }),
            [r] if r == "$ref" => Ok(Resource::Navigation {
                entity,
                id,
                position,
                reference: true,
            }),
            [other, ..] => Err(ParseError::ResourceNotFound(other.clone())),
        };
    }
    let (name, key) = split_call(property)?;
    if let Some((source, lookup)) = crate::schema::collection_navigation(catalog, &entity, name) {
        return match (tail, key) {
            ([], None) => Ok(Resource::RelatedRows {
                entity,
                id,
                source,
                lookup,
            }),
            ([r], key) if r == "$ref" => Ok(Resource::RelatedReference {
                entity,
                id,
                source,
                lookup,
                key: key.map(parse_key).transpose()?,
            }),
            _ => Err(ParseError::ResourceNotFound(property.to_string())),
        };
    }
    Err(ParseError::ResourceNotFound(property.to_string()))
}

/// Splits `name(args)` into its name and the text between the parentheses.
fn split_call(segment: &str) -> Result<(&str, Option<&str>), ParseError> {
    match segment.find('(') {
        None => Ok((segment, None)),
        Some(open) => {
            let inner = segment[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| ParseError::ResourceNotFound(segment.to_string()))?;
            Ok((&segment[..open], Some(inner)))
        }
    }
}

/// A record's key: a bare GUID, or Dataverse's named form of the primary key,
/// `{primaryid}=<guid>`. Other names are not the primary key (an alternate key is resolved to
/// the id by the edge before the path is read, [`alternate_key_of_path`]).
pub fn parse_record_key(entity: &Entity, key: &str) -> Result<Uuid, ParseError> {
    match key.split_once('=') {
        Some((name, _)) if name.trim() != entity.primary_id => Err(super::key::not_a_key(entity)),
        _ => parse_named_key(key, |name| name == entity.primary_id),
    }
}

/// A bare GUID, or `name=<guid>` where `is_primary_id(name)`.
fn parse_named_key(key: &str, is_primary_id: impl Fn(&str) -> bool) -> Result<Uuid, ParseError> {
    let key = key.trim();
    let Some((name, value)) = key.split_once('=') else {
        return parse_key(key);
    };
    if !is_primary_id(name.trim()) {
        return Err(ParseError::BadKey(format!(
            "The key '{key}' is not valid: '{}' is not the primary key of the table this segment names; this key is a GUID.",
            name.trim()
        )));
    }
    parse_key(value)
}

/// The alternate key of a path's first segment (`set(col='v',...)`), when it has one. The
/// edge resolves it to the record's id before [`parse`] reads the path.
pub fn alternate_key_of_path(
    catalog: &Catalog,
    segments: &[String],
) -> Result<Option<AlternateKey>, ParseError> {
    let Some(first) = segments.first() else {
        return Ok(None);
    };
    let Ok((name, Some(key))) = split_call(first) else {
        return Ok(None);
    };
    match catalog.by_entity_set(name) {
        Some(entity) => super::key::parse(entity, key),
        None => Ok(None),
    }
}

/// The alternate key an entity reference (`@odata.bind`, `@odata.id`) names, when it names
/// one: `set(col='v',...)`, relative or absolute, as [`parse_reference`] reads it.
pub fn alternate_key_of_reference(
    catalog: &Catalog,
    text: &str,
) -> Result<Option<AlternateKey>, ParseError> {
    match reference_parts(catalog, text) {
        Some((entity, Some(key))) => super::key::parse(entity, key),
        _ => Ok(None),
    }
}

/// `set(id)` of a record, as a path's first segment or a reference.
pub fn record_segment(entity: &Entity, id: Uuid) -> String {
    format!("{}({id})", entity.entity_set_name)
}

/// A key that is a bare GUID.
pub fn parse_key(key: &str) -> Result<Uuid, ParseError> {
    let key = key.trim();
    if key.contains('=') {
        return Err(ParseError::BadKey(format!(
            "The key '{key}' is not valid: this table defines no alternate keys; address a record by its id."
        )));
    }
    parse_guid(key).ok_or_else(|| {
        ParseError::BadKey(format!(
            "Bad Request - Error in query syntax: '{key}' is not a valid key. A key is a GUID such as 00000000-0000-0000-0000-000000000000."
        ))
    })
}

/// Parses a hyphenated GUID, with or without braces.
pub fn parse_guid(text: &str) -> Option<Uuid> {
    let text = text.trim();
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    if text.len() != 36 {
        return None;
    }
    Uuid::try_parse(text).ok()
}

fn is_function_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Splits `A=1,B='x,y',C=@p` into pairs, respecting quotes and brackets.
pub fn parse_arguments(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let mut out = Vec::new();
    if text.trim().is_empty() {
        return Ok(out);
    }
    let mut depth = 0i32;
    let mut in_quote = false;
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' => in_quote = !in_quote,
            b'(' | b'[' | b'{' if !in_quote => depth += 1,
            b')' | b']' | b'}' if !in_quote => depth -= 1,
            b',' if !in_quote && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    for part in parts {
        let (name, value) = part.split_once('=').ok_or_else(|| {
            ParseError::InvalidArgument(format!(
                "The function parameter '{}' has no value.",
                part.trim()
            ))
        })?;
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// Resolves an entity reference: `set(id)`, `/set(id)`, or an absolute URL ending in one.
pub fn parse_reference(catalog: &Catalog, text: &str) -> Option<(Arc<Entity>, Uuid)> {
    let (entity, key) = reference_parts(catalog, text)?;
    let id = parse_record_key(entity, key?).ok()?;
    Some((Arc::clone(entity), id))
}

/// The entity set and the key of a reference.
fn reference_parts<'a, 't>(
    catalog: &'a Catalog,
    text: &'t str,
) -> Option<(&'a Arc<Entity>, Option<&'t str>)> {
    let text = text.trim();
    let tail = match text.find("/api/data/") {
        Some(i) => {
            let after = &text[i + "/api/data/".len()..];
            after.split_once('/').map(|(_, rest)| rest)?
        }
        None => text.trim_start_matches('/'),
    };
    let (name, key) = split_call(tail).ok()?;
    Some((catalog.by_entity_set(name)?, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(path: &str) -> Vec<String> {
        path.split('/').map(str::to_string).collect()
    }

    fn check(path: &str, expected: &str) {
        let catalog = Catalog::builtin().unwrap();
        let got = match parse(&catalog, &segments(path)) {
            Ok(Resource::ServiceDocument) => "service".to_string(),
            Ok(Resource::Metadata) => "metadata".to_string(),
            Ok(Resource::Schema(s)) => format!("definitions {}", s.len()),
            Ok(Resource::Collection(e)) => format!("collection {}", e.logical_name),
            Ok(Resource::Count(e)) => format!("count {}", e.logical_name),
            Ok(Resource::Record(e, id)) => format!("record {} {id}", e.logical_name),
            Ok(Resource::Property {
                entity,
                position,
                raw,
                ..
            }) => format!(
                "property {} raw={raw}",
                entity.attributes[position].logical_name
            ),
            Ok(Resource::Navigation {
                entity,
                position,
                reference,
                ..
            }) => format!(
                "navigation {} ref={reference}",
                entity.attributes[position].logical_name
            ),
            Ok(Resource::Function { name, arguments }) => format!("function {name} {arguments:?}"),
            Ok(Resource::BoundFunction {
                entity,
                name,
                arguments,
                ..
            }) => format!(
                "bound function {}.{name} {arguments:?}",
                entity.logical_name
            ),
            Ok(Resource::Action(name)) => format!("action {name}"),
            Ok(Resource::BoundAction { entity, id, name }) => {
                format!("bound action {}.{name} {id}", entity.logical_name)
            }
            Ok(Resource::SmsChannels(id)) => format!("channels {id:?}"),
            Ok(Resource::CollectionAction { entity, name }) => {
                format!("collection action {}.{name}", entity.logical_name)
            }
            Ok(Resource::Association {
                entity,
                relationship,
                key,
                ..
            }) => format!("association {}.{relationship} {key:?}", entity.logical_name),
            Ok(Resource::RelatedRows { entity, source, .. }) => {
                format!("related {}->{}", entity.logical_name, source.logical_name)
            }
            Ok(Resource::RelatedReference {
                entity,
                source,
                key,
                ..
            }) => format!(
                "related ref {}->{} {key:?}",
                entity.logical_name, source.logical_name
            ),
            Err(e) => format!("error {e}"),
        };
        assert_eq!(got, expected, "{path}");
    }

    const ID: &str = "3c6e4b5f-86f6-e411-80dd-00155d2a68cb";

    #[test]
    fn collection_actions() {
        for name in COLLECTION_ACTIONS {
            let expected = format!("collection action msdyn_smsengagementctx.{name}");
            check(&format!("msdyn_smsengagementctxes/{name}"), &expected);
            check(
                &format!("msdyn_smsengagementctxes/Microsoft.Dynamics.CRM.{name}"),
                &expected,
            );
        }
        check(
            "msdyn_smsengagementctxes/DeleteMultiple",
            "error Resource not found for the segment 'DeleteMultiple'.",
        );
    }

    #[test]
    fn resources() {
        check("", "service");
        let contexts = "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid";
        check(
            &format!("msdyn_ocliveworkitems({ID})/{contexts}"),
            "related msdyn_ocliveworkitem->msdyn_smsengagementctx",
        );
        check(
            &format!("msdyn_ocliveworkitems({ID})/{contexts}/$ref"),
            "related ref msdyn_ocliveworkitem->msdyn_smsengagementctx None",
        );
        check(
            &format!("systemusers({ID})/user_msdyn_smsengagementctx({ID})/$ref"),
            &format!("related ref systemuser->msdyn_smsengagementctx Some({ID})"),
        );
        check(
            &format!("msdyn_ocliveworkitems({ID})/{contexts}({ID})"),
            &format!("error Resource not found for the segment '{contexts}({ID})'."),
        );
        check(
            "msdyn_smsengagementctxes",
            "collection msdyn_smsengagementctx",
        );
        check(
            "msdyn_smsengagementctxes/$count",
            "count msdyn_smsengagementctx",
        );
        check(
            &format!("msdyn_smsengagementctxes({ID})"),
            &format!("record msdyn_smsengagementctx {ID}"),
        );
        check(
            &format!("msdyn_smsengagementctxes({ID})/msdyn_name/$value"),
            "property msdyn_name raw=true",
        );
        check(
            &format!("msdyn_smsengagementctxes({ID})/_ownerid_value"),
            "property ownerid raw=false",
        );
        check(
            &format!("msdyn_smsengagementctxes({ID})/msdyn_liveworkitemid/$ref"),
            "navigation msdyn_liveworkitemid ref=true",
        );
        check(
            "IsValidStateTransition(Entity=@e,NewState=@s,NewStatus=@n)",
            r#"function IsValidStateTransition [("Entity", "@e"), ("NewState", "@s"), ("NewStatus", "@n")]"#,
        );
        check("GrantAccess", "action GrantAccess");
        for path in [
            "WhoAmI",
            "WhoAmI()",
            "Microsoft.Dynamics.CRM.WhoAmI",
            "Microsoft.Dynamics.CRM.WhoAmI()",
        ] {
            check(path, "function WhoAmI []");
        }
        check(
            "RetrieveTotalRecordCount(EntityNames=@p1)",
            r#"function RetrieveTotalRecordCount [("EntityNames", "@p1")]"#,
        );
        check(
            "WhoAmI/x",
            "error Resource not found for the segment 'WhoAmI'.",
        );
        check(
            "NoSuchFunction",
            "error Resource not found for the segment 'NoSuchFunction'.",
        );
        for call in [
            "Microsoft.Dynamics.CRM.RetrieveUserPrivileges()",
            "Microsoft.Dynamics.CRM.RetrieveUserPrivileges",
            "RetrieveUserPrivileges()",
            "RetrieveUserPrivileges",
        ] {
            check(
                &format!("systemusers({ID})/{call}"),
                "bound function systemuser.RetrieveUserPrivileges []",
            );
        }
        check(
            &format!(
                "systemusers({ID})/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@tid)"
            ),
            r#"bound function systemuser.RetrievePrincipalAccess [("Target", "@tid")]"#,
        );
        check(
            &format!("teams({ID})/teammembership_association/$ref"),
            "association team.teammembership_association None",
        );
        check(
            &format!("systemusers({ID})/systemuserroles_association({ID})/$ref"),
            &format!("association systemuser.systemuserroles_association Some({ID})"),
        );
        check(
            &format!("teams({ID})/teamroles_association"),
            "error Resource not found for the segment 'teamroles_association'.",
        );
    }

    #[test]
    fn the_named_primary_key() {
        check(
            &format!("msdyn_smsengagementctxes(msdyn_smsengagementctxid={ID})"),
            &format!("record msdyn_smsengagementctx {ID}"),
        );
        check(
            &format!("msdyn_smsengagementctxes(msdyn_smsengagementctxid={ID})/msdyn_name/$value"),
            "property msdyn_name raw=true",
        );
        check(
            &format!("systemusers(systemuserid={ID})/RetrieveUserPrivileges"),
            "bound function systemuser.RetrieveUserPrivileges []",
        );
        check(
            &format!(
                "msdyn_smsengagementctxes(msdyn_smsengagementctxid={ID})/Microsoft.Dynamics.CRM.smsctx_SendSms"
            ),
            &format!("bound action msdyn_smsengagementctx.smsctx_SendSms {ID}"),
        );
        check(
            &format!(
                "systemusers(systemuserid={ID})/systemuserroles_association(roleid={ID})/$ref"
            ),
            &format!("association systemuser.systemuserroles_association Some({ID})"),
        );
    }

    #[test]
    fn the_sms_channel_resources() {
        check("smsctx_smschannels", "channels None");
        check(
            &format!("smsctx_smschannels({ID})"),
            &format!("channels Some({ID})"),
        );
        check(
            &format!("msdyn_smsengagementctxes({ID})/Microsoft.Dynamics.CRM.smsctx_SendSms"),
            &format!("bound action msdyn_smsengagementctx.smsctx_SendSms {ID}"),
        );
        // Bound to the engagement context only, without parentheses, with nothing after it.
        check(
            &format!("systemusers({ID})/Microsoft.Dynamics.CRM.smsctx_SendSms"),
            "error Resource not found for the segment 'Microsoft.Dynamics.CRM.smsctx_SendSms'.",
        );
        check(
            &format!("msdyn_smsengagementctxes({ID})/Microsoft.Dynamics.CRM.Other"),
            "error Resource not found for the segment 'Microsoft.Dynamics.CRM.Other'.",
        );
        check(
            "smsctx_smschannels(bad)",
            "error Bad Request - Error in query syntax: 'bad' is not a valid key. A key is a GUID such as 00000000-0000-0000-0000-000000000000.",
        );
        check(
            "smsctx_smschannels/$count",
            "error Resource not found for the segment 'smsctx_smschannels'.",
        );
        // The channel's other tables are no entity sets.
        check(
            "smsctx_smsdeliveries",
            "error Resource not found for the segment 'smsctx_smsdeliveries'.",
        );
    }

    #[test]
    fn errors() {
        check(
            "Msdyn_smsengagementctxes",
            "error Resource not found for the segment 'Msdyn_smsengagementctxes'.",
        );
        check(
            &format!("msdyn_smsengagementctxes({ID})/Msdyn_name"),
            "error Resource not found for the segment 'Msdyn_name'.",
        );
        check(
            "msdyn_smsengagementctxes(42)",
            "error Bad Request - Error in query syntax: '42' is not a valid key. A key is a GUID such as 00000000-0000-0000-0000-000000000000.",
        );
        // An alternate key reaches `parse` only when the edge did not resolve it.
        let not_a_key = "error The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'. Ensure that the names and number of key properties match the declared or alternate key properties for the resource 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'.";
        check("msdyn_smsengagementctxes(msdyn_name='x')", not_a_key);
        check(
            "msdyn_smsengagementctxes(msdyn_smsengagementctxid=42)",
            "error Bad Request - Error in query syntax: '42' is not a valid key. A key is a GUID such as 00000000-0000-0000-0000-000000000000.",
        );
        // Another table's primary id is no key of this one.
        check(
            &format!("msdyn_smsengagementctxes(systemuserid={ID})"),
            not_a_key,
        );
        check(
            &format!("msdyn_smsengagementctxes({ID}"),
            &format!("error Resource not found for the segment 'msdyn_smsengagementctxes({ID}'."),
        );
    }

    #[test]
    fn alternate_keys_of_paths_and_references() {
        let catalog = Catalog::builtin().unwrap();
        let key = "msdyn_name='a,b'";
        let of_path = |path: &str| alternate_key_of_path(&catalog, &segments(path));
        let found = of_path(&format!("msdyn_smsengagementctxes({key})/msdyn_name"))
            .unwrap()
            .unwrap();
        assert_eq!(found.entity.logical_name, "msdyn_smsengagementctx");
        assert_eq!(found.columns(), vec!["msdyn_name".to_string()]);
        // The primary key, a collection, another segment's key and unknown sets have none.
        for path in [
            format!("msdyn_smsengagementctxes({ID})"),
            format!("msdyn_smsengagementctxes(msdyn_smsengagementctxid={ID})"),
            "msdyn_smsengagementctxes".to_string(),
            format!("systemusers({ID})/systemuserroles_association(roleid={ID})/$ref"),
            format!("nothing({key})"),
            "IsValidStateTransition(Entity=@e)".to_string(),
        ] {
            assert!(of_path(&path).unwrap().is_none(), "{path}");
        }
        assert!(of_path("msdyn_smsengagementctxes(msdyn_name=x)").is_err());
        for text in [
            format!("/msdyn_smsengagementctxes({key})"),
            format!("https://org.example/api/data/v9.2/msdyn_smsengagementctxes({key})"),
        ] {
            let found = alternate_key_of_reference(&catalog, &text)
                .unwrap()
                .unwrap();
            assert_eq!(found.columns(), vec!["msdyn_name".to_string()], "{text}");
        }
        let by_id = format!("/msdyn_smsengagementctxes({ID})");
        assert!(alternate_key_of_reference(&catalog, &by_id)
            .unwrap()
            .is_none());
        let entity = catalog.by_entity_set("msdyn_smsengagementctxes").unwrap();
        assert_eq!(
            record_segment(entity, Uuid::parse_str(ID).unwrap()),
            format!("msdyn_smsengagementctxes({ID})")
        );
    }

    #[test]
    fn references() {
        let catalog = Catalog::builtin().unwrap();
        for text in [
            format!("/systemusers({ID})"),
            format!("systemusers({ID})"),
            format!("https://org.example/api/data/v9.2/systemusers({ID})"),
        ] {
            let (entity, id) = parse_reference(&catalog, &text).unwrap();
            assert_eq!(entity.logical_name, "systemuser");
            assert_eq!(id.to_string(), ID);
        }
        let named = format!("/systemusers(systemuserid={ID})");
        let (entity, id) = parse_reference(&catalog, &named).unwrap();
        assert_eq!(
            (entity.logical_name.as_str(), id.to_string()),
            ("systemuser", ID.into())
        );
        assert!(parse_reference(&catalog, &format!("/systemusers(teamid={ID})")).is_none());
        assert!(parse_reference(&catalog, "/nothing(1)").is_none());
        assert!(parse_reference(&catalog, "/systemusers(1)").is_none());
    }
}
