//! The System Log: what the org has persisted, and `GET /api/v1/logs` over it, with Okta's polling
//! and bounded semantics. Pure: the caller passes the clock.
//!
//! - A **polling** request (no `until`, `ASCENDING`) filters `since` on *persistence* time, orders
//!   by persistence, and always returns a `next` link, also on an empty page.
//! - A **bounded** request (anything else) filters and orders by `published` and ends without
//!   `next`. Events persisted late (after the client read past their `published`) are only seen by
//!   polling, exactly the trap Okta warns about.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::error::OktaError;
use crate::filter::{self, Filter, FilterError};

/// Okta keeps 90 days of System Log.
pub const RETENTION_DAYS: i64 = 90;
/// `since` may reach back at most 180 days.
pub const MAX_SINCE_DAYS: i64 = 180;
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Persistence order: the order events were committed to the log.
    pub seq: u64,
    pub persisted: DateTime<Utc>,
    pub published: DateTime<Utc>,
    /// Kept apart because nearly every client filters on it; anything else a filter names is
    /// read from `text` on demand, so a million events cost little more than their text.
    pub event_type: Arc<str>,
    /// The event type's number in this log (one per distinct type): a filter on the type is
    /// decided once per type, not read from each event (a cache miss per event).
    pub type_id: u32,
    /// Whether the legacy Events API also serves this event.
    pub legacy_event_type: Option<Box<str>>,
    /// The event as persisted, serialized once, so pages are served by concatenation.
    pub text: Box<str>,
}

impl StoredEvent {
    /// The event as JSON (parsed on demand).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn uuid(&self) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Id {
            uuid: Option<String>,
        }
        serde_json::from_str::<Id>(&self.text).ok()?.uuid
    }
}

#[derive(Debug, Default)]
pub struct LogStore {
    events: Vec<StoredEvent>,
    /// The distinct event types, by number, shared by the events of each type.
    types: Vec<Arc<str>>,
    type_ids: std::collections::HashMap<Arc<str>, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadEvent(pub String);

impl LogStore {
    /// Persists an event now. Without `late`, its `published` becomes now, as for an event that
    /// happens now; with `late`, the event keeps its older `published`, as for an event Okta
    /// persisted late.
    pub fn persist(
        &mut self,
        mut event: Value,
        now: DateTime<Utc>,
        late: bool,
    ) -> Result<&StoredEvent, BadEvent> {
        let Some(obj) = event.as_object_mut() else {
            return Err(BadEvent("each event must be a JSON object".into()));
        };
        if !obj.get("eventType").is_some_and(Value::is_string) {
            return Err(BadEvent("each event needs an eventType string".into()));
        }
        let seq = self.events.last().map_or(1, |e| e.seq + 1);
        let published = if late {
            let text = obj
                .get("published")
                .and_then(Value::as_str)
                .unwrap_or_default();
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    BadEvent(format!(
                        "a late event needs an RFC 3339 published, not {text:?}"
                    ))
                })?
                .with_timezone(&Utc)
        } else {
            let published = now;
            obj.insert("published".into(), Value::String(okta_time(published)));
            published
        };
        if !obj.get("uuid").is_some_and(Value::is_string) {
            obj.insert("uuid".into(), Value::String(synthetic_uuid(seq)));
        }
        obj.entry("version")
            .or_insert_with(|| Value::String("0".into()));
        // Persistence time never goes backwards, even if the clock does.
        let persisted = self.events.last().map_or(now, |e| e.persisted.max(now));
        let (event_type, type_id) = self.intern(
            obj.get("eventType")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        let legacy_event_type = obj
            .get("legacyEventType")
            .and_then(Value::as_str)
            .map(Into::into);
        self.events.push(StoredEvent {
            seq,
            persisted,
            published,
            event_type,
            type_id,
            legacy_event_type,
            text: event.to_string().into(),
        });
        self.events
            .last()
            .ok_or_else(|| BadEvent("the event was not stored".into()))
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn clear(&mut self) {
        self.events.clear();
    }

    fn intern(&mut self, event_type: &str) -> (Arc<str>, u32) {
        if let Some((t, id)) = self.type_ids.get_key_value(event_type) {
            return (t.clone(), *id);
        }
        let t: Arc<str> = Arc::from(event_type);
        let id = u32::try_from(self.types.len()).unwrap_or(u32::MAX);
        self.types.push(t.clone());
        self.type_ids.insert(t.clone(), id);
        (t, id)
    }

    /// Every event, in persistence order.
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// The events persisted after `seq`, in persistence order.
    pub fn after(&self, seq: u64) -> &[StoredEvent] {
        &self.events[self.events.partition_point(|e| e.seq <= seq)..]
    }

    /// Answers one `/api/v1/logs` request.
    pub fn query(&self, q: &LogQuery, now: DateTime<Utc>) -> Result<Page<'_>, OktaError> {
        self.query_with(q, now, false)
    }

    /// [`LogStore::query`]; with `repeat_last`, a polling page's `next` link re-serves its last
    /// event (the duplicate-across-pages fault).
    pub fn query_with(
        &self,
        q: &LogQuery,
        now: DateTime<Utc>,
        repeat_last: bool,
    ) -> Result<Page<'_>, OktaError> {
        let req = Request::parse(q, now)?;
        let oldest = now - Duration::days(RETENTION_DAYS);
        let has_keywords = |e: &StoredEvent| {
            req.keywords.is_empty() || {
                let text = e.text.to_lowercase();
                req.keywords.iter().all(|k| text.contains(k.as_str()))
            }
        };
        let type_only = req
            .filter
            .as_ref()
            .is_some_and(|f| f.comparisons().iter().all(|(p, _)| *p == ["eventType"]));
        // A filter on the event type alone is decided once per distinct type (on a one-field
        // object), not read from each event.
        let by_type: Vec<bool> = match &req.filter {
            Some(f) if type_only => self
                .types
                .iter()
                .map(|t| f.matches(&serde_json::json!({ "eventType": &**t })))
                .collect(),
            _ => Vec::new(),
        };
        let matches = |f: &Filter, e: &StoredEvent| {
            if type_only {
                by_type.get(e.type_id as usize).copied().unwrap_or(false)
            } else {
                f.matches(&e.value())
            }
        };
        let wanted = |e: &StoredEvent| {
            e.published >= oldest
                && req.filter.as_ref().is_none_or(|f| matches(f, e))
                && has_keywords(e)
        };

        if req.polling {
            let start = match req.after {
                Some(Cursor::Polling(seq)) => self.events.partition_point(|e| e.seq <= seq),
                Some(Cursor::Bounded(..)) => return Err(bad_after()),
                None => {
                    let since = req.since.unwrap_or(now - Duration::days(7));
                    self.events.partition_point(|e| e.persisted < since)
                }
            };
            let mut events = Vec::new();
            // The position the next request resumes after: the last event returned on a full
            // page, else everything scanned.
            let mut resume = match start {
                0 => req.after_seq().unwrap_or(0),
                i => self.events[i - 1].seq,
            };
            for e in &self.events[start..] {
                if events.len() == req.limit {
                    break;
                }
                resume = e.seq;
                if wanted(e) {
                    events.push(e);
                }
            }
            if repeat_last && let Some(last) = events.last() {
                resume = last.seq - 1;
            }
            return Ok(Page {
                events,
                next: Some(req.next_link(Cursor::Polling(resume))),
            });
        }

        // Bounded: by published, in the order asked, resuming after the cursor's position.
        let since = match req.after {
            Some(Cursor::Bounded(_, _, since)) => {
                DateTime::<Utc>::from_timestamp_millis(since).ok_or_else(bad_after)?
            }
            _ => req.since.unwrap_or(req.until - Duration::days(7)),
        };
        let mut matching: Vec<&StoredEvent> = self
            .events
            .iter()
            .filter(|e| e.published >= since && e.published < req.until && wanted(e))
            .collect();
        matching.sort_by_key(|e| (e.published, e.seq));
        if req.descending {
            matching.reverse();
        }
        let skip = match req.after {
            Some(Cursor::Bounded(ms, seq, _)) => {
                let key = (ms, seq);
                matching
                    .iter()
                    .position(|e| {
                        let k = (e.published.timestamp_millis(), e.seq);
                        if req.descending { k < key } else { k > key }
                    })
                    .unwrap_or(matching.len())
            }
            Some(Cursor::Polling(_)) => return Err(bad_after()),
            None => 0,
        };
        let rest = &matching[skip..];
        let events: Vec<&StoredEvent> = rest.iter().take(req.limit).copied().collect();
        let next = match (rest.len() > req.limit, events.last()) {
            (true, Some(last)) => Some(req.next_link(Cursor::Bounded(
                last.published.timestamp_millis(),
                last.seq,
                since.timestamp_millis(),
            ))),
            _ => None,
        };
        Ok(Page { events, next })
    }
}

/// The query parameters of `/api/v1/logs`, as received.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LogQuery {
    pub since: Option<String>,
    pub until: Option<String>,
    pub after: Option<String>,
    pub filter: Option<String>,
    pub q: Option<String>,
    pub limit: Option<String>,
    #[serde(rename = "sortOrder")]
    pub sort_order: Option<String>,
}

/// One page: its events and, where Okta sends one, the query of its `next` link.
#[derive(Debug)]
pub struct Page<'a> {
    pub events: Vec<&'a StoredEvent>,
    /// The `next` link's query string (without `?`).
    pub next: Option<String>,
}

impl Page<'_> {
    /// The response body: a JSON array of the events.
    pub fn body(&self) -> String {
        let mut body =
            String::with_capacity(2 + self.events.iter().map(|e| e.text.len() + 1).sum::<usize>());
        body.push('[');
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&e.text);
        }
        body.push(']');
        body
    }
}

/// Opaque to clients; only ever handed out inside `next` links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Polling(u64),
    /// The last event served (`published` in ms, sequence) and the query's lower bound in ms:
    /// `since` may not accompany `after`, so the opaque cursor carries it, or a bounded query's
    /// second page would fall back to the default of 7 days before `until`.
    Bounded(i64, u64, i64),
}

impl Cursor {
    fn encode(self) -> String {
        match self {
            Cursor::Polling(seq) => format!("{seq}_1"),
            Cursor::Bounded(ms, seq, since) => format!("{ms}_{seq}_{since}_b"),
        }
    }

    fn decode(s: &str) -> Option<Cursor> {
        let parts: Vec<&str> = s.split('_').collect();
        match parts.as_slice() {
            [seq, "1"] => seq.parse().ok().map(Cursor::Polling),
            [ms, seq, since, "b"] => Some(Cursor::Bounded(
                ms.parse().ok()?,
                seq.parse().ok()?,
                since.parse().ok()?,
            )),
            _ => None,
        }
    }
}

struct Request {
    polling: bool,
    since: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
    until_param: Option<String>,
    after: Option<Cursor>,
    filter: Option<Filter>,
    filter_param: Option<String>,
    q_param: Option<String>,
    keywords: Vec<String>,
    limit: usize,
    descending: bool,
    sort_param: Option<String>,
}

impl Request {
    fn parse(q: &LogQuery, now: DateTime<Utc>) -> Result<Request, OktaError> {
        let limit = match q.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|&l| l <= MAX_LIMIT)
                .ok_or_else(|| {
                    OktaError::validation(
                        "Api validation failed: 'limit'",
                        format!("limit: The limit must be an integer between 0 and {MAX_LIMIT}."),
                    )
                })?,
        };
        let descending = match q.sort_order.as_deref() {
            None | Some("ASCENDING") => false,
            Some("DESCENDING") => true,
            Some(other) => {
                return Err(OktaError::validation(
                    "Api validation failed: 'sortOrder'",
                    format!("sortOrder: '{other}' is not one of ASCENDING, DESCENDING."),
                ));
            }
        };
        let since = q
            .since
            .as_deref()
            .map(|s| timestamp("since", s))
            .transpose()?;
        let until = q
            .until
            .as_deref()
            .map(|s| timestamp("until", s))
            .transpose()?;
        if let Some(since) = since
            && since < now - Duration::days(MAX_SINCE_DAYS)
        {
            return Err(OktaError::invalid_parameter(
                "Invalid parameter: The since parameter is over 180 days prior to the current day.",
            ));
        }
        if q.since.is_some() && q.after.is_some() {
            return Err(OktaError::validation(
                "Api validation failed: 'since'",
                "since: The since and after parameters cannot be used together.",
            ));
        }
        let after = q
            .after
            .as_deref()
            .map(|a| Cursor::decode(a).ok_or_else(bad_after))
            .transpose()?;
        let filter = q
            .filter
            .as_deref()
            .map(|f| {
                filter::parse(f).map_err(|e| match e {
                    FilterError::Invalid { .. } => OktaError::invalid_parameter(e.to_string()),
                    FilterError::Unsupported { .. } => {
                        OktaError::unsupported_operator(e.to_string())
                    }
                })
            })
            .transpose()?;
        let keywords: Vec<String> =
            q.q.as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_lowercase)
                .collect();
        if keywords.len() > 10 || keywords.iter().any(|k| k.chars().count() > 40) {
            return Err(OktaError::validation(
                "Api validation failed: 'q'",
                "q: Freeform search cannot contain items longer than 40 characters or more than 10 items.",
            ));
        }
        // Hyphenated values also match on their parts: searching "a-b" finds "a" and "b".
        let keywords = keywords
            .iter()
            .flat_map(|k| {
                k.split('-')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(Request {
            polling: until.is_none() && !descending,
            since,
            until: until.unwrap_or(now),
            until_param: q.until.clone(),
            after,
            filter,
            filter_param: q.filter.clone(),
            q_param: q.q.clone(),
            keywords,
            limit,
            descending,
            sort_param: q.sort_order.clone(),
        })
    }

    fn after_seq(&self) -> Option<u64> {
        match self.after {
            Some(Cursor::Polling(seq)) => Some(seq),
            _ => None,
        }
    }

    /// The `next` query: the original parameters (but `since`, which may not accompany `after`)
    /// and the new cursor.
    fn next_link(&self, cursor: Cursor) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(q) = &self.q_param {
            s.append_pair("q", q);
        }
        if let Some(f) = &self.filter_param {
            s.append_pair("filter", f);
        }
        if let Some(o) = &self.sort_param {
            s.append_pair("sortOrder", o);
        }
        s.append_pair("limit", &self.limit.to_string());
        if let Some(u) = &self.until_param {
            s.append_pair("until", u);
        }
        s.append_pair("after", &cursor.encode());
        s.finish()
    }
}

fn bad_after() -> OktaError {
    OktaError::validation(
        "Api validation failed: 'after'",
        "after: The cursor is not valid.",
    )
}

fn timestamp(name: &str, value: &str) -> Result<DateTime<Utc>, OktaError> {
    DateTime::parse_from_rfc3339(value).map(|t| t.with_timezone(&Utc)).map_err(|_| {
        OktaError::validation(
            format!("Api validation failed: '{name}'"),
            format!(
                "{name}: The date format in your query is not recognized. Please enter dates using ISO8601 string format.. '{value}'"
            ),
        )
    })
}

/// Okta's timestamp format: `2017-05-03T16:22:18.123Z`.
pub fn okta_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn synthetic_uuid(seq: u64) -> String {
    let hi = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:08x}-{:04x}-11f0-{:04x}-{:012x}",
        (hi >> 32) as u32,
        (hi >> 16) as u16,
        0x8000 | (seq as u16 & 0x3fff),
        seq & 0xffff_ffff_ffff
    )
}
