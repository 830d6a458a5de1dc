//! No query option is silently ignored: every option Dataverse gives a meaning to, sent with a
//! value that would narrow the answer, either narrows it or is refused with a 400, on every
//! resource that reads.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Three contexts, "a" (active), "b" (active), "c" (inactive); returns the id of "a".
async fn seed(app: &TestApp) -> String {
    let mut first = String::new();
    for name in ["a", "b", "c"] {
        let id = app.create(CTX, &json!({"msdyn_name": name})).await;
        if name == "a" {
            first = id.clone();
        }
        if name == "c" {
            let response = app
                .patch(&ctx(&id), &json!({"statecode": 1, "statuscode": 2}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
        }
    }
    first
}

enum Outcome {
    Refused,
    Body(Value),
}

async fn send(app: &TestApp, path_and_query: &str) -> Outcome {
    let response = app
        .get(path_and_query)
        .header("Prefer", "odata.maxpagesize=100")
        .send()
        .await
        .unwrap();
    match response.status() {
        StatusCode::BAD_REQUEST => {
            let body: Value = response.json().await.unwrap();
            let code = body["error"]["code"].as_str().unwrap_or_default();
            assert!(code.starts_with("0x"), "{path_and_query}: {body}");
            Outcome::Refused
        }
        StatusCode::OK => {
            let text = response.text().await.unwrap();
            Outcome::Body(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        other => panic!("{path_and_query}: {other}"),
    }
}

fn rows(body: &Value) -> usize {
    body["value"].as_array().map_or(usize::MAX, Vec::len)
}

#[tokio::test]
async fn every_option_on_a_collection_narrows_or_is_refused() {
    let app = spawn_app().await;
    let a = seed(&app).await;
    let view = app
        .get_json(
            "savedqueries?$filter=name eq 'Inactive SMS Engagement Contexts'&$select=savedqueryid",
        )
        .await["value"][0]["savedqueryid"]
        .as_str()
        .unwrap()
        .to_string();
    let fetch = encode("<fetch><entity name='msdyn_smsengagementctx'><attribute name='msdyn_name'/><filter><condition attribute='msdyn_name' operator='eq' value='a'/></filter></entity></fetch>");
    let sql = encode("SELECT msdyn_name FROM msdyn_smsengagementctx WHERE msdyn_name = 'a'");
    let personal = app
        .create(
            "userqueries",
            &json!({"name": "only a", "returnedtypecode": "msdyn_smsengagementctx", "querytype": 0,
                    "fetchxml": "<fetch><entity name='msdyn_smsengagementctx'><filter><condition attribute='msdyn_name' operator='eq' value='a'/></filter></entity></fetch>"}),
        )
        .await;
    // Options whose narrowing shows in the row count (3 rows without them).
    let narrowing = [
        "$filter=msdyn_name eq 'a'".to_string(),
        "$top=1".into(),
        "$skip=2".into(),
        "$search=a".into(),
        "$apply=filter(msdyn_name eq 'a')".into(),
        "$skiptoken=%3Ccookie%20pagenumber%3D%222%22%20%2F%3E".into(),
        "$deltatoken=919042%2108%2F22%2F2017%2008%3A10%3A44".into(),
        "$index=1".into(),
        "$levels=1".into(),
        "$compute=1 as x".into(),
        "$id=x".into(),
        "$schemaversion=1".into(),
        "$format=xml".into(),
        format!("fetchXml={fetch}"),
        format!("sql={sql}"),
        format!("savedQuery={view}"),
        format!("userQuery={personal}"),
        "utm_source=x".into(),
    ];
    for option in &narrowing {
        match send(&app, &format!("{CTX}?{option}")).await {
            Outcome::Refused => {}
            Outcome::Body(body) => assert!(rows(&body) < 3, "{option} was ignored: {body}"),
        }
    }
    // Options that narrow the columns or add to the answer.
    match send(&app, &format!("{CTX}?$select=msdyn_name")).await {
        Outcome::Body(body) => assert!(body["value"][0].get("statecode").is_none(), "{body}"),
        Outcome::Refused => panic!("$select"),
    }
    match send(&app, &format!("{CTX}?$count=true&$top=1")).await {
        Outcome::Body(body) => assert_eq!(body["@odata.count"], 3),
        Outcome::Refused => panic!("$count"),
    }
    match send(
        &app,
        &format!("{CTX}?$orderby=msdyn_name desc&$select=msdyn_name"),
    )
    .await
    {
        Outcome::Body(body) => assert_eq!(body["value"][0]["msdyn_name"], "c"),
        Outcome::Refused => panic!("$orderby"),
    }
    match send(
        &app,
        &format!("{CTX}?$expand=ownerid($select=fullname)&$top=1"),
    )
    .await
    {
        Outcome::Body(body) => assert!(body["value"][0]["ownerid"].is_object(), "{body}"),
        Outcome::Refused => panic!("$expand"),
    }
    // Two query choosers, or a chooser with OData options: refused.
    for option in [
        format!("sql={sql}&fetchXml={fetch}"),
        format!("savedQuery={view}&$filter=msdyn_name eq 'a'"),
        format!("fetchXml={fetch}&$top=1"),
    ] {
        assert!(
            matches!(
                send(&app, &format!("{CTX}?{option}")).await,
                Outcome::Refused
            ),
            "{option}"
        );
    }
    // The other resources that read.
    let record = ctx(&a);
    for (path, option) in [
        (record.clone(), "$filter=msdyn_name eq 'b'".to_string()),
        (record.clone(), "$top=0".into()),
        (record.clone(), format!("fetchXml={fetch}")),
        (record.clone(), format!("sql={sql}")),
        (record.clone(), format!("savedQuery={view}")),
        (record.clone(), "utm_source=x".into()),
        (format!("{record}/msdyn_name"), "$select=statecode".into()),
        (
            format!("{record}/msdyn_name"),
            "$filter=statecode eq 1".into(),
        ),
        (format!("{record}/msdyn_name/$value"), "$top=0".into()),
        (
            format!("{record}/ownerid"),
            "$filter=fullname eq 'x'".into(),
        ),
        (format!("{CTX}/$count"), "$top=1".into()),
        (format!("{CTX}/$count"), "$skiptoken=x".into()),
        (format!("{CTX}/$count"), format!("sql={sql}")),
        ("EntityDefinitions".into(), format!("sql={sql}")),
        ("EntityDefinitions".into(), "utm_source=x".into()),
        ("$metadata".into(), "$top=1".into()),
        (String::new(), "$top=1".into()),
        (
            "smsctx_smschannels".into(),
            "$filter=smsctx_provider eq 'x'".into(),
        ),
        ("smsctx_smschannels".into(), "$top=0".into()),
        (
            "IsValidStateTransition(Entity=@e,NewState=@s,NewStatus=@n)".to_string(),
            format!(
                "@e={}&@s='Inactive'&@n=2&$select=IsValid",
                encode(&format!("{{'@odata.id':'{record}'}}"))
            ),
        ),
    ] {
        assert!(
            matches!(
                send(&app, &format!("{path}?{option}")).await,
                Outcome::Refused
            ),
            "{path}?{option} was not refused"
        );
    }
    // Applied where they apply: $select on a record, $filter on $count.
    match send(&app, &format!("{record}?$select=msdyn_name")).await {
        Outcome::Body(body) => assert!(body.get("statecode").is_none(), "{body}"),
        Outcome::Refused => panic!("$select on a record"),
    }
    match send(&app, &format!("{CTX}/$count?$filter=statecode eq 1")).await {
        Outcome::Body(body) => assert_eq!(body, json!(1)),
        Outcome::Refused => panic!("$filter on $count"),
    }
}

#[tokio::test]
async fn preference_applied_names_only_what_was_applied() {
    let app = spawn_app().await;
    seed(&app).await;
    let applied = |response: &reqwest::Response| {
        response
            .headers()
            .get("Preference-Applied")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    // maxpagesize and change tracking on a collection are applied and echoed; a preference
    // the server does not apply (return=representation on a read) is not.
    let response = app
        .get(CTX)
        .header(
            "Prefer",
            "odata.maxpagesize=2,odata.track-changes,return=representation",
        )
        .send()
        .await
        .unwrap();
    let echoed = applied(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(rows(&body), 2);
    assert!(echoed.contains("odata.maxpagesize=2"), "{echoed}");
    assert!(echoed.contains("odata.track-changes"), "{echoed}");
    assert!(!echoed.contains("return="), "{echoed}");
    // On a view's or a sql query, maxpagesize is not applied, so it is not echoed.
    let sql = encode("SELECT msdyn_name FROM msdyn_smsengagementctx");
    let response = app
        .get(&format!("{CTX}?sql={sql}"))
        .header("Prefer", "odata.maxpagesize=1")
        .send()
        .await
        .unwrap();
    assert!(!applied(&response).contains("maxpagesize"));
}
