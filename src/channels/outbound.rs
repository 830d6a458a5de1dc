//! Outbound SMS: the exact HTTP request each provider's API expects, built without I/O (the
//! executor sends it).
//!
//! * **Twilio** Messages API: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`,
//!   HTTP Basic auth `AccountSid:AuthToken`, form fields `To`, `From` (E.164) and `Body`. The
//!   answer is the Message resource as JSON; its `sid` identifies the message.
//! * **TeleSign** SMS API: `POST {base}/v1/messaging`, HTTP Basic auth `customer_id:api_key`,
//!   form fields `phone_number` (country code and number, digits only), `message` and
//!   `message_type` (`ARN`: alerts, reminders, notifications, the type for conversational
//!   replies). The answer is JSON with a `reference_id`.
//!
//! **Architecture invariant:** no I/O; the base URL is a parameter, so tests point it at a local
//! fake provider.

use base64::Engine as _;

use super::phone::PhoneNumber;

/// Twilio's API host.
pub const TWILIO_API_BASE: &str = "https://api.twilio.com";
/// TeleSign's REST API host.
pub const TELESIGN_API_BASE: &str = "https://rest-api.telesign.com";
/// The TeleSign message type of a conversational reply.
pub const TELESIGN_MESSAGE_TYPE: &str = "ARN";
/// The longest message text accepted: Twilio's limit of 1,600 characters.
pub const MAX_MESSAGE_CHARS: usize = 1600;

/// A provider API request, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub url: String,
    /// The `Authorization` header value (`Basic ...`).
    pub authorization: String,
    /// The `application/x-www-form-urlencoded` body.
    pub form: String,
}

/// Why a message cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("the message is empty")]
    EmptyMessage,
    #[error("the message is longer than {MAX_MESSAGE_CHARS} characters")]
    MessageTooLong,
    #[error("the channel has no {0}, which the provider's API needs")]
    MissingCredential(&'static str),
    #[error("the provider API base URL '{0}' is not an http:// or https:// URL")]
    BadBaseUrl(String),
}

/// The Twilio Messages API request sending `text` from `from` to `to`.
pub fn twilio_request(
    base_url: Option<&str>,
    account_sid: &str,
    auth_token: &str,
    from: &PhoneNumber,
    to: &PhoneNumber,
    text: &str,
    status_callback: Option<&str>,
) -> Result<OutboundRequest, OutboundError> {
    check_text(text)?;
    if account_sid.trim().is_empty() {
        return Err(OutboundError::MissingCredential("account SID"));
    }
    let base = base(base_url, TWILIO_API_BASE)?;
    let sid: String = percent_encoding::utf8_percent_encode(
        account_sid.trim(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .collect();
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("To", &to.e164())
        .append_pair("From", &from.e164())
        .append_pair("Body", text);
    if let Some(url) = status_callback {
        form.append_pair("StatusCallback", url);
    }
    let form = form.finish();
    Ok(OutboundRequest {
        url: format!("{base}/2010-04-01/Accounts/{sid}/Messages.json"),
        authorization: basic(account_sid.trim(), auth_token),
        form,
    })
}

/// The TeleSign SMS API request sending `text` to `to`.
pub fn telesign_request(
    base_url: Option<&str>,
    customer_id: &str,
    api_key: &str,
    to: &PhoneNumber,
    text: &str,
) -> Result<OutboundRequest, OutboundError> {
    check_text(text)?;
    if customer_id.trim().is_empty() {
        return Err(OutboundError::MissingCredential("customer id"));
    }
    let base = base(base_url, TELESIGN_API_BASE)?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("phone_number", &to.omnichannel_form())
        .append_pair("message", text)
        .append_pair("message_type", TELESIGN_MESSAGE_TYPE)
        .finish();
    Ok(OutboundRequest {
        url: format!("{base}/v1/messaging"),
        authorization: basic(customer_id.trim(), api_key.trim()),
        form,
    })
}

fn check_text(text: &str) -> Result<(), OutboundError> {
    if text.trim().is_empty() {
        return Err(OutboundError::EmptyMessage);
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(OutboundError::MessageTooLong);
    }
    Ok(())
}

fn base<'a>(configured: Option<&'a str>, default: &'a str) -> Result<&'a str, OutboundError> {
    let base = configured
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(default)
        .trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(OutboundError::BadBaseUrl(base.to_owned()));
    }
    Ok(base)
}

fn basic(user: &str, password: &str) -> String {
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {credentials}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> PhoneNumber {
        PhoneNumber::parse(text, None).unwrap()
    }

    #[test]
    fn twilio_request_is_the_messages_api_call() {
        let request = twilio_request(
            None,
            "AC0123456789abcdef0123456789abcdef",
            "token",
            &number("+14252306549"),
            &number("+12015550123"),
            "Hi & bye",
            None,
        )
        .unwrap();
        assert_eq!(
            request.url,
            "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
        );
        // base64("AC0123456789abcdef0123456789abcdef:token"), computed with coreutils base64.
        assert_eq!(
            request.authorization,
            "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0b2tlbg=="
        );
        assert_eq!(
            request.form,
            "To=%2B12015550123&From=%2B14252306549&Body=Hi+%26+bye"
        );
        let with_callback = twilio_request(
            None,
            "AC0123456789abcdef0123456789abcdef",
            "token",
            &number("+14252306549"),
            &number("+12015550123"),
            "Hi",
            Some("https://example.com/channels/sms/twilio/status"),
        )
        .unwrap();
        assert_eq!(
            with_callback.form,
            "To=%2B12015550123&From=%2B14252306549&Body=Hi&StatusCallback=https%3A%2F%2Fexample.com%2Fchannels%2Fsms%2Ftwilio%2Fstatus"
        );
    }

    #[test]
    fn telesign_request_is_the_sms_api_call() {
        let request = telesign_request(
            Some("http://127.0.0.1:9/"),
            "FFFFFFFF-EEEE-DDDD-1234-AB1234567890",
            "a2V5",
            &number("+12015550123"),
            "Hello",
        )
        .unwrap();
        assert_eq!(request.url, "http://127.0.0.1:9/v1/messaging");
        // base64("FFFFFFFF-EEEE-DDDD-1234-AB1234567890:a2V5").
        assert_eq!(
            request.authorization,
            "Basic RkZGRkZGRkYtRUVFRS1ERERELTEyMzQtQUIxMjM0NTY3ODkwOmEyVjU="
        );
        assert_eq!(
            request.form,
            "phone_number=12015550123&message=Hello&message_type=ARN"
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        let to = number("+12015550123");
        assert_eq!(
            telesign_request(None, "id", "key", &to, "  "),
            Err(OutboundError::EmptyMessage)
        );
        assert_eq!(
            telesign_request(None, "id", "key", &to, &"x".repeat(1601)),
            Err(OutboundError::MessageTooLong)
        );
        assert_eq!(
            telesign_request(None, " ", "key", &to, "x"),
            Err(OutboundError::MissingCredential("customer id"))
        );
        assert_eq!(
            twilio_request(Some("ftp://x"), "AC1", "t", &to, &to, "x", None),
            Err(OutboundError::BadBaseUrl("ftp://x".into()))
        );
    }
}
