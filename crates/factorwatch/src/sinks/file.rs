//! NDJSON (or any one-line format) to a file or stdout: one change per line, appended and flushed
//! to disk before the rows are marked delivered. What most forwarders (Splunk UF, Filebeat,
//! rsyslog imfile) tail out of the box.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use super::{Encoder, encode_all, fill};
use crate::pipeline::worker::{Destination, Outcome};
use crate::store::Due;

pub enum Target {
    Stdout,
    File(PathBuf),
}

pub struct FileSink {
    name: String,
    target: Target,
    encoder: Encoder,
    batch_size: u32,
}

impl FileSink {
    pub fn new(
        name: impl Into<String>,
        target: Target,
        encoder: Encoder,
        batch_size: u32,
    ) -> FileSink {
        FileSink {
            name: name.into(),
            target,
            encoder,
            batch_size,
        }
    }

    /// The file can be opened for appending (created if missing).
    pub async fn healthcheck(&self) -> Result<(), String> {
        self.write(Vec::new())
            .await
            .map_err(|e| format!("cannot write the SIEM file: {e}"))
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
fn append(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
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

impl Destination for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_size(&self) -> u32 {
        self.batch_size
    }

    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        let (outcomes, good) = encode_all(&self.encoder, rows);
        let mut bytes = Vec::new();
        for (_, _, text) in &good {
            bytes.extend_from_slice(text.as_bytes());
            bytes.push(b'\n');
        }
        let result = match self.write(bytes).await {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Unavailable(format!("cannot write the SIEM file: {e}")),
        };
        fill(outcomes, &result)
    }
}
