//! OCSF: Account Change (class 3001, schema 1.8.0) by default — activity 10 "MFA Factor Enable",
//! 11 "MFA Factor Disable", `type_uid` = class × 100 + activity — or User Management (class 3007,
//! schema 1.9.0: activities 12/13), which replaces it from 1.9.0.

use serde_json::{Map, Value, json};

use super::{Context, PRODUCT, VERSION, succeeded, time, title};
use crate::detect::{Finding, Severity};
use crate::okta::factors::FactorType;
use crate::record::{Action, Initiator, MfaChange};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub class_uid: u32,
    pub version: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            class_uid: ACCOUNT_CHANGE,
            version: "1.8.0".into(),
        }
    }
}

impl Options {
    pub fn user_management() -> Self {
        Options {
            class_uid: USER_MANAGEMENT,
            version: "1.9.0".into(),
        }
    }
}

pub const ACCOUNT_CHANGE: u32 = 3001;
pub const USER_MANAGEMENT: u32 = 3007;
const IAM: u32 = 3;

/// (activity_id, activity_name) in the chosen class.
fn activity(action: Action, class_uid: u32) -> (u32, &'static str) {
    let (enable, disable) = if class_uid == USER_MANAGEMENT {
        ((12, "Enable MFA Factors"), (13, "Disable MFA Factors"))
    } else {
        ((10, "MFA Factor Enable"), (11, "MFA Factor Disable"))
    };
    match action {
        Action::Enrolled | Action::Unsuspended => enable,
        Action::Reset | Action::ResetAll | Action::Suspended => disable,
        Action::Updated => (99, "MFA Factor Update"),
        Action::BypassAttempted => (99, "MFA Bypass Attempt"),
        Action::OrgFactorEnabled => (99, "Org MFA Factor Enable"),
        Action::OrgFactorDisabled => (99, "Org MFA Factor Disable"),
    }
}

/// OCSF `auth_factor.factor_type_id` and its caption, from Okta's factorType.
pub fn factor_type(t: Option<FactorType>) -> (u32, &'static str) {
    match t {
        Some(FactorType::Sms) => (1, "SMS"),
        Some(FactorType::Question) => (2, "Security Question"),
        Some(FactorType::Call) => (3, "Phone Call"),
        Some(FactorType::Push) => (5, "Push Notification"),
        Some(FactorType::HardwareToken) => (6, "Hardware Token"),
        Some(FactorType::SoftwareTotp | FactorType::Hotp) => (7, "OTP"),
        Some(FactorType::Email) => (8, "Email"),
        Some(FactorType::U2f) => (9, "U2F"),
        Some(FactorType::Webauthn) => (10, "WebAuthn"),
        Some(FactorType::Password) => (11, "Password"),
        _ => (99, "Other"),
    }
}

fn severity_id(action: Action) -> (u32, &'static str) {
    match action {
        Action::Enrolled | Action::Updated | Action::Unsuspended => (1, "Informational"),
        Action::OrgFactorEnabled | Action::OrgFactorDisabled => (2, "Low"),
        Action::Reset | Action::ResetAll | Action::Suspended => (3, "Medium"),
        Action::BypassAttempted => (4, "High"),
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value {
        map.insert(key.into(), Value::String(v.clone()));
    }
}

pub fn encode(change: &MfaChange, ctx: &Context, options: &Options) -> Value {
    let (activity_id, activity_name) = activity(change.action, options.class_uid);
    let (severity_id, severity) = severity_id(change.action);
    let (status_id, status) = match change.outcome.as_deref() {
        Some("SUCCESS") => (1, "Success"),
        Some(_) => (2, "Failure"),
        None => (0, "Unknown"),
    };
    let mut user = Map::new();
    match &change.user {
        Some(u) => {
            put(&mut user, "name", u.login.as_ref());
            put(&mut user, "uid", u.id.as_ref());
            put(&mut user, "full_name", u.display_name.as_ref());
            user.insert("type_id".into(), json!(1));
            user.insert("type".into(), json!("User"));
        }
        // Org-wide settings name no user; the class requires one: the org itself.
        None => {
            user.insert("name".into(), json!(ctx.org));
            user.insert("type_id".into(), json!(99));
            user.insert("type".into(), json!("Organization"));
        }
    }
    let mut actor = Map::new();
    if let Some(a) = &change.actor {
        let mut u = Map::new();
        put(&mut u, "name", a.login.as_ref());
        put(&mut u, "uid", a.id.as_ref());
        put(&mut u, "full_name", a.display_name.as_ref());
        if let Some(t) = &a.actor_type {
            u.insert("type".into(), json!(t));
        }
        actor.insert("user".into(), Value::Object(u));
        if change.initiator == Some(Initiator::App) {
            put(
                &mut actor,
                "app_name",
                a.display_name.as_ref().or(a.login.as_ref()),
            );
        }
    }
    let mut auth_factor = Map::new();
    let (type_id, type_name) = factor_type(change.factor.factor_type);
    auth_factor.insert("factor_type_id".into(), json!(type_id));
    auth_factor.insert("factor_type".into(), json!(type_name));
    if let Some(p) = change.factor.provider {
        auth_factor.insert("provider".into(), json!(p));
    }
    if change.factor.factor_type == Some(FactorType::SoftwareTotp) {
        auth_factor.insert("is_totp".into(), json!(true));
    }
    if let Some(d) = &change.factor.phone_last4 {
        auth_factor.insert("phone_number".into(), json!(format!("******{d}")));
    }
    let mut src = Map::new();
    put(&mut src, "ip", change.client.ip.as_ref());
    let mut location = Map::new();
    put(&mut location, "city", change.client.city.as_ref());
    put(&mut location, "region", change.client.state.as_ref());
    put(&mut location, "country", change.client.country.as_ref());
    if !location.is_empty() {
        src.insert("location".into(), Value::Object(location));
    }
    let mut event = json!({
        "class_uid": options.class_uid,
        "class_name": if options.class_uid == USER_MANAGEMENT { "User Management" } else { "Account Change" },
        "category_uid": IAM,
        "category_name": "Identity & Access Management",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": options.class_uid * 100 + activity_id,
        "time": time(change).timestamp_millis(),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "message": change.message.clone().unwrap_or_else(|| title(change.action).into()),
        "metadata": {
            "version": options.version,
            "uid": change.id.to_wire(),
            "product": { "name": PRODUCT, "vendor_name": PRODUCT, "version": VERSION },
            "log_name": change.source,
            "original_time": change.published.as_ref().map(crate::record::format_published),
        },
        "user": user,
        "auth_factors": [auth_factor],
        "unmapped": {
            "okta_org": ctx.org,
            "okta_event_type": change.event_type,
            "okta_legacy_event_type": change.legacy_event_type,
            "factorwatch_action": change.action,
            "factorwatch_initiator": change.initiator,
            "okta_session_id": change.session_id,
        },
    });
    if let Some(obj) = event.as_object_mut() {
        if !actor.is_empty() {
            obj.insert("actor".into(), Value::Object(actor));
        }
        if !src.is_empty() {
            obj.insert("src_endpoint".into(), Value::Object(src));
        }
        if let Some(ua) = &change.client.user_agent {
            obj.insert("http_request".into(), json!({ "user_agent": ua }));
        }
        if let Some(r) = &change.reason {
            obj.insert("status_detail".into(), json!(r));
        }
        if !succeeded(change) && change.outcome.is_some() {
            obj.insert("status_code".into(), json!(change.outcome));
        }
    }
    event
}

pub const DETECTION_FINDING: u32 = 2004;
const FINDINGS: u32 = 2;

/// A finding as an OCSF Detection Finding (class 2004, activity 1 "Create"): the rule as the
/// analytic, the Okta events as related events, the user and actor as evidence.
pub fn encode_finding(f: &Finding, ctx: &Context, options: &Options) -> Value {
    let (severity_id, severity) = match f.severity {
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    };
    let party = |p: &crate::detect::Party| {
        let mut u = Map::new();
        put(&mut u, "name", p.login.as_ref());
        put(&mut u, "uid", p.id.as_ref());
        put(&mut u, "full_name", p.display_name.as_ref());
        if let Some(t) = &p.kind {
            u.insert("type".into(), json!(t));
        }
        Value::Object(u)
    };
    let mut evidence = Map::new();
    if let Some(u) = &f.user {
        evidence.insert("user".into(), party(u));
    }
    if let Some(a) = &f.actor {
        evidence.insert("actor".into(), json!({ "user": party(a) }));
    }
    if let Some(ip) = f.details.get("ip").and_then(Value::as_str) {
        evidence.insert("src_endpoint".into(), json!({ "ip": ip }));
    }
    let mut event = json!({
        "class_uid": DETECTION_FINDING,
        "class_name": "Detection Finding",
        "category_uid": FINDINGS,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": DETECTION_FINDING * 100 + 1,
        "type_name": "Detection Finding: Create",
        "time": f.last_seen.timestamp_millis(),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "message": f.summary,
        "metadata": {
            "version": options.version,
            "uid": f.id,
            "product": { "name": PRODUCT, "vendor_name": PRODUCT, "version": VERSION },
        },
        "finding_info": {
            "uid": f.id,
            "title": f.title,
            "desc": f.summary,
            "types": [f.rule.as_str()],
            "first_seen_time": f.first_seen.timestamp_millis(),
            "last_seen_time": f.last_seen.timestamp_millis(),
            "analytic": { "uid": f.rule.as_str(), "name": f.title, "type_id": 1, "type": "Rule" },
            "related_events": f.event_ids.iter().map(|id| json!({ "uid": id })).collect::<Vec<_>>(),
        },
        "evidences": [Value::Object(evidence)],
        "unmapped": {
            "okta_org": ctx.org,
            "factorwatch_rule": f.rule,
            "factorwatch_details": f.details,
        },
    });
    if let (Some(obj), Some(u)) = (event.as_object_mut(), &f.user) {
        obj.insert(
            "resources".into(),
            json!([{ "type": "User", "uid": u.id, "name": u.login }]),
        );
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::testing::{ctx, example};

    #[test]
    fn an_enrolment_is_account_change_mfa_factor_enable() {
        let v = encode(&example(), &ctx(), &Options::default());
        assert_eq!(
            (v["class_uid"].clone(), v["category_uid"].clone()),
            (json!(3001), json!(3))
        );
        assert_eq!(
            (v["activity_id"].clone(), v["type_uid"].clone()),
            (json!(10), json!(300110))
        );
        assert_eq!(v["time"], 1_767_225_600_123i64);
        assert_eq!(v["metadata"]["version"], "1.8.0");
        assert_eq!(v["metadata"]["uid"], "e1f2a3b4-0000-11f0-8000-000000000001");
        assert_eq!(v["metadata"]["product"]["name"], "factorwatch");
        assert_eq!(v["user"]["name"], "jdoe@example.com");
        assert_eq!(v["actor"]["user"]["name"], "admin@example.com");
        assert_eq!(v["src_endpoint"]["ip"], "203.0.113.7");
        assert_eq!(
            v["auth_factors"][0],
            json!({"factor_type_id": 7, "factor_type": "OTP", "provider": "GOOGLE", "is_totp": true})
        );
        assert_eq!(v["status_id"], 1);
    }

    #[test]
    fn resets_disable_and_the_class_is_selectable() {
        let mut c = example();
        c.action = Action::ResetAll;
        let v = encode(&c, &ctx(), &Options::default());
        assert_eq!(
            (v["activity_id"].clone(), v["type_uid"].clone()),
            (json!(11), json!(300111))
        );
        let v = encode(&c, &ctx(), &Options::user_management());
        assert_eq!(
            (v["class_uid"].clone(), v["type_uid"].clone()),
            (json!(3007), json!(300713))
        );
        assert_eq!(v["metadata"]["version"], "1.9.0");
    }
}
