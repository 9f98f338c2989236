//! An Okta that lies or misbehaves (okta-sim's hostile faults): a `next` link to another origin, a
//! redirect, an answer too large to hold, one that drips a byte at a time, a stored cursor from
//! another origin. The org's credentials go nowhere but the org, nothing is committed past what
//! was really read, and each refusal says clearly what happened.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factorwatch::backoff::Backoff;
use factorwatch::daemon::Daemon;
use factorwatch::okta::client::auth::Credentials;
use factorwatch::okta::client::{ClientError, OktaClient, Page, RetryPolicy};
use factorwatch::secret::Secret;
use factorwatch::store::{Batch, SourceKind, Store};
use okta_sim::server::RateLimits;
use serde_json::json;

/// A server elsewhere that records every request it gets (and its `Authorization` header).
struct Elsewhere {
    origin: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Elsewhere {
    async fn start() -> Elsewhere {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let app = {
            let seen = seen.clone();
            axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(
                        headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap_or("?").to_owned())
                            .unwrap_or_default(),
                    );
                    "[]"
                }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Elsewhere { origin, seen }
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn quick(timeout_ms: u64) -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(50),
        },
        timeout: Duration::from_millis(timeout_ms),
    }
}

fn client(sim: &common::Sim, timeout_ms: u64) -> OktaClient {
    OktaClient::new(
        &sim.base,
        Credentials::Ssws(Secret::new(common::TOKEN)),
        quick(timeout_ms),
    )
    .unwrap()
}

/// GETs the System Log as any request, or as a caught-up poller's poll (on the connection kept
/// between polls): both must stand the same attacks.
async fn poll(client: &OktaClient, kept: bool) -> Result<Page, ClientError> {
    client
        .fetch_page(&client.page_url("/api/v1/logs")?, kept)
        .await
}

async fn some_events(sim: &common::Sim) {
    let events: Vec<_> = (0..6)
        .map(|i| common::mfa_event(&format!("h{i}"), i, 2))
        .collect();
    sim.control("/sim/events", json!(events)).await;
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fw-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn a_next_link_to_another_origin_is_refused_and_nothing_is_sent_there() {
    let sim = common::sim(RateLimits::default()).await;
    some_events(&sim).await;
    let elsewhere = Elsewhere::start().await;
    sim.control(
        "/sim/faults",
        json!({ "endpoints": {
            "/api/v1/logs": { "foreign_next": elsewhere.origin },
            "/api/v1/events": { "foreign_next": elsewhere.origin },
        }}),
    )
    .await;

    // The client: the page whose link leads elsewhere is refused, not handed on.
    let c = client(&sim, 2000);
    let e = c.get_page("/api/v1/logs?limit=2").await.unwrap_err();
    assert!(matches!(e, ClientError::ForeignUrl { .. }), "{e}");
    assert!(e.to_string().contains(&elsewhere.origin), "{e}");
    assert!(!e.is_transient());

    // The System Log poller (run --once): it stops with the reason; the cursor stays unset.
    let dir = tempdir("next");
    let config = common::config(&dir, &sim.base, false);
    let d = Daemon::start_once(&config, &common::env).await.unwrap();
    let e = d.finish(Duration::from_secs(5)).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("refused to send the org's credentials"),
        "{e}"
    );
    let store = factorwatch::store::sqlite::SqliteStore::open(&config.store.path)
        .await
        .unwrap();
    assert_eq!(
        store.cursor("acme", SourceKind::SystemLog).await.unwrap(),
        None,
        "nothing committed past the page that was refused"
    );
    assert_eq!(store.stats().await.unwrap().changes, 0);

    // The Events API poller, the same.
    let mut legacy = common::config(&tempdir("next-legacy"), &sim.base, false);
    legacy.orgs[0].system_log.enabled = false;
    legacy.orgs[0].events_api.enabled = true;
    let d = Daemon::start_once(&legacy, &common::env).await.unwrap();
    let e = d.finish(Duration::from_secs(5)).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("refused to send the org's credentials"),
        "{e}"
    );
    assert_eq!(
        elsewhere.requests(),
        0,
        "not one request, so no credential, went elsewhere"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_refuses_a_foreign_next_link() {
    let sim = common::sim(RateLimits::default()).await;
    // More than a page (1,000) of old events, so that a `next` link is sent.
    let now = chrono::Utc::now();
    let events: Vec<_> = (0..1200)
        .map(|i| {
            let mut e = common::mfa_event(&format!("b{i:05}"), i, 2);
            e["published"] = json!((now - chrono::Duration::seconds(3000 - i as i64)).to_rfc3339());
            e
        })
        .collect();
    sim.control("/sim/events?late=true", json!(events)).await;
    let elsewhere = Elsewhere::start().await;
    sim.control(
        "/sim/faults",
        json!({ "endpoints": { "/api/v1/logs": { "foreign_next": elsewhere.origin } } }),
    )
    .await;
    let dir = tempdir("backfill");
    let config = common::config(&dir, &sim.base, false);
    let store = factorwatch::store::sqlite::SqliteStore::open(&config.store.path)
        .await
        .unwrap();
    let e = factorwatch::commands::backfill::run(
        &config,
        &store,
        &factorwatch::commands::backfill::Options {
            org: "acme".into(),
            since: now - chrono::Duration::hours(1),
            until: now,
            email: false,
            max_pages: None,
        },
        &common::env,
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("refused to send the org's credentials"),
        "{e}"
    );
    assert_eq!(elsewhere.requests(), 0);
    assert_eq!(
        store.cursor("acme", SourceKind::Backfill).await.unwrap(),
        None,
        "the page with the foreign link was not committed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_is_never_followed_with_the_credentials() {
    let sim = common::sim(RateLimits::default()).await;
    let elsewhere = Elsewhere::start().await;
    sim.control(
        "/sim/faults",
        json!({ "endpoints": { "*": { "redirect_to": elsewhere.origin } } }),
    )
    .await;
    for kept in [false, true] {
        let e = poll(&client(&sim, 2000), kept).await.unwrap_err();
        assert!(
            matches!(e, ClientError::Redirect { status: 302, .. }),
            "{e}"
        );
        assert!(e.to_string().contains(&elsewhere.origin), "{e}");
    }
    let e = client(&sim, 2000)
        .get("/api/v1/users/00u1")
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Redirect { .. }), "{e}");
    assert_eq!(elsewhere.requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_larger_than_the_cap_is_an_error_not_a_growing_buffer() {
    let sim = common::sim(RateLimits::default()).await;
    sim.control(
        "/sim/faults",
        json!({ "endpoints": { "/api/v1/logs": { "oversize_bytes": 40u64 << 20 } } }),
    )
    .await;
    for kept in [false, true] {
        let e = poll(&client(&sim, 20_000), kept).await.unwrap_err();
        assert!(
            matches!(e, ClientError::TooLarge { limit } if limit == factorwatch::okta::client::MAX_BODY),
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_drips_is_cut_off_by_the_timeout() {
    let sim = common::sim(RateLimits::default()).await;
    some_events(&sim).await;
    sim.control(
        "/sim/faults",
        json!({ "endpoints": { "/api/v1/logs": { "drip_ms": 200 } } }),
    )
    .await;
    for kept in [false, true] {
        let started = Instant::now();
        let e = poll(&client(&sim, 600), kept).await.unwrap_err();
        assert!(
            matches!(e, ClientError::Unavailable { attempts: 2, .. }),
            "{e}"
        );
        // Two attempts of at most 600 ms each, and a short backoff: seconds, not the page's
        // length times 200 ms.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_cursor_on_another_origin_stops_the_start_and_says_how_to_reset_it() {
    let sim = common::sim(RateLimits::default()).await;
    some_events(&sim).await;
    let dir = tempdir("cursor");
    let config = common::config(&dir, &sim.base, false);
    {
        // The org's url changed (or the database was tampered with).
        let store = factorwatch::store::sqlite::SqliteStore::open(&config.store.path)
            .await
            .unwrap();
        let batch = Batch {
            source: SourceKind::SystemLog,
            changes: vec![],
            rejects: vec![],
            events_seen: 0,
            newest_published: None,
            cursor: Some("https://old-org.okta.com/api/v1/logs?after=1_2".into()),
            context: vec![],
            signals: Vec::new(),
        };
        store
            .commit("acme", &batch, chrono::Utc::now())
            .await
            .unwrap();
        store.close().await;
    }
    let e = match Daemon::start(&config, &common::env).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a daemon started on a foreign cursor"),
    };
    assert!(e.contains("https://old-org.okta.com"), "{e}");
    assert!(
        e.contains("factorwatch cursor reset --org acme --source system_log"),
        "{e}"
    );
    let store = factorwatch::store::sqlite::SqliteStore::open(&config.store.path)
        .await
        .unwrap();
    let mut out = Vec::new();
    factorwatch::commands::cursor::reset(&store, "acme", "system_log", &mut out)
        .await
        .unwrap();
    assert!(String::from_utf8(out).unwrap().contains("cursor forgotten"));
    store.close().await;
    let d = Daemon::start_once(&config, &common::env).await.unwrap();
    d.finish(Duration::from_secs(30)).await.unwrap();
    let store = factorwatch::store::sqlite::SqliteStore::open(&config.store.path)
        .await
        .unwrap();
    assert_eq!(
        store.stats().await.unwrap().changes,
        6,
        "polled from since again"
    );
}
