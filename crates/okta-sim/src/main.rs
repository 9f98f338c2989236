//! `okta-sim`: serve a simulated Okta org.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;

use okta_sim::server::{self, Config, RateLimits};

#[derive(Parser)]
#[command(
    name = "okta-sim",
    version,
    about = "A simulated Okta org that follows Okta's documented API behaviour"
)]
struct Cli {
    /// TCP port on 127.0.0.1; 0 picks a free one (printed on the first line).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The SSWS API token clients must send (`Authorization: SSWS <token>`).
    #[arg(long, env = "OKTA_SIM_TOKEN")]
    token: String,
    /// `/api/v1/logs` requests allowed per minute.
    #[arg(long, default_value_t = RateLimits::default().logs)]
    logs_rate_limit: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let listener = match tokio::net::TcpListener::bind(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        cli.port,
    )))
    .await
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("okta-sim: cannot listen on 127.0.0.1:{}: {e}", cli.port);
            return ExitCode::from(2);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(cli.port);
    let base_url = format!("http://127.0.0.1:{port}");
    let rate_limits = RateLimits {
        logs: cli.logs_rate_limit,
        ..RateLimits::default()
    };
    let org = server::Org::new(Config {
        token: cli.token,
        base_url: base_url.clone(),
        rate_limits,
    });
    println!("listening on {base_url}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, server::router(org))
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("okta-sim: {e}");
            ExitCode::from(1)
        }
    }
}
