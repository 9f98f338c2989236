//! `factorwatch check`: the configuration is valid and every connection works — each Okta org
//! (credentials, and how much of the System Log rate limit is left), each SIEM sink (its
//! healthcheck), the email transport (SMTP connection and login) — as a pass/fail table.

use std::io::{self, Write};

use crate::config::Config;
use crate::okta::client::RetryPolicy;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: String,
    pub result: Result<String, String>,
}

pub async fn run(config: &Config, env: &(dyn Fn(&str) -> Option<String> + Sync)) -> Vec<Check> {
    let mut checks = vec![Check {
        what: "configuration".into(),
        result: Ok(format!(
            "{} org(s), {} sink(s)",
            config.orgs.len(),
            config.sinks.len()
        )),
    }];
    for org in &config.orgs {
        let policy = RetryPolicy {
            attempts: 2,
            ..RetryPolicy::default()
        };
        let result = match crate::daemon::okta_client(org, env, policy) {
            Err(e) => Err(e.to_string()),
            Ok(client) => {
                // One cheap request of the kind the poller makes.
                let filter = format!(
                    "eventType eq \"{}\"",
                    crate::okta::catalog::CATALOG[0].name
                );
                let path = format!(
                    "/api/v1/logs?limit=1&filter={}",
                    form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
                );
                match client.get(&path).await {
                    Ok(_) => {
                        let reading = client.last_reading("/api/v1/logs").await;
                        Ok(match reading.and_then(|r| Some((r.remaining?, r.limit?))) {
                            Some((left, limit)) => format!(
                                "System Log readable; {left} of {limit} requests left this minute"
                            ),
                            None => "System Log readable".into(),
                        })
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        checks.push(Check {
            what: format!("okta {}", org.name),
            result,
        });
    }
    for sink in &config.sinks {
        let result = match crate::sinks::build(sink, env) {
            Ok(s) => s.healthcheck().await.map(|()| "reachable".into()),
            Err(e) => Err(e),
        };
        checks.push(Check {
            what: format!("sink {}", sink.name),
            result,
        });
    }
    if config.email.enabled {
        let result = match crate::daemon::email_transport(&config.email, env) {
            Ok(t) => t.check().await,
            Err(e) => Err(e.to_string()),
        };
        checks.push(Check {
            what: "email".into(),
            result,
        });
    }
    for (what, url) in [
        (
            "security chat webhook",
            crate::daemon::security_webhook(config, env),
        ),
        (
            "lag alarm webhook",
            crate::daemon::lag_alarm_webhook(config, env),
        ),
    ] {
        let result = match url {
            Ok(None) => continue,
            Ok(Some(url)) => crate::chat::healthcheck(&url).await,
            Err(e) => Err(e.to_string()),
        };
        checks.push(Check {
            what: what.into(),
            result,
        });
    }
    checks
}

/// The table; true when every check passed.
pub fn print(checks: &[Check], out: &mut impl Write) -> io::Result<bool> {
    let width = checks.iter().map(|c| c.what.len()).max().unwrap_or(0);
    for c in checks {
        match &c.result {
            Ok(detail) => writeln!(out, "PASS  {:<width$}  {detail}", c.what)?,
            Err(e) => writeln!(out, "FAIL  {:<width$}  {e}", c.what)?,
        }
    }
    Ok(checks.iter().all(|c| c.result.is_ok()))
}
