//! Twilio's inbound-SMS webhook: request validation, the message parameters, and the TwiML
//! answer.
//!
//! # How Twilio signs a webhook
//!
//! As Twilio's "Secure webhooks" page and its helper libraries' `RequestValidator`
//! (twilio-python `twilio/request_validator.py`, twilio-node `src/webhooks/webhooks.ts`) define
//! it, the `X-Twilio-Signature` header is `base64(HMAC-SHA1(auth token, data))` where `data` is:
//!
//! * for an `application/x-www-form-urlencoded` POST, the full URL Twilio called (scheme, host,
//!   path and query string exactly as configured) followed by every POST parameter's name and
//!   value with no separators, sorted by name. A name that occurs more than once contributes
//!   each of its values, sorted, as twilio-python does ([`sign_form`]);
//! * for a JSON body, the URL alone. Twilio then adds a `bodySHA256` query parameter to the URL
//!   holding the lowercase hex SHA-256 of the raw body, so the body is covered through the URL
//!   ([`validate_json`]).
//!
//! Twilio's own back end is inconsistent about whether the URL it signs carries the port, so the
//! libraries accept a signature over either spelling: the URL without any port, and the URL with
//! the scheme's default port (`:443` for https, `:80` otherwise) added when it had none. This
//! module does the same. twilio-node also removes repeated identical values of one name before
//! signing; where a request has such repeats both spellings are accepted.
//!
//! Comparisons are constant time. The published test vectors (token `12345`, URL
//! `https://mycompany.com/myapp.php?foo=1&bar=2`) are in the tests below.
//!
//! **Architecture invariant:** no I/O, no panics; a signature check answers `true` or `false`.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{constant_time_eq, MAX_CALLBACK_BYTES};

/// The request header that carries Twilio's signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The content type of a TwiML answer.
pub const TWIML_CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// The longest signature header considered. A base64 HMAC-SHA1 is 28 characters.
const MAX_SIGNATURE_CHARS: usize = 128;

/// The longest SID accepted. Twilio SIDs are two letters and 32 hex digits.
const MAX_SID_CHARS: usize = 64;

/// Why a Twilio webhook's parameters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioError {
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the Twilio webhook has no '{0}' parameter")]
    MissingParameter(&'static str),
    #[error("the Twilio webhook has more than one '{0}' parameter")]
    RepeatedParameter(&'static str),
    #[error("the Twilio webhook parameter '{name}' is invalid: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
}

/// Computes the signature Twilio puts in `X-Twilio-Signature` for a form-encoded request to
/// exactly `url` (no port variants) with `params`. With no parameters this is also the
/// signature of a JSON-body request, whose `url` carries `bodySHA256`.
pub fn sign_form(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    pairs.sort_unstable();
    sign_sorted(auth_token, url, &pairs)
}

/// Validates a form-encoded webhook: `url` is the full URL Twilio called (the configured public
/// URL plus any query string), `params` every POST parameter as received, and
/// `signature_header` the `X-Twilio-Signature` value. Missing or garbled headers, an empty auth
/// token and any mismatch answer `false`.
pub fn validate_form(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature_header: &str,
) -> bool {
    let Some(signature) = usable_signature(auth_token, signature_header) else {
        return false;
    };
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    pairs.sort_unstable();
    let mut valid = matches_any_port_spelling(auth_token, url, &pairs, signature);
    // twilio-node drops repeated identical values of one name before signing.
    if pairs.windows(2).any(|w| w[0] == w[1]) {
        pairs.dedup();
        valid |= matches_any_port_spelling(auth_token, url, &pairs, signature);
    }
    valid
}

/// Validates a JSON-body webhook: the signature must cover `url`, and `url` must carry a
/// `bodySHA256` query parameter equal to the hex SHA-256 of `raw_body`.
pub fn validate_json(auth_token: &str, url: &str, raw_body: &[u8], signature_header: &str) -> bool {
    let Some(signature) = usable_signature(auth_token, signature_header) else {
        return false;
    };
    let Some(claimed) = query_parameter(url, "bodySHA256") else {
        return false;
    };
    let body_ok = constant_time_eq(
        body_sha256_hex(raw_body).as_bytes(),
        claimed.to_ascii_lowercase().as_bytes(),
    );
    let signature_ok = matches_any_port_spelling(auth_token, url, &[], signature);
    body_ok & signature_ok
}

/// The lowercase hex SHA-256 of a raw body, as Twilio writes it in `bodySHA256`.
pub fn body_sha256_hex(raw_body: &[u8]) -> String {
    let digest = Sha256::digest(raw_body);
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        hex.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Decodes an `application/x-www-form-urlencoded` body into its parameters, in order, keeping
/// repeated names. Refuses bodies over [`MAX_CALLBACK_BYTES`].
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, TwilioError> {
    if body.len() > MAX_CALLBACK_BYTES {
        return Err(TwilioError::BodyTooLarge {
            limit: MAX_CALLBACK_BYTES,
        });
    }
    Ok(form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect())
}

/// The parts of Twilio's messaging webhook that smsctx uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioInbound {
    /// The customer's number as Twilio sends it (E.164, e.g. `+14158675309`).
    pub from: String,
    /// The organisation's Twilio number that received the message.
    pub to: String,
    /// The message text; empty for a picture-only MMS.
    pub body: String,
    /// Twilio's id for this message (`SM…`/`MM…`): the de-duplication key of a delivery.
    pub message_sid: String,
    /// The Twilio account the number belongs to (`AC…`).
    pub account_sid: String,
    /// How many media items came with the message.
    pub num_media: u32,
}

impl TwilioInbound {
    /// Reads the webhook's parameters. `From`, `To`, `Body`, `MessageSid` (or the legacy
    /// `SmsMessageSid`) and `AccountSid` are required and may appear only once; `NumMedia` is
    /// optional and defaults to 0.
    pub fn from_params(params: &[(String, String)]) -> Result<TwilioInbound, TwilioError> {
        let from = required(params, "From")?;
        let to = required(params, "To")?;
        let body = required(params, "Body")?;
        let message_sid = match single(params, "MessageSid")? {
            Some(sid) => sid,
            None => single(params, "SmsMessageSid")?
                .ok_or(TwilioError::MissingParameter("MessageSid"))?,
        };
        check_sid("MessageSid", message_sid)?;
        let account_sid = required(params, "AccountSid")?;
        check_sid("AccountSid", account_sid)?;
        if from.trim().is_empty() {
            return Err(empty("From"));
        }
        if to.trim().is_empty() {
            return Err(empty("To"));
        }
        let num_media = match single(params, "NumMedia")? {
            None => 0,
            Some(text) => {
                text.trim()
                    .parse::<u32>()
                    .map_err(|_| TwilioError::InvalidParameter {
                        name: "NumMedia",
                        reason: format!("'{}' is not a whole number", shorten(text)),
                    })?
            }
        };
        Ok(TwilioInbound {
            from: from.trim().to_owned(),
            to: to.trim().to_owned(),
            body: body.to_owned(),
            message_sid: message_sid.to_owned(),
            account_sid: account_sid.to_owned(),
            num_media,
        })
    }
}

/// Where Twilio reports a message's status, below the messaging webhook's URL.
pub const STATUS_CALLBACK_SUFFIX: &str = "/status";

/// The `StatusCallback` URL of a message sent from a channel whose webhook Twilio calls at
/// `webhook_url` (its configured public URL): that URL with [`STATUS_CALLBACK_SUFFIX`], or
/// none when it carries a query string.
pub fn status_callback_url(webhook_url: &str) -> Option<String> {
    let url = webhook_url.trim().trim_end_matches('/');
    (!url.is_empty() && !url.contains('?')).then(|| format!("{url}{STATUS_CALLBACK_SUFFIX}"))
}

/// A status callback of an outbound message (Twilio's `StatusCallback` request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioStatus {
    /// The message (`SM…`/`MM…`).
    pub message_sid: String,
    /// `queued`, `sent`, `delivered`, `undelivered`, `failed`, ...
    pub message_status: String,
    /// The organisation number the message was sent from.
    pub from: String,
    pub account_sid: String,
    /// Twilio's error code of an undelivered or failed message.
    pub error_code: Option<String>,
}

impl TwilioStatus {
    /// Reads the callback's parameters: `MessageSid`, `MessageStatus`, `From` and
    /// `AccountSid` are required and may appear only once; `ErrorCode` is optional.
    pub fn from_params(params: &[(String, String)]) -> Result<TwilioStatus, TwilioError> {
        let message_sid = required(params, "MessageSid")?;
        check_sid("MessageSid", message_sid)?;
        let message_status = required(params, "MessageStatus")?;
        if message_status.trim().is_empty() || message_status.len() > 32 {
            return Err(empty("MessageStatus"));
        }
        let from = required(params, "From")?;
        if from.trim().is_empty() {
            return Err(empty("From"));
        }
        let account_sid = required(params, "AccountSid")?;
        check_sid("AccountSid", account_sid)?;
        let error_code = single(params, "ErrorCode")?
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                if c.len() <= 10 && c.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(c.to_owned())
                } else {
                    Err(TwilioError::InvalidParameter {
                        name: "ErrorCode",
                        reason: format!("'{}' is not a Twilio error code", shorten(c)),
                    })
                }
            })
            .transpose()?;
        Ok(TwilioStatus {
            message_sid: message_sid.to_owned(),
            message_status: message_status.trim().to_owned(),
            from: from.trim().to_owned(),
            account_sid: account_sid.to_owned(),
            error_code,
        })
    }
}

/// The TwiML document answering a webhook: an empty `<Response/>`, or one `<Message>` with the
/// reply text escaped for XML. Characters XML 1.0 cannot carry are dropped; an empty or
/// whitespace-only reply sends nothing.
pub fn twiml_response(reply: Option<&str>) -> String {
    const PROLOGUE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
    match reply.filter(|text| !text.trim().is_empty()) {
        None => format!("{PROLOGUE}<Response/>"),
        Some(text) => {
            let mut out = String::with_capacity(PROLOGUE.len() + text.len() + 40);
            out.push_str(PROLOGUE);
            out.push_str("<Response><Message>");
            for c in text.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&apos;"),
                    '\t' | '\n' | '\r' => out.push(c),
                    c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
                    c => out.push(c),
                }
            }
            out.push_str("</Message></Response>");
            out
        }
    }
}

/// The trimmed signature, or `None` when the header or token cannot possibly validate.
fn usable_signature<'a>(auth_token: &str, signature_header: &'a str) -> Option<&'a str> {
    let signature = signature_header.trim();
    if auth_token.is_empty() || signature.is_empty() || signature.len() > MAX_SIGNATURE_CHARS {
        return None;
    }
    Some(signature)
}

/// Whether `signature` matches `url` without its port or with the default port added.
fn matches_any_port_spelling(
    auth_token: &str,
    url: &str,
    sorted_pairs: &[(&str, &str)],
    signature: &str,
) -> bool {
    let (without_port, with_port) = port_spellings(url);
    let a = constant_time_eq(
        sign_sorted(auth_token, &without_port, sorted_pairs).as_bytes(),
        signature.as_bytes(),
    );
    let b = constant_time_eq(
        sign_sorted(auth_token, &with_port, sorted_pairs).as_bytes(),
        signature.as_bytes(),
    );
    a | b
}

fn sign_sorted(auth_token: &str, url: &str, sorted_pairs: &[(&str, &str)]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty key is refused earlier by
    // the validators and only reaches here from `sign_form`.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted_pairs {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL with any port removed, and the URL with the scheme's default port added when it has
/// none (unchanged when it already has one). A string that is not an absolute URL is returned
/// unchanged in both.
fn port_spellings(url: &str) -> (String, String) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_owned(), url.to_owned());
    };
    let scheme = &url[..scheme_end];
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let tail = &rest[authority_len..];
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_port = &authority[host_start..];

    // An IPv6 literal's colons are inside the brackets.
    let search_from = host_port.rfind(']').unwrap_or(0);
    let port_colon = host_port[search_from..]
        .rfind(':')
        .map(|i| i + search_from)
        .filter(|&i| {
            let digits = &host_port[i + 1..];
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        });

    let prefix = &url[..authority_start + host_start];
    match port_colon {
        Some(colon) => {
            let without = format!("{prefix}{}{tail}", &host_port[..colon]);
            (without, url.to_owned())
        }
        None => {
            let default_port = if scheme.eq_ignore_ascii_case("https") {
                443
            } else {
                80
            };
            let with = format!("{prefix}{host_port}:{default_port}{tail}");
            (url.to_owned(), with)
        }
    }
}

/// The first value of a query parameter of `url`, percent-decoded.
fn query_parameter(url: &str, wanted: &str) -> Option<String> {
    let query_start = url.find('?')? + 1;
    let query = &url[query_start..];
    let query = &query[..query.find('#').unwrap_or(query.len())];
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == wanted)
        .map(|(_, value)| value.into_owned())
}

fn single<'a>(
    params: &'a [(String, String)],
    name: &'static str,
) -> Result<Option<&'a str>, TwilioError> {
    let mut found = params.iter().filter(|(n, _)| n == name);
    let first = found.next();
    if found.next().is_some() {
        return Err(TwilioError::RepeatedParameter(name));
    }
    Ok(first.map(|(_, value)| value.as_str()))
}

fn required<'a>(
    params: &'a [(String, String)],
    name: &'static str,
) -> Result<&'a str, TwilioError> {
    single(params, name)?.ok_or(TwilioError::MissingParameter(name))
}

fn check_sid(name: &'static str, sid: &str) -> Result<(), TwilioError> {
    if sid.is_empty() {
        return Err(empty(name));
    }
    if sid.chars().count() > MAX_SID_CHARS || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TwilioError::InvalidParameter {
            name,
            reason: format!(
                "'{}' is not a Twilio SID (letters and digits, at most {MAX_SID_CHARS})",
                shorten(sid)
            ),
        });
    }
    Ok(())
}

fn empty(name: &'static str) -> TwilioError {
    TwilioError::InvalidParameter {
        name,
        reason: "it is empty".to_owned(),
    }
}

/// At most 40 characters of a value, for error messages.
fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if text.chars().nth(40).is_some() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors published by Twilio: the twilio-python test suite
    // (`tests/unit/test_request_validator.py`) and the twilio-php documentation
    // (`docs/usage/validation.rst`) both use this token, URL and parameter set, with expected
    // signature `RSOYDt4T1cUTdK1PDd93/VVr8B8=`. The port, duplicate-parameter and JSON-body
    // vectors come from the same twilio-python test file. They were also recomputed here with
    // Python's standard `hmac` module before being written down.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXPECTED: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const SIG_HTTPS_WITH_443: &str = "kvajT1Ptam85bY51eRf/AJRuM3w=";
    const SIG_HTTP_WITH_80: &str = "0ZXoZLH/DfblKGATFgpif+LLRf4=";
    const SIG_HTTP_WITH_1234: &str = "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=";
    const SIG_DUPLICATES: &str = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
    const JSON_BODY: &str = r#"{"property": "value", "boolean": true}"#;
    const JSON_BODY_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const SIG_JSON: &str = "a9nBmqA0ju/hNViExpshrM61xv4=";

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn published_params() -> Vec<(String, String)> {
        // Deliberately not in sorted order: signing sorts them.
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ])
    }

    fn json_url() -> String {
        format!("{URL}&bodySHA256={JSON_BODY_HASH}")
    }

    #[test]
    fn published_vector_signs_and_validates() {
        assert_eq!(sign_form(TOKEN, URL, &published_params()), EXPECTED);
        assert!(validate_form(TOKEN, URL, &published_params(), EXPECTED));
        // Surrounding whitespace in the header is tolerated.
        assert!(validate_form(
            TOKEN,
            URL,
            &published_params(),
            &format!(" {EXPECTED}\t")
        ));
    }

    #[test]
    fn tampering_is_rejected() {
        let params = published_params();
        assert!(!validate_form("12346", URL, &params, EXPECTED));
        assert!(!validate_form(
            TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            EXPECTED
        ));
        assert!(!validate_form(
            TOKEN,
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            EXPECTED
        ));
        let mut changed = params.clone();
        changed[1].1 = "1235".into();
        assert!(!validate_form(TOKEN, URL, &changed, EXPECTED));
        let mut extra = params.clone();
        extra.push(("Body".into(), "hi".into()));
        assert!(!validate_form(TOKEN, URL, &extra, EXPECTED));
        let mut missing = params.clone();
        missing.pop();
        assert!(!validate_form(TOKEN, URL, &missing, EXPECTED));
        // Moving text between a name and its value changes nothing in the concatenation, which
        // is inherent in Twilio's scheme; renaming a parameter does change the order.
        let mut renamed = params;
        renamed[0].0 = "ZCallSid".into();
        assert!(!validate_form(TOKEN, URL, &renamed, EXPECTED));
    }

    #[test]
    fn missing_or_garbled_headers_are_rejected() {
        let params = published_params();
        for header in [
            "",
            "   ",
            "not base64 at all!",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8==",
            "rsoydt4t1cutdk1pdd93/vvr8b8=",
            "\u{0}\u{1}\u{2}",
            "é",
        ] {
            assert!(!validate_form(TOKEN, URL, &params, header), "{header:?}");
            assert!(
                !validate_json(TOKEN, &json_url(), JSON_BODY.as_bytes(), header),
                "{header:?}"
            );
        }
        let huge = "A".repeat(1_000_000);
        assert!(!validate_form(TOKEN, URL, &params, &huge));
        // An unconfigured (empty) token never validates, even against its own signature.
        let own = sign_form("", URL, &params);
        assert!(!validate_form("", URL, &params, &own));
    }

    #[test]
    fn default_port_is_optional_either_way() {
        let params = published_params();
        // Signed with :443, request URL without a port.
        assert!(validate_form(TOKEN, URL, &params, SIG_HTTPS_WITH_443));
        // Signed without a port, request URL with :443 or with another port.
        let with_443 = URL.replace(".com", ".com:443");
        assert!(validate_form(TOKEN, &with_443, &params, EXPECTED));
        let with_1234 = URL.replace(".com", ".com:1234");
        assert!(validate_form(TOKEN, &with_1234, &params, EXPECTED));
        // Plain http: the default port is 80.
        let http = URL.replace("https", "http");
        assert!(validate_form(TOKEN, &http, &params, SIG_HTTP_WITH_80));
        let http_1234 = http.replace(".com", ".com:1234");
        assert!(validate_form(
            TOKEN,
            &http_1234,
            &params,
            SIG_HTTP_WITH_1234
        ));
        // The wrong default port is not accepted.
        assert!(!validate_form(TOKEN, URL, &params, SIG_HTTP_WITH_80));
    }

    #[test]
    fn port_spellings_cover_userinfo_ipv6_and_odd_strings() {
        let check = |url: &str, without: &str, with: &str| {
            assert_eq!(
                port_spellings(url),
                (without.to_owned(), with.to_owned()),
                "{url}"
            );
        };
        check(
            "https://example.com/a?b=1",
            "https://example.com/a?b=1",
            "https://example.com:443/a?b=1",
        );
        check(
            "https://example.com:8443/a",
            "https://example.com/a",
            "https://example.com:8443/a",
        );
        check(
            "http://example.com",
            "http://example.com",
            "http://example.com:80",
        );
        check(
            "https://user:pw@example.com/x",
            "https://user:pw@example.com/x",
            "https://user:pw@example.com:443/x",
        );
        check(
            "https://user:pw@example.com:99/x",
            "https://user:pw@example.com/x",
            "https://user:pw@example.com:99/x",
        );
        check(
            "http://[::1]:8080/h",
            "http://[::1]/h",
            "http://[::1]:8080/h",
        );
        check("http://[::1]/h", "http://[::1]/h", "http://[::1]:80/h");
        check("not a url", "not a url", "not a url");
        check("https://", "https://", "https://:443");
    }

    #[test]
    fn repeated_names_sign_every_value_sorted() {
        let params = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        assert_eq!(sign_form(TOKEN, URL, &params), SIG_DUPLICATES);
        assert!(validate_form(TOKEN, URL, &params, SIG_DUPLICATES));
    }

    #[test]
    fn repeated_identical_values_accept_both_library_spellings() {
        let params = pairs(&[("A", "1"), ("A", "1"), ("B", "2")]);
        let python_style = sign_form(TOKEN, URL, &params);
        let node_style = sign_form(TOKEN, URL, &pairs(&[("A", "1"), ("B", "2")]));
        assert_ne!(python_style, node_style);
        assert!(validate_form(TOKEN, URL, &params, &python_style));
        assert!(validate_form(TOKEN, URL, &params, &node_style));
    }

    #[test]
    fn json_body_variant() {
        assert_eq!(body_sha256_hex(JSON_BODY.as_bytes()), JSON_BODY_HASH);
        assert_eq!(sign_form(TOKEN, &json_url(), &[]), SIG_JSON);
        assert!(validate_json(
            TOKEN,
            &json_url(),
            JSON_BODY.as_bytes(),
            SIG_JSON
        ));
        // An upper-case hash in the URL is the same hash.
        let upper = format!("{URL}&bodySHA256={}", JSON_BODY_HASH.to_ascii_uppercase());
        let upper_sig = sign_form(TOKEN, &upper, &[]);
        assert!(validate_json(
            TOKEN,
            &upper,
            JSON_BODY.as_bytes(),
            &upper_sig
        ));
    }

    #[test]
    fn json_body_tampering_is_rejected() {
        let url = json_url();
        let body = JSON_BODY.as_bytes();
        assert!(!validate_json(
            TOKEN,
            &url,
            br#"{"property": "value", "boolean": false}"#,
            SIG_JSON
        ));
        assert!(!validate_json(TOKEN, &url, b"", SIG_JSON));
        assert!(!validate_json("54321", &url, body, SIG_JSON));
        assert!(!validate_json(
            TOKEN,
            &url.replace("foo=1", "foo=2"),
            body,
            SIG_JSON
        ));
        // Without bodySHA256 there is nothing tying the body to the signature.
        assert!(!validate_json(
            TOKEN,
            URL,
            body,
            &sign_form(TOKEN, URL, &[])
        ));
        // A body hash for a different body, correctly signed, still fails on the body.
        let other = format!("{URL}&bodySHA256={}", body_sha256_hex(b"other"));
        assert!(!validate_json(
            TOKEN,
            &other,
            body,
            &sign_form(TOKEN, &other, &[])
        ));
        // The hash is read from the query, not the fragment.
        let fragment = format!("{URL}#bodySHA256={JSON_BODY_HASH}");
        assert!(!validate_json(
            TOKEN,
            &fragment,
            body,
            &sign_form(TOKEN, &fragment, &[])
        ));
    }

    #[test]
    fn json_body_default_port_is_optional() {
        let with_443 = json_url().replace(".com", ".com:443");
        assert!(validate_json(
            TOKEN,
            &with_443,
            JSON_BODY.as_bytes(),
            SIG_JSON
        ));
    }

    fn messaging_params() -> Vec<(String, String)> {
        pairs(&[
            ("ToCountry", "US"),
            ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("NumMedia", "0"),
            ("From", "+14158675309"),
            ("To", "+14252306549"),
            ("Body", "Hello & <welcome>"),
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("NumSegments", "1"),
            ("ApiVersion", "2010-04-01"),
        ])
    }

    #[test]
    fn inbound_message_is_read() {
        let inbound = TwilioInbound::from_params(&messaging_params()).unwrap();
        assert_eq!(
            inbound,
            TwilioInbound {
                from: "+14158675309".into(),
                to: "+14252306549".into(),
                body: "Hello & <welcome>".into(),
                message_sid: "SM0123456789abcdef0123456789abcdef".into(),
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                num_media: 0,
            }
        );
    }

    #[test]
    fn inbound_round_trips_through_a_form_body() {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(messaging_params())
            .finish();
        let params = parse_form(body.as_bytes()).unwrap();
        assert_eq!(params, messaging_params());
        let url = "https://smsctx.example.com/channels/sms/twilio";
        let signature = sign_form("secret-token", url, &params);
        assert!(validate_form("secret-token", url, &params, &signature));
        assert_eq!(
            TwilioInbound::from_params(&params).unwrap().body,
            "Hello & <welcome>"
        );
    }

    #[test]
    fn inbound_errors_are_clear() {
        let without = |name: &str| {
            messaging_params()
                .into_iter()
                .filter(|(n, _)| n != name)
                .collect::<Vec<_>>()
        };
        let required: [&'static str; 4] = ["From", "To", "Body", "AccountSid"];
        for name in required {
            let error = TwilioInbound::from_params(&without(name)).unwrap_err();
            assert_eq!(error, TwilioError::MissingParameter(name));
            assert_eq!(
                error.to_string(),
                format!("the Twilio webhook has no '{name}' parameter")
            );
        }
        // The legacy SmsMessageSid stands in for MessageSid; with neither, MessageSid is missing.
        let legacy = without("MessageSid");
        assert_eq!(
            TwilioInbound::from_params(&legacy).unwrap().message_sid,
            "SM0123456789abcdef0123456789abcdef"
        );
        let no_sid: Vec<_> = legacy
            .into_iter()
            .filter(|(n, _)| n != "SmsMessageSid")
            .collect();
        assert_eq!(
            TwilioInbound::from_params(&no_sid),
            Err(TwilioError::MissingParameter("MessageSid"))
        );
        // NumMedia is optional.
        assert_eq!(
            TwilioInbound::from_params(&without("NumMedia"))
                .unwrap()
                .num_media,
            0
        );

        let mut repeated = messaging_params();
        repeated.push(("From".into(), "+15005550006".into()));
        assert_eq!(
            TwilioInbound::from_params(&repeated),
            Err(TwilioError::RepeatedParameter("From"))
        );

        let with = |name: &str, value: &str| {
            let mut params = messaging_params();
            for pair in params.iter_mut().filter(|(n, _)| n == name) {
                pair.1 = value.to_owned();
            }
            TwilioInbound::from_params(&params)
        };
        assert!(matches!(
            with("NumMedia", "two"),
            Err(TwilioError::InvalidParameter {
                name: "NumMedia",
                ..
            })
        ));
        assert!(matches!(
            with("NumMedia", "-1"),
            Err(TwilioError::InvalidParameter {
                name: "NumMedia",
                ..
            })
        ));
        assert!(matches!(
            with("MessageSid", "SM'; DROP TABLE"),
            Err(TwilioError::InvalidParameter {
                name: "MessageSid",
                ..
            })
        ));
        assert!(matches!(
            with("AccountSid", &"A".repeat(65)),
            Err(TwilioError::InvalidParameter {
                name: "AccountSid",
                ..
            })
        ));
        assert!(matches!(
            with("From", "  "),
            Err(TwilioError::InvalidParameter { name: "From", .. })
        ));
        assert_eq!(with("NumMedia", "3").unwrap().num_media, 3);
        // An empty body (a picture-only MMS) is allowed.
        assert_eq!(with("Body", "").unwrap().body, "");
    }

    #[test]
    fn oversized_and_garbled_form_bodies() {
        let big = vec![b'a'; MAX_CALLBACK_BYTES + 1];
        assert_eq!(
            parse_form(&big),
            Err(TwilioError::BodyTooLarge {
                limit: MAX_CALLBACK_BYTES
            })
        );
        // Invalid percent-escapes and invalid UTF-8 decode lossily rather than failing.
        let params = parse_form(b"From=%ZZ&To=%FF%FE&&=&Body").unwrap();
        assert_eq!(params[0], ("From".into(), "%ZZ".into()));
        assert_eq!(params[1].0, "To");
        assert!(TwilioInbound::from_params(&params).is_err());
    }

    #[test]
    fn twiml_answers() {
        assert_eq!(
            twiml_response(None),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#
        );
        assert_eq!(twiml_response(Some("  ")), twiml_response(None));
        assert_eq!(
            twiml_response(Some("Thanks! We'll reply <soon> & \"promptly\".")),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Thanks! We&apos;ll \
             reply &lt;soon&gt; &amp; &quot;promptly&quot;.</Message></Response>"
        );
        assert_eq!(
            twiml_response(Some("a\u{0}b\u{1b}c\nd\u{FFFF}é")),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>abc\ndé</Message>\
             </Response>"
        );
        assert_eq!(
            twiml_response(Some("]]><Response>")),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>]]&gt;&lt;Response&gt;\
             </Message></Response>"
        );
    }
}
