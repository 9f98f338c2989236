//! `bypass_burst`: `threshold` or more `user.mfa.attempt_bypass` events for one user within the
//! window — someone with the password probing for a way around MFA (enrolling from Settings after
//! the session's MFA expired is Okta's documented example). One is noise; a burst is a person
//! trying.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Mark, Rule, dense_window, draft, keep, lateness};
use crate::detect::finding::{Finding, at, span, who};
use crate::detect::history::History;
use crate::detect::signal::{Party, Signal, What};
use crate::detect::{RuleId, RuleSettings};

#[derive(Debug, Clone, Default)]
struct UserState {
    user: Option<Arc<Party>>,
    marks: Vec<Mark>,
    reported: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

pub struct BypassBurst {
    settings: RuleSettings,
    users: HashMap<String, UserState>,
}

impl BypassBurst {
    pub fn new(settings: RuleSettings) -> Self {
        BypassBurst {
            settings,
            users: HashMap::new(),
        }
    }
}

impl Rule for BypassBurst {
    fn observe(&mut self, s: &Signal, _: &History, out: &mut Vec<Finding>) {
        if s.what != What::BypassAttempt {
            return;
        }
        let Some(user) = s.user_key() else {
            return;
        };
        let w = self.settings.window;
        let state = self.users.entry(user.to_owned()).or_default();
        state.user = state.user.take().or(s.user.clone());
        keep(&mut state.marks, (s.published, s.id.clone(), s.id.clone()));
        if let Some((first, last)) = state.reported
            && s.published + w >= first
            && s.published <= last + w
        {
            state.reported = Some((first.min(s.published), last.max(s.published)));
            return;
        }
        let Some(marks) = dense_window(&state.marks, s.published, w, self.settings.threshold)
        else {
            return;
        };
        let (first, last) = (
            marks.first().map_or(s.published, |m| m.0),
            marks.last().map_or(s.published, |m| m.0),
        );
        state.reported = Some((first, last));
        let ips: Vec<String> = s
            .place
            .ip
            .iter()
            .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string()))
            .collect();
        let mut d = draft(RuleId::BypassBurst, &self.settings, user);
        d.user = state.user.clone();
        d.actor = s.actor().cloned();
        d.events = marks.iter().map(|m| (m.0, m.1.clone())).collect();
        d.summary = format!(
            "{} attempts to bypass MFA on {}'s account within {} (from {}){}. Someone who has the password is looking for a way around the second factor: reset the password, clear the user's sessions and check their factors.",
            marks.len(),
            who(state.user.as_deref()),
            span(last - first),
            at(&first),
            ips.first()
                .map(|ip| format!(", the last from {ip}"))
                .unwrap_or_default(),
        );
        d.details.insert("attempts".into(), json!(marks.len()));
        out.push(d.finish());
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let w = self.settings.window;
        let horizon = now - w - w - lateness();
        self.users.retain(|_, u| {
            u.marks.retain(|m| m.0 >= horizon);
            !u.marks.is_empty()
        });
    }

    fn approx_bytes(&self) -> usize {
        self.users.values().map(|u| 160 + u.marks.len() * 120).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::detect::RuleId;
    use crate::detect::signal::What;

    const RULE: RuleId = RuleId::BypassBurst;

    fn tries(minutes: &[i64], user: &str) -> Vec<crate::detect::Signal> {
        minutes
            .iter()
            .map(|m| {
                signal(
                    &format!("b{user}{m}"),
                    *m,
                    What::BypassAttempt,
                    user,
                    user,
                    away(),
                )
            })
            .collect()
    }

    #[test]
    fn three_in_ten_minutes_fires_once() {
        let f = of(&run(&tries(&[0, 3, 6, 7, 8], "u")), RULE);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].event_ids.len(), 3);
    }

    #[test]
    fn near_misses_do_not_fire() {
        assert!(of(&run(&tries(&[0, 6], "u")), RULE).is_empty(), "two");
        assert!(
            of(&run(&tries(&[0, 6, 11], "u")), RULE).is_empty(),
            "spread over 11 minutes"
        );
        let mut two_users = tries(&[0, 1], "u");
        two_users.extend(tries(&[2], "v"));
        assert!(of(&run(&two_users), RULE).is_empty(), "two users");
    }
}
