//! `shared_phone`: one phone number enrolled (or re-registered) as a factor for two or more users
//! within the window. Numbers are compared as keyed hashes of the full number
//! ([`crate::detect::signal::PhoneKey`]); no number is kept.

use super::shared::Shared;
use crate::detect::signal::{Signal, What};
use crate::detect::{RuleId, RuleSettings};

pub fn rule(settings: RuleSettings) -> Shared {
    Shared::new(
        RuleId::SharedPhone,
        settings,
        phone,
        "phone number",
        "Someone who took over several accounts registers one number they control on all of them; two people rarely share a number for MFA. Ask each user whether the number is theirs.",
    )
}

fn phone(s: &Signal) -> Option<String> {
    match &s.what {
        What::Enrolled { phone, .. } | What::Updated { phone, .. } => phone.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::classify::factor::Kind;
    use crate::detect::RuleId;
    use crate::detect::signal::What;

    const RULE: RuleId = RuleId::SharedPhone;
    const DAY: i64 = 24 * 60;

    fn sms(id: &str, minutes: i64, user: &str, phone: &str) -> crate::detect::Signal {
        signal(
            id,
            minutes,
            What::Enrolled {
                factor: Kind::Sms,
                phone: Some(phone.into()),
                device: None,
            },
            user,
            user,
            home(),
        )
    }

    #[test]
    fn one_number_for_two_users_fires_once_per_sequence() {
        let s = vec![
            sms("a", 0, "u1", "h1"),
            sms("b", 10 * DAY, "u2", "h1"),
            sms("c", 11 * DAY, "u3", "h1"),
        ];
        let f = of(&run(&s), RULE);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].event_ids, ["a", "b"]);
        assert_eq!(f[0].user.as_ref().and_then(|u| u.id.as_deref()), Some("u2"));
    }

    #[test]
    fn near_misses_do_not_fire() {
        let s = vec![sms("a", 0, "u1", "h1"), sms("b", 31 * DAY, "u2", "h1")];
        assert!(of(&run(&s), RULE).is_empty(), "outside 30 days");
        let s = vec![sms("a", 0, "u1", "h1"), sms("b", DAY, "u1", "h1")];
        assert!(of(&run(&s), RULE).is_empty(), "the same user again");
        let s = vec![sms("a", 0, "u1", "h1"), sms("b", DAY, "u2", "h2")];
        assert!(of(&run(&s), RULE).is_empty(), "different numbers");
    }
}
