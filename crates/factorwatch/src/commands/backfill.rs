//! `factorwatch backfill --since DATE`: replays a past window of the System Log (Okta keeps 90
//! days) through the same classification and store, so nothing already handled is handled again.
//! It reads bounded pages (ordered by `published`) and keeps its own cursor, committed with each
//! page: interrupted, it resumes where it stopped; finished, it says so. Progress (events, rate,
//! how far through the window, ETA) goes to stderr.
//!
//! Changes found are owed to the SIEM sinks; emails about old changes only with `--email`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::CommandError;
use crate::config::Config;
use crate::okta::client::{OktaClient, RetryPolicy};
use crate::record::format_published;
use crate::store::{SourceKind, Store};

#[derive(clap::Args)]
pub struct Args {
    /// The org, by its name in the configuration.
    #[arg(long)]
    org: String,
    /// The window's start: a date (2026-10-01) or an RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    since: DateTime<Utc>,
    /// The window's end (default: now).
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Also email users about the changes found (off: old news).
    #[arg(long)]
    email: bool,
    #[arg(long, short, env = "FACTORWATCH_CONFIG")]
    config: Option<PathBuf>,
}

/// A date (`2026-10-01`, midnight UTC) or an RFC 3339 time.
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| format!("{s:?} is neither a date (2026-10-01) nor an RFC 3339 time"))
}

/// `factorwatch backfill`: the summary on stdout, progress on stderr.
pub async fn main(args: Args) -> Result<(), CommandError> {
    let config = super::load_config(args.config.as_deref())?;
    let options = Options {
        org: args.org,
        since: args.since,
        until: args.until.unwrap_or_else(Utc::now),
        email: args.email,
        max_pages: None,
    };
    let store = crate::store::open(&config.store).await?;
    let result = run(
        &config,
        &store,
        &options,
        &super::process_env,
        &mut std::io::stderr(),
    )
    .await;
    store.close().await;
    let summary = result?;
    println!(
        "{} events read, {} new MFA changes owed to the sinks, {} already handled{}",
        summary.events,
        summary.new_changes,
        summary.known_changes,
        if summary.finished {
            ""
        } else {
            " (not finished: run again to resume)"
        }
    );
    Ok(())
}

pub struct Options {
    pub org: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Also email users about the changes found.
    pub email: bool,
    /// Stop after this many pages (to test resuming).
    pub max_pages: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub new_changes: usize,
    pub known_changes: usize,
    pub finished: bool,
}

const DONE: &str = "done";

pub async fn run<S: Store>(
    config: &Config,
    store: &S,
    options: &Options,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    progress: &mut impl Write,
) -> Result<Summary, CommandError> {
    if options.since >= options.until {
        return Err(CommandError::Usage("--since must be before --until".into()));
    }
    if options.since < Utc::now() - chrono::Duration::days(90) {
        return Err(CommandError::Usage(
            "--since reaches past Okta's 90-day retention".into(),
        ));
    }
    let org = crate::commands::okta::org(config, &options.org)?;
    let client = OktaClient::for_org(
        crate::okta::client::http_client()?,
        org,
        env,
        RetryPolicy::default(),
    )?;
    let write = |e: std::io::Error| CommandError::Io {
        what: "progress".into(),
        source: e,
    };
    let key = crate::daemon::phone_key(config, store, env).await?;
    let mut ingest = crate::daemon::ingest_for(config, key);
    if !options.email {
        ingest.routing.email = None;
    }
    let mut url = match store.cursor(&options.org, SourceKind::Backfill).await? {
        Some(c) if c == DONE => {
            writeln!(progress, "the backfill of {} is already done", options.org).map_err(write)?;
            return Ok(Summary {
                finished: true,
                ..Summary::default()
            });
        }
        Some(c) => {
            client.check_origin(&c).map_err(|e| {
                CommandError::Usage(format!("the stored backfill cursor cannot be used: {e}; reset it with `factorwatch cursor reset --org {} --source backfill`", options.org))
            })?;
            writeln!(progress, "resuming the backfill of {}", options.org).map_err(write)?;
            c
        }
        None => {
            let filter = org
                .system_log
                .types
                .clone()
                .unwrap_or_else(|| crate::okta::catalog::polled(config.detections.enabled))
                .iter()
                .map(|t| format!("eventType eq \"{t}\""))
                .collect::<Vec<_>>()
                .join(" or ");
            let q = form_urlencoded::Serializer::new(String::new())
                .append_pair("since", &format_published(&options.since))
                .append_pair("until", &format_published(&options.until))
                .append_pair("filter", &filter)
                .append_pair("sortOrder", "ASCENDING")
                .append_pair("limit", "1000")
                .finish();
            client.url(&format!("/api/v1/logs?{q}"))?
        }
    };
    let started = Instant::now();
    let window = (options.until - options.since).num_seconds().max(1) as f64;
    let mut summary = Summary::default();
    let mut pages = 0;
    loop {
        let page = client.get(&url).await?;
        let cursor = page
            .next
            .as_ref()
            .map_or_else(|| DONE.to_owned(), |u| u.as_str().to_owned());
        let batch = ingest.batch(SourceKind::Backfill, &page.body, Some(cursor.clone()));
        let reached = batch.newest_published;
        summary.events += batch.events_seen;
        let committed = store.commit(&options.org, &batch, Utc::now()).await?;
        summary.new_changes += committed.new;
        summary.known_changes += committed.duplicates;
        pages += 1;
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let done = reached.map_or(0.0, |t| {
            ((t - options.since).num_seconds() as f64 / window).clamp(0.0, 1.0)
        });
        let eta = if done > 0.0 {
            secs / done * (1.0 - done)
        } else {
            f64::NAN
        };
        write!(
            progress,
            "\r{} events, {} new changes ({} known) — {:.0} events/s — {:>3.0}% of the window — ETA {}   ",
            summary.events,
            summary.new_changes,
            summary.known_changes,
            summary.events as f64 / secs,
            done * 100.0,
            if eta.is_finite() { format!("{eta:.0} s") } else { "?".into() }
        )
        .map_err(write)?;
        if cursor == DONE {
            summary.finished = true;
            writeln!(progress, "\nbackfill of {} done", options.org).map_err(write)?;
            return Ok(summary);
        }
        if options.max_pages.is_some_and(|m| pages >= m) {
            writeln!(progress, "\nstopped; run again to resume").map_err(write)?;
            return Ok(summary);
        }
        url = cursor;
    }
}
