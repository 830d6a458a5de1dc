//! A conversation's transcript as Omnichannel keeps it: a JSON array of messages, stored as
//! base64 in the `documentbody` of the transcript's note (Microsoft's "Download Omnichannel
//! transcripts in bulk" shows the structure). Every message has `content`, `contentType`,
//! `createdDateTime`, `from` (an `application` for system messages, a `user` for an agent, a
//! `phone` for an SMS customer), `likes`, `attachments`, `id` (the Unix time in milliseconds,
//! rising through the transcript), `created`, the null members and `tags`.
//!
//! smsctx writes three kinds: the customer's messages (`tags`: `messageId-<provider id>`), the
//! agents' replies (`public,messageId-<provider id>,deliveryStatus-<status>[,errorCode-<code>]`)
//! and system messages (`system`, from the `smsctx` application). A reply's delivery status
//! only moves forward ([`DeliveryStatus::advances`]), so a late or replayed report changes
//! nothing.
//!
//! Pure: no I/O, no store.

use base64::Engine as _;
use serde_json::{json, Value as Json};
use time::OffsetDateTime;
use uuid::Uuid;

/// The MIME type and file name of a transcript note.
pub const MIME_TYPE: &str = "application/json";
pub const FILE_NAME: &str = "transcript.json";

/// The application system messages come from.
const SYSTEM_APPLICATION: &str = "smsctx";
/// A fixed id for that application (UUID v5 of its name in the URL namespace).
const SYSTEM_APPLICATION_ID: Uuid = Uuid::from_u128(0x2c3e_5b7a_9d41_5f02_8c6e_1a4b_7d90_e3f5);

const MESSAGE_ID_TAG: &str = "messageId-";
const STATUS_TAG: &str = "deliveryStatus-";
const ERROR_TAG: &str = "errorCode-";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptError {
    #[error("the stored transcript is not base64: {0}")]
    NotBase64(String),
    #[error("the stored transcript is not a JSON array of messages: {0}")]
    NotJson(String),
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy)]
pub enum Author<'a> {
    /// The SMS customer: the number as E.164 and in Omnichannel's stored form.
    Customer { e164: &'a str, number: &'a str },
    /// An agent (the user who called `smsctx_SendSms`).
    Agent { name: &'a str, id: Uuid },
    /// smsctx itself: conversation events.
    System,
}

/// The delivery status of a reply, as the providers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Delivered,
    Undelivered,
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Undelivered,
        DeliveryStatus::Failed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Undelivered => "undelivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// A label this module wrote.
    pub fn parse(label: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|s| s.label() == label)
    }

    /// Twilio's `MessageStatus` of an outbound message: `accepted`, `scheduled`, `queued` and
    /// `sending` are queued; `read` (WhatsApp, RCS) is delivered; `canceled` is failed.
    /// `receiving`/`received` belong to inbound messages: `None`.
    pub fn from_twilio(status: &str) -> Option<DeliveryStatus> {
        Some(match status.trim().to_ascii_lowercase().as_str() {
            "accepted" | "scheduled" | "queued" | "sending" => DeliveryStatus::Queued,
            "sent" => DeliveryStatus::Sent,
            "delivered" | "read" => DeliveryStatus::Delivered,
            "undelivered" => DeliveryStatus::Undelivered,
            "failed" | "canceled" => DeliveryStatus::Failed,
            _ => return None,
        })
    }

    /// TeleSign's delivery report `status.code`: 200 delivered to handset, 203 delivered to
    /// gateway (sent), 250 final status unknown (sent: the gateway had it), 290 to 295 in
    /// progress (queued); every other code is a final failure.
    pub fn from_telesign(code: i64) -> DeliveryStatus {
        match code {
            200 => DeliveryStatus::Delivered,
            203 | 250 => DeliveryStatus::Sent,
            290..=295 => DeliveryStatus::Queued,
            _ => DeliveryStatus::Failed,
        }
    }

    /// Queued, then sent, then one final state.
    fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Queued => 1,
            DeliveryStatus::Sent => 2,
            DeliveryStatus::Delivered | DeliveryStatus::Undelivered | DeliveryStatus::Failed => 3,
        }
    }

    /// Whether a report of `self` moves a message that is at `current`: only to a later
    /// stage, so a late "sent" never overwrites "delivered", and the first final state stays.
    pub fn advances(self, current: Option<DeliveryStatus>) -> bool {
        current.is_none_or(|c| self.rank() > c.rank())
    }
}

/// The messages of one transcript, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    messages: Vec<Json>,
}

impl Transcript {
    /// A stored `documentbody` (none or empty: no messages yet).
    pub fn decode(document_body: Option<&str>) -> Result<Transcript, TranscriptError> {
        let Some(text) = document_body.filter(|t| !t.trim().is_empty()) else {
            return Ok(Transcript::default());
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| TranscriptError::NotBase64(e.to_string()))?;
        let messages: Vec<Json> =
            serde_json::from_slice(&bytes).map_err(|e| TranscriptError::NotJson(e.to_string()))?;
        Ok(Transcript { messages })
    }

    /// The JSON document (what `documentbody` holds, before base64).
    pub fn to_json(&self) -> String {
        Json::Array(self.messages.clone()).to_string()
    }

    /// The `documentbody` value.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_json())
    }

    pub fn messages(&self) -> &[Json] {
        &self.messages
    }

    /// Appends a message written at `at_ms` (Unix milliseconds). Its id is that time, or one
    /// more than the last message's when that is not earlier, so ids rise through the
    /// transcript and stay unique.
    pub fn push(&mut self, at_ms: i64, author: Author<'_>, content: &str, tags: &str) {
        let last = self
            .messages
            .last()
            .and_then(|m| m.get("id"))
            .and_then(Json::as_str)
            .and_then(|id| id.parse::<i64>().ok());
        let at_ms = match last {
            Some(last) if last >= at_ms => last + 1,
            _ => at_ms,
        };
        let from = match author {
            Author::Customer { e164, number } => from(None, None, Some((e164, number.to_owned()))),
            Author::Agent { name, id } => from(None, Some((name, id.to_string())), None),
            Author::System => from(
                Some((SYSTEM_APPLICATION, SYSTEM_APPLICATION_ID.to_string())),
                None,
                None,
            ),
        };
        self.messages.push(json!({
            "content": content,
            "contentType": "text",
            "createdDateTime": timestamp(at_ms, "+00:00"),
            "from": from,
            "likes": [],
            "attachments": [],
            "id": at_ms.to_string(),
            "created": timestamp(at_ms, "Z"),
            "culture": null,
            "deleted": null,
            "important": null,
            "modified": null,
            "modifiedDateTime": null,
            "tags": tags,
            "deliveryMode": "unbridged",
        }));
    }

    /// Sets the delivery status of the reply the provider knows as `message_id`, when it
    /// advances; returns whether the transcript changed.
    pub fn set_delivery(
        &mut self,
        message_id: &str,
        status: DeliveryStatus,
        error_code: Option<&str>,
    ) -> bool {
        let wanted = format!("{MESSAGE_ID_TAG}{message_id}");
        let Some(message) = self.messages.iter_mut().rev().find(|m| {
            m.get("tags")
                .and_then(Json::as_str)
                .is_some_and(|t| t.split(',').any(|tag| tag == wanted) && is_reply(t))
        }) else {
            return false;
        };
        let tags = message
            .get("tags")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        if !status.advances(status_of_tags(&tags)) {
            return false;
        }
        let kept = tags
            .split(',')
            .filter(|t| !t.starts_with(STATUS_TAG) && !t.starts_with(ERROR_TAG))
            .map(str::to_owned);
        let mut next: Vec<String> = kept.collect();
        next.push(format!("{STATUS_TAG}{}", status.label()));
        if let Some(code) = error_code.filter(|c| !c.trim().is_empty()) {
            next.push(format!("{ERROR_TAG}{}", code.trim()));
        }
        message["tags"] = Json::String(next.join(","));
        true
    }
}

/// The tags of a customer's message.
pub fn inbound_tags(message_id: &str) -> String {
    format!("{MESSAGE_ID_TAG}{message_id}")
}

/// The tags of an agent's reply: public, the provider's id when it gave one, its status.
pub fn reply_tags(
    message_id: Option<&str>,
    status: DeliveryStatus,
    error_code: Option<&str>,
) -> String {
    let mut tags = vec!["public".to_owned()];
    if let Some(id) = message_id {
        tags.push(format!("{MESSAGE_ID_TAG}{id}"));
    }
    tags.push(format!("{STATUS_TAG}{}", status.label()));
    if let Some(code) = error_code.filter(|c| !c.trim().is_empty()) {
        tags.push(format!("{ERROR_TAG}{}", code.trim()));
    }
    tags.join(",")
}

/// The tags of a system message.
pub const SYSTEM_TAGS: &str = "system";

/// The delivery status a message's tags record.
pub fn status_of_tags(tags: &str) -> Option<DeliveryStatus> {
    tags.split(',')
        .find_map(|t| t.strip_prefix(STATUS_TAG))
        .and_then(DeliveryStatus::parse)
}

fn is_reply(tags: &str) -> bool {
    tags.split(',').next() == Some("public")
}

/// Omnichannel's `from` object: one of its members set, the others null.
fn from(
    application: Option<(&str, String)>,
    user: Option<(&str, String)>,
    phone: Option<(&str, String)>,
) -> Json {
    let identity =
        |who: Option<(&str, String)>| who.map(|(name, id)| json!({"displayName": name, "id": id}));
    json!({
        "application": identity(application),
        "user": identity(user),
        "phone": identity(phone),
        "guest": null,
        "encrypted": null,
        "onPremises": null,
        "azureApplicationInstance": null,
        "applicationInstance": null,
        "device": null,
    })
}

/// `2020-05-19T04:40:36.124` and the given offset suffix.
fn timestamp(at_ms: i64, suffix: &str) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{suffix}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> Author<'static> {
        Author::Customer {
            e164: "+12015550123",
            number: "12015550123",
        }
    }

    #[test]
    fn messages_round_trip_through_base64_in_order_with_rising_ids() {
        let mut t = Transcript::default();
        t.push(1_589_863_236_124, customer(), "hello", &inbound_tags("SM1"));
        t.push(
            1_589_863_236_000,
            Author::System,
            "later but clock behind",
            SYSTEM_TAGS,
        );
        let back = Transcript::decode(Some(&t.encode())).unwrap();
        assert_eq!(back, t);
        let m = back.messages();
        assert_eq!(m[0]["id"], "1589863236124");
        assert_eq!(m[1]["id"], "1589863236125");
        assert_eq!(m[0]["createdDateTime"], "2020-05-19T04:40:36.124+00:00");
        assert_eq!(m[0]["created"], "2020-05-19T04:40:36.124Z");
        assert_eq!(m[0]["from"]["phone"]["displayName"], "+12015550123");
        assert!(m[0]["from"]["user"].is_null());
        assert_eq!(m[1]["from"]["application"]["displayName"], "smsctx");
        assert_eq!(m[1]["tags"], "system");
        assert_eq!(Transcript::decode(None).unwrap().messages().len(), 0);
        assert!(Transcript::decode(Some("%%")).is_err());
    }

    #[test]
    fn delivery_only_moves_forward() {
        let mut t = Transcript::default();
        let agent = Author::Agent {
            name: "Alan",
            id: Uuid::nil(),
        };
        t.push(
            1,
            agent,
            "hi",
            &reply_tags(Some("SMa"), DeliveryStatus::Queued, None),
        );
        t.push(2, customer(), "hi back", &inbound_tags("SMa"));
        assert!(t.set_delivery("SMa", DeliveryStatus::Delivered, None));
        assert!(!t.set_delivery("SMa", DeliveryStatus::Sent, None));
        assert!(!t.set_delivery("SMa", DeliveryStatus::Delivered, None));
        assert!(!t.set_delivery("SMa", DeliveryStatus::Failed, Some("30003")));
        assert!(!t.set_delivery("SMother", DeliveryStatus::Sent, None));
        assert_eq!(
            t.messages()[0]["tags"],
            "public,messageId-SMa,deliveryStatus-delivered"
        );
        // The customer's message with the same provider id is not a reply: untouched.
        assert_eq!(t.messages()[1]["tags"], "messageId-SMa");
        let mut u = Transcript::default();
        u.push(
            1,
            agent,
            "x",
            &reply_tags(Some("SMb"), DeliveryStatus::Sent, None),
        );
        assert!(u.set_delivery("SMb", DeliveryStatus::Undelivered, Some("30003")));
        assert_eq!(
            u.messages()[0]["tags"],
            "public,messageId-SMb,deliveryStatus-undelivered,errorCode-30003"
        );
    }

    #[test]
    fn provider_statuses() {
        assert_eq!(
            DeliveryStatus::from_twilio("sending"),
            Some(DeliveryStatus::Queued)
        );
        assert_eq!(
            DeliveryStatus::from_twilio("Delivered"),
            Some(DeliveryStatus::Delivered)
        );
        assert_eq!(DeliveryStatus::from_twilio("received"), None);
        assert_eq!(
            DeliveryStatus::from_telesign(200),
            DeliveryStatus::Delivered
        );
        assert_eq!(DeliveryStatus::from_telesign(203), DeliveryStatus::Sent);
        assert_eq!(DeliveryStatus::from_telesign(290), DeliveryStatus::Queued);
        assert_eq!(DeliveryStatus::from_telesign(207), DeliveryStatus::Failed);
        assert!(DeliveryStatus::Sent.advances(Some(DeliveryStatus::Queued)));
        assert!(!DeliveryStatus::Sent.advances(Some(DeliveryStatus::Delivered)));
    }
}
