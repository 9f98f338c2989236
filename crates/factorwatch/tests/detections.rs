//! The detections over okta-sim's traffic: every named attack mixed into ordinary traffic is found
//! by the rule meant for it, and the ordinary traffic around it raises nothing; `factorwatch
//! detect` on the command line; the daemon storing, delivering and telling findings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use factorwatch::commands::detect;
use factorwatch::detect::{Finding, Settings};
use okta_sim::scenario::attacks::{Attack, Script};
use okta_sim::scenario::{Generator, Scenario};
use serde_json::Value;

/// `days` of an org of `users` going about its day (`per_day` events per user), with each attack
/// in `attacks` starting at the given day offset; the events as NDJSON, and the scripts.
fn org_with_attacks(
    users: usize,
    days: i64,
    per_day: i64,
    attacks: &[(Attack, Duration)],
    seed: u64,
) -> (String, Vec<Script>) {
    let mut g = Generator::new(Scenario::Steady, seed, users, 0.02).unwrap();
    let start = DateTime::parse_from_rfc3339("2026-10-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let mut scripts: Vec<Script> = attacks
        .iter()
        .map(|(a, at)| g.attack(*a, start + *at))
        .collect();
    let mut scripted: Vec<(DateTime<Utc>, Value)> = scripts
        .iter_mut()
        .flat_map(|s| std::mem::take(&mut s.steps))
        .map(|(t, s)| (t, s.event))
        .collect();
    scripted.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    let total = users as i64 * per_day * days;
    let step = Duration::milliseconds(days * 86_400_000 / total);
    let mut out = String::new();
    for i in 0..total {
        let at = start + step * i as i32;
        while scripted.last().is_some_and(|(t, _)| *t <= at) {
            let (_, e) = scripted.pop().unwrap();
            out.push_str(&e.to_string());
            out.push('\n');
        }
        out.push_str(&g.next(at).event.to_string());
        out.push('\n');
    }
    (out, scripts)
}

/// Whether a finding concerns one of the script's victims.
fn about(f: &Finding, victims: &HashSet<String>) -> bool {
    let named = |p: &Option<factorwatch::detect::Party>| {
        p.as_ref()
            .and_then(|p| p.id.as_ref())
            .is_some_and(|id| victims.contains(id))
    };
    named(&f.user)
        || f.rule.as_str() == "bulk_admin_reset" && f.details["users"].as_u64() >= Some(5)
}

#[test]
fn every_named_attack_is_found_by_its_rule_and_ordinary_traffic_raises_nothing() {
    // 300 users, 21 days, each attack in the third week (after a baseline).
    let attacks: Vec<(Attack, Duration)> = Attack::ALL
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, Duration::days(14) + Duration::hours(9 * i as i64)))
        .collect();
    let (events, scripts) = org_with_attacks(300, 21, 6, &attacks, 11);
    let (signals, problems) = detect::from_export(&events);
    assert!(problems.is_empty(), "{problems:?}");
    let findings = detect::run(&Settings::default(), signals);

    let victims: HashSet<String> = scripts.iter().flat_map(|s| s.victims.clone()).collect();
    let mut by_rule: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for f in &findings {
        let e = by_rule.entry(f.rule.as_str()).or_default();
        if about(f, &victims) {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    for s in &scripts {
        let found = findings.iter().any(|f| {
            f.rule.as_str() == s.attack.rule()
                && (s.attack == Attack::MassReset
                    || f.user
                        .as_ref()
                        .and_then(|u| u.id.as_ref())
                        .is_some_and(|id| s.victims.contains(id)))
        });
        assert!(found, "{} was not found: {by_rule:?}", s.attack.name());
    }
    let benign: Vec<&Finding> = findings.iter().filter(|f| !about(f, &victims)).collect();
    assert!(
        benign.is_empty(),
        "ordinary traffic raised {}: {:#?}",
        benign.len(),
        benign.iter().map(|f| &f.summary).collect::<Vec<_>>()
    );
}

#[test]
fn the_same_events_give_the_same_findings_in_any_arrival_order_of_pages() {
    let attacks = [(Attack::HelpDeskTakeover, Duration::days(8))];
    let (events, _) = org_with_attacks(100, 10, 6, &attacks, 3);
    let (signals, _) = detect::from_export(&events);
    let in_order = detect::run(&Settings::default(), signals.clone());
    assert!(!in_order.is_empty());
    // A detector fed the same signals page by page, pages arriving out of order (a hook before
    // the poller catches up), still finds the takeover.
    let mut shuffled = signals;
    let n = shuffled.len();
    shuffled[n / 2..].reverse();
    let mut d = factorwatch::detect::Detector::new(&Settings::default());
    let found: Vec<Finding> = shuffled.iter().flat_map(|s| d.observe(s)).collect();
    assert!(
        found
            .iter()
            .any(|f| f.rule.as_str() == "reset_then_enroll_new_place"),
        "{found:?}"
    );
}

/// An Okta event for the daemon test: `kind` to `user` by `actor`, from `ip` in `country`.
#[allow(clippy::too_many_arguments)]
fn okta_event(
    uuid: &str,
    published: DateTime<Utc>,
    kind: &str,
    user: usize,
    actor: usize,
    ip: &str,
    country: &str,
    browser: &str,
) -> Value {
    let person = |i: usize| serde_json::json!({ "id": common::user_id(i), "type": "User", "alternateId": format!("user{i}@example.com"), "displayName": format!("User {i}") });
    let mut e = serde_json::json!({
        "uuid": uuid,
        "published": factorwatch::record::format_published(&published),
        "eventType": kind,
        "version": "0",
        "actor": person(actor),
        "target": [person(user)],
        "outcome": { "result": "SUCCESS", "reason": null },
        "client": { "ipAddress": ip, "geographicalContext": { "country": country },
                    "userAgent": { "browser": browser, "os": "Windows 10", "rawUserAgent": "x" } },
        "debugContext": { "debugData": {} },
    });
    if kind == "user.mfa.factor.activate" {
        e["outcome"]["reason"] = serde_json::json!("User set up SMS_FACTOR factor");
        e["debugContext"]["debugData"]["phoneNumber"] = serde_json::json!("+40721234567");
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_finds_a_help_desk_takeover_tells_the_siem_the_security_team_and_the_user_once()
{
    let sim = common::sim(okta_sim::server::RateLimits::default()).await;
    sim.users(5).await;
    let now = Utc::now();
    let mut events: Vec<Value> = (1..=5)
        .map(|d| {
            okta_event(
                &format!("signin-{d}"),
                now - Duration::days(d),
                "user.session.start",
                0,
                0,
                "198.51.100.20",
                "France",
                "CHROME",
            )
        })
        .rev()
        .collect();
    events.push(okta_event(
        "reset",
        now - Duration::minutes(30),
        "user.mfa.factor.reset_all",
        0,
        3,
        "10.1.2.3",
        "France",
        "CHROME",
    ));
    events.push(okta_event(
        "attacker-signin",
        now - Duration::minutes(12),
        "user.session.start",
        0,
        0,
        "185.220.101.4",
        "Romania",
        "FIREFOX",
    ));
    events.push(okta_event(
        "enroll",
        now - Duration::minutes(10),
        "user.mfa.factor.activate",
        0,
        0,
        "185.220.101.4",
        "Romania",
        "FIREFOX",
    ));
    let r = sim
        .http
        .post(format!("{}/sim/events?late=true", sim.base))
        .header("Content-Type", "application/json")
        .body(Value::Array(events).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let dir = std::env::temp_dir().join(format!("fw-detect-daemon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = common::config(&dir, &sim.base, false);
    config.orgs[0].system_log.since = "7d".parse().unwrap();
    config.email.security_copy = Some("SOC <soc@example.com>".parse().unwrap());
    for run in 0..2 {
        let d = factorwatch::daemon::Daemon::start_once(&config, &common::env)
            .await
            .unwrap();
        d.finish(std::time::Duration::from_secs(20)).await.unwrap();
        let siem = std::fs::read_to_string(dir.join("siem.ndjson")).unwrap();
        let findings: Vec<Value> = siem
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["type"] == "finding")
            .collect();
        assert_eq!(findings.len(), 1, "run {run}: {findings:#?}");
        assert_eq!(findings[0]["rule"], "reset_then_enroll_new_place");
        assert_eq!(
            findings[0]["event_ids"],
            serde_json::json!(["reset", "enroll"])
        );
        assert_eq!(findings[0]["org"], "acme");
    }
    // Quoted-printable soft line breaks joined, so that sentences read whole.
    let mail: Vec<String> = std::fs::read_dir(dir.join("mail"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .replace("=\r\n", "")
        })
        .collect();
    let soc: Vec<&String> = mail
        .iter()
        .filter(|m| m.contains("To: SOC") && m.contains("FINDING"))
        .collect();
    assert_eq!(
        soc.len(),
        1,
        "one copy of the finding for the security team"
    );
    assert!(soc[0].contains("reset_then_enroll_new_place"));
    // The user's notice for the enrollment says what it completes, in plain words.
    let notice = mail.iter().find(|m| {
        m.contains("user0@mail.example.com") && m.contains("you have not signed in from before")
    });
    assert!(notice.is_some(), "{mail:#?}");
    assert!(
        mail.iter()
            .any(|m| m.contains("user0@mail.example.com")
                && m.contains("reset all your MFA factors")),
        "the reset's own notice"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `factorwatch detect ARGS` with `stdin`: (exit code, stdout lines as JSON, stderr).
fn detect_cli(args: &[&str], stdin: &str) -> (i32, Vec<Value>, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .arg("detect")
        .args(args)
        .env_remove("FACTORWATCH_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a finding"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The takeover of the daemon test, as an export (NDJSON), published from `t0` on.
fn takeover_export(t0: DateTime<Utc>) -> Vec<String> {
    let mut events: Vec<Value> = (1..=5)
        .rev()
        .map(|d| {
            okta_event(
                &format!("signin-{d}"),
                t0 - Duration::days(d),
                "user.session.start",
                0,
                0,
                "198.51.100.20",
                "France",
                "CHROME",
            )
        })
        .collect();
    events.push(okta_event(
        "reset",
        t0,
        "user.mfa.factor.reset_all",
        0,
        3,
        "10.1.2.3",
        "France",
        "CHROME",
    ));
    events.push(okta_event(
        "enroll",
        t0 + Duration::minutes(20),
        "user.mfa.factor.activate",
        0,
        0,
        "185.220.101.4",
        "Romania",
        "FIREFOX",
    ));
    events.iter().map(Value::to_string).collect()
}

#[test]
fn detect_prints_one_finding_per_line_with_its_fields() {
    let t0 = Utc::now() - Duration::days(1);
    let (code, findings, err) = detect_cli(&[], &takeover_export(t0).join("\n"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_eq!(f["rule"], "reset_then_enroll_new_place");
    assert_eq!(f["severity"], "high");
    assert_eq!(f["user"]["id"], common::user_id(0));
    assert_eq!(f["user"]["login"], "user0@example.com");
    assert_eq!(f["actor"]["id"], common::user_id(3));
    assert_eq!(f["event_ids"], serde_json::json!(["reset", "enroll"]));
    assert_eq!(f["first_seen"], factorwatch::record::format_published(&t0));
    assert!(f["summary"].as_str().unwrap().contains("20 minutes later"));
    // The same export as a JSON array and inside an Event Hook delivery: the same finding.
    let array = format!("[{}]", takeover_export(t0).join(","));
    assert_eq!(detect_cli(&[], &array).1, findings);
    let hook = format!(
        r#"{{"eventType":"com.okta.event_hook","data":{{"events":[{}]}}}}"#,
        takeover_export(t0).join(",")
    );
    assert_eq!(detect_cli(&["-"], &hook).1, findings);
}

#[test]
fn detect_reports_bad_input_by_position_and_exits_1() {
    let t0 = Utc::now() - Duration::days(1);
    let mut lines = takeover_export(t0);
    lines.insert(2, "{not json".into());
    lines.insert(
        4,
        r#"{"uuid":"x","eventType":"user.session.start","published":"yesterday","actor":{"id":"00u1","type":"User"}}"#.into(),
    );
    let (code, findings, err) = detect_cli(&[], &lines.join("\n"));
    assert_eq!(code, 1);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("line 5") && err.contains("published"), "{err}");
    assert_eq!(findings.len(), 1, "the rest is still read");
}

#[test]
fn detect_reports_a_waiting_rule_only_once_the_events_have_passed_its_window() {
    let t0 = Utc::now() - Duration::days(2);
    let reset = okta_event(
        "reset",
        t0,
        "user.mfa.factor.reset_all",
        1,
        3,
        "10.1.2.3",
        "France",
        "CHROME",
    )
    .to_string();
    let later = |hours: i64| {
        okta_event(
            &format!("s{hours}"),
            t0 + Duration::hours(hours),
            "user.session.start",
            2,
            2,
            "198.51.100.9",
            "France",
            "CHROME",
        )
        .to_string()
    };
    let (_, six, _) = detect_cli(&[], &[reset.clone(), later(6)].join("\n"));
    assert!(six.iter().all(|f| f["rule"] != "mfa_left_off"), "{six:?}");
    let (_, thirteen, _) = detect_cli(&[], &[reset, later(6), later(13)].join("\n"));
    let left: Vec<&Value> = thirteen
        .iter()
        .filter(|f| f["rule"] == "mfa_left_off")
        .collect();
    assert_eq!(left.len(), 1, "{thirteen:?}");
    assert_eq!(left[0]["event_ids"], serde_json::json!(["reset"]));
}

#[test]
fn detect_hunts_over_what_the_store_holds_for_an_org() {
    let dir = std::env::temp_dir().join(format!("fw-detect-hunt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("fw.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n[email]\nenabled = false\n[[orgs]]\nname = \"acme\"\nurl = \"https://acme.okta.com\"\ntoken_env = \"NOT_USED\"\n",
            dir.join("fw.db").display()
        ),
    )
    .unwrap();
    let export = dir.join("export.ndjson");
    std::fs::write(
        &export,
        takeover_export(Utc::now() - Duration::days(1)).join("\n"),
    )
    .unwrap();
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args([
            "replay",
            export.to_str().unwrap(),
            "--org",
            "acme",
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let (code, findings, err) = detect_cli(
        &[
            "--org",
            "acme",
            "--since",
            "30d",
            "--config",
            config.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["rule"], "reset_then_enroll_new_place");
    // Not a day's worth of history: the baseline is cut off, nothing can be called new.
    let (_, recent, _) = detect_cli(
        &[
            "--org",
            "acme",
            "--since",
            "1h",
            "--config",
            config.to_str().unwrap(),
        ],
        "",
    );
    assert!(recent.is_empty(), "{recent:?}");
    let (code, _, err) = detect_cli(&["--org", "nope", "--config", config.to_str().unwrap()], "");
    assert_eq!(code, 2);
    assert!(err.contains("nope"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An empty directory of this test process's own.
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fw-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A batch that only appends `entry` to an org's journal, as a poller's commit of one event does.
fn journal_batch(entry: factorwatch::store::NewSignal) -> factorwatch::store::Batch {
    factorwatch::store::Batch {
        source: factorwatch::store::SourceKind::SystemLog,
        changes: vec![],
        rejects: vec![],
        events_seen: 1,
        newest_published: None,
        cursor: None,
        context: vec![],
        signals: vec![entry],
    }
}

/// A second handle on the SQLite file stands for a `replay` run beside the daemon: its commits
/// wake no detections of this process, and one look at the whole journal must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_another_process_writes_wake_the_detections_of_their_org_only() {
    use factorwatch::pipeline::detection::watch_journals;
    use factorwatch::pipeline::worker::Signals;
    use factorwatch::store::sqlite::SqliteStore;
    use factorwatch::store::{NewSignal, Store};
    use std::sync::Arc;

    let dir = scratch_dir("watch");
    let daemon_store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let beside = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let signals = Arc::new(Signals::default());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let watched = ["acme".to_owned(), "beta".to_owned()].into_iter().collect();
    let watcher = tokio::spawn(watch_journals(
        daemon_store,
        signals.clone(),
        watched,
        std::time::Duration::from_millis(20),
        shutdown,
    ));
    let commit = |org: &'static str, n: u32| {
        let beside = beside.clone();
        async move {
            let b = journal_batch(NewSignal {
                uuid: format!("{org}-{n}"),
                kind: "event",
                published: Utc::now(),
                body: "{}".into(),
            });
            beside.commit(org, &b, Utc::now()).await.unwrap();
        }
    };
    // Another org's entries (not watched by this process) wake nobody here; acme's wake acme's.
    let acme = signals.journal("acme");
    let beta = signals.journal("beta");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut n = 0;
    loop {
        // Committed again and again: the watcher's first look only notes where the journal ends.
        n += 1;
        commit("gamma", n).await;
        commit("acme", n).await;
        if tokio::time::timeout(std::time::Duration::from_millis(200), acme.notified())
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "acme's detections were never woken"
        );
    }
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), beta.notified())
            .await
            .is_err(),
        "beta's journal did not grow"
    );
    stop.send(true).unwrap();
    watcher.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A live org's sign-ins that make no finding: their position waits in memory (no commit per
/// poll), and is stored with the next entry that is not a sign-in (a factor change a notice waits
/// on is never held), when the hold ends, or at shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_wait_in_memory_a_change_does_not_and_their_position_is_stored_in_time() {
    use factorwatch::detect::{Party, Place, Signal, What};
    use factorwatch::pipeline::detection::DetectionWorker;
    use factorwatch::pipeline::worker::Signals;
    use factorwatch::store::sqlite::SqliteStore;
    use factorwatch::store::{NewSignal, Store};
    use std::sync::Arc;
    use std::time::Duration as StdDuration;

    let dir = scratch_dir("hold");
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let signals = Arc::new(Signals::default());
    let t0 = Utc::now() - Duration::hours(1);
    let mut n = 0;
    // Appends one entry to `org`'s journal, as a poller's commit does, and says so; its position.
    let mut append = async |org: &str, what: What| -> i64 {
        n += 1;
        let signal = Signal {
            id: format!("{org}-{n}"),
            published: t0 + Duration::seconds(n),
            event_type: "user.session.start".into(),
            what,
            user: Some(
                Party {
                    id: Some("00u1".into()),
                    login: Some("ann@example.com".into()),
                    display_name: None,
                    kind: Some("User".into()),
                }
                .into(),
            ),
            actor: None,
            by_user: true,
            place: Place {
                ip: Some("192.0.2.1".into()),
                ..Place::default()
            },
            session: None,
        };
        let b = journal_batch(NewSignal {
            uuid: signal.id.clone(),
            kind: if signal.what == What::SignIn {
                "sign_in"
            } else {
                "event"
            },
            published: signal.published,
            body: serde_json::to_string(&signal).unwrap(),
        });
        store.commit(org, &b, Utc::now()).await.unwrap();
        signals.appended(org);
        store
            .signals_after(org, 0, 10_000)
            .await
            .unwrap()
            .last()
            .unwrap()
            .position
    };
    let worker = |org: &str, hold: StdDuration| DetectionWorker {
        org: org.into(),
        store: store.clone(),
        settings: Settings::default(),
        destinations: vec!["file".into()],
        signals: signals.clone(),
        idle: None,
        hold: Some(hold),
    };
    // Polls the stored position until it is `at` (20 s at most).
    let stored_at = async |org: &str, at: i64| {
        let deadline = std::time::Instant::now() + StdDuration::from_secs(20);
        while store.detection_cursor(org).await.unwrap() != at {
            assert!(
                std::time::Instant::now() < deadline,
                "{org}'s detections never stored position {at}"
            );
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    };

    // Polls until the detections have read `n` entries (20 s at most).
    let read_at_least = async |n: u64| {
        let deadline = std::time::Instant::now() + StdDuration::from_secs(20);
        while signals.detected.load(std::sync::atomic::Ordering::Relaxed) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "the detections never read {n} entries"
            );
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    };

    // A hold far longer than the test: only a change or shutdown stores the position.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let acme = tokio::spawn(worker("acme", StdDuration::from_secs(600)).run(shutdown));
    for _ in 0..3 {
        append("acme", What::SignIn).await;
    }
    read_at_least(3).await;
    assert_eq!(
        store.detection_cursor("acme").await.unwrap(),
        0,
        "sign-ins alone were stored at once"
    );
    let reset = append("acme", What::ResetAll).await;
    stored_at("acme", reset).await;
    let last = append("acme", What::SignIn).await;
    // Observed (all five entries read), not stored.
    read_at_least(5).await;
    assert_eq!(store.detection_cursor("acme").await.unwrap(), reset);
    stop.send(true).unwrap();
    acme.await.unwrap();
    assert_eq!(
        store.detection_cursor("acme").await.unwrap(),
        last,
        "the held position was not stored at shutdown"
    );

    // A short hold: the position is stored when it ends, with nothing more in the journal.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let beta = tokio::spawn(worker("beta", StdDuration::from_millis(500)).run(shutdown));
    append("beta", What::SignIn).await;
    let last = append("beta", What::SignIn).await;
    stored_at("beta", last).await;
    stop.send(true).unwrap();
    beta.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
