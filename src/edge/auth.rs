//! Authentication: `Authorization: Bearer <token>` to a [`Caller`] and its [`Principal`].
//!
//! Two credentials: the admin token (bootstrap; it acts as the seeded administrator), and JWTs
//! as Microsoft Entra ID issues them, validated by [`JwtVerifier`] (HS256 with `--jwt-secret`,
//! RS256/ES256 with `--jwks`), whose `oid` claim names the user by
//! `systemuser.azureactivedirectoryobjectid`. A disabled or unknown user is refused. Every
//! failure is the same 401 with `WWW-Authenticate: Bearer`, with no hint of which part failed.
//!
//! Impersonation: `CallerObjectId` (an Entra object id) or `MSCRMCallerID` (a systemuser id)
//! makes the request run as that user, if the real caller holds `prvActOnBehalfOfAnotherUser`
//! ([`crate::security::impersonate`]).

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::error::ApiError;
use crate::authorize::{Directory, Principal, UserFacts};
use crate::execute::Caller;
use crate::security::jwt::JwtVerifier;
use crate::store::Access;

pub struct Authenticator {
    admin_token: String,
    admin_id: Uuid,
    verifier: JwtVerifier,
    pub directory: Arc<Directory>,
}

/// Who a request runs as.
pub struct Authenticated {
    pub caller: Caller,
    pub principal: Principal,
}

impl Authenticator {
    pub fn new(
        admin_token: String,
        admin_id: Uuid,
        verifier: JwtVerifier,
        directory: Arc<Directory>,
    ) -> Authenticator {
        Authenticator {
            admin_token,
            admin_id,
            verifier,
            directory,
        }
    }

    fn bearer(headers: &HeaderMap) -> Option<&str> {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
    }

    /// The user a token names, or 401.
    async fn user(&self, headers: &HeaderMap, db: &dyn Access) -> Result<UserFacts, ApiError> {
        let token = Self::bearer(headers).ok_or_else(ApiError::unauthorized)?;
        let user = if bool::from(token.as_bytes().ct_eq(self.admin_token.as_bytes())) {
            self.directory.user(db, self.admin_id).await?
        } else if self.verifier.is_configured() {
            match self.verifier.verify(token) {
                Ok(object_id) => self.directory.user_by_object_id(db, object_id).await?,
                Err(e) => {
                    tracing::debug!(cause = ?e, "bearer token refused");
                    None
                }
            }
        } else {
            None
        };
        match user {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(ApiError::unauthorized()),
        }
    }

    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        db: &dyn Access,
    ) -> Result<Authenticated, ApiError> {
        let user = self.user(headers, db).await?;
        let principal = self.directory.principal(db, &user, true).await?;
        let target = match impersonated(headers)? {
            None => None,
            Some(Impersonate::ObjectId(oid)) => {
                Some(self.directory.user_by_object_id(db, oid).await?)
            }
            Some(Impersonate::UserId(id)) => Some(self.directory.user(db, id).await?),
        };
        let Some(target) = target else {
            return Ok(Authenticated {
                caller: Caller {
                    user_id: user.id,
                    business_unit_id: user.business_unit_id,
                    on_behalf_of: None,
                },
                principal,
            });
        };
        if !principal.context.can_act_on_behalf {
            return Err(crate::security::Denied::CannotActOnBehalfOfAnotherUser {
                user_id: user.id,
            }
            .into());
        }
        let target = match target {
            Some(t) if !t.disabled => t,
            _ => {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "0x80040217",
                    "The user to impersonate does not exist or is disabled.",
                ))
            }
        };
        let target_principal = self.directory.principal(db, &target, true).await?;
        let context = crate::security::impersonate(&principal.context, target_principal.context)?;
        Ok(Authenticated {
            caller: Caller {
                user_id: target.id,
                business_unit_id: target.business_unit_id,
                on_behalf_of: Some(user.id),
            },
            principal: Principal {
                context,
                tree: target_principal.tree,
            },
        })
    }
}

enum Impersonate {
    ObjectId(Uuid),
    UserId(Uuid),
}

fn impersonated(headers: &HeaderMap) -> Result<Option<Impersonate>, ApiError> {
    let read = |name: &str| -> Result<Option<Uuid>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| Uuid::parse_str(s.trim()).ok())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        "0x80040203",
                        format!("The {name} header must be a GUID."),
                    )
                }),
        }
    };
    if let Some(oid) = read("callerobjectid")? {
        return Ok(Some(Impersonate::ObjectId(oid)));
    }
    Ok(read("mscrmcallerid")?.map(Impersonate::UserId))
}

/// A new random token: 256 bits from the operating system's generator, as hex.
pub fn generate_token() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")
}
