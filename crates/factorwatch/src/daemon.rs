//! The daemon, assembled from its configuration: per Okta org, its pollers and its Event Hook
//! route; one outbox worker per destination; all sharing one store. `run` and `demo` both start
//! it here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::info;

use crate::classify::{self, Classifier};
use crate::config::{
    Config, ConfigError, parse_actions, read_secret, since_time,
};
use crate::email::security_copy::SecurityCopy;
use crate::email::templates::Templates;
use crate::email::transport::{Security, SmtpSettings, Transport};
use crate::email::{EmailDestination, EmailSettings};
use crate::enrich::Enricher;
use crate::okta::client::auth::{AuthError, Credentials, ServiceApp};
use crate::okta::client::{OktaClient, RetryPolicy};
use crate::pipeline::ingest::Ingest;
use crate::pipeline::route::Routing;
use crate::pipeline::worker::{self, WorkerPolicy};
use crate::record::format_published;
use crate::sources::hook::{self, HookConfig};
use crate::sources::poller::{self, Ended, Poller};
use crate::store::sqlite::SqliteStore;
use crate::store::{SourceKind, Store, StoreError};

pub const EMAIL: &str = "email";
/// How long a stop waits for work in progress.
pub const STOP_WITHIN: Duration = Duration::from_secs(10);
/// The security team's email copy and chat channel, as the outbox names them.
pub const SECURITY_EMAIL: &str = "security:email";
pub const SECURITY_CHAT: &str = "security:chat";

/// The security team's destinations `config` asks for.
pub fn security_destinations(config: &Config) -> Vec<String> {
    let mut d = Vec::new();
    if config.email.enabled && config.email.security_copy.is_some() {
        d.push(SECURITY_EMAIL.to_owned());
    }
    if config.email.security_webhook_env.is_some() || config.email.security_webhook_file.is_some() {
        d.push(SECURITY_CHAT.to_owned());
    }
    d
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("org {org}: {source}")]
    Auth { org: String, source: AuthError },
    #[error("org {org}: {detail}")]
    Okta { org: String, detail: String },
    /// A stored cursor leads somewhere other than the org (its `url` changed, or the store was
    /// tampered with): polling it would send the credentials there.
    #[error(
        "org {org}: the stored {source_name} cursor is not on the org's url ({detail}); if the org's url changed on purpose, reset it with `factorwatch cursor reset --org {org} --source {source_name}` (polling then starts again from `since`; changes already stored are not repeated)"
    )]
    ForeignCursor {
        org: String,
        source_name: &'static str,
        detail: String,
    },
    #[error("cannot listen for Event Hooks on {addr}: {detail}")]
    Listen { addr: SocketAddr, detail: String },
    #[error("sink {name}: {detail}")]
    Sink { name: String, detail: String },
    #[error("cannot prepare {path}: {detail}")]
    Io { path: String, detail: String },
}

pub struct Daemon {
    pub store: SqliteStore,
    /// Where the Event Hook receiver listens, if any org has a hook.
    pub hook_addr: Option<SocketAddr>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served, if configured.
    pub metrics_addr: Option<SocketAddr>,
    pub siem_file: Option<PathBuf>,
    pub mail_dir: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The pollers, apart: with `once` they end by themselves when caught up.
    pollers: Vec<(String, JoinHandle<Ended>)>,
    /// Every outbox destination (SIEM sinks, email).
    destinations: Vec<String>,
}

/// The configured way emails leave.
pub fn email_transport(
    c: &crate::config::EmailConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Transport, StartError> {
    let io = |path: &std::path::Path, e: std::io::Error| StartError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    match c.transport.as_str() {
        "dry_run" => Ok(Transport::DryRun),
        "smtp" => {
            let s = c.smtp.as_ref().ok_or_else(|| ConfigError::Invalid {
                path: "email.smtp".into(),
                detail: "required when email.transport = \"smtp\"".into(),
            })?;
            let security = match s.security.as_str() {
                "implicit" => Security::Implicit,
                "none" => Security::None,
                _ => Security::StartTls,
            };
            let credentials = match &s.username {
                Some(user) => Some((
                    user.clone(),
                    read_secret(
                        "email.smtp password",
                        s.password_env.as_deref(),
                        s.password_file.as_deref(),
                        env,
                    )?,
                )),
                None => None,
            };
            let ca_pem = s
                .ca_file
                .as_ref()
                .map(|p| std::fs::read(p).map_err(|e| io(p, e)))
                .transpose()?;
            Transport::smtp(SmtpSettings {
                host: s.host.clone(),
                port: s.port.unwrap_or(match security {
                    Security::StartTls => 587,
                    Security::Implicit => 465,
                    Security::None => 25,
                }),
                security,
                credentials,
                ca_pem,
                timeout: s.timeout,
                pool_size: s.pool_size,
                rate: s.rate,
            })
            .map_err(|detail| StartError::Sink {
                name: "email".into(),
                detail,
            })
        }
        _ => Transport::files(c.dir.clone()).map_err(|e| io(&c.dir, e)),
    }
}

/// The security team's chat webhook URL, if configured (a secret, from the environment or a file).
pub fn security_webhook(
    config: &Config,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<crate::secret::Secret>, ConfigError> {
    let e = &config.email;
    if e.security_webhook_env.is_none() && e.security_webhook_file.is_none() {
        return Ok(None);
    }
    chat_url(
        "email.security_webhook",
        e.security_webhook_env.as_deref(),
        e.security_webhook_file.as_deref(),
        env,
    )
    .map(Some)
}

/// The lag alarm's chat webhook URL, if configured.
pub fn lag_alarm_webhook(
    config: &Config,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<crate::secret::Secret>, ConfigError> {
    let o = &config.observability;
    if o.lag_alarm_webhook_env.is_none() && o.lag_alarm_webhook_file.is_none() {
        return Ok(None);
    }
    chat_url(
        "observability.lag_alarm_webhook",
        o.lag_alarm_webhook_env.as_deref(),
        o.lag_alarm_webhook_file.as_deref(),
        env,
    )
    .map(Some)
}

/// A chat webhook URL from its secret: https (plain http only to this machine).
fn chat_url(
    what: &str,
    env_name: Option<&str>,
    file: Option<&std::path::Path>,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<crate::secret::Secret, ConfigError> {
    let url = read_secret(what, env_name, file, env)?;
    let ok = reqwest::Url::parse(url.expose()).is_ok_and(|u| {
        matches!(u.scheme(), "https" | "http") && !crate::http::client::is_cleartext_remote(&u)
    });
    if ok {
        Ok(url)
    } else {
        // The value is a secret: say what is wrong without it.
        Err(ConfigError::Secret(format!(
            "{what}: the URL is not https:// (plain http:// is accepted only to this machine)"
        )))
    }
}

/// The Okta client for an org, with the credentials its configuration names (an API token, or
/// an OAuth service app).
pub fn okta_client(
    org: &crate::config::OrgConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    policy: RetryPolicy,
) -> Result<OktaClient, StartError> {
    okta_client_on(crate::okta::client::http_client(), org, env, policy)
}

/// [`okta_client`] on a shared HTTP client.
fn okta_client_on(
    http: reqwest::Client,
    org: &crate::config::OrgConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    policy: RetryPolicy,
) -> Result<OktaClient, StartError> {
    let what = format!("orgs ({})", org.name);
    let credentials = match &org.oauth {
        Some(o) => {
            let key = read_secret(
                &format!("{what}.oauth.private_key_file"),
                None,
                Some(&o.private_key_file),
                env,
            )?;
            Credentials::oauth(
                ServiceApp {
                    client_id: o.client_id.clone(),
                    private_key: key,
                    key_id: o.key_id.clone(),
                    scopes: o.scopes.clone(),
                },
                format!("{}/oauth2/v1/token", org.url.trim_end_matches('/')),
            )
            .map_err(|source| StartError::Auth {
                org: org.name.clone(),
                source,
            })?
        }
        None => {
            let env_name = match (&org.token_env, &org.token_file) {
                (None, None) => Some("OKTA_API_TOKEN"),
                (name, _) => name.as_deref(),
            };
            Credentials::Ssws(read_secret(
                &format!("{what} API token"),
                env_name,
                org.token_file.as_deref(),
                env,
            )?)
        }
    };
    OktaClient::with_http(http, &org.url, credentials, policy)
        .map(|c| c.named(&org.name))
        .map_err(|e| StartError::Okta {
            org: org.name.clone(),
            detail: e.to_string(),
        })
}

/// `/metrics` (Prometheus text), `/healthz` (the process answers), `/readyz` (the store answers).
fn observability_routes(
    store: SqliteStore,
    lag_alarm: Option<std::time::Duration>,
) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    let threshold = lag_alarm.and_then(|d| chrono::Duration::from_std(d).ok());
    let metrics_store = store.clone();
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let store = metrics_store.clone();
                async move {
                    use crate::store::Store;
                    match store.stats().await {
                        Ok(stats) => (
                            StatusCode::OK,
                            [("content-type", "text/plain; version=0.0.4")],
                            crate::status::prometheus(&stats, chrono::Utc::now(), threshold)
                                + &crate::telemetry::render(),
                        ),
                        Err(e) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [("content-type", "text/plain")],
                            format!("the store does not answer: {e}\n"),
                        ),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let store = store.clone();
                async move {
                    use crate::store::Store;
                    match store.stats().await {
                        Ok(_) => (StatusCode::OK, "ready\n".to_owned()),
                        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
                    }
                }
            }),
        )
}

/// How changes are classified and routed under `config`: every sink with its action filter, and
/// email when on. `run` and `replay` share it.
pub fn ingest_for(config: &Config) -> Ingest {
    let siem = config
        .sinks
        .iter()
        .map(|sink| {
            // Validated when the configuration was loaded.
            let actions = sink.actions.as_deref().and_then(|l| parse_actions(l).ok());
            (crate::sinks::destination_name(&sink.name), actions)
        })
        .collect();
    Ingest {
        classifier: Classifier::new(classify::Config::default()),
        routing: Routing {
            siem,
            email: config.email.enabled.then(|| EMAIL.to_owned()),
            notify_third_party: config.email.notify_third_party,
            email_actions: config
                .email
                .actions
                .as_deref()
                .and_then(|l| parse_actions(l).ok()),
            security: security_destinations(config),
        },
    }
}

impl Daemon {
    /// Starts everything; `env` reads environment variables (secrets).
    pub async fn start(
        config: &Config,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Daemon, StartError> {
        Daemon::launch(config, env, false).await
    }

    /// Starts everything with pollers that stop once caught up; see [`Daemon::finish`].
    pub async fn start_once(
        config: &Config,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Daemon, StartError> {
        Daemon::launch(config, env, true).await
    }

    async fn launch(
        config: &Config,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
        once: bool,
    ) -> Result<Daemon, StartError> {
        crate::telemetry::install();
        let store = SqliteStore::open(&config.store.path).await?;
        let (shutdown, watcher) = watch::channel(false);
        let stored = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let mut pollers = Vec::new();
        let mut destinations: Vec<String> = config
            .sinks
            .iter()
            .map(|s| crate::sinks::destination_name(&s.name))
            .collect();
        let mut sinks = Vec::new();
        for sink in &config.sinks {
            let built = crate::sinks::build(sink, env).map_err(|detail| StartError::Sink {
                name: sink.name.clone(),
                detail,
            })?;
            sinks.push((built, sink.max_attempts));
        }
        let ingest = Arc::new(ingest_for(config));
        let mut enrichers = HashMap::new();
        let mut hook_routes = axum::Router::new();
        let mut any_hook = false;
        let now = chrono::Utc::now();
        let http = crate::okta::client::http_client();
        for (i, org) in config.orgs.iter().enumerate() {
            let what = format!("orgs[{i}] ({})", org.name);
            let client = Arc::new(okta_client_on(
                http.clone(),
                org,
                env,
                RetryPolicy::default(),
            )?);
            enrichers.insert(
                org.name.clone(),
                Arc::new(Enricher::new(client.clone(), config.email.lookup_cache)),
            );
            for (source, poll, default_types, start) in [
                (
                    SourceKind::SystemLog,
                    &org.system_log,
                    crate::okta::catalog::polled as fn() -> Vec<String>,
                    poller::system_log_start as fn(&str, &[String]) -> String,
                ),
                (
                    SourceKind::EventsApi,
                    &org.events_api,
                    crate::okta::catalog::legacy_polled,
                    poller::events_api_start,
                ),
            ] {
                if !poll.enabled {
                    continue;
                }
                let since =
                    since_time(&poll.since, now).map_err(|detail| ConfigError::Invalid {
                        path: format!("{what}.{}", source.as_str()),
                        detail,
                    })?;
                if let Some(cursor) = store.cursor(&org.name, source).await?
                    && let Err(e) = client.check_origin(&cursor)
                {
                    return Err(StartError::ForeignCursor {
                        org: org.name.clone(),
                        source_name: source.as_str(),
                        detail: e.to_string(),
                    });
                }
                let types = poll.types.clone().unwrap_or_else(default_types);
                let p = Poller {
                    org: org.name.clone(),
                    source,
                    client: client.clone(),
                    store: store.clone(),
                    ingest: ingest.clone(),
                    start: start(&format_published(&since), &types),
                    interval: poll.interval,
                    stored: stored.clone(),
                    once,
                };
                info!(org = %org.name, source = source.as_str(), "polling");
                pollers.push((
                    format!("{} {}", org.name, source.as_str()),
                    tokio::spawn(p.run(watcher.clone())),
                ));
            }
            if let Some(h) = &org.hook {
                let secret = read_secret(
                    &format!("{what}.hook secret"),
                    h.secret_env.as_deref(),
                    h.secret_file.as_deref(),
                    env,
                )?;
                hook_routes = hook_routes.merge(hook::router(
                    &h.path,
                    HookConfig {
                        org: org.name.clone(),
                        auth_header: h.auth_header.to_lowercase(),
                        secret,
                        max_body: config.hooks.max_body_bytes,
                    },
                    store.clone(),
                    ingest.clone(),
                    stored.clone(),
                ));
                any_hook = true;
            }
        }

        let mut hook_addr = None;
        if any_hook {
            let addr = config.hooks.listen;
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| StartError::Listen {
                        addr,
                        detail: e.to_string(),
                    })?;
            let bound = listener.local_addr().unwrap_or(addr);
            hook_addr = Some(bound);
            info!(%bound, "receiving Event Hooks");
            tasks.push(tokio::spawn(crate::http::server::serve(
                listener,
                hook_routes,
                crate::http::server::Limits {
                    header_timeout: config.hooks.header_timeout,
                    max_connections: config.hooks.max_connections,
                    ..crate::http::server::Limits::default()
                },
                watcher.clone(),
            )));
        }

        let policy = WorkerPolicy {
            max_attempts: config.delivery.max_attempts,
            ..WorkerPolicy::default()
        };
        for (sink, max_attempts) in sinks {
            let sink = Arc::new(sink);
            let probe = sink.clone();
            tokio::spawn(async move {
                use crate::pipeline::worker::Destination;
                match probe.healthcheck().await {
                    Ok(()) => info!(sink = probe.name(), "SIEM sink reachable"),
                    Err(e) => {
                        tracing::warn!(sink = probe.name(), error = %e, "SIEM sink not reachable; deliveries wait in the outbox")
                    }
                }
            });
            let policy = WorkerPolicy {
                max_attempts: max_attempts.unwrap_or(policy.max_attempts),
                ..policy
            };
            tasks.push(tokio::spawn(worker::run(
                store.clone(),
                sink,
                policy,
                stored.clone(),
                watcher.clone(),
            )));
        }
        let siem_file = config
            .sinks
            .iter()
            .find(|s| s.kind == crate::config::SinkType::File)
            .and_then(|s| s.path.as_deref())
            .filter(|p| *p != "-")
            .map(PathBuf::from);
        let mut mail_dir = None;
        if config.email.enabled {
            let settings = EmailSettings {
                from: config
                    .email
                    .from
                    .parse()
                    .map_err(|e| ConfigError::Invalid {
                        path: "email.from".into(),
                        detail: format!("{e}"),
                    })?,
                second_email: config.email.second_email,
                help: config.email.help.clone(),
                suppress: config.email.suppress.clone(),
                hourly_cap: config.email.hourly_cap,
                concurrency: config.email.concurrency,
                coalesce: config.email.coalesce,
                skip_when_okta_notified: config.email.skip_when_okta_notified,
                previous_address_window: config.email.previous_address_window,
            };
            let transport = Arc::new(email_transport(&config.email, env)?);
            if let Some(soc) = &config.email.security_copy {
                let to = soc.parse().map_err(|e| ConfigError::Invalid {
                    path: "email.security_copy".into(),
                    detail: format!("{e}"),
                })?;
                destinations.push(SECURITY_EMAIL.to_owned());
                tasks.push(tokio::spawn(worker::run(
                    store.clone(),
                    Arc::new(SecurityCopy::new(
                        SECURITY_EMAIL,
                        settings.from.clone(),
                        to,
                        transport.clone(),
                    )),
                    policy,
                    stored.clone(),
                    watcher.clone(),
                )));
            }
            let templates = Templates::new(config.email.templates.clone(), &config.email.language);
            let dest = EmailDestination::new(
                EMAIL,
                store.clone(),
                settings,
                templates,
                enrichers,
                transport,
            );
            mail_dir = Some(config.email.dir.clone());
            destinations.push(EMAIL.to_owned());
            tasks.push(tokio::spawn(worker::run(
                store.clone(),
                Arc::new(dest),
                policy,
                stored.clone(),
                watcher.clone(),
            )));
        }
        if let Some(url) = security_webhook(config, env)? {
            destinations.push(SECURITY_CHAT.to_owned());
            tasks.push(tokio::spawn(worker::run(
                store.clone(),
                Arc::new(crate::chat::ChatDestination::new(SECURITY_CHAT, url)),
                policy,
                stored.clone(),
                watcher.clone(),
            )));
        }
        let mut metrics_addr = None;
        if let Some(addr) = config.observability.listen {
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| StartError::Listen {
                        addr,
                        detail: e.to_string(),
                    })?;
            metrics_addr = Some(listener.local_addr().unwrap_or(addr));
            let app = observability_routes(store.clone(), config.observability.lag_alarm);
            tasks.push(tokio::spawn(crate::http::server::serve(
                listener,
                app,
                crate::http::server::Limits::default(),
                watcher.clone(),
            )));
        }
        Ok(Daemon {
            store,
            metrics_addr,
            hook_addr,
            siem_file,
            mail_dir,
            shutdown,
            tasks,
            pollers,
            destinations,
        })
    }

    /// For a daemon started with [`Daemon::start_once`]: waits until every poller has caught up
    /// and no outbox row is due any more, then stops. Rows put off to later (a retry, an email
    /// waiting out its coalescing window), and rows for a destination that made no progress for
    /// `stall` (it is down), stay in the outbox for the next run; their count is returned. Fails
    /// if a poller could not finish (Okta refused or stayed unavailable) or the store failed.
    pub async fn finish(mut self, stall: Duration) -> Result<u64, String> {
        let mut failed = Vec::new();
        for (name, p) in std::mem::take(&mut self.pollers) {
            if let Ok(Ended::Failed(why)) = p.await {
                failed.push(format!("{name}: {why}"));
            }
        }
        let drained = self.drain(stall).await;
        self.stop().await;
        let waiting = drained.map_err(|e| e.to_string())?;
        if failed.is_empty() {
            Ok(waiting)
        } else {
            Err(format!("polling did not finish: {}", failed.join("; ")))
        }
    }

    /// Waits until no outbox row is due, or deliveries have not moved for `stall`; returns the
    /// rows still pending.
    async fn drain(&self, stall: Duration) -> Result<u64, StoreError> {
        let mut done = None;
        let mut moved = tokio::time::Instant::now();
        loop {
            let stats = self.store.stats().await?;
            let pending = stats.outbox.iter().map(|(_, _, p, _)| p).sum();
            let now_done: u64 = stats.outbox.iter().map(|(_, d, _, x)| d + x).sum();
            if done != Some(now_done) {
                done = Some(now_done);
                moved = tokio::time::Instant::now();
            }
            let now = chrono::Utc::now();
            let mut due = false;
            for d in &self.destinations {
                if !self.store.due(d, 1, now).await?.is_empty() {
                    due = true;
                    break;
                }
            }
            if !due {
                return Ok(pending);
            }
            if moved.elapsed() >= stall {
                tracing::warn!(
                    pending,
                    stalled_s = stall.as_secs(),
                    "deliveries made no progress (is a destination down?); they wait for the next run"
                );
                return Ok(pending);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks every task to finish what it is doing and waits for them — at most [`STOP_WITHIN`]:
    /// then what is still running (a delivery to a destination that does not answer, a client
    /// holding a connection) is cut off; a delivery cut off is made again at the next start.
    /// Closes the store.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let aborts: Vec<tokio::task::AbortHandle> = self
            .pollers
            .iter()
            .map(|(_, p)| p.abort_handle())
            .chain(self.tasks.iter().map(JoinHandle::abort_handle))
            .collect();
        let all = async {
            for (_, p) in self.pollers {
                let _ = p.await;
            }
            for t in self.tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(STOP_WITHIN, all).await.is_err() {
            tracing::warn!(
                "some work did not finish within {STOP_WITHIN:?} of the stop; cut off (it is redone at the next start)"
            );
            for a in aborts {
                a.abort();
            }
        }
        self.store.close().await;
    }
}
