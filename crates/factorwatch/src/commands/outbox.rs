//! `factorwatch outbox list|retry|drop`: the dead letters, seen, put back in line, or given up.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Subcommand;

use super::CommandError;
use crate::store::{DeadLetter, Store};

#[derive(clap::Args)]
pub struct Args {
    /// The TOML configuration file (for the store's path).
    #[arg(long, short, env = "FACTORWATCH_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// List dead letters (all, or one destination's).
    List {
        #[arg(long)]
        destination: Option<String>,
    },
    /// Put dead letters back in line: the ids given, or all (of --destination).
    Retry {
        ids: Vec<i64>,
        #[arg(long)]
        destination: Option<String>,
    },
    /// Give dead letters up for good (kept in the store, marked dropped).
    Drop {
        ids: Vec<i64>,
        #[arg(long)]
        destination: Option<String>,
    },
}

pub async fn main(args: Args) -> Result<(), CommandError> {
    let config = super::load_config(args.config.as_deref())?;
    let store = crate::store::open(&config.store).await?;
    let result = act(&store, args.action, &mut io::stdout().lock()).await;
    store.close().await;
    result
}

async fn act<S: Store>(
    store: &S,
    action: Action,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let written = |e| CommandError::Io {
        what: "output".into(),
        source: e,
    };
    match action {
        Action::List { destination } => {
            let dead = store.dead_letters(destination.as_deref()).await?;
            list(&dead, out).map_err(written)
        }
        Action::Retry { ids, destination } => {
            let chosen = select(store, &ids, destination.as_deref()).await?;
            let ids: Vec<i64> = chosen.iter().map(|d| d.id).collect();
            let n = store.redrive(&ids, chrono::Utc::now()).await?;
            writeln!(out, "{n} dead letter(s) back in line").map_err(written)
        }
        Action::Drop { ids, destination } => {
            let chosen = select(store, &ids, destination.as_deref()).await?;
            let ids: Vec<i64> = chosen.iter().map(|d| d.id).collect();
            let n = store.drop_dead(&ids).await?;
            writeln!(out, "{n} dead letter(s) dropped").map_err(written)
        }
    }
}

/// One line per dead letter: id, org, destination, attempts, event id, last error.
pub fn list(dead: &[DeadLetter], out: &mut impl Write) -> io::Result<()> {
    if dead.is_empty() {
        return writeln!(out, "no dead letters");
    }
    writeln!(
        out,
        "{:>8}  {:<12} {:<16} {:>8}  {:<38} last error",
        "id", "org", "destination", "attempts", "event"
    )?;
    for d in dead {
        writeln!(
            out,
            "{:>8}  {:<12} {:<16} {:>8}  {:<38} {}",
            d.id,
            d.org,
            d.destination,
            d.attempts,
            d.event_id,
            d.last_error
                .as_deref()
                .unwrap_or("-")
                .replace(['\n', '\r'], " ")
        )?;
    }
    Ok(())
}

/// The dead letters an operator named: the ids given, or all of a destination's, or all.
pub async fn select<S: Store>(
    store: &S,
    ids: &[i64],
    destination: Option<&str>,
) -> Result<Vec<DeadLetter>, crate::store::StoreError> {
    let dead = store.dead_letters(destination).await?;
    Ok(if ids.is_empty() {
        dead
    } else {
        dead.into_iter().filter(|d| ids.contains(&d.id)).collect()
    })
}
