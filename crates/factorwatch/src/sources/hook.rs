//! The Event Hook receiver: Okta's seconds-latency path, reachable from the internet. Every
//! request — the one-time verification GET too — must carry the shared secret (checked in
//! constant time, before a byte of the body is read: 401 otherwise). The body is bounded in size
//! (413) and in time (408: a client dribbling it holds nothing for long), malformed bodies are
//! refused (400, saying what is wrong), and the answer is 200 only once the events are committed
//! to the store — within Okta's 3 s, else 503 so Okta retries and polling reconciles. Connection
//! limits and header timeouts are [`crate::http::server`]'s.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde::Deserialize;
use tracing::{error, warn};

use crate::pipeline::ingest::Ingest;
use crate::pipeline::worker::Signals;
use crate::secret::Secret;
use crate::store::{SourceKind, Store};

/// Okta gives up after 3 s; answer before that.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(2500);
/// Okta sends a delivery's body at once; one that takes longer than Okta's own timeout is not
/// Okta's.
pub const BODY_WITHIN: Duration = Duration::from_secs(3);

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
    signals: Arc<Signals>,
}

/// The receiver's routes, at `path`.
pub fn router<S: Store>(
    path: &str,
    config: HookConfig,
    store: S,
    ingest: Arc<Ingest>,
    signals: Arc<Signals>,
) -> Router {
    let state = Arc::new(HookState {
        config,
        store,
        ingest,
        signals,
    });
    Router::new()
        .route(path, get(verify::<S>).post(counted::<S>))
        .with_state(state)
}

/// Whether the request carries the shared secret (Okta sends it on every call).
fn authorized<S: Store>(state: &HookState<S>, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(state.config.auth_header.as_str())
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    state.config.secret.matches(presented)
}

fn unauthorized<S: Store>(state: &HookState<S>) -> (StatusCode, String) {
    warn!(org = %state.config.org, "Event Hook request with a wrong or missing secret refused");
    (
        StatusCode::UNAUTHORIZED,
        "wrong or missing shared secret\n".into(),
    )
}

/// The one-time verification: echo the challenge, to a caller that knows the secret.
async fn verify<S: Store>(
    State(state): State<Arc<HookState<S>>>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    if !authorized(&state, &headers) {
        return unauthorized(&state);
    }
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
    body: Body,
) -> (StatusCode, String) {
    let org = state.config.org.clone();
    let answer = deliver(State(state), headers, body).await;
    crate::telemetry::hook_request(&org, answer.0.as_u16());
    answer
}

async fn deliver<S: Store>(
    State(state): State<Arc<HookState<S>>>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, String) {
    // The secret first: without it, not a byte of the body is read.
    if !authorized(&state, &headers) {
        return unauthorized(&state);
    }
    use crate::http::server::{BodyError, read_body};
    let bytes = match read_body(body, state.config.max_body, BODY_WITHIN).await {
        Ok(b) => b,
        Err(e @ BodyError::TooLarge(_)) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n"));
        }
        Err(e @ BodyError::TooSlow(_)) => return (StatusCode::REQUEST_TIMEOUT, format!("{e}\n")),
        Err(e @ BodyError::Broken(_)) => return (StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let Ok(body) = std::str::from_utf8(&bytes) else {
        return (
            StatusCode::BAD_REQUEST,
            "not an Okta Event Hook delivery: the body is not UTF-8\n".into(),
        );
    };
    if let Err(e) = serde_json::from_str::<Envelope>(body) {
        return (
            StatusCode::BAD_REQUEST,
            format!("not an Okta Event Hook delivery (a JSON object with data.events[]): {e}\n"),
        );
    }
    let batch = state.ingest.batch(SourceKind::EventHook, body, None);
    let commit = state
        .store
        .commit(&state.config.org, &batch, chrono::Utc::now());
    match tokio::time::timeout(ANSWER_WITHIN, commit).await {
        Ok(Ok(c)) => {
            if !batch.signals.is_empty() {
                state.signals.appended(&state.config.org);
            }
            if c.new > 0 {
                state.signals.stored();
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
