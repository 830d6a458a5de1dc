//! RetrieveMultiple over HTTP: `$filter` (with query functions), `$orderby`, `$count`, and keyset
//! paging that neither skips nor repeats a row while rows are being inserted.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn seed(app: &TestApp) {
    for (n, (org, customer, provider)) in [
        ("14255550100", "14255550111", 192350001),
        ("14255550100", "14255550122", 192350001),
        ("14255550100", "14255550133", 192350000),
        ("919876543210", "919812345678", 192350000),
        ("14255550199", "14255550111", 192350001),
    ]
    .into_iter()
    .enumerate()
    {
        app.create(
            CTX,
            &json!({"msdyn_name": format!("SMS Context {n}"), "msdyn_orgphonenumber": org,
                    "msdyn_customerphonenumber": customer, "msdyn_smsprovider": provider}),
        )
        .await;
    }
}

async fn names(app: &TestApp, query: &str) -> Vec<String> {
    let body = app.get_json(&format!("{CTX}?{query}")).await;
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["msdyn_name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn filters_select_the_rows_the_expression_names() {
    let app = spawn_app().await;
    seed(&app).await;
    let active_pair = names(
        &app,
        "$filter=msdyn_orgphonenumber eq '14255550100' and msdyn_customerphonenumber eq '14255550122' and statecode eq 0",
    )
    .await;
    assert_eq!(active_pair, vec!["SMS Context 1"]);
    assert_eq!(
        names(&app, "$filter=contains(msdyn_name,'context 3')").await,
        vec!["SMS Context 3"],
        "string matching is case-insensitive"
    );
    assert_eq!(
        names(
            &app,
            "$filter=msdyn_smsprovider eq 192350000&$orderby=msdyn_name desc"
        )
        .await,
        vec!["SMS Context 3", "SMS Context 2"]
    );
    assert_eq!(
        names(
            &app,
            "$filter=Microsoft.Dynamics.CRM.In(PropertyName='msdyn_customerphonenumber',PropertyValues=['14255550111','919812345678'])&$orderby=msdyn_name"
        )
        .await,
        vec!["SMS Context 0", "SMS Context 3", "SMS Context 4"]
    );
    let mine = names(
        &app,
        "$filter=Microsoft.Dynamics.CRM.EqualUserId(PropertyName='ownerid') and Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=7)",
    )
    .await;
    assert_eq!(mine.len(), 5);
    assert!(names(&app, "$filter=msdyn_countrycode ne null")
        .await
        .is_empty());
    assert_eq!(
        names(&app, "$filter=startswith(msdyn_orgphonenumber,'91') or msdyn_orgphonenumber eq @o&@o='14255550199'&$orderby=msdyn_name").await,
        vec!["SMS Context 3", "SMS Context 4"]
    );

    let counted = app
        .get_json(&format!(
            "{CTX}?$filter=msdyn_orgphonenumber eq '14255550100'&$count=true&$select=msdyn_name"
        ))
        .await;
    assert_eq!(counted["@odata.count"], 3);
    let count = app
        .get(&format!(
            "{CTX}/$count?$filter=msdyn_smsprovider eq 192350001"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, "3");
}

#[tokio::test]
async fn bad_filters_are_refused_with_the_position() {
    let app = spawn_app().await;
    for (query, code, part) in [
        ("$filter=nope eq 1", "0x0", "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'."),
        ("$filter=msdyn_name eq 'x", "0x0", "There is an unterminated literal at position"),
        ("$filter=statecode eq eq 1", "0x0", "Syntax error at position"),
        ("$filter=statecode eq 'x'", "0x0", "incompatible types"),
        ("$orderby=nope", "0x0", "'nope'"),
        ("$filter=Microsoft.Dynamics.CRM.Nope(PropertyName='statecode')", "0x0", "Nope"),
        ("$skiptoken=%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22x%22%20/%3E", "0x80060888", "$skiptoken"),
    ] {
        let response = app.get(&format!("{CTX}?{query}")).send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, code, part).await;
    }
    let deep = format!(
        "$filter={}statecode eq 0{}",
        "(".repeat(500),
        ")".repeat(500)
    );
    let response = app.get(&format!("{CTX}?{deep}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn ordered_paging_visits_every_row_once_under_concurrent_inserts() {
    let app = spawn_app().await;
    for n in 0..12 {
        app.create(CTX, &json!({"msdyn_name": format!("row {:02}", n % 5), "msdyn_countrycode": if n % 3 == 0 { Value::Null } else { json!("1") }}))
            .await;
    }
    let expected: Vec<String> = app
        .get_json(&format!(
            "{CTX}?$orderby=msdyn_countrycode desc,msdyn_name&$select=msdyn_name"
        ))
        .await["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["msdyn_smsengagementctxid"].as_str().unwrap().to_string())
        .collect();
    let mut seen = Vec::new();
    let mut next = Some(app.url(&format!(
        "{CTX}?$orderby=msdyn_countrycode desc,msdyn_name&$select=msdyn_name"
    )));
    while let Some(url) = next {
        let body: Value = app
            .client
            .get(&url)
            .bearer_auth(TOKEN)
            .header("Prefer", "odata.maxpagesize=5")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for row in body["value"].as_array().unwrap() {
            seen.push(
                row["msdyn_smsengagementctxid"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        next = body["@odata.nextLink"].as_str().map(str::to_string);
        // Rows inserted between pages land somewhere in the order; the cursor is a position,
        // so rows already served never come back and none of the original rows is skipped.
        app.create(
            CTX,
            &json!({"msdyn_name": "row 00", "msdyn_countrycode": "1"}),
        )
        .await;
    }
    let originals: Vec<&String> = seen.iter().filter(|id| expected.contains(id)).collect();
    assert_eq!(originals.len(), expected.len(), "every original row, once");
    assert_eq!(
        originals.into_iter().cloned().collect::<Vec<_>>(),
        expected,
        "in the unpaged order"
    );
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no row twice");
}

#[tokio::test]
async fn apply_groups_and_aggregates() {
    let app = spawn_app().await;
    seed(&app).await;
    let id = app
        .create(
            CTX,
            &json!({"msdyn_name": "closed", "msdyn_smsprovider": 192350001}),
        )
        .await;
    let closed = app
        .patch(&ctx(&id), &json!({"statecode": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);

    let body = app
        .get_json(&format!(
            "{CTX}?$apply=groupby((msdyn_smsprovider,statecode),aggregate($count as count))"
        ))
        .await;
    assert_eq!(
        body["@odata.context"],
        app.url("$metadata#msdyn_smsengagementctxes")
    );
    let rows = body["value"].as_array().unwrap();
    let group = |provider: i64, state: i64| {
        rows.iter()
            .find(|r| r["msdyn_smsprovider"] == provider && r["statecode"] == state)
            .map(|r| r["count"].as_i64().unwrap())
    };
    assert_eq!(group(192350001, 0), Some(3));
    assert_eq!(group(192350000, 0), Some(2));
    assert_eq!(group(192350001, 1), Some(1));
    assert_eq!(rows.len(), 3);

    let totals = app
        .get_json(&format!(
            "{CTX}?$apply=filter(statecode eq 0)/aggregate($count as n,msdyn_orgphonenumber with countdistinct as orgs,versionnumber with max as newest,createdon with min as first)"
        ))
        .await;
    let row = &totals["value"][0];
    assert_eq!(row["n"], 5);
    assert_eq!(row["orgs"], 3);
    assert!(row["newest"].as_i64().unwrap() > 1000);
    assert!(row["first"].as_str().unwrap().ends_with('Z'));

    let bad = app
        .get(&format!("{CTX}?$apply=groupby((createdon))"))
        .send()
        .await
        .unwrap();
    assert_error(bad, StatusCode::BAD_REQUEST, "0x0", "date-time").await;
    let mixed = app
        .get(&format!(
            "{CTX}?$apply=groupby((statecode))&$orderby=statecode"
        ))
        .send()
        .await
        .unwrap();
    assert_error(mixed, StatusCode::BAD_REQUEST, "0x80060888", "$apply").await;
}

async fn fetch(app: &TestApp, xml: &str, prefer: Option<&str>) -> reqwest::Response {
    let encoded: String = url_encode(xml);
    let mut request = app.get(&format!("{CTX}?fetchXml={encoded}"));
    if let Some(prefer) = prefer {
        request = request.header("Prefer", prefer);
    }
    request.send().await.unwrap()
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn fetchxml_filters_orders_links_and_pages() {
    let app = spawn_app().await;
    seed(&app).await;
    let conversation = app
        .create(
            "msdyn_ocliveworkitems",
            &json!({"subject": "linked conversation"}),
        )
        .await;
    app.create(
        CTX,
        &json!({"msdyn_name": "SMS Context 9", "msdyn_orgphonenumber": "14255550100",
                "msdyn_liveworkitemid@odata.bind": format!("/msdyn_ocliveworkitems({conversation})")}),
    )
    .await;

    let xml = r#"<fetch><entity name="msdyn_smsengagementctx"><attribute name="msdyn_name"/><attribute name="msdyn_countrycode"/>
        <filter type="and"><condition attribute="msdyn_orgphonenumber" operator="eq" value="14255550100"/>
        <condition attribute="msdyn_name" operator="like" value="%context%"/></filter>
        <order attribute="msdyn_name" descending="true"/></entity></fetch>"#;
    let body: Value = fetch(&app, xml, None).await.json().await.unwrap();
    let rows = body["value"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["msdyn_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "SMS Context 9",
            "SMS Context 2",
            "SMS Context 1",
            "SMS Context 0"
        ]
    );
    assert!(
        rows[0].get("msdyn_countrycode").is_none(),
        "null properties are omitted"
    );
    assert!(rows[0]["msdyn_smsengagementctxid"].is_string());

    // Paging with count and the paging cookie the previous page returned.
    let mut seen = Vec::new();
    let mut cookie: Option<String> = None;
    for page in 1..=4 {
        let paging = match &cookie {
            Some(c) => format!(
                r#" page="{page}" paging-cookie="{}""#,
                c.replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            ),
            None => String::new(),
        };
        let xml = format!(
            r#"<fetch count="2"{paging}><entity name="msdyn_smsengagementctx"><attribute name="msdyn_name"/><order attribute="msdyn_name"/></entity></fetch>"#
        );
        let body: Value = fetch(&app, &xml, Some("odata.include-annotations=\"*\""))
            .await
            .json()
            .await
            .unwrap();
        for row in body["value"].as_array().unwrap() {
            seen.push(row["msdyn_name"].as_str().unwrap().to_string());
        }
        let more = body["@Microsoft.Dynamics.CRM.morerecords"]
            .as_bool()
            .unwrap();
        if !more {
            break;
        }
        let outer = body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"]
            .as_str()
            .unwrap();
        let start = outer.find("pagingcookie=\"").unwrap() + "pagingcookie=\"".len();
        let end = outer[start..].find('"').unwrap() + start;
        cookie = Some(outer[start..end].to_string());
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);

    let xml = r#"<fetch><entity name="msdyn_smsengagementctx"><attribute name="msdyn_name"/>
        <link-entity name="msdyn_ocliveworkitem" from="activityid" to="msdyn_liveworkitemid" alias="conv"><attribute name="subject"/></link-entity>
        </entity></fetch>"#;
    let body: Value = fetch(&app, xml, None).await.json().await.unwrap();
    let rows = body["value"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "an inner link keeps only linked rows");
    assert_eq!(rows[0]["conv.subject"], "linked conversation");

    let xml = r#"<fetch aggregate="true"><entity name="msdyn_smsengagementctx">
        <attribute name="msdyn_orgphonenumber" alias="org" groupby="true"/>
        <attribute name="msdyn_smsengagementctxid" alias="contexts" aggregate="count"/>
        <order alias="contexts" descending="true"/></entity></fetch>"#;
    let body: Value = fetch(&app, xml, None).await.json().await.unwrap();
    let first = &body["value"][0];
    assert_eq!(first["org"], "14255550100");
    assert_eq!(first["contexts"], 4);

    let wrong = fetch(&app, r#"<fetch><entity name="systemuser"/></fetch>"#, None).await;
    assert_error(wrong, StatusCode::BAD_REQUEST, "0x80040203", "systemuser").await;
    let malformed = fetch(&app, "<fetch><entity", None).await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let unknown = fetch(
        &app,
        r#"<fetch><entity name="msdyn_smsengagementctx"><attribute name="nope"/></entity></fetch>"#,
        None,
    )
    .await;
    assert_error(unknown, StatusCode::BAD_REQUEST, "0x80041103", "'nope'").await;
}
