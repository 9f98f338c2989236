//! `factorwatch demo`: the whole pipeline against a simulated Okta org, with nothing to set up.
//! An in-process `okta-sim` plays a lively org (users enrolling and resetting factors amid
//! ordinary traffic, admins resetting them); factorwatch polls its System Log and receives its
//! Event Hook, and writes SIEM records and emails under the demo folder, printing where it stands.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use okta_sim::scenario::attacks::Attack;
use okta_sim::scenario::{Generator, Scenario};
use okta_sim::server::{self as sim, generate};

use super::CommandError;
use crate::config::{Config, OrgHookConfig, PollConfig};
use crate::daemon::Daemon;
use crate::store::Store;

#[derive(clap::Args)]
pub struct Args {
    /// Stop after this long (`30s`, `2m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<std::time::Duration>,
    /// Where the demo writes.
    #[arg(long, default_value = "factorwatch-demo")]
    dir: PathBuf,
    /// Seeds the simulated org.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn main(args: Args) -> Result<(), CommandError> {
    let options = Options {
        dir: args.dir,
        duration: args.duration,
        seed: args.seed,
    };
    run(options, &mut std::io::stdout()).await
}

pub struct Options {
    pub dir: PathBuf,
    /// Stop after this long (else at Ctrl-C).
    pub duration: Option<Duration>,
    pub seed: u64,
}

const TOKEN_VAR: &str = "FACTORWATCH_DEMO_OKTA_TOKEN";
/// Events already in the simulated org's System Log.
const BACKLOG_EVENTS: u64 = 2000;
const HOOK_SECRET_VAR: &str = "FACTORWATCH_DEMO_HOOK_SECRET";
const NOT_ME_KEY_VAR: &str = "FACTORWATCH_DEMO_NOT_ME_KEY";

pub async fn run(
    options: Options,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), CommandError> {
    let started = Instant::now();
    let token = random_secret();
    let hook_secret = random_secret();
    let not_me_key = random_secret();

    // The simulated org.
    let local = sim::Local::start(&token, sim::RateLimits::default(), options.seed)
        .await
        .map_err(CommandError::io("cannot start the simulated Okta org"))?;
    let (org, base) = (local.org.clone(), local.base.clone());
    let Some(mut generator) = Generator::new(Scenario::Steady, options.seed, 40, 0.15) else {
        return Err(CommandError::Usage("the demo scenario is empty".into()));
    };
    // Four days of the org's life (the detections need a few days of sign-ins to know where
    // people work from), ending with a help-desk takeover: a reset, then the attacker's phone
    // enrolled from abroad twenty minutes later.
    generate::backlog_with_attacks(
        &org,
        &mut generator,
        BACKLOG_EVENTS,
        chrono::Duration::days(4),
        &[(Attack::HelpDeskTakeover, chrono::Duration::minutes(40))],
    )
    .map_err(|e| {
        CommandError::Answer(format!(
            "cannot generate the simulated org: {}",
            e.error_summary
        ))
    })?;
    let live = tokio::spawn(generate::live(org.clone(), generator, 10.0));

    // factorwatch, on its embedded defaults, in the demo folder.
    let config = demo_config(&options.dir, &base)?;
    let env = |name: &str| match name {
        TOKEN_VAR => Some(token.clone()),
        HOOK_SECRET_VAR => Some(hook_secret.clone()),
        NOT_ME_KEY_VAR => Some(not_me_key.clone()),
        _ => None,
    };
    let daemon = Daemon::start(&config, &env).await?;
    let hook_url = match daemon.hook_addr {
        Some(addr) => format!("http://{addr}/okta/demo"),
        None => {
            return Err(CommandError::Usage(
                "the Event Hook receiver did not start".into(),
            ));
        }
    };
    // Registered as an admin would: Okta verifies it, then delivers.
    let http = crate::http::client::builder(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| CommandError::Answer(format!("cannot build an HTTP client: {e}")))?;
    let registered = http
        .post(format!("{base}/sim/hooks"))
        .header("Content-Type", "application/json")
        .body(serde_json::json!({ "url": hook_url, "auth_header": { "name": "Authorization", "value": hook_secret },
                                 "events": crate::okta::catalog::hook_subscription(config.detections.enabled) }).to_string())
        .send()
        .await
        .map_err(|e| CommandError::Answer(format!("cannot register the Event Hook: {e}")))?;
    if !registered.status().is_success() {
        return Err(CommandError::Answer(format!(
            "the simulated org refused the Event Hook: HTTP {}",
            registered.status()
        )));
    }

    let _ = writeln!(
        out,
        "factorwatch demo: a simulated Okta org at {base} (40 users, MFA changes among ordinary traffic)\n\
         polling its System Log every 2s and receiving its Event Hook at {hook_url}\n\
         writing to {dir}/: siem.ndjson (SIEM records and findings), mail/ (emails as .eml, the security team's copies too), factorwatch.db (the store)\n\
         each notice carries a \"this wasn't me\" link (open one from mail/ in a browser: pressing it signs the user out and suspends them in the simulated org)\n\
         the status page: {status}\n\
         {stop}",
        dir = options.dir.display(),
        status = config
            .observability
            .listen
            .map_or_else(|| "off".to_owned(), |a| format!("http://{a}/status")),
        stop = match options.duration {
            Some(d) => format!("stopping after {}", humantime::format_duration(d)),
            None => "Ctrl-C stops".into(),
        }
    );
    let deadline = async {
        match options.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let stop = super::run::stop_signal();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut told = 0;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = &mut stop => break,
            _ = tick.tick() => {
                if let Ok(stats) = daemon.store.stats().await {
                    let _ = writeln!(out, "[{:>4}s] {}", started.elapsed().as_secs(), crate::status::summary(&stats, chrono::Utc::now()));
                }
                for f in findings_in(&options.dir.join("siem.ndjson")).iter().skip(told) {
                    told += 1;
                    let _ = writeln!(out, "        FINDING {f}");
                }
            }
        }
    }
    live.abort();
    let stats = daemon.store.stats().await.ok();
    let emails = daemon
        .mail_dir
        .as_ref()
        .and_then(|d| std::fs::read_dir(d).ok())
        .map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        });
    daemon.stop().await;
    local.stop().await;
    if let Some(stats) = stats {
        let _ = writeln!(
            out,
            "stopped. {} MFA changes stored, {} findings; {emails} email files in {}; the SIEM records are in {}",
            stats.changes,
            stats.findings,
            options.dir.join("mail").display(),
            options.dir.join("siem.ndjson").display()
        );
    }
    Ok(())
}

/// The findings the SIEM file holds so far, one line each: severity, rule, summary.
fn findings_in(siem: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(siem) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| l.contains("\"type\":\"finding\""))
        .filter_map(|l| serde_json::from_str::<crate::detect::Finding>(l).ok())
        .map(|f| {
            format!(
                "({}) {}: {}",
                f.severity.as_str(),
                f.rule.as_str(),
                f.summary
            )
        })
        .collect()
}

fn demo_config(dir: &Path, base: &str) -> Result<Config, CommandError> {
    let mut c = Config::load(None, std::iter::empty())?;
    c.store.path = dir.join("factorwatch.db");
    c.sinks = vec![crate::sinks::SinkConfig::file(
        "file",
        &dir.join("siem.ndjson").display().to_string(),
    )];
    c.email.dir = dir.join("mail");
    c.email.help = "this is a demo: nothing to do.".into();
    c.email.security_copy = Some(
        "Security team <security-team@example.com>"
            .parse()
            .map_err(|e| CommandError::Usage(format!("the demo's security address: {e}")))?,
    );
    // Short enough to see notices within a demo, long enough to see changes combined.
    c.email.coalesce = Duration::from_secs(3);
    // The "this wasn't me" links name the page's address, so it is chosen before listening.
    let hook_port = free_port()?;
    c.hooks.listen = std::net::SocketAddr::from(([127, 0, 0, 1], hook_port));
    c.observability.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?)));
    c.not_me.public_url = Some(format!("http://127.0.0.1:{hook_port}"));
    c.not_me.key_env = Some(NOT_ME_KEY_VAR.into());
    c.not_me.actions = vec![
        crate::report::Step::ClearSessions,
        crate::report::Step::Suspend,
    ];
    c.orgs = vec![crate::config::OrgConfig {
        name: "demo".into(),
        url: base.into(),
        token_env: Some(TOKEN_VAR.into()),
        token_file: None,
        oauth: None,
        system_log: PollConfig {
            enabled: true,
            since: crate::config::Since::Age(Duration::from_secs(5 * 24 * 3600)),
            interval: Duration::from_secs(2),
            types: None,
        },
        events_api: PollConfig {
            enabled: false,
            ..PollConfig::default()
        },
        hook: Some(OrgHookConfig {
            path: "/okta/demo".into(),
            auth_header: "authorization".into(),
            secret_env: Some(HOOK_SECRET_VAR.into()),
            secret_file: None,
        }),
        danger_plaintext_credentials: false,
    }];
    Ok(c)
}

/// A loopback port free a moment ago.
fn free_port() -> Result<u16, CommandError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(CommandError::io("cannot find a free port for the demo"))
}

fn random_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
