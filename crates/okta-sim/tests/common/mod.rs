//! Test support: an in-process org on a real loopback socket, and a real hook receiver.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::any;
use okta_sim::server::{self, Org, RateLimits};
use serde_json::Value;

pub const TOKEN: &str = "t0ken";

/// The URL of a response's `rel="next"` link, if any.
pub fn next_link(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|l| l.ends_with("rel=\"next\""))
        .and_then(|l| l.trim_start_matches('<').split('>').next())
        .map(str::to_owned)
}

/// The first `errorCauses[].errorSummary` of an Okta error response (asserting its status).
pub async fn error_cause(r: reqwest::Response, status: u16) -> String {
    assert_eq!(r.status(), status);
    let body: Value = r.json().await.unwrap();
    body["errorCauses"][0]["errorSummary"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub struct Sim {
    pub base: String,
    pub org: Arc<Org>,
    pub http: reqwest::Client,
    _local: server::Local,
}

pub async fn start() -> Sim {
    start_with(RateLimits::default()).await
}

pub async fn start_with(rate_limits: RateLimits) -> Sim {
    let local = server::Local::start(TOKEN, rate_limits, 42).await.unwrap();
    Sim {
        base: local.base.clone(),
        org: local.org.clone(),
        http: reqwest::Client::new(),
        _local: local,
    }
}

impl Sim {
    /// An SSWS-authorized GET of a path, or of a full URL (a `next` link).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.http
            .get(url)
            .header("Authorization", format!("SSWS {TOKEN}"))
            .send()
            .await
            .unwrap()
    }

    /// An SSWS-authorized POST of JSON.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("SSWS {TOKEN}"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A control-API POST that must succeed; its JSON answer.
    pub async fn control(&self, path: &str, body: &Value) -> Value {
        let r = self.post(path, body).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// `GET /sim/hooks/deliveries`.
    pub async fn deliveries(&self) -> Vec<Value> {
        self.get("/sim/hooks/deliveries")
            .await
            .json()
            .await
            .unwrap()
    }
}

/// What a hook receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: String,
}

#[derive(Default)]
struct ReceiverState {
    got: Vec<Received>,
    /// How to answer the next POSTs (status, delay); 200 at once when empty.
    script: VecDeque<(u16, Duration)>,
    /// Whether verification GETs are echoed.
    echo: bool,
}

/// A real HTTP hook endpoint on loopback.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub async fn start(echo: bool) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            echo,
            ..ReceiverState::default()
        }));
        let app = axum::Router::new()
            .route("/hook", any(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, state }
    }

    /// Answers the next POSTs with these statuses and delays, in order.
    pub fn script(&self, answers: &[(u16, Duration)]) {
        self.state
            .lock()
            .unwrap()
            .script
            .extend(answers.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().got.clone()
    }

    pub fn posts(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter(|r| r.method == Method::POST)
            .map(|r| serde_json::from_str(&r.body).unwrap())
            .collect()
    }

    /// Waits until `n` POSTs arrived (or fails after 10 s).
    pub async fn wait_posts(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let posts = self.posts();
            if posts.len() >= n {
                return posts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} deliveries, got {:?}", self.posts());
    }
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    method: Method,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let (answer, echo) = {
        let mut s = state.lock().unwrap();
        s.got.push(Received {
            method: method.clone(),
            headers: headers.clone(),
            body,
        });
        let answer = if method == Method::POST {
            s.script.pop_front()
        } else {
            None
        };
        (answer, s.echo)
    };
    if method == Method::GET {
        let challenge = headers
            .get("x-okta-verification-challenge")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let v = if echo { challenge } else { "wrong" };
        return (
            StatusCode::OK,
            serde_json::json!({ "verification": v }).to_string(),
        );
    }
    let (status, delay) = answer.unwrap_or((200, Duration::ZERO));
    tokio::time::sleep(delay).await;
    (StatusCode::from_u16(status).unwrap(), String::new())
}
