//! Okta's API: `/api/v1/logs`, `/api/v1/events`, Users and Factors, Event Hooks, and
//! `/oauth2/v1/token`; each request first passes [`gate`] (request id, faults, rate limits,
//! credentials and scopes).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use super::{Org, lock, read};
use crate::error::OktaError;
use crate::faults::Plan;
use crate::hooks::delivery::{self, Record, Target};
use crate::hooks::registry::{NewHook, Status};
use crate::legacy::{self, EventsQuery};
use crate::logs::{LogQuery, okta_time};
use crate::oauth::{OAuthError, Refusal, ResourceRequest};
use crate::rate;

pub(super) fn router(org: Arc<Org>) -> Router<Arc<Org>> {
    Router::new()
        .route("/api/v1/logs", get(logs))
        .route("/api/v1/events", get(events))
        .route("/api/v1/users/{id}", get(user))
        .route("/api/v1/users/{id}/factors", get(factors))
        .route("/api/v1/users/{id}/factors/{factor}", get(factor))
        .route("/api/v1/eventHooks", get(list_hooks).post(create_hook))
        .route("/api/v1/eventHooks/{id}", get(get_hook))
        .route(
            "/api/v1/eventHooks/{id}/lifecycle/{action}",
            post(hook_lifecycle),
        )
        .route("/oauth2/v1/token", post(token))
        .merge(super::user_actions::router())
        .layer(middleware::from_fn_with_state(org, gate))
}

pub(super) fn okta_error(e: OktaError) -> Response {
    (e.status(), Json(e)).into_response()
}

/// The OAuth scopes that allow a request (any one of them).
fn scopes_for(method: &Method, path: &str) -> &'static [&'static str] {
    if path == "/api/v1/logs" || path == "/api/v1/events" {
        &["okta.logs.read"]
    } else if path.starts_with("/api/v1/users") && path.ends_with("/risk") {
        if method == Method::GET {
            &["okta.userRisk.read", "okta.userRisk.manage"]
        } else {
            &["okta.userRisk.manage"]
        }
    } else if path.starts_with("/api/v1/users") {
        if method == Method::GET {
            &["okta.users.read", "okta.users.manage"]
        } else {
            &["okta.users.manage"]
        }
    } else if path.starts_with("/api/v1/eventHooks") {
        if method == Method::GET {
            &["okta.eventHooks.read", "okta.eventHooks.manage"]
        } else {
            &["okta.eventHooks.manage"]
        }
    } else {
        &[]
    }
}

/// Which `/sim/faults` entry a path falls under.
fn fault_key(path: &str) -> &str {
    for prefix in ["/api/v1/users", "/api/v1/eventHooks"] {
        if path.starts_with(prefix) {
            return prefix;
        }
    }
    path
}

/// What every Okta response carries (a request id, the bucket's rate-limit headers), and what
/// every Okta request must pass (injected faults, room in its bucket, valid credentials).
async fn gate(State(org): State<Arc<Org>>, mut request: Request, next: Next) -> Response {
    let n = org
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let request_id = format!("reqSim{n:016x}");
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let plan = match (lock(&org.faults), lock(&org.rng)) {
        (Ok(mut faults), Ok(mut rng)) => faults.plan(fault_key(&path), &mut *rng),
        _ => Plan::default(),
    };
    if plan.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(plan.latency_ms)).await;
    }
    let now = org.now();
    let (bucket, limit) = rate::bucket(&org.config.rate_limits, method.as_str(), &path);
    let verdict = match lock(&org.windows) {
        Ok(mut w) => w.take(
            bucket,
            limit,
            org.config.rate_limits.window_secs,
            now.timestamp(),
        ),
        Err(e) => return okta_error(e),
    };

    let asked_at = org.now();
    // The client's address: which connection carried the request (kept or new).
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.to_string());
    let agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let denied = if path == "/oauth2/v1/token" {
        None
    } else {
        refuse(&org, &request, &method, &path)
    };
    let mut response = match denied {
        Some(refusal) => refusal,
        None if plan.throttle || !verdict.allowed => okta_error(OktaError::rate_limited()),
        None if plan.fail => okta_error(OktaError::timeout()),
        None if plan.redirect_to.is_some() => {
            let to = format!(
                "{}{path}{query}",
                plan.redirect_to.as_deref().unwrap_or_default()
            );
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        None => {
            request.extensions_mut().insert(plan.clone());
            let response = next.run(request).await;
            if response.status() != StatusCode::OK {
                response
            } else if plan.oversize_bytes > 0 {
                oversize(response, plan.oversize_bytes)
            } else if plan.drip_ms > 0 {
                drip(response, plan.drip_ms).await
            } else if plan.truncate {
                truncate(response).await
            } else {
                response
            }
        }
    };
    let h = response.headers_mut();
    let remaining = if plan.throttle { 0 } else { verdict.remaining };
    for (name, value) in [
        ("x-okta-request-id", request_id),
        ("x-rate-limit-limit", verdict.limit.to_string()),
        ("x-rate-limit-remaining", remaining.to_string()),
        ("x-rate-limit-reset", verdict.reset.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&now.to_rfc2822().replace("+0000", "GMT")) {
        h.insert(header::DATE, v);
    }
    // Who polled the System Log, from when to when (`GET /sim/polls`).
    if path == "/api/v1/logs" || path == "/api/v1/events" {
        let poll = json!({
            "path": path,
            "query": query.trim_start_matches('?'),
            "user_agent": agent,
            "peer": peer,
            "bytes": axum::body::HttpBody::size_hint(response.body()).exact(),
            "start_ms": asked_at.timestamp_millis(),
            "end_ms": org.now().timestamp_millis(),
            "status": response.status().as_u16(),
        });
        if let Ok(mut polls) = lock(&org.polls) {
            polls.push(poll);
        }
    }
    // What a responder asked of the org, refused or not (`GET /sim/calls`).
    if method != Method::GET && path.starts_with("/api/v1/users/") {
        let call = json!({
            "method": method.as_str(),
            "path": path,
            "query": query.trim_start_matches('?'),
            "status": response.status().as_u16(),
            "at": okta_time(now),
        });
        if let Ok(mut calls) = lock(&org.calls) {
            calls.push(call);
        }
    }
    response
}

/// Checks the request's credentials: `None` when they are good, else the response to send.
fn refuse(org: &Org, request: &Request, method: &Method, path: &str) -> Option<Response> {
    let header_text = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header_text("authorization").unwrap_or_default();
    let (scheme, credential) = authorization.split_once(' ').unwrap_or(("", ""));
    let scopes = scopes_for(method, path);
    let result = match scheme {
        "SSWS" => {
            if !org.config.token.is_empty() && constant_time_eq(credential, &org.config.token) {
                Ok(())
            } else {
                Err(Refusal::InvalidToken)
            }
        }
        "Bearer" | "DPoP" => {
            let url = format!("{}{path}", org.config.base_url);
            let dpop = header_text("dpop");
            let now = org.now().timestamp();
            match lock(&org.oauth) {
                Ok(mut oauth) => {
                    let presented = ResourceRequest {
                        scheme,
                        token: credential,
                        dpop: dpop.as_deref(),
                        method: method.as_str(),
                        url: &url,
                    };
                    oauth.authorize(&presented, scopes, now)
                }
                Err(e) => return Some(okta_error(e)),
            }
        }
        _ => Err(Refusal::InvalidToken),
    };
    result.err().map(|refusal| {
        let (error, www) = match refusal {
            Refusal::InvalidToken => (
                OktaError::invalid_token(),
                format!(
                    "{} error=\"invalid_token\", error_description=\"The access token is invalid.\"",
                    if scheme == "DPoP" { "DPoP" } else { "Bearer" }
                ),
            ),
            Refusal::InvalidProof => (
                OktaError::invalid_token(),
                "DPoP error=\"invalid_dpop_proof\", error_description=\"The DPoP proof is invalid.\"".to_owned(),
            ),
            Refusal::InsufficientScope => (
                OktaError::forbidden(),
                format!(
                    "Bearer error=\"insufficient_scope\", error_description=\"The access token provided does not contain the required scopes.\", scope=\"{}\"",
                    scopes.join(" ")
                ),
            ),
        };
        let mut response = okta_error(error);
        if let Ok(v) = HeaderValue::from_str(&www) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    })
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Cuts a 200 body in half, as a connection dropped mid-body would.
async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(half))
}

/// Replaces a 200 body by `size` bytes of a JSON array of blanks, streamed in 64 KiB chunks with
/// no `Content-Length`: the client must stop reading on its own.
fn oversize(response: Response, size: u64) -> Response {
    const CHUNK: u64 = 64 << 10;
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let chunks = futures_util::stream::unfold(0u64, move |sent| async move {
        if sent >= size {
            return None;
        }
        let n = CHUNK.min(size - sent);
        let mut chunk = vec![b' '; n as usize];
        if sent == 0 {
            chunk[0] = b'[';
        }
        if sent + n == size {
            chunk[n as usize - 1] = b']';
        }
        Some((
            Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk)),
            sent + n,
        ))
    });
    Response::from_parts(parts, Body::from_stream(chunks))
}

/// Sends a 200 body one byte every `ms` milliseconds, as a slow or hostile server would.
async fn drip(response: Response, ms: u64) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    let chunks = futures_util::stream::unfold(0usize, move |i| {
        let bytes = bytes.clone();
        async move {
            if i >= bytes.len() {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            Some((Ok::<_, std::io::Error>(bytes.slice(i..i + 1)), i + 1))
        }
    });
    Response::from_parts(parts, Body::from_stream(chunks))
}

fn json_response(headers: HeaderMap, body: String) -> Response {
    let mut headers = headers;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, body).into_response()
}

/// `self` and `next` links; `next_base` (a hostile fault) replaces the org's origin in `next`.
fn link_headers(
    base: &str,
    next_base: Option<&str>,
    self_uri: &axum::http::Uri,
    path: &str,
    next: Option<&str>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("<{base}{self_uri}>; rel=\"self\"")) {
        headers.append(header::LINK, v);
    }
    let next_base = next_base.unwrap_or(base);
    if let Some(next) = next
        && let Ok(v) = HeaderValue::from_str(&format!("<{next_base}{path}?{next}>; rel=\"next\""))
    {
        headers.append(header::LINK, v);
    }
    headers
}

async fn logs(
    State(org): State<Arc<Org>>,
    Extension(plan): Extension<Plan>,
    uri: axum::http::Uri,
    Query(q): Query<LogQuery>,
) -> Response {
    let log = match read(&org.log) {
        Ok(log) => log,
        Err(e) => return okta_error(e),
    };
    let page = match log.query_with(&q, org.now(), plan.duplicate) {
        Ok(page) => page,
        Err(e) => return okta_error(e),
    };
    let headers = link_headers(
        &org.config.base_url,
        plan.foreign_next.as_deref(),
        &uri,
        "/api/v1/logs",
        page.next.as_deref(),
    );
    json_response(headers, page.body())
}

async fn events(
    State(org): State<Arc<Org>>,
    Extension(plan): Extension<Plan>,
    uri: axum::http::Uri,
    Query(q): Query<EventsQuery>,
) -> Response {
    let page = match read(&org.log).and_then(|log| legacy::query(&log, &q, org.now())) {
        Ok(page) => page,
        Err(e) => return okta_error(e),
    };
    let headers = link_headers(
        &org.config.base_url,
        plan.foreign_next.as_deref(),
        &uri,
        "/api/v1/events",
        Some(&page.next),
    );
    json_response(headers, page.body())
}

async fn user(State(org): State<Arc<Org>>, Path(id): Path<String>) -> Response {
    match read(&org.directory).and_then(|d| d.user(&id).cloned()) {
        Ok(user) => Json(user).into_response(),
        Err(e) => okta_error(e),
    }
}

async fn factors(State(org): State<Arc<Org>>, Path(id): Path<String>) -> Response {
    match read(&org.directory).and_then(|d| d.factors(&id).map(<[Value]>::to_vec)) {
        Ok(factors) => Json(factors).into_response(),
        Err(e) => okta_error(e),
    }
}

async fn factor(
    State(org): State<Arc<Org>>,
    Path((id, factor)): Path<(String, String)>,
) -> Response {
    match read(&org.directory).and_then(|d| d.factor(&id, &factor).cloned()) {
        Ok(f) => Json(f).into_response(),
        Err(e) => okta_error(e),
    }
}

/// Parses a JSON request body, answering as Okta does when it is not JSON of the right shape.
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, OktaError> {
    serde_json::from_str(body).map_err(|e| OktaError::malformed_body(e.to_string()))
}

async fn create_hook(State(org): State<Arc<Org>>, body: String) -> Response {
    let created = parse_body::<NewHook>(&body).and_then(|new| {
        let now = org.now();
        lock(&org.hooks)?
            .create(new, now)
            .map(|h| h.to_json(&org.config.base_url))
    });
    match created {
        Ok(hook) => Json(hook).into_response(),
        Err(e) => okta_error(e),
    }
}

async fn list_hooks(State(org): State<Arc<Org>>) -> Response {
    match lock(&org.hooks) {
        Ok(hooks) => Json(
            hooks
                .list()
                .iter()
                .map(|h| h.to_json(&org.config.base_url))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => okta_error(e),
    }
}

async fn get_hook(State(org): State<Arc<Org>>, Path(id): Path<String>) -> Response {
    match lock(&org.hooks).and_then(|h| h.get(&id).map(|h| h.to_json(&org.config.base_url))) {
        Ok(hook) => Json(hook).into_response(),
        Err(e) => okta_error(e),
    }
}

async fn hook_lifecycle(
    State(org): State<Arc<Org>>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let now = org.now();
    let result = match action.as_str() {
        "activate" | "deactivate" => {
            let status = if action == "activate" {
                Status::Active
            } else {
                Status::Inactive
            };
            lock(&org.hooks).and_then(|mut h| {
                h.set_status(&id, status, now)
                    .map(|h| h.to_json(&org.config.base_url))
            })
        }
        "verify" => verify_hook(&org, &id).await,
        _ => Err(OktaError::not_found(&format!(
            "Resource not found: {action} (Lifecycle)"
        ))),
    };
    match result {
        Ok(hook) => Json(hook).into_response(),
        Err(e) => okta_error(e),
    }
}

/// `lifecycle/verify`: Okta's one-time GET with a challenge the hook must echo.
pub(super) async fn verify_hook(org: &Org, id: &str) -> Result<Value, OktaError> {
    let mut target = Target::from(lock(&org.hooks)?.get(id)?);
    if lock(&org.faults)?.hooks.verify_without_auth {
        target = target.without_auth();
    }
    let challenge = {
        use rand::Rng;
        let bytes: [u8; 24] = lock(&org.rng)?.r#gen();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let sent_at = okta_time(org.now());
    let (echoed, outcome) = delivery::verify(&org.http, &target, &challenge).await;
    lock(&org.deliveries)?.push(Record {
        kind: "verification",
        hook_id: id.to_owned(),
        delivery_id: None,
        attempt: 1,
        duplicate: false,
        sent_at,
        status: outcome.status,
        error: outcome.error.clone(),
        events: Vec::new(),
    });
    if !echoed {
        let why = match (outcome.status, outcome.error) {
            (Some(200), _) => "the response did not echo the verification challenge".to_owned(),
            (Some(s), _) => format!("the endpoint answered HTTP {s}"),
            (None, Some(e)) => e,
            (None, None) => "no answer".to_owned(),
        };
        return Err(OktaError::validation(
            "Api validation failed: Verification failed",
            format!("verification: Event hook verification failed: {why}."),
        ));
    }
    let now = org.now();
    lock(&org.hooks)?
        .set_verified(id, now)
        .map(|h| h.to_json(&org.config.base_url))
}

async fn token(State(org): State<Arc<Org>>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let dpop = headers.get("dpop").and_then(|v| v.to_str().ok());
    let url = format!("{}/oauth2/v1/token", org.config.base_url);
    let now = org.now().timestamp();
    let result = match lock(&org.oauth) {
        Ok(mut oauth) => oauth.token(&form, dpop, &url, now),
        Err(e) => return okta_error(e),
    };
    match result {
        Ok(t) => Json(t).into_response(),
        Err(e) => oauth_error(e),
    }
}

fn oauth_error(e: OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, Json(json!(e))).into_response();
    if let Some(nonce) = &e.dpop_nonce
        && let Ok(v) = HeaderValue::from_str(nonce)
    {
        response.headers_mut().insert("dpop-nonce", v);
    }
    response
}
