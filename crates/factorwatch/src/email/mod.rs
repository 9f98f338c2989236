//! Telling the user: the outbox destination that looks up whom to write to ([`crate::enrich`]),
//! renders the notice ([`render`]), builds the message with lettre and drops it as one `.eml` file
//! per message — the embedded default; SMTP plugs in the same way. A file appears whole or not at
//! all (written aside, synced, then renamed), so a crash never leaves half a message behind.
//!
//! Every message carries a `Message-ID` derived from (org, change, recipient), so a message sent
//! again after a crash is recognisably the same message.

pub mod render;

use std::path::PathBuf;
use std::sync::Arc;

use lettre::Message;
use lettre::message::{Mailbox, header::ContentType};
use sha2::{Digest, Sha256};

use crate::enrich::{EnrichError, Enricher};
use crate::pipeline::worker::{Destination, Outcome};
use crate::record::MfaChange;
use crate::store::Due;

pub struct EmailSettings {
    pub from: Mailbox,
    /// Also write to `profile.secondEmail`.
    pub second_email: bool,
    /// What a user who did not make the change should do (help-desk contact, report link).
    pub help: String,
}

pub struct EmailDestination {
    name: String,
    settings: EmailSettings,
    /// Per org: its enricher.
    enrichers: std::collections::HashMap<String, Arc<Enricher>>,
    dir: PathBuf,
}

impl EmailDestination {
    /// Writes `.eml` files into `dir` (created if needed).
    pub fn to_files(
        name: impl Into<String>,
        settings: EmailSettings,
        enrichers: std::collections::HashMap<String, Arc<Enricher>>,
        dir: PathBuf,
    ) -> std::io::Result<EmailDestination> {
        std::fs::create_dir_all(&dir)?;
        Ok(EmailDestination {
            name: name.into(),
            settings,
            enrichers,
            dir,
        })
    }

    async fn one(&self, row: &Due) -> Outcome {
        let change: MfaChange = match serde_json::from_str(&row.record) {
            Ok(c) => c,
            Err(e) => return Outcome::Reject(format!("stored record unreadable: {e}")),
        };
        let Some(enricher) = self.enrichers.get(&row.org) else {
            return Outcome::Reject(format!("no Okta org named {} is configured", row.org));
        };
        let enrichment = match enricher.enrich(&change, &row.raw).await {
            Ok(e) => e,
            Err(EnrichError::Transient(e)) => return Outcome::Retry(e),
            Err(EnrichError::Permanent(e)) => return Outcome::Reject(e),
        };
        let mut recipients: Vec<String> = enrichment.email.iter().cloned().collect();
        if self.settings.second_email
            && let Some(second) = &enrichment.second_email
            && !recipients.iter().any(|r| r.eq_ignore_ascii_case(second))
        {
            recipients.push(second.clone());
        }
        if recipients.is_empty() {
            return Outcome::Reject("the user has no email address".into());
        }
        let rendered = render::render(&change, &enrichment, &self.settings.help);
        for to in recipients {
            let Ok(to_box) = to.parse::<Mailbox>() else {
                return Outcome::Reject(format!("not an email address: {to:?}"));
            };
            let message = Message::builder()
                .from(self.settings.from.clone())
                .to(to_box)
                .subject(rendered.subject.clone())
                .message_id(Some(message_id(&row.org, &row.event_id, &to)))
                .header(ContentType::TEXT_PLAIN)
                .body(rendered.text.clone());
            let message = match message {
                Ok(m) => m,
                Err(e) => return Outcome::Reject(format!("cannot build the message: {e}")),
            };
            if let Err(e) = self.drop_file(&message.formatted()).await {
                return Outcome::Retry(format!("cannot write the message: {e}"));
            }
        }
        Outcome::Delivered
    }
}

impl EmailDestination {
    /// Writes one message as `<random>.eml`: aside first, synced, then renamed into place.
    async fn drop_file(&self, bytes: &[u8]) -> std::io::Result<()> {
        use rand::RngCore;
        use tokio::io::AsyncWriteExt;
        let mut id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut id);
        let name: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = self.dir.join(format!(".{name}.eml.tmp"));
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(bytes).await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&tmp, self.dir.join(format!("{name}.eml"))).await
    }
}

/// `<hex@factorwatch>`, the same for the same (org, change, recipient) every time.
pub fn message_id(org: &str, event_id: &str, recipient: &str) -> String {
    let digest = Sha256::digest(format!("{org}\n{event_id}\n{}", recipient.to_lowercase()));
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@factorwatch>")
}

impl Destination for EmailDestination {
    fn name(&self) -> &str {
        &self.name
    }

    /// One row at a time, each marked delivered as soon as it is sent: a crash can then repeat at
    /// most the one email in flight.
    fn batch_size(&self) -> u32 {
        1
    }

    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.one(row).await);
        }
        out
    }
}
