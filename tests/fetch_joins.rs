//! FetchXML one-to-many `link-entity` of link-type `inner` and `outer`: conversations joined
//! with their SMS contexts. The exact joined rows (one per conversation × context; outer: a
//! conversation without one once, no link columns), the link's filter and order, the link
//! columns' annotations, paging by page number as Dataverse pages such queries (no paging
//! cookie; a conversation whose contexts straddle a page boundary comes on both pages),
//! aggregates over the link (contexts per conversation), a Basic-depth user who never sees
//! another user's contexts (nor conversations) through the join, and the refusals. Both
//! backends.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CONVERSATIONS: &str = "msdyn_ocliveworkitems";

struct Fixture {
    app: TestApp,
    /// Reads its own rows only (Basic depth): conversation A, contexts c1, c2 and c4.
    alice: SignedIn,
}

/// Conversations A (alice's), B (bob's), C (the administrator's, no contexts); contexts c1
/// (alice, A, inactive), c2 (alice, B), c3 (bob, A), c4 (alice, no conversation).
async fn fixture() -> Fixture {
    let app = spawn_app().await;
    let (alice, bob, conversations) = readers_and_conversations(&app).await;
    let (a, b) = (&conversations[0].1, &conversations[1].1);
    for (name, owner, conversation) in [
        ("c1", &alice, Some(a)),
        ("c2", &alice, Some(b)),
        ("c3", &bob, Some(a)),
        ("c4", &alice, None),
    ] {
        let mut body = json!({
            "msdyn_name": name,
            "ownerid@odata.bind": format!("/systemusers({})", owner.id),
        });
        if let Some(conversation) = conversation {
            body["msdyn_liveworkitemid@odata.bind"] =
                json!(format!("/{CONVERSATIONS}({conversation})"));
        }
        let id = app.create(CTX, &body).await;
        if name == "c1" {
            let state = json!({"statecode": 1, "statuscode": 2});
            let response = app.patch(&ctx(&id), &state).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
        }
    }
    Fixture { app, alice }
}

/// The FetchXML query of conversations (subject, ordered) with a one-to-many link to their
/// contexts under alias `c`: `link_type`, and `inside` the link element (its attributes,
/// filter, order).
fn joined(fetch_attributes: &str, link_type: &str, inside: &str) -> String {
    format!(
        "<fetch {fetch_attributes}><entity name='msdyn_ocliveworkitem'><attribute name='subject'/>\
         <order attribute='subject'/>\
         <link-entity name='msdyn_smsengagementctx' from='msdyn_liveworkitemid' to='activityid' \
         alias='c' link-type='{link_type}'>{inside}</link-entity></entity></fetch>"
    )
}

/// The response to `xml` as `user` (the administrator when `None`), with `Prefer`.
async fn fetch(
    f: &Fixture,
    user: Option<&SignedIn>,
    xml: &str,
    prefer: &str,
) -> (StatusCode, Value) {
    let path = format!("{CONVERSATIONS}?fetchXml={}", percent_encode(xml));
    let request = match user {
        Some(user) => get_as(&f.app, &user.token, &path),
        None => f.app.get(&path),
    };
    let request = if prefer.is_empty() {
        request
    } else {
        request.header("Prefer", prefer)
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// The rows as (subject, linked context name or "-"), in response order.
fn pairs(body: &Value) -> Vec<(String, String)> {
    body["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {body}"))
        .iter()
        .map(|row| {
            let subject = row["subject"].as_str().unwrap().to_string();
            let context = row["c.msdyn_name"].as_str().unwrap_or("-").to_string();
            (subject, context)
        })
        .collect()
}

fn expected(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const NAME_ORDERED: &str = "<attribute name='msdyn_name'/><order attribute='msdyn_name'/>";

#[tokio::test]
async fn inner_and_outer_joins_give_one_row_per_parent_and_child() {
    let f = fixture().await;
    let (status, inner) = fetch(&f, None, &joined("", "inner", NAME_ORDERED), "").await;
    assert_eq!(status, StatusCode::OK, "{inner}");
    assert_eq!(
        pairs(&inner),
        expected(&[("A", "c1"), ("A", "c3"), ("B", "c2")])
    );
    // Each row is the conversation's, with its key; the linked value is `alias.column`.
    let first = &inner["value"][0];
    assert!(first["activityid"].is_string(), "{first}");
    assert!(first.get("msdyn_name").is_none(), "{first}");

    let (status, outer) = fetch(&f, None, &joined("", "outer", NAME_ORDERED), "").await;
    assert_eq!(status, StatusCode::OK, "{outer}");
    assert_eq!(
        pairs(&outer),
        expected(&[("A", "c1"), ("A", "c3"), ("B", "c2"), ("C", "-")])
    );
    // The conversation without contexts has no link columns at all.
    let lonely = &outer["value"][3];
    assert!(
        lonely
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("c.")),
        "{lonely}"
    );

    // The link's order descending reverses the contexts within each conversation.
    let descending =
        "<attribute name='msdyn_name'/><order attribute='msdyn_name' descending='true'/>";
    let (_, reversed) = fetch(&f, None, &joined("", "inner", descending), "").await;
    assert_eq!(
        pairs(&reversed),
        expected(&[("A", "c3"), ("A", "c1"), ("B", "c2")])
    );
}

#[tokio::test]
async fn the_link_filter_selects_the_children_and_keeps_outer_parents() {
    let f = fixture().await;
    let filter = format!(
        "{NAME_ORDERED}<filter><condition attribute='statecode' operator='eq' value='0'/></filter>"
    );
    let (status, inner) = fetch(&f, None, &joined("", "inner", &filter), "").await;
    assert_eq!(status, StatusCode::OK, "{inner}");
    assert_eq!(pairs(&inner), expected(&[("A", "c3"), ("B", "c2")]));
    let (_, outer) = fetch(&f, None, &joined("", "outer", &filter), "").await;
    assert_eq!(
        pairs(&outer),
        expected(&[("A", "c3"), ("B", "c2"), ("C", "-")])
    );
    // A root filter still applies to the conversations.
    let xml = "<fetch><entity name='msdyn_ocliveworkitem'><attribute name='subject'/>\
        <filter><condition attribute='subject' operator='eq' value='A'/></filter>\
        <link-entity name='msdyn_smsengagementctx' from='msdyn_liveworkitemid' to='activityid' \
        alias='c'><attribute name='msdyn_name'/><order attribute='msdyn_name'/></link-entity>\
        </entity></fetch>";
    let (status, only_a) = fetch(&f, None, xml, "").await;
    assert_eq!(status, StatusCode::OK, "{only_a}");
    assert_eq!(pairs(&only_a), expected(&[("A", "c1"), ("A", "c3")]));
}

#[tokio::test]
async fn a_basic_depth_user_never_sees_other_users_children_through_the_join() {
    let f = fixture().await;
    let alice = Some(&f.alice);
    // Alice reads conversation A and her contexts; c3 (bob's, on A) and B (bob's) are absent.
    let (status, inner) = fetch(&f, alice, &joined("", "inner", NAME_ORDERED), "").await;
    assert_eq!(status, StatusCode::OK, "{inner}");
    assert_eq!(pairs(&inner), expected(&[("A", "c1")]));
    let (_, outer) = fetch(&f, alice, &joined("", "outer", NAME_ORDERED), "").await;
    assert_eq!(pairs(&outer), expected(&[("A", "c1")]));
    // Filtered to bob's context: the inner join finds nothing, the outer join keeps A once,
    // exactly as if c3 did not exist.
    let only_c3 = format!(
        "{NAME_ORDERED}<filter><condition attribute='msdyn_name' operator='eq' value='c3'/></filter>"
    );
    let (_, inner) = fetch(&f, alice, &joined("", "inner", &only_c3), "").await;
    assert_eq!(pairs(&inner), expected(&[]));
    let (_, outer) = fetch(&f, alice, &joined("", "outer", &only_c3), "").await;
    assert_eq!(pairs(&outer), expected(&[("A", "-")]));
    // The administrator sees c3 through the same query.
    let (_, admin) = fetch(&f, None, &joined("", "inner", &only_c3), "").await;
    assert_eq!(pairs(&admin), expected(&[("A", "c3")]));
    // Counting through the join: alice's count of contexts per conversation counts only hers.
    let count =
        "<attribute name='msdyn_smsengagementctxid' alias='contexts' aggregate='countcolumn'/>";
    let xml = aggregate_query("outer", count);
    let (status, counts) = fetch(&f, alice, &xml, "").await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(counts["value"], json!([{"subject": "A", "contexts": 1}]));
}

/// Conversations grouped by subject, with `link_inside` inside a one-to-many link.
fn aggregate_query(link_type: &str, link_inside: &str) -> String {
    format!(
        "<fetch aggregate='true'><entity name='msdyn_ocliveworkitem'>\
         <attribute name='subject' alias='subject' groupby='true'/><order alias='subject'/>\
         <link-entity name='msdyn_smsengagementctx' from='msdyn_liveworkitemid' to='activityid' \
         alias='c' link-type='{link_type}'>{link_inside}</link-entity></entity></fetch>"
    )
}

#[tokio::test]
async fn aggregates_count_and_group_the_joined_rows() {
    let f = fixture().await;
    let count =
        "<attribute name='msdyn_smsengagementctxid' alias='contexts' aggregate='countcolumn'/>";
    let (status, outer) = fetch(&f, None, &aggregate_query("outer", count), "").await;
    assert_eq!(status, StatusCode::OK, "{outer}");
    assert_eq!(
        outer["value"],
        json!([
            {"subject": "A", "contexts": 2},
            {"subject": "B", "contexts": 1},
            {"subject": "C", "contexts": 0},
        ])
    );
    let (_, inner) = fetch(&f, None, &aggregate_query("inner", count), "").await;
    assert_eq!(
        inner["value"],
        json!([{"subject": "A", "contexts": 2}, {"subject": "B", "contexts": 1}])
    );
    // Grouped by a column of the linked table too: contexts per conversation and state.
    let by_state = "<attribute name='statecode' alias='state' groupby='true'/>\
        <attribute name='msdyn_smsengagementctxid' alias='contexts' aggregate='count'/>\
        <order alias='state'/>";
    let (status, grouped) = fetch(&f, None, &aggregate_query("inner", by_state), "").await;
    assert_eq!(status, StatusCode::OK, "{grouped}");
    assert_eq!(
        grouped["value"],
        json!([
            {"subject": "A", "state": 0, "contexts": 1},
            {"subject": "A", "state": 1, "contexts": 1},
            {"subject": "B", "state": 0, "contexts": 1},
        ])
    );
}

#[tokio::test]
async fn joined_rows_page_by_number_without_a_paging_cookie() {
    let f = fixture().await;
    let prefer = "odata.include-annotations=\"*\"";
    let mut seen = Vec::new();
    for page in 1..=3 {
        let attributes = format!("count='2' page='{page}'");
        let (status, body) = fetch(
            &f,
            None,
            &joined(&attributes, "outer", NAME_ORDERED),
            prefer,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Dataverse returns no paging cookie for such a query.
        assert!(
            body.get("@Microsoft.Dynamics.CRM.fetchxmlpagingcookie")
                .is_none(),
            "{body}"
        );
        let more = body["@Microsoft.Dynamics.CRM.morerecords"]
            .as_bool()
            .unwrap();
        assert_eq!(more, page == 1, "page {page}: {body}");
        seen.push(pairs(&body));
    }
    assert_eq!(
        seen,
        vec![
            expected(&[("A", "c1"), ("A", "c3")]),
            expected(&[("B", "c2"), ("C", "-")]),
            expected(&[]),
        ]
    );
    // One row a page: conversation A comes on two pages, once per context.
    let (_, first) = fetch(
        &f,
        None,
        &joined("count='1' page='1'", "inner", NAME_ORDERED),
        "",
    )
    .await;
    // A paging cookie sent back is ignored: the page number alone says where the page starts.
    let cookie = "&lt;cookie page=&quot;1&quot;&gt;&lt;activityid last=&quot;{00000000-0000-0000-0000-000000000001}&quot; first=&quot;{00000000-0000-0000-0000-000000000001}&quot; /&gt;&lt;/cookie&gt;";
    let attributes = format!("count='1' page='2' paging-cookie='{cookie}'");
    let (status, second) = fetch(&f, None, &joined(&attributes, "inner", NAME_ORDERED), "").await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(pairs(&first), expected(&[("A", "c1")]));
    assert_eq!(pairs(&second), expected(&[("A", "c3")]));
    assert_eq!(
        first["value"][0]["activityid"],
        second["value"][0]["activityid"]
    );
}

#[tokio::test]
async fn link_columns_carry_their_annotations() {
    let f = fixture().await;
    let inside = "<attribute name='msdyn_name'/><attribute name='statecode'/>\
        <attribute name='msdyn_liveworkitemid'/><order attribute='msdyn_name'/>";
    let prefer = "odata.include-annotations=\"*\"";
    let (status, body) = fetch(&f, None, &joined("", "inner", inside), prefer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let row = &body["value"][0];
    let annotation = |name: &str, term: &str| row[format!("{name}@{term}")].clone();
    assert_eq!(row["c.msdyn_name"], "c1");
    assert_eq!(
        annotation("c.msdyn_name", "OData.Community.Display.V1.AttributeName"),
        "msdyn_name"
    );
    assert_eq!(row["c.statecode"], 1);
    assert_eq!(
        annotation("c.statecode", "OData.Community.Display.V1.FormattedValue"),
        "Inactive"
    );
    assert_eq!(row["c._msdyn_liveworkitemid_value"], row["activityid"]);
    assert_eq!(
        annotation(
            "c._msdyn_liveworkitemid_value",
            "Microsoft.Dynamics.CRM.lookuplogicalname"
        ),
        "msdyn_ocliveworkitem"
    );
    // Without the Prefer header, the values alone.
    let (_, plain) = fetch(&f, None, &joined("", "inner", inside), "").await;
    let plain_row = plain["value"][0].as_object().unwrap();
    assert!(
        plain_row
            .keys()
            .all(|k| !k.contains('@') || k == "@odata.etag"),
        "{plain_row:?}"
    );
}

#[tokio::test]
async fn what_a_one_to_many_join_cannot_do_is_refused() {
    let f = fixture().await;
    let link = |alias: &str| {
        format!(
            "<link-entity name='msdyn_smsengagementctx' from='msdyn_liveworkitemid' \
             to='activityid' alias='{alias}'><attribute name='msdyn_name'/></link-entity>"
        )
    };
    let refused = [
        (
            format!(
                "<fetch><entity name='msdyn_ocliveworkitem'>{}{}</entity></fetch>",
                link("a"),
                link("b")
            ),
            "second one-to-many",
        ),
        (
            format!(
                "<fetch><entity name='msdyn_ocliveworkitem'>\
                 <filter><condition entityname='a' attribute='msdyn_name' operator='eq' value='c1'/></filter>\
                 {}</entity></fetch>",
                link("a")
            ),
            "one-to-many link-entity 'a'",
        ),
        (
            joined("count='5000' page='11'", "inner", NAME_ORDERED),
            "50000",
        ),
        (
            joined("returntotalrecordcount='true'", "inner", NAME_ORDERED),
            "returntotalrecordcount",
        ),
    ];
    for (xml, part) in refused {
        let (status, body) = fetch(&f, None, &xml, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{xml}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(part), "{xml}: {message}");
    }
}
