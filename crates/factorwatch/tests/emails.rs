//! The notices' words and safety: the wording matrix (action × factor × initiator), masking,
//! languages, operator templates, and injection attempts through every field Okta lets a person
//! or an attacker set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use factorwatch::email::templates::{Rendered, Templates};
use factorwatch::email::{message, message_id, notice, recipients, suppressed};
use factorwatch::enrich::{Enrichment, FactorDetail};
use factorwatch::record::MfaChange;
use serde_json::{Value, json};

fn change(
    action: &str,
    factor_type: Option<&str>,
    provider: Option<&str>,
    name: Option<&str>,
    initiator: &str,
    actor: &str,
) -> MfaChange {
    serde_json::from_value(json!({
        "id": "e1", "source": "system_log", "published": "2026-11-25T09:30:00.000Z",
        "event_type": "user.mfa.factor.activate", "legacy_event_type": null, "action": action, "outcome": "SUCCESS",
        "factor": { "type": factor_type, "provider": provider, "name": name, "okta_authoritative": true, "phone_last4": null },
        "user": { "id": "00u1", "login": "dade.murphy@example.com", "display_name": "Dade Murphy" },
        "actor": { "id": "00u9", "login": "actor@example.com", "display_name": actor, "type": "User" },
        // "unknown": no initiator factorwatch could name.
        "initiator": if initiator == "unknown" { Value::Null } else { json!(initiator) },
        "client": { "ip": "198.51.100.7", "user_agent": "Mozilla/5.0", "browser": "CHROME", "os": "Mac OS X", "city": "Paris", "state": null, "country": "France" },
        "reason": null, "message": null, "session_id": null
    }))
    .unwrap()
}

fn render(c: &MfaChange, e: &Enrichment, language: &str) -> Rendered {
    let n = notice::notice(
        &[(c.clone(), e.clone())],
        &["dade@example.com".into()],
        "Acme",
        "call the help desk at x1234.",
        &[],
    );
    Templates::new(None, "en").render(language, &n).unwrap()
}

fn sms(last4: &str) -> Enrichment {
    Enrichment {
        first_name: Some("Dade".into()),
        factor: Some(FactorDetail {
            factor_type: Some("sms".into()),
            phone_last4: Some(last4.into()),
            ..FactorDetail::default()
        }),
        ..Enrichment::default()
    }
}

fn push(device: &str, platform: &str) -> Enrichment {
    Enrichment {
        factor: Some(FactorDetail {
            factor_type: Some("push".into()),
            device_name: Some(device.into()),
            platform: Some(platform.into()),
            ..FactorDetail::default()
        }),
        ..Enrichment::default()
    }
}

#[test]
fn the_wording_says_exactly_what_happened_and_who_did_it() {
    let none = Enrichment::default();
    let cases: Vec<(MfaChange, Enrichment, &str)> = vec![
        (
            change(
                "enrolled",
                Some("sms"),
                Some("OKTA"),
                Some("SMS"),
                "self",
                "Dade Murphy",
            ),
            sms("1234"),
            "You just registered a phone number ending 1234 for SMS verification.",
        ),
        (
            change(
                "enrolled",
                Some("push"),
                Some("OKTA"),
                Some("Okta Verify"),
                "self",
                "Dade Murphy",
            ),
            push("Gibson", "IOS"),
            "You just enabled Okta Verify push notifications on iPhone “Gibson”.",
        ),
        (
            change(
                "enrolled",
                Some("token:software:totp"),
                Some("GOOGLE"),
                Some("Google Authenticator"),
                "self",
                "Dade Murphy",
            ),
            none.clone(),
            "You just set up Google Authenticator.",
        ),
        (
            change("reset_all", None, None, None, "self", "Dade Murphy"),
            none.clone(),
            "You just reset your MFA settings through self service.",
        ),
        (
            change("reset_all", None, None, None, "admin", "Jane Admin"),
            none.clone(),
            "An administrator (“Jane Admin”) reset all your MFA factors.",
        ),
        (
            change(
                "reset",
                Some("push"),
                Some("OKTA"),
                Some("Okta Verify"),
                "system",
                "Okta Support",
            ),
            none.clone(),
            "Okta Support reset your Okta Verify factor.",
        ),
        (
            change(
                "reset",
                Some("webauthn"),
                Some("FIDO"),
                Some("Security Key or Biometric"),
                "app",
                "acme-provisioner",
            ),
            none.clone(),
            "An application (“acme-provisioner”) removed your security key or biometric authenticator.",
        ),
        (
            change(
                "reset",
                Some("sms"),
                Some("OKTA"),
                Some("SMS"),
                "self",
                "Dade Murphy",
            ),
            sms("9876"),
            "You just removed a phone number ending 9876 for SMS verification from your account.",
        ),
        (
            change(
                "enrolled",
                Some("call"),
                Some("OKTA"),
                Some("Voice Call"),
                "admin",
                "Jane Admin",
            ),
            Enrichment {
                factor: Some(FactorDetail {
                    phone_last4: Some("5555".into()),
                    ..FactorDetail::default()
                }),
                ..Enrichment::default()
            },
            "An administrator (“Jane Admin”) set up a phone number ending 5555 for voice call verification on your account.",
        ),
        (
            change(
                "updated",
                Some("question"),
                Some("OKTA"),
                Some("Security Question"),
                "self",
                "Dade Murphy",
            ),
            none.clone(),
            "You just changed a security question.",
        ),
        (
            change(
                "suspended",
                Some("signed_nonce"),
                Some("OKTA"),
                Some("Okta FastPass"),
                "system",
                "Okta System",
            ),
            none.clone(),
            "Okta System suspended Okta FastPass on your account.",
        ),
        (
            change(
                "unsuspended",
                Some("push"),
                Some("OKTA"),
                Some("Okta Verify"),
                "admin",
                "Jane Admin",
            ),
            none.clone(),
            "An administrator (“Jane Admin”) reinstated Okta Verify push notifications on your account.",
        ),
        (
            change(
                "enrolled",
                Some("sms"),
                Some("OKTA"),
                Some("SMS"),
                "unknown",
                "Policy Rule 7",
            ),
            sms("4411"),
            "Someone set up a phone number ending 4411 for SMS verification on your account.",
        ),
        (
            change(
                "reset",
                Some("u2f"),
                Some("FIDO"),
                Some("U2F Security Key"),
                "admin",
                "Jane Admin",
            ),
            none.clone(),
            "An administrator (“Jane Admin”) reset your security key factor.",
        ),
        (
            change("bypass_attempted", None, None, None, "self", "Dade Murphy"),
            none.clone(),
            "Someone tried to get around multi-factor authentication on your account.",
        ),
    ];
    for (c, e, sentence) in cases {
        let r = render(&c, &e, "en");
        assert!(
            r.text.contains(sentence),
            "{sentence}\n--- got ---\n{}",
            r.text
        );
        let html = r.html.replace("&#x27;", "'");
        assert!(html.contains(sentence), "HTML: {sentence}\n{}", r.html);
        assert!(r.text.contains("When: 2026-11-25 09:30 UTC"));
        assert!(r.text.contains("From: 198.51.100.7 (Paris, France)"));
        assert!(r.text.contains("Using: CHROME on Mac OS X"));
        assert!(r.text.contains("call the help desk at x1234."));
        assert!(!r.subject.is_empty() && !r.subject.contains('\n'));
    }
}

#[test]
fn phones_and_addresses_are_masked() {
    let mut e = sms("1234");
    e.factor.as_mut().unwrap().phone_last4 = Some("+1 555 0101 1234".into());
    let r = render(
        &change(
            "enrolled",
            Some("sms"),
            Some("OKTA"),
            Some("SMS"),
            "self",
            "x",
        ),
        &e,
        "en",
    );
    assert!(!r.text.contains("0101"), "never more than four digits");
    assert!(r.text.contains("d***@example.com") && !r.text.contains("dade@example.com"));
}

#[test]
fn the_user_s_locale_picks_the_language() {
    let t = Templates::new(None, "en");
    assert_eq!(t.language(Some("fr_FR")), "fr");
    assert_eq!(t.language(Some("fr-CA")), "fr");
    assert_eq!(t.language(Some("de_DE")), "en");
    assert_eq!(t.language(None), "en");
    let r = render(
        &change("reset_all", None, None, None, "admin", "Jane Admin"),
        &Enrichment::default(),
        "fr",
    );
    assert!(
        r.text
            .contains("Un administrateur (« Jane Admin ») a réinitialisé tous vos facteurs MFA."),
        "{}",
        r.text
    );
    assert!(r.html.contains("lang=\"fr\""));
    assert!(r.subject.starts_with("Une méthode de connexion"));
}

#[test]
fn injection_through_any_field_changes_neither_headers_nor_markup() {
    let mut c = change(
        "reset_all",
        None,
        None,
        None,
        "admin",
        "<script>alert(1)</script>\r\nBcc: victim@example.com",
    );
    c.client.city = Some("<img src=x onerror=alert(1)>".into());
    c.client.browser = Some("\"><a href=https://evil.example>click</a>".into());
    let e = Enrichment {
        first_name: Some("Eve\r\nX-Evil: 1".into()),
        ..Enrichment::default()
    };
    let r = render(&c, &e, "en");
    assert!(
        !r.html.contains("<script>") && !r.html.contains("<img") && !r.html.contains("<a href"),
        "{}",
        r.html
    );
    assert!(r.html.contains("&lt;script&gt;"));
    assert!(
        !r.text
            .lines()
            .any(|l| l.starts_with("Bcc:") || l.starts_with("X-Evil:")),
        "{}",
        r.text
    );
    let m = message(
        &"Security <security@example.com>".parse().unwrap(),
        "dade@example.com",
        &r,
        message_id("acme", "e1", "dade@example.com"),
    )
    .unwrap();
    let raw = String::from_utf8(m.formatted()).unwrap();
    let headers = raw.split("\r\n\r\n").next().unwrap();
    assert!(
        !headers.contains("Bcc") && !headers.contains("X-Evil"),
        "{headers}"
    );
    assert!(headers.contains("Auto-Submitted: auto-generated"));
    assert!(headers.contains("multipart/alternative"));
    assert!(
        !r.html.contains("<img"),
        "no tracking pixel or image at all"
    );
}

#[test]
fn operators_override_templates_and_mistakes_are_errors_not_blanks() {
    let dir = std::env::temp_dir().join(format!("fw-templates-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("en")).unwrap();
    std::fs::write(
        dir.join("en/enrolled.txt.j2"),
        "{% extends \"layout.txt.j2\" %}{% block advice %}Questions? Ask Ops.{% endblock %}",
    )
    .unwrap();
    let c = change(
        "enrolled",
        Some("sms"),
        Some("OKTA"),
        Some("SMS"),
        "self",
        "x",
    );
    let n = notice::notice(
        &[(c.clone(), sms("1234"))],
        &["d@example.com".into()],
        "Acme",
        "h",
        &[],
    );
    let r = Templates::new(Some(dir.clone()), "en")
        .render("en", &n)
        .unwrap();
    assert!(r.text.contains("Questions? Ask Ops."));
    assert!(
        r.html.contains("If this was you, there is nothing to do."),
        "the HTML part is still the built-in one"
    );
    std::fs::write(dir.join("en/enrolled.txt.j2"), "{{ no_such_variable }}").unwrap();
    let e = Templates::new(Some(dir.clone()), "en")
        .render("en", &n)
        .unwrap_err();
    assert!(e.to_string().contains("en/enrolled.txt.j2"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn recipients_message_ids_and_suppression() {
    let e = Enrichment {
        email: Some("a@x.example".into()),
        second_email: Some("A@x.example".into()),
        ..Enrichment::default()
    };
    assert_eq!(
        recipients(&e, true),
        ["a@x.example"],
        "the same address once"
    );
    let e = Enrichment {
        email: Some("a@x.example".into()),
        second_email: Some("b@y.example".into()),
        ..Enrichment::default()
    };
    assert_eq!(recipients(&e, false), ["a@x.example"]);
    assert_eq!(recipients(&e, true), ["a@x.example", "b@y.example"]);
    assert_eq!(
        message_id("o", "e", "A@x.example"),
        message_id("o", "e", "a@x.example")
    );
    assert_ne!(
        message_id("o", "e", "a@x.example"),
        message_id("o", "e2", "a@x.example")
    );
    let patterns = vec!["svc-*@example.com".to_owned(), "*robot*".to_owned()];
    assert!(suppressed("SVC-backup@example.com", &patterns).is_some());
    assert!(suppressed("the.robot@example.com", &patterns).is_some());
    assert!(suppressed("dade@example.com", &patterns).is_none());
}

#[test]
fn several_changes_are_listed_in_one_notice() {
    let a = change("reset_all", None, None, None, "self", "x");
    let b = change(
        "enrolled",
        Some("sms"),
        Some("OKTA"),
        Some("SMS"),
        "self",
        "x",
    );
    let n = notice::notice(
        &[(a, Enrichment::default()), (b, sms("4321"))],
        &["d@example.com".into()],
        "Acme",
        "h",
        &[],
    );
    let r = Templates::new(None, "en").render("en", &n).unwrap();
    assert_eq!(r.subject, "Several changes to your sign-in methods");
    assert!(
        r.text
            .contains("You just reset your MFA settings through self service.")
    );
    assert!(
        r.text
            .contains("You just registered a phone number ending 4321 for SMS verification.")
    );
    let _: Value = json!(null);
}

/// What an attacker can type where Okta lets a person name something: links in every disguise,
/// addresses, phone numbers, hidden and reordering characters, markup.
const HOSTILE: &[&str] = &[
    "IT: not you? Call +1 555 0100 or visit okta-verify-help.example.com/undo",
    "https://evil.example/reset",
    "HTTPS://EVIL.EXAMPLE",
    "hxxps://already.example",
    "www.evil-support.example",
    "evil.example",
    "ｅｖｉｌ．ｅｘａｍｐｌｅ",
    "evil。example",
    "evi\u{200B}l.exa\u{200D}mple",
    "moc.elpmaxe.live\u{202E}",
    "\u{2066}support.example\u{2069}",
    "xn--80ak6aa92e.com",
    "пример.рф",
    "help@evil.example",
    "mailto:help@evil.example",
    "tel:+15550100",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "Call 555-0199 now",
    "(555) 013-4567",
    "+44 20 7946 0958",
    "+1.555.010.0123",
    "call 1 800 555 0100",
    "10.0.0.1",
    "192.168.1.1/admin",
    "<a href=\"https://evil.example\">iPhone</a>",
    "[Gibson](https://evil.example)",
    "Gibson\r\nBcc: victim@example.com",
    "\u{1F4F1} phone",
    "Z\u{0301}\u{0301}\u{0301}\u{0301}\u{0301}algo",
];

/// The digits of the phone numbers in [`HOSTILE`]: none may reach a reader in one piece.
const HOSTILE_NUMBERS: &[&str] = &[
    "15550100",
    "5550100",
    "5550199",
    "5550134567",
    "442079460958",
    "15550100123",
    "18005550100",
];

fn format_characters(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| {
            matches!(*c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}')
        })
        .collect()
}

/// Every link or address a mail client's linkifier would find in `text`.
fn links(text: &str) -> Vec<String> {
    let mut finder = linkify::LinkFinder::new();
    finder.url_must_have_scheme(false);
    finder.links(text).map(|l| l.as_str().to_owned()).collect()
}

#[test]
fn attacker_written_names_never_read_as_a_link_a_number_or_hidden_text() {
    for hostile in HOSTILE {
        let mut c = change(
            "enrolled",
            Some("push"),
            Some("OKTA"),
            Some("Okta Verify"),
            "admin",
            hostile,
        );
        c.client.city = Some((*hostile).to_owned());
        c.client.browser = Some((*hostile).to_owned());
        c.client.os = Some((*hostile).to_owned());
        c.client.ip = Some((*hostile).to_owned());
        let mut e = push(hostile, "IOS");
        e.first_name = Some((*hostile).to_owned());
        let r = render(&c, &e, "en");
        let soc = notice::security_summary(&c, "Acme");
        for (part, text) in [
            ("text", &r.text),
            ("html", &r.html),
            ("subject", &r.subject),
            ("soc", &soc),
        ] {
            assert!(
                format_characters(text).is_empty(),
                "{part} of {hostile:?}: hidden characters"
            );
            // The client's address is Okta's reading of the connection, shown when it is an IP.
            let ip_line = c
                .client
                .ip
                .as_deref()
                .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
            let found: Vec<String> = links(text)
                .into_iter()
                .filter(|l| Some(l.as_str()) != ip_line)
                // What the operator wrote (the help text) and the masked recipient are theirs.
                .filter(|l| !l.ends_with("example.com") || l.contains("evil"))
                .collect();
            assert!(
                found.is_empty(),
                "{part} of {hostile:?}: links {found:?}\n{text}"
            );
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            for n in HOSTILE_NUMBERS {
                assert!(
                    !digits.contains(n),
                    "{part} of {hostile:?}: the number {n} survived\n{text}"
                );
            }
        }
        assert!(
            !r.html.contains("<a href") && !r.html.contains("<script"),
            "markup from {hostile:?} stays text"
        );
        // The name is shown, quoted, as data.
        assert!(r.text.contains("on iPhone “"), "{}", r.text);
        // The IP line shows only an IP.
        assert!(!r.text.contains("From: evil"), "{}", r.text);
    }
}

#[test]
fn the_reported_device_name_reads_as_a_bounded_quoted_name() {
    let hostile = "IT: not you? Call +1 555 0100 or visit okta-verify-help.example.com/undo";
    let c = change(
        "enrolled",
        Some("push"),
        Some("OKTA"),
        Some("Okta Verify"),
        "self",
        "Dade",
    );
    let r = render(&c, &push(hostile, "IOS"), "en");
    assert!(
        r.text.contains(
            "You just enabled Okta Verify push notifications on iPhone “IT: not you? Call [number removed] or visit okta-ver…”."
        ),
        "{}",
        r.text
    );
}
