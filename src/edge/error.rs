//! The one place where every layer's error becomes a Dataverse error response:
//! `{"error":{"code":"0x...","message":"..."}}` with the HTTP status Dataverse uses.
//! Server-side failures answer an opaque 500 and log their cause.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::execute::ExecError;
use crate::parse::ParseError;
use crate::query::QueryError;
use crate::schema::SchemaError;
use crate::security::Denied;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Retry-After` in seconds (429s).
    pub retry_after: Option<u64>,
    /// A `WWW-Authenticate` challenge other than the plain one every 401 carries.
    challenge: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// An `Authorization` header that is not a credential's grammar (RFC 6750's
    /// `invalid_request`: 400 with a challenge naming it).
    pub fn malformed_authorization() -> ApiError {
        ApiError {
            challenge: Some("Bearer realm=\"smsctx\", error=\"invalid_request\""),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "0x80040203",
                "The Authorization header contains bytes that are not allowed in it (only visible ASCII, spaces and tabs).",
            )
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "0x80072560",
            "The request is not authorized: a valid bearer token is required.",
        )
    }

    /// The 401 of a bearer token that was refused, naming why.
    pub fn unauthorized_because(cause: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "0x80072560",
            format!("The request is not authorized: {cause}."),
        )
    }

    pub fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "0x80040203",
            format!("The request body is larger than the limit of {limit} bytes."),
        )
    }

    pub fn body_timeout(deadline: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "0x80040216",
            format!(
                "The request body did not arrive within {} seconds.",
                deadline.as_secs_f64()
            ),
        )
    }

    pub fn no_resource(uri: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "",
            format!("No HTTP resource was found that matches the request URI '{uri}'."),
        )
    }

    /// A path outside the Web API's root (`/`, `/api`, `/api/data`, ...): a 404 whose message
    /// points at the root.
    pub fn outside_api(uri: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "0x80060888",
            format!(
                "No HTTP resource was found that matches the request URI '{uri}'. The Web API \
                 is at /api/data/v9.2/ (GET /api/data/v9.2/ lists the entity sets, \
                 /api/data/v9.2/$metadata describes them)."
            ),
        )
    }

    /// The console's development login is not offered here (`reason` says why).
    pub fn dev_login_unavailable(reason: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "0x80072560",
            format!("The development login is not available: {reason}."),
        )
    }

    /// A value the request gives that Dataverse refuses (InvalidArgument).
    pub fn invalid_argument(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "0x80040203", message)
    }

    /// A bulk message with more `Targets` than it takes. Dataverse's own code for this fault
    /// was not found in its published lists; InvalidArgument, with the limit named.
    pub fn too_many_targets(message: &str, count: usize, limit: usize) -> ApiError {
        ApiError::invalid_argument(format!(
            "The '{message}' request has {count} records in 'Targets'; at most {limit} are allowed in one request."
        ))
    }

    /// A body member or a part that the message does not declare.
    pub fn bad_payload(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "0x80048d19", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "0x80048d19", message)
    }

    /// A webhook whose `what` (a signature, an account) does not match the channel's
    /// credentials.
    pub fn webhook_not_signed(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "0x80040220",
            format!("The {what} is missing or does not match the channel's credentials."),
        )
    }

    /// A peer over the webhooks' rate limit: retry after a second.
    pub fn webhook_rate_limited() -> ApiError {
        ApiError::too_many(
            "0x80072322",
            "Number of webhook requests exceeded the limit; retry after a second.".into(),
            std::time::Duration::from_secs(1),
        )
    }

    /// Service protection: more than `max` requests of a user in `window`.
    pub fn request_count_exceeded(
        max: usize,
        window: std::time::Duration,
        retry_after: std::time::Duration,
    ) -> ApiError {
        ApiError::too_many(
            "0x80072322",
            format!(
                "Number of requests exceeded the limit of {max} over time window of {} seconds.",
                window.as_secs()
            ),
            retry_after,
        )
    }

    /// Service protection: more than `max` requests of a user at once.
    pub fn concurrency_exceeded(max: usize) -> ApiError {
        ApiError::too_many(
            "0x80072326",
            format!("Number of concurrent requests exceeded the limit of {max}."),
            std::time::Duration::from_secs(1),
        )
    }

    fn too_many(code: &'static str, message: String, retry_after: std::time::Duration) -> ApiError {
        let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message);
        error.retry_after = Some(retry_after.as_secs().max(1));
        error
    }

    /// Impersonation of a user that does not exist or is disabled.
    pub fn no_user_to_impersonate() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80040217",
            "The user to impersonate does not exist or is disabled.",
        )
    }

    /// The opaque answer to a server-side failure (its cause is logged where it happened).
    pub fn unexpected() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "0x80040216",
            "An unexpected error occurred.",
        )
    }

    pub fn method_not_allowed(method: &axum::http::Method) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "0x80060888",
            format!("The method {method} is not allowed here."),
        )
    }

    fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "request failed");
        ApiError::unexpected()
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> ApiError {
        use ParseError as P;
        let (status, code) = match &e {
            P::ResourceNotFound(_) => (StatusCode::NOT_FOUND, "0x8006088a"),
            P::NoResource(_) => (StatusCode::NOT_FOUND, ""),
            P::BadKey(_) | P::BadQuery(_) => (StatusCode::BAD_REQUEST, "0x80060888"),
            P::InvalidProperty { .. } | P::UnknownProperty { .. } => {
                (StatusCode::BAD_REQUEST, "0x0")
            }
            P::UndeclaredProperty(_) | P::LookupValueProperty(_) | P::Payload { .. } => {
                (StatusCode::BAD_REQUEST, "0x80048d19")
            }
            P::BadBind { .. } => (StatusCode::BAD_REQUEST, "0x80090800"),
            P::TooLong { .. } => (StatusCode::BAD_REQUEST, "0x80044331"),
            P::OptionOutOfRange { .. } => (StatusCode::BAD_REQUEST, "0x8004431a"),
            P::InvalidStateValue { .. } => (StatusCode::BAD_REQUEST, "0x80048408"),
            P::NumberOutOfRange { .. } | P::RequiredNull(_) | P::InvalidArgument(_) => {
                (StatusCode::BAD_REQUEST, "0x80040203")
            }
            P::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "0x80048d19"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// The Dataverse code of a query error (all are 400).
///
/// Errors raised by the OData library in Dataverse (unknown names, syntax, types) carry `0x0`;
/// errors about the values given to Dataverse's own query functions and limits carry the
/// generic InvalidArgument code.
pub fn query_code(e: &QueryError) -> &'static str {
    use QueryError as Q;
    match e {
        Q::InvalidFunctionArgument { .. }
        | Q::TooLong { .. }
        | Q::ConditionValueCount { .. }
        | Q::ConditionValue { .. }
        | Q::InvalidCondition { .. }
        | Q::InvalidFetch { .. }
        | Q::FetchUnsupported { .. }
        | Q::SqlSyntax { .. }
        | Q::SqlUnsupported { .. }
        | Q::QueryExpression { .. } => "0x80040203",
        Q::InvalidSkipToken { .. } | Q::BadCombination { .. } => "0x80060888",
        Q::InvalidXml { .. } => "0x80040201",
        Q::UnknownEntity { .. } => "0x80041102",
        Q::UnknownAttribute { .. } => "0x80041103",
        Q::UnknownOperator { .. } => "0x80041120",
        Q::InvalidLinkType { .. } => "0x80041117",
        Q::UnknownProperty { .. }
        | Q::UnterminatedLiteral { .. }
        | Q::Syntax { .. }
        | Q::IncompatibleTypes { .. }
        | Q::NoFunctionSignature { .. }
        | Q::UnknownFunction { .. }
        | Q::UndefinedAlias { .. }
        | Q::TooDeep
        | Q::InvalidTop { .. }
        | Q::InvalidCount { .. }
        | Q::UnknownOption { .. }
        | Q::Unsupported { .. }
        | Q::LambdaNotOnCollection
        | Q::TooManyRelationships { .. }
        | Q::DuplicateOption { .. }
        | Q::InvalidApply { .. }
        | Q::FetchXmlSchema { .. } => "0x0",
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, query_code(&e), e.to_string())
    }
}

/// The Dataverse code of a denial (all are 403).
pub fn denied_code(d: &Denied) -> &'static str {
    match d {
        Denied::MissingPrivilege { .. } => "0x80040220",
        Denied::NoAccess { .. } => "0x80048306",
        Denied::CannotActOnBehalfOfAnotherUser { .. } => "0x8004A110",
        Denied::SystemAdministratorRoleReadOnly { delete: false, .. } => "0x80041d31",
        Denied::SystemAdministratorRoleReadOnly { delete: true, .. } => "0x80041d2e",
        Denied::RoleOfAnotherBusinessUnit { team: false, .. } => "0x80041409",
        Denied::RoleOfAnotherBusinessUnit { team: true, .. } => "0x8004140d",
        Denied::NotSystemAdministrator { .. } => "0x80040220",
        Denied::MissingAuditPrivilege { .. } => "0x80040220",
    }
}

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> ApiError {
        use ExecError as E;
        let (status, code) = match &e {
            E::NotFound { .. } => (StatusCode::NOT_FOUND, "0x80040217"),
            // RecordNotFoundByEntityKey.
            E::KeyNotFound { .. } => (StatusCode::NOT_FOUND, "0x80060891"),
            // DuplicateAlternateKey: the key's values are not unique.
            E::AmbiguousKey { .. } => (StatusCode::PRECONDITION_FAILED, "0x80060892"),
            E::Duplicate | E::Store(StoreError::Duplicate) => {
                (StatusCode::PRECONDITION_FAILED, "0x80040237")
            }
            E::VersionMismatch => (StatusCode::PRECONDITION_FAILED, "0x80060882"),
            E::InvalidStateStatus { .. } => (StatusCode::BAD_REQUEST, "0x80048408"),
            E::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "0x80040203"),
            E::AggregateLimit => (StatusCode::BAD_REQUEST, "0x8004E023"),
            E::MessageNotSupported { .. } => (StatusCode::BAD_REQUEST, "0x80040800"),
            E::UnknownEntity(_) => (StatusCode::BAD_REQUEST, "0x80041102"),
            E::InvalidDeltaToken(_) => (StatusCode::BAD_REQUEST, "0x80040203"),
            // ExpiredVersionStamp: the client must start again with a full read.
            E::ExpiredDeltaToken => (StatusCode::BAD_REQUEST, "0x80044352"),
            E::ChangeTrackingNotEnabled(_) => (StatusCode::BAD_REQUEST, "0x80040203"),
            E::ChangeTrackingOption(_) => (StatusCode::BAD_REQUEST, "0x80060888"),
            E::Query(query) => return query.clone().into(),
            E::Store(StoreError::Closed) => {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "0x80040216",
                    "The service is shutting down.",
                )
            }
            E::Store(StoreError::Busy) => {
                // Dataverse's code for too many concurrent requests, as a 503: the server,
                // not the caller's share of it, is out of room.
                return ApiError {
                    retry_after: Some(crate::store::admission::RETRY_AFTER_SECONDS),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "0x80072326",
                        "The server is busy: every database connection is in use and the \
                         queue of waiting requests is full. Retry after the time in Retry-After.",
                    )
                };
            }
            E::Store(StoreError::Full) => {
                return ApiError {
                    retry_after: Some(30),
                    // AzureSqlDatabaseStorageQuotaExceededError: "The storage limit for the
                    // database has been met."
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "0x80072325",
                        "The storage limit for the database has been met: the disk is full and \
                         nothing was written. Retry once space has been freed.",
                    )
                };
            }
            E::Store(StoreError::DuplicateKey(detail)) => {
                return ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "0x80060892",
                    format!(
                        "A record that has the attribute values of an alternate key already \
                         exists: the entity key requires that this set of attributes contains \
                         unique values ({detail})."
                    ),
                )
            }
            E::Store(StoreError::Rule { rule, message }) => {
                // BusinessManagementLoopBeingCreated for a loop; InvalidArgument for the rest.
                let code = match rule {
                    crate::store::Rule::BusinessUnitLoop => "0x80041d21",
                    crate::store::Rule::Other => "0x80040203",
                };
                return ApiError::new(StatusCode::BAD_REQUEST, code, message.clone());
            }
            E::Store(StoreError::Denied(denied)) => return ApiError::from((**denied).clone()),
            E::Store(StoreError::Query(q)) if q.is_caused_by_input() => {
                return ApiError::new(StatusCode::BAD_REQUEST, "0x80040203", q.to_string())
            }
            E::Store(cause) => return ApiError::internal(cause),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<SchemaError> for ApiError {
    fn from(e: SchemaError) -> ApiError {
        use SchemaError as S;
        let (status, code) = match &e {
            S::UnknownEntity(_) => (StatusCode::BAD_REQUEST, "0x80041102"),
            S::UnknownAttribute { .. } => (StatusCode::BAD_REQUEST, "0x80041103"),
            S::UnknownProperty { .. } | S::BadQuery(_) => (StatusCode::BAD_REQUEST, "0x80060888"),
            S::CannotChange { .. } | S::BadPayload(_) => (StatusCode::BAD_REQUEST, "0x80040203"),
            S::UnknownCast(_) | S::UnknownSegment(_) => (StatusCode::NOT_FOUND, "0x8006088a"),
            S::UnknownMember { .. }
            | S::UnknownRelationship(_)
            | S::UnknownOptionSet(_)
            | S::UnknownRecord { .. } => (StatusCode::NOT_FOUND, "0x80040217"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::execute::sms::SmsError> for ApiError {
    fn from(e: crate::execute::sms::SmsError) -> ApiError {
        use crate::execute::sms::SmsError as S;
        let (status, code) = match &e {
            S::Exec(_) => {
                let S::Exec(inner) = e else { unreachable!() };
                return inner.into();
            }
            S::Phone(_) | S::InvalidChannel(_) | S::ContextWithoutNumbers(_) | S::Outbound(_) => {
                (StatusCode::BAD_REQUEST, "0x80040203")
            }
            S::UnknownChannel(_) | S::ChannelNotFound(_) | S::ContextNotFound(_) => {
                (StatusCode::NOT_FOUND, "0x80040217")
            }
            S::ChannelExists(_) => (StatusCode::PRECONDITION_FAILED, "0x80040237"),
            S::ProviderRefused { .. } | S::ProviderUnreachable(_) => {
                tracing::warn!(cause = %e, "outbound SMS failed");
                (StatusCode::BAD_GATEWAY, "0x80040216")
            }
            S::Contention => (StatusCode::SERVICE_UNAVAILABLE, "0x80040216"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::authorize::MessageError> for ApiError {
    fn from(e: crate::authorize::MessageError) -> ApiError {
        match e {
            crate::authorize::MessageError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "0x80040217", e.to_string())
            }
            crate::authorize::MessageError::Store(e) => e.into(),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(e: Denied) -> ApiError {
        let status = match e {
            Denied::SystemAdministratorRoleReadOnly { .. }
            | Denied::RoleOfAnotherBusinessUnit { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        };
        ApiError::new(status, denied_code(&e), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ExecError::Store(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; odata.metadata=minimal"),
        );
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                headers.insert(header::RETRY_AFTER, value);
            }
        }
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        } else if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"smsctx\""),
            );
        }
        response
    }
}
