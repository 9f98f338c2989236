//! One worker per destination: take the rows that are due from the outbox, deliver them, and
//! mark each delivered, to retry (jittered backoff), or dead (after the configured attempts, or at
//! once when the destination says retrying cannot help). A row is marked only after its
//! delivery, so a crash in between re-delivers it once: at-least-once, never lost. A destination
//! may have several batches under way at once ([`Destination::in_flight`]): the next is taken
//! while the last is sent, so a slow step of one (its marks' sync, a lookup) leaves the
//! destination busy with the others.

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
    /// Journal entries the detections have read and observed (stored or not yet).
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
    /// Polls that found nothing new, written together (see [`crate::sources::idle`]).
    pub idle_polls: Arc<crate::sources::idle::IdlePolls>,
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
            idle_polls: Arc::default(),
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
    /// Rows under way at once, over overlapping batches (claimed, not yet marked): what a crash
    /// can deliver twice. By default one batch at a time.
    fn in_flight(&self) -> u32 {
        self.batch_size()
    }
    /// The worker has marked these rows (or failed to): a destination that keeps state about
    /// the rows under way lets go of it here.
    fn settled(&self, _rows: &[Due]) {}
    /// Whether [`Destination::deliver`] reads each change's Okta event (`Due::raw`); if not, the
    /// outbox is read without it (most of a row's bytes).
    fn reads_okta_event(&self) -> bool {
        true
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

/// How a batch ended.
enum Round {
    /// Every row was delivered or given its outcome, and marked (or the marking failed: then
    /// the worker backs off before taking more).
    Done { recorded: bool },
    /// The destination is down: the rows it had not delivered wait in the outbox.
    Outage(String),
}

pub async fn run<S: Store, D: Destination>(
    store: S,
    destination: Arc<D>,
    policy: WorkerPolicy,
    signals: Arc<Signals>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = destination.name().to_owned();
    let batch = destination.batch_size().max(1);
    let cap = destination.in_flight().max(batch) as usize;
    let mut store_failures = 0u32;
    let mut outages = 0u32;
    // The batches under way (tasks of their own: each holds a database connection or an SMTP
    // one at times, and must make progress while this loop waits on the store), and their rows:
    // the next claim skips those (they are still pending in the outbox until marked).
    let mut rounds: tokio::task::JoinSet<Round> = tokio::task::JoinSet::new();
    let mut rows_of: std::collections::HashMap<tokio::task::Id, Vec<i64>> =
        std::collections::HashMap::new();
    let mut holding: std::collections::HashSet<i64> = std::collections::HashSet::new();
    // No new batch before this (an outage's or a failing store's backoff).
    let mut paused_until: Option<tokio::time::Instant> = None;
    // The daemon is gone (its shutdown sender dropped): as good as told to stop.
    let mut orphaned = false;
    loop {
        let stopping = orphaned || *shutdown.borrow();
        if stopping && rounds.is_empty() {
            return;
        }
        let paused = paused_until.is_some_and(|t| t > tokio::time::Instant::now());
        if !stopping && !paused && holding.len() + batch as usize <= cap {
            // Register interest before looking, so a change stored meanwhile still wakes us.
            let woken = signals.stored.notified();
            let taken = holding.len() as u32;
            let due = match store
                .due(
                    &name,
                    batch.saturating_add(taken),
                    Utc::now(),
                    destination.reads_okta_event(),
                )
                .await
            {
                Ok(due) => {
                    store_failures = 0;
                    due.into_iter()
                        .filter(|d| !holding.contains(&d.id))
                        .take(batch as usize)
                        .collect::<Vec<Due>>()
                }
                Err(e) => {
                    error!(destination = %name, error = %e, "cannot read the outbox");
                    store_failures = store_failures.saturating_add(1);
                    let wait = policy
                        .backoff
                        .delay(store_failures, &mut rand::thread_rng());
                    paused_until = Some(tokio::time::Instant::now() + wait);
                    continue;
                }
            };
            if !due.is_empty() {
                // On a shared store, what this replica still holds (it may have been paused past
                // its claim while another replica took the rows over).
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
                        paused_until =
                            Some(tokio::time::Instant::now() + Duration::from_millis(500));
                        continue;
                    }
                };
                if !due.is_empty() {
                    let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
                    holding.extend(ids.iter().copied());
                    let task = rounds.spawn(deliver_round(
                        store.clone(),
                        destination.clone(),
                        policy,
                        signals.clone(),
                        due,
                    ));
                    rows_of.insert(task.id(), ids);
                }
                // Room for another batch is looked for at once.
                continue;
            }
            // Nothing more is due: wait for a batch to end, a new change, or the idle poll.
            tokio::select! {
                Some(joined) = rounds.join_next_with_id(), if !rounds.is_empty() => {
                    let round = finished(&name, joined, &mut rows_of, &mut holding);
                    ended(&name, &policy, &mut outages, &mut paused_until, round);
                }
                _ = woken => {}
                _ = tokio::time::sleep(policy.idle_poll) => {}
                changed = shutdown.changed() => orphaned = changed.is_err(),
            }
            continue;
        }
        // Full, paused or stopping: wait for a batch to end (or the pause to pass).
        let resume = paused_until.filter(|_| !stopping);
        tokio::select! {
            Some(joined) = rounds.join_next_with_id(), if !rounds.is_empty() => {
                let round = finished(&name, joined, &mut rows_of, &mut holding);
                ended(&name, &policy, &mut outages, &mut paused_until, round);
            }
            _ = async {
                match resume {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            }, if resume.is_some() => {}
            changed = shutdown.changed(), if !stopping => orphaned = changed.is_err(),
            else => {}
        }
    }
}

/// One batch: delivered, then its outcomes marked.
async fn deliver_round<S: Store, D: Destination>(
    store: S,
    destination: Arc<D>,
    policy: WorkerPolicy,
    signals: Arc<Signals>,
    due: Vec<Due>,
) -> Round {
    let name = destination.name();
    let outcomes = destination.deliver(&due).await;
    if let Some(Outcome::Unavailable(why)) = outcomes
        .iter()
        .find(|o| matches!(o, Outcome::Unavailable(_)))
    {
        let why = why.clone();
        for _ in outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Unavailable(_)))
        {
            crate::telemetry::delivery(name, "unavailable");
        }
        // Rows delivered before the outage struck are recorded; the rest stay due, in order.
        let (rows, outs): (Vec<Due>, Vec<Outcome>) = due
            .iter()
            .cloned()
            .zip(outcomes.iter().cloned())
            .filter(|(_, o)| !matches!(o, Outcome::Unavailable(_)))
            .unzip();
        match record(&store, name, &rows, &outs, &policy).await {
            Ok(()) => settle(&signals, rows.len()),
            Err(e) => {
                error!(destination = %name, error = %e, "cannot record deliveries; they will be repeated")
            }
        }
        destination.settled(&due);
        return Round::Outage(why);
    }
    let recorded = record(&store, name, &due, &outcomes, &policy).await;
    match &recorded {
        Ok(()) => settle(&signals, due.len()),
        // The deliveries happened but are not marked: they will be delivered again (at least
        // once).
        Err(e) => {
            error!(destination = %name, error = %e, "cannot record deliveries; they will be repeated")
        }
    }
    destination.settled(&due);
    Round::Done {
        recorded: recorded.is_ok(),
    }
}

/// A batch's task ended: its rows may be taken again. A task that panicked counts as a batch
/// whose marks were not stored (its rows stay due).
fn finished(
    name: &str,
    joined: Result<(tokio::task::Id, Round), tokio::task::JoinError>,
    rows_of: &mut std::collections::HashMap<tokio::task::Id, Vec<i64>>,
    holding: &mut std::collections::HashSet<i64>,
) -> Round {
    let (id, round) = match joined {
        Ok(joined) => joined,
        Err(e) => {
            error!(destination = %name, error = %e, "a delivery ended abnormally; its rows stay due");
            (e.id(), Round::Done { recorded: false })
        }
    };
    for row in rows_of.remove(&id).unwrap_or_default() {
        holding.remove(&row);
    }
    round
}

/// A batch ended: an outage or a failing store pauses new batches.
fn ended(
    name: &str,
    policy: &WorkerPolicy,
    outages: &mut u32,
    paused_until: &mut Option<tokio::time::Instant>,
    round: Round,
) {
    let pause = match round {
        Round::Done { recorded: true } => {
            *outages = 0;
            return;
        }
        // A broken database is not hammered.
        Round::Done { recorded: false } => policy.backoff.cap.min(Duration::from_secs(5)),
        Round::Outage(why) => {
            *outages = outages.saturating_add(1);
            let outage = Backoff {
                cap: policy.backoff.cap.min(Duration::from_secs(30)),
                ..policy.backoff
            };
            let wait = outage.delay(*outages, &mut rand::thread_rng());
            warn!(destination = %name, error = %why, retry_in_ms = wait.as_millis() as u64, "destination unavailable; deliveries wait in the outbox");
            wait
        }
    };
    let until = tokio::time::Instant::now() + pause;
    *paused_until = Some(paused_until.map_or(until, |t| t.max(until)));
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
