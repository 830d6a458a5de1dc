//! The one place where every layer's error becomes a Dataverse error response:
//! `{"error":{"code":"0x...","message":"..."}}` with the HTTP status Dataverse uses.
//! Server-side failures answer an opaque 500 and log their cause.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::execute::ExecError;
use crate::parse::ParseError;
use crate::schema::SchemaError;
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

    pub fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "0x80040203",
            format!("The request body is larger than the limit of {limit} bytes."),
        )
    }

    pub fn no_resource(uri: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "",
            format!("No HTTP resource was found that matches the request URI '{uri}'."),
        )
    }

    fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "0x80040216",
            "An unexpected error occurred.",
        )
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

impl From<crate::query::QueryError> for ApiError {
    fn from(e: crate::query::QueryError) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
    }
}

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> ApiError {
        use ExecError as E;
        let (status, code) = match &e {
            E::NotFound { .. } => (StatusCode::NOT_FOUND, "0x80040217"),
            E::Duplicate | E::Store(StoreError::Duplicate) => {
                (StatusCode::PRECONDITION_FAILED, "0x80040237")
            }
            E::VersionMismatch => (StatusCode::PRECONDITION_FAILED, "0x80060882"),
            E::InvalidStateStatus { .. } => (StatusCode::BAD_REQUEST, "0x80048408"),
            E::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "0x80040203"),
            E::AggregateLimit => (StatusCode::BAD_REQUEST, "0x8004E023"),
            E::MessageNotSupported { .. } => (StatusCode::BAD_REQUEST, "0x80040800"),
            E::UnknownEntity(_) => (StatusCode::BAD_REQUEST, "0x80041102"),
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
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "0x80040216",
                        "The database has no space left for this write; nothing was written. \
                         Retry once space has been freed.",
                    )
                }
            }
            E::Store(StoreError::Rule(rule)) => {
                return ApiError::new(StatusCode::BAD_REQUEST, "0x80040203", rule.clone())
            }
            E::Store(StoreError::Denied(denied)) => {
                return ApiError::new(StatusCode::FORBIDDEN, denied.code(), denied.message())
            }
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
            S::UnknownProperty { .. } => (StatusCode::BAD_REQUEST, "0x0"),
            S::UnknownCast(_) | S::UnknownSegment(_) => (StatusCode::NOT_FOUND, "0x8006088a"),
            S::BadQuery(_) => (StatusCode::BAD_REQUEST, "0x80060888"),
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

impl From<crate::security::Denied> for ApiError {
    fn from(e: crate::security::Denied) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, e.code(), e.message())
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
