//! From what a source read (an `/api/v1/logs` page, an Event Hook delivery, an `/api/v1/events`
//! page) to the batch the store commits: classified changes with their destinations, the values
//! that could not be classified, how many events were read and the newest `published`. Pure.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::route::Routing;
use crate::classify::{Classifier, Within};
use crate::detect::{PhoneKey, Signal, What, signal};
use crate::input;
use crate::okta::log_event::LogEvent;
use crate::okta::parse_timestamp;
use crate::store::{Batch, NewChange, NewSignal, Reject, SourceKind};

#[derive(Debug, Clone)]
pub struct Ingest {
    pub classifier: Classifier,
    pub routing: Routing,
    /// When the detections are on: the key phone numbers are hashed with in their journal.
    pub detections: Option<PhoneKey>,
}

#[derive(Deserialize)]
struct EventType<'a> {
    #[serde(borrow, rename = "eventType", alias = "eventtype")]
    event_type: std::borrow::Cow<'a, str>,
}

/// What ingest reads of every value, in one pass: its `published`, and — for an Event Hook
/// delivery — its events.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    published: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<HookData<'a>>,
}

#[derive(Deserialize)]
struct Published<'a> {
    #[serde(borrow, default)]
    published: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct HookData<'a> {
    #[serde(borrow)]
    events: Vec<&'a serde_json::value::RawValue>,
}

/// Why a poller's page was refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the page is not a complete JSON array (cut off, or not Okta's answer): {0}")]
pub struct PageError(String);

impl Ingest {
    /// Classifies every value in `body` (a hook delivery, an export: any layout `classify`
    /// reads); `cursor` is where the source resumes after it. A value that cannot be read is
    /// kept as a reject.
    pub fn batch(&self, source: SourceKind, body: &str, cursor: Option<String>) -> Batch {
        let mut batch = empty(source, cursor);
        // A hook delivery's envelope is opened to count and date its events.
        let open_envelopes = source == SourceKind::EventHook;
        let mut last = None;
        input::for_each_value(body.as_bytes(), |position, value| {
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    batch.rejects.push(Reject {
                        error: format!("{position}: {e}"),
                        raw: String::new(),
                    });
                    return;
                }
            };
            last = Some(value);
            self.value(&mut batch, value, position, open_envelopes);
        });
        if !open_envelopes {
            date_by_last(&mut batch, last);
        }
        date_by_changes(&mut batch);
        batch
    }

    /// Classifies a poller's page, a JSON array of events. Splitting the array reads every byte
    /// of it, so a page cut off or not JSON is refused here, whole: the poller fetches it again
    /// rather than commit part of it and move its cursor past the rest.
    pub fn page(
        &self,
        source: SourceKind,
        body: &str,
        cursor: Option<String>,
    ) -> Result<Batch, PageError> {
        let events = crate::okta::split_page(body).map_err(PageError)?;
        let mut batch = empty(source, cursor);
        for (i, e) in events.iter().enumerate() {
            let position = input::Position::Index(i);
            // A System Log event's type is read once, by the split, for every use; anything
            // the split is unsure of goes the general way.
            match (source, e.event_type) {
                (SourceKind::SystemLog, Some(event_type)) => {
                    self.log_event(&mut batch, e.text, event_type, position)
                }
                _ => self.value(&mut batch, e.text, position, false),
            }
        }
        date_by_last(&mut batch, events.last().map(|e| e.text));
        date_by_changes(&mut batch);
        Ok(batch)
    }

    /// One System Log event of a poller's page, its type known: only what its type calls for is
    /// parsed (the context it is, the evidence it gives, the change it makes).
    fn log_event(
        &self,
        batch: &mut Batch,
        event: &str,
        event_type: &str,
        position: input::Position,
    ) {
        batch.events_seen += 1;
        if crate::okta::catalog::is_context(event_type)
            && let Some(c) = context_event(event)
        {
            batch.context.push(c);
        }
        if self.detections.is_some()
            && let Some(evidence) = crate::okta::catalog::evidence_of(event_type)
        {
            let signal = match LogEvent::parse(event) {
                Ok(parsed) => signal::from_evidence(&parsed, evidence, event),
                Err(_) => Ok(None),
            };
            match signal {
                Ok(Some(s)) => push_signal(batch, &s),
                Ok(None) => {}
                Err(err) => batch.rejects.push(Reject {
                    error: format!("{position}: {err}"),
                    raw: event.to_owned(),
                }),
            }
        }
        if let Some(verdict) = self.classifier.classify_log_json(event, event_type) {
            self.verdict(batch, &position, verdict, event);
        }
    }

    /// Keeps a classifier's verdict: the change with its record, journal entry and
    /// destinations, or a reject.
    fn verdict(
        &self,
        batch: &mut Batch,
        at: &dyn std::fmt::Display,
        verdict: Result<crate::classify::Classified<'_>, crate::classify::ClassifyError>,
        raw: &str,
    ) {
        match verdict {
            Ok(c) => {
                let record = match serde_json::to_string(&c.change) {
                    Ok(r) => r,
                    Err(e) => {
                        batch.rejects.push(Reject {
                            error: format!("{at}: the record could not be serialized: {e}"),
                            raw: c.raw.to_owned(),
                        });
                        return;
                    }
                };
                if let Some(key) = &self.detections {
                    // The event the classifier read (none from the Events API), not read again.
                    if let Some(s) = signal::from_change(&c.change, c.event.as_deref(), key) {
                        push_signal(batch, &s);
                    }
                }
                batch.changes.push(NewChange {
                    event_id: c.change.id.to_wire(),
                    event_type: c.change.event_type.clone(),
                    action: c.change.action.as_str().to_owned(),
                    published: c.change.published,
                    user_id: c.change.user.as_ref().and_then(|u| u.id.clone()),
                    destinations: self.routing.owed(&c.change),
                    record,
                    raw: c.raw.to_owned(),
                });
            }
            Err(e) => batch.rejects.push(Reject {
                error: format!("{at}: {e}"),
                raw: raw.to_owned(),
            }),
        }
    }

    fn value(&self, batch: &mut Batch, value: &str, position: input::Position, open: bool) {
        let mut published: Vec<Option<std::borrow::Cow<str>>> = Vec::new();
        let peeked = if open {
            serde_json::from_str::<Peek>(value).ok()
        } else {
            None
        };
        let peeked_hook = matches!(peeked, Some(Peek { data: Some(_), .. }));
        let events: Vec<&str> = match peeked {
            Some(Peek {
                data: Some(hook), ..
            }) => {
                for e in &hook.events {
                    published.push(
                        serde_json::from_str::<Published>(e.get())
                            .ok()
                            .and_then(|p| p.published),
                    );
                }
                hook.events.iter().map(|e| e.get()).collect()
            }
            Some(Peek { published: p, .. }) => {
                published.push(p);
                vec![value]
            }
            None => vec![value],
        };
        batch.events_seen += events.len() as u64;
        for (i, e) in events.iter().enumerate() {
            if let Some(c) = context_event(e) {
                batch.context.push(c);
            }
            if self.detections.is_some() {
                match evidence_signal(e) {
                    Ok(Some(s)) => push_signal(batch, &s),
                    Ok(None) => {}
                    Err(err) => {
                        let at = if events.len() > 1 || peeked_hook {
                            format!("{position}, data.events[{i}]")
                        } else {
                            position.to_string()
                        };
                        batch.rejects.push(Reject {
                            error: format!("{at}: {err}"),
                            raw: (*e).to_owned(),
                        });
                    }
                }
            }
        }
        for p in published.into_iter().flatten() {
            if let Ok(t) = parse_timestamp(&p) {
                batch.newest_published = newest(batch.newest_published, t);
            }
        }
        self.classifier.classify_json(value, |within, verdict| {
            let (at, raw) = match within {
                Within::Whole => (position.to_string(), value),
                Within::HookEvent(i) => (
                    format!("{position}, data.events[{i}]"),
                    events.get(i).copied().unwrap_or(value),
                ),
            };
            self.verdict(batch, &at, verdict, raw)
        });
    }
}

#[derive(Deserialize)]
struct ContextFields {
    #[serde(rename = "eventType")]
    event_type: String,
    uuid: Option<String>,
    published: Option<String>,
    #[serde(default)]
    target: Vec<TargetFields>,
}

#[derive(Deserialize)]
struct TargetFields {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The event as a [`ContextEvent`], if the catalog keeps its type as context and it is about a
/// user.
fn context_event(text: &str) -> Option<crate::store::ContextEvent> {
    // Cheap test first: nearly every event is something else.
    if !(text.contains("_notification.sent_message") || text.contains("update_primary_email")) {
        return None;
    }
    let f: ContextFields = serde_json::from_str(text).ok()?;
    if !crate::okta::catalog::is_context(&f.event_type) {
        return None;
    }
    let user_id = f
        .target
        .into_iter()
        .find(|t| t.kind.as_deref() == Some("User"))?
        .id?;
    Some(crate::store::ContextEvent {
        uuid: f.uuid?,
        event_type: f.event_type,
        user_id,
        published: parse_timestamp(f.published.as_deref()?).ok()?,
    })
}

/// The signal of an evidence event (a sign-in, a password reset…), if the event is one; an error
/// if it is one that cannot be placed in time.
fn evidence_signal(text: &str) -> Result<Option<Signal>, signal::EvidenceError> {
    let Some(evidence) = serde_json::from_str::<EventType>(text)
        .ok()
        .and_then(|t| crate::okta::catalog::evidence_of(&t.event_type))
    else {
        return Ok(None);
    };
    match LogEvent::parse(text) {
        Ok(event) => signal::from_evidence(&event, evidence, text),
        Err(_) => Ok(None),
    }
}

fn push_signal(batch: &mut Batch, s: &Signal) {
    let Ok(body) = serde_json::to_string(s) else {
        return;
    };
    batch.signals.push(NewSignal {
        uuid: s.id.clone(),
        kind: if s.what == What::SignIn {
            "sign_in"
        } else {
            "event"
        },
        published: s.published,
        body,
    });
}

fn empty(source: SourceKind, cursor: Option<String>) -> Batch {
    Batch {
        source,
        changes: Vec::new(),
        rejects: Vec::new(),
        events_seen: 0,
        newest_published: None,
        cursor,
        context: Vec::new(),
        signals: Vec::new(),
    }
}

/// A page holds events in persistence order: its last event's `published` stands for the page
/// (reading every event's would cost a parse each).
fn date_by_last(batch: &mut Batch, last: Option<&str>) {
    if let Some(Published { published: Some(p) }) =
        last.and_then(|v| serde_json::from_str::<Published>(v).ok())
        && let Ok(t) = parse_timestamp(&p)
    {
        batch.newest_published = newest(batch.newest_published, t);
    }
}

fn date_by_changes(batch: &mut Batch) {
    for c in &batch.changes {
        if let Some(t) = c.published {
            batch.newest_published = newest(batch.newest_published, t);
        }
    }
}

fn newest(a: Option<DateTime<Utc>>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(a.map_or(b, |a| a.max(b)))
}
