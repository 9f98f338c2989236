//! A caught-up poller's polls on one connection kept between them, holding only the socket (and
//! its TLS session) while it waits.
//!
//! A connection kept in reqwest's pool keeps hyper's whole connection alive between polls: its
//! task, its dispatch channel and its read and write buffers, some 25 KiB: the largest part of the
//! heap of an MSSP's 2,000 caught-up orgs. Here each poll makes a hyper HTTP/1.1 connection over the kept stream,
//! sends one GET, reads the answer whole, and takes the stream back (`without_shutdown`), so the
//! buffers live only for the exchange. The stream is kept only when the exchange ended cleanly: a
//! complete answer no larger than [`super::KEPT_ANSWER`], nothing unread after it, and the server
//! not closing. A kept stream the server has since closed is noticed before use, and a request
//! that finds it closed anyway is sent once more on a new connection (a GET, safe to repeat).

use std::future::Future as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;

use crate::http::client::{BodyError, Capped};

trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

type Stream = Box<dyn Connection>;

/// How the kept connections are made: the same `User-Agent` as every other request, and TLS
/// trusting the system's roots (as reqwest does), set up when a first `https` org is polled.
#[derive(Clone)]
pub struct Connector {
    user_agent: HeaderValue,
    tls: Arc<OnceLock<Result<Arc<ClientConfig>, String>>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// One org's kept stream, and since when it waits.
#[derive(Default)]
pub struct Slot(Mutex<Option<(Stream, Instant)>>);

impl Slot {
    fn take(&self) -> Option<(Stream, Instant)> {
        self.0.lock().map(|mut s| s.take()).unwrap_or(None)
    }

    /// Keeps `stream` for the next poll (one per org: a second one, from the org's other poller
    /// asking at the same moment, is closed).
    fn put(&self, stream: Stream) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some((stream, Instant::now()));
        }
    }
}

/// An answer read whole.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Result<String, BodyError>,
}

/// Why an exchange failed; `answered`: the server had begun its answer.
struct Failure {
    reason: String,
    answered: bool,
}

impl Connector {
    pub fn new(user_agent: &str) -> Result<Connector, String> {
        Ok(Connector {
            user_agent: HeaderValue::from_str(user_agent)
                .map_err(|_| "the User-Agent is not a valid header value".to_owned())?,
            tls: Arc::new(OnceLock::new()),
        })
    }

    /// A connector trusting only the PEM certificates in `ca_pem` (a test's CA).
    pub fn trusting(user_agent: &str, ca_pem: &[u8]) -> Result<Connector, String> {
        let connector = Connector::new(user_agent)?;
        let config = tls_config(Some(ca_pem));
        let _ = connector.tls.set(config);
        Ok(connector)
    }

    fn tls(&self) -> Result<Arc<ClientConfig>, String> {
        self.tls.get_or_init(|| tls_config(None)).clone()
    }

    /// GETs `url` with `headers` on `slot`'s stream, or a new one, within `timeout` in all;
    /// an error is a transport failure, said without the URL.
    pub async fn get(
        &self,
        slot: &Slot,
        url: &reqwest::Url,
        headers: &[(HeaderName, HeaderValue)],
        limit: usize,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let exchange = async {
            if let Some(stream) = slot.take().and_then(|(s, since)| usable(s, since)) {
                match self.exchange(slot, stream, url, headers, limit).await {
                    // The server closed it as the request went: once more on a new connection.
                    Err(Failure {
                        answered: false, ..
                    }) => {}
                    other => return other.map_err(|f| f.reason),
                }
            }
            let stream = self.connect(url, timeout).await?;
            self.exchange(slot, stream, url, headers, limit)
                .await
                .map_err(|f| f.reason)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err("no answer in time".to_owned()))
    }

    async fn connect(&self, url: &reqwest::Url, timeout: Duration) -> Result<Stream, String> {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err("transport error: the URL names no host".to_owned());
        };
        // An IPv6 address without its brackets, as a socket address and a TLS name want it.
        let name = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tcp = tokio::time::timeout(
            timeout.min(Duration::from_secs(10)),
            TcpStream::connect((name.as_str(), port)),
        )
        .await
        .map_err(|_| "no connection in time".to_owned())?
        .map_err(|e| format!("transport error: cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        if url.scheme() != "https" {
            return Ok(Box::new(tcp));
        }
        let server_name = rustls_pki_types::ServerName::try_from(name)
            .map_err(|e| format!("transport error: not a TLS server name: {e}"))?;
        let config = self
            .tls()
            .map_err(|e| format!("transport error: no TLS: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("transport error: TLS failed: {e}"))?;
        Ok(Box::new(tls))
    }

    /// One GET on `stream`, its answer read whole; the stream goes back to `slot` if it can carry
    /// the next poll.
    async fn exchange(
        &self,
        slot: &Slot,
        stream: Stream,
        url: &reqwest::Url,
        headers: &[(HeaderName, HeaderValue)],
        limit: usize,
    ) -> Result<Answer, Failure> {
        let failed = |answered| {
            move |e: hyper::Error| Failure {
                reason: format!("transport error: {e}"),
                answered,
            }
        };
        let request = self.request(url, headers).map_err(|reason| Failure {
            reason,
            answered: true,
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake::<_, http_body_util::Empty<hyper::body::Bytes>>(
                hyper_util::rt::TokioIo::new(stream),
            )
            .await
            .map_err(failed(false))?;
        let mut conn = std::pin::pin!(conn.without_shutdown());
        let exchange = async move {
            let response = sender.send_request(request).await.map_err(failed(false))?;
            let (head, mut body) = response.into_parts();
            let text = read(&head.headers, &mut body, limit).await;
            // The sender gone, the connection hands its stream back once the answer is done.
            drop(sender);
            Ok::<_, Failure>((head, text))
        };
        let mut exchange = std::pin::pin!(exchange);
        let mut ended = None;
        let (head, text) = loop {
            tokio::select! {
                done = &mut exchange => break done?,
                parts = &mut conn, if ended.is_none() => ended = Some(parts),
            }
        };
        let reusable = text.as_ref().is_ok_and(|t| t.len() <= super::KEPT_ANSWER)
            && head.version == hyper::Version::HTTP_11
            && !head
                .headers
                .get_all(header::CONNECTION)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if reusable {
            let parts = match ended {
                Some(parts) => parts,
                None => conn.await,
            };
            if let Ok(parts) = parts
                && parts.read_buf.is_empty()
            {
                slot.put(parts.io.into_inner());
            }
        }
        Ok(Answer {
            status: head.status.as_u16(),
            headers: head.headers,
            body: text,
        })
    }

    fn request(
        &self,
        url: &reqwest::Url,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<hyper::Request<http_body_util::Empty<hyper::body::Bytes>>, String> {
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut request = hyper::Request::get(target)
            .header(header::HOST, host)
            .header(header::USER_AGENT, self.user_agent.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request
            .body(http_body_util::Empty::new())
            .map_err(|e| format!("cannot make the request: {e}"))
    }
}

/// TLS for HTTP/1.1 (the only protocol offered: these connections speak nothing else).
fn tls_config(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, String> {
    let mut config = crate::http::tls::client_config(ca_pem)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `stream` if it can carry a request: not waiting longer than the server may keep it
/// ([`super::OKTA_POLL_CONNECTION`]), and with nothing to read — the server's end of the stream
/// (it closed), or bytes nobody asked for (then what it says next cannot be trusted either).
fn usable(mut stream: Stream, since: Instant) -> Option<Stream> {
    if since.elapsed() > super::OKTA_POLL_CONNECTION {
        return None;
    }
    let mut byte = [0u8; 1];
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // Polled once: an end or bytes already received answer at once; otherwise it is pending.
    let quiet = std::pin::pin!(stream.read(&mut byte))
        .poll(&mut cx)
        .is_pending();
    quiet.then_some(stream)
}

/// The body, at most `limit` bytes (see [`crate::http::client::read_limited`]).
async fn read(
    headers: &HeaderMap,
    body: &mut hyper::body::Incoming,
    limit: usize,
) -> Result<String, BodyError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let mut capped = Capped::new(announced, limit)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        if let Some(data) = frame.data_ref() {
            capped.push(data)?;
        }
    }
    Ok(capped.text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A server that answers each request on a connection with the next of `answers` (raw
    /// bytes), then does what the answer's script says (out of answers, it says nothing more); counts the connections it accepted and
    /// keeps the requests' heads.
    struct Server {
        url: reqwest::Url,
        accepted: Arc<AtomicUsize>,
        heads: Arc<Mutex<Vec<String>>>,
    }

    enum After {
        /// Waits for the next request on the connection.
        Stay,
        /// Closes the connection.
        Close,
    }

    async fn server(answers: Vec<(Vec<u8>, After)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = reqwest::Url::parse(&format!(
            "http://{}/api/v1/logs?since=x",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let (a, h) = (accepted.clone(), heads.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let (answers, heads) = (answers.clone(), h.clone());
                tokio::spawn(async move {
                    loop {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            match socket.read(&mut byte).await {
                                Ok(1) => head.push(byte[0]),
                                _ => return,
                            }
                        }
                        heads
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&head).into_owned());
                        let next = answers.lock().unwrap().next();
                        let Some((bytes, after)) = next else {
                            // Out of answers: holds the connection open, silent.
                            std::future::pending::<()>().await;
                            return;
                        };
                        if socket.write_all(&bytes).await.is_err() {
                            return;
                        }
                        if let After::Close = after {
                            return;
                        }
                    }
                });
            }
        });
        Server {
            url,
            accepted,
            heads,
        }
    }

    fn ok(body: &str, extra_headers: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn connector() -> Connector {
        Connector::new("factorwatch/test").unwrap()
    }

    fn headers() -> Vec<(HeaderName, HeaderValue)> {
        vec![(
            header::AUTHORIZATION,
            HeaderValue::from_static("SSWS secret"),
        )]
    }

    async fn get(c: &Connector, slot: &Slot, s: &Server) -> Result<Answer, String> {
        c.get(slot, &s.url, &headers(), 1 << 20, Duration::from_secs(5))
            .await
    }

    #[tokio::test]
    async fn polls_go_on_one_connection_with_the_request_okta_expects() {
        let s = server(vec![
            (ok("[]", ""), After::Stay),
            (ok("[1]", ""), After::Stay),
        ])
        .await;
        let (c, slot) = (connector(), Slot::default());
        let first = get(&c, &slot, &s).await.unwrap();
        assert_eq!((first.status, first.body.unwrap()), (200, "[]".to_owned()));
        let second = get(&c, &slot, &s).await.unwrap();
        assert_eq!(second.body.unwrap(), "[1]");
        assert_eq!(s.accepted.load(Ordering::SeqCst), 1, "one connection");
        let heads = s.heads.lock().unwrap().clone();
        let host = s.url.host_str().unwrap();
        let port = s.url.port().unwrap();
        for head in &heads {
            assert!(
                head.starts_with("GET /api/v1/logs?since=x HTTP/1.1\r\n"),
                "{head}"
            );
            let lower = head.to_ascii_lowercase();
            assert!(
                lower.contains(&format!("\r\nhost: {host}:{port}\r\n")),
                "{head}"
            );
            assert!(
                lower.contains("\r\nuser-agent: factorwatch/test\r\n"),
                "{head}"
            );
            assert!(
                lower.contains("\r\nauthorization: ssws secret\r\n"),
                "{head}"
            );
        }
    }

    #[tokio::test]
    async fn a_close_a_large_answer_or_bytes_after_the_answer_end_the_connection_not_the_polls() {
        let large = format!("[\"{}\"]", "x".repeat(super::super::KEPT_ANSWER));
        // Bytes after the answer, such as a second answer sent before it was asked for: never
        // read as the next poll's answer.
        let mut forged = ok("[]", "");
        forged.extend_from_slice(&ok("[\"forged\"]", ""));
        let firsts = [
            // The server closes after its answer without saying so. Whether the close has
            // arrived before the next poll (the stream is not used) or not (the request finds it
            // closed and goes again on a new one), the poll is answered.
            (ok("[]", ""), After::Close),
            (ok("[]", "connection: close\r\n"), After::Stay),
            (ok(&large, ""), After::Stay),
            (forged, After::Stay),
        ];
        for (first, after) in firsts {
            let s = server(vec![(first, after), (ok("[3]", ""), After::Stay)]).await;
            let (c, slot) = (connector(), Slot::default());
            get(&c, &slot, &s).await.unwrap();
            assert_eq!(get(&c, &slot, &s).await.unwrap().body.unwrap(), "[3]");
            assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
        }
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_and_a_long_answer_an_error() {
        let s = server(vec![]).await; // reads the request, never answers
        let c = connector();
        let silent = c
            .get(
                &Slot::default(),
                &s.url,
                &[],
                1 << 20,
                Duration::from_millis(300),
            )
            .await;
        assert_eq!(silent.err().as_deref(), Some("no answer in time"));

        let s = server(vec![(ok(&"1".repeat(2000), ""), After::Stay)]).await;
        let answer = c
            .get(&Slot::default(), &s.url, &[], 1000, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            matches!(answer.body, Err(BodyError::TooLarge { limit: 1000 })),
            "{:?}",
            answer.body.err()
        );
    }
}
