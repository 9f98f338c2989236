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

/// Posts `text`; the error says what went wrong, never the URL.
pub async fn post(url: &Secret, text: &str) -> Result<(), String> {
    let client = crate::http::client::client(TIMEOUT, None)?;
    let response = client
        .post(url.expose())
        .header("Content-Type", "application/json")
        .body(serde_json::json!({ "text": text }).to_string())
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        Err(format!(
            "answered HTTP {status}, a redirect to {}; redirects are never followed (check the webhook URL)",
            crate::http::client::redirect_target(&response)
        ))
    } else {
        Err(format!("answered HTTP {status}"))
    }
}

/// Whether the webhook can be reached (connection and TLS, and an HTTP answer that is not a
/// redirect, a refusal or a server error), without posting a message.
pub async fn healthcheck(url: &Secret) -> Result<String, String> {
    crate::sinks::http_probe(&crate::http::client::client(TIMEOUT, None)?, url.expose()).await
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
