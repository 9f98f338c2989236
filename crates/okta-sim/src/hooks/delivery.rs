//! How Okta calls a hook: the one-time verification GET, and event deliveries — a POST of the
//! `com.okta.event_hook` envelope, a 3 s timeout, at most one retry (5xx or no answer; never on
//! 4xx) — and the record of every call, for `GET /sim/hooks/deliveries`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::registry::Hook;
use crate::logs::okta_time;

/// Okta's timeout for a hook call.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// Pause before the one retry.
pub const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Where and how to call one hook (a snapshot, so a delivery in flight is unaffected by edits).
#[derive(Clone)]
pub struct Target {
    pub hook_id: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    /// The header among `headers` that carries the shared secret.
    pub auth_key: Option<String>,
}

impl From<&Hook> for Target {
    fn from(h: &Hook) -> Self {
        Target {
            hook_id: h.id.clone(),
            uri: h.uri.clone(),
            headers: h.headers.clone(),
            auth_key: h.auth_key().map(str::to_owned),
        }
    }
}

impl Target {
    /// The same call without the shared secret (an impostor's, or a broken Okta's).
    pub fn without_auth(mut self) -> Target {
        if let Some(key) = &self.auth_key {
            self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        }
        self
    }
}

/// One call Okta made to a hook.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// `verification`, `delivery`, or `held` (a batch held back to be sent out of order).
    pub kind: &'static str,
    pub hook_id: String,
    /// The envelope's `eventId` (deliveries only): the same for a retry and a duplicate.
    pub delivery_id: Option<String>,
    /// 1, or 2 for the retry.
    pub attempt: u8,
    /// Sent again on purpose (the configured duplicate rate).
    pub duplicate: bool,
    pub sent_at: String,
    /// The hook's HTTP status, if it answered in time.
    pub status: Option<u16>,
    /// Why there was no status (timeout, connection refused, …).
    pub error: Option<String>,
    /// The `uuid`s of the events delivered, in envelope order.
    pub events: Vec<String>,
}

/// The body Okta POSTs: the envelope around already-serialized System Log events.
pub fn envelope(
    base_url: &str,
    hook_id: &str,
    delivery_id: &str,
    events: &[&str],
    now: DateTime<Utc>,
) -> String {
    let len: usize = events.iter().map(|e| e.len() + 1).sum();
    let mut body = String::with_capacity(len + 400);
    body.push_str(r#"{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","source":"#);
    body.push_str(&json_string(&format!(
        "{base_url}/api/v1/eventHooks/{hook_id}"
    )));
    body.push_str(r#","eventId":"#);
    body.push_str(&json_string(delivery_id));
    body.push_str(r#","data":{"events":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(e);
    }
    body.push_str(r#"]},"eventTime":"#);
    body.push_str(&json_string(&okta_time(now)));
    body.push_str(r#","contentType":"application/json"}"#);
    body
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The outcome of one HTTP call.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub body: Option<String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Okta retries once on a 5xx or no answer; never on 4xx.
    pub fn retryable(&self) -> bool {
        match self.status {
            Some(s) => s >= 500,
            None => true,
        }
    }
}

async fn call(request: reqwest::RequestBuilder) -> Outcome {
    match tokio::time::timeout(TIMEOUT, async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.text().await.ok();
        Ok::<_, reqwest::Error>((status, body))
    })
    .await
    {
        Ok(Ok((status, body))) => Outcome {
            status: Some(status),
            error: None,
            body,
        },
        Ok(Err(e)) => Outcome {
            status: None,
            error: Some(if e.is_connect() {
                "connection failed".into()
            } else {
                "request failed".into()
            }),
            body: None,
        },
        Err(_) => Outcome {
            status: None,
            error: Some(format!("no answer within {} s", TIMEOUT.as_secs())),
            body: None,
        },
    }
}

fn with_headers(mut request: reqwest::RequestBuilder, target: &Target) -> reqwest::RequestBuilder {
    for (k, v) in &target.headers {
        request = request.header(k, v);
    }
    request
}

/// The one-time verification GET; true when the hook echoed the challenge.
pub async fn verify(http: &reqwest::Client, target: &Target, challenge: &str) -> (bool, Outcome) {
    let request = with_headers(http.get(&target.uri), target)
        .header("Accept", "application/json")
        .header("x-okta-verification-challenge", challenge);
    let outcome = call(request).await;
    let echoed = outcome.status == Some(200)
        && outcome
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
            .is_some_and(|v| v["verification"] == challenge);
    (echoed, outcome)
}

/// One POST of a delivery body.
pub async fn post(http: &reqwest::Client, target: &Target, body: String) -> Outcome {
    let request = with_headers(http.post(&target.uri), target)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(body);
    call(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_okta_s() {
        let now = crate::test_time();
        let body = envelope(
            "https://o.example",
            "who1",
            "85b60edb-4263-4e13-993b-818e26201052",
            &[r#"{"uuid":"a"}"#, r#"{"uuid":"b"}"#],
            now,
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["eventType"], "com.okta.event_hook");
        assert_eq!(v["eventTypeVersion"], "1.0");
        assert_eq!(v["cloudEventsVersion"], "0.1");
        assert_eq!(v["contentType"], "application/json");
        assert_eq!(v["source"], "https://o.example/api/v1/eventHooks/who1");
        assert_eq!(v["eventId"], "85b60edb-4263-4e13-993b-818e26201052");
        assert_eq!(v["eventTime"], "2026-11-25T10:00:00.000Z");
        assert_eq!(v["data"]["events"][1]["uuid"], "b");
    }

    #[test]
    fn retries_follow_okta_rules() {
        let o = |status: Option<u16>| Outcome {
            status,
            error: None,
            body: None,
        };
        assert!(o(Some(500)).retryable());
        assert!(o(Some(503)).retryable());
        assert!(o(None).retryable());
        assert!(!o(Some(400)).retryable());
        assert!(!o(Some(401)).retryable());
        assert!(!o(Some(429)).retryable());
    }
}
