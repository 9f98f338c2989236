//! `okta-sim`: serve a simulated Okta org.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;

use okta_sim::scenario::{Generator, Scenario};
use okta_sim::server::{self, Config, RateLimits, generate};

#[derive(Parser)]
#[command(
    name = "okta-sim",
    version,
    about = "A simulated Okta org that follows Okta's documented API behaviour",
    long_about = "A simulated Okta org that follows Okta's documented API behaviour: the System Log \
(/api/v1/logs), the legacy Events API (/api/v1/events), Users and Factors, Event Hooks (management \
API, verification, deliveries), SSWS and OAuth 2.0 private_key_jwt (+ DPoP) auth, rate limits, and a \
test control API under /sim. The first line on stdout is `listening on http://127.0.0.1:PORT`; with --orgs N, one such line per org."
)]
struct Cli {
    /// TCP port on 127.0.0.1; 0 picks a free one (printed on the first line). With --orgs N,
    /// org i listens on PORT+i (or each on a free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// How many orgs to serve, each with its own port, users, events and rate limits (as an
    /// MSSP's many customers); org i is seeded with SEED+i. Events and rate are per org.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    orgs: u16,
    /// The SSWS API token clients may send (`Authorization: SSWS <token>`).
    #[arg(long, env = "OKTA_SIM_TOKEN", hide_env_values = true)]
    token: String,
    /// Seeds the generated org and every random choice (faults, hook duplicates).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many users the generated org has.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// What the org does: `none` is quiet (events come only from the control API).
    #[arg(long, value_enum, default_value_t = Scenario::Steady)]
    scenario: Scenario,
    /// Events already in the System Log at start, published over the last `--backlog-hours`.
    #[arg(long, default_value_t = 1000)]
    events: u64,
    /// The span the backlog's `published` times cover.
    #[arg(long, default_value_t = 24)]
    backlog_hours: i64,
    /// New events per second once started (0: none).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Share of generated events that change a factor.
    #[arg(long, default_value_t = 0.02)]
    mfa_ratio: f64,
    /// `/api/v1/logs` requests allowed per minute.
    #[arg(long, default_value_t = RateLimits::default().logs)]
    logs_rate_limit: u32,
    /// `/api/v1/events` requests allowed per minute.
    #[arg(long, default_value_t = RateLimits::default().events)]
    events_rate_limit: u32,
    /// `GET /api/v1/users/{idOrLogin}` requests allowed per minute.
    #[arg(long, default_value_t = RateLimits::default().user_get)]
    user_rate_limit: u32,
    /// Requests per minute for every other endpoint (factors, hooks, token).
    #[arg(long, default_value_t = RateLimits::default().other)]
    other_rate_limit: u32,
    /// Rate-limit window length in seconds (Okta's is 60; shorter for tests).
    #[arg(long, default_value_t = RateLimits::default().window_secs)]
    rate_window: i64,
    /// The share of each bucket, in percent, the client's token may use (Okta's per-token limit:
    /// 50 by default in a real org); responses report it as `X-Rate-Limit-Limit`.
    #[arg(long, default_value_t = RateLimits::default().token_share, value_parser = clap::value_parser!(u32).range(1..=100))]
    token_share: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if !(0.0..=1.0).contains(&cli.mfa_ratio) {
        eprintln!("okta-sim: --mfa-ratio must be between 0 and 1");
        return ExitCode::from(2);
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    let mut lives = Vec::new();
    for i in 0..cli.orgs {
        let port = if cli.port == 0 {
            0
        } else {
            match cli.port.checked_add(i) {
                Some(p) => p,
                None => {
                    eprintln!(
                        "okta-sim: --port {} + --orgs {} passes port 65535",
                        cli.port, cli.orgs
                    );
                    return ExitCode::from(2);
                }
            }
        };
        let listener = match tokio::net::TcpListener::bind(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            port,
        )))
        .await
        {
            Ok(l) => l,
            Err(e) => {
                eprintln!("okta-sim: cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::from(2);
            }
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let base_url = format!("http://127.0.0.1:{port}");
        let seed = cli.seed.wrapping_add(u64::from(i));
        let org = server::Org::new(Config {
            token: cli.token.clone(),
            base_url: base_url.clone(),
            rate_limits: rate_limits(&cli),
            seed,
        });
        if let Some(mut generator) = Generator::new(cli.scenario, seed, cli.users, cli.mfa_ratio) {
            let span = chrono::Duration::hours(cli.backlog_hours.clamp(0, 24 * 89));
            let attacks: Vec<_> = if cli.scenario == Scenario::Attacks {
                let n = okta_sim::scenario::attacks::Attack::ALL.len() as i32;
                okta_sim::scenario::attacks::Attack::ALL
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| (a, span - span / 2 * (i as i32 + 1) / n))
                    .collect()
            } else {
                Vec::new()
            };
            let loaded =
                generate::backlog_with_attacks(&org, &mut generator, cli.events, span, &attacks)
                    .and_then(|_| {
                        if cli.scenario == Scenario::Takeover {
                            generate::takeover(&org, &mut generator)
                        } else {
                            Ok(())
                        }
                    });
            if let Err(e) = loaded {
                eprintln!("okta-sim: generating the org failed: {}", e.error_summary);
                return ExitCode::from(1);
            }
            lives.push(tokio::spawn(generate::live(
                org.clone(),
                generator,
                cli.rate,
            )));
        }
        println!("listening on {base_url}");
        let mut stopped = stopped.clone();
        servers.push(tokio::spawn(server::serve(listener, org, async move {
            let _ = stopped.changed().await;
        })));
    }
    let _ = tokio::signal::ctrl_c().await;
    let _ = stop.send(true);
    for live in lives {
        live.abort();
    }
    let mut code = ExitCode::SUCCESS;
    for server in servers {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("okta-sim: {e}");
                code = ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("okta-sim: {e}");
                code = ExitCode::from(1);
            }
        }
    }
    code
}

fn rate_limits(cli: &Cli) -> RateLimits {
    RateLimits {
        logs: cli.logs_rate_limit,
        events: cli.events_rate_limit,
        user_get: cli.user_rate_limit,
        users: cli.other_rate_limit.min(RateLimits::default().users),
        other: cli.other_rate_limit,
        window_secs: cli.rate_window.max(1),
        token_share: cli.token_share,
    }
}
