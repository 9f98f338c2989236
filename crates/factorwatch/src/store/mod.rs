//! The durable store: what factorwatch knows and still owes. Every row is keyed by Okta org.
//!
//! - **changes** (the inbox): classified MFA changes, unique on (org, event id), so an event seen by
//!   polling and by a hook, or twice across pages, is kept once;
//! - **outbox**: one row per (change, destination) with state, attempts, next attempt time and
//!   last error; dead after too many attempts, visible and re-drivable;
//! - **cursors**: per (org, source), the position to resume from (the full `next` URL), committed
//!   in the same transaction as the changes of its page;
//! - **rejects**: input that could not be classified, kept with its error rather than lost;
//! - **signals** (the detections' journal): what the detections read of each change and evidence
//!   event, in arrival order, with the detections' cursor in it; **findings**, each with the
//!   events it is made of, delivered through the outbox like changes.
//!
//! The daemon and every command work against the [`Store`] contract; [`open`] picks the
//! implementation the configuration names ([`AnyStore`]). [`sqlite::SqliteStore`] is the embedded
//! default; [`postgres::PgStore`] is shared by several replicas. Each implementation keeps its
//! schema as numbered migrations, applied at open.

pub mod postgres;
mod sql;
pub mod sqlite;

use std::collections::{HashMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Utc};

use crate::detect::Finding;
use crate::record::{Item, MfaChange};
use crate::report::{Report, Step, StepState};

/// A poll that found nothing new (see [`Store::record_polls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    pub org: String,
    pub source: SourceKind,
    /// Where the source stood (and resumes): its cursor, unchanged by the poll.
    pub position: String,
    pub at: DateTime<Utc>,
}

/// Where events come from, as cursors and counters name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    SystemLog,
    EventHook,
    EventsApi,
    /// `factorwatch backfill`: a bounded replay of a past window of the System Log.
    Backfill,
}

impl SourceKind {
    pub const ALL: [SourceKind; 4] = [
        SourceKind::SystemLog,
        SourceKind::EventHook,
        SourceKind::EventsApi,
        SourceKind::Backfill,
    ];

    /// The kind a name (`system_log`, …) stands for.
    pub fn parse(name: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::SystemLog => "system_log",
            SourceKind::EventHook => "event_hook",
            SourceKind::EventsApi => "events_api",
            SourceKind::Backfill => "backfill",
        }
    }
}

/// A classified change on its way in, with the destinations it is owed to.
#[derive(Debug, Clone)]
pub struct NewChange {
    pub event_id: String,
    pub event_type: String,
    pub action: String,
    pub published: Option<DateTime<Utc>>,
    /// The affected user's Okta id, if the change names one.
    pub user_id: Option<String>,
    /// The record, serialized (the public contract's JSON).
    pub record: String,
    /// The Okta event it came from, verbatim.
    pub raw: String,
    pub destinations: Vec<Owed>,
}

/// A user's email address, as Okta gave it for a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenAddress {
    pub org: String,
    pub user_id: String,
    pub email: String,
}

/// A destination a change is owed to, and how long after the commit its row falls due: the
/// email's coalescing window, so that a row is not taken only to be put off again (a write per
/// row, in a mass reset ten thousand of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    pub destination: String,
    pub after: std::time::Duration,
}

impl Owed {
    /// `after` in milliseconds, as the outbox's `next_attempt_at` counts.
    pub fn after_ms(&self) -> i64 {
        i64::try_from(self.after.as_millis()).unwrap_or(i64::MAX / 2)
    }
}

/// Due at once.
impl From<String> for Owed {
    fn from(destination: String) -> Owed {
        Owed {
            destination,
            after: std::time::Duration::ZERO,
        }
    }
}

impl From<&str> for Owed {
    fn from(destination: &str) -> Owed {
        Owed::from(destination.to_owned())
    }
}

/// An input value that could not be classified.
#[derive(Debug, Clone)]
pub struct Reject {
    pub error: String,
    pub raw: String,
}

/// Everything one page (or one hook delivery) brings, committed atomically.
#[derive(Debug, Clone)]
pub struct Batch {
    pub source: SourceKind,
    pub changes: Vec<NewChange>,
    pub rejects: Vec<Reject>,
    /// Events read, MFA or not.
    pub events_seen: u64,
    /// The newest `published` among the events read.
    pub newest_published: Option<DateTime<Utc>>,
    /// The position to resume from after this batch (pollers only).
    pub cursor: Option<String>,
    /// Events that are not MFA changes but tell something about one (Okta's own notices).
    pub context: Vec<ContextEvent>,
    /// What the detections read of the batch's events, for their journal.
    pub signals: Vec<NewSignal>,
}

impl Batch {
    /// Rows it writes (changes, journal entries, context, rejects).
    pub fn rows(&self) -> usize {
        self.changes.len() + self.signals.len() + self.context.len() + self.rejects.len()
    }

    /// Takes in the batch read after this one from the same source: one commit for both, with
    /// the later cursor.
    pub fn absorb(&mut self, later: Batch) {
        self.changes.extend(later.changes);
        self.rejects.extend(later.rejects);
        self.context.extend(later.context);
        self.signals.extend(later.signals);
        self.events_seen += later.events_seen;
        self.newest_published = match (self.newest_published, later.newest_published) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if later.cursor.is_some() {
            self.cursor = later.cursor;
        }
    }
}

/// A signal for the detections' journal ([`crate::detect::Signal`], serialized), unique per
/// (org, uuid).
#[derive(Debug, Clone)]
pub struct NewSignal {
    pub uuid: String,
    /// `sign_in` (kept for the baseline only: pruned after it) or `event` (kept).
    pub kind: &'static str,
    pub published: DateTime<Utc>,
    pub body: String,
}

/// A finding on its way in, with the destinations it is owed to.
#[derive(Debug, Clone)]
pub struct NewFinding {
    pub finding: Finding,
    pub destinations: Vec<String>,
}

/// One journal entry: its position and the signal's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub position: i64,
    pub body: String,
}

/// An Okta event kept for what it says about MFA changes, such as
/// `system.email.mfa_enroll_notification.sent_message` (Okta told the user itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEvent {
    pub uuid: String,
    pub event_type: String,
    /// The `User` the event is about.
    pub user_id: String,
    pub published: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// Changes not seen before.
    pub new: usize,
    /// Changes already in the store (from another page, source or a replay).
    pub duplicates: usize,
}

/// Findings each once (by id), oldest first: what a notice tells of them.
pub fn each_once_oldest_first(found: impl IntoIterator<Item = Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for f in found {
        if !out.iter().any(|o| o.id == f.id) {
            out.push(f);
        }
    }
    out.sort_by_key(|f| f.first_seen);
    out
}

/// One outbox row due for delivery, with its change or finding, read once by the store: every
/// destination gets the typed record, none parses it again.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub org: String,
    /// The change's event id, or the finding's id.
    pub event_id: String,
    pub destination: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The change or finding; why not, if its stored record cannot be read (a permanent
    /// failure).
    pub item: Result<Item, String>,
    /// A readable change's record as stored (its JSON text), for the `record` format to send as
    /// it is rather than write it again (see [`crate::formats::Format::encode_stored`]).
    pub record: Option<String>,
    /// The Okta event a change came from (empty for a finding, and when not asked for: see
    /// [`Store::due`]).
    pub raw: String,
    /// When the change or finding was stored.
    pub received_at: DateTime<Utc>,
}

impl Due {
    /// The change, when the row is one (and readable).
    pub fn change(&self) -> Option<&MfaChange> {
        self.item.as_ref().ok().and_then(Item::change)
    }
}

/// A dead-lettered delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub org: String,
    pub event_id: String,
    pub destination: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Where a source stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    pub org: String,
    pub source: String,
    pub position: Option<String>,
    pub newest_published: Option<DateTime<Utc>>,
    pub events_seen: u64,
    /// When the source last committed (a poll, a hook delivery).
    pub updated_at: Option<DateTime<Utc>>,
}

/// Which kind of item an outbox row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Change,
    Finding,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Change => "change",
            ItemKind::Finding => "finding",
        }
    }
}

/// A change or finding lately stored, with its deliveries (the status page).
#[derive(Debug, Clone)]
pub struct Recent {
    pub org: String,
    pub id: String,
    pub item: Result<Item, String>,
    pub stored_at: DateTime<Utc>,
    pub deliveries: Vec<Delivery>,
}

/// One destination's row for an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub destination: String,
    /// pending, delivered, dead or dropped.
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Counts and ages for the summary and for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub changes: u64,
    /// Findings the detections made.
    pub findings: u64,
    pub rejects: u64,
    /// Per destination: (delivered, pending, dead).
    pub outbox: Vec<(String, u64, u64, u64)>,
    /// When the oldest row not yet delivered (and not dead) was created.
    pub oldest_pending: Option<DateTime<Utc>>,
    pub sources: Vec<SourceState>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be opened or created.
    #[error("cannot open the database at {path}: {detail}")]
    Open { path: String, detail: String },
    /// A write failed: disk full, read-only file, I/O error. Nothing of the batch was kept.
    #[error("the database refused a write ({detail}); nothing of this batch was stored")]
    Write { detail: String },
    #[error("database error: {0}")]
    Other(String),
    /// The commit carried a lease this replica no longer holds (it was paused or cut off and
    /// another replica took the org over): nothing was stored.
    #[error("org {org}: the lease was taken over by another replica; nothing was stored")]
    Fenced { org: String },
}

/// The lease a poller's commits carry: they are refused once another replica holds the org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub replica: String,
    pub token: i64,
}

/// One org's lease, as `factorwatch cluster status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    pub org: String,
    pub owner: String,
    pub token: i64,
    pub expires_at: DateTime<Utc>,
    /// When the current owner took it.
    pub taken_at: DateTime<Utc>,
}

/// A replica, as seen by the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// The store's operations. Implementations must make [`Store::commit`] atomic: a crash leaves a
/// batch either wholly stored (changes, outbox rows, cursor) or not at all.
pub trait Store: Clone + Send + Sync + 'static {
    /// Where `source` resumes for `org`.
    fn cursor(
        &self,
        org: &str,
        source: SourceKind,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Forgets where `source` resumes for `org` (it starts again from its configured start);
    /// true if there was a cursor.
    fn reset_cursor(
        &self,
        org: &str,
        source: SourceKind,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a batch: new changes with their outbox rows, rejects, counters and the cursor.
    fn commit(
        &self,
        org: &str,
        batch: &Batch,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// [`Store::commit`] for several orgs' batches at the cost of one sync: on SQLite one
    /// transaction, all stored or none (on an error, the caller commits each alone, so that only
    /// the batch at fault sees it). On PostgreSQL, whose pollers commit under their lease, each in
    /// its own transaction.
    fn commit_many(
        &self,
        batches: &[(&str, &Batch)],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Committed>, StoreError>> + Send;

    /// Records that each source in `polls` was polled and found nothing new: its "last poll"
    /// moves to the time given (never back). A source with no row yet gets one at the position
    /// given; an existing row keeps its own position, counters and who wrote it (a record taken
    /// before a later commit or a cursor reset must not undo them). One transaction for all.
    fn record_polls(&self, polls: &[Polled])
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`Store::commit`] for a replica holding `org`'s lease: refused with
    /// [`StoreError::Fenced`] (nothing stored) unless the lease is still `fence`'s and unexpired.
    fn commit_fenced(
        &self,
        org: &str,
        batch: &Batch,
        now: DateTime<Utc>,
        fence: &Fence,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Counts a notice to `login` of `org` at `now` against `cap` per `window`, unless `cap`
    /// notices were counted within the window already (false then, nothing counted). Atomic
    /// across replicas.
    fn count_notice(
        &self,
        org: &str,
        login: &str,
        cap: u32,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Says `replica` is alive at `now`; returns the replicas seen within `ttl`, by id.
    fn heartbeat(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Takes `org`'s lease for `replica` until `now + ttl`, or renews it: its token, or None if
    /// another replica holds it unexpired. The token grows whenever the lease changes hands or
    /// lapsed.
    fn acquire_lease(
        &self,
        org: &str,
        replica: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Gives `org`'s lease up (it expires at once; its token is kept, so it still grows).
    fn release_lease(
        &self,
        org: &str,
        replica: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every lease and every replica seen.
    fn cluster(
        &self,
    ) -> impl Future<Output = Result<(Vec<LeaseState>, Vec<Replica>), StoreError>> + Send;

    /// Whether any of `destinations` has a row due at `now` (cheap: `run --once` asks it often).
    fn any_due(
        &self,
        destinations: &[String],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Up to `limit` rows for `destination` that are due, oldest first; each change's Okta
    /// event (`Due::raw`) only `with_event` (it is most of a row's bytes, and few destinations
    /// read it).
    fn due(
        &self,
        destination: &str,
        limit: u32,
        now: DateTime<Utc>,
        with_event: bool,
    ) -> impl Future<Output = Result<Vec<Due>, StoreError>> + Send;

    /// Of rows this replica took with [`Store::due`], those it still holds at `now` (their claim
    /// has not run out and been taken by another replica), with their claims renewed: checked
    /// just before delivering, so a replica paused past its claim does not deliver what another
    /// now owns. A store with one replica holds them all.
    fn confirm_claims(
        &self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;

    fn delivered(
        &self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a failed attempt; the row is tried again at `next_attempt`.
    fn retry(
        &self,
        id: i64,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a failed attempt and gives up on the row.
    fn dead(&self, id: i64, error: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Puts a row off until `until` without counting an attempt (a destination waiting for more).
    fn postpone(
        &self,
        id: i64,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every pending row for `destination` whose change affects `user_id` in `org`, due or not,
    /// oldest first (a notice can cover them all).
    fn pending_for_user(
        &self,
        destination: &str,
        org: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<Due>, StoreError>> + Send;

    /// [`Store::pending_for_user`] for several users of one org at once (a batch of notices asks
    /// once, not once a notice): each user's rows, in the same order; a user with none is absent.
    fn pending_for_users(
        &self,
        destination: &str,
        org: &str,
        user_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Vec<Due>>, StoreError>> + Send;

    /// Of `user_ids`, those with a context event of `event_type` published in `[from, to]`
    /// ([`Store::context_exists`] for a batch).
    fn users_with_context(
        &self,
        org: &str,
        user_ids: &[String],
        event_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send;

    /// Whether a context event of `event_type` about `user_id` was published in `[from, to]`.
    fn context_exists(
        &self,
        org: &str,
        user_id: &str,
        event_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Remembers that each of `addresses` was its user's address at `seen`, in one transaction
    /// (the email worker remembers a round's recipients with one sync, not one each).
    fn remember_addresses(
        &self,
        addresses: &[SeenAddress],
        seen: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The addresses seen for a user other than `current`, newest first.
    fn previous_addresses(
        &self,
        org: &str,
        user_id: &str,
        current: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    fn dead_letters(
        &self,
        destination: Option<&str>,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, StoreError>> + Send;

    /// Puts dead rows back in line; returns how many.
    fn redrive(
        &self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Gives dead rows up for good (kept, marked `dropped`); returns how many.
    fn drop_dead(&self, ids: &[i64]) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn stats(&self) -> impl Future<Output = Result<Stats, StoreError>> + Send;

    /// Up to `limit` journal entries of `org` after `position`, in journal order.
    fn signals_after(
        &self,
        org: &str,
        position: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<JournalEntry>, StoreError>> + Send;

    /// The journal's newest position (0: empty).
    fn journal_head(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// The orgs with journal entries after `after`, up to `upto`: a range of the primary key, so
    /// only what was added since a look is read. On PostgreSQL positions are not committed in
    /// order, so a look can miss an entry committed late (replicas' workers look on their own).
    fn journal_orgs(
        &self,
        after: i64,
        upto: i64,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Journal entries of `org` published at or after `since`, after `position`, in journal
    /// order (hunting over what the store holds).
    fn signals_since(
        &self,
        org: &str,
        since: DateTime<Utc>,
        position: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<JournalEntry>, StoreError>> + Send;

    /// Where the detections stand in `org`'s journal (0: nowhere yet).
    fn detection_cursor(&self, org: &str) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Stores findings (each once: a finding already stored is not stored or owed again) with
    /// their outbox rows, forgets the journal entries at `forget` (read, and of no further use),
    /// and moves the detections' cursor to `position` — atomically. Returns the findings not
    /// seen before.
    fn commit_findings(
        &self,
        org: &str,
        findings: &[NewFinding],
        forget: &[i64],
        position: i64,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Whether the detections have yet to read the event `event_id` of `org` (it is in the
    /// journal beyond their cursor).
    fn detection_pending(
        &self,
        org: &str,
        event_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The findings that include any of `event_ids`, oldest first.
    fn findings_for_events(
        &self,
        org: &str,
        event_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Finding>, StoreError>> + Send;

    /// The findings naming each of `event_ids`, as (event id, finding) pairs: a finding naming
    /// several of them comes once for each ([`Store::findings_for_events`] for a batch).
    fn findings_by_event(
        &self,
        org: &str,
        event_ids: &[String],
    ) -> impl Future<Output = Result<Vec<(String, Finding)>, StoreError>> + Send;

    /// Forgets sign-ins published before `before` (the baseline is over): returns how many.
    fn prune_signals(
        &self,
        org: &str,
        before: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The value kept under `key`, storing `value` first if there is none (the first writer
    /// wins; every replica then reads the same).
    fn setting_or_insert(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// The change `event_id` of `org`, if stored.
    fn change(
        &self,
        org: &str,
        event_id: &str,
    ) -> impl Future<Output = Result<Option<MfaChange>, StoreError>> + Send;

    /// The report a user made about a change, if any.
    fn report(
        &self,
        org: &str,
        change_id: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<Report>, StoreError>> + Send;

    /// The report that made finding `finding_id`.
    fn report_for_finding(
        &self,
        org: &str,
        finding_id: &str,
    ) -> impl Future<Output = Result<Option<Report>, StoreError>> + Send;

    /// Stores a report with its finding (and the finding's outbox rows, the Okta steps' among
    /// them) atomically, unless a report about the same (org, change, user) exists: false then,
    /// and nothing is stored (a link works once).
    fn commit_report(
        &self,
        report: &Report,
        finding: &NewFinding,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records what became of a report's steps.
    fn save_report_steps(
        &self,
        org: &str,
        finding_id: &str,
        steps: &[(Step, StepState)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The latest reports, newest first.
    fn reports(&self, limit: u32) -> impl Future<Output = Result<Vec<Report>, StoreError>> + Send;

    /// The latest changes or findings stored, newest first, with their deliveries.
    fn recent(
        &self,
        kind: ItemKind,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Recent>, StoreError>> + Send;

    /// Rows delivered since `since`, per destination.
    fn delivered_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(String, u64)>, StoreError>> + Send;

    /// Closes the connections, waiting for what is in flight.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// The store the configuration names: PostgreSQL when `url` is set, else the SQLite file.
pub async fn open(config: &crate::config::StoreConfig) -> Result<AnyStore, StoreError> {
    let Some(url) = &config.url else {
        return sqlite::SqliteStore::open(&config.path)
            .await
            .map(AnyStore::Sqlite);
    };
    let password = if config.password_env.is_some() || config.password_file.is_some() {
        Some(
            crate::config::read_secret(
                "store.password",
                config.password_env.as_deref(),
                config.password_file.as_deref(),
                &|name| std::env::var(name).ok(),
            )
            .map_err(|e| StoreError::Open {
                path: postgres::redact(url),
                detail: e.to_string(),
            })?,
        )
    } else {
        None
    };
    postgres::PgStore::connect(&postgres::Connect {
        url: url.clone(),
        password,
        ca_file: config.ca_file.clone(),
        max_connections: config.max_connections,
        schema: None,
        replica: None,
    })
    .await
    .map(AnyStore::Postgres)
}

/// Whichever [`Store`] the configuration chose, as one type the daemon and commands hold.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl AnyStore {
    /// This process's name among replicas (`local` for SQLite, which has one).
    pub fn replica(&self) -> &str {
        match self {
            AnyStore::Sqlite(_) => "local",
            AnyStore::Postgres(p) => p.replica(),
        }
    }

    /// Whether several replicas may share it (each org's pollers then run on one of them).
    pub fn shared(&self) -> bool {
        matches!(self, AnyStore::Postgres(_))
    }
}

/// Forwards a call to the store inside. The call's future is boxed: inline, every task awaiting
/// a store call (each org's pollers and detections) would carry the larger of the two stores'
/// state machines, some KiB each, for its whole life, even asleep; an MSSP runs thousands.
macro_rules! forward {
    ($self:ident, $s:ident => $call:ident($($arg:expr),*)) => {
        match $self {
            AnyStore::Sqlite($s) => Box::pin($s.$call($($arg),*)).await,
            AnyStore::Postgres($s) => Box::pin($s.$call($($arg),*)).await,
        }
    };
}

impl Store for AnyStore {
    async fn cursor(&self, org: &str, source: SourceKind) -> Result<Option<String>, StoreError> {
        forward!(self, s => cursor(org, source))
    }
    async fn reset_cursor(&self, org: &str, source: SourceKind) -> Result<bool, StoreError> {
        forward!(self, s => reset_cursor(org, source))
    }
    async fn commit(
        &self,
        org: &str,
        batch: &Batch,
        now: DateTime<Utc>,
    ) -> Result<Committed, StoreError> {
        forward!(self, s => commit(org, batch, now))
    }
    async fn commit_many(
        &self,
        batches: &[(&str, &Batch)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Committed>, StoreError> {
        forward!(self, s => commit_many(batches, now))
    }
    async fn record_polls(&self, polls: &[Polled]) -> Result<(), StoreError> {
        forward!(self, s => record_polls(polls))
    }
    async fn commit_fenced(
        &self,
        org: &str,
        batch: &Batch,
        now: DateTime<Utc>,
        fence: &Fence,
    ) -> Result<Committed, StoreError> {
        forward!(self, s => commit_fenced(org, batch, now, fence))
    }
    async fn count_notice(
        &self,
        org: &str,
        login: &str,
        cap: u32,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        forward!(self, s => count_notice(org, login, cap, window, now))
    }
    async fn heartbeat(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Vec<String>, StoreError> {
        forward!(self, s => heartbeat(replica, now, ttl))
    }
    async fn acquire_lease(
        &self,
        org: &str,
        replica: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Option<i64>, StoreError> {
        forward!(self, s => acquire_lease(org, replica, now, ttl))
    }
    async fn release_lease(&self, org: &str, replica: &str) -> Result<(), StoreError> {
        forward!(self, s => release_lease(org, replica))
    }
    async fn cluster(&self) -> Result<(Vec<LeaseState>, Vec<Replica>), StoreError> {
        forward!(self, s => cluster())
    }
    async fn any_due(
        &self,
        destinations: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        forward!(self, s => any_due(destinations, now))
    }
    async fn due(
        &self,
        destination: &str,
        limit: u32,
        now: DateTime<Utc>,
        with_event: bool,
    ) -> Result<Vec<Due>, StoreError> {
        forward!(self, s => due(destination, limit, now, with_event))
    }
    async fn confirm_claims(
        &self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        forward!(self, s => confirm_claims(ids, now))
    }
    async fn delivered(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
        forward!(self, s => delivered(ids, now))
    }
    async fn retry(
        &self,
        id: i64,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        forward!(self, s => retry(id, error, next_attempt))
    }
    async fn dead(&self, id: i64, error: &str) -> Result<(), StoreError> {
        forward!(self, s => dead(id, error))
    }
    async fn postpone(&self, id: i64, until: DateTime<Utc>) -> Result<(), StoreError> {
        forward!(self, s => postpone(id, until))
    }
    async fn pending_for_user(
        &self,
        destination: &str,
        org: &str,
        user_id: &str,
    ) -> Result<Vec<Due>, StoreError> {
        forward!(self, s => pending_for_user(destination, org, user_id))
    }
    async fn context_exists(
        &self,
        org: &str,
        user_id: &str,
        event_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        forward!(self, s => context_exists(org, user_id, event_type, from, to))
    }
    async fn pending_for_users(
        &self,
        destination: &str,
        org: &str,
        user_ids: &[String],
    ) -> Result<HashMap<String, Vec<Due>>, StoreError> {
        forward!(self, s => pending_for_users(destination, org, user_ids))
    }
    async fn users_with_context(
        &self,
        org: &str,
        user_ids: &[String],
        event_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HashSet<String>, StoreError> {
        forward!(self, s => users_with_context(org, user_ids, event_type, from, to))
    }
    async fn remember_addresses(
        &self,
        addresses: &[SeenAddress],
        seen: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        forward!(self, s => remember_addresses(addresses, seen))
    }
    async fn previous_addresses(
        &self,
        org: &str,
        user_id: &str,
        current: &str,
    ) -> Result<Vec<String>, StoreError> {
        forward!(self, s => previous_addresses(org, user_id, current))
    }
    async fn dead_letters(&self, destination: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        forward!(self, s => dead_letters(destination))
    }
    async fn redrive(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
        forward!(self, s => redrive(ids, now))
    }
    async fn drop_dead(&self, ids: &[i64]) -> Result<u64, StoreError> {
        forward!(self, s => drop_dead(ids))
    }
    async fn stats(&self) -> Result<Stats, StoreError> {
        forward!(self, s => stats())
    }
    async fn signals_after(
        &self,
        org: &str,
        position: i64,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        forward!(self, s => signals_after(org, position, limit))
    }
    async fn journal_head(&self) -> Result<i64, StoreError> {
        forward!(self, s => journal_head())
    }
    async fn journal_orgs(&self, after: i64, upto: i64) -> Result<Vec<String>, StoreError> {
        forward!(self, s => journal_orgs(after, upto))
    }
    async fn signals_since(
        &self,
        org: &str,
        since: DateTime<Utc>,
        position: i64,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        forward!(self, s => signals_since(org, since, position, limit))
    }
    async fn detection_cursor(&self, org: &str) -> Result<i64, StoreError> {
        forward!(self, s => detection_cursor(org))
    }
    async fn commit_findings(
        &self,
        org: &str,
        findings: &[NewFinding],
        forget: &[i64],
        position: i64,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        forward!(self, s => commit_findings(org, findings, forget, position, now))
    }
    async fn detection_pending(&self, org: &str, event_id: &str) -> Result<bool, StoreError> {
        forward!(self, s => detection_pending(org, event_id))
    }
    async fn findings_for_events(
        &self,
        org: &str,
        event_ids: &[String],
    ) -> Result<Vec<Finding>, StoreError> {
        forward!(self, s => findings_for_events(org, event_ids))
    }
    async fn findings_by_event(
        &self,
        org: &str,
        event_ids: &[String],
    ) -> Result<Vec<(String, Finding)>, StoreError> {
        forward!(self, s => findings_by_event(org, event_ids))
    }
    async fn prune_signals(&self, org: &str, before: DateTime<Utc>) -> Result<u64, StoreError> {
        forward!(self, s => prune_signals(org, before))
    }
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        forward!(self, s => setting_or_insert(key, value))
    }
    async fn change(&self, org: &str, event_id: &str) -> Result<Option<MfaChange>, StoreError> {
        forward!(self, s => change(org, event_id))
    }
    async fn report(
        &self,
        org: &str,
        change_id: &str,
        user_id: &str,
    ) -> Result<Option<Report>, StoreError> {
        forward!(self, s => report(org, change_id, user_id))
    }
    async fn report_for_finding(
        &self,
        org: &str,
        finding_id: &str,
    ) -> Result<Option<Report>, StoreError> {
        forward!(self, s => report_for_finding(org, finding_id))
    }
    async fn commit_report(
        &self,
        report: &Report,
        finding: &NewFinding,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        forward!(self, s => commit_report(report, finding, now))
    }
    async fn save_report_steps(
        &self,
        org: &str,
        finding_id: &str,
        steps: &[(Step, StepState)],
    ) -> Result<(), StoreError> {
        forward!(self, s => save_report_steps(org, finding_id, steps))
    }
    async fn reports(&self, limit: u32) -> Result<Vec<Report>, StoreError> {
        forward!(self, s => reports(limit))
    }
    async fn recent(&self, kind: ItemKind, limit: u32) -> Result<Vec<Recent>, StoreError> {
        forward!(self, s => recent(kind, limit))
    }
    async fn delivered_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        forward!(self, s => delivered_since(since))
    }
    async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => Store::close(s).await,
            AnyStore::Postgres(s) => Store::close(s).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(cursor: Option<&str>, seen: u64, published: Option<&str>, reject: &str) -> Batch {
        Batch {
            source: SourceKind::SystemLog,
            changes: Vec::new(),
            rejects: vec![Reject {
                error: reject.into(),
                raw: String::new(),
            }],
            events_seen: seen,
            newest_published: published.map(|p| p.parse().unwrap_or_default()),
            cursor: cursor.map(str::to_owned),
            context: Vec::new(),
            signals: Vec::new(),
        }
    }

    #[test]
    fn a_merged_batch_resumes_after_the_later_page_and_keeps_every_row() {
        let mut first = batch(Some("next=1"), 3, Some("2026-11-25T10:00:00Z"), "a");
        first.absorb(batch(Some("next=2"), 2, None, "b"));
        assert_eq!(first.cursor.as_deref(), Some("next=2"));
        assert_eq!(first.events_seen, 5);
        assert_eq!(first.rows(), 2);
        assert_eq!(
            first
                .rejects
                .iter()
                .map(|r| r.error.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(
            first.newest_published,
            "2026-11-25T10:00:00Z".parse().ok(),
            "the newest time only moves forward"
        );
        first.absorb(batch(None, 0, Some("2026-11-25T11:00:00Z"), "c"));
        assert_eq!(
            first.cursor.as_deref(),
            Some("next=2"),
            "a batch without a cursor keeps the last one"
        );
        assert_eq!(first.newest_published, "2026-11-25T11:00:00Z".parse().ok());
    }
}
