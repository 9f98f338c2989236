//! The org and its HTTP side: Okta's API ([`okta_api`]: `/api/v1`, `/oauth2/v1/token`), the test
//! control API ([`control`]: `/sim`), and the background work Okta does on its own (hook
//! deliveries, [`hook_sender`]).

mod control;
pub mod generate;
mod hook_sender;
mod okta_api;
mod user_actions;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::sync::Notify;

use crate::directory::Directory;
use crate::error::OktaError;
use crate::faults::Faults;
use crate::hooks::delivery::{Record, Target};
use crate::hooks::registry::Registry;
use crate::logs::LogStore;
use crate::oauth::OAuth;
pub use crate::rate::RateLimits;
use crate::rate::Windows;

/// How the org is set up.
#[derive(Clone)]
pub struct Config {
    /// The SSWS API token clients may present.
    pub token: String,
    /// Where the org is reached, for links, `aud` and `htu` (`http://127.0.0.1:PORT`).
    pub base_url: String,
    /// Requests per minute per endpoint bucket.
    pub rate_limits: RateLimits,
    /// Seeds every random choice (faults, hook duplicates and reordering).
    pub seed: u64,
}

impl std::fmt::Debug for Config {
    // The token is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("rate_limits", &self.rate_limits)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// One simulated Okta org: all its state.
pub struct Org {
    config: Config,
    /// Added to the host clock: lets tests age tokens and windows without waiting.
    clock_offset_ms: AtomicI64,
    log: RwLock<LogStore>,
    directory: RwLock<Directory>,
    oauth: Mutex<OAuth>,
    hooks: Mutex<Registry>,
    faults: Mutex<Faults>,
    windows: Mutex<Windows>,
    rng: Mutex<StdRng>,
    requests: AtomicU64,
    http: reqwest::Client,
    /// Events waiting to be delivered to hooks.
    pending: Mutex<Vec<Pending>>,
    pending_added: Notify,
    deliveries: Mutex<Vec<Record>>,
    /// Every user-management call (`GET /sim/calls`).
    calls: Mutex<Vec<Value>>,
    /// Every System Log and Events API request: who (User-Agent), from when to when.
    polls: Mutex<Vec<Value>>,
    /// Users' risk levels (User Risk API).
    risk: Mutex<std::collections::HashMap<String, String>>,
    features: Features,
}

/// What the org is licensed for (`POST /sim/features`).
#[derive(Debug)]
pub struct Features {
    identity_threat_protection: std::sync::atomic::AtomicBool,
}

impl Features {
    pub fn identity_threat_protection(&self) -> bool {
        self.identity_threat_protection.load(Ordering::Relaxed)
    }
}

struct Pending {
    target: Target,
    uuid: String,
    text: Arc<str>,
}

/// A poisoned lock means a handler panicked mid-update; Okta's answer to that is a 500.
fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, OktaError> {
    m.lock().map_err(|_| OktaError::timeout())
}
fn read<T>(m: &RwLock<T>) -> Result<RwLockReadGuard<'_, T>, OktaError> {
    m.read().map_err(|_| OktaError::timeout())
}
fn write<T>(m: &RwLock<T>) -> Result<RwLockWriteGuard<'_, T>, OktaError> {
    m.write().map_err(|_| OktaError::timeout())
}

impl Org {
    pub fn new(config: Config) -> Arc<Org> {
        let seed = config.seed;
        Arc::new(Org {
            config,
            clock_offset_ms: AtomicI64::new(0),
            log: RwLock::new(LogStore::default()),
            directory: RwLock::new(Directory::default()),
            oauth: Mutex::new(OAuth::default()),
            hooks: Mutex::new(Registry::default()),
            faults: Mutex::new(Faults::default()),
            windows: Mutex::new(Windows::default()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            requests: AtomicU64::new(0),
            http: reqwest::Client::new(),
            pending: Mutex::new(Vec::new()),
            pending_added: Notify::new(),
            deliveries: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            polls: Mutex::new(Vec::new()),
            risk: Mutex::new(std::collections::HashMap::new()),
            features: Features {
                identity_threat_protection: std::sync::atomic::AtomicBool::new(true),
            },
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The org's clock: the host's, plus whatever `POST /sim/clock` added.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    pub fn advance_clock(&self, by: Duration) {
        self.clock_offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }

    /// Persists events now (see [`LogStore::persist`]) and queues the hook-eligible ones for the
    /// hooks subscribed to them. All or nothing: a bad event rejects the batch.
    pub fn persist(&self, events: Vec<Value>, late: bool) -> Result<usize, OktaError> {
        for (i, e) in events.iter().enumerate() {
            if !e.get("eventType").is_some_and(Value::is_string) {
                return Err(OktaError::validation(
                    "Api validation failed: events",
                    format!("events[{i}]: each event must be an object with an eventType string"),
                ));
            }
        }
        let now = self.now();
        let n = events.len();
        let hooks = lock(&self.hooks)?;
        let mut queued = Vec::new();
        {
            let mut log = write(&self.log)?;
            for (i, event) in events.into_iter().enumerate() {
                let stored = log.persist(event, now, late).map_err(|e| {
                    OktaError::validation(
                        "Api validation failed: events",
                        format!("events[{i}]: {e}"),
                    )
                })?;
                let subscribed: Vec<&crate::hooks::registry::Hook> = hooks
                    .list()
                    .iter()
                    .filter(|h| h.delivers(&stored.event_type))
                    .collect();
                if subscribed.is_empty() {
                    continue;
                }
                let text: Arc<str> = Arc::from(&*stored.text);
                let uuid = stored.uuid().unwrap_or_default();
                for hook in subscribed {
                    queued.push(Pending {
                        target: Target::from(hook),
                        uuid: uuid.clone(),
                        text: text.clone(),
                    });
                }
            }
        }
        drop(hooks);
        if !queued.is_empty() {
            lock(&self.pending)?.extend(queued);
            self.pending_added.notify_one();
        }
        Ok(n)
    }

    /// Forgets everything: events, users, apps and tokens, hooks, deliveries, faults, windows,
    /// and the clock offset.
    pub fn reset(&self) -> Result<(), OktaError> {
        write(&self.log)?.clear();
        write(&self.directory)?.clear();
        lock(&self.oauth)?.clear();
        lock(&self.hooks)?.clear();
        *lock(&self.faults)? = Faults::default();
        lock(&self.windows)?.clear();
        lock(&self.pending)?.clear();
        lock(&self.deliveries)?.clear();
        lock(&self.calls)?.clear();
        lock(&self.polls)?.clear();
        lock(&self.risk)?.clear();
        self.features
            .identity_threat_protection
            .store(true, Ordering::Relaxed);
        self.clock_offset_ms.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// The user-management calls received so far, in order.
    pub fn calls(&self) -> Result<Vec<Value>, OktaError> {
        Ok(lock(&self.calls)?.clone())
    }

    /// The System Log and Events API requests received so far.
    pub fn polls(&self) -> Result<Vec<Value>, OktaError> {
        Ok(lock(&self.polls)?.clone())
    }

    /// Whether the org has Identity Threat Protection (the User Risk API).
    pub fn set_identity_threat_protection(&self, on: bool) {
        self.features
            .identity_threat_protection
            .store(on, Ordering::Relaxed);
    }

    /// Read access to the System Log (for in-process tests and the scenario generator).
    pub fn with_log<R>(&self, f: impl FnOnce(&LogStore) -> R) -> Result<R, OktaError> {
        Ok(f(&*read(&self.log)?))
    }

    /// Adds users (see [`Directory::upsert`]).
    pub fn upsert_users(&self, users: Vec<Value>) -> Result<Vec<Value>, OktaError> {
        let now = self.now();
        let mut dir = write(&self.directory)?;
        users
            .into_iter()
            .enumerate()
            .map(|(i, u)| {
                dir.upsert(u, now, &self.config.base_url)
                    .cloned()
                    .map_err(|e| {
                        OktaError::validation(
                            "Api validation failed: users",
                            format!("users[{i}]: {e}"),
                        )
                    })
            })
            .collect()
    }
}

/// The org's whole HTTP surface.
pub fn router(org: Arc<Org>) -> Router {
    okta_api::router(org.clone())
        .merge(control::router())
        .fallback(|uri: axum::http::Uri| async move {
            okta_api::okta_error(OktaError::not_found(&format!(
                "Resource not found: {} (Page)",
                uri.path()
            )))
        })
        .with_state(org)
}

/// Serves the org on `listener` until `shutdown` completes, delivering hook events meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    org: Arc<Org>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sender = tokio::spawn(hook_sender::run(org.clone()));
    let app = router(org).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sender.abort();
    result
}

/// An org served on a free loopback port in this process, until [`Local::stop`] or drop.
pub struct Local {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub org: Arc<Org>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Local {
    /// Starts an org with the SSWS `token`; its base URL is only known once bound.
    pub async fn start(token: &str, rate_limits: RateLimits, seed: u64) -> std::io::Result<Local> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let org = Org::new(Config {
            token: token.to_owned(),
            base_url: base.clone(),
            rate_limits,
            seed,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, org.clone(), async {
            let _ = stopped.await;
        }));
        Ok(Local {
            base,
            org,
            stop: Some(stop),
            task,
        })
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
