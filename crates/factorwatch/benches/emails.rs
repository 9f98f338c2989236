//! A bulk admin reset of 10,000 users, each becoming an email to a local SMTP server: emails/s,
//! peak memory, time to drain. The users' addresses come from `okta-sim`'s Users API (with its
//! rate limit lifted: at Okta's published 2,000 lookups a minute, Okta sets the pace).
//!
//! Needs python3 with aiosmtpd (a local SMTP server that accepts and discards).
//! `cargo bench -p factorwatch --bench emails` (`FACTORWATCH_BENCH_EMAILS` sets the count).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use factorwatch::backoff::Backoff;
use factorwatch::email::templates::Templates;
use factorwatch::email::transport::{Security, SmtpSettings, Transport};
use factorwatch::email::{EmailDestination, EmailSettings};
use factorwatch::enrich::Enricher;
use factorwatch::okta::client::auth::Credentials;
use factorwatch::okta::client::{OktaClient, RetryPolicy};
use factorwatch::pipeline::ingest::Ingest;
use factorwatch::pipeline::route::Routing;
use factorwatch::pipeline::worker::{self, WorkerPolicy};
use factorwatch::secret::Secret;
use factorwatch::store::sqlite::SqliteStore;
use factorwatch::store::{SourceKind, Store};
use okta_sim::server::{Local, RateLimits};
use serde_json::json;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let n: usize = std::env::var("FACTORWATCH_BENCH_EMAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut smtp = Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Sink",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
    std::thread::sleep(Duration::from_millis(800));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let limits = RateLimits { user_get: u32::MAX, users: u32::MAX, ..RateLimits::default() };
        let sim = Local::start("bench", limits, 1).await.unwrap();
        let users: Vec<_> = (0..n)
            .map(|i| json!({ "id": format!("00u{i:017}"), "profile": { "login": format!("user{i}@example.com"), "email": format!("user{i}@mail.example.com"), "firstName": format!("User{i}") } }))
            .collect();
        sim.org.upsert_users(users).unwrap();
        let events: Vec<_> = (0..n)
            .map(|i| json!({
                "uuid": format!("reset{i:07}"), "eventType": "user.mfa.factor.reset_all", "published": "2026-11-25T10:00:00.000Z",
                "actor": { "id": "00uadmin", "type": "User", "alternateId": "admin@example.com", "displayName": "Jane Admin" },
                "target": [{ "id": format!("00u{i:017}"), "type": "User", "alternateId": format!("user{i}@example.com") }],
                "outcome": { "result": "SUCCESS" },
                "client": { "ipAddress": "203.0.113.7" },
            }))
            .collect();
        let ingest = Ingest { classifier: Default::default(), routing: Routing { siem: vec![], email: Some("email".into()), notify_third_party: false, email_actions: None, security: vec![] }, detections: None };
        let batch = ingest.batch(SourceKind::SystemLog, &serde_json::Value::Array(events).to_string(), None);
        let dir = std::env::temp_dir().join(format!("fw-bench-emails-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
        store.commit("acme", &batch, chrono::Utc::now()).await.unwrap();
        let client = Arc::new(OktaClient::new(&sim.base, Credentials::Ssws(Secret::new("bench")), RetryPolicy::default()).unwrap());
        let enrichers = HashMap::from([("acme".to_owned(), Arc::new(Enricher::new(client, Duration::from_secs(60))))]);
        let transport = if std::env::var_os("BENCH_FILES").is_some() { Transport::files(dir.join("mail")).unwrap() } else { Transport::smtp(SmtpSettings {
            host: "127.0.0.1".into(), port, security: Security::None, credentials: None, ca_pem: None,
            timeout: Duration::from_secs(10), pool_size: 8, rate: 0.0,
        })
        .unwrap() };
        let settings = EmailSettings { from: "Security <security@example.com>".parse().unwrap(), second_email: false, help: "call x1234".into(), suppress: vec![], hourly_cap: None,
        coalesce: Duration::ZERO,
        skip_when_okta_notified: false,
        previous_address_window: Duration::ZERO, concurrency: std::env::var("BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(8), detections: false, links: None };
        let destination = EmailDestination::new("email", store.clone(), settings, Templates::new(None, "en"), enrichers, transport);
        let policy = WorkerPolicy { max_attempts: 5, backoff: Backoff { base: Duration::from_millis(50), cap: Duration::from_millis(500) }, idle_poll: Duration::from_millis(5) };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let task = tokio::spawn(worker::run(store.clone(), Arc::new(destination), policy, Default::default(), stopped));
        loop {
            let s = store.stats().await.unwrap();
            if s.outbox.first().is_some_and(|(_, d, p, x)| *d + *x == n as u64 && *p == 0) {
                let secs = started.elapsed().as_secs_f64();
                println!("{n} emails (bulk admin reset) drained in {secs:.1} s: {:.0} emails/s; {} dead; peak RSS {:.0} MiB (okta-sim in the same process)", n as f64 / secs, s.outbox[0].3, rss_mib());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = stop.send(true);
        task.await.unwrap();
    });
    let _ = smtp.kill();
    let _ = smtp.wait();
}
