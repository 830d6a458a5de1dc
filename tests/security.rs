//! The security model over HTTP: sign-in, business units, teams, roles with depths, ownership
//! and sharing, on every read path (Retrieve, RetrieveMultiple with counts, `$count`, `$apply`,
//! FetchXML, `$expand`, `$batch`) and every write path.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use smsctx::security::jwt;
use smsctx::security::privilege_id;
use uuid::Uuid;

const READ: &str = "prvReadmsdyn_smsengagementctx";

/// A signed-in user.
#[derive(Clone)]
struct User {
    id: String,
    token: String,
}

struct Org {
    app: TestApp,
    root: String,
}

fn token_for(oid: Uuid) -> String {
    jwt::mint(JWT_SECRET.as_bytes(), oid, Duration::from_secs(600))
}

impl Org {
    async fn new() -> Org {
        let app = spawn_app().await;
        let units = app
            .get_json("businessunits?$select=name,_parentbusinessunitid_value")
            .await;
        let root = units["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["_parentbusinessunitid_value"].is_null())
            .expect("a root business unit")["businessunitid"]
            .as_str()
            .unwrap()
            .to_string();
        Org { app, root }
    }

    async fn unit(&self, name: &str, parent: &str) -> String {
        self.app
            .create(
                "businessunits",
                &json!({"name": name, "parentbusinessunitid@odata.bind": format!("/businessunits({parent})")}),
            )
            .await
    }

    /// A role of the root unit, by name.
    async fn role_named(&self, name: &str) -> String {
        let path = format!(
            "roles?$filter=name eq '{name}' and _businessunitid_value eq {}",
            self.root
        );
        let roles = self.app.get_json(&path).await;
        roles["value"][0]["roleid"]
            .as_str()
            .unwrap_or_else(|| panic!("the role {name}: {roles}"))
            .to_string()
    }

    /// A custom role of the root unit with privileges at depth masks (1, 2, 4, 8).
    async fn role(&self, name: &str, grants: &[(&str, i64)]) -> String {
        let id = self
            .app
            .create(
                "roles",
                &json!({"name": name, "businessunitid@odata.bind": format!("/businessunits({})", self.root)}),
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
        let oid = Uuid::new_v4();
        let id = self
            .app
            .create(
                "systemusers",
                &json!({
                    "firstname": name, "lastname": "Test", "domainname": format!("{name}@example.com"),
                    "azureactivedirectoryobjectid": oid.to_string(),
                    "businessunitid@odata.bind": format!("/businessunits({unit})"),
                }),
            )
            .await;
        for role in roles {
            self.associate(
                &format!("systemusers({id})/systemuserroles_association"),
                &format!("roles({role})"),
            )
            .await;
        }
        User {
            id,
            token: token_for(oid),
        }
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

    let owner = org.user("owner", &root, &[&basic]).await;
    let child_owner = org.user("childowner", &child, &[&basic]).await;
    let other_owner = org.user("otherowner", &other, &[&basic]).await;
    let member = org.user("member", &other, &[&basic]).await;
    let shared_with = org.user("sharedwith", &other, &[&basic]).await;
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
        let role = org.role(&format!("ctx {depth}"), &grants(mask)).await;
        let same = org.user(&format!("same{depth}"), &root, &[&role]).await;
        let in_child = org.user(&format!("child{depth}"), &child, &[&role]).await;
        let in_other = org.user(&format!("other{depth}"), &other, &[&role]).await;
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
