//! `factorwatch run`: the daemon, until SIGINT or SIGTERM; with `--once`, until caught up.

use std::path::PathBuf;
use std::time::Duration;

use tracing::{error, info};

use super::CommandError;
use crate::daemon::Daemon;
use crate::store::Store;

#[derive(clap::Args)]
pub struct Args {
    /// The TOML configuration file.
    #[arg(long, short, env = "FACTORWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// Poll every source until caught up, deliver what is due, then exit (for cron or a
    /// systemd timer). Event Hooks are received only while it runs; deliveries put off to
    /// later (retries, the email coalescing window), and deliveries to a destination that made
    /// no progress for a minute (it is down), wait for the next run.
    #[arg(long)]
    pub once: bool,
}

/// With `--once`, how long deliveries may make no progress (a destination down) before the run
/// ends and leaves them for the next one.
const ONCE_STALL: Duration = Duration::from_secs(60);

/// How often the daemon logs where it stands.
const STATUS_EVERY: Duration = Duration::from_secs(60);

pub async fn main(args: Args) -> Result<(), CommandError> {
    let config = super::load_config(args.config.as_deref())?;
    if config.orgs.is_empty() {
        return Err(CommandError::Usage(
            "no Okta org is configured: add an [[orgs]] table (name, url) to the config file, or set FACTORWATCH__ORGS__0__NAME and FACTORWATCH__ORGS__0__URL".into(),
        ));
    }
    let env = super::process_env;
    if args.once {
        let daemon = Daemon::start_once(&config, &env).await?;
        let stop = stop_signal();
        tokio::select! {
            waiting = daemon.finish(ONCE_STALL) => {
                let waiting = waiting?;
                info!(waiting, "caught up; deliveries not yet due wait for the next run");
            }
            _ = stop => info!("interrupted"),
        }
        return Ok(());
    }
    let alarm_webhook = crate::chat::lag_alarm_webhook(&config, &env)?;
    let daemon = Daemon::start(&config, &env).await?;
    info!(orgs = config.orgs.len(), "factorwatch running");
    let mut status = tokio::time::interval(STATUS_EVERY);
    let mut alarm = config
        .observability
        .lag_alarm
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(crate::status::LagAlarm::new);
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = status.tick() => match daemon.store.stats().await {
                Ok(stats) => {
                    let now = chrono::Utc::now();
                    info!("{}", crate::status::summary(&stats, now));
                    let lag = crate::status::lag(&stats, now).newest_event_age;
                    if let Some(alarm) = alarm.as_mut()
                        && let Some(news) = alarm.update(lag)
                    {
                        tracing::warn!("{news}");
                        if let Some(url) = &alarm_webhook {
                            tokio::spawn(post_alarm(url.clone(), news));
                        }
                    }
                }
                Err(e) => error!(error = %e, "cannot read the store's stats"),
            },
        }
    }
    info!("stopping");
    daemon.stop().await;
    Ok(())
}

/// Tells the security team's channel; a failure is logged (the alarm is in the log and
/// `/metrics` anyway).
async fn post_alarm(url: crate::secret::Secret, text: String) {
    if let Err(e) = crate::chat::post(&url, &text).await {
        tracing::warn!(error = %e, "cannot post the lag alarm to the webhook");
    }
}

/// SIGINT (Ctrl-C) or SIGTERM (systemd, Docker).
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
