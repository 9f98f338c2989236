//! Which factor an event concerns, combined from every place Okta may name it.

use std::collections::HashSet;

use crate::okta::factors::{self, FactorType, KnownFactor, Provider};
use crate::record::Factor;

/// One place an event names a factor, in Okta's words.
#[derive(Debug, Clone, Copy)]
pub struct Signal<'a>(pub &'a str);

/// Combines the signals, most specific first, into one factor. A later signal fills in what the
/// earlier ones left open (the "Okta Verify" authenticator plus `OKTA_VERIFY_PUSH` in the reason
/// make push), but never contradicts them. A name nobody knows is kept raw, with type and provider
/// left unknown.
pub fn resolve<'a>(
    signals: impl IntoIterator<Item = Signal<'a>>,
    phone_number: Option<&str>,
    okta_authoritative: &HashSet<Provider>,
) -> Factor {
    let mut factor_type: Option<FactorType> = None;
    let mut provider: Option<Provider> = None;
    let mut known_name: Option<&'static str> = None;
    let mut raw_name: Option<&str> = None;

    for Signal(text) in signals {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let Some(KnownFactor {
            factor_type: t,
            provider: p,
            name,
        }) = factors::lookup(text)
        else {
            raw_name.get_or_insert(text);
            continue;
        };
        let contradicts = matches!((t, factor_type), (Some(a), Some(b)) if a != b)
            || matches!((p, provider), (Some(a), Some(b)) if a != b);
        if contradicts {
            continue;
        }
        factor_type = factor_type.or(t);
        provider = provider.or(p);
        known_name.get_or_insert(name);
    }

    let name = match (factor_type, provider) {
        (Some(t), Some(p)) => factors::canonical_name(t, p).or(known_name),
        _ => known_name,
    }
    .map(str::to_owned)
    .or_else(|| raw_name.map(str::to_owned));

    Factor {
        factor_type,
        provider,
        name,
        okta_authoritative: provider.map(|p| okta_authoritative.contains(&p)),
        phone_last4: phone_number.and_then(last4),
    }
}

/// The last (up to) four digits of a phone number, in any of the formats Okta uses
/// (`+14125514455`, `+1-555-415-1337`); `None` when it has no digits.
pub fn last4(phone: &str) -> Option<String> {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let tail = &digits[digits.len().saturating_sub(4)..];
    (!tail.is_empty()).then(|| tail.iter().collect())
}

/// The factor named in a sentence such as `User set up SMS_FACTOR factor`, `User reset FIDO_WEBAUTHN
/// factor` (System Log `outcome.reason`) or `User set up Google Authenticator factor` (Events API
/// `action.message`): the words between the verb and the word "factor" (or "authenticator").
pub fn named_in_sentence(sentence: &str) -> Option<&str> {
    const VERBS: &[&str] = &[
        "set up",
        "reset",
        "updated",
        "activated",
        "deactivated",
        "enrolled in",
        "enrolled",
        "suspended",
        "unsuspended",
        "removed",
        "deleted",
        "added",
        "created",
        "changed",
        "verified",
    ];
    const NOUNS: &[&str] = &["factor", "authenticator"];

    let lower = sentence.to_ascii_lowercase();
    // The first whole word "factor" that follows some text, else "authenticator" (which can also
    // be part of a name: "Google Authenticator factor").
    let end = NOUNS.iter().find_map(|noun| find_word(&lower, noun, 1))?;
    let before = &lower[..end];
    let start = VERBS
        .iter()
        .filter_map(|verb| find_word(before, verb, 0).map(|at| (at, at + verb.len())))
        .min_by_key(|&(at, _)| at)
        .map(|(_, verb_end)| verb_end);
    let name = match start {
        Some(verb_end) => sentence.get(verb_end..end)?.trim(),
        // No verb: accept only a lone internal name, such as `OKTA_VERIFY_PUSH factor`.
        None => {
            let last = sentence.get(..end)?.split_whitespace().next_back()?;
            let internal = last.len() > 2
                && last
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !internal {
                return None;
            }
            last
        }
    };
    (!name.is_empty()).then_some(name)
}

/// Byte offset of the first occurrence of `word` in `haystack` that stands as a whole word, at or
/// after byte `from`.
fn find_word(haystack: &str, word: &str, from: usize) -> Option<usize> {
    let bytes = haystack.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut at = from;
    while let Some(found) = haystack.get(at..)?.find(word) {
        let start = at + found;
        let end = start + word.len();
        let left_ok = start == 0 || !is_word(bytes[start - 1]);
        let right_ok = end == bytes.len() || !is_word(bytes[end]);
        if left_ok && right_ok {
            return Some(start);
        }
        at = start + 1;
        while !haystack.is_char_boundary(at) {
            at += 1;
        }
    }
    None
}

/// What kind of factor a person would say it is, and how hard it is to phish: the one place the
/// notices (their wording) and the detections (strength) take it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Sms,
    Call,
    /// Identity Engine's "Phone" authenticator, method unknown (SMS or voice).
    Phone,
    Push,
    Totp,
    Email,
    Question,
    Webauthn,
    SecurityKey,
    Fastpass,
    Token,
    Other,
}

/// How resistant a factor is to phishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// Bound to the origin it signs in to: WebAuthn/FIDO, Okta FastPass (signed nonce).
    PhishingResistant,
    /// Relayed by anyone who asks: SMS, voice, phone, email, security question.
    Weak,
    /// Neither: push, one-time codes, tokens, unknown.
    Neither,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sms => "sms",
            Kind::Call => "call",
            Kind::Phone => "phone",
            Kind::Push => "push",
            Kind::Totp => "totp",
            Kind::Email => "email",
            Kind::Question => "question",
            Kind::Webauthn => "webauthn",
            Kind::SecurityKey => "security_key",
            Kind::Fastpass => "fastpass",
            Kind::Token => "token",
            Kind::Other => "other",
        }
    }

    pub fn strength(self) -> Strength {
        match self {
            Kind::Webauthn | Kind::SecurityKey | Kind::Fastpass => Strength::PhishingResistant,
            Kind::Sms | Kind::Call | Kind::Phone | Kind::Email | Kind::Question => Strength::Weak,
            Kind::Push | Kind::Totp | Kind::Token | Kind::Other => Strength::Neither,
        }
    }

    /// The kind of a classified factor. Okta Verify's TOTP is push's sibling (one app); a factor
    /// known only by a phone number is a phone; an Identity Engine "Phone" authenticator too.
    pub fn of(factor: &Factor) -> Kind {
        match (factor.factor_type, factor.provider) {
            (Some(FactorType::Sms), _) => Kind::Sms,
            (Some(FactorType::Call), _) => Kind::Call,
            (Some(FactorType::Push), _) => Kind::Push,
            (Some(FactorType::SoftwareTotp), Some(Provider::Okta)) => Kind::Push,
            (Some(FactorType::SoftwareTotp | FactorType::Hotp), _) => Kind::Totp,
            (Some(FactorType::Email), _) => Kind::Email,
            (Some(FactorType::Question), _) => Kind::Question,
            (Some(FactorType::Webauthn), _) => Kind::Webauthn,
            (Some(FactorType::U2f), _) => Kind::SecurityKey,
            (Some(FactorType::SignedNonce), _) => Kind::Fastpass,
            (Some(FactorType::HardwareToken | FactorType::Token), _) => Kind::Token,
            _ if factor.phone_last4.is_some() => Kind::Phone,
            // Identity Engine's "Okta Verify" authenticator without a method: the app (push and
            // its codes; FastPass is logged as its own, signed-nonce, factor).
            (None, Some(Provider::Okta))
                if factor
                    .name
                    .as_deref()
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case("okta verify")) =>
            {
                Kind::Push
            }
            _ if factor
                .name
                .as_deref()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("phone")) =>
            {
                Kind::Phone
            }
            _ => Kind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> HashSet<Provider> {
        Provider::DEFAULT_OKTA_AUTHORITATIVE.into_iter().collect()
    }

    fn resolve_texts(texts: &[&str]) -> Factor {
        resolve(texts.iter().map(|t| Signal(t)), None, &defaults())
    }

    #[test]
    fn sentences_name_their_factor() {
        assert_eq!(
            named_in_sentence("User set up EMAIL_FACTOR factor"),
            Some("EMAIL_FACTOR")
        );
        assert_eq!(
            named_in_sentence("User reset FIDO_WEBAUTHN factor"),
            Some("FIDO_WEBAUTHN")
        );
        assert_eq!(
            named_in_sentence("User suspended SIGNED_NONCE factor"),
            Some("SIGNED_NONCE")
        );
        assert_eq!(
            named_in_sentence("User unsuspended SIGNED_NONCE factor"),
            Some("SIGNED_NONCE")
        );
        assert_eq!(
            named_in_sentence("User set up Google Authenticator factor"),
            Some("Google Authenticator")
        );
        assert_eq!(
            named_in_sentence("User updated Security Question factor"),
            Some("Security Question")
        );
        assert_eq!(
            named_in_sentence("User enrolled in Okta Verify authenticator"),
            Some("Okta Verify")
        );
        assert_eq!(
            named_in_sentence("OKTA_VERIFY_PUSH factor"),
            Some("OKTA_VERIFY_PUSH")
        );
    }

    #[test]
    fn sentences_without_a_factor_name_none() {
        for s in [
            "Reset factor for user",
            "Reset all factors for user",
            "Activate factor for user",
            "INVALID_CREDENTIALS",
            "User reset factor",
            "",
            "factor",
            "User set up   factor",
        ] {
            assert_eq!(named_in_sentence(s), None, "{s:?}");
        }
    }

    #[test]
    fn signals_fill_each_other_in_without_contradicting() {
        let f = resolve_texts(&["Okta Verify", "OKTA_VERIFY_PUSH"]);
        assert_eq!(
            (f.factor_type, f.provider),
            (Some(FactorType::Push), Some(Provider::Okta))
        );
        assert_eq!(f.name.as_deref(), Some("Okta Verify"));

        let f = resolve_texts(&["Phone", "SMS_FACTOR"]);
        assert_eq!(f.factor_type, Some(FactorType::Sms));
        assert_eq!(f.name.as_deref(), Some("SMS"));

        // A contradicting later signal is ignored, not merged into a pair Okta does not offer.
        let f = resolve_texts(&["Google Authenticator", "OKTA_VERIFY_PUSH"]);
        assert_eq!(
            (f.factor_type, f.provider),
            (Some(FactorType::SoftwareTotp), Some(Provider::Google))
        );

        // An ambiguous type learns its provider from a later signal.
        let f = resolve_texts(&["token:software:totp", "GOOGLE_OTP"]);
        assert_eq!(f.name.as_deref(), Some("Google Authenticator"));
    }

    #[test]
    fn unknown_names_stay_raw_and_unknown() {
        let f = resolve_texts(&["ACME_QUANTUM_TOKEN"]);
        assert_eq!(
            (f.factor_type, f.provider, f.okta_authoritative),
            (None, None, None)
        );
        assert_eq!(f.name.as_deref(), Some("ACME_QUANTUM_TOKEN"));
        // A known later signal wins the name over an unknown earlier one.
        let f = resolve_texts(&["Acme Widget", "SMS_FACTOR"]);
        assert_eq!(f.name.as_deref(), Some("SMS"));
        assert_eq!(resolve_texts(&[]), Factor::default());
    }

    #[test]
    fn authority_follows_the_configured_providers() {
        assert_eq!(
            resolve_texts(&["SMS_FACTOR"]).okta_authoritative,
            Some(true)
        );
        assert_eq!(
            resolve_texts(&["RSA_SECURID"]).okta_authoritative,
            Some(false)
        );
        let only_okta: HashSet<_> = [Provider::Okta].into_iter().collect();
        let f = resolve([Signal("GOOGLE_OTP")], None, &only_okta);
        assert_eq!(f.okta_authoritative, Some(false));
    }

    #[test]
    fn phones_keep_only_the_last_four_digits() {
        assert_eq!(last4("+1-555-415-1337").as_deref(), Some("1337"));
        assert_eq!(last4("+14125514455").as_deref(), Some("4455"));
        assert_eq!(last4("12").as_deref(), Some("12"));
        assert_eq!(last4("unknown"), None);
        let f = resolve(
            [Signal("SMS_FACTOR")],
            Some("+1 (555) 010-1234"),
            &defaults(),
        );
        assert_eq!(f.phone_last4.as_deref(), Some("1234"));
    }
}
