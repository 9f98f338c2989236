//! Okta's factor vocabulary, and the one table that maps every name Okta uses for a factor to it.
//!
//! Okta names one factor in several vocabularies, depending on the API, the engine (Classic or
//! Identity Engine) and the event:
//! - internal names in `outcome.reason` and `target[].detailEntry.factorType`
//!   (`SMS_FACTOR`, `OKTA_VERIFY_PUSH`, `OKTA_SOFT_TOKEN`, `FIDO_WEBAUTHN`, `PASSWORD_AS_FACTOR`…);
//! - the Factors API's `factorType` values in `debugData.factor`/`factorType` (`sms`, `push`,
//!   `token:software:totp`, `fido_webauthn`…, per Okta's support KB on locating factor information);
//! - policy and authenticator keys (`okta_sms`, `google_otp`, `phone_number`, `okta_verify`…,
//!   from Okta's Policy API and the Sign-In Widget);
//! - what people see: authenticator display names on `AuthenticatorEnrollment` targets ("Okta
//!   Verify", "Phone") and the legacy Events API's messages ("User set up Google Authenticator
//!   factor").
//!
//! Every entry is written down from those sources; a name not in the table is reported raw, never
//! guessed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Okta's `factorType` vocabulary (Factors API), plus `password` for the password authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FactorType {
    #[serde(rename = "sms")]
    Sms,
    #[serde(rename = "call")]
    Call,
    #[serde(rename = "email")]
    Email,
    #[serde(rename = "push")]
    Push,
    #[serde(rename = "question")]
    Question,
    #[serde(rename = "token:software:totp")]
    SoftwareTotp,
    #[serde(rename = "token:hardware")]
    HardwareToken,
    #[serde(rename = "token:hotp")]
    Hotp,
    #[serde(rename = "token")]
    Token,
    #[serde(rename = "webauthn")]
    Webauthn,
    #[serde(rename = "u2f")]
    U2f,
    #[serde(rename = "signed_nonce")]
    SignedNonce,
    #[serde(rename = "web")]
    Web,
    #[serde(rename = "password")]
    Password,
}

impl FactorType {
    pub fn as_str(self) -> &'static str {
        match self {
            FactorType::Sms => "sms",
            FactorType::Call => "call",
            FactorType::Email => "email",
            FactorType::Push => "push",
            FactorType::Question => "question",
            FactorType::SoftwareTotp => "token:software:totp",
            FactorType::HardwareToken => "token:hardware",
            FactorType::Hotp => "token:hotp",
            FactorType::Token => "token",
            FactorType::Webauthn => "webauthn",
            FactorType::U2f => "u2f",
            FactorType::SignedNonce => "signed_nonce",
            FactorType::Web => "web",
            FactorType::Password => "password",
        }
    }
}

/// Okta's factor `provider` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Provider {
    Okta,
    Google,
    Fido,
    Rsa,
    Symantec,
    Yubico,
    Duo,
    Custom,
}

impl Provider {
    pub const ALL: [Provider; 8] = [
        Provider::Okta,
        Provider::Google,
        Provider::Fido,
        Provider::Rsa,
        Provider::Symantec,
        Provider::Yubico,
        Provider::Duo,
        Provider::Custom,
    ];

    /// Providers whose enrollments Okta owns, unless configured otherwise.
    pub const DEFAULT_OKTA_AUTHORITATIVE: [Provider; 4] = [
        Provider::Okta,
        Provider::Google,
        Provider::Fido,
        Provider::Yubico,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Okta => "OKTA",
            Provider::Google => "GOOGLE",
            Provider::Fido => "FIDO",
            Provider::Rsa => "RSA",
            Provider::Symantec => "SYMANTEC",
            Provider::Yubico => "YUBICO",
            Provider::Duo => "DUO",
            Provider::Custom => "CUSTOM",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown factor provider {0:?}; expected one of OKTA, GOOGLE, FIDO, RSA, SYMANTEC, YUBICO, DUO, CUSTOM"
)]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownProvider(s.to_owned()))
    }
}

/// What a known factor name tells: its type and provider where the name alone settles them (the
/// "Okta Verify" authenticator, say, covers push, TOTP and FastPass), and what a person calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownFactor {
    pub factor_type: Option<FactorType>,
    pub provider: Option<Provider>,
    pub name: &'static str,
}

use FactorType as T;
use Provider as P;

/// Names (normalized, see [`normalize`]) → type, provider, what a person calls it.
type NameEntry = (
    &'static [&'static str],
    Option<FactorType>,
    Option<Provider>,
    &'static str,
);

/// Every name Okta uses for a factor.
const NAMES: &[NameEntry] = &[
    // SMS, voice, email and security question: only OKTA offers them (Factors API).
    (
        &["SMS_FACTOR", "SMS", "OKTA_SMS", "SMS_AUTHENTICATION"],
        Some(T::Sms),
        Some(P::Okta),
        "SMS",
    ),
    (
        &[
            "CALL_FACTOR",
            "CALL",
            "OKTA_CALL",
            "VOICE_CALL",
            "VOICE_CALL_AUTHENTICATION",
        ],
        Some(T::Call),
        Some(P::Okta),
        "Voice Call",
    ),
    (
        &[
            "EMAIL_FACTOR",
            "EMAIL",
            "OKTA_EMAIL",
            "EMAIL_AUTHENTICATION",
        ],
        Some(T::Email),
        Some(P::Okta),
        "Email",
    ),
    (
        &["SECURITY_QUESTION", "QUESTION", "OKTA_QUESTION"],
        Some(T::Question),
        Some(P::Okta),
        "Security Question",
    ),
    (
        &["PASSWORD_AS_FACTOR", "PASSWORD", "OKTA_PASSWORD"],
        Some(T::Password),
        Some(P::Okta),
        "Password",
    ),
    // Okta Verify: push, its TOTP ("soft token") and FastPass (signed nonce).
    (
        &[
            "OKTA_VERIFY_PUSH",
            "PUSH",
            "OKTA_PUSH",
            "OKTA_VERIFY_WITH_PUSH",
        ],
        Some(T::Push),
        Some(P::Okta),
        "Okta Verify",
    ),
    (
        &["OKTA_SOFT_TOKEN", "OKTA_OTP"],
        Some(T::SoftwareTotp),
        Some(P::Okta),
        "Okta Verify",
    ),
    (
        &["SIGNED_NONCE", "OKTA_FASTPASS", "FASTPASS"],
        Some(T::SignedNonce),
        Some(P::Okta),
        "Okta FastPass",
    ),
    (&["OKTA_VERIFY"], None, Some(P::Okta), "Okta Verify"),
    // The Identity Engine phone authenticator covers both SMS and voice.
    (&["PHONE", "PHONE_NUMBER"], None, Some(P::Okta), "Phone"),
    (
        &["GOOGLE_OTP", "GOOGLE_AUTH", "GOOGLE_AUTHENTICATOR"],
        Some(T::SoftwareTotp),
        Some(P::Google),
        "Google Authenticator",
    ),
    (
        &["TOKEN:SOFTWARE:TOTP"],
        Some(T::SoftwareTotp),
        None,
        "Authenticator app (TOTP)",
    ),
    (
        &[
            "FIDO_WEBAUTHN",
            "WEBAUTHN",
            "SECURITY_KEY_OR_BIOMETRIC",
            "SECURITY_KEY_OR_BIOMETRIC_AUTHENTICATOR",
            "FIDO2_WEBAUTHN",
        ],
        Some(T::Webauthn),
        Some(P::Fido),
        "Security Key or Biometric",
    ),
    (
        &["FIDO_U2F", "U2F"],
        Some(T::U2f),
        Some(P::Fido),
        "U2F Security Key",
    ),
    (
        &[
            "YUBIKEY_TOKEN",
            "YUBIKEY",
            "YUBIKEY_OTP",
            "YUBIKEY_AUTHENTICATOR",
            "TOKEN:HARDWARE",
        ],
        Some(T::HardwareToken),
        Some(P::Yubico),
        "YubiKey",
    ),
    (
        &["RSA_SECURID", "RSA_TOKEN", "RSA"],
        Some(T::Token),
        Some(P::Rsa),
        "RSA SecurID",
    ),
    (
        &["SYMANTEC_VIP", "SYMANTEC"],
        Some(T::Token),
        Some(P::Symantec),
        "Symantec VIP",
    ),
    (&["TOKEN"], Some(T::Token), None, "Hardware token"),
    (
        &["DUO", "DUO_SECURITY", "WEB"],
        Some(T::Web),
        Some(P::Duo),
        "Duo Security",
    ),
    (
        &["HOTP", "CUSTOM_HOTP", "TOKEN:HOTP"],
        Some(T::Hotp),
        Some(P::Custom),
        "Custom HOTP",
    ),
];

/// Maps any of Okta's names for a factor (any case; spaces, hyphens and underscores alike) to
/// what it means, or `None` when the name is not one Okta is known to use.
pub fn lookup(name: &str) -> Option<KnownFactor> {
    let key = normalize(name);
    NAMES
        .iter()
        .find(|(keys, ..)| keys.contains(&key.as_str()))
        .map(|&(_, factor_type, provider, name)| KnownFactor {
            factor_type,
            provider,
            name,
        })
}

/// What a person calls the factor of this type from this provider, where the pair is one Okta
/// offers (the table holds each such pair once).
pub fn canonical_name(factor_type: FactorType, provider: Provider) -> Option<&'static str> {
    NAMES
        .iter()
        .find(|(_, t, p, _)| *t == Some(factor_type) && *p == Some(provider))
        .map(|&(.., name)| name)
}

/// Upper-case, with runs of spaces, hyphens, underscores and parentheses folded into one `_`, so
/// that `Security Key or Biometric`, `fido_webauthn` and `FIDO2 (WebAuthn)` meet the table's keys.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.trim().chars() {
        if matches!(c, ' ' | '-' | '_' | '(' | ')' | '\t') {
            gap = true;
        } else {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.extend(c.to_uppercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_and_normalized() {
        let mut seen = std::collections::HashSet::new();
        for (keys, ..) in NAMES {
            for key in *keys {
                assert_eq!(normalize(key), *key, "{key} is not in normalized form");
                assert!(seen.insert(*key), "{key} appears twice");
            }
        }
    }

    /// The Factors API pairs each provider with a fixed set of factor types (plus FastPass and the
    /// password authenticator under OKTA); the table must not invent a pair Okta does not offer,
    /// and must hold each pair once so that its name is unambiguous.
    #[test]
    fn every_complete_entry_is_a_pair_okta_offers_once() {
        let offered = |t: FactorType, p: Provider| match p {
            P::Okta => matches!(
                t,
                T::Call
                    | T::Email
                    | T::Push
                    | T::Question
                    | T::Sms
                    | T::SoftwareTotp
                    | T::SignedNonce
                    | T::Password
            ),
            P::Google => t == T::SoftwareTotp,
            P::Rsa | P::Symantec => t == T::Token,
            P::Yubico => t == T::HardwareToken,
            P::Fido => matches!(t, T::Webauthn | T::U2f),
            P::Duo => t == T::Web,
            P::Custom => t == T::Hotp,
        };
        let mut pairs = std::collections::HashSet::new();
        for (keys, factor_type, provider, _) in NAMES {
            if let (Some(t), Some(p)) = (*factor_type, *provider) {
                assert!(offered(t, p), "{keys:?}: {t:?} from {p:?}");
                assert!(pairs.insert((t, p)), "{keys:?}: {t:?} from {p:?} twice");
            }
        }
        assert_eq!(canonical_name(T::Push, P::Okta), Some("Okta Verify"));
        assert_eq!(canonical_name(T::Sms, P::Google), None);
    }

    #[test]
    fn lookup_is_forgiving_about_spelling_but_not_about_meaning() {
        let v = lookup("Security Key or Biometric").map(|k| k.factor_type);
        assert_eq!(v, Some(Some(T::Webauthn)));
        assert_eq!(
            lookup("fido_webauthn").map(|k| k.provider),
            Some(Some(P::Fido))
        );
        assert_eq!(
            lookup("FIDO2 (WebAuthn)").map(|k| k.factor_type),
            Some(Some(T::Webauthn))
        );
        assert_eq!(lookup("okta verify").map(|k| k.factor_type), Some(None));
        assert_eq!(
            lookup("token:software:totp").map(|k| k.provider),
            Some(None)
        );
        assert_eq!(lookup("NOT_A_FACTOR"), None);
        assert_eq!(lookup(""), None);
    }

    #[test]
    fn providers_parse_case_insensitively() {
        assert_eq!("google".parse::<Provider>(), Ok(Provider::Google));
        assert!("MICROSOFT".parse::<Provider>().is_err());
    }
}
