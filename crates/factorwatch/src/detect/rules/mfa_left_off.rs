//! `mfa_left_off`: a user's last factor is removed — every factor reset at once, or the last one
//! factorwatch knew of — and nothing is enrolled for them within the window. Until then the
//! account signs in with its password alone, or enrolls whatever factor whoever signs in next
//! brings (Elastic's "MFA Deactivation with no Re-Activation", 12 h, on the user's own events).
//!
//! It fires when the events' clock passes the deadline: over an export that ends before it, not
//! yet.

use std::sync::Arc;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Rule, draft, keep, lateness};
use crate::detect::finding::{Finding, at, span, who};
use crate::detect::history::History;
use crate::detect::signal::{Party, Signal, What};
use crate::detect::{RuleId, RuleSettings};

#[derive(Debug, Clone)]
struct Open {
    t: DateTime<Utc>,
    events: Vec<(DateTime<Utc>, String)>,
    user: Option<Arc<Party>>,
    actor: Option<Arc<Party>>,
    deadline: DateTime<Utc>,
}

pub struct MfaLeftOff {
    settings: RuleSettings,
    open: HashMap<String, Open>,
    deadlines: BTreeSet<(DateTime<Utc>, String)>,
    /// Enrollments seen, per user (for a removal that arrives after them).
    enrolled: HashMap<String, Vec<DateTime<Utc>>>,
}

impl MfaLeftOff {
    pub fn new(settings: RuleSettings) -> Self {
        MfaLeftOff {
            settings,
            open: HashMap::new(),
            deadlines: BTreeSet::new(),
            enrolled: HashMap::new(),
        }
    }
}

impl Rule for MfaLeftOff {
    fn observe(&mut self, s: &Signal, history: &History, _: &mut Vec<Finding>) {
        let Some(user) = s.user_key().map(str::to_owned) else {
            return;
        };
        let w = self.settings.window;
        match &s.what {
            What::Enrolled { .. } => {
                keep(self.enrolled.entry(user.clone()).or_default(), s.published);
                if self
                    .open
                    .get(&user)
                    .is_some_and(|o| o.t <= s.published && s.published <= o.deadline)
                {
                    self.open.remove(&user);
                }
            }
            What::ResetAll | What::Removed { .. } => {
                let before = history.inventory(&user);
                // One factor removed is the last only if every factor the user has is known
                // (seen since a reset of all of them): one enrolled before factorwatch's
                // history began may remain.
                let last = match s.what {
                    What::ResetAll => true,
                    _ => before.complete && !before.is_empty() && before.after(&s.what).is_empty(),
                };
                if !last {
                    return;
                }
                if let Some(o) = self.open.get_mut(&user)
                    && s.published >= o.t
                    && s.published <= o.deadline
                {
                    keep(&mut o.events, (s.published, s.id.clone()));
                    return;
                }
                // Already enrolled again (that enrollment came in first)?
                let again = self.enrolled.get(&user).is_some_and(|ts| {
                    ts.iter()
                        .any(|t| *t >= s.published && *t - s.published <= w)
                });
                if again {
                    return;
                }
                let deadline = s.published + w;
                self.deadlines.insert((deadline, user.clone()));
                self.open.insert(
                    user,
                    Open {
                        t: s.published,
                        events: vec![(s.published, s.id.clone())],
                        user: s.user.clone(),
                        actor: s.actor().cloned(),
                        deadline,
                    },
                );
            }
            _ => {}
        }
    }

    fn advance(&mut self, now: DateTime<Utc>, _: &History, out: &mut Vec<Finding>) {
        while let Some((deadline, user)) = self.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if self.open.get(&user).is_none_or(|o| o.deadline != deadline) {
                continue;
            }
            let Some(o) = self.open.remove(&user) else {
                continue;
            };
            let mut d = draft(RuleId::MfaLeftOff, &self.settings, &user);
            d.user = o.user.clone();
            d.actor = o.actor.clone();
            d.events = o.events.clone();
            d.summary = format!(
                "{}'s last MFA factor was removed at {} by {}, and nothing was enrolled in the {} after. The account now signs in with its password alone, or enrolls the factor of whoever signs in next with it. Ask the user to enroll now, or suspend the account until they can.",
                who(o.user.as_deref()),
                at(&o.t),
                who(o.actor.as_deref()),
                span(self.settings.window),
            );
            d.details.insert(
                "hours".into(),
                json!(self.settings.window.num_minutes() as f64 / 60.0),
            );
            out.push(d.finish());
        }
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let horizon = now - self.settings.window - lateness();
        self.enrolled.retain(|_, ts| {
            ts.retain(|t| *t >= horizon);
            !ts.is_empty()
        });
    }

    fn approx_bytes(&self) -> usize {
        self.open.len() * 256 + self.deadlines.len() * 64 + self.enrolled.len() * 80
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::classify::factor::Kind;
    use crate::detect::RuleId;
    use crate::detect::signal::What;

    const RULE: RuleId = RuleId::MfaLeftOff;

    #[test]
    fn a_reset_all_with_nothing_enrolled_fires_once_the_clock_passes_twelve_hours() {
        let reset = signal("r", 0, What::ResetAll, "u", "admin", home());
        let six_hours = signal("t1", 6 * 60, What::SignIn, "v", "v", home());
        assert!(
            of(&run(&[reset.clone(), six_hours.clone()]), RULE).is_empty(),
            "an export ending 6 h after"
        );
        let thirteen = signal("t2", 13 * 60, What::SignIn, "v", "v", home());
        let f = of(&run(&[reset.clone(), six_hours, thirteen.clone()]), RULE);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].event_ids, ["r"]);
        let later = signal("t3", 40 * 60, What::SignIn, "v", "v", home());
        assert_eq!(of(&run(&[reset, thirteen, later]), RULE).len(), 1, "once");
    }

    #[test]
    fn near_misses_do_not_fire() {
        let reset = signal("r", 0, What::ResetAll, "u", "admin", home());
        let again = signal("e", 30, enrolled(Kind::Push), "u", "u", home());
        let tick = signal("t", 24 * 60, What::SignIn, "v", "v", home());
        assert!(of(&run(&[reset.clone(), again.clone(), tick.clone()]), RULE).is_empty());
        assert!(
            of(&run(&[again, reset, tick.clone()]), RULE).is_empty(),
            "out of order"
        );

        // One of two known factors removed.
        let s = [
            signal("z", -90, What::ResetAll, "u", "u", home()),
            signal("a", -60, enrolled(Kind::Push), "u", "u", home()),
            signal("b", -50, enrolled(Kind::Sms), "u", "u", home()),
            signal("r", 0, removed(Kind::Sms), "u", "u", home()),
            tick.clone(),
        ];
        assert!(of(&run(&s), RULE).is_empty(), "not the last factor");

        // The only factor seen removed, but others may predate the history.
        let s = [
            signal("a", -60, enrolled(Kind::Push), "u", "u", home()),
            signal("r", 0, removed(Kind::Push), "u", "u", home()),
            tick.clone(),
        ];
        assert!(of(&run(&s), RULE).is_empty(), "an incomplete inventory");

        // The last one of a complete inventory removed: fires.
        let s = [
            signal("z", -90, What::ResetAll, "u", "u", home()),
            signal("a", -60, enrolled(Kind::Push), "u", "u", home()),
            signal("r", 0, removed(Kind::Push), "u", "u", home()),
            tick,
        ];
        assert_eq!(of(&run(&s), RULE).len(), 1);
    }
}
