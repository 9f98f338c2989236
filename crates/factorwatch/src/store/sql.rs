//! What the SQL stores share, whatever the database: errors, times as milliseconds, the outbox's
//! select, and reading a due row or a report from a row of either database.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Due, StoreError};
use crate::record::Item;
use crate::report::Report;

/// Rows per multi-row statement, under both databases' bound-parameter limits.
pub(super) const CHANGES_PER_STATEMENT: usize = 500;
pub(super) const OUTBOX_ROWS_PER_STATEMENT: usize = 1000;
pub(super) const IDS_PER_STATEMENT: usize = 1000;

pub(super) fn write_error(e: sqlx::Error) -> StoreError {
    StoreError::Write {
        detail: e.to_string(),
    }
}

pub(super) fn other(e: sqlx::Error) -> StoreError {
    StoreError::Other(e.to_string())
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

pub(super) fn parse_time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// An outbox row with its change or finding, as [`due_row`] reads it.
macro_rules! due_select {
    () => {
        "SELECT o.id, o.org, o.event_id, o.destination, o.attempts, o.kind,
                COALESCE(c.record, f.record), COALESCE(c.raw, ''), COALESCE(c.received_at, f.created_at)
         FROM outbox o
         LEFT JOIN changes c ON o.kind = 'change' AND c.org = o.org AND c.event_id = o.event_id
         LEFT JOIN findings f ON o.kind = 'finding' AND f.org = o.org AND f.id = o.event_id"
    };
}
pub(super) use due_select;

pub(super) const REPORT_COLUMNS: &str = "org, change_id, user_id, finding_id, reported_at, steps";

/// A row of [`due_select`].
pub(super) fn due_row<R: Row>(r: R) -> Due
where
    usize: ColumnIndex<R>,
    for<'a> String: Decode<'a, R::Database> + Type<R::Database>,
    for<'a> i64: Decode<'a, R::Database> + Type<R::Database>,
{
    let kind: String = r.get(5);
    let record: Option<String> = r.get(6);
    let item = match (kind.as_str(), record) {
        (_, None) => Err(format!("the stored {kind} is missing")),
        ("finding", Some(text)) => serde_json::from_str(&text)
            .map(Item::Finding)
            .map_err(|e| format!("stored finding unreadable: {e}")),
        (_, Some(text)) => serde_json::from_str(&text)
            .map(Item::Change)
            .map_err(|e| format!("stored record unreadable: {e}")),
    };
    Due {
        id: r.get(0),
        org: r.get(1),
        event_id: r.get(2),
        destination: r.get(3),
        attempts: r.get::<i64, _>(4).try_into().unwrap_or(u32::MAX),
        item,
        raw: r.get(7),
        received_at: r
            .get::<Option<i64>, _>(8)
            .and_then(from_ms)
            .unwrap_or_default(),
    }
}

/// A row of [`REPORT_COLUMNS`].
pub(super) fn report_row<R: Row>(r: R) -> Result<Report, StoreError>
where
    usize: ColumnIndex<R>,
    for<'a> String: Decode<'a, R::Database> + Type<R::Database>,
    for<'a> i64: Decode<'a, R::Database> + Type<R::Database>,
{
    let steps: String = r.get(5);
    Ok(Report {
        org: r.get(0),
        change_id: r.get(1),
        user_id: r.get(2),
        finding_id: r.get(3),
        reported_at: from_ms(r.get(4)).unwrap_or_default(),
        steps: serde_json::from_str(&steps)
            .map_err(|e| StoreError::Other(format!("a stored report is unreadable: {e}")))?,
    })
}
