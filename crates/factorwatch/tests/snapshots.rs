//! Snapshots: the documented example events (`examples/okta-events.ndjson`) in every SIEM
//! encoding, compared with reviewed files under `tests/snapshots/`. `UPDATE_SNAPSHOTS=1` rewrites
//! them (then review the diff).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use factorwatch::classify::Classifier;
use factorwatch::formats::{Context, Format, syslog};

fn encoded(name: &str) -> String {
    let input = include_str!("../../../examples/okta-events.ndjson");
    let ctx = Context {
        org: "acme".into(),
        hostname: "relay01".into(),
    };
    let classifier = Classifier::default();
    let mut out = String::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        classifier.classify_json(line, |_, verdict| {
            let Ok(c) = verdict else { return };
            let text = match name {
                "syslog" => syslog::message(
                    &c.change,
                    &Format::Cef.encode(&c.change, c.raw, &ctx),
                    &ctx,
                    &Default::default(),
                ),
                f => Format::parse(f).unwrap().encode(&c.change, c.raw, &ctx),
            };
            out.push_str(&text);
            out.push('\n');
        });
    }
    out
}

#[test]
fn every_format_matches_its_reviewed_snapshot() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    for name in [
        "ocsf",
        "ocsf-user-management",
        "ecs",
        "cef",
        "leef",
        "raw",
        "syslog",
    ] {
        let got = encoded(name);
        let path = dir.join(format!("{name}.txt"));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            got == want,
            "{name}: output differs from {}; rerun with UPDATE_SNAPSHOTS=1 and review",
            path.display()
        );
        assert_eq!(got.lines().count(), 8, "{name}: one line per change");
    }
}
