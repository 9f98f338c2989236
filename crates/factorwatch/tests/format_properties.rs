//! Every SIEM encoding, for any content in any field (arbitrary Unicode, control characters, each
//! format's delimiters and escape characters): never a panic, always one line, and output that a
//! strict parser of the format reads back to the same values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use factorwatch::formats::{self, Context, Format, cef, leef, syslog};
use factorwatch::record::*;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[|=\\\\^\"\\]\\[\n\r\t a-zé…\u{0}\u{7f}\u{feff}]{0,24}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn change() -> impl Strategy<Value = MfaChange> {
    (
        (
            text(),
            text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
        (
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
        (
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            0usize..9,
            proptest::option::of(0i64..4_000_000_000_000),
        ),
    )
        .prop_map(
            |(
                (id, event_type, outcome, login, actor_login, name),
                (ip, ua, city, country, reason, message),
                (display, actor_name, session, phone, action, ms),
            )| {
                let actions = [
                    Action::Enrolled,
                    Action::Reset,
                    Action::ResetAll,
                    Action::Updated,
                    Action::Suspended,
                    Action::Unsuspended,
                    Action::BypassAttempted,
                    Action::OrgFactorEnabled,
                    Action::OrgFactorDisabled,
                ];
                MfaChange {
                    id: EventId::Okta(id),
                    source: Source::SystemLog,
                    published: ms.and_then(chrono::DateTime::from_timestamp_millis),
                    event_type,
                    legacy_event_type: None,
                    action: actions[action],
                    outcome,
                    factor: Factor {
                        name,
                        phone_last4: phone,
                        ..Factor::default()
                    },
                    user: Some(Person {
                        id: None,
                        login,
                        display_name: display,
                    }),
                    actor: Some(Actor {
                        id: None,
                        login: actor_login,
                        display_name: actor_name,
                        actor_type: None,
                    }),
                    initiator: None,
                    client: Client {
                        ip,
                        user_agent: ua,
                        city,
                        country,
                        ..Client::default()
                    },
                    reason,
                    message,
                    session_id: session,
                }
            },
        )
}

/// What a value becomes on a wire that cannot carry control characters: spaces.
fn cleaned(s: &str, keep_newlines: bool) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && !(keep_newlines && (c == '\n' || c == '\r')) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn ctx(org: &str) -> Context {
    Context {
        org: org.into(),
        hostname: "relay 01\n".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn cef_reads_back_exactly(c in change(), org in text()) {
        let line = cef::encode(&c, &ctx(&org));
        prop_assert!(!line.contains(['\n', '\r']));
        let (header, ext) = cef::parse(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
        prop_assert_eq!(header.len(), 7);
        prop_assert_eq!(&header[4], &cleaned(&c.event_type, false));
        let get = |k: &str| ext.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        prop_assert_eq!(get("suser"), c.actor.as_ref().unwrap().login.as_deref().map(|v| cleaned(v, true)));
        prop_assert_eq!(get("duser"), c.user.as_ref().unwrap().login.as_deref().map(|v| cleaned(v, true)));
        prop_assert_eq!(get("msg"), c.message.as_deref().map(|v| cleaned(v, true)));
        prop_assert_eq!(get("externalId"), Some(cleaned(&c.id.to_wire(), true)));
    }

    #[test]
    fn leef_reads_back_with_delimiters_replaced(c in change(), org in text()) {
        let line = leef::encode(&c, &ctx(&org));
        let (header, attrs) = leef::parse(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
        prop_assert_eq!(header.len(), 4);
        let get = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let leefed = |s: &str| cleaned(s, false).replace('^', " ");
        prop_assert_eq!(get("usrName"), c.user.as_ref().unwrap().login.as_deref().map(leefed));
        prop_assert_eq!(get("oktaOrg"), Some(leefed(&org)));
        prop_assert_eq!(get("reason"), c.reason.as_deref().map(leefed));
    }

    #[test]
    fn syslog_messages_parse_strictly_with_any_payload(c in change(), org in text(), payload in text()) {
        let m = syslog::message(&c, &payload, &ctx(&org), &Default::default());
        let p = syslog::parse(&m).map_err(|e| TestCaseError::fail(format!("{e}: {m:?}")))?;
        prop_assert!(p.pri <= 191);
        prop_assert_eq!(p.msg, payload.replace(['\n', '\r'], " "));
        let get = |k: &str| p.params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        prop_assert_eq!(get("org"), Some(cleaned(&org, false)));
        prop_assert_eq!(get("actor"), c.actor.as_ref().unwrap().login.as_deref().map(|v| cleaned(v, false)));
        let framed = syslog::frame(&m);
        let (len, rest) = framed.split_once(' ').unwrap();
        prop_assert_eq!(len.parse::<usize>().unwrap(), rest.len());
    }

    #[test]
    fn json_formats_are_one_line_of_valid_json(c in change(), raw in text(), org in text()) {
        for f in [Format::Record, Format::parse("ocsf").unwrap(), Format::parse("ocsf-user-management").unwrap(), Format::Ecs, Format::Raw] {
            let line = f.encode(&c, &raw, &ctx(&org));
            prop_assert!(!line.contains('\n'));
            let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
            prop_assert!(v.is_object());
        }
        let ocsf = formats::ocsf::encode(&c, &ctx(&org), &Default::default());
        prop_assert_eq!(ocsf["type_uid"].as_u64().unwrap(), 300_100 + ocsf["activity_id"].as_u64().unwrap());
    }

    /// A format that says it does not read the Okta event is delivered without it (the outbox
    /// read leaves it out): its lines must be the same with and without it, and one that says
    /// it does must show it.
    #[test]
    fn a_format_that_does_not_read_the_okta_event_encodes_alike_without_it(c in change(), org in text()) {
        // A change without a time is stamped with the clock's: give it one, so that the two
        // encodings can be compared.
        let mut c = c;
        c.published = c.published.or(chrono::DateTime::from_timestamp_millis(1_700_000_000_000));
        let raw = r#"{"uuid":"only-in-the-okta-event","eventType":"user.mfa.factor.activate"}"#;
        for name in ["record", "ocsf", "ocsf-user-management", "ecs", "cef", "leef", "raw"] {
            let f = Format::parse(name).unwrap();
            let with = f.encode(&c, raw, &ctx(&org));
            let without = f.encode(&c, "", &ctx(&org));
            if f.reads_okta_event() {
                prop_assert!(with.contains("only-in-the-okta-event"), "{}: {}", name, with);
            } else {
                prop_assert_eq!(with, without, "{}", name);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// A change read back from the store, with its record's text as stored, is delivered in every
    /// format exactly as if it were encoded again (the `record` format sends the text as it is).
    #[test]
    fn a_stored_change_encodes_as_if_written_again(c in change(), raw in text(), org in text()) {
        let mut c = c;
        c.published = c.published.or(chrono::DateTime::from_timestamp_millis(1_700_000_000_000));
        let stored = serde_json::to_string(&c).unwrap();
        let item = Item::Change(c);
        for name in ["record", "ocsf", "ocsf-user-management", "ecs", "cef", "leef", "raw"] {
            let f = Format::parse(name).unwrap();
            prop_assert_eq!(
                f.encode_stored(&item, Some(&stored), &raw, &ctx(&org)),
                f.encode_item(&item, &raw, &ctx(&org)),
                "{}", name
            );
        }
    }
}

#[test]
fn the_record_format_sends_the_stored_text_only_when_it_is_one_line() {
    let c = MfaChange {
        id: EventId::Okta("e1".into()),
        source: Source::SystemLog,
        published: chrono::DateTime::from_timestamp_millis(1_700_000_000_000),
        event_type: "user.mfa.factor.activate".into(),
        legacy_event_type: None,
        action: Action::Enrolled,
        outcome: Some("SUCCESS".into()),
        factor: Factor::default(),
        user: None,
        actor: None,
        initiator: None,
        client: Client::default(),
        reason: None,
        message: None,
        session_id: None,
    };
    let item = Item::Change(c);
    let again = Format::Record.encode_item(&item, "", &ctx("acme"));
    // As stored, a field this version does not write included: sent as it is.
    let mut stored: serde_json::Value = serde_json::from_str(&again).unwrap();
    stored["stored_by_another_version"] = serde_json::json!(true);
    let stored = stored.to_string();
    assert_eq!(
        Format::Record.encode_stored(&item, Some(&stored), "", &ctx("acme")),
        stored
    );
    // Not one line (not factorwatch's own writing): written again, on one line.
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&again).unwrap())
            .unwrap();
    assert!(pretty.contains('\n'));
    for text in [pretty.clone(), pretty.replace('\n', "\r")] {
        assert_eq!(
            Format::Record.encode_stored(&item, Some(&text), "", &ctx("acme")),
            again
        );
    }
    // Nothing stored: written again.
    assert_eq!(
        Format::Record.encode_stored(&item, None, "", &ctx("acme")),
        again
    );
}

fn finding() -> impl Strategy<Value = factorwatch::detect::Finding> {
    (
        (
            opt_text(),
            opt_text(),
            text(),
            proptest::collection::vec(text(), 0..4),
        ),
        (0usize..9, 0usize..4, 0i64..4_000_000_000_000),
    )
        .prop_map(|((user, actor, summary, events), (rule, severity, ms))| {
            use factorwatch::detect::{Party, RuleId, Severity, finding::Draft};
            let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
            let party = |login: Option<String>| Party {
                id: Some("00u1".into()),
                login,
                display_name: None,
                kind: None,
            };
            Draft {
                rule: RuleId::ALL[rule],
                severity: [
                    Severity::Low,
                    Severity::Medium,
                    Severity::High,
                    Severity::Critical,
                ][severity],
                key: "k".into(),
                user: Some(party(user).into()),
                actor: Some(party(actor).into()),
                events: events.into_iter().map(|e| (t, e)).collect(),
                summary,
                details: Default::default(),
            }
            .finish()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn findings_read_back_in_every_alert_shape(f in finding(), org in text()) {
        let c = ctx(&org);
        let line = cef::encode_finding(&f, &c);
        let (header, ext) = cef::parse(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
        prop_assert_eq!(&header[4], &format!("finding:{}", f.rule.as_str()));
        prop_assert_eq!(header[6].parse::<u8>().unwrap(), formats::finding_severity(f.severity));
        let get = |k: &str| ext.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        prop_assert_eq!(get("msg"), Some(cleaned(&f.summary, true)));
        prop_assert_eq!(get("duser"), f.user.as_ref().unwrap().login.as_deref().map(|v| cleaned(v, true)));

        let line = leef::encode_finding(&f, &c);
        let (header, attrs) = leef::parse(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
        prop_assert_eq!(&header[3], &format!("finding:{}", f.rule.as_str()));
        let get = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        prop_assert_eq!(get("sev"), Some(formats::finding_severity(f.severity).to_string()));
        prop_assert_eq!(get("msg"), Some(cleaned(&f.summary, false).replace('^', " ")));

        let item = Item::Finding(f.clone());
        let m = syslog::item_message(&item, &f.summary, &c, &Default::default());
        let p = syslog::parse(&m).map_err(|e| TestCaseError::fail(format!("{e}: {m:?}")))?;
        prop_assert_eq!(u16::from(syslog::finding_severity(f.severity)), p.pri % 8);
        prop_assert_eq!(p.msgid, "finding");

        for format in [Format::Record, Format::parse("ocsf").unwrap(), Format::Ecs, Format::Raw] {
            let line = format.encode_item(&item, "", &c);
            prop_assert!(!line.contains('\n'));
            let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
            prop_assert!(v.is_object());
        }
        let ocsf = formats::ocsf::encode_finding(&f, &c, &Default::default());
        prop_assert_eq!(ocsf["class_uid"].as_u64(), Some(2004));
        prop_assert_eq!(ocsf["type_uid"].as_u64(), Some(200_401));
        prop_assert_eq!(ocsf["finding_info"]["analytic"]["uid"].as_str(), Some(f.rule.as_str()));
        prop_assert_eq!(ocsf["finding_info"]["related_events"].as_array().map(Vec::len), Some(f.event_ids.len()));
        let ecs = formats::ecs::encode_finding(&f, &c);
        prop_assert_eq!(ecs["event"]["kind"].as_str(), Some("alert"));
        prop_assert_eq!(ecs["rule"]["id"].as_str(), Some(f.rule.as_str()));
        let record = formats::finding_record(&f, &c);
        let back: factorwatch::detect::Finding = serde_json::from_value(record).unwrap();
        prop_assert_eq!(back, f);
    }
}
