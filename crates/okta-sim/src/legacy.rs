//! The legacy Events API, `GET /api/v1/events`, for orgs that still have it. It serves the
//! System Log events that carry a `legacyEventType`, converted back to the legacy shape by
//! reversing Okta's official field mapping (API-NOTES §4). Pure: the caller passes the clock.
//!
//! Like System Log polling, it reads in persistence order and always returns a `next` link;
//! an empty page means caught up.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use crate::error::OktaError;
use crate::filter::{self, Filter, FilterError, Op};
use crate::logs::{LogStore, MAX_SINCE_DAYS, RETENTION_DAYS, StoredEvent};

pub const MAX_LIMIT: usize = 1000;

/// The query parameters of `/api/v1/events`, as received.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct EventsQuery {
    #[serde(rename = "startDate")]
    pub start_date: Option<String>,
    pub filter: Option<String>,
    pub after: Option<String>,
    pub limit: Option<String>,
}

#[derive(Debug)]
pub struct LegacyPage {
    pub events: Vec<Value>,
    /// The `next` link's query string (without `?`); always present.
    pub next: String,
}

impl LegacyPage {
    pub fn body(&self) -> String {
        Value::Array(self.events.clone()).to_string()
    }
}

/// Answers one `/api/v1/events` request.
pub fn query(log: &LogStore, q: &EventsQuery, now: DateTime<Utc>) -> Result<LegacyPage, OktaError> {
    let limit = match q.limit.as_deref() {
        None => MAX_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                OktaError::validation(
                    "Api validation failed: 'limit'",
                    format!("limit: The limit must be an integer between 1 and {MAX_LIMIT}."),
                )
            })?,
    };
    if q.start_date.is_some() && (q.filter.is_some() || q.after.is_some()) {
        return Err(OktaError::validation(
            "Api validation failed: 'startDate'",
            "startDate: The startDate parameter cannot be combined with filter or after.",
        ));
    }
    let filter = q.filter.as_deref().map(parse_filter).transpose()?;
    let after = q
        .after
        .as_deref()
        .map(|a| cursor_seq(a).ok_or_else(bad_after))
        .transpose()?;
    let start = match after {
        Some(seq) => log.events().partition_point(|e| e.seq <= seq),
        None => {
            // With none of startDate, filter and after, Okta starts an hour ago.
            let start_date = match q.start_date.as_deref() {
                Some(s) => parse_time("startDate", s)?,
                None if filter.is_some() => now - Duration::days(MAX_SINCE_DAYS),
                None => now - Duration::hours(1),
            };
            if start_date < now - Duration::days(MAX_SINCE_DAYS) {
                return Err(OktaError::invalid_parameter(
                    "Invalid parameter: The startDate parameter is over 180 days prior to the current day.",
                ));
            }
            log.events().partition_point(|e| e.persisted < start_date)
        }
    };
    let oldest = now - Duration::days(RETENTION_DAYS);
    let mut resume = match start {
        0 => after.unwrap_or(0),
        i => log.events()[i - 1].seq,
    };
    let mut events = Vec::new();
    for e in &log.events()[start..] {
        if events.len() == limit {
            break;
        }
        resume = e.seq;
        if e.legacy_event_type.is_none() || e.published < oldest {
            continue;
        }
        let legacy = to_legacy(e);
        if filter.as_ref().is_none_or(|f| f.matches(&legacy)) {
            events.push(legacy);
        }
    }
    let mut next = form_urlencoded::Serializer::new(String::new());
    if let Some(f) = &q.filter {
        next.append_pair("filter", f);
    }
    next.append_pair("limit", &limit.to_string());
    next.append_pair("after", &event_id(resume, "", 0));
    Ok(LegacyPage {
        events,
        next: next.finish(),
    })
}

/// `action.objectType eq`, `target.objectType eq`, `target.id eq` and `published lt|eq|gt`,
/// combined with `and`/`or`: what the Events API documented.
fn parse_filter(text: &str) -> Result<Filter, OktaError> {
    let mut f = filter::parse_legacy(text).map_err(|e| match e {
        FilterError::Invalid { .. } => OktaError::invalid_parameter(e.to_string()),
        FilterError::Unsupported { .. } => OktaError::unsupported_operator(e.to_string()),
    })?;
    for (path, op) in f.comparisons() {
        let allowed = match path.join(".").as_str() {
            "action.objectType" | "target.objectType" | "target.id" => op == Some(Op::Eq),
            "published" => matches!(op, Some(Op::Lt | Op::Eq | Op::Gt)),
            _ => false,
        };
        if !allowed {
            return Err(OktaError::invalid_parameter(format!(
                "Invalid filter '{text}': filtering on {} {} is not supported",
                path.join("."),
                op.map_or("pr".to_owned(), |o| format!("{o:?}").to_lowercase()),
            )));
        }
    }
    f.rename_root("target", "targets");
    Ok(f)
}

/// A System Log event in the legacy shape: Okta's official mapping, reversed.
pub fn to_legacy(e: &StoredEvent) -> Value {
    let v = e.value();
    let s = |ptr: &str| v.pointer(ptr).cloned().unwrap_or(Value::Null);
    let object = |o: &Value| {
        json!({
            "id": o.get("id").cloned().unwrap_or(Value::Null),
            "displayName": o.get("displayName").cloned().unwrap_or(Value::Null),
            "login": o.get("alternateId").cloned().unwrap_or(Value::Null),
            "objectType": o.get("type").cloned().unwrap_or(Value::Null),
        })
    };
    let mut actors = Vec::new();
    if let Some(actor) = v.get("actor").filter(|a| a.is_object()) {
        actors.push(object(actor));
    }
    if v.get("client").is_some_and(Value::is_object) {
        actors.push(json!({
            "id": s("/client/userAgent/rawUserAgent"),
            "displayName": s("/client/userAgent/browser"),
            "ipAddress": s("/client/ipAddress"),
            "objectType": "Client",
        }));
    }
    let targets: Vec<Value> = v
        .get("target")
        .and_then(Value::as_array)
        .map(|t| t.iter().map(object).collect())
        .unwrap_or_default();
    let uuid = v.get("uuid").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert(
        "eventId".into(),
        Value::String(event_id(e.seq, uuid, e.published.timestamp_millis())),
    );
    out.insert(
        "sessionId".into(),
        s("/authenticationContext/externalSessionId"),
    );
    out.insert("requestId".into(), s("/transaction/id"));
    out.insert("published".into(), s("/published"));
    out.insert(
        "action".into(),
        json!({
            "message": message(&v, e.legacy_event_type.as_deref()),
            "categories": [],
            "objectType": e.legacy_event_type.as_deref(),
            "requestUri": s("/debugContext/debugData/requestUri"),
        }),
    );
    out.insert("actors".into(), Value::Array(actors));
    out.insert("targets".into(), Value::Array(targets));
    Value::Object(out)
}

/// `action.message` as the Events API wrote it. For a factor's lifecycle it names the factor —
/// "User set up Google Authenticator factor", "User reset Google Authenticator factor", "User
/// updated Security Question factor" (a real capture: `shared/okta/samples/
/// events-api-factor-lifecycle.json`) — where the System Log's `displayMessage` is generic
/// ("Activate factor for user"). Anything else keeps the `displayMessage` (its mapping).
fn message(v: &Value, object_type: Option<&str>) -> Value {
    let verb = match object_type {
        Some("core.user.factor.activate") => "set up",
        Some("core.user.factor.deactivate") => "reset",
        Some("core.user.factor.update") => "updated",
        _ => return v.get("displayMessage").cloned().unwrap_or(Value::Null),
    };
    match factor_name(v) {
        Some(name) => Value::String(format!("User {verb} {name} factor")),
        None => v.get("displayMessage").cloned().unwrap_or(Value::Null),
    }
}

/// The factor's name as people read it: the Identity Engine's `AuthenticatorEnrollment` target, or
/// the internal name in a Classic `outcome.reason` ("User set up SMS_FACTOR factor") turned into
/// the name Okta showed for it.
fn factor_name(v: &Value) -> Option<String> {
    let enrollment = v
        .get("target")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|t| t["type"] == "AuthenticatorEnrollment")
        .and_then(|t| t["displayName"].as_str());
    if let Some(name) = enrollment {
        return Some(name.to_owned());
    }
    let reason = v.pointer("/outcome/reason")?.as_str()?;
    let internal = reason
        .strip_suffix(" factor")?
        .rsplit(' ')
        .next()
        .filter(|w| !w.is_empty())?;
    Some(
        match internal {
            "SMS_FACTOR" => "SMS Authentication",
            "CALL_FACTOR" => "Voice Call Authentication",
            "EMAIL_FACTOR" => "Email Authentication",
            "OKTA_VERIFY_PUSH" | "OKTA_SOFT_TOKEN" => "Okta Verify",
            "SECURITY_QUESTION" | "QUESTION" => "Security Question",
            "GOOGLE_OTP" => "Google Authenticator",
            "FIDO_WEBAUTHN" => "Security Key or Biometric Authenticator",
            "SIGNED_NONCE" => "Okta FastPass",
            "RSA_SECURID" => "RSA SecurID",
            "SYMANTEC_VIP" => "Symantec VIP",
            "YUBIKEY_TOKEN" => "YubiKey",
            "DUO" => "Duo Security",
            other => other,
        }
        .to_owned(),
    )
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `tev` + 22 characters + the publish time in ms, like Okta's. The first 11 characters carry the
/// persistence position, so an `after` cursor (an event id) says where to resume.
fn event_id(seq: u64, uuid: &str, published_ms: i64) -> String {
    let mut id = String::with_capacity(40);
    id.push_str("tev");
    let mut digits = [b'0'; 11];
    let mut n = seq;
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    id.extend(digits.iter().map(|&b| char::from(b)));
    let tail: String = uuid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .chain(std::iter::repeat('0'))
        .take(11)
        .collect();
    id.push_str(&tail);
    id.push_str(&format!("{:013}", published_ms.max(0)));
    id
}

fn cursor_seq(after: &str) -> Option<u64> {
    let digits = after.strip_prefix("tev")?.get(..11)?;
    digits.bytes().try_fold(0u64, |n, b| {
        let d = BASE62.iter().position(|&c| c == b)? as u64;
        n.checked_mul(62)?.checked_add(d)
    })
}

fn bad_after() -> OktaError {
    OktaError::validation(
        "Api validation failed: 'after'",
        "after: The cursor is not valid.",
    )
}

fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, OktaError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            OktaError::validation(
                format!("Api validation failed: '{name}'"),
                format!(
                    "{name}: '{value}' is not a date in the format yyyy-MM-dd'T'HH:mm:ss.SSSZ."
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_look_like_okta_and_carry_the_position() {
        let id = event_id(
            123_456,
            "6b1b7b6c-8b3a-11f0-a1b2-c3d4e5f60718",
            1_429_294_862_000,
        );
        assert_eq!(id.len(), 3 + 22 + 13);
        assert!(id.starts_with("tev") && id.ends_with("1429294862000"));
        assert_eq!(cursor_seq(&id), Some(123_456));
        assert_eq!(
            cursor_seq("tevz7MzV49UT8CkaAY7Lw"),
            cursor_seq("tevz7MzV49UT8")
        );
        assert_eq!(cursor_seq("nope"), None);
        assert_eq!(cursor_seq("tev-_"), None);
    }

    #[test]
    fn factor_lifecycle_messages_name_the_factor_as_the_events_api_did() {
        let classic = json!({ "displayMessage": "Activate factor for user",
            "outcome": { "result": "SUCCESS", "reason": "User set up GOOGLE_OTP factor" } });
        assert_eq!(
            message(&classic, Some("core.user.factor.activate")),
            "User set up Google Authenticator factor"
        );
        let oie = json!({ "displayMessage": "Reset factor for user", "outcome": { "result": "SUCCESS" },
            "target": [{ "type": "User" }, { "type": "AuthenticatorEnrollment", "displayName": "Okta Verify" }] });
        assert_eq!(
            message(&oie, Some("core.user.factor.deactivate")),
            "User reset Okta Verify factor"
        );
        let all = json!({ "displayMessage": "Reset all factors for user", "outcome": { "result": "SUCCESS" } });
        assert_eq!(
            message(&all, Some("core.user.factor.reset_all")),
            "Reset all factors for user",
            "no factor to name"
        );
    }

    #[test]
    fn only_documented_filters_are_accepted() {
        for ok in [
            r#"action.objectType eq "core.user.factor.activate""#,
            r#"target.id eq "00u1" and published gt "2026-11-01T00:00:00.000Z""#,
            r#"action.objectType eq "a" or action.objectType eq "b""#,
        ] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
        for bad in [
            r#"action.objectType sw "core.user""#,
            r#"actor.id eq "00u1""#,
            r#"published ge "2026-11-01T00:00:00.000Z""#,
            "action.objectType eq",
        ] {
            let e = parse_filter(bad).unwrap_err();
            assert_eq!((e.status, e.error_code), (400, "E0000053"), "{bad}");
        }
    }
}
