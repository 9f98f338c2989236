//! Event Hooks (API-NOTES §5): the management API, the one-time verification GET, and deliveries
//! to a real HTTP receiver — envelope, batching, auth header, 3 s timeout, at most one retry and
//! only on 5xx or no answer, failures logged as `event_hook.delivery`, duplicates and reordering.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Receiver;
use serde_json::{Value, json};

fn factor_event(uuid: &str) -> Value {
    json!({ "uuid": uuid, "eventType": "user.mfa.factor.activate", "outcome": { "result": "SUCCESS" },
            "actor": { "id": "00u1", "type": "User" }, "target": [{ "id": "00u1", "type": "User" }] })
}

fn hook_body(url: &str, items: &[&str]) -> Value {
    json!({
        "name": "factorwatch",
        "events": { "type": "EVENT_TYPE", "items": items },
        "channel": { "type": "HTTP", "version": "1.0.0", "config": {
            "uri": url,
            "headers": [{ "key": "x-any-key", "value": "my-header-value" }],
            "authScheme": { "type": "HEADER", "key": "Authorization", "value": "my-shared-secret" } } }
    })
}

async fn registered(sim: &common::Sim, receiver: &Receiver) -> String {
    let hook = sim
        .control(
            "/sim/hooks",
            &json!({ "url": receiver.url, "auth_header": { "name": "Authorization", "value": "s3cret" } }),
        )
        .await;
    assert_eq!(hook["verificationStatus"], "VERIFIED");
    hook["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_management_api_creates_verifies_and_toggles_hooks() {
    let sim = common::start().await;
    let receiver = Receiver::start(true).await;
    let r = sim
        .post(
            "/api/v1/eventHooks",
            &hook_body(&receiver.url, &["user.mfa.factor.activate"]),
        )
        .await;
    assert_eq!(r.status(), 200);
    let hook: Value = r.json().await.unwrap();
    let id = hook["id"].as_str().unwrap().to_owned();
    assert_eq!(hook["status"], "ACTIVE");
    assert_eq!(hook["verificationStatus"], "UNVERIFIED");
    assert_eq!(
        hook["channel"]["config"]["authScheme"],
        json!({ "type": "HEADER", "key": "Authorization" })
    );
    assert!(
        !hook.to_string().contains("my-shared-secret"),
        "the secret is write-only"
    );

    // Unverified hooks get nothing.
    sim.control("/sim/events", &json!([factor_event("early")]))
        .await;

    let r = sim
        .post(
            &format!("/api/v1/eventHooks/{id}/lifecycle/verify"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["verificationStatus"],
        "VERIFIED"
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "GET");
    assert_eq!(got[0].headers["x-okta-verification-challenge"].len(), 48);
    assert_eq!(got[0].headers["authorization"], "my-shared-secret");
    assert_eq!(got[0].headers["x-any-key"], "my-header-value");

    let list: Vec<Value> = sim.get("/api/v1/eventHooks").await.json().await.unwrap();
    assert_eq!(list.len(), 1);
    let r = sim
        .post(
            &format!("/api/v1/eventHooks/{id}/lifecycle/deactivate"),
            &json!({}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "INACTIVE");
    sim.control("/sim/events", &json!([factor_event("while-inactive")]))
        .await;
    let r = sim
        .post(
            &format!("/api/v1/eventHooks/{id}/lifecycle/activate"),
            &json!({}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ACTIVE");
    sim.control("/sim/events", &json!([factor_event("delivered")]))
        .await;
    let posts = receiver.wait_posts(1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.posts().len(), 1);
    assert_eq!(posts[0]["data"]["events"][0]["uuid"], "delivered");

    assert_eq!(sim.get("/api/v1/eventHooks/whoNOPE").await.status(), 404);
    let r = sim
        .post(
            "/api/v1/eventHooks",
            &hook_body(&receiver.url, &["user.mfa.attempt_bypass"]),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000001");
    let r = sim.post("/api/v1/eventHooks", &json!({ "name": 3 })).await;
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000003");
}

#[tokio::test]
async fn a_hook_that_does_not_echo_the_challenge_stays_unverified() {
    let sim = common::start().await;
    let receiver = Receiver::start(false).await;
    let r = sim
        .post("/sim/hooks", &json!({ "url": receiver.url }))
        .await;
    assert!(common::error_cause(r, 400).await.contains("verification"));
    let hooks: Vec<Value> = sim.get("/api/v1/eventHooks").await.json().await.unwrap();
    assert_eq!(hooks[0]["verificationStatus"], "UNVERIFIED");
    sim.control("/sim/events", &json!([factor_event("x")]))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.posts().is_empty());
}

#[tokio::test]
async fn events_close_in_time_share_one_envelope_for_subscribed_types_only() {
    let sim = common::start().await;
    let receiver = Receiver::start(true).await;
    let id = registered(&sim, &receiver).await;
    let events = json!([factor_event("a"), { "eventType": "user.session.start", "uuid": "not-subscribed" },
                        factor_event("b"), factor_event("c")]);
    sim.control("/sim/events", &events).await;
    let posts = receiver.wait_posts(1).await;
    let envelope = &posts[0];
    assert_eq!(envelope["eventType"], "com.okta.event_hook");
    assert_eq!(
        envelope["source"],
        format!("{}/api/v1/eventHooks/{id}", sim.base)
    );
    let uuids: Vec<&str> = envelope["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids, ["a", "b", "c"]);
    let post = receiver
        .received()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(post.headers["authorization"], "s3cret");
    assert_eq!(post.headers["content-type"], "application/json");

    // The simulator records a delivery once the receiver has answered: wait for the record.
    let log = records(&sim, 1).await;
    let delivery = &log[0];
    assert_eq!(delivery["status"], 200);
    assert_eq!(delivery["attempt"], 1);
    assert_eq!(delivery["delivery_id"], envelope["eventId"]);
    assert_eq!(delivery["events"], json!(["a", "b", "c"]));
}

/// Waits for `n` delivery records.
async fn records(sim: &common::Sim, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let d: Vec<Value> = sim
            .deliveries()
            .await
            .into_iter()
            .filter(|d| d["kind"] == "delivery")
            .collect();
        if d.len() >= n {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} deliveries");
}

/// Waits until the batch holding `uuid` is recorded as held back.
async fn held(sim: &common::Sim, uuid: &str) {
    for _ in 0..200 {
        if sim
            .deliveries()
            .await
            .iter()
            .any(|d| d["kind"] == "held" && d["events"][0] == uuid)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{uuid} was never held back");
}

/// Waits for `n` `event_hook.delivery` failures in the System Log.
async fn failures_logged(sim: &common::Sim, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let f = delivery_failures(sim).await;
        if f.len() >= n {
            return f;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} delivery failures logged");
}

async fn delivery_failures(sim: &common::Sim) -> Vec<Value> {
    let filter = form_urlencoded::byte_serialize(br#"eventType eq "event_hook.delivery""#)
        .collect::<String>();
    sim.get(&format!("/api/v1/logs?filter={filter}"))
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_5xx_is_retried_once() {
    let sim = common::start().await;
    let receiver = Receiver::start(true).await;
    registered(&sim, &receiver).await;
    receiver.script(&[(503, Duration::ZERO)]);
    sim.control("/sim/events", &json!([factor_event("r")]))
        .await;
    let posts = receiver.wait_posts(2).await;
    assert_eq!(
        posts[0]["eventId"], posts[1]["eventId"],
        "a retry repeats the delivery"
    );
    let d = records(&sim, 2).await;
    assert_eq!(
        (d[0]["attempt"].clone(), d[0]["status"].clone()),
        (json!(1), json!(503))
    );
    assert_eq!(
        (d[1]["attempt"].clone(), d[1]["status"].clone()),
        (json!(2), json!(200))
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.posts().len(), 2);
    assert!(delivery_failures(&sim).await.is_empty());
}

#[tokio::test]
async fn two_5xx_give_up_and_log_event_hook_delivery() {
    let sim = common::start().await;
    let receiver = Receiver::start(true).await;
    let id = registered(&sim, &receiver).await;
    receiver.script(&[
        (500, Duration::ZERO),
        (502, Duration::ZERO),
        (200, Duration::ZERO),
    ]);
    sim.control("/sim/events", &json!([factor_event("lost")]))
        .await;
    receiver.wait_posts(2).await;
    // The failure is logged once Okta gives up: then no further attempt can come.
    let failures = failures_logged(&sim, 1).await;
    assert_eq!(receiver.posts().len(), 2, "at most one retry");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["outcome"]["result"], "FAILURE");
    assert_eq!(failures[0]["target"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_4xx_is_not_retried() {
    let sim = common::start().await;
    let receiver = Receiver::start(true).await;
    registered(&sim, &receiver).await;
    receiver.script(&[(401, Duration::ZERO)]);
    sim.control("/sim/events", &json!([factor_event("denied")]))
        .await;
    receiver.wait_posts(1).await;
    assert_eq!(failures_logged(&sim, 1).await.len(), 1);
    assert_eq!(receiver.posts().len(), 1, "a 4xx is not retried");
}

#[tokio::test]
async fn no_answer_within_3_s_is_a_failure_and_retried() {
    let sim = common::start().await;
    let receiver = Receiver::start(true).await;
    registered(&sim, &receiver).await;
    receiver.script(&[(200, Duration::from_millis(3500))]);
    sim.control("/sim/events", &json!([factor_event("slow")]))
        .await;
    let d = records(&sim, 2).await;
    assert!(d[0]["status"].is_null());
    assert!(d[0]["error"].as_str().unwrap().contains("3 s"), "{}", d[0]);
    assert_eq!(d[1]["status"], 200);
}

#[tokio::test]
async fn duplicates_and_reordering_happen_at_the_configured_rates() {
    let sim = common::start().await;
    let receiver = Receiver::start(true).await;
    registered(&sim, &receiver).await;

    sim.control(
        "/sim/faults",
        &json!({ "hooks": { "duplicate_rate": 1.0 } }),
    )
    .await;
    sim.control("/sim/events", &json!([factor_event("twice")]))
        .await;
    let posts = receiver.wait_posts(2).await;
    assert_eq!(posts[0]["eventId"], posts[1]["eventId"]);
    assert_eq!(posts[1]["data"]["events"][0]["uuid"], "twice");
    assert!(records(&sim, 2).await[1]["duplicate"].as_bool().unwrap());

    // Held back: "first" is persisted before "second" but arrives after it.
    sim.control("/sim/faults", &json!({ "hooks": { "reorder_rate": 1.0 } }))
        .await;
    sim.control("/sim/events", &json!([factor_event("first")]))
        .await;
    held(&sim, "first").await;
    sim.control("/sim/faults", &json!({})).await;
    sim.control("/sim/events", &json!([factor_event("second")]))
        .await;
    let posts = receiver.wait_posts(4).await;
    let order: Vec<&str> = posts[2..]
        .iter()
        .map(|p| p["data"]["events"][0]["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["second", "first"]);
}
