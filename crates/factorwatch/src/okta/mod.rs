//! Okta's wire formats: System Log events, Event Hook deliveries, legacy Events API events, and
//! Okta's factor vocabulary.

pub mod catalog;
pub mod client;
pub mod factors;
pub mod legacy_event;
mod lenient;
pub mod log_event;

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The envelope `eventType` of an Event Hook delivery.
pub const EVENT_HOOK_TYPE: &str = "com.okta.event_hook";

/// What one JSON value from Okta is, found by reading only the keys that tell.
#[derive(Debug)]
pub enum Shape<'a> {
    /// A System Log event, with its `eventType`.
    SystemLog { event_type: Cow<'a, str> },
    /// An Event Hook delivery, with its `data.events[]`.
    EventHook { events: Vec<&'a RawValue> },
    /// A legacy Events API event, with its `action.objectType`.
    EventsApi { object_type: Cow<'a, str> },
}

/// Why a text is not an Okta event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("not valid JSON: {0}")]
    NotJson(String),
    #[error("not an Okta event: {0}")]
    NotOkta(String),
}

fn not_okta(detail: impl Into<String>) -> ShapeError {
    ShapeError::NotOkta(detail.into())
}

/// Tells a System Log event, an Event Hook delivery and a legacy event apart, and checks on the way
/// that `json` is one valid JSON value. Cheap: everything but the distinguishing keys is skipped, not
/// parsed into values, because it runs on every event Okta sends and only a few percent of those are
/// MFA changes.
pub fn sniff(json: &str) -> Result<Shape<'_>, ShapeError> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "eventType", alias = "eventtype", borrow, default)]
        event_type: Option<Cow<'a, str>>,
        #[serde(rename = "eventId", borrow, default)]
        event_id: Option<&'a RawValue>,
        #[serde(borrow, default)]
        action: Option<&'a RawValue>,
        #[serde(borrow, default)]
        data: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct HookData<'a> {
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct LegacyAction<'a> {
        #[serde(rename = "objectType", borrow)]
        object_type: Cow<'a, str>,
    }

    let probe: Probe<'_> = serde_json::from_str(json).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ShapeError::NotJson(e.to_string())
        } else if json.trim_start().starts_with('{') {
            not_okta(format!("unexpected field value: {e}"))
        } else {
            not_okta("expected a JSON object")
        }
    })?;

    match probe.event_type {
        Some(et) if et == EVENT_HOOK_TYPE => {
            let data = probe
                .data
                .ok_or_else(|| not_okta("Event Hook delivery without `data`"))?;
            let data: HookData<'_> = serde_json::from_str(data.get()).map_err(|e| {
                not_okta(format!(
                    "Event Hook delivery: `data.events` must be an array of events: {e}"
                ))
            })?;
            Ok(Shape::EventHook {
                events: data.events,
            })
        }
        Some(event_type) => Ok(Shape::SystemLog { event_type }),
        None => match (probe.event_id, probe.action) {
            (Some(_), Some(action)) => {
                let action: LegacyAction<'_> = serde_json::from_str(action.get()).map_err(|e| {
                    not_okta(format!(
                        "Events API event: `action.objectType` must be a string: {e}"
                    ))
                })?;
                Ok(Shape::EventsApi {
                    object_type: action.object_type,
                })
            }
            _ => Err(not_okta(
                "no `eventType` (System Log, Event Hook) and no `eventId` with `action` (Events API)",
            )),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`published` is not an ISO 8601 timestamp: {0:?}")]
pub struct TimestampError(pub String);

/// Parses Okta's `published`: RFC 3339 with any offset and precision, and the zone-less
/// `2022-06-22 18:18:29.015` some SIEM exports write (read as UTC, as Okta's times are).
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, TimestampError> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(naive.and_utc());
        }
    }
    Err(TimestampError(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::format_published;

    fn ts(s: &str) -> String {
        parse_timestamp(s)
            .map(|t| format_published(&t))
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn timestamps_normalize_to_utc_milliseconds() {
        assert_eq!(ts("2023-01-30T14:18:01.558Z"), "2023-01-30T14:18:01.558Z");
        assert_eq!(ts("2017-05-03T16:22:18Z"), "2017-05-03T16:22:18.000Z");
        assert_eq!(
            ts("2017-05-03T18:22:18.123456+02:00"),
            "2017-05-03T16:22:18.123Z"
        );
        assert_eq!(ts("2022-06-22 18:18:29.015"), "2022-06-22T18:18:29.015Z");
        assert_eq!(ts("2022-06-22T18:18:29"), "2022-06-22T18:18:29.000Z");
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("").is_err());
    }

    #[test]
    fn sniff_tells_the_three_shapes_apart() {
        assert!(matches!(
            sniff(r#"{"uuid":"u","eventType":"user.session.start"}"#),
            Ok(Shape::SystemLog { event_type }) if event_type == "user.session.start"
        ));
        assert!(matches!(
            sniff(r#"{"eventtype":"user.mfa.factor.reset_all"}"#),
            Ok(Shape::SystemLog { event_type }) if event_type == "user.mfa.factor.reset_all"
        ));
        assert!(matches!(
            sniff(r#"{"eventType":"com.okta.event_hook","data":{"events":[{},{}]}}"#),
            Ok(Shape::EventHook { events }) if events.len() == 2
        ));
        assert!(matches!(
            sniff(r#"{"eventId":"tev1","action":{"objectType":"core.user.factor.activate"}}"#),
            Ok(Shape::EventsApi { object_type }) if object_type == "core.user.factor.activate"
        ));
    }

    #[test]
    fn sniff_says_what_is_missing() {
        let err = |json: &str| sniff(json).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(r#"{"hello":"world"}"#).contains("no `eventType`"));
        assert!(err(r#""a string""#).contains("expected a JSON object"));
        assert!(err(r#"{"eventType":"com.okta.event_hook"}"#).contains("without `data`"));
        assert!(
            err(r#"{"eventType":"com.okta.event_hook","data":{"events":3}}"#)
                .contains("data.events")
        );
        assert!(err(r#"{"eventType":42}"#).contains("unexpected field value"));
        assert!(err(r#"{"eventType":"x"} trailing"#).starts_with("not valid JSON"));
        assert!(err(r#"{"eventType":"#).starts_with("not valid JSON"));
    }
}
