//! Change tracking: `Prefer: odata.track-changes` and delta links over the change log, on
//! both backends: a walk over creates, updates, state changes and deletes returns each change
//! exactly once (also while writers run, on PostgreSQL through two nodes), a Basic-depth
//! user's deltas hold only the rows it may read, the options Dataverse refuses and an expired
//! or invalid token are refused.

use crate::common;

use std::collections::HashMap;

use common::*;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

const TRACK: &str = "odata.track-changes";

/// A tracked first read of `path` as the bearer of `token`: the body and the headers.
async fn first_read(app: &TestApp, token: &str, path: &str) -> (Value, HeaderMap) {
    let response = get_as(app, token, path)
        .header("Prefer", TRACK)
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    (body, headers)
}

/// The GET of a delta link (an absolute URL) as the bearer of `token`.
async fn follow(app: &TestApp, token: &str, link: &str) -> Value {
    let response = app
        .client
        .get(link)
        .bearer_auth(token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn delta_link(body: &Value) -> String {
    body["@odata.deltaLink"]
        .as_str()
        .unwrap_or_else(|| panic!("a delta link in {body}"))
        .to_string()
}

/// What one delta said: rows by id (name, state, version) and removed ids.
#[derive(Debug, Default)]
struct Delta {
    rows: HashMap<String, (Value, Value, i64)>,
    removed: Vec<String>,
}

fn read_delta(body: &Value) -> Delta {
    let mut delta = Delta::default();
    for entry in body["value"].as_array().unwrap() {
        if let Some(context) = entry["@odata.context"].as_str() {
            assert!(context.ends_with("$metadata#msdyn_smsengagementctxes/$deletedEntity"));
            assert_eq!(entry["reason"], "deleted");
            delta
                .removed
                .push(entry["id"].as_str().unwrap().to_string());
            continue;
        }
        let id = entry["msdyn_smsengagementctxid"]
            .as_str()
            .unwrap()
            .to_string();
        let etag = entry["@odata.etag"].as_str().unwrap();
        let version: i64 = etag
            .trim_start_matches("W/\"")
            .trim_end_matches('"')
            .parse()
            .unwrap();
        let previous = delta.rows.insert(
            id.clone(),
            (
                entry["msdyn_name"].clone(),
                entry["statecode"].clone(),
                version,
            ),
        );
        assert!(previous.is_none(), "{id} twice in one response: {body}");
    }
    delta
}

#[tokio::test]
async fn a_delta_walk_returns_creates_updates_state_changes_and_deletes_once() {
    let app = spawn_app().await;
    let a = app.create(CTX, &json!({"msdyn_name": "a"})).await;
    let b = app.create(CTX, &json!({"msdyn_name": "b"})).await;
    let c = app.create(CTX, &json!({"msdyn_name": "c"})).await;
    let path = format!("{CTX}?$select=msdyn_name,statecode");
    let (first, headers) = first_read(&app, TOKEN, &path).await;
    assert_eq!(headers["Preference-Applied"], TRACK);
    assert_eq!(
        first["@odata.context"],
        app.url("$metadata#msdyn_smsengagementctxes(msdyn_name,statecode)")
    );
    let initial = read_delta(&first);
    assert_eq!(initial.rows.len(), 3);
    let link = delta_link(&first);
    assert!(link.starts_with(&app.url(&format!("{CTX}?$select=msdyn_name,statecode&$deltatoken="))));

    // Nothing changed: an empty delta and a link again.
    let empty = follow(&app, TOKEN, &link).await;
    assert_eq!(empty["value"], json!([]), "{empty}");
    assert_eq!(
        empty["@odata.context"],
        app.url("$metadata#msdyn_smsengagementctxes(msdyn_name,statecode)/$delta")
    );

    let response = app
        .patch(&ctx(&a), &json!({"msdyn_name": "a2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app
        .patch(&ctx(&b), &json!({"statecode": 1, "statuscode": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app.delete(&ctx(&c)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let d = app.create(CTX, &json!({"msdyn_name": "d"})).await;
    // Changed twice: returned once, as it is now.
    let response = app
        .patch(&ctx(&d), &json!({"msdyn_name": "d2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let body = follow(&app, TOKEN, &delta_link(&empty)).await;
    let delta = read_delta(&body);
    assert_eq!(delta.rows.len(), 3, "{body}");
    assert_eq!(delta.rows[&a].0, "a2");
    assert_eq!(delta.rows[&b].1, 1);
    assert_eq!(delta.rows[&d].0, "d2");
    assert_eq!(delta.removed, vec![c.clone()]);
    // Only the selected columns (and the key and etag).
    let row = body["value"].as_array().unwrap()[0].as_object().unwrap();
    let mut keys: Vec<&str> = row.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "@odata.etag",
            "msdyn_name",
            "msdyn_smsengagementctxid",
            "statecode"
        ]
    );

    // The link of that delta sees nothing new; an older link sees the same changes again.
    let after = follow(&app, TOKEN, &delta_link(&body)).await;
    assert_eq!(after["value"], json!([]), "{after}");
    let again = read_delta(&follow(&app, TOKEN, &delta_link(&empty)).await);
    assert_eq!(again.rows.len(), 3);
    assert_eq!(again.removed, vec![c]);
}

/// A client's copy of the table: rows by id (name, version), and the ids it was told are gone.
#[derive(Default)]
struct Mirror {
    rows: HashMap<String, (Value, i64)>,
    gone: std::collections::HashSet<String>,
}

/// Applies a delta to a client's copy: each returned row must be newer than the copy's, and
/// each removal new (a row created and deleted between two deltas is removed unseen).
fn apply(mirror: &mut Mirror, delta: Delta) -> usize {
    let changes = delta.rows.len() + delta.removed.len();
    for (id, (name, _, version)) in delta.rows {
        assert!(
            !mirror.gone.contains(&id),
            "{id} returned after its removal"
        );
        if let Some((_, seen)) = mirror.rows.get(&id) {
            assert!(version > *seen, "{id} returned again at version {version}");
        }
        mirror.rows.insert(id, (name, version));
    }
    for id in delta.removed {
        assert!(mirror.gone.insert(id.clone()), "{id} removed twice");
        mirror.rows.remove(&id);
    }
    changes
}

/// The table as it is, by id: name and version.
async fn table(app: &TestApp) -> HashMap<String, (Value, i64)> {
    let body = app.get_json(&format!("{CTX}?$select=msdyn_name")).await;
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let version: i64 = row["@odata.etag"]
                .as_str()
                .unwrap()
                .trim_start_matches("W/\"")
                .trim_end_matches('"')
                .parse()
                .unwrap();
            (
                row["msdyn_smsengagementctxid"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                (row["msdyn_name"].clone(), version),
            )
        })
        .collect()
}

/// Creates, updates, state changes and deletes through `bases` (service roots), round robin.
async fn write_load(bases: Vec<String>, writer: usize, rounds: usize) {
    let client = reqwest::Client::new();
    let mut ids: Vec<String> = Vec::new();
    for round in 0..rounds {
        let base = &bases[round % bases.len()];
        let send = |method: reqwest::Method, path: String, body: Option<Value>| {
            let mut request = client
                .request(method, format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .header("Accept", "application/json");
            if let Some(body) = body {
                request = request.json(&body);
            }
            request.send()
        };
        let response = match round % 4 {
            0 | 1 => {
                let response = send(
                    reqwest::Method::POST,
                    CTX.to_string(),
                    Some(json!({"msdyn_name": format!("w{writer} r{round}")})),
                )
                .await
                .unwrap();
                ids.push(entity_id(&response));
                response
            }
            2 => {
                send(
                    reqwest::Method::PATCH,
                    ctx(&ids[ids.len() - 1]),
                    Some(json!({"msdyn_name": format!("w{writer} r{round} updated"), "statecode": 1, "statuscode": 2})),
                )
                .await
                .unwrap()
            }
            _ => send(reqwest::Method::DELETE, ctx(&ids.remove(0)), None)
                .await
                .unwrap(),
        };
        assert!(response.status().is_success(), "{}", response.status());
    }
}

/// Walks deltas while `writers` run, then until the copy is whole: the copy equals the table,
/// and no row came twice at one version.
async fn walk_while_writing(
    app: &TestApp,
    readers: &[String],
    writers: Vec<tokio::task::JoinHandle<()>>,
) {
    let (first, _) = first_read(app, TOKEN, &format!("{CTX}?$select=msdyn_name,statecode")).await;
    let mut mirror = Mirror::default();
    apply(&mut mirror, read_delta(&first));
    let mut link = delta_link(&first);
    let mut reader = 0;
    let done = async {
        for writer in writers {
            writer.await.unwrap();
        }
    };
    tokio::pin!(done);
    let mut finished = false;
    loop {
        if !finished {
            finished = tokio::time::timeout(std::time::Duration::from_millis(20), &mut done)
                .await
                .is_ok();
        }
        // Follow the link through each node in turn (the token is the same on every node).
        let target = link.replacen(&app.base, &readers[reader % readers.len()], 1);
        reader += 1;
        let body = follow(app, TOKEN, &target).await;
        let changes = apply(&mut mirror, read_delta(&body));
        link = delta_link(&body);
        if finished && changes == 0 {
            break;
        }
    }
    assert_eq!(mirror.rows, table(app).await);
}

#[tokio::test]
async fn a_delta_walk_during_writes_sees_each_change_once() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.create(CTX, &json!({"msdyn_name": format!("before {i}")}))
            .await;
    }
    let writers = (0..2)
        .map(|w| tokio::spawn(write_load(vec![app.base.clone()], w, 40)))
        .collect();
    walk_while_writing(&app, std::slice::from_ref(&app.base), writers).await;
}

#[tokio::test]
async fn two_nodes_committing_concurrently_miss_nothing_and_repeat_nothing() {
    let db = TestDatabase::new().await;
    if !db.is_postgres() {
        return skipped("two_nodes_committing_concurrently_miss_nothing_and_repeat_nothing");
    }
    let url = db.url.clone();
    let app = spawn_app_in(db).await;
    let other = start_server(&url, &[]);
    let bases = vec![app.base.clone(), other.base.clone()];
    let writers = (0..4)
        .map(|w| tokio::spawn(write_load(bases.clone(), w, 40)))
        .collect();
    walk_while_writing(&app, &bases, writers).await;
}

/// GrantAccess: Read on the context `id` to the user `user`, as the administrator.
async fn share_read(app: &TestApp, id: &str, user: &str) {
    let share = app
        .post(
            "GrantAccess",
            &json!({
                "Target": {"@odata.type": "Microsoft.Dynamics.CRM.msdyn_smsengagementctx", "msdyn_smsengagementctxid": id},
                "PrincipalAccess": {
                    "Principal": {"@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": user},
                    "AccessMask": "ReadAccess"
                }
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        share.status(),
        StatusCode::NO_CONTENT,
        "{}",
        share.text().await.unwrap()
    );
}

fn skipped(test: &str) {
    eprintln!("{test}: PostgreSQL only (set SMSCTX_TEST_POSTGRES); skipped");
}

#[tokio::test]
async fn a_basic_depth_user_gets_only_readable_rows_and_loses_rows_taken_away() {
    let app = spawn_app().await;
    let root = root_unit(&app).await;
    let role = custom_role(
        &app,
        &root,
        "basic writer",
        &[
            ("prvReadmsdyn_smsengagementctx", 1),
            ("prvWritemsdyn_smsengagementctx", 1),
            ("prvCreatemsdyn_smsengagementctx", 1),
            ("prvReadUser", 8),
            ("prvReadTeam", 8),
            ("prvReadBusinessUnit", 8),
        ],
    )
    .await;
    let user = signed_in_user(&app, "tracker", &root, &[&role]).await;
    let mine = app
        .create(
            CTX,
            &json!({"msdyn_name": "mine", "ownerid@odata.bind": format!("/systemusers({})", user.id)}),
        )
        .await;
    let theirs = app.create(CTX, &json!({"msdyn_name": "theirs"})).await;
    let path = format!("{CTX}?$select=msdyn_name");
    let (first, _) = first_read(&app, &user.token, &path).await;
    let initial = read_delta(&first);
    assert_eq!(initial.rows.keys().collect::<Vec<_>>(), vec![&mine]);

    // Another row's update and a new row of someone else's: nothing for this user.
    let response = app
        .patch(&ctx(&theirs), &json!({"msdyn_name": "theirs 2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.create(CTX, &json!({"msdyn_name": "also theirs"})).await;
    let body = follow(&app, &user.token, &delta_link(&first)).await;
    assert_eq!(body["value"], json!([]), "{body}");

    // Shared with the user: it appears; the share revoked: it is removed.
    share_read(&app, &theirs, &user.id).await;
    let shared = follow(&app, &user.token, &delta_link(&body)).await;
    let delta = read_delta(&shared);
    assert_eq!(
        delta.rows.keys().collect::<Vec<_>>(),
        vec![&theirs],
        "{shared}"
    );
    let revoke = app
        .post(
            "RevokeAccess",
            &json!({
                "Target": {"@odata.type": "Microsoft.Dynamics.CRM.msdyn_smsengagementctx", "msdyn_smsengagementctxid": theirs},
                "Revokee": {"@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": user.id}
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        revoke.status(),
        StatusCode::NO_CONTENT,
        "{}",
        revoke.text().await.unwrap()
    );
    let revoked = follow(&app, &user.token, &delta_link(&shared)).await;
    let delta = read_delta(&revoked);
    assert!(delta.rows.is_empty(), "{revoked}");
    assert_eq!(delta.removed, vec![theirs.clone()]);

    // The user's own row assigned away: removed.
    let admin = app.get_json("WhoAmI").await["UserId"]
        .as_str()
        .unwrap()
        .to_string();
    let response = app
        .patch(
            &ctx(&mine),
            &json!({"ownerid@odata.bind": format!("/systemusers({admin})")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let assigned = follow(&app, &user.token, &delta_link(&revoked)).await;
    let delta = read_delta(&assigned);
    assert!(delta.rows.is_empty(), "{assigned}");
    assert_eq!(delta.removed, vec![mine]);
}

#[tokio::test]
async fn options_dataverse_refuses_with_change_tracking_are_refused() {
    let app = spawn_app().await;
    for (query, option) in [
        ("$filter=statecode eq 0", "filter"),
        ("$orderby=msdyn_name", "orderby"),
        ("$expand=msdyn_liveworkitemid", "expand"),
        ("$top=2", "top"),
    ] {
        let response = app
            .get(&format!("{CTX}?$select=msdyn_name&{query}"))
            .header("Prefer", TRACK)
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::BAD_REQUEST,
            "0x80060888",
            &format!("The \"${option}\" query parameter isn't supported when Change Tracking is enabled."),
        )
        .await;
    }
    // The same on a delta link.
    let (first, _) = first_read(&app, TOKEN, CTX).await;
    let link = delta_link(&first);
    let response = app
        .client
        .get(format!("{link}&$top=1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "0x80060888", "\"$top\"").await;
    // A token this server did not write.
    for token in ["garbage", "x!1", "-5!1"] {
        let response = app
            .get(&format!("{CTX}?$deltatoken={}", percent_encode(token)))
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::BAD_REQUEST,
            "0x80040203",
            "is not valid",
        )
        .await;
    }
    // A table that does not track changes: the preference is not applied (a plain list, no
    // delta link), and a delta link is refused.
    let response = app
        .get("msdyn_ocliveworkitems")
        .header("Prefer", TRACK)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("Preference-Applied").is_none());
    let body: Value = response.json().await.unwrap();
    assert!(body.get("@odata.deltaLink").is_none(), "{body}");
    assert!(body["value"].is_array(), "{body}");
    let response = app
        .get("msdyn_ocliveworkitems?$deltatoken=1!1")
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "Change tracking is not enabled",
    )
    .await;
}

#[tokio::test]
async fn a_token_older_than_the_retention_is_refused_as_expired() {
    let db = TestDatabase::new().await;
    let mut config = config(&db);
    config.change_log_retention_secs = 1;
    let app = spawn_app_with(db, config).await;
    let (first, _) = first_read(&app, TOKEN, CTX).await;
    let link = delta_link(&first);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = app
        .client
        .get(&link)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "0x80044352",
        "Version stamp associated with the client has expired",
    )
    .await;
}

#[tokio::test]
async fn entity_definitions_report_change_tracking() {
    let app = spawn_app().await;
    let body = app
        .get_json("EntityDefinitions?$select=LogicalName&$filter=ChangeTrackingEnabled eq true")
        .await;
    let names: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["LogicalName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["msdyn_smsengagementctx"]);
    // `$metadata?annotations=true` marks its entity set, and only its.
    let csdl = app
        .get("$metadata?annotations=true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let term = "<Annotation Term=\"Org.OData.Capabilities.V1.ChangeTracking\">";
    assert_eq!(csdl.matches(term).count(), 1);
    let set = csdl
        .find("<EntitySet Name=\"msdyn_smsengagementctxes\"")
        .unwrap();
    let end = set + csdl[set..].find("</EntitySet>").unwrap();
    assert!(csdl[set..end].contains(term));
}

/// `RetrieveRecordChangeHistory` of a context as the bearer of `token`.
async fn history(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    let target = percent_encode(&format!("{{'@odata.id':'{CTX}({id})'}}"));
    get_as(
        app,
        token,
        &format!("RetrieveRecordChangeHistory(Target=@t)?@t={target}"),
    )
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn every_message_leaves_its_audit_record_with_old_and_new_values() {
    let app = spawn_app().await;
    let admin = app.get_json("WhoAmI").await["UserId"]
        .as_str()
        .unwrap()
        .to_string();
    let root = root_unit(&app).await;
    let role = basic_role(&app, &root).await;
    let user = signed_in_user(&app, "auditee", &root, &[&role]).await;
    let id = app.create(CTX, &json!({"msdyn_name": "first"})).await;
    let mut writes = vec![
        json!({"msdyn_name": "second"}),
        json!({"statecode": 1, "statuscode": 2}),
        json!({"ownerid@odata.bind": format!("/systemusers({})", user.id)}),
    ];
    for body in writes.drain(..) {
        let response = app.patch(&ctx(&id), &body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{body}");
    }
    let response = app.delete(&ctx(&id)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let response = history(&app, TOKEN, &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["@odata.context"],
        app.url("$metadata#Microsoft.Dynamics.CRM.RetrieveRecordChangeHistoryResponse")
    );
    let details = body["AuditDetailCollection"]["AuditDetails"]
        .as_array()
        .unwrap();
    let actions: Vec<i64> = details
        .iter()
        .map(|d| d["AuditRecord"]["action"].as_i64().unwrap())
        .collect();
    // Create, Update, Deactivate, Assign, Delete.
    assert_eq!(actions, [1, 2, 5, 13, 3], "{body}");
    assert_eq!(body["AuditDetailCollection"]["TotalRecordCount"], 5);
    for detail in details {
        assert_eq!(
            detail["@odata.type"],
            "#Microsoft.Dynamics.CRM.AttributeAuditDetail"
        );
        assert_eq!(detail["AuditRecord"]["_objectid_value"], id.as_str());
        assert_eq!(
            detail["AuditRecord"]["objecttypecode"],
            "msdyn_smsengagementctx"
        );
    }
    let created = &details[0];
    assert_eq!(created["AuditRecord"]["operation"], 1);
    assert_eq!(created["AuditRecord"]["_userid_value"], admin.as_str());
    assert_eq!(created["NewValue"]["msdyn_name"], "first");
    assert_eq!(
        created["OldValue"],
        json!({"@odata.type": "#Microsoft.Dynamics.CRM.msdyn_smsengagementctx"})
    );
    let updated = &details[1];
    assert_eq!(
        updated["OldValue"],
        json!({"@odata.type": "#Microsoft.Dynamics.CRM.msdyn_smsengagementctx", "msdyn_name": "first"})
    );
    assert_eq!(
        updated["NewValue"],
        json!({"@odata.type": "#Microsoft.Dynamics.CRM.msdyn_smsengagementctx", "msdyn_name": "second"})
    );
    let deactivated = &details[2];
    assert_eq!(deactivated["OldValue"]["statecode"], 0);
    assert_eq!(deactivated["NewValue"]["statecode"], 1);
    assert_eq!(deactivated["NewValue"]["statuscode"], 2);
    let assigned = &details[3];
    assert_eq!(assigned["OldValue"]["_ownerid_value"], admin.as_str());
    assert_eq!(assigned["NewValue"]["_ownerid_value"], user.id.as_str());
    let deleted = &details[4];
    assert_eq!(deleted["AuditRecord"]["operation"], 3);
    assert_eq!(deleted["OldValue"]["msdyn_name"], "second");

    // One record by its id.
    let audit = details[1]["AuditRecord"]["auditid"].as_str().unwrap();
    let one = app
        .get_json(&format!("RetrieveAuditDetails(AuditId={audit})"))
        .await;
    assert_eq!(one["AuditDetail"], details[1]);

    // A share change is a ShareAuditDetail.
    let shared = app.create(CTX, &json!({"msdyn_name": "shared"})).await;
    share_read(&app, &shared, &user.id).await;
    let body: Value = history(&app, TOKEN, &shared).await.json().await.unwrap();
    let details = body["AuditDetailCollection"]["AuditDetails"]
        .as_array()
        .unwrap();
    assert_eq!(details.len(), 2, "{body}");
    assert_eq!(
        details[1]["@odata.type"],
        "#Microsoft.Dynamics.CRM.ShareAuditDetail"
    );
    assert_eq!(details[1]["AuditRecord"]["action"], 14);
    assert_eq!(details[1]["Principal"]["systemuserid"], user.id.as_str());
    assert_eq!(details[1]["NewPrivileges"], "ReadAccess");
}

#[tokio::test]
async fn only_the_audit_privilege_reads_or_deletes_the_history() {
    let app = spawn_app().await;
    let root = root_unit(&app).await;
    let role = basic_role(&app, &root).await;
    let user = signed_in_user(&app, "noaudit", &root, &[&role]).await;
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "theirs", "ownerid@odata.bind": format!("/systemusers({})", user.id)}),
        )
        .await;
    assert_error(
        history(&app, &user.token, &id).await,
        StatusCode::FORBIDDEN,
        "0x80040220",
        "is missing prvReadAuditSummary privilege",
    )
    .await;
    let response = app
        .client
        .post(app.url("DeleteAuditData"))
        .bearer_auth(&user.token)
        .json(&json!({"EndDate": "2100-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // The administrator deletes the history up to a date: the records before it are gone, and
    // a delta token issued before it is refused as expired.
    let (first, _) = first_read(&app, TOKEN, CTX).await;
    let link = delta_link(&first);
    let body: Value = history(&app, TOKEN, &id).await.json().await.unwrap();
    assert_eq!(body["AuditDetailCollection"]["TotalRecordCount"], 1);
    let response = app
        .post(
            "DeleteAuditData",
            &json!({"EndDate": "2100-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let deleted: Value = response.json().await.unwrap();
    assert!(deleted["Result"].as_u64().unwrap() >= 1, "{deleted}");
    let body: Value = history(&app, TOKEN, &id).await.json().await.unwrap();
    assert_eq!(body["AuditDetailCollection"]["AuditDetails"], json!([]));
    let response = app
        .client
        .get(&link)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "0x80044352", "expired").await;
}
