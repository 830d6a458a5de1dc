//! The identity and organisation messages: WhoAmI, RetrieveVersion, RetrieveCurrentOrganization,
//! RetrieveUserPrivileges and RetrieveTotalRecordCount, and the one organisation a store holds.
//!
//! The organisation is a row of the read-only `organization` table (`metadata/organization.md`),
//! seeded at first start ([`seed`]) and read once when the server starts: its id is what WhoAmI
//! returns as `OrganizationId`, its name the `FriendlyName` of RetrieveCurrentOrganization.
//!
//! What the caller's rights mean for RetrieveTotalRecordCount: Dataverse answers a snapshot of
//! each table's total, taken within the last 24 hours. smsctx counts at the time of the request,
//! through the caller's guard, so the count is that of the rows the caller may read (the Read
//! privilege is needed on each table named, and its depth and the shares apply): a total never
//! reveals rows a caller could not list.

use std::sync::Arc;

use uuid::Uuid;

use super::{Caller, ExecError, Service};
use crate::authorize::{Guard, MessageError};
use crate::metadata::system::{IS_AUDIT_ENABLED, IS_DISABLED, LANGUAGE_CODE, NAME, ORGANIZATION};
use crate::metadata::{Catalog, Entity};
use crate::parse::body::Payload;
use crate::security::{privilege_id, Depth, ACT_ON_BEHALF_OF_ANOTHER_USER};
use crate::store::sql::Plan;
use crate::store::{Access, Store, StoreError, Value, WriteOp};

/// The language of the seeded organisation (English, as Dataverse's default).
const DEFAULT_LANGUAGE_CODE: i64 = 1033;

/// The organisation a store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub language_code: i64,
    /// `isdisabled`: RetrieveCurrentOrganization's `State` is `Disabled`.
    pub disabled: bool,
}

fn organization_table(catalog: &Catalog) -> Result<&Arc<Entity>, ExecError> {
    catalog
        .entity(ORGANIZATION)
        .ok_or_else(|| StoreError::UnknownTable(ORGANIZATION.into()).into())
}

/// Seeds the organisation row `id` when it is not there yet (its name is `name`), then reads it.
/// The row is written past the `Create` message, which the table does not support.
pub async fn seed(
    service: &Service,
    admin: &Caller,
    id: Uuid,
    name: &str,
) -> Result<Organization, ExecError> {
    let table = Arc::clone(organization_table(&service.catalog)?);
    // Seeding runs before any caller exists: system access.
    let store: &dyn Store = service.system().store();
    if store.get(&table, id, false).await?.is_none() {
        let values = [
            (NAME, Value::Text(name.to_string())),
            (LANGUAGE_CODE, Value::Int(DEFAULT_LANGUAGE_CODE)),
            (IS_DISABLED, Value::Bool(false)),
            (IS_AUDIT_ENABLED, Value::Bool(true)),
        ];
        let payload = Payload {
            values: values
                .into_iter()
                .filter_map(|(column, value)| Some((table.position(column)?, value)))
                .collect(),
            binds: Vec::new(),
        };
        let record = service
            .build_new(store, admin, &table, payload, Some(id))
            .await?;
        match store.write(WriteOp::Insert(record)).await {
            Ok(_) | Err(StoreError::Duplicate) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let row = store
        .get(&table, id, false)
        .await?
        .ok_or_else(|| ExecError::NotFound {
            entity: ORGANIZATION.to_string(),
            id,
        })?;
    Ok(Organization {
        id,
        name: row.get(NAME).as_text().unwrap_or_default().to_string(),
        language_code: row
            .get(LANGUAGE_CODE)
            .as_int()
            .unwrap_or(DEFAULT_LANGUAGE_CODE),
        disabled: matches!(row.get(IS_DISABLED), Value::Bool(true)),
    })
}

/// The version RetrieveVersion answers: the Web API version served (9.2), then smsctx's own
/// (`major * 100 + minor`, then patch).
pub fn version() -> String {
    let number = |text: &str| text.parse::<u32>().unwrap_or(0);
    let major = number(env!("CARGO_PKG_VERSION_MAJOR"));
    let minor = number(env!("CARGO_PKG_VERSION_MINOR"));
    let patch = number(env!("CARGO_PKG_VERSION_PATCH"));
    format!("9.2.{}.{patch}", major * 100 + minor)
}

/// WhoAmI: the caller (the impersonated user when impersonating), its business unit, and the
/// organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhoAmI {
    pub user_id: Uuid,
    pub business_unit_id: Uuid,
    pub organization_id: Uuid,
}

pub fn who_am_i(caller: &Caller, organization: &Organization) -> WhoAmI {
    WhoAmI {
        user_id: caller.user_id,
        business_unit_id: caller.business_unit_id,
        organization_id: organization.id,
    }
}

/// Dataverse's `EndpointAccessType`: which network the endpoints are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointAccessType {
    Default,
    Internet,
    Intranet,
}

impl EndpointAccessType {
    const ALL: [(EndpointAccessType, &'static str, i64); 3] = [
        (EndpointAccessType::Default, "Default", 0),
        (EndpointAccessType::Internet, "Internet", 1),
        (EndpointAccessType::Intranet, "Intranet", 2),
    ];

    /// `Microsoft.Dynamics.CRM.EndpointAccessType'Default'`, `'Default'`, `Default` or `0`.
    pub fn parse(text: &str) -> Option<EndpointAccessType> {
        let text = text.trim();
        let text = text
            .strip_prefix("Microsoft.Dynamics.CRM.EndpointAccessType")
            .unwrap_or(text);
        let bare = text
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .unwrap_or(text);
        Self::ALL
            .iter()
            .find(|(_, name, value)| *name == bare || value.to_string() == bare)
            .map(|(access, _, _)| *access)
    }
}

/// Dataverse's `EndpointType` members, in the order the endpoints are listed.
pub const ENDPOINT_TYPES: [&str; 3] = [
    "WebApplication",
    "OrganizationService",
    "OrganizationDataService",
];

/// RetrieveCurrentOrganization's `OrganizationDetail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationDetail {
    pub organization_id: Uuid,
    pub friendly_name: String,
    pub version: String,
    pub url_name: String,
    pub unique_name: String,
    /// (EndpointType member, URL), one per [`ENDPOINT_TYPES`].
    pub endpoints: Vec<(&'static str, String)>,
    pub state: &'static str,
}

/// The organisation as served at `server_url` (`https://host[:port]`, from the request's Host
/// and scheme): every endpoint points at this server, whichever access type is asked for (one
/// server answers on every network).
pub fn current_organization(
    organization: &Organization,
    server_url: &str,
    _access: EndpointAccessType,
) -> OrganizationDetail {
    let server_url = server_url.trim_end_matches('/');
    let host = server_url
        .split_once("://")
        .map_or(server_url, |(_, rest)| rest);
    let url_name = host
        .split(['.', ':'])
        .next()
        .unwrap_or_default()
        .to_string();
    let endpoints = vec![
        (ENDPOINT_TYPES[0], format!("{server_url}/")),
        (
            ENDPOINT_TYPES[1],
            format!("{server_url}/XRMServices/2011/Organization.svc"),
        ),
        (
            ENDPOINT_TYPES[2],
            format!("{server_url}/XRMServices/2011/OrganizationData.svc"),
        ),
    ];
    OrganizationDetail {
        organization_id: organization.id,
        friendly_name: organization.name.clone(),
        version: version(),
        url_name,
        unique_name: organization.name.clone(),
        endpoints,
        state: if organization.disabled {
            "Disabled"
        } else {
            "Enabled"
        },
    }
}

/// One entry of RetrieveUserPrivileges' `RolePrivileges`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePrivilege {
    pub depth: Depth,
    pub privilege_id: Uuid,
    pub business_unit_id: Uuid,
    pub privilege_name: String,
}

/// RetrieveUserPrivileges: every privilege the user holds through its roles and its teams'
/// roles, one entry per business unit the privilege is measured from (a role of the user's own
/// counts from the user's unit, a team's role from the team's unit), ordered by name. The
/// caller must be able to read the user.
pub async fn user_privileges(
    db: &Guard<'_>,
    user: Uuid,
) -> Result<Vec<RolePrivilege>, MessageError> {
    let context = db.user_privileges(user).await?;
    let mut out = Vec::new();
    for (entity, privilege, grants) in context.privileges.iter() {
        let name = privilege.dataverse_name(entity);
        for grant in grants {
            out.push(RolePrivilege {
                depth: grant.depth,
                privilege_id: privilege_id(&name),
                business_unit_id: grant.business_unit,
                privilege_name: name.clone(),
            });
        }
    }
    if context.can_act_on_behalf {
        out.push(RolePrivilege {
            depth: Depth::Global,
            privilege_id: privilege_id(ACT_ON_BEHALF_OF_ANOTHER_USER),
            business_unit_id: context.business_unit_id,
            privilege_name: ACT_ON_BEHALF_OF_ANOTHER_USER.to_string(),
        });
    }
    out.sort_by(|a, b| {
        (&a.privilege_name, a.business_unit_id).cmp(&(&b.privilege_name, b.business_unit_id))
    });
    Ok(out)
}

/// RetrieveTotalRecordCount: per table logical name, in the order asked, the number of its rows
/// the caller may read (see the module doc). A name that is no table is refused.
pub async fn total_record_count(
    service: &Service,
    db: &dyn Access,
    caller: &Caller,
    names: &[String],
) -> Result<Vec<(String, u64)>, ExecError> {
    let mut entities = Vec::with_capacity(names.len());
    for name in names {
        let entity = service
            .catalog
            .entity(name)
            .ok_or_else(|| ExecError::UnknownEntity(name.clone()))?;
        entities.push(Arc::clone(entity));
    }
    let mut out = Vec::with_capacity(entities.len());
    for entity in entities {
        let plan = Plan {
            entity: Arc::clone(&entity),
            filter: None,
            order: Vec::new(),
            limit: None,
            after: None,
            scope: None,
            related: None,
        };
        let total = service.count(db, caller, plan, usize::MAX).await?;
        out.push((entity.logical_name.clone(), total));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn organization() -> Organization {
        Organization {
            id: Uuid::from_u128(7),
            name: "smsctx".into(),
            language_code: 1033,
            disabled: false,
        }
    }

    #[test]
    fn access_types_parse_in_every_spelling_dataverse_clients_send() {
        for text in [
            "Microsoft.Dynamics.CRM.EndpointAccessType'Default'",
            "'Default'",
            "Default",
            "0",
        ] {
            assert_eq!(
                EndpointAccessType::parse(text),
                Some(EndpointAccessType::Default),
                "{text}"
            );
        }
        assert_eq!(
            EndpointAccessType::parse("Microsoft.Dynamics.CRM.EndpointAccessType'Intranet'"),
            Some(EndpointAccessType::Intranet)
        );
        assert_eq!(EndpointAccessType::parse("'Everywhere'"), None);
        assert_eq!(EndpointAccessType::parse("3"), None);
    }

    #[test]
    fn endpoints_point_at_the_server_asked() {
        let detail = current_organization(
            &organization(),
            "https://contoso.example.com:8443/",
            EndpointAccessType::Default,
        );
        assert_eq!(detail.url_name, "contoso");
        assert_eq!(
            detail.endpoints,
            vec![
                ("WebApplication", "https://contoso.example.com:8443/".into()),
                (
                    "OrganizationService",
                    "https://contoso.example.com:8443/XRMServices/2011/Organization.svc".into()
                ),
                (
                    "OrganizationDataService",
                    "https://contoso.example.com:8443/XRMServices/2011/OrganizationData.svc".into()
                ),
            ]
        );
        assert_eq!(detail.friendly_name, "smsctx");
        assert_eq!(detail.state, "Enabled");
    }

    #[test]
    fn the_version_is_the_web_api_version_then_smsctx_own() {
        let version = version();
        assert!(version.starts_with("9.2."), "{version}");
        assert_eq!(version.split('.').count(), 4, "{version}");
        assert!(version.split('.').all(|part| part.parse::<u32>().is_ok()));
    }
}
