//! Authentication: `Authorization: Bearer <token>` to a [`Caller`].
//!
//! Today one credential exists: the admin token, which acts as the seeded administrator.
//! Every failure is the same 401, with no hint of which part failed.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::execute::Caller;

pub struct Authenticator {
    admin_token: String,
    admin: Caller,
}

impl Authenticator {
    pub fn new(admin_token: String, admin: Caller) -> Authenticator {
        Authenticator { admin_token, admin }
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(ApiError::unauthorized)?;
        if bool::from(token.as_bytes().ct_eq(self.admin_token.as_bytes())) {
            return Ok(self.admin.clone());
        }
        Err(ApiError::unauthorized())
    }
}

/// A new random token: 256 bits from the operating system's generator, as hex.
pub fn generate_token() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")
}
