//! An HTTPS webhook, for data lakes and SOAR tools: a JSON array of the batch's changes (OCSF by
//! default; a CEF or LEEF line becomes a JSON string), with configured headers (secrets: they
//! usually carry a token). A 2xx is a delivery; a redirect is never followed.

use serde_json::Value;

use super::{Encoder, encode_all};
use crate::pipeline::worker::{Destination, Outcome};
use crate::secret::Secret;
use crate::store::Due;

pub struct WebhookSink {
    name: String,
    url: String,
    headers: Vec<(String, Secret)>,
    encoder: Encoder,
    client: reqwest::Client,
    batch_size: u32,
}

impl WebhookSink {
    pub fn new(
        name: impl Into<String>,
        url: &str,
        headers: Vec<(String, Secret)>,
        encoder: Encoder,
        client: reqwest::Client,
        batch_size: u32,
    ) -> WebhookSink {
        WebhookSink {
            name: name.into(),
            url: url.to_owned(),
            headers,
            encoder,
            client,
            batch_size,
        }
    }
}

impl WebhookSink {
    fn with_headers(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.expose());
        }
        request
    }

    /// A `HEAD` with the configured headers: see [`super::http_probe`].
    pub async fn healthcheck(&self) -> Result<(), String> {
        super::http_probe_with(self.with_headers(self.client.head(&self.url)))
            .await
            .map(drop)
            .map_err(|e| format!("webhook {e}"))
    }
}

impl Destination for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_size(&self) -> u32 {
        self.batch_size
    }

    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        let (outcomes, good) = encode_all(&self.encoder, rows);
        if good.is_empty() {
            return super::fill(outcomes, &Outcome::Delivered);
        }
        let items: Vec<Value> = good
            .iter()
            .map(|(_, _, p)| serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.clone())))
            .collect();
        let request = self.with_headers(
            self.client
                .post(&self.url)
                .header("Content-Type", "application/json")
                .body(Value::Array(items).to_string()),
        );
        let result = match request.send().await {
            Ok(r) => {
                let (status, text) = super::answer(r).await;
                super::http_outcome(status, &text)
            }
            Err(e) => Outcome::Unavailable(format!("webhook unreachable: {}", e.without_url())),
        };
        super::fill(outcomes, &result)
    }
}
