//! The SQLite store: the `Store` contract (`tests/store_contract`), and its migrations — a
//! database written by factorwatch before migrations were numbered opens, migrates, and keeps
//! everything it held.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_contract;

use std::sync::atomic::{AtomicUsize, Ordering};

use factorwatch::store::Store;
use factorwatch::store::sqlite::{SCHEMA_VERSION, SqliteStore};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("fw-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A plain connection to the database file (created if missing), beside any store on it.
async fn raw(path: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_keeps_the_store_contract() {
    let base = dir("contract");
    let n = AtomicUsize::new(0);
    store_contract::run_all(|| {
        let path = base.join(format!("{}.db", n.fetch_add(1, Ordering::SeqCst)));
        async move { SqliteStore::open(&path).await.unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_from_before_migrations_is_migrated_and_keeps_everything() {
    let path = dir("migrate").join("old.db");
    // The file as factorwatch 0.1 left it: its schema (migration 1, verbatim), no version table,
    // and rows written the way it wrote them (no user_id column).
    {
        let mut conn = raw(&path).await;
        sqlx::raw_sql(include_str!(
            "../src/store/migrations/sqlite/0001_initial.sql"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        let record = r#"{"id":"e1","source":"system_log","published":"2026-11-25T10:00:00.000Z","event_type":"user.mfa.factor.activate","legacy_event_type":null,"action":"enrolled","outcome":"SUCCESS","factor":{"type":"sms","provider":"OKTA","name":"SMS","okta_authoritative":true,"phone_last4":null},"user":{"id":"00u1","login":"jane@example.com","display_name":null},"actor":null,"initiator":"self","client":{"ip":null,"user_agent":null,"browser":null,"os":null,"city":null,"state":null,"country":null},"reason":null,"message":null,"session_id":null}"#;
        sqlx::query("INSERT INTO changes (org, event_id, event_type, action, published, received_at, record, raw) VALUES ('acme', 'e1', 'user.mfa.factor.activate', 'enrolled', '2026-11-25T10:00:00.000Z', 1, ?, '{}')")
            .bind(record)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO outbox (org, event_id, destination, state, next_attempt_at, created_at) VALUES ('acme', 'e1', 'email', 'pending', 0, 1)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO sources (org, source, position, events_seen, updated_at) VALUES ('acme', 'system_log', 'https://acme.okta.com/api/v1/logs?after=1', 7, 1)")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        store.schema_versions().await.unwrap(),
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    // What it held is still there, and the new column is filled from the old rows.
    assert_eq!(
        store
            .cursor("acme", factorwatch::store::SourceKind::SystemLog)
            .await
            .unwrap()
            .as_deref(),
        Some("https://acme.okta.com/api/v1/logs?after=1")
    );
    let mine = store
        .pending_for_user("email", "acme", "00u1")
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].change().unwrap().id.to_wire(), "e1");
    assert_eq!(
        mine[0].id, 1,
        "the outbox, rebuilt for findings, keeps its ids"
    );
    store.close().await;
    // Opening again applies nothing twice.
    let again = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        again.schema_versions().await.unwrap().len(),
        SCHEMA_VERSION as usize
    );
    again.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_newer_than_this_build_is_refused() {
    let path = dir("newer").join("new.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.close().await;
    {
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
            .execute(&mut raw(&path).await)
            .await
            .unwrap();
    }
    let e = SqliteStore::open(&path).await.unwrap_err().to_string();
    assert!(e.contains("newer than this factorwatch"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_the_database_passes_over_fails_the_commit_and_moves_no_cursor() {
    use factorwatch::store::{SourceKind, StoreError};
    use store_contract::{batch, change};
    let path = dir("refused").join("fw.db");
    let store = SqliteStore::open(&path).await.unwrap();
    // A rule the database applies that factorwatch does not know of: the insert of one change is
    // silently skipped, as `INSERT OR IGNORE` skips a row that breaks a constraint.
    {
        let mut conn = raw(&path).await;
        sqlx::raw_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON changes WHEN NEW.event_id = 'refused'
             BEGIN SELECT RAISE(IGNORE); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let now = chrono::Utc::now();
    let refused = store
        .commit(
            "acme",
            &batch(
                vec![
                    change("kept", "00u1", &["file"]),
                    change("refused", "00u2", &["file"]),
                ],
                Some("https://acme.okta.com/api/v1/logs?after=2"),
            ),
            now,
        )
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Write { detail }) if detail.contains("1 change(s)")),
        "{refused:?}"
    );
    // Nothing of the batch is stored: the poller fetches the page again.
    assert_eq!(
        store.cursor("acme", SourceKind::SystemLog).await.unwrap(),
        None
    );
    assert!(store.due("file", 10, now, true).await.unwrap().is_empty());

    // A duplicate is not a refusal: stored once, counted as a duplicate the second time.
    let first = batch(vec![change("kept", "00u1", &["file"])], Some("c1"));
    assert_eq!(store.commit("acme", &first, now).await.unwrap().new, 1);
    let again = store
        .commit(
            "acme",
            &batch(vec![change("kept", "00u1", &["file"])], Some("c2")),
            now,
        )
        .await
        .unwrap();
    assert_eq!((again.new, again.duplicates), (0, 1));
    assert_eq!(
        store
            .cursor("acme", SourceKind::SystemLog)
            .await
            .unwrap()
            .as_deref(),
        Some("c2")
    );
    assert_eq!(store.due("file", 10, now, true).await.unwrap().len(), 1);
}

/// A change of `org` whose raw event is `pad` bytes long.
fn padded_change(id: &str, pad: usize) -> factorwatch::store::NewChange {
    let mut c = store_contract::change(id, "u1", &["siem:a"]);
    c.raw = format!("{{\"uuid\":\"{id}\",\"pad\":\"{}\"}}", "x".repeat(pad));
    c
}

/// Pollers' small commits handed over within the gathering window are stored together (one
/// time for all, which committing each alone would not give), each poller answered once stored.
#[tokio::test(flavor = "multi_thread")]
async fn batches_handed_over_together_are_stored_together() {
    use factorwatch::sources::group::GroupCommit;
    use std::sync::Arc;
    use std::time::Duration;

    let store = SqliteStore::open(&dir("group").join("fw.db"))
        .await
        .unwrap();
    let (group, task) = GroupCommit::start(store.clone(), Duration::from_millis(500));
    let acme = store_contract::batch(vec![padded_change("e1", 10)], Some("https://o/a1"));
    let beta = store_contract::batch(vec![padded_change("e2", 10)], Some("https://o/b1"));
    let later_beta = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        group.commit("beta", Arc::new(beta)).await
    };
    let (a, b) = tokio::join!(group.commit("acme", Arc::new(acme)), later_beta);
    assert_eq!(a.unwrap().unwrap().new, 1);
    assert_eq!(b.unwrap().unwrap().new, 1);
    let sources = store.stats().await.unwrap().sources;
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert_eq!(
        sources[0].updated_at, sources[1].updated_at,
        "not one transaction: {sources:?}"
    );
    // The task ends with its last handle.
    drop(group);
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the group's task did not end with its handles")
        .unwrap();
}

/// A batch the store refuses (here the disk is full) fails alone: the others gathered with it
/// are stored and told so, and it is told its error (its poller retries it; nothing of it is
/// stored).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_batch_fails_alone_and_the_rest_of_its_group_is_stored() {
    use factorwatch::sources::group::GroupCommit;
    use factorwatch::store::SourceKind;
    use std::sync::Arc;
    use std::time::Duration;

    let path = dir("group-full").join("fw.db");
    let pages: i64 = {
        let s = SqliteStore::open(&path).await.unwrap();
        s.commit(
            "warm",
            &store_contract::batch(vec![padded_change("w", 10)], None),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        drop(s);
        sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut raw(&path).await)
            .await
            .unwrap()
    };
    // Room for small rows, not for 300 changes of 8 KB.
    let store = SqliteStore::open_with(&path, Some(u32::try_from(pages).unwrap() + 8))
        .await
        .unwrap();
    let (group, _task) = GroupCommit::start(store.clone(), Duration::from_millis(500));
    let acme = store_contract::batch(vec![padded_change("e1", 10)], Some("https://o/a1"));
    let huge = store_contract::batch(
        (0..300)
            .map(|i| padded_change(&format!("h{i}"), 8000))
            .collect(),
        Some("https://o/g1"),
    );
    let beta = store_contract::batch(vec![padded_change("e2", 10)], Some("https://o/b1"));
    let (a, g, b) = tokio::join!(
        group.commit("acme", Arc::new(acme)),
        group.commit("gamma", Arc::new(huge)),
        group.commit("beta", Arc::new(beta)),
    );
    assert_eq!(a.unwrap().unwrap().new, 1);
    assert_eq!(b.unwrap().unwrap().new, 1);
    assert!(
        matches!(g, Some(Err(factorwatch::store::StoreError::Write { .. }))),
        "{g:?}"
    );
    assert_eq!(
        store
            .cursor("acme", SourceKind::SystemLog)
            .await
            .unwrap()
            .as_deref(),
        Some("https://o/a1")
    );
    assert_eq!(
        store.cursor("gamma", SourceKind::SystemLog).await.unwrap(),
        None
    );
    assert_eq!(
        store.stats().await.unwrap().changes,
        3,
        "warm, e1 and e2 only"
    );
}
