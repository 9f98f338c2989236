//! Conformance: every public Okta sample (`shared/okta/samples/`) and every documented shape in
//! `examples/` classifies exactly as `tests/conformance/expectations.json` says, which was written
//! by hand from the events themselves.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use factorwatch::classify::{Classifier, Within};
use factorwatch::input;
use serde_json::Value;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The public Okta samples: where `FACTORWATCH_SAMPLES` says (CI points it at the shared folder,
/// so that a newly added sample fails here until it has expectations), else the copy in
/// `tests/samples/`.
fn samples_dir() -> PathBuf {
    std::env::var_os("FACTORWATCH_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("tests/samples"))
}

fn expectations() -> Value {
    let path = manifest_dir().join("tests/conformance/expectations.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Outcome {
    values: usize,
    records: BTreeMap<String, Value>,
    errors: Vec<String>,
}

/// Classifies a file the way `factorwatch classify` does, keyed by the positions it reports.
fn classify_file(path: &Path, wrapped_in: Option<&str>) -> Outcome {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Some(key) = wrapped_in {
        // Rule-test fixtures wrap each event as {"source":…, "<key>": event}.
        let wrapped: Vec<Value> = serde_json::from_slice(&bytes).expect("fixture file is an array");
        let events: Vec<&Value> = wrapped.iter().map(|w| &w[key]).collect();
        bytes = serde_json::to_vec_pretty(&events).expect("re-serialize");
    }
    let classifier = Classifier::default();
    let mut out = Outcome {
        values: 0,
        records: BTreeMap::new(),
        errors: Vec::new(),
    };
    input::for_each_value(&bytes, |pos, value| {
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                out.values += 1;
                return out.errors.push(format!("{pos}: {e}"));
            }
        };
        out.values += match factorwatch::okta::sniff(value) {
            Ok(factorwatch::okta::Shape::EventHook { events }) => events.len(),
            _ => 1,
        };
        classifier.classify_json(value, |within, verdict| {
            let key = match within {
                Within::Whole => pos.to_string(),
                Within::HookEvent(i) => format!("{pos}, data.events[{i}]"),
            };
            match verdict {
                Ok(c) => {
                    let record = serde_json::to_value(&c.change).expect("record serializes");
                    assert!(
                        out.records.insert(key.clone(), record).is_none(),
                        "{key} twice"
                    );
                }
                Err(e) => out.errors.push(format!("{key}: {e}")),
            }
        });
    });
    out
}

/// Every key of `expected` holds the same value in `actual`, recursively.
fn assert_subset(expected: &Value, actual: &Value, at: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let got = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}.{k}: missing from the record"));
                assert_subset(v, got, &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(expected, actual, "at {at}"),
    }
}

fn check(file: &str, path: &Path, spec: &Value) {
    let outcome = classify_file(path, spec["wrapped_in"].as_str());
    assert!(outcome.errors.is_empty(), "{file}: {:?}", outcome.errors);
    assert_eq!(
        outcome.values as u64,
        spec["events"].as_u64().expect("events count"),
        "{file}: events read"
    );
    let expected = spec["changes"].as_object().expect("changes");
    let expected_keys: BTreeSet<&String> = expected.keys().collect();
    let actual_keys: BTreeSet<&String> = outcome.records.keys().collect();
    assert_eq!(
        actual_keys, expected_keys,
        "{file}: which events are MFA changes"
    );
    for (key, want) in expected {
        assert_subset(want, &outcome.records[key], &format!("{file} {key}"));
    }
}

#[test]
fn every_public_sample_classifies_as_expected() {
    let exp = expectations();
    let dir = samples_dir();
    let files = exp["files"].as_object().expect("files");
    for (file, spec) in files {
        check(file, &dir.join(file), spec);
    }
    // A sample added to shared/ must be given expectations before this passes again.
    let not_events = exp["not_events"].as_object().expect("not_events");
    let listing = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in listing {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            files.contains_key(&name) || not_events.contains_key(&name),
            "{name} in {} has no expectations",
            dir.display()
        );
    }
}

#[test]
fn documented_shapes_classify_as_expected() {
    let exp = expectations();
    for (file, spec) in exp["repo_files"].as_object().expect("repo_files") {
        check(file, &manifest_dir().join("../..").join(file), spec);
    }
}

/// Okta's event-type catalog (MFA subset): exactly the lifecycle types are MFA changes.
#[test]
fn catalog_event_types_classify_as_documented() {
    let exp = expectations();
    let want = exp["catalog"]["mfa_changes"]
        .as_object()
        .expect("mfa_changes");
    let path = samples_dir().join("okta-devdocs-event-types-mfa.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let catalog: Value = serde_json::from_str(&text).expect("catalog JSON");
    let ids: BTreeSet<&str> = catalog["eventTypes"]
        .as_array()
        .expect("eventTypes")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(ids.len() > 30, "catalog read: {} types", ids.len());
    for id in &ids {
        let got = factorwatch::okta::catalog::action(id).map(|a| a.as_str());
        assert_eq!(got, want.get(*id).and_then(Value::as_str), "{id}");
    }
    for id in want.keys() {
        assert!(ids.contains(id.as_str()), "{id} is not in Okta's catalog");
    }
}

/// factorwatch's one catalog of event types against Okta's published catalog (the MFA subset in
/// the samples): every type it knows exists there with the same hook eligibility, so the hook
/// subscription Okta would accept and the filter it polls with are Okta's names.
#[test]
fn the_event_type_catalog_agrees_with_okta_s_published_catalog() {
    use factorwatch::okta::catalog::{CATALOG, hook_subscription};
    let path = samples_dir().join("okta-devdocs-event-types-mfa.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let published: Value = serde_json::from_str(&text).expect("catalog JSON");
    let eligible = |id: &str| -> Option<bool> {
        published["eventTypes"]
            .as_array()?
            .iter()
            .find(|t| t["id"] == id)
            .map(|t| {
                t["tags"]
                    .as_array()
                    .is_some_and(|tags| tags.iter().any(|x| x == "event-hook-eligible"))
            })
    };
    // Outside the MFA subset in the samples: Okta's full catalog has them; factorwatch does not
    // subscribe a hook to them (eligibility unknown here), it polls them.
    let outside = [
        "user.account.update_primary_email",
        "user.account.update_password",
        "user.session.impersonation.grant",
        "user.session.impersonation.initiate",
        "user.session.impersonation.extend",
        "user.session.impersonation.end",
        "user.session.impersonation.revoke",
    ];
    for t in CATALOG {
        match eligible(t.name) {
            Some(tagged) => assert_eq!(t.hook_eligible, tagged, "{}", t.name),
            None => {
                assert!(
                    outside.contains(&t.name),
                    "{} is not in Okta's catalog",
                    t.name
                );
                assert!(!t.hook_eligible);
            }
        }
    }
    for name in hook_subscription(true) {
        assert_eq!(
            eligible(name),
            Some(true),
            "Okta would refuse {name} in a hook"
        );
    }
}
