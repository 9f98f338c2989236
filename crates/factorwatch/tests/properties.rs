//! Property tests: no input, however hostile, panics the reader or the classifier, and every
//! record it does produce keeps the contract.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use factorwatch::classify::Classifier;
use factorwatch::input;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON, biased towards the keys and strings Okta events use so that deep paths of the
/// classifier are reached, not only the "not an Okta event" exit.
fn arb_json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "eventType",
        "eventtype",
        "uuid",
        "published",
        "actor",
        "target",
        "client",
        "outcome",
        "reason",
        "result",
        "debugContext",
        "debugData",
        "factor",
        "phoneNumber",
        "type",
        "id",
        "alternateId",
        "displayName",
        "detailEntry",
        "factorType",
        "eventId",
        "action",
        "objectType",
        "actors",
        "targets",
        "message",
        "data",
        "events",
        "ipChain",
        "userAgent",
    ]);
    let strings = prop_oneof![
        Just("user.mfa.factor.activate".to_owned()),
        Just("user.mfa.factor.reset_all".to_owned()),
        Just("system.mfa.factor.deactivate".to_owned()),
        Just("com.okta.event_hook".to_owned()),
        Just("core.user.factor.activate".to_owned()),
        Just("User".to_owned()),
        Just("AuthenticatorEnrollment".to_owned()),
        Just("User set up SMS_FACTOR factor".to_owned()),
        Just("2026-11-02T09:14:07.215Z".to_owned()),
        any::<String>(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        strings.prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..8).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

/// Runs bytes through the reader and the classifier; returns every record serialized.
fn classify_bytes(bytes: &[u8]) -> Vec<Value> {
    let classifier = Classifier::default();
    let mut records = Vec::new();
    input::for_each_value(bytes, |_, value| {
        if let Ok(value) = value {
            classifier.classify_json(value, |_, verdict| {
                if let Ok(c) = verdict {
                    records.push(serde_json::to_value(&c.change).expect("records serialize"));
                }
            });
        }
    });
    records
}

fn assert_contract(record: &Value) {
    let last4 = &record["factor"]["phone_last4"];
    if let Some(s) = last4.as_str() {
        assert!(
            !s.is_empty() && s.len() <= 4 && s.chars().all(|c| c.is_ascii_digit()),
            "{s}"
        );
    } else {
        assert!(last4.is_null());
    }
    assert!(record["id"].as_str().is_some_and(|s| !s.is_empty()));
    if let Some(p) = record["published"].as_str() {
        assert!(p.ends_with('Z') && p.len() == 24, "{p}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for r in classify_bytes(&bytes) {
            assert_contract(&r);
        }
    }

    /// The pollers' quick scan for an event's type never disagrees with the full read: when it
    /// answers, it is the type `sniff` reads (or it is unsure and the full read decides).
    #[test]
    fn the_quick_event_type_scan_agrees_with_the_full_read(value in arb_json()) {
        for text in [serde_json::to_string(&value).expect("serialize"), serde_json::to_string_pretty(&value).expect("serialize")] {
            let quick = factorwatch::okta::event_type_of(&text);
            match factorwatch::okta::sniff(&text) {
                Ok(factorwatch::okta::Shape::SystemLog { event_type }) => {
                    if let Some(t) = quick {
                        prop_assert_eq!(t, &*event_type);
                    }
                }
                Ok(factorwatch::okta::Shape::EventHook { .. }) => {
                    if let Some(t) = quick {
                        prop_assert_eq!(t, "com.okta.event_hook");
                    }
                }
                // An object with a string `eventType` is never read as a legacy event.
                Ok(factorwatch::okta::Shape::EventsApi { .. }) => prop_assert!(quick.is_none()),
                Err(_) => {}
            }
        }
    }

    /// The pollers' one-pass split of a page finds the elements serde finds, with the type the
    /// quick scan reads, and refuses every page cut short.
    #[test]
    fn the_page_split_finds_what_serde_finds_and_refuses_a_cut_page(
        values in prop::collection::vec(arb_json(), 0..6),
        cut in 0.0f64..1.0,
    ) {
        let page = serde_json::Value::Array(values);
        for text in [serde_json::to_string(&page).expect("serialize"), serde_json::to_string_pretty(&page).expect("serialize")] {
            let split = factorwatch::okta::split_page(&text).expect("a whole page splits");
            let raw: Vec<&serde_json::value::RawValue> = serde_json::from_str(&text).expect("valid");
            prop_assert_eq!(split.len(), raw.len());
            for (e, r) in split.iter().zip(&raw) {
                prop_assert_eq!(e.text, r.get());
                prop_assert_eq!(e.event_type, factorwatch::okta::event_type_of(r.get()));
            }
            let short = &text[..text.floor_char_boundary(((text.len() as f64) * cut) as usize)];
            if short.trim_end().len() < text.trim_end().len() {
                prop_assert!(factorwatch::okta::split_page(short).is_err(), "{short:?}");
            }
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        let text = serde_json::to_string(&value).expect("serialize");
        for r in classify_bytes(text.as_bytes()) {
            assert_contract(&r);
        }
        let pretty = serde_json::to_string_pretty(&value).expect("serialize");
        for r in classify_bytes(pretty.as_bytes()) {
            assert_contract(&r);
        }
    }

    /// A real MFA event with any one field replaced by anything: still no panic, and as long as the
    /// event type survives, the change is still reported (degraded side fields never lose it).
    #[test]
    fn damaged_mfa_events_are_still_reported(
        field in prop::sample::select(vec![
            "actor", "target", "client", "outcome", "debugContext", "authenticationContext",
            "request", "displayMessage", "legacyEventType", "uuid",
        ]),
        replacement in arb_json(),
    ) {
        let mut event = json!({
            "uuid": "e766d84e-a0a8-11ed-a750-9f5fc296ce63",
            "published": "2023-01-30T14:18:01.558Z",
            "eventType": "user.mfa.factor.activate",
            "actor": {"id": "00u1", "type": "User", "alternateId": "a@example.com"},
            "target": [{"id": "00u1", "type": "User", "alternateId": "a@example.com"}],
            "client": {"ipAddress": "1.1.1.1", "userAgent": {"browser": "CHROME"}},
            "outcome": {"result": "SUCCESS", "reason": "User set up EMAIL_FACTOR factor"},
            "debugContext": {"debugData": {"phoneNumber": "+1 555 0100"}},
            "authenticationContext": {"externalSessionId": "s1"},
            "request": {"ipChain": []},
            "displayMessage": "Activate factor for user",
            "legacyEventType": "core.user.factor.activate"
        });
        event[field] = replacement;
        let text = serde_json::to_string(&event).expect("serialize");
        let records = classify_bytes(text.as_bytes());
        prop_assert_eq!(records.len(), 1);
        assert_contract(&records[0]);
        prop_assert_eq!(&records[0]["action"], "enrolled");
    }
}
