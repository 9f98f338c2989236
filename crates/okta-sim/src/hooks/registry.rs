//! The org's Event Hooks as the management API (`/api/v1/eventHooks`) sees them: Okta's object
//! shape, validation, lifecycle, and which hooks an event goes to. Pure.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::directory::okta_id;
use crate::error::OktaError;
use crate::logs::okta_time;

/// Okta allows 25 active, verified hooks per org, each with at most 300 event types.
pub const MAX_ACTIVE_HOOKS: usize = 25;
pub const MAX_EVENT_TYPES: usize = 300;

/// Event types Okta's catalog tags `event-hook-eligible` (the MFA ones from the catalog in
/// `shared/okta/samples`, and the common others). `system.mfa.factor.*`, `user.mfa.attempt_bypass`
/// and `user.account.update_primary_email` are, notably, not eligible.
pub const ELIGIBLE: &[&str] = &[
    "application.user_membership.add",
    "application.user_membership.remove",
    "device.enrollment.create",
    "device.lifecycle.activate",
    "device.lifecycle.deactivate",
    "device.lifecycle.delete",
    "device.lifecycle.suspend",
    "device.lifecycle.unsuspend",
    "device.user.add",
    "device.user.remove",
    "group.user_membership.add",
    "group.user_membership.remove",
    "security.authenticator.lifecycle.activate",
    "security.authenticator.lifecycle.create",
    "security.authenticator.lifecycle.deactivate",
    "security.authenticator.lifecycle.update",
    "system.mfa.preregister.initiate",
    "user.account.lock",
    "user.account.report_suspicious_activity_by_enduser",
    "user.account.reset_password",
    "user.authentication.auth_via_mfa",
    "user.authentication.sso",
    "user.credential.enroll",
    "user.lifecycle.activate",
    "user.lifecycle.create",
    "user.lifecycle.deactivate",
    "user.lifecycle.suspend",
    "user.lifecycle.unsuspend",
    "user.mfa.factor.activate",
    "user.mfa.factor.deactivate",
    "user.mfa.factor.reset_all",
    "user.mfa.factor.suspend",
    "user.mfa.factor.unsuspend",
    "user.mfa.factor.update",
    "user.mfa.promote_enrollment",
    "user.session.end",
    "user.session.start",
];

/// The MFA event types a hook registered through the control API subscribes to by default.
pub const MFA_TYPES: &[&str] = &[
    "security.authenticator.lifecycle.activate",
    "security.authenticator.lifecycle.deactivate",
    "user.mfa.factor.activate",
    "user.mfa.factor.deactivate",
    "user.mfa.factor.reset_all",
    "user.mfa.factor.suspend",
    "user.mfa.factor.unsuspend",
    "user.mfa.factor.update",
];

pub fn is_eligible(event_type: &str) -> bool {
    ELIGIBLE.contains(&event_type)
}

/// What a client sends to create a hook (Okta's request body).
#[derive(Debug, Clone, Deserialize)]
pub struct NewHook {
    pub name: Option<String>,
    pub events: Option<Events>,
    pub channel: Option<Channel>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Events {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub items: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub version: Option<String>,
    pub config: Option<ChannelConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChannelConfig {
    pub uri: Option<String>,
    #[serde(default)]
    pub headers: Vec<KeyValue>,
    #[serde(rename = "authScheme")]
    pub auth_scheme: Option<AuthScheme>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthScheme {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub key: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Inactive,
}

/// A registered hook.
#[derive(Clone)]
pub struct Hook {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub verified: bool,
    pub event_types: Vec<String>,
    pub uri: String,
    /// Custom headers, then the auth header (its value is the shared secret).
    pub headers: Vec<(String, String)>,
    auth_key: Option<String>,
    created: DateTime<Utc>,
    last_updated: DateTime<Utc>,
}

impl std::fmt::Debug for Hook {
    // The auth header's value is a shared secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("status", &self.status)
            .field("verified", &self.verified)
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl Hook {
    /// The header that carries the shared secret, if the hook has one.
    pub fn auth_key(&self) -> Option<&str> {
        self.auth_key.as_deref()
    }

    /// Whether Okta delivers this event type to the hook now.
    pub fn delivers(&self, event_type: &str) -> bool {
        self.status == Status::Active
            && self.verified
            && self.event_types.iter().any(|t| t == event_type)
    }

    /// Okta's EventHook object. The auth value is write-only, as in Okta.
    pub fn to_json(&self, base_url: &str) -> Value {
        let href = format!("{base_url}/api/v1/eventHooks/{}", self.id);
        let custom: Vec<Value> = self
            .headers
            .iter()
            .filter(|(k, _)| Some(k) != self.auth_key.as_ref())
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        let lifecycle = match self.status {
            Status::Active => "deactivate",
            Status::Inactive => "activate",
        };
        json!({
            "id": self.id,
            "status": match self.status { Status::Active => "ACTIVE", Status::Inactive => "INACTIVE" },
            "verificationStatus": if self.verified { "VERIFIED" } else { "UNVERIFIED" },
            "name": self.name,
            "created": okta_time(self.created),
            "createdBy": "00usimadmin000000000",
            "lastUpdated": okta_time(self.last_updated),
            "events": { "type": "EVENT_TYPE", "items": self.event_types, "filter": null },
            "channel": {
                "type": "HTTP",
                "version": "1.0.0",
                "config": {
                    "uri": self.uri,
                    "headers": custom,
                    "method": "POST",
                    "authScheme": self.auth_key.as_ref().map(|k| json!({ "type": "HEADER", "key": k })),
                },
            },
            "_links": {
                "self": { "href": href, "hints": { "allow": ["GET", "PUT", "DELETE"] } },
                "verify": { "href": format!("{href}/lifecycle/verify"), "hints": { "allow": ["POST"] } },
                lifecycle: { "href": format!("{href}/lifecycle/{lifecycle}"), "hints": { "allow": ["POST"] } },
            },
        })
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    hooks: Vec<Hook>,
}

impl Registry {
    /// `POST /api/v1/eventHooks`: validates as Okta does; the new hook is ACTIVE and UNVERIFIED.
    pub fn create(&mut self, new: NewHook, now: DateTime<Utc>) -> Result<&Hook, OktaError> {
        let invalid = |field: &str, why: &str| {
            OktaError::validation(
                format!("Api validation failed: {field}"),
                format!("{field}: {why}"),
            )
        };
        let name = new
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| invalid("name", "The field cannot be left blank."))?;
        let events = new
            .events
            .ok_or_else(|| invalid("events", "The field cannot be left blank."))?;
        if events.kind.as_deref() != Some("EVENT_TYPE") {
            return Err(invalid(
                "events.type",
                "The only supported value is EVENT_TYPE.",
            ));
        }
        if events.items.is_empty() || events.items.len() > MAX_EVENT_TYPES {
            return Err(invalid(
                "events.items",
                &format!("A hook needs between 1 and {MAX_EVENT_TYPES} event types."),
            ));
        }
        if let Some(bad) = events.items.iter().find(|t| !is_eligible(t)) {
            return Err(invalid(
                "events.items",
                &format!("The event type '{bad}' is not eligible for event hooks."),
            ));
        }
        let channel = new
            .channel
            .ok_or_else(|| invalid("channel", "The field cannot be left blank."))?;
        if channel.kind.as_deref() != Some("HTTP") {
            return Err(invalid("channel.type", "The only supported value is HTTP."));
        }
        if channel.version.as_deref() != Some("1.0.0") {
            return Err(invalid(
                "channel.version",
                "The only supported value is 1.0.0.",
            ));
        }
        let config = channel
            .config
            .ok_or_else(|| invalid("channel.config", "The field cannot be left blank."))?;
        let uri = config
            .uri
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid("channel.config.uri", "The field cannot be left blank."))?;
        // Okta requires HTTPS; the simulator also takes plain HTTP so tests need no certificates.
        if !(uri.starts_with("https://") || uri.starts_with("http://")) {
            return Err(invalid("channel.config.uri", "The URI must use HTTPS."));
        }
        let mut headers: Vec<(String, String)> = config
            .headers
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect();
        let auth_key = match config.auth_scheme {
            None => None,
            Some(a) => {
                if a.kind.as_deref() != Some("HEADER") {
                    return Err(invalid(
                        "channel.config.authScheme.type",
                        "The only supported value is HEADER.",
                    ));
                }
                let key = a.key.filter(|k| !k.is_empty()).ok_or_else(|| {
                    invalid(
                        "channel.config.authScheme.key",
                        "The field cannot be left blank.",
                    )
                })?;
                headers.push((key.clone(), a.value.unwrap_or_default()));
                Some(key)
            }
        };
        let id = okta_id(
            "who",
            &format!("{name}/{}/{}", self.hooks.len(), okta_time(now)),
        );
        self.hooks.push(Hook {
            id,
            name,
            status: Status::Active,
            verified: false,
            event_types: events.items,
            uri,
            headers,
            auth_key,
            created: now,
            last_updated: now,
        });
        self.hooks
            .last()
            .ok_or_else(|| OktaError::not_found("Resource not found: (EventHook)"))
    }

    pub fn list(&self) -> &[Hook] {
        &self.hooks
    }

    pub fn get(&self, id: &str) -> Result<&Hook, OktaError> {
        self.hooks
            .iter()
            .find(|h| h.id == id)
            .ok_or_else(|| not_found(id))
    }

    /// `lifecycle/activate` and `lifecycle/deactivate`.
    pub fn set_status(
        &mut self,
        id: &str,
        status: Status,
        now: DateTime<Utc>,
    ) -> Result<&Hook, OktaError> {
        let verified = self.get(id)?.verified;
        if status == Status::Active && verified {
            self.check_room(id)?;
        }
        let hook = self.get_mut(id)?;
        hook.status = status;
        hook.last_updated = now;
        Ok(hook)
    }

    /// Records a successful verification.
    pub fn set_verified(&mut self, id: &str, now: DateTime<Utc>) -> Result<&Hook, OktaError> {
        if self.get(id)?.status == Status::Active {
            self.check_room(id)?;
        }
        let hook = self.get_mut(id)?;
        hook.verified = true;
        hook.last_updated = now;
        Ok(hook)
    }

    /// Whether one more hook besides `id` may be active and verified.
    fn check_room(&self, id: &str) -> Result<(), OktaError> {
        let active = self
            .hooks
            .iter()
            .filter(|h| h.id != id && h.status == Status::Active && h.verified)
            .count();
        if active >= MAX_ACTIVE_HOOKS {
            return Err(OktaError::validation(
                "Api validation failed: eventHook",
                format!(
                    "eventHook: An org may have at most {MAX_ACTIVE_HOOKS} active, verified event hooks."
                ),
            ));
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.hooks.clear();
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut Hook, OktaError> {
        self.hooks
            .iter_mut()
            .find(|h| h.id == id)
            .ok_or_else(|| not_found(id))
    }
}

fn not_found(id: &str) -> OktaError {
    OktaError::not_found(&format!("Resource not found: {id} (EventHook)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_time as now;

    fn body(items: &[&str]) -> NewHook {
        serde_json::from_value(json!({
            "name": "MFA changes",
            "events": { "type": "EVENT_TYPE", "items": items },
            "channel": { "type": "HTTP", "version": "1.0.0", "config": {
                "uri": "https://example.com/hooks",
                "headers": [{ "key": "x-any-key", "value": "v" }],
                "authScheme": { "type": "HEADER", "key": "Authorization", "value": "s3cret" } } }
        }))
        .unwrap()
    }

    #[test]
    fn a_new_hook_is_active_unverified_and_hides_its_secret() {
        let mut r = Registry::default();
        let hook = r
            .create(body(&["user.mfa.factor.activate"]), now())
            .unwrap();
        assert!(
            !hook.delivers("user.mfa.factor.activate"),
            "unverified hooks get nothing"
        );
        let json = hook.to_json("https://o");
        assert_eq!(json["status"], "ACTIVE");
        assert_eq!(json["verificationStatus"], "UNVERIFIED");
        assert!(json["id"].as_str().unwrap().starts_with("who"));
        assert_eq!(
            json["channel"]["config"]["authScheme"],
            json!({"type": "HEADER", "key": "Authorization"})
        );
        assert!(!json.to_string().contains("s3cret"));
        assert!(!format!("{hook:?}").contains("s3cret"));
        let id = hook.id.clone();
        assert!(
            r.set_verified(&id, now())
                .unwrap()
                .delivers("user.mfa.factor.activate")
        );
        assert!(!r.get(&id).unwrap().delivers("user.session.start"));
        assert!(
            !r.set_status(&id, Status::Inactive, now())
                .unwrap()
                .delivers("user.mfa.factor.activate")
        );
    }

    #[test]
    fn ineligible_event_types_are_refused() {
        let mut r = Registry::default();
        for bad in [
            "user.mfa.attempt_bypass",
            "system.mfa.factor.activate",
            "no.such.type",
        ] {
            let e = r.create(body(&[bad]), now()).unwrap_err();
            assert_eq!((e.status, e.error_code), (400, "E0000001"), "{bad}");
            assert!(e.error_causes[0].error_summary.contains(bad));
        }
        assert!(r.create(body(&[]), now()).is_err());
        assert!(r.list().is_empty());
    }

    #[test]
    fn at_most_25_hooks_are_active_and_verified() {
        let mut r = Registry::default();
        let mut ids = Vec::new();
        for i in 0..26 {
            let id = r
                .create(body(&["user.session.start"]), now())
                .unwrap()
                .id
                .clone();
            assert_eq!(r.set_verified(&id, now()).is_ok(), i < 25);
            ids.push(id);
        }
        // The 26th could not be verified while active.
        assert!(r.list().iter().filter(|h| h.verified).count() == 25);
        r.set_status(&ids[25], Status::Inactive, now()).unwrap();
        r.set_verified(&ids[25], now()).unwrap();
        assert_eq!(
            r.set_status(&ids[25], Status::Active, now())
                .unwrap_err()
                .status,
            400
        );
        r.set_status(&ids[0], Status::Inactive, now()).unwrap();
        r.set_status(&ids[25], Status::Active, now()).unwrap();
    }
}
