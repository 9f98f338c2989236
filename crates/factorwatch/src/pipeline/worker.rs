//! One worker per destination: take the rows that are due from the outbox, deliver them, and
//! mark each delivered, to retry (jittered backoff), or dead (after the configured attempts, or at
//! once when the destination says retrying cannot help). A row is marked only after its
//! delivery, so a crash in between re-delivers it once: at-least-once, never lost.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, watch};
use tracing::{error, warn};

use crate::backoff::Backoff;
use crate::store::{Due, Store};

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Deliberately not delivered (an operator's policy); done, like a delivery.
    Skipped(String),
    /// Not yet: try again at this time, without counting an attempt (waiting to coalesce).
    Later(chrono::DateTime<Utc>),
    /// The destination is down (connection refused, 5xx, busy): the batch waits, in order, and is
    /// sent again after a backoff; attempts are not counted, so a long outage dead-letters nothing.
    Unavailable(String),
    /// This row failed and is worth trying again later (counted towards dead-lettering).
    Retry(String),
    /// Retrying cannot help (a permanent refusal).
    Reject(String),
}

/// What the parts of a daemon tell each other: new changes were stored (wake the workers), and
/// how many outbox rows the workers have settled (delivered, skipped, put off, dead) — progress,
/// without asking the store.
#[derive(Debug)]
pub struct Signals {
    pub stored: Notify,
    pub settled: std::sync::atomic::AtomicU64,
    /// Journal entries the detections have read.
    pub detected: std::sync::atomic::AtomicU64,
    /// Told each time the detections commit what they read.
    pub detections: Notify,
    /// Per org: told when its journal grew. Each org's detections wait on their own: one
    /// org's commit wakes one task, not one per org (an MSSP runs thousands).
    journals: std::sync::Mutex<std::collections::HashMap<String, Arc<Notify>>>,
    /// Okta pages held in memory at once, by every poller together (fetched, not yet committed):
    /// many orgs catching up at once wait for a turn instead of each holding two pages.
    pub pages: Arc<tokio::sync::Semaphore>,
    /// Journal reads in progress at once, by every org's detections together. They queue for the
    /// store's few connections anyway; an MSSP's thousands of orgs starting together would each
    /// hold a pending query (and, once read, a page of entries) at the same moment, a peak of
    /// memory the allocator then keeps.
    pub journal_reads: tokio::sync::Semaphore,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            stored: Notify::new(),
            settled: Default::default(),
            detected: Default::default(),
            detections: Notify::new(),
            journals: Default::default(),
            pages: Arc::new(tokio::sync::Semaphore::new(PAGES_IN_MEMORY)),
            journal_reads: tokio::sync::Semaphore::new(JOURNAL_READS),
        }
    }
}

/// Okta pages (up to 1,000 events, ~1.5 MB each) in memory at once across all pollers: enough
/// to keep both cores busy, a bounded peak however many orgs catch up together.
pub const PAGES_IN_MEMORY: usize = 16;

/// Journal reads at once across all orgs' detections (see [`Signals::journal_reads`]).
pub const JOURNAL_READS: usize = 4;

impl Signals {
    /// Wakes every worker: new changes are in the store.
    pub fn stored(&self) {
        self.stored.notify_waiters();
    }

    /// Rows settled so far.
    pub fn settled(&self) -> u64 {
        self.settled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What `org`'s detections wait on.
    pub fn journal(&self, org: &str) -> Arc<Notify> {
        let mut journals = self.journals.lock().unwrap_or_else(|e| e.into_inner());
        journals.entry(org.to_owned()).or_default().clone()
    }

    /// `org`'s journal grew: wakes its detections (or has them look at once when they next wait).
    pub fn appended(&self, org: &str) {
        self.journal(org).notify_one();
    }
}

/// Somewhere changes are delivered: a SIEM, the user's mailbox.
pub trait Destination: Send + Sync + 'static {
    /// The outbox's name for it.
    fn name(&self) -> &str;
    /// Rows per claim.
    fn batch_size(&self) -> u32 {
        100
    }
    /// Delivers the rows; one outcome per row, in order.
    fn deliver(&self, rows: &[Due]) -> impl Future<Output = Vec<Outcome>> + Send;
}

#[derive(Debug, Clone, Copy)]
pub struct WorkerPolicy {
    /// Attempts before a row is dead-lettered.
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// How often an idle worker looks for due rows (it is also woken by new changes).
    pub idle_poll: Duration,
}

impl Default for WorkerPolicy {
    fn default() -> Self {
        WorkerPolicy {
            max_attempts: 10,
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(300),
            },
            idle_poll: Duration::from_millis(500),
        }
    }
}

pub async fn run<S: Store, D: Destination>(
    store: S,
    destination: Arc<D>,
    policy: WorkerPolicy,
    signals: Arc<Signals>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = destination.name().to_owned();
    let mut store_failures = 0u32;
    let mut outages = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Register interest before looking, so a change stored meanwhile still wakes us.
        let woken = signals.stored.notified();
        let due = match store.due(&name, destination.batch_size(), Utc::now()).await {
            Ok(due) => {
                store_failures = 0;
                due
            }
            Err(e) => {
                error!(destination = %name, error = %e, "cannot read the outbox");
                store_failures = store_failures.saturating_add(1);
                let wait = policy
                    .backoff
                    .delay(store_failures, &mut rand::thread_rng());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
        };
        if due.is_empty() {
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(policy.idle_poll) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        // On a shared store, what this replica still holds (it may have been paused past its
        // claim while another replica took the rows over).
        let due = match store
            .confirm_claims(&due.iter().map(|d| d.id).collect::<Vec<_>>(), Utc::now())
            .await
        {
            Ok(held) if held.len() == due.len() => due,
            Ok(held) => {
                warn!(destination = %name, lost = due.len() - held.len(), "rows claimed by another replica meanwhile; not delivered here");
                due.into_iter().filter(|d| held.contains(&d.id)).collect()
            }
            Err(e) => {
                error!(destination = %name, error = %e, "cannot confirm the outbox claims");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        let outcomes = destination.deliver(&due).await;
        if let Some(Outcome::Unavailable(why)) = outcomes
            .iter()
            .find(|o| matches!(o, Outcome::Unavailable(_)))
        {
            outages = outages.saturating_add(1);
            let outage = Backoff {
                cap: policy.backoff.cap.min(Duration::from_secs(30)),
                ..policy.backoff
            };
            let wait = outage.delay(outages, &mut rand::thread_rng());
            warn!(destination = %name, error = %why, retry_in_ms = wait.as_millis() as u64, "destination unavailable; deliveries wait in the outbox");
            for _ in outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Unavailable(_)))
            {
                crate::telemetry::delivery(&name, "unavailable");
            }
            // Rows delivered before the outage struck are recorded; the rest stay due, in order.
            let done: Vec<(Due, Outcome)> = due
                .iter()
                .cloned()
                .zip(outcomes.iter().cloned())
                .filter(|(_, o)| !matches!(o, Outcome::Unavailable(_)))
                .collect();
            let (rows, outs): (Vec<Due>, Vec<Outcome>) = done.into_iter().unzip();
            match record(&store, &name, &rows, &outs, &policy).await {
                Ok(()) => settle(&signals, rows.len()),
                Err(e) => {
                    error!(destination = %name, error = %e, "cannot record deliveries; they will be repeated")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        outages = 0;
        let recorded = record(&store, &name, &due, &outcomes, &policy).await;
        if recorded.is_ok() {
            settle(&signals, due.len());
        }
        if let Err(e) = recorded {
            // The deliveries happened but are not marked: they will be delivered again (at least
            // once). Back off so a broken database is not hammered.
            error!(destination = %name, error = %e, "cannot record deliveries; they will be repeated");
            tokio::select! {
                _ = tokio::time::sleep(policy.backoff.cap.min(Duration::from_secs(5))) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn settle(signals: &Signals, n: usize) {
    signals
        .settled
        .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
}

async fn record<S: Store>(
    store: &S,
    name: &str,
    due: &[Due],
    outcomes: &[Outcome],
    policy: &WorkerPolicy,
) -> Result<(), crate::store::StoreError> {
    let delivered: Vec<i64> = due
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| matches!(o, Outcome::Delivered | Outcome::Skipped(_)))
        .map(|(d, _)| d.id)
        .collect();
    store.delivered(&delivered, Utc::now()).await?;
    for (row, outcome) in due.iter().zip(outcomes) {
        let dead = matches!(outcome, Outcome::Reject(_))
            || matches!(outcome, Outcome::Retry(_) if row.attempts + 1 >= policy.max_attempts);
        crate::telemetry::delivery(
            name,
            match outcome {
                Outcome::Delivered => "delivered",
                Outcome::Skipped(_) => "skipped",
                Outcome::Later(_) => "later",
                Outcome::Unavailable(_) => "unavailable",
                _ if dead => "dead",
                _ => "retry",
            },
        );
        match outcome {
            Outcome::Delivered | Outcome::Unavailable(_) => {}
            Outcome::Later(until) => store.postpone(row.id, *until).await?,
            Outcome::Skipped(why) => {
                tracing::info!(destination = %name, event = %row.event_id, reason = %why, "skipped by policy");
            }
            Outcome::Retry(why) if row.attempts + 1 < policy.max_attempts => {
                let wait = policy.backoff.delay(row.attempts, &mut rand::thread_rng());
                warn!(destination = %name, event = %row.event_id, attempt = row.attempts + 1, error = %why, "delivery failed; will retry");
                let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                store.retry(row.id, why, next).await?;
            }
            Outcome::Retry(why) | Outcome::Reject(why) => {
                error!(destination = %name, event = %row.event_id, attempts = row.attempts + 1, error = %why, "delivery dead-lettered");
                store.dead(row.id, why).await?;
            }
        }
    }
    // A destination that answered fewer outcomes than rows: the rest stay due.
    Ok(())
}
