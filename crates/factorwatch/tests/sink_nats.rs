//! The NATS JetStream sink against a real `nats-server` (Debian's package, which `.ci/run`
//! installs): every change stored in the stream once acknowledged, a repeat after a crash dropped
//! by JetStream's deduplication, an outage waited out, a subject no stream captures named by the
//! healthcheck.
//!
//! Without `nats-server` the test says so and passes, unless `FACTORWATCH_REQUIRE_NATS=1` (as in
//! CI), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use factorwatch::pipeline::worker::{self, Destination, Outcome};
use factorwatch::store::Store;

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: the server flushes its store and stops.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<&'static str> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}

async fn start(bin: &str, port: u16, dir: &std::path::Path) -> Server {
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.with_extension("log"))
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let server = Server { child };
    common::eventually(20, "nats-server listens", async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    server
}

fn sink(
    port: u16,
    subject: &str,
) -> factorwatch::sinks::SinkDestination<factorwatch::sinks::AnySink> {
    let config: factorwatch::sinks::SinkConfig = toml::from_str(&format!(
        "name = \"lake\"\ntype = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\nsubject = \"{subject}\"\n"
    ))
    .unwrap();
    config.check(0).unwrap();
    factorwatch::sinks::build(&config, &|_| None).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_the_stream_once_acknowledged_and_repeats_are_dropped() {
    let Some(bin) = binary() else {
        assert!(
            std::env::var_os("FACTORWATCH_REQUIRE_NATS").is_none(),
            "nats-server is required here"
        );
        eprintln!(
            "nats-server not installed: skipping the NATS sink test (apt-get install nats-server)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("fw-nats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = start(bin, port, &dir).await;
    let client = async_nats::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let stream_config = async_nats::jetstream::stream::Config {
        name: "OKTA_MFA".into(),
        subjects: vec!["security.okta.>".into()],
        ..Default::default()
    };
    let mut stream = js.create_stream(stream_config.clone()).await.unwrap();

    let lake = sink(port, "security.okta.mfa");
    assert!(lake.healthcheck().await.unwrap().contains("OKTA_MFA"));
    let e = sink(port, "nobody.listens")
        .healthcheck()
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no JetStream stream captures nobody.listens"),
        "{e}"
    );

    // What is published, as any subscriber of the subject sees it.
    let mut tap = client.subscribe("security.okta.mfa").await.unwrap();
    const N: usize = 30;
    let store = common::store_with("nats", common::changes("n", N, &["siem:lake"])).await;
    let rows = store
        .due("siem:lake", 100, chrono::Utc::now(), true)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let lake = Arc::new(lake);
    let task = tokio::spawn(worker::run(
        store.clone(),
        lake.clone(),
        common::quick_policy(),
        Default::default(),
        stopped,
    ));
    common::eventually(30, "every change acknowledged", async || {
        store
            .stats()
            .await
            .unwrap()
            .outbox
            .first()
            .is_some_and(|(_, d, ..)| *d == N as u64)
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, N as u64);
    let first = futures_util::StreamExt::next(&mut tap).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(body["class_uid"], 3001, "OCSF by default");
    let id = first
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.to_string());
    assert_eq!(id.as_deref(), Some("acme/n00000"));
    // A crash between sending and recording repeats the batch: JetStream drops the repeat.
    let again = lake.deliver(&rows).await;
    assert!(again.iter().all(|o| *o == Outcome::Delivered), "{again:?}");
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        N as u64,
        "no duplicate stored"
    );

    // The server gone: the rows wait, nothing is dead-lettered; back: delivered.
    drop(server);
    let down = lake.deliver(&rows[..2]).await;
    assert!(
        down.iter().all(|o| matches!(o, Outcome::Unavailable(_))),
        "{down:?}"
    );
    let _server = start(bin, port, &dir).await;
    let admin = async_nats::jetstream::new(
        async_nats::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap(),
    );
    admin.get_or_create_stream(stream_config).await.unwrap();
    // Each try may wait out the ack timeout while the client reconnects: bound by wall time.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let outcomes = lake.deliver(&rows[..2]).await;
        if outcomes.iter().all(|o| *o == Outcome::Delivered) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never delivered after the server came back: {outcomes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("log"));
}
