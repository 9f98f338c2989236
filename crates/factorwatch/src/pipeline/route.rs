//! Who is owed a change: every SIEM destination; the email destination when the change is one a
//! user should hear about; the security team's destinations when someone other than the user made
//! it. Pure.

use crate::record::{Action, MfaChange};
use crate::store::Owed;

#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// SIEM destinations, each with the actions it wants (all when `None`).
    pub siem: Vec<(String, Option<Vec<Action>>)>,
    /// The email destination, if email is on.
    pub email: Option<String>,
    /// Also email about factors Okta does not own (Duo, RSA, Symantec…).
    pub notify_third_party: bool,
    /// Email only for these actions (all that concern a user when `None`).
    pub email_actions: Option<Vec<Action>>,
    /// The security team's destinations (its email copy, its chat channel), if any.
    pub security: Vec<String>,
    /// How long the email destination waits before taking a change (the coalescing window).
    pub email_after: std::time::Duration,
}

/// Whether the affected user should be told of this change.
///
/// Yes for their own factors changing (enrolled, reset, all reset, updated, suspended,
/// unsuspended) when Okta reports success, and for any bypass attempt; no for org-wide settings
/// or changes with no user. A factor whose owner is unknown (a new authenticator Okta added)
/// counts as Okta's: an unneeded email costs less than a missed takeover.
pub fn notifies_user(change: &MfaChange, notify_third_party: bool) -> bool {
    if change.user.is_none() {
        return false;
    }
    let succeeded = change.outcome.as_deref() == Some("SUCCESS");
    let action_ok = match change.action {
        Action::Enrolled
        | Action::Reset
        | Action::ResetAll
        | Action::Updated
        | Action::Suspended
        | Action::Unsuspended => succeeded,
        Action::BypassAttempted => true,
        Action::OrgFactorEnabled | Action::OrgFactorDisabled => false,
    };
    action_ok && (notify_third_party || change.factor.okta_authoritative != Some(false))
}

/// Whether the security team should be told of this change: one made to a user's factors by
/// someone other than that user — an admin, an app, Okta, or an actor factorwatch cannot tell
/// (not knowing who did it is reason enough to look) — and every bypass attempt. Whatever the
/// user-notice settings (actions, third-party factors) say.
pub fn notifies_security_team(change: &MfaChange) -> bool {
    if change.user.is_none() {
        return false;
    }
    match change.action {
        Action::BypassAttempted => true,
        Action::OrgFactorEnabled | Action::OrgFactorDisabled => false,
        _ => {
            change.outcome.as_deref() == Some("SUCCESS")
                && change.initiator != Some(crate::record::Initiator::SelfService)
        }
    }
}

impl Routing {
    /// [`Routing::destinations`], each with when its row falls due: the email destination after
    /// the coalescing window, the others at once.
    pub fn owed(&self, change: &MfaChange) -> Vec<Owed> {
        self.destinations(change)
            .into_iter()
            .map(|destination| {
                let after = if self.email.as_ref() == Some(&destination) {
                    self.email_after
                } else {
                    std::time::Duration::ZERO
                };
                Owed { destination, after }
            })
            .collect()
    }

    pub fn destinations(&self, change: &MfaChange) -> Vec<String> {
        let mut d: Vec<String> = self
            .siem
            .iter()
            .filter(|(_, actions)| actions.as_ref().is_none_or(|a| a.contains(&change.action)))
            .map(|(name, _)| name.clone())
            .collect();
        if let Some(email) = &self.email
            && notifies_user(change, self.notify_third_party)
            && self
                .email_actions
                .as_ref()
                .is_none_or(|a| a.contains(&change.action))
        {
            d.push(email.clone());
        }
        if notifies_security_team(change) {
            d.extend(self.security.iter().cloned());
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EventId, Factor, Person, Source};

    fn change(action: Action, authoritative: Option<bool>) -> MfaChange {
        MfaChange {
            id: EventId::Okta("e".into()),
            source: Source::SystemLog,
            published: None,
            event_type: "user.mfa.factor.activate".into(),
            legacy_event_type: None,
            action,
            outcome: Some("SUCCESS".into()),
            factor: Factor {
                okta_authoritative: authoritative,
                ..Factor::default()
            },
            user: Some(Person {
                id: Some("00u1".into()),
                login: None,
                display_name: None,
            }),
            actor: None,
            initiator: None,
            client: Default::default(),
            reason: None,
            message: None,
            session_id: None,
        }
    }

    #[test]
    fn each_sink_gets_the_actions_it_asked_for_and_email_only_what_notifies() {
        let r = Routing {
            siem: vec![
                ("siem:all".into(), None),
                (
                    "siem:resets".into(),
                    Some(vec![Action::Reset, Action::ResetAll]),
                ),
            ],
            email: Some("email".into()),
            notify_third_party: false,
            email_actions: None,
            security: vec![],
            email_after: std::time::Duration::ZERO,
        };
        assert_eq!(
            r.destinations(&change(Action::Enrolled, Some(true))),
            ["siem:all", "email"]
        );
        assert_eq!(
            r.destinations(&change(Action::ResetAll, None)),
            ["siem:all", "siem:resets", "email"]
        );
        assert_eq!(
            r.destinations(&change(Action::Enrolled, Some(false))),
            ["siem:all"],
            "third-party factor"
        );
        assert_eq!(
            r.destinations(&change(Action::OrgFactorEnabled, Some(true))),
            ["siem:all"]
        );
        let mut failed = change(Action::Enrolled, Some(true));
        failed.outcome = Some("FAILURE".into());
        assert_eq!(r.destinations(&failed), ["siem:all"]);
        let only_resets = Routing {
            email_actions: Some(vec![Action::ResetAll]),
            ..r.clone()
        };
        assert_eq!(
            only_resets.destinations(&change(Action::Enrolled, Some(true))),
            ["siem:all"]
        );
        assert_eq!(
            only_resets.destinations(&change(Action::ResetAll, None)),
            ["siem:all", "siem:resets", "email"]
        );
        let mut bypass = change(Action::BypassAttempted, None);
        bypass.outcome = Some("FAILURE".into());
        assert_eq!(r.destinations(&bypass), ["siem:all", "email"]);
    }

    #[test]
    fn the_email_row_falls_due_after_the_coalescing_window_the_others_at_once() {
        let window = std::time::Duration::from_secs(120);
        let r = Routing {
            siem: vec![("siem:all".into(), None)],
            email: Some("email".into()),
            security: vec!["security:email".into()],
            email_after: window,
            ..Routing::default()
        };
        let mut c = change(Action::ResetAll, Some(true));
        c.initiator = Some(crate::record::Initiator::Admin);
        let owed = r.owed(&c);
        assert_eq!(
            owed.iter()
                .map(|o| (o.destination.as_str(), o.after))
                .collect::<Vec<_>>(),
            [
                ("siem:all", std::time::Duration::ZERO),
                ("email", window),
                ("security:email", std::time::Duration::ZERO),
            ]
        );
    }

    #[test]
    fn the_security_team_hears_of_what_the_user_did_not_do_whatever_the_email_settings() {
        use crate::record::Initiator;
        let r = Routing {
            siem: vec![],
            email: Some("email".into()),
            notify_third_party: false,
            email_actions: Some(vec![Action::Updated]),
            security: vec!["security:email".into(), "security:chat".into()],
            email_after: std::time::Duration::ZERO,
        };
        let by = |initiator: Option<Initiator>, authoritative: Option<bool>| {
            let mut c = change(Action::ResetAll, authoritative);
            c.initiator = initiator;
            r.destinations(&c)
        };
        assert_eq!(
            by(Some(Initiator::Admin), Some(false)),
            ["security:email", "security:chat"],
            "an admin's reset of a third-party factor, with email limited to updates"
        );
        assert_eq!(
            by(None, Some(true)),
            ["security:email", "security:chat"],
            "an actor nobody can name is not the user"
        );
        assert!(by(Some(Initiator::SelfService), Some(true)).is_empty());
        let mut failed = change(Action::ResetAll, Some(true));
        failed.initiator = Some(Initiator::Admin);
        failed.outcome = Some("FAILURE".into());
        assert!(r.destinations(&failed).is_empty());
        let mut org = change(Action::OrgFactorDisabled, Some(true));
        org.initiator = Some(Initiator::Admin);
        assert!(r.destinations(&org).is_empty());
    }
}
