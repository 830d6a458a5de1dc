//! The audit table and the audit and change-tracking settings, on both backends: `audits` read
//! through the read planner by a System Administrator only and refused to write; the
//! organisation's `isauditenabled`, a table's `IsAuditEnabled` and `ChangeTrackingEnabled`
//! (EntityDefinitions) and a column's `IsAuditEnabled` (its AttributeDefinition), each set by an
//! administrator only, each turning off what it governs and on again.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SEED: &str = "EntityDefinitions(LogicalName='msdyn_smsengagementctx')";

/// `RetrieveRecordChangeHistory` of a context (as the administrator): the actions, in order.
async fn history_actions(app: &TestApp, id: &str) -> Vec<i64> {
    let target = percent_encode(&format!("{{'@odata.id':'{CTX}({id})'}}"));
    let body = app
        .get_json(&format!(
            "RetrieveRecordChangeHistory(Target=@t)?@t={target}"
        ))
        .await;
    body["AuditDetailCollection"]["AuditDetails"]
        .as_array()
        .unwrap_or_else(|| panic!("a history: {body}"))
        .iter()
        .map(|d| d["AuditRecord"]["action"].as_i64().unwrap())
        .collect()
}

/// The history's details of a context.
async fn history(app: &TestApp, id: &str) -> Vec<Value> {
    let target = percent_encode(&format!("{{'@odata.id':'{CTX}({id})'}}"));
    let body = app
        .get_json(&format!(
            "RetrieveRecordChangeHistory(Target=@t)?@t={target}"
        ))
        .await;
    body["AuditDetailCollection"]["AuditDetails"]
        .as_array()
        .unwrap()
        .clone()
}

/// The change-log rows of one object, counted outside the server (both backends).
async fn logged(app: &TestApp, id: &str) -> u64 {
    execute_sql(
        &app.db,
        "UPDATE smsctx_changelog SET audited = audited WHERE CAST(objectid AS TEXT) = ?1",
        &[id],
    )
    .await
}

async fn patch_ok(app: &TestApp, path: &str, body: &Value) {
    let response = app.patch(path, body).send().await.unwrap();
    let status = response.status();
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "{path} {body}: {}",
        response.text().await.unwrap()
    );
}

async fn put(app: &TestApp, token: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn put_ok(app: &TestApp, path: &str, body: &Value) {
    let response = put(app, TOKEN, path, body).await;
    let status = response.status();
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "{path} {body}: {}",
        response.text().await.unwrap()
    );
}

async fn organization_id(app: &TestApp) -> String {
    app.get_json("WhoAmI").await["OrganizationId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_audits_table_lists_the_audited_changes_through_the_read_planner() {
    let app = spawn_app().await;
    let admin = app.get_json("WhoAmI").await["UserId"]
        .as_str()
        .unwrap()
        .to_string();
    let id = app.create(CTX, &json!({"msdyn_name": "audited"})).await;
    let other = app.create(CTX, &json!({"msdyn_name": "other"})).await;
    patch_ok(&app, &ctx(&id), &json!({"msdyn_name": "renamed"})).await;
    patch_ok(&app, &ctx(&id), &json!({"statecode": 1, "statuscode": 2})).await;

    let body = app
        .get_json(&format!(
            "audits?$filter=_objectid_value eq {id}&$orderby=createdon&$count=true"
        ))
        .await;
    assert_eq!(
        body["@odata.context"],
        app.url("$metadata#audits"),
        "{body}"
    );
    assert_eq!(body["@odata.count"], 3, "{body}");
    let rows = body["value"].as_array().unwrap();
    let actions: Vec<i64> = rows.iter().map(|r| r["action"].as_i64().unwrap()).collect();
    assert_eq!(actions, [1, 2, 5], "{body}");
    let operations: Vec<i64> = rows
        .iter()
        .map(|r| r["operation"].as_i64().unwrap())
        .collect();
    assert_eq!(operations, [1, 2, 2], "{body}");
    for row in rows {
        assert_eq!(row["_objectid_value"], id.as_str());
        assert_eq!(row["objecttypecode"], "msdyn_smsengagementctx");
        assert_eq!(row["_userid_value"], admin.as_str());
        assert_eq!(row["_callinguserid_value"], Value::Null);
        assert!(row["createdon"].as_str().unwrap().ends_with('Z'), "{row}");
    }
    // The same records as the audit history names them.
    let details = history(&app, &id).await;
    let ids: Vec<&Value> = details
        .iter()
        .map(|d| &d["AuditRecord"]["auditid"])
        .collect();
    let listed: Vec<&Value> = rows.iter().map(|r| &r["auditid"]).collect();
    assert_eq!(ids, listed);

    // One record by its key, with formatted values; a filter on the action.
    let audit = rows[2]["auditid"].as_str().unwrap();
    let response = app
        .get(&format!("audits({audit})?$select=action,_objectid_value"))
        .header("Prefer", "odata.include-annotations=\"*\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let one: Value = response.json().await.unwrap();
    assert_eq!(one["action"], 5, "{one}");
    assert_eq!(
        one["action@OData.Community.Display.V1.FormattedValue"], "Deactivate",
        "{one}"
    );
    assert_eq!(
        one["_objectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"], "msdyn_smsengagementctx",
        "{one}"
    );
    let body = app
        .get_json(&format!(
            "audits?$select=auditid&$filter=action eq 1 and _objectid_value eq {other}"
        ))
        .await;
    assert_eq!(body["value"].as_array().unwrap().len(), 1, "{body}");
    let missing = app
        .get("audits(00000000-0000-0000-0000-0000ffffffff)")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_user_without_the_audit_privilege_is_refused_on_audits() {
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
    let audit = history(&app, &id).await[0]["AuditRecord"]["auditid"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        "audits".to_string(),
        format!("audits?$filter=_objectid_value eq {id}"),
        format!("audits({audit})"),
        "audits/$count".to_string(),
    ] {
        let response = get_as(&app, &user.token, &path).send().await.unwrap();
        assert_error(
            response,
            StatusCode::FORBIDDEN,
            "0x80040220",
            "is missing prvReadAuditSummary privilege",
        )
        .await;
    }
    // The user reads its own context, but no audit row through a relationship either.
    let body: Value = get_as(&app, &user.token, &format!("{CTX}?$select=msdyn_name"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 1, "{body}");
}

#[tokio::test]
async fn the_audits_table_is_read_only() {
    let app = spawn_app().await;
    let id = app.create(CTX, &json!({"msdyn_name": "x"})).await;
    let audit = history(&app, &id).await[0]["AuditRecord"]["auditid"]
        .as_str()
        .unwrap()
        .to_string();
    let create = app
        .post("audits", &json!({"action": 2}))
        .send()
        .await
        .unwrap();
    assert_error(create, StatusCode::BAD_REQUEST, "0x80040800", "Create").await;
    let update = app
        .patch(&format!("audits({audit})"), &json!({"action": 2}))
        .send()
        .await
        .unwrap();
    assert!(update.status().is_client_error(), "{}", update.status());
    let delete = app
        .delete(&format!("audits({audit})"))
        .send()
        .await
        .unwrap();
    assert_error(delete, StatusCode::BAD_REQUEST, "0x80040800", "Delete").await;
    // Nothing changed.
    assert_eq!(history_actions(&app, &id).await, [1]);
}

#[tokio::test]
async fn organization_auditing_off_records_no_audit_and_on_again_resumes() {
    let app = spawn_app().await;
    let org = organization_id(&app).await;
    let path = format!("organizations({org})");
    let body = app
        .get_json(&format!("{path}?$select=isauditenabled"))
        .await;
    assert_eq!(body["isauditenabled"], true, "{body}");

    // Only an administrator changes it.
    let root = root_unit(&app).await;
    let role = basic_role(&app, &root).await;
    let user = signed_in_user(&app, "nosettings", &root, &[&role]).await;
    let response = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&user.token)
        .json(&json!({"isauditenabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Nothing else of the organisation changes (a column not valid for update is ignored).
    let name = app.get_json(&format!("{path}?$select=name")).await["name"].clone();
    patch_ok(&app, &path, &json!({"name": "renamed"})).await;
    assert_eq!(
        app.get_json(&format!("{path}?$select=name")).await["name"],
        name
    );

    patch_ok(&app, &path, &json!({"isauditenabled": false})).await;
    let body = app
        .get_json(&format!("{path}?$select=isauditenabled"))
        .await;
    assert_eq!(body["isauditenabled"], false, "{body}");
    let (first, _) = {
        let response = app
            .get(CTX)
            .header("Prefer", "odata.track-changes")
            .send()
            .await
            .unwrap();
        let headers = response.headers().clone();
        (response.json::<Value>().await.unwrap(), headers)
    };
    let link = first["@odata.deltaLink"].as_str().unwrap().to_string();
    let id = app.create(CTX, &json!({"msdyn_name": "unaudited"})).await;
    patch_ok(&app, &ctx(&id), &json!({"msdyn_name": "still unaudited"})).await;
    assert_eq!(history_actions(&app, &id).await, Vec::<i64>::new());
    let body = app
        .get_json(&format!("audits?$filter=_objectid_value eq {id}"))
        .await;
    assert_eq!(body["value"], json!([]), "{body}");
    // Change tracking still sees the changes.
    let delta: Value = app
        .client
        .get(&link)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(delta["value"].as_array().unwrap().len(), 1, "{delta}");
    assert_eq!(
        delta["value"][0]["msdyn_name"], "still unaudited",
        "{delta}"
    );

    patch_ok(&app, &path, &json!({"isauditenabled": true})).await;
    patch_ok(&app, &ctx(&id), &json!({"msdyn_name": "audited again"})).await;
    let details = history(&app, &id).await;
    assert_eq!(details.len(), 1, "{details:?}");
    assert_eq!(details[0]["AuditRecord"]["action"], 2);
    assert_eq!(details[0]["OldValue"]["msdyn_name"], "still unaudited");
    assert_eq!(details[0]["NewValue"]["msdyn_name"], "audited again");
}

#[tokio::test]
async fn a_tables_auditing_and_change_tracking_are_set_in_its_definition() {
    let app = spawn_app().await;
    let select =
        format!("{SEED}?$select=IsAuditEnabled,ChangeTrackingEnabled,CanChangeTrackingBeEnabled");
    let body = app.get_json(&select).await;
    assert_eq!(
        body["IsAuditEnabled"],
        json!({"Value": true, "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyauditsettings"}),
        "{body}"
    );
    assert_eq!(body["ChangeTrackingEnabled"], true, "{body}");
    assert_eq!(body["CanChangeTrackingBeEnabled"]["Value"], true, "{body}");
    let users = app
        .get_json("EntityDefinitions(LogicalName='systemuser')?$select=IsAuditEnabled,ChangeTrackingEnabled")
        .await;
    assert_eq!(users["IsAuditEnabled"]["Value"], false, "{users}");
    assert_eq!(users["IsAuditEnabled"]["CanBeChanged"], false, "{users}");
    assert_eq!(users["ChangeTrackingEnabled"], false, "{users}");

    // A definition read and put back unchanged changes nothing; only an administrator puts one.
    let whole = app.get_json(SEED).await;
    put_ok(&app, SEED, &whole).await;
    let root = root_unit(&app).await;
    let role = basic_role(&app, &root).await;
    let user = signed_in_user(&app, "customizer", &root, &[&role]).await;
    let refused = put(
        &app,
        &user.token,
        SEED,
        &json!({"IsAuditEnabled": {"Value": false}}),
    )
    .await;
    assert_error(
        refused,
        StatusCode::FORBIDDEN,
        "0x80040220",
        "System Administrator",
    )
    .await;
    // What smsctx cannot change is refused, naming it.
    let renamed = put(&app, TOKEN, SEED, &json!({"SchemaName": "other"})).await;
    assert_error(renamed, StatusCode::BAD_REQUEST, "0x80040203", "SchemaName").await;
    let unknown = put(&app, TOKEN, SEED, &json!({"NoSuchProperty": 1})).await;
    assert_error(
        unknown,
        StatusCode::BAD_REQUEST,
        "0x80060888",
        "NoSuchProperty",
    )
    .await;
    let untracked = put(
        &app,
        TOKEN,
        "EntityDefinitions(LogicalName='systemuser')",
        &json!({"ChangeTrackingEnabled": true}),
    )
    .await;
    assert_error(
        untracked,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "ChangeTrackingEnabled",
    )
    .await;
    let typed = put(&app, TOKEN, SEED, &json!({"ChangeTrackingEnabled": "yes"})).await;
    assert_error(
        typed,
        StatusCode::BAD_REQUEST,
        "0x80040203",
        "true or false",
    )
    .await;

    // Auditing off: changes are tracked, not audited.
    let (first, _) = tracked(&app).await;
    let link = first["@odata.deltaLink"].as_str().unwrap().to_string();
    put_ok(&app, SEED, &json!({"IsAuditEnabled": {"Value": false}})).await;
    assert_eq!(
        app.get_json(&select).await["IsAuditEnabled"]["Value"],
        false
    );
    let id = app
        .create(CTX, &json!({"msdyn_name": "tracked only"}))
        .await;
    assert_eq!(history_actions(&app, &id).await, Vec::<i64>::new());
    assert_eq!(logged(&app, &id).await, 1);

    // Change tracking off too: nothing is logged, a tracked read is a plain one, and a delta
    // link is refused.
    put_ok(&app, SEED, &json!({"ChangeTrackingEnabled": false})).await;
    assert_eq!(app.get_json(&select).await["ChangeTrackingEnabled"], false);
    patch_ok(&app, &ctx(&id), &json!({"msdyn_name": "not logged"})).await;
    assert_eq!(logged(&app, &id).await, 1);
    let (plain, headers) = tracked(&app).await;
    assert!(plain.get("@odata.deltaLink").is_none(), "{plain}");
    assert!(headers.get("Preference-Applied").is_none(), "{headers:?}");
    assert_eq!(plain["value"].as_array().unwrap().len(), 1, "{plain}");
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
        "0x80040203",
        "Change tracking is not enabled",
    )
    .await;
    let csdl = app
        .get("$metadata?annotations=true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!csdl.contains("Org.OData.Capabilities.V1.ChangeTracking"));

    // Both on again: logged and audited from here on.
    put_ok(
        &app,
        SEED,
        &json!({"ChangeTrackingEnabled": true, "IsAuditEnabled": {"Value": true, "CanBeChanged": true}}),
    )
    .await;
    patch_ok(&app, &ctx(&id), &json!({"msdyn_name": "audited"})).await;
    assert_eq!(logged(&app, &id).await, 2);
    let details = history(&app, &id).await;
    assert_eq!(details.len(), 1, "{details:?}");
    assert_eq!(details[0]["OldValue"]["msdyn_name"], "not logged");
    let (again, headers) = tracked(&app).await;
    assert!(again.get("@odata.deltaLink").is_some(), "{again}");
    assert_eq!(headers["Preference-Applied"], "odata.track-changes");
}

/// A `Prefer: odata.track-changes` read of the contexts: the body and the headers.
async fn tracked(app: &TestApp) -> (Value, reqwest::header::HeaderMap) {
    let response = app
        .get(&format!("{CTX}?$select=msdyn_name"))
        .header("Prefer", "odata.track-changes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    (response.json().await.unwrap(), headers)
}

#[tokio::test]
async fn a_column_whose_auditing_is_off_is_not_in_the_audit_details() {
    let app = spawn_app().await;
    let phone = format!("{SEED}/Attributes(LogicalName='msdyn_customerphonenumber')");
    let body = app
        .get_json(&format!("{phone}?$select=IsAuditEnabled"))
        .await;
    assert_eq!(
        body["IsAuditEnabled"],
        json!({"Value": true, "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyauditsettings"}),
        "{body}"
    );
    let root = root_unit(&app).await;
    let role = basic_role(&app, &root).await;
    let user = signed_in_user(&app, "columns", &root, &[&role]).await;
    let refused = put(
        &app,
        &user.token,
        &phone,
        &json!({"IsAuditEnabled": {"Value": false}}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let changed = put(&app, TOKEN, &phone, &json!({"MaxLength": 7})).await;
    assert_error(changed, StatusCode::BAD_REQUEST, "0x80040203", "MaxLength").await;
    put_ok(
        &app,
        &phone,
        &json!({"@odata.type": "#Microsoft.Dynamics.CRM.StringAttributeMetadata", "IsAuditEnabled": {"Value": false}}),
    )
    .await;
    let body = app
        .get_json(&format!("{phone}?$select=IsAuditEnabled"))
        .await;
    assert_eq!(body["IsAuditEnabled"]["Value"], false, "{body}");

    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "n1", "msdyn_customerphonenumber": "+15550100"}),
        )
        .await;
    patch_ok(
        &app,
        &ctx(&id),
        &json!({"msdyn_customerphonenumber": "+15550101"}),
    )
    .await;
    patch_ok(
        &app,
        &ctx(&id),
        &json!({"msdyn_name": "n2", "msdyn_customerphonenumber": "+15550102"}),
    )
    .await;
    let details = history(&app, &id).await;
    // The update of the phone number alone is no audit record.
    let actions: Vec<&Value> = details
        .iter()
        .map(|d| &d["AuditRecord"]["action"])
        .collect();
    assert_eq!(actions, [1, 2], "{details:?}");
    assert_eq!(details[0]["NewValue"]["msdyn_name"], "n1");
    assert!(
        details[0]["NewValue"]
            .get("msdyn_customerphonenumber")
            .is_none(),
        "{details:?}"
    );
    assert_eq!(
        details[1]["NewValue"],
        json!({"@odata.type": "#Microsoft.Dynamics.CRM.msdyn_smsengagementctx", "msdyn_name": "n2"})
    );
    let audit = details[1]["AuditRecord"]["auditid"].as_str().unwrap();
    let one = app
        .get_json(&format!("RetrieveAuditDetails(AuditId={audit})"))
        .await;
    assert!(
        one["AuditDetail"]["OldValue"]
            .get("msdyn_customerphonenumber")
            .is_none(),
        "{one}"
    );

    // On again: its values are audited.
    put_ok(&app, &phone, &json!({"IsAuditEnabled": {"Value": true}})).await;
    patch_ok(
        &app,
        &ctx(&id),
        &json!({"msdyn_customerphonenumber": "+15550103"}),
    )
    .await;
    let details = history(&app, &id).await;
    assert_eq!(details.len(), 3, "{details:?}");
    assert_eq!(
        details[2]["NewValue"]["msdyn_customerphonenumber"],
        "+15550103"
    );
}
