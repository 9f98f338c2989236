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
/// reset once only a reserve (a tenth of the limit, at least one) is left, so that other clients
/// of the same org — the admin console, other integrations — are not starved.
pub fn before_next(r: &Reading) -> Duration {
    match (r.limit, r.remaining, r.reset, r.date) {
        (Some(limit), Some(remaining), Some(reset), Some(date)) => {
            let reserve = (limit / 10).max(1);
            if remaining <= reserve {
                secs(reset.saturating_sub(date).max(0).saturating_add(1))
            } else {
                Duration::ZERO
            }
        }
        _ => Duration::ZERO,
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
    fn slows_down_only_near_the_bottom_of_the_bucket() {
        assert_eq!(
            before_next(&reading(120, 50, 1_000_030, 1_000_000)),
            Duration::ZERO
        );
        assert_eq!(
            before_next(&reading(120, 13, 1_000_030, 1_000_000)),
            Duration::ZERO
        );
        assert_eq!(
            before_next(&reading(120, 12, 1_000_030, 1_000_000)),
            Duration::from_secs(31)
        );
        assert_eq!(
            before_next(&reading(5, 1, 1_000_002, 1_000_000)),
            Duration::from_secs(3)
        );
        assert_eq!(
            before_next(&reading(5, 2, 1_000_002, 1_000_000)),
            Duration::ZERO
        );
    }
}
