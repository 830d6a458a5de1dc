//! The SMS channel's HTTP surface.
//!
//! * `POST /channels/sms/twilio` and `POST /channels/sms/telesign`: the providers' inbound
//!   webhooks. No bearer token: each request must carry the provider's signature, checked with
//!   the channel's secret before anything is written. Rate-limited per peer address.
//! * `/api/data/v9.x/smsctx_smschannels[(id)]`: channel administration (GET, POST, PATCH,
//!   DELETE) for a bearer caller, through the caller's guard. Secrets are never returned in full.
//! * `POST /api/data/v9.x/msdyn_smsengagementctxes(id)/Microsoft.Dynamics.CRM.smsctx_SendSms`:
//!   the bound action that sends an SMS to the context's customer through its provider.
//!
//! The two Web API resources are routed by [`crate::parse::path`] like every other one, so they
//! also work inside `$batch`. Only the webhooks read by system access.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use super::error::ApiError;
use super::{AppState, Call};
use crate::channels::phone::PhoneNumber;
use crate::channels::telesign::{self, TeleSignDeliveryReport, TeleSignError, TeleSignInbound};
use crate::channels::transcript::DeliveryStatus;
use crate::channels::twilio::{self, TwilioInbound, TwilioStatus};
use crate::channels::MAX_CALLBACK_BYTES;
use crate::execute::sms::{
    mask, parse_customer_number, parse_org_number, Channel, ChannelChanges, Inbound, NewChannel,
    Owner, Provider, Sms,
};
use crate::execute::Caller;
use crate::metadata::sms::*;
use crate::metadata::system::{CREATED_ON, MODIFIED_ON, SYSTEM_USER, TEAM};
use crate::metadata::Catalog;

/// The webhook paths (Twilio's status callbacks below its messaging webhook).
pub const TWILIO_PATH: &str = "/channels/sms/twilio";
pub const TWILIO_STATUS_PATH: &str = "/channels/sms/twilio/status";
pub const TELESIGN_PATH: &str = "/channels/sms/telesign";

/// Webhook requests per second per peer address by default: far above what one provider
/// sends to one deployment, so only a flood is refused.
pub const DEFAULT_RATE_LIMIT: u32 = 10_000;

/// What the SMS routes share: the channel, the administrator its writes run as, the limiter.
pub struct SmsState {
    pub sms: Sms,
    pub admin: Caller,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl SmsState {
    /// `rate_limit`: webhook requests per second per peer address (bursts of as many); 0 turns
    /// the limit off.
    pub fn new(sms: Sms, admin: Caller, rate_limit: u32) -> SmsState {
        let limiter = NonZeroU32::new(rate_limit).map(|n| RateLimiter::keyed(Quota::per_second(n)));
        SmsState {
            sms,
            admin,
            limiter,
        }
    }

    fn admit(&self, request: &Request) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if limiter.check_key(&peer).is_err() {
            return Err(ApiError::webhook_rate_limited());
        }
        if limiter.len() > 100_000 {
            limiter.retain_recent();
        }
        Ok(())
    }
}

fn rejected(provider: Provider, error: ApiError) -> Response {
    if error.status == StatusCode::TOO_MANY_REQUESTS {
        // A flood is not logged line by line; the request log still counts its 429s.
        tracing::debug!(target: "smsctx::sms", provider = provider.label(), "webhook rate-limited");
    } else {
        tracing::warn!(
            target: "smsctx::sms",
            provider = provider.label(),
            status = error.status.as_u16(),
            reason = %error.message,
            "webhook refused"
        );
    }
    error.into_response()
}

/// Lands a verified inbound message on its context, as the administrator, and logs it.
async fn land(state: &AppState, inbound: Inbound<'_>) -> Result<(), ApiError> {
    let provider = inbound.channel.provider.label();
    let message = inbound.message_id.to_owned();
    let landed = state
        .sms
        .sms
        .receive(&state.service, &state.sms.admin, inbound)
        .await?;
    tracing::info!(
        target: "smsctx::sms",
        provider,
        message = %message,
        context = %landed.context_id,
        opened = landed.opened,
        replay = landed.replay,
        "inbound SMS"
    );
    if !landed.replay {
        state.console.notify(match landed.conversation_id {
            Some(id) => super::console::Event::Conversation(id),
            None => super::console::Event::Changed,
        });
    }
    Ok(())
}

async fn read_body(
    state: &AppState,
    request: Request,
) -> Result<(axum::http::request::Parts, bytes::Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let body = super::read_body(body, MAX_CALLBACK_BYTES, state.body_timeout).await?;
    Ok((parts, body))
}

/// A header as text ("" when absent); bytes outside visible ASCII are a 400, so a signature
/// that cannot be read is refused as malformed, not checked as if it were missing.
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, ApiError> {
    match headers.get(name) {
        None => Ok(""),
        Some(value) => crate::parse::headers::ascii_text(name, value.as_bytes())
            .map_err(|e| bad_request(e.to_string())),
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::invalid_argument(message)
}

// ---- Twilio ------------------------------------------------------------------------------

/// `POST /channels/sms/twilio`: Twilio's messaging webhook, answered with TwiML.
pub async fn twilio(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match twilio_inner(&state, request).await {
        Ok(response) => response,
        Err(e) => rejected(Provider::Twilio, e),
    }
}

/// A Twilio request's parameters, from a form or a JSON body (`true`).
fn twilio_request_params(
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Result<(Vec<(String, String)>, bool), ApiError> {
    let content_type = header_text(&parts.headers, header::CONTENT_TYPE.as_str())?
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if content_type == "application/json" {
        Ok((json_params(body)?, true))
    } else if content_type == "application/x-www-form-urlencoded" {
        Ok((
            twilio::parse_form(body).map_err(|e| bad_request(e.to_string()))?,
            false,
        ))
    } else {
        Err(ApiError::unsupported_media_type(
            "A Twilio webhook is application/x-www-form-urlencoded (or application/json).",
        ))
    }
}

/// `X-Twilio-Signature` checked with the channel's auth token for `url` (a 403 when it does
/// not match).
fn check_twilio_signature(
    channel: &Channel,
    url: &str,
    parts: &axum::http::request::Parts,
    body: &[u8],
    params: &[(String, String)],
    json_body: bool,
) -> Result<(), ApiError> {
    let signature = header_text(&parts.headers, twilio::SIGNATURE_HEADER)?;
    let valid = if json_body {
        twilio::validate_json(&channel.secret, url, body, signature)
    } else {
        twilio::validate_form(&channel.secret, url, params, signature)
    };
    if valid {
        Ok(())
    } else {
        Err(ApiError::webhook_not_signed(twilio::SIGNATURE_HEADER))
    }
}

/// A signed request of another Twilio account than the channel's is refused as unsigned.
fn check_twilio_account(channel: &Channel, account_sid: &str) -> Result<(), ApiError> {
    match channel.account.as_deref() {
        Some(account) if account != account_sid => Err(ApiError::webhook_not_signed("AccountSid")),
        _ => Ok(()),
    }
}

/// The one value of a parameter Twilio sends once.
fn one_param<'p>(params: &'p [(String, String)], name: &str) -> Result<&'p str, ApiError> {
    let mut values = params.iter().filter(|(n, _)| n == name);
    match (values.next(), values.next()) {
        (Some((_, value)), None) => Ok(value),
        (None, _) => Err(bad_request(format!(
            "the Twilio webhook has no '{name}' parameter"
        ))),
        (Some(_), Some(_)) => Err(bad_request(format!(
            "the Twilio webhook has more than one '{name}' parameter"
        ))),
    }
}

/// `POST /channels/sms/twilio/status`: Twilio's status callback of a message sent with
/// `smsctx_SendSms` (its `StatusCallback`), signed like the messaging webhook; the reply's
/// delivery status in the transcript moves forward only.
pub async fn twilio_status(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match twilio_status_inner(&state, request).await {
        Ok(response) => response,
        Err(e) => rejected(Provider::Twilio, e),
    }
}

async fn twilio_status_inner(state: &AppState, request: Request) -> Result<Response, ApiError> {
    state.sms.admit(&request)?;
    let (parts, body) = read_body(state, request).await?;
    let (params, json_body) = twilio_request_params(&parts, &body)?;
    // A status callback comes from the organisation's number: its channel checks the signature.
    let org = parse_org_number(one_param(&params, "From")?)
        .map_err(|e| bad_request(format!("From: {e}")))?;
    let channel = channel_of(state, &org, Provider::Twilio).await?;
    let url = match channel
        .public_url
        .as_deref()
        .and_then(twilio::status_callback_url)
    {
        Some(url) => url,
        None => reached_url(&parts),
    };
    check_twilio_signature(&channel, &url, &parts, &body, &params, json_body)?;
    let report = TwilioStatus::from_params(&params).map_err(|e| bad_request(e.to_string()))?;
    check_twilio_account(&channel, &report.account_sid)?;
    if let Some(status) = DeliveryStatus::from_twilio(&report.message_status) {
        report_delivery(
            state,
            Provider::Twilio,
            &report.message_sid,
            status,
            report.error_code.as_deref(),
        )
        .await?;
    }
    Ok(StatusCode::OK.into_response())
}

/// Applies a verified delivery report and logs it.
async fn report_delivery(
    state: &AppState,
    provider: Provider,
    message_id: &str,
    status: DeliveryStatus,
    error_code: Option<&str>,
) -> Result<(), ApiError> {
    let outcome = state
        .sms
        .sms
        .delivery_report(
            &state.service,
            &state.sms.admin,
            provider,
            message_id,
            status,
            error_code,
        )
        .await?;
    tracing::info!(
        target: "smsctx::sms",
        provider = provider.label(),
        message = message_id,
        status = status.label(),
        outcome = ?outcome,
        "delivery report"
    );
    if matches!(outcome, crate::execute::sms::Reported::Updated) {
        state.console.notify(super::console::Event::Changed);
    }
    Ok(())
}

async fn twilio_inner(state: &AppState, request: Request) -> Result<Response, ApiError> {
    state.sms.admit(&request)?;
    let (parts, body) = read_body(state, request).await?;
    let (params, json_body) = twilio_request_params(&parts, &body)?;
    // The org number picks the channel whose token checks the signature; everything else is
    // read only from a request proven to come from Twilio.
    let to = one_param(&params, "To")?;
    let org = parse_org_number(to).map_err(|e| bad_request(format!("To: {e}")))?;
    let channel = channel_of(state, &org, Provider::Twilio).await?;

    let url = signed_url(&channel, &parts);
    check_twilio_signature(&channel, &url, &parts, &body, &params, json_body)?;
    let inbound = TwilioInbound::from_params(&params).map_err(|e| bad_request(e.to_string()))?;
    check_twilio_account(&channel, &inbound.account_sid)?;
    let customer = parse_customer_number(&inbound.from, &org)
        .map_err(|e| bad_request(format!("From: {e}")))?;
    land(
        state,
        Inbound {
            channel: &channel,
            customer: &customer,
            message_id: &inbound.message_sid,
            body: &inbound.body,
        },
    )
    .await?;
    let twiml = twilio::twiml_response(channel.auto_reply.as_deref());
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, twilio::TWIML_CONTENT_TYPE)],
        twiml,
    )
        .into_response())
}

/// A JSON webhook body as Twilio-style parameters: every member of the object, as text.
fn json_params(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let object: Map<String, Json> = serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("The JSON webhook body is not an object: {e}")))?;
    Ok(object
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Json::String(s) => s,
                other => other.to_string(),
            };
            (name, text)
        })
        .collect())
}

/// The URL Twilio signed: the channel's configured public URL (plus the request's query when
/// the configured URL has none), or else the URL this request reached, as its Host header and
/// `X-Forwarded-Proto` tell.
fn signed_url(channel: &Channel, parts: &axum::http::request::Parts) -> String {
    let query = parts.uri.query();
    match (&channel.public_url, query) {
        (Some(url), Some(q)) if !url.contains('?') => format!("{url}?{q}"),
        (Some(url), _) => url.clone(),
        (None, _) => reached_url(parts),
    }
}

/// The URL a request reached, as its Host header and `X-Forwarded-Proto` tell. Unreadable
/// bytes here only make a signature fail to match (403).
fn reached_url(parts: &axum::http::request::Parts) -> String {
    let host = crate::tls::request_host(parts);
    let scheme = crate::tls::request_scheme(parts);
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(TWILIO_PATH);
    format!("{scheme}://{host}{path}")
}

async fn channel_of(
    state: &AppState,
    org: &PhoneNumber,
    provider: Provider,
) -> Result<Channel, ApiError> {
    match state
        .sms
        .sms
        .channel_for(state.service.system().store(), org)
        .await?
    {
        Some(channel) if channel.provider == provider => Ok(channel),
        _ => Err(crate::execute::sms::SmsError::UnknownChannel(org.e164()).into()),
    }
}

// ---- TeleSign ----------------------------------------------------------------------------

/// `POST /channels/sms/telesign`: TeleSign's inbound-SMS callback, answered with 200.
pub async fn telesign(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match telesign_inner(&state, request).await {
        Ok(response) => response,
        Err(e) => rejected(Provider::TeleSign, e),
    }
}

async fn telesign_inner(state: &AppState, request: Request) -> Result<Response, ApiError> {
    state.sms.admit(&request)?;
    let (parts, body) = read_body(state, request).await?;
    // TeleSign sends its signature in both `Authorization` (`TSA <customer id>:<signature>`,
    // checked with the customer id) and `X-TS-Authorization`; the second counts only alone.
    let authorization = header_text(&parts.headers, header::AUTHORIZATION.as_str())?;
    let x_ts = header_text(&parts.headers, telesign::X_TS_AUTHORIZATION_HEADER)?;
    let signed_by = |channel: &Channel| {
        if authorization.trim().is_empty() && !x_ts.trim().is_empty() {
            telesign::validate_x_ts_authorization(&channel.secret, &body, x_ts)
        } else {
            telesign::validate_callback(
                channel.account.as_deref().unwrap_or_default(),
                &channel.secret,
                &body,
                authorization,
            )
        }
    };
    let inbound = match TeleSignInbound::from_json(&body) {
        Ok(inbound) => inbound,
        Err(TeleSignError::NotInboundSms(kind)) => {
            // A delivery report or another callback on the same URL: acknowledged once it is
            // proven to come from TeleSign, so TeleSign does not retry it. A delivery report
            // names no number: the channel whose key signed it is the one that sent.
            let sms = &state.sms.sms;
            let channels = sms.channels(state.service.system().store()).await?;
            let genuine = channels
                .iter()
                .any(|c| c.provider == Provider::TeleSign && signed_by(c));
            if !genuine {
                return Err(ApiError::webhook_not_signed("Authorization signature"));
            }
            match TeleSignDeliveryReport::from_json(&body) {
                Ok(report) => {
                    let status = DeliveryStatus::from_telesign(report.status_code);
                    let code = report.status_code.to_string();
                    let failed =
                        matches!(status, DeliveryStatus::Failed | DeliveryStatus::Undelivered);
                    report_delivery(
                        state,
                        Provider::TeleSign,
                        &report.reference_id,
                        status,
                        failed.then_some(code.as_str()),
                    )
                    .await?;
                    return Ok(StatusCode::OK.into_response());
                }
                Err(TeleSignError::NotInboundSms(_)) => {}
                Err(e) => return Err(bad_request(e.to_string())),
            }
            tracing::info!(
                target: "smsctx::sms",
                provider = "TeleSign",
                sub_resource = kind.as_deref().unwrap_or(""),
                "callback acknowledged without action"
            );
            return Ok(StatusCode::OK.into_response());
        }
        Err(e) => return Err(bad_request(e.to_string())),
    };
    let org = parse_org_number(&inbound.to)
        .map_err(|e| bad_request(format!("user_response.sender_id: {e}")))?;
    let channel = channel_of(state, &org, Provider::TeleSign).await?;
    if !signed_by(&channel) {
        return Err(ApiError::webhook_not_signed("Authorization signature"));
    }
    let from = inbound.from.as_str();
    let customer = if from.bytes().all(|b| b.is_ascii_digit()) {
        PhoneNumber::parse_omnichannel(from).map_err(|e| e.into())
    } else {
        parse_customer_number(from, &org)
    }
    .map_err(|e: crate::execute::sms::SmsError| {
        bad_request(format!("user_response.phone_number: {e}"))
    })?;
    land(
        state,
        Inbound {
            channel: &channel,
            customer: &customer,
            message_id: &inbound.reference_id,
            body: &inbound.body,
        },
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

// ---- the Web API side --------------------------------------------------------------------

/// `/smsctx_smschannels` (GET, POST) and `/smsctx_smschannels({id})` (GET, PATCH, DELETE),
/// routed by [`crate::parse::path`]. Channels are organisation settings holding provider
/// secrets: the guard lets only a role with privileges on the channel table (of the built-in
/// ones, System Administrator) read or change them.
pub(super) async fn channels(call: &Call<'_>, id: Option<Uuid>) -> Result<Response, ApiError> {
    let sms = &call.state.sms.sms;
    let service = &call.state.service;
    let (db, caller, root) = (call.db, &call.caller, call.root.as_str());
    match (call.method.clone(), id) {
        (Method::GET, None) => {
            let value: Vec<Json> = sms
                .channels(db)
                .await?
                .iter()
                .map(|c| Json::Object(channel_json(sms, c, None)))
                .collect();
            let body = json!({
                "@odata.context": format!("{root}$metadata#{CHANNEL_SET}"),
                "value": value,
            });
            Ok(json_response(StatusCode::OK, &body))
        }
        (Method::POST, None) => {
            let input = new_channel(sms, &service.catalog, &object(&call.body)?)?;
            let channel = sms.add_channel(service, db, caller, input).await?;
            let mut response = json_response(
                StatusCode::CREATED,
                &Json::Object(channel_json(sms, &channel, Some(root))),
            );
            if let Ok(v) = HeaderValue::from_str(&channel_url(root, channel.id)) {
                response.headers_mut().insert("OData-EntityId", v);
            }
            Ok(response)
        }
        (Method::GET, Some(id)) => {
            let channel = sms
                .channel(db, id)
                .await?
                .ok_or(crate::execute::sms::SmsError::ChannelNotFound(id))?;
            Ok(json_response(
                StatusCode::OK,
                &Json::Object(channel_json(sms, &channel, Some(root))),
            ))
        }
        (Method::PATCH, Some(id)) => {
            let changes = channel_changes(&service.catalog, &object(&call.body)?)?;
            let channel = sms.update_channel(service, db, caller, id, changes).await?;
            // As every table: 204 with the record's URL, its body only when asked for.
            if call.prefer.return_representation {
                return Ok(json_response(
                    StatusCode::OK,
                    &Json::Object(channel_json(sms, &channel, Some(root))),
                ));
            }
            let mut response = StatusCode::NO_CONTENT.into_response();
            if let Ok(v) = HeaderValue::from_str(&channel_url(root, channel.id)) {
                response.headers_mut().insert("OData-EntityId", v);
            }
            Ok(response)
        }
        (Method::DELETE, Some(id)) => {
            sms.delete_channel(service, db, caller, id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (method, _) => Err(ApiError::method_not_allowed(&method)),
    }
}

/// `POST /msdyn_smsengagementctxes({id})/Microsoft.Dynamics.CRM.smsctx_SendSms`: the guard
/// lets it read the context only with Write on it.
pub(super) async fn send_sms(call: &Call<'_>, id: Uuid) -> Result<Response, ApiError> {
    if call.method != Method::POST {
        return Err(ApiError::method_not_allowed(&call.method));
    }
    let parameters = object(&call.body)?;
    for name in parameters.keys() {
        if name != SEND_SMS_MESSAGE {
            return Err(bad_request(format!(
                "The parameter '{name}' is not a parameter of {SEND_SMS} (only '{SEND_SMS_MESSAGE}')."
            )));
        }
    }
    let text = parameters
        .get(SEND_SMS_MESSAGE)
        .and_then(Json::as_str)
        .ok_or_else(|| {
            bad_request(format!(
                "{SEND_SMS} needs the string parameter '{SEND_SMS_MESSAGE}'."
            ))
        })?;
    let sent = call
        .state
        .sms
        .sms
        .send(&call.state.service, call.db, &call.caller, id, text)
        .await?;
    let body = json!({
        "@odata.context": format!("{}$metadata#Microsoft.Dynamics.CRM.{SEND_SMS}Response", call.root),
        "MessageId": sent.message_id,
        "Provider": sent.provider.label(),
    });
    Ok(json_response(StatusCode::OK, &body))
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            "application/json; odata.metadata=minimal",
        )],
        body.to_string(),
    )
        .into_response()
}

fn channel_url(root: &str, id: Uuid) -> String {
    format!("{root}{CHANNEL_SET}({id})")
}

/// A channel as reads show it: the secret masked.
fn channel_json(sms: &Sms, channel: &Channel, root: Option<&str>) -> Map<String, Json> {
    let mut out = Map::new();
    if let Some(root) = root {
        out.insert(
            "@odata.context".into(),
            json!(format!("{root}$metadata#{CHANNEL_SET}/$entity")),
        );
    }
    let date = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    out.insert(
        "@odata.etag".into(),
        json!(format!("W/\"{}\"", channel.version)),
    );
    out.insert(sms.channel_table().primary_id.clone(), json!(channel.id));
    out.insert(CHANNEL_NAME.into(), json!(channel.name));
    out.insert(
        CHANNEL_PROVIDER.into(),
        json!(channel.provider.label().to_ascii_lowercase()),
    );
    out.insert(
        CHANNEL_NUMBER.into(),
        json!(channel.number.omnichannel_form()),
    );
    out.insert(CHANNEL_ACCOUNT.into(), json!(channel.account));
    out.insert(CHANNEL_SECRET.into(), json!(mask(&channel.secret)));
    out.insert(CHANNEL_PUBLIC_URL.into(), json!(channel.public_url));
    out.insert(CHANNEL_AUTO_REPLY.into(), json!(channel.auto_reply));
    out.insert(
        CHANNEL_OWNER_ID.into(),
        json!(channel.default_owner.as_ref().map(|o| o.id)),
    );
    out.insert(
        CHANNEL_OWNER_TYPE.into(),
        json!(channel.default_owner.as_ref().map(|o| o.table.clone())),
    );
    out.insert(CHANNEL_API_BASE_URL.into(), json!(channel.api_base_url));
    out.insert(
        CHANNEL_INACTIVITY_TIMEOUT.into(),
        json!(channel.inactivity_timeout),
    );
    out.insert(CREATED_ON.into(), json!(date(channel.created_on)));
    out.insert(MODIFIED_ON.into(), json!(date(channel.modified_on)));
    out
}

fn object(body: &[u8]) -> Result<Map<String, Json>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("The body is not a JSON object: {e}")))
}

const OWNER_BIND: &str = "smsctx_defaultownerid@odata.bind";

/// Text of a member: a string, or `null` (`Some(None)`); absent is `None`.
fn member(object: &Map<String, Json>, name: &str) -> Result<Option<Option<String>>, ApiError> {
    match object.get(name) {
        None => Ok(None),
        Some(Json::Null) => Ok(Some(None)),
        Some(Json::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(bad_request(format!(
            "The property '{name}' must be a string."
        ))),
    }
}

/// The inactivity timeout: a whole number of minutes, or `null` (`Some(None)`).
fn minutes(object: &Map<String, Json>) -> Result<Option<Option<i64>>, ApiError> {
    match object.get(CHANNEL_INACTIVITY_TIMEOUT) {
        None => Ok(None),
        Some(Json::Null) => Ok(Some(None)),
        Some(Json::Number(n)) if n.as_i64().is_some() => Ok(Some(n.as_i64())),
        Some(_) => Err(bad_request(format!(
            "The property '{CHANNEL_INACTIVITY_TIMEOUT}' must be a whole number of minutes or null."
        ))),
    }
}

fn check_members(object: &Map<String, Json>, allowed: &[&str]) -> Result<(), ApiError> {
    for name in object.keys() {
        if !allowed.contains(&name.as_str()) && !name.starts_with("@odata.") {
            return Err(ApiError::bad_payload(format!(
                "The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{CHANNEL}'."
            )));
        }
    }
    Ok(())
}

const WRITABLE: &[&str] = &[
    CHANNEL_NAME,
    CHANNEL_ACCOUNT,
    CHANNEL_SECRET,
    CHANNEL_PUBLIC_URL,
    CHANNEL_AUTO_REPLY,
    CHANNEL_API_BASE_URL,
    CHANNEL_INACTIVITY_TIMEOUT,
    OWNER_BIND,
];

fn new_channel(
    sms: &Sms,
    catalog: &Catalog,
    object: &Map<String, Json>,
) -> Result<NewChannel, ApiError> {
    let mut allowed = WRITABLE.to_vec();
    allowed.extend([CHANNEL_PROVIDER, CHANNEL_NUMBER]);
    check_members(object, &allowed)?;
    let required = |name: &str| -> Result<String, ApiError> {
        member(object, name)?
            .flatten()
            .ok_or_else(|| bad_request(format!("The property '{name}' is required.")))
    };
    let provider = match object.get(CHANNEL_PROVIDER) {
        Some(Json::Number(n)) => match n.as_i64().and_then(|v| sms.provider_of(v)) {
            Some(provider) => provider.label().to_owned(),
            None => {
                return Err(bad_request(format!(
                    "The provider {n} is not an option of {CHANNEL_PROVIDER}."
                )))
            }
        },
        _ => required(CHANNEL_PROVIDER)?,
    };
    Ok(NewChannel {
        provider,
        number: required(CHANNEL_NUMBER)?,
        secret: required(CHANNEL_SECRET)?,
        account: member(object, CHANNEL_ACCOUNT)?.flatten(),
        public_url: member(object, CHANNEL_PUBLIC_URL)?.flatten(),
        name: member(object, CHANNEL_NAME)?.flatten(),
        auto_reply: member(object, CHANNEL_AUTO_REPLY)?.flatten(),
        api_base_url: member(object, CHANNEL_API_BASE_URL)?.flatten(),
        default_owner: owner_bind(catalog, object)?.flatten(),
        inactivity_timeout: minutes(object)?.flatten(),
    })
}

fn channel_changes(
    catalog: &Catalog,
    object: &Map<String, Json>,
) -> Result<ChannelChanges, ApiError> {
    for fixed in [CHANNEL_PROVIDER, CHANNEL_NUMBER] {
        if object.contains_key(fixed) {
            return Err(bad_request(format!(
                "The property '{fixed}' of a channel cannot be changed; delete the channel and add it again."
            )));
        }
    }
    check_members(object, WRITABLE)?;
    let secret = match member(object, CHANNEL_SECRET)? {
        Some(Some(secret)) => Some(secret),
        Some(None) => return Err(bad_request("The secret of a channel cannot be cleared.")),
        None => None,
    };
    let name = match member(object, CHANNEL_NAME)? {
        Some(Some(name)) => Some(name),
        Some(None) => return Err(bad_request("The name of a channel cannot be cleared.")),
        None => None,
    };
    Ok(ChannelChanges {
        name,
        secret,
        account: member(object, CHANNEL_ACCOUNT)?,
        public_url: member(object, CHANNEL_PUBLIC_URL)?,
        auto_reply: member(object, CHANNEL_AUTO_REPLY)?,
        api_base_url: member(object, CHANNEL_API_BASE_URL)?,
        default_owner: owner_bind(catalog, object)?,
        inactivity_timeout: minutes(object)?,
    })
}

/// `"smsctx_defaultownerid@odata.bind": "/teams(<id>)"` or `"/systemusers(<id>)"`, or null.
fn owner_bind(
    catalog: &Catalog,
    object: &Map<String, Json>,
) -> Result<Option<Option<Owner>>, ApiError> {
    let Some(text) = member(object, OWNER_BIND)? else {
        return Ok(None);
    };
    let Some(text) = text else {
        return Ok(Some(None));
    };
    Ok(Some(Some(parse_owner(catalog, &text).ok_or_else(
        || {
            bad_request(format!(
                "'{text}' is not a reference to a team or a systemuser, like /teams(<id>)."
            ))
        },
    )?)))
}

/// `/teams(<id>)`, `teams(<id>)`, `/systemusers(<id>)` (a team's or a user's entity set in
/// `catalog`).
pub fn parse_owner(catalog: &Catalog, text: &str) -> Option<Owner> {
    let (entity, id) = crate::parse::path::parse_reference(catalog, text)?;
    [TEAM, SYSTEM_USER]
        .contains(&entity.logical_name.as_str())
        .then(|| Owner {
            table: entity.logical_name.clone(),
            id,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_references() {
        let catalog = Catalog::builtin().unwrap();
        let parse_owner = |text: &str| parse_owner(&catalog, text);
        let id = Uuid::new_v4();
        assert_eq!(
            parse_owner(&format!("/teams({id})")),
            Some(Owner {
                table: TEAM.into(),
                id
            })
        );
        assert_eq!(
            parse_owner(&format!("systemusers({id})")).unwrap().table,
            SYSTEM_USER
        );
        assert_eq!(parse_owner(&format!("/accounts({id})")), None);
        assert_eq!(parse_owner("/teams(x)"), None);
    }
}
