//! Conversation transcripts, the conversation lifecycle and delivery status, end to end: signed
//! webhooks (signatures computed in `sms.rs`, independently of `smsctx::channels`), replies
//! through `smsctx_SendSms` at a fake provider, and the transcripts read back the way
//! Microsoft's "Download Omnichannel transcripts in bulk" reads them:
//! `annotations?$filter=objecttypecode eq 'msdyn_transcript'`, then base64-decoding
//! `documentbody` into the JSON array of messages.

use crate::common;
use crate::sms::*;

use base64::Engine as _;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CTX_TABLE: &str = "msdyn_smsengagementctx";
const TRANSCRIPT_NOTES: &str = "annotations?$filter=objecttypecode eq 'msdyn_transcript'";

/// The messages of a note: `documentbody` base64-decoded and parsed.
fn messages_of(note: &Value) -> Vec<Value> {
    let body = note["documentbody"].as_str().expect("a documentbody");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    let messages: Value = serde_json::from_slice(&bytes).expect("a JSON document");
    messages.as_array().expect("an array of messages").clone()
}

async fn notes_as(app: &TestApp, token: &str) -> Vec<Value> {
    let response = get_as(app, token, TRANSCRIPT_NOTES).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["value"].as_array().unwrap().clone()
}

/// The transcript messages of the one conversation of `context`.
async fn transcript_of_context(app: &TestApp, context: &Value) -> Vec<Value> {
    let conversation = context["_msdyn_liveworkitemid_value"].as_str().unwrap();
    let transcripts = app
        .get_json(&format!(
            "msdyn_transcripts?$filter=_msdyn_liveworkitemidid_value eq {conversation}"
        ))
        .await;
    let transcripts = transcripts["value"].as_array().unwrap();
    assert_eq!(transcripts.len(), 1, "one transcript per conversation");
    let transcript = transcripts[0]["msdyn_transcriptid"].as_str().unwrap();
    let notes = app
        .get_json(&format!(
            "annotations?$filter=_objectid_value eq {transcript}&$select=documentbody,objecttypecode,mimetype"
        ))
        .await;
    let notes = notes["value"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "one note per transcript");
    assert_eq!(notes[0]["objecttypecode"], "msdyn_transcript");
    assert_eq!(notes[0]["mimetype"], "application/json");
    messages_of(&notes[0])
}

fn contents(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn text(app: &TestApp, from: &str, n: u32, body: &str) -> StatusCode {
    post_twilio(
        &app.client,
        &twilio_url(app),
        TOKEN_TWILIO,
        &twilio_params(from, ORG, &sid(n), body),
    )
    .await
    .status()
}

#[tokio::test]
async fn every_inbound_message_is_in_the_transcript_in_order_and_a_replay_adds_nothing() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    for (n, body) in [(1, "Hello"), (2, "My order is late"), (3, "Order 42")] {
        assert_eq!(text(&app, CUSTOMER, n, body).await, StatusCode::OK);
    }
    // A replay of the second message, and a concurrent pair of duplicates of a fourth.
    assert_eq!(
        text(&app, CUSTOMER, 2, "My order is late").await,
        StatusCode::OK
    );
    let (a, b) = tokio::join!(
        text(&app, CUSTOMER, 4, "Thanks"),
        text(&app, CUSTOMER, 4, "Thanks")
    );
    assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));

    let notes = app.get_json(TRANSCRIPT_NOTES).await["value"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(notes.len(), 1);
    let messages = messages_of(&notes[0]);
    assert_eq!(
        contents(&messages),
        ["Hello", "My order is late", "Order 42", "Thanks"]
    );
    let ids: Vec<i64> = messages
        .iter()
        .map(|m| m["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids rise: {ids:?}");
    let first = &messages[0];
    assert_eq!(first["contentType"], "text");
    assert_eq!(first["from"]["phone"]["id"], "12015550123");
    assert_eq!(first["from"]["phone"]["displayName"], CUSTOMER);
    assert!(first["from"]["user"].is_null());
    assert_eq!(first["tags"], format!("messageId-{}", sid(1)));
    assert!(first["createdDateTime"]
        .as_str()
        .unwrap()
        .ends_with("+00:00"));
    assert!(first["created"].as_str().unwrap().ends_with('Z'));
    for member in ["likes", "attachments"] {
        assert_eq!(first[member], json!([]));
    }

    // The same messages through the transcript table and the note's own URL.
    let context = &contexts(&app).await[0];
    assert_eq!(
        contents(&transcript_of_context(&app, context).await),
        contents(&messages)
    );
    let id = notes[0]["annotationid"].as_str().unwrap();
    let one = app
        .get_json(&format!("annotations({id})?$select=documentbody"))
        .await;
    assert_eq!(messages_of(&one), messages);
    let count = app
        .get("annotations/$count")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, "1");

    // A second customer has a transcript of its own.
    assert_eq!(text(&app, "+12015550199", 5, "Other").await, StatusCode::OK);
    assert_eq!(
        app.get_json(TRANSCRIPT_NOTES).await["value"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    app.stop().await;
}

#[tokio::test]
async fn transcripts_are_read_only_through_the_web_api() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    assert_eq!(text(&app, CUSTOMER, 1, "Hello").await, StatusCode::OK);
    let notes = app.get_json(TRANSCRIPT_NOTES).await;
    let id = notes["value"][0]["annotationid"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = app
        .patch(
            &format!("annotations({id})"),
            &json!({"documentbody": "AAAA"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::BAD_REQUEST);
    let delete = app
        .delete(&format!("annotations({id})"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::BAD_REQUEST);
    let create = app
        .post("msdyn_transcripts", &json!({"msdyn_name": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), StatusCode::BAD_REQUEST);
    let one = app.get_json(&format!("annotations({id})")).await;
    assert_eq!(contents(&messages_of(&one)), ["Hello"]);
    app.stop().await;
}

/// A role reading conversations at Basic depth, and transcripts and notes (whose rows follow
/// their conversation's).
async fn agent_role(app: &TestApp, unit: &str) -> String {
    let grants = [
        ("prvReadmsdyn_smsengagementctx", 1),
        ("prvReadmsdyn_ocliveworkitem", 1),
        ("prvReadmsdyn_transcript", 8),
        ("prvReadNote", 8),
        ("prvReadUser", 8),
        ("prvReadTeam", 8),
        ("prvReadBusinessUnit", 8),
    ];
    custom_role(app, unit, "transcript reader", &grants).await
}

#[tokio::test]
async fn a_transcript_is_readable_by_whoever_may_read_its_conversation() {
    let app = spawn_app().await;
    let unit = root_unit(&app).await;
    let role = agent_role(&app, &unit).await;
    let alice = signed_in_user(&app, "alice", &unit, &[&role]).await;
    let bob = signed_in_user(&app, "bob", &unit, &[&role]).await;
    // Alice's channel opens conversations she owns; the other belongs to the administrator.
    add_twilio_channel(
        &app,
        ORG_2,
        json!({"smsctx_defaultownerid@odata.bind": format!("/systemusers({})", alice.id)}),
    )
    .await;
    add_twilio_channel(&app, ORG, json!({})).await;
    let alices = post_twilio(
        &app.client,
        &twilio_url(&app),
        TOKEN_TWILIO,
        &twilio_params(CUSTOMER, ORG_2, &sid(1), "for alice"),
    )
    .await;
    assert_eq!(alices.status(), StatusCode::OK);
    assert_eq!(
        text(&app, CUSTOMER, 2, "for the admin").await,
        StatusCode::OK
    );

    let all = app.get_json(TRANSCRIPT_NOTES).await["value"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 2);
    let note_of = |content: &str| {
        all.iter()
            .find(|n| contents(&messages_of(n)) == [content])
            .unwrap()["annotationid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (alices_note, admins_note) = (note_of("for alice"), note_of("for the admin"));

    let seen = notes_as(&app, &alice.token).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(contents(&messages_of(&seen[0])), ["for alice"]);
    assert!(notes_as(&app, &bob.token).await.is_empty());
    let transcripts = get_as(&app, &bob.token, "msdyn_transcripts")
        .send()
        .await
        .unwrap();
    let transcripts: Value = transcripts.json().await.unwrap();
    assert_eq!(transcripts["value"], json!([]));
    let count = get_as(&app, &bob.token, "annotations/$count")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, "0");

    let mine = get_as(&app, &alice.token, &format!("annotations({alices_note})"))
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), StatusCode::OK);
    for (who, note) in [(&alice, &admins_note), (&bob, &alices_note)] {
        let response = get_as(&app, &who.token, &format!("annotations({note})"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    // A filter through the note's lookup sees no more than the list does.
    let through = get_as(
        &app,
        &bob.token,
        "annotations?$filter=objectid/msdyn_name ne null",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(through.status(), StatusCode::OK);
    let body: Value = through.json().await.unwrap();
    assert_eq!(body["value"], json!([]));

    // Shared with Bob, the conversation brings its transcript.
    let conversation = app
        .get_json(&format!(
            "annotations({alices_note})?$expand=objectid($select=_msdyn_liveworkitemidid_value)"
        ))
        .await;
    let conversation = conversation["objectid"]["_msdyn_liveworkitemidid_value"]
        .as_str()
        .unwrap()
        .to_owned();
    let shared = app
        .post(
            "GrantAccess",
            &json!({
                "Target": {"@odata.type": "Microsoft.Dynamics.CRM.msdyn_ocliveworkitem", "activityid": conversation},
                "PrincipalAccess": {
                    "Principal": {"@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": bob.id},
                    "AccessMask": "ReadAccess"
                }
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(shared.status(), StatusCode::NO_CONTENT);
    let seen = notes_as(&app, &bob.token).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(contents(&messages_of(&seen[0])), ["for alice"]);
    app.stop().await;
}

#[tokio::test]
async fn acknowledged_messages_survive_kill_9_in_the_transcript() {
    let db = TestDatabase::new().await;
    // Migrations and the first start's seeding, then the binary.
    let app = spawn_app_in(db).await;
    let db = app.stop().await;
    let mut server = start_server(&db.url, &[]);
    let client = reqwest::Client::new();
    let api = server.base.clone();
    let root = api.trim_end_matches("/api/data/v9.2/").to_owned();
    let url = format!("{root}/channels/sms/twilio");
    let added = client
        .post(format!("{api}smsctx_smschannels"))
        .bearer_auth(TOKEN)
        .json(&json!({
            "smsctx_provider": "twilio", "smsctx_phonenumber": ORG, "smsctx_secret": TOKEN_TWILIO,
            "smsctx_account": ACCOUNT, "smsctx_publicurl": url,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);

    // Four customers writing at once, so messages share commits.
    let mut tasks = Vec::new();
    for customer in 0..4u32 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let from = format!("+1201555{:04}", 100 + customer);
            let mut acknowledged = Vec::new();
            for n in 0..10u32 {
                let body = format!("c{customer} m{n}");
                let message = sid(customer * 100 + n);
                let params = twilio_params(&from, ORG, &message, &body);
                if post_twilio(&client, &url, TOKEN_TWILIO, &params)
                    .await
                    .status()
                    == StatusCode::OK
                {
                    acknowledged.push(body);
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 40);
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let server = start_server(&db.url, &[]);
    let notes: Value = client
        .get(format!("{}{TRANSCRIPT_NOTES}", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let notes = notes["value"].as_array().unwrap();
    assert_eq!(notes.len(), 4);
    let mut kept: Vec<String> = notes
        .iter()
        .flat_map(|n| contents(&messages_of(n)))
        .collect();
    kept.sort();
    acknowledged.sort();
    assert_eq!(
        kept, acknowledged,
        "every acknowledged message is in a transcript"
    );
    for note in notes {
        let messages = contents(&messages_of(note));
        let customer = &messages[0][..2];
        let expected: Vec<String> = (0..10).map(|n| format!("{customer} m{n}")).collect();
        assert_eq!(messages, expected, "one customer's messages, in order");
    }
    drop(server);
}

const REPLY_SID: &str = "SM99999999999999999999999999999999";

fn status_url(app: &TestApp) -> String {
    format!("{}/status", twilio_url(app))
}

/// Twilio's status callback of the reply `REPLY_SID`, signed for the status URL.
async fn twilio_status(
    app: &TestApp,
    status: &str,
    error: Option<&str>,
    token: &str,
) -> StatusCode {
    let mut params = vec![
        ("MessageSid", REPLY_SID),
        ("SmsSid", REPLY_SID),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("AccountSid", ACCOUNT),
        ("From", ORG),
        ("To", CUSTOMER),
        ("ApiVersion", "2010-04-01"),
    ];
    if let Some(code) = error {
        params.push(("ErrorCode", code));
    }
    post_twilio(&app.client, &status_url(app), token, &params)
        .await
        .status()
}

/// A conversation with one inbound message on a Twilio channel whose API is a fake provider
/// answering every send with `REPLY_SID`: the context's id.
async fn conversation_with_fake_twilio(app: &TestApp) -> (String, FakeProvider) {
    let provider = fake_provider(201, json!({"sid": REPLY_SID, "status": "queued"})).await;
    add_twilio_channel(app, ORG, json!({"smsctx_apibaseurl": provider.base})).await;
    assert_eq!(
        text(app, CUSTOMER, 1, "Where is my parcel?").await,
        StatusCode::OK
    );
    let context = contexts(app).await[0]["msdyn_smsengagementctxid"]
        .as_str()
        .unwrap()
        .to_owned();
    (context, provider)
}

async fn reply(app: &TestApp, context: &str, text: &str) {
    let sent = app
        .post(&send_sms_path(context), &json!({"Message": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
}

fn tags_of(messages: &[Value], index: usize) -> String {
    messages[index]["tags"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn replies_join_the_transcript_and_twilio_status_callbacks_only_move_forward() {
    let app = spawn_app().await;
    let (context, provider) = conversation_with_fake_twilio(&app).await;
    reply(&app, &context, "It left the depot today.").await;
    let (_, _, _, sent) = provider.seen.lock().unwrap()[0].clone();
    assert!(sent.contains("StatusCallback="), "{sent}");

    let context_row = &contexts(&app).await[0];
    let messages = transcript_of_context(&app, context_row).await;
    assert_eq!(
        contents(&messages),
        ["Where is my parcel?", "It left the depot today."]
    );
    let reply_message = &messages[1];
    assert_eq!(
        tags_of(&messages, 1),
        format!("public,messageId-{REPLY_SID},deliveryStatus-queued")
    );
    assert_eq!(
        reply_message["from"]["user"]["displayName"],
        "System Administrator"
    );
    assert!(reply_message["from"]["phone"].is_null());

    // Out of order: delivered, then a late "sent", then a replay of delivered.
    for status in ["delivered", "sent", "delivered", "queued"] {
        assert_eq!(
            twilio_status(&app, status, None, TOKEN_TWILIO).await,
            StatusCode::OK
        );
    }
    let messages = transcript_of_context(&app, context_row).await;
    assert_eq!(
        tags_of(&messages, 1),
        format!("public,messageId-{REPLY_SID},deliveryStatus-delivered")
    );
    // A final failure after delivery does not overwrite it either.
    assert_eq!(
        twilio_status(&app, "undelivered", Some("30003"), TOKEN_TWILIO).await,
        StatusCode::OK
    );
    assert_eq!(
        tags_of(&transcript_of_context(&app, context_row).await, 1),
        format!("public,messageId-{REPLY_SID},deliveryStatus-delivered")
    );
    // The customer's message keeps its own tags; a wrong signature changes nothing.
    assert_eq!(tags_of(&messages, 0), format!("messageId-{}", sid(1)));
    assert_eq!(
        twilio_status(&app, "failed", None, "not-the-token-of-the-channel").await,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

#[tokio::test]
async fn a_status_callback_before_the_reply_is_recorded_is_kept_for_it() {
    let app = spawn_app().await;
    let (context, _provider) = conversation_with_fake_twilio(&app).await;
    // Twilio may call back before smsctx has written the reply it is about.
    assert_eq!(
        twilio_status(&app, "sent", None, TOKEN_TWILIO).await,
        StatusCode::OK
    );
    reply(&app, &context, "On its way").await;
    let context_row = &contexts(&app).await[0];
    let messages = transcript_of_context(&app, context_row).await;
    assert_eq!(
        tags_of(&messages, 1),
        format!("public,messageId-{REPLY_SID},deliveryStatus-sent")
    );
    assert_eq!(
        twilio_status(&app, "failed", Some("30006"), TOKEN_TWILIO).await,
        StatusCode::OK
    );
    let messages = transcript_of_context(&app, context_row).await;
    assert_eq!(
        tags_of(&messages, 1),
        format!("public,messageId-{REPLY_SID},deliveryStatus-failed,errorCode-30006")
    );
    // Malformed callbacks are 400s in Dataverse's shape.
    let bad = post_twilio(
        &app.client,
        &status_url(&app),
        TOKEN_TWILIO,
        &[
            ("MessageSid", REPLY_SID),
            ("From", ORG),
            ("AccountSid", ACCOUNT),
        ],
    )
    .await;
    assert_error(bad, StatusCode::BAD_REQUEST, "0x80040203", "MessageStatus").await;
    app.stop().await;
}

#[tokio::test]
async fn telesign_delivery_reports_move_the_reply_status() {
    let app = spawn_app().await;
    let reference = "0123456789ABCDEF0123456789ABCDEF";
    let provider = fake_provider(
        200,
        json!({"reference_id": reference, "status": {"code": 290, "description": "Message in progress"}}),
    )
    .await;
    let channel = add_telesign_channel(&app).await;
    let id = channel["smsctx_smschannelid"].as_str().unwrap();
    app.patch(
        &format!("smsctx_smschannels({id})"),
        &json!({"smsctx_apibaseurl": provider.base}),
    )
    .send()
    .await
    .unwrap();
    let inbound = telesign_body(
        "FEDCBA9876543210FEDCBA9876543210",
        "12015550123",
        "14252306551",
        "Hi",
    );
    let auth = telesign_authorization(TS_CUSTOMER, TS_KEY, inbound.as_bytes());
    assert_eq!(
        post_telesign(&app, &inbound, &auth).await.status(),
        StatusCode::OK
    );
    let context = contexts(&app).await[0]["msdyn_smsengagementctxid"]
        .as_str()
        .unwrap()
        .to_owned();
    reply(&app, &context, "Hello from TeleSign").await;

    let report = |code: i64| {
        json!({
            "reference_id": reference,
            "status": {"code": code, "description": "x", "updated_on": "2026-12-01T10:00:00.000000Z"},
            "submit_timestamp": "2026-12-01T09:59:59.000000Z",
            "errors": [],
        })
        .to_string()
    };
    let post_report = |code: i64| {
        let body = report(code);
        let auth = telesign_authorization(TS_CUSTOMER, TS_KEY, body.as_bytes());
        let app = &app;
        async move { post_telesign(app, &body, &auth).await.status() }
    };
    let context_row = &contexts(&app).await[0];
    let status_tag = |messages: &[Value]| tags_of(messages, 1);
    assert_eq!(
        status_tag(&transcript_of_context(&app, context_row).await),
        format!("public,messageId-{reference},deliveryStatus-queued")
    );
    assert_eq!(post_report(203).await, StatusCode::OK);
    assert_eq!(post_report(200).await, StatusCode::OK);
    assert_eq!(post_report(203).await, StatusCode::OK);
    assert_eq!(
        status_tag(&transcript_of_context(&app, context_row).await),
        format!("public,messageId-{reference},deliveryStatus-delivered")
    );
    // Unsigned: refused.
    let body = report(207);
    let forged = post_telesign(&app, &body, &format!("TSA {TS_CUSTOMER}:AAAA")).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}

// ---- the lifecycle ---------------------------------------------------------------------

/// The one context of the test's customer, as stored now.
async fn the_context(app: &TestApp, id: &str) -> Value {
    app.get_json(&ctx(id)).await
}

/// A conversation opened by one message: (context id, conversation id).
async fn opened(app: &TestApp, n: u32) -> (String, String) {
    assert_eq!(text(app, CUSTOMER, n, "Hello").await, StatusCode::OK);
    let active = app
        .get_json(&format!(
            "{CTX}?$filter=statecode eq 0 and msdyn_customerphonenumber eq '12015550123' and msdyn_orgphonenumber eq '14252306549'"
        ))
        .await;
    let rows = active["value"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "one active context: {rows:?}");
    (
        rows[0]["msdyn_smsengagementctxid"]
            .as_str()
            .unwrap()
            .to_owned(),
        rows[0]["_msdyn_liveworkitemid_value"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// The context was deactivated, the transcript says why, and the next message opens a new
/// conversation and context.
async fn ended(app: &TestApp, context: &str, next: u32, why: &str) {
    let row = the_context(app, context).await;
    assert_eq!(
        (row["statecode"].clone(), row["statuscode"].clone()),
        (json!(1), json!(2))
    );
    let messages = transcript_of_context(app, &row).await;
    let last = messages.last().unwrap();
    assert_eq!(last["content"], why);
    assert_eq!(last["tags"], "system");
    assert_eq!(last["from"]["application"]["displayName"], "smsctx");
    let (new_context, _) = opened(app, next).await;
    assert_ne!(new_context, context);
}

/// One change set closing `conversation` and then updating `context` with `update`.
async fn close_in_change_set(
    app: &TestApp,
    conversation: &str,
    context: &str,
    update: Value,
) -> (StatusCode, String) {
    let lines: Vec<String> = [
        vec![
            "--batch_A".to_string(),
            "Content-Type: multipart/mixed; boundary=changeset_B".into(),
            String::new(),
            "--changeset_B".into(),
        ],
        batch_part(
            Some("1"),
            &format!("PATCH msdyn_ocliveworkitems({conversation})"),
            Some(&json!({"statecode": 1, "statuscode": 4})),
        ),
        vec!["--changeset_B".into()],
        batch_part(Some("2"), &format!("PATCH {CTX}({context})"), Some(&update)),
        vec!["--changeset_B--".into(), "--batch_A--".into()],
    ]
    .concat();
    post_batch(app, &lines).await
}

#[tokio::test]
async fn closing_a_conversation_by_any_path_deactivates_its_context_at_once() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;

    // A Web API PATCH of the state and status.
    let (context, conversation) = opened(&app, 1).await;
    let closed = app
        .patch(
            &format!("msdyn_ocliveworkitems({conversation})"),
            &json!({"statecode": 1, "statuscode": 4}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);
    ended(&app, &context, 2, "The conversation was closed.").await;

    // SetState-style: the state alone (its default status follows), to Resolved.
    let (context, conversation) = opened(&app, 3).await;
    let resolved = app
        .patch(
            &format!("msdyn_ocliveworkitems({conversation})"),
            &json!({"statecode": 2}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.status(), StatusCode::NO_CONTENT);
    let conversation_row = app
        .get_json(&format!("msdyn_ocliveworkitems({conversation})"))
        .await;
    assert_eq!(conversation_row["statuscode"], 6);
    assert_eq!(the_context(&app, &context).await["statecode"], 1);
    // Inside a $batch change set, with another part.
    let (context2, conversation2) = opened(&app, 4).await;
    assert_ne!(context2, context);
    let (status, body) = close_in_change_set(
        &app,
        &conversation2,
        &context2,
        json!({"msdyn_name": "renamed in the same change set"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.matches("HTTP/1.1 204").count(), 2, "{body}");
    let renamed = the_context(&app, &context2).await;
    assert_eq!(renamed["msdyn_name"], "renamed in the same change set");
    ended(&app, &context2, 5, "The conversation was closed.").await;

    // A PUT of the state property alone.
    let (context3, conversation3) = opened(&app, 6).await;
    let put = app
        .request(
            reqwest::Method::PUT,
            &format!("msdyn_ocliveworkitems({conversation3})/statecode"),
        )
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    ended(&app, &context3, 7, "The conversation was closed.").await;

    // A change set that fails rolls the close back: the context stays active.
    let (context4, conversation4) = opened(&app, 8).await;
    let before = transcript_of_context(&app, &the_context(&app, &context4).await).await;
    let (_, body) = close_in_change_set(
        &app,
        &conversation4,
        &context4,
        json!({"msdyn_smsprovider": 7}),
    )
    .await;
    assert!(body.contains("400 Bad Request"), "{body}");
    assert_eq!(the_context(&app, &context4).await["statecode"], 0);
    let conversation_row = app
        .get_json(&format!("msdyn_ocliveworkitems({conversation4})"))
        .await;
    assert_eq!(conversation_row["statecode"], 0);
    let messages = transcript_of_context(&app, &the_context(&app, &context4).await).await;
    assert_eq!(messages, before, "no system message of a rolled-back close");
    // An update that does not end the conversation leaves the context alone.
    let renamed = app
        .patch(
            &format!("msdyn_ocliveworkitems({conversation4})"),
            &json!({"subject": "still open"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::NO_CONTENT);
    assert_eq!(the_context(&app, &context4).await["statecode"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_resolved_conversation_says_so_in_its_transcript() {
    let app = spawn_app().await;
    add_twilio_channel(&app, ORG, json!({})).await;
    let (context, conversation) = opened(&app, 1).await;
    let resolved = app
        .patch(
            &format!("msdyn_ocliveworkitems({conversation})"),
            &json!({"statecode": 2, "statuscode": 6}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.status(), StatusCode::NO_CONTENT);
    ended(&app, &context, 2, "The conversation was resolved.").await;
    app.stop().await;
}

/// Sets a table's time column of every row to `minutes` ago (a state no request makes).
async fn age(db: &TestDatabase, table: &str, column: &str, minutes: i64) {
    let when = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - minutes * 60)
        .to_string();
    let statement = if db.is_postgres() {
        format!("UPDATE {table} SET {column} = to_timestamp(?1::text::bigint)")
    } else {
        format!("UPDATE {table} SET {column} = ?1")
    };
    execute_sql(db, &statement, &[&when]).await;
}

#[tokio::test]
async fn an_idle_conversation_is_closed_by_its_channels_timeout_and_only_then() {
    let db = TestDatabase::new().await;
    let mut config = config(&db);
    config.sms_inactivity_check_seconds = 1;
    let app = spawn_app_with(db, config).await;
    add_twilio_channel(&app, ORG, json!({"smsctx_inactivitytimeout": 30})).await;
    // The other number has no timeout (the default): its conversations stay open.
    add_twilio_channel(&app, ORG_2, json!({})).await;
    let channels = app.get_json("smsctx_smschannels").await;
    let timeouts: Vec<Value> = channels["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["smsctx_inactivitytimeout"].clone())
        .collect();
    assert_eq!(timeouts, [json!(30), Value::Null]);
    let other = post_twilio(
        &app.client,
        &twilio_url(&app),
        TOKEN_TWILIO,
        &twilio_params(CUSTOMER, ORG_2, &sid(99), "elsewhere"),
    )
    .await;
    assert_eq!(other.status(), StatusCode::OK);
    let (context, _) = opened(&app, 1).await;

    // Recent: nothing happens. Then everything is 31 minutes old.
    for (table, column) in [
        (CTX_TABLE, "createdon"),
        ("annotation", "modifiedon"),
        ("msdyn_ocliveworkitem", "modifiedon"),
    ] {
        age(&app.db, table, column, 31).await;
    }
    let mut row = the_context(&app, &context).await;
    for _ in 0..200 {
        if row["statecode"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        row = the_context(&app, &context).await;
    }
    assert_eq!(row["statecode"], 1, "closed by the timeout");
    let conversation = app
        .get_json(&format!(
            "msdyn_ocliveworkitems({})",
            row["_msdyn_liveworkitemid_value"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (
            conversation["statecode"].clone(),
            conversation["statuscode"].clone()
        ),
        (json!(1), json!(4))
    );
    let messages = transcript_of_context(&app, &row).await;
    assert_eq!(
        messages.last().unwrap()["content"],
        "The conversation was closed after 30 minutes without a message."
    );
    let active = app.get_json(&format!("{CTX}?$filter=statecode eq 0")).await;
    let active = active["value"].as_array().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["msdyn_orgphonenumber"], "14252306550");
    // A new message opens a new conversation.
    let (new_context, _) = opened(&app, 2).await;
    assert_ne!(new_context, context);
    app.stop().await;
}

#[tokio::test]
async fn the_root_answers_api_clients_in_json_pointing_at_the_web_api() {
    let app = spawn_app().await;
    let root = app.base.trim_end_matches("/api/data/v9.2/").to_owned();
    for accept in ["application/json", "*/*"] {
        let response = app
            .client
            .get(format!("{root}/"))
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        assert_error(
            response,
            StatusCode::NOT_FOUND,
            "0x80060888",
            "/api/data/v9.2/",
        )
        .await;
    }
    app.stop().await;
}
