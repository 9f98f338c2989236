//! Okta's rate limits: per-bucket windows of 60 s, reported on every response
//! (`X-Rate-Limit-Limit`, `-Remaining`, `-Reset` in epoch seconds). Pure: the caller passes the
//! clock.

use std::collections::HashMap;

/// Requests per minute per bucket; defaults from Okta's published table (Workforce column,
/// API-NOTES §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `/api/v1/logs`.
    pub logs: u32,
    /// `/api/v1/events` (its own bucket since 2020).
    pub events: u32,
    /// `GET /api/v1/users/{idOrLogin}`.
    pub user_get: u32,
    /// The rest of `/api/v1/users*` (factors included).
    pub users: u32,
    /// Everything else, `/oauth2/v1/token` and `/api/v1/eventHooks` included.
    pub other: u32,
    /// Window length in seconds: Okta's are 60; tests shorten them to see a reset quickly.
    pub window_secs: i64,
    /// The share of each bucket (percent) the client's API token or OAuth app may use: Okta's
    /// per-token limit, 50 by default in a real org; its answers report this share as the limit.
    /// 100 (this default) is an org whose admin gave the token the whole bucket.
    pub token_share: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            logs: 120,
            events: 100,
            user_get: 2000,
            users: 600,
            other: 1200,
            window_secs: 60,
            token_share: 100,
        }
    }
}

/// The bucket a request falls in, and the limit that applies to the client: its token's share.
pub fn bucket(limits: &RateLimits, method: &str, path: &str) -> (&'static str, u32) {
    let (name, limit) = org_bucket(limits, method, path);
    let share = u64::from(limits.token_share.clamp(1, 100));
    let limit = (u64::from(limit) * share / 100).max(1);
    (name, u32::try_from(limit).unwrap_or(u32::MAX))
}

/// The bucket a request falls in, and its org-wide limit.
fn org_bucket(limits: &RateLimits, method: &str, path: &str) -> (&'static str, u32) {
    if path == "/api/v1/logs" {
        return ("/api/v1/logs", limits.logs);
    }
    if path == "/api/v1/events" {
        return ("/api/v1/events", limits.events);
    }
    if let Some(rest) = path.strip_prefix("/api/v1/users/") {
        if method == "GET" && !rest.is_empty() && !rest.contains('/') {
            return ("/api/v1/users/{idOrLogin}", limits.user_get);
        }
        return ("/api/v1/users*", limits.users);
    }
    ("/api/v1*", limits.other)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub limit: u32,
    pub remaining: u32,
    /// Epoch seconds when the window resets.
    pub reset: i64,
    pub allowed: bool,
}

#[derive(Debug, Default)]
pub struct Windows {
    windows: HashMap<&'static str, (i64, u32)>,
}

impl Windows {
    /// Counts one request against `bucket`; a refused request does not use up the window.
    pub fn take(&mut self, bucket: &'static str, limit: u32, window: i64, now: i64) -> Verdict {
        let (reset, used) = self.windows.entry(bucket).or_insert((now + window, 0));
        if now >= *reset {
            *reset = now + window;
            *used = 0;
        }
        let allowed = *used < limit;
        if allowed {
            *used += 1;
        }
        Verdict {
            limit,
            remaining: limit.saturating_sub(*used),
            reset: *reset,
            allowed,
        }
    }

    pub fn clear(&mut self) {
        self.windows.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_share_of_each_bucket() {
        let half = RateLimits {
            token_share: 50,
            ..RateLimits::default()
        };
        assert_eq!(bucket(&half, "GET", "/api/v1/logs"), ("/api/v1/logs", 60));
        assert_eq!(
            bucket(&RateLimits::default(), "GET", "/api/v1/logs"),
            ("/api/v1/logs", 120)
        );
        let tiny = RateLimits {
            logs: 1,
            token_share: 1,
            ..RateLimits::default()
        };
        assert_eq!(bucket(&tiny, "GET", "/api/v1/logs").1, 1);
    }

    #[test]
    fn each_bucket_has_its_window() {
        let mut w = Windows::default();
        let v: Vec<Verdict> = (0..3).map(|_| w.take("a", 2, 60, 1000)).collect();
        assert_eq!(
            v.iter()
                .map(|v| (v.remaining, v.allowed))
                .collect::<Vec<_>>(),
            [(1, true), (0, true), (0, false)]
        );
        assert!(v.iter().all(|v| v.reset == 1060 && v.limit == 2));
        assert!(
            w.take("b", 2, 60, 1000).allowed,
            "another bucket is untouched"
        );
        let after = w.take("a", 2, 60, 1060);
        assert_eq!(
            (after.allowed, after.remaining, after.reset),
            (true, 1, 1120)
        );
    }

    #[test]
    fn paths_fall_in_okta_buckets() {
        let l = RateLimits::default();
        assert_eq!(bucket(&l, "GET", "/api/v1/logs"), ("/api/v1/logs", 120));
        assert_eq!(bucket(&l, "GET", "/api/v1/events"), ("/api/v1/events", 100));
        assert_eq!(
            bucket(&l, "GET", "/api/v1/users/00u1"),
            ("/api/v1/users/{idOrLogin}", 2000)
        );
        assert_eq!(
            bucket(&l, "GET", "/api/v1/users/00u1/factors"),
            ("/api/v1/users*", 600)
        );
        assert_eq!(bucket(&l, "POST", "/api/v1/eventHooks"), ("/api/v1*", 1200));
    }
}
