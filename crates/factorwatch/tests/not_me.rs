//! "This wasn't me" end to end over real sockets (the browser test is `not_me_browser.rs`): the
//! daemon polls okta-sim, writes the notice with its link, serves the page; pressing the button
//! signs the user out and suspends them in okta-sim and puts a `reported_by_user` finding in the
//! SIEM file. Every attack on the link — altered, forged with another key, expired, for another
//! org, user or change, replayed, posted without the form's check or from another site, GETs by
//! a mail scanner — is refused and changes nothing; Okta failing is retried until it is done;
//! a burst of requests is limited, not served.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use factorwatch::daemon::Daemon;
use factorwatch::report::Step;
use factorwatch::report::token::{Claims, Keys};
use factorwatch::secret::Secret;
use okta_sim::server::RateLimits;
use serde_json::{Value, json};

pub const LINK_KEY: &str = "a-not-me-key-of-at-least-32-characters";

fn env(name: &str) -> Option<String> {
    match name {
        "TEST_NOT_ME_KEY" => Some(LINK_KEY.into()),
        other => common::env(other),
    }
}

/// A config whose notices carry links to `public_url`, answering with `actions`.
pub fn config(
    dir: &Path,
    base: &str,
    public_url: &str,
    actions: Vec<Step>,
) -> factorwatch::config::Config {
    let mut c = common::config(dir, base, false);
    c.not_me.public_url = Some(public_url.into());
    c.not_me.key_env = Some("TEST_NOT_ME_KEY".into());
    c.not_me.actions = actions;
    c.not_me.wait = Duration::from_secs(5);
    c
}

/// The "this wasn't me" links in the notices under `dir` (quoted-printable undone).
pub fn links(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.filter_map(Result::ok) {
        let text = std::fs::read_to_string(e.path())
            .unwrap_or_default()
            .replace("=\r\n", "")
            .replace("=\n", "");
        for (i, _) in text.match_indices("/not-me/") {
            let start = text[..i].rfind("http").unwrap();
            let end = i
                + 8
                + text[i + 8..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                    .unwrap_or(text.len() - i - 8);
            let link = text[start..end].to_owned();
            if !out.contains(&link) {
                out.push(link);
            }
        }
    }
    out
}

struct Setup {
    sim: common::Sim,
    daemon: Daemon,
    dir: std::path::PathBuf,
    http: reqwest::Client,
}

impl Setup {
    async fn new(name: &str, actions: Vec<Step>) -> Setup {
        let sim = common::sim(RateLimits::default()).await;
        sim.users(1).await;
        let dir = std::env::temp_dir().join(format!("fw-not-me-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let c = config(&dir, &sim.base, "http://127.0.0.1:9", actions);
        let daemon = Daemon::start(&c, &env).await.unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Setup {
            sim,
            daemon,
            dir,
            http,
        }
    }

    /// Stores an SMS enrollment for user 0 and waits for its notice; its link's token.
    async fn change(&self, uuid: &str) -> String {
        self.sim
            .control("/sim/events", json!([common::mfa_event(uuid, 0, 1)]))
            .await;
        let mail = self.dir.join("mail");
        let mut token = None;
        common::eventually(20, "a notice with a link", async || {
            let known = token.is_some();
            if !known {
                token = links(&mail)
                    .first()
                    .map(|l| l.rsplit('/').next().unwrap().to_owned());
            }
            token.is_some()
        })
        .await;
        token.unwrap()
    }

    fn url(&self, token: &str) -> String {
        format!("http://{}/not-me/{token}", self.daemon.hook_addr.unwrap())
    }

    async fn get(&self, token: &str) -> (u16, String) {
        let r = self.http.get(self.url(token)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, token: &str, check: &str, origin: Option<&str>) -> (u16, String) {
        let mut r = self
            .http
            .post(self.url(token))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("check={check}"));
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn calls(&self) -> Vec<Value> {
        self.sim
            .http
            .get(format!("{}/sim/calls", self.sim.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap()
    }

    async fn user_status(&self) -> String {
        let u: Value = self
            .sim
            .http
            .get(format!(
                "{}/api/v1/users/{}",
                self.sim.base,
                common::user_id(0)
            ))
            .header("Authorization", format!("SSWS {}", common::TOKEN))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        u["status"].as_str().unwrap().to_owned()
    }

    fn findings(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("siem.ndjson"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["type"] == "finding" && v["rule"] == "reported_by_user")
            .collect()
    }
}

/// The form's check, as the page put it.
fn check_of(page: &str) -> String {
    let i = page.find("name=\"check\" value=\"").unwrap() + 20;
    page[i..i + page[i..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn a_link_works_once_and_secures_the_account() {
    let s = Setup::new("once", vec![Step::ClearSessions, Step::Suspend]).await;
    let token = s.change("11111111-aaaa-4bbb-8ccc-000000000001").await;
    // A mail scanner (or the user) opening the link changes nothing.
    for _ in 0..3 {
        let (status, page) = s.get(&token).await;
        assert_eq!(status, 200);
        assert!(page.contains("Secure my account"), "{page}");
        assert!(page.contains("ending"), "the masked facts: {page}");
        assert!(
            !page.contains(&common::user_id(0)),
            "no user id on the page"
        );
    }
    assert!(s.calls().await.is_empty(), "GET never acts");
    assert_eq!(s.user_status().await, "ACTIVE");
    let (status, page) = s.get(&token).await;
    assert_eq!(status, 200);
    let check = check_of(&page);
    let (status, page) = s.post(&token, &check, Some("http://127.0.0.1:9")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("signed out everywhere"), "{page}");
    assert!(page.contains("suspended"), "{page}");
    let calls = s.calls().await;
    let asked: Vec<String> = calls
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["method"].as_str().unwrap(),
                c["path"].as_str().unwrap(),
                c["status"]
            )
        })
        .collect();
    let user = common::user_id(0);
    assert_eq!(
        asked,
        [
            format!("DELETE /api/v1/users/{user}/sessions 204"),
            format!("POST /api/v1/users/{user}/lifecycle/suspend 200"),
        ]
    );
    assert_eq!(calls[0]["query"], "oauthTokens=true");
    assert_eq!(s.user_status().await, "SUSPENDED");
    common::eventually(10, "the report's finding in the SIEM", async || {
        s.findings().len() == 1
    })
    .await;
    let f = &s.findings()[0];
    assert_eq!(f["severity"], "high");
    assert_eq!(f["event_ids"][0], "11111111-aaaa-4bbb-8ccc-000000000001");
    // Used: the link says so, and a second press does nothing.
    let (status, page) = s.get(&token).await;
    assert_eq!(status, 410);
    assert!(page.contains("already used"), "{page}");
    let (status, _) = s.post(&token, &check, None).await;
    assert_eq!(status, 410);
    assert_eq!(s.calls().await.len(), 2, "nothing done twice");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.findings().len(), 1);
    s.daemon.stop().await;
}

#[tokio::test]
async fn altered_forged_expired_and_foreign_links_do_nothing() {
    let s = Setup::new("attacks", vec![Step::ClearSessions, Step::Suspend]).await;
    let change = "11111111-aaaa-4bbb-8ccc-000000000002";
    let token = s.change(change).await;
    let (_, page) = s.get(&token).await;
    let check = check_of(&page);
    let keys = Keys::new(&Secret::new(LINK_KEY), None);
    let claims = |org: &str, change: &str, user: &str, expires: i64| Claims {
        org: org.into(),
        change: change.into(),
        user: user.into(),
        expires,
    };
    let later = chrono::Utc::now().timestamp() + 3600;
    let mut altered = token.clone().into_bytes();
    altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let cases: Vec<(&str, String, u16)> = vec![
        ("altered", altered, 404),
        (
            "sealed with another key",
            Keys::new(
                &Secret::new("another-key-of-at-least-32-characters!!"),
                None,
            )
            .seal(&claims("acme", change, &common::user_id(0), later)),
            404,
        ),
        (
            "expired",
            keys.seal(&claims(
                "acme",
                change,
                &common::user_id(0),
                chrono::Utc::now().timestamp() - 1,
            )),
            410,
        ),
        (
            "another org",
            keys.seal(&claims("globex", change, &common::user_id(0), later)),
            404,
        ),
        (
            "another user",
            keys.seal(&claims("acme", change, &common::user_id(1), later)),
            404,
        ),
        (
            "a change never stored",
            keys.seal(&claims("acme", "nope", &common::user_id(0), later)),
            404,
        ),
        ("garbage", "x".repeat(900), 404),
    ];
    for (what, t, expected) in &cases {
        let (status, page) = s.get(t).await;
        assert_eq!(status, *expected, "GET {what}: {page}");
        assert!(!page.contains("Secure my account"), "{what}");
        // Even with the genuine link's check, a POST to a bad link does nothing.
        let (status, _) = s.post(t, &check, None).await;
        assert!(
            status == *expected || status == 403,
            "POST {what}: {status}"
        );
    }
    // The genuine link, without its check, with another link's check, or from another site.
    let (status, _) = s.post(&token, "", None).await;
    assert_eq!(status, 403);
    let other = keys.seal(&claims("acme", change, &common::user_id(0), later));
    let (status, _) = s.post(&token, &keys.form_check(&other), None).await;
    assert_eq!(status, 403);
    let (status, _) = s.post(&token, &check, Some("https://evil.example")).await;
    assert_eq!(status, 403);
    assert!(s.calls().await.is_empty(), "nothing was asked of Okta");
    assert_eq!(s.user_status().await, "ACTIVE");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.findings().is_empty());
    // The genuine link still works after all that.
    let (status, page) = s.post(&token, &check, None).await;
    assert_eq!(status, 200, "{page}");
    s.daemon.stop().await;
}

#[tokio::test]
async fn okta_failing_is_retried_until_the_steps_are_done() {
    let s = Setup::new(
        "retry",
        vec![Step::ClearSessions, Step::RaiseRisk, Step::Suspend],
    )
    .await;
    let token = s.change("11111111-aaaa-4bbb-8ccc-000000000003").await;
    let (_, page) = s.get(&token).await;
    let check = check_of(&page);
    s.sim
        .control(
            "/sim/faults",
            json!({ "endpoints": { "/api/v1/users": { "error_rate": 1.0 } } }),
        )
        .await;
    let (status, page) = s.post(&token, &check, None).await;
    assert_eq!(status, 200);
    assert!(page.contains("still in progress"), "{page}");
    let failures = s.calls().await;
    assert!(!failures.is_empty() && failures.iter().all(|c| c["status"] == 500));
    s.sim.control("/sim/faults", json!({})).await;
    common::eventually(30, "the steps done once Okta answers", async || {
        s.user_status().await == "SUSPENDED"
    })
    .await;
    let (status, page) = s.get(&token).await;
    assert_eq!(status, 410);
    assert!(
        page.contains("signed out everywhere") && page.contains("marked as at risk"),
        "{page}"
    );
    let done: Vec<String> = s
        .calls()
        .await
        .iter()
        .filter(|c| c["status"].as_u64().unwrap() < 300)
        .map(|c| {
            c["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        done,
        ["sessions", "risk", "suspend"],
        "each step done once, in order"
    );
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_burst_of_requests_is_limited_and_the_page_keeps_answering() {
    let s = Setup::new("burst", vec![Step::ClearSessions]).await;
    let token = s.change("11111111-aaaa-4bbb-8ccc-000000000004").await;
    let statuses: Vec<u16> = futures_util::future::join_all((0..100).map(|_| s.get(&token)))
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + limited, 100, "{statuses:?}");
    assert!(
        (1..=20).contains(&ok),
        "at most the per-link budget is served: {ok}"
    );
    let r = s.http.get(s.url(&token)).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Walking many links from one address runs out too.
    let keys = Keys::new(&Secret::new(LINK_KEY), None);
    let mut limited = 0;
    for i in 0..80 {
        let t = keys.seal(&Claims {
            org: "acme".into(),
            change: format!("guess-{i}"),
            user: common::user_id(0),
            expires: chrono::Utc::now().timestamp() + 60,
        });
        if s.get(&t).await.0 == 429 {
            limited += 1;
        }
    }
    assert!(limited > 0, "the per-address budget");
    assert!(s.calls().await.is_empty());
    s.daemon.stop().await;
}
