//! The messages of the core service over real HTTP: Create, Retrieve, Update and upsert,
//! Delete, SetState, IsValidStateTransition, the plain list, and the system tables.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CONVERSATION: &str = "6f0c1c1e-0000-0000-0000-000000000001";

async fn conversation(app: &TestApp) -> String {
    app.create(
        "msdyn_ocliveworkitems",
        &json!({"activityid": CONVERSATION, "subject": "SMS from +15550100"}),
    )
    .await
}

#[tokio::test]
async fn the_service_document_lists_the_entity_sets_under_every_version() {
    let app = spawn_app().await;
    for version in ["v9.0", "v9.1", "v9.2"] {
        let url = app.base.replace("v9.2", version);
        let body: Value = app
            .client
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["@odata.context"], format!("{url}$metadata"));
        let names: Vec<&str> = body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for set in [
            CTX,
            "systemusers",
            "teams",
            "businessunits",
            "msdyn_ocliveworkitems",
        ] {
            assert!(names.contains(&set), "{set} in {names:?}");
        }
    }
    let health = app
        .client
        .get(app.base.replace("/api/data/v9.2/", "/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn create_answers_204_with_the_entity_id_and_fills_system_columns() {
    let app = spawn_app().await;
    conversation(&app).await;
    let response = app
        .post(
            CTX,
            &json!({
                "msdyn_name": "ctx 1",
                "msdyn_customerphonenumber": "+15550100",
                "msdyn_smsprovider": 192350001,
                "statecode": 1,
                "versionnumber": 7,
                "msdyn_liveworkitemid@odata.bind": format!("/msdyn_ocliveworkitems({CONVERSATION})"),
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let location = response.headers()["OData-EntityId"]
        .to_str()
        .unwrap()
        .to_string();
    let id = entity_id(&response);
    assert_eq!(location, app.url(&ctx(&id)));

    let response = app.get(&ctx(&id)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["Content-Type"],
        "application/json; odata.metadata=minimal"
    );
    let etag = response.headers()["ETag"].to_str().unwrap().to_string();
    let row: Value = response.json().await.unwrap();
    assert_eq!(
        row["@odata.context"],
        app.url("$metadata#msdyn_smsengagementctxes/$entity")
    );
    assert_eq!(row["@odata.etag"], etag);
    assert_eq!(row["msdyn_smsengagementctxid"], id);
    assert_eq!(row["msdyn_name"], "ctx 1");
    assert_eq!(row["statecode"], 0, "statecode is not valid for create");
    assert_eq!(row["statuscode"], 1);
    assert_eq!(row["_msdyn_liveworkitemid_value"], CONVERSATION);
    assert_ne!(row["versionnumber"], 7);
    assert_eq!(etag, format!("W/\"{}\"", row["versionnumber"]));
    let admin = row["_createdby_value"].as_str().unwrap();
    assert_eq!(row["_modifiedby_value"], admin);
    assert_eq!(row["_ownerid_value"], admin);
    assert_eq!(row["_owninguser_value"], admin);
    assert_eq!(row["_owningteam_value"], Value::Null);
    assert!(row["_owningbusinessunit_value"].is_string());
    assert_eq!(row["createdon"], row["modifiedon"]);
    assert!(row["createdon"].as_str().unwrap().ends_with('Z'));
    assert!(row.get("owneridtype").is_none() && row.get("owneridname").is_none());
    let admin_row = app.get_json(&format!("systemusers({admin})")).await;
    assert_eq!(admin_row["fullname"], "System Administrator");
    assert_eq!(
        row["_owningbusinessunit_value"],
        admin_row["_businessunitid_value"]
    );
}

#[tokio::test]
async fn create_with_return_representation_answers_201_with_the_row() {
    let app = spawn_app().await;
    let response = app
        .post(
            &format!("{CTX}?$select=msdyn_name,createdon"),
            &json!({"msdyn_name": "ctx 2"}),
        )
        .header("Prefer", "return=representation")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["Preference-Applied"],
        "return=representation"
    );
    assert!(response.headers().get("OData-EntityId").is_none());
    let row: Value = response.json().await.unwrap();
    assert_eq!(
        row["@odata.context"],
        app.url("$metadata#msdyn_smsengagementctxes(msdyn_name,createdon)/$entity")
    );
    assert_eq!(row["msdyn_name"], "ctx 2");
    assert!(row["msdyn_smsengagementctxid"].is_string());
    assert!(row.get("statecode").is_none());
}

#[tokio::test]
async fn a_client_supplied_key_is_kept_and_a_duplicate_is_refused() {
    let app = spawn_app().await;
    let id = "3c6e4b5f-86f6-e411-80dd-00155d2a68cb";
    let body = json!({"msdyn_smsengagementctxid": id, "msdyn_name": "mine"});
    assert_eq!(app.create(CTX, &body).await, id);
    let again = app.post(CTX, &body).send().await.unwrap();
    assert_error(
        again,
        StatusCode::PRECONDITION_FAILED,
        "0x80040237",
        "already exists",
    )
    .await;
    assert_eq!(app.get_json(&ctx(id)).await["msdyn_name"], "mine");
}

#[tokio::test]
async fn an_owner_bound_to_a_team_sets_the_owning_columns() {
    let app = spawn_app().await;
    let root = root_unit(&app).await;
    let bu = app
        .create(
            "businessunits",
            &json!({"name": "Support", "parentbusinessunitid@odata.bind": format!("/businessunits({root})")}),
        )
        .await;
    let team = app
        .create(
            "teams",
            &json!({"name": "SMS queue", "businessunitid@odata.bind": format!("/businessunits({bu})")}),
        )
        .await;
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "t", "ownerid@odata.bind": format!("/teams({team})")}),
        )
        .await;
    let row = app
        .get(&ctx(&id))
        .header("Prefer", "odata.include-annotations=\"*\"")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(row["_ownerid_value"], team);
    assert_eq!(
        row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"],
        "team"
    );
    assert_eq!(
        row["_ownerid_value@OData.Community.Display.V1.FormattedValue"],
        "SMS queue"
    );
    assert_eq!(row["_owningteam_value"], team);
    assert_eq!(row["_owninguser_value"], Value::Null);
    assert_eq!(row["_owningbusinessunit_value"], bu);

    // Assign back to a user.
    let user = app
        .create(
            "systemusers",
            &json!({"firstname": "Ada", "lastname": "Agent", "businessunitid@odata.bind": format!("/businessunits({bu})")}),
        )
        .await;
    let response = app
        .patch(
            &ctx(&id),
            &json!({"ownerid@odata.bind": format!("/systemusers({user})")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let row = app.get_json(&ctx(&id)).await;
    assert_eq!(row["_ownerid_value"], user);
    assert_eq!(row["_owninguser_value"], user);
    assert_eq!(row["_owningteam_value"], Value::Null);
    assert_eq!(row["_owningbusinessunit_value"], bu);
}

#[tokio::test]
async fn overriddencreatedon_sets_createdon() {
    let app = spawn_app().await;
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "old", "overriddencreatedon": "2020-02-03T04:05:06+01:00"}),
        )
        .await;
    let row = app.get_json(&ctx(&id)).await;
    assert_eq!(row["createdon"], "2020-02-03T03:05:06Z");
    assert_ne!(row["overriddencreatedon"], Value::Null);
    assert_ne!(row["overriddencreatedon"], row["createdon"]);
}

#[tokio::test]
async fn retrieve_honours_select_annotations_and_conditional_get() {
    let app = spawn_app().await;
    conversation(&app).await;
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "ctx", "msdyn_smsprovider": 192350000,
                    "msdyn_liveworkitemid@odata.bind": format!("msdyn_ocliveworkitems({CONVERSATION})")}),
        )
        .await;
    let path = format!(
        "{}?$select=msdyn_name,statecode,msdyn_smsprovider,_msdyn_liveworkitemid_value",
        ctx(&id)
    );
    let response = app
        .get(&path)
        .header("Prefer", "odata.include-annotations=\"*\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["Preference-Applied"],
        "odata.include-annotations=\"*\""
    );
    let etag = response.headers()["ETag"].to_str().unwrap().to_string();
    let row: Value = response.json().await.unwrap();
    assert_eq!(
        row["@odata.context"],
        app.url("$metadata#msdyn_smsengagementctxes(msdyn_name,statecode,msdyn_smsprovider,_msdyn_liveworkitemid_value)/$entity")
    );
    let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
    let formatted = "OData.Community.Display.V1.FormattedValue";
    assert_eq!(row[format!("statecode@{formatted}")], "Active");
    assert_eq!(row[format!("msdyn_smsprovider@{formatted}")], "TeleSign");
    assert_eq!(
        row[format!("_msdyn_liveworkitemid_value@{formatted}")],
        "SMS from +15550100"
    );
    assert_eq!(
        row["_msdyn_liveworkitemid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"],
        "msdyn_liveworkitemid"
    );
    assert_eq!(
        row["_msdyn_liveworkitemid_value@Microsoft.Dynamics.CRM.lookuplogicalname"],
        "msdyn_ocliveworkitem"
    );
    let annotation_at = keys
        .iter()
        .position(|k| k.as_str() == "statecode@OData.Community.Display.V1.FormattedValue")
        .unwrap();
    let value_at = keys.iter().position(|k| k.as_str() == "statecode").unwrap();
    assert!(
        annotation_at < value_at,
        "an annotation precedes its property"
    );
    assert!(row.get("msdyn_customerphonenumber").is_none());
    assert_eq!(row["msdyn_smsengagementctxid"], id);

    // Only the formatted values that were asked for.
    let row = app
        .get(&path)
        .header(
            "Prefer",
            format!("odata.include-annotations=\"{formatted}\""),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(row.get(format!("statecode@{formatted}")).is_some());
    assert!(row
        .get("_msdyn_liveworkitemid_value@Microsoft.Dynamics.CRM.lookuplogicalname")
        .is_none());

    let not_modified = app
        .get(&ctx(&id))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    let annotated = app
        .get(&ctx(&id))
        .header("If-None-Match", &etag)
        .header("Prefer", "odata.include-annotations=\"*\"")
        .send()
        .await
        .unwrap();
    assert_eq!(annotated.status(), StatusCode::OK);
    let cache_buster = app
        .get(&ctx(&id))
        .header("If-None-Match", "null")
        .send()
        .await
        .unwrap();
    assert_eq!(cache_buster.status(), StatusCode::OK);

    let missing = "00000000-0000-0000-0000-00000000abcd";
    assert_error(
        app.get(&ctx(missing)).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "0x80040217",
        &format!("msdyn_smsengagementctx With Id = {missing} Does Not Exist"),
    )
    .await;
}

#[tokio::test]
async fn expand_nests_the_related_records() {
    let app = spawn_app().await;
    conversation(&app).await;
    let id = app
        .create(CTX, &json!({"msdyn_name": "e", "msdyn_liveworkitemid@odata.bind": format!("/msdyn_ocliveworkitems({CONVERSATION})")}))
        .await;
    let bare = app.create(CTX, &json!({"msdyn_name": "bare"})).await;
    let path = format!(
        "{}?$select=msdyn_name&$expand=msdyn_liveworkitemid($select=subject),ownerid($select=fullname),createdby/$ref",
        ctx(&id)
    );
    let row = app.get_json(&path).await;
    assert_eq!(
        row["@odata.context"],
        app.url("$metadata#msdyn_smsengagementctxes(msdyn_name,msdyn_liveworkitemid(subject),ownerid(fullname),createdby())/$entity")
    );
    assert_eq!(row["msdyn_liveworkitemid"]["subject"], "SMS from +15550100");
    assert_eq!(row["msdyn_liveworkitemid"]["activityid"], CONVERSATION);
    assert!(row["msdyn_liveworkitemid"]["@odata.etag"].is_string());
    assert!(row["msdyn_liveworkitemid"].get("description").is_none());
    assert_eq!(row["ownerid"]["fullname"], "System Administrator");
    assert!(row["createdby"]["@odata.id"]
        .as_str()
        .unwrap()
        .contains("/systemusers("));
    let etag = row["@odata.etag"].as_str().unwrap().to_string();
    let expanded = app
        .get(&path)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(expanded.status(), StatusCode::OK, "never 304 with $expand");

    let list = app
        .get_json(&format!(
            "{CTX}?$select=msdyn_name&$expand=msdyn_liveworkitemid($select=subject)"
        ))
        .await;
    let rows = list["value"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let bare_row = rows
        .iter()
        .find(|r| r["msdyn_smsengagementctxid"] == bare)
        .unwrap();
    assert_eq!(bare_row["msdyn_liveworkitemid"], Value::Null);
}

#[tokio::test]
async fn single_properties_read_write_and_clear() {
    let app = spawn_app().await;
    let id = app
        .create(CTX, &json!({"msdyn_name": "p", "msdyn_countrycode": "44"}))
        .await;
    let value = app.get_json(&format!("{}/msdyn_name", ctx(&id))).await;
    assert_eq!(value["value"], "p");
    assert_eq!(
        value["@odata.context"],
        app.url(&format!(
            "$metadata#msdyn_smsengagementctxes({id})/msdyn_name"
        ))
    );
    let raw = app
        .get(&format!("{}/msdyn_name/$value", ctx(&id)))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["Content-Type"], "text/plain");
    assert_eq!(raw.text().await.unwrap(), "p");
    let null = app
        .get(&format!("{}/msdyn_orgphonenumber", ctx(&id)))
        .send()
        .await
        .unwrap();
    assert_eq!(null.status(), StatusCode::NO_CONTENT);

    let put = app
        .request(reqwest::Method::PUT, &format!("{}/msdyn_name", ctx(&id)))
        .json(&json!({"value": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let cleared = app
        .delete(&format!("{}/msdyn_countrycode", ctx(&id)))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    let row = app.get_json(&ctx(&id)).await;
    assert_eq!(row["msdyn_name"], "renamed");
    assert_eq!(row["msdyn_countrycode"], Value::Null);

    let put_too_long = app
        .request(reqwest::Method::PUT, &format!("{}/msdyn_name", ctx(&id)))
        .json(&json!({"value": "x".repeat(101)}))
        .send()
        .await
        .unwrap();
    assert_error(
        put_too_long,
        StatusCode::BAD_REQUEST,
        "0x80044331",
        "maximum allowed length",
    )
    .await;
}

#[tokio::test]
async fn lookups_navigate_and_clear_by_ref() {
    let app = spawn_app().await;
    conversation(&app).await;
    let id = app
        .create(CTX, &json!({"msdyn_name": "n", "msdyn_liveworkitemid@odata.bind": format!("/msdyn_ocliveworkitems({CONVERSATION})")}))
        .await;
    let related = app
        .get_json(&format!(
            "{}/msdyn_liveworkitemid?$select=subject",
            ctx(&id)
        ))
        .await;
    assert_eq!(related["subject"], "SMS from +15550100");
    assert_eq!(related["activityid"], CONVERSATION);
    let reference = app
        .get_json(&format!("{}/msdyn_liveworkitemid/$ref", ctx(&id)))
        .await;
    assert_eq!(
        reference["@odata.id"],
        app.url(&format!("msdyn_ocliveworkitems({CONVERSATION})"))
    );
    let cleared = app
        .delete(&format!("{}/msdyn_liveworkitemid/$ref", ctx(&id)))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_json(&ctx(&id)).await["_msdyn_liveworkitemid_value"],
        Value::Null
    );
}

#[tokio::test]
async fn update_writes_only_what_is_sent_and_bumps_the_version() {
    let app = spawn_app().await;
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "a", "msdyn_orgphonenumber": "14255550100"}),
        )
        .await;
    let before = app.get_json(&ctx(&id)).await;
    let response = app
        .patch(
            &ctx(&id),
            &json!({"msdyn_name": "b", "createdon": "2001-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let after = app.get_json(&ctx(&id)).await;
    assert_eq!(after["msdyn_name"], "b");
    assert_eq!(after["msdyn_orgphonenumber"], "14255550100");
    assert_eq!(
        after["createdon"], before["createdon"],
        "createdon is not valid for update"
    );
    assert!(after["versionnumber"].as_i64() > before["versionnumber"].as_i64());

    let response = app
        .patch(
            &format!("{}?$select=msdyn_name", ctx(&id)),
            &json!({"msdyn_name": "c"}),
        )
        .header("Prefer", "return=representation")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["Preference-Applied"],
        "return=representation"
    );
    let row: Value = response.json().await.unwrap();
    assert_eq!(row["msdyn_name"], "c");
    assert!(row.get("msdyn_orgphonenumber").is_none());
}

#[tokio::test]
async fn upsert_creates_a_missing_record_and_honours_preconditions() {
    let app = spawn_app().await;
    let id = "11111111-2222-3333-4444-555555555555";
    let created = app
        .patch(&ctx(id), &json!({"msdyn_name": "upserted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::NO_CONTENT);
    assert_eq!(entity_id(&created), id);
    let row = app.get_json(&ctx(id)).await;
    assert_eq!(row["msdyn_name"], "upserted");
    let version = row["versionnumber"].as_i64().unwrap();

    let missing = "11111111-2222-3333-4444-000000000000";
    let update_only = app
        .patch(&ctx(missing), &json!({"msdyn_name": "x"}))
        .header("If-Match", "*")
        .send()
        .await
        .unwrap();
    assert_error(
        update_only,
        StatusCode::NOT_FOUND,
        "0x80040217",
        "Does Not Exist",
    )
    .await;
    assert_eq!(
        app.get(&ctx(missing)).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let create_only = app
        .patch(&ctx(id), &json!({"msdyn_name": "x"}))
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_error(
        create_only,
        StatusCode::PRECONDITION_FAILED,
        "0x80040237",
        "already exists",
    )
    .await;

    let stale = app
        .patch(&ctx(id), &json!({"msdyn_name": "stale"}))
        .header("If-Match", format!("W/\"{}\"", version - 1))
        .send()
        .await
        .unwrap();
    assert_error(
        stale,
        StatusCode::PRECONDITION_FAILED,
        "0x80060882",
        "RowVersion",
    )
    .await;
    assert_eq!(
        app.get_json(&ctx(id)).await["msdyn_name"],
        "upserted",
        "a 412 changes nothing"
    );

    let fresh = app
        .patch(&ctx(id), &json!({"msdyn_name": "fresh"}))
        .header("If-Match", format!("W/\"{version}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::NO_CONTENT);

    let created_with_representation = app
        .patch(
            &ctx("11111111-2222-3333-4444-666666666666"),
            &json!({"msdyn_name": "r"}),
        )
        .header("Prefer", "return=representation")
        .send()
        .await
        .unwrap();
    assert_eq!(created_with_representation.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn concurrent_updates_with_the_same_etag_yield_one_winner() {
    let app = spawn_app().await;
    let id = app.create(CTX, &json!({"msdyn_name": "race"})).await;
    let version = app.get_json(&ctx(&id)).await["versionnumber"]
        .as_i64()
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let request = app
            .patch(&ctx(&id), &json!({"msdyn_name": format!("writer {n}")}))
            .header("If-Match", format!("W/\"{version}\""));
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::NO_CONTENT)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
            .count(),
        7
    );
}

#[tokio::test]
async fn delete_removes_the_record_once() {
    let app = spawn_app().await;
    let id = app.create(CTX, &json!({"msdyn_name": "gone"})).await;
    let version = app.get_json(&ctx(&id)).await["versionnumber"]
        .as_i64()
        .unwrap();
    let stale = app
        .delete(&ctx(&id))
        .header("If-Match", format!("W/\"{}\"", version + 1))
        .send()
        .await
        .unwrap();
    assert_error(
        stale,
        StatusCode::PRECONDITION_FAILED,
        "0x80060882",
        "RowVersion",
    )
    .await;
    let response = app.delete(&ctx(&id)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&ctx(&id)).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_error(
        app.delete(&ctx(&id)).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "0x80040217",
        "Does Not Exist",
    )
    .await;
}

async fn state(app: &TestApp, id: &str) -> (i64, i64) {
    let row = app.get_json(&ctx(id)).await;
    (
        row["statecode"].as_i64().unwrap(),
        row["statuscode"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn set_state_accepts_only_the_seed_pairs() {
    let app = spawn_app().await;
    let id = app.create(CTX, &json!({"msdyn_name": "s"})).await;
    let bad = app
        .patch(&ctx(&id), &json!({"statuscode": 2}))
        .send()
        .await
        .unwrap();
    assert_error(
        bad,
        StatusCode::BAD_REQUEST,
        "0x80048408",
        &format!("2 is not a valid status code for state code msdyn_smsengagementctxState.Active on msdyn_smsengagementctx with Id {id}."),
    )
    .await;
    let bad_pair = app
        .patch(&ctx(&id), &json!({"statecode": 1, "statuscode": 1}))
        .send()
        .await
        .unwrap();
    assert_error(
        bad_pair,
        StatusCode::BAD_REQUEST,
        "0x80048408",
        "msdyn_smsengagementctxState.Inactive",
    )
    .await;
    assert_eq!(state(&app, &id).await, (0, 1));

    let only_state = app
        .patch(&ctx(&id), &json!({"statecode": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(only_state.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        state(&app, &id).await,
        (1, 2),
        "statecode alone takes its default status"
    );
    let both = app
        .patch(&ctx(&id), &json!({"statecode": 0, "statuscode": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::NO_CONTENT);
    assert_eq!(state(&app, &id).await, (0, 1));
    let unknown = app
        .patch(&ctx(&id), &json!({"statecode": 9}))
        .send()
        .await
        .unwrap();
    assert_error(unknown, StatusCode::BAD_REQUEST, "0x80048408", "state code").await;

    let on_create = app
        .post(CTX, &json!({"msdyn_name": "x", "statuscode": 2}))
        .send()
        .await
        .unwrap();
    assert_error(
        on_create,
        StatusCode::BAD_REQUEST,
        "0x80048408",
        "2 is not a valid status code",
    )
    .await;
}

#[tokio::test]
async fn is_valid_state_transition_answers_from_the_state_model() {
    let app = spawn_app().await;
    let id = app.create(CTX, &json!({"msdyn_name": "t"})).await;
    let ask = |state: &str, status: i64, target: String| {
        let path = format!(
            "IsValidStateTransition(Entity=@e,NewState=@s,NewStatus=@n)?@e={{'@odata.id':'{target}'}}&@s='{state}'&@n={status}"
        );
        app.get(&path).send()
    };
    for (state, status, expected) in [
        ("Inactive", 2, true),
        ("Active", 1, true),
        ("Active", 2, false),
        ("Gone", 1, false),
    ] {
        let response = ask(state, status, ctx(&id)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["IsValid"], expected, "{state} {status}");
        assert_eq!(
            body["@odata.context"],
            app.url("$metadata#Microsoft.Dynamics.CRM.IsValidStateTransitionResponse")
        );
    }
    let inline = app
        .get(&format!("IsValidStateTransition(Entity=@e,NewState='Inactive',NewStatus=2)?@e={{\"@odata.id\":\"{}\"}}", ctx(&id)))
        .send()
        .await
        .unwrap();
    assert_eq!(inline.json::<Value>().await.unwrap()["IsValid"], true);
    let missing = ask("Inactive", 2, ctx("00000000-0000-0000-0000-000000000009"))
        .await
        .unwrap();
    assert_error(
        missing,
        StatusCode::NOT_FOUND,
        "0x80040217",
        "Does Not Exist",
    )
    .await;
    let post = app
        .request(
            reqwest::Method::POST,
            "IsValidStateTransition(Entity=@e,NewState=@s,NewStatus=@n)",
        )
        .send()
        .await
        .unwrap();
    assert_error(
        post,
        StatusCode::NOT_FOUND,
        "",
        "No HTTP resource was found",
    )
    .await;
}

#[tokio::test]
async fn lists_page_by_keyset_without_skipping_or_repeating() {
    let app = spawn_app().await;
    for n in 0..7 {
        app.create(CTX, &json!({"msdyn_name": format!("sms {n}")}))
            .await;
    }
    let mut seen = Vec::new();
    let mut next = Some(app.url(&format!("{CTX}?$select=msdyn_name&$count=true")));
    let mut pages = 0;
    let mut late = 0;
    while let Some(url) = next {
        let response = app
            .client
            .get(&url)
            .bearer_auth(TOKEN)
            .header("Prefer", "odata.maxpagesize=3")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["Preference-Applied"],
            "odata.maxpagesize=3"
        );
        let body: Value = response.json().await.unwrap();
        if pages == 0 {
            assert_eq!(body["@odata.count"], 7);
            assert_eq!(
                body["@odata.context"],
                app.url("$metadata#msdyn_smsengagementctxes(msdyn_name)")
            );
        }
        for row in body["value"].as_array().unwrap() {
            assert!(row["@odata.etag"].is_string());
            seen.push(
                row["msdyn_smsengagementctxid"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        next = body["@odata.nextLink"].as_str().map(str::to_string);
        if let Some(link) = &next {
            assert!(link.contains("$skiptoken="), "{link}");
            // A row created between pages sorts somewhere; nothing already seen repeats.
            app.create(CTX, &json!({"msdyn_name": "late"})).await;
            late += 1;
        }
        pages += 1;
        assert!(pages < 10);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no row repeats");
    assert!(seen.len() >= 7);

    let top = app.get_json(&format!("{CTX}?$top=2")).await;
    assert_eq!(top["value"].as_array().unwrap().len(), 2);
    assert!(top.get("@odata.nextLink").is_none());
    let count = app.get(&format!("{CTX}/$count")).send().await.unwrap();
    assert_eq!(count.headers()["Content-Type"], "text/plain");
    assert_eq!(count.text().await.unwrap(), (7 + late).to_string());
}

#[tokio::test]
async fn system_tables_support_create_retrieve_and_list() {
    let app = spawn_app().await;
    let root = root_unit(&app).await;
    let bu = app
        .create(
            "businessunits",
            &json!({"name": "Field", "parentbusinessunitid@odata.bind": format!("/businessunits({root})")}),
        )
        .await;
    let user = app
        .create(
            "systemusers",
            &json!({"firstname": "Grace", "lastname": "Hopper", "domainname": "grace@example.com",
                    "azureactivedirectoryobjectid": "aaaaaaaa-0000-0000-0000-000000000001",
                    "businessunitid@odata.bind": format!("/businessunits({bu})")}),
        )
        .await;
    let row = app.get_json(&format!("systemusers({user})")).await;
    assert_eq!(row["fullname"], "Grace Hopper");
    assert_eq!(row["isdisabled"], false);
    assert_eq!(row["_businessunitid_value"], bu);
    let team = app.create("teams", &json!({"name": "Night shift"})).await;
    let team_row = app.get_json(&format!("teams({team})")).await;
    assert_eq!(team_row["teamtype"], 0);
    assert!(
        team_row["_businessunitid_value"].is_string(),
        "defaults to the caller's business unit"
    );
    let users = app.get_json("systemusers").await;
    assert_eq!(
        users["value"].as_array().unwrap().len(),
        2,
        "the administrator and Grace"
    );
    let conv = app
        .create("msdyn_ocliveworkitems", &json!({"subject": "c"}))
        .await;
    let closed = app
        .patch(
            &format!("msdyn_ocliveworkitems({conv})"),
            &json!({"statecode": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);
    let conv_row = app
        .get_json(&format!("msdyn_ocliveworkitems({conv})"))
        .await;
    assert_eq!(
        (
            conv_row["statecode"].as_i64(),
            conv_row["statuscode"].as_i64()
        ),
        (Some(1), Some(4))
    );
    let no_name = app
        .post("teams", &json!({"description": "nameless"}))
        .send()
        .await
        .unwrap();
    assert_error(no_name, StatusCode::BAD_REQUEST, "0x80040203", "'name'").await;
}
