//! Polls that found nothing new, recorded together. A poller caught up with an idle org records
//! once a minute that it polled (the status page's "last poll"). Each record alone was a
//! transaction and a sync: an MSSP's 2,000 idle orgs made 33 a second, a sixth to a quarter of
//! the process's idle CPU (`scripts/bench/many-orgs.sh`). They are gathered here and written in
//! one transaction every few seconds.
//! Such a record moves no cursor and stores no change: one lost in a crash leaves only an older
//! "last poll".

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tracing::warn;

use crate::store::{Polled, SourceKind, Store};

/// How often the gathered records are written.
pub const RECORD_EVERY: Duration = Duration::from_secs(5);

/// The records not yet written, one per org and source (the latest).
#[derive(Debug, Default)]
pub struct IdlePolls {
    pending: Mutex<HashMap<(String, SourceKind), Polled>>,
}

impl IdlePolls {
    /// `org`'s `source`, standing at `position`, polled at `at` and found nothing new.
    pub fn polled(&self, org: &str, source: SourceKind, position: &str, at: DateTime<Utc>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let record = Polled {
            org: org.to_owned(),
            source,
            position: position.to_owned(),
            at,
        };
        match pending.entry((record.org.clone(), source)) {
            Entry::Occupied(mut held) if held.get().at <= at => {
                held.insert(record);
            }
            Entry::Occupied(_) => {}
            Entry::Vacant(place) => {
                place.insert(record);
            }
        }
    }

    /// How many records wait to be written.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Takes every record held.
    fn take(&self) -> Vec<Polled> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.drain().map(|(_, p)| p).collect()
    }

    /// Puts back records that could not be written, unless a newer one came meanwhile.
    fn restore(&self, polls: Vec<Polled>) {
        for p in polls {
            self.polled(&p.org, p.source, &p.position, p.at);
        }
    }

    /// Writes what is held; kept for the next try if the store fails.
    pub async fn write<S: Store>(&self, store: &S) {
        let polls = self.take();
        if polls.is_empty() {
            return;
        }
        if let Err(e) = store.record_polls(&polls).await {
            warn!(error = %e, polls = polls.len(), "cannot record idle polls; will retry");
            self.restore(polls);
        }
    }
}

/// Writes the records every `every` until shutdown, then once more.
pub async fn record<S: Store>(
    polls: Arc<IdlePolls>,
    store: S,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            _ = shutdown.changed() => true,
        };
        polls.write(&store).await;
        if stopping || *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + i64::from(s), 0).unwrap_or_default()
    }

    #[test]
    fn one_record_per_source_the_latest_kept() {
        let polls = IdlePolls::default();
        polls.polled("acme", SourceKind::SystemLog, "/a", at(1));
        polls.polled("acme", SourceKind::SystemLog, "/b", at(3));
        polls.polled("acme", SourceKind::EventsApi, "/e", at(2));
        polls.polled("beta", SourceKind::SystemLog, "/c", at(2));
        let mut taken = polls.take();
        taken.sort_by(|a, b| (&a.org, a.source.as_str()).cmp(&(&b.org, b.source.as_str())));
        let seen: Vec<_> = taken
            .iter()
            .map(|p| (p.org.as_str(), p.source, p.position.as_str(), p.at))
            .collect();
        assert_eq!(
            seen,
            [
                ("acme", SourceKind::EventsApi, "/e", at(2)),
                ("acme", SourceKind::SystemLog, "/b", at(3)),
                ("beta", SourceKind::SystemLog, "/c", at(2)),
            ]
        );
        assert!(polls.take().is_empty(), "taken once");
    }

    #[test]
    fn a_record_put_back_never_replaces_a_newer_one() {
        let polls = IdlePolls::default();
        polls.polled("acme", SourceKind::SystemLog, "/a", at(1));
        let failed = polls.take();
        polls.polled("acme", SourceKind::SystemLog, "/b", at(5));
        polls.restore(failed);
        let taken = polls.take();
        assert_eq!(taken.len(), 1);
        assert_eq!((taken[0].position.as_str(), taken[0].at), ("/b", at(5)));
    }
}
