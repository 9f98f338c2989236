//! Who is owed a change: every SIEM destination, and — when the change is one a user should hear
//! about — the email destination. Pure.

use crate::record::{Action, MfaChange};

#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// SIEM destinations: every change goes to each.
    pub siem: Vec<String>,
    /// The email destination, if email is on.
    pub email: Option<String>,
    /// Also email about factors Okta does not own (Duo, RSA, Symantec…).
    pub notify_third_party: bool,
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
        let mut d = self.siem.clone();
        if let Some(email) = &self.email
            && notifies_user(change, self.notify_third_party)
        {
            d.push(email.clone());
        }
        d
    }
}
