//! The daemon against the simulated Okta org: nothing lost, nothing handled twice, whatever Okta
//! does (late events, duplicates across pages and across poll/hook, 429s, 5xx, cut-off bodies),
//! and every bad input refused with a clear error and nothing stored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use factorwatch::backoff::Backoff;
use factorwatch::daemon::Daemon;
use factorwatch::store::sqlite::SqliteStore;
use factorwatch::store::{Batch, NewChange, SourceKind, Store};
use okta_sim::server::RateLimits;
use serde_json::json;

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fw-{name}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn changes(d: &Daemon) -> u64 {
    d.store.stats().await.unwrap().changes
}

/// Waits until the SIEM file holds `n` records and every email is written.
async fn delivered(d: &Daemon, n: usize) {
    let siem = d.siem_file.clone().unwrap();
    common::eventually(30, "every change delivered", async || {
        let stats = d.store.stats().await.unwrap();
        common::siem_ids(&siem).len() >= n
            && stats.oldest_pending.is_none()
            && stats.changes as usize >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn polls_every_change_once_including_late_ones() {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(5).await;
    let events: Vec<_> = (0..30)
        .map(|i| common::mfa_event(&format!("e{i}"), i, 5))
        .collect();
    sim.control("/sim/events", json!(events)).await;
    let dir = tempdir("late");
    let d = Daemon::start(&common::config(&dir, &sim.base, false), &common::env)
        .await
        .unwrap();
    delivered(&d, 30).await;

    // Persisted now, published two hours ago: a bounded query past it would miss it; polling must not.
    let mut late = common::mfa_event("late-one", 3, 5);
    late["published"] = json!((chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339());
    sim.control("/sim/events?late=true", json!([late])).await;
    delivered(&d, 31).await;

    let ids = common::siem_ids(d.siem_file.as_ref().unwrap());
    assert_eq!(ids.len(), 31, "each change once");
    assert!(ids.contains(&"late-one".to_owned()));
    let emails = common::emails(d.mail_dir.as_ref().unwrap());
    let expected = (0..30).filter(|i| common::notifies(*i)).count() + 1;
    assert_eq!(
        emails.len(),
        expected,
        "only Okta-owned factors of a user are emailed"
    );
    assert!(
        emails
            .iter()
            .all(|(_, to)| to.ends_with("@mail.example.com")),
        "to profile.email"
    );
    d.stop().await;
}

/// Several orgs live at once, their changes arriving together: their pollers' small commits
/// are stored together (one transaction for the batches handed over within the gathering
/// window), and every change of every org is stored under its own org and reaches the SIEM once.
#[tokio::test(flavor = "multi_thread")]
async fn several_live_orgs_store_every_change_once_under_its_own_org() {
    const ORGS: usize = 3;
    const ROUNDS: usize = 5;
    const PER_ROUND: usize = 4;
    let mut sims = Vec::new();
    for _ in 0..ORGS {
        let sim = common::sim(RateLimits::default()).await;
        sim.users(PER_ROUND).await;
        sims.push(sim);
    }
    let dir = tempdir("several-orgs");
    let mut config = common::config(&dir, &sims[0].base, false);
    let first = config.orgs[0].clone();
    config.orgs = sims
        .iter()
        .enumerate()
        .map(|(i, sim)| factorwatch::config::OrgConfig {
            name: format!("org{i}"),
            url: sim.base.clone(),
            ..first.clone()
        })
        .collect();
    let d = Daemon::start(&config, &common::env).await.unwrap();
    let id = |org: usize, round: usize, k: usize| format!("o{org}-r{round}-{k}");
    for round in 0..ROUNDS {
        for (org, sim) in sims.iter().enumerate() {
            let events: Vec<_> = (0..PER_ROUND)
                .map(|k| common::mfa_event(&id(org, round, k), k, PER_ROUND))
                .collect();
            sim.control("/sim/events", json!(events)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let all = ORGS * ROUNDS * PER_ROUND;
    delivered(&d, all).await;
    let ids = common::siem_ids(d.siem_file.as_ref().unwrap());
    assert_eq!(ids.len(), all, "each change once");
    for org in 0..ORGS {
        for round in 0..ROUNDS {
            for k in 0..PER_ROUND {
                let event = id(org, round, k);
                assert!(ids.contains(&event), "{event} never reached the SIEM");
                for other in 0..ORGS {
                    let stored = d
                        .store
                        .change(&format!("org{other}"), &event)
                        .await
                        .unwrap();
                    assert_eq!(stored.is_some(), other == org, "{event} under org{other}");
                }
            }
        }
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_across_pages_and_across_poll_and_hook_are_handled_once() {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(4).await;
    sim.control("/sim/faults", json!({ "endpoints": { "/api/v1/logs": { "duplicate_rate": 0.5 } }, "hooks": { "duplicate_rate": 1.0 } })).await;
    let dir = tempdir("dups");
    let d = Daemon::start(&common::config(&dir, &sim.base, true), &common::env)
        .await
        .unwrap();
    let hook = format!("http://{}/okta/acme", d.hook_addr.unwrap());
    sim.control("/sim/hooks", json!({ "url": hook, "auth_header": { "name": "Authorization", "value": common::HOOK_SECRET },
                                       "events": ["user.mfa.factor.activate"] })).await;
    for chunk in 0..4 {
        let events: Vec<_> = (chunk * 10..chunk * 10 + 10)
            .map(|i| common::mfa_event(&format!("d{i}"), i, 4))
            .collect();
        sim.control("/sim/events", json!(events)).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    delivered(&d, 40).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ids = common::siem_ids(d.siem_file.as_ref().unwrap());
    assert_eq!(ids.len(), 40, "no record twice: {}", ids.len());
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 40);
    let stats = d.store.stats().await.unwrap();
    let seen = |source: &str| {
        stats
            .sources
            .iter()
            .find(|s| s.source == source)
            .map_or(0, |s| s.events_seen)
    };
    assert!(seen("event_hook") > 0, "the hook delivered too");
    assert!(
        seen("event_hook") + seen("system_log") > 40,
        "events were read more than once, and stored once"
    );
    let emails = common::emails(d.mail_dir.as_ref().unwrap());
    assert_eq!(
        emails.len(),
        (0..40).filter(|i| common::notifies(*i)).count()
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_5xx_and_cut_off_bodies_lose_nothing() {
    // Two-second windows of 4 requests: the poller must wait out each 429.
    let sim = common::sim(RateLimits {
        logs: 4,
        window_secs: 2,
        ..RateLimits::default()
    })
    .await;
    sim.users(3).await;
    sim.control("/sim/faults", json!({ "endpoints": { "/api/v1/logs": { "error_rate": 0.25, "truncate_rate": 0.25, "burst_429": 2 },
                                                      "/api/v1/users": { "error_rate": 0.3 } } })).await;
    let events: Vec<_> = (0..24)
        .map(|i| common::mfa_event(&format!("r{i}"), i, 3))
        .collect();
    sim.control("/sim/events", json!(events)).await;
    let dir = tempdir("faults");
    let mut config = common::config(&dir, &sim.base, false);
    config.orgs[0].system_log.types = Some(vec![
        "user.mfa.factor.activate".into(),
        "system.mfa.factor.activate".into(),
    ]);
    let d = Daemon::start(&config, &common::env).await.unwrap();
    delivered(&d, 24).await;
    let ids = common::siem_ids(d.siem_file.as_ref().unwrap());
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 24);
    assert_eq!(ids.len(), 24);
    assert_eq!(
        common::emails(d.mail_dir.as_ref().unwrap()).len(),
        8,
        "failed user lookups were retried"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_once_reads_to_the_end_through_cut_off_pages_delivers_and_stops() {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(3).await;
    // Cut-off bodies now reach the poller (the client leaves page checking to it): each must be
    // fetched again, never committed in part.
    sim.control(
        "/sim/faults",
        json!({ "endpoints": { "/api/v1/logs": { "error_rate": 0.2, "truncate_rate": 0.4 } } }),
    )
    .await;
    let events: Vec<_> = (0..30)
        .map(|i| common::mfa_event(&format!("o{i}"), i, 3))
        .collect();
    sim.control("/sim/events", json!(events)).await;
    let dir = tempdir("once");
    let config = common::config(&dir, &sim.base, false);
    let d = Daemon::start_once(&config, &common::env).await.unwrap();
    let (siem, mail) = (d.siem_file.clone().unwrap(), d.mail_dir.clone().unwrap());
    let waiting = tokio::time::timeout(Duration::from_secs(60), d.finish(Duration::from_secs(30)))
        .await
        .expect("finish returns once caught up")
        .unwrap();
    assert_eq!(waiting, 0, "nothing left due");
    let ids = common::siem_ids(&siem);
    assert_eq!(ids.len(), 30, "each change delivered once");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 30);
    assert_eq!(common::emails(&mail).len(), 10);
    let rejects = SqliteStore::open(&config.store.path).await.unwrap();
    assert_eq!(
        rejects.stats().await.unwrap().rejects,
        0,
        "no page was committed cut off"
    );
    rejects.close().await;

    // The next run resumes from the stored cursor: nothing again, plus what is new.
    sim.control("/sim/events", json!([common::mfa_event("o-new", 0, 3)]))
        .await;
    let d = Daemon::start_once(&config, &common::env).await.unwrap();
    d.finish(Duration::from_secs(30)).await.unwrap();
    let ids = common::siem_ids(&siem);
    assert_eq!(ids.len(), 31);
    assert_eq!(ids.last().map(String::as_str), Some("o-new"));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_once_ends_when_a_destination_is_down_and_leaves_its_rows_for_the_next_run() {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(3).await;
    let events: Vec<_> = (0..3)
        .map(|i| common::mfa_event(&format!("down{i}"), i, 3))
        .collect();
    sim.control("/sim/events", json!(events)).await;
    let dir = tempdir("once-down");
    let mut config = common::config(&dir, &sim.base, false);
    config.email.enabled = false;
    let down: factorwatch::sinks::SinkConfig =
        toml::from_str("name = \"down\"\ntype = \"syslog\"\naddress = \"127.0.0.1:9\"\n").unwrap();
    config.sinks.push(down);
    let d = Daemon::start_once(&config, &common::env).await.unwrap();
    let siem = d.siem_file.clone().unwrap();
    let waiting = tokio::time::timeout(Duration::from_secs(30), d.finish(Duration::from_secs(2)))
        .await
        .expect("a destination that is down does not hold the run forever")
        .unwrap();
    assert_eq!(
        waiting, 3,
        "the down destination's rows wait, none dead-lettered"
    );
    assert_eq!(
        common::siem_ids(&siem).len(),
        3,
        "the working sink got everything"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_once_fails_when_okta_refuses_instead_of_waiting_forever() {
    let sim = common::sim(RateLimits::default()).await;
    let dir = tempdir("once-refused");
    let config = common::config(&dir, &sim.base, false);
    let env = |name: &str| (name == "TEST_OKTA_TOKEN").then(|| "not-the-token".to_owned());
    let d = Daemon::start_once(&config, &env).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), d.finish(Duration::from_secs(30)))
        .await
        .expect("finish gives up on a refusal")
        .unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("acme system_log") && err.contains("401"),
        "{err}"
    );
    assert!(!err.contains("not-the-token"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_hook_requests_are_refused_clearly_and_store_nothing() {
    let sim = common::sim(RateLimits::default()).await;
    let dir = tempdir("hookbad");
    let mut config = common::config(&dir, &sim.base, true);
    config.orgs[0].system_log.enabled = false;
    config.hooks.max_body_bytes = 64 * 1024;
    let d = Daemon::start(&config, &common::env).await.unwrap();
    let url = format!("http://{}/okta/acme", d.hook_addr.unwrap());
    let http = reqwest::Client::new();
    let envelope = json!({ "eventType": "com.okta.event_hook", "data": { "events": [common::mfa_event("h1", 0, 1)] } }).to_string();
    let post = |auth: Option<&str>, body: String| {
        let mut r = http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(a) = auth {
            r = r.header("Authorization", a.to_owned());
        }
        r.send()
    };
    let r = post(None, envelope.clone()).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = post(Some("hook-s3creT"), envelope.clone()).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = post(Some(common::HOOK_SECRET), "x".repeat(100 * 1024))
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = post(
        Some(common::HOOK_SECRET),
        "{\"data\": {\"events\": 3}}".into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text().await.unwrap().contains("data.events"),
        "the error says what is wrong"
    );
    let r = post(Some(common::HOOK_SECRET), "{not json".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let stats = d.store.stats().await.unwrap();
    assert_eq!((stats.changes, stats.rejects), (0, 0), "nothing stored");

    // The verification GET is answered to a caller with the secret only (Okta sends it on
    // the verification too); a good delivery is stored before 200.
    let r = http
        .get(&url)
        .header("x-okta-verification-challenge", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a verification without the secret");
    let r = http
        .get(&url)
        .header("x-okta-verification-challenge", "abc")
        .header("Authorization", common::HOOK_SECRET)
        .send()
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(answer, json!({ "verification": "abc" }));
    let r = post(Some(common::HOOK_SECRET), envelope).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(changes(&d).await, 1, "committed before the answer");
    d.stop().await;
}

/// A polled page holding exactly these changes, without a cursor.
fn polled(changes: Vec<NewChange>) -> Batch {
    Batch {
        source: SourceKind::SystemLog,
        events_seen: changes.len() as u64,
        changes,
        rejects: vec![],
        newest_published: None,
        cursor: None,
        context: Vec::new(),
        signals: Vec::new(),
    }
}

fn change(id: &str, raw_len: usize) -> NewChange {
    NewChange {
        event_id: id.into(),
        event_type: "user.mfa.factor.activate".into(),
        action: "enrolled".into(),
        published: None,
        user_id: None,
        record: format!("{{\"id\":\"{id}\"}}"),
        raw: "x".repeat(raw_len),
        destinations: vec!["siem:file".into()],
    }
}

#[tokio::test]
async fn a_full_disk_is_a_clear_error_and_keeps_nothing_half_written() {
    let dir = tempdir("full");
    let store = SqliteStore::open_with(&dir.join("fw.db"), Some(64))
        .await
        .unwrap();
    let batch = |ids: std::ops::Range<usize>, size: usize| Batch {
        source: SourceKind::SystemLog,
        changes: ids.map(|i| change(&format!("c{i}"), size)).collect(),
        rejects: vec![],
        events_seen: 1,
        newest_published: None,
        cursor: Some("https://o/api/v1/logs?after=1".into()),
        context: Vec::new(),
        signals: Vec::new(),
    };
    store
        .commit("acme", &batch(0..2, 100), chrono::Utc::now())
        .await
        .unwrap();
    let e = store
        .commit("acme", &batch(2..200, 4096), chrono::Utc::now())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("full"), "{e}");
    assert!(
        e.to_string().contains("nothing of this batch was stored"),
        "{e}"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.changes, 2, "the failed batch left nothing behind");
    assert_eq!(
        store
            .cursor("acme", SourceKind::SystemLog)
            .await
            .unwrap()
            .as_deref(),
        Some("https://o/api/v1/logs?after=1")
    );
}

#[tokio::test]
async fn an_unusable_database_path_is_named_in_the_error() {
    let dir = tempdir("ro");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let mut config = common::config(&dir, "http://127.0.0.1:9", false);
    config.store.path = file.join("fw.db");
    let e = Daemon::start(&config, &common::env).await.err().unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("cannot open the database") && msg.contains("not-a-dir"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_delivery_the_store_cannot_take_is_answered_500_for_okta_to_retry() {
    use factorwatch::pipeline::ingest::Ingest;
    use factorwatch::pipeline::route::Routing;
    use factorwatch::secret::Secret;
    use factorwatch::sources::hook::{self, HookConfig};

    let dir = tempdir("hookfull");
    let store = SqliteStore::open_with(&dir.join("fw.db"), Some(64))
        .await
        .unwrap();
    // Fill the capped database to the brim.
    let mut i = 0;
    loop {
        let batch = Batch {
            source: SourceKind::EventHook,
            changes: vec![change(&format!("fill{i}"), 4096)],
            rejects: vec![],
            events_seen: 1,
            newest_published: None,
            cursor: None,
            context: Vec::new(),
            signals: Vec::new(),
        };
        if store
            .commit("acme", &batch, chrono::Utc::now())
            .await
            .is_err()
        {
            break;
        }
        i += 1;
    }
    let before = store.stats().await.unwrap().changes;
    let ingest = std::sync::Arc::new(Ingest {
        classifier: Default::default(),
        routing: Routing {
            siem: vec![("siem:file".into(), None)],
            email: None,
            notify_third_party: false,
            email_actions: None,
            security: vec![],
            email_after: std::time::Duration::ZERO,
        },
        detections: None,
    });
    let app = hook::router(
        "/okta/acme",
        HookConfig {
            org: "acme".into(),
            auth_header: "authorization".into(),
            secret: Secret::new(common::HOOK_SECRET),
            max_body: 1 << 20,
        },
        store.clone(),
        ingest,
        std::sync::Arc::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/okta/acme", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let events: Vec<_> = (0..20)
        .map(|i| common::mfa_event(&format!("f{i}"), 0, 1))
        .collect();
    let body =
        json!({ "eventType": "com.okta.event_hook", "data": { "events": events } }).to_string();
    let r = reqwest::Client::new()
        .post(&url)
        .header("Authorization", common::HOOK_SECRET)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        500,
        "not 200: Okta must retry, polling reconciles"
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains("could not store the events") && text.contains("full"),
        "{text}"
    );
    assert_eq!(
        store.stats().await.unwrap().changes,
        before,
        "nothing half-stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_legacy_events_api_is_polled_with_the_same_cursor_discipline() {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(3).await;
    let legacy_event = |i: usize| {
        let mut e = common::mfa_event(&format!("l{i}"), 0, 3);
        e["legacyEventType"] = json!("core.user.factor.activate");
        e
    };
    sim.control(
        "/sim/events",
        json!((0..5).map(legacy_event).collect::<Vec<_>>()),
    )
    .await;
    let dir = tempdir("legacy");
    let mut config = common::config(&dir, &sim.base, false);
    config.orgs[0].system_log.enabled = false;
    config.orgs[0].events_api.enabled = true;
    config.orgs[0].events_api.interval = Duration::from_millis(200);
    let d = Daemon::start(&config, &common::env).await.unwrap();
    delivered(&d, 5).await;
    sim.control(
        "/sim/events",
        json!((5..8).map(legacy_event).collect::<Vec<_>>()),
    )
    .await;
    delivered(&d, 8).await;
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(d.siem_file.as_ref().unwrap())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    assert!(
        lines
            .iter()
            .all(|r| r["source"] == "events_api" && r["id"].as_str().unwrap().starts_with("tev"))
    );
    let cursor = d
        .store
        .cursor("acme", SourceKind::EventsApi)
        .await
        .unwrap()
        .unwrap();
    assert!(
        cursor.contains("/api/v1/events?") && cursor.contains("after=tev"),
        "{cursor}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hook_deliveries_under_load_are_all_committed_and_answered_within_okta_s_3_s() {
    let sim = common::sim(RateLimits::default()).await;
    let dir = tempdir("hookload");
    let mut config = common::config(&dir, &sim.base, true);
    config.orgs[0].system_log.enabled = false;
    config.email.enabled = false;
    let d = Daemon::start(&config, &common::env).await.unwrap();
    let url = format!("http://{}/okta/acme", d.hook_addr.unwrap());
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let posts: Vec<_> = (0..200)
        .map(|n| {
            let events: Vec<_> = (0..10)
                .map(|i| common::mfa_event(&format!("load{n}-{i}"), i, 5))
                .collect();
            let body = json!({ "eventType": "com.okta.event_hook", "data": { "events": events } })
                .to_string();
            let request = http
                .post(&url)
                .header("Authorization", common::HOOK_SECRET)
                .body(body);
            tokio::spawn(async move {
                let t = std::time::Instant::now();
                let status = request.send().await.unwrap().status();
                (status, t.elapsed())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for p in posts {
        let (status, took) = p.await.unwrap();
        assert_eq!(status, 200);
        slowest = slowest.max(took);
    }
    assert!(
        slowest < Duration::from_secs(3),
        "slowest answer {slowest:?}"
    );
    assert_eq!(changes(&d).await, 2000, "all committed before their 200");
    println!(
        "200 concurrent hook deliveries of 10 events: all answered in {:?} (slowest {slowest:?})",
        started.elapsed()
    );
    d.stop().await;
}

/// A destination that refuses everything, for the dead-letter path.
struct Refusing;

impl factorwatch::pipeline::worker::Destination for Refusing {
    fn name(&self) -> &str {
        "siem:file"
    }
    async fn deliver(
        &self,
        rows: &[factorwatch::store::Due],
    ) -> Vec<factorwatch::pipeline::worker::Outcome> {
        rows.iter()
            .map(|_| factorwatch::pipeline::worker::Outcome::Retry("SIEM down".into()))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_deliveries_are_retried_then_dead_lettered_visibly_and_can_be_re_driven() {
    use factorwatch::pipeline::worker::{self, WorkerPolicy};

    let dir = tempdir("dead");
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let batch = polled(vec![change("c1", 10), change("c2", 10)]);
    store
        .commit("acme", &batch, chrono::Utc::now())
        .await
        .unwrap();
    let policy = WorkerPolicy {
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(20),
        },
        idle_poll: Duration::from_millis(10),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        store.clone(),
        std::sync::Arc::new(Refusing),
        policy,
        Default::default(),
        stopped,
    ));
    common::eventually(10, "both rows dead", async || {
        store.dead_letters(None).await.unwrap().len() == 2
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    let dead = store.dead_letters(Some("siem:file")).await.unwrap();
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("SIEM down"));
    assert_eq!(
        store.stats().await.unwrap().outbox,
        vec![("siem:file".to_owned(), 0, 0, 2)]
    );
    // Re-driven, they are due again, from scratch.
    assert_eq!(
        store
            .redrive(&[dead[0].id, dead[1].id], chrono::Utc::now())
            .await
            .unwrap(),
        2
    );
    let due = store
        .due("siem:file", 10, chrono::Utc::now(), true)
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].attempts, 0);
}

/// A destination that takes batches of 2 with 6 rows under way: each delivery waits until the
/// others under way fill the 6 (or every row has come), so overlapping batches show.
#[derive(Default)]
struct UnderWay {
    under_way: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    delivered: std::sync::Mutex<Vec<i64>>,
}

struct Overlapping(std::sync::Arc<UnderWay>);

impl factorwatch::pipeline::worker::Destination for Overlapping {
    fn name(&self) -> &str {
        "siem:file"
    }
    fn batch_size(&self) -> u32 {
        2
    }
    fn in_flight(&self) -> u32 {
        6
    }
    async fn deliver(
        &self,
        rows: &[factorwatch::store::Due],
    ) -> Vec<factorwatch::pipeline::worker::Outcome> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.0.under_way.fetch_add(rows.len(), SeqCst) + rows.len();
        self.0.most.fetch_max(now, SeqCst);
        self.0
            .delivered
            .lock()
            .unwrap()
            .extend(rows.iter().map(|r| r.id));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.0.under_way.load(SeqCst) < 6
            && self.0.delivered.lock().unwrap().len() < 20
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.0.under_way.fetch_sub(rows.len(), SeqCst);
        rows.iter()
            .map(|_| factorwatch::pipeline::worker::Outcome::Delivered)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_s_batches_overlap_up_to_its_rows_in_flight_each_row_once() {
    use factorwatch::pipeline::worker::{self, WorkerPolicy};

    let dir = tempdir("overlap");
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let batch = polled((0..20).map(|i| change(&format!("c{i}"), 10)).collect());
    store
        .commit("acme", &batch, chrono::Utc::now())
        .await
        .unwrap();
    let destination = std::sync::Arc::new(UnderWay::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        store.clone(),
        std::sync::Arc::new(Overlapping(destination.clone())),
        WorkerPolicy {
            idle_poll: Duration::from_millis(10),
            ..WorkerPolicy::default()
        },
        Default::default(),
        stopped,
    ));
    common::eventually(10, "every row marked delivered", async || {
        store.stats().await.unwrap().outbox == vec![("siem:file".to_owned(), 20, 0, 0)]
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    // Three batches of 2 were under way at once, never more rows than 6.
    assert_eq!(
        destination.most.load(std::sync::atomic::Ordering::SeqCst),
        6
    );
    // Each row delivered once: a batch under way is not taken again by the next.
    let delivered = destination.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 20, "{delivered:?}");
    assert_eq!(delivered.iter().collect::<HashSet<_>>().len(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn several_sinks_each_get_their_format_and_their_actions() {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(3).await;
    let events: Vec<_> = (0..9)
        .map(|i| common::mfa_event(&format!("m{i}"), i, 3))
        .collect();
    sim.control("/sim/events", json!(events)).await;
    let dir = tempdir("multisink");
    let mut config = common::config(&dir, &sim.base, false);
    let mut cef =
        factorwatch::sinks::SinkConfig::file("cef", &dir.join("cef.log").display().to_string());
    cef.format = Some(factorwatch::formats::Format::Cef);
    let mut org_only =
        factorwatch::sinks::SinkConfig::file("org", &dir.join("org.log").display().to_string());
    org_only.format = Some(factorwatch::formats::Format::parse("ocsf").unwrap());
    org_only.actions = Some(vec![factorwatch::record::Action::OrgFactorEnabled]);
    config.sinks.push(cef);
    config.sinks.push(org_only);
    let d = Daemon::start(&config, &common::env).await.unwrap();
    delivered(&d, 9).await;
    common::eventually(10, "all sinks done", async || {
        d.store.stats().await.unwrap().oldest_pending.is_none()
    })
    .await;
    let cef = std::fs::read_to_string(dir.join("cef.log")).unwrap();
    assert_eq!(cef.lines().count(), 9);
    assert!(
        cef.lines()
            .all(|l| factorwatch::formats::cef::parse(l).is_ok())
    );
    let org = std::fs::read_to_string(dir.join("org.log")).unwrap();
    assert_eq!(org.lines().count(), 3, "only the org-wide changes");
    assert!(
        org.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["activity_id"] == 99)
    );
    d.stop().await;
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_health_and_readiness_are_served() {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(2).await;
    sim.control(
        "/sim/events",
        json!(
            (0..6)
                .map(|i| common::mfa_event(&format!("x{i}"), i, 2))
                .collect::<Vec<_>>()
        ),
    )
    .await;
    let dir = tempdir("metrics");
    let mut config = common::config(&dir, &sim.base, true);
    // Counters are per process, and other tests run daemons for "acme" in this one.
    config.orgs[0].name = "acme-metrics".into();
    config.observability.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    config.observability.lag_alarm = Some(Duration::from_secs(3600));
    let d = Daemon::start(&config, &common::env).await.unwrap();
    delivered(&d, 6).await;
    let hook = format!("http://{}/okta/acme", d.hook_addr.unwrap());
    let http = reqwest::Client::new();
    for secret in [common::HOOK_SECRET, "wrong"] {
        let delivery = json!({ "eventType": "com.okta.event_hook", "data": { "events": [] } });
        http.post(&hook)
            .header("Authorization", secret)
            .body(delivery.to_string())
            .send()
            .await
            .unwrap();
    }
    let base = format!("http://{}", d.metrics_addr.unwrap());
    let get = |path: &str| http.get(format!("{base}{path}")).send();
    let r = get("/metrics").await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("factorwatch_changes 6"), "{text}");
    assert!(
        text.contains(
            "factorwatch_events_read_total{org=\"acme-metrics\",source=\"system_log\"} 6"
        )
    );
    assert!(
        text.contains("factorwatch_outbox_rows{destination=\"siem:file\",state=\"delivered\"} 6")
    );
    assert!(text.contains("factorwatch_lag_alarm 0"));
    let org = "org=\"acme-metrics\"";
    for (status, n) in [("status=\"200\"", 1.0), ("status=\"401\"", 1.0)] {
        assert_eq!(
            sample(&text, "factorwatch_hook_requests_total", &[org, status]),
            Some(n),
            "{text}"
        );
    }
    let logs = "bucket=\"logs\"";
    let limit = sample(&text, "factorwatch_okta_rate_limit_limit", &[org, logs]);
    let left = sample(&text, "factorwatch_okta_rate_limit_remaining", &[org, logs]);
    assert_eq!(limit, Some(f64::from(RateLimits::default().logs)), "{text}");
    assert!(left.is_some_and(|l| l < limit.unwrap_or(0.0)), "{text}");
    assert!(
        sample(
            &text,
            "factorwatch_okta_requests_total",
            &[org, logs, "status=\"200\""]
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "factorwatch_deliveries_total",
            &["destination=\"siem:file\"", "outcome=\"delivered\""]
        )
        .is_some_and(|n| n >= 6.0),
        "{text}"
    );
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_passes_what_works_and_names_what_does_not() {
    // Okta's default per-token share: half of each bucket, reported as the token's ceiling.
    let sim = common::sim(RateLimits {
        token_share: 50,
        ..RateLimits::default()
    })
    .await;
    let dir = tempdir("check");
    let mut config = common::config(&dir, &sim.base, false);
    let checks = factorwatch::commands::check::run(&config, &common::env).await;
    let mut table = Vec::new();
    assert!(
        factorwatch::commands::check::print(&checks, &mut table).unwrap(),
        "{}",
        String::from_utf8_lossy(&table)
    );
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains("PASS  okta acme")
            && table.contains("this token may make 60 requests a minute to /api/v1/logs"),
        "{table}"
    );
    assert!(table.contains("PASS  sink file") && table.contains("PASS  email"));

    config.orgs[0].token_env = Some("NOT_SET".into());
    let closed: factorwatch::sinks::SinkConfig =
        toml::from_str("name = \"tcp\"\ntype = \"syslog\"\naddress = \"127.0.0.1:9\"\n").unwrap();
    config.sinks.push(closed);
    let checks = factorwatch::commands::check::run(&config, &common::env).await;
    let mut table = Vec::new();
    assert!(!factorwatch::commands::check::print(&checks, &mut table).unwrap());
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains("FAIL  okta acme") && table.contains("NOT_SET"),
        "{table}"
    );
    assert!(table.contains("FAIL  sink tcp"), "{table}");

    // Every kind of destination gets a real check: nothing unreachable passes.
    let mut config = common::config(&dir, &sim.base, false);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let udp_closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (name, kind, key, value) in [
        (
            "hook",
            "webhook",
            "url",
            format!("http://127.0.0.1:{closed}/in"),
        ),
        (
            "udp",
            "syslog",
            "address",
            format!("127.0.0.1:{udp_closed}"),
        ),
    ] {
        let mut sink: factorwatch::sinks::SinkConfig = toml::from_str(&format!(
            "name = \"{name}\"\ntype = \"{kind}\"\n{key} = \"{value}\"\n{}",
            if kind == "syslog" {
                "transport = \"udp\""
            } else {
                ""
            }
        ))
        .unwrap();
        sink.max_attempts = None;
        config.sinks.push(sink);
    }
    config.email.security_webhook_env = Some("TEST_CHAT_URL".into());
    let env = |name: &str| match name {
        "TEST_CHAT_URL" => Some(format!("http://127.0.0.1:{closed}/services/x")),
        other => common::env(other),
    };
    let checks = factorwatch::commands::check::run(&config, &env).await;
    let mut table = Vec::new();
    assert!(!factorwatch::commands::check::print(&checks, &mut table).unwrap());
    let table = String::from_utf8(table).unwrap();
    for line in [
        "FAIL  sink hook",
        "FAIL  sink udp",
        "FAIL  security chat webhook",
    ] {
        assert!(table.contains(line), "{line}\n{table}");
    }
    assert!(
        !table.contains("/services/x"),
        "the webhook's URL is a secret: {table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn register_hook_creates_verifies_and_lists_the_hook_through_okta_s_api() {
    let sim = common::sim(RateLimits::default()).await;
    let dir = tempdir("register");
    let mut config = common::config(&dir, &sim.base, true);
    config.orgs[0].system_log.enabled = false;
    let d = Daemon::start(&config, &common::env).await.unwrap();
    let url = format!("http://{}/okta/acme", d.hook_addr.unwrap());
    let mut with_file = config.clone();
    let secret_file = dir.join("hook-secret");
    let hook = with_file.orgs[0].hook.as_mut().unwrap();
    hook.secret_env = None;
    hook.secret_file = Some(secret_file.clone());
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    // No secret yet: one is written, readable by its owner only, and nothing else is done
    // (factorwatch must read it before Okta can verify the hook).
    let mut out = Vec::new();
    factorwatch::commands::okta::register_hook(&with_file, "acme", &url, &common::env, &mut out)
        .await
        .unwrap();
    let said = String::from_utf8(out).unwrap();
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert_eq!(secret.len(), 64);
    assert_eq!(mode(&secret_file), 0o600);
    assert!(said.contains("start or restart factorwatch"), "{said}");
    assert!(!said.contains(&secret), "the secret is never printed");
    let mut out = Vec::new();
    factorwatch::commands::okta::list_hooks(&with_file, "acme", &common::env, &mut out)
        .await
        .unwrap();
    assert!(String::from_utf8(out).unwrap().contains("no Event Hooks"));

    // The secret the running factorwatch uses, in a file others could read: used, and the file
    // made private.
    std::fs::write(&secret_file, common::HOOK_SECRET).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut out = Vec::new();
    factorwatch::commands::okta::register_hook(&with_file, "acme", &url, &common::env, &mut out)
        .await
        .unwrap();
    let said = String::from_utf8(out).unwrap();
    assert!(said.contains("verified: ACTIVE VERIFIED"), "{said}");
    assert_eq!(
        mode(&secret_file),
        0o600,
        "an existing secret file is made 0600"
    );
    assert!(
        !said.contains(common::HOOK_SECRET),
        "the secret is never printed"
    );
    let mut out = Vec::new();
    factorwatch::commands::okta::list_hooks(&with_file, "acme", &common::env, &mut out)
        .await
        .unwrap();
    let listed = String::from_utf8(out).unwrap();
    // The changes and, with the detections on (the default), their hook-eligible evidence.
    let types = factorwatch::okta::catalog::hook_subscription(true).len();
    assert!(types > 8);
    assert!(
        listed.contains("ACTIVE")
            && listed.contains(&url)
            && listed.contains(&format!("{types} event types")),
        "{listed}"
    );
    // Without a hook table there is nothing to register: a clear refusal.
    let mut no_hook = config.clone();
    no_hook.orgs[0].hook = None;
    let e = factorwatch::commands::okta::register_hook(
        &no_hook,
        "acme",
        &url,
        &common::env,
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("[orgs.hook]"), "{e}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_replays_a_past_window_once_and_resumes_where_it_stopped() {
    use factorwatch::commands::backfill::{self, Options};
    let sim = common::sim(RateLimits::default()).await;
    sim.users(3).await;
    // 2,400 old events (a third of them MFA changes the org-wide filter keeps), published over the last two days.
    let now = chrono::Utc::now();
    let events: Vec<_> = (0..2400)
        .map(|i| {
            let mut e = common::mfa_event(&format!("bf{i:05}"), i, 3);
            e["published"] = json!((now - chrono::Duration::minutes(2880 - i as i64)).to_rfc3339());
            e
        })
        .collect();
    sim.control("/sim/events?late=true", json!(events)).await;
    let dir = tempdir("backfill");
    let config = common::config(&dir, &sim.base, false);
    let store = SqliteStore::open(&config.store.path).await.unwrap();
    // One change was already handled (say, by polling).
    let pre = common::changes("bf", 1, &["siem:file"]);
    store
        .commit(
            "acme",
            &Batch {
                source: SourceKind::SystemLog,
                changes: pre,
                rejects: vec![],
                events_seen: 1,
                newest_published: None,
                cursor: None,
                context: vec![],
                signals: Vec::new(),
            },
            now,
        )
        .await
        .unwrap();
    let options = |max_pages| Options {
        org: "acme".into(),
        since: now - chrono::Duration::days(3),
        until: now,
        email: false,
        max_pages,
    };
    let mut progress = Vec::new();
    let first = backfill::run(
        &config,
        &store,
        &options(Some(1)),
        &common::env,
        &mut progress,
    )
    .await
    .unwrap();
    assert!(!first.finished);
    assert_eq!(first.events, 1000);
    let rest = backfill::run(&config, &store, &options(None), &common::env, &mut progress)
        .await
        .unwrap();
    assert!(rest.finished);
    assert_eq!(
        first.events + rest.events,
        2400,
        "resumed where it stopped: nothing read twice"
    );
    assert_eq!(
        first.new_changes + rest.new_changes + first.known_changes + rest.known_changes,
        2400
    );
    assert_eq!(
        first.known_changes + rest.known_changes,
        1,
        "the change already handled is not handled again"
    );
    let again = backfill::run(&config, &store, &options(None), &common::env, &mut progress)
        .await
        .unwrap();
    assert!(again.finished && again.events == 0);
    let progress = String::from_utf8(progress).unwrap();
    assert!(
        progress.contains("% of the window") && progress.contains("already done"),
        "{progress}"
    );
    let stats = store.stats().await.unwrap();
    assert!(
        stats.outbox.iter().all(|(d, ..)| d != "email"),
        "no emails about old changes by default"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_legacy_path_keeps_the_factor_okta_named_and_guesses_none() {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(1).await;
    let user =
        json!({ "id": common::user_id(0), "type": "User", "alternateId": "user0@example.com" });
    let event = |uuid: &str,
                 event_type: &str,
                 legacy: &str,
                 reason: Option<&str>,
                 target: Option<&str>| {
        let mut targets = vec![user.clone()];
        if let Some(name) = target {
            targets.push(json!({ "id": "pfd1", "type": "AuthenticatorEnrollment", "alternateId": "unknown", "displayName": name }));
        }
        json!({ "uuid": uuid, "eventType": event_type, "legacyEventType": legacy,
                "displayMessage": "Activate factor for user", "actor": user, "target": targets,
                "outcome": { "result": "SUCCESS", "reason": reason } })
    };
    sim.control(
        "/sim/events",
        json!([
            // Classic: the factor in outcome.reason.
            event(
                "c1",
                "user.mfa.factor.activate",
                "core.user.factor.activate",
                Some("User set up GOOGLE_OTP factor"),
                None
            ),
            event(
                "c2",
                "user.mfa.factor.deactivate",
                "core.user.factor.deactivate",
                Some("User reset SMS_FACTOR factor"),
                None
            ),
            // Identity Engine: the factor is the enrolled authenticator.
            event(
                "c3",
                "user.mfa.factor.update",
                "core.user.factor.update",
                None,
                Some("Okta Verify")
            ),
            // Nothing names the factor: nothing is guessed.
            event(
                "c4",
                "user.mfa.factor.reset_all",
                "core.user.factor.reset_all",
                None,
                None
            ),
        ]),
    )
    .await;
    let dir = tempdir("legacy-factor");
    let mut config = common::config(&dir, &sim.base, false);
    config.orgs[0].system_log.enabled = false;
    config.orgs[0].events_api.enabled = true;
    let d = Daemon::start_once(&config, &common::env).await.unwrap();
    let siem = d.siem_file.clone().unwrap();
    d.finish(Duration::from_secs(30)).await.unwrap();
    let records: Vec<serde_json::Value> = std::fs::read_to_string(siem)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let factor = |action: &str| {
        let r = records.iter().find(|r| r["action"] == action).unwrap();
        (
            r["factor"]["type"].clone(),
            r["factor"]["name"].clone(),
            r["message"].clone(),
        )
    };
    assert_eq!(
        factor("enrolled"),
        (
            json!("token:software:totp"),
            json!("Google Authenticator"),
            json!("User set up Google Authenticator factor")
        )
    );
    assert_eq!(factor("reset").0, json!("sms"));
    assert_eq!(factor("updated").1, json!("Okta Verify"));
    let (t, n, _) = factor("reset_all");
    assert_eq!(
        (t, n),
        (json!(null), json!(null)),
        "no factor named, none guessed"
    );
}

/// A poller waiting for its next poll holds no place among the pages in memory: the places are
/// shared by every org's poller, and an MSSP's thousands of orgs queued behind sixteen sleepers
/// (each org polled minutes apart instead of every interval).
#[tokio::test]
async fn a_poller_waiting_for_its_next_poll_holds_no_page_in_memory() {
    waiting_poller_holds_no_page(None).await;
}

/// …nor one waiting out a failure: one org whose Okta fails must not hold up the others.
#[tokio::test]
async fn a_poller_waiting_after_a_failure_holds_no_page_in_memory() {
    waiting_poller_holds_no_page(Some(
        json!({ "endpoints": { "/api/v1/logs": { "error_rate": 1.0 } } }),
    ))
    .await;
}

async fn waiting_poller_holds_no_page(faults: Option<serde_json::Value>) {
    use factorwatch::pipeline::worker::PAGES_IN_MEMORY;

    let sim = common::sim(RateLimits::default()).await;
    if let Some(f) = faults {
        sim.control("/sim/faults", f).await;
    }
    let dir = tempdir("waiting-poller");
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    // One attempt per request, and an interval far longer than the test: once caught up, the
    // poller is asleep.
    let poller = sim_poller(&sim, &dir, store, 1, Duration::from_secs(3600), false);
    let signals = poller.signals.clone();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(poller.run(shutdown));
    common::eventually(
        10,
        "a poll answered, then every page place free",
        async || {
            !sim.polls().await.is_empty() && signals.pages.available_permits() == PAGES_IN_MEMORY
        },
    )
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// A poller caught up with an idle org does not commit "polled, nothing new" itself: the record
/// waits with the other orgs' and is written with them, moving only the source's last poll.
#[tokio::test]
async fn an_idle_poll_is_recorded_with_the_others_not_committed_alone() {
    use factorwatch::sources::poller::{Ended, Poller};

    let sim = common::sim(RateLimits::default()).await;
    let dir = tempdir("idle-poll");
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let attempts = factorwatch::okta::client::RetryPolicy::default().attempts;
    let poller = sim_poller(
        &sim,
        &dir,
        store.clone(),
        attempts,
        Duration::from_millis(20),
        true,
    );
    let signals = poller.signals.clone();
    // Caught up once: the cursor is Okta's `next`, committed.
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    assert_eq!(poller.clone().run(shutdown.clone()).await, Ended::CaughtUp);
    let source = async || store.stats().await.unwrap().sources.remove(0);
    let committed = source().await;
    assert!(committed.position.is_some());
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Running on: the same `next` answers nothing new.
    let polls_before = sim.polls().await.len();
    let task = tokio::spawn(
        Poller {
            once: false,
            ..poller
        }
        .run(shutdown),
    );
    common::eventually(10, "an idle poll held for the others", async || {
        signals.idle_polls.pending() == 1 && sim.polls().await.len() > polls_before
    })
    .await;
    task.abort();
    assert_eq!(source().await, committed, "nothing written by the poller");
    signals.idle_polls.write(&store).await;
    let recorded = source().await;
    assert!(recorded.updated_at > committed.updated_at, "{recorded:?}");
    assert_eq!(
        (recorded.position, recorded.events_seen),
        (committed.position, committed.events_seen)
    );
    assert_eq!(signals.idle_polls.pending(), 0);
}

/// A caught-up poller's batch waiting for the group commit has given its place among the pages in
/// memory back: more live orgs than places all reach the same group. (Were the places kept, the
/// first two batches would hold both for the whole gathering window, every other org's poll
/// waiting behind them, and the orgs would be stored in several groups, one window apart.)
#[tokio::test(flavor = "multi_thread")]
async fn batches_waiting_for_the_group_commit_hold_no_page_place() {
    use factorwatch::sources::group::GroupCommit;
    use factorwatch::sources::poller::Poller;
    use std::sync::Arc;

    const PLACES: usize = 2;
    const ORGS: usize = 5;
    let sim = common::sim(RateLimits::default()).await;
    sim.users(3).await;
    sim.control("/sim/events", json!([common::mfa_event("g0", 0, 3)]))
        .await;
    let dir = tempdir("group-places");
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    // Far longer than every org's two requests take, even on a busy machine.
    let (group, _task) = GroupCommit::start(store.clone(), Duration::from_secs(5));
    let mut signals = factorwatch::pipeline::worker::Signals::default();
    signals.pages = Arc::new(tokio::sync::Semaphore::new(PLACES));
    let signals = Arc::new(signals);
    let attempts = factorwatch::okta::client::RetryPolicy::default().attempts;
    let poller = sim_poller(
        &sim,
        &dir,
        store.clone(),
        attempts,
        Duration::from_secs(3600),
        false,
    );
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    // Each org here is the same okta-sim org under another name: one page with the event, then
    // an empty page (caught up), then a batch of one row for the group.
    let pollers: Vec<_> = (0..ORGS)
        .map(|i| {
            tokio::spawn(
                Poller {
                    org: format!("org{i}"),
                    signals: signals.clone(),
                    group: Some(group.clone()),
                    ..poller.clone()
                }
                .run(shutdown.clone()),
            )
        })
        .collect();
    common::eventually(60, "every org's batch stored", async || {
        store.stats().await.unwrap().sources.len() == ORGS
    })
    .await;
    let sources = store.stats().await.unwrap().sources;
    assert!(
        sources
            .iter()
            .all(|s| s.updated_at == sources[0].updated_at),
        "stored in more than one group: {sources:?}"
    );
    assert_eq!(
        store.stats().await.unwrap().changes,
        ORGS as u64,
        "each org's change"
    );
    assert_eq!(signals.pages.available_permits(), PLACES);
    for p in pollers {
        p.abort();
    }
}

/// A System Log poller of org "acme" on okta-sim, starting an hour back, with fresh signals.
fn sim_poller(
    sim: &common::Sim,
    dir: &std::path::Path,
    store: SqliteStore,
    attempts: u32,
    interval: Duration,
    once: bool,
) -> factorwatch::sources::poller::Poller<SqliteStore> {
    use factorwatch::okta::client::auth::Credentials;
    use factorwatch::okta::client::{OktaClient, RetryPolicy};
    use factorwatch::sources::poller::{Poller, system_log_start};
    use std::sync::Arc;

    let config = common::config(dir, &sim.base, false);
    let client = OktaClient::new(
        &sim.base,
        Credentials::Ssws(factorwatch::secret::Secret::new(common::TOKEN)),
        RetryPolicy {
            attempts,
            ..RetryPolicy::default()
        },
    )
    .unwrap();
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    Poller {
        org: "acme".into(),
        source: SourceKind::SystemLog,
        client: Arc::new(client),
        store,
        ingest: Arc::new(factorwatch::daemon::ingest_for(&config, None)),
        start: system_log_start(&factorwatch::record::format_published(&since), &[]),
        interval,
        signals: Arc::default(),
        once,
        fence: None,
        group: None,
    }
}

/// The System Log polls okta-sim answered, in order: (connection's client address, body bytes).
async fn log_polls(sim: &common::Sim) -> Vec<(String, u64)> {
    sim.polls()
        .await
        .iter()
        .filter(|p| p["path"] == "/api/v1/logs")
        .map(|p| {
            (
                p["peer"].as_str().unwrap_or_default().to_owned(),
                p["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A caught-up org polled every 700 ms: far past the 250 ms a paging connection stays open.
async fn caught_up_daemon(sim: &common::Sim, dir: &std::path::Path) -> Daemon {
    sim.users(2).await;
    let events: Vec<_> = (0..3)
        .map(|i| common::mfa_event(&format!("k{i}"), i, 2))
        .collect();
    sim.control("/sim/events", json!(events)).await;
    let mut config = common::config(dir, &sim.base, false);
    config.orgs[0].system_log.interval = Duration::from_millis(700);
    let d = Daemon::start(&config, &common::env).await.unwrap();
    delivered(&d, 3).await;
    d
}

/// Waits for two more polls of the caught-up org: its polls have settled on the kept connection.
async fn two_more_polls(sim: &common::Sim) {
    let settled = log_polls(sim).await.len() + 2;
    common::eventually(30, "two more polls", async || {
        log_polls(sim).await.len() >= settled
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn caught_up_polls_go_on_one_connection_kept_between_them() {
    let sim = common::sim(RateLimits::default()).await;
    let dir = tempdir("kept");
    let d = caught_up_daemon(&sim, &dir).await;
    let before = log_polls(&sim).await.len();
    common::eventually(30, "four more polls", async || {
        log_polls(&sim).await.len() >= before + 4
    })
    .await;
    let polls = log_polls(&sim).await;
    let last: HashSet<_> = polls[polls.len() - 3..].iter().map(|p| &p.0).collect();
    assert_eq!(last.len(), 1, "one connection for the polls: {polls:?}");
    assert!(
        polls[before..].iter().all(|p| p.1 < 100),
        "nothing new: {polls:?}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_answer_moves_the_polls_off_the_kept_connection() {
    let sim = common::sim(RateLimits::default()).await;
    let dir = tempdir("unkept");
    let d = caught_up_daemon(&sim, &dir).await;
    two_more_polls(&sim).await;
    // A burst: the next poll after the wait answers it all (well over KEPT_ANSWER).
    let burst: Vec<_> = (3..43)
        .map(|i| common::mfa_event(&format!("k{i}"), i, 2))
        .collect();
    sim.control("/sim/events", json!(burst)).await;
    delivered(&d, 43).await;
    let large = log_polls(&sim)
        .await
        .iter()
        .position(|p| p.1 as usize > factorwatch::okta::client::KEPT_ANSWER)
        .expect("one answer carried the burst");
    common::eventually(30, "four polls after the burst", async || {
        log_polls(&sim).await.len() >= large + 5
    })
    .await;
    let polls = log_polls(&sim).await;
    let kept = &polls[large].0;
    assert_eq!(
        &polls[large - 1].0,
        kept,
        "the burst came on the kept connection: {polls:?}"
    );
    assert!(
        polls[large + 1..].iter().all(|p| &p.0 != kept),
        "no poll goes on the connection that carried the burst: {polls:?}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_orgs_poll_and_the_request_after_it_share_the_kept_connection() {
    let sim = common::sim(RateLimits::default()).await;
    let dir = tempdir("kept-live");
    let d = caught_up_daemon(&sim, &dir).await;
    two_more_polls(&sim).await;
    // A few new events (well under KEPT_ANSWER): the poll after the wait finds them, and Okta's
    // loop asks again at once, until a page is empty.
    let few: Vec<_> = (3..5)
        .map(|i| common::mfa_event(&format!("k{i}"), i, 2))
        .collect();
    sim.control("/sim/events", json!(few)).await;
    delivered(&d, 5).await;
    let found = log_polls(&sim)
        .await
        .iter()
        .rposition(|p| p.1 > 100)
        .expect("one answer carried the new events");
    common::eventually(30, "the request after it", async || {
        log_polls(&sim).await.len() > found + 1
    })
    .await;
    let polls = log_polls(&sim).await;
    assert!(
        polls[found].1 as usize <= factorwatch::okta::client::KEPT_ANSWER,
        "a small answer: {polls:?}"
    );
    assert_eq!(
        polls[found - 1].0,
        polls[found].0,
        "the poll came on the kept connection: {polls:?}"
    );
    assert_eq!(
        polls[found + 1].0,
        polls[found].0,
        "the request right after it (an empty page) too: {polls:?}"
    );
    assert!(polls[found + 1].1 < 100, "then nothing new: {polls:?}");
    d.stop().await;
}
