//! One file per rule, each behind [`Rule`]. A rule keeps only what its window needs, keyed by
//! user, actor, phone or device, and forgets it once the window has passed; it fires once per
//! sequence (a sequence ends when its window passes without a further event) and again for a
//! new one.

mod bulk_admin_reset;
mod bypass_burst;
mod factor_downgrade;
mod mfa_left_off;
mod reported_not_me;
mod reset_then_enroll_new_place;
mod shared;
mod shared_device;
mod shared_phone;
mod support_initiated_reset;

use chrono::{DateTime, Utc};

use super::finding::{Draft, Finding};
use super::history::History;
use super::signal::Signal;
use super::{RuleId, RuleSettings, Settings};

/// A rule: sees each signal (with the history as it was before it) and the clock's moves.
pub trait Rule: Send + Sync {
    fn observe(&mut self, s: &Signal, history: &History, out: &mut Vec<Finding>);

    /// The clock reached `now`: fire what is due. Called at every move of the clock: cheap (a
    /// look at the earliest deadline).
    fn advance(&mut self, _now: DateTime<Utc>, _history: &History, _out: &mut Vec<Finding>) {}

    /// Forget what no window reaches any more. Called about once an hour of the events' time:
    /// it walks everything the rule holds.
    fn prune(&mut self, now: DateTime<Utc>);

    /// Bytes held, approximately.
    fn approx_bytes(&self) -> usize;
}

/// The rules that are on.
pub fn build(settings: &Settings) -> Vec<Box<dyn Rule>> {
    let mut rules: Vec<Box<dyn Rule>> = Vec::new();
    for id in RuleId::ALL {
        let s = settings.get(id);
        if !s.enabled {
            continue;
        }
        rules.push(match id {
            RuleId::ResetThenEnrollNewPlace => {
                Box::new(reset_then_enroll_new_place::ResetThenEnrollNewPlace::new(s))
            }
            RuleId::FactorDowngrade => Box::new(factor_downgrade::FactorDowngrade::new(s)),
            RuleId::BulkAdminReset => Box::new(bulk_admin_reset::BulkAdminReset::new(s)),
            RuleId::SharedPhone => Box::new(shared_phone::rule(s)),
            RuleId::SharedDevice => Box::new(shared_device::rule(s)),
            RuleId::SupportInitiatedReset => {
                Box::new(support_initiated_reset::SupportInitiatedReset::new(s))
            }
            RuleId::MfaLeftOff => Box::new(mfa_left_off::MfaLeftOff::new(s)),
            RuleId::BypassBurst => Box::new(bypass_burst::BypassBurst::new(s)),
            RuleId::ReportedNotMe => Box::new(reported_not_me::ReportedNotMe::new(s)),
            // Made by the report page, never by the detector.
            RuleId::ReportedByUser => continue,
        });
    }
    rules
}

/// Appends to one of a rule's per-user lists. Such a list usually holds one or two entries,
/// kept a day, for every user of every org (an MSSP's process holds hundreds of thousands):
/// grown one entry at a time up to four, where `push` would reserve four at once, then doubling.
pub(crate) fn keep<T>(list: &mut Vec<T>, entry: T) {
    if list.len() == list.capacity() && list.len() < 4 {
        list.reserve_exact(1);
    }
    list.push(entry);
}

/// How long past its window a rule keeps an event, for events that arrive late.
pub(crate) fn lateness() -> chrono::Duration {
    chrono::Duration::hours(24)
}

/// Starts a finding of `rule`.
pub(crate) fn draft(rule: RuleId, settings: &RuleSettings, key: &str) -> Draft {
    Draft {
        rule,
        severity: settings.severity,
        key: key.to_owned(),
        user: None,
        actor: None,
        events: Vec::new(),
        summary: String::new(),
        details: serde_json::Map::new(),
    }
}

/// A timestamped event of one sequence: (published, event id, what it counts — a user, an
/// attempt).
pub(crate) type Mark = (DateTime<Utc>, String, String);

/// The events of a sequence that includes time `t`: the first window `[s, s + window]` holding
/// `t` in which at least `threshold` distinct things are counted; its events. `marks` need not
/// be sorted.
pub(crate) fn dense_window(
    marks: &[Mark],
    t: DateTime<Utc>,
    window: chrono::Duration,
    threshold: u32,
) -> Option<Vec<Mark>> {
    let mut sorted: Vec<&Mark> = marks.iter().collect();
    sorted.sort();
    for start in sorted.iter().filter(|m| m.0 <= t && t - m.0 <= window) {
        let inside: Vec<Mark> = sorted
            .iter()
            .filter(|m| m.0 >= start.0 && m.0 - start.0 <= window)
            .map(|m| (*m).clone())
            .collect();
        let mut counted: Vec<&str> = inside.iter().map(|m| m.2.as_str()).collect();
        counted.sort_unstable();
        counted.dedup();
        if counted.len() >= threshold as usize {
            return Some(inside);
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod testing {
    //! Building signals for the rules' tests.
    use chrono::{DateTime, Utc};

    use crate::classify::factor::Kind;
    use crate::detect::signal::{Party, Place, Signal, What};

    /// 2026-01-01T00:00:00Z plus `minutes`.
    pub fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_767_225_600 + minutes * 60, 0).unwrap_or_default()
    }

    pub fn person(id: &str) -> Party {
        Party {
            id: Some(id.into()),
            login: Some(format!("{id}@example.com")),
            display_name: None,
            kind: Some("User".into()),
        }
    }

    pub fn home() -> Place {
        Place {
            ip: Some("198.51.100.20".into()),
            country: Some("France".into()),
            device: Some("CHROME on Mac OS X".into()),
        }
    }

    pub fn away() -> Place {
        Place {
            ip: Some("185.220.101.4".into()),
            country: Some("Romania".into()),
            device: Some("FIREFOX on Windows 10".into()),
        }
    }

    /// A signal `id` at `minutes`: `what` to `user` by `actor` from `place`.
    pub fn signal(
        id: &str,
        minutes: i64,
        what: What,
        user: &str,
        actor: &str,
        place: Place,
    ) -> Signal {
        Signal {
            id: id.into(),
            published: at(minutes),
            event_type: "test".into(),
            what,
            user: Some(person(user).into()),
            actor: Some(person(actor).into()),
            place,
            session: None,
            by_user: false,
        }
    }

    pub fn enrolled(kind: Kind) -> What {
        What::Enrolled {
            factor: kind,
            phone: None,
            device: None,
        }
    }

    pub fn removed(kind: Kind) -> What {
        What::Removed { factor: kind }
    }

    /// Runs a detector with default settings over the signals; the rules that fired, in order.
    pub fn run(signals: &[Signal]) -> Vec<crate::detect::Finding> {
        run_with(&crate::detect::Settings::default(), signals)
    }

    pub fn run_with(
        settings: &crate::detect::Settings,
        signals: &[Signal],
    ) -> Vec<crate::detect::Finding> {
        let mut d = crate::detect::Detector::new(settings);
        signals.iter().flat_map(|s| d.observe(s)).collect()
    }

    /// The findings of one rule.
    pub fn of(
        findings: &[crate::detect::Finding],
        rule: crate::detect::RuleId,
    ) -> Vec<crate::detect::Finding> {
        findings
            .iter()
            .filter(|f| f.rule == rule)
            .cloned()
            .collect()
    }
}
