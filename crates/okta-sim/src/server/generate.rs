//! Feeding the scenario generator's output into the org: a backlog at start, then live traffic.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Org;
use crate::error::OktaError;
use crate::scenario::attacks::{Attack, Script};
use crate::scenario::{Generator, Step};

/// Persisting in chunks keeps a million-event backlog from being held as JSON values at once.
const CHUNK: usize = 10_000;

/// Loads the users, then `events` events published evenly over `span` up to now (persisted now,
/// keeping their `published`, as a log that already existed).
pub fn backlog(
    org: &Org,
    generator: &mut Generator,
    events: u64,
    span: chrono::Duration,
) -> Result<(), OktaError> {
    backlog_with_attacks(org, generator, events, span, &[]).map(|_| ())
}

/// [`backlog`], with attack scripts mixed in: each `(attack, ago)` starts `ago` before now.
/// Returns the scripts (what each did, to whom).
pub fn backlog_with_attacks(
    org: &Org,
    generator: &mut Generator,
    events: u64,
    span: chrono::Duration,
    attacks: &[(Attack, chrono::Duration)],
) -> Result<Vec<Script>, OktaError> {
    let now = org.now();
    let start = now - span;
    let mut scripts: Vec<Script> = attacks
        .iter()
        .map(|(a, ago)| generator.attack(*a, now - *ago))
        .collect();
    let mut scripted: Vec<(DateTime<Utc>, Step)> = scripts
        .iter_mut()
        .flat_map(|s| std::mem::take(&mut s.steps))
        .collect();
    scripted.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    org.upsert_users(generator.users())?;
    let step_ms = if events == 0 {
        0
    } else {
        span.num_milliseconds() / events as i64
    };
    let mut i = 0;
    while i < events {
        let n = CHUNK.min((events - i) as usize);
        let mut steps: Vec<Step> = Vec::with_capacity(n);
        for k in 0..n {
            let at = start + chrono::Duration::milliseconds(step_ms * (i as i64 + k as i64));
            while scripted.last().is_some_and(|(t, _)| *t <= at) {
                if let Some((_, s)) = scripted.pop() {
                    steps.push(s);
                }
            }
            steps.push(generator.next(at));
        }
        apply(org, steps, true)?;
        i += n as u64;
    }
    // Script events after the backlog's last (an attack placed near now).
    let rest: Vec<Step> = scripted.into_iter().rev().map(|(_, s)| s).collect();
    if !rest.is_empty() {
        apply(org, rest, true)?;
    }
    Ok(scripts)
}

/// Persists the takeover script, ending now.
pub fn takeover(org: &Org, generator: &mut Generator) -> Result<(), OktaError> {
    let steps = generator.takeover(org.now() - chrono::Duration::seconds(90));
    apply(org, steps, true)
}

/// Generates `rate` events per second, published as they are persisted, until cancelled.
pub async fn live(org: Arc<Org>, mut generator: Generator, rate: f64) {
    if rate <= 0.0 {
        return;
    }
    let period = Duration::from_secs_f64((1.0 / rate).max(0.001));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let now: DateTime<Utc> = org.now();
        let step = generator.next(now);
        let _ = apply(&org, vec![step], false);
    }
}

fn apply(org: &Org, steps: Vec<Step>, late: bool) -> Result<(), OktaError> {
    let mut events = Vec::with_capacity(steps.len());
    let mut users: Vec<Value> = Vec::new();
    for s in steps {
        events.push(s.event);
        users.extend(s.changed_user);
    }
    if !users.is_empty() {
        org.upsert_users(users)?;
    }
    org.persist(events, late)?;
    Ok(())
}
