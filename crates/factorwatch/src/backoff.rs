//! Exponential backoff with full jitter (AWS's "full jitter"): the n-th retry waits a random time
//! between zero and min(cap, base × 2ⁿ), so many clients failing together do not retry together.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The wait before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX))
            .min(self.cap);
        let ms = ceiling.as_millis().min(u128::from(u64::MAX)) as u64;
        // Never zero: at least a tenth of the base, so a retry loop cannot spin.
        let floor = (self.base.as_millis() as u64 / 10).max(1);
        Duration::from_millis(rng.gen_range(floor..=ms.max(floor)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn delays_grow_then_stay_under_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        };
        let mut rng = StdRng::seed_from_u64(1);
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(100 * 2u64.pow(attempt.min(20))).min(b.cap);
            for _ in 0..50 {
                let d = b.delay(attempt, &mut rng);
                assert!(
                    d >= Duration::from_millis(10) && d <= ceiling,
                    "{attempt}: {d:?}"
                );
            }
        }
        let late: Vec<Duration> = (0..200).map(|_| b.delay(10, &mut rng)).collect();
        assert!(
            late.iter().any(|d| *d > Duration::from_secs(3)),
            "jitter spans the range"
        );
    }
}
