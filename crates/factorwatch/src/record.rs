//! The normalized MFA change record: the one shape every SIEM format, email and detection reads.
//!
//! Field names and values are a public contract, documented in `docs/record.md`. Change them only
//! together with that document.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::okta::factors::{FactorType, Provider};

/// One MFA change, classified from one Okta event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MfaChange {
    /// Okta `uuid` (System Log, hooks) or `eventId` (Events API); see [`EventId`].
    pub id: EventId,
    pub source: Source,
    /// RFC 3339 UTC with milliseconds; `None` only when the input event carried no `published`.
    #[serde(
        serialize_with = "serialize_published",
        deserialize_with = "deserialize_published"
    )]
    pub published: Option<DateTime<Utc>>,
    /// System Log eventType; for legacy events, the official mapping of the objectType.
    pub event_type: String,
    pub legacy_event_type: Option<String>,
    pub action: Action,
    /// Okta's `outcome.result`, verbatim (`SUCCESS`, `FAILURE`, `DENY`, …).
    pub outcome: Option<String>,
    pub factor: Factor,
    /// The affected user; `None` for org-level changes or when the event names none.
    pub user: Option<Person>,
    pub actor: Option<Actor>,
    pub initiator: Option<Initiator>,
    pub client: Client,
    /// Okta's `outcome.reason`, verbatim.
    pub reason: Option<String>,
    /// Okta's `displayMessage` (System Log) or `action.message` (Events API).
    pub message: Option<String>,
    /// `authenticationContext.externalSessionId` (System Log) or `sessionId` (Events API): ties the
    /// change to the session that made it.
    pub session_id: Option<String>,
}

/// What the outbox delivers: an MFA change, or a finding about a sequence of them.
// Held one per outbox row read (a batch at most): boxing the larger variant would cost an
// allocation per change to save a few hundred bytes per finding.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Change(MfaChange),
    Finding(crate::detect::Finding),
}

impl Item {
    /// Its id: the change's event id, or the finding's.
    pub fn id(&self) -> String {
        match self {
            Item::Change(c) => c.id.to_wire(),
            Item::Finding(f) => f.id.clone(),
        }
    }

    /// When it happened: the change's `published` (now for the rare one without), the finding's
    /// last event.
    pub fn time(&self) -> DateTime<Utc> {
        match self {
            Item::Change(c) => c.published.unwrap_or_else(Utc::now),
            Item::Finding(f) => f.last_seen,
        }
    }

    pub fn change(&self) -> Option<&MfaChange> {
        match self {
            Item::Change(c) => Some(c),
            Item::Finding(_) => None,
        }
    }
}

/// Where the event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    SystemLog,
    EventHook,
    EventsApi,
}

/// What happened to the factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Enrolled,
    Reset,
    ResetAll,
    Updated,
    Suspended,
    Unsuspended,
    BypassAttempted,
    OrgFactorEnabled,
    OrgFactorDisabled,
}

impl Action {
    pub const ALL: [Action; 9] = [
        Action::Enrolled,
        Action::Reset,
        Action::ResetAll,
        Action::Updated,
        Action::Suspended,
        Action::Unsuspended,
        Action::BypassAttempted,
        Action::OrgFactorEnabled,
        Action::OrgFactorDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Enrolled => "enrolled",
            Action::Reset => "reset",
            Action::ResetAll => "reset_all",
            Action::Updated => "updated",
            Action::Suspended => "suspended",
            Action::Unsuspended => "unsuspended",
            Action::BypassAttempted => "bypass_attempted",
            Action::OrgFactorEnabled => "org_factor_enabled",
            Action::OrgFactorDisabled => "org_factor_disabled",
        }
    }

    /// Org-level changes concern a factor type for everyone, not one user's enrollment.
    pub fn is_org_level(self) -> bool {
        matches!(self, Action::OrgFactorEnabled | Action::OrgFactorDisabled)
    }
}

/// The factor concerned. Every field is `None` when the event does not say (e.g. `reset_all`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factor {
    #[serde(rename = "type")]
    pub factor_type: Option<FactorType>,
    pub provider: Option<Provider>,
    /// What a person calls it ("Okta Verify", "SMS"…); Okta's raw name when it is not one we know.
    pub name: Option<String>,
    /// Whether Okta owns the enrollment (decided by provider; `None` when the provider is unknown).
    pub okta_authoritative: Option<bool>,
    /// Last (up to) four digits of the phone number, when the event carries one. Never more.
    pub phone_last4: Option<String>,
}

/// A user as Okta names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: Option<String>,
    /// `alternateId` (System Log) or `login` (Events API).
    pub login: Option<String>,
    pub display_name: Option<String>,
}

/// Who made the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: Option<String>,
    pub login: Option<String>,
    pub display_name: Option<String>,
    /// Okta's actor type, verbatim (`User`, `SystemPrincipal`, `PublicClientApp`…).
    #[serde(rename = "type")]
    pub actor_type: Option<String>,
}

/// Who started the change, relative to the affected user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// The affected user themself.
    #[serde(rename = "self")]
    SelfService,
    /// Another person.
    Admin,
    /// An API service application.
    App,
    /// Okta itself.
    System,
}

impl Initiator {
    pub fn as_str(self) -> &'static str {
        match self {
            Initiator::SelfService => "self",
            Initiator::Admin => "admin",
            Initiator::App => "app",
            Initiator::System => "system",
        }
    }
}

/// Where the request came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
}

/// The record's identity: Okta's own id, or — only for inputs that lost it (hand-edited fixtures,
/// stripped exports) — a digest of the event's bytes, so that the same input still dedupes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventId {
    Okta(String),
    /// Hex SHA-256 of the event text; serialized as `sha256:<hex>`.
    Digest(String),
}

impl EventId {
    pub fn to_wire(&self) -> String {
        match self {
            EventId::Okta(id) => id.clone(),
            EventId::Digest(hex) => format!("sha256:{hex}"),
        }
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EventId::Okta(id) => s.serialize_str(id),
            EventId::Digest(_) => s.serialize_str(&self.to_wire()),
        }
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.strip_prefix("sha256:") {
            Some(hex) => EventId::Digest(hex.to_owned()),
            None => EventId::Okta(s),
        })
    }
}

/// The contract's one timestamp format: `2023-01-30T14:18:01.558Z`.
pub fn format_published(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn serialize_published<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_published(t)),
        None => s.serialize_none(),
    }
}

fn deserialize_published<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
}
