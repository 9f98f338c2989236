//! `bulk_admin_reset`: one actor resets or removes the factors of at least `threshold` distinct
//! users within the window — the mass reset of the 2023 help-desk attacks, or a stolen admin
//! token. Counts distinct *target* users of `reset`, `reset_all` and removals, never the actor's
//! own factors; the finding names the actor.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Mark, Rule, dense_window, draft, keep, lateness};
use crate::detect::finding::{Finding, at, span, who};
use crate::detect::history::History;
use crate::detect::signal::{Party, Signal};
use crate::detect::{RuleId, RuleSettings};

#[derive(Debug, Clone, Default)]
struct ActorState {
    actor: Option<Arc<Party>>,
    /// (published, event id, target user).
    marks: Vec<Mark>,
    logins: HashMap<String, String>,
    /// The sequence already reported: (its first, its last event's time).
    reported: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

pub struct BulkAdminReset {
    settings: RuleSettings,
    actors: HashMap<String, ActorState>,
}

impl BulkAdminReset {
    pub fn new(settings: RuleSettings) -> Self {
        BulkAdminReset {
            settings,
            actors: HashMap::new(),
        }
    }
}

impl Rule for BulkAdminReset {
    fn observe(&mut self, s: &Signal, _: &History, out: &mut Vec<Finding>) {
        if !s.what.is_removal() || s.by_self() {
            return;
        }
        let (Some(actor), Some(user)) = (s.actor_key(), s.user_key()) else {
            return;
        };
        let w = self.settings.window;
        let state = self.actors.entry(actor.to_owned()).or_default();
        state.actor = state.actor.take().or(s.actor().cloned());
        keep(
            &mut state.marks,
            (s.published, s.id.clone(), user.to_owned()),
        );
        if let Some(login) = s.user.as_ref().and_then(|u| u.login.clone()) {
            state.logins.insert(user.to_owned(), login);
        }
        // Part of the sequence already reported: it goes on, without a second finding.
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
        let mut users: Vec<&str> = marks.iter().map(|m| m.2.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        let (first, last) = (
            marks.first().map_or(s.published, |m| m.0),
            marks.last().map_or(s.published, |m| m.0),
        );
        state.reported = Some((first, last));
        let shown: Vec<String> = users
            .iter()
            .take(10)
            .map(|u| {
                crate::untrusted::identifier(state.logins.get(*u).map_or(*u, String::as_str), 80)
            })
            .collect();
        let mut d = draft(RuleId::BulkAdminReset, &self.settings, actor);
        d.actor = state.actor.clone();
        d.events = marks.iter().map(|m| (m.0, m.1.clone())).collect();
        d.summary = format!(
            "{} reset or removed the MFA factors of {} users within {} (from {}): {}{}. A mass reset is how the 2023 help-desk attacks began (Okta advisory, 31 August 2023), and what a stolen admin session or API token does: confirm with the actor that this was planned; if not, suspend the actor's sessions and tokens and check each user's new enrollments.",
            who(state.actor.as_deref()),
            users.len(),
            span(last - first),
            at(&first),
            shown.join(", "),
            if users.len() > shown.len() {
                ", …"
            } else {
                ""
            },
        );
        d.details.insert("users".into(), json!(users.len()));
        d.details.insert("user_logins".into(), json!(shown));
        out.push(d.finish());
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let w = self.settings.window;
        let horizon = now - w - w - lateness();
        self.actors.retain(|_, a| {
            a.marks.retain(|m| m.0 >= horizon);
            if a.reported.is_some_and(|(_, last)| last + w < horizon) {
                a.reported = None;
            }
            !a.marks.is_empty()
        });
    }

    fn approx_bytes(&self) -> usize {
        self.actors
            .values()
            .map(|a| 200 + a.marks.len() * 120 + a.logins.len() * 96)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::detect::RuleId;
    use crate::detect::signal::What;

    const RULE: RuleId = RuleId::BulkAdminReset;

    fn resets(users: &[&str], every_minutes: i64, actor: &str) -> Vec<crate::detect::Signal> {
        users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                signal(
                    &format!("r{i}"),
                    i as i64 * every_minutes,
                    What::ResetAll,
                    u,
                    actor,
                    home(),
                )
            })
            .collect()
    }

    #[test]
    fn five_users_in_fifteen_minutes_fires_once_naming_the_actor() {
        let s = resets(&["a", "b", "c", "d", "e", "f", "g"], 2, "admin");
        let f = of(&run(&s), RULE);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            f[0].actor.as_ref().and_then(|a| a.id.as_deref()),
            Some("admin")
        );
        assert_eq!(f[0].details["users"], 5);
        assert_eq!(f[0].event_ids.len(), 5);
    }

    #[test]
    fn near_misses_do_not_fire() {
        let four = resets(&["a", "b", "c", "d"], 2, "admin");
        assert!(of(&run(&four), RULE).is_empty(), "four users");
        let slow = resets(&["a", "b", "c", "d", "e"], 4, "admin");
        assert!(
            of(&run(&slow), RULE).is_empty(),
            "five users over 16 minutes"
        );
        let same = resets(&["a", "a", "b", "b", "c", "c", "d"], 1, "admin");
        assert!(of(&run(&same), RULE).is_empty(), "four distinct users");
        let mut own = resets(&["a", "b", "c", "d"], 1, "admin");
        own.push(signal("own", 5, What::ResetAll, "admin", "admin", home()));
        assert!(of(&run(&own), RULE).is_empty(), "the actor's own factors");
        let mut two = resets(&["a", "b", "c"], 1, "admin");
        two.extend(resets(&["d", "e"], 1, "other"));
        assert!(of(&run(&two), RULE).is_empty(), "two actors");
    }

    #[test]
    fn a_second_wave_after_a_quiet_window_fires_again() {
        let mut s = resets(&["a", "b", "c", "d", "e"], 1, "admin");
        for (i, u) in ["f", "g", "h", "i", "j"].iter().enumerate() {
            s.push(signal(
                &format!("w{i}"),
                120 + i as i64,
                What::ResetAll,
                u,
                "admin",
                home(),
            ));
        }
        assert_eq!(of(&run(&s), RULE).len(), 2);
    }
}
