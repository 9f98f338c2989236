//! Splunk HEC, Elasticsearch `_bulk` and webhook sinks against servers that answer as the
//! documented protocols do (success, each error code, partial failures, acknowledgements, an
//! outage): nothing lost, nothing dead-lettered that could be delivered, order kept.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use factorwatch::backoff::Backoff;
use factorwatch::formats::Format;
use factorwatch::pipeline::worker::{self, WorkerPolicy};
use factorwatch::secret::Secret;
use factorwatch::sinks::{self, SinkDestination};
use factorwatch::store::Store;
use factorwatch::store::sqlite::SqliteStore;
use serde_json::{Value, json};

fn policy() -> WorkerPolicy {
    WorkerPolicy {
        max_attempts: 4,
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
        },
        idle_poll: Duration::from_millis(20),
    }
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Runs `sink`'s worker until `done` holds.
async fn run_until<D: worker::Destination>(
    store: &SqliteStore,
    sink: D,
    what: &str,
    done: impl AsyncFnMut() -> bool,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        store.clone(),
        Arc::new(sink),
        policy(),
        Default::default(),
        stopped,
    ));
    common::eventually(30, what, done).await;
    let _ = stop.send(true);
    task.await.unwrap();
}

async fn outbox(store: &SqliteStore, destination: &str) -> (u64, u64, u64) {
    let stats = store.stats().await.unwrap();
    stats
        .outbox
        .iter()
        .find(|(d, ..)| d == destination)
        .map_or((0, 0, 0), |(_, a, b, c)| (*a, *b, *c))
}

// ---- Splunk HEC -------------------------------------------------------------------------------

#[derive(Default)]
struct Hec {
    up: AtomicBool,
    events: Mutex<Vec<Value>>,
    next_ack: AtomicU64,
    polls: Mutex<HashMap<u64, u32>>,
}

async fn hec_event(
    State(hec): State<Arc<Hec>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let reply = |status: u16, text: &str, code: u32| {
        (
            StatusCode::from_u16(status).unwrap(),
            json!({ "text": text, "code": code }).to_string(),
        )
    };
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => return reply(401, "Token is required", 2),
        Some("Splunk hec-t0ken") => {}
        Some(_) => return reply(403, "Invalid token", 4),
    }
    if !hec.up.load(Ordering::SeqCst) {
        return reply(503, "Server is busy", 9);
    }
    // Concatenated JSON objects, as HEC takes them.
    let events: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(&body)
        .into_iter::<Value>()
        .collect();
    let Ok(events) = events else {
        return reply(400, "Invalid data format", 6);
    };
    if events.is_empty() {
        return reply(400, "No data", 5);
    }
    for e in &events {
        match e.get("event") {
            None => return reply(400, "Event field is required", 12),
            Some(ev) if ev.to_string().contains("POISON") => {
                return reply(400, "Invalid data format", 6);
            }
            _ => {}
        }
    }
    hec.events.lock().unwrap().extend(events);
    match headers.get("x-splunk-request-channel") {
        Some(_) => {
            let id = hec.next_ack.fetch_add(1, Ordering::SeqCst);
            (
                StatusCode::OK,
                json!({ "text": "Success", "code": 0, "ackId": id }).to_string(),
            )
        }
        None => reply(200, "Success", 0),
    }
}

/// Acknowledges each batch on its second poll.
async fn hec_ack(
    State(hec): State<Arc<Hec>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    if headers.get("x-splunk-request-channel").is_none() {
        return (
            StatusCode::BAD_REQUEST,
            json!({ "text": "Data channel is missing", "code": 10 }).to_string(),
        );
    }
    let asked: Value = serde_json::from_str(&body).unwrap();
    let mut polls = hec.polls.lock().unwrap();
    let mut acks = serde_json::Map::new();
    for id in asked["acks"].as_array().unwrap() {
        let id = id.as_u64().unwrap();
        let n = polls.entry(id).or_default();
        *n += 1;
        acks.insert(id.to_string(), json!(*n >= 2));
    }
    (StatusCode::OK, json!({ "acks": acks }).to_string())
}

async fn hec_health(headers: HeaderMap) -> (StatusCode, String) {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Splunk hec-t0ken") => (
            StatusCode::OK,
            json!({ "text": "HEC is healthy", "code": 17 }).to_string(),
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            json!({ "text": "Invalid token", "code": 4 }).to_string(),
        ),
    }
}

async fn hec_server() -> (String, Arc<Hec>) {
    let hec = Arc::new(Hec::default());
    let app = axum::Router::new()
        .route(
            "/services/collector/health/1.0",
            axum::routing::get(hec_health),
        )
        .route("/services/collector/event", post(hec_event))
        .route("/services/collector/ack", post(hec_ack))
        .with_state(hec.clone());
    (serve(app).await, hec)
}

fn hec_sink(url: &str, token: &str, ack: bool) -> SinkDestination<sinks::splunk_hec::HecSink> {
    let hec = sinks::splunk_hec::HecSink::new(
        sinks::splunk_hec::HecSettings {
            url: url.into(),
            token: Secret::new(token),
            index: Some("security".into()),
            sourcetype: "okta:factorwatch".into(),
            source: "factorwatch".into(),
            ack_channel: ack.then(|| "11111111-2222-4333-8444-555555555555".into()),
            ack_interval: Duration::from_millis(20),
            ack_polls: 10,
        },
        true,
        reqwest::Client::new(),
    );
    SinkDestination::new("siem:splunk", Format::Record, 50, hec)
}

#[tokio::test(flavor = "multi_thread")]
async fn hec_waits_out_an_outage_then_delivers_everything_once_in_order_with_acks() {
    let (url, hec) = hec_server().await;
    let store = common::store_with("hec-outage", common::changes("h", 600, &["siem:splunk"])).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        store.clone(),
        Arc::new(hec_sink(&url, "hec-t0ken", true)),
        policy(),
        Default::default(),
        stopped,
    ));
    // Splunk is busy for a while: everything waits in the outbox, nothing is dead-lettered.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(outbox(&store, "siem:splunk").await, (0, 600, 0));
    hec.up.store(true, Ordering::SeqCst);
    common::eventually(30, "all delivered", async || {
        outbox(&store, "siem:splunk").await == (600, 0, 0)
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    let events = hec.events.lock().unwrap().clone();
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["fields"]["okta_uuid"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..600).map(|i| format!("h{i:05}")).collect();
    assert_eq!(ids, expected, "each once, in order");
    let e = &events[0];
    assert_eq!(
        (e["index"].clone(), e["sourcetype"].clone()),
        (json!("security"), json!("okta:factorwatch"))
    );
    assert_eq!(e["event"]["id"], "h00000");
    assert!(e["time"].as_f64().unwrap() > 1.7e9, "epoch seconds");
    assert!(
        !hec.polls.lock().unwrap().is_empty(),
        "acknowledgements were awaited"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hec_dead_letters_only_the_bad_event_and_waits_on_a_bad_token() {
    let (url, hec) = hec_server().await;
    hec.up.store(true, Ordering::SeqCst);
    let mut changes = common::changes("p", 20, &["siem:splunk"]);
    changes[7].record = changes[7].record.replace("\"SUCCESS\"", "\"POISON\"");
    let store = common::store_with("hec-poison", changes).await;
    run_until(
        &store,
        hec_sink(&url, "hec-t0ken", false),
        "settled",
        async || {
            let (d, p, x) = outbox(&store, "siem:splunk").await;
            d + x == 20 && p == 0
        },
    )
    .await;
    assert_eq!(outbox(&store, "siem:splunk").await, (19, 0, 1));
    let dead = store.dead_letters(None).await.unwrap();
    assert_eq!(dead[0].event_id, "p00007");
    assert!(
        dead[0].last_error.as_deref().unwrap().contains("code 6"),
        "{dead:?}"
    );
    assert_eq!(hec.events.lock().unwrap().len(), 19);

    // A refused token is an operator's problem: rows wait, none is dead-lettered.
    let store = common::store_with("hec-token", common::changes("t", 5, &["siem:splunk"])).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        store.clone(),
        Arc::new(hec_sink(&url, "wrong", false)),
        policy(),
        Default::default(),
        stopped,
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(outbox(&store, "siem:splunk").await, (0, 5, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn healthchecks_tell_a_working_sink_from_a_broken_one() {
    let (url, _hec) = hec_server().await;
    assert!(
        hec_sink(&url, "hec-t0ken", false)
            .healthcheck()
            .await
            .is_ok()
    );
    let e = hec_sink(&url, "wrong", false)
        .healthcheck()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid token"), "{e}");
    let closed = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let syslog = SinkDestination::new(
        "siem:s",
        Format::Cef,
        10,
        sinks::syslog::SyslogSink::new(closed, sinks::syslog::Transport::Tcp, Default::default()),
    );
    assert!(
        syslog
            .healthcheck()
            .await
            .unwrap_err()
            .to_string()
            .contains("cannot connect")
    );
    let es = Arc::new(Es::default());
    let es_url = serve(
        axum::Router::new()
            .route(
                "/",
                axum::routing::get(|h: HeaderMap| async move {
                    if h.get("authorization").and_then(|v| v.to_str().ok()) == Some("ApiKey a2V5") {
                        StatusCode::OK
                    } else {
                        StatusCode::UNAUTHORIZED
                    }
                }),
            )
            .with_state(es),
    )
    .await;
    let bulk = |key: &str| {
        SinkDestination::new(
            "siem:e",
            Format::Ecs,
            10,
            sinks::elasticsearch::BulkSink::new(
                &es_url,
                "i",
                sinks::elasticsearch::Auth::ApiKey(Secret::new(key)),
                reqwest::Client::new(),
            ),
        )
    };
    assert!(bulk("a2V5").healthcheck().await.is_ok());
    assert!(
        bulk("bad")
            .healthcheck()
            .await
            .unwrap_err()
            .to_string()
            .contains("401")
    );
}

#[test]
fn hec_codes_map_to_wait_or_dead_letter_as_documented() {
    use factorwatch::pipeline::worker::Outcome;
    use factorwatch::sinks::splunk_hec::code_outcome;
    assert_eq!(code_outcome(200, Some(0), "Success"), Outcome::Delivered);
    for (status, code) in [
        (403, 1),
        (401, 2),
        (401, 3),
        (403, 4),
        (400, 7),
        (500, 8),
        (503, 9),
        (400, 10),
        (400, 11),
        (400, 14),
        (400, 16),
    ] {
        assert!(
            matches!(
                code_outcome(status, Some(code), "x"),
                Outcome::Unavailable(_)
            ),
            "code {code}"
        );
    }
    for code in [5, 6, 12, 13, 15] {
        assert!(
            matches!(code_outcome(400, Some(code), "x"), Outcome::Reject(_)),
            "code {code}"
        );
    }
    assert!(matches!(
        code_outcome(502, None, "bad gateway"),
        Outcome::Unavailable(_)
    ));
}

// ---- Elasticsearch _bulk ----------------------------------------------------------------------

#[derive(Default)]
struct Es {
    docs: Mutex<HashMap<String, Value>>,
    throttle_once: Mutex<HashSet<String>>,
    requests: AtomicU64,
}

async fn es_bulk(
    State(es): State<Arc<Es>>,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    es.requests.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("ApiKey a2V5") {
        return (
            StatusCode::UNAUTHORIZED,
            json!({ "error": { "type": "security_exception" }, "status": 401 }).to_string(),
        );
    }
    assert!(body.ends_with('\n'), "a _bulk body ends with a newline");
    let lines: Vec<&str> = body.lines().collect();
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let action: Value = serde_json::from_str(pair[0]).unwrap();
        let doc: Value = serde_json::from_str(pair[1]).unwrap();
        let id = action["create"]["_id"].as_str().unwrap().to_owned();
        let (status, error) = if doc.to_string().contains("MAPPING_ERROR") {
            (
                400,
                json!({ "type": "mapper_parsing_exception", "reason": "failed to parse field" }),
            )
        } else if es.throttle_once.lock().unwrap().remove(&id) {
            (
                429,
                json!({ "type": "es_rejected_execution_exception", "reason": "rejected execution" }),
            )
        } else if es.docs.lock().unwrap().contains_key(&id) {
            (
                409,
                json!({ "type": "version_conflict_engine_exception", "reason": "document already exists" }),
            )
        } else {
            assert!(
                doc.get("@timestamp").is_some(),
                "data streams need @timestamp"
            );
            es.docs.lock().unwrap().insert(id.clone(), doc);
            (201, Value::Null)
        };
        errors |= status >= 300;
        let mut item = json!({ "_index": index, "_id": id, "status": status });
        if !error.is_null() {
            item["error"] = error;
        }
        items.push(json!({ "create": item }));
    }
    (
        StatusCode::OK,
        json!({ "took": 3, "errors": errors, "items": items }).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_retries_throttled_items_dead_letters_mapping_errors_and_counts_409_as_delivered() {
    let es = Arc::new(Es::default());
    let url = serve(
        axum::Router::new()
            .route("/{index}/_bulk", post(es_bulk))
            .with_state(es.clone()),
    )
    .await;
    let mut changes = common::changes("b", 40, &["siem:elastic"]);
    changes[3].raw = changes[3].raw.replace("Activate factor", "MAPPING_ERROR");
    for id in ["b00010", "b00011", "b00025"] {
        es.throttle_once.lock().unwrap().insert(id.into());
    }
    // Already indexed by an earlier run that crashed before recording it.
    es.docs.lock().unwrap().insert("b00030".into(), json!({}));
    let store = common::store_with("bulk", changes).await;
    let sink = SinkDestination::new(
        "siem:elastic",
        Format::Ecs,
        16,
        sinks::elasticsearch::BulkSink::new(
            &url,
            "logs-okta.mfa-default",
            sinks::elasticsearch::Auth::ApiKey(Secret::new("a2V5")),
            reqwest::Client::new(),
        ),
    );
    run_until(&store, sink, "settled", async || {
        let (d, p, x) = outbox(&store, "siem:elastic").await;
        d + x == 40 && p == 0
    })
    .await;
    assert_eq!(outbox(&store, "siem:elastic").await, (39, 0, 1));
    let dead = store.dead_letters(None).await.unwrap();
    assert_eq!(dead[0].event_id, "b00003");
    assert!(dead[0].last_error.as_deref().unwrap().contains("400"));
    let docs = es.docs.lock().unwrap();
    assert_eq!(
        docs.len(),
        39,
        "each document once; the 409 counted as delivered"
    );
    assert_eq!(docs["b00012"]["event"]["category"], json!(["iam"]));
}

// ---- Webhook ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_posts_ocsf_arrays_with_its_headers_and_retries_a_5xx() {
    let got: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::default();
    let calls = Arc::new(AtomicU64::new(0));
    let app = {
        let got = got.clone();
        let calls = calls.clone();
        axum::Router::new().route(
            "/ingest",
            post(move |headers: HeaderMap, body: String| {
                let got = got.clone();
                let calls = calls.clone();
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        return StatusCode::BAD_GATEWAY;
                    }
                    got.lock()
                        .unwrap()
                        .push((headers, serde_json::from_str(&body).unwrap()));
                    StatusCode::ACCEPTED
                }
            }),
        )
    };
    let url = serve(app).await;
    let store = common::store_with("webhook", common::changes("w", 7, &["siem:lake"])).await;
    let sink = SinkDestination::new(
        "siem:lake",
        Format::parse("ocsf").unwrap(),
        100,
        sinks::webhook::WebhookSink::new(
            &format!("{url}/ingest"),
            vec![
                ("x-source".into(), Secret::new("factorwatch")),
                ("authorization".into(), Secret::new("Bearer lake-t0ken")),
            ],
            reqwest::Client::new(),
        ),
    );
    run_until(&store, sink, "delivered", async || {
        outbox(&store, "siem:lake").await == (7, 0, 0)
    })
    .await;
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(headers["authorization"], "Bearer lake-t0ken");
    assert_eq!(headers["x-source"], "factorwatch");
    assert_eq!(body.as_array().unwrap().len(), 7);
    assert_eq!(body[0]["class_uid"], 3001);
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_syslog_sends_one_strict_rfc_5424_datagram_per_change_within_2048_octets() {
    use factorwatch::pipeline::worker::Destination;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap().to_string();
    let mut changes = common::changes("u", 5, &["siem:udp"]);
    // A huge field: the datagram is cut, not split or dropped.
    changes[2].raw = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
    let store = common::store_with("udp", changes).await;
    let sink = SinkDestination::new(
        "siem:udp",
        Format::Raw,
        10,
        sinks::syslog::SyslogSink::new(address, sinks::syslog::Transport::Udp, Default::default()),
    );
    let rows = store
        .due("siem:udp", 10, chrono::Utc::now(), true)
        .await
        .unwrap();
    let outcomes = sink.deliver(&rows).await;
    assert!(
        outcomes
            .iter()
            .all(|o| *o == factorwatch::pipeline::worker::Outcome::Delivered)
    );
    let mut buf = vec![0u8; 65536];
    for _ in 0..5 {
        let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n <= 2048, "{n} octets");
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let m = factorwatch::formats::syslog::parse(text).unwrap();
        assert!(
            m.params
                .iter()
                .any(|(k, v)| k == "uuid" && v.starts_with('u'))
        );
    }
}

// ---- Redirects, answers that are not the protocol's, collectors that close --------------------

/// A server that answers every request `302 Found` to `to`, and one at `to` that counts what
/// reaches it.
async fn redirecting() -> (String, Arc<AtomicU64>) {
    let reached = Arc::new(AtomicU64::new(0));
    let elsewhere = {
        let reached = reached.clone();
        serve(axum::Router::new().fallback(move || {
            let reached = reached.clone();
            async move {
                reached.fetch_add(1, Ordering::SeqCst);
                json!({ "text": "Success", "code": 0 }).to_string()
            }
        }))
        .await
    };
    let redirect = serve(axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let to = format!("{elsewhere}{uri}");
        async move { (StatusCode::FOUND, [("location", to)], "") }
    }))
    .await;
    (redirect, reached)
}

fn sink_config(name: &str, kind: &str, url: &str) -> factorwatch::sinks::SinkConfig {
    let own = match kind {
        "splunk_hec" => "token_env = \"HEC_TOKEN\"\n",
        "elasticsearch" => "index = \"i\"\n",
        _ => "[headers]\nauthorization = { env = \"HOOK_TOKEN\" }\n",
    };
    toml::from_str(&format!(
        "name = \"{name}\"\ntype = \"{kind}\"\nurl = \"{url}\"\n{own}"
    ))
    .unwrap()
}

fn sink_env(name: &str) -> Option<String> {
    match name {
        "HEC_TOKEN" => Some("hec-t0ken".into()),
        "HOOK_TOKEN" => Some("Bearer lake-t0ken".into()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_http_sink_follows_a_redirect_or_counts_it_delivered() {
    use factorwatch::pipeline::worker::{Destination, Outcome};
    let (url, reached) = redirecting().await;
    let store = common::store_with("redirect", common::changes("r", 3, &["siem:x"])).await;
    let rows = store
        .due("siem:x", 10, chrono::Utc::now(), true)
        .await
        .unwrap();
    for kind in ["webhook", "splunk_hec", "elasticsearch"] {
        let sink = sinks::build(&sink_config("x", kind, &url), &sink_env).unwrap();
        let outcomes = sink.deliver(&rows).await;
        for o in &outcomes {
            assert!(
                matches!(o, Outcome::Unavailable(why) if why.contains("redirect")),
                "{kind}: {o:?}"
            );
        }
        let health = sink.healthcheck().await.unwrap_err();
        assert!(health.to_string().contains("redirect"), "{kind}: {health}");
    }
    let e = factorwatch::chat::post(&Secret::new(format!("{url}/services/T/B/x")), "hello")
        .await
        .unwrap_err();
    let e = e.to_string();
    assert!(e.contains("redirect") && !e.contains("/services/"), "{e}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "neither a body nor a secret header went where the redirect pointed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hec_200_that_is_not_hec_s_answer_is_not_a_delivery() {
    use factorwatch::pipeline::worker::{Destination, Outcome};
    let url =
        serve(axum::Router::new().fallback(|| async { "<html>Welcome to the proxy</html>" })).await;
    let store = common::store_with("hec-html", common::changes("p", 2, &["siem:x"])).await;
    let rows = store
        .due("siem:x", 10, chrono::Utc::now(), true)
        .await
        .unwrap();
    let sink = sinks::build(&sink_config("x", "splunk_hec", &url), &sink_env).unwrap();
    for o in sink.deliver(&rows).await {
        assert!(
            matches!(&o, Outcome::Unavailable(why) if why.contains("without Splunk HEC's answer")),
            "{o:?}"
        );
    }
}

/// A syslog collector that reads one octet-counted message per connection, then closes it.
async fn one_message_per_connection() -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::AsyncReadExt;
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let sink = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read until one whole frame ("LEN SP MSG") is in.
            while let Ok(n) = s.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((len, rest)) = text.split_once(' ')
                    && let Ok(len) = len.parse::<usize>()
                    && rest.len() >= len
                {
                    sink.lock().unwrap().push(rest[..len].to_owned());
                    break;
                }
            }
            drop(s);
        }
    });
    (address, got)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_closes_each_connection_loses_nothing() {
    use factorwatch::pipeline::worker::{Destination, Outcome};
    let (address, got) = one_message_per_connection().await;
    let store = common::store_with("closing", common::changes("c", 3, &["siem:s"])).await;
    let sink = SinkDestination::new(
        "siem:s",
        Format::Cef,
        1,
        sinks::syslog::SyslogSink::new(address, sinks::syslog::Transport::Tcp, Default::default()),
    );
    // A, B and C sent some time apart, each its own batch, each counted delivered.
    let rows = store
        .due("siem:s", 10, chrono::Utc::now(), true)
        .await
        .unwrap();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            sink.deliver(std::slice::from_ref(row)).await,
            [Outcome::Delivered]
        );
        common::eventually(5, "the collector read the message", async || {
            got.lock().unwrap().len() > i
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    for id in ["c00000", "c00001", "c00002"] {
        assert!(got.iter().any(|m| m.contains(id)), "{id} lost: {got:?}");
    }
}
