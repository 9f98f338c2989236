//! Which System Log event types are MFA changes, and what each one means.

use crate::record::Action;

/// The MFA change an event type records, or `None` for every other event type (sign-ins,
/// verifications, push and SMS sends, Okta's own notification emails, password changes…).
///
/// `security.authenticator.lifecycle.{activate,deactivate}` are the Identity Engine's org-wide
/// counterparts of `system.mfa.factor.*` (an admin turning an authenticator on or off for everyone).
/// `user.mfa.promote_enrollment` is left out on purpose: an enrollment it reports is also logged as
/// `user.mfa.factor.activate`, and counting both would tell the user twice.
pub fn for_event_type(event_type: &str) -> Option<Action> {
    Some(match event_type {
        "user.mfa.factor.activate" => Action::Enrolled,
        "user.mfa.factor.deactivate" => Action::Reset,
        "user.mfa.factor.reset_all" => Action::ResetAll,
        "user.mfa.factor.update" => Action::Updated,
        "user.mfa.factor.suspend" => Action::Suspended,
        "user.mfa.factor.unsuspend" => Action::Unsuspended,
        "user.mfa.attempt_bypass" => Action::BypassAttempted,
        "system.mfa.factor.activate" | "security.authenticator.lifecycle.activate" => {
            Action::OrgFactorEnabled
        }
        "system.mfa.factor.deactivate" | "security.authenticator.lifecycle.deactivate" => {
            Action::OrgFactorDisabled
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_types_map_and_neighbours_do_not() {
        assert_eq!(
            for_event_type("user.mfa.factor.activate"),
            Some(Action::Enrolled)
        );
        assert_eq!(
            for_event_type("user.mfa.factor.reset_all"),
            Some(Action::ResetAll)
        );
        assert_eq!(
            for_event_type("system.mfa.factor.deactivate"),
            Some(Action::OrgFactorDisabled)
        );
        for other in [
            "user.authentication.auth_via_mfa",
            "user.mfa.okta_verify.deny_push",
            "user.mfa.promote_enrollment",
            "system.push.send_factor_verify_push",
            "system.email.mfa_enroll_notification.sent_message",
            "user.account.update_password",
            "user.session.start",
            "USER.MFA.FACTOR.ACTIVATE",
            "",
        ] {
            assert_eq!(for_event_type(other), None, "{other}");
        }
    }
}
