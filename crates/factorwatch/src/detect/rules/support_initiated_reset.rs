//! `support_initiated_reset`: a reset of a user's factors made by Okta's system account
//! (`system@okta.com`, which Okta Support acts as) or by someone while Okta Support was
//! impersonating them (`user.session.impersonation.*`: from `initiate`, `grant` or `extend` until
//! `end`, `revoke` or the window) — the path of the 2022 LAPSUS$ intrusion through Okta's support
//! contractor. A single event; several resets of one user within an hour are one finding.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Rule, draft, keep, lateness};
use crate::detect::finding::{Finding, at, who};
use crate::detect::history::History;
use crate::detect::signal::{Party, Signal, What};
use crate::detect::{RuleId, RuleSettings};

/// Resets of one user this close together are one finding.
const GROUP: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Clone)]
struct Impersonation {
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    id: String,
    session: Option<String>,
}

#[derive(Debug, Clone)]
struct ResetSeen {
    t: DateTime<Utc>,
    id: String,
    actor: Option<Arc<Party>>,
    actor_key: Option<String>,
    user: Option<Arc<Party>>,
    user_key: String,
    session: Option<String>,
}

pub struct SupportInitiatedReset {
    settings: RuleSettings,
    /// Per impersonated user, their impersonations.
    impersonations: HashMap<String, Vec<Impersonation>>,
    /// Recent resets, for an impersonation logged after them.
    resets: Vec<ResetSeen>,
    /// Per user, the last finding's reset time.
    reported: HashMap<String, DateTime<Utc>>,
}

impl SupportInitiatedReset {
    pub fn new(settings: RuleSettings) -> Self {
        SupportInitiatedReset {
            settings,
            impersonations: HashMap::new(),
            resets: Vec::new(),
            reported: HashMap::new(),
        }
    }

    /// The impersonation a reset was made under, if any.
    fn under(&self, r: &ResetSeen) -> Option<&Impersonation> {
        let w = self.settings.window;
        let by_actor = r
            .actor_key
            .as_deref()
            .and_then(|a| self.impersonations.get(a))
            .into_iter()
            .flatten();
        let by_session = self
            .impersonations
            .values()
            .flatten()
            .filter(|i| i.session.is_some() && i.session == r.session);
        by_actor
            .chain(by_session)
            .find(|i| i.start <= r.t && r.t <= i.end.unwrap_or(i.start + w).min(i.start + w))
    }

    fn fire(&mut self, r: &ResetSeen, imp: Option<Impersonation>, out: &mut Vec<Finding>) {
        if self
            .reported
            .get(&r.user_key)
            .is_some_and(|last| (r.t - *last).abs() <= GROUP)
        {
            return;
        }
        self.reported.insert(r.user_key.clone(), r.t);
        let mut d = draft(RuleId::SupportInitiatedReset, &self.settings, &r.user_key);
        d.user = r.user.clone();
        d.actor = r.actor.clone();
        d.events = vec![(r.t, r.id.clone())];
        let how = match &imp {
            Some(i) => {
                d.events.push((i.start, i.id.clone()));
                d.details.insert("through".into(), json!("impersonation"));
                format!(
                    "by {} while their session was being impersonated (since {})",
                    who(r.actor.as_deref()),
                    at(&i.start)
                )
            }
            None => {
                d.details.insert("through".into(), json!("okta_system"));
                "by Okta's system account (system@okta.com), as Okta Support acts".to_owned()
            }
        };
        d.summary = format!(
            "{}'s MFA factors were reset at {} {how}. Okta Support rarely resets end users' factors; check for an open support case that asked for it, and if there is none, treat it as an intrusion through the support channel (the 2022 LAPSUS$ path) and reset the user's factors and sessions yourself.",
            who(r.user.as_deref()),
            at(&r.t),
        );
        out.push(d.finish());
    }
}

impl Rule for SupportInitiatedReset {
    fn observe(&mut self, s: &Signal, _: &History, out: &mut Vec<Finding>) {
        match &s.what {
            What::ImpersonationStarted => {
                let Some(user) = s.user_key() else {
                    return;
                };
                let imp = Impersonation {
                    start: s.published,
                    end: None,
                    id: s.id.clone(),
                    session: s.session.clone(),
                };
                keep(self.impersonations.entry(user.to_owned()).or_default(), imp);
                // Resets logged before the impersonation that began it.
                let w = self.settings.window;
                let earlier: Vec<ResetSeen> = self
                    .resets
                    .iter()
                    .filter(|r| {
                        r.actor_key.as_deref() == Some(user)
                            && r.t >= s.published
                            && r.t - s.published <= w
                    })
                    .cloned()
                    .collect();
                for r in earlier {
                    let imp = self.under(&r).cloned();
                    self.fire(&r, imp, out);
                }
            }
            What::ImpersonationEnded => {
                let Some(user) = s.user_key() else {
                    return;
                };
                if let Some(open) = self
                    .impersonations
                    .get_mut(user)
                    .and_then(|l| l.iter_mut().filter(|i| i.start <= s.published).last())
                {
                    open.end = Some(s.published);
                }
            }
            What::Removed { .. } | What::ResetAll => {
                let Some(user) = s.user_key() else {
                    return;
                };
                let r = ResetSeen {
                    t: s.published,
                    id: s.id.clone(),
                    actor: s.actor().cloned(),
                    actor_key: s.actor_key().map(str::to_owned),
                    user: s.user.clone(),
                    user_key: user.to_owned(),
                    session: s.session.clone(),
                };
                if s.actor().is_some_and(|a| a.is_okta_system()) {
                    self.fire(&r, None, out);
                } else if let Some(imp) = self.under(&r).cloned() {
                    self.fire(&r, Some(imp), out);
                } else {
                    self.resets.push(r);
                }
            }
            _ => {}
        }
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let horizon = now - self.settings.window - lateness();
        self.resets.retain(|r| r.t >= horizon);
        self.impersonations.retain(|_, l| {
            l.retain(|i| i.start >= horizon);
            !l.is_empty()
        });
        self.reported.retain(|_, t| *t >= horizon);
    }

    fn approx_bytes(&self) -> usize {
        self.resets.len() * 240 + self.impersonations.len() * 160 + self.reported.len() * 64
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::classify::factor::Kind;
    use crate::detect::RuleId;
    use crate::detect::signal::{Party, What};

    const RULE: RuleId = RuleId::SupportInitiatedReset;

    fn okta() -> Party {
        Party {
            id: Some("0oasystem".into()),
            login: Some("system@okta.com".into()),
            display_name: Some("Okta System".into()),
            kind: Some("SystemPrincipal".into()),
        }
    }

    #[test]
    fn a_reset_by_okta_s_system_account_fires_once_per_user() {
        let mut a = signal("r1", 0, What::ResetAll, "u", "x", home());
        a.actor = Some(okta().into());
        let mut b = signal("r2", 1, removed(Kind::Sms), "u", "x", home());
        b.actor = Some(okta().into());
        let f = of(&run(&[a, b]), RULE);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].details["through"], "okta_system");
    }

    #[test]
    fn a_reset_made_while_impersonated_fires_before_the_end_and_not_after() {
        // Okta Support impersonates the admin, who then resets a user's factors.
        let imp = signal(
            "imp",
            0,
            What::ImpersonationStarted,
            "admin",
            "support",
            home(),
        );
        let reset = signal("r", 30, What::ResetAll, "u", "admin", home());
        let f = of(&run(&[imp.clone(), reset.clone()]), RULE);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].event_ids, ["imp", "r"]);

        // Logged the other way round, it is still joined.
        assert_eq!(of(&run(&[reset.clone(), imp.clone()]), RULE).len(), 1);

        let end = signal(
            "end",
            20,
            What::ImpersonationEnded,
            "admin",
            "support",
            home(),
        );
        assert!(
            of(&run(&[imp.clone(), end, reset.clone()]), RULE).is_empty(),
            "ended"
        );
        let late = signal("r", 9 * 60, What::ResetAll, "u", "admin", home());
        assert!(of(&run(&[imp, late]), RULE).is_empty(), "past the window");
        let plain = signal("r", 30, What::ResetAll, "u", "admin", home());
        assert!(
            of(&run(&[plain]), RULE).is_empty(),
            "an ordinary admin reset"
        );
    }
}
