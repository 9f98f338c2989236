//! The email destination's policies, through the outbox: coalescing several changes to one user
//! into one notice, suppressed logins, the per-user hourly cap, the dry run, the security team's
//! copy, stepping aside for Okta's own notices, and the previous address after an email change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Mail, email_settings, mfa_event, user_id};
use factorwatch::email::EmailSettings;
use factorwatch::email::transport::Transport;
use factorwatch::store::Store;
use serde_json::{Value, json};

/// Quoted-printable soft line breaks removed, so sentences can be searched.
fn unfold(mail: &str) -> String {
    mail.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// Events `indexes` of [`mfa_event`] (all notifying) to `users` users, sent with `settings`.
async fn run(
    name: &str,
    indexes: &[usize],
    users: usize,
    settings: EmailSettings,
    dry_run: bool,
) -> Mail {
    let mail = Mail::new(name, users).await;
    let events = indexes
        .iter()
        .map(|&i| mfa_event(&format!("{name}{i:04}"), i, users))
        .collect();
    let n = mail.commit(events).await.changes.len() as u64;
    let transport = if dry_run {
        Transport::DryRun
    } else {
        mail.files()
    };
    mail.drain(
        mail.destination(settings, transport, Duration::from_secs(60)),
        n,
    )
    .await;
    mail
}

#[tokio::test(flavor = "multi_thread")]
async fn several_changes_to_one_user_within_the_window_become_one_notice() {
    // Events 0, 6 and 12 go to user 0 (of 2); 3 and 9 to user 1.
    let s = EmailSettings {
        coalesce: Duration::from_millis(400),
        ..email_settings()
    };
    let mail = run("coalesce", &[0, 3, 6, 9, 12], 2, s, false).await;
    let got = mail.sent();
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
        mail.outbox().await,
        (5, 0, 0),
        "every change counts as told"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_s_changes_taken_in_one_round_still_make_one_notice() {
    // Concurrency 4 (the default): user 0's three changes are due together and taken in the same
    // round of four rows; only one of them may send.
    let s = EmailSettings {
        coalesce: Duration::from_millis(400),
        concurrency: 4,
        ..email_settings()
    };
    let mail = run("round", &[0, 3, 6, 9, 12], 2, s, false).await;
    let got = mail.sent();
    assert_eq!(got.len(), 2, "one notice per user");
    for user in ["user0", "user1"] {
        assert_eq!(
            got.iter()
                .filter(|m| m.contains(&format!("To: {user}@mail.example.com")))
                .count(),
            1,
            "{user}"
        );
    }
    assert_eq!(
        mail.outbox().await,
        (5, 0, 0),
        "every change counts as told"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn suppressed_logins_and_the_hourly_cap_hold_notices_back_visibly() {
    let s = EmailSettings {
        suppress: vec!["user1@*".into()],
        hourly_cap: Some(2),
        ..email_settings()
    };
    // user0 gets events 0, 6, 12, 18 (four), user1 gets 3, 9 (suppressed).
    let mail = run("policy", &[0, 3, 6, 9, 12, 18], 2, s, false).await;
    let got = mail.sent();
    assert_eq!(got.len(), 2, "user0 capped at two; user1 suppressed");
    assert!(got.iter().all(|m| m.contains("To: user0@mail.example.com")));
    let dead = mail.store.dead_letters(Some("email")).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .all(|d| d.last_error.as_deref().unwrap().contains("hourly cap"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_renders_but_sends_nothing() {
    let mail = run("dry", &[0, 3], 2, email_settings(), true).await;
    assert!(mail.sent().is_empty());
    assert_eq!(mail.outbox().await.0, 2);
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

    let mail = Mail::new("soc", 2).await;
    let admin_reset = json!({
        "uuid": "adm1", "eventType": "user.mfa.factor.reset_all", "published": "2026-11-25T10:00:00.000Z",
        "actor": { "id": "00uADMIN", "type": "User", "alternateId": "jane.admin@example.com", "displayName": "Jane Admin" },
        "target": [{ "id": user_id(1), "type": "User", "alternateId": "user1@example.com" }],
        "outcome": { "result": "SUCCESS" }, "client": { "ipAddress": "192.0.2.10" },
    });
    mail.commit_with_security(vec![admin_reset, mfa_event("self1", 0, 2)])
        .await;
    mail.drain(
        mail.destination(email_settings(), mail.files(), Duration::from_secs(60)),
        2,
    )
    .await;
    mail.drain_destination(
        factorwatch::email::security_copy::SecurityCopy::new(
            "security:email",
            "Security <security@example.com>".parse().unwrap(),
            "SOC <soc@example.com>".parse().unwrap(),
            Arc::new(mail.files()),
        ),
        "security:email",
        1,
    )
    .await;
    mail.drain_destination(
        factorwatch::chat::ChatDestination::new(
            "security:chat",
            factorwatch::secret::Secret::new(url),
        ),
        "security:chat",
        1,
    )
    .await;
    let all = mail.sent();
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
async fn the_security_copy_cannot_be_silenced_by_the_user_s_cap_or_suppression() {
    // Reproduced: hourly_cap = 1, two enrollments by an admin on one user; the second notice
    // is dead-lettered by the cap, and the security team must still hear of both.
    let mail = Mail::new("soc-cap", 2).await;
    let by_admin = |uuid: &str| {
        json!({
            "uuid": uuid, "eventType": "user.mfa.factor.activate", "published": "2026-11-25T10:00:00.000Z",
            "actor": { "id": "00uADMIN", "type": "User", "alternateId": "mallory@example.com", "displayName": "Mallory" },
            "target": [{ "id": user_id(0), "type": "User", "alternateId": "user0@example.com" }],
            "outcome": { "result": "SUCCESS", "reason": "User set up SMS_FACTOR factor" },
        })
    };
    // And one by an actor of a kind nobody can place: someone, not the user.
    let unknown = json!({
        "uuid": "who3", "eventType": "user.mfa.factor.activate", "published": "2026-11-25T10:00:00.000Z",
        "actor": { "id": "xyz", "type": "PolicyRule" },
        "target": [{ "id": user_id(1), "type": "User", "alternateId": "user1@example.com" }],
        "outcome": { "result": "SUCCESS", "reason": "User set up SMS_FACTOR factor" },
    });
    mail.commit_with_security(vec![by_admin("cap1"), by_admin("cap2"), unknown])
        .await;
    let s = EmailSettings {
        hourly_cap: Some(1),
        suppress: vec!["user1@*".into()],
        ..email_settings()
    };
    mail.drain(
        mail.destination(s, mail.files(), Duration::from_secs(60)),
        3,
    )
    .await;
    let dead = mail.store.dead_letters(Some("email")).await.unwrap();
    assert_eq!(dead.len(), 1, "the cap held the user's second notice back");
    mail.drain_destination(
        factorwatch::email::security_copy::SecurityCopy::new(
            "security:email",
            "Security <security@example.com>".parse().unwrap(),
            "SOC <soc@example.com>".parse().unwrap(),
            Arc::new(mail.files()),
        ),
        "security:email",
        3,
    )
    .await;
    let soc: Vec<String> = mail
        .sent()
        .into_iter()
        .filter(|m| m.contains("To: SOC <soc@example.com>"))
        .map(|m| unfold(&m))
        .collect();
    let text = soc.join("\n");
    assert_eq!(
        text.matches("mallory@example.com (administrator): enrolled")
            .count(),
        2,
        "both of the admin's changes: {text}"
    );
    assert!(
        text.contains("(actor of unknown kind): enrolled") && text.contains("of user1@example.com"),
        "the unplaceable actor's change, though user1 is suppressed: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn orgs_that_keep_okta_s_notices_get_none_of_ours_for_the_same_change() {
    let mail = Mail::new("okta-notice", 2).await;
    let mut e0 = mfa_event("n0", 0, 2);
    e0["published"] = json!("2026-11-25T10:00:00.000Z");
    let mut e1 = mfa_event("n1", 3, 2);
    e1["published"] = json!("2026-11-25T10:00:00.000Z");
    // Okta's own enrolment notice to user 0, four seconds later.
    let okta_notice = json!({
        "uuid": "okta-notice-1", "eventType": "system.email.mfa_enroll_notification.sent_message",
        "published": "2026-11-25T10:00:04.000Z", "actor": { "id": "0oaSYS", "type": "SystemPrincipal" },
        "target": [{ "id": user_id(0), "type": "User", "alternateId": "user0@example.com" }],
        "outcome": { "result": "SUCCESS" },
    });
    let batch = mail.commit(vec![e0, e1, okta_notice]).await;
    assert_eq!(batch.context.len(), 1, "Okta's notice is kept as context");
    let s = EmailSettings {
        skip_when_okta_notified: true,
        ..email_settings()
    };
    mail.drain(
        mail.destination(s, mail.files(), Duration::from_secs(60)),
        2,
    )
    .await;
    let got = mail.sent();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("To: user1@mail.example.com"),
        "only the change Okta did not notify about"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_primary_email_change_the_previous_address_hears_too() {
    let mail = Mail::new("previous", 1).await;
    let s = EmailSettings {
        previous_address_window: Duration::from_secs(14 * 86400),
        ..email_settings()
    };
    // A first notice: factorwatch learns user0's address.
    mail.commit(vec![mfa_event("p0", 0, 1)]).await;
    mail.drain(mail.destination(s.clone(), mail.files(), Duration::ZERO), 1)
        .await;
    // The primary email is changed (say, by an attacker), then a phone is enrolled.
    mail.sim
        .control("/sim/users", json!([{ "id": user_id(0), "profile": { "login": "user0@example.com", "email": "attacker@evil.example" } }]))
        .await;
    let email_change = json!({
        "uuid": "pe1", "eventType": "user.account.update_primary_email", "published": chrono::Utc::now().to_rfc3339(),
        "actor": { "id": user_id(0), "type": "User" }, "target": [{ "id": user_id(0), "type": "User" }],
        "outcome": { "result": "SUCCESS" },
    });
    mail.commit(vec![email_change, mfa_event("p1", 3, 1)]).await;
    mail.drain(mail.destination(s, mail.files(), Duration::ZERO), 2)
        .await;
    let got = mail.sent();
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

#[tokio::test(flavor = "multi_thread")]
async fn a_notice_past_the_detections_wait_tells_what_they_found() {
    use factorwatch::detect::finding::Draft;
    use factorwatch::detect::{RuleId, Severity};
    use factorwatch::store::NewFinding;
    let mail = Mail::new("found", 2).await;
    // Two users' changes stored a minute ago: their notices no longer wait for the detections,
    // and go out together, the findings read once for both.
    let a_minute_ago = chrono::Utc::now() - chrono::Duration::minutes(1);
    let batch = mail
        .commit_at(
            vec![mfa_event("f0", 0, 2), mfa_event("f1", 3, 2)],
            a_minute_ago,
        )
        .await;
    let flagged = batch.changes[0].event_id.clone();
    let finding = Draft {
        rule: RuleId::FactorDowngrade,
        severity: Severity::High,
        key: "user0".into(),
        user: None,
        actor: None,
        events: vec![(a_minute_ago, flagged)],
        summary: "lost its phishing-resistant factor".into(),
        details: Default::default(),
    }
    .finish();
    mail.store
        .commit_findings(
            "acme",
            &[NewFinding {
                finding,
                destinations: vec![],
            }],
            &[],
            0,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let s = EmailSettings {
        detections: true,
        concurrency: 2,
        ..email_settings()
    };
    mail.drain(mail.destination(s, mail.files(), Duration::ZERO), 2)
        .await;
    let got: Vec<String> = mail.sent().iter().map(|m| unfold(m)).collect();
    assert_eq!(got.len(), 2, "one notice per user");
    let told: Vec<&String> = got
        .iter()
        .filter(|m| m.contains("your account lost its phishing-resistant sign-in method"))
        .collect();
    assert_eq!(told.len(), 1, "only the flagged change's notice tells it");
    assert!(
        told[0].contains("To: user0@mail.example.com"),
        "{}",
        told[0]
    );
}

/// Quick retries: an outage is tried many times within a test's second.
fn quick_okta() -> factorwatch::okta::client::RetryPolicy {
    factorwatch::okta::client::RetryPolicy {
        attempts: 2,
        backoff: factorwatch::backoff::Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(20),
        },
        timeout: Duration::from_secs(2),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_okta_outage_or_refused_credentials_wait_without_spending_attempts() {
    let mail = Mail::new("okta-down", 2).await;
    mail.commit(vec![mfa_event("od0", 0, 2), mfa_event("od1", 3, 2)])
        .await;
    // The Users API answers 500 to everything: a notice needs a lookup, so it waits.
    mail.sim
        .control(
            "/sim/faults",
            json!({ "endpoints": { "/api/v1/users": { "error_rate": 1.0 } } }),
        )
        .await;
    let attempts = mail
        .run_for(
            mail.destination_with(
                email_settings(),
                mail.files(),
                Duration::ZERO,
                quick_okta(),
                common::TOKEN,
            ),
            2,
            Duration::from_millis(1500),
        )
        .await;
    assert_eq!(
        attempts,
        [0, 0],
        "an outage spends no attempt and kills nothing"
    );
    // Refused credentials (a token revoked): a person must act; the notices wait too.
    mail.sim.control("/sim/faults", json!({})).await;
    let attempts = mail
        .run_for(
            mail.destination_with(
                email_settings(),
                mail.files(),
                Duration::ZERO,
                quick_okta(),
                "revoked",
            ),
            2,
            Duration::from_millis(1000),
        )
        .await;
    assert_eq!(attempts, [0, 0]);
    assert_eq!(mail.outbox().await, (0, 2, 0));
    // Okta back, the token fixed: every notice goes out.
    mail.drain(
        mail.destination_with(
            email_settings(),
            mail.files(),
            Duration::ZERO,
            quick_okta(),
            common::TOKEN,
        ),
        2,
    )
    .await;
    assert_eq!(mail.outbox().await, (2, 0, 0));
    assert_eq!(mail.sent().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_folder_that_cannot_be_written_waits_like_a_relay_down() {
    let mail = Mail::new("eml-down", 1).await;
    mail.commit(vec![mfa_event("fd0", 0, 1)]).await;
    let transport = mail.files();
    // The folder is gone and a file stands in its place: every write fails, as on a full disk.
    let folder = mail.dir.join("mail");
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::write(&folder, "not a folder").unwrap();
    let attempts = mail
        .run_for(
            mail.destination(email_settings(), transport, Duration::ZERO),
            2,
            Duration::from_millis(1000),
        )
        .await;
    assert_eq!(attempts, [0]);
    std::fs::remove_file(&folder).unwrap();
    std::fs::create_dir_all(&folder).unwrap();
    mail.drain(
        mail.destination(email_settings(), mail.files(), Duration::ZERO),
        1,
    )
    .await;
    assert_eq!(mail.sent().len(), 1);
}
