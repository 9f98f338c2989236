//! Okta's user-management calls a responder makes: clear a user's sessions
//! (`DELETE /api/v1/users/{id}/sessions?oauthTokens=true`, 204), the lifecycle operations
//! `reset_factors`, `suspend` and `unsuspend` (`POST …/lifecycle/{op}`, 200 `{}`; 400 E0000001
//! when the user's status does not allow it), and the User Risk API (`GET`/`PUT …/risk`,
//! Identity Threat Protection only: elsewhere 401 E0000015). Each logs what Okta logs
//! (`user.session.clear`, `user.mfa.factor.reset_all`, `user.lifecycle.suspend`…), and every
//! call, refused or not, is recorded for `GET /sim/calls`. Scopes: `okta.users.manage`, and
//! `okta.userRisk.manage` / `.read` for risk ([`super::okta_api`]'s gate).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::okta_api::{okta_error, parse_body};
use super::{Org, lock, write};
use crate::error::OktaError;

pub(super) fn router() -> Router<Arc<Org>> {
    Router::new()
        .route("/api/v1/users/{id}/sessions", delete(clear_sessions))
        .route("/api/v1/users/{id}/lifecycle/{op}", post(lifecycle))
        .route("/api/v1/users/{id}/risk", get(get_risk).put(put_risk))
}

/// The admin Okta names as the actor of what an API token does.
fn api_actor() -> Value {
    json!({
        "id": "00usimapiadmin000001",
        "type": "User",
        "alternateId": "api-admin@okta-sim.invalid",
        "displayName": "API administrator",
        "detailEntry": null
    })
}

/// An event as Okta logs an administrator's action on a user.
fn event(org: &Org, event_type: &str, message: &str, user: &Value) -> Value {
    let now = org.now();
    json!({
        "uuid": uuid(),
        "published": crate::logs::okta_time(now),
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "legacyEventType": null,
        "displayMessage": message,
        "actor": api_actor(),
        "client": { "ipAddress": "127.0.0.1", "userAgent": { "rawUserAgent": "okta-sim" } },
        "outcome": { "result": "SUCCESS", "reason": null },
        "target": [{
            "id": user["id"],
            "type": "User",
            "alternateId": user["profile"]["login"],
            "displayName": format!(
                "{} {}",
                user["profile"]["firstName"].as_str().unwrap_or_default(),
                user["profile"]["lastName"].as_str().unwrap_or_default()
            ).trim(),
            "detailEntry": null
        }],
        "transaction": { "type": "WEB", "id": uuid(), "detail": {} },
        "debugContext": { "debugData": {} },
        "authenticationContext": { "authenticationStep": 0, "externalSessionId": "unknown" },
        "securityContext": {},
        "request": { "ipChain": [] }
    })
}

fn uuid() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn user(org: &Org, id: &str) -> Result<Value, OktaError> {
    // Only by id, as these endpoints take it.
    let dir = super::read(&org.directory)?;
    let u = dir.user(id)?.clone();
    if u["id"] != id {
        return Err(OktaError::not_found(&format!("{id} (User)")));
    }
    Ok(u)
}

async fn clear_sessions(
    State(org): State<Arc<Org>>,
    Path(id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let result = (|| {
        let u = user(&org, &id)?;
        let tokens = q.get("oauthTokens").is_some_and(|v| v == "true");
        org.persist(
            vec![event(
                &org,
                "user.session.clear",
                if tokens {
                    "Clear user session and OAuth tokens"
                } else {
                    "Clear user session"
                },
                &u,
            )],
            false,
        )?;
        Ok::<_, OktaError>(())
    })();
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => okta_error(e),
    }
}

async fn lifecycle(
    State(org): State<Arc<Org>>,
    Path((id, op)): Path<(String, String)>,
) -> Response {
    let result = (|| {
        let u = user(&org, &id)?;
        let status = u["status"].as_str().unwrap_or("ACTIVE").to_owned();
        let now = org.now();
        let events = match op.as_str() {
            "suspend" => {
                if status != "ACTIVE" {
                    return Err(OktaError::validation(
                        "Api validation failed: suspendUser",
                        "Cannot suspend a user that is not active",
                    ));
                }
                write(&org.directory)?.set_status(&id, "SUSPENDED", now)?;
                vec![event(
                    &org,
                    "user.lifecycle.suspend",
                    "Suspend Okta user",
                    &u,
                )]
            }
            "unsuspend" => {
                if status != "SUSPENDED" {
                    return Err(OktaError::validation(
                        "Api validation failed: unsuspendUser",
                        "Cannot unsuspend a user that is not suspended",
                    ));
                }
                write(&org.directory)?.set_status(&id, "ACTIVE", now)?;
                vec![event(
                    &org,
                    "user.lifecycle.unsuspend",
                    "Unsuspend Okta user",
                    &u,
                )]
            }
            "reset_factors" => {
                write(&org.directory)?.reset_factors(&id)?;
                vec![event(
                    &org,
                    "user.mfa.factor.reset_all",
                    "Reset all factors for user",
                    &u,
                )]
            }
            _ => return Err(OktaError::not_found(&format!("lifecycle operation {op}"))),
        };
        org.persist(events, false)?;
        Ok(())
    })();
    match result {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => okta_error(e),
    }
}

fn risk_body(org: &Org, id: &str, level: &str, reason: &str) -> Value {
    json!({
        "riskLevel": level,
        "reason": reason,
        "_links": {
            "self": { "href": format!("{}/api/v1/users/{id}/risk", org.config.base_url) },
            "user": { "href": format!("{}/api/v1/users/{id}", org.config.base_url) }
        }
    })
}

async fn get_risk(State(org): State<Arc<Org>>, Path(id): Path<String>) -> Response {
    if !org.features.identity_threat_protection() {
        return okta_error(OktaError::feature_not_enabled());
    }
    if let Err(e) = user(&org, &id) {
        return okta_error(e);
    }
    match lock(&org.risk) {
        Ok(r) => match r.get(&id) {
            Some(level) => Json(risk_body(&org, &id, level, "Admin override risk")).into_response(),
            None => Json(risk_body(&org, &id, "LOW", "No risk detected")).into_response(),
        },
        Err(e) => okta_error(e),
    }
}

async fn put_risk(State(org): State<Arc<Org>>, Path(id): Path<String>, body: String) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Put {
        risk_level: String,
    }
    if !org.features.identity_threat_protection() {
        return okta_error(OktaError::feature_not_enabled());
    }
    let result = (|| {
        let u = user(&org, &id)?;
        let put: Put = parse_body(&body)?;
        if put.risk_level != "HIGH" && put.risk_level != "LOW" {
            return Err(OktaError::validation(
                "Api validation failed: riskLevel",
                "riskLevel must be HIGH or LOW",
            ));
        }
        let created = lock(&org.risk)?
            .insert(id.clone(), put.risk_level.clone())
            .is_none();
        org.persist(
            vec![event(
                &org,
                "user.risk.change",
                "User risk level changed",
                &u,
            )],
            false,
        )?;
        Ok((created, put.risk_level))
    })();
    match result {
        Ok((created, level)) => (
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(risk_body(&org, &id, &level, "Admin override risk")),
        )
            .into_response(),
        Err(e) => okta_error(e),
    }
}
