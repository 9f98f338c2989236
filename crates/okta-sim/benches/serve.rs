//! How fast okta-sim serves a large System Log: 1,000,000 generated events (2% MFA changes)
//! polled through `/api/v1/logs?limit=1000` by a client on the same machine, following `next`
//! links; once unfiltered, once with the server-side MFA filter factorwatch uses.
//!
//! `cargo bench -p okta-sim --bench serve` (set `OKTA_SIM_BENCH_EVENTS` for another size).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use okta_sim::scenario::{Generator, Scenario};
use okta_sim::server::{self, RateLimits, generate};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn poll_all(http: &reqwest::Client, base: &str, filter: Option<&str>) -> (u64, u64, u64) {
    let mut url = format!("{base}/api/v1/logs?limit=1000");
    if let Some(f) = filter {
        url.push_str("&filter=");
        url.extend(form_urlencoded::byte_serialize(f.as_bytes()));
    }
    let (mut events, mut bytes, mut pages) = (0u64, 0u64, 0u64);
    loop {
        let r = http
            .get(&url)
            .header("Authorization", "SSWS bench")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let next = r
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|l| l.ends_with("rel=\"next\""))
            .map(|l| {
                l.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .unwrap();
        let body = r.bytes().await.unwrap();
        pages += 1;
        // Count events by their uuid key: the client does not pay for a full parse here.
        let n = memchr_count(&body, b"\"uuid\":");
        if n == 0 {
            return (events, bytes, pages);
        }
        events += n;
        bytes += body.len() as u64;
        url = next;
    }
}

fn memchr_count(hay: &[u8], needle: &[u8]) -> u64 {
    hay.windows(needle.len()).filter(|w| *w == needle).count() as u64
}

fn main() {
    let n: u64 = std::env::var("OKTA_SIM_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let limits = RateLimits { logs: u32::MAX, ..RateLimits::default() };
        let local = server::Local::start("bench", limits, 1).await.unwrap();
        let (org, base) = (local.org.clone(), local.base.clone());
        let before = rss_mib();
        let started = Instant::now();
        let mut generator = Generator::new(Scenario::Steady, 1, 1000, 0.02).unwrap();
        generate::backlog(&org, &mut generator, n, chrono::Duration::hours(72)).unwrap();
        let generated = started.elapsed();
        let stored = org.with_log(|l| l.events().iter().map(|e| e.text.len()).sum::<usize>()).unwrap();
        println!(
            "generated {n} events in {:.1} s ({:.0} events/s); log text {:.0} MiB; RSS +{:.0} MiB",
            generated.as_secs_f64(),
            n as f64 / generated.as_secs_f64(),
            stored as f64 / 1048576.0,
            rss_mib() - before
        );
        let http = reqwest::Client::new();
        let mfa = r#"eventType sw "user.mfa.factor." or eventType eq "user.mfa.attempt_bypass""#;
        for (label, filter) in [("unfiltered", None), ("MFA filter", Some(mfa))] {
            let started = Instant::now();
            let (events, bytes, pages) = poll_all(&http, &base, filter).await;
            let s = started.elapsed().as_secs_f64();
            println!(
                "{label}: {events} events in {pages} pages, {s:.2} s: {:.0} events/s, {:.0} MiB/s, {:.1} ms/page",
                events as f64 / s,
                bytes as f64 / 1048576.0 / s,
                s * 1000.0 / pages as f64
            );
        }
    });
}
