//! Enrichment for changes that notify someone: whom to write to (the user's `profile.email` and
//! `secondEmail`, from the Users API) and what exactly changed (the phone's last four digits, the
//! push device's name and platform, from the Factors API). Lookups are cached briefly; a failed
//! lookup is an error the outbox retries, never a dropped change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::okta::client::{ClientError, OktaClient};
use crate::record::{Action, MfaChange};

/// What enrichment found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrichment {
    pub email: Option<String>,
    pub second_email: Option<String>,
    pub first_name: Option<String>,
    pub locale: Option<String>,
    /// `profile.timezone` (an IANA name such as `America/Los_Angeles`), when set.
    #[serde(default)]
    pub timezone: Option<String>,
    pub factor: Option<FactorDetail>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorDetail {
    /// The Factors API `factorType`, when the event did not say (an Identity Engine "Phone").
    pub factor_type: Option<String>,
    /// Last four digits only; never more.
    pub phone_last4: Option<String>,
    pub device_name: Option<String>,
    pub platform: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// Okta cannot answer now, or refuses our credentials (a person must fix them): wait,
    /// without spending attempts.
    #[error("user lookup failed: {0}")]
    Unavailable(String),
    /// Retrying cannot help: the user no longer exists, or the request itself is wrong.
    #[error("user lookup impossible: {0}")]
    Permanent(String),
}

impl From<ClientError> for EnrichError {
    fn from(e: ClientError) -> Self {
        match e {
            // Okta's answer about this user: not found, or a request it will never accept.
            ClientError::Okta {
                status: 400 | 404 | 410,
                ..
            } => EnrichError::Permanent(e.to_string()),
            // Outages (5xx and 429 waited out by the client), refused credentials (401, 403),
            // and an Okta that misbehaves (redirects, foreign links, huge answers): a person or
            // time fixes them; the notice waits.
            _ => EnrichError::Unavailable(e.to_string()),
        }
    }
}

pub struct Enricher {
    client: Arc<OktaClient>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Value)>>,
}

impl Enricher {
    pub fn new(client: Arc<OktaClient>, ttl: Duration) -> Enricher {
        Enricher {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn cached(&self, path: String) -> Result<Value, EnrichError> {
        if let Some((at, v)) = self.cache.lock().await.get(&path)
            && at.elapsed() < self.ttl
        {
            return Ok(v.clone());
        }
        let page = self.client.get(&path).await?;
        let value: Value = serde_json::from_str(&page.body)
            .map_err(|e| EnrichError::Unavailable(format!("unreadable answer: {e}")))?;
        let mut cache = self.cache.lock().await;
        if cache.len() > 10_000 {
            cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        cache.insert(path, (Instant::now(), value.clone()));
        Ok(value)
    }

    /// Looks up the change's user, and its factor when the event did not say enough.
    pub async fn enrich(&self, change: &MfaChange, raw: &str) -> Result<Enrichment, EnrichError> {
        let user_id = change
            .user
            .as_ref()
            .and_then(|u| u.id.clone())
            .ok_or_else(|| EnrichError::Permanent("the change names no user id".into()))?;
        // The id goes into a URL path: only what Okta's ids are made of (`00u…`), so an event
        // cannot steer the lookup elsewhere (`..`, `/`, `?`).
        if !okta_id(&user_id) {
            return Err(EnrichError::Permanent(format!(
                "{:?} is not an Okta user id",
                crate::http::client::excerpt(&user_id, 40)
            )));
        }
        let user = self
            .cached(format!("/api/v1/users/{}", encode(&user_id)))
            .await?;
        let profile = &user["profile"];
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let mut e = Enrichment {
            email: text(&profile["email"]),
            second_email: text(&profile["secondEmail"]),
            first_name: text(&profile["firstName"]),
            locale: text(&profile["locale"]),
            timezone: text(&profile["timezone"]),
            factor: None,
        };
        if wants_factor_detail(change) {
            let factors = self
                .cached(format!("/api/v1/users/{}/factors", encode(&user_id)))
                .await?;
            if let Some(list) = factors.as_array() {
                e.factor = factor_detail(list, change, &enrollment_id(raw));
            }
        }
        Ok(e)
    }
}

/// Okta object ids: 20 letters and digits (`00ub0oNGTSWTBKOLGLNR`); a little slack either way.
pub fn okta_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Whether the Factors API can add something: the factor still exists (enrolled or updated) and
/// is one whose details matter (a phone, a push device) that the event did not carry.
fn wants_factor_detail(change: &MfaChange) -> bool {
    use crate::okta::factors::FactorType as T;
    matches!(change.action, Action::Enrolled | Action::Updated)
        && match change.factor.factor_type {
            Some(T::Sms | T::Call) => change.factor.phone_last4.is_none(),
            Some(T::Push) | None => true,
            _ => false,
        }
}

/// The `AuthenticatorEnrollment` target's id (Identity Engine events): the factor's own id.
fn enrollment_id(raw: &str) -> Option<String> {
    let v: Value = serde_json::from_str(raw).ok()?;
    v["target"]
        .as_array()?
        .iter()
        .find(|t| t["type"] == "AuthenticatorEnrollment")
        .and_then(|t| t["id"].as_str())
        .map(str::to_owned)
}

/// The details of the factor the change is about, from the user's factor list: by id when the
/// event named the enrollment, else the one active factor of the change's type and provider.
pub fn factor_detail(
    factors: &[Value],
    change: &MfaChange,
    enrollment_id: &Option<String>,
) -> Option<FactorDetail> {
    let by_id = enrollment_id
        .as_ref()
        .and_then(|id| factors.iter().find(|f| f["id"] == id.as_str()));
    let wanted_type = change
        .factor
        .factor_type
        .and_then(|t| serde_json::to_value(t).ok());
    let wanted_provider = change
        .factor
        .provider
        .and_then(|p| serde_json::to_value(p).ok());
    let by_kind = || {
        let matching: Vec<&Value> = factors
            .iter()
            .filter(|f| wanted_type.as_ref().is_some_and(|t| &f["factorType"] == t))
            .filter(|f| wanted_provider.as_ref().is_none_or(|p| &f["provider"] == p))
            .collect();
        // Only an unambiguous match: a wrong phone number is worse than none.
        (matching.len() == 1).then(|| matching[0])
    };
    let f = by_id.or_else(by_kind)?;
    let profile = &f["profile"];
    let detail = FactorDetail {
        factor_type: f["factorType"].as_str().map(str::to_owned),
        phone_last4: profile["phoneNumber"].as_str().and_then(last4),
        device_name: profile["name"].as_str().map(str::to_owned),
        platform: profile["platform"].as_str().map(str::to_owned),
    };
    (detail.phone_last4.is_some() || detail.device_name.is_some() || detail.platform.is_some())
        .then_some(detail)
}

/// The last four digits of a phone number, whatever its punctuation.
pub fn last4(phone: &str) -> Option<String> {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 4).then(|| digits[digits.len() - 4..].iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okta::factors::{FactorType, Provider};
    use crate::record::{EventId, Factor, Source};
    use serde_json::json;

    fn change(t: FactorType) -> MfaChange {
        MfaChange {
            id: EventId::Okta("e".into()),
            source: Source::SystemLog,
            published: None,
            event_type: "user.mfa.factor.activate".into(),
            legacy_event_type: None,
            action: Action::Enrolled,
            outcome: Some("SUCCESS".into()),
            factor: Factor {
                factor_type: Some(t),
                provider: Some(Provider::Okta),
                ..Factor::default()
            },
            user: None,
            actor: None,
            initiator: None,
            client: Default::default(),
            reason: None,
            message: None,
            session_id: None,
        }
    }

    fn factors() -> Vec<Value> {
        vec![
            json!({"id": "sms1", "factorType": "sms", "provider": "OKTA", "profile": {"phoneNumber": "+1-555-415-1337"}}),
            json!({"id": "opf1", "factorType": "push", "provider": "OKTA", "profile": {"name": "Gibson", "platform": "IOS"}}),
            json!({"id": "opf2", "factorType": "push", "provider": "OKTA", "profile": {"name": "Pixel", "platform": "ANDROID"}}),
        ]
    }

    #[test]
    fn phones_give_only_their_last_four_digits() {
        let d = factor_detail(&factors(), &change(FactorType::Sms), &None).unwrap();
        assert_eq!(d.phone_last4.as_deref(), Some("1337"));
        assert_eq!(last4("+1 (555) 415-1337").as_deref(), Some("1337"));
        assert_eq!(last4("12"), None);
    }

    #[test]
    fn devices_are_found_by_enrollment_id_and_never_guessed() {
        let d = factor_detail(&factors(), &change(FactorType::Push), &Some("opf2".into())).unwrap();
        assert_eq!(
            (d.device_name.as_deref(), d.platform.as_deref()),
            (Some("Pixel"), Some("ANDROID"))
        );
        // Two push factors and no id: which one changed is unknown, so nothing is said.
        assert_eq!(
            factor_detail(&factors(), &change(FactorType::Push), &None),
            None
        );
    }

    #[test]
    fn only_okta_ids_reach_a_lookup_url() {
        assert!(okta_id("00ub0oNGTSWTBKOLGLNR"));
        for bad in [
            "",
            "..",
            "../../api/v1/eventHooks",
            "00u1/factors",
            "00u1?x=1",
            "00u 1",
            "é",
        ] {
            assert!(!okta_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_enrollment_id_comes_from_the_identity_engine_target() {
        let raw = r#"{"target":[{"id":"00u1","type":"User"},{"id":"opf9","type":"AuthenticatorEnrollment"}]}"#;
        assert_eq!(enrollment_id(raw).as_deref(), Some("opf9"));
        assert_eq!(
            enrollment_id(r#"{"target":[{"id":"00u1","type":"User"}]}"#),
            None
        );
    }
}
