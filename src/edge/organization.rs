//! The identity and organisation functions on the wire: WhoAmI, RetrieveVersion,
//! RetrieveCurrentOrganization and RetrieveTotalRecordCount (unbound), and
//! RetrieveUserPrivileges (bound to `systemusers(<id>)`). Decoding the arguments and encoding the
//! Dataverse response types only: [`crate::execute::organization`] answers.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use super::error::ApiError;
use super::{argument, json_response, Call};
use crate::execute::organization::{self as org, EndpointAccessType};
use crate::metadata::system::SYSTEM_USER;
use crate::metadata::Entity;
use crate::parse::ParseError;

/// The unbound functions this module answers.
pub(super) const FUNCTIONS: &[&str] = &[
    "WhoAmI",
    "RetrieveVersion",
    "RetrieveCurrentOrganization",
    "RetrieveTotalRecordCount",
];

/// The bound function this module answers.
pub(super) const USER_PRIVILEGES: &str = "RetrieveUserPrivileges";

fn bad(message: impl Into<String>) -> ApiError {
    ParseError::InvalidArgument(message.into()).into()
}

/// A response of the complex type `name`: `{"@odata.context": "...#Microsoft.Dynamics.CRM.<name>", ...}`.
pub(super) fn response_of(call: &Call<'_>, name: &str, members: Vec<(&str, Json)>) -> Response {
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Json::String(format!(
            "{}$metadata#Microsoft.Dynamics.CRM.{name}",
            call.root
        )),
    );
    for (key, value) in members {
        body.insert(key.to_string(), value);
    }
    json_response(StatusCode::OK, &body)
}

/// Refuses parameters a function does not declare (none is silently ignored).
fn only(name: &str, arguments: &[(String, String)], declared: &[&str]) -> Result<(), ApiError> {
    match arguments
        .iter()
        .find(|(n, _)| !declared.contains(&n.as_str()))
    {
        Some((n, _)) => Err(bad(format!(
            "The function '{name}' has no parameter '{n}'."
        ))),
        None => Ok(()),
    }
}

/// `https://host[:port]`: the server as the request reached it (Host, and the scheme from TLS or
/// `X-Forwarded-Proto`, as the service root was built).
fn server_url<'a>(call: &'a Call<'_>) -> &'a str {
    call.root
        .split_once("/api/data/")
        .map_or(call.root.as_str(), |(server, _)| server)
}

/// `GET /WhoAmI()`, `/RetrieveVersion()`, `/RetrieveCurrentOrganization(AccessType=@p)`,
/// `/RetrieveTotalRecordCount(EntityNames=@p)`.
pub(super) async fn function(
    call: &Call<'_>,
    name: &str,
    arguments: &[(String, String)],
) -> Result<Response, ApiError> {
    if call.method != Method::GET {
        return Err(ApiError::no_resource(&call.uri));
    }
    let organization = &call.state.organization;
    match name {
        "WhoAmI" => {
            only(name, arguments, &[])?;
            let who = org::who_am_i(&call.caller, organization);
            Ok(response_of(
                call,
                "WhoAmIResponse",
                vec![
                    ("BusinessUnitId", json!(who.business_unit_id)),
                    ("UserId", json!(who.user_id)),
                    ("OrganizationId", json!(who.organization_id)),
                ],
            ))
        }
        "RetrieveVersion" => {
            only(name, arguments, &[])?;
            Ok(response_of(
                call,
                "RetrieveVersionResponse",
                vec![("Version", json!(org::version()))],
            ))
        }
        "RetrieveCurrentOrganization" => {
            only(name, arguments, &["AccessType"])?;
            let text = argument(call, arguments, "AccessType")?;
            let access = EndpointAccessType::parse(text).ok_or_else(|| {
                bad(format!(
                    "The parameter 'AccessType' must be an EndpointAccessType (Default, Internet or Intranet) such as Microsoft.Dynamics.CRM.EndpointAccessType'Default', not {text}."
                ))
            })?;
            let detail = org::current_organization(organization, server_url(call), access);
            let (keys, values): (Vec<&str>, Vec<&str>) = detail
                .endpoints
                .iter()
                .map(|(kind, url)| (*kind, url.as_str()))
                .unzip();
            let body = json!({
                "OrganizationId": detail.organization_id,
                "FriendlyName": detail.friendly_name,
                "OrganizationVersion": detail.version,
                "EnvironmentId": null,
                "DatacenterId": null,
                "Geo": null,
                "TenantId": null,
                "UrlName": detail.url_name,
                "UniqueName": detail.unique_name,
                "Endpoints": {
                    "Count": keys.len(),
                    "IsReadOnly": false,
                    "Keys": keys,
                    "Values": values,
                },
                "State": detail.state,
            });
            Ok(response_of(
                call,
                "RetrieveCurrentOrganizationResponse",
                vec![("Detail", body)],
            ))
        }
        "RetrieveTotalRecordCount" => {
            only(name, arguments, &["EntityNames"])?;
            let text = argument(call, arguments, "EntityNames")?;
            let names: Vec<String> = serde_json::from_str(text)
                .or_else(|_| serde_json::from_str(&text.replace('\'', "\"")))
                .map_err(|_| {
                    bad(format!(
                        "The parameter 'EntityNames' must be a JSON array of table logical names such as [\"msdyn_smsengagementctx\"], not {text}."
                    ))
                })?;
            let counts =
                org::total_record_count(&call.state.service, call.db, &call.caller, &names).await?;
            let (keys, values): (Vec<String>, Vec<u64>) = counts.into_iter().unzip();
            Ok(response_of(
                call,
                "RetrieveTotalRecordCountResponse",
                vec![(
                    "EntityRecordCountCollection",
                    json!({
                        "Count": keys.len(),
                        "IsReadOnly": false,
                        "Keys": keys,
                        "Values": values,
                    }),
                )],
            ))
        }
        _ => Err(ParseError::ResourceNotFound(name.to_string()).into()),
    }
}

/// `GET /systemusers(<id>)/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()`.
pub(super) async fn user_privileges(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    id: Uuid,
    arguments: &[(String, String)],
) -> Result<Response, ApiError> {
    if call.method != Method::GET {
        return Err(ApiError::no_resource(&call.uri));
    }
    if entity.logical_name != SYSTEM_USER {
        return Err(ParseError::ResourceNotFound(USER_PRIVILEGES.to_string()).into());
    }
    only(USER_PRIVILEGES, arguments, &[])?;
    let privileges = org::user_privileges(call.db, id).await?;
    let entries: Vec<Json> = privileges
        .iter()
        .map(|p| {
            json!({
                "Depth": p.depth.name(),
                "PrivilegeId": p.privilege_id,
                "BusinessUnitId": p.business_unit_id,
                "PrivilegeName": p.privilege_name,
            })
        })
        .collect();
    Ok(response_of(
        call,
        "RetrieveUserPrivilegesResponse",
        vec![("RolePrivileges", Json::Array(entries))],
    ))
}
