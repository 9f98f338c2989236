//! NDJSON (or any one-line format) to a file or stdout: one change per line, appended and flushed
//! to disk before the rows are marked delivered. What most forwarders (Splunk UF, Filebeat,
//! rsyslog imfile) tail out of the box.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Encoded, Env, Sink, SinkError, SinkSettings, all};
use crate::config::Invalid;
use crate::formats::Format;
use crate::health::{Health, Unhealthy};
use crate::pipeline::worker::Outcome;

// ---- Configuration -----------------------------------------------------------------------------

/// `type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file, or `-` for stdout.
    pub path: String,
}

impl SinkSettings for Config {
    type Sink = FileSink;
    const FORMAT: &'static str = "record";
    const BATCH: u32 = 500;

    fn check(&self, at: &str) -> Result<(), Invalid> {
        if self.path.trim().is_empty() {
            return Err(Invalid(format!("{at}.path: must not be empty")));
        }
        Ok(())
    }

    fn build(&self, _at: &str, _format: &Format, _env: Env<'_>) -> Result<FileSink, SinkError> {
        Ok(FileSink::new(if self.path == "-" {
            Target::Stdout
        } else {
            Target::File(PathBuf::from(&self.path))
        }))
    }
}

// ---- Sending -----------------------------------------------------------------------------------

pub enum Target {
    Stdout,
    File(PathBuf),
}

pub struct FileSink {
    target: Target,
}

impl FileSink {
    pub fn new(target: Target) -> FileSink {
        FileSink { target }
    }

    async fn write(&self, bytes: Vec<u8>) -> std::io::Result<()> {
        match &self.target {
            Target::Stdout => {
                let mut out = tokio::io::stdout();
                out.write_all(&bytes).await?;
                out.flush().await
            }
            Target::File(path) => {
                // One blocking task for the whole append (open, write, fsync), not one per step.
                let path = path.clone();
                tokio::task::spawn_blocking(move || append(&path, &bytes))
                    .await
                    .map_err(std::io::Error::other)?
            }
        }
    }
}

/// Appends `bytes` to the file (created, with its folder, if missing) and flushes them to disk.
fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

impl Sink for FileSink {
    async fn send(&self, batch: &[Encoded<'_>]) -> Vec<Outcome> {
        let mut bytes = Vec::with_capacity(batch.iter().map(|e| e.payload.len() + 1).sum());
        for e in batch {
            bytes.extend_from_slice(e.payload.as_bytes());
            bytes.push(b'\n');
        }
        // A file that cannot be written (full disk, permissions) is a destination down.
        let outcome = match self.write(bytes).await {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Unavailable(format!("cannot write the SIEM file: {e}")),
        };
        all(batch, &outcome)
    }

    // ---- Healthcheck ---------------------------------------------------------------------------

    /// The file can be opened for appending (created if missing).
    async fn healthcheck(&self) -> Health {
        self.write(Vec::new())
            .await
            .map(|()| "writable".to_owned())
            .map_err(|e| Unhealthy(format!("cannot write the SIEM file: {e}")))
    }
}
