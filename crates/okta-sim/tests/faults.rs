//! Injected faults (`POST /sim/faults`) and per-bucket rate limits: what a client must survive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Instant;

use okta_sim::server::RateLimits;
use serde_json::{Value, json};

fn events(n: usize) -> Value {
    json!(
        (0..n)
            .map(|i| json!({ "uuid": format!("e{i}"), "eventType": "user.session.start" }))
            .collect::<Vec<_>>()
    )
}

#[tokio::test]
async fn errors_bursts_latency_and_truncation_are_injected_per_endpoint() {
    let sim = common::start().await;
    sim.control("/sim/events", &events(3)).await;
    sim.control(
        "/sim/faults",
        &json!({ "endpoints": { "/api/v1/logs": { "burst_429": 2 }, "/api/v1/users": { "error_rate": 1.0 } } }),
    )
    .await;
    for _ in 0..2 {
        let r = sim.get("/api/v1/logs").await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["x-rate-limit-remaining"], "0");
        assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000047");
    }
    assert_eq!(sim.get("/api/v1/logs").await.status(), 200);
    let r = sim.get("/api/v1/users/anyone").await;
    assert_eq!(r.status(), 500);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000009");

    sim.control(
        "/sim/faults",
        &json!({ "endpoints": { "*": { "truncate_rate": 1.0, "latency_ms": 300 } } }),
    )
    .await;
    let started = Instant::now();
    let r = sim.get("/api/v1/logs").await;
    assert!(started.elapsed().as_millis() >= 300);
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "a cut body is not JSON: {body}"
    );

    sim.control("/sim/faults", &json!({})).await;
    assert_eq!(sim.get("/api/v1/users/anyone").await.status(), 404);

    let r = sim
        .post(
            "/sim/faults",
            &json!({ "endpoints": { "*": { "error_rate": 1.5 } } }),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = sim
        .post(
            "/sim/faults",
            &json!({ "endpoints": { "*": { "eror_rate": 1 } } }),
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn duplicate_faults_repeat_an_event_across_pages() {
    let sim = common::start().await;
    sim.control("/sim/events", &events(4)).await;
    sim.control(
        "/sim/faults",
        &json!({ "endpoints": { "/api/v1/logs": { "duplicate_rate": 1.0 } } }),
    )
    .await;
    let r = sim.get("/api/v1/logs?limit=2").await;
    let path = common::next_link(&r).unwrap();
    let first: Vec<Value> = r.json().await.unwrap();
    let second: Vec<Value> = sim.get(&path).await.json().await.unwrap();
    assert_eq!(
        first[1]["uuid"], second[0]["uuid"],
        "the last event of a page opens the next"
    );
}

#[tokio::test]
async fn each_bucket_is_limited_on_its_own() {
    let sim = common::start_with(RateLimits {
        logs: 2,
        events: 1,
        user_get: 3,
        users: 3,
        other: 3,
        window_secs: 60,
        token_share: 100,
    })
    .await;
    let statuses = |paths: Vec<&'static str>| {
        let sim = &sim;
        async move {
            let mut out = Vec::new();
            for p in paths {
                out.push(sim.get(p).await.status().as_u16());
            }
            out
        }
    };
    assert_eq!(
        statuses(vec!["/api/v1/logs", "/api/v1/logs", "/api/v1/logs"]).await,
        [200, 200, 429]
    );
    assert_eq!(
        statuses(vec!["/api/v1/events", "/api/v1/events"]).await,
        [200, 429]
    );
    assert_eq!(
        statuses(vec!["/api/v1/eventHooks"]).await,
        [200],
        "other buckets keep their room"
    );
    let r = sim.get("/api/v1/eventHooks").await;
    assert_eq!(r.headers()["x-rate-limit-limit"], "3");
    assert_eq!(r.headers()["x-rate-limit-remaining"], "1");
    // A new window opens after the reset.
    sim.control("/sim/clock", &json!({ "advance_seconds": 61 }))
        .await;
    assert_eq!(sim.get("/api/v1/logs").await.status(), 200);
}
