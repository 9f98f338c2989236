//! Caught-up pollers' small commits, stored together. A live org's poll that brings a sign-in or
//! a change is a commit of its own — a transaction and a sync — and an MSSP's 2,000 live orgs
//! made some sixty a second (`scripts/bench/many-orgs.sh`). Pollers hand such batches here; those
//! that arrive within [`GATHER`] of the first are stored in one transaction
//! ([`Store::commit_many`]), and each poller hears back only once its batch is stored, so nothing
//! is reported stored before it is. If the shared transaction fails, each batch is committed
//! alone, so that only the batch at fault sees its error.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{Batch, Committed, Store, StoreError};

/// How long the first batch of a group waits for others: a small part of a poll interval
/// (15 s by default) that gathers most of a second's polls of an MSSP's orgs (2,000 orgs: some
/// 45 batches a group and one sync a second, where 100 ms made ten).
pub const GATHER: Duration = Duration::from_millis(1000);
/// Batches of more rows commit alone (a poller catching up: its pages are large, and its commit
/// already runs beside the next page's request).
pub const SMALL: usize = 100;
/// Batches in one transaction at most.
const MOST: usize = 256;

struct Request {
    org: String,
    batch: Arc<Batch>,
    stored: oneshot::Sender<Result<Committed, StoreError>>,
}

/// A handle on the task that stores the batches; the task ends when every handle is dropped.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    requests: mpsc::UnboundedSender<Request>,
}

impl GroupCommit {
    /// Starts the task storing the batches handed to the handle, gathered for `gather`.
    pub fn start<S: Store>(store: S, gather: Duration) -> (GroupCommit, JoinHandle<()>) {
        let (requests, received) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, received, gather));
        (GroupCommit { requests }, task)
    }

    /// Stores `org`'s `batch` with others' and answers once it is stored (or failed). None if
    /// the task is gone (cut off at shutdown): the caller commits the batch itself.
    pub async fn commit(
        &self,
        org: &str,
        batch: Arc<Batch>,
    ) -> Option<Result<Committed, StoreError>> {
        let (stored, answer) = oneshot::channel();
        self.requests
            .send(Request {
                org: org.to_owned(),
                batch,
                stored,
            })
            .ok()?;
        answer.await.ok()
    }
}

async fn run<S: Store>(store: S, mut received: mpsc::UnboundedReceiver<Request>, gather: Duration) {
    while let Some(first) = received.recv().await {
        let mut group = vec![first];
        let until = tokio::time::Instant::now() + gather;
        while group.len() < MOST {
            match tokio::time::timeout_at(until, received.recv()).await {
                Ok(Some(r)) => group.push(r),
                Ok(None) | Err(_) => break,
            }
        }
        store_group(&store, group).await;
    }
}

/// Stores a group in one transaction, else each batch alone; answers each poller.
async fn store_group<S: Store>(store: &S, group: Vec<Request>) {
    let now = Utc::now();
    if group.len() > 1 {
        let batches: Vec<(&str, &Batch)> = group
            .iter()
            .map(|r| (r.org.as_str(), r.batch.as_ref()))
            .collect();
        match store.commit_many(&batches, now).await {
            Ok(committed) if committed.len() == group.len() => {
                for (r, c) in group.into_iter().zip(committed) {
                    let _ = r.stored.send(Ok(c));
                }
                return;
            }
            // Each alone below (a batch stored twice is stored once: its changes are keyed by
            // Okta's uuid).
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, batches = group.len(), "a group commit failed; each batch is committed alone");
            }
        }
    }
    for r in group {
        let result = store.commit(&r.org, &r.batch, Utc::now()).await;
        let _ = r.stored.send(result);
    }
}
