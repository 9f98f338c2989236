//! `factorwatch config example` and `factorwatch outbox list|retry|drop`: the operator's tools
//! around the configuration and the dead letters.

use std::io::{self, Write};

use crate::store::{DeadLetter, Store};

/// The commented example configuration (every option, with its default).
pub const EXAMPLE_CONFIG: &str = include_str!("../../../../examples/factorwatch.toml");

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
