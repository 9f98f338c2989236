//! The syslog sink against a real rsyslog (Debian's `rsyslog` and `rsyslog-gnutls`, which
//! `.ci/run` installs): RFC 5424 over TCP with octet counting, and over TLS (RFC 5425) with the
//! server's certificate verified against a test CA. The test reads what rsyslog wrote and checks
//! every change arrived, parsed strictly, once.
//!
//! Without rsyslogd on the machine the test says so and passes, unless
//! `FACTORWATCH_REQUIRE_RSYSLOG=1` (as in CI), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use factorwatch::backoff::Backoff;
use factorwatch::formats::{Format, syslog as rfc5424};
use factorwatch::pipeline::worker::{self, WorkerPolicy};
use factorwatch::sinks::SinkDestination;
use factorwatch::sinks::syslog::{SyslogSink, Transport};
use factorwatch::store::Store;

const N: usize = 400;

fn rsyslogd() -> Option<PathBuf> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

struct Rsyslog(Child);

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (the CLI) is needed to make test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start(bin: &Path, dir: &Path, name: &str, port: u16, tls: bool) -> Rsyslog {
    let work = dir.join(format!("work-{name}"));
    std::fs::create_dir_all(&work).unwrap();
    let out = dir.join(format!("{name}.log"));
    let (global, module) = if tls {
        (
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="64k" defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{d}/ca.pem" defaultNetstreamDriverCertFile="{d}/server.pem"
       defaultNetstreamDriverKeyFile="{d}/server.key")"#,
                work = work.display(),
                d = dir.display()
            ),
            r#"module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")"#.to_owned(),
        )
    } else {
        (
            format!(
                r#"global(workDirectory="{}" maxMessageSize="64k")"#,
                work.display()
            ),
            r#"module(load="imtcp")"#.to_owned(),
        )
    };
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            r#"{global}
{module}
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="out") {{ action(type="omfile" file="{out}" template="raw") }}
input(type="imtcp" port="{port}" ruleset="out")
"#,
            out = out.display()
        ),
    )
    .unwrap();
    let rsyslog = Rsyslog(
        Command::new(bin)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join(format!("{name}.pid")))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return rsyslog;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("rsyslogd ({name}) did not listen on {port}");
}

async fn deliver_through(transport: Transport, port: u16, prefix: &str, format: Format) {
    let store = common::store_with(
        &format!("rsyslog-{prefix}"),
        common::changes(prefix, N, &["siem:rsyslog"]),
    )
    .await;
    let sink = SinkDestination::new(
        "siem:rsyslog",
        format,
        100,
        SyslogSink::new(format!("127.0.0.1:{port}"), transport, Default::default()),
    );
    let policy = WorkerPolicy {
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(300),
        },
        idle_poll: Duration::from_millis(20),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        store.clone(),
        Arc::new(sink),
        policy,
        Default::default(),
        stopped,
    ));
    common::eventually(30, "all written to rsyslog", async || {
        store
            .stats()
            .await
            .unwrap()
            .outbox
            .first()
            .is_some_and(|(_, delivered, ..)| *delivered == N as u64)
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
}

fn check(log: &Path, prefix: &str, format: &str) {
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().count() >= N {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut seen = HashSet::new();
    for line in text.lines() {
        let m = rfc5424::parse(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(m.app_name, "factorwatch");
        let uuid = m
            .params
            .iter()
            .find(|(k, _)| k == "uuid")
            .unwrap()
            .1
            .clone();
        assert!(uuid.starts_with(prefix));
        match format {
            "cef" => assert!(
                factorwatch::formats::cef::parse(&m.msg).is_ok(),
                "{}",
                m.msg
            ),
            _ => assert!(
                serde_json::from_str::<serde_json::Value>(&m.msg).is_ok(),
                "{}",
                m.msg
            ),
        }
        assert!(seen.insert(uuid.clone()), "{uuid} arrived twice");
    }
    assert_eq!(seen.len(), N, "every change arrived");
}

#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_receives_every_change_once_over_tcp_and_tls() {
    let Some(bin) = rsyslogd() else {
        assert!(
            std::env::var_os("FACTORWATCH_REQUIRE_RSYSLOG").is_none(),
            "rsyslogd is required here but not installed"
        );
        eprintln!(
            "rsyslogd not installed: skipping the real-syslog test (apt-get install rsyslog rsyslog-gnutls)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("fw-rsyslog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    common::certificates(&dir);
    let (tcp_port, tls_port) = (free_port(), free_port());
    let _tcp = start(&bin, &dir, "tcp", tcp_port, false);
    let _tls = start(&bin, &dir, "tls", tls_port, true);

    deliver_through(Transport::Tcp, tcp_port, "tcp", Format::Cef).await;
    check(&dir.join("tcp.log"), "tcp", "cef");

    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    deliver_through(
        Transport::tls(Some(&ca), "localhost").unwrap(),
        tls_port,
        "tls",
        Format::Record,
    )
    .await;
    check(&dir.join("tls.log"), "tls", "record");

    // A certificate the CA did not sign is refused: nothing is delivered, everything waits.
    let other = std::env::temp_dir().join(format!("fw-rsyslog-other-{}", std::process::id()));
    std::fs::create_dir_all(&other).unwrap();
    openssl(
        &other,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "x.key",
            "-out",
            "x.pem",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ],
    );
    let wrong_ca = std::fs::read(other.join("x.pem")).unwrap();
    let store = common::store_with(
        "rsyslog-untrusted",
        common::changes("bad", 3, &["siem:rsyslog"]),
    )
    .await;
    let sink = SinkDestination::new(
        "siem:rsyslog",
        Format::Record,
        10,
        SyslogSink::new(
            format!("127.0.0.1:{tls_port}"),
            Transport::tls(Some(&wrong_ca), "localhost").unwrap(),
            Default::default(),
        ),
    );
    use factorwatch::pipeline::worker::Destination;
    let outcomes = sink
        .deliver(
            &store
                .due("siem:rsyslog", 10, chrono::Utc::now(), true)
                .await
                .unwrap(),
        )
        .await;
    assert!(outcomes.iter().all(|o| matches!(o, factorwatch::pipeline::worker::Outcome::Unavailable(e) if e.contains("TLS"))), "{outcomes:?}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}
