//! SIEM destinations. Every sink is one file with the same parts, in the same order (as Vector's
//! sinks): its configuration (`Config`, the keys of its `[[sinks]]` table), how a change becomes
//! what it sends, how that is sent, what an answer means (a pure function with a table test), and
//! a real healthcheck. They share one contract, [`Sink`], and one wrapper, [`SinkDestination`],
//! that makes any sink an outbox destination: it encodes each stored change in the configured
//! format once, hands the batch to the sink, and takes its outcomes.
//!
//! Adding a sink (Kafka, S3, …) is one new file with a `Config` implementing [`SinkSettings`] and a
//! sink implementing [`Sink`], and one line in the [`sinks!`] list below.

pub mod elasticsearch;
pub mod file;
pub mod http;
pub mod nats;
pub mod splunk_hec;
pub mod syslog;
pub mod webhook;

use std::future::Future;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::Invalid;
use crate::formats::{Context, Format};
use crate::health::Health;
use crate::pipeline::worker::{Destination, Outcome};
use crate::record::{Action, Item};
use crate::store::Due;

/// Reads a named environment variable (secrets).
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// One change or finding ready for a sink: the item, where it came from, and its payload in the
/// sink's format.
#[derive(Debug, Clone)]
pub struct Encoded<'a> {
    pub item: &'a Item,
    /// The org and this machine, as the formats name them.
    pub context: Context,
    /// The change in the configured format, one line.
    pub payload: String,
}

/// The contract every SIEM transport fulfils.
pub trait Sink: Send + Sync + 'static {
    /// Sends a batch; one outcome per item, in order. A destination that is down answers
    /// [`Outcome::Unavailable`] (the batch waits, in order, without spending attempts); an item
    /// the destination refuses answers [`Outcome::Retry`] or [`Outcome::Reject`].
    fn send(&self, batch: &[Encoded<'_>]) -> impl Future<Output = Vec<Outcome>> + Send;

    /// Whether the destination can be reached and accepts our credentials, without sending a
    /// change: what it checked, or why it failed.
    fn healthcheck(&self) -> impl Future<Output = Health> + Send;
}

/// What a sink's configuration provides: checks beyond its types, its defaults, and how to build
/// the sink.
pub trait SinkSettings: DeserializeOwned + Clone + std::fmt::Debug {
    type Sink: Sink;
    /// The payload format unless `format` says otherwise.
    const FORMAT: &'static str;
    /// Changes per request unless `batch_size` says otherwise.
    const BATCH: u32;

    /// What the types cannot say (a URL's form, a name's characters); `at` names the table.
    fn check(&self, at: &str) -> Result<(), Invalid>;

    /// Builds the sink. `env` reads the secrets it names; the files it names are read here.
    fn build(&self, at: &str, format: &Format, env: Env<'_>) -> Result<Self::Sink, SinkError>;
}

/// Why a sink could not be built (its configuration was valid: the environment is not).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Secret(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Setup(String),
}

/// The sinks there are: `Variant(module) = "type"`. The `type` key of a `[[sinks]]` table picks
/// the module whose `Config` reads the rest of the table.
macro_rules! sinks {
    ($($variant:ident($module:ident) = $name:literal),* $(,)?) => {
        /// A sink's own configuration, by `type`.
        #[derive(Debug, Clone)]
        pub enum SinkKind {
            $($variant($module::Config),)*
        }

        /// A built sink, by `type`. Built once per sink and held behind an `Arc`: its size is
        /// of no consequence.
        #[allow(clippy::large_enum_variant)]
        pub enum AnySink {
            $($variant(<$module::Config as SinkSettings>::Sink),)*
        }

        /// Every `type` there is.
        pub const TYPES: &[&str] = &[$($name),*];

        impl SinkKind {
            /// The sink's configuration from the rest of its table, by `type`.
            fn parse(kind: &str, table: toml::Table) -> Result<SinkKind, Invalid> {
                match kind {
                    $($name => serde_path_to_error::deserialize::<_, $module::Config>(
                            toml::Value::Table(table),
                        )
                        .map(SinkKind::$variant)
                        .map_err(|e| Invalid(explain(kind, &e.path().to_string(), e.inner().message()))),)*
                    other => Err(Invalid(format!(
                        "type: {other:?} is not one of {}",
                        TYPES.join(", ")
                    ))),
                }
            }

            /// The `type` name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(SinkKind::$variant(_) => $name,)*
                }
            }

            fn default_format(&self) -> &'static str {
                match self {
                    $(SinkKind::$variant(_) => <$module::Config as SinkSettings>::FORMAT,)*
                }
            }

            fn default_batch(&self) -> u32 {
                match self {
                    $(SinkKind::$variant(_) => <$module::Config as SinkSettings>::BATCH,)*
                }
            }

            fn check(&self, at: &str) -> Result<(), Invalid> {
                match self {
                    $(SinkKind::$variant(c) => c.check(at),)*
                }
            }

            fn build(&self, at: &str, format: &Format, env: Env<'_>) -> Result<AnySink, SinkError> {
                match self {
                    $(SinkKind::$variant(c) => c.build(at, format, env).map(AnySink::$variant),)*
                }
            }
        }

        impl Sink for AnySink {
            async fn send(&self, batch: &[Encoded<'_>]) -> Vec<Outcome> {
                match self {
                    $(AnySink::$variant(s) => s.send(batch).await,)*
                }
            }

            async fn healthcheck(&self) -> Health {
                match self {
                    $(AnySink::$variant(s) => s.healthcheck().await,)*
                }
            }
        }
    };
}

sinks! {
    File(file) = "file",
    Syslog(syslog) = "syslog",
    SplunkHec(splunk_hec) = "splunk_hec",
    Elasticsearch(elasticsearch) = "elasticsearch",
    Webhook(webhook) = "webhook",
    Nats(nats) = "nats",
}

/// serde's words for a sink's table, in the operator's: `url is required for type "webhook"`,
/// `transport: unknown variant …, expected one of …`.
fn explain(kind: &str, path: &str, message: &str) -> String {
    match message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        Some(key) => format!("{key} is required for type {kind:?}"),
        None if path == "." || path.is_empty() => message.to_owned(),
        None => format!("{path}: {message}"),
    }
}

/// One `[[sinks]]` table: what every sink has, and its own part by `type`.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The outbox's name for it (`siem:<name>`); stable, like an org's.
    pub name: String,
    /// The payload format (each type has its default).
    pub format: Option<Format>,
    /// Only these actions; all when absent.
    pub actions: Option<Vec<Action>>,
    /// Changes per request.
    pub batch_size: Option<u32>,
    /// Attempts before a refused row is dead-lettered (outages are waited out, not counted).
    pub max_attempts: Option<u32>,
    pub kind: SinkKind,
}

/// Rows per request, at most.
pub const MAX_BATCH: u32 = 10_000;

impl<'de> Deserialize<'de> for SinkConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let mut take = |key: &str| table.remove(key);
        fn typed<T: DeserializeOwned, E: Error>(
            key: &str,
            v: Option<toml::Value>,
        ) -> Result<Option<T>, E> {
            v.map(|v| {
                v.try_into::<T>()
                    .map_err(|e| E::custom(format!("{key}: {}", e.message())))
            })
            .transpose()
        }
        let name: String =
            typed("name", take("name"))?.ok_or_else(|| D::Error::missing_field("name"))?;
        let kind: String =
            typed("type", take("type"))?.ok_or_else(|| D::Error::missing_field("type"))?;
        let format = typed("format", take("format"))?;
        let actions = match take("actions") {
            Some(v) => crate::config::actions(v).map_err(|e: toml::de::Error| {
                D::Error::custom(format!("actions: {}", e.message()))
            })?,
            None => None,
        };
        let batch_size = typed("batch_size", take("batch_size"))?;
        let max_attempts = typed("max_attempts", take("max_attempts"))?;
        let kind = SinkKind::parse(&kind, table).map_err(D::Error::custom)?;
        Ok(SinkConfig {
            name,
            format,
            actions,
            batch_size,
            max_attempts,
            kind,
        })
    }
}

impl SinkConfig {
    /// An NDJSON file of records at `path`.
    pub fn file(name: &str, path: &str) -> SinkConfig {
        SinkConfig {
            name: name.into(),
            format: None,
            actions: None,
            batch_size: None,
            max_attempts: None,
            kind: SinkKind::File(file::Config { path: path.into() }),
        }
    }

    /// What the parser could not check; `i` is the table's index.
    pub fn check(&self, i: usize) -> Result<(), Invalid> {
        let at = format!("sinks[{i}] ({})", self.name);
        if self.name.trim().is_empty() {
            return Err(Invalid(format!("sinks[{i}].name: must not be empty")));
        }
        if let Some(n) = self.batch_size
            && !(1..=MAX_BATCH).contains(&n)
        {
            return Err(Invalid(format!(
                "{at}.batch_size: {n} is not between 1 and {MAX_BATCH}"
            )));
        }
        if self.max_attempts == Some(0) {
            return Err(Invalid(format!("{at}.max_attempts: must be at least 1")));
        }
        self.kind.check(&at)
    }

    /// The payload format: the configured one, or the type's default.
    pub fn format(&self) -> Format {
        self.format
            .clone()
            .unwrap_or_else(|| Format::parse(self.kind.default_format()).unwrap_or(Format::Record))
    }

    /// The outbox's name for it.
    pub fn destination(&self) -> String {
        destination_name(&self.name)
    }
}

/// The outbox's name for a configured sink.
pub fn destination_name(sink: &str) -> String {
    format!("siem:{sink}")
}

/// Builds a configured sink as an outbox destination; `env` reads its secrets.
pub fn build(c: &SinkConfig, env: Env<'_>) -> Result<SinkDestination<AnySink>, SinkError> {
    let at = format!("sinks ({})", c.name);
    let format = c.format();
    let sink = c.kind.build(&at, &format, env)?;
    Ok(SinkDestination::new(
        c.destination(),
        format,
        c.batch_size.unwrap_or_else(|| c.kind.default_batch()),
        sink,
    ))
}

/// Any [`Sink`] as an outbox destination: each stored change encoded once in the sink's format.
pub struct SinkDestination<S: Sink> {
    name: String,
    format: Format,
    hostname: String,
    batch_size: u32,
    sink: S,
}

impl<S: Sink> SinkDestination<S> {
    pub fn new(name: impl Into<String>, format: Format, batch_size: u32, sink: S) -> Self {
        SinkDestination {
            name: name.into(),
            format,
            hostname: crate::formats::local_hostname(),
            batch_size,
            sink,
        }
    }

    /// The sink's own healthcheck.
    pub async fn healthcheck(&self) -> Health {
        self.sink.healthcheck().await
    }
}

impl<S: Sink> Destination for SinkDestination<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_size(&self) -> u32 {
        self.batch_size
    }

    fn reads_okta_event(&self) -> bool {
        self.format.reads_okta_event()
    }

    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; rows.len()];
        let mut index = Vec::with_capacity(rows.len());
        let mut batch = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            match &row.item {
                Ok(item) => {
                    let context = Context {
                        org: row.org.clone(),
                        hostname: self.hostname.clone(),
                    };
                    let payload =
                        self.format
                            .encode_stored(item, row.record.as_deref(), &row.raw, &context);
                    index.push(i);
                    batch.push(Encoded {
                        item,
                        context,
                        payload,
                    });
                }
                Err(e) => outcomes[i] = Some(Outcome::Reject(e.clone())),
            }
        }
        if !batch.is_empty() {
            let sent = self.sink.send(&batch).await;
            for (i, o) in index.into_iter().zip(sent) {
                outcomes[i] = Some(o);
            }
        }
        // A sink that answered for fewer items than it was given: the rest were not sent.
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Outcome::Unavailable("the sink did not answer for this row".into())
                })
            })
            .collect()
    }
}

/// The same outcome for every item of a batch.
pub fn all(batch: &[Encoded<'_>], o: &Outcome) -> Vec<Outcome> {
    vec![o.clone(); batch.len()]
}

/// Reads a PEM bundle of CA certificates.
pub fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, SinkError> {
    std::fs::read(path)
        .map_err(|e| SinkError::Setup(format!("cannot read the CA file {}: {e}", path.display())))
}
