//! SIEM destinations, each an outbox [`Destination`]: an NDJSON file ([`file`]), syslog over
//! TCP, TLS or UDP ([`syslog`]), Splunk HEC ([`splunk_hec`]), Elasticsearch/OpenSearch `_bulk`
//! ([`elasticsearch`]) and an HTTPS webhook ([`webhook`]). Each encodes with its configured format
//! and classifies its failures: the destination is down (wait, in order), this row failed (retry,
//! counted), or retrying cannot help (dead-letter).

pub mod elasticsearch;
pub mod file;
pub mod splunk_hec;
pub mod syslog;
pub mod webhook;

use std::path::Path;

use crate::formats::{Context, Format};
use crate::pipeline::worker::{Destination, Outcome};
use crate::record::MfaChange;
use crate::store::Due;

/// How a sink turns a stored row into its payload.
#[derive(Debug, Clone)]
pub struct Encoder {
    pub format: Format,
    pub hostname: String,
}

impl Encoder {
    pub fn new(format: Format) -> Encoder {
        Encoder {
            format,
            hostname: crate::formats::local_hostname(),
        }
    }

    pub fn context(&self, row: &Due) -> Context {
        Context {
            org: row.org.clone(),
            hostname: self.hostname.clone(),
        }
    }

    /// The row's change and its encoding; an unreadable stored record is a permanent failure.
    pub fn encode(&self, row: &Due) -> Result<(MfaChange, String), Outcome> {
        let change: MfaChange = serde_json::from_str(&row.record)
            .map_err(|e| Outcome::Reject(format!("stored record unreadable: {e}")))?;
        let text = self.format.encode(&change, &row.raw, &self.context(row));
        Ok((change, text))
    }
}

/// Reads a PEM bundle of CA certificates.
pub fn read_ca(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))
}

/// The HTTP client a sink sends with: a 30 s timeout, no redirects; trusting the system's roots,
/// or only `ca_pem` when given.
pub fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    crate::http::client::client(std::time::Duration::from_secs(30), ca_pem)
}

/// How much of a SIEM's answer is read (a `_bulk` answer for 500 items is well under this).
pub const MAX_ANSWER: usize = 8 << 20;

/// A SIEM's answer: its status and (bounded) body; for a redirect, a body saying where it
/// pointed, since that is all there is to say.
pub async fn answer(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    if (300..400).contains(&status) {
        let to = crate::http::client::redirect_target(&response);
        return (status, format!("a redirect to {to}"));
    }
    match crate::http::client::read_limited(response, MAX_ANSWER).await {
        Ok(text) => (status, text),
        Err(e) => (status, e.to_string()),
    }
}

/// The outcome for an HTTP status from a SIEM's API, as Vector's HTTP retry logic decides, with
/// one difference: an answer that refuses *every* request is the destination's problem, not the
/// row's, so it waits (an operator fixes it) rather than dead-letter everything. 408, 429 and 5xx
/// but 501 mean try again (the destination is struggling); 401 and 403 mean our credentials are
/// refused; 404, 405, 410 and 421 mean the URL is wrong; a redirect is never followed (it would
/// drop the body and carry the credentials elsewhere): all wait. Other 4xx mean this request
/// itself is wrong.
pub fn http_outcome(status: u16, detail: &str) -> Outcome {
    let detail = crate::http::client::excerpt(detail, 300);
    match status {
        200..=299 => Outcome::Delivered,
        300..=399 => Outcome::Unavailable(format!(
            "HTTP {status}, {detail}: redirects are never followed; check the sink's url"
        )),
        404 | 405 | 410 | 421 => Outcome::Unavailable(format!(
            "HTTP {status}: {detail} (the endpoint refuses every request: check the sink's url)"
        )),
        401 | 403 | 408 | 429 => Outcome::Unavailable(format!("HTTP {status}: {detail}")),
        501 => Outcome::Reject(format!("HTTP {status}: {detail}")),
        500..=599 => Outcome::Unavailable(format!("HTTP {status}: {detail}")),
        _ => Outcome::Reject(format!("HTTP {status}: {detail}")),
    }
}

/// A healthcheck for an HTTP endpoint with no probe of its own: a `HEAD` with `headers` must get
/// an answer (connection and TLS work) that is not a redirect, a refusal of our credentials or a
/// server error. Any other status (405 to a HEAD is common) proves the endpoint is there.
pub async fn http_probe(client: &reqwest::Client, url: &str) -> Result<String, String> {
    http_probe_with(client.head(url)).await
}

/// [`http_probe`] of a prepared request (with the sink's headers).
pub async fn http_probe_with(request: reqwest::RequestBuilder) -> Result<String, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", e.without_url()))?;
    let status = response.status().as_u16();
    match status {
        300..=399 => Err(format!(
            "answered HTTP {status}, a redirect to {}; redirects are never followed",
            crate::http::client::redirect_target(&response)
        )),
        401 | 403 => Err(format!(
            "answered HTTP {status}: our credentials are refused"
        )),
        500..=599 => Err(format!("answered HTTP {status}")),
        _ => Ok(format!("reachable (HTTP {status})")),
    }
}

impl Sink {
    /// Whether the destination can be reached and accepts our credentials, without sending a
    /// change (for `factorwatch check` and start-up logs).
    pub async fn healthcheck(&self) -> Result<(), String> {
        match self {
            Sink::File(s) => s.healthcheck().await,
            Sink::Syslog(s) => s.healthcheck().await,
            Sink::SplunkHec(s) => s.healthcheck().await,
            Sink::Elasticsearch(s) => s.healthcheck().await,
            Sink::Webhook(s) => s.healthcheck().await,
        }
    }
}

pub enum Sink {
    File(file::FileSink),
    Syslog(syslog::SyslogSink),
    SplunkHec(splunk_hec::HecSink),
    Elasticsearch(elasticsearch::BulkSink),
    Webhook(webhook::WebhookSink),
}

impl Destination for Sink {
    fn name(&self) -> &str {
        match self {
            Sink::File(s) => s.name(),
            Sink::Syslog(s) => s.name(),
            Sink::SplunkHec(s) => s.name(),
            Sink::Elasticsearch(s) => s.name(),
            Sink::Webhook(s) => s.name(),
        }
    }

    fn batch_size(&self) -> u32 {
        match self {
            Sink::File(s) => s.batch_size(),
            Sink::Syslog(s) => s.batch_size(),
            Sink::SplunkHec(s) => s.batch_size(),
            Sink::Elasticsearch(s) => s.batch_size(),
            Sink::Webhook(s) => s.batch_size(),
        }
    }

    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        match self {
            Sink::File(s) => s.deliver(rows).await,
            Sink::Syslog(s) => s.deliver(rows).await,
            Sink::SplunkHec(s) => s.deliver(rows).await,
            Sink::Elasticsearch(s) => s.deliver(rows).await,
            Sink::Webhook(s) => s.deliver(rows).await,
        }
    }
}

/// A row that encoded: its index in the batch, its change, its payload.
pub type Encoded = (usize, MfaChange, String);

/// Encodes each row, keeping the failures as outcomes (`None` where still undecided).
pub fn encode_all(encoder: &Encoder, rows: &[Due]) -> (Vec<Option<Outcome>>, Vec<Encoded>) {
    let mut outcomes = vec![None; rows.len()];
    let mut good = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        match encoder.encode(row) {
            Ok((change, text)) => good.push((i, change, text)),
            Err(o) => outcomes[i] = Some(o),
        }
    }
    (outcomes, good)
}

/// Fills every outcome not yet decided with `o`.
pub fn fill(outcomes: Vec<Option<Outcome>>, o: &Outcome) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|x| x.unwrap_or_else(|| o.clone()))
        .collect()
}

/// The outbox's name for a configured sink.
pub fn destination_name(sink: &str) -> String {
    format!("siem:{sink}")
}

/// Builds a configured sink; `env` reads the environment variables that hold its secrets.
pub fn build(
    c: &crate::config::SinkConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Sink, String> {
    use crate::config::{SinkType, read_secret};
    let name = destination_name(&c.name);
    let at = format!("sinks ({})", c.name);
    let default_format = match c.kind {
        SinkType::Elasticsearch => "ecs",
        SinkType::Webhook => "ocsf",
        SinkType::Syslog => "cef",
        SinkType::File | SinkType::SplunkHec => "record",
    };
    let format = Format::parse(c.format.as_deref().unwrap_or(default_format))?;
    let encoder = Encoder::new(format);
    let ca = c.ca_file.as_deref().map(read_ca).transpose()?;
    let secret = |what: &str, var: Option<&str>, file: Option<&Path>| {
        read_secret(&format!("{at}.{what}"), var, file, env).map_err(|e| e.to_string())
    };
    let missing = |what: &str| format!("{at}: {what} is required");
    Ok(match c.kind {
        SinkType::File => {
            let path = c.path.clone().ok_or_else(|| missing("path"))?;
            let target = if path == "-" {
                file::Target::Stdout
            } else {
                file::Target::File(path.into())
            };
            Sink::File(file::FileSink::new(
                name,
                target,
                encoder,
                c.batch_size.unwrap_or(500),
            ))
        }
        SinkType::Syslog => {
            let address = c.address.clone().ok_or_else(|| missing("address"))?;
            let transport = match c.transport.as_deref().unwrap_or("tcp") {
                "tls" => {
                    let host = c.server_name.clone().unwrap_or_else(|| {
                        address.rsplit_once(':').map_or(address.clone(), |(h, _)| {
                            h.trim_matches(['[', ']']).to_owned()
                        })
                    });
                    syslog::Transport::tls(ca.as_deref(), &host)?
                }
                "udp" => syslog::Transport::Udp,
                _ => syslog::Transport::Tcp,
            };
            let options = crate::formats::syslog::Options {
                facility: c
                    .facility
                    .unwrap_or(crate::formats::syslog::DEFAULT_FACILITY),
                ..Default::default()
            };
            Sink::Syslog(syslog::SyslogSink::new(
                name,
                address,
                transport,
                encoder,
                options,
                c.batch_size.unwrap_or(200),
            ))
        }
        SinkType::SplunkHec => {
            let token = secret("token", c.token_env.as_deref(), c.token_file.as_deref())?;
            let settings = splunk_hec::HecSettings {
                url: c.url.clone().ok_or_else(|| missing("url"))?,
                token,
                index: c.index.clone(),
                sourcetype: c
                    .sourcetype
                    .clone()
                    .unwrap_or_else(|| "okta:factorwatch".into()),
                source: c.source.clone().unwrap_or_else(|| "factorwatch".into()),
                ack_channel: c.ack.then(new_channel),
                ack_interval: std::time::Duration::from_secs(1),
                ack_polls: 30,
            };
            Sink::SplunkHec(splunk_hec::HecSink::new(
                name,
                settings,
                encoder,
                http_client(ca.as_deref())?,
                c.batch_size.unwrap_or(100),
            ))
        }
        SinkType::Elasticsearch => {
            let auth = match (&c.api_key_env, &c.username) {
                (Some(var), _) => elasticsearch::Auth::ApiKey(secret("api_key", Some(var), None)?),
                (None, Some(user)) => elasticsearch::Auth::Basic {
                    user: user.clone(),
                    password: secret("password", c.password_env.as_deref(), None)?,
                },
                (None, None) => elasticsearch::Auth::None,
            };
            Sink::Elasticsearch(elasticsearch::BulkSink::new(
                name,
                c.url.as_deref().ok_or_else(|| missing("url"))?,
                c.index.as_deref().ok_or_else(|| missing("index"))?,
                auth,
                encoder,
                http_client(ca.as_deref())?,
                c.batch_size.unwrap_or(500),
            ))
        }
        SinkType::Webhook => {
            let headers = c
                .headers
                .iter()
                .map(|(k, v)| match v {
                    crate::config::HeaderValue::Secret(r) => Ok((
                        k.clone(),
                        secret(&format!("headers.{k}"), r.env.as_deref(), r.file.as_deref())?,
                    )),
                    crate::config::HeaderValue::Literal(_) => Err(format!(
                        "{at}.headers.{k}: header values come from env or file"
                    )),
                })
                .collect::<Result<Vec<_>, String>>()?;
            Sink::Webhook(webhook::WebhookSink::new(
                name,
                c.url.as_deref().ok_or_else(|| missing("url"))?,
                headers,
                encoder,
                http_client(ca.as_deref())?,
                c.batch_size.unwrap_or(100),
            ))
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_class_has_its_outcome() {
        let kind = |status| match http_outcome(status, "x") {
            Outcome::Delivered => "delivered",
            Outcome::Unavailable(_) => "wait",
            Outcome::Reject(_) => "dead",
            _ => "other",
        };
        for (status, expected) in [
            (200, "delivered"),
            (204, "delivered"),
            (301, "wait"),
            (302, "wait"),
            (307, "wait"),
            (400, "dead"),
            (401, "wait"),
            (403, "wait"),
            (404, "wait"),
            (405, "wait"),
            (408, "wait"),
            (413, "dead"),
            (422, "dead"),
            (429, "wait"),
            (500, "wait"),
            (501, "dead"),
            (502, "wait"),
            (503, "wait"),
        ] {
            assert_eq!(kind(status), expected, "HTTP {status}");
        }
    }
}
