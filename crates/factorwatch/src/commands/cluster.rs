//! `factorwatch cluster status`: the replicas alive on the shared store, which orgs each holds
//! and for how long, and the outbox depth per destination.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use super::CommandError;
use crate::store::Store;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, short, env = "FACTORWATCH_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Replicas, their orgs and leases, and the outbox.
    Status,
}

pub async fn main(args: Args) -> Result<(), CommandError> {
    let config = super::load_config(args.config.as_deref())?;
    let store = crate::store::open(&config.store).await?;
    let mut out = std::io::stdout().lock();
    let ttl = chrono::Duration::from_std(config.cluster.lease).unwrap_or_default();
    let result = match args.action {
        Action::Status => status(&store, ttl, chrono::Utc::now(), &mut out).await,
    };
    store.close().await;
    result
}

/// The replicas (alive: seen within a lease's life) with the orgs each holds, the orgs nobody
/// holds, and the outbox per destination.
pub async fn status<S: Store>(
    store: &S,
    lease: chrono::Duration,
    now: chrono::DateTime<chrono::Utc>,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let (leases, replicas) = store.cluster().await?;
    let stats = store.stats().await?;
    let secs = |d: chrono::Duration| format!("{:.1}s", d.num_milliseconds() as f64 / 1000.0);
    let mut text = String::new();
    text.push_str(&format!("replicas ({}):\n", replicas.len()));
    for r in &replicas {
        let alive = now - r.seen_at < lease;
        let held: Vec<String> = leases
            .iter()
            .filter(|l| l.owner == r.id && l.expires_at > now)
            .map(|l| {
                format!(
                    "{} (held {}, token {})",
                    l.org,
                    secs(now - l.taken_at),
                    l.token
                )
            })
            .collect();
        text.push_str(&format!(
            "  {} {} seen {} ago, {} orgs{}{}\n",
            r.id,
            if alive { "alive" } else { "GONE" },
            secs(now - r.seen_at),
            held.len(),
            if held.is_empty() { "" } else { ": " },
            held.join(", ")
        ));
    }
    let unheld: Vec<&str> = leases
        .iter()
        .filter(|l| l.expires_at <= now)
        .map(|l| l.org.as_str())
        .collect();
    if !unheld.is_empty() {
        text.push_str(&format!("orgs nobody holds now: {}\n", unheld.join(", ")));
    }
    text.push_str("outbox (delivered / pending / dead):\n");
    for (d, delivered, pending, dead) in &stats.outbox {
        text.push_str(&format!(
            "  {d:<20} {delivered:>8} / {pending:>6} / {dead:>4}\n"
        ));
    }
    out.write_all(text.as_bytes())
        .map_err(CommandError::io("output"))
}
