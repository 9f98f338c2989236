//! What a notice says, as data for its templates: each change reduced to the words it needs
//! (who, what, when, from where). Every value that came from outside — device, app and display
//! names, cities, user agents — went through [`crate::untrusted::display`] (no hidden
//! characters, bounded, links and numbers defanged) and templates show it quoted; the IP is shown
//! only if it is an IP; personal data is masked (phone: last four digits only; the recipients'
//! addresses: first letter and domain). An actor factorwatch cannot identify is "someone",
//! never "you". Pure.

use serde::Serialize;

use crate::enrich::Enrichment;
use crate::record::{Action, Initiator, MfaChange};

/// Longest text taken from Okta into a notice.
const MAX_FIELD: usize = 120;
/// Longest name (device, person, app) taken from Okta into a notice.
const MAX_NAME: usize = 48;

#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub first_name: Option<String>,
    pub org: String,
    pub help: String,
    pub recipients_masked: String,
    /// Someone else acted, or a bypass was tried: shown more urgently.
    pub alert: bool,
    pub changes: Vec<ChangeView>,
    /// The "this wasn't me" link ([`crate::report`]), when the operator set it up.
    pub not_me_url: Option<String>,
    /// How many days the link works (rounded up).
    pub not_me_days: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangeView {
    pub action: &'static str,
    pub when: String,
    pub ip: Option<String>,
    pub place: Option<String>,
    pub device: Option<String>,
    pub factor: FactorView,
    pub initiator: InitiatorView,
    /// What the detections found that this change completes.
    pub findings: Vec<FindingNote>,
}

/// What the detections found about a change, as the templates say it to the user: the rule and
/// facts from a fixed vocabulary, never a value someone outside wrote.
#[derive(Debug, Clone, Serialize)]
pub struct FindingNote {
    pub rule: &'static str,
    /// `reset_then_enroll_new_place`: minutes since the reset.
    pub minutes_after: i64,
    /// `reset_then_enroll_new_place`: who reset (self, system, other).
    pub by: &'static str,
    /// `reset_then_enroll_new_place`: what was new (country, network, device).
    pub new: Vec<&'static str>,
}

impl FindingNote {
    pub fn of(f: &crate::detect::Finding) -> FindingNote {
        let d = &f.details;
        FindingNote {
            rule: f.rule.as_str(),
            minutes_after: d
                .get("minutes_after_reset")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0)
                .max(0),
            by: match d.get("reset_by").and_then(serde_json::Value::as_str) {
                Some("self") => "self",
                Some("system") => "system",
                _ => "other",
            },
            new: d
                .get("new")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| match v.as_str() {
                    Some("country") => Some("country"),
                    Some("network") => Some("network"),
                    Some("device") => Some("device"),
                    _ => None,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FactorView {
    /// sms, call, phone, push, totp, email, question, webauthn, fastpass, token, other.
    pub kind: &'static str,
    pub name: Option<String>,
    pub last4: Option<String>,
    pub device: Option<String>,
    /// "iPhone ", "Android phone " or "" (with the space the sentence needs).
    pub device_kind: &'static str,
    pub device_kind_fr: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct InitiatorView {
    /// self, admin, app, system, or unknown (no actor, or one of a kind nobody can place).
    pub kind: &'static str,
    pub name: Option<String>,
}

/// Text from outside, made safe to put anywhere in a message: no control characters (a line
/// break in a header or a text part is how injection starts), bounded length.
pub fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_FIELD)
        .collect();
    out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    out
}

fn clean_opt(s: Option<&String>) -> Option<String> {
    s.map(|s| clean(s)).filter(|s| !s.is_empty())
}

/// A value someone outside wrote, safe to show ([`crate::untrusted::display`]).
fn shown(s: Option<&String>, max: usize) -> Option<String> {
    s.map(|s| crate::untrusted::display(s, max))
        .filter(|s| !s.is_empty())
}

/// The client's address, only if it is one (anything else in that field is not shown).
fn ip(s: Option<&String>) -> Option<String> {
    s.and_then(|s| s.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| ip.to_string())
}

/// `jane.doe@example.com` → `j***@example.com`.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            clean(&format!("{first}***@{domain}"))
        }
        None => "***".into(),
    }
}

fn factor_kind(change: &MfaChange) -> &'static str {
    crate::classify::factor::Kind::of(&change.factor).as_str()
}

/// A time as users read it: in their own time zone (Okta's `profile.timezone`) with UTC
/// alongside, or in UTC alone when the zone is unknown or is UTC.
pub fn when(t: chrono::DateTime<chrono::Utc>, timezone: Option<&str>) -> String {
    let utc = t.format("%Y-%m-%d %H:%M UTC").to_string();
    match timezone.and_then(|z| z.trim().parse::<chrono_tz::Tz>().ok()) {
        Some(tz) if tz != chrono_tz::UTC && tz != chrono_tz::Etc::UTC => {
            let local = t.with_timezone(&tz);
            format!(
                "{} {} ({})",
                local.format("%Y-%m-%d %H:%M"),
                crate::untrusted::identifier(&local.format("%Z").to_string(), 8),
                utc
            )
        }
        _ => utc,
    }
}

/// One change, as the templates see it.
pub fn view(change: &MfaChange, e: &Enrichment) -> ChangeView {
    let detail = e.factor.clone().unwrap_or_default();
    let mut kind = factor_kind(change);
    if kind == "phone" || kind == "other" {
        kind = match detail.factor_type.as_deref() {
            Some("sms") => "sms",
            Some("call") => "call",
            Some("push") => "push",
            _ => kind,
        };
    }
    let (device_kind, device_kind_fr) = match detail.platform.as_deref() {
        Some("IOS") => ("iPhone ", "l'iPhone "),
        Some("ANDROID") => ("Android phone ", "le téléphone Android "),
        _ => ("", ""),
    };
    let c = &change.client;
    let place: Vec<String> = [&c.city, &c.state, &c.country]
        .into_iter()
        .filter_map(|v| shown(v.as_ref(), MAX_NAME))
        .collect();
    let device: Vec<String> = [&c.browser, &c.os]
        .into_iter()
        .filter_map(|v| shown(v.as_ref(), MAX_NAME))
        .collect();
    let initiator = match change.initiator {
        Some(Initiator::Admin) => "admin",
        Some(Initiator::App) => "app",
        Some(Initiator::System) => "system",
        Some(Initiator::SelfService) => "self",
        None => "unknown",
    };
    let actor_name = change.actor.as_ref().and_then(|a| {
        shown(a.display_name.as_ref(), MAX_NAME).or(shown(a.login.as_ref(), MAX_NAME))
    });
    ChangeView {
        action: change.action.as_str(),
        when: change
            .published
            .map_or_else(|| "just now".into(), |t| when(t, e.timezone.as_deref())),
        ip: ip(c.ip.as_ref()),
        place: (!place.is_empty()).then(|| place.join(", ")),
        device: (!device.is_empty()).then(|| device.join(" on ")),
        factor: FactorView {
            kind,
            name: shown(change.factor.name.as_ref(), MAX_NAME),
            last4: change
                .factor
                .phone_last4
                .clone()
                .or(detail.phone_last4)
                .map(|d| d.chars().filter(char::is_ascii_digit).collect::<String>())
                .filter(|d| d.len() == 4),
            device: shown(detail.device_name.as_ref(), MAX_NAME),
            device_kind,
            device_kind_fr,
        },
        initiator: InitiatorView {
            kind: initiator,
            name: if matches!(initiator, "self" | "unknown") {
                None
            } else {
                actor_name
            },
        },
        findings: Vec::new(),
    }
}

/// The notice for one or several changes to one user, with what the detections found about them
/// (each finding told with the latest of its changes in the notice).
pub fn notice(
    changes: &[(MfaChange, Enrichment)],
    recipients: &[String],
    org: &str,
    help: &str,
    findings: &[crate::detect::Finding],
) -> Notice {
    let first_name = changes.iter().find_map(|(_, e)| {
        e.first_name
            .as_deref()
            .and_then(|n| crate::untrusted::first_word(n, 30))
    });
    let mut views: Vec<ChangeView> = changes.iter().map(|(c, e)| view(c, e)).collect();
    for f in findings {
        let last = changes
            .iter()
            .enumerate()
            .filter(|(_, (c, _))| f.event_ids.contains(&c.id.to_wire()))
            .max_by_key(|(_, (c, _))| c.published)
            .map(|(i, _)| i);
        if let Some(v) = last.and_then(|i| views.get_mut(i))
            && !v.findings.iter().any(|n| n.rule == f.rule.as_str())
        {
            v.findings.push(FindingNote::of(f));
        }
    }
    Notice {
        alert: views.iter().any(|v| {
            v.initiator.kind != "self"
                || v.action == Action::BypassAttempted.as_str()
                || !v.findings.is_empty()
        }),
        first_name,
        org: clean(org),
        help: clean(help),
        recipients_masked: recipients
            .iter()
            .map(|r| mask_email(r))
            .collect::<Vec<_>>()
            .join(", "),
        changes: views,
        not_me_url: None,
        not_me_days: 0,
    }
}

/// One line for the security team about a change: who did what to whom, from where. Logins
/// (Okta's identifiers, which analysts search for) are given as they are, on one bounded line;
/// names and everything else someone outside wrote are defanged as in the notices.
pub fn security_summary(change: &MfaChange, org: &str) -> String {
    let who = change
        .actor
        .as_ref()
        .and_then(|a| clean_opt(a.login.as_ref()).or(shown(a.display_name.as_ref(), MAX_NAME)))
        .unwrap_or_else(|| "someone".into());
    let kind = match change.initiator {
        Some(Initiator::Admin) => "administrator",
        Some(Initiator::App) => "application",
        Some(Initiator::System) => "Okta",
        Some(Initiator::SelfService) => "the user",
        None => "actor of unknown kind",
    };
    let user = change
        .user
        .as_ref()
        .and_then(|u| clean_opt(u.login.as_ref()).or(clean_opt(u.id.as_ref())))
        .unwrap_or_else(|| "an unknown user".into());
    let factor = shown(change.factor.name.as_ref(), MAX_NAME).unwrap_or_else(|| "MFA".into());
    let from = ip(change.client.ip.as_ref())
        .map(|ip| format!(" from {ip}"))
        .unwrap_or_default();
    let when = change
        .published
        .map(|t| t.format(" at %Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    format!(
        "[{}] {who} ({kind}): {} — {factor} of {user}{from}{when}",
        clean(org),
        change.action.as_str().replace('_', " ")
    )
}

/// One line for the security team about a finding: its severity, rule and summary (the summary
/// was written defanged).
pub fn finding_summary(f: &crate::detect::Finding, org: &str) -> String {
    format!(
        "[{}] FINDING ({}) {}: {}",
        clean(org),
        f.severity.as_str(),
        f.rule.as_str(),
        f.summary.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_loses_line_breaks_and_length() {
        assert_eq!(clean("Evil\r\nBcc: x@y\t z"), "Evil Bcc: x@y z");
        assert_eq!(clean(&"a".repeat(500)).len(), MAX_FIELD);
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("nope"), "***");
    }

    #[test]
    fn times_are_shown_in_the_users_zone_with_utc_alongside() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-07-01T17:14:00Z")
            .unwrap_or_default()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            when(t, Some("America/Los_Angeles")),
            "2026-07-01 10:14 PDT (2026-07-01 17:14 UTC)"
        );
        assert_eq!(
            when(t, Some("Europe/Paris")),
            "2026-07-01 19:14 CEST (2026-07-01 17:14 UTC)"
        );
        // Unknown, hostile or UTC zones: UTC alone.
        for z in [None, Some("Mars/Olympus"), Some("UTC"), Some("<script>")] {
            assert_eq!(when(t, z), "2026-07-01 17:14 UTC", "{z:?}");
        }
    }
}
