//! The detections in the daemon: per org, one worker reads the journal of signals the sources
//! commit (in the order they were stored), runs the [`Detector`] over them, and commits the
//! findings — each with its outbox rows, so every SIEM and the security team get it at once —
//! together with its new position in the journal, in one transaction. A crash loses nothing and
//! repeats nothing: at start the worker rebuilds the detector by reading the journal up to its
//! position again (the same events give the same state), and a finding found twice has the same
//! id.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::worker::Signals;
use crate::backoff::Backoff;
use crate::detect::{Detector, Finding, Settings, Signal};
use crate::store::{JournalEntry, NewFinding, Store, StoreError};

/// Journal entries read at once.
const PAGE: u32 = 2000;
/// How often [`watch_journals`] looks for journal entries no commit in this process told of (a
/// `replay` or `backfill` run beside the daemon): one look for every org, where a look per org
/// cost an MSSP's 2,000 orgs more than the polls that fill their journals.
pub const IDLE: Duration = Duration::from_secs(60);
/// How often each worker looks at its org's journal on a store shared by replicas, whose hook
/// receivers commit without waking this one.
pub const IDLE_SHARED: Duration = Duration::from_millis(500);
/// How long a position that sign-ins alone moved may wait in memory before it is stored (see
/// [`DetectionWorker::hold`]).
pub const HOLD_AT_MOST: Duration = Duration::from_secs(60);
/// Sign-ins to forget that a held position may gather: past it, it is stored.
const HOLD_FORGET_MAX: usize = 10_000;
/// How often sign-ins past the baseline are pruned from the journal (the sign-ins that taught the
/// detections nothing are forgotten as soon as they are read).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct DetectionWorker<S: Store> {
    pub org: String,
    pub store: S,
    pub settings: Settings,
    /// Where findings go: every SIEM sink, the security team's destinations.
    pub destinations: Vec<String>,
    pub signals: Arc<Signals>,
    /// How often it looks at the journal unasked ([`IDLE_SHARED`]): after half to all of it, at
    /// random. None: only when woken (by a commit in this process, or by [`watch_journals`]).
    pub idle: Option<Duration>,
    /// How long pages of sign-ins that made no finding may wait in memory before their position
    /// is stored ([`HOLD_AT_MOST`]); None (`run --once`): every page is stored at once.
    pub hold: Option<Duration>,
}

/// Journal pages read and observed, to be committed in one transaction: their findings, the
/// sign-ins to forget, and the position after them.
struct Pages {
    made: Vec<NewFinding>,
    forget: Vec<i64>,
    last: i64,
}

impl Pages {
    /// `self`, then `later`.
    fn then(mut self, later: Pages) -> Pages {
        self.made.extend(later.made);
        self.forget.extend(later.forget);
        Pages {
            made: self.made,
            forget: self.forget,
            last: later.last,
        }
    }
}

/// Parses a journal entry; an entry that cannot be read is skipped with a warning (it was written
/// by this program; only tampering or a newer version makes one).
fn read(org: &str, body: &str) -> Option<Signal> {
    match serde_json::from_str(body) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(org, error = %e, "a journal entry cannot be read; skipped");
            None
        }
    }
}

impl<S: Store> DetectionWorker<S> {
    /// The journal's entries after `position`, read in turn with every other org's detections.
    async fn read_journal(&self, position: i64) -> Result<Vec<JournalEntry>, StoreError> {
        // The semaphore is never closed; were it, the read goes ahead all the same.
        let _turn = self.signals.journal_reads.acquire().await.ok();
        self.store.signals_after(&self.org, position, PAGE).await
    }

    /// Rebuilds the detector from the journal up to `position` (findings already committed).
    async fn rebuild(&self, detector: &mut Detector, position: i64) -> Result<(), StoreError> {
        let mut at = 0;
        while at < position {
            let entries = self.read_journal(at).await?;
            let Some(last) = entries.last().map(|e| e.position) else {
                break;
            };
            for e in entries.iter().filter(|e| e.position <= position) {
                if let Some(s) = read(&self.org, &e.body) {
                    detector.observe(&s);
                }
            }
            at = last;
        }
        Ok(())
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let backoff = Backoff {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(30),
        };
        let mut failures = 0u32;
        // Start: where the detections stand, and the state the journal before it gives.
        let mut detector = Detector::new(&self.settings);
        let mut position = loop {
            let rebuilt = async {
                let position = self.store.detection_cursor(&self.org).await?;
                Box::pin(self.rebuild(&mut detector, position)).await?;
                Ok::<i64, StoreError>(position)
            }
            .await;
            match rebuilt {
                Ok(p) => break p,
                Err(e) => {
                    error!(org = %self.org, error = %e, "detections cannot read their journal; retrying");
                    detector = Detector::new(&self.settings);
                    failures = failures.saturating_add(1);
                    let wait = backoff.delay(failures, &mut rand::thread_rng());
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = shutdown.changed() => return,
                    }
                }
            }
        };
        failures = 0;
        let mut pruned = tokio::time::Instant::now() - PRUNE_EVERY;
        // Findings made but not yet committed (the store failed), with the entries to forget:
        // committed before reading on.
        let mut owed: Option<Pages> = None;
        // Pages of sign-ins that made no finding, observed but not stored, and since when: a
        // live org's commit would otherwise be a sync for a position alone, after every poll
        // that brought a sign-in (half of an MSSP's commits). Nothing waits on them: a notice
        // waits only for its change's entry, which is never held. Stored within `hold`, with
        // the next page that is not held, or at shutdown; a crash before that observes them
        // again at the next start (the same events give the same state and no finding).
        let mut held: Option<(Pages, tokio::time::Instant)> = None;
        // Whether the last page read was shorter than PAGE (the journal's end).
        let mut short = false;
        let journal = self.signals.journal(&self.org);
        // A page shorter than [`PAGE`] was the journal's end: the worker waits to be woken rather
        // than read again to find nothing (that second read was a fifth of an MSSP's statements).
        let mut woken = journal.notified();
        let mut at_end = false;
        loop {
            if *shutdown.borrow() {
                Box::pin(self.store_held(held.take())).await;
                return;
            }
            if at_end {
                at_end = false;
                let due = held
                    .as_ref()
                    .zip(self.hold)
                    .map(|((_, since), hold)| *since + hold);
                if self
                    .wait(&detector, &mut pruned, woken, due, &mut shutdown)
                    .await
                {
                    Box::pin(self.store_held(held.take())).await;
                    return;
                }
                woken = journal.notified();
            }
            let hold = self.hold.unwrap_or_default();
            if owed.is_none()
                && held
                    .as_ref()
                    .is_some_and(|(_, since)| since.elapsed() >= hold)
            {
                owed = held.take().map(|(pages, _)| pages);
                // The journal is read again after: the wake-up that ended the wait with this
                // due time may have been for new entries.
                short = false;
            }
            if owed.is_none() {
                // The store's futures are boxed: inline, they made every org's task (an MSSP
                // runs thousands, mostly waiting) some 1 KiB larger.
                let entries = match Box::pin(self.read_journal(position)).await {
                    Ok(e) => e,
                    Err(e) => {
                        error!(org = %self.org, error = %e, "detections cannot read their journal");
                        failures = failures.saturating_add(1);
                        let wait = backoff.delay(failures, &mut rand::thread_rng());
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.changed() => return,
                        }
                        continue;
                    }
                };
                if entries.is_empty() {
                    at_end = true;
                    continue;
                }
                short = entries.len() < PAGE as usize;
                let mut findings: Vec<Finding> = Vec::new();
                let mut forget: Vec<i64> = Vec::new();
                let mut last = position;
                let mut sign_ins_only = true;
                for e in &entries {
                    if let Some(s) = read(&self.org, &e.body) {
                        let (found, keep) = detector.observe_journal(&s);
                        findings.extend(found);
                        if !keep {
                            forget.push(e.position);
                        }
                        sign_ins_only &= s.what == crate::detect::What::SignIn;
                    }
                    last = e.position;
                }
                let made = findings
                    .into_iter()
                    .map(|finding| NewFinding {
                        finding,
                        destinations: self.destinations.clone(),
                    })
                    .collect();
                self.signals
                    .detected
                    .fetch_add(entries.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let page = Pages { made, forget, last };
                let (pages, since) = match held.take() {
                    Some((before, since)) => (before.then(page), since),
                    None => (page, tokio::time::Instant::now()),
                };
                if self.hold.is_some_and(|hold| since.elapsed() < hold)
                    && sign_ins_only
                    && pages.made.is_empty()
                    && pages.forget.len() < HOLD_FORGET_MAX
                {
                    position = pages.last;
                    held = Some((pages, since));
                    at_end = short;
                    continue;
                }
                owed = Some(pages);
            }
            let Some(pages) = owed.take() else {
                continue;
            };
            let Pages { made, forget, last } = pages;
            let committed =
                Box::pin(
                    self.store
                        .commit_findings(&self.org, &made, &forget, last, Utc::now()),
                )
                .await;
            match committed {
                Ok(new) => {
                    failures = 0;
                    position = last;
                    for n in made.iter().take(new.min(made.len())) {
                        info!(org = %self.org, rule = n.finding.rule.as_str(), severity = n.finding.severity.as_str(), finding = %n.finding.id, "finding");
                    }
                    crate::telemetry::findings(&self.org, new as u64);
                    self.signals.detections.notify_waiters();
                    if new > 0 {
                        self.signals.stored();
                    }
                    at_end = short;
                }
                Err(e) => {
                    error!(org = %self.org, error = %e, "cannot store findings; retrying (nothing is lost)");
                    owed = Some(Pages { made, forget, last });
                    failures = failures.saturating_add(1);
                    let wait = backoff.delay(failures, &mut rand::thread_rng());
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// Stores held pages at shutdown, once: what it cannot store is observed again at the next
    /// start.
    async fn store_held(&self, held: Option<(Pages, tokio::time::Instant)>) {
        let Some((pages, _)) = held else {
            return;
        };
        let stored = self
            .store
            .commit_findings(&self.org, &[], &pages.forget, pages.last, Utc::now())
            .await;
        if let Err(e) = stored {
            warn!(org = %self.org, error = %e, "cannot store the detections' position at shutdown; it is read again at the next start");
        }
    }

    /// Waits, at the journal's end, to be `woken` (a commit appended to it), for the idle look
    /// if there is one, for `due` (held pages to store), or for shutdown (true). Prunes first
    /// when it is time.
    async fn wait(
        &self,
        detector: &Detector,
        pruned: &mut tokio::time::Instant,
        woken: tokio::sync::futures::Notified<'_>,
        due: Option<tokio::time::Instant>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        if pruned.elapsed() >= PRUNE_EVERY {
            *pruned = tokio::time::Instant::now();
            self.prune(detector).await;
        }
        // Half to all of the interval, at random: an MSSP's thousands of workers, started
        // together, would otherwise all look (and queue for the store) in the same second, and
        // keep doing so every interval.
        let idle = async {
            match self.idle {
                Some(idle) => {
                    let factor = rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..=1.0);
                    tokio::time::sleep(idle.mul_f64(factor)).await
                }
                None => std::future::pending().await,
            }
        };
        let due = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = woken => false,
            _ = idle => false,
            _ = due => false,
            _ = shutdown.changed() => true,
        }
    }

    /// Forgets sign-ins the history no longer reaches (a day past it), keeping every other
    /// signal: a rebuild then gives the same places.
    async fn prune(&self, detector: &Detector) {
        let Some(now) = detector.watermark() else {
            return;
        };
        let keep = chrono::Duration::days(crate::detect::history::PLACE_DAYS + 1);
        match self.store.prune_signals(&self.org, now - keep).await {
            Ok(0) => {}
            Ok(n) => info!(org = %self.org, pruned = n, "sign-ins past the baseline forgotten"),
            Err(e) => warn!(org = %self.org, error = %e, "cannot prune the journal"),
        }
    }
}

/// Every `every`, one look at the whole journal for entries added since the last look, and a
/// wake-up for the detections of each of `orgs` they belong to: what the commits of this
/// process do not announce (another process writing the same SQLite file) is still read within
/// `every`. Entries this process announced wake their worker a second time, to find nothing.
pub async fn watch_journals<S: Store>(
    store: S,
    signals: Arc<Signals>,
    orgs: std::collections::HashSet<String>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    // The first look only notes where the journal ends: every worker reads its own at start.
    let mut seen: Option<i64> = None;
    loop {
        let look = async {
            let head = store.journal_head().await?;
            if let Some(after) = seen.filter(|s| *s < head) {
                for org in store.journal_orgs(after, head).await? {
                    if orgs.contains(&org) {
                        signals.appended(&org);
                    }
                }
            }
            Ok::<i64, StoreError>(head)
        };
        match look.await {
            Ok(head) => seen = Some(head),
            Err(e) => warn!(error = %e, "cannot look at the detections' journal; will look again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}
