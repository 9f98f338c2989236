//! Telling the user: the outbox destination that looks up whom to write to ([`crate::enrich`]),
//! says what happened ([`notice`], [`templates`]: text and HTML, per action and language),
//! builds the message ([`message`]) and hands it to a [`transport`] (SMTP, `.eml` files, or a
//! dry run) — within the operator's policies: suppressed logins, a per-user hourly cap.

pub mod builtin;
pub mod notice;
pub mod security_copy;
pub mod smtp;
pub mod templates;
pub mod transport;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lettre::Message;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::info;

use crate::enrich::{EnrichError, Enricher, Enrichment};
use crate::pipeline::worker::{Destination, Outcome};
use crate::record::MfaChange;
use crate::store::{Due, SeenAddress, Store};
use templates::{Rendered, Templates};
use transport::{SendError, Transport};

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub from: Mailbox,
    /// Also write to `profile.secondEmail`.
    pub second_email: bool,
    /// What a user who did not make the change should do (help-desk contact, report link).
    pub help: String,
    /// Logins never written to (service accounts): `*` matches any run of characters.
    pub suppress: Vec<String>,
    /// At most this many notices per user per hour (none: no cap).
    pub hourly_cap: Option<u32>,
    /// After a primary-email change within this long, also write to the addresses seen before.
    pub previous_address_window: Duration,
    /// Send nothing for a change Okta sent its own notice about.
    pub skip_when_okta_notified: bool,
    /// Changes to one user within this window become one notice (zero: one notice per change).
    pub coalesce: Duration,
    /// Notices under way at once, over overlapping batches. 1 keeps the promise of at most one
    /// repeat per crash; N allows up to N (the next batch is prepared while the last is sent, so
    /// more under way sends more per second).
    pub concurrency: u32,
    /// The detections run: a notice waits (at most [`DETECTION_WAIT`]) for them to have read its
    /// changes, so that it can tell what they found.
    pub detections: bool,
    /// Put a "this wasn't me" link in each notice.
    pub links: Option<crate::report::Links>,
}

/// How long after a change is stored its notice waits for the detections to read it. They take
/// milliseconds; this bounds the wait when they are stopped or failing.
pub const DETECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct EmailDestination<S: Store> {
    name: String,
    store: S,
    settings: EmailSettings,
    templates: Templates,
    /// Per org: its enricher.
    enrichers: HashMap<String, Arc<Enricher>>,
    transport: Arc<Transport>,
    /// Parts of a row already done (a recipient's message, the cap count),
    /// so that retrying the row after a later part failed repeats none of them.
    done: Mutex<std::collections::HashSet<String>>,
    /// The daemon's signals: a notice waiting for the detections wakes when they commit.
    signals: Option<Arc<crate::pipeline::worker::Signals>>,
    /// Users with a notice under way, by (org, user id), with the row whose batch holds them:
    /// batches overlap, and two at once for one user would each tell the other's changes.
    busy: std::sync::Mutex<HashMap<(String, String), i64>>,
}

/// Whom a row's notice is for, as [`EmailDestination::busy`] keys them.
fn user_key(row: &Due) -> Option<(String, String)> {
    let user = row.change()?.user.as_ref()?.id.clone()?;
    Some((row.org.clone(), user))
}

/// How long a row waits when another batch holds its user (that batch ends in milliseconds).
const USER_BUSY_WAIT: chrono::TimeDelta = chrono::TimeDelta::milliseconds(250);

/// The context event that makes a notice also go to the addresses seen before.
const PRIMARY_EMAIL_CHANGED: &str = "user.account.update_primary_email";

/// What a batch's notices read from the store, asked once for the whole batch (a statement each,
/// not one a notice: each is a round trip to the store's thread). A notice finds its answers
/// here, or asks the store itself when they are missing (a lookup failed, or was not made).
#[derive(Default)]
struct Lookups {
    /// Each asked user's pending rows (coalescing), by (org, user id): empty when none.
    pending: HashMap<(String, String), Vec<Due>>,
    /// The findings naming each asked event, by (org, event id), read at `findings_at`.
    findings: HashMap<(String, String), Vec<crate::detect::Finding>>,
    findings_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether each asked user's primary email changed within the window, by (org, user id).
    email_changed: HashMap<(String, String), bool>,
}

impl Lookups {
    /// The findings naming any of `ids` (each once, oldest first), if every one was asked after
    /// `ready` (a notice still waiting for the detections must read them after its wait).
    fn findings(
        &self,
        org: &str,
        ids: &[String],
        ready: chrono::DateTime<chrono::Utc>,
    ) -> Option<Vec<crate::detect::Finding>> {
        if self.findings_at.is_none_or(|at| at < ready) {
            return None;
        }
        let mut found: Vec<crate::detect::Finding> = Vec::new();
        for id in ids {
            found.extend(
                self.findings
                    .get(&(org.to_owned(), id.clone()))?
                    .iter()
                    .cloned(),
            );
        }
        Some(crate::store::each_once_oldest_first(found))
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no out-of-office replies to a security notice.
#[derive(Clone)]
pub(crate) struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// `<hex@factorwatch>`, the same for the same (org, change, recipient) every time.
pub fn message_id(org: &str, event_id: &str, recipient: &str) -> String {
    let digest = Sha256::digest(format!("{org}\n{event_id}\n{}", recipient.to_lowercase()));
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@factorwatch>")
}

/// Why a message could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("not an email address: {address:?}: {source}")]
    Address {
        address: String,
        source: lettre::address::AddressError,
    },
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// The complete message: multipart/alternative (plain text, then HTML).
pub fn message(
    from: &Mailbox,
    to: &str,
    rendered: &Rendered,
    message_id: String,
) -> Result<Message, MessageError> {
    let to: Mailbox = to.parse().map_err(|source| MessageError::Address {
        address: to.to_owned(),
        source,
    })?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject.clone())
        .message_id(Some(message_id))
        .header(AutoSubmitted)
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))
        .map_err(MessageError::from)
}

/// Whether `login` matches a suppression pattern (`*` any run of characters; case-insensitive).
pub fn suppressed(login: &str, patterns: &[String]) -> Option<String> {
    fn matches(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => matches(&p[1..], s) || (!s.is_empty() && matches(p, &s[1..])),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => matches(&p[1..], &s[1..]),
            _ => false,
        }
    }
    patterns
        .iter()
        .find(|p| matches(p.as_bytes(), login.as_bytes()))
        .cloned()
}

/// Recipients for a user: the primary address, and the secondary when configured.
pub fn recipients(e: &Enrichment, second_email: bool) -> Vec<String> {
    let mut r: Vec<String> = e.email.iter().cloned().collect();
    if second_email
        && let Some(second) = &e.second_email
        && !r.iter().any(|x| x.eq_ignore_ascii_case(second))
    {
        r.push(second.clone());
    }
    r
}

/// A notice rendered and ready to send.
struct Ready {
    /// The user's current address, remembered before sending.
    remember: Option<SeenAddress>,
    to: Vec<String>,
    rendered: Rendered,
    /// Outbox rows of the user's other changes this notice tells of.
    siblings: Vec<i64>,
}

impl<S: Store> EmailDestination<S> {
    pub fn new(
        name: impl Into<String>,
        store: S,
        settings: EmailSettings,
        templates: Templates,
        enrichers: HashMap<String, Arc<Enricher>>,
        transport: impl Into<Arc<Transport>>,
    ) -> EmailDestination<S> {
        EmailDestination {
            name: name.into(),
            store,
            settings,
            templates,
            enrichers,
            transport: transport.into(),
            done: Mutex::new(std::collections::HashSet::new()),
            signals: None,
            busy: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Wakes a notice waiting for the detections as soon as they commit, instead of at its next
    /// look (every 20 ms).
    pub fn with_signals(mut self, signals: Arc<crate::pipeline::worker::Signals>) -> Self {
        self.signals = Some(signals);
        self
    }

    /// Counts a notice to `user` of `org` against the hourly cap (in the store: every replica
    /// counts against the same cap); false when the cap is reached.
    async fn within_cap(&self, org: &str, user: &str) -> Result<bool, crate::store::StoreError> {
        let Some(cap) = self.settings.hourly_cap else {
            return Ok(true);
        };
        self.store
            .count_notice(
                org,
                user,
                cap,
                chrono::Duration::hours(1),
                chrono::Utc::now(),
            )
            .await
    }

    /// Whether `part` of `row` was already done in an earlier attempt.
    async fn done(&self, row: &Due, part: &str) -> bool {
        self.done
            .lock()
            .await
            .contains(&format!("{}|{part}", row.id))
    }

    async fn mark_done(&self, row: &Due, part: &str) {
        self.done.lock().await.insert(format!("{}|{part}", row.id));
    }

    /// Forgets the parts of `row` done in this attempt once its outcome is final.
    async fn finish(&self, row: &Due, outcome: Outcome) -> Outcome {
        if !matches!(
            outcome,
            Outcome::Retry(_) | Outcome::Unavailable(_) | Outcome::Later(_)
        ) {
            let prefix = format!("{}|", row.id);
            self.done.lock().await.retain(|k| !k.starts_with(&prefix));
        }
        outcome
    }

    /// Everything before the sending: the user's other changes owed (coalescing), the
    /// detections' findings, Okta's profile, the recipients, the cap, the rendered notice. Err
    /// is the row's outcome when there is nothing to send.
    async fn prepare(&self, row: &Due, lookups: &Lookups) -> Result<Ready, Outcome> {
        let change: MfaChange = match &row.item {
            Ok(crate::record::Item::Change(c)) => c.clone(),
            Ok(crate::record::Item::Finding(_)) => {
                return Err(Outcome::Reject(
                    "a finding is not sent to users on its own".into(),
                ));
            }
            Err(e) => return Err(Outcome::Reject(e.clone())),
        };
        let login = change
            .user
            .as_ref()
            .and_then(|u| u.login.clone())
            .unwrap_or_default();
        if let Some(pattern) = suppressed(&login, &self.settings.suppress) {
            return Err(Outcome::Skipped(format!(
                "{login} is suppressed by {pattern:?}"
            )));
        }
        let Some(enricher) = self.enrichers.get(&row.org) else {
            return Err(Outcome::Reject(format!(
                "no Okta org named {} is configured",
                row.org
            )));
        };
        if self.settings.skip_when_okta_notified {
            match self.okta_notified(&row.org, &change).await {
                Ok(true) => return Err(Outcome::Skipped("Okta sent its own notice".into())),
                Ok(false) => {}
                Err(e) => return Err(Outcome::Unavailable(e.to_string())),
            }
        }
        // Coalescing: wait out the window, then take every change to this user still owed.
        let now = chrono::Utc::now();
        let window = chrono::Duration::from_std(self.settings.coalesce).unwrap_or_default();
        let mut siblings: Vec<Due> = Vec::new();
        if !window.is_zero()
            && let Some(user_id) = change.user.as_ref().and_then(|u| u.id.as_deref())
        {
            if now < row.received_at + window {
                return Err(Outcome::Later(row.received_at + window));
            }
            let pending = match lookups.pending.get(&(row.org.clone(), user_id.to_owned())) {
                Some(rows) => Ok(rows.clone()),
                None => {
                    self.store
                        .pending_for_user(&self.name, &row.org, user_id)
                        .await
                }
            };
            match pending {
                // No longer ours to tell: an earlier notice to this user told this change (it was
                // taken for this batch before that notice marked it), or, on a shared store,
                // another replica took it over. Not marked delivered here (that replica must
                // still send it); put off, it is due again only if still pending.
                Ok(rows) if !rows.iter().any(|d| d.id == row.id) => {
                    return Err(Outcome::Later(chrono::Utc::now() + USER_BUSY_WAIT));
                }
                Ok(rows) => siblings = rows.into_iter().filter(|d| d.id != row.id).collect(),
                Err(e) => return Err(Outcome::Unavailable(e.to_string())),
            }
        }
        let mut changes = vec![(change.clone(), row.raw.clone())];
        for s in &siblings {
            if let Some(c) = s.change() {
                changes.push((c.clone(), s.raw.clone()));
            }
        }
        changes.sort_by_key(|(c, _)| c.published);
        let ids: Vec<String> = changes.iter().map(|(c, _)| c.id.to_wire()).collect();
        let findings = if self.settings.detections {
            // The detections read a change within milliseconds of its commit: wait for them here
            // (a notice put off to later would miss a `run --once`), at most until
            // DETECTION_WAIT after the change was stored.
            let wait = chrono::Duration::from_std(DETECTION_WAIT).unwrap_or_default();
            for id in &ids {
                loop {
                    // Past the wait, the notice goes with what was found, read or not: no need
                    // to ask (after the coalescing window, the usual case).
                    if chrono::Utc::now() >= row.received_at + wait {
                        break;
                    }
                    // Listening before looking: a commit in between still wakes us.
                    let detected = self.signals.as_ref().map(|s| s.detections.notified());
                    match self.store.detection_pending(&row.org, id).await {
                        Ok(true) if chrono::Utc::now() < row.received_at + wait => {
                            let look_again = tokio::time::sleep(Duration::from_millis(20));
                            match detected {
                                Some(detected) => tokio::select! {
                                    _ = detected => {}
                                    _ = look_again => {}
                                },
                                None => look_again.await,
                            }
                        }
                        Ok(_) => break,
                        Err(e) => return Err(Outcome::Unavailable(e.to_string())),
                    }
                }
            }
            match lookups.findings(&row.org, &ids, row.received_at + wait) {
                Some(f) => f,
                None => match self.store.findings_for_events(&row.org, &ids).await {
                    Ok(f) => f,
                    Err(e) => return Err(Outcome::Unavailable(e.to_string())),
                },
            }
        } else {
            Vec::new()
        };
        let mut enriched = Vec::with_capacity(changes.len());
        for (c, raw) in changes {
            match enricher.enrich(&c, &raw).await {
                Ok(e) => enriched.push((c, e)),
                Err(EnrichError::Unavailable(e)) => return Err(Outcome::Unavailable(e)),
                Err(EnrichError::Permanent(e)) => return Err(Outcome::Reject(e)),
            }
        }
        let Some(enrichment) = enriched.first().map(|(_, e)| e.clone()) else {
            return Err(Outcome::Reject("nothing to say".into()));
        };
        let mut to = recipients(&enrichment, self.settings.second_email);
        let remember = change
            .user
            .as_ref()
            .and_then(|u| u.id.clone())
            .zip(enrichment.email.clone())
            .map(|(user_id, email)| SeenAddress {
                org: row.org.clone(),
                user_id,
                email,
            });
        match self.previous_addresses(remember.as_ref(), lookups).await {
            Ok(previous) => {
                for p in previous {
                    if !to.iter().any(|t| t.eq_ignore_ascii_case(&p)) {
                        to.push(p);
                    }
                }
            }
            Err(e) => return Err(Outcome::Unavailable(e.to_string())),
        }
        if to.is_empty() {
            return Err(Outcome::Reject("the user has no email address".into()));
        }
        if !self.done(row, "cap").await {
            match self.within_cap(&row.org, &login).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(Outcome::Reject(format!(
                        "{login} already got {} notices this hour (hourly cap)",
                        self.settings.hourly_cap.unwrap_or_default()
                    )));
                }
                Err(e) => return Err(Outcome::Unavailable(e.to_string())),
            }
            self.mark_done(row, "cap").await;
        }
        let mut notice = notice::notice(&enriched, &to, &row.org, &self.settings.help, &findings);
        // The link disowns the newest change of the notice (they are one user's).
        if let Some(links) = &self.settings.links
            && let Some((newest, _)) = enriched.last()
            && let Some(user) = newest.user.as_ref().and_then(|u| u.id.as_deref())
        {
            notice.not_me_url =
                Some(links.url(&row.org, &newest.id.to_wire(), user, chrono::Utc::now()));
            notice.not_me_days = links.days();
        }
        let language = self.templates.language(enrichment.locale.as_deref());
        let rendered = match self.templates.render(&language, &notice) {
            Ok(r) => r,
            // A broken operator template: nothing can be sent until it is fixed; keep the rows.
            Err(e) => return Err(Outcome::Unavailable(e.to_string())),
        };
        Ok(Ready {
            remember,
            to,
            rendered,
            siblings: siblings.iter().map(|d| d.id).collect(),
        })
    }

    /// Sends a prepared notice to each recipient not yet sent to, then marks the coalesced
    /// siblings told.
    async fn send(&self, row: &Due, ready: Ready) -> Outcome {
        let Ready {
            to,
            rendered,
            siblings,
            ..
        } = ready;
        for recipient in &to {
            let id = message_id(&row.org, &row.event_id, recipient);
            let m = match message(&self.settings.from, recipient, &rendered, id.clone()) {
                Ok(m) => m,
                Err(e) => return Outcome::Reject(e.to_string()),
            };
            if self.transport.is_dry_run() {
                info!(to = %notice::mask_email(recipient), subject = %rendered.subject, message_id = %id, "dry run: notice rendered, not sent");
                continue;
            }
            if self.done(row, &id).await {
                continue;
            }
            match self.transport.send(&m).await {
                Ok(()) => self.mark_done(row, &id).await,
                Err(SendError::Refused(e)) => return Outcome::Reject(e),
                Err(SendError::Unavailable(e)) => return Outcome::Unavailable(e),
            }
        }
        if !siblings.is_empty() {
            // Told in this notice; if this fails they are told again (at least once).
            if let Err(e) = self.store.delivered(&siblings, chrono::Utc::now()).await {
                tracing::warn!(error = %e, "could not mark coalesced changes as told");
            }
        }
        Outcome::Delivered
    }
}

impl<S: Store> EmailDestination<S> {
    /// When the user's primary email changed recently, the addresses seen before it: the real
    /// owner may no longer read the new one. (The current one is remembered before sending, with
    /// the round's others: [`Destination::deliver`].)
    async fn previous_addresses(
        &self,
        current: Option<&SeenAddress>,
        lookups: &Lookups,
    ) -> Result<Vec<String>, crate::store::StoreError> {
        let Some(SeenAddress {
            org,
            user_id: user,
            email,
        }) = current
        else {
            return Ok(Vec::new());
        };
        let now = chrono::Utc::now();
        let window =
            chrono::Duration::from_std(self.settings.previous_address_window).unwrap_or_default();
        if window.is_zero() {
            return Ok(Vec::new());
        }
        let changed = match lookups.email_changed.get(&(org.clone(), user.clone())) {
            Some(changed) => *changed,
            None => {
                self.store
                    .context_exists(org, user, PRIMARY_EMAIL_CHANGED, now - window, now)
                    .await?
            }
        };
        if !changed {
            return Ok(Vec::new());
        }
        self.store.previous_addresses(org, user, email).await
    }

    /// Whether Okta logged sending its own enrolment or reset notice to this user around the
    /// change's time (from a minute before to ten after: its notice follows the change).
    async fn okta_notified(
        &self,
        org: &str,
        change: &MfaChange,
    ) -> Result<bool, crate::store::StoreError> {
        use crate::record::Action;
        let kind = match change.action {
            Action::Enrolled => "system.email.mfa_enroll_notification.sent_message",
            Action::Reset | Action::ResetAll => "system.email.mfa_reset_notification.sent_message",
            _ => return Ok(false),
        };
        let (Some(user), Some(at)) = (
            change.user.as_ref().and_then(|u| u.id.as_deref()),
            change.published,
        ) else {
            return Ok(false);
        };
        self.store
            .context_exists(
                org,
                user,
                kind,
                at - chrono::Duration::minutes(1),
                at + chrono::Duration::minutes(10),
            )
            .await
    }
}

impl<S: Store> EmailDestination<S> {
    /// Asks the store, once for the batch, what its notices would each ask: the users' pending
    /// rows, the findings naming their changes, whether their primary email changed. A lookup
    /// that fails is left out: each notice then asks for itself (and says why it cannot go).
    async fn look_up(&self, rows: &[Due], held: &[bool]) -> Lookups {
        let mut lookups = Lookups::default();
        // One notice asks as it would alone: nothing to share, and no statement added before its
        // wait for the detections (a hook's change, told in milliseconds).
        if rows.len() < 2 {
            return lookups;
        }
        let now = chrono::Utc::now();
        let window = chrono::Duration::from_std(self.settings.coalesce).unwrap_or_default();
        // Per org: every user of the batch, and those whose coalescing window is over.
        let mut users: HashMap<&str, (Vec<String>, Vec<String>)> = HashMap::new();
        for (row, _) in rows.iter().zip(held).filter(|(_, held)| **held) {
            let Some(user) = row.change().and_then(|c| c.user.as_ref()?.id.clone()) else {
                continue;
            };
            let (all, due) = users.entry(row.org.as_str()).or_default();
            if !window.is_zero() && now >= row.received_at + window && !due.contains(&user) {
                due.push(user.clone());
            }
            if !all.contains(&user) {
                all.push(user);
            }
        }
        let previous_window =
            chrono::Duration::from_std(self.settings.previous_address_window).unwrap_or_default();
        for (org, (all, due)) in &users {
            if !due.is_empty()
                && let Ok(mut pending) = self.store.pending_for_users(&self.name, org, due).await
            {
                for user in due {
                    let rows = pending.remove(user).unwrap_or_default();
                    lookups
                        .pending
                        .insert((org.to_string(), user.clone()), rows);
                }
            }
            if !previous_window.is_zero()
                && let Ok(changed) = self
                    .store
                    .users_with_context(org, all, PRIMARY_EMAIL_CHANGED, now - previous_window, now)
                    .await
            {
                for user in all {
                    lookups
                        .email_changed
                        .insert((org.to_string(), user.clone()), changed.contains(user));
                }
            }
        }
        if self.settings.detections {
            // The events each notice would tell: its own and its user's other pending changes;
            // not for a notice still waiting for the detections (it reads them after its wait).
            let wait = chrono::Duration::from_std(DETECTION_WAIT).unwrap_or_default();
            let mut ids: HashMap<&str, Vec<String>> = HashMap::new();
            for (row, _) in rows.iter().zip(held).filter(|(_, held)| **held) {
                if now < row.received_at + wait {
                    continue;
                }
                let Some(change) = row.change() else { continue };
                let list = ids.entry(row.org.as_str()).or_default();
                list.push(change.id.to_wire());
                if let Some(user) = change.user.as_ref().and_then(|u| u.id.clone())
                    && let Some(pending) = lookups.pending.get(&(row.org.clone(), user))
                {
                    list.extend(
                        pending
                            .iter()
                            .filter_map(|d| Some(d.change()?.id.to_wire())),
                    );
                }
            }
            let at = chrono::Utc::now();
            let mut complete = true;
            for (org, mut list) in ids {
                list.sort();
                list.dedup();
                match self.store.findings_by_event(org, &list).await {
                    Ok(found) => {
                        for id in list {
                            lookups.findings.entry((org.to_owned(), id)).or_default();
                        }
                        for (id, f) in found {
                            lookups
                                .findings
                                .entry((org.to_owned(), id))
                                .or_default()
                                .push(f);
                        }
                    }
                    Err(_) => complete = false,
                }
            }
            if complete {
                lookups.findings_at = Some(at);
            }
        }
        lookups
    }
}

impl<S: Store> Destination for EmailDestination<S> {
    fn name(&self) -> &str {
        &self.name
    }

    /// Two batches overlap within `concurrency` notices: one is sent while the other is claimed,
    /// prepared and marked. Each fills the SMTP connections at least once; a batch costs the
    /// store the same few statements (and syncs) whatever its size, so fewer, larger batches
    /// leave the store's thread (and the disk an MTA on the same machine writes to) to the mail.
    fn batch_size(&self) -> u32 {
        let c = self.settings.concurrency.max(1);
        (c / 2).max(self.transport.connections()).min(c)
    }

    /// Each batch is marked as soon as it is sent: a crash repeats at most the notices under way,
    /// `concurrency`.
    fn in_flight(&self) -> u32 {
        self.settings.concurrency.max(1)
    }

    fn settled(&self, rows: &[Due]) {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        for row in rows {
            if let Some(key) = user_key(row)
                && busy.get(&key) == Some(&row.id)
            {
                busy.remove(&key);
            }
        }
    }

    /// Prepares the round's notices together, remembers their recipients' addresses in one
    /// transaction, then sends them together.
    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        use futures_util::future::join_all;
        // A user another batch is telling waits for it (briefly): its notice may tell this
        // row's change too.
        let held: Vec<bool> = {
            let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
            let mine: std::collections::HashSet<i64> = rows.iter().map(|r| r.id).collect();
            rows.iter()
                .map(|row| match user_key(row) {
                    None => true,
                    Some(key) => match busy.get(&key) {
                        Some(owner) => mine.contains(owner),
                        None => {
                            busy.insert(key, row.id);
                            true
                        }
                    },
                })
                .collect()
        };
        let lookups = self.look_up(rows, &held).await;
        let lookups = &lookups;
        let mut prepared = join_all(rows.iter().zip(&held).map(|(row, held)| async move {
            if *held {
                self.prepare(row, lookups).await
            } else {
                Err(Outcome::Later(chrono::Utc::now() + USER_BUSY_WAIT))
            }
        }))
        .await;
        // Two rows of one user in the round each found the other owed: the first tells both; the
        // other waits (its row is marked told with the first's notice, or taken again if that
        // notice fails) instead of sending the user a second notice.
        let mut told: std::collections::HashSet<i64> = std::collections::HashSet::new();
        for (row, p) in rows.iter().zip(prepared.iter_mut()) {
            if told.contains(&row.id) {
                *p = Err(Outcome::Later(chrono::Utc::now()));
            } else if let Ok(ready) = p {
                told.extend(ready.siblings.iter().copied());
            }
        }
        let seen: Vec<SeenAddress> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok()?.remember.clone())
            .collect();
        // Not remembered, not sent: a later notice must still find this address if the
        // attacker changes the primary email next.
        let remembered = self
            .store
            .remember_addresses(&seen, chrono::Utc::now())
            .await
            .map_err(|e| e.to_string());
        join_all(rows.iter().zip(prepared).map(|(row, p)| async {
            let outcome = match (p, &remembered) {
                (Err(outcome), _) => outcome,
                (Ok(ready), Err(e)) if ready.remember.is_some() => Outcome::Unavailable(e.clone()),
                (Ok(ready), _) => self.send(row, ready).await,
            };
            self.finish(row, outcome).await
        }))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::finding::Draft;
    use crate::detect::{Finding, RuleId, Severity};
    use chrono::TimeZone;

    fn at(s: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc
            .timestamp_opt(1_800_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    fn finding(key: &str, first: i64, events: &[&str]) -> Finding {
        Draft {
            rule: RuleId::BypassBurst,
            severity: Severity::High,
            key: key.into(),
            user: None,
            actor: None,
            events: events
                .iter()
                .map(|e| (at(first), (*e).to_owned()))
                .collect(),
            summary: "three attempts".into(),
            details: Default::default(),
        }
        .finish()
    }

    #[test]
    fn a_batch_s_findings_are_used_only_when_every_event_was_asked_after_the_wait() {
        let (late, early) = (
            finding("late", 5, &["e1", "e2"]),
            finding("early", 1, &["e2"]),
        );
        let mut l = Lookups::default();
        for (id, found) in [
            ("e1", vec![late.clone()]),
            ("e2", vec![late.clone(), early.clone()]),
            ("e3", vec![]),
        ] {
            l.findings.insert(("acme".into(), id.into()), found);
        }
        let ids = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        // Not looked up at all: the notice asks for itself.
        assert_eq!(l.findings("acme", &ids(&["e1"]), at(0)), None);
        l.findings_at = Some(at(10));
        // Each finding once, oldest first; an event with none adds none.
        let got = l
            .findings("acme", &ids(&["e1", "e2", "e3"]), at(10))
            .unwrap_or_default();
        assert_eq!(
            got.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            [early.id.as_str(), late.id.as_str()]
        );
        // An event not asked, another org's, or a notice whose wait ends after the lookup: asked again.
        assert_eq!(l.findings("acme", &ids(&["e1", "e4"]), at(10)), None);
        assert_eq!(l.findings("beta", &ids(&["e1"]), at(10)), None);
        assert_eq!(l.findings("acme", &ids(&["e1"]), at(11)), None);
    }
}
