//! How factorwatch proves itself to Okta: an SSWS API token, or an OAuth 2.0 service app with a
//! `private_key_jwt` client assertion (key from a PEM file; the access token cached and renewed
//! before it expires; DPoP-bound when the org requires it, with the `use_dpop_nonce` handshake).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::secret::Secret;

/// Renew this long before the token expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// The token endpoint answers within this, or the attempt fails (and is retried later).
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Client assertions live this long (Okta allows up to an hour).
const ASSERTION_LIFETIME_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the private key is not an RSA or EC private key in PEM form: {0}")]
    BadKey(String),
    #[error("Okta's token endpoint refused the service app: {error}: {description}")]
    Refused { error: String, description: String },
    #[error("Okta's token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("could not sign a JWT: {0}")]
    Signing(String),
}

impl AuthError {
    /// Worth trying again later (the endpoint was down), as opposed to a configuration problem.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Unreachable(_))
    }
}

/// An OAuth service app's settings.
#[derive(Debug, Clone)]
pub struct ServiceApp {
    pub client_id: String,
    /// The app's private key, PEM (RSA or EC P-256).
    pub private_key: Secret,
    /// The `kid` of the matching public key in the app's JWKS.
    pub key_id: Option<String>,
    pub scopes: Vec<String>,
}

/// What to put on a request.
pub struct Authorization {
    pub header: String,
    /// A `DPoP` proof header, for DPoP-bound tokens.
    pub dpop: Option<String>,
}

pub enum Credentials {
    Ssws(Secret),
    OAuth(Box<OAuthSession>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Ssws(_) => f.write_str("Credentials::Ssws(***)"),
            Credentials::OAuth(s) => write!(f, "Credentials::OAuth({})", s.app.client_id),
        }
    }
}

impl Credentials {
    pub fn oauth(app: ServiceApp, token_url: String) -> Result<Credentials, AuthError> {
        let pem = app.private_key.expose().as_bytes();
        let (key, alg) = EncodingKey::from_rsa_pem(pem)
            .map(|k| (k, Algorithm::RS256))
            .or_else(|_| EncodingKey::from_ec_pem(pem).map(|k| (k, Algorithm::ES256)))
            .map_err(|e| AuthError::BadKey(e.to_string()))?;
        Ok(Credentials::OAuth(Box::new(OAuthSession {
            app,
            key,
            alg,
            token_url,
            state: Mutex::new(SessionState::default()),
        })))
    }

    /// The headers for a request of `method` to `url`.
    pub async fn authorize(
        &self,
        http: &reqwest::Client,
        method: &str,
        url: &str,
    ) -> Result<Authorization, AuthError> {
        match self {
            Credentials::Ssws(token) => Ok(Authorization {
                header: format!("SSWS {}", token.expose()),
                dpop: None,
            }),
            Credentials::OAuth(session) => session.authorize(http, method, url).await,
        }
    }

    /// Forgets a token Okta refused, so the next request gets a new one.
    pub async fn invalidate(&self) {
        if let Credentials::OAuth(session) = self {
            session.state.lock().await.token = None;
        }
    }
}

pub struct OAuthSession {
    app: ServiceApp,
    key: EncodingKey,
    alg: Algorithm,
    token_url: String,
    state: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    token: Option<Token>,
    /// Created when the org first asks for DPoP; kept for the session.
    dpop: Option<DpopKey>,
    nonce: Option<String>,
}

struct Token {
    value: String,
    dpop: bool,
    renew_at: chrono::DateTime<Utc>,
}

struct DpopKey {
    key: EncodingKey,
    jwk: Jwk,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: i64,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl OAuthSession {
    async fn authorize(
        &self,
        http: &reqwest::Client,
        method: &str,
        url: &str,
    ) -> Result<Authorization, AuthError> {
        let mut state = self.state.lock().await;
        let fresh = state
            .token
            .as_ref()
            .is_some_and(|t| Utc::now() < t.renew_at);
        if !fresh {
            let token = self.fetch(http, &mut state).await?;
            state.token = Some(token);
        }
        let Some(token) = state.token.as_ref() else {
            return Err(AuthError::Unreachable("no token".into()));
        };
        if token.dpop {
            let dpop = state
                .dpop
                .as_ref()
                .ok_or_else(|| AuthError::Signing("no DPoP key".into()))?;
            let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.value.as_bytes()));
            let proof = proof(dpop, method, url, None, Some(&ath))?;
            Ok(Authorization {
                header: format!("DPoP {}", token.value),
                dpop: Some(proof),
            })
        } else {
            Ok(Authorization {
                header: format!("Bearer {}", token.value),
                dpop: None,
            })
        }
    }

    /// The client-credentials grant, with the DPoP handshake if the org asks for it: as Okta's
    /// Go SDK does, first without DPoP; on `invalid_dpop_proof`, with a proof; on
    /// `use_dpop_nonce`, again with the nonce Okta sent.
    async fn fetch(
        &self,
        http: &reqwest::Client,
        state: &mut SessionState,
    ) -> Result<Token, AuthError> {
        for _ in 0..4 {
            let mut request = http
                .post(&self.token_url)
                .header("Accept", "application/json")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(self.form()?)
                .timeout(TOKEN_TIMEOUT);
            if let Some(dpop) = &state.dpop {
                request = request.header(
                    "DPoP",
                    proof(dpop, "POST", &self.token_url, state.nonce.as_deref(), None)?,
                );
            }
            let response = request
                .send()
                .await
                .map_err(|e| AuthError::Unreachable(e.without_url().to_string()))?;
            let status = response.status();
            let nonce = response
                .headers()
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if status.is_redirection() {
                return Err(AuthError::Refused {
                    error: format!("HTTP {status}"),
                    description: format!(
                        "the token endpoint answered a redirect to {}; redirects are never followed",
                        crate::http::client::redirect_target(&response)
                    ),
                });
            }
            // A token answer is a few hundred bytes.
            let body = crate::http::client::read_limited(response, 64 << 10)
                .await
                .map_err(|e| AuthError::Unreachable(e.to_string()))?;
            if status.is_success() {
                let t: TokenResponse = serde_json::from_str(&body).map_err(|e| {
                    AuthError::Unreachable(format!("unreadable token response: {e}"))
                })?;
                let lifetime = chrono::Duration::seconds(t.expires_in.max(0));
                let renew = lifetime
                    - chrono::Duration::from_std(RENEW_BEFORE)
                        .unwrap_or_default()
                        .min(lifetime / 2);
                return Ok(Token {
                    value: t.access_token,
                    dpop: t.token_type.eq_ignore_ascii_case("DPoP"),
                    renew_at: Utc::now() + renew,
                });
            }
            if status.is_server_error() {
                return Err(AuthError::Unreachable(format!("HTTP {status}")));
            }
            let e: TokenError = serde_json::from_str(&body).unwrap_or(TokenError {
                error: format!("HTTP {status}"),
                error_description: String::new(),
            });
            match e.error.as_str() {
                "invalid_dpop_proof" if state.dpop.is_none() => {
                    state.dpop = Some(DpopKey::generate()?);
                }
                "use_dpop_nonce" if nonce.is_some() => state.nonce = nonce,
                _ => {
                    return Err(AuthError::Refused {
                        error: crate::http::client::excerpt(&e.error, 60),
                        description: crate::http::client::excerpt(&e.error_description, 300),
                    });
                }
            }
        }
        Err(AuthError::Refused {
            error: "dpop".into(),
            description: "the DPoP handshake did not converge".into(),
        })
    }

    fn form(&self) -> Result<String, AuthError> {
        let now = Utc::now().timestamp();
        let claims = json!({
            "iss": self.app.client_id,
            "sub": self.app.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
            "jti": random_id(),
        });
        let mut header = Header::new(self.alg);
        header.kid = self.app.key_id.clone();
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| AuthError::Signing(e.to_string()))?;
        Ok(form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &self.app.scopes.join(" "))
            .append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .append_pair("client_assertion", &assertion)
            .finish())
    }
}

impl DpopKey {
    /// A fresh P-256 key for this session's proofs.
    fn generate() -> Result<DpopKey, AuthError> {
        use p256::pkcs8::EncodePrivateKey;
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let pem = secret
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .map_err(|e| AuthError::Signing(e.to_string()))?;
        let key = EncodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|e| AuthError::Signing(e.to_string()))?;
        let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|e| AuthError::Signing(e.to_string()))?;
        Ok(DpopKey { key, jwk })
    }
}

/// A DPoP proof for `method` `url` (query and fragment dropped, as RFC 9449 says).
fn proof(
    dpop: &DpopKey,
    method: &str,
    url: &str,
    nonce: Option<&str>,
    ath: Option<&str>,
) -> Result<String, AuthError> {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(dpop.jwk.clone());
    let htu = url.split(['?', '#']).next().unwrap_or(url);
    let mut claims =
        json!({ "htm": method, "htu": htu, "iat": Utc::now().timestamp(), "jti": random_id() });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    if let Some(a) = ath {
        claims["ath"] = json!(a);
    }
    jsonwebtoken::encode(&header, &claims, &dpop.key).map_err(|e| AuthError::Signing(e.to_string()))
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}
