//! `reset_then_enroll_new_place`: a user's factors are reset (one, or all; by anyone), and within
//! the window the user's account enrolls a factor from a network, country or device the user had
//! not been seen at in the 30 days before the reset — the help-desk social-engineering takeover
//! (Okta's advisory of 31 August 2023; CISA AA23-320A).
//!
//! The baseline ends an hour (the window) before the reset: an attacker signs in just before
//! resetting or enrolling, and that sign-in must not make their place "seen". A user with no
//! history in the baseline is not judged (nothing is new to someone never seen).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Rule, draft, keep, lateness};
use crate::detect::finding::{Finding, at, span, who};
use crate::detect::history::{Element, History};
use crate::detect::signal::{Party, Place, Signal, What};
use crate::detect::{RuleId, RuleSettings};

/// The baseline: this long before the reset.
pub const BASELINE: chrono::Duration = chrono::Duration::days(30);

#[derive(Debug, Clone)]
struct Reset {
    t: DateTime<Utc>,
    id: String,
    actor: Option<Arc<Party>>,
    by_self: bool,
    okta: bool,
    all: bool,
    fired: bool,
}

#[derive(Debug, Clone)]
struct Enrollment {
    t: DateTime<Utc>,
    id: String,
    place: Place,
    factor: crate::classify::factor::Kind,
}

#[derive(Debug, Clone, Default)]
struct UserState {
    user: Option<Arc<Party>>,
    resets: Vec<Reset>,
    enrollments: Vec<Enrollment>,
    passwords: Vec<(DateTime<Utc>, String)>,
}

pub struct ResetThenEnrollNewPlace {
    settings: RuleSettings,
    users: HashMap<String, UserState>,
}

impl ResetThenEnrollNewPlace {
    pub fn new(settings: RuleSettings) -> Self {
        ResetThenEnrollNewPlace {
            settings,
            users: HashMap::new(),
        }
    }

    /// Judges one enrollment against the unfired resets before it in the window.
    fn judge(&mut self, user: &str, e: &Enrollment, history: &History) -> Option<Finding> {
        let w = self.settings.window;
        let state = self.users.get_mut(user)?;
        let candidates: Vec<usize> = (0..state.resets.len())
            .filter(|&i| {
                let r = &state.resets[i];
                !r.fired && r.t <= e.t && e.t - r.t <= w
            })
            .collect();
        let first = candidates.iter().map(|&i| state.resets[i].t).min()?;
        let (from, to) = (first - BASELINE, first - w);
        if !history.has_baseline(user, from, to) {
            return None;
        }
        let new: Vec<(Element, String)> = Element::ALL
            .into_iter()
            .filter_map(|k| {
                let value = k.of(&e.place)?;
                (!history.seen(user, k, &value, from, to)).then_some((k, value))
            })
            .collect();
        if new.is_empty() {
            return None;
        }
        for &i in &candidates {
            state.resets[i].fired = true;
        }
        let resets: Vec<Reset> = candidates
            .iter()
            .map(|&i| state.resets[i].clone())
            .collect();
        let reset = resets.iter().min_by_key(|r| r.t)?.clone();
        let mut d = draft(RuleId::ResetThenEnrollNewPlace, &self.settings, user);
        d.user = state.user.clone();
        d.actor = reset.actor.clone();
        d.events = resets.iter().map(|r| (r.t, r.id.clone())).collect();
        d.events.push((e.t, e.id.clone()));
        let passwords: Vec<&(DateTime<Utc>, String)> = state
            .passwords
            .iter()
            .filter(|(t, _)| *t <= e.t && first - *t <= w)
            .collect();
        d.events
            .extend(passwords.iter().map(|(t, id)| (*t, id.clone())));
        let by = if reset.by_self {
            "from the user's own account".to_owned()
        } else if reset.okta {
            "by Okta's system account".to_owned()
        } else {
            format!("by {}", who(reset.actor.as_deref()))
        };
        let described: Vec<String> = new
            .iter()
            .map(|(k, _)| match k {
                // Made here from a parsed address: digits, dots, colons.
                Element::Network => format!("network {}", e.place.network().unwrap_or_default()),
                Element::Country => format!(
                    "country {}",
                    crate::untrusted::display(e.place.country.as_deref().unwrap_or(""), 48)
                ),
                Element::Device => format!(
                    "device {}",
                    crate::untrusted::display(e.place.device.as_deref().unwrap_or(""), 48)
                ),
            })
            .collect();
        let gap = e.t - reset.t;
        d.summary = format!(
            "{user_s}'s {what} reset {by} at {when}; {gap} later a new factor ({factor}) was enrolled on the account from a {new} not seen for this user in the 30 days before the reset{pw}. This is the shape of help-desk social engineering (Okta advisory, 31 August 2023; CISA AA23-320A): confirm with the user through a channel you already trust; if it was not them, clear their sessions, reset their factors and review what the account did since {when}.",
            user_s = who(state.user.as_deref()),
            what = if resets.iter().any(|r| r.all) {
                "MFA factors were all"
            } else {
                "MFA factor was"
            },
            when = at(&reset.t),
            gap = span(gap),
            factor = crate::detect::finding::factor_label(e.factor),
            new = described.join(" and "),
            pw = if passwords.is_empty() {
                ""
            } else {
                "; the password had been reset too"
            },
        );
        d.details.insert(
            "reset_by".into(),
            json!(if reset.by_self {
                "self"
            } else if reset.okta {
                "system"
            } else {
                "other"
            }),
        );
        d.details
            .insert("minutes_after_reset".into(), json!(gap.num_minutes()));
        d.details.insert(
            "new".into(),
            json!(new.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()),
        );
        d.details.insert("factor".into(), json!(e.factor.as_str()));
        if let Some(c) = &e.place.country {
            d.details.insert("country".into(), json!(c));
        }
        if let Some(ip) = &e.place.ip {
            d.details.insert("ip".into(), json!(ip));
        }
        if let Some(dev) = &e.place.device {
            d.details.insert("device".into(), json!(dev));
        }
        d.details
            .insert("password_reset".into(), json!(!passwords.is_empty()));
        Some(d.finish())
    }
}

impl Rule for ResetThenEnrollNewPlace {
    fn observe(&mut self, s: &Signal, history: &History, out: &mut Vec<Finding>) {
        let Some(user) = s.user_key().map(str::to_owned) else {
            return;
        };
        let w = self.settings.window;
        match &s.what {
            What::Removed { .. } | What::ResetAll => {
                let state = self.users.entry(user.clone()).or_default();
                state.user = state.user.take().or(s.user.clone());
                keep(
                    &mut state.resets,
                    Reset {
                        t: s.published,
                        id: s.id.clone(),
                        actor: s.actor().cloned(),
                        by_self: s.by_self(),
                        okta: s.actor().is_some_and(|a| a.is_okta_system()),
                        all: s.what == What::ResetAll,
                        fired: false,
                    },
                );
                // A reset that arrives after enrollments it precedes (events out of order).
                let later: Vec<Enrollment> = state
                    .enrollments
                    .iter()
                    .filter(|e| e.t >= s.published && e.t - s.published <= w)
                    .cloned()
                    .collect();
                for e in later {
                    if let Some(f) = self.judge(&user, &e, history) {
                        out.push(f);
                        break;
                    }
                }
            }
            What::Enrolled { factor, .. } if s.by_self() => {
                let e = Enrollment {
                    t: s.published,
                    id: s.id.clone(),
                    place: s.place.clone(),
                    factor: *factor,
                };
                let state = self.users.entry(user.clone()).or_default();
                state.user = state.user.take().or(s.user.clone());
                keep(&mut state.enrollments, e.clone());
                if let Some(f) = self.judge(&user, &e, history) {
                    out.push(f);
                }
            }
            What::PasswordReset => {
                let state = self.users.entry(user).or_default();
                keep(&mut state.passwords, (s.published, s.id.clone()));
            }
            _ => {}
        }
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let horizon = now - self.settings.window - lateness();
        self.users.retain(|_, u| {
            u.resets.retain(|r| r.t >= horizon);
            u.enrollments.retain(|e| e.t >= horizon);
            u.passwords.retain(|(t, _)| *t >= horizon);
            !(u.resets.is_empty() && u.enrollments.is_empty() && u.passwords.is_empty())
        });
    }

    fn approx_bytes(&self) -> usize {
        self.users
            .iter()
            .map(|(k, u)| {
                k.capacity()
                    + 160
                    + u.resets.len() * 200
                    + u.enrollments.len() * 240
                    + u.passwords.len() * 64
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::classify::factor::Kind;
    use crate::detect::RuleId;
    use crate::detect::signal::What;

    const RULE: RuleId = RuleId::ResetThenEnrollNewPlace;
    const DAY: i64 = 24 * 60;

    /// A week of sign-ins from home, ending a day before minute 0.
    fn baseline() -> Vec<crate::detect::Signal> {
        (1..8)
            .map(|d| signal(&format!("in{d}"), -d * DAY, What::SignIn, "u", "u", home()))
            .rev()
            .collect()
    }

    #[test]
    fn a_help_desk_reset_then_an_enrollment_from_a_new_country_fires_once() {
        let mut s = baseline();
        s.push(signal("reset", 0, What::ResetAll, "u", "helpdesk", home()));
        // The attacker signs in just before enrolling: that must not make the place seen.
        s.push(signal("attacker-in", 15, What::SignIn, "u", "u", away()));
        s.push(signal("enroll", 20, enrolled(Kind::Sms), "u", "u", away()));
        s.push(signal(
            "enroll2",
            25,
            enrolled(Kind::Push),
            "u",
            "u",
            away(),
        ));
        let f = of(&run(&s), RULE);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].event_ids, ["reset", "enroll"]);
        assert_eq!(
            f[0].actor.as_ref().and_then(|a| a.id.as_deref()),
            Some("helpdesk")
        );
        assert!(
            f[0].summary.contains("20 minutes later"),
            "{}",
            f[0].summary
        );
        assert_eq!(
            f[0].details["new"],
            serde_json::json!(["network", "country", "device"])
        );
    }

    #[test]
    fn near_misses_do_not_fire() {
        // The user re-enrolls from home.
        let mut s = baseline();
        s.push(signal("reset", 0, What::ResetAll, "u", "helpdesk", home()));
        s.push(signal("enroll", 20, enrolled(Kind::Sms), "u", "u", home()));
        assert!(of(&run(&s), RULE).is_empty(), "same old place");

        // From a new place, but after the window.
        let mut s = baseline();
        s.push(signal("reset", 0, What::ResetAll, "u", "helpdesk", home()));
        s.push(signal("enroll", 61, enrolled(Kind::Sms), "u", "u", away()));
        assert!(of(&run(&s), RULE).is_empty(), "outside the window");

        // No history at all: nothing to call new.
        let s = vec![
            signal("reset", 0, What::ResetAll, "u", "helpdesk", home()),
            signal("enroll", 20, enrolled(Kind::Sms), "u", "u", away()),
        ];
        assert!(of(&run(&s), RULE).is_empty(), "no baseline");

        // An admin enrolling for the user from the admin's desk is not the user's place.
        let mut s = baseline();
        s.push(signal("reset", 0, What::ResetAll, "u", "helpdesk", home()));
        s.push(signal(
            "enroll",
            20,
            enrolled(Kind::Sms),
            "u",
            "helpdesk",
            away(),
        ));
        assert!(of(&run(&s), RULE).is_empty(), "not the user's enrollment");

        // A new place with no reset before it.
        let mut s = baseline();
        s.push(signal("enroll", 20, enrolled(Kind::Sms), "u", "u", away()));
        assert!(of(&run(&s), RULE).is_empty(), "no reset");
    }

    #[test]
    fn a_new_network_alone_in_a_known_country_is_new_and_a_new_lease_in_the_same_one_is_not() {
        let mut near = home();
        near.ip = Some("198.51.100.77".into());
        let mut s = baseline();
        s.push(signal(
            "reset",
            0,
            removed(Kind::Webauthn),
            "u",
            "u",
            home(),
        ));
        s.push(signal(
            "enroll",
            5,
            enrolled(Kind::Webauthn),
            "u",
            "u",
            near,
        ));
        assert!(of(&run(&s), RULE).is_empty(), "same /24");

        let mut other = home();
        other.ip = Some("203.0.113.9".into());
        let mut s = baseline();
        s.push(signal(
            "reset",
            0,
            removed(Kind::Webauthn),
            "u",
            "u",
            home(),
        ));
        s.push(signal("enroll", 5, enrolled(Kind::Sms), "u", "u", other));
        let f = of(&run(&s), RULE);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].details["new"], serde_json::json!(["network"]));
    }

    #[test]
    fn a_reset_that_arrives_late_is_still_joined_and_a_new_sequence_fires_again() {
        let mut s = baseline();
        s.push(signal("enroll", 20, enrolled(Kind::Sms), "u", "u", away()));
        s.push(signal("reset", 0, What::ResetAll, "u", "helpdesk", home()));
        let f = of(&run(&s), RULE);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].event_ids, ["reset", "enroll"]);

        let mut s = baseline();
        s.push(signal("reset", 0, What::ResetAll, "u", "helpdesk", home()));
        s.push(signal("enroll", 20, enrolled(Kind::Sms), "u", "u", away()));
        s.push(signal(
            "reset2",
            3 * 60,
            What::ResetAll,
            "u",
            "helpdesk",
            home(),
        ));
        let mut far = away();
        far.country = Some("Brazil".into());
        s.push(signal(
            "enroll2",
            3 * 60 + 10,
            enrolled(Kind::Sms),
            "u",
            "u",
            far,
        ));
        assert_eq!(of(&run(&s), RULE).len(), 2);
    }
}
