//! Classify throughput on one core over a realistic System Log mix: about 2% MFA changes among the
//! real events of the public Okta samples in `tests/samples/` (sign-ins, SSO, admin and policy activity, ~1.5 KB each).
//!
//! `cargo bench -p factorwatch --bench classify`

// Test code: a failed expectation is meant to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use factorwatch::classify::Classifier;
use factorwatch::input;
use serde_json::Value;

const EVENTS: usize = 20_000;
/// One MFA change in fifty events.
const MFA_EVERY: usize = 50;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ndjson_events(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn is_mfa_change(event: &Value) -> bool {
    let et = event["eventType"].as_str().unwrap_or("");
    factorwatch::okta::catalog::action(et).is_some()
}

/// `(NDJSON document, events, MFA changes)`.
fn corpus() -> (String, usize, usize) {
    let samples = std::env::var_os("FACTORWATCH_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("crates/factorwatch/tests/samples"));
    let mut background = Vec::new();
    for name in [
        "cribl-okta-rest-sample.ndjson",
        "sekoia-intake-formats-okta-tests.ndjson",
        "elastic-integrations-okta-pipeline-excerpt.ndjson",
        "ocsf-examples-okta-raw.ndjson",
    ] {
        background.extend(
            ndjson_events(&samples.join(name))
                .into_iter()
                .filter(|e| !is_mfa_change(e)),
        );
    }
    let mfa: Vec<Value> = ndjson_events(&repo().join("examples/okta-events.ndjson"))
        .into_iter()
        .chain(ndjson_events(
            &samples.join("stix-shifter-okta-test-events.ndjson"),
        ))
        .filter(is_mfa_change)
        .collect();
    assert!(
        !background.is_empty() && !mfa.is_empty(),
        "samples not found under {}",
        samples.display()
    );

    let mut doc = String::new();
    let mut changes = 0;
    for i in 0..EVENTS {
        let event = if i % MFA_EVERY == MFA_EVERY - 1 {
            changes += 1;
            &mfa[i / MFA_EVERY % mfa.len()]
        } else {
            &background[i % background.len()]
        };
        doc.push_str(&serde_json::to_string(event).expect("serialize"));
        doc.push('\n');
    }
    (doc, EVENTS, changes)
}

fn classify_all(classifier: &Classifier, doc: &[u8]) -> usize {
    let mut changes = 0;
    input::for_each_value(doc, |_, value| {
        if let Ok(value) = value {
            classifier.classify_json(value, |_, verdict| changes += usize::from(verdict.is_ok()));
        }
    });
    changes
}

fn bench(c: &mut Criterion) {
    let (doc, events, changes) = corpus();
    let classifier = Classifier::default();
    assert_eq!(classify_all(&classifier, doc.as_bytes()), changes);
    eprintln!(
        "corpus: {events} events, {changes} MFA changes, {:.0} bytes/event on average",
        doc.len() as f64 / events as f64
    );

    let mut g = c.benchmark_group("classify_ndjson");
    g.throughput(Throughput::Elements(events as u64));
    g.bench_function("events", |b| {
        b.iter(|| classify_all(&classifier, black_box(doc.as_bytes())))
    });
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.bench_function("bytes", |b| {
        b.iter(|| classify_all(&classifier, black_box(doc.as_bytes())))
    });
    g.finish();

    // The same events as one `/api/v1/logs`-style JSON array.
    let array = format!("[{}]", doc.trim_end().replace('\n', ","));
    let mut g = c.benchmark_group("classify_array");
    g.throughput(Throughput::Elements(events as u64));
    g.bench_function("events", |b| {
        b.iter(|| classify_all(&classifier, black_box(array.as_bytes())))
    });
    g.finish();

    // What a poller does first with every page: split it and read each event's type.
    let mut g = c.benchmark_group("split_page");
    g.throughput(Throughput::Bytes(array.len() as u64));
    g.bench_function("bytes", |b| {
        b.iter(|| factorwatch::okta::split_page(black_box(&array)).map(|e| e.len()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
