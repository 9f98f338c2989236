//! SIEM formats: one pure encoder per file, from an MFA change record (and the Okta event it came
//! from) to the text a SIEM expects. Transports ([`crate::sinks`]) carry that text.

pub mod cef;
pub mod ecs;
pub mod leef;
pub mod ocsf;
pub mod raw;
pub mod syslog;

use chrono::{DateTime, Utc};

use crate::detect::{Finding, Severity};
use crate::record::{Action, Item, MfaChange};

/// What every encoder may need besides the change.
#[derive(Debug, Clone)]
pub struct Context {
    /// The Okta org's name in factorwatch's config.
    pub org: String,
    /// This machine's name (syslog HOSTNAME).
    pub hostname: String,
}

/// This machine's name, for syslog's HOSTNAME.
pub fn local_hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub const PRODUCT: &str = "factorwatch";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A payload format, as configured (`format = "ocsf"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// factorwatch's own record (`docs/record.md`).
    Record,
    Ocsf(ocsf::Options),
    Ecs,
    Cef,
    Leef,
    /// The original Okta event plus the record.
    Raw,
}

impl Format {
    pub fn parse(name: &str) -> Result<Format, UnknownFormat> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "record" | "json" => Format::Record,
            "ocsf" => Format::Ocsf(ocsf::Options::default()),
            "ocsf-user-management" => Format::Ocsf(ocsf::Options::user_management()),
            "ecs" => Format::Ecs,
            "cef" => Format::Cef,
            "leef" => Format::Leef,
            "raw" => Format::Raw,
            other => return Err(UnknownFormat(other.to_owned())),
        })
    }

    /// Whether [`Format::encode`] reads `raw` (the Okta event's text): ECS keeps it as
    /// `event.original`, `raw` is made of it.
    pub fn reads_okta_event(&self) -> bool {
        matches!(self, Format::Ecs | Format::Raw)
    }

    /// Encodes one change; `raw` is the Okta event's text. One line: never a newline inside.
    pub fn encode(&self, change: &MfaChange, raw: &str, ctx: &Context) -> String {
        match self {
            Format::Record => serde_json::to_string(change).unwrap_or_default(),
            Format::Ocsf(o) => ocsf::encode(change, ctx, o).to_string(),
            Format::Ecs => ecs::encode(change, raw, ctx).to_string(),
            Format::Cef => cef::encode(change, ctx),
            Format::Leef => leef::encode(change, ctx),
            Format::Raw => raw::encode(change, raw).to_string(),
        }
    }

    /// Encodes a change or a finding (in the format's alert shape); `raw` is a change's Okta
    /// event. One line.
    pub fn encode_item(&self, item: &Item, raw: &str, ctx: &Context) -> String {
        match item {
            Item::Change(c) => self.encode(c, raw, ctx),
            Item::Finding(f) => self.encode_finding(f, ctx),
        }
    }

    /// [`Format::encode_item`] for a change read back from the store with its record's text as
    /// stored (`stored`). The `record` format is that text: the bytes `encode` would write again
    /// from the same version's record, without serializing every change once more (5% of the
    /// instructions of the same-filter end-to-end run). A change stored by another version is
    /// sent in the shape it was stored in. A text that is not one line (not factorwatch's own
    /// writing) is written again instead.
    pub fn encode_stored(
        &self,
        item: &Item,
        stored: Option<&str>,
        raw: &str,
        ctx: &Context,
    ) -> String {
        match (self, item, stored) {
            (Format::Record, Item::Change(_), Some(text))
                if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_none() =>
            {
                text.to_owned()
            }
            _ => self.encode_item(item, raw, ctx),
        }
    }

    /// Encodes a finding: OCSF Detection Finding (2004), ECS `event.kind: alert`, CEF and LEEF
    /// with its severity, or the finding record (with the org) for `record` and `raw`.
    pub fn encode_finding(&self, finding: &Finding, ctx: &Context) -> String {
        match self {
            Format::Record | Format::Raw => finding_record(finding, ctx).to_string(),
            Format::Ocsf(o) => ocsf::encode_finding(finding, ctx, o).to_string(),
            Format::Ecs => ecs::encode_finding(finding, ctx).to_string(),
            Format::Cef => cef::encode_finding(finding, ctx),
            Format::Leef => leef::encode_finding(finding, ctx),
        }
    }

    /// The configuration's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Record => "record",
            Format::Ocsf(o) if *o == ocsf::Options::user_management() => "ocsf-user-management",
            Format::Ocsf(_) => "ocsf",
            Format::Ecs => "ecs",
            Format::Cef => "cef",
            Format::Leef => "leef",
            Format::Raw => "raw",
        }
    }

    /// Whether the payload is JSON (for transports that send JSON natively).
    pub fn is_json(&self) -> bool {
        !matches!(self, Format::Cef | Format::Leef)
    }
}

impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Format::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Why a strict parser refused a line (the parsers check that every encoding reads back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl From<String> for ParseError {
    fn from(s: String) -> ParseError {
        ParseError(s)
    }
}

impl From<&str> for ParseError {
    fn from(s: &str) -> ParseError {
        ParseError(s.to_owned())
    }
}

/// A `format` name that is not one factorwatch writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown format {0:?}; expected one of record, ocsf, ocsf-user-management, ecs, cef, leef, raw"
)]
pub struct UnknownFormat(pub String);

/// What a strict parser of a key/value format reads: the header fields and the attributes.
pub type Parsed = (Vec<String>, Vec<(String, String)>);

/// A short, human description of the change ("MFA factor enrolled").
pub fn title(action: Action) -> &'static str {
    match action {
        Action::Enrolled => "MFA factor enrolled",
        Action::Reset => "MFA factor reset",
        Action::ResetAll => "All MFA factors reset",
        Action::Updated => "MFA factor updated",
        Action::Suspended => "MFA factor suspended",
        Action::Unsuspended => "MFA factor unsuspended",
        Action::BypassAttempted => "MFA bypass attempted",
        Action::OrgFactorEnabled => "MFA factor type enabled for the org",
        Action::OrgFactorDisabled => "MFA factor type disabled for the org",
    }
}

/// Severity on a 0–10 scale (CEF, LEEF): enrolments and updates 5, removals and suspensions 7,
/// bypass attempts 8, org settings 6; a failed attempt one lower.
pub fn severity(change: &MfaChange) -> u8 {
    let base = match change.action {
        Action::Enrolled | Action::Updated | Action::Unsuspended => 5,
        Action::Reset | Action::ResetAll | Action::Suspended => 7,
        Action::BypassAttempted => 8,
        Action::OrgFactorEnabled | Action::OrgFactorDisabled => 6,
    };
    if succeeded(change) || change.action == Action::BypassAttempted {
        base
    } else {
        base - 1
    }
}

/// A finding's severity on a 0–10 scale (CEF, LEEF).
pub fn finding_severity(s: Severity) -> u8 {
    match s {
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// The finding record with the org it was found in (`record` and `raw` formats).
pub fn finding_record(finding: &Finding, ctx: &Context) -> serde_json::Value {
    let mut v = serde_json::to_value(finding).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("org".into(), serde_json::json!(ctx.org));
    }
    v
}

pub fn succeeded(change: &MfaChange) -> bool {
    change.outcome.as_deref() == Some("SUCCESS")
}

/// `published`, or now for the rare event without one.
pub fn time(change: &MfaChange) -> DateTime<Utc> {
    change.published.unwrap_or_else(Utc::now)
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::record::*;

    /// The running example of the formats notes: an admin enrols TOTP for jdoe.
    pub fn example() -> MfaChange {
        MfaChange {
            id: EventId::Okta("e1f2a3b4-0000-11f0-8000-000000000001".into()),
            source: Source::SystemLog,
            published: chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00.123Z")
                .ok()
                .map(|t| t.to_utc()),
            event_type: "user.mfa.factor.activate".into(),
            legacy_event_type: Some("core.user.factor.activate".into()),
            action: Action::Enrolled,
            outcome: Some("SUCCESS".into()),
            factor: Factor {
                factor_type: Some(crate::okta::factors::FactorType::SoftwareTotp),
                provider: Some(crate::okta::factors::Provider::Google),
                name: Some("Google Authenticator".into()),
                okta_authoritative: Some(true),
                phone_last4: None,
            },
            user: Some(Person {
                id: Some("00u1jdoe".into()),
                login: Some("jdoe@example.com".into()),
                display_name: Some("Jane Doe".into()),
            }),
            actor: Some(Actor {
                id: Some("00u9admin".into()),
                login: Some("admin@example.com".into()),
                display_name: Some("Ann Admin".into()),
                actor_type: Some("User".into()),
            }),
            initiator: Some(Initiator::Admin),
            client: Client {
                ip: Some("203.0.113.7".into()),
                user_agent: Some("Mozilla/5.0 (Macintosh)".into()),
                browser: Some("CHROME".into()),
                os: Some("Mac OS X".into()),
                city: Some("Paris".into()),
                state: None,
                country: Some("France".into()),
            },
            reason: Some("User set up GOOGLE_OTP factor".into()),
            message: Some("Activate factor for user".into()),
            session_id: Some("102abc".into()),
        }
    }

    pub fn ctx() -> super::Context {
        super::Context {
            org: "acme".into(),
            hostname: "relay01".into(),
        }
    }
}
