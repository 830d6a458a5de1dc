//! The security model over HTTP: sign-in, business units, teams, roles with depths, ownership
//! and sharing, on every read path (Retrieve, RetrieveMultiple with counts, `$count`, `$apply`,
//! FetchXML, `$expand`, `$batch`) and every write path.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use smsctx::security::privilege_id;
use uuid::Uuid;

const READ: &str = "prvReadmsdyn_smsengagementctx";

/// A signed-in user.
type User = SignedIn;

struct Org {
    app: TestApp,
    root: String,
}

impl Org {
    async fn new() -> Org {
        let app = spawn_app().await;
        let root = Org::root_of(&app).await;
        Org { app, root }
    }

    async fn admin_id(&self) -> String {
        self.app
            .get_json("systemusers?$filter=domainname eq 'admin'")
            .await["value"][0]["systemuserid"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn root_of(app: &TestApp) -> String {
        root_unit(app).await
    }

    async fn unit(&self, name: &str, parent: &str) -> String {
        self.app
            .create(
                "businessunits",
                &json!({"name": name, "parentbusinessunitid@odata.bind": format!("/businessunits({parent})")}),
            )
            .await
    }

    /// A built-in role of the root unit, by name.
    async fn role_named(&self, name: &str) -> String {
        self.role_named_in(name, &self.root).await
    }

    /// A built-in role of `unit` (each unit has its own copy: a role is assigned only to the
    /// users and teams of its unit).
    async fn role_named_in(&self, name: &str, unit: &str) -> String {
        let path = format!("roles?$filter=name eq '{name}' and _businessunitid_value eq {unit}");
        let roles = self.app.get_json(&path).await;
        roles["value"][0]["roleid"]
            .as_str()
            .unwrap_or_else(|| panic!("the role {name}: {roles}"))
            .to_string()
    }

    /// A custom role of the root unit with privileges at depth masks (1, 2, 4, 8).
    async fn role(&self, name: &str, grants: &[(&str, i64)]) -> String {
        self.role_in(&self.root, name, grants).await
    }

    /// The same, in `unit`.
    async fn role_in(&self, unit: &str, name: &str, grants: &[(&str, i64)]) -> String {
        let id = self
            .app
            .create(
                "roles",
                &json!({"name": name, "businessunitid@odata.bind": format!("/businessunits({unit})")}),
            )
            .await;
        for (privilege, mask) in grants {
            self.app
                .create(
                    "roleprivilegescollection",
                    &json!({
                        "roleid@odata.bind": format!("/roles({id})"),
                        "privilegeid": privilege_id(privilege).to_string(),
                        "privilegedepthmask": mask,
                    }),
                )
                .await;
        }
        id
    }

    async fn user(&self, name: &str, unit: &str, roles: &[&str]) -> User {
        signed_in_user(&self.app, name, unit, roles).await
    }

    async fn team(&self, name: &str, unit: &str, members: &[&User]) -> String {
        let id = self
            .app
            .create(
                "teams",
                &json!({"name": name, "teamtype": 0, "businessunitid@odata.bind": format!("/businessunits({unit})")}),
            )
            .await;
        for member in members {
            self.associate(
                &format!("teams({id})/teammembership_association"),
                &format!("systemusers({})", member.id),
            )
            .await;
        }
        id
    }

    async fn associate(&self, path: &str, target: &str) {
        let response = self
            .app
            .post(
                &format!("{path}/$ref"),
                &json!({"@odata.id": self.app.url(target)}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "{path}: {}",
            response.text().await.unwrap()
        );
    }

    /// A context owned by a user or a team (created by the administrator).
    async fn context(&self, name: &str, owner: &str) -> String {
        self.app
            .create(
                CTX,
                &json!({"msdyn_name": name, "ownerid@odata.bind": owner}),
            )
            .await
    }

    /// Posts a `$batch` body as `user` (the administrator when `None`), continuing after a
    /// failure when `continue_on_error`: the status and the response text.
    async fn batch(
        &self,
        user: Option<&User>,
        body: String,
        continue_on_error: bool,
    ) -> (StatusCode, String) {
        let mut request = match user {
            Some(user) => self.request(user, Method::POST, "$batch"),
            None => self.app.request(Method::POST, "$batch"),
        }
        .header("Content-Type", "multipart/mixed; boundary=batch_A");
        if continue_on_error {
            request = request.header("Prefer", "odata.continue-on-error");
        }
        let response = request.body(body).send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    fn request(&self, user: &User, method: Method, path: &str) -> RequestBuilder {
        self.app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(&user.token)
            .header("Accept", "application/json")
    }

    async fn status(
        &self,
        user: &User,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> StatusCode {
        let mut request = self.request(user, method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().status()
    }

    async fn json(&self, user: &User, path: &str) -> Value {
        let response = self.request(user, Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// The context ids a user's RetrieveMultiple returns, with every count checked against it.
    async fn readable(&self, user: &User) -> BTreeSet<String> {
        let list = self
            .json(user, &format!("{CTX}?$select=msdyn_name&$count=true"))
            .await;
        let ids: BTreeSet<String> = list["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["msdyn_smsengagementctxid"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(list["@odata.count"], ids.len(), "@odata.count");
        let count = self
            .request(user, Method::GET, &format!("{CTX}/$count"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(count, ids.len().to_string(), "$count");
        let aggregate = self
            .json(user, &format!("{CTX}?$apply=aggregate($count as n)"))
            .await;
        assert_eq!(aggregate["value"][0]["n"], ids.len(), "$apply count");
        let fetch = "<fetch><entity name='msdyn_smsengagementctx'><attribute name='msdyn_name'/></entity></fetch>";
        let fetched = self
            .json(user, &format!("{CTX}?fetchXml={}", urlencode(fetch)))
            .await;
        let fetched: BTreeSet<String> = fetched["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["msdyn_smsengagementctxid"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(fetched, ids, "FetchXML rows");
        // Paging walks the same rows.
        let mut paged = BTreeSet::new();
        let mut next = Some(self.app.url(&format!("{CTX}?$select=msdyn_name")));
        while let Some(url) = next {
            let page: Value = self
                .app
                .client
                .get(&url)
                .bearer_auth(&user.token)
                .header("Prefer", "odata.maxpagesize=1")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for r in page["value"].as_array().unwrap() {
                paged.insert(r["msdyn_smsengagementctxid"].as_str().unwrap().to_string());
            }
            next = page["@odata.nextLink"].as_str().map(str::to_string);
        }
        assert_eq!(paged, ids, "paged rows");
        ids
    }
}

/// The status of a plain RetrieveMultiple of the contexts with `token`.
async fn list_status(org: &Org, token: &str) -> StatusCode {
    org.app
        .client
        .get(org.app.url(CTX))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// The privileges of a test role at one depth: the context's record privileges, and Read on
/// the principal tables so lookups resolve.
fn grants(mask: i64) -> Vec<(&'static str, i64)> {
    vec![
        ("prvCreatemsdyn_smsengagementctx", mask),
        (READ, mask),
        ("prvWritemsdyn_smsengagementctx", mask),
        ("prvDeletemsdyn_smsengagementctx", mask),
        ("prvReadUser", 8),
        ("prvReadTeam", 8),
        ("prvReadBusinessUnit", 8),
    ]
}

#[tokio::test]
async fn principals_by_depth_read_and_write_exactly_the_rows_their_roles_reach() {
    let org = Org::new().await;
    let root = org.root.clone();
    let child = org.unit("child", &root).await;
    let other = org.unit("other", &root).await;
    let basic = org.role_named("Basic User").await;
    let child_basic = org.role_named_in("Basic User", &child).await;
    let other_basic = org.role_named_in("Basic User", &other).await;

    let owner = org.user("owner", &root, &[&basic]).await;
    let child_owner = org.user("childowner", &child, &[&child_basic]).await;
    let other_owner = org.user("otherowner", &other, &[&other_basic]).await;
    let member = org.user("member", &other, &[&other_basic]).await;
    let shared_with = org.user("sharedwith", &other, &[&other_basic]).await;
    let no_role = org.user("norole", &root, &[]).await;
    let team = org.team("team", &other, &[&member]).await;

    let r_root = org
        .context("root", &format!("/systemusers({})", owner.id))
        .await;
    let r_child = org
        .context("child", &format!("/systemusers({})", child_owner.id))
        .await;
    let r_other = org
        .context("other", &format!("/systemusers({})", other_owner.id))
        .await;
    let r_team = org.context("team", &format!("/teams({team})")).await;
    let r_shared = org
        .context("shared", &format!("/systemusers({})", other_owner.id))
        .await;
    let all = [&r_root, &r_child, &r_other, &r_team, &r_shared];
    let response = org
        .app
        .post(
            "GrantAccess",
            &json!({
                "Target": {"@odata.type": "Microsoft.Dynamics.CRM.msdyn_smsengagementctx", "msdyn_smsengagementctxid": r_shared},
                "PrincipalAccess": {
                    "Principal": {"@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": shared_with.id},
                    "AccessMask": "ReadAccess"
                }
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    // (principal, readable, writable)
    let mut cases: Vec<(String, User, BTreeSet<String>, BTreeSet<String>)> = vec![
        (
            "owner".into(),
            owner.clone(),
            set(&[&r_root]),
            set(&[&r_root]),
        ),
        (
            "team member".into(),
            member.clone(),
            set(&[&r_team]),
            set(&[&r_team]),
        ),
        (
            "shared with".into(),
            shared_with.clone(),
            set(&[&r_shared]),
            set(&[]),
        ),
        (
            "other owner".into(),
            other_owner.clone(),
            set(&[&r_other, &r_shared]),
            set(&[&r_other, &r_shared]),
        ),
    ];
    for (depth, mask) in [("Basic", 1), ("Local", 2), ("Deep", 4), ("Global", 8)] {
        // The same privileges in a role of each unit (a role is assigned in its own unit).
        let name = format!("ctx {depth}");
        let role = org.role(&name, &grants(mask)).await;
        let child_role = org.role_in(&child, &name, &grants(mask)).await;
        let other_role = org.role_in(&other, &name, &grants(mask)).await;
        let same = org.user(&format!("same{depth}"), &root, &[&role]).await;
        let in_child = org
            .user(&format!("child{depth}"), &child, &[&child_role])
            .await;
        let in_other = org
            .user(&format!("other{depth}"), &other, &[&other_role])
            .await;
        let (same_rows, child_rows, other_rows) = match depth {
            "Basic" => (set(&[]), set(&[]), set(&[])),
            "Local" => (
                set(&[&r_root]),
                set(&[&r_child]),
                set(&[&r_other, &r_team, &r_shared]),
            ),
            "Deep" => (
                set(&all),
                set(&[&r_child]),
                set(&[&r_other, &r_team, &r_shared]),
            ),
            _ => (set(&all), set(&all), set(&all)),
        };
        cases.push((
            format!("same unit, {depth}"),
            same,
            same_rows.clone(),
            same_rows,
        ));
        cases.push((
            format!("child unit, {depth}"),
            in_child,
            child_rows.clone(),
            child_rows,
        ));
        cases.push((
            format!("other unit, {depth}"),
            in_other,
            other_rows.clone(),
            other_rows,
        ));
    }

    for (name, user, readable, writable) in &cases {
        assert_eq!(
            &org.readable(user).await,
            readable,
            "{name}: RetrieveMultiple"
        );
        for id in all {
            let status = org.status(user, Method::GET, &ctx(id), None).await;
            let expected = if readable.contains(id) {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(status, expected, "{name}: Retrieve {id}");
            let status = org
                .status(
                    user,
                    Method::PATCH,
                    &ctx(id),
                    Some(json!({"msdyn_name": name})),
                )
                .await;
            let expected = if writable.contains(id) {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(status, expected, "{name}: Update {id}");
        }
    }

    // No role: every read and write is refused with the privilege named.
    let response = org
        .request(&no_role, Method::GET, CTX)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "0x80040220", READ).await;
    let response = org
        .request(&no_role, Method::GET, &ctx(&r_root))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "0x80040220", READ).await;
    let response = org
        .request(&no_role, Method::POST, CTX)
        .json(&json!({"msdyn_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::FORBIDDEN,
        "0x80040220",
        "prvCreatemsdyn_smsengagementctx",
    )
    .await;

    // An unreadable record answers Dataverse's access-check failure.
    let response = org
        .request(&owner, Method::GET, &ctx(&r_child))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::FORBIDDEN,
        "0x80048306",
        "SecLib::AccessCheckEx failed",
    )
    .await;

    // A disabled user cannot sign in at all.
    let response = org
        .app
        .patch(
            &format!("systemusers({})", shared_with.id),
            &json!({"isdisabled": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = org
        .request(&shared_with, Method::GET, CTX)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn writes_need_create_delete_assign_append_and_append_to() {
    let org = Org::new().await;
    let root = org.root.clone();
    let basic = org.role_named("Basic User").await;
    let agent = org.role_named("Omnichannel agent").await;
    let user = org.user("basic", &root, &[&basic]).await;
    let other = org.user("other", &root, &[&basic]).await;
    let agent_user = org.user("agent", &root, &[&agent]).await;

    // Create as oneself: allowed; for someone else: Assign reaches only one's own records.
    let response = org
        .request(&user, Method::POST, CTX)
        .json(&json!({"msdyn_name": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let mine = entity_id(&response);
    let created = org.json(&user, &ctx(&mine)).await;
    assert_eq!(created["_ownerid_value"], user.id.as_str());
    assert_eq!(created["_createdby_value"], user.id.as_str());
    let status = org
        .status(
            &user,
            Method::POST,
            CTX,
            Some(json!({"msdyn_name": "theirs", "ownerid@odata.bind": format!("/systemusers({})", other.id)})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "Create for another owner at Basic depth"
    );

    // A lookup to a conversation: Basic User has no AppendTo on conversations; an agent has.
    let conversation = org
        .app
        .create("msdyn_ocliveworkitems", &json!({"subject": "conversation"}))
        .await;
    let bind = json!({"msdyn_liveworkitemid@odata.bind": format!("/msdyn_ocliveworkitems({conversation})")});
    let response = org
        .request(&user, Method::PATCH, &ctx(&mine))
        .json(&bind)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::FORBIDDEN,
        "0x80040220",
        "prvAppendTomsdyn_ocliveworkitem",
    )
    .await;
    let agents = org
        .request(&agent_user, Method::POST, CTX)
        .json(&json!({"msdyn_name": "agent's", "msdyn_liveworkitemid@odata.bind": format!("/msdyn_ocliveworkitems({conversation})")}))
        .send()
        .await
        .unwrap();
    assert_eq!(agents.status(), StatusCode::NO_CONTENT);
    let agents = entity_id(&agents);
    // An agent has no Delete; the owner-only Assign is refused for want of Assign.
    let status = org
        .status(&agent_user, Method::DELETE, &ctx(&agents), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let status = org
        .status(
            &agent_user,
            Method::PATCH,
            &ctx(&agents),
            Some(json!({"ownerid@odata.bind": format!("/systemusers({})", user.id)})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Assign (Basic User has Assign at Basic): the owner gives the record away; then it is gone
    // from the previous owner's reach.
    let status = org
        .status(
            &user,
            Method::PATCH,
            &ctx(&mine),
            Some(json!({"ownerid@odata.bind": format!("/systemusers({})", other.id)})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let assigned = org.app.get_json(&ctx(&mine)).await;
    assert_eq!(assigned["_ownerid_value"], other.id.as_str());
    assert_eq!(assigned["_owninguser_value"], other.id.as_str());
    assert_eq!(
        org.status(&user, Method::GET, &ctx(&mine), None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        org.status(&other, Method::DELETE, &ctx(&mine), None).await,
        StatusCode::NO_CONTENT
    );

    // SetState is a Write.
    let status = org
        .status(
            &agent_user,
            Method::PATCH,
            &ctx(&agents),
            Some(json!({"statecode": 1, "statuscode": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let status = org
        .status(
            &user,
            Method::PATCH,
            &ctx(&agents),
            Some(json!({"statecode": 0, "statuscode": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // $expand shows only related rows the caller may read: a Basic User cannot read
    // conversations, so the expansion is null, while the agent sees it.
    share(&org, &agents, &user.id, false, "ReadAccess").await;
    let path = format!("{CTX}?$select=msdyn_name&$expand=msdyn_liveworkitemid($select=subject)");
    let seen = org.json(&user, &path).await;
    assert_eq!(seen["value"].as_array().unwrap().len(), 1, "{seen}");
    assert!(seen["value"][0]["msdyn_liveworkitemid"].is_null(), "{seen}");
    let seen = org.json(&agent_user, &path).await;
    assert_eq!(
        seen["value"][0]["msdyn_liveworkitemid"]["subject"], "conversation",
        "{seen}"
    );
}

/// GrantAccess as the administrator.
async fn share(org: &Org, record: &str, principal: &str, team: bool, mask: &str) {
    let (kind, key) = if team {
        ("team", "teamid")
    } else {
        ("systemuser", "systemuserid")
    };
    let response = org
        .app
        .post(
            "GrantAccess",
            &json!({
                "Target": {"@odata.type": "Microsoft.Dynamics.CRM.msdyn_smsengagementctx", "msdyn_smsengagementctxid": record},
                "PrincipalAccess": {
                    "Principal": {"@odata.type": format!("Microsoft.Dynamics.CRM.{kind}"), key: principal},
                    "AccessMask": mask
                }
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "{}",
        response.text().await.unwrap()
    );
}

async fn sharing_call(org: &Org, as_user: &User, action: &str, body: Value) -> StatusCode {
    org.request(as_user, Method::POST, action)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

fn target(record: &str) -> Value {
    json!({"@odata.type": "Microsoft.Dynamics.CRM.msdyn_smsengagementctx", "msdyn_smsengagementctxid": record})
}

fn principal(kind: &str, id: &str) -> Value {
    json!({"@odata.type": format!("Microsoft.Dynamics.CRM.{kind}"), format!("{kind}id"): id})
}

async fn principal_access(org: &Org, as_user: &User, principal_path: &str, record: &str) -> String {
    let path = format!(
        "{principal_path}/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@tid)?@tid={{'@odata.id':'msdyn_smsengagementctxes({record})'}}"
    );
    let body = org.json(as_user, &path).await;
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Microsoft.Dynamics.CRM.RetrievePrincipalAccessResponse"),
        "{body}"
    );
    body["AccessRights"].as_str().unwrap().to_string()
}

async fn shared_principals(
    org: &Org,
    as_user: &User,
    record: &str,
) -> Vec<(String, String, String)> {
    let path = format!(
        "RetrieveSharedPrincipalsAndAccess(Target=@tid)?@tid={{'@odata.id':'msdyn_smsengagementctxes({record})'}}"
    );
    let body = org.json(as_user, &path).await;
    let mut out: Vec<(String, String, String)> = body["PrincipalAccesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["Principal"]["@odata.type"].as_str().unwrap().to_string(),
                p["Principal"]["ownerid"].as_str().unwrap().to_string(),
                p["AccessMask"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn the_sharing_messages_grant_modify_revoke_and_report_access() {
    let org = Org::new().await;
    let root = org.root.clone();
    let other_unit = org.unit("other", &root).await;
    let basic = org.role_named("Basic User").await;
    let other_basic = org.role_named_in("Basic User", &other_unit).await;
    let owner = org.user("owner", &root, &[&basic]).await;
    let reader = org.user("reader", &other_unit, &[&other_basic]).await;
    let member = org.user("member", &other_unit, &[&other_basic]).await;
    let team = org.team("sharers", &other_unit, &[&member]).await;
    let response = org
        .request(&owner, Method::POST, CTX)
        .json(&json!({"msdyn_name": "shared"}))
        .send()
        .await
        .unwrap();
    let record = entity_id(&response);

    // Before sharing: no access, and the reader cannot share what it cannot reach.
    assert_eq!(
        org.status(&reader, Method::GET, &ctx(&record), None).await,
        StatusCode::FORBIDDEN
    );
    let grant = json!({
        "Target": target(&record),
        "PrincipalAccess": {"Principal": principal("systemuser", &reader.id), "AccessMask": "ReadAccess, WriteAccess"}
    });
    assert_eq!(
        sharing_call(&org, &reader, "GrantAccess", grant.clone()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        principal_access(
            &org,
            &owner,
            &format!("systemusers({})", reader.id),
            &record
        )
        .await,
        "None"
    );

    // GrantAccess by the owner (Basic User shares its own records).
    assert_eq!(
        sharing_call(&org, &owner, "GrantAccess", grant).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        org.status(&reader, Method::GET, &ctx(&record), None).await,
        StatusCode::OK
    );
    assert_eq!(
        org.status(
            &reader,
            Method::PATCH,
            &ctx(&record),
            Some(json!({"msdyn_name": "by reader"}))
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        org.status(&reader, Method::DELETE, &ctx(&record), None)
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        principal_access(
            &org,
            &owner,
            &format!("systemusers({})", reader.id),
            &record
        )
        .await,
        "ReadAccess, WriteAccess"
    );
    assert_eq!(
        principal_access(&org, &owner, &format!("systemusers({})", owner.id), &record).await,
        "ReadAccess, WriteAccess, AppendAccess, AppendToAccess, DeleteAccess, ShareAccess, AssignAccess"
    );
    assert_eq!(
        shared_principals(&org, &owner, &record).await,
        vec![(
            "#Microsoft.Dynamics.CRM.systemuser".to_string(),
            reader.id.clone(),
            "ReadAccess, WriteAccess".to_string()
        )]
    );

    // ModifyAccess replaces the rights.
    let modify = json!({
        "Target": target(&record),
        "PrincipalAccess": {"Principal": principal("systemuser", &reader.id), "AccessMask": "ReadAccess"}
    });
    assert_eq!(
        sharing_call(&org, &owner, "ModifyAccess", modify).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        org.status(
            &reader,
            Method::PATCH,
            &ctx(&record),
            Some(json!({"msdyn_name": "again"}))
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        org.status(&reader, Method::GET, &ctx(&record), None).await,
        StatusCode::OK
    );

    // Sharing with a team gives its members access.
    assert_eq!(
        org.status(&member, Method::GET, &ctx(&record), None).await,
        StatusCode::FORBIDDEN
    );
    let to_team = json!({
        "Target": target(&record),
        "PrincipalAccess": {"Principal": principal("team", &team), "AccessMask": "ReadAccess"}
    });
    assert_eq!(
        sharing_call(&org, &owner, "GrantAccess", to_team).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        org.status(&member, Method::GET, &ctx(&record), None).await,
        StatusCode::OK
    );
    assert_eq!(org.readable(&member).await, set(&[&record]));
    // A team's own access counts shares only where its roles hold the privilege.
    assert_eq!(
        principal_access(&org, &owner, &format!("teams({team})"), &record).await,
        "None"
    );
    org.associate(
        &format!("teams({team})/teamroles_association"),
        &format!("roles({other_basic})"),
    )
    .await;
    assert_eq!(
        principal_access(&org, &owner, &format!("teams({team})"), &record).await,
        "ReadAccess"
    );
    assert_eq!(
        principal_access(
            &org,
            &owner,
            &format!("systemusers({})", member.id),
            &record
        )
        .await,
        "ReadAccess"
    );
    assert_eq!(
        shared_principals(&org, &owner, &record).await,
        vec![
            (
                "#Microsoft.Dynamics.CRM.systemuser".to_string(),
                reader.id.clone(),
                "ReadAccess".to_string()
            ),
            (
                "#Microsoft.Dynamics.CRM.team".to_string(),
                team.clone(),
                "ReadAccess".to_string()
            ),
        ]
    );

    // RevokeAccess removes the share.
    let revoke = json!({"Target": target(&record), "Revokee": principal("systemuser", &reader.id)});
    assert_eq!(
        sharing_call(&org, &owner, "RevokeAccess", revoke).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        org.status(&reader, Method::GET, &ctx(&record), None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(org.readable(&reader).await, set(&[]));
    assert_eq!(
        shared_principals(&org, &owner, &record).await,
        vec![(
            "#Microsoft.Dynamics.CRM.team".to_string(),
            team.clone(),
            "ReadAccess".to_string()
        )]
    );

    // Removing the member from the team takes the team's access away.
    let response = org
        .app
        .delete(&format!(
            "teams({team})/teammembership_association({})/$ref",
            member.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        org.status(&member, Method::GET, &ctx(&record), None).await,
        StatusCode::FORBIDDEN
    );

    // Assign to a team: the owner columns follow, and the team's members reach it at Basic.
    let response = org
        .app
        .post(
            &format!("teams({team})/teammembership_association/$ref"),
            &json!({"@odata.id": org.app.url(&format!("systemusers({})", member.id))}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let assign = json!({"ownerid@odata.bind": format!("/teams({team})")});
    assert_eq!(
        org.status(&owner, Method::PATCH, &ctx(&record), Some(assign))
            .await,
        StatusCode::NO_CONTENT
    );
    let assigned = org.app.get_json(&ctx(&record)).await;
    assert_eq!(assigned["_ownerid_value"], team.as_str());
    assert_eq!(assigned["_owningteam_value"], team.as_str());
    assert!(assigned["_owninguser_value"].is_null());
    assert_eq!(assigned["_owningbusinessunit_value"], other_unit.as_str());
    assert_eq!(
        org.status(
            &member,
            Method::PATCH,
            &ctx(&record),
            Some(json!({"msdyn_name": "team's"}))
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        org.status(&owner, Method::GET, &ctx(&record), None).await,
        StatusCode::FORBIDDEN
    );

    // Malformed payloads are 400s in Dataverse's shape.
    let response = org
        .request(&owner, Method::POST, "GrantAccess")
        .json(&json!({"Target": target(&record), "PrincipalAccess": {"Principal": principal("systemuser", &reader.id), "AccessMask": "Everything"}}))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "Everything",
    )
    .await;

    // A deleted record's shares go with it (the team's share is the one left).
    let shares = org
        .app
        .get_json("principalobjectaccessset?$count=true")
        .await;
    assert_eq!(shares["@odata.count"], 1, "{shares}");
    let response = org.app.delete(&ctx(&record)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let shares = org
        .app
        .get_json("principalobjectaccessset?$count=true")
        .await;
    assert_eq!(shares["@odata.count"], 0, "{shares}");
}

#[tokio::test]
async fn roles_are_listed_and_assigned_through_ref() {
    let org = Org::new().await;
    let roles = org.app.get_json("roles?$select=name").await;
    let names: BTreeSet<String> = roles["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    for name in [
        "System Administrator",
        "Basic User",
        "Omnichannel agent",
        "Omnichannel supervisor",
    ] {
        assert!(names.contains(name), "{names:?}");
    }
    // A new business unit gets its own role set.
    let unit = org.unit("east", &org.root).await;
    let in_unit = org
        .app
        .get_json(&format!(
            "roles?$filter=_businessunitid_value eq {unit}&$count=true"
        ))
        .await;
    assert_eq!(in_unit["@odata.count"], 4);

    let basic = org.role_named("Basic User").await;
    let user = org.user("new", &org.root, &[]).await;
    assert_eq!(
        org.status(&user, Method::GET, CTX, None).await,
        StatusCode::FORBIDDEN
    );
    org.associate(
        &format!("systemusers({})/systemuserroles_association", user.id),
        &format!("roles({basic})"),
    )
    .await;
    assert_eq!(
        org.status(&user, Method::GET, CTX, None).await,
        StatusCode::OK
    );
    let response = org
        .app
        .delete(&format!(
            "systemusers({})/systemuserroles_association({basic})/$ref",
            user.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        org.status(&user, Method::GET, CTX, None).await,
        StatusCode::FORBIDDEN
    );

    // A role held through a team counts.
    let team = org.team("readers", &org.root, &[&user]).await;
    org.associate(
        &format!("teams({team})/teamroles_association"),
        &format!("roles({basic})"),
    )
    .await;
    assert_eq!(
        org.status(&user, Method::GET, CTX, None).await,
        StatusCode::OK
    );

    // A user without privileges on users cannot change roles.
    let other = org.user("other", &org.root, &[&basic]).await;
    let status = org
        .request(&user, Method::POST, &format!("systemusers({})/systemuserroles_association/$ref", other.id))
        .json(&json!({"@odata.id": org.app.url(&format!("roles({})", org.role_named("System Administrator").await))}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_role_is_assigned_only_in_its_own_business_unit() {
    let org = Org::new().await;
    let east = org.unit("east", &org.root).await;
    let root_basic = org.role_named("Basic User").await;
    let east_basic = org.role_named_in("Basic User", &east).await;
    let user = org.user("easterner", &east, &[]).await;
    let team = org.team("east team", &east, &[&user]).await;
    for (path, kind) in [
        (
            format!("systemusers({})/systemuserroles_association/$ref", user.id),
            "0x80041409",
        ),
        (
            format!("teams({team})/teamroles_association/$ref"),
            "0x8004140d",
        ),
    ] {
        let response = org
            .app
            .post(
                &path,
                &json!({"@odata.id": org.app.url(&format!("roles({root_basic})"))}),
            )
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::BAD_REQUEST,
            kind,
            "is not the same as the",
        )
        .await;
        assert_eq!(
            org.status(&user, Method::GET, CTX, None).await,
            StatusCode::FORBIDDEN,
            "{kind}: nothing assigned"
        );
    }
    // The unit's own copy of the role is assigned, and works.
    org.associate(
        &format!("systemusers({})/systemuserroles_association", user.id),
        &format!("roles({east_basic})"),
    )
    .await;
    assert_eq!(
        org.status(&user, Method::GET, CTX, None).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_system_administrator_role_and_its_privileges_are_read_only() {
    let org = Org::new().await;
    let admin_role = org.role_named("System Administrator").await;
    let privileges_of = |role: String| {
        format!("roleprivilegescollection?$filter=_roleid_value eq {role}&$count=true&$select=privilegedepthmask")
    };
    let before = org.app.get_json(&privileges_of(admin_role.clone())).await;
    let count = before["@odata.count"].as_i64().unwrap();
    assert!(count > 10, "{before}");
    let privilege_row = before["value"][0]["roleprivilegeid"]
        .as_str()
        .unwrap()
        .to_string();

    let modified = ("0x80041d31", "cannot be modified");
    let attempts = [
        (
            org.app.patch(
                &format!("roles({admin_role})"),
                &json!({"name": "Not an admin"}),
            ),
            modified,
        ),
        (
            org.app.delete(&format!("roles({admin_role})")),
            ("0x80041d2e", "cannot be deleted"),
        ),
        (
            org.app.post(
                "roleprivilegescollection",
                &json!({
                    "roleid@odata.bind": format!("/roles({admin_role})"),
                    "privilegeid": Uuid::new_v4().to_string(),
                    "privilegedepthmask": 1,
                }),
            ),
            modified,
        ),
        (
            org.app.patch(
                &format!("roleprivilegescollection({privilege_row})"),
                &json!({"privilegedepthmask": 1}),
            ),
            modified,
        ),
        (
            org.app
                .delete(&format!("roleprivilegescollection({privilege_row})")),
            modified,
        ),
    ];
    for (attempt, (code, text)) in attempts {
        let response = attempt.send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, code, text).await;
    }
    let after = org.app.get_json(&privileges_of(admin_role.clone())).await;
    assert_eq!(after["@odata.count"], count);
    assert_eq!(after["value"], before["value"]);
    let role = org
        .app
        .get_json(&format!("roles({admin_role})?$select=name"))
        .await;
    assert_eq!(role["name"], "System Administrator");

    // Other roles stay editable, as in Dataverse.
    let basic = org.role_named("Basic User").await;
    let renamed = org
        .app
        .patch(
            &format!("roles({basic})"),
            &json!({"name": "Basic User (edited)"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn impersonation_needs_the_privilege_and_records_the_real_caller() {
    let org = Org::new().await;
    let basic = org.role_named("Basic User").await;
    let oid = Uuid::new_v4();
    let target_id = org
        .app
        .create(
            "systemusers",
            &json!({"firstname": "Target", "lastname": "User", "azureactivedirectoryobjectid": oid.to_string(),
                    "businessunitid@odata.bind": format!("/businessunits({})", org.root)}),
        )
        .await;
    org.associate(
        &format!("systemusers({target_id})/systemuserroles_association"),
        &format!("roles({basic})"),
    )
    .await;
    let admin = org
        .app
        .get_json("systemusers?$filter=domainname eq 'admin'")
        .await["value"][0]["systemuserid"]
        .as_str()
        .unwrap()
        .to_string();

    for (header, value) in [
        ("MSCRMCallerID", target_id.clone()),
        ("CallerObjectId", oid.to_string()),
    ] {
        let response = org
            .app
            .post(CTX, &json!({"msdyn_name": "on behalf"}))
            .header(header, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{header}");
        let id = entity_id(&response);
        let record = org.app.get_json(&ctx(&id)).await;
        assert_eq!(record["_ownerid_value"], target_id.as_str(), "{header}");
        assert_eq!(record["_createdby_value"], target_id.as_str(), "{header}");
        assert_eq!(
            record["_createdonbehalfby_value"],
            admin.as_str(),
            "{header}"
        );
        let response = org
            .app
            .patch(&ctx(&id), &json!({"msdyn_name": "changed"}))
            .header(header, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let record = org.app.get_json(&ctx(&id)).await;
        assert_eq!(record["_modifiedonbehalfby_value"], admin.as_str());
    }

    // Impersonated, the request has the target's reach: another user's record is out of it.
    let someone = org.user("someone", &org.root, &[&basic]).await;
    let theirs = org
        .context("theirs", &format!("/systemusers({})", someone.id))
        .await;
    let response = org
        .app
        .get(&ctx(&theirs))
        .header("MSCRMCallerID", &target_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Without prvActOnBehalfOfAnotherUser, refused.
    let response = org
        .request(&someone, Method::GET, CTX)
        .header("MSCRMCallerID", &target_id)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::FORBIDDEN,
        "0x8004A110",
        "act on behalf",
    )
    .await;
}

#[tokio::test]
async fn batch_parts_run_as_the_caller() {
    let org = Org::new().await;
    let basic = org.role_named("Basic User").await;
    let user = org.user("batcher", &org.root, &[&basic]).await;
    let other = org.user("other", &org.root, &[&basic]).await;
    let theirs = org
        .context("theirs", &format!("/systemusers({})", other.id))
        .await;
    let lines = [
        "--batch_A".to_string(),
        "Content-Type: application/http".into(),
        "Content-Transfer-Encoding: binary".into(),
        String::new(),
        format!("GET {} HTTP/1.1", org.app.url(&ctx(&theirs))),
        "Accept: application/json".into(),
        String::new(),
        "--batch_A".into(),
        "Content-Type: multipart/mixed; boundary=changeset_B".into(),
        String::new(),
        "--changeset_B".into(),
        "Content-Type: application/http".into(),
        "Content-Transfer-Encoding: binary".into(),
        "Content-ID: 1".into(),
        String::new(),
        format!("POST {} HTTP/1.1", org.app.url(CTX)),
        "Content-Type: application/json".into(),
        String::new(),
        r#"{"msdyn_name":"mine in batch"}"#.into(),
        "--changeset_B".into(),
        "Content-Type: application/http".into(),
        "Content-Transfer-Encoding: binary".into(),
        "Content-ID: 2".into(),
        String::new(),
        format!("PATCH {} HTTP/1.1", org.app.url(&ctx(&theirs))),
        "Content-Type: application/json".into(),
        String::new(),
        r#"{"msdyn_name":"not mine"}"#.into(),
        "--changeset_B--".into(),
        "--batch_A--".into(),
    ];
    let mut body = lines.join("\r\n");
    body.push_str("\r\n");
    let (_, text) = org.batch(Some(&user), body, true).await;
    assert_eq!(text.matches("HTTP/1.1 403").count(), 2, "{text}");
    // The change set rolled back: the user's create is not there.
    assert_eq!(org.readable(&user).await, set(&[]));
    let record = org.app.get_json(&ctx(&theirs)).await;
    assert_eq!(record["msdyn_name"], "theirs");
}

/// One `application/http` part of a batch (inside a change set when `content_id` is set).
fn batch_part(
    boundary: &str,
    content_id: Option<&str>,
    request_line: String,
    headers: &[String],
    body: Option<&str>,
) -> Vec<String> {
    let mut lines = vec![
        format!("--{boundary}"),
        "Content-Type: application/http".to_string(),
        "Content-Transfer-Encoding: binary".to_string(),
    ];
    if let Some(id) = content_id {
        lines.push(format!("Content-ID: {id}"));
    }
    lines.push(String::new());
    lines.push(request_line);
    lines.push("Accept: application/json".into());
    lines.extend(headers.iter().cloned());
    if body.is_some() {
        lines.push("Content-Type: application/json".into());
    }
    lines.push(String::new());
    lines.extend(body.map(str::to_string));
    lines
}

#[tokio::test]
async fn batch_parts_honour_their_own_impersonation_headers() {
    let org = Org::new().await;
    let basic = org.role_named("Basic User").await;
    let user = org.user("impersonated", &org.root, &[&basic]).await;
    let other = org.user("other", &org.root, &[&basic]).await;
    let theirs = org
        .context("theirs", &format!("/systemusers({})", other.id))
        .await;
    let as_user = format!("MSCRMCallerID: {}", user.id);
    let theirs_url = org.app.url(&ctx(&theirs));
    // Signed in as the administrator (who may act on behalf of others): the first part runs
    // as the user and may not read another user's record, the second as the administrator;
    // in the change set, a create as the user is owned by the user and records the real caller.
    let mut lines = Vec::new();
    lines.extend(batch_part(
        "batch_A",
        None,
        format!("GET {theirs_url} HTTP/1.1"),
        std::slice::from_ref(&as_user),
        None,
    ));
    lines.extend(batch_part(
        "batch_A",
        None,
        format!("GET {theirs_url} HTTP/1.1"),
        &[],
        None,
    ));
    lines.push("--batch_A".into());
    lines.push("Content-Type: multipart/mixed; boundary=changeset_B".into());
    lines.push(String::new());
    lines.extend(batch_part(
        "changeset_B",
        Some("1"),
        format!("POST {} HTTP/1.1", org.app.url(CTX)),
        std::slice::from_ref(&as_user),
        Some(r#"{"msdyn_name":"made on behalf"}"#),
    ));
    lines.push("--changeset_B--".into());
    lines.push("--batch_A--".into());
    let mut body = lines.join("\r\n");
    body.push_str("\r\n");
    let (status, text) = org.batch(None, body, true).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let statuses: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 403 Forbidden",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 204 No Content"
        ],
        "{text}"
    );
    assert!(text.contains("0x80048306"), "{text}");
    let made = org.readable(&user).await;
    assert_eq!(made.len(), 1, "{made:?}");
    let id = made.iter().next().unwrap();
    let record = org
        .app
        .get_json(&format!(
            "{}?$select=_ownerid_value,_createdby_value,_createdonbehalfby_value",
            ctx(id)
        ))
        .await;
    assert_eq!(record["_ownerid_value"], user.id.as_str());
    assert_eq!(record["_createdby_value"], user.id.as_str());
    assert_ne!(record["_createdonbehalfby_value"], Value::Null, "{record}");

    // A caller without prvActOnBehalfOfAnotherUser cannot impersonate in a part either.
    let mut lines = batch_part(
        "batch_A",
        None,
        format!("GET {theirs_url} HTTP/1.1"),
        &[format!("MSCRMCallerID: {}", other.id)],
        None,
    );
    lines.push("--batch_A--".into());
    let mut body = lines.join("\r\n");
    body.push_str("\r\n");
    let (status, text) = org.batch(Some(&user), body, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("0x8004A110"), "{text}");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn b64(json: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
}

#[tokio::test]
async fn every_bad_token_is_a_401_with_www_authenticate() {
    let db = TestDatabase::new().await;
    let mut config = config(&db);
    config.jwt.issuer = Some("https://login.microsoftonline.com/tenant/v2.0".into());
    config.jwt.audience = Some("https://org.crm.dynamics.com".into());
    let app = spawn_app_with(db, config).await;
    let org = Org {
        root: Org::root_of(&app).await,
        app,
    };
    let basic = org.role_named("Basic User").await;
    let oid = Uuid::new_v4();
    let user = org.user("signer", &org.root, &[&basic]).await;
    org.app
        .patch(
            &format!("systemusers({})", user.id),
            &json!({"azureactivedirectoryobjectid": oid.to_string()}),
        )
        .send()
        .await
        .unwrap();
    let iss = "https://login.microsoftonline.com/tenant/v2.0";
    let aud = "https://org.crm.dynamics.com";
    let good = json!({"oid": oid.to_string(), "iss": iss, "aud": aud, "exp": now() + 600, "nbf": now() - 10});
    let token = hs256(JWT_SECRET, &good);
    let ok = org
        .app
        .client
        .get(org.app.url(CTX))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "the good token");

    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = good.as_object().unwrap().clone();
        f(&mut claims);
        hs256(JWT_SECRET, &Value::Object(claims))
    };
    let parts: Vec<&str> = token.split('.').collect();
    let mut tampered_claims = good.clone();
    tampered_claims["oid"] = json!(Uuid::new_v4().to_string());
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        (
            "expired",
            with(&|c| {
                c.insert("exp".into(), json!(now() - 600));
            }),
            Some("the access token has expired"),
        ),
        (
            "not yet valid",
            with(&|c| {
                c.insert("nbf".into(), json!(now() + 600));
            }),
            Some("not valid yet"),
        ),
        (
            "no exp",
            with(&|c| {
                c.remove("exp");
            }),
            None,
        ),
        (
            "wrong signature",
            hs256("another-secret-of-at-least-32-bytes!!", &good),
            Some("signature is invalid"),
        ),
        (
            "wrong audience",
            with(&|c| {
                c.insert("aud".into(), json!("https://other.crm.dynamics.com"));
            }),
            Some("audience (aud)"),
        ),
        (
            "wrong issuer",
            with(&|c| {
                c.insert("iss".into(), json!("https://evil.example/v2.0"));
            }),
            Some("issuer (iss)"),
        ),
        (
            "unknown oid",
            with(&|c| {
                c.insert("oid".into(), json!(Uuid::new_v4().to_string()));
            }),
            Some("unknown or disabled"),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                parts[1]
            ),
            None,
        ),
        (
            "tampered payload",
            format!("{}.{}.{}", parts[0], b64(&tampered_claims), parts[2]),
            Some("signature is invalid"),
        ),
        (
            "garbage",
            "not-a-token".into(),
            Some("nor a well-formed JWT"),
        ),
    ];
    for (name, bad, cause) in cases {
        let response = org
            .app
            .client
            .get(org.app.url(CTX))
            .bearer_auth(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        let challenge = response.headers()["WWW-Authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{name}: {challenge}");
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("The request is not authorized: "),
            "{name}: {message}"
        );
        if let Some(cause) = cause {
            assert!(message.contains(cause), "{name}: {message}");
        }
    }

    // A disabled user's valid token is refused too.
    org.app
        .patch(
            &format!("systemusers({})", user.id),
            &json!({"isdisabled": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(list_status(&org, &token).await, StatusCode::UNAUTHORIZED);
    let body: Value = org
        .app
        .client
        .get(org.app.url(CTX))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("unknown or disabled"), "{message}");
}

#[tokio::test]
async fn no_route_reads_or_changes_anything_without_a_valid_token() {
    let org = Org::new().await;
    let record = org
        .context("kept", &format!("/systemusers({})", org.admin_id().await))
        .await;
    let before = org.app.get_json(&ctx(&record)).await;
    let user = org.admin_id().await;
    let rec = ctx(&record);
    let tid = format!("@tid={{'@odata.id':'msdyn_smsengagementctxes({record})'}}");
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, String::new(), None),
        (Method::GET, "$metadata".into(), None),
        (Method::GET, "EntityDefinitions".into(), None),
        (Method::GET, CTX.into(), None),
        (Method::GET, format!("{CTX}?fetchXml=%3Cfetch%3E%3Centity%20name%3D'msdyn_smsengagementctx'%2F%3E%3C%2Ffetch%3E"), None),
        (Method::GET, format!("{CTX}?$apply=aggregate($count%20as%20n)"), None),
        (Method::GET, format!("{CTX}/$count"), None),
        (Method::POST, CTX.into(), Some(json!({"msdyn_name": "new"}))),
        (Method::GET, rec.clone(), None),
        (Method::PATCH, rec.clone(), Some(json!({"msdyn_name": "changed"}))),
        (Method::PATCH, format!("{CTX}({})", Uuid::new_v4()), Some(json!({"msdyn_name": "upserted"}))),
        (Method::DELETE, rec.clone(), None),
        (Method::GET, format!("{rec}/msdyn_name"), None),
        (Method::GET, format!("{rec}/msdyn_name/$value"), None),
        (Method::PUT, format!("{rec}/msdyn_name"), Some(json!({"value": "put"}))),
        (Method::DELETE, format!("{rec}/msdyn_name"), None),
        (Method::GET, format!("{rec}/ownerid"), None),
        (Method::GET, format!("{rec}/ownerid/$ref"), None),
        (Method::DELETE, format!("{rec}/msdyn_liveworkitemid/$ref"), None),
        (Method::GET, format!("IsValidStateTransition(Entity=@e,NewState=@s,NewStatus=@n)?@e={{'@odata.id':'{rec}'}}&@s='Inactive'&@n=2"), None),
        (Method::POST, "GrantAccess".into(), Some(json!({"Target": target(&record), "PrincipalAccess": {"Principal": principal("systemuser", &user), "AccessMask": "ReadAccess"}}))),
        (Method::POST, "ModifyAccess".into(), Some(json!({"Target": target(&record), "PrincipalAccess": {"Principal": principal("systemuser", &user), "AccessMask": "ReadAccess"}}))),
        (Method::POST, "RevokeAccess".into(), Some(json!({"Target": target(&record), "Revokee": principal("systemuser", &user)}))),
        (Method::GET, format!("systemusers({user})/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@tid)?{tid}"), None),
        (Method::GET, format!("RetrieveSharedPrincipalsAndAccess(Target=@tid)?{tid}"), None),
        (Method::POST, format!("systemusers({user})/systemuserroles_association/$ref"), Some(json!({"@odata.id": "roles(00000000-0000-0000-0000-000000000001)"}))),
        (Method::DELETE, format!("systemusers({user})/systemuserroles_association(00000000-0000-0000-0000-000000000001)/$ref"), None),
        (Method::GET, "roles".into(), None),
        (Method::GET, "systemusers".into(), None),
        (Method::POST, "systemusers".into(), Some(json!({"firstname": "intruder"}))),
        (Method::GET, "teams".into(), None),
        (Method::GET, "businessunits".into(), None),
        (Method::GET, "principalobjectaccessset".into(), None),
        (Method::POST, "$batch".into(), None),
        (Method::GET, "smsctx_smschannels".into(), None),
        (Method::POST, "smsctx_smschannels".into(), Some(json!({"smsctx_provider": "twilio", "smsctx_phonenumber": "+14252306549", "smsctx_secret": "s"}))),
        (Method::POST, format!("{rec}/Microsoft.Dynamics.CRM.smsctx_SendSms"), Some(json!({"Message": "hi"}))),
    ];
    for (method, path, body) in &routes {
        for token in [None, Some("wrong-token")] {
            let mut request = org.app.client.request(method.clone(), org.app.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            assert!(response.headers().contains_key("WWW-Authenticate"));
        }
    }
    let after = org.app.get_json(&ctx(&record)).await;
    assert_eq!(before, after);
    let count = org.app.get_json(&format!("{CTX}?$count=true")).await;
    assert_eq!(count["@odata.count"], 1);
    let users = org.app.get_json("systemusers?$count=true").await;
    assert_eq!(users["@odata.count"], 1);
    let shares = org
        .app
        .get_json("principalobjectaccessset?$count=true")
        .await;
    assert_eq!(shares["@odata.count"], 0);
}

#[tokio::test]
async fn service_protection_answers_429_with_retry_after_per_user() {
    let db = TestDatabase::new().await;
    let mut config = config(&db);
    config.limits.requests = Some(3);
    config.limits.window = Duration::from_secs(300);
    let app = spawn_app_with(db, config).await;
    for _ in 0..3 {
        let response = app.get(CTX).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = app.get(CTX).send().await.unwrap();
    let retry: u64 = response.headers()["Retry-After"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 300, "{retry}");
    assert_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "0x80072322",
        "Number of requests exceeded the limit of 3 over time window of 300 seconds.",
    )
    .await;
    // Unauthenticated requests are refused before they count (401, not 429).
    let response = app.client.get(app.url(CTX)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rs256_and_es256_tokens_are_checked_against_the_jwks() {
    let db = TestDatabase::new().await;
    let mut config = config(&db);
    config.jwt.secret = None;
    config.jwt.jwks = Some(include_str!("../src/security/testdata/jwks.json").into());
    let app = spawn_app_with(db, config).await;
    let org = Org {
        root: Org::root_of(&app).await,
        app,
    };
    let basic = org.role_named("Basic User").await;
    let user = org.user("keyed", &org.root, &[&basic]).await;
    let oid = org.app.get_json(&format!("systemusers({})", user.id)).await
        ["azureactivedirectoryobjectid"]
        .as_str()
        .unwrap()
        .to_string();
    let claims = json!({"oid": oid, "exp": now() + 600, "nbf": now() - 10});
    let sign = |alg: jsonwebtoken::Algorithm, kid: &str, pem: &str| {
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = Some(kid.into());
        let key = match alg {
            jsonwebtoken::Algorithm::RS256 => {
                jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
            }
            _ => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let rsa = sign(
        jsonwebtoken::Algorithm::RS256,
        "test-rsa-1",
        include_str!("../src/security/testdata/rsa_private.pem"),
    );
    let ec = sign(
        jsonwebtoken::Algorithm::ES256,
        "test-ec-1",
        include_str!("../src/security/testdata/ec_private.pem"),
    );
    for (name, token) in [("RS256", &rsa), ("ES256", &ec)] {
        let response = org
            .app
            .client
            .get(org.app.url(CTX))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
    }
    // Without --jwt-secret, an HS256 token is refused whatever it is signed with.
    let response = org
        .app
        .client
        .get(org.app.url(CTX))
        .bearer_auth(user.token.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A known key id with the other algorithm's key is refused.
    let wrong = sign(
        jsonwebtoken::Algorithm::RS256,
        "test-ec-1",
        include_str!("../src/security/testdata/rsa_private.pem"),
    );
    assert_eq!(list_status(&org, &wrong).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_change_to_a_roles_privileges_applies_to_the_next_request() {
    let org = Org::new().await;
    let role = org.role("changing", &grants(1)).await;
    let user = org.user("holder", &org.root, &[&role]).await;
    let other = org.user("other", &org.root, &[&role]).await;
    let theirs = org
        .context("theirs", &format!("/systemusers({})", other.id))
        .await;
    assert_eq!(
        org.status(&user, Method::GET, &ctx(&theirs), None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(org.readable(&user).await, set(&[]));

    let path = format!(
        "roleprivilegescollection?$filter=_roleid_value eq {role} and privilegeid eq {}",
        privilege_id(READ)
    );
    let rows = org.app.get_json(&path).await;
    let row = rows["value"][0]["roleprivilegeid"]
        .as_str()
        .unwrap()
        .to_string();
    let response = org
        .app
        .patch(
            &format!("roleprivilegescollection({row})"),
            &json!({"privilegedepthmask": 8}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        org.status(&user, Method::GET, &ctx(&theirs), None).await,
        StatusCode::OK
    );
    assert_eq!(org.readable(&user).await, set(&[&theirs]));

    let response = org
        .app
        .delete(&format!("roleprivilegescollection({row})"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = org.request(&user, Method::GET, CTX).send().await.unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "0x80040220", READ).await;

    // Granted again in a $batch change set: committed together with the role's version.
    let body = [
        "--batch_A",
        "Content-Type: multipart/mixed; boundary=changeset_B",
        "",
        "--changeset_B",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 1",
        "",
        &format!("POST {} HTTP/1.1", org.app.url("roleprivilegescollection")),
        "Content-Type: application/json",
        "",
        &json!({"roleid@odata.bind": format!("/roles({role})"), "privilegeid": privilege_id(READ).to_string(), "privilegedepthmask": 2}).to_string(),
        "--changeset_B--",
        "--batch_A--",
        "",
    ]
    .join("\r\n");
    let response = org
        .app
        .request(Method::POST, "$batch")
        .header("Content-Type", "multipart/mixed; boundary=batch_A")
        .body(body)
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains("HTTP/1.1 204"), "{text}");
    assert_eq!(org.readable(&user).await, set(&[&theirs]));
}

/// An org with an Omnichannel agent, a context the agent owns and one another agent owns.
async fn agent_and_contexts() -> (Org, User, String, String) {
    let org = Org::new().await;
    let agent_role = org.role_named("Omnichannel agent").await;
    let agent = org.user("agent", &org.root, &[&agent_role]).await;
    let other = org.user("other", &org.root, &[&agent_role]).await;
    let own = org
        .context("agent's", &format!("/systemusers({})", agent.id))
        .await;
    let others = org
        .context("other's", &format!("/systemusers({})", other.id))
        .await;
    (org, agent, own, others)
}

#[tokio::test]
async fn sms_channels_are_for_administrators_and_send_sms_needs_write_on_the_context() {
    let (org, agent, own, others) = agent_and_contexts().await;
    let channel = json!({"smsctx_provider": "twilio", "smsctx_phonenumber": "+14252306549", "smsctx_secret": "auth-token-1234"});

    // An agent may neither read nor add channels: they hold provider secrets.
    for (method, body) in [(Method::GET, None), (Method::POST, Some(channel.clone()))] {
        let mut request = org.request(&agent, method.clone(), "smsctx_smschannels");
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "0x80040220", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("smsctx_smschannel"),
            "{error}"
        );
    }
    let listed = org.app.get_json("smsctx_smschannels").await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 0);
    let response = org
        .app
        .post("smsctx_smschannels", &channel)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // SendSms: another user's context is refused before anything is sent; on its own context
    // the agent passes authorization and meets the next check (the context has no numbers).
    let send = |record: &str| format!("{CTX}({record})/Microsoft.Dynamics.CRM.smsctx_SendSms");
    let message = Some(json!({"Message": "hello"}));
    assert_eq!(
        org.status(&agent, Method::POST, &send(&others), message.clone())
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        org.status(&agent, Method::POST, &send(&own), message.clone())
            .await,
        StatusCode::BAD_REQUEST
    );
}

/// A request in a `$batch`: method, path, JSON body.
type BatchRequest<'a> = (&'a str, String, Option<Value>);

/// One `$batch` body: each item is a top-level request, or (`true`) a change set of requests.
fn batch_body(org: &Org, items: &[(bool, Vec<BatchRequest>)]) -> String {
    let mut lines: Vec<String> = Vec::new();
    let request = |lines: &mut Vec<String>,
                   n: usize,
                   (method, path, body): &(&str, String, Option<Value>)| {
        lines.push("Content-Type: application/http".into());
        lines.push("Content-Transfer-Encoding: binary".into());
        lines.push(format!("Content-ID: {n}"));
        lines.push(String::new());
        lines.push(format!("{method} {} HTTP/1.1", org.app.url(path)));
        lines.push("Content-Type: application/json".into());
        lines.push(String::new());
        lines.push(body.as_ref().map(Value::to_string).unwrap_or_default());
    };
    let mut n = 0;
    for (changeset, requests) in items {
        lines.push("--batch_A".into());
        if *changeset {
            lines.push("Content-Type: multipart/mixed; boundary=changeset_B".into());
            lines.push(String::new());
            for r in requests {
                n += 1;
                lines.push("--changeset_B".into());
                request(&mut lines, n, r);
            }
            lines.push("--changeset_B--".into());
        } else {
            n += 1;
            request(&mut lines, n, &requests[0]);
        }
    }
    lines.push("--batch_A--".into());
    let mut body = lines.join("\r\n");
    body.push_str("\r\n");
    body
}

/// The statuses of a batch response's parts, in order.
fn part_statuses(text: &str) -> Vec<u16> {
    text.lines()
        .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}

#[tokio::test]
async fn batch_carries_sms_channel_requests_and_send_sms_authorized_like_the_rest() {
    let (org, agent, own, others) = agent_and_contexts().await;
    let channel = json!({"smsctx_provider": "twilio", "smsctx_phonenumber": "+14252306549", "smsctx_secret": "auth-token-1234"});
    let send = |record: &str| format!("{CTX}({record})/Microsoft.Dynamics.CRM.smsctx_SendSms");
    let message = Some(json!({"Message": "hello"}));

    // The agent: channel reads and writes refused by the guard, SendSms refused on another
    // user's context, and on its own context authorized (the context has no numbers: 400).
    let body = batch_body(
        &org,
        &[
            (false, vec![("GET", "smsctx_smschannels".into(), None)]),
            (
                true,
                vec![("POST", "smsctx_smschannels".into(), Some(channel.clone()))],
            ),
            (false, vec![("POST", send(&others), message.clone())]),
            (false, vec![("POST", send(&own), message.clone())]),
        ],
    );
    let (status, text) = org.batch(Some(&agent), body, true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(part_statuses(&text), vec![403, 403, 403, 400], "{text}");
    assert_eq!(text.matches("0x80040220").count(), 2, "{text}");
    assert!(text.contains("smsctx_smschannel"), "{text}");
    assert!(text.contains("0x80048306"), "{text}");
    assert_eq!(
        org.app.get_json("smsctx_smschannels").await["value"],
        json!([])
    );

    // Without continue-on-error the batch stops at the agent's first refusal.
    let body = batch_body(
        &org,
        &[(false, vec![("GET", "smsctx_smschannels".into(), None)])],
    );
    let (status, _) = org.batch(Some(&agent), body, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The administrator: a change set that adds a channel and then fails rolls the channel
    // back; one that only adds it commits, and a later part lists and reads it.
    let second = json!({"smsctx_provider": "twilio", "smsctx_phonenumber": "+14252306550", "smsctx_secret": "auth-token-5678"});
    let body = batch_body(
        &org,
        &[
            (
                true,
                vec![
                    ("POST", "smsctx_smschannels".into(), Some(second.clone())),
                    (
                        "POST",
                        "smsctx_smschannels".into(),
                        Some(json!({"color": "red"})),
                    ),
                ],
            ),
            (
                true,
                vec![("POST", "smsctx_smschannels".into(), Some(channel.clone()))],
            ),
            (false, vec![("GET", "smsctx_smschannels".into(), None)]),
        ],
    );
    let (status, text) = org.batch(None, body, true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(part_statuses(&text), vec![400, 201, 200], "{text}");
    let listed = org.app.get_json("smsctx_smschannels").await;
    let numbers: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["smsctx_phonenumber"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, vec!["14252306549"], "{listed}");
    assert!(text.contains("14252306549"), "{text}");
    assert!(!text.contains("auth-token-1234"), "{text}");
}
