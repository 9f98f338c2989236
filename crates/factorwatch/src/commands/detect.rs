//! `factorwatch detect`: the account-takeover rules over exported Okta events (every layout
//! `classify` reads), or over what the store holds for an org (`--org NAME --since 30d`, hunting
//! after a backfill); one finding per line (NDJSON) on stdout.
//!
//! Time is the events' `published`: the events are read in published order, and a rule waiting
//! for nothing to happen (`mfa_left_off`) reports only once the events themselves have passed its
//! window.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::CommandError;
use crate::detect::{Detector, Finding, PhoneKey, Signal};
use crate::pipeline::ingest::Ingest;
use crate::store::{SourceKind, Store};

#[derive(clap::Args)]
pub struct Args {
    /// The exported events; `-` or nothing reads standard input. Not with --org.
    file: Option<PathBuf>,
    /// Run over the journal the store keeps for this org instead (the org's name in the
    /// configuration).
    #[arg(long)]
    org: Option<String>,
    /// With --org: from this long ago (`30d`) or this RFC 3339 time.
    #[arg(long, default_value = "30d", requires = "org")]
    since: crate::config::Since,
    /// The configuration: its `[detections]` rules and, with --org, its store.
    #[arg(long, env = "FACTORWATCH_CONFIG")]
    config: Option<PathBuf>,
}

/// `factorwatch detect`: exit 1 when some input could not be read.
pub async fn main(args: Args) -> Result<ExitCode, CommandError> {
    let config = super::load_config(args.config.as_deref())?;
    let settings = config.detections.settings();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut errors = std::io::stderr().lock();
    let failed = match &args.org {
        Some(org) => {
            if args.file.is_some() {
                return Err(CommandError::Usage(
                    "give either a FILE or --org, not both".into(),
                ));
            }
            super::okta::org(&config, org)?;
            let store = crate::store::open(&config.store).await?;
            let signals = journal(&store, org, args.since.at(chrono::Utc::now())).await;
            store.close().await;
            print(&run(&settings, signals?), &mut out)?;
            false
        }
        None => {
            let mut text = Vec::new();
            match args.file.as_ref().filter(|f| f.as_os_str() != "-") {
                Some(path) => std::fs::File::open(path)
                    .and_then(|mut f| f.read_to_end(&mut text))
                    .map_err(CommandError::io(format!("cannot read {}", path.display())))?,
                None => std::io::stdin()
                    .read_to_end(&mut text)
                    .map_err(CommandError::io("cannot read standard input"))?,
            };
            let (signals, problems) = from_export(&String::from_utf8_lossy(&text));
            for p in &problems {
                writeln!(errors, "factorwatch detect: skipped {p}")
                    .map_err(CommandError::io("stderr"))?;
            }
            print(&run(&settings, signals), &mut out)?;
            !problems.is_empty()
        }
    };
    out.flush().map_err(CommandError::io("stdout"))?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The signals of an export, and what could not be read in it (with its position).
pub fn from_export(text: &str) -> (Vec<Signal>, Vec<String>) {
    let ingest = Ingest {
        classifier: Default::default(),
        routing: Default::default(),
        // Hashes of phone numbers are compared within this run only.
        detections: Some(PhoneKey::random()),
    };
    // As a hook delivery: envelopes are opened, and so are their events.
    let batch = ingest.batch(SourceKind::EventHook, text, None);
    let signals = batch
        .signals
        .iter()
        .filter_map(|s| serde_json::from_str(&s.body).ok())
        .collect();
    (
        signals,
        batch.rejects.into_iter().map(|r| r.error).collect(),
    )
}

/// Every signal the store's journal holds for `org` published since `since`.
async fn journal<S: Store>(
    store: &S,
    org: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Signal>, CommandError> {
    let mut signals = Vec::new();
    let mut at = 0;
    loop {
        let page = store.signals_since(org, since, at, 5000).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            return Ok(signals);
        };
        signals.extend(
            page.iter()
                .filter_map(|e| serde_json::from_str::<Signal>(&e.body).ok()),
        );
        at = last;
    }
}

/// The rules over the signals, in published order (ties keep the input's order).
pub fn run(settings: &crate::detect::Settings, mut signals: Vec<Signal>) -> Vec<Finding> {
    signals.sort_by_key(|s| s.published);
    let mut detector = Detector::new(settings);
    let mut findings: Vec<Finding> = signals.iter().flat_map(|s| detector.observe(s)).collect();
    findings.sort_by_key(|f| f.last_seen);
    findings
}

fn print(findings: &[Finding], out: &mut impl Write) -> Result<(), CommandError> {
    for f in findings {
        let line = serde_json::to_string(f).map_err(|e| CommandError::Answer(e.to_string()))?;
        writeln!(out, "{line}").map_err(CommandError::io("stdout"))?;
    }
    Ok(())
}
