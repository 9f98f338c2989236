//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a committed batch
//! survives a killed process and a power cut.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::sql::{
    CHANGES_PER_STATEMENT, IDS_PER_STATEMENT, OUTBOX_ROWS_PER_STATEMENT, REPORT_COLUMNS,
    STATEMENT_CACHE, due_query, due_row, due_select, from_ms, ms, other, padded, parse_time,
    report_row, shaped, write_error,
};
use super::{
    Batch, Committed, DeadLetter, Delivery, Due, Fence, ItemKind, JournalEntry, LeaseState,
    NewFinding, NewSignal, Owed, Polled, Recent, Replica, SeenAddress, SourceKind, SourceState,
    Stats, Store, StoreError,
};
use crate::detect::Finding;
use crate::record::{Item, MfaChange, format_published};
use crate::report::{Report, Step, StepState};

/// The schema, as numbered migrations applied in order, each once (`schema_migrations` says
/// which). A database made before migrations were numbered holds exactly the first.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_initial.sql")),
    (2, include_str!("migrations/sqlite/0002_change_user.sql")),
    (3, include_str!("migrations/sqlite/0003_detections.sql")),
    (4, include_str!("migrations/sqlite/0004_reports.sql")),
    (5, include_str!("migrations/sqlite/0005_cluster.sql")),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 5;

/// Rows a query's SQLite thread may read ahead of the task taking them (see `open_with`).
const ROW_BUFFER: usize = 1024;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    cache: Arc<PageCache>,
    /// This process's writers, one at a time (see [`SqliteStore::turn_to_write`]).
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// Each connection's page cache: 8 MiB while the store writes a backlog, 2 MiB (about SQLite's
/// default) at rest. Wide, because the indexes keyed by Okta's random uuids are written all over:
/// with 1 MiB, storing a page of changes read a third of its time back from the OS
/// (scripts/bench/end-to-end.sh: 30% less CPU per change with 8 MiB). Narrow at rest, because full
/// wide caches are 17 MiB a daemon of caught-up orgs holds for nothing (many-orgs.sh, 2,000 idle
/// orgs, ad hoc: 140 MiB with them, 126 MiB with this). A connection narrowed after a backlog frees
/// its pages to glibc's malloc (SQLite's allocator), which keeps them for SQLite's next allocations
/// rather than giving them back to the system.
#[derive(Debug, Default)]
struct PageCache {
    /// Until when the caches stay wide (monotonic); `None` once every connection is narrow.
    wide_until: std::sync::Mutex<Option<Instant>>,
}

impl PageCache {
    const WIDE: &str = "-8192";
    const NARROW: &str = "-2048";
    /// A commit of at least this many rows is a backlog being written.
    const BACKLOG_ROWS: usize = 500;
    /// How long the caches stay wide after the last such commit.
    const QUIET: Duration = Duration::from_secs(60);

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The value is a deadline: one a panicking holder left is as good as any.
        self.wide_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SqliteStore {
    /// Before a commit of `rows` rows in `tx`: a backlog widens its connection's cache (and
    /// keeps the caches wide for another quiet period). Best effort, as is narrowing: the
    /// cache's size changes only how fast the store is and how much memory it holds.
    async fn widen_for(&self, tx: &mut sqlx::Transaction<'_, Sqlite>, rows: usize) {
        if rows < PageCache::BACKLOG_ROWS {
            return;
        }
        *self.cache.lock() = Some(Instant::now() + PageCache::QUIET);
        if let Err(e) = set_cache(tx, PageCache::WIDE).await {
            tracing::warn!(error = %e, "cannot widen the store's page cache");
        }
    }

    /// Once no backlog has been written for [`PageCache::QUIET`], narrows every connection's cache
    /// (SQLite frees the pages past the new size). Called before the writes a caught-up daemon
    /// keeps making; only idle connections can be reached, so while one is in use this waits for
    /// a later call.
    async fn narrow_if_quiet(&self) {
        match *self.cache.lock() {
            Some(until) if Instant::now() >= until => {}
            _ => return,
        }
        let open = self.pool.size() as usize;
        let mut idle = Vec::with_capacity(open);
        while let Some(c) = self.pool.try_acquire() {
            idle.push(c);
        }
        for c in &mut idle {
            if let Err(e) = set_cache(c, PageCache::NARROW).await {
                tracing::warn!(error = %e, "cannot narrow the store's page cache");
                return;
            }
        }
        if idle.len() >= open {
            let mut wide = self.cache.lock();
            // Unless a backlog widened a connection meanwhile.
            if wide.is_some_and(|until| Instant::now() >= until) {
                *wide = None;
                tracing::debug!(connections = open, "store quiet: page caches narrowed");
            }
        }
    }
}

async fn set_cache(conn: &mut sqlx::SqliteConnection, kib: &'static str) -> Result<(), StoreError> {
    // A constant of this file, not input.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = {kib}")))
        .execute(conn)
        .await
        .map(drop)
        .map_err(write_error)
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its schema.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, None).await
    }

    /// [`SqliteStore::open`], with the file capped at `max_pages` pages (of 8 KiB in a new
    /// database): past it, writes fail exactly as on a full disk.
    pub async fn open_with(path: &Path, max_pages: Option<u32>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_inner(path, max_pages, Duration::from_secs(5)).await
    }

    /// [`SqliteStore::open_with`], with SQLite's busy handler giving up after `busy_timeout`
    /// (a writer from another process, or one that did not take its turn, waits that long).
    async fn open_inner(
        path: &Path,
        max_pages: Option<u32>,
        busy_timeout: Duration,
    ) -> Result<SqliteStore, StoreError> {
        let open_error = |detail: String| StoreError::Open {
            path: path.display().to_string(),
            detail,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| open_error(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(busy_timeout)
            // The page cache of a connection at rest; wide while a backlog is written (see
            // `PageCache`).
            .pragma("cache_size", PageCache::NARROW)
            // A change row (record and Okta's event, ~2.7 KB) filled a 4 KiB page alone; 8 KiB pages
            // cut the cost of storing a page of 1,000 changes by a third. 16 KiB pages (five rows
            // a page, not two) cut a backlog's CPU by a few percent more, but every small commit
            // writes whole pages to the WAL: 2,000 live orgs wrote 8,772 KiB/s instead of 4,789. New
            // databases only: a database in WAL mode keeps the page size it was created with.
            .page_size(8192)
            .statement_cache_capacity(STATEMENT_CACHE)
            // sqlx's default read-ahead is 50 rows: with it, a page's 1,000 `RETURNING` rows and a
            // delivery round's outbox rows stopped that thread every 50 rows until the task woke to
            // drain them (the same-filter run of scripts/bench/end-to-end.sh: 18,000 context
            // switches, 10,000 with 1,024).
            .row_buffer_size(ROW_BUFFER);
        let options = match max_pages {
            Some(n) => options.pragma("max_page_count", n.to_string()),
            None => options,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        migrate(&pool)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        Ok(SqliteStore {
            pool,
            cache: Arc::default(),
            writer: Arc::default(),
        })
    }

    /// The schema versions applied to the database, in order.
    pub async fn schema_versions(&self) -> Result<Vec<i64>, StoreError> {
        sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .map_err(other)
    }
}

/// Brings the schema to [`SCHEMA_VERSION`]: each migration not yet applied, in order, in its own
/// transaction with its version. A database from before versions (it has `changes`, not
/// `schema_migrations`) is at version 1. A database newer than this build is refused.
async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await?;
    let mut current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        .fetch_one(pool)
        .await?
        .get(0);
    if current == 0 {
        let unversioned =
            sqlx::query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'changes'")
                .fetch_optional(pool)
                .await?
                .is_some();
        if unversioned {
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (1, ?)")
                .bind(ms(Utc::now()))
                .execute(pool)
                .await?;
            current = 1;
        }
    }
    if current > SCHEMA_VERSION {
        return Err(sqlx::Error::Protocol(format!(
            "the database is at schema version {current}, newer than this factorwatch ({SCHEMA_VERSION}): upgrade factorwatch"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let mut tx = pool.begin().await?;
        // The migrations are this build's own text, not input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(ms(Utc::now()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// `sql`, which ends in `LIMIT `, with `limit` written in rather than bound: SQLite lets its
/// planner read a bound LIMIT, and then prepares the statement again each time it is bound — every
/// journal read (3% of an MSSP's live CPU in `perf`). An integer injects nothing; each limit used
/// is one statement in the cache (for the journal, a few constants).
fn with_limit(sql: &str, limit: u32) -> String {
    format!("{sql}{limit}")
}

/// The changes of a batch that were not inserted must be stored already (duplicates): any other
/// row `INSERT OR IGNORE` passed over (a constraint it broke) fails the commit, so that no change
/// is dropped while its batch is reported stored.
async fn stored_before(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    org: &str,
    event_ids: Vec<&str>,
) -> Result<(), StoreError> {
    let wanted: HashSet<&str> = event_ids.into_iter().collect();
    let wanted: Vec<&str> = wanted.into_iter().collect();
    let mut found = 0;
    for chunk in wanted.chunks(IDS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM changes WHERE org = ");
        q.push_bind(org).push(" AND event_id IN (");
        let mut list = q.separated(", ");
        for id in padded(chunk) {
            list.push_bind(*id);
        }
        q.push(")");
        let n: i64 = q
            .build()
            .fetch_one(&mut **tx)
            .await
            .map_err(write_error)?
            .try_get(0)
            .map_err(write_error)?;
        found += usize::try_from(n).unwrap_or(0);
    }
    match wanted.len() - found.min(wanted.len()) {
        0 => Ok(()),
        n => Err(StoreError::Write {
            detail: format!("{n} change(s) of the batch were refused by the database"),
        }),
    }
}

/// Stores a finding with its events and outbox rows, unless it is already stored (false then).
async fn insert_finding(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    org: &str,
    n: &NewFinding,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let f = &n.finding;
    let record = serde_json::to_string(f).map_err(|e| StoreError::Write {
        detail: format!("the finding could not be serialized: {e}"),
    })?;
    let inserted = sqlx::query(
        "INSERT INTO findings (org, id, rule, severity, user_id, first_seen, last_seen, created_at, record)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org, id) DO NOTHING",
    )
    .bind(org)
    .bind(&f.id)
    .bind(f.rule.as_str())
    .bind(f.severity.as_str())
    .bind(f.user.as_ref().and_then(|u| u.id.as_deref()))
    .bind(ms(f.first_seen))
    .bind(ms(f.last_seen))
    .bind(now_ms)
    .bind(&record)
    .execute(&mut **tx)
    .await
    .map_err(write_error)?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    for e in &f.event_ids {
        sqlx::query(
            "INSERT INTO finding_events (org, event_id, finding_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(e)
        .bind(&f.id)
        .execute(&mut **tx)
        .await
        .map_err(write_error)?;
    }
    for d in &n.destinations {
        sqlx::query(
            "INSERT INTO outbox (org, kind, event_id, destination, state, next_attempt_at, created_at)
             VALUES (?, 'finding', ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(&f.id)
        .bind(d)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut **tx)
        .await
        .map_err(write_error)?;
    }
    Ok(true)
}

impl SqliteStore {
    /// Waits for this process's turn to write. SQLite lets one connection write at a time, and
    /// a second writer is put off by its busy handler, which sleeps 1, 2, 5 … 100 ms between
    /// tries however soon the lock is free again: the poller's commits and the delivery's marks
    /// slept on each other ~55 times in the same-filter run of `scripts/bench/end-to-end.sh`.
    /// Waiting here wakes the next writer the moment the last one is done. Taken before a
    /// connection, never while holding one, so a writer never waits on a connection its turn
    /// holds. Another process writing the same file (`factorwatch outbox retry`) still meets
    /// the busy handler.
    async fn turn_to_write(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    /// Runs `statements` all or none: one alone (a statement is atomic by itself: no BEGIN and
    /// COMMIT round trips to SQLite's thread, which a worker marking a few rows at a time pays
    /// often), several in a transaction.
    async fn atomically(&self, statements: Vec<QueryBuilder<Sqlite>>) -> Result<(), StoreError> {
        if statements.is_empty() {
            return Ok(());
        }
        let _turn = self.turn_to_write().await;
        match <[_; 1]>::try_from(statements) {
            Ok([mut one]) => {
                one.build().execute(&self.pool).await.map_err(write_error)?;
                Ok(())
            }
            Err(statements) => {
                let mut tx = self.pool.begin().await.map_err(write_error)?;
                for mut q in statements {
                    q.build().execute(&mut *tx).await.map_err(write_error)?;
                }
                tx.commit().await.map_err(write_error)
            }
        }
    }

    async fn commit_inner(
        &self,
        org: &str,
        batch: &Batch,
        now: DateTime<Utc>,
        fence: Option<&Fence>,
    ) -> Result<Committed, StoreError> {
        let _turn = self.turn_to_write().await;
        let now_ms = ms(now);
        self.narrow_if_quiet().await;
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        self.widen_for(&mut tx, batch.rows()).await;
        if let Some(f) = fence {
            let held = sqlx::query(
                "SELECT 1 FROM leases WHERE org = ? AND owner = ? AND token = ? AND expires_at > ?",
            )
            .bind(org)
            .bind(&f.replica)
            .bind(f.token)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await
            .map_err(write_error)?;
            if held.is_none() {
                return Err(StoreError::Fenced {
                    org: org.to_owned(),
                });
            }
        }
        let committed = write_batch(&mut tx, org, batch, now_ms, fence).await?;
        tx.commit().await.map_err(write_error)?;
        Ok(committed)
    }
}

/// Writes a batch in `tx` (see [`Store::commit`]).
async fn write_batch(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    org: &str,
    batch: &Batch,
    now_ms: i64,
    fence: Option<&Fence>,
) -> Result<Committed, StoreError> {
    let committed = write_rows(tx, org, batch, now_ms).await?;
    write_journal(tx, &[(org, batch)]).await?;
    write_positions(tx, &[(org, batch)], now_ms, fence).await?;
    Ok(committed)
}

/// Writes a batch's changes, their outbox rows, its context and rejects in `tx`: all of it but
/// its journal entries and its position, which several batches write together.
async fn write_rows(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    org: &str,
    batch: &Batch,
    now_ms: i64,
) -> Result<Committed, StoreError> {
    let mut committed = Committed::default();
    // Multi-row statements: one round trip to SQLite's thread per few hundred changes, not
    // one per row (that hand-off, not SQLite, was the cost). `OR IGNORE`, not `ON CONFLICT
    // DO NOTHING`: with the latter a NOT NULL column may still abort the statement halfway,
    // so SQLite copies every page it touches to a statement journal (a temporary file)
    // first: twice the writes of the rows themselves. Every NOT NULL column is bound from a
    // value that cannot be NULL, and a change ignored for any other reason than its
    // duplicate is caught below.
    let mut inserted: HashSet<String> = HashSet::new();
    for chunk in shaped(&batch.changes, CHANGES_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO changes (org, event_id, event_type, action, published, received_at, record, raw, user_id) ",
        );
        q.push_values(chunk, |mut row, c| {
            row.push_bind(org)
                .push_bind(&c.event_id)
                .push_bind(&c.event_type)
                .push_bind(&c.action)
                .push_bind(c.published.as_ref().map(format_published))
                .push_bind(now_ms)
                .push_bind(&c.record)
                .push_bind(&c.raw)
                .push_bind(c.user_id.as_deref());
        });
        q.push(" RETURNING event_id");
        let rows = q.build().fetch_all(&mut **tx).await.map_err(write_error)?;
        for r in rows {
            inserted.insert(r.try_get::<String, _>(0).map_err(write_error)?);
        }
    }
    // Each new change once, even if the batch holds its event twice.
    let mut outbox: Vec<(&str, &Owed)> = Vec::new();
    let mut not_new: Vec<&str> = Vec::new();
    for c in &batch.changes {
        if inserted.remove(&c.event_id) {
            committed.new += 1;
            outbox.extend(c.destinations.iter().map(|d| (c.event_id.as_str(), d)));
        } else {
            committed.duplicates += 1;
            not_new.push(&c.event_id);
        }
    }
    stored_before(tx, org, not_new).await?;
    for chunk in shaped(&outbox, OUTBOX_ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO outbox (org, event_id, destination, state, next_attempt_at, created_at) ",
        );
        q.push_values(chunk, |mut row, (event_id, owed)| {
            row.push_bind(org)
                .push_bind(*event_id)
                .push_bind(&owed.destination)
                .push_bind("pending")
                .push_bind(now_ms.saturating_add(owed.after_ms()))
                .push_bind(now_ms);
        });
        q.build().execute(&mut **tx).await.map_err(write_error)?;
    }
    for c in &batch.context {
        sqlx::query(
            "INSERT INTO context_events (org, uuid, event_type, user_id, published) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(&c.uuid)
        .bind(&c.event_type)
        .bind(&c.user_id)
        .bind(ms(c.published))
        .execute(&mut **tx)
        .await
        .map_err(write_error)?;
    }
    for r in &batch.rejects {
        sqlx::query(
            "INSERT INTO rejects (org, source, received_at, error, raw) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(org)
        .bind(batch.source.as_str())
        .bind(now_ms)
        .bind(&r.error)
        .bind(&r.raw)
        .execute(&mut **tx)
        .await
        .map_err(write_error)?;
    }
    Ok(committed)
}

/// Writes the journal entries of `batches` in `tx`, every org's in the same statements: a group
/// of live orgs' small batches (a sign-in or two each) costs a few statements, not one each,
/// and each statement is a round trip to SQLite's thread (two context switches).
async fn write_journal(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    batches: &[(&str, &Batch)],
) -> Result<(), StoreError> {
    let rows: Vec<(&str, &NewSignal)> = batches
        .iter()
        .flat_map(|(org, b)| b.signals.iter().map(move |s| (*org, s)))
        .collect();
    for chunk in shaped(&rows, CHANGES_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO signals (org, uuid, kind, published, body) ",
        );
        q.push_values(chunk, |mut row, (org, s)| {
            row.push_bind(*org)
                .push_bind(&s.uuid)
                .push_bind(s.kind)
                .push_bind(ms(s.published))
                .push_bind(&s.body);
        });
        q.build().execute(&mut **tx).await.map_err(write_error)?;
    }
    Ok(())
}

/// Moves the position of each of `batches`' sources in `tx`, together (see [`write_journal`]).
/// The newest published only moves forward; the position only when the batch has one.
async fn write_positions(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    batches: &[(&str, &Batch)],
    now_ms: i64,
    fence: Option<&Fence>,
) -> Result<(), StoreError> {
    let by = fence.map(|f| format!("{}#{}", f.replica, f.token));
    for chunk in shaped(batches, CHANGES_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO sources (org, source, position, newest_published, events_seen, updated_at, updated_by) ",
        );
        q.push_values(chunk, |mut row, (org, batch)| {
            row.push_bind(*org)
                .push_bind(batch.source.as_str())
                .push_bind(batch.cursor.as_deref())
                .push_bind(batch.newest_published.as_ref().map(format_published))
                .push_bind(batch.events_seen as i64)
                .push_bind(now_ms)
                .push_bind(by.as_deref());
        });
        q.push(
            " ON CONFLICT (org, source) DO UPDATE SET
                 position = COALESCE(excluded.position, position),
                 newest_published = CASE
                     WHEN newest_published IS NULL OR excluded.newest_published > newest_published
                         THEN COALESCE(excluded.newest_published, newest_published)
                     ELSE newest_published END,
                 events_seen = events_seen + excluded.events_seen,
                 updated_at = excluded.updated_at,
                 updated_by = excluded.updated_by",
        );
        q.build().execute(&mut **tx).await.map_err(write_error)?;
    }
    Ok(())
}

impl Store for SqliteStore {
    async fn cursor(&self, org: &str, source: SourceKind) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT position FROM sources WHERE org = ? AND source = ?")
            .bind(org)
            .bind(source.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        Ok(row.and_then(|r| r.get::<Option<String>, _>(0)))
    }

    async fn reset_cursor(&self, org: &str, source: SourceKind) -> Result<bool, StoreError> {
        let _turn = self.turn_to_write().await;
        let done = sqlx::query(
            "UPDATE sources SET position = NULL WHERE org = ? AND source = ? AND position IS NOT NULL",
        )
        .bind(org)
        .bind(source.as_str())
        .execute(&self.pool)
        .await
        .map_err(write_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn commit(
        &self,
        org: &str,
        batch: &Batch,
        now: DateTime<Utc>,
    ) -> Result<Committed, StoreError> {
        self.commit_inner(org, batch, now, None).await
    }

    async fn commit_fenced(
        &self,
        org: &str,
        batch: &Batch,
        now: DateTime<Utc>,
        fence: &Fence,
    ) -> Result<Committed, StoreError> {
        self.commit_inner(org, batch, now, Some(fence)).await
    }

    async fn commit_many(
        &self,
        batches: &[(&str, &Batch)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Committed>, StoreError> {
        let _turn = self.turn_to_write().await;
        let now_ms = ms(now);
        self.narrow_if_quiet().await;
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        self.widen_for(&mut tx, batches.iter().map(|(_, b)| b.rows()).sum())
            .await;
        let mut committed = Vec::with_capacity(batches.len());
        for (org, batch) in batches {
            committed.push(write_rows(&mut tx, org, batch, now_ms).await?);
        }
        // The journal entries and positions of every batch together (see `write_journal`).
        write_journal(&mut tx, batches).await?;
        write_positions(&mut tx, batches, now_ms, None).await?;
        tx.commit().await.map_err(write_error)?;
        Ok(committed)
    }

    async fn record_polls(&self, polls: &[Polled]) -> Result<(), StoreError> {
        // What idle orgs write: the store's chance to narrow its caches.
        self.narrow_if_quiet().await;
        let statements = shaped(polls, CHANGES_PER_STATEMENT)
            .map(|chunk| {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO sources (org, source, position, events_seen, updated_at) ",
                );
                q.push_values(chunk, |mut row, p| {
                    row.push_bind(&p.org)
                        .push_bind(p.source.as_str())
                        .push_bind(&p.position)
                        .push_bind(0_i64)
                        .push_bind(ms(p.at));
                });
                q.push(
                    " ON CONFLICT (org, source) DO UPDATE SET updated_at = MAX(updated_at, excluded.updated_at)",
                );
                q
            })
            .collect();
        self.atomically(statements).await
    }

    async fn count_notice(
        &self,
        org: &str,
        login: &str,
        cap: u32,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let _turn = self.turn_to_write().await;
        let now_ms = ms(now);
        let since = now_ms - window.num_milliseconds();
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        sqlx::query("DELETE FROM notices_sent WHERE org = ?1 AND login = ?2 AND sent_at <= ?3")
            .bind(org)
            .bind(login)
            .bind(since)
            .execute(&mut *tx)
            .await
            .map_err(write_error)?;
        let sent: i64 =
            sqlx::query("SELECT COUNT(*) FROM notices_sent WHERE org = ?1 AND login = ?2")
                .bind(org)
                .bind(login)
                .fetch_one(&mut *tx)
                .await
                .map_err(write_error)?
                .get(0);
        if sent >= i64::from(cap) {
            return Ok(false);
        }
        sqlx::query("INSERT INTO notices_sent (org, login, sent_at) VALUES (?1, ?2, ?3)")
            .bind(org)
            .bind(login)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(write_error)?;
        tx.commit().await.map_err(write_error)?;
        Ok(true)
    }

    async fn heartbeat(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Vec<String>, StoreError> {
        let _turn = self.turn_to_write().await;
        let now_ms = ms(now);
        sqlx::query(
            "INSERT INTO replicas (id, started_at, seen_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (id) DO UPDATE SET seen_at = ?2",
        )
        .bind(replica)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(write_error)?;
        // Replicas gone for a day are forgotten.
        sqlx::query("DELETE FROM replicas WHERE seen_at < ?1")
            .bind(now_ms - 86_400_000)
            .execute(&self.pool)
            .await
            .map_err(write_error)?;
        Ok(
            sqlx::query("SELECT id FROM replicas WHERE seen_at > ?1 ORDER BY id")
                .bind(now_ms - ttl.num_milliseconds())
                .fetch_all(&self.pool)
                .await
                .map_err(other)?
                .into_iter()
                .map(|r| r.get(0))
                .collect(),
        )
    }

    async fn acquire_lease(
        &self,
        org: &str,
        replica: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Option<i64>, StoreError> {
        let _turn = self.turn_to_write().await;
        let now_ms = ms(now);
        // Renewed by its live owner (same token); taken when free or lapsed (token + 1).
        let row = sqlx::query(
            "INSERT INTO leases (org, owner, token, expires_at, taken_at) VALUES (?1, ?2, 1, ?3, ?4)
             ON CONFLICT (org) DO UPDATE SET
                 token = CASE WHEN leases.owner = ?2 AND leases.expires_at > ?4 THEN leases.token ELSE leases.token + 1 END,
                 taken_at = CASE WHEN leases.owner = ?2 AND leases.expires_at > ?4 THEN leases.taken_at ELSE ?4 END,
                 owner = ?2,
                 expires_at = ?3
             WHERE leases.owner = ?2 OR leases.expires_at <= ?4
             RETURNING token",
        )
        .bind(org)
        .bind(replica)
        .bind(now_ms + ttl.num_milliseconds())
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(write_error)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn release_lease(&self, org: &str, replica: &str) -> Result<(), StoreError> {
        let _turn = self.turn_to_write().await;
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE org = ?1 AND owner = ?2")
            .bind(org)
            .bind(replica)
            .execute(&self.pool)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn cluster(&self) -> Result<(Vec<LeaseState>, Vec<Replica>), StoreError> {
        let leases =
            sqlx::query("SELECT org, owner, token, expires_at, taken_at FROM leases ORDER BY org")
                .fetch_all(&self.pool)
                .await
                .map_err(other)?
                .into_iter()
                .map(|r| LeaseState {
                    org: r.get(0),
                    owner: r.get(1),
                    token: r.get(2),
                    expires_at: from_ms(r.get(3)).unwrap_or_default(),
                    taken_at: from_ms(r.get(4)).unwrap_or_default(),
                })
                .collect();
        let replicas = sqlx::query("SELECT id, started_at, seen_at FROM replicas ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(other)?
            .into_iter()
            .map(|r| Replica {
                id: r.get(0),
                started_at: from_ms(r.get(1)).unwrap_or_default(),
                seen_at: from_ms(r.get(2)).unwrap_or_default(),
            })
            .collect();
        Ok((leases, replicas))
    }

    async fn any_due(
        &self,
        destinations: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        for d in destinations {
            let due = sqlx::query(
                "SELECT 1 FROM outbox WHERE destination = ? AND state = 'pending' AND next_attempt_at <= ? LIMIT 1",
            )
            .bind(d)
            .bind(ms(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
            if due.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn due(
        &self,
        destination: &str,
        limit: u32,
        now: DateTime<Utc>,
        with_event: bool,
    ) -> Result<Vec<Due>, StoreError> {
        let rows = sqlx::query(due_query!(
            with_event,
            " WHERE o.destination = ? AND o.state = 'pending' AND o.next_attempt_at <= ?
              ORDER BY o.next_attempt_at, o.id LIMIT ?"
        ))
        .bind(destination)
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        Ok(rows.into_iter().map(due_row).collect())
    }

    async fn confirm_claims(
        &self,
        ids: &[i64],
        _now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(ids.to_vec())
    }

    async fn delivered(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
        let update = |chunk: &[i64]| {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, last_error = NULL, delivered_at = ",
            );
            q.push_bind(ms(now)).push(" WHERE id IN (");
            let mut list = q.separated(", ");
            for id in padded(chunk) {
                list.push_bind(*id);
            }
            q.push(")");
            q
        };
        self.atomically(ids.chunks(IDS_PER_STATEMENT).map(update).collect())
            .await
    }

    async fn retry(
        &self,
        id: i64,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _turn = self.turn_to_write().await;
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
        )
        .bind(error)
        .bind(ms(next_attempt))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn dead(&self, id: i64, error: &str) -> Result<(), StoreError> {
        let _turn = self.turn_to_write().await;
        sqlx::query(
            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ? WHERE id = ?",
        )
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn postpone(&self, id: i64, until: DateTime<Utc>) -> Result<(), StoreError> {
        let _turn = self.turn_to_write().await;
        sqlx::query("UPDATE outbox SET next_attempt_at = ? WHERE id = ?")
            .bind(ms(until))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn pending_for_user(
        &self,
        destination: &str,
        org: &str,
        user_id: &str,
    ) -> Result<Vec<Due>, StoreError> {
        // One user is a batch of one: the same statement.
        let mut rows = self
            .pending_for_users(destination, org, &[user_id.to_owned()])
            .await?;
        Ok(rows.remove(user_id).unwrap_or_default())
    }

    async fn pending_for_users(
        &self,
        destination: &str,
        org: &str,
        user_ids: &[String],
    ) -> Result<HashMap<String, Vec<Due>>, StoreError> {
        let mut out: HashMap<String, Vec<Due>> = HashMap::new();
        for chunk in user_ids.chunks(IDS_PER_STATEMENT) {
            // From the users' changes to their rows (CROSS JOIN keeps that order): SQLite otherwise
            // walks every pending row of the destination for each notice, quadratic in a mass reset.
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT o.id, o.org, o.event_id, o.destination, o.attempts, o.kind, c.record, c.raw, c.received_at, c.user_id
                 FROM changes c
                 CROSS JOIN outbox o ON o.org = c.org AND o.kind = 'change' AND o.event_id = c.event_id
                 WHERE c.org = ",
            );
            q.push_bind(org)
                .push(" AND o.destination = ")
                .push_bind(destination)
                .push(" AND o.state = 'pending'");
            q.push(" AND c.user_id IN (");
            let mut list = q.separated(", ");
            for id in padded(chunk) {
                list.push_bind(id);
            }
            q.push(") ORDER BY c.received_at, o.id");
            let rows = q.build().fetch_all(&self.pool).await.map_err(other)?;
            for r in rows {
                let user: String = r.get(9);
                out.entry(user).or_default().push(due_row(r));
            }
        }
        Ok(out)
    }

    async fn users_with_context(
        &self,
        org: &str,
        user_ids: &[String],
        event_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HashSet<String>, StoreError> {
        let mut out = HashSet::new();
        for chunk in user_ids.chunks(IDS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT DISTINCT user_id FROM context_events WHERE org = ",
            );
            q.push_bind(org)
                .push(" AND event_type = ")
                .push_bind(event_type)
                .push(" AND published BETWEEN ")
                .push_bind(ms(from))
                .push(" AND ")
                .push_bind(ms(to))
                .push(" AND user_id IN (");
            let mut list = q.separated(", ");
            for id in padded(chunk) {
                list.push_bind(id);
            }
            q.push(")");
            let rows = q.build().fetch_all(&self.pool).await.map_err(other)?;
            out.extend(rows.into_iter().map(|r| r.get::<String, _>(0)));
        }
        Ok(out)
    }

    async fn context_exists(
        &self,
        org: &str,
        user_id: &str,
        event_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let found = self
            .users_with_context(org, &[user_id.to_owned()], event_type, from, to)
            .await?;
        Ok(!found.is_empty())
    }

    async fn remember_addresses(
        &self,
        addresses: &[SeenAddress],
        seen: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // One statement per few hundred addresses: a batch of notices remembers its recipients
        // in one round trip, not one per address.
        let upsert = |chunk: &[SeenAddress]| {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO addresses (org, user_id, email, last_seen) ",
            );
            q.push_values(chunk, |mut row, a| {
                row.push_bind(a.org.clone())
                    .push_bind(a.user_id.clone())
                    .push_bind(a.email.clone())
                    .push_bind(ms(seen));
            });
            q.push(
                " ON CONFLICT (org, user_id, email) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen)",
            );
            q
        };
        self.atomically(
            shaped(addresses, CHANGES_PER_STATEMENT)
                .map(upsert)
                .collect(),
        )
        .await
    }

    async fn previous_addresses(
        &self,
        org: &str,
        user_id: &str,
        current: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT email FROM addresses WHERE org = ? AND user_id = ? AND email <> ? ORDER BY last_seen DESC",
        )
        .bind(org)
        .bind(user_id)
        .bind(current)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    async fn dead_letters(&self, destination: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, org, event_id, destination, attempts, last_error FROM outbox
             WHERE state = 'dead' AND (?1 IS NULL OR destination = ?1) ORDER BY id",
        )
        .bind(destination)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        Ok(rows
            .into_iter()
            .map(|r| DeadLetter {
                id: r.get(0),
                org: r.get(1),
                event_id: r.get(2),
                destination: r.get(3),
                attempts: r.get::<i64, _>(4).try_into().unwrap_or(u32::MAX),
                last_error: r.get(5),
            })
            .collect())
    }

    async fn redrive(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
        let _turn = self.turn_to_write().await;
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        let mut n = 0;
        for id in ids {
            n += sqlx::query(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ? WHERE id = ? AND state = 'dead'",
            )
            .bind(ms(now))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(write_error)?
            .rows_affected();
        }
        tx.commit().await.map_err(write_error)?;
        Ok(n)
    }

    async fn drop_dead(&self, ids: &[i64]) -> Result<u64, StoreError> {
        let _turn = self.turn_to_write().await;
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        let mut n = 0;
        for id in ids {
            n += sqlx::query("UPDATE outbox SET state = 'dropped' WHERE id = ? AND state = 'dead'")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(write_error)?
                .rows_affected();
        }
        tx.commit().await.map_err(write_error)?;
        Ok(n)
    }

    async fn signals_after(
        &self,
        org: &str,
        position: i64,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let sql = with_limit(
            "SELECT id, body FROM signals WHERE org = ? AND id > ? ORDER BY id LIMIT ",
            limit,
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(position)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        Ok(rows
            .into_iter()
            .map(|r| JournalEntry {
                position: r.get(0),
                body: r.get(1),
            })
            .collect())
    }

    async fn journal_head(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM signals")
            .fetch_one(&self.pool)
            .await
            .map_err(other)
    }

    async fn journal_orgs(&self, after: i64, upto: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT DISTINCT org FROM signals WHERE id > ? AND id <= ?")
            .bind(after)
            .bind(upto)
            .fetch_all(&self.pool)
            .await
            .map_err(other)
    }

    async fn signals_since(
        &self,
        org: &str,
        since: DateTime<Utc>,
        position: i64,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let sql = with_limit(
            "SELECT id, body FROM signals WHERE org = ? AND id > ? AND published >= ? ORDER BY id LIMIT ",
            limit,
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(position)
            .bind(ms(since))
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        Ok(rows
            .into_iter()
            .map(|r| JournalEntry {
                position: r.get(0),
                body: r.get(1),
            })
            .collect())
    }

    async fn detection_cursor(&self, org: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT position FROM detect_cursor WHERE org = ?")
            .bind(org)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    async fn commit_findings(
        &self,
        org: &str,
        findings: &[NewFinding],
        forget: &[i64],
        position: i64,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let _turn = self.turn_to_write().await;
        let now_ms = ms(now);
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        for chunk in forget.chunks(IDS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM signals WHERE org = ");
            q.push_bind(org).push(" AND id IN (");
            let mut list = q.separated(", ");
            for id in padded(chunk) {
                list.push_bind(*id);
            }
            q.push(")");
            q.build().execute(&mut *tx).await.map_err(write_error)?;
        }
        let mut new = 0;
        for n in findings {
            if insert_finding(&mut tx, org, n, now_ms).await? {
                new += 1;
            }
        }
        sqlx::query(
            "INSERT INTO detect_cursor (org, position, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (org) DO UPDATE SET position = MAX(position, ?2), updated_at = ?3",
        )
        .bind(org)
        .bind(position)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(write_error)?;
        tx.commit().await.map_err(write_error)?;
        Ok(new)
    }

    async fn detection_pending(&self, org: &str, event_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM signals s WHERE s.org = ?1 AND s.uuid = ?2
               AND s.id > COALESCE((SELECT position FROM detect_cursor WHERE org = ?1), 0)",
        )
        .bind(org)
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(other)?;
        Ok(row.is_some())
    }

    async fn findings_by_event(
        &self,
        org: &str,
        event_ids: &[String],
    ) -> Result<Vec<(String, Finding)>, StoreError> {
        let mut out = Vec::new();
        for chunk in event_ids.chunks(IDS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT e.event_id, f.record FROM finding_events e JOIN findings f ON f.org = e.org AND f.id = e.finding_id WHERE e.org = ",
            );
            q.push_bind(org).push(" AND e.event_id IN (");
            let mut list = q.separated(", ");
            for id in padded(chunk) {
                list.push_bind(id);
            }
            q.push(")");
            let rows = q.build().fetch_all(&self.pool).await.map_err(other)?;
            for r in rows {
                let text: String = r.get(1);
                let f: Finding = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Other(format!("stored finding unreadable: {e}")))?;
                out.push((r.get::<String, _>(0), f));
            }
        }
        Ok(out)
    }

    async fn findings_for_events(
        &self,
        org: &str,
        event_ids: &[String],
    ) -> Result<Vec<Finding>, StoreError> {
        let found = self.findings_by_event(org, event_ids).await?;
        Ok(super::each_once_oldest_first(
            found.into_iter().map(|(_, f)| f),
        ))
    }

    async fn prune_signals(&self, org: &str, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let _turn = self.turn_to_write().await;
        let done = sqlx::query(
            "DELETE FROM signals WHERE org = ? AND kind = 'sign_in' AND published < ?
               AND id <= COALESCE((SELECT position FROM detect_cursor WHERE org = signals.org), 0)",
        )
        .bind(org)
        .bind(ms(before))
        .execute(&self.pool)
        .await
        .map_err(write_error)?;
        Ok(done.rows_affected())
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let _turn = self.turn_to_write().await;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(write_error)?;
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(other)?;
        Ok(row.get(0))
    }

    async fn change(&self, org: &str, event_id: &str) -> Result<Option<MfaChange>, StoreError> {
        let row = sqlx::query("SELECT record FROM changes WHERE org = ? AND event_id = ?")
            .bind(org)
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        match row {
            None => Ok(None),
            Some(r) => serde_json::from_str(&r.get::<String, _>(0))
                .map(Some)
                .map_err(|e| StoreError::Other(format!("stored record unreadable: {e}"))),
        }
    }

    async fn report(
        &self,
        org: &str,
        change_id: &str,
        user_id: &str,
    ) -> Result<Option<Report>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE org = ? AND change_id = ? AND user_id = ?"
        )))
        .bind(org)
        .bind(change_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(other)?
        .map(report_row)
        .transpose()
    }

    async fn report_for_finding(
        &self,
        org: &str,
        finding_id: &str,
    ) -> Result<Option<Report>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE org = ? AND finding_id = ?"
        )))
        .bind(org)
        .bind(finding_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(other)?
        .map(report_row)
        .transpose()
    }

    async fn commit_report(
        &self,
        report: &Report,
        finding: &NewFinding,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let _turn = self.turn_to_write().await;
        let steps = serde_json::to_string(&report.steps).map_err(|e| StoreError::Write {
            detail: format!("the report could not be serialized: {e}"),
        })?;
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        let inserted = sqlx::query(
            "INSERT INTO reports (org, change_id, user_id, finding_id, reported_at, steps)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&report.org)
        .bind(&report.change_id)
        .bind(&report.user_id)
        .bind(&report.finding_id)
        .bind(ms(report.reported_at))
        .bind(&steps)
        .execute(&mut *tx)
        .await
        .map_err(write_error)?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        insert_finding(&mut tx, &report.org, finding, ms(now)).await?;
        tx.commit().await.map_err(write_error)?;
        Ok(true)
    }

    async fn save_report_steps(
        &self,
        org: &str,
        finding_id: &str,
        steps: &[(Step, StepState)],
    ) -> Result<(), StoreError> {
        let _turn = self.turn_to_write().await;
        let text = serde_json::to_string(steps).map_err(|e| StoreError::Write {
            detail: format!("the report could not be serialized: {e}"),
        })?;
        sqlx::query("UPDATE reports SET steps = ? WHERE org = ? AND finding_id = ?")
            .bind(text)
            .bind(org)
            .bind(finding_id)
            .execute(&self.pool)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn reports(&self, limit: u32) -> Result<Vec<Report>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REPORT_COLUMNS} FROM reports ORDER BY reported_at DESC LIMIT ?"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(other)?
        .into_iter()
        .map(report_row)
        .collect()
    }

    async fn recent(&self, kind: ItemKind, limit: u32) -> Result<Vec<Recent>, StoreError> {
        let sql = match kind {
            ItemKind::Change => {
                "SELECT org, event_id, record, received_at FROM changes ORDER BY received_at DESC, rowid DESC LIMIT ?"
            }
            ItemKind::Finding => {
                "SELECT org, id, record, created_at FROM findings ORDER BY created_at DESC, rowid DESC LIMIT ?"
            }
        };
        let rows = sqlx::query(sql)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let org: String = r.get(0);
            let id: String = r.get(1);
            let text: String = r.get(2);
            let item = match kind {
                ItemKind::Change => serde_json::from_str(&text).map(Item::Change),
                ItemKind::Finding => serde_json::from_str(&text).map(Item::Finding),
            }
            .map_err(|e| format!("stored record unreadable: {e}"));
            let deliveries = sqlx::query(
                "SELECT destination, state, attempts, last_error FROM outbox
                 WHERE org = ? AND kind = ? AND event_id = ? ORDER BY destination",
            )
            .bind(&org)
            .bind(kind.as_str())
            .bind(&id)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?
            .into_iter()
            .map(|d| Delivery {
                destination: d.get(0),
                state: d.get(1),
                attempts: d.get::<i64, _>(2).try_into().unwrap_or(u32::MAX),
                last_error: d.get(3),
            })
            .collect();
            out.push(Recent {
                org,
                id,
                item,
                stored_at: from_ms(r.get(3)).unwrap_or_default(),
                deliveries,
            });
        }
        Ok(out)
    }

    async fn delivered_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(sqlx::query(
            "SELECT destination, COUNT(*) FROM outbox WHERE delivered_at >= ? GROUP BY destination ORDER BY destination",
        )
        .bind(ms(since))
        .fetch_all(&self.pool)
        .await
        .map_err(other)?
        .into_iter()
        .map(|r| (r.get(0), r.get::<i64, _>(1).max(0) as u64))
        .collect())
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        let count = |sql: &'static str| {
            let pool = self.pool.clone();
            async move {
                sqlx::query(sql)
                    .fetch_one(&pool)
                    .await
                    .map(|r| r.get::<i64, _>(0).max(0) as u64)
                    .map_err(other)
            }
        };
        let changes = count("SELECT COUNT(*) FROM changes").await?;
        let rejects = count("SELECT COUNT(*) FROM rejects").await?;
        let findings = count("SELECT COUNT(*) FROM findings").await?;
        let outbox = sqlx::query(
            "SELECT destination,
                    SUM(state = 'delivered'), SUM(state = 'pending'), SUM(state = 'dead')
             FROM outbox GROUP BY destination ORDER BY destination",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(other)?
        .into_iter()
        .map(|r| {
            let n = |i: usize| r.get::<Option<i64>, _>(i).unwrap_or(0).max(0) as u64;
            (r.get::<String, _>(0), n(1), n(2), n(3))
        })
        .collect();
        let oldest_pending =
            sqlx::query("SELECT MIN(created_at) FROM outbox WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(other)?
                .get::<Option<i64>, _>(0)
                .and_then(from_ms);
        let sources = sqlx::query(
            "SELECT org, source, position, newest_published, events_seen, updated_at FROM sources ORDER BY org, source",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(other)?
        .into_iter()
        .map(|r| SourceState {
            org: r.get(0),
            source: r.get(1),
            position: r.get(2),
            newest_published: parse_time(r.get(3)),
            events_seen: r.get::<i64, _>(4).max(0) as u64,
            updated_at: from_ms(r.get(5)),
        })
        .collect();
        Ok(Stats {
            changes,
            findings,
            rejects,
            outbox,
            oldest_pending,
            sources,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::Reject;

    /// Every open connection's `cache_size` (KiB, negative): each is held in turn (one on its
    /// way back to the pool is waited for).
    async fn cache_sizes(store: &SqliteStore) -> Vec<i64> {
        let mut held = Vec::new();
        for _ in 0..store.pool.size() {
            held.push(store.pool.acquire().await.unwrap());
        }
        let mut sizes = Vec::new();
        for c in &mut held {
            let size: i64 = sqlx::query("PRAGMA cache_size")
                .fetch_one(&mut **c)
                .await
                .unwrap()
                .get(0);
            sizes.push(size);
        }
        sizes
    }

    fn batch(rows: usize, cursor: &str) -> Batch {
        Batch {
            source: SourceKind::SystemLog,
            changes: Vec::new(),
            rejects: (0..rows)
                .map(|i| Reject {
                    error: format!("value {i}"),
                    raw: "{}".to_owned(),
                })
                .collect(),
            events_seen: rows as u64,
            newest_published: None,
            cursor: Some(cursor.to_owned()),
            context: Vec::new(),
            signals: Vec::new(),
        }
    }

    /// With SQLite's busy handler off (a writer that finds the write lock taken fails at once with
    /// "database is locked"), writers on both connections at once all succeed: they took turns.
    #[tokio::test(flavor = "multi_thread")]
    async fn writers_in_one_process_take_turns_without_the_busy_handler() {
        let dir = std::env::temp_dir().join(format!("fw-turns-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open_inner(&dir.join("fw.db"), None, Duration::ZERO)
            .await
            .unwrap();
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..8 {
            let store = store.clone();
            writers.spawn(async move {
                let org = format!("org{w}");
                for i in 0..25 {
                    store
                        .commit(&org, &batch(50, &format!("c{i}")), Utc::now())
                        .await?;
                    store
                        .heartbeat(&org, Utc::now(), chrono::Duration::seconds(30))
                        .await?;
                }
                Ok::<_, StoreError>(())
            });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap().unwrap();
        }
        for w in 0..8 {
            let cursor = store
                .cursor(&format!("org{w}"), SourceKind::SystemLog)
                .await
                .unwrap();
            assert_eq!(cursor.as_deref(), Some("c24"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_backlog_widens_the_page_cache_and_a_quiet_store_narrows_it_again() {
        let dir = std::env::temp_dir().join(format!("fw-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
        let narrow: i64 = PageCache::NARROW.parse().unwrap();
        let wide: i64 = PageCache::WIDE.parse().unwrap();
        assert!(cache_sizes(&store).await.iter().all(|s| *s == narrow));

        // A few rows are no backlog.
        store
            .commit(
                "acme",
                &batch(PageCache::BACKLOG_ROWS - 1, "a1"),
                Utc::now(),
            )
            .await
            .unwrap();
        assert!(cache_sizes(&store).await.iter().all(|s| *s == narrow));
        assert!(store.cache.lock().is_none());

        // A backlog's commit widens its connection, which stays wide within the quiet period.
        store
            .commit("acme", &batch(PageCache::BACKLOG_ROWS, "a2"), Utc::now())
            .await
            .unwrap();
        store.record_polls(&[]).await.unwrap();
        let sizes = cache_sizes(&store).await;
        assert!(sizes.contains(&wide), "{sizes:?}");

        // A minute later (the deadline moved, not waited for), the next write narrows every
        // connection (one still on its way back to the pool is reached by a later write).
        *store.cache.lock() = Some(Instant::now());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            store.record_polls(&[]).await.unwrap();
            if store.cache.lock().is_none() {
                break;
            }
            assert!(Instant::now() < deadline, "never narrowed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sizes = cache_sizes(&store).await;
        assert!(sizes.iter().all(|s| *s == narrow), "{sizes:?}");
        // And what was written is all there.
        assert_eq!(
            store
                .cursor("acme", SourceKind::SystemLog)
                .await
                .unwrap()
                .as_deref(),
            Some("a2")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
