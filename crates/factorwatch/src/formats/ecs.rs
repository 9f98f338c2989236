//! Elastic Common Schema 8.x, shaped like Elastic's own Okta integration: `event.category: iam`,
//! `user.*` is the actor and `user.target.*` the affected user, Okta specifics under `okta.*`.

use serde_json::{Map, Value, json};

use super::{Context, time, title};
use crate::detect::{Finding, Severity};
use crate::record::{Action, MfaChange, format_published};

pub const ECS_VERSION: &str = "8.17.0";

fn event_type(action: Action) -> [&'static str; 2] {
    match action {
        Action::Enrolled | Action::Updated | Action::Unsuspended => ["user", "change"],
        Action::Reset | Action::ResetAll | Action::Suspended => ["user", "deletion"],
        Action::BypassAttempted => ["user", "info"],
        Action::OrgFactorEnabled | Action::OrgFactorDisabled => ["admin", "change"],
    }
}

fn person(
    id: Option<&String>,
    login: Option<&String>,
    name: Option<&String>,
) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(v) = login {
        m.insert("name".into(), json!(v));
        if v.contains('@') {
            m.insert("email".into(), json!(v));
        }
    }
    if let Some(v) = id {
        m.insert("id".into(), json!(v));
    }
    if let Some(v) = name {
        m.insert("full_name".into(), json!(v));
    }
    m
}

pub fn encode(change: &MfaChange, raw: &str, ctx: &Context) -> Value {
    let outcome = match change.outcome.as_deref() {
        Some("SUCCESS") => "success",
        Some(_) => "failure",
        None => "unknown",
    };
    let mut user = change
        .actor
        .as_ref()
        .map(|a| person(a.id.as_ref(), a.login.as_ref(), a.display_name.as_ref()))
        .unwrap_or_default();
    if let Some(u) = &change.user {
        user.insert(
            "target".into(),
            Value::Object(person(
                u.id.as_ref(),
                u.login.as_ref(),
                u.display_name.as_ref(),
            )),
        );
    }
    let mut doc = json!({
        "@timestamp": format_published(&time(change)),
        "message": change.message.clone().unwrap_or_else(|| title(change.action).into()),
        "event": {
            "kind": "event",
            "category": ["iam"],
            "type": event_type(change.action),
            "action": change.event_type,
            "outcome": outcome,
            "id": change.id.to_wire(),
            "provider": "okta",
            "module": "okta",
            "dataset": "okta.system",
            "reason": change.reason,
            "original": raw,
        },
        "user": user,
        "related": { "user": related_users_of(change) },
        "okta": {
            "org": ctx.org,
            "event_type": change.event_type,
            "legacy_event_type": change.legacy_event_type,
            "source": change.source,
            "action": change.action,
            "initiator": change.initiator,
            "factor": change.factor,
            "authentication_context": { "external_session_id": change.session_id },
        },
        "ecs": { "version": ECS_VERSION },
    });
    if let Some(obj) = doc.as_object_mut() {
        let c = &change.client;
        if let Some(ip) = &c.ip {
            let mut geo = Map::new();
            if let Some(v) = &c.city {
                geo.insert("city_name".into(), json!(v));
            }
            if let Some(v) = &c.state {
                geo.insert("region_name".into(), json!(v));
            }
            if let Some(v) = &c.country {
                geo.insert("country_name".into(), json!(v));
            }
            let mut source = json!({ "ip": ip });
            if !geo.is_empty() {
                source["geo"] = Value::Object(geo);
            }
            obj.insert("source".into(), source);
            obj.insert("client".into(), json!({ "ip": ip }));
            obj.insert(
                "related".into(),
                json!({ "user": related_users_of(change), "ip": [ip] }),
            );
        }
        if c.user_agent.is_some() || c.browser.is_some() || c.os.is_some() {
            let mut ua = Map::new();
            if let Some(v) = &c.user_agent {
                ua.insert("original".into(), json!(v));
            }
            if let Some(v) = &c.browser {
                ua.insert("name".into(), json!(v));
            }
            if let Some(v) = &c.os {
                ua.insert("os".into(), json!({ "name": v }));
            }
            obj.insert("user_agent".into(), Value::Object(ua));
        }
    }
    doc
}

fn related_users_of(change: &MfaChange) -> Vec<String> {
    let mut v: Vec<String> = [
        change.actor.as_ref().and_then(|a| a.login.clone()),
        change.user.as_ref().and_then(|u| u.login.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    v.dedup();
    v
}

/// A finding as an ECS alert (`event.kind: alert`), shaped like Elastic's own detection alerts:
/// `rule.*`, `event.severity` and `event.risk_score` on Elastic's 21/47/73/99 scale, the actor in
/// `user.*` and the affected user in `user.target.*`.
pub fn encode_finding(f: &Finding, ctx: &Context) -> Value {
    let score = match f.severity {
        Severity::Low => 21,
        Severity::Medium => 47,
        Severity::High => 73,
        Severity::Critical => 99,
    };
    let mut user = f
        .actor
        .as_ref()
        .map(|a| person(a.id.as_ref(), a.login.as_ref(), a.display_name.as_ref()))
        .unwrap_or_default();
    if let Some(u) = &f.user {
        user.insert(
            "target".into(),
            Value::Object(person(
                u.id.as_ref(),
                u.login.as_ref(),
                u.display_name.as_ref(),
            )),
        );
    }
    let related: Vec<&String> = [&f.actor, &f.user]
        .into_iter()
        .flatten()
        .filter_map(|p| p.login.as_ref())
        .collect();
    let mut doc = json!({
        "@timestamp": format_published(&f.last_seen),
        "message": f.summary,
        "event": {
            "kind": "alert",
            "category": ["iam"],
            "type": ["info"],
            "id": f.id,
            "severity": score,
            "risk_score": score,
            "start": format_published(&f.first_seen),
            "end": format_published(&f.last_seen),
            "provider": "factorwatch",
            "module": "factorwatch",
            "dataset": "factorwatch.finding",
            "reason": f.title,
        },
        "rule": {
            "id": f.rule.as_str(),
            "name": f.title,
            "ruleset": "factorwatch",
            "category": "account_takeover",
        },
        "user": user,
        "related": { "user": related },
        "factorwatch": {
            "org": ctx.org,
            "severity": f.severity,
            "event_ids": f.event_ids,
            "details": f.details,
        },
        "ecs": { "version": ECS_VERSION },
    });
    if let (Some(obj), Some(ip)) = (
        doc.as_object_mut(),
        f.details.get("ip").and_then(Value::as_str),
    ) {
        obj.insert("source".into(), json!({ "ip": ip }));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::testing::{ctx, example};

    #[test]
    fn the_actor_is_user_and_the_affected_user_is_user_target() {
        let v = encode(&example(), "{\"uuid\":\"e1\"}", &ctx());
        assert_eq!(v["@timestamp"], "2026-01-01T00:00:00.123Z");
        assert_eq!(v["event"]["category"], json!(["iam"]));
        assert_eq!(v["event"]["type"], json!(["user", "change"]));
        assert_eq!(v["event"]["action"], "user.mfa.factor.activate");
        assert_eq!(v["event"]["outcome"], "success");
        assert_eq!(v["user"]["name"], "admin@example.com");
        assert_eq!(v["user"]["target"]["name"], "jdoe@example.com");
        assert_eq!(v["source"]["ip"], "203.0.113.7");
        assert_eq!(v["source"]["geo"]["country_name"], "France");
        assert_eq!(v["user_agent"]["original"], "Mozilla/5.0 (Macintosh)");
        assert_eq!(
            v["related"]["user"],
            json!(["admin@example.com", "jdoe@example.com"])
        );
        assert_eq!(v["okta"]["factor"]["type"], "token:software:totp");
        assert_eq!(v["event"]["original"], "{\"uuid\":\"e1\"}");
        let mut c = example();
        c.action = Action::ResetAll;
        assert_eq!(
            encode(&c, "{}", &ctx())["event"]["type"],
            json!(["user", "deletion"])
        );
    }
}
