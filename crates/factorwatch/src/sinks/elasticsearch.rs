//! Elasticsearch / OpenSearch `_bulk`: each change a `create` with `_id` = the Okta event id, so
//! a repeat is refused with 409 — which counts as delivered: the one SIEM where at-least-once
//! becomes exactly-once. Per-item statuses decide each row: 429 and 5xx are retried, other 4xx
//! (mapping errors) dead-lettered.

use serde_json::{Value, json};

use super::{Encoder, encode_all};
use crate::pipeline::worker::{Destination, Outcome};
use crate::secret::Secret;
use crate::store::Due;

pub enum Auth {
    None,
    ApiKey(Secret),
    Basic { user: String, password: Secret },
}

pub struct BulkSink {
    name: String,
    url: String,
    index: String,
    auth: Auth,
    encoder: Encoder,
    client: reqwest::Client,
    batch_size: u32,
}

/// One item's outcome from its `_bulk` status.
pub fn item_outcome(status: u16, error: &Value) -> Outcome {
    let why = || {
        format!(
            "Elasticsearch item {status}: {}",
            crate::http::client::excerpt(
                error.get("reason").and_then(Value::as_str).unwrap_or(""),
                300
            )
        )
    };
    match status {
        200..=299 | 409 => Outcome::Delivered,
        429 | 500..=599 => Outcome::Retry(why()),
        // The index (or its alias) does not exist: every row would fail the same; wait for it.
        404 => Outcome::Unavailable(why()),
        _ => Outcome::Reject(why()),
    }
}

impl BulkSink {
    pub fn new(
        name: impl Into<String>,
        url: &str,
        index: &str,
        auth: Auth,
        encoder: Encoder,
        client: reqwest::Client,
        batch_size: u32,
    ) -> BulkSink {
        BulkSink {
            name: name.into(),
            url: url.trim_end_matches('/').to_owned(),
            index: index.to_owned(),
            auth,
            encoder,
            client,
            batch_size,
        }
    }
}

impl BulkSink {
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::None => request,
            Auth::ApiKey(key) => {
                request.header("Authorization", format!("ApiKey {}", key.expose()))
            }
            Auth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
        }
    }

    /// `GET /` answers 200 with our credentials.
    pub async fn healthcheck(&self) -> Result<(), String> {
        let r = self
            .authorized(self.client.get(format!("{}/", self.url)))
            .send()
            .await
            .map_err(|e| format!("Elasticsearch unreachable: {}", e.without_url()))?;
        match r.status().as_u16() {
            200 => Ok(()),
            s @ 300..=399 => Err(format!(
                "Elasticsearch answered HTTP {s}, a redirect to {}; redirects are never followed",
                crate::http::client::redirect_target(&r)
            )),
            s => Err(format!("Elasticsearch answered HTTP {s}")),
        }
    }
}

impl Destination for BulkSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_size(&self) -> u32 {
        self.batch_size
    }

    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        let (mut outcomes, good) = encode_all(&self.encoder, rows);
        if good.is_empty() {
            return super::fill(outcomes, &Outcome::Delivered);
        }
        let mut body = String::new();
        for (_, change, payload) in &good {
            let mut doc: Value =
                serde_json::from_str(payload).unwrap_or_else(|_| json!({ "message": payload }));
            // Data streams need @timestamp; JSON formats other than ECS lack it.
            if let Some(obj) = doc.as_object_mut() {
                obj.entry("@timestamp").or_insert_with(|| {
                    json!(crate::record::format_published(&crate::formats::time(
                        change
                    )))
                });
            }
            body.push_str(&json!({ "create": { "_id": change.id.to_wire() } }).to_string());
            body.push('\n');
            body.push_str(&doc.to_string());
            body.push('\n');
        }
        let mut request = self
            .client
            .post(format!("{}/{}/_bulk", self.url, self.index))
            .header("Content-Type", "application/x-ndjson")
            .body(body);
        request = match &self.auth {
            Auth::None => request,
            Auth::ApiKey(key) => {
                request.header("Authorization", format!("ApiKey {}", key.expose()))
            }
            Auth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return super::fill(
                    outcomes,
                    &Outcome::Unavailable(format!(
                        "Elasticsearch unreachable: {}",
                        e.without_url()
                    )),
                );
            }
        };
        let (status, text) = super::answer(response).await;
        if !(200..300).contains(&status) {
            return super::fill(outcomes, &super::http_outcome(status, &text));
        }
        let reply: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return super::fill(
                    outcomes,
                    &Outcome::Unavailable(format!("unreadable _bulk response: {e}")),
                );
            }
        };
        let items = reply["items"].as_array().cloned().unwrap_or_default();
        if items.len() != good.len() {
            return super::fill(
                outcomes,
                &Outcome::Unavailable(format!(
                    "_bulk answered {} items for {}",
                    items.len(),
                    good.len()
                )),
            );
        }
        for ((i, _, _), item) in good.iter().zip(items) {
            let op = item
                .get("create")
                .or_else(|| item.get("index"))
                .cloned()
                .unwrap_or(Value::Null);
            // An item without a status is not an answer about it: send it again.
            outcomes[*i] = Some(
                match op["status"].as_u64().and_then(|s| u16::try_from(s).ok()) {
                    Some(status) => item_outcome(status, &op["error"]),
                    None => Outcome::Unavailable("_bulk answered an item without a status".into()),
                },
            );
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Delivered))
            .collect()
    }
}
