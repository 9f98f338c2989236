//! Okta's side of Event Hooks: batch events persisted close together, deliver each batch with at
//! most one retry, duplicate and reorder at the configured rates, and log final failures as
//! `event_hook.delivery` in the System Log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::json;

use super::{Org, Pending, lock};
use crate::hooks::delivery::{self, Record, Target};
use crate::logs::okta_time;

/// Events as (uuid, serialized event).
type Events = Vec<(String, Arc<str>)>;

/// One envelope to send to one hook.
struct Batch {
    target: Target,
    delivery_id: String,
    events: Events,
    duplicate: bool,
}

/// A held-back batch goes out after the next batch to the same hook, or after this long if none
/// comes.
const MAX_HOLD: Duration = Duration::from_secs(5);

pub(super) async fn run(org: Arc<Org>) {
    // Per hook: batches held back (reordering), and when they must go out at the latest.
    let mut held: HashMap<String, (tokio::time::Instant, Vec<Batch>)> = HashMap::new();
    loop {
        let deadline = held.values().map(|(at, _)| *at).min();
        let woken = tokio::select! {
            () = org.pending_added.notified() => true,
            () = sleep_until(deadline) => false,
        };
        if !woken {
            // Nothing came after the held batches in time: send them now.
            let now = tokio::time::Instant::now();
            let due: Vec<String> = held
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for hook in due {
                if let Some((_, batches)) = held.remove(&hook) {
                    spawn_in_order(&org, batches);
                }
            }
            continue;
        }
        let Ok(settings) = lock(&org.faults).map(|f| f.hooks.clone()) else {
            continue;
        };
        // Events persisted within the window share a delivery.
        tokio::time::sleep(Duration::from_millis(settings.batch_window_ms)).await;
        let pending: Vec<Pending> = match lock(&org.pending) {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => continue,
        };
        let mut per_hook: Vec<(Target, Events)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for p in pending {
            let i = *index.entry(p.target.hook_id.clone()).or_insert_with(|| {
                per_hook.push((p.target.clone(), Vec::new()));
                per_hook.len() - 1
            });
            per_hook[i].1.push((p.uuid, p.text));
        }
        for (target, events) in per_hook {
            let mut batches: Vec<Batch> = Vec::new();
            {
                let Ok(mut rng) = lock(&org.rng) else {
                    continue;
                };
                for chunk in events.chunks(settings.max_batch.max(1)) {
                    batches.push(Batch {
                        target: target.clone(),
                        delivery_id: random_uuid(&mut *rng),
                        events: chunk.to_vec(),
                        duplicate: rng.gen_bool(settings.duplicate_rate),
                    });
                }
            }
            // Reordering: a batch held back goes out after the next one to the same hook.
            let (newly_held, mut in_order): (Vec<Batch>, Vec<Batch>) = match lock(&org.rng) {
                Ok(mut rng) => batches
                    .into_iter()
                    .partition(|_| rng.gen_bool(settings.reorder_rate)),
                Err(_) => (Vec::new(), batches),
            };
            if !in_order.is_empty()
                && let Some((_, earlier)) = held.remove(&target.hook_id)
            {
                in_order.extend(earlier);
            }
            if !newly_held.is_empty() {
                record_held(&org, &newly_held);
                held.entry(target.hook_id.clone())
                    .or_insert_with(|| (tokio::time::Instant::now() + MAX_HOLD, Vec::new()))
                    .1
                    .extend(newly_held);
            }
            spawn_in_order(&org, in_order);
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Delivers `batches` one after the other (hooks are called concurrently, each hook's batches
/// in order).
fn spawn_in_order(org: &Arc<Org>, batches: Vec<Batch>) {
    if batches.is_empty() {
        return;
    }
    let org = org.clone();
    tokio::spawn(async move {
        for batch in batches {
            deliver(&org, batch).await;
        }
    });
}

/// Notes in the delivery log that these batches are held back (a test can wait for it).
fn record_held(org: &Org, batches: &[Batch]) {
    if let Ok(mut d) = lock(&org.deliveries) {
        for batch in batches {
            d.push(Record {
                kind: "held",
                hook_id: batch.target.hook_id.clone(),
                delivery_id: Some(batch.delivery_id.clone()),
                attempt: 0,
                duplicate: false,
                sent_at: okta_time(org.now()),
                status: None,
                error: None,
                events: batch.events.iter().map(|(u, _)| u.clone()).collect(),
            });
        }
    }
}

async fn deliver(org: &Org, batch: Batch) {
    let first = send(org, &batch, 1, false).await;
    let last = if !first.succeeded() && first.retryable() {
        tokio::time::sleep(delivery::RETRY_DELAY).await;
        send(org, &batch, 2, false).await
    } else {
        first
    };
    if !last.succeeded() {
        log_failure(org, &batch.target, &last);
    } else if batch.duplicate {
        send(org, &batch, 1, true).await;
    }
}

/// One POST of the batch's envelope, recorded for `GET /sim/hooks/deliveries`.
async fn send(org: &Org, batch: &Batch, attempt: u8, duplicate: bool) -> delivery::Outcome {
    let texts: Vec<&str> = batch.events.iter().map(|(_, t)| &**t).collect();
    let body = delivery::envelope(
        &org.config.base_url,
        &batch.target.hook_id,
        &batch.delivery_id,
        &texts,
        org.now(),
    );
    let sent_at = okta_time(org.now());
    let outcome = delivery::post(&org.http, &batch.target, body).await;
    if let Ok(mut d) = lock(&org.deliveries) {
        d.push(Record {
            kind: "delivery",
            hook_id: batch.target.hook_id.clone(),
            delivery_id: Some(batch.delivery_id.clone()),
            attempt,
            duplicate,
            sent_at,
            status: outcome.status,
            error: outcome.error.clone(),
            events: batch.events.iter().map(|(u, _)| u.clone()).collect(),
        });
    }
    outcome
}

/// Okta logs a failed delivery (and only a failed one) as `event_hook.delivery`.
fn log_failure(org: &Org, target: &Target, outcome: &delivery::Outcome) {
    let reason = match (outcome.status, &outcome.error) {
        (Some(s), _) => format!("Event hook delivery failed: HTTP {s}"),
        (None, Some(e)) => format!("Event hook delivery failed: {e}"),
        (None, None) => "Event hook delivery failed".to_owned(),
    };
    let event = json!({
        "eventType": "event_hook.delivery",
        "displayMessage": "Event hook delivery",
        "severity": "WARN",
        "actor": { "id": "0oasystemprincipal00", "type": "SystemPrincipal", "alternateId": "system@okta.com", "displayName": "Okta System" },
        "outcome": { "result": "FAILURE", "reason": reason },
        "target": [{ "id": target.hook_id, "type": "EventHook", "alternateId": target.uri, "displayName": target.uri }],
    });
    // Nothing subscribes to `event_hook.delivery` (it is not hook-eligible), so no loop.
    let _ = org.persist(vec![event], false);
}

fn random_uuid(rng: &mut impl Rng) -> String {
    let b: [u8; 16] = rng.r#gen();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]]),
    )
}
