//! The detections, measured:
//!
//! 1. **A simulated month.** okta-sim's ordinary traffic of `BENCH_USERS` users (10,000) over
//!    `BENCH_DAYS` days (30), `BENCH_EVENTS_PER_USER_DAY` events each per day (5; sign-ins, MFA
//!    verifications, app access, admin work, 2% MFA changes), with every named attack mixed in
//!    `BENCH_ATTACKS` times (3), after `BENCH_WARM_UP_DAYS` (14) of history. The events go
//!    through what the daemon runs: pages of 1,000 classified into changes and journal signals
//!    and committed to a SQLite store, then the detections' worker loop (read the journal on,
//!    detect, commit, forget the sign-ins that taught nothing). Reports findings per rule — on the
//!    attacks (a finding made of an attack's events) and on the ordinary traffic (false findings)
//!    — false findings per 10,000 users per day, the attacks found, the history's memory and the
//!    journal's size.
//! 2. **Detection latency.** The real daemon (`Daemon::start`): a user's baseline and a help-desk
//!    reset delivered by Event Hook, then the attacker's enrollment; the time from POSTing that
//!    last event to the finding in the SIEM file, over `BENCH_LATENCY_RUNS` (50) takeovers.
//!
//! `cargo bench -p factorwatch --bench detections`; the numbers in `docs/detections.md` are its
//! output on the project's machine (`bench-results/detections.txt`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use factorwatch::config::Config;
use factorwatch::daemon::Daemon;
use factorwatch::detect::{Detector, Finding, PhoneKey, Settings, Signal};
use factorwatch::pipeline::ingest::Ingest;
use factorwatch::store::{SourceKind, Store};
use okta_sim::scenario::attacks::Attack;
use okta_sim::scenario::{Generator, Scenario};
use serde_json::{Value, json};

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fw-bench-detect-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        month().await;
        latency().await;
    });
}

async fn month() {
    let users = var("BENCH_USERS", 10_000);
    let days = var("BENCH_DAYS", 30) as i64;
    let warm = var("BENCH_WARM_UP_DAYS", 14) as i64;
    let per_day = var("BENCH_EVENTS_PER_USER_DAY", 5) as i64;
    let repeats = var("BENCH_ATTACKS", 3);
    let start = DateTime::parse_from_rfc3339("2026-09-01T00:00:00Z")
        .unwrap()
        .to_utc();
    // The measured month follows a warm-up: what `factorwatch backfill --since 30d` gives a new
    // install, so that users have a history when the month begins.
    let month_start = start + chrono::Duration::days(warm);
    let mut g = Generator::new(Scenario::Steady, 7, users, 0.02).unwrap();

    // The attacks, spread over the month from its second day to a day before its end (the
    // waiting rules' windows end inside it).
    let attacks: Vec<Attack> = (0..repeats).flat_map(|_| Attack::ALL).collect();
    let spread = chrono::Duration::days(days - 2).max(chrono::Duration::days(1));
    let mut scripts = Vec::new();
    for (i, a) in attacks.iter().enumerate() {
        let at =
            month_start + chrono::Duration::days(1) + spread * (i as i32) / (attacks.len() as i32);
        scripts.push(g.attack(*a, at));
    }
    let mut attack_events: HashSet<String> = HashSet::new();
    let mut scripted: Vec<(DateTime<Utc>, Value)> = Vec::new();
    for s in &mut scripts {
        for (t, step) in std::mem::take(&mut s.steps) {
            if let Some(id) = step.event["uuid"].as_str() {
                attack_events.insert(id.to_owned());
            }
            scripted.push((t, step.event));
        }
    }
    scripted.sort_by_key(|(t, _)| std::cmp::Reverse(*t));

    let dir = tempdir("month");
    let store = factorwatch::store::sqlite::SqliteStore::open(&dir.join("fw.db"))
        .await
        .unwrap();
    let ingest = Ingest {
        classifier: Default::default(),
        routing: Default::default(),
        detections: Some(PhoneKey::new(b"bench-phone-key-0123456789".to_vec())),
    };
    // As the daemon runs: each page classified and committed (changes, journal), then the
    // detections' worker reads the journal on from its cursor and commits what it found, forgetting
    // the sign-ins that taught it nothing.
    let mut detector = Detector::new(&Settings::default());
    let mut findings: Vec<Finding> = Vec::new();
    let mut cursor = 0i64;
    let (mut generated, mut ingesting, mut detecting) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut events, mut signals, mut forgotten) = (0u64, 0usize, 0usize);
    let total = users as i64 * per_day * (days + warm);
    let step = chrono::Duration::milliseconds((days + warm) * 86_400_000 / total);
    let mut page: Vec<String> = Vec::with_capacity(1000);
    let mut i = 0i64;
    loop {
        let t = Instant::now();
        while page.len() < 1000 && i < total {
            let at = start + step * i as i32;
            while scripted.last().is_some_and(|(t, _)| *t <= at) {
                let (_, e) = scripted.pop().unwrap();
                page.push(e.to_string());
            }
            page.push(g.next(at).event.to_string());
            i += 1;
        }
        if i >= total {
            page.extend(
                std::mem::take(&mut scripted)
                    .into_iter()
                    .rev()
                    .map(|(_, e)| e.to_string()),
            );
        }
        generated += t.elapsed();
        if page.is_empty() {
            break;
        }
        events += page.len() as u64;
        let t = Instant::now();
        let body = format!("[{}]", page.join(","));
        let batch = ingest.page(SourceKind::SystemLog, &body, None).unwrap();
        signals += batch.signals.len();
        store.commit("acme", &batch, Utc::now()).await.unwrap();
        ingesting += t.elapsed();
        page.clear();

        let t = Instant::now();
        let entries = store.signals_after("acme", cursor, 100_000).await.unwrap();
        let mut forget = Vec::new();
        for e in &entries {
            let s: Signal = serde_json::from_str(&e.body).unwrap();
            let (found, keep) = detector.observe_journal(&s);
            findings.extend(found);
            if !keep {
                forget.push(e.position);
            }
            cursor = e.position;
        }
        forgotten += forget.len();
        store
            .commit_findings("acme", &[], &forget, cursor, Utc::now())
            .await
            .unwrap();
        detecting += t.elapsed();
    }
    // Sign-ins past the baseline, as the worker prunes them hourly.
    let now = detector.watermark().unwrap();
    let pruned = store
        .prune_signals(
            "acme",
            now - chrono::Duration::days(factorwatch::detect::history::PLACE_DAYS + 1),
        )
        .await
        .unwrap();
    let (kept, journal) = journal_size(&dir.join("fw.db")).await;
    store.close().await;

    // Findings made of an attack's events are the attacks'; the rest are false. Those of the
    // warm-up are reported apart.
    let in_month = |f: &&Finding| f.first_seen >= month_start;
    let mut by_rule: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for f in findings.iter().filter(in_month) {
        let e = by_rule.entry(f.rule.as_str()).or_default();
        if f.event_ids.iter().any(|id| attack_events.contains(id)) {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let warm_up_findings = findings.iter().filter(|f| !in_month(f)).count();
    let found: Vec<(Attack, bool)> = scripts
        .iter()
        .map(|s| {
            (
                s.attack,
                findings.iter().any(|f| {
                    f.rule.as_str() == s.attack.rule()
                        && f.event_ids.iter().any(|id| attack_events.contains(id))
                        && (s.attack == Attack::MassReset
                            || f.user
                                .as_ref()
                                .and_then(|u| u.id.as_ref())
                                .is_some_and(|id| s.victims.contains(id)))
                }),
            )
        })
        .collect();
    let false_total: usize = by_rule.values().map(|(_, f)| f).sum();
    let per_10k_day = false_total as f64 / (users as f64 / 10_000.0) / days as f64;

    println!("== detections over a simulated month ==");
    println!(
        "{users} users; {warm} days of warm-up, then {days} days measured; {events} events ({per_day} per user per day, 2% MFA changes); {} attack scripts ({repeats} of each of {} kinds) in the measured days",
        scripts.len(),
        Attack::ALL.len()
    );
    println!(
        "journal: {signals} signals written ({:.1}% of events); {forgotten} sign-ins forgotten once read (they taught nothing), {pruned} pruned past the baseline; {kept} kept, {:.1} MiB ({:.0} bytes each) = {:.1} MiB per 10,000 users",
        100.0 * signals as f64 / events as f64,
        journal as f64 / (1 << 20) as f64,
        journal as f64 / kept.max(1) as f64,
        journal as f64 / (1 << 20) as f64 / (users as f64 / 10_000.0),
    );
    println!();
    println!("| rule | findings on attacks | false findings (ordinary traffic) |");
    println!("|---|---|---|");
    for a in Attack::ALL {
        let (on, off) = by_rule.get(a.rule()).copied().unwrap_or_default();
        println!("| `{}` | {on} | {off} |", a.rule());
    }
    println!();
    for a in Attack::ALL {
        let of: Vec<bool> = found
            .iter()
            .filter(|(k, _)| *k == a)
            .map(|(_, f)| *f)
            .collect();
        println!(
            "attack {}: found {}/{} by {}",
            a.name(),
            of.iter().filter(|f| **f).count(),
            of.len(),
            a.rule()
        );
    }
    println!(
        "false findings: {false_total} in {days} days = {per_10k_day:.2} per 10,000 users per day (goal: < 1); {warm_up_findings} findings during the warm-up"
    );
    for f in findings
        .iter()
        .filter(in_month)
        .filter(|f| !f.event_ids.iter().any(|id| attack_events.contains(id)))
        .take(10)
    {
        println!("  false: {}: {}", f.rule.as_str(), f.summary);
    }
    println!(
        "history: {} users remembered, {:.1} MiB held by the detector ({:.0} bytes per user) = {:.1} MiB per 10,000 users",
        detector.users(),
        detector.approx_bytes() as f64 / (1 << 20) as f64,
        detector.approx_bytes() as f64 / detector.users().max(1) as f64,
        detector.approx_bytes() as f64 / (1 << 20) as f64 / (users as f64 / 10_000.0),
    );
    println!(
        "time: generating {:.1} s; classifying and committing {:.1} s ({:.0} events/s); detecting and committing {:.1} s ({:.0} signals/s)",
        generated.as_secs_f64(),
        ingesting.as_secs_f64(),
        events as f64 / ingesting.as_secs_f64(),
        detecting.as_secs_f64(),
        signals as f64 / detecting.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rows the journal keeps, and the bytes of their text and keys (the row's fields and its
/// `(org, uuid)` key; SQLite's page overhead not counted).
async fn journal_size(path: &std::path::Path) -> (u64, u64) {
    use sqlx::{ConnectOptions, Row};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    let row = sqlx::query(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(body) + 2 * (LENGTH(uuid) + LENGTH(org)) + LENGTH(kind) + 24), 0) FROM signals",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (
        row.get::<i64, _>(0).max(0) as u64,
        row.get::<i64, _>(1).max(0) as u64,
    )
}

const SECRET: &str = "bench-hook-secret";

fn daemon_config(dir: &std::path::Path, sim: &str) -> Config {
    let text = format!(
        r#"[store]
path = "{db}"
[hooks]
listen = "127.0.0.1:0"
[[sinks]]
name = "file"
type = "file"
path = "{siem}"
[email]
enabled = false
[[orgs]]
name = "acme"
url = "{sim}"
token_env = "BENCH_OKTA_TOKEN"
[orgs.system_log]
enabled = false
[orgs.hook]
path = "/okta/acme"
secret_env = "BENCH_HOOK_SECRET"
"#,
        db = dir.join("fw.db").display(),
        siem = dir.join("siem.ndjson").display(),
    );
    let path = dir.join("fw.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path), std::iter::empty()).unwrap()
}

fn env(name: &str) -> Option<String> {
    match name {
        "BENCH_OKTA_TOKEN" => Some("bench".into()),
        "BENCH_HOOK_SECRET" => Some(SECRET.into()),
        _ => None,
    }
}

fn event(
    uuid: &str,
    at: DateTime<Utc>,
    kind: &str,
    user: usize,
    actor: usize,
    ip: &str,
    country: &str,
) -> String {
    let person = |i: usize| json!({ "id": format!("00u{i:017}"), "type": "User", "alternateId": format!("user{i}@example.com"), "displayName": format!("User {i}") });
    let mut e = json!({
        "uuid": uuid, "published": factorwatch::record::format_published(&at), "eventType": kind, "version": "0",
        "actor": person(actor), "target": [person(user)], "outcome": { "result": "SUCCESS" },
        "client": { "ipAddress": ip, "geographicalContext": { "country": country }, "userAgent": { "browser": "CHROME", "os": "Mac OS X", "rawUserAgent": "x" } },
        "debugContext": { "debugData": {} },
    });
    if kind == "user.mfa.factor.activate" {
        e["outcome"]["reason"] = json!("User set up SMS_FACTOR factor");
        e["debugContext"]["debugData"]["phoneNumber"] = json!(format!("+40721{user:06}"));
    }
    e.to_string()
}

async fn post(http: &reqwest::Client, url: &str, events: &[String]) {
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let body = okta_sim::hooks::delivery::envelope("http://okta", "who1", "d", &refs, Utc::now());
    let status = http
        .post(url)
        .header("Authorization", SECRET)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

fn findings_in(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""type":"finding""#))
        .count()
}

async fn latency() {
    let runs = var("BENCH_LATENCY_RUNS", 50);
    let sim = okta_sim::server::Local::start("bench", okta_sim::server::RateLimits::default(), 1)
        .await
        .unwrap();
    let dir = tempdir("latency");
    let daemon = Daemon::start(&daemon_config(&dir, &sim.base), &env)
        .await
        .unwrap();
    let url = format!("http://{}/okta/acme", daemon.hook_addr.unwrap());
    let http = reqwest::Client::new();
    let siem = dir.join("siem.ndjson");
    let now = Utc::now();
    let mut times = Vec::with_capacity(runs);
    for user in 0..runs {
        let days: Vec<String> = (1..=5)
            .map(|d| {
                event(
                    &format!("in-{user}-{d}"),
                    now - chrono::Duration::days(d),
                    "user.session.start",
                    user,
                    user,
                    "198.51.100.20",
                    "France",
                )
            })
            .collect();
        post(&http, &url, &days).await;
        let reset = event(
            &format!("reset-{user}"),
            now - chrono::Duration::minutes(30),
            "user.mfa.factor.reset_all",
            user,
            9999,
            "10.0.0.1",
            "France",
        );
        post(&http, &url, &[reset]).await;
        let before = findings_in(&siem);
        let enroll = event(
            &format!("enroll-{user}"),
            now - chrono::Duration::minutes(10),
            "user.mfa.factor.activate",
            user,
            user,
            "185.220.101.4",
            "Romania",
        );
        let t = Instant::now();
        post(&http, &url, &[enroll]).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while findings_in(&siem) == before {
            assert!(Instant::now() < deadline, "no finding within 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(t.elapsed());
    }
    daemon.stop().await;
    sim.stop().await;
    times.sort();
    let p =
        |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    println!();
    println!(
        "== detection latency: the takeover's last event POSTed by Event Hook → the finding in the SIEM file =="
    );
    println!(
        "{runs} takeovers: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (the file sink fsyncs; polled every 1 ms)",
        p(0.5),
        p(0.99),
        p(1.0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
