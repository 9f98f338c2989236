//! `factorwatch cursor list` / `cursor reset`: where each source of each org resumes, and how to
//! make one start again from its configured `since` (after the org's `url` changed: a cursor
//! from the old address is refused, never followed).

use std::io::Write;

use crate::store::{SourceKind, Store};

/// One line per source: org, source, events read, newest event, and the cursor's origin (the
/// rest of a cursor is Okta's opaque token).
pub async fn list<S: Store>(store: &S, out: &mut impl Write) -> Result<(), String> {
    let stats = store.stats().await.map_err(|e| e.to_string())?;
    if stats.sources.is_empty() {
        writeln!(out, "no cursors yet").map_err(|e| e.to_string())?;
    }
    for s in &stats.sources {
        let at = s
            .position
            .as_deref()
            .map(|p| match reqwest::Url::parse(p) {
                Ok(u) => crate::http::client::origin_text(&u),
                Err(_) => p.to_owned(),
            })
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<16} {:<11} {:>10} events  newest {:<24}  cursor at {at}",
            s.org,
            s.source,
            s.events_seen,
            s.newest_published
                .map(|t| crate::record::format_published(&t))
                .unwrap_or_else(|| "-".into()),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Forgets the cursor of `source` (`system_log`, `events_api`, `backfill`) for `org`.
pub async fn reset<S: Store>(
    store: &S,
    org: &str,
    source: &str,
    out: &mut impl Write,
) -> Result<(), String> {
    let kind = SourceKind::parse(source)
        .filter(|k| *k != SourceKind::EventHook)
        .ok_or_else(|| {
            format!("--source {source:?}: expected system_log, events_api or backfill")
        })?;
    let had = store
        .reset_cursor(org, kind)
        .await
        .map_err(|e| e.to_string())?;
    writeln!(
        out,
        "{}",
        if had {
            format!("{org} {source}: cursor forgotten; the next run starts from the configured since (changes already stored are not repeated)")
        } else {
            format!("{org} {source}: there was no cursor")
        }
    )
    .map_err(|e| e.to_string())
}
