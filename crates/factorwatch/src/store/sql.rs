//! What the SQL stores share, whatever the database: errors, times as milliseconds, the outbox's
//! select, and reading a due row or a report from a row of either database.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Due, StoreError};
use crate::record::Item;
use crate::report::Report;

/// Rows per multi-row statement, under both databases' bound-parameter limits. Powers of two, as
/// [`shaped`] needs.
pub(super) const CHANGES_PER_STATEMENT: usize = 512;
pub(super) const OUTBOX_ROWS_PER_STATEMENT: usize = 1024;
pub(super) const IDS_PER_STATEMENT: usize = 1024;

/// `items` in slices of `max` (a power of two), the rest in falling powers of two: 700 rows go
/// as 512, 128, 32, 16, 8 and 4. A multi-row statement built per slice then has one of a few
/// texts, each parsed once per connection and kept in its statement cache, instead of a text of
/// its own parsed and planned at every call (SQLite's parser was 5% of the instructions of
/// end-to-end.sh's same-filter `run --once`, by callgrind).
pub(super) fn shaped<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(max.is_power_of_two());
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= max {
            max
        } else {
            1 << rest.len().ilog2()
        };
        let (slice, tail) = rest.split_at(n);
        rest = tail;
        Some(slice)
    })
}

/// An `IN (…)` list's items, the last repeated up to the next power of two (a value listed twice
/// selects what it selects once): the statement then has one of a few texts, kept prepared as
/// [`shaped`]'s are.
pub(super) fn padded<T>(items: &[T]) -> impl Iterator<Item = &T> {
    let pad = items.len().next_power_of_two() - items.len();
    items
        .iter()
        .chain(std::iter::repeat_n(items.last(), pad).flatten())
}

/// Statements kept prepared per connection: every shape of every multi-row statement
/// ([`shaped`], [`padded`]: up to 11 each) and the fixed ones, with room.
pub(super) const STATEMENT_CACHE: usize = 256;

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

/// An outbox row with its change or finding, as [`due_row`] reads it: `with_event` with each
/// change's Okta event, `without_event` with `''` in its place (SQLite then never reads the
/// event's overflow pages, nor the driver copies it).
macro_rules! due_select {
    (with_event) => {
        due_select!(@ "COALESCE(c.raw, '')")
    };
    (without_event) => {
        due_select!(@ "''")
    };
    (@ $raw:literal) => {
        concat!(
            "SELECT o.id, o.org, o.event_id, o.destination, o.attempts, o.kind,
                COALESCE(c.record, f.record), ",
            $raw,
            ", COALESCE(c.received_at, f.created_at)
         FROM outbox o
         LEFT JOIN changes c ON o.kind = 'change' AND c.org = o.org AND c.event_id = o.event_id
         LEFT JOIN findings f ON o.kind = 'finding' AND f.org = o.org AND f.id = o.event_id"
        )
    };
}
pub(super) use due_select;

/// [`due_select`] followed by `tail` (a literal), with each change's Okta event if `with_event`.
macro_rules! due_query {
    ($with_event:expr, $tail:literal) => {
        if $with_event {
            concat!(due_select!(with_event), $tail)
        } else {
            concat!(due_select!(without_event), $tail)
        }
    };
}
pub(super) use due_query;

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
    let (item, record) = match (kind.as_str(), record) {
        (_, None) => (Err(format!("the stored {kind} is missing")), None),
        ("finding", Some(text)) => (
            serde_json::from_str(&text)
                .map(Item::Finding)
                .map_err(|e| format!("stored finding unreadable: {e}")),
            None,
        ),
        // Read whole even when its text is sent as it is: a record that cannot be read is
        // refused, not passed on.
        (_, Some(text)) => match serde_json::from_str(&text) {
            Ok(change) => (Ok(Item::Change(change)), Some(text)),
            Err(e) => (Err(format!("stored record unreadable: {e}")), None),
        },
    };
    Due {
        id: r.get(0),
        org: r.get(1),
        event_id: r.get(2),
        destination: r.get(3),
        attempts: r.get::<i64, _>(4).try_into().unwrap_or(u32::MAX),
        item,
        record,
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

#[cfg(test)]
mod tests {
    use super::{padded, shaped};

    #[test]
    fn padded_lists_repeat_the_last_item_up_to_a_power_of_two() {
        let items = [1, 2, 3, 4, 5];
        assert_eq!(
            padded(&items).copied().collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 5, 5, 5]
        );
        assert_eq!(padded(&items[..4]).count(), 4);
        assert_eq!(padded(&items[..1]).count(), 1);
        assert_eq!(padded::<i32>(&[]).count(), 0);
    }

    #[test]
    fn shaped_slices_keep_every_item_in_order_in_few_lengths() {
        for n in [0usize, 1, 2, 3, 7, 8, 9, 700, 1024, 1025, 3000] {
            let items: Vec<usize> = (0..n).collect();
            let slices: Vec<&[usize]> = shaped(&items, 512).collect();
            assert_eq!(slices.concat(), items, "{n} items");
            for s in &slices {
                assert!(
                    s.len().is_power_of_two() && s.len() <= 512,
                    "{n}: a slice of {}",
                    s.len()
                );
            }
            // Full slices first, then each smaller length at most once.
            let tail: Vec<usize> = slices
                .iter()
                .map(|s| s.len())
                .filter(|&l| l < 512)
                .collect();
            assert!(tail.windows(2).all(|w| w[0] > w[1]), "{n}: {tail:?}");
        }
        let items: Vec<usize> = (0..700).collect();
        let lengths: Vec<usize> = shaped(&items, 512).map(|s| s.len()).collect();
        assert_eq!(lengths, [512, 128, 32, 16, 8, 4]);
    }
}
