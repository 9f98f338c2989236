//! The Okta client on its own: retries with Okta's retry headers, timeouts, errors it must not
//! retry, and OAuth service-app auth (`private_key_jwt`, DPoP, a refused token renewed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::HeaderMap;
use factorwatch::backoff::Backoff;
use factorwatch::okta::client::auth::{Credentials, ServiceApp};
use factorwatch::okta::client::{ClientError, OktaClient, Page, RetryPolicy};
use factorwatch::secret::Secret;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use okta_sim::server::RateLimits;
use serde_json::json;

fn quick(timeout_ms: u64) -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        },
        timeout: Duration::from_millis(timeout_ms),
    }
}

/// GETs a page of the System Log: as any request, or as a caught-up poller's poll, on the
/// connection kept between polls.
async fn page(client: &OktaClient, path: &str, kept: bool) -> Result<Page, ClientError> {
    client.fetch_page(&client.page_url(path)?, kept).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_times_out_is_retried_and_says_so() {
    timed_out_then_retried(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poll_on_the_kept_connection_that_times_out_is_retried_and_says_so() {
    timed_out_then_retried(true).await;
}

async fn timed_out_then_retried(kept: bool) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = {
        let calls = calls.clone();
        let seen = seen.clone();
        axum::Router::new().route(
            "/api/v1/logs",
            axum::routing::get(move |headers: HeaderMap| {
                let calls = calls.clone();
                let seen = seen.clone();
                async move {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    seen.lock().unwrap().push(
                        headers
                            .get("x-okta-retry-count")
                            .map(|v| v.to_str().unwrap().to_owned()),
                    );
                    if n == 0 {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    (
                        [
                            ("link", "</api/v1/logs?after=1>; rel=\"next\""),
                            ("x-okta-request-id", "req1"),
                        ],
                        "[]",
                    )
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = OktaClient::new(&base, Credentials::Ssws(Secret::new("t")), quick(300)).unwrap();
    let page = page(&client, "/api/v1/logs", kept).await.unwrap();
    assert_eq!(page.body, "[]");
    assert_eq!(
        page.next.as_ref().map(|u| u.as_str()),
        Some(format!("{base}/api/v1/logs?after=1").as_str()),
        "a relative next link is resolved on the org"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(*seen.lock().unwrap(), [None, Some("1".to_owned())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn okta_refusals_are_not_retried_and_outages_give_up_with_the_reason() {
    let sim = common::sim(RateLimits::default()).await;
    let client = OktaClient::new(
        &sim.base,
        Credentials::Ssws(Secret::new(common::TOKEN)),
        quick(2000),
    )
    .unwrap();
    match client.get("/api/v1/logs?filter=eventType%20eq").await {
        Err(ClientError::Okta { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (400, "E0000053"))
        }
        other => panic!("{other:?}"),
    }
    let wrong = OktaClient::new(
        &sim.base,
        Credentials::Ssws(Secret::new("wrong")),
        quick(2000),
    )
    .unwrap();
    match wrong.get("/api/v1/logs").await {
        Err(e @ ClientError::Okta { status: 401, .. }) => {
            assert!(!e.is_transient());
            assert!(
                !e.to_string().contains("wrong"),
                "the token is never in errors"
            );
        }
        other => panic!("{other:?}"),
    }
    sim.control(
        "/sim/faults",
        json!({ "endpoints": { "*": { "error_rate": 1.0 } } }),
    )
    .await;
    match client.get("/api/v1/logs").await {
        Err(e @ ClientError::Unavailable { attempts: 4, .. }) => {
            assert!(e.is_transient());
            assert!(e.to_string().contains("E0000009"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

const EC: &[u8] = include_bytes!("../../okta-sim/tests/keys/ec256.pem");
const RSA: &[u8] = include_bytes!("../../okta-sim/tests/keys/rsa2048.pem");

#[tokio::test(flavor = "multi_thread")]
async fn a_service_app_gets_dpop_tokens_and_renews_a_refused_one() {
    let sim = common::sim(RateLimits::default()).await;
    let ec = EncodingKey::from_ec_pem(EC).unwrap();
    let rsa = EncodingKey::from_rsa_pem(RSA).unwrap();
    let mut ec_jwk =
        serde_json::to_value(Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap()).unwrap();
    ec_jwk["kid"] = json!("ec1");
    let mut rsa_jwk =
        serde_json::to_value(Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap()).unwrap();
    rsa_jwk["kid"] = json!("rsa1");
    sim.control(
        "/sim/apps",
        json!([
            { "client_id": "0oaDPOP", "jwks": { "keys": [ec_jwk] }, "scopes": ["okta.logs.read", "okta.users.read"], "dpop_bound_access_tokens": true },
            { "client_id": "0oaPLAIN", "jwks": { "keys": [rsa_jwk] }, "scopes": ["okta.logs.read"] },
        ]),
    )
    .await;
    let token_url = format!("{}/oauth2/v1/token", sim.base);
    let app = |id: &str, pem: &[u8], kid: &str| ServiceApp {
        client_id: id.into(),
        private_key: Secret::new(String::from_utf8(pem.to_vec()).unwrap()),
        key_id: Some(kid.into()),
        scopes: vec!["okta.logs.read".into()],
    };
    for (id, pem, kid) in [("0oaDPOP", EC, "ec1"), ("0oaPLAIN", RSA, "rsa1")] {
        let client = OktaClient::new(
            &sim.base,
            Credentials::oauth(app(id, pem, kid), token_url.clone()).unwrap(),
            quick(2000),
        )
        .unwrap();
        for kept in [false, true] {
            assert!(page(&client, "/api/v1/logs", kept).await.is_ok(), "{id}");
            // Okta refuses the token (revoked): the client gets a new one and carries on.
            let revoked = sim.control("/sim/apps/revoke-tokens", json!({})).await;
            assert!(revoked["revoked"].as_u64().unwrap() >= 1);
            assert!(
                page(&client, "/api/v1/logs", kept).await.is_ok(),
                "{id} after revocation (kept: {kept})"
            );
        }
    }
    let bad = Credentials::oauth(app("0oaNOBODY", EC, "ec1"), token_url).unwrap();
    let client = OktaClient::new(&sim.base, bad, quick(2000)).unwrap();
    let e = client.get("/api/v1/logs").await.unwrap_err();
    assert!(e.to_string().contains("invalid_client"), "{e}");
    assert!(!format!("{e:?}").contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread")]
async fn polls_over_tls_keep_one_session_between_them() {
    use factorwatch::okta::client::kept::{Connector, Slot};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::env::temp_dir().join(format!("fw-kept-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    common::certificates(&dir);
    let certs: Vec<_> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route("/api/v1/logs", axum::routing::get(async || "[]"));
    {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    }
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let connector = Connector::trusting("factorwatch/test", &ca).unwrap();
    let slot = Slot::default();
    let url = reqwest::Url::parse(&format!("https://localhost:{port}/api/v1/logs")).unwrap();
    for _ in 0..3 {
        let answer = connector
            .get(&slot, &url, &[], 1 << 20, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!((answer.status, answer.body.unwrap().as_str()), (200, "[]"));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one TLS session for the polls"
    );
    // A server whose certificate the client does not trust is refused.
    let strangers = Connector::new("factorwatch/test").unwrap();
    let e = strangers
        .get(
            &Slot::default(),
            &url,
            &[],
            1 << 20,
            Duration::from_secs(10),
        )
        .await
        .err()
        .unwrap();
    assert!(e.contains("TLS"), "{e}");
}
