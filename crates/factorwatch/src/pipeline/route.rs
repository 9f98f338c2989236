//! Who is owed a change: every SIEM destination, and — when the change is one a user should hear
//! about — the email destination. Pure.

use crate::record::{Action, MfaChange};

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

impl Routing {
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
}
