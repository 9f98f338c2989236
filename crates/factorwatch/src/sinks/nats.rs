//! NATS JetStream: each change published to a subject a stream captures (a security data lake's
//! intake: Benthos/Redpanda Connect, Vector, a lakehouse loader read from it), counted delivered
//! only once JetStream acknowledges it stored. Every message carries `Nats-Msg-Id` = the org and
//! the Okta event id, so a repeat after a crash is dropped by JetStream within the stream's
//! duplicate window (2 minutes by default): exactly once within that window, at least once beyond.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{Encoded, Env, Sink, SinkError, SinkSettings};
use crate::config::Invalid;
use crate::formats::Format;
use crate::health::{Health, Unhealthy};
use crate::pipeline::worker::Outcome;
use crate::secret::Secret;

// ---- Configuration -----------------------------------------------------------------------------

/// `type = "nats"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server: `nats://host:4222`, or `tls://host:4222`.
    pub url: String,
    /// The subject each change is published to; a JetStream stream must capture it.
    pub subject: String,
    /// A token, from this environment variable…
    #[serde(default)]
    pub token_env: Option<String>,
    /// …or a user, with the password from `password_env`…
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// …or a `.creds` file (JWT and NKey seed).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Let the credentials travel without TLS to a server that is not this machine.
    #[serde(default)]
    pub danger_plaintext_credentials: bool,
}

impl SinkSettings for Config {
    type Sink = NatsSink;
    const FORMAT: &'static str = "ocsf";
    const BATCH: u32 = 500;

    fn check(&self, at: &str) -> Result<(), Invalid> {
        let url = reqwest::Url::parse(&self.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "nats" | "tls") && u.host_str().is_some())
            .ok_or_else(|| {
                Invalid::from(format!(
                    "{at}.url: {:?} is not a nats:// or tls:// URL",
                    self.url
                ))
            })?;
        let credentials = [
            self.token_env.is_some(),
            self.user.is_some(),
            self.credentials_file.is_some(),
        ]
        .iter()
        .filter(|c| **c)
        .count();
        if credentials > 1 {
            return Err(Invalid(format!(
                "{at}: set one of token_env, user (with password_env) and credentials_file"
            )));
        }
        if self.user.is_some() != self.password_env.is_some() {
            return Err(Invalid(format!("{at}: user and password_env go together")));
        }
        let local = url
            .host_str()
            .is_some_and(crate::http::client::is_loopback_host);
        if credentials == 1
            && url.scheme() == "nats"
            && !local
            && !self.danger_plaintext_credentials
        {
            return Err(Invalid(format!(
                "{at}.url: {:?} would send credentials in clear text; use tls:// (plain nats:// is accepted only to this machine, or with danger_plaintext_credentials = true)",
                self.url
            )));
        }
        // A subject is dot-separated tokens; wildcards and spaces cannot be published to.
        let valid = !self.subject.is_empty()
            && self.subject.split('.').all(|t| {
                !t.is_empty() && t != "*" && t != ">" && !t.chars().any(char::is_whitespace)
            });
        if !valid {
            return Err(Invalid(format!(
                "{at}.subject: {:?} is not a subject one can publish to",
                self.subject
            )));
        }
        Ok(())
    }

    fn build(&self, at: &str, _format: &Format, env: Env<'_>) -> Result<NatsSink, SinkError> {
        let secret = |what: &str, var: &str| {
            crate::config::read_secret(&format!("{at}.{what}"), Some(var), None, env)
        };
        let auth = match (&self.token_env, &self.user, &self.password_env) {
            (Some(var), _, _) => Auth::Token(secret("token", var)?),
            (None, Some(user), Some(var)) => Auth::Password {
                user: user.clone(),
                password: secret("password", var)?,
            },
            _ => match &self.credentials_file {
                Some(file) => Auth::Credentials(file.clone()),
                None => Auth::None,
            },
        };
        Ok(NatsSink {
            url: self.url.clone(),
            subject: self.subject.clone(),
            auth,
            ca_file: self.ca_file.clone(),
            jetstream: Mutex::new(None),
        })
    }
}

// ---- Sending -----------------------------------------------------------------------------------

enum Auth {
    None,
    Token(Secret),
    Password { user: String, password: Secret },
    Credentials(PathBuf),
}

/// How long JetStream has to acknowledge a message.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

pub struct NatsSink {
    url: String,
    subject: String,
    auth: Auth,
    ca_file: Option<PathBuf>,
    /// Connected on first use, and again after a failure: a fresh connection fails fast while
    /// the server is down, where a reconnecting one would hold each publish for its ack timeout.
    jetstream: Mutex<Option<(async_nats::Client, jetstream::Context)>>,
}

impl NatsSink {
    async fn context(&self) -> Result<jetstream::Context, String> {
        let mut held = self.jetstream.lock().await;
        if let Some((client, js)) = held.as_ref() {
            if client.connection_state() == async_nats::connection::State::Connected {
                return Ok(js.clone());
            }
            *held = None;
        }
        let mut options = async_nats::ConnectOptions::new()
            .name("factorwatch")
            .connection_timeout(Duration::from_secs(10));
        options = match &self.auth {
            Auth::None => options,
            Auth::Token(t) => options.token(t.expose().to_owned()),
            Auth::Password { user, password } => {
                options.user_and_password(user.clone(), password.expose().to_owned())
            }
            Auth::Credentials(file) => options
                .credentials_file(file)
                .await
                .map_err(|e| format!("cannot read the credentials file {}: {e}", file.display()))?,
        };
        if let Some(ca) = &self.ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        let client = options
            .connect(self.url.as_str())
            .await
            .map_err(|e| format!("cannot connect to NATS: {e}"))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(ACK_TIMEOUT);
        *held = Some((client, js.clone()));
        Ok(js)
    }

    /// Forgets the connection after a failure: the next batch connects afresh.
    async fn reset(&self) {
        *self.jetstream.lock().await = None;
    }
}

// ---- What an answer means ----------------------------------------------------------------------

/// A publish's failure: the message itself too large is refused for good; everything else (no
/// stream captures the subject, no ack in time, the connection lost) is the destination's state,
/// and waits.
pub fn publish_outcome(kind: jetstream::context::PublishErrorKind, detail: String) -> Outcome {
    use jetstream::context::PublishErrorKind as K;
    match kind {
        K::MaxPayloadExceeded => Outcome::Reject(format!("NATS: {detail}")),
        K::StreamNotFound => Outcome::Unavailable(format!(
            "NATS: no JetStream stream captures the subject ({detail})"
        )),
        _ => Outcome::Unavailable(format!("NATS: {detail}")),
    }
}

impl Sink for NatsSink {
    async fn send(&self, batch: &[Encoded<'_>]) -> Vec<Outcome> {
        let js = match self.context().await {
            Ok(js) => js,
            Err(e) => return super::all(batch, &Outcome::Unavailable(e)),
        };
        // Published one after the other, acknowledged together: one round trip per batch.
        let mut pending = Vec::with_capacity(batch.len());
        for e in batch {
            let id = format!("{}/{}", e.context.org, e.item.id());
            let message = jetstream::message::PublishMessage::build()
                .payload(e.payload.clone().into())
                .message_id(id);
            pending.push(js.send_publish(self.subject.clone(), message).await);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for p in pending {
            outcomes.push(match p {
                Err(e) => publish_outcome(e.kind(), e.to_string()),
                Ok(ack) => match ack.await {
                    Ok(_) => Outcome::Delivered,
                    Err(e) => publish_outcome(e.kind(), e.to_string()),
                },
            });
        }
        if outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Unavailable(_)))
        {
            self.reset().await;
        }
        outcomes
    }

    // ---- Healthcheck ---------------------------------------------------------------------------

    /// Connects, and asks JetStream which stream captures the subject.
    async fn healthcheck(&self) -> Health {
        let js = self.context().await.map_err(Unhealthy)?;
        match js.stream_by_subject(self.subject.clone()).await {
            Ok(stream) => Ok(format!("stream {stream} captures {}", self.subject)),
            Err(e) => Err(Unhealthy(format!(
                "NATS: no JetStream stream captures {}: {e}",
                self.subject
            ))),
        }
    }
}
