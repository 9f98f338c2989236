//! `reported_not_me`: the user reported suspicious activity to Okta
//! (`user.account.report_suspicious_activity_by_enduser`, from the link in Okta's own notices)
//! within the window after an MFA change to their account. The user's word joined to the change
//! it most likely refers to.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Rule, draft, keep, lateness};
use crate::detect::finding::{Finding, at, who};
use crate::detect::history::History;
use crate::detect::signal::{Party, Signal, What};
use crate::detect::{RuleId, RuleSettings};

/// Changes named in one finding, at most (the most recent before the report).
const MAX_CHANGES: usize = 10;

#[derive(Debug, Clone)]
struct Change {
    t: DateTime<Utc>,
    id: String,
    what: &'static str,
}

#[derive(Debug, Clone)]
struct Report {
    t: DateTime<Utc>,
    id: String,
    fired: bool,
}

#[derive(Debug, Clone, Default)]
struct UserState {
    user: Option<Arc<Party>>,
    changes: Vec<Change>,
    reports: Vec<Report>,
}

pub struct ReportedNotMe {
    settings: RuleSettings,
    users: HashMap<String, UserState>,
}

impl ReportedNotMe {
    pub fn new(settings: RuleSettings) -> Self {
        ReportedNotMe {
            settings,
            users: HashMap::new(),
        }
    }

    fn judge(&mut self, user: &str, report: usize, out: &mut Vec<Finding>) {
        let w = self.settings.window;
        let Some(state) = self.users.get_mut(user) else {
            return;
        };
        let Some(r) = state.reports.get(report).cloned() else {
            return;
        };
        if r.fired {
            return;
        }
        let mut changes: Vec<&Change> = state
            .changes
            .iter()
            .filter(|c| c.t <= r.t && r.t - c.t <= w)
            .collect();
        if changes.is_empty() {
            return;
        }
        changes.sort_by_key(|c| c.t);
        let changes: Vec<&Change> = changes
            .iter()
            .rev()
            .take(MAX_CHANGES)
            .rev()
            .copied()
            .collect();
        if let Some(r) = state.reports.get_mut(report) {
            r.fired = true;
        }
        let mut d = draft(RuleId::ReportedNotMe, &self.settings, user);
        d.user = state.user.clone();
        d.events = changes.iter().map(|c| (c.t, c.id.clone())).collect();
        d.events.push((r.t, r.id.clone()));
        let list: Vec<String> = changes
            .iter()
            .map(|c| format!("{} at {}", c.what, at(&c.t)))
            .collect();
        d.summary = format!(
            "{} reported suspicious activity to Okta at {}, after these MFA changes to their account: {}. The user's word is the strongest signal there is: treat the changes as an attacker's until shown otherwise — clear the user's sessions, reset their factors with them on the phone, and review what the account did.",
            who(state.user.as_deref()),
            at(&r.t),
            list.join("; "),
        );
        d.details.insert("changes".into(), json!(changes.len()));
        out.push(d.finish());
    }
}

impl Rule for ReportedNotMe {
    fn observe(&mut self, s: &Signal, _: &History, out: &mut Vec<Finding>) {
        let Some(user) = s.user_key().map(str::to_owned) else {
            return;
        };
        let w = self.settings.window;
        let what = match &s.what {
            What::Enrolled { .. } => "a factor enrolled",
            What::Updated { .. } => "a factor updated",
            What::Removed { .. } => "a factor reset",
            What::ResetAll => "every factor reset",
            What::Reported => {
                let state = self.users.entry(user.clone()).or_default();
                state.user = state.user.take().or(s.user.clone());
                keep(
                    &mut state.reports,
                    Report {
                        t: s.published,
                        id: s.id.clone(),
                        fired: false,
                    },
                );
                let i = state.reports.len() - 1;
                self.judge(&user, i, out);
                return;
            }
            _ => return,
        };
        let state = self.users.entry(user.clone()).or_default();
        state.user = state.user.take().or(s.user.clone());
        keep(
            &mut state.changes,
            Change {
                t: s.published,
                id: s.id.clone(),
                what,
            },
        );
        // A change that arrives after the report it preceded.
        let waiting: Vec<usize> = (0..state.reports.len())
            .filter(|&i| {
                let r = &state.reports[i];
                !r.fired && r.t >= s.published && r.t - s.published <= w
            })
            .collect();
        for i in waiting {
            self.judge(&user, i, out);
        }
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let horizon = now - self.settings.window - lateness();
        self.users.retain(|_, u| {
            u.changes.retain(|c| c.t >= horizon);
            u.reports.retain(|r| r.t >= horizon);
            !(u.changes.is_empty() && u.reports.is_empty())
        });
    }

    fn approx_bytes(&self) -> usize {
        self.users
            .values()
            .map(|u| 160 + u.changes.len() * 96 + u.reports.len() * 80)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::classify::factor::Kind;
    use crate::detect::RuleId;
    use crate::detect::signal::What;

    const RULE: RuleId = RuleId::ReportedNotMe;
    const DAY: i64 = 24 * 60;

    #[test]
    fn a_report_after_a_change_fires_in_either_order() {
        let change = signal("c", 0, enrolled(Kind::Sms), "u", "u", away());
        let report = signal("r", 2 * DAY, What::Reported, "u", "u", home());
        let f = of(&run(&[change.clone(), report.clone()]), RULE);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].event_ids, ["c", "r"]);
        assert_eq!(of(&run(&[report, change]), RULE).len(), 1);
    }

    #[test]
    fn near_misses_do_not_fire() {
        let change = signal("c", 0, enrolled(Kind::Sms), "u", "u", away());
        let late = signal("r", 8 * DAY, What::Reported, "u", "u", home());
        assert!(
            of(&run(&[change.clone(), late]), RULE).is_empty(),
            "after 7 days"
        );
        let other = signal("r", DAY, What::Reported, "v", "v", home());
        assert!(of(&run(&[change, other]), RULE).is_empty(), "another user");
        let sign_in = signal("s", 0, What::SignIn, "u", "u", away());
        let report = signal("r", DAY, What::Reported, "u", "u", home());
        assert!(
            of(&run(&[sign_in, report]), RULE).is_empty(),
            "no MFA change"
        );
    }
}
