//! What `config validate` accepts, `run` can start: configurations that once passed validation and
//! then panicked are refused with a message naming the key; credentials never travel in clear text
//! without a loud opt-in; secrets are never literal in the file; and for any configuration the
//! parser accepts, starting the daemon returns (Ok or a clear error) instead of panicking.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use factorwatch::config::{Config, ConfigError};
use proptest::prelude::*;

fn load(text: &str) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir().join(format!("fw-config-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{:x}.toml", seahash(text)));
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path), std::iter::empty())
}

fn seahash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn org(url: &str, extra: &str) -> String {
    format!("[[orgs]]\nname = \"acme\"\nurl = \"{url}\"\ntoken_env = \"T\"\n{extra}\n")
}

#[test]
fn configurations_that_made_run_panic_are_refused_by_validate() {
    for (text, why) in [
        (
            "[[orgs]]\nname = \"a\"\nurl = \"https://a.okta.com\"\n[orgs.hook]\npath = \"/okta\"\nsecret_env = \"S\"\n\
             [[orgs]]\nname = \"b\"\nurl = \"https://b.okta.com\"\n[orgs.hook]\npath = \"/okta\"\nsecret_env = \"S\"\n",
            "already another org's hook path",
        ),
        (
            &org(
                "https://a.okta.com",
                "[orgs.hook]\npath = \"/okta/*\"\nsecret_env = \"S\"",
            ),
            "hook.path",
        ),
        (
            &org(
                "https://a.okta.com",
                "[orgs.hook]\npath = \"/okta/{org}\"\nsecret_env = \"S\"",
            ),
            "hook.path",
        ),
        (
            &org(
                "https://a.okta.com",
                "[orgs.hook]\npath = \"/okta/:org\"\nsecret_env = \"S\"",
            ),
            "hook.path",
        ),
        (
            "[not_me]\npublic_url = \"https://fw.example.com\"\n",
            "not_me.key_env",
        ),
        (
            "[not_me]\npublic_url = \"http://fw.example.com\"\nkey_env = \"K\"\n",
            "not_me.public_url",
        ),
        (
            "[not_me]\npublic_url = \"https://fw.example.com\"\nkey_env = \"K\"\nactions = [\"delete_user\"]\n",
            "not_me.actions",
        ),
        (
            "[email]\ntransport = \"smtp\"\n[email.smtp]\nhost = \"smtp.example.com\"\nrate = 1e-300\n",
            "email.smtp.rate",
        ),
        (
            "[email]\ntransport = \"smtp\"\n[email.smtp]\nhost = \"smtp.example.com\"\nrate = -1.0\n",
            "email.smtp.rate",
        ),
        (
            "[email]\ntransport = \"smtp\"\n[email.smtp]\nhost = \"smtp.example.com\"\nrate = nan\n",
            "email.smtp.rate",
        ),
        (
            "[[sinks]]\nname = \"f\"\ntype = \"file\"\npath = \"x\"\nbatch_size = 0\n",
            "batch_size",
        ),
        (
            "[[sinks]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"h:514\"\nfacility = 200\n",
            "facility",
        ),
        (
            "[[sinks]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"no-port\"\n",
            "host:port",
        ),
        ("[email]\nconcurrency = 0\n", "email.concurrency"),
        (
            "[email]\nsecurity_copy = \"not an address\"\n",
            "email.security_copy",
        ),
        ("[hooks]\nmax_body_bytes = 0\n", "max_body_bytes"),
        (
            &org("https://a.okta.com", "[orgs.system_log]\ninterval = \"0s\""),
            "interval",
        ),
        (
            "[[sinks]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"not a url\"\n",
            "not an http(s) URL",
        ),
    ] {
        let e = load(text).expect_err(why).to_string();
        assert!(e.contains(why), "{why}: {e}");
    }
}

#[test]
fn credentials_never_travel_in_clear_text_without_a_loud_opt_in() {
    let e = load(&org("http://acme.okta.com", ""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("clear text") && e.contains("orgs[0].url"), "{e}");
    // The simulator and local relays keep working; a named opt-in allows the rest.
    load(&org("http://127.0.0.1:8080", "")).unwrap();
    load(&org("http://localhost:8080", "")).unwrap();
    load(&org("http://[::1]:8080", "")).unwrap();
    load(&org(
        "http://acme.test",
        "danger_plaintext_credentials = true",
    ))
    .unwrap();

    let smtp = |host: &str, extra: &str| {
        format!(
            "[email]\ntransport = \"smtp\"\n[email.smtp]\nhost = \"{host}\"\nsecurity = \"none\"\nusername = \"u\"\npassword_env = \"P\"\n{extra}\n"
        )
    };
    let e = load(&smtp("smtp.example.com", "")).unwrap_err().to_string();
    assert!(e.contains("clear text"), "{e}");
    load(&smtp("127.0.0.1", "")).unwrap();
    load(&smtp(
        "smtp.example.com",
        "danger_plaintext_credentials = true",
    ))
    .unwrap();
    // Without a password there is no credential to expose (an internal relay).
    load("[email]\ntransport = \"smtp\"\n[email.smtp]\nhost = \"relay.example.com\"\nsecurity = \"none\"\n")
        .unwrap();

    for sink in [
        "[[sinks]]\nname = \"s\"\ntype = \"splunk_hec\"\nurl = \"http://splunk.example.com:8088\"\ntoken_env = \"T\"\n",
        "[[sinks]]\nname = \"e\"\ntype = \"elasticsearch\"\nurl = \"http://es.example.com\"\nindex = \"i\"\napi_key_env = \"K\"\n",
        "[[sinks]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"http://lake.example.com\"\n[sinks.headers]\nAuthorization = { env = \"K\" }\n",
    ] {
        let e = load(sink).unwrap_err().to_string();
        assert!(e.contains("clear text"), "{sink}: {e}");
    }
    // No credentials, no refusal: plain HTTP to an Elasticsearch without auth is the operator's call.
    load("[[sinks]]\nname = \"e\"\ntype = \"elasticsearch\"\nurl = \"http://es.example.com\"\nindex = \"i\"\n")
        .unwrap();
}

#[test]
fn webhook_urls_and_header_values_are_secrets_never_literal() {
    for (text, key) in [
        (
            "[email]\nsecurity_webhook = \"https://hooks.slack.com/services/T0/B0/x\"\n",
            "email.security_webhook",
        ),
        (
            "[observability]\nlag_alarm_webhook = \"https://hooks.slack.com/services/T0/B0/x\"\n",
            "observability.lag_alarm_webhook",
        ),
    ] {
        let e = load(text).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("_env"), "{e}");
        assert!(
            !e.contains("hooks.slack.com"),
            "the secret is not repeated: {e}"
        );
    }
    let e = load(
        "[[sinks]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"https://lake.example.com\"\n[sinks.headers]\nAuthorization = \"Bearer s3cret\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("headers.Authorization") && e.contains("env"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
    let c = load(
        "[email]\nsecurity_webhook_env = \"SLACK\"\n[[sinks]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"https://lake.example.com\"\n[sinks.headers]\nAuthorization = { file = \"/run/secrets/lake\" }\n",
    )
    .unwrap();
    let shown = format!("{c:?}");
    assert!(shown.contains("SLACK") && !shown.contains("hooks.slack.com"));
}

#[test]
fn a_secret_from_env_or_file_never_shows_in_debug_or_errors() {
    let env =
        |name: &str| (name == "URL").then(|| "http://hooks.example.com/T/B/sekrit".to_owned());
    let c = load("[email]\nsecurity_webhook_env = \"URL\"\n").unwrap();
    // Plain http to another machine: refused without repeating the URL.
    let e = factorwatch::chat::security_webhook(&c, &env)
        .unwrap_err()
        .to_string();
    assert!(e.contains("https://") && !e.contains("sekrit"), "{e}");
}

/// A value from `ordinary` nine times in ten, else one from `extreme`.
fn mostly(ordinary: &[&'static str], extreme: &[&'static str]) -> BoxedStrategy<&'static str> {
    prop_oneof![
        9 => prop::sample::select(ordinary.to_vec()),
        1 => prop::sample::select(extreme.to_vec()),
    ]
    .boxed()
}

/// Configurations whose every setting is usually ordinary and sometimes extreme.
fn knobs() -> impl Strategy<Value = String> {
    let path = || {
        mostly(
            &["/okta/acme", "/ok-ay_1.2~", "/okta/acme/x"],
            &[
                "/",
                "/okta/*",
                "/okta/{x}",
                "/okta/:x",
                "okta",
                "/a//b",
                "/a/../b",
                "/ü",
            ],
        )
    };
    let rate = mostly(
        &["0", "0.5", "10"],
        &["1e-300", "-1", "1e300", "nan", "inf", "1e-5"],
    );
    let duration = || {
        mostly(
            &["1ms", "15s", "2m"],
            &["0s", "1ns", "100000d", "584942417355y"],
        )
    };
    let number = || mostly(&["1", "7", "100"], &["0", "10001", "4294967295", "65537"]);
    let url = mostly(
        &["https://acme.okta.com", "http://127.0.0.1:1"],
        &[
            "http://evil.example",
            "ftp://x",
            "https://",
            "not a url",
            "https://[::1]:9",
        ],
    );
    let facility = mostly(&["10", "23"], &["24", "255"]);
    (
        (path(), path(), rate, duration(), duration()),
        (number(), number(), number(), url, facility, any::<bool>()),
    )
        .prop_map(|((p1, p2, rate, d1, d2), (n1, n2, n3, url, facility, two))| {
            let second = if two {
                format!(
                    "[[orgs]]\nname = \"b\"\nurl = \"https://b.okta.com\"\ntoken_env = \"T\"\n[orgs.hook]\npath = \"{p2}\"\nsecret_env = \"S\"\n"
                )
            } else {
                String::new()
            };
            format!(
                "[store]\npath = \"STORE\"\n[hooks]\nlisten = \"127.0.0.1:0\"\nmax_connections = {n3}\nheader_timeout = \"{d2}\"\n\
                 [email]\ndir = \"MAIL\"\ntransport = \"smtp\"\ncoalesce = \"{d1}\"\nconcurrency = {n1}\n\
                 [email.smtp]\nhost = \"127.0.0.1\"\nport = 9\nsecurity = \"none\"\nrate = {rate}\ntimeout = \"{d2}\"\n\
                 [[sinks]]\nname = \"f\"\ntype = \"file\"\npath = \"SIEM\"\nbatch_size = {n2}\nmax_attempts = {n1}\n\
                 [[sinks]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"127.0.0.1:9\"\nfacility = {facility}\n\
                 [[orgs]]\nname = \"acme\"\nurl = \"{url}\"\ntoken_env = \"T\"\n[orgs.system_log]\ninterval = \"{d1}\"\n[orgs.hook]\npath = \"{p1}\"\nsecret_env = \"S\"\n{second}"
            )
        })
}

#[test]
fn whatever_validate_accepts_starts_without_a_panic() {
    let started = std::sync::atomic::AtomicUsize::new(0);
    // Seeded: the same 64 configurations every run, so the count below cannot flake.
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let rng = proptest::test_runner::TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(config, rng);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runner.run(&knobs(), |text| {
        let dir = std::env::temp_dir().join(format!(
            "fw-config-prop-{}-{:x}",
            std::process::id(),
            seahash(&text)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let text = text
            .replace("STORE", &dir.join("fw.db").display().to_string())
            .replace("MAIL", &dir.join("mail").display().to_string())
            .replace("SIEM", &dir.join("siem.ndjson").display().to_string());
        if let Ok(config) = load(&text) {
            let env = |name: &str| match name {
                "T" => Some("token".to_owned()),
                "S" => Some("secret".to_owned()),
                _ => None,
            };
            let outcome = rt.block_on(async {
                tokio::spawn(async move {
                    match factorwatch::daemon::Daemon::start(&config, &env).await {
                        Ok(d) => {
                            d.stop().await;
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                })
                .await
            });
            prop_assert!(outcome.is_ok(), "a panic starting:\n{}", text);
            started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    });
    result.unwrap();
    // Not a vacuous property: ordinary settings dominate, so many configurations start.
    let started = started.into_inner();
    assert!(
        started >= 5,
        "only {started} of 64 configurations were accepted"
    );
}

#[test]
fn detection_rules_are_set_per_rule_and_mistakes_name_the_key() {
    let c = load(
        "[detections.rules.bulk_admin_reset]\nthreshold = 10\nwindow = \"30m\"\nseverity = \"critical\"\n\
         [detections.rules.shared_device]\nenabled = false\n",
    )
    .unwrap();
    let s = c.detections.settings();
    use factorwatch::detect::{RuleId, Severity};
    let bulk = s.get(RuleId::BulkAdminReset);
    assert_eq!(
        (bulk.threshold, bulk.window, bulk.severity),
        (10, chrono::Duration::minutes(30), Severity::Critical)
    );
    assert!(!s.get(RuleId::SharedDevice).enabled);
    assert_eq!(s.get(RuleId::MfaLeftOff), RuleId::MfaLeftOff.defaults());
    assert!(c.detections.enabled);

    for (text, says) in [
        (
            "[detections.rules.no_such_rule]\nenabled = true\n",
            "reset_then_enroll_new_place",
        ),
        (
            "[detections.rules.mfa_left_off]\nthreshold = 2\n",
            "detections.rules.mfa_left_off.threshold",
        ),
        (
            "[detections.rules.shared_phone]\nthreshold = 1\n",
            "detections.rules.shared_phone.threshold",
        ),
        (
            "[detections.rules.bypass_burst]\nwindow = \"0s\"\n",
            "detections.rules.bypass_burst.window",
        ),
        (
            "[detections.rules.bypass_burst]\nwindow = \"soon\"\n",
            "bypass_burst",
        ),
        (
            "[detections.rules.bypass_burst]\nseverity = \"urgent\"\n",
            "`low`, `medium`, `high`, `critical`",
        ),
        ("[detections]\nphone_key = \"literal\"\n", "phone_key"),
        (
            "[detections]\nphone_key_env = \"A\"\nphone_key_file = \"/b\"\n",
            "one of phone_key_env",
        ),
    ] {
        let e = load(text).unwrap_err().to_string();
        assert!(e.contains(says), "{text:?}: {e}");
    }
}
