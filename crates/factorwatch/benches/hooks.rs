//! Event Hooks, measured on the real daemon (`Daemon::start`, as `factorwatch run` builds it):
//!
//! 1. Ingestion: Okta-shaped deliveries (okta-sim's envelope) POSTed to the receiver by
//!    `CONCURRENCY` senders; each is answered only once its events are committed to SQLite with
//!    fsync. Reports sustained events/s and the p50/p99 time to answer Okta (which waits 3 s).
//! 2. Hook to inbox: one MFA change per delivery, at a steady rate, through classification, the
//!    outbox, a Users API lookup (okta-sim) and SMTP to a local server in this process: p50/p99
//!    from the POST to the end of the SMTP DATA. Coalescing is off (its window, 2 min by
//!    default, is a deliberate wait, not latency).
//!
//! `cargo bench -p factorwatch --bench hooks`. Environment: `BENCH_HOOK_DELIVERIES` (2000),
//! `BENCH_HOOK_EVENTS` (events per delivery, 10), `BENCH_HOOK_CONCURRENCY` (16),
//! `BENCH_EMAILS` (200), `BENCH_EMAIL_RATE` (per second, 10), `BENCH_EMAIL_CONCURRENCY` (1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factorwatch::config::Config;
use factorwatch::daemon::Daemon;
use factorwatch::store::Store;
use okta_sim::hooks::delivery::envelope;
use okta_sim::server::{Local, RateLimits};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SECRET: &str = "bench-hook-secret";

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// An MFA change for `user`, shaped as the System Log has it.
fn mfa_event(uuid: &str, user: usize) -> String {
    json!({
        "uuid": uuid,
        "published": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "eventType": "user.mfa.factor.activate",
        "version": "0",
        "severity": "INFO",
        "displayMessage": "User set up factor",
        "legacyEventType": "core.user.factor.activate",
        "actor": { "id": format!("00u{user:017}"), "type": "User", "alternateId": format!("user{user}@example.com"), "displayName": format!("User {user}") },
        "client": { "ipAddress": "203.0.113.7", "userAgent": { "rawUserAgent": "Mozilla/5.0", "os": "Mac OS X", "browser": "CHROME" }, "geographicalContext": { "city": "Lyon", "country": "France" } },
        "outcome": { "result": "SUCCESS" },
        "target": [
            { "id": format!("00u{user:017}"), "type": "User", "alternateId": format!("user{user}@example.com"), "displayName": format!("User {user}") },
            { "id": format!("mbl{user:017}"), "type": "AuthenticatorEnrollment", "alternateId": "unknown", "displayName": "Okta Verify",
              "detailEntry": { "methodTypeUsed": "Push", "deviceName": "Gibson" } }
        ],
        "debugContext": { "debugData": { "factor": "PUSH", "factorIntent": "ENROLLMENT" } },
        "authenticationContext": { "externalSessionId": "102abc" },
        "transaction": { "type": "WEB", "id": "tx" }
    })
    .to_string()
}

fn config(
    dir: &std::path::Path,
    sim: &str,
    smtp_port: Option<u16>,
    concurrency: Option<usize>,
) -> Config {
    // The default unless the run sets one.
    let concurrency = concurrency.map_or(String::new(), |n| format!("concurrency = {n}"));
    let email = match smtp_port {
        Some(port) => format!(
            r#"[email]
enabled = true
from = "Security <security@example.com>"
transport = "smtp"
coalesce = "0s"
{concurrency}
[email.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
"#
        ),
        None => "[email]\nenabled = false\n".into(),
    };
    let text = format!(
        r#"[store]
path = "{db}"
[hooks]
listen = "127.0.0.1:0"
[[sinks]]
name = "file"
type = "file"
path = "{siem}"
{email}
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

async fn post(http: &reqwest::Client, url: &str, body: String) -> Duration {
    let started = Instant::now();
    let status = http
        .post(url)
        .header("Authorization", SECRET)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "the receiver refused a delivery");
    started.elapsed()
}

async fn ingestion(sim: &Local) {
    let deliveries = var("BENCH_HOOK_DELIVERIES", 2000);
    let per = var("BENCH_HOOK_EVENTS", 10);
    let concurrency = var("BENCH_HOOK_CONCURRENCY", 16);
    let dir = tempdir("ingest");
    let daemon = Daemon::start(&config(&dir, &sim.base, None, None), &env)
        .await
        .unwrap();
    let url = format!("http://{}/okta/acme", daemon.hook_addr.unwrap());
    // Built up front: the senders measure the receiver, not the building of bodies.
    let bodies: Vec<String> = (0..deliveries)
        .map(|d| {
            let events: Vec<String> = (0..per)
                .map(|e| mfa_event(&format!("h{d:06}-{e:03}"), d * per + e))
                .collect();
            let refs: Vec<&str> = events.iter().map(String::as_str).collect();
            envelope(
                &sim.base,
                "who",
                &format!("d{d}"),
                &refs,
                chrono::Utc::now(),
            )
        })
        .collect();
    let queue = Arc::new(Mutex::new(bodies));
    let http = reqwest::Client::new();
    let started = Instant::now();
    let senders: Vec<_> = (0..concurrency)
        .map(|_| {
            let (queue, http, url) = (queue.clone(), http.clone(), url.clone());
            tokio::spawn(async move {
                let mut times = Vec::new();
                loop {
                    let Some(body) = queue.lock().unwrap().pop() else {
                        return times;
                    };
                    times.push(post(&http, &url, body).await);
                }
            })
        })
        .collect();
    let mut times = Vec::new();
    for s in senders {
        times.extend(s.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    times.sort();
    let stored = daemon.store.stats().await.unwrap().changes;
    assert_eq!(stored, (deliveries * per) as u64, "every event is stored");
    println!(
        "hook ingestion: {deliveries} deliveries × {per} events from {concurrency} senders in {secs:.2} s: \
         {:.0} events/s ({:.0} deliveries/s), each committed (fsync) before 200; answer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        (deliveries * per) as f64 / secs,
        deliveries as f64 / secs,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
    );
    daemon.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A local SMTP server that accepts everything and notes when each recipient's message ended.
async fn smtp_sink(arrivals: Arc<Mutex<HashMap<String, Instant>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 bench ESMTP\r\n").await;
                let mut rcpt = Vec::new();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if in_data {
                        if line != "." {
                            continue;
                        }
                        in_data = false;
                        let now = Instant::now();
                        let mut a = arrivals.lock().unwrap();
                        for r in rcpt.drain(..) {
                            a.insert(r, now);
                        }
                        b"250 OK\r\n"
                    } else {
                        let upper = line.to_ascii_uppercase();
                        if upper.starts_with("EHLO") {
                            b"250-bench\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            rcpt.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                            b"250 OK\r\n"
                        } else if upper.starts_with("DATA") {
                            in_data = true;
                            b"354 go ahead\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 OK\r\n"
                        }
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

async fn hook_to_inbox(sim: &Local) {
    let n = var("BENCH_EMAILS", 1000);
    let rate = var("BENCH_EMAIL_RATE", 100).max(1);
    let concurrency = std::env::var("BENCH_EMAIL_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let users: Vec<_> = (0..n)
        .map(|i| json!({ "id": format!("00u{i:017}"), "profile": { "login": format!("user{i}@example.com"), "email": format!("user{i}@mail.example.com"), "firstName": format!("User{i}") } }))
        .collect();
    sim.org.upsert_users(users).unwrap();
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let port = smtp_sink(arrivals.clone()).await;
    let dir = tempdir("email");
    let daemon = Daemon::start(&config(&dir, &sim.base, Some(port), concurrency), &env)
        .await
        .unwrap();
    let url = format!("http://{}/okta/acme", daemon.hook_addr.unwrap());
    let http = reqwest::Client::new();
    let mut sent = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    for i in 0..n {
        tick.tick().await;
        let event = mfa_event(&format!("m{i:06}"), i);
        let body = envelope(
            &sim.base,
            "who",
            &format!("e{i}"),
            &[&event],
            chrono::Utc::now(),
        );
        sent.insert(format!("user{i}@mail.example.com"), Instant::now());
        post(&http, &url, body).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arrived = arrivals.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(to, at)| arrived.get(to).map(|got| got.duration_since(*at)))
        .collect();
    latencies.sort();
    assert_eq!(latencies.len(), n, "every email arrives");
    println!(
        "hook to inbox: {n} MFA changes at {rate}/s, email concurrency {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
         (POST → classify → store → detections → Users API lookup → render → SMTP DATA end)",
        concurrency.map_or_else(
            || format!(
                "{} (the default)",
                factorwatch::config::DEFAULT_EMAIL_CONCURRENCY
            ),
            |c| c.to_string()
        ),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
    daemon.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fw-bench-hooks-{what}-{}", std::process::id()));
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
        let limits = RateLimits {
            user_get: u32::MAX,
            users: u32::MAX,
            other: u32::MAX,
            ..RateLimits::default()
        };
        let sim = Local::start("bench", limits, 1).await.unwrap();
        ingestion(&sim).await;
        hook_to_inbox(&sim).await;
    });
}
