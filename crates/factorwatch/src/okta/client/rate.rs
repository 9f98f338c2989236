//! Okta's rate limits from the client's side: read `X-Rate-Limit-*` on every response, slow down
//! before the bucket is empty, and after a 429 wait for the reset measured against the server's
//! own `Date` (clocks differ). Pure: callers pass what the headers said.

use std::time::Duration;

/// What one response said about its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Epoch seconds.
    pub reset: Option<i64>,
    /// The server's `Date`, epoch seconds.
    pub date: Option<i64>,
}

/// The longest wait a reset may impose (Okta windows are a minute).
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// How long to wait after a 429: until the reset, by the server's clock, plus a second.
pub fn after_429(r: &Reading) -> Duration {
    match (r.reset, r.date) {
        (Some(reset), Some(date)) => secs(reset.saturating_sub(date).max(0).saturating_add(1)),
        // Without the headers Okta documents, back off a full window.
        _ => Duration::from_secs(60),
    }
}

/// How long to wait before the next request to a bucket: nothing while there is room; until the
/// reset (by the server's clock, plus a second) once one request is left. The whole bucket is
/// used, so a backfill runs at Okta's ceiling: sharing it with the org's other clients is what
/// Okta's per-token limit does (a token may use half of each bucket by default, and its answers
/// then say so), and the request kept back covers a reading a second out of date.
pub fn before_next(r: &Reading) -> Duration {
    match (r.limit, r.remaining, r.reset, r.date) {
        (Some(_), Some(remaining), Some(reset), Some(date)) if remaining <= RESERVE => {
            secs(reset.saturating_sub(date).max(0).saturating_add(1))
        }
        _ => Duration::ZERO,
    }
}

/// Requests of a bucket never used.
pub const RESERVE: u64 = 1;

/// The reading once one more request is on its way: requests in flight at once (the notices'
/// lookups) each take one from what is left before their answers come back.
pub fn taken(r: &Reading) -> Reading {
    Reading {
        remaining: r.remaining.map(|n| n.saturating_sub(1)),
        ..*r
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64).min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(limit: u64, remaining: u64, reset: i64, date: i64) -> Reading {
        Reading {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(reset),
            date: Some(date),
        }
    }

    #[test]
    fn waits_for_the_reset_by_the_server_clock() {
        // The server's clock is what counts, whatever ours says.
        assert_eq!(
            after_429(&reading(120, 0, 1_000_030, 1_000_000)),
            Duration::from_secs(31)
        );
        assert_eq!(
            after_429(&reading(120, 0, 1_000_000, 1_000_010)),
            Duration::from_secs(1)
        );
        assert_eq!(
            after_429(&Reading {
                limit: None,
                remaining: None,
                reset: None,
                date: None
            }),
            Duration::from_secs(60)
        );
        assert_eq!(after_429(&reading(120, 0, 2_000_000, 1_000_000)), MAX_WAIT);
    }

    #[test]
    fn uses_the_bucket_down_to_its_last_request() {
        assert_eq!(
            before_next(&reading(120, 50, 1_000_030, 1_000_000)),
            Duration::ZERO
        );
        assert_eq!(
            before_next(&reading(120, 2, 1_000_030, 1_000_000)),
            Duration::ZERO
        );
        assert_eq!(
            before_next(&reading(120, 1, 1_000_030, 1_000_000)),
            Duration::from_secs(31)
        );
        assert_eq!(
            before_next(&reading(5, 0, 1_000_002, 1_000_000)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn requests_in_flight_count_against_what_is_left() {
        let r = reading(120, 3, 1_000_030, 1_000_000);
        let one = taken(&r);
        assert_eq!(before_next(&one), Duration::ZERO);
        let two = taken(&one);
        assert_eq!(
            before_next(&two),
            Duration::from_secs(31),
            "two requests in flight leave one: the next waits"
        );
        assert_eq!(taken(&reading(120, 0, 1, 1)).remaining, Some(0));
    }
}
