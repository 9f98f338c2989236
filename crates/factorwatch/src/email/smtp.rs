//! The SMTP client: a pool of lettre connections that factorwatch opens itself, so that each
//! socket has `TCP_NODELAY` set. lettre writes a message's body and its closing `.` in two
//! writes; with Nagle's algorithm the second waits for the relay's delayed ACK, about 40 ms per
//! message — 20 notices a second however fast the relay is. Connections are kept and reused
//! (no new TCP, TLS and AUTH per message), at most `size` at once.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::transport::{SendError, smtp_failure};
use crate::secret::Secret;

/// A connection idle this long is closed rather than reused: relays drop idle clients (Postfix
/// after 300 s), and a connection they dropped would fail the next message.
const IDLE_FOR: Duration = Duration::from_secs(60);

/// How factorwatch secures the connection.
pub enum Secure {
    /// STARTTLS, required: a relay that does not offer it is refused (never a silent downgrade).
    StartTls(TlsParameters),
    /// TLS from the first byte (port 465).
    Implicit {
        connector: TlsConnector,
        name: ServerName<'static>,
    },
    /// None: a relay on this machine.
    None,
}

pub struct Pool {
    host: String,
    port: u16,
    secure: Secure,
    credentials: Option<(String, Secret)>,
    timeout: Duration,
    hello: ClientId,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// One permit per connection in use or being opened.
    slots: Arc<Semaphore>,
    size: u32,
}

impl Pool {
    pub fn new(
        host: String,
        port: u16,
        secure: Secure,
        credentials: Option<(String, Secret)>,
        timeout: Duration,
        size: u32,
    ) -> Pool {
        Pool {
            host,
            port,
            secure,
            credentials,
            timeout,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(size.max(1) as usize)),
            size: size.max(1),
        }
    }

    /// Connections at most.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Sends one message on a pooled connection (opened if none is idle). A connection that
    /// failed in any way is closed, never reused.
    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SendError::Unavailable("the SMTP pool is closed".into()))?;
        let mut conn = match self.take_idle().await {
            Some(c) => c,
            None => self.connect().await?,
        };
        let body = message.formatted();
        let sent = tokio::time::timeout(self.timeout, conn.send(message.envelope(), &body)).await;
        match sent {
            Ok(Ok(_)) => {
                self.idle.lock().await.push((conn, Instant::now()));
                Ok(())
            }
            Ok(Err(e)) => {
                conn.abort().await;
                Err(failure(&e))
            }
            Err(_) => Err(SendError::Unavailable(format!(
                "SMTP: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Opens a connection and logs in, then says goodbye: for `factorwatch check`.
    pub async fn check(&self) -> Result<(), SendError> {
        let mut conn = self.connect().await?;
        let _ = tokio::time::timeout(self.timeout, conn.quit()).await;
        Ok(())
    }

    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().await;
        while let Some((conn, at)) = idle.pop() {
            if at.elapsed() < IDLE_FOR && !conn.has_broken() {
                return Some(conn);
            }
            // Too old to trust: closed in the background, without holding the pool up.
            let mut conn = conn;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.quit()).await;
            });
        }
        None
    }

    /// TCP (with `TCP_NODELAY`), TLS, EHLO, STARTTLS and AUTH, within the timeout.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            SendError::Unavailable(format!("SMTP: {what} {}:{}: {e}", self.host, self.port))
        };
        let open = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| unavailable("cannot connect to", &e))?;
            tcp.set_nodelay(true)
                .map_err(|e| unavailable("cannot set up the connection to", &e))?;
            let mut conn = match &self.secure {
                Secure::Implicit { connector, name } => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| unavailable("TLS failed with", &e))?;
                    AsyncSmtpConnection::connect_with_transport(Box::new(Tls(tls)), &self.hello)
                        .await
                        .map_err(|e| failure(&e))?
                }
                Secure::StartTls(_) | Secure::None => {
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                        .await
                        .map_err(|e| failure(&e))?
                }
            };
            if let Secure::StartTls(params) = &self.secure {
                if !conn.can_starttls() {
                    conn.abort().await;
                    return Err(SendError::Unavailable(format!(
                        "SMTP: {}:{} does not offer STARTTLS, which security = \"starttls\" requires",
                        self.host, self.port
                    )));
                }
                conn.starttls(params.clone(), &self.hello)
                    .await
                    .map_err(|e| failure(&e))?;
            }
            if let Some((user, password)) = &self.credentials {
                let credentials = Credentials::new(user.clone(), password.expose().to_owned());
                if let Err(e) = conn
                    .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                    .await
                {
                    conn.abort().await;
                    return Err(failure(&e));
                }
            }
            Ok(conn)
        };
        tokio::time::timeout(self.timeout, open)
            .await
            .map_err(|_| {
                SendError::Unavailable(format!(
                    "SMTP: {}:{} did not answer within {:?}",
                    self.host, self.port, self.timeout
                ))
            })?
    }
}

fn failure(e: &lettre::transport::smtp::Error) -> SendError {
    let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
    smtp_failure(code, e.is_permanent(), e.to_string())
}

/// A TLS stream lettre can talk over.
#[derive(Debug)]
struct Tls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}
