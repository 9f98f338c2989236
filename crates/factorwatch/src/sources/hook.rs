//! The Event Hook receiver: Okta's seconds-latency path. It answers the one-time verification
//! GET, checks the shared secret in constant time (401 otherwise), bounds the body (413), refuses
//! malformed bodies (400, saying what is wrong), and answers 200 only once the events are
//! committed to the store — within Okta's 3 s, else 503 so Okta retries and polling reconciles.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::Notify;
use tracing::{error, warn};

use crate::pipeline::ingest::Ingest;
use crate::secret::Secret;
use crate::store::{SourceKind, Store};

/// Okta gives up after 3 s; answer before that.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(2500);

pub struct HookConfig {
    pub org: String,
    /// The header Okta sends the shared secret in (`Authorization` by default).
    pub auth_header: String,
    pub secret: Secret,
    pub max_body: usize,
}

struct HookState<S: Store> {
    config: HookConfig,
    store: S,
    ingest: Arc<Ingest>,
    stored: Arc<Notify>,
}

/// The receiver's routes, at `path`.
pub fn router<S: Store>(
    path: &str,
    config: HookConfig,
    store: S,
    ingest: Arc<Ingest>,
    stored: Arc<Notify>,
) -> Router {
    let max_body = config.max_body;
    let state = Arc::new(HookState {
        config,
        store,
        ingest,
        stored,
    });
    Router::new()
        .route(path, get(verify).post(counted::<S>))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// The one-time verification: echo the challenge.
async fn verify(headers: HeaderMap) -> (StatusCode, String) {
    match headers
        .get("x-okta-verification-challenge")
        .and_then(|v| v.to_str().ok())
    {
        Some(challenge) => (
            StatusCode::OK,
            serde_json::json!({ "verification": challenge }).to_string(),
        ),
        None => (
            StatusCode::BAD_REQUEST,
            "expected Okta's x-okta-verification-challenge header\n".into(),
        ),
    }
}

// Parsed only to check the body's shape before anything is stored.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Data<'a> {
    #[serde(borrow)]
    events: Vec<&'a serde_json::value::RawValue>,
}

/// [`deliver`], counted by status for `/metrics`.
async fn counted<S: Store>(
    State(state): State<Arc<HookState<S>>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let org = state.config.org.clone();
    let answer = deliver(State(state), headers, body).await;
    crate::telemetry::hook_request(&org, answer.0.as_u16());
    answer
}

async fn deliver<S: Store>(
    State(state): State<Arc<HookState<S>>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let presented = headers
        .get(state.config.auth_header.as_str())
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !state.config.secret.matches(presented) {
        warn!(org = %state.config.org, "Event Hook delivery with a wrong or missing secret refused");
        return (
            StatusCode::UNAUTHORIZED,
            "wrong or missing shared secret\n".into(),
        );
    }
    if let Err(e) = serde_json::from_str::<Envelope>(&body) {
        return (
            StatusCode::BAD_REQUEST,
            format!("not an Okta Event Hook delivery (a JSON object with data.events[]): {e}\n"),
        );
    }
    let batch = state.ingest.batch(SourceKind::EventHook, &body, None);
    let commit = state
        .store
        .commit(&state.config.org, &batch, chrono::Utc::now());
    match tokio::time::timeout(ANSWER_WITHIN, commit).await {
        Ok(Ok(c)) => {
            if c.new > 0 {
                state.stored.notify_waiters();
            }
            (StatusCode::OK, String::new())
        }
        Ok(Err(e)) => {
            error!(org = %state.config.org, error = %e, "cannot store an Event Hook delivery; Okta will retry and polling reconciles");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not store the events: {e}\n"),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is busy; Okta will retry and polling reconciles\n".into(),
        ),
    }
}
