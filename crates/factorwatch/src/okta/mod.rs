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

/// The `eventType` of an event in a System Log page, found by a scan of its top-level keys
/// (strings are skipped with `memchr`, nothing is built). None whenever the scan cannot be sure —
/// not an object, no `eventType` at the top, a top-level key or that value written with escapes,
/// the key twice, a value that is not a string: the caller then goes the slow way ([`sniff`]),
/// which refuses what must be refused. It runs on every event a poller reads.
pub fn event_type_of(json: &str) -> Option<&str> {
    let b = json.as_bytes();
    let start = skip_space(b, 0);
    if b.get(start) != Some(&b'{') {
        return None;
    }
    let (end, event_type) = scan_value(json, start)?;
    (skip_space(b, end) == b.len())
        .then_some(event_type)
        .flatten()
}

/// One element of a page: its text, and its `eventType` when a scan of its top-level keys is
/// sure of it (as [`event_type_of`] says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageEvent<'a> {
    pub text: &'a str,
    pub event_type: Option<&'a str>,
}

/// Splits an `/api/v1/logs` (or `/api/v1/events`) page into its elements and reads each one's
/// type, in one pass over the page (strings are skipped with `memchr`; nothing is built). The
/// page must be a complete array: one cut off (an unclosed string, object or array, no `]`) is
/// refused whole, so that a poller never commits part of a page and moves past the rest. An
/// element's own syntax is checked where it is read: every one the catalog names is parsed in
/// full; the others are counted and skipped.
pub fn split_page(body: &str) -> Result<Vec<PageEvent<'_>>, String> {
    let b = body.as_bytes();
    let cut = |at: usize| format!("not a complete JSON array (at byte {at})");
    let mut i = skip_space(b, 0);
    if b.get(i) != Some(&b'[') {
        return Err("not a JSON array".into());
    }
    i = skip_space(b, i + 1);
    let mut events = Vec::with_capacity(body.len() / 1024);
    if b.get(i) == Some(&b']') {
        return match skip_space(b, i + 1) == b.len() {
            true => Ok(events),
            false => Err(cut(i + 1)),
        };
    }
    loop {
        let (end, event_type) = scan_value(body, i).ok_or_else(|| cut(i))?;
        events.push(PageEvent {
            text: body.get(i..end).ok_or_else(|| cut(i))?,
            event_type,
        });
        i = skip_space(b, end);
        match b.get(i) {
            Some(b',') => i = skip_space(b, i + 1),
            Some(b']') if skip_space(b, i + 1) == b.len() => return Ok(events),
            _ => return Err(cut(i)),
        }
    }
}

/// The end of the value starting at `start` (a non-space byte) and, for an object, its
/// top-level `eventType` when sure of it. None when the value is cut off or unbalanced.
fn scan_value(json: &str, start: usize) -> Option<(usize, Option<&str>)> {
    let b = json.as_bytes();
    let object = b.get(start) == Some(&b'{');
    let mut depth = 0usize;
    let mut key_next = false;
    let mut found: Option<&str> = None;
    let mut unsure = false;
    let mut i = start;
    loop {
        match *b.get(i)? {
            b'"' => {
                let end = string_end(b, i)?;
                if depth == 0 {
                    return Some((end + 1, None));
                }
                let is_key = object && depth == 1 && key_next;
                let key = &b[i + 1..end];
                i = end + 1;
                if !is_key {
                    continue;
                }
                key_next = false;
                if key.contains(&b'\\') {
                    unsure = true;
                    continue;
                }
                // Both spellings `sniff` reads: either twice is refused there, unsure here.
                if key == b"eventType" || key == b"eventtype" {
                    let colon = skip_space(b, i);
                    if b.get(colon) != Some(&b':') {
                        return None;
                    }
                    let v = skip_space(b, colon + 1);
                    if b.get(v) != Some(&b'"') {
                        // Not a string: the general way decides what it is.
                        unsure = true;
                        i = v;
                        continue;
                    }
                    let v_end = string_end(b, v)?;
                    let value = json.get(v + 1..v_end)?;
                    if found.is_some() || value.contains('\\') {
                        unsure = true;
                    } else {
                        found = Some(value);
                    }
                    i = v_end + 1;
                }
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                key_next = object && depth == 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some((i + 1, if unsure { None } else { found }));
                }
            }
            b',' if depth == 1 => key_next = object,
            _ if depth == 0 => {
                // A number, true, false or null: up to the next delimiter.
                let len = b[i..]
                    .iter()
                    .position(|c| matches!(c, b',' | b']' | b'}') || c.is_ascii_whitespace())
                    .unwrap_or(b.len() - i);
                return Some((i + len, None));
            }
            _ => {}
        }
        i += 1;
    }
}

fn skip_space(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index of the quote that closes the string opening at `start`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        // Most strings of an event (keys, ids, types) are short: a plain loop beats the set-up
        // of a vector search for them; the long ones go to memchr.
        let short = i.saturating_add(16).min(b.len());
        while i < short {
            match b[i] {
                b'"' => return Some(i),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'"' {
            return Some(i);
        }
        i += 2;
    }
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

    #[test]
    fn the_quick_scan_reads_the_top_level_event_type_or_says_it_cannot() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"uuid":"a","eventType":"user.session.start","x":1}"#,
                Some("user.session.start"),
            ),
            (
                r#" { "actor" : {"eventType":"nested","d":["}","\"{"]}, "eventType" : "user.mfa.factor.activate" } "#,
                Some("user.mfa.factor.activate"),
            ),
            (r#"{"target":[{"eventType":"nested"}]}"#, None),
            (r#"{"eventType":"a","eventType":"b"}"#, None),
            (r#"{"eventType":"a","eventtype":"b"}"#, None),
            (r#"{"event\u0054ype":"a"}"#, None),
            (r#"{"eventType":"user.mfa\u002efactor.activate"}"#, None),
            (r#"{"eventType":5}"#, None),
            (r#"{"eventType":null}"#, None),
            (r#"["eventType","a"]"#, None),
            (
                r#"{"message":"a \"eventType\":\"b\"","eventType":"c"}"#,
                Some("c"),
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(event_type_of(json), *expected, "{json}");
            if let Some(t) = expected {
                assert!(
                    matches!(sniff(json), Ok(Shape::SystemLog { event_type }) if event_type == *t),
                    "{json}"
                );
            }
        }
    }
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
