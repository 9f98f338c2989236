//! The pollers: System Log (`/api/v1/logs`) and legacy Events API (`/api/v1/events`). Both follow
//! `rel="next"` links as Okta instructs, and keep the full `next` URL as their checkpoint,
//! committed in the same transaction as the changes of its page (and of the pages gathered with
//! it): after a crash they resume exactly where the last committed page ended, so nothing is
//! skipped and a page replayed is deduplicated by the store. An empty page means caught up: wait, then GET the same
//! `next` again (Okta's polling contract, which also catches events persisted late).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::okta::client::{ClientError, OktaClient, Page};
use crate::pipeline::ingest::Ingest;
use crate::store::{Batch, SourceKind, Store};

#[derive(Clone)]
pub struct Poller<S: Store> {
    pub org: String,
    pub source: SourceKind,
    pub client: Arc<OktaClient>,
    pub store: S,
    pub ingest: Arc<Ingest>,
    /// Where to start when the store has no cursor yet.
    pub start: String,
    /// The wait after an empty page.
    pub interval: Duration,
    /// Told after each commit that stored new changes.
    pub signals: Arc<crate::pipeline::worker::Signals>,
    /// Stop at the first empty page instead of waiting for more (`run --once`).
    pub once: bool,
    /// On a shared store: the org's lease this poller runs under; its commits are refused once
    /// another replica holds the org, and it stops.
    pub fence: Option<crate::store::Fence>,
    /// Where small commits are stored together with other orgs' (see `sources::group`); None:
    /// each alone.
    pub group: Option<crate::sources::group::GroupCommit>,
}

/// How long to wait before trying again after a failure that only time can fix.
const ERROR_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(60),
};

/// With `once`, how many failures in a row end the run (each already retried by the client); a
/// failure Okta means (a 4xx) ends it at once.
const ONCE_ATTEMPTS: u32 = 5;

/// Why a poller stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Asked to (shutdown).
    Stopped,
    /// `once`: its first empty page.
    CaughtUp,
    /// `once`: a request failed after the client's own retries (a person or time must fix it).
    Failed(String),
    /// Another replica holds the org now: nothing of the last page was stored.
    LeaseLost,
}

impl<S: Store> Poller<S> {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Ended {
        let mut failures = 0u32;
        // Needed once, and a filter of every MFA event type is a KiB or two: an MSSP's thousands
        // of pollers would hold theirs for nothing.
        let start = std::mem::take(&mut self.start);
        let mut url = loop {
            match self.store.cursor(&self.org, self.source).await {
                // Parsed here, once: each page's `next` comes parsed (see `Page::next`). The
                // daemon refuses to start on a stored cursor off the org's origin.
                Ok(Some(cursor)) => match self.client.page_url(&cursor) {
                    Ok(url) => {
                        info!(org = %self.org, source = self.source.as_str(), "resuming from the stored cursor");
                        break url;
                    }
                    Err(e) => return Ended::Failed(e.to_string()),
                },
                Ok(None) => match self.client.page_url(&start) {
                    Ok(url) => break url,
                    Err(e) => return Ended::Failed(e.to_string()),
                },
                Err(e) => {
                    error!(org = %self.org, source = self.source.as_str(), error = %e, "cannot read the cursor");
                    let wait = ERROR_BACKOFF.delay(failures, &mut rand::thread_rng());
                    if pause(&mut shutdown, wait).await {
                        return Ended::Stopped;
                    }
                    failures += 1;
                }
            }
        };
        drop(start);
        failures = 0;
        // The next page is fetched while this one is classified and committed, so Okta's answer
        // time and factorwatch's work overlap instead of adding up. Each page is still fetched
        // once, in order, and committed only after the one before it.
        let mut fetch = Prefetch::start(&self.client, &url, &self.signals.pages, true);
        // Whether the page being fetched goes over the org's connection kept between polls:
        // every poll from the cursor (the first, and each after a wait or a failure: at start-up
        // every org polls at once, and a pooled connection would hold its buffers until it
        // closed), and the page after a small one that came that way (a live org's poll finds a
        // few events, and the request that follows, Okta's loop reading on until a page is
        // empty, would otherwise open a connection, against Okta a TLS handshake, only to hear
        // `[]`). After an answer larger than KEPT_ANSWER the org is catching up: its next pages
        // go on short-lived pooled connections, and the stream that carried it is closed (see
        // `OKTA_POLL_CONNECTION`).
        let mut on_kept = true;
        // Pages read but not yet committed, merged into one batch with the last page's cursor,
        // and when the first was read: a page holding a few rows costs a transaction (and a
        // sync) as dear as a full one, so catching up with an org whose MFA changes are sparse
        // commits every COMMIT_ROWS rows or COMMIT_WITHIN, not every page. A crash before the
        // commit loses no change: the cursor has not moved, the pages are read again.
        let mut pending: Option<(Batch, tokio::time::Instant)> = None;
        // When this poller last committed: an org with nothing new is recorded as polled once a
        // minute, not at every poll (each commit is a sync; an MSSP polls thousands of orgs).
        let mut last_commit: Option<tokio::time::Instant> = None;
        // Whether this poller has taken its place in the interval (below).
        let mut phased = false;
        // The commit of the last batch, under way while the next pages are read and classified
        // (SQLite's thread and this one work at once). The next commit waits for it: batches,
        // and the cursor with them, are still stored one after another, in order.
        let mut committing: Option<JoinHandle<Result<(), Ended>>> = None;
        loop {
            let (page, mut held) = tokio::select! {
                page = fetch.result() => page,
                _ = shutdown.changed() => {
                    let _ = finish(&mut committing).await;
                    return Ended::Stopped;
                }
            };
            // Whether the next page, if any, is fetched over the kept connection (see `on_kept`).
            let mut follow_kept = false;
            // A failure says why, and whether Okta refused (a person must act) or it may pass.
            let outcome = match page {
                Err(e) => Err((e.to_string(), !e.is_transient())),
                Ok(page) => {
                    let came_kept = std::mem::take(&mut on_kept);
                    follow_kept = came_kept && page.body.len() <= crate::okta::client::KEPT_ANSWER;
                    let next = page.next.unwrap_or_else(|| url.clone());
                    match self
                        .ingest
                        .page(self.source, &page.body, Some(next.as_str().to_owned()))
                    {
                        Err(e) => Err((e.to_string(), false)),
                        Ok(batch) => Ok((batch, next)),
                    }
                }
            };
            let (batch, next) = match outcome {
                Ok(ok) => ok,
                Err((e, refused)) => {
                    // Nothing of this page is kept: its place goes before the wait.
                    drop(held);
                    // What was read before the failure is kept before waiting.
                    if let Err(ended) = finish(&mut committing).await {
                        return ended;
                    }
                    if let Some((batch, _)) = pending.take()
                        && let Err(ended) = Box::pin(self.commit(batch, &mut shutdown)).await
                    {
                        return ended;
                    }
                    let wait = ERROR_BACKOFF.delay(failures, &mut rand::thread_rng());
                    failures = failures.saturating_add(1);
                    if refused {
                        error!(org = %self.org, source = self.source.as_str(), error = %e, "Okta refused the request; check the configuration")
                    } else {
                        warn!(org = %self.org, source = self.source.as_str(), error = %e, "polling failed; will retry")
                    }
                    if self.once && (refused || failures >= ONCE_ATTEMPTS) {
                        return Ended::Failed(e);
                    }
                    if pause(&mut shutdown, wait).await {
                        return Ended::Stopped;
                    }
                    on_kept = true;
                    fetch = Prefetch::start(&self.client, &url, &self.signals.pages, true);
                    continue;
                }
            };
            failures = 0;
            let caught_up = batch.events_seen == 0;
            if !caught_up {
                fetch = Prefetch::start(&self.client, &next, &self.signals.pages, follow_kept);
                on_kept = follow_kept;
            }
            let (batch, first_read) = match pending.take() {
                Some((mut merged, at)) => {
                    merged.absorb(batch);
                    (merged, at)
                }
                None => (batch, tokio::time::Instant::now()),
            };
            let moved = next != url;
            url = next;
            if !caught_up && batch.rows() < COMMIT_ROWS && first_read.elapsed() < COMMIT_WITHIN {
                pending = Some((batch, first_read));
                continue;
            }
            let nothing_new = caught_up && !moved && batch.rows() == 0 && batch.events_seen == 0;
            let recorded_lately = last_commit.is_some_and(|at| at.elapsed() < RECORD_IDLE_EVERY);
            // One commit at a time, in order.
            if let Err(ended) = finish(&mut committing).await {
                return ended;
            }
            // Pages that moved the cursor but hold nothing to store (a live org's sign-ins and
            // other events no detection keeps): their commit would be a sync for a cursor alone
            // (a third of an MSSP's commits). They wait in memory for the next poll's pages, and
            // are committed at least every RECORD_IDLE_EVERY; a crash before that reads those
            // events again, which store nothing.
            let only_cursor = caught_up
                && !nothing_new
                && batch.rows() == 0
                && self.fence.is_none()
                && !self.once;
            if only_cursor && recorded_lately {
                pending = Some((batch, first_read));
            } else if !(nothing_new && recorded_lately) {
                // The pages are only done once committed: until then, retry the commit, never
                // skip it. Caught up, the commit is waited for here (a poller that waits next,
                // or ends, has stored what it read); catching up, it goes on beside the next page.
                if nothing_new && self.fence.is_none() && !self.once {
                    // Only "polled, nothing new": written with the other orgs' (see
                    // `sources::idle`). A fenced poller commits it itself, which proves its
                    // lease still holds; `once` ends with everything stored.
                    self.signals.idle_polls.polled(
                        &self.org,
                        self.source,
                        url.as_str(),
                        chrono::Utc::now(),
                    );
                } else if caught_up {
                    if self.grouped(&batch) {
                        drop(held.take());
                    }
                    // Boxed, here and above: a commit's future (the store's, the group's) would
                    // double the size of every org's poller task, carried through all its waits.
                    if let Err(ended) = Box::pin(self.commit(batch, &mut shutdown)).await {
                        return ended;
                    }
                } else {
                    last_commit = Some(tokio::time::Instant::now());
                    if self.grouped(&batch) {
                        drop(held.take());
                    }
                    let (poller, mut shutdown) = (self.clone(), shutdown.clone());
                    committing = Some(tokio::spawn(async move {
                        let stored = poller.commit(batch, &mut shutdown).await;
                        // The page is stored: its place among the pages in memory is free.
                        drop(held);
                        stored
                    }));
                    continue;
                }
                last_commit = Some(tokio::time::Instant::now());
            }
            // The page is stored: its place among the pages in memory goes to the next poller
            // now, not after this one's wait (thousands of orgs would queue behind 16 sleepers).
            drop(held);
            if caught_up {
                if self.once {
                    info!(org = %self.org, source = self.source.as_str(), "caught up");
                    return Ended::CaughtUp;
                }
                // The first wait is a random part of the interval, and the polls keep the
                // interval after it: orgs started together (an MSSP's thousands, at every
                // restart) poll spread over the interval instead of all in the same second,
                // each holding a connection and a page at once.
                let wait = if phased {
                    self.interval
                } else {
                    phased = true;
                    self.interval
                        .mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.0..=1.0))
                };
                // On a tick shared with the other pollers (see `ticks`).
                let until =
                    crate::ticks::on_tick(tokio::time::Instant::now() + wait, self.interval);
                if pause_until(&mut shutdown, until).await {
                    return Ended::Stopped;
                }
                fetch = Prefetch::start(&self.client, &url, &self.signals.pages, true);
                on_kept = true;
            }
        }
    }

    /// Whether `batch` is stored with other orgs' (see `sources::group`). Such a batch waits up to
    /// `GATHER` for its group, and its page's body is gone: its place among the pages in memory
    /// goes to the next poller before it waits, or 16 waiting batches would hold every place and
    /// stall every org's polls (2,000 live orgs: a second between an org's polls became 18–28 s
    /// with a 1 s gather). What waits instead is bounded by orgs × `SMALL` rows. A fenced commit
    /// proves its own lease: never grouped; `run --once` has no group.
    fn grouped(&self, batch: &Batch) -> bool {
        self.group.is_some() && self.fence.is_none() && batch.rows() <= crate::sources::group::SMALL
    }

    /// Commits `batch` (with its cursor), retrying until it is stored: a page is never skipped.
    /// Err when the poller must stop (shutdown, or another replica holds the org now).
    async fn commit(
        &self,
        batch: Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Ended> {
        let mut store_failures = 0u32;
        // Shared with the group's task, which stores it with other orgs' batches.
        let batch = Arc::new(batch);
        let group = self.group.as_ref().filter(|_| self.grouped(&batch));
        loop {
            let now = chrono::Utc::now();
            let committed = match (&self.fence, group) {
                (Some(fence), _) => {
                    self.store
                        .commit_fenced(&self.org, &batch, now, fence)
                        .await
                }
                (None, Some(group)) => match group.commit(&self.org, batch.clone()).await {
                    Some(stored) => stored,
                    None => self.store.commit(&self.org, &batch, now).await,
                },
                (None, None) => self.store.commit(&self.org, &batch, now).await,
            };
            match committed {
                Ok(c) => {
                    if c.new > 0 {
                        self.signals.stored();
                    }
                    if !batch.signals.is_empty() {
                        self.signals.appended(&self.org);
                    }
                    if !batch.rejects.is_empty() {
                        warn!(org = %self.org, source = self.source.as_str(), rejects = batch.rejects.len(), "values that are not Okta events were kept in the rejects table");
                    }
                    return Ok(());
                }
                Err(crate::store::StoreError::Fenced { .. }) => {
                    warn!(org = %self.org, source = self.source.as_str(), "another replica holds the org now (this one was paused or cut off past its lease); the page was not stored; stopping");
                    return Err(Ended::LeaseLost);
                }
                Err(e) => {
                    error!(org = %self.org, source = self.source.as_str(), error = %e, "cannot store a page; retrying it");
                    let wait = ERROR_BACKOFF.delay(store_failures, &mut rand::thread_rng());
                    store_failures = store_failures.saturating_add(1);
                    if pause(shutdown, wait).await {
                        return Err(Ended::Stopped);
                    }
                }
            }
        }
    }
}

/// How often a poller that finds nothing new records that it polled (the status page's "last
/// poll").
const RECORD_IDLE_EVERY: Duration = Duration::from_secs(60);

/// Rows (changes, journal entries, context, rejects) gathered from several pages before they
/// are committed together…
const COMMIT_ROWS: usize = 1000;
/// …or once the first of them was read this long ago.
const COMMIT_WITHIN: Duration = Duration::from_millis(500);

/// A page being fetched in the background, with its place among the pages in memory (held until
/// the page is committed); dropped, it stops. None once its page was taken: a finished task's
/// handle keeps the task's memory (~2 KiB), which thousands of caught-up orgs would hold through
/// every wait.
struct Prefetch(Option<JoinHandle<Fetched>>);

/// A fetched page (or why not) and its place among the pages in memory.
type Fetched = (Result<Page, ClientError>, Option<OwnedSemaphorePermit>);

impl Prefetch {
    /// `kept`: on a connection kept between polls.
    fn start(
        client: &Arc<OktaClient>,
        url: &reqwest::Url,
        pages: &Arc<Semaphore>,
        kept: bool,
    ) -> Prefetch {
        let (client, url, pages) = (client.clone(), url.clone(), pages.clone());
        Prefetch(Some(tokio::spawn(async move {
            // The semaphore is never closed; were it, the page is fetched all the same.
            let held = pages.acquire_owned().await.ok();
            let page = client.fetch_page(&url, kept).await;
            (page, held)
        })))
    }

    /// The page; asked again, an error (the poller never does).
    async fn result(&mut self) -> Fetched {
        let ended = |last: String| (Err(ClientError::Unavailable { attempts: 0, last }), None);
        let Some(task) = self.0.as_mut() else {
            return ended("the page was already taken".into());
        };
        // Awaited by reference: cancelled (shutdown), the handle stays and `drop` stops the task.
        let done = task.await;
        self.0 = None;
        done.unwrap_or_else(|e| ended(format!("the request task ended: {e}")))
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Waits for the commit under way, if any: Err when the poller must stop.
async fn finish(committing: &mut Option<JoinHandle<Result<(), Ended>>>) -> Result<(), Ended> {
    match committing.take() {
        None => Ok(()),
        Some(task) => task
            .await
            .unwrap_or_else(|e| Err(Ended::Failed(format!("a commit ended abnormally: {e}")))),
    }
}

/// Sleeps, unless shutdown comes first; true if it did.
async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    pause_until(shutdown, tokio::time::Instant::now() + d).await
}

/// Sleeps until `until`, unless shutdown comes first; true if it did.
async fn pause_until(shutdown: &mut watch::Receiver<bool>, until: tokio::time::Instant) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(until) => false,
        _ = shutdown.changed() => true,
    }
}

/// The first System Log URL: polling (no `until`), MFA event types filtered server-side.
pub fn system_log_start(since: &str, event_types: &[String]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("since", since);
    if !event_types.is_empty() {
        let filter = event_types
            .iter()
            .map(|t| format!("eventType eq \"{t}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        q.append_pair("filter", &filter);
    }
    q.append_pair("limit", "1000");
    format!("/api/v1/logs?{}", q.finish())
}

/// The first Events API URL: `startDate` cannot be combined with `filter`, so the start time
/// goes into the filter as `published gt`, with the MFA objectTypes.
pub fn events_api_start(since: &str, object_types: &[String]) -> String {
    let mut filter = format!("published gt \"{since}\"");
    if !object_types.is_empty() {
        let types = object_types
            .iter()
            .map(|t| format!("action.objectType eq \"{t}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        filter = format!("{filter} and ({types})");
    }
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("filter", &filter)
        .append_pair("limit", "1000")
        .finish();
    format!("/api/v1/events?{q}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_urls_poll_with_server_side_filters() {
        let url = system_log_start(
            "2026-11-01T00:00:00.000Z",
            &[
                "user.mfa.factor.activate".into(),
                "user.mfa.factor.deactivate".into(),
            ],
        );
        let query: Vec<(String, String)> =
            form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(
            query[0],
            ("since".into(), "2026-11-01T00:00:00.000Z".into())
        );
        assert_eq!(
            query[1].1,
            r#"eventType eq "user.mfa.factor.activate" or eventType eq "user.mfa.factor.deactivate""#
        );
        assert_eq!(query[2], ("limit".into(), "1000".into()));
        assert!(!url.contains("until"));
        let legacy = events_api_start(
            "2026-11-01T00:00:00.000Z",
            &["core.user.factor.activate".into()],
        );
        assert!(
            !legacy.contains("startDate"),
            "startDate cannot be combined with filter"
        );
        let query: Vec<(String, String)> =
            form_urlencoded::parse(legacy.split_once('?').unwrap().1.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(
            query[0].1,
            r#"published gt "2026-11-01T00:00:00.000Z" and (action.objectType eq "core.user.factor.activate")"#
        );
    }
}
