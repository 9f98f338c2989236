//! `factorwatch config example` and `factorwatch config validate`: a commented configuration with
//! every option, and precise errors for an operator's own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::CommandError;

/// The commented example configuration (every option, with its default).
pub const EXAMPLE_CONFIG: &str = include_str!("../../../../examples/factorwatch.toml");

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print a commented configuration with every option and its default.
    Example,
    /// Check a configuration file (and FACTORWATCH__ variables) and say what is wrong.
    Validate {
        #[arg(long, short, env = "FACTORWATCH_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub fn main(args: Args) -> Result<ExitCode, CommandError> {
    match args.action {
        Action::Example => print!("{EXAMPLE_CONFIG}"),
        Action::Validate { config } => {
            let c = super::load_config(config.as_deref())?;
            println!(
                "ok: {} org(s), {} sink(s), email {}",
                c.orgs.len(),
                c.sinks.len(),
                if c.email.enabled {
                    c.email.transport.as_str()
                } else {
                    "off"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
