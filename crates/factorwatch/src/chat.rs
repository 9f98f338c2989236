//! The security team's chat channel: a Slack- or Teams-compatible incoming webhook taking
//! `{"text": …}`. [`post`] sends one message (the lag alarm); [`ChatDestination`] is the outbox
//! destination that copies MFA changes made by someone other than the user there, each batch one
//! message, independent of every user-notice policy.
//!
//! The webhook's URL carries the channel's token: it is a [`Secret`], never shown in an error,
//! and never sent anywhere a redirect points.

use std::time::Duration;

use crate::pipeline::worker::{Destination, Outcome};
use crate::secret::Secret;
use crate::store::Due;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The security team's chat webhook URL, if configured.
pub fn security_webhook(
    config: &crate::config::Config,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<Secret>, crate::config::ConfigError> {
    let e = &config.email;
    webhook_url(
        "email.security_webhook",
        e.security_webhook_env.as_deref(),
        e.security_webhook_file.as_deref(),
        env,
    )
}

/// The lag alarm's chat webhook URL, if configured.
pub fn lag_alarm_webhook(
    config: &crate::config::Config,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<Secret>, crate::config::ConfigError> {
    let o = &config.observability;
    webhook_url(
        "observability.lag_alarm_webhook",
        o.lag_alarm_webhook_env.as_deref(),
        o.lag_alarm_webhook_file.as_deref(),
        env,
    )
}

/// A webhook URL from the secret it is (none if neither is set): https, or plain http only to
/// this machine.
fn webhook_url(
    what: &str,
    env_name: Option<&str>,
    file: Option<&std::path::Path>,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<Secret>, crate::config::ConfigError> {
    if env_name.is_none() && file.is_none() {
        return Ok(None);
    }
    let url = crate::config::read_secret(what, env_name, file, env)?;
    let ok = reqwest::Url::parse(url.expose()).is_ok_and(|u| {
        matches!(u.scheme(), "https" | "http") && !crate::http::client::is_cleartext_remote(&u)
    });
    if ok {
        Ok(Some(url))
    } else {
        // The value is a secret: say what is wrong without it.
        Err(crate::config::ConfigError::Secret(format!(
            "{what}: the URL is not https:// (plain http:// is accepted only to this machine)"
        )))
    }
}

/// Why a post to the channel failed; never with the URL (it carries the channel's token).
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error(
        "answered HTTP {status}, a redirect to {to}; redirects are never followed (check the webhook URL)"
    )]
    Redirect { status: u16, to: String },
    #[error("answered HTTP {0}")]
    Refused(u16),
}

/// Posts `text` to the channel.
pub async fn post(url: &Secret, text: &str) -> Result<(), ChatError> {
    let client = crate::http::client::client(TIMEOUT, None)
        .map_err(|e| ChatError::Unreachable(e.without_url().to_string()))?;
    let response = client
        .post(url.expose())
        .header("Content-Type", "application/json")
        .body(serde_json::json!({ "text": text }).to_string())
        .send()
        .await
        .map_err(|e| ChatError::Unreachable(e.without_url().to_string()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        Err(ChatError::Redirect {
            status: status.as_u16(),
            to: crate::http::client::redirect_target(&response),
        })
    } else {
        Err(ChatError::Refused(status.as_u16()))
    }
}

/// Whether the webhook can be reached (connection and TLS, and an HTTP answer that is not a
/// redirect, a refusal or a server error), without posting a message.
pub async fn healthcheck(url: &Secret) -> crate::health::Health {
    let client = crate::http::client::client(TIMEOUT, None)
        .map_err(|e| crate::health::Unhealthy(e.without_url().to_string()))?;
    crate::sinks::http::http_probe(&client, url.expose()).await
}

/// Copies to the security team's channel: every row a line ([`crate::email::notice::security_summary`]).
pub struct ChatDestination {
    name: String,
    url: Secret,
}

impl ChatDestination {
    pub fn new(name: impl Into<String>, url: Secret) -> ChatDestination {
        ChatDestination {
            name: name.into(),
            url,
        }
    }
}

impl Destination for ChatDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_size(&self) -> u32 {
        20
    }

    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        let lines = crate::email::security_copy::lines(rows);
        let mut outcomes: Vec<Option<Outcome>> =
            lines.iter().map(|l| l.as_ref().err().cloned()).collect();
        let text: Vec<&str> = lines.iter().filter_map(|l| l.as_deref().ok()).collect();
        if !text.is_empty() {
            let sent = match post(&self.url, &text.join("\n")).await {
                Ok(()) => Outcome::Delivered,
                // A channel that is down or misconfigured waits for its operator; nothing is lost.
                Err(e) => Outcome::Unavailable(format!("security chat webhook {e}")),
            };
            for o in outcomes.iter_mut().filter(|o| o.is_none()) {
                *o = Some(sent.clone());
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Delivered))
            .collect()
    }
}
