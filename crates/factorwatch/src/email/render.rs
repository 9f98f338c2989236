//! The words of a notice: subject and plain-text body for one change, specific to what happened
//! and who did it. Pure.

use crate::enrich::Enrichment;
use crate::okta::factors::FactorType;
use crate::record::{Action, Initiator, MfaChange, format_published};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
}

/// What changed, as a person would say it ("a phone number ending 1234 for SMS verification").
fn what(change: &MfaChange, e: &Enrichment) -> String {
    let f = &change.factor;
    let detail = e.factor.clone().unwrap_or_default();
    let last4 = f.phone_last4.clone().or(detail.phone_last4);
    let name = f.name.clone().unwrap_or_else(|| "an MFA factor".into());
    let kind = f.factor_type.or_else(|| {
        detail
            .factor_type
            .as_deref()
            .and_then(|t| serde_json::from_value(serde_json::Value::String(t.to_owned())).ok())
    });
    match (kind, last4) {
        (Some(FactorType::Sms), Some(d)) => {
            format!("a phone number ending {d} for SMS verification")
        }
        (Some(FactorType::Call), Some(d)) => {
            format!("a phone number ending {d} for voice call verification")
        }
        (Some(FactorType::Push), _) => match detail.device_name {
            Some(device) => format!(
                "Okta Verify push notifications on {}",
                quoted_device(&device, detail.platform.as_deref())
            ),
            None => "Okta Verify push notifications".into(),
        },
        (None, Some(d)) => format!("a phone number ending {d}"),
        _ => name,
    }
}

fn quoted_device(name: &str, platform: Option<&str>) -> String {
    let kind = match platform {
        Some("IOS") => "iPhone ",
        Some("ANDROID") => "Android phone ",
        _ => "",
    };
    format!("{kind}'{}'", name.replace(['\r', '\n'], " "))
}

/// Who did it, as the sentence's subject.
fn who(change: &MfaChange) -> String {
    let actor = change
        .actor
        .as_ref()
        .and_then(|a| a.display_name.clone().or(a.login.clone()))
        .map(|n| n.replace(['\r', '\n'], " "));
    match (change.initiator, actor) {
        (Some(Initiator::SelfService) | None, _) => "You".into(),
        (Some(Initiator::Admin), Some(name)) => format!("An administrator ({name})"),
        (Some(Initiator::Admin), None) => "An administrator".into(),
        (Some(Initiator::App), Some(name)) => format!("An application ({name})"),
        (Some(Initiator::App), None) => "An application".into(),
        (Some(Initiator::System), _) => "Okta".into(),
    }
}

pub fn render(change: &MfaChange, e: &Enrichment, help: &str) -> Rendered {
    let who = who(change);
    let you = who == "You";
    let what = what(change, e);
    let sentence = match change.action {
        Action::Enrolled if you => format!("You just set up {what}."),
        Action::Enrolled => format!("{who} set up {what} on your account."),
        Action::Reset if you => format!("You just removed {what} from your account."),
        Action::Reset => format!("{who} removed {what} from your account."),
        Action::ResetAll if you => "You just reset your MFA settings through self service.".into(),
        Action::ResetAll => format!("{who} reset all your MFA factors."),
        Action::Updated if you => format!("You just changed {what}."),
        Action::Updated => format!("{who} changed {what} on your account."),
        Action::Suspended => format!("{who} suspended {what} on your account."),
        Action::Unsuspended => format!("{who} reinstated {what} on your account."),
        Action::BypassAttempted => {
            "Someone tried to get around multi-factor authentication on your account.".into()
        }
        Action::OrgFactorEnabled | Action::OrgFactorDisabled => {
            format!("Your organization changed its {what} settings.")
        }
    };
    let subject = match change.action {
        Action::Enrolled => "A new sign-in method was added to your account",
        Action::Reset | Action::ResetAll => "A sign-in method was removed from your account",
        Action::Updated => "A sign-in method on your account was changed",
        Action::Suspended | Action::Unsuspended => {
            "A sign-in method on your account was suspended or reinstated"
        }
        Action::BypassAttempted => {
            "Someone tried to bypass multi-factor authentication on your account"
        }
        Action::OrgFactorEnabled | Action::OrgFactorDisabled => {
            "Your organization's sign-in settings changed"
        }
    };
    let greeting = match &e.first_name {
        Some(n) => format!("Hello {},", n.replace(['\r', '\n'], " ")),
        None => "Hello,".into(),
    };
    let mut lines = vec![greeting, String::new(), sentence, String::new()];
    if let Some(t) = change.published {
        lines.push(format!(
            "When:  {} UTC",
            format_published(&t).replace('T', " ").trim_end_matches('Z')
        ));
    }
    let c = &change.client;
    let place: Vec<&str> = [c.city.as_deref(), c.state.as_deref(), c.country.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if c.ip.is_some() || !place.is_empty() {
        let ip = c.ip.as_deref().unwrap_or("unknown address");
        let place = if place.is_empty() {
            String::new()
        } else {
            format!(" ({})", place.join(", "))
        };
        lines.push(format!("From:  {ip}{place}"));
    }
    let device: Vec<&str> = [c.browser.as_deref(), c.os.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !device.is_empty() {
        lines.push(format!("Using: {}", device.join(" on ")));
    }
    lines.push(String::new());
    lines.push(format!(
        "If this was not you, your account may be in someone else's hands: {}",
        help.replace(['\r', '\n'], " ")
    ));
    let text = lines
        .iter()
        .map(|l| l.replace(['\r', '\n'], " "))
        .collect::<Vec<_>>()
        .join("\n");
    Rendered {
        subject: subject.into(),
        text: text + "\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::FactorDetail;
    use crate::okta::factors::Provider;
    use crate::record::{Actor, Client, EventId, Factor, Person, Source};

    fn change(action: Action, t: Option<FactorType>, initiator: Initiator) -> MfaChange {
        MfaChange {
            id: EventId::Okta("e".into()),
            source: Source::SystemLog,
            published: chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
                .ok()
                .map(|t| t.to_utc()),
            event_type: "user.mfa.factor.activate".into(),
            legacy_event_type: None,
            action,
            outcome: Some("SUCCESS".into()),
            factor: Factor {
                factor_type: t,
                provider: Some(Provider::Okta),
                name: Some("SMS".into()),
                ..Factor::default()
            },
            user: Some(Person {
                id: Some("00u1".into()),
                login: Some("dade@example.com".into()),
                display_name: None,
            }),
            actor: Some(Actor {
                id: Some("00u9".into()),
                login: None,
                display_name: Some("Jane Admin".into()),
                actor_type: Some("User".into()),
            }),
            initiator: Some(initiator),
            client: Client {
                ip: Some("198.51.100.7".into()),
                city: Some("Paris".into()),
                country: Some("France".into()),
                browser: Some("CHROME".into()),
                os: Some("Mac OS X".into()),
                ..Client::default()
            },
            reason: None,
            message: None,
            session_id: None,
        }
    }

    #[test]
    fn says_exactly_what_happened_and_who_did_it() {
        let mut e = Enrichment {
            first_name: Some("Dade".into()),
            ..Enrichment::default()
        };
        e.factor = Some(FactorDetail {
            phone_last4: Some("1234".into()),
            ..FactorDetail::default()
        });
        let r = render(
            &change(
                Action::Enrolled,
                Some(FactorType::Sms),
                Initiator::SelfService,
            ),
            &e,
            "call x1234",
        );
        assert!(
            r.text
                .contains("You just set up a phone number ending 1234 for SMS verification."),
            "{}",
            r.text
        );
        assert!(r.text.contains("From:  198.51.100.7 (Paris, France)"));
        assert!(r.text.contains("call x1234"));

        e.factor = Some(FactorDetail {
            device_name: Some("Gibson".into()),
            platform: Some("IOS".into()),
            ..FactorDetail::default()
        });
        let r = render(
            &change(
                Action::Enrolled,
                Some(FactorType::Push),
                Initiator::SelfService,
            ),
            &e,
            "h",
        );
        assert!(
            r.text
                .contains("You just set up Okta Verify push notifications on iPhone 'Gibson'."),
            "{}",
            r.text
        );

        let r = render(&change(Action::ResetAll, None, Initiator::Admin), &e, "h");
        assert!(
            r.text
                .contains("An administrator (Jane Admin) reset all your MFA factors."),
            "{}",
            r.text
        );
        let r = render(
            &change(Action::ResetAll, None, Initiator::SelfService),
            &e,
            "h",
        );
        assert!(
            r.text
                .contains("You just reset your MFA settings through self service.")
        );
    }

    #[test]
    fn no_field_can_break_a_line_or_a_header() {
        let mut c = change(Action::Reset, Some(FactorType::Sms), Initiator::Admin);
        c.actor.as_mut().unwrap().display_name = Some("Evil\r\nBcc: victim@example.com".into());
        c.client.city = Some("X\nY".into());
        let r = render(&c, &Enrichment::default(), "h");
        assert!(!r.subject.contains('\n'));
        assert!(r.text.lines().all(|l| !l.starts_with("Bcc:")), "{}", r.text);
    }
}
