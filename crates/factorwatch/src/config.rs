//! `factorwatch.toml`: every option, with defaults that run without editing. Every key can also
//! be set by an environment variable — `FACTORWATCH__` then the key's path in upper case, steps
//! joined by `__` (`FACTORWATCH__STORE__PATH`, `FACTORWATCH__ORGS__0__URL`). Secrets (API token,
//! private key, hook secret) are never in the file: only the name of an environment variable or a
//! file holding them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use lettre::message::Mailbox;

use crate::record::Action;
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub orgs: Vec<OrgConfig>,
    #[serde(default)]
    pub hooks: HookServerConfig,
    /// SIEM destinations; by default one NDJSON file of records.
    #[serde(default = "default_sinks")]
    pub sinks: Vec<crate::sinks::SinkConfig>,
    #[serde(default)]
    pub email: EmailConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub observability: ObservabilityConfig,
    #[serde(default)]
    pub detections: DetectionsConfig,
    #[serde(default)]
    pub not_me: NotMeConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
}

/// `[cluster]`: several replicas on a PostgreSQL store (`docs/cluster.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// How long an org's lease lasts without renewal: how soon a dead replica's orgs move.
    #[serde(default = "default_lease", with = "humantime_serde")]
    pub lease: Duration,
}

fn default_lease() -> Duration {
    Duration::from_secs(15)
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            lease: default_lease(),
        }
    }
}

/// `[not_me]`: the "this wasn't me" link in every notice and what pressing its button does
/// (`docs/not-me.md`). Off until `public_url` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotMeConfig {
    /// Where users reach factorwatch's HTTP listener (`[hooks] listen`) through your TLS reverse
    /// proxy, e.g. `https://factorwatch.example.com`; links are `<public_url>/not-me/<token>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The key links are sealed with (at least 32 characters), in this environment variable…
    #[serde(default)]
    pub key_env: Option<String>,
    /// …or this file.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The key before the last rotation: links it sealed still open until they expire.
    #[serde(default)]
    pub previous_key_env: Option<String>,
    #[serde(default)]
    pub previous_key_file: Option<PathBuf>,
    /// How long a link works.
    #[serde(default = "default_link_life", with = "humantime_serde")]
    pub valid_for: Duration,
    /// What the button asks Okta to do, carried out in this order whatever order they are listed
    /// in: `clear_sessions`, `raise_risk`, `reset_factors`, `suspend`. Empty: only tell the
    /// security team.
    #[serde(default = "default_not_me_actions", deserialize_with = "steps")]
    pub actions: Vec<crate::report::Step>,
    /// How long the page waits for Okta's answers before saying the work goes on.
    #[serde(default = "default_not_me_wait", with = "humantime_serde")]
    pub wait: Duration,
    /// Requests per minute allowed per link and per client address.
    #[serde(default = "default_not_me_rate")]
    pub requests_per_minute: u32,
    /// Take the client's address from the last `X-Forwarded-For` entry (set this only behind
    /// a reverse proxy that writes it; otherwise clients could choose their own).
    #[serde(default)]
    pub trust_forwarded_for: bool,
}

fn default_link_life() -> Duration {
    Duration::from_secs(7 * 86_400)
}

fn default_not_me_actions() -> Vec<crate::report::Step> {
    vec![crate::report::Step::ClearSessions]
}

fn default_not_me_wait() -> Duration {
    Duration::from_secs(8)
}

fn default_not_me_rate() -> u32 {
    20
}

impl Default for NotMeConfig {
    fn default() -> Self {
        NotMeConfig {
            public_url: None,
            key_env: None,
            key_file: None,
            previous_key_env: None,
            previous_key_file: None,
            valid_for: default_link_life(),
            actions: default_not_me_actions(),
            wait: default_not_me_wait(),
            requests_per_minute: default_not_me_rate(),
            trust_forwarded_for: false,
        }
    }
}

impl NotMeConfig {
    /// Whether notices carry the link.
    pub fn enabled(&self) -> bool {
        self.public_url.is_some()
    }

    fn check(&self) -> Result<(), Invalid> {
        let Some(url) = &self.public_url else {
            return Ok(());
        };
        check_url("not_me.public_url", url, true)?;
        if url.contains(['?', '#']) {
            return Err(Invalid(format!(
                "not_me.public_url: {url:?}: give the base URL only, without ? or #"
            )));
        }
        if self.key_env.is_none() && self.key_file.is_none() {
            return Err(Invalid(
                "not_me.key_env or not_me.key_file: links need a key (32 characters or more, e.g. `openssl rand -base64 32`)".into(),
            ));
        }
        if self.valid_for.is_zero() || self.valid_for > Duration::from_secs(30 * 86_400) {
            return Err(Invalid(
                "not_me.valid_for: between 1s and 30 days (Okta's own link lives 7 days)".into(),
            ));
        }
        if self.requests_per_minute == 0 {
            return Err(Invalid(
                "not_me.requests_per_minute: must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The link keys, read from their environment variables or files.
    pub fn keys(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<crate::report::token::Keys, ConfigError> {
        let current = read_secret(
            "not_me.key",
            self.key_env.as_deref(),
            self.key_file.as_deref(),
            env,
        )?;
        if current.expose().len() < 32 {
            return Err(ConfigError::Secret(
                "not_me.key: the key must be at least 32 characters".into(),
            ));
        }
        let previous = if self.previous_key_env.is_some() || self.previous_key_file.is_some() {
            Some(read_secret(
                "not_me.previous_key",
                self.previous_key_env.as_deref(),
                self.previous_key_file.as_deref(),
                env,
            )?)
        } else {
            None
        };
        Ok(crate::report::token::Keys::new(&current, previous.as_ref()))
    }
}

/// A list of Okta steps by name, each once.
fn steps<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<crate::report::Step>, D::Error> {
    let names: Vec<String> = Vec::deserialize(d)?;
    let mut out = Vec::new();
    for n in names {
        let step = crate::report::Step::parse(&n).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown action {n:?}, expected one of clear_sessions, raise_risk, reset_factors, suspend"
            ))
        })?;
        if !out.contains(&step) {
            out.push(step);
        }
    }
    out.sort();
    Ok(out)
}

/// `[detections]`: the account-takeover rules (`docs/detections.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionsConfig {
    /// Run the rules (and poll their evidence: sign-ins, password resets, users' reports).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The key phone numbers are hashed with before they are kept (to find one number enrolled
    /// by several users), in this environment variable…
    #[serde(default)]
    pub phone_key_env: Option<String>,
    /// …or this file. Without either, a random key is made once and kept in the store.
    #[serde(default)]
    pub phone_key_file: Option<PathBuf>,
    /// Per rule: `enabled`, `window`, `threshold`, `severity`.
    #[serde(default)]
    pub rules: std::collections::BTreeMap<String, RuleConfig>,
}

impl Default for DetectionsConfig {
    fn default() -> Self {
        DetectionsConfig {
            enabled: true,
            phone_key_env: None,
            phone_key_file: None,
            rules: Default::default(),
        }
    }
}

/// `[detections.rules.<rule>]`: what differs from the rule's defaults.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub enabled: Option<bool>,
    #[serde(default, with = "humantime_serde_opt")]
    pub window: Option<Duration>,
    pub threshold: Option<u32>,
    pub severity: Option<crate::detect::Severity>,
}

/// The longest window a rule may take (Okta keeps 90 days of System Log).
const MAX_RULE_WINDOW: Duration = Duration::from_secs(90 * 24 * 3600);

impl DetectionsConfig {
    /// The rules' settings: each rule's defaults with what the configuration changes.
    pub fn settings(&self) -> crate::detect::Settings {
        let mut settings = crate::detect::Settings::default();
        for (name, c) in &self.rules {
            // Names were checked at load.
            let Some(rule) = crate::detect::RuleId::parse(name) else {
                continue;
            };
            let mut s = rule.defaults();
            if let Some(e) = c.enabled {
                s.enabled = e;
            }
            if let Some(w) = c.window.and_then(|w| chrono::Duration::from_std(w).ok()) {
                s.window = w;
            }
            if let Some(t) = c.threshold {
                s.threshold = t;
            }
            if let Some(sev) = c.severity {
                s.severity = sev;
            }
            settings.set(rule, s);
        }
        settings
    }

    fn check(&self) -> Result<(), Invalid> {
        if self.phone_key_env.is_some() && self.phone_key_file.is_some() {
            return Err("detections: set one of phone_key_env and phone_key_file".into());
        }
        for (name, c) in &self.rules {
            let at = format!("detections.rules.{name}");
            let Some(rule) = crate::detect::RuleId::parse(name) else {
                let known: Vec<&str> = crate::detect::RuleId::ALL
                    .iter()
                    .map(|r| r.as_str())
                    .collect();
                return Err(Invalid(format!(
                    "{at}: no such rule; the rules are {}",
                    known.join(", ")
                )));
            };
            if let Some(w) = c.window
                && (w < Duration::from_secs(1) || w > MAX_RULE_WINDOW)
            {
                return Err(Invalid(format!("{at}.window: must be between 1s and 90d")));
            }
            if let Some(t) = c.threshold {
                if !rule.counts() {
                    return Err(Invalid(format!(
                        "{at}.threshold: {} counts nothing (only bulk_admin_reset, shared_phone, shared_device and bypass_burst take a threshold)",
                        rule.as_str()
                    )));
                }
                let least = if matches!(
                    rule,
                    crate::detect::RuleId::SharedPhone | crate::detect::RuleId::SharedDevice
                ) {
                    2
                } else {
                    1
                };
                if !(least..=100_000).contains(&t) {
                    return Err(Invalid(format!(
                        "{at}.threshold: {t} is not between {least} and 100000"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// Serve `/metrics` (Prometheus), `/healthz` and `/readyz` here (off when absent).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Raise the lag alarm (a warning in the log, `factorwatch_lag_alarm` = 1) when the newest
    /// event processed is older than this (Okta's logs can fall hours behind).
    #[serde(default, with = "humantime_serde_opt")]
    pub lag_alarm: Option<Duration>,
    /// Also post the alarm, and its end, as `{"text": …}` to a Slack- or Teams-compatible
    /// incoming webhook (the security team's channel), whose URL — it carries the channel's token —
    /// is in this environment variable…
    #[serde(default)]
    pub lag_alarm_webhook_env: Option<String>,
    /// …or this file.
    #[serde(default)]
    pub lag_alarm_webhook_file: Option<PathBuf>,
    /// Refused: a webhook URL is a secret (see `lag_alarm_webhook_env`).
    #[serde(default)]
    pub lag_alarm_webhook: Option<toml::Value>,
    /// The status page (`/status`) asks for this bearer token (or HTTP Basic with it as the
    /// password), from this environment variable…
    #[serde(default)]
    pub status_token_env: Option<String>,
    /// …or this file. Without either, the page is served only when `listen` is a loopback
    /// address.
    #[serde(default)]
    pub status_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite database file (the embedded default).
    #[serde(default = "default_db")]
    pub path: PathBuf,
    /// A shared PostgreSQL store instead, for several replicas:
    /// `postgres://factorwatch@db.example.com:5432/factorwatch?sslmode=verify-full`. No password in
    /// it: see `password_env`.
    #[serde(default)]
    pub url: Option<String>,
    /// The database password, in this environment variable…
    #[serde(default)]
    pub password_env: Option<String>,
    /// …or this file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The CA certificate that signs the server's (`sslmode=verify-ca` or `verify-full`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Connections to PostgreSQL per replica.
    #[serde(default = "default_pg_connections")]
    pub max_connections: u32,
}

fn default_pg_connections() -> u32 {
    8
}

impl StoreConfig {
    fn check(&self) -> Result<(), Invalid> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        let parsed = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "postgres" | "postgresql"))
            .ok_or_else(|| {
                Invalid(format!(
                    "store.url: {:?} is not a postgres:// URL",
                    crate::store::postgres::redact(url)
                ))
            })?;
        if parsed.password().is_some() {
            return Err(Invalid(
                "store.url: put the password in store.password_env or store.password_file, not in the URL".into(),
            ));
        }
        Ok(())
    }
}

fn default_db() -> PathBuf {
    PathBuf::from("factorwatch-data/factorwatch.db")
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_db(),
            url: None,
            password_env: None,
            password_file: None,
            ca_file: None,
            max_connections: default_pg_connections(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    /// The org's name in the store and in logs (stable: rows are keyed by it).
    pub name: String,
    /// `https://acme.okta.com`.
    pub url: String,
    /// The environment variable holding the SSWS API token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding the SSWS API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// An OAuth service app instead of an API token.
    #[serde(default)]
    pub oauth: Option<OAuthConfig>,
    #[serde(default)]
    pub system_log: PollConfig,
    #[serde(default = "PollConfig::off")]
    pub events_api: PollConfig,
    #[serde(default)]
    pub hook: Option<OrgHookConfig>,
    /// Let the API token travel over plain `http://` to a host that is not this machine. Never
    /// for a real org; only for a test server reached over a network you trust.
    #[serde(default)]
    pub danger_plaintext_credentials: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    pub client_id: String,
    /// PEM file with the app's private key (RSA or EC P-256).
    pub private_key_file: PathBuf,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["okta.logs.read".into(), "okta.users.read".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where a first start begins: an RFC 3339 time, or an age like `24h` (Okta keeps 90 days).
    #[serde(default = "default_since")]
    pub since: Since,
    /// The wait after an empty page.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// System Log: event types (`eventType eq` filter). Events API: objectTypes. Empty: all.
    #[serde(default)]
    pub types: Option<Vec<String>>,
}

impl PollConfig {
    fn off() -> Self {
        PollConfig {
            enabled: false,
            ..PollConfig::default()
        }
    }
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            enabled: true,
            since: default_since(),
            interval: default_interval(),
            types: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_since() -> Since {
    Since::Age(Duration::from_secs(24 * 3600))
}

/// Where polling starts the first time: a moment, or an age before the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    At(chrono::DateTime<chrono::Utc>),
    Age(Duration),
}

impl Since {
    /// The moment it names, for a start at `now`.
    pub fn at(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        match *self {
            Since::At(t) => t,
            Since::Age(age) => now - chrono::Duration::from_std(age).unwrap_or_default(),
        }
    }
}

impl std::str::FromStr for Since {
    type Err = String;

    /// RFC 3339, or an age (`24h`, `7d`) of at most Okta's 90-day retention.
    fn from_str(since: &str) -> Result<Since, String> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(since) {
            return Ok(Since::At(t.with_timezone(&chrono::Utc)));
        }
        let age = humantime::parse_duration(since).map_err(|_| {
            format!("{since:?} is neither an RFC 3339 time nor an age like \"24h\"")
        })?;
        if age > Duration::from_secs(90 * 24 * 3600) {
            return Err(format!("{since:?} reaches past Okta's 90-day retention"));
        }
        Ok(Since::Age(age))
    }
}

impl<'de> Deserialize<'de> for Since {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgHookConfig {
    /// The URL path Okta posts to, e.g. `/okta/acme`.
    pub path: String,
    /// The header carrying the shared secret.
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

fn default_auth_header() -> String {
    "authorization".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookServerConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Larger deliveries are refused with 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// A client gets this long to send a request's headers (and an idle connection lives this
    /// long); a body gets Okta's own 3 s.
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Connections open at once, at most; more wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_connections() -> usize {
    512
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_max_body() -> usize {
    1 << 20
}

impl Default for HookServerConfig {
    fn default() -> Self {
        HookServerConfig {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            header_timeout: default_header_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

/// Why a configuration cannot be used, naming the key: `sinks[0] (splunk).url: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(s: String) -> Invalid {
        Invalid(s)
    }
}

impl From<&str> for Invalid {
    fn from(s: &str) -> Invalid {
        Invalid(s.to_owned())
    }
}

/// Where a secret is: an environment variable or a file, never the configuration itself. A
/// literal value in its place is refused with a message that does not repeat it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SecretRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("{ env = \"VARIABLE\" } or { file = \"/path\" }")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(
                    "this value is a secret and is never written in the configuration: use { env = \"VARIABLE\" } or { file = \"/path\" }",
                ))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SecretRef, A::Error> {
                let mut r = SecretRef {
                    env: None,
                    file: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "env" => r.env = Some(map.next_value()?),
                        "file" => r.file = Some(map.next_value()?),
                        other => {
                            return Err(serde::de::Error::unknown_field(other, &["env", "file"]));
                        }
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl SecretRef {
    /// Exactly one of `env` and `file`.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.env.is_some() == self.file.is_some() {
            Err("set one of env and file".into())
        } else {
            Ok(())
        }
    }

    /// The secret it names.
    pub fn read(
        &self,
        what: &str,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Secret, ConfigError> {
        read_secret(what, self.env.as_deref(), self.file.as_deref(), env)
    }
}

fn default_sinks() -> Vec<crate::sinks::SinkConfig> {
    vec![crate::sinks::SinkConfig::file(
        "file",
        "factorwatch-data/siem.ndjson",
    )]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where `.eml` files are written.
    #[serde(default = "default_mail_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_from", deserialize_with = "mailbox")]
    pub from: Mailbox,
    /// Also write to the user's `secondEmail`.
    #[serde(default)]
    pub second_email: bool,
    /// What to do if it wasn't them (shown in every email).
    #[serde(default = "default_help")]
    pub help: String,
    /// Also email about factors Okta does not own (Duo, RSA, Symantec…).
    #[serde(default)]
    pub notify_third_party: bool,
    /// Email only for these actions (enrolled, reset, reset_all, updated, suspended,
    /// unsuspended, bypass_attempted); all of them when absent.
    #[serde(default, deserialize_with = "actions")]
    pub actions: Option<Vec<Action>>,
    /// How long user lookups are cached.
    #[serde(default = "default_cache", with = "humantime_serde")]
    pub lookup_cache: Duration,
    /// files (the `.eml` folder `dir`), smtp, or dry_run (render and log, send nothing).
    #[serde(default)]
    pub transport: EmailTransport,
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// A folder of templates overriding the built-in ones (`<language>/<name>.{txt,html}.j2`).
    #[serde(default)]
    pub templates: Option<PathBuf>,
    /// The language for users whose `profile.locale` has no templates (en, fr).
    #[serde(default = "default_language")]
    pub language: String,
    /// Logins never written to (service accounts); `*` matches any run of characters.
    #[serde(default)]
    pub suppress: Vec<String>,
    /// At most this many notices per user per hour.
    #[serde(default)]
    pub hourly_cap: Option<u32>,
    /// Notices under way at once (claimed, being prepared, sent or marked): a crash repeats at
    /// most this many. They go in two overlapping batches of half as many (at least
    /// `email.smtp.pool_size`, the connections relays accept from one client; Microsoft 365: 3
    /// per mailbox): one is prepared and marked while the other is sent. 16 by default; 1 makes a
    /// crash repeat at most one notice.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Also tell the security team (by email to this address) of changes someone other than the
    /// user made, and of bypass attempts.
    #[serde(default, deserialize_with = "optional_mailbox")]
    pub security_copy: Option<Mailbox>,
    /// …and/or post them as `{"text": …}` to a Slack- or Teams-compatible webhook, whose URL —
    /// it carries the channel's token — is in this environment variable…
    #[serde(default)]
    pub security_webhook_env: Option<String>,
    /// …or this file.
    #[serde(default)]
    pub security_webhook_file: Option<PathBuf>,
    /// Refused: a webhook URL is a secret (see `security_webhook_env`).
    #[serde(default)]
    pub security_webhook: Option<toml::Value>,
    /// After a user's primary email changed within this long, notices also go to the addresses
    /// factorwatch saw for them before ("0s": never).
    #[serde(default = "default_previous_window", with = "humantime_serde")]
    pub previous_address_window: Duration,
    /// Send nothing when Okta sent its own notice for the change (orgs that keep Okta's).
    #[serde(default)]
    pub skip_when_okta_notified: bool,
    /// Changes to one user within this window become one notice ("0s": one per change).
    #[serde(default = "default_coalesce", with = "humantime_serde")]
    pub coalesce: Duration,
}

fn default_previous_window() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}

fn default_coalesce() -> Duration {
    Duration::from_secs(120)
}

/// How notices leave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTransport {
    /// `.eml` files in `email.dir` (the embedded default).
    #[default]
    Files,
    /// An SMTP relay (`[email.smtp]`).
    Smtp,
    /// Render and log, send nothing.
    DryRun,
}

impl EmailTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTransport::Files => "files",
            EmailTransport::Smtp => "smtp",
            EmailTransport::DryRun => "dry_run",
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Port 587, STARTTLS required (never opportunistic: a downgrade would expose AUTH).
    #[default]
    Starttls,
    /// Port 465, TLS from the first byte.
    Implicit,
    /// No TLS: a relay on this machine.
    None,
}

/// Action names as the record spells them (`enrolled`, `reset_all`…).
pub fn actions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Action>>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|a| {
            serde_json::from_value(serde_json::Value::String(a.clone())).map_err(|_| {
                serde::de::Error::custom(format!(
                    "unknown action {a:?}; expected one of {}",
                    Action::ALL.map(Action::as_str).join(", ")
                ))
            })
        })
        .collect::<Result<Vec<Action>, D::Error>>()
        .map(Some)
}

fn mailbox<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Mailbox, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|e| serde::de::Error::custom(format!("{s:?} is not an address: {e}")))
}

fn optional_mailbox<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Mailbox>, D::Error> {
    mailbox(d).map(Some)
}

fn default_language() -> String {
    "en".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default 587 (STARTTLS), 465 (implicit TLS), 25 (none).
    #[serde(default)]
    pub port: Option<u16>,
    /// starttls (required, never opportunistic), implicit, or none (a relay on this machine).
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_smtp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// SMTP connections kept open and reused (`TCP_NODELAY`), at most this many at once.
    #[serde(default = "default_pool")]
    pub pool_size: u32,
    /// Messages per second at most, for relays that throttle (0: no limit).
    #[serde(default)]
    pub rate: f64,
    /// Let the SMTP password travel without TLS (`security = "none"`) to a relay that is not
    /// this machine.
    #[serde(default)]
    pub danger_plaintext_credentials: bool,
}

fn default_smtp_timeout() -> Duration {
    Duration::from_secs(30)
}

/// SMTP connections by default: the few relays accept from one client.
pub const DEFAULT_SMTP_POOL: u32 = 4;

/// Notices under way by default (claimed, being prepared, sent or marked): four batches that
/// fill the default pool, one being prepared or marked while the others are sent. A crash repeats
/// at most these (scripts/bench/mass-reset.sh: 16 sent 10,000 notices through Postfix faster
/// than 8, and 8 faster than 4).
pub const DEFAULT_EMAIL_CONCURRENCY: u32 = 16;

fn default_pool() -> u32 {
    DEFAULT_SMTP_POOL
}

fn default_concurrency() -> u32 {
    DEFAULT_EMAIL_CONCURRENCY
}

fn default_mail_dir() -> PathBuf {
    PathBuf::from("factorwatch-data/mail")
}

fn default_from() -> Mailbox {
    // Fixed, valid parts: nothing to check.
    Mailbox::new(
        Some("Security".into()),
        lettre::Address::new_dangerous("security", "localhost"),
    )
}

fn default_help() -> String {
    "contact your help desk right away.".into()
}

fn default_cache() -> Duration {
    Duration::from_secs(60)
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            enabled: true,
            dir: default_mail_dir(),
            from: default_from(),
            second_email: false,
            help: default_help(),
            notify_third_party: false,
            actions: None,
            lookup_cache: default_cache(),
            transport: EmailTransport::default(),
            smtp: None,
            templates: None,
            language: default_language(),
            suppress: Vec::new(),
            hourly_cap: None,
            concurrency: default_concurrency(),
            coalesce: default_coalesce(),
            security_copy: None,
            security_webhook_env: None,
            security_webhook_file: None,
            security_webhook: None,
            skip_when_okta_notified: false,
            previous_address_window: default_previous_window(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Attempts before a delivery is dead-lettered.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    10
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: default_attempts(),
        }
    }
}

/// `humantime` durations (`15s`, `2m`) in serde.
mod humantime_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "{s:?} is not a duration like \"15s\" or \"2m\": {e}"
            ))
        })
    }
}

/// Optional `humantime` durations in serde.
mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                humantime::parse_duration(&s).map_err(|e| {
                    serde::de::Error::custom(format!("{s:?} is not a duration like \"30m\": {e}"))
                })
            })
            .transpose()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
    #[error("environment variable {name}: {detail}")]
    Env { name: String, detail: String },
    #[error("{0}")]
    Secret(String),
}

impl Config {
    /// Reads the file (if given), applies `FACTORWATCH__…` variables from `env`, validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    path: p.display().to_string(),
                    detail: e.to_string(),
                })?,
                p.display().to_string(),
            ),
            None => (String::new(), "(defaults)".into()),
        };
        let mut value: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: origin.clone(),
                    detail: e.to_string(),
                })?;
        for (name, v) in env {
            if let Some(key) = name.strip_prefix("FACTORWATCH__") {
                set_path(&mut value, key, &v).map_err(|detail| ConfigError::Env {
                    name: name.clone(),
                    detail,
                })?;
            }
        }
        // The path of the key that failed goes into the message (`email.smtp.security: unknown
        // variant …, expected one of …`).
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|e| {
                ConfigError::Invalid {
                    path: origin.clone(),
                    detail: format!("{}: {}", e.path(), e.inner().message()),
                }
            })?;
        config.validate().map_err(|e| ConfigError::Invalid {
            path: origin,
            detail: e.0,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), Invalid> {
        self.not_me.check()?;
        self.store.check()?;
        if self.cluster.lease < Duration::from_secs(1) {
            return Err(Invalid("cluster.lease: at least 1s".into()));
        }
        let mut names = std::collections::HashSet::new();
        let mut hook_paths = std::collections::HashSet::new();
        for (i, org) in self.orgs.iter().enumerate() {
            if org.name.trim().is_empty() {
                return Err(Invalid(format!("orgs[{i}].name: must not be empty")));
            }
            if !names.insert(org.name.as_str()) {
                return Err(Invalid(format!(
                    "orgs[{i}].name: {:?} is used twice",
                    org.name
                )));
            }
            if !(org.url.starts_with("https://") || org.url.starts_with("http://")) {
                return Err(Invalid(format!(
                    "orgs[{i}].url: expected https://<your org>.okta.com, got {:?}",
                    org.url
                )));
            }
            check_url(
                &format!("orgs[{i}].url"),
                &org.url,
                !org.danger_plaintext_credentials,
            )?;
            for (what, poll) in [
                ("system_log", &org.system_log),
                ("events_api", &org.events_api),
            ] {
                if poll.interval.is_zero() {
                    return Err(Invalid(format!(
                        "orgs[{i}].{what}.interval: must be more than 0s"
                    )));
                }
            }
            let credentials = [
                org.token_env.is_some(),
                org.token_file.is_some(),
                org.oauth.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if credentials > 1 {
                return Err(Invalid(format!(
                    "orgs[{i}]: set one of token_env, token_file and oauth"
                )));
            }
            if let Some(h) = &org.hook {
                if !h.path.starts_with('/') {
                    return Err(Invalid(format!(
                        "orgs[{i}].hook.path: must start with '/', got {:?}",
                        h.path
                    )));
                }
                if h.secret_env.is_none() == h.secret_file.is_none() {
                    return Err(Invalid(format!(
                        "orgs[{i}].hook: set one of secret_env and secret_file"
                    )));
                }
                hook_path(&h.path).map_err(|e| format!("orgs[{i}].hook.path: {e}"))?;
                if !hook_paths.insert(h.path.as_str()) {
                    return Err(Invalid(format!(
                        "orgs[{i}].hook.path: {:?} is already another org's hook path",
                        h.path
                    )));
                }
                if axum::http::HeaderName::from_bytes(h.auth_header.as_bytes()).is_err() {
                    return Err(Invalid(format!(
                        "orgs[{i}].hook.auth_header: {:?} is not a header name",
                        h.auth_header
                    )));
                }
            }
        }
        if self.hooks.header_timeout.is_zero() || self.hooks.header_timeout > MAX_HEADER_TIMEOUT {
            return Err("hooks.header_timeout: must be between 1ms and 60s".into());
        }
        if !(1..=65_536).contains(&self.hooks.max_connections) {
            return Err(Invalid(format!(
                "hooks.max_connections: {} is not between 1 and 65536",
                self.hooks.max_connections
            )));
        }
        if !(1024..=64 << 20).contains(&self.hooks.max_body_bytes) {
            return Err(Invalid(format!(
                "hooks.max_body_bytes: {} is not between 1024 and {}",
                self.hooks.max_body_bytes,
                64 << 20
            )));
        }
        if let Some(obs) = self.observability.listen
            && obs.port() != 0
            && obs == self.hooks.listen
            && self.orgs.iter().any(|o| o.hook.is_some())
        {
            return Err(Invalid(format!(
                "observability.listen: {obs} is also hooks.listen; give each its own address"
            )));
        }
        if let Some(d) = self.observability.lag_alarm
            && (d.is_zero() || d > MAX_WINDOW)
        {
            return Err("observability.lag_alarm: must be between 1s and 30d".into());
        }
        webhook_secret(
            "observability.lag_alarm_webhook",
            self.observability.lag_alarm_webhook.as_ref(),
            self.observability.lag_alarm_webhook_env.as_ref(),
            self.observability.lag_alarm_webhook_file.as_ref(),
        )?;
        webhook_secret(
            "email.security_webhook",
            self.email.security_webhook.as_ref(),
            self.email.security_webhook_env.as_ref(),
            self.email.security_webhook_file.as_ref(),
        )?;
        let mut sink_names = std::collections::HashSet::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            if !sink_names.insert(sink.name.as_str()) {
                return Err(Invalid(format!(
                    "sinks[{i}].name: {:?} is used twice",
                    sink.name
                )));
            }
            sink.check(i)?;
        }
        if self.delivery.max_attempts == 0 {
            return Err("delivery.max_attempts: must be at least 1".into());
        }
        self.detections.check()?;
        match self.email.transport {
            EmailTransport::Files | EmailTransport::DryRun => {}
            EmailTransport::Smtp => {
                let smtp = self
                    .email
                    .smtp
                    .as_ref()
                    .ok_or("email.smtp: required when email.transport = \"smtp\"")?;
                if smtp.security == SmtpSecurity::None
                    && smtp.username.is_some()
                    && !crate::http::client::is_loopback_host(&smtp.host)
                    && !smtp.danger_plaintext_credentials
                {
                    return Err(Invalid(format!(
                        "email.smtp: security = \"none\" would send the password to {} in clear text; use starttls or implicit (or a relay on this machine)",
                        smtp.host
                    )));
                }
                if !smtp.rate.is_finite() || !(0.0..=MAX_RATE).contains(&smtp.rate) {
                    return Err(Invalid(format!(
                        "email.smtp.rate: {} is not between 0 (no limit) and {MAX_RATE} messages per second",
                        smtp.rate
                    )));
                }
                if smtp.rate > 0.0 && smtp.rate < MIN_RATE {
                    return Err(Invalid(format!(
                        "email.smtp.rate: {} messages per second is less than one a day; 0 means no limit",
                        smtp.rate
                    )));
                }
                if smtp.timeout.is_zero() {
                    return Err("email.smtp.timeout: must be more than 0s".into());
                }
            }
        }
        if !crate::email::builtin::LANGUAGES.contains(&self.email.language.as_str()) {
            return Err(Invalid(format!(
                "email.language: {:?}; built-in languages are {:?}",
                self.email.language,
                crate::email::builtin::LANGUAGES
            )));
        }
        if !(1..=MAX_EMAIL_CONCURRENCY).contains(&self.email.concurrency) {
            return Err(Invalid(format!(
                "email.concurrency: {} is not between 1 and {MAX_EMAIL_CONCURRENCY}",
                self.email.concurrency
            )));
        }
        for (what, d) in [
            ("email.coalesce", self.email.coalesce),
            (
                "email.previous_address_window",
                self.email.previous_address_window,
            ),
            ("email.lookup_cache", self.email.lookup_cache),
        ] {
            if d > MAX_WINDOW {
                return Err(Invalid(format!("{what}: at most 30d")));
            }
        }
        Ok(())
    }
}

/// The longest a client may take to send its headers.
const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// Emails in flight at once, at most.
const MAX_EMAIL_CONCURRENCY: u32 = 256;
/// SMTP messages per second: the limit's bounds (below one a day is a typo, not a policy).
const MAX_RATE: f64 = 100_000.0;
const MIN_RATE: f64 = 1.0 / 86_400.0;
/// The longest window a setting may take.
const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// An `http(s)://host…` URL; with `credentials`, `http://` only to this machine.
pub fn check_url(what: &str, url: &str, credentials: bool) -> Result<(), Invalid> {
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| Invalid(format!("{what}: {url:?} is not an http(s) URL")))?;
    if credentials && crate::http::client::is_cleartext_remote(&parsed) {
        return Err(Invalid(format!(
            "{what}: {url:?} would send credentials in clear text; use https:// (plain http:// is accepted only to this machine, or with danger_plaintext_credentials = true)"
        )));
    }
    Ok(())
}

/// A hook path axum can route, and nothing more: `/` then letters, digits and `-._~/`, no empty
/// or dot-only segment (no wildcard, no capture, nothing a proxy would rewrite).
fn hook_path(path: &str) -> Result<(), Invalid> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Invalid(format!("must start with '/', got {path:?}")));
    };
    let ok = rest.len() <= 200
        && rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "{path:?}: use segments of letters, digits and - . _ ~ separated by single '/' (like /okta/acme)"
        )))
    }
}

/// A chat webhook's URL: a secret, so from the environment or a file, never literal.
fn webhook_secret(
    what: &str,
    literal: Option<&toml::Value>,
    env: Option<&String>,
    file: Option<&PathBuf>,
) -> Result<(), Invalid> {
    if literal.is_some() {
        return Err(Invalid(format!(
            "{what}: a webhook URL carries the channel's token, so it is never written in the configuration: put it in an environment variable ({what}_env) or a file ({what}_file)"
        )));
    }
    if env.is_some() && file.is_some() {
        return Err(Invalid(format!(
            "{what}: set one of {what}_env and {what}_file"
        )));
    }
    Ok(())
}

/// Reads a secret from the environment variable or file a setting names.
pub fn read_secret(
    what: &str,
    env_name: Option<&str>,
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    let value = match (env_name, file) {
        (Some(name), _) => env(name).ok_or_else(|| {
            ConfigError::Secret(format!(
                "{what}: the environment variable {name} is not set"
            ))
        })?,
        (None, Some(path)) => {
            warn_if_readable_by_others(what, path);
            std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Secret(format!("{what}: cannot read {}: {e}", path.display()))
            })?
        }
        (None, None) => {
            return Err(ConfigError::Secret(format!("{what}: no secret configured")));
        }
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(ConfigError::Secret(format!("{what}: the secret is empty")));
    }
    Ok(Secret::new(value))
}

/// A secret file others can read is worth a warning (not a refusal: orchestrators mount secrets
/// 0644 by default, inside a container nobody else shares).
fn warn_if_readable_by_others(what: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            secret = what,
            file = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "a secret file is readable by other users; chmod 600 it"
        );
    }
}

/// Sets `a__b__0__c` (case-insensitive steps; numbers index arrays) to `raw`, read as a TOML
/// value when it is one (`true`, `42`, `["a"]`) and as a string otherwise.
fn set_path(root: &mut toml::Table, key: &str, raw: &str) -> Result<(), String> {
    let steps: Vec<String> = key.split("__").map(str::to_lowercase).collect();
    if steps.iter().any(String::is_empty) {
        return Err("empty step in the key".into());
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let mut node = root;
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        let next_is_index = steps.get(i + 1).is_some_and(|s| s.parse::<usize>().is_ok());
        if last {
            node.insert(step.clone(), value);
            return Ok(());
        }
        let entry = node.entry(step.clone()).or_insert_with(|| {
            if next_is_index {
                toml::Value::Array(Vec::new())
            } else {
                toml::Value::Table(toml::Table::new())
            }
        });
        node = match entry {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                let index: usize = steps[i + 1]
                    .parse()
                    .map_err(|_| format!("{step} is a list: the next step must be an index"))?;
                while items.len() <= index {
                    items.push(toml::Value::Table(toml::Table::new()));
                }
                match &mut items[index] {
                    toml::Value::Table(t) => {
                        if i + 2 == steps.len() {
                            return Err(format!("{step}.{index}: a list item needs a key"));
                        }
                        // Skip the index step.
                        return set_path(t, &steps[i + 2..].join("__"), raw);
                    }
                    _ => return Err(format!("{step}.{index} is not a table")),
                }
            }
            _ => return Err(format!("{step} is not a table")),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("fw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        Config::load(
            Some(&path),
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn every_key_can_come_from_the_environment() {
        let c = load(
            "[[orgs]]\nname = \"acme\"\nurl = \"https://acme.okta.com\"\n",
            &[
                ("FACTORWATCH__STORE__PATH", "/var/lib/fw.db"),
                ("FACTORWATCH__ORGS__0__SYSTEM_LOG__INTERVAL", "30s"),
                ("FACTORWATCH__ORGS__1__NAME", "beta"),
                ("FACTORWATCH__ORGS__1__URL", "https://beta.okta.com"),
                ("FACTORWATCH__EMAIL__SECOND_EMAIL", "true"),
                ("FACTORWATCH__DELIVERY__MAX_ATTEMPTS", "3"),
                ("OTHER", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(c.store.path, PathBuf::from("/var/lib/fw.db"));
        assert_eq!(c.orgs[0].system_log.interval, Duration::from_secs(30));
        assert_eq!(c.orgs[1].name, "beta");
        assert!(c.email.second_email);
        assert_eq!(c.delivery.max_attempts, 3);
    }

    #[test]
    fn mistakes_are_named_precisely() {
        let e = load("[[orgs]]\nname = \"a\"\nurl = \"acme.okta.com\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("orgs[0].url"), "{e}");
        let e = load("[store]\npaht = \"x\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("paht"), "{e}");
        let e = load(
            "[[orgs]]\nname = \"a\"\nurl = \"https://a\"\ntoken = \"00abc\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("token"),
            "a token in the file is refused: {e}"
        );
        let e = load(
            "[[orgs]]\nname = \"a\"\nurl = \"https://a\"\n[orgs.system_log]\nsince = \"200d\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("90-day"), "{e}");
        let e = load(
            "[[orgs]]\nname = \"a\"\nurl = \"https://a\"\n[orgs.system_log]\ninterval = \"soon\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("soon"), "{e}");
    }

    #[test]
    fn sinks_are_typed_validated_and_default_to_one_file() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.sinks.len(), 1);
        assert_eq!(c.sinks[0].kind.name(), "file");
        let c = load(
            "[[sinks]]\nname = \"splunk\"\ntype = \"splunk_hec\"\nurl = \"https://s:8088\"\ntoken_env = \"HEC\"\nactions = [\"enrolled\", \"reset_all\"]\n\n[[sinks]]\nname = \"qradar\"\ntype = \"syslog\"\naddress = \"q:6514\"\ntransport = \"tls\"\nformat = \"leef\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.sinks.len(), 2);
        assert_eq!(c.sinks[1].format.as_ref().map(|f| f.name()), Some("leef"));
        for (bad, why) in [
            (
                "[[sinks]]\nname = \"x\"\ntype = \"splunk_hec\"\ntoken_env = \"T\"\n",
                "url is required",
            ),
            (
                "[[sinks]]\nname = \"x\"\ntype = \"syslog\"\naddress = \"a:1\"\ntransport = \"quic\"\n",
                "transport",
            ),
            (
                "[[sinks]]\nname = \"x\"\ntype = \"file\"\npath = \"p\"\nformat = \"xml\"\n",
                "unknown format",
            ),
            (
                "[[sinks]]\nname = \"x\"\ntype = \"file\"\npath = \"p\"\nactions = [\"deleted\"]\n",
                "unknown action",
            ),
            ("[[sinks]]\nname = \"x\"\ntype = \"kafka\"\n", "kafka"),
        ] {
            let e = load(bad, &[]).unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn secrets_come_only_from_env_or_files_and_are_never_shown() {
        let env = |name: &str| (name == "TOKEN").then(|| "00QCjAl4MlV".to_owned());
        let s = read_secret("orgs[0]", Some("TOKEN"), None, &env).unwrap();
        assert_eq!(s.expose(), "00QCjAl4MlV");
        assert!(!format!("{s:?}").contains("00QC"));
        let e = read_secret("orgs[0]", Some("MISSING"), None, &env).unwrap_err();
        assert!(e.to_string().contains("MISSING"));
    }
}
