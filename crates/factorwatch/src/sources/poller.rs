//! The pollers: System Log (`/api/v1/logs`) and legacy Events API (`/api/v1/events`). Both follow
//! `rel="next"` links as Okta instructs, and keep the full `next` URL as their checkpoint,
//! committed in the same transaction as the changes of its page: after a crash they resume
//! exactly where the last committed page ended, so nothing is skipped and a page replayed at most
//! once is deduplicated by the store. An empty page means caught up: wait, then GET the same
//! `next` again (Okta's polling contract, which also catches events persisted late).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::okta::client::{ClientError, OktaClient};
use crate::pipeline::ingest::Ingest;
use crate::store::{SourceKind, Store};

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
    /// Woken after each commit that stored new changes.
    pub stored: Arc<Notify>,
}

/// How long to wait before trying again after a failure that only time can fix.
const ERROR_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(60),
};

impl<S: Store> Poller<S> {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        let mut url = loop {
            match self.store.cursor(&self.org, self.source).await {
                Ok(Some(cursor)) => {
                    info!(org = %self.org, source = self.source.as_str(), "resuming from the stored cursor");
                    break cursor;
                }
                Ok(None) => break self.client.url(&self.start),
                Err(e) => {
                    error!(org = %self.org, source = self.source.as_str(), error = %e, "cannot read the cursor");
                    let wait = ERROR_BACKOFF.delay(failures, &mut rand::thread_rng());
                    if pause(&mut shutdown, wait).await {
                        return;
                    }
                    failures += 1;
                }
            }
        };
        failures = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let page = tokio::select! {
                page = self.client.get(&url) => page,
                _ = shutdown.changed() => return,
            };
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    let wait = ERROR_BACKOFF.delay(failures, &mut rand::thread_rng());
                    failures = failures.saturating_add(1);
                    match &e {
                        ClientError::Okta { .. } => {
                            error!(org = %self.org, source = self.source.as_str(), error = %e, "Okta refused the request; check the configuration")
                        }
                        _ => {
                            warn!(org = %self.org, source = self.source.as_str(), error = %e, "polling failed; will retry")
                        }
                    }
                    if pause(&mut shutdown, wait).await {
                        return;
                    }
                    continue;
                }
            };
            failures = 0;
            let next = page.next.clone().unwrap_or_else(|| url.clone());
            let batch = self
                .ingest
                .batch(self.source, &page.body, Some(next.clone()));
            let caught_up = batch.events_seen == 0;
            // The page is only done once committed: until then, retry the commit, never skip it.
            let mut store_failures = 0u32;
            loop {
                match self
                    .store
                    .commit(&self.org, batch.clone(), chrono::Utc::now())
                    .await
                {
                    Ok(c) => {
                        if c.new > 0 {
                            self.stored.notify_waiters();
                        }
                        if !batch.rejects.is_empty() {
                            warn!(org = %self.org, source = self.source.as_str(), rejects = batch.rejects.len(), "values that are not Okta events were kept in the rejects table");
                        }
                        break;
                    }
                    Err(e) => {
                        error!(org = %self.org, source = self.source.as_str(), error = %e, "cannot store a page; retrying it");
                        let wait = ERROR_BACKOFF.delay(store_failures, &mut rand::thread_rng());
                        store_failures = store_failures.saturating_add(1);
                        if pause(&mut shutdown, wait).await {
                            return;
                        }
                    }
                }
            }
            url = next;
            if caught_up && pause(&mut shutdown, self.interval).await {
                return;
            }
        }
    }
}

/// Sleeps, unless shutdown comes first; true if it did.
async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
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
