//! OAuth 2.0 for service apps, as Okta does it for its management APIs (API-NOTES §6.2, §6.3):
//! the client-credentials grant at `POST /oauth2/v1/token` with a `private_key_jwt` client
//! assertion, checked for real (signature against the app's registered JWKS, `aud`, `iss` = `sub`
//! = client id, `exp` at most 1 h ahead, a replayed `jti` refused), issuing access tokens that
//! expire after Okta's fixed hour; optionally DPoP-bound, with the `use_dpop_nonce` handshake.
//!
//! Pure apart from randomness: the caller passes the clock (epoch seconds).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Okta fixes service-app access tokens at one hour.
pub const TOKEN_LIFETIME_SECS: i64 = 3600;
/// A client assertion may expire at most this far ahead.
pub const MAX_ASSERTION_SECS: i64 = 3600;
/// How far a DPoP proof's `iat` may be from now.
const DPOP_IAT_WINDOW_SECS: i64 = 300;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SIGNING_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// A registered service app.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceApp {
    pub client_id: String,
    /// The app's public keys.
    pub jwks: JwkSet,
    /// The Okta scopes granted to the app.
    pub scopes: Vec<String>,
    /// `settings.oauthClient.dpop_bound_access_tokens`.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
}

#[derive(Debug, Clone)]
struct Issued {
    scopes: Vec<String>,
    expires: i64,
    /// The JWK thumbprint the token is bound to (DPoP).
    jkt: Option<String>,
}

#[derive(Default)]
pub struct OAuth {
    apps: HashMap<String, ServiceApp>,
    tokens: HashMap<String, Issued>,
    /// Assertion `jti`s seen, with their `exp` (forgotten once expired).
    used_jti: HashMap<String, i64>,
    used_proof_jti: HashMap<String, i64>,
    nonce: String,
}

/// The token endpoint's error body, RFC 6749 §5.2 style, as Okta sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthError {
    #[serde(skip)]
    pub status: u16,
    pub error: &'static str,
    pub error_description: String,
    /// For `use_dpop_nonce`: the nonce to retry with (`DPoP-Nonce` header).
    #[serde(skip)]
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            error_description: description.into(),
            dpop_nonce: None,
        }
    }
    fn client(description: impl Into<String>) -> Self {
        OAuthError::new(401, "invalid_client", description)
    }
    fn proof(description: impl Into<String>) -> Self {
        OAuthError::new(400, "invalid_dpop_proof", description)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenResponse {
    pub token_type: &'static str,
    pub expires_in: i64,
    pub access_token: String,
    pub scope: String,
}

/// Why a resource request's credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: unknown, expired or wrongly presented token.
    InvalidToken,
    /// 401: a DPoP-bound token without a valid proof.
    InvalidProof,
    /// 403: a valid token without the scope the endpoint needs.
    InsufficientScope,
}

/// What a resource request presents: `Authorization: <scheme> <token>`, its `DPoP` header, and
/// its own method and URL (which a DPoP proof must name).
#[derive(Debug, Clone, Copy)]
pub struct ResourceRequest<'a> {
    pub scheme: &'a str,
    pub token: &'a str,
    pub dpop: Option<&'a str>,
    pub method: &'a str,
    pub url: &'a str,
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    jti: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProofClaims {
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<i64>,
    jti: Option<String>,
    nonce: Option<String>,
    ath: Option<String>,
}

impl std::fmt::Debug for OAuth {
    // Access tokens and nonces are secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("apps", &self.apps.keys().collect::<Vec<_>>())
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

impl OAuth {
    pub fn register(&mut self, app: ServiceApp) {
        self.apps.insert(app.client_id.clone(), app);
    }

    pub fn clear(&mut self) {
        *self = OAuth::default();
    }

    /// The current DPoP nonce (rotated by [`OAuth::rotate_nonce`]).
    fn nonce(&mut self) -> String {
        if self.nonce.is_empty() {
            self.nonce = random_token(16);
        }
        self.nonce.clone()
    }

    /// Revokes every access token issued (as an admin revoking the app's tokens would).
    pub fn revoke_all(&mut self) -> usize {
        let n = self.tokens.len();
        self.tokens.clear();
        n
    }

    pub fn rotate_nonce(&mut self) {
        self.nonce = random_token(16);
    }

    /// `POST /oauth2/v1/token`. `form` is the urlencoded body; `dpop` the `DPoP` header;
    /// `token_url` this endpoint's absolute URL (the required `aud` and DPoP `htu`).
    pub fn token(
        &mut self,
        form: &HashMap<String, String>,
        dpop: Option<&str>,
        token_url: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        match field("grant_type") {
            Some("client_credentials") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    400,
                    "unsupported_grant_type",
                    format!(
                        "The authorization grant type is not supported by the authorization server. Configured grant types: [client_credentials]. Received: {other}"
                    ),
                ));
            }
            None => {
                return Err(OAuthError::new(
                    400,
                    "invalid_request",
                    "The token request must specify a 'grant_type'.",
                ));
            }
        }
        if field("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(OAuthError::client(
                "The client_assertion_type is invalid. It must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            ));
        }
        let assertion = field("client_assertion")
            .ok_or_else(|| OAuthError::client("client_assertion is required."))?;
        let (app, jti) = self.verify_assertion(assertion, token_url, now)?;
        let requested: Vec<String> = field("scope")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if requested.is_empty() {
            return Err(OAuthError::new(
                400,
                "invalid_scope",
                "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
            ));
        }
        let denied: Vec<&str> = requested
            .iter()
            .filter(|s| !app.scopes.contains(s))
            .map(String::as_str)
            .collect();
        if !denied.is_empty() {
            return Err(OAuthError::new(
                400,
                "invalid_scope",
                format!(
                    "The following scopes are not allowed: {}",
                    denied.join(", ")
                ),
            ));
        }
        let jkt = if app.dpop_bound_access_tokens {
            let proof =
                dpop.ok_or_else(|| OAuthError::proof("The DPoP proof JWT header is missing."))?;
            let (jkt, claims) = self.verify_proof(proof, "POST", token_url, now)?;
            let nonce = self.nonce();
            if claims.nonce.as_deref() != Some(nonce.as_str()) {
                let mut e = OAuthError::new(
                    400,
                    "use_dpop_nonce",
                    "Authorization server requires nonce in DPoP proof.",
                );
                e.dpop_nonce = Some(nonce);
                return Err(e);
            }
            Some(jkt)
        } else {
            None
        };
        // Recorded only once the request succeeds, so the nonce round trip may reuse it.
        if let Some((jti, exp)) = jti {
            self.used_jti.insert(jti, exp);
        }
        let access_token = random_token(32);
        let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
        self.tokens.retain(|_, t| t.expires > now);
        self.tokens.insert(
            access_token.clone(),
            Issued {
                scopes: requested.clone(),
                expires: now + TOKEN_LIFETIME_SECS,
                jkt,
            },
        );
        Ok(TokenResponse {
            token_type,
            expires_in: TOKEN_LIFETIME_SECS,
            access_token,
            scope: requested.join(" "),
        })
    }

    fn verify_assertion(
        &mut self,
        assertion: &str,
        token_url: &str,
        now: i64,
    ) -> Result<(ServiceApp, Option<(String, i64)>), OAuthError> {
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|_| OAuthError::client("The client_assertion is not a well-formed JWT."))?;
        if !SIGNING_ALGORITHMS.contains(&header.alg) {
            return Err(OAuthError::client(format!(
                "The client_assertion signature algorithm {:?} is not supported; use RS256, RS384, RS512, ES256 or ES384.",
                header.alg
            )));
        }
        let unverified: AssertionClaims = // Only to learn which app (and so which keys) to verify it with.
            jsonwebtoken::dangerous::insecure_decode_claims(assertion)
            .map_err(|_| OAuthError::client("The client_assertion claims are not valid JSON."))?;
        let client_id = unverified.iss.clone().ok_or_else(|| {
            OAuthError::client("The client_assertion token must contain an 'iss' claim.")
        })?;
        let app = self
            .apps
            .get(&client_id)
            .cloned()
            .ok_or_else(|| OAuthError::client("Invalid value for 'client_id' parameter."))?;
        let key = match &header.kid {
            Some(kid) => app.jwks.find(kid),
            None if app.jwks.keys.len() == 1 => app.jwks.keys.first(),
            None => None,
        }
        .ok_or_else(|| {
            OAuthError::client(
                "The client_assertion token has a kid which does not identify a registered key.",
            )
        })?;
        let decoding = DecodingKey::from_jwk(key)
            .map_err(|_| OAuthError::client("The registered key cannot verify signatures."))?;
        let claims: AssertionClaims =
            jsonwebtoken::decode(assertion, &decoding, &unchecked_times(header.alg))
                .map_err(|_| OAuthError::client("The client_assertion signature is invalid."))?
                .claims;
        if claims.sub.as_deref() != Some(client_id.as_str()) {
            return Err(OAuthError::client(
                "The client_assertion token's 'sub' must equal its 'iss', the client id.",
            ));
        }
        let aud_ok = match &claims.aud {
            Some(serde_json::Value::String(a)) => a == token_url,
            Some(serde_json::Value::Array(a)) => a.iter().any(|a| a == token_url),
            _ => false,
        };
        if !aud_ok {
            return Err(OAuthError::client(format!(
                "The audience claim for client_assertion must be the endpoint invoked for the request: {token_url}"
            )));
        }
        let exp = claims.exp.ok_or_else(|| {
            OAuthError::client("The client_assertion token must contain an 'exp' claim.")
        })?;
        if exp <= now {
            return Err(OAuthError::client("The client_assertion token is expired."));
        }
        if exp > now + MAX_ASSERTION_SECS {
            return Err(OAuthError::client(
                "The client_assertion token has an expiration too far into the future.",
            ));
        }
        self.used_jti.retain(|_, e| *e > now);
        if claims
            .jti
            .as_ref()
            .is_some_and(|j| self.used_jti.contains_key(j))
        {
            return Err(OAuthError::client(
                "The client_assertion token has already been used.",
            ));
        }
        Ok((app, claims.jti.map(|j| (j, exp))))
    }

    /// Checks a DPoP proof; returns the thumbprint of its key and its claims.
    fn verify_proof(
        &mut self,
        proof: &str,
        method: &str,
        url: &str,
        now: i64,
    ) -> Result<(String, ProofClaims), OAuthError> {
        let header = jsonwebtoken::decode_header(proof)
            .map_err(|_| OAuthError::proof("The DPoP proof JWT is malformed."))?;
        if header.typ.as_deref() != Some("dpop+jwt") {
            return Err(OAuthError::proof(
                "The DPoP proof JWT 'typ' must be 'dpop+jwt'.",
            ));
        }
        if !SIGNING_ALGORITHMS.contains(&header.alg) {
            return Err(OAuthError::proof(
                "The DPoP proof JWT algorithm is not supported.",
            ));
        }
        let jwk: &Jwk = header
            .jwk
            .as_ref()
            .ok_or_else(|| OAuthError::proof("The DPoP proof JWT header has no 'jwk'."))?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|_| OAuthError::proof("The DPoP proof 'jwk' is not a usable public key."))?;
        let claims: ProofClaims = jsonwebtoken::decode(proof, &key, &unchecked_times(header.alg))
            .map_err(|_| OAuthError::proof("The DPoP proof JWT signature is invalid."))?
            .claims;
        if claims.htm.as_deref() != Some(method) {
            return Err(OAuthError::proof(
                "The DPoP proof 'htm' does not match the request method.",
            ));
        }
        let strip = |u: &str| u.split(['?', '#']).next().unwrap_or_default().to_owned();
        if claims.htu.as_deref().map(strip) != Some(strip(url)) {
            return Err(OAuthError::proof(
                "The DPoP proof 'htu' does not match the request URL.",
            ));
        }
        let iat = claims
            .iat
            .ok_or_else(|| OAuthError::proof("The DPoP proof has no 'iat'."))?;
        if (iat - now).abs() > DPOP_IAT_WINDOW_SECS {
            return Err(OAuthError::proof(
                "The DPoP proof 'iat' is too far from the current time.",
            ));
        }
        let jti = claims
            .jti
            .clone()
            .ok_or_else(|| OAuthError::proof("The DPoP proof has no 'jti'."))?;
        self.used_proof_jti
            .retain(|_, t| *t > now - DPOP_IAT_WINDOW_SECS);
        if self.used_proof_jti.insert(jti, iat).is_some() {
            return Err(OAuthError::proof(
                "The DPoP proof 'jti' has already been used.",
            ));
        }
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| OAuthError::proof("The DPoP proof 'jwk' has no thumbprint."))?;
        Ok((jkt, claims))
    }

    /// Checks an `Authorization: Bearer|DPoP <token>` resource request that any one of `scopes`
    /// allows.
    pub fn authorize(
        &mut self,
        request: &ResourceRequest<'_>,
        scopes: &[&str],
        now: i64,
    ) -> Result<(), Refusal> {
        let ResourceRequest {
            scheme,
            token,
            dpop,
            method,
            url,
        } = *request;
        let issued = self
            .tokens
            .get(token)
            .filter(|t| t.expires > now)
            .cloned()
            .ok_or(Refusal::InvalidToken)?;
        match (&issued.jkt, scheme) {
            (None, "Bearer") => {}
            (Some(jkt), "DPoP") => {
                let proof = dpop.ok_or(Refusal::InvalidProof)?;
                let (proof_jkt, claims) = self
                    .verify_proof(proof, method, url, now)
                    .map_err(|_| Refusal::InvalidProof)?;
                let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
                if &proof_jkt != jkt || claims.ath.as_deref() != Some(ath.as_str()) {
                    return Err(Refusal::InvalidProof);
                }
            }
            _ => return Err(Refusal::InvalidToken),
        }
        if issued.scopes.iter().any(|s| scopes.contains(&s.as_str())) {
            Ok(())
        } else {
            Err(Refusal::InsufficientScope)
        }
    }
}

/// Signature and claims checks only; times are checked against the org's clock, not the host's.
fn unchecked_times(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v
}

fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}
