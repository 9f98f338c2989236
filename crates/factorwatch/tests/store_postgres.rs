//! The PostgreSQL store keeps the same `Store` contract as SQLite (`tests/store_contract`), on
//! a real server: `FACTORWATCH_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`,
//! the local server `.ci/run` makes sure of). Each check gets a schema of its own, dropped after.
//!
//! Without a server the test says so and passes, unless `FACTORWATCH_REQUIRE_POSTGRES=1` (as in
//! CI), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod store_contract;

use std::sync::atomic::{AtomicUsize, Ordering};

use factorwatch::store::Store;
use factorwatch::store::postgres::{Connect, PgStore, SCHEMA_VERSION};

pub fn url() -> String {
    std::env::var("FACTORWATCH_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A connection to the server, or None (and a message) when there is none and none is required.
pub async fn server() -> Option<sqlx::PgPool> {
    match sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(&url())
        .await
    {
        Ok(pool) => Some(pool),
        Err(e) => {
            assert!(
                std::env::var("FACTORWATCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "FACTORWATCH_REQUIRE_POSTGRES=1 but PostgreSQL at {} does not answer: {e}",
                factorwatch::store::postgres::redact(&url())
            );
            eprintln!(
                "skipped: no PostgreSQL at {} ({e}); set FACTORWATCH_TEST_POSTGRES",
                factorwatch::store::postgres::redact(&url())
            );
            None
        }
    }
}

/// A fresh schema of its own.
pub async fn fresh(admin: &sqlx::PgPool, name: &str) -> PgStore {
    let schema = format!("fw_{name}_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    )))
    .execute(admin)
    .await
    .unwrap();
    PgStore::connect(&Connect {
        url: url(),
        password: None,
        ca_file: None,
        max_connections: 4,
        schema: Some(schema),
        replica: None,
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_keeps_the_store_contract() {
    let Some(admin) = server().await else {
        return;
    };
    let n = AtomicUsize::new(0);
    store_contract::run_all(|| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let admin = admin.clone();
        async move { fresh(&admin, &format!("contract{i}")).await }
    })
    .await;
    for i in 0..n.load(Ordering::SeqCst) {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS fw_contract{i}_{} CASCADE",
            std::process::id()
        )))
        .execute(&admin)
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_starting_together_migrate_once() {
    let Some(admin) = server().await else {
        return;
    };
    let first = fresh(&admin, "migrate").await;
    let schema = format!("fw_migrate_{}", std::process::id());
    let connect = Connect {
        url: url(),
        password: None,
        ca_file: None,
        max_connections: 2,
        schema: Some(schema.clone()),
        replica: None,
    };
    let again = futures_util::future::join_all((0..3).map(|_| PgStore::connect(&connect))).await;
    for s in again {
        assert_eq!(
            s.unwrap().schema_versions().await.unwrap(),
            (1..=SCHEMA_VERSION).collect::<Vec<_>>()
        );
    }
    first.close().await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&admin)
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_runs_on_postgres_end_to_end() {
    let Some(admin) = server().await else {
        return;
    };
    let schema = format!("fw_daemon_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let sim = common::sim(okta_sim::server::RateLimits::default()).await;
    sim.users(3).await;
    let events: Vec<serde_json::Value> = (0..30)
        .map(|i| common::mfa_event(&format!("33333333-aaaa-4bbb-8ccc-{i:012}"), i, 3))
        .collect();
    sim.control("/sim/events", serde_json::json!(events)).await;
    let dir = std::env::temp_dir().join(format!("fw-pg-daemon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = common::config(&dir, &sim.base, false);
    c.store.url = Some(format!("{}?options=-csearch_path%3D{schema}", url()));
    for run in 0..2 {
        let d = factorwatch::daemon::Daemon::start_once(&c, &common::env)
            .await
            .unwrap();
        assert!(matches!(d.store, factorwatch::store::AnyStore::Postgres(_)));
        d.finish(std::time::Duration::from_secs(20)).await.unwrap();
        let mut ids = common::siem_ids(&dir.join("siem.ndjson"));
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!((ids.len(), n), (30, 30), "run {run}: every change once");
        let emails = common::emails(&dir.join("mail"));
        assert_eq!(
            emails.len(),
            (0..30).filter(|i| common::notifies(*i)).count()
        );
    }
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&admin)
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_claim_disjoint_rows_and_take_over_a_dead_ones() {
    use factorwatch::store::{Batch, NewChange, SourceKind};
    let Some(admin) = server().await else {
        return;
    };
    let first = fresh(&admin, "claims").await;
    let schema = format!("fw_claims_{}", std::process::id());
    let second = PgStore::connect(&Connect {
        url: url(),
        password: None,
        ca_file: None,
        max_connections: 2,
        schema: Some(schema.clone()),
        replica: Some("second".into()),
    })
    .await
    .unwrap();
    let now = chrono::Utc::now();
    let changes: Vec<NewChange> = (0..10)
        .map(|i| NewChange {
            event_id: format!("e{i}"),
            event_type: "user.mfa.factor.activate".into(),
            action: "enrolled".into(),
            published: Some(now),
            user_id: Some("u1".into()),
            record: "{}".into(),
            raw: "{}".into(),
            destinations: vec!["siem".into()],
        })
        .collect();
    first
        .commit(
            "acme",
            &Batch {
                source: SourceKind::SystemLog,
                changes,
                rejects: vec![],
                events_seen: 10,
                newest_published: Some(now),
                cursor: None,
                context: vec![],
                signals: vec![],
            },
            now,
        )
        .await
        .unwrap();
    // Two replicas asking at once get disjoint rows, all of them between them.
    let (a, b) = tokio::join!(
        first.due("siem", 6, now, true),
        second.due("siem", 6, now, true)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut all: Vec<i64> = a.iter().chain(&b).map(|d| d.id).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), a.len() + b.len(), "no row claimed twice");
    assert_eq!(all.len(), 10);
    assert!(
        second.due("siem", 10, now, true).await.unwrap().is_empty(),
        "all claimed"
    );
    // The second settles its rows; the first dies with its rows claimed: once the claim runs
    // out, the second delivers them.
    second
        .delivered(&b.iter().map(|d| d.id).collect::<Vec<_>>(), now)
        .await
        .unwrap();
    let before = now + chrono::Duration::seconds(30);
    assert!(
        second
            .due("siem", 10, before, true)
            .await
            .unwrap()
            .is_empty(),
        "still claimed"
    );
    let later = now + chrono::Duration::seconds(61);
    let taken = second.due("siem", 10, later, true).await.unwrap();
    let mut ids: Vec<i64> = taken.iter().map(|d| d.id).collect();
    let mut expected: Vec<i64> = a.iter().map(|d| d.id).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected);
    // The first, resumed after its claim was taken over, may not deliver those rows.
    assert!(
        first
            .confirm_claims(&expected, later)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        second.confirm_claims(&ids, later).await.unwrap().len(),
        ids.len()
    );
    second.delivered(&ids, later).await.unwrap();
    assert!(
        first
            .due("siem", 10, later + chrono::Duration::seconds(500), true)
            .await
            .unwrap()
            .is_empty()
    );
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&admin)
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_one_hourly_cap() {
    let Some(admin) = server().await else {
        return;
    };
    let first = fresh(&admin, "cap").await;
    let schema = format!("fw_cap_{}", std::process::id());
    let second = PgStore::connect(&Connect {
        url: url(),
        password: None,
        ca_file: None,
        max_connections: 4,
        schema: Some(schema.clone()),
        replica: Some("second".into()),
    })
    .await
    .unwrap();
    let now = chrono::Utc::now();
    let hour = chrono::Duration::hours(1);
    let asks = (0..20).map(|i| {
        let s = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        async move { s.count_notice("acme", "jane", 5, hour, now).await.unwrap() }
    });
    let allowed = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .filter(|a| *a)
        .count();
    assert_eq!(allowed, 5, "two replicas asking at once share the cap");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&admin)
    .await;
}
