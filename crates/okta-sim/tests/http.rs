//! The `okta-sim` binary over HTTP: its first line, auth, rate-limit headers and Link headers.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Sim {
    child: Child,
    base: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_okta-sim"))
        .args(["--port", "0", "--token", "t0ken"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn okta-sim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect("first line names the address")
        .to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"),
        "{base}"
    );
    Sim { child, base }
}

/// An authorized `GET /api/v1/logs` with this query.
async fn get_logs(http: &reqwest::Client, sim: &Sim, query: &str) -> reqwest::Response {
    http.get(format!("{}/api/v1/logs{query}", sim.base))
        .header("Authorization", "SSWS t0ken")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn serves_the_system_log_as_okta_does() {
    let sim = start(&["--scenario", "none", "--logs-rate-limit", "3"]);
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{}/api/v1/logs", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("x-rate-limit-remaining"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000011");
    assert_eq!(body["errorSummary"], "Invalid token provided");

    let events = serde_json::json!([{"eventType": "user.mfa.factor.activate", "uuid": "e1"}]);
    let r = http
        .post(format!("{}/sim/events", sim.base))
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = get_logs(&http, &sim, "?limit=10").await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["x-rate-limit-limit"], "3");
    assert_eq!(h["x-rate-limit-remaining"], "1");
    assert!(
        h["x-rate-limit-reset"]
            .to_str()
            .unwrap()
            .parse::<i64>()
            .is_ok()
    );
    assert!(h["x-okta-request-id"].to_str().unwrap().starts_with("req"));
    let links: Vec<&str> = h
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links[0].ends_with("rel=\"self\""));
    assert!(
        links[1].starts_with(&format!("<{}/api/v1/logs?", sim.base))
            && links[1].ends_with("rel=\"next\"")
    );
    let page: Vec<serde_json::Value> = r.json().await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["uuid"], "e1");
    assert!(page[0]["published"].as_str().unwrap().ends_with('Z'));

    // The bucket is spent: 429 with Okta's body.
    let r = get_logs(&http, &sim, "").await;
    assert_eq!(r.status(), 200);
    let r = get_logs(&http, &sim, "").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-rate-limit-remaining"], "0");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000047");
}

/// Every event a poller gets, following `next` until an empty page.
async fn poll_all(http: &reqwest::Client, sim: &Sim) -> Vec<serde_json::Value> {
    let mut url = format!("{}/api/v1/logs?limit=1000", sim.base);
    let mut all = Vec::new();
    loop {
        let r = http
            .get(&url)
            .header("Authorization", "SSWS t0ken")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let next = common::next_link(&r).unwrap();
        let page: Vec<serde_json::Value> = r.json().await.unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
        url = next;
    }
}

const STEADY: &[&str] = &[
    "--scenario",
    "steady",
    "--seed",
    "3",
    "--users",
    "20",
    "--events",
    "3000",
    "--mfa-ratio",
    "0.05",
    "--rate",
    "0",
];

#[tokio::test]
async fn the_scenario_generator_fills_the_log_and_the_directory_consistently() {
    let sim = start(STEADY);
    let http = reqwest::Client::new();
    let events = poll_all(&http, &sim).await;
    assert_eq!(events.len(), 3000);
    let published: Vec<&str> = events
        .iter()
        .map(|e| e["published"].as_str().unwrap())
        .collect();
    assert!(
        published.windows(2).all(|w| w[0] <= w[1]),
        "a backlog in time order"
    );
    let activations: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["eventType"] == "user.mfa.factor.activate")
        .collect();
    assert!(!activations.is_empty());
    for e in activations {
        let user_id = e["target"][0]["id"].as_str().unwrap();
        let r = http
            .get(format!("{}/api/v1/users/{user_id}", sim.base))
            .header("Authorization", "SSWS t0ken")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the changed user exists");
        let user: serde_json::Value = r.json().await.unwrap();
        assert!(user["profile"]["email"].as_str().unwrap().contains('@'));
        assert_eq!(e["target"][1]["type"], "AuthenticatorEnrollment");
    }

    // The same seed gives the same org.
    let again = start(STEADY);
    let events_again = poll_all(&http, &again).await;
    let strip = |e: &serde_json::Value| {
        (
            e["uuid"].clone(),
            e["eventType"].clone(),
            e["target"].clone(),
        )
    };
    assert!(events.iter().map(strip).eq(events_again.iter().map(strip)));
}

#[tokio::test]
async fn a_quiet_org_is_empty_and_takeover_ends_with_the_attack() {
    let http = reqwest::Client::new();
    let quiet = start(&["--scenario", "none"]);
    assert!(poll_all(&http, &quiet).await.is_empty());

    let org = start(&["--scenario", "takeover", "--events", "200", "--rate", "0"]);
    let events = poll_all(&http, &org).await;
    let last = events.last().unwrap();
    assert_eq!(last["eventType"], "user.mfa.factor.activate");
    assert_eq!(last["client"]["geographicalContext"]["country"], "Romania");
}

#[tokio::test]
async fn many_orgs_are_served_each_on_its_own_port_with_its_own_log_and_limits() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_okta-sim"))
        .args([
            "--port", "0", "--token", "t0ken", "--orgs", "3", "--events", "40",
        ])
        .args(["--rate", "0", "--logs-rate-limit", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn okta-sim");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let sims: Vec<Sim> = (0..3)
        .map(|_| {
            let line = lines.next().expect("one line per org").expect("stdout");
            let base = line
                .strip_prefix("listening on ")
                .expect("listening line")
                .to_owned();
            // The process is owned by the first; the others only borrow its address.
            Sim {
                child: Command::new("true").spawn().unwrap(),
                base,
            }
        })
        .collect();
    let owner = Sim {
        child,
        base: String::new(),
    };
    let bases: std::collections::HashSet<_> = sims.iter().map(|s| s.base.clone()).collect();
    assert_eq!(bases.len(), 3, "three addresses");
    let http = reqwest::Client::new();
    let mut uuids = std::collections::HashSet::new();
    let since = (chrono::Utc::now() - chrono::Duration::days(2)).format("%Y-%m-%dT%H:%M:%SZ");
    for sim in &sims {
        let r = get_logs(&http, sim, &format!("?since={since}&limit=1000")).await;
        assert_eq!(r.status(), 200);
        let events: Vec<serde_json::Value> = r.json().await.unwrap();
        assert_eq!(events.len(), 40, "each org has its own backlog");
        for e in events {
            assert!(
                uuids.insert(e["uuid"].as_str().unwrap().to_owned()),
                "orgs share no event"
            );
        }
    }
    // Each org has its own rate-limit bucket: the first org spent one of its 2 requests above.
    assert_eq!(get_logs(&http, &sims[0], "?limit=1").await.status(), 200);
    assert_eq!(get_logs(&http, &sims[0], "?limit=1").await.status(), 429);
    assert_eq!(get_logs(&http, &sims[1], "?limit=1").await.status(), 200);
    drop(owner);
}

#[test]
fn help_documents_the_stable_command_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_okta-sim"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--port",
        "--token",
        "--seed",
        "--users",
        "--scenario",
        "--events",
        "--rate",
        "--logs-rate-limit",
        "--orgs",
    ] {
        assert!(help.contains(flag), "{flag} in --help");
    }
    assert!(out.status.success());
}
