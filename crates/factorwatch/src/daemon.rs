//! The daemon, assembled from its configuration: per Okta org, its pollers and its Event Hook
//! route; one outbox worker per destination (each SIEM sink, the user notices, the security team's
//! copies); the HTTP listeners; all sharing one store. `run` and `demo` both start it here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::classify::{self, Classifier};
use crate::config::{Config, ConfigError};
use crate::detect::PhoneKey;
use crate::email::security_copy::SecurityCopy;
use crate::email::templates::Templates;
use crate::email::transport::{Transport, TransportError};
use crate::email::{EmailDestination, EmailSettings};
use crate::enrich::Enricher;
use crate::okta::client::{OktaClient, OrgClientError, RetryPolicy};
use crate::pipeline::ingest::Ingest;
use crate::pipeline::route::Routing;
use crate::pipeline::worker::{self, Destination, Signals, WorkerPolicy};
use crate::sinks::SinkError;
use crate::sources::hook::{self, HookConfig};
use crate::sources::poller::{self, Ended, Poller};
use crate::store::{AnyStore, SourceKind, Store, StoreError};

pub const EMAIL: &str = "email";
/// The security team's email copy and chat channel, as the outbox names them.
pub const SECURITY_EMAIL: &str = "security:email";
pub const SECURITY_CHAT: &str = "security:chat";
/// How long a stop waits for work in progress.
pub const STOP_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Org(#[from] OrgClientError),
    #[error(transparent)]
    Okta(#[from] crate::okta::client::ClientError),
    #[error("cannot listen on {addr}: {detail}")]
    Listen { addr: SocketAddr, detail: String },
    #[error("sink {name}: {source}")]
    Sink { name: String, source: SinkError },
    #[error(transparent)]
    Email(#[from] TransportError),
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
}

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

/// The store's key for the generated phone-number hashing key.
const PHONE_KEY_SETTING: &str = "detections.phone_key";

/// The key phone numbers are hashed with in the detections' journal, when the detections are on:
/// the configured secret, else one made at random once and kept in the store (so that every
/// restart and every replica hashes alike).
pub async fn phone_key<S: Store>(
    config: &Config,
    store: &S,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<PhoneKey>, StartError> {
    let d = &config.detections;
    if !d.enabled {
        return Ok(None);
    }
    if d.phone_key_env.is_some() || d.phone_key_file.is_some() {
        let key = crate::config::read_secret(
            "detections.phone_key",
            d.phone_key_env.as_deref(),
            d.phone_key_file.as_deref(),
            env,
        )?;
        if key.expose().len() < 16 {
            return Err(StartError::Config(ConfigError::Secret(
                "detections.phone_key: the key must be at least 16 characters".into(),
            )));
        }
        return Ok(Some(PhoneKey::new(key.expose().as_bytes().to_vec())));
    }
    let fresh: String = {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let kept = store.setting_or_insert(PHONE_KEY_SETTING, &fresh).await?;
    Ok(Some(PhoneKey::new(kept.into_bytes())))
}

/// How changes are classified and routed under `config`: every sink with its action filter,
/// email when on, the security team when configured; `phone_key` when the detections are on.
/// `run`, `replay` and `backfill` share it.
pub fn ingest_for(config: &Config, phone_key: Option<PhoneKey>) -> Ingest {
    Ingest {
        detections: phone_key,
        classifier: Classifier::new(classify::Config::default()),
        routing: Routing {
            siem: config
                .sinks
                .iter()
                .map(|s| (s.destination(), s.actions.clone()))
                .collect(),
            email: config.email.enabled.then(|| EMAIL.to_owned()),
            notify_third_party: config.email.notify_third_party,
            email_actions: config.email.actions.clone(),
            security: security_destinations(config),
            email_after: config.email.coalesce,
        },
    }
}

pub struct Daemon {
    pub store: AnyStore,
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
    /// Every outbox destination.
    destinations: Vec<String>,
    /// The orgs whose detections run.
    detecting: Vec<String>,
    signals: Arc<Signals>,
    /// The "this wasn't me" links, when `[not_me]` is set up.
    links: Option<crate::report::Links>,
    /// On a shared store: what each org runs while this replica holds it.
    org_work: Vec<crate::cluster::OrgWork>,
    /// Whether orgs are leased (a shared store, not `once`).
    leased: bool,
}

/// Where findings go: every SIEM sink and the security team's destinations (findings never wait
/// for a user notice's coalescing).
pub fn finding_destinations(config: &Config) -> Vec<String> {
    config
        .sinks
        .iter()
        .map(|s| s.destination())
        .chain(security_destinations(config))
        .collect()
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
        let store = crate::store::open(&config.store).await?;
        let (shutdown, _) = watch::channel(false);
        let mut d = Daemon {
            store,
            hook_addr: None,
            metrics_addr: None,
            siem_file: siem_file(config),
            mail_dir: config.email.enabled.then(|| config.email.dir.clone()),
            shutdown,
            tasks: Vec::new(),
            pollers: Vec::new(),
            destinations: Vec::new(),
            detecting: Vec::new(),
            signals: Arc::default(),
            links: None,
            org_work: Vec::new(),
            leased: false,
        };
        d.leased = d.store.shared() && !once;
        if let Some(public_url) = &config.not_me.public_url {
            d.links = Some(crate::report::Links {
                keys: config.not_me.keys(env)?,
                public_url: public_url.clone(),
                valid_for: chrono::Duration::from_std(config.not_me.valid_for)
                    .unwrap_or(chrono::Duration::days(7)),
            });
        }
        let key = phone_key(config, &d.store, env).await?;
        let ingest = Arc::new(ingest_for(config, key));
        let (hooks, enrichers, clients) = d.start_orgs(config, env, &ingest, once).await?;
        if !once {
            d.tasks.push(tokio::spawn(crate::sources::idle::record(
                d.signals.idle_polls.clone(),
                d.store.clone(),
                crate::sources::idle::RECORD_EVERY,
                d.shutdown.subscribe(),
            )));
        }
        let policy = WorkerPolicy {
            max_attempts: config.delivery.max_attempts,
            ..WorkerPolicy::default()
        };
        for sink in &config.sinks {
            let built = crate::sinks::build(sink, env).map_err(|source| StartError::Sink {
                name: sink.name.clone(),
                source,
            })?;
            let built = Arc::new(built);
            let probe = built.clone();
            // Said once at start, in the log; `factorwatch check` says it on demand.
            tokio::spawn(async move {
                match probe.healthcheck().await {
                    Ok(_) => info!(sink = probe.name(), "SIEM sink reachable"),
                    Err(e) => {
                        tracing::warn!(sink = probe.name(), error = %e, "SIEM sink not reachable; deliveries wait in the outbox")
                    }
                }
            });
            let policy = WorkerPolicy {
                max_attempts: sink.max_attempts.unwrap_or(policy.max_attempts),
                ..policy
            };
            d.spawn_worker(built, policy);
        }
        let templates = Arc::new(Templates::new(
            config.email.templates.clone(),
            &config.email.language,
        ));
        let not_me = match &d.links {
            Some(links) => Some(d.start_not_me(
                config,
                links.clone(),
                &enrichers,
                clients,
                templates.clone(),
                policy,
            )?),
            None => None,
        };
        if config.email.enabled {
            d.start_email(config, env, enrichers, policy)?;
        }
        if config.detections.enabled {
            d.start_detections(config, once);
        }
        if d.leased {
            // Every org, even one with nothing to poll, is leased: its detections need an owner.
            for org in &config.orgs {
                d.work_for(&org.name);
            }
            let supervisor = crate::cluster::Supervisor {
                store: d.store.clone(),
                replica: d.store.replica().to_owned(),
                work: std::mem::take(&mut d.org_work),
                lease: config.cluster.lease,
            };
            info!(replica = %supervisor.replica, orgs = supervisor.work.len(), "sharing the orgs with the other replicas");
            d.tasks
                .push(tokio::spawn(supervisor.run(d.shutdown.subscribe())));
        }
        if let Some(url) = crate::chat::security_webhook(config, env)? {
            d.spawn_worker(
                Arc::new(crate::chat::ChatDestination::new(SECURITY_CHAT, url)),
                policy,
            );
        }
        let routes = match (hooks, not_me) {
            (Some(h), Some(n)) => Some(h.merge(n)),
            (h, n) => h.or(n),
        };
        if let Some(routes) = routes {
            let limits = crate::http::server::Limits {
                header_timeout: config.hooks.header_timeout,
                max_connections: config.hooks.max_connections,
                ..crate::http::server::Limits::default()
            };
            let addr = d.serve(config.hooks.listen, routes, limits).await?;
            info!(%addr, "receiving Event Hooks and serving the not-me page");
            d.hook_addr = Some(addr);
        }
        if let Some(listen) = config.observability.listen {
            let mut routes =
                crate::observability::routes(d.store.clone(), config.observability.lag_alarm);
            if let Some(page) = status_page(config, env, &d.store, templates)? {
                routes = routes.merge(crate::web::status::router(Arc::new(page)));
            }
            let limits = crate::http::server::Limits::default();
            d.metrics_addr = Some(d.serve(listen, routes, limits).await?);
        }
        Ok(d)
    }

    /// Per org: its client and enricher, its pollers (cursors checked to be on the org), and its
    /// hook route. Returns the hook routes (if any org has a hook) and the enrichers.
    async fn start_orgs(
        &mut self,
        config: &Config,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
        ingest: &Arc<Ingest>,
        once: bool,
    ) -> Result<OrgParts, StartError> {
        let http = if self.store.shared() {
            crate::okta::client::http_client_for(self.store.replica())?
        } else {
            crate::okta::client::http_client()?
        };
        let mut enrichers = HashMap::new();
        let mut clients = HashMap::new();
        let mut hooks: Option<axum::Router> = None;
        let now = chrono::Utc::now();
        // Caught-up pollers' small commits are stored together (one sync for several orgs);
        // not under leases (each commit proves its own) nor with `once`.
        let group = (!once && !self.store.shared() && !config.orgs.is_empty()).then(|| {
            let (group, task) = crate::sources::group::GroupCommit::start(
                self.store.clone(),
                crate::sources::group::GATHER,
            );
            self.tasks.push(task);
            group
        });
        for org in &config.orgs {
            let client = Arc::new(OktaClient::for_org(
                http.clone(),
                org,
                env,
                RetryPolicy::default(),
            )?);
            enrichers.insert(
                org.name.clone(),
                Arc::new(Enricher::new(client.clone(), config.email.lookup_cache)),
            );
            clients.insert(org.name.clone(), client.clone());
            let detections = config.detections.enabled;
            for (source, poll, default_types, start) in [
                (
                    SourceKind::SystemLog,
                    &org.system_log,
                    crate::okta::catalog::polled(detections),
                    poller::system_log_start as fn(&str, &[String]) -> String,
                ),
                (
                    SourceKind::EventsApi,
                    &org.events_api,
                    crate::okta::catalog::legacy_polled(),
                    poller::events_api_start,
                ),
            ] {
                if !poll.enabled {
                    continue;
                }
                if let Some(cursor) = self.store.cursor(&org.name, source).await?
                    && let Err(e) = client.check_origin(&cursor)
                {
                    return Err(StartError::ForeignCursor {
                        org: org.name.clone(),
                        source_name: source.as_str(),
                        detail: e.to_string(),
                    });
                }
                let types = poll.types.clone().unwrap_or(default_types);
                let since = crate::record::format_published(&poll.since.at(now));
                let p = Poller {
                    org: org.name.clone(),
                    source,
                    client: client.clone(),
                    store: self.store.clone(),
                    ingest: ingest.clone(),
                    start: start(&since, &types),
                    interval: poll.interval,
                    signals: self.signals.clone(),
                    once,
                    fence: None,
                    group: group.clone(),
                };
                if self.leased {
                    self.work_for(&org.name).pollers.push(p);
                    continue;
                }
                info!(org = %org.name, source = source.as_str(), "polling");
                self.pollers.push((
                    format!("{} {}", org.name, source.as_str()),
                    tokio::spawn(p.run(self.shutdown.subscribe())),
                ));
            }
            if let Some(h) = &org.hook {
                let secret = crate::config::read_secret(
                    &format!("orgs ({}).hook secret", org.name),
                    h.secret_env.as_deref(),
                    h.secret_file.as_deref(),
                    env,
                )?;
                let route = hook::router(
                    &h.path,
                    HookConfig {
                        org: org.name.clone(),
                        auth_header: h.auth_header.to_lowercase(),
                        secret,
                        max_body: config.hooks.max_body_bytes,
                    },
                    self.store.clone(),
                    ingest.clone(),
                    self.signals.clone(),
                );
                hooks = Some(hooks.unwrap_or_default().merge(route));
            }
        }
        Ok((hooks, enrichers, clients))
    }

    /// The not-me page's routes, and the worker that carries out reports' Okta steps.
    fn start_not_me(
        &mut self,
        config: &Config,
        links: crate::report::Links,
        enrichers: &HashMap<String, Arc<Enricher>>,
        clients: HashMap<String, Arc<OktaClient>>,
        templates: Arc<Templates>,
        policy: WorkerPolicy,
    ) -> Result<axum::Router, StartError> {
        let n = &config.not_me;
        let public_origin = reqwest::Url::parse(&links.public_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        if !n.actions.is_empty() {
            self.spawn_worker(
                Arc::new(crate::report::response::ResponseDestination::new(
                    self.store.clone(),
                    clients,
                )),
                policy,
            );
        }
        let minute = Duration::from_secs(60);
        let state = crate::web::not_me::NotMe {
            store: self.store.clone(),
            keys: links.keys,
            public_origin,
            orgs: enrichers.clone(),
            templates,
            default_language: config.email.language.clone(),
            help: config.email.help.clone(),
            actions: n.actions.clone(),
            destinations: finding_destinations(config),
            wait: n.wait,
            trust_forwarded_for: n.trust_forwarded_for,
            per_link: crate::web::limit::Limiter::new(n.requests_per_minute, minute, 100_000),
            per_client: crate::web::limit::Limiter::new(
                n.requests_per_minute.saturating_mul(3),
                minute,
                100_000,
            ),
            signals: self.signals.clone(),
        };
        Ok(crate::web::not_me::router(Arc::new(state)))
    }

    /// The work of `org` under its lease.
    fn work_for(&mut self, org: &str) -> &mut crate::cluster::OrgWork {
        if let Some(i) = self.org_work.iter().position(|w| w.org == org) {
            return &mut self.org_work[i];
        }
        self.org_work.push(crate::cluster::OrgWork {
            org: org.to_owned(),
            pollers: Vec::new(),
            detection: None,
        });
        let last = self.org_work.len() - 1;
        &mut self.org_work[last]
    }

    /// Per org, the detections' worker.
    fn start_detections(&mut self, config: &Config, once: bool) {
        let settings = config.detections.settings();
        let destinations = finding_destinations(config);
        for org in &config.orgs {
            let w = crate::pipeline::detection::DetectionWorker {
                org: org.name.clone(),
                store: self.store.clone(),
                settings: settings.clone(),
                destinations: destinations.clone(),
                signals: self.signals.clone(),
                idle: self
                    .leased
                    .then_some(crate::pipeline::detection::IDLE_SHARED),
                // `once` ends with every position stored (it waits on them).
                hold: (!once).then_some(crate::pipeline::detection::HOLD_AT_MOST),
            };
            self.detecting.push(org.name.clone());
            if self.leased {
                self.work_for(&org.name).detection = Some(w);
                continue;
            }
            self.tasks
                .push(tokio::spawn(w.run(self.shutdown.subscribe())));
        }
        if !self.leased && !config.orgs.is_empty() {
            self.tasks
                .push(tokio::spawn(crate::pipeline::detection::watch_journals(
                    self.store.clone(),
                    self.signals.clone(),
                    config.orgs.iter().map(|o| o.name.clone()).collect(),
                    crate::pipeline::detection::IDLE,
                    self.shutdown.subscribe(),
                )));
        }
    }

    /// The user notices and the security team's email copy, on one transport.
    fn start_email(
        &mut self,
        config: &Config,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
        enrichers: HashMap<String, Arc<Enricher>>,
        policy: WorkerPolicy,
    ) -> Result<(), StartError> {
        let e = &config.email;
        let settings = EmailSettings {
            from: e.from.clone(),
            second_email: e.second_email,
            help: e.help.clone(),
            suppress: e.suppress.clone(),
            hourly_cap: e.hourly_cap,
            concurrency: e.concurrency,
            coalesce: e.coalesce,
            skip_when_okta_notified: e.skip_when_okta_notified,
            previous_address_window: e.previous_address_window,
            detections: config.detections.enabled,
            links: self.links.clone(),
        };
        let transport = Arc::new(Transport::from_config(e, env)?);
        if let Some(to) = &e.security_copy {
            let copy = SecurityCopy::new(
                SECURITY_EMAIL,
                e.from.clone(),
                to.clone(),
                transport.clone(),
            );
            self.spawn_worker(Arc::new(copy), policy);
        }
        let notices = EmailDestination::new(
            EMAIL,
            self.store.clone(),
            settings,
            Templates::new(e.templates.clone(), &e.language),
            enrichers,
            transport,
        )
        .with_signals(self.signals.clone());
        self.spawn_worker(Arc::new(notices), policy);
        Ok(())
    }

    fn spawn_worker<D: Destination>(&mut self, destination: Arc<D>, policy: WorkerPolicy) {
        self.destinations.push(destination.name().to_owned());
        self.tasks.push(tokio::spawn(worker::run(
            self.store.clone(),
            destination,
            policy,
            self.signals.clone(),
            self.shutdown.subscribe(),
        )));
    }

    /// Serves `routes` on `addr` until the stop; returns the address bound.
    async fn serve(
        &mut self,
        addr: SocketAddr,
        routes: axum::Router,
        limits: crate::http::server::Limits,
    ) -> Result<SocketAddr, StartError> {
        let listener =
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| StartError::Listen {
                    addr,
                    detail: e.to_string(),
                })?;
        let bound = listener.local_addr().unwrap_or(addr);
        self.tasks.push(tokio::spawn(crate::http::server::serve(
            listener,
            routes,
            limits,
            self.shutdown.subscribe(),
        )));
        Ok(bound)
    }

    /// For a daemon started with [`Daemon::start_once`]: waits until every poller has caught up
    /// and no outbox row is due any more, then stops. Rows put off to later (a retry, an email
    /// waiting out its coalescing window), and rows for a destination that made no progress for
    /// `stall` (it is down), stay in the outbox for the next run; their count is returned. Fails
    /// if a poller could not finish (Okta refused or stayed unavailable) or the store failed.
    pub async fn finish(mut self, stall: Duration) -> Result<u64, FinishError> {
        let mut failed = Vec::new();
        for (name, p) in std::mem::take(&mut self.pollers) {
            if let Ok(Ended::Failed(why)) = p.await {
                failed.push(format!("{name}: {why}"));
            }
        }
        let drained = self.drain(stall).await;
        let waiting = match drained {
            Ok(()) => self.pending().await,
            Err(e) => Err(e),
        };
        self.stop().await;
        let waiting = waiting?;
        if failed.is_empty() {
            Ok(waiting)
        } else {
            Err(FinishError::Polling(failed.join("; ")))
        }
    }

    /// Waits until no outbox row is due, or the workers settled nothing for `stall`. Asks the
    /// store one indexed question per round; progress comes from the workers.
    async fn drain(&self, stall: Duration) -> Result<(), StoreError> {
        let progress = || {
            self.signals.settled()
                + self
                    .signals
                    .detected
                    .load(std::sync::atomic::Ordering::Relaxed)
        };
        let mut settled = progress();
        let mut moved = tokio::time::Instant::now();
        loop {
            if !self.detections_behind().await?
                && !self
                    .store
                    .any_due(&self.destinations, chrono::Utc::now())
                    .await?
            {
                return Ok(());
            }
            let now_settled = progress();
            if now_settled != settled {
                settled = now_settled;
                moved = tokio::time::Instant::now();
            }
            if moved.elapsed() >= stall {
                tracing::warn!(
                    stalled_s = stall.as_secs(),
                    "deliveries made no progress (is a destination down?); they wait for the next run"
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the detections of some org have journal entries still to read.
    async fn detections_behind(&self) -> Result<bool, StoreError> {
        for org in &self.detecting {
            let at = self.store.detection_cursor(org).await?;
            if !self.store.signals_after(org, at, 1).await?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Rows still pending in the outbox.
    async fn pending(&self) -> Result<u64, StoreError> {
        let stats = self.store.stats().await?;
        Ok(stats.outbox.iter().map(|(_, _, p, _)| p).sum())
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

/// Why `run --once` did not finish.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("polling did not finish: {0}")]
    Polling(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Per org: the hook routes (if any org has a hook), the enrichers and the clients.
type OrgParts = (
    Option<axum::Router>,
    HashMap<String, Arc<Enricher>>,
    HashMap<String, Arc<OktaClient>>,
);

/// The status page, when it may be served: with its token, or open on a loopback listener.
fn status_page(
    config: &Config,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    store: &AnyStore,
    templates: Arc<Templates>,
) -> Result<Option<crate::web::status::StatusPage<AnyStore>>, StartError> {
    let o = &config.observability;
    let token = if o.status_token_env.is_some() || o.status_token_file.is_some() {
        Some(crate::config::read_secret(
            "observability.status_token",
            o.status_token_env.as_deref(),
            o.status_token_file.as_deref(),
            env,
        )?)
    } else {
        None
    };
    let loopback = o.listen.is_some_and(|a| a.ip().is_loopback());
    if token.is_none() && !loopback {
        tracing::warn!(
            "the status page is off: observability.listen is not a loopback address and no observability.status_token_env/_file is set"
        );
        return Ok(None);
    }
    Ok(Some(crate::web::status::StatusPage {
        store: store.clone(),
        token,
        templates,
    }))
}

/// The SIEM file the first file sink writes (the demo shows it).
fn siem_file(config: &Config) -> Option<PathBuf> {
    config.sinks.iter().find_map(|s| match &s.kind {
        crate::sinks::SinkKind::File(f) if f.path != "-" => Some(PathBuf::from(&f.path)),
        _ => None,
    })
}
