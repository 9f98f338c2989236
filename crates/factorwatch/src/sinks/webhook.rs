//! An HTTPS webhook, for data lakes and SOAR tools: a JSON array of the batch's changes (OCSF by
//! default; a CEF or LEEF line becomes a JSON string), with configured headers.

use serde_json::Value;

use super::{Encoder, encode_all};
use crate::pipeline::worker::{Destination, Outcome};
use crate::secret::Secret;
use crate::store::Due;

pub struct WebhookSink {
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    secret_headers: Vec<(String, Secret)>,
    encoder: Encoder,
    client: reqwest::Client,
    batch_size: u32,
}

impl WebhookSink {
    pub fn new(
        name: impl Into<String>,
        url: &str,
        headers: Vec<(String, String)>,
        secret_headers: Vec<(String, Secret)>,
        encoder: Encoder,
        client: reqwest::Client,
        batch_size: u32,
    ) -> WebhookSink {
        WebhookSink {
            name: name.into(),
            url: url.to_owned(),
            headers,
            secret_headers,
            encoder,
            client,
            batch_size,
        }
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
        let mut request = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .body(Value::Array(items).to_string());
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        for (k, v) in &self.secret_headers {
            request = request.header(k.as_str(), v.expose());
        }
        let result = match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                super::http_outcome(status, &text.chars().take(300).collect::<String>())
            }
            Err(e) => Outcome::Unavailable(format!("webhook unreachable: {}", e.without_url())),
        };
        super::fill(outcomes, &result)
    }
}
