//! Authentication: `Authorization: Bearer <token>` to a [`Caller`] and its [`Principal`].
//!
//! Two credentials: the admin token (bootstrap; it acts as the seeded administrator), and JWTs
//! as Microsoft Entra ID issues them, validated by [`JwtVerifier`] (HS256 with `--jwt-secret`,
//! RS256/ES256 with `--jwks`), whose `oid` claim names the user by
//! `systemuser.azureactivedirectoryobjectid`. A disabled or unknown user is refused. Every
//! failure is a 401 with `WWW-Authenticate: Bearer` whose message names the cause (expired, not
//! yet valid, bad signature, unknown or disabled user, ...), as Dataverse's do; the cause is
//! logged at `info` (never the token). The admin token is held only as its SHA-256.
//!
//! Impersonation: `CallerObjectId` (an Entra object id) or `MSCRMCallerID` (a systemuser id)
//! makes the request run as that user, if the real caller holds `prvActOnBehalfOfAnotherUser`
//! ([`crate::security::impersonate`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::error::ApiError;
use crate::authorize::{Directory, Principal, UserFacts};
use crate::execute::Caller;
use crate::security::jwt::JwtVerifier;
use crate::store::{Access, Store, StoreError};

pub struct Authenticator {
    /// The SHA-256 of the admin token.
    admin_token: [u8; 32],
    admin_id: Uuid,
    verifier: JwtVerifier,
    pub directory: Arc<Directory>,
    /// Principals built on this node, each under the security epoch read before building it.
    cache: Mutex<HashMap<Identity, Cached>>,
}

/// How a request names its user: by systemuser id (the admin token, `MSCRMCallerID`) or by
/// Entra object id (a JWT's `oid`, `CallerObjectId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Identity {
    User(Uuid),
    ObjectId(Uuid),
}

struct Cached {
    epoch: i64,
    user: UserFacts,
    principal: Arc<Principal>,
}

/// The most principals a node keeps; past it the cache starts again.
const CACHE_CAPACITY: usize = 10_000;

/// Who a request runs as, and who signed it in.
pub struct Authenticated {
    pub caller: Caller,
    pub principal: Arc<Principal>,
    signed_in: SignedIn,
}

/// The user a bearer token names (never an impersonated one), and the security epoch their
/// principal was read under: what a `$batch` part's own impersonation headers start from.
#[derive(Clone)]
struct SignedIn {
    user: UserFacts,
    principal: Arc<Principal>,
    epoch: i64,
}

impl Authenticator {
    pub fn new(
        admin_token: [u8; 32],
        admin_id: Uuid,
        verifier: JwtVerifier,
        directory: Arc<Directory>,
    ) -> Authenticator {
        Authenticator {
            admin_token,
            admin_id,
            verifier,
            directory,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The user an identity names and its principal: from this node's cache while the security
    /// epoch is the one they were built under, else read (and cached). Unknown users are not
    /// cached.
    async fn resolve(
        &self,
        identity: Identity,
        db: &dyn Access,
        epoch: i64,
    ) -> Result<Option<(UserFacts, Arc<Principal>)>, StoreError> {
        if let Ok(cache) = self.cache.lock() {
            if let Some(hit) = cache.get(&identity).filter(|c| c.epoch == epoch) {
                return Ok(Some((hit.user, Arc::clone(&hit.principal))));
            }
        }
        let user = match identity {
            Identity::User(id) => self.directory.user(db, id).await?,
            Identity::ObjectId(oid) => self.directory.user_by_object_id(db, oid).await?,
        };
        let Some(user) = user else {
            return Ok(None);
        };
        let principal = Arc::new(self.directory.principal(db, &user, true).await?);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            let cached = Cached {
                epoch,
                user,
                principal: Arc::clone(&principal),
            };
            cache.insert(identity, cached);
        }
        Ok(Some((user, principal)))
    }

    /// The bearer token, if the request carries one; an `Authorization` header with bytes
    /// outside its grammar is a 400, not a missing credential.
    fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = crate::parse::headers::ascii_text("Authorization", value.as_bytes())
            .map_err(|_| ApiError::malformed_authorization())?;
        Ok(value.trim().split_once(' ').and_then(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        }))
    }

    /// Who a token names, checked without touching the store (signature, lifetime, audience),
    /// or 401.
    fn identity(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let token = Self::bearer(headers)?.ok_or_else(ApiError::unauthorized)?;
        let hash = crate::app::token_hash(token);
        if bool::from(hash.ct_eq(&self.admin_token)) {
            return Ok(Identity::User(self.admin_id));
        }
        if !self.verifier.is_configured() {
            return Err(refused(Refused::NotAdminToken));
        }
        match self.verifier.verify(token) {
            Ok(object_id) => Ok(Identity::ObjectId(object_id)),
            Err(e) => Err(refused(Refused::Jwt(e))),
        }
    }

    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        store: &dyn Store,
    ) -> Result<Authenticated, ApiError> {
        // A bad token is refused before any read. The epoch is read before the facts it
        // validates, so a principal is never cached under an epoch newer than they are.
        let identity = self.identity(headers)?;
        let epoch = store.security_epoch().await?;
        let db: &dyn Access = store;
        let signed_in = match self.resolve(identity, db, epoch).await? {
            Some((user, principal)) if !user.disabled => SignedIn {
                user,
                principal,
                epoch,
            },
            Some((user, _)) => return Err(refused(Refused::Disabled(user.id))),
            None => return Err(refused(Refused::Unknown(identity))),
        };
        self.act_as(signed_in, headers, db).await
    }

    /// A `$batch` part that carries its own impersonation header (`MSCRMCallerID`,
    /// `CallerObjectId`) runs as that user, checked against the user who signed the batch in
    /// (the batch's own impersonation does not carry over to it); `None` when it carries none.
    pub async fn for_part(
        &self,
        batch: &Authenticated,
        part_headers: &HeaderMap,
        store: &dyn Store,
    ) -> Result<Option<Authenticated>, ApiError> {
        if impersonated(part_headers)?.is_none() {
            return Ok(None);
        }
        let db: &dyn Access = store;
        self.act_as(batch.signed_in.clone(), part_headers, db)
            .await
            .map(Some)
    }

    /// The signed-in user, or the user the impersonation headers name if the signed-in user
    /// may act on their behalf.
    async fn act_as(
        &self,
        signed_in: SignedIn,
        headers: &HeaderMap,
        db: &dyn Access,
    ) -> Result<Authenticated, ApiError> {
        let (user, principal, epoch) = (signed_in.user, &signed_in.principal, signed_in.epoch);
        let target = match impersonated(headers)? {
            None => None,
            Some(Impersonate::ObjectId(oid)) => {
                Some(self.resolve(Identity::ObjectId(oid), db, epoch).await?)
            }
            Some(Impersonate::UserId(id)) => {
                Some(self.resolve(Identity::User(id), db, epoch).await?)
            }
        };
        let Some(target) = target else {
            return Ok(Authenticated {
                caller: Caller {
                    user_id: user.id,
                    business_unit_id: user.business_unit_id,
                    on_behalf_of: None,
                },
                principal: Arc::clone(principal),
                signed_in,
            });
        };
        if !principal.context.can_act_on_behalf {
            return Err(crate::security::Denied::CannotActOnBehalfOfAnotherUser {
                user_id: user.id,
            }
            .into());
        }
        let (target, target_principal) = match target {
            Some((t, p)) if !t.disabled => (t, p),
            _ => return Err(ApiError::no_user_to_impersonate()),
        };
        let context =
            crate::security::impersonate(&principal.context, target_principal.context.clone())?;
        Ok(Authenticated {
            caller: Caller {
                user_id: target.id,
                business_unit_id: target.business_unit_id,
                on_behalf_of: Some(user.id),
            },
            principal: Arc::new(Principal {
                context,
                tree: Arc::clone(&target_principal.tree),
            }),
            signed_in,
        })
    }
}

/// Why a bearer token was refused.
enum Refused {
    /// Neither the admin token nor checkable as a JWT (no `--jwt-secret`/`--jwks`).
    NotAdminToken,
    Jwt(crate::security::jwt::JwtError),
    Unknown(Identity),
    Disabled(Uuid),
}

/// The 401 for `cause`, logged at `info` (the token itself never is).
fn refused(cause: Refused) -> ApiError {
    use crate::security::jwt::JwtError;
    let (logged, message) = match &cause {
        Refused::NotAdminToken => (
            "not the admin token, and no JWT validation is configured".to_string(),
            "the bearer token is not the admin token, and this server validates no JWTs \
             (start it with --jwt-secret or --jwks)",
        ),
        Refused::Jwt(e) => (
            e.to_string(),
            match e {
                JwtError::Expired => "the access token has expired",
                JwtError::NotYetValid => "the access token is not valid yet (nbf is in the future)",
                JwtError::BadSignature | JwtError::UnknownKey | JwtError::UnsupportedAlgorithm => {
                    "the access token's signature is invalid (no configured key verifies it)"
                }
                JwtError::Malformed => {
                    "the bearer token is neither the admin token nor a well-formed JWT"
                }
                JwtError::WrongIssuer => "the access token's issuer (iss) is not the one accepted",
                JwtError::WrongAudience => {
                    "the access token's audience (aud) is not the one accepted"
                }
                JwtError::MissingOid => "the access token has no oid claim holding a Guid",
            },
        ),
        Refused::Unknown(Identity::ObjectId(oid)) => (
            format!("no user has the object id {oid}"),
            "the user the access token names is unknown or disabled",
        ),
        Refused::Unknown(Identity::User(id)) => (
            format!("no user has the id {id}"),
            "the user the access token names is unknown or disabled",
        ),
        Refused::Disabled(id) => (
            format!("the user {id} is disabled"),
            "the user the access token names is unknown or disabled",
        ),
    };
    tracing::info!(cause = %logged, "bearer token refused");
    ApiError::unauthorized_because(message)
}

enum Impersonate {
    ObjectId(Uuid),
    UserId(Uuid),
}

fn impersonated(headers: &HeaderMap) -> Result<Option<Impersonate>, ApiError> {
    let read = |name: &str| -> Result<Option<Uuid>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|s| Uuid::parse_str(s.trim()).ok())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::invalid_argument(format!("The {name} header must be a GUID."))
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
