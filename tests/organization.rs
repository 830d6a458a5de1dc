//! The identity and organisation functions over HTTP: WhoAmI, RetrieveVersion,
//! RetrieveCurrentOrganization, RetrieveUserPrivileges and RetrieveTotalRecordCount in every
//! calling form (with and without `()`, with and without the `Microsoft.Dynamics.CRM.` prefix,
//! inline arguments and parameter aliases), inside `$batch`, with impersonation, and the
//! read-only `organizations` table with its refusals.

use crate::common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use smsctx::security::{jwt, privilege_id};
use uuid::Uuid;

const NS: &str = "Microsoft.Dynamics.CRM.";

/// A signed-in user: its id and a bearer token.
struct User {
    id: String,
    token: String,
}

/// A server with its seeded ids.
struct Org {
    app: TestApp,
    admin: String,
    root: String,
    organization: String,
}

impl Org {
    async fn new() -> Org {
        Org::on(spawn_app().await).await
    }

    async fn on(app: TestApp) -> Org {
        let admin = app
            .get_json("systemusers?$filter=domainname eq 'admin'")
            .await["value"][0]["systemuserid"]
            .as_str()
            .unwrap()
            .to_string();
        let root = root_unit(&app).await;
        let organizations = app.get_json("organizations").await;
        let rows = organizations["value"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "one organization: {organizations}");
        let organization = rows[0]["organizationid"].as_str().unwrap().to_string();
        Org {
            app,
            admin,
            root,
            organization,
        }
    }

    /// A user of the root unit holding the built-in roles named.
    async fn user(&self, name: &str, roles: &[&str]) -> User {
        let oid = Uuid::new_v4();
        let id = self
            .app
            .create(
                "systemusers",
                &json!({
                    "firstname": name, "lastname": "Test",
                    "azureactivedirectoryobjectid": oid.to_string(),
                    "businessunitid@odata.bind": format!("/businessunits({})", self.root),
                }),
            )
            .await;
        for role in roles {
            let path = format!(
                "roles?$filter=name eq '{role}' and _businessunitid_value eq {}",
                self.root
            );
            let role_id = self.app.get_json(&path).await["value"][0]["roleid"]
                .as_str()
                .unwrap()
                .to_string();
            let response = self
                .app
                .post(
                    &format!("systemusers({id})/systemuserroles_association/$ref"),
                    &json!({"@odata.id": self.app.url(&format!("roles({role_id})"))}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
        }
        User {
            id,
            token: jwt::mint(JWT_SECRET.as_bytes(), oid, Duration::from_secs(600)),
        }
    }

    /// A request as `token` (the harness's requests carry the admin token).
    fn request_as(&self, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(token)
            .header("OData-MaxVersion", "4.0")
            .header("OData-Version", "4.0")
            .header("Accept", "application/json")
    }

    /// `GET path` as `token` (the admin token when `None`), the way dataverse-webapi and
    /// dynamics-web-api send it: status and JSON body.
    async fn call(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let response = self
            .request_as(token.unwrap_or(TOKEN), Method::GET, path)
            .header("Content-Type", "application/json; charset=utf-8")
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, path: &str, token: Option<&str>) -> Value {
        let (status, body) = self.call(path, token).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }
}

/// The four spellings of a function call: bare, with `()`, and both with the namespace.
fn forms(name: &str) -> [String; 4] {
    [
        name.to_string(),
        format!("{name}()"),
        format!("{NS}{name}"),
        format!("{NS}{name}()"),
    ]
}

fn assert_context(body: &Value, org: &Org, type_name: &str) {
    assert_eq!(
        body["@odata.context"],
        format!(
            "{}$metadata#Microsoft.Dynamics.CRM.{type_name}",
            org.app.base
        ),
        "{body}"
    );
}

async fn assert_refused(org: &Org, path: &str, status: StatusCode, code: &str, part: &str) {
    let response = org.app.get(path).send().await.unwrap();
    assert_error(response, status, code, part).await;
}

#[tokio::test]
async fn who_am_i_names_the_caller_its_unit_and_the_organization_in_every_form() {
    let org = Org::new().await;
    for path in forms("WhoAmI") {
        let body = org.ok(&path, None).await;
        assert_context(&body, &org, "WhoAmIResponse");
        assert_eq!(body["UserId"], org.admin, "{path}");
        assert_eq!(body["BusinessUnitId"], org.root, "{path}");
        assert_eq!(body["OrganizationId"], org.organization, "{path}");
    }
    // A signed-in user sees itself.
    let agent = org.user("agent", &["Omnichannel agent"]).await;
    let body = org.ok("WhoAmI()", Some(&agent.token)).await;
    assert_eq!(body["UserId"], agent.id);
    assert_eq!(body["OrganizationId"], org.organization);
    // A user without any role may still ask who it is.
    let nobody = org.user("nobody", &[]).await;
    let body = org.ok("WhoAmI()", Some(&nobody.token)).await;
    assert_eq!(body["UserId"], nobody.id);
    // Every Web API version answers the same.
    let v90 = org
        .app
        .client
        .get(org.app.base.replace("v9.2", "v9.0") + "WhoAmI()")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(v90.status(), StatusCode::OK);
    let v90: Value = v90.json().await.unwrap();
    assert_eq!(v90["UserId"], org.admin);
    assert!(v90["@odata.context"]
        .as_str()
        .unwrap()
        .contains("/api/data/v9.0/$metadata#"));
}

#[tokio::test]
async fn who_am_i_applies_impersonation() {
    let org = Org::new().await;
    let oid = Uuid::new_v4();
    let target = org
        .app
        .create(
            "systemusers",
            &json!({"firstname": "Target", "lastname": "User",
                    "azureactivedirectoryobjectid": oid.to_string(),
                    "businessunitid@odata.bind": format!("/businessunits({})", org.root)}),
        )
        .await;
    for (header, value) in [
        ("MSCRMCallerID", target.clone()),
        ("CallerObjectId", oid.to_string()),
    ] {
        let response = org
            .app
            .get("WhoAmI()")
            .header(header, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{header}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["UserId"], target, "{header}");
        assert_eq!(body["BusinessUnitId"], org.root);
        assert_eq!(body["OrganizationId"], org.organization);
    }
    // Impersonation needs prvActOnBehalfOfAnotherUser, which an agent does not hold.
    let agent = org.user("agent", &["Omnichannel agent"]).await;
    let response = org
        .request_as(&agent.token, Method::GET, "WhoAmI()")
        .header("MSCRMCallerID", &target)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
}

#[tokio::test]
async fn retrieve_version_answers_a_9_2_version_in_every_form() {
    let org = Org::new().await;
    for path in forms("RetrieveVersion") {
        let body = org.ok(&path, None).await;
        assert_context(&body, &org, "RetrieveVersionResponse");
        let version = body["Version"].as_str().unwrap();
        let parts: Vec<&str> = version.split('.').collect();
        assert_eq!(parts.len(), 4, "{version}");
        assert_eq!(&parts[..2], ["9", "2"], "{version}");
        assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{version}");
    }
}

#[tokio::test]
async fn retrieve_current_organization_points_its_endpoints_at_this_server() {
    let org = Org::new().await;
    let server = org.app.base.trim_end_matches("/api/data/v9.2/").to_string();
    let alias = "@p=Microsoft.Dynamics.CRM.EndpointAccessType'Default'";
    let paths = [
        format!("RetrieveCurrentOrganization(AccessType=@p)?{alias}"),
        format!("{NS}RetrieveCurrentOrganization(AccessType=@p)?{alias}"),
        "RetrieveCurrentOrganization(AccessType=Microsoft.Dynamics.CRM.EndpointAccessType'Default')"
            .to_string(),
        // dynamics-web-api quotes enum values it does not recognise as its own.
        "RetrieveCurrentOrganization(AccessType=@p1)?@p1='Default'".to_string(),
        "RetrieveCurrentOrganization(AccessType=@p1)?@p1=0".to_string(),
    ];
    for path in &paths {
        let body = org.ok(path, None).await;
        assert_context(&body, &org, "RetrieveCurrentOrganizationResponse");
        let detail = &body["Detail"];
        assert_eq!(detail["OrganizationId"], org.organization, "{path}");
        assert_eq!(detail["FriendlyName"], "smsctx");
        assert_eq!(detail["UniqueName"], "smsctx");
        assert_eq!(detail["UrlName"], "127");
        assert_eq!(detail["State"], "Enabled");
        assert!(detail["OrganizationVersion"]
            .as_str()
            .unwrap()
            .starts_with("9.2."));
        let endpoints = &detail["Endpoints"];
        assert_eq!(endpoints["Count"], 3);
        assert_eq!(endpoints["IsReadOnly"], false);
        assert_eq!(
            endpoints["Keys"],
            json!([
                "WebApplication",
                "OrganizationService",
                "OrganizationDataService"
            ])
        );
        assert_eq!(
            endpoints["Values"],
            json!([
                format!("{server}/"),
                format!("{server}/XRMServices/2011/Organization.svc"),
                format!("{server}/XRMServices/2011/OrganizationData.svc"),
            ])
        );
    }
    // Behind a proxy: the Host the client used and X-Forwarded-Proto.
    let response = org
        .app
        .get(&paths[0])
        .header("Host", "contoso.example.com")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["Detail"]["Endpoints"]["Values"][0],
        "https://contoso.example.com/"
    );
    assert_eq!(body["Detail"]["UrlName"], "contoso");

    assert_refused(
        &org,
        "RetrieveCurrentOrganization",
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "The parameter 'AccessType' is missing.",
    )
    .await;
    assert_refused(
        &org,
        "RetrieveCurrentOrganization(AccessType=@p)?@p=Microsoft.Dynamics.CRM.EndpointAccessType'Everywhere'",
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "EndpointAccessType",
    )
    .await;
    assert_refused(
        &org,
        "RetrieveCurrentOrganization(AccessType=@p)",
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "The parameter alias '@p' has no value.",
    )
    .await;
    assert_refused(
        &org,
        "RetrieveCurrentOrganization(AccessType=0,Extra=1)",
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "has no parameter 'Extra'",
    )
    .await;
    assert_refused(
        &org,
        "WhoAmI(UserId=1)",
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "has no parameter 'UserId'",
    )
    .await;
}

#[tokio::test]
async fn retrieve_user_privileges_lists_the_security_model_of_the_user() {
    let org = Org::new().await;
    let admin_path = |call: &str| format!("systemusers({})/{call}", org.admin);
    for call in [
        format!("{NS}RetrieveUserPrivileges()"),
        format!("{NS}RetrieveUserPrivileges"),
        "RetrieveUserPrivileges()".to_string(),
        "RetrieveUserPrivileges".to_string(),
    ] {
        let body = org.ok(&admin_path(&call), None).await;
        assert_context(&body, &org, "RetrieveUserPrivilegesResponse");
        let privileges = body["RolePrivileges"].as_array().unwrap();
        let read = privileges
            .iter()
            .find(|p| p["PrivilegeName"] == "prvReadmsdyn_smsengagementctx")
            .unwrap_or_else(|| panic!("no read privilege in {body}"));
        assert_eq!(read["Depth"], "Global");
        assert_eq!(read["BusinessUnitId"], org.root);
        assert_eq!(
            read["PrivilegeId"],
            privilege_id("prvReadmsdyn_smsengagementctx").to_string()
        );
        assert!(privileges
            .iter()
            .any(|p| p["PrivilegeName"] == "prvActOnBehalfOfAnotherUser"));
        assert!(privileges
            .iter()
            .any(|p| p["PrivilegeName"] == "prvReadOrganization" && p["Depth"] == "Global"));
    }

    // A Basic User holds the context privileges at Basic depth and nothing on conversations.
    let basic = org.user("basic", &["Basic User"]).await;
    let body = org
        .ok(
            &format!("systemusers({})/{NS}RetrieveUserPrivileges()", basic.id),
            Some(&basic.token),
        )
        .await;
    let privileges = body["RolePrivileges"].as_array().unwrap();
    let names: Vec<(&str, &str)> = privileges
        .iter()
        .map(|p| {
            (
                p["PrivilegeName"].as_str().unwrap(),
                p["Depth"].as_str().unwrap(),
            )
        })
        .collect();
    for privilege in [
        "Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share",
    ] {
        let name = format!("prv{privilege}msdyn_smsengagementctx");
        assert!(
            names.contains(&(name.as_str(), "Basic")),
            "{name} in {names:?}"
        );
    }
    assert!(names.contains(&("prvReadUser", "Global")));
    assert!(!names
        .iter()
        .any(|(n, _)| n.contains("msdyn_ocliveworkitem")));
    assert!(!names
        .iter()
        .any(|(n, _)| *n == "prvActOnBehalfOfAnotherUser"));
    // ... and may read the administrator's (Read on users at Global).
    let (status, _) = org
        .call(
            &format!("systemusers({})/{NS}RetrieveUserPrivileges()", org.admin),
            Some(&basic.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A user without roles may not read users at all.
    let nobody = org.user("nobody", &[]).await;
    let response = org
        .request_as(
            &nobody.token,
            Method::GET,
            &format!("systemusers({})/{NS}RetrieveUserPrivileges()", org.admin),
        )
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "0x80040220", "prvReadUser").await;

    let missing = Uuid::new_v4();
    assert_refused(
        &org,
        &format!("systemusers({missing})/{NS}RetrieveUserPrivileges()"),
        StatusCode::NOT_FOUND,
        "0x80040217",
        &format!("systemuser With Id = {missing} Does Not Exist"),
    )
    .await;
    // Bound to users only.
    let team = org
        .app
        .create(
            "teams",
            &json!({"name": "t", "teamtype": 0, "businessunitid@odata.bind": format!("/businessunits({})", org.root)}),
        )
        .await;
    assert_refused(
        &org,
        &format!("teams({team})/{NS}RetrieveUserPrivileges()"),
        StatusCode::NOT_FOUND,
        "0x8006088a",
        "RetrieveUserPrivileges",
    )
    .await;
    // A function answers GET only.
    let response = org
        .app
        .post(
            &admin_path(&format!("{NS}RetrieveUserPrivileges()")),
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn retrieve_total_record_count_counts_the_rows_the_caller_may_read() {
    let org = Org::new().await;
    for i in 0..3 {
        org.app
            .create(CTX, &json!({"msdyn_name": format!("admin {i}")}))
            .await;
    }
    let basic = org.user("basic", &["Basic User"]).await;
    let response = org
        .request_as(&basic.token, Method::POST, CTX)
        .json(&json!({"msdyn_name": "basic's own"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let names = r#"["msdyn_smsengagementctx","organization"]"#;
    let paths = [
        format!("RetrieveTotalRecordCount(EntityNames=@p)?@p={names}"),
        format!("{NS}RetrieveTotalRecordCount(EntityNames=@p)?@p={names}"),
        format!("RetrieveTotalRecordCount(EntityNames={names})"),
    ];
    for path in &paths {
        let body = org.ok(path, None).await;
        assert_context(&body, &org, "RetrieveTotalRecordCountResponse");
        assert_eq!(
            body["EntityRecordCountCollection"],
            json!({
                "Count": 2,
                "IsReadOnly": false,
                "Keys": ["msdyn_smsengagementctx", "organization"],
                "Values": [4, 1],
            }),
            "{path}"
        );
    }
    // The Basic User's Read is at Basic depth: its own context only.
    let body = org.ok(&paths[0], Some(&basic.token)).await;
    assert_eq!(body["EntityRecordCountCollection"]["Values"], json!([1, 1]));

    assert_refused(
        &org,
        "RetrieveTotalRecordCount(EntityNames=@p)?@p=[\"account\"]",
        StatusCode::BAD_REQUEST,
        "0x80041102",
        "The entity with a name = 'account'",
    )
    .await;
    assert_refused(
        &org,
        "RetrieveTotalRecordCount(EntityNames=@p)?@p=msdyn_smsengagementctx",
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "JSON array",
    )
    .await;
    assert_refused(
        &org,
        "RetrieveTotalRecordCount()",
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "The parameter 'EntityNames' is missing.",
    )
    .await;
    // A table the caller may not read at all is refused, not counted as zero.
    let response = org
        .request_as(
            &basic.token,
            Method::GET,
            "RetrieveTotalRecordCount(EntityNames=@p)?@p=[\"role\"]",
        )
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "0x80040220", "prvReadRole").await;
}

/// Joins lines with CRLF, as the multipart format wants.
fn crlf(lines: &[String]) -> String {
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    text
}

#[tokio::test]
async fn every_function_runs_inside_batch() {
    let org = Org::new().await;
    let requests = [
        "WhoAmI()".to_string(),
        "Microsoft.Dynamics.CRM.RetrieveVersion".to_string(),
        "RetrieveCurrentOrganization(AccessType=@p)?@p=Microsoft.Dynamics.CRM.EndpointAccessType'Default'"
            .to_string(),
        "RetrieveTotalRecordCount(EntityNames=@p)?@p=[\"organization\"]".to_string(),
        format!(
            "systemusers({})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()",
            org.admin
        ),
    ];
    let mut lines = Vec::new();
    for path in &requests {
        lines.extend([
            "--batch_A".to_string(),
            "Content-Type: application/http".to_string(),
            "Content-Transfer-Encoding: binary".to_string(),
            String::new(),
            format!("GET /api/data/v9.2/{path} HTTP/1.1"),
            "Accept: application/json".to_string(),
            String::new(),
        ]);
    }
    lines.push("--batch_A--".to_string());
    let response = org
        .app
        .request(Method::POST, "$batch")
        .header("Content-Type", "multipart/mixed; boundary=\"batch_A\"")
        .body(crlf(&lines))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 5, "{text}");
    let bodies: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(bodies.len(), 5, "{text}");
    assert_eq!(bodies[0]["UserId"], org.admin);
    assert_eq!(bodies[0]["OrganizationId"], org.organization);
    assert!(bodies[1]["Version"].as_str().unwrap().starts_with("9.2."));
    assert_eq!(bodies[2]["Detail"]["OrganizationId"], org.organization);
    assert_eq!(
        bodies[3]["EntityRecordCountCollection"]["Values"],
        json!([1])
    );
    assert!(!bodies[4]["RolePrivileges"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_organizations_table_is_read_only_and_seeded_once() {
    let org = Org::new().await;
    let record = org
        .ok(&format!("organizations({})", org.organization), None)
        .await;
    assert_eq!(record["name"], "smsctx");
    assert_eq!(record["languagecode"], 1033);
    assert_eq!(record["isdisabled"], false);
    assert_eq!(record["_createdby_value"], org.admin);
    // Every built-in role reads it.
    let agent = org.user("agent", &["Omnichannel agent"]).await;
    let listed = org
        .ok("organizations?$select=name", Some(&agent.token))
        .await;
    assert_eq!(listed["value"][0]["organizationid"], org.organization);

    let id = org.organization.clone();
    let refusals = [
        (
            org.app.post("organizations", &json!({"name": "second"})),
            "Create",
        ),
        (
            org.app.patch(
                &format!("organizations({})", Uuid::new_v4()),
                &json!({"name": "upserted"}),
            ),
            "Create",
        ),
        (org.app.delete(&format!("organizations({id})")), "Delete"),
    ];
    for (request, message) in refusals {
        let response = request.send().await.unwrap();
        assert_error(
            response,
            StatusCode::BAD_REQUEST,
            "0x80040800",
            &format!("The '{message}' method does not support entities of type 'organization'."),
        )
        .await;
    }
    // The same rule holds for every table whose page lists no Create: the security model's
    // intersect tables change only through their associations.
    let response = org
        .app
        .post("teammemberships", &json!({}))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80040800",
        "The 'Create' method does not support entities of type 'teammembership'.",
    )
    .await;
    // Nothing changed.
    let after = org
        .ok(&format!("organizations({})", org.organization), None)
        .await;
    assert_eq!(after, record);
    // An update changes only its auditing setting (issue 15): the other columns are not valid
    // for update, and are ignored as such columns are.
    let response = org
        .app
        .patch(&format!("organizations({id})"), &json!({"name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = org
        .app
        .request(Method::PUT, &format!("organizations({id})/name"))
        .json(&json!({"value": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let after = org
        .ok(&format!("organizations({})", org.organization), None)
        .await;
    assert_eq!(after["name"], record["name"]);

    // A restart finds the same organisation.
    let Org {
        app, organization, ..
    } = org;
    let db = app.stop().await;
    let again = Org::on(spawn_app_in(db).await).await;
    assert_eq!(again.organization, organization);
    let body = again.ok("WhoAmI", None).await;
    assert_eq!(body["OrganizationId"], organization);
}

#[tokio::test]
async fn metadata_declares_the_functions_and_their_response_types() {
    let org = Org::new().await;
    let response = org.app.get("$metadata").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The document is indented: compare it with the whitespace between elements removed.
    let document: String = response
        .text()
        .await
        .unwrap()
        .lines()
        .map(str::trim)
        .collect();
    for fragment in [
        r#"<Function Name="WhoAmI"><ReturnType Type="mscrm.WhoAmIResponse" Nullable="false"/></Function>"#,
        r#"<Function Name="RetrieveVersion"><ReturnType Type="mscrm.RetrieveVersionResponse" Nullable="false"/></Function>"#,
        r#"<Parameter Name="AccessType" Type="mscrm.EndpointAccessType" Nullable="false"/>"#,
        r#"<Parameter Name="EntityNames" Type="Collection(Edm.String)" Nullable="false"/>"#,
        r#"<Function Name="RetrieveUserPrivileges" IsBound="true"><Parameter Name="entity" Type="mscrm.systemuser" Nullable="false"/>"#,
        r#"<ComplexType Name="WhoAmIResponse">"#,
        r#"<ComplexType Name="OrganizationDetail">"#,
        r#"<ComplexType Name="EntityRecordCountCollection">"#,
        r#"<ComplexType Name="RolePrivilege">"#,
        r#"<EnumType Name="PrivilegeDepth">"#,
        r#"<FunctionImport Name="WhoAmI" Function="Microsoft.Dynamics.CRM.WhoAmI"/>"#,
        r#"<FunctionImport Name="RetrieveTotalRecordCount" Function="Microsoft.Dynamics.CRM.RetrieveTotalRecordCount"/>"#,
        r#"<EntitySet Name="organizations" EntityType="Microsoft.Dynamics.CRM.organization">"#,
    ] {
        assert!(document.contains(fragment), "$metadata lacks {fragment}");
    }
}
