//! Collection-valued navigation (one-to-many relationships) over HTTP: `$expand` of a
//! collection with nested `$select`, `$filter`, `$orderby` and `$top` on Retrieve and
//! RetrieveMultiple, nested `$expand` in both directions, Dataverse's limits, and the row
//! scope of a Basic-depth user on every row an expansion reaches.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const CONVERSATIONS: &str = "msdyn_ocliveworkitems";
/// The contexts of a conversation, as `$metadata` declares them.
const CONTEXTS: &str = "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid";

async fn conversation(app: &TestApp, subject: &str) -> String {
    app.create(CONVERSATIONS, &json!({ "subject": subject }))
        .await
}

async fn context_in(app: &TestApp, name: &str, conversation: &str, owner: Option<&str>) -> String {
    let mut body = json!({
        "msdyn_name": name,
        "msdyn_liveworkitemid@odata.bind": format!("/{CONVERSATIONS}({conversation})"),
    });
    if let Some(owner) = owner {
        body["ownerid@odata.bind"] = json!(format!("/systemusers({owner})"));
    }
    app.create(CTX, &body).await
}

fn names(rows: &Value) -> Vec<&str> {
    rows.as_array()
        .unwrap_or_else(|| panic!("an array, not {rows}"))
        .iter()
        .map(|r| r["msdyn_name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_collection_expands_with_its_nested_options_on_retrieve_and_retrieve_multiple() {
    let app = spawn_app().await;
    let first = conversation(&app, "first").await;
    let second = conversation(&app, "second").await;
    for name in ["a", "b", "c", "d"] {
        context_in(&app, name, &first, None).await;
    }
    context_in(&app, "z", &second, None).await;

    // Retrieve: filter, order and top apply to the conversation's own contexts.
    let one = app
        .get_json(&format!(
            "{CONVERSATIONS}({first})?$select=subject&$expand={CONTEXTS}($select=msdyn_name;$filter=msdyn_name ne 'b';$orderby=msdyn_name desc;$top=2)"
        ))
        .await;
    assert_eq!(one["subject"], "first");
    assert_eq!(names(&one[CONTEXTS]), ["d", "c"], "{one}");
    let row = one[CONTEXTS][0].as_object().unwrap();
    assert!(row.contains_key("msdyn_smsengagementctxid"), "{row:?}");
    assert!(
        !row.contains_key("statecode"),
        "only the selected columns: {row:?}"
    );

    // RetrieveMultiple: each conversation gets its own rows, an empty one an empty array.
    let empty = conversation(&app, "empty").await;
    let list = app
        .get_json(&format!(
            "{CONVERSATIONS}?$select=subject&$orderby=subject&$expand={CONTEXTS}($select=msdyn_name;$orderby=msdyn_name)"
        ))
        .await;
    let rows = list["value"].as_array().unwrap();
    let by_subject = |s: &str| {
        rows.iter()
            .find(|r| r["subject"] == s)
            .unwrap_or_else(|| panic!("{s} in {list}"))
    };
    assert_eq!(names(&by_subject("first")[CONTEXTS]), ["a", "b", "c", "d"]);
    assert_eq!(names(&by_subject("second")[CONTEXTS]), ["z"]);
    assert_eq!(names(&by_subject("empty")[CONTEXTS]), Vec::<&str>::new());
    assert!(rows.iter().any(|r| r["activityid"] == empty.as_str()));

    // The owning user's contexts (the partner of `owninguser`), and the lookup as a path.
    let admin = app.get_json(&format!("{CONVERSATIONS}({first})")).await["_owninguser_value"]
        .as_str()
        .unwrap()
        .to_string();
    let user = app
        .get_json(&format!(
            "systemusers({admin})?$select=fullname&$expand=user_msdyn_smsengagementctx($select=msdyn_name;$orderby=msdyn_name)"
        ))
        .await;
    assert_eq!(
        names(&user["user_msdyn_smsengagementctx"]),
        ["a", "b", "c", "d", "z"]
    );
    let some = row["msdyn_smsengagementctxid"].as_str().unwrap();
    let lookup = app
        .get_json(&format!("{}/msdyn_liveworkitemid", ctx(some)))
        .await;
    assert_eq!(lookup["activityid"], first.as_str(), "{lookup}");

    // A nested filter may go through a lookup (here back to the parent itself).
    let through = app
        .get_json(&format!(
            "{CONVERSATIONS}?$select=subject&$filter=subject eq 'first'&$expand={CONTEXTS}($select=msdyn_name;$filter=msdyn_liveworkitemid/subject eq 'first' and msdyn_name ne 'a';$orderby=msdyn_name)"
        ))
        .await;
    assert_eq!(
        names(&through["value"][0][CONTEXTS]),
        ["b", "c", "d"],
        "{through}"
    );

    // A filter inside the expansion never filters the parents.
    let filtered = app
        .get_json(&format!(
            "{CONVERSATIONS}?$select=subject&$expand={CONTEXTS}($filter=msdyn_name eq 'nothing')"
        ))
        .await;
    assert_eq!(filtered["value"].as_array().unwrap().len(), 3);
    for row in filtered["value"].as_array().unwrap() {
        assert_eq!(row[CONTEXTS], json!([]), "{row}");
    }
}

#[tokio::test]
async fn expansions_nest_in_both_directions() {
    let app = spawn_app().await;
    let talk = conversation(&app, "talk").await;
    let mine = context_in(&app, "mine", &talk, None).await;
    context_in(&app, "sibling", &talk, None).await;

    // Context → its conversation → the conversation's contexts.
    let record = app
        .get_json(&format!(
            "{}?$select=msdyn_name&$expand=msdyn_liveworkitemid($select=subject;$expand={CONTEXTS}($select=msdyn_name))",
            ctx(&mine)
        ))
        .await;
    let context = record["@odata.context"].as_str().unwrap();
    assert!(
        context.ends_with(&format!(
            "(msdyn_name,msdyn_liveworkitemid(subject,{CONTEXTS}(msdyn_name)))/$entity"
        )),
        "{context}"
    );
    let conversation = &record["msdyn_liveworkitemid"];
    assert_eq!(conversation["subject"], "talk", "{record}");
    let mut siblings = names(&conversation[CONTEXTS]);
    siblings.sort_unstable();
    assert_eq!(siblings, ["mine", "sibling"]);

    // Conversation → contexts → each context's creator (single-valued inside a collection).
    let list = app
        .get_json(&format!(
            "{CONVERSATIONS}?$select=subject&$expand={CONTEXTS}($select=msdyn_name;$expand=createdby($select=fullname),msdyn_liveworkitemid($select=subject))"
        ))
        .await;
    let contexts = list["value"][0][CONTEXTS].as_array().unwrap().clone();
    assert_eq!(contexts.len(), 2, "{list}");
    for context in &contexts {
        assert!(context["createdby"]["fullname"].is_string(), "{context}");
        assert_eq!(context["msdyn_liveworkitemid"]["subject"], "talk");
    }
}

/// The answer to a GET that must be refused.
async fn refused(app: &TestApp, path: &str, code: &str, message_part: &str) {
    let response = app.get(path).send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, code, message_part).await;
}

#[tokio::test]
async fn the_limits_of_expand_are_dataverse_s() {
    let app = spawn_app().await;
    let talk = conversation(&app, "limits").await;
    // $orderby and $top are not supported beside a nested $expand of a collection.
    for nested in ["$orderby=msdyn_name", "$top=1"] {
        let path =
            format!("{CONVERSATIONS}({talk})?$expand={CONTEXTS}({nested};$expand=createdby)");
        refused(
            &app,
            &path,
            "0x80060888",
            "not supported with a nested $expand",
        )
        .await;
    }
    // At most 15 $expand options in one query, nested ones counted (here 17).
    let mut expand = "createdby".to_string();
    for _ in 0..8 {
        expand = format!("msdyn_liveworkitemid($expand={CONTEXTS}($expand={expand}))");
    }
    refused(
        &app,
        &format!("{CTX}?$expand={expand}"),
        "0x80060888",
        "at most 15",
    )
    .await;
    // A name that is no navigation property of the table.
    let path = format!("{CONVERSATIONS}?$expand=nosuch_collection");
    refused(&app, &path, "0x0", "nosuch_collection").await;
    // Dataverse takes no $count, $skip, $search or $levels inside $expand.
    for nested in ["$count=true", "$skip=1", "$levels=2"] {
        let path = format!("{CONVERSATIONS}?$expand={CONTEXTS}({nested})");
        let option = nested.split('=').next().unwrap();
        refused(&app, &path, "0x0", option).await;
    }
    // Options that only collections take are refused on a lookup, `$ref` on a collection.
    let path = format!("{CTX}?$expand=msdyn_liveworkitemid($top=1)");
    refused(&app, &path, "0x0", "$top").await;
    let path = format!("{CONVERSATIONS}?$expand={CONTEXTS}/$ref");
    refused(&app, &path, "0x0", "$ref").await;
}

/// A user with Basic-depth Read on the contexts and the conversations (Organization on users).
async fn basic_user(app: &TestApp) -> (String, String) {
    let root = root_unit(app).await;
    let role = basic_role(app, &root).await;
    let user = signed_in_user(app, "basic", &root, &[&role]).await;
    (user.id, user.token)
}

#[tokio::test]
async fn a_basic_depth_user_sees_only_their_own_children_in_every_expansion() {
    let app = spawn_app().await;
    let (user, token) = basic_user(&app).await;
    // The user's conversation, with the user's context and the administrator's; and the
    // administrator's conversation (unreadable to the user) with another of the user's.
    let talk = app
        .create(
            CONVERSATIONS,
            &json!({"subject": "shared talk", "ownerid@odata.bind": format!("/systemusers({user})")}),
        )
        .await;
    let own = context_in(&app, "own", &talk, Some(&user)).await;
    context_in(&app, "admin's", &talk, None).await;
    let hidden = conversation(&app, "hidden talk").await;
    let stray = context_in(&app, "stray", &hidden, Some(&user)).await;

    let as_user = |path: String| {
        let request = get_as(&app, &token, &path);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // The administrator sees both.
    let all = app
        .get_json(&format!(
            "{CONVERSATIONS}({talk})?$expand={CONTEXTS}($select=msdyn_name)"
        ))
        .await;
    assert_eq!(all[CONTEXTS].as_array().unwrap().len(), 2);

    let (status, one) = as_user(format!(
        "{CONVERSATIONS}({talk})?$expand={CONTEXTS}($select=msdyn_name)"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(names(&one[CONTEXTS]), ["own"], "{one}");

    let (status, list) = as_user(format!(
        "{CONVERSATIONS}?$expand={CONTEXTS}($select=msdyn_name;$filter=msdyn_name ne 'x')"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(names(&list["value"][0][CONTEXTS]), ["own"], "{list}");

    // The collection's path: the same rows; the user may read but not write contexts, so
    // associating one is refused and changes nothing.
    let (status, path) = as_user(format!(
        "{CONVERSATIONS}({talk})/{CONTEXTS}?$select=msdyn_name"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{path}");
    assert_eq!(names(&path["value"]), ["own"], "{path}");
    let loose = app.create(CTX, &json!({"msdyn_name": "loose"})).await;
    let response = app
        .client
        .post(app.url(&format!("{CONVERSATIONS}({talk})/{CONTEXTS}/$ref")))
        .bearer_auth(&token)
        .json(&json!({"@odata.id": app.url(&ctx(&loose))}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let loose_row = app.get_json(&ctx(&loose)).await;
    assert_eq!(loose_row["_msdyn_liveworkitemid_value"], Value::Null);

    // Inside $batch, the same.
    let get = format!("GET /api/data/v9.2/{CONVERSATIONS}({talk})/{CONTEXTS}?$select=msdyn_name");
    let mut lines = vec!["--batch_A".to_string()];
    lines.extend(batch_part(None, &get, None));
    lines.extend(["--batch_A--".to_string(), String::new()]);
    let response = app
        .client
        .post(app.url("$batch"))
        .bearer_auth(&token)
        .header("Content-Type", "multipart/mixed; boundary=batch_A")
        .body(lines.join("\r\n"))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains("\"msdyn_name\":\"own\""), "{text}");
    assert!(!text.contains("admin's"), "{text}");

    // An unreadable parent answers as its Retrieve does (403, Dataverse's SecLib code, and
    // nothing of its children) on every path; as a lookup it expands to null.
    for path in [
        format!("{CONVERSATIONS}({hidden})"),
        format!("{CONVERSATIONS}({hidden})/{CONTEXTS}"),
        format!("{CONVERSATIONS}({hidden})?$expand={CONTEXTS}"),
    ] {
        let (status, body) = as_user(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "0x80048306", "{body}");
        assert!(!body.to_string().contains("stray"), "{body}");
    }
    let (status, list) = as_user(format!("{CONVERSATIONS}?$select=subject")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "{list}");
    let (status, stray) = as_user(format!(
        "{}?$expand=msdyn_liveworkitemid($expand={CONTEXTS})",
        ctx(&stray)
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{stray}");
    assert_eq!(stray["msdyn_liveworkitemid"], Value::Null, "{stray}");

    // Nested: own context → conversation → its contexts: still only the user's own.
    let (status, nested) = as_user(format!(
        "{}?$expand=msdyn_liveworkitemid($expand={CONTEXTS}($select=msdyn_name))",
        ctx(&own)
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{nested}");
    assert_eq!(
        names(&nested["msdyn_liveworkitemid"][CONTEXTS]),
        ["own"],
        "{nested}"
    );
}

/// One page of at most two rows of a list URL.
async fn page_of_two(app: &TestApp, url: &str) -> Value {
    let response = app
        .client
        .get(url)
        .bearer_auth(TOKEN)
        .header("Prefer", "odata.maxpagesize=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_collection_is_a_path_with_every_list_option_and_paging() {
    let app = spawn_app().await;
    let talk = conversation(&app, "paged").await;
    let other = conversation(&app, "other").await;
    for name in ["e", "a", "d", "c", "b"] {
        context_in(&app, name, &talk, None).await;
    }
    context_in(&app, "elsewhere", &other, None).await;
    let path = format!(
        "{CONVERSATIONS}({talk})/{CONTEXTS}?$select=msdyn_name&$filter=msdyn_name ne 'c'&$orderby=msdyn_name&$count=true"
    );
    let first = page_of_two(&app, &app.url(&path)).await;
    assert_eq!(names(&first["value"]), ["a", "b"], "{first}");
    assert_eq!(first["@odata.count"], 4);
    let next = first["@odata.nextLink"].as_str().expect("a nextLink");
    assert!(next.contains(&format!("({talk})/{CONTEXTS}?")), "{next}");
    let second = page_of_two(&app, next).await;
    assert_eq!(names(&second["value"]), ["d", "e"], "{second}");
    assert!(second.get("@odata.nextLink").is_none(), "{second}");

    // $top, and an expand on the children.
    let top = app
        .get_json(&format!(
            "{CONVERSATIONS}({talk})/{CONTEXTS}?$top=1&$orderby=msdyn_name desc&$expand=msdyn_liveworkitemid($select=subject)"
        ))
        .await;
    assert_eq!(names(&top["value"]), ["e"]);
    assert_eq!(top["value"][0]["msdyn_liveworkitemid"]["subject"], "paged");

    // A missing parent is 404; a bad option is a 400.
    let missing = format!("{CONVERSATIONS}({})/{CONTEXTS}", Uuid::new_v4());
    let response = app.get(&missing).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let path = format!("{CONVERSATIONS}({talk})/{CONTEXTS}?$filter=nosuch eq 1");
    refused(&app, &path, "0x0", "nosuch").await;
}

/// The lookup of a context, as its `_x_value` property.
async fn conversation_of(app: &TestApp, context: &str) -> Value {
    app.get_json(&format!(
        "{}?$select=_msdyn_liveworkitemid_value",
        ctx(context)
    ))
    .await["_msdyn_liveworkitemid_value"]
        .clone()
}

async fn send_ref(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    target: Option<&str>,
) -> StatusCode {
    let mut request = app.request(method, path);
    if let Some(target) = target {
        request = request.json(&json!({ "@odata.id": app.url(target) }));
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn references_associate_and_disassociate_both_ways_and_in_batch() {
    use reqwest::Method;
    let app = spawn_app().await;
    let talk = conversation(&app, "refs").await;
    let loose = app.create(CTX, &json!({"msdyn_name": "loose"})).await;
    let collection = format!("{CONVERSATIONS}({talk})/{CONTEXTS}");

    // Associate through the collection, disassociate by key.
    let status = send_ref(
        &app,
        Method::POST,
        &format!("{collection}/$ref"),
        Some(&ctx(&loose)),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(conversation_of(&app, &loose).await, talk.as_str());
    let listed = app
        .get_json(&format!("{collection}?$select=msdyn_name"))
        .await;
    assert_eq!(names(&listed["value"]), ["loose"]);
    let by_key = format!("{collection}({loose})/$ref");
    assert_eq!(
        send_ref(&app, Method::DELETE, &by_key, None).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(conversation_of(&app, &loose).await, Value::Null);
    // Not (any longer) a child of this conversation.
    assert_eq!(
        send_ref(&app, Method::DELETE, &by_key, None).await,
        StatusCode::BAD_REQUEST
    );
    // A record of another table is no member of the collection.
    let creator = app.get_json(&format!("{CONVERSATIONS}({talk})")).await;
    let admin = creator["_createdby_value"].as_str().unwrap().to_string();
    let status = send_ref(
        &app,
        Method::POST,
        &format!("{collection}/$ref"),
        Some(&format!("systemusers({admin})")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The single-valued side: PUT and DELETE of the lookup's $ref.
    let lookup = format!("{}/msdyn_liveworkitemid/$ref", ctx(&loose));
    let conversation_path = format!("{CONVERSATIONS}({talk})");
    assert_eq!(
        send_ref(&app, Method::PUT, &lookup, Some(&conversation_path)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(conversation_of(&app, &loose).await, talk.as_str());
    let status = send_ref(
        &app,
        Method::PUT,
        &lookup,
        Some(&format!("systemusers({admin})")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        send_ref(&app, Method::DELETE, &lookup, None).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(conversation_of(&app, &loose).await, Value::Null);

    // Inside a $batch change set, then read back through the collection in the same batch.
    let mut lines: Vec<String> = [
        "--batch_A",
        "Content-Type: multipart/mixed; boundary=changeset_B",
        "",
        "--changeset_B",
    ]
    .map(String::from)
    .to_vec();
    let reference = json!({"@odata.id": app.url(&ctx(&loose))});
    let post = format!("POST /api/data/v9.2/{collection}/$ref");
    lines.extend(batch_part(Some("1"), &post, Some(&reference)));
    lines.extend(["--changeset_B--".to_string(), "--batch_A".to_string()]);
    let get = format!("GET /api/data/v9.2/{collection}?$select=msdyn_name");
    lines.extend(batch_part(None, &get, None));
    lines.extend(["--batch_A--".to_string(), String::new()]);
    let (status, text) = post_batch(&app, &lines).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("HTTP/1.1 204"), "{text}");
    assert!(text.contains("\"msdyn_name\":\"loose\""), "{text}");
    assert_eq!(conversation_of(&app, &loose).await, talk.as_str());
}
