//! Elasticsearch / OpenSearch `_bulk`: each change a `create` with `_id` = the Okta event id, so
//! a repeat is refused with 409 — which counts as delivered: the one SIEM where at-least-once
//! becomes exactly-once. Per-item statuses decide each row: 429 and 5xx are retried, other 4xx
//! (mapping errors) dead-lettered.

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{answer, http_client, http_outcome};
use super::{Encoded, Env, Sink, SinkError, SinkSettings, all};
use crate::config::Invalid;
use crate::formats::Format;
use crate::health::{Health, Unhealthy};
use crate::pipeline::worker::Outcome;
use crate::secret::Secret;

// ---- Configuration -----------------------------------------------------------------------------

/// `type = "elasticsearch"` (or OpenSearch).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cluster's base URL.
    pub url: String,
    /// The index, alias or data stream.
    pub index: String,
    /// `Authorization: ApiKey <value of this variable>`…
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// …or basic auth: a user, and the password from `password_env`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// A PEM file of CA certificates to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Let the credentials travel over plain `http://` to another machine.
    #[serde(default)]
    pub danger_plaintext_credentials: bool,
}

impl SinkSettings for Config {
    type Sink = BulkSink;
    const FORMAT: &'static str = "ecs";
    const BATCH: u32 = 500;

    fn check(&self, at: &str) -> Result<(), Invalid> {
        let credentials = self.api_key_env.is_some() || self.username.is_some();
        crate::config::check_url(
            &format!("{at}.url"),
            &self.url,
            credentials && !self.danger_plaintext_credentials,
        )?;
        // It goes into the request's path: Elasticsearch's own rules for index names.
        let index = &self.index;
        if index.is_empty()
            || index.starts_with(['-', '_', '+'])
            || index
                .chars()
                .any(|c| c.is_whitespace() || "\\/*?\"<>|,#:".contains(c) || c.is_ascii_uppercase())
        {
            return Err(Invalid(format!(
                "{at}.index: {index:?} is not an Elasticsearch index or alias name"
            )));
        }
        if self.username.is_some() && self.password_env.is_none() {
            return Err(Invalid(format!("{at}: username needs password_env")));
        }
        Ok(())
    }

    fn build(&self, at: &str, _format: &Format, env: Env<'_>) -> Result<BulkSink, SinkError> {
        let secret = |what: &str, var: &str| {
            crate::config::read_secret(&format!("{at}.{what}"), Some(var), None, env)
        };
        let auth = match (&self.api_key_env, &self.username, &self.password_env) {
            (Some(var), _, _) => Auth::ApiKey(secret("api_key", var)?),
            (None, Some(user), Some(var)) => Auth::Basic {
                user: user.clone(),
                password: secret("password", var)?,
            },
            _ => Auth::None,
        };
        let ca = self.ca_file.as_deref().map(super::read_ca).transpose()?;
        Ok(BulkSink::new(
            &self.url,
            &self.index,
            auth,
            http_client(ca.as_deref())?,
        ))
    }
}

// ---- Encoding and sending ----------------------------------------------------------------------

pub enum Auth {
    None,
    ApiKey(Secret),
    Basic { user: String, password: Secret },
}

pub struct BulkSink {
    url: String,
    index: String,
    auth: Auth,
    client: reqwest::Client,
}

// ---- What an answer means ----------------------------------------------------------------------

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
    pub fn new(url: &str, index: &str, auth: Auth, client: reqwest::Client) -> BulkSink {
        BulkSink {
            url: url.trim_end_matches('/').to_owned(),
            index: index.to_owned(),
            auth,
            client,
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
    async fn probe(&self) -> Result<(), String> {
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

impl Sink for BulkSink {
    async fn send(&self, batch: &[Encoded<'_>]) -> Vec<Outcome> {
        let mut body = String::new();
        for e in batch {
            let mut doc: Value = serde_json::from_str(&e.payload)
                .unwrap_or_else(|_| json!({ "message": e.payload }));
            // Data streams need @timestamp; JSON formats other than ECS lack it.
            if let Some(obj) = doc.as_object_mut() {
                obj.entry("@timestamp")
                    .or_insert_with(|| json!(crate::record::format_published(&e.item.time())));
            }
            body.push_str(&json!({ "create": { "_id": e.item.id() } }).to_string());
            body.push('\n');
            body.push_str(&doc.to_string());
            body.push('\n');
        }
        let request = self.authorized(
            self.client
                .post(format!("{}/{}/_bulk", self.url, self.index))
                .header("Content-Type", "application/x-ndjson")
                .body(body),
        );
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return all(
                    batch,
                    &Outcome::Unavailable(format!(
                        "Elasticsearch unreachable: {}",
                        e.without_url()
                    )),
                );
            }
        };
        let (status, text) = answer(response).await;
        if !(200..300).contains(&status) {
            return all(batch, &http_outcome(status, &text));
        }
        let reply: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return all(
                    batch,
                    &Outcome::Unavailable(format!("unreadable _bulk response: {e}")),
                );
            }
        };
        let items = reply["items"].as_array().cloned().unwrap_or_default();
        if items.len() != batch.len() {
            return all(
                batch,
                &Outcome::Unavailable(format!(
                    "_bulk answered {} items for {}",
                    items.len(),
                    batch.len()
                )),
            );
        }
        items
            .iter()
            .map(|item| {
                let op = item
                    .get("create")
                    .or_else(|| item.get("index"))
                    .cloned()
                    .unwrap_or(Value::Null);
                // An item without a status is not an answer about it: send it again.
                match op["status"].as_u64().and_then(|s| u16::try_from(s).ok()) {
                    Some(status) => item_outcome(status, &op["error"]),
                    None => Outcome::Unavailable("_bulk answered an item without a status".into()),
                }
            })
            .collect()
    }

    // ---- Healthcheck ---------------------------------------------------------------------------

    async fn healthcheck(&self) -> Health {
        self.probe()
            .await
            .map(|()| "answers with our credentials".to_owned())
            .map_err(Unhealthy)
    }
}
