//! The Okta API client: authenticated GETs that respect Okta's rate limits ([`rate`]), retry 5xx,
//! timeouts and cut-off bodies with jittered backoff, and hand back the body with its `next` link.
//! Okta's pace, never factorwatch's, is what limits it.
//!
//! Its credentials go to the configured org and nowhere else: a URL (a `next` link, a stored
//! cursor) whose scheme, host or port differ from the org's is refused before anything is sent,
//! redirects are never followed, and an answer larger than [`MAX_BODY`] is an error.

pub mod auth;
pub mod kept;
pub mod links;
pub mod rate;

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::{debug, warn};

use crate::backoff::Backoff;
use auth::{AuthError, Credentials};
use rate::Reading;

/// One successful answer.
#[derive(Debug, Clone)]
pub struct Page {
    /// The body: checked to be complete JSON, except from [`OktaClient::get_page`].
    pub body: String,
    /// The `rel="next"` link, if Okta sent one: on the org's origin, and parsed, so that a
    /// poller following it does not parse its KiB or two of filter again.
    pub next: Option<reqwest::Url>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Okta answered with an error that retrying will not fix (bad filter, 404, 403…).
    #[error("Okta answered HTTP {status} {code}: {summary}")]
    Okta {
        status: u16,
        code: String,
        summary: String,
    },
    /// Okta could not be reached or kept failing, after every retry.
    #[error("Okta is unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A URL outside the org (a `next` link or a stored cursor): nothing was sent there.
    #[error(
        "refused to send the org's credentials to {origin}: only {org} is trusted (a link or cursor that leads elsewhere is never followed)"
    )]
    ForeignUrl { origin: String, org: String },
    /// Okta answered with a redirect; following it would carry the credentials elsewhere.
    #[error(
        "Okta answered HTTP {status}, a redirect to {to}; redirects are never followed (check the org's url)"
    )]
    Redirect { status: u16, to: String },
    #[error("Okta's answer is larger than {limit} bytes; refused")]
    TooLarge { limit: usize },
    #[error("the org's url {0:?} is not an absolute http(s) URL")]
    BadBase(String),
    /// The HTTP client could not be built (its TLS backend, its `User-Agent`): nothing is sent
    /// rather than through a client without the timeouts and the no-redirect policy.
    #[error("cannot build the HTTP client for Okta: {0}")]
    Setup(String),
}

impl ClientError {
    /// Worth trying again later, as opposed to a problem only a person can fix.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unavailable { .. } => true,
            ClientError::Auth(e) => e.is_transient(),
            ClientError::Okta { .. }
            | ClientError::ForeignUrl { .. }
            | ClientError::Redirect { .. }
            | ClientError::TooLarge { .. }
            | ClientError::BadBase(_)
            | ClientError::Setup(_) => false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request before giving up (429s are waited out, not counted).
    pub attempts: u32,
    pub backoff: Backoff,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            backoff: Backoff {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(30),
            },
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why an org's client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OrgClientError {
    #[error(transparent)]
    Secret(#[from] crate::config::ConfigError),
    #[error("org {org}: {source}")]
    Auth { org: String, source: AuthError },
    #[error("org {org}: {source}")]
    Client { org: String, source: ClientError },
}

/// The largest answer read from Okta: a page of 1,000 events is a few MiB.
pub const MAX_BODY: usize = 32 << 20;

pub struct OktaClient {
    http: reqwest::Client,
    /// For a poller's polls from its cursor (see [`OKTA_POLL_CONNECTION`]); none through a proxy.
    kept: Option<kept::Connector>,
    /// The stream kept between those polls.
    slot: kept::Slot,
    base: String,
    /// The org's origin: the only place requests go.
    origin: reqwest::Url,
    /// The org's metrics, under its configured name (the URL if none).
    metrics: crate::telemetry::OktaMetrics,
    credentials: Credentials,
    policy: RetryPolicy,
    /// The last rate-limit reading per bucket.
    readings: Mutex<HashMap<&'static str, Reading>>,
}

impl std::fmt::Debug for OktaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaClient")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "errorCode", default)]
    code: String,
    #[serde(rename = "errorSummary", default)]
    summary: String,
}

/// How long a connection to Okta is kept open unused: long enough for a poller paging through a
/// backlog (the next page is asked for as soon as one arrives) or a burst of Users API lookups to
/// reuse it; far shorter than the 15 s between polls (the default interval). A connection that
/// has carried a page holds a few tens of KiB (its buffers grown to the page): an MSSP's
/// thousands of orgs catching up together kept one per org for all its idle time (with 2 s, the
/// catch-up peak of 2,000 orgs was twice today's). The cost is a new connection (TCP, and a TLS
/// handshake) per org per poll — unless the poll follows a wait: see [`OKTA_POLL_CONNECTION`].
const OKTA_IDLE_CONNECTION: Duration = Duration::from_millis(250);

/// How long a connection used for the polls that follow a wait is kept open unused: longer than
/// the default 15 s between polls, so a caught-up poller sends its next poll on the same
/// connection. A new connection per poll was a fifth of an MSSP's idle CPU with 2,000 orgs on
/// loopback (`connect`, `socket`, `shutdown`; `scripts/bench/many-orgs.sh`), and against Okta
/// it is a TLS handshake per org per poll. Between polls only its socket (and TLS session) is
/// held, not an HTTP connection with its buffers (see [`kept`]); and it is kept only after
/// answers up to [`KEPT_ANSWER`] (a TLS session's buffers grow to what it carried).
pub const OKTA_POLL_CONNECTION: Duration = Duration::from_secs(90);

/// The largest answer after which the connection that carried it is kept for the next poll (see
/// [`OKTA_POLL_CONNECTION`]): an idle org answers `[]`, a quiet one a few events.
pub const KEPT_ANSWER: usize = 16 << 10;

/// Okta's client: no redirects, each request sets its own timeout, idle connections closed.
fn builder() -> reqwest::ClientBuilder {
    crate::http::client::builder(RetryPolicy::default().timeout)
        .pool_idle_timeout(OKTA_IDLE_CONNECTION)
}

/// How Okta requests go out: a client whose connections close soon after use, and the
/// connections a caught-up poller keeps between its polls (none when a proxy is configured:
/// those go straight to Okta, so the polls then go through the proxy on the client).
#[derive(Clone, Debug)]
pub struct Http {
    pub requests: reqwest::Client,
    kept: Option<kept::Connector>,
}

/// The variables reqwest takes a proxy from.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

impl Http {
    fn build(user_agent: Option<String>) -> Result<Http, ClientError> {
        // A failed build is an error, never a fallback: `reqwest::Client::default()` would
        // follow redirects, wait on Okta for ever, and panic on the same TLS failure.
        let requests = match &user_agent {
            Some(ua) => builder().user_agent(ua),
            None => builder(),
        }
        .build()
        .map_err(|e| ClientError::Setup(e.to_string()))?;
        let proxied = PROXY_VARIABLES
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        let kept = match proxied {
            true => None,
            false => Some(
                kept::Connector::new(
                    user_agent
                        .as_deref()
                        .unwrap_or(crate::http::client::USER_AGENT),
                )
                .map_err(ClientError::Setup)?,
            ),
        };
        Ok(Http { requests, kept })
    }
}

/// The HTTP clients Okta requests go through: no redirects; each request sets its own timeout.
pub fn http_client() -> Result<Http, ClientError> {
    Http::build(None)
}

/// [`http_client`] for one of several replicas: its name rides in the `User-Agent`, so Okta's
/// System Log (`client.userAgent`) and the simulator say which replica asked.
pub fn http_client_for(replica: &str) -> Result<Http, ClientError> {
    Http::build(Some(format!(
        "factorwatch/{} replica/{}",
        env!("CARGO_PKG_VERSION"),
        crate::untrusted::identifier(replica, 80)
    )))
}

/// Which rate-limit bucket a path falls in (Okta's table, API-NOTES §7).
fn bucket(path: &str) -> &'static str {
    if path.starts_with("/api/v1/logs") {
        "logs"
    } else if path.starts_with("/api/v1/events") {
        "events"
    } else if path.starts_with("/api/v1/users") {
        "users"
    } else {
        "other"
    }
}

impl OktaClient {
    /// The client for a configured org, on a shared HTTP client, with the credentials its
    /// configuration names (an API token — `OKTA_API_TOKEN` unless it says otherwise — or an
    /// OAuth service app).
    pub fn for_org(
        http: Http,
        org: &crate::config::OrgConfig,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
        policy: RetryPolicy,
    ) -> Result<OktaClient, OrgClientError> {
        use crate::config::read_secret;
        let what = format!("orgs ({})", org.name);
        let credentials = match &org.oauth {
            Some(o) => {
                let key = read_secret(
                    &format!("{what}.oauth.private_key_file"),
                    None,
                    Some(&o.private_key_file),
                    env,
                )?;
                Credentials::oauth(
                    auth::ServiceApp {
                        client_id: o.client_id.clone(),
                        private_key: key,
                        key_id: o.key_id.clone(),
                        scopes: o.scopes.clone(),
                    },
                    format!("{}/oauth2/v1/token", org.url.trim_end_matches('/')),
                )
                .map_err(|source| OrgClientError::Auth {
                    org: org.name.clone(),
                    source,
                })?
            }
            None => {
                let env_name = match (&org.token_env, &org.token_file) {
                    (None, None) => Some("OKTA_API_TOKEN"),
                    (name, _) => name.as_deref(),
                };
                Credentials::Ssws(read_secret(
                    &format!("{what} API token"),
                    env_name,
                    org.token_file.as_deref(),
                    env,
                )?)
            }
        };
        OktaClient::with_http(http, &org.url, credentials, policy)
            .map(|c| c.named(&org.name))
            .map_err(|source| OrgClientError::Client {
                org: org.name.clone(),
                source,
            })
    }

    /// `base` is the org's URL, e.g. `https://acme.okta.com`.
    pub fn new(
        base: &str,
        credentials: Credentials,
        policy: RetryPolicy,
    ) -> Result<OktaClient, ClientError> {
        OktaClient::with_http(http_client()?, base, credentials, policy)
    }

    /// A client on a shared HTTP client (its connection pool and TLS setup): one process
    /// watching many orgs keeps one of those, not one per org.
    pub fn with_http(
        http: Http,
        base: &str,
        credentials: Credentials,
        policy: RetryPolicy,
    ) -> Result<OktaClient, ClientError> {
        let origin = reqwest::Url::parse(base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| ClientError::BadBase(base.to_owned()))?;
        Ok(OktaClient {
            http: http.requests,
            kept: http.kept,
            slot: kept::Slot::default(),
            metrics: crate::telemetry::OktaMetrics::new(base.trim_end_matches('/')),
            base: base.trim_end_matches('/').to_owned(),
            origin,
            credentials,
            policy,
            readings: Mutex::new(HashMap::new()),
        })
    }

    /// Names the org in metrics.
    pub fn named(mut self, name: &str) -> OktaClient {
        self.metrics = crate::telemetry::OktaMetrics::new(name);
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// An absolute URL for an API path (`/api/v1/...`), or `url` itself if it is one — on the
    /// org's origin, else refused.
    pub fn url(&self, path_or_url: &str) -> Result<String, ClientError> {
        let url = self.absolute(path_or_url);
        self.check_origin(&url)?;
        Ok(url.into_owned())
    }

    /// `path_or_url` made absolute on the org's base, its origin not yet checked.
    fn absolute<'a>(&self, path_or_url: &'a str) -> std::borrow::Cow<'a, str> {
        if path_or_url.starts_with('/') && !path_or_url.starts_with("//") {
            format!("{}{path_or_url}", self.base).into()
        } else {
            path_or_url.into()
        }
    }

    /// Refuses a URL whose scheme, host or port are not the org's.
    pub fn check_origin(&self, url: &str) -> Result<(), ClientError> {
        self.parse_on_origin(url).map(drop)
    }

    /// `url` parsed, if it is on the org's origin.
    fn parse_on_origin(&self, url: &str) -> Result<reqwest::Url, ClientError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| ClientError::ForeignUrl {
            origin: format!("{:?} (not a URL)", crate::http::client::excerpt(url, 80)),
            org: crate::http::client::origin_text(&self.origin),
        })?;
        self.on_origin(parsed)
    }

    fn on_origin(&self, url: reqwest::Url) -> Result<reqwest::Url, ClientError> {
        if url.origin() == self.origin.origin() {
            Ok(url)
        } else {
            Err(ClientError::ForeignUrl {
                origin: crate::http::client::origin_text(&url),
                org: crate::http::client::origin_text(&self.origin),
            })
        }
    }

    /// The rate-limit headers Okta last sent for the bucket `path` falls in.
    pub async fn last_reading(&self, path: &str) -> Option<Reading> {
        self.readings.lock().await.get(bucket(path)).copied()
    }

    /// GETs `url` (absolute, or a path on the org), as patiently as Okta requires; a body that
    /// is not complete JSON is retried like a 5xx.
    pub async fn get(&self, url: &str) -> Result<Page, ClientError> {
        self.send(Req::Get, url, true).await
    }

    /// [`OktaClient::get`] for a caller that parses every byte of the body itself and refuses a
    /// cut-off one (the pollers): checking it here too would read each page twice.
    pub async fn get_page(&self, url: &str) -> Result<Page, ClientError> {
        self.send(Req::Get, url, false).await
    }

    /// [`OktaClient::get_page`] of a URL already parsed (a poller's start, or a page's `next`);
    /// `kept`: a caught-up poller's poll after its wait, on a connection kept open between polls
    /// (see [`OKTA_POLL_CONNECTION`]).
    pub async fn fetch_page(&self, url: &reqwest::Url, kept: bool) -> Result<Page, ClientError> {
        let url = self.on_origin(url.clone())?;
        let req = if kept { Req::Poll } else { Req::Get };
        self.send_to(req, url, false).await
    }

    /// A path on the org, or a URL, parsed, if it is on the org's origin.
    pub fn page_url(&self, path_or_url: &str) -> Result<reqwest::Url, ClientError> {
        self.parse_on_origin(&self.absolute(path_or_url))
    }

    /// POSTs a JSON `body`: 429s are waited out like any request, but a failure is not retried
    /// (a repeated POST could create a second object).
    pub async fn post(&self, url: &str, body: &str) -> Result<Page, ClientError> {
        self.send(Req::Post(body), url, true).await
    }

    /// PUTs a JSON `body`; like [`OktaClient::post`], a failure is not retried here (the caller's
    /// outbox retries what is safe to repeat).
    pub async fn put(&self, url: &str, body: &str) -> Result<Page, ClientError> {
        self.send(Req::Put(body), url, true).await
    }

    /// DELETEs `url` (a 204 answer has an empty body); not retried here.
    pub async fn delete(&self, url: &str) -> Result<Page, ClientError> {
        self.send(Req::Delete, url, true).await
    }

    /// `check` refuses a 2xx body that is not complete JSON (an empty 204 is fine).
    async fn send(&self, req: Req<'_>, url: &str, check: bool) -> Result<Page, ClientError> {
        // Parsed once: a poller's URL carries a filter of a KiB or two, and an MSSP sends a
        // hundred of them a second.
        let url = self.page_url(url)?;
        self.send_to(req, url, check).await
    }

    /// [`OktaClient::send`] to a URL parsed and on the org's origin.
    async fn send_to(
        &self,
        req: Req<'_>,
        url: reqwest::Url,
        check: bool,
    ) -> Result<Page, ClientError> {
        let attempts = if matches!(req, Req::Get | Req::Poll) {
            self.policy.attempts
        } else {
            1
        };
        let bucket = bucket(url.path());
        let mut failures = 0u32;
        let mut throttled = 0u32;
        let mut refreshed = false;
        let mut last_request_id: Option<String> = None;
        loop {
            // Wait while the bucket is spent; then count this request against it at once, so
            // that requests sent together do not all count on the same last one.
            loop {
                let wait = {
                    let mut readings = self.readings.lock().await;
                    let wait = readings
                        .get(bucket)
                        .map(rate::before_next)
                        .unwrap_or_default();
                    if wait.is_zero() {
                        if let Some(r) = readings.get_mut(bucket) {
                            *r = rate::taken(r);
                        }
                    } else {
                        readings.remove(bucket);
                    }
                    wait
                };
                if wait.is_zero() {
                    break;
                }
                debug!(
                    bucket,
                    wait_ms = wait.as_millis() as u64,
                    "Okta's rate limit reached; waiting for the reset"
                );
                tokio::time::sleep(wait).await;
            }
            let outcome = self
                .attempt(&url, req, failures, last_request_id.as_deref())
                .await;
            let failure = match outcome {
                Err(e @ ClientError::Auth(_)) => match &e {
                    ClientError::Auth(a) if a.is_transient() => a.to_string(),
                    _ => return Err(e),
                },
                Err(e) => return Err(e),
                Ok(Attempt {
                    status,
                    reading,
                    request_id,
                    body,
                    next,
                }) => {
                    last_request_id = request_id;
                    self.metrics
                        .response(bucket, status, reading.remaining, reading.limit);
                    self.readings.lock().await.insert(bucket, reading);
                    match status {
                        200..=299 => {
                            if !check
                                || (status == 204 && body.is_empty())
                                || serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok()
                            {
                                return Ok(Page { body, next });
                            }
                            "the response body was cut off or is not JSON".to_owned()
                        }
                        429 => {
                            throttled += 1;
                            let wait = rate::after_429(&reading);
                            warn!(
                                bucket,
                                wait_s = wait.as_secs(),
                                "Okta rate limit reached (429); waiting for the reset"
                            );
                            if throttled > 30 {
                                return Err(ClientError::Unavailable {
                                    attempts: failures + throttled,
                                    last: "rate limited (429) for too long".into(),
                                });
                            }
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        401 if !refreshed && matches!(self.credentials, Credentials::OAuth(_)) => {
                            // An access token can die early (revoked, clock skew): get a new one once.
                            refreshed = true;
                            self.credentials.invalidate().await;
                            continue;
                        }
                        0 => body,
                        500..=599 => format!("HTTP {status}: {}", okta_summary(&body)),
                        _ => {
                            let e: ErrorBody = serde_json::from_str(&body).unwrap_or(ErrorBody {
                                code: String::new(),
                                summary: crate::http::client::excerpt(&body, 200),
                            });
                            return Err(ClientError::Okta {
                                status,
                                code: crate::http::client::excerpt(&e.code, 40),
                                summary: crate::http::client::excerpt(&e.summary, 300),
                            });
                        }
                    }
                }
            };
            failures += 1;
            if failures >= attempts {
                return Err(ClientError::Unavailable {
                    attempts: failures,
                    last: failure,
                });
            }
            let delay = self
                .policy
                .backoff
                .delay(failures - 1, &mut rand::thread_rng());
            warn!(%failure, retry_in_ms = delay.as_millis() as u64, "Okta request failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        url: &reqwest::Url,
        req: Req<'_>,
        retry: u32,
        retry_for: Option<&str>,
    ) -> Result<Attempt, ClientError> {
        use reqwest::header::{HeaderName, HeaderValue};
        let method = match req {
            Req::Get | Req::Poll => "GET",
            Req::Post(_) => "POST",
            Req::Put(_) => "PUT",
            Req::Delete => "DELETE",
        };
        let auth = self
            .credentials
            .authorize(&self.http, method, url.as_str())
            .await?;
        let secret = |value: String| {
            HeaderValue::try_from(value).map(|mut v| {
                v.set_sensitive(true);
                v
            })
        };
        let mut headers = vec![
            (
                reqwest::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            ),
            (reqwest::header::AUTHORIZATION, {
                let Ok(v) = secret(auth.header) else {
                    return Ok(Attempt::failed(
                        "the credentials cannot be sent in a header".into(),
                    ));
                };
                v
            }),
        ];
        if let Some(proof) = auth.dpop {
            let Ok(v) = secret(proof) else {
                return Ok(Attempt::failed(
                    "the DPoP proof cannot be sent in a header".into(),
                ));
            };
            headers.push((HeaderName::from_static("dpop"), v));
        }
        if retry > 0 {
            // As Okta's SDKs do, so Okta can tie a retry to the request it repeats.
            headers.push((
                HeaderName::from_static("x-okta-retry-count"),
                HeaderValue::from(retry),
            ));
            if let Some(id) = retry_for.and_then(|id| HeaderValue::from_str(id).ok()) {
                headers.push((HeaderName::from_static("x-okta-retry-for"), id));
            }
        }
        if let (Req::Poll, Some(kept)) = (req, &self.kept) {
            let answer = match kept
                .get(&self.slot, url, &headers, MAX_BODY, self.policy.timeout)
                .await
            {
                Ok(answer) => answer,
                Err(reason) => return Ok(Attempt::failed(reason)),
            };
            let head = self.head(url, answer.status, &answer.headers)?;
            return head.with_body(answer.body);
        }
        let request = match req {
            Req::Post(b) => self
                .http
                .post(url.clone())
                .header("Content-Type", "application/json")
                .body(b.to_owned()),
            Req::Put(b) => self
                .http
                .put(url.clone())
                .header("Content-Type", "application/json")
                .body(b.to_owned()),
            Req::Delete => self.http.delete(url.clone()),
            Req::Get | Req::Poll => self.http.get(url.clone()),
        };
        let mut request = request.timeout(self.policy.timeout);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Ok(Attempt::failed(if e.is_timeout() {
                    "no answer in time".to_owned()
                } else {
                    format!("transport error: {}", e.without_url())
                }));
            }
        };
        // The head is read before the body: a redirect's body is not.
        let head = self.head(url, response.status().as_u16(), response.headers())?;
        head.with_body(crate::http::client::read_limited(response, MAX_BODY).await)
    }

    /// What an answer's status and headers say, for a request to `url`: its rate-limit reading,
    /// Okta's request id, the `next` link; a redirect is an error.
    fn head(
        &self,
        url: &reqwest::Url,
        status: u16,
        headers: &reqwest::header::HeaderMap,
    ) -> Result<Head, ClientError> {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let date = headers
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(|d| d.timestamp());
        let reading = Reading {
            limit: number("x-rate-limit-limit").map(|n| n.max(0) as u64),
            remaining: number("x-rate-limit-remaining").map(|n| n.max(0) as u64),
            reset: number("x-rate-limit-reset"),
            date,
        };
        let request_id = headers
            .get("x-okta-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if (300..400).contains(&status) {
            return Err(ClientError::Redirect {
                status,
                to: crate::http::client::redirect_target_of(url, headers),
            });
        }
        // A `next` link may be relative (RFC 8288: to the request's URL); either way it must stay
        // on the org, or the page is refused whole and the cursor stays where it was.
        let next = match links::find(
            headers
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok()),
            "next",
        ) {
            None => None,
            Some(link) => {
                let absolute = match url.join(&link) {
                    Ok(joined) => self.on_origin(joined)?,
                    Err(_) => self.parse_on_origin(&link)?,
                };
                Some(absolute)
            }
        };
        Ok(Head {
            status,
            reading,
            request_id,
            next,
        })
    }
}

/// An answer's status and what its headers say.
struct Head {
    status: u16,
    reading: Reading,
    request_id: Option<String>,
    next: Option<reqwest::Url>,
}

impl Head {
    /// The exchange, with its body read (at most [`MAX_BODY`]).
    fn with_body(
        self,
        body: Result<String, crate::http::client::BodyError>,
    ) -> Result<Attempt, ClientError> {
        use crate::http::client::BodyError;
        match body {
            Ok(body) => Ok(Attempt {
                status: self.status,
                reading: self.reading,
                request_id: self.request_id,
                body,
                next: self.next,
            }),
            Err(BodyError::TooLarge { limit }) => Err(ClientError::TooLarge { limit }),
            Err(e) => Ok(Attempt::failed(e.to_string())),
        }
    }
}

/// A request's method and body.
#[derive(Debug, Clone, Copy)]
enum Req<'a> {
    Get,
    /// A GET on a connection kept between polls.
    Poll,
    Post(&'a str),
    Put(&'a str),
    Delete,
}

/// One HTTP exchange; a transport failure is status 0 with the reason as body.
struct Attempt {
    status: u16,
    reading: Reading,
    request_id: Option<String>,
    body: String,
    next: Option<reqwest::Url>,
}

impl Attempt {
    fn failed(reason: String) -> Attempt {
        Attempt {
            // No HTTP status: retried like a 5xx.
            status: 0,
            reading: Reading {
                limit: None,
                remaining: None,
                reset: None,
                date: None,
            },
            request_id: None,
            body: reason,
            next: None,
        }
    }
}

fn okta_summary(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body)
        .map(|e| crate::http::client::excerpt(&format!("{} {}", e.code, e.summary), 300))
        .unwrap_or_else(|_| crate::http::client::excerpt(body, 200))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_cannot_be_built_is_an_error_not_a_default_client() {
        // A `User-Agent` no header can carry makes reqwest's build fail, as a TLS backend
        // that cannot start would.
        let built = Http::build(Some("factorwatch\r\nX-Injected: 1".into()));
        let Err(e) = built else {
            panic!("a client was built with an invalid User-Agent");
        };
        assert!(matches!(e, ClientError::Setup(_)), "{e:?}");
        assert!(!e.is_transient());
        assert!(
            e.to_string()
                .starts_with("cannot build the HTTP client for Okta")
        );
    }

    #[test]
    fn a_replica_name_never_breaks_the_client() {
        // The replica's name rides in the User-Agent: whatever an operator writes there, the
        // client is built (the name is cut down to a safe identifier).
        for name in ["replica-1", "a\r\nb", "é ü \u{0} \u{7f}", &"x".repeat(500)] {
            assert!(http_client_for(name).is_ok(), "{name:?}");
        }
    }
}
