//! The `factorwatch` command line.

use std::fs::File;
use std::io::{self, BufReader, ErrorKind};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use factorwatch::classify::{self, Classifier};
use factorwatch::commands;
use factorwatch::okta::factors::Provider;

#[derive(Parser)]
#[command(
    name = "factorwatch",
    version,
    about = "Tells users and the SIEM when an Okta MFA factor changes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print one MFA change record per line (NDJSON) for the Okta events in FILE.
    ///
    /// Reads System Log events (one event, a JSON array or NDJSON), Event Hook deliveries and
    /// legacy Events API events, auto-detected. Values that are not valid JSON or not Okta events
    /// are reported on stderr with their position and skipped; the exit status is then 1.
    Classify {
        /// The input file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        /// Add the original Okta event to each record under `raw`.
        #[arg(long)]
        raw: bool,
        /// Factor providers whose enrollments Okta owns (`factor.okta_authoritative`).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "OKTA,GOOGLE,FIDO,YUBICO",
            env = "FACTORWATCH_OKTA_AUTHORITATIVE"
        )]
        okta_authoritative: Vec<Provider>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Classify {
            file,
            raw,
            okta_authoritative,
        } => {
            let config = classify::Config {
                okta_authoritative: okta_authoritative.into_iter().collect(),
            };
            classify_command(
                &Classifier::new(config),
                file,
                commands::classify::Options { raw },
            )
        }
    }
}

fn classify_command(
    classifier: &Classifier,
    file: Option<PathBuf>,
    options: commands::classify::Options,
) -> ExitCode {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut errors = io::stderr().lock();
    let result = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => match File::open(&path) {
            Ok(f) => commands::classify::run(
                classifier,
                options,
                BufReader::new(f),
                &mut out,
                &mut errors,
            ),
            Err(e) => {
                eprintln!("factorwatch: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => commands::classify::run(
            classifier,
            options,
            io::stdin().lock(),
            &mut out,
            &mut errors,
        ),
    };
    match result {
        Ok(summary) if summary.skipped > 0 => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        // A reader that stopped listening (`| head`) is not a failure of ours.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("factorwatch: {e}");
            ExitCode::from(2)
        }
    }
}
