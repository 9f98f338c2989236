//! A finding: a sequence one rule recognised, as a record of its own — what every SIEM format
//! encodes, the store keeps, and `factorwatch detect` prints. Its id is a digest of the rule, the
//! sequence's key and its first event, so the same sequence gives the same finding however often
//! (and on whichever replica) it is found again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::signal::Party;
use super::{RuleId, Severity};
use crate::record::format_published;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Always `finding` (tells it from an MFA change record in a shared stream).
    #[serde(rename = "type")]
    pub record_type: RecordType,
    pub id: String,
    pub rule: RuleId,
    pub severity: Severity,
    /// The rule's title ("Factors reset, then enrolled from a new place").
    pub title: String,
    /// The user whose account it concerns (none for a finding about an actor alone).
    pub user: Option<Party>,
    /// Who made the changes, when one party did.
    pub actor: Option<Party>,
    #[serde(with = "time")]
    pub first_seen: DateTime<Utc>,
    #[serde(with = "time")]
    pub last_seen: DateTime<Utc>,
    /// The Okta events that make it up, in published order.
    pub event_ids: Vec<String>,
    /// What happened and what to do, in one paragraph, for an analyst. Text from outside in it
    /// is defanged ([`crate::untrusted::display`]).
    pub summary: String,
    /// Rule-specific facts (the new country, the users sharing a phone…).
    #[serde(default)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    #[default]
    Finding,
}

/// RFC 3339 with milliseconds, as every record's times.
pub(crate) mod time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::record::format_published(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// A finding being written by a rule.
#[derive(Debug, Clone)]
pub struct Draft {
    pub rule: RuleId,
    pub severity: Severity,
    /// What the sequence is about (a user, an actor, a phone's hash): with the first event, it
    /// names the sequence.
    pub key: String,
    pub user: Option<std::sync::Arc<Party>>,
    pub actor: Option<std::sync::Arc<Party>>,
    /// (published, Okta event id) of every event in the sequence.
    pub events: Vec<(DateTime<Utc>, String)>,
    pub summary: String,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Events named in a finding, at most (a mass reset of 5,000 users lists its first ones).
pub const MAX_EVENTS: usize = 100;

impl Draft {
    pub fn finish(mut self) -> Finding {
        self.events.sort();
        self.events.dedup_by(|a, b| a.1 == b.1);
        let first = self.events.first().cloned();
        let last = self.events.last().cloned();
        let (first_seen, first_id) = first.unwrap_or_default();
        let last_seen = last.map(|(t, _)| t).unwrap_or(first_seen);
        let digest = Sha256::digest(format!("{}\n{}\n{first_id}", self.rule.as_str(), self.key));
        let id = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.events.truncate(MAX_EVENTS);
        Finding {
            record_type: RecordType::Finding,
            id,
            rule: self.rule,
            severity: self.severity,
            title: self.rule.title().to_owned(),
            user: self.user.map(std::sync::Arc::unwrap_or_clone),
            actor: self.actor.map(std::sync::Arc::unwrap_or_clone),
            first_seen,
            last_seen,
            event_ids: self.events.into_iter().map(|(_, id)| id).collect(),
            summary: self.summary,
            details: self.details,
        }
    }
}

/// A party as an analyst reads it: the login (what they search for), else the id — made plain
/// and bounded, not defanged ([`crate::untrusted::identifier`]: findings go to the security
/// team, never to users).
pub fn who(p: Option<&Party>) -> String {
    p.and_then(|p| p.login.as_deref().or(p.id.as_deref()))
        .map(|s| crate::untrusted::identifier(s, 80))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "an unknown party".into())
}

/// A factor kind as an analyst names it.
pub fn factor_label(kind: crate::classify::factor::Kind) -> &'static str {
    use crate::classify::factor::Kind;
    match kind {
        Kind::Sms => "SMS",
        Kind::Call => "voice call",
        Kind::Phone => "phone",
        Kind::Push => "Okta Verify",
        Kind::Totp => "one-time code app",
        Kind::Email => "email",
        Kind::Question => "security question",
        Kind::Webauthn => "WebAuthn/FIDO",
        Kind::SecurityKey => "security key",
        Kind::Fastpass => "Okta FastPass",
        Kind::Token => "hardware token",
        Kind::Other => "unknown",
    }
}

/// A span in words: "40 seconds", "20 minutes", "3 hours", "2 days".
pub fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (n, unit) = if s < 120 {
        (s, "second")
    } else if s < 2 * 3600 {
        (s / 60, "minute")
    } else if s < 2 * 86_400 {
        (s / 3600, "hour")
    } else {
        (s / 86_400, "day")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A time as findings print it.
pub fn at(t: &DateTime<Utc>) -> String {
    format_published(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_sequence_gives_the_same_id_and_another_a_different_one() {
        let t = chrono::DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let draft = |key: &str, first: &str| Draft {
            rule: RuleId::BypassBurst,
            severity: Severity::High,
            key: key.into(),
            user: None,
            actor: None,
            events: vec![
                (t + chrono::Duration::seconds(5), "b".into()),
                (t, first.into()),
            ],
            summary: String::new(),
            details: Default::default(),
        };
        let a = draft("u1", "a").finish();
        assert_eq!(a.id, draft("u1", "a").finish().id);
        assert_ne!(a.id, draft("u2", "a").finish().id);
        assert_ne!(a.id, draft("u1", "c").finish().id);
        assert_eq!(a.event_ids, ["a", "b"]);
        assert_eq!(a.first_seen, t);
        assert_eq!(span(chrono::Duration::minutes(20)), "20 minutes");
        assert_eq!(span(chrono::Duration::seconds(1)), "1 second");
    }
}
