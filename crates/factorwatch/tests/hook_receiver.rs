//! The Event Hook receiver as the internet sees it: clients that send their headers a byte at a
//! time, announce a large body and drip it, open connections and say nothing, or call without the
//! secret — the verification GET included. None of them holds the receiver, or a stop, for long.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use factorwatch::daemon::Daemon;
use factorwatch::store::Store;
use okta_sim::server::RateLimits;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fw-receiver-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn daemon(
    name: &str,
    tune: impl FnOnce(&mut factorwatch::config::Config),
) -> (Daemon, common::Sim) {
    let sim = common::sim(RateLimits::default()).await;
    let mut config = common::config(&tempdir(name), &sim.base, true);
    config.orgs[0].system_log.enabled = false;
    tune(&mut config);
    (Daemon::start(&config, &common::env).await.unwrap(), sim)
}

/// Reads what the server sends until it closes the connection (or `within` passes: then None).
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut got)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(_) => None,
    }
}

/// The status line of the first answer on `stream`, read within `within`.
async fn status_line(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    while !got.windows(2).any(|w| w == b"\r\n") {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return None,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return None,
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    text.lines().next().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let (d, _sim) = daemon("slow-headers", |c| {
        c.hooks.header_timeout = Duration::from_millis(800)
    })
    .await;
    let mut s = TcpStream::connect(d.hook_addr.unwrap()).await.unwrap();
    s.write_all(b"POST /okta/acme HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One header byte every 200 ms, forever: the server must close the connection.
    let dripper = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(b"X").await.is_err() {
                return started.elapsed();
            }
        }
    };
    let cut_after = tokio::time::timeout(Duration::from_secs(15), dripper)
        .await
        .expect("the server never closed the connection");
    assert!(cut_after < Duration::from_secs(15));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_body_is_not_waited_for_without_the_secret() {
    let (d, _sim) = daemon("no-secret-body", |_| {}).await;
    let mut s = TcpStream::connect(d.hook_addr.unwrap()).await.unwrap();
    // A 1 MiB body announced, not a byte of it sent, and no secret: refused at once.
    s.write_all(
        b"POST /okta/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n",
    )
    .await
    .unwrap();
    let line = status_line(&mut s, Duration::from_secs(5)).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_drips_is_cut_off_even_with_the_secret() {
    let (d, _sim) = daemon("drip-body", |_| {}).await;
    let mut s = TcpStream::connect(d.hook_addr.unwrap()).await.unwrap();
    s.write_all(
        format!(
            "POST /okta/acme HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 1000\r\n\r\n{{",
            common::HOOK_SECRET
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (mut r, mut w) = s.into_split();
    let drip = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if w.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    drip.abort();
    assert_eq!(d.store.stats().await.unwrap().changes, 0);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_bounded_and_a_slot_frees_when_one_closes() {
    let (d, _sim) = daemon("bounded", |c| {
        c.hooks.max_connections = 2;
        c.hooks.header_timeout = Duration::from_secs(30);
    })
    .await;
    let addr: SocketAddr = d.hook_addr.unwrap();
    // Two connections that say nothing take both slots.
    let idle1 = TcpStream::connect(addr).await.unwrap();
    let _idle2 = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /okta/acme HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nx-okta-verification-challenge: c1\r\nConnection: close\r\n\r\n",
        common::HOOK_SECRET
    );
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(
        status_line(&mut third, Duration::from_millis(700)).await,
        None,
        "a third connection waits while two are open"
    );
    drop(idle1);
    let answer = until_closed(&mut third, Duration::from_secs(10))
        .await
        .expect("answered once a slot freed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"verification":"c1"}"#), "{answer}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn okta_s_verification_without_the_secret_fails() {
    let (d, sim) = daemon("verify", |_| {}).await;
    let url = format!("http://{}/okta/acme", d.hook_addr.unwrap());
    let hook = json!({ "url": url, "auth_header": { "name": "Authorization", "value": common::HOOK_SECRET } });
    // An impostor (or a broken Okta) calling without the header: not verified.
    sim.control(
        "/sim/faults",
        json!({ "hooks": { "verify_without_auth": true } }),
    )
    .await;
    let r = sim
        .http
        .post(format!("{}/sim/hooks", sim.base))
        .header("Content-Type", "application/json")
        .body(hook.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("401"));
    // Okta as documented, with the header: verified.
    sim.control("/sim/faults", json!({})).await;
    let verified = sim.control("/sim/hooks", hook).await;
    assert_eq!(verified["verificationStatus"], "VERIFIED");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_daemon_while_slow_clients_hold_connections() {
    let sim = common::sim(RateLimits::default()).await;
    let dir = tempdir("sigterm");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("factorwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
path = "{dir}/fw.db"
[[sinks]]
name = "file"
type = "file"
path = "{dir}/siem.ndjson"
[email]
dir = "{dir}/mail"
[hooks]
listen = "127.0.0.1:{port}"
[[orgs]]
name = "acme"
url = "{base}"
token_env = "TEST_OKTA_TOKEN"
[orgs.system_log]
enabled = false
[orgs.hook]
path = "/okta/acme"
secret_env = "TEST_HOOK_SECRET"
"#,
            dir = dir.display(),
            base = sim.base
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["run", "--config"])
        .arg(&config)
        .env("TEST_OKTA_TOKEN", common::TOKEN)
        .env("TEST_HOOK_SECRET", common::HOOK_SECRET)
        .env("FACTORWATCH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut connected = None;
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            connected = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One client dribbling its headers, one dribbling a body after the right secret.
    let mut headers = connected.expect("factorwatch listens");
    headers
        .write_all(b"POST /okta/acme HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut body = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    body.write_all(
        format!(
            "POST /okta/acme HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 100000\r\n\r\n{{",
            common::HOOK_SECRET
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let keep_dripping = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = headers.write_all(b"X").await;
            let _ = body.write_all(b" ").await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let mut exit = None;
    while sent.elapsed() < Duration::from_secs(30) {
        if let Some(status) = child.try_wait().unwrap() {
            exit = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    keep_dripping.abort();
    let Some(status) = exit else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("SIGTERM did not stop factorwatch within 30 s while slow clients were connected");
    };
    assert!(status.success(), "{status}");
}
