//! The `factorwatch` command line: [`Cli`], and one module per subcommand with its arguments
//! (`Args`) and what it does, over readers and writers so that tests drive them without a
//! process. `main` parses the line and hands it to [`main`].

pub mod backfill;
pub mod check;
pub mod classify;
pub mod cluster;
pub mod config;
pub mod cursor;
pub mod demo;
pub mod detect;
pub mod okta;
pub mod outbox;
pub mod render_email;
pub mod replay;
pub mod run;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{Config, ConfigError};

#[derive(Parser)]
#[command(
    name = "factorwatch",
    version,
    about = "Tells users and the SIEM when an Okta MFA factor changes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print one MFA change record per line (NDJSON) for the Okta events in FILE.
    ///
    /// Reads System Log events (one event, a JSON array or NDJSON), Event Hook deliveries and
    /// legacy Events API events, auto-detected. Values that are not valid JSON or not Okta events
    /// are reported on stderr with their position and skipped; the exit status is then 1.
    Classify(classify::Args),
    /// Run the account-takeover rules over exported Okta events (any layout `classify` reads), or
    /// with --org over what the store holds; print one finding per line (NDJSON).
    ///
    /// Events are taken in published order; a rule that waits for nothing to happen reports
    /// only once the events themselves have passed its window. Exit 1 when some input was
    /// skipped (each reported on stderr with its position).
    Detect(detect::Args),
    /// Run the daemon: poll Okta, receive its Event Hooks, deliver to the SIEM and users.
    ///
    /// Every config key can also be set by an environment variable: FACTORWATCH__ then the key's
    /// path, steps joined by `__` (FACTORWATCH__STORE__PATH, FACTORWATCH__ORGS__0__URL).
    /// Secrets come only from environment variables or files the config names.
    Run(run::Args),
    /// Replay a past window of the System Log (up to 90 days) through the pipeline, without
    /// handling anything twice; resumable; progress on stderr.
    Backfill(backfill::Args),
    /// Feed exported Okta events (any layout `classify` reads) through the pipeline: their changes
    /// are stored (once, whatever was handled before) and delivered by `run`.
    Replay(replay::Args),
    /// Set up and list the org's Event Hook through Okta's API.
    Okta(okta::Args),
    /// Check the configuration and every connection (Okta, SIEM sinks, email); exit 1 if any fails.
    Check(check::Args),
    /// Where each source resumes, and starting one again from its configured `since`.
    Cursor(cursor::Args),
    /// Several replicas on a PostgreSQL store: who holds which org, the outbox.
    Cluster(cluster::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff: `factorwatch man | man -l -`), or with --dir write one page per
    /// command there (factorwatch.1, factorwatch-run.1, …) for /usr/share/man/man1.
    Man {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Configuration helpers.
    Config(config::Args),
    /// Inspect and re-drive failed deliveries (dead letters).
    Outbox(outbox::Args),
    /// Print the complete email each change record would produce (headers and MIME parts), without
    /// sending; it writes to the record's user.login (no Okta lookup).
    RenderEmail(render_email::Args),
    /// See it work with no Okta org: a simulated org, the whole pipeline, a live summary.
    ///
    /// Writes SIEM records, emails (.eml) and its store under DIR. Stops at Ctrl-C, or after
    /// --duration.
    Demo(demo::Args),
}

/// Why a command failed. Its exit status: 1 when it ran and found a problem (a check failed,
/// input was skipped), 2 when it could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Start(#[from] crate::daemon::StartError),
    #[error(transparent)]
    Finish(#[from] crate::daemon::FinishError),
    #[error(transparent)]
    Org(#[from] crate::okta::client::OrgClientError),
    #[error(transparent)]
    Okta(#[from] crate::okta::client::ClientError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The command line or the configuration asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// Okta (or the simulated org) answered something the command cannot use.
    #[error("{0}")]
    Answer(String),
    /// The command ran and found problems it has already reported.
    #[error("{0}")]
    Found(String),
}

impl CommandError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CommandError {
        let what = what.into();
        move |source| CommandError::Io { what, source }
    }

    /// A reader that left (`factorwatch … | head`) is not a failure of ours.
    fn is_broken_pipe(&self) -> bool {
        matches!(self, CommandError::Io { source, .. } if source.kind() == ErrorKind::BrokenPipe)
    }
}

/// The configuration: the file (if any), then `FACTORWATCH__…` variables.
pub fn load_config(path: Option<&Path>) -> Result<Config, CommandError> {
    Config::load(path, std::env::vars()).map_err(CommandError::from)
}

/// This process's environment, where secrets are read from.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs a command's future on a fresh runtime.
fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, CommandError>>,
) -> Result<T, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CommandError::io("cannot start the async runtime"))?
        .block_on(f)
}

/// The exit status for a command's result; an error is printed first. `failure` is the status
/// for an error the command could not work around (2 by default, 1 for commands whose every
/// failure is a finding).
fn exit(result: Result<ExitCode, CommandError>, failure: u8) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("factorwatch: {e}");
            ExitCode::from(match e {
                CommandError::Found(_) => 1,
                _ => failure,
            })
        }
    }
}

fn init_logging(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FACTORWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The command line, run.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Classify(args) => exit(classify::main(args), 2),
        Command::Detect(args) => exit(block_on(detect::main(args)), 2),
        Command::Run(args) => {
            init_logging(args.log_json, "info");
            exit(block_on(run::main(args)).map(|()| ExitCode::SUCCESS), 2)
        }
        Command::Backfill(args) => exit(
            block_on(backfill::main(args)).map(|()| ExitCode::SUCCESS),
            2,
        ),
        Command::Replay(args) => exit(block_on(replay::main(args)).map(|()| ExitCode::SUCCESS), 2),
        Command::Okta(args) => exit(block_on(okta::main(args)).map(|()| ExitCode::SUCCESS), 1),
        Command::Check(args) => exit(block_on(check::main(args)), 2),
        Command::Cursor(args) => exit(block_on(cursor::main(args)).map(|()| ExitCode::SUCCESS), 2),
        Command::Cluster(args) => {
            exit(block_on(cluster::main(args)).map(|()| ExitCode::SUCCESS), 2)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "factorwatch",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Man { dir } => exit(man(dir).map(|()| ExitCode::SUCCESS), 2),
        Command::Config(args) => exit(config::main(args), 2),
        Command::Outbox(args) => exit(block_on(outbox::main(args)).map(|()| ExitCode::SUCCESS), 2),
        Command::RenderEmail(args) => exit(render_email::main(args), 2),
        Command::Demo(args) => {
            init_logging(false, "warn");
            exit(block_on(demo::main(args)).map(|()| ExitCode::SUCCESS), 1)
        }
    }
}

/// `factorwatch man [--dir DIR]`.
fn man(dir: Option<PathBuf>) -> Result<(), CommandError> {
    match dir {
        Some(dir) => std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
            .map_err(CommandError::io(format!(
                "cannot write the manual pages to {}",
                dir.display()
            ))),
        None => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(CommandError::io("cannot print the manual page")),
    }
}
