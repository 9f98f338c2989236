//! The email destination's policies, through the outbox: coalescing several changes to one user
//! into one notice, suppressed logins, the per-user hourly cap, and the dry run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use factorwatch::backoff::Backoff;
use factorwatch::email::templates::Templates;
use factorwatch::email::transport::Transport;
use factorwatch::email::{EmailDestination, EmailSettings};
use factorwatch::enrich::Enricher;
use factorwatch::okta::client::auth::Credentials;
use factorwatch::okta::client::{OktaClient, RetryPolicy};
use factorwatch::pipeline::ingest::Ingest;
use factorwatch::pipeline::route::Routing;
use factorwatch::pipeline::worker::{self, WorkerPolicy};
use factorwatch::secret::Secret;
use factorwatch::store::sqlite::SqliteStore;
use factorwatch::store::{SourceKind, Store};
use okta_sim::server::RateLimits;
use serde_json::Value;

struct Run {
    mail: std::path::PathBuf,
    store: SqliteStore,
}

/// Events `indexes` (of [`common::mfa_event`], all notifying) for `users` users, delivered by an
/// email destination with `settings` into a mail folder.
async fn run(
    name: &str,
    indexes: &[usize],
    users: usize,
    settings: EmailSettings,
    dry_run: bool,
) -> Run {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(users).await;
    let dir = std::env::temp_dir().join(format!("fw-notify-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let ingest = Ingest {
        classifier: Default::default(),
        routing: Routing {
            siem: vec![],
            email: Some("email".into()),
            notify_third_party: false,
            email_actions: None,
        },
    };
    let events: Vec<Value> = indexes
        .iter()
        .map(|&i| common::mfa_event(&format!("{name}{i:04}"), i, users))
        .collect();
    let batch = ingest.batch(
        SourceKind::SystemLog,
        &Value::Array(events).to_string(),
        None,
    );
    let n = batch.changes.len() as u64;
    store
        .commit("acme", batch, chrono::Utc::now())
        .await
        .unwrap();
    let client = Arc::new(OktaClient::new(
        &sim.base,
        Credentials::Ssws(Secret::new(common::TOKEN)),
        RetryPolicy::default(),
    ));
    let enrichers = HashMap::from([(
        "acme".to_owned(),
        Arc::new(Enricher::new(client, Duration::from_secs(60))),
    )]);
    let mail = dir.join("mail");
    let transport = if dry_run {
        Transport::DryRun
    } else {
        Transport::files(mail.clone()).unwrap()
    };
    let dest = EmailDestination::new(
        "email",
        store.clone(),
        settings,
        Templates::new(None, "en"),
        enrichers,
        transport,
    );
    let policy = WorkerPolicy {
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        },
        idle_poll: Duration::from_millis(20),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        store.clone(),
        Arc::new(dest),
        policy,
        Default::default(),
        stopped,
    ));
    common::eventually(20, "every row settled", async || {
        let s = store.stats().await.unwrap();
        s.outbox
            .first()
            .is_some_and(|(_, d, p, x)| d + x == n && *p == 0)
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    Run { mail, store }
}

fn settings() -> EmailSettings {
    EmailSettings {
        from: "Security <security@example.com>".parse().unwrap(),
        second_email: false,
        help: "call x1234".into(),
        suppress: vec![],
        hourly_cap: None,
        coalesce: Duration::ZERO,
        security_copy: None,
        security_webhook: None,
        skip_when_okta_notified: false,
        previous_address_window: Duration::ZERO,
        concurrency: 1,
    }
}

fn mails(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// Quoted-printable soft line breaks removed, so sentences can be searched.
fn unfold(mail: &str) -> String {
    mail.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

#[tokio::test(flavor = "multi_thread")]
async fn several_changes_to_one_user_within_the_window_become_one_notice() {
    // Events 0, 6 and 12 go to user 0 (of 2); 3 and 9 to user 1.
    let s = EmailSettings {
        coalesce: Duration::from_millis(400),
        ..settings()
    };
    let r = run("coalesce", &[0, 3, 6, 9, 12], 2, s, false).await;
    let got = mails(&r.mail);
    assert_eq!(got.len(), 2, "one notice per user");
    let to_user0 = got
        .iter()
        .map(|m| unfold(m))
        .find(|m| m.contains("To: user0@mail.example.com"))
        .unwrap();
    assert!(
        to_user0.contains("Subject: Several changes to your sign-in methods"),
        "{to_user0}"
    );
    assert_eq!(
        to_user0
            .matches("You just registered a phone number ending")
            .count()
            / 2,
        3,
        "all three listed (text and HTML)"
    );
    assert_eq!(
        r.store.stats().await.unwrap().outbox[0],
        ("email".to_owned(), 5, 0, 0),
        "every change counts as told"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn suppressed_logins_and_the_hourly_cap_hold_notices_back_visibly() {
    let s = EmailSettings {
        suppress: vec!["user1@*".into()],
        hourly_cap: Some(2),
        ..settings()
    };
    // user0 gets events 0, 6, 12, 18 (four), user1 gets 3, 9 (suppressed).
    let r = run("policy", &[0, 3, 6, 9, 12, 18], 2, s, false).await;
    let got = mails(&r.mail);
    assert_eq!(got.len(), 2, "user0 capped at two; user1 suppressed");
    assert!(got.iter().all(|m| m.contains("To: user0@mail.example.com")));
    let dead = r.store.dead_letters(Some("email")).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .all(|d| d.last_error.as_deref().unwrap().contains("hourly cap"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_renders_but_sends_nothing() {
    let r = run("dry", &[0, 3], 2, settings(), true).await;
    assert!(mails(&r.mail).is_empty());
    assert_eq!(r.store.stats().await.unwrap().outbox[0].1, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_security_team_hears_of_changes_someone_else_made() {
    use axum::routing::post;
    let got: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let app = {
        let got = got.clone();
        axum::Router::new().route(
            "/chat",
            post(move |body: String| {
                let got = got.clone();
                async move {
                    got.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap());
                    "ok"
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/chat", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sim = common::sim(RateLimits::default()).await;
    sim.users(2).await;
    let admin_reset = serde_json::json!({
        "uuid": "adm1", "eventType": "user.mfa.factor.reset_all", "published": "2026-11-25T10:00:00.000Z",
        "actor": { "id": "00uADMIN", "type": "User", "alternateId": "jane.admin@example.com", "displayName": "Jane Admin" },
        "target": [{ "id": common::user_id(1), "type": "User", "alternateId": "user1@example.com" }],
        "outcome": { "result": "SUCCESS" }, "client": { "ipAddress": "192.0.2.10" },
    });
    let self_enroll = common::mfa_event("self1", 0, 2);
    let dir = std::env::temp_dir().join(format!("fw-notify-soc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let ingest = Ingest {
        classifier: Default::default(),
        routing: Routing {
            siem: vec![],
            email: Some("email".into()),
            notify_third_party: false,
            email_actions: None,
        },
    };
    let batch = ingest.batch(
        SourceKind::SystemLog,
        &Value::Array(vec![admin_reset, self_enroll]).to_string(),
        None,
    );
    store
        .commit("acme", batch, chrono::Utc::now())
        .await
        .unwrap();
    let client = Arc::new(OktaClient::new(
        &sim.base,
        Credentials::Ssws(Secret::new(common::TOKEN)),
        RetryPolicy::default(),
    ));
    let enrichers = HashMap::from([(
        "acme".to_owned(),
        Arc::new(Enricher::new(client, Duration::from_secs(60))),
    )]);
    let s = EmailSettings {
        security_copy: Some("SOC <soc@example.com>".parse().unwrap()),
        security_webhook: Some(url),
        ..settings()
    };
    let dest = EmailDestination::new(
        "email",
        store.clone(),
        s,
        Templates::new(None, "en"),
        enrichers,
        Transport::files(dir.join("mail")).unwrap(),
    );
    let policy = WorkerPolicy {
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        },
        idle_poll: Duration::from_millis(20),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        store.clone(),
        Arc::new(dest),
        policy,
        Default::default(),
        stopped,
    ));
    common::eventually(20, "both told", async || {
        store
            .stats()
            .await
            .unwrap()
            .outbox
            .first()
            .is_some_and(|(_, d, ..)| *d == 2)
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    let all = mails(&dir.join("mail"));
    let soc: Vec<&String> = all
        .iter()
        .filter(|m| m.contains("To: SOC <soc@example.com>"))
        .collect();
    assert_eq!(soc.len(), 1, "only the admin's change reaches the SOC");
    assert!(
        unfold(soc[0]).contains("jane.admin@example.com (administrator): reset all"),
        "{}",
        soc[0]
    );
    let chat = got.lock().unwrap();
    assert_eq!(chat.len(), 1);
    assert!(
        chat[0]["text"]
            .as_str()
            .unwrap()
            .contains("of user1@example.com from 192.0.2.10")
    );
    assert_eq!(all.len(), 3, "two user notices and one copy");
}

#[tokio::test(flavor = "multi_thread")]
async fn orgs_that_keep_okta_s_notices_get_none_of_ours_for_the_same_change() {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(2).await;
    let mut e0 = common::mfa_event("n0", 0, 2);
    e0["published"] = serde_json::json!("2026-11-25T10:00:00.000Z");
    let mut e1 = common::mfa_event("n1", 3, 2);
    e1["published"] = serde_json::json!("2026-11-25T10:00:00.000Z");
    // Okta's own enrolment notice to user 0, four seconds later.
    let okta_notice = serde_json::json!({
        "uuid": "okta-notice-1", "eventType": "system.email.mfa_enroll_notification.sent_message",
        "published": "2026-11-25T10:00:04.000Z", "actor": { "id": "0oaSYS", "type": "SystemPrincipal" },
        "target": [{ "id": common::user_id(0), "type": "User", "alternateId": "user0@example.com" }],
        "outcome": { "result": "SUCCESS" },
    });
    let dir = std::env::temp_dir().join(format!("fw-notify-okta-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let ingest = Ingest {
        classifier: Default::default(),
        routing: Routing {
            siem: vec![],
            email: Some("email".into()),
            notify_third_party: false,
            email_actions: None,
        },
    };
    let batch = ingest.batch(
        SourceKind::SystemLog,
        &Value::Array(vec![e0, e1, okta_notice]).to_string(),
        None,
    );
    assert_eq!(batch.context.len(), 1, "Okta's notice is kept as context");
    store
        .commit("acme", batch, chrono::Utc::now())
        .await
        .unwrap();
    let client = Arc::new(OktaClient::new(
        &sim.base,
        Credentials::Ssws(Secret::new(common::TOKEN)),
        RetryPolicy::default(),
    ));
    let enrichers = HashMap::from([(
        "acme".to_owned(),
        Arc::new(Enricher::new(client, Duration::from_secs(60))),
    )]);
    let s = EmailSettings {
        skip_when_okta_notified: true,
        ..settings()
    };
    let dest = EmailDestination::new(
        "email",
        store.clone(),
        s,
        Templates::new(None, "en"),
        enrichers,
        Transport::files(dir.join("mail")).unwrap(),
    );
    let policy = WorkerPolicy {
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        },
        idle_poll: Duration::from_millis(20),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        store.clone(),
        Arc::new(dest),
        policy,
        Default::default(),
        stopped,
    ));
    common::eventually(20, "both settled", async || {
        store
            .stats()
            .await
            .unwrap()
            .outbox
            .first()
            .is_some_and(|(_, d, ..)| *d == 2)
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    let got = mails(&dir.join("mail"));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("To: user1@mail.example.com"),
        "only the change Okta did not notify about"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_primary_email_change_the_previous_address_hears_too() {
    let sim = common::sim(RateLimits::default()).await;
    sim.users(1).await;
    let dir = std::env::temp_dir().join(format!("fw-notify-prev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir.join("fw.db")).await.unwrap();
    let ingest = Ingest {
        classifier: Default::default(),
        routing: Routing {
            siem: vec![],
            email: Some("email".into()),
            notify_third_party: false,
            email_actions: None,
        },
    };
    let client = Arc::new(OktaClient::new(
        &sim.base,
        Credentials::Ssws(Secret::new(common::TOKEN)),
        RetryPolicy::default(),
    ));
    let enrichers = HashMap::from([(
        "acme".to_owned(),
        Arc::new(Enricher::new(client, Duration::ZERO)),
    )]);
    let s = EmailSettings {
        previous_address_window: Duration::from_secs(14 * 86400),
        ..settings()
    };
    let dest = EmailDestination::new(
        "email",
        store.clone(),
        s,
        Templates::new(None, "en"),
        enrichers,
        Transport::files(dir.join("mail")).unwrap(),
    );
    let policy = WorkerPolicy {
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        },
        idle_poll: Duration::from_millis(20),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        store.clone(),
        Arc::new(dest),
        policy,
        Default::default(),
        stopped,
    ));
    let commit = |events: Vec<Value>| {
        let batch = ingest.batch(
            SourceKind::SystemLog,
            &Value::Array(events).to_string(),
            None,
        );
        let store = store.clone();
        async move {
            store
                .commit("acme", batch, chrono::Utc::now())
                .await
                .unwrap()
        }
    };
    // A first notice: factorwatch learns user0's address.
    commit(vec![common::mfa_event("p0", 0, 1)]).await;
    common::eventually(10, "first notice", async || {
        store.stats().await.unwrap().outbox[0].1 == 1
    })
    .await;
    // The primary email is changed (say, by an attacker), then a phone is enrolled.
    sim.control("/sim/users", serde_json::json!([{ "id": common::user_id(0), "profile": { "login": "user0@example.com", "email": "attacker@evil.example" } }])).await;
    let email_change = serde_json::json!({
        "uuid": "pe1", "eventType": "user.account.update_primary_email", "published": chrono::Utc::now().to_rfc3339(),
        "actor": { "id": common::user_id(0), "type": "User" }, "target": [{ "id": common::user_id(0), "type": "User" }],
        "outcome": { "result": "SUCCESS" },
    });
    commit(vec![email_change, common::mfa_event("p1", 3, 1)]).await;
    common::eventually(10, "second notice", async || {
        store.stats().await.unwrap().outbox[0].1 == 2
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    let got = mails(&dir.join("mail"));
    let second: Vec<&String> = got
        .iter()
        .filter(|m| unfold(m).contains("ending 0003"))
        .collect();
    assert_eq!(second.len(), 2, "the new address and the previous one");
    assert!(
        second
            .iter()
            .any(|m| m.contains("To: attacker@evil.example"))
    );
    assert!(
        second
            .iter()
            .any(|m| m.contains("To: user0@mail.example.com"))
    );
}
