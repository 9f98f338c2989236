//! `factorwatch replay FILE --org NAME`: exported Okta events (any layout `classify` reads) fed
//! through the same classification and routing as `run`, and stored — each change once, whatever
//! was handled before; `run` delivers them.

use std::io::Read;
use std::path::PathBuf;

use super::CommandError;
use crate::store::{SourceKind, Store};

#[derive(clap::Args)]
pub struct Args {
    /// The events; `-` reads standard input.
    file: PathBuf,
    /// The org (by its config name) the events belong to.
    #[arg(long)]
    org: String,
    #[arg(long, short, env = "FACTORWATCH_CONFIG")]
    config: Option<PathBuf>,
}

pub async fn main(args: Args) -> Result<(), CommandError> {
    let config = super::load_config(args.config.as_deref())?;
    super::okta::org(&config, &args.org)?;
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(CommandError::io("cannot read standard input"))?;
        s
    } else {
        std::fs::read_to_string(&args.file).map_err(CommandError::io(format!(
            "cannot read {}",
            args.file.display()
        )))?
    };
    let store = crate::store::open(&config.store).await?;
    let key = match crate::daemon::phone_key(&config, &store, &super::process_env).await {
        Ok(k) => k,
        Err(e) => {
            store.close().await;
            return Err(e.into());
        }
    };
    let batch = crate::daemon::ingest_for(&config, key).batch(SourceKind::SystemLog, &text, None);
    let (events, rejects) = (batch.events_seen, batch.rejects.len());
    let committed = store.commit(&args.org, &batch, chrono::Utc::now()).await;
    store.close().await;
    let committed = committed?;
    println!(
        "{events} events read: {} new MFA changes stored for delivery, {} already known, {rejects} values rejected (kept with their error)",
        committed.new, committed.duplicates
    );
    Ok(())
}
