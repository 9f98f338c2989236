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
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

use super::{Encoder, encode_all, fill};
use crate::formats::syslog::{self as rfc5424, Options};
use crate::pipeline::worker::{Destination, Outcome};
use crate::store::Due;

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
        let config = match ca_pem {
            Some(pem) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert =
                        cert.map_err(|e| format!("the CA file is not PEM certificates: {e}"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("the CA file holds an unusable certificate: {e}"))?;
                }
                ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth()
            }
            None => {
                use rustls_platform_verifier::ConfigVerifierExt;
                ClientConfig::with_platform_verifier()
                    .map_err(|e| format!("cannot load the system's certificate roots: {e}"))?
            }
        };
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
    name: String,
    address: String,
    transport: Transport,
    encoder: Encoder,
    options: Options,
    batch_size: u32,
    stream: Mutex<Option<Open>>,
}

impl SyslogSink {
    pub fn new(
        name: impl Into<String>,
        address: impl Into<String>,
        transport: Transport,
        encoder: Encoder,
        options: Options,
        batch_size: u32,
    ) -> SyslogSink {
        SyslogSink {
            name: name.into(),
            address: address.into(),
            transport,
            encoder,
            options,
            batch_size,
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
    pub async fn healthcheck(&self) -> Result<(), String> {
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

impl Destination for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_size(&self) -> u32 {
        self.batch_size
    }

    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        let (outcomes, good) = encode_all(&self.encoder, rows);
        let messages: Vec<String> = good
            .iter()
            .map(|(i, change, payload)| {
                rfc5424::message(
                    change,
                    payload,
                    &self.encoder.context(&rows[*i]),
                    &self.options,
                )
            })
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
        let result = match sent {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Unavailable(e),
        };
        fill(outcomes, &result)
    }
}
