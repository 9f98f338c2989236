//! `factorwatch cursor list` / `cursor reset`: where each source of each org resumes, and how to
//! make one start again from its configured `since` (after the org's `url` changed: a cursor
//! from the old address is refused, never followed).

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use super::CommandError;
use crate::store::{SourceKind, Store};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, short, env = "FACTORWATCH_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Every org's sources: events read, newest event, where the cursor points.
    List,
    /// Forget a source's cursor (after the org's url changed): it starts again from `since`.
    Reset {
        #[arg(long)]
        org: String,
        /// system_log, events_api or backfill.
        #[arg(long)]
        source: String,
    },
}

pub async fn main(args: Args) -> Result<(), CommandError> {
    let config = super::load_config(args.config.as_deref())?;
    let store = crate::store::open(&config.store).await?;
    let mut out = std::io::stdout().lock();
    let result = match args.action {
        Action::List => list(&store, &mut out).await,
        Action::Reset { org, source } => reset(&store, &org, &source, &mut out).await,
    };
    store.close().await;
    result
}

/// One line per source: org, source, events read, newest event, and the cursor's origin (the
/// rest of a cursor is Okta's opaque token).
pub async fn list<S: Store>(store: &S, out: &mut impl Write) -> Result<(), CommandError> {
    let written = CommandError::io("output");
    let stats = store.stats().await?;
    if stats.sources.is_empty() {
        return writeln!(out, "no cursors yet").map_err(written);
    }
    let mut lines = String::new();
    for s in &stats.sources {
        let at = s
            .position
            .as_deref()
            .map(|p| match reqwest::Url::parse(p) {
                Ok(u) => crate::http::client::origin_text(&u),
                Err(_) => p.to_owned(),
            })
            .unwrap_or_else(|| "-".into());
        lines.push_str(&format!(
            "{:<16} {:<11} {:>10} events  newest {:<24}  cursor at {at}\n",
            s.org,
            s.source,
            s.events_seen,
            s.newest_published
                .map(|t| crate::record::format_published(&t))
                .unwrap_or_else(|| "-".into()),
        ));
    }
    out.write_all(lines.as_bytes()).map_err(written)
}

/// Forgets the cursor of `source` (`system_log`, `events_api`, `backfill`) for `org`.
pub async fn reset<S: Store>(
    store: &S,
    org: &str,
    source: &str,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let kind = SourceKind::parse(source)
        .filter(|k| *k != SourceKind::EventHook)
        .ok_or_else(|| {
            CommandError::Usage(format!(
                "--source {source:?}: expected system_log, events_api or backfill"
            ))
        })?;
    let had = store.reset_cursor(org, kind).await?;
    let said = if had {
        format!(
            "{org} {source}: cursor forgotten; the next run starts from the configured since (changes already stored are not repeated)"
        )
    } else {
        format!("{org} {source}: there was no cursor")
    };
    writeln!(out, "{said}").map_err(CommandError::io("output"))
}
