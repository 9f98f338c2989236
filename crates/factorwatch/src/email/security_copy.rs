//! The security team's copy, by email: MFA changes made by someone other than the user (an admin,
//! an app, Okta, or an actor factorwatch cannot tell) and bypass attempts. Its own outbox
//! destination: the user-notice policies (hourly cap, suppression, coalescing, stepping aside
//! for Okta's notices) and the user's mailbox failing never hold it back, so an attacker cannot
//! spend a user's cap to make a change unseen.

use lettre::Message;
use lettre::message::Mailbox;

use super::transport::{SendError, Transport};
use super::{AutoSubmitted, message_id};
use crate::pipeline::worker::{Destination, Outcome};
use crate::record::Item;
use crate::store::Due;

/// One line per row (`Err` where the stored record cannot be read: a permanent failure).
pub fn lines(rows: &[Due]) -> Vec<Result<String, Outcome>> {
    rows.iter()
        .map(|row| match &row.item {
            Ok(Item::Change(c)) => Ok(super::notice::security_summary(c, &row.org)),
            Ok(Item::Finding(f)) => Ok(super::notice::finding_summary(f, &row.org)),
            Err(e) => Err(Outcome::Reject(e.clone())),
        })
        .collect()
}

/// The copy's subject: findings first (they are what to act on), then changes.
fn subject(rows: &[Due]) -> String {
    let findings: Vec<&crate::detect::Finding> = rows
        .iter()
        .filter_map(|r| match &r.item {
            Ok(Item::Finding(f)) => Some(f),
            _ => None,
        })
        .collect();
    let changes = rows.len() - findings.len();
    match (findings.first(), changes) {
        (Some(f), _) if findings.len() == 1 => format!(
            "[factorwatch] {} finding: {}",
            f.severity.as_str().to_uppercase(),
            f.title
        ),
        (Some(_), _) => format!(
            "[factorwatch] {} account-takeover findings to check",
            findings.len()
        ),
        (None, n) => format!(
            "[factorwatch] {n} MFA change(s) to check: made by someone other than the user, or a bypass attempt"
        ),
    }
}

pub struct SecurityCopy {
    name: String,
    from: Mailbox,
    to: Mailbox,
    transport: std::sync::Arc<Transport>,
}

impl SecurityCopy {
    pub fn new(
        name: impl Into<String>,
        from: Mailbox,
        to: Mailbox,
        transport: std::sync::Arc<Transport>,
    ) -> SecurityCopy {
        SecurityCopy {
            name: name.into(),
            from,
            to,
            transport,
        }
    }
}

impl Destination for SecurityCopy {
    fn name(&self) -> &str {
        &self.name
    }

    /// A mass reset becomes a few messages listing many changes, not thousands.
    fn batch_size(&self) -> u32 {
        50
    }

    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        let lines = lines(rows);
        let mut outcomes: Vec<Option<Outcome>> =
            lines.iter().map(|l| l.as_ref().err().cloned()).collect();
        let text: Vec<&str> = lines.iter().filter_map(|l| l.as_deref().ok()).collect();
        if text.is_empty() || self.transport.is_dry_run() {
            return outcomes
                .into_iter()
                .map(|o| o.unwrap_or(Outcome::Delivered))
                .collect();
        }
        // The same rows give the same Message-ID, so a copy repeated after a crash is recognisable.
        let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        let org = rows.first().map(|r| r.org.as_str()).unwrap_or_default();
        let built = Message::builder()
            .from(self.from.clone())
            .to(self.to.clone())
            .subject(subject(rows))
            .message_id(Some(message_id(
                org,
                &ids.join(","),
                self.to.email.as_ref(),
            )))
            .header(AutoSubmitted)
            .body(format!("{}\n", text.join("\n")));
        let sent = match built {
            Err(e) => Outcome::Reject(format!("cannot build the security copy: {e}")),
            Ok(m) => match self.transport.send(&m).await {
                Ok(()) => Outcome::Delivered,
                Err(SendError::Unavailable(e)) => Outcome::Unavailable(e),
                Err(SendError::Refused(e)) => Outcome::Reject(e),
            },
        };
        for o in outcomes.iter_mut().filter(|o| o.is_none()) {
            *o = Some(sent.clone());
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Delivered))
            .collect()
    }
}
