//! `factorwatch classify` as a user runs it: the real binary, files and pipes.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const MFA: &str = r#"{"uuid":"u-1","published":"2026-11-02T09:14:07.215Z","eventType":"user.mfa.factor.activate","actor":{"id":"00u1","type":"User","alternateId":"jane@example.com"},"target":[{"id":"00u1","type":"User","alternateId":"jane@example.com"}],"outcome":{"result":"SUCCESS","reason":"User set up SMS_FACTOR factor"},"debugContext":{"debugData":{"phoneNumber":"+15550101234"}}}"#;
const RESET: &str = r#"{"uuid":"u-2","published":"2026-11-02T09:15:00Z","eventType":"user.mfa.factor.deactivate","actor":{"id":"00u2","type":"User"},"target":[{"id":"00u1","type":"User"}],"outcome":{"result":"SUCCESS","reason":"User reset OKTA_VERIFY_PUSH factor"}}"#;
const SIGN_IN: &str = r#"{"uuid":"u-3","published":"2026-11-02T09:16:00Z","eventType":"user.session.start","actor":{"id":"00u1","type":"User"}}"#;

fn classify(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .arg("classify")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn factorwatch");
    // A run that refuses its arguments exits before reading its input: the write then finds
    // the pipe closed, which is not the test's failure (the exit status says what happened).
    match child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.expect("write stdin"),
    }
    child.wait_with_output().expect("wait")
}

fn records(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is a JSON record"))
        .collect()
}

/// Runs `factorwatch ARGS`, expects success, returns its standard output.
fn succeeds(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn ndjson_records_come_out_in_input_order_and_bad_lines_are_reported_by_line() {
    let input = format!("{MFA}\nnot json\n{SIGN_IN}\n{{\"hello\":1}}\n\n{RESET}\n");
    let out = classify(&[], &input);
    let recs = records(&out);
    let ids: Vec<_> = recs
        .iter()
        .map(|r| r["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["u-1", "u-2"]);
    assert_eq!(recs[0]["factor"]["phone_last4"], "1234");
    assert_eq!(recs[1]["initiator"], "admin");
    let err = stderr(&out);
    assert!(err.contains("line 2: not valid JSON"), "{err}");
    assert!(err.contains("line 4: not an Okta event"), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn clean_input_exits_zero_and_non_mfa_events_print_nothing() {
    let out = classify(&["-"], &format!("{SIGN_IN}\n{MFA}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(records(&out).len(), 1);
    assert!(out.stderr.is_empty());

    let out = classify(&[], &format!("{SIGN_IN}\n"));
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());

    let out = classify(&[], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn arrays_report_bad_elements_by_index() {
    let input = format!("[\n  {MFA},\n  \"oops\",\n  {RESET}\n]\n");
    let out = classify(&[], &input);
    assert_eq!(records(&out).len(), 2);
    assert!(
        stderr(&out).contains("index 1: not an Okta event"),
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_pretty_printed_hook_delivery_yields_its_mfa_events_as_event_hook() {
    let hook = format!(
        "{{\n  \"eventType\": \"com.okta.event_hook\",\n  \"eventId\": \"d1\",\n  \"data\": {{\"events\": [{SIGN_IN}, {MFA}, 7]}}\n}}\n"
    );
    let out = classify(&[], &hook);
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["source"], "event_hook");
    assert!(
        stderr(&out).contains("input, data.events[2]: not an Okta event"),
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn raw_carries_the_original_event_verbatim() {
    let out = classify(&["--raw"], &format!("{MFA}\n"));
    let recs = records(&out);
    let original: Value = serde_json::from_str(MFA).expect("MFA is JSON");
    assert_eq!(recs[0]["raw"], original);
    assert_eq!(recs[0]["action"], "enrolled");

    let out = classify(&[], &format!("{MFA}\n"));
    assert!(records(&out)[0].get("raw").is_none());
}

#[test]
fn the_authoritative_provider_set_is_configurable() {
    let out = classify(&["--okta-authoritative", "GOOGLE"], &format!("{MFA}\n"));
    assert_eq!(records(&out)[0]["factor"]["okta_authoritative"], false);
    let out = classify(&["--okta-authoritative", "NOPE"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown factor provider"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = classify(&["/nonexistent/okta.json"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read /nonexistent/okta.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_bundled_example_classifies_from_a_file() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/okta-events.ndjson"
    );
    let out = classify(&[path], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(records(&out).len(), 8);
}

#[test]
fn demo_runs_the_whole_pipeline_and_stops_after_its_duration() {
    let dir = std::env::temp_dir().join(format!("fw-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["demo", "--duration", "7s", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("lag: newest event"), "{stdout}");
    let siem = std::fs::read_to_string(dir.join("siem.ndjson")).unwrap();
    assert!(siem.lines().count() > 10, "{siem}");
    let emails = std::fs::read_dir(dir.join("mail")).unwrap().count();
    assert!(emails > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_without_an_org_says_what_to_configure() {
    let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["run"])
        .env_remove("FACTORWATCH_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[[orgs]]"), "{err}");
}

#[test]
fn run_with_a_missing_token_names_the_variable_and_never_a_secret() {
    let dir = std::env::temp_dir().join(format!("fw-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("fw.toml");
    std::fs::write(&config, format!("[store]\npath = \"{}/fw.db\"\n[[orgs]]\nname = \"acme\"\nurl = \"https://acme.okta.com\"\ntoken_env = \"NOT_SET_ANYWHERE\"\n", dir.display())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NOT_SET_ANYWHERE"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn classify_prints_each_siem_encoding_one_line_per_change() {
    let input = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/okta-events.ndjson"
    ))
    .unwrap();
    for (format, prefix) in [
        ("cef", "CEF:0|"),
        ("leef", "LEEF:2.0|"),
        ("syslog", "<"),
        ("ocsf", "{"),
        ("ecs", "{"),
        ("raw", "{"),
    ] {
        let out = classify(&["--format", format, "--org", "acme"], &input);
        assert!(out.status.success(), "{format}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 8, "{format}");
        assert!(
            text.lines().all(|l| l.starts_with(prefix)),
            "{format}: {text}"
        );
    }
    let out = classify(&["--format", "xml"], &input);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown format"));
}

#[test]
fn the_example_config_documents_every_option_and_is_valid() {
    let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for key in [
        "[store]",
        "[[orgs]]",
        "[orgs.system_log]",
        "[orgs.hook]",
        "[[sinks]]",
        "[email]",
        "[delivery]",
        "coalesce",
        "security_copy",
    ] {
        assert!(text.contains(key), "{key}");
    }
    let dir = std::env::temp_dir().join(format!("fw-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("fw.toml"), &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["config", "validate", "--config"])
        .arg(dir.join("fw.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("bad.toml"), "[email]\ntransport = \"pigeon\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["config", "validate", "--config"])
        .arg(dir.join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("email.transport"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn outbox_lists_re_drives_and_drops_dead_letters() {
    use factorwatch::store::{Batch, NewChange, SourceKind, Store};
    let dir = std::env::temp_dir().join(format!("fw-outbox-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("fw.db");
    let store = factorwatch::store::sqlite::SqliteStore::open(&db)
        .await
        .unwrap();
    let change = |id: &str| NewChange {
        event_id: id.into(),
        event_type: "user.mfa.factor.activate".into(),
        action: "enrolled".into(),
        published: None,
        user_id: None,
        record: "{}".into(),
        raw: "{}".into(),
        destinations: vec!["siem:file".into()],
    };
    let batch = Batch {
        source: SourceKind::SystemLog,
        changes: vec![change("a"), change("b")],
        rejects: vec![],
        events_seen: 2,
        newest_published: None,
        cursor: None,
        context: vec![],
        signals: vec![],
    };
    store
        .commit("acme", &batch, chrono::Utc::now())
        .await
        .unwrap();
    for d in store
        .due("siem:file", 10, chrono::Utc::now(), true)
        .await
        .unwrap()
    {
        store.dead(d.id, "SIEM said no").await.unwrap();
    }
    store.close().await;
    let config = dir.join("fw.toml");
    std::fs::write(&config, format!("[store]\npath = \"{}\"\n", db.display())).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
            .args(["outbox", "--config"])
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = run(&["list"]);
    assert!(
        listed.contains("SIEM said no") && listed.lines().count() == 3,
        "{listed}"
    );
    let first_id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(run(&["retry", &first_id]).contains("1 dead letter(s) back in line"));
    assert!(run(&["drop", "--destination", "siem:file"]).contains("1 dead letter(s) dropped"));
    assert!(run(&["list"]).contains("no dead letters"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replay_feeds_exported_events_through_the_pipeline_once() {
    let dir = std::env::temp_dir().join(format!("fw-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("fw.toml");
    std::fs::write(&config, format!("[store]\npath = \"{}/fw.db\"\n[[orgs]]\nname = \"acme\"\nurl = \"https://acme.okta.com\"\n", dir.display())).unwrap();
    let events = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/okta-events.ndjson"
    );
    let replay = || {
        succeeds(&[
            "replay".as_ref(),
            events.as_ref(),
            "--org".as_ref(),
            "acme".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ])
    };
    assert!(replay().contains("8 new MFA changes stored for delivery, 0 already known"));
    assert!(replay().contains("0 new MFA changes stored for delivery, 8 already known"));
    let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["replay", events, "--org", "nope", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("_factorwatch()"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_manual_page_covers_every_command() {
    let page = succeeds(&["man".as_ref()]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH factorwatch 1"),
        "roff: {}",
        &page[..200.min(page.len())]
    );
    for command in ["run", "backfill", "check", "outbox", "okta"] {
        assert!(page.contains(command), "{command} in the manual page");
    }
    let dir = std::env::temp_dir().join(format!("fw-man-{}", std::process::id()));
    succeeds(&["man".as_ref(), "--dir".as_ref(), dir.as_os_str()]);
    let run = std::fs::read_to_string(dir.join("factorwatch-run.1")).unwrap();
    assert!(run.contains("\\-\\-once"), "run's page documents --once");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["okta", "--help"],
        &["outbox", "--help"],
        &["check", "--help"],
        &["replay", "--help"],
        &["render-email", "--help"],
        &["config", "example", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
