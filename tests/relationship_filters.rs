//! Filters through relationships: lookup paths in `$filter` (one and two hops), `any`/`all`
//! over one-to-many collections (conversations' contexts, users' contexts), the refusals, and
//! the row scope of every table a filter reaches (a Basic-depth user never matches through a
//! row it cannot read). Both backends.

use crate::common;

use std::collections::BTreeSet;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CONVERSATIONS: &str = "msdyn_ocliveworkitems";
const CONTEXTS_OF: &str = "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid";

type User = SignedIn;

struct Fixture {
    app: TestApp,
    alice: User,
    /// Conversations by subject: A (alice's), B (bob's), C (the administrator's, no contexts).
    conversations: Vec<(String, String)>,
    /// Contexts by name: c1 (alice, A), c2 (alice, B), c3 (bob, A), c4 (alice, none).
    contexts: Vec<(String, String)>,
}

impl Fixture {
    fn conversation(&self, subject: &str) -> String {
        self.conversations
            .iter()
            .find(|(s, _)| s == subject)
            .map(|(_, id)| id.clone())
            .unwrap()
    }

    fn context_names(&self, ids: &BTreeSet<String>) -> BTreeSet<String> {
        self.contexts
            .iter()
            .filter(|(_, id)| ids.contains(id))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

async fn fixture() -> Fixture {
    let app = spawn_app().await;
    let (alice, bob, conversations) = readers_and_conversations(&app).await;
    let by_subject = |s: &str| {
        conversations
            .iter()
            .find(|(subject, _)| subject == s)
            .map(|(_, id)| id.clone())
    };
    let mut contexts = Vec::new();
    for (name, owner, conversation) in [
        ("c1", &alice, by_subject("A")),
        ("c2", &alice, by_subject("B")),
        ("c3", &bob, by_subject("A")),
        ("c4", &alice, None),
    ] {
        let mut body = json!({"msdyn_name": name, "ownerid@odata.bind": format!("/systemusers({})", owner.id)});
        if let Some(conversation) = conversation {
            body["msdyn_liveworkitemid@odata.bind"] =
                json!(format!("/{CONVERSATIONS}({conversation})"));
        }
        contexts.push((name.to_string(), app.create(CTX, &body).await));
    }
    Fixture {
        app,
        alice,
        conversations,
        contexts,
    }
}

/// GET `set?$filter=filter` (and `extra`) as `user` (the administrator when `None`): the ids of
/// the `key` column, after checking that `$count` and `/$count` agree with them.
async fn ids(
    f: &Fixture,
    user: Option<&User>,
    set: &str,
    key: &str,
    filter: &str,
) -> BTreeSet<String> {
    let get = |path: String| as_user(f, user, &path);
    let response = get(format!(
        "{set}?$filter={}&$count=true",
        percent_encode(filter)
    ))
    .send()
    .await
    .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{filter}: {body}");
    let ids: BTreeSet<String> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[key].as_str().unwrap().to_string())
        .collect();
    assert_eq!(body["@odata.count"], ids.len(), "{filter}: @odata.count");
    let count = get(format!("{set}/$count?$filter={}", percent_encode(filter)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, ids.len().to_string(), "{filter}: /$count");
    ids
}

/// A GET as `user` (the administrator when `None`).
fn as_user(f: &Fixture, user: Option<&User>, path: &str) -> reqwest::RequestBuilder {
    match user {
        Some(user) => get_as(&f.app, &user.token, path),
        None => f.app.get(path),
    }
}

/// The JSON body of a GET as `user`.
async fn json_as(f: &Fixture, user: Option<&User>, path: &str) -> Value {
    as_user(f, user, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn contexts(f: &Fixture, user: Option<&User>, filter: &str) -> BTreeSet<String> {
    let ids = ids(f, user, CTX, "msdyn_smsengagementctxid", filter).await;
    f.context_names(&ids)
}

async fn conversations(f: &Fixture, user: Option<&User>, filter: &str) -> BTreeSet<String> {
    let ids = ids(f, user, CONVERSATIONS, "activityid", filter).await;
    f.conversations
        .iter()
        .filter(|(_, id)| ids.contains(id))
        .map(|(s, _)| s.clone())
        .collect()
}

fn names(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn lookup_paths_filter_through_the_related_row() {
    let f = fixture().await;
    let cases: [(&str, &[&str]); 7] = [
        ("msdyn_liveworkitemid/subject eq 'A'", &["c1", "c3"]),
        ("msdyn_liveworkitemid/statecode eq 0", &["c1", "c2", "c3"]),
        ("not (msdyn_liveworkitemid/subject eq 'A')", &["c2", "c4"]),
        (
            "msdyn_liveworkitemid/subject eq 'B' or msdyn_name eq 'c4'",
            &["c2", "c4"],
        ),
        ("startswith(msdyn_liveworkitemid/subject,'b')", &["c2"]),
        (
            "msdyn_liveworkitemid/owninguser/domainname eq 'alice@example.com'",
            &["c1", "c3"],
        ),
        ("msdyn_liveworkitemid/subject ne null", &["c1", "c2", "c3"]),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            contexts(&f, None, filter).await,
            names(expected),
            "{filter}"
        );
    }
}

#[tokio::test]
async fn any_and_all_filter_by_the_related_collection() {
    let f = fixture().await;
    let cases: [(&str, &[&str]); 5] = [
        ("/any(c:c/msdyn_name eq 'c2')", &["B"]),
        ("/any()", &["A", "B"]),
        (
            "/any(c: c/msdyn_name eq 'c1' or c/msdyn_name eq 'c2')",
            &["A", "B"],
        ),
        ("/all(c:c/msdyn_name eq 'c2')", &["B", "C"]),
        ("/all(c:startswith(c/msdyn_name,'c'))", &["A", "B", "C"]),
    ];
    for (lambda, expected) in cases {
        let filter = format!("{CONTEXTS_OF}{lambda}");
        assert_eq!(
            conversations(&f, None, &filter).await,
            names(expected),
            "{filter}"
        );
    }
    // Nested: a lambda's row through a lookup, and a lambda inside a lambda.
    let filter = format!("{CONTEXTS_OF}/any(c:c/owninguser/domainname eq 'bob@example.com')");
    assert_eq!(conversations(&f, None, &filter).await, names(&["A"]));
    let users = ids(
        &f,
        None,
        "systemusers",
        "systemuserid",
        "user_msdyn_smsengagementctx/any(c:c/msdyn_liveworkitemid/subject eq 'B')",
    )
    .await;
    assert_eq!(users, [f.alice.id.clone()].into_iter().collect());
    let nested = "user_msdyn_smsengagementctx/any(c:c/msdyn_liveworkitemid/subject eq 'A') and not user_msdyn_smsengagementctx/any(c:c/msdyn_name eq 'c3')";
    let users = ids(&f, None, "systemusers", "systemuserid", nested).await;
    assert_eq!(users, [f.alice.id.clone()].into_iter().collect());
    assert_eq!(
        conversations(&f, None, "activityid ne null").await,
        names(&["A", "B", "C"])
    );
    // The owner's collection (a principal's: users and teams) and a team's.
    let owns_c3 = "owner_msdyn_smsengagementctx/any(c:c/msdyn_name eq 'c3')";
    let users = ids(&f, None, "systemusers", "systemuserid", owns_c3).await;
    assert_eq!(users.len(), 1);
    assert!(!users.contains(&f.alice.id));
    let root = root_unit(&f.app).await;
    let team = f
        .app
        .create(
            "teams",
            &json!({"name": "night shift", "teamtype": 0, "businessunitid@odata.bind": format!("/businessunits({root})")}),
        )
        .await;
    f.app
        .create(
            CTX,
            &json!({"msdyn_name": "c5", "ownerid@odata.bind": format!("/teams({team})")}),
        )
        .await;
    for collection in [
        "team_msdyn_smsengagementctx",
        "owner_msdyn_smsengagementctx",
    ] {
        let filter = format!("{collection}/any(c:c/msdyn_name eq 'c5')");
        let teams = ids(&f, None, "teams", "teamid", &filter).await;
        assert_eq!(teams, [team.clone()].into_iter().collect(), "{filter}");
    }
}

#[tokio::test]
async fn a_basic_user_never_matches_through_a_row_it_cannot_read() {
    let f = fixture().await;
    let alice = Some(&f.alice);
    // Alice reads c1, c2, c4 and conversation A only.
    assert_eq!(
        contexts(&f, alice, "msdyn_name ne null").await,
        names(&["c1", "c2", "c4"])
    );
    assert_eq!(
        conversations(&f, alice, "activityid ne null").await,
        names(&["A"])
    );
    // c2 points at bob's conversation: for alice it is as if it did not exist.
    assert_eq!(
        contexts(&f, None, "msdyn_liveworkitemid/subject eq 'B'").await,
        names(&["c2"])
    );
    assert!(contexts(&f, alice, "msdyn_liveworkitemid/subject eq 'B'")
        .await
        .is_empty());
    assert_eq!(
        contexts(&f, alice, "not (msdyn_liveworkitemid/subject eq 'B')").await,
        names(&["c1", "c2", "c4"])
    );
    assert_eq!(
        contexts(&f, alice, "msdyn_liveworkitemid/statecode eq 0").await,
        names(&["c1"])
    );
    // c3 (bob's) is in conversation A, which alice reads: she does not see it through any.
    let any = format!("{CONTEXTS_OF}/any(c:c/msdyn_name eq 'c3')");
    assert_eq!(conversations(&f, None, &any).await, names(&["A"]));
    assert!(conversations(&f, alice, &any).await.is_empty());
    // all counts only the children she may read: c1 alone in A.
    let all = format!("{CONTEXTS_OF}/all(c:c/msdyn_name eq 'c1')");
    assert_eq!(conversations(&f, None, &all).await, names(&["C"]));
    assert_eq!(conversations(&f, alice, &all).await, names(&["A"]));
    // Without any Read privilege on conversations, every path through one is false.
    let root = root_unit(&f.app).await;
    let role = custom_role(
        &f.app,
        &root,
        "contexts only",
        &[("prvReadmsdyn_smsengagementctx", 8)],
    )
    .await;
    let carol = signed_in_user(&f.app, "carol", &root, &[&role]).await;
    let carol = Some(&carol);
    assert_eq!(
        contexts(&f, carol, "msdyn_name ne null").await,
        names(&["c1", "c2", "c3", "c4"])
    );
    assert!(contexts(&f, carol, "msdyn_liveworkitemid/subject eq 'A'")
        .await
        .is_empty());
    assert_eq!(
        contexts(&f, carol, "not (msdyn_liveworkitemid/subject eq 'A')").await,
        names(&["c1", "c2", "c3", "c4"])
    );
    // The aggregate sees the same rows.
    let path = format!(
        "{CTX}?$apply={}",
        percent_encode("filter(msdyn_liveworkitemid/subject eq 'A')/aggregate($count as n)")
    );
    let admin: Value = f.app.get_json(&path).await;
    assert_eq!(admin["value"][0]["n"], 2, "{admin}");
    let theirs: Value = json_as(&f, Some(&f.alice), &path).await;
    assert_eq!(theirs["value"][0]["n"], 1, "{theirs}");
}

#[tokio::test]
async fn bad_relationship_filters_are_refused_with_dataverse_codes() {
    let f = fixture().await;
    let cases: [(&str, &str, &str); 6] = [
        (
            CTX,
            "msdyn_liveworkitemid/any(c:c/subject eq 'A')",
            "Any/All may only be used following a collection.",
        ),
        (
            CTX,
            "msdyn_name/any(c:c/subject eq 'A')",
            "Any/All may only be used following a collection.",
        ),
        (
            CTX,
            "msdyn_liveworkitemid/nosuch eq 1",
            "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.msdyn_ocliveworkitem'.",
        ),
        (CTX, "msdyn_liveworkitemid/msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid/any(c:c/msdyn_name eq 'x')", "behind the lookup"),
        (
            CONVERSATIONS,
            "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid/any(c:msdyn_name eq 'x')",
            "inside a lambda expression",
        ),
        (
            CONVERSATIONS,
            "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid/all()",
            "a lambda variable",
        ),
    ];
    // The Web API orders by the table's own columns (FetchXML orders inside a link-entity).
    let order = [(
        CTX,
        "$orderby=msdyn_liveworkitemid/subject desc",
        "Ordering by the navigation path 'msdyn_liveworkitemid/subject' is not supported.",
    )];
    // More relationships than Dataverse joins in one query (15).
    let deep = format!("{}domainname eq 'x'", "createdby/".repeat(16));
    let deep = [(
        "systemusers",
        deep.as_str(),
        "The query crosses 16 relationships (lookup paths, lambdas and link-entities); at most 15 are allowed.",
    )];
    let filters = cases
        .iter()
        .chain(deep.iter())
        .map(|(set, filter, message)| {
            (
                *set,
                format!("$filter={}", percent_encode(filter)),
                *message,
            )
        });
    let order = order
        .iter()
        .map(|(set, query, message)| (*set, query.to_string(), *message));
    for (set, query, message) in filters.chain(order) {
        let response = f.app.get(&format!("{set}?{query}")).send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "0x0", message).await;
    }
    // Nothing was changed by any of them.
    assert_eq!(
        contexts(&f, None, "msdyn_name ne null").await,
        names(&["c1", "c2", "c3", "c4"])
    );
    let _ = f.conversation("A");
}

/// The rows of a FetchXML query on `set` as `user` (the administrator when `None`).
async fn fetch_rows(f: &Fixture, user: Option<&User>, set: &str, xml: &str) -> Vec<Value> {
    let path = format!("{set}?fetchXml={}", percent_encode(xml));
    let response = as_user(f, user, &path).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{xml}: {body}");
    body["value"].as_array().unwrap().clone()
}

fn column(rows: &[Value], name: &str) -> BTreeSet<String> {
    rows.iter()
        .map(|r| r[name].as_str().unwrap_or("-").to_string())
        .collect()
}

/// A FetchXML query on the contexts with one link to their conversation.
fn contexts_linked(link_type: &str, inside: &str) -> String {
    format!(
        "<fetch><entity name='msdyn_smsengagementctx'><attribute name='msdyn_name'/>\
         <link-entity name='msdyn_ocliveworkitem' from='activityid' to='msdyn_liveworkitemid' alias='conv' link-type='{link_type}'>{inside}</link-entity>\
         </entity></fetch>"
    )
}

/// A FetchXML query on the conversations whose filter holds one link to their contexts.
fn conversations_with(link_type: &str, condition: &str) -> String {
    let inner = if condition.is_empty() {
        String::new()
    } else {
        format!("<filter>{condition}</filter>")
    };
    format!(
        "<fetch><entity name='msdyn_ocliveworkitem'><attribute name='subject'/><filter>\
         <link-entity name='msdyn_smsengagementctx' from='msdyn_liveworkitemid' to='activityid' link-type='{link_type}'>{inner}</link-entity>\
         </filter></entity></fetch>"
    )
}

const SUBJECT_A: &str = "<filter><condition attribute='subject' operator='eq' value='A'/></filter>";

#[tokio::test]
async fn fetchxml_links_filter_through_relationships_with_the_row_scope() {
    let f = fixture().await;
    let alice = Some(&f.alice);
    let subject = "<attribute name='subject'/>";
    // Inner links: a filter inside the link keeps only the rows whose conversation matches.
    let rows = fetch_rows(
        &f,
        None,
        CTX,
        &contexts_linked("inner", &format!("{subject}{SUBJECT_A}")),
    )
    .await;
    assert_eq!(column(&rows, "msdyn_name"), names(&["c1", "c3"]));
    assert_eq!(column(&rows, "conv.subject"), names(&["A"]));
    let rows = fetch_rows(&f, None, CTX, &contexts_linked("inner", subject)).await;
    assert_eq!(column(&rows, "msdyn_name"), names(&["c1", "c2", "c3"]));
    // An inner link to a conversation alice cannot read drops her row (c2), as a missing one.
    let rows = fetch_rows(&f, alice, CTX, &contexts_linked("inner", subject)).await;
    assert_eq!(column(&rows, "msdyn_name"), names(&["c1"]));
    let rows = fetch_rows(&f, alice, CTX, &contexts_linked("outer", subject)).await;
    assert_eq!(column(&rows, "msdyn_name"), names(&["c1", "c2", "c4"]));
    let c2 = rows.iter().find(|r| r["msdyn_name"] == "c2").unwrap();
    assert!(c2.get("conv.subject").is_none(), "{c2}");
    // exists and in on the lookup: a filter only, no columns.
    for link_type in ["exists", "in"] {
        let xml = contexts_linked(link_type, SUBJECT_A);
        let rows = fetch_rows(&f, None, CTX, &xml).await;
        assert_eq!(
            column(&rows, "msdyn_name"),
            names(&["c1", "c3"]),
            "{link_type}"
        );
        assert!(rows.iter().all(|r| r.get("conv.subject").is_none()));
        let xml = contexts_linked(
            link_type,
            "<filter><condition attribute='subject' operator='eq' value='B'/></filter>",
        );
        assert_eq!(
            column(&fetch_rows(&f, None, CTX, &xml).await, "msdyn_name"),
            names(&["c2"])
        );
        assert!(
            fetch_rows(&f, alice, CTX, &xml).await.is_empty(),
            "{link_type}"
        );
    }
    // One-to-many filter links on the conversations.
    let is =
        |name: &str| format!("<condition attribute='msdyn_name' operator='eq' value='{name}'/>");
    let cases: [(&str, String, &[&str]); 8] = [
        ("any", is("c2"), &["B"]),
        ("any", String::new(), &["A", "B"]),
        ("not any", String::new(), &["C"]),
        ("not any", is("c2"), &["A", "C"]),
        ("all", is("c2"), &["B", "C"]),
        ("not all", is("c2"), &["A"]),
        ("exists", is("c3"), &["A"]),
        ("in", is("c1"), &["A"]),
    ];
    for (link_type, condition, expected) in &cases {
        let xml = conversations_with(link_type, condition);
        let rows = fetch_rows(&f, None, CONVERSATIONS, &xml).await;
        assert_eq!(
            column(&rows, "subject"),
            names(expected),
            "{link_type} {condition}"
        );
    }
    // Alice sees conversation A only, and only her contexts in it (c1, not bob's c3).
    let xml = conversations_with("any", &is("c3"));
    assert!(fetch_rows(&f, alice, CONVERSATIONS, &xml).await.is_empty());
    let xml = conversations_with("all", &is("c1"));
    assert_eq!(
        column(&fetch_rows(&f, alice, CONVERSATIONS, &xml).await, "subject"),
        names(&["A"])
    );
    // A root condition on the inner link's column (`entityname`), alone and in an `or`.
    let linked = |filter: &str| {
        format!(
            "<fetch><entity name='msdyn_smsengagementctx'><attribute name='msdyn_name'/><filter type='or'>{filter}</filter>\
             <link-entity name='msdyn_ocliveworkitem' from='activityid' to='msdyn_liveworkitemid' alias='conv'/>\
             </entity></fetch>"
        )
    };
    let on_b = "<condition entityname='conv' attribute='subject' operator='eq' value='B'/>";
    let xml = linked(on_b);
    assert_eq!(
        column(&fetch_rows(&f, None, CTX, &xml).await, "msdyn_name"),
        names(&["c2"])
    );
    assert!(fetch_rows(&f, alice, CTX, &xml).await.is_empty());
    let xml = linked(&format!(
        "<condition attribute='msdyn_name' operator='eq' value='c1'/>{on_b}"
    ));
    assert_eq!(
        column(&fetch_rows(&f, None, CTX, &xml).await, "msdyn_name"),
        names(&["c1", "c2"])
    );
    assert_eq!(
        column(&fetch_rows(&f, alice, CTX, &xml).await, "msdyn_name"),
        names(&["c1"])
    );
    // An `or` filter mixing a link with a condition.
    let xml = "<fetch><entity name='msdyn_ocliveworkitem'><attribute name='subject'/><filter type='or'>\
        <condition attribute='subject' operator='eq' value='C'/>\
        <link-entity name='msdyn_smsengagementctx' from='msdyn_liveworkitemid' to='activityid' link-type='any'>\
        <filter><condition attribute='msdyn_name' operator='eq' value='c2'/></filter></link-entity>\
        </filter></entity></fetch>";
    assert_eq!(
        column(&fetch_rows(&f, None, CONVERSATIONS, xml).await, "subject"),
        names(&["B", "C"])
    );
}

#[tokio::test]
async fn fetchxml_links_the_server_does_not_run_are_refused_by_name() {
    let f = fixture().await;
    let one_to_many = "<fetch><entity name='msdyn_ocliveworkitem'><attribute name='subject'/>\
        <link-entity name='msdyn_smsengagementctx' from='msdyn_liveworkitemid' to='activityid' alias='c'><attribute name='msdyn_name'/></link-entity>\
        </entity></fetch>";
    // One one-to-many join link runs (tests/fetch_joins.rs); a second in the same query does not.
    let two_links = "<link-entity name='msdyn_smsengagementctx' from='msdyn_liveworkitemid' to='activityid' alias='d'/>";
    let outer_condition = "<fetch><entity name='msdyn_smsengagementctx'><filter><condition entityname='conv' attribute='subject' operator='null'/></filter>\
        <link-entity name='msdyn_ocliveworkitem' from='activityid' to='msdyn_liveworkitemid' alias='conv' link-type='outer'/></entity></fetch>";
    let unknown_alias = outer_condition.replace("entityname='conv'", "entityname='nosuch'");
    let any_link = "<link-entity name='msdyn_smsengagementctx' from='msdyn_liveworkitemid' to='activityid' link-type='any'/>";
    let many_links = format!(
        "<fetch><entity name='msdyn_ocliveworkitem'><filter type='or'>{}</filter></entity></fetch>",
        any_link.repeat(16)
    );
    let cases: [(&str, String, &str, &str); 7] = [
        (
            CONVERSATIONS,
            many_links,
            "0x0",
            "The query crosses 16 relationships",
        ),
        (
            CTX,
            outer_condition.to_string(),
            "0x0",
            "A condition on the outer link-entity 'conv'",
        ),
        (
            CTX,
            unknown_alias,
            "0x80040203",
            "The condition's entityname 'nosuch' names no link-entity",
        ),
        (
            CONVERSATIONS,
            one_to_many.replace("</entity>", &format!("{}</entity>", two_links)),
            "0x0",
            "A second one-to-many link-entity",
        ),
        (
            CTX,
            contexts_linked("all", SUBJECT_A),
            "0x0",
            "A many-to-one link-entity of link-type 'all'",
        ),
        (
            CTX,
            contexts_linked("exists", "<attribute name='subject'/>"),
            "0x80040203",
            "returns no columns",
        ),
        (
            CTX,
            contexts_linked("outer", SUBJECT_A),
            "0x80040203",
            "A filter inside an outer link-entity",
        ),
    ];
    for (set, xml, code, message) in cases {
        let path = format!("{set}?fetchXml={}", percent_encode(&xml));
        let response = f.app.get(&path).send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, code, message).await;
    }
}

/// `group → count` of an aggregation's rows (`-` for a null group).
fn groups(rows: &[Value], group: &str, count: &str) -> BTreeSet<String> {
    rows.iter()
        .map(|r| format!("{}:{}", r[group].as_str().unwrap_or("-"), r[count]))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    names(items)
}

#[tokio::test]
async fn aggregates_group_by_a_related_rows_column_under_its_row_scope() {
    let f = fixture().await;
    let alice = Some(&f.alice);
    // $apply: the group is named `{target}_{column}`, as Dataverse names it.
    let path = format!(
        "{CTX}?$apply={}",
        percent_encode("groupby((msdyn_liveworkitemid/subject),aggregate($count as n))")
    );
    let key = "msdyn_ocliveworkitem_subject";
    let rows = f.app.get_json(&path).await["value"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(groups(&rows, key, "n"), set(&["A:2", "B:1", "-:1"]));
    // For alice, c2's conversation (bob's) reads as no conversation.
    let body: Value = json_as(&f, alice, &path).await;
    let rows = body["value"].as_array().unwrap().clone();
    assert_eq!(groups(&rows, key, "n"), set(&["A:1", "-:2"]), "{body}");
    // A filter through a path and a group through it together.
    let path = format!(
        "{CTX}?$apply={}",
        percent_encode("filter(msdyn_liveworkitemid/subject ne 'B')/groupby((msdyn_liveworkitemid/subject),aggregate($count as n))")
    );
    let rows = f.app.get_json(&path).await["value"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(groups(&rows, key, "n"), set(&["A:2"]));

    // FetchXML: group by and aggregate a link-entity's column.
    let aggregate = |link_type: &str, columns: &str| {
        format!(
            "<fetch aggregate='true'><entity name='msdyn_smsengagementctx'>\
             <attribute name='msdyn_smsengagementctxid' alias='n' aggregate='count'/>\
             <link-entity name='msdyn_ocliveworkitem' from='activityid' to='msdyn_liveworkitemid' alias='conv' link-type='{link_type}'>{columns}</link-entity>\
             </entity></fetch>"
        )
    };
    let by_subject = "<attribute name='subject' alias='subject' groupby='true'/>";
    let rows = fetch_rows(&f, None, CTX, &aggregate("outer", by_subject)).await;
    assert_eq!(groups(&rows, "subject", "n"), set(&["A:2", "B:1", "-:1"]));
    let rows = fetch_rows(&f, None, CTX, &aggregate("inner", by_subject)).await;
    assert_eq!(groups(&rows, "subject", "n"), set(&["A:2", "B:1"]));
    let rows = fetch_rows(&f, alice, CTX, &aggregate("inner", by_subject)).await;
    assert_eq!(groups(&rows, "subject", "n"), set(&["A:1"]));
    let counted = "<attribute name='subject' alias='subjects' aggregate='countcolumn'/>";
    let rows = fetch_rows(&f, None, CTX, &aggregate("outer", counted)).await;
    assert_eq!(
        (rows[0]["n"].clone(), rows[0]["subjects"].clone()),
        (json!(4), json!(3))
    );
    let rows = fetch_rows(&f, alice, CTX, &aggregate("outer", counted)).await;
    assert_eq!(
        (rows[0]["n"].clone(), rows[0]["subjects"].clone()),
        (json!(3), json!(1))
    );
}
