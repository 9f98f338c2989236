//! The HTTP side: Okta's API under `/api/v1` (SSWS auth, rate-limit headers, request ids) and the
//! test control API under `/sim`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::Value;

use crate::error::OktaError;
use crate::logs::{LogQuery, LogStore};

/// How the org is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SSWS API token clients must present.
    pub token: String,
    /// Where the org is reached, for `Link` headers (`http://127.0.0.1:PORT`).
    pub base_url: String,
    /// Requests per minute per endpoint bucket.
    pub rate_limits: RateLimits,
}

/// Per-minute limits per bucket; defaults from Okta's published table (Workforce).
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub logs: u32,
    pub other: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            logs: 120,
            other: 1200,
        }
    }
}

pub struct Org {
    config: Config,
    log: RwLock<LogStore>,
    windows: Mutex<HashMap<&'static str, Window>>,
    requests: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    reset: i64,
    used: u32,
}

impl Org {
    pub fn new(config: Config) -> Arc<Org> {
        Arc::new(Org {
            config,
            log: RwLock::new(LogStore::default()),
            windows: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        })
    }

    /// Persists events now (see [`LogStore::persist`]).
    pub fn persist(&self, events: Vec<Value>, late: bool) -> Result<usize, OktaError> {
        let mut log = self.log.write().map_err(|_| OktaError::timeout())?;
        let now = Utc::now();
        let n = events.len();
        for (i, event) in events.into_iter().enumerate() {
            log.persist(event, now, late).map_err(|e| {
                OktaError::validation("Api validation failed: events", format!("events[{i}]: {e}"))
            })?;
        }
        Ok(n)
    }
}

pub fn router(org: Arc<Org>) -> Router {
    let okta = Router::new()
        .route("/api/v1/logs", get(logs))
        .layer(middleware::from_fn_with_state(org.clone(), okta_api));
    let control = Router::new()
        .route("/sim/events", post(sim_events))
        .route("/sim/reset", post(sim_reset));
    okta.merge(control).with_state(org)
}

/// What every Okta response carries: a request id, and the bucket's rate-limit headers; and what
/// every Okta request needs: a valid token, and room in its bucket.
async fn okta_api(State(org): State<Arc<Org>>, request: Request, next: Next) -> Response {
    let n = org.requests.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("reqSim{n:016x}");
    let (bucket, limit) = match request.uri().path() {
        "/api/v1/logs" => ("/api/v1/logs", org.config.rate_limits.logs),
        _ => ("/api/v1", org.config.rate_limits.other),
    };
    let now = Utc::now().timestamp();
    let (remaining, reset, allowed) = match org.windows.lock() {
        Ok(mut windows) => {
            let w = windows.entry(bucket).or_insert(Window {
                reset: now + 60,
                used: 0,
            });
            if now >= w.reset {
                *w = Window {
                    reset: now + 60,
                    used: 0,
                };
            }
            let allowed = w.used < limit;
            if allowed {
                w.used += 1;
            }
            (limit - w.used, w.reset, allowed)
        }
        Err(_) => (0, now + 60, false),
    };
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("SSWS "))
        .is_some_and(|t| !org.config.token.is_empty() && t == org.config.token);

    let mut response = if !authorized {
        okta_error(OktaError::invalid_token())
    } else if !allowed {
        okta_error(OktaError::rate_limited())
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    for (name, value) in [
        ("x-okta-request-id", request_id),
        ("x-rate-limit-limit", limit.to_string()),
        ("x-rate-limit-remaining", remaining.to_string()),
        ("x-rate-limit-reset", reset.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    response
}

fn okta_error(e: OktaError) -> Response {
    (e.status(), Json(e)).into_response()
}

async fn logs(
    State(org): State<Arc<Org>>,
    uri: axum::http::Uri,
    Query(q): Query<LogQuery>,
) -> Response {
    let log = match org.log.read() {
        Ok(log) => log,
        Err(_) => return okta_error(OktaError::timeout()),
    };
    let page = match log.query(&q, Utc::now()) {
        Ok(page) => page,
        Err(e) => return okta_error(e),
    };
    let base = &org.config.base_url;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let self_link = format!("<{base}{uri}>; rel=\"self\"");
    if let Ok(v) = HeaderValue::from_str(&self_link) {
        headers.append(header::LINK, v);
    }
    if let Some(next) = &page.next
        && let Ok(v) = HeaderValue::from_str(&format!("<{base}/api/v1/logs?{next}>; rel=\"next\""))
    {
        headers.append(header::LINK, v);
    }
    (StatusCode::OK, headers, page.body()).into_response()
}

#[derive(serde::Deserialize)]
struct EventsParams {
    #[serde(default)]
    late: bool,
}

async fn sim_events(
    State(org): State<Arc<Org>>,
    Query(params): Query<EventsParams>,
    Json(events): Json<Vec<Value>>,
) -> Response {
    match org.persist(events, params.late) {
        Ok(n) => Json(serde_json::json!({ "persisted": n })).into_response(),
        Err(e) => okta_error(e),
    }
}

async fn sim_reset(State(org): State<Arc<Org>>) -> Response {
    match (org.log.write(), org.windows.lock()) {
        (Ok(mut log), Ok(mut windows)) => {
            log.clear();
            windows.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => okta_error(OktaError::timeout()),
    }
}
