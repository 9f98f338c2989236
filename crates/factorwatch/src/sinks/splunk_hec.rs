//! Splunk HTTP Event Collector: batches of events, concatenated JSON objects, POSTed to
//! `/services/collector/event` with `Authorization: Splunk <token>`; Splunk's `code` table decides
//! between waiting (busy, server error, token or index problems an operator must fix) and
//! dead-lettering (bad data, found by re-sending the batch one event at a time). With indexer
//! acknowledgement, a batch counts as delivered only once `/services/collector/ack` says so.

use std::time::Duration;

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

/// `type = "splunk_hec"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The collector's base URL (`https://splunk:8088`).
    pub url: String,
    /// The environment variable, or the file, holding the HEC token.
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub sourcetype: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    /// Count a batch delivered only once Splunk acknowledges it indexed.
    #[serde(default)]
    pub ack: bool,
    /// A PEM file of CA certificates to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Let the token travel over plain `http://` to another machine.
    #[serde(default)]
    pub danger_plaintext_credentials: bool,
}

impl SinkSettings for Config {
    type Sink = HecSink;
    const FORMAT: &'static str = "record";
    const BATCH: u32 = 100;

    fn check(&self, at: &str) -> Result<(), Invalid> {
        crate::config::check_url(
            &format!("{at}.url"),
            &self.url,
            !self.danger_plaintext_credentials,
        )?;
        if self.token_env.is_some() == self.token_file.is_some() {
            return Err(Invalid(format!(
                "{at}: set one of token_env and token_file"
            )));
        }
        Ok(())
    }

    fn build(&self, at: &str, format: &Format, env: Env<'_>) -> Result<HecSink, SinkError> {
        let token = crate::config::read_secret(
            &format!("{at}.token"),
            self.token_env.as_deref(),
            self.token_file.as_deref(),
            env,
        )?;
        let ca = self.ca_file.as_deref().map(super::read_ca).transpose()?;
        let settings = HecSettings {
            url: self.url.clone(),
            token,
            index: self.index.clone(),
            sourcetype: self
                .sourcetype
                .clone()
                .unwrap_or_else(|| "okta:factorwatch".into()),
            source: self.source.clone().unwrap_or_else(|| "factorwatch".into()),
            ack_channel: self.ack.then(new_channel),
            ack_interval: Duration::from_secs(1),
            ack_polls: 30,
        };
        Ok(HecSink::new(
            settings,
            format.is_json(),
            http_client(ca.as_deref())?,
        ))
    }
}

/// A fresh GUID for a Splunk indexer-acknowledgement channel.
fn new_channel() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

// ---- Encoding and sending ----------------------------------------------------------------------

pub struct HecSettings {
    /// `https://splunk:8088`.
    pub url: String,
    pub token: Secret,
    pub index: Option<String>,
    pub sourcetype: String,
    pub source: String,
    /// Wait for indexer acknowledgement on this channel.
    pub ack_channel: Option<String>,
    pub ack_interval: Duration,
    pub ack_polls: u32,
}

pub struct HecSink {
    settings: HecSettings,
    /// The payload is JSON (sent as an object), not a line of text (sent as a string).
    json_payload: bool,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    text: String,
    #[serde(default)]
    code: Option<i64>,
    #[serde(rename = "ackId", default)]
    ack_id: Option<u64>,
}

// ---- What an answer means ----------------------------------------------------------------------

/// What Splunk's `code` (with the HTTP status) means for the batch.
pub fn code_outcome(status: u16, code: Option<i64>, text: &str) -> Outcome {
    let why = format!(
        "Splunk HEC HTTP {status}, code {}: {}",
        code.map_or("-".into(), |c| c.to_string()),
        crate::http::client::excerpt(text, 300)
    );
    match code {
        Some(0) if (200..300).contains(&status) => Outcome::Delivered,
        // Code 0 with any other status is not a success (a redirect, a proxy error).
        Some(0) => http_outcome(status, text),
        // No data, invalid data format, event field required or blank, indexed fields: the data.
        Some(5 | 6 | 12 | 13 | 15) => Outcome::Reject(why),
        // Token disabled/required/invalid, wrong index, channel or ack settings: configuration an
        // operator must fix; internal error, busy: Splunk's trouble. Either way, wait.
        Some(_) => Outcome::Unavailable(why),
        None => http_outcome(status, text),
    }
}

impl HecSink {
    pub fn new(settings: HecSettings, json_payload: bool, client: reqwest::Client) -> HecSink {
        HecSink {
            settings,
            json_payload,
            client,
        }
    }

    /// `GET /services/collector/health/1.0` with the token: 200 healthy, 400 invalid token,
    /// 503 queues full (as Vector reads it).
    async fn probe(&self) -> Result<(), String> {
        let r = self
            .client
            .get(format!(
                "{}/services/collector/health/1.0",
                self.settings.url.trim_end_matches('/')
            ))
            .header(
                "Authorization",
                format!("Splunk {}", self.settings.token.expose()),
            )
            .send()
            .await
            .map_err(|e| format!("Splunk HEC unreachable: {}", e.without_url()))?;
        match r.status().as_u16() {
            200 => Ok(()),
            400 => Err("Splunk HEC: invalid token".into()),
            503 => Err("Splunk HEC: queues full".into()),
            s @ 300..=399 => Err(format!(
                "Splunk HEC health: HTTP {s}, a redirect to {}; redirects are never followed",
                crate::http::client::redirect_target(&r)
            )),
            s => Err(format!("Splunk HEC health: HTTP {s}")),
        }
    }

    fn event(&self, e: &Encoded<'_>) -> Value {
        let payload = &e.payload;
        let event = if self.json_payload {
            serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_owned()))
        } else {
            Value::String(payload.to_owned())
        };
        let time = e.item.time().timestamp_millis() as f64 / 1000.0;
        let (event_type, action) = match e.item {
            crate::record::Item::Change(c) => (c.event_type.clone(), c.action.as_str()),
            crate::record::Item::Finding(f) => ("factorwatch.finding".to_owned(), f.rule.as_str()),
        };
        let mut e = json!({
            "time": time,
            "host": e.context.hostname,
            "source": self.settings.source,
            "sourcetype": self.settings.sourcetype,
            "event": event,
            // Index-time fields: the uuid lets a search dedupe an at-least-once repeat.
            "fields": {
                "okta_uuid": e.item.id(),
                "okta_org": e.context.org,
                "okta_event_type": event_type,
                "factorwatch_action": action,
            },
        });
        if let Some(index) = &self.settings.index {
            e["index"] = json!(index);
        }
        e
    }

    async fn post(&self, body: String) -> Outcome {
        let mut request = self
            .client
            .post(format!(
                "{}/services/collector/event",
                self.settings.url.trim_end_matches('/')
            ))
            .header(
                "Authorization",
                format!("Splunk {}", self.settings.token.expose()),
            )
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(channel) = &self.settings.ack_channel {
            request = request.header("X-Splunk-Request-Channel", channel);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Unavailable(format!(
                    "Splunk HEC unreachable: {}",
                    e.without_url()
                ));
            }
        };
        let (status, text) = answer(response).await;
        let reply: Option<Reply> = serde_json::from_str(&text).ok();
        let outcome = match &reply {
            Some(r) => code_outcome(status, r.code, &r.text),
            // A 2xx that is not HEC's `{"text":…,"code":0}` did not come from Splunk's collector
            // (a proxy's page, a captive portal): nothing says the events were taken.
            None if (200..300).contains(&status) => Outcome::Unavailable(format!(
                "HTTP {status} without Splunk HEC's answer: {}",
                crate::http::client::excerpt(&text, 200)
            )),
            None => http_outcome(status, &text),
        };
        match (
            outcome,
            reply.and_then(|r| r.ack_id),
            &self.settings.ack_channel,
        ) {
            (Outcome::Delivered, Some(ack), Some(channel)) => self.await_ack(channel, ack).await,
            (o, _, _) => o,
        }
    }

    /// Polls `/services/collector/ack` until Splunk says the batch is indexed.
    async fn await_ack(&self, channel: &str, ack: u64) -> Outcome {
        for _ in 0..self.settings.ack_polls {
            tokio::time::sleep(self.settings.ack_interval).await;
            let reply = self
                .client
                .post(format!(
                    "{}/services/collector/ack?channel={}",
                    self.settings.url.trim_end_matches('/'),
                    form_urlencoded::byte_serialize(channel.as_bytes()).collect::<String>()
                ))
                .header(
                    "Authorization",
                    format!("Splunk {}", self.settings.token.expose()),
                )
                .header("X-Splunk-Request-Channel", channel)
                .body(json!({ "acks": [ack] }).to_string())
                .send()
                .await;
            let Ok(reply) = reply else { continue };
            let Ok(v) = reply.json_text().await else {
                continue;
            };
            if v["acks"][ack.to_string()].as_bool() == Some(true) {
                return Outcome::Delivered;
            }
        }
        // Not indexed in time: send again (at least once).
        Outcome::Unavailable(format!(
            "Splunk did not acknowledge batch {ack} on channel {channel}"
        ))
    }
}

/// reqwest without its `json` feature: the body parsed here.
trait JsonText {
    async fn json_text(self) -> Result<Value, ()>;
}

impl JsonText for reqwest::Response {
    async fn json_text(self) -> Result<Value, ()> {
        if !self.status().is_success() {
            return Err(());
        }
        let text = crate::http::client::read_limited(self, super::http::MAX_ANSWER)
            .await
            .map_err(|_| ())?;
        serde_json::from_str(&text).map_err(|_| ())
    }
}

impl Sink for HecSink {
    async fn send(&self, batch: &[Encoded<'_>]) -> Vec<Outcome> {
        let events: Vec<String> = batch.iter().map(|e| self.event(e).to_string()).collect();
        let result = self.post(events.join("\n")).await;
        match result {
            // Which event is bad? Send them one by one.
            Outcome::Reject(_) if events.len() > 1 => {
                let mut outcomes = Vec::with_capacity(events.len());
                for e in events {
                    outcomes.push(self.post(e).await);
                }
                outcomes
            }
            o => all(batch, &o),
        }
    }

    // ---- Healthcheck ---------------------------------------------------------------------------

    async fn healthcheck(&self) -> Health {
        self.probe()
            .await
            .map(|()| "healthy".to_owned())
            .map_err(Unhealthy)
    }
}
