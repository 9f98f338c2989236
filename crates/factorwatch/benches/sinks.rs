//! Encode + send throughput of each SIEM sink against a local receiver, through the real outbox
//! (SQLite store, worker, marking rows delivered): changes per second.
//!
//! `cargo bench -p factorwatch --bench sinks` (`FACTORWATCH_BENCH_CHANGES` sets the count).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use factorwatch::backoff::Backoff;
use factorwatch::formats::Format;
use factorwatch::pipeline::ingest::Ingest;
use factorwatch::pipeline::route::Routing;
use factorwatch::pipeline::worker::{self, Destination, WorkerPolicy};
use factorwatch::secret::Secret;
use factorwatch::sinks::{self, SinkDestination};
use factorwatch::store::sqlite::SqliteStore;
use factorwatch::store::{Batch, SourceKind, Store};
use serde_json::json;
use tokio::io::AsyncReadExt;

fn events(n: usize) -> String {
    let e: Vec<serde_json::Value> = (0..n)
        .map(|i| json!({
            "uuid": format!("bench{i:07}"), "eventType": "user.mfa.factor.activate", "published": "2026-11-25T10:00:00.000Z",
            "displayMessage": "Activate factor for user",
            "actor": { "id": "00u1", "type": "User", "alternateId": "jdoe@example.com", "displayName": "Jane Doe" },
            "target": [{ "id": "00u1", "type": "User", "alternateId": "jdoe@example.com", "displayName": "Jane Doe" }],
            "outcome": { "result": "SUCCESS", "reason": "User set up SMS_FACTOR factor" },
            "client": { "ipAddress": "203.0.113.7", "userAgent": { "rawUserAgent": "Mozilla/5.0 (Macintosh)", "browser": "CHROME", "os": "Mac OS X" } },
            "debugContext": { "debugData": { "phoneNumber": "+15550001234" } },
        }))
        .collect();
    serde_json::Value::Array(e).to_string()
}

async fn store(name: &str, n: usize, destination: &str) -> SqliteStore {
    let dir = std::env::temp_dir().join(format!("fw-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let ingest = Ingest {
        classifier: Default::default(),
        routing: Routing {
            siem: vec![(destination.into(), None)],
            email: None,
            notify_third_party: false,
            email_actions: None,
            security: vec![],
            email_after: std::time::Duration::ZERO,
        },
        detections: None,
    };
    let batch: Batch = ingest.batch(SourceKind::SystemLog, &events(n), None);
    store
        .commit("acme", &batch, chrono::Utc::now())
        .await
        .unwrap();
    store
}

async fn measure<D: Destination>(label: &str, n: usize, sink: D) {
    let name = sink.name().to_owned();
    let store = store(label, n, &name).await;
    let policy = WorkerPolicy {
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
        },
        idle_poll: Duration::from_millis(5),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(worker::run(
        store.clone(),
        Arc::new(sink),
        policy,
        Default::default(),
        stopped,
    ));
    loop {
        let s = store.stats().await.unwrap();
        if s.outbox.first().is_some_and(|(_, d, ..)| *d as usize == n) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    task.await.unwrap();
    println!(
        "{label:<28} {n} changes in {secs:.2} s: {:>8.0} changes/s",
        n as f64 / secs
    );
}

async fn http_ok(reply: &'static str) -> String {
    let app =
        axum::Router::new().fallback(post(
            move |_: String| async move { (StatusCode::OK, reply) },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A `_bulk` endpoint that creates every document.
async fn bulk_ok() -> String {
    let app = axum::Router::new().fallback(post(|body: String| async move {
        let items: Vec<serde_json::Value> = body
            .lines()
            .step_by(2)
            .map(|_| json!({ "create": { "status": 201 } }))
            .collect();
        json!({ "took": 1, "errors": false, "items": items }).to_string()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A TCP receiver that reads and discards.
async fn tcp_sink() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    port
}

fn main() {
    let n: usize = std::env::var("FACTORWATCH_BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let file =
            std::env::temp_dir().join(format!("fw-bench-file-{}.ndjson", std::process::id()));
        measure(
            "file (record)",
            n,
            SinkDestination::new(
                "siem:file",
                Format::Record,
                500,
                sinks::file::FileSink::new(sinks::file::Target::File(file.clone())),
            ),
        )
        .await;
        let _ = std::fs::remove_file(file);
        let port = tcp_sink().await;
        measure(
            "syslog tcp (cef)",
            n,
            SinkDestination::new(
                "siem:syslog",
                Format::Cef,
                500,
                sinks::syslog::SyslogSink::new(
                    format!("127.0.0.1:{port}"),
                    sinks::syslog::Transport::Tcp,
                    Default::default(),
                ),
            ),
        )
        .await;
        let hec = http_ok(r#"{"text":"Success","code":0}"#).await;
        let settings = sinks::splunk_hec::HecSettings {
            url: hec,
            token: Secret::new("t"),
            index: None,
            sourcetype: "okta:factorwatch".into(),
            source: "factorwatch".into(),
            ack_channel: None,
            ack_interval: Duration::from_secs(1),
            ack_polls: 1,
        };
        measure(
            "splunk hec (record)",
            n,
            SinkDestination::new(
                "siem:hec",
                Format::Record,
                500,
                sinks::splunk_hec::HecSink::new(settings, true, reqwest::Client::new()),
            ),
        )
        .await;
        let es = bulk_ok().await;
        measure(
            "elasticsearch _bulk (ecs)",
            n,
            SinkDestination::new(
                "siem:es",
                Format::Ecs,
                500,
                sinks::elasticsearch::BulkSink::new(
                    &es,
                    "okta",
                    sinks::elasticsearch::Auth::None,
                    reqwest::Client::new(),
                ),
            ),
        )
        .await;
        let hook = http_ok("").await;
        measure(
            "webhook (ocsf)",
            n,
            SinkDestination::new(
                "siem:hook",
                Format::parse("ocsf").unwrap(),
                500,
                sinks::webhook::WebhookSink::new(&hook, vec![], reqwest::Client::new()),
            ),
        )
        .await;
    });
}
