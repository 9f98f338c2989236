//! What `shared_phone` and `shared_device` have in common: one value (a phone number's keyed
//! hash, a device id) bound to `threshold` or more distinct users within the window.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Rule, draft, keep, lateness};
use crate::detect::finding::{Finding, at, who};
use crate::detect::history::History;
use crate::detect::signal::{Party, Signal};
use crate::detect::{RuleId, RuleSettings};

#[derive(Debug, Clone)]
struct Binding {
    t: DateTime<Utc>,
    id: String,
    user: String,
    party: Option<Arc<Party>>,
}

/// The rule, for one kind of value.
pub struct Shared {
    pub rule: RuleId,
    pub settings: RuleSettings,
    /// The value a signal binds to its user, if any.
    pub value: fn(&Signal) -> Option<String>,
    /// "phone number", "Okta Verify device".
    pub noun: &'static str,
    /// Why it matters, for the summary.
    pub why: &'static str,
    bindings: HashMap<String, Vec<Binding>>,
    /// Per value, the sequence already reported: its first and last binding's time.
    reported: HashMap<String, (DateTime<Utc>, DateTime<Utc>)>,
}

impl Shared {
    pub fn new(
        rule: RuleId,
        settings: RuleSettings,
        value: fn(&Signal) -> Option<String>,
        noun: &'static str,
        why: &'static str,
    ) -> Shared {
        Shared {
            rule,
            settings,
            value,
            noun,
            why,
            bindings: HashMap::new(),
            reported: HashMap::new(),
        }
    }
}

impl Rule for Shared {
    fn observe(&mut self, s: &Signal, _: &History, out: &mut Vec<Finding>) {
        let (Some(value), Some(user)) = ((self.value)(s), s.user_key()) else {
            return;
        };
        let w = self.settings.window;
        let list = self.bindings.entry(value.clone()).or_default();
        keep(
            list,
            Binding {
                t: s.published,
                id: s.id.clone(),
                user: user.to_owned(),
                party: s.user.clone(),
            },
        );
        if let Some((first, last)) = self.reported.get_mut(&value)
            && s.published + w >= *first
            && s.published <= *last + w
        {
            *first = (*first).min(s.published);
            *last = (*last).max(s.published);
            return;
        }
        // Users bound within the window either side of this binding (events may come late).
        let near: Vec<&Binding> = list
            .iter()
            .filter(|b| (b.t - s.published).abs() <= w)
            .collect();
        let mut users: Vec<&str> = near.iter().map(|b| b.user.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        if users.len() < self.settings.threshold.max(2) as usize {
            return;
        }
        // One binding per user (the earliest), so the list reads as the users who share it.
        let mut firsts: Vec<&Binding> = Vec::new();
        for b in near {
            match firsts.iter_mut().find(|f| f.user == b.user) {
                Some(f) if b.t < f.t => *f = b,
                Some(_) => {}
                None => firsts.push(b),
            }
        }
        firsts.sort_by_key(|b| b.t);
        let (first, last) = (
            firsts.first().map_or(s.published, |b| b.t),
            firsts.last().map_or(s.published, |b| b.t),
        );
        self.reported.insert(value.clone(), (first, last));
        let names: Vec<String> = firsts
            .iter()
            .take(10)
            .map(|b| who(b.party.as_deref()))
            .collect();
        let mut d = draft(self.rule, &self.settings, &value);
        d.user = s.user.clone();
        d.actor = s.actor().cloned();
        d.events = firsts.iter().map(|b| (b.t, b.id.clone())).collect();
        d.summary = format!(
            "The same {} was enrolled for {} users between {} and {}: {}. {}",
            self.noun,
            users.len(),
            at(&first),
            at(&last),
            names.join(", "),
            self.why,
        );
        d.details.insert("users".into(), json!(users.len()));
        d.details.insert("user_logins".into(), json!(names));
        out.push(d.finish());
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let w = self.settings.window;
        let horizon = now - w - lateness();
        self.bindings.retain(|_, list| {
            list.retain(|b| b.t >= horizon);
            !list.is_empty()
        });
        self.reported.retain(|_, (_, last)| *last + w >= horizon);
    }

    fn approx_bytes(&self) -> usize {
        self.bindings
            .iter()
            .map(|(k, v)| k.capacity() + 64 + v.len() * 160)
            .sum::<usize>()
            + self.reported.len() * 96
    }
}
