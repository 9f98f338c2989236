//! `factorwatch check`: the configuration is valid and every connection works — each Okta org
//! (credentials, and how much of the System Log rate limit is left), each SIEM sink (its
//! healthcheck), the email transport (SMTP connection and login) — as a pass/fail table.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::CommandError;
use crate::config::Config;
use crate::health::{Health, Unhealthy};
use crate::okta::client::{OktaClient, RetryPolicy};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, short, env = "FACTORWATCH_CONFIG")]
    config: Option<PathBuf>,
}

/// `factorwatch check`: the table on stdout; exit 1 if anything failed.
pub async fn main(args: Args) -> Result<ExitCode, CommandError> {
    let checks = match super::load_config(args.config.as_deref()) {
        Ok(config) => run(&config, &super::process_env).await,
        Err(e) => vec![Check {
            what: "configuration".into(),
            result: Err(Unhealthy(e.to_string())),
        }],
    };
    let passed = print(&checks, &mut io::stdout()).map_err(CommandError::io("output"))?;
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: String,
    pub result: Health,
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
        let client = crate::okta::client::http_client()
            .map_err(|e| Unhealthy(e.to_string()))
            .and_then(|http| {
                OktaClient::for_org(http, org, env, policy).map_err(|e| Unhealthy(e.to_string()))
            });
        let result = match client {
            Err(e) => Err(e),
            Ok(client) => {
                // One cheap request of the kind the poller makes.
                let filter = format!("eventType eq \"{}\"", crate::okta::catalog::CATALOG[0].name);
                let path = format!(
                    "/api/v1/logs?limit=1&filter={}",
                    form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
                );
                match client.get(&path).await {
                    Ok(_) => {
                        let reading = client.last_reading("/api/v1/logs").await;
                        Ok(match reading.and_then(|r| Some((r.remaining?, r.limit?))) {
                            Some((left, limit)) => headroom(left, limit),
                            None => "System Log readable".into(),
                        })
                    }
                    Err(e) => Err(Unhealthy(e.to_string())),
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
            Ok(s) => s.healthcheck().await,
            Err(e) => Err(Unhealthy(e.to_string())),
        };
        checks.push(Check {
            what: format!("sink {}", sink.name),
            result,
        });
    }
    if config.email.enabled {
        let result = match crate::email::transport::Transport::from_config(&config.email, env) {
            Ok(t) => t.check().await,
            Err(e) => Err(Unhealthy(e.to_string())),
        };
        checks.push(Check {
            what: "email".into(),
            result,
        });
    }
    for (what, url) in [
        (
            "security chat webhook",
            crate::chat::security_webhook(config, env),
        ),
        (
            "lag alarm webhook",
            crate::chat::lag_alarm_webhook(config, env),
        ),
    ] {
        let result = match url {
            Ok(None) => continue,
            Ok(Some(url)) => crate::chat::healthcheck(&url).await,
            Err(e) => Err(Unhealthy(e.to_string())),
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

/// What Okta's rate-limit headers say of the System Log bucket. Okta reports the ceiling that
/// applies to this client: with per-token limits (an API token or OAuth app may use half of each
/// bucket by default) that is the token's share, so 60 on a Workforce org's 120.
fn headroom(left: u64, limit: u64) -> String {
    format!(
        "System Log readable; this token may make {limit} requests a minute to /api/v1/logs \
         ({left} left in this window); polling and backfill use up to all of them (Okta's \
         per-token share keeps the rest of the org's bucket for other clients)"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn headroom_names_the_ceiling_okta_applies_and_what_is_left() {
        let text = super::headroom(57, 60);
        assert!(text.contains("60 requests a minute"), "{text}");
        assert!(text.contains("57 left"), "{text}");
    }
}
