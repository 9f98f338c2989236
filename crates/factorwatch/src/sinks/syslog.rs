//! Syslog: RFC 5424 messages ([`crate::formats::syslog`]) carrying the configured payload, over
//! TCP with RFC 6587 octet counting, over TLS (RFC 5425: octet-counted, the server's certificate
//! verified against the system's roots or a given CA), or over UDP (RFC 5426: one datagram per
//! message, cut to a safe size; at most once — nothing tells us it arrived).
//!
//! Syslog has no acknowledgement: a stream delivery counts once written and flushed. A write into
//! a connection the collector already closed still "succeeds" locally, so a connection is checked
//! before each reuse (a closed or reset one is replaced, never written into) and replaced anyway
//! after [`IDLE_RECONNECT`] unused; a connection that breaks during the write is dropped and the
//! batch sent again on a new one (at least once). What remains is a collector closing the
//! connection while a batch is in flight on it: no stream syslog can see that.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, pki_types::ServerName};

use serde::Deserialize;

use super::{Encoded, Env, Sink, SinkError, SinkSettings, all};
use crate::config::Invalid;
use crate::formats::Format;
use crate::formats::syslog::{self as rfc5424, Options};
use crate::health::{Health, Unhealthy};
use crate::pipeline::worker::Outcome;

// ---- Configuration -----------------------------------------------------------------------------

/// `type = "syslog"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port`.
    pub address: String,
    #[serde(default)]
    pub transport: TransportKind,
    /// tls: the name the server's certificate must carry (default: the address's host).
    #[serde(default)]
    pub server_name: Option<String>,
    /// tls: a PEM file of CA certificates to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The facility (default 10, authpriv).
    #[serde(default)]
    pub facility: Option<u8>,
}

/// How messages travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// TCP with RFC 6587 octet counting.
    #[default]
    Tcp,
    /// TLS (RFC 5425), the server's certificate verified.
    Tls,
    /// UDP (RFC 5426): at most once.
    Udp,
}

impl SinkSettings for Config {
    type Sink = SyslogSink;
    const FORMAT: &'static str = "cef";
    const BATCH: u32 = 200;

    fn check(&self, at: &str) -> Result<(), Invalid> {
        let ok = self
            .address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(Invalid(format!(
                "{at}.address: {:?} is not host:port",
                self.address
            )));
        }
        if let Some(f) = self.facility
            && f > 23
        {
            return Err(Invalid(format!(
                "{at}.facility: {f} is not a syslog facility (0 to 23)"
            )));
        }
        if self.transport == TransportKind::Tls {
            ServerName::try_from(self.server_name()).map_err(|e| {
                format!(
                    "{at}.server_name: {:?} is not a TLS server name: {e}",
                    self.server_name()
                )
            })?;
        }
        Ok(())
    }

    fn build(&self, _at: &str, _format: &Format, _env: Env<'_>) -> Result<SyslogSink, SinkError> {
        let transport = match self.transport {
            TransportKind::Tcp => Transport::Tcp,
            TransportKind::Udp => Transport::Udp,
            TransportKind::Tls => {
                let ca = self.ca_file.as_deref().map(super::read_ca).transpose()?;
                Transport::tls(ca.as_deref(), &self.server_name()).map_err(SinkError::Setup)?
            }
        };
        let options = Options {
            facility: self.facility.unwrap_or(rfc5424::DEFAULT_FACILITY),
            ..Options::default()
        };
        Ok(SyslogSink::new(self.address.clone(), transport, options))
    }
}

impl Config {
    /// The name a TLS certificate must carry: configured, else the address's host.
    fn server_name(&self) -> String {
        self.server_name.clone().unwrap_or_else(|| {
            self.address
                .rsplit_once(':')
                .map_or(self.address.clone(), |(h, _)| {
                    h.trim_matches(['[', ']']).to_owned()
                })
        })
    }
}

// ---- Sending -----------------------------------------------------------------------------------

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection unused this long is replaced rather than trusted (collectors and the firewalls
/// between close idle ones, often silently).
pub const IDLE_RECONNECT: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 5426: receivers should accept 2048 octets.
pub const MAX_DATAGRAM: usize = 2048;

pub enum Transport {
    Tcp,
    Tls {
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    },
    Udp,
}

impl Transport {
    /// TLS trusting `ca_pem` only, or the system's roots.
    pub fn tls(ca_pem: Option<&[u8]>, server_name: &str) -> Result<Transport, String> {
        let config = crate::http::tls::client_config(ca_pem)?;
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| format!("{server_name:?} is not a valid TLS server name: {e}"))?;
        Ok(Transport::Tls {
            config: Arc::new(config),
            server_name,
        })
    }
}

trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

type Stream = Box<dyn Connection>;

/// An open connection and when it was last written to.
struct Open {
    stream: Stream,
    used: std::time::Instant,
}

/// Whether the collector has closed (or reset) the connection: a read that finds the end of the
/// stream or an error. Syslog collectors send nothing, so anything else means it is still open.
async fn peer_closed(stream: &mut Stream) -> bool {
    let mut buf = [0u8; 256];
    // Polled once: data or an end already received answer at once; otherwise it is pending.
    match tokio::time::timeout(Duration::ZERO, stream.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

pub struct SyslogSink {
    address: String,
    transport: Transport,
    options: Options,
    stream: Mutex<Option<Open>>,
}

impl SyslogSink {
    pub fn new(address: impl Into<String>, transport: Transport, options: Options) -> SyslogSink {
        SyslogSink {
            address: address.into(),
            transport,
            options,
            stream: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Stream, String> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address))
            .await
            .map_err(|_| {
                format!(
                    "no connection to {} within {CONNECT_TIMEOUT:?}",
                    self.address
                )
            })?
            .map_err(|e| format!("cannot connect to {}: {e}", self.address))?;
        let _ = tcp.set_nodelay(true);
        match &self.transport {
            Transport::Tls {
                config,
                server_name,
            } => {
                let tls = TlsConnector::from(config.clone())
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS with {} failed: {e}", self.address))?;
                Ok(Box::new(tls))
            }
            _ => Ok(Box::new(tcp)),
        }
    }

    /// A connection (and TLS handshake) can be made. For UDP, an empty datagram is sent and a
    /// refusal (ICMP port unreachable) awaited for a second: UDP can prove a collector absent,
    /// never present.
    async fn probe(&self) -> Result<(), String> {
        match self.transport {
            Transport::Udp => {
                let socket = self.udp_socket().await?;
                socket
                    .send(&[])
                    .await
                    .map_err(|e| format!("sending to {} failed: {e}", self.address))?;
                let mut buf = [0u8; 64];
                match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await {
                    Ok(Err(e)) => Err(format!("{} refused the probe: {e}", self.address)),
                    _ => Ok(()),
                }
            }
            _ => self.connect().await.map(drop),
        }
    }

    async fn udp_socket(&self) -> Result<UdpSocket, String> {
        let socket = UdpSocket::bind(if self.address.starts_with('[') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
        socket
            .connect(&self.address)
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.address))?;
        Ok(socket)
    }

    async fn send_stream(&self, bytes: &[u8]) -> Result<(), String> {
        let mut guard = self.stream.lock().await;
        if let Some(open) = guard.as_mut()
            && (open.used.elapsed() >= IDLE_RECONNECT || peer_closed(&mut open.stream).await)
        {
            *guard = None;
        }
        if guard.is_none() {
            *guard = Some(Open {
                stream: self.connect().await?,
                used: std::time::Instant::now(),
            });
        }
        let Some(open) = guard.as_mut() else {
            return Err("no connection".into());
        };
        let stream = &mut open.stream;
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
        open.used = std::time::Instant::now();
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                *guard = None;
                Err(format!("writing to {} failed: {e}", self.address))
            }
            Err(_) => {
                *guard = None;
                Err(format!("writing to {} timed out", self.address))
            }
        }
    }

    async fn send_datagrams(&self, messages: &[String]) -> Result<(), String> {
        let socket = self.udp_socket().await?;
        for m in messages {
            socket
                .send(rfc5424::truncate(m, MAX_DATAGRAM).as_bytes())
                .await
                .map_err(|e| format!("sending to {} failed: {e}", self.address))?;
        }
        Ok(())
    }
}

impl Sink for SyslogSink {
    async fn send(&self, batch: &[Encoded<'_>]) -> Vec<Outcome> {
        let messages: Vec<String> = batch
            .iter()
            .map(|e| rfc5424::item_message(e.item, &e.payload, &e.context, &self.options))
            .collect();
        let sent = match self.transport {
            Transport::Udp => self.send_datagrams(&messages).await,
            _ => {
                let mut bytes = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
                for m in &messages {
                    bytes.extend_from_slice(rfc5424::frame(m).as_bytes());
                }
                self.send_stream(&bytes).await
            }
        };
        let outcome = match sent {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Unavailable(e),
        };
        all(batch, &outcome)
    }

    // ---- Healthcheck ---------------------------------------------------------------------------

    async fn healthcheck(&self) -> Health {
        self.probe()
            .await
            .map(|()| match self.transport {
                Transport::Udp => "no refusal (UDP cannot confirm a collector)".to_owned(),
                _ => "connected".to_owned(),
            })
            .map_err(Unhealthy)
    }
}
