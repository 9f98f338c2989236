//! "This wasn't me" in a real headless browser (Debian's chromium through chromedriver, which
//! `.ci/run` installs), with a real SMTP server (aiosmtpd writing a Maildir): an MFA change
//! arrives from okta-sim → the notice reaches the SMTP server → the link is taken from it → the
//! browser opens it and presses the button → okta-sim shows the sessions cleared and the user
//! suspended → the finding is in the SIEM file → the link no longer works. The same browser then
//! loads the status page and finds the change, the finding and the outbox figures. With
//! `FACTORWATCH_SCREENSHOTS=<dir>` it saves the pages (phone and desktop, English and French).
//!
//! Without chromium, chromedriver or aiosmtpd the test says so and passes, unless
//! `FACTORWATCH_REQUIRE_BROWSER=1` (as in CI), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use factorwatch::daemon::Daemon;
use factorwatch::report::Step;
use fantoccini::{ClientBuilder, Locator};
use okta_sim::server::RateLimits;
use serde_json::{Value, json};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            candidates.iter().find_map(|c| {
                Command::new("which")
                    .arg(c)
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            })
        })
}

/// A port free a moment ago (the link's public URL must name the port before the daemon binds).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_port(port: u16, what: &str) {
    common::eventually(20, what, async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
}

/// The messages aiosmtpd's Maildir holds, quoted-printable soft breaks undone.
fn maildir(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .replace("=\r\n", "")
                .replace("=\n", "")
        })
        .collect()
}

fn link_in(message: &str) -> Option<String> {
    let i = message.find("/not-me/")?;
    let start = message[..i].rfind("http")?;
    let end = i
        + 8
        + message[i + 8..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(message.len() - i - 8);
    Some(message[start..end].to_owned())
}

async fn shot(client: &fantoccini::Client, name: &str, width: u32, height: u32) {
    let Ok(dir) = std::env::var("FACTORWATCH_SCREENSHOTS") else {
        return;
    };
    client.set_window_size(width, height).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let png = client.screenshot().await.unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
}

#[tokio::test]
async fn a_user_secures_their_account_from_the_notice_in_a_real_browser() {
    let required = std::env::var("FACTORWATCH_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let chromium = which(&["/usr/bin/chromium", "chromium", "chromium-browser"]);
    let driver = which(&["/usr/bin/chromedriver", "chromedriver"]);
    let aiosmtpd = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    let (Some(chromium), Some(driver), true) = (chromium, driver, aiosmtpd) else {
        assert!(
            !required,
            "FACTORWATCH_REQUIRE_BROWSER=1 but chromium, chromedriver or python3's aiosmtpd is missing"
        );
        eprintln!(
            "skipped: chromium, chromedriver and python3 aiosmtpd are needed (apt install chromium chromium-driver; pip install aiosmtpd)"
        );
        return;
    };

    let dir = std::env::temp_dir().join(format!("fw-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // A real SMTP server, writing what it receives to a Maildir.
    let smtp_port = free_port();
    let maildir_path = dir.join("maildir");
    let _smtp = Killed(
        Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{smtp_port}"),
            ])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(smtp_port, "the SMTP server").await;

    // Okta: two users, one reading English in New York, one French in Paris.
    let sim = common::sim(RateLimits::default()).await;
    sim.control(
        "/sim/users",
        json!([
            { "id": common::user_id(0), "profile": { "login": "user0@example.com", "email": "user0@mail.example.com",
              "firstName": "Ada", "locale": "en_US", "timezone": "America/New_York" } },
            { "id": common::user_id(1), "profile": { "login": "user1@example.com", "email": "user1@mail.example.com",
              "firstName": "Émile", "locale": "fr_FR", "timezone": "Europe/Paris" } }
        ]),
    )
    .await;

    let hook_port = free_port();
    let status_port = free_port();
    let public_url = format!("http://127.0.0.1:{hook_port}");
    let mut c = common::config(&dir, &sim.base, false);
    c.hooks.listen = ([127, 0, 0, 1], hook_port).into();
    c.observability.listen = Some(([127, 0, 0, 1], status_port).into());
    c.email.transport = factorwatch::config::EmailTransport::Smtp;
    c.email.smtp = Some(
        toml::from_str(&format!(
            "host = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\n"
        ))
        .unwrap(),
    );
    c.email.help = "Call the help desk on 555 0100.".into();
    c.not_me.public_url = Some(public_url.clone());
    c.not_me.key_env = Some("TEST_NOT_ME_KEY".into());
    c.not_me.actions = vec![Step::ClearSessions, Step::Suspend];
    c.not_me.wait = Duration::from_secs(10);
    let env = |name: &str| match name {
        "TEST_NOT_ME_KEY" => Some("browser-test-key-of-at-least-32-characters".to_owned()),
        other => common::env(other),
    };
    let daemon = Daemon::start(&c, &env).await.unwrap();
    assert_eq!(daemon.hook_addr.map(|a| a.port()), Some(hook_port));

    // Each user enrolls an SMS factor; each notice reaches the SMTP server with its link.
    let uuids = [
        "22222222-aaaa-4bbb-8ccc-000000000000",
        "22222222-aaaa-4bbb-8ccc-000000000001",
    ];
    let second = {
        let mut e = common::mfa_event(uuids[1], 0, 1);
        let u = json!({ "id": common::user_id(1), "type": "User", "alternateId": "user1@example.com", "displayName": "User 1" });
        e["actor"] = u.clone();
        e["target"] = json!([u]);
        e
    };
    sim.control(
        "/sim/events",
        json!([common::mfa_event(uuids[0], 0, 1), second]),
    )
    .await;
    common::eventually(30, "two notices at the SMTP server", async || {
        maildir(&maildir_path).len() >= 2
    })
    .await;
    let messages = maildir(&maildir_path);
    let link_for = |who: &str| {
        messages
            .iter()
            .find(|m| m.contains(&format!("To: {who}")))
            .and_then(|m| link_in(m))
            .unwrap_or_else(|| panic!("no link in the notice to {who}"))
    };
    let english = link_for("user0@mail.example.com");
    let french = link_for("user1@mail.example.com");
    assert!(english.starts_with(&public_url), "{english}");

    // The browser.
    let driver_port = free_port();
    let _driver = Killed(
        Command::new(&driver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(driver_port, "chromedriver").await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]
        }),
    );
    let client = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .unwrap();
    let text = async |client: &fantoccini::Client| {
        client
            .find(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    // The French page, for the record (nothing pressed).
    client.goto(&french).await.unwrap();
    let page = text(&client).await;
    assert!(page.contains("Était-ce vous ?"), "{page}");
    assert!(
        page.contains("Europe/Paris") || page.contains("CET") || page.contains("CEST"),
        "{page}"
    );
    shot(&client, "not-me-fr-phone", 390, 844).await;
    shot(&client, "not-me-fr-desktop", 1280, 900).await;

    // The English page: opened (nothing happens), then the button pressed.
    client.goto(&english).await.unwrap();
    let page = text(&client).await;
    assert!(page.contains("Was this you?"), "{page}");
    assert!(page.contains("UTC"), "{page}");
    shot(&client, "not-me-en-desktop", 1280, 900).await;
    shot(&client, "not-me-en-phone", 390, 844).await;
    let calls = |sim: &common::Sim| {
        let url = format!("{}/sim/calls", sim.base);
        let http = sim.http.clone();
        async move {
            let t = http.get(url).send().await.unwrap().text().await.unwrap();
            serde_json::from_str::<Vec<Value>>(&t).unwrap()
        }
    };
    assert!(
        calls(&sim).await.is_empty(),
        "opening the page does nothing"
    );
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The page is being replaced by the answer meanwhile: an element read mid-navigation is gone
    // ("stale element reference") or not there yet; that is "not yet", not a failure.
    let try_text = async |client: &fantoccini::Client| match client.find(Locator::Css("main")).await
    {
        Ok(main) => main.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let mut done = String::new();
    for _ in 0..150 {
        done = try_text(&client).await;
        if done.contains("signed out everywhere") && done.contains("suspended") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        done.contains("signed out everywhere") && done.contains("suspended"),
        "{done}"
    );
    shot(&client, "not-me-en-done-phone", 390, 844).await;

    // okta-sim: the sessions cleared and the user suspended.
    let asked: Vec<String> = calls(&sim)
        .await
        .iter()
        .map(|c| format!("{} {}", c["method"].as_str().unwrap(), c["status"]))
        .collect();
    assert_eq!(asked, ["DELETE 204", "POST 200"]);
    let user: Value = serde_json::from_str(
        &sim.http
            .get(format!("{}/api/v1/users/{}", sim.base, common::user_id(0)))
            .header("Authorization", format!("SSWS {}", common::TOKEN))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(user["status"], "SUSPENDED");

    // The finding in the SIEM file.
    let siem = dir.join("siem.ndjson");
    common::eventually(
        10,
        "the reported_by_user finding in the SIEM file",
        async || {
            std::fs::read_to_string(&siem)
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains("\"reported_by_user\"") && l.contains(uuids[0]))
        },
    )
    .await;

    // The link no longer works.
    client.goto(&english).await.unwrap();
    let again = text(&client).await;
    assert!(again.contains("already used"), "{again}");
    assert!(
        client.find(Locator::Css("button")).await.is_err(),
        "no button any more"
    );

    // The status page: the change, the finding and the outbox figures.
    client
        .goto(&format!("http://127.0.0.1:{status_port}/status"))
        .await
        .unwrap();
    let mut status = String::new();
    for _ in 0..50 {
        status = text(&client).await;
        if status.contains("reported_by_user") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.refresh().await.unwrap();
    }
    assert!(status.contains("reported_by_user"), "the finding: {status}");
    assert!(status.contains("enrolled sms"), "the change: {status}");
    assert!(
        status.contains("u***@example.com"),
        "users masked: {status}"
    );
    assert!(
        !status.contains("user0@example.com"),
        "no address in clear: {status}"
    );
    let outbox = client
        .find(Locator::Css("#outbox"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        outbox.contains("email") && outbox.contains("okta:response"),
        "{outbox}"
    );
    let reports = client
        .find(Locator::Css("#reports"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(reports.contains("suspend: done"), "{reports}");
    shot(&client, "status-desktop", 1280, 1000).await;
    shot(&client, "status-phone", 390, 844).await;

    client.close().await.unwrap();
    daemon.stop().await;
}
