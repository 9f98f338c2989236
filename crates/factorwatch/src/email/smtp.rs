//! The SMTP client: a pool of lettre connections that factorwatch opens itself, so that each
//! socket has `TCP_NODELAY` set. lettre writes a message's body and its closing `.` in two
//! writes; with Nagle's algorithm the second waits for the relay's delayed ACK, about 40 ms per
//! message — 20 notices a second however fast the relay is. Connections are kept and reused
//! (no new TCP, TLS and AUTH per message), at most `size` at once. A relay that offers
//! PIPELINING (RFC 2920; Postfix, Exchange, most relays) gets each envelope — MAIL, RCPT and
//! DATA — in one write: two round trips per message instead of four.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
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

/// An open, logged-in connection, and whether its relay offers PIPELINING.
struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
}

impl Connection {
    /// One message: its envelope in one write when the relay offers PIPELINING and every
    /// address and byte is ASCII (otherwise lettre's exchange, which negotiates SMTPUTF8 and
    /// 8BITMIME, one command at a time). Each answer is read, in order, before the body is sent:
    /// a refused MAIL, RCPT or DATA sends nothing, and the pool then closes the connection
    /// (answers may still be owed on it).
    async fn send(
        &mut self,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<(), lettre::transport::smtp::Error> {
        let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
        let ascii =
            envelope.from().is_none_or(ascii) && envelope.to().iter().all(ascii) && body.is_ascii();
        if !(self.pipelining && ascii) {
            return self.smtp.send(envelope, body).await.map(drop);
        }
        self.smtp.command(Pipelined(envelope)).await?;
        for _ in envelope.to() {
            self.smtp.read_response().await?;
        }
        self.smtp.read_response().await?;
        self.smtp.message(body).await.map(drop)
    }
}

/// MAIL, one RCPT per recipient and DATA, written as one (lettre checked the addresses: no
/// line break can be in them).
struct Pipelined<'a>(&'a Envelope);

impl std::fmt::Display for Pipelined<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", Mail::new(self.0.from().cloned(), Vec::new()))?;
        for to in self.0.to() {
            write!(f, "{}", Rcpt::new(to.clone(), Vec::new()))?;
        }
        write!(f, "{Data}")
    }
}

/// Whether an EHLO answer lists PIPELINING (lettre's `ServerInfo` keeps only the keywords it
/// uses itself).
fn offers_pipelining(ehlo: &Response) -> bool {
    ehlo.message().skip(1).any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
    })
}

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
    idle: Mutex<Vec<(Connection, Instant)>>,
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
                conn.smtp.abort().await;
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
        let _ = tokio::time::timeout(self.timeout, conn.smtp.quit()).await;
        Ok(())
    }

    async fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().await;
        while let Some((conn, at)) = idle.pop() {
            if at.elapsed() < IDLE_FOR && !conn.smtp.has_broken() {
                return Some(conn);
            }
            // Too old to trust: closed in the background, without holding the pool up.
            let mut conn = conn;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.smtp.quit()).await;
            });
        }
        None
    }

    /// TCP (with `TCP_NODELAY`), TLS, EHLO, STARTTLS, EHLO again for the extensions lettre does
    /// not keep (PIPELINING: offered before STARTTLS proves nothing, RFC 3207) and AUTH, within
    /// the timeout.
    async fn connect(&self) -> Result<Connection, SendError> {
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
            let pipelining = match conn.command(Ehlo::new(self.hello.clone())).await {
                Ok(ehlo) => offers_pipelining(&ehlo),
                Err(e) => {
                    conn.abort().await;
                    return Err(failure(&e));
                }
            };
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
            Ok(Connection {
                smtp: conn,
                pipelining,
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::net::tcp::OwnedWriteHalf;

    type Lines = tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>;

    /// A relay's side of one connection: greeted, both EHLOs answered (with PIPELINING or not).
    async fn greeted(listener: &TcpListener, pipelining: bool) -> (Lines, OwnedWriteHalf) {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 relay ESMTP\r\n").await.unwrap();
        let ehlo = if pipelining {
            "250-relay\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        } else {
            "250-relay\r\n250 8BITMIME\r\n"
        };
        for _ in 0..2 {
            let line = lines.next_line().await.unwrap().unwrap_or_default();
            assert!(line.starts_with("EHLO "), "{line}");
            write.write_all(ehlo.as_bytes()).await.unwrap();
        }
        (lines, write)
    }

    /// Reads a message's body up to its closing dot.
    async fn body(lines: &mut Lines) -> String {
        let mut body = String::new();
        loop {
            let line = lines.next_line().await.unwrap().unwrap_or_default();
            if line == "." {
                return body;
            }
            body.push_str(&line);
            body.push('\n');
        }
    }

    /// A relay's side of one pipelined message: the envelope's three lines (nothing answered
    /// until all are in), then the body once MAIL, RCPT and DATA are accepted.
    async fn pipelined(lines: &mut Lines, write: &mut OwnedWriteHalf) -> (Vec<String>, String) {
        let mut envelope = Vec::new();
        for _ in 0..3 {
            envelope.push(lines.next_line().await.unwrap().unwrap_or_default());
        }
        write
            .write_all(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with .\r\n")
            .await
            .unwrap();
        let b = body(lines).await;
        write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
        (envelope, b)
    }

    /// A relay's listening socket and its port.
    async fn listen() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    fn pool(port: u16) -> Pool {
        Pool::new(
            "127.0.0.1".into(),
            port,
            Secure::None,
            None,
            Duration::from_secs(5),
            1,
        )
    }

    fn notice(to: &str) -> Message {
        Message::builder()
            .from("security@example.com".parse().unwrap())
            .to(to.parse().unwrap())
            .subject("A new factor")
            .body(String::from("You just registered a phone."))
            .unwrap()
    }

    #[tokio::test]
    async fn a_relay_offering_pipelining_gets_each_envelope_in_one_write() {
        let (listener, port) = listen().await;
        let relay = tokio::spawn(async move {
            let (mut lines, mut write) = greeted(&listener, true).await;
            let mut bodies = Vec::new();
            for _ in 0..2 {
                // Nothing is answered until the whole envelope is in: a client that waited for
                // MAIL's answer would time out here.
                let (envelope, body) = pipelined(&mut lines, &mut write).await;
                assert_eq!(
                    envelope,
                    [
                        "MAIL FROM:<security@example.com>",
                        "RCPT TO:<user@example.com>",
                        "DATA"
                    ]
                );
                bodies.push(body);
            }
            bodies
        });
        let pool = pool(port);
        for _ in 0..2 {
            assert_eq!(pool.send(&notice("user@example.com")).await, Ok(()));
        }
        let bodies = relay.await.unwrap();
        assert!(
            bodies
                .iter()
                .all(|b| b.contains("You just registered a phone.")),
            "{bodies:?}"
        );
    }

    #[tokio::test]
    async fn a_relay_without_pipelining_gets_one_command_at_a_time() {
        let (listener, port) = listen().await;
        let relay = tokio::spawn(async move {
            let (mut lines, mut write) = greeted(&listener, false).await;
            for (command, answer) in [
                ("MAIL FROM:", "250 2.1.0 Ok\r\n"),
                ("RCPT TO:", "250 2.1.5 Ok\r\n"),
                ("DATA", "354 End data with .\r\n"),
            ] {
                let line = lines.next_line().await.unwrap().unwrap_or_default();
                assert!(line.starts_with(command), "{line}");
                // Unanswered, a correct client sends nothing more.
                let early =
                    tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await;
                assert!(
                    early.is_err(),
                    "sent before {command} was answered: {early:?}"
                );
                write.write_all(answer.as_bytes()).await.unwrap();
            }
            let b = body(&mut lines).await;
            write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
            b
        });
        assert_eq!(pool(port).send(&notice("user@example.com")).await, Ok(()));
        assert!(
            relay
                .await
                .unwrap()
                .contains("You just registered a phone.")
        );
    }

    #[tokio::test]
    async fn a_refused_recipient_sends_no_body_and_its_connection_is_not_reused() {
        let (listener, port) = listen().await;
        let relay = tokio::spawn(async move {
            let (mut lines, mut write) = greeted(&listener, true).await;
            for _ in 0..3 {
                lines.next_line().await.unwrap();
            }
            write
                .write_all(
                    b"250 2.1.0 Ok\r\n550 5.1.1 <gone@example.com>: unknown\r\n554 5.5.1 no valid recipients\r\n",
                )
                .await
                .unwrap();
            // What follows on this connection is a goodbye or nothing: never the message.
            while let Ok(Some(line)) = lines.next_line().await {
                assert!(line.starts_with("QUIT"), "after a refusal: {line}");
                let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
            }
            // The next message comes on a new connection.
            let (mut lines, mut write) = greeted(&listener, true).await;
            pipelined(&mut lines, &mut write).await.1
        });
        let pool = pool(port);
        let refused = pool.send(&notice("gone@example.com")).await;
        assert!(
            matches!(&refused, Err(SendError::Refused(e)) if e.contains("550")),
            "{refused:?}"
        );
        assert_eq!(pool.send(&notice("user@example.com")).await, Ok(()));
        assert!(
            relay
                .await
                .unwrap()
                .contains("You just registered a phone.")
        );
    }
}
