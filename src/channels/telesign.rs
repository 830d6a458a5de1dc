//! TeleSign's inbound-SMS (mobile-originated, "MO") callback: its authentication and its JSON.
//!
//! # What TeleSign documents
//!
//! *Authentication* (TeleSign developer portal, "Authenticate callbacks"): every callback
//! carries two headers, `Authorization` and `X-TS-Authorization`. The signature covers the raw
//! request body only (no URL, method or date, unlike requests sent *to* TeleSign): it is
//! `base64(HMAC-SHA256(base64-decode(API key), UTF-8 body))`, and the `Authorization` value is
//! `TSA <customer id>:<signature>`. HMAC-SHA256 is the only method TeleSign supports today.
//! [`validate_callback`] checks the `Authorization` form, including the customer id;
//! [`validate_x_ts_authorization`] accepts the second header, which third-party summaries of the
//! same page describe as carrying the bare signature, in either spelling.
//!
//! *Payload* (TeleSign "Inbound SMS" guide and the Messaging "Receive inbound SMS callbacks"
//! reference): a JSON object with `reference_id` (TeleSign's 32-hex-digit id of the MO message,
//! used to de-duplicate retries), `status` (`code`, `description`, `updated_on`),
//! `submit_timestamp`, `sub_resource` (`"mo_sms"` for an inbound SMS), `errors`, and
//! `user_response` with `phone_number` (the end user's number, country code included, no `+`,
//! e.g. `"11234567890"`), `sender_id` (the organisation's long or short code the message was
//! sent to), `mo_message` (the text) and, optionally, `iso_country_code`, `keyword`, `action`
//! and `price`. TeleSign expects HTTP 200 and retries anything else, so delivery reports sent to
//! the same URL are recognised ([`TeleSignError::NotInboundSms`]) so the edge can acknowledge
//! them without acting.
//!
//! **Architecture invariant:** no I/O, no panics; a signature check answers `true` or `false`,
//! and the comparison is constant time.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{constant_time_eq, MAX_CALLBACK_BYTES};

/// The `Authorization` scheme TeleSign uses.
pub const AUTHORIZATION_SCHEME: &str = "TSA";

/// The second header TeleSign sends with each callback.
pub const X_TS_AUTHORIZATION_HEADER: &str = "X-TS-Authorization";

/// The `sub_resource` of an inbound SMS.
pub const MO_SMS_SUB_RESOURCE: &str = "mo_sms";

/// The longest authorization header considered.
const MAX_HEADER_CHARS: usize = 512;

/// The longest `reference_id` accepted; TeleSign's are 32 hex digits.
const MAX_REFERENCE_ID_CHARS: usize = 64;

/// Why a TeleSign callback or credential cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeleSignError {
    #[error("the TeleSign API key is not valid base64")]
    InvalidApiKey,
    #[error("the TeleSign API key is empty")]
    EmptyApiKey,
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the TeleSign callback is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the TeleSign callback is not an inbound SMS (sub_resource {0:?})")]
    NotInboundSms(Option<String>),
    #[error("the TeleSign callback has no '{0}' field")]
    MissingField(&'static str),
    #[error(
        "the TeleSign callback is neither an inbound SMS (reference_id, user_response with \
         phone_number, sender_id and mo_message) nor a delivery report (reference_id and status)"
    )]
    UnknownShape,
    #[error("the TeleSign callback field '{field}' is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
}

/// Decodes a TeleSign API key as the portal shows it (standard base64). Use it when a channel is
/// configured, so a mistyped key is refused then rather than failing every callback later.
pub fn decode_api_key(api_key_b64: &str) -> Result<Vec<u8>, TeleSignError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(api_key_b64.trim())
        .map_err(|_| TeleSignError::InvalidApiKey)?;
    if key.is_empty() {
        return Err(TeleSignError::EmptyApiKey);
    }
    Ok(key)
}

/// The `Authorization` header value TeleSign sends with `raw_body`:
/// `TSA <customer id>:<base64 HMAC-SHA256>`.
pub fn sign_callback(
    customer_id: &str,
    api_key_b64: &str,
    raw_body: &[u8],
) -> Result<String, TeleSignError> {
    let key = decode_api_key(api_key_b64)?;
    let signature = base64::engine::general_purpose::STANDARD.encode(mac(&key, raw_body));
    Ok(format!("{AUTHORIZATION_SCHEME} {customer_id}:{signature}"))
}

/// Validates the `Authorization` header of a callback: scheme `TSA` (any case), the configured
/// customer id (GUIDs compare without regard to case), and the body's signature. A missing,
/// garbled or mismatched header, an unusable API key or an empty customer id answer `false`.
pub fn validate_callback(
    customer_id: &str,
    api_key_b64: &str,
    raw_body: &[u8],
    authorization_header: &str,
) -> bool {
    let customer_id = customer_id.trim();
    if customer_id.is_empty() {
        return false;
    }
    let Some((claimed_id, signature)) = split_authorization(authorization_header) else {
        return false;
    };
    let id_ok = claimed_id.eq_ignore_ascii_case(customer_id);
    let signature_ok = signature_matches(api_key_b64, raw_body, signature);
    id_ok & signature_ok
}

/// Validates the `X-TS-Authorization` header: the bare signature, or the same
/// `TSA <customer id>:<signature>` form as `Authorization` (whose customer id is then not
/// checked; use [`validate_callback`] for that).
pub fn validate_x_ts_authorization(api_key_b64: &str, raw_body: &[u8], header: &str) -> bool {
    let header = header.trim();
    if header.len() > MAX_HEADER_CHARS {
        return false;
    }
    let signature = match split_authorization(header) {
        Some((_, signature)) => signature,
        None => header,
    };
    signature_matches(api_key_b64, raw_body, signature)
}

/// An inbound SMS as TeleSign reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeleSignInbound {
    /// TeleSign's id of this MO message: the de-duplication key of a delivery.
    pub reference_id: String,
    /// The customer's number, digits with country code and no `+` (`user_response.phone_number`).
    pub from: String,
    /// The organisation's long or short code the customer wrote to (`user_response.sender_id`).
    pub to: String,
    /// The message text (`user_response.mo_message`); may be empty.
    pub body: String,
    /// The customer number's country (`user_response.iso_country_code`), when sent.
    pub iso_country_code: Option<String>,
    /// When TeleSign received the message (`submit_timestamp`, ISO 8601), when sent.
    pub submit_timestamp: Option<String>,
    /// `status.code`, when sent.
    pub status_code: Option<i64>,
    /// The keyword TeleSign's keyword handling matched (`user_response.keyword`), when sent.
    pub keyword: Option<String>,
    /// The action tied to that keyword (`start`, `stop`, `help`, `generic`), when sent.
    pub action: Option<String>,
}

impl TeleSignInbound {
    /// Reads a callback body. A body without `user_response` whose `sub_resource` is not
    /// `mo_sms`, or a delivery report (`reference_id` and `status`, no `sub_resource`), is
    /// [`TeleSignError::NotInboundSms`]; any other shape is [`TeleSignError::UnknownShape`].
    pub fn from_json(raw_body: &[u8]) -> Result<TeleSignInbound, TeleSignError> {
        if raw_body.len() > MAX_CALLBACK_BYTES {
            return Err(TeleSignError::BodyTooLarge {
                limit: MAX_CALLBACK_BYTES,
            });
        }
        let wire: WireCallback = serde_json::from_slice(raw_body)
            .map_err(|error| TeleSignError::InvalidJson(error.to_string()))?;

        if let Some(sub_resource) = &wire.sub_resource {
            if sub_resource != MO_SMS_SUB_RESOURCE {
                return Err(TeleSignError::NotInboundSms(Some(sub_resource.clone())));
            }
        }
        let Some(user) = wire.user_response else {
            return match wire.sub_resource {
                Some(_) => Err(TeleSignError::MissingField("user_response")),
                None if wire.reference_id.is_some() && wire.status.is_some() => {
                    Err(TeleSignError::NotInboundSms(None))
                }
                None => Err(TeleSignError::UnknownShape),
            };
        };

        let reference_id = wire
            .reference_id
            .ok_or(TeleSignError::MissingField("reference_id"))?;
        let reference_id = reference_id.trim().to_owned();
        if reference_id.is_empty() {
            return Err(invalid("reference_id", "it is empty"));
        }
        if reference_id.chars().count() > MAX_REFERENCE_ID_CHARS
            || !reference_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "reference_id",
                &format!("it must be letters and digits, at most {MAX_REFERENCE_ID_CHARS}"),
            ));
        }
        let from = user
            .phone_number
            .ok_or(TeleSignError::MissingField("user_response.phone_number"))?;
        if from.trim().is_empty() {
            return Err(invalid("user_response.phone_number", "it is empty"));
        }
        let to = user
            .sender_id
            .ok_or(TeleSignError::MissingField("user_response.sender_id"))?;
        if to.trim().is_empty() {
            return Err(invalid("user_response.sender_id", "it is empty"));
        }
        let body = user
            .mo_message
            .ok_or(TeleSignError::MissingField("user_response.mo_message"))?;

        Ok(TeleSignInbound {
            reference_id,
            from: from.trim().to_owned(),
            to: to.trim().to_owned(),
            body,
            iso_country_code: user.iso_country_code,
            submit_timestamp: wire.submit_timestamp,
            status_code: wire.status.and_then(|status| status.code),
            keyword: user.keyword,
            action: user.action,
        })
    }
}

/// The callback as it travels; every field optional so that absence gets a clear error.
#[derive(Deserialize)]
struct WireCallback {
    reference_id: Option<String>,
    status: Option<WireStatus>,
    submit_timestamp: Option<String>,
    sub_resource: Option<String>,
    user_response: Option<WireUserResponse>,
}

/// A delivery report of a message smsctx sent: `reference_id` (the id the SMS API answered)
/// and `status.code` (200 delivered, 203 delivered to gateway, 290 in progress, the other codes
/// final failures; TeleSign's "Receive SMS delivery reports" lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeleSignDeliveryReport {
    pub reference_id: String,
    pub status_code: i64,
}

impl TeleSignDeliveryReport {
    /// Reads a callback body that [`TeleSignInbound::from_json`] found to be no inbound SMS:
    /// one without `sub_resource` (or another than `mo_sms`) carrying `reference_id` and
    /// `status.code`; [`TeleSignError::NotInboundSms`] for any other callback.
    pub fn from_json(raw_body: &[u8]) -> Result<TeleSignDeliveryReport, TeleSignError> {
        if raw_body.len() > MAX_CALLBACK_BYTES {
            return Err(TeleSignError::BodyTooLarge {
                limit: MAX_CALLBACK_BYTES,
            });
        }
        let wire: WireCallback = serde_json::from_slice(raw_body)
            .map_err(|error| TeleSignError::InvalidJson(error.to_string()))?;
        let (Some(reference_id), Some(code)) =
            (wire.reference_id, wire.status.and_then(|s| s.code))
        else {
            return Err(TeleSignError::NotInboundSms(wire.sub_resource));
        };
        let reference_id = reference_id.trim().to_owned();
        if reference_id.is_empty()
            || reference_id.chars().count() > MAX_REFERENCE_ID_CHARS
            || !reference_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "reference_id",
                &format!("it must be letters and digits, at most {MAX_REFERENCE_ID_CHARS}"),
            ));
        }
        Ok(TeleSignDeliveryReport {
            reference_id,
            status_code: code,
        })
    }
}

#[derive(Deserialize)]
struct WireStatus {
    code: Option<i64>,
}

#[derive(Deserialize)]
struct WireUserResponse {
    phone_number: Option<String>,
    sender_id: Option<String>,
    mo_message: Option<String>,
    iso_country_code: Option<String>,
    keyword: Option<String>,
    action: Option<String>,
}

fn invalid(field: &'static str, reason: &str) -> TeleSignError {
    TeleSignError::InvalidField {
        field,
        reason: reason.to_owned(),
    }
}

/// Splits `TSA <customer id>:<signature>` into its customer id and signature.
fn split_authorization(header: &str) -> Option<(&str, &str)> {
    let header = header.trim();
    if header.is_empty() || header.len() > MAX_HEADER_CHARS {
        return None;
    }
    let (scheme, credentials) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case(AUTHORIZATION_SCHEME) {
        return None;
    }
    let (customer_id, signature) = credentials.trim().split_once(':')?;
    let (customer_id, signature) = (customer_id.trim(), signature.trim());
    if customer_id.is_empty() || signature.is_empty() {
        return None;
    }
    Some((customer_id, signature))
}

/// Whether the base64 `signature` is the HMAC-SHA256 of `raw_body` under the API key.
fn signature_matches(api_key_b64: &str, raw_body: &[u8], signature: &str) -> bool {
    let Ok(key) = decode_api_key(api_key_b64) else {
        return false;
    };
    let Ok(claimed) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    constant_time_eq(&mac(&key, raw_body), &claimed)
}

fn mac(key: &[u8], raw_body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `decode_api_key` has already refused an empty one.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(raw_body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The customer id and API key are the examples printed on TeleSign's "Authenticate
    // callbacks" page. The body follows the "Receive inbound SMS callbacks" schema. The
    // expected signature was computed independently with Python's standard library:
    // base64.b64encode(hmac.new(base64.b64decode(KEY), BODY, hashlib.sha256).digest())
    // and cross-checked with `openssl dgst -sha256 -mac HMAC -macopt hexkey:…`.
    const CUSTOMER_ID: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
    const API_KEY: &str =
        "ABC12345yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
    const BODY: &str = concat!(
        r#"{"reference_id":"0123456789ABCDEF0123456789ABCDEF","#,
        r#""status":{"code":1500,"description":"Delivered","updated_on":"2023-10-31T14:47:10.490130Z"},"#,
        r#""submit_timestamp":"2023-10-31T14:47:10.154000Z","sub_resource":"mo_sms","errors":{},"#,
        r#""user_response":{"sender_id":"14252306549","iso_country_code":"US","#,
        r#""phone_number":"12015550123","mo_message":"Hello, I need help"}}"#
    );
    const SIGNATURE: &str = "WVCNKs8++Dqp674P/HA7g148M254+pkp8qYMV/DzTHM=";

    fn header() -> String {
        format!("TSA {CUSTOMER_ID}:{SIGNATURE}")
    }

    #[test]
    fn independent_vector_signs_and_validates() {
        assert_eq!(
            sign_callback(CUSTOMER_ID, API_KEY, BODY.as_bytes()).unwrap(),
            header()
        );
        assert!(validate_callback(
            CUSTOMER_ID,
            API_KEY,
            BODY.as_bytes(),
            &header()
        ));
        assert!(validate_x_ts_authorization(
            API_KEY,
            BODY.as_bytes(),
            SIGNATURE
        ));
        assert!(validate_x_ts_authorization(
            API_KEY,
            BODY.as_bytes(),
            &header()
        ));
    }

    #[test]
    fn header_spelling_is_tolerated_where_harmless() {
        let body = BODY.as_bytes();
        let lower_id = CUSTOMER_ID.to_ascii_lowercase();
        for header in [
            format!("tsa {CUSTOMER_ID}:{SIGNATURE}"),
            format!("  TSA   {CUSTOMER_ID}:{SIGNATURE}  "),
            format!("TSA {lower_id}:{SIGNATURE}"),
        ] {
            assert!(
                validate_callback(CUSTOMER_ID, API_KEY, body, &header),
                "{header}"
            );
        }
    }

    #[test]
    fn tampering_is_rejected() {
        let body = BODY.as_bytes();
        let tampered = BODY.replace("I need help", "I need help!");
        assert!(!validate_callback(
            CUSTOMER_ID,
            API_KEY,
            tampered.as_bytes(),
            &header()
        ));
        // One more byte of whitespace is a different body.
        let padded = format!("{BODY} ");
        assert!(!validate_callback(
            CUSTOMER_ID,
            API_KEY,
            padded.as_bytes(),
            &header()
        ));
        // Another customer id in the header, or configured.
        let other_id = "FFFFFFFF-EEEE-DDDD-1234-AB1234567891";
        assert!(!validate_callback(other_id, API_KEY, body, &header()));
        let claimed_other = format!("TSA {other_id}:{SIGNATURE}");
        assert!(!validate_callback(
            CUSTOMER_ID,
            API_KEY,
            body,
            &claimed_other
        ));
        // Another key.
        let other_key = base64::engine::general_purpose::STANDARD.encode(b"another key");
        assert!(!validate_callback(CUSTOMER_ID, &other_key, body, &header()));
        assert!(!validate_x_ts_authorization(&other_key, body, SIGNATURE));
        // The key used as text rather than decoded.
        let text_key = base64::engine::general_purpose::STANDARD.encode(API_KEY);
        assert!(!validate_callback(CUSTOMER_ID, &text_key, body, &header()));
        // A signature made by the right key over another body.
        let forged = sign_callback(CUSTOMER_ID, API_KEY, b"{}").unwrap();
        assert!(!validate_callback(CUSTOMER_ID, API_KEY, body, &forged));
    }

    #[test]
    fn missing_or_garbled_headers_are_rejected() {
        let body = BODY.as_bytes();
        for header in [
            String::new(),
            "   ".into(),
            "TSA".into(),
            "TSA ".into(),
            format!("TSA {CUSTOMER_ID}"),
            format!("TSA {CUSTOMER_ID}:"),
            format!("TSA :{SIGNATURE}"),
            format!("Basic {CUSTOMER_ID}:{SIGNATURE}"),
            format!("Bearer {SIGNATURE}"),
            format!("TSA{CUSTOMER_ID}:{SIGNATURE}"),
            format!("TSA {CUSTOMER_ID}:{}", &SIGNATURE[..43]),
            format!("TSA {CUSTOMER_ID}:{SIGNATURE}{SIGNATURE}"),
            format!("TSA {CUSTOMER_ID}:not*base64"),
            format!("TSA {CUSTOMER_ID}:{}", SIGNATURE.to_ascii_lowercase()),
            "TSA \u{0}:\u{1}".into(),
            "TSA é:ü".into(),
            format!("TSA {CUSTOMER_ID}:{}", "A".repeat(10_000)),
        ] {
            assert!(
                !validate_callback(CUSTOMER_ID, API_KEY, body, &header),
                "{header:?}"
            );
        }
        assert!(!validate_x_ts_authorization(API_KEY, body, ""));
        assert!(!validate_x_ts_authorization(API_KEY, body, "garbage"));
        assert!(!validate_x_ts_authorization(
            API_KEY,
            body,
            &"A".repeat(100_000)
        ));
    }

    #[test]
    fn unusable_credentials_never_validate() {
        let body = BODY.as_bytes();
        assert!(!validate_callback("", API_KEY, body, &header()));
        assert!(!validate_callback("  ", API_KEY, body, &header()));
        assert!(!validate_callback(CUSTOMER_ID, "", body, &header()));
        assert!(!validate_callback(
            CUSTOMER_ID,
            "not base64!",
            body,
            &header()
        ));
        assert_eq!(decode_api_key(""), Err(TeleSignError::EmptyApiKey));
        assert_eq!(decode_api_key("%%%"), Err(TeleSignError::InvalidApiKey));
        assert_eq!(
            sign_callback(CUSTOMER_ID, "%%%", body),
            Err(TeleSignError::InvalidApiKey)
        );
        assert_eq!(decode_api_key(API_KEY).unwrap().len(), 55);
    }

    #[test]
    fn inbound_sms_is_read() {
        let inbound = TeleSignInbound::from_json(BODY.as_bytes()).unwrap();
        assert_eq!(
            inbound,
            TeleSignInbound {
                reference_id: "0123456789ABCDEF0123456789ABCDEF".into(),
                from: "12015550123".into(),
                to: "14252306549".into(),
                body: "Hello, I need help".into(),
                iso_country_code: Some("US".into()),
                submit_timestamp: Some("2023-10-31T14:47:10.154000Z".into()),
                status_code: Some(1500),
                keyword: None,
                action: None,
            }
        );
        // The numbers are in the digits-only form the phone module reads directly.
        let from = super::super::phone::PhoneNumber::parse_omnichannel(&inbound.from).unwrap();
        assert_eq!(from.omnichannel_form(), "12015550123");
    }

    #[test]
    fn minimal_inbound_sms_and_unknown_fields() {
        let body = br#"{"reference_id":"ABC","user_response":{"phone_number":"12015550123",
            "sender_id":"4442","mo_message":"","keyword":"stop","action":"stop",
            "price":"0.01"},"something_new":[1,2,3]}"#;
        let inbound = TeleSignInbound::from_json(body).unwrap();
        assert_eq!(inbound.to, "4442");
        assert_eq!(inbound.body, "");
        assert_eq!(inbound.keyword.as_deref(), Some("stop"));
        assert_eq!(inbound.status_code, None);
    }

    #[test]
    fn delivery_reports_are_recognised() {
        let report = br#"{"reference_id":"B56259E45884010488343BAA15FB0002",
            "status":{"code":200,"description":"Delivered to handset",
            "updated_on":"2016-10-21T14:05:36.181346Z"}}"#;
        assert_eq!(
            TeleSignInbound::from_json(report),
            Err(TeleSignError::NotInboundSms(None))
        );
        let bulk = br#"{"reference_id":"0123456789ABCDEF0123456789ABCDEF",
            "status":{"code":200,"description":"Delivered to handset"},"sub_resource":"bulk_sms"}"#;
        assert_eq!(
            TeleSignInbound::from_json(bulk),
            Err(TeleSignError::NotInboundSms(Some("bulk_sms".into())))
        );
        // Anything else is not acknowledged as a report: it is malformed.
        for other in [
            &br#"{}"#[..],
            br#"{"to":"+14252306549","message":"hi"}"#,
            br#"{"reference_id":"B56259E45884010488343BAA15FB0002"}"#,
        ] {
            assert_eq!(
                TeleSignInbound::from_json(other),
                Err(TeleSignError::UnknownShape)
            );
        }
    }

    #[test]
    fn inbound_errors_are_clear() {
        let check = |body: &str, expected: TeleSignError| {
            assert_eq!(
                TeleSignInbound::from_json(body.as_bytes()),
                Err(expected),
                "{body}"
            );
        };
        check(
            r#"{"sub_resource":"mo_sms"}"#,
            TeleSignError::MissingField("user_response"),
        );
        check(
            r#"{"user_response":{"phone_number":"1","sender_id":"2","mo_message":"m"}}"#,
            TeleSignError::MissingField("reference_id"),
        );
        check(
            r#"{"reference_id":"A","user_response":{"sender_id":"2","mo_message":"m"}}"#,
            TeleSignError::MissingField("user_response.phone_number"),
        );
        check(
            r#"{"reference_id":"A","user_response":{"phone_number":"1","mo_message":"m"}}"#,
            TeleSignError::MissingField("user_response.sender_id"),
        );
        check(
            r#"{"reference_id":"A","user_response":{"phone_number":"1","sender_id":"2"}}"#,
            TeleSignError::MissingField("user_response.mo_message"),
        );
        check(
            r#"{"reference_id":" ","user_response":{"phone_number":"1","sender_id":"2","mo_message":""}}"#,
            invalid("reference_id", "it is empty"),
        );
        check(
            r#"{"reference_id":"A","user_response":{"phone_number":" ","sender_id":"2","mo_message":""}}"#,
            invalid("user_response.phone_number", "it is empty"),
        );
        let error = TeleSignInbound::from_json(
            br#"{"reference_id":"x' OR 1=1","user_response":{"phone_number":"1","sender_id":"2","mo_message":""}}"#,
        )
        .unwrap_err();
        assert!(matches!(
            error,
            TeleSignError::InvalidField {
                field: "reference_id",
                ..
            }
        ));
        assert_eq!(
            TeleSignError::MissingField("user_response.sender_id").to_string(),
            "the TeleSign callback has no 'user_response.sender_id' field"
        );
    }

    #[test]
    fn garbled_and_oversized_bodies_are_refused() {
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"\"text\"",
            b"{",
            b"\xff\xfe",
            br#"{"reference_id":5,"user_response":{}}"#,
            br#"{"reference_id":"A","user_response":"text"}"#,
            br#"{"reference_id":"A","status":"ok","user_response":{"phone_number":"1","sender_id":"2","mo_message":""}}"#,
        ] {
            assert!(
                matches!(TeleSignInbound::from_json(body), Err(TeleSignError::InvalidJson(_))),
                "{body:?}"
            );
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(TeleSignInbound::from_json(deep.as_bytes()).is_err());
        let big = vec![b' '; MAX_CALLBACK_BYTES + 1];
        assert_eq!(
            TeleSignInbound::from_json(&big),
            Err(TeleSignError::BodyTooLarge {
                limit: MAX_CALLBACK_BYTES
            })
        );
    }
}
