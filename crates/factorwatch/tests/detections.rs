//! The detections over okta-sim's traffic: every named attack mixed into ordinary traffic is found
//! by the rule meant for it, and the ordinary traffic around it raises nothing; `factorwatch
//! detect` on the command line; the daemon storing, delivering and telling findings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use factorwatch::commands::detect;
use factorwatch::detect::{Finding, Settings};
use okta_sim::scenario::attacks::{Attack, Script};
use okta_sim::scenario::{Generator, Scenario};
use serde_json::Value;

/// `days` of an org of `users` going about its day (`per_day` events per user), with each attack
/// in `attacks` starting at the given day offset; the events as NDJSON, and the scripts.
fn org_with_attacks(
    users: usize,
    days: i64,
    per_day: i64,
    attacks: &[(Attack, Duration)],
    seed: u64,
) -> (String, Vec<Script>) {
    let mut g = Generator::new(Scenario::Steady, seed, users, 0.02).unwrap();
    let start = DateTime::parse_from_rfc3339("2026-10-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let mut scripts: Vec<Script> = attacks
        .iter()
        .map(|(a, at)| g.attack(*a, start + *at))
        .collect();
    let mut scripted: Vec<(DateTime<Utc>, Value)> = scripts
        .iter_mut()
        .flat_map(|s| std::mem::take(&mut s.steps))
        .map(|(t, s)| (t, s.event))
        .collect();
    scripted.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    let total = users as i64 * per_day * days;
    let step = Duration::milliseconds(days * 86_400_000 / total);
    let mut out = String::new();
    for i in 0..total {
        let at = start + step * i as i32;
        while scripted.last().is_some_and(|(t, _)| *t <= at) {
            let (_, e) = scripted.pop().unwrap();
            out.push_str(&e.to_string());
            out.push('\n');
        }
        out.push_str(&g.next(at).event.to_string());
        out.push('\n');
    }
    (out, scripts)
}

/// Whether a finding concerns one of the script's victims.
fn about(f: &Finding, victims: &HashSet<String>) -> bool {
    let named = |p: &Option<factorwatch::detect::Party>| {
        p.as_ref()
            .and_then(|p| p.id.as_ref())
            .is_some_and(|id| victims.contains(id))
    };
    named(&f.user)
        || f.rule.as_str() == "bulk_admin_reset" && f.details["users"].as_u64() >= Some(5)
}

#[test]
fn every_named_attack_is_found_by_its_rule_and_ordinary_traffic_raises_nothing() {
    // 300 users, 21 days, each attack in the third week (after a baseline).
    let attacks: Vec<(Attack, Duration)> = Attack::ALL
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, Duration::days(14) + Duration::hours(9 * i as i64)))
        .collect();
    let (events, scripts) = org_with_attacks(300, 21, 6, &attacks, 11);
    let (signals, problems) = detect::from_export(&events);
    assert!(problems.is_empty(), "{problems:?}");
    let findings = detect::run(&Settings::default(), signals);

    let victims: HashSet<String> = scripts.iter().flat_map(|s| s.victims.clone()).collect();
    let mut by_rule: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for f in &findings {
        let e = by_rule.entry(f.rule.as_str()).or_default();
        if about(f, &victims) {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    for s in &scripts {
        let found = findings.iter().any(|f| {
            f.rule.as_str() == s.attack.rule()
                && (s.attack == Attack::MassReset
                    || f.user
                        .as_ref()
                        .and_then(|u| u.id.as_ref())
                        .is_some_and(|id| s.victims.contains(id)))
        });
        assert!(found, "{} was not found: {by_rule:?}", s.attack.name());
    }
    let benign: Vec<&Finding> = findings.iter().filter(|f| !about(f, &victims)).collect();
    assert!(
        benign.is_empty(),
        "ordinary traffic raised {}: {:#?}",
        benign.len(),
        benign.iter().map(|f| &f.summary).collect::<Vec<_>>()
    );
}

#[test]
fn the_same_events_give_the_same_findings_in_any_arrival_order_of_pages() {
    let attacks = [(Attack::HelpDeskTakeover, Duration::days(8))];
    let (events, _) = org_with_attacks(100, 10, 6, &attacks, 3);
    let (signals, _) = detect::from_export(&events);
    let in_order = detect::run(&Settings::default(), signals.clone());
    assert!(!in_order.is_empty());
    // A detector fed the same signals page by page, pages arriving out of order (a hook before
    // the poller catches up), still finds the takeover.
    let mut shuffled = signals;
    let n = shuffled.len();
    shuffled[n / 2..].reverse();
    let mut d = factorwatch::detect::Detector::new(&Settings::default());
    let found: Vec<Finding> = shuffled.iter().flat_map(|s| d.observe(s)).collect();
    assert!(
        found
            .iter()
            .any(|f| f.rule.as_str() == "reset_then_enroll_new_place"),
        "{found:?}"
    );
}
