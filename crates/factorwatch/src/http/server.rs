//! Serving HTTP to whoever connects (Okta's Event Hooks come from the internet): a client gets a
//! bounded time to send its headers, a bounded number of connections exists at once, and a
//! shutdown waits for requests in flight only so long. A client that dribbles bytes can hold a
//! connection for seconds, not forever, and cannot keep the daemon from stopping.
//!
//! The body's own deadline is the handler's to set (it knows when to read it: after checking the
//! caller's secret); [`read_body`] is the way to read it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, warn};

/// How much a client may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers (also how long an idle kept-alive connection lives).
    pub header_timeout: Duration,
    /// Connections open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may still take before their connections close.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true; then stops accepting, lets requests
/// in flight finish for at most `limits.shutdown_grace`, and closes what is left. Handlers can
/// extract the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(request).await.into_response()) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            warn!(open = connections.len(), "requests still in flight after the shutdown grace; closing their connections");
        }
    }
    connections.shutdown().await;
}

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the body did not arrive within {0:?}")]
    TooSlow(Duration),
    #[error("the body could not be read: {0}")]
    Broken(String),
}

/// Reads a request body of at most `limit` bytes within `deadline`.
pub async fn read_body(
    body: axum::body::Body,
    limit: usize,
    deadline: Duration,
) -> Result<axum::body::Bytes, BodyError> {
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(BodyError::TooSlow(deadline)),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            // axum reports the limit as an error whose source is `LengthLimitError`.
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Err(BodyError::TooLarge(limit))
            } else {
                Err(BodyError::Broken(e.to_string()))
            }
        }
    }
}

/// Binds `addr`, or says why not.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(addr).await
}

use axum::response::IntoResponse;
