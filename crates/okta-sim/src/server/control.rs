//! The test control API under `/sim` (no auth, never rate-limited): put users, events, service
//! apps and hooks into the org, inject faults, read hook deliveries, move the clock, reset.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::okta_api::{okta_error, parse_body, verify_hook};
use super::{Org, lock};
use crate::error::OktaError;
use crate::faults::Faults;
use crate::hooks::registry::{MFA_TYPES, NewHook};
use crate::oauth::ServiceApp;

pub(super) fn router() -> Router<Arc<Org>> {
    Router::new()
        .route("/sim/events", post(events))
        .route("/sim/users", post(users))
        .route("/sim/apps", post(apps))
        .route("/sim/apps/revoke-tokens", post(revoke_tokens))
        .route("/sim/hooks", post(hooks))
        .route("/sim/hooks/deliveries", get(deliveries))
        .route("/sim/faults", post(faults))
        .route("/sim/clock", post(clock))
        .route("/sim/reset", post(reset))
        .route("/sim/calls", get(calls))
        .route("/sim/polls", get(polls))
        .route("/sim/features", post(features))
}

fn answer(result: Result<Value, OktaError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => okta_error(e),
    }
}

#[derive(Deserialize)]
struct EventsParams {
    #[serde(default)]
    late: bool,
}

/// A JSON array of System Log events, persisted now (`?late=true`: keeping their `published`).
async fn events(
    State(org): State<Arc<Org>>,
    Query(params): Query<EventsParams>,
    body: String,
) -> Response {
    answer(
        parse_body::<Vec<Value>>(&body)
            .and_then(|events| org.persist(events, params.late))
            .map(|n| json!({ "persisted": n })),
    )
}

/// A JSON array of Okta User objects, each with an optional `factors` array.
async fn users(State(org): State<Arc<Org>>, body: String) -> Response {
    answer(
        parse_body::<Vec<Value>>(&body)
            .and_then(|users| org.upsert_users(users))
            .map(Value::Array),
    )
}

/// A JSON array of service apps: `client_id`, `jwks` (`{"keys": [...]}`), `scopes`, and
/// optionally `dpop_bound_access_tokens`.
async fn apps(State(org): State<Arc<Org>>, body: String) -> Response {
    answer(parse_body::<Vec<ServiceApp>>(&body).and_then(|apps| {
        let n = apps.len();
        let mut oauth = lock(&org.oauth)?;
        for app in apps {
            oauth.register(app);
        }
        Ok(json!({ "registered": n }))
    }))
}

/// Revokes every access token issued so far.
async fn revoke_tokens(State(org): State<Arc<Org>>) -> Response {
    answer(lock(&org.oauth).map(|mut o| json!({ "revoked": o.revoke_all() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimHook {
    url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    auth_header: Option<AuthHeader>,
    /// Event types; the MFA lifecycle types by default.
    #[serde(default)]
    events: Option<Vec<String>>,
    /// Run Okta's verification at once (default true).
    #[serde(default = "yes")]
    verify: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthHeader {
    name: String,
    value: String,
}

fn yes() -> bool {
    true
}

/// Registers a hook as the Admin Console would: create, then verify.
async fn hooks(State(org): State<Arc<Org>>, body: String) -> Response {
    let sim: SimHook = match parse_body(&body) {
        Ok(s) => s,
        Err(e) => return okta_error(e),
    };
    let items = sim
        .events
        .unwrap_or_else(|| MFA_TYPES.iter().map(|s| (*s).to_owned()).collect());
    let new: Result<NewHook, _> = serde_json::from_value(json!({
        "name": sim.name.unwrap_or_else(|| "factorwatch".to_owned()),
        "events": { "type": "EVENT_TYPE", "items": items },
        "channel": { "type": "HTTP", "version": "1.0.0", "config": {
            "uri": sim.url,
            "authScheme": sim.auth_header.map(|a| json!({ "type": "HEADER", "key": a.name, "value": a.value })),
        }},
    }));
    let created = new
        .map_err(|e| OktaError::malformed_body(e.to_string()))
        .and_then(|new| {
            let now = org.now();
            lock(&org.hooks)?.create(new, now).map(|h| h.id.clone())
        });
    let id = match created {
        Ok(id) => id,
        Err(e) => return okta_error(e),
    };
    if sim.verify {
        answer(verify_hook(&org, &id).await)
    } else {
        answer(lock(&org.hooks).and_then(|h| h.get(&id).map(|h| h.to_json(&org.config.base_url))))
    }
}

/// Every call made to hooks so far (verifications, deliveries, retries, duplicates).
async fn deliveries(State(org): State<Arc<Org>>) -> Response {
    answer(lock(&org.deliveries).map(|d| json!(*d)))
}

async fn faults(State(org): State<Arc<Org>>, body: String) -> Response {
    answer(parse_body::<Faults>(&body).and_then(|f| {
        f.validate()
            .map_err(|e| OktaError::validation("Api validation failed: faults", e))?;
        *lock(&org.faults)? = f;
        Ok(json!({ "ok": true }))
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clock {
    advance_seconds: i64,
}

/// Moves the org's clock forward (token expiry, rate-limit windows, retention).
async fn clock(State(org): State<Arc<Org>>, body: String) -> Response {
    answer(parse_body::<Clock>(&body).map(|c| {
        org.advance_clock(chrono::Duration::seconds(c.advance_seconds));
        json!({ "now": crate::logs::okta_time(org.now()) })
    }))
}

/// The user-management calls received (sessions, lifecycle, risk), refused or not.
async fn calls(State(org): State<Arc<Org>>) -> Response {
    answer(org.calls().map(Value::from))
}

/// Who polled the System Log and the Events API: user agent, start and end (ms), status.
async fn polls(State(org): State<Arc<Org>>) -> Response {
    answer(org.polls().map(Value::from))
}

/// `{"identity_threat_protection": false}`: the org lacks ITP (the User Risk API answers 401
/// E0000015).
async fn features(State(org): State<Arc<Org>>, body: String) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Features {
        identity_threat_protection: bool,
    }
    answer(parse_body::<Features>(&body).map(|f| {
        org.set_identity_threat_protection(f.identity_threat_protection);
        json!({ "identity_threat_protection": f.identity_threat_protection })
    }))
}

async fn reset(State(org): State<Arc<Org>>) -> Response {
    answer(org.reset().map(|()| json!({ "ok": true })))
}
