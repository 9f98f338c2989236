//! What the detections read of an Okta event: a [`Signal`] — who, what, when, from where — taken
//! from an MFA change or an evidence event (a sign-in, a password reset, the user's own report).
//! It is what the store's journal keeps, so it holds nothing the journal must not: a phone number
//! only as a keyed hash ([`PhoneKey`]). Pure.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::classify::factor::Kind as FactorKind;
use crate::okta::catalog::Evidence;
use crate::okta::log_event::{LogEvent, Subject};
use crate::record::{Action, MfaChange};

/// One event, as the detections see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Okta's `uuid` (or the change record's id).
    pub id: String,
    #[serde(with = "super::finding::time")]
    pub published: DateTime<Utc>,
    pub event_type: String,
    pub what: What,
    /// The user the event is about. Shared: the rules that remember the user from this signal
    /// hold this one copy, not one each (an MSSP's process holds rule state for hundreds of
    /// thousands of users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<Party>>,
    /// Who did it, when someone other than the user (see `by_user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Arc<Party>>,
    /// The user did it themself (the actor is the user, not written twice in the journal).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_user: bool,
    #[serde(default, skip_serializing_if = "Place::is_empty")]
    pub place: Place,
    /// `authenticationContext.externalSessionId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// A successful sign-in or MFA verification.
    SignIn,
    /// A factor enrolled. `phone`: the keyed hash of its full number; `device`: Okta Verify's
    /// device id.
    Enrolled {
        factor: FactorKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    /// A factor updated (a re-registered phone).
    Updated {
        factor: FactorKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
    },
    /// One factor reset (removed).
    Removed {
        factor: FactorKind,
    },
    /// Every factor reset.
    ResetAll,
    /// An attempt to bypass MFA.
    BypassAttempt,
    PasswordReset,
    /// The user reported suspicious activity to Okta.
    Reported,
    /// A device bound to the user.
    DeviceAdded {
        device: String,
    },
    ImpersonationStarted,
    ImpersonationEnded,
}

impl What {
    /// Whether it changed the user's factors.
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            What::Enrolled { .. } | What::Updated { .. } | What::Removed { .. } | What::ResetAll
        )
    }

    /// Whether it took factors away.
    pub fn is_removal(&self) -> bool {
        matches!(self, What::Removed { .. } | What::ResetAll)
    }
}

/// A user or an actor, as Okta names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub id: Option<String>,
    pub login: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Okta's actor type (`User`, `SystemPrincipal`, `PublicClientApp`…).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Party {
    fn of(s: &Subject) -> Party {
        Party {
            id: s.id.clone(),
            login: s.alternate_id.clone(),
            display_name: s.display_name.clone(),
            kind: s.kind.clone(),
        }
    }

    /// The id, else the login: how the detections key a party.
    pub fn key(&self) -> Option<&str> {
        self.id
            .as_deref()
            .or(self.login.as_deref())
            .filter(|k| !k.is_empty())
    }

    /// Okta's own system actor, which Okta Support acts as.
    pub fn is_okta_system(&self) -> bool {
        self.login
            .as_deref()
            .is_some_and(|l| l.trim().eq_ignore_ascii_case("system@okta.com"))
    }
}

/// Where the event came from. Each part is optional; the detections compare only parts known on
/// both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Okta's device id (`okta:<id>`) where the event has one, else the browser and OS
    /// (`CHROME on Mac OS X`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl Place {
    pub fn is_empty(&self) -> bool {
        self.ip.is_none() && self.country.is_none() && self.device.is_none()
    }

    /// The network the address is in: `/24` for IPv4, `/48` for IPv6 (a home router's new lease
    /// or a phone's new address on the same carrier is not a new place).
    pub fn network(&self) -> Option<String> {
        match self
            .ip
            .as_deref()?
            .trim()
            .parse::<std::net::IpAddr>()
            .ok()?
        {
            std::net::IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Some(format!("{a}.{b}.{c}.0/24"))
            }
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
            }
        }
    }
}

impl Signal {
    /// The user's key (id, else login).
    pub fn user_key(&self) -> Option<&str> {
        self.user.as_deref().and_then(Party::key)
    }

    /// Who did it: the actor, or the user when they acted themself.
    pub fn actor(&self) -> Option<&Arc<Party>> {
        if self.by_user {
            self.user.as_ref()
        } else {
            self.actor.as_ref()
        }
    }

    /// The actor's key (id, else login).
    pub fn actor_key(&self) -> Option<&str> {
        self.actor().and_then(|a| a.key())
    }

    /// Whether the user acted on their own account.
    pub fn by_self(&self) -> bool {
        self.by_user
            || match (self.user_key(), self.actor_key()) {
                (Some(u), Some(a)) => u == a,
                _ => false,
            }
    }

    /// The signal as the journal keeps it: an actor who is the user is not written twice.
    fn compact(mut self) -> Signal {
        if !self.by_user
            && self.user_key().is_some()
            && self.user_key() == self.actor.as_deref().and_then(Party::key)
        {
            self.by_user = true;
            if let (Some(u), Some(a)) = (self.user.as_mut(), self.actor.take()) {
                let u = Arc::make_mut(u);
                u.display_name = u.display_name.take().or_else(|| a.display_name.clone());
            }
        }
        self
    }
}

/// The key phone numbers are hashed with (HMAC-SHA-256): the journal can tell that two users
/// enrolled the same number without holding any number.
#[derive(Clone)]
pub struct PhoneKey(Vec<u8>);

impl std::fmt::Debug for PhoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneKey(***)")
    }
}

impl PhoneKey {
    pub fn new(key: impl Into<Vec<u8>>) -> PhoneKey {
        PhoneKey(key.into())
    }

    /// A fresh random key (a `detect` run: hashes never leave the process).
    pub fn random() -> PhoneKey {
        use rand::RngCore;
        let mut key = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        PhoneKey(key)
    }

    /// The number's keyed hash (hex, 128 bits), over its digits with a leading `+` kept; `None`
    /// for text with fewer than seven digits (not a phone number).
    pub fn hash(&self, number: &str) -> Option<String> {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        if digits.len() < 7 {
            return None;
        }
        let plus = if number.trim_start().starts_with('+') {
            "+"
        } else {
            ""
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).ok()?;
        mac.update(plus.as_bytes());
        mac.update(digits.as_bytes());
        let tag = mac.finalize().into_bytes();
        Some(tag[..16].iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// The signal of a classified MFA change; `event` is the System Log event it came from (absent
/// for the legacy Events API), read for the phone number and the device. Changes that did not
/// succeed are not signals, except bypass attempts (which never succeed).
pub fn from_change(
    change: &MfaChange,
    event: Option<&LogEvent>,
    phones: &PhoneKey,
) -> Option<Signal> {
    let published = change.published?;
    let ok = change.outcome.as_deref() == Some("SUCCESS");
    let debug = event
        .and_then(|e| e.debug_context.as_ref())
        .and_then(|d| d.debug_data.as_ref());
    let phone = || {
        debug
            .and_then(|d| d.phone_number.as_deref())
            .and_then(|n| phones.hash(n))
    };
    let factor = FactorKind::of(&change.factor);
    let what = match change.action {
        Action::Enrolled if ok => What::Enrolled {
            factor,
            phone: phone(),
            device: event
                .and_then(|e| e.device.as_ref())
                .and_then(|d| d.id.clone())
                .or_else(|| debug.and_then(|d| d.device_id.clone()))
                .filter(|d| !d.trim().is_empty()),
        },
        Action::Updated if ok => What::Updated {
            factor,
            phone: phone(),
        },
        Action::Reset if ok => What::Removed { factor },
        Action::ResetAll if ok => What::ResetAll,
        Action::BypassAttempted => What::BypassAttempt,
        _ => return None,
    };
    let c = &change.client;
    let device = event
        .and_then(|e| e.device.as_ref())
        .and_then(|d| d.id.as_deref())
        .map(|id| format!("okta:{id}"))
        .or_else(|| browser_and_os(c.browser.as_deref(), c.os.as_deref()));
    Some(
        Signal {
            id: change.id.to_wire(),
            published,
            event_type: change.event_type.clone(),
            what,
            user: change.user.as_ref().map(|u| {
                Arc::new(Party {
                    id: u.id.clone(),
                    login: u.login.clone(),
                    display_name: u.display_name.clone(),
                    kind: Some("User".into()),
                })
            }),
            actor: change.actor.as_ref().map(|a| {
                Arc::new(Party {
                    id: a.id.clone(),
                    login: a.login.clone(),
                    display_name: a.display_name.clone(),
                    kind: a.actor_type.clone(),
                })
            }),
            place: Place {
                ip: c.ip.clone(),
                country: c.country.clone(),
                device,
            },
            session: change.session_id.clone(),
            by_user: false,
        }
        .compact(),
    )
}

/// Why an evidence event cannot be a signal: it cannot be placed in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("{0} event: no `published` time")]
    NoTime(String),
    #[error("{event_type} event: {source}")]
    BadTime {
        event_type: String,
        source: crate::okta::TimestampError,
    },
}

/// The signal of an evidence event (the catalog says which); `raw` is its text, for an id when it
/// has no `uuid`. Failed sign-ins are not signals: a place someone failed to sign in from is not
/// one the user has been.
pub fn from_evidence(
    event: &LogEvent,
    evidence: Evidence,
    raw: &str,
) -> Result<Option<Signal>, EvidenceError> {
    let published = event
        .published
        .as_deref()
        .ok_or_else(|| EvidenceError::NoTime(event.event_type.clone()))?;
    let published =
        crate::okta::parse_timestamp(published).map_err(|source| EvidenceError::BadTime {
            event_type: event.event_type.clone(),
            source,
        })?;
    Ok(evidence_signal(event, evidence, raw, published))
}

fn evidence_signal(
    event: &LogEvent,
    evidence: Evidence,
    raw: &str,
    published: DateTime<Utc>,
) -> Option<Signal> {
    let result = event
        .outcome
        .as_ref()
        .and_then(|o| o.result.as_deref())
        .unwrap_or("SUCCESS");
    let ok = matches!(result, "SUCCESS" | "ALLOW");
    let target_user = event
        .target
        .iter()
        .find(|t| t.is_type("User"))
        .map(Party::of);
    let actor = event.actor.as_ref().map(Party::of);
    let actor_as_user = || actor.clone().filter(|a| a.kind.as_deref() == Some("User"));
    let (what, user) = match evidence {
        // Sign-ins are most of the journal: the user's display name is left out of theirs.
        Evidence::SignIn if ok => (
            What::SignIn,
            target_user.or_else(actor_as_user).map(|u| Party {
                display_name: None,
                kind: None,
                ..u
            }),
        ),
        Evidence::PasswordReset if ok => (What::PasswordReset, target_user.or_else(actor_as_user)),
        Evidence::Reported => (What::Reported, target_user.or_else(actor_as_user)),
        Evidence::DeviceAdded if ok => {
            let device = event
                .target
                .iter()
                .find(|t| t.is_type("Device"))
                .and_then(|t| t.id.clone())
                .filter(|d| !d.trim().is_empty())?;
            (What::DeviceAdded { device }, target_user)
        }
        Evidence::ImpersonationStarted if ok => (What::ImpersonationStarted, target_user),
        Evidence::ImpersonationEnded => (What::ImpersonationEnded, target_user),
        _ => return None,
    };
    let client = event.client.as_ref();
    let ip = client
        .and_then(|c| c.ip_address.clone())
        .or_else(|| {
            client
                .and_then(|c| c.ip_chain.first())
                .and_then(|e| e.ip.clone())
        })
        .or_else(|| {
            event
                .request
                .as_ref()
                .and_then(|r| r.ip_chain.first())
                .and_then(|e| e.ip.clone())
        });
    let geo = client.and_then(|c| c.geographical_context.as_ref());
    let agent = client.and_then(|c| c.user_agent.as_ref());
    let device = event
        .device
        .as_ref()
        .and_then(|d| d.id.as_deref())
        .filter(|d| !d.trim().is_empty())
        .map(|id| format!("okta:{id}"))
        .or_else(|| {
            browser_and_os(
                agent.and_then(|a| a.browser.as_deref()),
                agent.and_then(|a| a.os.as_deref()),
            )
        });
    let session = (what != What::SignIn)
        .then(|| {
            event
                .authentication_context
                .as_ref()
                .and_then(|a| a.external_session_id.clone())
        })
        .flatten();
    Some(
        Signal {
            id: crate::classify::event_id(event.uuid.as_deref(), raw).to_wire(),
            published,
            event_type: event.event_type.clone(),
            user: user.map(Arc::new),
            actor: actor.map(Arc::new),
            place: Place {
                ip,
                country: geo.and_then(|g| g.country.clone()),
                device,
            },
            session,
            by_user: false,
            what,
        }
        .compact(),
    )
}

/// `CHROME on Mac OS X`, when Okta parsed both (it writes `UNKNOWN` when it could not).
fn browser_and_os(browser: Option<&str>, os: Option<&str>) -> Option<String> {
    fn known(s: Option<&str>) -> Option<&str> {
        s.map(str::trim)
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("unknown"))
    }
    Some(format!("{} on {}", known(browser)?, known(os)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_hash_by_their_digits_under_a_key_and_nothing_else_does() {
        let k = PhoneKey::new(b"k".to_vec());
        let a = k.hash("+1 (555) 010-1234");
        assert_eq!(a, k.hash("+15550101234"));
        assert_ne!(a, k.hash("15550101234"), "the + is part of the number");
        assert_ne!(a, PhoneKey::new(b"other".to_vec()).hash("+15550101234"));
        assert_eq!(k.hash("12345"), None);
        assert!(!format!("{k:?}").contains('k') || format!("{k:?}") == "PhoneKey(***)");
        assert_eq!(a.as_deref().map(str::len), Some(32));
    }

    #[test]
    fn networks_are_prefixes() {
        let p = |ip: &str| {
            Place {
                ip: Some(ip.into()),
                ..Place::default()
            }
            .network()
        };
        assert_eq!(p("203.0.113.77").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(p("2001:db8:1:2::9").as_deref(), Some("2001:db8:1::/48"));
        assert_eq!(p("not an ip"), None);
    }
}
