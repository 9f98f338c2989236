//! The shared store: PostgreSQL, for several replicas (`[store] url = "postgres://…"`). The
//! same contract as the embedded SQLite store (`tests/store_contract`), its own migrations
//! (`migrations/postgres/`). Writes that append to an org's journal take that org's transaction
//! advisory lock first, so journal positions are given in commit order per org even when several
//! replicas commit at once (a reader after position N never misses a row committed later with a
//! smaller id).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};

use super::sql::{
    CHANGES_PER_STATEMENT, IDS_PER_STATEMENT, OUTBOX_ROWS_PER_STATEMENT, REPORT_COLUMNS,
    STATEMENT_CACHE, due_query, due_row, due_select, from_ms, ms, other, padded, parse_time,
    report_row, shaped, write_error,
};
use super::{
    Batch, Committed, DeadLetter, Delivery, Due, Fence, ItemKind, JournalEntry, LeaseState,
    NewFinding, Owed, Polled, Recent, Replica, SeenAddress, SourceKind, SourceState, Stats, Store,
    StoreError,
};
use crate::detect::Finding;
use crate::record::{Item, MfaChange, format_published};
use crate::report::{Report, Step, StepState};

/// The schema, as numbered migrations applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_initial.sql")),
    (2, include_str!("migrations/postgres/0002_cluster.sql")),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 2;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// This process, as its outbox claims name it.
    replica: String,
}

/// How long a replica's claim on outbox rows lasts: longer than any delivery (whose timeouts are
/// seconds), short enough that a dead replica's rows move on soon.
const CLAIM_FOR_MS: i64 = 60_000;

/// A name for this process among replicas: host, process id and a random suffix.
pub fn replica_id() -> String {
    use rand::RngCore;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| crate::untrusted::identifier(h.trim(), 40))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::rngs::OsRng.next_u32() & 0xffff
    )
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// How to reach the server.
#[derive(Clone)]
pub struct Connect {
    /// `postgres://user@host:5432/db?sslmode=verify-full` (no password in it: see `password`).
    pub url: String,
    pub password: Option<crate::secret::Secret>,
    /// A CA certificate for `sslmode=verify-ca|verify-full`.
    pub ca_file: Option<std::path::PathBuf>,
    /// Connections in the pool.
    pub max_connections: u32,
    /// Only these tables' schema (tests: one schema per test); none: the user's default.
    pub schema: Option<String>,
    /// This replica's name (its leases and claims); none: [`replica_id`].
    pub replica: Option<String>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// The URL without any password it carries.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

impl PgStore {
    /// Connects and brings the schema up to date.
    pub async fn connect(c: &Connect) -> Result<PgStore, StoreError> {
        let open_error = |detail: String| StoreError::Open {
            path: redact(&c.url),
            detail,
        };
        let mut options: PgConnectOptions = c
            .url
            .parse::<PgConnectOptions>()
            .map_err(|e: sqlx::Error| open_error(e.to_string()))?
            // Every shape of the multi-row statements (`sql::shaped`) stays prepared.
            .statement_cache_capacity(STATEMENT_CACHE);
        if let Some(p) = &c.password {
            options = options.password(p.expose());
        }
        if let Some(ca) = &c.ca_file {
            options = options.ssl_root_cert(ca);
        }
        if let Some(schema) = &c.schema {
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(c.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        migrate(&pool)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        Ok(PgStore {
            pool,
            replica: c.replica.clone().unwrap_or_else(replica_id),
        })
    }

    /// The schema versions applied, in order.
    pub async fn schema_versions(&self) -> Result<Vec<i64>, StoreError> {
        sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .map_err(other)
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }
}

/// Applies the migrations not yet applied, each in its own transaction; one replica at a time
/// (a session advisory lock), so replicas starting together do not race.
async fn migrate(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(7307221)")
        .execute(&mut *conn)
        .await?;
    let result = async {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let current: i64 =
            sqlx::query("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations")
                .fetch_one(&mut *conn)
                .await?
                .get(0);
        if current > SCHEMA_VERSION {
            return Err(sqlx::Error::Protocol(format!(
                "the database is at schema version {current}, newer than this factorwatch ({SCHEMA_VERSION}): upgrade factorwatch"
            )));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(ms(Utc::now()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock(7307221)")
        .execute(&mut *conn)
        .await;
    result
}

/// Serializes the journal writes of one org (see the module's doc).
async fn lock_org(tx: &mut sqlx::Transaction<'_, Postgres>, org: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(org)
        .execute(&mut **tx)
        .await
        .map_err(write_error)?;
    Ok(())
}

/// Stores a finding with its events and outbox rows, unless it is already stored (false then).
async fn insert_finding(
    tx: &mut sqlx::Transaction<'_, Postgres>,
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (org, id) DO NOTHING",
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
            "INSERT INTO finding_events (org, event_id, finding_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
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
             VALUES ($1, 'finding', $2, $3, 'pending', $4, $5) ON CONFLICT DO NOTHING",
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

impl PgStore {
    async fn commit_inner(
        &self,
        org: &str,
        batch: &Batch,
        now: DateTime<Utc>,
        fence: Option<&Fence>,
    ) -> Result<Committed, StoreError> {
        let now_ms = ms(now);
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        lock_org(&mut tx, org).await?;
        if let Some(f) = fence {
            // FOR SHARE: a takeover waits for this commit, and this commit sees a takeover.
            let held = sqlx::query(
                "SELECT 1 FROM leases WHERE org = $1 AND owner = $2 AND token = $3 AND expires_at > $4 FOR SHARE",
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
        let mut committed = Committed::default();
        // Multi-row statements: one round trip to the server per few hundred changes, not one
        // per row.
        let mut inserted: HashSet<String> = HashSet::new();
        for chunk in shaped(&batch.changes, CHANGES_PER_STATEMENT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO changes (org, event_id, event_type, action, published, received_at, record, raw, user_id) ",
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
            q.push(" ON CONFLICT (org, event_id) DO NOTHING RETURNING event_id");
            let rows = q.build().fetch_all(&mut *tx).await.map_err(write_error)?;
            for r in rows {
                inserted.insert(r.try_get::<String, _>(0).map_err(write_error)?);
            }
        }
        // Each new change once, even if the batch holds its event twice.
        let mut outbox: Vec<(&str, &Owed)> = Vec::new();
        for c in &batch.changes {
            if inserted.remove(&c.event_id) {
                committed.new += 1;
                outbox.extend(c.destinations.iter().map(|d| (c.event_id.as_str(), d)));
            } else {
                committed.duplicates += 1;
            }
        }
        for chunk in shaped(&outbox, OUTBOX_ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO outbox (org, event_id, destination, state, next_attempt_at, created_at) ",
            );
            q.push_values(chunk, |mut row, (event_id, owed)| {
                row.push_bind(org)
                    .push_bind(*event_id)
                    .push_bind(&owed.destination)
                    .push_bind("pending")
                    .push_bind(now_ms.saturating_add(owed.after_ms()))
                    .push_bind(now_ms);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await.map_err(write_error)?;
        }
        for c in &batch.context {
            sqlx::query(
                "INSERT INTO context_events (org, uuid, event_type, user_id, published) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
            )
            .bind(org)
            .bind(&c.uuid)
            .bind(&c.event_type)
            .bind(&c.user_id)
            .bind(ms(c.published))
            .execute(&mut *tx)
            .await
            .map_err(write_error)?;
        }
        for chunk in shaped(&batch.signals, CHANGES_PER_STATEMENT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO signals (org, uuid, kind, published, body) ",
            );
            q.push_values(chunk, |mut row, s| {
                row.push_bind(org)
                    .push_bind(&s.uuid)
                    .push_bind(s.kind)
                    .push_bind(ms(s.published))
                    .push_bind(&s.body);
            });
            q.push(" ON CONFLICT (org, uuid) DO NOTHING");
            q.build().execute(&mut *tx).await.map_err(write_error)?;
        }
        for r in &batch.rejects {
            sqlx::query(
                "INSERT INTO rejects (org, source, received_at, error, raw) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(org)
            .bind(batch.source.as_str())
            .bind(now_ms)
            .bind(&r.error)
            .bind(&r.raw)
            .execute(&mut *tx)
            .await
            .map_err(write_error)?;
        }
        // The newest published only moves forward; the position only when the batch has one.
        sqlx::query(
            "INSERT INTO sources (org, source, position, newest_published, events_seen, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (org, source) DO UPDATE SET
                 position = COALESCE($3, sources.position),
                 newest_published = CASE
                     WHEN sources.newest_published IS NULL OR $4 > sources.newest_published THEN COALESCE($4, sources.newest_published)
                     ELSE sources.newest_published END,
                 events_seen = sources.events_seen + $5,
                 updated_at = $6,
                 updated_by = $7",
        )
        .bind(org)
        .bind(batch.source.as_str())
        .bind(batch.cursor.as_deref())
        .bind(batch.newest_published.as_ref().map(format_published))
        .bind(batch.events_seen as i64)
        .bind(now_ms)
        .bind(fence.map(|f| format!("{}#{}", f.replica, f.token)))
        .execute(&mut *tx)
        .await
        .map_err(write_error)?;
        tx.commit().await.map_err(write_error)?;
        Ok(committed)
    }
}

impl Store for PgStore {
    async fn cursor(&self, org: &str, source: SourceKind) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT position FROM sources WHERE org = $1 AND source = $2")
            .bind(org)
            .bind(source.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        Ok(row.and_then(|r| r.get::<Option<String>, _>(0)))
    }

    async fn reset_cursor(&self, org: &str, source: SourceKind) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sources SET position = NULL WHERE org = $1 AND source = $2 AND position IS NOT NULL",
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
        // One transaction per org: each takes its org's lock, and several orgs' locks in one
        // transaction could deadlock against another replica's.
        let mut committed = Vec::with_capacity(batches.len());
        for (org, batch) in batches {
            committed.push(self.commit_inner(org, batch, now, None).await?);
        }
        Ok(committed)
    }

    async fn record_polls(&self, polls: &[Polled]) -> Result<(), StoreError> {
        if polls.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        for chunk in shaped(polls, CHANGES_PER_STATEMENT) {
            let mut q = QueryBuilder::<Postgres>::new(
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
                " ON CONFLICT (org, source) DO UPDATE SET updated_at = GREATEST(sources.updated_at, EXCLUDED.updated_at)",
            );
            q.build().execute(&mut *tx).await.map_err(write_error)?;
        }
        tx.commit().await.map_err(write_error)
    }

    async fn count_notice(
        &self,
        org: &str,
        login: &str,
        cap: u32,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now_ms = ms(now);
        let since = now_ms - window.num_milliseconds();
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("notices\n{org}\n{login}"))
            .execute(&mut *tx)
            .await
            .map_err(write_error)?;
        sqlx::query("DELETE FROM notices_sent WHERE org = $1 AND login = $2 AND sent_at <= $3")
            .bind(org)
            .bind(login)
            .bind(since)
            .execute(&mut *tx)
            .await
            .map_err(write_error)?;
        let sent: i64 =
            sqlx::query("SELECT COUNT(*) FROM notices_sent WHERE org = $1 AND login = $2")
                .bind(org)
                .bind(login)
                .fetch_one(&mut *tx)
                .await
                .map_err(write_error)?
                .get(0);
        if sent >= i64::from(cap) {
            return Ok(false);
        }
        sqlx::query("INSERT INTO notices_sent (org, login, sent_at) VALUES ($1, $2, $3)")
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
        let now_ms = ms(now);
        sqlx::query(
            "INSERT INTO replicas (id, started_at, seen_at) VALUES ($1, $2, $2)
             ON CONFLICT (id) DO UPDATE SET seen_at = $2",
        )
        .bind(replica)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(write_error)?;
        // Replicas gone for a day are forgotten.
        sqlx::query("DELETE FROM replicas WHERE seen_at < $1")
            .bind(now_ms - 86_400_000)
            .execute(&self.pool)
            .await
            .map_err(write_error)?;
        Ok(
            sqlx::query("SELECT id FROM replicas WHERE seen_at > $1 ORDER BY id")
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
        let now_ms = ms(now);
        // Renewed by its live owner (same token); taken when free or lapsed (token + 1).
        let row = sqlx::query(
            "INSERT INTO leases (org, owner, token, expires_at, taken_at) VALUES ($1, $2, 1, $3, $4)
             ON CONFLICT (org) DO UPDATE SET
                 token = CASE WHEN leases.owner = $2 AND leases.expires_at > $4 THEN leases.token ELSE leases.token + 1 END,
                 taken_at = CASE WHEN leases.owner = $2 AND leases.expires_at > $4 THEN leases.taken_at ELSE $4 END,
                 owner = $2,
                 expires_at = $3
             WHERE leases.owner = $2 OR leases.expires_at <= $4
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
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE org = $1 AND owner = $2")
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
                "SELECT 1 FROM outbox WHERE destination = $1 AND state = 'pending' AND next_attempt_at <= $2 AND (claim_until IS NULL OR claim_until < $2) LIMIT 1",
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
        // Claimed for this replica: the others skip these rows (SKIP LOCKED while claiming, the
        // claim after) until they are settled or the claim runs out (this replica died).
        let now_ms = ms(now);
        let ids: Vec<i64> = sqlx::query(
            "WITH c AS (
                 SELECT id FROM outbox
                 WHERE destination = $1 AND state = 'pending' AND next_attempt_at <= $2
                   AND (claim_until IS NULL OR claim_until < $2)
                 ORDER BY next_attempt_at, id LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             UPDATE outbox o SET claimed_by = $4, claim_until = $5 FROM c WHERE o.id = c.id
             RETURNING o.id",
        )
        .bind(destination)
        .bind(now_ms)
        .bind(i64::from(limit))
        .bind(&self.replica)
        .bind(now_ms + CLAIM_FOR_MS)
        .fetch_all(&self.pool)
        .await
        .map_err(write_error)?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(due_query!(
            with_event,
            " WHERE o.id = ANY($1) ORDER BY o.next_attempt_at, o.id"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        Ok(rows.into_iter().map(due_row).collect())
    }

    async fn confirm_claims(
        &self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let now_ms = ms(now);
        Ok(sqlx::query(
            "UPDATE outbox SET claim_until = $1
             WHERE id = ANY($2) AND state = 'pending' AND claimed_by = $3 AND claim_until > $4
             RETURNING id",
        )
        .bind(now_ms + CLAIM_FOR_MS)
        .bind(ids)
        .bind(&self.replica)
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(write_error)?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
    }

    async fn delivered(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, last_error = NULL, claimed_by = NULL, claim_until = NULL, delivered_at = ",
            );
            q.push_bind(ms(now)).push(" WHERE id IN (");
            let mut list = q.separated(", ");
            for id in padded(chunk) {
                list.push_bind(*id);
            }
            q.push(")");
            q.build().execute(&mut *tx).await.map_err(write_error)?;
        }
        tx.commit().await.map_err(write_error)
    }

    async fn retry(
        &self,
        id: i64,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, claimed_by = NULL, claim_until = NULL WHERE id = $3",
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
        sqlx::query(
            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = $1, claimed_by = NULL, claim_until = NULL WHERE id = $2",
        )
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn postpone(&self, id: i64, until: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET next_attempt_at = $1, claimed_by = NULL, claim_until = NULL WHERE id = $2")
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
            // From the users' changes to their rows, as SQLite is told to (store/sqlite.rs).
            let mut q = QueryBuilder::<Postgres>::new(
                "SELECT o.id, o.org, o.event_id, o.destination, o.attempts, o.kind, c.record, c.raw, c.received_at, c.user_id
                 FROM changes c
                 JOIN outbox o ON o.org = c.org AND o.kind = 'change' AND o.event_id = c.event_id
                 WHERE c.org = ",
            );
            q.push_bind(org)
                .push(" AND o.destination = ")
                .push_bind(destination)
                .push(" AND o.state = 'pending'");
            // Rows another replica has claimed are its to tell.
            q.push(" AND (o.claim_until IS NULL OR o.claim_until < ")
                .push_bind(ms(Utc::now()))
                .push(" OR o.claimed_by = ")
                .push_bind(&self.replica)
                .push(")");
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
            let mut q = QueryBuilder::<Postgres>::new(
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
        if addresses.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        for a in addresses {
            sqlx::query(
                "INSERT INTO addresses (org, user_id, email, last_seen) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (org, user_id, lower(email)) DO UPDATE SET last_seen = GREATEST(addresses.last_seen, $4)",
            )
            .bind(&a.org)
            .bind(&a.user_id)
            .bind(&a.email)
            .bind(ms(seen))
            .execute(&mut *tx)
            .await
            .map_err(write_error)?;
        }
        tx.commit().await.map_err(write_error)
    }

    async fn previous_addresses(
        &self,
        org: &str,
        user_id: &str,
        current: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT email FROM addresses WHERE org = $1 AND user_id = $2 AND lower(email) <> lower($3) ORDER BY last_seen DESC",
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
             WHERE state = 'dead' AND ($1::text IS NULL OR destination = $1) ORDER BY id",
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
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        let mut n = 0;
        for id in ids {
            n += sqlx::query(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1 WHERE id = $2 AND state = 'dead'",
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
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        let mut n = 0;
        for id in ids {
            n +=
                sqlx::query("UPDATE outbox SET state = 'dropped' WHERE id = $1 AND state = 'dead'")
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
        let rows = sqlx::query(
            "SELECT id, body FROM signals WHERE org = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(org)
        .bind(position)
        .bind(i64::from(limit))
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
        sqlx::query_scalar("SELECT DISTINCT org FROM signals WHERE id > $1 AND id <= $2")
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
        let rows = sqlx::query(
            "SELECT id, body FROM signals WHERE org = $1 AND id > $2 AND published >= $3 ORDER BY id LIMIT $4",
        )
        .bind(org)
        .bind(position)
        .bind(ms(since))
        .bind(i64::from(limit))
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
        let row = sqlx::query("SELECT position FROM detect_cursor WHERE org = $1")
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
        let now_ms = ms(now);
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        lock_org(&mut tx, org).await?;
        for chunk in forget.chunks(IDS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Postgres>::new("DELETE FROM signals WHERE org = ");
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
            "INSERT INTO detect_cursor (org, position, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (org) DO UPDATE SET position = GREATEST(detect_cursor.position, $2), updated_at = $3",
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
            "SELECT 1 FROM signals s WHERE s.org = $1 AND s.uuid = $2
               AND s.id > COALESCE((SELECT position FROM detect_cursor WHERE org = $1), 0)",
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
            let mut q = QueryBuilder::<Postgres>::new(
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
        let done = sqlx::query(
            "DELETE FROM signals WHERE org = $1 AND kind = 'sign_in' AND published < $2
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
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(write_error)?;
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(other)?;
        Ok(row.get(0))
    }

    async fn change(&self, org: &str, event_id: &str) -> Result<Option<MfaChange>, StoreError> {
        let row = sqlx::query("SELECT record FROM changes WHERE org = $1 AND event_id = $2")
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
            "SELECT {REPORT_COLUMNS} FROM reports WHERE org = $1 AND change_id = $2 AND user_id = $3"
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
            "SELECT {REPORT_COLUMNS} FROM reports WHERE org = $1 AND finding_id = $2"
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
        let steps = serde_json::to_string(&report.steps).map_err(|e| StoreError::Write {
            detail: format!("the report could not be serialized: {e}"),
        })?;
        let mut tx = self.pool.begin().await.map_err(write_error)?;
        let inserted = sqlx::query(
            "INSERT INTO reports (org, change_id, user_id, finding_id, reported_at, steps)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
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
        let text = serde_json::to_string(steps).map_err(|e| StoreError::Write {
            detail: format!("the report could not be serialized: {e}"),
        })?;
        sqlx::query("UPDATE reports SET steps = $1 WHERE org = $2 AND finding_id = $3")
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
            "SELECT {REPORT_COLUMNS} FROM reports ORDER BY reported_at DESC LIMIT $1"
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
                "SELECT org, event_id, record, received_at FROM changes ORDER BY received_at DESC, event_id DESC LIMIT $1"
            }
            ItemKind::Finding => {
                "SELECT org, id, record, created_at FROM findings ORDER BY created_at DESC, id DESC LIMIT $1"
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
                 WHERE org = $1 AND kind = $2 AND event_id = $3 ORDER BY destination",
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
            "SELECT destination, COUNT(*) FROM outbox WHERE delivered_at >= $1 GROUP BY destination ORDER BY destination",
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
                    COUNT(*) FILTER (WHERE state = 'delivered'), COUNT(*) FILTER (WHERE state = 'pending'), COUNT(*) FILTER (WHERE state = 'dead')
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
