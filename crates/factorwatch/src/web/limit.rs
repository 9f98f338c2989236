//! A fixed-window request limit per key (a link, a client address): enough to stop a script
//! from hammering one link or walking many, without a dependency or shared state between
//! replicas (each allows its own share). Bounded: when full of live keys, new keys are refused
//! rather than let memory grow.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Limiter {
    per_window: u32,
    window: Duration,
    max_keys: usize,
    seen: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub fn new(per_window: u32, window: Duration, max_keys: usize) -> Limiter {
        Limiter {
            per_window: per_window.max(1),
            window,
            max_keys: max_keys.max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request for `key`; false when over the limit (or when the table is full).
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if !seen.contains_key(key) && seen.len() >= self.max_keys {
            let window = self.window;
            seen.retain(|_, (start, _)| now.duration_since(*start) < window);
            if seen.len() >= self.max_keys {
                return false;
            }
        }
        let entry = seen.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.per_window
    }

    /// Seconds until `key` may try again (for `Retry-After`).
    pub fn retry_after(&self, key: &str, now: Instant) -> u64 {
        self.seen
            .lock()
            .ok()
            .and_then(|s| s.get(key).map(|(start, _)| *start))
            .map(|start| {
                self.window
                    .saturating_sub(now.duration_since(start))
                    .as_secs()
                    .max(1)
            })
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_share_per_window_and_the_table_stays_bounded() {
        let l = Limiter::new(3, Duration::from_secs(60), 2);
        let t = Instant::now();
        assert!((0..3).all(|_| l.allow("a", t)));
        assert!(!l.allow("a", t));
        assert!(l.allow("b", t), "another key has its own share");
        assert!(!l.allow("c", t), "full of live keys: refused");
        let later = t + Duration::from_secs(61);
        assert!(l.allow("a", later), "a new window");
        assert!(l.allow("c", later), "expired keys make room");
        assert!(l.retry_after("a", later) >= 59);
    }
}
