//! Every Okta event type factorwatch knows, and what it is to factorwatch — in one table. The
//! System Log filter it polls with, the Event Hook subscription it registers, the classifier's
//! action for each MFA change, the context events it keeps, and the legacy Events API
//! `objectType`s it maps are all derived from [`CATALOG`]; nothing else lists event types.
//!
//! Sources: Okta's event-type catalog (release 2026.08.1 for hook eligibility, the
//! `event-hook-eligible` tag; release 2023.09.1, the last to carry the Events API `mappings`, for
//! the legacy objectTypes), summarized in `shared/okta/API-NOTES.md` §2 and §5. A test checks the
//! table against the published catalog.

use crate::record::Action;

/// What an event type is to factorwatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An MFA change: classified, stored, delivered.
    Change(Action),
    /// Not a change, but it tells something about one (Okta's own notice was sent; the user's
    /// primary email changed): kept as context.
    Context,
    /// Not a change, but evidence the detections weigh (a sign-in and where it came from, a
    /// password reset, the user's own report): kept in the detections' journal.
    Evidence(Evidence),
}

/// What an evidence event tells the detections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The user signed in (or verified a factor) from a place.
    SignIn,
    /// The user's password was reset or changed.
    PasswordReset,
    /// The user told Okta "this wasn't me".
    Reported,
    /// A device (Okta Verify) was bound to a user.
    DeviceAdded,
    /// Someone (Okta Support) started or extended acting as a user.
    ImpersonationStarted,
    ImpersonationEnded,
}

/// One event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    pub name: &'static str,
    pub role: Role,
    /// Okta delivers it to Event Hooks (tagged `event-hook-eligible`).
    pub hook_eligible: bool,
    /// The legacy Events API `action.objectType` it replaced, if any.
    pub legacy: Option<&'static str>,
}

const fn change(
    name: &'static str,
    action: Action,
    hook_eligible: bool,
    legacy: Option<&'static str>,
) -> EventType {
    EventType {
        name,
        role: Role::Change(action),
        hook_eligible,
        legacy,
    }
}

const fn context(name: &'static str, legacy: Option<&'static str>) -> EventType {
    EventType {
        name,
        role: Role::Context,
        hook_eligible: false,
        legacy,
    }
}

const fn evidence(name: &'static str, kind: Evidence, hook_eligible: bool) -> EventType {
    EventType {
        name,
        role: Role::Evidence(kind),
        hook_eligible,
        legacy: None,
    }
}

/// The table. `user.mfa.promote_enrollment` is left out on purpose: an enrollment it reports is
/// also logged as `user.mfa.factor.activate`, and counting both would tell the user twice.
/// `security.authenticator.lifecycle.{activate,deactivate}` are the Identity Engine's org-wide
/// counterparts of `system.mfa.factor.*` (an admin turning an authenticator on or off).
pub const CATALOG: &[EventType] = &[
    change(
        "user.mfa.factor.activate",
        Action::Enrolled,
        true,
        Some("core.user.factor.activate"),
    ),
    change(
        "user.mfa.factor.deactivate",
        Action::Reset,
        true,
        Some("core.user.factor.deactivate"),
    ),
    change(
        "user.mfa.factor.reset_all",
        Action::ResetAll,
        true,
        Some("core.user.factor.reset_all"),
    ),
    change(
        "user.mfa.factor.update",
        Action::Updated,
        true,
        Some("core.user.factor.update"),
    ),
    change("user.mfa.factor.suspend", Action::Suspended, true, None),
    change("user.mfa.factor.unsuspend", Action::Unsuspended, true, None),
    change(
        "user.mfa.attempt_bypass",
        Action::BypassAttempted,
        false,
        Some("core.user_auth.mfa_bypass_attempted"),
    ),
    change(
        "system.mfa.factor.activate",
        Action::OrgFactorEnabled,
        false,
        None,
    ),
    change(
        "system.mfa.factor.deactivate",
        Action::OrgFactorDisabled,
        false,
        None,
    ),
    change(
        "security.authenticator.lifecycle.activate",
        Action::OrgFactorEnabled,
        true,
        None,
    ),
    change(
        "security.authenticator.lifecycle.deactivate",
        Action::OrgFactorDisabled,
        true,
        None,
    ),
    // Okta's own notices, for `email.skip_when_okta_notified`.
    context(
        "system.email.mfa_enroll_notification.sent_message",
        Some("core.user.email.message_sent.mfa_enroll_notification"),
    ),
    context(
        "system.email.mfa_reset_notification.sent_message",
        Some("core.user.email.message_sent.mfa_reset_notification"),
    ),
    // Primary-email changes, so the previous address hears of MFA changes made soon after.
    context(
        "user.account.update_primary_email",
        Some("core.user.config.update_primary_email"),
    ),
    // Evidence for the detections. Sign-ins into Okta and MFA verifications carry the place
    // (address, country, browser and OS); per-app sign-ons (`user.authentication.sso`) are left
    // out on purpose: they happen inside a session already started from the same place, and
    // would multiply the events read by the number of apps.
    evidence("user.session.start", Evidence::SignIn, true),
    evidence("user.authentication.auth_via_mfa", Evidence::SignIn, true),
    evidence("user.account.reset_password", Evidence::PasswordReset, true),
    evidence(
        "user.account.update_password",
        Evidence::PasswordReset,
        false,
    ),
    evidence(
        "user.account.report_suspicious_activity_by_enduser",
        Evidence::Reported,
        true,
    ),
    evidence("device.user.add", Evidence::DeviceAdded, true),
    evidence(
        "user.session.impersonation.grant",
        Evidence::ImpersonationStarted,
        false,
    ),
    evidence(
        "user.session.impersonation.initiate",
        Evidence::ImpersonationStarted,
        false,
    ),
    evidence(
        "user.session.impersonation.extend",
        Evidence::ImpersonationStarted,
        false,
    ),
    evidence(
        "user.session.impersonation.end",
        Evidence::ImpersonationEnded,
        false,
    ),
    evidence(
        "user.session.impersonation.revoke",
        Evidence::ImpersonationEnded,
        false,
    ),
];

/// The entry for a System Log event type (exact, case-sensitive: Okta's names are lower case).
pub fn get(name: &str) -> Option<&'static EventType> {
    CATALOG.iter().find(|t| t.name == name)
}

/// The MFA change an event type records, or `None` for every other event type.
pub fn action(name: &str) -> Option<Action> {
    match get(name)?.role {
        Role::Change(a) => Some(a),
        Role::Context | Role::Evidence(_) => None,
    }
}

/// What an event type is evidence of, for the detections.
pub fn evidence_of(name: &str) -> Option<Evidence> {
    match get(name)?.role {
        Role::Evidence(e) => Some(e),
        Role::Change(_) | Role::Context => None,
    }
}

/// Whether events of this type are kept as context.
pub fn is_context(name: &str) -> bool {
    get(name).is_some_and(|t| t.role == Role::Context)
}

/// The event types polled from the System Log by default (its server-side `filter`): every
/// change and every context type, and — when the detections are on — their evidence.
pub fn polled(detections: bool) -> Vec<String> {
    CATALOG
        .iter()
        .filter(|t| detections || !matches!(t.role, Role::Evidence(_)))
        .map(|t| t.name.to_owned())
        .collect()
}

/// The event types a factorwatch Event Hook subscribes to: those polled that Okta delivers to
/// hooks.
pub fn hook_subscription(detections: bool) -> Vec<&'static str> {
    CATALOG
        .iter()
        .filter(|t| t.hook_eligible)
        .filter(|t| detections || !matches!(t.role, Role::Evidence(_)))
        .map(|t| t.name)
        .collect()
}

/// The legacy Events API `objectType`s polled by default: those of the MFA changes (the legacy
/// path carries changes only).
pub fn legacy_polled() -> Vec<String> {
    CATALOG
        .iter()
        .filter(|t| matches!(t.role, Role::Change(_)))
        .filter_map(|t| t.legacy.map(str::to_owned))
        .collect()
}

/// The System Log event type that replaced a legacy `objectType`, for MFA changes.
pub fn from_legacy(object_type: &str) -> Option<&'static EventType> {
    CATALOG
        .iter()
        .find(|t| t.legacy == Some(object_type) && matches!(t.role, Role::Change(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_types_map_and_neighbours_do_not() {
        assert_eq!(action("user.mfa.factor.activate"), Some(Action::Enrolled));
        assert_eq!(action("user.mfa.factor.reset_all"), Some(Action::ResetAll));
        assert_eq!(
            action("system.mfa.factor.deactivate"),
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
            assert_eq!(action(other), None, "{other}");
        }
    }

    #[test]
    fn names_are_unique_and_legacy_types_map_back() {
        for (i, t) in CATALOG.iter().enumerate() {
            assert!(
                CATALOG[..i].iter().all(|u| u.name != t.name),
                "{} twice",
                t.name
            );
        }
        for legacy in legacy_polled() {
            let t = from_legacy(&legacy).unwrap();
            assert_eq!(t.legacy, Some(legacy.as_str()));
        }
        assert_eq!(
            from_legacy("core.user.factor.activate").map(|t| t.name),
            Some("user.mfa.factor.activate")
        );
        assert_eq!(from_legacy("core.user.config.update_primary_email"), None);
        assert_eq!(from_legacy("core.user_auth.login_success"), None);
    }

    #[test]
    fn the_hook_subscribes_to_eligible_types_only() {
        let hook = hook_subscription(false);
        assert!(!hook.contains(&"user.session.start"));
        assert!(hook_subscription(true).contains(&"user.session.start"));
        assert!(!polled(false).iter().any(|t| t == "user.session.start"));
        assert!(polled(true).iter().any(|t| t == "user.session.start"));
        assert!(hook.contains(&"user.mfa.factor.activate"));
        assert!(!hook.contains(&"user.mfa.attempt_bypass"));
        assert!(!hook.contains(&"system.mfa.factor.activate"));
        assert!(!hook.contains(&"user.account.update_primary_email"));
    }
}
