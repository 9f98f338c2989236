//! The legacy Events API event (`/api/v1/events`), as far as factorwatch reads it (the mapping of
//! its `objectType`s to System Log event types is in [`super::catalog`]).

use serde::Deserialize;

use super::lenient;

#[derive(Debug, Clone, Deserialize)]
pub struct LegacyEvent {
    #[serde(rename = "eventId", deserialize_with = "lenient::string")]
    pub event_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub published: Option<String>,
    #[serde(rename = "sessionId", default, deserialize_with = "lenient::string")]
    pub session_id: Option<String>,
    pub action: LegacyAction,
    #[serde(default, deserialize_with = "lenient::list")]
    pub actors: Vec<LegacyObject>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub targets: Vec<LegacyObject>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LegacyAction {
    #[serde(default, deserialize_with = "lenient::string")]
    pub message: Option<String>,
    #[serde(rename = "objectType")]
    pub object_type: String,
}

/// An `actors[]` or `targets[]` entry. For a `Client` actor, `id` is the raw user agent and
/// `displayName` the browser.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LegacyObject {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(rename = "displayName", default, deserialize_with = "lenient::string")]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub login: Option<String>,
    #[serde(rename = "objectType", default, deserialize_with = "lenient::string")]
    pub object_type: Option<String>,
    #[serde(rename = "ipAddress", default, deserialize_with = "lenient::string")]
    pub ip_address: Option<String>,
}

impl LegacyObject {
    pub fn is_type(&self, kind: &str) -> bool {
        self.object_type
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case(kind))
    }
}
