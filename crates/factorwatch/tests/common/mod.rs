//! Test support: a simulated Okta org in-process on a real socket, Okta-shaped MFA events, and a
//! factorwatch configuration pointing at the org.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use factorwatch::config::{Config, OrgConfig, OrgHookConfig, PollConfig};
use okta_sim::server::{self, Org, RateLimits};
use serde_json::{Value, json};

pub const TOKEN: &str = "t0ken-for-tests";
pub const HOOK_SECRET: &str = "hook-s3cret";

pub struct Sim {
    pub base: String,
    pub org: Arc<Org>,
    pub http: reqwest::Client,
    _local: server::Local,
}

pub async fn sim(rate_limits: RateLimits) -> Sim {
    let local = server::Local::start(TOKEN, rate_limits, 7).await.unwrap();
    Sim {
        base: local.base.clone(),
        org: local.org.clone(),
        http: reqwest::Client::new(),
        _local: local,
    }
}

impl Sim {
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Who polled the System Log and the Events API, in order (`GET /sim/polls`).
    pub async fn polls(&self) -> Vec<Value> {
        let t = self
            .http
            .get(format!("{}/sim/polls", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&t).unwrap()
    }

    pub async fn users(&self, n: usize) {
        let users: Vec<Value> = (0..n)
            .map(|i| {
                json!({ "id": user_id(i), "profile": { "login": format!("user{i}@example.com"), "email": format!("user{i}@mail.example.com"),
                        "secondEmail": format!("user{i}@personal.example.net"), "firstName": format!("User{i}") } })
            })
            .collect();
        self.control("/sim/users", json!(users)).await;
    }
}

pub fn user_id(i: usize) -> String {
    format!("00u{i:017}")
}

/// MFA events of three kinds, by `i % 3`: a self-service SMS enrollment (notifies the user), an
/// RSA token enrollment (third-party: no email), an org-wide factor change (no user: no email).
pub fn mfa_event(uuid: &str, i: usize, users: usize) -> Value {
    let u = i % users;
    let user = json!({ "id": user_id(u), "type": "User", "alternateId": format!("user{u}@example.com"), "displayName": format!("User {u}") });
    match i % 3 {
        0 => json!({
            "uuid": uuid, "eventType": "user.mfa.factor.activate", "displayMessage": "Activate factor for user",
            "actor": user, "target": [user], "outcome": { "result": "SUCCESS", "reason": "User set up SMS_FACTOR factor" },
            "client": { "ipAddress": "198.51.100.7", "geographicalContext": { "city": "Paris", "country": "France" } },
            "debugContext": { "debugData": { "phoneNumber": format!("+1555000{:04}", i % 10000) } },
        }),
        1 => json!({
            "uuid": uuid, "eventType": "user.mfa.factor.activate", "displayMessage": "Activate factor for user",
            "actor": user, "target": [user], "outcome": { "result": "SUCCESS", "reason": "User set up RSA_SECURID factor" },
        }),
        _ => json!({
            "uuid": uuid, "eventType": "system.mfa.factor.activate", "displayMessage": "Activate factor",
            "actor": user, "target": [{ "id": "mfa1", "type": "MFAFactor", "displayName": "Okta Verify" }],
            "outcome": { "result": "SUCCESS" },
        }),
    }
}

/// Whether [`mfa_event`] number `i` should produce an email.
pub fn notifies(i: usize) -> bool {
    i.is_multiple_of(3)
}

/// A config for one org at `base`, writing under `dir`.
pub fn config(dir: &Path, base: &str, hook: bool) -> Config {
    let mut c = Config::load(None, std::iter::empty()).unwrap();
    c.store.path = dir.join("fw.db");
    c.sinks = vec![factorwatch::sinks::SinkConfig::file(
        "file",
        &dir.join("siem.ndjson").display().to_string(),
    )];
    c.email.dir = dir.join("mail");
    c.email.coalesce = Duration::ZERO;
    c.hooks.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    c.orgs = vec![OrgConfig {
        name: "acme".into(),
        url: base.into(),
        token_env: Some("TEST_OKTA_TOKEN".into()),
        token_file: None,
        oauth: None,
        system_log: PollConfig {
            enabled: true,
            since: "1h".parse().unwrap(),
            interval: Duration::from_millis(200),
            types: None,
        },
        events_api: PollConfig {
            enabled: false,
            ..PollConfig::default()
        },
        hook: hook.then(|| OrgHookConfig {
            path: "/okta/acme".into(),
            auth_header: "authorization".into(),
            secret_env: Some("TEST_HOOK_SECRET".into()),
            secret_file: None,
        }),
        danger_plaintext_credentials: false,
    }];
    c
}

pub fn env(name: &str) -> Option<String> {
    match name {
        "TEST_OKTA_TOKEN" => Some(TOKEN.into()),
        "TEST_HOOK_SECRET" => Some(HOOK_SECRET.into()),
        _ => None,
    }
}

/// The ids of the records in a SIEM NDJSON file (with repeats).
pub fn siem_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The `Message-ID`s and recipients of the `.eml` files in `dir` (with repeats).
pub fn emails(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let header = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            };
            (header("Message-ID:"), header("To:"))
        })
        .collect()
}

/// Polls `check` every 100 ms until it holds (or fails after `secs`).
pub async fn eventually(secs: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..secs * 10 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// `n` classified changes (from [`mfa_event`]) owed to `destinations`, ids `prefix00000…`.
pub fn changes(
    prefix: &str,
    n: usize,
    destinations: &[&str],
) -> Vec<factorwatch::store::NewChange> {
    use factorwatch::pipeline::ingest::Ingest;
    use factorwatch::pipeline::route::Routing;
    let ingest = Ingest {
        classifier: Default::default(),
        routing: Routing {
            siem: destinations
                .iter()
                .map(|d| ((*d).to_owned(), None))
                .collect(),
            email: None,
            notify_third_party: false,
            email_actions: None,
            security: vec![],
            email_after: std::time::Duration::ZERO,
        },
        detections: None,
    };
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let mut e = mfa_event(&format!("{prefix}{i:05}"), i, 5);
            e["published"] = json!(format!(
                "2026-11-25T10:{:02}:{:02}.000Z",
                (i / 60) % 60,
                i % 60
            ));
            e
        })
        .collect();
    let batch = ingest.batch(
        factorwatch::store::SourceKind::SystemLog,
        &Value::Array(events).to_string(),
        None,
    );
    assert_eq!(batch.changes.len(), n);
    batch.changes
}

/// A fresh store in a temporary folder holding `changes`.
pub async fn store_with(
    name: &str,
    changes: Vec<factorwatch::store::NewChange>,
) -> factorwatch::store::sqlite::SqliteStore {
    use factorwatch::store::Store;
    let dir = std::env::temp_dir().join(format!("fw-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = factorwatch::store::sqlite::SqliteStore::open(&dir.join("fw.db"))
        .await
        .unwrap();
    let batch = factorwatch::store::Batch {
        source: factorwatch::store::SourceKind::SystemLog,
        changes,
        rejects: vec![],
        events_seen: 0,
        newest_published: None,
        cursor: None,
        context: Vec::new(),
        signals: Vec::new(),
    };
    store
        .commit("acme", &batch, chrono::Utc::now())
        .await
        .unwrap();
    store
}

/// Worker settings for tests: quick retries, quick idle polls.
pub fn quick_policy() -> factorwatch::pipeline::worker::WorkerPolicy {
    factorwatch::pipeline::worker::WorkerPolicy {
        max_attempts: 10,
        backoff: factorwatch::backoff::Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
        },
        idle_poll: Duration::from_millis(20),
    }
}

/// Email settings for tests: one notice per change, every policy off.
pub fn email_settings() -> factorwatch::email::EmailSettings {
    factorwatch::email::EmailSettings {
        from: "Security <security@example.com>".parse().unwrap(),
        second_email: false,
        help: "call x1234".into(),
        suppress: vec![],
        hourly_cap: None,
        coalesce: Duration::ZERO,
        skip_when_okta_notified: false,
        previous_address_window: Duration::ZERO,
        concurrency: 1,
        detections: false,
        links: None,
    }
}

/// An Okta org with users, a store whose changes are owed to the `email` destination, and a
/// folder for what is sent.
pub struct Mail {
    pub sim: Sim,
    pub store: factorwatch::store::sqlite::SqliteStore,
    pub dir: std::path::PathBuf,
}

impl Mail {
    pub async fn new(name: &str, users: usize) -> Mail {
        let sim = sim(RateLimits::default()).await;
        sim.users(users).await;
        let dir = std::env::temp_dir().join(format!("fw-mail-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = factorwatch::store::sqlite::SqliteStore::open(&dir.join("fw.db"))
            .await
            .unwrap();
        Mail { sim, store, dir }
    }

    /// Classifies and stores `events` (changes routed to email).
    pub async fn commit(&self, events: Vec<Value>) -> factorwatch::store::Batch {
        self.commit_routed(events, vec![], chrono::Utc::now()).await
    }

    /// [`Mail::commit`], as if received `at`.
    pub async fn commit_at(
        &self,
        events: Vec<Value>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> factorwatch::store::Batch {
        self.commit_routed(events, vec![], at).await
    }

    /// [`Mail::commit`], with the security team's destinations too.
    pub async fn commit_with_security(&self, events: Vec<Value>) -> factorwatch::store::Batch {
        self.commit_routed(
            events,
            vec!["security:email".into(), "security:chat".into()],
            chrono::Utc::now(),
        )
        .await
    }

    async fn commit_routed(
        &self,
        events: Vec<Value>,
        security: Vec<String>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> factorwatch::store::Batch {
        use factorwatch::store::Store;
        let ingest = factorwatch::pipeline::ingest::Ingest {
            classifier: Default::default(),
            routing: factorwatch::pipeline::route::Routing {
                siem: vec![],
                email: Some("email".into()),
                notify_third_party: false,
                email_actions: None,
                security,
                email_after: std::time::Duration::ZERO,
            },
            detections: None,
        };
        let batch = ingest.batch(
            factorwatch::store::SourceKind::SystemLog,
            &Value::Array(events).to_string(),
            None,
        );
        self.store.commit("acme", &batch, at).await.unwrap();
        batch
    }

    /// An email destination for the org "acme", its users looked up in the simulated org
    /// (cached for `ttl`).
    pub fn destination(
        &self,
        settings: factorwatch::email::EmailSettings,
        transport: factorwatch::email::transport::Transport,
        ttl: Duration,
    ) -> factorwatch::email::EmailDestination<factorwatch::store::sqlite::SqliteStore> {
        self.destination_with(
            settings,
            transport,
            ttl,
            factorwatch::okta::client::RetryPolicy::default(),
            TOKEN,
        )
    }

    /// [`Mail::destination`] whose Okta client retries by `policy` and presents `token`.
    pub fn destination_with(
        &self,
        settings: factorwatch::email::EmailSettings,
        transport: factorwatch::email::transport::Transport,
        ttl: Duration,
        policy: factorwatch::okta::client::RetryPolicy,
        token: &str,
    ) -> factorwatch::email::EmailDestination<factorwatch::store::sqlite::SqliteStore> {
        use factorwatch::okta::client::{OktaClient, auth::Credentials};
        let client = Arc::new(
            OktaClient::new(
                &self.sim.base,
                Credentials::Ssws(factorwatch::secret::Secret::new(token)),
                policy,
            )
            .unwrap(),
        );
        let enrichers = std::collections::HashMap::from([(
            "acme".to_owned(),
            Arc::new(factorwatch::enrich::Enricher::new(client, ttl)),
        )]);
        factorwatch::email::EmailDestination::new(
            "email",
            self.store.clone(),
            settings,
            factorwatch::email::templates::Templates::new(None, "en"),
            enrichers,
            transport,
        )
    }

    /// The `.eml` files transport into this harness's `mail` folder.
    pub fn files(&self) -> factorwatch::email::transport::Transport {
        factorwatch::email::transport::Transport::files(self.dir.join("mail")).unwrap()
    }

    /// (delivered, pending, dead) of the email outbox.
    pub async fn outbox(&self) -> (u64, u64, u64) {
        self.outbox_of("email").await
    }

    /// (delivered, pending, dead) of one destination's outbox.
    pub async fn outbox_of(&self, destination: &str) -> (u64, u64, u64) {
        use factorwatch::store::Store;
        let s = self.store.stats().await.unwrap();
        s.outbox
            .iter()
            .find(|(name, ..)| name == destination)
            .map_or((0, 0, 0), |(_, d, p, x)| (*d, *p, *x))
    }

    /// Runs `destination`'s worker until `settled` rows of `name` are delivered or dead.
    pub async fn drain_destination<D: factorwatch::pipeline::worker::Destination>(
        &self,
        destination: D,
        name: &str,
        settled: u64,
    ) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(factorwatch::pipeline::worker::run(
            self.store.clone(),
            Arc::new(destination),
            quick_policy(),
            Default::default(),
            stopped,
        ));
        eventually(60, "every row settled", async || {
            let (d, p, x) = self.outbox_of(name).await;
            d + x >= settled && p == 0
        })
        .await;
        let _ = stop.send(true);
        task.await.unwrap();
    }

    /// Runs `destination`'s worker (at most `max_attempts` per row) for `how_long`, for a
    /// destination that is expected to make no progress; returns the email rows' attempts so far.
    pub async fn run_for<D: factorwatch::pipeline::worker::Destination>(
        &self,
        destination: D,
        max_attempts: u32,
        how_long: Duration,
    ) -> Vec<u32> {
        use factorwatch::store::Store;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(factorwatch::pipeline::worker::run(
            self.store.clone(),
            Arc::new(destination),
            factorwatch::pipeline::worker::WorkerPolicy {
                max_attempts,
                ..quick_policy()
            },
            Default::default(),
            stopped,
        ));
        tokio::time::sleep(how_long).await;
        let _ = stop.send(true);
        task.await.unwrap();
        self.store
            .due(
                "email",
                1000,
                chrono::Utc::now() + chrono::Duration::days(1),
                true,
            )
            .await
            .unwrap()
            .iter()
            .map(|d| d.attempts)
            .collect()
    }

    /// Runs `destination`'s worker until `settled` rows are delivered or dead.
    pub async fn drain<D: factorwatch::pipeline::worker::Destination>(
        &self,
        destination: D,
        settled: u64,
    ) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(factorwatch::pipeline::worker::run(
            self.store.clone(),
            Arc::new(destination),
            quick_policy(),
            Default::default(),
            stopped,
        ));
        eventually(60, "every email settled", async || {
            let (d, p, x) = self.outbox().await;
            d + x >= settled && p == 0
        })
        .await;
        let _ = stop.send(true);
        task.await.unwrap();
    }

    /// The `.eml` files sent so far.
    pub fn sent(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("mail"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .map(|e| std::fs::read_to_string(e.path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A test CA and a server certificate for 127.0.0.1 / localhost signed by it, in `dir`
/// (`ca.pem`, `server.pem`, `server.key`), made with the openssl CLI.
pub fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl CLI makes test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=factorwatch test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}
