//! `factor_downgrade`: a user loses every phishing-resistant factor they were known to have
//! (WebAuthn/FIDO, security key, Okta FastPass) and, within the window, enrolls a weak one (SMS,
//! voice, phone, email, security question) without enrolling a phishing-resistant one first — or
//! is left, when the window ends, with weak factors only. Enrolling a phishing-resistant factor
//! again (a replaced key) ends the sequence without a finding. Push and one-time codes are neither
//! strong nor weak.
//!
//! "Known to have" is what factorwatch has seen enrolled and not removed: a factor enrolled before
//! its history began is unknown to it (`docs/detections.md`).

use std::sync::Arc;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Rule, draft, keep, lateness};
use crate::classify::factor::Strength;
use crate::detect::finding::{Finding, at, span, who};
use crate::detect::history::History;
use crate::detect::signal::{Party, Signal, What};
use crate::detect::{RuleId, RuleSettings};

#[derive(Debug, Clone)]
struct Loss {
    t: DateTime<Utc>,
    events: Vec<(DateTime<Utc>, String)>,
    lost: Vec<&'static str>,
    user: Option<Arc<Party>>,
    actor: Option<Arc<Party>>,
    deadline: DateTime<Utc>,
    /// A phishing-resistant factor was enrolled again: no downgrade.
    replaced: bool,
    fired: bool,
}

pub struct FactorDowngrade {
    settings: RuleSettings,
    losses: HashMap<String, Loss>,
    deadlines: BTreeSet<(DateTime<Utc>, String)>,
}

impl FactorDowngrade {
    pub fn new(settings: RuleSettings) -> Self {
        FactorDowngrade {
            settings,
            losses: HashMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    fn finding(&self, user: &str, loss: &Loss, weak: &[&str], enrolled: bool) -> Finding {
        let mut d = draft(RuleId::FactorDowngrade, &self.settings, user);
        d.user = loss.user.clone();
        d.actor = loss.actor.clone();
        d.events = loss.events.clone();
        let how = if enrolled {
            format!(
                "then, {} later, enrolled {} instead",
                span(loss.events.last().map(|e| e.0).unwrap_or(loss.t) - loss.t),
                weak.join(", ")
            )
        } else {
            format!(
                "and {} later still had only {}",
                span(self.settings.window),
                weak.join(", ")
            )
        };
        d.summary = format!(
            "{} lost every phishing-resistant factor ({}) at {} (removed by {}), {}. Whoever can phish or intercept that factor can now sign in as the user. Check with the user that they meant to do this; if not, treat the account as taken over.",
            who(loss.user.as_deref()),
            loss.lost.join(", "),
            at(&loss.t),
            who(loss.actor.as_deref()),
            how,
        );
        d.details.insert("lost".into(), json!(loss.lost));
        d.details.insert("weak".into(), json!(weak));
        d.details.insert(
            "how".into(),
            json!(if enrolled { "enrolled" } else { "left_with" }),
        );
        d.finish()
    }
}

impl Rule for FactorDowngrade {
    fn observe(&mut self, s: &Signal, history: &History, out: &mut Vec<Finding>) {
        let Some(user) = s.user_key().map(str::to_owned) else {
            return;
        };
        if !s.what.is_change() {
            return;
        }
        let before = history.inventory(&user);
        let after = before.after(&s.what);
        let strong = Strength::PhishingResistant;
        match &s.what {
            What::Removed { .. } | What::ResetAll if before.has(strong) && !after.has(strong) => {
                let open = self
                    .losses
                    .get(&user)
                    .is_some_and(|l| !l.fired && !l.replaced && s.published <= l.deadline);
                if open {
                    if let Some(l) = self.losses.get_mut(&user) {
                        keep(&mut l.events, (s.published, s.id.clone()));
                    }
                    return;
                }
                let lost = before
                    .factors
                    .iter()
                    .filter(|(k, n)| *n > 0 && k.strength() == strong)
                    .map(|(k, _)| k.as_str())
                    .collect();
                let deadline = s.published + self.settings.window;
                self.deadlines.insert((deadline, user.clone()));
                self.losses.insert(
                    user,
                    Loss {
                        t: s.published,
                        events: vec![(s.published, s.id.clone())],
                        lost,
                        user: s.user.clone(),
                        actor: s.actor().cloned(),
                        deadline,
                        replaced: false,
                        fired: false,
                    },
                );
            }
            What::Enrolled { factor, .. } => {
                let Some(loss) = self.losses.get_mut(&user) else {
                    return;
                };
                if loss.fired
                    || loss.replaced
                    || s.published < loss.t
                    || s.published > loss.deadline
                {
                    return;
                }
                match factor.strength() {
                    Strength::PhishingResistant => loss.replaced = true,
                    Strength::Weak => {
                        keep(&mut loss.events, (s.published, s.id.clone()));
                        loss.fired = true;
                        let loss = loss.clone();
                        out.push(self.finding(&user, &loss, &[factor.as_str()], true));
                    }
                    Strength::Neither => {}
                }
            }
            _ => {}
        }
    }

    fn advance(&mut self, now: DateTime<Utc>, history: &History, out: &mut Vec<Finding>) {
        while let Some((deadline, user)) = self.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(loss) = self.losses.get(&user).cloned() else {
                continue;
            };
            if loss.deadline != deadline {
                continue;
            }
            let inv = history.inventory(&user);
            if !loss.fired
                && !loss.replaced
                && inv.has(Strength::Weak)
                && !inv.has(Strength::PhishingResistant)
            {
                let weak: Vec<&str> = inv
                    .factors
                    .iter()
                    .filter(|(k, n)| *n > 0 && k.strength() == Strength::Weak)
                    .map(|(k, _)| k.as_str())
                    .collect();
                out.push(self.finding(&user, &loss, &weak, false));
            }
            if let Some(l) = self.losses.get_mut(&user) {
                l.fired = true;
            }
        }
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let horizon = now - self.settings.window - lateness();
        self.losses.retain(|_, l| l.t >= horizon);
    }

    fn approx_bytes(&self) -> usize {
        self.losses.len() * 320 + self.deadlines.len() * 64
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::classify::factor::Kind;
    use crate::detect::RuleId;
    use crate::detect::signal::What;

    const RULE: RuleId = RuleId::FactorDowngrade;

    fn with_key() -> Vec<crate::detect::Signal> {
        vec![
            signal("key", -600, enrolled(Kind::Webauthn), "u", "u", home()),
            signal("push", -590, enrolled(Kind::Push), "u", "u", home()),
        ]
    }

    #[test]
    fn losing_the_key_then_enrolling_sms_fires_once() {
        let mut s = with_key();
        s.push(signal("rm", 0, removed(Kind::Webauthn), "u", "u", away()));
        s.push(signal("sms", 10, enrolled(Kind::Sms), "u", "u", away()));
        s.push(signal("email", 12, enrolled(Kind::Email), "u", "u", away()));
        s.push(signal("later", 48 * 60, What::SignIn, "u", "u", home()));
        let f = of(&run(&s), RULE);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].event_ids, ["rm", "sms"]);
        assert_eq!(f[0].details["weak"], serde_json::json!(["sms"]));
    }

    #[test]
    fn being_left_with_weak_factors_fires_when_the_window_ends() {
        let mut s = with_key();
        s.push(signal("sms", -500, enrolled(Kind::Sms), "u", "u", home()));
        s.push(signal(
            "rm",
            0,
            removed(Kind::Webauthn),
            "u",
            "admin",
            home(),
        ));
        s.push(signal("tick", 23 * 60, What::SignIn, "v", "v", home()));
        assert!(of(&run(&s), RULE).is_empty(), "not before the window ends");
        s.push(signal("tick2", 24 * 60 + 1, What::SignIn, "v", "v", home()));
        let f = of(&run(&s), RULE);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].details["how"], "left_with");
    }

    #[test]
    fn near_misses_do_not_fire() {
        // The same strong factor enrolled again, then SMS as a backup.
        let mut s = with_key();
        s.push(signal("rm", 0, removed(Kind::Webauthn), "u", "u", home()));
        s.push(signal(
            "key2",
            5,
            enrolled(Kind::Webauthn),
            "u",
            "u",
            home(),
        ));
        s.push(signal("sms", 10, enrolled(Kind::Sms), "u", "u", home()));
        s.push(signal("tick", 3 * 24 * 60, What::SignIn, "v", "v", home()));
        assert!(of(&run(&s), RULE).is_empty(), "re-enrolled");

        // SMS after the window.
        let mut s = with_key();
        s.push(signal("rm", 0, removed(Kind::Webauthn), "u", "u", home()));
        s.push(signal(
            "sms",
            24 * 60 + 5,
            enrolled(Kind::Sms),
            "u",
            "u",
            home(),
        ));
        assert!(of(&run(&s), RULE).is_empty(), "outside the window");

        // One of two keys removed: still phishing-resistant.
        let mut s = with_key();
        s.push(signal(
            "key2",
            -300,
            enrolled(Kind::Fastpass),
            "u",
            "u",
            home(),
        ));
        s.push(signal("rm", 0, removed(Kind::Webauthn), "u", "u", home()));
        s.push(signal("sms", 10, enrolled(Kind::Sms), "u", "u", home()));
        assert!(of(&run(&s), RULE).is_empty(), "still has FastPass");

        // Push after the loss is neither.
        let mut s = with_key();
        s.push(signal("rm", 0, removed(Kind::Webauthn), "u", "u", home()));
        s.push(signal("otp", 10, enrolled(Kind::Totp), "u", "u", home()));
        s.push(signal("tick", 3 * 24 * 60, What::SignIn, "v", "v", home()));
        assert!(of(&run(&s), RULE).is_empty(), "not weak");
    }
}
