//! Shared ticks for timers that need not fire to the millisecond. An MSSP's thousands of
//! caught-up pollers each wait out their 15 s from their own moment: woken one by one, they woke
//! a thread 133 times a second for one request each. Put off to a tick every timer shares, the
//! polls due together go out in one wake-up, and their answers and commits come back together
//! (2,000 idle orgs: 5.1% → 1.4% of a core, 448 → 114 context switches a second; live: 6.2% →
//! 5.5%; `scripts/bench/many-orgs.sh`, before and after, same machine).

use std::time::Duration;

use tokio::time::Instant;

/// The longest a timer is put off.
pub const TICK: Duration = Duration::from_millis(500);

/// `deadline` put off to the next shared tick: of [`TICK`], or of a 30th of `period` (the
/// timer's usual wait) if shorter, so a timer is late by less than a 30th of its wait.
pub fn on_tick(deadline: Instant, period: Duration) -> Instant {
    // Ticks count from one instant of the process, so every timer's fall together.
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let origin = Instant::from_std(*ORIGIN.get_or_init(std::time::Instant::now));
    let tick = TICK.min(period / 30).as_nanos();
    let since = deadline.saturating_duration_since(origin).as_nanos();
    if tick == 0 || since == 0 {
        return deadline;
    }
    let ticks = since.div_ceil(tick);
    let aligned = u64::try_from(ticks.saturating_mul(tick))
        .map(|n| origin + Duration::from_nanos(n))
        .unwrap_or(deadline);
    aligned.max(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_due_within_a_tick_wake_together_and_never_early() {
        let interval = Duration::from_secs(15);
        let now = tokio::time::Instant::now();
        let mut woken = std::collections::BTreeSet::new();
        // 2,000 deadlines a millisecond apart (two seconds' worth of an MSSP's polls).
        for ms in 0..2_000u64 {
            let due = now + Duration::from_millis(ms) + Duration::from_micros(ms * 7 % 1_000);
            let at = on_tick(due, interval);
            assert!(at >= due, "woken before it was due");
            assert!(at - due < TICK, "put off by a tick or more: {:?}", at - due);
            woken.insert(at);
        }
        // Two seconds of deadlines fall on at most five half-second ticks, not 2,000 wake-ups.
        assert!(woken.len() <= 5, "{} distinct wake-ups", woken.len());
        // A short interval (tests, a fast-polling org) is put off by a 30th of it at most.
        let short = Duration::from_millis(300);
        for ms in 0..100u64 {
            let due = now + Duration::from_micros(ms * 1_013);
            let at = on_tick(due, short);
            assert!(at >= due && at - due < short / 30);
        }
    }
}
