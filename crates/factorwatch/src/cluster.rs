//! Several replicas on one shared store: each org's pollers and detections run on exactly one
//! replica at a time. Every replica says it is alive (a heartbeat row); each org belongs to the
//! live replica that rendezvous hashing picks for it, so orgs spread evenly and only the orgs of
//! a replica that joins or leaves move. The owner holds the org's lease (renewed every third of
//! its life) and its pollers commit under the lease's fencing token: a replica paused or cut off
//! past its lease can never commit over the new owner. Hooks are taken by every replica, and the
//! outbox is shared through claims ([`crate::store::postgres`]).

use std::collections::HashMap;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::pipeline::detection::DetectionWorker;
use crate::sources::poller::Poller;
use crate::store::{AnyStore, Fence, Store};

/// Which of `live` replicas owns `org`: the highest hash of (org, replica).
pub fn owner_of<'a>(org: &str, live: &'a [String]) -> Option<&'a String> {
    live.iter().max_by_key(|r| {
        let d = Sha256::digest(format!("{org}\n{r}"));
        u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    })
}

/// What runs for one org while this replica holds it.
#[derive(Clone)]
pub struct OrgWork {
    pub org: String,
    pub pollers: Vec<Poller<AnyStore>>,
    pub detection: Option<DetectionWorker<AnyStore>>,
}

struct Running {
    token: i64,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Running {
    fn alive(&self) -> bool {
        self.handles.iter().any(|h| !h.is_finished())
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let aborts: Vec<_> = self.handles.iter().map(JoinHandle::abort_handle).collect();
        let all = futures_util::future::join_all(self.handles);
        if tokio::time::timeout(crate::daemon::STOP_WITHIN, all)
            .await
            .is_err()
        {
            for a in aborts {
                a.abort();
            }
        }
    }
}

/// How long a replica waits between stopping an org's pollers and releasing its lease.
fn handover_grace(lease: Duration) -> Duration {
    (lease / 10).clamp(Duration::from_millis(200), Duration::from_secs(1))
}

pub struct Supervisor {
    pub store: AnyStore,
    pub replica: String,
    pub work: Vec<OrgWork>,
    /// A lease's life; renewed every third of it.
    pub lease: Duration,
}

impl Supervisor {
    fn start(&self, w: &OrgWork, token: i64) -> Running {
        let (stop, rx) = watch::channel(false);
        let fence = Fence {
            replica: self.replica.clone(),
            token,
        };
        let mut handles = Vec::new();
        for p in &w.pollers {
            let mut p = p.clone();
            p.fence = Some(fence.clone());
            let rx = rx.clone();
            handles.push(tokio::spawn(async move {
                let _ = p.run(rx).await;
            }));
        }
        if let Some(d) = &w.detection {
            handles.push(tokio::spawn(d.clone().run(rx.clone())));
        }
        info!(org = %w.org, token, replica = %self.replica, "this replica now polls the org");
        Running {
            token,
            stop,
            handles,
        }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let ttl = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(15));
        let tick = self.lease / 3;
        let mut running: HashMap<String, Running> = HashMap::new();
        loop {
            let now = chrono::Utc::now();
            match self.store.heartbeat(&self.replica, now, ttl).await {
                Ok(live) => {
                    // Orgs that now belong to another replica: stop them all, wait once for
                    // requests their pollers dropped (Okta may still answer them for a moment),
                    // then let the next owners in.
                    let mut leaving = Vec::new();
                    for w in &self.work {
                        if owner_of(&w.org, &live) != Some(&self.replica)
                            && let Some(r) = running.remove(&w.org)
                        {
                            info!(org = %w.org, "handing the org to another replica");
                            r.stop().await;
                            leaving.push(w.org.clone());
                        }
                    }
                    if !leaving.is_empty() {
                        tokio::time::sleep(handover_grace(self.lease)).await;
                        for org in &leaving {
                            if let Err(e) = self.store.release_lease(org, &self.replica).await {
                                warn!(org = %org, error = %e, "cannot release the lease; it lapses");
                            }
                        }
                    }
                    for w in &self.work {
                        if owner_of(&w.org, &live) != Some(&self.replica) {
                            continue;
                        }
                        match self
                            .store
                            .acquire_lease(&w.org, &self.replica, now, ttl)
                            .await
                        {
                            Ok(Some(token)) => {
                                let current = running.get(&w.org).map(|r| (r.token, r.alive()));
                                if current != Some((token, true)) {
                                    if let Some(r) = running.remove(&w.org) {
                                        r.stop().await;
                                    }
                                    running.insert(w.org.clone(), self.start(w, token));
                                }
                            }
                            // Still held by the replica it belonged to: it lapses or is released.
                            Ok(None) => {
                                if let Some(r) = running.remove(&w.org) {
                                    r.stop().await;
                                }
                            }
                            // The store does not answer: what runs keeps running (its commits are
                            // fenced if the lease is lost meanwhile).
                            Err(e) => warn!(org = %w.org, error = %e, "cannot renew the lease"),
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot say this replica is alive"),
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => break,
            }
        }
        for (org, r) in running.drain() {
            r.stop().await;
            let _ = self.store.release_lease(&org, &self.replica).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orgs_spread_over_replicas_and_only_a_leaver_s_orgs_move() {
        let three: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let orgs: Vec<String> = (0..300).map(|i| format!("org{i}")).collect();
        let owners: Vec<&String> = orgs.iter().filter_map(|o| owner_of(o, &three)).collect();
        for r in &three {
            let n = owners.iter().filter(|o| **o == r).count();
            assert!((70..=130).contains(&n), "{r}: {n} of 300");
        }
        let two: Vec<String> = vec!["a".into(), "c".into()];
        for (o, before) in orgs.iter().zip(&owners) {
            let after = owner_of(o, &two);
            if before.as_str() != "b" {
                assert_eq!(after, Some(*before), "{o} moved though its replica stayed");
            }
        }
        assert_eq!(owner_of("x", &[]), None);
    }
}
