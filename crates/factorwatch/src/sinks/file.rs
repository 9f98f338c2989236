//! The NDJSON SIEM sink: one record per line, appended to a file (or written to stdout) and
//! flushed to disk before the rows are marked delivered. What most SIEM forwarders (Splunk UF,
//! Filebeat, rsyslog imfile) tail out of the box.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use crate::pipeline::worker::{Destination, Outcome};
use crate::store::Due;

pub enum Target {
    Stdout,
    File(PathBuf),
}

pub struct FileSink {
    name: String,
    target: Target,
}

impl FileSink {
    pub fn new(name: impl Into<String>, target: Target) -> FileSink {
        FileSink {
            name: name.into(),
            target,
        }
    }

    async fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        match &self.target {
            Target::Stdout => {
                let mut out = tokio::io::stdout();
                out.write_all(bytes).await?;
                out.flush().await
            }
            Target::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(dir).await?;
                }
                let mut f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await?;
                f.write_all(bytes).await?;
                f.flush().await?;
                f.sync_data().await
            }
        }
    }
}

/// The lines for `rows`: each record, on its own line (records never contain newlines).
pub fn encode(rows: &[Due]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.iter().map(|r| r.record.len() + 1).sum());
    for r in rows {
        out.extend_from_slice(r.record.trim_end().as_bytes());
        out.push(b'\n');
    }
    out
}

impl Destination for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_size(&self) -> u32 {
        500
    }

    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        let outcome = match self.write(&encode(rows)).await {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Retry(format!("cannot write the SIEM file: {e}")),
        };
        vec![outcome; rows.len()]
    }
}
