//! The crash test: the real `factorwatch run` binary, fed a few thousand MFA changes by poll and by
//! hook, killed with SIGKILL at random moments and restarted. Afterwards every change is in the
//! SIEM file at least once, and every change that notifies produced its email — at most one
//! duplicate per kill; and a help-desk takeover fed in the middle of it is found exactly once (stored
//! once, in the SIEM at least once). The figures are printed (`cargo test --test crash --
//! --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use factorwatch::store::Store;
use factorwatch::store::sqlite::SqliteStore;
use okta_sim::server::RateLimits;
use rand::{Rng, SeedableRng};
use serde_json::json;

const CHANGES: usize = 3000;
const KILLS: usize = 12;
const USERS: usize = 25;
/// Emails in flight by default: a crash repeats at most these.
const EMAILS_IN_FLIGHT: usize = factorwatch::config::DEFAULT_EMAIL_CONCURRENCY as usize;
/// The file sink's batch: a crash between writing a batch and marking it repeats at most it.
const SIEM_BATCH: usize = 100;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(config: &std::path::Path, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["run", "--config"])
        .arg(config)
        .env("TEST_OKTA_TOKEN", common::TOKEN)
        .env("TEST_HOOK_SECRET", common::HOOK_SECRET)
        .env("FACTORWATCH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn wait_listening(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("factorwatch did not start listening on {port}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_loses_nothing_and_repeats_at_most_what_was_in_flight() {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("crash test seed {seed} (CRASH_SEED={seed} replays the kill timings)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let sim = common::sim(RateLimits::default()).await;
    sim.users(USERS + 1).await;
    // The takeover's victim (user USERS) signed in from home on five days before the test.
    let now = chrono::Utc::now();
    let baseline: Vec<_> = (1..=5)
        .rev()
        .map(|d| {
            takeover_event(
                &format!("home-{d}"),
                now - chrono::Duration::days(d),
                "user.session.start",
                USERS,
                "198.51.100.20",
                "France",
            )
        })
        .collect();
    sim.control("/sim/events?late=true", json!(baseline)).await;
    let dir = std::env::temp_dir().join(format!("fw-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let config = dir.join("factorwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
path = "{dir}/fw.db"
[[sinks]]
name = "file"
type = "file"
path = "{dir}/siem.ndjson"
batch_size = {batch}
[email]
dir = "{dir}/mail"
coalesce = "0s"
[hooks]
listen = "127.0.0.1:{port}"
[[orgs]]
name = "acme"
url = "{base}"
token_env = "TEST_OKTA_TOKEN"
[orgs.system_log]
since = "7d"
interval = "300ms"
[orgs.hook]
path = "/okta/acme"
secret_env = "TEST_HOOK_SECRET"
"#,
            dir = dir.display(),
            base = sim.base,
            batch = SIEM_BATCH,
        ),
    )
    .unwrap();
    let log = dir.join("factorwatch.log");
    let mut child = start(&config, &log);
    wait_listening(port).await;
    sim.control(
        "/sim/hooks",
        json!({ "url": format!("http://127.0.0.1:{port}/okta/acme"),
                "auth_header": { "name": "Authorization", "value": common::HOOK_SECRET } }),
    )
    .await;

    // Feed the changes over the whole kill period.
    let feeder = {
        let base = sim.base.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for (n, chunk) in (0..CHANGES).collect::<Vec<_>>().chunks(25).enumerate() {
                // Half way: the help desk resets the victim's factors, and the attacker enrolls a
                // phone from abroad.
                if n == CHANGES / 50 {
                    let t = chrono::Utc::now();
                    let takeover = vec![
                        takeover_event(
                            "takeover-reset",
                            t,
                            "user.mfa.factor.reset_all",
                            USERS,
                            "10.1.2.3",
                            "France",
                        ),
                        takeover_event(
                            "takeover-enroll",
                            t + chrono::Duration::seconds(1),
                            "user.mfa.factor.activate",
                            USERS,
                            "185.220.101.4",
                            "Romania",
                        ),
                    ];
                    let r = http
                        .post(format!("{base}/sim/events"))
                        .header("Content-Type", "application/json")
                        .body(json!(takeover).to_string())
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                }
                let events: Vec<_> = chunk
                    .iter()
                    .map(|&i| common::mfa_event(&format!("c{i:05}"), i, USERS))
                    .collect();
                let r = http
                    .post(format!("{base}/sim/events"))
                    .header("Content-Type", "application/json")
                    .body(json!(events).to_string())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
        })
    };

    let started = Instant::now();
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..1000))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        child = start(&config, &log);
    }
    feeder.await.unwrap();

    // Let the last run catch up, reading the store as an operator would.
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    common::eventually(90, "the last run caught up", async || {
        let s = store.stats().await.unwrap();
        // The changes, and the takeover's two.
        s.changes as usize == CHANGES + 2 && s.oldest_pending.is_none()
    })
    .await;
    let elapsed = started.elapsed();
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let exit = child.wait().unwrap();

    common::eventually(30, "the takeover was found", async || {
        store.stats().await.unwrap().findings >= 1
    })
    .await;
    let siem = common::siem_ids(&dir.join("siem.ndjson"));
    let mut siem_count: HashMap<&str, usize> = HashMap::new();
    for id in &siem {
        *siem_count.entry(id.as_str()).or_default() += 1;
    }
    let findings_in_siem = std::fs::read_to_string(dir.join("siem.ndjson"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""rule":"reset_then_enroll_new_place""#))
        .count();
    let missing_siem: Vec<String> = (0..CHANGES)
        .map(|i| format!("c{i:05}"))
        .filter(|id| !siem_count.contains_key(id.as_str()))
        .collect();
    let emails = common::emails(&dir.join("mail"));
    let mut email_count: HashMap<&str, usize> = HashMap::new();
    for (id, _) in &emails {
        *email_count.entry(id.as_str()).or_default() += 1;
    }
    let expected: Vec<String> = (0..CHANGES)
        .filter(|i| common::notifies(*i))
        .map(|i| {
            factorwatch::email::message_id(
                "acme",
                &format!("c{i:05}"),
                &format!("user{}@mail.example.com", i % USERS),
            )
        })
        .collect();
    // The victim's own notices (the reset, the enrollment) are expected too, beside the changes'.
    let takeover_emails: Vec<String> = ["takeover-reset", "takeover-enroll"]
        .iter()
        .map(|id| {
            factorwatch::email::message_id("acme", id, &format!("user{USERS}@mail.example.com"))
        })
        .collect();
    let missing_email = expected
        .iter()
        .filter(|id| !email_count.contains_key(id.as_str()))
        .count();
    let duplicate_emails: usize = email_count.values().map(|n| n - 1).sum();
    let unexpected_emails = email_count
        .keys()
        .filter(|id| !expected.iter().any(|e| e == *id))
        .filter(|id| !takeover_emails.contains(&id.to_string()))
        .count();
    let stats = store.stats().await.unwrap();
    let hook_seen = stats
        .sources
        .iter()
        .find(|s| s.source == "event_hook")
        .map_or(0, |s| s.events_seen);

    println!(
        "crash test: {CHANGES} MFA changes, {KILLS} SIGKILLs, {:.1} s; the hook brought {hook_seen} events, polling the rest\n\
         SIEM file: {} records, {} distinct, {} missing, {} duplicates (allowed: one batch of {SIEM_BATCH} per kill)\n\
         emails: {} expected, {} written, {} missing, {} duplicates (allowed: the {EMAILS_IN_FLIGHT} in flight per kill), {} unexpected\n\
         findings: {} stored, {findings_in_siem} in the SIEM file\n\
         last run stopped with {exit}",
        elapsed.as_secs_f64(),
        siem.len(),
        siem_count.len(),
        missing_siem.len(),
        siem.len() - siem_count.len(),
        expected.len(),
        emails.len(),
        missing_email,
        duplicate_emails,
        unexpected_emails,
        stats.findings,
    );
    assert_eq!(
        stats.findings, 1,
        "the takeover is stored once, whatever the kills"
    );
    assert!(
        (1..=KILLS + 1).contains(&findings_in_siem),
        "the finding reached the SIEM {findings_in_siem} times"
    );
    assert!(
        missing_siem.is_empty(),
        "lost from the SIEM: {:?}",
        &missing_siem[..missing_siem.len().min(10)]
    );
    let siem_duplicates = siem.len() - siem_count.len();
    assert!(
        siem_duplicates <= KILLS * SIEM_BATCH,
        "{siem_duplicates} duplicate SIEM records for {KILLS} kills: more than one batch per kill"
    );
    assert!(
        siem_count.values().all(|n| *n <= KILLS + 1),
        "a record repeated more often than there were kills"
    );
    assert_eq!(missing_email, 0, "emails lost");
    assert_eq!(unexpected_emails, 0);
    assert!(
        duplicate_emails <= KILLS * EMAILS_IN_FLIGHT,
        "{duplicate_emails} duplicate emails for {KILLS} kills: more than were in flight"
    );
    assert!(exit.success(), "SIGTERM stops cleanly");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An Okta event of the takeover: `kind` to user `user` (by themself, or for the reset by user 1,
/// the help desk), from `ip` in `country`.
fn takeover_event(
    uuid: &str,
    at: chrono::DateTime<chrono::Utc>,
    kind: &str,
    user: usize,
    ip: &str,
    country: &str,
) -> serde_json::Value {
    let person = |i: usize| json!({ "id": common::user_id(i), "type": "User", "alternateId": format!("user{i}@example.com") });
    let actor = if kind == "user.mfa.factor.reset_all" {
        1
    } else {
        user
    };
    json!({
        "uuid": uuid, "published": factorwatch::record::format_published(&at), "eventType": kind,
        "actor": person(actor), "target": [person(user)],
        "outcome": { "result": "SUCCESS", "reason": if kind == "user.mfa.factor.activate" { "User set up SMS_FACTOR factor" } else { "" } },
        "client": { "ipAddress": ip, "geographicalContext": { "country": country },
                    "userAgent": { "browser": "CHROME", "os": "Windows 10", "rawUserAgent": "x" } },
    })
}
