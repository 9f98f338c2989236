//! Who started a change, relative to the user it affected.

use crate::record::{Actor, Initiator, Person};

/// Okta's own actor: `SystemPrincipal`, alternateId `system@okta.com`.
const SYSTEM_LOGIN: &str = "system@okta.com";

/// Decides the initiator from the actor and the affected user:
/// - `system` for Okta itself;
/// - `app` for an OAuth service app (`PublicClientApp`…) or app instance;
/// - `self` when the actor is the affected user (same id, or same login: logins are unique);
/// - `admin` for any other person;
/// - `None` when the event names no actor, or one of a kind none of these covers.
pub fn decide(actor: Option<&Actor>, user: Option<&Person>) -> Option<Initiator> {
    let actor = actor?;
    let kind = actor
        .actor_type
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    let login_is = |l: &str| {
        actor
            .login
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(l))
    };

    if kind == "systemprincipal" || login_is(SYSTEM_LOGIN) {
        return Some(Initiator::System);
    }
    if is_app(&kind) {
        return Some(Initiator::App);
    }
    if kind != "user" && !kind.is_empty() {
        return None;
    }
    if actor.id.is_none() && actor.login.is_none() {
        return None;
    }
    let same_id =
        matches!((&actor.id, user.and_then(|u| u.id.as_ref())), (Some(a), Some(b)) if a == b);
    let same_login = user
        .and_then(|u| u.login.as_deref())
        .is_some_and(|l| !l.is_empty() && login_is(l));
    Some(if same_id || same_login {
        Initiator::SelfService
    } else {
        Initiator::Admin
    })
}

/// Actor types Okta uses for applications acting through the API.
fn is_app(kind: &str) -> bool {
    kind.starts_with("publicclientapp")
        || matches!(
            kind,
            "appinstance" | "app" | "application" | "serviceapp" | "oauth2client"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: &str, login: &str, kind: &str) -> Actor {
        Actor {
            id: Some(id.into()),
            login: Some(login.into()),
            display_name: None,
            actor_type: Some(kind.into()),
        }
    }

    fn user(id: &str, login: &str) -> Person {
        Person {
            id: Some(id.into()),
            login: Some(login.into()),
            display_name: None,
        }
    }

    #[test]
    fn the_four_initiators() {
        let jane = user("00u1", "jane@example.com");
        let d = |a: &Actor| decide(Some(a), Some(&jane));
        assert_eq!(
            d(&actor("00u1", "jane@example.com", "User")),
            Some(Initiator::SelfService)
        );
        assert_eq!(
            d(&actor("00u9", "JANE@example.com", "User")),
            Some(Initiator::SelfService)
        );
        assert_eq!(
            d(&actor("00u2", "admin@example.com", "User")),
            Some(Initiator::Admin)
        );
        assert_eq!(
            d(&actor("0oa1", "svc", "PublicClientApp")),
            Some(Initiator::App)
        );
        assert_eq!(
            d(&actor("0oa1", "svc", "PublicClientAppEntity")),
            Some(Initiator::App)
        );
        assert_eq!(
            d(&actor("spr1", "system@okta.com", "SystemPrincipal")),
            Some(Initiator::System)
        );
    }

    #[test]
    fn unknown_actors_are_not_guessed() {
        assert_eq!(decide(None, None), None);
        let odd = actor("x", "y", "PolicyRule");
        assert_eq!(decide(Some(&odd), None), None);
    }

    #[test]
    fn a_person_acting_on_no_user_is_an_admin() {
        let admin = actor("00u2", "admin@example.com", "User");
        assert_eq!(decide(Some(&admin), None), Some(Initiator::Admin));
    }
}
