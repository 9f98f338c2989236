//! An HTTPS webhook, for data lakes and SOAR tools: a JSON array of the batch's changes (OCSF by
//! default; a CEF or LEEF line becomes a JSON string), with configured headers (secrets: they
//! usually carry a token). A 2xx is a delivery; a redirect is never followed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::http::{answer, http_client, http_outcome, http_probe_with};
use super::{Encoded, Env, Sink, SinkError, SinkSettings, all};
use crate::config::Invalid;
use crate::config::SecretRef;
use crate::formats::Format;
use crate::health::{Health, Unhealthy};
use crate::pipeline::worker::Outcome;
use crate::secret::Secret;

// ---- Configuration -----------------------------------------------------------------------------

/// `type = "webhook"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub url: String,
    /// Extra headers; their values are secrets, each `{ env = "VARIABLE" }` or
    /// `{ file = "/path" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretRef>,
    /// A PEM file of CA certificates to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Let the header values travel over plain `http://` to another machine.
    #[serde(default)]
    pub danger_plaintext_credentials: bool,
}

impl SinkSettings for Config {
    type Sink = WebhookSink;
    const FORMAT: &'static str = "ocsf";
    const BATCH: u32 = 100;

    fn check(&self, at: &str) -> Result<(), Invalid> {
        crate::config::check_url(
            &format!("{at}.url"),
            &self.url,
            !self.headers.is_empty() && !self.danger_plaintext_credentials,
        )?;
        for (name, value) in &self.headers {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(Invalid(format!(
                    "{at}.headers: {name:?} is not a header name"
                )));
            }
            value
                .check()
                .map_err(|e| format!("{at}.headers.{name}: {e}"))?;
        }
        Ok(())
    }

    fn build(&self, at: &str, _format: &Format, env: Env<'_>) -> Result<WebhookSink, SinkError> {
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.read(&format!("{at}.headers.{k}"), env)?)))
            .collect::<Result<Vec<_>, SinkError>>()?;
        let ca = self.ca_file.as_deref().map(super::read_ca).transpose()?;
        Ok(WebhookSink::new(
            &self.url,
            headers,
            http_client(ca.as_deref())?,
        ))
    }
}

// ---- Encoding and sending ----------------------------------------------------------------------

pub struct WebhookSink {
    url: String,
    headers: Vec<(String, Secret)>,
    client: reqwest::Client,
}

impl WebhookSink {
    pub fn new(url: &str, headers: Vec<(String, Secret)>, client: reqwest::Client) -> WebhookSink {
        WebhookSink {
            url: url.to_owned(),
            headers,
            client,
        }
    }

    fn with_headers(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.expose());
        }
        request
    }
}

impl Sink for WebhookSink {
    async fn send(&self, batch: &[Encoded<'_>]) -> Vec<Outcome> {
        let items: Vec<Value> = batch
            .iter()
            .map(|e| {
                serde_json::from_str(&e.payload)
                    .unwrap_or_else(|_| Value::String(e.payload.clone()))
            })
            .collect();
        let request = self.with_headers(
            self.client
                .post(&self.url)
                .header("Content-Type", "application/json")
                .body(Value::Array(items).to_string()),
        );
        let outcome = match request.send().await {
            Ok(r) => {
                let (status, text) = answer(r).await;
                http_outcome(status, &text)
            }
            Err(e) => Outcome::Unavailable(format!("webhook unreachable: {}", e.without_url())),
        };
        all(batch, &outcome)
    }

    // ---- Healthcheck ---------------------------------------------------------------------------

    /// A `HEAD` with the configured headers: see [`super::http::http_probe`].
    async fn healthcheck(&self) -> Health {
        http_probe_with(self.with_headers(self.client.head(&self.url)))
            .await
            .map_err(|e| Unhealthy(format!("webhook {e}")))
    }
}
