//! Bearer tokens as Microsoft Entra ID issues them: validation, and minting for local use.
//!
//! A [`JwtVerifier`] accepts HS256 tokens signed with a shared secret (`--jwt-secret`) and RS256
//! or ES256 tokens signed by a key of a JWKS document (`--jwks`; fetching the document from a
//! file or a URL is the caller's business, this module takes its text). When an issuer or an
//! audience is configured, the token must carry it (`iss`, `aud`). `exp` is required; `exp` and
//! `nbf` are checked with 60 seconds of leeway for clock skew. A valid token yields its `oid`
//! claim, the user's Entra object id, which the caller maps to
//! `systemuser.azureactivedirectoryobjectid`.
//!
//! Algorithms are never taken on the token's word: an HS256 token is checked only against the
//! shared secret and an RS256/ES256 token only against JWKS keys of that algorithm, so a verifier
//! with only a JWKS refuses HS256 tokens (including ones "signed" with a public key as the HMAC
//! secret), and `alg: none` is refused as malformed. Symmetric (`oct`) keys in a JWKS are ignored
//! for the same reason.
//!
//! Every failure is a [`JwtError`]; the HTTP edge answers them all with the same 401, so the
//! variants exist for logs and tests, not for clients.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;

/// Why a token was refused. All of them are the same 401 to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("no configured key matches the token")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not the configured one")]
    WrongIssuer,
    #[error("the token's audience is not the configured one")]
    WrongAudience,
    #[error("the token has no oid claim holding a Guid")]
    MissingOid,
}

/// A JWKS document that yields no usable key, or is not a JWKS at all (a configuration error,
/// reported at startup rather than per request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the JWKS document is not valid JSON with a \"keys\" array: {0}")]
    Invalid(String),
    #[error("the JWKS document has no RS256 or ES256 signing key")]
    NoUsableKey,
}

/// One JWKS key, with the algorithm it verifies.
struct JwksKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Validates bearer tokens (see the module doc).
#[derive(Default)]
pub struct JwtVerifier {
    secret: Option<DecodingKey>,
    jwks: Vec<JwksKey>,
    issuers: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("JwtVerifier")
            .field("secret", &self.secret.is_some())
            .field("jwks_keys", &self.jwks.len())
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier that accepts nothing until keys are added.
    pub fn new() -> JwtVerifier {
        JwtVerifier::default()
    }

    /// Accepts HS256 tokens signed with this secret.
    pub fn with_secret(mut self, secret: &[u8]) -> JwtVerifier {
        self.secret = Some(DecodingKey::from_secret(secret));
        self
    }

    /// Accepts RS256 and ES256 tokens signed by a key of this JWKS document (its text). Keys of
    /// other types, curves or algorithms, and keys whose `use` is not `sig`, are skipped.
    pub fn with_jwks(mut self, jwks: &str) -> Result<JwtVerifier, JwksError> {
        let document: Value =
            serde_json::from_str(jwks).map_err(|e| JwksError::Invalid(e.to_string()))?;
        let keys = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError::Invalid("no \"keys\" array".into()))?;
        let usable: Vec<JwksKey> = keys.iter().filter_map(usable_key).collect();
        if usable.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        self.jwks.extend(usable);
        Ok(self)
    }

    /// Requires `iss` to be this issuer (calling it again adds another accepted issuer).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> JwtVerifier {
        self.issuers
            .get_or_insert_with(Vec::new)
            .push(issuer.into());
        self
    }

    /// Requires `aud` to contain this audience (calling it again adds another accepted one).
    pub fn with_audience(mut self, audience: impl Into<String>) -> JwtVerifier {
        self.audiences
            .get_or_insert_with(Vec::new)
            .push(audience.into());
        self
    }

    /// Whether any key is configured.
    pub fn is_configured(&self) -> bool {
        self.secret.is_some() || !self.jwks.is_empty()
    }

    /// Validates a token and returns its `oid` claim.
    pub fn verify(&self, token: &str) -> Result<Uuid, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let validation = self.validation(header.alg);
        let claims = match header.alg {
            Algorithm::HS256 => {
                let key = self.secret.as_ref().ok_or(JwtError::UnsupportedAlgorithm)?;
                decode(token, key, &validation)?
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let mut candidates = self.jwks.iter().filter(|k| {
                    k.algorithm == header.alg
                        && match (&header.kid, &k.kid) {
                            (Some(wanted), Some(kid)) => wanted == kid,
                            (Some(_), None) => false,
                            (None, _) => true,
                        }
                });
                let first = candidates.next().ok_or(JwtError::UnknownKey)?;
                // Without a `kid`, any key of the algorithm may have signed it: try each.
                let mut result = decode(token, &first.key, &validation);
                for key in candidates {
                    if !matches!(result, Err(JwtError::BadSignature)) {
                        break;
                    }
                    result = decode(token, &key.key, &validation);
                }
                result?
            }
            _ => return Err(JwtError::UnsupportedAlgorithm),
        };
        claims
            .get("oid")
            .and_then(Value::as_str)
            .and_then(|oid| Uuid::parse_str(oid).ok())
            .ok_or(JwtError::MissingOid)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.issuers {
            Some(issuers) => {
                validation.set_issuer(issuers);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audiences {
            Some(audiences) => {
                validation.set_audience(audiences);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// A JWKS entry this verifier can use, with its algorithm: RSA keys verify RS256, P-256 keys
/// ES256; an `alg` member, when present, must agree.
fn usable_key(entry: &Value) -> Option<JwksKey> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    let declared_matches = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(_) => false,
    };
    if !declared_matches {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(JwksKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Map<String, Value>, JwtError> {
    jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            ErrorKind::ExpiredSignature => JwtError::Expired,
            ErrorKind::ImmatureSignature => JwtError::NotYetValid,
            ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
            ErrorKind::InvalidAudience => JwtError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => JwtError::WrongIssuer,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => JwtError::WrongAudience,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::InvalidKeyFormat => JwtError::UnsupportedAlgorithm,
            _ => JwtError::Malformed,
        })
}

/// What [`mint_with`] puts in a token besides the subject and the times.
#[derive(Debug, Clone, Default)]
pub struct MintOptions<'a> {
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
}

/// An HS256 token for `smsctx token`: `oid` and `sub` are `subject` (a systemuser id or an Entra
/// object id, as the CLI resolved it), valid from now for `ttl`.
pub fn mint(secret: &[u8], subject: Uuid, ttl: Duration) -> String {
    mint_with(secret, subject, ttl, &MintOptions::default())
}

/// [`mint`] with an issuer and an audience, for a server that checks them.
pub fn mint_with(secret: &[u8], subject: Uuid, ttl: Duration, options: &MintOptions<'_>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = Map::new();
    claims.insert("oid".into(), Value::String(subject.to_string()));
    claims.insert("sub".into(), Value::String(subject.to_string()));
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(ttl.as_secs()).into());
    if let Some(issuer) = options.issuer {
        claims.insert("iss".into(), Value::String(issuer.into()));
    }
    if let Some(audience) = options.audience {
        claims.insert("aud".into(), Value::String(audience.into()));
    }
    let header = Header::new(Algorithm::HS256);
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret))
        .expect("HMAC signing accepts any key and these claims always serialize")
}

#[cfg(test)]
mod tests {
    //! The RSA and EC key pairs under `testdata/` were generated for these tests only and guard
    //! nothing.

    use super::*;
    use base64::Engine;

    const SECRET: &[u8] = b"a shared secret of some length";
    const RSA_PRIVATE: &str = include_str!("testdata/rsa_private.pem");
    const EC_PRIVATE: &str = include_str!("testdata/ec_private.pem");
    const JWKS: &str = include_str!("testdata/jwks.json");
    const ISSUER: &str = "https://login.microsoftonline.com/tenant/v2.0";
    const AUDIENCE: &str = "api://smsctx";

    fn oid() -> Uuid {
        Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// Entra-like claims, valid for an hour.
    fn claims() -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("oid".into(), oid().to_string().into());
        c.insert("iss".into(), ISSUER.into());
        c.insert("aud".into(), AUDIENCE.into());
        c.insert("iat".into(), now().into());
        c.insert("nbf".into(), (now() - 5).into());
        c.insert("exp".into(), (now() + 3600).into());
        c
    }

    fn with(mut c: Map<String, Value>, key: &str, value: Value) -> Map<String, Value> {
        if value.is_null() {
            c.remove(key);
        } else {
            c.insert(key.into(), value);
        }
        c
    }

    fn hs256(claims: &Map<String, Value>, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn signed(alg: Algorithm, kid: Option<&str>, claims: &Map<String, Value>) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
            Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
            _ => unreachable!(),
        };
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    fn secret_verifier() -> JwtVerifier {
        JwtVerifier::new().with_secret(SECRET)
    }

    fn jwks_verifier() -> JwtVerifier {
        JwtVerifier::new().with_jwks(JWKS).unwrap()
    }

    #[test]
    fn a_valid_hs256_token_yields_its_oid() {
        assert_eq!(
            secret_verifier().verify(&hs256(&claims(), SECRET)),
            Ok(oid())
        );
    }

    #[test]
    fn minted_tokens_verify() {
        let token = mint(SECRET, oid(), Duration::from_secs(600));
        assert_eq!(secret_verifier().verify(&token), Ok(oid()));
        let strict = secret_verifier()
            .with_issuer(ISSUER)
            .with_audience(AUDIENCE);
        // Both claims are missing; which one is reported first is unspecified.
        assert!(matches!(
            strict.verify(&token),
            Err(JwtError::WrongIssuer | JwtError::WrongAudience)
        ));
        let options = MintOptions {
            issuer: Some(ISSUER),
            audience: Some(AUDIENCE),
        };
        let token = mint_with(SECRET, oid(), Duration::from_secs(600), &options);
        assert_eq!(strict.verify(&token), Ok(oid()));
    }

    #[test]
    fn an_expired_token_is_refused_after_the_leeway() {
        let v = secret_verifier();
        let expired = with(claims(), "exp", (now() - 120).into());
        assert_eq!(v.verify(&hs256(&expired, SECRET)), Err(JwtError::Expired));
        let within_leeway = with(claims(), "exp", (now() - 30).into());
        assert_eq!(v.verify(&hs256(&within_leeway, SECRET)), Ok(oid()));
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        let no_exp = with(claims(), "exp", Value::Null);
        assert_eq!(
            secret_verifier().verify(&hs256(&no_exp, SECRET)),
            Err(JwtError::Malformed)
        );
    }

    #[test]
    fn a_token_not_yet_valid_is_refused_beyond_the_leeway() {
        let v = secret_verifier();
        let future = with(claims(), "nbf", (now() + 120).into());
        assert_eq!(
            v.verify(&hs256(&future, SECRET)),
            Err(JwtError::NotYetValid)
        );
        let within_leeway = with(claims(), "nbf", (now() + 30).into());
        assert_eq!(v.verify(&hs256(&within_leeway, SECRET)), Ok(oid()));
    }

    #[test]
    fn a_wrong_signature_is_refused() {
        let token = hs256(&claims(), b"another secret");
        assert_eq!(
            secret_verifier().verify(&token),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let token = hs256(&claims(), SECRET);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let other = Uuid::from_u128(7);
        let payload = serde_json::to_vec(&with(claims(), "oid", other.to_string().into())).unwrap();
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
        assert_eq!(
            secret_verifier().verify(&parts.join(".")),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let v = secret_verifier()
            .with_issuer(ISSUER)
            .with_audience(AUDIENCE);
        assert_eq!(v.verify(&hs256(&claims(), SECRET)), Ok(oid()));
        let wrong_iss = with(claims(), "iss", "https://evil.example/".into());
        assert_eq!(
            v.verify(&hs256(&wrong_iss, SECRET)),
            Err(JwtError::WrongIssuer)
        );
        let no_iss = with(claims(), "iss", Value::Null);
        assert_eq!(
            v.verify(&hs256(&no_iss, SECRET)),
            Err(JwtError::WrongIssuer)
        );
        let wrong_aud = with(claims(), "aud", "api://other".into());
        assert_eq!(
            v.verify(&hs256(&wrong_aud, SECRET)),
            Err(JwtError::WrongAudience)
        );
        let no_aud = with(claims(), "aud", Value::Null);
        assert_eq!(
            v.verify(&hs256(&no_aud, SECRET)),
            Err(JwtError::WrongAudience)
        );
        let aud_list = with(
            claims(),
            "aud",
            serde_json::json!(["api://other", AUDIENCE]),
        );
        assert_eq!(v.verify(&hs256(&aud_list, SECRET)), Ok(oid()));
        // Not configured: not checked.
        assert_eq!(
            secret_verifier().verify(&hs256(&wrong_aud, SECRET)),
            Ok(oid())
        );
    }

    #[test]
    fn a_token_without_a_guid_oid_is_refused() {
        let v = secret_verifier();
        let no_oid = with(claims(), "oid", Value::Null);
        assert_eq!(v.verify(&hs256(&no_oid, SECRET)), Err(JwtError::MissingOid));
        let bad_oid = with(claims(), "oid", "not-a-guid".into());
        assert_eq!(
            v.verify(&hs256(&bad_oid, SECRET)),
            Err(JwtError::MissingOid)
        );
        let number = with(claims(), "oid", 42.into());
        assert_eq!(v.verify(&hs256(&number, SECRET)), Err(JwtError::MissingOid));
    }

    #[test]
    fn rs256_and_es256_tokens_verify_against_the_jwks() {
        let v = jwks_verifier();
        let rs = signed(Algorithm::RS256, Some("test-rsa-1"), &claims());
        assert_eq!(v.verify(&rs), Ok(oid()));
        let es = signed(Algorithm::ES256, Some("test-ec-1"), &claims());
        assert_eq!(v.verify(&es), Ok(oid()));
        // Without a kid every key of the algorithm is tried.
        let no_kid = signed(Algorithm::RS256, None, &claims());
        assert_eq!(v.verify(&no_kid), Ok(oid()));
        // A kid the document does not have.
        let unknown = signed(Algorithm::RS256, Some("rotated-away"), &claims());
        assert_eq!(v.verify(&unknown), Err(JwtError::UnknownKey));
        // The ES256 kid named on an RS256 token.
        let mismatched = signed(Algorithm::RS256, Some("test-ec-1"), &claims());
        assert_eq!(v.verify(&mismatched), Err(JwtError::UnknownKey));
        let expired = signed(
            Algorithm::RS256,
            Some("test-rsa-1"),
            &with(claims(), "exp", (now() - 120).into()),
        );
        assert_eq!(v.verify(&expired), Err(JwtError::Expired));
    }

    #[test]
    fn an_rs256_verifier_refuses_hs256_tokens() {
        let v = jwks_verifier();
        assert_eq!(
            v.verify(&hs256(&claims(), SECRET)),
            Err(JwtError::UnsupportedAlgorithm)
        );
        // The classic confusion: HMAC keyed with the public key's own text.
        let jwks: Value = serde_json::from_str(JWKS).unwrap();
        let n = jwks["keys"][0]["n"].as_str().unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("test-rsa-1".into());
        let forged =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(n.as_bytes()))
                .unwrap();
        assert_eq!(v.verify(&forged), Err(JwtError::UnsupportedAlgorithm));
    }

    #[test]
    fn a_secret_verifier_refuses_rs256_tokens() {
        let rs = signed(Algorithm::RS256, Some("test-rsa-1"), &claims());
        assert_eq!(secret_verifier().verify(&rs), Err(JwtError::UnknownKey));
    }

    #[test]
    fn alg_none_and_garbage_are_malformed() {
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
        };
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(&Value::Object(claims()))
        );
        let v = secret_verifier();
        assert_eq!(v.verify(&none), Err(JwtError::Malformed));
        assert_eq!(jwks_verifier().verify(&none), Err(JwtError::Malformed));
        for garbage in ["", "abc", "a.b.c", "...."] {
            assert_eq!(v.verify(garbage), Err(JwtError::Malformed), "{garbage:?}");
        }
    }

    #[test]
    fn other_algorithms_are_refused() {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(
            secret_verifier().verify(&token),
            Err(JwtError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn a_jwks_without_usable_keys_is_a_configuration_error() {
        assert!(matches!(
            JwtVerifier::new().with_jwks("not json"),
            Err(JwksError::Invalid(_))
        ));
        assert!(matches!(
            JwtVerifier::new().with_jwks(r#"{"nokeys": []}"#),
            Err(JwksError::Invalid(_))
        ));
        let only_oct = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"sym"}]}"#;
        assert!(matches!(
            JwtVerifier::new().with_jwks(only_oct),
            Err(JwksError::NoUsableKey)
        ));
        let encryption_key = JWKS.replace("\"sig\"", "\"enc\"");
        assert!(matches!(
            JwtVerifier::new().with_jwks(&encryption_key),
            Err(JwksError::NoUsableKey)
        ));
        assert!(!JwtVerifier::new().is_configured());
        assert!(jwks_verifier().is_configured());
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let text = format!("{:?}", secret_verifier().with_jwks(JWKS).unwrap());
        assert!(!text.contains("shared secret"));
        assert!(text.contains("jwks_keys: 2"));
    }
}
